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
    // Private, so that only this module can vouch for a signature (not even the rest of ferry).
    sealed: Sealed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Sealed;

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
        sealed: Sealed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::signature::sigstore::{PayloadError, PrivateKey, SignatureMismatch};

    // Made by real cosign: containers/image's signature/fixtures (see testdata/README.md).
    const VALID: &[u8] =
        include_bytes!("../../../testdata/sigstore/golden/dir-img-cosign-valid.signature-1");
    const MANIFEST: &[u8] =
        include_bytes!("../../../testdata/sigstore/golden/dir-img-cosign-valid.manifest.json");
    const UNKNOWN_KEY: &[u8] =
        include_bytes!("../../../testdata/sigstore/golden/unknown-cosign-key.signature");
    const COSIGN_PUB: &[u8] = include_bytes!("../../../testdata/sigstore/golden/cosign.pub");
    const COSIGN2_PUB: &[u8] = include_bytes!("../../../testdata/sigstore/golden/cosign2.pub");

    fn key(pem: &[u8]) -> PublicKey {
        PublicKey::from_pem(pem).unwrap()
    }

    #[test]
    fn golden_signature_verifies_with_its_key() {
        let sig = SigstoreSignature::from_blob(VALID).unwrap();
        let k = key(COSIGN_PUB);
        let v = verify(&sig, std::slice::from_ref(&k)).unwrap();
        assert_eq!(v.key_index, 0);
        assert_eq!(v.key_id, k.id());
        assert_eq!(
            v.payload.docker_reference,
            "192.168.64.2:5000/cosign-signed-single-sample"
        );
        // The payload names the fixture's manifest (the policy checks that, not verify).
        assert_eq!(
            v.payload.manifest_digest,
            Digest::sha256_of(MANIFEST).to_string()
        );
        assert_eq!((v.payload.creator, v.payload.timestamp), (None, None));
        // Any of several keys may verify; the index says which.
        let v = verify(&sig, &[key(COSIGN2_PUB), k]).unwrap();
        assert_eq!(v.key_index, 1);
    }

    #[test]
    fn golden_signature_fails_with_another_key() {
        let sig = SigstoreSignature::from_blob(VALID).unwrap();
        let k2 = key(COSIGN2_PUB);
        let e = verify(&sig, std::slice::from_ref(&k2)).unwrap_err();
        assert_eq!(
            e,
            SigstoreError::Mismatch(vec![KeyMismatch {
                key_index: 0,
                key_id: k2.id().to_string(),
                reason: SignatureMismatch::EcdsaAsn1,
            }])
        );
        assert_eq!(
            e.to_string(),
            format!(
                "cryptographic signature verification failed: invalid signature when validating ASN.1 encoded signature (key {})",
                k2.id()
            )
        );
        // A signature by a key nobody trusts, over the same payload.
        let other = SigstoreSignature::from_blob(UNKNOWN_KEY).unwrap();
        assert_eq!(other.payload, sig.payload);
        let e = verify(&other, &[key(COSIGN_PUB), k2]).unwrap_err();
        assert!(matches!(&e, SigstoreError::Mismatch(m) if m.len() == 2));
        assert!(e.to_string().contains(", invalid signature"));
    }

    #[test]
    fn each_defect_has_its_error() {
        let good = SigstoreSignature::from_blob(VALID).unwrap();
        let keys = [key(COSIGN_PUB)];

        let mut tampered = good.clone();
        tampered.payload[10] ^= 1;
        assert!(matches!(
            verify(&tampered, &keys),
            Err(SigstoreError::Mismatch(_))
        ));

        let mut bad_b64 = good.clone();
        bad_b64
            .annotations
            .insert(SIGNATURE_ANNOTATION.into(), "MEYC!QDm".into());
        assert_eq!(
            verify(&bad_b64, &keys).unwrap_err().to_string(),
            "base64 decoding: illegal base64 data at input byte 4"
        );

        let mut missing = good.clone();
        missing.annotations.clear();
        assert_eq!(
            verify(&missing, &keys).unwrap_err().to_string(),
            "missing dev.cosignproject.cosign/signature annotation"
        );

        let mut attestation = good.clone();
        attestation.mime_type = "application/vnd.dsse.envelope.v1+json".into();
        assert_eq!(
            verify(&attestation, &keys),
            Err(SigstoreError::NotASignature(
                "application/vnd.dsse.envelope.v1+json".into()
            ))
        );

        assert_eq!(
            verify(&good, &[]).unwrap_err().to_string(),
            "Need at least one public key to verify the sigstore payload, but got 0"
        );
    }

    #[test]
    fn a_valid_signature_over_a_bad_payload_is_refused() {
        use base64::Engine;
        let k = PrivateKey::generate().unwrap();
        let payload = br#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:00"},"type":"cosign container image signature"},"optional":null}"#;
        let sig = SigstoreSignature {
            mime_type: SIGNATURE_MIME_TYPE.into(),
            payload: payload.to_vec(),
            annotations: [(
                SIGNATURE_ANNOTATION.to_string(),
                base64::engine::general_purpose::STANDARD.encode(k.sign(payload).unwrap()),
            )]
            .into(),
        };
        assert!(matches!(
            verify(&sig, &[k.public_key().clone()]),
            Err(SigstoreError::Payload(PayloadError::InvalidDigest { .. }))
        ));
    }

    #[test]
    fn signs_like_containers_image_and_verifies() {
        use base64::Engine;
        let k = PrivateKey::generate().unwrap();
        let d = Digest::sha256_of(MANIFEST);
        let payload = SigstorePayload::new(&d, "example.com/ns/repo:tag", None, Some(1))
            .to_json()
            .unwrap();
        let sig = SigstoreSignature {
            mime_type: SIGNATURE_MIME_TYPE.into(),
            annotations: [(
                SIGNATURE_ANNOTATION.to_string(),
                base64::engine::general_purpose::STANDARD.encode(k.sign(&payload).unwrap()),
            )]
            .into(),
            payload,
        };
        let stored = SigstoreSignature::from_blob(&sig.to_blob()).unwrap();
        let v = verify(&stored, &[k.public_key().clone()]).unwrap();
        assert_eq!(v.payload.manifest_digest, d.to_string());
        assert_eq!(v.payload.docker_reference, "example.com/ns/repo:tag");
    }
}
