//! zstd:chunked, written as containers/storage writes it (`pkg/chunked/compressor`,
//! `pkg/chunked/internal/minimal`): a zstd stream of the layer's tar in which every file's
//! contents start a new zstd frame and are cut into chunks (a rolling checksum picks the cuts,
//! and runs of 1 KiB or more of zeros become "zeros" chunks), each chunk its own frame, so a
//! client can fetch single files or chunks with HTTP range requests. After the tar come three
//! zstd *skippable* frames, which every zstd decoder passes over:
//!
//! 1. the table of contents (TOC): zstd-compressed JSON, `{"version":1,"entries":[...],
//!    "tarSplitDigest":"sha256:..."}`, one entry per tar entry (name, type, size, mode, owner,
//!    times, xattrs, link target, the contents' digest and compressed offsets) plus one `chunk`
//!    entry per further chunk of a file cut in several;
//! 2. the tar-split of the tar, zstd-compressed, so the exact tar can be rebuilt;
//! 3. a 64-byte footer: offsets and lengths of both, the manifest type (1) and the magic
//!    `GNUlInUx`.
//!
//! The layer descriptor carries the TOC's digest and both positions as annotations
//! ([`MANIFEST_CHECKSUM_KEY`], [`MANIFEST_POSITION_KEY`], [`TARSPLIT_POSITION_KEY`]); the TOC's
//! digest is what a partial pull trusts, so it must be in the signed manifest.
//!
//! Memory: the tar streams through; only the compressed TOC and tar-split (a small fraction of
//! the layer, the reference keeps them in memory too) and one file's chunk list are held.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zstd::stream::raw::{CParameter, Encoder as RawEncoder, InBuffer, Operation, OutBuffer};

use super::gojson;
use super::tar::{self, TarEntry, TarError, TarProblem, TarScanner, TarSink, TarTime};
use super::tarsplit::TarSplitWriter;
use crate::digest::{Algorithm, Digest, Digester};

/// Annotation: the sha256 digest of the compressed TOC (what a partial pull verifies).
pub const MANIFEST_CHECKSUM_KEY: &str = "io.github.containers.zstd-chunked.manifest-checksum";
/// Annotation: `offset:compressed-length:uncompressed-length:type` of the TOC (type 1).
pub const MANIFEST_POSITION_KEY: &str = "io.github.containers.zstd-chunked.manifest-position";
/// Annotation: `offset:compressed-length:uncompressed-length` of the tar-split.
pub const TARSPLIT_POSITION_KEY: &str = "io.github.containers.zstd-chunked.tarsplit-position";
/// The footer's magic, `GNUlInUx`.
pub const FOOTER_MAGIC: [u8; 8] = *b"GNUlInUx";
/// The footer's size (its data, without the 8-byte skippable-frame header).
pub const FOOTER_SIZE: usize = 64;
/// The manifest type of a CRFS-style TOC, the only one there is.
const MANIFEST_TYPE_CRFS: u64 = 1;
/// zstd skippable frame magic (0x184D2A50), little-endian.
const SKIPPABLE_MAGIC: [u8; 4] = [0x50, 0x2a, 0x4d, 0x18];
/// The largest TOC containers/storage accepts (`maxTocSize`); [`read_metadata`] uses it too.
const MAX_TOC: u64 = 150 << 20;
/// Zero runs at least this long become their own "zeros" chunk (`holesThreshold`).
const HOLE: u64 = 1024;
/// The rolling checksum cuts where its low 16 bits are all ones (`RollsumBits`).
const ROLLSUM_MASK: u32 = (1 << 16) - 1;

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// The bup-style rolling checksum containers/storage uses to cut files into chunks (Perkeep's
/// `rollsum`, window 64, char offset 31). Using the same one makes ferry's chunks the same as
/// containers/storage's for the same file, so chunk-level deduplication works across both.
struct RollSum {
    s1: u32,
    s2: u32,
    window: [u8; 64],
    wofs: usize,
}

impl RollSum {
    fn new() -> RollSum {
        RollSum {
            s1: 64 * 31,
            s2: 64 * 63 * 31,
            window: [0; 64],
            wofs: 0,
        }
    }

    fn roll(&mut self, ch: u8) {
        let Some(slot) = self.window.get_mut(self.wofs) else {
            return;
        };
        let drop = u32::from(*slot);
        *slot = ch;
        self.s1 = self.s1.wrapping_add(u32::from(ch)).wrapping_sub(drop);
        self.s2 = self
            .s2
            .wrapping_add(self.s1)
            .wrapping_sub(64u32.wrapping_mul(drop + 31));
        self.wofs = (self.wofs + 1) & 63;
    }

    fn on_split(&self) -> bool {
        self.s2 & ROLLSUM_MASK == ROLLSUM_MASK
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkKind {
    Data,
    Zeros,
}

/// What the chunker says about a file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// These bytes of the input slice belong to the current chunk.
    Bytes(usize, usize),
    /// This many zero bytes (held back from earlier input) belong to the current chunk.
    Zeros(u64),
    /// The current chunk ends here.
    Cut(ChunkKind),
}

/// Cuts one file's contents into chunks as containers/storage's `rollingChecksumReader` and
/// `holesFinder` do: a maximal run of at least [`HOLE`] zero bytes is a chunk of its own; other
/// bytes (shorter zero runs included) are rolled through the checksum, and a chunk ends after
/// any byte where the checksum's low 16 bits are all set.
struct Chunker {
    roll: RollSum,
    zeros: u64,
    hole: bool,
}

impl Chunker {
    fn new() -> Chunker {
        Chunker {
            roll: RollSum::new(),
            zeros: 0,
            hole: false,
        }
    }

    fn feed(&mut self, data: &[u8], out: &mut Vec<Piece>) {
        let mut start = 0;
        for (j, &b) in data.iter().enumerate() {
            if b == 0 {
                if self.zeros == 0 && start < j {
                    out.push(Piece::Bytes(start, j));
                }
                self.zeros += 1;
                start = j + 1;
                if !self.hole && self.zeros == HOLE {
                    self.hole = true;
                    out.push(Piece::Cut(ChunkKind::Data));
                }
                continue;
            }
            if self.zeros > 0 {
                self.flush_zeros(out);
            }
            self.roll.roll(b);
            if self.roll.on_split() {
                out.push(Piece::Bytes(start, j + 1));
                out.push(Piece::Cut(ChunkKind::Data));
                start = j + 1;
            }
        }
        if self.zeros == 0 && start < data.len() {
            out.push(Piece::Bytes(start, data.len()));
        }
    }

    fn flush_zeros(&mut self, out: &mut Vec<Piece>) {
        let n = std::mem::take(&mut self.zeros);
        if std::mem::take(&mut self.hole) {
            out.push(Piece::Zeros(n));
            out.push(Piece::Cut(ChunkKind::Zeros));
            // Past 64 zeros the window is all zeros and rolling more changes nothing.
            for _ in 0..n.min(64) {
                self.roll.roll(0);
            }
            return;
        }
        let mut pending = 0;
        for _ in 0..n {
            self.roll.roll(0);
            pending += 1;
            if self.roll.on_split() {
                out.push(Piece::Zeros(pending));
                out.push(Piece::Cut(ChunkKind::Data));
                pending = 0;
            }
        }
        if pending > 0 {
            out.push(Piece::Zeros(pending));
        }
    }

    fn finish(&mut self, out: &mut Vec<Piece>) {
        if self.zeros > 0 {
            self.flush_zeros(out);
        }
        out.push(Piece::Cut(ChunkKind::Data));
    }
}

/// Writes a stream of zstd frames, cut where the caller says, counting the bytes written.
struct FrameWriter<W: Write> {
    out: W,
    enc: RawEncoder<'static>,
    buf: Vec<u8>,
    offset: u64,
    open: bool,
}

impl<W: Write> FrameWriter<W> {
    fn new(out: W, level: i32) -> io::Result<FrameWriter<W>> {
        let mut enc = RawEncoder::new(level)?;
        enc.set_parameter(CParameter::ChecksumFlag(true))?;
        Ok(FrameWriter {
            out,
            enc,
            buf: vec![0; zstd::zstd_safe::CCtx::out_size()],
            offset: 0,
            open: false,
        })
    }

    fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.open = true;
        while !data.is_empty() {
            let mut input = InBuffer::around(data);
            let produced = {
                let mut output = OutBuffer::around(self.buf.as_mut_slice());
                self.enc.run(&mut input, &mut output)?;
                output.pos()
            };
            let consumed = input.pos();
            self.emit(produced)?;
            data = data.get(consumed..).unwrap_or_default();
        }
        Ok(())
    }

    fn emit(&mut self, produced: usize) -> io::Result<()> {
        let bytes = self.buf.get(..produced).unwrap_or_default();
        self.out.write_all(bytes)?;
        self.offset += produced as u64;
        Ok(())
    }

    /// Ends the current frame, if anything was written to it.
    fn end_frame(&mut self) -> io::Result<()> {
        if !self.open {
            return Ok(());
        }
        loop {
            let (produced, remaining) = {
                let mut output = OutBuffer::around(self.buf.as_mut_slice());
                let remaining = self.enc.finish(&mut output, true)?;
                (output.pos(), remaining)
            };
            self.emit(produced)?;
            if remaining == 0 {
                break;
            }
        }
        self.enc.reinit()?;
        self.open = false;
        Ok(())
    }

    /// Writes a zstd skippable frame holding `data`.
    fn skippable(&mut self, data: &[u8]) -> io::Result<()> {
        let len = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "zstd:chunked metadata over 4 GiB does not fit in a skippable frame",
            )
        })?;
        self.out.write_all(&SKIPPABLE_MAGIC)?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(data)?;
        self.offset += 8 + data.len() as u64;
        Ok(())
    }
}

/// One TOC entry (containers/storage's `minimal.FileMetadata`), serialised in its field order
/// with its `omitempty` rules.
#[derive(Debug, Clone, Default)]
struct TocEntry {
    kind: &'static str,
    name: Vec<u8>,
    linkname: Vec<u8>,
    mode: i64,
    size: i64,
    uid: i64,
    gid: i64,
    modtime: Option<TarTime>,
    atime: Option<TarTime>,
    ctime: Option<TarTime>,
    devmajor: i64,
    devminor: i64,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    digest: Option<String>,
    offset: u64,
    end_offset: u64,
    chunk_size: u64,
    chunk_offset: u64,
    chunk_digest: Option<String>,
    chunk_zeros: bool,
}

/// Go's `time.Time.MarshalJSON` (RFC 3339 with trimmed nanoseconds), in UTC.
fn go_time(t: TarTime) -> Result<String, TarProblem> {
    let dt = chrono::DateTime::from_timestamp(t.secs, t.nanos)
        .filter(|d| (0..=9999).contains(&chrono::Datelike::year(d)))
        .ok_or(TarProblem::TimeOutOfRange(t.secs))?;
    let mut s = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
    if t.nanos > 0 {
        let frac = format!(".{:09}", t.nanos);
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    Ok(s)
}

impl TocEntry {
    fn from_header(e: &TarEntry) -> Result<TocEntry, TarProblem> {
        let kind = match e.typeflag {
            tar::TYPE_REG => "reg",
            tar::TYPE_LINK => "hardlink",
            tar::TYPE_CHAR => "char",
            tar::TYPE_BLOCK => "block",
            tar::TYPE_DIR => "dir",
            tar::TYPE_FIFO => "fifo",
            tar::TYPE_SYMLINK => "symlink",
            other => return Err(TarProblem::UnsupportedType(other)),
        };
        // Go's NewFileMetadata drops zero times (timeIfNotZero); a Unix time of 0 is not zero.
        Ok(TocEntry {
            kind,
            name: e.name.clone(),
            linkname: e.linkname.clone(),
            mode: e.mode,
            size: e.size,
            uid: e.uid,
            gid: e.gid,
            modtime: Some(e.mtime),
            atime: e.atime,
            ctime: e.ctime,
            devmajor: e.devmajor,
            devminor: e.devminor,
            xattrs: e.xattrs.clone(),
            ..TocEntry::default()
        })
    }

    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), TarProblem> {
        fn key(out: &mut Vec<u8>, k: &str) {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"\":");
        }
        fn num(out: &mut Vec<u8>, k: &str, v: i128) {
            if v != 0 {
                key(out, k);
                out.extend_from_slice(v.to_string().as_bytes());
            }
        }
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(self.kind.as_bytes());
        out.extend_from_slice(b"\",\"name\":");
        gojson::string(out, &self.name);
        if !self.linkname.is_empty() {
            key(out, "linkName");
            gojson::string(out, &self.linkname);
        }
        num(out, "mode", self.mode.into());
        num(out, "size", self.size.into());
        num(out, "uid", self.uid.into());
        num(out, "gid", self.gid.into());
        for (k, t) in [
            ("modtime", self.modtime),
            ("accesstime", self.atime),
            ("changetime", self.ctime),
        ] {
            if let Some(t) = t {
                key(out, k);
                out.push(b'"');
                out.extend_from_slice(go_time(t)?.as_bytes());
                out.push(b'"');
            }
        }
        num(out, "devMajor", self.devmajor.into());
        num(out, "devMinor", self.devminor.into());
        if !self.xattrs.is_empty() {
            key(out, "xattrs");
            out.push(b'{');
            for (i, (k, v)) in self.xattrs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                gojson::string(out, k);
                out.push(b':');
                gojson::string(out, B64.encode(v).as_bytes());
            }
            out.push(b'}');
        }
        if let Some(d) = &self.digest {
            key(out, "digest");
            gojson::string(out, d.as_bytes());
        }
        num(out, "offset", self.offset.into());
        num(out, "endOffset", self.end_offset.into());
        num(out, "chunkSize", self.chunk_size.into());
        num(out, "chunkOffset", self.chunk_offset.into());
        if let Some(d) = &self.chunk_digest {
            key(out, "chunkDigest");
            gojson::string(out, d.as_bytes());
        }
        if self.chunk_zeros {
            key(out, "chunkType");
            out.extend_from_slice(b"\"zeros\"");
        }
        out.push(b'}');
        Ok(())
    }
}

/// Streams TOC entries into a zstd-compressed buffer.
struct TocWriter {
    enc: zstd::stream::write::Encoder<'static, Vec<u8>>,
    len: u64,
    count: u64,
    line: Vec<u8>,
}

impl TocWriter {
    fn new(level: i32) -> io::Result<TocWriter> {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), level)?;
        enc.include_checksum(true)?;
        let mut w = TocWriter {
            enc,
            len: 0,
            count: 0,
            line: Vec::new(),
        };
        w.put(br#"{"version":1,"entries":["#)?;
        Ok(w)
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.enc.write_all(b)?;
        self.len += b.len() as u64;
        Ok(())
    }

    fn add(&mut self, e: &TocEntry) -> Result<(), TarProblem> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        if self.count > 0 {
            line.push(b',');
        }
        e.write_json(&mut line)?;
        self.put(&line)
            .map_err(|e| TarProblem::Sink(format!("compressing the TOC: {e}")))?;
        self.count += 1;
        self.line = line;
        Ok(())
    }

    /// The compressed TOC and its uncompressed length.
    fn finish(mut self, tar_split_digest: &Digest) -> io::Result<(Vec<u8>, u64)> {
        let mut tail = br#"],"tarSplitDigest":"#.to_vec();
        gojson::string(&mut tail, tar_split_digest.to_string().as_bytes());
        tail.push(b'}');
        self.put(&tail)?;
        let len = self.len;
        Ok((self.enc.finish()?, len))
    }
}

struct ChunkRec {
    offset: u64,
    in_file: u64,
    size: u64,
    digest: String,
    zeros: bool,
}

/// The regular file whose contents are passing.
struct FileState {
    entry: TocEntry,
    started: bool,
    start: u64,
    file_hash: Digester,
    chunk_hash: Digester,
    chunks: Vec<ChunkRec>,
    chunk_offset: u64,
    chunk_in_file: u64,
    chunk_len: u64,
    written: u64,
}

struct ChunkedSink<W: Write> {
    frames: FrameWriter<W>,
    tar_split: TarSplitWriter<zstd::stream::write::Encoder<'static, Vec<u8>>>,
    toc: TocWriter,
    file: Option<FileState>,
    pending: Option<TocEntry>,
    chunker: Chunker,
    pieces: Vec<Piece>,
    entries: u64,
}

fn io_problem(what: &str, e: io::Error) -> TarProblem {
    TarProblem::Sink(format!("{what}: {e}"))
}

impl<W: Write> ChunkedSink<W> {
    fn apply(&mut self, data: &[u8]) -> Result<(), TarProblem> {
        let pieces = std::mem::take(&mut self.pieces);
        for p in &pieces {
            match *p {
                Piece::Bytes(a, b) => self.content(data.get(a..b).unwrap_or_default())?,
                Piece::Zeros(mut n) => {
                    while n > 0 {
                        let k = usize::try_from(n).unwrap_or(usize::MAX).min(ZEROS.len());
                        self.content(ZEROS.get(..k).unwrap_or_default())?;
                        n -= k as u64;
                    }
                }
                Piece::Cut(kind) => self.cut(kind)?,
            }
        }
        self.pieces = pieces;
        self.pieces.clear();
        Ok(())
    }

    fn content(&mut self, data: &[u8]) -> Result<(), TarProblem> {
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        if !f.started {
            // File contents start a frame of their own, so they can be fetched alone.
            self.frames
                .end_frame()
                .map_err(|e| io_problem("writing the layer", e))?;
            f.started = true;
            f.start = self.frames.offset;
            f.chunk_offset = f.start;
        }
        self.frames
            .write(data)
            .map_err(|e| io_problem("writing the layer", e))?;
        f.file_hash.update(data);
        f.chunk_hash.update(data);
        f.chunk_len += data.len() as u64;
        f.written += data.len() as u64;
        Ok(())
    }

    fn cut(&mut self, kind: ChunkKind) -> Result<(), TarProblem> {
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        if f.chunk_len == 0 {
            return Ok(());
        }
        self.frames
            .end_frame()
            .map_err(|e| io_problem("writing the layer", e))?;
        let hash = std::mem::replace(&mut f.chunk_hash, Digester::new(Algorithm::Sha256));
        f.chunks.push(ChunkRec {
            offset: f.chunk_offset,
            in_file: f.chunk_in_file,
            size: f.chunk_len,
            digest: hash.finish().to_string(),
            zeros: kind == ChunkKind::Zeros,
        });
        f.chunk_offset = self.frames.offset;
        f.chunk_in_file = f.written;
        f.chunk_len = 0;
        Ok(())
    }
}

impl<W: Write> TarSink for ChunkedSink<W> {
    fn raw(&mut self, bytes: &[u8]) -> Result<(), TarProblem> {
        self.tar_split.raw(bytes)?;
        self.frames
            .write(bytes)
            .map_err(|e| io_problem("writing the layer", e))
    }

    fn entry(&mut self, entry: &TarEntry) -> Result<(), TarProblem> {
        let toc = TocEntry::from_header(entry)?;
        self.tar_split.entry(entry)?;
        self.entries += 1;
        if entry.payload_len > 0 {
            self.chunker = Chunker::new();
            self.file = Some(FileState {
                entry: toc,
                started: false,
                start: 0,
                file_hash: Digester::new(Algorithm::Sha256),
                chunk_hash: Digester::new(Algorithm::Sha256),
                chunks: Vec::new(),
                chunk_offset: 0,
                chunk_in_file: 0,
                chunk_len: 0,
                written: 0,
            });
        } else {
            self.pending = Some(toc);
        }
        Ok(())
    }

    fn payload(&mut self, bytes: &[u8]) -> Result<(), TarProblem> {
        self.tar_split.payload(bytes)?;
        self.chunker.feed(bytes, &mut self.pieces);
        self.apply(bytes)
    }

    fn entry_end(&mut self) -> Result<(), TarProblem> {
        self.tar_split.entry_end()?;
        if let Some(e) = self.pending.take() {
            return self.toc.add(&e);
        }
        self.chunker.finish(&mut self.pieces);
        self.apply(&[])?;
        let Some(f) = self.file.take() else {
            return Ok(());
        };
        let mut main = f.entry;
        if f.started {
            main.digest = Some(f.file_hash.finish().to_string());
            main.offset = f.start;
            main.end_offset = self.frames.offset;
        }
        let name = main.name.clone();
        let several = f.chunks.len() > 1;
        if several && let Some(first) = f.chunks.first() {
            main.chunk_size = first.size;
            main.offset = first.offset;
            main.chunk_digest = Some(first.digest.clone());
            main.chunk_zeros = first.zeros;
        }
        self.toc.add(&main)?;
        if several {
            for c in f.chunks.iter().skip(1) {
                self.toc.add(&TocEntry {
                    kind: "chunk",
                    name: name.clone(),
                    chunk_offset: c.in_file,
                    chunk_size: c.size,
                    offset: c.offset,
                    chunk_digest: Some(c.digest.clone()),
                    chunk_zeros: c.zeros,
                    ..TocEntry::default()
                })?;
            }
        }
        Ok(())
    }

    fn end_of_archive(&mut self) -> Result<(), TarProblem> {
        self.tar_split.end_of_archive()
    }
}

/// What a finished zstd:chunked layer needs in its descriptor, and where its parts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedSummary {
    /// The layer annotations ([`MANIFEST_CHECKSUM_KEY`], [`MANIFEST_POSITION_KEY`],
    /// [`TARSPLIT_POSITION_KEY`]).
    pub annotations: BTreeMap<String, String>,
    /// The digest of the compressed TOC (also the manifest-checksum annotation).
    pub toc_digest: Digest,
    /// Tar entries described.
    pub entries: u64,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
    /// Bytes written in all.
    pub compressed_size: u64,
}

/// A `Write` that takes a layer's tar and writes it as zstd:chunked to the inner writer.
/// Write the whole tar, then call [`ChunkedWriter::finish`] for the metadata and annotations.
pub struct ChunkedWriter<W: Write> {
    scanner: TarScanner,
    sink: ChunkedSink<W>,
}

impl<W: Write> ChunkedWriter<W> {
    /// A writer compressing at zstd `level`, in the calling thread: libzstd's worker threads
    /// only slow down frames this small (docs/compression.md has the figures).
    pub fn new(out: W, level: i32) -> io::Result<ChunkedWriter<W>> {
        let mut ts = zstd::stream::write::Encoder::new(Vec::new(), level)?;
        ts.include_checksum(true)?;
        Ok(ChunkedWriter {
            scanner: TarScanner::new(),
            sink: ChunkedSink {
                frames: FrameWriter::new(out, level)?,
                tar_split: TarSplitWriter::new(ts),
                toc: TocWriter::new(level)?,
                file: None,
                pending: None,
                chunker: Chunker::new(),
                pieces: Vec::new(),
                entries: 0,
            },
        })
    }

    /// Ends the tar (an error if it stopped inside an entry) and writes the TOC, the tar-split
    /// and the footer; returns the inner writer and the annotations.
    pub fn finish(mut self) -> Result<(W, ChunkedSummary), TarError> {
        self.scanner.finish(&mut self.sink)?;
        let tar_size = self.scanner.offset();
        let at_end = |what: TarProblem| TarError {
            offset: tar_size,
            entry: None,
            what,
        };
        let io = |what: &'static str| move |e: io::Error| at_end(io_problem(what, e));
        let ChunkedSink {
            mut frames,
            tar_split,
            toc,
            entries,
            ..
        } = self.sink;
        frames.end_frame().map_err(io("writing the layer"))?;
        let (ts_enc, ts_len) = tar_split.finish().map_err(at_end)?;
        let ts = ts_enc.finish().map_err(io("compressing the tar-split"))?;
        let ts_digest = Digest::sha256_of(&ts);
        let (toc_bytes, toc_len) = toc.finish(&ts_digest).map_err(io("compressing the TOC"))?;
        let toc_digest = Digest::sha256_of(&toc_bytes);

        let toc_offset = frames.offset + 8;
        frames
            .skippable(&toc_bytes)
            .map_err(io("writing the TOC"))?;
        let ts_offset = frames.offset + 8;
        frames.skippable(&ts).map_err(io("writing the tar-split"))?;
        let mut footer = Vec::with_capacity(FOOTER_SIZE);
        for v in [
            toc_offset,
            toc_bytes.len() as u64,
            toc_len,
            MANIFEST_TYPE_CRFS,
            ts_offset,
            ts.len() as u64,
            ts_len,
        ] {
            footer.extend_from_slice(&v.to_le_bytes());
        }
        footer.extend_from_slice(&FOOTER_MAGIC);
        frames
            .skippable(&footer)
            .map_err(io("writing the footer"))?;
        frames.out.flush().map_err(io("writing the layer"))?;

        let mut annotations = BTreeMap::new();
        annotations.insert(MANIFEST_CHECKSUM_KEY.to_string(), toc_digest.to_string());
        annotations.insert(
            MANIFEST_POSITION_KEY.to_string(),
            format!(
                "{toc_offset}:{}:{toc_len}:{MANIFEST_TYPE_CRFS}",
                toc_bytes.len()
            ),
        );
        annotations.insert(
            TARSPLIT_POSITION_KEY.to_string(),
            format!("{ts_offset}:{}:{ts_len}", ts.len()),
        );
        Ok((
            frames.out,
            ChunkedSummary {
                annotations,
                toc_digest,
                entries,
                tar_size,
                compressed_size: frames.offset,
            },
        ))
    }
}

impl<W: Write> Write for ChunkedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.scanner
            .feed(buf, &mut self.sink)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The metadata of a zstd:chunked blob, read back through its footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedMetadata {
    /// The footer's fields: TOC offset, compressed and uncompressed length, manifest type,
    /// tar-split offset, compressed and uncompressed length.
    pub footer: [u64; 7],
    /// The TOC JSON, decompressed.
    pub toc: Vec<u8>,
    /// The digest of the compressed TOC (compare with the manifest-checksum annotation).
    pub toc_digest: Digest,
    /// The tar-split JSON lines, decompressed.
    pub tar_split: Vec<u8>,
    /// The digest of the compressed tar-split (the TOC's `tarSplitDigest`).
    pub tar_split_digest: Digest,
}

/// Reads a zstd:chunked blob's footer, TOC and tar-split (for checks and tools; the TOC is at
/// most 150 MiB, as containers/storage allows). `None` when the blob has no zstd:chunked footer.
pub fn read_metadata<R: Read + Seek>(mut blob: R) -> io::Result<Option<ChunkedMetadata>> {
    let len = blob.seek(SeekFrom::End(0))?;
    let tail = (8 + FOOTER_SIZE) as u64;
    if len < tail {
        return Ok(None);
    }
    blob.seek(SeekFrom::Start(len - tail))?;
    let mut buf = [0u8; 8 + FOOTER_SIZE];
    blob.read_exact(&mut buf)?;
    let (head, data) = buf.split_at(8);
    if head.get(..4) != Some(&SKIPPABLE_MAGIC[..]) || data.get(56..) != Some(&FOOTER_MAGIC[..]) {
        return Ok(None);
    }
    let mut footer = [0u64; 7];
    for (i, slot) in footer.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(data.get(i * 8..i * 8 + 8).unwrap_or(&[0; 8]));
        *slot = u64::from_le_bytes(b);
    }
    let [toc_off, toc_len, toc_ulen, _, ts_off, ts_len, ts_ulen] = footer;
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    // Offsets are the blob's to choose: an end past u64::MAX is outside the blob too.
    let outside = |off: u64, n: u64| off.checked_add(n).is_none_or(|end| end > len);
    if toc_len > MAX_TOC
        || toc_ulen > MAX_TOC
        || outside(toc_off, toc_len)
        || outside(ts_off, ts_len)
    {
        return Err(bad(
            "zstd:chunked footer describes a TOC too large or outside the blob",
        ));
    }
    let mut read_part = |off: u64, n: u64, un: u64| -> io::Result<(Vec<u8>, Vec<u8>)> {
        blob.seek(SeekFrom::Start(off))?;
        let mut c = Vec::new();
        (&mut blob).take(n).read_to_end(&mut c)?;
        let mut u = Vec::new();
        zstd::stream::read::Decoder::new(&c[..])?
            .take(un.min(MAX_TOC * 4) + 1)
            .read_to_end(&mut u)?;
        if u.len() as u64 != un {
            return Err(bad(
                "zstd:chunked part's uncompressed length differs from the footer",
            ));
        }
        Ok((c, u))
    };
    let (toc_c, toc) = read_part(toc_off, toc_len, toc_ulen)?;
    let (ts_c, tar_split) = read_part(ts_off, ts_len, ts_ulen)?;
    Ok(Some(ChunkedMetadata {
        footer,
        toc,
        toc_digest: Digest::sha256_of(&toc_c),
        tar_split,
        tar_split_digest: Digest::sha256_of(&ts_c),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks_of(data: &[u8], step: usize) -> Vec<(ChunkKind, usize)> {
        let mut c = Chunker::new();
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        let mut cur = 0usize;
        let mut fold = |pieces: &mut Vec<Piece>, sizes: &mut Vec<(ChunkKind, usize)>| {
            for p in pieces.drain(..) {
                match p {
                    Piece::Bytes(a, b) => cur += b - a,
                    Piece::Zeros(n) => cur += n as usize,
                    Piece::Cut(k) => {
                        if cur > 0 {
                            sizes.push((k, cur));
                        }
                        cur = 0;
                    }
                }
            }
        };
        for part in data.chunks(step) {
            c.feed(part, &mut out);
            fold(&mut out, &mut sizes);
        }
        c.finish(&mut out);
        fold(&mut out, &mut sizes);
        sizes
    }

    #[test]
    fn chunks_do_not_depend_on_how_the_file_is_fed() {
        let mut data = Vec::new();
        let mut x: u32 = 1;
        for i in 0..600_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.push(if (200_000..203_000).contains(&i) || (i % 5000) < 30 {
                0
            } else {
                (x >> 16) as u8
            });
        }
        let whole = chunks_of(&data, data.len());
        assert_eq!(whole, chunks_of(&data, 4096));
        assert_eq!(whole, chunks_of(&data, 1));
        assert_eq!(whole.iter().map(|c| c.1).sum::<usize>(), data.len());
        assert!(whole.contains(&(ChunkKind::Zeros, 3000)), "{whole:?}");
        assert!(
            whole.len() > 4,
            "random data is cut about every 64 KiB: {whole:?}"
        );
    }

    #[test]
    fn a_footer_whose_offsets_overflow_is_refused() {
        // fuzz/artifacts/tarsplit/crash-read-metadata-toc-offset-overflow: a TOC at
        // u64::MAX - 3 made `toc_off + toc_len` overflow (a panic with overflow checks).
        let mut blob = SKIPPABLE_MAGIC.to_vec();
        blob.extend(64u32.to_le_bytes());
        for v in [u64::MAX - 3, 8, 8, 1, 0, 8, 8] {
            blob.extend(v.to_le_bytes());
        }
        blob.extend(FOOTER_MAGIC);
        let e = read_metadata(io::Cursor::new(&blob)).unwrap_err();
        assert!(e.to_string().contains("outside the blob"), "{e}");
        // The same for the tar-split's offset.
        let at = 8 + 4 * 8;
        blob[at..at + 8].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
        blob[8..16].copy_from_slice(&0u64.to_le_bytes());
        assert!(read_metadata(io::Cursor::new(&blob)).is_err());
    }

    #[test]
    fn times_format_as_go() {
        assert_eq!(
            go_time(TarTime { secs: 0, nanos: 0 }).unwrap(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            go_time(TarTime {
                secs: 1_700_000_000,
                nanos: 250_000_000
            })
            .unwrap(),
            "2023-11-14T22:13:20.25Z"
        );
        assert!(
            go_time(TarTime {
                secs: 400_000_000_000,
                nanos: 0
            })
            .is_err()
        );
    }
}
