//! The forensic view of an image in ferry's store: the signatures kept with it and the records
//! of how it passed the policy, read beside the store that keeps them; and what a source serves
//! now, for images outside the store. The CLI only prints these values (`ferry signatures
//! list|show|export`); a runtime can show them its own way. A fresh judgement of what is kept
//! (`verify`) goes through the gate, so it lives with the other consumers of the gate
//! (`copy/stored.rs`).
//!
//! A forensic question is about one name. The store keeps signatures and records by manifest
//! digest, and one manifest can be pulled under several names through different policies; the
//! view of a name shows that name's own history, and lists records made for other names that
//! share the manifest separately, marked as theirs. Another name's verdict is never presented
//! as this one's.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Store, StoredSignature};
use crate::digest::Digest;
use crate::policy::SignatureMode;
use crate::record::{Record, UnpackRecord, WrittenSignature};
use crate::reference::{DockerReference, ImageReference};
use crate::signature::decode::{Decoded, decode};
use crate::transport::TransportError;
use crate::verdict::SlotOutcome;

/// Why the forensic view cannot be given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForensicsError {
    /// The store could not be read, or has no such image.
    #[error(transparent)]
    Store(#[from] TransportError),
    /// `export` into a directory that is not empty.
    #[error("{0} exists and is not empty: export into a new or empty directory")]
    NotEmpty(PathBuf),
    /// Writing the export failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// No stored signature with that number.
    #[error("{image} has no stored signature-{slot} (it has {count})")]
    NoSuchSignature {
        /// The image.
        image: String,
        /// The number asked for.
        slot: usize,
        /// How many it has.
        count: usize,
    },
}

impl ForensicsError {
    /// What kind of failure this is.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            ForensicsError::Store(e) => e.kind(),
            ForensicsError::NotEmpty(_) => crate::error::ErrorKind::Config,
            ForensicsError::Write { .. } => crate::error::ErrorKind::Io,
            ForensicsError::NoSuchSignature { .. } => crate::error::ErrorKind::NotFound,
        }
    }
}

/// One signature slot of the newest copy of this name: where it came from, whether and how it
/// is stored, the verdict at pull time, and what it says.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SlotView {
    /// The slot at the source (1-based); `None` for a signature ferry made or one no record of
    /// this name explains.
    pub source_slot: Option<usize>,
    /// Where it was read from.
    pub location: Option<String>,
    /// The stored file (`signature-N`), when it is stored.
    pub stored_as: Option<String>,
    /// The verdict at pull time.
    pub verdict: Option<SlotOutcome>,
    /// What the record says of a slot without a verdict.
    pub note: Option<String>,
    /// The stored signature, decoded.
    pub decoded: Option<Decoded>,
}

/// A summary of one record.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CopySummary {
    /// When.
    pub time: String,
    /// The name it was copied into the store as.
    pub destination: String,
    /// From where.
    pub source: String,
    /// The signature mode.
    pub mode: SignatureMode,
    /// The policy file.
    pub policy: Option<String>,
    /// Its digest.
    pub policy_digest: Option<String>,
    /// Whether the policy accepted it (`None` for a list, which is not judged).
    pub accepted: Option<bool>,
    /// The scope whose requirements applied.
    pub scope: Option<String>,
}

impl CopySummary {
    fn of(r: &Record) -> CopySummary {
        CopySummary {
            time: r.time.clone(),
            destination: r.destination.clone(),
            source: r.source.clone(),
            mode: r.mode,
            policy: r.policy.clone(),
            policy_digest: r.policy_digest.clone(),
            accepted: r.manifest.verdict.as_ref().map(|v| v.accepted),
            scope: r.manifest.verdict.as_ref().map(|v| v.scope.clone()),
        }
    }
}

/// The forensic view of one stored name.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct History {
    /// The name asked about (`store:…`).
    pub image: String,
    /// Its manifest digest.
    pub manifest_digest: Digest,
    /// Whether the name is still in the store; `false` for a removed name whose evidence
    /// remains (its manifest and blobs may have been pruned).
    pub in_store: bool,
    /// The store's root.
    pub store: PathBuf,
    /// Records of this name, oldest first.
    pub records: usize,
    /// The newest copy of this name, when there is a record of it.
    pub last_copy: Option<CopySummary>,
    /// Every slot of that copy, then stored signatures no record of this name explains.
    pub slots: Vec<SlotView>,
    /// Records of the same manifest made for other names, newest first. Not this name's.
    pub other_names: Vec<CopySummary>,
    /// Every unpack of this name into a runtime bundle (`ferry unpack`), oldest first: where,
    /// and under which verdict.
    pub unpacks: Vec<UnpackRecord>,
    /// Record files that could not be read, with why.
    pub unreadable_records: Vec<String>,
    #[serde(skip)]
    own: Vec<Record>,
    #[serde(skip)]
    stored: Vec<StoredSignature>,
}

/// Opens the forensic view of `name` in `store`. A name removed from the store (no longer in
/// `index.json`) whose records remain is found through them: its newest copy's manifest.
pub fn history(store: &Store, name: &DockerReference) -> Result<History, ForensicsError> {
    let (digest, in_store) = match store.resolve(name) {
        Ok(image) => (image.digest, true),
        Err(TransportError::NotFound(why)) => match store.recorded_digest(name)? {
            Some(d) => (d, false),
            None => return Err(TransportError::NotFound(why).into()),
        },
        Err(e) => return Err(e.into()),
    };
    let stored = store.signatures(&digest)?;
    let me = crate::transport::store::Reference::image(name.clone()).to_string();
    let mut own = Vec::new();
    let mut others = Vec::new();
    let mut unreadable_records = Vec::new();
    for r in store.records(&digest)? {
        match r.record {
            Ok(rec) if rec.destination == me => own.push(rec),
            Ok(rec) => others.push(rec),
            Err(e) => unreadable_records.push(format!("{}: {e}", r.path.display())),
        }
    }
    own.sort_by(|a, b| a.time.cmp(&b.time));
    others.sort_by(|a, b| b.time.cmp(&a.time));
    let mut unpacks = Vec::new();
    for r in store.unpack_records(&digest)? {
        match r.record {
            Ok(rec) if rec.source == me => unpacks.push(rec),
            Ok(_) => {}
            Err(e) => unreadable_records.push(format!("{}: {e}", r.path.display())),
        }
    }
    unpacks.sort_by(|a, b| a.time.cmp(&b.time));
    let newest = own.last();
    let find = |w: &WrittenSignature| stored.iter().find(|s| s.digest == w.digest);
    let mut slots = Vec::new();
    if let Some(r) = newest
        && let Some(v) = &r.manifest.verdict
    {
        for s in &v.slots {
            let kept = r
                .manifest
                .signatures
                .written
                .iter()
                .find(|w| w.source_slot == Some(s.index))
                .and_then(find);
            slots.push(SlotView {
                source_slot: Some(s.index),
                location: Some(s.location.clone()),
                stored_as: kept.map(|k| format!("signature-{}", k.index)),
                verdict: Some(s.outcome.clone()),
                note: None,
                decoded: kept.map(|k| decode(&k.bytes)),
            });
        }
    }
    // Signatures this name's newest copy wrote without a source slot (made by ferry), and, when
    // no record of this name exists, every stored one (put in by other means).
    let explained = |s: &StoredSignature| {
        newest.is_some_and(|r| {
            r.manifest
                .signatures
                .written
                .iter()
                .any(|w| w.digest == s.digest && w.source_slot.is_some())
        })
    };
    for s in &stored {
        let made_here = newest.is_some_and(|r| {
            r.manifest
                .signatures
                .written
                .iter()
                .any(|w| w.digest == s.digest && w.source_slot.is_none())
        });
        if explained(s) {
            continue;
        }
        if newest.is_some() && !made_here {
            // Received with another name's copy of this manifest: not this name's evidence.
            continue;
        }
        slots.push(SlotView {
            source_slot: None,
            location: None,
            stored_as: Some(format!("signature-{}", s.index)),
            verdict: None,
            note: Some(
                if made_here {
                    "signed by ferry during the copy"
                } else {
                    "no record of this name explains this signature"
                }
                .to_string(),
            ),
            decoded: Some(decode(&s.bytes)),
        });
    }
    Ok(History {
        image: me,
        manifest_digest: digest,
        in_store,
        store: store.root_dir().to_path_buf(),
        records: own.len(),
        last_copy: newest.map(CopySummary::of),
        slots,
        other_names: others.iter().map(CopySummary::of).collect(),
        unpacks,
        unreadable_records,
        own,
        stored,
    })
}

/// A stored signature of this name, with its decoded content, for `signatures show`.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ShownSignature {
    /// The stored file, `signature-N`.
    pub signature: String,
    /// Its size.
    pub size: usize,
    /// sha256 of its bytes.
    pub sha256: Digest,
    /// The signed payload, as signed.
    pub payload: Option<serde_json::Value>,
    /// What it says.
    pub decoded: Decoded,
}

/// One signature's bytes as `signatures show` gives them.
fn shown(name: String, bytes: &[u8]) -> ShownSignature {
    let decoded = decode(bytes);
    ShownSignature {
        signature: name,
        size: bytes.len(),
        sha256: Digest::sha256_of(bytes),
        payload: decoded.payload.clone(),
        decoded,
    }
}

/// The signatures of `image` numbered `slot`, or all of them; an error naming how many there
/// are when there is no such one.
fn pick(
    image: &str,
    all: Vec<(usize, &[u8])>,
    slot: Option<usize>,
) -> Result<Vec<ShownSignature>, ForensicsError> {
    let count = all.len();
    let out: Vec<ShownSignature> = all
        .into_iter()
        .filter(|(n, _)| slot.is_none_or(|want| want == *n))
        .map(|(n, bytes)| shown(format!("signature-{n}"), bytes))
        .collect();
    match slot {
        Some(n) if out.is_empty() => Err(ForensicsError::NoSuchSignature {
            image: image.to_string(),
            slot: n,
            count,
        }),
        _ => Ok(out),
    }
}

/// Writes the files of an export into `dir`, which must be new or empty (created, with
/// `records/` when asked); returns the names written, relative to `dir`.
fn export_files<'a>(
    dir: &Path,
    with_records: bool,
    files: impl IntoIterator<Item = (String, &'a [u8])>,
) -> Result<Vec<String>, ForensicsError> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(ForensicsError::NotEmpty(dir.to_path_buf()));
    }
    let made = if with_records {
        dir.join("records")
    } else {
        dir.to_path_buf()
    };
    std::fs::create_dir_all(&made).map_err(|source| ForensicsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for (name, bytes) in files {
        let path = dir.join(&name);
        std::fs::write(&path, bytes).map_err(|source| ForensicsError::Write { path, source })?;
        written.push(name);
    }
    Ok(written)
}

impl History {
    /// The newest record of this name.
    pub fn last_record(&self) -> Option<&Record> {
        self.own.last()
    }

    /// Every record of this name, oldest first.
    pub fn own_records(&self) -> &[Record] {
        &self.own
    }

    /// The stored signatures that belong to this name: those its newest copy wrote, or every
    /// stored one when no record of this name exists.
    pub fn signatures(&self) -> Vec<&StoredSignature> {
        match self.own.last() {
            Some(r) => r
                .manifest
                .signatures
                .written
                .iter()
                .filter_map(|w| self.stored.iter().find(|s| s.digest == w.digest))
                .collect(),
            None => self.stored.iter().collect(),
        }
    }

    /// The signatures of this name decoded; with `slot`, only `signature-slot`.
    pub fn show(&self, slot: Option<usize>) -> Result<Vec<ShownSignature>, ForensicsError> {
        let mine = self
            .signatures()
            .into_iter()
            .map(|s| (s.index, s.bytes.as_slice()))
            .collect();
        pick(&self.image, mine, slot)
    }

    /// The reference a fresh judgement (`verify`) judges as: the source of this name's newest record
    /// (so the policy scopes that gated the pull apply), else its own docker identity.
    pub fn judged_reference(&self) -> ImageReference {
        self.last_record()
            .and_then(|r| ImageReference::parse(&r.source).ok())
            .or_else(|| {
                ImageReference::parse(&self.image)
                    .ok()
                    .and_then(|r| r.docker_reference())
                    .map(crate::transport::docker::Reference::image)
            })
            .unwrap_or_else(|| crate::transport::dir::Reference::image(PathBuf::from(&self.image)))
    }

    /// Writes the manifest, this name's raw signatures and every record of this name into
    /// `dir` (new or empty); returns the files written, relative to `dir`.
    pub fn export(&self, store: &Store, dir: &Path) -> Result<Vec<String>, ForensicsError> {
        // A removed name's manifest may have been pruned; its evidence is exported anyway.
        let manifest = match store.manifest_bytes(&self.manifest_digest) {
            Ok(m) => Some(m),
            Err(_) if !self.in_store => None,
            Err(e) => return Err(e.into()),
        };
        let records: Vec<(String, Vec<u8>)> = self
            .own
            .iter()
            .map(|r| {
                (
                    format!("records/{}.json", r.time.replace(':', "")),
                    r.to_json(),
                )
            })
            .collect();
        let signatures = self.signatures();
        let files = manifest
            .iter()
            .map(|m| ("manifest.json".to_string(), &m[..]))
            .chain(
                signatures
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (format!("signature-{}", i + 1), s.bytes.as_slice())),
            )
            .chain(records.iter().map(|(n, b)| (n.clone(), b.as_slice())));
        export_files(dir, true, files)
    }
}

/// The signatures a source serves now for the manifest an image reference names, outside the
/// store (a registry, an OCI layout, a directory), where no record of a pull exists: every
/// slot as a copy reads it, with why it could not be read or what it says, not judged
/// (`ferry policy check` and `signatures verify` judge them). For a list, the list's own
/// signatures (its images have theirs).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Served {
    /// The image asked about.
    pub image: String,
    /// The digest of the manifest it names.
    pub manifest_digest: Digest,
    /// Whether that manifest is a list of images.
    pub is_list: bool,
    /// Every slot, in order.
    pub slots: Vec<SlotView>,
    /// Where the source looked for signatures, and what it did not look at.
    pub searched: Vec<String>,
    #[serde(skip)]
    manifest: Vec<u8>,
    #[serde(skip)]
    read: Vec<(usize, Vec<u8>)>,
}

/// Reads the signatures `source` serves for the manifest its reference names.
pub async fn served(source: &dyn crate::transport::ImageSource) -> Result<Served, ForensicsError> {
    let top = source.manifest(None).await?;
    let digest = Digest::sha256_of(&top.bytes);
    let is_list = matches!(
        crate::manifest::parse(&top.bytes, top.media_type.as_deref()),
        Ok(crate::manifest::Manifest::List(..))
    );
    let set = source.signatures(&digest, None).await?;
    let mut slots = Vec::new();
    let mut read = Vec::new();
    for slot in set.slots {
        let (note, decoded) = match &slot.content {
            Ok(bytes) => (None, Some(decode(bytes))),
            Err(e) => (Some(format!("could not be read: {e}")), None),
        };
        slots.push(SlotView {
            source_slot: Some(slot.index),
            location: Some(slot.location.clone()),
            stored_as: None,
            verdict: None,
            note,
            decoded,
        });
        if let Ok(bytes) = slot.content {
            read.push((slot.index, bytes));
        }
    }
    Ok(Served {
        image: source.reference().to_string(),
        manifest_digest: digest,
        is_list,
        slots,
        searched: set.searched,
        manifest: top.bytes.to_vec(),
        read,
    })
}

impl Served {
    /// The signatures whose bytes arrived (whatever they hold) decoded, numbered by their slot
    /// at the source; with `slot`, only `signature-slot`.
    pub fn show(&self, slot: Option<usize>) -> Result<Vec<ShownSignature>, ForensicsError> {
        let all = self.read.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        pick(&self.image, all, slot)
    }

    /// Writes the manifest and every signature whose bytes arrived, byte for byte as served
    /// (an HTML page in a slot too: it is evidence of what the source answered), into `dir`
    /// (new or empty) as a `dir:` image keeps them (`manifest.json`, `signature-1`, …,
    /// numbered without gaps); returns the files written.
    pub fn export(&self, dir: &Path) -> Result<Vec<String>, ForensicsError> {
        let files = std::iter::once(("manifest.json".to_string(), self.manifest.as_slice())).chain(
            self.read
                .iter()
                .enumerate()
                .map(|(i, (_, b))| (format!("signature-{}", i + 1), b.as_slice())),
        );
        export_files(dir, false, files)
    }
}
