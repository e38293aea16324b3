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
        self.export_unlocked_by(fpr, uid, "")
    }

    /// Exports a key; gpg-agent must be given the secret key's passphrase to export it, and the
    /// export keeps the protection.
    fn export_unlocked_by(&self, fpr: &str, uid: &str, passphrase: &str) -> Key {
        let public = self.home.path().join(format!("{fpr}.pub"));
        let secret = self.home.path().join(format!("{fpr}.sec"));
        run(self
            .gpg()
            .args(["--output", public.to_str().unwrap(), "--export", fpr]))
        .ok();
        run(self.gpg().args([
            "--passphrase",
            passphrase,
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

    /// Makes a key from a gpg parameter file: ed25519, unprotected (so gpg's key editing needs
    /// no passphrase), `usage` for the primary key, `extra` parameter lines (a subkey, an expiry).
    fn gen_from_parameters(
        &self,
        name: &str,
        usage: &str,
        extra: &str,
        faked_time: Option<&str>,
    ) -> Key {
        let uid = format!("{name} <{}@ferry.test>", name.replace(' ', "."));
        let (real, mail) = uid.split_once(" <").unwrap();
        let protection = if extra.contains("Passphrase:") {
            ""
        } else {
            "%no-protection"
        };
        let params = format!(
            "Key-Type: eddsa\nKey-Curve: ed25519\n{protection}\nKey-Usage: {usage}\n\
             Name-Real: {real}\nName-Email: {}\n{extra}\n%commit\n",
            mail.trim_end_matches('>')
        );
        let file = self.home.path().join("key-parameters");
        std::fs::write(&file, params).expect("parameter file");
        let mut c = self.gpg();
        if let Some(t) = faked_time {
            c.args(["--faked-system-time", t]);
        }
        run(c.args(["--gen-key", file.to_str().unwrap()])).ok();
        let fpr = self.fingerprints(&format!("<{}", mail)).remove(0);
        match extra.split_once("Passphrase: ") {
            Some((_, passphrase)) => self.export_unlocked_by(&fpr, &uid, passphrase.trim()),
            None => self.export(&fpr, &uid),
        }
    }

    /// A key whose primary key only certifies, with a separate ed25519 signing subkey.
    pub fn gen_key_with_signing_subkey(&self, name: &str) -> Key {
        self.gen_from_parameters(
            name,
            "cert",
            "Expire-Date: 0\nSubkey-Type: eddsa\nSubkey-Curve: ed25519\nSubkey-Usage: sign",
            None,
        )
    }

    /// A key made in 2020 whose primary key never expires and whose only signing key, a
    /// subkey, expired a day later; sign with it using [`Gpg::sign_payload`] in 2020.
    pub fn gen_key_with_expired_signing_subkey(&self, name: &str) -> Key {
        let key = self.gen_from_parameters(name, "cert", "Expire-Date: 0", Some("20200101T000000"));
        run(self.gpg().args([
            "--faked-system-time",
            "20200101T000000",
            "--quick-add-key",
            &key.fpr,
            "ed25519",
            "sign",
            "1d",
        ]))
        .ok();
        self.export(&key.fpr, &key.uid)
    }

    /// Revokes the signing subkey of a key made by [`Gpg::gen_key_with_signing_subkey`] (gpg has
    /// no quick command for it: `--edit-key`, `key 1`, `revkey`, driven through --command-fd).
    pub fn revoke_signing_subkey(&self, key: &Key) -> Key {
        let mut child = Command::new("gpg")
            .env("GNUPGHOME", self.home.path())
            .args([
                "--batch",
                "--yes",
                "--command-fd",
                "0",
                "--edit-key",
                &key.fpr,
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("gpg --edit-key");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"key 1\nrevkey\ny\n0\n\ny\nsave\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let revoked = self.export(&key.fpr, &key.uid);
        let colons = run(self.gpg().args(["--with-colons", "--list-keys", &key.fpr])).ok();
        assert!(
            colons.stdout.lines().any(|l| l.starts_with("sub:r:")),
            "gpg did not revoke the subkey: {}",
            colons.stdout
        );
        revoked
    }

    /// A signing key whose secret key is protected by `passphrase`; its `secret` export keeps
    /// the protection.
    pub fn gen_protected_key(&self, name: &str, passphrase: &str) -> Key {
        self.gen_from_parameters(
            name,
            "sign",
            &format!("Expire-Date: 0\nPassphrase: {passphrase}"),
            None,
        )
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

    /// Imports a key file (e.g. another home's public key) into this home; a verifier's keyring
    /// for skopeo, which reads keys from GNUPGHOME.
    pub fn import(&self, key_file: &Path) {
        run(self.gpg().args(["--import", key_file.to_str().unwrap()])).ok();
    }

    /// Real `skopeo standalone-verify` with this home as its keyring.
    pub fn skopeo_verify(
        &self,
        manifest: &Path,
        reference: &str,
        fpr: &str,
        sig: &Path,
    ) -> super::Run {
        let bin = require_tool("skopeo", "skopeo");
        run(Command::new(bin).env("GNUPGHOME", self.home.path()).args([
            "standalone-verify",
            manifest.to_str().unwrap(),
            reference,
            fpr,
            sig.to_str().unwrap(),
        ]))
    }

    /// Signs a payload with `gpg --sign` and extra gpg options (e.g. `--compress-algo zlib`).
    pub fn sign_payload_with(&self, payload: &[u8], fpr: &str, options: &[&str], out: &Path) {
        let input = self.home.path().join("payload.json");
        std::fs::write(&input, payload).expect("payload");
        run(self.gpg().args(options).args([
            "--local-user",
            fpr,
            "--output",
            out.to_str().unwrap(),
            "--sign",
            input.to_str().unwrap(),
        ]))
        .ok();
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
