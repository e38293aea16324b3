//! `ferry sync` as a true mirror, against real distribution registries on 127.0.0.1: `--prune`
//! deletes what the source withdrew with its simple signatures (a `file://` lookaside), its
//! sigstore attachment and its referrers, and nothing of the images that stay; a source listing
//! that breaks off deletes nothing in its repository, nor does a copy that fails late there
//! while other repositories are pruned; what a prune reads ahead never outweighs what a copy
//! wrote meanwhile; `dir:`, `oci:` and store destinations
//! prune too; `--include-tag-regex`/`--exclude-tag-regex`; `--immutable-tags` reads nothing of
//! the source for a tag already mirrored; and a sync into `dir:` and `oci:` killed with SIGKILL
//! is finished by the next run, which also repairs an image left half-written.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use support::distribution::{ACCEPT, digest_of, report, request, slow_blobs_proxy, tags};
use support::gpg::{Gpg, Key};
use support::http::{HttpServer, Reply, Request};
use support::registry::Registry;
use support::sigstore::{sgen, sign};
use support::*;

/// The image tags of a repository: without cosign's `sha256-…` tags.
fn image_tags(host: &str, repo: &str) -> BTreeSet<String> {
    tags(host, repo)
        .into_iter()
        .filter(|t| !t.starts_with("sha256-"))
        .collect()
}

/// A manifest's bytes and media type.
fn manifest(host: &str, repo: &str, reference: &str) -> (Vec<u8>, String) {
    let (status, headers, body) = request(
        "GET",
        host,
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Accept", ACCEPT)],
        b"",
    );
    assert_eq!(status, 200, "{repo}:{reference}");
    (body, headers["content-type"].clone())
}

/// Tags `reference`'s manifest as `tag` too.
fn retag(host: &str, repo: &str, reference: &str, tag: &str) {
    let (bytes, media_type) = manifest(host, repo, reference);
    let (status, _, body) = request(
        "PUT",
        host,
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Content-Type", &media_type)],
        &bytes,
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
}

/// Deletes a manifest by digest: a tag withdrawn at the source.
fn withdraw(host: &str, repo: &str, digest: &str) {
    let (status, _, body) = request(
        "DELETE",
        host,
        &format!("/v2/{repo}/manifests/{digest}"),
        &[],
        b"",
    );
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
}

/// A string field of a report entry.
fn text(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// (destination, status) of every pruned tag in a report.
fn pruned(r: &serde_json::Value) -> BTreeMap<String, String> {
    let list = r["pruned"].as_array().expect("pruned");
    list.iter()
        .map(|p| (text(&p["destination"]), text(&p["status"])))
        .collect()
}

/// (status, immutable) of every image in a report, by source.
fn statuses(r: &serde_json::Value) -> BTreeMap<String, (String, bool)> {
    let list = r["images"].as_array().expect("images");
    let immutable = |i: &serde_json::Value| i["immutable"].as_bool().unwrap_or(false);
    list.iter()
        .map(|i| (text(&i["source"]), (text(&i["status"]), immutable(i))))
        .collect()
}

/// A source and a destination registry, images pushed to the source by ferry from OCI
/// layouts, and registries.d keeping simple signatures in a `file://` lookaside of each and
/// sigstore signatures as attachments.
struct World {
    t: tempfile::TempDir,
    src: Registry,
    dst: Registry,
    src_sigs: PathBuf,
    dst_sigs: PathBuf,
    registries_d: PathBuf,
    policy: PathBuf,
    /// (repo, tag) → manifest digest at the source.
    images: BTreeMap<(String, String), String>,
}

impl World {
    fn new(repos: &[&str], tags: &[&str]) -> World {
        let t = tempfile::tempdir().expect("tempdir");
        let (src, dst) = (Registry::start(), Registry::start());
        let (src_sigs, dst_sigs) = (t.path().join("src-sigs"), t.path().join("dst-sigs"));
        // Each side keeps simple signatures in a file:// lookaside, sigstore ones as attachments.
        let mut yaml = String::from("docker:\n");
        for (host, sigs) in [(src.host(), &src_sigs), (dst.host(), &dst_sigs)] {
            let url = format!("file://{}", sigs.display());
            yaml += &format!("  {host}:\n    lookaside: {url}\n    lookaside-staging: {url}\n");
            yaml += "    use-sigstore-attachments: true\n";
        }
        let registries_d = t.path().join("registries.d");
        std::fs::create_dir_all(&registries_d).unwrap();
        std::fs::write(registries_d.join("mirror.yaml"), yaml).unwrap();
        let policy = insecure_policy(t.path());
        let mut w = World {
            t,
            src,
            dst,
            src_sigs,
            dst_sigs,
            registries_d,
            policy,
            images: BTreeMap::new(),
        };
        let mut seed = 1;
        for repo in repos {
            for tag in tags {
                seed += 1;
                w.push(repo, tag, seed);
            }
        }
        w
    }

    /// Pushes a new image (a shared base layer and one of its own) as `repo:tag`.
    fn push(&mut self, repo: &str, tag: &str, seed: u64) -> String {
        let layout = self.t.path().join(format!("layout-{seed}"));
        let image = build_image(
            "amd64",
            vec![pseudo_random(7, 3000), pseudo_random(seed, 2000)],
        );
        write_oci_image(&layout, tag, &image);
        ferry(&[
            "copy",
            "-q",
            "--policy",
            self.policy.to_str().unwrap(),
            "--dest-tls-verify=false",
            &format!("oci:{}:{tag}", layout.display()),
            &format!("docker://{}/{repo}:{tag}", self.src.host()),
        ])
        .ok();
        self.images
            .insert((repo.to_string(), tag.to_string()), image.digest.clone());
        image.digest
    }

    fn path(&self, name: &str) -> PathBuf {
        self.t.path().join(name)
    }

    /// `ferry sync FLAGS REST…` (FLAGS split at spaces) with the world's policy and
    /// registries.d, both registries over plain http.
    fn sync(&self, flags: &str, rest: &[&str]) -> Run {
        let extra: Vec<&str> = flags
            .split_whitespace()
            .chain(rest.iter().copied())
            .collect();
        let args = sync_args(
            &self.policy,
            &self.registries_d,
            &self.path("store"),
            &extra,
        );
        ferry(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A simple signature (real gpg through skopeo) of `repo:tag` in the source's lookaside.
    fn sign_simple(&self, gpg: &Gpg, key: &Key, repo: &str, tag: &str) {
        let digest = &self.images[&(repo.to_string(), tag.to_string())];
        let (bytes, _) = manifest(&self.src.host(), repo, tag);
        let m = self.path("m.json");
        std::fs::write(&m, bytes).unwrap();
        let dir = self
            .src_sigs
            .join(format!("{repo}@sha256={}", &digest["sha256:".len()..]));
        std::fs::create_dir_all(&dir).unwrap();
        gpg.skopeo_sign(
            &m,
            &format!("{}/{repo}:{tag}", self.src.host()),
            &key.fpr,
            &dir.join("signature-1"),
        );
    }

    /// A cosign signature of `repo:tag`, pushed as the `sha256-HEX.sig` attachment at the source.
    fn sign_sigstore(&self, key: &support::sigstore::GenKey, repo: &str, tag: &str) {
        let digest = &self.images[&(repo.to_string(), tag.to_string())];
        let dir = self.path("cosign");
        std::fs::create_dir_all(&dir).unwrap();
        let (payload, sig) = sign(
            &dir,
            &format!("{}-{tag}", repo.replace('/', "-")),
            key,
            digest,
            &format!("{}/{repo}:{tag}", self.src.host()),
        );
        sgen(&[
            "attach",
            "--registry",
            &format!("http://{}", self.src.host()),
            "--repo",
            repo,
            "--digest",
            digest,
            "--sig",
            &format!("{}:{}", payload.display(), sig.display()),
        ])
        .ok();
    }

    /// An SBOM attached to `repo:tag` at the source as an OCI 1.1 referrer (the fallback tag,
    /// distribution 2.8 having no referrers API); its digest.
    fn attach_sbom(&self, repo: &str, tag: &str) -> String {
        let digest = &self.images[&(repo.to_string(), tag.to_string())];
        let file = self.path(&format!("sbom-{tag}.json"));
        std::fs::write(
            &file,
            format!(r#"{{"spdxVersion":"SPDX-2.3","name":"{repo}:{tag}"}}"#),
        )
        .unwrap();
        sgen(&[
            "push-referrer",
            "--registry",
            &self.src.host(),
            "--repo",
            repo,
            "--subject-digest",
            digest,
            "--file",
            file.to_str().unwrap(),
            "--artifact-type",
            "application/spdx+json",
            "--created",
            "2026-01-02T03:04:05Z",
        ])
        .ok()
        .stdout
        .trim()
        .to_string()
    }

    /// The simple signature files a registry's lookaside keeps for `repo@digest`.
    fn lookaside(&self, sigs: &Path, repo: &str, digest: &str) -> Vec<Vec<u8>> {
        let dir = sigs.join(format!("{repo}@sha256={}", &digest["sha256:".len()..]));
        (1..)
            .map(|i| dir.join(format!("signature-{i}")))
            .take_while(|p| p.exists())
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    }
}

fn hex(digest: &str) -> &str {
    &digest["sha256:".len()..]
}

#[test]
fn prune_deletes_what_the_source_withdrew_with_its_signatures_and_referrers_and_nothing_else() {
    let w = World::new(&["ns/app"], &["v1", "v2", "v3", "v4"]);
    let gpg = Gpg::new();
    let key = gpg.gen_key("Mirror Signer");
    let keys = w.path("keys");
    std::fs::create_dir(&keys).unwrap();
    let cosign = support::sigstore::keygen(&keys, "cosign", "ecdsa-p256");
    let mut sbom = BTreeMap::new();
    for tag in ["v1", "v2"] {
        w.sign_simple(&gpg, &key, "ns/app", tag);
        w.sign_sigstore(&cosign, "ns/app", tag);
        sbom.insert(tag, w.attach_sbom("ns/app", tag));
    }
    let d = |tag: &str| w.images[&("ns/app".to_string(), tag.to_string())].clone();
    let (dst, src) = (w.dst.host(), w.src.host());
    let rep = w.path("report.json");
    let sync = |extra: &str| {
        let flags = "--src docker --dest docker --referrers all --exclude-tag-regex ^keep-";
        let (source, dest) = (format!("{src}/ns/app"), format!("{dst}/m"));
        w.sync(
            &format!("{flags} {extra} --report {}", rep.display()),
            &[&source, &dest],
        )
    };
    let r = sync("").ok();
    assert!(r.stderr.contains("4 images: 4 copied"), "{}", r.stderr);
    // What the mirror holds of the signed images: the lookaside signature, the .sig
    // attachment, the SBOM referrer and the fallback index that lists it.
    let attached = |tag: &str| {
        let digest = d(tag);
        (
            w.lookaside(&w.dst_sigs, "m/app", &digest).len(),
            digest_of(&dst, "m/app", &format!("sha256-{}.sig", hex(&digest))).is_some(),
            digest_of(&dst, "m/app", &format!("sha256-{}", hex(&digest))).is_some(),
            sbom.get(tag)
                .is_some_and(|r| digest_of(&dst, "m/app", r).is_some()),
        )
    };
    for tag in ["v1", "v2"] {
        assert_eq!(attached(tag), (1, true, true, true), "{tag} mirrored whole");
    }
    // Beside the sync's own tags: one the source never had that names v1's manifest, and one
    // outside the filters (--exclude-tag-regex ^keep-).
    retag(&dst, "m/app", "v1", "v1-old");
    retag(&dst, "m/app", "v3", "keep-me");

    // The source withdraws v2 (signed, with an SBOM) and v4.
    withdraw(&src, "ns/app", &d("v2"));
    withdraw(&src, "ns/app", &d("v4"));
    let before = tags(&dst, "m/app");

    // A dry run lists what would go and deletes nothing.
    let r = sync("--prune --dry-run").ok();
    let would = pruned(&report(&rep));
    let name = |tag: &str| format!("docker://{dst}/m/app:{tag}");
    assert_eq!(
        would,
        BTreeMap::from([
            (name("v1-old"), "would-delete".to_string()),
            (name("v2"), "would-delete".to_string()),
            (name("v4"), "would-delete".to_string()),
        ]),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("3 would be deleted"), "{}", r.stderr);
    assert_eq!(tags(&dst, "m/app"), before, "a dry run deletes nothing");

    let r = sync("--prune").ok();
    assert!(r.stderr.contains("2 deleted"), "{}", r.stderr);
    let rep_v = report(&rep);
    assert_eq!(
        pruned(&rep_v),
        BTreeMap::from([
            (name("v1-old"), "kept".to_string()),
            (name("v2"), "deleted".to_string()),
            (name("v4"), "deleted".to_string()),
        ])
    );
    let entry = |tag: &str| {
        rep_v["pruned"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["destination"] == name(tag))
            .unwrap()
            .clone()
    };
    let v2 = entry("v2");
    assert!(
        v2["reason"]
            .as_str()
            .unwrap()
            .contains("withdrawn at the source"),
        "{v2}"
    );
    let removed = v2["removed"].to_string();
    for what in [
        format!("sha256-{}.sig", hex(&d("v2"))),
        sbom["v2"].clone(),
        "lookaside".to_string(),
    ] {
        assert!(removed.contains(&what), "{what} in {removed}");
    }
    let old = entry("v1-old");
    assert!(
        old["detail"]
            .as_str()
            .unwrap()
            .contains("cannot delete a tag alone"),
        "distribution 2.8 deletes manifests, not tags: {old}"
    );

    // The withdrawn images left nothing behind: manifest, signatures, attachment, referrer,
    // fallback index.
    assert_eq!(
        image_tags(&dst, "m/app"),
        BTreeSet::from(["keep-me", "v1", "v1-old", "v3"].map(String::from))
    );
    for tag in ["v2", "v4"] {
        assert_eq!(digest_of(&dst, "m/app", &d(tag)), None, "{tag}'s manifest");
    }
    assert_eq!(attached("v2"), (0, false, false, false), "v2's leftovers");
    assert!(
        !tags(&dst, "m/app")
            .iter()
            .any(|t| t.contains(hex(&d("v2")))),
        "no tag of v2's remains"
    );
    // The images that stay keep every signature, attachment and referrer, byte for byte.
    assert_eq!(attached("v1"), (1, true, true, true), "v1 keeps everything");
    assert_eq!(
        w.lookaside(&w.dst_sigs, "m/app", &d("v1")),
        w.lookaside(&w.src_sigs, "ns/app", &d("v1"))
    );
    assert_eq!(digest_of(&dst, "m/app", "v3"), Some(d("v3")));
    assert_eq!(digest_of(&dst, "m/app", "keep-me"), Some(d("v3")));

    // A re-run is a no-op: nothing copied, nothing more to delete.
    let r = sync("--prune").ok();
    assert!(
        r.stderr.contains("2 images: 0 copied, 2 skipped") && r.stderr.contains("0 deleted"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_listing_that_breaks_off_deletes_nothing_in_its_repository() {
    let w = World::new(&["ns/a", "ns/b"], &["v1", "v2"]);
    let (dst, src) = (w.dst.host(), w.src.host());
    // ns/b's listing: a first page that promises a second, which fails.
    let proxy = HttpServer::start(
        Arc::new(|req: &Request| {
            if req.path == "/v2/ns/b/tags/list" {
                return Reply::Bytes {
                    status: 200,
                    headers: vec![
                        ("Content-Type".into(), "application/json".into()),
                        (
                            "Link".into(),
                            "</v2/ns/b/tags/list?last=v1&n=1>; rel=\"next\"".into(),
                        ),
                    ],
                    body: br#"{"name":"ns/b","tags":["v1"]}"#.to_vec(),
                };
            }
            if req.path.starts_with("/v2/ns/b/tags/list?") {
                return Reply::status(500);
            }
            Reply::forward()
        }),
        Some(src.clone()),
    );
    let mirror = TwoRepoMirror::set_up(&w);
    let rep = mirror.report.clone();
    // Through the proxy: ns/a lists whole, ns/b breaks off after its first page.
    let r = mirror.resync(&w, &proxy.host()).code(3);
    let rep = report(&rep);
    assert_only_a_pruned(
        &rep,
        &dst,
        &r.stderr,
        "nothing deleted where the listing broke off",
        "listing failed or came back incomplete",
    );
    assert!(
        r.stderr.contains("not pruned") && r.stderr.contains("ns/b"),
        "said on stderr: {}",
        r.stderr
    );
}

#[test]
fn a_prune_reads_ahead_while_the_copies_run_but_keeps_what_a_copy_wrote_meanwhile() {
    // The source moves v2's image to v1 and withdraws v2: the copy of v1 then writes v2's
    // manifest under v1 while the prune has already read, ahead, what deleting v2 would remove.
    let mut w = World::new(&["ns/app"], &["v1", "v2"]);
    let keys = w.path("keys");
    std::fs::create_dir(&keys).unwrap();
    let cosign = support::sigstore::keygen(&keys, "cosign", "ecdsa-p256");
    w.sign_sigstore(&cosign, "ns/app", "v2");
    let (dst, src) = (w.dst.host(), w.src.host());
    let d2 = w.images[&("ns/app".to_string(), "v2".to_string())].clone();
    let flags = "--src docker --dest docker";
    w.sync(flags, &[&format!("{src}/ns/app"), &format!("{dst}/m")])
        .ok();
    let sig = format!("sha256-{}.sig", hex(&d2));
    assert!(
        digest_of(&dst, "m/app", &sig).is_some(),
        "v2's signature mirrored"
    );
    let (bytes, media_type) = manifest(&src, "ns/app", "v2");
    withdraw(&src, "ns/app", &d2);
    let (status, _, body) = request(
        "PUT",
        &src,
        "/v2/ns/app/manifests/v1",
        &[("Content-Type", &media_type)],
        &bytes,
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    w.images
        .insert(("ns/app".to_string(), "v1".to_string()), d2.clone());
    // The destination answers manifest writes late, so the prune's early reads (the listing,
    // v2's manifest and signature) are done before the copy of v1 lands.
    let slow = HttpServer::start(
        Arc::new(|req: &Request| {
            if req.method == "PUT" && req.path.contains("/manifests/") {
                std::thread::sleep(Duration::from_millis(1500));
            }
            Reply::forward()
        }),
        Some(dst.clone()),
    );
    std::fs::write(
        w.registries_d.join("slow.yaml"),
        format!(
            "docker:\n  {}:\n    use-sigstore-attachments: true\n",
            slow.host()
        ),
    )
    .unwrap();
    let rep = w.path("report.json");
    let r = w
        .sync(
            &format!("{flags} --prune --report {}", rep.display()),
            &[&format!("{src}/ns/app"), &format!("{}/m", slow.host())],
        )
        .ok();
    let rep = report(&rep);
    assert_eq!(
        pruned(&rep),
        BTreeMap::from([(
            format!("docker://{}/m/app:v2", slow.host()),
            "kept".to_string()
        )]),
        "v2 names the manifest v1 was just given: only its name may go\n{}",
        r.stderr
    );
    assert_eq!(
        digest_of(&dst, "m/app", "v1"),
        Some(d2.clone()),
        "v1 is whole"
    );
    assert!(
        digest_of(&dst, "m/app", &sig).is_some(),
        "v1's signature stays"
    );
}

#[test]
fn a_repository_is_pruned_when_its_images_are_done_and_one_whose_copy_fails_late_is_not() {
    let mut w = World::new(&["ns/a", "ns/b"], &["v1", "v2"]);
    let (dst, src) = (w.dst.host(), w.src.host());
    let mirror = TwoRepoMirror::set_up(&w);
    let rep = mirror.report.clone();
    // ns/b:v1 changes at the source, and its blobs are read late and then not found: ns/a's
    // images are done (and ns/a is pruned) while ns/b's copy is still under way, and fails.
    w.push("ns/b", "v1", 99);
    let proxy = HttpServer::start(
        Arc::new(|req: &Request| {
            if req.path.starts_with("/v2/ns/b/blobs/") {
                std::thread::sleep(Duration::from_millis(1500));
                return Reply::status(404);
            }
            Reply::forward()
        }),
        Some(src.clone()),
    );
    let r = mirror.resync(&w, &proxy.host()).code(3);
    let rep = report(&rep);
    assert_only_a_pruned(
        &rep,
        &dst,
        &r.stderr,
        "nothing deleted where a copy failed",
        "1 of its images failed",
    );
}

#[test]
fn oci_dir_and_store_destinations_prune_and_the_store_keeps_its_evidence_unless_asked() {
    let w = World::new(&["ns/app"], &["v1", "v2", "v3"]);
    let keys = w.path("keys");
    std::fs::create_dir(&keys).unwrap();
    let cosign = support::sigstore::keygen(&keys, "cosign", "ecdsa-p256");
    for tag in ["v1", "v2", "v3"] {
        w.sign_sigstore(&cosign, "ns/app", tag);
    }
    let d = |tag: &str| w.images[&("ns/app".to_string(), tag.to_string())].clone();
    let src = format!("{}/ns/app", w.src.host());
    let (layouts, dirs) = (w.path("layouts"), w.path("dirs"));
    let targets = [
        ("oci", layouts.to_str().unwrap().to_string()),
        ("dir", dirs.to_str().unwrap().to_string()),
        ("store", "mirror.example/m".to_string()),
    ];
    for (kind, dest) in &targets {
        w.sync(&format!("--src docker --dest {kind}"), &[&src, dest])
            .ok();
    }
    let index = || std::fs::read_to_string(layouts.join("app/index.json")).unwrap();
    assert!(index().contains(&format!("sha256-{}.sig", hex(&d("v2")))));
    let store_names = || {
        let out = ferry(&[
            "store",
            "list",
            "--store",
            w.path("store").to_str().unwrap(),
        ])
        .ok()
        .stdout;
        ["v1", "v2", "v3"]
            .into_iter()
            .filter(|t| out.contains(&format!("mirror.example/m/app:{t}")))
            .collect::<Vec<_>>()
    };
    assert_eq!(store_names(), ["v1", "v2", "v3"]);

    withdraw(&w.src.host(), "ns/app", &d("v2"));
    for (kind, dest) in &targets {
        let r = w
            .sync(
                &format!("--src docker --dest {kind} --prune"),
                &[&src, dest],
            )
            .ok();
        assert!(r.stderr.contains("1 deleted"), "{kind}: {}", r.stderr);
    }
    // oci: the name and the .sig attachment of v2 leave index.json; v1's stay.
    let idx = index();
    assert!(!idx.contains("\"v2\""), "{idx}");
    assert!(
        !idx.contains(&format!("sha256-{}.sig", hex(&d("v2")))),
        "{idx}"
    );
    assert!(idx.contains("\"v1\"") && idx.contains(&format!("sha256-{}.sig", hex(&d("v1")))));
    // dir: the image's directory, with its signature, is gone; no temporary is left.
    let names: BTreeSet<String> = std::fs::read_dir(&dirs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, BTreeSet::from(["app:v1".into(), "app:v3".into()]));
    assert!(dirs.join("app:v1/signature-1").is_file());
    // store: the name goes, its evidence stays.
    assert_eq!(store_names(), ["v1", "v3"]);
    let evidence = |digest: &str| {
        let store = w.path("store");
        (
            store
                .join(format!("signatures/sha256-{}/signature-1", hex(digest)))
                .is_file(),
            std::fs::read_dir(store.join(format!("records/sha256-{}", hex(digest))))
                .map(|d| d.count())
                .unwrap_or(0),
        )
    };
    assert_eq!(
        evidence(&d("v2")),
        (true, 1),
        "the store keeps v2's evidence"
    );
    // Unless asked: v3 goes with its records and signatures.
    withdraw(&w.src.host(), "ns/app", &d("v3"));
    w.sync(
        "--src docker --dest store --prune --purge-evidence",
        &[&src, "mirror.example/m"],
    )
    .ok();
    assert_eq!(store_names(), ["v1"]);
    assert_eq!(evidence(&d("v3")), (false, 0), "purged");
    assert!(
        evidence(&d("v2")).0,
        "an earlier name's evidence is untouched"
    );
    // --purge-evidence is for the store only; --prune needs a listing source.
    let r = w.sync(
        "--src docker --dest oci --prune --purge-evidence",
        &[&src, layouts.to_str().unwrap()],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    let back = format!("{}/back", w.dst.host());
    let r = w.sync(
        "--src dir --dest docker --prune",
        &[dirs.to_str().unwrap(), &back],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--prune"), "{}", r.stderr);
}

#[test]
fn tag_regex_flags_filter_docker_and_yaml_sources() {
    let w = World::new(&["ns/app"], &["1.0", "1.1", "1.1-rc1", "2.0", "latest"]);
    let (dst, src) = (w.dst.host(), w.src.host());
    let repo = format!("{src}/ns/app");
    w.sync(
        r"--src docker --dest docker --include-tag-regex ^1\. --include-tag-regex ^latest$ --exclude-tag-regex rc",
        &[&repo, &format!("{dst}/cli")],
    )
    .ok();
    assert_eq!(
        image_tags(&dst, "cli/app"),
        BTreeSet::from(["1.0", "1.1", "latest"].map(String::from))
    );
    // Combined with the YAML's own regex: both must take a tag.
    let yaml = w.path("sync.yaml");
    std::fs::write(
        &yaml,
        format!("{src}:\n  tls-verify: false\n  images-by-tag-regex:\n    ns/app: '^1\\.'\n"),
    )
    .unwrap();
    w.sync(
        "--src yaml --dest docker --exclude-tag-regex -rc",
        &[yaml.to_str().unwrap(), &format!("{dst}/yaml")],
    )
    .ok();
    assert_eq!(
        image_tags(&dst, "yaml/app"),
        BTreeSet::from(["1.0", "1.1"].map(String::from))
    );
    // A bad expression is bad usage, named, and nothing is written.
    let bad = format!("{dst}/bad");
    let r = w.sync(
        "--src docker --dest docker --include-tag-regex ([",
        &[&repo, &bad],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--include-tag-regex \"([\""),
        "{}",
        r.stderr
    );
    assert!(tags(&dst, "bad/app").is_empty());
    let nothing = w.path("nothing");
    let r = w.sync(
        "--src dir --dest docker --exclude-tag-regex x",
        &[nothing.to_str().unwrap(), &bad],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn immutable_tags_are_not_read_at_the_source_once_mirrored() {
    let w = World::new(&["ns/app"], &["signed", "unsigned", "later"]);
    let gpg = Gpg::new();
    let key = gpg.gen_key("Mirror Signer");
    w.sign_simple(&gpg, &key, "ns/app", "signed");
    let dst = w.dst.host();
    // Every request to the source, counted by a proxy in front of it.
    let proxy = HttpServer::start(Arc::new(|_: &Request| Reply::forward()), Some(w.src.host()));
    let sigs = w.src_sigs.display();
    let through_proxy = format!(
        "docker:\n  {}:\n    lookaside: file://{sigs}\n",
        proxy.host()
    );
    std::fs::write(w.registries_d.join("proxy.yaml"), through_proxy).unwrap();
    let yaml = w.path("sync.yaml");
    let rep = w.path("report.json");
    let run = |yaml_extra: &str, extra: &str| {
        std::fs::write(
            &yaml,
            format!(
                "{}:\n  tls-verify: false\n{yaml_extra}  images:\n    ns/app: [signed, unsigned]\n",
                proxy.host()
            ),
        )
        .unwrap();
        let flags = format!(
            "--src yaml --dest docker {extra} --report {}",
            rep.display()
        );
        let dest = format!("{dst}/m");
        let before = proxy.requests().len();
        w.sync(&flags, &[yaml.to_str().unwrap(), &dest]).ok();
        let seen: Vec<(String, String)> = proxy.requests()[before..].to_vec();
        (statuses(&report(&rep)), seen)
    };
    let src = |tag: &str| format!("docker://{}/ns/app:{tag}", proxy.host());
    let (first, _) = run("", "");
    assert!(first.values().all(|(s, _)| s == "copied"), "{first:?}");

    // The signed image is there with its signature: not a single request for it reaches the
    // source. The unsigned one is checked as usual: only the source can say it has none.
    let (second, seen) = run("", "--immutable-tags");
    assert_eq!(second[&src("signed")], ("skipped".into(), true));
    assert_eq!(second[&src("unsigned")], ("skipped".into(), false));
    assert!(
        !seen.iter().any(|(_, p)| p.contains("/manifests/signed")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|(_, p)| p.contains("/manifests/unsigned")));
    // Without signatures wanted, neither is read; per registry in the YAML too.
    let (third, seen) = run("  immutable-tags: true\n", "--remove-signatures");
    assert!(
        third.values().all(|s| *s == ("skipped".into(), true)),
        "{third:?}"
    );
    assert!(
        !seen.iter().any(|(_, p)| p.contains("/manifests/")),
        "{seen:?}"
    );
    // The YAML's false overrides the flag.
    let (fourth, _) = run(
        "  immutable-tags: false\n",
        "--immutable-tags --remove-signatures",
    );
    assert!(
        fourth.values().all(|s| *s == ("skipped".into(), false)),
        "{fourth:?}"
    );
}

/// Every blob of every image a layout or directory holds hashes to its name, and every image
/// the work list names is there with the source's digest.
fn assert_whole_dir(dirs: &Path, images: &BTreeMap<(String, String), String>) {
    for ((repo, tag), digest) in images {
        let dir = dirs.join(format!("{}:{tag}", repo.rsplit('/').next().unwrap()));
        let m = std::fs::read(dir.join("manifest.json")).unwrap_or_else(|_| panic!("{dir:?}"));
        assert_eq!(&sha256(&m), digest, "{dir:?}");
        let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        for b in v["layers"].as_array().unwrap().iter().chain([&v["config"]]) {
            let d = b["digest"].as_str().unwrap();
            let bytes = std::fs::read(dir.join(hex(d))).unwrap();
            assert_eq!(sha256(&bytes), d, "{dir:?}: {d}");
        }
    }
}

fn assert_whole_oci(layouts: &Path, images: &BTreeMap<(String, String), String>) {
    for ((repo, tag), digest) in images {
        let layout = layouts.join(repo.rsplit('/').next().unwrap());
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let entry = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str())
            .unwrap_or_else(|| panic!("{tag} in {index}"));
        assert_eq!(entry["digest"], digest.as_str());
        let blob = |d: &str| std::fs::read(layout.join("blobs/sha256").join(hex(d))).unwrap();
        let m = blob(digest);
        assert_eq!(&sha256(&m), digest);
        let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        for b in v["layers"].as_array().unwrap().iter().chain([&v["config"]]) {
            let d = b["digest"].as_str().unwrap();
            assert_eq!(sha256(&blob(d)), d, "{layout:?}: {d}");
        }
    }
}

/// Names under `root` (two levels down) that ferry's temporaries carry.
fn temporaries(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with(".ferry-tmp-") {
                out.push(p);
            } else if p.is_dir() && depth < 3 {
                stack.push((p, depth + 1));
            }
        }
    }
    out
}

#[test]
fn a_sync_into_dir_and_oci_killed_with_sigkill_is_finished_and_repaired_by_the_next_run() {
    let repos: Vec<String> = (0..6).map(|i| format!("ns/k{i}")).collect();
    let repo_refs: Vec<&str> = repos.iter().map(String::as_str).collect();
    let w = World::new(&repo_refs, &["v1", "v2"]);
    // Blob reads through a proxy that takes its time, so the kill lands mid-sync.
    let proxy = slow_blobs_proxy(&w.src.host(), Duration::from_millis(150));
    let mut text = format!("{}:\n  tls-verify: false\n  images:\n", proxy.host());
    for r in &repos {
        text += &format!("    {r}: []\n");
    }
    let yaml = w.path("sync.yaml");
    std::fs::write(&yaml, text).unwrap();
    let images: BTreeMap<(String, String), String> = w.images.clone();
    for (kind, dest) in [("dir", w.path("dirs")), ("oci", w.path("layouts"))] {
        let flags = format!(
            "sync --policy {} --src yaml --dest {kind} --parallel-images 2 --progress always",
            w.policy.display()
        );
        let mut args: Vec<String> = flags.split_whitespace().map(String::from).collect();
        args.extend([yaml.display().to_string(), dest.display().to_string()]);
        // SIGKILL once three images are copied and one in flight has a temporary written: it
        // is cut off midway. (Waiting for the temporary, not a moment, is what keeps a loaded
        // machine from landing the kill between two images, when none is half-written.)
        let seen = ferry_killed_when(&args, "] copied ", 3, || !temporaries(&dest).is_empty());
        let copied = seen.iter().filter(|l| l.contains("] copied ")).count();
        assert!(
            (3..images.len()).contains(&copied),
            "{kind}: killed mid-sync: {seen:#?}"
        );
        assert!(
            !temporaries(&dest).is_empty(),
            "{kind}: the kill left a half-written image behind"
        );

        let rep = w.path(&format!("{kind}.json"));
        let mut rerun = args.clone();
        rerun.splice(1..1, ["--report".to_string(), rep.display().to_string()]);
        ferry(&rerun.iter().map(String::as_str).collect::<Vec<_>>()).ok();
        let r = report(&rep);
        assert_eq!(r["summary"]["failed"], 0, "{r:#}");
        assert!(r["summary"]["skipped"].as_u64().unwrap() >= 3, "{r:#}");
        match kind {
            "dir" => assert_whole_dir(&dest, &images),
            _ => assert_whole_oci(&dest, &images),
        }
        assert_eq!(
            temporaries(&dest),
            Vec::<PathBuf>::new(),
            "{kind}: leftovers"
        );

        // An image half-written at the destination (a layer cut short, as a copy by another
        // tool that broke off, or a disk that lost a write, leaves it) is copied again whole,
        // and only that one.
        let digest = &images[&("ns/k3".to_string(), "v2".to_string())];
        let (m, blob_dir) = match kind {
            "dir" => (
                std::fs::read(dest.join("k3:v2/manifest.json")).unwrap(),
                dest.join("k3:v2"),
            ),
            _ => {
                let l = dest.join("k3/blobs/sha256");
                (std::fs::read(l.join(hex(digest))).unwrap(), l)
            }
        };
        let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        let own_layer = v["layers"][1]["digest"].as_str().unwrap().to_string();
        let f = blob_dir.join(hex(&own_layer));
        let bytes = std::fs::read(&f).unwrap();
        std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
        ferry(&rerun.iter().map(String::as_str).collect::<Vec<_>>()).ok();
        let r = report(&rep);
        let copied: Vec<&serde_json::Value> = r["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["status"] == "copied")
            .collect();
        assert_eq!(copied.len(), 1, "{kind}: {r:#}");
        assert!(copied[0]["source"].as_str().unwrap().ends_with("ns/k3:v2"));
        assert!(
            copied[0]["reason"]
                .as_str()
                .unwrap()
                .contains("half-written"),
            "{:#}",
            copied[0]
        );
        assert_eq!(std::fs::read(&f).unwrap(), bytes, "{kind}: repaired");
    }
}

/// ns/a's withdrawn v2 was deleted at `dst`/m/a, ns/b's kept (`why_kept`), and the report says
/// ns/b was not pruned for `reason`.
fn assert_only_a_pruned(
    rep: &serde_json::Value,
    dst: &str,
    stderr: &str,
    why_kept: &str,
    reason: &str,
) {
    assert_eq!(
        pruned(rep),
        BTreeMap::from([(format!("docker://{dst}/m/a:v2"), "deleted".to_string())]),
        "{stderr}"
    );
    assert_eq!(image_tags(dst, "m/a"), BTreeSet::from(["v1".to_string()]));
    assert_eq!(
        image_tags(dst, "m/b"),
        BTreeSet::from(["v1".to_string(), "v2".to_string()]),
        "{why_kept}"
    );
    let not = rep["not_pruned"].as_array().unwrap();
    assert_eq!(not.len(), 1, "{rep:#}");
    assert!(not[0]["repository"].as_str().unwrap().ends_with("ns/b"));
    assert!(
        not[0]["reason"].as_str().unwrap().contains(reason),
        "{not:?}"
    );
}

/// ns/a and ns/b (v1, v2) mirrored from a YAML file into `DST/m` with `--prune --keep-going
/// --report`, then v2 withdrawn from both at the source.
struct TwoRepoMirror {
    yaml: PathBuf,
    report: PathBuf,
    flags: String,
    dest: String,
}

impl TwoRepoMirror {
    fn set_up(w: &World) -> TwoRepoMirror {
        let report = w.path("report.json");
        let mirror = TwoRepoMirror {
            yaml: w.path("sync.yaml"),
            flags: format!(
                "--src yaml --dest docker --keep-going --prune --report {}",
                report.display()
            ),
            report,
            dest: format!("{}/m", w.dst.host()),
        };
        let src = w.src.host();
        mirror.resync(w, &src).ok();
        for repo in ["ns/a", "ns/b"] {
            withdraw(&src, repo, &w.images[&(repo.to_string(), "v2".to_string())]);
        }
        mirror
    }

    /// The same sync again, reading the source at `host` (the registry, or a proxy before it).
    fn resync(&self, w: &World, host: &str) -> Run {
        std::fs::write(
            &self.yaml,
            format!("{host}:\n  tls-verify: false\n  images:\n    ns/a: []\n    ns/b: []\n"),
        )
        .unwrap();
        w.sync(&self.flags, &[self.yaml.to_str().unwrap(), &self.dest])
    }
}
