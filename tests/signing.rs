//! Simple signing interop with real gpg and skopeo, and the signatures ferry must reject.

mod support;

use std::path::{Path, PathBuf};

use support::gpg::{Gpg, payload};
use support::*;

const IDENTITY: &str = "registry.ferry.test/app:1";

/// A dir: image; returns its directory and manifest digest.
fn dir_image(t: &Path, name: &str, seed: u64) -> (PathBuf, String) {
    let dir = t.join(name);
    let digest = support::dir_image(&dir, seed, 1000);
    (dir, digest)
}

fn signed_by_policy(t: &Path, key: &Path, identity: &str) -> PathBuf {
    let p = t.join(format!(
        "policy-{}.json",
        key.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(
        &p,
        format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"dir":{{"":[{{"type":"signedBy","keyType":"GPGKeys","keyPath":"{}","signedIdentity":{{"type":"exactReference","dockerReference":"{identity}"}}}}]}}}}}}"#,
            key.display()
        ),
    )
    .unwrap();
    p
}

fn check(policy: &Path, dir: &Path) -> (i32, serde_json::Value) {
    let r = ferry(&[
        "policy",
        "check",
        "--format",
        "json",
        "--policy",
        policy.to_str().unwrap(),
        &format!("dir:{}", dir.display()),
    ]);
    let v = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} {}", r.stdout, r.stderr));
    (r.code, v)
}

fn reasons(v: &serde_json::Value) -> String {
    v["verdict"]["slots"].to_string()
}

#[test]
fn skopeo_signatures_verify_in_ferry_and_ferry_signatures_verify_in_skopeo() {
    let t = tempfile::tempdir().unwrap();
    let gpg = Gpg::new();
    let key = gpg.gen_key("Release Key");
    let (dir, digest) = dir_image(t.path(), "img", 1);
    let manifest = dir.join("manifest.json");

    gpg.skopeo_sign(&manifest, IDENTITY, &key.fpr, &dir.join("signature-1"));
    let r = ferry(&[
        "standalone-verify",
        manifest.to_str().unwrap(),
        IDENTITY,
        &key.fpr,
        dir.join("signature-1").to_str().unwrap(),
        "--public-key-file",
        key.public.to_str().unwrap(),
    ])
    .ok();
    assert!(
        r.stdout.contains(&key.fpr) && r.stdout.contains(&digest),
        "{}",
        r.stdout
    );
    let (code, v) = check(&signed_by_policy(t.path(), &key.public, IDENTITY), &dir);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["verdict"]["slots"][0]["outcome"]["signer"]["user_id"],
        key.uid.as_str()
    );

    let ours = t.path().join("ferry-sig");
    ferry(&[
        "standalone-sign",
        manifest.to_str().unwrap(),
        IDENTITY,
        &key.fpr,
        "-o",
        ours.to_str().unwrap(),
        "--sign-key",
        key.secret.to_str().unwrap(),
    ])
    .ok();
    let bin = require_tool("skopeo", "skopeo");
    let r = run(std::process::Command::new(bin)
        .env("GNUPGHOME", gpg.home())
        .args([
            "standalone-verify",
            manifest.to_str().unwrap(),
            IDENTITY,
            &key.fpr,
            ours.to_str().unwrap(),
        ]))
    .ok();
    assert!(r.stdout.contains(&digest), "{}", r.stdout);

    // A wrong reference or fingerprint is refused by standalone-verify.
    ferry(&[
        "standalone-verify",
        manifest.to_str().unwrap(),
        "registry.ferry.test/other:1",
        &key.fpr,
        ours.to_str().unwrap(),
        "--public-key-file",
        key.public.to_str().unwrap(),
    ])
    .code(1);
    ferry(&[
        "standalone-verify",
        manifest.to_str().unwrap(),
        IDENTITY,
        "0000000000000000000000000000000000000000",
        ours.to_str().unwrap(),
        "--public-key-file",
        key.public.to_str().unwrap(),
    ])
    .code(1);
}

#[test]
fn rejected_signatures_say_why() {
    let t = tempfile::tempdir().unwrap();
    let gpg = Gpg::new();
    let trusted = gpg.gen_key("Trusted");
    let other = gpg.gen_key("Stranger");
    let policy = signed_by_policy(t.path(), &trusted.public, IDENTITY);
    let (dir, digest) = dir_image(t.path(), "img", 2);
    let manifest = dir.join("manifest.json");
    let sig = dir.join("signature-1");

    // Good first, so each case below changes one thing.
    gpg.skopeo_sign(&manifest, IDENTITY, &trusted.fpr, &sig);
    assert_eq!(check(&policy, &dir).0, 0);

    // Tampered payload.
    let mut bytes = std::fs::read(&sig).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x40;
    std::fs::write(&sig, &bytes).unwrap();
    let (code, v) = check(&policy, &dir);
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        v["verdict"]["slots"][0]["outcome"]["status"], "rejected",
        "{v}"
    );

    // A key the policy does not trust: named by fingerprint, with the trusted key file and user ID.
    gpg.skopeo_sign(&manifest, IDENTITY, &other.fpr, &sig);
    let (code, v) = check(&policy, &dir);
    assert_eq!(code, 1);
    let why = reasons(&v);
    assert!(
        why.contains(&other.fpr)
            && why.contains(trusted.public.to_str().unwrap())
            && why.contains("Trusted"),
        "{why}"
    );

    // A signature for another manifest.
    let (_, other_digest) = dir_image(t.path(), "other", 3);
    let foreign = t.path().join("foreign-sig");
    gpg.sign_payload(
        &payload(&other_digest, IDENTITY),
        &trusted.fpr,
        None,
        &foreign,
    );
    std::fs::copy(&foreign, &sig).unwrap();
    let (code, v) = check(&policy, &dir);
    assert_eq!(code, 1);
    assert!(
        reasons(&v).contains(&other_digest) && reasons(&v).contains("does not match"),
        "{}",
        reasons(&v)
    );

    // An identity the policy does not allow.
    gpg.skopeo_sign(&manifest, "registry.ferry.test/evil:1", &trusted.fpr, &sig);
    let (code, v) = check(&policy, &dir);
    assert_eq!(code, 1);
    assert!(
        reasons(&v).contains("registry.ferry.test/evil:1"),
        "{}",
        reasons(&v)
    );

    // An expired key: it signed while valid (2020), and has expired since.
    let expired = gpg.gen_expired_key("Expired");
    gpg.sign_payload(
        &payload(&digest, IDENTITY),
        &expired.fpr,
        Some("20200101T060000"),
        &sig,
    );
    let (code, v) = check(&signed_by_policy(t.path(), &expired.public, IDENTITY), &dir);
    assert_eq!(code, 1, "{v}");
    assert!(reasons(&v).contains("expired"), "{}", reasons(&v));

    // A revoked key.
    let revoked = gpg.gen_key("Revoked");
    gpg.skopeo_sign(&manifest, IDENTITY, &revoked.fpr, &sig);
    let revoked = gpg.revoke(&revoked);
    let (code, v) = check(&signed_by_policy(t.path(), &revoked.public, IDENTITY), &dir);
    assert_eq!(code, 1, "{v}");
    assert!(reasons(&v).contains("revoked"), "{}", reasons(&v));

    // Over the 4 MiB cap: unreadable, and nothing was read past the cap.
    let mut big = vec![0x90u8];
    big.resize(4 * 1024 * 1024 + 1, 0);
    std::fs::write(&sig, &big).unwrap();
    let (code, v) = check(&policy, &dir);
    assert_eq!(code, 1);
    assert_eq!(
        v["verdict"]["slots"][0]["outcome"]["status"], "unreadable",
        "{v}"
    );
    assert!(reasons(&v).contains("4 MiB"), "{}", reasons(&v));
}

#[test]
fn a_signing_subkey_counts_as_its_primary_key_as_upstream_containers_image_does() {
    let t = tempfile::tempdir().unwrap();
    let gpg = Gpg::new();
    let key = gpg.gen_key_with_signing_subkey("Subkey Signer");
    assert!(key.signing_subkey.is_some());
    let (dir, _) = dir_image(t.path(), "img", 4);
    gpg.skopeo_sign(
        &dir.join("manifest.json"),
        IDENTITY,
        &key.fpr,
        &dir.join("signature-1"),
    );
    let policy = signed_by_policy(t.path(), &key.public, IDENTITY);
    let (code, v) = check(&policy, &dir);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["verdict"]["slots"][0]["outcome"]["signer"]["fingerprint"],
        key.fpr.as_str()
    );
    assert_eq!(
        v["verdict"]["slots"][0]["outcome"]["signer"]["signing_key"],
        key.signing_subkey.as_deref().unwrap()
    );
    // Debian's skopeo 1.9.3 rejects this (podman issue 16406, fixed upstream in containers/image
    // PR 2905); ferry follows upstream. If this skopeo ever accepts it, the note can go.
    let r = skopeo(&[
        "copy",
        "--policy",
        policy.to_str().unwrap(),
        &format!("dir:{}", dir.display()),
        &format!("dir:{}", t.path().join("sk").display()),
    ]);
    assert_ne!(
        r.code, 0,
        "skopeo 1.9.3 was expected to reject subkey signatures: {}",
        r.stderr
    );
}
