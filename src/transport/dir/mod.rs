//! `dir:PATH`: the containers directory format. (Stub: being written.)
use super::*;
use std::path::Path;

/// Reads a `dir:` image.
pub struct DirSource;
/// Writes a `dir:` image.
pub struct DirDestination;

impl DirSource {
    /// Opens a directory for reading.
    pub fn open(_path: &Path) -> Result<DirSource> {
        Err(TransportError::Unsupported(
            "dir: not yet implemented".into(),
        ))
    }
}
impl DirDestination {
    /// Opens a directory for writing.
    pub fn open(_path: &Path) -> Result<DirDestination> {
        Err(TransportError::Unsupported(
            "dir: not yet implemented".into(),
        ))
    }
}

#[async_trait]
impl ImageSource for DirSource {
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
impl ImageDestination for DirDestination {
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
