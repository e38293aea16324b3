//! Rekor signed entry timestamps (SETs): the proof, in the [`super::BUNDLE_ANNOTATION`]
//! annotation, that a signature was logged in Rekor at a given time.
//!
//! As containers/image's `VerifyRekorSET` (signature/internal/rekor_set.go): the annotation is
//! `{"SignedEntryTimestamp": B64, "Payload": {"body": B64, "integratedTime": N, "logIndex": N,
//! "logID": HEX}}` (exactly these members); the SET is an ECDSA signature (ASN.1) by a Rekor
//! key over the SHA-256 of the RFC 8785 canonical form of `Payload`; `body` is a `hashedrekord`
//! 0.0.1 entry whose public key (or certificate), signature and SHA-256 payload hash must be
//! those of the cosign signature being verified. Only log presence and time are proven; the
//! inclusion proof is not checked (containers/image does not either).

use base64::Engine;
use serde_json::Value;
use sha2::Digest as _;

use super::go_compat::{self, json_kind, member};
use super::jcs;
use super::keys::PublicKey;
use super::pem;
use crate::strict_json;

/// The `hashedrekord` API version containers/image accepts.
pub const HASHEDREKORD_API_VERSION: &str = "0.0.1";

/// Why a Rekor SET was not accepted. The messages are containers/image's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RekorError {
    /// No Rekor key was given.
    #[error("Internal inconsistency: no Rekor public keys")]
    NoKeys,
    /// A Rekor key that is not ECDSA (1-based position, as containers/image counts).
    #[error("Rekor public key {0} is not using ECDSA")]
    NotEcdsa(usize),
    /// The annotation is not the expected JSON object.
    #[error("{0}")]
    Json(String),
    /// `Payload` has no canonical form.
    #[error("canonicalizing Rekor SET JSON: {0}")]
    Canonicalize(String),
    /// No Rekor key made the SET's signature.
    #[error("cryptographic signature verification of Rekor SET failed")]
    SetSignature,
    /// The signed payload is not the expected JSON object.
    #[error("parsing Rekor SET payload: {0}")]
    Payload(String),
    /// `body` is not a `hashedrekord` entry.
    #[error("decoding the body of a Rekor SET payload: {0}")]
    Body(String),
    /// The entry has no `apiVersion`.
    #[error("missing Rekor SET Payload API version")]
    MissingApiVersion,
    /// An `apiVersion` other than 0.0.1.
    #[error("unsupported Rekor SET Payload hashedrekord version {0:?}")]
    UnsupportedApiVersion(String),
    /// The entry's `spec` is malformed.
    #[error("decoding hashedrekod spec: {0}")]
    Spec(String),
    /// A required member of the `hashedrekord` entry is missing.
    #[error("Missing \"{0}\" field in hashedrekord")]
    MissingField(&'static str),
    /// The entry's public key is not PEM.
    #[error("publicKey in Rekor SET is not in PEM format")]
    EntryKeyNotPem,
    /// The entry's public key has data after its PEM block.
    #[error("publicKey in Rekor SET has trailing data")]
    EntryKeyTrailingData,
    /// The key or certificate to match is not PEM.
    #[error("public key or cert to be matched against publicKey in Rekor SET is not in PEM format")]
    KeyOrCertNotPem,
    /// The key or certificate to match has data after its PEM block.
    #[error("public key or cert to be matched against publicKey in Rekor SET has trailing data")]
    KeyOrCertTrailingData,
    /// The logged key or certificate is not the one that made the signature.
    #[error("publicKey in Rekor SET does not match")]
    KeyMismatch,
    /// The cosign signature annotation is not base64.
    #[error("decoding signature base64: {0}")]
    SignatureBase64(String),
    /// The logged signature is not the cosign signature.
    #[error("signature in Rekor SET does not match: {logged} vs. {signature}")]
    SignatureMismatch {
        /// The logged signature, base64.
        logged: String,
        /// The cosign signature, base64.
        signature: String,
    },
    /// A hash algorithm other than SHA-256.
    #[error("Unexpected \"data.hash.algorithm\" value {0:?}")]
    HashAlgorithm(String),
    /// The logged hash is not hex.
    #[error("Invalid \"data.hash.value\" field in hashedrekord: {0}")]
    HashValue(String),
    /// The logged hash is not the payload's.
    #[error("payload in Rekor SET does not match")]
    PayloadMismatch,
}

/// The signed content of a SET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekorPayload {
    /// The log entry (base64-decoded): a `hashedrekord` JSON document.
    pub body: Vec<u8>,
    /// When Rekor logged the entry (Unix seconds).
    pub integrated_time: i64,
    /// The entry's index in the log.
    pub log_index: i64,
    /// The log's ID: hex SHA-256 of the log's public key (SPKI DER), see [`PublicKey::id`].
    pub log_id: String,
}

/// Proof that a Rekor key logged this signature. Only [`verify_rekor_set`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRekorSet {
    /// The verified payload; `integrated_time` is the time that matters.
    pub payload: RekorPayload,
    /// The position of the Rekor key that signed the SET.
    pub rekor_key_index: usize,
    sealed: Sealed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Sealed;

fn json(e: impl std::fmt::Display) -> RekorError {
    RekorError::Json(e.to_string())
}

/// A JSON value Go decodes into `[]byte`: a base64 string, or `null` for none.
fn go_bytes(v: &Value, go_type: &str) -> Result<Vec<u8>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => go_compat::base64_decode(s.as_bytes()).map_err(|e| e.to_string()),
        other => Err(format!(
            "json: cannot unmarshal {} into Go {go_type} of type []uint8",
            json_kind(other)
        )),
    }
}

/// A member Go decodes into a `*string`: `None` when absent or `null`.
fn go_opt_string(
    obj: Option<&serde_json::Map<String, Value>>,
    name: &str,
    field: &str,
) -> Result<Option<String>, String> {
    match obj.and_then(|o| member(o, name)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "json: cannot unmarshal {} into Go struct field {field} of type string",
            json_kind(other)
        )),
    }
}

/// A member Go decodes into a pointer to a struct: `None` when absent or `null`.
fn go_opt_object<'a>(
    obj: Option<&'a serde_json::Map<String, Value>>,
    name: &str,
    field: &str,
) -> Result<Option<&'a serde_json::Map<String, Value>>, String> {
    match obj.and_then(|o| member(o, name)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(format!(
            "json: cannot unmarshal {} into Go struct field {field} of type object",
            json_kind(other)
        )),
    }
}

/// Parses the signed payload (already canonical) with containers/image's exact-fields rules.
fn parse_payload(canonical: &[u8]) -> Result<RekorPayload, String> {
    let v = strict_json::parse(canonical).map_err(|e| e.to_string())?;
    let fields = ["body", "integratedTime", "logIndex", "logID"];
    let obj = strict_json::object(&v, &fields, &fields).map_err(|e| e.to_string())?;
    let int = |v: &Value| match v {
        Value::Null => Ok(0),
        Value::Number(n) => n.as_i64().ok_or_else(|| {
            format!("json: cannot unmarshal number {n} into Go value of type int64")
        }),
        other => Err(format!(
            "json: cannot unmarshal {} into Go value of type int64",
            json_kind(other)
        )),
    };
    let log_id = match obj.req("logID").map_err(|e| e.to_string())? {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type string",
                json_kind(other)
            ));
        }
    };
    Ok(RekorPayload {
        body: go_bytes(obj.req("body").map_err(|e| e.to_string())?, "value")?,
        integrated_time: int(obj.req("integratedTime").map_err(|e| e.to_string())?)?,
        log_index: int(obj.req("logIndex").map_err(|e| e.to_string())?)?,
        log_id,
    })
}

/// The `hashedrekord` entry's `spec`, as containers/image's lenient decoding sees it.
struct HashedRekord {
    signature: Option<(Vec<u8>, Option<Vec<u8>>)>,
    hash: Option<Option<(Option<String>, Option<String>)>>,
}

fn parse_body(body: &[u8]) -> Result<HashedRekord, RekorError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| RekorError::Body(e.to_string()))?;
    let top = match &v {
        Value::Object(o) => Some(o),
        Value::Null => None,
        other => {
            return Err(RekorError::Body(format!(
                "json: cannot unmarshal {} into Go value of type struct {{ Kind string \"json:\\\"kind\\\"\" }}",
                json_kind(other)
            )));
        }
    };
    let kind = go_opt_string(top, "kind", "kind").map_err(RekorError::Body)?;
    let kind = kind.unwrap_or_default();
    if kind != "hashedrekord" {
        return Err(RekorError::Body(format!("invalid kind value: {kind:?}")));
    }
    let api_version = go_opt_string(top, "apiVersion", "apiVersion").map_err(RekorError::Body)?;
    let Some(api_version) = api_version else {
        return Err(RekorError::MissingApiVersion);
    };
    if api_version != HASHEDREKORD_API_VERSION {
        return Err(RekorError::UnsupportedApiVersion(api_version));
    }
    let spec = match top.and_then(|o| member(o, "spec")) {
        // Go hands a missing `spec` (an empty RawMessage) to json.Unmarshal, which fails so.
        None => return Err(RekorError::Spec("unexpected end of JSON input".into())),
        Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(o),
        Some(other) => {
            return Err(RekorError::Spec(format!(
                "json: cannot unmarshal {} into Go value of type internal.RekorHashedrekordV001Schema",
                json_kind(other)
            )));
        }
    };
    let spec_err = RekorError::Spec;
    let signature = go_opt_object(spec, "signature", "signature").map_err(spec_err)?;
    let signature = match signature {
        None => None,
        Some(sig) => {
            let content = match member(sig, "content") {
                None => Vec::new(),
                Some(c) => go_bytes(c, "struct field signature.content").map_err(spec_err)?,
            };
            let public_key =
                go_opt_object(Some(sig), "publicKey", "signature.publicKey").map_err(spec_err)?;
            let public_key = match public_key {
                None => None,
                Some(pk) => Some(match member(pk, "content") {
                    None => Vec::new(),
                    Some(c) => {
                        go_bytes(c, "struct field signature.publicKey.content").map_err(spec_err)?
                    }
                }),
            };
            Some((content, public_key))
        }
    };
    let data = go_opt_object(spec, "data", "data").map_err(spec_err)?;
    let hash = match data {
        None => None,
        Some(d) => {
            let hash = go_opt_object(Some(d), "hash", "data.hash").map_err(spec_err)?;
            Some(match hash {
                None => None,
                Some(h) => Some((
                    go_opt_string(Some(h), "algorithm", "data.hash.algorithm").map_err(spec_err)?,
                    go_opt_string(Some(h), "value", "data.hash.value").map_err(spec_err)?,
                )),
            })
        }
    };
    Ok(HashedRekord { signature, hash })
}

/// Verifies `set` (the bundle annotation) with any of `rekor_keys`, and that it logs exactly
/// this signature: `key_or_cert_pem` (the signing public key as PEM, or the certificate
/// annotation), `signature_base64` (the signature annotation) and `payload`.
pub fn verify_rekor_set(
    rekor_keys: &[PublicKey],
    set: &[u8],
    key_or_cert_pem: &[u8],
    signature_base64: &str,
    payload: &[u8],
) -> Result<VerifiedRekorSet, RekorError> {
    if rekor_keys.is_empty() {
        return Err(RekorError::NoKeys);
    }
    if let Some(i) = rekor_keys.iter().position(|k| !k.is_ecdsa()) {
        return Err(RekorError::NotEcdsa(i + 1));
    }

    // == The SET itself.
    let v = strict_json::parse(set).map_err(json)?;
    let fields = ["SignedEntryTimestamp", "Payload"];
    let obj = strict_json::object(&v, &fields, &fields).map_err(json)?;
    let set_signature =
        go_bytes(obj.req("SignedEntryTimestamp").map_err(json)?, "value").map_err(json)?;
    let canonical = jcs::canonicalize(obj.req("Payload").map_err(json)?)
        .map_err(|e| RekorError::Canonicalize(e.to_string()))?;
    let hash: [u8; 32] = sha2::Sha256::digest(canonical.as_bytes()).into();
    let rekor_key_index = rekor_keys
        .iter()
        .position(|k| k.verify_ecdsa_asn1_digest(&hash, &set_signature))
        .ok_or(RekorError::SetSignature)?;

    // == What it signs: parsed from the verified canonical bytes, not the original text.
    let rekor_payload = parse_payload(canonical.as_bytes()).map_err(RekorError::Payload)?;
    let entry = parse_body(&rekor_payload.body)?;

    // == The logged key or certificate.
    let Some((logged_signature, logged_key)) = entry.signature else {
        return Err(RekorError::MissingField("signature"));
    };
    let Some(logged_key) = logged_key else {
        return Err(RekorError::MissingField("signature.publicKey"));
    };
    let (logged_block, rest) = pem::decode(&logged_key).ok_or(RekorError::EntryKeyNotPem)?;
    if !rest.is_empty() {
        return Err(RekorError::EntryKeyTrailingData);
    }
    let (our_block, rest) = pem::decode(key_or_cert_pem).ok_or(RekorError::KeyOrCertNotPem)?;
    if !rest.is_empty() {
        return Err(RekorError::KeyOrCertTrailingData);
    }
    // Like containers/image, the DER is compared, not the labels or headers.
    if logged_block.der != our_block.der {
        return Err(RekorError::KeyMismatch);
    }

    // == The logged signature.
    let signature = go_compat::base64_decode(signature_base64.as_bytes())
        .map_err(|e| RekorError::SignatureBase64(e.to_string()))?;
    if logged_signature != signature {
        let b64 = base64::engine::general_purpose::STANDARD;
        return Err(RekorError::SignatureMismatch {
            logged: b64.encode(&logged_signature),
            signature: b64.encode(&signature),
        });
    }

    // == The logged payload hash.
    let Some(hash) = entry.hash else {
        return Err(RekorError::MissingField("data"));
    };
    let Some((algorithm, value)) = hash else {
        return Err(RekorError::MissingField("data.hash"));
    };
    let Some(algorithm) = algorithm else {
        return Err(RekorError::MissingField("data.hash.algorithm"));
    };
    if algorithm != "sha256" {
        return Err(RekorError::HashAlgorithm(algorithm));
    }
    let Some(value) = value else {
        return Err(RekorError::MissingField("data.hash.value"));
    };
    let logged_hash = go_compat::hex_decode(&value).map_err(RekorError::HashValue)?;
    if logged_hash != sha2::Sha256::digest(payload).as_slice() {
        return Err(RekorError::PayloadMismatch);
    }

    Ok(VerifiedRekorSet {
        payload: rekor_payload,
        rekor_key_index,
        sealed: Sealed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::sigstore::{
        BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, PrivateKey, SIGNATURE_ANNOTATION,
        SigstoreSignature,
    };
    use serde_json::json;

    // Made by real cosign and Rekor: containers/image's fixtures (see testdata/README.md).
    const REKOR_PUB: &[u8] = include_bytes!("../../../testdata/sigstore/golden/rekor.pub");
    const SET: &[u8] = include_bytes!("../../../testdata/sigstore/golden/rekor-set");
    const CERT: &[u8] = include_bytes!("../../../testdata/sigstore/golden/rekor-cert");
    const SIG: &str = include_str!("../../../testdata/sigstore/golden/rekor-sig");
    const PAYLOAD: &[u8] = include_bytes!("../../../testdata/sigstore/golden/rekor-payload");
    const KEY_REKOR: &[u8] = include_bytes!(
        "../../../testdata/sigstore/golden/dir-img-cosign-key-rekor-valid.signature-1"
    );
    const FULCIO_REKOR: &[u8] = include_bytes!(
        "../../../testdata/sigstore/golden/dir-img-cosign-fulcio-rekor-valid.signature-1"
    );
    const COSIGN_PUB: &[u8] = include_bytes!("../../../testdata/sigstore/golden/cosign.pub");
    const COSIGN2_PUB: &[u8] = include_bytes!("../../../testdata/sigstore/golden/cosign2.pub");

    fn rekor_key() -> PublicKey {
        PublicKey::from_pem(REKOR_PUB).unwrap()
    }

    fn other_key() -> PublicKey {
        PrivateKey::generate().unwrap().public_key().clone()
    }

    #[test]
    fn golden_set_verifies() {
        for keys in [
            vec![rekor_key()],
            vec![rekor_key(), other_key()],
            vec![other_key(), rekor_key()],
        ] {
            let v = verify_rekor_set(&keys, SET, CERT, SIG, PAYLOAD).unwrap();
            assert_eq!(v.payload.integrated_time, 1670870899);
            assert_eq!(keys[v.rekor_key_index], rekor_key());
            // The log ID is the Rekor key's identifier.
            assert_eq!(v.payload.log_id, rekor_key().id());
        }
        let e = verify_rekor_set(&[other_key()], SET, CERT, SIG, PAYLOAD).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cryptographic signature verification of Rekor SET failed"
        );
    }

    #[test]
    fn golden_signatures_with_sets_verify() {
        // A key-signed image: the SET logs the re-encoded public key, as containers/image
        // checks it (cryptoutils.MarshalPublicKeyToPEM).
        let sig = SigstoreSignature::from_blob(KEY_REKOR).unwrap();
        let set = sig.annotations[BUNDLE_ANNOTATION].as_bytes();
        let b64 = &sig.annotations[SIGNATURE_ANNOTATION];
        let signer = PublicKey::from_pem(COSIGN2_PUB).unwrap();
        let v = verify_rekor_set(
            &[rekor_key()],
            set,
            signer.to_pem().as_bytes(),
            b64,
            &sig.payload,
        )
        .unwrap();
        assert!(v.payload.integrated_time > 1_600_000_000);
        let wrong = PublicKey::from_pem(COSIGN_PUB).unwrap();
        assert_eq!(
            verify_rekor_set(
                &[rekor_key()],
                set,
                wrong.to_pem().as_bytes(),
                b64,
                &sig.payload
            ),
            Err(RekorError::KeyMismatch)
        );
        // The SET is for another payload.
        assert_eq!(
            verify_rekor_set(&[rekor_key()], set, signer.to_pem().as_bytes(), b64, b"x"),
            Err(RekorError::PayloadMismatch)
        );

        // A Fulcio-signed image: the SET logs the certificate annotation.
        let sig = SigstoreSignature::from_blob(FULCIO_REKOR).unwrap();
        let v = verify_rekor_set(
            &[rekor_key()],
            sig.annotations[BUNDLE_ANNOTATION].as_bytes(),
            sig.annotations[CERTIFICATE_ANNOTATION].as_bytes(),
            &sig.annotations[SIGNATURE_ANNOTATION],
            &sig.payload,
        )
        .unwrap();
        assert_eq!(v.payload.integrated_time, 1674247893);
        assert_eq!(v.payload.log_index, 11605770);
    }

    #[test]
    fn bad_inputs_outside_the_set() {
        let k = [rekor_key()];
        assert_eq!(
            verify_rekor_set(&[], SET, CERT, SIG, PAYLOAD),
            Err(RekorError::NoKeys)
        );
        let rsa = PrivateKey::generate_of(crate::signature::sigstore::KeyAlgorithm::Ed25519)
            .unwrap()
            .public_key()
            .clone();
        assert_eq!(
            verify_rekor_set(&[rekor_key(), rsa], SET, CERT, SIG, PAYLOAD)
                .unwrap_err()
                .to_string(),
            "Rekor public key 2 is not using ECDSA"
        );
        assert!(verify_rekor_set(&k, b"", CERT, SIG, PAYLOAD).is_err());
        assert!(verify_rekor_set(&k, b"invalid signature", CERT, SIG, PAYLOAD).is_err());
        assert!(matches!(
            verify_rekor_set(&k, SET, CERT, &SIG[..SIG.len() - 1], PAYLOAD),
            Err(RekorError::SignatureBase64(_))
        ));
        let twice = [CERT, CERT].concat();
        for (c, e) in [
            (&b""[..], RekorError::KeyOrCertNotPem),
            (b"this is not PEM", RekorError::KeyOrCertNotPem),
            (&twice, RekorError::KeyOrCertTrailingData),
        ] {
            assert_eq!(verify_rekor_set(&k, SET, c, SIG, PAYLOAD), Err(e));
        }
    }

    /// A SET over `payload` (a Rekor payload JSON value) signed by `signer`.
    fn set_for(signer: &PrivateKey, payload: &Value) -> Vec<u8> {
        let canonical = jcs::canonicalize(payload).unwrap();
        // ECDSA P-256 over SHA-256 in ASN.1: what Rekor does.
        let sig = signer.sign(canonical.as_bytes()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        json!({"SignedEntryTimestamp": b64.encode(sig), "Payload": payload})
            .to_string()
            .into_bytes()
    }

    fn valid_body() -> Value {
        let b64 = base64::engine::general_purpose::STANDARD;
        json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hex::encode(sha2::Sha256::digest(PAYLOAD))}},
                "signature": {"content": SIG, "publicKey": {"content": b64.encode(CERT)}},
            },
        })
    }

    fn payload_with(body: &Value) -> Value {
        let b64 = base64::engine::general_purpose::STANDARD;
        json!({"body": b64.encode(body.to_string()), "integratedTime": 1, "logIndex": 2, "logID": "logID"})
    }

    #[test]
    fn each_defect_of_a_signed_entry_has_its_error() {
        // containers/image's TestVerifyRekorSET corruptions, each in a correctly signed SET.
        let signer = PrivateKey::generate().unwrap();
        let keys = [signer.public_key().clone()];
        let check = |body: &Value| {
            verify_rekor_set(
                &keys,
                &set_for(&signer, &payload_with(body)),
                CERT,
                SIG,
                PAYLOAD,
            )
        };
        let v = check(&valid_body()).unwrap();
        assert_eq!((v.payload.integrated_time, v.payload.log_index), (1, 2));
        let b64 = base64::engine::general_purpose::STANDARD;
        type Edit = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("apiVersion");
                }),
                "missing Rekor SET Payload API version",
            ),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("kind");
                }),
                "decoding the body of a Rekor SET payload: invalid kind value: \"\"",
            ),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("spec");
                }),
                "decoding hashedrekod spec: unexpected end of JSON input",
            ),
            (
                Box::new(|v| v["apiVersion"] = Value::Null),
                "missing Rekor SET Payload API version",
            ),
            (
                Box::new(|v| v["apiVersion"] = json!(1)),
                "decoding the body of a Rekor SET payload: json: cannot unmarshal number into Go struct field apiVersion of type string",
            ),
            (
                Box::new(|v| v["apiVersion"] = json!({})),
                "decoding the body of a Rekor SET payload: json: cannot unmarshal object into Go struct field apiVersion of type string",
            ),
            (
                Box::new(|v| v["apiVersion"] = json!("99.0.99")),
                "unsupported Rekor SET Payload hashedrekord version \"99.0.99\"",
            ),
            (
                Box::new(|v| v["kind"] = Value::Null),
                "decoding the body of a Rekor SET payload: invalid kind value: \"\"",
            ),
            (
                Box::new(|v| v["kind"] = json!(1)),
                "decoding the body of a Rekor SET payload: json: cannot unmarshal number into Go struct field kind of type string",
            ),
            (
                Box::new(|v| v["kind"] = json!("notHashedRekord")),
                "decoding the body of a Rekor SET payload: invalid kind value: \"notHashedRekord\"",
            ),
            (
                Box::new(|v| v["spec"] = Value::Null),
                "Missing \"signature\" field in hashedrekord",
            ),
            (
                Box::new(|v| v["spec"] = json!(1)),
                "decoding hashedrekod spec: json: cannot unmarshal number into Go value of type internal.RekorHashedrekordV001Schema",
            ),
            (
                Box::new(|v| {
                    v["spec"].as_object_mut().unwrap().remove("data");
                }),
                "Missing \"data\" field in hashedrekord",
            ),
            (
                Box::new(|v| {
                    v["spec"].as_object_mut().unwrap().remove("signature");
                }),
                "Missing \"signature\" field in hashedrekord",
            ),
            (
                Box::new(|v| v["spec"]["data"] = Value::Null),
                "Missing \"data\" field in hashedrekord",
            ),
            (
                Box::new(|v| v["spec"]["data"] = json!(1)),
                "decoding hashedrekod spec: json: cannot unmarshal number into Go struct field data of type object",
            ),
            (
                Box::new(|v| {
                    v["spec"]["data"].as_object_mut().unwrap().remove("hash");
                }),
                "Missing \"data.hash\" field in hashedrekord",
            ),
            (
                Box::new(|v| v["spec"]["data"]["hash"] = Value::Null),
                "Missing \"data.hash\" field in hashedrekord",
            ),
            (
                Box::new(|v| {
                    v["spec"]["data"]["hash"]
                        .as_object_mut()
                        .unwrap()
                        .remove("algorithm");
                }),
                "Missing \"data.hash.algorithm\" field in hashedrekord",
            ),
            (
                Box::new(|v| {
                    v["spec"]["data"]["hash"]
                        .as_object_mut()
                        .unwrap()
                        .remove("value");
                }),
                "Missing \"data.hash.value\" field in hashedrekord",
            ),
            (
                Box::new(|v| v["spec"]["data"]["hash"]["algorithm"] = json!(1)),
                "decoding hashedrekod spec: json: cannot unmarshal number into Go struct field data.hash.algorithm of type string",
            ),
            (
                Box::new(|v| v["spec"]["data"]["hash"]["value"] = json!("a".repeat(63))),
                "Invalid \"data.hash.value\" field in hashedrekord: encoding/hex: odd length hex string",
            ),
            (
                Box::new(|v| v["spec"]["data"]["hash"]["value"] = json!("zz")),
                "Invalid \"data.hash.value\" field in hashedrekord: encoding/hex: invalid byte: U+007A 'z'",
            ),
            (
                Box::new(|v| v["spec"]["data"]["hash"]["value"] = json!("a".repeat(64))),
                "payload in Rekor SET does not match",
            ),
            (
                Box::new(|v| v["spec"]["data"]["hash"]["algorithm"] = json!("sha512")),
                "Unexpected \"data.hash.algorithm\" value \"sha512\"",
            ),
            (
                Box::new(|v| v["spec"]["signature"] = Value::Null),
                "Missing \"signature\" field in hashedrekord",
            ),
            (
                Box::new(|v| {
                    v["spec"]["signature"]
                        .as_object_mut()
                        .unwrap()
                        .remove("publicKey");
                }),
                "Missing \"signature.publicKey\" field in hashedrekord",
            ),
            (
                Box::new(|v| v["spec"]["signature"]["content"] = json!("+")),
                "decoding hashedrekod spec: illegal base64 data at input byte 0",
            ),
            (
                Box::new(|v| v["spec"]["signature"]["publicKey"]["content"] = json!("")),
                "publicKey in Rekor SET is not in PEM format",
            ),
        ];
        for (edit, expected) in cases {
            let mut body = valid_body();
            edit(&mut body);
            assert_eq!(check(&body).unwrap_err().to_string(), expected);
        }
        let mut body = valid_body();
        body["spec"]["signature"]["content"] = json!(b64.encode("does not match"));
        assert!(matches!(
            check(&body),
            Err(RekorError::SignatureMismatch { .. })
        ));
        body = valid_body();
        body["spec"]["signature"]["publicKey"]["content"] =
            json!(b64.encode([CERT, CERT].concat()));
        assert_eq!(check(&body), Err(RekorError::EntryKeyTrailingData));
        body = valid_body();
        body["spec"]["signature"]["publicKey"]["content"] = json!(b64.encode(other_key().to_pem()));
        assert_eq!(check(&body), Err(RekorError::KeyMismatch));
        // Extra members are ignored in the body, as by containers/image.
        body = valid_body();
        body["unexpected"] = json!(1);
        assert!(check(&body).is_ok());

        // The payload is parsed strictly, after its signature is checked.
        let strict = |p: Value| {
            verify_rekor_set(&keys, &set_for(&signer, &p), CERT, SIG, PAYLOAD)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            strict(json!({})),
            "parsing Rekor SET payload: Key \"body\" missing in a JSON object"
        );
        let mut p = payload_with(&valid_body());
        p["extra"] = json!(1);
        assert_eq!(
            strict(p),
            "parsing Rekor SET payload: Unknown key \"extra\""
        );
        let mut p = payload_with(&valid_body());
        p["integratedTime"] = json!(1.5);
        assert_eq!(
            strict(p),
            "parsing Rekor SET payload: json: cannot unmarshal number 1.5 into Go value of type int64"
        );
        // Duplicate members have no canonical form.
        let dup =
            br#"{"SignedEntryTimestamp":"","Payload":{"logIndex":1,"body":"abc","body":"ABC"}}"#;
        assert!(
            verify_rekor_set(&keys, dup, CERT, SIG, PAYLOAD)
                .unwrap_err()
                .to_string()
                .contains("Duplicate key")
        );
        // The SET's own members are exact.
        assert_eq!(
            verify_rekor_set(&keys, br#"{"Payload":{}}"#, CERT, SIG, PAYLOAD)
                .unwrap_err()
                .to_string(),
            "Key \"SignedEntryTimestamp\" missing in a JSON object"
        );
    }
}
