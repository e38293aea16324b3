//! ferry's layer applier and bundle builder against real peers: trees equal to umoci 0.4.7's
//! for layers exercising layer.md, a bundle runc runs, and hostile layers refused with the layer
//! and entry named and nothing written outside the root. Layers are made by
//! tests/unpack/gen.py (Python's tarfile), apart from ferry's code.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ferry::Digest;
use ferry::bundle::{
    ApplyError, ApplyOptions, BundleBuilder, BundleReport, LimitKind, Refusal, Resolver, Rootfs,
    WarningKind,
};
use sha2::Digest as _;

fn generate(args: &[&str]) {
    let python = support::require_tool("python3", "python3");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/unpack/gen.py");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gen.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// tests/unpack/gen.py's `layout` image (tag "t"), made in `dir/layout`.
fn gen_layout(dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    generate(&["layout", layout.to_str().unwrap()]);
    layout
}

/// tests/unpack/gen.py's `busybox` image (tag "t") of Debian's static busybox, in `dir/layout`.
fn busybox_layout(dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    let busybox = static_busybox();
    generate(&[
        "busybox",
        layout.to_str().unwrap(),
        busybox.to_str().unwrap(),
    ]);
    layout
}

/// An image the gate admitted (a small one in an OCI layout, under a policy that accepts
/// anything), whose proof the applier takes: the library's applier cannot be used without one.
fn admitted() -> &'static ferry::AdmittedImage {
    static IMAGE: std::sync::OnceLock<ferry::AdmittedImage> = std::sync::OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let layout = dir.join("layout");
        support::make_oci_image(&layout, "t", 1, 1, 16);
        let policy = ferry::Policy::from_bytes(
            br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
            "test policy",
        )
        .unwrap();
        let session = ferry::Session::new(ferry::SessionConfig::default());
        let src = ferry::ImageReference::parse(&format!("oci:{}:t", layout.display())).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(ferry::open_admitted(
            &session,
            &src,
            &ferry::GateOptions::new(std::sync::Arc::new(policy)),
        ))
        .unwrap()
    })
}

fn admission() -> &'static ferry::Admission {
    admitted().admission()
}

fn options(resolver: Resolver) -> ApplyOptions {
    let mut o = ApplyOptions::default();
    o.resolver = resolver;
    o
}

/// The image config and the layers (media type, digest, blob path) of tag "t" in an OCI layout.
fn read_layout(layout: &Path) -> (Vec<u8>, Vec<(String, Digest, PathBuf)>) {
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mdigest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(mdigest)).unwrap()).unwrap();
    let config = std::fs::read(blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let d = l["digest"].as_str().unwrap();
            (
                l["mediaType"].as_str().unwrap().to_string(),
                Digest::parse(d).unwrap(),
                blob(d),
            )
        })
        .collect();
    (config, layers)
}

/// Unpacks tag "t" of `layout` into `bundle` with ferry's library.
fn ferry_unpack(
    layout: &Path,
    bundle: &Path,
    options: ApplyOptions,
) -> Result<BundleReport, ApplyError> {
    let (config, layers) = read_layout(layout);
    let mut b = BundleBuilder::create(bundle, options, admission())?;
    let n = layers.len();
    for (i, (mt, digest, path)) in layers.into_iter().enumerate() {
        let f = std::fs::File::open(&path).unwrap();
        b.apply_layer(f, &mt, &digest, &format!("layer {}/{n} {digest}", i + 1))?;
    }
    b.finish(&config)
}

fn umoci_unpack(layout: &Path, bundle: &Path) {
    let umoci = support::require_tool("umoci", "umoci");
    let out = Command::new(umoci)
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:t", layout.display()))
        .arg(bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Everything tree equality compares about one path.
#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    content: Option<String>,
    link: Option<String>,
    rdev: u64,
    /// Modification time of what is not a directory (a directory's changes with every layer
    /// that writes into it, header or not).
    mtime: Option<i64>,
    /// The other paths sharing this inode (hardlink group).
    links: Vec<String>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut buf = vec![0u8; 65536];
    let Ok(n) = rustix::fs::llistxattr(p, &mut buf[..]) else {
        return out;
    };
    for name in buf[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let mut v = vec![0u8; 65536];
        if let Ok(m) = rustix::fs::lgetxattr(p, name.as_str(), &mut v[..]) {
            v.truncate(m);
            out.insert(name, v);
        }
    }
    out
}

/// The tree below `root`, keyed by relative path ("" for the root itself).
fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut nodes = BTreeMap::new();
    let mut inodes: HashMap<u64, Vec<String>> = HashMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else {
            "other"
        };
        if ft.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        if !ft.is_dir() && m.nlink() > 1 {
            inodes.entry(m.ino()).or_default().push(rel.clone());
        }
        nodes.insert(
            rel,
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                size: if ft.is_dir() { 0 } else { m.size() },
                content: ft
                    .is_file()
                    .then(|| hex::encode(sha2::Sha256::digest(std::fs::read(&p).unwrap()))),
                link: ft.is_symlink().then(|| {
                    std::fs::read_link(&p)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                }),
                rdev: m.rdev(),
                mtime: (!ft.is_dir()).then(|| m.mtime()),
                links: Vec::new(),
                xattrs: xattrs(&p),
            },
        );
    }
    for group in inodes.values() {
        for p in group {
            let mut others: Vec<String> = group.iter().filter(|o| *o != p).cloned().collect();
            others.sort();
            if let Some(n) = nodes.get_mut(p) {
                n.links = others;
            }
        }
    }
    nodes
}

fn assert_same_tree(ours: &Path, theirs: &Path) {
    let a = tree(ours);
    let b = tree(theirs);
    let mut diffs = Vec::new();
    for (k, v) in &a {
        match b.get(k) {
            None => diffs.push(format!("only ferry has {k:?}: {v:?}")),
            Some(w) if w != v => diffs.push(format!("{k:?}:\n  ferry {v:?}\n  umoci {w:?}")),
            _ => {}
        }
    }
    for (k, w) in &b {
        if !a.contains_key(k) {
            diffs.push(format!("only umoci has {k:?}: {w:?}"));
        }
    }
    assert!(diffs.is_empty(), "trees differ:\n{}", diffs.join("\n"));
    assert!(a.len() > 30, "the tree compared is too small: {}", a.len());
}

#[test]
fn tree_equals_umoci_with_both_resolvers() {
    let t = tempfile::tempdir().unwrap();
    let layout = gen_layout(t.path());
    let theirs = t.path().join("umoci");
    umoci_unpack(&layout, &theirs);
    for resolver in [Resolver::Auto, Resolver::Walk] {
        let ours = t.path().join(format!("ferry-{resolver:?}"));
        let report = ferry_unpack(&layout, &ours, options(resolver)).unwrap();
        assert_eq!(report.openat2, resolver == Resolver::Auto);
        assert_eq!(report.layers.len(), 3);
        assert_same_tree(&ours.join("rootfs"), &theirs.join("rootfs"));

        // What layer.md asks, spelled out (so a shared mistake with umoci would still show).
        let r = ours.join("rootfs");
        assert!(!r.join("gone").exists() && !r.join("olddir").exists());
        assert!(!r.join("opq/lower").exists() && !r.join("opq/lowersub").exists());
        assert!(r.join("opq/new").is_file() && r.join("opq2/new2").is_file());
        assert!(!r.join("opq2/lower").exists());
        assert_eq!(
            std::fs::read_to_string(r.join("dup")).unwrap(),
            "third wins"
        );
        assert!(r.join("replaced_dir").is_file() && r.join("replaced_file/child").is_file());
        let walk = walkdir_names(&r);
        assert!(
            !walk.iter().any(|n| n.starts_with(".wh.")),
            "a whiteout entry is in the tree: {walk:?}"
        );
        let m = std::fs::metadata(r.join("usr/bin/sgid")).unwrap();
        assert_eq!((m.mode() & 0o7777, m.gid()), (0o2711, 50));
        assert_eq!(
            std::fs::metadata(r.join("home/alice/notes")).unwrap().uid(),
            1000
        );
        assert_eq!(xattrs(&r.join("data/xattr"))["user.ferry"], b"value-1");

        // The runtime config against umoci's.
        let ours: serde_json::Value =
            serde_json::from_slice(&std::fs::read(ours.join("config.json")).unwrap()).unwrap();
        let theirs: serde_json::Value =
            serde_json::from_slice(&std::fs::read(theirs.join("config.json")).unwrap()).unwrap();
        for key in ["args", "cwd"] {
            assert_eq!(
                ours["process"][key], theirs["process"][key],
                "process.{key}"
            );
        }
        for key in ["uid", "gid", "additionalGids"] {
            assert_eq!(
                ours["process"]["user"][key], theirs["process"]["user"][key],
                "process.user.{key}"
            );
        }
        for (k, v) in theirs["annotations"].as_object().unwrap() {
            // umoci also writes empty annotations for fields the image does not have (author);
            // conversion.md sets them from fields that are there.
            if v != "" && (k.starts_with("org.opencontainers.image.") || k == "com.example.label") {
                assert_eq!(&ours["annotations"][k], v, "annotation {k}");
            }
        }
        let env: Vec<&str> = ours["process"]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            env.contains(&"FOO=bar") && env.contains(&"PATH=/usr/bin:/bin"),
            "{env:?}"
        );
    }
}

fn walkdir_names(root: &Path) -> Vec<String> {
    tree(root)
        .keys()
        .map(|k| k.rsplit('/').next().unwrap_or("").to_string())
        .collect()
}

/// Debian's static busybox (the rootfs holds busybox alone, so it must be the static build,
/// busybox-static; the dynamic one from the busybox package would find no libc).
fn static_busybox() -> &'static Path {
    let status = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", "busybox-static"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let busybox = Path::new("/bin/busybox");
    assert!(
        status.ends_with("ok installed") && busybox.is_file(),
        "a static busybox is needed: apt-get install -y busybox-static"
    );
    busybox
}

/// Runs the bundle's process with runc (its state under `state`), asserting it succeeds; its
/// standard output.
fn runc_run(bundle: &Path, state: &Path) -> String {
    let runc = support::require_tool("runc", "runc");
    let id = format!(
        "ferry-unpack-test-{}-{}",
        std::process::id(),
        bundle.file_name().unwrap().to_string_lossy()
    );
    let out = Command::new(runc)
        .args(["--root", state.to_str().unwrap()])
        .args(["run", "--bundle", bundle.to_str().unwrap(), &id])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "runc run: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

const BUSYBOX_SAYS: &str = "hello from a ferry bundle\nuid=0 cwd=/tmp foo=from-image\n";

#[test]
fn runc_runs_a_busybox_bundle() {
    let t = tempfile::tempdir().unwrap();
    let layout = busybox_layout(t.path());
    let bundle = t.path().join("bundle");
    ferry_unpack(&layout, &bundle, ApplyOptions::default()).unwrap();
    assert_eq!(
        runc_run(&bundle, &t.path().join("runc-state")),
        BUSYBOX_SAYS
    );
}

/// What a hostile layer must do, from tests/unpack/gen.py's description.
#[derive(serde::Deserialize)]
struct Case {
    name: String,
    file: PathBuf,
    media_type: String,
    digest: String,
    entry: String,
    expect: String,
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = tree(dir).into_keys().collect();
    v.sort();
    v
}

#[test]
fn hostile_layers_are_refused_with_both_resolvers() {
    for resolver in [Resolver::Auto, Resolver::Walk] {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), "host data").unwrap();
        let before = listing(&outside);
        let cases_dir = t.path().join("cases");
        generate(&[
            "hostile",
            cases_dir.to_str().unwrap(),
            outside.to_str().unwrap(),
        ]);
        let cases: Vec<Case> =
            serde_json::from_slice(&std::fs::read(cases_dir.join("hostile.json")).unwrap())
                .unwrap();
        assert!(cases.len() >= 15);
        let work = t.path().join("work");
        std::fs::create_dir(&work).unwrap();
        for c in cases {
            let bundle = work.join(&c.name);
            let mut o = options(resolver);
            o.max_bytes = 8 << 20;
            let mut b = BundleBuilder::create(&bundle, o, admission()).unwrap();
            let label = format!("layer 1/1 {}", c.digest);
            let f = std::fs::File::open(&c.file).unwrap();
            let res = b.apply_layer(f, &c.media_type, &Digest::parse(&c.digest).unwrap(), &label);
            let ctx = format!("{} ({resolver:?})", c.name);
            match c.expect.as_str() {
                "refused" => {
                    let e = res.err().unwrap_or_else(|| panic!("{ctx}: not refused"));
                    let msg = e.to_string();
                    match &e {
                        ApplyError::Refused {
                            layer,
                            entry,
                            reason,
                        } => {
                            assert_eq!(layer, &label, "{ctx}");
                            assert_eq!(entry, &c.entry, "{ctx}");
                            // Absolute names are refused as such, not stripped into the root.
                            match c.name.as_str() {
                                "absolute" | "absolute-symlink-name" | "absolute-whiteout" => {
                                    assert_eq!(reason, &Refusal::Absolute, "{ctx}");
                                    assert!(msg.contains("absolute"), "{ctx}: {msg}");
                                }
                                "hardlink-absolute" => assert!(
                                    matches!(reason, Refusal::HardlinkAbsolute { .. }),
                                    "{ctx}: {reason}"
                                ),
                                _ => {}
                            }
                        }
                        other => panic!("{ctx}: not a refusal: {other}"),
                    }
                    assert!(
                        msg.contains(&label) && msg.contains(&c.entry),
                        "{ctx}: {msg}"
                    );
                    drop(b);
                    assert!(!bundle.exists(), "{ctx}: a refused unpack left {bundle:?}");
                }
                "limit" => {
                    let e = res
                        .err()
                        .unwrap_or_else(|| panic!("{ctx}: the cap did not trip"));
                    assert!(
                        matches!(&e, ApplyError::Limit { layer, kind: LimitKind::Bytes, .. } if layer == &label),
                        "{ctx}: {e}"
                    );
                }
                "corrupt" => {
                    let e = res.err().unwrap_or_else(|| panic!("{ctx}: accepted"));
                    assert!(
                        matches!(&e, ApplyError::Corrupt { layer, .. } if layer == &label),
                        "{ctx}: {e}"
                    );
                }
                "inside" => {
                    res.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    let report = b.finish(br#"{"config":{"Cmd":["x"]}}"#).unwrap();
                    let root = report.bundle.join("rootfs");
                    let in_root = root.join(outside.strip_prefix("/").unwrap());
                    match c.name.as_str() {
                        "symlink-then-file" => {
                            let m = std::fs::symlink_metadata(root.join("victim")).unwrap();
                            assert!(m.is_file(), "{ctx}: the symlink was not replaced");
                        }
                        _ => assert!(
                            in_root.join("pwned").is_file(),
                            "{ctx}: the write did not land inside the root at {in_root:?}: {:?}",
                            listing(&root)
                        ),
                    }
                }
                other => panic!("unknown expectation {other}"),
            }
            assert_eq!(
                listing(&outside),
                before,
                "{ctx}: something was written outside"
            );
            assert_eq!(
                std::fs::read_to_string(outside.join("secret")).unwrap(),
                "host data"
            );
        }
        // Nothing beside the bundles but the bundles themselves (no stray temporaries).
        for e in std::fs::read_dir(&work).unwrap() {
            let n = e.unwrap().file_name().into_string().unwrap();
            assert!(!n.starts_with('.'), "a temporary was left: {n}");
        }
    }
}

/// A layer built here with the tar crate's writer (independent of the reader under test).
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn apply_bytes(
    root: &mut Rootfs,
    blob: &[u8],
    media_type: &str,
) -> Result<ferry::bundle::LayerStats, ApplyError> {
    root.apply_layer(
        blob,
        media_type,
        &Digest::sha256_of(blob),
        "layer under test",
    )
}

#[test]
fn zstd_gzip_and_sniffed_layers_and_digest_mismatch() {
    let t = tempfile::tempdir().unwrap();
    let mut root = Rootfs::open(t.path(), ApplyOptions::default(), admission()).unwrap();
    let tar = tar_of(&[("z/file", b"zstd layer")]);
    let zst = zstd::stream::encode_all(&tar[..], 3).unwrap();
    let s = apply_bytes(
        &mut root,
        &zst,
        "application/vnd.oci.image.layer.v1.tar+zstd",
    )
    .unwrap();
    assert_eq!((s.entries, s.compressed_bytes), (1, zst.len() as u64));
    // Generic media type: the magic decides.
    let tar = tar_of(&[("g/file", b"sniffed gzip")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let gz = gz.finish().unwrap();
    apply_bytes(&mut root, &gz, "application/octet-stream").unwrap();
    apply_bytes(
        &mut root,
        &zstd::stream::encode_all(&tar_of(&[("s/zst", b"sniffed zstd")])[..], 3).unwrap(),
        "",
    )
    .unwrap();
    apply_bytes(&mut root, &tar_of(&[("p/plain", b"plain")]), "").unwrap();
    assert_eq!(
        std::fs::read(t.path().join("z/file")).unwrap(),
        b"zstd layer"
    );
    assert_eq!(
        std::fs::read(t.path().join("g/file")).unwrap(),
        b"sniffed gzip"
    );
    assert_eq!(
        std::fs::read(t.path().join("s/zst")).unwrap(),
        b"sniffed zstd"
    );
    assert_eq!(std::fs::read(t.path().join("p/plain")).unwrap(), b"plain");
    // Docker's media type.
    apply_bytes(
        &mut root,
        &gz,
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    )
    .unwrap();
    // A media type that is not a layer.
    let e = apply_bytes(&mut root, &gz, "application/vnd.oci.image.config.v1+json").unwrap_err();
    assert!(matches!(e, ApplyError::MediaType { .. }), "{e}");
    // A digest that does not match: the layer fails after its last byte.
    let wrong = Digest::sha256_of(b"something else");
    let e = root
        .apply_layer(&gz[..], "application/octet-stream", &wrong, "layer 9/9")
        .unwrap_err();
    match &e {
        ApplyError::Digest {
            layer,
            expected,
            actual,
        } => {
            assert_eq!(layer, "layer 9/9");
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &Digest::sha256_of(&gz));
        }
        other => panic!("not a digest error: {other}"),
    }
    // Bytes after the end of the archive still count for the digest.
    let plain = tar_of(&[("t/f", b"trailing")]);
    let mut longer = plain.clone();
    longer.extend_from_slice(&[0u8; 4096]);
    let e = root
        .apply_layer(&longer[..], "", &Digest::sha256_of(&plain), "l")
        .unwrap_err();
    assert!(matches!(e, ApplyError::Digest { .. }), "{e}");
    // Garbage after a gzip stream is not a gzip member: corrupt, as Go's gzip reader says.
    let mut longer = gz.clone();
    longer.extend_from_slice(b"garbage!");
    let e = root
        .apply_layer(&longer[..], "", &Digest::sha256_of(&longer), "l")
        .unwrap_err();
    assert!(matches!(e, ApplyError::Corrupt { .. }), "{e}");
}

#[test]
fn a_failed_layer_leaves_no_bundle_and_leftovers_of_killed_unpacks_go() {
    let t = tempfile::tempdir().unwrap();
    let bundle = t.path().join("b");
    let layer = tar_of(&[("f", b"x")]);
    {
        let mut b = BundleBuilder::create(&bundle, ApplyOptions::default(), admission()).unwrap();
        let e = b
            .apply_layer(&layer[..], "", &Digest::sha256_of(b"not it"), "layer 1/1")
            .unwrap_err();
        assert!(matches!(e, ApplyError::Digest { .. }));
    }
    assert!(!bundle.exists());
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);

    // A killed unpack: its directory and an unheld lock file. Plus a look-alike without a lock
    // (not ferry's) that must stay.
    let dead = t.path().join(".b.ferry-unpack-999999-abc");
    std::fs::create_dir_all(dead.join("rootfs/etc")).unwrap();
    std::fs::write(t.path().join(".b.ferry-unpack-999999-abc.lock"), "").unwrap();
    let foreign = t.path().join(".b.ferry-unpack-not-ours");
    std::fs::create_dir(&foreign).unwrap();
    let mut b = BundleBuilder::create(&bundle, ApplyOptions::default(), admission()).unwrap();
    b.apply_layer(&layer[..], "", &Digest::sha256_of(&layer), "layer 1/1")
        .unwrap();
    let report = b.finish(br#"{"config":{"Cmd":["/f"]}}"#).unwrap();
    assert_eq!(report.removed_leftovers, vec![dead.clone()]);
    assert!(!dead.exists() && foreign.exists());
    assert!(bundle.join("rootfs/f").is_file() && bundle.join("config.json").is_file());
    let left: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");

    // An existing, non-empty bundle is refused before anything is written.
    let e = BundleBuilder::create(&bundle, ApplyOptions::default(), admission())
        .err()
        .unwrap();
    assert!(matches!(e, ApplyError::BundleExists { .. }), "{e}");
    // An empty directory is fine.
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let mut b = BundleBuilder::create(&empty, ApplyOptions::default(), admission()).unwrap();
    b.apply_layer(&layer[..], "", &Digest::sha256_of(&layer), "l")
        .unwrap();
    b.finish(b"{}").unwrap();
    assert!(empty.join("rootfs/f").is_file());
}

#[test]
fn rootless_skips_devices_and_owners_with_warnings() {
    let t = tempfile::tempdir().unwrap();
    let layout = gen_layout(t.path());
    let mut o = ApplyOptions::default();
    o.rootless = true;
    let report = ferry_unpack(&layout, &t.path().join("b"), o).unwrap();
    let r = t.path().join("b/rootfs");
    assert!(!r.join("dev/null").exists() && !r.join("dev/loop9").exists());
    let warned: Vec<&str> = report.layers[0]
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::DeviceSkipped)
        .map(|w| w.entry.as_str())
        .collect();
    assert_eq!(warned, ["dev/null", "dev/loop9"]);
    let me = rustix::process::geteuid().as_raw();
    assert_eq!(
        std::fs::metadata(r.join("home/alice/notes")).unwrap().uid(),
        me
    );
    // FIFOs need no privilege and are kept.
    assert!(r.join("data/fifo").exists());
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("b/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["linux"]["uidMappings"][0]["hostID"], me);
}

#[test]
fn entry_cap_and_refusal_name_the_layer() {
    let t = tempfile::tempdir().unwrap();
    let mut o = ApplyOptions::default();
    o.max_entries = 2;
    let mut root = Rootfs::open(t.path(), o, admission()).unwrap();
    let tar = tar_of(&[("a", b"1"), ("b", b"2"), ("c", b"3")]);
    let e = apply_bytes(&mut root, &tar, "").unwrap_err();
    assert!(
        matches!(
            e,
            ApplyError::Limit {
                kind: LimitKind::Entries,
                limit: 2,
                ..
            }
        ),
        "{e}"
    );
    let e = ApplyError::Refused {
        layer: "layer 1/2 sha256:x".into(),
        entry: "../x".into(),
        reason: Refusal::Escapes,
    };
    assert_eq!(
        e.to_string(),
        "layer 1/2 sha256:x: entry \"../x\" refused: its name climbs out of the root with '..'"
    );
}

const MANY: usize = 200_000;

#[test]
fn two_hundred_thousand_small_files() {
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    generate(&["many", layout.to_str().unwrap(), &MANY.to_string()]);
    let start = Instant::now();
    let report = ferry_unpack(&layout, &t.path().join("b"), ApplyOptions::default()).unwrap();
    let took = start.elapsed();
    eprintln!("ferry: {MANY} files in {took:?}");
    assert_eq!(report.layers[0].entries, (MANY + MANY / 100) as u64);
    assert_eq!(
        std::fs::read_to_string(t.path().join("b/rootfs/d01999/f199999")).unwrap(),
        "file 199999\n"
    );
    assert_eq!(
        std::fs::read_dir(t.path().join("b/rootfs"))
            .unwrap()
            .count(),
        MANY / 100
    );
}

/// The measurement the report quotes: ferry vs `umoci unpack` on the same layout.
/// Run: cargo test --test unpack -- --ignored --nocapture bench_many_files_vs_umoci
/// FERRY_BENCH_LAYOUT=DIR reuses a layout made by `gen.py many DIR N`; FERRY_BENCH_ONLY=ferry,
/// walk or umoci runs one of the three (to time one process alone, e.g. under /usr/bin/time).
#[test]
#[ignore]
fn bench_many_files_vs_umoci() {
    let t = tempfile::tempdir().unwrap();
    let layout = match std::env::var_os("FERRY_BENCH_LAYOUT") {
        Some(l) => PathBuf::from(l),
        None => {
            let layout = t.path().join("layout");
            generate(&["many", layout.to_str().unwrap(), &MANY.to_string()]);
            layout
        }
    };
    let only = std::env::var("FERRY_BENCH_ONLY").unwrap_or_default();
    let run = |what: &str| only.is_empty() || only == what;
    let mut line = Vec::new();
    for (what, resolver) in [("ferry", Resolver::Auto), ("walk", Resolver::Walk)] {
        if run(what) {
            let start = Instant::now();
            ferry_unpack(&layout, &t.path().join(what), options(resolver)).unwrap();
            line.push(format!("ferry ({resolver:?}) {:?}", start.elapsed()));
        }
    }
    if run("umoci") {
        let start = Instant::now();
        umoci_unpack(&layout, &t.path().join("umoci"));
        line.push(format!("umoci {:?}", start.elapsed()));
    }
    eprintln!("{}", line.join(", "));
}

/// Resolver timing, alternating (the machine is shared: one run alone says little).
/// Run: cargo test --test unpack -- --ignored --nocapture bench_resolvers
#[test]
#[ignore]
fn bench_resolvers() {
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    let n: usize = std::env::var("FERRY_BENCH_FILES").map_or(50_000, |v| v.parse().unwrap());
    generate(&["many", layout.to_str().unwrap(), &n.to_string()]);
    for round in 0..2 {
        for resolver in [Resolver::Walk, Resolver::Auto] {
            let dest = t.path().join(format!("{resolver:?}-{round}"));
            let start = Instant::now();
            ferry_unpack(&layout, &dest, options(resolver)).unwrap();
            eprintln!("{n} files, {resolver:?}: {:?}", start.elapsed());
            let start = Instant::now();
            std::fs::remove_dir_all(&dest).unwrap();
            eprintln!("  (removing them: {:?})", start.elapsed());
        }
    }
}

/// Without rootless, a caller that is not root gets a clear error before anything is written;
/// rootless works. Run as root, the test runs itself again as nobody (setpriv, util-linux).
#[test]
fn not_root_needs_rootless() {
    let euid = rustix::process::geteuid().as_raw();
    if euid == 0 {
        let setpriv = support::require_tool("setpriv", "util-linux");
        let out = Command::new(setpriv)
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "not_root_needs_rootless", "--nocapture"])
            .env("TMPDIR", "/tmp")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "as nobody: {text}");
        assert!(text.contains("checked as uid 65534"), "{text}");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let e = Rootfs::open(t.path(), ApplyOptions::default(), admission())
        .err()
        .unwrap();
    assert!(
        matches!(e, ApplyError::NeedsRoot { uid } if uid == euid),
        "{e}"
    );
    assert!(e.to_string().contains("rootless"), "{e}");
    let e = BundleBuilder::create(&t.path().join("b"), ApplyOptions::default(), admission())
        .err()
        .unwrap();
    assert!(matches!(e, ApplyError::NeedsRoot { .. }), "{e}");
    assert_eq!(
        std::fs::read_dir(t.path()).unwrap().count(),
        0,
        "something was left"
    );
    let mut o = ApplyOptions::default();
    o.rootless = true;
    let mut root = Rootfs::open(t.path(), o, admission()).unwrap();
    let tar = tar_of(&[("ro/f", b"x")]);
    apply_bytes(&mut root, &tar, "").unwrap();
    assert_eq!(
        std::fs::metadata(t.path().join("ro/f")).unwrap().uid(),
        euid
    );
    // A read-only directory of a lower layer still takes the next layer's files, and keeps its
    // mode; a read-only directory of this layer takes its own contents.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o555);
    h.set_size(0);
    b.append_data(&mut h, "ro", &[][..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o444);
    h.set_size(1);
    b.append_data(&mut h, "ro/g", &b"y"[..]).unwrap();
    let layer = b.into_inner().unwrap();
    apply_bytes(&mut root, &layer, "").unwrap();
    let mode = |p: &str| std::fs::metadata(t.path().join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("ro"), 0o555);
    apply_bytes(&mut root, &tar_of(&[("ro/h", b"z")]), "").unwrap();
    assert_eq!(mode("ro"), 0o555);
    assert!(t.path().join("ro/h").is_file());
    // Writable again, or the temporary directory could not be removed by its owner.
    std::fs::set_permissions(
        t.path().join("ro"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    eprintln!("checked as uid {euid}");
}

/// A reader that gives a layer's first bytes, then blocks forever (an unpack in progress).
struct Stall(Vec<u8>, usize);
impl std::io::Read for Stall {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.0[self.1..];
        if rest.is_empty() {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            return Ok(0);
        }
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.1 += n;
        Ok(n)
    }
}

/// A real kill: a child unpacking (stalled mid-layer) is killed with SIGKILL; no bundle appears,
/// and the next unpack to the same place removes the child's temporary directory.
#[test]
fn leftovers_of_a_killed_unpack_are_removed_by_the_next() {
    if let Some(bundle) = std::env::var_os("FERRY_TEST_STALLED_BUNDLE") {
        let mut b = BundleBuilder::create(Path::new(&bundle), ApplyOptions::default(), admission())
            .unwrap();
        let tar = tar_of(&[("a", b"written before the stall"), ("b", &[1u8; 100_000])]);
        let half = tar[..tar.len() / 2].to_vec();
        eprintln!("stalling");
        let _ = b.apply_layer(Stall(half, 0), "", &Digest::sha256_of(&tar), "layer 1/1");
        unreachable!("the stalled read returned");
    }
    let t = tempfile::tempdir().unwrap();
    let bundle = t.path().join("b");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "leftovers_of_a_killed_unpack_are_removed_by_the_next",
            "--nocapture",
        ])
        .env("FERRY_TEST_STALLED_BUNDLE", &bundle)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the child has written part of the layer into its temporary rootfs.
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    let tmp = loop {
        let found = std::fs::read_dir(t.path()).unwrap().find_map(|e| {
            let p = e.unwrap().path();
            (p.is_dir() && p.join("rootfs/a").is_file()).then_some(p)
        });
        if let Some(p) = found {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the child never started unpacking"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // While it runs, its lock is held: another unpack leaves it alone.
    let mut other = BundleBuilder::create(
        &t.path().join("other"),
        ApplyOptions::default(),
        admission(),
    )
    .unwrap();
    other
        .apply_layer(
            &tar_of(&[("x", b"")])[..],
            "",
            &Digest::sha256_of(&tar_of(&[("x", b"")])),
            "l",
        )
        .unwrap();
    drop(other);
    let b2 = BundleBuilder::create(&bundle, ApplyOptions::default(), admission()).unwrap();
    drop(b2);
    assert!(tmp.exists(), "a running unpack's directory was removed");

    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!bundle.exists(), "a killed unpack left a bundle");
    assert!(tmp.exists(), "nothing to clean up: the test did not test");
    let layer = tar_of(&[("f", b"x")]);
    let mut b = BundleBuilder::create(&bundle, ApplyOptions::default(), admission()).unwrap();
    b.apply_layer(&layer[..], "", &Digest::sha256_of(&layer), "layer 1/1")
        .unwrap();
    let report = b.finish(br#"{"config":{"Cmd":["/f"]}}"#).unwrap();
    assert_eq!(report.removed_leftovers, vec![tmp.clone()]);
    assert!(!tmp.exists());
    let names: Vec<String> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["b"], "only the bundle is left");
}

/// What docs/unpack.md tells the lead: async downloads feed the synchronous applier through
/// bounded channels and SyncIoBridge on a blocking thread, and layer N+1 downloads while layer N
/// is applied. The result equals a direct unpack.
#[test]
fn async_sources_feed_the_applier_and_overlap() {
    use bytes::Bytes;
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncReadExt;

    let t = tempfile::tempdir().unwrap();
    let layout = gen_layout(t.path());
    let (config, layers) = read_layout(&layout);
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bundle = t.path().join("async");
    let report = rt.block_on(async {
        let mut feeds = Vec::new();
        for (i, (mt, digest, path)) in layers.into_iter().enumerate() {
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
            let ev = events.clone();
            // The "download": 16 KiB chunks with a pause, as from a network.
            tokio::spawn(async move {
                let mut f = tokio::fs::File::open(&path).await.unwrap();
                let mut first = true;
                loop {
                    let mut buf = vec![0u8; 16 * 1024];
                    let n = f.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    buf.truncate(n);
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                        return;
                    }
                    if first {
                        ev.lock().unwrap().push(format!("download {i} first chunk"));
                        first = false;
                    }
                }
                ev.lock().unwrap().push(format!("download {i} end"));
            });
            feeds.push((mt, digest, rx));
        }
        let ev = events.clone();
        tokio::task::spawn_blocking(move || -> Result<BundleReport, ApplyError> {
            let mut b = BundleBuilder::create(&bundle, ApplyOptions::default(), admission())?;
            for (i, (mt, digest, mut rx)) in feeds.into_iter().enumerate() {
                let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
                let reader =
                    tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
                b.apply_layer(reader, &mt, &digest, &format!("layer {}", i + 1))?;
                ev.lock().unwrap().push(format!("applied {i}"));
            }
            b.finish(&config)
        })
        .await
        .unwrap()
    });
    report.unwrap();
    let direct = t.path().join("direct");
    ferry_unpack(&layout, &direct, ApplyOptions::default()).unwrap();
    let a = tree(&t.path().join("async/rootfs"));
    let b = tree(&direct.join("rootfs"));
    assert_eq!(a.len(), b.len());
    for (k, v) in &a {
        // Hardlink groups and inode-free fields must match; mtimes are not compared.
        assert_eq!(Some(v), b.get(k), "{k}");
    }
    let ev = events.lock().unwrap().clone();
    let pos = |s: &str| ev.iter().position(|e| e == s).unwrap();
    assert!(
        pos("download 1 first chunk") < pos("applied 0"),
        "layer 2's bytes were not arriving while layer 1 was applied: {ev:?}"
    );
}

// ---- `ferry unpack`, the command: the gate, every transport, a registry, the store ----

/// The names in `dir` (no recursion), sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// `ferry copy` from an OCI layout's tag "t" to `dst` with a policy that accepts anything.
fn copy_in(t: &Path, layout: &Path, dst: &str, extra: &[&str]) {
    let policy = support::insecure_policy(t);
    let src = format!("oci:{}:t", layout.display());
    let mut args = vec!["copy", "-q", "--policy", policy.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[&src, dst]);
    support::ferry(&args).ok();
}

/// `ferry copy` of an OCI layout's tag "t" to `reg` as ns/NAME:1; its reference.
fn push_to(t: &Path, reg: &support::registry::Registry, layout: &Path, name: &str) -> String {
    let remote = format!("docker://{}/ns/{name}:1", reg.host());
    copy_in(t, layout, &remote, &["--dest-tls-verify=false"]);
    remote
}

/// `ferry unpack` with a policy that accepts anything.
fn unpack_cli(t: &Path, extra: &[&str], src: &str, bundle: &Path) -> support::Run {
    let policy = support::insecure_policy(t);
    let mut args = vec!["unpack", "--policy", policy.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[src, bundle.to_str().unwrap()]);
    support::ferry(&args)
}

fn json_of(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn the_command_unpacks_from_every_transport_to_the_same_bundle() {
    let reg = support::registry::Registry::start();
    let t = tempfile::tempdir().unwrap();
    let layout = gen_layout(t.path());
    let store = t.path().join("store");
    let store_s = store.to_str().unwrap();
    let dir = t.path().join("dir");
    copy_in(t.path(), &layout, &format!("dir:{}", dir.display()), &[]);
    copy_in(
        t.path(),
        &layout,
        "store:example.com/app:1",
        &["--store", store_s],
    );
    let remote = push_to(t.path(), &reg, &layout, "app");

    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let theirs = t.path().join("umoci");
    umoci_unpack(&layout, &theirs);
    let oci = format!("oci:{}:t", layout.display());
    let dir_ref = format!("dir:{}", dir.display());
    for (name, src, extra) in [
        ("oci", oci.as_str(), vec![]),
        ("dir", dir_ref.as_str(), vec![]),
        ("store", "store:example.com/app:1", vec!["--store", store_s]),
        ("docker", remote.as_str(), vec!["--tls-verify=false"]),
    ] {
        let bundle = out.join(name);
        let run = unpack_cli(t.path(), &extra, src, &bundle).ok();
        assert!(
            run.stderr.contains("Unpacked ") && run.stderr.contains("Applying layer 3/3 sha256:"),
            "{name}: progress as copy shows it: {}",
            run.stderr
        );
        assert_same_tree(&bundle.join("rootfs"), &theirs.join("rootfs"));
        let ours = json_of(&bundle.join("config.json"));
        let umoci = json_of(&theirs.join("config.json"));
        assert_eq!(ours["process"]["args"], umoci["process"]["args"], "{name}");
        assert_eq!(
            ours["process"]["user"],
            json_of(&out.join("oci/config.json"))["process"]["user"]
        );
    }
    // --rootfs-only: the filesystem alone, in the directory given.
    let rootfs = out.join("rootfs-only");
    unpack_cli(t.path(), &["-q", "--rootfs-only"], &oci, &rootfs).ok();
    assert_same_tree(&rootfs, &theirs.join("rootfs"));
    assert!(!rootfs.join("config.json").exists() && !rootfs.join("rootfs").exists());
    // Nothing but the bundles beside them: no temporary directory, no layer file.
    assert_eq!(
        names_in(&out),
        ["dir", "docker", "oci", "rootfs-only", "store"]
    );
    // An existing bundle is refused (exit 3) and left as it was.
    let again = unpack_cli(t.path(), &["-q"], &oci, &out.join("oci")).code(3);
    assert!(
        again.stderr.contains("exists and is not empty"),
        "{}",
        again.stderr
    );
    assert!(out.join("oci/config.json").is_file());
    // A bundle holds one image: --all is bad usage.
    unpack_cli(t.path(), &["--all"], &oci, &out.join("all")).code(2);
    assert!(!out.join("all").exists());
}

/// An absolute name in a layer (`/etc/evil`) is refused, not stripped into the root: exit 3
/// naming the layer's digest and the entry, nothing at BUNDLE nor beside it. containers-storage
/// stages its layers with the same applier, so a copy into a store is refused too.
#[test]
fn an_absolute_name_is_refused_naming_the_layer_and_the_entry() {
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    generate(&["absolute", layout.to_str().unwrap()]);
    let (_, layers) = read_layout(&layout);
    let digest = layers[1].1.to_string();
    let src = format!("oci:{}:t", layout.display());
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for extra in [&[][..], &["--rootfs-only"][..]] {
        let bundle = out.join("bundle");
        let mut args = vec!["-q"];
        args.extend_from_slice(extra);
        let run = unpack_cli(t.path(), &args, &src, &bundle).code(3);
        for want in [
            format!("layer 2/2 {digest}"),
            "\"/etc/evil\"".to_string(),
            "absolute".to_string(),
        ] {
            assert!(run.stderr.contains(&want), "{want}: {}", run.stderr);
        }
        assert!(names_in(&out).is_empty(), "{extra:?}: {:?}", names_in(&out));
    }

    let store = format!(
        "containers-storage:[vfs@{}+{}]localhost/absolute:1",
        t.path().join("cs-root").display(),
        t.path().join("cs-run").display()
    );
    let policy = support::insecure_policy(t.path());
    let run = support::ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        &src,
        &store,
    ])
    .code(3);
    assert!(
        run.stderr.contains("/etc/evil") && run.stderr.contains("absolute"),
        "{}",
        run.stderr
    );
    let run = support::ferry(&["inspect", &store]).code(3);
    assert!(run.stderr.contains("no such image"), "{}", run.stderr);
}

#[test]
fn a_rejected_image_exits_1_and_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let layout = gen_layout(t.path());
    let policy = t.path().join("reject.json");
    std::fs::write(&policy, r#"{"default":[{"type":"reject"}]}"#).unwrap();
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let bundle = out.join("bundle");
    let run = support::ferry(&[
        "unpack",
        "--policy",
        policy.to_str().unwrap(),
        &format!("oci:{}:t", layout.display()),
        bundle.to_str().unwrap(),
    ])
    .code(1);
    assert!(run.stderr.contains("reject"), "{}", run.stderr);
    assert!(!bundle.exists());
    assert!(names_in(&out).is_empty(), "{:?}", names_in(&out));

    // The library says the same, with the kind a runtime branches on.
    let session = ferry::Session::new(ferry::SessionConfig::default());
    let src = ferry::ImageReference::parse(&format!("oci:{}:t", layout.display())).unwrap();
    let policy = ferry::Policy::from_file(&policy).unwrap();
    let options = ferry::UnpackOptions::new(std::sync::Arc::new(policy));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = rt
        .block_on(ferry::unpack(&session, &src, &bundle, &options))
        .unwrap_err();
    assert_eq!(e.kind(), ferry::ErrorKind::Rejected, "{e}");
    assert!(names_in(&out).is_empty());
}

#[test]
fn a_layer_corrupted_in_transit_exits_3_naming_it_and_writes_nothing() {
    use support::http::{HttpServer, Reply};
    let reg = support::registry::Registry::start();
    let t = tempfile::tempdir().unwrap();
    let proxy = HttpServer::start(std::sync::Arc::new(|_| Reply::forward()), Some(reg.host()));
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let bundle = out.join("bundle");
    // A byte in the middle of layer 1's deflate stream (a gzip of 300 KB); and one in the gzip
    // header of a 24 MiB layer, which the decoder refuses at once, long before the end of the
    // download shows the digest: the cause reported is still the digest.
    let small = t.path().join("small");
    generate(&["layout", small.to_str().unwrap()]);
    let large = t.path().join("large");
    generate(&["big", large.to_str().unwrap(), "1", "24"]);
    for (layout, at, name, of) in [(&small, 150_000, "small", 3), (&large, 3, "large", 1)] {
        push_to(t.path(), &reg, layout, name);
        let (_, layers) = read_layout(layout);
        let digest = &layers[0].1;
        proxy.set_route(
            &format!("/v2/ns/{name}/blobs/{digest}"),
            Reply::Forward {
                cut_after: None,
                corrupt_at: Some(at),
            },
        );
        let run = unpack_cli(
            t.path(),
            &["-q", "--tls-verify=false"],
            &format!("docker://{}/ns/{name}:1", proxy.host()),
            &bundle,
        )
        .code(3);
        assert!(
            run.stderr.contains(&format!("layer 1/{of} {digest}"))
                && run.stderr.contains("does not match its digest"),
            "{name}: {}",
            run.stderr
        );
        assert!(!bundle.exists());
        assert!(names_in(&out).is_empty(), "{:?}", names_in(&out));
    }
}

#[test]
fn runc_runs_an_image_unpacked_from_a_local_registry() {
    let reg = support::registry::Registry::start();
    let t = tempfile::tempdir().unwrap();
    let layout = busybox_layout(t.path());
    let remote = push_to(t.path(), &reg, &layout, "busybox");
    let bundle = t.path().join("bundle");
    unpack_cli(t.path(), &["-q", "--tls-verify=false"], &remote, &bundle).ok();
    assert_eq!(
        runc_run(&bundle, &t.path().join("runc-state")),
        BUSYBOX_SAYS
    );
}

#[test]
fn an_unpack_from_the_store_is_in_its_forensic_record() {
    let t = tempfile::tempdir().unwrap();
    let layout = gen_layout(t.path());
    let store = t.path().join("store");
    let store_s = store.to_str().unwrap();
    let name = "store:example.com/app:1";
    copy_in(t.path(), &layout, name, &["--store", store_s]);
    let bundle = t.path().join("bundle");
    unpack_cli(t.path(), &["-q", "--store", store_s], name, &bundle).ok();
    let rootfs = t.path().join("rootfs");
    unpack_cli(
        t.path(),
        &["-q", "--rootfs-only", "--store", store_s],
        name,
        &rootfs,
    )
    .ok();

    let list = support::ferry(&[
        "signatures",
        "list",
        "--store",
        store_s,
        "--format",
        "json",
        name,
    ])
    .ok();
    let h: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let unpacks = h["unpacks"].as_array().unwrap();
    assert_eq!(unpacks.len(), 2, "{h:#}");
    let canonical = std::fs::canonicalize(&bundle).unwrap();
    assert_eq!(unpacks[0]["bundle"], canonical.to_str().unwrap());
    assert_eq!(unpacks[0]["rootfs_only"], false);
    assert_eq!(unpacks[1]["rootfs_only"], true);
    assert_eq!(unpacks[0]["source"], name);
    assert_eq!(unpacks[0]["mode"], "copy-all");
    assert_eq!(unpacks[0]["verdict"]["accepted"], true);
    assert_eq!(unpacks[0]["manifest_digest"], h["manifest_digest"]);
    assert_eq!(unpacks[0]["layers"].as_array().unwrap().len(), 3);
    assert!(
        unpacks[0]["policy_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    // The copy's own record is still the name's last copy, and nothing else changed.
    assert_eq!(h["records"], 1);
    assert!(h["last_copy"].is_object() && h["other_names"].as_array().unwrap().is_empty());
    let text = support::ferry(&["signatures", "list", "--store", store_s, name]).ok();
    assert!(
        text.stdout.contains("Unpacked into runtime bundles")
            && text.stdout.contains(canonical.to_str().unwrap())
            && text.stdout.contains("(rootfs only)"),
        "{}",
        text.stdout
    );
    // The store stays healthy with the new records in it.
    support::ferry(&["store", "check", "--store", store_s]).ok();
    // An unpack from elsewhere leaves no record anywhere.
    let digest = h["manifest_digest"].as_str().unwrap().replace(':', "-");
    let dir = store.join("records").join(&digest).join("unpacked");
    assert_eq!(names_in(&dir).len(), 2, "{:?}", names_in(&dir));
    unpack_cli(
        t.path(),
        &["-q", "--store", store_s],
        &format!("oci:{}:t", layout.display()),
        &t.path().join("from-oci"),
    )
    .ok();
    assert_eq!(names_in(&dir).len(), 2);
}

/// Progress events as text, in order.
#[derive(Default)]
struct Events(std::sync::Mutex<Vec<String>>);

impl ferry::Progress for Events {
    fn event(&self, e: ferry::ProgressEvent) {
        let line = match e {
            ferry::ProgressEvent::BlobStarted { digest, .. } => format!("start {digest}"),
            ferry::ProgressEvent::BlobDone { digest, .. } => format!("done {digest}"),
            ferry::ProgressEvent::Phase(p) => p,
            _ => return,
        };
        self.0.lock().unwrap().push(line);
    }
}

/// Layers download ahead of the applier, as many as `parallel_layers` allows: with layer 1's
/// answer held back by the registry, layers 2 and 3 arrive first (and are applied after it);
/// with one at a time, nothing of layer 2 moves before layer 1 is done.
#[test]
fn layers_download_ahead_of_the_applier_within_the_window() {
    use support::http::{HttpServer, Reply};
    let reg = support::registry::Registry::start();
    let t = tempfile::tempdir().unwrap();
    let layout = gen_layout(t.path());
    push_to(t.path(), &reg, &layout, "app");
    let (_, layers) = read_layout(&layout);
    let d: Vec<String> = layers.iter().map(|(_, d, _)| d.to_string()).collect();
    let proxy = HttpServer::start(std::sync::Arc::new(|_| Reply::forward()), Some(reg.host()));
    proxy.set_route(
        &format!("/v2/ns/app/blobs/{}", d[0]),
        Reply::Delayed(
            std::time::Duration::from_millis(1500),
            Box::new(Reply::forward()),
        ),
    );
    let session = ferry::Session::new(ferry::SessionConfig::default());
    let src = ferry::ImageReference::parse(&format!("docker://{}/ns/app:1", proxy.host())).unwrap();
    let policy = ferry::Policy::from_bytes(
        br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        "test policy",
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let direct = t.path().join("direct");
    ferry_unpack(&layout, &direct, ApplyOptions::default()).unwrap();
    for parallel in [4, 1] {
        let events = std::sync::Arc::new(Events::default());
        let mut options = ferry::UnpackOptions::new(std::sync::Arc::new(policy.clone()));
        options.gate.source.tls_verify = Some(false);
        options.gate.progress = Some(events.clone());
        options.parallel_layers = parallel;
        let bundle = t.path().join(format!("p{parallel}"));
        let report = rt
            .block_on(ferry::unpack(&session, &src, &bundle, &options))
            .unwrap();
        assert_eq!(report.layers.len(), 3);
        assert!(report.record.is_none());
        assert_same_tree(&bundle.join("rootfs"), &direct.join("rootfs"));
        let ev = events.0.lock().unwrap().clone();
        let pos = |s: &str| {
            ev.iter()
                .position(|e| e == s)
                .unwrap_or_else(|| panic!("no {s:?} in {ev:?}"))
        };
        let applying = |i: usize| pos(&format!("applying layer {i}/3 {}", d[i - 1]));
        assert!(
            applying(1) < applying(2) && applying(2) < applying(3),
            "{ev:?}"
        );
        if parallel > 1 {
            assert!(
                pos(&format!("done {}", d[1])) < pos(&format!("done {}", d[0]))
                    && pos(&format!("done {}", d[2])) < pos(&format!("done {}", d[0])),
                "layers 2 and 3 did not download while layer 1 was held back: {ev:?}"
            );
        } else {
            assert!(
                pos(&format!("done {}", d[0])) < pos(&format!("start {}", d[1]))
                    && applying(2) > pos(&format!("done {}", d[0])),
                "more than one layer at a time: {ev:?}"
            );
        }
    }
}

/// Ctrl-C in the middle of an unpack (layer 1's answer held back by the registry, the bundle's
/// temporary directory made): ferry exits 130 and leaves nothing beside the bundle.
#[test]
fn an_interrupted_unpack_leaves_nothing() {
    use support::http::{HttpServer, Reply};
    let reg = support::registry::Registry::start();
    let t = tempfile::tempdir().unwrap();
    let layout = gen_layout(t.path());
    push_to(t.path(), &reg, &layout, "app");
    let (_, layers) = read_layout(&layout);
    let proxy = HttpServer::start(std::sync::Arc::new(|_| Reply::forward()), Some(reg.host()));
    proxy.set_route(
        &format!("/v2/ns/app/blobs/{}", layers[0].1),
        Reply::Delayed(
            std::time::Duration::from_secs(60),
            Box::new(Reply::forward()),
        ),
    );
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let policy = support::insecure_policy(t.path());
    let mut child = Command::new(support::ferry_bin())
        .args(["unpack", "-q", "--tls-verify=false", "--policy"])
        .arg(&policy)
        .arg(format!("docker://{}/ns/app:1", proxy.host()))
        .arg(out.join("bundle"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while !names_in(&out)
        .iter()
        .any(|n| n.starts_with(".bundle.ferry-unpack-") && !n.ends_with(".lock"))
    {
        assert!(Instant::now() < deadline, "the unpack never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let started = Instant::now();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "ferry waited for the held-back layer"
    );
    assert!(names_in(&out).is_empty(), "{:?}", names_in(&out));
}
