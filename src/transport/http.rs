//! Every HTTP client ferry uses (the registry API, lookaside signature servers, token services)
//! is built here from one [`TlsPolicy`], so "TLS verification off" means the same thing
//! everywhere: certificates are not checked. For a registry it also allows the plain-http
//! fallback of the registry protocol (`transport::docker::client`); a lookaside URL keeps the
//! scheme registries.d gives it.
//!
//! Verification is the platform's (the system's roots, plus the registry's certs.d CAs), with
//! one case added where Go's verifier, and so skopeo, accepts what webpki refuses: a server
//! whose certificate is itself one of the trusted certificates (`TrustedLeafVerifier`).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use rustls::pki_types::CertificateDer;

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
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")));
    if !tls.env_proxy {
        b = b.no_proxy();
    }
    if tls.verify {
        // ferry's own rustls configuration: the platform's verifier with the certs.d CAs,
        // wrapped so that a trusted certificate presented as the server's own is judged as Go
        // judges it (see TrustedLeafVerifier).
        return Ok(b.tls_backend_preconfigured(verified_tls_config(tls, what)?));
    }
    b = b.tls_danger_accept_invalid_certs(true);
    if let Some(pair) = tls.certs.as_ref().and_then(|c| c.clients.first()) {
        let mut pem = pair.cert.pem.clone();
        pem.push(b'\n');
        pem.extend_from_slice(&pair.key.pem);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            unusable(
                what,
                &pair.cert.path,
                format!(
                    "with its key {}, it is not a PEM client certificate and key: {e}",
                    pair.key.path.display()
                ),
            )
        })?;
        b = b.identity(identity);
    }
    Ok(b)
}

fn unusable(what: &str, path: &std::path::Path, why: String) -> TransportError {
    TransportError::registry(
        what.to_string(),
        format!(
            "the certificate file {} cannot be used: {why}",
            path.display()
        ),
    )
}

/// The CA certificates of a certs.d directory, each file's PEM certificates in order.
fn certs_d_roots(
    certs: &HostCerts,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = Vec::new();
    for f in &certs.roots {
        let found = CertificateDer::pem_slice_iter(&f.pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unusable(what, &f.path, e.to_string()))?;
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
    Ok(roots)
}

/// The rustls configuration of a verifying client: the system's roots and the certs.d CAs,
/// the certs.d client certificate if there is one, HTTP/1.1 (what reqwest offers without
/// HTTP/2).
fn verified_tls_config(
    tls: &TlsPolicy,
    what: &str,
) -> Result<rustls::ClientConfig, TransportError> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let build_error = |e: rustls::Error| {
        TransportError::registry(
            what.to_string(),
            format!("cannot set up TLS verification: {e}"),
        )
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let extra = match &tls.certs {
        Some(c) => certs_d_roots(c, what)?,
        None => Vec::new(),
    };
    let platform = if extra.is_empty() {
        rustls_platform_verifier::Verifier::new(provider.clone())
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra.clone(), provider.clone())
    }
    .map_err(build_error)?;
    let verifier = TrustedLeafVerifier {
        inner: Arc::new(platform),
        certs_d: extra,
        system: OnceLock::new(),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(build_error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match tls.certs.as_ref().and_then(|c| c.clients.first()) {
        Some(pair) => {
            let bad = |why: String| {
                unusable(
                    what,
                    &pair.cert.path,
                    format!(
                        "with its key {}, it is not a PEM client certificate and key: {why}",
                        pair.key.path.display()
                    ),
                )
            };
            let chain = CertificateDer::pem_slice_iter(&pair.cert.pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(e.to_string()))?;
            if chain.is_empty() {
                return Err(bad("no PEM certificate in it".into()));
            }
            let key =
                PrivateKeyDer::from_pem_slice(&pair.key.pem).map_err(|e| bad(e.to_string()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The platform's verifier, plus the one case where Go's `x509.Verify` (and so skopeo) accepts
/// what webpki refuses: the server presents a certificate that is itself trusted, byte for
/// byte — in the registry's certs.d directory (or `--cert-dir`), or in the system's store.
/// That is what `openssl req -x509 … -subj /CN=HOST -addext subjectAltName=DNS:HOST` makes, as
/// Docker's and skopeo's documentation make a private registry's certificate: a self-signed
/// certificate marked as a CA, used as the server's. Go takes a leaf found in the roots as a
/// chain of its own and still checks its name, its validity period and, when it lists
/// extended key usages, that server authentication is one. So does this; the handshake's
/// signature is checked with the certificate's key as always, so the server must hold the
/// private key. A CA that signed some other certificate, or a certificate that is not trusted
/// itself, goes through the platform's verifier alone, as before.
#[derive(Debug)]
struct TrustedLeafVerifier {
    inner: Arc<rustls_platform_verifier::Verifier>,
    /// The registry's certs.d CAs.
    certs_d: Vec<CertificateDer<'static>>,
    /// The system's roots, read the first time a presented certificate is not among
    /// `certs_d`.
    system: OnceLock<Vec<CertificateDer<'static>>>,
}

impl TrustedLeafVerifier {
    fn is_trusted(&self, leaf: &CertificateDer<'_>) -> bool {
        if self.certs_d.iter().any(|c| c.as_ref() == leaf.as_ref()) {
            return true;
        }
        self.system
            .get_or_init(|| rustls_native_certs::load_native_certs().certs)
            .iter()
            .any(|c| c.as_ref() == leaf.as_ref())
    }
}

impl rustls::client::danger::ServerCertVerifier for TrustedLeafVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let refused = match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if !matches!(refused, rustls::Error::InvalidCertificate(_)) || !self.is_trusted(end_entity)
        {
            return Err(refused);
        }
        check_trusted_leaf(end_entity, server_name, now)?;
        tracing::debug!(
            "{server_name:?} presents a certificate that is itself trusted; accepted as Go accepts it"
        );
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The OID of the extended key usage "server authentication" (RFC 5280).
const EKU_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
/// The OID of "any extended key usage".
const EKU_ANY: &str = "2.5.29.37.0";

/// What Go checks of a trusted certificate used as the server's own: the name, the validity
/// period at `now`, and server authentication among its extended key usages if it lists any.
fn check_trusted_leaf(
    der: &CertificateDer<'_>,
    server_name: &rustls::pki_types::ServerName<'_>,
    now: rustls::pki_types::UnixTime,
) -> Result<(), rustls::Error> {
    use der::Decode;
    use rustls::CertificateError;
    let parsed = rustls::server::ParsedCertificate::try_from(der)?;
    rustls::client::verify_server_name(&parsed, server_name)?;
    let cert = x509_cert::Certificate::from_der(der.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let validity = &cert.tbs_certificate.validity;
    let now = std::time::Duration::from_secs(now.as_secs());
    if now < validity.not_before.to_unix_duration() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet,
        ));
    }
    if now > validity.not_after.to_unix_duration() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    let eku = cert
        .tbs_certificate
        .get::<x509_cert::ext::pkix::ExtendedKeyUsage>()
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    if let Some((_, usages)) = eku {
        let serves = usages
            .0
            .iter()
            .any(|oid| matches!(oid.to_string().as_str(), EKU_SERVER_AUTH | EKU_ANY));
        if !serves {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose,
            ));
        }
    }
    Ok(())
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
