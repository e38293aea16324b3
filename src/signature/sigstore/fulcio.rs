//! Keyless signatures: a certificate (the [`super::CERTIFICATE_ANNOTATION`] annotation, with
//! intermediates in [`super::CHAIN_ANNOTATION`]) that a trusted CA issued to an identity, whose
//! public key made the signature.
//!
//! Two kinds, as in containers/image (signature/fulcio_cert.go, signature/pki_cert.go):
//! - **Fulcio**: the certificate must chain to the Fulcio CA at the time Rekor logged the
//!   signature (the SET's integrated time, so a certificate that lived ten minutes still
//!   verifies later), record the expected OIDC issuer (extension 1.3.6.1.4.1.57264.1.1 or
//!   .1.8; both must agree when both are present), and carry the expected email in its SAN.
//!   [`verify_rekor_fulcio`] does the whole check, SET included.
//! - **PKI**: the certificate must chain to the given roots (through given and/or
//!   annotation intermediates) now, and carry the expected email and/or match the expected
//!   hostname.
//!
//! In both, the chain annotation's **last** certificate is dropped (it is the root, which must
//! come from the trust root) and the rest are candidate intermediates; SCTs are not checked.

use std::net::IpAddr;

use der::Decode;
use der::asn1::ObjectIdentifier;

use super::keys::PublicKey;
use super::rekor::{RekorError, verify_rekor_set};
use super::x509::{Certificate, CertificateError, ChainError};

/// Fulcio's OIDC issuer extension, version 1: the raw issuer URL (deprecated, still accepted).
pub const OID_ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// Fulcio's OIDC issuer extension, version 2: a DER string.
pub const OID_ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");

/// Why a keyless signature's certificate was not accepted. The messages are containers/image's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateVerifyError {
    /// The Fulcio CA data holds no usable certificate.
    #[error("error loading Fulcio CA certificates")]
    NoFulcioCa,
    /// The PKI roots data holds no usable certificate.
    #[error("error loading PKI CA Roots certificates")]
    NoPkiRoots,
    /// The configured PKI intermediates cannot be read.
    #[error("loading trusted intermediate certificates: {0}")]
    TrustedIntermediates(CertificateError),
    /// A Fulcio trust root without an issuer or email, or PKI without email and hostname.
    #[error("Internal inconsistency: {0}")]
    Inconsistent(&'static str),
    /// The chain annotation cannot be read.
    #[error("loading certificate chain: {0}")]
    Chain(CertificateError),
    /// The certificate annotation cannot be read.
    #[error("parsing leaf certificate: {0}")]
    Leaf(CertificateError),
    /// The certificate annotation holds no certificate.
    #[error("no certificate found in signature certificate data")]
    NoLeaf,
    /// The certificate annotation holds several certificates.
    #[error("unexpected multiple certificates present in signature certificate data")]
    MultipleLeaves,
    /// The certificate does not chain to the trust root.
    #[error("veryfing leaf certificate failed: {0}")]
    Verify(ChainError),
    /// The OIDC issuer extensions are absent, malformed or disagree.
    #[error("{0}")]
    Issuer(String),
    /// The certificate was issued for another OIDC issuer.
    #[error("Unexpected Fulcio OIDC issuer {0:?}")]
    UnexpectedIssuer(String),
    /// The expected email is not in the certificate.
    #[error("Required email {wanted:?} not found (got {})", go_quoted_list(got))]
    EmailNotFound {
        /// The email the policy requires.
        wanted: String,
        /// The certificate's emails.
        got: Vec<String>,
    },
    /// The certificate is not for the expected hostname.
    #[error("Unexpected subject hostname: {0}")]
    Hostname(String),
    /// The certificate's public key is not usable.
    #[error("invalid public key in certificate: {0}")]
    PublicKey(super::keys::KeyError),
    /// The Rekor SET (Fulcio requires one) was not accepted.
    #[error("{0}")]
    Rekor(#[from] RekorError),
}

/// Go's `%q` of a `[]string`.
fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// The OIDC issuer Fulcio recorded in `cert`, as containers/image's `fulcioIssuerInCertificate`.
pub fn fulcio_issuer(cert: &Certificate) -> Result<String, CertificateVerifyError> {
    let issuer = |s: &str| CertificateVerifyError::Issuer(s.to_string());
    let mut v1 = None;
    let mut v2 = None;
    for (oid, _, value) in cert.extensions() {
        if *oid == OID_ISSUER_V1 {
            // The extension value is the URL's bytes themselves.
            v1 = Some(String::from_utf8_lossy(value).into_owned());
        } else if *oid == OID_ISSUER_V2 {
            let mut reader = der::SliceReader::new(value)
                .map_err(|e| issuer(&format!("invalid ASN.1 in OIDC issuer v2 extension: {e}")))?;
            let any = der::asn1::AnyRef::decode(&mut reader)
                .map_err(|e| issuer(&format!("invalid ASN.1 in OIDC issuer v2 extension: {e}")))?;
            if !der::Reader::is_finished(&reader) {
                return Err(issuer(
                    "invalid ASN.1 in OIDC issuer v2 extension, trailing data",
                ));
            }
            // Go's asn1.Unmarshal into a string takes any of the ASN.1 string types.
            let s = any
                .decode_as::<der::asn1::Utf8StringRef>()
                .map(|s| s.as_str().to_string())
                .or_else(|_| {
                    any.decode_as::<der::asn1::PrintableStringRef>()
                        .map(|s| s.as_str().to_string())
                })
                .or_else(|_| {
                    any.decode_as::<der::asn1::Ia5StringRef>()
                        .map(|s| s.as_str().to_string())
                })
                .map_err(|e| issuer(&format!("invalid ASN.1 in OIDC issuer v2 extension: {e}")))?;
            v2 = Some(s);
        }
    }
    match (v1, v2) {
        (Some(a), Some(b)) if a != b => Err(issuer(&format!(
            "inconsistent OIDC issuer extension values: v1 {a:?}, v2 {b:?}"
        ))),
        (Some(a), _) => Ok(a),
        (None, Some(b)) => Ok(b),
        (None, None) => Err(issuer("Fulcio certificate is missing the issuer extension")),
    }
}

/// The one certificate of the certificate annotation.
fn parse_leaf(pem_bytes: &[u8]) -> Result<Certificate, CertificateVerifyError> {
    let mut certs = Certificate::all_from_pem(pem_bytes).map_err(CertificateVerifyError::Leaf)?;
    match certs.len() {
        0 => Err(CertificateVerifyError::NoLeaf),
        1 => Ok(certs.remove(0)),
        _ => Err(CertificateVerifyError::MultipleLeaves),
    }
}

/// The chain annotation's intermediates: all but the last certificate.
fn annotation_intermediates(
    chain_pem: Option<&[u8]>,
) -> Result<Vec<Certificate>, CertificateVerifyError> {
    let Some(chain_pem) = chain_pem.filter(|c| !c.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut chain = Certificate::all_from_pem(chain_pem).map_err(CertificateVerifyError::Chain)?;
    chain.pop();
    Ok(chain)
}

/// A trust root for signing certificates: Fulcio's CA or a PKI's roots.
pub trait CertificateTrust {
    /// Checks a parsed certificate and intermediates (a sigstore bundle's verification
    /// material) at `time` (Unix seconds) and returns the certificate's public key.
    fn verify_leaf_at(
        &self,
        time: i64,
        leaf: &Certificate,
        intermediates: &[Certificate],
    ) -> Result<PublicKey, CertificateVerifyError>;

    /// Checks a certificate given as annotations (`cert_pem`, the certificate annotation;
    /// `chain_pem`, the chain annotation if any) at `time` and returns its public key.
    fn verify_certificate_at(
        &self,
        time: i64,
        cert_pem: &[u8],
        chain_pem: Option<&[u8]>,
    ) -> Result<PublicKey, CertificateVerifyError> {
        let leaf = parse_leaf(cert_pem)?;
        self.verify_leaf_at(time, &leaf, &annotation_intermediates(chain_pem)?)
    }
}

/// What a `fulcio` policy trusts: the Fulcio CA, and the identity certificates must name.
#[derive(Debug, Clone)]
pub struct FulcioTrustRoot {
    ca_certificates: Vec<Certificate>,
    oidc_issuer: String,
    subject_email: String,
}

impl FulcioTrustRoot {
    /// A trust root from the CA file's PEM (`caPath`/`caData`), the OIDC issuer and the email.
    pub fn new(
        ca_pem: &[u8],
        oidc_issuer: &str,
        subject_email: &str,
    ) -> Result<FulcioTrustRoot, CertificateVerifyError> {
        let ca_certificates = Certificate::pool_from_pem(ca_pem);
        if ca_certificates.is_empty() {
            return Err(CertificateVerifyError::NoFulcioCa);
        }
        if oidc_issuer.is_empty() {
            return Err(CertificateVerifyError::Inconsistent(
                "Fulcio use set up without OIDC issuer",
            ));
        }
        if subject_email.is_empty() {
            return Err(CertificateVerifyError::Inconsistent(
                "Fulcio use set up without subject email",
            ));
        }
        Ok(FulcioTrustRoot {
            ca_certificates,
            oidc_issuer: oidc_issuer.to_string(),
            subject_email: subject_email.to_string(),
        })
    }
}

/// A Fulcio certificate is checked at the Rekor integrated time.
impl CertificateTrust for FulcioTrustRoot {
    fn verify_leaf_at(
        &self,
        time: i64,
        leaf: &Certificate,
        intermediates: &[Certificate],
    ) -> Result<PublicKey, CertificateVerifyError> {
        leaf.verify_chain(intermediates, &self.ca_certificates, time)
            .map_err(CertificateVerifyError::Verify)?;
        let issuer = fulcio_issuer(leaf)?;
        if issuer != self.oidc_issuer {
            return Err(CertificateVerifyError::UnexpectedIssuer(issuer));
        }
        if !leaf.emails().contains(&self.subject_email) {
            return Err(CertificateVerifyError::EmailNotFound {
                wanted: self.subject_email.clone(),
                got: leaf.emails().to_vec(),
            });
        }
        leaf.public_key()
            .cloned()
            .map_err(CertificateVerifyError::PublicKey)
    }
}

/// containers/image's `verifyRekorFulcio`: the SET must verify with one of `rekor_keys` and
/// log this certificate, signature and payload; then the certificate must be valid for
/// `fulcio` at the SET's integrated time. Returns the certificate's public key, with which the
/// signature itself is then verified ([`super::verify()`]).
pub fn verify_rekor_fulcio(
    rekor_keys: &[PublicKey],
    fulcio: &FulcioTrustRoot,
    set: &[u8],
    cert_pem: &[u8],
    chain_pem: Option<&[u8]>,
    signature_base64: &str,
    payload: &[u8],
) -> Result<PublicKey, CertificateVerifyError> {
    let set = verify_rekor_set(rekor_keys, set, cert_pem, signature_base64, payload)?;
    fulcio.verify_certificate_at(set.payload.integrated_time, cert_pem, chain_pem)
}

/// What a `pki` policy trusts: CA roots, optional intermediates, and the identity.
#[derive(Debug, Clone)]
pub struct PkiTrustRoot {
    roots: Vec<Certificate>,
    intermediates: Vec<Certificate>,
    subject_email: Option<String>,
    subject_hostname: Option<String>,
}

impl PkiTrustRoot {
    /// A trust root from the roots' PEM (`caRootsPath|Data`), the intermediates' PEM
    /// (`caIntermediatesPath|Data`, if any), and the required email and/or hostname.
    pub fn new(
        roots_pem: &[u8],
        intermediates_pem: Option<&[u8]>,
        subject_email: Option<&str>,
        subject_hostname: Option<&str>,
    ) -> Result<PkiTrustRoot, CertificateVerifyError> {
        let roots = Certificate::pool_from_pem(roots_pem);
        if roots.is_empty() {
            return Err(CertificateVerifyError::NoPkiRoots);
        }
        let intermediates = match intermediates_pem {
            None => Vec::new(),
            Some(p) => Certificate::all_from_pem(p)
                .map_err(CertificateVerifyError::TrustedIntermediates)?,
        };
        let subject_email = subject_email.filter(|s| !s.is_empty()).map(str::to_string);
        let subject_hostname = subject_hostname
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if subject_email.is_none() && subject_hostname.is_none() {
            return Err(CertificateVerifyError::Inconsistent(
                "PKI use set up without subject email or subject hostname",
            ));
        }
        Ok(PkiTrustRoot {
            roots,
            intermediates,
            subject_email,
            subject_hostname,
        })
    }
}

/// A PKI certificate is checked at the time given (containers/image uses the current time).
impl CertificateTrust for PkiTrustRoot {
    fn verify_leaf_at(
        &self,
        time: i64,
        leaf: &Certificate,
        extra_intermediates: &[Certificate],
    ) -> Result<PublicKey, CertificateVerifyError> {
        let mut intermediates = self.intermediates.clone();
        intermediates.extend_from_slice(extra_intermediates);
        leaf.verify_chain(&intermediates, &self.roots, time)
            .map_err(CertificateVerifyError::Verify)?;
        if let Some(email) = &self.subject_email
            && !leaf.emails().contains(email)
        {
            return Err(CertificateVerifyError::EmailNotFound {
                wanted: email.clone(),
                got: leaf.emails().to_vec(),
            });
        }
        if let Some(host) = &self.subject_hostname {
            verify_hostname(leaf, host).map_err(CertificateVerifyError::Hostname)?;
        }
        leaf.public_key()
            .cloned()
            .map_err(CertificateVerifyError::PublicKey)
    }
}

/// Go's `Certificate.VerifyHostname`: an IP address matches the SAN IP addresses; a name
/// matches a SAN DNS name case-insensitively, `*.` matching exactly one leftmost label.
pub fn verify_hostname(cert: &Certificate, host: &str) -> Result<(), String> {
    let candidate = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = candidate.parse::<IpAddr>() {
        // IP addresses match only IP SANs.
        if cert.ip_addresses().contains(&ip) {
            return Ok(());
        }
        if cert.ip_addresses().is_empty() {
            return Err(format!(
                "x509: cannot validate certificate for {candidate} because it doesn't contain any IP SANs"
            ));
        }
        let valid: Vec<String> = cert
            .ip_addresses()
            .iter()
            .map(ToString::to_string)
            .collect();
        return Err(format!(
            "x509: certificate is valid for {}, not {candidate}",
            valid.join(", ")
        ));
    }
    let wanted = host.trim_end_matches('.').to_ascii_lowercase();
    let matches = |pattern: &str| {
        let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
        if pattern.is_empty() || wanted.is_empty() {
            return false;
        }
        let p: Vec<&str> = pattern.split('.').collect();
        let h: Vec<&str> = wanted.split('.').collect();
        p.len() == h.len()
            && p.iter()
                .zip(&h)
                .enumerate()
                .all(|(i, (pl, hl))| (i == 0 && *pl == "*" && h.len() > 2) || pl == hl)
    };
    if cert.dns_names().iter().any(|d| matches(d)) {
        return Ok(());
    }
    if cert.dns_names().is_empty() {
        Err(format!(
            "x509: certificate is not valid for any names, but wanted to match {host}"
        ))
    } else {
        Err(format!(
            "x509: certificate is valid for {}, not {host}",
            cert.dns_names().join(", ")
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::signature::sigstore::{
        BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, SigstoreSignature, verify,
    };

    // Made by real cosign, Fulcio and Rekor: containers/image's fixtures (testdata/README.md).
    const FULCIO_ROOT: &[u8] =
        include_bytes!("../../../testdata/sigstore/golden/fulcio_v1.crt.pem");
    const REKOR_PUB: &[u8] = include_bytes!("../../../testdata/sigstore/golden/rekor.pub");
    const CERT: &[u8] = include_bytes!("../../../testdata/sigstore/golden/rekor-cert");
    const CHAIN: &[u8] = include_bytes!("../../../testdata/sigstore/golden/fulcio-chain");
    const CERT_TIME: i64 = 1670870899;
    const FULCIO_REKOR: &[u8] = include_bytes!(
        "../../../testdata/sigstore/golden/dir-img-cosign-fulcio-rekor-valid.signature-1"
    );
    const PKI_ROOTS: &[u8] = include_bytes!("../../../testdata/sigstore/golden/pki_root_crts.pem");
    const PKI_INTERMEDIATES: &[u8] =
        include_bytes!("../../../testdata/sigstore/golden/pki_intermediate_crts.pem");
    const PKI_CERT: &[u8] = include_bytes!("../../../testdata/sigstore/golden/pki-cert");
    const PKI_CHAIN: &[u8] = include_bytes!("../../../testdata/sigstore/golden/pki-chain");
    const PKI_SIGNED: &[u8] =
        include_bytes!("../../../testdata/sigstore/golden/dir-img-cosign-pki-valid.signature-1");
    const GITHUB: &str = "https://github.com/login/oauth";

    fn fulcio() -> FulcioTrustRoot {
        FulcioTrustRoot::new(FULCIO_ROOT, GITHUB, "mitr@redhat.com").unwrap()
    }

    #[test]
    fn golden_fulcio_signature_verifies_end_to_end() {
        let sig = SigstoreSignature::from_blob(FULCIO_REKOR).unwrap();
        let a = &sig.annotations;
        let rekor = [PublicKey::from_pem(REKOR_PUB).unwrap()];
        let key = verify_rekor_fulcio(
            &rekor,
            &fulcio(),
            a[BUNDLE_ANNOTATION].as_bytes(),
            a[CERTIFICATE_ANNOTATION].as_bytes(),
            Some(a[CHAIN_ANNOTATION].as_bytes()),
            &a[crate::signature::sigstore::SIGNATURE_ANNOTATION],
            &sig.payload,
        )
        .unwrap();
        let v = verify(&sig, &[key]).unwrap();
        assert_eq!(
            v.payload.docker_reference,
            "192.168.64.2:5000/cosign-signed/fulcio-rekor-1"
        );
        // Without the chain there is no path to the root.
        let e = verify_rekor_fulcio(
            &rekor,
            &fulcio(),
            a[BUNDLE_ANNOTATION].as_bytes(),
            a[CERTIFICATE_ANNOTATION].as_bytes(),
            None,
            &a[crate::signature::sigstore::SIGNATURE_ANNOTATION],
            &sig.payload,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "veryfing leaf certificate failed: x509: certificate signed by unknown authority"
        );
    }

    #[test]
    fn golden_fulcio_certificate_and_its_fields() {
        let leaf = &Certificate::all_from_pem(CERT).unwrap()[0];
        assert_eq!(leaf.emails(), ["mitr@redhat.com"]);
        assert_eq!(fulcio_issuer(leaf).unwrap(), GITHUB);
        assert_eq!(
            leaf.public_key().unwrap().algorithm(),
            super::super::KeyAlgorithm::EcdsaP256
        );
        // The leaf lived ten minutes; the SET time falls inside.
        assert_eq!(leaf.not_after() - leaf.not_before(), 600);
        let intermediates = &Certificate::all_from_pem(CHAIN).unwrap()[..1];
        let roots = Certificate::pool_from_pem(FULCIO_ROOT);
        let chain = leaf.verify_chain(intermediates, &roots, CERT_TIME).unwrap();
        assert_eq!(
            chain.iter().map(|c| c.name()).collect::<Vec<_>>(),
            [
                "1b8e6e682db3f15bee3b0cf39bbf513df724a31c",
                "sigstore-intermediate",
                "sigstore"
            ]
        );
        assert!(
            fulcio()
                .verify_certificate_at(CERT_TIME, CERT, Some(CHAIN))
                .is_ok()
        );
    }

    #[test]
    fn fulcio_refusals_name_the_reason() {
        let f = fulcio();
        let at = |t: i64| {
            f.verify_certificate_at(t, CERT, Some(CHAIN))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            at(CERT_TIME + 3600),
            "veryfing leaf certificate failed: x509: certificate has expired or is not yet valid: current time 2022-12-12T19:48:19Z is after 2022-12-12T18:58:18Z"
        );
        assert!(at(0).contains("is before 2022-12-12T18:48:18Z"));
        let other_issuer = FulcioTrustRoot::new(
            FULCIO_ROOT,
            "https://accounts.google.com",
            "mitr@redhat.com",
        )
        .unwrap();
        assert_eq!(
            other_issuer
                .verify_certificate_at(CERT_TIME, CERT, Some(CHAIN))
                .unwrap_err()
                .to_string(),
            "Unexpected Fulcio OIDC issuer \"https://github.com/login/oauth\""
        );
        let other_email = FulcioTrustRoot::new(FULCIO_ROOT, GITHUB, "someone@example.com").unwrap();
        assert_eq!(
            other_email
                .verify_certificate_at(CERT_TIME, CERT, Some(CHAIN))
                .unwrap_err()
                .to_string(),
            "Required email \"someone@example.com\" not found (got [\"mitr@redhat.com\"])"
        );
        // A root that did not issue the chain.
        let wrong_root = FulcioTrustRoot::new(PKI_ROOTS, GITHUB, "mitr@redhat.com").unwrap();
        assert!(matches!(
            wrong_root.verify_certificate_at(CERT_TIME, CERT, Some(CHAIN)),
            Err(CertificateVerifyError::Verify(
                ChainError::UnknownAuthority { .. }
            ))
        ));
        // A tampered leaf signature: the intermediate is found but does not verify it.
        let mut der = Certificate::all_from_pem(CERT).unwrap()[0].der().to_vec();
        let n = der.len();
        der[n - 5] ^= 1;
        let tampered = super::super::pem::encode("CERTIFICATE", &der);
        let e = f
            .verify_certificate_at(CERT_TIME, tampered.as_bytes(), Some(CHAIN))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "veryfing leaf certificate failed: x509: certificate signed by unknown authority (possibly because of \"x509: ECDSA verification failure\" while trying to verify candidate authority certificate \"sigstore-intermediate\")"
        );
        // Annotation problems.
        let two = [CERT, CERT].concat();
        assert_eq!(
            f.verify_certificate_at(CERT_TIME, &two, Some(CHAIN))
                .unwrap_err(),
            CertificateVerifyError::MultipleLeaves
        );
        assert_eq!(
            f.verify_certificate_at(CERT_TIME, b"  ", Some(CHAIN))
                .unwrap_err(),
            CertificateVerifyError::NoLeaf
        );
        assert_eq!(
            f.verify_certificate_at(CERT_TIME, b"junk", Some(CHAIN))
                .unwrap_err()
                .to_string(),
            "parsing leaf certificate: error during PEM decoding"
        );
        assert_eq!(
            f.verify_certificate_at(CERT_TIME, CERT, Some(b"junk"))
                .unwrap_err()
                .to_string(),
            "loading certificate chain: error during PEM decoding"
        );
        // Trust root problems.
        assert_eq!(
            FulcioTrustRoot::new(b"not PEM", GITHUB, "e")
                .unwrap_err()
                .to_string(),
            "error loading Fulcio CA certificates"
        );
        assert!(FulcioTrustRoot::new(FULCIO_ROOT, "", "e").is_err());
        assert!(FulcioTrustRoot::new(FULCIO_ROOT, GITHUB, "").is_err());
    }

    /// The PKI trust of containers/image's golden PKI-signed image (roots, intermediates, the
    /// email and host its certificate names).
    pub(crate) fn golden_pki_root() -> PkiTrustRoot {
        PkiTrustRoot::new(
            PKI_ROOTS,
            Some(PKI_INTERMEDIATES),
            Some("qiwan@redhat.com"),
            Some("myhost.example.com"),
        )
        .unwrap()
    }

    #[test]
    fn golden_pki_signature_verifies() {
        let pki = golden_pki_root();
        // containers/image checks PKI certificates at the current time; these expire in 2052.
        let now = 1_767_225_600; // 2026-01-01
        let sig = SigstoreSignature::from_blob(PKI_SIGNED).unwrap();
        let key = pki
            .verify_certificate_at(
                now,
                sig.annotations[CERTIFICATE_ANNOTATION].as_bytes(),
                sig.annotations.get(CHAIN_ANNOTATION).map(|c| c.as_bytes()),
            )
            .unwrap();
        assert!(verify(&sig, &[key]).is_ok());
        assert!(
            pki.verify_certificate_at(now, PKI_CERT, Some(PKI_CHAIN))
                .is_ok()
        );
        // The chain annotation alone (its last certificate, the root, dropped) is enough.
        let pki_no_intermediates =
            PkiTrustRoot::new(PKI_ROOTS, None, Some("qiwan@redhat.com"), None).unwrap();
        assert!(
            pki_no_intermediates
                .verify_certificate_at(now, PKI_CERT, Some(PKI_CHAIN))
                .is_ok()
        );
        assert!(
            pki_no_intermediates
                .verify_certificate_at(now, PKI_CERT, None)
                .is_err()
        );

        let host = |h: &str| {
            PkiTrustRoot::new(PKI_ROOTS, Some(PKI_INTERMEDIATES), None, Some(h))
                .unwrap()
                .verify_certificate_at(now, PKI_CERT, Some(PKI_CHAIN))
        };
        assert!(host("MyHost.example.com.").is_ok());
        assert_eq!(
            host("other.example.com").unwrap_err().to_string(),
            "Unexpected subject hostname: x509: certificate is valid for myhost.example.com, not other.example.com"
        );
        assert_eq!(
            host("10.0.0.1").unwrap_err().to_string(),
            "Unexpected subject hostname: x509: cannot validate certificate for 10.0.0.1 because it doesn't contain any IP SANs"
        );
        let email = PkiTrustRoot::new(PKI_ROOTS, Some(PKI_INTERMEDIATES), Some("x@y"), None)
            .unwrap()
            .verify_certificate_at(now, PKI_CERT, Some(PKI_CHAIN))
            .unwrap_err();
        assert_eq!(
            email.to_string(),
            "Required email \"x@y\" not found (got [\"qiwan@redhat.com\"])"
        );
        assert_eq!(
            PkiTrustRoot::new(b"", None, Some("e"), None)
                .unwrap_err()
                .to_string(),
            "error loading PKI CA Roots certificates"
        );
        assert!(PkiTrustRoot::new(PKI_ROOTS, None, None, Some("")).is_err());
    }
}
