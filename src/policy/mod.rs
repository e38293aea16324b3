//! The signature policy (containers-policy.json(5)): parsing, evaluation, and the gate that
//! alone decides whether an image may be written. Evaluation is a pure function of the policy,
//! the image's identity, its manifest and its signature slots; the only IO is reading key files
//! when a policy file is loaded.

mod basic;
pub mod config;
pub mod eval;
pub mod gate;
pub mod identity;
pub mod requirement;
pub mod signed_by;
pub mod sigstore_signed;
mod sigstore_trust;

pub use crate::verdict::{
    RequirementOutcome, SignatureMode, SignedClaims, Signer, SlotOutcome, SlotVerdict,
    UnreadableSlot, Verdict,
};
pub use config::{Policy, PolicyError};
pub use eval::{evaluate, requirements_for};
pub use gate::{
    Admission, Admitted, GateInput, Judgement, ManifestRole, Rejected, SignatureFailure, gate,
};
pub use requirement::{BundleIdentity, IdentityMatch, Requirement};
