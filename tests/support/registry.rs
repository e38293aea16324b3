//! The real distribution registry (Debian package `docker-registry`), started on a free
//! 127.0.0.1 port with storage in a temp directory and killed when dropped. Never the package's
//! own configuration, which listens on all interfaces.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::require_tool;

/// A running registry.
pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl Registry {
    /// A registry with anonymous access.
    pub fn start() -> Registry {
        Registry::start_with(None, false)
    }

    /// A registry serving https with a self-signed certificate for 127.0.0.1 (made by openssl).
    pub fn start_tls() -> Registry {
        Registry::start_with(None, true)
    }

    /// A registry that requires basic auth with this user and password (htpasswd, bcrypt).
    pub fn start_with_password(user: &str, password: &str) -> Registry {
        Registry::start_with(Some((user, password)), false)
    }

    /// A registry serving https with `server` (a certificate and key, see `support::pki`),
    /// and, with `client_ca`, requiring client certificates signed by that CA.
    pub fn start_tls_with(server: &super::pki::CertPair, client_ca: Option<&Path>) -> Registry {
        let mut yaml = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            server.cert.display(),
            server.key.display()
        );
        if let Some(ca) = client_ca {
            yaml.push_str(&format!("    clientcas:\n      - {}\n", ca.display()));
        }
        Registry::start_configured(None, false, Some(yaml))
    }

    fn start_with(auth: Option<(&str, &str)>, tls: bool) -> Registry {
        Registry::start_configured(auth, tls, None)
    }

    fn start_configured(
        auth: Option<(&str, &str)>,
        tls: bool,
        tls_config: Option<String>,
    ) -> Registry {
        let bin = require_tool("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut auth_yaml = String::new();
        if let Some((user, password)) = auth {
            let htpasswd = require_tool("htpasswd", "apache2-utils");
            let out = Command::new(htpasswd)
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, out.stdout).expect("write htpasswd");
            auth_yaml = format!(
                "auth:\n  htpasswd:\n    realm: ferry-test\n    path: {}\n",
                file.display()
            );
        }
        let mut tls_yaml = tls_config.unwrap_or_default();
        if tls {
            let openssl = require_tool("openssl", "openssl");
            let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            let out = Command::new(openssl)
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-days",
                    "2",
                ])
                .args([
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "openssl failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            tls_yaml = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{tls_yaml}{auth_yaml}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut r = Registry { child, port, dir };
        r.wait_ready();
        r
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited ({status}):\n{}", self.log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "docker-registry did not listen on 127.0.0.1:{} within 20 s:\n{}",
            self.port,
            self.log()
        );
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's log so far (access log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The storage directory.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
