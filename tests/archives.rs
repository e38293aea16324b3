//! The `oci-archive:` and `docker-archive:` transports end to end, against the real peers:
//! `podman load` loads ferry's docker-archives, skopeo reads both kinds ferry writes and ferry
//! reads both kinds skopeo writes, with the same config digest; multi-image and multi-platform
//! archives; archives compressed whole; the air-gap round trip with `ferry sync` and signatures
//! (a sigstore attachment and OCI 1.1 referrers, out of a registry into one archive and back
//! into another registry, through the gate); simple signing refused as `oci:` refuses it; and
//! bad archives (truncated, `..`, a missing layer, duplicate names, a blob that does not match
//! its digest): a clear error naming the archive and the entry, exit 3, nothing written.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::podman::{Podman, layer_tar};
use support::registry::Registry;
use support::sigstore::{keygen, keyless, sgen, sign};
use support::*;

/// Everything a command printed.
fn said(r: &Run) -> String {
    format!("{}{}", r.stdout, r.stderr)
}

/// `ferry copy -q --policy P SRC DST EXTRA…`.
fn copy(policy: &Path, src: &str, dst: &str, extra: &[&str]) -> Run {
    let mut a = vec!["copy", "-q", "--policy", policy.to_str().unwrap()];
    a.extend_from_slice(extra);
    a.extend([src, dst]);
    ferry(&a)
}

fn skopeo_ok(args: &[&str]) -> Run {
    let mut full = vec!["--insecure-policy"];
    full.extend_from_slice(args);
    skopeo(&full).ok()
}

/// An image with real layer tars, named `name` in the OCI layout `layout`.
fn real_image(dir: &Path, layout: &Path, name: &str, seed: u64) -> TestImage {
    let layers = (0..2)
        .map(|i| layer_tar(dir, seed * 100 + i, 30_000 + i as usize * 1000))
        .collect();
    let img = build_image("amd64", layers);
    write_oci_image(layout, name, &img);
    img
}

/// The config digest of an image, as `ferry inspect --config --raw` gives the config.
fn config_digest(image: &str) -> String {
    let out = ferry(&["inspect", "--config", "--raw", image]).ok();
    sha256(out.stdout.as_bytes())
}

/// The `index.json` of an archive, read with tar (not with ferry).
fn archive_index(archive: &Path) -> Value {
    let out = run(Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg("index.json"))
    .ok();
    serde_json::from_str(&out.stdout).unwrap()
}

/// The names of an archive's `index.json` entries.
fn index_names(archive: &Path) -> Vec<String> {
    archive_index(archive)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(str::to_string)
        .collect()
}

/// Files in `dir` whose names start with `prefix`.
fn files_starting(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// A temporary directory with a lax policy and an image of real layers in an OCI layout.
struct Image {
    t: tempfile::TempDir,
    p: PathBuf,
    img: TestImage,
    /// Its config's digest.
    want: String,
    /// `oci:LAYOUT:v1`.
    src: String,
}

fn image(seed: u64) -> Image {
    let t = tempfile::tempdir().unwrap();
    let p = insecure_policy(t.path());
    let layout = t.path().join("layout");
    let img = real_image(t.path(), &layout, "v1", seed);
    Image {
        want: sha256(&img.config),
        src: format!("oci:{}:v1", layout.display()),
        t,
        p,
        img,
    }
}

#[test]
fn ferry_archives_load_in_podman_and_read_in_skopeo_with_the_same_config_digest() {
    let Image {
        t,
        p,
        img,
        want,
        src,
    } = image(1);

    // oci-archive: the same manifest, byte for byte; skopeo reads it.
    let oa = t.path().join("app-oci.tar");
    copy(
        &p,
        &src,
        &format!("oci-archive:{}:app:v1", oa.display()),
        &[],
    )
    .ok();
    assert_eq!(index_names(&oa), ["app:v1"]);
    let raw = skopeo_ok(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}:app:v1", oa.display()),
    ]);
    assert_eq!(raw.stdout.as_bytes(), img.manifest.as_slice());
    let out = t.path().join("from-skopeo");
    skopeo_ok(&[
        "copy",
        &format!("oci-archive:{}:app:v1", oa.display()),
        &format!("dir:{}", out.display()),
    ]);
    assert_eq!(sha256(&std::fs::read(out.join(&want[7..])).unwrap()), want);

    // docker-archive with two tags (--additional-tag): podman loads it with both names and the
    // config digest as the image ID; skopeo reads it by either tag.
    let da = t.path().join("app-docker.tar");
    copy(
        &p,
        &src,
        &format!("docker-archive:{}:example.com/app:v1", da.display()),
        &["--additional-tag", "example.com/app:stable"],
    )
    .ok();
    let podman = Podman::new(t.path());
    podman.run(&["load", "-i", da.to_str().unwrap()]).ok();
    let images = podman.images();
    for name in ["example.com/app:v1", "example.com/app:stable"] {
        assert!(
            images.iter().any(|(n, id)| n == name && *id == want[7..]),
            "podman has {images:?}, wanted {name} with ID {want}"
        );
    }
    for tag in ["example.com/app:v1", "example.com/app:stable"] {
        let config = skopeo_ok(&[
            "inspect",
            "--config",
            "--raw",
            &format!("docker-archive:{}:{tag}", da.display()),
        ]);
        assert_eq!(sha256(config.stdout.as_bytes()), want);
    }
    // Read back by ferry through both transports (the archive is Docker 25+'s shape: an OCI
    // layout plus manifest.json), with the same config.
    assert_eq!(
        config_digest(&format!("docker-archive:{}:@0", da.display())),
        want
    );
    assert_eq!(
        config_digest(&format!(
            "oci-archive:{}:example.com/app:stable",
            da.display()
        )),
        want
    );
    // --additional-tag means something only for docker-archive.
    let refused = copy(
        &p,
        &src,
        &format!("oci-archive:{}", t.path().join("x.tar").display()),
        &["--additional-tag", "a:b"],
    )
    .code(2);
    assert!(
        said(&refused).contains("docker-archive"),
        "{}",
        said(&refused)
    );
}

#[test]
fn ferry_reads_what_skopeo_writes_and_round_trips_keep_the_config_digest() {
    let Image {
        t,
        p,
        img,
        want,
        src,
    } = image(2);

    let so = t.path().join("skopeo-oci.tar");
    skopeo_ok(&["copy", &src, &format!("oci-archive:{}", so.display())]);
    let sd = t.path().join("skopeo-docker.tar");
    skopeo_ok(&[
        "copy",
        &src,
        &format!("docker-archive:{}:app:v1", sd.display()),
    ]);
    for (from, back) in [
        (format!("oci-archive:{}", so.display()), "b1"),
        (format!("docker-archive:{}", sd.display()), "b2"),
        (format!("docker-archive:{}:app:v1", sd.display()), "b3"),
        (format!("docker-archive:{}:@0", sd.display()), "b4"),
    ] {
        let dst = format!("oci:{}:v1", t.path().join(back).display());
        copy(&p, &from, &dst, &[]).ok();
        assert_eq!(config_digest(&dst), want, "{from}");
    }
    // The digest ferry reports for skopeo's docker-archive is the manifest it offers.
    let inspected: Value = serde_json::from_str(
        &ferry(&["inspect", &format!("docker-archive:{}", sd.display())])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 2);

    // ferry -> oci-archive -> ferry: the same manifest digest; -> docker-archive -> ferry: the
    // same config digest.
    let oa = t.path().join("ferry-oci.tar");
    copy(&p, &src, &format!("oci-archive:{}", oa.display()), &[]).ok();
    let back = format!("oci:{}:v1", t.path().join("b5").display());
    copy(&p, &format!("oci-archive:{}", oa.display()), &back, &[]).ok();
    assert_eq!(
        oci_manifest(&t.path().join("b5"), "v1"),
        img.manifest,
        "same manifest"
    );

    // Compressed whole (docker save | gzip): read, and the image is the same.
    let gz = t.path().join("ferry-docker.tar.gz");
    let da = t.path().join("ferry-docker.tar");
    copy(
        &p,
        &src,
        &format!("docker-archive:{}:app:v1", da.display()),
        &[],
    )
    .ok();
    let gzip = run(Command::new(require_tool("gzip", "gzip"))
        .arg("-kc")
        .arg(&da)
        .stdout(std::fs::File::create(&gz).unwrap()));
    assert_eq!(gzip.code, 0);
    assert_eq!(
        config_digest(&format!("docker-archive:{}", gz.display())),
        want
    );
}

#[test]
fn multi_platform_and_multi_image_archives() {
    let t = tempfile::tempdir().unwrap();
    let p = insecure_policy(t.path());
    let layout = t.path().join("layout");
    let (index, index_digest, images) =
        make_oci_index(&layout, "multi", 3, &["amd64", "arm64", "arm/v7"]);
    let a = t.path().join("multi.tar");
    copy(
        &p,
        &format!("oci:{}:multi", layout.display()),
        &format!("oci-archive:{}:multi", a.display()),
        &["--all"],
    )
    .ok();
    let raw = ferry(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}:multi", a.display()),
    ])
    .ok();
    assert_eq!(raw.stdout.as_bytes(), index.as_slice());
    let arm = format!("oci:{}:arm", t.path().join("arm").display());
    copy(
        &p,
        &format!("oci-archive:{}:multi", a.display()),
        &arm,
        &["--override-arch", "arm64"],
    )
    .ok();
    assert_eq!(config_digest(&arm), sha256(&images[1].config));
    // skopeo 1.9 cannot read a multi-platform oci-archive (skopeo #2463); ferry can, and can
    // copy the whole index back out.
    let all = format!("oci:{}:multi", t.path().join("all").display());
    copy(
        &p,
        &format!("oci-archive:{}:multi", a.display()),
        &all,
        &["--all"],
    )
    .ok();
    assert_eq!(oci_manifest(&t.path().join("all"), "multi"), index);
    assert_eq!(sha256(&index), index_digest);

    // A list cannot go into a docker-archive: the error says what to do.
    let refused = copy(
        &p,
        &format!("oci:{}:multi", layout.display()),
        &format!("docker-archive:{}", t.path().join("d.tar").display()),
        &["--all"],
    )
    .code(3);
    assert!(said(&refused).contains("not lists"), "{}", said(&refused));
    assert!(!t.path().join("d.tar").exists());
}

#[test]
fn sync_writes_many_images_into_one_archive_and_reads_them_back() {
    let t = tempfile::tempdir().unwrap();
    let p = insecure_policy(t.path());
    let reg = Registry::start();
    let layout = t.path().join("layout");
    let mut configs = Vec::new();
    for (i, tag) in ["v1", "v2", "v3"].iter().enumerate() {
        let img = real_image(t.path(), &layout, tag, 10 + i as u64);
        configs.push(sha256(&img.config));
        copy(
            &p,
            &format!("oci:{}:{tag}", layout.display()),
            &format!("docker://{}/ns/app:{tag}", reg.host()),
            &["--dest-tls-verify=false"],
        )
        .ok();
    }
    for (kind, file) in [
        ("oci-archive", "all-oci.tar"),
        ("docker-archive", "all-docker.tar"),
    ] {
        let archive = t.path().join(file);
        let out = ferry(&[
            "sync",
            "--policy",
            p.to_str().unwrap(),
            "--src",
            "docker",
            "--dest",
            kind,
            "--src-tls-verify=false",
            &format!("{}/ns/app", reg.host()),
            archive.to_str().unwrap(),
        ])
        .ok();
        assert!(out.stderr.contains("3 copied"), "{kind}: {}", said(&out));
        assert!(archive.exists());
        assert!(files_starting(t.path(), &format!("{file}.tmp-")).is_empty());
        // Each image by its name, with its config.
        for (tag, want) in ["v1", "v2", "v3"].iter().zip(&configs) {
            let name = format!("{kind}:{}:app:{tag}", archive.display());
            assert_eq!(config_digest(&name), *want, "{name}");
        }
    }
    // podman loads the three images of the sync's docker-archive.
    let podman = Podman::new(t.path());
    podman
        .run(&[
            "load",
            "-i",
            t.path().join("all-docker.tar").to_str().unwrap(),
        ])
        .ok();
    let images = podman.images();
    for (tag, want) in ["v1", "v2", "v3"].iter().zip(&configs) {
        assert!(
            images
                .iter()
                .any(|(n, id)| n == &format!("docker.io/library/app:{tag}") && *id == want[7..]),
            "{images:?}"
        );
    }
    // list-tags of the docker-archive, as skopeo's.
    let ours = ferry(&[
        "list-tags",
        &format!(
            "docker-archive:{}",
            t.path().join("all-docker.tar").display()
        ),
    ])
    .ok();
    let theirs = skopeo_ok(&[
        "list-tags",
        &format!(
            "docker-archive:{}",
            t.path().join("all-docker.tar").display()
        ),
    ]);
    assert_eq!(ours.stdout, theirs.stdout);

    // Back out of the archives into a registry and a directory of layouts.
    let reg2 = Registry::start();
    ferry(&[
        "sync",
        "--policy",
        p.to_str().unwrap(),
        "--src",
        "oci-archive",
        "--dest",
        "docker",
        "--dest-tls-verify=false",
        t.path().join("all-oci.tar").to_str().unwrap(),
        &format!("{}/mirror", reg2.host()),
    ])
    .ok();
    for (tag, want) in ["v1", "v2", "v3"].iter().zip(&configs) {
        let image = format!("docker://{}/mirror/app:{tag}", reg2.host());
        let out = ferry(&["inspect", "--config", "--raw", "--tls-verify=false", &image]).ok();
        assert_eq!(sha256(out.stdout.as_bytes()), *want);
    }
    let layouts = t.path().join("layouts");
    ferry(&[
        "sync",
        "--policy",
        p.to_str().unwrap(),
        "--src",
        "docker-archive",
        "--dest",
        "oci",
        t.path().join("all-docker.tar").to_str().unwrap(),
        layouts.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        config_digest(&format!("oci:{}:v2", layouts.join("app").display())),
        configs[1]
    );
}

#[test]
fn a_sync_with_a_failed_image_leaves_no_archive_and_keep_going_writes_the_rest() {
    let t = tempfile::tempdir().unwrap();
    let p = insecure_policy(t.path());
    let reg = Registry::start();
    let layout = t.path().join("layout");
    for (i, tag) in ["v1", "v2"].iter().enumerate() {
        real_image(t.path(), &layout, tag, 20 + i as u64);
        copy(
            &p,
            &format!("oci:{}:{tag}", layout.display()),
            &format!("docker://{}/ns/app:{tag}", reg.host()),
            &["--dest-tls-verify=false"],
        )
        .ok();
    }
    // The policy rejects v2.
    let policy = t.path().join("reject-v2.json");
    std::fs::write(
        &policy,
        format!(
            r#"{{"default":[{{"type":"insecureAcceptAnything"}}],"transports":{{"docker":{{"{}/ns/app:v2":[{{"type":"reject"}}]}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let archive = t.path().join("out.tar");
    let sync = |extra: &[&str]| {
        let mut a = vec![
            "sync",
            "--policy",
            policy.to_str().unwrap(),
            "--src",
            "docker",
            "--dest",
            "oci-archive",
            "--src-tls-verify=false",
            "--parallel-images",
            "1",
        ];
        a.extend_from_slice(extra);
        let from = format!("{}/ns/app", reg.host());
        a.extend([from.as_str(), archive.to_str().unwrap()]);
        ferry(&a)
    };
    let out = sync(&[]).code(1);
    assert!(!archive.exists(), "{}", said(&out));
    assert!(files_starting(t.path(), "out.tar.tmp-").is_empty());
    let out = sync(&["--keep-going"]).code(1);
    assert!(archive.exists(), "{}", said(&out));
    assert_eq!(index_names(&archive), ["app:v1"]);
}

#[test]
fn signatures_travel_through_an_archive_across_the_air_gap() {
    let t = tempfile::tempdir().unwrap();
    let lax = insecure_policy(t.path());
    let reg = Registry::start();
    let layout = t.path().join("layout");
    let key = keygen(t.path(), "cosign", "ecdsa-p256");
    let k = keyless(&t.path().join("trust"));
    let mut digests = Vec::new();
    for (i, tag) in ["v1", "v2"].iter().enumerate() {
        let img = make_oci_image(&layout, tag, 30 + i as u64, 2, 40_000);
        let identity = format!("{}/ns/app:{tag}", reg.host());
        copy(
            &lax,
            &format!("oci:{}:{tag}", layout.display()),
            &format!("docker://{identity}"),
            &["--dest-tls-verify=false"],
        )
        .ok();
        // A cosign signature attachment (sha256-HEX.sig), made without ferry.
        let (payload, sig) = sign(t.path(), tag, &key, &img.digest, &identity);
        sgen(&[
            "attach",
            "--registry",
            &format!("http://{}", reg.host()),
            "--repo",
            "ns/app",
            "--digest",
            &img.digest,
            "--sig",
            &format!("{}:{}", payload.display(), sig.display()),
        ])
        .ok();
        digests.push(img.digest);
    }
    // v1 also has OCI 1.1 referrers: a keyless signature bundle and an SBOM.
    let bundle = k.bundle(&digests[0], "sig", &["--dsse"]);
    let push = |file: &Path, artifact_type: &str, extra: &[&str]| {
        let mut a = vec![
            "push-referrer",
            "--registry",
            &reg.host(),
            "--repo",
            "ns/app",
            "--subject-digest",
            &digests[0],
            "--file",
            file.to_str().unwrap(),
            "--artifact-type",
            artifact_type,
            "--created",
            "2026-01-02T03:04:05Z",
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
        a.extend(extra.iter().map(|s| s.to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        sgen(&a).ok().stdout.trim().to_string()
    };
    let host = reg.host();
    let _ = &host;
    let bundle_digest = push(
        &bundle,
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        &["--predicate-type", "https://sigstore.dev/cosign/sign/v1"],
    );
    let sbom = t.path().join("sbom.spdx.json");
    std::fs::write(&sbom, br#"{"spdxVersion":"SPDX-2.3","name":"app"}"#).unwrap();
    let sbom_digest = push(&sbom, "application/spdx+json", &[]);
    let mut referrers = vec![bundle_digest, sbom_digest];
    referrers.sort();

    let regd = t.path().join("registries.d");
    std::fs::create_dir_all(&regd).unwrap();
    std::fs::write(
        regd.join("ferry.yaml"),
        "default-docker:
  use-sigstore-attachments: true
  use-sigstore-referrers: true
",
    )
    .unwrap();
    // The connected side trusts the key for its registry; the far side trusts it for what comes
    // out of the archive (which has no docker name: the identity is the signed one).
    let signed = format!(
        r#"{{"type":"sigstoreSigned","keyPath":"{}","signedIdentity":{{"type":"exactRepository","dockerRepository":"{}/ns/app"}}}}"#,
        key.public.display(),
        reg.host()
    );
    let policy = t.path().join("policy.json");
    std::fs::write(
        &policy,
        format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"":[{signed}]}},"oci-archive":{{"":[{signed}]}}}}}}"#
        ),
    )
    .unwrap();
    let ferry_with = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend([
            "--policy",
            policy.to_str().unwrap(),
            "--registries.d",
            regd.to_str().unwrap(),
        ]);
        ferry(&a)
    };

    // Connected side: every image of the repository, with its signatures and referrers, into
    // one file.
    let archive = t.path().join("carry.tar");
    let yaml = t.path().join("mirror.yaml");
    std::fs::write(
        &yaml,
        format!(
            "{}:\n  tls-verify: false\n  images:\n    ns/app: [v1, v2]\n",
            reg.host()
        ),
    )
    .unwrap();
    let out = ferry_with(&[
        "sync",
        "--src",
        "yaml",
        "--dest",
        "oci-archive",
        "--referrers",
        "all",
        yaml.to_str().unwrap(),
        archive.to_str().unwrap(),
    ])
    .ok();
    assert!(out.stderr.contains("2 copied"), "{}", said(&out));
    let names = index_names(&archive);
    for d in &digests {
        assert!(
            names.contains(&format!("sha256-{}.sig", &d[7..])),
            "{names:?}"
        );
    }
    let listed: Vec<String> = archive_index(&archive)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["annotations"]["dev.ferry.referrer.subject"] == digests[0].as_str())
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    let mut listed = listed;
    listed.sort();
    assert_eq!(listed, referrers);

    // Far side: restored into another registry through the gate, which checks the signatures
    // as they come out of the archive.
    let reg2 = Registry::start();
    let out = ferry_with(&[
        "sync",
        "--src",
        "oci-archive",
        "--dest",
        "docker",
        "--dest-tls-verify=false",
        "--referrers",
        "all",
        archive.to_str().unwrap(),
        &format!("{}/mirror", reg2.host()),
    ])
    .ok();
    assert!(out.stderr.contains("2 copied"), "{}", said(&out));
    for (tag, d) in ["v1", "v2"].iter().zip(&digests) {
        let image = format!("docker://{}/mirror/app:{tag}", reg2.host());
        let checked = ferry_with(&["policy", "check", "--tls-verify=false", &image]);
        assert_eq!(checked.code, 0, "{}", said(&checked));
        let raw = ferry(&["inspect", "--raw", "--tls-verify=false", &image]).ok();
        assert_eq!(sha256(raw.stdout.as_bytes()), *d);
    }
    let out = sgen(&[
        "list-referrers",
        "--registry",
        &reg2.host(),
        "--repo",
        "mirror/app",
        "--subject-digest",
        &digests[0],
    ])
    .ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let mut at_far_side: Vec<String> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    at_far_side.sort();
    assert_eq!(
        at_far_side, referrers,
        "every referrer arrived byte for byte"
    );

    // The archive's own gate: a key the policy does not trust rejects the image (exit 1) and
    // writes nothing.
    let other = keygen(t.path(), "other", "ecdsa-p256");
    let strict = t.path().join("strict.json");
    std::fs::write(
        &strict,
        format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"oci-archive":{{"":[{{"type":"sigstoreSigned","keyPath":"{}","signedIdentity":{{"type":"matchRepository"}}}}]}}}}}}"#,
            other.public.display()
        ),
    )
    .unwrap();
    let dst = t.path().join("never");
    ferry(&[
        "copy",
        "--policy",
        strict.to_str().unwrap(),
        &format!("oci-archive:{}:app:v1", archive.display()),
        &format!("oci:{}", dst.display()),
    ])
    .code(1);
    assert!(!dst.exists());
}

#[test]
fn simple_signing_has_no_place_in_an_oci_archive_and_docker_archives_keep_no_signatures() {
    let t = tempfile::tempdir().unwrap();
    let lax = insecure_policy(t.path());
    let dir = t.path().join("signed");
    dir_image(&dir, 40, 10_000);
    let g = support::gpg::Gpg::new();
    let key = g.gen_key("archive signer");
    g.skopeo_sign(
        &dir.join("manifest.json"),
        "registry.example/app:v1",
        &key.fpr,
        &dir.join("signature-1"),
    );
    let src = format!("dir:{}", dir.display());
    let oa = t.path().join("a.tar");
    let refused = copy(&lax, &src, &format!("oci-archive:{}", oa.display()), &[]).code(3);
    assert!(
        said(&refused).contains("no place for simple signing"),
        "{}",
        said(&refused)
    );
    assert!(!oa.exists());
    assert!(files_starting(t.path(), "a.tar.tmp-").is_empty());
    copy(
        &lax,
        &src,
        &format!("oci-archive:{}", oa.display()),
        &["--remove-signatures"],
    )
    .ok();
    let da = t.path().join("d.tar");
    let refused = copy(&lax, &src, &format!("docker-archive:{}", da.display()), &[]).code(3);
    assert!(
        said(&refused).contains("docker-archive")
            && said(&refused).contains("no place for signatures"),
        "{}",
        said(&refused)
    );
    assert!(!da.exists());
}

#[test]
fn a_killed_copy_leaves_no_archive_and_the_next_one_cleans_up() {
    let t = tempfile::tempdir().unwrap();
    let lax = insecure_policy(t.path());
    let layout = t.path().join("layout");
    make_oci_image(&layout, "big", 50, 4, 32 << 20);
    let archive = t.path().join("big.tar");
    let mut child = Command::new(ferry_bin())
        .args(["copy", "-q", "--policy", lax.to_str().unwrap()])
        .arg(format!("oci:{}:big", layout.display()))
        .arg(format!("oci-archive:{}", archive.display()))
        .spawn()
        .unwrap();
    // Wait until the temporary archive holds some data, then kill -9.
    let started = std::time::Instant::now();
    loop {
        let partial = files_starting(t.path(), "big.tar.tmp-");
        let size = partial
            .first()
            .and_then(|n| std::fs::metadata(t.path().join(n)).ok())
            .map_or(0, |m| m.len());
        if size > 8 << 20 || started.elapsed().as_secs() > 60 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!archive.exists(), "no archive after kill -9");
    assert_eq!(files_starting(t.path(), "big.tar.tmp-").len(), 1);
    copy(
        &lax,
        &format!("oci:{}:big", layout.display()),
        &format!("oci-archive:{}", archive.display()),
        &[],
    )
    .ok();
    assert!(archive.exists());
    assert!(
        files_starting(t.path(), "big.tar.tmp-").is_empty(),
        "the leftover is removed"
    );
}

/// A tar written by Python's tarfile with the given members (name, bytes), in order.
fn python_tar(out: &Path, members: &[(String, Vec<u8>)]) {
    let dir = out.parent().unwrap();
    let mut script = String::from(
        "import tarfile, io, sys
t = tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT)
",
    );
    for (i, (name, data)) in members.iter().enumerate() {
        let f = dir.join(format!("member-{i}"));
        std::fs::write(&f, data).unwrap();
        script.push_str(&format!(
            "d = open({:?}, 'rb').read()
ti = tarfile.TarInfo({:?})
ti.size = len(d)
t.addfile(ti, io.BytesIO(d))
",
            f.display().to_string(),
            name
        ));
    }
    script.push_str(
        "t.close()
",
    );
    run(Command::new(require_tool("python3", "python3"))
        .args(["-c", &script])
        .arg(out))
    .ok();
}

/// The members of a good oci-archive ferry wrote, as (name, bytes), in order.
fn members_of(archive: &Path, dir: &Path) -> Vec<(String, Vec<u8>)> {
    let x = dir.join("extracted");
    std::fs::create_dir_all(&x).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(&x))
    .ok();
    let list = run(Command::new("tar").arg("-tf").arg(archive)).ok();
    list.stdout
        .lines()
        .filter(|l| !l.ends_with('/'))
        .map(|l| (l.to_string(), std::fs::read(x.join(l)).unwrap()))
        .collect()
}

#[test]
fn bad_archives_name_the_archive_and_the_entry_exit_3_and_write_nothing() {
    let t = tempfile::tempdir().unwrap();
    let lax = insecure_policy(t.path());
    let layout = t.path().join("layout");
    let img = make_oci_image(&layout, "v1", 60, 2, 200_000);
    let good = t.path().join("good.tar");
    copy(
        &lax,
        &format!("oci:{}:v1", layout.display()),
        &format!("oci-archive:{}", good.display()),
        &[],
    )
    .ok();
    let members = members_of(&good, t.path());
    let layer_entry = format!("blobs/sha256/{}", &img.layers_digests()[0][7..]);
    let second_layer = img.layers_digests()[1][7..].to_string();

    let mut cases: Vec<(&str, PathBuf, Vec<&str>)> = Vec::new();
    // Cut short in the middle of a layer.
    let truncated = t.path().join("truncated.tar");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    cases.push(("oci-archive", truncated, vec!["truncated.tar", "cut short"]));
    // An entry climbing out with `..`.
    let climbing = t.path().join("climbing.tar");
    let mut m = members.clone();
    m.push(("../../etc/evil".to_string(), b"x".to_vec()));
    python_tar(&climbing, &m);
    cases.push((
        "oci-archive",
        climbing,
        vec!["climbing.tar", "../../etc/evil", "unsafe name"],
    ));
    // Two entries of one name.
    let twice = t.path().join("twice.tar");
    let mut m = members.clone();
    m.push(("index.json".to_string(), b"{}".to_vec()));
    python_tar(&twice, &m);
    cases.push((
        "oci-archive",
        twice,
        vec!["twice.tar", "index.json", "appears twice"],
    ));
    // A layer whose bytes do not match its digest (same size).
    let corrupt = t.path().join("corrupt.tar");
    let m: Vec<(String, Vec<u8>)> = members
        .iter()
        .map(|(n, d)| {
            let mut d = d.clone();
            if *n == layer_entry {
                d[1000] ^= 0xff;
            }
            (n.clone(), d)
        })
        .collect();
    python_tar(&corrupt, &m);
    cases.push((
        "oci-archive",
        corrupt,
        vec!["corrupt.tar", &layer_entry[13..], "digest"],
    ));
    // A docker-archive whose manifest.json names a layer that is not there.
    let missing = t.path().join("missing.tar");
    let manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": ["app:v1"],
        "Layers": ["aaa/layer.tar", "bbb/layer.tar"],
    }])
    .to_string();
    let mut m = vec![
        ("manifest.json".to_string(), manifest.into_bytes()),
        ("config.json".to_string(), img.config.clone()),
        ("aaa/layer.tar".to_string(), img.layers[0].clone()),
    ];
    python_tar(&missing, &m);
    cases.push((
        "docker-archive",
        missing,
        vec!["missing.tar", "bbb/layer.tar"],
    ));
    // A docker-archive whose layer does not match the config's DiffID.
    let wrong = t.path().join("wrong-layer.tar");
    let mut other = img.layers[1].clone();
    other[10] ^= 0xff;
    m.push(("bbb/layer.tar".to_string(), other));
    python_tar(&wrong, &m);
    cases.push((
        "docker-archive",
        wrong,
        vec!["wrong-layer.tar", &second_layer],
    ));

    for (i, (transport, archive, wanted)) in cases.iter().enumerate() {
        let dst = t.path().join(format!("out-{i}"));
        let r = copy(
            &lax,
            &format!("{transport}:{}", archive.display()),
            &format!("oci:{}", dst.display()),
            &[],
        );
        let text = said(&r);
        assert_eq!(r.code, 3, "{}: {text}", archive.display());
        for w in wanted {
            assert!(
                text.contains(w),
                "{}: wanted {w:?} in: {text}",
                archive.display()
            );
        }
        assert!(!dst.exists(), "{}: nothing written", archive.display());
    }
}
