//! Evaluating a policy on one image: which requirements apply (the most specific scope), and
//! for each requirement and each signature slot what became of it. Pure: no IO. Each
//! requirement type that looks at signatures has its own module (`signed_by`, …).

use super::config::{Policy, Requirement};
use super::signed_by;
use super::sigstore_signed::{self, BundleIdentity};
use crate::reference::ImageReference;
use crate::signature::SignatureSlot;
use crate::signature::sigstore::bundle::{Bundle, BundleKind, is_bundle_media_type};
use crate::signature::sigstore::{SIGNATURE_MIME_TYPE, SigstoreSignature};
use crate::signature::sniff::{self, Format};
use crate::verdict::{RequirementOutcome, SignedClaims, Signer, SlotOutcome, SlotVerdict, Verdict};

/// The requirements that apply to `image` and the name of the scope they came from.
pub fn requirements_for<'p>(
    policy: &'p Policy,
    image: &ImageReference,
) -> (String, &'p [Requirement]) {
    let transport = image.transport();
    if let Some(t) = policy.transports.get(transport) {
        for s in image.policy_scopes() {
            if let Some(r) = t.get(&s) {
                return (format!("transports.{transport}[{s:?}]"), r);
            }
        }
        if let Some(r) = t.get("") {
            return (format!("transports.{transport}[\"\"]"), r);
        }
    }
    ("default".to_string(), &policy.default)
}

/// A slot that could be read: a simple-signing message, or a sigstore signature.
enum Readable<'a> {
    Simple(&'a [u8]),
    Sigstore(SigstoreSignature),
}

impl Readable<'_> {
    fn format_name(&self) -> String {
        match self {
            Readable::Simple(_) => Format::SimpleSigning.name().to_string(),
            Readable::Sigstore(s) if s.mime_type == SIGNATURE_MIME_TYPE => {
                Format::SigstoreJson.name().to_string()
            }
            Readable::Sigstore(s) => format!("{} ({})", Format::SigstoreJson.name(), s.mime_type),
        }
    }
}

/// What one requirement made of one readable slot.
pub(crate) enum Judgement {
    Accepted(Signer, SignedClaims),
    Rejected(String, Signer, SignedClaims),
}

/// Per slot, what the requirements found so far.
#[derive(Default, Clone)]
struct SlotState {
    accepted_by: Option<(usize, Signer, SignedClaims)>,
    rejections: Vec<String>,
    rejected_info: Option<(Signer, SignedClaims)>,
}

impl SlotState {
    /// Takes requirement `number`'s judgement of this slot (named `slot`): the first acceptance
    /// is kept, every rejection is added to the slot's and the requirement's (`reasons`)
    /// lists. Returns whether the slot was accepted.
    fn record(
        &mut self,
        number: usize,
        slot: &str,
        judgement: Judgement,
        reasons: &mut Vec<String>,
    ) -> bool {
        match judgement {
            Judgement::Accepted(signer, claims) => {
                if self.accepted_by.is_none() {
                    self.accepted_by = Some((number, signer, claims));
                }
                true
            }
            Judgement::Rejected(reason, signer, claims) => {
                reasons.push(format!("{slot}: {reason}"));
                self.rejections
                    .push(format!("requirement {number}: {reason}"));
                if self.rejected_info.is_none() {
                    self.rejected_info = Some((signer, claims));
                }
                false
            }
        }
    }
}

/// Evaluates the requirements that apply to `image` (the source reference) on the signature
/// slots of the manifest `manifest` (its exact bytes); `bundles` says how sigstore bundles that
/// name no image meet `signedIdentity` (the source's registries.d setting). Every requirement and every slot is
/// judged, so the verdict says everything; the answer is the same as containers/image's, which
/// stops at the first accepted signature and the first unsatisfied requirement.
///
/// This is the policy's view only; whether the image may be written is [`super::gate()`]'s
/// answer, which also applies the signature mode.
pub fn evaluate(
    policy: &Policy,
    image: &ImageReference,
    manifest: &[u8],
    slots: &[SignatureSlot],
    bundles: BundleIdentity,
) -> Verdict {
    let (scope, reqs) = requirements_for(policy, image);
    let docker_ref = image.docker_reference();
    // Per slot: the readable signature, or why it is unreadable.
    let readable: Vec<Result<Readable<'_>, String>> = slots
        .iter()
        .map(|s| match &s.content {
            Err(e) => Err(e.message.clone()),
            Ok(bytes) => match sniff::sniff(bytes).map_err(|e| e.to_string())? {
                (Format::SimpleSigning, data) => Ok(Readable::Simple(data)),
                (Format::SigstoreJson, data) => SigstoreSignature::from_json(data)
                    .map(Readable::Sigstore)
                    .map_err(|e| e.to_string()),
            },
        })
        .collect();
    let mut state = vec![SlotState::default(); slots.len()];
    let mut outcomes = Vec::new();
    for (i, req) in reqs.iter().enumerate() {
        let number = i + 1;
        let (satisfied, reason) = match req {
            Requirement::InsecureAcceptAnything => (true, "accepts any image".to_string()),
            Requirement::Reject => (
                false,
                format!("Running image {image} is rejected by policy."),
            ),
            Requirement::SignedBaseLayer => {
                (false, "signedBaseLayer not implemented yet!".to_string())
            }
            Requirement::SigstoreSigned { trust, identity } => {
                let mut reasons = Vec::new();
                let mut any = false;
                let (mut non_sigstore, mut non_signature_attachments) = (0, 0);
                for ((slot, r), st) in slots.iter().zip(&readable).zip(state.iter_mut()) {
                    let sig = match r {
                        Ok(Readable::Sigstore(s)) => s,
                        Ok(Readable::Simple(_)) => {
                            non_sigstore += 1;
                            continue;
                        }
                        Err(_) => continue,
                    };
                    let judgement = if sig.mime_type == SIGNATURE_MIME_TYPE {
                        sigstore_signed::judge(trust, identity, docker_ref.as_ref(), manifest, sig)
                    } else if is_bundle_media_type(&sig.mime_type) {
                        match Bundle::from_json(&sig.payload) {
                            // Attestations are about the image, not signatures of it.
                            Ok(b) if matches!(b.kind(), BundleKind::Attestation(_)) => {
                                non_signature_attachments += 1;
                                continue;
                            }
                            Ok(b) => sigstore_signed::judge_bundle(
                                trust,
                                identity,
                                docker_ref.as_ref(),
                                manifest,
                                &b,
                                bundles,
                            ),
                            Err(e) => Judgement::Rejected(
                                e.to_string(),
                                Signer::default(),
                                SignedClaims::default(),
                            ),
                        }
                    } else {
                        // Attestations and SBOMs are attachments too; containers/image skips
                        // them.
                        non_signature_attachments += 1;
                        continue;
                    };
                    any |= st.record(number, &slot.name(), judgement, &mut reasons);
                }
                let examined = reasons.len() + usize::from(any);
                match satisfied_by_signatures(any, examined, reasons) {
                    (false, r) if examined == 0 && non_sigstore + non_signature_attachments > 0 => {
                        (
                            false,
                            format!(
                                "{r} ({non_sigstore} non-sigstore signatures, {non_signature_attachments} sigstore non-signature attachments)"
                            ),
                        )
                    }
                    other => other,
                }
            }
            Requirement::SignedBy {
                key_type,
                keys,
                identity,
            } => {
                let mut examined = 0;
                let mut reasons = Vec::new();
                let mut any = false;
                for ((slot, r), st) in slots.iter().zip(&readable).zip(state.iter_mut()) {
                    let Ok(Readable::Simple(data)) = r else {
                        continue;
                    };
                    examined += 1;
                    let judgement = signed_by::judge(
                        key_type,
                        keys,
                        identity,
                        docker_ref.as_ref(),
                        manifest,
                        data,
                    );
                    any |= st.record(number, &slot.name(), judgement, &mut reasons);
                }
                satisfied_by_signatures(any, examined, reasons)
            }
        };
        outcomes.push(RequirementOutcome {
            index: number,
            kind: req.kind().to_string(),
            description: req.describe(),
            satisfied,
            reason,
        });
    }
    let slot_verdicts = slots
        .iter()
        .zip(state)
        .zip(&readable)
        .map(|((s, st), r)| {
            let outcome = match (r, st.accepted_by) {
                (Err(reason), _) => SlotOutcome::Unreadable {
                    reason: reason.clone(),
                },
                (Ok(_), Some((requirement, signer, claims))) => SlotOutcome::Accepted {
                    requirement,
                    signer,
                    claims,
                },
                (Ok(r), None) if st.rejections.is_empty() => SlotOutcome::NotExamined {
                    format: r.format_name(),
                },
                (Ok(_), None) => {
                    let (signer, claims) = st.rejected_info.unwrap_or_default();
                    SlotOutcome::Rejected {
                        reasons: st.rejections,
                        signer,
                        claims,
                    }
                }
            };
            SlotVerdict {
                index: s.index,
                location: s.location.clone(),
                outcome,
            }
        })
        .collect();
    Verdict {
        accepted: outcomes.iter().all(|o| o.satisfied),
        policy: policy.origin().to_string(),
        policy_digest: policy.digest().to_string(),
        scope,
        requirements: outcomes,
        slots: slot_verdicts,
        searched: vec![],
    }
}

/// A signature requirement is satisfied when at least one signature was accepted; otherwise
/// the reason is containers/image's.
fn satisfied_by_signatures(any: bool, examined: usize, mut reasons: Vec<String>) -> (bool, String) {
    if any {
        (
            true,
            "accepted: at least one signature is valid for this requirement".to_string(),
        )
    } else if examined == 0 {
        (
            false,
            "A signature was required, but no signature exists".to_string(),
        )
    } else if reasons.len() == 1 {
        (false, reasons.remove(0))
    } else {
        (
            false,
            format!(
                "None of the signatures were accepted, reasons: {}",
                reasons.join("; ")
            ),
        )
    }
}
