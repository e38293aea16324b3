//! Keyless sigstore and cosign 3's bundles (issue 13), with trust material and bundles ferry did
//! not make: the Python generator (tests/sigstore/gen.py) makes a Fulcio-like CA, a CT log key,
//! a Rekor key, certificates and v0.3 bundles, and pushes them as OCI 1.1 referrers; the bundles
//! ferry reads are checked again by sigstore-python, an implementation no one here wrote.

mod support;

use std::path::{Path, PathBuf};

use support::registry::Registry;
use support::sigstore::{Keyless, bundle_of_sigfile, bundle_sigfile, keygen, keyless, sgen};
use support::*;

const IDENTITY: &str = "registry.example/ns/app:v1";
const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// A `dir:` image whose only signature is `bundle` (in containers/image's file form).
fn dir_with_bundle(t: &Path, name: &str, digest_of: &str, bundle: &Path) -> PathBuf {
    let src = t.join("img");
    let dir = t.join(name);
    if !dir.exists() {
        copy_dir(&src, &dir);
    }
    let _ = digest_of;
    std::fs::write(
        dir.join("signature-1"),
        bundle_sigfile(&std::fs::read(bundle).unwrap()),
    )
    .unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with("signature-") {
            continue;
        }
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn policy_file(t: &Path, name: &str, json: &str) -> PathBuf {
    let p = t.join(name);
    std::fs::write(&p, json).unwrap();
    p
}

/// Everything a command printed.
fn said(r: &Run) -> String {
    format!("{}{}", r.stdout, r.stderr)
}

/// `ferry policy check` of a `dir:` image under `policy`.
fn check_dir(policy: &Path, dir: &Path) -> Run {
    ferry(&[
        "policy",
        "check",
        "--policy",
        policy.to_str().unwrap(),
        &format!("dir:{}", dir.display()),
    ])
}

#[test]
fn keyless_bundles_are_accepted_and_each_defect_is_rejected_with_its_reason() {
    let t = tempfile::tempdir().unwrap();
    let k = keyless(&t.path().join("trust"));
    let digest = dir_image(&t.path().join("img"), 71, 20_000);
    let identity = format!(r#"{{"type":"exactReference","dockerReference":"{IDENTITY}"}}"#);
    let policy = policy_file(
        t.path(),
        "policy.json",
        &format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"dir":{{"":[{}]}}}}}}"#,
            k.requirement(Some(&identity))
        ),
    );
    let named = ["--dsse", "--subject-name", IDENTITY];

    // Valid: a DSSE statement naming the image, and a message signature over its digest.
    let good = k.bundle(&digest, "good", &named);
    let out = check_dir(&policy, &dir_with_bundle(t.path(), "good", &digest, &good)).ok();
    assert!(
        out.stdout.contains(support::sigstore::SIGNER),
        "{}",
        out.stdout
    );
    // sigstore-python agrees, through its API and through its own command line.
    let py = k.sigstore_python(&good, &digest);
    assert_eq!(py.code, 0, "sigstore-python: {}{}", py.stdout, py.stderr);
    let cli = k.sigstore_cli(&good, &digest);
    assert_eq!(
        cli.code, 0,
        "sigstore verify identity: {}{}",
        cli.stdout, cli.stderr
    );

    // A message signature names no image: it proves the digest only, and cannot meet an
    // exactReference identity.
    let msg = k.bundle(&digest, "msg", &["--message-signature"]);
    let out = check_dir(&policy, &dir_with_bundle(t.path(), "msg", &digest, &msg)).code(1);
    assert!(
        said(&out).contains("names no image") && said(&out).contains("sigstore-bundle-identity"),
        "{}",
        said(&out)
    );
    let py = k.sigstore_python(&msg, &digest);
    assert_eq!(py.code, 0, "sigstore-python: {}{}", py.stdout, py.stderr);

    // Each defect: the generator's switch (or the certificate), the reason ferry must give, and
    // whether sigstore-python, which checks the same things, also rejects it.
    let wrong_email = k.cert(
        "wrong-email",
        &[
            "--email",
            "other@example.com",
            "--issuer",
            support::sigstore::ISSUER,
        ],
    );
    let wrong_issuer = k.cert(
        "wrong-issuer",
        &[
            "--email",
            support::sigstore::SIGNER,
            "--issuer",
            "https://other.example.com",
        ],
    );
    let other = keyless(&t.path().join("other-ca"));
    let now = chrono::Utc::now().timestamp();
    let later = (now + 3600).to_string();
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "wrong email",
            k.bundle_by(&wrong_email, &digest, "wrong-email", &named),
            r#"Required email "signer@example.com" not found (got ["other@example.com"])"#,
        ),
        (
            "wrong issuer",
            k.bundle_by(&wrong_issuer, &digest, "wrong-issuer", &named),
            r#"Unexpected Fulcio OIDC issuer "https://other.example.com""#,
        ),
        (
            // Logged by the trusted Rekor, but certified by another CA.
            "another CA",
            k.bundle_by(&other.leaf, &digest, "other-ca", &named),
            "x509: certificate signed by unknown authority",
        ),
        (
            "expired at signing time",
            k.bundle(
                &digest,
                "expired",
                &[&named[..], &["--integrated-time", &later]].concat(),
            ),
            "was not valid when the log integrated the signature",
        ),
        (
            "SET for another payload",
            k.bundle(
                &digest,
                "set-other",
                &[&named[..], &["--set-for-other-body"]].concat(),
            ),
            "does not verify with the Rekor key",
        ),
        (
            "missing SET",
            k.bundle(&digest, "no-set", &[&named[..], &["--no-set"]].concat()),
            "no inclusion promise (Rekor SET)",
        ),
        (
            "tampered payload",
            k.bundle(
                &digest,
                "tampered",
                &[&named[..], &["--tamper-payload"]].concat(),
            ),
            // The logged entry is checked before the signature: it names what it recorded.
            "the log entry does not record this bundle: it records payload hash sha256:",
        ),
        (
            "tampered signature",
            k.bundle(
                &digest,
                "tampered-sig",
                &[&named[..], &["--tamper-signature"]].concat(),
            ),
            "the log entry does not record this bundle: it records another signature",
        ),
        (
            "bad inclusion proof",
            k.bundle(
                &digest,
                "bad-proof",
                &[&named[..], &["--bad-inclusion-proof"]].concat(),
            ),
            "inclusion proof: the audit path leads to root",
        ),
        (
            "another image",
            k.bundle(
                &format!("sha256:{}", "ab".repeat(32)),
                "other-image",
                &named,
            ),
            "do not include the image's manifest digest",
        ),
    ];
    for (what, bundle, reason) in &cases {
        let dir = dir_with_bundle(
            t.path(),
            &format!("case-{}", what.replace(' ', "-")),
            &digest,
            bundle,
        );
        let out = check_dir(&policy, &dir).code(1);
        assert!(
            said(&out).contains("signature-1") && said(&out).contains(reason),
            "{what}: want {reason:?} in\n{}",
            said(&out)
        );
        let py = k.sigstore_python(bundle, &digest);
        assert_eq!(
            py.code, 1,
            "{what}: sigstore-python accepted it: {}{}",
            py.stdout, py.stderr
        );
        // The command line, as a user would run it, on a sample of the defects (each run
        // starts a Python with sigstore's imports, about a second).
        if ["wrong email", "another CA", "tampered signature"].contains(what) {
            let cli = k.sigstore_cli(bundle, &digest);
            assert_eq!(
                cli.code, 1,
                "{what}: sigstore verify identity accepted it: {}{}",
                cli.stdout, cli.stderr
            );
        }
    }
}

#[test]
fn keyed_bundles_verify_with_the_policy_keys() {
    // sigstore-python has no verification of bundles by public key (it rejects a bundle whose
    // material is not a certificate), so these are checked by ferry only.
    let t = tempfile::tempdir().unwrap();
    let key = keygen(t.path(), "cosign", "ecdsa-p256");
    let other = keygen(t.path(), "other", "ecdsa-p256");
    let digest = dir_image(&t.path().join("img"), 72, 20_000);
    let bundle = |name: &str, key: &support::sigstore::GenKey, extra: &[&str]| {
        let out = t.path().join(format!("{name}.json"));
        let mut a = vec![
            "bundle",
            "--digest",
            &digest,
            "--key",
            key.plain.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        sgen(&a).ok();
        out
    };
    let policy = policy_file(
        t.path(),
        "policy.json",
        &format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"dir":{{"":[{{"type":"sigstoreSigned","keyPath":"{}","signedIdentity":{{"type":"exactReference","dockerReference":"{IDENTITY}"}}}}]}}}}}}"#,
            key.public.display()
        ),
    );
    let ok = bundle("ok", &key, &["--dsse", "--subject-name", IDENTITY]);
    check_dir(&policy, &dir_with_bundle(t.path(), "ok", &digest, &ok)).ok();
    let by_other = bundle("other", &other, &["--dsse", "--subject-name", IDENTITY]);
    let out = check_dir(
        &policy,
        &dir_with_bundle(t.path(), "by-other", &digest, &by_other),
    )
    .code(1);
    assert!(
        said(&out).contains("signature verification failed"),
        "{}",
        said(&out)
    );
    // An attestation (another predicate) is not a signature: it is skipped and counted.
    let att = bundle(
        "att",
        &key,
        &[
            "--dsse",
            "--subject-name",
            IDENTITY,
            "--predicate-type",
            "https://slsa.dev/provenance/v1",
        ],
    );
    let out = check_dir(&policy, &dir_with_bundle(t.path(), "att", &digest, &att)).code(1);
    assert!(
        said(&out).contains("1 sigstore non-signature attachments"),
        "{}",
        said(&out)
    );
}

/// A registry with `ns/app:v1` and, attached as OCI 1.1 referrers pushed by the generator in
/// cosign 3's layout: a keyless signature bundle (naming no image, as cosign 3 signs), an
/// attestation bundle and an SBOM (cosign 2's `.att` and `.sbom` tags are added by the test
/// that carries them).
struct Attached {
    t: tempfile::TempDir,
    k: Keyless,
    reg: Registry,
    digest: String,
    signature: String,
    attestation: String,
    sbom: String,
    /// registries.d: referrers read, bundles taken as claiming the image they are attached to.
    regd: PathBuf,
    /// The keyless requirement for docker:, anything for the other transports.
    policy: PathBuf,
}

fn push_referrer(
    host: &str,
    digest: &str,
    file: &Path,
    artifact_type: &str,
    extra: &[&str],
) -> String {
    let mut a = vec![
        "push-referrer",
        "--registry",
        host,
        "--repo",
        "ns/app",
        "--subject-digest",
        digest,
        "--file",
        file.to_str().unwrap(),
        "--artifact-type",
        artifact_type,
        "--created",
        "2026-01-02T03:04:05Z",
    ];
    a.extend_from_slice(extra);
    sgen(&a).ok().stdout.trim().to_string()
}

/// The referrers index of `host/ns/app@digest` as the generator reads it (API, else the
/// fallback tag): the digests it lists.
fn referrers_at(host: &str, repo: &str, digest: &str) -> Vec<String> {
    let out = sgen(&[
        "list-referrers",
        "--registry",
        host,
        "--repo",
        repo,
        "--subject-digest",
        digest,
    ])
    .ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let mut d: Vec<String> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    d.sort();
    d
}

/// A manifest's bytes, fetched from the registry directly.
fn manifest_at(host: &str, repo: &str, reference: &str) -> Vec<u8> {
    let out = run(std::process::Command::new("python3").args([
        "-c",
        &format!(
            "import sys,urllib.request as u\nr=u.Request('http://{host}/v2/{repo}/manifests/{reference}',headers={{'Accept':'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json'}})\nsys.stdout.buffer.write(u.urlopen(r).read())"
        ),
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout.into_bytes()
}

fn attached_world() -> Attached {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let k = keyless(&t.path().join("trust"));
    let lax = insecure_policy(t.path());
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 73, 2, 40_000);
    ferry(&[
        "copy",
        "-q",
        "--policy",
        lax.to_str().unwrap(),
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/ns/app:v1", reg.host()),
    ])
    .ok();
    let digest = image.digest;
    let sig_bundle = k.bundle(&digest, "sig", &["--dsse"]);
    let att_bundle = k.bundle(
        &digest,
        "att",
        &[
            "--dsse",
            "--predicate-type",
            "https://slsa.dev/provenance/v1",
        ],
    );
    let sbom = t.path().join("sbom.spdx.json");
    std::fs::write(&sbom, br#"{"spdxVersion":"SPDX-2.3","name":"app"}"#).unwrap();
    let host = reg.host();
    let signature = push_referrer(
        &host,
        &digest,
        &sig_bundle,
        BUNDLE_TYPE,
        &["--predicate-type", SIGN_PREDICATE],
    );
    let attestation = push_referrer(
        &host,
        &digest,
        &att_bundle,
        BUNDLE_TYPE,
        &["--predicate-type", "https://slsa.dev/provenance/v1"],
    );
    let sbom_digest = push_referrer(&host, &digest, &sbom, "application/spdx+json", &[]);
    let regd = t.path().join("registries.d");
    std::fs::create_dir_all(&regd).unwrap();
    std::fs::write(
        regd.join("ferry.yaml"),
        "default-docker:\n  use-sigstore-referrers: true\n  sigstore-bundle-identity: attached-image\n",
    )
    .unwrap();
    let policy = policy_file(
        t.path(),
        "policy.json",
        &format!(
            r#"{{"default":[{{"type":"insecureAcceptAnything"}}],"transports":{{"docker":{{"":[{}]}}}}}}"#,
            k.requirement(None)
        ),
    );
    Attached {
        t,
        k,
        reg,
        digest,
        signature,
        attestation,
        sbom: sbom_digest,
        regd,
        policy,
    }
}

impl Attached {
    fn ferry(&self, args: &[&str]) -> Run {
        let mut a = args.to_vec();
        a.extend([
            "--policy",
            self.policy.to_str().unwrap(),
            "--registries.d",
            self.regd.to_str().unwrap(),
        ]);
        ferry(&a)
    }

    fn copy(&self, extra: &[&str], src: &str, dst: &str) -> Run {
        let mut a = vec![
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ];
        a.extend_from_slice(extra);
        a.extend([src, dst]);
        self.ferry(&a)
    }

    fn all(&self) -> Vec<String> {
        let mut v = vec![
            self.signature.clone(),
            self.attestation.clone(),
            self.sbom.clone(),
        ];
        v.sort();
        v
    }
}

#[test]
fn referrers_through_the_fallback_tag_are_verified_and_copied_byte_for_byte() {
    let w = attached_world();
    let host = w.reg.host();
    let image = format!("docker://{host}/ns/app:v1");
    // The registry (distribution 2.8) has no referrers API: the generator used the fallback tag.
    assert_eq!(referrers_at(&host, "ns/app", &w.digest), w.all());

    // Read through the fallback tag and accepted: the keyless bundle signs the digest, and
    // registries.d takes it as claiming the image it is attached to.
    let out = w
        .ferry(&["policy", "check", "--tls-verify=false", &image])
        .ok();
    assert!(
        said(&out).contains("referrers fallback tag"),
        "{}",
        said(&out)
    );
    assert!(
        said(&out).contains(support::sigstore::SIGNER),
        "{}",
        said(&out)
    );
    // Without that setting, the bundle claims no image and the rejection says what to do.
    let strict = w.t.path().join("strict.d");
    std::fs::create_dir_all(&strict).unwrap();
    std::fs::write(
        strict.join("f.yaml"),
        "default-docker:\n  use-sigstore-referrers: true\n",
    )
    .unwrap();
    let out = ferry(&[
        "policy",
        "check",
        "--tls-verify=false",
        "--policy",
        w.policy.to_str().unwrap(),
        "--registries.d",
        strict.to_str().unwrap(),
        &image,
    ])
    .code(1);
    assert!(
        said(&out).contains("names no image")
            && said(&out).contains("sigstore-bundle-identity: attached-image"),
        "{}",
        said(&out)
    );
    // Referrers are not read unless registries.d says so (or --referrers all): then the
    // signature is not found, and where ferry did not look is said.
    let off = w.t.path().join("off.d");
    std::fs::create_dir_all(&off).unwrap();
    let out = ferry(&[
        "policy",
        "check",
        "--tls-verify=false",
        "--policy",
        w.policy.to_str().unwrap(),
        "--registries.d",
        off.to_str().unwrap(),
        &image,
    ])
    .code(1);
    assert!(
        said(&out).contains("use-sigstore-referrers is not enabled"),
        "{}",
        said(&out)
    );

    // --referrers all: everything attached goes to a second registry, as the same bytes.
    let reg2 = Registry::start();
    let host2 = reg2.host();
    w.copy(
        &["--referrers", "all"],
        &image,
        &format!("docker://{host2}/ns/app:v1"),
    )
    .ok();
    assert_eq!(referrers_at(&host2, "ns/app", &w.digest), w.all());
    for d in w.all() {
        assert_eq!(
            manifest_at(&host, "ns/app", &d),
            manifest_at(&host2, "ns/app", &d),
            "{d}"
        );
    }
    // The copy is verified there too.
    w.ferry(&[
        "policy",
        "check",
        "--tls-verify=false",
        &format!("docker://{host2}/ns/app:v1"),
    ])
    .ok();

    // And back again, to another repository of the first registry: byte-identical referrer
    // manifests after the round trip.
    w.copy(
        &["--referrers", "all"],
        &format!("docker://{host2}/ns/app:v1"),
        &format!("docker://{host}/ns/back:v1"),
    )
    .ok();
    assert_eq!(referrers_at(&host, "ns/back", &w.digest), w.all());
    for d in w.all() {
        assert_eq!(
            manifest_at(&host, "ns/app", &d),
            manifest_at(&host, "ns/back", &d),
            "{d}"
        );
    }

    // The default (--referrers signatures) carries the signature only.
    w.copy(&[], &image, &format!("docker://{host2}/ns/sig-only:v1"))
        .ok();
    assert_eq!(
        referrers_at(&host2, "ns/sig-only", &w.digest),
        vec![w.signature.clone()]
    );
    // --referrers none reads none, so the policy finds no signature.
    let out = w
        .copy(
            &["--referrers", "none"],
            &image,
            &format!("docker://{host2}/ns/none:v1"),
        )
        .code(1);
    assert!(
        said(&out).contains("REJECTED") || said(&out).contains("rejected"),
        "{}",
        said(&out)
    );

    // An OCI layout keeps them all, and gives them back.
    let layout = w.t.path().join("layout");
    w.copy(
        &["--referrers", "all"],
        &image,
        &format!("oci:{}:v1", layout.display()),
    )
    .ok();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut in_layout: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m.get("artifactType").is_some())
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    in_layout.sort();
    assert_eq!(in_layout, w.all());
    let reg3 = Registry::start();
    w.copy(
        &["--referrers", "all"],
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{}/ns/app:v1", reg3.host()),
    )
    .ok();
    assert_eq!(referrers_at(&reg3.host(), "ns/app", &w.digest), w.all());
    for d in w.all() {
        assert_eq!(
            manifest_at(&host, "ns/app", &d),
            manifest_at(&reg3.host(), "ns/app", &d),
            "{d}"
        );
    }

    // A dir: destination has no place for attestations and SBOMs: copy-all refuses to lose
    // them, and says what to do.
    let dir = w.t.path().join("dir");
    let out = w
        .copy(
            &["--referrers", "all"],
            &image,
            &format!("dir:{}", dir.display()),
        )
        .code(3);
    assert!(
        said(&out).contains("cannot keep what is attached")
            && said(&out).contains("--referrers signatures"),
        "{}",
        said(&out)
    );
    assert!(!dir.join("manifest.json").exists());
    // The signature alone fits, as a signature file; sigstore-python accepts the bundle ferry
    // kept there.
    w.copy(&[], &image, &format!("dir:{}", dir.display())).ok();
    let kept = bundle_of_sigfile(&std::fs::read(dir.join("signature-1")).unwrap());
    let file = w.t.path().join("kept.json");
    std::fs::write(&file, &kept).unwrap();
    let py = w.k.sigstore_python(&file, &w.digest);
    assert_eq!(py.code, 0, "sigstore-python: {}{}", py.stdout, py.stderr);
}

#[test]
fn the_store_keeps_what_is_attached_and_the_forensic_view_names_the_signer() {
    let w = attached_world();
    let host = w.reg.host();
    let image = format!("docker://{host}/ns/app:v1");
    let store = w.t.path().join("store");
    let s = store.to_str().unwrap();
    w.copy(
        &["--referrers", "all", "--store", s],
        &image,
        "store:example.com/app:v1",
    )
    .ok();
    let out = ferry(&[
        "signatures",
        "list",
        "--store",
        s,
        "store:example.com/app:v1",
    ])
    .ok();
    let text = said(&out);
    assert!(text.contains(support::sigstore::SIGNER), "{text}");
    assert!(text.contains(support::sigstore::ISSUER), "{text}");
    assert!(text.contains("rekor:     entry 7 at "), "{text}");
    let json = ferry(&[
        "signatures",
        "list",
        "--store",
        s,
        "--format",
        "json",
        "store:example.com/app:v1",
    ])
    .ok();
    assert!(
        json.stdout.contains("rekor_integrated_time"),
        "{}",
        json.stdout
    );
    // The store gives everything back, as the same bytes.
    let reg2 = Registry::start();
    w.copy(
        &["--referrers", "all", "--store", s],
        "store:example.com/app:v1",
        &format!("docker://{}/ns/app:v1", reg2.host()),
    )
    .ok();
    assert_eq!(referrers_at(&reg2.host(), "ns/app", &w.digest), w.all());
    // Judged again from the store, under the policy for the name it was pulled as.
    ferry(&[
        "signatures",
        "verify",
        "--store",
        s,
        "--policy",
        w.policy.to_str().unwrap(),
        "--registries.d",
        w.regd.to_str().unwrap(),
        "store:example.com/app:v1",
    ])
    .ok();
    // A prune keeps what is attached to a named image; after the name is removed with its
    // evidence, a prune takes the attached artifacts too.
    let blob = |d: &str| store.join("blobs/sha256").join(&d["sha256:".len()..]);
    ferry(&["store", "prune", "--store", s]).ok();
    for d in w.all() {
        assert!(blob(&d).exists(), "{d} pruned while its image is named");
    }
    let reg3 = Registry::start();
    w.copy(
        &["--referrers", "all", "--store", s],
        "store:example.com/app:v1",
        &format!("docker://{}/ns/app:v1", reg3.host()),
    )
    .ok();
    assert_eq!(referrers_at(&reg3.host(), "ns/app", &w.digest), w.all());
    ferry(&[
        "store",
        "rm",
        "--store",
        s,
        "--purge-evidence",
        "example.com/app:v1",
    ])
    .ok();
    ferry(&["store", "prune", "--store", s]).ok();
    for d in w.all() {
        assert!(
            !blob(&d).exists(),
            "{d} kept after its image and evidence were removed"
        );
    }
}

#[test]
fn a_registry_with_the_referrers_api_is_read_and_written_through_it() {
    let w = attached_world();
    // Two registries behind proxies that implement the referrers API.
    let a = Registry::start();
    let pa = support::referrers::ReferrersRegistry::start(&a.host());
    let b = Registry::start();
    let pb = support::referrers::ReferrersRegistry::start(&b.host());
    let image = format!("docker://{}/ns/app:v1", pa.host());
    // The image alone (--referrers none), then a signature pushed through the API only (no
    // fallback tag anywhere).
    let lax = insecure_policy(w.t.path());
    ferry(&[
        "copy",
        "-q",
        "--policy",
        lax.to_str().unwrap(),
        "--referrers",
        "none",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}/ns/app:v1", w.reg.host()),
        &image,
    ])
    .ok();
    assert!(pa.referrers("ns/app", &w.digest).is_empty());
    let bundle = w.k.bundle(&w.digest, "api-sig", &["--dsse"]);
    let sig = push_referrer(
        &pa.host(),
        &w.digest,
        &bundle,
        BUNDLE_TYPE,
        &["--predicate-type", SIGN_PREDICATE, "--no-fallback-tag"],
    );
    // An attestation and an SBOM through the API too, the way cosign 3 attaches them.
    let att_bundle = w.k.bundle(
        &w.digest,
        "api-att",
        &[
            "--dsse",
            "--predicate-type",
            "https://slsa.dev/provenance/v1",
        ],
    );
    let att = push_referrer(
        &pa.host(),
        &w.digest,
        &att_bundle,
        BUNDLE_TYPE,
        &[
            "--predicate-type",
            "https://slsa.dev/provenance/v1",
            "--no-fallback-tag",
        ],
    );
    let sbom_file = w.t.path().join("api-sbom.spdx.json");
    std::fs::write(&sbom_file, br#"{"spdxVersion":"SPDX-2.3","name":"api"}"#).unwrap();
    let sbom = push_referrer(
        &pa.host(),
        &w.digest,
        &sbom_file,
        "application/spdx+json",
        &["--no-fallback-tag"],
    );
    let mut attached = vec![sig.clone(), att.clone(), sbom.clone()];
    attached.sort();
    assert_eq!(pa.referrers("ns/app", &w.digest), attached);
    let out = w
        .ferry(&["policy", "check", "--tls-verify=false", &image])
        .ok();
    assert!(said(&out).contains("OCI referrers API"), "{}", said(&out));
    // Copied to the other API registry: its answer (OCI-Subject) means no fallback tag is made.
    w.copy(
        &["--referrers", "all"],
        &image,
        &format!("docker://{}/ns/app:v1", pb.host()),
    )
    .ok();
    assert_eq!(pb.referrers("ns/app", &w.digest), attached);
    for d in &attached {
        assert_eq!(
            manifest_at(&a.host(), "ns/app", d),
            manifest_at(&b.host(), "ns/app", d),
            "{d} byte for byte"
        );
    }
    // Read through the API into an OCI layout: all three land in its index.json.
    let layout = w.t.path().join("api-layout");
    w.copy(
        &["--referrers", "all"],
        &image,
        &format!("oci:{}:v1", layout.display()),
    )
    .ok();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut in_layout: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m.get("artifactType").is_some())
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    in_layout.sort();
    assert_eq!(in_layout, attached);
    // The default (--referrers signatures) reads the API too, and takes the signature only.
    let c = Registry::start();
    let pc = support::referrers::ReferrersRegistry::start(&c.host());
    w.copy(&[], &image, &format!("docker://{}/ns/app:v1", pc.host()))
        .ok();
    assert_eq!(pc.referrers("ns/app", &w.digest), vec![sig.clone()]);
    let tags = run(std::process::Command::new("python3").args([
        "-c",
        &format!("import urllib.request as u;print(u.urlopen('http://{}/v2/ns/app/tags/list').read().decode())", b.host()),
    ]));
    assert!(!tags.stdout.contains("sha256-"), "{}", tags.stdout);
    assert_eq!(
        manifest_at(&a.host(), "ns/app", &sig),
        manifest_at(&b.host(), "ns/app", &sig)
    );
    w.ferry(&[
        "policy",
        "check",
        "--tls-verify=false",
        &format!("docker://{}/ns/app:v1", pb.host()),
    ])
    .ok();
}

#[test]
fn sync_carries_what_is_attached_too() {
    let w = attached_world();
    let reg2 = Registry::start();
    let (from, to) = (
        format!("{}/ns/app:v1", w.reg.host()),
        format!("{}/mirror", reg2.host()),
    );
    let sync = || {
        w.ferry(&[
            "sync",
            "--src",
            "docker",
            "--dest",
            "docker",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--referrers",
            "all",
            &from,
            &to,
        ])
    };
    let out = sync().ok();
    assert_eq!(
        referrers_at(&reg2.host(), "mirror/app", &w.digest),
        w.all(),
        "{}",
        said(&out)
    );
    // A re-run finds the signature bundle among the destination's referrers: up to date.
    let again = sync().ok();
    assert!(
        again.stderr.contains("1 image: 0 copied, 1 skipped"),
        "{}",
        said(&again)
    );
}

#[test]
fn an_unreadable_referrer_is_an_unreadable_signature_under_the_modes() {
    let w = attached_world();
    // A second signature bundle, whose manifest the registry then fails to serve.
    let second = w.k.bundle(&w.digest, "second", &["--dsse"]);
    let broken = push_referrer(
        &w.reg.host(),
        &w.digest,
        &second,
        BUNDLE_TYPE,
        &[
            "--predicate-type",
            SIGN_PREDICATE,
            "--created",
            "2026-02-02T00:00:00Z",
        ],
    );
    let proxy = support::http::HttpServer::start(
        std::sync::Arc::new(|_: &support::http::Request| support::http::Reply::forward()),
        Some(w.reg.host()),
    );
    proxy.set_route(
        &format!("/v2/ns/app/manifests/{broken}"),
        support::http::Reply::status(500),
    );
    let image = format!("docker://{}/ns/app:v1", proxy.host());
    let reg2 = Registry::start();
    let dst = format!("docker://{}/ns/app:v1", reg2.host());
    // copy-all: every signature or none; the failing referrer is named.
    let out = w.copy(&[], &image, &dst).code(1);
    assert!(
        said(&out).contains(&broken) && said(&out).contains("500"),
        "{}",
        said(&out)
    );
    // sufficient-subset: the readable bundle satisfies the policy; the copy warns and carries it.
    let out = w
        .copy(&["--signatures", "sufficient-subset"], &image, &dst)
        .ok();
    assert!(said(&out).contains(&broken), "{}", said(&out));
    assert_eq!(
        referrers_at(&reg2.host(), "ns/app", &w.digest),
        vec![w.signature.clone()]
    );
}

/// Issue 25: whether an unreadable attached artifact (not a signature: an SBOM) stops a copy is the gate's decision, so
/// `policy check`, `sync --dry-run` and copy agree, and copy-all's refusal is a rejection (exit 1,
/// "not trusted as it is"), not a failure to read (exit 3).
#[test]
fn an_unreadable_sbom_is_refused_by_the_gate_in_copy_all_and_a_warning_elsewhere() {
    let w = attached_world();
    let proxy = support::http::HttpServer::start(
        std::sync::Arc::new(|_: &support::http::Request| support::http::Reply::forward()),
        Some(w.reg.host()),
    );
    proxy.set_route(
        &format!("/v2/ns/app/manifests/{}", w.sbom),
        support::http::Reply::status(500),
    );
    let image = format!("docker://{}/ns/app:v1", proxy.host());
    let reg2 = Registry::start();
    let dst = format!("docker://{}/ns/app:v1", reg2.host());

    let out = w.copy(&["--referrers", "all"], &image, &dst).code(1);
    let text = said(&out);
    assert!(
        text.contains(&w.sbom)
            && text.contains("500")
            && text.contains("copies everything attached or nothing")
            && text.contains("--referrers signatures"),
        "{text}"
    );
    assert!(
        referrers_at(&reg2.host(), "ns/app", &w.digest).is_empty(),
        "a refused copy writes nothing"
    );
    let out = w
        .ferry(&[
            "policy",
            "check",
            "--tls-verify=false",
            "--referrers",
            "all",
            &image,
        ])
        .code(1);
    assert!(
        out.stdout.contains("REFUSED")
            && out
                .stdout
                .contains("attached artifact(s) could not be read"),
        "{}",
        said(&out)
    );
    let out = w
        .ferry(&[
            "policy",
            "check",
            "--tls-verify=false",
            "--referrers",
            "all",
            "--signatures",
            "sufficient-subset",
            &image,
        ])
        .ok();
    assert!(
        out.stdout.contains("ADMITTED") && out.stdout.contains(&w.sbom),
        "{}",
        said(&out)
    );
    let yaml = w.t.path().join("sync.yaml");
    std::fs::write(
        &yaml,
        format!(
            "{}:\n  tls-verify: false\n  images:\n    ns/app: [v1]\n",
            proxy.host()
        ),
    )
    .unwrap();
    let out = w
        .ferry(&[
            "sync",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--dest-tls-verify=false",
            "--referrers",
            "all",
            "--dry-run",
            yaml.to_str().unwrap(),
            &format!("{}/m", reg2.host()),
        ])
        .code(1);
    assert!(said(&out).contains("could not be read"), "{}", said(&out));

    // The other modes copy the image and what could be read, and warn about the rest.
    let out = w
        .copy(
            &["--referrers", "all", "--signatures", "sufficient-subset"],
            &image,
            &dst,
        )
        .ok();
    assert!(
        said(&out).contains(&w.sbom) && said(&out).contains("copied without it"),
        "{}",
        said(&out)
    );
    let mut copied = referrers_at(&reg2.host(), "ns/app", &w.digest);
    copied.sort();
    let mut want = vec![w.signature.clone(), w.attestation.clone()];
    want.sort();
    assert_eq!(copied, want);
}

#[test]
fn cosign_att_and_sbom_tags_travel_with_referrers_all() {
    // cosign 2 attaches attestations and SBOMs under tags, `sha256-HEX.att` and `.sbom`, beside
    // the `.sig` tag: `--referrers all` carries them as themselves; the default does not.
    let w = attached_world();
    let host = w.reg.host();
    let registry = format!("http://{host}");
    let envelope = w.t.path().join("envelope.json");
    let statement = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://slsa.dev/provenance/v1","subject":[{{"name":"app","digest":{{"sha256":"{}"}}}}],"predicate":{{}}}}"#,
        &w.digest["sha256:".len()..]
    );
    std::fs::write(
        &envelope,
        format!(
            r#"{{"payloadType":"application/vnd.in-toto+json","payload":"{}","signatures":[{{"keyid":"","sig":"AAAA"}}]}}"#,
            {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(statement)
            }
        ),
    )
    .unwrap();
    let sbom = w.t.path().join("cosign-sbom.spdx.json");
    std::fs::write(
        &sbom,
        br#"{"spdxVersion":"SPDX-2.3","name":"cosign 2 sbom"}"#,
    )
    .unwrap();
    for (flag, file) in [("--attestation", &envelope), ("--sbom", &sbom)] {
        sgen(&[
            "attach",
            "--registry",
            &registry,
            "--repo",
            "ns/app",
            "--digest",
            &w.digest,
            flag,
            file.to_str().unwrap(),
        ])
        .ok();
    }
    let hex = &w.digest["sha256:".len()..];
    let tags = [format!("sha256-{hex}.att"), format!("sha256-{hex}.sbom")];
    let image = format!("docker://{host}/ns/app:v1");

    let reg2 = Registry::start();
    let host2 = reg2.host();
    w.copy(
        &["--referrers", "all"],
        &image,
        &format!("docker://{host2}/ns/app:v1"),
    )
    .ok();
    for tag in &tags {
        assert_eq!(
            manifest_at(&host, "ns/app", tag),
            manifest_at(&host2, "ns/app", tag),
            "{tag}"
        );
    }
    // The referrers went too, so the tags are in addition, not instead.
    assert_eq!(referrers_at(&host2, "ns/app", &w.digest), w.all());

    // The default carries signatures only: neither tag is written.
    w.copy(&[], &image, &format!("docker://{host2}/ns/sig-only:v1"))
        .ok();
    let listed = ferry(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{host2}/ns/sig-only"),
    ])
    .ok()
    .stdout;
    assert!(
        listed.contains("v1") && !tags.iter().any(|t| listed.contains(t.as_str())),
        "{listed}"
    );

    // An OCI layout names them as cosign save does, and gives them back byte for byte.
    let layout = w.t.path().join("layout");
    w.copy(
        &["--referrers", "all"],
        &image,
        &format!("oci:{}:v1", layout.display()),
    )
    .ok();
    let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
    for tag in &tags {
        assert!(index.contains(tag.as_str()), "{tag} in {index}");
    }
    let reg3 = Registry::start();
    w.copy(
        &["--referrers", "all"],
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{}/ns/app:v1", reg3.host()),
    )
    .ok();
    for tag in &tags {
        assert_eq!(
            manifest_at(&host, "ns/app", tag),
            manifest_at(&reg3.host(), "ns/app", tag),
            "{tag}"
        );
    }
}
