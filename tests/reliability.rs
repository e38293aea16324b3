//! Never hang: a registry that accepts the connection and never answers, a blob sent at a
//! trickle, an upload the registry stops taking. Each ends within the timeouts the user set,
//! with an error that names the URL and how long ferry waited; a stalled download is resumed
//! where it stopped. (Crash recovery of dir: and oci: and the fault soak are further down.)

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::http::{HttpServer, Reply, counting};
use support::registry::Registry;
use support::*;

/// An image of one 2 MiB layer pushed to `reg` as `f/app:v1` (by ferry from an OCI layout).
fn pushed(reg: &Registry, t: &Path, policy: &Path, size: usize) -> TestImage {
    let src = t.join("src");
    let image = make_oci_image(&src, "v1", 41, 1, size);
    ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/f/app:v1", reg.host()),
    ])
    .ok();
    image
}

fn copy_from(policy: &Path, extra: &[&str], src: &str, dst: &Path) -> (Run, Duration) {
    let mut a = vec!["copy", "-q", "--policy", policy.to_str().unwrap()];
    a.extend_from_slice(extra);
    let d = format!("dir:{}", dst.display());
    a.extend([src, d.as_str()]);
    let started = Instant::now();
    let r = ferry(&a);
    (r, started.elapsed())
}

#[test]
fn a_registry_that_accepts_and_never_answers_fails_within_the_timeout() {
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    // Accepts connections and never reads or writes a byte: neither TLS nor HTTP gets an answer.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    for tls in ["--src-tls-verify=true", "--src-tls-verify=false"] {
        let (r, took) = copy_from(
            &policy,
            &[tls, "--timeout", "1", "--retry-times", "1"],
            &format!("docker://{host}/a/b:1"),
            &t.path().join("out"),
        );
        assert_eq!(r.code, 3, "{}", r.stderr);
        assert!(
            took < Duration::from_secs(20),
            "{tls}: gave up after {took:?}, not within the timeouts"
        );
        assert!(
            r.stderr.contains(&host) && r.stderr.contains("no answer within 1 seconds"),
            "{tls}: names the URL and the wait: {}",
            r.stderr
        );
        // A registry that does not answer is not a TLS problem: no advice to turn it off.
        assert!(
            !r.stderr.contains("tls-verify"),
            "{tls}: advice that does not apply: {}",
            r.stderr
        );
        assert!(!t.path().join("out").exists());
    }
}

#[test]
fn a_blob_at_a_trickle_stalls_and_is_resumed_where_it_stopped() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let image = pushed(&reg, t.path(), &policy, 2 * 1024 * 1024);
    let layer = image.layers_digests()[0].clone();
    let layer_for_proxy = layer.clone();
    // The first download of the layer trickles at 100 bytes a second; the resumed one is fine.
    let proxy = HttpServer::start(
        counting(move |req, n| {
            if req.method == "GET" && req.path.contains(&layer_for_proxy) && n == 0 {
                Reply::ForwardSlowly {
                    bytes_per_second: 100,
                }
            } else {
                Reply::forward()
            }
        }),
        Some(reg.host()),
    );
    let out = t.path().join("out");
    let (r, took) = copy_from(
        &policy,
        &[
            "--src-tls-verify=false",
            "--stall-timeout",
            "1",
            "--retry-times",
            "2",
        ],
        &format!("docker://{}/f/app:v1", proxy.host()),
        &out,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let gets: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|(m, p)| m == "GET" && p.contains(&layer))
        .collect();
    assert_eq!(
        gets.len(),
        2,
        "one stalled download and one resumed: {gets:?}"
    );
    let blob = std::fs::read(out.join(&layer["sha256:".len()..])).unwrap();
    assert_eq!(
        sha256(&blob),
        layer,
        "the resumed blob is whole and verified"
    );

    // A registry that only ever trickles fails after the retries, naming the URL and the stall.
    let layer2 = layer.clone();
    let slow = HttpServer::start(
        counting(move |req, _| {
            if req.method == "GET" && req.path.contains(&layer2) {
                Reply::ForwardSlowly {
                    bytes_per_second: 100,
                }
            } else {
                Reply::forward()
            }
        }),
        Some(reg.host()),
    );
    let out2 = t.path().join("out2");
    let (r, took) = copy_from(
        &policy,
        &[
            "--src-tls-verify=false",
            "--stall-timeout",
            "1",
            "--retry-times",
            "1",
        ],
        &format!("docker://{}/f/app:v1", slow.host()),
        &out2,
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(
        r.stderr.contains("no progress") && r.stderr.contains(&layer),
        "{}",
        r.stderr
    );
    assert!(!out2.exists());
}

#[test]
fn an_upload_the_registry_stops_taking_fails_as_a_stall() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    // Larger than what loopback socket buffers absorb before the sender blocks.
    make_oci_image(&src, "v1", 43, 1, 24 * 1024 * 1024);
    let proxy = HttpServer::start(counting(|_, _| Reply::forward()), Some(reg.host()));
    proxy.stall_request_bodies(true);
    let started = Instant::now();
    let r = ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--dest-tls-verify=false",
        "--stall-timeout",
        "2",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/up/app:v1", proxy.host()),
    ])
    .code(3);
    assert_eq!(
        proxy.count("PUT", "/manifests/"),
        0,
        "no manifest is written after a failed upload"
    );
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    assert!(
        r.stderr.contains("stopped taking the body") || r.stderr.contains("no progress"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_command_timeout_stops_a_stuck_copy_and_removes_its_temporaries() {
    // skopeo's --command-timeout, written before the command as skopeo takes it: a copy stuck
    // mid-blob (well inside the 60 s stall timeout) ends when the command's time is up.
    let s = stuck();
    let out = s.t.path().join("out");
    let started = Instant::now();
    let r = ferry(&[
        "--command-timeout",
        "3s",
        "copy",
        "-q",
        "--policy",
        s.policy.to_str().unwrap(),
        "--src-tls-verify=false",
        &format!("docker://{}/k/app:v1", s.proxy.host()),
        &format!("dir:{}", out.display()),
    ]);
    let took = started.elapsed();
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(15),
        "stopped after {took:?}"
    );
    assert!(
        r.stderr
            .contains("did not finish within 3s (--command-timeout)"),
        "{}",
        r.stderr
    );
    assert!(
        s.proxy.count("GET", "/blobs/sha256:") > 0,
        "the copy was reading a blob when it was stopped"
    );
    assert_eq!(temporaries(s.t.path()), Vec::<String>::new());
    assert!(!out.exists(), "nothing half-written at the destination");
}

/// Every `.ferry-tmp-*` entry under `dir`, down to three levels (lock files included).
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

/// A registry holding `k/app:v1` (two 2 MB layers) behind a proxy whose blob downloads send
/// 100 bytes and stall: a copy from the proxy is mid-blob until it is stopped.
struct Stuck {
    _reg: Registry,
    proxy: HttpServer,
    t: tempfile::TempDir,
    policy: std::path::PathBuf,
    src: std::path::PathBuf,
}

fn stuck() -> Stuck {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    make_oci_image(&src, "v1", 44, 2, 2_000_000);
    ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/k/app:v1", reg.host()),
    ])
    .ok();
    let proxy = HttpServer::start(
        counting(|req, _| {
            if req.method == "GET" && req.path.contains("/blobs/sha256:") {
                return Reply::Stalled {
                    body: vec![0u8; 100],
                    declared: 2_000_000,
                };
            }
            Reply::forward()
        }),
        Some(reg.host()),
    );
    Stuck {
        _reg: reg,
        proxy,
        t,
        policy,
        src,
    }
}

impl Stuck {
    /// Starts a copy from the stalling proxy to `dst` and returns once it is writing a blob
    /// (a temporary of its own exists under `watch`).
    fn start_copy(&self, dst: &str, watch: &Path) -> std::process::Child {
        let child = std::process::Command::new(ferry_bin())
            .args([
                "copy",
                "-q",
                "--retry-times",
                "0",
                "--policy",
                self.policy.to_str().unwrap(),
                "--src-tls-verify=false",
            ])
            .arg(format!("docker://{}/k/app:v1", self.proxy.host()))
            .arg(dst)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while temporaries(watch).iter().all(|n| n.ends_with(".lock")) {
            assert!(Instant::now() < deadline, "the copy never started writing");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(200));
        child
    }

    /// A copy of the same image from the local layout (no stall) into `dst`.
    fn good_copy(&self, dst: &str) {
        ferry(&[
            "copy",
            "-q",
            "--policy",
            self.policy.to_str().unwrap(),
            &format!("oci:{}:v1", self.src.display()),
            dst,
        ])
        .ok();
    }
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig}");
}

#[test]
fn a_copy_killed_while_it_creates_an_oci_layout_is_cleaned_up_by_the_next() {
    let s = stuck();
    let layout = s.t.path().join("layout");
    let dst = format!("oci:{}:v1", layout.display());
    let mut child = s.start_copy(&dst, &layout);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !temporaries(&layout).is_empty(),
        "the killed copy left its temporaries"
    );
    assert!(!layout.join("index.json").exists(), "no image is visible");
    // The directory holds only a dead copy's temporaries: not foreign, and cleaned.
    s.good_copy(&dst);
    assert!(
        temporaries(&layout).is_empty(),
        "{:?}",
        temporaries(&layout)
    );
    skopeo(&["inspect", &format!("oci:{}:v1", layout.display())]).ok();
}

#[test]
fn two_copies_into_one_new_oci_layout_at_once_both_land() {
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    make_oci_image(&src, "a", 45, 3, 500_000);
    make_oci_image(&src, "b", 46, 3, 500_000);
    for round in 0..8 {
        let layout = t.path().join(format!("layout-{round}"));
        let spawn = |tag: &str| {
            std::process::Command::new(ferry_bin())
                .args(["copy", "-q", "--policy", policy.to_str().unwrap()])
                .arg(format!("oci:{}:{tag}", src.display()))
                .arg(format!("oci:{}:{tag}", layout.display()))
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn("a"), spawn("b"));
        for (tag, c) in [("a", a), ("b", b)] {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}, {tag}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for tag in ["a", "b"] {
            assert_eq!(oci_manifest(&layout, tag), oci_manifest(&src, tag));
        }
        assert!(
            temporaries(&layout).is_empty(),
            "{:?}",
            temporaries(&layout)
        );
    }
}

#[test]
fn sigint_and_sigterm_remove_the_copys_temporaries_before_exit() {
    let s = stuck();
    for (sig, code) in [("INT", 130), ("TERM", 143)] {
        for kind in ["dir", "oci"] {
            let parent = s.t.path().join(format!("{kind}-{sig}"));
            std::fs::create_dir_all(&parent).unwrap();
            let dst_path = parent.join("image");
            let dst = format!("{kind}:{}", dst_path.display());
            let child = s.start_copy(&dst, &parent);
            signal(&child, sig);
            let out = child.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(code), "{kind} {sig}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("interrupted"), "{err}");
            assert!(
                temporaries(&parent).is_empty(),
                "{kind} {sig}: {:?}",
                temporaries(&parent)
            );
            assert!(
                !dst_path.join("index.json").exists() && !dst_path.join("manifest.json").exists()
            );
        }
    }
}

#[test]
fn a_dir_copy_killed_midway_is_cleaned_up_by_the_next_copy_beside_it() {
    let s = stuck();
    let parent = s.t.path().join("dirs");
    std::fs::create_dir_all(&parent).unwrap();
    let dst = format!("dir:{}", parent.join("one").display());
    let mut child = s.start_copy(&dst, &parent);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!temporaries(&parent).is_empty());
    assert!(!parent.join("one").exists());
    // Another copy into the same parent removes the dead staging directory.
    s.good_copy(&format!("dir:{}", parent.join("two").display()));
    assert!(
        temporaries(&parent).is_empty(),
        "{:?}",
        temporaries(&parent)
    );
    assert!(parent.join("two/manifest.json").exists());
}

#[test]
fn oversized_inputs_are_refused_naming_the_file_and_the_cap() {
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 47, 1, 1000);
    let huge = vec![b' '; 5 * 1024 * 1024];
    let cap = "4194304-byte limit";

    // policy.json
    let big_policy = t.path().join("big-policy.json");
    let mut text = br#"{"default":[{"type":"insecureAcceptAnything"}]}"#.to_vec();
    text.extend_from_slice(&huge);
    std::fs::write(&big_policy, &text).unwrap();
    let r = ferry(&[
        "copy",
        "--policy",
        big_policy.to_str().unwrap(),
        &format!("oci:{}:v1", src.display()),
        &format!("dir:{}", t.path().join("o1").display()),
    ])
    .code(3);
    assert!(
        r.stderr.contains("big-policy.json") && r.stderr.contains(cap),
        "{}",
        r.stderr
    );

    // a registries.d file and an auth file (read before any connection is made)
    let regd = t.path().join("registries.d");
    std::fs::create_dir_all(&regd).unwrap();
    std::fs::write(regd.join("big.yaml"), &huge).unwrap();
    let r = ferry(&[
        "copy",
        "--policy",
        policy.to_str().unwrap(),
        "--registries.d",
        regd.to_str().unwrap(),
        "docker://127.0.0.1:1/a/b:1",
        &format!("dir:{}", t.path().join("o2").display()),
    ])
    .code(3);
    assert!(
        r.stderr.contains("big.yaml") && r.stderr.contains(cap),
        "{}",
        r.stderr
    );
    let auth = t.path().join("auth.json");
    std::fs::write(&auth, &huge).unwrap();
    let r = ferry(&[
        "copy",
        "--policy",
        policy.to_str().unwrap(),
        "--authfile",
        auth.to_str().unwrap(),
        "docker://127.0.0.1:1/a/b:1",
        &format!("dir:{}", t.path().join("o3").display()),
    ])
    .code(3);
    assert!(
        r.stderr.contains("auth.json") && r.stderr.contains(cap),
        "{}",
        r.stderr
    );

    // A manifest whose config claims 8 GiB: refused before a byte of it is read.
    let mut m: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
    m["config"]["size"] = serde_json::json!(8u64 << 30);
    let bytes = serde_json::to_vec(&m).unwrap();
    let hex = &sha256(&bytes)["sha256:".len()..];
    std::fs::write(src.join("blobs/sha256").join(hex), &bytes).unwrap();
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"] = serde_json::json!(format!("sha256:{hex}"));
    index["manifests"][0]["size"] = serde_json::json!(bytes.len());
    std::fs::write(src.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let out = t.path().join("o4");
    let r = ferry(&[
        "copy",
        "--policy",
        policy.to_str().unwrap(),
        &format!("oci:{}:v1", src.display()),
        &format!("dir:{}", out.display()),
    ])
    .code(3);
    assert!(
        r.stderr.contains("8589934592") && r.stderr.contains("4194304-byte limit for a config"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
}
