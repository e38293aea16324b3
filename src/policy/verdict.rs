//! The value the policy gate returns: for every requirement whether it was satisfied, and for
//! every signature slot what became of it. It feeds the copy modes, `--report`, the store's
//! record and `ferry policy check`.

use serde::{Deserialize, Serialize};

/// The outcome of evaluating a policy on one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether every requirement was satisfied.
    pub accepted: bool,
    /// The policy file (path or `<inline>`).
    pub policy: String,
    /// The sha256 digest of the policy file's bytes.
    pub policy_digest: String,
    /// The scope whose requirements applied, e.g. `docker: localhost:5000/app`, `default`.
    pub scope: String,
    /// One entry per requirement of that scope, in order.
    pub requirements: Vec<RequirementOutcome>,
    /// One entry per signature slot, in slot order.
    pub slots: Vec<SlotVerdict>,
}

impl Verdict {
    /// Slots that some requirement accepted.
    pub fn accepted_slots(&self) -> impl Iterator<Item = &SlotVerdict> {
        self.slots
            .iter()
            .filter(|s| matches!(s.outcome, SlotOutcome::Accepted { .. }))
    }
    /// Slots that could not be read or parsed.
    pub fn unreadable_slots(&self) -> impl Iterator<Item = &SlotVerdict> {
        self.slots
            .iter()
            .filter(|s| matches!(s.outcome, SlotOutcome::Unreadable { .. }))
    }
    /// Slots that were read but not accepted by any requirement.
    pub fn rejected_slots(&self) -> impl Iterator<Item = &SlotVerdict> {
        self.slots
            .iter()
            .filter(|s| matches!(s.outcome, SlotOutcome::Rejected { .. }))
    }
}

/// What became of one requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequirementOutcome {
    /// 0-based position in the scope's list.
    pub index: usize,
    /// The requirement's `type` (`signedBy`, `insecureAcceptAnything`, …).
    pub kind: String,
    /// A short description: `signedBy GPGKeys /etc/pki/key.gpg (matchRepoDigestOrExact)`.
    pub description: String,
    /// Whether it was satisfied.
    pub satisfied: bool,
    /// Why it was satisfied or not, for people.
    pub reason: String,
}

/// What became of one signature slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotVerdict {
    /// 1-based slot index (`signature-N`).
    pub index: usize,
    /// Where it was read from.
    pub location: String,
    /// The outcome.
    pub outcome: SlotOutcome,
}

/// Who made a signature, as far as the signature says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Signer {
    /// Fingerprint of the primary key (hex, uppercase), when the key is known.
    pub fingerprint: Option<String>,
    /// Fingerprint of the key that actually made the signature (a subkey, or the primary).
    pub signing_key: Option<String>,
    /// The key's primary user ID, when the key is known.
    pub user_id: Option<String>,
    /// The key file the policy trusts that holds the key, when it is trusted.
    pub key_file: Option<String>,
}

/// The content of a simple-signing payload, when it could be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SignedClaims {
    /// `critical.identity.docker-reference`.
    pub docker_reference: Option<String>,
    /// `critical.image.docker-manifest-digest`.
    pub manifest_digest: Option<String>,
    /// The signature's creation time (RFC 3339), from the OpenPGP signature packet.
    pub created: Option<String>,
    /// `optional.creator`.
    pub creator: Option<String>,
}

/// The outcome of one slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum SlotOutcome {
    /// Verified and accepted by requirement `requirement`.
    Accepted {
        /// Index of the requirement that accepted it.
        requirement: usize,
        /// The signer.
        signer: Signer,
        /// What it claims.
        claims: SignedClaims,
    },
    /// Read and parsed, but no requirement accepted it.
    Rejected {
        /// Why, one line per requirement that looked at it.
        reasons: Vec<String>,
        /// The signer, as far as known.
        signer: Signer,
        /// What it claims, as far as it could be read.
        claims: SignedClaims,
    },
    /// Read and of a known format, but no requirement needed to look at it (for example the
    /// policy is `insecureAcceptAnything`).
    NotExamined {
        /// The format (`simple-signing`, `sigstore-json`).
        format: String,
    },
    /// Could not be fetched, or is not a signature format ferry knows.
    Unreadable {
        /// Why, for people: `HTTP 500 Internal Server Error`, `unrecognized signature format,
        /// starting with binary 0x3c (looks like an HTML page)`.
        reason: String,
    },
}
