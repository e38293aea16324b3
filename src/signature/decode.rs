//! What a signature blob says, read without verifying it: its format, the issuer it names,
//! when it was made, the identity and digest it claims, and its payload as signed. For people
//! examining stored or served signatures (`ferry signatures show`); a judgement never trusts
//! any of it on its own.

use serde::Serialize;

use super::{simple, sniff};

/// A signature decoded without verification.
#[derive(Debug, Clone, Serialize, Default)]
#[non_exhaustive]
pub struct Decoded {
    /// The format (`simple-signing`, `sigstore-json`).
    pub format: Option<String>,
    /// Key IDs or fingerprints the signature names as its issuer.
    pub issuers: Vec<String>,
    /// The signature's creation time (RFC 3339).
    pub created: Option<String>,
    /// `critical.identity.docker-reference`.
    pub docker_reference: Option<String>,
    /// `critical.image.docker-manifest-digest`.
    pub manifest_digest: Option<String>,
    /// `optional.creator`.
    pub creator: Option<String>,
    /// `optional.timestamp`.
    pub timestamp: Option<i64>,
    /// The signed payload as signed: JSON, or a string when it is not JSON.
    pub payload: Option<serde_json::Value>,
    /// Keyless sigstore: the certificate's subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_subject: Option<String>,
    /// Keyless sigstore: the OIDC issuer the certificate names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_issuer: Option<String>,
    /// Sigstore with Rekor: the log index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rekor_log_index: Option<i64>,
    /// Sigstore with Rekor: when the entry was logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rekor_integrated_time: Option<String>,
    /// Why it could not be decoded.
    pub error: Option<String>,
}

/// A sigstore bundle (cosign 3), unverified: the signer its certificate names, the log entry,
/// and what it signs (the in-toto statement as the payload, or the message digest).
fn decode_bundle(bytes: &[u8], d: &mut Decoded) {
    use crate::signature::sigstore::bundle::{Bundle, Content};
    d.format = Some("sigstore-bundle".to_string());
    let bundle = match Bundle::from_json(bytes) {
        Ok(b) => b,
        Err(e) => {
            d.error = Some(e.to_string());
            return;
        }
    };
    let signer = super::sigstore::describe::describe_bundle_signer(&bundle);
    d.issuers = signer.fingerprint.into_iter().collect();
    d.certificate_subject = signer.certificate_subject;
    d.certificate_issuer = signer.certificate_issuer;
    d.rekor_log_index = signer.rekor_log_index;
    d.rekor_integrated_time = signer.rekor_integrated_time.clone();
    d.created = signer.rekor_integrated_time;
    match &bundle.content {
        Content::Dsse { payload, .. } => {
            d.payload = serde_json::from_slice(payload).ok();
            match bundle.statement() {
                Some(Ok(s)) => {
                    let first = s.subjects.first();
                    d.docker_reference = first.and_then(|x| x.name.clone());
                    d.manifest_digest = first
                        .and_then(|x| x.digests.get("sha256"))
                        .map(|h| format!("sha256:{h}"));
                }
                Some(Err(e)) => d.error = Some(e.to_string()),
                None => {}
            }
        }
        Content::MessageSignature { digest, .. } => {
            d.manifest_digest = Some(format!("sha256:{}", hex::encode(digest)));
        }
    }
}

/// Decodes a signature blob (any format ferry knows) without verifying it.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut d = Decoded::default();
    match sniff::sniff(bytes) {
        Ok((sniff::Format::SigstoreJson, json)) => {
            d.format = Some(sniff::Format::SigstoreJson.name().to_string());
            match crate::signature::sigstore::SigstoreSignature::from_json(json) {
                Ok(sig)
                    if crate::signature::sigstore::bundle::is_bundle_media_type(&sig.mime_type) =>
                {
                    decode_bundle(&sig.payload, &mut d);
                }
                Ok(sig) => {
                    let signer = super::sigstore::describe::describe_signer(&sig);
                    d.issuers = signer.fingerprint.into_iter().collect();
                    d.certificate_subject = signer.certificate_subject;
                    d.certificate_issuer = signer.certificate_issuer;
                    d.rekor_log_index = signer.rekor_log_index;
                    d.rekor_integrated_time = signer.rekor_integrated_time;
                    d.payload = Some(serde_json::from_slice(&sig.payload).unwrap_or_else(|_| {
                        serde_json::Value::String(
                            String::from_utf8_lossy(&sig.payload).into_owned(),
                        )
                    }));
                    match crate::signature::sigstore::SigstorePayload::from_json(&sig.payload) {
                        Ok(p) => {
                            d.docker_reference = Some(p.docker_reference);
                            d.manifest_digest = Some(p.manifest_digest);
                            d.creator = p.creator;
                            d.timestamp = p.timestamp;
                            d.created = p.timestamp.and_then(|t| {
                                chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0)
                                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                            });
                        }
                        Err(e) => d.error = Some(e.to_string()),
                    }
                }
                Err(e) => d.error = Some(e.to_string()),
            }
        }
        Ok((format, message)) => {
            d.format = Some(format.name().to_string());
            match simple::inspect(message) {
                Ok(u) => {
                    d.issuers = u.issuers;
                    d.created = u.created.map(|t| {
                        chrono::DateTime::<chrono::Utc>::from(t)
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    });
                    d.payload = u.raw_payload.as_deref().map(|b| {
                        serde_json::from_slice(b).unwrap_or_else(|_| {
                            serde_json::Value::String(String::from_utf8_lossy(b).into_owned())
                        })
                    });
                    if let Some(p) = u.payload {
                        d.docker_reference = Some(p.docker_reference);
                        d.manifest_digest = Some(p.manifest_digest);
                        d.creator = p.creator;
                        d.timestamp = p.timestamp;
                    }
                }
                Err(e) => d.error = Some(e.to_string()),
            }
        }
        Err(e) => d.error = Some(e.to_string()),
    }
    d
}
