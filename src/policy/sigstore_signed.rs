//! `sigstoreSigned`: sigstore (cosign) signatures, by a public key (`keyPath`, `keyPaths`,
//! `keyData`, `keyDatas`, optionally with Rekor), or keyless through Fulcio (with Rekor) or a
//! PKI, as containers/image's `policy_eval_sigstore.go` judges them: the trust root's own checks,
//! the cryptographic check, then the signed manifest digest and the signed identity.

use super::identity::{identity_matches, judge_claims};
use super::requirement::{
    BundleIdentity, Context, IdentityMatch, Judge, Judgement, Readable, SigstoreSigned,
    SigstoreTrust, Slot, SlotState, TrustRoot, satisfied_by_signatures,
};
use crate::reference::DockerReference;
use crate::signature::sigstore::bundle::{
    Bundle, BundleKind, BundleSigners, Content, is_bundle_media_type, verify_bundle,
};
use crate::signature::sigstore::describe::{describe_bundle_signer, describe_signer, time_text};
use crate::signature::sigstore::{self, SIGNATURE_MIME_TYPE, SigstoreError, SigstoreSignature};
use crate::verdict::{SignedClaims, Signer};

impl Judge for SigstoreSigned {
    /// Every sigstore signature and signature bundle is judged; simple-signing signatures are
    /// skipped and counted, and so are attestations and other attachments, as containers/image
    /// skips them.
    fn judge(
        &self,
        number: usize,
        ctx: &Context<'_>,
        slots: &[Slot<'_>],
        state: &mut [SlotState],
    ) -> (bool, String) {
        let mut reasons = Vec::new();
        let mut any = false;
        let (mut non_sigstore, mut non_signature_attachments) = (0, 0);
        for (slot, st) in slots.iter().zip(state.iter_mut()) {
            let sig = match &slot.readable {
                Ok(Readable::Sigstore(s)) => s,
                Ok(Readable::Simple(_)) => {
                    non_sigstore += 1;
                    continue;
                }
                Err(_) => continue,
            };
            let judgement = if sig.mime_type == SIGNATURE_MIME_TYPE {
                judge(
                    &self.trust,
                    &self.identity,
                    ctx.docker_reference,
                    ctx.manifest,
                    sig,
                )
            } else if is_bundle_media_type(&sig.mime_type) {
                match Bundle::from_json(&sig.payload) {
                    // Attestations are about the image, not signatures of it.
                    Ok(b) if matches!(b.kind(), BundleKind::Attestation(_)) => {
                        non_signature_attachments += 1;
                        continue;
                    }
                    Ok(b) => judge_bundle(
                        &self.trust,
                        &self.identity,
                        ctx.docker_reference,
                        ctx.manifest,
                        &b,
                        ctx.bundles,
                    ),
                    Err(e) => Judgement::Rejected(
                        e.to_string(),
                        Signer::default(),
                        SignedClaims::default(),
                    ),
                }
            } else {
                // Attestations and SBOMs are attachments too; containers/image skips them.
                non_signature_attachments += 1;
                continue;
            };
            any |= st.record(number, &slot.name, judgement, &mut reasons);
        }
        let examined = reasons.len() + usize::from(any);
        match satisfied_by_signatures(any, examined, reasons) {
            (false, r) if examined == 0 && non_sigstore + non_signature_attachments > 0 => (
                false,
                format!(
                    "{r} ({non_sigstore} non-sigstore signatures, {non_signature_attachments} sigstore non-signature attachments)"
                ),
            ),
            other => other,
        }
    }
}

fn claims_of(p: &sigstore::SigstorePayload) -> SignedClaims {
    SignedClaims {
        docker_reference: Some(p.docker_reference.clone()),
        manifest_digest: Some(p.manifest_digest.clone()),
        created: p.timestamp.and_then(time_text),
        creator: p.creator.clone(),
    }
}

/// Claims read from the payload without verifying it, for a rejected signature's record.
fn unverified_claims(sig: &SigstoreSignature) -> SignedClaims {
    sigstore::SigstorePayload::from_json(&sig.payload)
        .map(|p| claims_of(&p))
        .unwrap_or_default()
}

/// Judges one sigstore signature (whose MIME type is a signature's) for a `sigstoreSigned`
/// requirement.
pub(crate) fn judge(
    trust: &SigstoreTrust,
    identity: &IdentityMatch,
    image: Option<&DockerReference>,
    manifest: &[u8],
    sig: &SigstoreSignature,
) -> Judgement {
    let mut signer = describe_signer(sig);
    signer.key_file = Some(trust.sources.join(", "));
    let root = match &trust.root {
        Ok(r) => r,
        Err(e) => return Judgement::Rejected(e.clone(), signer, unverified_claims(sig)),
    };
    let now = chrono::Utc::now().timestamp();
    let verified: Result<sigstore::VerifiedSigstore, SigstoreError> = match root.as_ref() {
        TrustRoot::Keys { keys, rekor: None } => sigstore::verify(sig, keys),
        TrustRoot::Keys {
            keys,
            rekor: Some(rekor),
        } => sigstore::verify_with_rekor(sig, keys, rekor).map(|(v, _)| v),
        TrustRoot::Fulcio { root, rekor } => sigstore::verify_fulcio(sig, root, rekor),
        TrustRoot::Pki { root } => sigstore::verify_pki(sig, root, now),
    };
    let v = match verified {
        Ok(v) => v,
        Err(e) => {
            return Judgement::Rejected(e.to_string(), signer, unverified_claims(sig));
        }
    };
    signer.signing_key = Some(v.key_id.clone());
    if signer.fingerprint.is_none() {
        signer.fingerprint = Some(v.key_id.clone());
    }
    let claims = claims_of(&v.payload);
    judge_claims(
        manifest,
        &v.payload.manifest_digest,
        &v.payload.docker_reference,
        identity,
        image,
        signer,
        claims,
    )
}

/// The claims of a bundle: the digest it signs and the name, if its statement gives one.
fn bundle_claims(bundle: &Bundle, manifest: &[u8]) -> SignedClaims {
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(manifest));
    match bundle.statement() {
        Some(Ok(s)) => {
            let subject = s.subject_for(&sha).or(s.subjects.first());
            SignedClaims {
                docker_reference: subject.and_then(|x| x.name.clone()),
                manifest_digest: subject
                    .and_then(|x| x.digests.get("sha256"))
                    .map(|d| format!("sha256:{d}")),
                ..SignedClaims::default()
            }
        }
        Some(Err(_)) => SignedClaims::default(),
        None => match &bundle.content {
            Content::MessageSignature { digest, .. } => SignedClaims {
                manifest_digest: Some(format!("sha256:{}", hex::encode(digest))),
                ..SignedClaims::default()
            },
            Content::Dsse { .. } => SignedClaims::default(),
        },
    }
}

/// Judges one sigstore bundle (a signature, not an attestation) for a `sigstoreSigned`
/// requirement: the same trust roots as attached signatures, then the identity the statement
/// names (or, by `bundles`, the image it is attached to).
pub(crate) fn judge_bundle(
    trust: &SigstoreTrust,
    identity: &IdentityMatch,
    image: Option<&DockerReference>,
    manifest: &[u8],
    bundle: &Bundle,
    bundles: BundleIdentity,
) -> Judgement {
    let mut signer = describe_bundle_signer(bundle);
    signer.key_file = Some(trust.sources.join(", "));
    let claims = bundle_claims(bundle, manifest);
    let root = match &trust.root {
        Ok(r) => r,
        Err(e) => return Judgement::Rejected(e.clone(), signer, claims),
    };
    let now = chrono::Utc::now().timestamp();
    let verified = match root.as_ref() {
        TrustRoot::Keys { keys, rekor } => verify_bundle(
            bundle,
            BundleSigners::Keys(keys),
            rekor.as_deref(),
            manifest,
            now,
        ),
        TrustRoot::Fulcio { root, rekor } => verify_bundle(
            bundle,
            BundleSigners::Fulcio(root),
            Some(rekor),
            manifest,
            now,
        ),
        TrustRoot::Pki { root } => {
            verify_bundle(bundle, BundleSigners::Pki(root), None, manifest, now)
        }
    };
    let v = match verified {
        Ok(v) => v,
        Err(e) => return Judgement::Rejected(format!("sigstore bundle: {e}"), signer, claims),
    };
    signer.signing_key = Some(v.key_id.clone());
    if signer.fingerprint.is_none() {
        signer.fingerprint = Some(v.key_id.clone());
    }
    match &v.log {
        Some(l) => {
            signer.rekor_log_index = Some(l.log_index);
            signer.rekor_integrated_time = time_text(l.integrated_time);
        }
        None => {
            // Unverified log details are not evidence of anything the policy checked.
            signer.rekor_log_index = None;
            signer.rekor_integrated_time = None;
        }
    }
    let claimed = match (&claims.docker_reference, bundles, image) {
        (Some(name), _, _) => name.clone(),
        (None, BundleIdentity::AttachedImage, Some(img)) => img.to_string(),
        (None, BundleIdentity::AttachedImage, None) => {
            return Judgement::Rejected(
                "sigstore bundle: its statement names no image, and this image has no docker reference to take instead".into(),
                signer,
                claims,
            );
        }
        (None, BundleIdentity::Named, _) => {
            return Judgement::Rejected(
                format!(
                    "sigstore bundle: it signs digest {} but names no image, so it cannot satisfy signedIdentity {} (cosign 3 signs digests only; to accept such bundles as claiming the image they are attached to, set sigstore-bundle-identity: attached-image for this scope in registries.d)",
                    claims.manifest_digest.as_deref().unwrap_or("?"),
                    identity.describe()
                ),
                signer,
                claims,
            );
        }
    };
    if let Err(e) = identity_matches(identity, image, &claimed) {
        return Judgement::Rejected(e, signer, claims);
    }
    Judgement::Accepted(signer, claims)
}
