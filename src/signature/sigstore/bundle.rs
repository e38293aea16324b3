//! Sigstore bundles: what cosign 3 attaches to an image as an OCI 1.1 referrer (and GitHub's
//! attestations, and `cosign sign --new-bundle-format`): one JSON document holding the
//! signature, the material to verify it (a public-key hint or the signing certificate) and the
//! transparency-log evidence (the entry, its SET and its inclusion proof).
//!
//! The signed content is either a DSSE envelope (an in-toto statement whose subject is the
//! image's manifest digest; cosign 3 signs images with the predicate type
//! [`COSIGN_SIGN_PREDICATE`], any other predicate is an attestation) or a message signature
//! over a digest. Verification is offline, with the trust a `sigstoreSigned` requirement
//! already names (keys, Fulcio, PKI, Rekor keys): see [`verify_bundle`]. Pure: bytes in,
//! values out.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::fulcio::{CertificateTrust, CertificateVerifyError, FulcioTrustRoot, PkiTrustRoot};
use super::keys::PublicKey;
use super::pem;
use super::tlog::{InclusionProof, TlogError, verify_set};
use super::x509::Certificate;
use super::{KeyMismatch, go_compat};

/// The media type of a v0.3 bundle (cosign 3's referrer artifact type and layer type).
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The older spellings of bundle media types (v0.1 to v0.3), also accepted.
const OLDER_MEDIA_TYPES: [&str; 3] = [
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
];
/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The predicate type cosign 3 uses when it signs an image: the statement is a signature.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
const STATEMENT_TYPES: [&str; 2] = [
    "https://in-toto.io/Statement/v1",
    "https://in-toto.io/Statement/v0.1",
];

/// Whether `media_type` names a sigstore bundle.
pub fn is_bundle_media_type(media_type: &str) -> bool {
    media_type == BUNDLE_MEDIA_TYPE || OLDER_MEDIA_TYPES.contains(&media_type)
}

/// Why a bundle could not be read, or was not accepted. Each says which check failed and,
/// where there is one, what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not a bundle ferry can read.
    #[error("invalid sigstore bundle: {0}")]
    Malformed(String),
    /// The policy requires Rekor, and the bundle has no log entry.
    #[error(
        "the bundle has no transparency log entry, and the policy requires one (it names Rekor public keys)"
    )]
    NoTlogEntry,
    /// The log entry has no SET.
    #[error(
        "the bundle's log entry has no inclusion promise (Rekor SET), which the policy's Rekor keys must have signed (entries of Rekor v2, which have none, are not supported)"
    )]
    MissingSet,
    /// The log evidence was not accepted.
    #[error("{0}")]
    Tlog(#[from] TlogError),
    /// A kind of log entry ferry does not compare with bundles.
    #[error(
        "the log entry is of kind {kind} {version}; ferry checks hashedrekord 0.0.1 and dsse 0.0.1 entries"
    )]
    EntryKind {
        /// The entry's kind.
        kind: String,
        /// Its version.
        version: String,
    },
    /// The log entry records something else than this bundle's signature.
    #[error("the log entry does not record this bundle: {0}")]
    EntryMismatch(String),
    /// The log entry records a key the policy does not trust.
    #[error("the log entry records public key {0}, which is none of the policy's keys")]
    EntryKeyNotTrusted(String),
    /// The policy trusts certificates; the bundle has none.
    #[error(
        "the bundle carries no certificate (only a public key hint), and the policy trusts certificates (fulcio or pki)"
    )]
    NoCertificate,
    /// The certificate was outside its validity when the log integrated the signature.
    #[error(
        "the signing certificate was not valid when the log integrated the signature at {at} (it is valid from {not_before} to {not_after})"
    )]
    NotValidAtSigning {
        /// The integrated time.
        at: String,
        /// The certificate's notBefore.
        not_before: String,
        /// The certificate's notAfter.
        not_after: String,
    },
    /// The certificate was not accepted by the trust root.
    #[error("{0}")]
    Certificate(#[from] CertificateVerifyError),
    /// No trusted key verified the signature.
    #[error("cryptographic signature verification failed: {}", join(.0))]
    Mismatch(Vec<KeyMismatch>),
    /// A DSSE envelope must have exactly one signature.
    #[error("the DSSE envelope has {0} signatures; a sigstore bundle has exactly one")]
    DsseSignatureCount(usize),
    /// The DSSE payload is not an in-toto statement.
    #[error("the DSSE payload type is {0:?}, not {IN_TOTO_PAYLOAD_TYPE}")]
    PayloadType(String),
    /// The statement is malformed.
    #[error("invalid in-toto statement: {0}")]
    Statement(String),
    /// The statement is about other artifacts.
    #[error(
        "the statement's subject digests ({got}) do not include the image's manifest digest {wanted}"
    )]
    SubjectMismatch {
        /// The manifest's digest.
        wanted: String,
        /// The subjects' digests.
        got: String,
    },
    /// The message signature is over another digest.
    #[error("the bundle signs digest {got}, not the image's manifest digest {wanted}")]
    MessageDigestMismatch {
        /// The manifest's digest.
        wanted: String,
        /// The signed digest.
        got: String,
    },
    /// A message digest algorithm other than SHA-256.
    #[error("the message digest algorithm is {0}; image digests are SHA2_256")]
    DigestAlgorithm(String),
}

fn join(m: &[KeyMismatch]) -> String {
    m.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How the bundle says it may be verified.
#[derive(Debug, Clone)]
pub enum Material {
    /// A public key known to the verifier, named by an optional hint.
    PublicKey {
        /// The hint, if any.
        hint: Option<String>,
    },
    /// A signing certificate and the certificates above it that the bundle carries (v0.1 and
    /// v0.2 bundles may carry a chain; v0.3 carries the leaf only).
    Certificate {
        /// The signing certificate.
        leaf: Box<Certificate>,
        /// The others, in order.
        chain: Vec<Certificate>,
    },
}

/// One transparency-log entry of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogEntry {
    /// Its index in the log.
    pub log_index: i64,
    /// The log's ID (SHA-256 of its key's SPKI).
    pub log_id: Vec<u8>,
    /// The entry's kind (`hashedrekord`, `dsse`).
    pub kind: String,
    /// The kind's version.
    pub version: String,
    /// When the log integrated it (Unix seconds).
    pub integrated_time: i64,
    /// The SET, if any.
    pub set: Option<Vec<u8>>,
    /// The inclusion proof, if any.
    pub proof: Option<InclusionProof>,
    /// The canonicalized entry the log recorded.
    pub body: Vec<u8>,
}

/// What the bundle signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A signature over a message, of which the bundle records the digest.
    MessageSignature {
        /// The digest's algorithm (`SHA2_256`).
        algorithm: String,
        /// The digest.
        digest: Vec<u8>,
        /// The signature.
        signature: Vec<u8>,
    },
    /// A DSSE envelope.
    Dsse {
        /// Its payload type.
        payload_type: String,
        /// The payload.
        payload: Vec<u8>,
        /// Its signatures.
        signatures: Vec<Vec<u8>>,
    },
}

/// A parsed bundle, nothing in it trusted yet.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Its media type.
    pub media_type: String,
    /// The verification material.
    pub material: Material,
    /// The transparency-log entries.
    pub tlog: Vec<TlogEntry>,
    /// What it signs.
    pub content: Content,
}

/// An in-toto statement's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Its name, if the statement gives one.
    pub name: Option<String>,
    /// Algorithm → hex digest.
    pub digests: BTreeMap<String, String>,
}

/// An in-toto statement (the parts ferry uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The artifacts it is about.
    pub subjects: Vec<Subject>,
    /// What kind of claim it makes.
    pub predicate_type: String,
}

/// What a bundle is to a copy: a signature of the image, or an attestation about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleKind {
    /// A message signature, or a statement with cosign's signing predicate.
    Signature,
    /// A statement with another predicate (provenance, SBOM, …).
    Attestation(String),
}

impl fmt::Display for BundleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BundleKind::Signature => f.write_str("signature"),
            BundleKind::Attestation(p) => write!(f, "attestation ({p})"),
        }
    }
}

fn malformed(m: impl Into<String>) -> BundleError {
    BundleError::Malformed(m.into())
}

/// A member by its protobuf JSON name, or its original (snake_case) name, which protobuf's
/// JSON readers also accept.
fn member<'a>(v: &'a Value, json_name: &str, proto_name: &str) -> Option<&'a Value> {
    v.get(json_name)
        .or_else(|| v.get(proto_name))
        .filter(|v| !v.is_null())
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Value, BundleError> {
    if v.is_object() {
        Ok(v)
    } else {
        Err(malformed(format!(
            "{what} is {}, not an object",
            go_compat::json_kind(v)
        )))
    }
}

fn string<'a>(v: &'a Value, what: &str) -> Result<&'a str, BundleError> {
    v.as_str().ok_or_else(|| {
        malformed(format!(
            "{what} is {}, not a string",
            go_compat::json_kind(v)
        ))
    })
}

/// protobuf JSON `bytes`: standard or URL-safe base64, padded or not.
fn bytes(v: &Value, what: &str) -> Result<Vec<u8>, BundleError> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let s = string(v, what)?;
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
        .ok_or_else(|| malformed(format!("{what} is not base64")))
}

/// protobuf JSON `int64`: a string of digits, or a number.
fn int64(v: &Value, what: &str) -> Result<i64, BundleError> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
    .ok_or_else(|| malformed(format!("{what} is not an integer")))
}

fn required<'a>(v: &'a Value, json: &str, proto: &str) -> Result<&'a Value, BundleError> {
    member(v, json, proto).ok_or_else(|| malformed(format!("{json} is missing")))
}

fn certificate(v: &Value, what: &str) -> Result<Certificate, BundleError> {
    let der = bytes(required(v, "rawBytes", "raw_bytes")?, what)?;
    Certificate::from_der(&der).map_err(|e| malformed(format!("{what}: {e}")))
}

impl Bundle {
    /// Reads a bundle's JSON. Unknown members are ignored; what ferry uses must be well-formed.
    pub fn from_json(json: &[u8]) -> Result<Bundle, BundleError> {
        let v: Value = serde_json::from_slice(json).map_err(|e| malformed(e.to_string()))?;
        let v = object(&v, "the bundle")?;
        let media_type = string(required(v, "mediaType", "media_type")?, "mediaType")?;
        if !is_bundle_media_type(media_type) {
            return Err(malformed(format!(
                "media type {media_type:?} is not a sigstore bundle's ({BUNDLE_MEDIA_TYPE})"
            )));
        }
        let vm = object(
            required(v, "verificationMaterial", "verification_material")?,
            "verificationMaterial",
        )?;
        let material = if let Some(c) = member(vm, "certificate", "certificate") {
            Material::Certificate {
                leaf: Box::new(certificate(object(c, "certificate")?, "certificate")?),
                chain: Vec::new(),
            }
        } else if let Some(c) = member(vm, "x509CertificateChain", "x509_certificate_chain") {
            let certs = required(
                object(c, "x509CertificateChain")?,
                "certificates",
                "certificates",
            )?
            .as_array()
            .ok_or_else(|| malformed("x509CertificateChain.certificates is not an array"))?
            .iter()
            .map(|c| certificate(c, "a chain certificate"))
            .collect::<Result<Vec<_>, _>>()?;
            let mut certs = certs.into_iter();
            let leaf = certs
                .next()
                .ok_or_else(|| malformed("x509CertificateChain holds no certificate"))?;
            Material::Certificate {
                leaf: Box::new(leaf),
                chain: certs.collect(),
            }
        } else if let Some(k) = member(vm, "publicKey", "public_key") {
            Material::PublicKey {
                hint: member(object(k, "publicKey")?, "hint", "hint")
                    .map(|h| string(h, "publicKey.hint").map(str::to_string))
                    .transpose()?,
            }
        } else {
            return Err(malformed(
                "verificationMaterial has no certificate, certificate chain or public key",
            ));
        };
        let tlog = match member(vm, "tlogEntries", "tlog_entries") {
            None => Vec::new(),
            Some(list) => list
                .as_array()
                .ok_or_else(|| malformed("tlogEntries is not an array"))?
                .iter()
                .map(tlog_entry)
                .collect::<Result<_, _>>()?,
        };
        let content = if let Some(m) = member(v, "messageSignature", "message_signature") {
            let m = object(m, "messageSignature")?;
            let d = object(
                required(m, "messageDigest", "message_digest")?,
                "messageDigest",
            )?;
            Content::MessageSignature {
                algorithm: string(required(d, "algorithm", "algorithm")?, "algorithm")?.to_string(),
                digest: bytes(required(d, "digest", "digest")?, "messageDigest.digest")?,
                signature: bytes(
                    required(m, "signature", "signature")?,
                    "messageSignature.signature",
                )?,
            }
        } else if let Some(e) = member(v, "dsseEnvelope", "dsse_envelope") {
            let e = object(e, "dsseEnvelope")?;
            let signatures = required(e, "signatures", "signatures")?
                .as_array()
                .ok_or_else(|| malformed("dsseEnvelope.signatures is not an array"))?
                .iter()
                .map(|s| bytes(required(s, "sig", "sig")?, "dsseEnvelope.signatures[].sig"))
                .collect::<Result<_, _>>()?;
            Content::Dsse {
                payload_type: string(
                    required(e, "payloadType", "payload_type")?,
                    "dsseEnvelope.payloadType",
                )?
                .to_string(),
                payload: bytes(required(e, "payload", "payload")?, "dsseEnvelope.payload")?,
                signatures,
            }
        } else {
            return Err(malformed(
                "the bundle has neither a message signature nor a DSSE envelope",
            ));
        };
        Ok(Bundle {
            media_type: media_type.to_string(),
            material,
            tlog,
            content,
        })
    }

    /// The in-toto statement of a DSSE bundle (unverified), or `None` for a message signature.
    pub fn statement(&self) -> Option<Result<Statement, BundleError>> {
        match &self.content {
            Content::MessageSignature { .. } => None,
            Content::Dsse {
                payload_type,
                payload,
                ..
            } => Some(if payload_type == IN_TOTO_PAYLOAD_TYPE {
                Statement::from_json(payload)
            } else {
                Err(BundleError::PayloadType(payload_type.clone()))
            }),
        }
    }

    /// Whether it is a signature or an attestation, from its (unverified) content. A DSSE
    /// bundle whose statement cannot be read counts as a signature, so that it is judged (and
    /// rejected with the reason) rather than skipped.
    pub fn kind(&self) -> BundleKind {
        match self.statement() {
            Some(Ok(s)) if s.predicate_type != COSIGN_SIGN_PREDICATE => {
                BundleKind::Attestation(s.predicate_type)
            }
            _ => BundleKind::Signature,
        }
    }

    /// The signing certificate, if the bundle carries one.
    pub fn certificate(&self) -> Option<&Certificate> {
        match &self.material {
            Material::Certificate { leaf, .. } => Some(leaf),
            Material::PublicKey { .. } => None,
        }
    }

    /// The signature bytes (of the single DSSE signature, or the message signature).
    fn signature(&self) -> Result<&[u8], BundleError> {
        match &self.content {
            Content::MessageSignature { signature, .. } => Ok(signature),
            Content::Dsse { signatures, .. } => match signatures.as_slice() {
                [one] => Ok(one),
                other => Err(BundleError::DsseSignatureCount(other.len())),
            },
        }
    }
}

fn tlog_entry(e: &Value) -> Result<TlogEntry, BundleError> {
    let e = object(e, "a tlogEntries item")?;
    let kv = object(required(e, "kindVersion", "kind_version")?, "kindVersion")?;
    let proof = match member(e, "inclusionProof", "inclusion_proof") {
        None => None,
        Some(p) => {
            let p = object(p, "inclusionProof")?;
            let checkpoint = object(required(p, "checkpoint", "checkpoint")?, "checkpoint")?;
            Some(InclusionProof {
                log_index: int64(
                    required(p, "logIndex", "log_index")?,
                    "inclusionProof.logIndex",
                )?,
                root_hash: bytes(required(p, "rootHash", "root_hash")?, "rootHash")?,
                tree_size: int64(required(p, "treeSize", "tree_size")?, "treeSize")?,
                hashes: member(p, "hashes", "hashes")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .map(|h| bytes(h, "an inclusion proof hash"))
                            .collect()
                    })
                    .transpose()?
                    .unwrap_or_default(),
                checkpoint: string(
                    required(checkpoint, "envelope", "envelope")?,
                    "checkpoint.envelope",
                )?
                .to_string(),
            })
        }
    };
    Ok(TlogEntry {
        log_index: int64(required(e, "logIndex", "log_index")?, "logIndex")?,
        log_id: bytes(
            required(
                object(required(e, "logId", "log_id")?, "logId")?,
                "keyId",
                "key_id",
            )?,
            "logId.keyId",
        )?,
        kind: string(required(kv, "kind", "kind")?, "kindVersion.kind")?.to_string(),
        version: string(required(kv, "version", "version")?, "kindVersion.version")?.to_string(),
        integrated_time: member(e, "integratedTime", "integrated_time")
            .map(|t| int64(t, "integratedTime"))
            .transpose()?
            .unwrap_or(0),
        set: member(e, "inclusionPromise", "inclusion_promise")
            .map(|p| {
                bytes(
                    required(
                        object(p, "inclusionPromise")?,
                        "signedEntryTimestamp",
                        "signed_entry_timestamp",
                    )?,
                    "signedEntryTimestamp",
                )
            })
            .transpose()?,
        proof,
        body: bytes(
            required(e, "canonicalizedBody", "canonicalized_body")?,
            "canonicalizedBody",
        )?,
    })
}

impl Statement {
    /// Reads an in-toto statement (v1 or v0.1).
    pub fn from_json(json: &[u8]) -> Result<Statement, BundleError> {
        let bad = |m: String| BundleError::Statement(m);
        let v: Value = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
        let t = v
            .get("_type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("_type is missing".into()))?;
        if !STATEMENT_TYPES.contains(&t) {
            return Err(bad(format!("_type {t:?} is not an in-toto statement's")));
        }
        let predicate_type = v
            .get("predicateType")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("predicateType is missing".into()))?
            .to_string();
        let subjects = v
            .get("subject")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("subject is missing or not an array".into()))?
            .iter()
            .map(|s| {
                let digests = s
                    .get("digest")
                    .and_then(Value::as_object)
                    .ok_or_else(|| bad("a subject has no digest".into()))?
                    .iter()
                    .map(|(k, v)| {
                        v.as_str()
                            .map(|h| (k.clone(), h.to_ascii_lowercase()))
                            .ok_or_else(|| bad(format!("subject digest {k} is not a string")))
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Subject {
                    name: s.get("name").and_then(Value::as_str).map(str::to_string),
                    digests,
                })
            })
            .collect::<Result<Vec<_>, BundleError>>()?;
        if subjects.is_empty() {
            return Err(bad("the subject list is empty".into()));
        }
        Ok(Statement {
            subjects,
            predicate_type,
        })
    }

    /// The subject with the given SHA-256 (hex), if the statement is about it.
    pub fn subject_for(&self, sha256_hex: &str) -> Option<&Subject> {
        self.subjects
            .iter()
            .find(|s| s.digests.get("sha256").is_some_and(|d| d == sha256_hex))
    }
}

/// DSSE's pre-authentication encoding: what a DSSE signature signs.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Whom a bundle must have been signed by: a `sigstoreSigned` requirement's trust.
#[derive(Debug, Clone, Copy)]
pub enum BundleSigners<'a> {
    /// Public keys.
    Keys(&'a [PublicKey]),
    /// Fulcio certificates (a Rekor entry is then required).
    Fulcio(&'a FulcioTrustRoot),
    /// Certificates from a private PKI.
    Pki(&'a PkiTrustRoot),
}

/// What the log says of a verified bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The entry's index.
    pub log_index: i64,
    /// When it was integrated (Unix seconds).
    pub integrated_time: i64,
    /// Whether an inclusion proof was checked too.
    pub inclusion_proven: bool,
}

/// Proof that a bundle was signed by a trusted signer over the image's manifest. Only
/// [`verify_bundle`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBundle {
    /// The ID of the key that verified it.
    pub key_id: String,
    /// The verified statement (DSSE bundles).
    pub statement: Option<Statement>,
    /// The log entry, when the policy required one.
    pub log: Option<LogRecord>,
    sealed: Sealed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Sealed;

/// The DER of the key or certificate a log entry records (base64 of a PEM block).
fn logged_verifier(b64_pem: &Value, what: &str) -> Result<Vec<u8>, BundleError> {
    let pem_bytes = bytes(b64_pem, what).map_err(|e| BundleError::EntryMismatch(e.to_string()))?;
    let (block, rest) = pem::decode(&pem_bytes)
        .ok_or_else(|| BundleError::EntryMismatch(format!("{what} is not PEM")))?;
    if !rest.iter().all(u8::is_ascii_whitespace) {
        return Err(BundleError::EntryMismatch(format!(
            "{what} has data after its PEM block"
        )));
    }
    Ok(block.der)
}

fn entry_field<'a>(v: &'a Value, path: &str) -> Result<&'a Value, BundleError> {
    v.pointer(path)
        .ok_or_else(|| BundleError::EntryMismatch(format!("{path} is missing from the entry")))
}

/// Checks that `entry` records this bundle's signature (and the signed content's hash), and
/// returns the DER of the key or certificate it records.
fn check_entry_body(bundle: &Bundle, entry: &TlogEntry) -> Result<Vec<u8>, BundleError> {
    let body: Value = serde_json::from_slice(&entry.body)
        .map_err(|e| BundleError::EntryMismatch(format!("the entry is not JSON: {e}")))?;
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or_default();
    let version = body
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind != entry.kind || version != entry.version {
        return Err(BundleError::EntryMismatch(format!(
            "the entry is {kind} {version}, the bundle says {} {}",
            entry.kind, entry.version
        )));
    }
    let signature = bundle.signature()?;
    let b64 = base64::engine::general_purpose::STANDARD;
    match (&bundle.content, kind, version) {
        (Content::MessageSignature { digest, .. }, "hashedrekord", "0.0.1") => {
            let alg = entry_field(&body, "/spec/data/hash/algorithm")?;
            let value = entry_field(&body, "/spec/data/hash/value")?;
            if alg.as_str() != Some("sha256") || value.as_str() != Some(&hex::encode(digest)) {
                return Err(BundleError::EntryMismatch(format!(
                    "it records digest {}:{}, the bundle signs sha256:{}",
                    alg.as_str().unwrap_or("?"),
                    value.as_str().unwrap_or("?"),
                    hex::encode(digest)
                )));
            }
            let logged = entry_field(&body, "/spec/signature/content")?;
            if logged.as_str() != Some(&b64.encode(signature)) {
                return Err(BundleError::EntryMismatch(
                    "it records another signature".into(),
                ));
            }
            logged_verifier(
                entry_field(&body, "/spec/signature/publicKey/content")?,
                "the entry's public key",
            )
        }
        (Content::Dsse { payload, .. }, "dsse", "0.0.1") => {
            let alg = entry_field(&body, "/spec/payloadHash/algorithm")?;
            let value = entry_field(&body, "/spec/payloadHash/value")?;
            let want = hex::encode(Sha256::digest(payload));
            if alg.as_str() != Some("sha256") || value.as_str() != Some(&want) {
                return Err(BundleError::EntryMismatch(format!(
                    "it records payload hash {}:{}, the envelope's payload is sha256:{want}",
                    alg.as_str().unwrap_or("?"),
                    value.as_str().unwrap_or("?"),
                )));
            }
            let sigs = entry_field(&body, "/spec/signatures")?
                .as_array()
                .filter(|a| a.len() == 1)
                .ok_or_else(|| {
                    BundleError::EntryMismatch("it does not record exactly one signature".into())
                })?;
            let one = sigs.first().unwrap_or(&Value::Null);
            if one.get("signature").and_then(Value::as_str) != Some(&b64.encode(signature)) {
                return Err(BundleError::EntryMismatch(
                    "it records another signature".into(),
                ));
            }
            logged_verifier(
                one.get("verifier").unwrap_or(&Value::Null),
                "the entry's verifier",
            )
        }
        (Content::MessageSignature { .. }, "dsse", _)
        | (Content::Dsse { .. }, "hashedrekord", _) => Err(BundleError::EntryMismatch(format!(
            "a {kind} entry cannot record a {} bundle",
            match bundle.content {
                Content::Dsse { .. } => "DSSE",
                Content::MessageSignature { .. } => "message-signature",
            }
        ))),
        _ => Err(BundleError::EntryKind {
            kind: kind.to_string(),
            version: version.to_string(),
        }),
    }
}

fn time_text(unix: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| unix.to_string())
}

/// The log entry whose SET verifies with the Rekor keys, checked against the bundle: its
/// record of the signature and signed content, and its inclusion proof when there is one.
/// Returns the entry, the DER of the key or certificate it records, and whether an inclusion
/// proof was checked.
fn verified_entry<'b>(
    bundle: &'b Bundle,
    rekor: &[PublicKey],
) -> Result<(&'b TlogEntry, Vec<u8>, bool), BundleError> {
    if bundle.tlog.is_empty() {
        return Err(BundleError::NoTlogEntry);
    }
    let mut first_error = None;
    for entry in &bundle.tlog {
        let result = (|| {
            let set = entry.set.as_deref().ok_or(BundleError::MissingSet)?;
            let key_index = verify_set(
                rekor,
                set,
                &entry.body,
                entry.integrated_time,
                entry.log_index,
                &entry.log_id,
            )?;
            let log_key = rekor.get(key_index).ok_or(BundleError::MissingSet)?;
            let logged = check_entry_body(bundle, entry)?;
            if let Some(proof) = &entry.proof {
                if proof.log_index != entry.log_index {
                    return Err(BundleError::Tlog(TlogError::Proof(format!(
                        "it is for log index {}, the entry is at {}",
                        proof.log_index, entry.log_index
                    ))));
                }
                proof.verify(&entry.body, log_key)?;
            }
            Ok((logged, entry.proof.is_some()))
        })();
        match result {
            Ok((logged, proven)) => return Ok((entry, logged, proven)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(BundleError::NoTlogEntry))
}

/// Checks the bundle's signature with `key`.
fn verify_signature(
    bundle: &Bundle,
    key: &PublicKey,
    manifest: &[u8],
) -> Result<(), crate::signature::sigstore::SignatureMismatch> {
    let signature = bundle.signature().unwrap_or_default();
    match &bundle.content {
        Content::Dsse {
            payload_type,
            payload,
            ..
        } => key.verify_bundle_message(&pae(payload_type, payload), signature),
        Content::MessageSignature { digest, .. } => {
            let d: [u8; 32] = digest.as_slice().try_into().unwrap_or([0; 32]);
            key.verify_bundle_sha256(&d, manifest, signature)
        }
    }
}

/// Verifies a bundle attached to the image whose manifest is `manifest`, offline:
///
/// 1. with `rekor` keys (required for Fulcio): a log entry whose SET one of them signed, that
///    records this very signature, key or certificate and signed content, and whose
///    inclusion proof (when present) leads to a checkpoint the same log signed;
/// 2. the signer: a trusted key (the one the entry records, when there is an entry), or a
///    certificate that chains to the Fulcio CA (at the entry's integrated time, when the
///    certificate must also have been valid) or to the PKI roots (now), naming the identity;
/// 3. the signature over the DSSE envelope or the message;
/// 4. what it signs: a DSSE statement whose subjects include the manifest's SHA-256, or a
///    message digest equal to it.
///
/// Which identity the statement claims, and whether that fits the policy, is the caller's.
pub fn verify_bundle(
    bundle: &Bundle,
    signers: BundleSigners<'_>,
    rekor: Option<&[PublicKey]>,
    manifest: &[u8],
    now: i64,
) -> Result<VerifiedBundle, BundleError> {
    bundle.signature()?;
    if let Content::MessageSignature {
        algorithm, digest, ..
    } = &bundle.content
        && (algorithm != "SHA2_256" || digest.len() != 32)
    {
        return Err(BundleError::DigestAlgorithm(algorithm.clone()));
    }
    let log = rekor.map(|r| verified_entry(bundle, r)).transpose()?;
    let record = log.as_ref().map(|(e, _, proven)| LogRecord {
        log_index: e.log_index,
        integrated_time: e.integrated_time,
        inclusion_proven: *proven,
    });
    let logged_der = log.as_ref().map(|(_, der, _)| der.as_slice());

    // The candidate keys.
    let keys: Vec<PublicKey> = match signers {
        BundleSigners::Keys(keys) => match logged_der {
            None => keys.to_vec(),
            Some(der) => {
                let key = keys.iter().find(|k| k.spki_der() == der).ok_or_else(|| {
                    BundleError::EntryKeyNotTrusted(
                        PublicKey::from_spki_der(der)
                            .map(|k| k.id().to_string())
                            .unwrap_or_else(|_| "(unreadable)".into()),
                    )
                })?;
                vec![key.clone()]
            }
        },
        BundleSigners::Fulcio(root) => {
            let Material::Certificate { leaf, chain } = &bundle.material else {
                return Err(BundleError::NoCertificate);
            };
            // Fulcio certificates live minutes: what matters is that the log saw the
            // signature while the certificate was valid.
            let Some(r) = &record else {
                return Err(BundleError::NoTlogEntry);
            };
            if logged_der.is_some_and(|d| d != leaf.der()) {
                return Err(BundleError::EntryMismatch(
                    "it records another certificate".into(),
                ));
            }
            let t = r.integrated_time;
            if t < leaf.not_before() || t > leaf.not_after() {
                return Err(BundleError::NotValidAtSigning {
                    at: time_text(t),
                    not_before: time_text(leaf.not_before()),
                    not_after: time_text(leaf.not_after()),
                });
            }
            vec![root.verify_leaf_at(t, leaf, chain)?]
        }
        BundleSigners::Pki(root) => {
            let Material::Certificate { leaf, chain } = &bundle.material else {
                return Err(BundleError::NoCertificate);
            };
            if logged_der.is_some_and(|d| d != leaf.der()) {
                return Err(BundleError::EntryMismatch(
                    "it records another certificate".into(),
                ));
            }
            vec![root.verify_leaf_at(now, leaf, chain)?]
        }
    };

    let mut failures = Vec::new();
    let mut verified = None;
    for (i, key) in keys.iter().enumerate() {
        match verify_signature(bundle, key, manifest) {
            Ok(()) => {
                verified = Some(key);
                break;
            }
            Err(reason) => failures.push(KeyMismatch {
                key_index: i,
                key_id: key.id().to_string(),
                reason,
            }),
        }
    }
    let Some(key) = verified else {
        return Err(BundleError::Mismatch(failures));
    };

    // What it signs.
    let wanted = hex::encode(Sha256::digest(manifest));
    let statement = match &bundle.content {
        Content::MessageSignature { digest, .. } => {
            if hex::encode(digest) != wanted {
                return Err(BundleError::MessageDigestMismatch {
                    wanted: format!("sha256:{wanted}"),
                    got: format!("sha256:{}", hex::encode(digest)),
                });
            }
            None
        }
        Content::Dsse { .. } => {
            let s = bundle
                .statement()
                .unwrap_or(Err(BundleError::Statement("none".into())))?;
            if s.subject_for(&wanted).is_none() {
                return Err(BundleError::SubjectMismatch {
                    wanted: format!("sha256:{wanted}"),
                    got: s
                        .subjects
                        .iter()
                        .flat_map(|x| x.digests.iter().map(|(a, d)| format!("{a}:{d}")))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            Some(s)
        }
    };
    Ok(VerifiedBundle {
        key_id: key.id().to_string(),
        statement,
        log: record,
        sealed: Sealed,
    })
}
