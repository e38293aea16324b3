//! The signature modes end to end against the real registry and a lookaside server on
//! 127.0.0.1 that fails in the ways real signature caches do; signing on copy; destinations
//! that cannot keep signatures.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use support::gpg::{Gpg, Key};
use support::http::{HttpServer, Reply};
use support::registry::Registry;
use support::*;

struct Setup {
    reg: Registry,
    lookaside: HttpServer,
    replies: Arc<Mutex<Vec<Reply>>>,
    t: tempfile::TempDir,
    policy: PathBuf,
    registries_d: PathBuf,
    store: PathBuf,
    image: String,
    digest: String,
    sig_trusted: Vec<u8>,
    sig_untrusted: Vec<u8>,
    gpg: Gpg,
    trusted: Key,
}

/// A registry with one image, signatures by a trusted and an untrusted key, and a lookaside
/// server whose slots answer whatever `set` says.
fn setup() -> Setup {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let insecure = insecure_policy(t.path());
    let src = t.path().join("src");
    make_oci_image(&src, "v1", 21, 2, 100_000);
    let image = format!("{}/ns/app:v1", reg.host());
    skopeo(&[
        "copy",
        "--policy",
        insecure.to_str().unwrap(),
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{image}"),
    ])
    .ok();
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ])
    .ok()
    .stdout;
    let manifest = t.path().join("manifest.json");
    std::fs::write(&manifest, &raw).unwrap();
    let digest = sha256(raw.as_bytes());

    let gpg = Gpg::new();
    let trusted = gpg.gen_key("Release Signer");
    let untrusted = gpg.gen_key("Unknown Party");
    let s1 = t.path().join("s1");
    let s3 = t.path().join("s3");
    gpg.skopeo_sign(&manifest, &image, &trusted.fpr, &s1);
    gpg.skopeo_sign(&manifest, &image, &untrusted.fpr, &s3);

    let replies: Arc<Mutex<Vec<Reply>>> = Arc::new(Mutex::new(vec![]));
    let r2 = replies.clone();
    let hex = digest["sha256:".len()..].to_string();
    let lookaside = HttpServer::start(
        Arc::new(move |req: &support::http::Request| {
            let prefix = format!("/sigs/ns/app@sha256={hex}/signature-");
            let Some(n) = req
                .path
                .strip_prefix(&prefix)
                .and_then(|n| n.parse::<usize>().ok())
            else {
                return Reply::not_found();
            };
            r2.lock()
                .unwrap()
                .get(n - 1)
                .cloned()
                .unwrap_or_else(Reply::not_found)
        }),
        None,
    );
    let registries_d = t.path().join("registries.d");
    std::fs::create_dir_all(&registries_d).unwrap();
    std::fs::write(
        registries_d.join("lookaside.yaml"),
        format!(
            "docker:\n  {}:\n    lookaside: {}/sigs\n",
            reg.host(),
            lookaside.url()
        ),
    )
    .unwrap();
    let policy = t.path().join("policy.json");
    std::fs::write(
        &policy,
        format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"{}/ns":[{{"type":"signedBy","keyType":"GPGKeys","keyPath":"{}"}}]}},"store":{{"":[{{"type":"insecureAcceptAnything"}}]}}}}}}"#,
            reg.host(),
            trusted.public.display()
        ),
    )
    .unwrap();
    Setup {
        store: t.path().join("store"),
        sig_trusted: std::fs::read(&s1).unwrap(),
        sig_untrusted: std::fs::read(&s3).unwrap(),
        reg,
        lookaside,
        replies,
        t,
        policy,
        registries_d,
        image,
        digest,
        gpg,
        trusted,
    }
}

impl Setup {
    fn set(&self, replies: Vec<Reply>) {
        *self.replies.lock().unwrap() = replies;
    }
    fn good(&self) -> Reply {
        Reply::ok("application/octet-stream", self.sig_trusted.clone())
    }
    fn untrusted(&self) -> Reply {
        Reply::ok("application/octet-stream", self.sig_untrusted.clone())
    }
    fn copy(&self, extra: &[&str], dst: &str) -> Run {
        let mut args = vec![
            "copy",
            "-q",
            "--policy",
            self.policy.to_str().unwrap(),
            "--registries.d",
            self.registries_d.to_str().unwrap(),
            "--store",
            self.store.to_str().unwrap(),
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--lookaside-timeout",
            "2",
        ];
        args.extend_from_slice(extra);
        let src = format!("docker://{}", self.image);
        args.push(&src);
        args.push(dst);
        ferry(&args)
    }
    fn sig_url(&self, n: usize) -> String {
        format!(
            "{}/sigs/ns/app@sha256={}/signature-{n}",
            self.lookaside.url(),
            &self.digest["sha256:".len()..]
        )
    }
    fn dir(&self, name: &str) -> PathBuf {
        self.t.path().join(name)
    }
}

fn stored_index_has(store: &Path, name: &str) -> bool {
    std::fs::read_to_string(store.join("index.json")).is_ok_and(|s| s.contains(name))
}

#[test]
fn the_failing_cache_html_at_signature_2() {
    let s = setup();
    s.set(vec![s.good(), Reply::html(), s.untrusted()]);

    // copy-all: fails, naming signature-2, its URL and 0x3c; nothing written.
    let out = s.dir("all");
    let r = s.copy(&[], &format!("dir:{}", out.display())).code(1);
    assert!(
        r.stderr.contains("signature-2")
            && r.stderr.contains(&s.sig_url(2))
            && r.stderr.contains("0x3c"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());

    // remove-signatures: succeeds, writes none.
    let out = s.dir("none");
    s.copy(&["--remove-signatures"], &format!("dir:{}", out.display()))
        .ok();
    assert!(out.join("manifest.json").exists() && !out.join("signature-1").exists());

    // sufficient-subset into dir: and store:, slots 1 and 3 byte for byte, in order.
    let out = s.dir("subset");
    let report = s.dir("report.json");
    let r = s
        .copy(
            &[
                "--signatures",
                "sufficient-subset",
                "--report",
                report.to_str().unwrap(),
            ],
            &format!("dir:{}", out.display()),
        )
        .ok();
    assert!(
        r.stderr.contains("warning") && r.stderr.contains(&s.sig_url(2)),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(out.join("signature-1")).unwrap(),
        s.sig_trusted
    );
    assert_eq!(
        std::fs::read(out.join("signature-2")).unwrap(),
        s.sig_untrusted
    );
    assert!(!out.join("signature-3").exists());
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let u = &rep["manifests"][0]["signatures"]["unreadable"][0];
    assert_eq!(u["slot"], 2);
    assert_eq!(u["location"], s.sig_url(2).as_str());
    assert!(u["reason"].as_str().unwrap().contains("0x3c"));

    let name = format!("store:{}", s.image);
    s.copy(&["--signatures", "sufficient-subset"], &name).ok();
    let sigdir = s
        .store
        .join("signatures")
        .join(format!("sha256-{}", &s.digest["sha256:".len()..]));
    assert_eq!(
        std::fs::read(sigdir.join("signature-1")).unwrap(),
        s.sig_trusted
    );
    assert_eq!(
        std::fs::read(sigdir.join("signature-2")).unwrap(),
        s.sig_untrusted
    );
    let l = ferry(&[
        "signatures",
        "list",
        "--format",
        "json",
        "--store",
        s.store.to_str().unwrap(),
        &name,
    ])
    .ok();
    let l: serde_json::Value = serde_json::from_str(&l.stdout).unwrap();
    let slots = l["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 3, "{l}");
    assert_eq!(slots[0]["verdict"]["status"], "accepted");
    assert_eq!(slots[1]["verdict"]["status"], "unreadable");
    assert_eq!(slots[1]["location"], s.sig_url(2).as_str());
    assert_eq!(slots[2]["verdict"]["status"], "rejected");
    let records: Vec<_> = std::fs::read_dir(
        s.store
            .join("records")
            .join(format!("sha256-{}", &s.digest["sha256:".len()..])),
    )
    .unwrap()
    .collect();
    assert_eq!(records.len(), 1);
}

#[test]
fn insufficient_subset_names_the_untrusted_signer_and_every_unreadable_slot() {
    let s = setup();
    s.set(vec![Reply::html(), s.untrusted()]);
    let out = s.dir("out");
    let report = s.dir("failed.json");
    let r = s
        .copy(
            &[
                "--signatures",
                "sufficient-subset",
                "--report",
                report.to_str().unwrap(),
            ],
            &format!("dir:{}", out.display()),
        )
        .code(1);
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(rep["verdict"]["accepted"], false);
    assert_eq!(rep["verdict"]["slots"][1]["outcome"]["status"], "rejected");
    assert_eq!(rep["unreadable"][0]["slot"], 1);
    assert!(rep["error"].as_str().unwrap().contains("0x3c"));
    assert!(
        r.stderr.contains("signature-1")
            && r.stderr.contains(&s.sig_url(1))
            && r.stderr.contains("0x3c"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("signature-2") && r.stderr.contains("not trusted"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
    s.copy(
        &["--signatures", "sufficient-subset"],
        &format!("store:{}", s.image),
    )
    .code(1);
    assert!(!stored_index_has(&s.store, "ns/app"));
}

#[test]
fn signature_2_answering_500_timing_out_or_truncated() {
    let s = setup();
    for (what, bad, expect) in [
        ("500", Reply::status(500), "500"),
        ("timeout", Reply::Hang, "in time"),
        (
            "truncated",
            Reply::Truncated {
                body: s.sig_trusted[..40].to_vec(),
                declared: s.sig_trusted.len(),
            },
            "ended",
        ),
    ] {
        s.set(vec![s.good(), bad, s.untrusted()]);
        let out = s.dir(&format!("all-{what}"));
        let r = s.copy(&[], &format!("dir:{}", out.display())).code(1);
        assert!(
            r.stderr.contains(&s.sig_url(2)) && r.stderr.contains(expect),
            "{what}: {}",
            r.stderr
        );
        assert!(!out.exists());
        let out = s.dir(&format!("subset-{what}"));
        let r = s
            .copy(
                &["--signatures", "sufficient-subset"],
                &format!("dir:{}", out.display()),
            )
            .ok();
        assert!(r.stderr.contains(&s.sig_url(2)), "{what}: {}", r.stderr);
        assert_eq!(
            std::fs::read(out.join("signature-1")).unwrap(),
            s.sig_trusted
        );
        assert_eq!(
            std::fs::read(out.join("signature-2")).unwrap(),
            s.sig_untrusted
        );
    }
    // The unreadable slot first.
    s.set(vec![Reply::status(500), s.good()]);
    let out = s.dir("first");
    s.copy(
        &["--signatures", "sufficient-subset"],
        &format!("dir:{}", out.display()),
    )
    .ok();
    assert_eq!(
        std::fs::read(out.join("signature-1")).unwrap(),
        s.sig_trusted
    );
    assert!(!out.join("signature-2").exists());
}

#[test]
fn signing_on_copy_verifies_with_skopeo_and_lands_in_the_staging_lookaside() {
    let s = setup();
    s.set(vec![s.good()]);
    let out = s.dir("signed");
    let identity = "registry.ferry.test/released/app:1";
    s.copy(
        &[
            "--sign-by",
            &s.trusted.fpr,
            "--sign-key",
            s.trusted.secret.to_str().unwrap(),
            "--sign-identity",
            identity,
        ],
        &format!("dir:{}", out.display()),
    )
    .ok();
    assert_eq!(
        std::fs::read(out.join("signature-1")).unwrap(),
        s.sig_trusted
    );
    let bin = require_tool("skopeo", "skopeo");
    let r = run(std::process::Command::new(bin)
        .env("GNUPGHOME", s.gpg.home())
        .args([
            "standalone-verify",
            out.join("manifest.json").to_str().unwrap(),
            identity,
            &s.trusted.fpr,
            out.join("signature-2").to_str().unwrap(),
        ]))
    .ok();
    assert!(r.stdout.contains(&s.digest), "{}", r.stdout);

    // To a registry: signatures go to the lookaside-staging file:// location of registries.d.
    let staging = s.dir("staging");
    std::fs::write(
        s.registries_d.join("staging.yaml"),
        format!(
            "docker:\n  {}/mirror:\n    lookaside-staging: file://{}\n",
            s.reg.host(),
            staging.display()
        ),
    )
    .unwrap();
    let dst = format!("docker://{}/mirror/app:v1", s.reg.host());
    s.copy(
        &[
            "--sign-by",
            &s.trusted.fpr,
            "--sign-key",
            s.trusted.secret.to_str().unwrap(),
        ],
        &dst,
    )
    .ok();
    let dir = staging.join(format!(
        "mirror/app@sha256={}",
        &s.digest["sha256:".len()..]
    ));
    assert_eq!(
        std::fs::read(dir.join("signature-1")).unwrap(),
        s.sig_trusted
    );
    let r = run(std::process::Command::new(require_tool("skopeo", "skopeo"))
        .env("GNUPGHOME", s.gpg.home())
        .args([
            "standalone-verify",
            s.t.path().join("manifest.json").to_str().unwrap(),
            &format!("{}/mirror/app:v1", s.reg.host()),
            &s.trusted.fpr,
            dir.join("signature-2").to_str().unwrap(),
        ]))
    .ok();
    assert!(r.stdout.contains(&s.digest), "{}", r.stdout);
}

#[test]
fn destinations_that_cannot_keep_signatures_fail_before_writing() {
    let s = setup();
    s.set(vec![s.good()]);
    let out = s.dir("layout");
    let r = s.copy(&[], &format!("oci:{}:x", out.display())).code(3);
    assert!(r.stderr.contains("remove-signatures"), "{}", r.stderr);
    assert!(!out.exists());
    s.copy(
        &["--remove-signatures"],
        &format!("oci:{}:x", out.display()),
    )
    .ok();
    // A registry with no signature storage configured for the destination repository.
    let r = s
        .copy(&[], &format!("docker://{}/nosigs/app:v1", s.reg.host()))
        .code(3);
    assert!(
        r.stderr.contains("lookaside-staging") && r.stderr.contains("remove-signatures"),
        "{}",
        r.stderr
    );
    let r = skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}/nosigs/app:v1", s.reg.host()),
    ]);
    assert_ne!(r.code, 0, "nothing was pushed");
}
