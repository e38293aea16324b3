//! The store's lifecycle, for a runtime that pulls into it every day: list what it holds,
//! remove names, prune what no name needs, and see where the space goes. Checking and
//! repairing are in [`super::check`].
//!
//! Every operation here does blocking file IO and the ones that change the store wait for its
//! lock (`.ferry.lock`, the lock commits take): from async code, call them through
//! `tokio::task::spawn_blocking`.
//!
//! Guarantees (docs/store.md has the argument):
//! - [`Store::remove`] changes `index.json` only (one atomic replace); the blobs stay until a
//!   prune, and the evidence (signatures, records) stays unless purged explicitly.
//! - [`Store::prune`] never changes `index.json`: it removes only blobs that no entry of the
//!   index needs, under the lock, so a prune killed at any point leaves every named image
//!   whole. A copy in flight holds its blobs (see the module documentation of
//!   [`super`]): whatever prune removes, the copy's commit puts back before it names them.
//! - Records go only when asked (`keep_records`), never the newest copy of a name still in
//!   the store.
//!
//! ```no_run
//! use ferry::store::{CheckOptions, PruneOptions, RemoveOptions, Store};
//! use ferry::{DockerReference, ImageReference, Session, SessionConfig, TransportOptions};
//!
//! # async fn maintain() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::open("/var/lib/myruntime/images".as_ref())?;
//! for image in store.list()? {
//!     println!("{} {} {} bytes, {}", image.name, image.digest, image.size, image.verdict.name());
//! }
//! // Forget an image (its records and signatures stay), then reclaim what no name needs.
//! let old = DockerReference::parse("registry.example.com/app:1.1")?;
//! store.remove(&[old], &RemoveOptions::new())?;
//! let pruned = store.prune(&PruneOptions::new())?;
//! println!("reclaimed {} bytes", pruned.blob_bytes);
//!
//! // Check, and repair from the registry the image came from.
//! let report = store.check(&CheckOptions::new())?;
//! if !report.is_clean() {
//!     let mut config = SessionConfig::default();
//!     config.store_root = Some("/var/lib/myruntime/images".into());
//!     let session = Session::new(config);
//!     let from = ImageReference::parse("docker://registry.example.com/app:1.2")?;
//!     let source = session.open_source(&from, &TransportOptions::default()).await?;
//!     let repaired = store.repair(&report, source.as_ref()).await?;
//!     println!("repaired {} file(s)", repaired.repaired.len());
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;

use super::{LOCK_FILE, Store};
use crate::digest::Digest;
use crate::manifest::{self, Descriptor, Manifest, ManifestError};
use crate::record::Record;
use crate::reference::DockerReference;
use crate::transport::TransportError;
use crate::transport::fsutil::{self, TEMP_PREFIX, TempSession};
use crate::transport::oci_layout::REF_NAME;
use crate::verdict::SignatureMode;

/// Why a lifecycle operation could not be done. Nothing was changed unless the variant says so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] TransportError),
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// Names to remove that the store does not have (and has no evidence of, when evidence
    /// was to be purged). Nothing was removed.
    #[error("ferry's store at {store} has no image named {}; nothing was removed", names.join(", "))]
    NoSuchName {
        /// The store's root.
        store: PathBuf,
        /// The names it does not have.
        names: Vec<String>,
    },
    /// A manifest some name needs cannot be read, so the blobs it needs are unknown: pruning
    /// would guess. Nothing was removed.
    #[error(
        "cannot prune {store}: the manifest {digest} that {name} needs cannot be read ({why}), so the blobs it needs are unknown; nothing was removed. Repair the store from a source that has the image, or remove the name"
    )]
    UnreadableManifest {
        /// The store's root.
        store: PathBuf,
        /// The name that needs it.
        name: String,
        /// The manifest.
        digest: Digest,
        /// Why it cannot be read.
        why: String,
    },
    /// `index.json` is missing although records show images were committed: pruning would
    /// remove every blob. Nothing was removed.
    #[error(
        "cannot prune {store}: index.json is missing but the store has records of committed images, so every blob would look unused; nothing was removed"
    )]
    MissingIndex {
        /// The store's root.
        store: PathBuf,
    },
    /// A source to repair from could not be used.
    #[error("{reference}: {source}")]
    Source {
        /// The source reference.
        reference: String,
        /// Why.
        source: TransportError,
    },
}

impl LifecycleError {
    fn io(path: &Path, source: std::io::Error) -> LifecycleError {
        LifecycleError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

type Result<T> = std::result::Result<T, LifecycleError>;

/// The store's lock, held while a removal or a prune changes the store (commits take it too).
pub(super) struct StoreLock {
    _file: std::fs::File,
}

/// Waits for the store's lock (blocking).
pub(super) fn lock_store(root: &Path) -> Result<StoreLock> {
    let path = root.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LifecycleError::io(&path, e))?;
    file.lock().map_err(|e| LifecycleError::io(&path, e))?;
    Ok(StoreLock { _file: file })
}

/// One blob an image needs, as the manifest that names it describes it.
#[derive(Debug, Clone)]
pub(super) struct Needed {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub is_manifest: bool,
}

/// Why a manifest an image needs could not be followed.
#[derive(Debug, Clone)]
pub(super) enum Fault {
    /// The file is not there.
    Missing,
    /// Its bytes do not hash to its digest.
    Mismatch,
    /// It could not be read or parsed.
    Unreadable(String),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Missing => f.write_str("the file is missing"),
            Fault::Mismatch => f.write_str("its bytes do not match its digest"),
            Fault::Unreadable(why) => f.write_str(why),
        }
    }
}

/// Everything one index entry needs: its manifest(s) first, then configs and layers; and the
/// manifests that could not be followed.
#[derive(Debug, Default)]
pub(super) struct Closure {
    pub needed: Vec<Needed>,
    pub faults: Vec<(Needed, Fault)>,
}

impl Closure {
    /// The manifests' digests (the entry's own, and a list's instances).
    pub fn manifests(&self) -> impl Iterator<Item = &Digest> {
        self.needed
            .iter()
            .filter(|n| n.is_manifest)
            .map(|n| &n.digest)
    }

    /// The sum of the sizes of every distinct blob, as the manifests declare them.
    pub fn size(&self) -> u64 {
        self.needed.iter().map(|n| n.size).sum()
    }
}

/// The layers of a Docker schema 1 manifest (ferry does not copy schema 1, but another tool
/// may have put one in the layout).
fn schema1_layers(bytes: &[u8]) -> std::result::Result<Vec<Digest>, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for l in v
        .get("fsLayers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let d = l
            .get("blobSum")
            .and_then(Value::as_str)
            .ok_or("an fsLayers entry without blobSum")?;
        let d = Digest::parse(d).map_err(|e| e.to_string())?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

/// A descriptor for an entry or a schema 1 layer, without the fields the walk does not need.
fn needed(d: &Descriptor, is_manifest: bool) -> Needed {
    Needed {
        digest: d.digest.clone(),
        size: d.size,
        media_type: d.media_type.clone(),
        is_manifest,
    }
}

impl Store {
    fn blobs_root(&self) -> PathBuf {
        self.layout.root().join("blobs")
    }

    /// Everything the index entry `top` needs, walking lists to their instances.
    pub(super) fn closure(&self, top: &Descriptor) -> Closure {
        let mut out = Closure::default();
        let mut seen: HashSet<Digest> = HashSet::new();
        let mut stack = vec![needed(top, true)];
        while let Some(n) = stack.pop() {
            if !seen.insert(n.digest.clone()) {
                continue;
            }
            out.needed.push(n.clone());
            if !n.is_manifest {
                continue;
            }
            let path = self.layout.blob_path(&n.digest);
            let bytes = match fsutil::read_manifest_file(&path) {
                Ok(b) => b,
                Err(TransportError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    out.faults.push((n, Fault::Missing));
                    continue;
                }
                Err(e) => {
                    out.faults.push((n, Fault::Unreadable(e.to_string())));
                    continue;
                }
            };
            if !n.digest.matches(&bytes) {
                out.faults.push((n, Fault::Mismatch));
                continue;
            }
            let declared = Some(n.media_type.as_str()).filter(|m| !m.is_empty());
            match manifest::parse(&bytes, declared) {
                Ok(Manifest::Image(_, m)) => {
                    // Pushed in reverse so the walk lists the config, then the layers in order.
                    for d in m.layers.iter().rev() {
                        stack.push(needed(d, false));
                    }
                    stack.push(needed(&m.config, false));
                }
                Ok(Manifest::List(_, l)) => {
                    for d in l.manifests.iter().rev() {
                        stack.push(needed(d, true));
                    }
                }
                Err(ManifestError::Schema1(_)) => match schema1_layers(&bytes) {
                    Ok(layers) => {
                        for d in layers.into_iter().rev() {
                            let size = std::fs::metadata(self.layout.blob_path(&d))
                                .map(|m| m.len())
                                .unwrap_or(0);
                            stack.push(Needed {
                                digest: d,
                                size,
                                media_type: String::new(),
                                is_manifest: false,
                            });
                        }
                    }
                    Err(why) => out.faults.push((n, Fault::Unreadable(why))),
                },
                Err(e) => out.faults.push((n, Fault::Unreadable(e.to_string()))),
            }
        }
        out
    }

    /// The index entries with their names (`None` for an unnamed entry another tool added),
    /// or none when the store has no `index.json` yet.
    pub(super) fn index_entries(&self) -> super::Result<Vec<(Option<String>, Descriptor)>> {
        if !self.layout.root().join("index.json").exists() {
            return Ok(vec![]);
        }
        self.layout.entries()
    }

    /// Every blob file under `blobs/` whose name is a digest (temporaries and strays are not
    /// blobs), with its path and size on disk.
    pub(super) fn blob_files(&self) -> Result<Vec<(Digest, PathBuf, u64)>> {
        let root = self.blobs_root();
        let algs = match std::fs::read_dir(&root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(LifecycleError::io(&root, e)),
        };
        let mut out = Vec::new();
        for alg in algs.flatten() {
            let alg_name = alg.file_name().to_string_lossy().into_owned();
            let dir = alg.path();
            if !dir.is_dir() {
                continue;
            }
            let rd = std::fs::read_dir(&dir).map_err(|e| LifecycleError::io(&dir, e))?;
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Ok(d) = Digest::parse(&format!("{alg_name}:{name}")) else {
                    continue;
                };
                // A blob removed since the listing (by a prune) is simply not there.
                let Ok(meta) = e.metadata() else { continue };
                if meta.is_file() {
                    out.push((d, e.path(), meta.len()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn store_ref(name: &str) -> String {
        format!("store:{name}")
    }

    /// Every image in the store with its size, the time of the newest copy of its name and
    /// that copy's mode and verdict, sorted by name.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let mut out = Vec::new();
        for (name, d) in self.index_entries()? {
            let Some(name) = name else { continue };
            let closure = self.closure(&d);
            let me = Store::store_ref(&name);
            let mut mine: Vec<Record> = Vec::new();
            for m in closure.manifests() {
                for r in self.records(m)? {
                    if let Ok(rec) = r.record
                        && rec.destination == me
                    {
                        mine.push(rec);
                    }
                }
            }
            let newest = mine.iter().map(|r| r.time.clone()).max();
            let copy: Vec<&Record> = mine
                .iter()
                .filter(|r| Some(&r.time) == newest.as_ref())
                .collect();
            let top = copy
                .iter()
                .find(|r| r.manifest.digest == d.digest)
                .or_else(|| copy.last());
            let verdict = if copy.is_empty() {
                RecordedVerdict::NoRecord
            } else {
                let judged: Vec<bool> = copy
                    .iter()
                    .filter_map(|r| r.manifest.verdict.as_ref().map(|v| v.accepted))
                    .collect();
                if judged.is_empty() {
                    RecordedVerdict::NotJudged
                } else if judged.iter().all(|a| *a) {
                    RecordedVerdict::Accepted
                } else {
                    RecordedVerdict::Rejected
                }
            };
            out.push(ImageSummary {
                name,
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
                size: closure.size(),
                complete: closure.faults.is_empty(),
                last_copy: top.map(|r| r.time.clone()),
                source: top.map(|r| r.source.clone()),
                mode: top.map(|r| r.mode),
                verdict,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes `names` from the store: their entries leave `index.json` (one atomic replace,
    /// under the lock), so they can no longer be read or copied; their blobs stay until a
    /// prune. Their signatures and records stay too (the forensic view still shows a removed
    /// name's history), unless `options.purge_evidence`: then the records made for these names
    /// go, and the signatures only they wrote. Every name must be in the store (or, when
    /// purging, have evidence there); otherwise nothing is removed.
    pub fn remove(
        &self,
        names: &[DockerReference],
        options: &RemoveOptions,
    ) -> Result<RemoveReport> {
        let root = self.layout.root().to_path_buf();
        let wanted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        if !root.is_dir() {
            return Err(LifecycleError::NoSuchName {
                store: root,
                names: wanted,
            });
        }
        let _lock = lock_store(&root)?;
        let index_path = root.join("index.json");
        let mut index: Option<Value> = if index_path.exists() {
            Some(self.layout.read_index()?)
        } else {
            None
        };
        let named = |m: &Value, n: &str| {
            m.get("annotations")
                .and_then(|a| a.get(REF_NAME))
                .and_then(Value::as_str)
                == Some(n)
        };
        let entries: Vec<Value> = index
            .as_ref()
            .and_then(|i| i.get("manifests"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut removed = Vec::new();
        let mut missing = Vec::new();
        for n in &wanted {
            let found: Vec<&Value> = entries.iter().filter(|m| named(m, n)).collect();
            if found.is_empty() {
                let has_evidence = options.purge_evidence
                    && self.all_records()?.iter().any(|(_, r)| {
                        r.record
                            .as_ref()
                            .is_ok_and(|r| r.destination == Store::store_ref(n))
                    });
                if !has_evidence {
                    missing.push(n.clone());
                }
            }
            for m in found {
                let digest = m
                    .get("digest")
                    .and_then(Value::as_str)
                    .and_then(|d| Digest::parse(d).ok());
                if let Some(digest) = digest {
                    removed.push(RemovedImage {
                        name: n.clone(),
                        digest,
                    });
                }
            }
        }
        if !missing.is_empty() {
            return Err(LifecycleError::NoSuchName {
                store: root,
                names: missing,
            });
        }
        let session = TempSession::start(&root, 2)?;
        if let Some(list) = index
            .as_mut()
            .and_then(|i| i.get_mut("manifests"))
            .and_then(Value::as_array_mut)
        {
            let before = list.len();
            list.retain(|m| !wanted.iter().any(|n| named(m, n)));
            if options.purge_evidence {
                // What was attached to images no name reaches any more goes with the evidence
                // (without --purge-evidence it stays, as the records and signatures do).
                let mut live: HashSet<String> = HashSet::new();
                for m in list.iter() {
                    if m.pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1")))
                        .is_some()
                        && let Ok(d) = serde_json::from_value::<Descriptor>(m.clone())
                    {
                        live.extend(self.closure(&d).manifests().map(|x| x.to_string()));
                    }
                }
                let subject_key = format!(
                    "/annotations/{}",
                    crate::transport::oci_layout::ATTACHED_ANNOTATION.replace('/', "~1")
                );
                list.retain(|m| {
                    m.pointer(&subject_key)
                        .and_then(Value::as_str)
                        .is_none_or(|subject| live.contains(subject))
                });
            }
            if list.len() != before {
                let bytes = serde_json::to_vec(&index)
                    .map_err(|e| TransportError::Unsupported(e.to_string()))?;
                fsutil::write_atomic_with(&index_path, &bytes, &session.prefix())?;
            }
        }
        let mut purged = Vec::new();
        if options.purge_evidence {
            purged = self.purge_evidence(&wanted, &session.prefix())?;
        }
        Ok(RemoveReport { removed, purged })
    }

    /// Removes the records made for `names` and the signatures only those records wrote;
    /// returns the files removed. Called under the lock, after `index.json` no longer names
    /// them.
    fn purge_evidence(&self, names: &[String], prefix: &str) -> Result<Vec<PathBuf>> {
        let refs: Vec<String> = names.iter().map(|n| Store::store_ref(n)).collect();
        let mut purged = Vec::new();
        // Per manifest directory: the signatures the purged records named.
        let mut touched: BTreeMap<Digest, BTreeSet<Digest>> = BTreeMap::new();
        for (d, r) in self.all_records()? {
            let Ok(rec) = &r.record else { continue };
            if !refs.contains(&rec.destination) {
                continue;
            }
            std::fs::remove_file(&r.path).map_err(|e| LifecycleError::io(&r.path, e))?;
            purged.push(r.path.clone());
            touched.entry(d).or_default().extend(
                rec.manifest
                    .signatures
                    .written
                    .iter()
                    .map(|w| w.digest.clone()),
            );
        }
        let mut live: HashSet<Digest> = HashSet::new();
        for (_, e) in self.index_entries()? {
            live.extend(self.closure(&e).manifests().cloned());
        }
        for (digest, named) in touched {
            let remaining: Vec<Record> = self
                .records(&digest)?
                .into_iter()
                .filter_map(|r| r.record.ok())
                .collect();
            let keep_all_unnamed = !remaining.is_empty() || live.contains(&digest);
            let still_named: HashSet<Digest> = remaining
                .iter()
                .flat_map(|r| {
                    r.manifest
                        .signatures
                        .written
                        .iter()
                        .map(|w| w.digest.clone())
                })
                .collect();
            let stored = self.signatures(&digest)?;
            let keep: Vec<&super::StoredSignature> = stored
                .iter()
                .filter(|s| {
                    still_named.contains(&s.digest)
                        || (keep_all_unnamed && !named.contains(&s.digest))
                })
                .collect();
            // Renumber what stays to signature-1..k in order: each file is replaced by the one
            // that moves into its place before that one is removed from the end, so a reader
            // (or a crash) never meets a gap, at worst a duplicate.
            for (i, s) in keep.iter().enumerate() {
                let n = i + 1;
                if stored.get(i).is_some_and(|o| o.digest == s.digest) {
                    continue;
                }
                fsutil::write_atomic_with(&self.signature_path(&digest, n), &s.bytes, prefix)?;
            }
            for s in stored.iter().rev() {
                if s.index > keep.len() {
                    let p = self.signature_path(&digest, s.index);
                    std::fs::remove_file(&p).map_err(|e| LifecycleError::io(&p, e))?;
                    purged.push(p);
                }
            }
            let _ = std::fs::remove_dir(self.signature_dir(&digest));
            let _ = std::fs::remove_dir(self.records_dir(&digest));
        }
        Ok(purged)
    }

    /// Removes the blobs and manifests no entry of `index.json` needs (walking lists to their
    /// instances, and images to their configs and layers), and with `keep_records` the records
    /// older than that — never the newest copy of a name still in the store. Also removes the
    /// temporaries of copies that were killed. With `dry_run`, only says what would go.
    ///
    /// Safe while copies run: it holds the store's lock (so no commit happens meanwhile) and
    /// never touches `index.json` or a temporary; a copy in flight holds the blobs it needs
    /// and its commit restores any that a prune removed. Safe to kill at any point: only blobs
    /// that nothing references are removed, so every named image stays whole.
    pub fn prune(&self, options: &PruneOptions) -> Result<PruneReport> {
        let root = self.layout.root().to_path_buf();
        let mut report = PruneReport {
            dry_run: options.dry_run,
            ..PruneReport::default()
        };
        if !root.is_dir() {
            return Ok(report);
        }
        let _lock = lock_store(&root)?;
        let index_missing = !root.join("index.json").exists();
        if index_missing && self.all_records()?.iter().any(|(_, r)| r.record.is_ok()) {
            return Err(LifecycleError::MissingIndex { store: root });
        }
        let entries = self.index_entries()?;
        let mut marked: HashSet<Digest> = HashSet::new();
        for (name, e) in &entries {
            let closure = self.closure(e);
            if let Some((n, fault)) = closure.faults.first() {
                return Err(LifecycleError::UnreadableManifest {
                    store: root,
                    name: name.clone().unwrap_or_else(|| "an unnamed entry".into()),
                    digest: n.digest.clone(),
                    why: fault.to_string(),
                });
            }
            marked.extend(closure.needed.into_iter().map(|n| n.digest));
        }
        if !options.dry_run {
            // First, so that a killed copy's holds are gone and do not keep its blobs.
            fsutil::clean_dead(&root, 2);
        }
        let held = self.held_by_live_copies()?;
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        for (digest, path, size) in self.blob_files()? {
            if marked.contains(&digest) {
                report.kept_blobs += 1;
                continue;
            }
            // Not needed by a name yet, but a copy in flight holds it: its name stays, so other
            // copies can reuse it meanwhile. (Safety does not depend on this: a hold made just
            // after this listing keeps the file, and the copy's commit restores the name.)
            if held.contains(&digest) {
                report.held_blobs += 1;
                continue;
            }
            if !options.dry_run {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(LifecycleError::io(&path, e)),
                }
                if let Some(d) = path.parent() {
                    dirs.insert(d.to_path_buf());
                }
            }
            report.blob_bytes += size;
            report.blobs.push(PrunedBlob { digest, size });
        }
        if let Some(age) = options.keep_records {
            self.prune_records(&entries, age, options.dry_run, &mut report)?;
        }
        if !options.dry_run {
            for d in dirs {
                fsutil::sync_dir(&d);
            }
        }
        Ok(report)
    }

    /// The blobs that copies still running hold (`blobs/ALG/.ferry-tmp-ID-hold-HEX` whose
    /// session ID still holds its lock).
    fn held_by_live_copies(&self) -> Result<HashSet<Digest>> {
        let root = self.layout.root();
        let mut live: BTreeMap<String, bool> = BTreeMap::new();
        let mut out = HashSet::new();
        let Ok(algs) = std::fs::read_dir(self.blobs_root()) else {
            return Ok(out);
        };
        for alg in algs.flatten() {
            let alg_name = alg.file_name().to_string_lossy().into_owned();
            let Ok(rd) = std::fs::read_dir(alg.path()) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some((id, hex)) = name
                    .strip_prefix(TEMP_PREFIX)
                    .and_then(|rest| rest.split_once("-hold-"))
                else {
                    continue;
                };
                let Ok(digest) = Digest::parse(&format!("{alg_name}:{hex}")) else {
                    continue;
                };
                let is_live = *live.entry(id.to_string()).or_insert_with(|| {
                    let lock = root.join(format!("{TEMP_PREFIX}{id}.lock"));
                    // Taking the lock means nobody holds it: the copy is dead.
                    lock.exists() && fsutil::FileLock::try_acquire(&lock).is_none()
                });
                if is_live {
                    out.insert(digest);
                }
            }
        }
        Ok(out)
    }

    fn prune_records(
        &self,
        entries: &[(Option<String>, Descriptor)],
        age: Duration,
        dry_run: bool,
        report: &mut PruneReport,
    ) -> Result<()> {
        let cutoff: chrono::DateTime<chrono::Utc> = (SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH))
        .into();
        let in_store: HashSet<String> = entries
            .iter()
            .filter_map(|(n, _)| n.as_deref().map(Store::store_ref))
            .collect();
        let all = self.all_records()?;
        // The newest copy of each name in the store: all its records (a list and its
        // instances share one time) stay.
        let mut newest: BTreeMap<&str, &str> = BTreeMap::new();
        for (_, r) in &all {
            if let Ok(rec) = &r.record
                && in_store.contains(&rec.destination)
            {
                let t = newest.entry(rec.destination.as_str()).or_default();
                if rec.time.as_str() > *t {
                    *t = rec.time.as_str();
                }
            }
        }
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        for (_, r) in &all {
            // A record that cannot be read cannot be judged: it stays (check reports it).
            let Ok(rec) = &r.record else { continue };
            if newest.get(rec.destination.as_str()) == Some(&rec.time.as_str()) {
                continue;
            }
            let Ok(time) = chrono::DateTime::parse_from_rfc3339(&rec.time) else {
                continue;
            };
            if time >= cutoff {
                continue;
            }
            let size = std::fs::metadata(&r.path).map(|m| m.len()).unwrap_or(0);
            if !dry_run {
                match std::fs::remove_file(&r.path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(LifecycleError::io(&r.path, e)),
                }
                if let Some(d) = r.path.parent() {
                    dirs.insert(d.to_path_buf());
                }
            }
            report.record_bytes += size;
            report.records.push(PrunedRecord {
                path: r.path.clone(),
                name: rec.destination.clone(),
                time: rec.time.clone(),
                size,
            });
        }
        for d in dirs {
            fsutil::sync_dir(&d);
            let _ = std::fs::remove_dir(&d);
        }
        Ok(())
    }

    /// Where the store's space goes: each image (its size, and the part no other name
    /// shares), blobs shared between names, blobs no name needs (what a prune reclaims), the
    /// evidence (signatures, records) and the temporaries of copies in flight or killed.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let mut usage = DiskUsage::default();
        let entries = self.index_entries()?;
        let closures: Vec<(Option<String>, Digest, Closure)> = entries
            .iter()
            .map(|(n, d)| (n.clone(), d.digest.clone(), self.closure(d)))
            .collect();
        let mut users: BTreeMap<Digest, usize> = BTreeMap::new();
        for (_, _, c) in &closures {
            for n in &c.needed {
                *users.entry(n.digest.clone()).or_default() += 1;
            }
        }
        let files = self.blob_files()?;
        let on_disk: BTreeMap<&Digest, u64> = files.iter().map(|(d, _, s)| (d, *s)).collect();
        for (name, digest, c) in &closures {
            let Some(name) = name else { continue };
            let unique = c
                .needed
                .iter()
                .filter(|n| users.get(&n.digest) == Some(&1))
                .map(|n| on_disk.get(&n.digest).copied().unwrap_or(0))
                .sum();
            usage.images.push(ImageUsage {
                name: name.clone(),
                digest: digest.clone(),
                size: c.size(),
                unique,
            });
        }
        usage.images.sort_by(|a, b| a.name.cmp(&b.name));
        for (d, _, size) in &files {
            usage.blobs.all.add(*size);
            match users.get(d) {
                None => usage.blobs.unreferenced.add(*size),
                Some(n) => {
                    usage.blobs.referenced.add(*size);
                    if *n > 1 {
                        usage.blobs.shared.add(*size);
                    }
                }
            }
        }
        let root = self.layout.root();
        usage.signatures = files_under(&root.join("signatures"), 2);
        usage.records = files_under(&root.join("records"), 2);
        usage.temporaries = temporaries_under(root, 2);
        usage.total_bytes = usage.blobs.all.bytes
            + usage.signatures.bytes
            + usage.records.bytes
            + usage.temporaries.bytes;
        Ok(usage)
    }
}

/// Regular files (not temporaries) down to `depth` levels under `dir`.
fn files_under(dir: &Path, depth: usize) -> FilesUsage {
    let mut u = FilesUsage::default();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return u;
    };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_file() {
            u.add(meta.len());
        } else if meta.is_dir() && depth > 1 {
            let sub = files_under(&e.path(), depth - 1);
            u.count += sub.count;
            u.bytes += sub.bytes;
        }
    }
    u
}

/// ferry's temporaries down to `depth` levels under `dir`, not counting holds (hard links to
/// blobs that take no space of their own) or session lock files.
fn temporaries_under(dir: &Path, depth: usize) -> FilesUsage {
    use std::os::unix::fs::MetadataExt;
    let mut u = FilesUsage::default();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return u;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(meta) = e.metadata() else { continue };
        if name.starts_with(TEMP_PREFIX) {
            if meta.is_file() && meta.nlink() == 1 && !name.ends_with(".lock") {
                u.add(meta.len());
            } else if meta.is_dir() {
                let sub = files_under(&e.path(), 8);
                u.count += sub.count;
                u.bytes += sub.bytes;
            }
        } else if meta.is_dir() && depth > 0 {
            let sub = temporaries_under(&e.path(), depth - 1);
            u.count += sub.count;
            u.bytes += sub.bytes;
        }
    }
    u
}

/// What the newest record of a name says of the policy's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RecordedVerdict {
    /// The policy accepted the image (every image of a list).
    Accepted,
    /// The policy rejected it (a record ferry would not write for a stored image; kept for
    /// records written by other means).
    Rejected,
    /// The newest copy has records but none carries a verdict.
    NotJudged,
    /// No record of this name: put in by other means, or its records were pruned or purged.
    NoRecord,
}

impl RecordedVerdict {
    /// The name used in text and JSON.
    pub fn name(self) -> &'static str {
        match self {
            RecordedVerdict::Accepted => "accepted",
            RecordedVerdict::Rejected => "rejected",
            RecordedVerdict::NotJudged => "not-judged",
            RecordedVerdict::NoRecord => "no-record",
        }
    }
}

/// One image of the store, as [`Store::list`] gives it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ImageSummary {
    /// Its full name (`docker.io/library/app:1`).
    pub name: String,
    /// Its manifest digest.
    pub digest: Digest,
    /// Its manifest's media type.
    pub media_type: String,
    /// Bytes of every distinct blob it needs: manifest, config and layers, and for a list
    /// every instance with its config and layers (as the manifests declare them).
    pub size: u64,
    /// Whether every manifest it needs could be read (`ferry store check` says more).
    pub complete: bool,
    /// When its name was last copied into the store (the newest record), if recorded.
    pub last_copy: Option<String>,
    /// Where that copy came from.
    pub source: Option<String>,
    /// That copy's signature mode.
    pub mode: Option<SignatureMode>,
    /// That copy's verdict.
    pub verdict: RecordedVerdict,
}

/// What [`Store::remove`] does besides removing names.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RemoveOptions {
    /// Also remove the records made for these names and the signatures only they wrote.
    pub purge_evidence: bool,
}

impl RemoveOptions {
    /// Keep the evidence (the default).
    pub fn new() -> RemoveOptions {
        RemoveOptions::default()
    }

    /// Purge the evidence too.
    pub fn purge_evidence(mut self, purge: bool) -> RemoveOptions {
        self.purge_evidence = purge;
        self
    }
}

/// A name removed from the index.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RemovedImage {
    /// The name.
    pub name: String,
    /// The manifest it named.
    pub digest: Digest,
}

/// What [`Store::remove`] did.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct RemoveReport {
    /// The names removed from `index.json`.
    pub removed: Vec<RemovedImage>,
    /// Evidence files removed (with `purge_evidence`).
    pub purged: Vec<PathBuf>,
}

/// What [`Store::prune`] removes besides unused blobs.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PruneOptions {
    /// Only say what would be removed.
    pub dry_run: bool,
    /// Also remove records older than this, except the newest copy of each name in the store.
    pub keep_records: Option<Duration>,
}

impl PruneOptions {
    /// Remove unused blobs, keep every record.
    pub fn new() -> PruneOptions {
        PruneOptions::default()
    }

    /// Only say what would go.
    pub fn dry_run(mut self, dry_run: bool) -> PruneOptions {
        self.dry_run = dry_run;
        self
    }

    /// Remove records older than `age` too.
    pub fn keep_records(mut self, age: Option<Duration>) -> PruneOptions {
        self.keep_records = age;
        self
    }
}

/// A blob a prune removed (or would remove).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PrunedBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size on disk.
    pub size: u64,
}

/// A record a prune removed (or would remove).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PrunedRecord {
    /// The file.
    pub path: PathBuf,
    /// The name it was made for (`store:…`).
    pub name: String,
    /// When that copy was made.
    pub time: String,
    /// Its size.
    pub size: u64,
}

/// What [`Store::prune`] did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct PruneReport {
    /// Nothing was removed: this is what would be.
    pub dry_run: bool,
    /// Blobs and manifests no name needs.
    pub blobs: Vec<PrunedBlob>,
    /// Their bytes.
    pub blob_bytes: u64,
    /// Blobs kept because a name needs them.
    pub kept_blobs: usize,
    /// Blobs no name needs yet, kept because a copy in flight holds them.
    pub held_blobs: usize,
    /// Records older than the limit.
    pub records: Vec<PrunedRecord>,
    /// Their bytes.
    pub record_bytes: u64,
}

/// A count of files and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FilesUsage {
    /// Files.
    pub count: usize,
    /// Bytes on disk.
    pub bytes: u64,
}

impl FilesUsage {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

/// The blobs of the store, by who needs them.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct BlobUsage {
    /// Every blob and manifest.
    pub all: FilesUsage,
    /// Those some name needs.
    pub referenced: FilesUsage,
    /// Those more than one name needs (counted once).
    pub shared: FilesUsage,
    /// Those no name needs: what a prune reclaims.
    pub unreferenced: FilesUsage,
}

/// One image's space.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ImageUsage {
    /// Its name.
    pub name: String,
    /// Its manifest digest.
    pub digest: Digest,
    /// Bytes of every blob it needs.
    pub size: u64,
    /// Bytes no other name needs: what removing it (and pruning) would reclaim.
    pub unique: u64,
}

/// Where the store's space goes ([`Store::disk_usage`]).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct DiskUsage {
    /// Each named image.
    pub images: Vec<ImageUsage>,
    /// The blobs.
    pub blobs: BlobUsage,
    /// Stored signatures.
    pub signatures: FilesUsage,
    /// Records.
    pub records: FilesUsage,
    /// Temporaries of copies running now or killed earlier.
    pub temporaries: FilesUsage,
    /// Everything above.
    pub total_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema1_layers_are_read_from_fs_layers() {
        let d = Digest::sha256_of(b"x");
        let m = format!(
            r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"{d}"}},{{"blobSum":"{d}"}}]}}"#
        );
        assert_eq!(schema1_layers(m.as_bytes()).unwrap(), vec![d]);
        assert!(schema1_layers(br#"{"fsLayers":[{}]}"#).is_err());
    }
}
