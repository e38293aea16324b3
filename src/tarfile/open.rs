//! The archives one session has open: the writers that several copies share, and the readers
//! that several images of one archive share.
//!
//! A copy into an archive writes its blobs straight into the archive's temporary file; the
//! file appears under its name only when the archive is finished. One `ferry copy` finishes it
//! when the copy commits. A sync writes many images into one archive, so while a sync holds
//! the session's archives ([`OpenArchives::hold`]), a copy's commit only lists its image in the
//! archive and every copy into the same path shares one writer (blobs already written are not
//! written again); the sync finishes them all at its end ([`OpenArchives::release`]). A copy
//! that fails adds nothing to the archive's index, and a session that ends (or a process that is
//! killed) without finishing an archive leaves no file at its path: the writer's temporary file
//! goes with it (see [`super::TarWriter`]).
//!
//! Readers are kept by path, so the images of one archive (a sync from an archive opens each
//! image on its own) index it once, and a compressed archive is decompressed once per session.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::archive::TarArchive;
use super::docker::DockerArchiveWriter;
use super::error::ArchiveError;
use super::oci::OciArchiveWriter;

/// An archive being written, of either format.
#[derive(Debug)]
#[non_exhaustive]
pub enum ArchiveWriter {
    /// An oci-archive.
    Oci(OciArchiveWriter),
    /// A docker-archive.
    Docker(DockerArchiveWriter),
}

/// Which format an archive has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveFormat {
    /// `oci-archive:`.
    Oci,
    /// `docker-archive:`.
    Docker,
}

impl ArchiveFormat {
    /// The transport's name.
    pub fn name(self) -> &'static str {
        match self {
            ArchiveFormat::Oci => "oci-archive",
            ArchiveFormat::Docker => "docker-archive",
        }
    }
}

impl ArchiveWriter {
    /// Starts an archive of `format` that will become `path`.
    pub async fn create(path: &Path, format: ArchiveFormat) -> Result<ArchiveWriter, ArchiveError> {
        Ok(match format {
            ArchiveFormat::Oci => ArchiveWriter::Oci(OciArchiveWriter::create(path).await?),
            ArchiveFormat::Docker => {
                ArchiveWriter::Docker(DockerArchiveWriter::create(path).await?)
            }
        })
    }

    /// Its format.
    pub fn format(&self) -> ArchiveFormat {
        match self {
            ArchiveWriter::Oci(_) => ArchiveFormat::Oci,
            ArchiveWriter::Docker(_) => ArchiveFormat::Docker,
        }
    }

    /// The oci-archive writer, if it is one.
    pub fn as_oci(&mut self) -> Option<&mut OciArchiveWriter> {
        match self {
            ArchiveWriter::Oci(w) => Some(w),
            ArchiveWriter::Docker(_) => None,
        }
    }

    /// The docker-archive writer, if it is one.
    pub fn as_docker(&mut self) -> Option<&mut DockerArchiveWriter> {
        match self {
            ArchiveWriter::Docker(w) => Some(w),
            ArchiveWriter::Oci(_) => None,
        }
    }

    /// How many images its index lists so far.
    pub fn images(&self) -> usize {
        match self {
            ArchiveWriter::Oci(w) => w.images(),
            ArchiveWriter::Docker(w) => w.images(),
        }
    }

    /// Writes the index and makes the archive appear at its path.
    pub async fn finish(self) -> Result<PathBuf, ArchiveError> {
        match self {
            ArchiveWriter::Oci(w) => w.finish().await,
            ArchiveWriter::Docker(w) => w.finish().await,
        }
    }
}

/// A writer several destinations share; `None` once it was finished or abandoned.
pub type SharedWriter = Arc<tokio::sync::Mutex<Option<ArchiveWriter>>>;

/// A cached reader and what the file was when it was opened.
#[derive(Debug, Clone)]
struct CachedReader {
    identity: (u64, u64, u64, i64, i64),
    archive: TarArchive,
}

/// The archives a session has open (see the module doc).
#[derive(Debug, Default)]
pub struct OpenArchives {
    holds: AtomicUsize,
    writers: std::sync::Mutex<HashMap<PathBuf, (ArchiveFormat, SharedWriter)>>,
    readers: tokio::sync::Mutex<HashMap<PathBuf, CachedReader>>,
}

/// The key of an archive path: absolute, its directory resolved (the file may not exist yet).
fn key(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (absolute.parent(), absolute.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .join(name),
        _ => absolute,
    }
}

fn identity(m: &std::fs::Metadata) -> (u64, u64, u64, i64, i64) {
    (m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec())
}

impl OpenArchives {
    /// Whether copies share writers now (a sync holds the archives).
    pub fn held(&self) -> bool {
        self.holds.load(Ordering::SeqCst) > 0
    }

    /// Keeps archives open across copies until [`OpenArchives::release`]: every copy into one
    /// path shares its writer, and a commit only lists the copy's image.
    pub fn hold(&self) {
        self.holds.fetch_add(1, Ordering::SeqCst);
    }

    /// Ends a [`OpenArchives::hold`]. When no hold is left, every shared archive that lists at
    /// least one image is finished (`keep`), or all are abandoned (their temporary files
    /// removed). Returns the archives finished; the first error stops nothing else.
    pub async fn release(&self, keep: bool) -> Result<Vec<PathBuf>, ArchiveError> {
        let before = self
            .holds
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(1))
            })
            .unwrap_or(0);
        if before > 1 {
            return Ok(Vec::new());
        }
        let writers: Vec<SharedWriter> = {
            let mut map = self.writers.lock().unwrap_or_else(|p| p.into_inner());
            map.drain().map(|(_, (_, w))| w).collect()
        };
        let mut done = Vec::new();
        let mut first_error = None;
        for shared in writers {
            let Some(writer) = shared.lock().await.take() else {
                continue;
            };
            if !keep || writer.images() == 0 {
                continue;
            }
            match writer.finish().await {
                Ok(p) => done.push(p),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// The writer for the archive at `path`: while the archives are held, the one every copy
    /// into `path` shares (made on first use); otherwise a writer of the caller's own. The
    /// flag says whether it is shared (then the caller must not finish it).
    pub async fn writer(
        &self,
        path: &Path,
        format: ArchiveFormat,
    ) -> Result<(SharedWriter, bool), ArchiveError> {
        if !self.held() {
            let w = ArchiveWriter::create(path, format).await?;
            return Ok((Arc::new(tokio::sync::Mutex::new(Some(w))), false));
        }
        let k = key(path);
        let found = {
            let map = self.writers.lock().unwrap_or_else(|p| p.into_inner());
            map.get(&k).cloned()
        };
        let (existing_format, shared) = match found {
            Some(f) => f,
            None => {
                let made: SharedWriter = Arc::new(tokio::sync::Mutex::new(Some(
                    ArchiveWriter::create(path, format).await?,
                )));
                let mut map = self.writers.lock().unwrap_or_else(|p| p.into_inner());
                // Another copy may have made one meanwhile; the first one stays (this one's
                // temporary file goes when it is dropped).
                map.entry(k).or_insert((format, made)).clone()
            }
        };
        if existing_format != format {
            return Err(ArchiveError::format(
                path,
                format!(
                    "this command already writes the file as an {}; one file cannot also be an {}",
                    existing_format.name(),
                    format.name()
                ),
            ));
        }
        Ok((shared, true))
    }

    /// The archive at `path`, indexed (and decompressed, if it is compressed) once per session
    /// while the file stays the same.
    pub async fn reader(&self, path: &Path) -> Result<TarArchive, ArchiveError> {
        let k = key(path);
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| ArchiveError::io(path, "opening", e))?;
        let id = identity(&meta);
        let mut cache = self.readers.lock().await;
        if let Some(c) = cache.get(&k)
            && c.identity == id
        {
            return Ok(c.archive.clone());
        }
        let archive = TarArchive::open(path).await?;
        cache.insert(
            k,
            CachedReader {
                identity: id,
                archive: archive.clone(),
            },
        );
        Ok(archive)
    }
}

/// One blob at a time into an archive. A copy asks a destination whether it has a blob before
/// it opens the source's stream; an archive destination takes the turn there and gives it back
/// when the blob is written (or found), so the copy opens one source stream at a time instead
/// of several that would wait on the writer with their connections open (and stall).
#[derive(Debug)]
pub struct BlobTurns {
    turn: tokio::sync::Semaphore,
    held: AtomicUsize,
}

impl Default for BlobTurns {
    fn default() -> BlobTurns {
        BlobTurns {
            turn: tokio::sync::Semaphore::new(1),
            held: AtomicUsize::new(0),
        }
    }
}

impl BlobTurns {
    /// Waits for the turn and keeps it until [`BlobTurns::give_back`].
    pub async fn take(&self) {
        if let Ok(permit) = self.turn.acquire().await {
            permit.forget();
            self.held.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Gives the turn back, if it was taken.
    pub fn give_back(&self) {
        if self
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.turn.add_permits(1);
        }
    }
}
