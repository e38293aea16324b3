//! `sigstoreSigned`: sigstore (cosign) signatures, by a public key (`keyPath`, `keyPaths`,
//! `keyData`, `keyDatas`, optionally with Rekor), or keyless through Fulcio (with Rekor) or a
//! PKI, as containers/image's `policy_eval_sigstore.go` judges them: the trust root's own checks,
//! the cryptographic check, then the signed manifest digest and the signed identity.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use serde_json::Value;

use super::config::IdentityMatch;
use super::eval::Judgement;
use super::identity::{identity_matches, judge_claims};
use crate::reference::DockerReference;
use crate::signature::sigstore::bundle::{Bundle, BundleSigners, Content, verify_bundle};
use crate::signature::sigstore::fulcio::{FulcioTrustRoot, PkiTrustRoot, fulcio_issuer};
use crate::signature::sigstore::x509::Certificate;
use crate::signature::sigstore::{
    self, BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, PublicKey, SigstoreError, SigstoreSignature,
};
use crate::strict_json::{self, JsonError, Members};
use crate::verdict::{SignedClaims, Signer};

/// What a `sigstoreSigned` requirement trusts.
pub enum TrustRoot {
    /// Public keys, and Rekor keys when the policy requires a Rekor SET.
    Keys {
        /// The signing keys.
        keys: Vec<PublicKey>,
        /// The Rekor keys, when a SET is required.
        rekor: Option<Vec<PublicKey>>,
    },
    /// Fulcio certificates logged in Rekor.
    Fulcio {
        /// The CA and the identity certificates must name.
        root: Box<FulcioTrustRoot>,
        /// The Rekor keys.
        rekor: Vec<PublicKey>,
    },
    /// Certificates from a private PKI.
    Pki {
        /// The roots, intermediates and the identity certificates must name.
        root: Box<PkiTrustRoot>,
    },
}

/// The trust of a `sigstoreSigned` requirement: loaded when the policy is loaded, or the reason
/// it could not be (which rejects every sigstore signature this requirement examines, as
/// containers/image does when it reads the files at evaluation).
#[derive(Clone)]
pub struct SigstoreTrust {
    /// Where it came from, for messages: key files, `keyData`, `fulcio caPath …`.
    pub sources: Vec<String>,
    /// The trust root, or why it could not be loaded.
    pub root: Result<Arc<TrustRoot>, String>,
}

impl fmt::Debug for SigstoreTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigstoreTrust")
            .field("sources", &self.sources)
            .field("loaded", &self.root.as_ref().map(|_| ()))
            .finish()
    }
}

fn base64_bytes(v: &Value, key: &str) -> Result<Vec<u8>, JsonError> {
    let s = strict_json::string(v, key)?;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| JsonError(format!("illegal base64 data in {key}: {e}")))
}

fn string_list<'a>(v: &'a Value, key: &str) -> Result<Vec<&'a str>, JsonError> {
    v.as_array()
        .ok_or_else(|| JsonError(format!("JSON array expected, got {}", strict_json::kind(v))))?
        .iter()
        .map(|s| strict_json::string(s, key))
        .collect()
}

/// One source of bytes in the policy: files to read later, or inline data.
enum Source<'a> {
    Files(Vec<&'a str>),
    Data(Vec<Vec<u8>>),
}

impl Source<'_> {
    fn describe(&self, what: &str) -> String {
        match self {
            Source::Files(f) => format!("{what} {}", f.join(", ")),
            Source::Data(d) => format!("{what} (inline, {} item(s))", d.len()),
        }
    }
    /// The bytes of every item, reading files as containers/image does at evaluation (and
    /// with ferry's cap on configuration files).
    fn load(&self) -> Result<Vec<Vec<u8>>, String> {
        match self {
            Source::Data(d) => Ok(d.clone()),
            Source::Files(files) => files
                .iter()
                .map(|p| {
                    crate::limits::read_file(
                        Path::new(p),
                        crate::limits::MAX_CONFIG_FILE,
                        "a key or certificate file",
                    )
                    .map_err(|e| match e {
                        crate::limits::ReadError::Io { .. } => format!("open {e}"),
                        other => other.to_string(),
                    })
                })
                .collect(),
        }
    }
}

/// The one source among `path`/`paths`/`data`/`datas` keys the policy gives (the parser has
/// already checked that at most one is present).
fn source<'a>(
    o: &Members<'a>,
    path: &str,
    paths: Option<&str>,
    data: &str,
    datas: Option<&str>,
) -> Result<Option<Source<'a>>, JsonError> {
    if let Some(v) = o.get(path) {
        return Ok(Some(Source::Files(vec![strict_json::string(v, path)?])));
    }
    if let Some(k) = paths
        && let Some(v) = o.get(k)
    {
        return Ok(Some(Source::Files(string_list(v, k)?)));
    }
    if let Some(v) = o.get(data) {
        return Ok(Some(Source::Data(vec![base64_bytes(v, data)?])));
    }
    if let Some(k) = datas
        && let Some(v) = o.get(k)
    {
        let list = v.as_array().ok_or_else(|| {
            JsonError(format!("JSON array expected, got {}", strict_json::kind(v)))
        })?;
        return Ok(Some(Source::Data(
            list.iter()
                .map(|d| base64_bytes(d, k))
                .collect::<Result<_, _>>()?,
        )));
    }
    Ok(None)
}

fn public_keys(pems: &[Vec<u8>], what: &str) -> Result<Vec<PublicKey>, String> {
    pems.iter()
        .enumerate()
        .map(|(i, pem)| {
            PublicKey::from_pem(pem).map_err(|e| format!("parsing {what} {}: {e}", i + 1))
        })
        .collect()
}

fn rekor_keys(src: &Source<'_>) -> Result<Vec<PublicKey>, String> {
    let keys = public_keys(&src.load()?, "Rekor public key")?;
    if let Some(i) = keys.iter().position(|k| !k.is_ecdsa()) {
        return Err(format!("Rekor public key {} is not using ECDSA", i + 1));
    }
    if keys.is_empty() {
        return Err(r#"Internal inconsistency: "rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData" and "rekorPublicKeyDatas" produced no public keys"#.into());
    }
    Ok(keys)
}

impl SigstoreTrust {
    /// The trust of a `sigstoreSigned` object whose shape the policy parser has checked.
    /// Malformed inline data is a policy error; files that cannot be read or keys that cannot
    /// be parsed become the requirement's standing rejection.
    pub(crate) fn load(o: &Members<'_>) -> Result<SigstoreTrust, JsonError> {
        let keys = source(o, "keyPath", Some("keyPaths"), "keyData", Some("keyDatas"))?;
        let rekor = source(
            o,
            "rekorPublicKeyPath",
            Some("rekorPublicKeyPaths"),
            "rekorPublicKeyData",
            Some("rekorPublicKeyDatas"),
        )?;
        let mut sources = Vec::new();
        let root: Result<TrustRoot, String> = if let Some(k) = &keys {
            sources.push(k.describe("key"));
            if let Some(r) = &rekor {
                sources.push(r.describe("rekor"));
            }
            (|| {
                let keys = public_keys(&k.load()?, "public key")?;
                if keys.is_empty() {
                    return Err(r#"Internal inconsistency: "keyPath", "keyPaths", "keyData" and "keyDatas" produced no public keys"#.into());
                }
                let rekor = rekor.as_ref().map(rekor_keys).transpose()?;
                Ok(TrustRoot::Keys { keys, rekor })
            })()
        } else if let Some(f) = o.get("fulcio") {
            let f = strict_json::object(f, FULCIO_FIELDS, &[])?;
            let ca = source(&f, "caPath", None, "caData", None)?;
            let issuer = f
                .get("oidcIssuer")
                .map(|v| strict_json::string(v, "oidcIssuer"))
                .transpose()?
                .unwrap_or_default();
            let email = f
                .get("subjectEmail")
                .map(|v| strict_json::string(v, "subjectEmail"))
                .transpose()?
                .unwrap_or_default();
            if let Some(c) = &ca {
                sources.push(c.describe("fulcio CA"));
            }
            sources.push(format!("oidcIssuer {issuer}, subjectEmail {email}"));
            if let Some(r) = &rekor {
                sources.push(r.describe("rekor"));
            }
            (|| {
                let ca = ca
                    .as_ref()
                    .ok_or(r#"Internal inconsistency: Fulcio specified with not exactly one of "caPath" nor "caData""#)?
                    .load()?;
                let root = FulcioTrustRoot::new(
                    ca.first().map(Vec::as_slice).unwrap_or_default(),
                    issuer,
                    email,
                )
                .map_err(|e| e.to_string())?;
                let rekor = rekor
                    .as_ref()
                    .ok_or("Internal inconsistency: Fulcio CA specified without a Rekor public key")
                    .map_err(String::from)
                    .and_then(rekor_keys)?;
                Ok(TrustRoot::Fulcio {
                    root: Box::new(root),
                    rekor,
                })
            })()
        } else if let Some(p) = o.get("pki") {
            let p = strict_json::object(p, PKI_FIELDS, &[])?;
            let roots = source(&p, "caRootsPath", None, "caRootsData", None)?;
            let intermediates =
                source(&p, "caIntermediatesPath", None, "caIntermediatesData", None)?;
            let email = p
                .get("subjectEmail")
                .map(|v| strict_json::string(v, "subjectEmail"))
                .transpose()?;
            let host = p
                .get("subjectHostname")
                .map(|v| strict_json::string(v, "subjectHostname"))
                .transpose()?;
            if let Some(r) = &roots {
                sources.push(r.describe("pki roots"));
            }
            if let Some(i) = &intermediates {
                sources.push(i.describe("pki intermediates"));
            }
            (|| {
                let roots = roots
                    .as_ref()
                    .ok_or(r#"Internal inconsistency: PKI specified with not exactly one of "caRootsPath" nor "caRootsData""#)?
                    .load()?;
                let intermediates = intermediates.as_ref().map(Source::load).transpose()?;
                let root = PkiTrustRoot::new(
                    roots.first().map(Vec::as_slice).unwrap_or_default(),
                    intermediates
                        .as_ref()
                        .and_then(|i| i.first())
                        .map(Vec::as_slice),
                    email,
                    host,
                )
                .map_err(|e| e.to_string())?;
                Ok(TrustRoot::Pki {
                    root: Box::new(root),
                })
            })()
        } else {
            Err("Internal inconsistency: A public key, Fulcio, or PKI must be specified.".into())
        };
        Ok(SigstoreTrust {
            sources,
            root: root.map(Arc::new),
        })
    }
}

/// The members of a `sigstoreSigned` requirement's `fulcio` object.
pub(super) const FULCIO_FIELDS: &[&str] = &["caPath", "caData", "oidcIssuer", "subjectEmail"];

/// The members of a `sigstoreSigned` requirement's `pki` object.
pub(super) const PKI_FIELDS: &[&str] = &[
    "caRootsPath",
    "caRootsData",
    "caIntermediatesPath",
    "caIntermediatesData",
    "subjectEmail",
    "subjectHostname",
];

fn time_text(unix: i64) -> Option<String> {
    chrono::DateTime::<chrono::Utc>::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The signer as a certificate names it: its first email, URI or DNS name (else its subject
/// name), its Fulcio OIDC issuer and its key's id.
fn describe_certificate(signer: &mut Signer, cert: &Certificate) {
    signer.certificate_subject = cert
        .emails()
        .first()
        .or(cert.uris().first())
        .or(cert.dns_names().first())
        .cloned()
        .or_else(|| Some(cert.name().to_string()));
    signer.certificate_issuer = fulcio_issuer(cert).ok();
    signer.fingerprint = cert.public_key().ok().map(|k| k.id().to_string());
}

/// What a sigstore signature says of its signer, unverified: the certificate's subject and
/// issuer, the Rekor entry's index and time. For messages and forensics; the judgement itself
/// never trusts these.
pub fn describe_signer(sig: &SigstoreSignature) -> Signer {
    let mut signer = Signer::default();
    if let Some(pem) = sig.annotations.get(CERTIFICATE_ANNOTATION)
        && let Ok(certs) = Certificate::all_from_pem(pem.as_bytes())
        && let Some(cert) = certs.first()
    {
        describe_certificate(&mut signer, cert);
    }
    if let Some(bundle) = sig.annotations.get(BUNDLE_ANNOTATION)
        && let Ok(v) = serde_json::from_str::<Value>(bundle)
    {
        signer.rekor_log_index = v.pointer("/Payload/logIndex").and_then(Value::as_i64);
        signer.rekor_integrated_time = v
            .pointer("/Payload/integratedTime")
            .and_then(Value::as_i64)
            .and_then(time_text);
    }
    signer
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

/// How a sigstore bundle whose statement names no image (cosign 3 signs the digest only) meets
/// `signedIdentity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BundleIdentity {
    /// A bundle claims only what it names: one that names no image satisfies no
    /// `signedIdentity`, because nothing signed ties it to a repository (the default).
    #[default]
    Named,
    /// A bundle that names no image is taken to claim the image it is attached to, as cosign 3
    /// itself treats it (registries.d `sigstore-bundle-identity: attached-image` for the scope).
    /// This trusts the registry not to move a signed image and its bundle to another repository.
    AttachedImage,
}

/// What a sigstore bundle says of its signer, unverified (for messages and forensics).
pub fn describe_bundle_signer(bundle: &Bundle) -> Signer {
    let mut signer = Signer::default();
    if let Some(cert) = bundle.certificate() {
        describe_certificate(&mut signer, cert);
    }
    if let Some(e) = bundle.tlog.first() {
        signer.rekor_log_index = Some(e.log_index);
        signer.rekor_integrated_time = time_text(e.integrated_time);
    }
    signer
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
