//! Signing the copied image (`--sign-by`): a simple-signing signature of the destination's
//! manifest digest for the destination's identity.

use std::sync::Arc;

use crate::digest::Digest;
use crate::hint::{Hint, Hinted};
use crate::reference::{DockerReference, ImageReference};
use crate::signature::simple::{self, SigningKey};

/// Signing the copied image with simple signing.
#[derive(Clone)]
pub struct SignOptions {
    /// The secret key.
    pub key: Arc<SigningKey>,
    /// The identity to sign for; default: the destination's docker reference.
    pub identity: Option<DockerReference>,
}

impl std::fmt::Debug for SignOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignOptions")
            .field("key", &self.key.fingerprint())
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
    /// The signature could not be made.
    #[error(transparent)]
    Signature(#[from] simple::SignatureError),
}

impl Hinted for SignError {
    fn hint(&self) -> Option<Hint> {
        match self {
            SignError::NoIdentity { .. } => Some(Hint::SignIdentity),
            _ => None,
        }
    }
}

/// Signs the manifest `digest` written to `dst`.
pub fn sign_manifest(
    dst: &ImageReference,
    digest: &Digest,
    sign: &SignOptions,
) -> Result<Vec<u8>, SignError> {
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
    let payload = simple::payload_json(digest, &identity.to_string());
    Ok(simple::sign(&payload, &sign.key)?)
}
