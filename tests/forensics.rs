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
