//! Verifying a sigstore signature with public keys, in containers/image's order: the MIME
//! type, the signature annotation, its base64, the cryptographic check against each key, then
//! the payload. Matching the payload's digest and identity against the image is the policy's
//! job, done with the returned [`VerifiedSigstore`].

use super::go_compat;
use super::keys::PublicKey;
use super::payload::SigstorePayload;
use super::{
    KeyMismatch, SIGNATURE_ANNOTATION, SIGNATURE_MIME_TYPE, SigstoreError, SigstoreSignature,
};

/// Proof that a signature was made by one of the given keys over a valid payload. Only
/// [`verify`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSigstore {
    /// The parsed payload (digest and identity not yet matched against anything).
    pub payload: SigstorePayload,
    /// The position of the key that verified it in the list given to [`verify`].
    pub key_index: usize,
    /// That key's identifier ([`PublicKey::id`]).
    pub key_id: String,
    _proof: (),
}

/// Verifies `sig` with any of `keys` (the first that verifies wins).
pub fn verify(
    sig: &SigstoreSignature,
    keys: &[PublicKey],
) -> Result<VerifiedSigstore, SigstoreError> {
    if sig.mime_type != SIGNATURE_MIME_TYPE {
        return Err(SigstoreError::NotASignature(sig.mime_type.clone()));
    }
    let b64 = sig
        .signature_base64()
        .ok_or(SigstoreError::MissingAnnotation(SIGNATURE_ANNOTATION))?;
    let signature = go_compat::base64_decode(b64.as_bytes())
        .map_err(|e| SigstoreError::Base64(e.to_string()))?;
    if keys.is_empty() {
        return Err(SigstoreError::NoKeys);
    }
    let mut failures = Vec::new();
    let mut verified_by = None;
    for (i, key) in keys.iter().enumerate() {
        match key.verify(&sig.payload, &signature) {
            Ok(()) => {
                verified_by = Some((i, key));
                break;
            }
            Err(reason) => failures.push(KeyMismatch {
                key_index: i,
                key_id: key.id().to_string(),
                reason,
            }),
        }
    }
    let Some((key_index, key)) = verified_by else {
        return Err(SigstoreError::Mismatch(failures));
    };
    let payload = SigstorePayload::from_json(&sig.payload)?;
    Ok(VerifiedSigstore {
        payload,
        key_index,
        key_id: key.id().to_string(),
        _proof: (),
    })
}
