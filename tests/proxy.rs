//! `ferry experimental-image-proxy` driven by the real client, the `containers-image-proxy`
//! crate that bootc, rpm-ostree and composefs-rs use, against the real registry on 127.0.0.1;
//! the same cases against Debian's skopeo 1.9.3 proxy where it serves them, to show where the
//! two agree and where ferry does better (the policy applied at OpenImage, a stalled blob that
//! fails instead of hanging, a client that goes away ending the server).
//!
//! ferry-only flags reach ferry through a `sh -c 'exec ferry "$@" FLAGS'` wrapper, as a
//! deployment would give them (the crate appends its own flags after the command it is given);
//! skopeo's root flags (`--policy`, `--registries.d`) go before the subcommand, where both
//! ferry and skopeo take them.

mod support;

use std::io::{IoSliceMut, Read};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use containers_image_proxy::oci_spec::image::{Descriptor, ImageManifest};
use containers_image_proxy::{ImageProxy, ImageProxyConfig, OpenedImage};
use serde_json::json;
use sha2::Digest as _;
use support::http::{HttpServer, Reply};
use support::registry::Registry;
use support::*;
use tokio::io::AsyncReadExt;

const IDENTITY: &str = "registry.ferry.test/app:1";

fn keys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/keys")
}

fn trusted_fpr() -> String {
    std::fs::read_to_string(keys().join("fingerprints.txt"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("trusted "))
        .unwrap()
        .trim()
        .to_string()
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Which proxy a case runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Ferry,
    Skopeo,
}

/// How to start a proxy: skopeo-style root flags (before the subcommand), ferry-only flags
/// (after it), the environment.
struct Launch {
    peer: Peer,
    root: Vec<String>,
    tail: Vec<String>,
    env: Vec<(String, String)>,
    /// Where the wrapper writes the proxy's pid, to kill a hung one.
    pidfile: Option<PathBuf>,
    /// Where the proxy's stderr goes (the crate discards it).
    stderr: Option<PathBuf>,
}

impl Launch {
    fn new(peer: Peer, policy: &Path, registries_d: &Path) -> Launch {
        Launch {
            peer,
            root: vec![
                "--policy".into(),
                policy.display().to_string(),
                "--registries.d".into(),
                registries_d.display().to_string(),
            ],
            tail: Vec::new(),
            env: Vec::new(),
            pidfile: None,
            stderr: None,
        }
    }

    fn tail(mut self, args: &[&str]) -> Launch {
        self.tail.extend(args.iter().map(|a| a.to_string()));
        self
    }

    fn env(mut self, k: &str, v: &str) -> Launch {
        self.env.push((k.into(), v.into()));
        self
    }

    fn pidfile(mut self, p: &Path) -> Launch {
        self.pidfile = Some(p.to_path_buf());
        self
    }

    fn stderr(mut self, p: &Path) -> Launch {
        self.stderr = Some(p.to_path_buf());
        self
    }

    fn binary(&self) -> PathBuf {
        match self.peer {
            Peer::Ferry => timed_ferry(),
            Peer::Skopeo => require_tool("skopeo", "skopeo"),
        }
    }

    /// The command the crate is given as its skopeo: a shell that execs the proxy with the
    /// crate's arguments ("$@": the subcommand and its flags) between the root flags and ours.
    fn command(&self) -> Command {
        let root: Vec<String> = self.root.iter().map(|a| quote(a)).collect();
        let tail: Vec<String> = self.tail.iter().map(|a| quote(a)).collect();
        let pid = match &self.pidfile {
            Some(p) => format!("echo $$ > {}; ", quote(&p.display().to_string())),
            None => String::new(),
        };
        let stderr = match &self.stderr {
            Some(p) => format!(" 2>>{}", quote(&p.display().to_string())),
            None => String::new(),
        };
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!(
                "{pid}exec \"$0\" {} \"$@\" {}{stderr}",
                root.join(" "),
                tail.join(" ")
            ))
            .arg(self.binary());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    async fn start(&self) -> containers_image_proxy::Result<ImageProxy> {
        let mut config = ImageProxyConfig::default();
        config.skopeo_cmd = Some(self.command());
        config.insecure_skip_tls_verification = Some(true);
        ImageProxy::new_with_config(config).await
    }
}

/// An empty registries.d, so that the host's configuration does not leak in.
fn empty_registries_d(t: &Path) -> PathBuf {
    let d = t.join("registries.d");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_policy(t: &Path, name: &str, json: &str) -> PathBuf {
    let p = t.join(name);
    std::fs::write(&p, json).unwrap();
    p
}

/// Pushes the OCI layout image `layout:tag` to `dst` with ferry (extra flags: a format).
fn push(t: &Path, layout: &Path, tag: &str, dst: &str, extra: &[&str]) {
    let policy = insecure_policy(t);
    let mut args = vec![
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--dest-tls-verify=false",
    ];
    args.extend_from_slice(extra);
    let src = format!("oci:{}:{tag}", layout.display());
    args.push(&src);
    args.push(dst);
    ferry(&args).ok();
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// Reads one blob through `GetBlob` with the crate, the reader and FinishPipe together as the
/// crate asks; the bytes, or the first error.
async fn read_blob(
    proxy: &ImageProxy,
    img: &OpenedImage,
    desc: &Descriptor,
) -> Result<Vec<u8>, String> {
    let (mut reader, driver) = proxy
        .get_descriptor(img, desc)
        .await
        .map_err(|e| format!("GetBlob: {e}"))?;
    let mut buf = Vec::new();
    let (read, finished) = tokio::join!(reader.read_to_end(&mut buf), driver);
    finished.map_err(|e| format!("FinishPipe: {e}"))?;
    read.map_err(|e| format!("reading the pipe: {e}"))?;
    Ok(buf)
}

/// Reads a whole image through the crate and checks every byte against what was pushed.
async fn pull_and_verify(
    proxy: &ImageProxy,
    reference: &str,
    image: &TestImage,
    expect_digest: &str,
) {
    let img = proxy.open_image(reference).await.expect("OpenImage");
    let (digest, manifest): (String, ImageManifest) =
        proxy.fetch_manifest(&img).await.expect("GetManifest");
    assert_eq!(
        digest, expect_digest,
        "{reference}: GetManifest's value is the manifest digest"
    );
    let config = proxy.fetch_config_raw(&img).await.expect("GetFullConfig");
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["config"]["Env"], json!(["PATH=/usr/bin"]));
    assert_eq!(manifest.layers().len(), image.layers.len());
    for (desc, want) in manifest.layers().iter().zip(&image.layers) {
        let got = read_blob(proxy, &img, desc).await.expect("a layer");
        assert_eq!(got.len(), want.len());
        assert_eq!(
            format!("sha256:{}", sha256_hex(&got)),
            desc.digest().to_string(),
            "the client verifies each layer itself"
        );
        assert_eq!(&got, want);
    }
    proxy.close_image(&img).await.expect("CloseImage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_an_image_through_the_real_client_as_skopeo_does() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    let image = make_oci_image(&layout, "v1", 31, 3, 200_000);
    let host = reg.host();
    let reference = format!("docker://{host}/ns/app:v1");
    push(t.path(), &layout, "v1", &reference, &[]);
    let policy = insecure_policy(t.path());
    let regd = empty_registries_d(t.path());

    for peer in [Peer::Ferry, Peer::Skopeo] {
        let proxy = Launch::new(peer, &policy, &regd)
            .start()
            .await
            .expect("start");
        let version = proxy.protocol_version().clone();
        pull_and_verify(&proxy, &reference, &image, &image.digest).await;
        // By digest too.
        let by_digest = format!("docker://{host}/ns/app@{}", image.digest);
        pull_and_verify(&proxy, &by_digest, &image, &image.digest).await;

        let img = proxy.open_image(&reference).await.unwrap();
        let missing = format!("docker://{host}/ns/app:no-such-tag");
        match peer {
            Peer::Ferry => {
                assert_eq!(version.to_string(), "0.2.8");
                assert!(proxy.supports_get_raw_blob());
                // OpenImageOptional: 0 (None) for a missing tag or repository, an id otherwise.
                assert!(proxy.open_image_optional(&missing).await.unwrap().is_none());
                let missing_repo = format!("docker://{host}/ns/nothing-here:v1");
                assert!(
                    proxy
                        .open_image_optional(&missing_repo)
                        .await
                        .unwrap()
                        .is_none()
                );
                let again = proxy.open_image_optional(&reference).await.unwrap();
                assert!(again.is_some());
                // OpenImage of a missing image is an error that names it.
                let e = proxy.open_image(&missing).await.unwrap_err().to_string();
                assert!(e.contains("no-such-tag"), "{e}");
                // GetLayerInfo(Piped): the manifest's layers.
                let infos = proxy.get_layer_info(&img).await.unwrap().unwrap();
                assert_eq!(infos.len(), 3);
                for (info, layer) in infos.iter().zip(&image.layers) {
                    assert_eq!(info.digest.to_string(), sha256(layer));
                    assert_eq!(info.size, layer.len() as u64);
                }
                // GetRawBlob: the data pipe and an empty error pipe.
                let (_, manifest) = proxy.fetch_manifest(&img).await.unwrap();
                let layer = &manifest.layers()[1];
                let (size, mut data, errors) =
                    proxy.get_raw_blob(&img, layer.digest()).await.unwrap();
                assert_eq!(size, Some(layer.size()));
                let mut buf = Vec::new();
                let (read, err) = tokio::join!(data.read_to_end(&mut buf), errors);
                read.unwrap();
                err.expect("no error on the error pipe");
                assert_eq!(buf, image.layers[1]);
                // The crate's own streaming read (GetRawBlob, verified by the crate).
                let stream = proxy
                    .get_blob_stream(&img, layer.digest(), layer.size())
                    .await
                    .unwrap();
                let (mut reader, driver) = stream.into_parts();
                let mut buf = Vec::new();
                let (read, done) = tokio::join!(reader.read_to_end(&mut buf), driver);
                read.unwrap();
                done.unwrap();
                assert_eq!(buf, image.layers[1]);
                // A blob the image does not name is not served.
                let other = format!("sha256:{}", sha256_hex(b"not in the image"));
                let e = proxy
                    .get_blob(&img, &other.parse().unwrap(), 16)
                    .await
                    .err()
                    .expect("refused")
                    .to_string();
                assert!(e.contains("not part of the opened image"), "{e}");
            }
            Peer::Skopeo => {
                // Debian's skopeo 1.9.3 serves an older protocol: no OpenImageOptional,
                // GetLayerInfo(Piped) or GetRawBlob.
                assert!(version < semver::Version::new(0, 2, 5), "{version}");
                assert!(!proxy.supports_get_raw_blob());
                let e = proxy.open_image_optional(&missing).await.unwrap_err();
                assert!(e.to_string().contains("unknown method"), "{e}");
                assert!(proxy.get_layer_info(&img).await.unwrap().is_none());
            }
        }
        proxy.close_image(&img).await.unwrap();
        proxy
            .finalize()
            .await
            .expect("Shutdown ends the proxy cleanly");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_image_is_served_as_oci_with_the_same_bytes_as_skopeo() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    let image = make_oci_image(&layout, "v1", 32, 2, 50_000);
    let host = reg.host();
    let reference = format!("docker://{host}/ns/docker:v1");
    push(
        t.path(),
        &layout,
        "v1",
        &reference,
        &["--format", "v2s2", "--signatures", "remove-signatures"],
    );
    let policy = insecure_policy(t.path());
    let regd = empty_registries_d(t.path());

    let mut answers = Vec::new();
    for peer in [Peer::Ferry, Peer::Skopeo] {
        let proxy = Launch::new(peer, &policy, &regd).start().await.unwrap();
        let img = proxy.open_image(&reference).await.unwrap();
        let (digest, manifest) = proxy.fetch_manifest_raw_oci(&img).await.unwrap();
        let config = proxy.fetch_config_raw(&img).await.unwrap();
        let parsed: ImageManifest = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(
            parsed
                .media_type()
                .as_ref()
                .map(|m| m.to_string())
                .as_deref(),
            Some("application/vnd.oci.image.manifest.v1+json")
        );
        for (desc, want) in parsed.layers().iter().zip(&image.layers) {
            assert_eq!(&read_blob(&proxy, &img, desc).await.unwrap(), want);
        }
        if peer == Peer::Ferry {
            // The converted manifest names a config the registry does not have; ferry serves
            // it (skopeo's GetBlob asks the registry for it and fails).
            let made = read_blob(&proxy, &img, parsed.config()).await.unwrap();
            assert_eq!(made, config, "the made OCI config is GetFullConfig's bytes");
        }
        proxy.finalize().await.unwrap();
        answers.push((digest, manifest, config));
    }
    let (ferry_answer, skopeo_answer) = (&answers[0], &answers[1]);
    assert_eq!(
        ferry_answer.0, skopeo_answer.0,
        "the original manifest's digest"
    );
    assert_eq!(
        String::from_utf8_lossy(&ferry_answer.1),
        String::from_utf8_lossy(&skopeo_answer.1),
        "the converted manifest, byte for byte"
    );
    assert_eq!(
        String::from_utf8_lossy(&ferry_answer.2),
        String::from_utf8_lossy(&skopeo_answer.2),
        "the OCI config, byte for byte"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejecting_policy_refuses_at_open_image_with_the_reason_where_skopeo_serves() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    let image = make_oci_image(&layout, "v1", 33, 1, 10_000);
    let host = reg.host();
    let reference = format!("docker://{host}/ns/app:v1");
    push(t.path(), &layout, "v1", &reference, &[]);
    let regd = empty_registries_d(t.path());
    let reject = write_policy(
        t.path(),
        "reject.json",
        r#"{"default":[{"type":"reject"}]}"#,
    );
    let signed = write_policy(
        t.path(),
        "signed.json",
        &format!(
            r#"{{"default":[{{"type":"signedBy","keyType":"GPGKeys","keyPath":"{}"}}]}}"#,
            keys().join("trusted.pub.asc").display()
        ),
    );

    let proxy = Launch::new(Peer::Ferry, &reject, &regd)
        .start()
        .await
        .unwrap();
    let e = proxy.open_image(&reference).await.unwrap_err().to_string();
    eprintln!("ferry refuses (reject): {e}");
    assert!(e.contains("reject"), "names the requirement: {e}");
    assert!(!e.is_empty() && e.contains(&host), "names the image: {e}");
    // OpenImageOptional is refused the same way: a rejected image is not a missing one.
    assert!(proxy.open_image_optional(&reference).await.is_err());
    proxy.finalize().await.unwrap();

    let proxy = Launch::new(Peer::Ferry, &signed, &regd)
        .start()
        .await
        .unwrap();
    let e = proxy.open_image(&reference).await.unwrap_err().to_string();
    eprintln!("ferry refuses (signedBy): {e}");
    assert!(e.contains("signedBy"), "names the requirement: {e}");
    assert!(e.to_lowercase().contains("no signature"), "says why: {e}");
    proxy.finalize().await.unwrap();

    // skopeo 1.9.3's proxy does not apply the policy at OpenImage: with a policy that rejects
    // everything it opens the image and serves its layers.
    let proxy = Launch::new(Peer::Skopeo, &reject, &regd)
        .start()
        .await
        .unwrap();
    let img = proxy
        .open_image(&reference)
        .await
        .expect("skopeo 1.9.3 opens an image its policy rejects");
    let (_, manifest) = proxy.fetch_manifest(&img).await.unwrap();
    let layer = read_blob(&proxy, &img, &manifest.layers()[0])
        .await
        .unwrap();
    assert_eq!(layer, image.layers[0]);
    proxy.finalize().await.unwrap();
}

/// How long a stalled blob may take to fail with `--stall-timeout 2` and the default three
/// retries: the stall timeout (the caller-visible bound, whatever the transport retries or
/// resumes underneath) and a margin for a loaded machine. Without that bound a resume per retry
/// takes four windows of 2 to 4 s and backoffs: at least 8 s.
const STALL_BOUND: Duration = Duration::from_secs(5);

/// The registry behind a proxy that stalls the body of `layer` after `body_bytes`.
fn stalling_proxy(reg: &Registry, layer_digest: &str, body_bytes: usize) -> HttpServer {
    let blob_path = format!("/v2/ns/app/blobs/{layer_digest}");
    let server = HttpServer::start(std::sync::Arc::new(|_| Reply::forward()), Some(reg.host()));
    server.set_route(&blob_path, Reply::ForwardStalled { body_bytes });
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_blob_fails_within_the_stall_timeout_where_skopeo_hangs() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    let image = make_oci_image(&layout, "v1", 34, 2, 300_000);
    push(
        t.path(),
        &layout,
        "v1",
        &format!("docker://{}/ns/app:v1", reg.host()),
        &[],
    );
    let stalled = sha256(&image.layers[1]);
    let server = stalling_proxy(&reg, &stalled, 100_000);
    let reference = format!("docker://{}/ns/app:v1", server.host());
    let policy = insecure_policy(t.path());
    let regd = empty_registries_d(t.path());

    let proxy = Launch::new(Peer::Ferry, &policy, &regd)
        .tail(&["--stall-timeout", "2"])
        .start()
        .await
        .unwrap();
    let img = proxy.open_image(&reference).await.unwrap();
    let (_, manifest) = proxy.fetch_manifest(&img).await.unwrap();
    // The first layer comes through the same proxy untouched.
    assert_eq!(
        read_blob(&proxy, &img, &manifest.layers()[0])
            .await
            .unwrap(),
        image.layers[0]
    );
    // GetBlob + FinishPipe: an error naming the stall, within the 2 s stall timeout and margin
    // (the layer's read-ahead stalled too: a failed read-ahead is read again from the source).
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        read_blob(&proxy, &img, &manifest.layers()[1]),
    )
    .await
    .expect("FinishPipe answers instead of hanging");
    let e = r.expect_err("a stalled blob is an error");
    let waited = started.elapsed();
    eprintln!("ferry's FinishPipe after {waited:?}: {e}");
    assert!(e.contains("FinishPipe"), "{e}");
    assert!(e.contains(&stalled), "names the blob: {e}");
    assert!(waited < STALL_BOUND, "took {waited:?}: {e}");
    assert!(e.contains("stall timeout"), "{e}");
    // GetRawBlob: the error pipe says it, retryable.
    let started = Instant::now();
    let layer = &manifest.layers()[1];
    let (_, mut data, errors) = proxy.get_raw_blob(&img, layer.digest()).await.unwrap();
    let mut sink = Vec::new();
    let (_, err) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(data.read_to_end(&mut sink), errors)
    })
    .await
    .expect("the error pipe ends instead of hanging");
    let err = err.expect_err("the error pipe reports the stall");
    assert!(
        matches!(err, containers_image_proxy::GetBlobError::Retryable(_)),
        "a stall is retryable: {err:?}"
    );
    assert!(started.elapsed() < STALL_BOUND);
    assert!(sink.len() < image.layers[1].len());
    // The proxy still serves after a failed blob.
    assert_eq!(
        read_blob(&proxy, &img, &manifest.layers()[0])
            .await
            .unwrap(),
        image.layers[0]
    );
    proxy.finalize().await.unwrap();

    // skopeo 1.9.3 waits for the stalled body forever (skopeo#2878): FinishPipe has not
    // answered after 8 s. Its process is killed by the pid its wrapper wrote.
    let pidfile = t.path().join("skopeo.pid");
    let proxy = Launch::new(Peer::Skopeo, &policy, &regd)
        .pidfile(&pidfile)
        .start()
        .await
        .unwrap();
    let img = proxy.open_image(&reference).await.unwrap();
    let (_, manifest) = proxy.fetch_manifest(&img).await.unwrap();
    let hung = tokio::time::timeout(
        Duration::from_secs(8),
        read_blob(&proxy, &img, &manifest.layers()[1]),
    )
    .await;
    assert!(hung.is_err(), "skopeo's FinishPipe answered: {hung:?}");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    drop(proxy);
}

/// A one-layer image pushed to a fresh registry, reached through an HTTP server that answers
/// the layer's blob with the reply `route` makes of the image (everything else forwarded).
struct OneLayerBehind {
    t: tempfile::TempDir,
    image: TestImage,
    reference: String,
    policy: PathBuf,
    regd: PathBuf,
    server: HttpServer,
    _reg: Registry,
}

fn one_layer_behind(seed: u64, size: usize, route: impl Fn(&TestImage) -> Reply) -> OneLayerBehind {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    let image = make_oci_image(&layout, "v1", seed, 1, size);
    push(
        t.path(),
        &layout,
        "v1",
        &format!("docker://{}/ns/app:v1", reg.host()),
        &[],
    );
    let layer = sha256(&image.layers[0]);
    let server = HttpServer::start(std::sync::Arc::new(|_| Reply::forward()), Some(reg.host()));
    server.set_route(&format!("/v2/ns/app/blobs/{layer}"), route(&image));
    let reference = format!("docker://{}/ns/app:v1", server.host());
    let policy = insecure_policy(t.path());
    let regd = empty_registries_d(t.path());
    OneLayerBehind {
        t,
        image,
        reference,
        policy,
        regd,
        server,
        _reg: reg,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_blob_is_an_error_on_finish_pipe_for_both() {
    let b = one_layer_behind(40, 100_000, |_| Reply::Forward {
        cut_after: None,
        corrupt_at: Some(50_000),
    });
    let (reference, policy, regd) = (&b.reference, &b.policy, &b.regd);
    for (peer, says) in [
        (Peer::Ferry, "does not match its digest"),
        (Peer::Skopeo, "corrupted blob"),
    ] {
        let proxy = Launch::new(peer, policy, regd).start().await.unwrap();
        let img = proxy.open_image(reference).await.unwrap();
        let (_, manifest) = proxy.fetch_manifest(&img).await.unwrap();
        let e = read_blob(&proxy, &img, &manifest.layers()[0])
            .await
            .expect_err("a corrupted layer is an error");
        assert!(
            e.contains("FinishPipe") && e.contains(says),
            "{peer:?}: {e}"
        );
        proxy.finalize().await.unwrap();
    }
}

/// A layer the client asks for while its read-ahead is still fetching it is followed as it
/// fills (its bytes reach the client's pipe before the digest is known); when the whole body
/// then fails its digest, the client still learns it: an error on FinishPipe, and on
/// GetRawBlob's error pipe, never a clean end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_read_ahead_that_fails_its_digest_ends_in_an_error() {
    // The whole body, its last byte flipped, after a second and a half: the client asks meanwhile.
    let b = one_layer_behind(42, 300_000, |image| {
        let mut bad = image.layers[0].clone();
        if let Some(last) = bad.last_mut() {
            *last ^= 0xff;
        }
        Reply::Delayed(
            Duration::from_millis(1500),
            Box::new(Reply::bytes(200, "application/octet-stream", bad)),
        )
    });
    let (reference, policy, regd) = (&b.reference, &b.policy, &b.regd);
    let proxy = Launch::new(Peer::Ferry, policy, regd)
        .start()
        .await
        .unwrap();

    let img = proxy.open_image(reference).await.unwrap();
    let (_, manifest) = proxy.fetch_manifest(&img).await.unwrap();
    let desc = &manifest.layers()[0];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = read_blob(&proxy, &img, desc)
        .await
        .expect_err("a layer that fails its digest is an error");
    assert!(
        e.contains("FinishPipe") && e.contains("does not match its digest"),
        "{e}"
    );
    proxy.close_image(&img).await.unwrap();

    let img = proxy.open_image(reference).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, mut data, errors) = proxy.get_raw_blob(&img, desc.digest()).await.unwrap();
    let mut sink = Vec::new();
    let (_, err) = tokio::join!(data.read_to_end(&mut sink), errors);
    let err = err.expect_err("the error pipe reports the mismatch");
    assert!(
        format!("{err:?}").contains("does not match its digest"),
        "{err:?}"
    );
    proxy.finalize().await.unwrap();
}

/// A layer that arrives more slowly than the client reads it: once the client has caught up
/// with the read-ahead, the fetch hands the rest straight to the client's pipe instead of
/// writing it to the spool and reading it back (the proxy's debug log counts both), and the
/// layer arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_arriving_slower_than_the_client_reads_is_handed_over_not_spooled() {
    let b = one_layer_behind(43, 1_000_000, |_| Reply::ForwardSlowly {
        bytes_per_second: 1_000_000,
    });
    let (reference, policy, regd) = (&b.reference, &b.policy, &b.regd);
    let log = b.t.path().join("proxy.log");
    let proxy = Launch::new(Peer::Ferry, policy, regd)
        .env("RUST_LOG", "ferry=debug")
        .stderr(&log)
        .start()
        .await
        .unwrap();
    let img = proxy.open_image(reference).await.unwrap();
    let (_, manifest) = proxy.fetch_manifest(&img).await.unwrap();
    // The read-ahead has started (its first 200 kB are in the spool) when the client asks.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = read_blob(&proxy, &img, &manifest.layers()[0])
        .await
        .unwrap();
    assert_eq!(got, b.image.layers[0]);
    proxy.finalize().await.unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("bytes from the read-ahead"))
        .unwrap_or_else(|| panic!("the layer came from its read-ahead: {log}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(numbers.first(), Some(&1_000_000), "{line}");
    let through_file = numbers.get(1).copied().unwrap();
    assert!(
        through_file < 700_000,
        "the layer was handed over once the client caught up, not all spooled: {line}"
    );
}

/// The read-ahead reads the config before any layer (the client asks for it first, and behind
/// the layers its small request waited up to 170 ms), once: GetFullConfig then answers from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_is_read_ahead_before_the_layers_and_once() {
    let b = one_layer_behind(44, 300_000, |_| Reply::forward());
    let config = format!("/v2/ns/app/blobs/sha256:{}", sha256_hex(&b.image.config));
    let layer = format!("/v2/ns/app/blobs/{}", sha256(&b.image.layers[0]));
    let proxy = Launch::new(Peer::Ferry, &b.policy, &b.regd)
        .start()
        .await
        .unwrap();
    let img = proxy.open_image(&b.reference).await.unwrap();
    // Without asking for anything: the config, then the layer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.server.hits(&layer) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let paths: Vec<String> = b.server.requests().into_iter().map(|(_, p)| p).collect();
    let at = |want: &str| paths.iter().position(|p| p.starts_with(want));
    let (c, l) = (at(&config), at(&layer));
    assert!(c.is_some() && l.is_some() && c < l, "{paths:#?}");
    let got = proxy.fetch_config_raw(&img).await.unwrap();
    let got: serde_json::Value = serde_json::from_slice(&got).unwrap();
    assert_eq!(got["architecture"], "amd64");
    assert_eq!(b.server.hits(&config), 1, "the config was read once");
    proxy.finalize().await.unwrap();
}

/// A client of our own, for what the crate cannot send: ferry's GetSignatureVerdict, and
/// hanging up in the middle of a request.
struct RawClient {
    sock: OwnedFd,
    child: Child,
}

impl RawClient {
    fn start(launch: &Launch) -> RawClient {
        let mut cmd = launch.command();
        cmd.arg("experimental-image-proxy");
        RawClient::start_command(cmd)
    }

    /// Starts `cmd` with the other end of the socket as its standard input.
    fn start_command(mut cmd: Command) -> RawClient {
        let (mine, theirs) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        cmd.stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd.spawn().unwrap();
        RawClient { sock: mine, child }
    }

    /// Sends a request; the reply and the descriptors that came with it.
    fn call(&self, method: &str, args: serde_json::Value) -> (serde_json::Value, Vec<OwnedFd>) {
        let req = serde_json::to_vec(&json!({"method": method, "args": args})).unwrap();
        rustix::net::send(&self.sock, &req, rustix::net::SendFlags::empty()).unwrap();
        let mut buf = vec![0u8; 32 * 1024];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut anc = rustix::net::RecvAncillaryBuffer::new(&mut space);
        let n = rustix::net::recvmsg(
            &self.sock,
            &mut [IoSliceMut::new(&mut buf)],
            &mut anc,
            rustix::net::RecvFlags::CMSG_CLOEXEC,
        )
        .unwrap()
        .bytes;
        let fds: Vec<OwnedFd> = anc
            .drain()
            .filter_map(|m| match m {
                rustix::net::RecvAncillaryMessage::ScmRights(f) => Some(f),
                _ => None,
            })
            .flatten()
            .collect();
        (serde_json::from_slice(&buf[..n]).unwrap(), fds)
    }

    /// Calls a method answering through a pipe: reads it on a thread while FinishPipe waits.
    fn call_piped(&self, method: &str, args: serde_json::Value) -> Result<Vec<u8>, String> {
        let (reply, mut fds) = self.call(method, args);
        if reply["success"] != true {
            return Err(reply["error"].as_str().unwrap_or_default().to_string());
        }
        let fd = fds.pop().expect("a pipe");
        let reader = std::thread::spawn(move || {
            let mut f = std::fs::File::from(fd);
            let mut out = Vec::new();
            f.read_to_end(&mut out).map(|_| out)
        });
        let (finish, _) = self.call("FinishPipe", json!([reply["pipeid"]]));
        let data = reader.join().unwrap().unwrap();
        if finish["success"] != true {
            return Err(finish["error"].as_str().unwrap_or_default().to_string());
        }
        Ok(data)
    }

    fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for RawClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A dir: image signed by the trusted test key for IDENTITY, and a policy that requires it.
fn signed_dir_image(t: &Path) -> (PathBuf, PathBuf, TestImage) {
    let layout = t.join("signed-layout");
    let image = make_oci_image(&layout, "v1", 35, 1, 20_000);
    let dir = t.join("signed-dir");
    ferry(&[
        "copy",
        "-q",
        "--policy",
        insecure_policy(t).to_str().unwrap(),
        "--sign-by",
        &trusted_fpr(),
        "--sign-key",
        keys().join("trusted.sec.asc").to_str().unwrap(),
        "--sign-identity",
        IDENTITY,
        &format!("oci:{}:v1", layout.display()),
        &format!("dir:{}", dir.display()),
    ])
    .ok();
    let policy = write_policy(
        t,
        "signed-dir.json",
        &format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"dir":{{"":[{{"type":"signedBy","keyType":"GPGKeys","keyPath":"{}","signedIdentity":{{"type":"exactReference","dockerReference":"{IDENTITY}"}}}}]}}}}}}"#,
            keys().join("trusted.pub.asc").display()
        ),
    );
    (dir, policy, image)
}

#[test]
fn get_signature_verdict_says_who_signed_the_image() {
    let t = tempfile::tempdir().unwrap();
    let (dir, policy, image) = signed_dir_image(t.path());
    let regd = empty_registries_d(t.path());
    let reference = format!("dir:{}", dir.display());

    let client = RawClient::start(&Launch::new(Peer::Ferry, &policy, &regd));
    let (init, _) = client.call("Initialize", json!([]));
    assert_eq!(init["value"], "0.2.8");
    let (open, _) = client.call("OpenImage", json!([reference]));
    assert_eq!(open["success"], true, "{open}");
    let id = open["value"].clone();
    let doc = client
        .call_piped("GetSignatureVerdict", json!([id]))
        .expect("the verdict");
    let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["digest"], image.digest);
    assert_eq!(doc["mode"], "copy-all");
    assert_eq!(doc["verdict"]["accepted"], true, "{doc:#}");
    let slot = &doc["verdict"]["slots"][0];
    assert_eq!(slot["outcome"]["status"], "accepted", "{doc:#}");
    assert_eq!(slot["outcome"]["signer"]["fingerprint"], trusted_fpr());
    assert_eq!(
        slot["outcome"]["claims"]["docker_reference"], IDENTITY,
        "{doc:#}"
    );
    // Unknown ids and methods are errors in skopeo's words.
    let (bad, _) = client.call("GetSignatureVerdict", json!([99]));
    assert_eq!(bad["success"], false);
    assert_eq!(bad["error"], "no image 99");
    let (bad, _) = client.call("NoSuchMethod", json!([]));
    assert_eq!(bad["error"], "unknown method: NoSuchMethod");
    assert_eq!(bad["error_code"], "other");
    // A request larger than a packet may be is an error reply, and the server goes on.
    let (big, _) = client.call("OpenImage", json!(["x".repeat(40 * 1024)]));
    assert_eq!(big["success"], false);
    assert!(
        big["error"].as_str().unwrap().contains("32768-byte limit"),
        "{big}"
    );
    let (again, _) = client.call("OpenImage", json!([reference]));
    assert_eq!(again["success"], true, "{again}");
    drop(client);

    // skopeo answers an unknown method with an error and goes on serving: a client that asks
    // for the verdict can tell a proxy that has none.
    let skopeo = RawClient::start(&Launch::new(Peer::Skopeo, &policy, &regd));
    skopeo.call("Initialize", json!([]));
    let (open, _) = skopeo.call("OpenImage", json!([reference]));
    let (bad, _) = skopeo.call("GetSignatureVerdict", json!([open["value"]]));
    assert_eq!(bad["success"], false);
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .contains("unknown method: GetSignatureVerdict")
    );
}

#[test]
fn serves_on_the_descriptor_sockfd_names() {
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    // The socket moved to descriptor 3, standard input closed off: as skopeo's --sockfd.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec \"$0\" experimental-image-proxy --policy \"$1\" --sockfd 3 3<&0 </dev/null")
        .arg(ferry_bin())
        .arg(&policy);
    let mut client = RawClient::start_command(cmd);
    let (init, _) = client.call("Initialize", json!([]));
    assert_eq!(init["value"], "0.2.8", "{init}");
    let (again, _) = client.call("Initialize", json!([]));
    assert_eq!(again["error"], "already initialized");
    // Shutdown has no reply: the process ends.
    let req = serde_json::to_vec(&json!({"method": "Shutdown", "args": []})).unwrap();
    rustix::net::send(&client.sock, &req, rustix::net::SendFlags::empty()).unwrap();
    let status = client.wait_exit(Duration::from_secs(5)).expect("exits");
    assert!(status.success(), "{status}");
}

#[test]
fn a_client_that_goes_away_ends_the_server_even_mid_request() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    let image = make_oci_image(&layout, "v1", 36, 1, 300_000);
    push(
        t.path(),
        &layout,
        "v1",
        &format!("docker://{}/ns/app:v1", reg.host()),
        &[],
    );
    let server = stalling_proxy(&reg, &sha256(&image.layers[0]), 1000);
    let reference = format!("docker://{}/ns/app:v1", server.host());
    let policy = insecure_policy(t.path());
    let regd = empty_registries_d(t.path());

    // Between requests.
    let mut client =
        RawClient::start(&Launch::new(Peer::Ferry, &policy, &regd).tail(&["--tls-verify=false"]));
    client.call("Initialize", json!([]));
    rustix::net::shutdown(&client.sock, rustix::net::Shutdown::Both).unwrap();
    let status = client.wait_exit(Duration::from_secs(5)).expect("exits");
    assert!(status.success(), "{status}");

    // While FinishPipe waits for a blob that stalls (with the default 60 s stall timeout).
    let mut client =
        RawClient::start(&Launch::new(Peer::Ferry, &policy, &regd).tail(&["--tls-verify=false"]));
    client.call("Initialize", json!([]));
    let (open, _) = client.call("OpenImage", json!([reference]));
    assert_eq!(open["success"], true, "{open}");
    let (blob, fds) = client.call(
        "GetBlob",
        json!([
            open["value"],
            sha256(&image.layers[0]),
            image.layers[0].len()
        ]),
    );
    assert_eq!(blob["success"], true, "{blob}");
    let req =
        serde_json::to_vec(&json!({"method": "FinishPipe", "args": [blob["pipeid"]]})).unwrap();
    rustix::net::send(&client.sock, &req, rustix::net::SendFlags::empty()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    drop(fds);
    rustix::net::shutdown(&client.sock, rustix::net::Shutdown::Both).unwrap();
    let status = client
        .wait_exit(Duration::from_secs(5))
        .expect("the server ends when its client goes away, without waiting for the blob");
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// The read-ahead's spool files the proxy `pid` holds open in `dir`: unnamed files, seen only
/// as its descriptors (`/proc/PID/fd/N -> DIR/#INODE (deleted)`).
fn spool_fds(pid: u32, dir: &Path) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

/// Waits until the proxy holds `want` spool files; the last count seen.
fn wait_spools(pid: u32, dir: &Path, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = spool_fds(pid, dir);
        if n == want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Names in the spool directory: the spool files have none, ever.
fn named_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn layers_are_read_ahead_within_the_bound_in_any_order_and_leave_nothing_behind() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    let image = make_oci_image(&layout, "v1", 41, 4, 300_000);
    let reference = format!("docker://{}/ns/ahead:v1", reg.host());
    push(t.path(), &layout, "v1", &reference, &[]);
    let policy = insecure_policy(t.path());
    let regd = empty_registries_d(t.path());
    let spool = t.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    // 1 MiB of read-ahead holds three of the four 300 kB layers.
    let launch = Launch::new(Peer::Ferry, &policy, &regd)
        .tail(&["--tls-verify=false", "--read-ahead-mib", "1"])
        .env("TMPDIR", spool.to_str().unwrap());
    let mut client = RawClient::start(&launch);
    let pid = client.child.id();
    client.call("Initialize", json!([]));
    let get = |client: &RawClient, id: &serde_json::Value, i: usize| {
        let layer: &Vec<u8> = &image.layers[i];
        client
            .call_piped("GetBlob", json!([id, sha256(layer), layer.len()]))
            .unwrap_or_else(|e| panic!("layer {i}: {e}"))
    };

    let (open, _) = client.call("OpenImage", json!([reference]));
    assert_eq!(open["success"], true, "{open}");
    let id = open["value"].clone();
    // Before the client asks for anything: three layers fetched ahead, and no more.
    assert_eq!(
        wait_spools(pid, &spool, 3),
        3,
        "three layers are read ahead"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(spool_fds(pid, &spool), 3, "the 1 MiB bound holds");
    assert_eq!(named_files(&spool), Vec::<PathBuf>::new());
    // Out of order: the second layer from its spool, whose bytes are then dropped, which makes
    // room for the fourth.
    assert_eq!(get(&client, &id, 1), image.layers[1]);
    assert_eq!(
        wait_spools(pid, &spool, 3),
        3,
        "served: room for the fourth"
    );
    for i in [3, 0, 2] {
        assert_eq!(get(&client, &id, i), image.layers[i], "layer {i}");
    }
    assert_eq!(
        wait_spools(pid, &spool, 0),
        0,
        "every spool dropped once served"
    );
    // Asked for again: read from the source.
    assert_eq!(get(&client, &id, 2), image.layers[2]);

    // An image closed without reading a layer drops its spools.
    let (open, _) = client.call("OpenImage", json!([reference]));
    let second = open["value"].clone();
    assert_eq!(wait_spools(pid, &spool, 3), 3);
    let (closed, _) = client.call("CloseImage", json!([second]));
    assert_eq!(closed["success"], true, "{closed}");
    assert_eq!(
        wait_spools(pid, &spool, 0),
        0,
        "CloseImage drops the spools"
    );

    // A proxy killed in the middle leaves nothing either: the files never had names.
    let (open, _) = client.call("OpenImage", json!([reference]));
    assert_eq!(open["success"], true, "{open}");
    assert_eq!(wait_spools(pid, &spool, 3), 3);
    client.child.kill().unwrap();
    client.child.wait().unwrap();
    assert_eq!(named_files(&spool), Vec::<PathBuf>::new());

    // With --read-ahead 0 nothing is fetched before it is asked for.
    let client = RawClient::start(&launch.tail(&["--read-ahead", "0"]));
    let pid = client.child.id();
    client.call("Initialize", json!([]));
    let (open, _) = client.call("OpenImage", json!([reference]));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(spool_fds(pid, &spool), 0);
    assert_eq!(get(&client, &open["value"], 0), image.layers[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_local_transport_opens_through_the_proxy() {
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    let image = make_oci_image(&layout, "v1", 37, 2, 30_000);
    let policy = insecure_policy(t.path());
    let regd = empty_registries_d(t.path());
    let dir = t.path().join("dir");
    let store = t.path().join("store");
    push(
        t.path(),
        &layout,
        "v1",
        &format!("dir:{}", dir.display()),
        &[],
    );
    let store_flag = format!("--store={}", store.display());
    push(
        t.path(),
        &layout,
        "v1",
        "store:registry.ferry.test/app:v1",
        &[store_flag.as_str()],
    );

    // The archives, written by skopeo (so that ferry's readers, not its writers, are what is
    // checked): an oci-archive keeps the manifest; a docker-archive has none, and each tool
    // serves the one it generates (ferry types the uncompressed layers as what they are, where
    // containers/image calls them gzip: docs/archives.md), so each is checked against its own.
    let oci_archive = format!("oci-archive:{}:app:v1", t.path().join("oa.tar").display());
    let docker_archive = format!("docker-archive:{}", t.path().join("da.tar").display());
    let policy_arg = policy.to_str().unwrap();
    let layout_ref = format!("oci:{}:v1", layout.display());
    // (--preserve-digests: skopeo would gzip the layers into an OCI destination otherwise.)
    skopeo(&[
        "--policy",
        policy_arg,
        "copy",
        "-q",
        "--preserve-digests",
        &layout_ref,
        &oci_archive,
    ])
    .ok();
    let docker_archive_dst = format!("{docker_archive}:example.com/app:v1");
    skopeo(&[
        "--policy",
        policy_arg,
        "copy",
        "-q",
        &layout_ref,
        &docker_archive_dst,
    ])
    .ok();
    let generated = |out: Run| format!("sha256:{}", sha256_hex(out.stdout.as_bytes()));
    let ferry_generated = generated(ferry(&["inspect", "--raw", &docker_archive]).ok());
    let skopeo_generated = generated(skopeo(&["inspect", "--raw", &docker_archive]).ok());

    let proxy = Launch::new(Peer::Ferry, &policy, &regd)
        .env("FERRY_STORE", store.to_str().unwrap())
        .start()
        .await
        .unwrap();
    for (reference, digest) in [
        (format!("oci:{}:v1", layout.display()), &image.digest),
        (format!("dir:{}", dir.display()), &image.digest),
        (
            "store:registry.ferry.test/app:v1".to_string(),
            &image.digest,
        ),
        (oci_archive.clone(), &image.digest),
        (docker_archive.clone(), &ferry_generated),
    ] {
        pull_and_verify(&proxy, &reference, &image, digest).await;
    }
    // OpenImageOptional of a missing name in a layout and in the store: 0.
    let missing_oci = format!("oci:{}:nope", layout.display());
    assert!(
        proxy
            .open_image_optional(&missing_oci)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        proxy
            .open_image_optional("store:registry.ferry.test/app:nope")
            .await
            .unwrap()
            .is_none()
    );
    proxy.finalize().await.unwrap();

    // skopeo reads the same oci:, dir: and archive images alike (it has no store:).
    let proxy = Launch::new(Peer::Skopeo, &policy, &regd)
        .start()
        .await
        .unwrap();
    for (reference, digest) in [
        (format!("oci:{}:v1", layout.display()), &image.digest),
        (format!("dir:{}", dir.display()), &image.digest),
        (oci_archive, &image.digest),
        (docker_archive, &skopeo_generated),
    ] {
        pull_and_verify(&proxy, &reference, &image, digest).await;
    }
    proxy.finalize().await.unwrap();
}

/// A dir: list of an amd64 and an arm64 image in which only the amd64 one is signed.
fn signed_dir_list(t: &Path) -> (PathBuf, Vec<TestImage>) {
    let layout = t.join("list-layout");
    let (_, _, images) = make_oci_index(&layout, "multi", 39, &["amd64", "arm64"]);
    let list = t.join("list");
    ferry(&[
        "copy",
        "-q",
        "--all",
        "--policy",
        insecure_policy(t).to_str().unwrap(),
        &format!("oci:{}:multi", layout.display()),
        &format!("dir:{}", list.display()),
    ])
    .ok();
    let hex = &images[0].digest["sha256:".len()..];
    ferry(&[
        "standalone-sign",
        list.join(format!("{hex}.manifest.json")).to_str().unwrap(),
        IDENTITY,
        &trusted_fpr(),
        "--sign-key",
        keys().join("trusted.sec.asc").to_str().unwrap(),
        "-o",
        list.join(format!("{hex}.signature-1")).to_str().unwrap(),
    ])
    .ok();
    (list, images)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_is_judged_and_served_as_this_platforms_image() {
    let t = tempfile::tempdir().unwrap();
    let (list, images) = signed_dir_list(t.path());
    let (_, policy, _) = signed_dir_image(t.path());
    let regd = empty_registries_d(t.path());
    let reference = format!("dir:{}", list.display());

    // The running platform (amd64 here): its signed image is admitted and served; the
    // digest is the instance's, as skopeo answers.
    let proxy = Launch::new(Peer::Ferry, &policy, &regd)
        .tail(&["--override-arch", "amd64"])
        .start()
        .await
        .unwrap();
    let img = proxy
        .open_image(&reference)
        .await
        .expect("the signed instance");
    let (digest, manifest) = proxy.fetch_manifest(&img).await.unwrap();
    assert_eq!(digest, images[0].digest);
    assert_eq!(
        read_blob(&proxy, &img, &manifest.layers()[0])
            .await
            .unwrap(),
        images[0].layers[0]
    );
    proxy.finalize().await.unwrap();

    // skopeo's root flag --override-arch, before the subcommand: the arm64 instance, which
    // is not signed, is refused, naming the instance.
    let mut launch = Launch::new(Peer::Ferry, &policy, &regd);
    launch
        .root
        .extend(["--override-arch".to_string(), "arm64".to_string()]);
    let proxy = launch.start().await.unwrap();
    let e = proxy.open_image(&reference).await.unwrap_err().to_string();
    assert!(
        e.contains("linux/arm64") && e.contains(&images[1].digest),
        "{e}"
    );
    proxy.finalize().await.unwrap();
}

/// Reads every layer of `reference` through the crate, hashing it as the client reads; the
/// time from the proxy's start to its exit.
async fn pull_timed(launch: &Launch, reference: &str) -> Duration {
    let started = Instant::now();
    let proxy = launch.start().await.unwrap();
    let t_start = started.elapsed();
    let img = proxy.open_image(reference).await.unwrap();
    let t_open = started.elapsed();
    let (_, manifest) = proxy.fetch_manifest(&img).await.unwrap();
    proxy.fetch_config_raw(&img).await.unwrap();
    let t_meta = started.elapsed();
    for layer in manifest.layers() {
        let (mut reader, driver) = proxy.get_descriptor(&img, layer).await.unwrap();
        let hash = async {
            let mut h = sha2::Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut n = 0u64;
            loop {
                let got = reader.read(&mut buf).await.unwrap();
                if got == 0 {
                    break;
                }
                h.update(&buf[..got]);
                n += got as u64;
            }
            (n, hex::encode(h.finalize()))
        };
        let ((n, hex), done) = tokio::join!(hash, driver);
        done.unwrap();
        assert_eq!(n, layer.size());
        assert_eq!(format!("sha256:{hex}"), layer.digest().to_string());
    }
    let t_layers = started.elapsed();
    proxy.finalize().await.unwrap();
    eprintln!(
        "  {:?}: started {t_start:.2?}, opened {t_open:.2?}, metadata {t_meta:.2?}, layers {t_layers:.2?}, done {:.2?}",
        launch.peer,
        started.elapsed()
    );
    started.elapsed()
}

/// The ferry binary under test: this build's, or for a timing of an optimised build the one
/// `FERRY_TIMING_BIN` names (`cargo build --release` first).
fn timed_ferry() -> PathBuf {
    std::env::var_os("FERRY_TIMING_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(ferry_bin)
}

/// A rough timing, not a timed test: `cargo build --release --bin ferry` and then
/// `FERRY_TIMING_BIN=target/release/ferry cargo test --test proxy -- --ignored --nocapture
/// rough_timing` (the test's own hashing is optimised in the dev profile too). Pulls an
/// 8 x 32 MiB image through the crate with ferry and with skopeo, and copies it with `ferry
/// copy` to dir:.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn rough_timing_of_an_8_x_32_mib_pull() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    make_oci_image(&layout, "v1", 38, 8, 32 << 20);
    let reference = format!("docker://{}/ns/big:v1", reg.host());
    push(t.path(), &layout, "v1", &reference, &[]);
    let policy = insecure_policy(t.path());
    let regd = empty_registries_d(t.path());
    for round in 0..3 {
        let f = pull_timed(&Launch::new(Peer::Ferry, &policy, &regd), &reference).await;
        let s = pull_timed(&Launch::new(Peer::Skopeo, &policy, &regd), &reference).await;
        let out = t.path().join(format!("copy-{round}"));
        let started = Instant::now();
        run(Command::new(timed_ferry()).args([
            "copy",
            "-q",
            "--policy",
            policy.to_str().unwrap(),
            "--src-tls-verify=false",
            &reference,
            &format!("dir:{}", out.display()),
        ]))
        .ok();
        let c = started.elapsed();
        println!(
            "round {round}: proxy ferry {:.2}s, proxy skopeo {:.2}s ({:.2}x), ferry copy to dir: {:.2}s (proxy/copy {:.2}x)",
            f.as_secs_f64(),
            s.as_secs_f64(),
            f.as_secs_f64() / s.as_secs_f64(),
            c.as_secs_f64(),
            f.as_secs_f64() / c.as_secs_f64()
        );
        std::fs::remove_dir_all(&out).unwrap();
    }
}

/// The nice value of each of the proxy `pid`'s read-ahead threads (named `ferry-read-ahead`,
/// which the kernel cuts to 15 bytes), read from /proc.
fn read_ahead_nices(pid: u32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|e| {
            let dir = e.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            if !comm.starts_with("ferry-read-ahea") {
                return None;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            // After "pid (comm) ": state is the first field, nice the 17th.
            let (_, rest) = stat.rsplit_once(") ")?;
            rest.split_whitespace().nth(16)?.parse().ok()
        })
        .collect()
}

/// Three layers just large enough to count as large (16 MiB + 1) in a registry reached through
/// a server that sends every blob at 4 MB/s a connection, and an empty spool directory.
struct SlowLarge {
    image: TestImage,
    reference: String,
    policy: PathBuf,
    regd: PathBuf,
    spool: PathBuf,
    _server: HttpServer,
    _reg: Registry,
    _t: tempfile::TempDir,
}

fn slow_large_image() -> SlowLarge {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    let image = make_oci_image(&layout, "v1", 46, 3, (16 << 20) + 1);
    push(
        t.path(),
        &layout,
        "v1",
        &format!("docker://{}/ns/slow:v1", reg.host()),
        &[],
    );
    let server = HttpServer::start(
        std::sync::Arc::new(|r: &support::http::Request| {
            if r.path.contains("/blobs/") {
                Reply::ForwardSlowly {
                    bytes_per_second: 4_000_000,
                }
            } else {
                Reply::forward()
            }
        }),
        Some(reg.host()),
    );
    let reference = format!("docker://{}/ns/slow:v1", server.host());
    let policy = insecure_policy(t.path());
    let regd = empty_registries_d(t.path());
    let spool = t.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    SlowLarge {
        image,
        reference,
        policy,
        regd,
        spool,
        _server: server,
        _reg: reg,
        _t: t,
    }
}

/// The read-ahead runs on threads of its own at the lowest CPU priority (nice 19), so that on a
/// busy host the client's own work goes first, and at the proxy's own priority while the
/// client waits on a layer it is fetching. On a slow link (every connection at 4 MB/s) the
/// large layers (16 MiB and more) are fetched all at once: each alone is slow, and more
/// connections add to it (on a fast one they go two at a time; the unit tests of the read-ahead
/// check that rule, which a loopback test cannot show without timing it).
#[test]
fn the_read_ahead_yields_the_cpu_until_the_client_waits_and_widens_on_a_slow_link() {
    let slow = slow_large_image();
    let (image, reference, spool) = (&slow.image, &slow.reference, &slow.spool);
    let launch = Launch::new(Peer::Ferry, &slow.policy, &slow.regd)
        .tail(&["--tls-verify=false"])
        .env("TMPDIR", spool.to_str().unwrap());
    let client = RawClient::start(&launch);
    let pid = client.child.id();
    let base = rustix::process::getpriority_process(None).unwrap();
    assert!(
        base < 19,
        "run this test at a nice value under 19 (it is {base})"
    );
    client.call("Initialize", json!([]));
    let (open, _) = client.call("OpenImage", json!([reference]));
    assert_eq!(open["success"], true, "{open}");
    let id = open["value"].clone();
    assert_eq!(
        wait_spools(pid, spool, 3),
        3,
        "on a slow link the three large layers are fetched at once"
    );
    let nices = read_ahead_nices(pid);
    assert!(
        !nices.is_empty(),
        "no read-ahead thread in /proc/{pid}/task"
    );
    assert!(
        nices.iter().all(|&n| n == 19),
        "nobody waits on the read-ahead: its threads at nice 19, not {nices:?} (raising a thread's priority back needs CAP_SYS_NICE: run the tests as root)"
    );
    let layer = &image.layers[0];
    let (got, seen) = std::thread::scope(|s| {
        let reader =
            s.spawn(|| client.call_piped("GetBlob", json!([id, sha256(layer), layer.len()])));
        // The client has caught up with the layer's fetch and waits on it: the read-ahead's
        // threads are back at the proxy's own priority (seen at least once while it reads).
        let mut seen = Vec::new();
        while !reader.is_finished() {
            let n = read_ahead_nices(pid);
            if !n.is_empty() && n.iter().all(|&v| v == base) {
                seen = n;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (reader.join().unwrap(), seen)
    });
    assert_eq!(got.unwrap(), *layer);
    assert!(
        !seen.is_empty(),
        "while the client waited on the read-ahead, its threads were never all at nice {base}"
    );
    // Nobody waits any more (the other two layers are still being fetched): nice 19 again.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut nices = read_ahead_nices(pid);
    while !nices.iter().all(|&n| n == 19) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        nices = read_ahead_nices(pid);
    }
    assert!(nices.iter().all(|&n| n == 19), "{nices:?}");
    drop(client);
}

/// A blob read on demand while a read-ahead runs (here the third layer, which the 17 MiB bound
/// keeps out of the read-ahead while the first is spooled) may come over a connection the
/// read-ahead opened, whose reads run on the read-ahead's threads: they are at the proxy's own
/// priority while it is read, and back at 19 after.
#[test]
fn a_blob_read_on_demand_beside_the_read_ahead_keeps_its_threads_at_the_proxys_priority() {
    let slow = slow_large_image();
    let launch = Launch::new(Peer::Ferry, &slow.policy, &slow.regd)
        .tail(&["--tls-verify=false", "--read-ahead-mib", "17"])
        .env("TMPDIR", slow.spool.to_str().unwrap());
    let client = RawClient::start(&launch);
    let pid = client.child.id();
    let base = rustix::process::getpriority_process(None).unwrap();
    assert!(
        base < 19,
        "run this test at a nice value under 19 (it is {base})"
    );
    client.call("Initialize", json!([]));
    let (open, _) = client.call("OpenImage", json!([slow.reference]));
    assert_eq!(open["success"], true, "{open}");
    let id = open["value"].clone();
    assert_eq!(
        wait_spools(pid, &slow.spool, 1),
        1,
        "the first layer alone fits"
    );
    let nices = read_ahead_nices(pid);
    assert!(
        !nices.is_empty() && nices.iter().all(|&n| n == 19),
        "nobody waits on the read-ahead: {nices:?} (raising a thread's priority back needs CAP_SYS_NICE: run the tests as root)"
    );
    let layer = &slow.image.layers[2];
    let (got, seen) = std::thread::scope(|s| {
        let reader =
            s.spawn(|| client.call_piped("GetBlob", json!([id, sha256(layer), layer.len()])));
        let mut seen = Vec::new();
        while !reader.is_finished() {
            let n = read_ahead_nices(pid);
            if !n.is_empty() && n.iter().all(|&v| v == base) {
                seen = n;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (reader.join().unwrap(), seen)
    });
    assert_eq!(got.unwrap(), *layer);
    assert_eq!(
        spool_fds(pid, &slow.spool),
        1,
        "the layer was read on demand"
    );
    assert!(
        !seen.is_empty(),
        "while the client read a blob on demand, the read-ahead's threads were never all at nice {base}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut nices = read_ahead_nices(pid);
    while !nices.iter().all(|&n| n == 19) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        nices = read_ahead_nices(pid);
    }
    assert!(nices.iter().all(|&n| n == 19), "{nices:?}");
    drop(client);
}
