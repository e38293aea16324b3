//! A fault soak: many copies through a proxy in front of the real registry that injects
//! random resets, 503s, 429s, stalls and truncations (seeded, so a failure can be replayed
//! with FERRY_SOAK_SEED). Every copy either lands verified or fails with a clear error, and
//! nothing partial is left at any destination. The counts are printed.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::http::{HttpServer, Reply, counting};
use support::registry::Registry;
use support::*;

/// xorshift64*: a small deterministic generator, so a seed replays the same faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Every `.ferry-tmp-*` name under `dir`, three levels down.
fn temporaries(dir: &Path) -> Vec<String> {
    fn walk(d: &Path, depth: usize, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(".ferry-tmp-") {
                out.push(e.path().display().to_string());
            } else if depth > 0 && e.path().is_dir() {
                walk(&e.path(), depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, 3, &mut out);
    out
}

#[test]
fn copies_through_a_faulty_proxy_land_whole_or_fail_clearly_and_leave_nothing_partial() {
    let seed: u64 = std::env::var("FERRY_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f3a7);
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    const IMAGES: usize = 12;
    let mut images = Vec::new();
    for i in 0..IMAGES {
        let tag = format!("v{i}");
        let image = make_oci_image(&src, &tag, 100 + i as u64, 2, 300_000);
        ferry(&[
            "copy",
            "-q",
            "--policy",
            policy.to_str().unwrap(),
            "--dest-tls-verify=false",
            &format!("oci:{}:{tag}", src.display()),
            &format!("docker://{}/soak/app:{tag}", reg.host()),
        ])
        .ok();
        images.push((tag, image));
    }

    let injected: Arc<Mutex<BTreeMap<&'static str, usize>>> = Arc::default();
    let rng = Arc::new(Mutex::new(Rng(seed | 1)));
    let (inj, r2) = (injected.clone(), rng.clone());
    let proxy = HttpServer::start(
        counting(move |req, _| {
            // The probe passes, so every copy reaches the registry's API.
            if req.path == "/v2/" {
                return Reply::forward();
            }
            let mut rng = r2.lock().unwrap();
            let (kind, reply) = match rng.below(10) {
                0 => (
                    "reset",
                    Reply::Forward {
                        cut_after: Some(200 + rng.below(4000) as usize),
                        corrupt_at: None,
                    },
                ),
                1 => ("503", Reply::status(503)),
                2 => ("429", Reply::too_many_requests(1)),
                3 if req.method == "GET" && req.path.contains("/blobs/") => (
                    "stall",
                    Reply::ForwardStalled {
                        body_bytes: rng.below(2000) as usize,
                    },
                ),
                4 => (
                    "truncation",
                    Reply::ForwardTruncated {
                        after: 100 + rng.below(3000) as usize,
                    },
                ),
                _ => ("none", Reply::forward()),
            };
            *inj.lock().unwrap().entry(kind).or_default() += 1;
            reply
        }),
        Some(reg.host()),
    );

    let started = Instant::now();
    let (mut landed, mut failed) = (0, 0);
    let dests = t.path().join("dests");
    std::fs::create_dir_all(&dests).unwrap();
    let store = t.path().join("store");
    for (i, (tag, image)) in images.iter().enumerate() {
        let (dst, check): (String, Box<dyn Fn() -> bool>) = match i % 3 {
            0 => {
                let d = dests.join(format!("dir-{tag}"));
                let dd = d.clone();
                let digest = image.digest.clone();
                (
                    format!("dir:{}", d.display()),
                    Box::new(move || {
                        dd.exists()
                            && sha256(&std::fs::read(dd.join("manifest.json")).unwrap()) == digest
                    }),
                )
            }
            1 => {
                let d = dests.join(format!("oci-{tag}"));
                let dd = d.clone();
                let tag2 = tag.clone();
                let manifest = image.manifest.clone();
                (
                    format!("oci:{}:{tag}", d.display()),
                    Box::new(move || {
                        dd.join("index.json").exists() && oci_manifest(&dd, &tag2) == manifest
                    }),
                )
            }
            _ => {
                let s = store.clone();
                let tag2 = tag.clone();
                (
                    format!("store:example.com/soak:{tag}"),
                    Box::new(move || {
                        std::fs::read_to_string(s.join("index.json"))
                            .unwrap_or_default()
                            .contains(&format!("example.com/soak:{tag2}"))
                    }),
                )
            }
        };
        let r = ferry(&[
            "copy",
            "-q",
            "--policy",
            policy.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            "--src-tls-verify=false",
            "--retry-times",
            "4",
            "--timeout",
            "3",
            "--stall-timeout",
            "1",
            &format!("docker://{}/soak/app:{tag}", proxy.host()),
            &dst,
        ]);
        match r.code {
            0 => {
                assert!(check(), "{tag} ({dst}): reported copied but is not whole");
                landed += 1;
            }
            3 => {
                assert!(!check(), "{tag} ({dst}): failed but an image is visible");
                assert!(
                    r.stderr.contains("ferry:")
                        && (r.stderr.contains(&proxy.host()) || r.stderr.contains("sha256:")),
                    "{tag}: the error names what failed: {}",
                    r.stderr
                );
                eprintln!("SOAKFAIL {tag}: {}", r.stderr.trim());
                failed += 1;
            }
            other => panic!("{tag}: unexpected exit {other}: {}", r.stderr),
        }
        let left = temporaries(&dests);
        assert!(left.is_empty(), "{tag}: temporaries left: {left:?}");
        let left = temporaries(&store);
        assert!(
            left.is_empty(),
            "{tag}: temporaries left in the store: {left:?}"
        );
    }
    let faults = injected.lock().unwrap().clone();
    println!(
        "soak (seed {seed}): {landed} landed, {failed} failed cleanly, of {IMAGES} copies in {:.1}s; faults injected: {faults:?}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(landed + failed, IMAGES);
    assert!(
        landed >= IMAGES / 2,
        "retries should carry most copies through: {landed} of {IMAGES}"
    );
    let total_faults: usize = faults
        .iter()
        .filter(|(k, _)| **k != "none")
        .map(|(_, n)| n)
        .sum();
    assert!(
        total_faults >= 20,
        "the soak injected too few faults: {faults:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(240));

    // The same faults under a sync of every tag at once (the scheduler's retries, several images
    // in flight): each image lands whole or is reported failed with nothing of it visible, and a
    // re-run finishes what the faults stopped.
    let mirror = t.path().join("mirror");
    let report = t.path().join("sync-report.json");
    let sync = |report: &Path| {
        ferry(&[
            "sync",
            "-q",
            "--keep-going",
            "--src",
            "docker",
            "--dest",
            "dir",
            "--policy",
            policy.to_str().unwrap(),
            "--src-tls-verify=false",
            "--retry-times",
            "4",
            "--timeout",
            "3",
            "--stall-timeout",
            "1",
            "--report",
            report.to_str().unwrap(),
            &format!("{}/soak/app", proxy.host()),
            mirror.to_str().unwrap(),
        ])
    };
    let whole = |tag: &str, digest: &str| {
        let d = mirror.join(format!("app:{tag}"));
        d.join("manifest.json").exists()
            && sha256(&std::fs::read(d.join("manifest.json")).unwrap()) == digest
    };
    let mut rounds = 0;
    loop {
        rounds += 1;
        let r = sync(&report);
        assert!(
            r.code == 0 || r.code == 3,
            "sync: unexpected exit {}: {}",
            r.code,
            r.stderr
        );
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        let mut done = 0;
        for i in v["images"].as_array().unwrap() {
            let status = i["status"].as_str().unwrap();
            let tag = i["source"].as_str().unwrap().rsplit(':').next().unwrap();
            let digest = &images.iter().find(|(t, _)| t == tag).unwrap().1.digest;
            match status {
                "copied" | "skipped" => {
                    assert!(whole(tag, digest), "{tag}: {status} but not whole");
                    done += 1;
                }
                "failed" => {
                    assert!(!whole(tag, digest), "{tag}: failed but visible");
                    assert!(!i["reason"].as_str().unwrap_or("").is_empty());
                }
                other => panic!("{tag}: unexpected status {other}"),
            }
        }
        let left = temporaries(&mirror);
        assert!(
            left.is_empty(),
            "sync round {rounds}: temporaries left: {left:?}"
        );
        println!("soak sync round {rounds}: {done} of {IMAGES} whole");
        if done == IMAGES {
            break;
        }
        assert!(
            rounds < 6,
            "six sync rounds through the faults did not finish: {done} of {IMAGES}"
        );
    }
}
