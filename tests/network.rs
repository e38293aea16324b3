//! ferry on a network that is not loopback: registries behind `scripts/delay-proxy`, which adds
//! a round trip of latency to every exchange (and one to every new connection), can cap each
//! connection's bandwidth, and logs every HTTP exchange. The tests count round trips and
//! requests from that log, never wall time, so they hold on a loaded machine and fail when a
//! change adds a round trip to the critical path:
//! - a cold copy between two registries costs at most 8 round trips (docs/performance.md counts
//!   them), and a cold pull into the store fewer;
//! - a large layer is fetched in ranges over several connections, checked as it arrives (a
//!   corrupted range fails the copy and writes nothing, a range cut off midway resumes), falls
//!   back to one stream when the registry ignores `Range`, and never uses more connections to a
//!   registry than its caps allow;
//! - `unpack`'s way of reading an admitted image (the library's `AdmittedImage::blob`) gets the
//!   same ranges.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use support::http::{HttpServer, Reply, Request};
use support::registry::Registry;
use support::{ferry, insecure_policy, pseudo_random, require_tool, sha256, skopeo};

/// The round trip of the tests that count round trips. The proxy counts a request as depending
/// on every answer delivered before it left, so a ferry that is starved of CPU for longer than
/// this (a debug build on a loaded CI machine) would seem to wait for answers it does not need:
/// 100 ms keeps that out of reach at the cost of about a second per test.
const COUNTED_RTT_MS: u32 = 100;

/// `scripts/delay-proxy` in front of some registries, logging every exchange.
struct NetProxy {
    child: Child,
    ports: Vec<u16>,
    log: PathBuf,
}

impl NetProxy {
    /// A proxy with one route per upstream (`host:port` on 127.0.0.1), `rtt_ms` of round trip,
    /// and `extra` flags (`--rate-mib`, `--no-range`).
    fn start(upstreams: &[String], rtt_ms: u32, extra: &[&str], dir: &Path) -> NetProxy {
        let python = require_tool("python3", "python3");
        let log = dir.join(format!("proxy-{}.log", std::process::id()));
        let mut cmd = Command::new(python);
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/delay-proxy"));
        for u in upstreams {
            let port = u.rsplit(':').next().expect("port");
            cmd.args(["--route", &format!("0:{port}")]);
        }
        cmd.args(["--rtt-ms", &rtt_ms.to_string(), "--log"])
            .arg(&log)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start scripts/delay-proxy");
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the proxy's ready line");
        let ports: Vec<u16> = line
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("scripts/delay-proxy did not start: {line:?}"))
            .split_whitespace()
            .map(|p| p.parse().expect("port"))
            .collect();
        assert_eq!(ports.len(), upstreams.len());
        NetProxy { child, ports, log }
    }

    /// `127.0.0.1:PORT` of route `i`.
    fn host(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i])
    }

    /// Forgets what was logged so far.
    fn reset(&self) {
        std::fs::write(&self.log, b"").expect("truncate the proxy's log");
    }

    /// The proxy's summary of what it logged since the last reset.
    fn analyse(&self) -> Summary {
        // Exchanges cut off when a client exits are logged as their connection closes.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let out = Command::new(require_tool("python3", "python3"))
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/delay-proxy"))
            .arg("--analyse")
            .arg(&self.log)
            .output()
            .expect("run the proxy's analysis");
        assert!(
            out.status.success(),
            "scripts/delay-proxy --analyse failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Summary(serde_json::from_slice(&out.stdout).expect("the analysis is JSON"))
    }
}

impl Drop for NetProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the proxy counted.
struct Summary(serde_json::Value);

impl Summary {
    fn n(&self, key: &str) -> u64 {
        self.0[key].as_u64().unwrap_or(0)
    }
    /// A count for the route listening on `port`.
    fn route(&self, port: u16, key: &str) -> u64 {
        self.0["routes"][port.to_string()][key]
            .as_u64()
            .unwrap_or(0)
    }
    fn method(&self, m: &str) -> u64 {
        self.0["by_method"][m].as_u64().unwrap_or(0)
    }
    /// Every exchange with the round trip it ended, for failure messages.
    fn timeline(&self) -> String {
        self.0["timeline"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }
}

/// Pushes an image of `layers` (sizes in bytes, pseudo-random) to `registry` as `repo:v1` with
/// skopeo, so the setup does not depend on ferry; returns the layers' digests.
fn push(registry: &Registry, repo: &str, seed: u64, layers: &[usize], dir: &Path) -> Vec<String> {
    let layout = dir.join(format!("layout-{repo}").replace('/', "-"));
    let image = support::build_image(
        "amd64",
        layers
            .iter()
            .enumerate()
            .map(|(i, n)| pseudo_random(seed * 100 + i as u64, *n))
            .collect(),
    );
    support::write_oci_image(&layout, "v1", &image);
    skopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--dest-tls-verify=false",
        // As they are: skopeo would gzip the tar layers for a registry, and the tests count
        // ranges of the sizes they asked for and look the layers up by these digests.
        "--preserve-digests",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{}/{repo}:v1", registry.host()),
    ])
    .ok();
    image.layers_digests()
}

fn copy(policy: &Path, src: &str, dst: &str, extra: &[&str]) -> support::Run {
    let mut args = vec![
        "copy",
        "-q",
        "--policy",
        policy.to_str().expect("utf-8"),
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[src, dst]);
    ferry(&args)
}

/// The round trips on the critical path of a cold copy of a small image (4 layers, 1 MiB)
/// between two registries, each 100 ms away: at most 8 (docs/performance.md counts them: both
/// registries probed at once, https and http at once, the manifest, the signature check, all
/// existence checks at once, the source's GETs beside the destination's upload starts, the
/// uploads, the manifest), and no more requests than the copy needs.
#[test]
fn a_cold_copy_between_registries_takes_at_most_8_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (Registry::start(), Registry::start());
    push(&a, "net/small", 1, &[256 << 10; 4], dir.path());
    let proxy = NetProxy::start(&[a.host(), b.host()], COUNTED_RTT_MS, &[], dir.path());
    let policy = insecure_policy(dir.path());
    proxy.reset();
    copy(
        &policy,
        &format!("docker://{}/net/small:v1", proxy.host(0)),
        &format!("docker://{}/net/copy:v1", proxy.host(1)),
        &[],
    )
    .ok();
    let s = proxy.analyse();
    let timeline = s.timeline();
    assert!(
        s.n("round_trips") <= 8,
        "a cold copy took {} round trips (at most 8):\n{timeline}",
        s.n("round_trips")
    );
    // 5 blobs: one existence check, one upload start, one upload and one source GET each; one
    // manifest each way; the signature check; per registry a probe over https and over http
    // and the warm-up's connections (6 each, the default --parallel-blobs).
    assert_eq!(s.method("HEAD"), 5 + 1, "{timeline}");
    assert_eq!(s.method("POST"), 5, "{timeline}");
    assert_eq!(s.method("PUT"), 5 + 1, "{timeline}");
    assert!(
        s.n("requests") <= 45,
        "{} requests:\n{timeline}",
        s.n("requests")
    );
    // The copy is whole.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/net/copy:v1", b.host()),
    ])
    .ok();
    assert!(raw.stdout.contains("\"layers\""));
}

/// A cold pull into the store: the source's probe, manifest, signature check and blobs, and
/// nothing else on the critical path.
#[test]
fn a_cold_pull_into_the_store_takes_at_most_5_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Registry::start();
    push(&a, "net/pull", 2, &[256 << 10; 4], dir.path());
    let proxy = NetProxy::start(&[a.host()], COUNTED_RTT_MS, &[], dir.path());
    let policy = insecure_policy(dir.path());
    let store = dir.path().join("store");
    proxy.reset();
    copy(
        &policy,
        &format!("docker://{}/net/pull:v1", proxy.host(0)),
        "store:net/pull:v1",
        &["--store", store.to_str().expect("utf-8")],
    )
    .ok();
    let s = proxy.analyse();
    assert!(
        s.n("round_trips") <= 5,
        "a cold pull took {} round trips (at most 5):\n{}",
        s.n("round_trips"),
        s.timeline()
    );
}

/// A 40 MiB layer through connections capped at 16 MiB/s: the first stream proves slow, so the
/// rest comes in 4 MiB ranges over several connections at once (the registry honours Range),
/// checked whole at the end, and the copy in dir: is the layer, byte for byte.
#[test]
fn a_large_layer_is_fetched_in_ranges_over_several_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Registry::start();
    let layers = push(&a, "net/big", 3, &[40 << 20], dir.path());
    let proxy = NetProxy::start(&[a.host()], 20, &["--rate-mib", "16"], dir.path());
    let policy = insecure_policy(dir.path());
    let out = dir.path().join("out");
    proxy.reset();
    copy(
        &policy,
        &format!("docker://{}/net/big:v1", proxy.host(0)),
        &format!("dir:{}", out.display()),
        &[],
    )
    .ok();
    let s = proxy.analyse();
    let timeline = s.timeline();
    // The first stream is cut at the end of the 4 MiB range it is in when it proves slow (4 or
    // 8 MiB in), the other 36 or 32 MiB come in 4 MiB ranges.
    let partial = s.n("partial_answers");
    assert!(
        (9..=10).contains(&partial),
        "{partial} partial answers for 40 MiB:\n{timeline}"
    );
    let most = s.route(proxy.ports[0], "most_connections_at_once");
    // The layer's own stream and the registry's 5 extra range streams, plus the probes'.
    assert!(
        (4..=1 + 5 + 2).contains(&most),
        "{most} connections at once:\n{timeline}"
    );
    let hex = &layers[0]["sha256:".len()..];
    let got = std::fs::read(out.join(hex)).expect("the layer in dir:");
    assert_eq!(sha256(&got), layers[0]);
}

/// A registry that ignores Range (the proxy drops the header) sends the whole layer over one
/// stream, and the copy is the same.
#[test]
fn a_registry_that_ignores_range_gets_one_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Registry::start();
    let layers = push(&a, "net/norange", 4, &[20 << 20], dir.path());
    let proxy = NetProxy::start(&[a.host()], 20, &["--no-range"], dir.path());
    let policy = insecure_policy(dir.path());
    let out = dir.path().join("out");
    proxy.reset();
    copy(
        &policy,
        &format!("docker://{}/net/norange:v1", proxy.host(0)),
        &format!("dir:{}", out.display()),
        &[],
    )
    .ok();
    let s = proxy.analyse();
    assert_eq!(s.n("partial_answers"), 0, "{}", s.timeline());
    // The first request asks for the whole layer as a range (that is how ferry learns the
    // registry honours Range without a round trip of its own); the 200 answer is the whole
    // layer, and no other range is asked for.
    assert_eq!(s.n("range_requests"), 1, "{}", s.timeline());
    let hex = &layers[0]["sha256:".len()..];
    assert_eq!(
        sha256(&std::fs::read(out.join(hex)).expect("the layer")),
        layers[0]
    );
}

/// `--registry-requests 2` (a sync's cap on a registry's requests, which also bounds its range
/// streams): at most 2 range connections beyond the layer's own, whatever the layer's size.
#[test]
fn range_connections_stay_within_the_request_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Registry::start();
    push(&a, "net/capped", 5, &[24 << 20], dir.path());
    let proxy = NetProxy::start(&[a.host()], 20, &["--rate-mib", "32"], dir.path());
    let policy = insecure_policy(dir.path());
    let out = dir.path().join("out");
    proxy.reset();
    ferry(&[
        "sync",
        "-q",
        "--policy",
        policy.to_str().expect("utf-8"),
        "--src-tls-verify=false",
        "--registry-requests",
        "2",
        "--src",
        "docker",
        "--dest",
        "dir",
        &format!("{}/net/capped:v1", proxy.host(0)),
        out.to_str().expect("utf-8"),
    ])
    .ok();
    let s = proxy.analyse();
    // 24 MiB: the first stream cut 4 or 8 MiB in, the rest in 4 MiB ranges.
    let partial = s.n("partial_answers");
    assert!((5..=6).contains(&partial), "{partial}: {}", s.timeline());
    let most = s.route(proxy.ports[0], "most_connections_at_once");
    assert!(
        most <= 1 + 2 + 1,
        "{most} connections at once:\n{}",
        s.timeline()
    );
}

/// A registry in front of which one range's body is corrupted (and, in the other case, cut off
/// midway): the copy fails on the digest and leaves nothing at the destination; a range cut off
/// resumes where it broke and the copy succeeds. The connections are capped at 16 MiB/s (a
/// proxy in front of the fault server) so that the first stream proves slow and ranges follow.
#[test]
fn a_corrupted_range_fails_the_digest_and_a_broken_one_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Registry::start();
    let layers = push(&a, "net/faulty", 6, &[20 << 20], dir.path());
    let policy = insecure_policy(dir.path());
    for (fault, should_work) in [("corrupt", false), ("cut", true)] {
        let fault_once = std::sync::atomic::AtomicBool::new(true);
        // The first range after the first stream's (which asks from byte 0).
        let server = HttpServer::start(
            Arc::new(move |req: &Request| {
                let hit = req.path.contains("/blobs/")
                    && req
                        .header("range")
                        .is_some_and(|r| r.starts_with("bytes=") && !r.starts_with("bytes=0-"))
                    && fault_once.swap(false, std::sync::atomic::Ordering::SeqCst);
                match (hit, fault) {
                    (true, "corrupt") => Reply::Forward {
                        cut_after: None,
                        corrupt_at: Some(1000),
                    },
                    (true, _) => Reply::Forward {
                        cut_after: Some(1 << 20),
                        corrupt_at: None,
                    },
                    _ => Reply::forward(),
                }
            }),
            Some(a.host()),
        );
        let capped = NetProxy::start(&[server.host()], 0, &["--rate-mib", "16"], dir.path());
        let out = dir.path().join(format!("out-{fault}"));
        let run = copy(
            &policy,
            &format!("docker://{}/net/faulty:v1", capped.host(0)),
            &format!("dir:{}", out.display()),
            &[],
        );
        let ranges: Vec<String> = server
            .requests()
            .into_iter()
            .filter(|(m, p)| m == "GET" && p.contains("/blobs/"))
            .map(|(_, p)| p)
            .collect();
        assert!(
            ranges.len() >= 3,
            "no ranges after the first stream: {ranges:?}"
        );
        if should_work {
            assert_eq!(run.code, 0, "{}\n{ranges:?}", run.stderr);
            let hex = &layers[0]["sha256:".len()..];
            assert_eq!(
                sha256(&std::fs::read(out.join(hex)).expect("the layer")),
                layers[0]
            );
        } else {
            assert_eq!(run.code, 3, "{}", run.stderr);
            assert!(
                run.stderr.contains("digest") || run.stderr.contains("sha256"),
                "{}",
                run.stderr
            );
            assert!(!out.exists(), "a failed copy left {}", out.display());
        }
    }
}

/// `unpack` reads an admitted image's layers through the library (`AdmittedImage::blob`):
/// a large layer comes in ranges there too, verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admitted_images_large_layer_comes_in_ranges() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Registry::start();
    let layers = push(&a, "net/unpack", 7, &[20 << 20], dir.path());
    let proxy = NetProxy::start(&[a.host()], 20, &["--rate-mib", "32"], dir.path());
    let policy = Arc::new(
        ferry::Policy::from_file(&insecure_policy(dir.path())).expect("the insecure policy"),
    );
    let session = ferry::Session::new(ferry::SessionConfig::default());
    let mut gate = ferry::GateOptions::new(policy);
    gate.source.tls_verify = Some(false);
    let src = ferry::ImageReference::parse(&format!("docker://{}/net/unpack:v1", proxy.host(0)))
        .expect("reference");
    proxy.reset();
    let image = ferry::open_admitted(&session, &src, &gate)
        .await
        .expect("admitted");
    let layer = image
        .image()
        .expect("an image")
        .blobs
        .iter()
        .find(|d| d.size == 20 << 20)
        .expect("the 20 MiB layer")
        .clone();
    let mut stream = image.blob(&layer).await.expect("the layer's stream");
    let mut got = Vec::new();
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.expect("verified bytes"));
    }
    assert_eq!(sha256(&got), layers[0]);
    let s = proxy.analyse();
    // 20 MiB: the first stream cut 4 or 8 MiB in, the rest in 4 MiB ranges.
    let partial = s.n("partial_answers");
    assert!((4..=5).contains(&partial), "{partial}: {}", s.timeline());
}

/// On a fast link (127.0.0.1, nothing in between) a large layer comes over one stream: ranges
/// would only add work for both sides (docs/performance.md measured the registry's CPU doubled).
#[test]
fn a_fast_stream_is_not_cut_into_ranges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Registry::start();
    let layers = push(&a, "net/fast", 8, &[40 << 20], dir.path());
    let server = HttpServer::start(Arc::new(|_: &Request| Reply::forward()), Some(a.host()));
    let policy = insecure_policy(dir.path());
    let out = dir.path().join("out");
    let run = copy(
        &policy,
        &format!("docker://{}/net/fast:v1", server.host()),
        &format!("dir:{}", out.display()),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let blob_gets: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|(m, p)| m == "GET" && p.contains("/blobs/"))
        .map(|(_, p)| p)
        .collect();
    // The config and the layer: one request each.
    assert_eq!(blob_gets.len(), 2, "{blob_gets:?}");
    let hex = &layers[0]["sha256:".len()..];
    assert_eq!(
        sha256(&std::fs::read(out.join(hex)).expect("the layer")),
        layers[0]
    );
}
