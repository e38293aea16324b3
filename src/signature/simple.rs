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
    /// The certificate's primary key has expired. Like GPGME, ferry does not accept a signature by
    /// an expired key even if it was made before the key expired.
    #[error(
        "the key {} has expired ({reason}): renew it (gpg --quick-set-expire) and re-export it, or trust another key",
        named(primary, user_id)
    )]
    KeyExpired {
        /// The primary key's fingerprint.
        primary: String,
        /// The certificate's primary user ID.
        user_id: Option<String>,
        /// Details.
        reason: String,
    },
    /// The certificate (its primary key) is revoked.
    #[error("the key {} is revoked{}", named(primary, user_id), because(reason))]
    KeyRevoked {
        /// The primary key's fingerprint.
        primary: String,
        /// The certificate's primary user ID.
        user_id: Option<String>,
        /// The reason the revocation gives, if any.
        reason: Option<String>,
    },
    /// The signature was made by a signing subkey that has expired.
    #[error(
        "the signature was made by the signing subkey {subkey} of the key {}, and that subkey has expired ({reason})",
        named(primary, user_id)
    )]
    SubkeyExpired {
        /// The subkey's fingerprint.
        subkey: String,
        /// The primary key's fingerprint.
        primary: String,
        /// The certificate's primary user ID.
        user_id: Option<String>,
        /// Details.
        reason: String,
    },
    /// The signature was made by a signing subkey that is revoked (its primary key may be fine).
    #[error(
        "the signature was made by the signing subkey {subkey} of the key {}, and that subkey is revoked{}",
        named(primary, user_id),
        because(reason)
    )]
    SubkeyRevoked {
        /// The subkey's fingerprint.
        subkey: String,
        /// The primary key's fingerprint.
        primary: String,
        /// The certificate's primary user ID.
        user_id: Option<String>,
        /// The reason the revocation gives, if any.
        reason: Option<String>,
    },
    /// The key that made the signature is in the keyring but cannot be used to verify: not bound
    /// by a signature the policy accepts (e.g. SHA-1), not signing-capable, or not valid now.
    #[error(
        "the signing key {key} of the key {} cannot be used: {reason}",
        named(primary, user_id)
    )]
    KeyUnusable {
        /// The signing key's fingerprint (the primary's or a subkey's).
        key: String,
        /// The primary key's fingerprint.
        primary: String,
        /// The certificate's primary user ID.
        user_id: Option<String>,
        /// What sequoia reported.
        reason: String,
    },
    /// The message is compressed with an algorithm ferry is not built with (BZip2: gpg writes it
    /// only when told to, with `--compress-algo bzip2` or a key preference).
    #[error(
        "the signed message is compressed with {algorithm}, which ferry cannot read (it reads uncompressed, ZIP and ZLIB messages, gpg's defaults); sign again with `gpg --compress-algo zlib`"
    )]
    UnsupportedCompression {
        /// The algorithm's name, as sequoia gives it.
        algorithm: String,
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

/// `FPR ("user ID")`, or the fingerprint alone: how people are shown a key.
fn named(fingerprint: &str, user_id: &Option<String>) -> String {
    match user_id {
        Some(u) => format!("{fingerprint} ({u:?})"),
        None => fingerprint.to_string(),
    }
}

fn because(reason: &Option<String>) -> String {
    reason
        .as_ref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default()
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
    /// The certificate holding the key named by `issuer` (a fingerprint or key ID of its primary
    /// key or of a subkey, as [`SignatureError::UnknownSigner`] and [`Unverified`] list them):
    /// its primary fingerprint and primary user ID. For naming a signer that this keyring knows
    /// but another requirement does not trust.
    pub fn owner_of(&self, issuer: &str) -> Option<(String, Option<String>)> {
        let issuer = issuer.to_uppercase();
        self.certs
            .iter()
            .find(|c| {
                c.keys().any(|k| {
                    k.key().fingerprint().to_hex() == issuer || k.key().keyid().to_hex() == issuer
                })
            })
            .map(|c| (c.fingerprint().to_hex(), primary_user_id(c)))
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
                            let key = good.ka.key().fingerprint();
                            // Valid when it signed (sequoia checked that); like GPGME, a key
                            // expired or revoked since does not sign either.
                            match key_status_now(cert, &key) {
                                Some(problem) => Err(problem),
                                None => Ok((
                                    cert.fingerprint().to_hex(),
                                    key.to_hex(),
                                    good.sig.signature_creation_time(),
                                )),
                            }
                        }
                        Some(Err(VerificationError::MissingKey { sig })) => {
                            Err(SignatureError::UnknownSigner {
                                issuers: handles(sig),
                            })
                        }
                        Some(Err(VerificationError::BadKey { ka, error, .. })) => {
                            let key = ka.key().fingerprint();
                            // Not valid when it signed: name the state it is in now if that
                            // explains it (revoked, expired), else sequoia's reason.
                            Err(key_status_now(ka.cert(), &key).unwrap_or_else(|| {
                                SignatureError::KeyUnusable {
                                    key: key.to_hex(),
                                    primary: ka.cert().fingerprint().to_hex(),
                                    user_id: primary_user_id(ka.cert()),
                                    reason: format!("{error:#}"),
                                }
                            }))
                        }
                        Some(Err(VerificationError::UnboundKey { sig, cert, error })) => {
                            Err(SignatureError::KeyUnusable {
                                key: handles(sig).join(", "),
                                primary: cert.fingerprint().to_hex(),
                                user_id: primary_user_id(cert),
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

/// Why the key `key` of `cert` cannot sign now, if it cannot: the certificate or the subkey is
/// revoked or expired, or the subkey is no longer bound. `None` when it is usable.
fn key_status_now(cert: &Cert, key: &openpgp::Fingerprint) -> Option<SignatureError> {
    let p = StandardPolicy::new();
    let primary = cert.fingerprint().to_hex();
    let user_id = primary_user_id(cert);
    if let RevocationStatus::Revoked(sigs) = cert.revocation_status(&p, None) {
        return Some(SignatureError::KeyRevoked {
            primary,
            user_id,
            reason: revocation_reason(&sigs),
        });
    }
    let valid = match cert.with_policy(&p, None) {
        Ok(v) => v,
        Err(e) => {
            return Some(SignatureError::KeyUnusable {
                key: key.to_hex(),
                primary,
                user_id,
                reason: format!("{e:#}"),
            });
        }
    };
    if let Err(e) = valid.alive() {
        return Some(SignatureError::KeyExpired {
            primary,
            user_id,
            reason: format!("{e:#}"),
        });
    }
    if *key == cert.fingerprint() {
        return None;
    }
    let subkey = key.to_hex();
    if let Some(ka) = cert.keys().subkeys().key_handle(key.clone()).next()
        && let RevocationStatus::Revoked(sigs) = ka.revocation_status(&p, None)
    {
        return Some(SignatureError::SubkeyRevoked {
            subkey,
            primary,
            user_id,
            reason: revocation_reason(&sigs),
        });
    }
    match valid.keys().subkeys().key_handle(key.clone()).next() {
        None => Some(SignatureError::KeyUnusable {
            key: subkey,
            primary,
            user_id,
            reason: "the subkey is not validly bound to the key now".into(),
        }),
        Some(ka) => match ka.alive() {
            Err(e) => Some(SignatureError::SubkeyExpired {
                subkey,
                primary,
                user_id,
                reason: format!("{e:#}"),
            }),
            Ok(()) => None,
        },
    }
}

/// The reason a revocation states, unless it states none.
fn revocation_reason(sigs: &[&openpgp::packet::Signature]) -> Option<String> {
    let (code, text) = sigs.iter().find_map(|s| s.reason_for_revocation())?;
    let text = String::from_utf8_lossy(text);
    let text = text.trim();
    match (code, text.is_empty()) {
        (openpgp::types::ReasonForRevocation::Unspecified, true) => None,
        (_, true) => Some(code.to_string()),
        (_, false) => Some(format!("{code}: {text}")),
    }
}

/// Verifies a signed message against the keyring and parses its payload strictly. The signature
/// must be made by a key (or a valid, unrevoked, unexpired signing subkey) of a certificate in
/// the keyring, alive when it signed and now. The manifest digest and identity are not compared
/// here: the policy does that.
pub fn verify(signature: &[u8], keyring: &Keyring) -> Result<Verified, SignatureError> {
    unsupported_compression(signature)?;
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

/// Fails when the message's first packet is compressed data of an algorithm this build cannot
/// decompress, which sequoia would otherwise report only as a malformed message.
fn unsupported_compression(signature: &[u8]) -> Result<(), SignatureError> {
    if let Ok(PacketParserResult::Some(pp)) = PacketParser::from_bytes(signature)
        && let Packet::CompressedData(c) = &pp.packet
        && !c.algo().is_supported()
    {
        return Err(SignatureError::UnsupportedCompression {
            algorithm: c.algo().to_string(),
        });
    }
    Ok(())
}

/// A signature read without verifying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    /// The payload, if it parses.
    pub payload: Option<Payload>,
    /// The signed literal data, exactly as signed (the payload JSON), when there is one.
    pub raw_payload: Option<Vec<u8>>,
    /// The issuer fingerprints and key IDs the signature names (uppercase hex).
    pub issuers: Vec<String>,
    /// When it says it was made.
    pub created: Option<SystemTime>,
    /// The signer's user ID, if the signature names one (a Signer's User ID subpacket, which
    /// `gpg --sender` adds; skopeo's signatures carry none). Unverified, like everything here.
    pub signer_user_id: Option<String>,
}

/// Reads a signed message without verifying it: for forensics and for naming an unknown signer.
pub fn inspect(signature: &[u8]) -> Result<Unverified, SignatureError> {
    unsupported_compression(signature)?;
    let mut ppr = PacketParser::from_bytes(signature)
        .map_err(|e| SignatureError::Malformed(e.to_string()))?;
    let mut issuers = Vec::new();
    let mut created = None;
    let mut signer_user_id = None;
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
                signer_user_id = signer_user_id.or_else(|| {
                    sig.signers_user_id()
                        .map(|u| String::from_utf8_lossy(u).into_owned())
                });
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
        raw_payload: literal,
        issuers,
        created,
        signer_user_id,
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
                "the secret key {} is protected by a passphrase: give a file holding it (--passphrase-file; --sign-passphrase-file for copy)",
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

    /// Keys and signatures made once with real gpg and skopeo (testdata/README.md, "keys/").
    mod gpg_made {
        use super::*;

        macro_rules! fixture {
            ($name:literal) => {
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/testdata/keys/",
                    $name
                ))
                .as_slice()
            };
        }

        pub(super) fn ring(armored: &[u8]) -> Keyring {
            Keyring::from_bytes(armored).unwrap()
        }

        /// The primary and signing-subkey fingerprints gpg gave the fixture key `name`.
        fn fprs(name: &str) -> (String, Option<String>) {
            let line = include_str!("../../testdata/keys/fingerprints.txt")
                .lines()
                .find(|l| l.split(' ').next() == Some(name))
                .unwrap();
            let mut f = line.split_whitespace().skip(1).map(str::to_string);
            (f.next().unwrap(), f.next())
        }

        fn manifest_digest() -> String {
            Digest::sha256_of(fixture!("manifest.json")).to_string()
        }

        #[test]
        fn skopeo_signatures_verify_and_are_deflate_compressed() {
            let sig = fixture!("trusted.sig");
            // gpg compresses signed messages by default: an old-format compressed data packet
            // (0xa3) with algorithm 1 (ZIP, raw deflate). Verifying it needs sequoia's
            // compression-deflate feature.
            assert_eq!(&sig[..2], &[0xa3, 0x01]);
            let v = verify(sig, &ring(fixture!("trusted.pub.asc"))).unwrap();
            let (fpr, _) = fprs("trusted");
            assert_eq!(v.primary_fingerprint, fpr);
            assert_eq!(v.signing_key_fingerprint, fpr);
            assert_eq!(v.payload.manifest_digest, manifest_digest());
            assert_eq!(v.payload.docker_reference, "registry.ferry.test/app:1");
            assert!(v.payload.creator.is_some() && v.payload.timestamp.is_some());
            assert_eq!(
                v.user_id.as_deref(),
                Some("ferry test trusted <trusted@keys.ferry.test>")
            );
            let created = v.created.unwrap();
            let ts = v.payload.timestamp.unwrap();
            let secs = created
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            assert!(
                (secs - ts).abs() < 60,
                "signed at {secs}, payload says {ts}"
            );
        }

        #[test]
        fn keyrings_hold_several_certs_armored_or_binary() {
            let mut both = fixture!("trusted.pub.asc").to_vec();
            both.extend_from_slice(fixture!("subkey.pub.asc"));
            let r = Keyring::from_bytes(&both).unwrap();
            assert_eq!(r.fingerprints(), [fprs("trusted").0, fprs("subkey").0]);
            let binary = SigningKey::from_bytes(fixture!("trusted.sec.asc"), None, None)
                .unwrap()
                .public_cert();
            assert_ne!(binary[0], b'-', "not armored");
            assert_eq!(
                Keyring::from_bytes(&binary).unwrap().fingerprints(),
                [fprs("trusted").0]
            );
            let merged = Keyring::merge([r, Keyring::default()]);
            assert!(!merged.is_empty() && Keyring::default().is_empty());
            assert!(verify(fixture!("subkey.sig"), &merged).is_ok());
            assert!(verify(fixture!("trusted.sig"), &merged).is_ok());
            assert!(matches!(
                Keyring::from_bytes(b"<html>not a key</html>"),
                Err(SignatureError::Keys(_))
            ));
        }

        #[test]
        fn a_signing_subkey_signs_for_its_key() {
            let (primary, subkey) = fprs("subkey");
            let v = verify(fixture!("subkey.sig"), &ring(fixture!("subkey.pub.asc"))).unwrap();
            assert_eq!(v.primary_fingerprint, primary);
            assert_eq!(Some(v.signing_key_fingerprint), subkey);
        }

        #[test]
        fn an_untrusted_signer_is_named() {
            let (stranger, _) = fprs("untrusted");
            let e = verify(
                fixture!("untrusted.sig"),
                &ring(fixture!("trusted.pub.asc")),
            )
            .unwrap_err();
            assert_eq!(
                e,
                SignatureError::UnknownSigner {
                    issuers: vec![stranger.clone()]
                }
            );
            assert!(e.to_string().contains(&stranger), "{e}");
            // Another keyring that knows the stranger can name it, by fingerprint and user ID.
            let known = ring(fixture!("untrusted.pub.asc"));
            assert_eq!(
                known.owner_of(&stranger),
                Some((
                    stranger.clone(),
                    Some("ferry test untrusted <untrusted@keys.ferry.test>".to_string())
                ))
            );
            assert_eq!(known.owner_of(&stranger[24..]), known.owner_of(&stranger));
            assert_eq!(ring(fixture!("trusted.pub.asc")).owner_of(&stranger), None);
            let u = inspect(fixture!("untrusted.sig")).unwrap();
            assert_eq!(u.issuers, [stranger]);
            assert_eq!(u.payload.unwrap().manifest_digest, manifest_digest());
            assert!(u.created.is_some());
            assert_eq!(u.signer_user_id, None, "skopeo adds no signer's user ID");
        }

        #[test]
        fn expired_and_revoked_keys_and_subkeys_do_not_sign() {
            let (p, _) = fprs("expired");
            let e =
                verify(fixture!("expired.sig"), &ring(fixture!("expired.pub.asc"))).unwrap_err();
            assert!(
                matches!(&e, SignatureError::KeyExpired { primary, user_id: Some(u), .. }
                    if *primary == p && u.contains("expired@keys.ferry.test")),
                "{e:?}"
            );
            assert!(e.to_string().contains("has expired"), "{e}");

            let (p, _) = fprs("revoked");
            let e =
                verify(fixture!("revoked.sig"), &ring(fixture!("revoked.pub.asc"))).unwrap_err();
            assert!(
                matches!(&e, SignatureError::KeyRevoked { primary, .. } if *primary == p),
                "{e:?}"
            );
            assert!(e.to_string().contains("is revoked"), "{e}");

            let (p, sub) = fprs("subkey-revoked");
            let e = verify(
                fixture!("subkey-revoked.sig"),
                &ring(fixture!("subkey-revoked.pub.asc")),
            )
            .unwrap_err();
            assert!(
                matches!(&e, SignatureError::SubkeyRevoked { primary, subkey, .. }
                    if *primary == p && Some(subkey) == sub.as_ref()),
                "{e:?}"
            );

            let (p, sub) = fprs("subkey-expired");
            let e = verify(
                fixture!("subkey-expired.sig"),
                &ring(fixture!("subkey-expired.pub.asc")),
            )
            .unwrap_err();
            assert!(
                matches!(&e, SignatureError::SubkeyExpired { primary, subkey, .. }
                    if *primary == p && Some(subkey) == sub.as_ref()),
                "{e:?}"
            );
            assert!(e.to_string().contains("subkey"), "{e}");
        }

        #[test]
        fn no_changed_byte_verifies_a_different_payload() {
            let sig = fixture!("trusted.sig");
            let keys = ring(fixture!("trusted.pub.asc"));
            let good = verify(sig, &keys).unwrap().payload;
            let mut rejected = 0;
            for i in 0..sig.len() {
                for bit in [0x01u8, 0x80] {
                    let mut bad = sig.to_vec();
                    bad[i] ^= bit;
                    match verify(&bad, &keys) {
                        Ok(v) => assert_eq!(v.payload, good, "byte {i} bit {bit:#x}"),
                        Err(_) => rejected += 1,
                    }
                }
            }
            // Only bytes outside the signed data (e.g. the unhashed issuer subpacket) may change
            // without the signature failing.
            assert!(
                rejected > sig.len() * 3 / 2,
                "{rejected} of {}",
                sig.len() * 2
            );
        }

        #[test]
        fn gpg_exported_secret_keys_sign_with_and_without_passphrase() {
            let (fpr, _) = fprs("trusted");
            let k = SigningKey::from_bytes(fixture!("trusted.sec.asc"), Some(&fpr), None).unwrap();
            assert_eq!(k.fingerprint(), fpr);
            let payload = payload_json(&Digest::sha256_of(b"m"), "example.com/a:1");
            let v = verify(
                &sign(&payload, &k).unwrap(),
                &ring(fixture!("trusted.pub.asc")),
            )
            .unwrap();
            assert_eq!(v.primary_fingerprint, fpr);
            assert!(matches!(
                SigningKey::from_bytes(fixture!("trusted.sec.asc"), Some("0123456789ABCDEF"), None),
                Err(SignatureError::Keys(_))
            ));
            // A public key is no signing key.
            assert!(SigningKey::from_bytes(fixture!("trusted.pub.asc"), None, None).is_err());

            let (fpr, _) = fprs("protected");
            let locked =
                SigningKey::from_bytes(fixture!("protected.sec.asc"), Some(&fpr), None).unwrap();
            let e = sign(&payload, &locked).unwrap_err();
            assert!(e.to_string().contains("passphrase"), "{e}");
            let wrong =
                SigningKey::from_bytes(fixture!("protected.sec.asc"), Some(&fpr), Some("not it"))
                    .unwrap();
            assert!(matches!(
                sign(&payload, &wrong),
                Err(SignatureError::Signing(_))
            ));
            let right = SigningKey::from_bytes(
                fixture!("protected.sec.asc"),
                Some(&fpr),
                Some("ferry test passphrase"),
            )
            .unwrap();
            let sig = sign(&payload, &right).unwrap();
            let v = verify(&sig, &ring(fixture!("protected.pub.asc"))).unwrap();
            assert_eq!(v.primary_fingerprint, fpr);
        }
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
