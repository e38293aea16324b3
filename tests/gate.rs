//! One gate for every command: `policy check` answers what `copy` does, in the same signature
//! mode and per image of a list, and every command ends with the exit status that says what
//! happened (0 done or accepted, 1 rejected, 2 bad usage, 3 could not check).

mod support;

use std::path::{Path, PathBuf};

use support::*;

const IDENTITY: &str = "registry.ferry.test/app:1";

fn keys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/keys")
}

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/demo")
}

fn trusted_fpr() -> String {
    std::fs::read_to_string(keys().join("fingerprints.txt"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("trusted "))
        .unwrap()
        .trim()
        .to_string()
}

/// A policy accepting dir: images signed by the trusted test key for IDENTITY.
fn signed_by_policy(dir: &Path) -> PathBuf {
    let p = dir.join("signed-by.json");
    std::fs::write(
        &p,
        format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"dir":{{"":[{{"type":"signedBy","keyType":"GPGKeys","keyPath":"{}","signedIdentity":{{"type":"exactReference","dockerReference":"{IDENTITY}"}}}}]}}}}}}"#,
            keys().join("trusted.pub.asc").display()
        ),
    )
    .unwrap();
    p
}

/// A dir: list of three images in which only the amd64 one is signed (by the trusted key).
fn signed_list(t: &Path) -> (PathBuf, Vec<TestImage>) {
    let layout = t.join("layout");
    let (_, _, images) = make_oci_index(&layout, "multi", 7, &["amd64", "arm64/v8", "s390x"]);
    let list = t.join("list");
    ferry(&[
        "copy",
        "-q",
        "--all",
        "--policy",
        insecure_policy(t).to_str().unwrap(),
        &format!("oci:{}:multi", layout.display()),
        &format!("dir:{}", list.display()),
    ])
    .ok();
    let hex = &images[0].digest["sha256:".len()..];
    ferry(&[
        "standalone-sign",
        list.join(format!("{hex}.manifest.json")).to_str().unwrap(),
        IDENTITY,
        &trusted_fpr(),
        "--sign-key",
        keys().join("trusted.sec.asc").to_str().unwrap(),
        "-o",
        list.join(format!("{hex}.signature-1")).to_str().unwrap(),
    ])
    .ok();
    (list, images)
}

fn check(policy: &Path, image: &str, extra: &[&str]) -> Run {
    let mut a = vec!["policy", "check", "--policy", policy.to_str().unwrap()];
    a.extend_from_slice(extra);
    a.push(image);
    ferry(&a)
}

fn copy(policy: &Path, src: &str, dst: &Path, extra: &[&str]) -> Run {
    let mut a = vec!["copy", "-q", "--policy", policy.to_str().unwrap()];
    a.extend_from_slice(extra);
    let d = format!("dir:{}", dst.display());
    a.extend([src, d.as_str()]);
    ferry(&a)
}

#[test]
fn policy_check_answers_what_copy_does_per_image_of_a_list() {
    let t = tempfile::tempdir().unwrap();
    let policy = signed_by_policy(t.path());
    let (list, images) = signed_list(t.path());
    let src = format!("dir:{}", list.display());

    for (platform, admitted) in [
        ("linux/amd64", true),
        ("linux/arm64/v8", false),
        ("linux/s390x", false),
    ] {
        let want = if admitted { 0 } else { 1 };
        let c = check(&policy, &src, &["--platform", platform]).code(want);
        let out = t.path().join(format!("out-{}", platform.replace('/', "-")));
        copy(&policy, &src, &out, &["--platform", platform]).code(want);
        assert_eq!(out.exists(), admitted, "{platform}");
        assert!(
            c.stdout.contains(platform),
            "names the platform it judged: {}",
            c.stdout
        );
    }

    // --all: the list is refused because two of its images are; the check says which.
    let c = check(&policy, &src, &["--all", "--format", "json"]).code(1);
    let v: serde_json::Value = serde_json::from_str(&c.stdout).unwrap();
    assert_eq!(v["admitted"], false, "{v}");
    let manifests = v["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 4, "three images and the list: {v}");
    assert_eq!(manifests[0]["digest"], images[0].digest.as_str());
    assert_eq!(manifests[0]["verdict"]["accepted"], true, "{v}");
    assert_eq!(manifests[1]["verdict"]["accepted"], false, "{v}");
    assert!(manifests[3]["is_list"].as_bool().unwrap());
    assert!(
        manifests[3]["verdict"].is_null(),
        "a list is not judged itself: {v}"
    );
    copy(&policy, &src, &t.path().join("out-all"), &["--all"]).code(1);
    assert!(!t.path().join("out-all").exists());
}

#[test]
fn policy_check_refuses_unreadable_slots_in_copy_all_as_copy_does() {
    let t = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(demo().join("policy.json.in"))
        .unwrap()
        .replace("@DEMO@", demo().to_str().unwrap());
    let policy = t.path().join("demo.json");
    std::fs::write(&policy, text).unwrap();
    let src = format!("dir:{}", demo().join("hello-dir").display());

    // signature-2 is an HTML page: the default mode refuses it, in both commands.
    let c = check(&policy, &src, &[]).code(1);
    assert!(c.stdout.contains("REFUSED"), "{}", c.stdout);
    assert!(c.stdout.contains("could not be read"), "{}", c.stdout);
    assert!(c.stderr.contains("refused"), "{}", c.stderr);
    copy(&policy, &src, &t.path().join("a"), &[]).code(1);
    // sufficient-subset admits it in both.
    let c = check(&policy, &src, &["--signatures", "sufficient-subset"]).ok();
    assert!(c.stdout.contains("ADMITTED"), "{}", c.stdout);
    copy(
        &policy,
        &src,
        &t.path().join("b"),
        &["--signatures", "sufficient-subset"],
    )
    .ok();
    // Numbering is 1-based in the text and the JSON alike.
    let c = check(
        &policy,
        &src,
        &["--signatures", "sufficient-subset", "--format", "json"],
    )
    .ok();
    let v: serde_json::Value = serde_json::from_str(&c.stdout).unwrap();
    assert_eq!(v["verdict"]["requirements"][0]["index"], 1, "{v}");
    assert_eq!(v["verdict"]["slots"][0]["outcome"]["requirement"], 1, "{v}");
    let text = check(&policy, &src, &["--signatures", "sufficient-subset"]).stdout;
    assert!(text.contains("requirement 1 signedBy"), "{text}");
    assert!(text.contains("accepted by requirement 1"), "{text}");
}

#[test]
fn exit_status_tells_rejected_from_usage_from_failure() {
    let t = tempfile::tempdir().unwrap();
    let lax = insecure_policy(t.path());
    let reject = t.path().join("reject.json");
    std::fs::write(&reject, r#"{"default":[{"type":"reject"}]}"#).unwrap();
    let src = format!("dir:{}", demo().join("hello-dir").display());
    let out = t.path().join("out");

    // 0: done.
    copy(&lax, &src, &out, &["--remove-signatures"]).code(0);
    // 1: the policy rejected it, or the signatures did.
    let r = copy(
        &reject,
        &src,
        &t.path().join("o1"),
        &["--remove-signatures"],
    )
    .code(1);
    assert!(r.stderr.contains("rejected"), "{}", r.stderr);
    copy(&lax, &src, &t.path().join("o2"), &[]).code(1);
    check(&reject, &src, &["--remove-signatures"]).code(1);
    // 2: bad usage, caught before anything runs.
    for bad in [
        vec!["copy", "--no-such-flag", "dir:/a", "dir:/b"],
        vec!["copy", "ftp:/a", "dir:/b"],
        vec!["copy", "--signatures", "some", "dir:/a", "dir:/b"],
        vec!["policy", "check"],
        vec!["frobnicate"],
    ] {
        let r = ferry(&bad).code(2);
        assert!(!r.stderr.is_empty(), "{bad:?}: says why");
    }
    // 3: could not check or copy: unreachable registry, missing source, bad policy file.
    let r = copy(
        &lax,
        "docker://127.0.0.1:1/nothing:here",
        &t.path().join("o3"),
        &[],
    )
    .code(3);
    assert!(
        r.stderr.contains("connection refused") && !r.stderr.contains("tls-verify"),
        "a registry that is down is said to be down, with no TLS advice: {}",
        r.stderr
    );
    copy(
        &lax,
        &format!("dir:{}", t.path().join("missing").display()),
        &t.path().join("o4"),
        &[],
    )
    .code(3);
    let broken = t.path().join("broken.json");
    std::fs::write(&broken, "{").unwrap();
    copy(&broken, &src, &t.path().join("o5"), &[]).code(3);
    check(&lax, "docker://127.0.0.1:1/nothing:here", &[]).code(3);
    // --help says so, and names $CONTAINERS_POLICY_JSON.
    let h = ferry(&["--help"]).ok().stdout;
    let h = h.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        h.contains("1 rejected") && h.contains("2 bad usage") && h.contains("3 any other"),
        "{h}"
    );
    assert!(
        h.contains("CONTAINERS_POLICY_JSON")
            && h.contains("XDG_CONFIG_HOME/containers/policy.json"),
        "{h}"
    );
    let h = ferry(&["copy", "--help"]).ok().stdout;
    assert!(h.contains("Exit status"), "{h}");
}

#[test]
fn standalone_verify_refuses_a_signed_schema1_manifest_instead_of_hashing_its_raw_bytes() {
    let t = tempfile::tempdir().unwrap();
    let manifest = t.path().join("manifest.json");
    std::fs::write(
        &manifest,
        br#"{"schemaVersion":1,"name":"app","tag":"1","architecture":"amd64","fsLayers":[],"history":[],"signatures":[{"header":{"alg":"ES256"},"signature":"c2ln","protected":"cHJvdA"}]}"#,
    )
    .unwrap();
    let sig = t.path().join("sig");
    // ferry signs the raw bytes' digest, which is not the manifest's digest for containers/image.
    ferry(&[
        "standalone-sign",
        manifest.to_str().unwrap(),
        IDENTITY,
        &trusted_fpr(),
        "--sign-key",
        keys().join("trusted.sec.asc").to_str().unwrap(),
        "-o",
        sig.to_str().unwrap(),
    ])
    .ok();
    let r = ferry(&[
        "standalone-verify",
        manifest.to_str().unwrap(),
        IDENTITY,
        &trusted_fpr(),
        sig.to_str().unwrap(),
        "--public-key-file",
        keys().join("trusted.pub.asc").to_str().unwrap(),
    ])
    .code(1);
    assert!(r.stderr.contains("schema 1"), "{}", r.stderr);
}

#[test]
fn remap_identity_prefixes_are_validated_as_containers_image_does() {
    let t = tempfile::tempdir().unwrap();
    let src = format!("dir:{}", demo().join("hello-dir").display());
    for (prefix, valid) in [
        ("ns/shortname", true),
        ("example.com", true),
        ("my_host/app", false),
        ("example.com/app:1", false),
    ] {
        let p = t.path().join("remap.json");
        std::fs::write(
            &p,
            format!(
                r#"{{"default":[{{"type":"signedBy","keyType":"GPGKeys","keyPath":"/nonexistent","signedIdentity":{{"type":"remapIdentity","prefix":"{prefix}","signedPrefix":"example.org"}}}}]}}"#
            ),
        )
        .unwrap();
        let r = check(&p, &src, &["--remove-signatures"]);
        if valid {
            // Parsed; the image is then rejected (no key file), which is exit 1.
            assert_eq!(r.code, 1, "{prefix}: {}", r.stderr);
        } else {
            assert_eq!(r.code, 3, "{prefix}: {}", r.stderr);
            assert!(
                r.stderr
                    .contains(&format!("prefix \"{prefix}\" is not valid")),
                "{}",
                r.stderr
            );
        }
    }
}
