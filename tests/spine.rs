//! The spine end to end through the CLI: round trips between the local transports keep every
//! byte, interop with real skopeo both ways, corrupt blobs fail without leaving an image, and
//! bad input gets a clear error and the right exit status.

mod support;

use std::path::Path;

use support::*;

fn copy(policy: &Path, store: &Path, src: &str, dst: &str) -> Run {
    ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        src,
        dst,
    ])
}

#[test]
fn round_trip_oci_dir_store_oci_keeps_every_byte() {
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let store = t.path().join("store");
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 1, 3, 70_000);

    copy(
        &policy,
        &store,
        &format!("oci:{}:v1", src.display()),
        &format!("dir:{}", t.path().join("d").display()),
    )
    .ok();
    assert_eq!(
        std::fs::read(t.path().join("d/manifest.json")).unwrap(),
        image.manifest
    );
    for l in &image.layers {
        let hex = &sha256(l)["sha256:".len()..];
        assert_eq!(&std::fs::read(t.path().join("d").join(hex)).unwrap(), l);
    }
    copy(
        &policy,
        &store,
        &format!("dir:{}", t.path().join("d").display()),
        "store:example.com/rt:v1",
    )
    .ok();
    let out = t.path().join("out");
    copy(
        &policy,
        &store,
        "store:example.com/rt:v1",
        &format!("oci:{}:again", out.display()),
    )
    .ok();
    assert_eq!(oci_manifest(&out, "again"), image.manifest);
    for blob in image.layers.iter().chain([&image.config]) {
        let hex = &sha256(blob)["sha256:".len()..];
        assert_eq!(
            &std::fs::read(out.join("blobs/sha256").join(hex)).unwrap(),
            blob
        );
    }
    // ferry leaves nothing of its own in a layout that belongs to other tools.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| ["oci-layout", "index.json", "blobs"].contains(&n.as_str())),
        "{names:?}"
    );
    // The store is itself an OCI layout other tools can read.
    assert_eq!(oci_manifest(&store, "example.com/rt:v1"), image.manifest);
}

#[test]
fn round_trip_of_a_list_with_all_keeps_the_index_and_every_instance() {
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let store = t.path().join("store");
    let src = t.path().join("src");
    let (index, _digest, images) =
        make_oci_index(&src, "multi", 7, &["amd64", "arm64/v8", "s390x"]);
    let d = t.path().join("d");
    ferry(&[
        "copy",
        "-q",
        "--all",
        "--policy",
        policy.to_str().unwrap(),
        &format!("oci:{}:multi", src.display()),
        &format!("dir:{}", d.display()),
    ])
    .ok();
    assert_eq!(std::fs::read(d.join("manifest.json")).unwrap(), index);
    for img in &images {
        let hex = &img.digest["sha256:".len()..];
        assert_eq!(
            std::fs::read(d.join(format!("{hex}.manifest.json"))).unwrap(),
            img.manifest
        );
    }
    ferry(&[
        "copy",
        "-q",
        "--all",
        "--policy",
        policy.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        &format!("dir:{}", d.display()),
        "store:example.com/multi:1",
    ])
    .ok();
    let out = t.path().join("out");
    ferry(&[
        "copy",
        "-q",
        "--all",
        "--policy",
        policy.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "store:example.com/multi:1",
        &format!("oci:{}:m", out.display()),
    ])
    .ok();
    assert_eq!(oci_manifest(&out, "m"), index);

    // Without --all, the image for the chosen platform becomes the top level.
    let one = t.path().join("one");
    ferry(&[
        "copy",
        "-q",
        "--platform",
        "linux/s390x",
        "--policy",
        policy.to_str().unwrap(),
        &format!("oci:{}:multi", src.display()),
        &format!("dir:{}", one.display()),
    ])
    .ok();
    assert_eq!(
        std::fs::read(one.join("manifest.json")).unwrap(),
        images[2].manifest
    );
    let r = ferry(&[
        "copy",
        "-q",
        "--platform",
        "linux/riscv64",
        "--policy",
        policy.to_str().unwrap(),
        &format!("oci:{}:multi", src.display()),
        &format!("dir:{}", t.path().join("none").display()),
    ])
    .code(3);
    assert!(
        r.stderr.contains("linux/riscv64") && r.stderr.contains("linux/s390x"),
        "{}",
        r.stderr
    );
    assert!(!t.path().join("none").exists());
}

#[test]
fn skopeo_written_images_copy_with_ferry_and_back() {
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let p = policy.to_str().unwrap();
    let store = t.path().join("store");
    let src = t.path().join("src");
    make_oci_image(&src, "v1", 2, 2, 50_000);

    // skopeo writes oci: and dir: (compressing the layers on the way), ferry reads them.
    let sk_oci = t.path().join("sk-oci");
    let sk_dir = t.path().join("sk-dir");
    skopeo(&[
        "copy",
        "--policy",
        p,
        &format!("oci:{}:v1", src.display()),
        &format!("oci:{}:v1", sk_oci.display()),
    ])
    .ok();
    skopeo(&[
        "copy",
        "--policy",
        p,
        &format!("oci:{}:v1", src.display()),
        &format!("dir:{}", sk_dir.display()),
    ])
    .ok();
    copy(
        &policy,
        &store,
        &format!("oci:{}:v1", sk_oci.display()),
        "store:example.com/a:1",
    )
    .ok();
    copy(
        &policy,
        &store,
        &format!("dir:{}", sk_dir.display()),
        "store:example.com/b:1",
    )
    .ok();

    // ferry writes oci: and dir:, skopeo reads them back.
    let f_oci = t.path().join("f-oci");
    let f_dir = t.path().join("f-dir");
    copy(
        &policy,
        &store,
        "store:example.com/a:1",
        &format!("oci:{}:v1", f_oci.display()),
    )
    .ok();
    copy(
        &policy,
        &store,
        "store:example.com/b:1",
        &format!("dir:{}", f_dir.display()),
    )
    .ok();
    // What ferry wrote is byte for byte what skopeo gave it.
    let sk_oci_manifest = oci_manifest(&sk_oci, "v1");
    let sk_dir_manifest = std::fs::read(sk_dir.join("manifest.json")).unwrap();
    assert_eq!(oci_manifest(&f_oci, "v1"), sk_oci_manifest);
    assert_eq!(
        std::fs::read(f_dir.join("manifest.json")).unwrap(),
        sk_dir_manifest
    );
    let back = t.path().join("back");
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--policy",
        p,
        &format!("oci:{}:v1", f_oci.display()),
        &format!("oci:{}:x", back.display()),
    ])
    .ok();
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--policy",
        p,
        &format!("dir:{}", f_dir.display()),
        &format!("oci:{}:y", back.display()),
    ])
    .ok();
    assert_eq!(oci_manifest(&back, "x"), sk_oci_manifest);
    assert_eq!(oci_manifest(&back, "y"), sk_dir_manifest);

    // skopeo inspect and ferry inspect agree.
    for (r, manifest) in [
        (format!("oci:{}:v1", f_oci.display()), &sk_oci_manifest),
        (format!("dir:{}", f_dir.display()), &sk_dir_manifest),
    ] {
        let theirs: serde_json::Value =
            serde_json::from_str(&skopeo(&["inspect", &r]).ok().stdout).unwrap();
        let ours: serde_json::Value =
            serde_json::from_str(&ferry(&["inspect", &r]).ok().stdout).unwrap();
        for key in ["Digest", "Architecture", "Os", "Layers", "Env"] {
            assert_eq!(ours[key], theirs[key], "{key} differs for {r}");
        }
        assert_eq!(ours["Digest"], sha256(manifest).as_str());
        let raw = ferry(&["inspect", "--raw", &r]).ok().stdout;
        assert_eq!(raw.as_bytes(), manifest.as_slice());
    }
}

fn corrupt_first_layer(layout: &Path, image: &TestImage) -> String {
    let d = sha256(&image.layers[0]);
    let p = layout.join("blobs/sha256").join(&d["sha256:".len()..]);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    d
}

#[test]
fn a_corrupt_blob_fails_the_copy_and_leaves_no_image_at_any_destination() {
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let store = t.path().join("store");
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 3, 2, 40_000);
    // A good image first, so the store and the OCI destination exist and have an index.
    let good = t.path().join("good");
    make_oci_image(&good, "ok", 4, 1, 1000);
    let dst_oci = t.path().join("dst-oci");
    copy(
        &policy,
        &store,
        &format!("oci:{}:ok", good.display()),
        &format!("oci:{}:ok", dst_oci.display()),
    )
    .ok();
    copy(
        &policy,
        &store,
        &format!("oci:{}:ok", good.display()),
        "store:example.com/ok:1",
    )
    .ok();
    let oci_index_before = std::fs::read(dst_oci.join("index.json")).unwrap();
    let store_index_before = std::fs::read(store.join("index.json")).unwrap();

    let bad = corrupt_first_layer(&src, &image);
    let src_ref = format!("oci:{}:v1", src.display());
    let dst_dir = t.path().join("dst-dir");
    for dst in [
        format!("dir:{}", dst_dir.display()),
        format!("oci:{}:bad", dst_oci.display()),
        "store:example.com/bad:1".to_string(),
    ] {
        let r = copy(&policy, &store, &src_ref, &dst).code(3);
        assert!(
            r.stderr.contains(&bad),
            "the error names the blob {bad}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("does not match"), "{}", r.stderr);
    }
    assert!(
        !dst_dir.exists(),
        "dir: destination must not exist after a failed copy"
    );
    assert_eq!(
        std::fs::read(dst_oci.join("index.json")).unwrap(),
        oci_index_before
    );
    assert_eq!(
        std::fs::read(store.join("index.json")).unwrap(),
        store_index_before
    );
    let bad_hex = &bad["sha256:".len()..];
    assert!(!dst_oci.join("blobs/sha256").join(bad_hex).exists());
    assert!(!store.join("blobs/sha256").join(bad_hex).exists());
    ferry(&[
        "inspect",
        "--store",
        store.to_str().unwrap(),
        "store:example.com/bad:1",
    ])
    .code(3);

    // The same from a dir: source and a store: source.
    let src_dir = t.path().join("src-dir");
    let image2 = make_oci_image(&t.path().join("src2"), "v1", 5, 1, 30_000);
    copy(
        &policy,
        &store,
        &format!("oci:{}:v1", t.path().join("src2").display()),
        &format!("dir:{}", src_dir.display()),
    )
    .ok();
    let hex = &sha256(&image2.layers[0])["sha256:".len()..];
    std::fs::write(src_dir.join(hex), b"not the layer").unwrap();
    let r = copy(
        &policy,
        &store,
        &format!("dir:{}", src_dir.display()),
        &format!("dir:{}", t.path().join("x").display()),
    )
    .code(3);
    assert!(r.stderr.contains(hex), "{}", r.stderr);
    assert!(!t.path().join("x").exists());
}

#[test]
fn bad_input_gets_a_clear_error_and_the_right_exit_status() {
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let store = t.path().join("store");
    let p = policy.to_str().unwrap();

    let r = ferry(&["copy", "--policy", p, "ftp://x/y", "dir:/tmp/x"]).code(2);
    assert!(r.stderr.contains("unknown transport"), "{}", r.stderr);
    let r = ferry(&["copy", "--policy", p, "docker://Bad/Name", "dir:/tmp/x"]).code(2);
    assert!(r.stderr.contains("lowercase"), "{}", r.stderr);
    let r = ferry(&["copy", "--policy", p, "docker://a//b", "dir:/tmp/x"]).code(2);
    assert!(
        r.stderr.contains("invalid reference format"),
        "{}",
        r.stderr
    );
    ferry(&["copy"]).code(2);
    ferry(&["copy", "--signatures", "some", "dir:/a", "dir:/b"]).code(2);

    let missing = t.path().join("missing");
    let r = copy(
        &policy,
        &store,
        &format!("dir:{}", missing.display()),
        &format!("dir:{}", t.path().join("o").display()),
    )
    .code(3);
    assert!(r.stderr.contains(missing.to_str().unwrap()), "{}", r.stderr);
    let r = copy(
        &policy,
        &store,
        &format!("oci:{}:v1", missing.display()),
        &format!("dir:{}", t.path().join("o").display()),
    )
    .code(3);
    assert!(r.stderr.contains(missing.to_str().unwrap()), "{}", r.stderr);

    let notjson = t.path().join("notjson");
    std::fs::create_dir_all(&notjson).unwrap();
    std::fs::write(
        notjson.join("version"),
        "Directory Transport Version: 1.1\n",
    )
    .unwrap();
    std::fs::write(notjson.join("manifest.json"), "<html>oops</html>").unwrap();
    let r = copy(
        &policy,
        &store,
        &format!("dir:{}", notjson.display()),
        &format!("dir:{}", t.path().join("o").display()),
    )
    .code(3);
    assert!(r.stderr.contains("not valid JSON"), "{}", r.stderr);

    let src = t.path().join("src");
    make_oci_image(&src, "v1", 6, 1, 100);
    let r = copy(
        &policy,
        &store,
        &format!("oci:{}:nosuchtag", src.display()),
        &format!("dir:{}", t.path().join("o").display()),
    )
    .code(3);
    assert!(r.stderr.contains("nosuchtag"), "{}", r.stderr);
    assert!(!t.path().join("o").exists());

    let bad_policy = t.path().join("bad-policy.json");
    std::fs::write(&bad_policy, r#"{"default": []}"#).unwrap();
    let r = ferry(&[
        "copy",
        "--policy",
        bad_policy.to_str().unwrap(),
        &format!("oci:{}:v1", src.display()),
        &format!("dir:{}", t.path().join("o").display()),
    ])
    .code(3);
    assert!(r.stderr.contains("bad-policy.json"), "{}", r.stderr);
    assert!(!t.path().join("o").exists());

    // Without --policy, ~/.config/containers/policy.json is used before /etc/containers.
    let home = t.path().join("home");
    std::fs::create_dir_all(home.join(".config/containers")).unwrap();
    std::fs::write(
        home.join(".config/containers/policy.json"),
        r#"{"default":[{"type":"reject"}]}"#,
    )
    .unwrap();
    let r = ferry_in(
        &[
            "copy",
            &format!("oci:{}:v1", src.display()),
            &format!("dir:{}", t.path().join("o").display()),
        ],
        &[
            ("HOME", home.to_str().unwrap()),
            ("XDG_CONFIG_HOME", home.join(".config").to_str().unwrap()),
        ],
    )
    .code(1);
    assert!(r.stderr.contains("reject"), "{}", r.stderr);
    assert!(!t.path().join("o").exists());
}

#[test]
fn progress_bars_on_a_terminal_plain_lines_in_a_pipe_and_reuse_of_present_blobs() {
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let store = t.path().join("store");
    let src = t.path().join("src");
    make_oci_image(&src, "v1", 31, 2, 200_000);
    let src_ref = format!("oci:{}:v1", src.display());

    // stderr is a pipe here (as in CI): one plain line per step, as skopeo prints, so logs
    // keep a trace of what was copied; stdout stays for results.
    let r = ferry(&[
        "copy",
        "--policy",
        policy.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        &src_ref,
        "store:example.com/p:1",
    ])
    .ok();
    for want in [
        "Getting image source signatures",
        "Copying blob sha256:",
        "Writing manifest to image destination",
        "Copied oci:",
    ] {
        assert!(r.stderr.contains(want), "{want:?} in {:?}", r.stderr);
    }
    assert!(
        !r.stderr.contains('\u{1b}'),
        "no terminal escapes in a pipe: {:?}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "stdout is for results: {:?}", r.stdout);
    // -v keeps the lines (and adds log lines), still without escapes.
    let r = ferry(&[
        "copy",
        "-v",
        "--policy",
        policy.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        &src_ref,
        "store:example.com/p:v",
    ])
    .ok();
    assert!(
        r.stderr.contains("Writing manifest to image destination")
            && r.stderr.contains("Copied oci:"),
        "{:?}",
        r.stderr
    );
    assert!(!r.stderr.contains('\u{1b}'), "{:?}", r.stderr);
    // -q: nothing at all.
    let r = ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        &src_ref,
        "store:example.com/p:0",
    ])
    .ok();
    assert!(r.stderr.is_empty(), "quiet: {:?}", r.stderr);

    // On a terminal (a pty from script(1)): progress, and blobs already present are skipped.
    let script = require_tool("script", "bsdutils");
    let cmd = format!(
        "{} copy --policy {} --store {} {} store:example.com/p:2",
        ferry_bin().display(),
        policy.display(),
        store.display(),
        src_ref
    );
    let r = run(std::process::Command::new(script).args(["-qec", &cmd, "/dev/null"])).ok();
    assert!(r.stdout.contains("Skipping blob"), "{}", r.stdout);
    assert!(r.stdout.contains("Copied"), "{}", r.stdout);
    let r = run(
        std::process::Command::new(require_tool("script", "bsdutils")).args([
            "-qec",
            &format!("{cmd} -q"),
            "/dev/null",
        ]),
    )
    .ok();
    assert!(
        !r.stdout.contains("Copying") && !r.stdout.contains("Copied"),
        "-q is silent: {}",
        r.stdout
    );

    // A new destination gets bars for the blobs it copies.
    let out = t.path().join("o");
    let cmd = format!(
        "{} copy --policy {} {} oci:{}:x",
        ferry_bin().display(),
        policy.display(),
        src_ref,
        out.display()
    );
    let r = run(
        std::process::Command::new(require_tool("script", "bsdutils")).args([
            "-qec",
            &cmd,
            "/dev/null",
        ]),
    )
    .ok();
    assert!(r.stdout.contains("Copying blob"), "{}", r.stdout);

    // --parallel-blobs is bounded and explained.
    ferry(&["copy", "--parallel-blobs", "0", &src_ref, "dir:/tmp/never"]).code(2);
    let help = ferry(&["copy", "--help"]).ok().stdout;
    for flag in [
        "--signatures",
        "--parallel-blobs",
        "--report",
        "--sign-by",
        "--all",
        "--platform",
        "--src-tls-verify",
        "--registries.d",
        "--store",
        "sufficient-subset",
    ] {
        assert!(help.contains(flag), "--help explains {flag}");
    }
}
