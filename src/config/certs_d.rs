//! certs.d (containers-certs.d(5)): the CA certificates and client certificates ferry uses for
//! one registry, read as containers/image's `tlsclientconfig.SetupCertificates` reads them.
//!
//! For a registry `HOST[:PORT]`, the directory is the first of these that exists (only that one
//! is read): `~/.config/containers/certs.d/HOST[:PORT]`, `/etc/containers/certs.d/HOST[:PORT]`,
//! `/etc/docker/certs.d/HOST[:PORT]`. An explicit directory (skopeo's `--cert-dir`) replaces the
//! search and is used as it is, without a per-host subdirectory. In the directory:
//!
//! - `*.crt`: CA certificates (PEM), trusted for this registry in addition to the system's roots;
//! - `*.cert` with `*.key` of the same base name: a client certificate and its key, presented
//!   when the registry asks for one. A `.cert` without its `.key`, or a `.key` without its
//!   `.cert`, is an error (as in containers/image, whose message is kept).
//!
//! Files are read here (the caller chose the directory); nothing is parsed as X.509 here: the
//! HTTP client builder does that, naming the file when a certificate cannot be used.

use std::path::{Path, PathBuf};

/// The per-host certs.d parents containers/image searches, in order, for a home directory.
/// Pure: the caller gives `$HOME` ([`crate::session::SessionConfig::from_env`] does).
pub fn default_dirs(home: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(h) = home {
        out.push(h.join(".config/containers/certs.d"));
    }
    out.push(PathBuf::from(SYSTEM_CERTS_D));
    out.push(PathBuf::from("/etc/docker/certs.d"));
    out
}

/// The system certs.d directory, where a registry's CA goes: `SYSTEM_CERTS_D/HOST:PORT/ca.crt`.
pub const SYSTEM_CERTS_D: &str = "/etc/containers/certs.d";

/// Why a certs.d directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertsDError {
    /// The directory or a file in it could not be read.
    #[error("reading certs.d {path}: {source}")]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A client certificate without its key (containers/image's words).
    #[error(
        "{dir}: missing key {key} for client certificate {cert}. Note that CA certificates should use the extension .crt"
    )]
    MissingKey {
        /// The directory.
        dir: PathBuf,
        /// The certificate's file name.
        cert: String,
        /// The key file that should be beside it.
        key: String,
    },
    /// A key without its client certificate.
    #[error("{dir}: missing client certificate {cert} for key {key}")]
    MissingCert {
        /// The directory.
        dir: PathBuf,
        /// The certificate file that should be beside it.
        cert: String,
        /// The key's file name.
        key: String,
    },
    /// A file is larger than ferry reads.
    #[error(transparent)]
    TooLarge(crate::limits::TooLarge),
}

/// One PEM file, as read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PemFile {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// Its bytes.
    pub pem: Vec<u8>,
}

/// A client certificate (`NAME.cert`) and its key (`NAME.key`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientPair {
    /// The certificate (chain), PEM.
    pub cert: PemFile,
    /// The private key, PEM.
    pub key: PemFile,
}

/// What one certs.d directory holds for a registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct HostCerts {
    /// The directory read.
    pub dir: PathBuf,
    /// CA certificates (`*.crt`), in file-name order.
    pub roots: Vec<PemFile>,
    /// Client certificate pairs (`*.cert` + `*.key`), in file-name order. Go's TLS stack offers
    /// the first one the server's request accepts; ferry's HTTP stack takes one identity, the
    /// first.
    pub clients: Vec<ClientPair>,
}

impl HostCerts {
    /// Whether the directory gave nothing.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty() && self.clients.is_empty()
    }
}

/// The directory to read for `host_port` among the per-host parents `parents`: the first
/// `PARENT/HOST[:PORT]` that exists, as containers/image's `dockerCertDir`.
pub fn host_dir(parents: &[PathBuf], host_port: &str) -> Option<PathBuf> {
    // A host[:port] never holds a path separator; refuse one rather than read elsewhere.
    if host_port.is_empty() || host_port.contains(['/', '\\']) || host_port.starts_with('.') {
        return None;
    }
    parents
        .iter()
        .map(|p| p.join(host_port))
        .find(|d| d.exists())
}

/// Reads `dir`: a missing directory (or one ferry may not read, as containers/image skips it)
/// gives nothing.
pub fn load(dir: &Path) -> Result<HostCerts, CertsDError> {
    let read_err = |path: &Path, source| CertsDError::Read {
        path: path.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            return Ok(HostCerts {
                dir: dir.to_path_buf(),
                ..HostCerts::default()
            });
        }
        Err(e) => return Err(read_err(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| read_err(dir, e))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    // containers/image takes directory order; sorting makes "the first" the same on every run.
    names.sort();
    let mut out = HostCerts {
        dir: dir.to_path_buf(),
        ..HostCerts::default()
    };
    let read = |name: &str| -> Result<Option<PemFile>, CertsDError> {
        let path = dir.join(name);
        match crate::limits::read_file(&path, crate::limits::MAX_CONFIG_FILE, "a certificate file")
        {
            Ok(pem) => Ok(Some(PemFile { path, pem })),
            // Removed between the listing and the read: containers/image ignores it too.
            Err(crate::limits::ReadError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(crate::limits::ReadError::Io { source, .. }) => Err(read_err(&path, source)),
            Err(crate::limits::ReadError::TooLarge(t)) => Err(CertsDError::TooLarge(t)),
        }
    };
    for name in &names {
        if name.ends_with(".crt") {
            if let Some(f) = read(name)? {
                out.roots.push(f);
            }
        } else if let Some(base) = name.strip_suffix(".cert") {
            let key = format!("{base}.key");
            if !names.contains(&key) {
                return Err(CertsDError::MissingKey {
                    dir: dir.to_path_buf(),
                    cert: name.clone(),
                    key,
                });
            }
            if let (Some(cert), Some(key)) = (read(name)?, read(&key)?) {
                out.clients.push(ClientPair { cert, key });
            }
        } else if let Some(base) = name.strip_suffix(".key") {
            let cert = format!("{base}.cert");
            if !names.contains(&cert) {
                return Err(CertsDError::MissingCert {
                    dir: dir.to_path_buf(),
                    cert,
                    key: name.clone(),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cas_and_client_pairs_as_containers_image() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("reg.example:5000");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("b.crt"), "B").unwrap();
        std::fs::write(d.join("a.crt"), "A").unwrap();
        std::fs::write(d.join("client.cert"), "C").unwrap();
        std::fs::write(d.join("client.key"), "K").unwrap();
        std::fs::write(d.join("README"), "ignored").unwrap();
        let c = load(&d).unwrap();
        assert_eq!(
            c.roots.iter().map(|r| r.pem.clone()).collect::<Vec<_>>(),
            vec![b"A".to_vec(), b"B".to_vec()]
        );
        assert_eq!(c.clients.len(), 1);
        assert_eq!(c.clients[0].key.pem, b"K");

        std::fs::write(d.join("lonely.cert"), "C").unwrap();
        let e = load(&d).unwrap_err().to_string();
        assert!(
            e.contains("missing key lonely.key for client certificate lonely.cert"),
            "{e}"
        );
        std::fs::remove_file(d.join("lonely.cert")).unwrap();
        std::fs::write(d.join("orphan.key"), "K").unwrap();
        let e = load(&d).unwrap_err().to_string();
        assert!(
            e.contains("missing client certificate orphan.cert for key orphan.key"),
            "{e}"
        );

        assert!(load(&t.path().join("nothing")).unwrap().is_empty());
    }

    #[test]
    fn the_first_existing_host_directory_wins() {
        let t = tempfile::tempdir().unwrap();
        let (user, system) = (t.path().join("user"), t.path().join("system"));
        std::fs::create_dir_all(system.join("h:1")).unwrap();
        let parents = vec![user.clone(), system.clone()];
        assert_eq!(host_dir(&parents, "h:1"), Some(system.join("h:1")));
        std::fs::create_dir_all(user.join("h:1")).unwrap();
        assert_eq!(host_dir(&parents, "h:1"), Some(user.join("h:1")));
        assert_eq!(host_dir(&parents, "other"), None);
        assert_eq!(host_dir(&parents, "../h:1"), None);
        let d = default_dirs(Some(Path::new("/home/u")));
        assert_eq!(d[0], Path::new("/home/u/.config/containers/certs.d"));
        assert_eq!(d[1], Path::new(SYSTEM_CERTS_D));
    }
}
