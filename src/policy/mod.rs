//! The signature policy (containers-policy.json(5)): parsing, evaluation, and the gate that
//! alone decides whether an image may be written. Evaluation is a pure function of the policy,
//! the image's identity, its manifest and its signature slots; the only IO is reading key files
//! when a policy file is loaded.

mod basic;
mod config;
mod eval;
mod gate;
mod identity;
mod requirement;
mod signed_by;
mod sigstore_signed;
mod sigstore_trust;

pub use crate::verdict::{SignatureMode, UnreadableSlot, Verdict};
pub use config::{Policy, PolicyError};
pub use eval::{evaluate, requirements_for};
pub use gate::{
    Admission, Admitted, GateInput, Judgement, ManifestRole, Rejected, SignatureFailure, gate,
};
pub use requirement::BundleIdentity;
