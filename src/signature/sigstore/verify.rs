//! Verifying a sigstore signature, in containers/image's order (policy_eval_sigstore.go,
//! sigstore_payload.go): the MIME type, the signature annotation, the trust root's own checks
//! (a Rekor SET, a certificate), the signature's base64, the cryptographic check against each
//! key, then the payload. One function per kind of trust root: [`verify()`] (public keys),
//! [`verify_with_rekor`] (public keys and Rekor), [`verify_fulcio`], [`verify_pki`]. Matching
//! the payload's digest and identity against the image is the policy's job, done with the
//! returned [`VerifiedSigstore`].

use super::fulcio::{CertificateTrust, FulcioTrustRoot, PkiTrustRoot, verify_rekor_fulcio};
use super::go_compat;
use super::keys::PublicKey;
use super::payload::SigstorePayload;
use super::rekor::{VerifiedRekorSet, verify_rekor_set};
use super::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, KeyMismatch, SIGNATURE_ANNOTATION,
    SIGNATURE_MIME_TYPE, SigstoreError, SigstoreSignature,
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

/// The MIME type check and the signature annotation, common to every trust root.
fn signature_annotation(sig: &SigstoreSignature) -> Result<&str, SigstoreError> {
    if sig.mime_type != SIGNATURE_MIME_TYPE {
        return Err(SigstoreError::NotASignature(sig.mime_type.clone()));
    }
    sig.signature_base64()
        .ok_or(SigstoreError::MissingAnnotation(SIGNATURE_ANNOTATION))
}

fn annotation<'a>(sig: &'a SigstoreSignature, key: &'static str) -> Result<&'a str, SigstoreError> {
    sig.annotations
        .get(key)
        .map(String::as_str)
        .ok_or(SigstoreError::MissingAnnotation(key))
}

/// containers/image's `VerifySigstorePayload`: base64, the keys, the payload.
fn verify_payload(
    sig: &SigstoreSignature,
    b64: &str,
    keys: &[PublicKey],
) -> Result<VerifiedSigstore, SigstoreError> {
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

/// Verifies `sig` with any of `keys` (the first that verifies wins).
pub fn verify(
    sig: &SigstoreSignature,
    keys: &[PublicKey],
) -> Result<VerifiedSigstore, SigstoreError> {
    let b64 = signature_annotation(sig)?;
    verify_payload(sig, b64, keys)
}

/// Public keys with a Rekor requirement: the bundle annotation's SET must verify with one of
/// `rekor_keys` and log one of `keys` (the first that matches is the only one then tried on the
/// signature, as in containers/image).
pub fn verify_with_rekor(
    sig: &SigstoreSignature,
    keys: &[PublicKey],
    rekor_keys: &[PublicKey],
) -> Result<(VerifiedSigstore, VerifiedRekorSet), SigstoreError> {
    let b64 = signature_annotation(sig)?;
    let set = annotation(sig, BUNDLE_ANNOTATION)?;
    let mut failures = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        // The SET logs the key as containers/image re-marshals it: canonical SPKI PEM.
        match verify_rekor_set(
            rekor_keys,
            set.as_bytes(),
            key.to_pem().as_bytes(),
            b64,
            &sig.payload,
        ) {
            Ok(verified_set) => {
                let mut v = verify_payload(sig, b64, std::slice::from_ref(key))?;
                v.key_index = i;
                return Ok((v, verified_set));
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    if failures.is_empty() {
        return Err(SigstoreError::NoKeys);
    }
    Err(SigstoreError::NoKeyInRekorSet(failures))
}

/// Fulcio (keyless): the SET (required) must verify with one of `rekor_keys` and log the
/// certificate annotation, which must be valid for `fulcio` at the SET's time; its key must
/// have made the signature.
pub fn verify_fulcio(
    sig: &SigstoreSignature,
    fulcio: &FulcioTrustRoot,
    rekor_keys: &[PublicKey],
) -> Result<VerifiedSigstore, SigstoreError> {
    let b64 = signature_annotation(sig)?;
    let set = annotation(sig, BUNDLE_ANNOTATION)?;
    let cert = annotation(sig, CERTIFICATE_ANNOTATION)?;
    let chain = sig.annotations.get(CHAIN_ANNOTATION).map(String::as_bytes);
    let key = verify_rekor_fulcio(
        rekor_keys,
        fulcio,
        set.as_bytes(),
        cert.as_bytes(),
        chain,
        b64,
        &sig.payload,
    )?;
    verify_payload(sig, b64, &[key])
}

/// PKI (keyless, no Rekor): the certificate annotation must be valid for `pki` at `now`
/// (Unix seconds; containers/image uses the current time) and its key must have made the
/// signature.
pub fn verify_pki(
    sig: &SigstoreSignature,
    pki: &PkiTrustRoot,
    now: i64,
) -> Result<VerifiedSigstore, SigstoreError> {
    let b64 = signature_annotation(sig)?;
    let cert = annotation(sig, CERTIFICATE_ANNOTATION)?;
    let chain = sig.annotations.get(CHAIN_ANNOTATION).map(String::as_bytes);
    let key = pki.verify_certificate_at(now, cert.as_bytes(), chain)?;
    verify_payload(sig, b64, &[key])
}

#[cfg(test)]
mod tests {
    use super::super::{BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION};
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

    const KEY_REKOR: &[u8] = include_bytes!(
        "../../../testdata/sigstore/golden/dir-img-cosign-key-rekor-valid.signature-1"
    );
    const FULCIO_REKOR: &[u8] = include_bytes!(
        "../../../testdata/sigstore/golden/dir-img-cosign-fulcio-rekor-valid.signature-1"
    );
    const PKI_SIGNED: &[u8] =
        include_bytes!("../../../testdata/sigstore/golden/dir-img-cosign-pki-valid.signature-1");
    const REKOR_PUB: &[u8] = include_bytes!("../../../testdata/sigstore/golden/rekor.pub");
    const FULCIO_ROOT: &[u8] =
        include_bytes!("../../../testdata/sigstore/golden/fulcio_v1.crt.pem");

    #[test]
    fn key_and_rekor_like_containers_image() {
        // The combinations of containers/image's TestPRrSigstoreSignedIsSignatureAccepted.
        let sig = SigstoreSignature::from_blob(KEY_REKOR).unwrap();
        let (k1, k2, rekor) = (key(COSIGN_PUB), key(COSIGN2_PUB), key(REKOR_PUB));
        for keys in [
            vec![k2.clone()],
            vec![k2.clone(), k1.clone()],
            vec![k1.clone(), k2.clone()],
        ] {
            for rekor_keys in [
                vec![rekor.clone()],
                vec![rekor.clone(), k1.clone()],
                vec![k1.clone(), rekor.clone()],
            ] {
                let (v, set) = verify_with_rekor(&sig, &keys, &rekor_keys).unwrap();
                assert_eq!(keys[v.key_index], k2);
                assert_eq!(
                    v.payload.docker_reference,
                    "192.168.64.2:5000/cosign-signed/key-1"
                );
                assert_eq!(rekor_keys[set.rekor_key_index], rekor);
            }
        }
        let mut no_set = sig.clone();
        no_set.annotations.remove(BUNDLE_ANNOTATION);
        assert_eq!(
            verify_with_rekor(
                &no_set,
                std::slice::from_ref(&k2),
                std::slice::from_ref(&rekor)
            )
            .unwrap_err()
            .to_string(),
            "missing dev.sigstore.cosign/bundle annotation"
        );
        let mut bad_set = sig.clone();
        bad_set
            .annotations
            .insert(BUNDLE_ANNOTATION.into(), "this is not a valid SET".into());
        assert!(matches!(
            verify_with_rekor(
                &bad_set,
                std::slice::from_ref(&k2),
                std::slice::from_ref(&rekor)
            ),
            Err(SigstoreError::NoKeyInRekorSet(_))
        ));
        // The wrong Rekor key.
        assert_eq!(
            verify_with_rekor(&sig, std::slice::from_ref(&k2), std::slice::from_ref(&k1))
                .unwrap_err()
                .to_string(),
            "No public key verified against the RekorSET: cryptographic signature verification of Rekor SET failed"
        );
        // A valid SET for another key's signature.
        let mut other = SigstoreSignature::from_blob(VALID).unwrap();
        other.annotations.insert(
            BUNDLE_ANNOTATION.into(),
            sig.annotations[BUNDLE_ANNOTATION].clone(),
        );
        let e = verify_with_rekor(&other, &[k1, k2], &[rekor])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("No public key verified against the RekorSET: "),
            "{e}"
        );
        assert!(e.contains("signature in Rekor SET does not match"), "{e}");
    }

    #[test]
    fn fulcio_and_pki_like_containers_image() {
        use crate::signature::sigstore::fulcio::FulcioTrustRoot;
        let sig = SigstoreSignature::from_blob(FULCIO_REKOR).unwrap();
        let fulcio = FulcioTrustRoot::new(
            FULCIO_ROOT,
            "https://github.com/login/oauth",
            "mitr@redhat.com",
        )
        .unwrap();
        let rekor = [key(REKOR_PUB), key(COSIGN_PUB)];
        let v = verify_fulcio(&sig, &fulcio, &rekor).unwrap();
        assert_eq!(
            v.payload.docker_reference,
            "192.168.64.2:5000/cosign-signed/fulcio-rekor-1"
        );
        for (missing, text) in [
            (
                BUNDLE_ANNOTATION,
                "missing dev.sigstore.cosign/bundle annotation",
            ),
            (
                CERTIFICATE_ANNOTATION,
                "missing dev.sigstore.cosign/certificate annotation",
            ),
            (
                CHAIN_ANNOTATION,
                "veryfing leaf certificate failed: x509: certificate signed by unknown authority",
            ),
        ] {
            let mut s = sig.clone();
            s.annotations.remove(missing);
            assert_eq!(
                verify_fulcio(&s, &fulcio, &rekor).unwrap_err().to_string(),
                text
            );
        }

        let sig = SigstoreSignature::from_blob(PKI_SIGNED).unwrap();
        let pki = crate::signature::sigstore::fulcio::tests::golden_pki_root();
        let now = 1_767_225_600;
        assert_eq!(
            verify_pki(&sig, &pki, now)
                .unwrap()
                .payload
                .docker_reference,
            "localhost:5000/test"
        );
        let mut s = sig.clone();
        s.annotations.remove(CERTIFICATE_ANNOTATION);
        assert_eq!(
            verify_pki(&s, &pki, now).unwrap_err().to_string(),
            "missing dev.sigstore.cosign/certificate annotation"
        );
        // The certificate's key did not make another signature.
        let mut s = SigstoreSignature::from_blob(VALID).unwrap();
        s.annotations.insert(
            CERTIFICATE_ANNOTATION.into(),
            sig.annotations[CERTIFICATE_ANNOTATION].clone(),
        );
        assert!(matches!(
            verify_pki(&s, &pki, now),
            Err(SigstoreError::Mismatch(_))
        ));
    }
}
