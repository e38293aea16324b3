//! ferry: a container-image copy engine.
//!
//! A copy is a pipeline: **source → policy gate → destination**. The source's manifest is read,
//! its signatures are collected one outcome per slot, the signature policy (containers-policy.json)
//! is evaluated on them by the gate, and only then are blobs streamed (verified as they pass) to
//! the destination, followed by the manifest and the signatures the chosen mode keeps. Every
//! write needs the gate's [`Admission`], which nothing else can make.
//!
//! What a runtime, a mirroring tool or a forensic tool calls is at the crate root and in a few
//! modules: a [`Session`] (one command's shared state: registry connections, the host's
//! configuration) opens [`ImageReference`]s of any transport (`docker://`, `oci:`, `dir:`,
//! `store:`); [`copy()`] copies one through a [`Policy`] in a [`SignatureMode`], [`check()`] says
//! what a copy would decide, and [`open_admitted`] gives an [`AdmittedImage`] to read without
//! copying it. Errors carry an [`ErrorKind`] to branch on. [`store`] is ferry's embedded store
//! and its forensic view, [`sync`] mirrors many images in one session, [`signatures`] reads and
//! makes signatures, [`auth`] keeps credentials. Everything else is private.
//!
//! # A runtime pulling through a policy into its store
//!
//! ```no_run
//! use std::sync::Arc;
//! use ferry::{CopyOptions, ErrorKind, ImageReference, Policy, Session, SessionConfig};
//!
//! # async fn pull() -> Result<(), Box<dyn std::error::Error>> {
//! // Explicit paths: the library reads no environment unless asked (SessionConfig::from_env).
//! let mut config = SessionConfig::default();
//! config.store_root = Some("/var/lib/myruntime/images".into());
//! config.registries_d = Some("/etc/containers/registries.d".into());
//! let session = Session::new(config);
//!
//! let policy = Arc::new(Policy::from_file("/etc/containers/policy.json".as_ref())?);
//! let src = ImageReference::parse("docker://registry.example.com/app:1.2")?;
//! let dst = ImageReference::parse("store:registry.example.com/app:1.2")?;
//! match ferry::copy(&session, &src, &dst, &CopyOptions::new(policy)).await {
//!     Ok(report) => {
//!         if let Some(verdict) = report.verdict() {
//!             println!("pulled {}: {verdict}", report.manifest_digest);
//!         }
//!     }
//!     Err(e) if e.kind() == ErrorKind::Rejected => eprintln!("not trusted: {e}"),
//!     Err(e) if e.kind().is_transient() => eprintln!("try again later: {e}"),
//!     Err(e) => eprintln!("could not pull: {e}"),
//! }
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Library code returns errors; it never panics on input from a registry, a file or a user.
// (Tests may.) Where an invariant makes a panic impossible, the code says why instead.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::indexing_slicing
    )
)]

mod compression;
mod config;
mod copy;
mod digest;
mod error;
mod hint;
pub mod limits;
pub mod manifest;
mod policy;
mod proxy;
mod record;
mod reference;
mod session;
mod signature;
mod strict_json;
pub mod sync;
mod tarfile;
mod transport;
mod unpack;
mod verdict;

// The face of the library: what a runtime, a mirroring tool or a forensic tool calls. Everything
// else is private and may change; docs/design.md keeps the count of these items.

// One command's shared state, and where images are.
pub use reference::{DockerReference, ImageReference, ReferenceError};
pub use session::{Session, SessionConfig, store_root_from_env};
pub use transport::fsutil::remove_live_temporaries;
pub use transport::referrers::Referrers;
pub use transport::{
    ImageSource, ManifestHead, RawManifest, RegistryErrorKind, SignatureSet, TransportError,
    TransportOptions,
};

// The policy and what it decided.
pub use policy::{
    Admission, Admitted, BundleIdentity, Judgement, Policy, PolicyError, Rejected,
    SignatureFailure, SignatureMode,
};
pub use verdict::{
    RequirementOutcome, SignedClaims, Signer, SlotOutcome, SlotVerdict, UnknownMode,
    UnreadableSlot, Verdict,
};

// A copy, a check, and an admitted image for the consumers that do not copy.
pub use compression::{CompressionError, ConversionCache, OutputFormat, OutputSpec};
pub use copy::plan::Planned;
pub use copy::report::{REPORT_VERSION, Report, Timings};
pub use copy::{
    AdmittedImage, Checked, CopyError, CopyOptions, GateOptions, ImageSelection, LayerCompression,
    ManifestFormat, Progress, ProgressEvent, SignError, SignKey, SignOptions, UnknownFormat, check,
    copy, open_admitted,
};
pub use record::{
    AttachedReport, BlobAction, BlobReport, ManifestReport, RECORD_VERSION, Record, RecordError,
    SignaturesReport, UnpackRecord, WrittenSignature,
};

// An admitted image made into an OCI runtime bundle (`ferry unpack`); the applier itself is in
// [`bundle`].
pub use copy::unpack::{UnpackError, UnpackOptions, UnpackReport, unpack};

// Digests, and what went wrong.
pub use config::certs_d::SYSTEM_CERTS_D;
pub use config::registries_conf::RegistriesConfPaths;
pub use digest::{ByteStream, Digest, DigestError, VerifyError, VerifyingStream};
pub use error::ErrorKind;
pub use hint::{Hint, Hinted, Side};

/// ferry's embedded store (`store:`): what it holds, its lifecycle (list, remove, prune,
/// check, repair, disk usage) and the forensic view of a stored name.
pub mod store {
    pub use crate::transport::store::forensics::{
        CopySummary, ForensicsError, History, Served, ShownSignature, SlotView, history, served,
    };
    pub use crate::transport::store::{
        BlobUsage, CheckOptions, CheckReport, DiskUsage, FilesUsage, ImageSummary, ImageUsage,
        LifecycleError, Problem, ProblemKind, PruneOptions, PruneReport, PrunedBlob, PrunedRecord,
        RecordedVerdict, RemoveOptions, RemoveReport, RemovedImage, RepairFailure, RepairReport,
        RepairedBlob, Store, StoredImage, StoredRecord, StoredSignature, StoredUnpackRecord,
    };
}

/// OCI runtime bundles and the safe layer applier under [`unpack()`]: a [`bundle::Rootfs`] (a
/// root directory layers are applied onto, every name resolved inside it) and a
/// [`bundle::BundleBuilder`] (a bundle built beside its path and renamed into place). Both take
/// the gate's [`Admission`], so no path unpacks an image the policy did not admit; docs/unpack.md
/// has the rules and the safety model.
pub mod bundle {
    pub use crate::unpack::{
        ApplyError, ApplyOptions, BundleBuilder, BundleReport, DEFAULT_MAX_BYTES,
        DEFAULT_MAX_ENTRIES, LayerStats, LimitKind, Refusal, Resolver, Rootfs, RuntimeUser,
        Warning, WarningKind, runtime_config,
    };
}

/// Signatures as data: reading what a signature blob says without verifying it, the formats
/// ferry knows, and the keys that make signatures (`standalone-sign`, `generate-sigstore-key`).
pub mod signatures {
    pub use crate::signature::decode::{Decoded, decode};
    pub use crate::signature::sigstore::{PrivateKey, PrivateKeyError, PublicKey};
    pub use crate::signature::simple::gnupg::default_home as gnupg_home;
    pub use crate::signature::simple::{
        Keyring, SignatureError, SigningKey, Verified, payload_json as simple_payload,
        sign as sign_simple, verify as verify_simple,
    };
    pub use crate::signature::sniff::{Format, SniffError, sniff};
    pub use crate::signature::{
        MAX_SIGNATURE_SIZE, MAX_SLOTS, SignatureSlot, SlotReadError, SlotReadErrorKind,
    };
}

/// The image proxy: skopeo's `experimental-image-proxy` protocol (bootc, rpm-ostree and
/// composefs-rs pull through it), with the gate applied when an image is opened.
pub mod image_proxy {
    pub use crate::proxy::{
        MethodError, PROTOCOL_VERSION, ProxyError, ServeOptions, serve, serve_with,
    };
}

/// Credentials in auth.json, as `podman login` and `skopeo login` keep them.
pub mod auth {
    pub use crate::transport::docker::auth::AuthError;
    pub use crate::transport::docker::auth_store::{
        default_write_path, normalize_key, remove, remove_all, store, username,
    };
}

/// Internal parts that ferry's own integration tests and fuzz targets reach into (parsers,
/// the lookaside reader, the signature formats). Not part of the library's interface: anything
/// here may change or go at any time.
#[doc(hidden)]
pub mod internal {
    #![allow(missing_docs)]
    pub mod compression {
        pub use crate::compression::*;
    }
    pub mod config {
        pub use crate::config::*;
    }
    pub mod digest {
        pub use crate::digest::*;
    }
    pub mod policy {
        pub use crate::policy::*;
    }
    pub mod record {
        pub use crate::record::*;
    }
    pub mod proxy {
        pub use crate::proxy::wire;
    }
    pub mod reference {
        pub use crate::reference::*;
    }
    pub mod signature {
        pub use crate::signature::*;
    }
    pub mod tarfile {
        pub use crate::tarfile::*;
    }
    pub mod transport {
        pub use crate::transport::*;
    }
    pub mod unpack {
        pub use crate::unpack::*;
    }
}

/// Installs ring as the process-wide rustls crypto provider, once. ferry calls this itself
/// before it builds any HTTP client, so an embedding program never needs to; calling it again
/// is harmless, and a provider the program installed first is kept.
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
