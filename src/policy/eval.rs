//! Evaluating a policy on one image: which requirements apply (the most specific scope), and
//! for each requirement and each signature slot what became of it. Pure: no IO (key files were
//! read with the policy, and a reference's scopes when it was parsed). Each requirement type
//! judges its own kind in its own file (`basic`, `signed_by`, `sigstore_signed`); this module
//! only runs them in order and assembles the verdict.

use super::basic;
use super::config::Policy;
use super::requirement::{BundleIdentity, Context, Judge, Requirement, Slot, SlotState};
use crate::reference::ImageReference;
use crate::signature::SignatureSlot;
use crate::verdict::{RequirementOutcome, SlotOutcome, SlotVerdict, Verdict};

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

/// Requirement `number`'s answer: satisfied or not, and why.
fn judge(
    requirement: &Requirement,
    number: usize,
    ctx: &Context<'_>,
    slots: &[Slot<'_>],
    state: &mut [SlotState],
) -> (bool, String) {
    match requirement {
        Requirement::InsecureAcceptAnything => basic::insecure_accept_anything(),
        Requirement::Reject => basic::reject(ctx),
        Requirement::SignedBaseLayer => basic::signed_base_layer(),
        Requirement::SignedBy(r) => r.judge(number, ctx, slots, state),
        Requirement::SigstoreSigned(r) => r.judge(number, ctx, slots, state),
    }
}

/// Evaluates the requirements that apply to `image` (the source reference) on the signature
/// slots of the manifest `manifest` (its exact bytes); `bundles` says how sigstore bundles that
/// name no image meet `signedIdentity` (the source's registries.d setting). Every requirement
/// and every slot is judged, so the verdict says everything; the answer is the same as
/// containers/image's, which stops at the first accepted signature and the first unsatisfied
/// requirement.
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
    let docker_reference = image.docker_reference();
    let ctx = Context {
        image,
        docker_reference: docker_reference.as_ref(),
        manifest,
        bundles,
    };
    let read: Vec<Slot<'_>> = slots.iter().map(Slot::read).collect();
    let mut state = vec![SlotState::default(); slots.len()];
    let requirements: Vec<RequirementOutcome> = reqs
        .iter()
        .enumerate()
        .map(|(i, req)| {
            let (satisfied, reason) = judge(req, i + 1, &ctx, &read, &mut state);
            RequirementOutcome {
                index: i + 1,
                kind: req.kind().to_string(),
                description: req.describe(),
                satisfied,
                reason,
            }
        })
        .collect();
    let slot_verdicts = slots
        .iter()
        .zip(state)
        .zip(&read)
        .map(|((s, st), r)| SlotVerdict {
            index: s.index,
            location: s.location.clone(),
            outcome: slot_outcome(r, st),
        })
        .collect();
    Verdict {
        accepted: requirements.iter().all(|o| o.satisfied),
        policy: policy.origin().to_string(),
        policy_digest: policy.digest().to_string(),
        scope,
        requirements,
        slots: slot_verdicts,
        searched: vec![],
    }
}

/// What became of one slot across every requirement: the first acceptance wins; a slot no
/// requirement examined says so with its format.
fn slot_outcome(slot: &Slot<'_>, st: SlotState) -> SlotOutcome {
    match (&slot.readable, st.accepted_by) {
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
    }
}
