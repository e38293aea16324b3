//! Signing a payload with a secret key, as `gpg --sign` does.

use std::io::Write;

use openpgp::cert::prelude::*;
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{LiteralWriter, Message, Signer};
use sequoia_openpgp as openpgp;

use super::SignatureError;

/// A key to sign with: a certificate with secret key material (read from a key file), or one
/// whose secret key gpg-agent holds (found in the user's GnuPG home).
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub(super) cert: Cert,
    pub(super) passphrase: Option<String>,
    /// Where the secret key is when the certificate has none: gpg-agent.
    pub(super) agent: Option<super::gnupg::AgentKey>,
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
            agent: None,
        })
    }

    /// The key `id` names in the GnuPG home `home` (a fingerprint, a key ID or a user ID, as gpg
    /// reads it), signing through the gpg-agent serving that home, as skopeo's `--sign-by`
    /// does through GPGME. `default_home` is `~/.gnupg` (where the agent's socket is placed
    /// differently) and `uid` the user's ID (for the agent's socket under `/run/user`). The
    /// passphrase, if given, reaches the agent through its loopback pinentry.
    pub fn from_gnupg_home(
        home: &std::path::Path,
        default_home: Option<&std::path::Path>,
        uid: u32,
        id: &str,
        passphrase: Option<&str>,
    ) -> Result<SigningKey, SignatureError> {
        let (cert, agent) = super::gnupg::find_signing_cert(home, default_home, uid, id)?;
        Ok(SigningKey {
            cert,
            passphrase: passphrase.map(str::to_string),
            agent: Some(agent),
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
    if let Some(agent) = &key.agent {
        let signer = super::gnupg::agent_signer(&key.cert, agent, key.passphrase.as_deref())?;
        return signed_message(payload, signer).map_err(|e| match e {
            SignatureError::Signing(why) => SignatureError::Signing(format!(
                "gpg-agent did not sign with {} ({}): {why}",
                agent.signer,
                agent.socket.display()
            )),
            other => other,
        });
    }
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
    signed_message(payload, keypair)
}

/// `payload` as an OpenPGP signed message made by `signer`.
fn signed_message(
    payload: &[u8],
    signer: impl openpgp::crypto::Signer + Send + Sync,
) -> Result<Vec<u8>, SignatureError> {
    let keypair = signer;
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
