//! Test certificates made by openssl: a CA, server certificates it signs (for the names the
//! test chooses), and client certificates, so TLS tests need no network and no real PKI.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::require_tool;

fn openssl(args: &[&str], dir: &Path) {
    let bin = require_tool("openssl", "openssl");
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertPair {
    /// The certificate.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// A CA in `dir` named `name` (`NAME.crt`, `NAME.key`).
pub fn ca(dir: &Path, name: &str) -> CertPair {
    let (cert, key) = (format!("{name}.crt"), format!("{name}.key"));
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &key,
            "-out",
            &cert,
        ],
        dir,
    );
    CertPair {
        cert: dir.join(cert),
        key: dir.join(key),
    }
}

/// A leaf certificate `NAME.crt`/`NAME.key` signed by `ca`, with `san`
/// (`IP:127.0.0.1`, `DNS:registry.test`) and `usage` (`serverAuth` or `clientAuth`).
pub fn leaf(dir: &Path, ca: &CertPair, name: &str, san: &str, usage: &str) -> CertPair {
    signed_by(
        dir,
        ca,
        name,
        &format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\nsubjectAltName={san}\n"
        ),
    )
}

/// A certificate `NAME.crt`/`NAME.key` signed by `ca`, with the X.509 extensions given in
/// openssl's extension-file syntax (one per line).
pub fn signed_by(dir: &Path, ca: &CertPair, name: &str, extensions: &str) -> CertPair {
    let (cert, key, csr, ext) = (
        format!("{name}.crt"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
    );
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
        dir,
    );
    std::fs::write(dir.join(&ext), extensions).expect("write extensions");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            ca.cert.to_str().unwrap(),
            "-CAkey",
            ca.key.to_str().unwrap(),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
        dir,
    );
    CertPair {
        cert: dir.join(cert),
        key: dir.join(key),
    }
}
