//! Issue 25: a runtime branches on what kind of failure a pull met without reading its text.
//! Each registry failure class, made real on 127.0.0.1 (a fault server answering 401, 403, 429
//! and 500, a closed port, a server that speaks plain http to a TLS client), comes back from
//! the library with its `ErrorKind`; a policy rejection comes back as `Rejected`.

mod support;

use std::sync::Arc;

use ferry::ErrorKind;
use ferry::ImageReference;
use ferry::Policy;
use ferry::{CopyOptions, SignatureMode, copy};
use ferry::{Session, SessionConfig};
use support::http::{HttpServer, Reply};

fn policy(json: &str) -> Arc<Policy> {
    Arc::new(Policy::from_bytes(json.as_bytes(), "inline").unwrap())
}

fn pull(image: &str, tls_verify: bool, policy_json: &str) -> ErrorKind {
    let t = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut options = CopyOptions::new(policy(policy_json));
    options.gate.mode = SignatureMode::RemoveSignatures;
    options.gate.source.tls_verify = Some(tls_verify);
    options.gate.source.retry_times = Some(0);
    let src = ImageReference::parse(image).unwrap();
    let dst = ImageReference::parse(&format!("dir:{}", t.path().join("out").display())).unwrap();
    let e = rt
        .block_on(copy(
            &Session::new(SessionConfig::default()),
            &src,
            &dst,
            &options,
        ))
        .expect_err("the pull must fail");
    assert!(
        !t.path().join("out").exists(),
        "nothing is written on failure"
    );
    e.kind()
}

const ACCEPT: &str = r#"{"default":[{"type":"insecureAcceptAnything"}]}"#;

#[test]
fn each_registry_failure_has_its_kind() {
    for (status, kind) in [
        (401, ErrorKind::Unauthorized),
        (403, ErrorKind::Denied),
        (429, ErrorKind::RateLimited),
        (500, ErrorKind::Server),
        (418, ErrorKind::Protocol),
    ] {
        let server = HttpServer::start(
            Arc::new(move |_: &support::http::Request| match status {
                429 => Reply::too_many_requests(0),
                s => Reply::status(s),
            }),
            None,
        );
        let got = pull(
            &format!("docker://{}/ns/app:v1", server.host()),
            false,
            ACCEPT,
        );
        assert_eq!(got, kind, "a registry answering {status}");
        assert_eq!(got.is_transient(), matches!(status, 429 | 500));
    }
    let missing = HttpServer::start(
        Arc::new(|r: &support::http::Request| {
            if r.path == "/v2/" {
                Reply::ok("application/json", "{}")
            } else {
                Reply::not_found()
            }
        }),
        None,
    );
    assert_eq!(
        pull(
            &format!("docker://{}/ns/app:v1", missing.host()),
            false,
            ACCEPT
        ),
        ErrorKind::NotFound
    );
}

#[test]
fn network_and_tls_failures_have_their_kinds() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert_eq!(
        pull(
            &format!("docker://127.0.0.1:{port}/ns/app:v1"),
            true,
            ACCEPT
        ),
        ErrorKind::Unreachable
    );
    // A server that speaks plain http, asked for https with verification on.
    let plain = HttpServer::start(
        Arc::new(|_: &support::http::Request| Reply::status(200)),
        None,
    );
    assert_eq!(
        pull(
            &format!("docker://{}/ns/app:v1", plain.host()),
            true,
            ACCEPT
        ),
        ErrorKind::Tls
    );
}

#[test]
fn a_rejection_is_not_a_failure_to_check() {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/demo/hello-dir");
    let kind = pull(
        &format!("dir:{}", demo.display()),
        true,
        r#"{"default":[{"type":"reject"}]}"#,
    );
    assert_eq!(kind, ErrorKind::Rejected);
}
