//! Lookaside signature storage (registries.d's `lookaside` URLs): reading the slots of a
//! manifest over http(s) and `file://`, and writing them to `file://`.
//!
//! Reading returns one [`SignatureSlot`] per slot, so a slot that fails never hides the others
//! (the basis of the `sufficient-subset` mode); see `docs/lookaside.md` for the rules that end
//! the list.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use tokio::io::AsyncReadExt as _;
use url::Url;

use crate::config::registries_d::signature_url;
use crate::digest::Digest;
use crate::reference::DockerReference;
use crate::signature::{
    MAX_SIGNATURE_SIZE, MAX_SLOTS, SignatureSlot, SlotReadError, SlotReadErrorKind,
};

/// Consecutive failed slots after which reading stops: the list's end is then unknown, and the
/// slots read so far are what the copy gets (a ferry rule; containers/image stops at the first
/// failure of any kind).
pub const MAX_CONSECUTIVE_FAILURES: usize = 3;

/// How much of an error answer's body goes into the slot's message.
const ERROR_BODY_PREFIX: usize = 256;

/// Why signatures could not be written to a lookaside.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LookasideError {
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
    /// The URL cannot be written to.
    #[error("Invalid signature storage URL {url}: {message}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        message: String,
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
                    let room = cap.saturating_sub(body.len());
                    body.extend_from_slice(c.get(..room).unwrap_or(&c));
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
/// and follows redirects (see [`crate::transport::http::lookaside_client`]).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_media_type_ignores_parameters_and_case() {
        assert!(is_html("text/html"));
        assert!(is_html("Text/HTML; charset=UTF-8"));
        assert!(!is_html("text/plain"));
        assert!(!is_html("application/octet-stream"));
    }
}
