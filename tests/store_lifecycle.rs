//! The store's lifecycle (`ferry store list|rm|prune|check|df`): prune keeps what names share,
//! never takes the blobs of a copy landing at the same time, and can be killed at any point;
//! check names damaged files and repair fetches them again; removing a name keeps its
//! evidence unless asked, and old records go only when asked.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::registry::Registry;
use support::*;

/// A store and a source layout in a temporary directory.
struct World {
    t: tempfile::TempDir,
    store: PathBuf,
    src: PathBuf,
    policy: PathBuf,
}

impl World {
    fn new() -> World {
        let t = tempfile::tempdir().unwrap();
        World {
            store: t.path().join("store"),
            src: t.path().join("src"),
            policy: insecure_policy(t.path()),
            t,
        }
    }

    /// `ferry ARGS --store STORE`.
    fn run(&self, args: &[&str]) -> Run {
        let mut a = args.to_vec();
        a.extend(["--store", self.store.to_str().unwrap()]);
        ferry(&a)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["--format", "json"]);
        let r = self.run(&a).ok();
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
    }

    /// The copy of `oci:SRC:tag` into `store:name`, as a command not yet started.
    fn copy_cmd(&self, tag: &str, name: &str) -> Command {
        let mut c = Command::new(ferry_bin());
        c.args(["copy", "-q", "--policy", self.policy.to_str().unwrap()])
            .args(["--store", self.store.to_str().unwrap()])
            .arg(format!("oci:{}:{tag}", self.src.display()))
            .arg(format!("store:{name}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    fn copy_in(&self, tag: &str, name: &str) {
        let r = run(&mut self.copy_cmd(tag, name));
        assert_eq!(r.code, 0, "copy {tag} -> {name}: {}", r.stderr);
    }

    fn prune_cmd(&self) -> Command {
        let mut c = Command::new(ferry_bin());
        c.args(["store", "prune", "--store", self.store.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    fn blob(&self, digest: &str) -> PathBuf {
        self.store
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// The image's bytes as the store gives them back, copied out through ferry.
    fn copied_out(&self, name: &str) -> PathBuf {
        let out = self.t.path().join(format!(
            "out-{}-{}",
            name.replace(['/', ':'], "_"),
            rand::random::<u32>()
        ));
        self.run(&[
            "copy",
            "-q",
            "--policy",
            self.policy.to_str().unwrap(),
            &format!("store:{name}"),
            &format!("dir:{}", out.display()),
        ])
        .ok();
        out
    }

    fn assert_whole(&self, name: &str, image: &TestImage) {
        let out = self.copied_out(name);
        assert_eq!(
            std::fs::read(out.join("manifest.json")).unwrap(),
            image.manifest
        );
        for l in &image.layers {
            let d = sha256(l);
            assert_eq!(
                &std::fs::read(out.join(d.trim_start_matches("sha256:"))).unwrap(),
                l,
                "layer {d} of {name}"
            );
        }
    }

    fn check_passes(&self, context: &str) {
        let r = self.run(&["store", "check"]);
        assert_eq!(
            r.code, 0,
            "{context}: check\nstdout:\n{}\nstderr:\n{}",
            r.stdout, r.stderr
        );
    }
}

/// Two images sharing their first two layers (500 kB), each with one layer of its own
/// (`own_a` and `own_b` bytes).
fn two_sharing_images(src: &Path, own_a: usize, own_b: usize) -> (TestImage, TestImage) {
    let shared = [pseudo_random(7001, 300_000), pseudo_random(7002, 200_000)];
    let a = build_image(
        "amd64",
        vec![
            shared[0].clone(),
            shared[1].clone(),
            pseudo_random(7003, own_a),
        ],
    );
    let b = build_image(
        "amd64",
        vec![
            shared[0].clone(),
            shared[1].clone(),
            pseudo_random(7004, own_b),
        ],
    );
    write_oci_image(src, "a", &a);
    write_oci_image(src, "b", &b);
    (a, b)
}

fn digests_of(image: &TestImage) -> Vec<String> {
    let mut d = image.layers_digests();
    d.push(sha256(&image.config));
    d.push(image.digest.clone());
    d
}

#[test]
fn prune_after_removing_one_of_two_images_that_share_layers_keeps_the_shared_ones() {
    let w = World::new();
    let (a, b) = two_sharing_images(&w.src, 100_000, 100_000);
    w.copy_in("a", "example.com/a:1");
    w.copy_in("b", "example.com/b:1");

    let list = w.json(&["store", "list"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["example.com/a:1", "example.com/b:1"]);
    let size_a: u64 = a.layers.iter().map(|l| l.len() as u64).sum::<u64>()
        + a.config.len() as u64
        + a.manifest.len() as u64;
    assert_eq!(list[0]["size"], size_a, "{list}");
    assert_eq!(list[0]["digest"], a.digest.as_str());
    assert_eq!(list[0]["verdict"], "accepted");
    assert_eq!(list[0]["mode"], "copy-all");
    assert!(list[0]["last_copy"].is_string(), "{list}");
    let text = w.run(&["store", "list"]).ok().stdout;
    assert!(
        text.contains("example.com/b:1") && text.contains("accepted"),
        "{text}"
    );

    let df = w.json(&["store", "df"]);
    assert_eq!(df["blobs"]["shared"]["count"], 2, "{df}");
    assert_eq!(df["blobs"]["shared"]["bytes"], 500_000, "{df}");
    assert_eq!(df["blobs"]["unreferenced"]["count"], 0, "{df}");
    assert_eq!(df["images"][0]["unique"], size_a - 500_000, "{df}");

    w.run(&["store", "rm", "example.com/a:1"]).ok();
    let df = w.json(&["store", "df"]);
    assert_eq!(df["blobs"]["unreferenced"]["count"], 3, "{df}");
    assert_eq!(df["blobs"]["shared"]["count"], 0, "{df}");

    // A dry run says what would go and how many bytes, and removes nothing.
    let dry = w.run(&["store", "prune", "--dry-run"]).ok().stdout;
    let own_a: Vec<String> = vec![sha256(&a.layers[2]), sha256(&a.config), a.digest.clone()];
    for d in &own_a {
        assert!(dry.contains(d.as_str()), "{d} in {dry}");
        assert!(w.blob(d).exists(), "dry run removed {d}");
    }
    assert!(dry.contains("would remove 3 blob(s)"), "{dry}");
    let dry_json = w.json(&["store", "prune", "--dry-run"]);
    assert_eq!(dry_json["dry_run"], true);
    assert_eq!(
        dry_json["blob_bytes"],
        (a.layers[2].len() + a.config.len() + a.manifest.len()) as u64
    );

    let pruned = w.json(&["store", "prune"]);
    assert_eq!(pruned["blobs"].as_array().unwrap().len(), 3, "{pruned}");
    for d in &own_a {
        assert!(!w.blob(d).exists(), "{d} is A's own and goes");
    }
    for d in digests_of(&b) {
        assert!(
            w.blob(&d).exists(),
            "{d} is B's (shared or its own) and stays"
        );
    }
    w.check_passes("after prune");
    w.assert_whole("example.com/b:1", &b);
    // Nothing more to prune.
    let again = w.json(&["store", "prune"]);
    assert_eq!(again["blobs"].as_array().unwrap().len(), 0, "{again}");
}

/// Temporaries a running copy has in `blobs/sha256` (streams and holds), not session locks.
fn copy_is_writing(store: &Path) -> bool {
    std::fs::read_dir(store.join("blobs/sha256")).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(".ferry-tmp-") && !n.ends_with(".lock")
        })
    })
}

fn wait_ok(mut child: Child, what: &str) {
    let status = child.wait().unwrap();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "{what} failed ({status}): {err}");
}

#[test]
fn prune_during_a_copy_never_takes_the_copys_blobs_repeated() {
    let w = World::new();
    // B's own layer is large, so its copy is still streaming after it decided to reuse the
    // shared layers, which A's removal left unreferenced: exactly what a prune removes.
    let (_, b) = two_sharing_images(&w.src, 1_000, 12_000_000);
    let rounds = 10;
    let mut overlapped = 0;
    for round in 0..rounds {
        w.copy_in("a", "example.com/a:1");
        w.run(&["store", "rm", "example.com/a:1"]).ok();
        let copy = w.copy_cmd("b", "example.com/b:1").spawn().unwrap();
        let prune = if round % 2 == 0 {
            // Both started at once.
            w.prune_cmd().spawn().unwrap()
        } else {
            // Prune started once the copy is writing blobs (it has decided what to reuse).
            let deadline = Instant::now() + Duration::from_secs(20);
            while !copy_is_writing(&w.store) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if copy_is_writing(&w.store) {
                overlapped += 1;
            }
            w.prune_cmd().spawn().unwrap()
        };
        wait_ok(copy, &format!("round {round}: the copy"));
        wait_ok(prune, &format!("round {round}: the prune"));
        w.check_passes(&format!("round {round}"));
        for d in digests_of(&b) {
            assert!(
                w.blob(&d).exists(),
                "round {round}: {d} of the copy is there"
            );
        }
        w.assert_whole("example.com/b:1", &b);
        w.run(&["store", "rm", "example.com/b:1"]).ok();
        w.run(&["store", "prune"]).ok();
        let left: Vec<String> = std::fs::read_dir(w.store.join("blobs/sha256"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            left.is_empty(),
            "round {round}: everything pruned: {left:?}"
        );
    }
    // Of the rounds that waited for the copy to write, most must have overlapped for real
    // (a copy that ends before the prune starts would test nothing).
    let waited = rounds / 2;
    assert!(
        overlapped * 2 > waited,
        "the prune ran while the copy was writing in only {overlapped} of the {waited} rounds that waited for it"
    );
}

fn holds_of(store: &Path, digest: &str) -> bool {
    let suffix = format!("-hold-{}", digest.trim_start_matches("sha256:"));
    std::fs::read_dir(store.join("blobs/sha256")).is_ok_and(|rd| {
        rd.flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(&suffix))
    })
}

#[test]
fn a_copy_in_flight_keeps_its_blobs_through_a_prune_and_gets_back_what_a_racing_prune_removed() {
    let w = World::new();
    let (_, b) = two_sharing_images(&w.src, 1_000, 200_000);
    w.copy_in("a", "example.com/a:1");
    w.run(&["store", "rm", "example.com/a:1"]).ok();
    // B as a dir: image whose own layer is a FIFO: the copy reuses the shared layers (now
    // unreferenced), then waits on the FIFO until this test lets it finish.
    let dir = w.t.path().join("b-dir");
    w.run(&[
        "copy",
        "-q",
        "--policy",
        w.policy.to_str().unwrap(),
        &format!("oci:{}:b", w.src.display()),
        &format!("dir:{}", dir.display()),
    ])
    .ok();
    let own = sha256(&b.layers[2]);
    let fifo = dir.join(own.trim_start_matches("sha256:"));
    std::fs::remove_file(&fifo).unwrap();
    let mkfifo = require_tool("mkfifo", "coreutils");
    assert!(Command::new(mkfifo).arg(&fifo).status().unwrap().success());

    let mut copy = Command::new(ferry_bin());
    copy.args(["copy", "-q", "--policy", w.policy.to_str().unwrap()])
        .args(["--store", w.store.to_str().unwrap()])
        .arg(format!("dir:{}", dir.display()))
        .arg("store:example.com/b:1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut copy = copy.spawn().unwrap();
    // Opening the FIFO for writing returns once the copy has opened it for reading; the copy
    // then waits for the bytes, which this thread sends when told to.
    let (opened_tx, opened_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<bool>();
    let writer = {
        let (fifo, bytes) = (fifo.clone(), b.layers[2].clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            opened_tx.send(()).unwrap();
            if go_rx.recv().unwrap_or(false) {
                let _ = f.write_all(&bytes);
            }
        })
    };
    let shared = [sha256(&b.layers[0]), sha256(&b.layers[1])];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut opened = false;
    while !(opened && shared.iter().all(|d| holds_of(&w.store, d))) {
        opened = opened || opened_rx.try_recv().is_ok();
        if Instant::now() > deadline || copy.try_wait().unwrap().is_some() {
            // Unblock the writer before failing.
            let _ = std::fs::File::open(&fifo);
            let _ = go_tx.send(false);
            let _ = copy.kill();
            let out = copy.wait_with_output().unwrap();
            panic!(
                "the copy did not hold the shared layers while reading its own (opened: {opened}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }

    // A prune now: the shared layers are needed by no name, but a copy in flight holds them.
    let r = w.json(&["store", "prune"]);
    // The shared layers, and B's config if it is written already.
    assert!(r["held_blobs"].as_u64().unwrap() >= 2, "{r}");
    assert_eq!(r["blobs"].as_array().unwrap().len(), 3, "A's own go: {r}");
    for d in &shared {
        assert!(w.blob(d).exists(), "{d} is held by the copy and stays");
    }
    // A prune that listed the blobs just before the copy held them removes their names
    // anyway: the same unlink, done here at the worst moment.
    for d in &shared {
        std::fs::remove_file(w.blob(d)).unwrap();
    }

    // Let the copy finish: its commit puts the held layers back before it names them.
    go_tx.send(true).unwrap();
    writer.join().unwrap();
    wait_ok(copy, "the copy");
    w.check_passes("after a copy whose blobs a prune removed in flight");
    w.assert_whole("example.com/b:1", &b);
}

#[test]
fn a_prune_killed_midway_leaves_a_store_that_check_passes() {
    let w = World::new();
    let (a, b) = two_sharing_images(&w.src, 50_000, 50_000);
    w.copy_in("a", "example.com/a:1");
    w.copy_in("b", "example.com/b:1");
    w.run(&["store", "rm", "example.com/a:1"]).ok();
    // Many blobs no name needs, so the prune is still removing them when it is killed. A
    // prune removes in digest order: the first and the last tell whether it started and
    // whether it finished.
    let mut garbage = 4_000;
    let mut killed_midway = false;
    for attempt in 0..4 {
        let mut digests = Vec::new();
        for i in 0..garbage {
            let bytes = format!("garbage {attempt} {i}").into_bytes();
            let d = sha256(&bytes);
            std::fs::write(w.blob(&d), &bytes).unwrap();
            digests.push(d);
        }
        digests.sort();
        let (first, last) = (
            w.blob(digests.first().unwrap()),
            w.blob(digests.last().unwrap()),
        );
        let mut prune = w.prune_cmd().spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while first.exists() && Instant::now() < deadline {
            std::hint::spin_loop();
        }
        prune.kill().unwrap();
        let _ = prune.wait();
        if last.exists() && !first.exists() {
            killed_midway = true;
            break;
        }
        garbage *= 2;
    }
    assert!(
        killed_midway,
        "the prune was killed while it was removing blobs"
    );
    w.check_passes("after a prune killed with SIGKILL");
    w.assert_whole("example.com/b:1", &b);
    // The next prune finishes the work.
    w.run(&["store", "prune"]).ok();
    for d in digests_of(&a)
        .iter()
        .filter(|d| !digests_of(&b).contains(d))
    {
        assert!(!w.blob(d).exists(), "{d}");
    }
    w.check_passes("after the next prune");
}

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/demo")
}

fn demo_policy(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(demo().join("policy.json.in"))
        .unwrap()
        .replace("@DEMO@", demo().to_str().unwrap());
    let p = dir.join("strict-policy.json");
    std::fs::write(&p, text).unwrap();
    p
}

/// Pulls the signed demo image into the store as `name` through the strict policy; its two
/// readable signatures are stored.
fn pull_signed(w: &World, name: &str) -> String {
    let strict = demo_policy(w.t.path());
    w.run(&[
        "copy",
        "-q",
        "--signatures",
        "sufficient-subset",
        "--policy",
        strict.to_str().unwrap(),
        &format!("dir:{}", demo().join("hello-dir").display()),
        &format!("store:{name}"),
    ])
    .ok();
    let m = std::fs::read(demo().join("hello-dir/manifest.json")).unwrap();
    sha256(&m)
}

fn signature_dir(w: &World, digest: &str) -> PathBuf {
    w.store.join("signatures").join(digest.replace(':', "-"))
}

fn record_files(w: &World, digest: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(w.store.join("records").join(digest.replace(':', "-")))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn check_finds_a_flipped_byte_in_a_layer_and_a_truncated_signature_and_names_the_files() {
    let w = World::new();
    let img = make_oci_image(&w.src, "v1", 81, 2, 300_000);
    w.copy_in("v1", "example.com/app:1");
    let signed = pull_signed(&w, "example.com/hello:1");
    w.check_passes("a fresh store");

    // One byte of a layer flipped in place (same size: reuse by size would not notice).
    let layer = w.blob(&sha256(&img.layers[1]));
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[150_000] ^= 0x01;
    std::fs::write(&layer, &bytes).unwrap();
    // A stored signature cut in half.
    let sig = signature_dir(&w, &signed).join("signature-1");
    let sig_bytes = std::fs::read(&sig).unwrap();
    std::fs::write(&sig, &sig_bytes[..sig_bytes.len() / 2]).unwrap();

    let r = w.run(&["store", "check"]).code(1);
    let layer_line = r
        .stdout
        .lines()
        .find(|l| l.starts_with(layer.to_str().unwrap()))
        .unwrap_or_else(|| panic!("the layer's file is named: {}", r.stdout));
    assert!(layer_line.contains("corrupt-blob"), "{layer_line}");
    assert!(
        layer_line.contains("example.com/app:1"),
        "who needs it: {layer_line}"
    );
    let sig_line = r
        .stdout
        .lines()
        .find(|l| l.starts_with(sig.to_str().unwrap()))
        .unwrap_or_else(|| panic!("the signature's file is named: {}", r.stdout));
    assert!(sig_line.contains("damaged-signature"), "{sig_line}");
    // The record that wrote it no longer finds it, and says which file is damaged.
    assert!(
        r.stdout.contains("lost-signature") && r.stdout.contains("damaged here: signature-1"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("problem(s) found"), "{}", r.stderr);
    assert!(r.stderr.contains("--repair"), "{}", r.stderr);

    let json = {
        let r = w.run(&["store", "check", "--format", "json"]).code(1);
        serde_json::from_str::<Value>(&r.stdout).unwrap()
    };
    let problems = json["check"]["problems"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| (p["kind"].as_str().unwrap(), p["path"].as_str().unwrap()))
        .collect();
    assert!(
        kinds.contains(&("corrupt-blob", layer.to_str().unwrap())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("damaged-signature", sig.to_str().unwrap())),
        "{kinds:?}"
    );
    assert_eq!(problems.len(), 3, "{kinds:?}");

    // One name at a time: the signed image does not need the damaged layer.
    let r = w.run(&["store", "check", "example.com/app:1"]).code(1);
    assert!(!r.stdout.contains("signature-1"), "{}", r.stdout);
    let r = w
        .run(&["store", "check", "store:example.com/hello:1"])
        .code(1);
    assert!(!r.stdout.contains(layer.to_str().unwrap()), "{}", r.stdout);
    assert!(r.stdout.contains("damaged-signature"), "{}", r.stdout);

    // A missing blob is named too; a check of nothing is a failure to check, not damage.
    std::fs::remove_file(w.blob(&sha256(&img.config))).unwrap();
    let r = w.run(&["store", "check", "example.com/app:1"]).code(1);
    assert!(r.stdout.contains("missing-blob"), "{}", r.stdout);
    w.run(&["store", "check", "example.com/nothing:1"]).code(3);
    ferry(&[
        "store",
        "check",
        "--store",
        w.t.path().join("no-store").to_str().unwrap(),
    ])
    .code(3);
}

#[test]
fn repair_restores_damaged_and_missing_blobs_from_the_registry() {
    let reg = Registry::start();
    let w = World::new();
    let img = make_oci_image(&w.src, "v1", 91, 3, 400_000);
    make_oci_image(&w.src, "other", 92, 1, 1000);
    // Pushed by ferry, byte for byte (skopeo would compress the layers).
    for (tag, repo) in [("v1", "lc/app:v1"), ("other", "lc/other:v1")] {
        w.run(&[
            "copy",
            "-q",
            "--policy",
            w.policy.to_str().unwrap(),
            "--dest-tls-verify=false",
            &format!("oci:{}:{tag}", w.src.display()),
            &format!("docker://{}/{repo}", reg.host()),
        ])
        .ok();
    }
    w.run(&[
        "copy",
        "-q",
        "--policy",
        w.policy.to_str().unwrap(),
        "--src-tls-verify=false",
        &format!("docker://{}/lc/app:v1", reg.host()),
        "store:example.com/app:1",
    ])
    .ok();
    let flipped = w.blob(&sha256(&img.layers[0]));
    let mut bytes = std::fs::read(&flipped).unwrap();
    bytes[10] ^= 0x80;
    std::fs::write(&flipped, &bytes).unwrap();
    let removed = w.blob(&sha256(&img.layers[2]));
    std::fs::remove_file(&removed).unwrap();
    let config = w.blob(&sha256(&img.config));
    std::fs::write(&config, b"{}").unwrap();
    w.run(&["store", "check"]).code(1);

    // From an image without those blobs: nothing can be repaired, the damage stays (exit 1).
    let r = w
        .run(&[
            "store",
            "check",
            "--tls-verify=false",
            "--repair",
            &format!("docker://{}/lc/other:v1", reg.host()),
        ])
        .code(1);
    assert!(r.stdout.contains("could not repair"), "{}", r.stdout);
    // An unreachable source: the check could not be completed as asked (exit 3).
    w.run(&[
        "store",
        "check",
        "--tls-verify=false",
        "--retry-times",
        "0",
        "--repair",
        "docker://127.0.0.1:9/lc/app:v1",
    ])
    .code(3);

    let r = w
        .run(&[
            "store",
            "check",
            "--tls-verify=false",
            "--repair",
            &format!("docker://{}/lc/app:v1", reg.host()),
        ])
        .ok();
    for p in [&flipped, &removed, &config] {
        assert!(
            r.stdout.contains(&format!("repaired {}", p.display())),
            "{} repaired: {}",
            p.display(),
            r.stdout
        );
    }
    assert_eq!(std::fs::read(&flipped).unwrap(), img.layers[0]);
    assert_eq!(std::fs::read(&removed).unwrap(), img.layers[2]);
    assert_eq!(std::fs::read(&config).unwrap(), img.config);
    w.check_passes("after repair");
    w.assert_whole("example.com/app:1", &img);
    let left: Vec<String> = std::fs::read_dir(w.store.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ferry-tmp-"))
        .collect();
    assert!(left.is_empty(), "repair leaves no temporaries: {left:?}");

    // A damaged manifest is fetched again too, and what it leads to checked after.
    let manifest = w.blob(&img.digest);
    std::fs::write(&manifest, b"{\"not\": \"it\"}").unwrap();
    std::fs::remove_file(w.blob(&sha256(&img.layers[1]))).unwrap();
    w.run(&[
        "store",
        "check",
        "--tls-verify=false",
        "--repair",
        &format!("docker://{}/lc/app:v1", reg.host()),
    ])
    .ok();
    w.check_passes("after repairing the manifest and then its layer");
}

#[test]
fn removing_an_image_keeps_its_evidence_and_purge_evidence_removes_it() {
    let w = World::new();
    let digest = pull_signed(&w, "example.com/hello:1");
    pull_signed(&w, "example.com/again:1");
    let sigs = signature_dir(&w, &digest);
    assert!(sigs.join("signature-2").exists());
    assert_eq!(record_files(&w, &digest).len(), 2);

    // Removed and pruned: the blobs go (the other name keeps them here, so remove both).
    w.run(&["store", "rm", "example.com/hello:1", "example.com/again:1"])
        .ok();
    w.run(&["store", "prune"]).ok();
    assert!(!w.blob(&digest).exists(), "the manifest is pruned");
    assert_eq!(w.json(&["store", "list"]), serde_json::json!([]));
    // The evidence stays, and the forensic view still shows the history.
    assert!(sigs.join("signature-1").exists() && sigs.join("signature-2").exists());
    assert_eq!(record_files(&w, &digest).len(), 2);
    let h = w.json(&["signatures", "list", "store:example.com/hello:1"]);
    assert_eq!(h["in_store"], false, "{h}");
    assert_eq!(h["manifest_digest"], digest.as_str());
    assert_eq!(h["records"], 1, "{h}");
    assert_eq!(h["last_copy"]["mode"], "sufficient-subset", "{h}");
    let slots = h["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 3, "{h}");
    assert_eq!(slots[0]["verdict"]["status"], "accepted", "{h}");
    assert_eq!(slots[0]["stored_as"], "signature-1", "{h}");
    let text = w
        .run(&["signatures", "list", "store:example.com/hello:1"])
        .ok()
        .stdout;
    assert!(text.contains("was removed from the store"), "{text}");
    let export = w.t.path().join("export");
    w.run(&[
        "signatures",
        "export",
        "store:example.com/hello:1",
        export.to_str().unwrap(),
    ])
    .ok();
    assert!(export.join("signature-1").exists() && export.join("records").is_dir());

    // Purging one name's evidence keeps the other name's (the same signatures, its record).
    let r = w.json(&["store", "rm", "--purge-evidence", "example.com/hello:1"]);
    assert!(r["removed"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(record_files(&w, &digest).len(), 1);
    assert!(sigs.join("signature-1").exists() && sigs.join("signature-2").exists());
    w.run(&["signatures", "list", "store:example.com/hello:1"])
        .code(3);
    let h = w.json(&["signatures", "list", "store:example.com/again:1"]);
    assert_eq!(h["slots"][0]["stored_as"], "signature-1", "{h}");
    w.check_passes("after purging one name");

    // The last name's purge takes the rest.
    w.run(&["store", "rm", "--purge-evidence", "example.com/again:1"])
        .ok();
    assert!(!sigs.exists(), "no signature is left: {:?}", sigs);
    assert!(record_files(&w, &digest).is_empty());
    w.run(&["signatures", "list", "store:example.com/again:1"])
        .code(3);
    w.check_passes("after purging everything");

    // A name the store does not have: nothing is removed (and the status says so).
    w.copy_in_demo_unsigned("example.com/kept:1");
    let r = w
        .run(&["store", "rm", "example.com/kept:1", "example.com/never:1"])
        .code(3);
    assert!(r.stderr.contains("example.com/never:1"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was removed"), "{}", r.stderr);
    assert_eq!(w.json(&["store", "list"]).as_array().unwrap().len(), 1);
}

impl World {
    fn copy_in_demo_unsigned(&self, name: &str) {
        self.run(&[
            "copy",
            "-q",
            "--remove-signatures",
            "--policy",
            self.policy.to_str().unwrap(),
            &format!("dir:{}", demo().join("hello-dir").display()),
            &format!("store:{name}"),
        ])
        .ok();
    }
}

/// Rewrites a record's `time` (records are never rewritten by ferry; this ages one).
fn age_record(path: &Path, time: &str) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["time"] = Value::String(time.into());
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[test]
fn keep_records_prunes_old_records_but_never_the_newest_copy_of_a_name_in_the_store() {
    let w = World::new();
    let img = make_oci_image(&w.src, "v1", 95, 1, 1000);
    for _ in 0..3 {
        w.copy_in("v1", "example.com/app:1");
    }
    w.copy_in("v1", "example.com/gone:1");
    w.run(&["store", "rm", "example.com/gone:1"]).ok();
    let records = record_files(&w, &img.digest);
    assert_eq!(records.len(), 4);
    // Every record is old, the newest copy of app:1 included; one more is recent.
    let mut by_name: Vec<(String, PathBuf)> = records
        .iter()
        .map(|p| {
            let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            (v["destination"].as_str().unwrap().to_string(), p.clone())
        })
        .collect();
    by_name.sort_by(|a, b| a.1.cmp(&b.1));
    let app: Vec<&PathBuf> = by_name
        .iter()
        .filter(|(d, _)| d == "store:docker.io/example.com/app:1" || d == "store:example.com/app:1")
        .map(|(_, p)| p)
        .collect();
    assert_eq!(app.len(), 3, "{by_name:?}");
    age_record(app[0], "2020-01-01T00:00:00.000Z");
    age_record(app[1], "2020-01-02T00:00:00.000Z");
    age_record(app[2], "2020-01-03T00:00:00.000Z");
    let gone = &by_name
        .iter()
        .find(|(d, _)| d.ends_with("gone:1"))
        .unwrap()
        .1;
    age_record(gone, "2020-01-04T00:00:00.000Z");

    // Without --keep-records, no record goes.
    w.run(&["store", "prune"]).ok();
    assert_eq!(record_files(&w, &img.digest).len(), 4);
    // A dry run lists them and keeps them.
    let dry = w.json(&["store", "prune", "--dry-run", "--keep-records", "30"]);
    assert_eq!(dry["records"].as_array().unwrap().len(), 3, "{dry}");
    assert_eq!(record_files(&w, &img.digest).len(), 4);
    // A recent limit keeps what is younger: here everything is older than a year.
    let r = w.json(&["store", "prune", "--keep-records", "365"]);
    let gone_paths: Vec<&str> = r["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(gone_paths.len(), 3, "{r}");
    assert!(gone_paths.contains(&app[0].to_str().unwrap()));
    assert!(gone_paths.contains(&app[1].to_str().unwrap()));
    assert!(gone_paths.contains(&gone.to_str().unwrap()));
    assert_eq!(record_files(&w, &img.digest), vec![app[2].clone()]);
    // The name's newest record still gives its history.
    let list = w.json(&["store", "list"]);
    assert_eq!(list[0]["last_copy"], "2020-01-03T00:00:00.000Z", "{list}");
    w.check_passes("after pruning records");
    // A fresh copy makes the old one no longer the newest: then it goes.
    w.copy_in("v1", "example.com/app:1");
    w.json(&["store", "prune", "--keep-records", "1"]);
    let left = record_files(&w, &img.digest);
    assert_eq!(left.len(), 1);
    assert_ne!(left[0], *app[2]);
}
