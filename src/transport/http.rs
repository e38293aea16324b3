//! Every HTTP client ferry uses (the registry API, lookaside signature servers, token services)
//! is built here from one [`TlsPolicy`], so "TLS verification off" means the same thing
//! everywhere: certificates are not checked. For a registry it also allows the plain-http
//! fallback of the registry protocol (`transport::docker::client`); a lookaside URL keeps the
//! scheme registries.d gives it.

use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};

use super::TransportError;
use crate::config::certs_d::HostCerts;

/// How long ferry waits on a server before it calls the wait a failure (and retries, within the
/// retry limit). A slow but working registry is fine: only silence, or a trickle, fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Timeouts {
    /// The longest wait for a response's headers once the request is sent.
    pub response: Duration,
    /// A body (a download, or an upload the server stops reading) that moves fewer than
    /// [`STALL_MIN_BYTES`] in this long has stalled.
    pub stall: Duration,
}

/// Fewer bytes than this in a whole stall window is a stall: a registry sending one byte a
/// second is as stuck as one sending nothing.
pub const STALL_MIN_BYTES: u64 = 1024;

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            response: Duration::from_secs(60),
            stall: Duration::from_secs(60),
        }
    }
}

impl Timeouts {
    /// These timeouts with the given values (`None` keeps the default's).
    pub fn new(response: Option<Duration>, stall: Option<Duration>) -> Timeouts {
        let d = Timeouts::default();
        Timeouts {
            response: response.unwrap_or(d.response),
            stall: stall.unwrap_or(d.stall),
        }
    }
}

/// A body that stopped moving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no progress: {bytes} bytes in the last {} seconds (fewer than {STALL_MIN_BYTES} is a stall)",
    .window.as_secs()
)]
pub struct Stalled {
    /// Bytes in the window that stalled.
    pub bytes: u64,
    /// The window.
    pub window: Duration,
}

/// Watches a body's progress in windows of the stall timeout.
#[derive(Debug, Clone)]
pub struct ProgressWatch {
    window: Duration,
    start: Instant,
    bytes: u64,
}

impl ProgressWatch {
    /// A watch with windows of `window`, the first starting now.
    pub fn new(window: Duration) -> ProgressWatch {
        ProgressWatch {
            window,
            start: Instant::now(),
            bytes: 0,
        }
    }

    /// When the current window ends.
    pub fn deadline(&self) -> Instant {
        self.start + self.window
    }

    /// Closes the current window if it has ended: a stall when too few bytes passed in it.
    fn close_window(&mut self, now: Instant) -> Result<(), Stalled> {
        if now < self.deadline() {
            return Ok(());
        }
        if self.bytes < STALL_MIN_BYTES {
            return Err(Stalled {
                bytes: self.bytes,
                window: self.window,
            });
        }
        self.start = now;
        self.bytes = 0;
        Ok(())
    }

    /// Records `n` bytes that just passed.
    pub fn record(&mut self, n: u64) -> Result<(), Stalled> {
        self.bytes += n;
        self.close_window(Instant::now())
    }

    /// The next item of `stream`, or a stall when the window ends with too few bytes.
    pub async fn next<S, T, E>(&mut self, stream: &mut S) -> Result<Option<Result<T, E>>, Stalled>
    where
        S: Stream<Item = Result<T, E>> + Unpin,
        T: AsRef<[u8]>,
    {
        loop {
            match tokio::time::timeout_at(self.deadline().into(), stream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    self.record(chunk.as_ref().len() as u64)?;
                    return Ok(Some(Ok(chunk)));
                }
                Ok(other) => return Ok(other),
                Err(_) => self.close_window(Instant::now())?,
            }
        }
    }
}

/// How TLS is checked for one registry and the signature servers it sends ferry to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TlsPolicy {
    /// Verify certificates against the system's roots (and require https of registries).
    /// `false` accepts any certificate, and lets a registry be reached over plain http.
    pub verify: bool,
    /// CA certificates trusted for this registry besides the system's roots, and client
    /// certificates to present: what its certs.d directory holds
    /// ([`crate::config::certs_d`]). `None` when none was read.
    pub certs: Option<HostCerts>,
    /// Whether `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` are honoured, as Go's
    /// `ProxyFromEnvironment` does for skopeo. Off unless the session's config asks
    /// ([`crate::session::SessionConfig::env_proxy`], set by `from_env`): reqwest reads those
    /// variables by default, and a library must not take its route from the environment
    /// unless told to.
    pub env_proxy: bool,
}

impl Default for TlsPolicy {
    fn default() -> Self {
        TlsPolicy::verified()
    }
}

impl TlsPolicy {
    /// Certificates verified: the default.
    pub fn verified() -> TlsPolicy {
        TlsPolicy {
            verify: true,
            certs: None,
            env_proxy: false,
        }
    }

    /// Certificates not checked, plain http allowed for registries (skopeo's
    /// `--tls-verify=false`).
    pub fn insecure() -> TlsPolicy {
        TlsPolicy {
            verify: false,
            certs: None,
            env_proxy: false,
        }
    }

    /// This policy with the CAs and client certificates of a certs.d directory (an empty
    /// directory changes nothing).
    pub fn with_certs(mut self, certs: HostCerts) -> TlsPolicy {
        self.certs = (!certs.is_empty()).then_some(certs);
        self
    }

    /// This policy with the proxy variables of the environment honoured (`true`) or ignored.
    pub fn with_env_proxy(mut self, on: bool) -> TlsPolicy {
        self.env_proxy = on;
        self
    }
}

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

fn builder(tls: &TlsPolicy, what: &str) -> Result<reqwest::ClientBuilder, TransportError> {
    crate::init_tls();
    let mut b = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(!tls.verify)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")));
    if !tls.env_proxy {
        b = b.no_proxy();
    }
    if let Some(certs) = &tls.certs {
        let unusable = |path: &std::path::Path, why: String| {
            TransportError::registry(
                what.to_string(),
                format!(
                    "the certificate file {} cannot be used: {why}",
                    path.display()
                ),
            )
        };
        let mut roots = Vec::new();
        for f in &certs.roots {
            let found = reqwest::Certificate::from_pem_bundle(&f.pem)
                .map_err(|e| unusable(&f.path, e.to_string()))?;
            // Go's AppendCertsFromPEM skips what is not a PEM certificate; so does ferry, but
            // says so.
            if found.is_empty() {
                tracing::warn!(
                    "{}: no PEM certificate in it; it is not trusted as a CA",
                    f.path.display()
                );
            }
            roots.extend(found);
        }
        if !roots.is_empty() {
            b = b.tls_certs_merge(roots);
        }
        if let Some(pair) = certs.clients.first() {
            let mut pem = pair.cert.pem.clone();
            pem.push(b'\n');
            pem.extend_from_slice(&pair.key.pem);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                unusable(
                    &pair.cert.path,
                    format!(
                        "with its key {}, it is not a PEM client certificate and key: {e}",
                        pair.key.path.display()
                    ),
                )
            })?;
            b = b.identity(identity);
        }
    }
    Ok(b)
}
fn build(b: reqwest::ClientBuilder, what: &str) -> Result<reqwest::Client, TransportError> {
    b.build().map_err(|e| {
        TransportError::registry(
            what.to_string(),
            format!("cannot build an HTTP client: {e}"),
        )
    })
}

/// A client for a registry's API: connections pooled (many blobs at once share them).
/// Timeouts are not set here: reqwest's read timeout would also fire while a large upload is
/// being sent (nothing is read then), so the registry client watches answers, downloads and
/// uploads itself ([`Timeouts`], [`ProgressWatch`]).
pub fn registry_client(tls: &TlsPolicy, registry: &str) -> Result<reqwest::Client, TransportError> {
    build(builder(tls, registry)?.pool_max_idle_per_host(16), registry)
}

/// A client for lookaside reads: no credentials, redirects followed (reqwest's default of up to
/// 10), and `timeout` for each request including its body.
pub fn lookaside_client(
    tls: &TlsPolicy,
    timeout: Duration,
) -> Result<reqwest::Client, TransportError> {
    build(
        builder(tls, "the lookaside signature server")?.timeout(timeout),
        "the lookaside signature server",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_trickle_is_a_stall_and_a_steady_body_is_not() {
        let window = Duration::from_millis(200);
        // 10 bytes every 50 ms: 40 bytes a window, far under the minimum.
        let trickle = futures::stream::unfold(0u32, |n| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            (n < 100).then(|| (Ok::<_, ()>(vec![0u8; 10]), n + 1))
        });
        let mut trickle = Box::pin(trickle);
        let mut w = ProgressWatch::new(window);
        let stalled = loop {
            match w.next(&mut trickle).await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the trickle ended before the watch saw the stall"),
                Err(s) => break s,
            }
        };
        assert!(stalled.bytes < STALL_MIN_BYTES, "{stalled}");
        assert!(stalled.to_string().contains("no progress"), "{stalled}");

        // 4 KiB every 50 ms passes, however long it takes.
        let steady = futures::stream::unfold(0u32, |n| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            (n < 12).then(|| (Ok::<_, ()>(vec![0u8; 4096]), n + 1))
        });
        let mut steady = Box::pin(steady);
        let mut w = ProgressWatch::new(window);
        let mut total = 0;
        while let Some(c) = w.next(&mut steady).await.unwrap() {
            total += c.unwrap().len();
        }
        assert_eq!(total, 12 * 4096);

        // Silence is a stall too.
        let mut silent = Box::pin(futures::stream::pending::<Result<Vec<u8>, ()>>());
        let mut w = ProgressWatch::new(window);
        assert_eq!(w.next(&mut silent).await.unwrap_err().bytes, 0);
    }
}
