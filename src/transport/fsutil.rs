//! File helpers shared by the local transports: streaming a blob into a temp file beside its
//! final place, atomic replacement of small files, locks, and reading bounded files.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::StreamExt;

use super::{Result, TransportError};
use crate::digest::ByteStream;
use crate::signature::{MAX_SIGNATURE_SIZE, SignatureSlot, SlotReadError, SlotReadErrorKind};

/// A name no other call in any process is likely to give: 16 hex digits from the process id,
/// the time, a per-process counter and the thread, hashed. It needs no entropy source, so it
/// works in a root without `/dev` (where an OS-entropy generator can fail).
pub fn unique_id() -> String {
    use sha2::Digest as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = sha2::Sha256::new();
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.update(now.to_le_bytes());
    h.update(format!("{:?}", std::thread::current().id()).as_bytes());
    hex::encode(h.finalize().get(..8).unwrap_or_default())
}

/// The prefix of every temporary file or directory ferry leaves while it works.
pub const TEMP_PREFIX: &str = ".ferry-tmp-";

const READ_CHUNK: usize = 1024 * 1024;

/// A stream of a file's bytes in large chunks.
pub async fn file_stream(path: &Path) -> Result<ByteStream> {
    let f = tokio::fs::File::open(path)
        .await
        .map_err(|e| TransportError::io(path, e))?;
    Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
        f, READ_CHUNK,
    )))
}

/// The bytes gathered from a blob's stream before they go to its writer in one hand-over (one
/// `writev(2)`, one wake-up of the writer thread).
const WRITE_BATCH: usize = 1 << 20;

/// How much of a blob is written between two background `fdatasync(2)` calls: the disk writes
/// the blob while it arrives, so the sync before the rename waits for the last few MiB instead
/// of the whole blob (measured on the 8 x 32 MiB bench image: each blob's single final fsync
/// took 35-80 ms, on the copy's critical path). `sync_file_range(2)` would say "start writing"
/// without waiting, but no safe wrapper offers it and the library has no unsafe code; a sync
/// on a thread of its own does the same without blocking the writer.
const SYNC_EVERY: u64 = 8 << 20;

/// What the feeding side hands to a blob's writer thread.
enum ToWriter {
    /// Chunks to append, in order (written with one `writev(2)`, no copy).
    Data(Vec<bytes::Bytes>),
    /// Every byte was handed over and verified: sync the file.
    Done,
}

/// Writes `stream` into a new temporary file in `dir` (named with `prefix`), synced to disk.
/// On any error (including the stream's own verification error at its end) the file is removed.
///
/// The stream is read (and so verified) on the caller's task; the chunks go, without a copy,
/// to a writer on the blocking pool in batches of 1 MiB, which starts the file's
/// writeback every 8 MiB and syncs it once the stream has ended whole. The file
/// is synced only then: a stream that fails or a caller that goes away leaves a temp file that
/// is removed unsynced.
pub async fn stream_to_temp(
    dir: &Path,
    prefix: &str,
    mut stream: ByteStream,
) -> Result<tempfile::TempPath> {
    let tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempfile_in(dir)
        .map_err(|e| TransportError::io(dir, e))?;
    let (file, path) = tmp.into_parts();
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let writer = tokio::task::spawn_blocking(move || write_blob(file, rx));
    let mut batch = Vec::new();
    let mut batched = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(TransportError::source_stream)?;
        batched += chunk.len();
        batch.push(chunk);
        if batched >= WRITE_BATCH {
            batched = 0;
            if tx
                .send(ToWriter::Data(std::mem::take(&mut batch)))
                .await
                .is_err()
            {
                // The writer failed: its error is the one to report.
                break;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(ToWriter::Data(batch)).await;
    }
    let _ = tx.send(ToWriter::Done).await;
    drop(tx);
    writer
        .await
        .map_err(|e| TransportError::io(&*path, std::io::Error::other(e)))?
        .map_err(|e| TransportError::io(&*path, e))?;
    Ok(path)
}

/// A blob's writer (on the blocking pool): appends what `rx` brings to `file`, syncs it in the
/// background as it grows and once more at [`ToWriter::Done`]; without `Done` (the feeder
/// failed or went away) it ends with an error and no sync.
fn write_blob(
    file: std::fs::File,
    mut rx: tokio::sync::mpsc::Receiver<ToWriter>,
) -> std::io::Result<()> {
    let file = std::sync::Arc::new(file);
    let mut written = 0u64;
    let mut synced_to = 0u64;
    let mut syncing: Option<std::thread::JoinHandle<std::io::Result<()>>> = None;
    while let Some(msg) = rx.blocking_recv() {
        let chunks = match msg {
            ToWriter::Data(chunks) => chunks,
            ToWriter::Done => {
                if let Some(h) = syncing.take() {
                    h.join()
                        .map_err(|_| std::io::Error::other("a background sync panicked"))??;
                }
                return file.sync_data();
            }
        };
        let mut slices: Vec<std::io::IoSlice<'_>> =
            chunks.iter().map(|c| std::io::IoSlice::new(c)).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = (&*file).write_vectored(rest)?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            std::io::IoSlice::advance_slices(&mut rest, n);
            written += n as u64;
        }
        // One background sync at a time: a disk slower than the network syncs less often.
        if written - synced_to >= SYNC_EVERY && syncing.as_ref().is_none_or(|h| h.is_finished()) {
            if let Some(h) = syncing.take() {
                h.join()
                    .map_err(|_| std::io::Error::other("a background sync panicked"))??;
            }
            let f = std::sync::Arc::clone(&file);
            synced_to = written;
            syncing = Some(std::thread::spawn(move || f.sync_data()));
        }
    }
    Err(std::io::Error::other(
        "the blob's stream ended before it was written whole",
    ))
}

/// Moves a finished temp file to its final name.
pub fn persist(tmp: tempfile::TempPath, to: &Path) -> Result<()> {
    tmp.persist(to).map_err(|e| TransportError::io(to, e.error))
}

/// Replaces `path` with `bytes` atomically: a synced temp file, named with `prefix` (a
/// [`TempSession`]'s), renamed over it.
pub fn write_atomic_with(path: &Path, bytes: &[u8], prefix: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempfile_in(dir)
        .map_err(|e| TransportError::io(dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| TransportError::io(path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| TransportError::io(path, e))?;
    tmp.persist(path)
        .map_err(|e| TransportError::io(path, e.error))?;
    sync_dir(dir);
    Ok(())
}

/// Syncs a directory so a rename in it survives a crash (best effort).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Creates a directory and its parents.
pub fn mkdir_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| TransportError::io(dir, e))
}

/// The most ferry reads of a configuration file (auth.json, a record, …).
pub const MAX_CONFIG_FILE: u64 = crate::limits::MAX_CONFIG_FILE;

/// Reads a whole file of at most `limit` bytes; a larger one is refused without being read.
pub fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>> {
    crate::limits::read_file(path, limit, "a configuration file").map_err(|e| match e {
        crate::limits::ReadError::TooLarge(t) => TransportError::TooLarge {
            path: path.to_path_buf(),
            size: t.size,
            limit: t.limit,
            what: t.what,
        },
        crate::limits::ReadError::Io { source, .. } => TransportError::io(path, source),
    })
}

/// Reads a manifest file, refusing one over [`crate::manifest::MAX_MANIFEST_SIZE`] without
/// reading it whole.
pub fn read_manifest_file(path: &Path) -> Result<Vec<u8>> {
    read_capped(path, crate::manifest::MAX_MANIFEST_SIZE as u64).map_err(|e| match e {
        TransportError::TooLarge { path, size, .. } => TransportError::Manifest {
            what: path.display().to_string(),
            source: crate::manifest::ManifestError::TooLarge(size as usize),
        },
        other => other,
    })
}

/// Whether a file exists with exactly `size` bytes.
pub fn has_file_of_size(path: &Path, size: u64) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.len() == size)
        .unwrap_or(false)
}

/// Why the image whose manifest is `manifest` is not whole in a local transport, or `None`
/// when it is: every blob it needs is a file (`blob` says where) of the size its descriptor
/// gives, and for a list every instance's manifest (`instance` reads it; `None`: missing) is
/// there and whole too. Sizes only, no hashing: blobs are renamed into place after their
/// digest was checked, so a wrong size means a file cut short or a copy that never finished.
pub fn incomplete_image(
    manifest: &[u8],
    blob: &dyn Fn(&crate::digest::Digest) -> PathBuf,
    instance: &dyn Fn(&crate::digest::Digest) -> Option<Vec<u8>>,
) -> Option<String> {
    incomplete_at(manifest, blob, instance, 0)
}

fn incomplete_at(
    manifest: &[u8],
    blob: &dyn Fn(&crate::digest::Digest) -> PathBuf,
    instance: &dyn Fn(&crate::digest::Digest) -> Option<Vec<u8>>,
    depth: usize,
) -> Option<String> {
    let parsed = match crate::manifest::parse(manifest, None) {
        Ok(m) => m,
        Err(e) => return Some(format!("its manifest cannot be read: {e}")),
    };
    match parsed {
        crate::manifest::Manifest::Image(_, image) => image.blobs().into_iter().find_map(|d| {
            let p = blob(&d.digest);
            (!has_file_of_size(&p, d.size)).then(|| {
                format!(
                    "the blob {} is missing or not {} bytes ({})",
                    d.digest,
                    d.size,
                    p.display()
                )
            })
        }),
        crate::manifest::Manifest::List(_, list) => list.manifests.iter().find_map(|d| {
            let Some(bytes) = instance(&d.digest) else {
                return Some(format!("the instance {} is missing", d.digest));
            };
            if !d.digest.matches(&bytes) {
                return Some(format!(
                    "the instance {} does not match its digest",
                    d.digest
                ));
            }
            if depth >= 2 {
                return None;
            }
            incomplete_at(&bytes, blob, instance, depth + 1)
        }),
    }
}

/// An exclusive lock on a file, released on drop.
pub struct FileLock {
    file: std::fs::File,
}

impl FileLock {
    /// Waits for the lock (in a blocking thread).
    pub async fn acquire(path: PathBuf) -> Result<FileLock> {
        tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| TransportError::io(&path, e))?;
            file.lock().map_err(|e| TransportError::io(&path, e))?;
            Ok(FileLock { file })
        })
        .await
        .map_err(|e| TransportError::Unsupported(format!("lock task failed: {e}")))?
    }

    /// Waits for a lock on a directory itself (flock on its descriptor), so locking leaves no
    /// file behind in a directory that belongs to other tools, like an OCI layout.
    pub async fn acquire_dir(dir: PathBuf) -> Result<FileLock> {
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&dir).map_err(|e| TransportError::io(&dir, e))?;
            file.lock().map_err(|e| TransportError::io(&dir, e))?;
            Ok(FileLock { file })
        })
        .await
        .map_err(|e| TransportError::Unsupported(format!("lock task failed: {e}")))?
    }

    /// Takes the lock if nobody holds it.
    pub fn try_acquire(path: &Path) -> Option<FileLock> {
        let file = std::fs::OpenOptions::new().write(true).open(path).ok()?;
        file.try_lock().ok()?;
        Some(FileLock { file })
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Reads signature files `name(1)`, `name(2)`, … in `dir` until the first missing one; each
/// is capped at [`MAX_SIGNATURE_SIZE`] without reading more, and a failed read is that slot's
/// outcome rather than an error.
pub fn read_signature_files(dir: &Path, name: impl Fn(usize) -> String) -> Vec<SignatureSlot> {
    use std::io::Read;
    let mut out = Vec::new();
    for index in 1..=crate::signature::MAX_SLOTS {
        let path = dir.join(name(index));
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => {
                out.push(SignatureSlot {
                    index,
                    location: path.display().to_string(),
                    content: Err(SlotReadError {
                        kind: SlotReadErrorKind::Io,
                        message: format!("reading {}: {e}", path.display()),
                    }),
                });
                continue;
            }
        };
        let mut bytes = Vec::new();
        let content = match file
            .take(MAX_SIGNATURE_SIZE as u64 + 1)
            .read_to_end(&mut bytes)
        {
            Ok(_) if bytes.len() > MAX_SIGNATURE_SIZE => Err(SlotReadError {
                kind: SlotReadErrorKind::TooLarge,
                message: format!(
                    "{} is larger than the 4 MiB signature limit",
                    path.display()
                ),
            }),
            Ok(_) => Ok(bytes),
            Err(e) => Err(SlotReadError {
                kind: SlotReadErrorKind::Io,
                message: format!("reading {}: {e}", path.display()),
            }),
        };
        out.push(SignatureSlot {
            index,
            location: path.display().to_string(),
            content,
        });
    }
    out
}

/// The temporaries of one copy: every temporary it makes under `root` carries its id
/// (`.ferry-tmp-ID-…`), and it holds a lock on `root/.ferry-tmp-ID.lock` while it runs. A
/// later session removes the temporaries of every session whose lock is free (a copy that was
/// killed), never those of one still running; dropping a session removes its own (a copy that
/// failed), and [`remove_live_temporaries`] removes those of every session of this process (a
/// copy interrupted by a signal).
pub struct TempSession {
    root: PathBuf,
    id: String,
    depth: usize,
    _lock: FileLock,
}

/// A live session's temporaries, for [`remove_live_temporaries`].
struct Live {
    root: PathBuf,
    id: String,
    depth: usize,
}

static LIVE: std::sync::Mutex<Vec<Live>> = std::sync::Mutex::new(Vec::new());

fn lock_name(id: &str) -> String {
    format!("{TEMP_PREFIX}{id}.lock")
}

/// Removes everything under `root` down to `depth` levels whose name starts with `prefix`.
fn remove_prefixed(root: &Path, prefix: &str, depth: usize) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let p = e.path();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if name.starts_with(prefix) && !name.ends_with(".lock") {
            let _ = if is_dir {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        } else if is_dir && depth > 0 && !name.starts_with(TEMP_PREFIX) {
            remove_prefixed(&p, prefix, depth - 1);
        }
    }
}

impl TempSession {
    /// Starts a session under `root` (created if missing), whose temporaries lie at most
    /// `depth` directories below it: first removes the temporaries of dead sessions there.
    pub fn start(root: &Path, depth: usize) -> Result<TempSession> {
        mkdir_all(root)?;
        clean_dead(root, depth);
        let id = unique_id();
        let lock_path = root.join(lock_name(&id));
        // The lock file is locked under a name no other copy looks at, then renamed into
        // place: a copy cleaning up after dead sessions at this moment could otherwise find it
        // unlocked, take it for a dead session's and hold or remove it.
        let staging = root.join(format!("{TEMP_PREFIX}{id}.locking"));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&staging)
            .map_err(|e| TransportError::io(&staging, e))?;
        file.try_lock().map_err(|e| {
            TransportError::Unsupported(format!("cannot lock {}: {e}", staging.display()))
        })?;
        std::fs::rename(&staging, &lock_path).map_err(|e| TransportError::io(&lock_path, e))?;
        let lock = FileLock { file };
        if let Ok(mut live) = LIVE.lock() {
            live.push(Live {
                root: root.to_path_buf(),
                id: id.clone(),
                depth,
            });
        }
        Ok(TempSession {
            root: root.to_path_buf(),
            id,
            depth,
            _lock: lock,
        })
    }

    /// The prefix of this session's temporaries: `.ferry-tmp-ID-`.
    pub fn prefix(&self) -> String {
        format!("{TEMP_PREFIX}{}-", self.id)
    }
}

impl Drop for TempSession {
    fn drop(&mut self) {
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|l| l.id != self.id);
        }
        remove_prefixed(&self.root, &self.prefix(), self.depth);
        let _ = std::fs::remove_file(self.root.join(lock_name(&self.id)));
    }
}

/// Whether `dir` holds another session's lock (a copy running, or one killed whose leftovers
/// no one has cleaned yet).
pub fn has_sessions(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(TEMP_PREFIX) && n.ends_with(".lock")
        })
    })
}

/// Removes the temporaries, down to `depth` levels under `root`, of every session whose lock
/// in `root` is free: the leftovers of copies that were killed.
pub fn clean_dead(root: &Path, depth: usize) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name
            .strip_prefix(TEMP_PREFIX)
            .and_then(|s| s.strip_suffix(".lock"))
        else {
            continue;
        };
        let Some(_held) = FileLock::try_acquire(&e.path()) else {
            continue;
        };
        remove_prefixed(root, &format!("{TEMP_PREFIX}{id}-"), depth);
        let _ = std::fs::remove_file(e.path());
    }
}

/// Removes the temporaries of every session of this process, for a signal handler that is
/// about to exit: an interrupted copy leaves nothing behind.
pub fn remove_live_temporaries() {
    let live = match LIVE.lock() {
        Ok(mut l) => std::mem::take(&mut *l),
        Err(_) => return,
    };
    for l in live {
        remove_prefixed(&l.root, &format!("{TEMP_PREFIX}{}-", l.id), l.depth);
        let _ = std::fs::remove_file(l.root.join(lock_name(&l.id)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<std::ffi::OsString> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blob_streamed_to_a_temp_file_arrives_whole_in_order() {
        let t = tempfile::tempdir().unwrap();
        // Chunks of uneven sizes (one empty), past several write batches and background syncs.
        let total = 2 * SYNC_EVERY as usize + 12_345;
        let data: Vec<u8> = (0..total).map(|i| (i * 7 + i / 4099) as u8).collect();
        let mut chunks = Vec::new();
        let mut at = 0;
        let mut k = 0;
        while at < total {
            let n = [1, 0, 4096, 65_537, 1 << 20, 3 << 20][k % 6].min(total - at);
            chunks.push(Ok(bytes::Bytes::copy_from_slice(&data[at..at + n])));
            at += n;
            k += 1;
        }
        let stream: ByteStream = Box::pin(futures::stream::iter(chunks));
        let path = stream_to_temp(t.path(), ".ferry-tmp-t-", stream)
            .await
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_that_fails_or_a_caller_that_goes_away_leaves_no_file() {
        let t = tempfile::tempdir().unwrap();
        let big = bytes::Bytes::from(vec![7u8; 3 << 20]);
        // The stream's own error (a digest mismatch at its end, say) is the one reported.
        let failing: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(big.clone()),
            Err(std::io::Error::other("digest mismatch")),
        ]));
        let e = stream_to_temp(t.path(), ".ferry-tmp-t-", failing)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
        assert_eq!(entries(t.path()), Vec::<std::ffi::OsString>::new());
        // A caller dropping the write midway (Ctrl-C, another blob failed).
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(1);
        let stream: ByteStream = Box::pin(tokio_stream_from(rx));
        let write = tokio::spawn({
            let dir = t.path().to_path_buf();
            async move { stream_to_temp(&dir, ".ferry-tmp-t-", stream).await }
        });
        tx.send(Ok(big.clone())).await.unwrap();
        tx.send(Ok(big)).await.unwrap();
        assert_eq!(
            entries(t.path()).len(),
            1,
            "the temp file while it is written"
        );
        write.abort();
        assert!(write.await.unwrap_err().is_cancelled());
        assert_eq!(entries(t.path()), Vec::<std::ffi::OsString>::new());
    }

    /// A receiver as a stream (tokio-stream is not a dependency).
    fn tokio_stream_from(
        rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    ) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> {
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
    }

    #[test]
    fn dead_sessions_are_cleaned_and_live_ones_kept() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let live = TempSession::start(root, 2).unwrap();
        std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        std::fs::write(
            root.join(format!("blobs/sha256/{}x", live.prefix())),
            b"live",
        )
        .unwrap();
        // A dead session: its lock file exists but nobody holds it.
        std::fs::write(root.join(".ferry-tmp-dead.lock"), b"").unwrap();
        std::fs::write(root.join("blobs/sha256/.ferry-tmp-dead-a"), b"dead").unwrap();
        std::fs::create_dir(root.join(".ferry-tmp-dead-dir")).unwrap();
        std::fs::write(root.join("blobs/sha256/keep"), b"a blob").unwrap();
        let other = TempSession::start(root, 2).unwrap();
        assert!(!root.join("blobs/sha256/.ferry-tmp-dead-a").exists());
        assert!(!root.join(".ferry-tmp-dead-dir").exists());
        assert!(!root.join(".ferry-tmp-dead.lock").exists());
        assert!(
            root.join(format!("blobs/sha256/{}x", live.prefix()))
                .exists()
        );
        assert!(root.join("blobs/sha256/keep").exists());
        assert!(has_sessions(root));
        // Dropping a session removes its own temporaries and lock.
        drop(live);
        assert_eq!(
            std::fs::read_dir(root.join("blobs/sha256"))
                .unwrap()
                .count(),
            1
        );
        drop(other);
        assert!(!has_sessions(root));
    }
}
