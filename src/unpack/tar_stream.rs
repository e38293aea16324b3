//! Tar framing for layers: 512-byte headers, PAX extended headers, GNU long names, data and
//! padding, read as a stream. The `tar` crate parses each header's fields; this file owns the IO
//! because the crate's `Archive` reads PAX records and GNU long names of any declared size
//! whole into memory (a hostile layer could declare gigabytes), and because the applier wants the
//! entry's data as a plain `Read` with no second buffer.
//!
//! What Go's archive/tar (umoci's reader) does, this does: header-only types (links,
//! directories, devices, FIFOs) carry no data whatever their size field says; a stream that ends
//! at a header boundary without the two zero blocks ends the archive; global PAX headers are
//! skipped.

use std::io::{self, BufRead, Read};

use tar::{EntryType, Header, PaxExtensions};

/// The most bytes a PAX record set or a GNU long name may have. Real ones are a few hundred
/// bytes (a 4096-byte path, a handful of xattrs); this bounds memory against a hostile header.
const MAX_EXTENSION: u64 = 1024 * 1024;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
    /// Any other type flag (GNU sparse, multi-volume, unknown).
    Other(u8),
}

/// One entry's header, with its PAX and GNU extensions applied.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) kind: Kind,
    pub(crate) name: Vec<u8>,
    pub(crate) link: Vec<u8>,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    /// Seconds and nanoseconds since the epoch.
    pub(crate) mtime: (i64, u32),
    pub(crate) size: u64,
    pub(crate) dev_major: u32,
    pub(crate) dev_minor: u32,
    /// `SCHILY.xattr.NAME` records: (NAME, value).
    pub(crate) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A tar stream read entry by entry.
pub(crate) struct TarStream<R> {
    r: R,
    /// Data bytes of the current entry not yet read.
    remaining: u64,
    /// Padding after the current entry's data.
    pad: u64,
    done: bool,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl<R: BufRead> TarStream<R> {
    pub(crate) fn new(r: R) -> Self {
        TarStream {
            r,
            remaining: 0,
            pad: 0,
            done: false,
        }
    }

    /// The reader after the archive, to drain what follows the end-of-archive blocks.
    pub(crate) fn into_inner(self) -> R {
        self.r
    }

    /// Skips `n` bytes; an early end is an error (the stream is truncated).
    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        while n > 0 {
            let buf = self.r.fill_buf()?;
            if buf.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the tar stream ends inside an entry",
                ));
            }
            let take = (buf.len() as u64).min(n);
            // take <= buf.len(), which is a usize.
            self.r.consume(take as usize);
            n -= take;
        }
        Ok(())
    }

    /// Reads one 512-byte block; `None` when the stream ends exactly before it.
    fn block(&mut self) -> io::Result<Option<[u8; 512]>> {
        let mut b = [0u8; 512];
        let mut got = 0;
        while got < b.len() {
            let n = self.r.read(b.get_mut(got..).unwrap_or(&mut []))?;
            if n == 0 {
                if got == 0 {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the tar stream ends inside a header",
                ));
            }
            got += n;
        }
        Ok(Some(b))
    }

    /// Reads an extension's body (PAX records or a GNU long name), capped.
    fn extension(&mut self, header: &Header) -> io::Result<Vec<u8>> {
        let size = header.entry_size()?;
        if size > MAX_EXTENSION {
            return Err(invalid(format!(
                "a tar extension header declares {size} bytes (more than {MAX_EXTENSION})"
            )));
        }
        let mut v = Vec::with_capacity(size as usize);
        (&mut self.r).take(size).read_to_end(&mut v)?;
        if (v.len() as u64) < size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the tar stream ends inside an extension header",
            ));
        }
        self.skip(padding(size))?;
        Ok(v)
    }

    /// The next entry, or `None` at the end of the archive. Unread data of the previous entry
    /// is skipped.
    pub(crate) fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        if self.done {
            return Ok(None);
        }
        let left = self.remaining + self.pad;
        self.remaining = 0;
        self.pad = 0;
        self.skip(left)?;

        let mut pax: Option<Vec<u8>> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let Some(block) = self.block()? else {
                self.done = true;
                return Ok(None);
            };
            if block.iter().all(|b| *b == 0) {
                self.done = true;
                return Ok(None);
            }
            let header = Header::from_byte_slice(&block);
            check_sum(&block, header)?;
            let flag = header.entry_type();
            match flag {
                EntryType::XHeader => {
                    if pax.is_some() {
                        return Err(invalid("two PAX headers for one entry"));
                    }
                    pax = Some(self.extension(header)?);
                    continue;
                }
                EntryType::XGlobalHeader => {
                    self.extension(header)?;
                    continue;
                }
                EntryType::GNULongName => {
                    long_name = Some(trim_nul(self.extension(header)?));
                    continue;
                }
                EntryType::GNULongLink => {
                    long_link = Some(trim_nul(self.extension(header)?));
                    continue;
                }
                _ => {}
            }
            let entry = build(header, flag, pax.as_deref(), long_name, long_link)?;
            let data = match entry.kind {
                Kind::File | Kind::Other(_) => entry.size,
                _ => 0,
            };
            self.remaining = data;
            self.pad = padding(data);
            return Ok(Some(entry));
        }
    }
}

impl<R: BufRead> Read for TarStream<R> {
    /// Reads the current entry's data; 0 at its end.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.remaining) as usize;
        let n = self.r.read(buf.get_mut(..want).unwrap_or(&mut []))?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the tar stream ends inside a file's data",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn padding(size: u64) -> u64 {
    (512 - size % 512) % 512
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// Checks the header checksum (unsigned sum, or the signed sum old tars wrote).
fn check_sum(block: &[u8; 512], header: &Header) -> io::Result<()> {
    let stored = header.cksum()?;
    let (mut unsigned, mut signed) = (0u32, 0i32);
    for (i, b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += u32::from(b);
        signed += i32::from(b as i8);
    }
    if stored == unsigned || i64::from(stored) == i64::from(signed) {
        Ok(())
    } else {
        Err(invalid(
            "a tar header's checksum does not match (not a tar stream, or corrupt)",
        ))
    }
}

/// A numeric field that is all NULs or spaces is 0, as Go's archive/tar (umoci's reader) reads
/// it; some writers leave unused fields empty.
fn lenient<T: Default>(parsed: io::Result<T>, raw: &[u8]) -> io::Result<T> {
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(T::default()),
        Err(e) => Err(e),
    }
}

/// PAX `mtime`: seconds with an optional fraction, possibly negative.
fn pax_time(v: &str) -> Option<(i64, u32)> {
    let (secs, frac) = match v.split_once('.') {
        Some((s, f)) => (s, f),
        None => (v, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: u32 = 0;
    let mut digits = 0;
    for c in frac.chars() {
        let d = c.to_digit(10)?;
        if digits < 9 {
            nanos = nanos * 10 + d;
            digits += 1;
        }
    }
    while digits < 9 && !frac.is_empty() {
        nanos *= 10;
        digits += 1;
    }
    Some((secs, nanos))
}

fn build(
    header: &Header,
    flag: EntryType,
    pax: Option<&[u8]>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
) -> io::Result<Entry> {
    let kind = match flag {
        EntryType::Regular | EntryType::Continuous => Kind::File,
        EntryType::Directory => Kind::Dir,
        EntryType::Symlink => Kind::Symlink,
        EntryType::Link => Kind::Hardlink,
        EntryType::Char => Kind::Char,
        EntryType::Block => Kind::Block,
        EntryType::Fifo => Kind::Fifo,
        other => Kind::Other(other.as_byte()),
    };
    let old = header.as_old();
    let mut e = Entry {
        kind,
        name: long_name.unwrap_or_else(|| header.path_bytes().into_owned()),
        link: long_link
            .or_else(|| header.link_name_bytes().map(|l| l.into_owned()))
            .unwrap_or_default(),
        mode: lenient(header.mode(), &old.mode)?,
        uid: lenient(header.uid(), &old.uid)?,
        gid: lenient(header.gid(), &old.gid)?,
        mtime: (
            i64::try_from(lenient(header.mtime(), &old.mtime)?).unwrap_or(0),
            0,
        ),
        size: header.entry_size()?,
        dev_major: 0,
        dev_minor: 0,
        xattrs: Vec::new(),
    };
    if matches!(kind, Kind::Char | Kind::Block) {
        e.dev_major = header.device_major()?.unwrap_or(0);
        e.dev_minor = header.device_minor()?.unwrap_or(0);
    }
    // Old tars mark directories by a trailing slash on a regular entry.
    if kind == Kind::File && header.as_ustar().is_none() && e.name.ends_with(b"/") {
        e.kind = Kind::Dir;
    }
    if let Some(pax) = pax {
        for rec in PaxExtensions::new(pax) {
            let rec = rec.map_err(|_| invalid("a PAX record is malformed"))?;
            let key = rec.key_bytes();
            let value = rec.value_bytes();
            let num = |what: &str| -> io::Result<u64> {
                rec.value()
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| invalid(format!("PAX {what} is not a number")))
            };
            match key {
                b"path" => e.name = value.to_vec(),
                b"linkpath" => e.link = value.to_vec(),
                b"size" => e.size = num("size")?,
                b"uid" => e.uid = num("uid")?,
                b"gid" => e.gid = num("gid")?,
                b"mtime" => {
                    e.mtime = rec
                        .value()
                        .ok()
                        .and_then(pax_time)
                        .ok_or_else(|| invalid("PAX mtime is not a time"))?;
                }
                _ => {
                    if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                        e.xattrs.push((name.to_vec(), value.to_vec()));
                    } else if key.starts_with(b"GNU.sparse.") {
                        // A PAX-format sparse file: its data is a map, not the file.
                        e.kind = Kind::Other(b'S');
                    }
                }
            }
        }
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    }

    #[test]
    fn reads_entries_long_names_and_pax() {
        let long = format!("{}/f", "d".repeat(300));
        let bytes = archive(|b| {
            file(b, "a.txt", b"hello");
            file(b, &long, b"x");
            let mut h = Header::new_ustar();
            h.set_entry_type(EntryType::Regular);
            h.set_size(2);
            h.set_mode(0o4755);
            b.append_pax_extensions([
                ("SCHILY.xattr.user.k", b"v\0w".as_slice()),
                ("mtime", b"1700000000.5".as_slice()),
            ])
            .unwrap();
            b.append_data(&mut h, "x", &b"hi"[..]).unwrap();
        });
        let mut t = TarStream::new(io::BufReader::new(&bytes[..]));
        let e = t.next_entry().unwrap().unwrap();
        assert_eq!(
            (e.kind, e.name.as_slice(), e.size),
            (Kind::File, &b"a.txt"[..], 5)
        );
        let mut s = String::new();
        t.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        let e = t.next_entry().unwrap().unwrap();
        assert_eq!(e.name, long.as_bytes());
        let e = t.next_entry().unwrap().unwrap();
        assert_eq!(e.mode & 0o7777, 0o4755);
        assert_eq!(e.xattrs, vec![(b"user.k".to_vec(), b"v\0w".to_vec())]);
        assert_eq!(e.mtime, (1_700_000_000, 500_000_000));
        assert!(t.next_entry().unwrap().is_none());
    }

    #[test]
    fn refuses_huge_extension_and_bad_checksum_and_truncation() {
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::XHeader);
        h.set_size(MAX_EXTENSION + 1);
        h.set_path("pax").unwrap();
        h.set_cksum();
        let mut bytes = h.as_bytes().to_vec();
        bytes.resize(4096, 0);
        let e = TarStream::new(&bytes[..]).next_entry().unwrap_err();
        assert!(e.to_string().contains("extension header declares"), "{e}");

        let mut bytes = archive(|b| file(b, "a", b"abc"));
        bytes[0] ^= 1;
        let e = TarStream::new(&bytes[..]).next_entry().unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");

        let bytes = archive(|b| file(b, "a", &[7u8; 2000]));
        let cut = &bytes[..1000];
        let mut t = TarStream::new(cut);
        t.next_entry().unwrap().unwrap();
        let e = io::copy(&mut t, &mut io::sink()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn pax_times() {
        assert_eq!(pax_time("12"), Some((12, 0)));
        assert_eq!(pax_time("12.25"), Some((12, 250_000_000)));
        assert_eq!(pax_time("-1.5"), Some((-1, 500_000_000)));
        assert_eq!(pax_time("x"), None);
    }
}
