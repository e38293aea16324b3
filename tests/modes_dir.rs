//! The signature modes end to end through the CLI on the bundled failing-cache image
//! (testdata/demo/hello-dir: signature-1 by the trusted release key, signature-2 an HTML page,
//! signature-3 by a key the policy does not trust). The lookaside variants against a real
//! registry are in tests/modes_registry.rs.

mod support;

use std::path::{Path, PathBuf};

use support::*;

const IDENTITY: &str = "registry.demo.ferry.invalid/hello:1";
const TRUSTED: &str = "AFCA7DD98C6402B90C4D1806249DB7E4B7E11E5C";
const UNTRUSTED: &str = "0675D1CCC5510D4FFD82205C11EFC9A1592A2C6A";

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/demo")
}

/// The demo policy, for dir: images signed for IDENTITY by the release key.
fn policy(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(demo().join("policy.json.in"))
        .unwrap()
        .replace("@DEMO@", demo().to_str().unwrap());
    let p = dir.join("policy.json");
    std::fs::write(&p, text).unwrap();
    p
}

/// A copy of the demo image whose signature files are `slots` (names of the demo's files).
fn image_with(dir: &Path, slots: &[&str]) -> PathBuf {
    let src = demo().join("hello-dir");
    let out = dir.join(format!("img-{}", slots.join("-")));
    std::fs::create_dir_all(&out).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if !name.starts_with("signature-") {
            std::fs::copy(e.path(), out.join(&name)).unwrap();
        }
    }
    for (i, s) in slots.iter().enumerate() {
        std::fs::copy(src.join(s), out.join(format!("signature-{}", i + 1))).unwrap();
    }
    out
}

fn demo_sig(name: &str) -> Vec<u8> {
    std::fs::read(demo().join("hello-dir").join(name)).unwrap()
}

struct Case {
    t: tempfile::TempDir,
    policy: PathBuf,
    store: PathBuf,
}

impl Case {
    fn new() -> Case {
        let t = tempfile::tempdir().unwrap();
        let policy = policy(t.path());
        let store = t.path().join("store");
        Case { t, policy, store }
    }
    fn copy(&self, extra: &[&str], src: &Path, dst: &str) -> Run {
        let mut args = vec![
            "copy",
            "-q",
            "--policy",
            self.policy.to_str().unwrap(),
            "--store",
            self.store.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let src = format!("dir:{}", src.display());
        args.push(&src);
        args.push(dst);
        ferry(&args)
    }
}

#[test]
fn copy_all_fails_naming_the_unreadable_slot_and_writes_nothing() {
    let c = Case::new();
    let src = demo().join("hello-dir");
    let dst = c.t.path().join("out");
    let r = c.copy(&[], &src, &format!("dir:{}", dst.display())).code(1);
    assert!(r.stderr.contains("signature-2"), "{}", r.stderr);
    assert!(
        r.stderr.contains(src.join("signature-2").to_str().unwrap()),
        "names the location: {}",
        r.stderr
    );
    assert!(r.stderr.contains("0x3c"), "{}", r.stderr);
    assert!(
        r.stderr.contains("sufficient-subset"),
        "suggests the way out: {}",
        r.stderr
    );
    assert!(!dst.exists());
    c.copy(&[], &src, "store:example.com/x:1").code(1);
    assert!(
        !c.store.join("index.json").exists()
            || !std::fs::read_to_string(c.store.join("index.json"))
                .unwrap()
                .contains("example.com/x:1")
    );
}

#[test]
fn remove_signatures_copies_the_image_without_any() {
    let c = Case::new();
    let dst = c.t.path().join("out");
    c.copy(
        &["--remove-signatures"],
        &demo().join("hello-dir"),
        &format!("dir:{}", dst.display()),
    )
    .ok();
    assert!(dst.join("manifest.json").exists());
    assert!(!dst.join("signature-1").exists());
    // The policy still decides: an image with only the untrusted signature is refused.
    let untrusted = image_with(c.t.path(), &["signature-3"]);
    let dst2 = c.t.path().join("out2");
    let r = c
        .copy(
            &["--signatures", "remove-signatures"],
            &untrusted,
            &format!("dir:{}", dst2.display()),
        )
        .code(1);
    assert!(
        r.stderr.contains(UNTRUSTED) || r.stderr.contains(&UNTRUSTED[24..]),
        "{}",
        r.stderr
    );
    assert!(!dst2.exists());
}

#[test]
fn sufficient_subset_keeps_every_readable_signature_and_records_the_unreadable_one() {
    let c = Case::new();
    let src = demo().join("hello-dir");
    let report = c.t.path().join("report.json");
    let r = c
        .copy(
            &[
                "--signatures",
                "sufficient-subset",
                "--report",
                report.to_str().unwrap(),
            ],
            &src,
            &format!("store:{IDENTITY}"),
        )
        .ok();
    assert!(
        r.stderr.contains("warning")
            && r.stderr.contains("signature-2")
            && r.stderr.contains("0x3c"),
        "{}",
        r.stderr
    );

    // dir: too, byte for byte and in order.
    let dst = c.t.path().join("out");
    c.copy(
        &["--signatures", "sufficient-subset"],
        &src,
        &format!("dir:{}", dst.display()),
    )
    .ok();
    assert_eq!(
        std::fs::read(dst.join("signature-1")).unwrap(),
        demo_sig("signature-1")
    );
    assert_eq!(
        std::fs::read(dst.join("signature-2")).unwrap(),
        demo_sig("signature-3")
    );
    assert!(!dst.join("signature-3").exists());

    // The report names slot 2's failure and maps the written signatures to source slots.
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let m = &rep["manifests"][0];
    assert_eq!(m["signatures"]["unreadable"][0]["slot"], 2);
    assert!(
        m["signatures"]["unreadable"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("0x3c")
    );
    let written: Vec<_> = m["signatures"]["written"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["source_slot"].as_u64().unwrap())
        .collect();
    assert_eq!(written, vec![1, 3]);
    assert_eq!(m["verdict"]["accepted"], true);
    assert_eq!(m["verdict"]["slots"][0]["outcome"]["status"], "accepted");
    assert_eq!(m["verdict"]["slots"][1]["outcome"]["status"], "unreadable");
    assert_eq!(m["verdict"]["slots"][2]["outcome"]["status"], "rejected");

    // The store keeps both signatures byte for byte, and a record naming slot 2's failure.
    let list = ferry(&[
        "signatures",
        "list",
        "--format",
        "json",
        "--store",
        c.store.to_str().unwrap(),
        &format!("store:{IDENTITY}"),
    ])
    .ok();
    let l: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let slots = l["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 3, "{l}");
    assert_eq!(slots[0]["verdict"]["status"], "accepted");
    assert_eq!(slots[0]["stored_as"], "signature-1");
    assert_eq!(slots[1]["verdict"]["status"], "unreadable");
    assert!(slots[1]["stored_as"].is_null());
    assert_eq!(slots[2]["verdict"]["status"], "rejected");
    assert_eq!(slots[2]["stored_as"], "signature-2");
    let text = ferry(&[
        "signatures",
        "list",
        "--store",
        c.store.to_str().unwrap(),
        &format!("store:{IDENTITY}"),
    ])
    .ok()
    .stdout;
    assert!(
        text.contains(TRUSTED) && text.contains("0x3c") && text.contains("rejected"),
        "{text}"
    );

    let show = ferry(&[
        "signatures",
        "show",
        "--format",
        "json",
        "--store",
        c.store.to_str().unwrap(),
        &format!("store:{IDENTITY}"),
    ])
    .ok();
    let shown: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(shown.as_array().unwrap().len(), 2);
    assert_eq!(
        shown[0]["payload"]["critical"]["identity"]["docker-reference"],
        IDENTITY
    );
    assert_eq!(shown[1]["decoded"]["issuers"][0], UNTRUSTED);
    let export = c.t.path().join("export");
    ferry(&[
        "signatures",
        "export",
        "--store",
        c.store.to_str().unwrap(),
        &format!("store:{IDENTITY}"),
        export.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        std::fs::read(export.join("signature-1")).unwrap(),
        demo_sig("signature-1")
    );
    assert_eq!(
        std::fs::read(export.join("signature-2")).unwrap(),
        demo_sig("signature-3")
    );
    let records: Vec<_> = std::fs::read_dir(export.join("records")).unwrap().collect();
    assert_eq!(records.len(), 1);
    ferry(&[
        "signatures",
        "verify",
        "--policy",
        c.policy.to_str().unwrap(),
        "--store",
        c.store.to_str().unwrap(),
        &format!("store:{IDENTITY}"),
    ])
    .ok();
    let reject = c.t.path().join("reject.json");
    std::fs::write(&reject, r#"{"default":[{"type":"reject"}]}"#).unwrap();
    ferry(&[
        "signatures",
        "verify",
        "--policy",
        reject.to_str().unwrap(),
        "--store",
        c.store.to_str().unwrap(),
        &format!("store:{IDENTITY}"),
    ])
    .code(1);
}

#[test]
fn insufficient_subset_names_the_untrusted_signer_and_the_unreadable_slot() {
    let c = Case::new();
    for order in [
        ["signature-2", "signature-3"],
        ["signature-3", "signature-2"],
    ] {
        let src = image_with(c.t.path(), &order);
        let dst = c.t.path().join(format!("out-{}", order.join("-")));
        let r = c
            .copy(
                &["--signatures", "sufficient-subset"],
                &src,
                &format!("dir:{}", dst.display()),
            )
            .code(1);
        assert!(
            r.stderr.contains(UNTRUSTED) || r.stderr.contains(&UNTRUSTED[24..]),
            "names the untrusted signer: {}",
            r.stderr
        );
        // The trusted keys are named with their user IDs; the untrusted signer's user ID is not
        // in the signature and its key is not in the policy, so its fingerprint names it.
        assert!(
            r.stderr.contains("ferry demo release key"),
            "names the trusted key: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("0x3c") && r.stderr.contains(src.to_str().unwrap()),
            "names the unreadable slot: {}",
            r.stderr
        );
        assert!(!dst.exists());
        c.copy(
            &["--signatures", "sufficient-subset"],
            &src,
            "store:example.com/no:1",
        )
        .code(1);
        assert!(
            ferry(&[
                "inspect",
                "--store",
                c.store.to_str().unwrap(),
                "store:example.com/no:1"
            ])
            .code
                != 0
        );
    }
}

#[test]
fn an_unreadable_first_slot_does_not_hide_a_good_one() {
    let c = Case::new();
    let src = image_with(c.t.path(), &["signature-2", "signature-1"]);
    let dst = c.t.path().join("out");
    c.copy(
        &["--signatures", "sufficient-subset"],
        &src,
        &format!("dir:{}", dst.display()),
    )
    .ok();
    assert_eq!(
        std::fs::read(dst.join("signature-1")).unwrap(),
        demo_sig("signature-1")
    );
    assert!(!dst.join("signature-2").exists());
}

#[test]
fn a_store_copy_made_in_sufficient_subset_passes_skopeos_own_policy_check() {
    let c = Case::new();
    c.copy(
        &["--signatures", "sufficient-subset"],
        &demo().join("hello-dir"),
        &format!("store:{IDENTITY}"),
    )
    .ok();
    let out = c.t.path().join("from-store");
    ferry(&[
        "copy",
        "-q",
        "--policy",
        c.policy.to_str().unwrap(),
        "--store",
        c.store.to_str().unwrap(),
        &format!("store:{IDENTITY}"),
        &format!("dir:{}", out.display()),
    ])
    .ok();
    // skopeo, with the same policy (dir: scope, the release key), accepts what ferry kept.
    let again = c.t.path().join("skopeo-copy");
    skopeo(&[
        "copy",
        "--policy",
        c.policy.to_str().unwrap(),
        &format!("dir:{}", out.display()),
        &format!("dir:{}", again.display()),
    ])
    .ok();
    assert_eq!(
        std::fs::read(again.join("signature-1")).unwrap(),
        demo_sig("signature-1")
    );
    assert_eq!(
        std::fs::read(again.join("signature-2")).unwrap(),
        demo_sig("signature-3")
    );
    // And skopeo still refuses the original with its HTML slot, as the 0x3c bug reports say.
    let r = skopeo(&[
        "copy",
        "--policy",
        c.policy.to_str().unwrap(),
        &format!("dir:{}", demo().join("hello-dir").display()),
        &format!("dir:{}", c.t.path().join("sk2").display()),
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("0x3c"), "{}", r.stderr);
}

#[test]
fn a_copy_that_would_change_the_manifest_while_keeping_signatures_is_refused() {
    let c = Case::new();
    let dst = c.t.path().join("out");
    // The demo image is OCI: asking for Docker schema 2 would change the manifest's digest.
    let r = c
        .copy(
            &["--signatures", "sufficient-subset", "--format", "v2s2"],
            &demo().join("hello-dir"),
            &format!("dir:{}", dst.display()),
        )
        .code(3);
    assert!(
        r.stderr.contains("invalidate") && r.stderr.contains("signature"),
        "{}",
        r.stderr
    );
    assert!(!dst.exists());
    assert!(
        r.stderr.contains("--signatures remove-signatures"),
        "{}",
        r.stderr
    );
    // Without the signatures, the conversion is done (issue 14): a Docker schema 2 manifest,
    // and no signature beside it.
    let converted = c.t.path().join("converted");
    c.copy(
        &["--remove-signatures", "--format", "v2s2"],
        &demo().join("hello-dir"),
        &format!("dir:{}", converted.display()),
    )
    .ok();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(converted.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert!(!converted.join("signature-1").exists());
    // Asking for the format it already has is fine.
    c.copy(
        &["--signatures", "sufficient-subset", "--format", "oci"],
        &demo().join("hello-dir"),
        &format!("dir:{}", dst.display()),
    )
    .ok();
    assert_eq!(
        std::fs::read(dst.join("signature-1")).unwrap(),
        demo_sig("signature-1")
    );
}
