//! The forensic view answers for one name. The store keeps signatures and records by manifest
//! digest, so two names that share a manifest must not borrow each other's history: an image
//! pulled unsigned under an accept-anything policy stays unsigned and unjudged in its own view
//! after the same bytes arrive signed, through a strict policy, under another name.

mod support;

use std::path::{Path, PathBuf};

use support::*;

const TRUSTED: &str = "AFCA7DD98C6402B90C4D1806249DB7E4B7E11E5C";

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/demo")
}

fn demo_policy(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(demo().join("policy.json.in"))
        .unwrap()
        .replace("@DEMO@", demo().to_str().unwrap());
    let p = dir.join("policy.json");
    std::fs::write(&p, text).unwrap();
    p
}

struct World {
    t: tempfile::TempDir,
    store: PathBuf,
    strict: PathBuf,
    lax: PathBuf,
}

const GOOD: &str = "store:test/good:v1";
const SIGNED: &str = "store:newbie/signed:v1";

impl World {
    fn new() -> World {
        let t = tempfile::tempdir().unwrap();
        World {
            store: t.path().join("store"),
            strict: demo_policy(t.path()),
            lax: insecure_policy(t.path()),
            t,
        }
    }
    fn run(&self, args: &[&str]) -> Run {
        let mut a = args.to_vec();
        a.extend(["--store", self.store.to_str().unwrap()]);
        ferry(&a)
    }
    fn pull_unsigned(&self) {
        let src = format!("dir:{}", demo().join("hello-dir").display());
        self.run(&[
            "copy",
            "-q",
            "--remove-signatures",
            "--policy",
            self.lax.to_str().unwrap(),
            &src,
            GOOD,
        ])
        .ok();
    }
    fn pull_signed(&self) {
        let src = format!("dir:{}", demo().join("hello-dir").display());
        self.run(&[
            "copy",
            "-q",
            "--signatures",
            "sufficient-subset",
            "--policy",
            self.strict.to_str().unwrap(),
            &src,
            SIGNED,
        ])
        .ok();
    }
    fn list(&self, image: &str) -> serde_json::Value {
        let r = self
            .run(&["signatures", "list", "--format", "json", image])
            .ok();
        serde_json::from_str(&r.stdout).unwrap()
    }
}

fn check_views(w: &World) {
    // The unsigned name's own history: its copy (which read the source's three slots and kept
    // none, judged by an accept-anything policy), and the other name marked as other.
    let good = w.list(GOOD);
    assert_eq!(good["image"], "store:docker.io/test/good:v1", "{good}");
    assert_eq!(good["records"], 1, "{good}");
    assert_eq!(
        good["last_copy"]["destination"],
        "store:docker.io/test/good:v1"
    );
    assert_eq!(good["last_copy"]["mode"], "remove-signatures", "{good}");
    let slots = good["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 3, "{good}");
    for s in slots {
        assert!(s["stored_as"].is_null(), "{good}");
        assert_ne!(s["verdict"]["status"], "accepted", "{good}");
    }
    let others = good["other_names"].as_array().unwrap();
    assert_eq!(others.len(), 1, "{good}");
    assert_eq!(others[0]["destination"], "store:docker.io/newbie/signed:v1");
    assert_eq!(others[0]["accepted"], true);

    let text = w.run(&["signatures", "list", GOOD]).ok().stdout;
    let (own, rest) = text
        .split_once("under other names")
        .unwrap_or_else(|| panic!("other names are listed apart: {text}"));
    assert!(
        !own.contains("accepted by requirement") && !own.contains(TRUSTED),
        "another name's verdict is not shown as this one's: {text}"
    );
    assert!(rest.contains("newbie/signed:v1"), "{text}");

    // The signed name keeps its own slots and verdicts.
    let signed = w.list(SIGNED);
    let slots = signed["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 3, "{signed}");
    assert_eq!(slots[0]["verdict"]["status"], "accepted");
    assert_eq!(
        signed["other_names"][0]["destination"],
        "store:docker.io/test/good:v1"
    );

    // Judged now through the strict policy: the unsigned name has no signature of its own.
    let r = w
        .run(&[
            "signatures",
            "verify",
            "--policy",
            w.strict.to_str().unwrap(),
            GOOD,
        ])
        .code(1);
    assert!(r.stdout.contains("REJECTED"), "{}", r.stdout);
    assert!(!r.stdout.contains("ACCEPTED"), "{}", r.stdout);
    w.run(&[
        "signatures",
        "verify",
        "--policy",
        w.strict.to_str().unwrap(),
        SIGNED,
    ])
    .ok();

    // Copied out of the store, each name carries its own signatures.
    let out_good =
        w.t.path()
            .join(format!("out-good-{}", rand::random::<u32>()));
    w.run(&[
        "copy",
        "-q",
        "--policy",
        w.lax.to_str().unwrap(),
        GOOD,
        &format!("dir:{}", out_good.display()),
    ])
    .ok();
    assert!(!out_good.join("signature-1").exists());
    let out_signed =
        w.t.path()
            .join(format!("out-signed-{}", rand::random::<u32>()));
    w.run(&[
        "copy",
        "-q",
        "--policy",
        w.lax.to_str().unwrap(),
        SIGNED,
        &format!("dir:{}", out_signed.display()),
    ])
    .ok();
    assert!(out_signed.join("signature-2").exists());
    assert!(!out_signed.join("signature-3").exists());

    // Export of the unsigned name holds no signature and only its own record.
    let export = w.t.path().join(format!("export-{}", rand::random::<u32>()));
    w.run(&["signatures", "export", GOOD, export.to_str().unwrap()])
        .ok();
    assert!(!export.join("signature-1").exists());
    assert_eq!(
        std::fs::read_dir(export.join("records")).unwrap().count(),
        1
    );
}

#[test]
fn two_names_over_one_manifest_keep_their_own_history_unsigned_first() {
    let w = World::new();
    w.pull_unsigned();
    w.pull_signed();
    check_views(&w);
}

#[test]
fn two_names_over_one_manifest_keep_their_own_history_signed_first() {
    let w = World::new();
    w.pull_signed();
    w.pull_unsigned();
    check_views(&w);
}

#[test]
fn a_later_pull_never_removes_the_evidence_of_an_earlier_one() {
    // The same name pulled again without signatures: the signatures of the first pull stay in
    // the store, and the first record still finds them.
    let w = World::new();
    w.pull_signed();
    let src = format!("dir:{}", demo().join("hello-dir").display());
    w.run(&[
        "copy",
        "-q",
        "--remove-signatures",
        "--policy",
        w.lax.to_str().unwrap(),
        &src,
        SIGNED,
    ])
    .ok();
    let l = w.list(SIGNED);
    assert_eq!(l["records"], 2, "{l}");
    assert_eq!(l["last_copy"]["mode"], "remove-signatures");
    let sigs = w
        .store
        .join("signatures")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(sigs.join("signature-1").exists() && sigs.join("signature-2").exists());
}

#[test]
fn signatures_of_an_image_outside_the_store_are_what_its_source_serves_now() {
    // The demo as a dir: image: signature-1 by the trusted key, signature-2 an HTML page,
    // signature-3 by an untrusted key. Outside the store there is no record: every slot as
    // read, not judged.
    let w = World::new();
    let dir = demo().join("hello-dir");
    let src = format!("dir:{}", dir.display());
    let json = |args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&ferry(args).ok().stdout).unwrap()
    };
    let listed = json(&["signatures", "list", "--format", "json", &src]);
    let slots = listed["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 3, "{listed}");
    assert_eq!(slots[0]["decoded"]["issuers"][0], TRUSTED);
    assert!(
        slots[1]["decoded"]["error"]
            .as_str()
            .unwrap()
            .contains("0x3c"),
        "the HTML slot says what it is: {listed}"
    );
    assert!(slots[0]["verdict"].is_null(), "not judged: {listed}");
    let text = ferry(&["signatures", "list", &src]).ok().stdout;
    assert!(text.contains("3 signature slot(s) served now"), "{text}");
    assert!(
        text.contains("source slot 2\n") && text.contains("looks like an HTML page"),
        "{text}"
    );

    // show numbers signatures by their slot.
    let shown = json(&[
        "signatures",
        "show",
        "--slot",
        "3",
        "--format",
        "json",
        &src,
    ]);
    assert_eq!(shown[0]["signature"], "signature-3");
    assert_ne!(shown[0]["decoded"]["issuers"][0], TRUSTED);
    let r = ferry(&["signatures", "show", "--slot", "4", &src]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("signature-4 (it has 3)"), "{}", r.stderr);

    // export writes the manifest and the signatures byte for byte as served.
    let out = w.t.path().join("export");
    ferry(&["signatures", "export", &src, out.to_str().unwrap()]).ok();
    let read = |p: &Path| std::fs::read(p).unwrap();
    for f in ["manifest.json", "signature-1", "signature-2", "signature-3"] {
        assert_eq!(read(&out.join(f)), read(&dir.join(f)), "{f}");
    }
    let again = ferry(&["signatures", "export", &src, out.to_str().unwrap()]);
    assert_ne!(
        again.code, 0,
        "an export never writes into a directory that is not empty"
    );

    // verify judges them as a copy-all copy would (as policy check): the HTML slot refuses it.
    let strict = w.strict.to_str().unwrap();
    let r = ferry(&["signatures", "verify", "--policy", strict, &src]).code(1);
    assert!(r.stdout.contains("REFUSED"), "{}", r.stdout);

    // The same through a registry, with skopeo's single-image flags: pushed with the readable
    // signatures to the registry's lookaside, then read back.
    let reg = support::registry::Registry::start();
    let sigs = w.t.path().join("sigs");
    let rd = w.t.path().join("registries.d");
    std::fs::create_dir_all(&rd).unwrap();
    std::fs::write(
        rd.join("l.yaml"),
        format!(
            "docker:\n  {}:\n    lookaside: file://{}\n",
            reg.host(),
            sigs.display()
        ),
    )
    .unwrap();
    let remote = format!("docker://{}/demo/hello:1", reg.host());
    let rd = rd.to_str().unwrap();
    ferry(&[
        "copy",
        "-q",
        "--signatures",
        "sufficient-subset",
        "--policy",
        strict,
        "--registries.d",
        rd,
        "--dest-tls-verify=false",
        &src,
        &remote,
    ])
    .ok();
    let flags = ["--tls-verify=false", "--registries.d", rd];
    let listed = json(
        &[
            &["signatures", "list", "--format", "json"][..],
            &flags,
            &[&remote],
        ]
        .concat(),
    );
    let slots = listed["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 2, "{listed}");
    assert!(
        slots[0]["location"]
            .as_str()
            .unwrap()
            .starts_with("file://"),
        "{listed}"
    );
    assert_eq!(slots[0]["decoded"]["issuers"][0], TRUSTED);
    // The demo policy trusts the key for dir: and store: only (docker: is rejected); with the
    // same requirement for docker:, the registry's signatures are accepted.
    let verify = |policy: &str| {
        ferry(
            &[
                &["signatures", "verify", "--policy", policy][..],
                &flags,
                &[&remote],
            ]
            .concat(),
        )
    };
    let r = verify(strict).code(1);
    assert!(r.stdout.contains("REFUSED"), "{}", r.stdout);
    let mut p: serde_json::Value = serde_json::from_slice(&std::fs::read(strict).unwrap()).unwrap();
    p["transports"]["docker"] = p["transports"]["dir"].clone();
    let docker_policy = w.t.path().join("docker-policy.json");
    std::fs::write(&docker_policy, p.to_string()).unwrap();
    let r = verify(docker_policy.to_str().unwrap()).ok();
    assert!(r.stdout.contains("ADMITTED"), "{}", r.stdout);
    // Without the registry's TLS flag ferry asks for https, which this registry does not
    // speak: a failure to check (3), not a rejection.
    let r = ferry(&["signatures", "list", "--registries.d", rd, &remote]);
    assert_eq!(r.code, 3, "{}", r.stderr);
}
