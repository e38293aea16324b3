//! Simple signing ("atomic container signature"): the payload format, and its OpenPGP
//! verification and signing with sequoia-openpgp's pure-Rust backend (no gpg, no GPGME, no
//! system crypto library).

use std::io::{Read, Write};
use std::time::SystemTime;

use openpgp::cert::prelude::*;
use openpgp::parse::stream::{
    MessageLayer, MessageStructure, VerificationError, VerificationHelper, VerifierBuilder,
};
use openpgp::parse::{PacketParser, PacketParserResult, Parse};
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{LiteralWriter, Message, Signer};
use openpgp::types::RevocationStatus;
use openpgp::{KeyHandle, Packet};
use sequoia_openpgp as openpgp;

use crate::digest::Digest;
use crate::strict_json;

/// The `critical.type` of a simple signing payload.
pub const SIGNATURE_TYPE: &str = "atomic container signature";

/// Why a signature was not accepted, or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The keyring or key file could not be parsed.
    #[error("invalid OpenPGP key data: {0}")]
    Keys(String),
    /// No certificate in the keyring made this signature.
    #[error("signed by key {}, which is not among the trusted keys", issuers.join(", "))]
    UnknownSigner {
        /// Fingerprints or key IDs named by the signature.
        issuers: Vec<String>,
    },
    /// The cryptographic check failed: a changed payload or a broken signature.
    #[error("invalid signature by key {key}: {reason}")]
    BadSignature {
        /// The key that supposedly made it.
        key: String,
        /// What sequoia reported.
        reason: String,
    },
    /// The key (primary or signing subkey) is expired.
    #[error("the signing key {key} of {primary} is expired ({reason})")]
    KeyExpired {
        /// The signing key.
        key: String,
        /// Its certificate's primary key.
        primary: String,
        /// Details.
        reason: String,
    },
    /// The key (primary or signing subkey) is revoked.
    #[error("the signing key {key} of {primary} is revoked")]
    KeyRevoked {
        /// The signing key.
        key: String,
        /// Its certificate's primary key.
        primary: String,
    },
    /// Not an OpenPGP signed message of the expected shape.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// The payload is not a valid simple signing payload.
    #[error("invalid signature payload: {0}")]
    InvalidPayload(String),
    /// Signing failed.
    #[error("cannot sign: {0}")]
    Signing(String),
}

/// The content of a simple signing payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// `critical.image.docker-manifest-digest`.
    pub manifest_digest: String,
    /// `critical.identity.docker-reference`.
    pub docker_reference: String,
    /// `optional.creator`.
    pub creator: Option<String>,
    /// `optional.timestamp` (Unix seconds).
    pub timestamp: Option<i64>,
}

fn invalid(e: impl std::fmt::Display) -> SignatureError {
    SignatureError::InvalidPayload(e.to_string())
}

/// Parses a payload as strictly as containers/image: exactly the `critical` members, the right
/// type, a valid digest; `optional` must be an object whose known members have the right types.
pub fn parse_payload(json: &[u8]) -> Result<Payload, SignatureError> {
    let v = strict_json::parse(json).map_err(invalid)?;
    let top = strict_json::object(&v, &["critical", "optional"], &["critical", "optional"])
        .map_err(invalid)?;
    let critical = strict_json::object(
        top["critical"],
        &["type", "image", "identity"],
        &["type", "image", "identity"],
    )
    .map_err(invalid)?;
    let ty = strict_json::string(critical["type"], "type").map_err(invalid)?;
    if ty != SIGNATURE_TYPE {
        return Err(invalid(format!("Unrecognized signature type {ty}")));
    }
    let image = strict_json::object(
        critical["image"],
        &["docker-manifest-digest"],
        &["docker-manifest-digest"],
    )
    .map_err(invalid)?;
    let digest = strict_json::string(image["docker-manifest-digest"], "docker-manifest-digest")
        .map_err(invalid)?;
    if let Err(e) = Digest::parse(digest) {
        return Err(invalid(format!(
            "invalid docker-manifest-digest value {digest:?}: {e}"
        )));
    }
    let identity = strict_json::object(
        critical["identity"],
        &["docker-reference"],
        &["docker-reference"],
    )
    .map_err(invalid)?;
    let reference =
        strict_json::string(identity["docker-reference"], "docker-reference").map_err(invalid)?;
    let optional = top["optional"]
        .as_object()
        .ok_or_else(|| invalid("Field optional must be a JSON object"))?;
    let creator = match optional.get("creator") {
        None => None,
        Some(c) => Some(
            strict_json::string(c, "optional.creator")
                .map_err(invalid)?
                .to_string(),
        ),
    };
    let timestamp = match optional.get("timestamp") {
        None => None,
        Some(t) => Some(
            t.as_i64()
                .or_else(|| t.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .ok_or_else(|| invalid("Field optional.timestamp is not an integer"))?,
        ),
    };
    Ok(Payload {
        manifest_digest: digest.to_string(),
        docker_reference: reference.to_string(),
        creator,
        timestamp,
    })
}

/// A payload for `manifest_digest` and `docker_reference`, made by ferry now.
pub fn payload_json(manifest_digest: &Digest, docker_reference: &str) -> Vec<u8> {
    let timestamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Keys in the order containers/image writes them (sorted), so payloads look alike.
    let v = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest.to_string()},
            "type": SIGNATURE_TYPE,
        },
        "optional": {
            "creator": format!("ferry {}", env!("CARGO_PKG_VERSION")),
            "timestamp": timestamp,
        },
    });
    v.to_string().into_bytes()
}

/// A set of trusted OpenPGP certificates (public keys).
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    certs: Vec<Cert>,
}

impl Keyring {
    /// Reads one or more certificates, armored or binary (what `gpg --export` writes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Keyring, SignatureError> {
        let mut certs = Vec::new();
        for c in CertParser::from_bytes(bytes).map_err(|e| SignatureError::Keys(e.to_string()))? {
            certs.push(c.map_err(|e| SignatureError::Keys(e.to_string()))?);
        }
        Ok(Keyring { certs })
    }
    /// All certificates of several keyrings.
    pub fn merge(rings: impl IntoIterator<Item = Keyring>) -> Keyring {
        Keyring {
            certs: rings.into_iter().flat_map(|r| r.certs).collect(),
        }
    }
    /// Whether it holds no certificate.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
    /// The primary fingerprints (uppercase hex), in order.
    pub fn fingerprints(&self) -> Vec<String> {
        self.certs
            .iter()
            .map(|c| c.fingerprint().to_hex())
            .collect()
    }
    /// The primary user ID of the certificate with this primary fingerprint.
    pub fn user_id(&self, fingerprint: &str) -> Option<String> {
        self.certs
            .iter()
            .find(|c| c.fingerprint().to_hex() == fingerprint)
            .and_then(primary_user_id)
    }
}

fn primary_user_id(cert: &Cert) -> Option<String> {
    let p = StandardPolicy::new();
    cert.with_policy(&p, None)
        .ok()
        .and_then(|v| {
            v.primary_userid()
                .ok()
                .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
        })
        .or_else(|| {
            cert.userids()
                .next()
                .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
        })
}

/// A signature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The payload.
    pub payload: Payload,
    /// The fingerprint of the trusted certificate's primary key (uppercase hex).
    pub primary_fingerprint: String,
    /// The fingerprint of the key that made the signature (a subkey or the primary).
    pub signing_key_fingerprint: String,
    /// The certificate's primary user ID.
    pub user_id: Option<String>,
    /// When the signature was made.
    pub created: Option<SystemTime>,
}

/// Primary fingerprint, signing key fingerprint, creation time.
type GoodSignature = (String, String, Option<SystemTime>);

struct Helper<'a> {
    keyring: &'a Keyring,
    outcome: Option<Result<GoodSignature, SignatureError>>,
}

fn handles(sig: &openpgp::packet::Signature) -> Vec<String> {
    dedup_issuers(sig.get_issuers().iter().map(|h| h.to_hex()).collect())
}

// A key ID is the tail of a fingerprint: name each key once, by fingerprint when known.
fn dedup_issuers(mut issuers: Vec<String>) -> Vec<String> {
    let fprs: Vec<String> = issuers.iter().filter(|i| i.len() > 16).cloned().collect();
    issuers.retain(|i| i.len() > 16 || !fprs.iter().any(|f| f.ends_with(i.as_str())));
    issuers.dedup();
    issuers
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self.keyring.certs.clone())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        let p = StandardPolicy::new();
        let mut groups = 0;
        for layer in structure.into_iter() {
            match layer {
                MessageLayer::Compression { .. } => {}
                MessageLayer::Encryption { .. } => {
                    self.outcome = Some(Err(SignatureError::Malformed(
                        "the message is encrypted".into(),
                    )));
                    return Ok(());
                }
                MessageLayer::SignatureGroup { results } => {
                    groups += 1;
                    if results.len() != 1 || groups > 1 {
                        self.outcome = Some(Err(SignatureError::Malformed(format!(
                            "Unexpected GPG signature count {}",
                            results.len()
                        ))));
                        return Ok(());
                    }
                    let outcome = match results.into_iter().next() {
                        Some(Ok(good)) => {
                            let cert = good.ka.cert();
                            let primary = cert.fingerprint().to_hex();
                            let key = good.ka.key().fingerprint().to_hex();
                            // Like GPGME, a key expired or revoked now does not sign, even if it
                            // was valid when it signed.
                            let now = cert.with_policy(&p, None);
                            let subkey_now = now.as_ref().ok().and_then(|c| {
                                c.keys().key_handle(good.ka.key().key_handle()).next()
                            });
                            let revoked = matches!(
                                cert.revocation_status(&p, None),
                                RevocationStatus::Revoked(_)
                            ) || matches!(
                                good.ka.revocation_status(),
                                RevocationStatus::Revoked(_)
                            );
                            if revoked {
                                Err(SignatureError::KeyRevoked { key, primary })
                            } else if let Err(e) = now
                                .as_ref()
                                .map_err(|e| e.to_string())
                                .and_then(|c| c.alive().map_err(|e| e.to_string()))
                            {
                                Err(SignatureError::KeyExpired {
                                    key,
                                    primary,
                                    reason: e,
                                })
                            } else if let Some(Err(e)) = subkey_now.as_ref().map(|k| k.alive()) {
                                Err(SignatureError::KeyExpired {
                                    key,
                                    primary,
                                    reason: e.to_string(),
                                })
                            } else if subkey_now.is_none() {
                                Err(SignatureError::KeyExpired {
                                    key,
                                    primary,
                                    reason: "the key is not valid now".into(),
                                })
                            } else {
                                Ok((primary, key, good.sig.signature_creation_time()))
                            }
                        }
                        Some(Err(VerificationError::MissingKey { sig })) => {
                            Err(SignatureError::UnknownSigner {
                                issuers: handles(sig),
                            })
                        }
                        Some(Err(VerificationError::BadKey { ka, error, .. })) => {
                            let key = ka.key().fingerprint().to_hex();
                            let primary = ka.cert().fingerprint().to_hex();
                            let text = format!("{error:#}");
                            if matches!(
                                ka.cert().revocation_status(&p, None),
                                RevocationStatus::Revoked(_)
                            ) || matches!(ka.revocation_status(), RevocationStatus::Revoked(_))
                                || text.contains("revoked")
                            {
                                Err(SignatureError::KeyRevoked { key, primary })
                            } else {
                                Err(SignatureError::KeyExpired {
                                    key,
                                    primary,
                                    reason: text,
                                })
                            }
                        }
                        Some(Err(VerificationError::UnboundKey { sig, cert, error })) => {
                            Err(SignatureError::KeyExpired {
                                key: handles(sig).join(", "),
                                primary: cert.fingerprint().to_hex(),
                                reason: format!("{error:#}"),
                            })
                        }
                        Some(Err(VerificationError::BadSignature { ka, error, .. })) => {
                            Err(SignatureError::BadSignature {
                                key: ka.key().fingerprint().to_hex(),
                                reason: format!("{error:#}"),
                            })
                        }
                        Some(Err(VerificationError::MalformedSignature { error, .. })) => {
                            Err(SignatureError::Malformed(format!("{error:#}")))
                        }
                        Some(Err(e)) => Err(SignatureError::Malformed(e.to_string())),
                        None => Err(SignatureError::Malformed("no signature".into())),
                    };
                    self.outcome = Some(outcome);
                }
            }
        }
        Ok(())
    }
}

/// Verifies a signed message against the keyring and parses its payload strictly. The signature
/// must be made by a key (or a valid, unrevoked, unexpired signing subkey) of a certificate in
/// the keyring, alive when it signed and now. The manifest digest and identity are not compared
/// here: the policy does that.
pub fn verify(signature: &[u8], keyring: &Keyring) -> Result<Verified, SignatureError> {
    let p = StandardPolicy::new();
    let helper = Helper {
        keyring,
        outcome: None,
    };
    let mut verifier = match VerifierBuilder::from_bytes(signature)
        .and_then(|b| b.with_policy(&p, None, helper))
    {
        Ok(v) => v,
        Err(e) => {
            // The helper's verdict is lost when the builder fails; read the issuers to name the
            // signer when the key is simply unknown.
            let text = format!("{e:#}");
            if let Ok(u) = inspect(signature)
                && !u.issuers.is_empty()
                && !keyring.certs.iter().any(|c| {
                    u.issuers.iter().any(|i| {
                        c.keys().any(|k| {
                            k.key().fingerprint().to_hex() == *i || k.key().keyid().to_hex() == *i
                        })
                    })
                })
            {
                return Err(SignatureError::UnknownSigner { issuers: u.issuers });
            }
            return Err(SignatureError::Malformed(text));
        }
    };
    let mut payload = Vec::new();
    let read = verifier
        .by_ref()
        .take(crate::signature::MAX_SIGNATURE_SIZE as u64 + 1)
        .read_to_end(&mut payload);
    let helper = verifier.into_helper();
    let (primary, key, created) = match (helper.outcome, read) {
        (Some(Ok(ok)), Ok(_)) => ok,
        (Some(Err(e)), _) => return Err(e),
        (None, Err(e)) | (Some(Ok(_)), Err(e)) => {
            return Err(SignatureError::Malformed(e.to_string()));
        }
        (None, Ok(_)) => {
            return Err(SignatureError::Malformed(
                "no signature in the message".into(),
            ));
        }
    };
    let payload = parse_payload(&payload)?;
    let user_id = keyring.user_id(&primary);
    Ok(Verified {
        payload,
        primary_fingerprint: primary,
        signing_key_fingerprint: key,
        user_id,
        created,
    })
}

/// A signature read without verifying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    /// The payload, if it parses.
    pub payload: Option<Payload>,
    /// The issuer fingerprints and key IDs the signature names (uppercase hex).
    pub issuers: Vec<String>,
    /// When it says it was made.
    pub created: Option<SystemTime>,
}

/// Reads a signed message without verifying it: for forensics and for naming an unknown signer.
pub fn inspect(signature: &[u8]) -> Result<Unverified, SignatureError> {
    let mut ppr = PacketParser::from_bytes(signature)
        .map_err(|e| SignatureError::Malformed(e.to_string()))?;
    let mut issuers = Vec::new();
    let mut created = None;
    let mut literal = None;
    while let PacketParserResult::Some(mut pp) = ppr {
        if let Packet::Literal(_) = &pp.packet {
            let mut body = Vec::new();
            pp.by_ref()
                .take(crate::signature::MAX_SIGNATURE_SIZE as u64)
                .read_to_end(&mut body)
                .map_err(|e| SignatureError::Malformed(e.to_string()))?;
            literal = Some(body);
        }
        let (packet, next) = pp
            .recurse()
            .map_err(|e| SignatureError::Malformed(e.to_string()))?;
        match packet {
            Packet::Signature(sig) => {
                for h in sig.get_issuers() {
                    let h = h.to_hex();
                    if !issuers.contains(&h) {
                        issuers.push(h);
                    }
                }
                created = created.or(sig.signature_creation_time());
            }
            Packet::OnePassSig(ops) => {
                let h = ops.issuer().to_hex();
                if !issuers.contains(&h) {
                    issuers.push(h);
                }
            }
            _ => {}
        }
        ppr = next;
    }
    let issuers = dedup_issuers(issuers);
    Ok(Unverified {
        payload: literal.as_deref().and_then(|b| parse_payload(b).ok()),
        issuers,
        created,
    })
}

/// A certificate with secret key material, to sign with.
#[derive(Debug, Clone)]
pub struct SigningKey {
    cert: Cert,
    passphrase: Option<String>,
}

impl SigningKey {
    /// Reads a secret key (`gpg --export-secret-keys`, armored or binary). With `fingerprint`, the
    /// certificate with that primary fingerprint (or key ID suffix) is chosen from several.
    pub fn from_bytes(
        bytes: &[u8],
        fingerprint: Option<&str>,
        passphrase: Option<&str>,
    ) -> Result<SigningKey, SignatureError> {
        let mut certs = Vec::new();
        for c in CertParser::from_bytes(bytes).map_err(|e| SignatureError::Keys(e.to_string()))? {
            let c = c.map_err(|e| SignatureError::Keys(e.to_string()))?;
            if c.is_tsk() {
                certs.push(c);
            }
        }
        let want = fingerprint.map(|f| f.replace(' ', "").to_uppercase());
        let cert = certs
            .into_iter()
            .find(|c| match &want {
                None => true,
                Some(w) => c.keys().any(|k| {
                    let fpr = k.key().fingerprint().to_hex();
                    fpr == *w || fpr.ends_with(w.as_str())
                }),
            })
            .ok_or_else(|| {
                SignatureError::Keys(match &want {
                    Some(w) => format!("no secret key with fingerprint {w} in the key file"),
                    None => "no secret key in the key file".into(),
                })
            })?;
        Ok(SigningKey {
            cert,
            passphrase: passphrase.map(str::to_string),
        })
    }

    /// The primary key's fingerprint (uppercase hex).
    pub fn fingerprint(&self) -> String {
        self.cert.fingerprint().to_hex()
    }

    /// The public certificate, to give to verifiers.
    pub fn public_cert(&self) -> Vec<u8> {
        use openpgp::serialize::Serialize;
        let mut out = Vec::new();
        let _ = self
            .cert
            .clone()
            .strip_secret_key_material()
            .serialize(&mut out);
        out
    }
}

/// Signs `payload` as an OpenPGP signed message (not detached, not cleartext), like
/// `gpg --sign`.
pub fn sign(payload: &[u8], key: &SigningKey) -> Result<Vec<u8>, SignatureError> {
    let p = StandardPolicy::new();
    let signing_key = key
        .cert
        .keys()
        .secret()
        .with_policy(&p, None)
        .supported()
        .alive()
        .revoked(false)
        .for_signing()
        .next()
        .ok_or_else(|| {
            SignatureError::Signing(format!(
                "{} has no valid signing key with secret material",
                key.fingerprint()
            ))
        })?;
    let mut secret = signing_key.key().clone();
    if secret.has_unencrypted_secret() {
    } else {
        let pass = key.passphrase.as_deref().ok_or_else(|| {
            SignatureError::Signing(format!(
                "the key {} is protected by a passphrase: give it with --sign-passphrase-file",
                key.fingerprint()
            ))
        })?;
        secret = secret.decrypt_secret(&pass.into()).map_err(|e| {
            SignatureError::Signing(format!("cannot unlock {}: {e}", key.fingerprint()))
        })?;
    }
    let keypair = secret
        .into_keypair()
        .map_err(|e| SignatureError::Signing(e.to_string()))?;
    let mut out = Vec::new();
    let message = Message::new(&mut out);
    let signer = Signer::new(message, keypair)
        .and_then(|s| s.build())
        .map_err(|e| SignatureError::Signing(e.to_string()))?;
    let mut literal = LiteralWriter::new(signer)
        .build()
        .map_err(|e| SignatureError::Signing(e.to_string()))?;
    literal
        .write_all(payload)
        .map_err(|e| SignatureError::Signing(e.to_string()))?;
    literal
        .finalize()
        .map_err(|e| SignatureError::Signing(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest::sha256_of(b"manifest")
    }

    fn key(uid: &str) -> SigningKey {
        let (cert, _) = CertBuilder::new()
            .add_userid(uid)
            .add_signing_subkey()
            .generate()
            .unwrap();
        SigningKey {
            cert,
            passphrase: None,
        }
    }

    fn ring(k: &SigningKey) -> Keyring {
        Keyring::from_bytes(&k.public_cert()).unwrap()
    }

    #[test]
    fn signs_and_verifies_round_trip() {
        let k = key("Release <r@example.com>");
        let sig = sign(&payload_json(&digest(), "example.com/app:1"), &k).unwrap();
        let v = verify(&sig, &ring(&k)).unwrap();
        assert_eq!(v.payload.manifest_digest, digest().to_string());
        assert_eq!(v.payload.docker_reference, "example.com/app:1");
        assert_eq!(v.primary_fingerprint, k.fingerprint());
        assert_ne!(
            v.signing_key_fingerprint,
            k.fingerprint(),
            "made by the signing subkey"
        );
        assert_eq!(v.user_id.as_deref(), Some("Release <r@example.com>"));
        assert!(v.created.is_some());
        let u = inspect(&sig).unwrap();
        assert_eq!(u.payload.unwrap().docker_reference, "example.com/app:1");
        assert!(!u.issuers.is_empty());
    }

    #[test]
    fn rejects_unknown_signers_and_tampering() {
        let k = key("A <a@example.com>");
        let other = key("B <b@example.com>");
        let sig = sign(&payload_json(&digest(), "example.com/app:1"), &k).unwrap();
        match verify(&sig, &ring(&other)) {
            Err(SignatureError::UnknownSigner { issuers }) => assert!(!issuers.is_empty()),
            other => panic!("{other:?}"),
        }
        // Flip a byte inside the literal payload.
        let pos = sig.windows(8).position(|w| w == b"atomic c").unwrap();
        let mut bad = sig.clone();
        bad[pos] ^= 1;
        assert!(verify(&bad, &ring(&k)).is_err());
        assert!(verify(b"<html>", &ring(&k)).is_err());
        let e = verify(&sig[..sig.len() / 2], &ring(&k)).unwrap_err();
        assert!(!matches!(e, SignatureError::UnknownSigner { .. }), "{e}");
    }

    #[test]
    fn rejects_revoked_keys() {
        let (cert, rev) = CertBuilder::new()
            .add_userid("R")
            .add_signing_subkey()
            .generate()
            .unwrap();
        let k = SigningKey {
            cert: cert.clone(),
            passphrase: None,
        };
        let sig = sign(&payload_json(&digest(), "example.com/app:1"), &k).unwrap();
        let (revoked, _) = cert.insert_packets(rev).unwrap();
        let pubring = Keyring {
            certs: vec![revoked.strip_secret_key_material()],
        };
        assert!(
            matches!(
                verify(&sig, &pubring),
                Err(SignatureError::KeyRevoked { .. })
            ),
            "{:?}",
            verify(&sig, &pubring)
        );
    }

    #[test]
    fn payloads_are_parsed_strictly() {
        let d = digest().to_string();
        let good = format!(
            r#"{{"critical":{{"type":"atomic container signature","image":{{"docker-manifest-digest":"{d}"}},"identity":{{"docker-reference":"a/b:c"}}}},"optional":{{"creator":"x","timestamp":5,"extra":1}}}}"#
        );
        let p = parse_payload(good.as_bytes()).unwrap();
        assert_eq!(p.timestamp, Some(5));
        for bad in [
            good.replace(
                "atomic container signature",
                "cosign container image signature",
            ),
            good.replace(r#","optional":{"creator":"x","timestamp":5,"extra":1}"#, ""),
            good.replace(r#""type""#, r#""type2""#),
            good.replace(&d, "sha256:abc"),
            good.replace("\"timestamp\":5", "\"timestamp\":5.5"),
            good.replace(r#""identity":"#, r#""extra":1,"identity":"#),
            good.replace(r#"{"creator":"x","timestamp":5,"extra":1}"#, "null"),
            good.replace(r#""creator":"x""#, r#""creator":"x","creator":"y""#),
        ] {
            assert!(parse_payload(bad.as_bytes()).is_err(), "accepted {bad}");
        }
    }
}
