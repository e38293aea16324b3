//! `docker://REF`: a registry through the OCI distribution API. (Stub: being written.)
use super::*;
use crate::reference::DockerReference;

/// Reads from a registry.
pub struct DockerSource;
/// Writes to a registry.
pub struct DockerDestination;
impl DockerSource {
    /// Opens an image in a registry.
    pub async fn open(_r: &DockerReference, _o: &TransportOptions) -> Result<DockerSource> {
        Err(TransportError::Unsupported(
            "docker: not yet implemented".into(),
        ))
    }
}
impl DockerDestination {
    /// Opens a registry for writing an image.
    pub async fn open(_r: &DockerReference, _o: &TransportOptions) -> Result<DockerDestination> {
        Err(TransportError::Unsupported(
            "docker: not yet implemented".into(),
        ))
    }
}

#[async_trait]
impl ImageSource for DockerSource {
    fn reference(&self) -> &ImageReference {
        unreachable!()
    }
    async fn manifest(&self, _i: Option<&Digest>) -> Result<RawManifest> {
        unreachable!()
    }
    async fn blob(&self, _d: &Descriptor) -> Result<ByteStream> {
        unreachable!()
    }
    async fn signatures(&self, _m: &Digest, _i: Option<&Digest>) -> Result<Vec<SignatureSlot>> {
        unreachable!()
    }
}
#[async_trait]
impl ImageDestination for DockerDestination {
    fn reference(&self) -> &ImageReference {
        unreachable!()
    }
    fn signature_support(&self) -> SignatureSupport {
        unreachable!()
    }
    async fn try_reuse_blob(&self, _d: &Descriptor, _s: &ImageReference) -> Result<bool> {
        unreachable!()
    }
    async fn put_blob(&self, _d: &Descriptor, _s: ByteStream) -> Result<()> {
        unreachable!()
    }
    async fn put_manifest(&self, _m: &RawManifest, _i: Option<&Digest>) -> Result<()> {
        unreachable!()
    }
    async fn put_signatures(&self, _m: &Digest, _i: Option<&Digest>, _s: &[Vec<u8>]) -> Result<()> {
        unreachable!()
    }
    async fn commit(self: Box<Self>) -> Result<()> {
        unreachable!()
    }
}
