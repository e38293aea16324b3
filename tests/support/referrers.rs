//! An OCI 1.1 referrers API in front of a real registry that has none (distribution 2.8): a
//! proxy on 127.0.0.1 that watches manifests pushed through it, answers
//! `GET /v2/NAME/referrers/DIGEST` (filtered by `artifactType`) from the ones that name a
//! subject, and says `OCI-Subject` when it takes one, as the distribution spec asks of a
//! registry with the API. Everything else goes to the registry unchanged.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use super::http::{HttpServer, Reply, Request};
use super::sha256;

/// Referrer descriptors by (repository, subject digest).
type Index = Arc<Mutex<BTreeMap<(String, String), Vec<serde_json::Value>>>>;

/// A registry with the referrers API (the proxy, and what it indexed).
pub struct ReferrersRegistry {
    /// The proxy.
    pub server: HttpServer,
    index: Index,
}

impl ReferrersRegistry {
    /// A proxy in front of the registry at `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> ReferrersRegistry {
        let index: Index = Arc::default();
        let idx = index.clone();
        let up = upstream.to_string();
        let server = HttpServer::start(
            Arc::new(move |r: &Request| handle(r, &up, &idx)),
            Some(upstream.to_string()),
        );
        ReferrersRegistry { server, index }
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn host(&self) -> String {
        self.server.host()
    }

    /// The digests of the referrers it indexed for `repo`'s `subject`, sorted.
    pub fn referrers(&self, repo: &str, subject: &str) -> Vec<String> {
        self.index
            .lock()
            .unwrap()
            .get(&(repo.to_string(), subject.to_string()))
            .map(|l| {
                let mut d: Vec<String> = l
                    .iter()
                    .map(|d| d["digest"].as_str().unwrap().to_string())
                    .collect();
                d.sort();
                d
            })
            .unwrap_or_default()
    }
}

/// `/v2/NAME/{referrers|manifests}/REF` → (NAME, what, REF).
fn split(path: &str) -> Option<(String, &str, String)> {
    let p = path.split('?').next()?.strip_prefix("/v2/")?;
    for what in ["referrers", "manifests"] {
        if let Some(i) = p.rfind(&format!("/{what}/")) {
            return Some((
                p[..i].to_string(),
                what,
                p[i + what.len() + 2..].to_string(),
            ));
        }
    }
    None
}

fn handle(r: &Request, upstream: &str, index: &Index) -> Reply {
    let Some((repo, what, reference)) = split(&r.path) else {
        return Reply::forward();
    };
    if what == "referrers" && r.method == "GET" {
        let filter = r
            .path
            .split_once('?')
            .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("artifactType=")))
            .map(|t| t.replace("%2B", "+").replace("%2F", "/"));
        let list: Vec<serde_json::Value> = index
            .lock()
            .unwrap()
            .get(&(repo, reference))
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|d| {
                filter
                    .as_ref()
                    .is_none_or(|f| d["artifactType"] == f.as_str())
            })
            .collect();
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": list,
        });
        let mut headers = vec![(
            "Content-Type".to_string(),
            "application/vnd.oci.image.index.v1+json".to_string(),
        )];
        if filter.is_some() {
            headers.push(("OCI-Filters-Applied".into(), "artifactType".into()));
        }
        return Reply::Bytes {
            status: 200,
            headers,
            body: serde_json::to_vec(&body).unwrap(),
        };
    }
    if what == "manifests" && r.method == "PUT" {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        if let Some(subject) = v.pointer("/subject/digest").and_then(|d| d.as_str()) {
            let (status, headers, body) = put_upstream(upstream, r);
            let mut headers = headers;
            if (200..300).contains(&status) {
                let mut d = serde_json::json!({
                    "mediaType": r.header("content-type").unwrap_or("application/vnd.oci.image.manifest.v1+json"),
                    "digest": sha256(&r.body),
                    "size": r.body.len(),
                });
                let t = v
                    .get("artifactType")
                    .or_else(|| v.pointer("/config/mediaType"))
                    .cloned();
                if let Some(t) = t {
                    d["artifactType"] = t;
                }
                if let Some(a) = v.get("annotations") {
                    d["annotations"] = a.clone();
                }
                let mut idx = index.lock().unwrap();
                let list = idx.entry((repo, subject.to_string())).or_default();
                if !list.iter().any(|x| x["digest"] == d["digest"]) {
                    list.push(d);
                }
                headers.push(("OCI-Subject".into(), subject.to_string()));
            }
            return Reply::Bytes {
                status,
                headers,
                body,
            };
        }
    }
    Reply::forward()
}

/// The request, sent to the registry on a connection of its own; its answer's status, the
/// headers that matter to a client (Location, Docker-Content-Digest) and body.
fn put_upstream(upstream: &str, r: &Request) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(upstream).expect("connect to the registry");
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {upstream}\r\nConnection: close\r\n",
        r.method, r.path
    );
    for (k, v) in &r.headers {
        if k != "host" && k != "connection" && k != "content-length" {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", r.body.len()));
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&r.body).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let body = answer[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            k == "location" || k == "docker-content-digest" || k == "content-type"
        })
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    (status, headers, body)
}
