//! The distribution API spoken directly, for checking what a registry on 127.0.0.1 holds
//! without ferry: plain HTTP/1.0 requests, a repository's tags, the digest a tag names, and the
//! JSON reports the commands write.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

/// Every manifest media type, for `Accept`.
pub const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// A plain HTTP/1.0 request to 127.0.0.1 (the registry closes the connection after answering)
/// with extra headers and a body: status, headers (names lowercased) and body.
pub fn request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let mut s = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {host}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write request");
    s.write_all(body).expect("write body");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("read answer");
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, answer[split + 4..].to_vec())
}

/// A request without a body, with `accept` as its `Accept` header when given.
pub fn http(
    method: &str,
    host: &str,
    path: &str,
    accept: Option<&str>,
) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    match accept {
        Some(a) => request(method, host, path, &[("Accept", a)], b""),
        None => request(method, host, path, &[], b""),
    }
}

/// The tags of a repository (empty when it does not exist).
pub fn tags(host: &str, repo: &str) -> BTreeSet<String> {
    let (status, _, body) = http("GET", host, &format!("/v2/{repo}/tags/list"), None);
    if status == 404 {
        return BTreeSet::new();
    }
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    v["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The digest of the manifest a tag (or digest) names, or None.
pub fn digest_of(host: &str, repo: &str, reference: &str) -> Option<String> {
    let (status, headers, _) = http(
        "HEAD",
        host,
        &format!("/v2/{repo}/manifests/{reference}"),
        Some(ACCEPT),
    );
    (status == 200).then(|| headers["docker-content-digest"].clone())
}

/// A JSON report a command wrote.
pub fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("report written")).expect("report JSON")
}

/// A proxy in front of the registry at `upstream` that answers every blob request `delay`
/// late, so that a copy through it takes its time (and a kill lands mid-copy).
pub fn slow_blobs_proxy(upstream: &str, delay: std::time::Duration) -> super::http::HttpServer {
    use super::http::{HttpServer, Reply, Request};
    HttpServer::start(
        std::sync::Arc::new(move |req: &Request| {
            if req.path.contains("/blobs/") {
                std::thread::sleep(delay);
            }
            Reply::forward()
        }),
        Some(upstream.to_string()),
    )
}
