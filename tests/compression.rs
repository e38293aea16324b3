//! Layer compression against real peers: round trips of gzip, zstd and zstd:chunked on varied
//! generated tars (read back by ferry, by the `zstd` and `gzip` tools, and by skopeo 1.9.3), the
//! zstd:chunked TOC, tar-split and annotations checked against the format and against an
//! independent tar reader (the `tar` crate), tar-split reassembly of the exact tar from
//! extracted files, and podman 4.3.1 pulling a zstd:chunked layer from a real registry.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use ferry::Digest;
use ferry::internal::compression::{
    self, Compression, CompressionError, DirectoryFiles, LayerReport, OutputFormat, OutputSpec,
    Transform,
}; // REFACE?
use serde_json::{Value, json};
use support::{pseudo_random, require_tool, run, sha256};

/// Text-like bytes (compressible, not trivially): words from a small vocabulary.
fn texty(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "layer ",
        "image ",
        "ferry ",
        "copy\n",
        "zstd ",
        "gzip ",
        "chunk ",
        "tar ",
        "the ",
        "of ",
        "registry ",
        "digest ",
        "sha256:",
        "manifest ",
        "blob ",
        "policy\n",
    ];
    let r = pseudo_random(seed, len);
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(WORDS[usize::from(r[i % r.len()] & 15)].as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(1000);
    h.set_gid(100);
    h.set_mtime(1_700_000_000);
    h
}

/// A tar with every kind of entry a layer has: directories, many small files, empty files, a
/// large file cut into several chunks with a hole of zeros, symlinks, a hardlink, xattrs and a
/// sub-second mtime (PAX), GNU and PAX long names, a FIFO; `big` scales the large file.
fn corpus_tar(big: usize, small_files: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for d in ["etc/", "usr/", "usr/lib/", "many/", "deep/"] {
        let mut h = header(tar::EntryType::Directory, 0, 0o755);
        b.append_data(&mut h, d, &b""[..]).unwrap();
    }
    let conf = texty(1, 3000);
    let mut h = header(tar::EntryType::Regular, conf.len() as u64, 0o644);
    b.append_data(&mut h, "etc/app.conf", &conf[..]).unwrap();
    for i in 0..small_files {
        let data = texty(100 + i as u64, (i * 37) % 2500);
        let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o600);
        b.append_data(&mut h, format!("many/f{i:05}.txt"), &data[..])
            .unwrap();
    }
    let mut h = header(tar::EntryType::Regular, 0, 0o644);
    b.append_data(&mut h, "etc/empty", &b""[..]).unwrap();

    // Random, then a 64 KiB hole, then text: several data chunks and one zeros chunk.
    let mut large = pseudo_random(7, big);
    large.extend(std::iter::repeat_n(0u8, 64 * 1024));
    large.extend(texty(8, big / 2));
    let mut h = header(tar::EntryType::Regular, large.len() as u64, 0o755);
    b.append_data(&mut h, "usr/lib/large.bin", &large[..])
        .unwrap();

    // xattrs and a sub-second mtime, in a PAX header.
    b.append_pax_extensions([
        ("SCHILY.xattr.user.comment", &b"made by ferry's tests"[..]),
        ("SCHILY.xattr.user.bin", &[0u8, 1, 2, 255][..]),
        ("mtime", b"1700000000.123456789"),
    ])
    .unwrap();
    let mut h = header(tar::EntryType::Regular, 5, 0o644);
    b.append_data(&mut h, "etc/with-xattrs", &b"xattr"[..])
        .unwrap();

    let mut h = header(tar::EntryType::Symlink, 0, 0o777);
    b.append_link(&mut h, "etc/large-link", "../usr/lib/large.bin")
        .unwrap();
    let mut h = header(tar::EntryType::Link, 0, 0o755);
    b.append_link(&mut h, "usr/lib/large-hardlink", "usr/lib/large.bin")
        .unwrap();

    // A GNU long name (the crate writes an 'L' entry) and a PAX path.
    let long = format!("deep/{}/file.txt", "segment".repeat(20));
    let mut h = header(tar::EntryType::Regular, 4, 0o644);
    b.append_data(&mut h, &long, &b"long"[..]).unwrap();
    let pax_name = format!("deep/{}-pax.txt", "p".repeat(150));
    b.append_pax_extensions([("path", pax_name.as_bytes())])
        .unwrap();
    let mut h = header(tar::EntryType::Regular, 3, 0o644);
    b.append_data(&mut h, "deep/short-pax", &b"pax"[..])
        .unwrap();

    let mut h = header(tar::EntryType::Fifo, 0, 0o644);
    b.append_data(&mut h, "etc/fifo", &b""[..]).unwrap();
    b.into_inner().unwrap()
}

/// What an independent tar reader (the `tar` crate) sees in each entry.
#[derive(Debug)]
struct Seen {
    name: String,
    kind: tar::EntryType,
    size: u64,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Option<String>,
    xattrs: BTreeMap<String, Vec<u8>>,
    content: Vec<u8>,
}

fn read_tar(tar: &[u8]) -> Vec<Seen> {
    let mut a = tar::Archive::new(tar);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut xattrs = BTreeMap::new();
        if let Some(pax) = e.pax_extensions().unwrap() {
            for ext in pax {
                let ext = ext.unwrap();
                if let Some(k) = ext.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(k.to_string(), ext.value_bytes().to_vec());
                }
            }
        }
        let h = e.header().clone();
        let name = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8(l.to_vec()).unwrap());
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        out.push(Seen {
            name,
            kind: h.entry_type(),
            size: h.size().unwrap(),
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            mtime: h.mtime().unwrap(),
            link,
            xattrs,
            content,
        });
    }
    out
}

fn run_transform(input: &[u8], t: &Transform) -> (Vec<u8>, LayerReport) {
    let mut out = Vec::new();
    let report = compression::transform(input, &mut out, t).unwrap();
    (out, report)
}

fn spec(format: OutputFormat) -> OutputSpec {
    OutputSpec::new(format)
}

fn decompress_with_ferry(blob: &[u8]) -> Vec<u8> {
    let (_, mut r) = compression::open_layer(blob, None).unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    out
}

/// Decompresses `blob` with a command-line tool reading stdin.
fn decompress_with_tool(tool: &str, package: &str, blob: &[u8]) -> Vec<u8> {
    let bin = require_tool(tool, package);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("blob");
    std::fs::write(&input, blob).unwrap();
    let out = Command::new(bin).arg("-dc").arg(&input).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} -dc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn gzip_zstd_and_zstd_chunked_round_trip_through_ferry_and_the_cli_tools() {
    let tar = corpus_tar(3 << 20, 300);
    let diff_id = Digest::sha256_of(&tar);
    for (format, tool, package) in [
        (OutputFormat::Gzip, "gzip", "gzip"),
        (OutputFormat::Zstd, "zstd", "zstd"),
        (OutputFormat::ZstdChunked, "zstd", "zstd"),
    ] {
        let t = Transform::new("sha256:test", spec(format)).expect_diff_id(diff_id.clone());
        let (blob, report) = run_transform(&tar, &t);
        assert_eq!(report.diff_id, diff_id, "{format}");
        assert_eq!(report.uncompressed_size, tar.len() as u64);
        assert_eq!(report.digest, Digest::sha256_of(&blob), "{format}");
        assert_eq!(report.size, blob.len() as u64);
        assert_eq!(report.input_compression, Compression::Uncompressed);
        assert!(blob.len() < tar.len(), "{format} did not compress");
        assert_eq!(decompress_with_ferry(&blob), tar, "{format} via ferry");
        assert_eq!(
            decompress_with_tool(tool, package, &blob),
            tar,
            "{format} via {tool}"
        );
        assert_eq!(
            report.annotations.is_empty(),
            format != OutputFormat::ZstdChunked
        );

        // And back from that format to another: the input is detected by its magic.
        for to in [
            OutputFormat::Gzip,
            OutputFormat::ZstdChunked,
            OutputFormat::Uncompressed,
        ] {
            let t = Transform::new("sha256:test", spec(to).with_threads(2))
                .expect_diff_id(diff_id.clone());
            let (again, r2) = run_transform(&blob, &t);
            assert_eq!(r2.input_compression, format.compression());
            assert_eq!(decompress_with_ferry(&again), tar, "{format} -> {to}");
        }
    }
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_fails_naming_it() {
    let tar = corpus_tar(1 << 16, 5);
    let mut gz = compression::LayerCompressor::new(Vec::new(), &spec(OutputFormat::Gzip)).unwrap();
    gz.write_all(&tar).unwrap();
    let (blob, _) = gz.finish().unwrap();
    let wrong = Digest::sha256_of(b"another layer");
    let t =
        Transform::new("sha256:1234abcd", spec(OutputFormat::Zstd)).expect_diff_id(wrong.clone());
    let err = compression::transform(&blob[..], Vec::new(), &t).unwrap_err();
    assert!(
        matches!(&err, CompressionError::DiffIdMismatch { layer, expected, actual }
            if layer == "sha256:1234abcd" && *expected == wrong && *actual == Digest::sha256_of(&tar)),
        "{err}"
    );
    assert!(err.to_string().contains("sha256:1234abcd"));

    // A corrupt gzip stream is a read error naming the layer, not a short layer.
    let mut bad = blob.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    bad[mid + 1] ^= 0xff;
    let t = Transform::new("sha256:cafe", spec(OutputFormat::Zstd));
    let err = compression::transform(&bad[..], Vec::new(), &t).unwrap_err();
    assert!(
        matches!(&err, CompressionError::Read { layer, compression: Compression::Gzip, .. } if layer == "sha256:cafe"),
        "{err}"
    );
}

#[test]
fn zstd_chunked_refuses_a_tar_it_cannot_describe() {
    let tar = corpus_tar(1 << 16, 2);
    let t = Transform::new("sha256:trunc", spec(OutputFormat::ZstdChunked));
    let err = compression::transform(&tar[..tar.len() - 3000], Vec::new(), &t).unwrap_err();
    assert!(matches!(err, CompressionError::Tar { .. }), "{err}");
    assert!(err.to_string().contains("ends in the middle"), "{err}");

    // Two entries for one path: containers/storage's tar-split refuses them too.
    let mut b = tar::Builder::new(Vec::new());
    for _ in 0..2 {
        let mut h = header(tar::EntryType::Regular, 1, 0o644);
        b.append_data(&mut h, "same", &b"x"[..]).unwrap();
    }
    let dup = b.into_inner().unwrap();
    let err = compression::transform(&dup[..], Vec::new(), &t).unwrap_err();
    assert!(err.to_string().contains("\"same\""), "{err}");
    // Plain zstd does not read the tar at all.
    compression::transform(
        &dup[..],
        Vec::new(),
        &Transform::new("l", spec(OutputFormat::Zstd)),
    )
    .unwrap();
}

fn chunk_end(entries: &[Value], i: usize, file_end: u64) -> u64 {
    match entries.get(i + 1) {
        Some(next) if next["type"] == "chunk" => next["offset"].as_u64().unwrap(),
        _ => file_end,
    }
}

fn zstd_frame_range(blob: &[u8], from: u64, to: u64) -> Vec<u8> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(&blob[from as usize..to as usize])
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Checks a zstd:chunked blob against the format (containers/storage's
/// `pkg/chunked/internal/minimal`) and against the tar it was made from.
fn check_chunked(blob: &[u8], tar: &[u8], annotations: &BTreeMap<String, String>) {
    let meta = compression::read_metadata(std::io::Cursor::new(blob))
        .unwrap()
        .expect("a zstd:chunked footer");
    let [toc_off, toc_len, toc_ulen, kind, ts_off, ts_len, ts_ulen] = meta.footer;
    assert_eq!(kind, 1, "manifest type CRFS");
    assert_eq!(&blob[blob.len() - 8..], b"GNUlInUx");
    // Footer: a skippable frame of 64 bytes, last in the blob.
    assert_eq!(
        &blob[blob.len() - 72..blob.len() - 64],
        &[0x50, 0x2a, 0x4d, 0x18, 64, 0, 0, 0]
    );
    // TOC and tar-split each in a skippable frame right before their data.
    for (off, len) in [(toc_off, toc_len), (ts_off, ts_len)] {
        let h = &blob[off as usize - 8..off as usize];
        assert_eq!(&h[..4], &[0x50, 0x2a, 0x4d, 0x18]);
        assert_eq!(u32::from_le_bytes(h[4..8].try_into().unwrap()) as u64, len);
    }
    assert_eq!(ts_off, toc_off + toc_len + 8);
    assert_eq!(blob.len() as u64, ts_off + ts_len + 72);

    assert_eq!(
        annotations[compression::MANIFEST_CHECKSUM_KEY],
        meta.toc_digest.to_string()
    );
    assert_eq!(
        annotations[compression::MANIFEST_POSITION_KEY],
        format!("{toc_off}:{toc_len}:{toc_ulen}:1")
    );
    assert_eq!(
        annotations[compression::TARSPLIT_POSITION_KEY],
        format!("{ts_off}:{ts_len}:{ts_ulen}")
    );
    assert_eq!(annotations.len(), 3);

    let toc: Value = serde_json::from_slice(&meta.toc).unwrap();
    assert_eq!(toc["version"], 1);
    assert_eq!(toc["tarSplitDigest"], meta.tar_split_digest.to_string());
    let entries = toc["entries"].as_array().unwrap();

    // Every tar entry, in order, as an independent reader sees it.
    let seen = read_tar(tar);
    let mains: Vec<(usize, &Value)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e["type"] != "chunk")
        .collect();
    assert_eq!(mains.len(), seen.len());
    let mut chunked_files = 0;
    let mut zeros_chunks = 0;
    for ((i, e), s) in mains.into_iter().zip(&seen) {
        assert_eq!(e["name"], s.name.as_str());
        let kind = match s.kind {
            tar::EntryType::Regular => "reg",
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Link => "hardlink",
            tar::EntryType::Fifo => "fifo",
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(e["type"], kind, "{}", s.name);
        assert_eq!(e["size"].as_u64().unwrap_or(0), s.size, "{}", s.name);
        assert_eq!(
            e["mode"].as_u64().unwrap_or(0),
            u64::from(s.mode),
            "{}",
            s.name
        );
        assert_eq!(e["uid"].as_u64().unwrap_or(0), s.uid);
        assert_eq!(e["gid"].as_u64().unwrap_or(0), s.gid);
        let mtime = chrono::DateTime::parse_from_rfc3339(e["modtime"].as_str().unwrap()).unwrap();
        assert_eq!(mtime.timestamp() as u64, s.mtime, "{}", s.name);
        assert_eq!(e["linkName"].as_str(), s.link.as_deref(), "{}", s.name);
        let xattrs: BTreeMap<String, Vec<u8>> = e["xattrs"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        use base64::Engine as _;
                        let raw = base64::engine::general_purpose::STANDARD
                            .decode(v.as_str().unwrap())
                            .unwrap();
                        (k.clone(), raw)
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(xattrs, s.xattrs, "{}", s.name);
        if s.name == "etc/with-xattrs" {
            assert_eq!(e["modtime"], "2023-11-14T22:13:20.123456789Z");
        }

        if kind != "reg" || s.size == 0 {
            assert!(
                e.get("digest").is_none() && e.get("offset").is_none(),
                "{e}"
            );
            continue;
        }
        assert_eq!(e["digest"], sha256(&s.content), "{}", s.name);
        let (start, end) = (
            e["offset"].as_u64().unwrap(),
            e["endOffset"].as_u64().unwrap(),
        );
        // The contents are whole zstd frames of their own.
        assert_eq!(zstd_frame_range(blob, start, end), s.content, "{}", s.name);
        if e.get("chunkSize").is_some() {
            chunked_files += 1;
            let mut k = i;
            let mut rebuilt = Vec::new();
            loop {
                let c = &entries[k];
                let data = zstd_frame_range(
                    blob,
                    c["offset"].as_u64().unwrap(),
                    chunk_end(entries, k, end),
                );
                assert_eq!(data.len() as u64, c["chunkSize"].as_u64().unwrap());
                assert_eq!(c["chunkOffset"].as_u64().unwrap_or(0), rebuilt.len() as u64);
                assert_eq!(c["chunkDigest"], sha256(&data));
                if c["chunkType"] == "zeros" {
                    zeros_chunks += 1;
                    assert!(data.len() >= 1024 && data.iter().all(|&b| b == 0));
                }
                if k > i {
                    assert_eq!(c["name"], s.name.as_str());
                }
                rebuilt.extend(data);
                if entries.get(k + 1).is_none_or(|n| n["type"] != "chunk") {
                    break;
                }
                k += 1;
            }
            assert_eq!(rebuilt, s.content);
        }
    }
    assert!(chunked_files >= 1, "the large file is cut in chunks");
    assert!(zeros_chunks >= 1, "the hole is a zeros chunk");

    // containers/storage's ensureTOCMatchesTarSplit: each tar-split segment, after the previous
    // file's padding, starts with one entry's headers; those entries, read by another tar
    // reader, must be the TOC's, in order.
    let toc_names: Vec<&str> = entries
        .iter()
        .filter(|e| e["type"] != "chunk")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let mut from_segments = Vec::new();
    let mut pending_padding = 0usize;
    for line in meta
        .tar_split
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
    {
        let v: Value = serde_json::from_slice(line).unwrap();
        if v["type"] != 2 {
            continue;
        }
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::STANDARD
            .decode(v["payload"].as_str().unwrap())
            .unwrap();
        assert!(
            payload.len() >= pending_padding,
            "segment shorter than the padding owed"
        );
        let rest = &payload[pending_padding..];
        pending_padding = 0;
        let mut archive = tar::Archive::new(rest);
        let Some(first) = archive.entries().unwrap().next() else {
            continue;
        };
        let first = first.unwrap();
        let kind = first.header().entry_type();
        let size = first.header().size().unwrap() as usize;
        if kind.is_file() {
            pending_padding = (512 - size % 512) % 512;
        }
        from_segments.push(String::from_utf8(first.path_bytes().to_vec()).unwrap());
    }
    assert_eq!(from_segments, toc_names);

    // The embedded tar-split rebuilds the exact tar from the extracted files.
    let dir = extract(tar);
    let mut files = DirectoryFiles::open(dir.path()).unwrap();
    let mut rebuilt = Vec::new();
    compression::assemble(&meta.tar_split[..], &mut files, &mut rebuilt).unwrap();
    assert_eq!(rebuilt, tar);
}

/// Extracts a tar with GNU tar (as root: owners, devices and FIFOs come out as in the tar).
fn extract(tar: &[u8]) -> tempfile::TempDir {
    let bin = require_tool("tar", "tar");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("..").join(format!(
        "{}.tar",
        dir.path().file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&file, tar).unwrap();
    run(Command::new(bin)
        .arg("-xf")
        .arg(&file)
        .arg("-C")
        .arg(dir.path()))
    .ok();
    std::fs::remove_file(&file).unwrap();
    dir
}

#[test]
fn zstd_chunked_toc_tar_split_and_annotations_follow_the_format() {
    let tar = corpus_tar(3 << 20, 200);
    for threads in [0, 2] {
        let t = Transform::new("l", spec(OutputFormat::ZstdChunked).with_threads(threads));
        let (blob, report) = run_transform(&tar, &t);
        check_chunked(&blob, &tar, &report.annotations);
    }
    // Many tiny files, each in its own frame, and the ChunkedWriter used directly.
    let many = corpus_tar(10, 3000);
    let mut w = compression::ChunkedWriter::new(Vec::new(), 3).unwrap();
    for part in many.chunks(1000) {
        w.write_all(part).unwrap();
    }
    let (blob, summary) = w.finish().unwrap();
    assert_eq!(summary.tar_size, many.len() as u64);
    assert_eq!(summary.compressed_size, blob.len() as u64);
    check_chunked(&blob, &many, &summary.annotations);
}

/// A tree on disk, archived by GNU tar (its own format choices and 10 KiB record padding).
fn gnu_tar_of_a_tree() -> Vec<u8> {
    let src = tempfile::tempdir().unwrap();
    let p = src.path();
    std::fs::create_dir_all(p.join("a/b/c")).unwrap();
    std::fs::write(p.join("a/text"), texty(3, 100_000)).unwrap();
    std::fs::write(p.join("a/b/random"), pseudo_random(4, 300_000)).unwrap();
    std::fs::write(p.join("a/b/c/empty"), b"").unwrap();
    std::fs::hard_link(p.join("a/text"), p.join("a/text-link")).unwrap();
    std::os::unix::fs::symlink("b/random", p.join("a/sym")).unwrap();
    std::fs::write(p.join(format!("a/{}", "n".repeat(200))), b"long name").unwrap();
    let bin = require_tool("tar", "tar");
    let out = Command::new(bin)
        .args(["--format=gnu", "--sort=name", "-cf", "-", "-C"])
        .arg(p)
        .arg("a")
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn tar_split_reassembles_the_exact_tar_from_the_extracted_files() {
    for tar in [corpus_tar(1 << 20, 50), gnu_tar_of_a_tree()] {
        let mut ts = Vec::new();
        let summary = compression::tar_split(&tar[..], &mut ts).unwrap();
        assert_eq!(summary.tar_size, tar.len() as u64);
        assert_eq!(summary.entries, read_tar(&tar).len() as u64);
        // Every line is a tar-split entry with the fields tar-split's Go struct has.
        for (i, line) in ts
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let v: Value = serde_json::from_slice(line).unwrap();
            assert_eq!(v["position"], json!(i));
            assert!(v["type"] == 1 || v["type"] == 2, "{v}");
        }
        let dir = extract(&tar);
        let mut rebuilt = Vec::new();
        let n = compression::assemble(
            &ts[..],
            &mut DirectoryFiles::open(dir.path()).unwrap(),
            &mut rebuilt,
        )
        .unwrap();
        assert_eq!(n, tar.len() as u64);
        assert_eq!(rebuilt, tar, "reassembled tar differs");

        // The pass-through reader gives the same tar-split while the tar flows on.
        let mut through = compression::TarSplitReader::new(&tar[..], Vec::new());
        let mut copy = Vec::new();
        through.read_to_end(&mut copy).unwrap();
        assert_eq!(copy, tar);
        let (ts2, _) = through.finish().unwrap();
        assert_eq!(ts2, ts);
    }

    // A changed file is named, not silently put into a different tar.
    let tar = gnu_tar_of_a_tree();
    let mut ts = Vec::new();
    compression::tar_split(&tar[..], &mut ts).unwrap();
    let dir = extract(&tar);
    std::fs::write(dir.path().join("a/b/random"), pseudo_random(5, 300_000)).unwrap();
    let err = compression::assemble(
        &ts[..],
        &mut DirectoryFiles::open(dir.path()).unwrap(),
        Vec::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("a/b/random"), "{err}");
}

/// `tar` as a gzip layer, as ferry writes one.
fn gzip_of(tar: &[u8]) -> Vec<u8> {
    let mut gz = compression::LayerCompressor::new(Vec::new(), &spec(OutputFormat::Gzip)).unwrap();
    gz.write_all(tar).unwrap();
    gz.finish().unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_stream_works_from_async_code() {
    use futures::StreamExt as _;
    let tar = corpus_tar(2 << 20, 100);
    let blob = gzip_of(&tar);
    let chunks: Vec<std::io::Result<bytes::Bytes>> = blob
        .chunks(10_000)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let input: ferry::ByteStream = Box::pin(futures::stream::iter(chunks));
    let t = Transform::new("sha256:async", spec(OutputFormat::ZstdChunked))
        .expect_diff_id(Digest::sha256_of(&tar));
    let (mut out, handle) = compression::transform_stream(input, t);
    let mut written = Vec::new();
    while let Some(item) = out.next().await {
        written.extend_from_slice(&item.unwrap());
    }
    let report = handle.await.unwrap().unwrap();
    assert_eq!(report.digest, Digest::sha256_of(&written));
    assert_eq!(report.input_compression, Compression::Gzip);
    check_chunked(&written, &tar, &report.annotations);

    // A wrong diff_id: the stream ends with an error, and the handle has the typed one.
    let chunks = vec![Ok(bytes::Bytes::from(blob.clone()))];
    let t = Transform::new("sha256:async", spec(OutputFormat::Zstd))
        .expect_diff_id(Digest::sha256_of(b"x"));
    let (mut out, handle) =
        compression::transform_stream(Box::pin(futures::stream::iter(chunks)), t);
    let mut last = None;
    while let Some(item) = out.next().await {
        last = Some(item);
    }
    assert!(last.unwrap().is_err());
    assert!(matches!(
        handle.await.unwrap(),
        Err(CompressionError::DiffIdMismatch { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_stream_into_writes_what_transform_writes_whatever_the_chunking() {
    let tar = corpus_tar(1 << 20, 50);
    let blob = gzip_of(&tar);
    for (input, name) in [(&blob, "gzip"), (&tar, "tar")] {
        let t = Transform::new("sha256:into", spec(OutputFormat::Zstd))
            .expect_diff_id(Digest::sha256_of(&tar));
        let (expected, expected_report) = run_transform(input, &t);
        // Chunks of 1 and 5 bytes: the magic is read across chunks, and the decoder reads
        // the channel's chunks in place.
        for size in [1, 5, 4096, 1 << 20] {
            let chunks: Vec<std::io::Result<bytes::Bytes>> = input
                .chunks(size)
                .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
                .collect();
            let (report, written) = compression::transform_stream_into(
                Box::pin(futures::stream::iter(chunks)),
                t.clone(),
                Vec::new(),
            )
            .await
            .unwrap()
            .unwrap();
            assert_eq!(written, expected, "{name}, chunks of {size}");
            assert_eq!(report, expected_report, "{name}, chunks of {size}");
        }
    }

    // A gzip stream cut short fails, naming the layer; a source error mid-stream too.
    let cut = blob[..blob.len() / 2].to_vec();
    let t = Transform::new("sha256:cut", spec(OutputFormat::Zstd));
    let err = compression::transform_stream_into(
        Box::pin(futures::stream::iter(vec![Ok(bytes::Bytes::from(cut))])),
        t.clone(),
        Vec::new(),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        matches!(&err, CompressionError::Read { layer, .. } if layer == "sha256:cut"),
        "{err}"
    );
    let failing: Vec<std::io::Result<bytes::Bytes>> = vec![
        Ok(bytes::Bytes::copy_from_slice(&blob[..1000])),
        Err(std::io::Error::other("the source went away")),
    ];
    let err =
        compression::transform_stream_into(Box::pin(futures::stream::iter(failing)), t, Vec::new())
            .await
            .unwrap()
            .unwrap_err();
    assert!(err.to_string().contains("the source went away"), "{err}");
}

/// libzstd's multi-threaded mode gives the same bytes for any number of workers from 1 up
/// (not the single-threaded mode's): so a copy can give a large layer as many workers as
/// there are idle cores, and the cache of recompressions records only whether it used them.
#[test]
fn zstd_workers_give_the_same_bytes_whatever_their_number() {
    // Larger than several of libzstd's jobs at level 3 (8 MiB each), so workers share it.
    let mut tar = Vec::new();
    let mut k = 0;
    while tar.len() < 24 << 20 {
        tar.extend_from_slice(&texty(k, 1 << 20));
        tar.extend_from_slice(&pseudo_random(k, 1 << 19));
        k += 1;
    }
    let compress = |threads: u32| {
        let mut c = compression::LayerCompressor::new(
            Vec::new(),
            &spec(OutputFormat::Zstd).with_threads(threads),
        )
        .unwrap();
        for chunk in tar.chunks(256 << 10) {
            c.write_all(chunk).unwrap();
        }
        c.finish().unwrap().0
    };
    let one = compress(1);
    assert_eq!(decompress_with_ferry(&one), tar);
    for threads in [2, 3, 4] {
        assert!(compress(threads) == one, "{threads} workers differ from 1");
    }
    assert!(
        compress(0) != one,
        "the single-threaded mode is another encoding"
    );
}

/// An OCI layout holding one image whose single layer is `blob`.
fn write_layout(layout: &Path, tag: &str, blob: &[u8], report: &LayerReport) {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [report.diff_id.to_string()]},
    }))
    .unwrap();
    let mut layer = json!({
        "mediaType": report.output.oci_layer_media_type(),
        "digest": report.digest.to_string(),
        "size": report.size,
    });
    if !report.annotations.is_empty() {
        layer["annotations"] = json!(report.annotations);
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [layer],
    }))
    .unwrap();
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for b in [blob, &config[..], &manifest[..]] {
        std::fs::write(blobs.join(&sha256(b)["sha256:".len()..]), b).unwrap();
    }
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(&manifest),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }]}))
        .unwrap(),
    )
    .unwrap();
}

#[test]
fn skopeo_decompresses_ferrys_gzip_zstd_and_zstd_chunked_layers_to_their_diff_ids() {
    let tar = corpus_tar(1 << 20, 100);
    let diff_id = Digest::sha256_of(&tar);
    let work = tempfile::tempdir().unwrap();
    for format in [
        OutputFormat::Gzip,
        OutputFormat::Zstd,
        OutputFormat::ZstdChunked,
    ] {
        let (blob, report) = run_transform(&tar, &Transform::new("l", spec(format)));
        let layout = work
            .path()
            .join(format!("oci-{}", format.name().replace(':', "-")));
        write_layout(&layout, "t", &blob, &report);
        let out = work
            .path()
            .join(format!("dir-{}", format.name().replace(':', "-")));
        // --dest-decompress makes skopeo read every byte of the layer with its own decoders.
        support::skopeo(&[
            "copy",
            "--dest-decompress",
            &format!("oci:{}:t", layout.display()),
            &format!("dir:{}", out.display()),
        ])
        .ok();
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
        let layer = manifest["layers"][0]["digest"].as_str().unwrap();
        assert_eq!(
            layer,
            diff_id.to_string(),
            "{format}: skopeo's decompressed layer"
        );
        let bytes = std::fs::read(out.join(&layer["sha256:".len()..])).unwrap();
        assert_eq!(Digest::sha256_of(&bytes), diff_id, "{format}");
        assert_eq!(bytes, tar);
    }
}

#[test]
fn podman_pulls_a_zstd_chunked_layer_ferry_wrote_and_sees_its_files() {
    require_tool("podman", "podman");
    // No FIFO or device: podman may run where mknod is not allowed.
    let mut b = tar::Builder::new(Vec::new());
    for d in ["etc/", "usr/", "usr/share/"] {
        let mut h = header(tar::EntryType::Directory, 0, 0o755);
        b.append_data(&mut h, d, &b""[..]).unwrap();
    }
    let big = pseudo_random(11, 1 << 20);
    let mut h = header(tar::EntryType::Regular, big.len() as u64, 0o644);
    b.append_data(&mut h, "usr/share/big.bin", &big[..])
        .unwrap();
    let mut h = header(tar::EntryType::Regular, 12, 0o644);
    b.append_data(&mut h, "etc/greeting", &b"hello ferry\n"[..])
        .unwrap();
    let mut h = header(tar::EntryType::Regular, 0, 0o644);
    b.append_data(&mut h, "etc/empty", &b""[..]).unwrap();
    let mut h = header(tar::EntryType::Symlink, 0, 0o777);
    b.append_link(&mut h, "etc/link", "greeting").unwrap();
    let mut h = header(tar::EntryType::Link, 0, 0o644);
    b.append_link(&mut h, "etc/hard", "etc/greeting").unwrap();
    let tar = b.into_inner().unwrap();
    let (blob, report) = run_transform(&tar, &Transform::new("l", spec(OutputFormat::ZstdChunked)));

    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("oci");
    write_layout(&layout, "t", &blob, &report);
    let registry = support::registry::Registry::start();
    let image = format!("{}/ferry/chunked:1", registry.host());
    support::skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:t", layout.display()),
        &format!("docker://{image}"),
    ])
    .ok();
    // The registry holds ferry's blob as written, annotations included.
    let pushed = support::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ])
    .ok();
    let m: Value = serde_json::from_str(&pushed.stdout).unwrap();
    assert_eq!(m["layers"][0]["digest"], report.digest.to_string());
    assert_eq!(
        m["layers"][0]["annotations"][compression::MANIFEST_CHECKSUM_KEY],
        report.annotations[compression::MANIFEST_CHECKSUM_KEY]
    );

    let podman_dir = work.path().join("podman");
    let podman_cmd = |args: &[&str]| support::podman(&podman_dir, args);
    podman_cmd(&["pull", "--tls-verify=false", &image]).ok();
    let mounted = podman_cmd(&["image", "mount", &image]).ok();
    let dir = Path::new(mounted.stdout.trim());
    assert_eq!(
        std::fs::read(dir.join("etc/greeting")).unwrap(),
        b"hello ferry\n"
    );
    assert_eq!(std::fs::read(dir.join("usr/share/big.bin")).unwrap(), big);
    assert_eq!(std::fs::read(dir.join("etc/empty")).unwrap(), b"");
    assert_eq!(
        std::fs::read_link(dir.join("etc/link")).unwrap(),
        Path::new("greeting")
    );
    assert_eq!(
        std::fs::read(dir.join("etc/hard")).unwrap(),
        b"hello ferry\n"
    );
    let inspect = podman_cmd(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        &image,
    ])
    .ok();
    assert!(
        inspect.stdout.contains(&report.diff_id.to_string()),
        "{}",
        inspect.stdout
    );
    podman_cmd(&["image", "unmount", &image]).ok();
    podman_cmd(&["rmi", "-a", "-f"]).ok();
}

/// Rough throughput of recompressing 8 x 32 MiB of gzip layers to zstd and zstd:chunked,
/// single- and multi-threaded, and the CPU of the stages a conversion cannot skip (its floor).
/// Run with
/// `CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo test --test compression measure -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check: run it by hand"]
fn measure_recompression() {
    use std::time::Instant;
    let layers: Vec<Vec<u8>> = (0..8u64)
        .map(|i| {
            let mut b = tar::Builder::new(Vec::new());
            let mut n = 0;
            let mut k = 0u64;
            while n < 32 << 20 {
                // Half text-like, half random: about what a layer of binaries and data gives.
                let size = 4096 + (k as usize * 7919) % (1 << 20);
                let data = if k.is_multiple_of(2) {
                    texty(i * 1000 + k, size)
                } else {
                    pseudo_random(i * 1000 + k, size)
                };
                let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644);
                b.append_data(&mut h, format!("f{k}"), &data[..]).unwrap();
                n += size + 512;
                k += 1;
            }
            let tar = b.into_inner().unwrap();
            let mut gz =
                compression::LayerCompressor::new(Vec::new(), &spec(OutputFormat::Gzip)).unwrap();
            gz.write_all(&tar).unwrap();
            gz.finish().unwrap().0
        })
        .collect();
    let total_tar: u64 = layers
        .iter()
        .map(|l| decompress_with_ferry(l).len() as u64)
        .sum();
    let total_gz: u64 = layers.iter().map(|l| l.len() as u64).sum();
    println!(
        "input: 8 gzip layers, {} MiB of tar, {} MiB gzip",
        total_tar >> 20,
        total_gz >> 20
    );
    // The floor of gzip -> zstd: what each stage a conversion cannot skip costs alone, in CPU
    // seconds (this process's user + system time, so other load on the machine counts less
    // than in wall time), on one thread, in memory: hashing the source blob, inflating it,
    // hashing the tar (diff_id), compressing it, hashing the output. Their sum plus the
    // registries' own CPU, over the cores, is the best wall time of a registry-to-registry
    // recompression (docs/performance.md).
    fn cpu_s() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let f: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
    }
    let mut floor = 0.0;
    let mut stage = |name: &str, work: &mut dyn FnMut()| {
        let c = cpu_s();
        work();
        let spent = cpu_s() - c;
        floor += spent;
        println!("floor: {name:<28} {spent:6.2} CPU s");
    };
    stage("sha256 of the gzip blobs", &mut || {
        layers
            .iter()
            .for_each(|l| drop(std::hint::black_box(Digest::sha256_of(l))))
    });
    stage("inflate (flate2, zlib-rs)", &mut || {
        for l in &layers {
            let (_, mut r) = compression::open_layer(&l[..], None).unwrap();
            std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        }
    });
    let tars: Vec<Vec<u8>> = layers.iter().map(|l| decompress_with_ferry(l)).collect();
    stage("sha256 of the tars", &mut || {
        tars.iter()
            .for_each(|t| drop(std::hint::black_box(Digest::sha256_of(t))))
    });
    let mut zstds = Vec::new();
    stage("zstd level 3", &mut || {
        zstds = tars
            .iter()
            .map(|t| {
                let mut w =
                    compression::LayerCompressor::new(Vec::new(), &spec(OutputFormat::Zstd))
                        .unwrap();
                t.chunks(256 << 10).for_each(|c| w.write_all(c).unwrap());
                w.finish().unwrap().0
            })
            .collect()
    });
    stage("sha256 of the zstd blobs", &mut || {
        zstds
            .iter()
            .for_each(|z| drop(std::hint::black_box(Digest::sha256_of(z))))
    });
    println!("floor: sum                          {floor:6.2} CPU s");
    let c = cpu_s();
    for t in &tars {
        let mut w = compression::LayerCompressor::new(
            std::io::sink(),
            &spec(OutputFormat::Zstd).with_threads(1),
        )
        .unwrap();
        t.chunks(256 << 10).for_each(|c| w.write_all(c).unwrap());
        w.finish().unwrap();
    }
    println!(
        "zstd level 3, libzstd's multi-threaded mode (1 worker): {:6.2} CPU s",
        cpu_s() - c
    );

    // The stages alone, on the uncompressed tars, single-threaded.
    let start = Instant::now();
    for t in &tars {
        compression::tar_split(&t[..], std::io::sink()).unwrap();
    }
    println!(
        "stage: tar-split only          {:6.2} s",
        start.elapsed().as_secs_f64()
    );
    for level in [1, 3] {
        let start = Instant::now();
        for t in &tars {
            let mut w = compression::ChunkedWriter::new(std::io::sink(), level).unwrap();
            w.write_all(t).unwrap();
            w.finish().unwrap();
        }
        println!(
            "stage: ChunkedWriter level {level}     {:6.2} s",
            start.elapsed().as_secs_f64()
        );
    }
    let start = Instant::now();
    for t in &tars {
        let mut w =
            compression::LayerCompressor::new(std::io::sink(), &spec(OutputFormat::Zstd)).unwrap();
        w.write_all(t).unwrap();
        w.finish().unwrap();
    }
    println!(
        "stage: zstd level 3            {:6.2} s",
        start.elapsed().as_secs_f64()
    );
    for (format, threads) in [
        (OutputFormat::Uncompressed, 0),
        (OutputFormat::Zstd, 0),
        (OutputFormat::Zstd, 2),
        (OutputFormat::ZstdChunked, 0),
    ] {
        let start = Instant::now();
        let mut out = 0u64;
        for l in &layers {
            let t = Transform::new("l", spec(format).with_threads(threads));
            out += compression::transform(&l[..], std::io::sink(), &t)
                .unwrap()
                .size;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "gzip -> {format:<12} threads {threads}: {secs:6.2} s, {:6.1} MiB/s of tar, output {} MiB",
            total_tar as f64 / secs / 1048576.0,
            out >> 20
        );
    }
}
