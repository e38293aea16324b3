//! What kind of failure an error is, for a caller to branch on without reading its text: every
//! command-level error of the library ([`crate::copy::CopyError`],
//! [`crate::transport::TransportError`], [`crate::policy::PolicyError`], …) answers `kind()`.
//! The CLI turns a kind into an exit status in one match; a runtime can retry on
//! [`ErrorKind::RateLimited`] or ask for credentials on [`ErrorKind::Unauthorized`].

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The signature policy or the signatures refused the image: "not trusted", as opposed to
    /// "could not check".
    Rejected,
    /// The registry wants credentials, or refused the ones given (401).
    Unauthorized,
    /// The registry (or registries.conf) refuses access (403, or a blocked registry).
    Denied,
    /// The image, tag, blob or file is not there.
    NotFound,
    /// The registry asks to slow down (429).
    RateLimited,
    /// TLS failed: an unknown authority, a certificate for another host, plain http.
    Tls,
    /// Nothing answered: connection refused, no route, a name that does not resolve, a reset.
    Unreachable,
    /// The other side stopped answering in time, or a transfer stalled.
    TimedOut,
    /// The registry failed (5xx).
    Server,
    /// An answer that does not follow the protocol (an unexpected status, a malformed body).
    Protocol,
    /// Data that is wrong: a digest that does not match, a malformed manifest, layout or
    /// archive.
    Corrupt,
    /// A configuration file or an argument that cannot be used: policy.json, registries.d,
    /// registries.conf, certs.d, auth.json, a reference.
    Config,
    /// What was asked cannot be done by this destination or with this input (a destination
    /// that keeps no signatures, a format conversion that would break them).
    Unsupported,
    /// A local file operation failed.
    Io,
}

impl ErrorKind {
    /// Whether trying again later may succeed (the registry was busy or failed, a connection
    /// broke or stalled).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::Server
                | ErrorKind::Unreachable
                | ErrorKind::TimedOut
        )
    }
}
