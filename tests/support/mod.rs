//! Test harness shared by the integration tests: the ferry binary, real peer tools (skopeo,
//! gpg, the distribution registry) with install hints when missing, and image generators.
//!
//! Every helper fails the test with a message saying how to install a missing tool; nothing is
//! skipped.
#![allow(dead_code)]

pub mod distribution;
pub mod gpg;
pub mod http;
pub mod pki;
pub mod podman;
pub mod referrers;
pub mod registry;
pub mod sigstore;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;
use sha2::Digest as _;

/// The ferry binary built for this test run.
pub fn ferry_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ferry"))
}

/// The path of a required tool, or a panic that says how to install it.
pub fn require_tool(tool: &str, debian_package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{tool} is needed by this test and is not installed: run `apt-get install -y {debian_package}` \
         as root, or `./scripts/test`, which installs everything the tests need"
    );
}

/// The output of a finished command, for assertions and messages.
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    /// Panics with both streams unless the command exited 0.
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "command failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    /// Panics with both streams unless the command exited with `code`.
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs a command to completion.
pub fn run(cmd: &mut Command) -> Run {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    Run::from(out)
}

/// Runs ferry with `args`, with no user configuration leaking in (HOME points at an empty dir
/// unless the test sets FERRY_TEST_HOME).
pub fn ferry(args: &[&str]) -> Run {
    ferry_in(args, &[])
}

/// Runs ferry with `args` and extra environment variables.
pub fn ferry_in(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(ferry_bin());
    cmd.args(args).env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// `ferry sync` arguments with `policy`, `registries_d` and the store at `store`, both sides'
/// registries over plain http, then `extra`.
pub fn sync_args(policy: &Path, registries_d: &Path, store: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["sync", "--policy"].iter().map(|s| s.to_string()).collect();
    args.push(policy.display().to_string());
    args.push("--registries.d".into());
    args.push(registries_d.display().to_string());
    args.extend([
        "--src-tls-verify=false".into(),
        "--dest-tls-verify=false".into(),
    ]);
    args.push("--store".into());
    args.push(store.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Runs ferry with `args` and kills it with SIGKILL (no cleanup, no flush) as soon as `count`
/// lines of its stderr contain `marker`; returns the lines it wrote until then.
pub fn ferry_killed_after(args: &[String], marker: &str, count: usize) -> Vec<String> {
    ferry_killed_when(args, marker, count, || true)
}

/// As [`ferry_killed_after`], but once `count` marker lines are seen the kill waits (up to a
/// minute, polling) until `ready()` holds, so a test can kill at a state it names (for
/// instance "a temporary exists") rather than at a moment that a loaded machine shifts.
/// stderr is read on a thread meanwhile, so ferry never blocks on a full pipe; the lines
/// returned are those read up to the kill.
pub fn ferry_killed_when(
    args: &[String],
    marker: &str,
    count: usize,
    ready: impl Fn() -> bool,
) -> Vec<String> {
    use std::io::BufRead;
    use std::sync::{Arc, Mutex};
    let mut child = Command::new(ferry_bin())
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start ferry");
    let stderr = child.stderr.take().expect("stderr");
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let seen = Arc::clone(&seen);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                seen.lock().unwrap().push(line);
            }
        })
    };
    let marked = || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(marker))
            .count()
            >= count
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !marked() && !reader.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    while marked() && !ready() && !reader.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    reader.join().expect("stderr reader");
    Arc::try_unwrap(seen).unwrap().into_inner().unwrap()
}

/// Runs skopeo (failing the test with an install hint if it is missing).
pub fn skopeo(args: &[&str]) -> Run {
    let bin = require_tool("skopeo", "skopeo");
    run(Command::new(bin).args(args))
}

/// A policy file that accepts anything, written into `dir`.
pub fn insecure_policy(dir: &Path) -> PathBuf {
    let p = dir.join("insecure-policy.json");
    std::fs::write(&p, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).expect("write policy");
    p
}

/// Deterministic pseudo-random bytes (xorshift), so generated images are reproducible.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `sha256:HEX` of bytes.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// What [`make_oci_image`] wrote.
#[derive(Debug, Clone)]
pub struct TestImage {
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// The manifest digest.
    pub digest: String,
    /// The config bytes.
    pub config: Vec<u8>,
    /// The layers' bytes.
    pub layers: Vec<Vec<u8>>,
}

impl TestImage {
    /// The layers' digests (`sha256:…`), in order.
    pub fn layers_digests(&self) -> Vec<String> {
        self.layers.iter().map(|l| sha256(l)).collect()
    }
}

/// Builds an image manifest (OCI) with a config for `arch` and the given layers.
pub fn build_image(arch: &str, layers: Vec<Vec<u8>>) -> TestImage {
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| sha256(l)).collect::<Vec<_>>()},
    }))
    .expect("json");
    let manifest = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": layers.iter().map(|l| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": sha256(l),
            "size": l.len(),
        })).collect::<Vec<_>>(),
    }))
    .expect("json");
    TestImage {
        digest: sha256(&manifest),
        manifest,
        config,
        layers,
    }
}

fn write_blob(layout: &Path, data: &[u8]) {
    let d = sha256(data);
    let p = layout.join("blobs/sha256").join(&d["sha256:".len()..]);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir blobs");
    std::fs::write(p, data).expect("write blob");
}

fn add_to_index(layout: &Path, descriptor: serde_json::Value) {
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value = std::fs::read(&index_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({"schemaVersion": 2, "manifests": []}));
    index["manifests"]
        .as_array_mut()
        .expect("manifests")
        .push(descriptor);
    std::fs::write(index_path, serde_json::to_vec(&index).expect("json")).expect("index.json");
}

/// Writes `image` into the OCI layout at `layout` under the name `tag`.
pub fn write_oci_image(layout: &Path, tag: &str, image: &TestImage) {
    for l in &image.layers {
        write_blob(layout, l);
    }
    write_blob(layout, &image.config);
    write_blob(layout, &image.manifest);
    add_to_index(
        layout,
        json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image.digest,
            "size": image.manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }),
    );
}

/// Writes a small image with `n` layers of `size` pseudo-random bytes into an OCI layout.
pub fn make_oci_image(layout: &Path, tag: &str, seed: u64, n: usize, size: usize) -> TestImage {
    let layers = (0..n)
        .map(|i| pseudo_random(seed * 1000 + i as u64, size))
        .collect();
    let image = build_image("amd64", layers);
    write_oci_image(layout, tag, &image);
    image
}

/// Writes an OCI index of one image per architecture into an OCI layout; returns the index
/// bytes, its digest, and the images.
pub fn make_oci_index(
    layout: &Path,
    tag: &str,
    seed: u64,
    arches: &[&str],
) -> (Vec<u8>, String, Vec<TestImage>) {
    let mut images = Vec::new();
    let mut entries = Vec::new();
    for (i, arch) in arches.iter().enumerate() {
        let img = build_image(arch, vec![pseudo_random(seed * 1000 + i as u64, 4096)]);
        for l in &img.layers {
            write_blob(layout, l);
        }
        write_blob(layout, &img.config);
        write_blob(layout, &img.manifest);
        let (arch_name, variant) = match arch.split_once('/') {
            Some((a, v)) => (a, Some(v)),
            None => (*arch, None),
        };
        let mut platform = json!({"architecture": arch_name, "os": "linux"});
        if let Some(v) = variant {
            platform["variant"] = json!(v);
        }
        entries.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": img.digest,
            "size": img.manifest.len(),
            "platform": platform,
        }));
        images.push(img);
    }
    let index = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
    .expect("json");
    write_blob(layout, &index);
    let digest = sha256(&index);
    add_to_index(
        layout,
        json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest,
            "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }),
    );
    (index, digest, images)
}

/// The manifest bytes of the image named `tag` in the OCI layout at `layout`.
pub fn oci_manifest(layout: &Path, tag: &str) -> Vec<u8> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("json");
    let entry = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"));
    let digest = entry["digest"].as_str().expect("digest");
    std::fs::read(layout.join("blobs/sha256").join(&digest["sha256:".len()..]))
        .expect("manifest blob")
}

/// A small `dir:` image at `dir` (written by ferry from a generated OCI layout); returns its
/// manifest digest.
pub fn dir_image(dir: &Path, seed: u64, size: usize) -> String {
    let parent = dir.parent().expect("parent");
    let layout = parent.join(format!(
        "{}-oci",
        dir.file_name().expect("name").to_string_lossy()
    ));
    let img = make_oci_image(&layout, "v1", seed, 1, size);
    let p = insecure_policy(parent);
    ferry(&[
        "copy",
        "-q",
        "--policy",
        p.to_str().expect("utf-8"),
        &format!("oci:{}:v1", layout.display()),
        &format!("dir:{}", dir.display()),
    ])
    .ok();
    img.digest
}

/// Runs podman (failing the test with an install hint if it is missing) on a store of its own
/// under `dir` (vfs, file events, cgroupfs: it runs inside a container as root).
pub fn podman(dir: &Path, args: &[&str]) -> Run {
    let bin = require_tool("podman", "podman");
    let mut c = Command::new(bin);
    c.arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("runroot"))
        .args([
            "--storage-driver",
            "vfs",
            "--events-backend",
            "file",
            "--cgroup-manager",
            "cgroupfs",
        ])
        .args(args);
    run(&mut c)
}
