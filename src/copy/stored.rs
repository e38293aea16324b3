//! A fresh judgement of what the store keeps: a stored name's signatures judged against a
//! policy now, through the same gate as a copy (`ferry signatures verify`). The store's
//! forensic view ([`History`]) reads; judging joins it to the policy, which only the copy module
//! does.

use crate::policy::{self, BundleIdentity, GateInput, ManifestRole, Policy, SignatureMode};
use crate::reference::ImageReference;
use crate::signature::SignatureSlot;
use crate::transport::store::Store;
use crate::transport::store::forensics::{ForensicsError, History};
use crate::verdict::Verdict;

impl History {
    /// Judges this name's stored signatures against `policy` now, through the same gate as a
    /// copy (copy-all: every stored signature is readable), as the image was pulled: with the
    /// source reference of its newest record (so the policy scopes that gated the pull apply),
    /// else its own docker identity. Returns the reference judged and the verdict.
    ///
    /// `bundles` says how sigstore bundles that name no image meet `signedIdentity` (the
    /// registries.d `sigstore-bundle-identity` of [`History::judged_reference`]).
    pub fn verify(
        &self,
        store: &Store,
        policy: &Policy,
        bundles: BundleIdentity,
    ) -> Result<(ImageReference, Verdict), ForensicsError> {
        let manifest = store.manifest_bytes(&self.manifest_digest)?;
        let slots: Vec<SignatureSlot> = self
            .signatures()
            .into_iter()
            .enumerate()
            .map(|(i, s)| SignatureSlot {
                index: i + 1,
                location: store
                    .signature_path(&self.manifest_digest, s.index)
                    .display()
                    .to_string(),
                content: Ok(s.bytes.clone()),
            })
            .collect();
        let as_pulled = self.judged_reference();
        let input = GateInput {
            digest: &self.manifest_digest,
            manifest: &manifest,
            slots: &slots,
            role: ManifestRole::Image,
            platform: None,
            searched: &[],
            bundles,
            attached_unreadable: &[],
        };
        let judgement = match policy::gate(policy, &as_pulled, SignatureMode::CopyAll, &[input]) {
            Ok(a) => a.judgements().first().cloned(),
            Err(r) => r.judgements.first().cloned(),
        };
        let verdict = judgement.and_then(|j| j.verdict).unwrap_or_else(|| {
            policy::evaluate(policy, &as_pulled, &manifest, &slots, input.bundles)
        });
        Ok((as_pulled, verdict))
    }
}
