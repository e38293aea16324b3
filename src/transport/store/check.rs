//! Checking the store against what was verified when it was written, and repairing damaged
//! blobs from a source that has the same image.
//!
//! [`Store::check`] re-hashes every blob and manifest (streaming, 1 MiB at a time), follows
//! every name's manifests to the blobs they need, re-reads every stored signature the way the
//! policy reads it (sniffed, then parsed), and re-reads every record, checking that the
//! signatures each record says it wrote are still stored. Each problem names its file.
//!
//! [`Store::repair`] fetches the damaged or missing blobs and manifests some name needs again
//! from an [`ImageSource`] (any transport), verifies each against its digest as it streams,
//! and replaces the damaged file atomically under the store's lock. Signatures and records are
//! evidence of what was received: they cannot be fetched again, only reported.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::lifecycle::{Fault, LifecycleError, Needed};
use super::{Store, digest_dir, digest_of_dir};
use crate::digest::{Digest, Digester, VerifyingStream};
use crate::manifest::Descriptor;
use crate::record::Record;
use crate::reference::DockerReference;
use crate::signature::sniff::{self, Format};
use crate::transport::fsutil::{self, TEMP_PREFIX, TempSession};
use crate::transport::{ImageSource, TransportError};

type Result<T> = std::result::Result<T, LifecycleError>;

const CHUNK: usize = 1024 * 1024;

/// What [`Store::check`] looks at.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CheckOptions {
    /// Only this name: the blobs and manifests it needs, the signatures kept with its
    /// manifests and its own records. `None` checks the whole store, unused blobs included.
    pub name: Option<DockerReference>,
}

impl CheckOptions {
    /// The whole store.
    pub fn new() -> CheckOptions {
        CheckOptions::default()
    }

    /// Only `name`.
    pub fn name(mut self, name: Option<DockerReference>) -> CheckOptions {
        self.name = name;
        self
    }
}

/// What is wrong with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// `index.json` cannot be read: no name can be followed.
    UnreadableIndex,
    /// A blob or manifest some name needs is not there.
    MissingBlob,
    /// A blob's bytes do not hash to the digest it is stored under.
    CorruptBlob,
    /// A blob could not be read.
    UnreadableBlob,
    /// A manifest whose bytes are right but which ferry cannot follow to its blobs.
    UnreadableManifest,
    /// A stored signature that is not a readable signature any more (truncated, overwritten).
    DamagedSignature,
    /// A `signature-N` after a missing number: readers stop at the gap and never see it.
    HiddenSignature,
    /// A record names a signature (by sha256) that no stored signature of its manifest has.
    LostSignature,
    /// A record that cannot be read or parsed.
    UnreadableRecord,
    /// A record about another manifest than the directory it is in.
    MisplacedRecord,
}

impl ProblemKind {
    /// The name used in text and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::UnreadableIndex => "unreadable-index",
            ProblemKind::MissingBlob => "missing-blob",
            ProblemKind::CorruptBlob => "corrupt-blob",
            ProblemKind::UnreadableBlob => "unreadable-blob",
            ProblemKind::UnreadableManifest => "unreadable-manifest",
            ProblemKind::DamagedSignature => "damaged-signature",
            ProblemKind::HiddenSignature => "hidden-signature",
            ProblemKind::LostSignature => "lost-signature",
            ProblemKind::UnreadableRecord => "unreadable-record",
            ProblemKind::MisplacedRecord => "misplaced-record",
        }
    }

    /// Whether [`Store::repair`] can fix it by fetching the blob again.
    pub fn is_repairable(self) -> bool {
        matches!(
            self,
            ProblemKind::MissingBlob | ProblemKind::CorruptBlob | ProblemKind::UnreadableBlob
        )
    }
}

/// One problem, by file.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// The file.
    pub path: PathBuf,
    /// For blobs and manifests, the digest the file should have.
    pub digest: Option<Digest>,
    /// The details, for people.
    pub detail: String,
    /// The names that need the file (empty for a blob no name needs).
    pub used_by: Vec<String>,
    #[serde(skip)]
    blob: Option<Needed>,
}

impl Problem {
    fn new(kind: ProblemKind, path: PathBuf, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            path,
            digest: None,
            detail: detail.into(),
            used_by: vec![],
            blob: None,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.path.display(),
            self.kind.name(),
            self.detail
        )?;
        if !self.used_by.is_empty() {
            write!(f, " (needed by {})", self.used_by.join(", "))?;
        }
        Ok(())
    }
}

/// What [`Store::check`] found.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct CheckReport {
    /// The store's root.
    pub store: PathBuf,
    /// The name checked, or `None` for the whole store.
    pub name: Option<String>,
    /// Blobs and manifests re-hashed.
    pub blobs: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Manifests followed.
    pub manifests: usize,
    /// Stored signatures re-read.
    pub signatures: usize,
    /// Records re-read.
    pub records: usize,
    /// Every problem found, by file.
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems [`Store::repair`] can fix.
    pub fn repairable(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.kind.is_repairable())
    }
}

/// A blob repaired (fetched again and put in place) or removed.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RepairedBlob {
    /// Its digest.
    pub digest: Digest,
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
}

/// A blob that could not be repaired.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RepairFailure {
    /// Its digest.
    pub digest: Digest,
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// What [`Store::repair`] did.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct RepairReport {
    /// Fetched again, verified and put in place.
    pub repaired: Vec<RepairedBlob>,
    /// Damaged blobs no name needs, removed (a later copy could otherwise reuse them).
    pub removed: Vec<RepairedBlob>,
    /// Could not be fetched or verified.
    pub failed: Vec<RepairFailure>,
}

/// The hash of a file, read 1 MiB at a time.
fn hash_file(path: &Path, digest: &Digest, buf: &mut [u8]) -> std::io::Result<(Digest, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Digester::new(digest.algorithm());
    let mut total = 0u64;
    loop {
        let n = f.read(buf)?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
        total += n as u64;
    }
    Ok((h.finish(), total))
}

/// Why stored signature bytes are not a signature the policy could read, as the policy reads
/// them: sniffed by their first bytes, then parsed as that format.
fn signature_damage(bytes: &[u8]) -> Option<String> {
    match sniff::sniff(bytes) {
        Err(e) => Some(e.to_string()),
        Ok((Format::SimpleSigning, message)) => match crate::signature::simple::inspect(message) {
            Err(e) => Some(e.to_string()),
            Ok(u) if u.raw_payload.is_none() => {
                Some("an OpenPGP message without signed data".into())
            }
            Ok(u) if u.payload.is_none() => {
                Some("the signed data is not a signature payload".into())
            }
            Ok(u) if u.created.is_none() => {
                Some("the OpenPGP message has no complete signature packet".into())
            }
            Ok(_) => None,
        },
        Ok((Format::SigstoreJson, json)) => {
            match crate::signature::sigstore::SigstoreSignature::from_json(json) {
                Err(e) => Some(e.to_string()),
                Ok(_) => None,
            }
        }
    }
}

/// The `signature-N` files of a directory: their numbers, in order.
fn signature_numbers(dir: &Path) -> Vec<usize> {
    let mut out: Vec<usize> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("signature-")
                .and_then(|n| n.parse().ok())
        })
        .collect();
    out.sort_unstable();
    out
}

/// The subdirectories of `dir` named after a digest (`sha256-HEX`).
fn digest_dirs(dir: &Path) -> Vec<Digest> {
    let mut out: Vec<Digest> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| digest_of_dir(&e.file_name().to_string_lossy()))
        .collect();
    out.sort();
    out
}

impl Store {
    /// Checks the store (or one name, `options.name`) against what was verified when it was
    /// written; see the [module documentation](self). Reading needs no lock, so copies go on
    /// meanwhile; a blob a concurrent prune removed is only a problem if a name still needs
    /// it when the check looks again.
    pub fn check(&self, options: &CheckOptions) -> Result<CheckReport> {
        let root = self.layout.root().to_path_buf();
        if !root.is_dir() {
            return Err(TransportError::NotFound(format!(
                "there is no store at {}",
                root.display()
            ))
            .into());
        }
        let mut report = CheckReport {
            store: root.clone(),
            name: options.name.as_ref().map(|n| n.to_string()),
            ..CheckReport::default()
        };
        let entries = match self.index_entries() {
            Ok(e) => e,
            Err(e) => {
                report.problems.push(Problem::new(
                    ProblemKind::UnreadableIndex,
                    root.join("index.json"),
                    e.to_string(),
                ));
                vec![]
            }
        };
        let entries = match &report.name {
            None => entries,
            Some(n) => {
                let mine: Vec<_> = entries
                    .into_iter()
                    .filter(|(name, _)| name.as_deref() == Some(n.as_str()))
                    .collect();
                if mine.is_empty() && report.problems.is_empty() {
                    return Err(LifecycleError::NoSuchName {
                        store: root,
                        names: vec![n.clone()],
                    });
                }
                mine
            }
        };

        // Follow every name to what it needs.
        let mut needed: BTreeMap<Digest, (Needed, Vec<String>)> = BTreeMap::new();
        let mut reported: BTreeSet<Digest> = BTreeSet::new();
        let mut faults = Vec::new();
        for (name, e) in &entries {
            let user = name
                .clone()
                .unwrap_or_else(|| format!("(unnamed {})", e.digest));
            let closure = self.closure(e);
            for n in closure.needed {
                needed
                    .entry(n.digest.clone())
                    .or_insert_with(|| (n, vec![]))
                    .1
                    .push(user.clone());
            }
            faults.extend(closure.faults);
        }
        for (n, fault) in faults {
            let (kind, detail) = match fault {
                Fault::Missing => (ProblemKind::MissingBlob, "the manifest is missing".into()),
                // Found again, with the hash it has, when the blobs are hashed below.
                Fault::Mismatch => continue,
                Fault::Unreadable(why) => (ProblemKind::UnreadableManifest, why),
            };
            if reported.insert(n.digest.clone()) {
                report
                    .problems
                    .push(self.blob_problem(kind, &n, detail, &needed));
            }
        }
        report.manifests = needed.values().filter(|(n, _)| n.is_manifest).count();

        // Re-hash the blobs: every one in the store, or those the name needs.
        let files: Vec<(Digest, PathBuf)> = match &report.name {
            None => self
                .blob_files()?
                .into_iter()
                .map(|(d, p, _)| (d, p))
                .collect(),
            Some(_) => needed
                .keys()
                .map(|d| (d.clone(), self.layout.blob_path(d)))
                .collect(),
        };
        let on_disk: BTreeSet<Digest> = files.iter().map(|(d, _)| d.clone()).collect();
        let mut buf = vec![0u8; CHUNK];
        for (digest, path) in &files {
            let blob = needed
                .get(digest)
                .map(|(n, _)| n.clone())
                .unwrap_or(Needed {
                    digest: digest.clone(),
                    size: 0,
                    media_type: String::new(),
                    is_manifest: false,
                });
            match hash_file(path, digest, &mut buf) {
                Ok((actual, size)) => {
                    report.blobs += 1;
                    report.bytes += size;
                    if actual != *digest && reported.insert(digest.clone()) {
                        report.problems.push(self.blob_problem(
                            ProblemKind::CorruptBlob,
                            &blob,
                            format!("its {size} bytes hash to {actual}"),
                            &needed,
                        ));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if needed.contains_key(digest) && reported.insert(digest.clone()) {
                        report.problems.push(self.blob_problem(
                            ProblemKind::MissingBlob,
                            &blob,
                            "the file is missing".into(),
                            &needed,
                        ));
                    }
                }
                Err(e) => {
                    if reported.insert(digest.clone()) {
                        report.problems.push(self.blob_problem(
                            ProblemKind::UnreadableBlob,
                            &blob,
                            e.to_string(),
                            &needed,
                        ));
                    }
                }
            }
        }
        for (digest, (n, _)) in &needed {
            if !on_disk.contains(digest) && reported.insert(digest.clone()) {
                report.problems.push(self.blob_problem(
                    ProblemKind::MissingBlob,
                    n,
                    "the file is missing".into(),
                    &needed,
                ));
            }
        }
        // A blob missing while a prune ran alongside is a problem only if a name still needs
        // it now.
        if report
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::MissingBlob)
        {
            let still: BTreeSet<Digest> = self
                .index_entries()
                .unwrap_or_default()
                .iter()
                .flat_map(|(_, e)| self.closure(e).needed.into_iter().map(|n| n.digest))
                .collect();
            report.problems.retain(|p| {
                p.kind != ProblemKind::MissingBlob
                    || p.digest.as_ref().is_none_or(|d| still.contains(d))
            });
        }

        // Signatures and records: of every manifest, or of the name's manifests.
        let manifests: Vec<Digest> = match &report.name {
            None => {
                let mut all = digest_dirs(&root.join("signatures"));
                all.extend(digest_dirs(&root.join("records")));
                all.sort();
                all.dedup();
                all
            }
            Some(_) => needed
                .values()
                .filter(|(n, _)| n.is_manifest)
                .map(|(n, _)| n.digest.clone())
                .collect(),
        };
        let only = report.name.as_ref().map(|n| format!("store:{n}"));
        for digest in &manifests {
            let stored = self.check_signatures(digest, &mut report);
            self.check_records(digest, only.as_deref(), &stored, &mut report);
        }
        Ok(report)
    }

    fn blob_problem(
        &self,
        kind: ProblemKind,
        n: &Needed,
        detail: String,
        needed: &BTreeMap<Digest, (Needed, Vec<String>)>,
    ) -> Problem {
        let what = if n.is_manifest { "manifest" } else { "blob" };
        let detail = match kind {
            ProblemKind::CorruptBlob => format!("the {what} {} is damaged: {detail}", n.digest),
            _ => format!("{what} {}: {detail}", n.digest),
        };
        Problem {
            kind,
            path: self.layout.blob_path(&n.digest),
            digest: Some(n.digest.clone()),
            detail,
            used_by: needed
                .get(&n.digest)
                .map(|(_, u)| u.clone())
                .unwrap_or_default(),
            blob: needed.get(&n.digest).map(|(n, _)| n.clone()),
        }
    }

    /// Re-reads the signatures kept with `digest`; returns the sha256 of each readable file.
    fn check_signatures(&self, digest: &Digest, report: &mut CheckReport) -> Vec<Digest> {
        let dir = self.signature_dir(digest);
        let numbers = signature_numbers(&dir);
        let mut stored = Vec::new();
        let mut expected = 1;
        for n in numbers {
            let path = self.signature_path(digest, n);
            if n != expected {
                report.problems.push(Problem::new(
                    ProblemKind::HiddenSignature,
                    path,
                    format!(
                        "signature-{expected} is missing, so readers stop before this one (renumber or restore it)"
                    ),
                ));
                continue;
            }
            expected += 1;
            report.signatures += 1;
            let bytes =
                match fsutil::read_capped(&path, crate::signature::MAX_SIGNATURE_SIZE as u64) {
                    Ok(b) => b,
                    Err(e) => {
                        report.problems.push(Problem::new(
                            ProblemKind::DamagedSignature,
                            path,
                            e.to_string(),
                        ));
                        continue;
                    }
                };
            stored.push(Digest::sha256_of(&bytes));
            if let Some(why) = signature_damage(&bytes) {
                report.problems.push(Problem::new(
                    ProblemKind::DamagedSignature,
                    path,
                    format!("not a readable signature any more: {why}"),
                ));
            }
        }
        stored
    }

    /// Re-reads the records of `digest` (only those made for `only`, when given), and checks
    /// that the signatures each one wrote are among `stored`.
    fn check_records(
        &self,
        digest: &Digest,
        only: Option<&str>,
        stored: &[Digest],
        report: &mut CheckReport,
    ) {
        let dir = self.records_dir(digest);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(TEMP_PREFIX))
            })
            .collect();
        files.sort();
        let damaged: Vec<String> = report
            .problems
            .iter()
            .filter(|p| {
                p.kind == ProblemKind::DamagedSignature
                    && p.path.starts_with(self.signature_dir(digest))
            })
            .filter_map(|p| p.path.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        for path in files {
            let record = fsutil::read_capped(&path, fsutil::MAX_CONFIG_FILE)
                .map_err(|e| e.to_string())
                .and_then(|b| Record::from_json(&b).map_err(|e| e.to_string()));
            let record = match record {
                Ok(r) => r,
                Err(why) => {
                    report.records += 1;
                    report
                        .problems
                        .push(Problem::new(ProblemKind::UnreadableRecord, path, why));
                    continue;
                }
            };
            if only.is_some_and(|o| o != record.destination) {
                continue;
            }
            report.records += 1;
            if record.manifest.digest != *digest {
                report.problems.push(Problem::new(
                    ProblemKind::MisplacedRecord,
                    path,
                    format!(
                        "a record of {} in the directory of {digest} ({})",
                        record.manifest.digest,
                        digest_dir(digest)
                    ),
                ));
                continue;
            }
            for w in &record.manifest.signatures.written {
                if stored.contains(&w.digest) {
                    continue;
                }
                let suspects = if damaged.is_empty() {
                    String::new()
                } else {
                    format!("; damaged here: {}", damaged.join(", "))
                };
                report.problems.push(Problem::new(
                    ProblemKind::LostSignature,
                    path.clone(),
                    format!(
                        "the copy into {} wrote signature {} (source slot {}), which no stored signature of {digest} is any more{suspects}",
                        record.destination,
                        w.digest,
                        w.source_slot
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "none: made by ferry".into()),
                    ),
                ));
            }
        }
    }

    /// Repairs what `report` found that can be repaired: every damaged or missing blob and
    /// manifest a name needs is fetched again from `source` (an image holding the same
    /// content, through any transport), verified against its digest as it streams, and put in
    /// place atomically (a temporary renamed over the damaged file, under the store's lock).
    /// Damaged blobs no name needs are removed instead. Check again afterwards: a repaired
    /// manifest may lead to blobs the first check could not see.
    pub async fn repair(
        &self,
        report: &CheckReport,
        source: &dyn ImageSource,
    ) -> Result<RepairReport> {
        let root = self.layout.root().to_path_buf();
        let mut out = RepairReport::default();
        let mut todo: Vec<(&Problem, Needed)> = Vec::new();
        let mut unused: Vec<&Problem> = Vec::new();
        for p in report.repairable() {
            match (&p.blob, p.used_by.is_empty()) {
                (Some(n), false) => {
                    if !todo.iter().any(|(_, t)| t.digest == n.digest) {
                        todo.push((p, n.clone()));
                    }
                }
                _ => unused.push(p),
            }
        }
        if todo.is_empty() && unused.is_empty() {
            return Ok(out);
        }
        let session = TempSession::start(&root, 2)?;
        let mut fetched: Vec<(Needed, PathBuf, tempfile::TempPath)> = Vec::new();
        for (p, n) in todo {
            match self.fetch(source, &n, &session.prefix()).await {
                Ok(tmp) => fetched.push((n, p.path.clone(), tmp)),
                Err(reason) => out.failed.push(RepairFailure {
                    digest: n.digest.clone(),
                    path: p.path.clone(),
                    reason,
                }),
            }
        }
        let _lock = fsutil::FileLock::acquire(root.join(super::LOCK_FILE)).await?;
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        for (n, path, tmp) in fetched {
            let size = std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(n.size);
            fsutil::persist(tmp, &path)?;
            if let Some(d) = path.parent() {
                dirs.insert(d.to_path_buf());
            }
            out.repaired.push(RepairedBlob {
                digest: n.digest,
                path,
                size,
            });
        }
        for p in unused {
            let Some(digest) = &p.digest else { continue };
            if p.kind != ProblemKind::CorruptBlob {
                continue;
            }
            // Only if it is still damaged: a copy may have replaced it since.
            let mut buf = vec![0u8; CHUNK];
            let still = hash_file(&p.path, digest, &mut buf);
            let Ok((actual, size)) = still else { continue };
            if actual == *digest {
                continue;
            }
            match std::fs::remove_file(&p.path) {
                Ok(()) => out.removed.push(RepairedBlob {
                    digest: digest.clone(),
                    path: p.path.clone(),
                    size,
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(LifecycleError::Io {
                        path: p.path.clone(),
                        source: e,
                    });
                }
            }
            if let Some(d) = p.path.parent() {
                dirs.insert(d.to_path_buf());
            }
        }
        for d in dirs {
            fsutil::sync_dir(&d);
        }
        Ok(out)
    }

    /// Fetches one blob or manifest from `source` into a verified temporary beside its place.
    async fn fetch(
        &self,
        source: &dyn ImageSource,
        n: &Needed,
        prefix: &str,
    ) -> std::result::Result<tempfile::TempPath, String> {
        let final_path = self.layout.blob_path(&n.digest);
        let dir = final_path
            .parent()
            .unwrap_or(self.layout.root())
            .to_path_buf();
        fsutil::mkdir_all(&dir).map_err(|e| e.to_string())?;
        let stream: crate::digest::ByteStream = if n.is_manifest {
            let bytes = fetch_manifest(source, &n.digest).await?;
            Box::pin(futures::stream::once(async move { Ok(bytes) }))
        } else {
            let d = Descriptor {
                media_type: n.media_type.clone(),
                digest: n.digest.clone(),
                size: n.size,
                urls: None,
                annotations: None,
                platform: None,
            };
            let raw = source.blob(&d).await.map_err(|e| e.to_string())?;
            Box::pin(VerifyingStream::new(raw, n.digest.clone(), Some(n.size)))
        };
        fsutil::stream_to_temp(&dir, prefix, stream)
            .await
            .map_err(|e| e.to_string())
    }
}

/// A manifest with `digest` from `source`: its top level if that is the one, else the
/// instance of that digest; checked against the digest.
async fn fetch_manifest(
    source: &dyn ImageSource,
    digest: &Digest,
) -> std::result::Result<bytes::Bytes, String> {
    if let Ok(m) = source.manifest(None).await
        && digest.matches(&m.bytes)
    {
        return Ok(m.bytes);
    }
    match source.manifest(Some(digest)).await {
        Ok(m) if digest.matches(&m.bytes) => Ok(m.bytes),
        Ok(m) => Err(format!(
            "{} has a manifest for {digest} that hashes to {}",
            source.reference(),
            digest.of_same_algorithm(&m.bytes)
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_signatures_are_told_from_readable_ones() {
        let sig = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/demo/hello-dir/signature-1"),
        )
        .unwrap();
        assert_eq!(signature_damage(&sig), None);
        for cut in [
            1,
            sig.len() / 4,
            sig.len() / 2,
            sig.len() - 10,
            sig.len() - 1,
        ] {
            assert!(
                signature_damage(&sig[..cut]).is_some(),
                "a signature cut to {cut} of {} bytes is damaged",
                sig.len()
            );
        }
        assert!(signature_damage(b"").is_some());
        assert!(signature_damage(b"<html>").is_some());
        assert!(signature_damage(b"\x00sigstore-json\n{\"payload\":").is_some());
    }
}
