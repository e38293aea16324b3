//! Keys made by real gpg in a throwaway GNUPGHOME, and signatures made by real skopeo (which
//! signs through GPGME with that GNUPGHOME) or by gpg itself when the signing time must be
//! faked (expired keys).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{require_tool, run};

/// A GNUPGHOME of its own.
pub struct Gpg {
    home: tempfile::TempDir,
}

/// A key gpg made.
#[derive(Debug, Clone)]
pub struct Key {
    /// Primary key fingerprint, uppercase hex.
    pub fpr: String,
    /// Fingerprint of the signing subkey, when the key has one.
    pub signing_subkey: Option<String>,
    /// The user ID.
    pub uid: String,
    /// `gpg --export` (binary).
    pub public: PathBuf,
    /// `gpg --export-secret-keys` (binary, no passphrase).
    pub secret: PathBuf,
}

impl Gpg {
    /// A new empty GNUPGHOME.
    pub fn new() -> Gpg {
        require_tool("gpg", "gnupg");
        let home = tempfile::Builder::new()
            .prefix("ferry-gpg")
            .tempdir()
            .expect("tempdir");
        std::fs::write(home.path().join("gpg.conf"), "no-auto-check-trustdb\n").expect("gpg.conf");
        Gpg { home }
    }

    /// The GNUPGHOME.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// A gpg command in this GNUPGHOME.
    pub fn gpg(&self) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", self.home.path()).args([
            "--batch",
            "--yes",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]);
        c
    }

    fn fingerprints(&self, uid: &str) -> Vec<String> {
        let out = run(self.gpg().args(["--with-colons", "--list-keys", uid])).ok();
        out.stdout
            .lines()
            .filter(|l| l.starts_with("fpr:"))
            .map(|l| l.split(':').nth(9).unwrap_or("").to_string())
            .collect()
    }

    fn export(&self, fpr: &str, uid: &str) -> Key {
        let public = self.home.path().join(format!("{fpr}.pub"));
        let secret = self.home.path().join(format!("{fpr}.sec"));
        run(self
            .gpg()
            .args(["--output", public.to_str().unwrap(), "--export", fpr]))
        .ok();
        run(self.gpg().args([
            "--output",
            secret.to_str().unwrap(),
            "--export-secret-keys",
            fpr,
        ]))
        .ok();
        let fprs = self.fingerprints(fpr);
        Key {
            fpr: fpr.to_string(),
            signing_subkey: fprs.get(1).cloned(),
            uid: uid.to_string(),
            public,
            secret,
        }
    }

    /// A new ed25519 signing key for `name <name@ferry.test>` that never expires.
    pub fn gen_key(&self, name: &str) -> Key {
        let uid = format!("{name} <{}@ferry.test>", name.replace(' ', "."));
        run(self
            .gpg()
            .args(["--quick-gen-key", &uid, "ed25519", "sign", "never"]))
        .ok();
        let fpr = self.fingerprints(&uid).remove(0);
        self.export(&fpr, &uid)
    }

    /// A key whose primary key only certifies, with a separate ed25519 signing subkey.
    pub fn gen_key_with_signing_subkey(&self, name: &str) -> Key {
        let uid = format!("{name} <{}@ferry.test>", name.replace(' ', "."));
        run(self
            .gpg()
            .args(["--quick-gen-key", &uid, "ed25519", "cert", "never"]))
        .ok();
        let fpr = self.fingerprints(&uid).remove(0);
        run(self
            .gpg()
            .args(["--quick-add-key", &fpr, "ed25519", "sign", "never"]))
        .ok();
        self.export(&fpr, &uid)
    }

    /// A key made in 2020 that expired a day later; sign with it using [`Gpg::sign_payload`]
    /// at a time before it expired.
    pub fn gen_expired_key(&self, name: &str) -> Key {
        let uid = format!("{name} <{}@ferry.test>", name.replace(' ', "."));
        run(self.gpg().args([
            "--faked-system-time",
            "20200101T000000",
            "--quick-gen-key",
            &uid,
            "ed25519",
            "sign",
            "1d",
        ]))
        .ok();
        let fpr = self.fingerprints(&uid).remove(0);
        self.export(&fpr, &uid)
    }

    /// Revokes a key (its public export then carries the revocation).
    pub fn revoke(&self, key: &Key) -> Key {
        let rev = self
            .home
            .path()
            .join("openpgp-revocs.d")
            .join(format!("{}.rev", key.fpr));
        let text = std::fs::read_to_string(&rev).expect("revocation certificate");
        let armored = text.replace(":-----BEGIN", "-----BEGIN");
        let file = self.home.path().join(format!("{}.rev.asc", key.fpr));
        std::fs::write(&file, armored).expect("write revocation");
        run(self.gpg().args(["--import", file.to_str().unwrap()])).ok();
        self.export(&key.fpr, &key.uid)
    }

    /// Signs a payload as gpg does for simple signing (`gpg --sign`), optionally at a faked time.
    pub fn sign_payload(&self, payload: &[u8], fpr: &str, faked_time: Option<&str>, out: &Path) {
        let input = self.home.path().join("payload.json");
        std::fs::write(&input, payload).expect("payload");
        let mut c = self.gpg();
        if let Some(t) = faked_time {
            c.args(["--faked-system-time", t]);
        }
        c.args([
            "--local-user",
            fpr,
            "--output",
            out.to_str().unwrap(),
            "--sign",
            input.to_str().unwrap(),
        ]);
        run(&mut c).ok();
    }

    /// Signs a manifest file with real `skopeo standalone-sign`.
    pub fn skopeo_sign(&self, manifest: &Path, reference: &str, fpr: &str, out: &Path) {
        let bin = require_tool("skopeo", "skopeo");
        run(Command::new(bin).env("GNUPGHOME", self.home.path()).args([
            "standalone-sign",
            manifest.to_str().unwrap(),
            reference,
            fpr,
            "--output",
            out.to_str().unwrap(),
        ]))
        .ok();
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        // gpg starts an agent per GNUPGHOME; stop it so no process outlives the test.
        let _ = std::process::Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

/// A simple-signing payload for a manifest digest and identity.
pub fn payload(manifest_digest: &str, reference: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{manifest_digest}"}},"type":"atomic container signature"}},"optional":{{"creator":"ferry tests","timestamp":1577836800}}}}"#
    )
    .into_bytes()
}
