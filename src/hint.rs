//! What the user can do about an error, as data. Library errors carry a [`Hint`] instead of
//! sentences with command-line flags in them; the CLI turns a hint into the flag of the side
//! that failed (`--src-tls-verify=false`, `--dest-creds`, …), and a runtime embedding ferry
//! into its own words.

/// One thing the user can do about a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hint {
    /// Some signature slots could not be read in copy-all mode: fix the signature server, or
    /// copy in sufficient-subset mode (if the readable signatures satisfy the policy), or
    /// without signatures.
    SignatureModes,
    /// The destination cannot keep signatures: copy without them.
    RemoveSignatures,
    /// The registry may serve plain http or a certificate ferry cannot verify: turning TLS
    /// verification off for it would reach it.
    TlsVerification,
    /// The registry's certificate is signed by an unknown CA: trust that CA for this registry
    /// (certs.d) instead of turning verification off.
    TrustCa {
        /// `host[:port]`.
        registry: String,
    },
    /// The registry refused the TLS handshake for want of a client certificate it accepts:
    /// give one (certs.d `NAME.cert` and `NAME.key`).
    ClientCertificate {
        /// `host[:port]`.
        registry: String,
    },
    /// The registry refused the credentials (or their absence): log in, or give credentials.
    Credentials {
        /// `host[:port]`.
        registry: String,
    },
    /// The source is a list of images: choose one platform, or copy the whole list.
    Platform,
    /// Signing needs an identity the destination does not give.
    SignIdentity,
    /// A manifest would change format and the signatures kept with it would break.
    FormatConversion,
    /// Recompressed layers would give a manifest a new digest and the signatures kept with it
    /// would break.
    Recompression,
    /// The destination cannot keep attestations and SBOMs attached to the image: leave them
    /// behind, or copy to a destination that keeps them.
    Referrers,
}

/// Which side of a copy something happened on, so a hint can name that side's flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The source.
    Source,
    /// The destination.
    Destination,
}

/// An error that may carry a [`Hint`].
pub trait Hinted {
    /// The hint, if this error has one.
    fn hint(&self) -> Option<Hint>;
}
