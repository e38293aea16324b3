//! Sigstore (cosign) signatures end to end, with material that ferry did not make: keys,
//! payloads, signatures and registry attachments come from the independent Python generator
//! (tests/sigstore/gen.py), and a few signatures made by the real cosign (containers/image's
//! fixtures, testdata/sigstore/golden). What ferry makes is checked by the generator's own
//! verifier. Debian's skopeo has sigstore patched out, so it serves only to move attachments.

mod support;

use std::path::{Path, PathBuf};

use support::http::{HttpServer, Reply, counting};
use support::registry::Registry;
use support::sigstore::{GenKey, keygen, sgen, sigfile, sign};
use support::*;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/sigstore/golden")
        .join(name)
}

/// A registry holding `ns/app:v1`, a key, and registries.d / policy files for it.
struct World {
    reg: Registry,
    t: tempfile::TempDir,
    key: GenKey,
    digest: String,
    /// `HOST/ns/app:v1`.
    identity: String,
    regd: PathBuf,
    policy: PathBuf,
}

fn world() -> World {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let lax = insecure_policy(t.path());
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 61, 2, 50_000);
    let identity = format!("{}/ns/app:v1", reg.host());
    ferry(&[
        "copy",
        "-q",
        "--policy",
        lax.to_str().unwrap(),
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{identity}"),
    ])
    .ok();
    let key = keygen(t.path(), "cosign", "ecdsa-p256");
    let regd = t.path().join("registries.d");
    std::fs::create_dir_all(&regd).unwrap();
    std::fs::write(
        regd.join("sigstore.yaml"),
        format!(
            "docker:\n  {}:\n    use-sigstore-attachments: true\n",
            reg.host()
        ),
    )
    .unwrap();
    let policy = t.path().join("policy.json");
    std::fs::write(
        &policy,
        format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{
                "docker":{{"":[{{"type":"sigstoreSigned","keyPath":"{k}"}}]}},
                "dir":{{"":[{{"type":"sigstoreSigned","keyPath":"{k}","signedIdentity":{{"type":"exactReference","dockerReference":"{identity}"}}}}]}},
                "oci":{{"":[{{"type":"sigstoreSigned","keyPath":"{k}","signedIdentity":{{"type":"exactReference","dockerReference":"{identity}"}}}}]}},
                "store":{{"":[{{"type":"sigstoreSigned","keyPath":"{k}","signedIdentity":{{"type":"exactReference","dockerReference":"{identity}"}}}}]}}}}}}"#,
            k = key.public.display()
        ),
    )
    .unwrap();
    World {
        digest: image.digest,
        reg,
        t,
        key,
        identity,
        regd,
        policy,
    }
}

impl World {
    /// Pushes an attachment of one signature of the image by the world's key (with extra
    /// `gen.py attach` arguments), made by the generator.
    fn attach_signature(&self, name: &str, extra: &[&str]) {
        let (payload, sig) = sign(self.t.path(), name, &self.key, &self.digest, &self.identity);
        let pair = format!("{}:{}", payload.display(), sig.display());
        let registry = format!("http://{}", self.reg.host());
        let mut a = vec![
            "attach",
            "--registry",
            &registry,
            "--repo",
            "ns/app",
            "--digest",
            &self.digest,
            "--sig",
            &pair,
        ];
        a.extend_from_slice(extra);
        sgen(&a).ok();
    }

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

    fn check(&self, image: &str, extra: &[&str]) -> Run {
        let mut a = vec!["policy", "check", "--tls-verify=false"];
        a.extend_from_slice(extra);
        a.push(image);
        self.ferry(&a)
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
}

/// The generator's independent check of a signature file ferry wrote.
fn gen_verifies(file: &Path, key: &GenKey, digest: &str) {
    sgen(&[
        "read-sigfile",
        "--in",
        file.to_str().unwrap(),
        "--pub",
        key.public.to_str().unwrap(),
        "--check-payload",
        "--expect-digest",
        digest,
    ])
    .ok();
}

#[test]
fn an_attached_cosign_signature_is_accepted_and_copied_to_every_destination() {
    let w = world();
    w.attach_signature("one", &[]);
    let src = format!("docker://{}", w.identity);

    let r = w.check(&src, &["--format", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["admitted"], true, "{v}");
    let slot = &v["verdict"]["slots"][0];
    assert_eq!(slot["outcome"]["status"], "accepted", "{v}");
    assert!(
        slot["location"].as_str().unwrap().contains(".sig layer 1"),
        "{slot}"
    );

    // store: the signature is kept and shown as sigstore, accepted.
    let store = w.t.path().join("store");
    let s = store.to_str().unwrap();
    w.copy(&["--store", s], &src, "store:example.com/app:v1")
        .ok();
    let list = ferry(&[
        "signatures",
        "list",
        "--store",
        s,
        "store:example.com/app:v1",
    ])
    .ok()
    .stdout;
    assert!(
        list.contains("sigstore-json") && list.contains("accepted by requirement 1"),
        "{list}"
    );
    // show decodes the cosign payload; export gives the stored signature back in the file form
    // the generator reads; verify judges it again now, and refuses it under another key.
    let show = ferry(&[
        "signatures",
        "show",
        "--store",
        s,
        "store:example.com/app:v1",
    ])
    .ok()
    .stdout;
    assert!(
        show.contains(&w.digest) && show.contains("cosign container image signature"),
        "{show}"
    );
    let exported = w.t.path().join("exported");
    ferry(&[
        "signatures",
        "export",
        "--store",
        s,
        "store:example.com/app:v1",
        exported.to_str().unwrap(),
    ])
    .ok();
    gen_verifies(&exported.join("signature-1"), &w.key, &w.digest);
    assert_eq!(
        sha256(&std::fs::read(exported.join("manifest.json")).unwrap()),
        w.digest
    );
    let verify = |policy: &Path| {
        ferry(&[
            "signatures",
            "verify",
            "--store",
            s,
            "--policy",
            policy.to_str().unwrap(),
            "store:example.com/app:v1",
        ])
    };
    verify(&w.policy).ok();
    let other = keygen(w.t.path(), "other", "ecdsa-p256");
    let wrong = w.t.path().join("wrong.json");
    std::fs::write(
        &wrong,
        std::fs::read_to_string(&w.policy).unwrap().replace(
            w.key.public.to_str().unwrap(),
            other.public.to_str().unwrap(),
        ),
    )
    .unwrap();
    let refused = verify(&wrong).code(1);
    let text = format!("{}{}", refused.stdout, refused.stderr);
    assert!(text.contains("rejected"), "{text}");

    // dir: signature-1 is the signature in containers/image's file form; the generator verifies it.
    let dir = w.t.path().join("dir");
    w.copy(&[], &src, &format!("dir:{}", dir.display())).ok();
    gen_verifies(&dir.join("signature-1"), &w.key, &w.digest);

    // oci: the attachment beside the image, as cosign save lays it out; and back again.
    let layout = w.t.path().join("layout");
    w.copy(&[], &src, &format!("oci:{}:v1", layout.display()))
        .ok();
    let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
    let tag = format!("sha256-{}.sig", &w.digest["sha256:".len()..]);
    assert!(index.contains(&tag), "{index}");
    let back = w.t.path().join("back");
    w.copy(
        &[],
        &format!("oci:{}:v1", layout.display()),
        &format!("dir:{}", back.display()),
    )
    .ok();
    gen_verifies(&back.join("signature-1"), &w.key, &w.digest);

    // Another registry: the attachment is written there, and the generator reads it back.
    let reg2 = Registry::start();
    std::fs::write(
        w.regd.join("dest.yaml"),
        format!(
            "docker:\n  {}:\n    use-sigstore-attachments: true\n",
            reg2.host()
        ),
    )
    .unwrap();
    w.copy(
        &[],
        &src,
        &format!("docker://{}/mirror/app:v1", reg2.host()),
    )
    .ok();
    let fetched = w.t.path().join("fetched");
    sgen(&[
        "fetch-attachment",
        "--registry",
        &format!("http://{}", reg2.host()),
        "--repo",
        "mirror/app",
        "--digest",
        &w.digest,
        "--out",
        fetched.to_str().unwrap(),
        "--pub",
        w.key.public.to_str().unwrap(),
    ])
    .ok();
    // A second copy to the same place keeps one signature, not two.
    w.copy(
        &[],
        &src,
        &format!("docker://{}/mirror/app:v1", reg2.host()),
    )
    .ok();
    let again = w.t.path().join("fetched-again");
    sgen(&[
        "fetch-attachment",
        "--registry",
        &format!("http://{}", reg2.host()),
        "--repo",
        "mirror/app",
        "--digest",
        &w.digest,
        "--out",
        again.to_str().unwrap(),
    ])
    .ok();
    assert!(again.join("signature-1").exists() && !again.join("signature-2").exists());
}

#[test]
fn signatures_ferry_makes_verify_with_the_independent_verifier() {
    let w = world();
    let lax = insecure_policy(w.t.path());
    // A key from ferry generate-sigstore-key is a cosign key the generator can decrypt.
    let prefix = w.t.path().join("ferrykey");
    let pass = w.t.path().join("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    ferry(&[
        "generate-sigstore-key",
        "--output-prefix",
        prefix.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ])
    .ok();
    let private = prefix.with_extension("private");
    let public = prefix.with_extension("pub");
    sgen(&[
        "decrypt-key",
        "--key",
        private.to_str().unwrap(),
        "--password",
        "correct horse",
        "--out",
        w.t.path().join("plain.pem").to_str().unwrap(),
        "--expect-pub",
        public.to_str().unwrap(),
    ])
    .ok();
    // It refuses to overwrite.
    ferry(&[
        "generate-sigstore-key",
        "--output-prefix",
        prefix.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ])
    .code(2);

    let ferry_key = GenKey {
        public: public.clone(),
        encrypted: private.clone(),
        plain: w.t.path().join("plain.pem"),
        password: "correct horse".into(),
    };
    let src = format!("docker://{}", w.identity);
    let dir = w.t.path().join("signed");
    ferry(&[
        "copy",
        "-q",
        "--policy",
        lax.to_str().unwrap(),
        "--src-tls-verify=false",
        "--sign-by-sigstore-private-key",
        private.to_str().unwrap(),
        "--sign-passphrase-file",
        pass.to_str().unwrap(),
        "--sign-identity",
        &w.identity,
        &src,
        &format!("dir:{}", dir.display()),
    ])
    .ok();
    gen_verifies(&dir.join("signature-1"), &ferry_key, &w.digest);
    sgen(&[
        "read-sigfile",
        "--in",
        dir.join("signature-1").to_str().unwrap(),
        "--expect-reference",
        &w.identity,
    ])
    .ok();

    // A key the generator encrypted signs with ferry; the signature lands in a registry
    // attachment the generator reads and verifies.
    let pw = w.t.path().join("genpass");
    std::fs::write(&pw, format!("{}\n", w.key.password)).unwrap();
    ferry(&[
        "copy",
        "-q",
        "--policy",
        lax.to_str().unwrap(),
        "--registries.d",
        w.regd.to_str().unwrap(),
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--sign-by-sigstore-private-key",
        w.key.encrypted.to_str().unwrap(),
        "--sign-passphrase-file",
        pw.to_str().unwrap(),
        &src,
        &format!("docker://{}/resigned/app:v1", w.reg.host()),
    ])
    .ok();
    sgen(&[
        "fetch-attachment",
        "--registry",
        &format!("http://{}", w.reg.host()),
        "--repo",
        "resigned/app",
        "--digest",
        &w.digest,
        "--out",
        w.t.path().join("fetched").to_str().unwrap(),
        "--pub",
        w.key.public.to_str().unwrap(),
    ])
    .ok();
    // A wrong passphrase is refused, naming the key file.
    std::fs::write(&pw, "wrong\n").unwrap();
    let r = ferry(&[
        "copy",
        "-q",
        "--policy",
        lax.to_str().unwrap(),
        "--src-tls-verify=false",
        "--sign-by-sigstore-private-key",
        w.key.encrypted.to_str().unwrap(),
        "--sign-passphrase-file",
        pw.to_str().unwrap(),
        &src,
        &format!("dir:{}", w.t.path().join("never").display()),
    ])
    .code(3);
    assert!(
        r.stderr.contains(w.key.encrypted.to_str().unwrap()),
        "{}",
        r.stderr
    );
    assert!(!w.t.path().join("never").exists());
}

/// A dir: image of the world's manifest whose signature-N files are `sigs`.
fn dir_with(w: &World, name: &str, sigs: &[&Path]) -> PathBuf {
    let d = w.t.path().join(name);
    if !d.exists() {
        let lax = insecure_policy(w.t.path());
        ferry(&[
            "copy",
            "-q",
            "--policy",
            lax.to_str().unwrap(),
            "--src-tls-verify=false",
            &format!("docker://{}", w.identity),
            &format!("dir:{}", d.display()),
        ])
        .ok();
    }
    for (i, s) in sigs.iter().enumerate() {
        std::fs::copy(s, d.join(format!("signature-{}", i + 1))).unwrap();
    }
    d
}

#[test]
fn rejected_sigstore_signatures_say_why() {
    let w = world();
    let t = w.t.path();
    let other = keygen(t, "other", "ed25519");
    let (payload, sig) = sign(t, "good", &w.key, &w.digest, &w.identity);
    let good = t.join("good.sigfile");
    sigfile(&payload, &sig, &good, &[]);

    let cases: Vec<(&str, PathBuf, &str)> = {
        let mut v = Vec::new();
        // Signed by a key the policy does not trust.
        let (p, s) = sign(t, "wrongkey", &other, &w.digest, &w.identity);
        let f = t.join("wrongkey.sigfile");
        sigfile(&p, &s, &f, &[]);
        v.push((
            "wrong key",
            f,
            "cryptographic signature verification failed",
        ));
        // A payload for another digest.
        let (p, s) = sign(
            t,
            "otherdigest",
            &w.key,
            &format!("sha256:{}", "1".repeat(64)),
            &w.identity,
        );
        let f = t.join("otherdigest.sigfile");
        sigfile(&p, &s, &f, &[]);
        v.push(("another digest", f, "Signature for digest sha256:1111"));
        // Another identity.
        let (p, s) = sign(t, "otherid", &w.key, &w.digest, "example.com/other:1");
        let f = t.join("otherid.sigfile");
        sigfile(&p, &s, &f, &[]);
        v.push((
            "another identity",
            f,
            "\"example.com/other:1\" is not accepted",
        ));
        // A tampered payload: the signature of one payload over another.
        let f = t.join("tampered.sigfile");
        sigfile(&t.join("otherid.payload"), &sig, &f, &[]);
        v.push((
            "tampered payload",
            f,
            "cryptographic signature verification failed",
        ));
        // No signature annotation.
        let f = t.join("noannotation.sigfile");
        sgen(&[
            "sigfile",
            "--payload",
            payload.to_str().unwrap(),
            "--omit-signature-annotation",
            "--out",
            f.to_str().unwrap(),
        ])
        .ok();
        v.push((
            "missing annotation",
            f,
            "missing dev.cosignproject.cosign/signature annotation",
        ));
        // An annotation that is not base64.
        let f = t.join("badb64.sigfile");
        sgen(&[
            "sigfile",
            "--payload",
            payload.to_str().unwrap(),
            "--omit-signature-annotation",
            "--annotation",
            "dev.cosignproject.cosign/signature=not*base64!",
            "--out",
            f.to_str().unwrap(),
        ])
        .ok();
        v.push(("not base64", f, "base64"));
        v
    };
    for (what, file, want) in &cases {
        let d = dir_with(&w, &format!("dir-{}", what.replace(' ', "-")), &[file]);
        let r = w.check(&format!("dir:{}", d.display()), &[]).code(1);
        assert!(
            r.stdout.contains(want),
            "{what}: expected {want:?} in:\n{}",
            r.stdout
        );
    }
    // The good one is accepted, so the cases above fail for their own reasons.
    let d = dir_with(&w, "dir-good", &[&good]);
    w.check(&format!("dir:{}", d.display()), &[]).ok();

    // A key file that is not a key: every signature is rejected, naming the file.
    let garbage = t.join("garbage.pub");
    std::fs::write(&garbage, "this is no key\n").unwrap();
    let p2 = t.join("garbage-policy.json");
    std::fs::write(
        &p2,
        format!(
            r#"{{"default":[{{"type":"sigstoreSigned","keyPath":"{}","signedIdentity":{{"type":"exactReference","dockerReference":"{}"}}}}]}}"#,
            garbage.display(),
            w.identity
        ),
    )
    .unwrap();
    let r = ferry(&[
        "policy",
        "check",
        "--policy",
        p2.to_str().unwrap(),
        &format!("dir:{}", d.display()),
    ])
    .code(1);
    assert!(
        r.stdout.contains("parsing public key 1") && r.stdout.contains("garbage.pub"),
        "{}",
        r.stdout
    );
    // A missing key file names the file.
    std::fs::remove_file(&garbage).unwrap();
    let r = ferry(&[
        "policy",
        "check",
        "--policy",
        p2.to_str().unwrap(),
        &format!("dir:{}", d.display()),
    ])
    .code(1);
    assert!(
        r.stdout.contains("open ") && r.stdout.contains("garbage.pub"),
        "{}",
        r.stdout
    );
}

#[test]
fn an_attachment_layer_that_cannot_be_read_is_an_unreadable_slot() {
    let w = world();
    w.attach_signature("first", &[]);
    w.attach_signature("second", &["--omit-signature-annotation"]);
    // A layer whose blob is gone: the proxy answers 404 for the first payload.
    let first_payload = std::fs::read(w.t.path().join("first.payload")).unwrap();
    let first_digest = sha256(&first_payload);
    let proxy = HttpServer::start(
        counting(move |req, _| {
            if req.path.contains(&first_digest) {
                Reply::bytes(
                    404,
                    "application/json",
                    r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
                )
            } else {
                Reply::forward()
            }
        }),
        Some(w.reg.host()),
    );
    std::fs::write(
        w.regd.join("proxy.yaml"),
        format!(
            "docker:\n  {}:\n    use-sigstore-attachments: true\n",
            proxy.host()
        ),
    )
    .unwrap();
    let r = w
        .check(
            &format!("docker://{}/ns/app:v1", proxy.host()),
            &["--format", "json"],
        )
        .code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let slots = &v["verdict"]["slots"];
    assert_eq!(slots[0]["outcome"]["status"], "unreadable", "{v}");
    assert!(
        slots[0]["outcome"]["reason"]
            .as_str()
            .unwrap()
            .contains("blob unknown"),
        "{v}"
    );
    assert_eq!(slots[1]["outcome"]["status"], "rejected", "{v}");
}

#[test]
fn the_failing_cache_case_in_sigstore_form() {
    // Two signatures in the attachment; the first layer's blob is answered with an HTML page
    // (200) by a proxy in front of the registry; the second is valid.
    let w = world();
    w.attach_signature("html", &[]);
    w.attach_signature("valid", &[]);
    let html_digest = sha256(&std::fs::read(w.t.path().join("html.payload")).unwrap());
    let proxy = HttpServer::start(
        counting(move |req, _| {
            if req.path.contains(&html_digest) {
                Reply::html()
            } else {
                Reply::forward()
            }
        }),
        Some(w.reg.host()),
    );
    std::fs::write(
        w.regd.join("proxy.yaml"),
        format!(
            "docker:\n  {}:\n    use-sigstore-attachments: true\n",
            proxy.host()
        ),
    )
    .unwrap();
    let src = format!("docker://{}/ns/app:v1", proxy.host());
    // The proxy's name is not the signed identity: judge by repository.
    std::fs::write(
        &w.policy,
        format!(
            r#"{{"default":[{{"type":"sigstoreSigned","keyPath":"{}","signedIdentity":{{"type":"matchRepository"}}}}],"transports":{{"dir":{{"":[{{"type":"insecureAcceptAnything"}}]}}}}}}"#,
            w.key.public.display()
        ),
    )
    .unwrap();
    // matchRepository compares the repository, so the two above (signed for the registry's own
    // name) are readable but rejected; this one, signed for the proxy's name, is accepted.
    let proxy_identity = format!("{}/ns/app:v1", proxy.host());
    let (p, s) = sign(w.t.path(), "valid2", &w.key, &w.digest, &proxy_identity);
    sgen(&[
        "attach",
        "--registry",
        &format!("http://{}", w.reg.host()),
        "--repo",
        "ns/app",
        "--digest",
        &w.digest,
        "--sig",
        &format!("{}:{}", p.display(), s.display()),
    ])
    .ok();

    let all = w.t.path().join("all");
    let r = w.copy(&[], &src, &format!("dir:{}", all.display())).code(1);
    assert!(
        r.stderr.contains("signature-1") && r.stderr.contains(".sig layer 1"),
        "copy-all names the slot: {}",
        r.stderr
    );
    assert!(!all.exists());

    let subset = w.t.path().join("subset");
    let r = w
        .copy(
            &["--signatures", "sufficient-subset"],
            &src,
            &format!("dir:{}", subset.display()),
        )
        .ok();
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("signature-1"),
        "{}",
        r.stderr
    );
    // The readable ones are kept (the one signed for the proxy's name satisfied the policy).
    gen_verifies(&subset.join("signature-1"), &w.key, &w.digest);
    assert!(subset.join("signature-2").exists());
    assert!(!subset.join("signature-3").exists());
}

#[test]
fn a_policy_with_both_kinds_on_an_image_with_both_kinds() {
    let w = world();
    let t = w.t.path();
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/keys");
    let fpr = std::fs::read_to_string(keys.join("fingerprints.txt"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("trusted "))
        .unwrap()
        .trim()
        .to_string();
    let d = dir_with(&w, "both", &[]);
    // signature-1: simple signing (gpg key), signature-2: sigstore.
    ferry(&[
        "standalone-sign",
        d.join("manifest.json").to_str().unwrap(),
        &w.identity,
        &fpr,
        "--sign-key",
        keys.join("trusted.sec.asc").to_str().unwrap(),
        "-o",
        d.join("signature-1").to_str().unwrap(),
    ])
    .ok();
    let (p, s) = sign(t, "both", &w.key, &w.digest, &w.identity);
    sigfile(&p, &s, &d.join("signature-2"), &[]);
    let write_policy = |reqs: &str| {
        let f = t.join("both-policy.json");
        std::fs::write(&f, format!(r#"{{"default":[{reqs}]}}"#)).unwrap();
        f
    };
    let signed_by = format!(
        r#"{{"type":"signedBy","keyType":"GPGKeys","keyPath":"{}","signedIdentity":{{"type":"exactReference","dockerReference":"{}"}}}}"#,
        keys.join("trusted.pub.asc").display(),
        w.identity
    );
    let sigstore_signed = format!(
        r#"{{"type":"sigstoreSigned","keyPath":"{}","signedIdentity":{{"type":"exactReference","dockerReference":"{}"}}}}"#,
        w.key.public.display(),
        w.identity
    );
    let image = format!("dir:{}", d.display());
    let p = write_policy(&format!("{signed_by},{sigstore_signed}"));
    let r = ferry(&[
        "policy",
        "check",
        "--format",
        "json",
        "--policy",
        p.to_str().unwrap(),
        &image,
    ])
    .ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verdict"]["slots"][0]["outcome"]["requirement"], 1, "{v}");
    assert_eq!(v["verdict"]["slots"][1]["outcome"]["requirement"], 2, "{v}");
    // Without the sigstore signature the second requirement is not satisfied, and says why.
    std::fs::remove_file(d.join("signature-2")).unwrap();
    let r = ferry(&["policy", "check", "--policy", p.to_str().unwrap(), &image]).code(1);
    assert!(
        r.stdout.contains("requirement 2") && r.stdout.contains("no signature exists"),
        "{}",
        r.stdout
    );
}

#[test]
fn an_attachment_that_exists_but_is_not_enabled_is_named_in_the_rejection() {
    let w = world();
    w.attach_signature("one", &[]);
    std::fs::remove_file(w.regd.join("sigstore.yaml")).unwrap();
    let r = w.check(&format!("docker://{}", w.identity), &[]).code(1);
    assert!(
        r.stdout.contains("use-sigstore-attachments") && r.stdout.contains(".sig exists"),
        "{}",
        r.stdout
    );
    // Writing a sigstore signature to a registry where attachments are not enabled is refused
    // before anything is written, saying which setting to change.
    let (p, s) = sign(w.t.path(), "two", &w.key, &w.digest, &w.identity);
    let f = w.t.path().join("two.sigfile");
    sigfile(&p, &s, &f, &[]);
    let d = dir_with(&w, "with-sigstore", &[&f]);
    let r = w
        .copy(
            &[],
            &format!("dir:{}", d.display()),
            &format!("docker://{}/nosig/app:v1", w.reg.host()),
        )
        .code(3);
    assert!(
        r.stderr.contains("use-sigstore-attachments: true")
            && r.stderr.contains("remove-signatures"),
        "{}",
        r.stderr
    );
}

#[test]
fn signatures_made_by_the_real_cosign_verify() {
    // containers/image's fixtures, made by cosign (testdata/README.md says where from).
    let t = tempfile::tempdir().unwrap();
    for (name, identity, requirement) in [
        (
            "dir-img-cosign-valid",
            "192.168.64.2:5000/cosign-signed-single-sample",
            format!(r#""keyPath":"{}""#, golden("cosign.pub").display()),
        ),
        (
            "dir-img-cosign-key-rekor-valid",
            "192.168.64.2:5000/cosign-signed/key-1",
            format!(
                r#""keyPath":"{}","rekorPublicKeyPath":"{}""#,
                golden("cosign2.pub").display(),
                golden("rekor.pub").display()
            ),
        ),
        (
            "dir-img-cosign-fulcio-rekor-valid",
            "192.168.64.2:5000/cosign-signed/fulcio-rekor-1",
            format!(
                r#""fulcio":{{"caPath":"{}","oidcIssuer":"https://github.com/login/oauth","subjectEmail":"mitr@redhat.com"}},"rekorPublicKeyPath":"{}""#,
                golden("fulcio_v1.crt.pem").display(),
                golden("rekor.pub").display()
            ),
        ),
        (
            "dir-img-cosign-pki-valid",
            "localhost:5000/test",
            format!(
                r#""pki":{{"caRootsPath":"{}","caIntermediatesPath":"{}","subjectEmail":"qiwan@redhat.com","subjectHostname":"myhost.example.com"}}"#,
                golden("pki_root_crts.pem").display(),
                golden("pki_intermediate_crts.pem").display()
            ),
        ),
    ] {
        let d = t.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(
            golden(&format!("{name}.manifest.json")),
            d.join("manifest.json"),
        )
        .unwrap();
        std::fs::copy(
            golden(&format!("{name}.signature-1")),
            d.join("signature-1"),
        )
        .unwrap();
        let policy = t.path().join(format!("{name}.json"));
        std::fs::write(
            &policy,
            format!(
                r#"{{"default":[{{"type":"sigstoreSigned",{requirement},"signedIdentity":{{"type":"exactRepository","dockerRepository":"{identity}"}}}}]}}"#
            ),
        )
        .unwrap();
        let r = ferry(&[
            "policy",
            "check",
            "--policy",
            policy.to_str().unwrap(),
            &format!("dir:{}", d.display()),
        ]);
        assert_eq!(r.code, 0, "{name}: {}\n{}", r.stdout, r.stderr);
        // Another identity is rejected, naming the identity the signature claims.
        let wrong = t.path().join(format!("{name}-wrong.json"));
        std::fs::write(
            &wrong,
            format!(
                r#"{{"default":[{{"type":"sigstoreSigned",{requirement},"signedIdentity":{{"type":"exactRepository","dockerRepository":"example.com/else"}}}}]}}"#
            ),
        )
        .unwrap();
        let r = ferry(&[
            "policy",
            "check",
            "--policy",
            wrong.to_str().unwrap(),
            &format!("dir:{}", d.display()),
        ])
        .code(1);
        assert!(r.stdout.contains(identity), "{name}: {}", r.stdout);
    }
}

#[test]
fn skopeo_and_ferry_exchange_sigstore_signatures_through_dir_and_attachments() {
    // Debian's skopeo cannot sign or verify sigstore signatures, but it copies them: attachment
    // to dir:, and dir: to attachment. ferry must read what it writes and the other way round.
    let w = world();
    w.attach_signature("one", &[]);
    let lax = insecure_policy(w.t.path());
    let skopeo_dir = w.t.path().join("skopeo-dir");
    skopeo(&[
        "copy",
        "--policy",
        lax.to_str().unwrap(),
        "--registries.d",
        w.regd.to_str().unwrap(),
        "--src-tls-verify=false",
        &format!("docker://{}", w.identity),
        &format!("dir:{}", skopeo_dir.display()),
    ])
    .ok();
    // ferry accepts skopeo's dir:, and writes the same signature file from the registry.
    w.check(&format!("dir:{}", skopeo_dir.display()), &[]).ok();
    let ferry_dir = w.t.path().join("ferry-dir");
    w.copy(
        &[],
        &format!("docker://{}", w.identity),
        &format!("dir:{}", ferry_dir.display()),
    )
    .ok();
    assert_eq!(
        std::fs::read(ferry_dir.join("signature-1")).unwrap(),
        std::fs::read(skopeo_dir.join("signature-1")).unwrap(),
        "the same bytes in containers/image's file form"
    );
    // skopeo pushes ferry's dir: to a registry as an attachment the generator verifies.
    skopeo(&[
        "copy",
        "--policy",
        lax.to_str().unwrap(),
        "--registries.d",
        w.regd.to_str().unwrap(),
        "--dest-tls-verify=false",
        &format!("dir:{}", ferry_dir.display()),
        &format!("docker://{}/via-skopeo/app:v1", w.reg.host()),
    ])
    .ok();
    sgen(&[
        "fetch-attachment",
        "--registry",
        &format!("http://{}", w.reg.host()),
        "--repo",
        "via-skopeo/app",
        "--digest",
        &w.digest,
        "--out",
        w.t.path().join("via-skopeo").to_str().unwrap(),
        "--pub",
        w.key.public.to_str().unwrap(),
    ])
    .ok();
    // And ferry reads skopeo's attachment back: the signature verifies, and is rejected only
    // because it names ns/app, not via-skopeo/app.
    let r = w
        .check(
            &format!("docker://{}/via-skopeo/app:v1", w.reg.host()),
            &["--format", "json"],
        )
        .code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let outcome = &v["verdict"]["slots"][0]["outcome"];
    assert_eq!(outcome["status"], "rejected", "{v}");
    assert!(
        outcome["reasons"][0]
            .as_str()
            .unwrap()
            .contains(&format!("Signature for identity \"{}\"", w.identity)),
        "{v}"
    );
}

#[test]
fn every_key_type_and_every_key_form_accepts_the_generators_signatures() {
    use base64::Engine as _;
    let w = world();
    let t = w.t.path();
    let b64 =
        |p: &Path| base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).unwrap());
    let dir_policy = |name: &str, requirement: String| {
        let p = t.join(format!("{name}.policy.json"));
        std::fs::write(
            &p,
            format!(
                r#"{{"default":[{{"type":"reject"}}],"transports":{{"dir":{{"":[{{"type":"sigstoreSigned",{requirement},"signedIdentity":{{"type":"exactReference","dockerReference":"{}"}}}}]}}}}}}"#,
                w.identity
            ),
        )
        .unwrap();
        p
    };
    let check = |policy: &Path, d: &Path| {
        ferry(&[
            "policy",
            "check",
            "--format",
            "json",
            "--policy",
            policy.to_str().unwrap(),
            &format!("dir:{}", d.display()),
        ])
    };
    // A signature the generator made with a key of each type cosign supports is accepted under
    // keyPath with the generator's public key, and rejected with another key of the same type.
    for kind in ["ecdsa-p384", "rsa-2048", "ed25519"] {
        let key = keygen(t, &format!("k-{kind}"), kind);
        let stranger = keygen(t, &format!("s-{kind}"), kind);
        let (p, s) = sign(t, &format!("by-{kind}"), &key, &w.digest, &w.identity);
        let f = t.join(format!("{kind}.sigfile"));
        sigfile(&p, &s, &f, &[]);
        let d = dir_with(&w, &format!("dir-{kind}"), &[&f]);
        let good = dir_policy(kind, format!(r#""keyPath":"{}""#, key.public.display()));
        let r = check(&good, &d).ok();
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["admitted"], true, "{kind}: {v}");
        let bad = dir_policy(
            &format!("{kind}-stranger"),
            format!(r#""keyPath":"{}""#, stranger.public.display()),
        );
        let r = check(&bad, &d).code(1);
        assert!(
            r.stdout
                .contains("cryptographic signature verification failed"),
            "{kind} under another key: {}",
            r.stdout
        );
    }

    // The four ways a policy names keys: keyPaths and keyDatas accept a signature by any one of
    // their keys, keyData is the key itself.
    let other = keygen(t, "other", "ecdsa-p256");
    let (p, s) = sign(t, "forms", &w.key, &w.digest, &w.identity);
    let f = t.join("forms.sigfile");
    sigfile(&p, &s, &f, &[]);
    let d = dir_with(&w, "dir-forms", &[&f]);
    let forms = [
        (
            "keyPaths",
            format!(
                r#""keyPaths":["{}","{}"]"#,
                other.public.display(),
                w.key.public.display()
            ),
            true,
        ),
        (
            "keyData",
            format!(r#""keyData":"{}""#, b64(&w.key.public)),
            true,
        ),
        (
            "keyDatas",
            format!(
                r#""keyDatas":["{}","{}"]"#,
                b64(&other.public),
                b64(&w.key.public)
            ),
            true,
        ),
        (
            "keyDatas-without-the-key",
            format!(r#""keyDatas":["{}"]"#, b64(&other.public)),
            false,
        ),
        (
            "keyPaths-without-the-key",
            format!(r#""keyPaths":["{}"]"#, other.public.display()),
            false,
        ),
    ];
    for (name, requirement, accepted) in forms {
        let policy = dir_policy(name, requirement);
        let r = check(&policy, &d);
        let v: serde_json::Value = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("{name}: {e}: {} {}", r.stdout, r.stderr));
        assert_eq!(v["admitted"], accepted, "{name}: {v}");
        assert_eq!(r.code, if accepted { 0 } else { 1 }, "{name}: {}", r.stderr);
    }
}

#[test]
fn remove_signatures_leaves_no_sigstore_signature_at_any_destination() {
    let w = world();
    w.attach_signature("one", &[]);
    let src = format!("docker://{}", w.identity);
    let tag = format!("sha256-{}.sig", &w.digest["sha256:".len()..]);

    let dir = w.t.path().join("dir");
    w.copy(
        &["--remove-signatures"],
        &src,
        &format!("dir:{}", dir.display()),
    )
    .ok();
    assert!(dir.join("manifest.json").exists());
    assert!(!dir.join("signature-1").exists());

    let layout = w.t.path().join("layout");
    w.copy(
        &["--remove-signatures"],
        &src,
        &format!("oci:{}:v1", layout.display()),
    )
    .ok();
    let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
    assert!(index.contains("\"v1\"") && !index.contains(&tag), "{index}");

    let store = w.t.path().join("store");
    let s = store.to_str().unwrap();
    w.copy(
        &["--remove-signatures", "--store", s],
        &src,
        "store:example.com/app:v1",
    )
    .ok();
    let list = ferry(&[
        "signatures",
        "list",
        "--format",
        "json",
        "--store",
        s,
        "store:example.com/app:v1",
    ])
    .ok()
    .stdout;
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    // The record keeps how the source's signature was judged (evidence of the pull), but
    // nothing was stored.
    let slots = v["slots"].as_array().unwrap();
    assert_eq!(v["last_copy"]["mode"], "remove-signatures", "{v}");
    assert!(
        slots.iter().all(|s| s["stored_as"].is_null()),
        "a signature was stored: {v}"
    );

    let reg2 = Registry::start();
    std::fs::write(
        w.regd.join("dest.yaml"),
        format!(
            "docker:\n  {}:\n    use-sigstore-attachments: true\n",
            reg2.host()
        ),
    )
    .unwrap();
    w.copy(
        &["--remove-signatures"],
        &src,
        &format!("docker://{}/mirror/app:v1", reg2.host()),
    )
    .ok();
    let tags = ferry(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/mirror/app", reg2.host()),
    ])
    .ok()
    .stdout;
    assert!(tags.contains("v1") && !tags.contains(&tag), "{tags}");
}

#[test]
fn a_copy_to_a_registry_keeps_the_attachments_already_there() {
    // containers/image appends to a destination's .sig attachment instead of replacing it: a
    // mirror that someone else also signed keeps that signature.
    let w = world();
    w.attach_signature("ours", &[]);
    let reg2 = Registry::start();
    let lax = insecure_policy(w.t.path());
    ferry(&[
        "copy",
        "-q",
        "--policy",
        lax.to_str().unwrap(),
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--remove-signatures",
        &format!("docker://{}", w.identity),
        &format!("docker://{}/mirror/app:v1", reg2.host()),
    ])
    .ok();
    let theirs = keygen(w.t.path(), "theirs", "ed25519");
    let (p, s) = sign(w.t.path(), "theirs", &theirs, &w.digest, &w.identity);
    sgen(&[
        "attach",
        "--registry",
        &format!("http://{}", reg2.host()),
        "--repo",
        "mirror/app",
        "--digest",
        &w.digest,
        "--sig",
        &format!("{}:{}", p.display(), s.display()),
    ])
    .ok();
    std::fs::write(
        w.regd.join("dest.yaml"),
        format!(
            "docker:\n  {}:\n    use-sigstore-attachments: true\n",
            reg2.host()
        ),
    )
    .unwrap();
    w.copy(
        &[],
        &format!("docker://{}", w.identity),
        &format!("docker://{}/mirror/app:v1", reg2.host()),
    )
    .ok();
    let fetched = w.t.path().join("fetched");
    sgen(&[
        "fetch-attachment",
        "--registry",
        &format!("http://{}", reg2.host()),
        "--repo",
        "mirror/app",
        "--digest",
        &w.digest,
        "--out",
        fetched.to_str().unwrap(),
    ])
    .ok();
    let files: Vec<_> = std::fs::read_dir(&fetched)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !fetched.join("signature-3").exists(),
        "two signatures, no duplicate: {files:?}"
    );
    // The one that was there stays first; ours is appended.
    gen_verifies(&fetched.join("signature-1"), &theirs, &w.digest);
    gen_verifies(&fetched.join("signature-2"), &w.key, &w.digest);
}

#[test]
fn sync_carries_sigstore_attachments_judges_them_and_skips_them_when_up_to_date() {
    let w = world();
    w.attach_signature("one", &[]);
    let reg2 = Registry::start();
    std::fs::write(
        w.regd.join("dest.yaml"),
        format!(
            "docker:\n  {}:\n    use-sigstore-attachments: true\n",
            reg2.host()
        ),
    )
    .unwrap();
    let report = w.t.path().join("report.json");
    let sync = |extra: &[&str]| {
        let mut a = vec![
            "sync",
            "--src",
            "docker",
            "--dest",
            "docker",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--report",
            report.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        let src = format!("{}/ns/app:v1", w.reg.host());
        let dst = format!("{}/mirror", reg2.host());
        a.extend([src.as_str(), dst.as_str()]);
        w.ferry(&a)
    };
    let read_report = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap()
    };
    sync(&[]).ok();
    let r = read_report();
    assert_eq!(r["images"][0]["status"], "copied", "{r:#}");
    // The attachment is at the mirror, and the independent verifier accepts it there.
    sgen(&[
        "fetch-attachment",
        "--registry",
        &format!("http://{}", reg2.host()),
        "--repo",
        "mirror/app",
        "--digest",
        &w.digest,
        "--out",
        w.t.path().join("mirrored").to_str().unwrap(),
        "--pub",
        w.key.public.to_str().unwrap(),
    ])
    .ok();
    // Up to date, its sigstore signature present: skipped.
    sync(&[]).ok();
    assert_eq!(read_report()["images"][0]["status"], "skipped");

    // An image whose only signature is by another key is rejected by the gate, and sync says
    // so in its exit status and its report.
    let other = keygen(w.t.path(), "stranger", "ecdsa-p256");
    let (p, s) = sign(w.t.path(), "stranger", &other, &w.digest, &w.identity);
    sgen(&[
        "attach",
        "--registry",
        &format!("http://{}", w.reg.host()),
        "--repo",
        "ns/other",
        "--digest",
        &w.digest,
        "--sig",
        &format!("{}:{}", p.display(), s.display()),
    ])
    .ok();
    let lax = insecure_policy(w.t.path());
    ferry(&[
        "copy",
        "-q",
        "--policy",
        lax.to_str().unwrap(),
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--remove-signatures",
        &format!("docker://{}", w.identity),
        &format!("docker://{}/ns/other:v1", w.reg.host()),
    ])
    .ok();
    let mut a = vec![
        "sync",
        "--src",
        "docker",
        "--dest",
        "docker",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--report",
        report.to_str().unwrap(),
    ];
    let src = format!("{}/ns/other:v1", w.reg.host());
    let dst = format!("{}/mirror", reg2.host());
    a.extend([src.as_str(), dst.as_str()]);
    let out = w.ferry(&a).code(1);
    let r = read_report();
    assert_eq!(
        r["images"][0]["status"], "rejected",
        "{r:#}\n{}",
        out.stderr
    );
    assert!(
        r["images"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("cryptographic signature verification failed"),
        "{r:#}"
    );
}
