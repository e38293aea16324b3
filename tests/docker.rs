//! docker:// against the real distribution registry on 127.0.0.1: pulls and pushes to and from
//! every local transport, registry to registry (mounted within a registry, transferred across),
//! lists, interop with skopeo both ways, basic and bearer auth, and faults injected by a proxy.

mod support;

use std::path::Path;

use support::http::{HttpServer, Reply, counting};
use support::registry::Registry;
use support::*;

fn push_with_skopeo(policy: &Path, layout: &Path, tag: &str, dst: &str) {
    skopeo(&[
        "copy",
        "--policy",
        policy.to_str().unwrap(),
        "--dest-tls-verify=false",
        &format!("oci:{}:{tag}", layout.display()),
        dst,
    ])
    .ok();
}

fn fcopy(policy: &Path, store: &Path, extra: &[&str], src: &str, dst: &str) -> Run {
    let mut args = vec![
        "copy",
        "-q",
        "--retry-times",
        "3",
        "--policy",
        policy.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
    ];
    args.extend_from_slice(extra);
    args.push(src);
    args.push(dst);
    ferry(&args)
}

#[test]
fn pulls_and_pushes_between_the_registry_and_every_local_transport() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let store = t.path().join("store");
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 11, 3, 300_000);
    let host = reg.host();
    push_with_skopeo(&policy, &src, "v1", &format!("docker://{host}/ns/app:v1"));

    // registry -> dir, oci, store; by tag and by digest.
    let d = t.path().join("d");
    fcopy(
        &policy,
        &store,
        &[],
        &format!("docker://{host}/ns/app:v1"),
        &format!("dir:{}", d.display()),
    )
    .ok();
    let pulled = std::fs::read(d.join("manifest.json")).unwrap();
    let digest = sha256(&pulled);
    let o = t.path().join("o");
    fcopy(
        &policy,
        &store,
        &[],
        &format!("docker://{host}/ns/app@{digest}"),
        &format!("oci:{}:x", o.display()),
    )
    .ok();
    assert_eq!(oci_manifest(&o, "x"), pulled);
    fcopy(
        &policy,
        &store,
        &[],
        &format!("docker://{host}/ns/app:v1"),
        &format!("store:{host}/ns/app:v1"),
    )
    .ok();
    // skopeo compressed the layers on push; the store has exactly what the registry serves.
    let pulled_json: serde_json::Value = serde_json::from_slice(&pulled).unwrap();
    assert_eq!(
        pulled_json["layers"].as_array().unwrap().len(),
        image.layers.len()
    );
    for l in pulled_json["layers"].as_array().unwrap() {
        let d = l["digest"].as_str().unwrap();
        let bytes = std::fs::read(store.join("blobs/sha256").join(&d["sha256:".len()..])).unwrap();
        assert_eq!(sha256(&bytes), d);
    }

    // store -> registry and oci -> registry, by tag and by digest; skopeo reads what ferry pushed.
    fcopy(
        &policy,
        &store,
        &[],
        &format!("store:{host}/ns/app:v1"),
        &format!("docker://{host}/other/app:v2"),
    )
    .ok();
    fcopy(
        &policy,
        &store,
        &[],
        &format!("oci:{}:x", o.display()),
        &format!("docker://{host}/third/app@{digest}"),
    )
    .ok();
    let theirs: serde_json::Value = serde_json::from_str(
        &skopeo(&[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{host}/other/app:v2"),
        ])
        .ok()
        .stdout,
    )
    .unwrap();
    let ours: serde_json::Value = serde_json::from_str(
        &ferry(&[
            "inspect",
            "--src-tls-verify=false",
            &format!("docker://{host}/other/app:v2"),
        ])
        .ok()
        .stdout,
    )
    .unwrap();
    for key in ["Digest", "Architecture", "Os", "Layers", "Env", "Name"] {
        assert_eq!(ours[key], theirs[key], "{key}");
    }
    assert_eq!(ours["Digest"], digest.as_str());
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/third/app@{digest}"),
    ])
    .ok()
    .stdout;
    assert_eq!(raw.as_bytes(), pulled.as_slice());
    let sk = t.path().join("sk");
    skopeo(&[
        "copy",
        "--policy",
        policy.to_str().unwrap(),
        "--src-tls-verify=false",
        &format!("docker://{host}/other/app:v2"),
        &format!("dir:{}", sk.display()),
    ])
    .ok();
    assert_eq!(std::fs::read(sk.join("manifest.json")).unwrap(), pulled);

    // A destination digest that does not match is refused before anything is written.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let r = fcopy(
        &policy,
        &store,
        &[],
        &format!("store:{host}/ns/app:v1"),
        &format!("docker://{host}/fourth/app@{wrong}"),
    )
    .code(3);
    assert!(r.stderr.contains(&wrong), "{}", r.stderr);
}

#[test]
fn registry_to_registry_mounts_within_and_transfers_across() {
    let a = Registry::start();
    let b = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let store = t.path().join("store");
    let src = t.path().join("src");
    let image = make_oci_image(&src, "v1", 12, 2, 200_000);
    push_with_skopeo(
        &policy,
        &src,
        "v1",
        &format!("docker://{}/ns/app:v1", a.host()),
    );

    // Same registry: through a counting proxy, no blob is uploaded (mounted instead).
    let proxy = HttpServer::start(counting(|_, _| Reply::forward()), Some(a.host()));
    fcopy(
        &policy,
        &store,
        &[],
        &format!("docker://{}/ns/app:v1", proxy.host()),
        &format!("docker://{}/mirror/app:v1", proxy.host()),
    )
    .ok();
    assert_eq!(
        proxy.count("PUT", "/blobs/uploads/"),
        0,
        "{:?}",
        proxy.requests()
    );
    assert_eq!(
        proxy.count("GET", "/blobs/sha256:"),
        0,
        "no blob was downloaded: {:?}",
        proxy.requests()
    );
    assert!(
        proxy.count("POST", "mount=") >= image.layers.len(),
        "{:?}",
        proxy.requests()
    );
    let m1 = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/ns/app:v1", a.host()),
    ])
    .ok()
    .stdout;
    let m2 = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/mirror/app:v1", a.host()),
    ])
    .ok()
    .stdout;
    assert_eq!(m1, m2);

    // Two registries: transferred.
    fcopy(
        &policy,
        &store,
        &[],
        &format!("docker://{}/ns/app:v1", a.host()),
        &format!("docker://{}/ns/app:v1", b.host()),
    )
    .ok();
    let m3 = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/ns/app:v1", b.host()),
    ])
    .ok()
    .stdout;
    assert_eq!(m1, m3);
    // And again: every blob is already there.
    let report = t.path().join("report.json");
    fcopy(
        &policy,
        &store,
        &["--report", report.to_str().unwrap()],
        &format!("docker://{}/ns/app:v1", a.host()),
        &format!("docker://{}/ns/app:v1", b.host()),
    )
    .ok();
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    assert!(
        r["manifests"][0]["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["action"] == "reused"),
        "{r}"
    );
    assert_eq!(r["bytes_copied"], 0);
}

#[test]
fn lists_with_all_and_with_a_platform() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let store = t.path().join("store");
    let src = t.path().join("src");
    let (index, index_digest, images) = make_oci_index(&src, "multi", 13, &["amd64", "arm64/v8"]);
    let host = reg.host();
    fcopy(
        &policy,
        &store,
        &["--all"],
        &format!("oci:{}:multi", src.display()),
        &format!("docker://{host}/multi/app:1"),
    )
    .ok();
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/multi/app:1"),
    ])
    .ok()
    .stdout;
    assert_eq!(raw.as_bytes(), index.as_slice());
    let all = t.path().join("all");
    fcopy(
        &policy,
        &store,
        &["--all"],
        &format!("docker://{host}/multi/app@{index_digest}"),
        &format!("dir:{}", all.display()),
    )
    .ok();
    assert_eq!(std::fs::read(all.join("manifest.json")).unwrap(), index);
    let arm = t.path().join("arm");
    fcopy(
        &policy,
        &store,
        &["--platform", "linux/arm64/v8"],
        &format!("docker://{host}/multi/app:1"),
        &format!("dir:{}", arm.display()),
    )
    .ok();
    assert_eq!(
        std::fs::read(arm.join("manifest.json")).unwrap(),
        images[1].manifest
    );
    // skopeo pulls the list ferry pushed, with every instance.
    let sk = t.path().join("sk");
    skopeo(&[
        "copy",
        "--all",
        "--policy",
        policy.to_str().unwrap(),
        "--src-tls-verify=false",
        &format!("docker://{host}/multi/app:1"),
        &format!("dir:{}", sk.display()),
    ])
    .ok();
    assert_eq!(std::fs::read(sk.join("manifest.json")).unwrap(), index);
}

#[test]
fn basic_auth_with_htpasswd() {
    let reg = Registry::start_with_password("ferry", "s3cret");
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let store = t.path().join("store");
    let src = t.path().join("src");
    make_oci_image(&src, "v1", 14, 1, 10_000);
    let host = reg.host();
    let dst = format!("docker://{host}/auth/app:v1");
    let home = t.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let env = [
        ("HOME", home.to_str().unwrap()),
        ("XDG_RUNTIME_DIR", home.to_str().unwrap()),
    ];
    let p = policy.to_str().unwrap();
    let args = |extra: &[&'static str]| -> Vec<&str> {
        let mut a = vec![
            "copy",
            "-q",
            "--policy",
            p,
            "--dest-tls-verify=false",
            "--src-tls-verify=false",
        ];
        a.extend_from_slice(extra);
        a
    };
    let mut no_creds = args(&[]);
    let src_ref = format!("oci:{}:v1", src.display());
    no_creds.extend([src_ref.as_str(), dst.as_str()]);
    let r = ferry_in(&no_creds, &env).code(3);
    assert!(
        r.stderr.contains(&host) && r.stderr.contains("401"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("no credentials"),
        "says which credential source was tried: {}",
        r.stderr
    );

    let mut wrong = args(&["--dest-creds", "ferry:wrong"]);
    wrong.extend([src_ref.as_str(), dst.as_str()]);
    let r = ferry_in(&wrong, &env).code(3);
    assert!(r.stderr.contains("command line"), "{}", r.stderr);

    let mut good = args(&["--dest-creds", "ferry:s3cret"]);
    good.extend([src_ref.as_str(), dst.as_str()]);
    ferry_in(&good, &env).ok();

    // Credentials from an auth file (containers auth.json format).
    let authfile = t.path().join("auth.json");
    let auth = base64_encode(b"ferry:s3cret");
    std::fs::write(
        &authfile,
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    let out = t.path().join("out");
    let out_ref = format!("dir:{}", out.display());
    let mut from_file = args(&[]);
    from_file.extend([
        "--authfile",
        authfile.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    from_file.extend([dst.as_str(), out_ref.as_str()]);
    ferry_in(&from_file, &env).ok();
    assert!(out.join("manifest.json").exists());
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn the_bearer_token_flow_through_a_token_endpoint_in_front_of_the_registry() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let store = t.path().join("store");
    let src = t.path().join("src");
    make_oci_image(&src, "v1", 15, 2, 50_000);
    let tokens = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let port_cell = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let (tk, pc) = (tokens.clone(), port_cell.clone());
    let proxy = HttpServer::start(
        counting(move |req, _| {
            if req.path.starts_with("/token") {
                let auth = req.header("authorization").unwrap_or("");
                if auth != format!("Basic {}", base64_encode(b"robot:pw")) {
                    return Reply::status(401);
                }
                let scopes: Vec<&str> = req
                    .path
                    .split('&')
                    .filter(|p| p.starts_with("scope=") || p.contains("?scope="))
                    .collect();
                let token = format!("tok{}", tk.lock().unwrap().len());
                tk.lock()
                    .unwrap()
                    .push(format!("{token} {}", scopes.join(" ")));
                return Reply::ok(
                    "application/json",
                    format!(r#"{{"token":"{token}","expires_in":300}}"#),
                );
            }
            let ok = req
                .header("authorization")
                .is_some_and(|a| a.starts_with("Bearer tok"));
            if !ok {
                let realm = format!("http://{}/token", pc.get().unwrap());
                return Reply::Bytes {
                    status: 401,
                    headers: vec![("WWW-Authenticate".into(), format!(r#"Bearer realm="{realm}",service="ferry-test""#))],
                    body: br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_vec(),
                };
            }
            Reply::forward()
        }),
        Some(reg.host()),
    );
    port_cell.set(proxy.host()).unwrap();
    fcopy(
        &policy,
        &store,
        &["--dest-creds", "robot:pw"],
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/tok/app:v1", proxy.host()),
    )
    .ok();
    fcopy(
        &policy,
        &store,
        &["--src-creds", "robot:pw"],
        &format!("docker://{}/tok/app:v1", proxy.host()),
        "store:example.com/tok:1",
    )
    .ok();
    let issued = tokens.lock().unwrap().clone();
    assert!(!issued.is_empty());
    assert!(
        issued
            .iter()
            .any(|t| t.contains("repository%3Atok%2Fapp%3Apull%2Cpush")
                || t.contains("repository:tok/app:pull,push")),
        "{issued:?}"
    );
    // Tokens are cached per scope: far fewer token requests than registry requests.
    assert!(issued.len() <= 4, "{issued:?}");
    let r = fcopy(
        &policy,
        &store,
        &["--src-creds", "robot:bad"],
        &format!("docker://{}/tok/app:v1", proxy.host()),
        "store:example.com/tok:2",
    )
    .code(3);
    assert!(
        r.stderr.contains("token") && r.stderr.contains("command line"),
        "{}",
        r.stderr
    );
}

struct Faulty {
    _reg: Registry,
    proxy: HttpServer,
    t: tempfile::TempDir,
    policy: std::path::PathBuf,
    store: std::path::PathBuf,
}

fn faulty(
    fault: impl Fn(&support::http::Request, usize) -> Option<Reply> + Send + Sync + 'static,
) -> Faulty {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let store = t.path().join("store");
    let src = t.path().join("src");
    make_oci_image(&src, "v1", 16, 2, 400_000);
    push_with_skopeo(
        &policy,
        &src,
        "v1",
        &format!("docker://{}/f/app:v1", reg.host()),
    );
    let proxy = HttpServer::start(
        counting(move |req, n| fault(req, n).unwrap_or_else(Reply::forward)),
        Some(reg.host()),
    );
    Faulty {
        _reg: reg,
        proxy,
        t,
        policy,
        store,
    }
}

#[test]
fn retries_429_with_retry_after_and_503() {
    let f = faulty(|req, n| {
        if req.path.contains("/manifests/") && n == 0 {
            return Some(Reply::Bytes {
                status: 429,
                headers: vec![("Retry-After".into(), "1".into())],
                body: b"slow down".to_vec(),
            });
        }
        if req.path.contains("/blobs/sha256:") && req.method == "GET" && n < 2 {
            return Some(Reply::status(503));
        }
        None
    });
    let started = std::time::Instant::now();
    let out = f.t.path().join("out");
    fcopy(
        &f.policy,
        &f.store,
        &[],
        &format!("docker://{}/f/app:v1", f.proxy.host()),
        &format!("dir:{}", out.display()),
    )
    .ok();
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert!(f.proxy.count("GET", "/manifests/") >= 2);
    assert!(out.join("manifest.json").exists());
    // With no retries allowed, the same faults fail the copy with the status in the message.
    let f2 = faulty(|req, _| req.path.contains("/manifests/").then(|| Reply::status(503)));
    let r = ferry(&[
        "copy",
        "-q",
        "--retry-times",
        "0",
        "--policy",
        f2.policy.to_str().unwrap(),
        "--src-tls-verify=false",
        &format!("docker://{}/f/app:v1", f2.proxy.host()),
        &format!("dir:{}", f2.t.path().join("o").display()),
    ])
    .code(3);
    assert!(r.stderr.contains("503"), "{}", r.stderr);
    assert!(!f2.t.path().join("o").exists());
}

#[test]
fn a_blob_cut_off_midway_resumes_and_lands_whole() {
    let f = faulty(|req, n| {
        (req.method == "GET"
            && req.path.contains("/blobs/sha256:")
            && req.header("range").is_none()
            && n == 0)
            .then_some(Reply::Forward {
                cut_after: Some(100_000),
                corrupt_at: None,
            })
    });
    let out = f.t.path().join("out");
    fcopy(
        &f.policy,
        &f.store,
        &[],
        &format!("docker://{}/f/app:v1", f.proxy.host()),
        &format!("dir:{}", out.display()),
    )
    .ok();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    for l in manifest["layers"].as_array().unwrap() {
        let d = l["digest"].as_str().unwrap();
        let bytes = std::fs::read(out.join(&d["sha256:".len()..])).unwrap();
        assert_eq!(sha256(&bytes), d);
    }
}

#[test]
fn a_corrupt_blob_body_fails_and_leaves_the_destination_untouched() {
    let f = faulty(|req, _| {
        (req.method == "GET" && req.path.contains("/blobs/sha256:")).then_some(Reply::Forward {
            cut_after: None,
            corrupt_at: Some(5000),
        })
    });
    let out = f.t.path().join("out");
    let r = fcopy(
        &f.policy,
        &f.store,
        &[],
        &format!("docker://{}/f/app:v1", f.proxy.host()),
        &format!("dir:{}", out.display()),
    )
    .code(3);
    assert!(r.stderr.contains("does not match"), "{}", r.stderr);
    assert!(!out.exists());
    fcopy(
        &f.policy,
        &f.store,
        &[],
        &format!("docker://{}/f/app:v1", f.proxy.host()),
        "store:example.com/corrupt:1",
    )
    .code(3);
    assert!(
        !f.store.join("index.json").exists()
            || !std::fs::read_to_string(f.store.join("index.json"))
                .unwrap()
                .contains("corrupt")
    );
}

#[test]
fn a_registry_answering_html_gets_a_clear_error() {
    let f = faulty(|req, _| req.path.contains("/manifests/").then(Reply::html));
    let r = fcopy(
        &f.policy,
        &f.store,
        &[],
        &format!("docker://{}/f/app:v1", f.proxy.host()),
        &format!("dir:{}", f.t.path().join("o").display()),
    )
    .code(3);
    assert!(r.stderr.contains("HTML"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&f.proxy.host()),
        "names the URL: {}",
        r.stderr
    );
    let r = ferry(&[
        "copy",
        "--policy",
        f.policy.to_str().unwrap(),
        "--src-tls-verify=false",
        "docker://127.0.0.1:1/nothing:here",
        "dir:/tmp/ferry-never",
    ])
    .code(3);
    assert!(
        r.stderr.contains("127.0.0.1:1"),
        "an unreachable server is named: {}",
        r.stderr
    );
}

#[test]
fn signatures_through_the_registry_signature_extension() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let store = t.path().join("store");
    let src = t.path().join("src");
    make_oci_image(&src, "v1", 17, 1, 1000);
    let host = reg.host();
    push_with_skopeo(&policy, &src, "v1", &format!("docker://{host}/ext/app:v1"));
    let stored: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let s2 = stored.clone();
    // An OpenShift-like registry: announces the extension and keeps what is PUT to it.
    let proxy = HttpServer::start(
        counting(move |req, _| {
            if req.path == "/v2/" {
                return Reply::Bytes {
                    status: 200,
                    headers: vec![("X-Registry-Supports-Signatures".into(), "1".into())],
                    body: b"{}".to_vec(),
                };
            }
            if req.path.starts_with("/extensions/v2/") {
                if req.method == "PUT" {
                    s2.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&req.body).into_owned());
                    return Reply::Bytes {
                        status: 201,
                        headers: vec![],
                        body: vec![],
                    };
                }
                let list: Vec<serde_json::Value> = s2
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|b| serde_json::from_str(b).unwrap())
                    .collect();
                return Reply::ok(
                    "application/json",
                    serde_json::json!({ "signatures": list }).to_string(),
                );
            }
            Reply::forward()
        }),
        Some(host.clone()),
    );
    // The demo's key signs here with ferry itself: use a throwaway key made by gpg.
    let gpg = support::gpg::Gpg::new();
    let key = gpg.gen_key("Extension Signer");
    let img = format!("docker://{}/ext/app:v1", proxy.host());
    fcopy(
        &policy,
        &store,
        &[
            "--sign-by",
            &key.fpr,
            "--sign-key",
            key.secret.to_str().unwrap(),
        ],
        &img,
        &img,
    )
    .ok();
    let put = stored.lock().unwrap().clone();
    assert_eq!(put.len(), 1, "one signature was PUT to the extension");
    let v: serde_json::Value = serde_json::from_str(&put[0]).unwrap();
    assert_eq!(v["type"], "atomic");
    assert_eq!(v["schemaVersion"], 2);
    // Reading back through the extension: a signedBy policy accepts the image.
    let signed = t.path().join("signed.json");
    std::fs::write(
        &signed,
        format!(
            r#"{{"default":[{{"type":"signedBy","keyType":"GPGKeys","keyPath":"{}"}}]}}"#,
            key.public.display()
        ),
    )
    .unwrap();
    let r = ferry(&[
        "policy",
        "check",
        "--policy",
        signed.to_str().unwrap(),
        "--src-tls-verify=false",
        &img,
    ])
    .ok();
    assert!(
        r.stdout.contains("ACCEPTED") && r.stdout.contains(&key.fpr),
        "{}",
        r.stdout
    );
}

#[test]
fn credentials_from_a_docker_credential_helper() {
    let reg = Registry::start_with_password("helper-user", "helper-pw");
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    make_oci_image(&src, "v1", 18, 1, 5000);
    let host = reg.host();
    // A credential helper speaking docker's protocol: `get`, the registry on stdin, JSON out.
    let bin = t.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-ferrytest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread server\n[ \"$1\" = get ] && [ \"$server\" = \"{host}\" ] || exit 1\necho '{{\"ServerURL\":\"'$server'\",\"Username\":\"helper-user\",\"Secret\":\"helper-pw\"}}'\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = t.path().join("config.json");
    std::fs::write(
        &config,
        format!(r#"{{"credHelpers":{{"{host}":"ferrytest"}}}}"#),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let home = t.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let src_ref = format!("oci:{}:v1", src.display());
    let dst = format!("docker://{host}/helped/app:v1");
    ferry_in(
        &[
            "copy",
            "-q",
            "--policy",
            policy.to_str().unwrap(),
            "--dest-tls-verify=false",
            "--authfile",
            config.to_str().unwrap(),
            &src_ref,
            &dst,
        ],
        &[("PATH", &path), ("HOME", home.to_str().unwrap())],
    )
    .ok();
    // The same through ~/.docker/config.json with credsStore, found without --authfile.
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    std::fs::write(
        home.join(".docker/config.json"),
        r#"{"credsStore":"ferrytest"}"#,
    )
    .unwrap();
    let out = t.path().join("out");
    ferry_in(
        &[
            "copy",
            "-q",
            "--policy",
            policy.to_str().unwrap(),
            "--src-tls-verify=false",
            &dst,
            &format!("dir:{}", out.display()),
        ],
        &[
            ("PATH", &path),
            ("HOME", home.to_str().unwrap()),
            ("XDG_RUNTIME_DIR", home.to_str().unwrap()),
        ],
    )
    .ok();
    assert!(out.join("manifest.json").exists());
}

#[test]
fn tls_is_verified_by_default_and_tls_verify_false_allows_a_self_signed_registry() {
    let reg = Registry::start_tls();
    let t = tempfile::tempdir().unwrap();
    let policy = insecure_policy(t.path());
    let src = t.path().join("src");
    make_oci_image(&src, "v1", 19, 1, 5000);
    let dst = format!("docker://{}/tls/app:v1", reg.host());
    let src_ref = format!("oci:{}:v1", src.display());
    let r = ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        &src_ref,
        &dst,
    ])
    .code(3);
    assert!(r.stderr.contains(&reg.host()), "{}", r.stderr);
    assert!(
        r.stderr.contains("--dest-tls-verify=false"),
        "says what to do: {}",
        r.stderr
    );
    // Unverified https for that side only; skopeo reads it back over https.
    ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--dest-tls-verify=false",
        &src_ref,
        &dst,
    ])
    .ok();
    skopeo(&["inspect", "--tls-verify=false", &dst]).ok();
    // The source side's flag does not loosen the destination's.
    let r = ferry(&[
        "copy",
        "-q",
        "--policy",
        policy.to_str().unwrap(),
        "--src-tls-verify=false",
        &src_ref,
        &dst,
    ])
    .code(3);
    assert!(r.stderr.contains(&reg.host()), "{}", r.stderr);
}
