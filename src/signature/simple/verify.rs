//! Verifying a simple signing signature against a keyring, and reading one without
//! verifying it (for forensics and for naming an unknown signer).

use std::io::Read;
use std::time::SystemTime;

use openpgp::cert::prelude::*;
use openpgp::parse::stream::{
    MessageLayer, MessageStructure, VerificationError, VerificationHelper, VerifierBuilder,
};
use openpgp::parse::{PacketParser, PacketParserResult, Parse};
use openpgp::policy::StandardPolicy;
use openpgp::types::RevocationStatus;
use openpgp::{KeyHandle, Packet};
use sequoia_openpgp as openpgp;

use super::SignatureError;
use super::keyring::{Keyring, primary_user_id};
use super::payload::{Payload, parse_payload};

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
