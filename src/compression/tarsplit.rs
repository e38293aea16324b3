//! tar-split: the metadata that lets containers/storage give back a layer's exact original tar
//! from the files it unpacked (github.com/vbatts/tar-split, `tar/storage`). It is a stream of
//! JSON lines, one per entry: a *segment* (type 2) holds raw tar bytes that are not file contents
//! (headers, PAX data, padding, the end blocks), base64-encoded; a *file* (type 1) names an
//! entry and the size and CRC-64 (ISO polynomial, Go's `hash/crc64`) of its contents, which are
//! read back from the unpacked file. Segments and files alternate in stream order, so writing
//! the segments and the named files' contents in order reproduces the tar byte for byte.
//!
//! Two directions live here: [`TarSplitWriter`] (and the pass-through [`TarSplitReader`]) makes
//! tar-split while a tar passes, as zstd:chunked and a containers-storage destination need;
//! [`assemble`] makes the tar again from a tar-split and a [`FileSource`] such as a
//! [`DirectoryFiles`], as a containers-storage source needs.

use std::collections::HashSet;
use std::io::{self, BufRead, Read, Write};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::gojson;
use super::tar::{TarEntry, TarError, TarProblem, TarScanner, TarSink};

/// Segments after the end of the archive are cut at this size, as tar-split does, so that
/// trailing data never makes one huge JSON line.
const TRAILING_SEGMENT: usize = 1 << 20;
/// The longest tar-split line [`assemble`] reads: a segment is at most a few headers and
/// 1 MiB of PAX or trailing data, base64-encoded.
const MAX_LINE: u64 = 16 << 20;

/// Why a tar-split could not be made or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TarSplitError {
    /// The tar stream is malformed.
    #[error("tar-split: {0}")]
    Tar(#[from] TarError),
    /// Reading the tar or writing the tar-split or the tar failed.
    #[error("tar-split: {what}: {source}")]
    Io {
        /// What was being read or written.
        what: &'static str,
        /// The IO error.
        source: io::Error,
    },
    /// A tar-split line is not a tar-split entry.
    #[error("tar-split line {line}: {reason}; the tar-split data is corrupt")]
    Malformed {
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A file named by the tar-split could not be opened or read.
    #[error("tar-split: file {name:?}: {source}")]
    File {
        /// The entry name.
        name: String,
        /// The IO error.
        source: io::Error,
    },
    /// A file's contents are not what the tar-split recorded: the unpacked layer was changed.
    #[error(
        "tar-split: file {name:?} does not match the layer it was unpacked from ({reason}); the unpacked files were modified, so the original tar cannot be rebuilt"
    )]
    Mismatch {
        /// The entry name.
        name: String,
        /// Size or checksum, and the values.
        reason: String,
    },
}

/// Go's `crc64.MakeTable(crc64.ISO)`, the checksum tar-split records for each file; computed
/// eight bytes at a time (slicing-by-8, as Go does), since every byte of every file passes here.
pub(crate) struct Crc64 {
    tables: Box<[[u64; 256]; 8]>,
    crc: u64,
}

impl Crc64 {
    pub(crate) fn new() -> Crc64 {
        const POLY: u64 = 0xD800_0000_0000_0000;
        let mut tables = Box::new([[0u64; 256]; 8]);
        let mut first = [0u64; 256];
        for (i, slot) in first.iter_mut().enumerate() {
            let mut crc = i as u64;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ POLY
                } else {
                    crc >> 1
                };
            }
            *slot = crc;
        }
        let mut prev = first;
        for table in tables.iter_mut() {
            *table = prev;
            for (i, slot) in prev.iter_mut().enumerate() {
                let t = table.get(i).copied().unwrap_or(0);
                *slot = (t >> 8) ^ at(&first, t);
            }
        }
        Crc64 { tables, crc: 0 }
    }

    pub(crate) fn reset(&mut self) {
        self.crc = 0;
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        let [t0, t1, t2, t3, t4, t5, t6, t7] = &*self.tables;
        let mut crc = !self.crc;
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            crc ^= u64::from_le_bytes(b);
            crc = at(t7, crc)
                ^ at(t6, crc >> 8)
                ^ at(t5, crc >> 16)
                ^ at(t4, crc >> 24)
                ^ at(t3, crc >> 32)
                ^ at(t2, crc >> 40)
                ^ at(t1, crc >> 48)
                ^ at(t0, crc >> 56);
        }
        for &b in words.remainder() {
            crc = at(t0, crc ^ u64::from(b)) ^ (crc >> 8);
        }
        self.crc = !crc;
    }

    /// The checksum as Go's `Sum` appends it: 8 bytes, big-endian.
    pub(crate) fn sum(&self) -> [u8; 8] {
        self.crc.to_be_bytes()
    }
}

/// `table[i & 0xff]`: the mask keeps the index inside the table.
#[inline(always)]
fn at(table: &[u64; 256], i: u64) -> u64 {
    table.get((i & 0xff) as usize).copied().unwrap_or(0)
}

/// Go's `filepath.Clean`, used (as tar-split does) to refuse two entries for one path.
fn clean(name: &[u8]) -> Vec<u8> {
    let rooted = name.first() == Some(&b'/');
    let mut parts: Vec<&[u8]> = Vec::new();
    for comp in name.split(|&c| c == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if parts.last().is_some_and(|p| *p != b"..") {
                    parts.pop();
                } else if !rooted {
                    parts.push(comp);
                }
            }
            _ => parts.push(comp),
        }
    }
    let mut out = Vec::new();
    if rooted {
        out.push(b'/');
    }
    out.extend_from_slice(&parts.join(&b'/'));
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// Makes tar-split JSON lines from a tar stream's parts; the [`TarSink`] that
/// [`TarSplitReader`] and the zstd:chunked writer feed.
pub(crate) struct TarSplitWriter<W: Write> {
    out: W,
    position: u64,
    pending: Vec<u8>,
    after_end: bool,
    crc: Crc64,
    current: Option<(Vec<u8>, i64)>,
    seen: HashSet<Vec<u8>>,
    line: Vec<u8>,
    written: u64,
    entries: u64,
}

impl<W: Write> TarSplitWriter<W> {
    pub(crate) fn new(out: W) -> TarSplitWriter<W> {
        TarSplitWriter {
            out,
            position: 0,
            pending: Vec::new(),
            after_end: false,
            crc: Crc64::new(),
            current: None,
            seen: HashSet::new(),
            line: Vec::new(),
            written: 0,
            entries: 0,
        }
    }

    fn emit(&mut self) -> Result<(), TarProblem> {
        self.line.extend_from_slice(b"}\n");
        self.out
            .write_all(&self.line)
            .map_err(|e| TarProblem::Sink(format!("writing tar-split: {e}")))?;
        self.written += self.line.len() as u64;
        self.line.clear();
        self.position += 1;
        Ok(())
    }

    fn segment(&mut self, bytes_from_pending: usize) -> Result<(), TarProblem> {
        if bytes_from_pending == 0 {
            return Ok(());
        }
        let payload: Vec<u8> = self.pending.drain(..bytes_from_pending).collect();
        self.line.extend_from_slice(br#"{"type":2,"payload":""#);
        self.line.extend_from_slice(B64.encode(&payload).as_bytes());
        self.line
            .extend_from_slice(format!(r#"","position":{}"#, self.position).as_bytes());
        self.emit()
    }

    fn flush_pending(&mut self) -> Result<(), TarProblem> {
        self.segment(self.pending.len())
    }

    /// Flushes the last segment; returns the sink and the number of tar-split bytes written.
    pub(crate) fn finish(mut self) -> Result<(W, u64), TarProblem> {
        self.flush_pending()?;
        Ok((self.out, self.written))
    }

    /// Entries (tar headers) seen.
    pub(crate) fn entries(&self) -> u64 {
        self.entries
    }
}

impl<W: Write> TarSink for TarSplitWriter<W> {
    fn raw(&mut self, bytes: &[u8]) -> Result<(), TarProblem> {
        self.pending.extend_from_slice(bytes);
        if self.after_end {
            while self.pending.len() >= TRAILING_SEGMENT {
                self.segment(TRAILING_SEGMENT)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, entry: &TarEntry) -> Result<(), TarProblem> {
        self.flush_pending()?;
        if !self.seen.insert(clean(&entry.name)) {
            return Err(TarProblem::DuplicatePath);
        }
        self.crc.reset();
        self.current = Some((entry.name.clone(), entry.size));
        self.entries += 1;
        Ok(())
    }

    fn payload(&mut self, bytes: &[u8]) -> Result<(), TarProblem> {
        self.crc.update(bytes);
        Ok(())
    }

    fn entry_end(&mut self) -> Result<(), TarProblem> {
        let Some((name, size)) = self.current.take() else {
            return Ok(());
        };
        self.line.extend_from_slice(br#"{"type":1"#);
        if !name.is_empty() {
            if std::str::from_utf8(&name).is_ok() {
                self.line.extend_from_slice(br#","name":"#);
                gojson::string(&mut self.line, &name);
            } else {
                self.line.extend_from_slice(br#","name_raw":""#);
                self.line.extend_from_slice(B64.encode(&name).as_bytes());
                self.line.push(b'"');
            }
        }
        if size != 0 {
            self.line
                .extend_from_slice(format!(r#","size":{size}"#).as_bytes());
        }
        if size > 0 {
            self.line.extend_from_slice(br#","payload":""#);
            self.line
                .extend_from_slice(B64.encode(self.crc.sum()).as_bytes());
            self.line.push(b'"');
        } else {
            self.line.extend_from_slice(br#","payload":null"#);
        }
        self.line
            .extend_from_slice(format!(r#","position":{}"#, self.position).as_bytes());
        self.emit()
    }

    fn end_of_archive(&mut self) -> Result<(), TarProblem> {
        self.flush_pending()?;
        self.after_end = true;
        Ok(())
    }
}

/// A reader that passes a tar stream through unchanged while writing its tar-split to `W`:
/// read it to EOF, then call [`TarSplitReader::finish`].
pub struct TarSplitReader<R: Read, W: Write> {
    inner: R,
    scanner: TarScanner,
    sink: TarSplitWriter<W>,
    ended: bool,
}

impl<R: Read, W: Write> TarSplitReader<R, W> {
    /// Wraps the tar stream `inner`; the tar-split goes to `tar_split`.
    pub fn new(inner: R, tar_split: W) -> TarSplitReader<R, W> {
        TarSplitReader {
            inner,
            scanner: TarScanner::new(),
            sink: TarSplitWriter::new(tar_split),
            ended: false,
        }
    }

    /// Completes the tar-split after the tar was read to its end; returns the tar-split sink
    /// and a summary. An error if the tar was not read to its end.
    pub fn finish(self) -> Result<(W, TarSplitSummary), TarSplitError> {
        if !self.ended {
            return Err(TarSplitError::Io {
                what: "finishing before the tar stream was read to its end",
                source: io::Error::from(io::ErrorKind::UnexpectedEof),
            });
        }
        let tar_size = self.scanner.offset();
        let entries = self.sink.entries();
        let (w, size) = self.sink.finish().map_err(|what| TarError {
            offset: tar_size,
            entry: None,
            what,
        })?;
        Ok((
            w,
            TarSplitSummary {
                tar_size,
                tar_split_size: size,
                entries,
            },
        ))
    }
}

impl<R: Read, W: Write> Read for TarSplitReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        let data = buf.get(..n).unwrap_or_default();
        let r = if n == 0 {
            self.ended = true;
            self.scanner.finish(&mut self.sink)
        } else {
            self.scanner.feed(data, &mut self.sink)
        };
        r.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(n)
    }
}

/// What [`tar_split`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarSplitSummary {
    /// Bytes of tar read.
    pub tar_size: u64,
    /// Bytes of tar-split written (uncompressed JSON lines).
    pub tar_split_size: u64,
    /// Tar entries (headers).
    pub entries: u64,
}

/// Reads a whole tar stream and writes its tar-split to `out`.
pub fn tar_split(tar: impl Read, out: impl Write) -> Result<TarSplitSummary, TarSplitError> {
    let mut r = TarSplitReader::new(tar, out);
    io::copy(&mut r, &mut io::sink()).map_err(|source| match source.downcast::<TarError>() {
        Ok(t) => TarSplitError::Tar(t),
        Err(source) => TarSplitError::Io {
            what: "reading the tar stream",
            source,
        },
    })?;
    let (_, summary) = r.finish()?;
    Ok(summary)
}

/// Where [`assemble`] finds the contents of the files a tar-split names.
pub trait FileSource {
    /// Opens the file the tar entry `name` was unpacked to.
    fn open(&mut self, name: &[u8]) -> io::Result<Box<dyn Read + '_>>;
}

/// A [`FileSource`] over a directory holding an unpacked layer. Names are resolved inside the
/// directory one component at a time without following any symlink and refusing `..`, so a
/// hostile tar-split cannot make it read a file outside the directory.
pub struct DirectoryFiles {
    root: std::os::fd::OwnedFd,
}

impl DirectoryFiles {
    /// Opens `root`.
    pub fn open(root: &Path) -> io::Result<DirectoryFiles> {
        use rustix::fs::{Mode, OFlags};
        let root = rustix::fs::open(
            root,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(DirectoryFiles { root })
    }
}

impl FileSource for DirectoryFiles {
    fn open(&mut self, name: &[u8]) -> io::Result<Box<dyn Read + '_>> {
        use rustix::fs::{FileType, Mode, OFlags};
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt as _;

        let comps: Vec<&[u8]> = name
            .split(|&c| c == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        if comps.iter().any(|c| *c == b"..") {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the name has a `..` component, which could leave the layer directory",
            ));
        }
        let Some((last, dirs)) = comps.split_last() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the name is empty",
            ));
        };
        let mut dir: Option<std::os::fd::OwnedFd> = None;
        for comp in dirs {
            let at = dir.as_ref().unwrap_or(&self.root);
            let next = rustix::fs::openat(
                at,
                OsStr::from_bytes(comp),
                OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            dir = Some(next);
        }
        let at = dir.as_ref().unwrap_or(&self.root);
        // NONBLOCK: opening a FIFO planted under the name must not hang; a regular file reads
        // the same with it.
        let fd = rustix::fs::openat(
            at,
            OsStr::from_bytes(last),
            OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
        )?;
        let st = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(Box::new(std::fs::File::from(fd)))
    }
}

#[derive(serde::Deserialize)]
struct RawEntry {
    #[serde(rename = "type")]
    kind: i64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_raw: Option<String>,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    payload: Option<String>,
}

/// Writes the original tar of a layer to `out` from its tar-split and its files; returns the
/// tar's size. Each file's size and CRC-64 are checked against the tar-split, so a modified
/// file is an error naming it, never a silently different tar.
pub fn assemble(
    mut tar_split: impl BufRead,
    files: &mut dyn FileSource,
    mut out: impl Write,
) -> Result<u64, TarSplitError> {
    let write_err = |source| TarSplitError::Io {
        what: "writing the tar",
        source,
    };
    let mut line = Vec::new();
    let mut line_no = 0u64;
    let mut total = 0u64;
    let mut crc = Crc64::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        line.clear();
        let n = (&mut tar_split)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)
            .map_err(|source| TarSplitError::Io {
                what: "reading the tar-split",
                source,
            })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let malformed = |reason: String| TarSplitError::Malformed {
            line: line_no,
            reason,
        };
        if n as u64 > MAX_LINE {
            return Err(malformed(format!("longer than {MAX_LINE} bytes")));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let e: RawEntry =
            serde_json::from_slice(&line).map_err(|err| malformed(err.to_string()))?;
        let payload = match &e.payload {
            Some(p) => B64
                .decode(p)
                .map_err(|err| malformed(format!("payload: {err}")))?,
            None => Vec::new(),
        };
        match e.kind {
            2 => {
                out.write_all(&payload).map_err(write_err)?;
                total += payload.len() as u64;
            }
            1 => {
                let size = e.size.unwrap_or(0);
                if size <= 0 {
                    continue;
                }
                let name = match (&e.name_raw, &e.name) {
                    (Some(raw), _) if !raw.is_empty() => B64
                        .decode(raw)
                        .map_err(|err| malformed(format!("name_raw: {err}")))?,
                    (_, Some(n)) => n.as_bytes().to_vec(),
                    _ => Vec::new(),
                };
                let shown = String::from_utf8_lossy(&name).into_owned();
                let file_err = |source| TarSplitError::File {
                    name: shown.clone(),
                    source,
                };
                let mut f = files.open(&name).map_err(file_err)?;
                crc.reset();
                let mut left = size as u64;
                while left > 0 {
                    let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let chunk = buf.get_mut(..want).unwrap_or_default();
                    let got = f.read(chunk).map_err(file_err)?;
                    if got == 0 {
                        return Err(TarSplitError::Mismatch {
                            name: shown,
                            reason: format!(
                                "it has {} bytes, the layer had {size}",
                                size as u64 - left
                            ),
                        });
                    }
                    let data = chunk.get(..got).unwrap_or_default();
                    crc.update(data);
                    out.write_all(data).map_err(write_err)?;
                    left -= got as u64;
                }
                if f.read(&mut [0u8; 1]).map_err(file_err)? != 0 {
                    return Err(TarSplitError::Mismatch {
                        name: shown,
                        reason: format!("it has more than the layer's {size} bytes"),
                    });
                }
                if crc.sum().as_slice() != payload.as_slice() {
                    return Err(TarSplitError::Mismatch {
                        name: shown,
                        reason: "its CRC-64 differs".to_string(),
                    });
                }
                total += size as u64;
            }
            other => return Err(malformed(format!("unknown entry type {other}"))),
        }
    }
    out.flush().map_err(write_err)?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_is_gos_iso_table() {
        let mut c = Crc64::new();
        c.update(b"123456789");
        assert_eq!(c.sum(), 0xb909_56c7_75a4_1001u64.to_be_bytes());
        // Split anywhere, eight at a time or not, the sum is the same.
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 256) as u8).collect();
        c.reset();
        c.update(&data);
        let whole = c.sum();
        for cut in [1, 7, 8, 9, 500, 999] {
            c.reset();
            c.update(&data[..cut]);
            c.update(&data[cut..]);
            assert_eq!(c.sum(), whole, "cut at {cut}");
        }
    }

    #[test]
    fn clean_matches_go() {
        for (i, o) in [
            ("a//b/./c/", "a/b/c"),
            ("./", "."),
            ("", "."),
            ("/../a", "/a"),
            ("../a/../..", "../.."),
            ("a/b/../c", "a/c"),
        ] {
            assert_eq!(clean(i.as_bytes()), o.as_bytes(), "{i}");
        }
    }

    #[test]
    fn entries_are_json_lines_like_tar_split_writes() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "f<1>", &b"abc"[..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Directory);
        b.append_data(&mut h, "d/", &b""[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let mut out = Vec::new();
        let s = tar_split(&tar[..], &mut out).unwrap();
        assert_eq!(s.tar_size, tar.len() as u64);
        assert_eq!(s.entries, 2);
        let text = String::from_utf8(out.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].starts_with(r#"{"type":2,"payload":""#));
        assert!(lines[0].ends_with(r#"","position":0}"#));
        let mut c = Crc64::new();
        c.update(b"abc");
        assert_eq!(
            lines[1],
            format!(
                r#"{{"type":1,"name":"f\u003c1\u003e","size":3,"payload":"{}","position":1}}"#,
                B64.encode(c.sum())
            )
        );
        assert_eq!(
            lines[3],
            r#"{"type":1,"name":"d/","payload":null,"position":3}"#
        );

        struct One(&'static [u8]);
        impl FileSource for One {
            fn open(&mut self, name: &[u8]) -> io::Result<Box<dyn Read + '_>> {
                assert_eq!(name, b"f<1>");
                Ok(Box::new(self.0))
            }
        }
        let mut rebuilt = Vec::new();
        assemble(&out[..], &mut One(b"abc"), &mut rebuilt).unwrap();
        assert_eq!(rebuilt, tar);
        let err = assemble(&out[..], &mut One(b"abd"), &mut Vec::new()).unwrap_err();
        assert!(matches!(err, TarSplitError::Mismatch { .. }), "{err}");
        let err = assemble(&out[..], &mut One(b"abcd"), &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }

    #[test]
    fn duplicate_paths_are_refused() {
        let mut b = tar::Builder::new(Vec::new());
        for name in ["a/b", "a//b/"] {
            let mut h = tar::Header::new_ustar();
            h.set_size(0);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, &b""[..]).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let err = tar_split(&tar[..], Vec::new()).unwrap_err();
        assert!(err.to_string().contains("same path"), "{err}");
    }

    #[test]
    fn directory_files_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/f"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("d/pw")).unwrap();
        let mut files = DirectoryFiles::open(dir.path()).unwrap();
        let mut s = String::new();
        files
            .open(b"./d//f")
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "x");
        assert!(files.open(b"link/passwd").is_err());
        assert!(files.open(b"d/pw").is_err());
        assert!(files.open(b"d/../../etc/passwd").is_err());
        assert!(files.open(b"/etc/passwd").is_err());
    }
}
