//! A push-driven tar scanner: the tar stream is fed in slices of any size, and the scanner tells a
//! [`TarSink`] which bytes are headers or padding ("raw"), which are file contents ("payload"),
//! and what each entry's header says, without ever holding more than one header's worth of data.
//!
//! Why not the `tar` crate: tar-split and zstd:chunked need every byte of the stream accounted
//! for in order (header blocks, PAX and GNU long-name data, padding, the end-of-archive blocks
//! and anything after them) while the stream passes, and they must read headers exactly as Go's
//! `archive/tar` (vbatts/tar-split's fork of it) does, because containers/storage re-reads our
//! tar-split with that reader and rejects a TOC that disagrees with it. The `tar` crate reads
//! from a `Read` it owns and normalises what it parses; this scanner owns the IO instead.

use std::collections::BTreeMap;
use std::fmt;

/// The size of a tar block.
pub(crate) const BLOCK: usize = 512;
/// PAX and GNU long-name data larger than this is refused (Go's `maxSpecialFileSize`).
const MAX_SPECIAL: u64 = 1 << 20;

/// Regular file (`'0'`; the old `'\0'` is converted to this or to a directory, as Go does).
pub const TYPE_REG: u8 = b'0';
/// Hard link.
pub const TYPE_LINK: u8 = b'1';
/// Symbolic link.
pub const TYPE_SYMLINK: u8 = b'2';
/// Character device.
pub const TYPE_CHAR: u8 = b'3';
/// Block device.
pub const TYPE_BLOCK: u8 = b'4';
/// Directory.
pub const TYPE_DIR: u8 = b'5';
/// FIFO.
pub const TYPE_FIFO: u8 = b'6';
/// A PAX global header, which Go's reader returns as an entry of its own.
pub const TYPE_GLOBAL_PAX: u8 = b'g';

/// A point in time as tar stores it: seconds since the epoch and nanoseconds (PAX times).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TarTime {
    /// Whole seconds since 1970-01-01T00:00:00Z (may be negative).
    pub secs: i64,
    /// Nanoseconds within the second, 0..1e9.
    pub nanos: u32,
}

impl TarTime {
    fn from_secs(secs: i64) -> TarTime {
        TarTime { secs, nanos: 0 }
    }
}

/// One tar entry's header as Go's `archive/tar` reads it, after PAX records and GNU long names
/// have been applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// The type flag byte (`'0'`, `'5'`, ...).
    pub typeflag: u8,
    /// The path, as bytes (tar names need not be UTF-8).
    pub name: Vec<u8>,
    /// The link target of hard and symbolic links.
    pub linkname: Vec<u8>,
    /// The size the header declares.
    pub size: i64,
    /// The mode field, as stored.
    pub mode: i64,
    /// Owner.
    pub uid: i64,
    /// Group.
    pub gid: i64,
    /// Modification time.
    pub mtime: TarTime,
    /// Access time, when the header carries one.
    pub atime: Option<TarTime>,
    /// Status-change time, when the header carries one.
    pub ctime: Option<TarTime>,
    /// Device major number.
    pub devmajor: i64,
    /// Device minor number.
    pub devminor: i64,
    /// Extended attributes from `SCHILY.xattr.*` PAX records (values are raw bytes).
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// How many payload bytes follow the header (0 for header-only types).
    pub payload_len: u64,
}

impl TarEntry {
    /// The name for messages (lossy UTF-8).
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// What is wrong with a tar stream, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {offset} of the tar stream{entry}", entry = match .entry { Some(e) => format!(" (entry {e:?})"), None => String::new() })]
pub struct TarError {
    /// Offset in the uncompressed tar where the problem was found.
    pub offset: u64,
    /// The entry being read, when known.
    pub entry: Option<String>,
    /// What is wrong.
    pub what: TarProblem,
}

/// The kinds of [`TarError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TarProblem {
    /// A header block whose checksum does not match: not a tar stream, or corrupt.
    Checksum,
    /// A numeric header field that is not a number.
    Number(&'static str),
    /// A malformed PAX extended header.
    Pax,
    /// PAX or GNU long-name data over the 1 MiB limit.
    SpecialTooLarge(u64),
    /// A zero block followed by a non-zero one.
    ZeroThenData,
    /// The stream ended inside a header, payload or padding.
    Truncated,
    /// A negative size.
    NegativeSize,
    /// A GNU sparse file, which layers do not use and ferry does not read.
    Sparse,
    /// Two entries for the same path (tar-split, like containers/storage, refuses them).
    DuplicatePath,
    /// An entry type zstd:chunked cannot describe (only files, links, directories, devices
    /// and FIFOs can be).
    UnsupportedType(u8),
    /// A time outside the years 0..=9999, which the TOC's RFC 3339 times (Go's) cannot hold.
    TimeOutOfRange(i64),
    /// A consumer of the stream failed (the IO error's text).
    Sink(String),
}

impl fmt::Display for TarProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TarProblem::Checksum => f.write_str("tar header checksum mismatch (not a tar stream, or corrupt)"),
            TarProblem::Number(field) => write!(f, "invalid number in the tar header's {field} field"),
            TarProblem::Pax => f.write_str("malformed PAX extended header"),
            TarProblem::SpecialTooLarge(n) => write!(f, "PAX or GNU long-name data of {n} bytes is over the 1 MiB limit"),
            TarProblem::ZeroThenData => f.write_str("a zero block is followed by a non-zero block"),
            TarProblem::Truncated => f.write_str("the tar stream ends in the middle of an entry"),
            TarProblem::NegativeSize => f.write_str("negative entry size"),
            TarProblem::Sparse => f.write_str("GNU sparse files are not supported in layers"),
            TarProblem::DuplicatePath => f.write_str("a second entry for the same path (tar-split and containers/storage refuse duplicate paths)"),
            TarProblem::UnsupportedType(t) => write!(f, "entry type {:?} cannot be described in a zstd:chunked table of contents", char::from(*t)),
            TarProblem::TimeOutOfRange(t) => write!(f, "time {t} (seconds since 1970) is outside the years 0 to 9999 that a zstd:chunked TOC can hold"),
            TarProblem::Sink(e) => f.write_str(e),
        }
    }
}

/// Receives a tar stream's parts in order. Every byte fed to the scanner reaches the sink
/// exactly once, through `raw` or `payload`.
pub(crate) trait TarSink {
    /// Bytes that are not file contents: headers, PAX/GNU data, padding, end blocks, trailing data.
    fn raw(&mut self, bytes: &[u8]) -> Result<(), TarProblem>;
    /// A complete entry header; its raw bytes have all been delivered before this call.
    fn entry(&mut self, entry: &TarEntry) -> Result<(), TarProblem>;
    /// File contents of the current entry.
    fn payload(&mut self, bytes: &[u8]) -> Result<(), TarProblem>;
    /// The current entry's payload is complete (its padding follows as raw bytes).
    fn entry_end(&mut self) -> Result<(), TarProblem>;
    /// The end-of-archive marker has been read (or the stream ended on a block boundary); all
    /// further bytes are trailing raw data.
    fn end_of_archive(&mut self) -> Result<(), TarProblem>;
}

/// PAX records as (key, value) bytes, in order.
type PaxRecords = Vec<(Vec<u8>, Vec<u8>)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    Pax,
    GlobalPax,
    LongName,
    LongLink,
}

#[derive(Debug)]
enum State {
    /// Collecting a header block.
    Header,
    /// One zero block seen; collecting the next.
    SecondZero,
    /// Collecting PAX or GNU long-name data.
    Special {
        kind: Special,
        remaining: u64,
        header: Box<TarEntry>,
    },
    /// File contents.
    Payload { remaining: u64 },
    /// Padding to the block boundary.
    Padding { remaining: u64 },
    /// After the end of the archive.
    Trailing,
}

/// The scanner. Feed it with [`TarScanner::feed`], then call [`TarScanner::finish`] at EOF.
pub(crate) struct TarScanner {
    state: State,
    block: [u8; BLOCK],
    fill: usize,
    special: Vec<u8>,
    pax: Option<PaxRecords>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    offset: u64,
    current: Option<String>,
    /// Padding owed after the current entry's payload.
    pending_pad: u64,
}

impl TarScanner {
    pub(crate) fn new() -> TarScanner {
        TarScanner {
            state: State::Header,
            block: [0; BLOCK],
            fill: 0,
            special: Vec::new(),
            pax: None,
            long_name: None,
            long_link: None,
            offset: 0,
            current: None,
            pending_pad: 0,
        }
    }

    /// Bytes consumed so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    fn err(&self, what: TarProblem) -> TarError {
        TarError {
            offset: self.offset,
            entry: self.current.clone(),
            what,
        }
    }

    /// Feeds the next bytes of the stream.
    pub(crate) fn feed(
        &mut self,
        mut data: &[u8],
        sink: &mut impl TarSink,
    ) -> Result<(), TarError> {
        while !data.is_empty() {
            let used = self.step(data, sink)?;
            self.offset += used as u64;
            data = data.get(used..).unwrap_or_default();
        }
        Ok(())
    }

    /// Ends the stream: an error when it stopped inside an entry.
    pub(crate) fn finish(&mut self, sink: &mut impl TarSink) -> Result<(), TarError> {
        match self.state {
            State::Header | State::SecondZero if self.fill == 0 => {
                self.state = State::Trailing;
                sink.end_of_archive().map_err(|e| self.err(e))
            }
            State::Trailing => Ok(()),
            _ => Err(self.err(TarProblem::Truncated)),
        }
    }

    /// Consumes a prefix of `data`; returns how many bytes.
    fn step(&mut self, data: &[u8], sink: &mut impl TarSink) -> Result<usize, TarError> {
        match &mut self.state {
            State::Payload { remaining } => {
                let n = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                *remaining -= n as u64;
                let done = *remaining == 0;
                let chunk = data.get(..n).unwrap_or_default();
                sink.payload(chunk).map_err(|e| self.err(e))?;
                if done {
                    self.entry_done(sink)?;
                }
                Ok(n)
            }
            State::Padding { remaining } => {
                let n = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.state = State::Header;
                }
                sink.raw(data.get(..n).unwrap_or_default())
                    .map_err(|e| self.err(e))?;
                Ok(n)
            }
            State::Trailing => {
                sink.raw(data).map_err(|e| self.err(e))?;
                Ok(data.len())
            }
            State::Special { remaining, .. } => {
                let n = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                *remaining -= n as u64;
                let done = *remaining == 0;
                let chunk = data.get(..n).unwrap_or_default();
                self.special.extend_from_slice(chunk);
                sink.raw(chunk).map_err(|e| self.err(e))?;
                if done {
                    self.special_done(sink)?;
                }
                Ok(n)
            }
            State::Header | State::SecondZero => {
                let want = BLOCK - self.fill;
                let n = want.min(data.len());
                let chunk = data.get(..n).unwrap_or_default();
                if let Some(dst) = self.block.get_mut(self.fill..self.fill + n) {
                    dst.copy_from_slice(chunk);
                }
                self.fill += n;
                sink.raw(chunk).map_err(|e| self.err(e))?;
                if self.fill == BLOCK {
                    self.fill = 0;
                    // The offset of the block's end, for messages about it.
                    self.offset += n as u64;
                    let r = self.block_done(sink);
                    self.offset -= n as u64;
                    r?;
                }
                Ok(n)
            }
        }
    }

    fn block_done(&mut self, sink: &mut impl TarSink) -> Result<(), TarError> {
        let zero = self.block.iter().all(|&b| b == 0);
        if matches!(self.state, State::SecondZero) {
            if !zero {
                return Err(self.err(TarProblem::ZeroThenData));
            }
            self.state = State::Trailing;
            return sink.end_of_archive().map_err(|e| self.err(e));
        }
        if zero {
            self.state = State::SecondZero;
            return Ok(());
        }
        let mut hdr = parse_header(&self.block).map_err(|e| self.err(e))?;
        match hdr.typeflag {
            b'x' | b'g' | b'L' | b'K' => {
                let kind = match hdr.typeflag {
                    b'x' => Special::Pax,
                    b'g' => Special::GlobalPax,
                    b'L' => Special::LongName,
                    _ => Special::LongLink,
                };
                if hdr.size < 0 {
                    return Err(self.err(TarProblem::NegativeSize));
                }
                let size = hdr.size as u64;
                if size > MAX_SPECIAL {
                    return Err(self.err(TarProblem::SpecialTooLarge(size)));
                }
                self.special.clear();
                if size == 0 {
                    self.state = State::Special {
                        kind,
                        remaining: 0,
                        header: Box::new(hdr),
                    };
                    return self.special_done(sink);
                }
                self.state = State::Special {
                    kind,
                    remaining: size,
                    header: Box::new(hdr),
                };
                Ok(())
            }
            _ => {
                if let Some(pax) = self.pax.take() {
                    merge_pax(&mut hdr, &pax).map_err(|e| self.err(e))?;
                }
                if let Some(n) = self.long_name.take() {
                    hdr.name = n;
                }
                if let Some(l) = self.long_link.take() {
                    hdr.linkname = l;
                }
                if hdr.typeflag == 0 {
                    hdr.typeflag = if hdr.name.ends_with(b"/") {
                        TYPE_DIR
                    } else {
                        TYPE_REG
                    };
                }
                if hdr.typeflag == b'S' {
                    self.current = Some(hdr.display_name());
                    return Err(self.err(TarProblem::Sparse));
                }
                self.start_entry(hdr, sink)
            }
        }
    }

    fn start_entry(&mut self, mut hdr: TarEntry, sink: &mut impl TarSink) -> Result<(), TarError> {
        self.current = Some(hdr.display_name());
        if hdr.size < 0 {
            return Err(self.err(TarProblem::NegativeSize));
        }
        hdr.payload_len = if header_only(hdr.typeflag) {
            0
        } else {
            hdr.size as u64
        };
        sink.entry(&hdr).map_err(|e| self.err(e))?;
        if hdr.payload_len == 0 {
            self.entry_done(sink)
        } else {
            self.state = State::Payload {
                remaining: hdr.payload_len,
            };
            // Remember the padding for when the payload ends.
            self.pending_pad = padding(hdr.payload_len);
            Ok(())
        }
    }

    fn entry_done(&mut self, sink: &mut impl TarSink) -> Result<(), TarError> {
        sink.entry_end().map_err(|e| self.err(e))?;
        let pad = std::mem::take(&mut self.pending_pad);
        self.state = if pad == 0 {
            State::Header
        } else {
            State::Padding { remaining: pad }
        };
        Ok(())
    }

    fn special_done(&mut self, sink: &mut impl TarSink) -> Result<(), TarError> {
        let State::Special { kind, header, .. } = std::mem::replace(&mut self.state, State::Header)
        else {
            return Ok(());
        };
        let data = std::mem::take(&mut self.special);
        let size = data.len() as u64;
        match kind {
            Special::LongName => self.long_name = Some(c_string(&data).to_vec()),
            Special::LongLink => self.long_link = Some(c_string(&data).to_vec()),
            Special::Pax | Special::GlobalPax => {
                let records = parse_pax(&data).map_err(|e| self.err(e))?;
                if records.iter().any(|(k, _)| k.starts_with(b"GNU.sparse.")) {
                    return Err(self.err(TarProblem::Sparse));
                }
                if kind == Special::GlobalPax {
                    // Go's reader returns a global header as an entry of its own: name and
                    // records only, no size, and its data already consumed as raw bytes.
                    let mut hdr = *header;
                    merge_pax(&mut hdr, &records).map_err(|e| self.err(e))?;
                    let entry = TarEntry {
                        typeflag: TYPE_GLOBAL_PAX,
                        name: hdr.name,
                        linkname: Vec::new(),
                        size: 0,
                        mode: 0,
                        uid: 0,
                        gid: 0,
                        mtime: TarTime::from_secs(0),
                        atime: None,
                        ctime: None,
                        devmajor: 0,
                        devminor: 0,
                        xattrs: hdr.xattrs,
                        payload_len: 0,
                    };
                    self.pending_pad = padding(size);
                    self.current = Some(entry.display_name());
                    sink.entry(&entry).map_err(|e| self.err(e))?;
                    return self.entry_done(sink);
                }
                self.pax = Some(records);
            }
        }
        let pad = padding(size);
        if pad > 0 {
            self.state = State::Padding { remaining: pad };
        }
        Ok(())
    }
}

fn padding(len: u64) -> u64 {
    (BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64
}

/// Go's `isHeaderOnlyType`: these types never have payload, whatever their size field says.
fn header_only(t: u8) -> bool {
    matches!(
        t,
        TYPE_LINK | TYPE_SYMLINK | TYPE_CHAR | TYPE_BLOCK | TYPE_DIR | TYPE_FIFO
    )
}

/// The bytes up to the first NUL (Go's `parseString`).
fn c_string(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => b.get(..i).unwrap_or_default(),
        None => b,
    }
}

fn field(block: &[u8; BLOCK], start: usize, len: usize) -> &[u8] {
    block.get(start..start + len).unwrap_or_default()
}

/// Go's `parseOctal`: spaces and NULs trimmed at both ends, then up to the first NUL.
fn parse_octal(b: &[u8]) -> Option<i64> {
    let trimmed = {
        let s = b
            .iter()
            .position(|&c| c != b' ' && c != 0)
            .unwrap_or(b.len());
        let e = b
            .iter()
            .rposition(|&c| c != b' ' && c != 0)
            .map_or(s, |i| i + 1);
        b.get(s..e).unwrap_or_default()
    };
    let digits = c_string(trimmed);
    if digits.is_empty() {
        return Some(0);
    }
    let mut x: u64 = 0;
    for &c in digits {
        if !(b'0'..=b'7').contains(&c) {
            return None;
        }
        x = x.checked_mul(8)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(x as i64)
}

/// Go's `parseNumeric`: base-256 (GNU) when the high bit is set, octal otherwise.
fn parse_numeric(b: &[u8]) -> Option<i64> {
    let first = *b.first()?;
    if first & 0x80 == 0 {
        return parse_octal(b);
    }
    let inv: u8 = if first & 0x40 != 0 { 0xff } else { 0 };
    let mut x: u64 = 0;
    for (i, &c) in b.iter().enumerate() {
        let mut c = c ^ inv;
        if i == 0 {
            c &= 0x7f;
        }
        if x >> 56 > 0 {
            return None;
        }
        x = (x << 8) | u64::from(c);
    }
    if x >> 63 > 0 {
        return None;
    }
    Some(if inv == 0xff { !(x as i64) } else { x as i64 })
}

fn numeric(
    block: &[u8; BLOCK],
    start: usize,
    len: usize,
    name: &'static str,
) -> Result<i64, TarProblem> {
    parse_numeric(field(block, start, len)).ok_or(TarProblem::Number(name))
}

#[derive(PartialEq, Eq)]
enum Format {
    V7,
    Ustar,
    Star,
    Gnu,
}

/// Parses one header block as Go's `Reader.readHeader` does.
fn parse_header(block: &[u8; BLOCK]) -> Result<TarEntry, TarProblem> {
    let stored = parse_octal(field(block, 148, 8)).ok_or(TarProblem::Checksum)?;
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    if stored != unsigned && stored != signed {
        return Err(TarProblem::Checksum);
    }
    let magic = field(block, 257, 6);
    let version = field(block, 263, 2);
    let trailer = field(block, 508, 4);
    let format = if magic == b"ustar\0" && trailer == b"tar\0" {
        Format::Star
    } else if magic == b"ustar\0" {
        Format::Ustar
    } else if magic == b"ustar " && version == b" \0" {
        Format::Gnu
    } else {
        Format::V7
    };
    let mut hdr = TarEntry {
        typeflag: block.get(156).copied().unwrap_or(0),
        name: c_string(field(block, 0, 100)).to_vec(),
        linkname: c_string(field(block, 157, 100)).to_vec(),
        size: numeric(block, 124, 12, "size")?,
        mode: numeric(block, 100, 8, "mode")?,
        uid: numeric(block, 108, 8, "uid")?,
        gid: numeric(block, 116, 8, "gid")?,
        mtime: TarTime::from_secs(numeric(block, 136, 12, "mtime")?),
        atime: None,
        ctime: None,
        devmajor: 0,
        devminor: 0,
        xattrs: BTreeMap::new(),
        payload_len: 0,
    };
    if format != Format::V7 {
        hdr.devmajor = numeric(block, 329, 8, "devmajor")?;
        hdr.devminor = numeric(block, 337, 8, "devminor")?;
        let prefix: Vec<u8> = match format {
            Format::Ustar => c_string(field(block, 345, 155)).to_vec(),
            Format::Star => {
                hdr.atime = Some(TarTime::from_secs(numeric(block, 476, 12, "atime")?));
                hdr.ctime = Some(TarTime::from_secs(numeric(block, 488, 12, "ctime")?));
                c_string(field(block, 345, 131)).to_vec()
            }
            _ => {
                let a = field(block, 345, 12);
                let c = field(block, 357, 12);
                let pa = if a.first() != Some(&0) {
                    Some(parse_numeric(a))
                } else {
                    None
                };
                let pc = if c.first() != Some(&0) {
                    Some(parse_numeric(c))
                } else {
                    None
                };
                if pa == Some(None) || pc == Some(None) {
                    // Go's fallback for files from pre-1.8 Go writers: the fields are a
                    // USTAR prefix, used when it is ASCII.
                    let p = c_string(field(block, 345, 155));
                    if p.iter().all(|&c| c < 0x80 && c != 0) {
                        p.to_vec()
                    } else {
                        Vec::new()
                    }
                } else {
                    hdr.atime = pa.flatten().map(TarTime::from_secs);
                    hdr.ctime = pc.flatten().map(TarTime::from_secs);
                    Vec::new()
                }
            }
        };
        if !prefix.is_empty() {
            let mut name = prefix;
            name.push(b'/');
            name.extend_from_slice(&hdr.name);
            hdr.name = name;
        }
    }
    Ok(hdr)
}

/// Parses PAX records (`"%d %s=%s\n"`), as Go's `parsePAX` and `parsePAXRecord` do.
fn parse_pax(mut s: &[u8]) -> Result<PaxRecords, TarProblem> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let sp = s.iter().position(|&c| c == b' ').ok_or(TarProblem::Pax)?;
        let n: usize = std::str::from_utf8(s.get(..sp).unwrap_or_default())
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or(TarProblem::Pax)?;
        if n < 5 || n > s.len() || sp + 1 > n - 1 {
            return Err(TarProblem::Pax);
        }
        let rec = s.get(sp + 1..n - 1).ok_or(TarProblem::Pax)?;
        if s.get(n - 1) != Some(&b'\n') {
            return Err(TarProblem::Pax);
        }
        let eq = rec.iter().position(|&c| c == b'=').ok_or(TarProblem::Pax)?;
        let (k, v) = (
            rec.get(..eq).unwrap_or_default(),
            rec.get(eq + 1..).unwrap_or_default(),
        );
        let nul_checked: &[u8] = match k {
            b"path" | b"linkpath" | b"uname" | b"gname" => v,
            _ => k,
        };
        if k.is_empty() || nul_checked.contains(&0) {
            return Err(TarProblem::Pax);
        }
        out.push((k.to_vec(), v.to_vec()));
        s = s.get(n..).unwrap_or_default();
    }
    Ok(out)
}

fn pax_int(v: &[u8]) -> Result<i64, TarProblem> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or(TarProblem::Pax)
}

/// Go's `parsePAXTime`: `[-]seconds[.fraction]`, the fraction cut to nanoseconds.
fn pax_time(v: &[u8]) -> Result<TarTime, TarProblem> {
    let (ss, sn) = match v.iter().position(|&c| c == b'.') {
        Some(i) => (
            v.get(..i).unwrap_or_default(),
            v.get(i + 1..).unwrap_or_default(),
        ),
        None => (v, &b""[..]),
    };
    let secs = pax_int(ss)?;
    if sn.is_empty() {
        return Ok(TarTime::from_secs(secs));
    }
    if !sn.iter().all(u8::is_ascii_digit) {
        return Err(TarProblem::Pax);
    }
    let mut nanos: i64 = 0;
    for i in 0..9 {
        nanos = nanos * 10 + sn.get(i).map_or(0, |&c| i64::from(c - b'0'));
    }
    if ss.first() == Some(&b'-') && nanos > 0 {
        return Ok(TarTime {
            secs: secs - 1,
            nanos: (1_000_000_000 - nanos) as u32,
        });
    }
    Ok(TarTime {
        secs,
        nanos: nanos as u32,
    })
}

/// Go's `mergePAX`: empty values keep the header's value; xattrs are taken from every
/// `SCHILY.xattr.` record (containers/storage reads them from the records, empty ones included).
fn merge_pax(hdr: &mut TarEntry, records: &PaxRecords) -> Result<(), TarProblem> {
    for (k, v) in records {
        if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
            hdr.xattrs.insert(name.to_vec(), v.clone());
            continue;
        }
        if v.is_empty() {
            continue;
        }
        match k.as_slice() {
            b"path" => hdr.name = v.clone(),
            b"linkpath" => hdr.linkname = v.clone(),
            b"uid" => hdr.uid = pax_int(v)?,
            b"gid" => hdr.gid = pax_int(v)?,
            b"size" => hdr.size = pax_int(v)?,
            b"mtime" => hdr.mtime = pax_time(v)?,
            b"atime" => hdr.atime = Some(pax_time(v)?),
            b"ctime" => hdr.ctime = Some(pax_time(v)?),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Record {
        raw: Vec<u8>,
        payload: Vec<u8>,
        entries: Vec<TarEntry>,
        ends: usize,
        eoa: bool,
    }

    impl TarSink for Record {
        fn raw(&mut self, b: &[u8]) -> Result<(), TarProblem> {
            self.raw.extend_from_slice(b);
            Ok(())
        }
        fn entry(&mut self, e: &TarEntry) -> Result<(), TarProblem> {
            self.entries.push(e.clone());
            Ok(())
        }
        fn payload(&mut self, b: &[u8]) -> Result<(), TarProblem> {
            self.payload.extend_from_slice(b);
            Ok(())
        }
        fn entry_end(&mut self) -> Result<(), TarProblem> {
            self.ends += 1;
            Ok(())
        }
        fn end_of_archive(&mut self) -> Result<(), TarProblem> {
            self.eoa = true;
            Ok(())
        }
    }

    fn sample() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "a/very/".repeat(30) + "long.txt", &b"hello"[..])
            .unwrap();
        b.append_pax_extensions([
            ("SCHILY.xattr.user.k", &b"v\0x"[..]),
            ("mtime", b"1700000000.25"),
        ])
        .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        b.append_data(&mut h, "dir/", &b""[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn every_byte_is_accounted_for_in_any_feed_size() {
        let data = sample();
        for step in [1, 7, 511, 512, 513, 4096, data.len()] {
            let mut s = TarScanner::new();
            let mut r = Record::default();
            for c in data.chunks(step) {
                s.feed(c, &mut r).unwrap();
            }
            s.finish(&mut r).unwrap();
            assert_eq!(r.raw.len() + r.payload.len(), data.len(), "step {step}");
            assert_eq!(r.payload, b"hello");
            assert_eq!(r.entries.len(), 2);
            assert_eq!(r.ends, 2);
            assert!(r.eoa);
            let e = &r.entries[0];
            assert_eq!(e.name, ("a/very/".repeat(30) + "long.txt").as_bytes());
            assert_eq!(e.mode, 0o644);
            let d = &r.entries[1];
            assert_eq!(d.name, b"dir/");
            assert_eq!(d.typeflag, TYPE_DIR);
            assert_eq!(
                d.xattrs.get(&b"user.k"[..]).map(Vec::as_slice),
                Some(&b"v\0x"[..])
            );
            assert_eq!(
                d.mtime,
                TarTime {
                    secs: 1_700_000_000,
                    nanos: 250_000_000
                }
            );
        }
    }

    #[test]
    fn truncation_and_garbage_are_errors() {
        let data = sample();
        let mut s = TarScanner::new();
        let mut r = Record::default();
        s.feed(&data[..700], &mut r).unwrap();
        assert_eq!(s.finish(&mut r).unwrap_err().what, TarProblem::Truncated);

        let mut s = TarScanner::new();
        let e = s.feed(&[7u8; 512], &mut Record::default()).unwrap_err();
        assert_eq!(e.what, TarProblem::Checksum);
    }

    #[test]
    fn numbers_parse_as_go_does() {
        assert_eq!(parse_octal(b" 0000644\0"), Some(0o644));
        assert_eq!(parse_octal(b"\0\0\0"), Some(0));
        assert_eq!(parse_octal(b"+644"), None);
        assert_eq!(parse_numeric(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0]), Some(256));
        assert_eq!(parse_numeric(&[0xff; 8]), Some(-1));
        assert_eq!(
            pax_time(b"-1.5").unwrap(),
            TarTime {
                secs: -2,
                nanos: 500_000_000
            }
        );
        assert_eq!(
            pax_time(b"12.1234567891").unwrap(),
            TarTime {
                secs: 12,
                nanos: 123_456_789
            }
        );
        assert!(parse_pax(b"6 k=v\n").is_ok());
        assert!(parse_pax(b"7 k=v\n").is_err());
    }
}
