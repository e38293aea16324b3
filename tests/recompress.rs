//! `ferry copy --dest-compress-format` and its kin, end to end: gzip images recompressed to zstd
//! and zstd:chunked that skopeo 1.9.3 decompresses to the config's diff_ids, skopeo's zstd read
//! back by ferry, the zstd:chunked annotations against containers/storage's format, podman
//! pulling ferry's zstd:chunked image from a registry ferry copied it to from another, the
//! signature rules of a conversion, the second copy that recompresses nothing, and bad layers
//! that fail naming themselves with nothing written.

mod support;

use std::io::Write as _;
use std::path::Path;

use ferry::internal::compression;
use serde_json::{Value, json};
use support::{ferry_in, pseudo_random, require_tool, sha256};

/// A tar of a few files: text (compressible) and random bytes, `seed` making it unique.
fn layer_tar(seed: u64, size: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_mtime(1_700_000_000);
    b.append_data(&mut dir, format!("layer{seed}/"), &b""[..])
        .unwrap();
    let text: Vec<u8> = format!("ferry layer {seed}\n")
        .repeat(size / 32)
        .into_bytes();
    let random = pseudo_random(seed, size / 2);
    for (name, data) in [("text.txt", &text), ("random.bin", &random)] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, format!("layer{seed}/{name}"), &data[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An OCI layout with one image of `tars` as gzip layers (or as given by `blobs`, which may
/// differ from the tars to make a bad image), config listing the tars' diff_ids.
fn write_image(layout: &Path, tag: &str, tars: &[Vec<u8>], blobs: &[Vec<u8>], docker: bool) {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": tars.iter().map(|t| sha256(t)).collect::<Vec<_>>()},
    }))
    .unwrap();
    let (mt, config_mt, layer_mt) = if docker {
        (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
    } else {
        (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
    };
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": mt,
        "config": {"mediaType": config_mt, "digest": sha256(&config), "size": config.len()},
        "layers": blobs.iter().map(|b| json!({"mediaType": layer_mt, "digest": sha256(b), "size": b.len()})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let image = support::TestImage {
        digest: sha256(&manifest),
        manifest,
        config,
        layers: blobs.to_vec(),
    };
    support::write_oci_image(layout, tag, &image);
}

struct World {
    t: tempfile::TempDir,
    policy: String,
    tars: Vec<Vec<u8>>,
}

impl World {
    /// An OCI layout `src` holding a gzip image of three layers.
    fn new() -> World {
        let t = tempfile::tempdir().unwrap();
        let policy = support::insecure_policy(t.path()).display().to_string();
        let tars: Vec<Vec<u8>> = (1..=3).map(|i| layer_tar(i, 256 * 1024)).collect();
        let gz: Vec<Vec<u8>> = tars.iter().map(|t| gzip(t)).collect();
        write_image(&t.path().join("src"), "t", &tars, &gz, false);
        World { t, policy, tars }
    }

    fn path(&self, name: &str) -> String {
        self.t.path().join(name).display().to_string()
    }

    fn oci(&self, name: &str) -> String {
        format!("oci:{}:t", self.path(name))
    }

    fn diff_ids(&self) -> Vec<String> {
        self.tars.iter().map(|t| sha256(t)).collect()
    }

    /// ferry with the policy, and its cache of recompressed layers inside this world.
    fn ferry(&self, args: &[&str]) -> support::Run {
        let cache = self.path("cache");
        let tmp = self.path("spool");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut all = vec![args[0], "--policy", &self.policy];
        all.extend_from_slice(&args[1..]);
        ferry_in(&all, &[("XDG_CACHE_HOME", &cache), ("TMPDIR", &tmp)])
    }

    /// `ferry copy -q FLAGS FROM TO`, which must succeed.
    fn copy(&self, flags: &[&str], from: &str, to: &str) {
        let mut args = vec!["copy", "-q"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[from, to]);
        self.ferry(&args).ok();
    }

    fn report(&self, name: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.t.path().join(name)).unwrap()).unwrap()
    }
}

/// The manifest of `reference` in a plain-http registry, as skopeo reads it.
fn registry_manifest(reference: &str) -> Value {
    let raw = support::skopeo(&["inspect", "--raw", "--tls-verify=false", reference]).ok();
    serde_json::from_str(&raw.stdout).unwrap()
}

/// The manifest of `reference` as skopeo reads it.
fn skopeo_manifest(reference: &str) -> Value {
    let raw = support::skopeo(&["inspect", "--raw", reference]).ok();
    serde_json::from_str(&raw.stdout).unwrap()
}

/// skopeo 1.9.3 decompresses every layer of `reference` (`--dest-decompress` into dir:) and the
/// files hash to `diff_ids`.
fn skopeo_decompresses_to(reference: &str, out: &Path, diff_ids: &[String]) {
    support::skopeo(&[
        "copy",
        "--insecure-policy",
        "--dest-decompress",
        reference,
        &format!("dir:{}", out.display()),
    ])
    .ok();
    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let layers: Vec<String> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        layers, diff_ids,
        "skopeo's decompressed layers of {reference}"
    );
    for d in &layers {
        let bytes = std::fs::read(out.join(&d["sha256:".len()..])).unwrap();
        assert_eq!(&sha256(&bytes), d);
    }
}

#[test]
fn gzip_becomes_zstd_and_zstd_chunked_that_skopeo_decompresses_to_the_same_diff_ids() {
    let w = World::new();
    let src_manifest = skopeo_manifest(&w.oci("src"));
    for (format, name) in [
        ("zstd", "zstd"),
        ("zstd:chunked", "chunked"),
        ("gzip", "gzip"),
    ] {
        // gzip asked of a gzip image changes nothing; the others convert every layer.
        w.copy(
            &[
                "--dest-compress-format",
                format,
                "--report",
                &w.path(&format!("{name}.json")),
            ],
            &w.oci("src"),
            &w.oci(name),
        );
        let m = skopeo_manifest(&w.oci(name));
        // The config, and so the diff_ids, are the source's.
        assert_eq!(m["config"], src_manifest["config"], "{format}");
        let report = w.report(&format!("{name}.json"));
        let blobs = report["manifests"][0]["blobs"].as_array().unwrap();
        for (i, l) in m["layers"].as_array().unwrap().iter().enumerate() {
            let source_layer = &src_manifest["layers"][i]["digest"];
            let blob = blobs.iter().find(|b| b["digest"] == l["digest"]).unwrap();
            if format == "gzip" {
                assert_eq!(l, &src_manifest["layers"][i], "gzip stays as it is");
                assert!(blob.get("converted_from").is_none());
                continue;
            }
            assert_eq!(
                l["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
                "{format}"
            );
            // The report names the source layer beside the one it became.
            assert_eq!(&blob["converted_from"], source_layer, "{format}");
            assert_ne!(&l["digest"], source_layer);
            let annotations = l["annotations"].as_object();
            if format == "zstd" {
                assert!(annotations.is_none(), "{l}");
            } else {
                let a = annotations.unwrap();
                assert!(a.contains_key(compression::MANIFEST_CHECKSUM_KEY), "{l}");
            }
        }
        if format == "gzip" {
            let index: Value =
                serde_json::from_slice(&std::fs::read(w.t.path().join("src/index.json")).unwrap())
                    .unwrap();
            assert_eq!(report["manifest_digest"], index["manifests"][0]["digest"]);
        }
        skopeo_decompresses_to(
            &w.oci(name),
            &w.t.path().join(format!("{name}-dir")),
            &w.diff_ids(),
        );
    }
}

/// A zstd:chunked layer's annotations, checked against the blob as containers/storage reads
/// them: the manifest checksum is the compressed TOC's digest, the positions are where the
/// footer says the TOC and tar-split are, and the TOC lists the tar's files.
fn check_chunked_layer(blob: &[u8], annotations: &serde_json::Map<String, Value>, tar: &[u8]) {
    let meta = compression::read_metadata(std::io::Cursor::new(blob))
        .unwrap()
        .expect("a zstd:chunked footer");
    assert_eq!(
        annotations[compression::MANIFEST_CHECKSUM_KEY],
        meta.toc_digest.to_string()
    );
    let [
        toc_offset,
        toc_len,
        toc_uncompressed,
        kind,
        ts_offset,
        ts_len,
        ts_uncompressed,
    ] = meta.footer;
    assert_eq!(
        annotations[compression::MANIFEST_POSITION_KEY],
        format!("{toc_offset}:{toc_len}:{toc_uncompressed}:{kind}")
    );
    assert_eq!(
        annotations[compression::TARSPLIT_POSITION_KEY],
        format!("{ts_offset}:{ts_len}:{ts_uncompressed}")
    );
    assert_eq!(kind, 1, "manifest type 1: the TOC");
    let toc_bytes = &blob[toc_offset as usize..(toc_offset + toc_len) as usize];
    assert_eq!(sha256(toc_bytes), meta.toc_digest.to_string());
    let toc: Value = serde_json::from_slice(&meta.toc).unwrap();
    assert_eq!(toc["version"], 1);
    assert_eq!(toc["tarSplitDigest"], meta.tar_split_digest.to_string());
    let names: Vec<&str> = toc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "reg")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let mut archive = tar::Archive::new(tar);
    let in_tar: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.header().entry_type() == tar::EntryType::Regular)
        .map(|e| e.path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, in_tar);
}

#[test]
fn zstd_chunked_annotations_follow_containers_storage_and_read_back_as_gzip() {
    let w = World::new();
    w.copy(
        &["--dest-compress-format", "zstd:chunked"],
        &w.oci("src"),
        &w.oci("chunked"),
    );
    let m = skopeo_manifest(&w.oci("chunked"));
    for (i, l) in m["layers"].as_array().unwrap().iter().enumerate() {
        let digest = l["digest"].as_str().unwrap();
        let blob = std::fs::read(
            w.t.path()
                .join("chunked/blobs/sha256")
                .join(&digest["sha256:".len()..]),
        )
        .unwrap();
        check_chunked_layer(&blob, l["annotations"].as_object().unwrap(), &w.tars[i]);
    }
    // Every format is read as a source: zstd:chunked back to gzip, and uncompressed.
    w.copy(
        &["--dest-compress-format", "gzip"],
        &w.oci("chunked"),
        &w.oci("back"),
    );
    let back = skopeo_manifest(&w.oci("back"));
    for l in back["layers"].as_array().unwrap() {
        assert_eq!(
            l["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert!(
            l.get("annotations").is_none(),
            "chunked annotations dropped: {l}"
        );
    }
    skopeo_decompresses_to(&w.oci("back"), &w.t.path().join("back-dir"), &w.diff_ids());
    w.copy(
        &["--dest-decompress"],
        &w.oci("chunked"),
        &format!("dir:{}", w.path("plain")),
    );
    let plain: Value =
        serde_json::from_slice(&std::fs::read(w.t.path().join("plain/manifest.json")).unwrap())
            .unwrap();
    for (l, tar) in plain["layers"].as_array().unwrap().iter().zip(&w.tars) {
        assert_eq!(l["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        assert_eq!(l["digest"], sha256(tar));
    }
}

#[test]
fn ferry_reads_skopeos_zstd_and_zstd_chunked_and_force_recompresses() {
    let w = World::new();
    for (format, name) in [("zstd", "sk-zstd"), ("zstd:chunked", "sk-chunked")] {
        support::skopeo(&[
            "copy",
            "--insecure-policy",
            "--dest-compress-format",
            format,
            &w.oci("src"),
            &w.oci(name),
        ])
        .ok();
        w.copy(
            &["--dest-decompress"],
            &w.oci(name),
            &format!("dir:{}", w.path(&format!("{name}-plain"))),
        );
        let plain: Value = serde_json::from_slice(
            &std::fs::read(w.t.path().join(format!("{name}-plain/manifest.json"))).unwrap(),
        )
        .unwrap();
        let digests: Vec<&str> = plain["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap())
            .collect();
        assert_eq!(digests, w.diff_ids(), "{format}");
    }
    // skopeo 1.9.3 writes zstd:chunked with the older io.containers.* keys: it is zstd:chunked
    // already, so asking for zstd:chunked keeps it, and --force-compression makes it anew.
    w.copy(
        &["--dest-compress-format", "zstd:chunked"],
        &w.oci("sk-chunked"),
        &w.oci("kept"),
    );
    assert_eq!(
        skopeo_manifest(&w.oci("kept"))["layers"],
        skopeo_manifest(&w.oci("sk-chunked"))["layers"]
    );
    w.copy(
        &[
            "--dest-compress-format",
            "zstd:chunked",
            "--force-compression",
        ],
        &w.oci("sk-chunked"),
        &w.oci("forced"),
    );
    let forced = skopeo_manifest(&w.oci("forced"));
    for l in forced["layers"].as_array().unwrap() {
        let a = l["annotations"].as_object().unwrap();
        assert!(a.contains_key(compression::MANIFEST_CHECKSUM_KEY), "{l}");
        assert!(
            !a.keys()
                .any(|k| k.starts_with("io.containers.zstd-chunked.")),
            "the old keys go with the old layer: {l}"
        );
    }
    // A new level is a new blob only with --force-compression.
    w.copy(
        &[
            "--dest-compress-format",
            "zstd",
            "--dest-compress-level",
            "19",
        ],
        &w.oci("sk-zstd"),
        &w.oci("same-level"),
    );
    assert_eq!(
        skopeo_manifest(&w.oci("same-level"))["layers"],
        skopeo_manifest(&w.oci("sk-zstd"))["layers"]
    );
    w.copy(
        &[
            "--dest-compress-format",
            "zstd",
            "--dest-compress-level",
            "19",
            "--force-compression",
        ],
        &w.oci("sk-zstd"),
        &w.oci("level19"),
    );
    let a = skopeo_manifest(&w.oci("level19"));
    let b = skopeo_manifest(&w.oci("sk-zstd"));
    assert_ne!(a["layers"][0]["digest"], b["layers"][0]["digest"]);
    skopeo_decompresses_to(&w.oci("level19"), &w.t.path().join("l19"), &w.diff_ids());
}

#[test]
fn a_docker_image_becomes_oci_for_zstd_and_stays_docker_for_gzip() {
    let w = World::new();
    let tars: Vec<Vec<u8>> = vec![layer_tar(7, 64 * 1024)];
    write_image(&w.t.path().join("docker"), "t", &tars, &tars, true);
    // Docker schema 2 has no zstd layers: the image becomes OCI, as skopeo does it.
    w.copy(
        &["--dest-compress-format", "zstd"],
        &w.oci("docker"),
        &w.oci("as-oci"),
    );
    let m = skopeo_manifest(&w.oci("as-oci"));
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    // Asked to stay Docker, it cannot hold zstd: refused before anything is written.
    let refused = w
        .ferry(&[
            "copy",
            "--dest-compress-format",
            "zstd",
            "--format",
            "v2s2",
            &w.oci("docker"),
            &w.oci("refused"),
        ])
        .code(3);
    assert!(
        refused.stderr.contains("no zstd layers"),
        "{}",
        refused.stderr
    );
    assert!(!w.t.path().join("refused").exists());
    // An uncompressed Docker layer compressed with --dest-compress stays in a Docker manifest.
    // (To dir:, as skopeo 1.9.3 finds no Docker manifest in an OCI layout's index.)
    let gz = format!("dir:{}", w.path("gz"));
    w.copy(&["--dest-compress"], &w.oci("docker"), &gz);
    let m = skopeo_manifest(&gz);
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    skopeo_decompresses_to(&gz, &w.t.path().join("gz-dir"), &[sha256(&tars[0])]);
}

#[test]
fn a_second_copy_recompresses_nothing_and_another_destination_gets_the_same_bytes() {
    let w = World::new();
    let copy = |dest: &str, report: &str| {
        w.copy(
            &[
                "--dest-compress-format",
                "zstd:chunked",
                "--report",
                &w.path(report),
            ],
            &w.oci("src"),
            &w.oci(dest),
        );
        w.report(report)
    };
    let first = copy("dst", "first.json");
    let spool = w.t.path().join("spool");
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "the spooled layers are removed"
    );
    let second = copy("dst", "second.json");
    assert_eq!(first["manifest_digest"], second["manifest_digest"]);
    assert_eq!(second["bytes_copied"], 0, "{second:#}");
    for b in second["manifests"][0]["blobs"].as_array().unwrap() {
        assert_eq!(b["action"], "reused", "{b}");
    }
    // The cache knows the conversions; a destination without the blobs gets them recompressed
    // again as they stream, to the same bytes.
    let other = copy("other", "other.json");
    assert_eq!(first["manifest_digest"], other["manifest_digest"]);
    skopeo_decompresses_to(
        &w.oci("other"),
        &w.t.path().join("other-dir"),
        &w.diff_ids(),
    );
    // Without the cache the copy still finds the blobs at the destination after recompressing.
    std::fs::remove_dir_all(w.t.path().join("cache")).unwrap();
    let again = copy("dst", "again.json");
    assert_eq!(first["manifest_digest"], again["manifest_digest"]);
    assert_eq!(again["bytes_copied"], 0);
}

#[test]
fn signatures_a_recompression_would_break_are_refused_and_the_new_manifest_can_be_signed() {
    let w = World::new();
    let prefix = w.t.path().join("key");
    let pass = w.t.path().join("pass");
    std::fs::write(&pass, "pw\n").unwrap();
    ferry_in(
        &[
            "generate-sigstore-key",
            "--output-prefix",
            prefix.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
        &[],
    )
    .ok();
    let private = prefix.with_extension("private").display().to_string();
    let public = prefix.with_extension("pub").display().to_string();
    let sign = [
        "--sign-by-sigstore-private-key",
        private.as_str(),
        "--sign-passphrase-file",
        pass.to_str().unwrap(),
        "--sign-identity",
        "example.com/app:1",
    ];
    let signed = format!("dir:{}", w.path("signed"));
    let mut args = vec!["copy", "-q"];
    args.extend_from_slice(&sign);
    let src = w.oci("src");
    args.extend_from_slice(&[&src, &signed]);
    w.ferry(&args).ok();
    assert!(w.t.path().join("signed/signature-1").exists());

    // copy-all keeps the source's signature, which the new manifest would invalidate: refused
    // before any layer is converted, so a registry gets no blob (the first time: the layers are
    // not in the cache of recompressions yet, which would keep them from being sent early).
    let registry = support::registry::Registry::start();
    let refused = w
        .ferry(&[
            "copy",
            "--dest-tls-verify=false",
            "--dest-compress-format",
            "zstd",
            &signed,
            &format!("docker://{}/refused:1", registry.host()),
        ])
        .code(3);
    assert!(
        refused
            .stderr
            .contains("invalidate the 1 source signature(s)"),
        "{}",
        refused.stderr
    );
    let repositories = registry.storage().join("docker/registry/v2/repositories");
    assert!(
        !repositories.join("refused").exists(),
        "the refused copy wrote to the registry: {:?}",
        std::fs::read_dir(&repositories).map(|d| d.count())
    );
    // The same to a directory: nothing of it is left.
    let refused = w
        .ferry(&[
            "copy",
            "--dest-compress-format",
            "zstd",
            &signed,
            &format!("dir:{}", w.path("refused")),
        ])
        .code(3);
    assert!(
        refused
            .stderr
            .contains("invalidate the 1 source signature(s)")
            && refused.stderr.contains("--signatures remove-signatures"),
        "{}",
        refused.stderr
    );
    assert!(!w.t.path().join("refused").exists());

    // Without the source's signatures, and with a signature of the new manifest.
    let resigned = format!("dir:{}", w.path("resigned"));
    let mut args = vec![
        "copy",
        "-q",
        "--dest-compress-format",
        "zstd",
        "--signatures",
        "remove-signatures",
    ];
    args.extend_from_slice(&sign);
    args.extend_from_slice(&[&signed, &resigned]);
    w.ferry(&args).ok();
    let policy = w.t.path().join("strict.json");
    std::fs::write(
        &policy,
        json!({"default": [{"type": "reject"}], "transports": {"dir": {"": [{
            "type": "sigstoreSigned", "keyPath": public,
            "signedIdentity": {"type": "exactReference", "dockerReference": "example.com/app:1"}}]}}})
        .to_string(),
    )
    .unwrap();
    let strict = policy.display().to_string();
    // The new signature verifies under a policy that requires it, on the new manifest.
    ferry_in(
        &[
            "copy",
            "-q",
            "--policy",
            &strict,
            &resigned,
            &format!("dir:{}", w.path("verified")),
        ],
        &[],
    )
    .ok();
    let m: Value =
        serde_json::from_slice(&std::fs::read(w.t.path().join("resigned/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
}

#[test]
fn a_corrupt_layer_or_a_wrong_diff_id_fails_naming_the_layer_with_nothing_written() {
    let w = World::new();
    // A layer whose bytes are not the tar the config lists.
    let tars = vec![layer_tar(1, 64 * 1024)];
    let other = vec![gzip(&layer_tar(2, 64 * 1024))];
    write_image(&w.t.path().join("wrong"), "t", &tars, &other, false);
    // A gzip stream cut short (its digest is its own: only decompression can tell).
    let mut cut = gzip(&tars[0]);
    cut.truncate(cut.len() / 2);
    write_image(&w.t.path().join("cut"), "t", &tars, &[cut.clone()], false);
    for (name, bad, words) in [("wrong", &other[0], "diff_id"), ("cut", &cut, "gzip")] {
        for dest in [
            w.oci(&format!("{name}-out")),
            format!("dir:{}", w.path(&format!("{name}-dir"))),
        ] {
            let failed = w
                .ferry(&[
                    "copy",
                    "--dest-compress-format",
                    "zstd",
                    &w.oci(name),
                    &dest,
                ])
                .code(3);
            assert!(
                failed.stderr.contains(&sha256(bad)) && failed.stderr.contains(words),
                "{name}: {}",
                failed.stderr
            );
        }
        assert!(!w.t.path().join(format!("{name}-out")).exists());
        assert!(!w.t.path().join(format!("{name}-dir")).exists());
    }
    assert_eq!(
        std::fs::read_dir(w.t.path().join("spool")).unwrap().count(),
        0,
        "no spooled layer left behind"
    );
}

#[test]
fn the_flags_that_cannot_go_together_are_usage_errors() {
    let w = World::new();
    for (args, words) in [
        (
            vec!["--dest-decompress", "--dest-compress-format", "zstd"],
            "ask for one of them",
        ),
        (
            vec!["--dest-compress-level", "5"],
            "need --dest-compress-format",
        ),
        (vec!["--force-compression"], "need --dest-compress-format"),
        (
            vec![
                "--dest-compress-format",
                "gzip",
                "--dest-compress-level",
                "12",
            ],
            "use 0 to 9",
        ),
        (
            vec!["--dest-compress-format", "lz4"],
            "gzip, zstd or zstd:chunked",
        ),
        (
            vec!["--dest-compress-format", "zstd", "--preserve-digests"],
            "new manifest digest",
        ),
    ] {
        let mut all = vec!["copy"];
        all.extend_from_slice(&args);
        let (src, dest) = (w.oci("src"), w.oci("never"));
        all.extend_from_slice(&[&src, &dest]);
        let r = w.ferry(&all).code(2);
        assert!(r.stderr.contains(words), "{args:?}: {}", r.stderr);
    }
    assert!(!w.t.path().join("never").exists());
}

#[test]
fn podman_pulls_the_zstd_chunked_image_ferry_recompressed_from_registry_to_registry() {
    require_tool("podman", "podman");
    let w = World::new();
    let registry = support::registry::Registry::start();
    let source = format!("docker://{}/src/app:1", registry.host());
    let mirror = format!("{}/mirror/app:1", registry.host());
    support::skopeo(&[
        "copy",
        "--insecure-policy",
        "--dest-tls-verify=false",
        &w.oci("src"),
        &source,
    ])
    .ok();
    for _ in 0..2 {
        w.copy(
            &[
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                "--dest-compress-format",
                "zstd:chunked",
                "--report",
                &w.path("push.json"),
            ],
            &source,
            &format!("docker://{mirror}"),
        );
    }
    // The second copy moved no layer.
    assert_eq!(w.report("push.json")["bytes_copied"], 0);
    let m = registry_manifest(&format!("docker://{mirror}"));
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );

    let podman_dir = w.t.path().join("podman");
    let podman_cmd = |args: &[&str]| support::podman(&podman_dir, args);
    podman_cmd(&["pull", "--tls-verify=false", &mirror]).ok();
    let mounted = podman_cmd(&["image", "mount", &mirror]).ok();
    let dir = Path::new(mounted.stdout.trim());
    for i in 1..=3u64 {
        let expected = format!("ferry layer {i}\n").repeat(256 * 1024 / 32);
        assert_eq!(
            std::fs::read_to_string(dir.join(format!("layer{i}/text.txt"))).unwrap(),
            expected
        );
        assert_eq!(
            std::fs::read(dir.join(format!("layer{i}/random.bin"))).unwrap(),
            pseudo_random(i, 128 * 1024)
        );
    }
    let inspect = podman_cmd(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        &mirror,
    ])
    .ok();
    for d in w.diff_ids() {
        assert!(inspect.stdout.contains(&d), "{}", inspect.stdout);
    }
    podman_cmd(&["image", "unmount", &mirror]).ok();
    podman_cmd(&["rmi", "-a", "-f"]).ok();
}

#[test]
fn sync_recompresses_every_image_and_skips_it_once_recompressed() {
    let w = World::new();
    let registry = support::registry::Registry::start();
    support::skopeo(&[
        "copy",
        "--insecure-policy",
        "--dest-tls-verify=false",
        &w.oci("src"),
        &format!("docker://{}/src/app:1", registry.host()),
    ])
    .ok();
    let (from, to) = (
        format!("{}/src/app", registry.host()),
        format!("{}/mirror", registry.host()),
    );
    let sync = |format: &str, report: &str| {
        let report_path = w.path(report);
        w.ferry(&[
            "sync",
            "-q",
            "--src",
            "docker",
            "--dest",
            "docker",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--dest-compress-format",
            format,
            "--report",
            &report_path,
            &from,
            &to,
        ])
        .ok();
        w.report(report)["images"][0]["status"].clone()
    };
    assert_eq!(sync("zstd", "sync1.json"), "copied");
    // Already recompressed: skipped after one manifest read per side.
    assert_eq!(sync("zstd", "sync2.json"), "skipped");
    // Another format is work to do.
    assert_eq!(sync("zstd:chunked", "sync3.json"), "copied");
    let m = registry_manifest(&format!("docker://{}/mirror/app:1", registry.host()));
    for l in m["layers"].as_array().unwrap() {
        assert_eq!(
            l["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        assert!(l["annotations"][compression::MANIFEST_CHECKSUM_KEY].is_string());
    }
}
