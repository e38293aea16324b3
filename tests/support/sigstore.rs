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

/// The identity the keyless test certificates name.
pub const SIGNER: &str = "signer@example.com";
/// The OIDC issuer the keyless test certificates name.
pub const ISSUER: &str = "https://issuer.example.com";

/// Keyless trust material made by the generator: a Fulcio-like CA, a CT log key, a Rekor key
/// and a leaf certificate for [`SIGNER`] from [`ISSUER`] with an SCT (so sigstore-python
/// accepts it too).
pub struct Keyless {
    /// Where it all is.
    pub dir: PathBuf,
    /// The CA's prefix (`PREFIX.chain.pem`, `PREFIX.root.pem`, …).
    pub ca: PathBuf,
    /// Intermediate and root, the file a policy's `fulcio.caPath` names.
    pub chain: PathBuf,
    /// The CT log key's prefix.
    pub ct: PathBuf,
    /// The Rekor key's prefix (`PREFIX.pub` for policies, `PREFIX.pem` to sign SETs).
    pub rekor: PathBuf,
    /// The leaf's prefix (`PREFIX.pem`, `PREFIX.key`).
    pub leaf: PathBuf,
}

/// New keyless material under `dir`.
pub fn keyless(dir: &Path) -> Keyless {
    std::fs::create_dir_all(dir).unwrap();
    let p = |n: &str| dir.join(n);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    sgen(&["ca", "--out", &s(&p("fulcio"))]).ok();
    sgen(&["ct-key", "--out", &s(&p("ct"))]).ok();
    sgen(&["rekor-key", "--out", &s(&p("rekor"))]).ok();
    let k = Keyless {
        dir: dir.to_path_buf(),
        ca: p("fulcio"),
        chain: p("fulcio.chain.pem"),
        ct: p("ct"),
        rekor: p("rekor"),
        leaf: p("leaf"),
    };
    k.cert("leaf", &["--email", SIGNER, "--issuer", ISSUER]);
    k
}

impl Keyless {
    /// A leaf certificate `NAME` from this CA with an SCT and `extra` `gen.py cert` arguments
    /// (the email, issuer, times); returns its prefix.
    pub fn cert(&self, name: &str, extra: &[&str]) -> PathBuf {
        let prefix = self.dir.join(name);
        let ca = self.ca.to_str().unwrap().to_string();
        let ct = format!("{}.pem", self.ct.display());
        let out = prefix.to_str().unwrap().to_string();
        let mut a = vec!["cert", "--ca", &ca, "--ct-key", &ct, "--out", &out];
        a.extend_from_slice(extra);
        sgen(&a).ok();
        prefix
    }

    /// A v0.3 bundle `NAME.json` for `digest`, signed with the leaf and logged with the Rekor
    /// key, with extra `gen.py bundle` arguments (`--dsse` or `--message-signature` first).
    pub fn bundle(&self, digest: &str, name: &str, extra: &[&str]) -> PathBuf {
        self.bundle_by(&self.leaf, digest, name, extra)
    }

    /// [`Keyless::bundle`] signed with the leaf at `leaf` (a prefix from [`Keyless::cert`]).
    pub fn bundle_by(&self, leaf: &Path, digest: &str, name: &str, extra: &[&str]) -> PathBuf {
        let out = self.dir.join(format!("{name}.json"));
        let cert = format!("{}.pem", leaf.display());
        let key = format!("{}.key", leaf.display());
        let rekor = format!("{}.pem", self.rekor.display());
        let o = out.to_str().unwrap().to_string();
        let mut a = vec![
            "bundle",
            "--digest",
            digest,
            "--cert",
            &cert,
            "--cert-key",
            &key,
            "--rekor-key",
            &rekor,
            "--out",
            &o,
        ];
        a.extend_from_slice(extra);
        sgen(&a).ok();
        out
    }

    /// The `sigstoreSigned` requirement trusting this material (with `identity`, a
    /// `signedIdentity` JSON object, if given).
    pub fn requirement(&self, identity: Option<&str>) -> String {
        format!(
            r#"{{"type":"sigstoreSigned","fulcio":{{"caPath":"{}","oidcIssuer":"{ISSUER}","subjectEmail":"{SIGNER}"}},"rekorPublicKeyPath":"{}.pub"{}}}"#,
            self.chain.display(),
            self.rekor.display(),
            identity
                .map(|i| format!(r#","signedIdentity":{i}"#))
                .unwrap_or_default()
        )
    }

    /// A sigstore-python trust configuration for this material.
    pub fn trust_config(&self) -> PathBuf {
        let out = self.dir.join("trust-config.json");
        if !out.exists() {
            sgen(&[
                "trust-config",
                "--ca",
                self.chain.to_str().unwrap(),
                "--rekor-pub",
                &format!("{}.pub", self.rekor.display()),
                "--ct-pub",
                &format!("{}.pub", self.ct.display()),
                "--out",
                out.to_str().unwrap(),
            ])
            .ok();
        }
        out
    }

    /// sigstore-python's verdict on a bundle for `digest` (offline, with
    /// [`Keyless::trust_config`]): the exit code (0 accepted, 1 rejected) and its output.
    pub fn sigstore_python(&self, bundle: &Path, digest: &str) -> Run {
        self.sigstore_python_with(bundle, digest, &[])
    }

    /// The same verdict from sigstore-python's own command line (`python -m sigstore
    /// --trust-config FILE verify identity --offline --bundle … sha256:HEX`), as a user would
    /// run it. Its in-toto model wants `subject[].name`, so give it named DSSE statements.
    pub fn sigstore_cli(&self, bundle: &Path, digest: &str) -> Run {
        self.sigstore_python_with(bundle, digest, &["--cli"])
    }

    fn sigstore_python_with(&self, bundle: &Path, digest: &str, extra: &[&str]) -> Run {
        let python = require_tool("python3", "python3");
        let probe = run(Command::new(&python).args(["-c", "import sigstore"]));
        assert_eq!(
            probe.code, 0,
            "the cross-check needs sigstore-python: run `pip install -r tests/sigstore/requirements.txt` (./scripts/test does): {}",
            probe.stderr
        );
        sgen(
            &[
                "verify-bundle",
                "--bundle",
                bundle.to_str().unwrap(),
                "--trust-config",
                self.trust_config().to_str().unwrap(),
                "--digest",
                digest,
                "--cert-identity",
                SIGNER,
                "--cert-oidc-issuer",
                ISSUER,
            ]
            .iter()
            .chain(extra)
            .copied()
            .collect::<Vec<_>>(),
        )
    }
}

/// A sigstore bundle as containers/image's signature-file form stores it (how `dir:` and the
/// store keep a bundle): `0x00 sigstore-json \n` and the JSON with the bundle as the payload.
pub fn bundle_sigfile(bundle: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let mut out = b"\x00sigstore-json\n".to_vec();
    out.extend_from_slice(
        format!(
            r#"{{"mimeType":"application/vnd.dev.sigstore.bundle.v0.3+json","payload":"{}","annotations":{{}}}}"#,
            base64::engine::general_purpose::STANDARD.encode(bundle)
        )
        .as_bytes(),
    );
    out
}

/// The bundle inside a signature file ferry wrote (the inverse of [`bundle_sigfile`]).
pub fn bundle_of_sigfile(file: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let json = file
        .strip_prefix(b"\x00sigstore-json\n".as_slice())
        .expect("a sigstore signature file");
    let v: serde_json::Value = serde_json::from_slice(json).unwrap();
    assert_eq!(
        v["mimeType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    base64::engine::general_purpose::STANDARD
        .decode(v["payload"].as_str().unwrap())
        .unwrap()
}
