//! An open tar archive: the file (or, for a compressed archive, its decompressed temporary copy),
//! its index, and readers over any entry's exact byte range.
//!
//! Entries are read with positioned reads (`pread`) on one shared file handle, so any number of
//! blobs can stream at once with no shared file offset and no reopening by path (which would not
//! work for the unlinked temporary copy of a compressed archive). Each read moves a 1 MiB chunk
//! on tokio's blocking pool, as `tokio::fs::File` does, so reading a blob from an archive costs
//! what reading it from a directory costs.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use tokio_util::io::StreamReader;

use super::compressed::{self, Compression, Sniffed};
use super::error::ArchiveError;
use super::index::{Entry, TarIndex};
use crate::digest::ByteStream;

/// Where compressed archives are decompressed unless [`OpenOptions::temp_dir`] says otherwise.
pub const DEFAULT_TEMP_DIR: &str = "/var/tmp";

/// How much one positioned read moves.
const CHUNK: u64 = 1024 * 1024;

/// Options for [`TarArchive::open_with`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Where a compressed archive is decompressed to. It needs room for the whole uncompressed
    /// archive, so the default is containers/image's directory for big temporary files,
    /// [`DEFAULT_TEMP_DIR`] (`/tmp` is often a RAM-backed tmpfs); the library reads no
    /// environment, so a caller that honours `TMPDIR` passes it here.
    pub temp_dir: Option<PathBuf>,
}

impl OpenOptions {
    /// Decompress compressed archives into `dir`.
    pub fn temp_dir(mut self, dir: impl Into<PathBuf>) -> OpenOptions {
        self.temp_dir = Some(dir.into());
        self
    }
}

struct Inner {
    path: PathBuf,
    file: std::fs::File,
    index: TarIndex,
    compression: Option<Compression>,
}

/// An indexed tar archive. Cloning is cheap (the file and index are shared); streams opened from
/// it stay valid after every clone is dropped.
#[derive(Clone)]
pub struct TarArchive {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TarArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarArchive")
            .field("path", &self.inner.path)
            .field("entries", &self.inner.index.entries().len())
            .field("compression", &self.inner.compression)
            .finish()
    }
}

/// An async reader over one entry's content.
pub type EntryReader = StreamReader<ByteStream, Bytes>;

fn join_error(archive: &Path, e: tokio::task::JoinError) -> ArchiveError {
    ArchiveError::io(archive, "reading the archive", std::io::Error::other(e))
}

impl TarArchive {
    /// Opens and indexes the archive at `path`; a compressed archive is first decompressed to a
    /// temporary file (see the `compressed` module for what that costs).
    pub async fn open(path: &Path) -> Result<TarArchive, ArchiveError> {
        TarArchive::open_with(path, &OpenOptions::default()).await
    }

    /// [`TarArchive::open`] with options.
    pub async fn open_with(path: &Path, options: &OpenOptions) -> Result<TarArchive, ArchiveError> {
        let path = path.to_path_buf();
        let temp_dir = options
            .temp_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_TEMP_DIR));
        let p = path.clone();
        let inner = tokio::task::spawn_blocking(move || open_blocking(p, &temp_dir))
            .await
            .map_err(|e| join_error(&path, e))??;
        Ok(TarArchive {
            inner: Arc::new(inner),
        })
    }

    /// The archive's path, as given to `open`.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How the archive was compressed as a whole, if it was.
    pub fn compression(&self) -> Option<Compression> {
        self.inner.compression
    }

    /// The index of every entry.
    pub fn index(&self) -> &TarIndex {
        &self.inner.index
    }

    /// The regular file `name` designates, links inside the archive followed.
    pub fn entry(&self, name: &str) -> Result<&Entry, ArchiveError> {
        self.inner.index.resolve(&self.inner.path, name)
    }

    /// Whether `name` designates a regular file.
    pub fn contains(&self, name: &str) -> bool {
        self.entry(name).is_ok()
    }

    /// A stream of the content of `name` (links followed), in 1 MiB chunks.
    pub fn stream(&self, name: &str) -> Result<ByteStream, ArchiveError> {
        let entry = self.entry(name)?;
        Ok(self.stream_entry(entry))
    }

    /// A stream of `entry`'s content. An archive that shrank since it was indexed gives an IO
    /// error naming the archive and the entry.
    pub fn stream_entry(&self, entry: &Entry) -> ByteStream {
        struct State {
            inner: Arc<Inner>,
            name: String,
            pos: u64,
            end: u64,
        }
        let state = State {
            inner: self.inner.clone(),
            name: entry.name.clone(),
            pos: entry.data_offset,
            end: entry.data_offset + entry.size,
        };
        Box::pin(futures::stream::try_unfold(state, |mut st| async move {
            if st.pos >= st.end {
                return Ok(None);
            }
            let n = (st.end - st.pos).min(CHUNK);
            let inner = st.inner.clone();
            let pos = st.pos;
            let chunk = tokio::task::spawn_blocking(move || read_chunk(&inner.file, pos, n))
                .await
                .map_err(std::io::Error::other)?
                .map_err(|e| {
                    let what = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        "the archive ended inside the entry (it was truncated after it was opened)"
                            .to_string()
                    } else {
                        e.to_string()
                    };
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "{}: entry {:?}: reading at byte {pos}: {what}",
                            st.inner.path.display(),
                            st.name
                        ),
                    )
                })?;
            st.pos += n;
            Ok(Some((Bytes::from(chunk), st)))
        }))
    }

    /// An async reader of the content of `name` (links followed).
    pub fn reader(&self, name: &str) -> Result<EntryReader, ArchiveError> {
        Ok(StreamReader::new(self.stream(name)?))
    }

    /// A blocking reader of `entry`'s content, for decoders that run on the blocking pool.
    pub fn blocking_reader(&self, entry: &Entry) -> EntryRead {
        EntryRead {
            inner: self.inner.clone(),
            pos: entry.data_offset,
            end: entry.data_offset + entry.size,
        }
    }

    /// Whether `entry`'s content is compressed (by its magic bytes).
    pub async fn sniff_entry(&self, entry: &Entry) -> Result<Sniffed, ArchiveError> {
        let inner = self.inner.clone();
        let (offset, len) = (
            entry.data_offset,
            entry.size.min(compressed::SNIFF_LEN as u64),
        );
        let name = entry.name.clone();
        tokio::task::spawn_blocking(move || {
            // len <= SNIFF_LEN, so the cast cannot truncate.
            let mut magic = vec![0u8; len as usize];
            inner
                .file
                .read_exact_at(&mut magic, offset)
                .map(|()| compressed::sniff(&magic))
                .map_err(|e| ArchiveError::io(&inner.path, format!("reading entry {name:?}"), e))
        })
        .await
        .map_err(|e| join_error(&self.inner.path, e))?
    }

    /// A stream of `entry`'s content decompressed with `c`: the decoder runs on the blocking
    /// pool and hands over 256 KiB chunks through a channel of four, so memory stays flat.
    pub fn decompressed_stream(&self, entry: &Entry, c: Compression) -> ByteStream {
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
        let reader = self.blocking_reader(entry);
        let label = format!(
            "{}: entry {:?}: decompressing ({})",
            self.inner.path.display(),
            entry.name,
            c.name()
        );
        tokio::task::spawn_blocking(move || {
            let fail = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{label}: {e}"));
            let mut decoder = match compressed::decoder(c, reader) {
                Ok(d) => d,
                Err(e) => {
                    let _ = tx.blocking_send(Err(fail(e)));
                    return;
                }
            };
            loop {
                let mut buf = vec![0u8; 256 * 1024];
                match std::io::Read::read(&mut decoder, &mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                            return; // the reader went away
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(fail(e)));
                        return;
                    }
                }
            }
        });
        Box::pin(tokio_stream_from(rx))
    }

    /// The whole content of a small entry (a JSON file), refused when larger than `limit`.
    pub async fn read_small(
        &self,
        name: &str,
        limit: u64,
        what: &'static str,
    ) -> Result<Vec<u8>, ArchiveError> {
        let entry = self.entry(name)?;
        if entry.size > limit {
            return Err(ArchiveError::TooLarge {
                archive: self.inner.path.clone(),
                entry: entry.name.clone(),
                size: entry.size,
                limit,
                what,
            });
        }
        let stream = self.stream_entry(entry);
        let chunks: Vec<Bytes> = stream.try_collect().await.map_err(|e| {
            ArchiveError::io(&self.inner.path, format!("reading entry {name:?}"), e)
        })?;
        Ok(chunks.concat())
    }
}

/// Reads `n` (at most [`CHUNK`]) bytes at `pos` into a new buffer, without zeroing it first
/// (pread into the vector's spare capacity): at disk-cache speed, zeroing and faulting in a
/// fresh megabyte per chunk is a measurable part of the cost.
fn read_chunk(file: &std::fs::File, pos: u64, n: u64) -> std::io::Result<Vec<u8>> {
    // n <= CHUNK (1 MiB), so the cast cannot truncate.
    let n = n as usize;
    let mut buf = Vec::with_capacity(n);
    while buf.len() < n {
        let at = pos + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(buf)
}

fn open_blocking(path: PathBuf, temp_dir: &Path) -> Result<Inner, ArchiveError> {
    let file = std::fs::File::open(&path).map_err(|e| ArchiveError::io(&path, "opening", e))?;
    let mut magic = [0u8; compressed::SNIFF_LEN];
    let mut got = 0;
    while got < magic.len() {
        match file.read_at(magic.get_mut(got..).unwrap_or_default(), got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ArchiveError::io(&path, "reading", e)),
        }
    }
    let (file, compression) = match compressed::sniff(magic.get(..got).unwrap_or_default()) {
        Sniffed::Plain => (file, None),
        Sniffed::Compressed(c) => (
            compressed::decompress_to_temp(file, c, &path, temp_dir)?,
            Some(c),
        ),
        Sniffed::Bzip2 => {
            return Err(ArchiveError::UnsupportedCompression {
                archive: path,
                format: "bzip2",
                hint: "bunzip2 -k FILE",
            });
        }
    };
    let index = TarIndex::build(&file, &path)?;
    Ok(Inner {
        path,
        file,
        index,
        compression,
    })
}

/// A blocking [`std::io::Read`] over one entry's content (positioned reads on the shared file).
pub struct EntryRead {
    inner: Arc<Inner>,
    pos: u64,
    end: u64,
}

impl std::io::Read for EntryRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self
            .inner
            .file
            .read_at(buf.get_mut(..want).unwrap_or_default(), self.pos)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: the archive ended inside an entry (it was truncated after it was opened)",
                    self.inner.path.display()
                ),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// A stream over a channel's receiver (tokio-stream's wrapper, without the dependency).
fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}
