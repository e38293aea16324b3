//! Every HTTP client ferry uses (the registry API, lookaside signature servers, token services)
//! is built here from one [`TlsPolicy`], so "TLS verification off" means the same thing
//! everywhere: certificates are not checked. For a registry it also allows the plain-http
//! fallback of the registry protocol (`transport::docker::client`); a lookaside URL keeps the
//! scheme registries.d gives it.

use std::time::Duration;

use super::TransportError;

/// How TLS is checked for one registry and the signature servers it sends ferry to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TlsPolicy {
    /// Verify certificates against the system's roots (and require https of registries).
    /// `false` accepts any certificate, and lets a registry be reached over plain http.
    pub verify: bool,
}

impl Default for TlsPolicy {
    fn default() -> Self {
        TlsPolicy::verified()
    }
}

impl TlsPolicy {
    /// Certificates verified: the default.
    pub fn verified() -> TlsPolicy {
        TlsPolicy { verify: true }
    }

    /// Certificates not checked, plain http allowed for registries (skopeo's
    /// `--tls-verify=false`).
    pub fn insecure() -> TlsPolicy {
        TlsPolicy { verify: false }
    }
}

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

fn builder(tls: &TlsPolicy) -> reqwest::ClientBuilder {
    crate::init_tls();
    reqwest::Client::builder()
        .danger_accept_invalid_certs(!tls.verify)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
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
pub fn registry_client(tls: &TlsPolicy, registry: &str) -> Result<reqwest::Client, TransportError> {
    build(builder(tls).pool_max_idle_per_host(16), registry)
}

/// A client for lookaside reads: no credentials, redirects followed (reqwest's default of up to
/// 10), and `timeout` for each request including its body.
pub fn lookaside_client(
    tls: &TlsPolicy,
    timeout: Duration,
) -> Result<reqwest::Client, TransportError> {
    build(
        builder(tls).timeout(timeout),
        "the lookaside signature server",
    )
}
