//! File helpers shared by the local transports: streaming a blob into a temp file beside its
//! final place, atomic replacement of small files, locks, and reading bounded files.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use tokio::io::AsyncWriteExt;

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

/// Writes `stream` into a new temporary file in `dir` (named with `prefix`), synced to disk.
/// On any error (including the stream's own verification error at its end) the file is removed.
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
    let mut out = tokio::io::BufWriter::with_capacity(READ_CHUNK, tokio::fs::File::from_std(file));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| TransportError::io(&*path, e))?;
        out.write_all(&chunk)
            .await
            .map_err(|e| TransportError::io(&*path, e))?;
    }
    out.flush()
        .await
        .map_err(|e| TransportError::io(&*path, e))?;
    let file = out.into_inner();
    file.sync_all()
        .await
        .map_err(|e| TransportError::io(&*path, e))?;
    Ok(path)
}

/// Moves a finished temp file to its final name.
pub fn persist(tmp: tempfile::TempPath, to: &Path) -> Result<()> {
    tmp.persist(to).map_err(|e| TransportError::io(to, e.error))
}

/// Replaces `path` with `bytes` atomically: a synced temp file renamed over it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
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

/// The most ferry reads of a configuration file (auth.json, a registries.d file, …), as
/// containers/image bounds what it reads whole.
pub const MAX_CONFIG_FILE: u64 = 4 * 1024 * 1024;

/// Reads a whole file of at most `limit` bytes; a larger one is refused without being read.
pub fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| TransportError::io(path, e))?;
    let mut bytes = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| TransportError::io(path, e))?;
    if bytes.len() as u64 > limit {
        let size = std::fs::metadata(path)
            .map(|m| m.len())
            .unwrap_or(bytes.len() as u64);
        return Err(TransportError::TooLarge {
            path: path.to_path_buf(),
            size,
            limit,
            what: "a configuration file",
        });
    }
    Ok(bytes)
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

/// Reads a whole small file.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| TransportError::io(path, e))
}

/// Whether a file exists with exactly `size` bytes.
pub fn has_file_of_size(path: &Path, size: u64) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.len() == size)
        .unwrap_or(false)
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
