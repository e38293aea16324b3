//! The signature policy (containers-policy.json(5)): parsing and evaluation. Evaluation is a
//! pure function of the policy, the image's identity, its manifest and its signature slots.

pub mod verdict;

pub use verdict::{RequirementOutcome, SignedClaims, Signer, SlotOutcome, SlotVerdict, Verdict};
