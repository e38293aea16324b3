//! Trusted OpenPGP certificates.

use openpgp::cert::prelude::*;
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use sequoia_openpgp as openpgp;

use super::SignatureError;

/// A set of trusted OpenPGP certificates (public keys).
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    pub(super) certs: Vec<Cert>,
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
    /// key or of a subkey, as [`SignatureError::UnknownSigner`] and [`super::Unverified`] list them):
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

pub(super) fn primary_user_id(cert: &Cert) -> Option<String> {
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
