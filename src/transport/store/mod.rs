//! `store:REF`: ferry's embedded image store, the default place pulls land.
//!
//! The root is an OCI image layout (other OCI tools can read the images), with names in the
//! `org.opencontainers.image.ref.name` annotation, plus:
//! - `signatures/sha256-HEX/signature-N`: every signature received with manifest HEX, as
//!   received, under any name; a copy adds the ones the store does not have yet and never
//!   removes one, so the evidence of an earlier pull survives a later one;
//! - `records/sha256-HEX/TIME.json`: one record per copy into the store, naming the name it was
//!   made for and (by sha256) the signatures that copy wrote;
//! - `records/sha256-HEX/unpacked/TIME.json`: one record per unpack of the image into a runtime
//!   bundle (`ferry unpack store:NAME`): where, and under which verdict.
//!
//! Reading `store:NAME` gives the signatures of NAME's newest record, so two names that share
//! a manifest each keep the signatures that arrived with them.
//!
//! Blobs are streamed to temp files and renamed into place; on commit, under the store's lock,
//! new signatures are added (each file written beside its name and renamed), the records are
//! written, and `index.json` changes last. Every temporary name carries the copy's session id,
//! whose lock file the copy holds: a later copy removes the leftovers of sessions whose lock is
//! free (killed copies).
//!
//! A copy *holds* every blob and manifest its image needs, from the moment it writes or reuses
//! one until its commit: a hard link named with its session (`blobs/sha256/.ferry-tmp-ID-hold-HEX`)
//! to the same file. A prune ([`lifecycle`]) leaves a held blob's name alone, and one that
//! removed it anyway (it looked just before the hold was made) cannot take the file; the
//! commit, under the lock prunes also take, puts every held blob back under its name before
//! `index.json` names it. docs/store.md has the whole argument.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;

pub mod check;
pub mod forensics;
pub mod lifecycle;

pub use check::{
    CheckOptions, CheckReport, Problem, ProblemKind, RepairFailure, RepairReport, RepairedBlob,
};
pub use lifecycle::{
    BlobUsage, DiskUsage, FilesUsage, ImageSummary, ImageUsage, LifecycleError, PruneOptions,
    PruneReport, PrunedBlob, PrunedRecord, RecordedVerdict, RemoveOptions, RemoveReport,
    RemovedImage,
};

use super::fsutil::{self, FileLock, TEMP_PREFIX, TempSession};
use super::oci_layout::{Layout, index_descriptor, referrer_descriptor};
use super::referrers::{self, Attached, AttachedKind, Referrers, Via};
use super::*;

pub mod reference;
pub use reference::Reference;

/// The `store:` transport: ferry's own store, at the session's store root.
pub struct StoreTransport;

#[async_trait]
impl Transport for StoreTransport {
    fn name(&self) -> &'static str {
        reference::NAME
    }
    fn grammar(&self) -> &'static str {
        "store:REF"
    }
    fn parse(&self, within: &str) -> std::result::Result<ImageReference, ReferenceError> {
        Reference::parse(within)
    }
    fn sync_destination(
        &self,
        name: &str,
    ) -> Option<std::result::Result<ImageReference, ReferenceError>> {
        Some(Reference::parse(name))
    }
    async fn open_source(
        &self,
        session: &Session,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Box<dyn ImageSource>> {
        let Reference(name) = registry::own::<Reference>(reference)?;
        Ok(Box::new(
            StoreSource::open(session.store(reference)?, name)?.with_referrers(options.referrers),
        ))
    }
    async fn open_destination(
        &self,
        session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
    ) -> Result<Box<dyn ImageDestination>> {
        let Reference(name) = registry::own::<Reference>(reference)?;
        Ok(Box::new(StoreDestination::open(
            session.store(reference)?,
            name,
        )?))
    }
    async fn present(
        &self,
        session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
    ) -> Result<Option<Present>> {
        let Reference(name) = registry::own::<Reference>(reference)?;
        let store = session.store(reference)?;
        match store.resolve(name) {
            Ok(image) => {
                let n = store.signatures(&image.digest)?.len();
                Ok(Some(Present::new(image.digest, n)))
            }
            Err(TransportError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The store's tagged names in the repository of `reference` (`mirror.example/m/app:*`).
    async fn list_repository(
        &self,
        session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
    ) -> Result<Vec<HeldImage>> {
        let Reference(name) = registry::own::<Reference>(reference)?;
        let repository = name.name();
        let mut out = Vec::new();
        for image in session.store(reference)?.images()? {
            let Ok(held) = DockerReference::parse(&image.name) else {
                continue;
            };
            if let (true, Some(tag)) = (held.name() == repository, held.tag()) {
                out.push(HeldImage::new(tag, Reference::image(held.clone())));
            }
        }
        Ok(out)
    }

    /// Removes the name from the store ([`Store::remove`]): the image can no longer be read
    /// under it, its blobs stay until `ferry store prune`, and its records and signatures stay
    /// as evidence unless `request.purge_evidence`.
    async fn delete(
        &self,
        session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
        request: &DeleteRequest,
    ) -> Result<Option<Deletion>> {
        let Reference(name) = registry::own::<Reference>(reference)?;
        let store = session.store(reference)?;
        let digest = match store.resolve(name) {
            Ok(image) => image.digest,
            Err(TransportError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let options = RemoveOptions::new().purge_evidence(request.purge_evidence);
        let report = store
            .remove(std::slice::from_ref(name), &options)
            .map_err(|e| match e {
                LifecycleError::Store(t) => t,
                other => TransportError::Unsupported(other.to_string()),
            })?;
        let mut deletion = Deletion::name_only(
            digest,
            if request.purge_evidence {
                "the blobs stay until `ferry store prune`"
            } else {
                "its records and signatures stay as evidence, its blobs until `ferry store prune`"
            },
        );
        if !report.purged.is_empty() {
            deletion
                .removed
                .push(format!("{} evidence file(s)", report.purged.len()));
        }
        Ok(Some(deletion))
    }
}
use crate::record::{Record, RecordError, UnpackRecord};
use crate::reference::DockerReference;
use crate::signature::{SignatureSlot, SlotReadError, SlotReadErrorKind};

/// A signature kept in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSignature {
    /// Its file, `signature-N`.
    pub index: usize,
    /// Its bytes, as received.
    pub bytes: Vec<u8>,
    /// sha256 of the bytes: how records name it.
    pub digest: Digest,
}

/// A record file of the store: its path, and the record or why it cannot be read.
#[derive(Debug)]
pub struct StoredRecord {
    /// The file.
    pub path: PathBuf,
    /// The record.
    pub record: std::result::Result<Record, RecordError>,
}

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

/// The digest a `signatures/` or `records/` directory name (`sha256-HEX`) stands for.
fn digest_of_dir(name: &str) -> Option<Digest> {
    let (alg, hex) = name.split_once('-')?;
    Digest::parse(&format!("{alg}:{hex}")).ok()
}

/// The name of the store's lock file: commits, removals and prunes change the store under it.
pub const LOCK_FILE: &str = ".ferry.lock";

impl Store {
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
                    "no image {want} in ferry's store at {} (copy one in first)",
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

    /// Every signature kept with a manifest, in the order received (under any name).
    pub fn signatures(&self, digest: &Digest) -> Result<Vec<StoredSignature>> {
        let slots =
            fsutil::read_signature_files(&self.signature_dir(digest), |n| format!("signature-{n}"));
        slots
            .into_iter()
            .map(|s| {
                s.content
                    .map(|bytes| StoredSignature {
                        index: s.index,
                        digest: Digest::sha256_of(&bytes),
                        bytes,
                    })
                    .map_err(|e| TransportError::Io {
                        path: PathBuf::from(&s.location),
                        source: std::io::Error::other(e.message),
                    })
            })
            .collect()
    }

    /// The records of every copy of a manifest into the store (under any name), oldest first;
    /// a record that cannot be parsed is in the list with its error.
    pub fn records(&self, digest: &Digest) -> Result<Vec<StoredRecord>> {
        self.records_in(&self.records_dir(digest))
    }

    fn records_dir(&self, digest: &Digest) -> PathBuf {
        self.layout.root().join("records").join(digest_dir(digest))
    }

    fn records_in(&self, dir: &Path) -> Result<Vec<StoredRecord>> {
        record_files(dir)?
            .into_iter()
            .map(|p| {
                let bytes = fsutil::read_capped(&p, fsutil::MAX_CONFIG_FILE)?;
                Ok(StoredRecord {
                    record: Record::from_json(&bytes),
                    path: p,
                })
            })
            .collect()
    }

    /// Every record in the store, by the manifest digest of its directory, oldest first within
    /// each; directories whose name is not a digest are skipped.
    pub fn all_records(&self) -> Result<Vec<(Digest, StoredRecord)>> {
        let dir = self.layout.root().join("records");
        let mut dirs: Vec<(Digest, PathBuf)> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    digest_of_dir(&e.file_name().to_string_lossy()).map(|d| (d, e.path()))
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => return Err(TransportError::io(&dir, e)),
        };
        dirs.sort();
        let mut out = Vec::new();
        for (d, p) in dirs {
            for r in self.records_in(&p)? {
                out.push((d.clone(), r));
            }
        }
        Ok(out)
    }

    /// The manifest digest of the newest copy the store recorded for `name`, whether or not the
    /// name is still in `index.json`: how the evidence of a removed name is found. For a list
    /// copied with its instances, the list's digest. `None` when no record names it.
    pub fn recorded_digest(&self, name: &DockerReference) -> Result<Option<Digest>> {
        let wanted = Reference::image(name.clone()).to_string();
        let mine: Vec<(Digest, Record)> = self
            .all_records()?
            .into_iter()
            .filter_map(|(d, r)| r.record.ok().map(|r| (d, r)))
            .filter(|(d, r)| r.destination == wanted && r.manifest.digest == *d)
            .collect();
        let Some(newest) = mine.iter().map(|(_, r)| r.time.clone()).max() else {
            return Ok(None);
        };
        // One copy writes one record per manifest (the instances, then the list), all with the
        // same time: the list, if there is one, is the name's top level.
        let copy: Vec<&(Digest, Record)> = mine.iter().filter(|(_, r)| r.time == newest).collect();
        Ok(copy
            .iter()
            .find(|(_, r)| r.manifest.is_list)
            .or_else(|| copy.last())
            .map(|(d, _)| d.clone()))
    }

    /// The newest readable record of a copy of manifest `digest` to `destination` (a
    /// `store:` reference as text).
    fn newest_record_of(&self, destination: &str, digest: &Digest) -> Result<Option<Record>> {
        Ok(self
            .records(digest)?
            .into_iter()
            .filter_map(|r| r.record.ok())
            .filter(|r| r.destination == destination && r.manifest.digest == *digest)
            .max_by(|a, b| a.time.cmp(&b.time)))
    }

    /// The signature slots `name` has for manifest `digest`: those its newest record says it
    /// wrote (found by sha256), or every stored one when no record of `name` exists (an image
    /// put in by other means). A signature a record names but the store lacks is an unreadable
    /// slot that says so.
    pub fn signatures_of(
        &self,
        name: &DockerReference,
        digest: &Digest,
    ) -> Result<Vec<SignatureSlot>> {
        let stored = self.signatures(digest)?;
        let wanted = Reference::image(name.clone()).to_string();
        let newest = self.newest_record_of(&wanted, digest)?;
        let location = |n: usize| self.signature_path(digest, n).display().to_string();
        let Some(record) = newest else {
            return Ok(stored
                .into_iter()
                .map(|s| SignatureSlot {
                    location: location(s.index),
                    index: s.index,
                    content: Ok(s.bytes),
                })
                .collect());
        };
        Ok(record
            .manifest
            .signatures
            .written
            .iter()
            .enumerate()
            .map(|(i, w)| match stored.iter().find(|s| s.digest == w.digest) {
                Some(s) => SignatureSlot {
                    index: i + 1,
                    location: location(s.index),
                    content: Ok(s.bytes.clone()),
                },
                None => SignatureSlot {
                    index: i + 1,
                    location: self.signature_dir(digest).display().to_string(),
                    content: Err(SlotReadError {
                        kind: SlotReadErrorKind::Io,
                        message: format!(
                            "the store has lost the signature {} that its record of {wanted} names",
                            w.digest
                        ),
                    }),
                },
            })
            .collect())
    }
}

impl Store {
    /// The artifacts attached to manifest `digest` that `name`'s newest record says the store
    /// got with it (referrers, cosign's `.att`/`.sbom`), as `mode` selects; a signature among
    /// them is linked to the slots of `slots` it gave. Artifacts the store has lost are errors.
    pub fn attached_of(
        &self,
        name: &DockerReference,
        digest: &Digest,
        slots: &[SignatureSlot],
        mode: Referrers,
    ) -> Result<(Vec<Attached>, Vec<String>)> {
        let wanted = Reference::image(name.clone()).to_string();
        let newest = self.newest_record_of(&wanted, digest)?;
        let Some(record) = newest else {
            return Ok((Vec::new(), Vec::new()));
        };
        let (mut out, mut errors) = (Vec::new(), Vec::new());
        for r in &record.manifest.attached {
            let kind = AttachedKind::from_text(&r.kind);
            if mode == Referrers::Signatures && kind != AttachedKind::Signature {
                continue;
            }
            let read = self
                .layout
                .read_manifest_blob(&r.digest)
                .map_err(|e| e.to_string())
                .and_then(|b| Attached::from_manifest(&b, None, Via::from_text(&r.via)));
            let mut a = match read {
                Ok(a) => a,
                Err(e) => {
                    errors.push(format!(
                        "the store has lost the {} {} that its record of {wanted} names: {e}",
                        r.kind, r.digest
                    ));
                    continue;
                }
            };
            a.kind = kind;
            if a.kind == AttachedKind::Signature {
                let blobs = referrers::signature_blobs(&a, |d| {
                    fsutil::read_capped(
                        &self.layout.blob_path(&d.digest),
                        crate::signature::MAX_SIGNATURE_SIZE as u64,
                    )
                    .map_err(|e| e.to_string())
                })
                .unwrap_or_default();
                a.slots = blobs
                    .iter()
                    .filter_map(|b| {
                        slots
                            .iter()
                            .find(|s| s.content.as_ref().is_ok_and(|c| c == b))
                            .map(|s| s.index)
                    })
                    .collect();
            }
            out.push(a);
        }
        Ok((out, errors))
    }
}

/// The record files (`*.json`, no temporaries) in `dir`, sorted (oldest first: they are named by
/// time); none when `dir` does not exist.
fn record_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(TEMP_PREFIX))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(TransportError::io(dir, e)),
    };
    paths.sort();
    Ok(paths)
}

/// The directory under `records/sha256-HEX/` that keeps the records of unpacks.
const UNPACKED_DIR: &str = "unpacked";

/// A stored unpack record: its file, and the record or why it cannot be read.
#[derive(Debug)]
#[non_exhaustive]
pub struct StoredUnpackRecord {
    /// The file.
    pub path: PathBuf,
    /// The record.
    pub record: std::result::Result<UnpackRecord, RecordError>,
}

impl Store {
    /// Adds the record of an unpack of manifest `digest` (the bundle is in place): written
    /// beside its final name and renamed, under the store's lock. Returns the record's path.
    pub async fn add_unpack_record(
        &self,
        _admission: &Admission,
        digest: &Digest,
        record: &UnpackRecord,
    ) -> Result<PathBuf> {
        let root = self.layout.root().to_path_buf();
        let _lock = FileLock::acquire(root.join(LOCK_FILE)).await?;
        let dir = self.records_dir(digest).join(UNPACKED_DIR);
        // The session's temporaries (and its lock) live in this directory alone.
        let session = TempSession::start(&dir, 0)?;
        let time = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ").to_string();
        let path = dir.join(format!("{time}.json"));
        fsutil::write_atomic_with(&path, &record.to_json(), &session.prefix())?;
        Ok(path)
    }

    /// The records of every unpack of manifest `digest` (from any name), oldest first; a
    /// record that cannot be parsed is in the list with its error.
    pub fn unpack_records(&self, digest: &Digest) -> Result<Vec<StoredUnpackRecord>> {
        record_files(&self.records_dir(digest).join(UNPACKED_DIR))?
            .into_iter()
            .map(|p| {
                let bytes = fsutil::read_capped(&p, fsutil::MAX_CONFIG_FILE)?;
                Ok(StoredUnpackRecord {
                    record: UnpackRecord::from_json(&bytes),
                    path: p,
                })
            })
            .collect()
    }
}

/// Reads an image from the store.
pub struct StoreSource {
    reference: ImageReference,
    store: Store,
    image: StoredImage,
    referrers: Referrers,
}

impl StoreSource {
    /// Opens the image `name` of `store`.
    pub fn open(store: Store, name: &DockerReference) -> Result<StoreSource> {
        let image = store.resolve(name)?;
        Ok(StoreSource {
            reference: Reference::image(name.clone()),
            store,
            image,
            referrers: Referrers::default(),
        })
    }

    /// Reads attached artifacts as `mode` says (`--referrers`).
    pub fn with_referrers(mut self, mode: Referrers) -> StoreSource {
        self.referrers = mode;
        self
    }
}

#[async_trait]
impl ImageSource for StoreSource {
    fn reference(&self) -> &ImageReference {
        &self.reference
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<RawManifest> {
        self.store
            .layout
            .manifest(&self.image.digest, &self.image.media_type, instance)
    }

    async fn blob(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        self.store.layout.blob_stream(&descriptor.digest).await
    }

    async fn signatures(
        &self,
        manifest_digest: &Digest,
        _instance: Option<&Digest>,
    ) -> Result<SignatureSet> {
        let Some(Reference(name)) = self.reference.downcast_ref::<Reference>() else {
            return Ok(SignatureSet::default());
        };
        let mut set = SignatureSet::new(
            self.store.signatures_of(name, manifest_digest)?,
            format!(
                "the signatures ferry's store at {} keeps for {name}",
                self.store.root_dir().display()
            ),
        );
        if self.referrers != Referrers::None {
            let (attached, errors) =
                self.store
                    .attached_of(name, manifest_digest, &set.slots, self.referrers)?;
            set.attached = attached;
            set.attached_errors = errors;
        }
        Ok(set)
    }
}

#[derive(Default)]
struct Pending {
    top: Option<RawManifest>,
    signatures: Vec<(Digest, Vec<Vec<u8>>)>,
    attached: Vec<(Digest, Vec<Attached>)>,
    records: Vec<(Digest, Record)>,
    /// Every blob and manifest the image needs, with the session's hold on it.
    held: Vec<Held>,
}

/// A blob a copy holds until its commit: `hold` is a session temporary that is the same file as
/// the blob (a hard link), or the only copy of it when the filesystem has no hard links.
struct Held {
    digest: Digest,
    size: u64,
    hold: PathBuf,
}

/// Writes an image into the store.
pub struct StoreDestination {
    reference: ImageReference,
    store: Store,
    name: String,
    // Declared last so it drops last: its Drop removes what a failed copy left.
    pending: Mutex<Pending>,
    session: TempSession,
}

impl StoreDestination {
    /// Opens `store` (creating it) to add the image `name`.
    pub fn open(store: Store, name: &DockerReference) -> Result<StoreDestination> {
        let root = store.root_dir().to_path_buf();
        let root = root.as_path();
        if root.exists() && !root.is_dir() {
            return Err(TransportError::InvalidLayout {
                path: root.to_path_buf(),
                why: "the store root is not a directory".into(),
            });
        }
        fsutil::mkdir_all(&root.join("blobs/sha256"))?;
        // Temporaries lie in the root, blobs/ALG, signatures/DIGEST and records/DIGEST.
        let session = TempSession::start(root, 2)?;
        let store = Store {
            layout: store.layout.with_temp_prefix(session.prefix()),
        };
        Ok(StoreDestination {
            reference: Reference::image(name.clone()),
            store,
            name: name.to_string(),
            pending: Mutex::new(Pending::default()),
            session,
        })
    }

    fn temp_prefix(&self) -> String {
        self.session.prefix()
    }

    // A poisoned lock only means another task panicked while holding it; the pending lists
    // are still whole (each change is one push), so they are used rather than dropped.
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn hold_path(&self, digest: &Digest) -> PathBuf {
        let final_path = self.store.layout.blob_path(digest);
        final_path.with_file_name(format!("{}hold-{}", self.temp_prefix(), digest.hex()))
    }

    fn held(&self, digest: &Digest, size: u64, hold: PathBuf) {
        let mut pending = self.pending();
        if !pending.held.iter().any(|h| h.digest == *digest) {
            pending.held.push(Held {
                digest: digest.clone(),
                size,
                hold,
            });
        }
    }

    /// Writes small bytes (a manifest) as a blob this copy holds until its commit, or holds
    /// the one already there.
    fn put_small_held(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let size = bytes.len() as u64;
        if !self.hold_existing(digest, size) {
            let hold = self.hold_path(digest);
            fsutil::mkdir_all(hold.parent().unwrap_or(self.store.layout.root()))?;
            fsutil::write_atomic_with(&hold, bytes, &self.temp_prefix())?;
            self.held(digest, size, hold.clone());
            self.publish(digest, &hold)?;
        }
        Ok(())
    }

    /// Holds the blob already in the store, if it is there with `size` bytes: links it to a
    /// session temporary first and checks the link, so a prune removing the blob's name at the
    /// same moment either comes first (and the blob is written again) or cannot take the file
    /// away from this copy. A filesystem without hard links means no reuse.
    fn hold_existing(&self, digest: &Digest, size: u64) -> bool {
        let hold = self.hold_path(digest);
        if fsutil::has_file_of_size(&hold, size) {
            return true;
        }
        let _ = std::fs::remove_file(&hold);
        match std::fs::hard_link(self.store.layout.blob_path(digest), &hold) {
            Ok(()) if fsutil::has_file_of_size(&hold, size) => {
                self.held(digest, size, hold);
                true
            }
            Ok(()) => {
                let _ = std::fs::remove_file(&hold);
                false
            }
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::debug!(
                        "not reusing {digest}: cannot link it to {}: {e}",
                        hold.display()
                    );
                }
                false
            }
        }
    }

    /// Gives a held blob its name in `blobs/` now (linked, then renamed over whatever is
    /// there), so a blob that arrived whole stays even if the copy fails later. Best effort:
    /// without hard links the blob gets its name on commit.
    fn publish(&self, digest: &Digest, hold: &Path) -> Result<()> {
        let final_path = self.store.layout.blob_path(digest);
        let dir = final_path.parent().unwrap_or(self.store.layout.root());
        let staged = dir.join(format!("{}{}", self.temp_prefix(), fsutil::unique_id()));
        if let Err(e) = std::fs::hard_link(hold, &staged) {
            tracing::debug!("{digest} gets its name on commit: {e}");
            return Ok(());
        }
        std::fs::rename(&staged, &final_path).map_err(|e| {
            let _ = std::fs::remove_file(&staged);
            TransportError::io(&final_path, e)
        })?;
        fsutil::sync_dir(dir);
        Ok(())
    }

    /// Puts every held blob whose name is missing (a prune removed it) or wrong back under its
    /// name. Called under the store's lock, before `index.json` names them.
    fn restore_held(&self, held: &[Held]) -> Result<()> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for h in held {
            let final_path = self.store.layout.blob_path(&h.digest);
            if fsutil::has_file_of_size(&final_path, h.size) {
                continue;
            }
            std::fs::rename(&h.hold, &final_path)
                .map_err(|e| TransportError::io(&final_path, e))?;
            if let Some(d) = final_path.parent()
                && !dirs.iter().any(|x| x == d)
            {
                dirs.push(d.to_path_buf());
            }
        }
        for d in dirs {
            fsutil::sync_dir(&d);
        }
        Ok(())
    }

    /// Adds the signatures of `digest` the store does not have yet, each as the next
    /// `signature-N`, written beside its name and renamed. Called under the store's lock.
    fn add_signatures(&self, digest: &Digest, signatures: &[Vec<u8>]) -> Result<()> {
        let dir = self.store.signature_dir(digest);
        let have = if dir.exists() {
            self.store.signatures(digest)?
        } else {
            vec![]
        };
        let mut known: Vec<Digest> = have.iter().map(|s| s.digest.clone()).collect();
        let mut next = have.iter().map(|s| s.index).max().unwrap_or(0) + 1;
        for bytes in signatures {
            let d = Digest::sha256_of(bytes);
            if known.contains(&d) {
                continue;
            }
            fsutil::mkdir_all(&dir)?;
            fsutil::write_atomic_with(
                &dir.join(format!("signature-{next}")),
                bytes,
                &self.temp_prefix(),
            )?;
            known.push(d);
            next += 1;
        }
        Ok(())
    }
}

#[async_trait]
impl ImageDestination for StoreDestination {
    fn reference(&self) -> &ImageReference {
        &self.reference
    }

    fn signature_support(&self, _kind: crate::signature::sniff::Format) -> SignatureSupport {
        SignatureSupport::Yes
    }

    async fn try_reuse_blob(
        &self,
        descriptor: &Descriptor,
        _source: &ImageReference,
    ) -> Result<bool> {
        Ok(self.hold_existing(&descriptor.digest, descriptor.size))
    }

    async fn put_blob(
        &self,
        _admission: &Admission,
        descriptor: &Descriptor,
        stream: ByteStream,
    ) -> Result<()> {
        let hold = self.hold_path(&descriptor.digest);
        let dir = hold
            .parent()
            .unwrap_or(self.store.layout.root())
            .to_path_buf();
        fsutil::mkdir_all(&dir)?;
        let tmp = fsutil::stream_to_temp(&dir, &self.temp_prefix(), stream).await?;
        fsutil::persist(tmp, &hold)?;
        self.held(&descriptor.digest, descriptor.size, hold.clone());
        self.publish(&descriptor.digest, &hold)
    }

    async fn put_manifest(
        &self,
        _admission: &Admission,
        manifest: &RawManifest,
        instance: Option<&Digest>,
    ) -> Result<()> {
        self.put_small_held(&Digest::sha256_of(&manifest.bytes), &manifest.bytes)?;
        if instance.is_none() {
            self.pending().top = Some(manifest.clone());
        }
        Ok(())
    }

    async fn put_signatures(
        &self,
        _admission: &Admission,
        manifest_digest: &Digest,
        _instance: Option<&Digest>,
        signatures: &[Vec<u8>],
    ) -> Result<()> {
        self.pending()
            .signatures
            .push((manifest_digest.clone(), signatures.to_vec()));
        Ok(())
    }

    fn attached_support(&self) -> SignatureSupport {
        SignatureSupport::Yes
    }

    /// Attached artifacts are kept as the layout keeps referrers (their manifests unnamed in
    /// `index.json`); a signature among them is also kept as the signature files it gave, so
    /// the forensic view and the records see it as any other signature.
    async fn put_attached(
        &self,
        _admission: &Admission,
        subject: &Digest,
        _instance: Option<&Digest>,
        attached: &[&Attached],
    ) -> Result<()> {
        for a in attached {
            self.put_small_held(&a.digest, &a.manifest.bytes)?;
        }
        self.pending().attached.push((
            subject.clone(),
            attached.iter().map(|a| (*a).clone()).collect(),
        ));
        Ok(())
    }

    async fn put_record(
        &self,
        _admission: &Admission,
        manifest_digest: &Digest,
        record: &Record,
    ) -> Result<()> {
        self.pending()
            .records
            .push((manifest_digest.clone(), record.clone()));
        Ok(())
    }

    async fn commit(self: Box<Self>, _admission: &Admission) -> Result<()> {
        let pending = std::mem::take(&mut *self.pending());
        let top = pending
            .top
            .ok_or_else(|| TransportError::Unsupported("commit without a manifest".into()))?;
        let root = self.store.layout.root().to_path_buf();
        let _lock = FileLock::acquire(root.join(LOCK_FILE)).await?;
        self.restore_held(&pending.held)?;
        for (digest, sigs) in &pending.signatures {
            self.add_signatures(digest, sigs)?;
        }
        for (subject, attached) in &pending.attached {
            for a in attached {
                if a.kind == AttachedKind::Signature {
                    let blobs = referrers::signature_blobs(a, |d| {
                        fsutil::read_capped(
                            &self.store.layout.blob_path(&d.digest),
                            crate::signature::MAX_SIGNATURE_SIZE as u64,
                        )
                        .map_err(|e| e.to_string())
                    })
                    .map_err(TransportError::Unsupported)?;
                    self.add_signatures(subject, &blobs)?;
                }
                self.store
                    .layout
                    .set_index_entry(None, referrer_descriptor(a, subject))?;
            }
        }
        let time = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ").to_string();
        for (digest, record) in &pending.records {
            let dir = root.join("records").join(digest_dir(digest));
            fsutil::mkdir_all(&dir)?;
            fsutil::write_atomic_with(
                &dir.join(format!("{time}.json")),
                &record.to_json(),
                &self.temp_prefix(),
            )?;
        }
        self.store
            .layout
            .set_index_entry(Some(&self.name), index_descriptor(&top, Some(&self.name)))?;
        Ok(())
    }
}
