//! X.509 certificates as far as sigstore needs them: parsing (x509-cert), the names and
//! extensions that policies match, and chain verification to given roots at a given time with
//! the code-signing extended key usage, following Go's `crypto/x509` `Verify` (what
//! containers/image calls) and its error texts.
//!
//! What Go's `Verify` does that this does not: RSA-PSS and SHA-1 signatures are refused rather
//! than checked (Go refuses SHA-1 too), certificates whose CA certificates carry name
//! constraints or policy extensions are refused rather than evaluated (Fulcio's and
//! sigstore's CAs have none), and AKI/SKI are not used to order candidate issuers (every
//! issuer whose subject matches is tried).

use std::fmt;

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
};

use super::keys::{CertHash, CertSignatureAlgorithm, KeyError, PublicKey, tlv};
use super::pem;

/// `id-kp-codeSigning`.
const EKU_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
/// `anyExtendedKeyUsage`.
const EKU_ANY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");
const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const EXT_SAN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const EXT_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const EXT_NAME_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.30");
const EXT_EKU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const OID_COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// Critical extensions Go's x509 handles (or that only carry information), so they do not
/// make a certificate unusable: key usage, SAN, basic constraints, name constraints (refused
/// separately on CA certificates), EKU, subject and authority key IDs, CRL distribution points,
/// certificate policies, authority information access.
const HANDLED_CRITICAL: [&str; 10] = [
    "2.5.29.15",
    "2.5.29.17",
    "2.5.29.19",
    "2.5.29.30",
    "2.5.29.37",
    "2.5.29.14",
    "2.5.29.35",
    "2.5.29.31",
    "2.5.29.32",
    "1.3.6.1.5.5.7.1.1",
];

/// How many signature checks a chain search may make, as Go's `maxChainSignatureChecks`.
const MAX_SIGNATURE_CHECKS: usize = 100;

/// Why a certificate could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The PEM text has a part that is not a PEM block.
    #[error("error during PEM decoding")]
    Pem,
    /// The DER is not an X.509 certificate, or an extension is malformed.
    #[error("x509: {0}")]
    Malformed(String),
    /// An extension appears twice (Go 1.19+ refuses such certificates).
    #[error("x509: certificate contains duplicate extensions")]
    DuplicateExtension,
}

/// Why a certificate does not chain to a trusted root. The messages are Go's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The leaf has a critical extension nobody here understands.
    #[error("x509: unhandled critical extension")]
    UnhandledCriticalExtension,
    /// The leaf is not valid at the verification time.
    #[error(
        "x509: certificate has expired or is not yet valid: current time {time} is {relation} {bound}"
    )]
    Expired {
        /// The verification time (RFC 3339).
        time: String,
        /// `before` or `after`.
        relation: &'static str,
        /// notBefore or notAfter (RFC 3339).
        bound: String,
    },
    /// No chain to a trusted root; the hint is the first signature problem met on the way.
    #[error("x509: certificate signed by unknown authority{}", hint.as_ref().map(|(e, c)| format!(" (possibly because of {e:?} while trying to verify candidate authority certificate {c:?})")).unwrap_or_default())]
    UnknownAuthority {
        /// The error, and the name of the candidate issuer it came from.
        hint: Option<(String, String)>,
    },
    /// Chains exist, but a certificate in each restricts the extended key usage to something
    /// other than code signing.
    #[error("x509: certificate specifies an incompatible key usage")]
    IncompatibleUsage,
}

/// A parsed X.509 certificate, with what sigstore policies look at.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    tbs: Vec<u8>,
    signature_algorithm: Result<CertSignatureAlgorithm, String>,
    signature: Vec<u8>,
    version3: bool,
    raw_subject: Vec<u8>,
    raw_issuer: Vec<u8>,
    name: String,
    not_before: i64,
    not_after: i64,
    /// `Some(is_ca)` when basicConstraints is present.
    basic_constraints: Option<bool>,
    max_path_len: Option<u8>,
    key_usage: Option<FlagSetBits>,
    eku: Option<Vec<ObjectIdentifier>>,
    emails: Vec<String>,
    dns_names: Vec<String>,
    uris: Vec<String>,
    ip_addresses: Vec<std::net::IpAddr>,
    unhandled_critical: bool,
    has_name_constraints: bool,
    extensions: Vec<(ObjectIdentifier, bool, Vec<u8>)>,
    public_key: Result<PublicKey, KeyError>,
}

#[derive(Clone, Copy)]
struct FlagSetBits {
    cert_sign: bool,
    empty: bool,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Certificate({:?})", self.name)
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Certificate) -> bool {
        self.der == other.der
    }
}

impl Eq for Certificate {}

fn malformed(e: impl fmt::Display) -> CertificateError {
    CertificateError::Malformed(e.to_string())
}

/// The raw DER of the first element of a SEQUENCE's contents (the TBSCertificate).
fn first_element(der_bytes: &[u8]) -> Option<&[u8]> {
    let (_, content, _) = tlv(der_bytes)?;
    let (_, _, rest) = tlv(content)?;
    content.get(..content.len() - rest.len())
}

fn signature_algorithm(oid: &ObjectIdentifier) -> Result<CertSignatureAlgorithm, String> {
    Ok(match oid.to_string().as_str() {
        "1.2.840.10045.4.3.2" => CertSignatureAlgorithm::Ecdsa(CertHash::Sha256),
        "1.2.840.10045.4.3.3" => CertSignatureAlgorithm::Ecdsa(CertHash::Sha384),
        "1.2.840.10045.4.3.4" => CertSignatureAlgorithm::Ecdsa(CertHash::Sha512),
        "1.2.840.113549.1.1.11" => CertSignatureAlgorithm::RsaPkcs1(CertHash::Sha256),
        "1.2.840.113549.1.1.12" => CertSignatureAlgorithm::RsaPkcs1(CertHash::Sha384),
        "1.2.840.113549.1.1.13" => CertSignatureAlgorithm::RsaPkcs1(CertHash::Sha512),
        "1.3.101.112" => CertSignatureAlgorithm::Ed25519,
        "1.2.840.113549.1.1.5" => {
            return Err("x509: cannot verify signature: insecure algorithm SHA1-RSA".into());
        }
        "1.2.840.10045.4.1" => {
            return Err("x509: cannot verify signature: insecure algorithm ECDSA-SHA1".into());
        }
        other => {
            return Err(format!(
                "x509: cannot verify signature: algorithm unimplemented (OID {other})"
            ));
        }
    })
}

fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| unix.to_string())
}

impl Certificate {
    /// Parses one DER certificate.
    pub fn from_der(der_bytes: &[u8]) -> Result<Certificate, CertificateError> {
        let cert = x509_cert::Certificate::from_der(der_bytes).map_err(malformed)?;
        let tbs = first_element(der_bytes)
            .ok_or_else(|| malformed("malformed certificate"))?
            .to_vec();
        let t = &cert.tbs_certificate;
        if t.signature != cert.signature_algorithm {
            return Err(malformed(
                "inner and outer signature algorithm identifiers don't match",
            ));
        }
        let raw_subject = t.subject.to_der().map_err(malformed)?;
        let raw_issuer = t.issuer.to_der().map_err(malformed)?;
        let name = t
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .filter(|a| a.oid == OID_COMMON_NAME)
            .find_map(|a| {
                a.value
                    .decode_as::<der::asn1::Utf8StringRef>()
                    .map(|s| s.as_str().to_string())
                    .or_else(|_| {
                        a.value
                            .decode_as::<der::asn1::PrintableStringRef>()
                            .map(|s| s.as_str().to_string())
                    })
                    .ok()
            })
            .unwrap_or_else(|| {
                // Go names a certificate without a common name by its serial number.
                hex::encode(t.serial_number.as_bytes())
            });
        let mut c = Certificate {
            der: der_bytes.to_vec(),
            tbs,
            signature_algorithm: signature_algorithm(&cert.signature_algorithm.oid),
            signature: cert.signature.raw_bytes().to_vec(),
            version3: t.version == x509_cert::Version::V3,
            raw_subject,
            raw_issuer,
            name,
            not_before: t.validity.not_before.to_unix_duration().as_secs() as i64,
            not_after: t.validity.not_after.to_unix_duration().as_secs() as i64,
            basic_constraints: None,
            max_path_len: None,
            key_usage: None,
            eku: None,
            emails: Vec::new(),
            dns_names: Vec::new(),
            uris: Vec::new(),
            ip_addresses: Vec::new(),
            unhandled_critical: false,
            has_name_constraints: false,
            extensions: Vec::new(),
            public_key: t
                .subject_public_key_info
                .to_der()
                .map_err(|e| KeyError::Malformed(e.to_string()))
                .and_then(|d| PublicKey::from_spki_der(&d)),
        };
        for ext in t.extensions.iter().flatten() {
            let value = ext.extn_value.as_bytes();
            if c.extensions.iter().any(|(oid, _, _)| *oid == ext.extn_id) {
                return Err(CertificateError::DuplicateExtension);
            }
            c.extensions
                .push((ext.extn_id, ext.critical, value.to_vec()));
            if ext.critical && !HANDLED_CRITICAL.contains(&ext.extn_id.to_string().as_str()) {
                c.unhandled_critical = true;
            }
            if ext.extn_id == EXT_BASIC_CONSTRAINTS {
                let bc = BasicConstraints::from_der(value).map_err(malformed)?;
                c.basic_constraints = Some(bc.ca);
                c.max_path_len = bc.path_len_constraint;
            } else if ext.extn_id == EXT_KEY_USAGE {
                let ku = KeyUsage::from_der(value).map_err(malformed)?;
                c.key_usage = Some(FlagSetBits {
                    cert_sign: ku.0.contains(KeyUsages::KeyCertSign),
                    empty: ku.0.is_empty(),
                });
            } else if ext.extn_id == EXT_EKU {
                c.eku = Some(ExtendedKeyUsage::from_der(value).map_err(malformed)?.0);
            } else if ext.extn_id == EXT_NAME_CONSTRAINTS {
                c.has_name_constraints = true;
            } else if ext.extn_id == EXT_SAN {
                let san = SubjectAltName::from_der(value).map_err(malformed)?;
                for name in san.0 {
                    match name {
                        GeneralName::Rfc822Name(s) => c.emails.push(s.to_string()),
                        GeneralName::DnsName(s) => c.dns_names.push(s.to_string()),
                        GeneralName::UniformResourceIdentifier(s) => c.uris.push(s.to_string()),
                        GeneralName::IpAddress(ip) => {
                            let b = ip.as_bytes();
                            if let Ok(v4) = <[u8; 4]>::try_from(b) {
                                c.ip_addresses.push(std::net::IpAddr::from(v4));
                            } else if let Ok(v6) = <[u8; 16]>::try_from(b) {
                                c.ip_addresses.push(std::net::IpAddr::from(v6));
                            } else {
                                return Err(malformed(format!(
                                    "cannot parse IP address of length {}",
                                    b.len()
                                )));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(c)
    }

    /// Every certificate of a PEM text, as sigstore's `cryptoutils.UnmarshalCertificatesFromPEM`
    /// reads leaf and chain annotations: the labels are not checked, and anything that is not a
    /// PEM block (other than leading whitespace) is an error.
    pub fn all_from_pem(pem_bytes: &[u8]) -> Result<Vec<Certificate>, CertificateError> {
        let mut out = Vec::new();
        let mut rest = pem_bytes.trim_ascii();
        while !rest.is_empty() {
            let (block, next) = pem::decode(rest).ok_or(CertificateError::Pem)?;
            out.push(Certificate::from_der(&block.der)?);
            rest = next;
        }
        Ok(out)
    }

    /// The certificates of a CA file, as Go's `CertPool.AppendCertsFromPEM` reads them:
    /// `CERTIFICATE` blocks without headers; other blocks and unparsable certificates are
    /// skipped.
    pub fn pool_from_pem(pem_bytes: &[u8]) -> Vec<Certificate> {
        pem::decode_all(pem_bytes)
            .into_iter()
            .filter(|b| b.label == "CERTIFICATE" && b.headers.is_empty())
            .filter_map(|b| Certificate::from_der(&b.der).ok())
            .collect()
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject's common name, or the hex serial number when it has none (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The subject's public key.
    pub fn public_key(&self) -> Result<&PublicKey, KeyError> {
        self.public_key.as_ref().map_err(Clone::clone)
    }

    /// notBefore, Unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// notAfter, Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// Email addresses in the subject alternative name.
    pub fn emails(&self) -> &[String] {
        &self.emails
    }

    /// DNS names in the subject alternative name.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// URIs in the subject alternative name.
    pub fn uris(&self) -> &[String] {
        &self.uris
    }

    /// IP addresses in the subject alternative name.
    pub fn ip_addresses(&self) -> &[std::net::IpAddr] {
        &self.ip_addresses
    }

    /// Every extension: OID, critical, value (the OCTET STRING's contents), in order.
    pub fn extensions(&self) -> impl Iterator<Item = (&ObjectIdentifier, bool, &[u8])> {
        self.extensions
            .iter()
            .map(|(oid, critical, value)| (oid, *critical, value.as_slice()))
    }

    fn valid_at(&self, time: i64) -> Result<(), ChainError> {
        if time < self.not_before {
            Err(ChainError::Expired {
                time: rfc3339(time),
                relation: "before",
                bound: rfc3339(self.not_before),
            })
        } else if time > self.not_after {
            Err(ChainError::Expired {
                time: rfc3339(time),
                relation: "after",
                bound: rfc3339(self.not_after),
            })
        } else {
            Ok(())
        }
    }

    /// Go's `CheckSignatureFrom`: `parent` may sign certificates and made this one's signature.
    fn signed_by(&self, parent: &Certificate) -> Result<(), String> {
        if (parent.version3 && parent.basic_constraints.is_none())
            || parent.basic_constraints == Some(false)
        {
            return Err(
                "x509: invalid signature: parent certificate cannot sign this kind of certificate"
                    .into(),
            );
        }
        if let Some(ku) = parent.key_usage
            && !ku.empty
            && !ku.cert_sign
        {
            return Err(
                "x509: invalid signature: parent certificate cannot sign this kind of certificate"
                    .into(),
            );
        }
        let key = parent
            .public_key
            .as_ref()
            .map_err(|_| "x509: cannot verify signature: algorithm unimplemented".to_string())?;
        let algorithm = self.signature_algorithm.clone()?;
        key.verify_certificate_signature(algorithm, &self.tbs, &self.signature)
    }

    /// Go's `isValid` for a CA certificate (`root` false: an intermediate) on top of `chain`.
    fn valid_as_issuer(&self, root: bool, chain: &[&Certificate], time: i64) -> bool {
        if self.unhandled_critical || self.has_name_constraints {
            return false;
        }
        if self.valid_at(time).is_err() {
            return false;
        }
        if !root && self.basic_constraints != Some(true) {
            return false;
        }
        if let Some(max) = self.max_path_len
            && self.basic_constraints.is_some()
            && chain.len().saturating_sub(1) > usize::from(max)
        {
            return false;
        }
        true
    }

    /// Verifies that this (leaf) certificate chains to one of `roots`, possibly through
    /// `intermediates`, with every certificate valid at `time` (Unix seconds) and usable for
    /// code signing. Returns the first acceptable chain, leaf first.
    pub fn verify_chain<'a>(
        &'a self,
        intermediates: &'a [Certificate],
        roots: &'a [Certificate],
        time: i64,
    ) -> Result<Vec<&'a Certificate>, ChainError> {
        if self.unhandled_critical {
            return Err(ChainError::UnhandledCriticalExtension);
        }
        self.valid_at(time)?;
        let mut chains = Vec::new();
        if roots.contains(self) {
            chains.push(vec![self]);
        } else {
            let mut search = Search {
                intermediates,
                roots,
                time,
                checks: 0,
                hint: None,
                chains: Vec::new(),
            };
            search.build(vec![self]);
            if search.chains.is_empty() {
                return Err(ChainError::UnknownAuthority { hint: search.hint });
            }
            chains = search.chains;
        }
        chains
            .into_iter()
            .find(|chain| code_signing_allowed(chain))
            .ok_or(ChainError::IncompatibleUsage)
    }
}

/// Go's `checkChainForKeyUsage` with the one usage containers/image asks for.
fn code_signing_allowed(chain: &[&Certificate]) -> bool {
    chain.iter().all(|c| match &c.eku {
        None => true,
        Some(ekus) if ekus.is_empty() => true,
        Some(ekus) => ekus.contains(&EKU_ANY) || ekus.contains(&EKU_CODE_SIGNING),
    })
}

struct Search<'a> {
    intermediates: &'a [Certificate],
    roots: &'a [Certificate],
    time: i64,
    checks: usize,
    hint: Option<(String, String)>,
    chains: Vec<Vec<&'a Certificate>>,
}

impl<'a> Search<'a> {
    /// Go's `buildChains`: roots first, then intermediates, depth first.
    fn build(&mut self, chain: Vec<&'a Certificate>) {
        let Some(&current) = chain.last() else {
            return;
        };
        let candidates = self
            .roots
            .iter()
            .map(|c| (c, true))
            .chain(self.intermediates.iter().map(|c| (c, false)));
        for (candidate, root) in candidates {
            if candidate.raw_subject != current.raw_issuer {
                continue;
            }
            if chain.iter().any(|c| {
                c.raw_subject == candidate.raw_subject && c.public_key == candidate.public_key
            }) {
                continue;
            }
            self.checks += 1;
            if self.checks > MAX_SIGNATURE_CHECKS {
                return;
            }
            if let Err(e) = current.signed_by(candidate) {
                if self.hint.is_none() {
                    self.hint = Some((e, candidate.name.clone()));
                }
                continue;
            }
            if !candidate.valid_as_issuer(root, &chain, self.time) {
                continue;
            }
            let mut next = chain.clone();
            next.push(candidate);
            if root {
                self.chains.push(next);
            } else {
                self.build(next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::sigstore::PrivateKey;
    use crate::signature::sigstore::fulcio::{OID_ISSUER_V1, OID_ISSUER_V2, fulcio_issuer};
    use der::asn1::{BitString, OctetString, UtcTime};
    use std::str::FromStr;
    use std::time::Duration;
    use x509_cert::ext::Extension;
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::time::{Time, Validity};

    const T0: i64 = 1_700_000_000;
    const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
    const SERVER_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");

    fn ext(oid: ObjectIdentifier, critical: bool, value: impl Encode) -> Extension {
        Extension {
            extn_id: oid,
            critical,
            extn_value: OctetString::new(value.to_der().unwrap()).unwrap(),
        }
    }

    fn ca(path_len: Option<u8>) -> Extension {
        ext(
            EXT_BASIC_CONSTRAINTS,
            true,
            BasicConstraints {
                ca: true,
                path_len_constraint: path_len,
            },
        )
    }

    fn eku(oids: Vec<ObjectIdentifier>) -> Extension {
        ext(EXT_EKU, false, ExtendedKeyUsage(oids))
    }

    fn time(t: i64) -> Time {
        Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(t as u64)).unwrap())
    }

    /// The DER of a certificate for `key` named `subject`, issued by `issuer` with
    /// `issuer_key`.
    fn cert_der(
        subject: &str,
        key: &PrivateKey,
        issuer: &str,
        issuer_key: &PrivateKey,
        validity: (i64, i64),
        extensions: Vec<Extension>,
    ) -> Vec<u8> {
        let alg = spki::AlgorithmIdentifierOwned {
            oid: ECDSA_SHA256,
            parameters: None,
        };
        let tbs = x509_cert::TbsCertificate {
            version: x509_cert::Version::V3,
            serial_number: SerialNumber::new(&[1]).unwrap(),
            signature: alg.clone(),
            issuer: Name::from_str(&format!("CN={issuer}")).unwrap(),
            validity: Validity {
                not_before: time(validity.0),
                not_after: time(validity.1),
            },
            subject: Name::from_str(&format!("CN={subject}")).unwrap(),
            subject_public_key_info: spki::SubjectPublicKeyInfoOwned::from_der(
                key.public_key().spki_der(),
            )
            .unwrap(),
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: if extensions.is_empty() {
                None
            } else {
                Some(extensions)
            },
        };
        let signature = issuer_key.sign(&tbs.to_der().unwrap()).unwrap();
        let c = x509_cert::Certificate {
            tbs_certificate: tbs,
            signature_algorithm: alg,
            signature: BitString::from_bytes(&signature).unwrap(),
        };
        c.to_der().unwrap()
    }

    struct Pki {
        root_key: PrivateKey,
        mid_key: PrivateKey,
        leaf_key: PrivateKey,
    }

    impl Pki {
        fn new() -> Pki {
            Pki {
                root_key: PrivateKey::generate().unwrap(),
                mid_key: PrivateKey::generate().unwrap(),
                leaf_key: PrivateKey::generate().unwrap(),
            }
        }
        fn root(&self, exts: Vec<Extension>) -> Certificate {
            let der = cert_der(
                "root",
                &self.root_key,
                "root",
                &self.root_key,
                (T0, T0 + 1000),
                exts,
            );
            Certificate::from_der(&der).unwrap()
        }
        fn mid(&self, validity: (i64, i64), exts: Vec<Extension>) -> Certificate {
            let der = cert_der("mid", &self.mid_key, "root", &self.root_key, validity, exts);
            Certificate::from_der(&der).unwrap()
        }
        fn leaf(&self, exts: Vec<Extension>) -> Certificate {
            let der = cert_der(
                "leaf",
                &self.leaf_key,
                "mid",
                &self.mid_key,
                (T0 + 10, T0 + 20),
                exts,
            );
            Certificate::from_der(&der).unwrap()
        }
    }

    #[test]
    fn chains_like_go() {
        let p = Pki::new();
        let root = p.root(vec![ca(None)]);
        let mid = p.mid((T0, T0 + 1000), vec![ca(None), eku(vec![EKU_CODE_SIGNING])]);
        let leaf = p.leaf(vec![eku(vec![EKU_CODE_SIGNING])]);
        let roots = [root.clone()];
        let chain = leaf
            .verify_chain(std::slice::from_ref(&mid), &roots, T0 + 15)
            .unwrap();
        assert_eq!(
            chain.iter().map(|c| c.name()).collect::<Vec<_>>(),
            ["leaf", "mid", "root"]
        );
        assert_eq!(
            leaf.verify_chain(&[], &roots, T0 + 15),
            Err(ChainError::UnknownAuthority { hint: None })
        );
        // Validity is checked at the given time, for the leaf and its issuers.
        assert!(matches!(
            leaf.verify_chain(std::slice::from_ref(&mid), &roots, T0 + 21),
            Err(ChainError::Expired {
                relation: "after",
                ..
            })
        ));
        let old_mid = p.mid((T0, T0 + 12), vec![ca(None)]);
        assert!(matches!(
            leaf.verify_chain(&[old_mid], &roots, T0 + 15),
            Err(ChainError::UnknownAuthority { .. })
        ));
        // An intermediate must be a CA.
        let not_ca = p.mid((T0, T0 + 1000), vec![]);
        assert_eq!(
            leaf.verify_chain(&[not_ca], &roots, T0 + 15)
                .unwrap_err()
                .to_string(),
            "x509: certificate signed by unknown authority (possibly because of \"x509: invalid signature: parent certificate cannot sign this kind of certificate\" while trying to verify candidate authority certificate \"mid\")"
        );
        // Path length constraints.
        let root0 = p.root(vec![ca(Some(0))]);
        assert!(matches!(
            leaf.verify_chain(std::slice::from_ref(&mid), &[root0], T0 + 15),
            Err(ChainError::UnknownAuthority { .. })
        ));
        // Extended key usage: every certificate that restricts it must allow code signing.
        let server = p.leaf(vec![eku(vec![SERVER_AUTH])]);
        assert_eq!(
            server.verify_chain(std::slice::from_ref(&mid), &roots, T0 + 15),
            Err(ChainError::IncompatibleUsage)
        );
        let server_mid = p.mid((T0, T0 + 1000), vec![ca(None), eku(vec![SERVER_AUTH])]);
        assert_eq!(
            leaf.verify_chain(&[server_mid], &roots, T0 + 15),
            Err(ChainError::IncompatibleUsage)
        );
        let any_mid = p.mid((T0, T0 + 1000), vec![ca(None), eku(vec![EKU_ANY])]);
        assert!(
            p.leaf(vec![])
                .verify_chain(&[any_mid], &roots, T0 + 15)
                .is_ok()
        );
        // Unknown critical extensions.
        let odd = ObjectIdentifier::new_unwrap("1.2.3.4");
        let critical = p.leaf(vec![ext(odd, true, der::asn1::Null)]);
        assert_eq!(
            critical.verify_chain(std::slice::from_ref(&mid), &roots, T0 + 15),
            Err(ChainError::UnhandledCriticalExtension)
        );
        let benign = p.leaf(vec![ext(odd, false, der::asn1::Null)]);
        assert!(
            benign
                .verify_chain(std::slice::from_ref(&mid), &roots, T0 + 15)
                .is_ok()
        );
        // A trusted leaf is its own chain.
        assert!(
            leaf.verify_chain(&[], std::slice::from_ref(&leaf), T0 + 15)
                .is_ok()
        );
    }

    #[test]
    fn refuses_malformed_certificates() {
        let p = Pki::new();
        let dup = cert_der(
            "leaf",
            &p.leaf_key,
            "mid",
            &p.mid_key,
            (T0, T0 + 1),
            vec![eku(vec![EKU_ANY]), eku(vec![EKU_ANY])],
        );
        // x509-cert parses it; ferry refuses it as Go does.
        assert!(x509_cert::Certificate::from_der(&dup).is_ok());
        assert_eq!(
            Certificate::from_der(&dup),
            Err(CertificateError::DuplicateExtension)
        );
        assert!(matches!(
            Certificate::from_der(b"junk"),
            Err(CertificateError::Malformed(_))
        ));
        assert_eq!(
            Certificate::all_from_pem(b"junk"),
            Err(CertificateError::Pem)
        );
        // Pools skip what is not a certificate.
        let text = format!(
            "{}{}",
            pem::encode("PUBLIC KEY", p.leaf_key.public_key().spki_der()),
            pem::encode("CERTIFICATE", p.root(vec![ca(None)]).der())
        );
        assert_eq!(Certificate::pool_from_pem(text.as_bytes()).len(), 1);
    }

    #[test]
    fn fulcio_issuer_extensions() {
        let p = Pki::new();
        let v1 = |s: &str| Extension {
            extn_id: OID_ISSUER_V1,
            critical: false,
            extn_value: OctetString::new(s.as_bytes()).unwrap(),
        };
        let v2 = |s: &str| {
            ext(
                OID_ISSUER_V2,
                false,
                der::asn1::Utf8StringRef::new(s).unwrap(),
            )
        };
        let issuer = |exts| fulcio_issuer(&p.leaf(exts)).map_err(|e| e.to_string());
        assert_eq!(issuer(vec![v1("https://a")]), Ok("https://a".into()));
        assert_eq!(issuer(vec![v2("https://a")]), Ok("https://a".into()));
        assert_eq!(
            issuer(vec![v1("https://a"), v2("https://a")]),
            Ok("https://a".into())
        );
        assert_eq!(
            issuer(vec![v1("https://a"), v2("https://b")]),
            Err(
                "inconsistent OIDC issuer extension values: v1 \"https://a\", v2 \"https://b\""
                    .into()
            )
        );
        assert_eq!(
            issuer(vec![]),
            Err("Fulcio certificate is missing the issuer extension".into())
        );
        let mut trailing = der::asn1::Utf8StringRef::new("x")
            .unwrap()
            .to_der()
            .unwrap();
        trailing.push(0);
        let bad = Extension {
            extn_id: OID_ISSUER_V2,
            critical: false,
            extn_value: OctetString::new(trailing).unwrap(),
        };
        assert_eq!(
            issuer(vec![bad]),
            Err("invalid ASN.1 in OIDC issuer v2 extension, trailing data".into())
        );
    }
}
