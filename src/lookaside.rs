//! registries.d configuration and lookaside signature storage: where a registry's signatures
//! live, the URL of each slot, reading slots over http(s) and `file://`, and writing to `file://`.
//!
//! Files from skopeo, podman and CRI-O installs work unchanged: `default-docker` and `docker`
//! scopes (most specific first, falling through field by field like containers/image), the
//! legacy `sigstore`/`sigstore-staging` names, `use-sigstore-attachments`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use url::Url;

use crate::digest::Digest;
use crate::reference::DockerReference;
use crate::signature::{
    MAX_SIGNATURE_SIZE, MAX_SLOTS, SignatureSlot, SlotReadError, SlotReadErrorKind,
};

/// Consecutive failed slots after which reading stops: the list's end is then unknown, and the
/// slots read so far are what the copy gets (a ferry rule; containers/image stops at the first
/// failure of any kind).
pub const MAX_CONSECUTIVE_FAILURES: usize = 3;

/// Why registries.d or a lookaside write failed.
#[derive(Debug, thiserror::Error)]
pub enum LookasideError {
    /// A YAML file could not be read or parsed.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Two files define the same section.
    #[error(
        "Error parsing signature storage configuration: {what} defined both in {a:?} and {b:?}"
    )]
    Duplicate {
        /// `"default-docker"` or `"docker" namespace "X"`.
        what: String,
        /// The first file.
        a: PathBuf,
        /// The second file.
        b: PathBuf,
    },
    /// A URL in the configuration is invalid.
    #[error("Invalid signature storage URL {url}: {message}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// Writing is only possible to `file://`.
    #[error(
        "Writing directly to a {scheme} lookaside {url} is not supported. Configure a lookaside-staging: location with a file:// URL in registries.d"
    )]
    UnsupportedWrite {
        /// The scheme.
        scheme: String,
        /// The URL.
        url: String,
    },
    /// A file write failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Section {
    lookaside: Option<String>,
    #[serde(rename = "lookaside-staging")]
    lookaside_staging: Option<String>,
    sigstore: Option<String>,
    #[serde(rename = "sigstore-staging")]
    sigstore_staging: Option<String>,
    #[serde(rename = "use-sigstore-attachments")]
    use_sigstore_attachments: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(rename = "default-docker")]
    default_docker: Option<Section>,
    docker: Option<BTreeMap<String, Section>>,
}

/// The merged registries.d configuration.
#[derive(Debug, Clone, Default)]
pub struct RegistriesConfig {
    default_docker: Option<Section>,
    docker: BTreeMap<String, Section>,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

impl RegistriesConfig {
    /// Loads every `*.yaml` in `dir`; with `None`, `~/.config/containers/registries.d` if it
    /// exists, else `/etc/containers/registries.d`. A missing directory is an empty config.
    pub fn load(dir: Option<&Path>) -> Result<RegistriesConfig, LookasideError> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => {
                let user = std::env::home_dir().map(|h| h.join(".config/containers/registries.d"));
                match user {
                    Some(u) if u.is_dir() => u,
                    _ => PathBuf::from("/etc/containers/registries.d"),
                }
            }
        };
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
                .collect(),
            Err(_) => return Ok(RegistriesConfig::default()),
        };
        files.sort();
        let mut config = RegistriesConfig::default();
        let mut default_from: Option<PathBuf> = None;
        let mut scope_from: BTreeMap<String, PathBuf> = BTreeMap::new();
        for path in files {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(LookasideError::Parse {
                        path,
                        message: e.to_string(),
                    });
                }
            };
            let parsed: File = if text.trim().is_empty() {
                File::default()
            } else {
                serde_yaml_ng::from_str(&text).map_err(|e| LookasideError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            };
            if let Some(d) = parsed.default_docker {
                if let Some(a) = &default_from {
                    return Err(LookasideError::Duplicate {
                        what: "\"default-docker\"".into(),
                        a: a.clone(),
                        b: path,
                    });
                }
                default_from = Some(path.clone());
                config.default_docker = Some(d);
            }
            for (scope, section) in parsed.docker.unwrap_or_default() {
                if let Some(a) = scope_from.get(&scope) {
                    return Err(LookasideError::Duplicate {
                        what: format!("\"docker\" namespace {scope:?}"),
                        a: a.clone(),
                        b: path,
                    });
                }
                scope_from.insert(scope.clone(), path.clone());
                config.docker.insert(scope, section);
            }
        }
        Ok(config)
    }

    /// Parses one YAML document (for tests and embedding).
    pub fn from_yaml(text: &str, origin: &Path) -> Result<RegistriesConfig, LookasideError> {
        let parsed: File = serde_yaml_ng::from_str(text).map_err(|e| LookasideError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(RegistriesConfig {
            default_docker: parsed.default_docker,
            docker: parsed.docker.unwrap_or_default(),
        })
    }

    fn sections(&self, image: &DockerReference) -> Vec<&Section> {
        image
            .scopes()
            .iter()
            .filter_map(|s| self.docker.get(s))
            .chain(self.default_docker.iter())
            .collect()
    }

    fn first(
        &self,
        image: &DockerReference,
        pick: impl Fn(&Section) -> Option<&str>,
    ) -> Result<Option<Url>, LookasideError> {
        for s in self.sections(image) {
            if let Some(u) = pick(s) {
                return Url::parse(u).map(Some).map_err(|e| LookasideError::Url {
                    url: u.to_string(),
                    message: e.to_string(),
                });
            }
        }
        Ok(None)
    }

    /// Where signatures of `image` are read from: the most specific `lookaside` (or legacy
    /// `sigstore`), else the built-in default directory.
    pub fn read_base(&self, image: &DockerReference) -> Result<Url, LookasideError> {
        let found = self.first(image, |s| {
            non_empty(&s.lookaside).or(non_empty(&s.sigstore))
        })?;
        Ok(found.unwrap_or_else(builtin_default))
    }

    /// Where signatures of `image` are written: `lookaside-staging` (or legacy
    /// `sigstore-staging`), else `lookaside` (or `sigstore`); `None` when nothing is configured.
    pub fn write_base(&self, image: &DockerReference) -> Result<Option<Url>, LookasideError> {
        self.first(image, |s| {
            non_empty(&s.lookaside_staging)
                .or(non_empty(&s.sigstore_staging))
                .or(non_empty(&s.lookaside))
                .or(non_empty(&s.sigstore))
        })
    }

    /// `use-sigstore-attachments` for `image` (the first section that sets it; default false).
    pub fn use_sigstore_attachments(&self, image: &DockerReference) -> bool {
        self.sections(image)
            .into_iter()
            .find_map(|s| s.use_sigstore_attachments)
            .unwrap_or(false)
    }
}

/// containers/image's built-in lookaside when nothing is configured.
fn builtin_default() -> Url {
    let is_root = std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::env::home_dir().is_some_and(|h| h == Path::new("/root"));
    let path = if is_root {
        PathBuf::from("/var/lib/containers/sigstore")
    } else {
        std::env::home_dir()
            .unwrap_or_else(|| PathBuf::from("/"))
            .join(".local/share/containers/sigstore")
    };
    Url::from_directory_path(&path)
        .unwrap_or_else(|_| Url::parse("file:///var/lib/containers/sigstore/").expect("static URL"))
}

/// The URL of signature `index` (from 1) of the manifest `manifest_digest` of `image`:
/// `BASE/REPO-PATH@ALGO=HEX/signature-N`, with the base's path joined naively as
/// containers/image does. The digest is a validated [`Digest`], so no `/` or `..` can appear.
pub fn signature_url(
    base: &Url,
    image: &DockerReference,
    manifest_digest: &Digest,
    index: usize,
) -> Url {
    let mut u = base.clone();
    let path = format!(
        "{}/{}@{}={}/signature-{}",
        base.path().trim_end_matches('/'),
        image.path(),
        manifest_digest.algorithm().name(),
        manifest_digest.hex(),
        index
    );
    u.set_path(&path);
    u
}

fn slot_err(kind: SlotReadErrorKind, message: String) -> Result<Vec<u8>, SlotReadError> {
    Err(SlotReadError { kind, message })
}

enum Fetched {
    Missing,
    Slot(Result<Vec<u8>, SlotReadError>),
}

async fn fetch_http(client: &reqwest::Client, url: &Url) -> Fetched {
    let resp = match client.get(url.clone()).send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Fetched::Slot(slot_err(
                SlotReadErrorKind::Timeout,
                format!("no answer in time: {e}"),
            ));
        }
        Err(e) => {
            return Fetched::Slot(slot_err(
                SlotReadErrorKind::Io,
                format!("request failed: {e}"),
            ));
        }
    };
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Fetched::Missing;
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let declared = resp.content_length();
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    let mut too_large = false;
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => {
                if body.len() + c.len() > MAX_SIGNATURE_SIZE {
                    too_large = true;
                    break;
                }
                body.extend_from_slice(&c);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if !status.is_success() {
        let first = String::from_utf8_lossy(&body[..body.len().min(64)]).into_owned();
        return Fetched::Slot(slot_err(
            SlotReadErrorKind::HttpStatus,
            format!(
                "received unexpected HTTP status: {status}{}{}",
                content_type
                    .as_deref()
                    .map(|c| format!(", Content-Type {c:?}"))
                    .unwrap_or_default(),
                if first.is_empty() {
                    String::new()
                } else {
                    format!(", body starts {first:?}")
                }
            ),
        ));
    }
    if too_large {
        return Fetched::Slot(slot_err(
            SlotReadErrorKind::TooLarge,
            format!("exceeded maximum allowed size of {MAX_SIGNATURE_SIZE} bytes"),
        ));
    }
    if let Some(e) = failure {
        let kind = if e.is_timeout() {
            SlotReadErrorKind::Timeout
        } else {
            SlotReadErrorKind::Truncated
        };
        return Fetched::Slot(slot_err(
            kind,
            format!(
                "the body ended after {}{} bytes: {e}",
                body.len(),
                declared.map(|n| format!(" of {n}")).unwrap_or_default()
            ),
        ));
    }
    if let Some(n) = declared
        && n != body.len() as u64
    {
        return Fetched::Slot(slot_err(
            SlotReadErrorKind::Truncated,
            format!("the body ended after {} of {n} bytes", body.len()),
        ));
    }
    if let Some(ct) = &content_type
        && ct
            .split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html"))
    {
        tracing::warn!("Signature {url} has Content-Type {ct:?}, unexpected for a signature");
    }
    Fetched::Slot(Ok(body))
}

fn fetch_file(url: &Url) -> Fetched {
    use std::io::Read;
    let Ok(path) = url.to_file_path() else {
        return Fetched::Slot(slot_err(
            SlotReadErrorKind::Io,
            format!("{url} is not a local file path"),
        ));
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Fetched::Missing,
        Err(e) => {
            return Fetched::Slot(slot_err(
                SlotReadErrorKind::Io,
                format!("open {}: {e}", path.display()),
            ));
        }
    };
    let mut body = Vec::new();
    match file
        .take(MAX_SIGNATURE_SIZE as u64 + 1)
        .read_to_end(&mut body)
    {
        Ok(_) if body.len() > MAX_SIGNATURE_SIZE => Fetched::Slot(slot_err(
            SlotReadErrorKind::TooLarge,
            format!("exceeded maximum allowed size of {MAX_SIGNATURE_SIZE} bytes"),
        )),
        Ok(_) => Fetched::Slot(Ok(body)),
        Err(e) => Fetched::Slot(slot_err(
            SlotReadErrorKind::Io,
            format!("reading {}: {e}", path.display()),
        )),
    }
}

/// Reads slots 1, 2, … of a manifest's signatures from a lookaside base over http(s) or
/// `file://`: one [`SignatureSlot`] each, until the first 404 or missing file, 128 slots, or
/// [`MAX_CONSECUTIVE_FAILURES`] failed slots in a row. `client` carries the registry's TLS
/// settings, no credentials, and follows redirects.
pub async fn read_signatures(
    client: &reqwest::Client,
    base: &Url,
    image: &DockerReference,
    manifest_digest: &Digest,
) -> Vec<SignatureSlot> {
    let mut out = Vec::new();
    let mut failures = 0;
    for index in 1..=MAX_SLOTS {
        let url = signature_url(base, image, manifest_digest, index);
        let fetched = match url.scheme() {
            "http" | "https" => fetch_http(client, &url).await,
            "file" => fetch_file(&url),
            other => Fetched::Slot(slot_err(
                SlotReadErrorKind::Io,
                format!("Unsupported scheme {other:?} when reading signature from {url}"),
            )),
        };
        let content = match fetched {
            Fetched::Missing => break,
            Fetched::Slot(c) => c,
        };
        failures = if content.is_err() { failures + 1 } else { 0 };
        out.push(SignatureSlot {
            index,
            location: redacted(&url),
            content,
        });
        if failures >= MAX_CONSECUTIVE_FAILURES {
            tracing::warn!(
                "{MAX_CONSECUTIVE_FAILURES} signature slots in a row could not be read at {}; the end of the list is unknown",
                redacted(base)
            );
            break;
        }
    }
    out
}

fn redacted(u: &Url) -> String {
    let mut u = u.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("xxxxx"));
    }
    u.to_string()
}

/// Writes the signatures of a manifest to a `file://` lookaside base: staged in a temporary
/// directory and renamed into place, replacing an older set whole.
pub fn write_signatures(
    base: &Url,
    image: &DockerReference,
    manifest_digest: &Digest,
    signatures: &[Vec<u8>],
) -> Result<(), LookasideError> {
    if base.scheme() != "file" {
        return Err(LookasideError::UnsupportedWrite {
            scheme: base.scheme().to_string(),
            url: redacted(base),
        });
    }
    let first = signature_url(base, image, manifest_digest, 1);
    let dir = first
        .to_file_path()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or_else(|| LookasideError::Url {
            url: first.to_string(),
            message: "not a local path".into(),
        })?;
    let parent = dir.parent().unwrap_or(Path::new("/")).to_path_buf();
    let io = |path: &Path, source| LookasideError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(&parent).map_err(|e| io(&parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".ferry-tmp-")
        .tempdir_in(&parent)
        .map_err(|e| io(&parent, e))?;
    for (i, s) in signatures.iter().enumerate() {
        let p = staging.path().join(format!("signature-{}", i + 1));
        std::fs::write(&p, s).map_err(|e| io(&p, e))?;
    }
    let staged = staging.keep();
    if dir.exists() {
        let aside = parent.join(format!(".ferry-old-{}", manifest_digest.hex()));
        let _ = std::fs::remove_dir_all(&aside);
        std::fs::rename(&dir, &aside).map_err(|e| io(&dir, e))?;
        std::fs::rename(&staged, &dir).map_err(|e| io(&dir, e))?;
        let _ = std::fs::remove_dir_all(&aside);
    } else {
        std::fs::rename(&staged, &dir).map_err(|e| io(&dir, e))?;
    }
    Ok(())
}

/// A client for lookaside reads: no credentials, redirects followed, a per-request timeout.
pub fn http_client(tls_verify: bool, timeout: Duration) -> reqwest::Client {
    crate::init_tls();
    reqwest::Client::builder()
        .danger_accept_invalid_certs(!tls_verify)
        .timeout(timeout)
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> DockerReference {
        DockerReference::parse(s).unwrap()
    }

    #[test]
    fn scopes_fall_through_field_by_field() {
        let c = RegistriesConfig::from_yaml(
            r#"
default-docker:
  lookaside: https://default.example/sigs
docker:
  registry.example.com:
    lookaside: https://reg.example/sigs
    lookaside-staging: file:///staging
  registry.example.com/ns/app:
    use-sigstore-attachments: true
  registry.example.com/legacy:
    sigstore: https://legacy.example/sigs
  "*.example.org":
    lookaside: https://wild.example/sigs
"#,
            Path::new("/x.yaml"),
        )
        .unwrap();
        let app = r("registry.example.com/ns/app:1");
        assert_eq!(
            c.read_base(&app).unwrap().as_str(),
            "https://reg.example/sigs"
        );
        assert_eq!(
            c.write_base(&app).unwrap().unwrap().as_str(),
            "file:///staging"
        );
        assert!(c.use_sigstore_attachments(&app));
        assert!(!c.use_sigstore_attachments(&r("registry.example.com/other:1")));
        assert_eq!(
            c.read_base(&r("registry.example.com/legacy/x:1"))
                .unwrap()
                .as_str(),
            "https://legacy.example/sigs"
        );
        assert_eq!(
            c.read_base(&r("a.example.org/x:1")).unwrap().as_str(),
            "https://wild.example/sigs"
        );
        assert_eq!(
            c.read_base(&r("elsewhere.io/x:1")).unwrap().as_str(),
            "https://default.example/sigs"
        );
        assert_eq!(
            c.write_base(&r("elsewhere.io/x:1"))
                .unwrap()
                .unwrap()
                .as_str(),
            "https://default.example/sigs"
        );
        let empty = RegistriesConfig::default();
        assert_eq!(empty.read_base(&app).unwrap().scheme(), "file");
        assert!(empty.write_base(&app).unwrap().is_none());
    }

    #[test]
    fn urls_like_containers_image() {
        let d = Digest::sha256_of(b"m");
        let u = signature_url(
            &Url::parse("https://example.com/lookaside").unwrap(),
            &r("busybox:1"),
            &d,
            2,
        );
        assert_eq!(
            u.as_str(),
            format!(
                "https://example.com/lookaside/library/busybox@sha256={}/signature-2",
                d.hex()
            )
        );
        let f = signature_url(
            &Url::parse("file:///var/lib/sigs").unwrap(),
            &r("example.com/ns/app:1"),
            &d,
            1,
        );
        assert_eq!(
            f.as_str(),
            format!("file:///var/lib/sigs/ns/app@sha256={}/signature-1", d.hex())
        );
    }

    #[test]
    fn files_merge_and_duplicates_name_both_files() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("a.yaml"),
            "docker:\n  example.com:\n    lookaside: https://a/\n",
        )
        .unwrap();
        std::fs::write(
            t.path().join("b.yaml"),
            "default-docker:\n  sigstore: https://b/\n",
        )
        .unwrap();
        std::fs::write(t.path().join("ignored.txt"), "not: [yaml").unwrap();
        let c = RegistriesConfig::load(Some(t.path())).unwrap();
        assert_eq!(
            c.read_base(&r("example.com/x:1")).unwrap().as_str(),
            "https://a/"
        );
        std::fs::write(
            t.path().join("c.yaml"),
            "docker:\n  example.com:\n    lookaside: https://c/\n",
        )
        .unwrap();
        let e = RegistriesConfig::load(Some(t.path()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a.yaml") && e.contains("c.yaml") && e.contains("example.com"),
            "{e}"
        );
        std::fs::remove_file(t.path().join("c.yaml")).unwrap();
        std::fs::write(t.path().join("d.yaml"), "docker: [unclosed").unwrap();
        let e = RegistriesConfig::load(Some(t.path()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("d.yaml"), "{e}");
        assert!(
            RegistriesConfig::load(Some(&t.path().join("missing")))
                .unwrap()
                .docker
                .is_empty()
        );
    }

    #[tokio::test]
    async fn file_lookaside_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let base = Url::from_directory_path(t.path()).unwrap();
        let img = r("example.com/ns/app:1");
        let d = Digest::sha256_of(b"manifest");
        write_signatures(
            &base,
            &img,
            &d,
            &[
                b"\x90one".to_vec(),
                b"\x90two".to_vec(),
                b"\x90three".to_vec(),
            ],
        )
        .unwrap();
        write_signatures(&base, &img, &d, &[b"\x90one".to_vec(), b"\x90two".to_vec()]).unwrap();
        let slots =
            read_signatures(&http_client(true, Duration::from_secs(5)), &base, &img, &d).await;
        assert_eq!(slots.len(), 2, "the older third signature is gone");
        assert_eq!(slots[1].content.as_ref().unwrap(), b"\x90two");
        let big = vec![0x90u8; MAX_SIGNATURE_SIZE + 10];
        write_signatures(&base, &img, &d, &[big]).unwrap();
        let slots =
            read_signatures(&http_client(true, Duration::from_secs(5)), &base, &img, &d).await;
        assert_eq!(
            slots[0].content.as_ref().unwrap_err().kind,
            SlotReadErrorKind::TooLarge
        );
        assert!(write_signatures(&Url::parse("https://x/").unwrap(), &img, &d, &[]).is_err());
    }
}
