//! `containers-storage:` against its real readers and writers: podman 4.3.1 and skopeo 1.9.3
//! (Debian), both drivers, in temporary stores (never the machine's own). Images are made here
//! with the `tar` crate (a static busybox, whiteouts, an opaque directory, gzip and plain
//! layers) and served by a real registry on 127.0.0.1.

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::{Run, insecure_policy, require_tool, run, sha256};

/// One layer: its tar and the blob as served (gzip or not).
struct Layer {
    tar: Vec<u8>,
    blob: Vec<u8>,
    gzip: bool,
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

/// A tar of `entries`: (name, Some(content)) for a file, (name/, None) for a directory,
/// ("name -> target", None) for a symlink.
fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in entries {
        if let Some((link, target)) = name.split_once(" -> ") {
            let mut h = header(tar::EntryType::Symlink, 0, 0o777);
            b.append_link(&mut h, link, target).unwrap();
        } else if name.ends_with('/') {
            let mut h = header(tar::EntryType::Directory, 0, 0o755);
            b.append_data(&mut h, name, &b""[..]).unwrap();
        } else {
            let data = content.unwrap_or(b"");
            let mode = if name.contains("busybox") {
                0o755
            } else {
                0o644
            };
            let mut h = header(tar::EntryType::Regular, data.len() as u64, mode);
            b.append_data(&mut h, name, data).unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn layer(tar: Vec<u8>, gzip: bool) -> Layer {
    let blob = if gzip {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    } else {
        tar.clone()
    };
    Layer { tar, blob, gzip }
}

/// An image: its layers, config and manifest, written to an OCI layout under tag `t`.
struct Image {
    layers: Vec<Layer>,
    config: Vec<u8>,
    manifest: Vec<u8>,
}

impl Image {
    fn new(layers: Vec<Layer>, label: &str) -> Image {
        let config = serde_json::to_vec(&json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "Labels": {"test": label}},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| sha256(&l.tar)).collect::<Vec<_>>()},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
            "layers": layers.iter().map(|l| json!({
                "mediaType": if l.gzip { "application/vnd.oci.image.layer.v1.tar+gzip" } else { "application/vnd.oci.image.layer.v1.tar" },
                "digest": sha256(&l.blob),
                "size": l.blob.len(),
            })).collect::<Vec<_>>(),
        }))
        .unwrap();
        Image {
            layers,
            config,
            manifest,
        }
    }

    fn digest(&self) -> String {
        sha256(&self.manifest)
    }

    fn config_id(&self) -> String {
        sha256(&self.config)["sha256:".len()..].to_string()
    }

    fn diff_ids(&self) -> Vec<String> {
        self.layers.iter().map(|l| sha256(&l.tar)).collect()
    }

    fn write_layout(&self, dir: &Path) {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let put = |b: &[u8]| std::fs::write(blobs.join(&sha256(b)["sha256:".len()..]), b).unwrap();
        for l in &self.layers {
            put(&l.blob);
        }
        put(&self.config);
        put(&self.manifest);
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        std::fs::write(
            dir.join("index.json"),
            serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": self.digest(), "size": self.manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": "t"}}]}))
            .unwrap(),
        )
        .unwrap();
    }
}

fn busybox() -> Vec<u8> {
    let p = Path::new("/bin/busybox");
    if !p.is_file() {
        require_tool("busybox-static-is-missing", "busybox-static");
    }
    std::fs::read(p).unwrap()
}

/// busybox and files in a gzip layer; whiteouts and an opaque directory in a second gzip
/// layer; a plain tar third layer.
fn whiteout_image(label: &str) -> Image {
    let bb = busybox();
    let l1 = tar_of(&[
        ("bin/", None),
        ("bin/busybox", Some(&bb)),
        ("bin/sh -> busybox", None),
        ("etc/", None),
        ("etc/a.txt", Some(b"a\n")),
        ("etc/keep.txt", Some(b"keep\n")),
        ("d/", None),
        ("d/old1", Some(b"old1\n")),
        ("d/old2", Some(b"old2\n")),
        ("x/", None),
        ("x/y/", None),
        ("x/y/z.txt", Some(b"z\n")),
    ]);
    let l2 = tar_of(&[
        ("etc/", None),
        ("etc/.wh.a.txt", Some(b"")),
        ("d/", None),
        ("d/.wh..wh..opq", Some(b"")),
        ("d/new.txt", Some(b"new\n")),
        ("x/", None),
        ("x/.wh.y", Some(b"")),
    ]);
    let l3 = tar_of(&[("etc/", None), ("etc/added.txt", Some(label.as_bytes()))]);
    Image::new(
        vec![layer(l1, true), layer(l2, true), layer(l3, false)],
        label,
    )
}

/// Two plain-tar layers: ferry gives this image back with its original digests.
fn plain_image(label: &str) -> Image {
    let l1 = tar_of(&[("etc/", None), ("etc/one", Some(b"1\n"))]);
    let l2 = tar_of(&[("etc/", None), ("etc/two", Some(label.as_bytes()))]);
    Image::new(vec![layer(l1, false), layer(l2, false)], label)
}

/// A test's world: a registry, a policy, temporary stores.
struct World {
    registry: support::registry::Registry,
    dir: tempfile::TempDir,
    policy: PathBuf,
}

impl World {
    fn new() -> World {
        require_tool("podman", "podman");
        require_tool("skopeo", "skopeo");
        let dir = tempfile::tempdir().unwrap();
        let policy = insecure_policy(dir.path());
        World {
            registry: support::registry::Registry::start(),
            dir,
            policy,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Pushes `image` to the registry as `name` with ferry (blobs as they are: a plain layer
    /// stays plain), returning `HOST/name`.
    fn push(&self, image: &Image, name: &str) -> String {
        let layout = self.path(&format!("layout-{}", name.replace([':', '/'], "-")));
        image.write_layout(&layout);
        let dest = format!("{}/{name}", self.registry.host());
        self.ferry(&[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:t", layout.display()),
            &format!("docker://{dest}"),
        ])
        .ok();
        dest
    }

    /// ferry pulls `src` (HOST/name) from the registry into `store` under the same name.
    fn pull(&self, src: &str, store: &Store) -> Run {
        self.ferry(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{src}"),
            &store.reference(src),
        ])
        .ok()
    }

    fn ferry(&self, args: &[&str]) -> Run {
        let mut all = vec![args[0], "--policy", self.policy.to_str().unwrap()];
        all.extend(&args[1..]);
        support::ferry(&all)
    }

    fn skopeo(&self, args: &[&str]) -> Run {
        let mut all = vec!["--policy", self.policy.to_str().unwrap()];
        all.extend(args);
        support::skopeo(&all)
    }
}

/// A temporary store.
struct Store {
    driver: &'static str,
    root: PathBuf,
    run: PathBuf,
}

impl Store {
    fn new(world: &World, name: &str, driver: &'static str) -> Store {
        Store {
            driver,
            root: world.path(&format!("{name}-root")),
            run: world.path(&format!("{name}-run")),
        }
    }

    /// `containers-storage:[DRIVER@ROOT+RUN]name`.
    fn reference(&self, name: &str) -> String {
        format!(
            "containers-storage:[{}@{}+{}]{name}",
            self.driver,
            self.root.display(),
            self.run.display()
        )
    }

    fn podman_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(require_tool("podman", "podman"));
        c.arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.run)
            .args([
                "--storage-driver",
                self.driver,
                "--events-backend",
                "file",
                "--cgroup-manager",
                "cgroupfs",
            ])
            .args(args);
        c
    }

    fn podman(&self, args: &[&str]) -> Run {
        run(&mut self.podman_cmd(args))
    }

    /// The store's layer records.
    fn layers(&self) -> Value {
        let p = self
            .root
            .join(format!("{}-layers/layers.json", self.driver));
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    fn inspect(&self, name: &str) -> Value {
        let out = self.podman(&["image", "inspect", name]).ok();
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        v[0].clone()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Unmount anything podman mounted, so the temporary directory can go.
        let _ = self.podman(&["image", "unmount", "--all"]);
        let _ = self.podman(&["rmi", "-a", "-f"]);
    }
}

fn layer_tar_digests_of_save(store: &Store, name: &str, work: &Path) -> Vec<String> {
    let archive = work.join(format!("save-{}.tar", store.driver));
    let _ = std::fs::remove_file(&archive);
    store
        .podman(&["save", "-o", archive.to_str().unwrap(), name])
        .ok();
    let mut a = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    let mut manifest = None;
    let mut tars = std::collections::HashMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if path == "manifest.json" {
            manifest = Some(data);
        } else if path.ends_with(".tar") && !data.is_empty() {
            tars.insert(path, sha256(&data));
        }
    }
    let m: Value = serde_json::from_slice(&manifest.unwrap()).unwrap();
    m[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| tars[l.as_str().unwrap()].clone())
        .collect()
}

/// ferry pulls into a store; podman lists it, inspects it (digest, config, layers), mounts it
/// (busybox's files, whiteouts applied), saves it (each layer's tar exactly as pulled) and
/// pushes it (the same diff_ids).
fn podman_reads_what_ferry_pulled(driver: &'static str) {
    let w = World::new();
    let image = whiteout_image(driver);
    let src = w.push(&image, "ferry/wh:1");
    let store = Store::new(&w, "s", driver);
    w.pull(&src, &store);

    let images = store
        .podman(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        .ok();
    assert!(
        images
            .stdout
            .contains(&format!("{src} {}", &image.config_id()[..12])),
        "{}",
        images.stdout
    );
    let inspect = store.inspect(&src);
    assert_eq!(inspect["Id"], image.config_id());
    assert_eq!(inspect["Digest"], image.digest());
    assert_eq!(inspect["Config"]["Labels"]["test"], driver);
    assert_eq!(
        inspect["RootFS"]["Layers"],
        json!(image.diff_ids()),
        "{inspect}"
    );

    let mounted = store.podman(&["image", "mount", &src]).ok();
    let root = PathBuf::from(mounted.stdout.trim());
    assert_eq!(std::fs::read(root.join("bin/busybox")).unwrap(), busybox());
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(std::fs::read(root.join("etc/keep.txt")).unwrap(), b"keep\n");
    assert_eq!(
        std::fs::read(root.join("etc/added.txt")).unwrap(),
        driver.as_bytes()
    );
    assert_eq!(std::fs::read(root.join("d/new.txt")).unwrap(), b"new\n");
    for gone in ["etc/a.txt", "d/old1", "d/old2", "x/y"] {
        assert!(
            std::fs::symlink_metadata(root.join(gone)).is_err(),
            "{gone} should be whited out"
        );
    }
    assert!(root.join("x").is_dir());
    store.podman(&["image", "unmount", &src]).ok();

    assert_eq!(
        layer_tar_digests_of_save(&store, &src, w.dir.path()),
        image.diff_ids(),
        "podman save gives each layer's tar as it was pulled"
    );

    let pushed = format!("{}/podman/pushed-{driver}:1", w.registry.host());
    store
        .podman(&[
            "push",
            "--tls-verify=false",
            &src,
            &format!("docker://{pushed}"),
        ])
        .ok();
    let config = w
        .skopeo(&[
            "inspect",
            "--config",
            "--tls-verify=false",
            &format!("docker://{pushed}"),
        ])
        .ok();
    let config: Value = serde_json::from_str(&config.stdout).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"], json!(image.diff_ids()));
}

#[test]
fn podman_reads_what_ferry_pulled_overlay() {
    podman_reads_what_ferry_pulled("overlay");
}

#[test]
fn podman_reads_what_ferry_pulled_vfs() {
    podman_reads_what_ferry_pulled("vfs");
}

/// A second image sharing the first one's base layer reuses it: no second copy of the layer.
#[test]
fn layers_already_in_the_store_are_reused() {
    let w = World::new();
    let a = whiteout_image("first");
    let b = whiteout_image("second");
    let (src_a, src_b) = (w.push(&a, "ferry/a:1"), w.push(&b, "ferry/b:1"));
    let store = Store::new(&w, "s", "overlay");
    for src in [&src_a, &src_b] {
        w.pull(src, &store);
    }
    let layers = store.layers();
    // Layers 1 and 2 are shared; each image has its own third layer.
    assert_eq!(layers.as_array().unwrap().len(), 4, "{layers}");
    for src in [&src_a, &src_b] {
        let m = store.podman(&["image", "mount", src]).ok();
        assert!(Path::new(m.stdout.trim()).join("bin/busybox").is_file());
    }
    // Pulled again: nothing new.
    w.pull(&src_a, &store);
    let layers2 = store.layers();
    assert_eq!(layers2.as_array().unwrap().len(), 4);
}

/// podman pulls; ferry copies the image out. A plain-tar image comes out byte for byte (same
/// manifest digest); a gzip one with its layers as their original tars (same diff_ids and
/// config).
#[test]
fn ferry_copies_out_what_podman_pulled() {
    let w = World::new();
    let plain = plain_image("plain");
    let zipped = whiteout_image("zipped");
    let src_plain = w.push(&plain, "ferry/plain:1");
    let src_zipped = w.push(&zipped, "ferry/zipped:1");
    for driver in ["overlay", "vfs"] {
        let store = Store::new(&w, &format!("p-{driver}"), driver);
        for src in [&src_plain, &src_zipped] {
            store
                .podman(&["pull", "--tls-verify=false", &format!("docker://{src}")])
                .ok();
        }
        let out = w.path(&format!("out-{driver}"));
        w.ferry(&[
            "copy",
            &store.reference(&src_plain),
            &format!("oci:{}:plain", out.display()),
        ])
        .ok();
        let got = w
            .skopeo(&["inspect", "--raw", &format!("oci:{}:plain", out.display())])
            .ok();
        assert_eq!(sha256(got.stdout.as_bytes()), plain.digest(), "{driver}");

        w.ferry(&[
            "copy",
            &store.reference(&src_zipped),
            &format!("oci:{}:zipped", out.display()),
        ])
        .ok();
        let raw = w
            .skopeo(&["inspect", "--raw", &format!("oci:{}:zipped", out.display())])
            .ok();
        let m: Value = serde_json::from_str(&raw.stdout).unwrap();
        assert_eq!(m["config"]["digest"], sha256(&zipped.config));
        let layers: Vec<String> = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(layers, zipped.diff_ids(), "{driver}");
        // skopeo reads what ferry wrote out.
        w.skopeo(&[
            "copy",
            &format!("oci:{}:zipped", out.display()),
            &format!("dir:{}", w.path(&format!("dir-{driver}")).display()),
        ])
        .ok();
    }
}

/// skopeo writes a store ferry reads, and reads a store ferry wrote.
#[test]
fn skopeo_and_ferry_share_stores() {
    let w = World::new();
    let image = whiteout_image("skopeo");
    let src = w.push(&image, "ferry/sk:1");
    let by_skopeo = Store::new(&w, "sk", "vfs");
    w.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{src}"),
        &by_skopeo.reference(&src),
    ])
    .ok();
    let out = w.path("from-skopeo");
    w.ferry(&[
        "copy",
        &by_skopeo.reference(&src),
        &format!("oci:{}:t", out.display()),
    ])
    .ok();
    let cfg = w
        .skopeo(&["inspect", "--config", &format!("oci:{}:t", out.display())])
        .ok();
    let cfg: Value = serde_json::from_str(&cfg.stdout).unwrap();
    assert_eq!(cfg["rootfs"]["diff_ids"], json!(image.diff_ids()));

    for driver in ["overlay", "vfs"] {
        let by_ferry = Store::new(&w, &format!("fe-{driver}"), driver);
        w.pull(&src, &by_ferry);
        let raw = w
            .skopeo(&["inspect", "--raw", &by_ferry.reference(&src)])
            .ok();
        assert_eq!(sha256(raw.stdout.as_bytes()), image.digest(), "{driver}");
        let dir = w.path(&format!("skopeo-out-{driver}"));
        w.skopeo(&[
            "copy",
            &by_ferry.reference(&src),
            &format!("oci:{}:t", dir.display()),
        ])
        .ok();
        let cfg = w
            .skopeo(&["inspect", "--config", &format!("oci:{}:t", dir.display())])
            .ok();
        let cfg: Value = serde_json::from_str(&cfg.stdout).unwrap();
        assert_eq!(
            cfg["rootfs"]["diff_ids"],
            json!(image.diff_ids()),
            "{driver}"
        );
    }
}

/// ferry and podman pull different images into one store at the same time, several rounds:
/// both images are complete and podman mounts both.
#[test]
fn ferry_and_podman_pull_into_one_store_at_once() {
    let w = World::new();
    let store = Store::new(&w, "s", "overlay");
    // Initialise the store (podman's own database) before the race.
    store.podman(&["images"]).ok();
    for round in 0..3 {
        let a = whiteout_image(&format!("ferry-{round}"));
        let b = whiteout_image(&format!("podman-{round}"));
        let src_a = w.push(&a, &format!("ferry/race-a:{round}"));
        let src_b = w.push(&b, &format!("ferry/race-b:{round}"));
        let ferry_ref = store.reference(&src_a);
        let policy = w.policy.clone();
        let src_a2 = src_a.clone();
        let t = std::thread::spawn(move || {
            support::ferry(&[
                "copy",
                "--policy",
                policy.to_str().unwrap(),
                "--src-tls-verify=false",
                &format!("docker://{src_a2}"),
                &ferry_ref,
            ])
        });
        let p = store.podman(&["pull", "--tls-verify=false", &format!("docker://{src_b}")]);
        let f = t.join().unwrap();
        f.ok();
        p.ok();
        for (src, img) in [(&src_a, &a), (&src_b, &b)] {
            assert_eq!(store.inspect(src)["Id"], img.config_id());
            let m = store.podman(&["image", "mount", src]).ok();
            let added = std::fs::read(Path::new(m.stdout.trim()).join("etc/added.txt")).unwrap();
            assert!(added.starts_with(b"ferry-") || added.starts_with(b"podman-"));
            store.podman(&["image", "unmount", src]).ok();
        }
    }
}

/// A pull killed with SIGKILL while a layer streams leaves a store podman reads; the next pull
/// removes what the killed one staged and succeeds. A layer record a killed writer left flagged
/// incomplete is removed by the next pull, as containers/storage does.
#[test]
fn kill_9_mid_pull_leaves_a_store_podman_reads() {
    use support::http::{HttpServer, Reply};
    let w = World::new();
    let store = Store::new(&w, "s", "overlay");
    let first = plain_image("before");
    let src_first = w.push(&first, "ferry/first:1");
    w.pull(&src_first, &store);

    let image = whiteout_image("killed");
    let src = w.push(&image, "ferry/killed:1");
    // A proxy that stalls the busybox layer halfway.
    let big = &image.layers[0].blob;
    let proxy = HttpServer::start(
        std::sync::Arc::new(|_r: &support::http::Request| Reply::forward()),
        Some(w.registry.host()),
    );
    proxy.set_route(
        &format!("/v2/ferry/killed/blobs/{}", sha256(big)),
        Reply::ForwardStalled {
            body_bytes: big.len() / 2,
        },
    );
    let via_proxy = src.replace(&w.registry.host(), &proxy.host());
    let mut child = Command::new(support::ferry_bin())
        .args([
            "copy",
            "--policy",
            w.policy.to_str().unwrap(),
            "--src-tls-verify=false",
            &format!("docker://{via_proxy}"),
            &store.reference(&src),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let staging = store.root.join("overlay/ferry-staging");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while proxy.bytes_sent(&format!("/v2/ferry/killed/blobs/{}", sha256(big)))
        < (big.len() / 4) as u64
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the stalled layer never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        std::fs::read_dir(&staging).unwrap().count() > 0,
        "the killed pull staged something"
    );

    // podman still reads the store: the first image whole, the killed one absent.
    let images = store
        .podman(&["images", "--format", "{{.Repository}}"])
        .ok();
    assert!(images.stdout.contains("ferry/first"), "{}", images.stdout);
    assert!(!images.stdout.contains("ferry/killed"), "{}", images.stdout);
    let m = store.podman(&["image", "mount", &src_first]).ok();
    assert!(Path::new(m.stdout.trim()).join("etc/two").is_file());
    store.podman(&["image", "unmount", &src_first]).ok();

    // A writer killed between its layer record and the layer's files leaves the record flagged
    // incomplete (made by hand here, as containers/storage would leave it).
    let layers_json = store.root.join("overlay-layers/layers.json");
    let mut layers: Value = serde_json::from_slice(&std::fs::read(&layers_json).unwrap()).unwrap();
    let dead = "d".repeat(64);
    layers.as_array_mut().unwrap().push(json!({
        "id": dead, "created": "2026-01-01T00:00:00Z", "flags": {"incomplete": true}
    }));
    std::fs::write(&layers_json, serde_json::to_vec(&layers).unwrap()).unwrap();
    std::fs::create_dir_all(store.root.join("overlay").join(&dead).join("diff")).unwrap();

    w.pull(&src, &store);
    let leftovers: Vec<_> = std::fs::read_dir(&staging).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let layers: Value = serde_json::from_slice(&std::fs::read(&layers_json).unwrap()).unwrap();
    assert!(!layers.to_string().contains(&dead), "{layers}");
    assert!(!store.root.join("overlay").join(&dead).exists());
    assert!(!layers.to_string().contains("incomplete"));
    assert_eq!(store.inspect(&src)["Id"], image.config_id());
    let m = store.podman(&["image", "mount", &src]).ok();
    assert!(Path::new(m.stdout.trim()).join("bin/busybox").is_file());
}

/// Signatures go where containers/image keeps them for this transport: skopeo copies them out
/// of a store ferry wrote.
#[test]
fn signatures_are_kept_where_containers_image_reads_them() {
    let w = World::new();
    let image = plain_image("signed");
    let layout = w.path("signed-layout");
    image.write_layout(&layout);
    // A dir: image with two signature files (opaque bytes for the insecure policy).
    let dir = w.path("signed-dir");
    w.ferry(&[
        "copy",
        &format!("oci:{}:t", layout.display()),
        &format!("dir:{}", dir.display()),
    ])
    .ok();
    let sig1 = [&[0x89u8, 0x01][..], b"first signature"].concat();
    let sig2 = [&[0x89u8, 0x01][..], b"second"].concat();
    std::fs::write(dir.join("signature-1"), &sig1).unwrap();
    std::fs::write(dir.join("signature-2"), &sig2).unwrap();
    let store = Store::new(&w, "s", "vfs");
    w.ferry(&[
        "copy",
        &format!("dir:{}", dir.display()),
        &store.reference("localhost/signed:1"),
    ])
    .ok();
    let out = w.path("signed-out");
    w.skopeo(&[
        "copy",
        &store.reference("localhost/signed:1"),
        &format!("dir:{}", out.display()),
    ])
    .ok();
    assert_eq!(std::fs::read(out.join("signature-1")).unwrap(), sig1);
    assert_eq!(std::fs::read(out.join("signature-2")).unwrap(), sig2);
    // And ferry reads them back too.
    let out2 = w.path("signed-out2");
    w.ferry(&[
        "copy",
        &store.reference("localhost/signed:1"),
        &format!("dir:{}", out2.display()),
    ])
    .ok();
    assert_eq!(std::fs::read(out2.join("signature-2")).unwrap(), sig2);
}

/// Bad references and stores: a clear error, exit 3 (or 2), nothing written.
/// IDs in images.json and layers.json become paths: an image or layer ID that is not a plain
/// name (a corrupt or hostile store) is refused by name, and nothing is read through it.
#[test]
fn ids_that_are_not_plain_names_are_refused() {
    let w = World::new();
    let src = w.push(&plain_image("ids"), "ferry/ids:1");
    let store = Store::new(&w, "s", "vfs");
    w.pull(&src, &store);
    let images_json = store.root.join("vfs-images/images.json");
    let original = std::fs::read_to_string(&images_json).unwrap();
    let records: Value = serde_json::from_str(&original).unwrap();
    let (id, layer) = (
        records[0]["id"].as_str().unwrap().to_string(),
        records[0]["layer"].as_str().unwrap().to_string(),
    );
    for (field, from, to, says) in [
        ("id", &id, "../../outside", "image ID \"../../outside\""),
        ("layer", &layer, "../x", "layer ID \"../x\""),
    ] {
        let tampered = original.replace(
            &format!("\"{field}\":\"{from}\""),
            &format!("\"{field}\":\"{to}\""),
        );
        assert_ne!(tampered, original, "{field} not found in {original}");
        std::fs::write(&images_json, tampered).unwrap();
        let dest = w.path(&format!("out-{field}"));
        let r = w.ferry(&[
            "copy",
            &store.reference(&src),
            &format!("dir:{}", dest.display()),
        ]);
        assert_eq!(r.code, 3, "{}", r.stderr);
        assert!(
            r.stderr.contains(says) && r.stderr.contains("not a plain name"),
            "{}",
            r.stderr
        );
        assert!(!dest.exists());
    }
    std::fs::write(&images_json, original).unwrap();
}

#[test]
fn bad_references_and_missing_images_are_clear_errors() {
    let w = World::new();
    let store = Store::new(&w, "s", "overlay");
    let r = support::ferry(&["inspect", &store.reference("localhost/none:1")]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("no such image"), "{}", r.stderr);
    let r = w.ferry(&[
        "copy",
        "containers-storage:[overlay@relative]x",
        &format!("dir:{}", w.path("d").display()),
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("absolute"), "{}", r.stderr);
    assert!(!w.path("d").exists());
    let r = w.ferry(&[
        "copy",
        &format!("containers-storage:[btrfs@{}]x", w.path("b").display()),
        &format!("dir:{}", w.path("d").display()),
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("btrfs"), "{}", r.stderr);
}
