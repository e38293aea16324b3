//! What the two archive destinations (`oci-archive:`, `docker-archive:`) share: the archive's
//! writer (their own, or a sync's shared one), taken in turns one blob at a time, and finished
//! at commit unless a sync finishes it; and how a blob stream's own failure is told from the
//! archive's.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures::StreamExt;

use crate::digest::ByteStream;
use crate::session::Session;
use crate::tarfile::{ArchiveError, ArchiveFormat, ArchiveWriter, BlobTurns, SharedWriter};
use crate::transport::{Result, TransportError};

/// Picks one format's writer out of an [`ArchiveWriter`].
pub(crate) type Pick<W> = fn(&mut ArchiveWriter) -> Option<&mut W>;

/// The archive a destination writes into.
pub(crate) struct ArchiveSlot {
    path: PathBuf,
    writer: SharedWriter,
    /// Whether a sync shares the writer (and finishes it), or this copy owns it.
    shared: bool,
    turns: BlobTurns,
}

impl ArchiveSlot {
    /// The writer for `path` in `session` (a sync's shared one while it holds the archives).
    pub(crate) async fn open(
        session: &Session,
        path: &Path,
        format: ArchiveFormat,
    ) -> Result<ArchiveSlot> {
        let (writer, shared) = session.archives.writer(path, format).await?;
        Ok(ArchiveSlot {
            path: path.to_path_buf(),
            writer,
            shared,
            turns: BlobTurns::default(),
        })
    }

    /// The archive's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn gone(&self) -> TransportError {
        TransportError::Unsupported(format!(
            "{}: the archive was finished or abandoned already",
            self.path.display()
        ))
    }

    /// Runs `f` on the writer.
    pub(crate) async fn with<W, T>(
        &self,
        pick: Pick<W>,
        f: impl AsyncFnOnce(&mut W) -> Result<T>,
    ) -> Result<T> {
        let mut guard = self.writer.lock().await;
        match guard.as_mut().and_then(pick) {
            Some(w) => f(w).await,
            None => Err(self.gone()),
        }
    }

    /// Whether the archive has a blob (`has` says), taking the turn to write it when it does
    /// not: the copy opens the source's stream next and hands it to [`ArchiveSlot::put`].
    pub(crate) async fn reuse<W>(
        &self,
        pick: Pick<W>,
        has: impl FnOnce(&W) -> bool,
    ) -> Result<bool> {
        self.turns.take().await;
        let have = self.with(pick, async |w| Ok(has(w))).await;
        if !matches!(have, Ok(false)) {
            self.turns.give_back();
        }
        have
    }

    /// Writes a blob with `f` and gives the turn back.
    pub(crate) async fn put<W>(
        &self,
        pick: Pick<W>,
        f: impl AsyncFnOnce(&mut W) -> Result<()>,
    ) -> Result<()> {
        let written = self.with(pick, f).await;
        self.turns.give_back();
        written
    }

    /// Lists the image with `f`, then finishes the archive when this copy owns it (the file
    /// appears at its path); a sync finishes a shared one at its end.
    pub(crate) async fn commit<W>(
        &self,
        pick: Pick<W>,
        f: impl AsyncFnOnce(&mut W) -> Result<()>,
    ) -> Result<()> {
        let mut guard = self.writer.lock().await;
        match guard.as_mut().and_then(pick) {
            Some(w) => f(w).await?,
            None => return Err(self.gone()),
        }
        if !self.shared
            && let Some(writer) = guard.take()
        {
            writer.finish().await?;
        }
        Ok(())
    }
}

/// The first error of a blob's stream, kept when the stream is handed to an archive writer
/// (whose own error only says that reading failed).
pub(crate) type StreamFailure = std::sync::Arc<Mutex<Option<std::io::Error>>>;

/// `stream`, with its first error kept in the [`StreamFailure`] as well as passed on.
pub(crate) fn watched(stream: ByteStream) -> (ByteStream, StreamFailure) {
    let failure: StreamFailure = StreamFailure::default();
    let kept = failure.clone();
    let stream = stream.map(move |item| {
        item.map_err(|e| {
            let passed = std::io::Error::new(e.kind(), e.to_string());
            let mut slot = kept.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(e);
            }
            passed
        })
    });
    (Box::pin(stream), failure)
}

/// A blob that could not be written: when its stream failed (a broken source, or bytes that
/// failed verification), the stream's own error, which is the source's; otherwise the
/// archive's.
pub(crate) fn blob_error(e: ArchiveError, failure: &StreamFailure) -> TransportError {
    match failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
        Some(stream_error) => TransportError::source_stream(stream_error),
        None => TransportError::from(e),
    }
}
