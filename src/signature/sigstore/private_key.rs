//! cosign's encrypted private key files, and signing with the key inside.
//!
//! The format (sigstore/cosign `pkg/cosign/keys.go`, secure-systems-lab/go-securesystemslib
//! `encrypted/encrypted.go`): a PEM block labelled `ENCRYPTED SIGSTORE PRIVATE KEY` (cosign 2)
//! or `ENCRYPTED COSIGN PRIVATE KEY` (cosign 1, and what containers/image still writes) around
//! the JSON
//! `{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":B64},
//! "cipher":{"name":"nacl/secretbox","nonce":B64},"ciphertext":B64}`.
//! The key is scrypt of the passphrase with the salt (32 bytes out); the ciphertext is NaCl
//! secretbox (XSalsa20-Poly1305, the tag first) of a PKCS #8 DER private key. Decryption accepts
//! the three scrypt parameter sets go-securesystemslib does (N = 2^15 from older cosign, 2^16
//! today, 2^17); encryption uses N = 2^16 as cosign and containers/image do now.

use std::fmt;

use crypto_secretbox::aead::{Aead, KeyInit};
use der::asn1::{ObjectIdentifier, OctetStringRef};
use der::{Decode, Encode};
use p256::ecdsa::signature::hazmat::{PrehashSigner, RandomizedPrehashSigner};
use pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rand_core::{OsRng, RngCore};
use serde_json::Value;
use sha2::Digest as _;
use zeroize::Zeroizing;

use super::go_compat::{self, json_kind, member};
use super::keys::{
    KeyAlgorithm, KeyError, OID_EC, OID_ED25519, OID_P256, OID_P384, OID_P521, OID_RSA, PublicKey,
    SHA256_DIGEST_INFO,
};
use super::pem;

/// The PEM label cosign 1 wrote, and containers/image (`skopeo generate-sigstore-key`) writes.
pub const COSIGN_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// The PEM label cosign 2 writes.
pub const SIGSTORE_PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";

/// The scrypt parameters (log2 N, r, p) that go-securesystemslib accepts: legacy, standard
/// (written today) and OWASP.
const SCRYPT_PARAMS: [(u8, u32, u32); 3] = [(15, 8, 1), (16, 8, 1), (17, 8, 1)];
/// The parameter set [`PrivateKey::encrypt`] uses.
const SCRYPT_WRITE: (u8, u32, u32) = (16, 8, 1);
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// Which PEM label an encrypted private key gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrivateKeyLabel {
    /// `ENCRYPTED COSIGN PRIVATE KEY`: read by every cosign version; containers/image's choice.
    Cosign,
    /// `ENCRYPTED SIGSTORE PRIVATE KEY`: cosign 2's choice, unreadable by cosign 1.
    Sigstore,
}

impl PrivateKeyLabel {
    /// The PEM label.
    pub fn as_str(self) -> &'static str {
        match self {
            PrivateKeyLabel::Cosign => COSIGN_PRIVATE_KEY_LABEL,
            PrivateKeyLabel::Sigstore => SIGSTORE_PRIVATE_KEY_LABEL,
        }
    }
}

/// Why the encrypted JSON inside the PEM block could not be decrypted. The messages are
/// go-securesystemslib's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// Not JSON, or a member of the wrong type.
    #[error("{0}")]
    Json(String),
    /// A key derivation other than scrypt.
    #[error("encrypted: unknown kdf name {0:?}")]
    UnknownKdf(String),
    /// A cipher other than NaCl secretbox.
    #[error("encrypted: unknown cipher name {0:?}")]
    UnknownCipher(String),
    /// scrypt parameters other than the three accepted sets.
    #[error("unsupported scrypt parameters")]
    ScryptParameters,
    /// A nonce that is not 24 bytes.
    #[error("encrypted: incorrect nonce size")]
    NonceSize,
}

/// Why a private key could not be read, written or used. The messages are cosign's and
/// containers/image's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrivateKeyError {
    /// No PEM block in the file.
    #[error("invalid pem block")]
    NotPem,
    /// A PEM block that is not a cosign encrypted private key.
    #[error("unsupported pem type: {0}")]
    UnsupportedPemType(String),
    /// The encrypted JSON is malformed or uses an unsupported algorithm.
    #[error("decrypt: {0}")]
    Decrypt(DecryptError),
    /// The authentication tag does not match: a wrong passphrase (or a damaged file).
    #[error("decrypt: encrypted: decryption failed (wrong passphrase?)")]
    WrongPassphrase,
    /// The decrypted data is not a PKCS #8 private key.
    #[error("parsing private key: {0}")]
    Parse(String),
    /// A PKCS #8 key of a type sigstore signatures cannot use (e.g. X25519).
    #[error("unsupported key type")]
    UnsupportedKeyType,
    /// The public half could not be derived or encoded.
    #[error("invalid public key: {0}")]
    PublicKey(#[from] KeyError),
    /// The system's random number generator failed.
    #[error("cannot get random bytes: {0}")]
    Random(String),
    /// Encoding or encrypting the key failed.
    #[error("cannot encrypt the private key: {0}")]
    Encrypt(String),
    /// Making the signature failed.
    #[error("creating signature: {0}")]
    Sign(String),
}

#[derive(Clone)]
enum Key {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
    Ed25519(ed25519_dalek::SigningKey),
}

/// A private key that makes sigstore signatures.
#[derive(Clone)]
pub struct PrivateKey {
    key: Key,
    public: PublicKey,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrivateKey({} {})",
            self.public.algorithm(),
            self.public.id()
        )
    }
}

fn parse_err(e: impl fmt::Display) -> PrivateKeyError {
    PrivateKeyError::Parse(e.to_string())
}

fn random(buf: &mut [u8]) -> Result<(), PrivateKeyError> {
    OsRng
        .try_fill_bytes(buf)
        .map_err(|e| PrivateKeyError::Random(e.to_string()))
}

fn type_error(v: &Value, field: &str, go_type: &str) -> DecryptError {
    DecryptError::Json(format!(
        "json: cannot unmarshal {} into Go struct field {field} of type {go_type}",
        json_kind(v)
    ))
}

/// An object member as Go decodes it into a struct: absent or `null` is the empty default.
fn object<'a>(
    obj: &'a serde_json::Map<String, Value>,
    name: &str,
    field: &str,
    go_type: &str,
) -> Result<Option<&'a serde_json::Map<String, Value>>, DecryptError> {
    match member(obj, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(type_error(other, field, go_type)),
    }
}

fn string(
    obj: Option<&serde_json::Map<String, Value>>,
    name: &str,
    field: &str,
) -> Result<String, DecryptError> {
    match obj.and_then(|o| member(o, name)) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(type_error(other, field, "string")),
    }
}

fn bytes(
    obj: Option<&serde_json::Map<String, Value>>,
    name: &str,
    field: &str,
) -> Result<Vec<u8>, DecryptError> {
    let s = string(obj, name, field)?;
    go_compat::base64_decode(s.as_bytes()).map_err(|e| DecryptError::Json(e.to_string()))
}

fn int(
    obj: Option<&serde_json::Map<String, Value>>,
    name: &str,
    field: &str,
) -> Result<i64, DecryptError> {
    match obj.and_then(|o| member(o, name)) {
        None | Some(Value::Null) => Ok(0),
        Some(v @ Value::Number(n)) => n.as_i64().ok_or_else(|| {
            DecryptError::Json(format!(
                "json: cannot unmarshal number {v} into Go struct field {field} of type int"
            ))
        }),
        Some(other) => Err(type_error(other, field, "int")),
    }
}

/// go-securesystemslib's `encrypted.Decrypt`: the PKCS #8 plaintext.
fn decrypt_json(json: &[u8], passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, PrivateKeyError> {
    let dec = PrivateKeyError::Decrypt;
    let v: Value =
        serde_json::from_slice(json).map_err(|e| dec(DecryptError::Json(e.to_string())))?;
    let empty = serde_json::Map::new();
    let top = match &v {
        Value::Object(o) => o,
        Value::Null => &empty,
        other => {
            return Err(dec(DecryptError::Json(format!(
                "json: cannot unmarshal {} into Go value of type encrypted.data",
                json_kind(other)
            ))));
        }
    };
    let kdf = object(top, "kdf", "data.kdf", "encrypted.scryptKDF").map_err(dec)?;
    let params = match kdf {
        Some(k) => object(k, "params", "data.kdf.params", "encrypted.scryptParams").map_err(dec)?,
        None => None,
    };
    let cipher = object(top, "cipher", "data.cipher", "encrypted.secretBoxCipher").map_err(dec)?;
    let kdf_name = string(kdf, "name", "data.kdf.name").map_err(dec)?;
    let salt = bytes(kdf, "salt", "data.kdf.salt").map_err(dec)?;
    let n = int(params, "N", "data.kdf.params.N").map_err(dec)?;
    let r = int(params, "r", "data.kdf.params.r").map_err(dec)?;
    let p = int(params, "p", "data.kdf.params.p").map_err(dec)?;
    let cipher_name = string(cipher, "name", "data.cipher.name").map_err(dec)?;
    let nonce = bytes(cipher, "nonce", "data.cipher.nonce").map_err(dec)?;
    let ciphertext = bytes(Some(top), "ciphertext", "data.ciphertext").map_err(dec)?;

    if kdf_name != "scrypt" {
        return Err(dec(DecryptError::UnknownKdf(kdf_name)));
    }
    if cipher_name != "nacl/secretbox" {
        return Err(dec(DecryptError::UnknownCipher(cipher_name)));
    }
    let Some(&(log_n, r, p)) = SCRYPT_PARAMS
        .iter()
        .find(|(log_n, pr, pp)| (1i64 << log_n, i64::from(*pr), i64::from(*pp)) == (n, r, p))
    else {
        return Err(dec(DecryptError::ScryptParameters));
    };
    let key = scrypt_key(passphrase, &salt, log_n, r, p)?;
    if nonce.len() != NONCE_LEN {
        return Err(dec(DecryptError::NonceSize));
    }
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(key.as_slice().into());
    cipher
        .decrypt(nonce.as_slice().into(), ciphertext.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| PrivateKeyError::WrongPassphrase)
}

fn scrypt_key(
    passphrase: &[u8],
    salt: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
) -> Result<Zeroizing<[u8; 32]>, PrivateKeyError> {
    let params = scrypt::Params::new(log_n, r, p, 32)
        .map_err(|e| PrivateKeyError::Encrypt(e.to_string()))?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(passphrase, salt, &params, key.as_mut_slice())
        .map_err(|e| PrivateKeyError::Encrypt(e.to_string()))?;
    Ok(key)
}

impl PrivateKey {
    /// Reads a cosign encrypted private key file, as cosign's and containers/image's
    /// `loadPrivateKey` do: the first PEM block, which must carry one of the two labels.
    pub fn decrypt(pem_bytes: &[u8], passphrase: &[u8]) -> Result<PrivateKey, PrivateKeyError> {
        let (block, _) = pem::decode(pem_bytes).ok_or(PrivateKeyError::NotPem)?;
        if block.label != COSIGN_PRIVATE_KEY_LABEL && block.label != SIGSTORE_PRIVATE_KEY_LABEL {
            return Err(PrivateKeyError::UnsupportedPemType(block.label));
        }
        let pkcs8 = decrypt_json(&block.der, passphrase)?;
        Self::from_pkcs8_der(&pkcs8)
    }

    /// Reads an unencrypted PKCS #8 DER private key (ECDSA P-256/P-384/P-521, RSA, Ed25519).
    pub fn from_pkcs8_der(der_bytes: &[u8]) -> Result<PrivateKey, PrivateKeyError> {
        let info = match pkcs8::PrivateKeyInfo::from_der(der_bytes) {
            Ok(info) => info,
            Err(e) => {
                // Go's hints for the two other common encodings.
                if sec1::EcPrivateKey::from_der(der_bytes).is_ok() {
                    return Err(parse_err(
                        "x509: failed to parse private key (use ParseECPrivateKey instead for this key format)",
                    ));
                }
                if pkcs1::RsaPrivateKey::from_der(der_bytes).is_ok() {
                    return Err(parse_err(
                        "x509: failed to parse private key (use ParsePKCS1PrivateKey instead for this key format)",
                    ));
                }
                return Err(parse_err(e));
            }
        };
        let oid = info.algorithm.oid;
        let key = if oid == OID_EC {
            let curve = info
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or_else(|| {
                    parse_err("x509: failed to parse ECDSA parameters as named curve")
                })?;
            if curve == OID_P256 {
                let sk = p256::SecretKey::from_pkcs8_der(der_bytes).map_err(parse_err)?;
                Key::P256(sk.into())
            } else if curve == OID_P384 {
                let sk = p384::SecretKey::from_pkcs8_der(der_bytes).map_err(parse_err)?;
                Key::P384(sk.into())
            } else if curve == OID_P521 {
                let sk = p521::SecretKey::from_pkcs8_der(der_bytes).map_err(parse_err)?;
                Key::P521(p521::ecdsa::SigningKey::from_bytes(&sk.to_bytes()).map_err(parse_err)?)
            } else {
                return Err(parse_err(format!(
                    "x509: unsupported elliptic curve (OID {curve})"
                )));
            }
        } else if oid == OID_RSA {
            Key::Rsa(Box::new(
                rsa::RsaPrivateKey::from_pkcs8_der(der_bytes).map_err(parse_err)?,
            ))
        } else if oid == OID_ED25519 {
            let seed = OctetStringRef::from_der(info.private_key).map_err(parse_err)?;
            let seed: [u8; 32] = seed.as_bytes().try_into().map_err(|_| {
                parse_err(format!(
                    "x509: invalid Ed25519 private key length: {}",
                    seed.as_bytes().len()
                ))
            })?;
            Key::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
        } else if oid.to_string() == "1.3.101.110" {
            // X25519: Go parses it, cosign and containers/image refuse it.
            return Err(PrivateKeyError::UnsupportedKeyType);
        } else {
            return Err(parse_err(format!(
                "x509: PKCS#8 wrapping contained private key with unknown algorithm: {oid}"
            )));
        };
        Self::from_key(key)
    }

    fn from_key(key: Key) -> Result<PrivateKey, PrivateKeyError> {
        let public = match &key {
            Key::P256(k) => PublicKey::from_p256(*k.verifying_key())?,
            Key::P384(k) => PublicKey::from_p384(*k.verifying_key())?,
            Key::P521(k) => PublicKey::from_p521(p521::ecdsa::VerifyingKey::from(k))?,
            Key::Rsa(k) => PublicKey::from_rsa(k.to_public_key())?,
            Key::Ed25519(k) => PublicKey::from_ed25519(k.verifying_key())?,
        };
        Ok(PrivateKey { key, public })
    }

    /// A new ECDSA P-256 key, the kind cosign and `skopeo generate-sigstore-key` make.
    pub fn generate() -> Result<PrivateKey, PrivateKeyError> {
        Self::generate_of(KeyAlgorithm::EcdsaP256)
    }

    /// A new key of the given kind.
    pub fn generate_of(algorithm: KeyAlgorithm) -> Result<PrivateKey, PrivateKeyError> {
        let key = match algorithm {
            KeyAlgorithm::EcdsaP256 => {
                let b = random_scalar::<32>(|b| p256::SecretKey::from_slice(b).is_ok())?;
                Key::P256(
                    p256::SecretKey::from_slice(b.as_slice())
                        .map_err(parse_err)?
                        .into(),
                )
            }
            KeyAlgorithm::EcdsaP384 => {
                let b = random_scalar::<48>(|b| p384::SecretKey::from_slice(b).is_ok())?;
                Key::P384(
                    p384::SecretKey::from_slice(b.as_slice())
                        .map_err(parse_err)?
                        .into(),
                )
            }
            KeyAlgorithm::EcdsaP521 => {
                let b = random_scalar::<66>(|b| p521::ecdsa::SigningKey::from_slice(b).is_ok())?;
                Key::P521(p521::ecdsa::SigningKey::from_slice(b.as_slice()).map_err(parse_err)?)
            }
            KeyAlgorithm::Rsa { bits } => {
                if !(super::keys::MIN_RSA_BITS..=super::keys::MAX_RSA_BITS).contains(&bits) {
                    return Err(PrivateKeyError::UnsupportedKeyType);
                }
                Key::Rsa(Box::new(
                    rsa::RsaPrivateKey::new(&mut OsRng, bits).map_err(parse_err)?,
                ))
            }
            KeyAlgorithm::Ed25519 => {
                let mut seed = Zeroizing::new([0u8; 32]);
                random(seed.as_mut_slice())?;
                Key::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
            }
        };
        Self::from_key(key)
    }

    /// The key as unencrypted PKCS #8 DER, as Go's `x509.MarshalPKCS8PrivateKey` writes it.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, PrivateKeyError> {
        let enc = |e: pkcs8::Error| PrivateKeyError::Encrypt(e.to_string());
        let doc = match &self.key {
            Key::P256(k) => p256::SecretKey::from(k).to_pkcs8_der().map_err(enc)?,
            Key::P384(k) => p384::SecretKey::from(k).to_pkcs8_der().map_err(enc)?,
            Key::P521(k) => p521::SecretKey::from_bytes(&k.to_bytes())
                .map_err(|e| PrivateKeyError::Encrypt(e.to_string()))?
                .to_pkcs8_der()
                .map_err(enc)?,
            Key::Rsa(k) => k.to_pkcs8_der().map_err(enc)?,
            Key::Ed25519(k) => {
                let seed = Zeroizing::new(k.to_bytes());
                let inner = Zeroizing::new(
                    OctetStringRef::new(seed.as_slice())
                        .and_then(|o| o.to_der())
                        .map_err(|e| PrivateKeyError::Encrypt(e.to_string()))?,
                );
                let info = pkcs8::PrivateKeyInfo::new(
                    pkcs8::AlgorithmIdentifierRef {
                        oid: OID_ED25519,
                        parameters: None,
                    },
                    &inner,
                );
                return info
                    .to_der()
                    .map(Zeroizing::new)
                    .map_err(|e| PrivateKeyError::Encrypt(e.to_string()));
            }
        };
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    /// The key encrypted with `passphrase` in a PEM block labelled
    /// `ENCRYPTED COSIGN PRIVATE KEY`, as containers/image writes it; fresh random salt and nonce.
    pub fn encrypt(&self, passphrase: &[u8]) -> Result<Vec<u8>, PrivateKeyError> {
        self.encrypt_as(passphrase, PrivateKeyLabel::Cosign)
    }

    /// [`PrivateKey::encrypt`] with a chosen PEM label.
    pub fn encrypt_as(
        &self,
        passphrase: &[u8],
        label: PrivateKeyLabel,
    ) -> Result<Vec<u8>, PrivateKeyError> {
        let plaintext = self.to_pkcs8_der()?;
        let mut salt = [0u8; SALT_LEN];
        random(&mut salt)?;
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce)?;
        let (log_n, r, p) = SCRYPT_WRITE;
        let key = scrypt_key(passphrase, &salt, log_n, r, p)?;
        let cipher = crypto_secretbox::XSalsa20Poly1305::new(key.as_slice().into());
        let ciphertext = cipher
            .encrypt(nonce.as_slice().into(), plaintext.as_slice())
            .map_err(|e| PrivateKeyError::Encrypt(e.to_string()))?;
        let b64 = |b: &[u8]| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(b)
        };
        // Field order and spelling of go-securesystemslib's structs, as json.Marshal writes them.
        let json = format!(
            "{{\"kdf\":{{\"name\":\"scrypt\",\"params\":{{\"N\":{},\"r\":{r},\"p\":{p}}},\"salt\":\"{}\"}},\"cipher\":{{\"name\":\"nacl/secretbox\",\"nonce\":\"{}\"}},\"ciphertext\":\"{}\"}}",
            1u64 << log_n,
            b64(&salt),
            b64(&nonce),
            b64(&ciphertext)
        );
        Ok(pem::encode(label.as_str(), json.as_bytes()).into_bytes())
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The public half as a `PUBLIC KEY` PEM block (a cosign `.pub` file).
    pub fn public_key_pem(&self) -> String {
        self.public.to_pem()
    }

    /// Signs `payload` as containers/image does: SHA-256 for every key type; ECDSA signatures in
    /// ASN.1 DER, RSA PKCS #1 v1.5, pure Ed25519.
    pub fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, PrivateKeyError> {
        let sign = |e: p256::ecdsa::Error| PrivateKeyError::Sign(e.to_string());
        let digest: [u8; 32] = sha2::Sha256::digest(payload).into();
        let padded = |field: usize| {
            let mut v = vec![0u8; field];
            let at = field.saturating_sub(digest.len());
            if let Some(tail) = v.get_mut(at..) {
                tail.copy_from_slice(&digest);
            }
            v
        };
        Ok(match &self.key {
            Key::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign_prehash(&digest).map_err(sign)?;
                sig.to_der().as_bytes().to_vec()
            }
            Key::P384(k) => {
                let sig: p384::ecdsa::Signature = k.sign_prehash(&padded(48)).map_err(sign)?;
                sig.to_der().as_bytes().to_vec()
            }
            Key::P521(k) => {
                let sig: p521::ecdsa::Signature = k
                    .sign_prehash_with_rng(&mut OsRng, &padded(66))
                    .map_err(sign)?;
                sig.to_der().as_bytes().to_vec()
            }
            Key::Rsa(k) => {
                let scheme = rsa::Pkcs1v15Sign {
                    hash_len: Some(32),
                    prefix: SHA256_DIGEST_INFO.into(),
                };
                k.sign_with_rng(&mut OsRng, scheme, &digest)
                    .map_err(|e| PrivateKeyError::Sign(e.to_string()))?
            }
            Key::Ed25519(k) => ed25519_dalek::Signer::sign(k, payload).to_bytes().to_vec(),
        })
    }
}

/// `N` random bytes that `valid` accepts as a scalar (retrying the rare out-of-range value), so
/// that an RNG failure is an error rather than a panic inside a dependency.
fn random_scalar<const N: usize>(
    valid: impl Fn(&[u8]) -> bool,
) -> Result<Zeroizing<[u8; N]>, PrivateKeyError> {
    let mut bytes = Zeroizing::new([0u8; N]);
    for _ in 0..64 {
        random(bytes.as_mut_slice())?;
        if N == 66 {
            // P-521 scalars have 521 bits: clear the top 7 of the 528.
            if let Some(top) = bytes.first_mut() {
                *top &= 0x01;
            }
        }
        if valid(bytes.as_slice()) {
            return Ok(bytes);
        }
    }
    Err(PrivateKeyError::Random(
        "no valid scalar in 64 tries".to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by real cosign: the test keys in sigstore/cosign's pkg/cosign/keys_test.go
    // (passphrase "hello"); see testdata/README.md.
    const COSIGN_LABELLED: &[u8] =
        include_bytes!("../../../testdata/sigstore/golden/cosign-labelled.key");
    const SIGSTORE_LABELLED: &[u8] =
        include_bytes!("../../../testdata/sigstore/golden/sigstore-labelled.key");
    const SEC1_INSIDE: &[u8] = include_bytes!("../../../testdata/sigstore/golden/cosign-sec1.key");

    #[test]
    fn decrypts_keys_made_by_cosign() {
        for pem_bytes in [COSIGN_LABELLED, SIGSTORE_LABELLED] {
            let k = PrivateKey::decrypt(pem_bytes, b"hello").unwrap();
            assert_eq!(k.public_key().algorithm(), KeyAlgorithm::EcdsaP256);
            let sig = k.sign(b"payload").unwrap();
            assert_eq!(k.public_key().verify(b"payload", &sig), Ok(()));
            assert!(format!("{k:?}").starts_with("PrivateKey(ECDSA P-256 "));
        }
        // cosign's own expectation for this one (TestReadingPrivatePemTypes).
        assert_eq!(
            PrivateKey::decrypt(SEC1_INSIDE, b"hello")
                .unwrap_err()
                .to_string(),
            "parsing private key: x509: failed to parse private key (use ParseECPrivateKey instead for this key format)"
        );
    }

    #[test]
    fn wrong_passphrase_is_named() {
        let e = PrivateKey::decrypt(COSIGN_LABELLED, b"wrong").unwrap_err();
        assert_eq!(e, PrivateKeyError::WrongPassphrase);
        assert_eq!(
            e.to_string(),
            "decrypt: encrypted: decryption failed (wrong passphrase?)"
        );
        assert_eq!(
            PrivateKey::decrypt(COSIGN_LABELLED, b"").unwrap_err(),
            PrivateKeyError::WrongPassphrase
        );
    }

    fn encrypted(json: &str) -> Vec<u8> {
        pem::encode(SIGSTORE_PRIVATE_KEY_LABEL, json.as_bytes()).into_bytes()
    }

    #[test]
    fn refuses_what_cosign_refuses() {
        assert_eq!(
            PrivateKey::decrypt(b"garbage", b"x")
                .unwrap_err()
                .to_string(),
            "invalid pem block"
        );
        let public = include_bytes!("../../../testdata/sigstore/golden/cosign.pub");
        assert_eq!(
            PrivateKey::decrypt(public, b"x").unwrap_err().to_string(),
            "unsupported pem type: PUBLIC KEY"
        );
        let json = |kdf: &str, n: u64, cipher: &str, nonce: &str| {
            format!(
                r#"{{"kdf":{{"name":"{kdf}","params":{{"N":{n},"r":8,"p":1}},"salt":"AAAA"}},"cipher":{{"name":"{cipher}","nonce":"{nonce}"}},"ciphertext":"AAAA"}}"#
            )
        };
        let nonce24 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let e = |j: String| {
            PrivateKey::decrypt(&encrypted(&j), b"x")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e(json("pbkdf2", 32768, "nacl/secretbox", nonce24)),
            "decrypt: encrypted: unknown kdf name \"pbkdf2\""
        );
        assert_eq!(
            e(json("scrypt", 32768, "aes", nonce24)),
            "decrypt: encrypted: unknown cipher name \"aes\""
        );
        assert_eq!(
            e(json("scrypt", 1024, "nacl/secretbox", nonce24)),
            "decrypt: unsupported scrypt parameters"
        );
        assert_eq!(
            e(json("scrypt", 32768, "nacl/secretbox", "AAAA")),
            "decrypt: encrypted: incorrect nonce size"
        );
        assert_eq!(
            e(json("scrypt", 32768, "nacl/secretbox", "A")),
            "decrypt: illegal base64 data at input byte 0"
        );
        assert!(e("not json".into()).starts_with("decrypt: "));
        assert_eq!(
            e(r#"{"kdf":[]}"#.into()),
            "decrypt: json: cannot unmarshal array into Go struct field data.kdf of type encrypted.scryptKDF"
        );
        assert_eq!(
            e(r#"{"kdf":{"params":{"N":1.5}}}"#.into()),
            "decrypt: json: cannot unmarshal number 1.5 into Go struct field data.kdf.params.N of type int"
        );
    }

    #[test]
    fn round_trips_every_key_type() {
        for alg in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::EcdsaP521,
            KeyAlgorithm::Rsa { bits: 2048 },
            KeyAlgorithm::Ed25519,
        ] {
            let k = PrivateKey::generate_of(alg).unwrap();
            assert_eq!(k.public_key().algorithm(), alg);
            let pem_bytes = k.encrypt(b"passphrase").unwrap();
            let text = String::from_utf8(pem_bytes.clone()).unwrap();
            assert!(text.starts_with("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n"));
            let back = PrivateKey::decrypt(&pem_bytes, b"passphrase").unwrap();
            assert_eq!(back.public_key(), k.public_key(), "{alg}");
            let public = PublicKey::from_pem(back.public_key_pem().as_bytes()).unwrap();
            let sig = back.sign(b"payload").unwrap();
            assert_eq!(public.verify(b"payload", &sig), Ok(()), "{alg}");
            assert!(public.verify(b"payloaD", &sig).is_err(), "{alg}");
            assert_eq!(
                PrivateKey::decrypt(&pem_bytes, b"other").unwrap_err(),
                PrivateKeyError::WrongPassphrase
            );
        }
    }

    #[test]
    fn writes_the_format_cosign_reads() {
        let k = PrivateKey::generate().unwrap();
        assert_eq!(k.public_key().algorithm(), KeyAlgorithm::EcdsaP256);
        let pem_bytes = k.encrypt_as(b"", PrivateKeyLabel::Sigstore).unwrap();
        let (block, rest) = pem::decode(&pem_bytes).unwrap();
        assert!(rest.is_empty());
        assert_eq!(block.label, SIGSTORE_PRIVATE_KEY_LABEL);
        let v: Value = serde_json::from_slice(&block.der).unwrap();
        let text = String::from_utf8(block.der.clone()).unwrap();
        assert!(
            text.starts_with(
                r#"{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":""#
            )
        );
        let b = |s: &Value| go_compat::base64_decode(s.as_str().unwrap().as_bytes()).unwrap();
        assert_eq!(b(&v["kdf"]["salt"]).len(), SALT_LEN);
        assert_eq!(b(&v["cipher"]["nonce"]).len(), NONCE_LEN);
        assert_eq!(v["cipher"]["name"], "nacl/secretbox");
        // secretbox: a 16-byte tag, then the PKCS #8 key.
        assert_eq!(
            b(&v["ciphertext"]).len(),
            16 + k.to_pkcs8_der().unwrap().len()
        );
        // An empty passphrase is allowed, as cosign allows it.
        assert!(PrivateKey::decrypt(&pem_bytes, b"").is_ok());
        // Fresh salt and nonce every time.
        assert_ne!(k.encrypt(b"").unwrap(), k.encrypt(b"").unwrap());
    }

    #[test]
    fn pkcs8_is_what_go_writes_and_reads() {
        let k = PrivateKey::generate_of(KeyAlgorithm::Ed25519).unwrap();
        let der = k.to_pkcs8_der().unwrap();
        // RFC 8410 v1 form, as Go's MarshalPKCS8PrivateKey: version 0, the OID, no public key.
        assert_eq!(der.len(), 48);
        assert_eq!(
            &der[..16],
            &[
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
                0x04, 0x20
            ]
        );
        assert_eq!(
            PrivateKey::from_pkcs8_der(&der).unwrap().public_key(),
            k.public_key()
        );
        let rsa = rsa::RsaPrivateKey::new(&mut OsRng, 1024).unwrap();
        let pkcs1 = pkcs1::EncodeRsaPrivateKey::to_pkcs1_der(&rsa).unwrap();
        assert_eq!(
            PrivateKey::from_pkcs8_der(pkcs1.as_bytes())
                .unwrap_err()
                .to_string(),
            "parsing private key: x509: failed to parse private key (use ParsePKCS1PrivateKey instead for this key format)"
        );
        assert!(matches!(
            PrivateKey::from_pkcs8_der(b"junk"),
            Err(PrivateKeyError::Parse(_))
        ));
    }
}
