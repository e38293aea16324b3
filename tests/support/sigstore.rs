//! The independent sigstore material generator (`tests/sigstore/gen.py`, Python with
//! `cryptography` and PyNaCl): keys, payloads, signatures, signature files and registry
//! attachments made without ferry, and an independent verifier for what ferry makes.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Run, require_tool, run};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sigstore/gen.py")
}

/// Runs `gen.py ARGS`, failing the test with an install hint if Python or its modules are
/// missing.
pub fn sgen(args: &[&str]) -> Run {
    let python = require_tool("python3", "python3");
    let probe = run(Command::new(&python).args(["-c", "import cryptography, nacl"]));
    assert_eq!(
        probe.code, 0,
        "the sigstore generator needs Python's cryptography and PyNaCl: run \
         `pip install -r tests/sigstore/requirements.txt` (./scripts/test does): {}",
        probe.stderr
    );
    run(Command::new(python).arg(script()).args(args))
}

/// A key pair made by the generator: `PREFIX.pub`, `PREFIX.key` (cosign-encrypted with
/// `password`), `PREFIX.pem` (plain).
pub struct GenKey {
    /// The public key (PEM).
    pub public: PathBuf,
    /// The cosign-encrypted private key.
    pub encrypted: PathBuf,
    /// The plain PKCS#8 private key.
    pub plain: PathBuf,
    /// The password of the encrypted key.
    pub password: String,
}

/// A new key pair of `kind` (`ecdsa-p256`, `ed25519`, `rsa-2048`, …) under `dir`.
pub fn keygen(dir: &Path, name: &str, kind: &str) -> GenKey {
    let prefix = dir.join(name);
    let password = format!("pw-{name}");
    sgen(&[
        "keygen",
        "--type",
        kind,
        "--out",
        prefix.to_str().unwrap(),
        "--password",
        &password,
    ])
    .ok();
    GenKey {
        public: prefix.with_extension("pub"),
        encrypted: prefix.with_extension("key"),
        plain: prefix.with_extension("pem"),
        password,
    }
}

/// A cosign payload for `digest` and `reference`, and its signature by `key`, as files under
/// `dir` named `NAME.payload` and `NAME.sig`; returns their paths. The payload names `NAME`
/// as its creator, so two signatures of one image are two different blobs.
pub fn sign(
    dir: &Path,
    name: &str,
    key: &GenKey,
    digest: &str,
    reference: &str,
) -> (PathBuf, PathBuf) {
    let payload = dir.join(format!("{name}.payload"));
    let sig = dir.join(format!("{name}.sig"));
    sgen(&[
        "payload",
        "--digest",
        digest,
        "--reference",
        reference,
        "--creator",
        name,
        "--out",
        payload.to_str().unwrap(),
    ])
    .ok();
    sgen(&[
        "sign",
        "--key",
        key.plain.to_str().unwrap(),
        "--payload",
        payload.to_str().unwrap(),
        "--out",
        sig.to_str().unwrap(),
    ])
    .ok();
    (payload, sig)
}

/// The containers/image signature file (`0x00 sigstore-json \n` JSON) of a payload and
/// signature, with extra `gen.py sigfile` arguments.
pub fn sigfile(payload: &Path, sig: &Path, out: &Path, extra: &[&str]) {
    let mut a = vec![
        "sigfile",
        "--payload",
        payload.to_str().unwrap(),
        "--signature",
        sig.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    sgen(&a).ok();
}
