//! Who a sigstore signature or bundle says signed it, read without verifying anything: the
//! certificate's subject and OIDC issuer, the key's id, the Rekor entry's index and time. For
//! messages, verdicts and the forensic view; a judgement never trusts these on their own.

use serde_json::Value;

use super::bundle::Bundle;
use super::fulcio::fulcio_issuer;
use super::x509::Certificate;
use super::{BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, SigstoreSignature};
use crate::verdict::Signer;

/// A Unix time as RFC 3339, to the second.
pub(crate) fn time_text(unix: i64) -> Option<String> {
    chrono::DateTime::<chrono::Utc>::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The signer as a certificate names it: its first email, URI or DNS name (else its subject
/// name), its Fulcio OIDC issuer and its key's id.
pub(crate) fn describe_certificate(signer: &mut Signer, cert: &Certificate) {
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
