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
