//! Public keys for sigstore signatures, and verifying a signature with one.
//!
//! What containers/image accepts (`cryptoutils.UnmarshalPEMToPublicKey` and
//! `signature.LoadVerifier(key, crypto.SHA256)` from sigstore/sigstore):
//! - the **first** PEM block of the file; later blocks are ignored ([`PublicKey::from_pem`];
//!   [`PublicKey::from_pem_all`] reads them all, for a caller that wants to warn);
//! - labelled `PUBLIC KEY` (an X.509 SubjectPublicKeyInfo) or `RSA PUBLIC KEY` (PKCS#1);
//! - ECDSA on P-256, P-384 or P-521, RSA, or Ed25519.
//!
//! Verification hashes the payload with **SHA-256 for every key type**: containers/image
//! hard-codes it (`sigstoreHarcodedHashAlgorithm`). For P-384 and P-521 that is the SHA-256
//! digest used as the ECDSA message representative (cosign 2 signs with P-384 and SHA-384, which
//! containers/image, and so ferry, do not accept); RSA is PKCS #1 v1.5 with SHA-256; Ed25519 is
//! pure Ed25519 over the payload (not Ed25519ph, which cosign 2 uses by default). ECDSA
//! signatures are ASN.1 DER, or, when they do not parse as that, IEEE P1363 `r || s`.
//!
//! A key's identifier ([`PublicKey::id`]) is the lowercase hex SHA-256 of its SubjectPublicKeyInfo
//! DER (re-encoded in canonical form, so a PKCS#1 file and an SPKI file of the same RSA key have
//! the same identifier). It is what `openssl pkey -pubin -in KEY.pub -outform DER | sha256sum`
//! prints, and for a Rekor key it equals the log ID.

use std::fmt;

use der::asn1::{AnyRef, BitString, Null, ObjectIdentifier};
use der::{Decode, Encode};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::Digest as _;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};

use super::pem;

/// `id-ecPublicKey`.
pub(crate) const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// `rsaEncryption`.
pub(crate) const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-Ed25519`.
pub(crate) const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// `secp256r1`.
pub(crate) const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// `secp384r1`.
pub(crate) const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// `secp521r1`.
pub(crate) const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

/// The DigestInfo prefix of a SHA-256 hash in a PKCS #1 v1.5 signature (RFC 8017 §9.2).
pub(crate) const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// The DigestInfo prefix of a SHA-384 hash.
const SHA384_DIGEST_INFO: [u8; 19] = [
    0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05,
    0x00, 0x04, 0x30,
];
/// The DigestInfo prefix of a SHA-512 hash.
const SHA512_DIGEST_INFO: [u8; 19] = [
    0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05,
    0x00, 0x04, 0x40,
];

/// A hash used in a certificate signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertHash {
    Sha256,
    Sha384,
    Sha512,
}

impl CertHash {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            CertHash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            CertHash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            CertHash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// A certificate signature algorithm ferry can check (what Go's x509 accepts, less RSA-PSS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertSignatureAlgorithm {
    Ecdsa(CertHash),
    RsaPkcs1(CertHash),
    Ed25519,
}

/// The smallest RSA modulus ferry accepts, as Go (1.24+) does.
pub const MIN_RSA_BITS: usize = 1024;
/// The largest RSA modulus ferry accepts.
pub const MAX_RSA_BITS: usize = 16384;

/// The kind of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 (what cosign and containers/image generate).
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// ECDSA on NIST P-521.
    EcdsaP521,
    /// RSA with a modulus of this many bits.
    Rsa {
        /// The modulus size.
        bits: usize,
    },
    /// Ed25519.
    Ed25519,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyAlgorithm::EcdsaP256 => f.write_str("ECDSA P-256"),
            KeyAlgorithm::EcdsaP384 => f.write_str("ECDSA P-384"),
            KeyAlgorithm::EcdsaP521 => f.write_str("ECDSA P-521"),
            KeyAlgorithm::Rsa { bits } => write!(f, "RSA {bits}"),
            KeyAlgorithm::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// Why a public key file or key could not be used. Where containers/image has a message, its
/// text is kept so that people searching for it find ferry's too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No PEM block in the file.
    #[error("PEM decoding failed: not a PEM file")]
    NotPem,
    /// The first PEM block is not a public key.
    #[error(
        "unknown Public key PEM file type: {label}. Are you passing the correct public key?{}",
        private_key_hint(label)
    )]
    NotAPublicKey {
        /// The block's label.
        label: String,
    },
    /// The DER inside the block is not a SubjectPublicKeyInfo (or PKCS #1 RSA public key).
    #[error("invalid public key: {0}")]
    Malformed(String),
    /// A key algorithm sigstore signatures cannot use.
    #[error("unsupported key type (OID {oid}{})", name.map(|n| format!(", {n}")).unwrap_or_default())]
    UnsupportedAlgorithm {
        /// The algorithm OID.
        oid: String,
        /// Its common name, when ferry knows it.
        name: Option<&'static str>,
    },
    /// An ECDSA key on a curve other than P-256, P-384 and P-521.
    #[error("x509: unsupported elliptic curve (OID {0})")]
    UnsupportedCurve(String),
    /// The ECDSA point is not an uncompressed point on the curve.
    #[error("x509: failed to unmarshal elliptic curve point")]
    InvalidPoint,
    /// An RSA key that is too small, too large, or has a bad exponent.
    #[error("unsupported RSA key: {0}")]
    Rsa(String),
    /// The Ed25519 key is not 32 bytes or not a valid point.
    #[error("x509: invalid Ed25519 public key")]
    InvalidEd25519,
}

fn private_key_hint(label: &str) -> &'static str {
    if label.contains("PRIVATE KEY") {
        " (this is a private key: use the public key, the .pub file)"
    } else if label == "CERTIFICATE" {
        " (this is a certificate, not a public key)"
    } else {
        ""
    }
}

/// Why a signature did not verify with a key. The messages are sigstore/sigstore's (what
/// containers/image reports after "cryptographic signature verification failed: ").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureMismatch {
    /// An ECDSA signature in ASN.1 form that does not verify.
    #[error("invalid signature when validating ASN.1 encoded signature")]
    EcdsaAsn1,
    /// An ECDSA signature in IEEE P1363 form that does not verify.
    #[error("invalid signature when validating IEEE_P1363 encoded signature")]
    EcdsaP1363,
    /// Neither ASN.1 nor a plausible IEEE P1363 length.
    #[error("ecdsa: Invalid IEEE_P1363 encoded bytes")]
    EcdsaP1363Length,
    /// An RSA signature that does not verify.
    #[error("crypto/rsa: verification error")]
    Rsa,
    /// An Ed25519 signature that does not verify.
    #[error("failed to verify signature")]
    Ed25519,
}

#[derive(Clone)]
enum Key {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A public key that verifies sigstore signatures.
#[derive(Clone)]
pub struct PublicKey {
    key: Key,
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
    id: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.algorithm, self.id)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &PublicKey) -> bool {
        self.spki == other.spki
    }
}

impl Eq for PublicKey {}

fn malformed(e: impl fmt::Display) -> KeyError {
    KeyError::Malformed(e.to_string())
}

/// A SubjectPublicKeyInfo in DER, as Go's `x509.MarshalPKIXPublicKey` writes it.
pub(crate) fn spki_der(
    oid: ObjectIdentifier,
    parameters: Option<der::Any>,
    key: &[u8],
) -> Result<Vec<u8>, der::Error> {
    SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned { oid, parameters },
        subject_public_key: BitString::from_bytes(key)?,
    }
    .to_der()
}

fn curve_params(oid: ObjectIdentifier) -> Result<der::Any, der::Error> {
    der::Any::encode_from(&oid)
}

impl PublicKey {
    /// Reads the first PEM block of a key file, as containers/image does; other blocks are
    /// ignored.
    pub fn from_pem(pem_bytes: &[u8]) -> Result<PublicKey, KeyError> {
        let (block, _) = pem::decode(pem_bytes).ok_or(KeyError::NotPem)?;
        Self::from_block(&block)
    }

    /// Reads every PEM block of a key file (containers/image reads only the first).
    pub fn from_pem_all(pem_bytes: &[u8]) -> Result<Vec<PublicKey>, KeyError> {
        let blocks = pem::decode_all(pem_bytes);
        if blocks.is_empty() {
            return Err(KeyError::NotPem);
        }
        blocks.iter().map(Self::from_block).collect()
    }

    fn from_block(block: &pem::Block) -> Result<PublicKey, KeyError> {
        match block.label.as_str() {
            "PUBLIC KEY" => Self::from_spki_der(&block.der),
            "RSA PUBLIC KEY" => Self::from_pkcs1_der(&block.der),
            other => Err(KeyError::NotAPublicKey {
                label: other.to_string(),
            }),
        }
    }

    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der_bytes: &[u8]) -> Result<PublicKey, KeyError> {
        let spki = SubjectPublicKeyInfoRef::from_der(der_bytes).map_err(malformed)?;
        let oid = spki.algorithm.oid;
        let params = spki.algorithm.parameters;
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| malformed("the key bit string has unused bits"))?;
        if oid == OID_EC {
            let curve = params
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or_else(|| {
                    malformed("x509: failed to parse ECDSA parameters as named curve")
                })?;
            Self::from_ec_point(curve, bits)
        } else if oid == OID_RSA {
            if params != Some(AnyRef::from(Null)) {
                return Err(malformed("x509: RSA key missing NULL parameters"));
            }
            Self::from_pkcs1_der(bits)
        } else if oid == OID_ED25519 {
            if params.is_some() {
                return Err(malformed(
                    "x509: Ed25519 key encoded with illegal parameters",
                ));
            }
            Self::from_ed25519_bytes(bits)
        } else {
            let name = match oid.to_string().as_str() {
                "1.2.840.10040.4.1" => Some("DSA"),
                "1.3.101.110" => Some("X25519"),
                "1.3.101.111" => Some("X448"),
                "1.3.101.113" => Some("Ed448"),
                "1.2.840.113549.1.1.10" => Some("RSASSA-PSS"),
                _ => None,
            };
            Err(KeyError::UnsupportedAlgorithm {
                oid: oid.to_string(),
                name,
            })
        }
    }

    fn from_ec_point(curve: ObjectIdentifier, point: &[u8]) -> Result<PublicKey, KeyError> {
        // Go's x509 takes only uncompressed points (elliptic.Unmarshal).
        let field = match curve {
            c if c == OID_P256 => 32,
            c if c == OID_P384 => 48,
            c if c == OID_P521 => 66,
            other => return Err(KeyError::UnsupportedCurve(other.to_string())),
        };
        if point.len() != 1 + 2 * field || point.first() != Some(&4) {
            return Err(KeyError::InvalidPoint);
        }
        let (key, algorithm) = match field {
            32 => (
                Key::P256(
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                        .map_err(|_| KeyError::InvalidPoint)?,
                ),
                KeyAlgorithm::EcdsaP256,
            ),
            48 => (
                Key::P384(
                    p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                        .map_err(|_| KeyError::InvalidPoint)?,
                ),
                KeyAlgorithm::EcdsaP384,
            ),
            _ => (
                Key::P521(
                    p521::ecdsa::VerifyingKey::from_sec1_bytes(point)
                        .map_err(|_| KeyError::InvalidPoint)?,
                ),
                KeyAlgorithm::EcdsaP521,
            ),
        };
        let spki = spki_der(OID_EC, Some(curve_params(curve).map_err(malformed)?), point)
            .map_err(malformed)?;
        Ok(Self::new(key, algorithm, spki))
    }

    /// Reads a DER PKCS #1 RSAPublicKey.
    pub fn from_pkcs1_der(der_bytes: &[u8]) -> Result<PublicKey, KeyError> {
        let k = pkcs1::RsaPublicKey::from_der(der_bytes).map_err(malformed)?;
        let n = rsa::BigUint::from_bytes_be(k.modulus.as_bytes());
        let e = rsa::BigUint::from_bytes_be(k.public_exponent.as_bytes());
        Self::from_rsa(
            rsa::RsaPublicKey::new_with_max_size(n, e, MAX_RSA_BITS)
                .map_err(|e| KeyError::Rsa(e.to_string()))?,
        )
    }

    pub(crate) fn from_rsa(key: rsa::RsaPublicKey) -> Result<PublicKey, KeyError> {
        use rsa::traits::PublicKeyParts;
        let bits = key.n().bits();
        if bits < MIN_RSA_BITS {
            return Err(KeyError::Rsa(format!(
                "a {bits}-bit modulus is too small (at least {MIN_RSA_BITS} bits)"
            )));
        }
        let n = key.n().to_bytes_be();
        let e = key.e().to_bytes_be();
        let pkcs1 = pkcs1::RsaPublicKey {
            modulus: pkcs1::UintRef::new(&n).map_err(malformed)?,
            public_exponent: pkcs1::UintRef::new(&e).map_err(malformed)?,
        }
        .to_der()
        .map_err(malformed)?;
        let spki = spki_der(OID_RSA, Some(der::Any::from(Null)), &pkcs1).map_err(malformed)?;
        Ok(Self::new(Key::Rsa(key), KeyAlgorithm::Rsa { bits }, spki))
    }

    fn from_ed25519_bytes(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        let raw: [u8; 32] = bytes.try_into().map_err(|_| KeyError::InvalidEd25519)?;
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|_| KeyError::InvalidEd25519)?;
        let spki = spki_der(OID_ED25519, None, &raw).map_err(malformed)?;
        Ok(Self::new(Key::Ed25519(key), KeyAlgorithm::Ed25519, spki))
    }

    pub(crate) fn from_p256(key: p256::ecdsa::VerifyingKey) -> Result<PublicKey, KeyError> {
        Self::from_ec_point(OID_P256, key.to_encoded_point(false).as_bytes())
    }

    pub(crate) fn from_p384(key: p384::ecdsa::VerifyingKey) -> Result<PublicKey, KeyError> {
        Self::from_ec_point(OID_P384, key.to_encoded_point(false).as_bytes())
    }

    pub(crate) fn from_p521(key: p521::ecdsa::VerifyingKey) -> Result<PublicKey, KeyError> {
        Self::from_ec_point(OID_P521, key.to_encoded_point(false).as_bytes())
    }

    pub(crate) fn from_ed25519(key: ed25519_dalek::VerifyingKey) -> Result<PublicKey, KeyError> {
        Self::from_ed25519_bytes(key.as_bytes())
    }

    fn new(key: Key, algorithm: KeyAlgorithm, spki: Vec<u8>) -> PublicKey {
        let id = hex::encode(sha2::Sha256::digest(&spki));
        PublicKey {
            key,
            algorithm,
            spki,
            id,
        }
    }

    /// The kind of key.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The identifier for messages: lowercase hex SHA-256 of the SubjectPublicKeyInfo DER.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as a DER SubjectPublicKeyInfo, in canonical form.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// The key as a `PUBLIC KEY` PEM block, as cosign and containers/image write `.pub` files.
    pub fn to_pem(&self) -> String {
        pem::encode("PUBLIC KEY", &self.spki)
    }

    /// Whether this is an ECDSA key (Rekor keys must be).
    pub fn is_ecdsa(&self) -> bool {
        matches!(self.key, Key::P256(_) | Key::P384(_) | Key::P521(_))
    }

    /// Go's `ecdsa.VerifyASN1(key, digest, signature)`: strict DER only, `digest` used as is
    /// (left-aligned and truncated to the curve's size as Go does). False for non-ECDSA keys.
    pub(crate) fn verify_ecdsa_asn1_digest(&self, digest: &[u8], signature: &[u8]) -> bool {
        fn prehash(digest: &[u8], field: usize) -> Vec<u8> {
            match digest.get(..field) {
                Some(d) => d.to_vec(),
                None => {
                    let mut v = vec![0u8; field];
                    right_align(&mut v, digest);
                    v
                }
            }
        }
        match &self.key {
            Key::P256(k) => P256::verify_der(k, &prehash(digest, P256::FIELD), signature),
            Key::P384(k) => P384::verify_der(k, &prehash(digest, P384::FIELD), signature),
            // P-521's order has 521 bits: Go keeps the leftmost 521 bits of a longer digest,
            // which no digest ferry uses (at most 512 bits) reaches.
            Key::P521(k) => P521::verify_der(k, &prehash(digest, P521::FIELD), signature),
            _ => false,
        }
    }

    /// Checks a certificate's signature made by this key, as Go's `checkSignature`: the
    /// algorithm must fit the key type. The error text is Go's.
    pub(crate) fn verify_certificate_signature(
        &self,
        algorithm: CertSignatureAlgorithm,
        tbs: &[u8],
        signature: &[u8],
    ) -> Result<(), String> {
        match (algorithm, &self.key) {
            (CertSignatureAlgorithm::Ecdsa(h), Key::P256(_) | Key::P384(_) | Key::P521(_)) => {
                if self.verify_ecdsa_asn1_digest(&h.digest(tbs), signature) {
                    Ok(())
                } else {
                    Err("x509: ECDSA verification failure".to_string())
                }
            }
            (CertSignatureAlgorithm::RsaPkcs1(h), Key::Rsa(k)) => {
                let prefix: &[u8] = match h {
                    CertHash::Sha256 => &SHA256_DIGEST_INFO,
                    CertHash::Sha384 => &SHA384_DIGEST_INFO,
                    CertHash::Sha512 => &SHA512_DIGEST_INFO,
                };
                let digest = h.digest(tbs);
                let scheme = rsa::Pkcs1v15Sign {
                    hash_len: Some(digest.len()),
                    prefix: prefix.into(),
                };
                k.verify(scheme, &digest, signature)
                    .map_err(|_| "crypto/rsa: verification error".to_string())
            }
            (CertSignatureAlgorithm::Ed25519, Key::Ed25519(k)) => {
                let sig = ed25519_dalek::Signature::from_slice(signature)
                    .map_err(|_| "x509: Ed25519 verification failure".to_string())?;
                ed25519_dalek::Verifier::verify(k, tbs, &sig)
                    .map_err(|_| "x509: Ed25519 verification failure".to_string())
            }
            _ => Err(format!(
                "x509: signature algorithm specifies an {} public key, but have public key of type {}",
                match algorithm {
                    CertSignatureAlgorithm::Ecdsa(_) => "ECDSA",
                    CertSignatureAlgorithm::RsaPkcs1(_) => "RSA",
                    CertSignatureAlgorithm::Ed25519 => "Ed25519",
                },
                self.algorithm
            )),
        }
    }

    /// Checks that `signature` was made over `payload` by this key, hashing with SHA-256 as
    /// containers/image does for every key type.
    pub fn verify(&self, payload: &[u8], signature: &[u8]) -> Result<(), SignatureMismatch> {
        let digest: [u8; 32] = sha2::Sha256::digest(payload).into();
        match &self.key {
            Key::P256(k) => verify_ecdsa::<P256>(k, &digest, signature),
            Key::P384(k) => verify_ecdsa::<P384>(k, &digest, signature),
            Key::P521(k) => verify_ecdsa::<P521>(k, &digest, signature),
            Key::Rsa(k) => {
                let scheme = rsa::Pkcs1v15Sign {
                    hash_len: Some(32),
                    prefix: SHA256_DIGEST_INFO.into(),
                };
                k.verify(scheme, &digest, signature)
                    .map_err(|_| SignatureMismatch::Rsa)
            }
            Key::Ed25519(k) => {
                let sig = ed25519_dalek::Signature::from_slice(signature)
                    .map_err(|_| SignatureMismatch::Ed25519)?;
                // Go's ed25519.Verify: cofactorless, canonical S required, as dalek's `verify`.
                ed25519_dalek::Verifier::verify(k, payload, &sig)
                    .map_err(|_| SignatureMismatch::Ed25519)
            }
        }
    }
}

impl PublicKey {
    /// Checks a signature in a sigstore bundle over `message` the way sigstore-go's default
    /// verifier for the key does (not containers/image's SHA-256-for-every-key rule): ECDSA
    /// P-256, P-384 and P-521 with SHA-256, SHA-384 and SHA-512, RSA PKCS#1 v1.5 with SHA-256,
    /// Ed25519 over the message itself.
    pub fn verify_bundle_message(
        &self,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureMismatch> {
        match &self.key {
            Key::P256(k) => verify_ecdsa::<P256>(k, &sha2::Sha256::digest(message), signature),
            Key::P384(k) => verify_ecdsa::<P384>(k, &sha2::Sha384::digest(message), signature),
            Key::P521(k) => verify_ecdsa::<P521>(k, &sha2::Sha512::digest(message), signature),
            Key::Rsa(_) | Key::Ed25519(_) => self.verify(message, signature),
        }
    }

    /// Checks a bundle's message signature made over a message whose SHA-256 is `digest`
    /// (sigstore signs the digest it records; `message`, the bytes themselves, is needed only
    /// by Ed25519, which signs messages and not digests).
    pub fn verify_bundle_sha256(
        &self,
        digest: &[u8; 32],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureMismatch> {
        match &self.key {
            Key::P256(k) => verify_ecdsa::<P256>(k, digest, signature),
            Key::P384(k) => verify_ecdsa::<P384>(k, digest, signature),
            Key::P521(k) => verify_ecdsa::<P521>(k, digest, signature),
            Key::Rsa(_) | Key::Ed25519(_) => self.verify(message, signature),
        }
    }
}

/// The per-curve operations ECDSA verification needs.
trait Curve {
    type Key;
    /// Bytes of a field element (and of `r` and `s` in IEEE P1363 form).
    const FIELD: usize;
    fn verify_der(key: &Self::Key, prehash: &[u8], der: &[u8]) -> bool;
    fn verify_fixed(key: &Self::Key, prehash: &[u8], rs: &[u8]) -> bool;
}

macro_rules! curve {
    ($name:ident, $krate:ident, $field:expr) => {
        struct $name;
        impl Curve for $name {
            type Key = $krate::ecdsa::VerifyingKey;
            const FIELD: usize = $field;
            fn verify_der(key: &Self::Key, prehash: &[u8], der: &[u8]) -> bool {
                $krate::ecdsa::Signature::from_der(der)
                    .is_ok_and(|s| key.verify_prehash(prehash, &s).is_ok())
            }
            fn verify_fixed(key: &Self::Key, prehash: &[u8], rs: &[u8]) -> bool {
                $krate::ecdsa::Signature::from_slice(rs)
                    .is_ok_and(|s| key.verify_prehash(prehash, &s).is_ok())
            }
        }
    };
}

curve!(P256, p256, 32);
curve!(P384, p384, 48);
curve!(P521, p521, 66);

/// sigstore/sigstore's ECDSAVerifier: ASN.1 if the signature parses as a SEQUENCE of two
/// INTEGERs (Go's lenient `asn1.Unmarshal`), then verified strictly; otherwise IEEE P1363.
fn verify_ecdsa<C: Curve>(
    key: &C::Key,
    digest: &[u8],
    signature: &[u8],
) -> Result<(), SignatureMismatch> {
    // Go uses the digest as the integer it is, whatever the curve's size: left-padding it to
    // the field size gives RustCrypto the same integer (no digest used here is longer than
    // the field).
    let mut prehash = vec![0u8; C::FIELD];
    right_align(&mut prehash, digest.get(..C::FIELD).unwrap_or(digest));
    if looks_like_asn1_signature(signature) {
        return if C::verify_der(key, &prehash, signature) {
            Ok(())
        } else {
            Err(SignatureMismatch::EcdsaAsn1)
        };
    }
    if signature.is_empty() || signature.len() > 132 || !signature.len().is_multiple_of(2) {
        return Err(SignatureMismatch::EcdsaP1363Length);
    }
    let (r, s) = signature.split_at(signature.len() / 2);
    let mut rs = vec![0u8; 2 * C::FIELD];
    for (half, out) in [r, s].into_iter().zip(rs.chunks_mut(C::FIELD)) {
        let start = half.iter().position(|&b| b != 0).unwrap_or(half.len());
        let digits = half.get(start..).unwrap_or_default();
        if digits.len() > C::FIELD {
            // Larger than the group order: Go's ecdsa.Verify says no.
            return Err(SignatureMismatch::EcdsaP1363);
        }
        right_align(out, digits);
    }
    if C::verify_fixed(key, &prehash, &rs) {
        Ok(())
    } else {
        Err(SignatureMismatch::EcdsaP1363)
    }
}

/// One DER tag-length-value with Go's `encoding/asn1` length rules: the tag byte, the contents,
/// and what follows.
pub(crate) fn tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    // High-tag-number form never appears in a signature; treat it as "not ASN.1".
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.first() == Some(&0) {
            return None;
        }
        let (len_bytes, rest) = rest.split_at_checked(n)?;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        // DER: the long form only for lengths that need it.
        if len < 0x80 {
            return None;
        }
        (len, rest)
    };
    let (content, after) = rest.split_at_checked(len)?;
    Some((tag, content, after))
}

/// Copies `src` into the end of `dst` (left-padding with what `dst` holds), as a big-endian
/// integer is widened; a `src` longer than `dst` keeps its last `dst.len()` bytes.
fn right_align(dst: &mut [u8], src: &[u8]) {
    let skip = src.len().saturating_sub(dst.len());
    let src = src.get(skip..).unwrap_or_default();
    let at = dst.len() - src.len();
    if let Some(tail) = dst.get_mut(at..) {
        tail.copy_from_slice(src);
    }
}

fn minimal_integer(content: &[u8]) -> bool {
    match content {
        [] => false,
        [0, b, ..] if b & 0x80 == 0 => false,
        [0xff, b, ..] if b & 0x80 != 0 => false,
        _ => true,
    }
}

/// Whether Go's `asn1.Unmarshal(sig, &struct{R, S *big.Int}{})` succeeds: a SEQUENCE whose
/// first two elements are minimally encoded INTEGERs; extra elements and trailing bytes are
/// allowed there (and then refused by the strict verification).
fn looks_like_asn1_signature(sig: &[u8]) -> bool {
    let Some((0x30, inner, _)) = tlv(sig) else {
        return false;
    };
    let Some((0x02, r, rest)) = tlv(inner) else {
        return false;
    };
    let Some((0x02, s, _)) = tlv(rest) else {
        return false;
    };
    minimal_integer(r) && minimal_integer(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COSIGN_PUB: &[u8] = include_bytes!("../../../testdata/sigstore/golden/cosign.pub");
    const COSIGN2_PUB: &[u8] = include_bytes!("../../../testdata/sigstore/golden/cosign2.pub");

    #[test]
    fn reads_cosign_public_keys() {
        let k = PublicKey::from_pem(COSIGN_PUB).unwrap();
        assert_eq!(k.algorithm(), KeyAlgorithm::EcdsaP256);
        // Re-encoding gives back the file cosign wrote.
        assert_eq!(k.to_pem().as_bytes(), COSIGN_PUB);
        // The identifier is the SHA-256 of the SPKI DER.
        let der = pem::decode(COSIGN_PUB).unwrap().0.der;
        assert_eq!(k.spki_der(), der);
        assert_eq!(k.id(), hex::encode(sha2::Sha256::digest(&der)));
        assert_eq!(k.id().len(), 64);
        let k2 = PublicKey::from_pem(COSIGN2_PUB).unwrap();
        assert_ne!(k.id(), k2.id());
        assert_ne!(k, k2);
        assert!(format!("{k:?}").contains("ECDSA P-256"));
    }

    #[test]
    fn first_block_only_like_containers_image() {
        let both = [COSIGN_PUB, COSIGN2_PUB].concat();
        let first = PublicKey::from_pem(&both).unwrap();
        assert_eq!(first, PublicKey::from_pem(COSIGN_PUB).unwrap());
        let all = PublicKey::from_pem_all(&both).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1], PublicKey::from_pem(COSIGN2_PUB).unwrap());
        // Text around the block is skipped, as Go's pem.Decode does.
        let commented = [b"# release key\n".as_slice(), COSIGN_PUB, b"trailing"].concat();
        assert_eq!(PublicKey::from_pem(&commented).unwrap(), first);
    }

    #[test]
    fn names_what_is_wrong_with_a_key_file() {
        assert_eq!(PublicKey::from_pem(b"garbage"), Err(KeyError::NotPem));
        assert_eq!(
            PublicKey::from_pem(b"garbage").unwrap_err().to_string(),
            "PEM decoding failed: not a PEM file"
        );
        assert_eq!(PublicKey::from_pem_all(b""), Err(KeyError::NotPem));
        let private = pem::encode("ENCRYPTED SIGSTORE PRIVATE KEY", b"x");
        assert_eq!(
            PublicKey::from_pem(private.as_bytes())
                .unwrap_err()
                .to_string(),
            "unknown Public key PEM file type: ENCRYPTED SIGSTORE PRIVATE KEY. Are you passing the correct public key? (this is a private key: use the public key, the .pub file)"
        );
        let cert = pem::encode("CERTIFICATE", b"x");
        assert!(
            PublicKey::from_pem(cert.as_bytes())
                .unwrap_err()
                .to_string()
                .ends_with("(this is a certificate, not a public key)")
        );
        let junk = pem::encode("PUBLIC KEY", b"not DER");
        assert!(matches!(
            PublicKey::from_pem(junk.as_bytes()),
            Err(KeyError::Malformed(_))
        ));
        // X25519 is a key type sigstore signatures cannot use.
        let x25519 = spki_der(ObjectIdentifier::new_unwrap("1.3.101.110"), None, &[9; 32]).unwrap();
        assert_eq!(
            PublicKey::from_spki_der(&x25519).unwrap_err().to_string(),
            "unsupported key type (OID 1.3.101.110, X25519)"
        );
        let unknown = spki_der(ObjectIdentifier::new_unwrap("1.2.3.4"), None, &[1]).unwrap();
        assert_eq!(
            PublicKey::from_spki_der(&unknown).unwrap_err().to_string(),
            "unsupported key type (OID 1.2.3.4)"
        );
        // secp256k1 is not a curve Go's x509 knows.
        let k1 = ObjectIdentifier::new_unwrap("1.3.132.0.10");
        let point = [&[4u8][..], &[1; 64]].concat();
        let spki = spki_der(OID_EC, Some(curve_params(k1).unwrap()), &point).unwrap();
        assert_eq!(
            PublicKey::from_spki_der(&spki).unwrap_err().to_string(),
            "x509: unsupported elliptic curve (OID 1.3.132.0.10)"
        );
        // A compressed point (Go's x509 refuses those) and a point off the curve.
        let k = PublicKey::from_pem(COSIGN_PUB).unwrap();
        let p = p256::ecdsa::VerifyingKey::from_sec1_bytes(&k.spki_der()[26..]).unwrap();
        let compressed = p.to_encoded_point(true);
        let spki = spki_der(
            OID_EC,
            Some(curve_params(OID_P256).unwrap()),
            compressed.as_bytes(),
        )
        .unwrap();
        assert_eq!(PublicKey::from_spki_der(&spki), Err(KeyError::InvalidPoint));
        let mut off = k.spki_der().to_vec();
        let last = off.len() - 1;
        off[last] ^= 1;
        assert_eq!(PublicKey::from_spki_der(&off), Err(KeyError::InvalidPoint));
        // Ed25519 keys have no parameters and 32 bytes.
        let bad = spki_der(OID_ED25519, None, &[1; 31]).unwrap();
        assert_eq!(
            PublicKey::from_spki_der(&bad),
            Err(KeyError::InvalidEd25519)
        );
    }

    #[test]
    fn rsa_in_spki_and_pkcs1_forms_is_one_key() {
        let sk = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 1024).unwrap();
        let spki = PublicKey::from_rsa(sk.to_public_key()).unwrap();
        assert_eq!(spki.algorithm(), KeyAlgorithm::Rsa { bits: 1024 });
        let pkcs1 = SubjectPublicKeyInfoRef::from_der(spki.spki_der())
            .unwrap()
            .subject_public_key
            .raw_bytes()
            .to_vec();
        let from_pkcs1 =
            PublicKey::from_pem(pem::encode("RSA PUBLIC KEY", &pkcs1).as_bytes()).unwrap();
        assert_eq!(from_pkcs1.id(), spki.id());
        assert_eq!(PublicKey::from_pem(spki.to_pem().as_bytes()).unwrap(), spki);
        let small = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 512).unwrap();
        assert!(matches!(
            PublicKey::from_rsa(small.to_public_key()),
            Err(KeyError::Rsa(_))
        ));
    }

    #[test]
    fn ecdsa_signatures_in_both_encodings() {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let sk = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let pk = PublicKey::from_p256(*sk.verifying_key()).unwrap();
        let payload = b"payload";
        let digest = sha2::Sha256::digest(payload);
        let sig: p256::ecdsa::Signature = sk.sign_prehash(&digest).unwrap();
        let der = sig.to_der().as_bytes().to_vec();
        assert_eq!(pk.verify(payload, &der), Ok(()));
        // IEEE P1363 r || s, as some signers write.
        assert_eq!(pk.verify(payload, &sig.to_bytes()), Ok(()));
        assert_eq!(
            pk.verify(b"other", &sig.to_bytes()),
            Err(SignatureMismatch::EcdsaP1363)
        );
        assert_eq!(pk.verify(b"other", &der), Err(SignatureMismatch::EcdsaAsn1));
        // Go's asn1.Unmarshal tolerates trailing bytes; the strict check then refuses them.
        let trailing = [der.as_slice(), &[0]].concat();
        assert_eq!(
            pk.verify(payload, &trailing),
            Err(SignatureMismatch::EcdsaAsn1)
        );
        assert_eq!(
            pk.verify(payload, &[1, 2, 3]),
            Err(SignatureMismatch::EcdsaP1363Length)
        );
        assert_eq!(
            pk.verify(payload, &[]),
            Err(SignatureMismatch::EcdsaP1363Length)
        );
        assert_eq!(
            SignatureMismatch::EcdsaAsn1.to_string(),
            "invalid signature when validating ASN.1 encoded signature"
        );
    }

    #[test]
    fn asn1_probe_follows_go() {
        assert!(looks_like_asn1_signature(&[0x30, 6, 2, 1, 1, 2, 1, 1]));
        // Extra elements in the SEQUENCE and bytes after it are accepted by the probe.
        assert!(looks_like_asn1_signature(&[
            0x30, 9, 2, 1, 1, 2, 1, 1, 2, 1, 1, 0xff
        ]));
        // Non-minimal integers and lengths are not.
        assert!(!looks_like_asn1_signature(&[0x30, 7, 2, 2, 0, 1, 2, 1, 1]));
        assert!(!looks_like_asn1_signature(&[
            0x30, 0x81, 6, 2, 1, 1, 2, 1, 1
        ]));
        assert!(!looks_like_asn1_signature(&[0x30, 3, 2, 1, 1]));
        assert!(!looks_like_asn1_signature(&[0x31, 6, 2, 1, 1, 2, 1, 1]));
    }
}
