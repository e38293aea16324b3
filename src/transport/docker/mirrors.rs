//! A pull through registries.conf: the image is read from the first endpoint that has it (the
//! mirrors in order, then the registry itself), while it keeps the reference the user asked
//! for. That reference is the image's identity for the policy, as containers/image's
//! `logicalRef`; the endpoint's reference (`physicalRef`) is only where bytes and signatures
//! are read from.

use async_trait::async_trait;

use super::DockerSource;
use crate::digest::{ByteStream, Digest};
use crate::manifest::Descriptor;
use crate::reference::{DockerReference, ImageReference};
use crate::transport::{ImageSource, RawManifest, Result, SignatureSet};

/// A docker source read from an endpoint other than the reference's own registry path (a
/// mirror, or a `location` that rewrites a `prefix`).
pub struct EndpointSource {
    logical: ImageReference,
    inner: DockerSource,
    top: RawManifest,
    pulled_from: String,
}

impl EndpointSource {
    /// `inner` reads `physical`, whose top-level manifest `top` was already fetched (that fetch
    /// is how an endpoint is chosen); `logical` is the reference the user asked for.
    pub fn new(
        logical: &DockerReference,
        physical: &DockerReference,
        mirror: bool,
        inner: DockerSource,
        top: RawManifest,
    ) -> EndpointSource {
        EndpointSource {
            logical: super::Reference::image(logical.clone()),
            inner,
            top,
            pulled_from: format!(
                "docker://{physical}{}",
                if mirror { " (mirror)" } else { "" }
            ),
        }
    }
}

#[async_trait]
impl ImageSource for EndpointSource {
    fn reference(&self) -> &ImageReference {
        &self.logical
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<RawManifest> {
        match instance {
            // The manifest the endpoint was chosen with, so its signatures and its blobs are
            // the ones of that manifest even if a tag moves meanwhile.
            None => Ok(self.top.clone()),
            Some(_) => self.inner.manifest(instance).await,
        }
    }

    async fn blob(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        self.inner.blob(descriptor).await
    }

    async fn signatures(
        &self,
        manifest_digest: &Digest,
        instance: Option<&Digest>,
    ) -> Result<SignatureSet> {
        self.inner.signatures(manifest_digest, instance).await
    }

    fn pulled_from(&self) -> Option<String> {
        Some(self.pulled_from.clone())
    }
}
