//! Sigstore (cosign) signatures: the stored form, the payload, keys, and verification. Pure:
//! bytes in, values out; no IO, no network, no policy.
//!
//! A cosign signature is a payload (JSON naming the manifest digest and the reference, see
//! [`payload`]) plus annotations, the one that matters here being
//! [`SIGNATURE_ANNOTATION`]: base64 of the signature over the payload bytes. In registries it
//! is a layer of the `sha256-HEX.sig` attachment manifest; in `dir:`, containers-storage and
//! lookaside files containers/image stores it as `0x00 "sigstore-json" '\n'` followed by
//! `{"mimeType":...,"payload":BASE64,"annotations":{...}}` ([`SigstoreSignature`]).
//!
//! - [`payload`]: the signed JSON; [`keys`]: public keys and signature checks;
//!   [`private_key`]: cosign's encrypted key files and signing; [`verify()`]: a signature
//!   against keys; [`rekor`]: Rekor SETs; [`x509`] and [`fulcio`]: keyless (Fulcio and PKI)
//!   certificates. Everything is pure Rust (RustCrypto), so a static build verifies on any
//!   architecture with no OpenSSL and no cosign binary.
//!
//! Behaviour and error texts follow containers/image (internal/signature/sigstore.go,
//! signature/internal/sigstore_payload.go, signature/policy_eval_sigstore.go,
//! signature/sigstore/) so that messages people search for are the same.

pub mod bundle;
pub mod describe;
pub mod fulcio;
pub mod keys;
pub mod payload;
pub mod private_key;
pub mod rekor;
pub mod tlog;
pub mod verify;
pub mod x509;

mod go_compat;
mod jcs;
mod pem;

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

pub use keys::{KeyAlgorithm, KeyError, PublicKey, SignatureMismatch};
pub use payload::{PayloadError, SigstorePayload};
pub use private_key::{PrivateKey, PrivateKeyError, PrivateKeyLabel};
pub use verify::{VerifiedSigstore, verify, verify_fulcio, verify_pki, verify_with_rekor};

/// The annotation holding the base64 signature over the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The annotation holding the PEM signing certificate (keyless, Fulcio or PKI).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The annotation holding the PEM intermediate certificates.
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// The annotation holding the Rekor SET (a JSON bundle).
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// The MIME type (layer media type) of a cosign signature; other attachments are not signatures.
pub const SIGNATURE_MIME_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// What a stored sigstore signature blob starts with.
pub const BLOB_PREFIX: &[u8] = b"\x00sigstore-json\n";

/// Why a sigstore signature could not be read or was not accepted. Where containers/image has a
/// message, the text is its.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SigstoreError {
    /// The stored JSON could not be read.
    #[error("invalid sigstore-json signature: {0}")]
    Json(String),
    /// A blob without the `0x00 "sigstore-json" '\n'` prefix.
    #[error("not a sigstore-json signature blob")]
    NotSigstoreBlob,
    /// An attachment of another MIME type (an attestation, an SBOM): containers/image skips
    /// these and counts them as "sigstore non-signature attachments".
    #[error(
        "the sigstore attachment has MIME type {0:?}, not {SIGNATURE_MIME_TYPE}: not a signature"
    )]
    NotASignature(String),
    /// A required annotation is missing.
    #[error("missing {0} annotation")]
    MissingAnnotation(&'static str),
    /// The signature annotation is not base64.
    #[error("base64 decoding: {0}")]
    Base64(String),
    /// [`verify()`] was given no key.
    #[error("Need at least one public key to verify the sigstore payload, but got 0")]
    NoKeys,
    /// No key verified the signature; one entry per key, in order.
    #[error("cryptographic signature verification failed: {}", join_mismatches(.0))]
    Mismatch(Vec<KeyMismatch>),
    /// The signature verified but its payload is invalid.
    #[error("invalid signature payload: {0}")]
    Payload(#[from] PayloadError),
    /// Key and Rekor: the SET logs none of the trusted keys; one reason per key.
    #[error("No public key verified against the RekorSET: {}", .0.join(", "))]
    NoKeyInRekorSet(Vec<String>),
    /// The Rekor SET was not accepted.
    #[error("{0}")]
    Rekor(#[from] rekor::RekorError),
    /// The keyless (Fulcio or PKI) certificate was not accepted.
    #[error("{0}")]
    Certificate(#[from] fulcio::CertificateVerifyError),
}

/// Why one key did not verify a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMismatch {
    /// The key's position in the list given to [`verify()`] (0-based).
    pub key_index: usize,
    /// The key's identifier ([`PublicKey::id`]).
    pub key_id: String,
    /// What failed.
    pub reason: SignatureMismatch,
}

impl fmt::Display for KeyMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (key {})", self.reason, self.key_id)
    }
}

fn join_mismatches(m: &[KeyMismatch]) -> String {
    m.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A sigstore signature as stored: MIME type, payload and annotations, all untrusted until
/// [`verify()`] says otherwise. Unknown annotations are kept so that a copy loses nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SigstoreSignature {
    /// The MIME type (the attachment layer's media type).
    pub mime_type: String,
    /// The payload bytes, exactly as signed.
    pub payload: Vec<u8>,
    /// All annotations.
    pub annotations: BTreeMap<String, String>,
}

impl SigstoreSignature {
    /// Reads the JSON that follows the blob prefix (what [`super::sniff::sniff`] returns for
    /// [`super::sniff::Format::SigstoreJson`]), as containers/image's `json.Unmarshal` does:
    /// member names matched case-insensitively, unknown members ignored, `null` for an absent
    /// value, a later duplicate member winning (annotations merged).
    pub fn from_json(json: &[u8]) -> Result<SigstoreSignature, SigstoreError> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let sig = de
            .deserialize_any(GoRepr)
            .map_err(|e| SigstoreError::Json(e.to_string()))?;
        de.end().map_err(|e| SigstoreError::Json(e.to_string()))?;
        Ok(sig)
    }

    /// Reads a whole stored blob, prefix included.
    pub fn from_blob(blob: &[u8]) -> Result<SigstoreSignature, SigstoreError> {
        let json = blob
            .strip_prefix(BLOB_PREFIX)
            .ok_or(SigstoreError::NotSigstoreBlob)?;
        Self::from_json(json)
    }

    /// The JSON containers/image writes after the prefix: `mimeType`, `payload` (standard base64),
    /// `annotations` (sorted), no spaces, strings escaped as Go's `json.Marshal` escapes them.
    /// An empty payload is written as `""` and no annotations as `{}` (containers/image writes
    /// `null` for absent ones, which ferry does not distinguish from empty).
    pub fn to_json(&self) -> Vec<u8> {
        use base64::Engine;
        let mut out = String::from("{\"mimeType\":");
        go_compat::push_json_string(&mut out, &self.mime_type);
        out.push_str(",\"payload\":\"");
        out.push_str(&base64::engine::general_purpose::STANDARD.encode(&self.payload));
        out.push_str("\",\"annotations\":{");
        for (i, (k, v)) in self.annotations.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            go_compat::push_json_string(&mut out, k);
            out.push(':');
            go_compat::push_json_string(&mut out, v);
        }
        out.push_str("}}");
        out.into_bytes()
    }

    /// The whole stored blob: [`BLOB_PREFIX`] and [`SigstoreSignature::to_json`],
    /// byte-identical to what containers/image writes for the same signature.
    pub fn to_blob(&self) -> Vec<u8> {
        let mut out = BLOB_PREFIX.to_vec();
        out.extend_from_slice(&self.to_json());
        out
    }

    /// The base64 signature annotation, if present.
    pub fn signature_base64(&self) -> Option<&str> {
        self.annotations
            .get(SIGNATURE_ANNOTATION)
            .map(String::as_str)
    }
}

/// Go's `encoding/json` decoding into containers/image's `sigstoreJSONRepresentation`.
struct GoRepr;

const GO_TYPE: &str = "signature.sigstoreJSONRepresentation";

fn type_error<E: de::Error>(kind: &str, field: &str) -> E {
    E::custom(format!(
        "json: cannot unmarshal {kind} into Go struct field sigstoreJSONRepresentation.{field} of type string"
    ))
}

fn top_error<E: de::Error>(kind: &str) -> E {
    E::custom(format!(
        "json: cannot unmarshal {kind} into Go value of type {GO_TYPE}"
    ))
}

impl<'de> Visitor<'de> for GoRepr {
    type Value = SigstoreSignature;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_unit<E: de::Error>(self) -> Result<SigstoreSignature, E> {
        Ok(SigstoreSignature::default())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<SigstoreSignature, E> {
        Err(top_error("bool"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<SigstoreSignature, E> {
        Err(top_error("number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<SigstoreSignature, E> {
        Err(top_error("number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<SigstoreSignature, E> {
        Err(top_error("number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<SigstoreSignature, E> {
        Err(top_error("string"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<SigstoreSignature, A::Error> {
        Err(top_error("array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SigstoreSignature, A::Error> {
        let mut sig = SigstoreSignature::default();
        while let Some(key) = map.next_key::<String>()? {
            if key.eq_ignore_ascii_case("mimeType") {
                match map.next_value::<Value>()? {
                    Value::String(s) => sig.mime_type = s,
                    Value::Null => {}
                    other => return Err(type_error(go_compat::json_kind(&other), "mimeType")),
                }
            } else if key.eq_ignore_ascii_case("payload") {
                match map.next_value::<Value>()? {
                    Value::String(s) => {
                        sig.payload =
                            go_compat::base64_decode(s.as_bytes()).map_err(de::Error::custom)?;
                    }
                    Value::Null => sig.payload.clear(),
                    other => {
                        return Err(de::Error::custom(format!(
                            "json: cannot unmarshal {} into Go struct field sigstoreJSONRepresentation.payload of type []uint8",
                            go_compat::json_kind(&other)
                        )));
                    }
                }
            } else if key.eq_ignore_ascii_case("annotations") {
                match map.next_value::<Value>()? {
                    Value::Object(members) => {
                        for (k, v) in members {
                            let v = match v {
                                Value::String(s) => s,
                                Value::Null => String::new(),
                                other => {
                                    return Err(type_error(
                                        go_compat::json_kind(&other),
                                        "annotations",
                                    ));
                                }
                            };
                            sig.annotations.insert(k, v);
                        }
                    }
                    Value::Null => sig.annotations.clear(),
                    other => {
                        return Err(de::Error::custom(format!(
                            "json: cannot unmarshal {} into Go struct field sigstoreJSONRepresentation.annotations of type map[string]string",
                            go_compat::json_kind(&other)
                        )));
                    }
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &[u8] =
        include_bytes!("../../../testdata/sigstore/golden/dir-img-cosign-valid.signature-1");
    const UNKNOWN_KEY: &[u8] =
        include_bytes!("../../../testdata/sigstore/golden/unknown-cosign-key.signature");

    #[test]
    fn reads_and_rewrites_containers_image_blobs_byte_for_byte() {
        let sig = SigstoreSignature::from_blob(VALID).unwrap();
        assert_eq!(sig.mime_type, SIGNATURE_MIME_TYPE);
        assert!(sig.payload.starts_with(b"{\"critical\":"));
        assert_eq!(sig.annotations.len(), 1);
        assert!(sig.signature_base64().unwrap().starts_with("MEYCIQDm"));
        assert_eq!(sig.to_blob(), VALID);
        // sniff strips the prefix; from_json takes what is left.
        let (format, json) = crate::signature::sniff::sniff(VALID).unwrap();
        assert_eq!(format, crate::signature::sniff::Format::SigstoreJson);
        assert_eq!(SigstoreSignature::from_json(json).unwrap(), sig);
        // A trailing newline, as in this fixture, is fine.
        assert!(UNKNOWN_KEY.ends_with(b"}\n"));
        assert!(SigstoreSignature::from_blob(UNKNOWN_KEY).is_ok());
        assert_eq!(
            SigstoreSignature::from_blob(b"{}"),
            Err(SigstoreError::NotSigstoreBlob)
        );
    }

    #[test]
    fn writes_annotations_as_go_does() {
        let sig = SigstoreSignature {
            mime_type: SIGNATURE_MIME_TYPE.into(),
            payload: b"{}".to_vec(),
            annotations: [
                ("z".to_string(), "<bundle & \"quote\">".to_string()),
                (
                    CERTIFICATE_ANNOTATION.to_string(),
                    "-----BEGIN CERTIFICATE-----\nAA==\n".to_string(),
                ),
            ]
            .into(),
        };
        assert_eq!(
            String::from_utf8(sig.to_json()).unwrap(),
            r#"{"mimeType":"application/vnd.dev.cosign.simplesigning.v1+json","payload":"e30=","annotations":{"dev.sigstore.cosign/certificate":"-----BEGIN CERTIFICATE-----\nAA==\n","z":"\u003cbundle \u0026 \"quote\"\u003e"}}"#
        );
        assert_eq!(SigstoreSignature::from_json(&sig.to_json()).unwrap(), sig);
        let empty = SigstoreSignature::default();
        assert_eq!(
            empty.to_json(),
            br#"{"mimeType":"","payload":"","annotations":{}}"#
        );
    }

    #[test]
    fn reads_json_as_leniently_as_go() {
        // Case-insensitive names, unknown members ignored, null as absent.
        let s = SigstoreSignature::from_json(
            br#"{"MIMETYPE":"m","Payload":"e30=","extra":[1,{"a":2}],"annotations":{"a":"1","b":null}}"#,
        )
        .unwrap();
        assert_eq!(s.mime_type, "m");
        assert_eq!(s.payload, b"{}");
        assert_eq!(s.annotations["a"], "1");
        assert_eq!(s.annotations["b"], "");
        // A later member wins; annotation objects are merged.
        let s = SigstoreSignature::from_json(
            br#"{"mimeType":"a","mimeType":"b","annotations":{"x":"1"},"Annotations":{"y":"2"}}"#,
        )
        .unwrap();
        assert_eq!(s.mime_type, "b");
        assert_eq!(s.annotations.len(), 2);
        assert_eq!(
            SigstoreSignature::from_json(b"null").unwrap(),
            SigstoreSignature::default()
        );
        let e = |j: &[u8]| SigstoreSignature::from_json(j).unwrap_err().to_string();
        assert!(e(br#"{"mimeType":1}"#).contains(
            "json: cannot unmarshal number into Go struct field sigstoreJSONRepresentation.mimeType of type string"
        ));
        assert!(e(br#"{"payload":"e30"}"#).contains("illegal base64 data at input byte 0"));
        assert!(e(br#"{"annotations":{"a":1}}"#).contains("annotations of type string"));
        assert!(e(b"[]").contains("cannot unmarshal array into Go value"));
        assert!(e(b"{} x").starts_with("invalid sigstore-json signature: "));
        assert!(e(b"").starts_with("invalid sigstore-json signature: "));
    }
}
