//! The 512-byte tar header block, decoded and encoded by hand: ustar, old-GNU and PAX (POSIX.1-2001)
//! headers, numbers in octal or GNU base-256, and PAX records.
//!
//! ferry owns this instead of using the `tar` crate because the archive readers need what that
//! crate's sequential `Archive` does not give with precise errors: every header's byte offset (to
//! say where a hostile or truncated archive goes wrong) and each entry's data offset (to read a
//! blob in place, with pread, while other blobs are read concurrently). The codec is small, pure
//! and unit-tested; the IO is in `index.rs` and `writer.rs`.

/// The size of a tar block.
pub const BLOCK: u64 = 512;

/// `size` rounded up to a whole number of blocks.
pub fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK).saturating_mul(BLOCK)
}

/// Byte ranges of the header fields (POSIX ustar; GNU shares the first 345 bytes).
mod field {
    use std::ops::Range;
    pub const NAME: Range<usize> = 0..100;
    pub const MODE: Range<usize> = 100..108;
    pub const UID: Range<usize> = 108..116;
    pub const GID: Range<usize> = 116..124;
    pub const SIZE: Range<usize> = 124..136;
    pub const MTIME: Range<usize> = 136..148;
    pub const CHKSUM: Range<usize> = 148..156;
    pub const TYPEFLAG: usize = 156;
    pub const LINKNAME: Range<usize> = 157..257;
    pub const MAGIC: Range<usize> = 257..263;
    pub const VERSION: Range<usize> = 263..265;
    pub const PREFIX: Range<usize> = 345..500;
}

/// What a header block says, before PAX or GNU long-name records are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHeader {
    /// The name (with the ustar prefix joined in front when there is one), raw bytes.
    pub name: Vec<u8>,
    /// The link target, raw bytes.
    pub linkname: Vec<u8>,
    /// The type flag byte.
    pub typeflag: u8,
    /// The size field.
    pub size: u64,
}

/// The bytes of `block[range]`, or nothing (the ranges are constants inside 512 bytes, so
/// the fallback never happens; it only keeps the code free of panicking slices).
fn get(block: &[u8; 512], range: std::ops::Range<usize>) -> &[u8] {
    block.get(range).unwrap_or(&[])
}

/// A field's bytes up to the first NUL.
fn cstr(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => bytes.get(..end).unwrap_or(bytes),
        None => bytes,
    }
}

/// Whether the block is all zeroes (the end-of-archive marker is two of them).
pub fn is_zero(block: &[u8; 512]) -> bool {
    block.iter().all(|&b| b == 0)
}

/// Parses a numeric field: octal digits (with leading spaces and NUL or space terminators), or
/// GNU base-256 when the high bit of the first byte is set.
pub fn parse_number(bytes: &[u8]) -> Result<u64, String> {
    if let Some((&first, rest)) = bytes.split_first()
        && first & 0x80 != 0
    {
        if first & 0x40 != 0 {
            return Err("has a negative base-256 number".into());
        }
        let mut v: u64 = u64::from(first & 0x3f);
        for &b in rest {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or("has a base-256 number larger than 64 bits")?;
        }
        return Ok(v);
    }
    let trimmed: Vec<u8> = bytes
        .iter()
        .copied()
        .skip_while(|&b| b == b' ' || b == 0)
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    let mut v: u64 = 0;
    for b in trimmed {
        if !(b'0'..=b'7').contains(&b) {
            return Err(format!(
                "has a numeric field that is not octal: {:?}",
                String::from_utf8_lossy(bytes)
            ));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or("has an octal number larger than 64 bits")?;
    }
    Ok(v)
}

/// Decodes a header block (which is not all zeroes), checking its checksum.
pub fn decode(block: &[u8; 512]) -> Result<RawHeader, String> {
    let stored = parse_number(get(block, field::CHKSUM))?;
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if field::CHKSUM.contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
        return Err(format!(
            "has a bad checksum (stored {stored}, computed {unsigned}); this is not a tar header, or the archive is corrupt"
        ));
    }
    let size = parse_number(get(block, field::SIZE))?;
    let magic = get(block, field::MAGIC);
    let version = get(block, field::VERSION);
    let mut name = cstr(get(block, field::NAME)).to_vec();
    // Only POSIX ustar has a prefix field; old GNU keeps access times in those bytes.
    if magic == b"ustar\0" && version == b"00" {
        let prefix = cstr(get(block, field::PREFIX));
        if !prefix.is_empty() {
            let mut joined = prefix.to_vec();
            joined.push(b'/');
            joined.extend_from_slice(&name);
            name = joined;
        }
    }
    Ok(RawHeader {
        name,
        linkname: cstr(get(block, field::LINKNAME)).to_vec(),
        typeflag: block.get(field::TYPEFLAG).copied().unwrap_or(0),
        size,
    })
}

/// What a PAX extended header says about the next entry (the keys ferry needs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pax {
    /// `path`.
    pub path: Option<Vec<u8>>,
    /// `linkpath`.
    pub linkpath: Option<Vec<u8>>,
    /// `size`.
    pub size: Option<u64>,
}

/// Parses PAX records (`LEN KEY=VALUE\n`, LEN counting the whole record).
pub fn parse_pax(mut data: &[u8]) -> Result<Pax, String> {
    let mut pax = Pax::default();
    while !data.is_empty() {
        // Some writers pad the record area with NULs.
        if data.iter().all(|&b| b == 0) {
            break;
        }
        let space = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or("has a PAX record without a length")?;
        let len: usize = std::str::from_utf8(data.get(..space).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("has a PAX record with a bad length")?;
        let record = data
            .get(..len)
            .filter(|r| len > space + 1 && r.last() == Some(&b'\n'))
            .ok_or("has a PAX record whose length does not match its text")?;
        let body = record.get(space + 1..len - 1).unwrap_or_default();
        let eq = body
            .iter()
            .position(|&b| b == b'=')
            .ok_or("has a PAX record without '='")?;
        let key = body.get(..eq).unwrap_or_default();
        let value = body.get(eq + 1..).unwrap_or_default();
        match key {
            b"path" => pax.path = Some(value.to_vec()),
            b"linkpath" => pax.linkpath = Some(value.to_vec()),
            b"size" => {
                let size = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or("has a PAX size record that is not a number")?;
                pax.size = Some(size);
            }
            _ => {}
        }
        data = data.get(len..).unwrap_or_default();
    }
    Ok(pax)
}

/// Encodes one PAX record; its length prefix counts itself.
pub fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while body + len.to_string().len() != len {
        len = body + len.to_string().len();
    }
    format!("{len} {key}={value}\n").into_bytes()
}

/// Typeflags ferry writes.
pub mod kind {
    /// A regular file.
    pub const FILE: u8 = b'0';
    /// A symbolic link.
    pub const SYMLINK: u8 = b'2';
    /// A directory.
    pub const DIRECTORY: u8 = b'5';
    /// A PAX extended header for the next entry.
    pub const PAX: u8 = b'x';
}

/// Writes `value` as a NUL-terminated octal number filling `out`, or as GNU base-256 when it
/// does not fit (only sizes of 8 GiB and more; PAX carries those too).
fn put_number(out: &mut [u8], value: u64) {
    let digits = out.len().saturating_sub(1);
    let octal = format!("{value:0digits$o}");
    if octal.len() <= digits {
        for (o, b) in out.iter_mut().zip(octal.bytes().chain(std::iter::once(0))) {
            *o = b;
        }
        return;
    }
    let n = out.len();
    for (i, o) in out.iter_mut().enumerate() {
        let shift = (n - 1 - i) * 8;
        *o = if shift >= 64 {
            0
        } else {
            (value >> shift) as u8
        };
    }
    if let Some(first) = out.first_mut() {
        *first |= 0x80;
    }
}

fn put(block: &mut [u8; 512], range: std::ops::Range<usize>, bytes: &[u8]) {
    if let Some(dst) = block.get_mut(range) {
        for (d, s) in dst.iter_mut().zip(bytes) {
            *d = *s;
        }
    }
}

/// Whether `name` fits a ustar header: returns (prefix, name) when it does.
pub fn split_ustar_name(name: &str) -> Option<(&str, &str)> {
    if name.len() <= 100 {
        return Some(("", name));
    }
    // Split at a '/' so that the prefix fits 155 bytes and the rest 100.
    name.char_indices()
        .filter(|&(i, c)| c == '/' && i <= 155 && name.len() - i - 1 <= 100 && i > 0)
        .map(|(i, _)| {
            (
                name.get(..i).unwrap_or_default(),
                name.get(i + 1..).unwrap_or_default(),
            )
        })
        .next()
}

/// Encodes a ustar header. `prefix` and `name` must fit (see [`split_ustar_name`]); a longer
/// name goes in a PAX record and a truncated one here.
pub fn encode(prefix: &str, name: &str, typeflag: u8, size: u64, linkname: &str) -> [u8; 512] {
    let mut block = [0u8; 512];
    put(&mut block, field::NAME, name.as_bytes());
    let mode = if typeflag == kind::DIRECTORY {
        0o755
    } else {
        0o644
    };
    put_number(block.get_mut(field::MODE).unwrap_or_default(), mode);
    put_number(block.get_mut(field::UID).unwrap_or_default(), 0);
    put_number(block.get_mut(field::GID).unwrap_or_default(), 0);
    put_number(block.get_mut(field::SIZE).unwrap_or_default(), size);
    // mtime 0, as containers/image writes docker archives: the same content gives the same bytes.
    put_number(block.get_mut(field::MTIME).unwrap_or_default(), 0);
    if let Some(t) = block.get_mut(field::TYPEFLAG) {
        *t = typeflag;
    }
    put(&mut block, field::LINKNAME, linkname.as_bytes());
    put(&mut block, field::MAGIC, b"ustar\0");
    put(&mut block, field::VERSION, b"00");
    put(&mut block, field::PREFIX, prefix.as_bytes());
    put(&mut block, field::CHKSUM, b"        ");
    let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
    let chk = format!("{sum:06o}\0 ");
    put(&mut block, field::CHKSUM, chk.as_bytes());
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_octal_and_base256() {
        assert_eq!(parse_number(b"0000644\0").unwrap(), 0o644);
        assert_eq!(parse_number(b"   644 \0").unwrap(), 0o644);
        assert_eq!(parse_number(b"\0\0\0\0").unwrap(), 0);
        assert!(parse_number(b"0009\0").is_err());
        let mut f = [0u8; 12];
        put_number(&mut f, 9 << 30); // 9 GiB: more than 11 octal digits hold
        assert_eq!(f[0] & 0x80, 0x80);
        assert_eq!(parse_number(&f).unwrap(), 9 << 30);
        put_number(&mut f, 1234);
        assert_eq!(&f, b"00000002322\0");
        assert!(parse_number(&[0xff, 0xff]).is_err(), "negative");
    }

    #[test]
    fn encode_then_decode() {
        let b = encode("", "blobs/sha256/abc", kind::FILE, 5000, "");
        let h = decode(&b).unwrap();
        assert_eq!(h.name, b"blobs/sha256/abc");
        assert_eq!(h.size, 5000);
        assert_eq!(h.typeflag, b'0');
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let (p, n) = split_ustar_name(&long).unwrap();
        let h = decode(&encode(p, n, kind::FILE, 1, "")).unwrap();
        assert_eq!(h.name, long.as_bytes());
        assert!(split_ustar_name(&"x".repeat(300)).is_none());
        let l = decode(&encode("", "a/layer.tar", kind::SYMLINK, 0, "../b.tar")).unwrap();
        assert_eq!(l.linkname, b"../b.tar");
    }

    #[test]
    fn checksum_is_checked() {
        let mut b = encode("", "x", kind::FILE, 1, "");
        b[0] = b'y';
        assert!(decode(&b).unwrap_err().contains("checksum"));
    }

    #[test]
    fn pax_records() {
        let mut data = pax_record("path", &"p".repeat(200));
        data.extend(pax_record("size", "12345678901"));
        data.extend(pax_record("mtime", "1.5"));
        let pax = parse_pax(&data).unwrap();
        assert_eq!(pax.path.unwrap().len(), 200);
        assert_eq!(pax.size, Some(12_345_678_901));
        // The length prefix counts itself, including when adding it adds a digit.
        for n in 0..120 {
            let r = pax_record("k", &"v".repeat(n));
            let len: usize = std::str::from_utf8(&r[..r.iter().position(|&b| b == b' ').unwrap()])
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(len, r.len());
        }
        assert!(parse_pax(b"5 a=b\n").is_err(), "length disagrees");
        assert!(parse_pax(b"junk").is_err());
    }
}
