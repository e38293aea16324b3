//! What the policy gate found, as plain data: for every requirement whether it was satisfied,
//! and for every signature slot what became of it. It feeds `--report`, the store's records,
//! `ferry policy check` and the forensic view.
//!
//! These are values for people and for records, and can be read back from JSON; none of them
//! lets anything be written. Only the gate's [`crate::policy::Admission`] does that.
//!
//! Numbering is 1-based everywhere: requirement 1 is the first of its scope's list, slot 1 is
//! `signature-1`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The outcome of evaluating a policy on one image. `Display` prints it for people, as
/// `ferry policy check` does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
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
    /// Where the source looked for signatures, and what it did not look at and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searched: Vec<String>,
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
#[non_exhaustive]
pub struct RequirementOutcome {
    /// 1-based position in the scope's list.
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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct Signer {
    /// Fingerprint of the primary key (hex, uppercase), when the key is known.
    pub fingerprint: Option<String>,
    /// Fingerprint of the key that actually made the signature (a subkey, or the primary).
    pub signing_key: Option<String>,
    /// The key's primary user ID, when the key is known.
    pub user_id: Option<String>,
    /// The key file the policy trusts that holds the key, when it is trusted (for sigstore,
    /// the requirement's trust sources).
    pub key_file: Option<String>,
    /// Keyless sigstore: the certificate's subject (the email, URI or host name it names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_subject: Option<String>,
    /// Keyless sigstore: the OIDC issuer the certificate names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_issuer: Option<String>,
    /// Sigstore with Rekor: the entry's index in the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor_log_index: Option<i64>,
    /// Sigstore with Rekor: when the log integrated the entry (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor_integrated_time: Option<String>,
}

/// The content of a simple-signing payload, when it could be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
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
#[non_exhaustive]
pub enum SlotOutcome {
    /// Verified and accepted by requirement `requirement`.
    Accepted {
        /// 1-based index of the requirement that accepted it.
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

/// How a copy treats the source's signatures. The policy decides in every mode; the mode decides
/// what an unreadable slot means and what the destination gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureMode {
    /// Every slot must be readable; all signatures are written byte for byte. The default.
    #[default]
    CopyAll,
    /// The policy still decides; the destination gets no signatures.
    RemoveSignatures,
    /// The policy is evaluated on the readable slots; if satisfied, every readable signature is
    /// written and the unreadable slots are warnings.
    SufficientSubset,
}

impl SignatureMode {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            SignatureMode::CopyAll => "copy-all",
            SignatureMode::RemoveSignatures => "remove-signatures",
            SignatureMode::SufficientSubset => "sufficient-subset",
        }
    }
}

impl fmt::Display for SignatureMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A mode name that is not one of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signature mode {0:?}: use copy-all, remove-signatures or sufficient-subset")]
#[non_exhaustive]
pub struct UnknownMode(pub String);

impl std::str::FromStr for SignatureMode {
    type Err = UnknownMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "copy-all" => Ok(SignatureMode::CopyAll),
            "remove-signatures" => Ok(SignatureMode::RemoveSignatures),
            "sufficient-subset" => Ok(SignatureMode::SufficientSubset),
            _ => Err(UnknownMode(s.to_string())),
        }
    }
}

/// A slot that could not be read, as reported in warnings, errors, reports and records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableSlot {
    /// 1-based slot index.
    pub slot: usize,
    /// Where it was read from.
    pub location: String,
    /// Why it could not be read.
    pub reason: String,
}

impl fmt::Display for UnreadableSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "signature-{} at {}: {}",
            self.slot, self.location, self.reason
        )
    }
}

impl fmt::Display for SlotOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotOutcome::Accepted {
                requirement,
                signer,
                claims,
            } => {
                write!(
                    f,
                    "accepted by requirement {requirement}: key {}",
                    signer.describe()
                )?;
                if let Some(r) = &claims.docker_reference {
                    write!(f, ", identity {r}")?;
                }
                Ok(())
            }
            SlotOutcome::Rejected { reasons, .. } => write!(f, "rejected: {}", reasons.join("; ")),
            SlotOutcome::NotExamined { format } => {
                write!(f, "readable ({format}), not examined by the policy")
            }
            SlotOutcome::Unreadable { reason } => write!(f, "UNREADABLE: {reason}"),
        }
    }
}

impl Signer {
    /// The key for people: fingerprint, user ID and the file that trusts it, as far as known.
    pub fn describe(&self) -> String {
        let mut out = self.fingerprint.clone().unwrap_or_else(|| "?".into());
        if let Some(u) = &self.user_id {
            out.push_str(&format!(" \"{u}\""));
        }
        if let Some(s) = &self.certificate_subject {
            out.push_str(&format!(", certificate for {s}"));
            if let Some(i) = &self.certificate_issuer {
                out.push_str(&format!(" issued by {i}"));
            }
        }
        if let Some(n) = self.rekor_log_index {
            out.push_str(&format!(", Rekor entry {n}"));
            if let Some(t) = &self.rekor_integrated_time {
                out.push_str(&format!(" at {t}"));
            }
        }
        if let Some(k) = &self.key_file {
            out.push_str(&format!(", from {k}"));
        }
        out
    }
}

/// The verdict for people: the answer, then each requirement and each slot on its own line.
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} by {} (scope {})",
            if self.accepted {
                "ACCEPTED"
            } else {
                "REJECTED"
            },
            self.policy,
            self.scope
        )?;
        for r in &self.requirements {
            write!(
                f,
                "\n  requirement {} {}: {} — {}",
                r.index,
                r.description,
                if r.satisfied {
                    "satisfied"
                } else {
                    "NOT satisfied"
                },
                r.reason
            )?;
        }
        if self.slots.is_empty() {
            write!(f, "\n  no signatures")?;
        }
        for s in &self.searched {
            write!(f, "\n  looked for signatures in: {s}")?;
        }
        for s in &self.slots {
            write!(
                f,
                "\n  signature-{} ({}): {}",
                s.index, s.location, s.outcome
            )?;
        }
        Ok(())
    }
}
