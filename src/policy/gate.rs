//! The gate: the one place that decides whether an image may be written anywhere.
//!
//! [`gate`] evaluates the policy on every manifest a copy would write and applies the signature
//! mode. It returns either [`Admitted`], which holds an [`Admission`] (a proof that only this
//! module can make, as rustls' verifier proofs), or [`Rejected`]. Every write to a destination
//! takes `&Admission`, so no code path can write an image the gate did not admit. `copy`,
//! `sync`, `policy check` and `signatures verify` all decide through this function, so they
//! always agree.

use std::fmt;

use super::config::Policy;
use super::eval::evaluate;
use super::requirement::BundleIdentity;
use crate::digest::Digest;
use crate::hint::{Hint, Hinted};
use crate::reference::ImageReference;
use crate::signature::SignatureSlot;
use crate::verdict::{SignatureMode, SlotOutcome, UnreadableSlot, Verdict};

/// Proof that the policy admitted the image being copied. Only [`gate`] makes one; writers of
/// blobs, manifests and signatures require it. A clone is no weaker: only a holder of one can
/// make another (a writer that applies layers on a blocking thread takes its own).
#[derive(Debug, Clone)]
pub struct Admission(());

/// What a manifest is to the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestRole {
    /// An image: the policy must accept it.
    Image,
    /// A list of images written beside its instances. As in containers/image the list itself is
    /// not judged by the policy (each instance is); only the mode applies to its own signatures.
    List,
}

/// One manifest the gate judges.
#[derive(Debug, Clone, Copy)]
pub struct GateInput<'a> {
    /// Its digest.
    pub digest: &'a Digest,
    /// Its exact bytes.
    pub manifest: &'a [u8],
    /// Its signature slots, as the source read them.
    pub slots: &'a [SignatureSlot],
    /// Image or list.
    pub role: ManifestRole,
    /// The platform, for an instance of a list (for messages).
    pub platform: Option<&'a str>,
    /// Where the source looked for the signatures (and what it did not look at), said when a
    /// signature is required and none exists.
    pub searched: &'a [String],
    /// How sigstore bundles that name no image meet `signedIdentity` (the source's
    /// registries.d setting for the image's scope).
    pub bundles: BundleIdentity,
    /// Artifacts attached to the manifest (attestations, SBOMs, referrers) that could not be
    /// read, each with where and why. copy-all refuses them as it refuses an unreadable
    /// signature; the other modes warn.
    pub attached_unreadable: &'a [String],
}

/// What the gate made of one manifest.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Judgement {
    /// The manifest's digest.
    pub digest: Digest,
    /// The platform, for an instance of a list.
    pub platform: Option<String>,
    /// Whether it is a list.
    pub is_list: bool,
    /// The policy's verdict (`None` for a list, which is not judged itself).
    pub verdict: Option<Verdict>,
    /// Slots whose bytes go to the destination, in slot order (empty when rejected).
    pub keep: Vec<usize>,
    /// Slots that could not be read.
    pub unreadable: Vec<UnreadableSlot>,
    /// Unreadable slots that the mode turned into warnings (sufficient-subset, admitted).
    pub warnings: Vec<UnreadableSlot>,
    /// Attached artifacts that could not be read and that the mode let the copy go without
    /// (every mode but copy-all), each with where and why.
    pub attached_warnings: Vec<String>,
    /// Why this manifest stops the copy, if it does.
    pub failure: Option<SignatureFailure>,
}

/// Why the signatures stop a copy of one manifest.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureFailure {
    /// copy-all met slots it could not read.
    #[error("{} of the image's signatures could not be read, and the copy-all mode (the default) copies every signature or none:\n{}", unreadable.len(), list(unreadable))]
    Unreadable {
        /// The slots that could not be read.
        unreadable: Vec<UnreadableSlot>,
    },
    /// copy-all met artifacts attached to the image (attestations, SBOMs, referrers) that it
    /// could not read: it copies everything attached or nothing.
    #[error("{} artifact(s) attached to the image could not be read, and the copy-all mode (the default) copies everything attached or nothing:\n{}", unreadable.len(), unreadable.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    AttachedUnreadable {
        /// Each artifact that could not be read: where, and why.
        unreadable: Vec<String>,
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

impl Hinted for SignatureFailure {
    fn hint(&self) -> Option<Hint> {
        match self {
            SignatureFailure::Unreadable { .. } => Some(Hint::SignatureModes),
            SignatureFailure::AttachedUnreadable { .. } => Some(Hint::Referrers),
            SignatureFailure::Rejected { .. } => None,
        }
    }
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
            r.index, r.description, r.reason
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

/// The image was admitted: the judgements of every manifest and the proof that lets them be
/// written.
#[derive(Debug)]
pub struct Admitted {
    judgements: Vec<Judgement>,
    admission: Admission,
}

impl Admitted {
    /// One judgement per manifest, in the order given to [`gate`].
    pub fn judgements(&self) -> &[Judgement] {
        &self.judgements
    }
    /// The proof writers require.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }
}

/// The image was not admitted: every manifest's judgement, at least one with a failure.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// The image, for messages.
    pub image: String,
    /// One judgement per manifest, in the order given to [`gate`].
    pub judgements: Vec<Judgement>,
}

impl Rejected {
    /// Always [`ErrorKind::Rejected`](crate::error::ErrorKind::Rejected): the image is not
    /// trusted as it is.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Rejected
    }

    /// The manifests that stop the copy, with their failures.
    pub fn failures(&self) -> impl Iterator<Item = (&Judgement, &SignatureFailure)> {
        self.judgements
            .iter()
            .filter_map(|j| j.failure.as_ref().map(|f| (j, f)))
    }

    /// The first verdict that rejected the image, if the policy (rather than unreadable slots)
    /// stopped it.
    pub fn verdict(&self) -> Option<&Verdict> {
        self.failures().find_map(|(_, f)| match f {
            SignatureFailure::Rejected { verdict, .. } => Some(verdict.as_ref()),
            _ => None,
        })
    }

    /// Every unreadable slot of the manifests that failed.
    pub fn unreadable(&self) -> Vec<UnreadableSlot> {
        self.failures()
            .flat_map(|(j, _)| j.unreadable.iter().cloned())
            .collect()
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (j, failure) in self.failures() {
            if !first {
                writeln!(f)?;
            }
            first = false;
            match (&j.platform, j.is_list) {
                (Some(p), _) => write!(f, "{} ({p} image {}): {failure}", self.image, j.digest)?,
                (None, true) => write!(f, "{} (the list {}): {failure}", self.image, j.digest)?,
                (None, false) => write!(f, "{}: {failure}", self.image)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for Rejected {}

impl Hinted for Rejected {
    fn hint(&self) -> Option<Hint> {
        self.failures().find_map(|(_, f)| f.hint())
    }
}

/// Judges every manifest a copy of `image` would write, in `mode`. `image` is the source
/// reference: its transport and identity choose the policy's requirements, as in
/// containers/image. The answer is admitted only when every manifest is.
pub fn gate(
    policy: &Policy,
    image: &ImageReference,
    mode: SignatureMode,
    inputs: &[GateInput<'_>],
) -> Result<Admitted, Rejected> {
    let judgements: Vec<Judgement> = inputs
        .iter()
        .map(|input| judge(policy, image, mode, input))
        .collect();
    if judgements.iter().all(|j| j.failure.is_none()) {
        Ok(Admitted {
            judgements,
            admission: Admission(()),
        })
    } else {
        Err(Rejected {
            image: image.to_string(),
            judgements,
        })
    }
}

fn judge(
    policy: &Policy,
    image: &ImageReference,
    mode: SignatureMode,
    input: &GateInput<'_>,
) -> Judgement {
    let mut verdict = evaluate(policy, image, input.manifest, input.slots, input.bundles);
    // "No signature exists" is not the same as "ferry was never told where to look": say where.
    verdict.searched = input.searched.to_vec();
    if !input.searched.is_empty() {
        for r in verdict.requirements.iter_mut().filter(|r| {
            !r.satisfied
                && r.reason
                    .starts_with("A signature was required, but no signature exists")
        }) {
            r.reason = format!("{} (looked in: {})", r.reason, input.searched.join("; "));
        }
    }
    let unreadable: Vec<UnreadableSlot> = verdict
        .slots
        .iter()
        .filter_map(|s| match &s.outcome {
            SlotOutcome::Unreadable { reason } => Some(UnreadableSlot {
                slot: s.index,
                location: s.location.clone(),
                reason: reason.clone(),
            }),
            _ => None,
        })
        .collect();
    let readable: Vec<usize> = input
        .slots
        .iter()
        .map(|s| s.index)
        .filter(|i| !unreadable.iter().any(|u| u.slot == *i))
        .collect();
    let is_list = input.role == ManifestRole::List;
    let judged = !is_list;
    let rejected = || SignatureFailure::Rejected {
        verdict: Box::new(verdict.clone()),
        unreadable: unreadable.clone(),
    };
    let attached = input.attached_unreadable.to_vec();
    let (keep, failure, warnings) = match mode {
        // Like containers/image: a retrieval failure is reported before the policy's answer.
        SignatureMode::CopyAll if !unreadable.is_empty() => (
            vec![],
            Some(SignatureFailure::Unreadable {
                unreadable: unreadable.clone(),
            }),
            vec![],
        ),
        SignatureMode::CopyAll if !attached.is_empty() => (
            vec![],
            Some(SignatureFailure::AttachedUnreadable {
                unreadable: attached.clone(),
            }),
            vec![],
        ),
        _ if judged && !verdict.accepted => (vec![], Some(rejected()), vec![]),
        SignatureMode::RemoveSignatures => (vec![], None, vec![]),
        SignatureMode::CopyAll => (readable, None, vec![]),
        SignatureMode::SufficientSubset => (readable, None, unreadable.clone()),
    };
    Judgement {
        digest: input.digest.clone(),
        platform: input.platform.map(str::to_string),
        is_list,
        verdict: judged.then_some(verdict),
        keep,
        unreadable,
        warnings,
        attached_warnings: if mode == SignatureMode::CopyAll {
            vec![]
        } else {
            attached
        },
        failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::{SlotReadError, SlotReadErrorKind};

    const KEY: &str = "testdata/keys/trusted.pub.asc";

    fn slot(i: usize, bytes: Result<Vec<u8>, ()>) -> SignatureSlot {
        SignatureSlot {
            index: i,
            location: format!("http://127.0.0.1/sigs/signature-{i}"),
            content: bytes.map_err(|()| SlotReadError {
                kind: SlotReadErrorKind::HttpStatus,
                message: "received unexpected HTTP status: 500 Internal Server Error".into(),
            }),
        }
    }

    fn policy(json: &str) -> Policy {
        Policy::from_bytes(json.as_bytes(), "/p.json").unwrap()
    }

    fn image() -> ImageReference {
        ImageReference::parse("docker://registry.example/app:1").unwrap()
    }

    fn input<'a>(d: &'a Digest, slots: &'a [SignatureSlot]) -> GateInput<'a> {
        GateInput {
            digest: d,
            manifest: b"{}",
            slots,
            role: ManifestRole::Image,
            platform: None,
            searched: &[],
            bundles: BundleIdentity::Named,
            attached_unreadable: &[],
        }
    }

    #[test]
    fn copy_all_refuses_unreadable_slots_even_when_the_policy_accepts() {
        let p = policy(r#"{"default":[{"type":"insecureAcceptAnything"}]}"#);
        let d = Digest::sha256_of(b"{}");
        let slots = [slot(1, Err(())), slot(2, Ok(b"<html>".to_vec()))];
        let e = gate(&p, &image(), SignatureMode::CopyAll, &[input(&d, &slots)]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("signature-1") && msg.contains("500"), "{msg}");
        assert!(msg.contains("signature-2") && msg.contains("0x3c"), "{msg}");
        assert!(!msg.contains("--"), "no CLI flags in library text: {msg}");
        assert_eq!(e.hint(), Some(Hint::SignatureModes));

        let ok = gate(
            &p,
            &image(),
            SignatureMode::SufficientSubset,
            &[input(&d, &slots)],
        )
        .unwrap();
        assert!(ok.judgements()[0].keep.is_empty());
        assert_eq!(ok.judgements()[0].warnings.len(), 2);
        let ok = gate(
            &p,
            &image(),
            SignatureMode::RemoveSignatures,
            &[input(&d, &slots)],
        )
        .unwrap();
        assert!(ok.judgements()[0].keep.is_empty() && ok.judgements()[0].warnings.is_empty());
    }

    #[test]
    fn copy_all_refuses_an_unreadable_attached_artifact_and_the_other_modes_warn() {
        let p = policy(r#"{"default":[{"type":"insecureAcceptAnything"}]}"#);
        let d = Digest::sha256_of(b"{}");
        let errors = ["referrer sha256:ab: 500 Internal Server Error".to_string()];
        let with = GateInput {
            attached_unreadable: &errors,
            ..input(&d, &[])
        };
        let e = gate(&p, &image(), SignatureMode::CopyAll, &[with]).unwrap_err();
        assert!(matches!(
            e.judgements[0].failure,
            Some(SignatureFailure::AttachedUnreadable { .. })
        ));
        assert!(e.to_string().contains("referrer sha256:ab"), "{e}");
        assert_eq!(e.hint(), Some(Hint::Referrers));
        for mode in [
            SignatureMode::SufficientSubset,
            SignatureMode::RemoveSignatures,
        ] {
            let ok = gate(&p, &image(), mode, &[with]).unwrap();
            assert_eq!(ok.judgements()[0].attached_warnings, errors);
        }
    }

    #[test]
    fn every_mode_refuses_what_the_policy_rejects_and_names_why() {
        let p = policy(&format!(
            r#"{{"default":[{{"type":"signedBy","keyType":"GPGKeys","keyPath":"{}/{KEY}"}}]}}"#,
            env!("CARGO_MANIFEST_DIR")
        ));
        let d = Digest::sha256_of(b"{}");
        let slots = [slot(1, Err(()))];
        for mode in [
            SignatureMode::RemoveSignatures,
            SignatureMode::SufficientSubset,
        ] {
            let e = gate(&p, &image(), mode, &[input(&d, &slots)]).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("requirement 1"), "{msg}");
            assert!(
                msg.contains("signature-1") && msg.contains("could not be read"),
                "{msg}"
            );
            assert!(e.verdict().is_some());
            assert_eq!(e.unreadable().len(), 1);
        }
    }

    #[test]
    fn a_list_is_not_judged_but_its_unreadable_slots_count_in_copy_all() {
        let p = policy(r#"{"default":[{"type":"reject"}]}"#);
        let d = Digest::sha256_of(b"{}");
        let readable = [slot(1, Ok(vec![0x90, 1]))];
        let list = GateInput {
            role: ManifestRole::List,
            ..input(&d, &readable)
        };
        let ok = gate(&p, &image(), SignatureMode::CopyAll, &[list]).unwrap();
        assert_eq!(ok.judgements()[0].keep, vec![1]);
        assert!(ok.judgements()[0].verdict.is_none());
        let broken = [slot(1, Err(()))];
        let list = GateInput {
            role: ManifestRole::List,
            ..input(&d, &broken)
        };
        assert!(gate(&p, &image(), SignatureMode::CopyAll, &[list]).is_err());
        // An instance the policy rejects rejects the whole copy.
        let inst = input(&d, &readable);
        assert!(gate(&p, &image(), SignatureMode::CopyAll, &[inst, list]).is_err());
    }
}
