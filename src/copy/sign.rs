//! Signing the copied image: a simple-signing signature (`--sign-by`) and/or a sigstore one
//! (`--sign-by-sigstore-private-key`) of the destination's manifest digest, for the
//! destination's identity.

use std::sync::Arc;

use crate::digest::Digest;
use crate::hint::{Hint, Hinted};
use crate::reference::{DockerReference, ImageReference};
use crate::signature::sigstore::{self, SIGNATURE_ANNOTATION, SIGNATURE_MIME_TYPE};
use crate::signature::simple::{self, SigningKey};

/// A key the copy signs with.
#[derive(Clone)]
#[non_exhaustive]
pub enum SignKey {
    /// An OpenPGP secret key: a simple-signing signature.
    SimpleSigning(Arc<SigningKey>),
    /// A sigstore (cosign) private key: a sigstore signature.
    Sigstore(Arc<sigstore::PrivateKey>),
}

/// Signing the copied image.
#[derive(Clone)]
pub struct SignOptions {
    /// The keys; each makes one signature, in this order.
    pub keys: Vec<SignKey>,
    /// The identity to sign for; default: the destination's docker reference.
    pub identity: Option<DockerReference>,
}

impl std::fmt::Debug for SignOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|k| match k {
                SignKey::SimpleSigning(k) => format!("simple-signing {}", k.fingerprint()),
                SignKey::Sigstore(k) => format!("sigstore {}", k.public_key().id()),
            })
            .collect();
        f.debug_struct("SignOptions")
            .field("keys", &keys)
            .field("identity", &self.identity)
            .finish()
    }
}

/// Why the copied image could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The destination has no docker reference (dir:, oci:) and no identity was given.
    #[error("{destination} has no docker reference to sign for; give the identity to sign")]
    NoIdentity {
        /// The destination.
        destination: String,
    },
    /// The identity has neither tag nor digest.
    #[error("the identity {0} needs a tag or digest")]
    Untagged(String),
    /// The simple-signing signature could not be made.
    #[error(transparent)]
    Signature(#[from] simple::SignatureError),
    /// The sigstore signature could not be made.
    #[error("sigstore: {0}")]
    Sigstore(String),
}

impl Hinted for SignError {
    fn hint(&self) -> Option<Hint> {
        match self {
            SignError::NoIdentity { .. } => Some(Hint::SignIdentity),
            _ => None,
        }
    }
}

/// Signs the manifest `digest` written to `dst` with every key: the signatures, in the order of
/// the keys, each in the blob form a destination stores.
pub fn sign_manifest(
    dst: &ImageReference,
    digest: &Digest,
    sign: &SignOptions,
) -> Result<Vec<Vec<u8>>, SignError> {
    let identity = match (&sign.identity, dst.docker_reference()) {
        (Some(i), _) => i.clone(),
        (None, Some(r)) => r,
        (None, None) => {
            return Err(SignError::NoIdentity {
                destination: dst.to_string(),
            });
        }
    };
    if identity.tag().is_none() && identity.digest().is_none() {
        return Err(SignError::Untagged(identity.to_string()));
    }
    sign.keys
        .iter()
        .map(|key| match key {
            SignKey::SimpleSigning(k) => {
                let payload = simple::payload_json(digest, &identity.to_string());
                Ok(simple::sign(&payload, k)?)
            }
            SignKey::Sigstore(k) => sign_sigstore(digest, &identity, k),
        })
        .collect()
}

/// A sigstore signature of `digest` for `identity`, as containers/image makes one: the cosign
/// payload with ferry as its creator and the time, the signature as an annotation.
fn sign_sigstore(
    digest: &Digest,
    identity: &DockerReference,
    key: &sigstore::PrivateKey,
) -> Result<Vec<u8>, SignError> {
    use base64::Engine;
    let payload = sigstore::SigstorePayload::new(
        digest,
        &identity.to_string(),
        Some(format!("ferry {}", env!("CARGO_PKG_VERSION"))),
        Some(chrono::Utc::now().timestamp()),
    )
    .to_json()
    .map_err(|e| SignError::Sigstore(e.to_string()))?;
    let signature = key
        .sign(&payload)
        .map_err(|e| SignError::Sigstore(e.to_string()))?;
    Ok(sigstore::SigstoreSignature {
        mime_type: SIGNATURE_MIME_TYPE.to_string(),
        payload,
        annotations: [(
            SIGNATURE_ANNOTATION.to_string(),
            base64::engine::general_purpose::STANDARD.encode(signature),
        )]
        .into(),
    }
    .to_blob())
}
