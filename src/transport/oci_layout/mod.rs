//! `oci:PATH`: the OCI image layout. (Stub: being written.)
use super::*;
use std::path::Path;

/// Reads a `oci:` image.
pub struct OciLayoutSource;
/// Writes a `oci:` image.
pub struct OciLayoutDestination;

impl OciLayoutSource {
    /// Opens a directory for reading.
    pub fn open(_path: &Path, _tag: Option<&str>) -> Result<OciLayoutSource> {
        Err(TransportError::Unsupported(
            "oci: not yet implemented".into(),
        ))
    }
}
impl OciLayoutDestination {
    /// Opens a directory for writing.
    pub fn open(_path: &Path, _tag: Option<&str>) -> Result<OciLayoutDestination> {
        Err(TransportError::Unsupported(
            "oci: not yet implemented".into(),
        ))
    }
}

#[async_trait]
impl ImageSource for OciLayoutSource {
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
impl ImageDestination for OciLayoutDestination {
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
