//! `ferry unpack`'s spine: an admitted image made into an OCI runtime bundle. The gate decides
//! first ([`open_admitted`], exactly as for a copy, in the same signature mode); then the
//! layers download, several at once, each into an unnamed temporary file beside the bundle,
//! while one blocking thread applies them in order as their bytes land (the safe applier of
//! `src/unpack/`, which takes the gate's proof); then `config.json`, the rename into place, and
//! for a stored image the record of the unpack.
//!
//! Memory stays flat whatever the layers' sizes: a download holds one 256 KiB buffer at a
//! time and the applier its own few; the bytes ahead of the applier wait on disk, in at most
//! [`UnpackOptions::parallel_layers`] layers' files, each gone as soon as its layer is applied
//! (or the unpack fails, or is dropped).

use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::{AdmittedImage, CopyError, GateOptions, ProgressEvent, open_admitted};
use crate::digest::Digest;
use crate::error::ErrorKind;
use crate::hint::{Hint, Hinted};
use crate::manifest::{self, Descriptor, Manifest};
use crate::policy::{ManifestRole, Policy};
use crate::record::{RECORD_VERSION, UnpackRecord};
use crate::reference::ImageReference;
use crate::session::Session;
use crate::transport::TransportError;
use crate::unpack::{
    ApplyError, ApplyOptions, BundleBuilder, BundleReport, Check, DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ENTRIES, LayerStats, Resolver, parent_of,
};
use crate::verdict::Verdict;

/// How much of a layer a download gathers before it writes to the layer's file.
const WRITE_CHUNK: usize = 256 * 1024;

/// How many of a layer's bytes may wait in memory for the applier before the rest goes to the
/// layer's file: the bytes the applier is about to read skip the file (a write and a read back,
/// two copies and the page cache's work) whenever it keeps up with the download.
const MEMORY_PER_LAYER: usize = 8 << 20;

/// Everything an unpack needs besides the session, the image and the bundle's path.
#[derive(Clone)]
#[non_exhaustive]
pub struct UnpackOptions {
    /// How the gate decides (policy, signature mode, which image of a list) and how the
    /// source is read; progress goes where it says.
    pub gate: GateOptions,
    /// Write only the root filesystem, into the directory given (no `rootfs/`, no
    /// `config.json`).
    pub rootfs_only: bool,
    /// As umoci's `--rootless`: files owned by the caller, devices skipped with a warning, and
    /// a runtime config that maps the caller to root in a user namespace. Without it the
    /// caller must be root.
    pub rootless: bool,
    /// The most bytes of uncompressed tar the whole unpack may read: a decompression bomb
    /// stops here. Default 64 GiB.
    pub max_bytes: u64,
    /// The most tar entries the whole unpack may apply. Default 4 million.
    pub max_entries: u64,
    /// How many layers may be downloaded or waiting to be applied at once (the one being
    /// applied included); at least 1. Default 4.
    pub parallel_layers: usize,
    /// How names are resolved inside the root (openat2 where the kernel has it).
    pub resolver: Resolver,
}

impl UnpackOptions {
    /// The defaults: the gate's (copy-all, the system's image), a bundle with `config.json`,
    /// not rootless, the generous caps, 4 layers at once.
    pub fn new(policy: Arc<Policy>) -> UnpackOptions {
        UnpackOptions {
            gate: GateOptions::new(policy),
            rootfs_only: false,
            rootless: false,
            max_bytes: DEFAULT_MAX_BYTES,
            max_entries: DEFAULT_MAX_ENTRIES,
            parallel_layers: 4,
            resolver: Resolver::Auto,
        }
    }

    fn apply_options(&self) -> ApplyOptions {
        ApplyOptions {
            rootless: self.rootless,
            max_bytes: self.max_bytes,
            max_entries: self.max_entries,
            resolver: self.resolver,
            whiteouts: crate::unpack::Whiteouts::Remove,
        }
    }
}

/// What an unpack wrote.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UnpackReport {
    /// The image unpacked.
    pub source: String,
    /// The bundle (or, with `rootfs_only`, the root filesystem).
    pub bundle: PathBuf,
    /// Whether only the root filesystem was written.
    pub rootfs_only: bool,
    /// The image manifest unpacked (for a list, the instance chosen).
    pub manifest_digest: Digest,
    /// Its platform, when it was chosen from a list.
    pub platform: Option<String>,
    /// The gate's verdict on it.
    pub verdict: Option<Verdict>,
    /// Each layer's statistics, bottom first.
    pub layers: Vec<LayerStats>,
    /// What the mode let the image go without, and what the applier skipped (devices in
    /// rootless mode, xattrs the filesystem refused).
    pub warnings: Vec<String>,
    /// Whether names were resolved with openat2 (else with the no-follow walk).
    pub openat2: bool,
    /// Temporary directories of earlier, killed unpacks that were removed.
    pub removed_leftovers: Vec<PathBuf>,
    /// The record the store keeps of this unpack (a `store:` image only).
    pub record: Option<PathBuf>,
    /// Seconds from the start to the bundle in place.
    pub seconds: f64,
}

/// Why an unpack failed. Nothing is left at the bundle's path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnpackError {
    /// The gate refused the image ([`ErrorKind::Rejected`]), or its source, manifests or
    /// signatures could not be read.
    #[error(transparent)]
    Gate(#[from] CopyError),
    /// What the gate admitted is not one image with layers to run.
    #[error("{reference}: {why}")]
    NotAnImage {
        /// The image.
        reference: String,
        /// What it is instead.
        why: String,
    },
    /// A layer or the config could not be read from the source, or its bytes do not match
    /// its digest.
    #[error("{what}: {source}")]
    Blob {
        /// Which blob (`layer 2/5 sha256:…`, `the image config sha256:…`).
        what: String,
        /// Why.
        source: TransportError,
    },
    /// Applying a layer, making `config.json` or the bundle failed (the layer and entry are
    /// named).
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The bundle was complete but the store could not record the unpack, so the bundle was
    /// removed again.
    #[error("recording the unpack in the store: {0}")]
    Record(TransportError),
    /// The applier's thread ended without an answer.
    #[error("the layer applier's thread failed: {0}")]
    Worker(String),
}

impl UnpackError {
    /// What kind of failure this is: [`ErrorKind::Rejected`] when the gate refused the image.
    pub fn kind(&self) -> ErrorKind {
        match self {
            UnpackError::Gate(e) => e.kind(),
            UnpackError::NotAnImage { .. } => ErrorKind::Unsupported,
            UnpackError::Blob { source, .. } | UnpackError::Record(source) => source.kind(),
            UnpackError::Apply(e) => e.kind(),
            UnpackError::Worker(_) => ErrorKind::Io,
        }
    }
}

impl Hinted for UnpackError {
    fn hint(&self) -> Option<Hint> {
        match self {
            UnpackError::Gate(e) => e.hint(),
            UnpackError::Blob { source, .. } => source.hint(),
            _ => None,
        }
    }
}

/// Unpacks `src` into an OCI runtime bundle at `bundle` (`rootfs/` and `config.json`, as
/// `umoci unpack` writes it; with `rootfs_only`, the root filesystem alone): the gate decides
/// first, in `options.gate`'s mode, and a rejected image writes nothing. The layers stream from
/// the source, several downloading while one is applied, each verified against its digest; the
/// bundle is built beside `bundle` and renamed into place when complete, so a failure leaves
/// nothing there. Unpacking a `store:` image adds a record of it to the store.
pub async fn unpack(
    session: &Session,
    src: &ImageReference,
    bundle: &Path,
    options: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    let started = Instant::now();
    let image = open_admitted(session, src, &options.gate).await?;
    let planned = match image
        .manifests()
        .iter()
        .filter(|p| p.role == ManifestRole::Image)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [one] => (*one).clone(),
        [] => {
            return Err(UnpackError::NotAnImage {
                reference: src.to_string(),
                why: "no image was chosen from it".into(),
            });
        }
        _ => {
            return Err(UnpackError::NotAnImage {
                reference: src.to_string(),
                why: "a bundle holds one image: choose one of the list by platform, not all".into(),
            });
        }
    };
    let img = match manifest::parse(&planned.raw.bytes, Some(&planned.media_type)) {
        Ok(Manifest::Image(_, img)) => img,
        Ok(Manifest::List(..)) => {
            return Err(UnpackError::NotAnImage {
                reference: src.to_string(),
                why: "the chosen manifest is a list".into(),
            });
        }
        Err(e) => {
            return Err(CopyError::Manifest {
                what: src.to_string(),
                source: e,
            }
            .into());
        }
    };
    let gate = &options.gate;
    let config_what = format!("the image config {}", img.config.digest);
    let config = read_config(&image, &img.config)
        .await
        .map_err(|source| UnpackError::Blob {
            what: config_what,
            source,
        })?;

    let n = img.layers.len();
    let labels: Vec<String> = img
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| format!("layer {}/{n} {}", i + 1, l.digest))
        .collect();
    gate.emit(ProgressEvent::Phase("unpacking layers".into()));

    // Every layer's file, made now (beside the bundle, unnamed) so that a full or read-only
    // disk fails before anything downloads.
    let spool_dir = parent_of(bundle);
    let mut spools = Vec::with_capacity(n);
    for _ in 0..n {
        let file = tempfile::tempfile_in(&spool_dir).map_err(|e| {
            UnpackError::Apply(ApplyError::Io {
                path: spool_dir.clone(),
                op: "create a temporary file for a layer",
                source: e,
            })
        })?;
        spools.push(Arc::new(Spool::new(file, spool_dir.clone())));
    }
    let image = Arc::new(image);
    let mut guard = Cancel {
        spools: spools.clone(),
        tasks: Vec::new(),
    };
    let slots = Arc::new(Semaphore::new(options.parallel_layers.max(1)));
    guard.tasks.push(tokio::spawn(schedule_downloads(
        image.clone(),
        img.layers.clone(),
        spools.clone(),
        slots,
        gate.clone(),
    )));

    // The layer the applier is at, to tell its download's failure from its own.
    let current = Arc::new(AtomicUsize::new(0));
    let apply = {
        let image = image.clone();
        let layers = img.layers.clone();
        let labels = labels.clone();
        let spools = spools.clone();
        let bundle = bundle.to_path_buf();
        let apply_options = options.apply_options();
        let rootfs_only = options.rootfs_only;
        let progress = gate.clone();
        let current = current.clone();
        tokio::task::spawn_blocking(move || -> Result<BundleReport, ApplyError> {
            let admission = image.admission();
            let mut b = if rootfs_only {
                BundleBuilder::create_rootfs(&bundle, apply_options, admission)?
            } else {
                BundleBuilder::create(&bundle, apply_options, admission)?
            };
            for (i, ((desc, label), spool)) in layers.iter().zip(&labels).zip(spools).enumerate() {
                current.store(i, Ordering::SeqCst);
                progress.emit(ProgressEvent::Phase(format!("applying {label}")));
                let reader = SpoolReader {
                    spool: spool.clone(),
                    pos: 0,
                };
                // The spool ends only after the download's verifying stream matched the
                // digest, so the applier need not hash the bytes again.
                b.apply_checked(
                    reader,
                    &desc.media_type,
                    Check::Verified(&desc.digest),
                    label,
                )?;
                // The layer is in the root: its file and its download slot go.
                spool.release();
            }
            b.finish(&config)
        })
    };
    let applied = apply.await;
    let report = match applied {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            // Bytes broken in transit reach the applier before the end of the stream says
            // so: a layer that looks corrupt waits for its download's verdict, and a download
            // that failed (or did not match its digest) is the cause reported.
            let i = current.load(Ordering::SeqCst);
            if let (Some(spool), Some(label)) = (spools.get(i), labels.get(i)) {
                if e.kind() == ErrorKind::Corrupt || caused_by_download(&e) {
                    let spool = spool.clone();
                    let _ = tokio::task::spawn_blocking(move || spool.wait_end()).await;
                }
                if let Some(source) = spool.failure() {
                    return Err(UnpackError::Blob {
                        what: label.clone(),
                        source,
                    });
                }
            }
            return Err(e.into());
        }
        Err(e) => return Err(UnpackError::Worker(e.to_string())),
    };
    drop(guard);

    let mut warnings: Vec<String> = image.warnings().to_vec();
    for (stats, label) in report.layers.iter().zip(&labels) {
        for w in &stats.warnings {
            let line = format!("{label}: {w}");
            gate.emit(ProgressEvent::Warning(line.clone()));
            warnings.push(line);
        }
    }
    let verdict = image.verdict().cloned();
    let record = if src.transport() == "store" {
        match record_unpack(
            session,
            src,
            &image,
            &planned.digest,
            &report,
            options,
            &warnings,
        )
        .await
        {
            Ok(p) => Some(p),
            Err(e) => {
                // The record is part of the unpack: without it, no bundle.
                let _ = std::fs::remove_dir_all(&report.bundle);
                return Err(UnpackError::Record(e));
            }
        }
    } else {
        None
    };
    Ok(UnpackReport {
        source: src.to_string(),
        bundle: report.bundle,
        rootfs_only: options.rootfs_only,
        manifest_digest: planned.digest,
        platform: planned.platform,
        verdict,
        layers: report.layers,
        warnings,
        openat2: report.openat2,
        removed_leftovers: report.removed_leftovers,
        record,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Whether the applier failed because a layer's download did.
fn caused_by_download(e: &ApplyError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .is_some_and(|inner| inner.is::<DownloadFailed>())
            || c.is::<DownloadFailed>()
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The image config's bytes (its size was capped when the manifest was planned).
async fn read_config(image: &AdmittedImage, desc: &Descriptor) -> Result<Vec<u8>, TransportError> {
    let mut stream = image.blob(desc).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.map_err(TransportError::source_stream)?);
        if out.len() as u64 > crate::limits::MAX_CONFIG_BLOB {
            return Err(TransportError::Unsupported(format!(
                "the image config {} is larger than {} bytes",
                desc.digest,
                crate::limits::MAX_CONFIG_BLOB
            )));
        }
    }
    Ok(out)
}

/// The store's record of this unpack.
async fn record_unpack(
    session: &Session,
    src: &ImageReference,
    image: &AdmittedImage,
    digest: &Digest,
    report: &BundleReport,
    options: &UnpackOptions,
    warnings: &[String],
) -> Result<PathBuf, TransportError> {
    let store = session.store(src)?;
    let bundle =
        std::fs::canonicalize(&report.bundle).map_err(|e| TransportError::io(&report.bundle, e))?;
    let gate = &options.gate;
    let record = UnpackRecord {
        version: RECORD_VERSION,
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        source: src.to_string(),
        bundle: bundle.display().to_string(),
        rootfs_only: options.rootfs_only,
        rootless: options.rootless,
        mode: gate.mode,
        policy: Some(gate.policy.origin().to_string()),
        policy_digest: Some(gate.policy.digest().to_string()),
        manifest_digest: digest.clone(),
        platform: image.image().and_then(|p| p.platform.clone()),
        verdict: image.verdict().cloned(),
        layers: report.layers.iter().map(|l| l.digest.clone()).collect(),
        warnings: warnings.to_vec(),
    };
    store
        .add_unpack_record(image.admission(), digest, &record)
        .await
}

/// Starts each layer's download in order, at most `slots` at once (a slot is held until the
/// layer is applied, so the disk ahead of the applier is bounded too).
async fn schedule_downloads(
    image: Arc<AdmittedImage>,
    layers: Vec<Descriptor>,
    spools: Vec<Arc<Spool>>,
    slots: Arc<Semaphore>,
    gate: GateOptions,
) {
    let mut running = Vec::new();
    for (desc, spool) in layers.into_iter().zip(spools) {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        spool.hold(permit);
        running.push(AbortOnDrop(tokio::spawn(download(
            image.clone(),
            desc,
            spool,
            gate.clone(),
        ))));
    }
    for mut task in running {
        let _ = (&mut task.0).await;
    }
}

/// Aborts a task when dropped (when the scheduler is aborted, so are its downloads).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Streams one layer from the source (verified against its digest and size as it passes)
/// into its file, telling the applier of each write.
async fn download(
    image: Arc<AdmittedImage>,
    desc: Descriptor,
    spool: Arc<Spool>,
    gate: GateOptions,
) {
    gate.emit(ProgressEvent::BlobStarted {
        digest: desc.digest.clone(),
        size: desc.size,
    });
    let result = async {
        let mut stream = image.blob(&desc).await?;
        // Bytes bound for the file, gathered into large writes.
        let mut buf = Vec::with_capacity(WRITE_CHUNK);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(TransportError::source_stream)?;
            gate.emit(ProgressEvent::BlobBytes {
                digest: desc.digest.clone(),
                bytes: chunk.len() as u64,
            });
            buf = spool.take(chunk, buf).await?;
        }
        if !buf.is_empty() {
            spool.append(buf).await?;
        }
        Ok::<(), TransportError>(())
    }
    .await;
    if result.is_ok() {
        gate.emit(ProgressEvent::BlobDone {
            digest: desc.digest.clone(),
            action: super::BlobAction::Copied,
        });
    }
    spool.end(result);
}

/// One layer's bytes as they arrive, for the applier to read behind its download
/// ([`SpoolReader`]): the next bytes it will read wait in memory (up to [`MEMORY_PER_LAYER`]);
/// what arrives while that is full, or while bytes in the file are still unread, goes to an
/// unnamed temporary file, at its offset in the layer. The applier reads the memory first,
/// then the file; the download goes back to memory once the applier has read all it has.
struct Spool {
    file: Arc<std::fs::File>,
    /// Where the file is (unnamed), for messages.
    dir: PathBuf,
    state: Mutex<SpoolState>,
    changed: Condvar,
}

#[derive(Default)]
struct SpoolState {
    /// Bytes landed, in memory or in the file (the layer's offset of the next one).
    written: u64,
    /// The file holds the layer's bytes up to here (from where the memory's bytes end).
    file_end: u64,
    /// Bytes waiting in memory, in order, from `mem_start` (always the reader's position
    /// while there are some: the reader takes them before anything in the file).
    mem: std::collections::VecDeque<bytes::Bytes>,
    /// The layer's offset of the first byte in `mem`.
    mem_start: u64,
    /// Bytes in `mem`.
    mem_len: usize,
    /// How far the reader has read.
    read: u64,
    /// Bytes that went through memory (the rest went through the file).
    via_memory: u64,
    /// `Some` once the download ended: all there, or why not.
    end: Option<Result<(), TransportError>>,
    /// The unpack is over (done, failed or dropped): readers stop.
    cancelled: bool,
    /// The download slot, held until the layer is applied.
    permit: Option<OwnedSemaphorePermit>,
}

impl Spool {
    fn new(file: std::fs::File, dir: PathBuf) -> Spool {
        Spool {
            file: Arc::new(file),
            dir,
            state: Mutex::new(SpoolState::default()),
            changed: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, SpoolState> {
        // A panic while the lock was held cannot leave the counters half-updated (each update
        // is one assignment), so a poisoned lock is still good.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hold(&self, permit: OwnedSemaphorePermit) {
        self.state().permit = Some(permit);
    }

    /// Hands the download's next `chunk` to the spool: into memory when it can go there (see
    /// [`Spool::offer`]), else gathered in `buf` (given back) and written to the file in large
    /// writes. While bytes wait in `buf`, later ones join them (never memory), so the layer's
    /// bytes stay in order; the download writes what is left in `buf` at its end.
    async fn take(
        self: &Arc<Self>,
        chunk: bytes::Bytes,
        mut buf: Vec<u8>,
    ) -> Result<Vec<u8>, TransportError> {
        if buf.is_empty() {
            match self.offer(chunk) {
                None => return Ok(buf),
                Some(chunk) => buf.extend_from_slice(&chunk),
            }
        } else {
            buf.extend_from_slice(&chunk);
        }
        if buf.len() >= WRITE_CHUNK {
            return self.append(buf).await;
        }
        Ok(buf)
    }

    /// Takes `chunk` into memory when it can go there in order (the bytes before it are in
    /// memory, or the reader has read them all) and the memory has room; else gives it back,
    /// for the file.
    fn offer(&self, chunk: bytes::Bytes) -> Option<bytes::Bytes> {
        if chunk.is_empty() {
            return None;
        }
        let mut st = self.state();
        let tail_in_memory = st.mem_len > 0 && st.mem_start + st.mem_len as u64 == st.written;
        let all_read = st.read == st.written;
        if st.cancelled
            || !(tail_in_memory || all_read)
            || st.mem_len + chunk.len() > MEMORY_PER_LAYER
        {
            return Some(chunk);
        }
        if st.mem_len == 0 {
            st.mem_start = st.written;
        }
        st.written += chunk.len() as u64;
        st.via_memory += chunk.len() as u64;
        st.mem_len += chunk.len();
        st.mem.push_back(chunk);
        drop(st);
        self.changed.notify_all();
        None
    }

    /// Writes `buf` at the end of the layer's bytes in the file (on a blocking thread) and
    /// tells the reader; gives the buffer back, emptied, for the next bytes.
    async fn append(self: &Arc<Self>, buf: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        let me = self.clone();
        let offset = self.state().written;
        tokio::task::spawn_blocking(move || -> Result<Vec<u8>, TransportError> {
            let mut buf = buf;
            me.file
                .write_all_at(&buf, offset)
                .map_err(|e| TransportError::io(&me.dir, e))?;
            let mut st = me.state();
            st.written = offset + buf.len() as u64;
            st.file_end = st.written;
            drop(st);
            me.changed.notify_all();
            buf.clear();
            Ok(buf)
        })
        .await
        .map_err(|e| {
            TransportError::Unsupported(format!("writing a layer's temporary file: {e}"))
        })?
    }

    fn end(&self, result: Result<(), TransportError>) {
        self.state().end = Some(result);
        self.changed.notify_all();
    }

    /// Why the download failed, if it did (taken: asked once, when the unpack fails).
    fn failure(&self) -> Option<TransportError> {
        let mut st = self.state();
        match st.end.take() {
            Some(Err(e)) => Some(e),
            other => {
                st.end = other;
                None
            }
        }
    }

    /// Waits until the download has ended (or the unpack is over).
    fn wait_end(&self) {
        let mut st = self.state();
        while st.end.is_none() && !st.cancelled {
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The layer is applied (or the unpack is over): readers stop and the slot goes.
    fn release(&self) {
        let mut st = self.state();
        if !st.cancelled {
            tracing::debug!(
                bytes = st.written,
                via_memory = st.via_memory,
                "a layer's spool is done with"
            );
        }
        st.cancelled = true;
        st.permit = None;
        st.mem.clear();
        st.mem_len = 0;
        drop(st);
        self.changed.notify_all();
    }
}

/// Reads a layer's file behind its download, waiting for bytes that have not landed yet.
struct SpoolReader {
    spool: Arc<Spool>,
    pos: u64,
}

/// The error a reader gives when its layer's download failed (the unpack reports the
/// download's own error instead).
#[derive(Debug, thiserror::Error)]
#[error("the layer's download failed")]
struct DownloadFailed;

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut st = self.spool.state();
        loop {
            if st.cancelled {
                return Err(io::Error::other("the unpack was stopped"));
            }
            if st.mem_len > 0 {
                // The memory's bytes start where the reader is (see `SpoolState::mem`); as
                // many chunks as fit are taken at once.
                let mut got = 0;
                while let (Some(front), Some(room)) = (st.mem.front_mut(), buf.get_mut(got..)) {
                    let n = front.len().min(room.len());
                    if room.is_empty() {
                        break;
                    }
                    if let (Some(to), Some(from)) = (room.get_mut(..n), front.get(..n)) {
                        to.copy_from_slice(from);
                    }
                    bytes::Buf::advance(front, n);
                    if front.is_empty() {
                        st.mem.pop_front();
                    }
                    got += n;
                }
                st.mem_len = st.mem_len.saturating_sub(got);
                st.mem_start += got as u64;
                self.pos += got as u64;
                st.read = self.pos;
                return Ok(got);
            }
            if self.pos < st.file_end {
                let want = (st.file_end - self.pos).min(buf.len() as u64) as usize;
                drop(st);
                let n = self
                    .spool
                    .file
                    .read_at(buf.get_mut(..want).unwrap_or_default(), self.pos)?;
                self.pos += n as u64;
                self.spool.state().read = self.pos;
                return Ok(n);
            }
            match &st.end {
                Some(Ok(())) => return Ok(0),
                Some(Err(_)) => return Err(io::Error::other(DownloadFailed)),
                None => {
                    st = self
                        .spool
                        .changed
                        .wait(st)
                        .unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}

/// Stops everything an unpack started when it ends early (an error, or its future dropped:
/// Ctrl-C, a timeout): downloads are aborted and the applier's reads fail, so its thread
/// drops the half-made bundle, which removes it.
struct Cancel {
    spools: Vec<Arc<Spool>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Cancel {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for s in &self.spools {
            s.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer's bytes come out of the spool in order whichever way each went: through memory
    /// while the reader keeps up, through the file while it lags or the memory is full, and
    /// back to memory once the reader has caught up.
    #[test]
    fn spool_keeps_order_through_memory_and_file() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = tempfile::tempfile_in(dir.path()).unwrap();
        let spool = Arc::new(Spool::new(file, dir.path().to_path_buf()));
        // 40 MiB (five times the memory) in chunks of 1 byte to 300 KiB.
        let mut data = Vec::new();
        let mut sizes = Vec::new();
        let mut x: u32 = 26;
        while data.len() < 40 << 20 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let n = 1 + (x as usize >> 8) % (300 << 10);
            sizes.push(n);
            data.extend((0..n).map(|i| (i as u32 ^ x) as u8));
        }
        let total = data.len();
        let reader = {
            let spool = spool.clone();
            std::thread::spawn(move || {
                let mut r = SpoolReader { spool, pos: 0 };
                let mut out = Vec::new();
                let mut buf = vec![0u8; 128 * 1024];
                let mut reads = 0u32;
                loop {
                    let n = r.read(&mut buf).unwrap();
                    if n == 0 {
                        return out;
                    }
                    out.extend_from_slice(&buf[..n]);
                    reads += 1;
                    // Lag now and then, so the memory fills and bytes go to the file.
                    if reads.is_multiple_of(64) && out.len() < total / 2 {
                        std::thread::sleep(std::time::Duration::from_millis(150));
                    }
                }
            })
        };
        rt.block_on(async {
            let mut buf = Vec::new();
            let mut at = 0;
            for (i, n) in sizes.iter().enumerate() {
                let chunk = bytes::Bytes::copy_from_slice(&data[at..at + n]);
                at += n;
                buf = spool.take(chunk, buf).await.unwrap();
                // In the second half the download waits for the reader at times.
                if at > total / 2 && i.is_multiple_of(16) {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
            if !buf.is_empty() {
                spool.append(buf).await.unwrap();
            }
            spool.end(Ok(()));
        });
        let out = reader.join().unwrap();
        assert_eq!(out.len(), total);
        assert!(out == data, "the bytes came out of order");
        let via_memory = spool.state().via_memory;
        assert!(via_memory > 0, "nothing went through memory");
        assert!(
            via_memory < total as u64,
            "nothing went through the file: {via_memory} of {total}"
        );
    }
}
