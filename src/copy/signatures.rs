//! What the destination gets of each manifest's signatures once the gate has spoken: the slots
//! the mode keeps, byte for byte in slot order, then ferry's own signature (`--sign-by`) on the
//! top-level manifest. Computed once, before any manifest or signature is written; the
//! destination is not committed until everything is, so a failure to sign leaves nothing there.

use super::plan::Planned;
use super::sign::{SignError, SignOptions, sign_manifest};
use crate::digest::Digest;
use crate::policy::Judgement;
use crate::record::WrittenSignature;
use crate::reference::ImageReference;
use crate::transport::SignatureSet;
use crate::transport::referrers::{Attached, AttachedKind};

/// The signatures one manifest's destination gets, and where each came from.
#[derive(Debug, Clone, Default)]
pub struct ToWrite {
    /// The bytes, in order.
    pub signatures: Vec<Vec<u8>>,
    /// For the report and the record: each one's position, source slot and digest.
    pub written: Vec<WrittenSignature>,
    /// Attached artifacts to write as themselves where the destination can, each with the
    /// positions in `signatures` of the kept slots it carries (a signature artifact is here
    /// only when every slot it gave is kept; the others are never judged and always here).
    pub attached: Vec<(Attached, Vec<usize>)>,
}

impl ToWrite {
    /// What to write to a destination that keeps attached artifacts (`native`) or not: the
    /// signature blobs (less those an artifact written as itself carries) and the artifacts.
    pub fn routed(&self, native: bool) -> (Vec<Vec<u8>>, Vec<&Attached>) {
        if !native {
            return (self.signatures.clone(), Vec::new());
        }
        let carried: Vec<usize> = self.attached.iter().flat_map(|(_, p)| p.clone()).collect();
        let sigs = self
            .signatures
            .iter()
            .enumerate()
            .filter(|(i, _)| !carried.contains(i))
            .map(|(_, s)| s.clone())
            .collect();
        (sigs, self.attached.iter().map(|(a, _)| a).collect())
    }

    /// How many of the source's signatures and attached artifacts this keeps.
    pub fn kept_from_source(&self) -> usize {
        self.written
            .iter()
            .filter(|s| s.source_slot.is_some())
            .count()
            + self.attached.len()
    }

    /// The attached artifacts a destination without a place for them would lose (signatures
    /// are not lost: they go as signature blobs).
    pub fn lost_without_native(&self) -> Vec<&Attached> {
        self.attached
            .iter()
            .filter(|(a, _)| a.kind != AttachedKind::Signature)
            .map(|(a, _)| a)
            .collect()
    }
}

/// For each planned manifest (in plan order, the top level last), what to write.
pub fn choose(
    plan: &[Planned],
    slots: &[SignatureSet],
    judgements: &[Judgement],
    sign: Option<&SignOptions>,
    dst: &ImageReference,
) -> Result<Vec<ToWrite>, SignError> {
    let top = plan.len().saturating_sub(1);
    let mut out = Vec::with_capacity(plan.len());
    for (i, ((p, slots), j)) in plan.iter().zip(slots).zip(judgements).enumerate() {
        let mut w = ToWrite::default();
        for keep in &j.keep {
            if let Some(Ok(bytes)) = slots
                .slots
                .iter()
                .find(|s| s.index == *keep)
                .map(|s| &s.content)
            {
                w.signatures.push(bytes.clone());
                w.written.push(WrittenSignature {
                    destination_index: w.signatures.len(),
                    source_slot: Some(*keep),
                    digest: Digest::sha256_of(bytes),
                });
            }
        }
        for a in &slots.attached {
            if a.kind != AttachedKind::Signature {
                w.attached.push((a.clone(), Vec::new()));
                continue;
            }
            let positions: Vec<usize> = a
                .slots
                .iter()
                .filter_map(|slot| w.written.iter().position(|x| x.source_slot == Some(*slot)))
                .collect();
            if !positions.is_empty() && positions.len() == a.slots.len() {
                w.attached.push((a.clone(), positions));
            }
        }
        if i == top
            && let Some(sign) = sign
        {
            for sig in sign_manifest(dst, &p.digest, sign)? {
                w.written.push(WrittenSignature {
                    destination_index: w.signatures.len() + 1,
                    source_slot: None,
                    digest: Digest::sha256_of(&sig),
                });
                w.signatures.push(sig);
            }
        }
        out.push(w);
    }
    Ok(out)
}

/// How many source signatures and attached artifacts the copy keeps of each manifest, in plan
/// order: what a conversion that changes the manifest would break (ferry's own signature, made
/// of the new manifest, is not counted).
pub fn kept_from_source(
    plan: &[Planned],
    slots: &[SignatureSet],
    judgements: &[Judgement],
    dst: &ImageReference,
) -> Vec<usize> {
    // Without signing, choosing cannot fail.
    choose(plan, slots, judgements, None, dst)
        .unwrap_or_default()
        .iter()
        .map(ToWrite::kept_from_source)
        .collect()
}
