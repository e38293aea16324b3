//! The signature policy (containers-policy.json(5)): parsing and evaluation. Evaluation is a
//! pure function of the policy, the image's identity, its manifest and its signature slots;
//! the only IO is reading key files when a policy file is loaded.

pub mod config;
pub mod eval;
pub mod verdict;

pub use config::{IdentityMatch, Policy, PolicyError, Requirement};
pub use eval::{evaluate, requirements_for};
pub use verdict::{RequirementOutcome, SignedClaims, Signer, SlotOutcome, SlotVerdict, Verdict};
