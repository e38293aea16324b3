//! `store:REF`: ferry's embedded image store, the default place pulls land.
//!
//! The root is an OCI image layout (other OCI tools can read the images), with names in the
//! `org.opencontainers.image.ref.name` annotation, plus:
//! - `signatures/sha256-HEX/signature-N`: the signatures kept with manifest HEX, as received;
//! - `records/sha256-HEX/TIME.json`: one record per copy into the store.
//!
//! Blobs are streamed to temp files and renamed into place; signatures are staged in a temp
//! directory; on commit, under the store's lock, the signature set is renamed into place, the
//! records are written, and `index.json` changes last. Every temporary name carries the copy's
//! session id, whose lock file the copy holds: a later copy removes the leftovers of sessions
//! whose lock is free (killed copies).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;

use super::fsutil::{self, FileLock, TEMP_PREFIX};
use super::oci_layout::{Layout, index_descriptor};
use super::*;
use crate::reference::DockerReference;
use crate::signature::SignatureSlot;

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    /// Its full name (`docker.io/library/app:1`).
    pub name: String,
    /// Its manifest digest.
    pub digest: Digest,
    /// Its manifest's media type.
    pub media_type: String,
}

/// ferry's store at a root directory.
#[derive(Debug, Clone)]
pub struct Store {
    layout: Layout,
}

fn digest_dir(d: &Digest) -> String {
    format!("{}-{}", d.algorithm().name(), d.hex())
}

impl Store {
    /// The root directory from options, `$FERRY_STORE`, `$XDG_DATA_HOME/ferry/store` or
    /// `~/.local/share/ferry/store`.
    pub fn root(options: &TransportOptions) -> Result<PathBuf> {
        if let Some(r) = &options.store_root {
            return Ok(r.clone());
        }
        if let Some(r) = std::env::var_os("FERRY_STORE").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(r));
        }
        if let Some(d) = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
        {
            return Ok(d.join("ferry/store"));
        }
        std::env::home_dir()
            .map(|h| h.join(".local/share/ferry/store"))
            .ok_or_else(|| {
                TransportError::Config(
                    "no home directory for the store: give --store DIR or set FERRY_STORE".into(),
                )
            })
    }

    /// The store at `root` (it may not exist yet).
    pub fn open(root: &Path) -> Result<Store> {
        Ok(Store {
            layout: Layout::new(root),
        })
    }

    /// The root directory.
    pub fn root_dir(&self) -> &Path {
        self.layout.root()
    }

    /// Every image in the store.
    pub fn images(&self) -> Result<Vec<StoredImage>> {
        if !self.layout.root().join("index.json").exists() {
            return Ok(vec![]);
        }
        Ok(self
            .layout
            .entries()?
            .into_iter()
            .filter_map(|(n, d)| {
                n.map(|name| StoredImage {
                    name,
                    digest: d.digest,
                    media_type: d.media_type,
                })
            })
            .collect())
    }

    /// The image named `name`.
    pub fn resolve(&self, name: &DockerReference) -> Result<StoredImage> {
        let want = name.to_string();
        self.images()?
            .into_iter()
            .find(|i| i.name == want)
            .ok_or_else(|| {
                TransportError::NotFound(format!(
                    "no image {want} in ferry's store at {} (list them with `ferry inspect` on a store: name you copied, or copy one in first)",
                    self.layout.root().display()
                ))
            })
    }

    /// A manifest's exact bytes.
    pub fn manifest_bytes(&self, digest: &Digest) -> Result<Bytes> {
        self.layout.read_manifest_blob(digest)
    }

    fn signature_dir(&self, digest: &Digest) -> PathBuf {
        self.layout
            .root()
            .join("signatures")
            .join(digest_dir(digest))
    }

    /// Where stored signature `n` of a manifest is.
    pub fn signature_path(&self, digest: &Digest, n: usize) -> PathBuf {
        self.signature_dir(digest).join(format!("signature-{n}"))
    }

    /// The stored signatures of a manifest, in order, as received.
    pub fn signatures(&self, digest: &Digest) -> Result<Vec<(usize, Vec<u8>)>> {
        let slots =
            fsutil::read_signature_files(&self.signature_dir(digest), |n| format!("signature-{n}"));
        slots
            .into_iter()
            .map(|s| {
                s.content
                    .map(|b| (s.index, b))
                    .map_err(|e| TransportError::Io {
                        path: PathBuf::from(&s.location),
                        source: std::io::Error::other(e.message),
                    })
            })
            .collect()
    }

    /// The records of every copy of a manifest into the store, oldest first.
    pub fn records(&self, digest: &Digest) -> Result<Vec<(PathBuf, serde_json::Value)>> {
        let dir = self.layout.root().join("records").join(digest_dir(digest));
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .filter(|p| {
                    !p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(TEMP_PREFIX))
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => return Err(TransportError::io(&dir, e)),
        };
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let bytes = fsutil::read(&p)?;
                let v =
                    serde_json::from_slice(&bytes).map_err(|e| TransportError::InvalidLayout {
                        path: p.clone(),
                        why: format!("not valid JSON: {e}"),
                    })?;
                Ok((p, v))
            })
            .collect()
    }

    /// Removes what killed copies left behind: temporary files of sessions whose lock is free.
    fn clean_leftovers(&self) {
        let root = self.layout.root();
        let Ok(rd) = std::fs::read_dir(root) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(session) = name
                .strip_prefix(TEMP_PREFIX)
                .and_then(|s| s.strip_suffix(".lock"))
            else {
                continue;
            };
            let Some(_held) = FileLock::try_acquire(&e.path()) else {
                continue;
            };
            let prefix = format!("{TEMP_PREFIX}{session}-");
            for dir in [
                root.join("blobs/sha256"),
                root.join("blobs/sha512"),
                root.join("signatures"),
                root.to_path_buf(),
            ] {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for f in entries.flatten() {
                    if f.file_name().to_string_lossy().starts_with(&prefix) {
                        let p = f.path();
                        let _ = if p.is_dir() {
                            std::fs::remove_dir_all(&p)
                        } else {
                            std::fs::remove_file(&p)
                        };
                    }
                }
            }
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Reads an image from the store.
pub struct StoreSource {
    reference: ImageReference,
    store: Store,
    image: StoredImage,
}

impl StoreSource {
    /// Opens the image `name` of the store at `root`.
    pub fn open(root: &Path, name: &DockerReference) -> Result<StoreSource> {
        let store = Store::open(root)?;
        let image = store.resolve(name)?;
        Ok(StoreSource {
            reference: ImageReference::Store(name.clone()),
            store,
            image,
        })
    }
}

#[async_trait]
impl ImageSource for StoreSource {
    fn reference(&self) -> &ImageReference {
        &self.reference
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<RawManifest> {
        let (digest, media_type) = match instance {
            None => (
                &self.image.digest,
                Some(self.image.media_type.clone()).filter(|m| !m.is_empty()),
            ),
            Some(d) => (d, None),
        };
        Ok(RawManifest {
            bytes: self.store.manifest_bytes(digest)?,
            media_type,
        })
    }

    async fn blob(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        fsutil::file_stream(&self.store.layout.blob_path(&descriptor.digest)).await
    }

    async fn signatures(
        &self,
        manifest_digest: &Digest,
        _instance: Option<&Digest>,
    ) -> Result<Vec<SignatureSlot>> {
        let dir = self.store.signature_dir(manifest_digest);
        Ok(fsutil::read_signature_files(&dir, |n| {
            format!("signature-{n}")
        }))
    }
}

struct Pending {
    top: Option<RawManifest>,
    signatures: Vec<(Digest, Vec<Vec<u8>>)>,
    records: Vec<(Digest, serde_json::Value)>,
}

/// Writes an image into the store.
pub struct StoreDestination {
    reference: ImageReference,
    store: Store,
    name: String,
    session: String,
    _session_lock: FileLock,
    pending: Mutex<Pending>,
}

impl StoreDestination {
    /// Opens the store at `root` (creating it) to add the image `name`.
    pub fn open(root: &Path, name: &DockerReference) -> Result<StoreDestination> {
        if root.exists() && !root.is_dir() {
            return Err(TransportError::InvalidLayout {
                path: root.to_path_buf(),
                why: "the store root is not a directory".into(),
            });
        }
        fsutil::mkdir_all(&root.join("blobs/sha256"))?;
        let store = Store::open(root)?;
        store.clean_leftovers();
        let session = format!("{:016x}", rand::random::<u64>());
        let lock_path = root.join(format!("{TEMP_PREFIX}{session}.lock"));
        let lock = {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| TransportError::io(&lock_path, e))?;
            drop(f);
            FileLock::try_acquire(&lock_path).ok_or_else(|| {
                TransportError::Unsupported(format!("cannot lock {}", lock_path.display()))
            })?
        };
        Ok(StoreDestination {
            reference: ImageReference::Store(name.clone()),
            store,
            name: name.to_string(),
            session,
            _session_lock: lock,
            pending: Mutex::new(Pending {
                top: None,
                signatures: vec![],
                records: vec![],
            }),
        })
    }

    fn temp_prefix(&self) -> String {
        format!("{TEMP_PREFIX}{}-", self.session)
    }
}

impl Drop for StoreDestination {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(
            self.store
                .layout
                .root()
                .join(format!("{TEMP_PREFIX}{}.lock", self.session)),
        );
    }
}

#[async_trait]
impl ImageDestination for StoreDestination {
    fn reference(&self) -> &ImageReference {
        &self.reference
    }

    fn signature_support(&self) -> SignatureSupport {
        SignatureSupport::Yes
    }

    async fn try_reuse_blob(
        &self,
        descriptor: &Descriptor,
        _source: &ImageReference,
    ) -> Result<bool> {
        Ok(fsutil::has_file_of_size(
            &self.store.layout.blob_path(&descriptor.digest),
            descriptor.size,
        ))
    }

    async fn put_blob(&self, descriptor: &Descriptor, stream: ByteStream) -> Result<()> {
        let final_path = self.store.layout.blob_path(&descriptor.digest);
        let dir = final_path
            .parent()
            .unwrap_or(self.store.layout.root())
            .to_path_buf();
        fsutil::mkdir_all(&dir)?;
        let tmp = fsutil::stream_to_temp(&dir, &self.temp_prefix(), stream).await?;
        fsutil::persist(tmp, &final_path)
    }

    async fn put_manifest(&self, manifest: &RawManifest, instance: Option<&Digest>) -> Result<()> {
        self.store
            .layout
            .put_small_blob(&Digest::sha256_of(&manifest.bytes), &manifest.bytes)?;
        if instance.is_none()
            && let Ok(mut p) = self.pending.lock()
        {
            p.top = Some(manifest.clone());
        }
        Ok(())
    }

    async fn put_signatures(
        &self,
        manifest_digest: &Digest,
        _instance: Option<&Digest>,
        signatures: &[Vec<u8>],
    ) -> Result<()> {
        if let Ok(mut p) = self.pending.lock() {
            p.signatures
                .push((manifest_digest.clone(), signatures.to_vec()));
        }
        Ok(())
    }

    async fn put_record(&self, manifest_digest: &Digest, record: &serde_json::Value) -> Result<()> {
        if let Ok(mut p) = self.pending.lock() {
            p.records.push((manifest_digest.clone(), record.clone()));
        }
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let pending = {
            let mut p = self
                .pending
                .lock()
                .map_err(|_| TransportError::Unsupported("store state poisoned".into()))?;
            Pending {
                top: p.top.take(),
                signatures: std::mem::take(&mut p.signatures),
                records: std::mem::take(&mut p.records),
            }
        };
        let top = pending
            .top
            .ok_or_else(|| TransportError::Unsupported("commit without a manifest".into()))?;
        let root = self.store.layout.root().to_path_buf();
        let sig_root = root.join("signatures");
        fsutil::mkdir_all(&sig_root)?;
        // Stage signature sets outside the lock; they become visible by rename under it.
        let mut staged = Vec::new();
        for (digest, sigs) in &pending.signatures {
            let dir = tempfile::Builder::new()
                .prefix(&self.temp_prefix())
                .tempdir_in(&sig_root)
                .map_err(|e| TransportError::io(&sig_root, e))?;
            for (i, s) in sigs.iter().enumerate() {
                let p = dir.path().join(format!("signature-{}", i + 1));
                std::fs::write(&p, s).map_err(|e| TransportError::io(&p, e))?;
                if let Ok(f) = std::fs::File::open(&p) {
                    let _ = f.sync_all();
                }
            }
            staged.push((digest.clone(), dir));
        }
        let _lock = FileLock::acquire(root.join(".ferry.lock")).await?;
        for (digest, dir) in staged {
            let target = self.store.signature_dir(&digest);
            let new = dir.keep();
            if target.exists() {
                let aside = sig_root.join(format!("{}old-{}", self.temp_prefix(), digest.hex()));
                std::fs::rename(&target, &aside).map_err(|e| TransportError::io(&target, e))?;
                std::fs::rename(&new, &target).map_err(|e| TransportError::io(&target, e))?;
                let _ = std::fs::remove_dir_all(&aside);
            } else {
                std::fs::rename(&new, &target).map_err(|e| TransportError::io(&target, e))?;
            }
        }
        fsutil::sync_dir(&sig_root);
        let time = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ").to_string();
        for (digest, record) in &pending.records {
            let dir = root.join("records").join(digest_dir(digest));
            fsutil::mkdir_all(&dir)?;
            let bytes = serde_json::to_vec_pretty(record)
                .map_err(|e| TransportError::Unsupported(e.to_string()))?;
            fsutil::write_atomic(&dir.join(format!("{time}.json")), &bytes)?;
        }
        self.store
            .layout
            .set_index_entry(Some(&self.name), index_descriptor(&top, Some(&self.name)))?;
        Ok(())
    }
}
