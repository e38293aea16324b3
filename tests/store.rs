//! The store's crash behaviour: a killed copy leaves no half image visible, a later copy cleans
//! what it left, and two copies into one store at once both land.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::http::{HttpServer, Reply, counting};
use support::registry::Registry;
use support::*;

fn leftovers(store: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for dir in [
        store.to_path_buf(),
        store.join("blobs/sha256"),
        store.join("signatures"),
    ] {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(".ferry-tmp-") {
                    out.push(n);
                }
            }
        }
    }
    out
}

#[test]
fn a_killed_copy_leaves_no_image_and_the_next_copy_cleans_up() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let store = t.path().join("store");
    let src = t.path().join("src");
    make_oci_image(&src, "v1", 41, 2, 2_000_000);
    skopeo(&[
        "copy",
        "--policy",
        policy.to_str().unwrap(),
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/k/app:v1", reg.host()),
    ])
    .ok();
    // A proxy that sends part of a blob and then stalls, so the copy is mid-blob when killed.
    let stall = HttpServer::start(
        counting(|req, _| {
            if req.method == "GET" && req.path.contains("/blobs/sha256:") {
                return Reply::Stalled {
                    body: vec![0u8; 100],
                    declared: 9_000_000,
                };
            }
            Reply::forward()
        }),
        Some(reg.host()),
    );
    let mut child = Command::new(ferry_bin())
        .args([
            "copy",
            "-q",
            "--retry-times",
            "0",
            "--policy",
            policy.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            "--src-tls-verify=false",
        ])
        .arg(format!("docker://{}/k/app:v1", stall.host()))
        .arg("store:example.com/killed:1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the copy has started writing a blob, then kill it hard.
    let deadline = Instant::now() + Duration::from_secs(10);
    while leftovers(&store).iter().all(|n| n.ends_with(".lock")) && Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let before_kill = leftovers(&store);
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let left = leftovers(&store);
    assert!(
        !left.is_empty(),
        "the killed copy was mid-blob and left temporaries (before the kill: {before_kill:?}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !std::fs::read_to_string(store.join("index.json"))
            .unwrap_or_default()
            .contains("killed"),
        "no half image is visible"
    );
    ferry(&[
        "inspect",
        "--store",
        store.to_str().unwrap(),
        "store:example.com/killed:1",
    ])
    .code(3);

    // The next copy into the store removes the dead session's temporaries and lands whole.
    ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        &format!("oci:{}:v1", src.display()),
        "store:example.com/next:1",
    ])
    .ok();
    assert!(
        leftovers(&store).is_empty(),
        "left: {:?}",
        leftovers(&store)
    );
    ferry(&[
        "inspect",
        "--store",
        store.to_str().unwrap(),
        "store:example.com/next:1",
    ])
    .ok();
}

#[test]
fn two_copies_into_one_store_at_once_both_land() {
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let store = t.path().join("store");
    let src = t.path().join("src");
    make_oci_image(&src, "a", 42, 3, 3_000_000);
    make_oci_image(&src, "b", 43, 3, 3_000_000);
    let spawn = |tag: &str| {
        Command::new(ferry_bin())
            .args([
                "copy",
                "-q",
                "--policy",
                policy.to_str().unwrap(),
                "--store",
                store.to_str().unwrap(),
            ])
            .arg(format!("oci:{}:{tag}", src.display()))
            .arg(format!("store:example.com/{tag}:1"))
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn("a"), spawn("b"));
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    for tag in ["a", "b"] {
        let raw = ferry(&[
            "inspect",
            "--raw",
            "--store",
            store.to_str().unwrap(),
            &format!("store:example.com/{tag}:1"),
        ])
        .ok()
        .stdout;
        assert_eq!(raw.as_bytes(), oci_manifest(&src, tag).as_slice());
    }
    assert!(leftovers(&store).is_empty(), "{:?}", leftovers(&store));
}
