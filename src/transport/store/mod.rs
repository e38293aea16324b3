//! `store:REF`: ferry's embedded image store. (Stub: being written.)
use super::*;
use crate::reference::DockerReference;
use std::path::{Path, PathBuf};

/// The store's root.
pub struct Store;
impl Store {
    /// The root directory from options, `$FERRY_STORE`, or the XDG default.
    pub fn root(_options: &TransportOptions) -> Result<PathBuf> {
        Err(TransportError::Unsupported(
            "store: not yet implemented".into(),
        ))
    }
}
/// Reads from the store.
pub struct StoreSource;
/// Writes to the store.
pub struct StoreDestination;
impl StoreSource {
    /// Opens an image in the store.
    pub fn open(_root: &Path, _r: &DockerReference) -> Result<StoreSource> {
        Err(TransportError::Unsupported(
            "store: not yet implemented".into(),
        ))
    }
}
impl StoreDestination {
    /// Opens the store for writing an image.
    pub fn open(_root: &Path, _r: &DockerReference) -> Result<StoreDestination> {
        Err(TransportError::Unsupported(
            "store: not yet implemented".into(),
        ))
    }
}

#[async_trait]
impl ImageSource for StoreSource {
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
impl ImageDestination for StoreDestination {
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
