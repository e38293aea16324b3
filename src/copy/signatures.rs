//! What the signature mode makes of a manifest's slots once the policy has spoken: which
//! signatures go to the destination, what is only a warning, and what fails the copy.

use serde::{Deserialize, Serialize};

use crate::policy::{SlotOutcome, SlotVerdict, Verdict};
use crate::signature::SignatureSlot;

/// How a copy treats the source's signatures.
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

impl std::str::FromStr for SignatureMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "copy-all" => Ok(SignatureMode::CopyAll),
            "remove-signatures" => Ok(SignatureMode::RemoveSignatures),
            "sufficient-subset" => Ok(SignatureMode::SufficientSubset),
            _ => Err(format!(
                "unknown signature mode {s:?}: use copy-all, remove-signatures or sufficient-subset"
            )),
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

impl std::fmt::Display for UnreadableSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "signature-{} at {}: {}",
            self.slot, self.location, self.reason
        )
    }
}

/// Why the signatures stop the copy.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignatureFailure {
    /// copy-all met slots it could not read.
    #[error("{} of the image's signatures could not be read, and --signatures copy-all (the default) copies every signature or none:\n{}\nFix the signature server, or use --signatures sufficient-subset to copy the image if the readable signatures satisfy the policy (the unreadable ones are then reported as warnings), or --signatures remove-signatures", unreadable.len(), list(unreadable))]
    Unreadable {
        /// The slots that could not be read.
        unreadable: Vec<UnreadableSlot>,
    },
    /// The policy was not satisfied.
    #[error("{}", rejection_message(verdict, unreadable))]
    Rejected {
        /// The verdict, with every requirement and slot.
        verdict: Box<Verdict>,
        /// Slots that could not be read (they could not help satisfy the policy).
        unreadable: Vec<UnreadableSlot>,
    },
}

fn list(slots: &[UnreadableSlot]) -> String {
    slots
        .iter()
        .map(|s| format!("  {s}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text of a rejection: every unsatisfied requirement, every rejected signature with its
/// reasons and every unreadable slot.
pub fn rejection_message(verdict: &Verdict, unreadable: &[UnreadableSlot]) -> String {
    let mut out = format!(
        "source image rejected by the signature policy {} (scope {}):",
        verdict.policy, verdict.scope
    );
    for r in verdict.requirements.iter().filter(|r| !r.satisfied) {
        out.push_str(&format!(
            "\n  requirement {} ({}): {}",
            r.index + 1,
            r.description,
            r.reason
        ));
    }
    for s in &verdict.slots {
        if let SlotOutcome::Rejected { reasons, .. } = &s.outcome {
            out.push_str(&format!(
                "\n  signature-{} at {}: rejected: {}",
                s.index,
                s.location,
                reasons.join("; ")
            ));
        }
    }
    for u in unreadable {
        out.push_str(&format!("\n  {u}: could not be read"));
    }
    out
}

/// What to write and what to warn about for one manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignatureDecision {
    /// Slot indices whose bytes go to the destination, in slot order.
    pub keep: Vec<usize>,
    /// Slots that could not be read and are only warnings.
    pub warnings: Vec<UnreadableSlot>,
}

fn unreadable_of(verdict_slots: &[SlotVerdict]) -> Vec<UnreadableSlot> {
    verdict_slots
        .iter()
        .filter_map(|s| match &s.outcome {
            SlotOutcome::Unreadable { reason } => Some(UnreadableSlot {
                slot: s.index,
                location: s.location.clone(),
                reason: reason.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Applies `mode` to a manifest's verdict. `gated` is true when the policy must accept this
/// manifest (an image); false for a list's own signatures, which containers/image copies
/// without a policy check of the list.
pub fn decide(
    mode: SignatureMode,
    verdict: &Verdict,
    slots: &[SignatureSlot],
    gated: bool,
) -> Result<SignatureDecision, SignatureFailure> {
    let unreadable = unreadable_of(&verdict.slots);
    let readable: Vec<usize> = slots
        .iter()
        .map(|s| s.index)
        .filter(|i| !unreadable.iter().any(|u| u.slot == *i))
        .collect();
    match mode {
        SignatureMode::CopyAll => {
            // Like containers/image: a retrieval failure is reported before the policy's answer.
            if !unreadable.is_empty() {
                return Err(SignatureFailure::Unreadable { unreadable });
            }
            if gated && !verdict.accepted {
                return Err(SignatureFailure::Rejected {
                    verdict: Box::new(verdict.clone()),
                    unreadable,
                });
            }
            Ok(SignatureDecision {
                keep: readable,
                warnings: vec![],
            })
        }
        SignatureMode::RemoveSignatures => {
            if gated && !verdict.accepted {
                return Err(SignatureFailure::Rejected {
                    verdict: Box::new(verdict.clone()),
                    unreadable,
                });
            }
            Ok(SignatureDecision {
                keep: vec![],
                warnings: vec![],
            })
        }
        SignatureMode::SufficientSubset => {
            if gated && !verdict.accepted {
                return Err(SignatureFailure::Rejected {
                    verdict: Box::new(verdict.clone()),
                    unreadable,
                });
            }
            Ok(SignatureDecision {
                keep: readable,
                warnings: unreadable,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{RequirementOutcome, SignedClaims, Signer};
    use crate::signature::{SlotReadError, SlotReadErrorKind};

    fn slot(i: usize, ok: bool) -> SignatureSlot {
        SignatureSlot {
            index: i,
            location: format!("http://127.0.0.1/sigs/signature-{i}"),
            content: if ok {
                Ok(vec![0x90, i as u8])
            } else {
                Err(SlotReadError {
                    kind: SlotReadErrorKind::HttpStatus,
                    message: "HTTP 500".into(),
                })
            },
        }
    }

    fn verdict(accepted: bool, outcomes: Vec<SlotOutcome>) -> Verdict {
        Verdict {
            accepted,
            policy: "/p.json".into(),
            policy_digest: "sha256:00".into(),
            scope: "default".into(),
            requirements: vec![RequirementOutcome {
                index: 0,
                kind: "signedBy".into(),
                description: "signedBy GPGKeys /k.gpg".into(),
                satisfied: accepted,
                reason: if accepted {
                    "accepted".into()
                } else {
                    "no signature was accepted".into()
                },
            }],
            slots: outcomes
                .into_iter()
                .enumerate()
                .map(|(i, outcome)| SlotVerdict {
                    index: i + 1,
                    location: format!("http://127.0.0.1/sigs/signature-{}", i + 1),
                    outcome,
                })
                .collect(),
        }
    }

    fn accepted() -> SlotOutcome {
        SlotOutcome::Accepted {
            requirement: 0,
            signer: Signer::default(),
            claims: SignedClaims::default(),
        }
    }
    fn rejected() -> SlotOutcome {
        SlotOutcome::Rejected {
            reasons: vec!["signed by an untrusted key ABCD".into()],
            signer: Signer::default(),
            claims: SignedClaims::default(),
        }
    }
    fn unreadable() -> SlotOutcome {
        SlotOutcome::Unreadable {
            reason: "unrecognized signature format, starting with binary 0x3c".into(),
        }
    }

    #[test]
    fn the_failing_cache_case() {
        let slots = vec![slot(1, true), slot(2, true), slot(3, true)];
        let v = verdict(true, vec![accepted(), unreadable(), rejected()]);

        let e = decide(SignatureMode::CopyAll, &v, &slots, true).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("signature-2") && msg.contains("0x3c"), "{msg}");
        assert!(msg.contains("sufficient-subset"), "{msg}");

        let d = decide(SignatureMode::RemoveSignatures, &v, &slots, true).unwrap();
        assert!(d.keep.is_empty() && d.warnings.is_empty());

        let d = decide(SignatureMode::SufficientSubset, &v, &slots, true).unwrap();
        assert_eq!(d.keep, vec![1, 3]);
        assert_eq!(d.warnings.len(), 1);
        assert_eq!(d.warnings[0].slot, 2);
    }

    #[test]
    fn insufficient_subset_names_rejections_and_unreadables() {
        let slots = vec![slot(1, false), slot(2, true)];
        let v = verdict(false, vec![unreadable(), rejected()]);
        let e = decide(SignatureMode::SufficientSubset, &v, &slots, true).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("signature-2") && msg.contains("untrusted key ABCD"),
            "{msg}"
        );
        assert!(
            msg.contains("signature-1") && msg.contains("could not be read"),
            "{msg}"
        );
        assert!(msg.contains("requirement 1"), "{msg}");
        assert!(decide(SignatureMode::RemoveSignatures, &v, &slots, true).is_err());
    }

    #[test]
    fn ungated_lists_keep_readable_without_acceptance() {
        let slots = vec![slot(1, true)];
        let v = verdict(false, vec![rejected()]);
        assert_eq!(
            decide(SignatureMode::CopyAll, &v, &slots, false)
                .unwrap()
                .keep,
            vec![1]
        );
        assert!(decide(SignatureMode::CopyAll, &v, &slots, true).is_err());
    }

    #[test]
    fn modes_parse() {
        assert_eq!(
            "copy-all".parse::<SignatureMode>().unwrap(),
            SignatureMode::CopyAll
        );
        assert_eq!(
            "sufficient-subset".parse::<SignatureMode>().unwrap(),
            SignatureMode::SufficientSubset
        );
        assert!("all".parse::<SignatureMode>().is_err());
    }
}
