//! ferry: a container-image copy engine.
//!
//! A copy is a pipeline: **source → policy gate → destination**. The source's manifest is read,
//! its signatures are collected one outcome per slot, the signature policy (containers-policy.json)
//! is evaluated on them by the gate, and only then are blobs streamed (verified as they pass) to
//! the destination, followed by the manifest and the signatures the chosen mode keeps. Every
//! write needs the gate's [`policy::Admission`], which nothing else can make.
//!
//! Layers, from the bottom: [`digest`], [`reference`](mod@reference), [`manifest`],
//! [`signature`], [`verdict`] and [`record`] are pure data and formats; [`config`] reads the
//! host's configuration files; [`policy`] judges signatures; [`transport`] does all IO, and a
//! [`session::Session`] opens transports and shares registry connections; [`copy`] joins them;
//! [`forensics`] reads back what the store kept.
//!
//! # A runtime pulling through a policy into its store
//!
//! ```no_run
//! use std::sync::Arc;
//! use ferry::copy::{self, CopyOptions};
//! use ferry::policy::Policy;
//! use ferry::reference::ImageReference;
//! use ferry::session::{Session, SessionConfig};
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
//! match copy::copy(&session, &src, &dst, &CopyOptions::new(policy)).await {
//!     Ok(report) => {
//!         if let Some(verdict) = report.verdict() {
//!             println!("pulled {}: {verdict}", report.manifest_digest);
//!         }
//!     }
//!     Err(e) if e.is_rejection() => eprintln!("not trusted: {e}"),
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

pub mod config;
pub mod copy;
pub mod digest;
pub mod forensics;
pub mod hint;
pub mod limits;
pub mod manifest;
pub mod policy;
pub mod proxy;
pub mod record;
pub mod reference;
pub mod session;
pub mod signature;
pub mod strict_json;
pub mod sync;
pub mod transport;
pub mod verdict;

/// Installs ring as the process-wide rustls crypto provider, once. ferry calls this itself
/// before it builds any HTTP client, so an embedding program never needs to; calling it again
/// is harmless, and a provider the program installed first is kept.
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
