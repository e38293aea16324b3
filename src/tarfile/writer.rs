//! Writing a tar archive as a stream, transactionally: entries go straight into `PATH.tmp-RANDOM`
//! beside PATH (header, content streamed from an async source of known size, padding), and only
//! [`TarWriter::finish`] makes PATH appear: fsync, rename, fsync of the directory. A writer that
//! is dropped or fails removes its temporary file; a killed one leaves a file whose name says
//! what it is and which no live writer holds a lock on, so the next writer for the same PATH
//! removes it ([`remove_leftovers`]).
//!
//! Memory stays flat: a blob passes through in the chunks its stream yields, behind a 1 MiB
//! write buffer. An entry whose stream fails (or turns out longer or shorter than declared) is
//! cut off the file again, so one bad blob does not spoil the archive being written.

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::error::ArchiveError;
use super::header::{self, BLOCK, kind};
use super::index::normalize_name;
use crate::digest::ByteStream;

/// What marks a temporary archive: `NAME.tmp-RANDOM` beside `NAME`.
pub const TEMP_MARKER: &str = ".tmp-";

/// The write buffer in front of the file.
const WRITE_BUFFER: usize = 1024 * 1024;

/// Largest size an octal ustar size field holds (8 GiB - 1); larger sizes go in PAX records.
const MAX_USTAR_SIZE: u64 = 0o777_7777_7777;

/// A tar archive being written to a temporary file beside its final path.
pub struct TarWriter {
    final_path: PathBuf,
    /// Removes the temporary file when dropped, unless persisted.
    temp: Option<tempfile::TempPath>,
    temp_display: PathBuf,
    out: tokio::io::BufWriter<tokio::fs::File>,
    offset: u64,
    names: HashSet<String>,
    failed: bool,
    /// An entry written by [`TarWriter::add_unnamed_stream`] and not yet named or discarded:
    /// where its header starts and its size.
    unnamed: Option<(u64, u64)>,
}

impl std::fmt::Debug for TarWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarWriter")
            .field("final_path", &self.final_path)
            .field("temp", &self.temp_display)
            .field("offset", &self.offset)
            .finish()
    }
}

fn parent_and_name(path: &Path) -> Result<(PathBuf, String), ArchiveError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            ArchiveError::format(path, "the archive path must end in a file name (UTF-8)")
        })?
        .to_string();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name))
}

/// Removes temporary files that killed writers left for `path` (`PATH.tmp-*` that no live
/// writer holds a lock on). Returns what was removed.
pub fn remove_leftovers(path: &Path) -> Result<Vec<PathBuf>, ArchiveError> {
    let (dir, name) = parent_and_name(path)?;
    let prefix = format!("{name}{TEMP_MARKER}");
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => {
            return Err(ArchiveError::io(
                &dir,
                "listing leftover temporary archives",
                e,
            ));
        }
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        if !file_name.to_str().is_some_and(|n| n.starts_with(&prefix)) {
            continue;
        }
        let candidate = entry.path();
        let Ok(f) = std::fs::File::open(&candidate) else {
            continue;
        };
        // A live writer holds an exclusive lock for as long as its file is open.
        if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
            && std::fs::remove_file(&candidate).is_ok()
        {
            removed.push(candidate);
        }
    }
    Ok(removed)
}

impl TarWriter {
    /// Starts an archive that will become `path`; first removes what killed writers for the same
    /// path left behind.
    pub async fn create(path: &Path) -> Result<TarWriter, ArchiveError> {
        let final_path = path.to_path_buf();
        let p = final_path.clone();
        let (file, temp) = tokio::task::spawn_blocking(move || create_temp(&p))
            .await
            .map_err(|e| {
                ArchiveError::io(path, "creating the archive", std::io::Error::other(e))
            })??;
        let temp_display = temp.to_path_buf();
        Ok(TarWriter {
            final_path,
            temp: Some(temp),
            temp_display,
            out: tokio::io::BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::from_std(file)),
            offset: 0,
            names: HashSet::new(),
            failed: false,
            unnamed: None,
        })
    }

    /// The temporary file being written.
    pub fn temp_path(&self) -> &Path {
        &self.temp_display
    }

    /// The path the archive will have once finished.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Whether an entry of this name was written.
    pub fn contains(&self, name: &str) -> bool {
        normalize_name(name).is_ok_and(|n| self.names.contains(&n))
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.offset
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.offset == 0
    }

    fn write_error(&self, entry: &str, problem: impl Into<String>) -> ArchiveError {
        ArchiveError::Write {
            archive: self.temp_display.clone(),
            entry: entry.to_string(),
            problem: problem.into(),
        }
    }

    fn io_error(&self, action: String, e: std::io::Error) -> ArchiveError {
        ArchiveError::io(&self.temp_display, action, e)
    }

    /// Checks a new entry's name; returns it normalised.
    fn claim(&self, name: &str) -> Result<String, ArchiveError> {
        if self.unnamed.is_some() {
            return Err(self.write_error(
                name,
                "the entry before it was neither named nor discarded (a writer bug)",
            ));
        }
        if self.failed {
            return Err(ArchiveError::WriterFailed {
                archive: self.temp_display.clone(),
            });
        }
        let n = normalize_name(name).map_err(|p| self.write_error(name, p))?;
        if n.is_empty() {
            return Err(self.write_error(name, "empty name"));
        }
        if self.names.contains(&n) {
            return Err(self.write_error(name, "an entry of that name was already written"));
        }
        Ok(n)
    }

    async fn write(&mut self, bytes: &[u8], entry: &str) -> Result<(), ArchiveError> {
        self.out
            .write_all(bytes)
            .await
            .map_err(|e| self.io_error(format!("writing entry {entry:?}"), e))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Writes the header(s) of an entry: a PAX header first when the name, link or size does
    /// not fit ustar.
    async fn write_header(
        &mut self,
        name: &str,
        typeflag: u8,
        size: u64,
        link: &str,
    ) -> Result<(), ArchiveError> {
        let split = header::split_ustar_name(name);
        let mut records = Vec::new();
        if split.is_none() {
            records.extend(header::pax_record("path", name));
        }
        if link.len() > 100 {
            records.extend(header::pax_record("linkpath", link));
        }
        if size > MAX_USTAR_SIZE {
            records.extend(header::pax_record("size", &size.to_string()));
        }
        if !records.is_empty() {
            let pax_name: String =
                format!("PaxHeaders.0/{}", name.rsplit('/').next().unwrap_or(name))
                    .chars()
                    .take(100)
                    .collect();
            let h = header::encode("", &pax_name, kind::PAX, records.len() as u64, "");
            self.write(&h, name).await?;
            let pad = header::padded(records.len() as u64) - records.len() as u64;
            records.resize(records.len() + pad as usize, 0);
            self.write(&records, name).await?;
        }
        let (prefix, short) = split.unwrap_or(("", name.get(..100).unwrap_or(name)));
        let short_link = if link.len() > 100 { "" } else { link };
        let h = header::encode(prefix, short, typeflag, size, short_link);
        self.write(&h, name).await
    }

    async fn pad(&mut self, size: u64, entry: &str) -> Result<(), ArchiveError> {
        let pad = header::padded(size) - size;
        if pad > 0 {
            let zeros = [0u8; BLOCK as usize];
            self.write(zeros.get(..pad as usize).unwrap_or_default(), entry)
                .await?;
        }
        Ok(())
    }

    /// Cuts the file back to `start` after a failed entry; if even that fails, the writer is
    /// marked failed.
    async fn rollback(&mut self, start: u64) {
        let ok = async {
            self.out.flush().await?;
            let f = self.out.get_mut();
            f.set_len(start).await?;
            f.seek(std::io::SeekFrom::Start(start)).await?;
            std::io::Result::Ok(())
        }
        .await;
        match ok {
            Ok(()) => self.offset = start,
            Err(e) => {
                tracing::warn!(archive = %self.temp_display.display(), error = %e, "cannot undo a failed archive entry");
                self.failed = true;
            }
        }
    }

    /// Adds a regular file with `data` as its content.
    pub async fn add_bytes(&mut self, name: &str, data: &[u8]) -> Result<(), ArchiveError> {
        let stream: ByteStream = Box::pin(futures::stream::iter(std::iter::once(Ok(
            Bytes::copy_from_slice(data),
        ))));
        self.add_stream(name, data.len() as u64, stream).await
    }

    /// Adds a regular file of `size` bytes whose content is `stream`. If the stream fails or its
    /// length is not `size`, the entry is removed again and the error returned; the writer stays
    /// usable.
    pub async fn add_stream(
        &mut self,
        name: &str,
        size: u64,
        mut stream: ByteStream,
    ) -> Result<(), ArchiveError> {
        let n = self.claim(name)?;
        let start = self.offset;
        let result = async {
            self.write_header(&n, kind::FILE, size, "").await?;
            let mut written = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    self.write_error(&n, format!("reading its content failed: {e}"))
                })?;
                written += chunk.len() as u64;
                if written > size {
                    return Err(self.write_error(
                        &n,
                        format!("its content is longer than the declared {size} bytes"),
                    ));
                }
                self.write(&chunk, &n).await?;
            }
            if written != size {
                return Err(self.write_error(
                    &n,
                    format!("its content ended after {written} of the declared {size} bytes"),
                ));
            }
            self.pad(size, &n).await
        }
        .await;
        self.settle(result, start, n).await
    }

    /// Adds a regular file of `size` bytes read from `reader` (which must give exactly that
    /// many); as [`TarWriter::add_stream`].
    pub async fn add_reader<R: AsyncRead + Unpin + Send + 'static>(
        &mut self,
        name: &str,
        size: u64,
        reader: R,
    ) -> Result<(), ArchiveError> {
        let stream = tokio_util::io::ReaderStream::with_capacity(
            reader.take(size.saturating_add(1)),
            256 * 1024,
        );
        self.add_stream(name, size, Box::pin(stream)).await
    }

    /// Adds a symbolic link to `target` (relative to the link's directory).
    pub async fn add_symlink(&mut self, name: &str, target: &str) -> Result<(), ArchiveError> {
        let n = self.claim(name)?;
        let start = self.offset;
        let result = self.write_header(&n, kind::SYMLINK, 0, target).await;
        self.settle(result, start, n).await
    }

    /// Adds a directory entry (optional in tar; some readers like to see them).
    pub async fn add_directory(&mut self, name: &str) -> Result<(), ArchiveError> {
        let n = self.claim(name)?;
        let start = self.offset;
        let result = self
            .write_header(&format!("{n}/"), kind::DIRECTORY, 0, "")
            .await;
        self.settle(result, start, n).await
    }

    async fn settle(
        &mut self,
        result: Result<(), ArchiveError>,
        start: u64,
        name: String,
    ) -> Result<(), ArchiveError> {
        match result {
            Ok(()) => {
                self.names.insert(name);
                Ok(())
            }
            Err(e) => {
                self.rollback(start).await;
                Err(e)
            }
        }
    }

    /// Adds a regular file whose size and name are known only once `stream` has ended (a layer
    /// decompressed on its way in, to be named by the digest of what came out): a placeholder
    /// header is written first, and [`TarWriter::name_unnamed`] rewrites it in place, or
    /// [`TarWriter::discard_unnamed`] cuts the entry off again. Nothing else can be added in
    /// between. Returns the size. If the stream fails, the entry is removed and the error
    /// returned; the writer stays usable.
    pub async fn add_unnamed_stream(
        &mut self,
        mut stream: ByteStream,
    ) -> Result<u64, ArchiveError> {
        const PLACEHOLDER: &str = "ferry-unnamed-entry";
        let _ = self.claim(PLACEHOLDER)?;
        let start = self.offset;
        let result = async {
            self.write_header(PLACEHOLDER, kind::FILE, 0, "").await?;
            let mut written = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    self.write_error(PLACEHOLDER, format!("reading its content failed: {e}"))
                })?;
                written += chunk.len() as u64;
                self.write(&chunk, PLACEHOLDER).await?;
            }
            self.pad(written, PLACEHOLDER).await?;
            Ok(written)
        }
        .await;
        match result {
            Ok(size) => {
                self.unnamed = Some((start, size));
                Ok(size)
            }
            Err(e) => {
                self.rollback(start).await;
                Err(e)
            }
        }
    }

    /// Gives the entry of [`TarWriter::add_unnamed_stream`] its name: its header is rewritten
    /// with the name and size. The name must fit a ustar header (100 bytes, or a 155-byte
    /// prefix and 100 bytes), as `blobs/sha256/HEX` does. An error cuts the entry off.
    pub async fn name_unnamed(&mut self, name: &str) -> Result<(), ArchiveError> {
        let Some((start, size)) = self.unnamed.take() else {
            return Err(self.write_error(name, "no unnamed entry to name (a writer bug)"));
        };
        let named = async {
            let n = self.claim(name)?;
            let (prefix, short) = header::split_ustar_name(&n).ok_or_else(|| {
                self.write_error(&n, "the name is too long for the entry's header")
            })?;
            let block = header::encode(prefix, short, kind::FILE, size, "");
            let end = self.offset;
            let io = async {
                self.out.flush().await?;
                let f = self.out.get_mut();
                f.seek(std::io::SeekFrom::Start(start)).await?;
                f.write_all(&block).await?;
                f.seek(std::io::SeekFrom::Start(end)).await?;
                std::io::Result::Ok(())
            }
            .await;
            io.map_err(|e| self.io_error(format!("naming entry {n:?}"), e))?;
            Ok(n)
        }
        .await;
        match named {
            Ok(n) => {
                self.names.insert(n);
                Ok(())
            }
            Err(e) => {
                self.rollback(start).await;
                Err(e)
            }
        }
    }

    /// Cuts the entry of [`TarWriter::add_unnamed_stream`] off the file again (its content
    /// was not wanted: a copy of an entry already written, or content that failed a check).
    pub async fn discard_unnamed(&mut self) {
        if let Some((start, _)) = self.unnamed.take() {
            self.rollback(start).await;
        }
    }

    /// Ends the archive (two zero blocks), flushes it to disk and renames it to its final path,
    /// replacing any file there; then syncs the directory so the rename survives a crash.
    pub async fn finish(mut self) -> Result<PathBuf, ArchiveError> {
        self.discard_unnamed().await;
        if self.failed {
            return Err(ArchiveError::WriterFailed {
                archive: self.temp_display.clone(),
            });
        }
        self.write(&[0u8; 2 * BLOCK as usize], "end of archive")
            .await?;
        self.out
            .flush()
            .await
            .map_err(|e| self.io_error("writing the archive".into(), e))?;
        self.out
            .get_ref()
            .sync_all()
            .await
            .map_err(|e| self.io_error("syncing the archive to disk".into(), e))?;
        let Some(temp) = self.temp.take() else {
            return Err(ArchiveError::WriterFailed {
                archive: self.temp_display.clone(),
            });
        };
        let final_path = self.final_path.clone();
        let display = self.temp_display.clone();
        tokio::task::spawn_blocking(move || {
            temp.persist(&final_path).map_err(|e| {
                ArchiveError::io(
                    &display,
                    format!("renaming it to {}", final_path.display()),
                    e.error,
                )
            })?;
            let (dir, _) = parent_and_name(&final_path)?;
            std::fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| ArchiveError::io(&dir, "syncing the directory", e))?;
            Ok(final_path)
        })
        .await
        .map_err(|e| {
            ArchiveError::io(
                &self.temp_display,
                "finishing the archive",
                std::io::Error::other(e),
            )
        })?
    }
}

/// Creates `PATH.tmp-RANDOM`, locked, and removes killed writers' leftovers first.
fn create_temp(path: &Path) -> Result<(std::fs::File, tempfile::TempPath), ArchiveError> {
    if let Err(e) = remove_leftovers(path) {
        tracing::warn!(error = %e, "cannot remove leftover temporary archives");
    }
    let (dir, name) = parent_and_name(path)?;
    for _ in 0..4 {
        let named = tempfile::Builder::new()
            .prefix(&format!("{name}{TEMP_MARKER}"))
            .rand_bytes(12)
            .tempfile_in(&dir)
            .map_err(|e| {
                ArchiveError::io(
                    path,
                    format!("creating a temporary file in {}", dir.display()),
                    e,
                )
            })?;
        let (file, temp) = named.into_parts();
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| ArchiveError::io(&temp, "locking", e.into()))?;
        // Another writer's leftover sweep may have removed the file between its creation and
        // the lock; then the name no longer leads to this file and a new one is needed.
        let same = match (file.metadata(), std::fs::metadata(&temp)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if same {
            file.set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(|e| ArchiveError::io(&temp, "setting permissions", e))?;
            return Ok((file, temp));
        }
        let _ = temp.keep(); // nothing to remove: it is already gone
    }
    Err(ArchiveError::io(
        path,
        "creating a temporary file",
        std::io::Error::other("it kept disappearing (another process removes files beside it)"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tarfile::TarArchive;

    #[tokio::test]
    async fn writes_reads_back_and_renames_only_on_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.tar");
        let mut w = TarWriter::create(&path).await.unwrap();
        assert!(w.temp_path().to_str().unwrap().contains("out.tar.tmp-"));
        w.add_bytes("oci-layout", b"{}").await.unwrap();
        let long = format!("{}/{}", "d".repeat(180), "f".repeat(120));
        w.add_bytes(&long, b"long").await.unwrap();
        let data = vec![5u8; 3 * 1024 * 1024 + 7];
        let stream: ByteStream = Box::pin(futures::stream::iter(
            data.chunks(100_000)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        ));
        w.add_stream("blobs/sha256/big", data.len() as u64, stream)
            .await
            .unwrap();
        w.add_symlink("x/layer.tar", "../blobs/sha256/big")
            .await
            .unwrap();
        assert!(
            w.add_bytes("oci-layout", b"again").await.is_err(),
            "duplicate"
        );
        assert!(w.add_bytes("../x", b"").await.is_err(), "unsafe");
        assert!(!path.exists(), "nothing at PATH before finish");
        let temp = w.temp_path().to_path_buf();
        w.finish().await.unwrap();
        assert!(!temp.exists());
        let a = TarArchive::open(&path).await.unwrap();
        assert_eq!(a.read_small(&long, 100, "t").await.unwrap(), b"long");
        assert_eq!(
            a.read_small("x/layer.tar", 1 << 30, "t").await.unwrap(),
            data
        );
        // GNU tar agrees with the format.
        let out = std::process::Command::new("tar")
            .arg("-tf")
            .arg(&path)
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(listing.contains(&long), "{listing}");
    }

    #[tokio::test]
    async fn failed_entry_is_cut_off_and_drop_removes_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.tar");
        let mut w = TarWriter::create(&path).await.unwrap();
        w.add_bytes("a", b"aaa").await.unwrap();
        let len = w.len();
        let short: ByteStream =
            Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(b"12"))]));
        let e = w.add_stream("b", 10, short).await.unwrap_err();
        assert!(e.to_string().contains("ended after 2"), "{e}");
        assert_eq!(w.len(), len);
        let bad: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"12")),
            Err(std::io::Error::other("network gone")),
        ]));
        assert!(w.add_stream("b", 4, bad).await.is_err());
        w.add_bytes("b", b"bbbb").await.unwrap();
        let temp = w.temp_path().to_path_buf();
        drop(w);
        assert!(!temp.exists(), "dropped writer removes its temp file");
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn an_unnamed_entry_is_named_in_place_or_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.tar");
        let mut w = TarWriter::create(&path).await.unwrap();
        let stream = |b: &'static [u8]| -> ByteStream {
            Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(b))]))
        };
        assert_eq!(w.add_unnamed_stream(stream(b"first")).await.unwrap(), 5);
        assert!(
            w.add_bytes("x", b"x").await.is_err(),
            "the entry is not named yet"
        );
        w.name_unnamed(&format!("blobs/sha256/{}", "a".repeat(64)))
            .await
            .unwrap();
        let len = w.len();
        w.add_unnamed_stream(stream(b"discarded")).await.unwrap();
        w.discard_unnamed().await;
        assert_eq!(w.len(), len);
        w.add_unnamed_stream(stream(b"twice")).await.unwrap();
        assert!(
            w.name_unnamed(&format!("blobs/sha256/{}", "a".repeat(64)))
                .await
                .is_err(),
            "a name already written"
        );
        assert_eq!(w.len(), len, "and the entry is cut off");
        let bad: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"12")),
            Err(std::io::Error::other("gone")),
        ]));
        assert!(w.add_unnamed_stream(bad).await.is_err());
        assert_eq!(w.len(), len);
        w.add_bytes("after", b"ok").await.unwrap();
        w.finish().await.unwrap();
        let a = TarArchive::open(&path).await.unwrap();
        let name = format!("blobs/sha256/{}", "a".repeat(64));
        assert_eq!(a.read_small(&name, 100, "t").await.unwrap(), b"first");
        assert_eq!(a.read_small("after", 100, "t").await.unwrap(), b"ok");
        assert_eq!(a.index().entries().len(), 2);
    }

    #[tokio::test]
    async fn leftovers_of_killed_writers_are_removed_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img.tar");
        let stale = dir.path().join("img.tar.tmp-deadbeef");
        std::fs::write(&stale, b"half an archive").unwrap();
        let other = dir.path().join("other.tar.tmp-1234");
        std::fs::write(&other, b"x").unwrap();
        let live = TarWriter::create(&path).await.unwrap();
        assert!(!stale.exists(), "a killed writer's file is removed");
        assert!(other.exists(), "another archive's temp file is not ours");
        let removed = remove_leftovers(&path).unwrap();
        assert!(
            removed.is_empty(),
            "the live writer's file is locked: {removed:?}"
        );
        assert!(live.temp_path().exists());
    }
}
