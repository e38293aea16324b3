//! `ferry sync` end to end against two real distribution registries on 127.0.0.1: skopeo sync's
//! YAML (tag lists, a tag regex, a semver range) compared with skopeo sync itself, lookaside
//! signatures, --keep-going over an unreachable repository and a rejected image, a no-op re-run
//! counted request by request through an in-test proxy, a sync killed with SIGKILL and run
//! again, four shards, a 429 that pauses the whole registry, and the caps, tokens and connections
//! that the images of one sync share, measured at a slow token-auth proxy.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::distribution::{ACCEPT, digest_of, http, report, slow_blobs_proxy, tags};
use support::gpg::{Gpg, Key};
use support::http::{HttpServer, Reply, Request};
use support::registry::Registry;
use support::*;

/// Writes a `dir:` image (containers/image's directory format) of `layers`.
fn write_dir_image(dir: &Path, layers: Vec<Vec<u8>>) -> TestImage {
    let img = build_image("amd64", layers);
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("version"), "Directory Transport Version: 1.1\n").expect("version");
    std::fs::write(dir.join("manifest.json"), &img.manifest).expect("manifest");
    for blob in img.layers.iter().chain(std::iter::once(&img.config)) {
        std::fs::write(dir.join(&sha256(blob)["sha256:".len()..]), blob).expect("blob");
    }
    img
}

/// A source registry filled with `repos` × `tags` images (a shared base layer, one of its own
/// each), pushed by skopeo in one `skopeo sync`; lookaside signatures (by real gpg through skopeo)
/// for the images `signed` picks, served by an in-test server that counts its requests.
struct World {
    t: tempfile::TempDir,
    src: Registry,
    dst: Registry,
    /// (repo, tag) → manifest digest.
    images: BTreeMap<(String, String), String>,
    lookaside: HttpServer,
    lookaside_dir: PathBuf,
    dst_sigs: PathBuf,
    registries_d: PathBuf,
    policy: PathBuf,
    gpg: Gpg,
    key: Key,
}

const TAGS: [&str; 4] = ["1.0.0", "1.1.0", "2.0.0", "latest"];

impl World {
    fn new(
        repos: &[&str],
        tags: &[&str],
        layer: usize,
        signed: impl Fn(&str, &str) -> bool,
    ) -> World {
        let t = tempfile::tempdir().expect("tempdir");
        let (src, dst) = (Registry::start(), Registry::start());
        let tree = t.path().join("tree");
        let base = pseudo_random(1, layer);
        let mut images = BTreeMap::new();
        for (r, repo) in repos.iter().enumerate() {
            for (i, tag) in tags.iter().enumerate() {
                let own = pseudo_random(100 + (r * 10 + i) as u64, layer / 4 + 1);
                let img =
                    write_dir_image(&tree.join(format!("{repo}:{tag}")), vec![base.clone(), own]);
                images.insert((repo.to_string(), tag.to_string()), img.digest);
            }
        }
        let insecure = insecure_policy(t.path());
        skopeo(&[
            "sync",
            "--policy",
            insecure.to_str().unwrap(),
            "--src",
            "dir",
            "--dest",
            "docker",
            "--scoped",
            "--dest-tls-verify=false",
            tree.to_str().unwrap(),
            &src.host(),
        ])
        .ok();
        // skopeo compresses the layers on the way, so the registry's manifests are its own.
        let mut manifests = BTreeMap::new();
        for ((repo, tag), digest) in images.iter_mut() {
            let (status, _, body) = http(
                "GET",
                &src.host(),
                &format!("/v2/{repo}/manifests/{tag}"),
                Some(ACCEPT),
            );
            assert_eq!(status, 200, "{repo}:{tag} pushed");
            *digest = sha256(&body);
            manifests.insert((repo.clone(), tag.clone()), body);
        }

        let gpg = Gpg::new();
        let key = gpg.gen_key("Mirror Signer");
        let lookaside_dir = t.path().join("lookaside");
        for ((repo, tag), digest) in &images {
            if !signed(repo, tag) {
                continue;
            }
            let manifest = t.path().join("m.json");
            std::fs::write(&manifest, &manifests[&(repo.clone(), tag.clone())]).unwrap();
            let dir = lookaside_dir.join(format!("{repo}@sha256={}", &digest["sha256:".len()..]));
            std::fs::create_dir_all(&dir).unwrap();
            gpg.skopeo_sign(
                &manifest,
                &format!("{}/{repo}:{tag}", src.host()),
                &key.fpr,
                &dir.join("signature-1"),
            );
        }
        let served = lookaside_dir.clone();
        let lookaside = HttpServer::start(
            Arc::new(move |req: &Request| {
                let rel = req.path.strip_prefix("/sigs/").unwrap_or("");
                match std::fs::read(served.join(rel)) {
                    Ok(b) if !rel.is_empty() && !rel.contains("..") => Reply::signature(b),
                    _ => Reply::not_found(),
                }
            }),
            None,
        );
        let dst_sigs = t.path().join("dst-sigs");
        let registries_d = t.path().join("registries.d");
        std::fs::create_dir_all(&registries_d).unwrap();
        // The legacy keys (sigstore, sigstore-staging), which skopeo 1.9.3 and ferry both read.
        std::fs::write(
            registries_d.join("sync.yaml"),
            format!(
                "docker:\n  {}:\n    sigstore: {}/sigs\n  {}:\n    sigstore: file://{}\n    sigstore-staging: file://{}\n",
                src.host(),
                lookaside.url(),
                dst.host(),
                dst_sigs.display(),
                dst_sigs.display()
            ),
        )
        .unwrap();
        let policy = t.path().join("policy.json");
        World {
            t,
            src,
            dst,
            images,
            lookaside,
            lookaside_dir,
            dst_sigs,
            registries_d,
            policy,
            gpg,
            key,
        }
        .with_policy(r#"{"default":[{"type":"insecureAcceptAnything"}]}"#)
    }

    fn with_policy(self, json: &str) -> World {
        std::fs::write(&self.policy, json).unwrap();
        self
    }

    /// A policy requiring the test key's signature for `repos` of the source.
    fn signed_policy(&self, repos: &[&str]) -> String {
        let scopes: Vec<String> = repos
            .iter()
            .map(|r| {
                format!(
                    r#""{}/{r}":[{{"type":"signedBy","keyType":"GPGKeys","keyPath":"{}"}}]"#,
                    self.src.host(),
                    self.key.public.display()
                )
            })
            .collect();
        format!(
            r#"{{"default":[{{"type":"insecureAcceptAnything"}}],"transports":{{"docker":{{{}}}}}}}"#,
            scopes.join(",")
        )
    }

    fn path(&self, name: &str) -> PathBuf {
        self.t.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `ferry sync` with the world's policy and registries.d, both registries over plain http.
    fn ferry_args(&self, extra: &[&str]) -> Vec<String> {
        sync_args(&self.policy, &self.registries_d, &self.path("store"), extra)
    }

    /// A sync YAML asking for `ns/x:v1` and `ns/y:v1` from the source registry.
    fn xy_yaml(&self) -> PathBuf {
        self.write(
            "sync.yaml",
            &format!(
                "{}:\n  tls-verify: false\n  images:\n    ns/x: [v1]\n    ns/y: [v1]\n",
                self.src.host()
            ),
        )
    }

    fn ferry_sync(&self, extra: &[&str]) -> Run {
        let args = self.ferry_args(extra);
        ferry(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The signature files of a destination image (repo path at the destination).
    fn dst_signatures(&self, repo: &str, digest: &str) -> Vec<Vec<u8>> {
        let dir = self
            .dst_sigs
            .join(format!("{repo}@sha256={}", &digest["sha256:".len()..]));
        (1..)
            .map(|i| dir.join(format!("signature-{i}")))
            .take_while(|p| p.exists())
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    }

    fn src_signatures(&self, repo: &str, digest: &str) -> Vec<Vec<u8>> {
        let dir = self
            .lookaside_dir
            .join(format!("{repo}@sha256={}", &digest["sha256:".len()..]));
        (1..)
            .map(|i| dir.join(format!("signature-{i}")))
            .take_while(|p| p.exists())
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    }
}

/// (status, source, destination) of every image in a report.
fn outcomes(r: &serde_json::Value) -> Vec<(String, String, String)> {
    r["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| {
            (
                i["status"].as_str().unwrap_or_default().to_string(),
                i["source"].as_str().unwrap_or_default().to_string(),
                i["destination"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn yaml_tag_lists_regex_and_semver_copy_what_skopeo_sync_copies_with_signatures() {
    let repos = ["ns/lists", "ns/regex", "ns/semver"];
    let signed = |repo: &str, tag: &str| repo == "ns/lists" || tag == "1.0.0";
    let w = World::new(&repos, &TAGS, 20_000, signed);
    let w = {
        let p = w.signed_policy(&["ns/lists"]);
        w.with_policy(&p)
    };
    let common = format!(
        "{}:\n  tls-verify: false\n  images:\n    ns/lists: [\"1.0.0\", latest]\n  images-by-tag-regex:\n    ns/regex: ^1\\.\n",
        w.src.host()
    );
    let skopeo_yaml = w.write("skopeo.yaml", &common);
    let ferry_yaml = w.write(
        "ferry.yaml",
        &format!("{common}  images-by-semver:\n    ns/semver: \">= 1.1\"\n"),
    );

    let digestfile = w.path("digests");
    let report_file = w.path("report.json");
    let r = w
        .ferry_sync(&[
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--digestfile",
            digestfile.to_str().unwrap(),
            "--report",
            report_file.to_str().unwrap(),
            "--progress",
            "always",
            ferry_yaml.to_str().unwrap(),
            &format!("{}/ferry", w.dst.host()),
        ])
        .ok();
    assert!(
        r.stderr.contains("[6/6]"),
        "one line per image with --progress always, in a pipe too:\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("6 images: 6 copied, 0 skipped"),
        "{}",
        r.stderr
    );

    skopeo(&[
        "sync",
        "--policy",
        w.policy.to_str().unwrap(),
        "--registries.d",
        w.registries_d.to_str().unwrap(),
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--dest-tls-verify=false",
        skopeo_yaml.to_str().unwrap(),
        &format!("{}/skopeo", w.dst.host()),
    ])
    .ok();

    let dst = w.dst.host();
    for repo in ["lists", "regex"] {
        let (ours, theirs) = (
            tags(&dst, &format!("ferry/{repo}")),
            tags(&dst, &format!("skopeo/{repo}")),
        );
        assert!(!ours.is_empty());
        assert_eq!(
            ours, theirs,
            "{repo}: ferry and skopeo sync copy the same tags"
        );
        for tag in &ours {
            let digest = digest_of(&dst, &format!("ferry/{repo}"), tag).expect("copied");
            assert_eq!(
                Some(&digest),
                digest_of(&dst, &format!("skopeo/{repo}"), tag).as_ref()
            );
            assert_eq!(digest, w.images[&(format!("ns/{repo}"), tag.clone())]);
            let ours = w.dst_signatures(&format!("ferry/{repo}"), &digest);
            assert_eq!(
                ours,
                w.dst_signatures(&format!("skopeo/{repo}"), &digest),
                "{repo}:{tag}"
            );
            assert_eq!(
                ours,
                w.src_signatures(&format!("ns/{repo}"), &digest),
                "{repo}:{tag} byte for byte"
            );
        }
    }
    assert_eq!(
        tags(&dst, "ferry/lists"),
        BTreeSet::from(["1.0.0".into(), "latest".into()])
    );
    assert_eq!(
        tags(&dst, "ferry/regex"),
        BTreeSet::from(["1.0.0".into(), "1.1.0".into()])
    );
    // skopeo 1.9.3 has no images-by-semver: its part is checked against what the range means.
    assert_eq!(
        tags(&dst, "ferry/semver"),
        BTreeSet::from(["1.1.0".into(), "2.0.0".into()])
    );
    assert!(tags(&dst, "skopeo/semver").is_empty());

    let rep = report(&report_file);
    assert_eq!(rep["summary"]["copied"], 6);
    assert_eq!(rep["source_kind"], "yaml");
    let lists = rep["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["source"] == format!("docker://{}/ns/lists:1.0.0", w.src.host()))
        .expect("ns/lists:1.0.0 in the report");
    assert_eq!(lists["status"], "copied");
    assert_eq!(lists["verdict"]["accepted"], true);
    assert_eq!(lists["signatures_written"], 1);
    assert_eq!(
        lists["destination"],
        format!("docker://{dst}/ferry/lists:1.0.0")
    );
    let digests = std::fs::read_to_string(&digestfile).unwrap();
    assert_eq!(digests.lines().count(), 6);
    assert!(digests.contains(&format!(
        "{} docker://{dst}/ferry/lists:1.0.0",
        w.images[&("ns/lists".into(), "1.0.0".into())]
    )));

    // --dry-run on the synced state: everything up to date, nothing written.
    let r = w
        .ferry_sync(&[
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--dry-run",
            ferry_yaml.to_str().unwrap(),
            &format!("{dst}/ferry"),
        ])
        .ok();
    assert!(
        r.stderr
            .contains("6 images: 0 would be copied, 6 up to date"),
        "{}",
        r.stderr
    );
}

#[test]
fn keep_going_copies_the_rest_and_reports_the_unreachable_and_the_rejected() {
    let w = World::new(&["ns/good", "ns/locked"], &["v1", "v2"], 5_000, |_, _| {
        false
    });
    let w = {
        let p = w.signed_policy(&["ns/locked"]);
        w.with_policy(&p)
    };
    // Nothing listens on the port of a registry that was just stopped.
    let gone = {
        let r = Registry::start();
        r.host()
    };
    let yaml = w.write(
        "sync.yaml",
        &format!(
            "{src}:\n  tls-verify: false\n  images:\n    ns/good: []\n    ns/locked: [v1]\n{gone}:\n  tls-verify: false\n  images:\n    ns/away: [v1]\n",
            src = w.src.host()
        ),
    );
    let rep_file = w.path("report.json");
    let dest = format!("{}/m", w.dst.host());
    let r = w
        .ferry_sync(&[
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--keep-going",
            "--retry-times",
            "1",
            "--report",
            rep_file.to_str().unwrap(),
            yaml.to_str().unwrap(),
            &dest,
        ])
        .code(3);
    assert!(
        r.stderr
            .contains("4 images: 2 copied, 0 skipped, 1 rejected, 1 failed"),
        "{}",
        r.stderr
    );
    assert_eq!(
        tags(&w.dst.host(), "m/good"),
        BTreeSet::from(["v1".into(), "v2".into()])
    );
    assert!(
        tags(&w.dst.host(), "m/locked").is_empty(),
        "a rejected image leaves nothing"
    );
    let rep = report(&rep_file);
    let by_source: BTreeMap<String, serde_json::Value> = rep["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["source"].as_str().unwrap().to_string(), i.clone()))
        .collect();
    let locked = &by_source[&format!("docker://{}/ns/locked:v1", w.src.host())];
    assert_eq!(locked["status"], "rejected");
    assert_eq!(locked["verdict"]["accepted"], false, "{locked}");
    let away = &by_source[&format!("docker://{gone}/ns/away:v1")];
    assert_eq!(away["status"], "failed");
    let reason = away["reason"].as_str().unwrap();
    assert!(
        reason.contains("connection refused") && reason.contains(&gone),
        "{reason}"
    );

    // Without --keep-going the sync stops at the first failure: what was not started is said.
    let r = w.ferry_sync(&[
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--parallel-images",
        "1",
        "--retry-times",
        "0",
        "--report",
        rep_file.to_str().unwrap(),
        yaml.to_str().unwrap(),
        &format!("{}/stop", w.dst.host()),
    ]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    let rep = report(&rep_file);
    let s = &rep["summary"];
    let (copied, rejected, failed, not_attempted) = (
        s["copied"].as_u64().unwrap(),
        s["rejected"].as_u64().unwrap(),
        s["failed"].as_u64().unwrap(),
        s["not_attempted"].as_u64().unwrap(),
    );
    // One image at a time: whichever fails first, nothing starts after it.
    assert_eq!(rejected + failed, 1, "{}", r.stderr);
    assert!(not_attempted >= 1, "{}", r.stderr);
    assert_eq!(copied + 1 + not_attempted, 4, "{}", r.stderr);
    assert_eq!(r.code, if rejected == 1 { 1 } else { 3 });

    // Only rejections: exit status 1, as ferry copy.
    let only = w.write(
        "locked.yaml",
        &format!(
            "{}:\n  tls-verify: false\n  images:\n    ns/locked: [v1, v2]\n",
            w.src.host()
        ),
    );
    w.ferry_sync(&[
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--keep-going",
        only.to_str().unwrap(),
        &dest,
    ])
    .code(1);

    // A repository whose tags cannot be listed is a failure too, named in the report.
    let listing = w.write(
        "list.yaml",
        &format!("{gone}:\n  tls-verify: false\n  images:\n    ns/away: []\n"),
    );
    w.ferry_sync(&[
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--keep-going",
        "--retry-times",
        "0",
        "--report",
        rep_file.to_str().unwrap(),
        listing.to_str().unwrap(),
        &dest,
    ])
    .code(3);
    let rep = report(&rep_file);
    assert_eq!(
        rep["images"][0]["source"],
        format!("docker://{gone}/ns/away")
    );
    assert!(
        rep["images"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("listing the tags of"),
        "{rep}"
    );
}

/// A proxy in front of the source registry that logs every request with its arrival time;
/// optionally it answers the first manifest request with a 429 (Retry-After: 1).
fn counting_proxy(
    upstream: &str,
    log: Arc<Mutex<Vec<(Instant, String, String)>>>,
    first_manifest_429: bool,
) -> HttpServer {
    let throttled = Arc::new(Mutex::new(!first_manifest_429));
    HttpServer::start(
        Arc::new(move |req: &Request| {
            log.lock()
                .unwrap()
                .push((Instant::now(), req.method.clone(), req.path.clone()));
            if req.path.contains("/manifests/") {
                let mut done = throttled.lock().unwrap();
                if !*done {
                    *done = true;
                    return Reply::too_many_requests(1);
                }
            }
            Reply::forward()
        }),
        Some(upstream.to_string()),
    )
}

#[test]
fn a_no_op_rerun_fetches_no_blob_and_no_lookaside_signature_and_shared_blobs_cross_once() {
    let repos = ["ns/a", "ns/b", "ns/c"];
    let w = World::new(&repos, &["v1", "v2"], 30_000, |_, _| true);
    let log = Arc::new(Mutex::new(Vec::new()));
    let proxy = counting_proxy(&w.src.host(), log.clone(), false);
    // registries.d names the proxy as the source registry's lookaside scope too.
    std::fs::write(
        w.registries_d.join("proxy.yaml"),
        format!(
            "docker:\n  {}:\n    sigstore: {}/sigs\n",
            proxy.host(),
            w.lookaside.url()
        ),
    )
    .unwrap();
    // The signatures name the registry itself; read through the proxy, the policy maps names.
    let policy = format!(
        r#"{{"default":[{{"type":"insecureAcceptAnything"}}],"transports":{{"docker":{{"{proxy}/ns":[{{"type":"signedBy","keyType":"GPGKeys","keyPath":"{key}","signedIdentity":{{"type":"remapIdentity","prefix":"{proxy}","signedPrefix":"{src}"}}}}]}}}}}}"#,
        proxy = proxy.host(),
        src = w.src.host(),
        key = w.key.public.display()
    );
    let w = w.with_policy(&policy);
    let yaml = w.write(
        "sync.yaml",
        &format!("{}:\n  tls-verify: false\n  images:\n    ns/a: []\n    ns/b: [v1, v2]\n  images-by-tag-regex:\n    ns/c: v\n", proxy.host()),
    );
    let dest = format!("{}/m", w.dst.host());
    let args = [
        "--src",
        "yaml",
        "--dest",
        "docker",
        yaml.to_str().unwrap(),
        dest.as_str(),
    ];

    let r = w.ferry_sync(&args).ok();
    assert!(r.stderr.contains("6 images: 6 copied"), "{}", r.stderr);
    // In a pipe the default is quiet: the total, not a line per image.
    assert!(
        !r.stderr.contains("] copied ") && !r.stderr.contains("Syncing"),
        "{}",
        r.stderr
    );
    let first: Vec<_> = log.lock().unwrap().drain(..).collect();
    let blob_gets: Vec<&String> = first
        .iter()
        .filter(|(_, m, p)| m == "GET" && p.contains("/blobs/"))
        .map(|(_, _, p)| p)
        .collect();
    // 6 images: one shared base layer, 6 own layers, 6 configs; each crosses once.
    assert_eq!(blob_gets.len(), 13, "{blob_gets:#?}");
    assert_eq!(
        blob_gets.iter().collect::<BTreeSet<_>>().len(),
        13,
        "no blob fetched twice"
    );
    let sig_hits = w.lookaside.requests().len();
    assert!(sig_hits >= 6, "the first sync read the signatures");
    for ((repo, tag), digest) in &w.images {
        let at = format!("m/{}", repo.trim_start_matches("ns/"));
        assert_eq!(digest_of(&w.dst.host(), &at, tag).as_ref(), Some(digest));
        assert_eq!(
            w.dst_signatures(&at, digest),
            w.src_signatures(repo, digest)
        );
    }

    let rep = w.path("rerun.json");
    let mut rerun = args.to_vec();
    rerun.extend(["--report", rep.to_str().unwrap()]);
    let r = w.ferry_sync(&rerun).ok();
    assert!(
        r.stderr.contains("6 images: 0 copied, 6 skipped"),
        "{}",
        r.stderr
    );
    let second: Vec<_> = log.lock().unwrap().drain(..).collect();
    let kinds: Vec<String> = second
        .iter()
        .map(|(_, m, p)| {
            let kind = ["/manifests/", "/blobs/", "/tags/list"]
                .into_iter()
                .find(|k| p.contains(k))
                .map(|k| k.trim_matches('/'))
                .unwrap_or(p.as_str());
            format!("{m} {kind}")
        })
        .collect();
    assert!(
        !kinds.iter().any(|k| k.contains("blobs")),
        "no blob request: {kinds:#?}"
    );
    let manifest_heads = kinds.iter().filter(|k| *k == "HEAD manifests").count();
    let manifest_gets = kinds.iter().filter(|k| *k == "GET manifests").count();
    assert_eq!(
        (manifest_heads, manifest_gets),
        (6, 0),
        "one HEAD per image: {kinds:#?}"
    );
    assert_eq!(
        w.lookaside.requests().len(),
        sig_hits,
        "no lookaside request on the re-run"
    );
    let rep = report(&rep);
    assert!(outcomes(&rep).iter().all(|(s, _, _)| s == "skipped"));
    assert!(
        rep["images"][0]["verdict"].is_null(),
        "the gate did not run for skipped images"
    );
}

#[test]
fn a_sync_killed_with_sigkill_finishes_on_the_rerun_with_nothing_twice() {
    let repos: Vec<String> = (0..6).map(|i| format!("ns/k{i}")).collect();
    let repo_refs: Vec<&str> = repos.iter().map(String::as_str).collect();
    let w = World::new(&repo_refs, &["v1", "v2"], 20_000, |_, tag| tag == "v1");
    // Blob reads through a proxy that takes its time, so the kill lands mid-sync.
    let proxy = slow_blobs_proxy(&w.src.host(), Duration::from_millis(60));
    std::fs::write(
        w.registries_d.join("proxy.yaml"),
        format!(
            "docker:\n  {}:\n    sigstore: {}/sigs\n",
            proxy.host(),
            w.lookaside.url()
        ),
    )
    .unwrap();
    let yaml = w.write(
        "sync.yaml",
        &format!(
            "{}:\n  tls-verify: false\n  images-by-tag-regex:\n{}",
            proxy.host(),
            repos
                .iter()
                .map(|r| format!("    {r}: .\n"))
                .collect::<String>()
        ),
    );
    let dest = format!("{}/m", w.dst.host());
    let args = w.ferry_args(&[
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--parallel-images",
        "2",
        "--progress",
        "always",
        yaml.to_str().unwrap(),
        &dest,
    ]);
    // SIGKILL once three images are copied: no cleanup, no flush.
    let seen = ferry_killed_after(&args, "] copied ", 3);
    // A request the process had wholly sent before it died may still be served: let it land.
    std::thread::sleep(Duration::from_millis(300));
    let landed: BTreeSet<(String, String)> = w
        .images
        .keys()
        .filter(|(repo, tag)| {
            digest_of(
                &w.dst.host(),
                &format!("m/{}", repo.trim_start_matches("ns/")),
                tag,
            )
            .is_some()
        })
        .cloned()
        .collect();
    assert!(
        landed.len() >= 3 && landed.len() < w.images.len(),
        "killed mid-sync: {landed:?}\n{seen:#?}"
    );
    // Landed whole: the manifest, and the signature for the signed ones (v1).
    let whole: BTreeSet<(String, String)> = landed
        .iter()
        .filter(|k| {
            k.1 != "v1"
                || !w
                    .dst_signatures(
                        &format!("m/{}", k.0.trim_start_matches("ns/")),
                        &w.images[*k],
                    )
                    .is_empty()
        })
        .cloned()
        .collect();

    let rep_file = w.path("report.json");
    let mut rerun: Vec<&str> = args.iter().map(String::as_str).collect();
    rerun.extend(["--report", rep_file.to_str().unwrap()]);
    ferry(&rerun).ok();
    let rep = report(&rep_file);
    let mut skipped = BTreeSet::new();
    for i in rep["images"].as_array().unwrap() {
        let src = i["source"].as_str().unwrap();
        let (repo, tag) = src
            .rsplit_once('/')
            .map(|(_, rt)| rt.split_once(':').unwrap())
            .unwrap();
        let key = (format!("ns/{repo}"), tag.to_string());
        match i["status"].as_str().unwrap() {
            "skipped" => {
                skipped.insert(key);
            }
            "copied" => {}
            other => panic!("{src}: {other}: {i}"),
        }
    }
    // What landed whole before the kill is not copied again; an image whose manifest landed
    // but whose signature the kill cut off is copied again, and only that.
    assert_eq!(
        skipped, whole,
        "what landed whole is skipped, and only that"
    );
    for ((repo, tag), digest) in &w.images {
        let at = format!("m/{}", repo.trim_start_matches("ns/"));
        assert_eq!(
            digest_of(&w.dst.host(), &at, tag).as_ref(),
            Some(digest),
            "{repo}:{tag}"
        );
        let sigs = w.dst_signatures(&at, digest);
        assert_eq!(
            sigs,
            w.src_signatures(repo, digest),
            "{repo}:{tag}: each signature once"
        );
        assert_eq!(sigs.len(), usize::from(tag == "v1"));
    }
}

#[test]
fn four_shards_copy_every_image_exactly_once() {
    let repos: Vec<String> = (0..10).map(|i| format!("ns/s{i}")).collect();
    let repo_refs: Vec<&str> = repos.iter().map(String::as_str).collect();
    let w = World::new(&repo_refs, &["v1", "v2"], 2_000, |_, _| false);
    let yaml = w.write(
        "sync.yaml",
        &format!(
            "{}:\n  tls-verify: false\n  images:\n{}",
            w.src.host(),
            repos
                .iter()
                .map(|r| format!("    {r}: []\n"))
                .collect::<String>()
        ),
    );
    let dest = format!("{}/m", w.dst.host());
    let children: Vec<_> = (0..4)
        .map(|i| {
            let rep = w.path(&format!("shard-{i}.json"));
            // Shard 3 takes its index from the Job's environment, as in a Kubernetes pod.
            let shard = if i == 3 {
                "4".to_string()
            } else {
                format!("{i}/4")
            };
            let args = w.ferry_args(&[
                "--src",
                "yaml",
                "--dest",
                "docker",
                "--shard",
                &shard,
                "--report",
                rep.to_str().unwrap(),
                yaml.to_str().unwrap(),
                &dest,
            ]);
            let child = Command::new(ferry_bin())
                .args(&args)
                .env("JOB_COMPLETION_INDEX", "3")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a shard");
            (rep, child)
        })
        .collect();
    let mut copied: Vec<String> = Vec::new();
    let mut repos_per_shard = Vec::new();
    for (rep, child) in children {
        let out = child.wait_with_output().expect("shard");
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            w.dst
                .log()
                .lines()
                .filter(|l| l.contains("level=error")
                    && !l.contains("manifest unknown")
                    && !l.contains("blob unknown"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let r = report(&rep);
        repos_per_shard.push(r["summary"]["repositories"].as_u64().unwrap());
        assert_eq!(
            r["summary"]["repositories"].as_u64().unwrap()
                + r["summary"]["other_shards_repositories"].as_u64().unwrap(),
            10
        );
        for (status, src, _) in outcomes(&r) {
            assert_eq!(status, "copied", "{src}");
            copied.push(src);
        }
    }
    assert_eq!(copied.len(), 20, "every image once: {copied:#?}");
    assert_eq!(copied.iter().collect::<BTreeSet<_>>().len(), 20);
    assert_eq!(repos_per_shard.iter().sum::<u64>(), 10);
    assert!(
        repos_per_shard.iter().filter(|n| **n > 0).count() >= 2,
        "{repos_per_shard:?}"
    );
    for r in &repos {
        assert_eq!(
            tags(&w.dst.host(), &format!("m/{}", r.trim_start_matches("ns/"))).len(),
            2,
            "{r}"
        );
    }
}

#[test]
fn a_429_pauses_every_image_not_only_its_request() {
    throttled_sync(None);
}

#[test]
fn a_429_that_cannot_be_retried_still_pauses_the_other_images() {
    // --retry-times 0: the image that got the 429 fails, and the registry is still paused
    // for the others, as Retry-After asked.
    throttled_sync(Some("0"));
}

fn throttled_sync(retry_times: Option<&str>) {
    let repos = ["ns/p0", "ns/p1", "ns/p2", "ns/p3"];
    let w = World::new(&repos, &["v1"], 2_000, |_, _| false);
    let log = Arc::new(Mutex::new(Vec::new()));
    let proxy = counting_proxy(&w.src.host(), log.clone(), true);
    let yaml = w.write(
        "sync.yaml",
        &format!(
            "{}:\n  tls-verify: false\n  images:\n{}",
            proxy.host(),
            repos
                .iter()
                .map(|r| format!("    {r}: [v1]\n"))
                .collect::<String>()
        ),
    );
    let rep_file = w.path("report.json");
    let dest = format!("{}/m", w.dst.host());
    let mut args = vec![
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--parallel-images",
        "4",
        "--report",
        rep_file.to_str().unwrap(),
    ];
    if let Some(n) = retry_times {
        args.extend(["--retry-times", n, "--keep-going"]);
    }
    args.extend([yaml.to_str().unwrap(), dest.as_str()]);
    let r = w.ferry_sync(&args);
    assert_eq!(
        r.code,
        if retry_times.is_some() { 3 } else { 0 },
        "{}",
        r.stderr
    );
    let log = log.lock().unwrap();
    let throttled: Vec<_> = log
        .iter()
        .filter(|(_, _, p)| p.contains("/manifests/"))
        .collect();
    if retry_times.is_none() {
        assert!(
            throttled.len() >= 5,
            "the throttled request was retried: {throttled:#?}"
        );
    }
    // One image got the 429 (Retry-After: 1); the others had each at least one more request
    // to make, which waited for the registry's pause: no image finished within the second.
    // Without the registry-wide pause the other three finish in milliseconds.
    let rep = report(&rep_file);
    let mut copied = 0;
    for i in rep["images"].as_array().unwrap() {
        if i["status"] == "failed" && retry_times.is_some() {
            assert!(
                i["reason"].as_str().unwrap_or_default().contains("429"),
                "{i:#}"
            );
            continue;
        }
        assert_eq!(i["status"], "copied", "{rep:#}");
        copied += 1;
        let secs = i["seconds"].as_f64().unwrap();
        assert!(
            secs >= 0.95,
            "{} finished {secs} s after its start: {rep:#}",
            i["source"]
        );
    }
    assert_eq!(copied, if retry_times.is_some() { 3 } else { 4 }, "{rep:#}");
}

/// A byte pipe on 127.0.0.1 in front of `upstream` that counts the TCP connections it accepts
/// (HTTP keep-alive passes through, so a client that pools its connections opens few).
fn connection_counter(upstream: String) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let host = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut c1, mut s1) = (client, server);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c1, &mut s1);
                let _ = s1.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (host, accepted)
}

/// The most intervals `[t, t + window]` (one per arrival) that overlap at any instant.
fn most_at_once(arrivals: &[Instant], window: Duration) -> usize {
    let mut t: Vec<Instant> = arrivals.to_vec();
    t.sort();
    // 2 ms short of the window: an answer sent exactly at its end and the next request's
    // arrival are not counted as overlapping on a timer's rounding.
    let w = window - Duration::from_millis(2);
    (0..t.len())
        .map(|i| t[..=i].iter().filter(|a| t[i] - **a < w).count())
        .max()
        .unwrap_or(0)
}

/// The source registry behind a proxy that wants bearer tokens (its token service asks for the
/// YAML's `credentials`) and answers every registry request 40 ms late; what `--parallel-blobs`
/// and `--registry-requests` promise is measured at the proxy, and the token service counts
/// what it issues. A second, uncapped run shows the measurement sees more when nothing caps it.
#[test]
fn images_share_tokens_and_connections_and_the_caps_hold_across_images() {
    let repos = ["ns/s0", "ns/s1", "ns/s2", "ns/s3"];
    let w = World::new(&repos, &["v1", "v2"], 20_000, |_, _| false);
    let delay = Duration::from_millis(40);
    let arrivals: Arc<Mutex<Vec<(Instant, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let issued: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let proxy_host: Arc<std::sync::OnceLock<String>> = Arc::new(std::sync::OnceLock::new());
    let (log, tokens, me) = (arrivals.clone(), issued.clone(), proxy_host.clone());
    // "robot:pw" in base64.
    let basic = "Basic cm9ib3Q6cHc=";
    let proxy = HttpServer::start(
        Arc::new(move |req: &Request| {
            if req.path.starts_with("/token") {
                if req.header("authorization") != Some(basic) {
                    return Reply::status(401);
                }
                let mut t = tokens.lock().unwrap();
                let scopes: Vec<&str> = req
                    .path
                    .split(['?', '&'])
                    .filter(|p| p.starts_with("scope="))
                    .collect();
                t.push(scopes.join(" "));
                return Reply::ok(
                    "application/json",
                    format!(r#"{{"token":"tok{}","expires_in":300}}"#, t.len()),
                );
            }
            if !req
                .header("authorization")
                .is_some_and(|a| a.starts_with("Bearer tok"))
            {
                let realm = format!("http://{}/token", me.get().unwrap());
                return Reply::Bytes {
                    status: 401,
                    headers: vec![(
                        "WWW-Authenticate".into(),
                        format!(r#"Bearer realm="{realm}",service="ferry-test""#),
                    )],
                    body: br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_vec(),
                };
            }
            log.lock()
                .unwrap()
                .push((Instant::now(), format!("{} {}", req.method, req.path)));
            Reply::Delayed(delay, Box::new(Reply::forward()))
        }),
        Some(w.src.host()),
    );
    proxy_host.set(proxy.host()).unwrap();
    let yaml = w.write(
        "sync.yaml",
        &format!(
            "{}:\n  tls-verify: false\n  credentials:\n    username: robot\n    password: pw\n  images:\n{}",
            proxy.host(),
            repos
                .iter()
                .map(|r| format!("    {r}: [v1, v2]\n"))
                .collect::<String>()
        ),
    );
    let (dst_host, dst_connections) = connection_counter(w.dst.host());
    let dest = format!("{dst_host}/m");
    let caps = [
        "--parallel-images",
        "4",
        "--parallel-blobs",
        "2",
        "--registry-requests",
        "3",
    ];
    let mut args = vec!["--src", "yaml", "--dest", "docker"];
    args.extend(caps);
    args.extend([yaml.to_str().unwrap(), dest.as_str()]);
    let r = w.ferry_sync(&args).ok();
    assert!(r.stderr.contains("8 images: 8 copied"), "{}", r.stderr);
    for ((repo, tag), digest) in &w.images {
        let at = format!("m/{}", repo.trim_start_matches("ns/"));
        assert_eq!(digest_of(&w.dst.host(), &at, tag).as_ref(), Some(digest));
    }

    let seen: Vec<(Instant, String)> = arrivals.lock().unwrap().drain(..).collect();
    let all: Vec<Instant> = seen.iter().map(|(t, _)| *t).collect();
    let blobs: Vec<Instant> = seen
        .iter()
        .filter(|(_, r)| r.starts_with("GET ") && r.contains("/blobs/"))
        .map(|(t, _)| *t)
        .collect();
    let (capped_requests, capped_blobs) = (most_at_once(&all, delay), most_at_once(&blobs, delay));
    assert!(
        capped_requests <= 3,
        "--registry-requests 3, yet {capped_requests} requests were at the source at once"
    );
    assert!(
        capped_blobs <= 2,
        "--parallel-blobs 2, yet {capped_blobs} blobs were fetched at once"
    );
    // Four images ran at once, so the caps were what held them back.
    assert!(capped_requests >= 2, "{capped_requests}");
    assert!(!blobs.is_empty());

    // One token per repository, shared by both tags of it and by every request of them: a
    // token cache per image would fetch one per image at least.
    let tokens: Vec<String> = issued.lock().unwrap().drain(..).collect();
    let distinct: BTreeSet<&String> = tokens.iter().collect();
    assert_eq!(
        distinct.len(),
        tokens.len(),
        "a token fetched twice: {tokens:#?}"
    );
    assert!(
        tokens.len() <= repos.len(),
        "more tokens than repositories: {tokens:#?}"
    );
    // One connection pool for the destination registry, shared by all eight images (a pool
    // per image opens one connection per image at least). The pool holds what was in flight
    // at once: the 3 requests the cap lets through and the bodies still being read.
    let opened = dst_connections.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        opened < w.images.len(),
        "{opened} connections to the destination for {} images",
        w.images.len()
    );

    // The same sync without the caps, to a registry that has none of it yet: the proxy sees more
    // at once, so the bounds above are the caps' doing and not the test's.
    let other = support::registry::Registry::start();
    let dest = format!("{}/m", other.host());
    let r = w
        .ferry_sync(&[
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--parallel-images",
            "4",
            "--parallel-blobs",
            "16",
            "--registry-requests",
            "0",
            yaml.to_str().unwrap(),
            &dest,
        ])
        .ok();
    assert!(r.stderr.contains("8 images: 8 copied"), "{}", r.stderr);
    let seen: Vec<(Instant, String)> = arrivals.lock().unwrap().drain(..).collect();
    let all: Vec<Instant> = seen.iter().map(|(t, _)| *t).collect();
    let blobs: Vec<Instant> = seen
        .iter()
        .filter(|(_, r)| r.starts_with("GET ") && r.contains("/blobs/"))
        .map(|(t, _)| *t)
        .collect();
    let (free_requests, free_blobs) = (most_at_once(&all, delay), most_at_once(&blobs, delay));
    assert!(
        free_requests > 3 && free_blobs > 2,
        "uncapped: {free_requests} requests and {free_blobs} blobs at once (capped: {capped_requests}, {capped_blobs})"
    );
}

#[test]
fn the_kubernetes_example_parses_with_ferrys_own_readers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/sync-job.yaml");
    let text = std::fs::read_to_string(&path).expect("deploy/kubernetes/sync-job.yaml");
    let docs: Vec<serde_json::Value> = text
        .split("\n---\n")
        .filter_map(|d| serde_yaml_ng::from_str::<Option<serde_json::Value>>(d).expect("YAML"))
        .collect();
    let of = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("a {kind}"))
    };
    let data = &of("ConfigMap")["data"];
    let config = ferry::sync::SyncConfig::from_yaml(
        data["mirror.yaml"].as_str().expect("mirror.yaml"),
        Path::new("mirror.yaml"),
    )
    .expect("the sync YAML");
    assert!(
        !config.registries.is_empty() && config.warnings.is_empty(),
        "{:?}",
        config.warnings
    );
    ferry::Policy::from_bytes(
        data["policy.json"]
            .as_str()
            .expect("policy.json")
            .as_bytes(),
        "policy.json",
    )
    .expect("the policy");
    ferry::internal::config::registries_d::RegistriesConfig::from_yaml(
        data["registries.yaml"].as_str().expect("registries.yaml"),
        Path::new("registries.yaml"),
    )
    .expect("the registries.d file");
    let job = of("Job");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    let completions = job["spec"]["completions"].as_u64().expect("completions");
    let args: Vec<&str> = job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(args[0], "sync");
    // Each shard prunes the repositories it owns, and every flag is one ferry sync knows.
    assert!(args.contains(&"--prune"), "{args:?}");
    let help = ferry(&["sync", "--help"]).ok().stdout;
    for a in args.iter().filter(|a| a.starts_with("--")) {
        let flag = a.split('=').next().unwrap();
        assert!(help.contains(flag), "{flag} in ferry sync --help");
    }
    let shard = args
        .iter()
        .find_map(|a| a.strip_prefix("--shard="))
        .expect("--shard");
    assert_eq!(
        shard.parse::<u64>().ok(),
        Some(completions),
        "--shard COUNT = completions"
    );
    // The files the args name are the ConfigMap's keys, mounted where the args say.
    for file in [
        "/etc/ferry/mirror.yaml",
        "--policy=/etc/ferry/policy.json",
        "--registries.d=/etc/ferry/registries.d",
    ] {
        assert!(args.contains(&file), "{file} in {args:?}");
    }
}

#[test]
fn each_image_is_signed_for_its_own_destination_and_a_signed_mirror_re_runs_as_a_no_op() {
    let w = World::new(&["ns/x", "ns/y"], &["v1"], 3_000, |_, _| false);
    let yaml = w.xy_yaml();
    let dest = format!("{}/signed", w.dst.host());
    let args = [
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--signatures",
        "remove-signatures",
        "--sign-by",
        &w.key.fpr,
        "--sign-key",
        w.key.secret.to_str().unwrap(),
        yaml.to_str().unwrap(),
        &dest,
    ];
    let r = w.ferry_sync(&args).ok();
    assert!(r.stderr.contains("2 images: 2 copied"), "{}", r.stderr);
    for repo in ["x", "y"] {
        let digest = w.images[&(format!("ns/{repo}"), "v1".to_string())].clone();
        let sigs = w.dst_signatures(&format!("signed/{repo}"), &digest);
        assert_eq!(sigs.len(), 1, "one signature, ferry's");
        let (sig, manifest) = (w.path("sig"), w.path("manifest.json"));
        std::fs::write(&sig, &sigs[0]).unwrap();
        let (_, _, body) = http(
            "GET",
            &w.dst.host(),
            &format!("/v2/signed/{repo}/manifests/v1"),
            Some(ACCEPT),
        );
        std::fs::write(&manifest, body).unwrap();
        // skopeo agrees the signature is for this image under its own destination name.
        let identity = format!("{}/signed/{repo}:v1", w.dst.host());
        let v = w
            .gpg
            .skopeo_verify(&manifest, &identity, &w.key.fpr, &sig)
            .ok();
        assert!(v.stdout.contains(&digest), "{}", v.stdout);
    }
    let r = w.ferry_sync(&args).ok();
    assert!(
        r.stderr.contains("2 images: 0 copied, 2 skipped"),
        "{}",
        r.stderr
    );
}

#[test]
fn sync_signs_each_image_with_a_sigstore_key_for_its_own_destination() {
    let w = World::new(&["ns/x", "ns/y"], &["v1"], 3_000, |_, _| false);
    let keys = w.path("keys");
    std::fs::create_dir(&keys).unwrap();
    // A key the independent generator made and encrypted, as cosign would.
    let key = support::sigstore::keygen(&keys, "mirror", "ecdsa-p256");
    let pass = w.write("pass", &format!("{}\n", key.password));
    let yaml = w.xy_yaml();
    let dest = format!("{}/cosigned", w.dst.host());
    // Without use-sigstore-attachments for the destination, the signature has nowhere to go.
    let args = |yaml: &Path| {
        vec![
            "--src".to_string(),
            "yaml".into(),
            "--dest".into(),
            "docker".into(),
            "--signatures".into(),
            "remove-signatures".into(),
            "--sign-by-sigstore-private-key".into(),
            key.encrypted.display().to_string(),
            "--sign-passphrase-file".into(),
            pass.display().to_string(),
            yaml.display().to_string(),
            dest.clone(),
        ]
    };
    let refused = w
        .ferry_sync(&args(&yaml).iter().map(String::as_str).collect::<Vec<_>>())
        .code(3);
    assert!(
        refused.stderr.contains("use-sigstore-attachments"),
        "{}",
        refused.stderr
    );
    std::fs::write(
        w.registries_d.join("cosigned.yaml"),
        format!("docker:\n  {dest}:\n    use-sigstore-attachments: true\n"),
    )
    .unwrap();
    let r = w
        .ferry_sync(&args(&yaml).iter().map(String::as_str).collect::<Vec<_>>())
        .ok();
    assert!(r.stderr.contains("2 images: 2 copied"), "{}", r.stderr);
    for repo in ["x", "y"] {
        let digest = w.images[&(format!("ns/{repo}"), "v1".to_string())].clone();
        // The generator reads the .sig attachment from the registry and checks each layer
        // with the public key, then the payload names this image under its new name.
        let fetched = w.path(&format!("fetched-{repo}"));
        support::sigstore::sgen(&[
            "fetch-attachment",
            "--registry",
            &format!("http://{}", w.dst.host()),
            "--repo",
            &format!("cosigned/{repo}"),
            "--digest",
            &digest,
            "--out",
            fetched.to_str().unwrap(),
            "--pub",
            key.public.to_str().unwrap(),
        ])
        .ok();
        support::sigstore::sgen(&[
            "read-sigfile",
            "--in",
            fetched.join("signature-1").to_str().unwrap(),
            "--pub",
            key.public.to_str().unwrap(),
            "--check-payload",
            "--expect-digest",
            &digest,
            "--expect-reference",
            &format!("{}/cosigned/{repo}:v1", w.dst.host()),
        ])
        .ok();
        assert!(
            !fetched.join("signature-2").exists(),
            "one signature, ferry's"
        );
    }
    // A re-run finds the attachments at the destination: nothing to do, nothing signed twice.
    let r = w
        .ferry_sync(&args(&yaml).iter().map(String::as_str).collect::<Vec<_>>())
        .ok();
    assert!(
        r.stderr.contains("2 images: 0 copied, 2 skipped"),
        "{}",
        r.stderr
    );
}

#[test]
fn directories_oci_layouts_and_the_store_as_skopeo_names_them_and_incrementally() {
    let w = World::new(&["ns/app", "ns/tool"], &["v1", "v2"], 3_000, |_, _| false);
    let src = w.src.host();
    // docker -> dir, one repository: DESTINATION/app:v1, as skopeo.
    let dirs = w.path("dirs");
    w.ferry_sync(&[
        "--src",
        "docker",
        "--dest",
        "dir",
        &format!("{src}/ns/app"),
        dirs.to_str().unwrap(),
    ])
    .ok();
    let names: BTreeSet<String> = std::fs::read_dir(&dirs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, BTreeSet::from(["app:v1".into(), "app:v2".into()]));
    assert_eq!(
        sha256(&std::fs::read(dirs.join("app:v1/manifest.json")).unwrap()),
        w.images[&("ns/app".into(), "v1".into())]
    );
    // One image by tag, --scoped: the whole source name under DESTINATION.
    let scoped = w.path("scoped");
    w.ferry_sync(&[
        "--src",
        "docker",
        "--dest",
        "dir",
        "--scoped",
        &format!("{src}/ns/tool:v2"),
        scoped.to_str().unwrap(),
    ])
    .ok();
    assert!(
        scoped
            .join(format!("{src}/ns/tool:v2/manifest.json"))
            .is_file()
    );

    // dir -> oci: one layout per repository, the tag as the image's name; then a no-op.
    let layouts = w.path("layouts");
    let rep = w.path("oci.json");
    let oci = [
        "--src",
        "dir",
        "--dest",
        "oci",
        "--report",
        rep.to_str().unwrap(),
        dirs.to_str().unwrap(),
        layouts.to_str().unwrap(),
    ];
    w.ferry_sync(&oci).ok();
    let index = std::fs::read_to_string(layouts.join("app/index.json")).unwrap();
    assert!(
        index.contains("\"v1\"") && index.contains("\"v2\""),
        "{index}"
    );
    w.ferry_sync(&oci).ok();
    assert!(
        outcomes(&report(&rep))
            .iter()
            .all(|(s, _, _)| s == "skipped")
    );
    // dir -> dir is refused as skopeo refuses it: bad usage.
    w.ferry_sync(&[
        "--src",
        "dir",
        "--dest",
        "dir",
        dirs.to_str().unwrap(),
        w.path("x").to_str().unwrap(),
    ])
    .code(2);

    // docker -> store under a name prefix; then a no-op.
    let rep = w.path("store.json");
    let store = [
        "--src",
        "docker",
        "--dest",
        "store",
        "--report",
        rep.to_str().unwrap(),
        &format!("{src}/ns/tool"),
        "mirror.example/m",
    ];
    w.ferry_sync(&store).ok();
    let r = report(&rep);
    assert_eq!(r["summary"]["copied"], 2, "{r:#}");
    let index = std::fs::read_to_string(w.path("store/index.json")).unwrap();
    assert!(index.contains("mirror.example/m/tool:v2"), "{index}");
    assert_eq!(
        r["images"][0]["destination"],
        "store:mirror.example/m/tool:v1"
    );
    w.ferry_sync(&store).ok();
    assert!(
        outcomes(&report(&rep))
            .iter()
            .all(|(s, _, _)| s == "skipped")
    );
}

/// A directory tree to a registry (skopeo sync's `--src dir --dest docker`), with the flags a
/// mirror job passes: `--all` over a list, `--append-suffix`, `--preserve-digests`, and the
/// signature modes applied image by image. The bundled demo image has a trusted signature, an
/// HTML page in slot 2 and an untrusted signature: copy-all refuses it, sufficient-subset
/// mirrors it with the two readable signatures and a warning for slot 2.
#[test]
fn a_directory_tree_to_a_registry_with_all_a_suffix_and_each_signature_mode() {
    // (World needs one image at the source registry; this test reads from a directory tree.)
    let w = World::new(&["ns/unused"], &["v1"], 1_000, |_, _| false);
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/demo");
    let tree = w.path("tree");
    std::fs::create_dir_all(tree.join("hello:1")).unwrap();
    for e in std::fs::read_dir(demo.join("hello-dir")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tree.join("hello:1").join(e.file_name())).unwrap();
    }
    // A two-platform list, written into the tree by ferry itself.
    let layout = w.path("layout");
    let (list, list_digest, instances) = make_oci_index(&layout, "v1", 77, &["amd64", "arm64"]);
    let insecure = insecure_policy(w.t.path());
    ferry(&[
        "copy",
        "-q",
        "--all",
        "--policy",
        insecure.to_str().unwrap(),
        &format!("oci:{}:v1", layout.display()),
        &format!("dir:{}", tree.join("multi:v1").display()),
    ])
    .ok();
    assert_eq!(
        std::fs::read(tree.join("multi:v1/manifest.json")).unwrap(),
        list
    );
    // The demo's key for the demo image's directory; anything else is accepted.
    let policy = format!(
        r#"{{"default":[{{"type":"insecureAcceptAnything"}}],"transports":{{"dir":{{"{dir}":[{{"type":"signedBy","keyType":"GPGKeys","keyPath":"{key}","signedIdentity":{{"type":"exactReference","dockerReference":"registry.demo.ferry.invalid/hello:1"}}}}]}}}}}}"#,
        dir = tree.join("hello:1").display(),
        key = demo.join("keys/release.asc").display()
    );
    let w = w.with_policy(&policy);
    let dest = format!("{}/m", w.dst.host());
    let rep_file = w.path("report.json");
    let sync = |mode: &str| {
        w.ferry_sync(&[
            "--src",
            "dir",
            "--dest",
            "docker",
            "--all",
            "--append-suffix",
            "-mirror",
            "--preserve-digests",
            "--keep-going",
            "--signatures",
            mode,
            "--report",
            rep_file.to_str().unwrap(),
            tree.to_str().unwrap(),
            &dest,
        ])
    };
    let by_source = |rep: &serde_json::Value, name: &str| {
        rep["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["source"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name} in {rep:#}"))
            .clone()
    };

    // copy-all: the demo image is refused (slot 2 cannot be read), the list lands whole.
    let r = sync("copy-all");
    assert_eq!(r.code, 1, "a rejection is exit status 1: {}", r.stderr);
    let rep = report(&rep_file);
    let hello = by_source(&rep, "hello:1");
    assert_eq!(hello["status"], "rejected", "{hello:#}");
    assert_eq!(
        hello["destination"],
        format!("docker://{dest}/hello:1-mirror")
    );
    assert!(tags(&w.dst.host(), "m/hello").is_empty(), "nothing written");
    let multi = by_source(&rep, "multi:v1");
    assert_eq!(multi["status"], "copied", "{multi:#}");
    assert_eq!(
        tags(&w.dst.host(), "m/multi"),
        BTreeSet::from(["v1-mirror".to_string()])
    );
    assert_eq!(
        digest_of(&w.dst.host(), "m/multi", "v1-mirror"),
        Some(list_digest.clone()),
        "--preserve-digests: the list's digest is the source's"
    );
    for img in &instances {
        let (status, _, body) = http(
            "GET",
            &w.dst.host(),
            &format!("/v2/m/multi/manifests/{}", img.digest),
            Some(ACCEPT),
        );
        assert_eq!(status, 200, "--all copied the {} instance", img.digest);
        assert_eq!(body, img.manifest);
    }

    // sufficient-subset: the demo image lands with signatures 1 and 3, slot 2 a warning; the
    // list is up to date and skipped.
    sync("sufficient-subset").ok();
    let rep = report(&rep_file);
    let hello = by_source(&rep, "hello:1");
    assert_eq!(hello["status"], "copied", "{hello:#}");
    assert_eq!(hello["signatures_written"], 2, "{hello:#}");
    let warnings = hello["warnings"].to_string();
    assert!(warnings.contains("signature-2"), "{hello:#}");
    assert_eq!(by_source(&rep, "multi:v1")["status"], "skipped");
    let digest = sha256(&std::fs::read(tree.join("hello:1/manifest.json")).unwrap());
    assert_eq!(
        digest_of(&w.dst.host(), "m/hello", "1-mirror").as_ref(),
        Some(&digest)
    );
    let src_sigs = |n: u32| std::fs::read(tree.join(format!("hello:1/signature-{n}"))).unwrap();
    assert_eq!(
        w.dst_signatures("m/hello", &digest),
        vec![src_sigs(1), src_sigs(3)],
        "the readable signatures, byte for byte"
    );
}

#[test]
fn a_sigstore_signed_image_in_an_oci_layout_is_up_to_date_on_a_re_run() {
    // An OCI layout keeps sigstore signatures (the `.sig` attachment in index.json): a re-run
    // finds them there and skips the image, instead of copying it again every time.
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 311, 2, 2000);
    let tree = t.path().join("tree");
    ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        &format!("oci:{}:v1", src.display()),
        &format!("dir:{}", tree.join("app:v1").display()),
    ])
    .ok();
    let keys = t.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let key = support::sigstore::keygen(&keys, "k", "ecdsa-p256");
    let (payload, sig) =
        support::sigstore::sign(&keys, "one", &key, &image.digest, "example.com/app:v1");
    support::sigstore::sigfile(&payload, &sig, &tree.join("app:v1/signature-1"), &[]);

    let layouts = t.path().join("layouts");
    let rep = t.path().join("report.json");
    // The status of the one image, from the report of a sync of the tree into the layouts.
    let sync = || {
        let store = t.path().join("store");
        let paths = [&policy, &store, &rep, &tree, &layouts].map(|p| p.to_str().unwrap());
        let [policy, store, rep_s, tree, layouts] = paths;
        ferry(&[
            "sync", "--policy", policy, "--store", store, "--src", "dir", "--dest", "oci",
            "--report", rep_s, tree, layouts,
        ])
        .ok();
        outcomes(&report(&rep))
            .into_iter()
            .map(|(status, _, _)| status)
            .collect::<Vec<_>>()
    };
    assert_eq!(sync(), ["copied"]);
    let index = std::fs::read_to_string(layouts.join("app/index.json")).unwrap();
    assert!(index.contains(".sig"), "the signature is kept: {index}");
    assert_eq!(sync(), ["skipped"]);
}
