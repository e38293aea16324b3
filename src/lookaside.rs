//! registries.d configuration and lookaside signature storage: where a registry's signatures
//! live, the URL of each slot, reading slots over http(s) and `file://`, and writing to `file://`.
//!
//! Files from skopeo, podman and CRI-O installs work unchanged: `default-docker` and `docker`
//! scopes (most specific first, falling through field by field like containers/image), the
//! legacy `sigstore`/`sigstore-staging` names, `use-sigstore-attachments`.
//!
//! Reading returns one [`SignatureSlot`] per slot, so a slot that fails never hides the others
//! (the basis of the `sufficient-subset` mode); see `docs/lookaside.md` for the rules that end
//! the list.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncReadExt as _;
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

/// The system registries.d directory, read when the per-user one does not exist.
pub const SYSTEM_REGISTRIES_D: &str = "/etc/containers/registries.d";

/// How much of an error answer's body goes into the slot's message.
const ERROR_BODY_PREFIX: usize = 256;

/// Why registries.d or a lookaside write failed.
#[derive(Debug, thiserror::Error)]
pub enum LookasideError {
    /// A YAML file could not be parsed.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line and column when the parser knows them.
        message: String,
    },
    /// The registries.d directory or one of its files could not be read.
    #[error("reading registries.d {path}: {source}")]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// Two files define the same section.
    #[error(
        "Error parsing signature storage configuration: {what} defined both in {a:?} and {b:?}; keep one of them"
    )]
    Duplicate {
        /// `"default-docker"` or `"docker" namespace "X"`.
        what: String,
        /// The first file.
        a: PathBuf,
        /// The second file.
        b: PathBuf,
    },
    /// A URL in the configuration is invalid, or cannot be read from.
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
    #[error("writing signatures to {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
}

/// One section: `default-docker`, or one scope under `docker`.
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

impl Section {
    /// containers/image's `signatureTopLevel`: an empty string counts as unset.
    fn top_level(&self, write: bool) -> Option<&str> {
        let staging = if write {
            non_empty(&self.lookaside_staging).or(non_empty(&self.sigstore_staging))
        } else {
            None
        };
        staging
            .or(non_empty(&self.lookaside))
            .or(non_empty(&self.sigstore))
    }
}

/// One YAML file. Unknown keys are ignored, as yaml.v3 does in containers/image; a scope with
/// an empty value (`example.com:` with its keys commented out) is a defined, empty section.
#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(rename = "default-docker")]
    default_docker: Option<Section>,
    docker: Option<BTreeMap<String, Option<Section>>>,
}

fn parse_file(text: &str, path: &Path) -> Result<File, LookasideError> {
    // A file of comments only is an empty document, which yaml.v3 accepts as an empty config.
    let parsed: Option<File> =
        serde_yaml_ng::from_str(text).map_err(|e| LookasideError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(parsed.unwrap_or_default())
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
    /// Loads every `*.yaml` file in `dir`; with `None`, in [`RegistriesConfig::default_dir`].
    /// A missing directory is an empty config; any other failure to read it is an error.
    pub fn load(dir: Option<&Path>) -> Result<RegistriesConfig, LookasideError> {
        match dir {
            Some(d) => Self::load_dir(d),
            None => Self::load_dir(&Self::default_dir()),
        }
    }

    /// `~/.config/containers/registries.d` if it exists (whatever it is, as containers/image
    /// checks only existence), else [`SYSTEM_REGISTRIES_D`].
    pub fn default_dir() -> PathBuf {
        match std::env::home_dir().map(|h| h.join(".config/containers/registries.d")) {
            Some(user) if user.exists() => user,
            _ => PathBuf::from(SYSTEM_REGISTRIES_D),
        }
    }

    fn load_dir(dir: &Path) -> Result<RegistriesConfig, LookasideError> {
        let read_err = |path: &Path, source| LookasideError::Read {
            path: path.to_path_buf(),
            source,
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RegistriesConfig::default());
            }
            Err(e) => return Err(read_err(dir, e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| read_err(dir, e))?;
            if entry.file_name().as_encoded_bytes().ends_with(b".yaml") {
                files.push(entry.path());
            }
        }
        // containers/image takes directory order; sorting makes "defined both in A and B" and
        // the first error the same on every run.
        files.sort();
        let mut config = RegistriesConfig::default();
        let mut default_from: Option<PathBuf> = None;
        let mut scope_from: BTreeMap<String, PathBuf> = BTreeMap::new();
        for path in files {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                // Removed between listing and reading: containers/image ignores it too.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(read_err(&path, e)),
            };
            let parsed = parse_file(&text, &path)?;
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
                config.docker.insert(scope, section.unwrap_or_default());
            }
        }
        Ok(config)
    }

    /// Parses one YAML document as if it were the only file (for tests and embedding);
    /// `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &Path) -> Result<RegistriesConfig, LookasideError> {
        let parsed = parse_file(text, origin)?;
        Ok(RegistriesConfig {
            default_docker: parsed.default_docker,
            docker: parsed
                .docker
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
        })
    }

    /// The sections that apply to `image`, most specific first: its full identity, its
    /// namespaces, `*.domain` wildcards, then `default-docker`.
    fn sections(&self, image: &DockerReference) -> impl Iterator<Item = &Section> {
        image
            .scopes()
            .into_iter()
            .filter_map(|s| self.docker.get(&s))
            .chain(self.default_docker.iter())
    }

    fn top_level(&self, image: &DockerReference, write: bool) -> Option<&str> {
        self.sections(image).find_map(|s| s.top_level(write))
    }

    /// Where signatures of `image` are read from: the most specific `lookaside` (or legacy
    /// `sigstore`), else [`builtin_default_base`]. Errors when the configured URL does not
    /// parse, or is not an `http`, `https` or local `file` URL.
    pub fn read_base(&self, image: &DockerReference) -> Result<Url, LookasideError> {
        let Some(configured) = self.top_level(image, false) else {
            return Ok(builtin_default_base());
        };
        let url = parse_url(configured)?;
        match url.scheme() {
            "http" | "https" => Ok(url),
            "file" => match url.host_str() {
                None | Some("") | Some("localhost") => Ok(url),
                Some(host) => Err(LookasideError::Url {
                    url: configured.to_string(),
                    message: format!(
                        "a file:// URL with the host {host:?}; write file:///ABSOLUTE/PATH (three slashes)"
                    ),
                }),
            },
            other => Err(LookasideError::Url {
                url: configured.to_string(),
                message: format!(
                    "Unsupported scheme {other:?} when reading signatures; use http, https or file"
                ),
            }),
        }
    }

    /// Where signatures of `image` are written: the most specific `lookaside-staging` (or
    /// legacy `sigstore-staging`), else `lookaside` (or `sigstore`); `None` when nothing is
    /// configured. Unlike containers/image, ferry does not fall back to the built-in default
    /// for writing (the docker transport then says that nothing is configured).
    pub fn write_base(&self, image: &DockerReference) -> Result<Option<Url>, LookasideError> {
        self.top_level(image, true).map(parse_url).transpose()
    }

    /// `use-sigstore-attachments` for `image`: the value of the most specific section that
    /// sets it; false when none does.
    pub fn use_sigstore_attachments(&self, image: &DockerReference) -> bool {
        self.sections(image)
            .find_map(|s| s.use_sigstore_attachments)
            .unwrap_or(false)
    }
}

fn parse_url(s: &str) -> Result<Url, LookasideError> {
    Url::parse(s).map_err(|e| LookasideError::Url {
        url: s.to_string(),
        message: e.to_string(),
    })
}

/// The effective user ID as containers/image's rootless helper sees it:
/// `$_CONTAINERS_ROOTLESS_UID` when set (podman sets it inside its user namespace), else the
/// process's effective UID from `/proc/self/status`.
fn effective_uid() -> Option<u32> {
    if let Ok(v) = std::env::var("_CONTAINERS_ROOTLESS_UID")
        && !v.is_empty()
    {
        // Go's Atoi failure yields 0 there; an unparsable value is treated the same way.
        return Some(v.trim().parse().unwrap_or(0));
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    // "Uid:	real	effective	saved	filesystem"
    line.split_whitespace().nth(2)?.parse().ok()
}

/// containers/image's built-in lookaside, used for reading when nothing is configured:
/// `file:///var/lib/containers/sigstore` for root, `file://$HOME/.local/share/containers/sigstore`
/// otherwise.
pub fn builtin_default_base() -> Url {
    let is_root = match effective_uid() {
        Some(uid) => uid == 0,
        None => std::env::home_dir().is_some_and(|h| h == Path::new("/root")),
    };
    let path = if is_root {
        PathBuf::from("/var/lib/containers/sigstore")
    } else {
        std::env::home_dir()
            .unwrap_or_else(|| PathBuf::from("/"))
            .join(".local/share/containers/sigstore")
    };
    match Url::from_file_path(&path) {
        Ok(u) => u,
        // Only a relative path fails, and both branches build absolute ones unless $HOME is
        // relative; then the root default is the sensible place.
        Err(()) => {
            let mut u = Url::parse("file:///").unwrap_or_else(|_| unreachable!());
            u.set_path("/var/lib/containers/sigstore");
            u
        }
    }
}

/// The URL of signature `index` (from 1) of the manifest `manifest_digest` of `image`:
/// `BASE/REPO-PATH@ALGO=HEX/signature-N`, REPO-PATH being the repository without host, tag or
/// digest. The digest is a validated [`Digest`], so no `/` or `..` can appear. Unlike
/// containers/image, a trailing `/` on the base does not produce `//`.
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

/// An error and its causes on one line, each cause once (reqwest hides the interesting part,
/// "connection refused", in its sources).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

fn is_reset(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            )
        {
            return true;
        }
        cur = c.source();
    }
    false
}

fn is_html(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html"))
}

/// What one slot's read came to.
enum Fetched {
    /// 404 or no such file: the end of the list.
    Missing,
    /// The bytes, or why not.
    Slot(Result<Vec<u8>, SlotReadError>),
    /// The base cannot be read at all; every slot would fail the same way.
    Unreadable(SlotReadError),
}

/// Reads at most `cap` bytes of the body; `Err` carries the bytes read before the failure.
async fn read_body(
    resp: &mut reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), (Vec<u8>, reqwest::Error)> {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > cap {
                    let room = cap - body.len();
                    body.extend_from_slice(&c[..room]);
                    return Ok((body, true));
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => return Ok((body, false)),
            Err(e) => return Err((body, e)),
        }
    }
}

async fn fetch_http(client: &reqwest::Client, url: &Url) -> Fetched {
    let mut resp = match client.get(url.clone()).send().await {
        Ok(r) => r,
        Err(e) => {
            let kind = if e.is_timeout() {
                SlotReadErrorKind::Timeout
            } else {
                SlotReadErrorKind::Io
            };
            let what = if e.is_timeout() {
                "no answer in time"
            } else {
                "request failed"
            };
            return Fetched::Slot(slot_err(
                kind,
                format!("{what}: {}", chain(&e.without_url())),
            ));
        }
    };
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        tracing::debug!("{} answered 404: the end of the signatures", redacted(url));
        return Fetched::Missing;
    }
    let header = |name: reqwest::header::HeaderName| {
        resp.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let content_type = header(reqwest::header::CONTENT_TYPE);
    let retry_after = header(reqwest::header::RETRY_AFTER);
    let declared = resp.content_length();
    // containers/image accepts exactly 200: 204, 206 or a redirect the client did not follow
    // are not a signature.
    if status != reqwest::StatusCode::OK {
        let first = match read_body(&mut resp, ERROR_BODY_PREFIX).await {
            Ok((b, _)) | Err((b, _)) => b,
        };
        let mut message = format!("received unexpected HTTP status: {status}");
        if let Some(r) = retry_after {
            message.push_str(&format!(", Retry-After {r:?}"));
        }
        if let Some(c) = content_type {
            message.push_str(&format!(", Content-Type {c:?}"));
        }
        if !first.is_empty() {
            message.push_str(&format!(
                ", body starts {:?}",
                String::from_utf8_lossy(&first)
            ));
        }
        return Fetched::Slot(slot_err(SlotReadErrorKind::HttpStatus, message));
    }
    if let Some(n) = declared
        && n > MAX_SIGNATURE_SIZE as u64
    {
        return Fetched::Slot(slot_err(
            SlotReadErrorKind::TooLarge,
            format!(
                "the server announced {n} bytes; exceeded maximum allowed size of {MAX_SIGNATURE_SIZE} bytes"
            ),
        ));
    }
    let body = match read_body(&mut resp, MAX_SIGNATURE_SIZE).await {
        Ok((_, true)) => {
            return Fetched::Slot(slot_err(
                SlotReadErrorKind::TooLarge,
                format!("exceeded maximum allowed size of {MAX_SIGNATURE_SIZE} bytes"),
            ));
        }
        Ok((body, false)) => body,
        Err((body, e)) => {
            let of = declared.map(|n| format!(" of {n}")).unwrap_or_default();
            let (kind, what) = if e.is_timeout() {
                (SlotReadErrorKind::Timeout, "no complete answer in time")
            } else if is_reset(&e) {
                (SlotReadErrorKind::Io, "the connection was reset")
            } else {
                (SlotReadErrorKind::Truncated, "the body ended early")
            };
            return Fetched::Slot(slot_err(
                kind,
                format!(
                    "{what} after {}{of} bytes: {}",
                    body.len(),
                    chain(&e.without_url())
                ),
            ));
        }
    };
    // hyper already fails a body shorter than its Content-Length; this guards other clients.
    if let Some(n) = declared
        && n != body.len() as u64
    {
        return Fetched::Slot(slot_err(
            SlotReadErrorKind::Truncated,
            format!("the body ended early after {} of {n} bytes", body.len()),
        ));
    }
    if let Some(ct) = &content_type
        && is_html(ct)
    {
        // As containers/image: only a warning here; format sniffing rejects the bytes later.
        tracing::warn!(
            "Signature {} has Content-Type {ct:?}, unexpected for a signature",
            redacted(url)
        );
    }
    Fetched::Slot(Ok(body))
}

async fn fetch_file(url: &Url) -> Fetched {
    let path = match url.to_file_path() {
        Ok(p) => p,
        Err(()) => {
            return Fetched::Unreadable(SlotReadError {
                kind: SlotReadErrorKind::Io,
                message: format!(
                    "{} is not a local file path; write file:///ABSOLUTE/PATH",
                    redacted(url)
                ),
            });
        }
    };
    let file = match tokio::fs::File::open(&path).await {
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
        .await
    {
        Ok(_) if body.len() > MAX_SIGNATURE_SIZE => Fetched::Slot(slot_err(
            SlotReadErrorKind::TooLarge,
            format!(
                "{}: exceeded maximum allowed size of {MAX_SIGNATURE_SIZE} bytes",
                path.display()
            ),
        )),
        Ok(_) => Fetched::Slot(Ok(body)),
        Err(e) => Fetched::Slot(slot_err(
            SlotReadErrorKind::Io,
            format!("reading {}: {e}", path.display()),
        )),
    }
}

/// Reads slots 1, 2, … of a manifest's signatures from a lookaside base over http(s) or
/// `file://`: one [`SignatureSlot`] each, `location` being the slot's URL (password redacted).
///
/// The list ends at the first 404 or missing file (that slot is not in the list), after
/// [`MAX_SLOTS`] slots, or after [`MAX_CONSECUTIVE_FAILURES`] failed slots in a row (then a
/// warning says the end is unknown). A failed slot never hides the next. `client` is the
/// caller's: it carries the registry side's TLS settings and timeout, sends no credentials,
/// and follows redirects (see [`http_client`]).
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
            "file" => fetch_file(&url).await,
            other => Fetched::Unreadable(SlotReadError {
                kind: SlotReadErrorKind::Io,
                message: format!("Unsupported scheme {other:?} when reading signature"),
            }),
        };
        let content = match fetched {
            Fetched::Missing => return out,
            Fetched::Slot(c) => c,
            Fetched::Unreadable(e) => {
                out.push(SignatureSlot {
                    index,
                    location: redacted(&url),
                    content: Err(e),
                });
                return out;
            }
        };
        failures = if content.is_err() { failures + 1 } else { 0 };
        out.push(SignatureSlot {
            index,
            location: redacted(&url),
            content,
        });
        if failures >= MAX_CONSECUTIVE_FAILURES {
            tracing::warn!(
                "{MAX_CONSECUTIVE_FAILURES} signature slots in a row could not be read at {} (up to signature-{index}); not reading further, the end of the list is unknown",
                redacted(base)
            );
            return out;
        }
    }
    tracing::warn!(
        "{} provided {MAX_SLOTS} signatures, assuming that's unreasonable and a server error; the rest are not read",
        redacted(base)
    );
    out
}

fn redacted(u: &Url) -> String {
    let mut u = u.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("xxxxx"));
    }
    u.to_string()
}

/// Writes the signatures of a manifest to a `file://` lookaside base, byte for byte, as
/// `signature-1` … `signature-K`, then removes `signature-(K+1)` … left from an older, longer
/// set. Each file is staged beside its final name, synced, and renamed into place, so a reader
/// never sees a partial file and never an empty list while an older set is replaced.
/// Directories are 0755 and files 0644 (as containers/image), so a web server can publish
/// them. Other schemes are an error.
pub fn write_signatures(
    base: &Url,
    image: &DockerReference,
    manifest_digest: &Digest,
    signatures: &[Vec<u8>],
) -> Result<(), LookasideError> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};

    match base.scheme() {
        "file" => {}
        "http" | "https" => {
            return Err(LookasideError::UnsupportedWrite {
                scheme: base.scheme().to_string(),
                url: redacted(base),
            });
        }
        other => {
            return Err(LookasideError::Url {
                url: redacted(base),
                message: format!("Unsupported scheme {other:?} when writing signatures"),
            });
        }
    }
    let path_of = |index: usize| {
        let u = signature_url(base, image, manifest_digest, index);
        u.to_file_path().map_err(|()| LookasideError::Url {
            url: redacted(base),
            message: "not a local file path; write file:///ABSOLUTE/PATH".into(),
        })
    };
    let first = path_of(1)?;
    let io = |path: &Path, source| LookasideError::Io {
        path: path.to_path_buf(),
        source,
    };
    // signature_url always ends in "/signature-N", so the file has a parent.
    let dir = first.parent().unwrap_or(Path::new("/")).to_path_buf();
    if !signatures.is_empty() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .map_err(|e| io(&dir, e))?;
    }
    for (i, bytes) in signatures.iter().enumerate() {
        let target = path_of(i + 1)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".ferry-tmp-")
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(&dir)
            .map_err(|e| io(&dir, e))?;
        tmp.write_all(bytes).map_err(|e| io(tmp.path(), e))?;
        tmp.as_file().sync_all().map_err(|e| io(&target, e))?;
        tmp.persist(&target).map_err(|e| io(&target, e.error))?;
    }
    for index in signatures.len() + 1.. {
        let stale = path_of(index)?;
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(io(&stale, e)),
        }
    }
    if dir.is_dir() {
        // The renames are durable only once the directory itself is synced.
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(&dir, e))?;
    }
    Ok(())
}

/// A client for lookaside reads: no credentials, redirects followed (reqwest's default of up
/// to 10), certificates checked unless `tls_verify` is false, and `timeout` for each request
/// including its body.
pub fn http_client(tls_verify: bool, timeout: Duration) -> reqwest::Client {
    crate::init_tls();
    reqwest::Client::builder()
        .danger_accept_invalid_certs(!tls_verify)
        .timeout(timeout)
        .build()
        // Building fails only when the TLS backend cannot start; the default client then
        // fails the same way, with reqwest's own message.
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> DockerReference {
        DockerReference::parse(s).unwrap()
    }

    fn yaml(text: &str) -> RegistriesConfig {
        RegistriesConfig::from_yaml(text, Path::new("/x.yaml")).unwrap()
    }

    #[test]
    fn comments_only_and_empty_files_are_empty_configs() {
        for text in [
            "",
            "\n",
            "# only a comment\n",
            "---\n",
            "docker:\ndefault-docker:\n",
        ] {
            let c = yaml(text);
            assert!(
                c.docker.is_empty() && c.default_docker.is_none(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_scope_with_everything_commented_out_is_defined_and_empty() {
        let c = yaml("docker:\n  example.com:\n#    lookaside: https://x/\n");
        assert!(c.docker.contains_key("example.com"));
        assert!(c.write_base(&r("example.com/a:1")).unwrap().is_none());
    }

    #[test]
    fn unknown_keys_are_ignored_and_wrong_types_name_the_file() {
        let c = yaml(
            "future-key: 1\ndocker:\n  example.com:\n    lookaside: https://x/\n    mirror: y\n",
        );
        assert_eq!(
            c.read_base(&r("example.com/a:1")).unwrap().as_str(),
            "https://x/"
        );
        let e = RegistriesConfig::from_yaml(
            "default-docker:\n  use-sigstore-attachments: [1]\n",
            Path::new("/etc/x/bad.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/etc/x/bad.yaml") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn read_base_refuses_urls_it_cannot_read() {
        for (u, want) in [
            ("ftp://x/s", "Unsupported scheme \"ftp\""),
            ("file://var/lib/sigs", "three slashes"),
            ("/var/lib/sigs", "relative URL"),
        ] {
            let c = yaml(&format!("default-docker:\n  lookaside: {u}\n"));
            let e = c.read_base(&r("a.example/b:1")).unwrap_err().to_string();
            assert!(e.contains(u) && e.contains(want), "{e}");
        }
        let c = yaml("default-docker:\n  lookaside: file://localhost/var/s\n");
        assert!(c.read_base(&r("a.example/b:1")).is_ok());
    }

    #[test]
    fn builtin_default_follows_the_effective_uid() {
        let u = builtin_default_base();
        assert_eq!(u.scheme(), "file");
        if effective_uid() == Some(0) {
            assert_eq!(u.path(), "/var/lib/containers/sigstore");
        } else {
            assert!(
                u.path().ends_with("/.local/share/containers/sigstore"),
                "{u}"
            );
        }
    }

    #[test]
    fn html_media_type_ignores_parameters_and_case() {
        assert!(is_html("text/html"));
        assert!(is_html("Text/HTML; charset=UTF-8"));
        assert!(!is_html("text/plain"));
        assert!(!is_html("application/octet-stream"));
    }
}
