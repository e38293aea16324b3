//! Signing a payload with a secret key, as `gpg --sign` does.

use std::io::Write;

use openpgp::cert::prelude::*;
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{LiteralWriter, Message, Signer};
use sequoia_openpgp as openpgp;

use super::SignatureError;

/// A certificate with secret key material, to sign with.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub(super) cert: Cert,
    pub(super) passphrase: Option<String>,
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
                "the secret key {} is protected by a passphrase: give the file that holds its passphrase",
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
