//! ferry: a container-image copy engine.
//!
//! A copy is a pipeline: **source → policy gate → destination**. The source's manifest is read,
//! its signatures are collected one outcome per slot, the signature policy (containers-policy.json)
//! is evaluated on them, and only then are blobs streamed (verified as they pass) to the
//! destination, followed by the manifest and the signatures the chosen mode keeps.
//!
//! Layers, from the bottom: [`digest`], [`reference`], [`manifest`] and [`signature`] are pure;
//! [`policy`] evaluates signatures against a policy; [`transport`] does all IO; [`copy`] joins
//! them.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod copy;
pub mod digest;
pub mod lookaside;
pub mod manifest;
pub mod policy;
pub mod reference;
pub mod signature;
pub mod strict_json;
pub mod transport;

/// Installs the process-wide TLS crypto provider (ring) once. Call before any registry access;
/// calling again is harmless.
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
