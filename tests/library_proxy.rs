//! The proxy variables (`HTTP_PROXY` and its kin) reach the registry only when asked: the
//! library built from `SessionConfig::default()` connects directly whatever the environment
//! says; `SessionConfig::from_env` (what the CLI uses) honours them, as skopeo does.
//!
//! Alone in its test binary: it sets the process's environment, before any thread of its own
//! is started, so nothing reads the environment while it changes.

mod support;

use std::path::Path;
use std::sync::Arc;

use ferry::ImageReference;
use ferry::Policy;
use ferry::{CopyOptions, SignatureMode, copy};
use ferry::{Session, SessionConfig};
use support::http::{HttpServer, Reply, counting};
use support::registry::Registry;
use support::*;

#[test]
fn proxy_variables_are_honoured_only_when_the_config_asks() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let lax = insecure_policy(t.path());
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/demo/hello-dir");
    let image = format!("docker://{}/ns/app:v1", reg.host());
    ferry(&[
        "copy",
        "-q",
        "--remove-signatures",
        "--policy",
        lax.to_str().unwrap(),
        "--dest-tls-verify=false",
        &format!("dir:{}", demo.display()),
        &image,
    ])
    .ok();
    // A proxy that refuses everything, so going through it fails and is counted.
    let proxy = HttpServer::start(counting(|_, _| Reply::status(502)), None);
    let hits = || proxy.requests().len();
    // SAFETY: no other thread of this test reads the environment while it is set: the
    // harness runs this binary's only test, and the servers above never read it.
    unsafe {
        for v in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
        ] {
            std::env::set_var(v, proxy.url());
        }
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let policy = Arc::new(
        Policy::from_bytes(
            br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
            "inline",
        )
        .unwrap(),
    );
    let src = ImageReference::parse(&image).unwrap();
    let mut options = CopyOptions::new(policy);
    options.gate.mode = SignatureMode::RemoveSignatures;
    options.gate.source.tls_verify = Some(false);
    options.gate.source.retry_times = Some(0);
    let run = |config: SessionConfig, name: &str| {
        let dst = ImageReference::parse(&format!("dir:{}", t.path().join(name).display())).unwrap();
        rt.block_on(copy(&Session::new(config), &src, &dst, &options))
            .map(drop)
            .map_err(|e| e.to_string())
    };

    // The library's default connects directly.
    run(SessionConfig::default(), "direct").unwrap();
    assert_eq!(hits(), 0, "the default session went through the proxy");
    assert!(t.path().join("direct/manifest.json").exists());

    // Asked to, it goes through the proxy (which refuses).
    let mut config = SessionConfig::default();
    config.env_proxy = true;
    let e = run(config, "proxied").unwrap_err();
    assert!(hits() > 0, "env_proxy did not use the proxy: {e}");
    assert!(!t.path().join("proxied/manifest.json").exists());

    // The CLI takes the environment as skopeo does.
    let before = hits();
    let r = ferry(&[
        "inspect",
        "--tls-verify=false",
        "--retry-times",
        "0",
        &image,
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(hits() > before, "the CLI ignored HTTP_PROXY: {}", r.stderr);
}
