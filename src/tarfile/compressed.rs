//! Archives compressed as a whole (`docker save | gzip > x.tar.gz`, `.tar.xz`, `.tar.zst`), which
//! `docker load`, podman and skopeo all accept: detected by their magic bytes, never by the file
//! name.
//!
//! A compressed stream cannot be read in place, so such an archive is decompressed **once**, into
//! an anonymous temporary file (unlinked at creation, so the kernel frees it when the archive is
//! closed, even if ferry is killed), which is then indexed and read in place like any tar. What
//! that costs: one sequential read of the compressed file, the CPU of one decompression (gzip
//! through zlib-rs runs at a few hundred MB/s per core; xz is several times slower), one
//! sequential write, and disk space in the temporary directory (`/var/tmp` by default) equal to
//! the uncompressed archive for as long as it is open. It is paid when the archive is opened,
//! before the first blob is read. containers/image does the same for docker archives and extracts oci-archives whole.
//! The decoders are well-kept crates: flate2 (zlib-rs backend, multi-member gzip like `gzip -d`),
//! liblzma (multi-stream xz) and zstd (multi-frame).

use std::io::{Read, Write};
use std::path::Path;

use super::error::ArchiveError;

/// A whole-archive (or whole-entry) compression format ferry reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// gzip (`1f 8b`).
    Gzip,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

impl Compression {
    /// The format's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }
}

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sniffed {
    /// Not compressed (or not a format with a magic number: a plain tar).
    Plain,
    /// Compressed in a format ferry reads.
    Compressed(Compression),
    /// bzip2 (`BZh`), which containers/image reads and ferry does not.
    Bzip2,
}

/// How many leading bytes [`sniff`] looks at.
pub const SNIFF_LEN: usize = 6;

/// Recognises a compression format by its magic bytes.
pub fn sniff(prefix: &[u8]) -> Sniffed {
    if prefix.starts_with(&[0x1f, 0x8b]) {
        Sniffed::Compressed(Compression::Gzip)
    } else if prefix.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Sniffed::Compressed(Compression::Xz)
    } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Sniffed::Compressed(Compression::Zstd)
    } else if prefix.starts_with(b"BZh") {
        Sniffed::Bzip2
    } else {
        Sniffed::Plain
    }
}

/// A reader that decompresses `inner`. Blocking.
pub fn decoder<'a, R: Read + Send + 'a>(
    c: Compression,
    inner: R,
) -> std::io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match c {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
            std::io::BufReader::with_capacity(256 * 1024, inner),
        )),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(
            std::io::BufReader::with_capacity(256 * 1024, inner),
        )),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(inner)?),
    })
}

/// Decompresses the file `src` (named `archive` in errors) into a new anonymous temporary file in
/// `temp_dir`, returning it. Blocking: run it in `spawn_blocking`.
pub fn decompress_to_temp(
    src: std::fs::File,
    c: Compression,
    archive: &Path,
    temp_dir: &Path,
) -> Result<std::fs::File, ArchiveError> {
    let mut out = tempfile::tempfile_in(temp_dir).map_err(|e| {
        ArchiveError::io(
            archive,
            format!(
                "creating a temporary file in {} to decompress the {}-compressed archive into",
                temp_dir.display(),
                c.name()
            ),
            e,
        )
    })?;
    let decompress_err = |source| ArchiveError::Decompress {
        archive: archive.to_path_buf(),
        entry: None,
        format: c.name(),
        source,
    };
    let mut reader = decoder(c, src).map_err(decompress_err)?;
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(decompress_err(e)),
        };
        out.write_all(buf.get(..n).unwrap_or_default())
            .map_err(|e| {
                ArchiveError::io(
                    archive,
                    format!(
                        "writing the decompressed archive to a temporary file in {} (is it full?)",
                        temp_dir.display()
                    ),
                    e,
                )
            })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_magic_bytes() {
        assert_eq!(
            sniff(&[0x1f, 0x8b, 8, 0]),
            Sniffed::Compressed(Compression::Gzip)
        );
        assert_eq!(
            sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            Sniffed::Compressed(Compression::Xz)
        );
        assert_eq!(
            sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Sniffed::Compressed(Compression::Zstd)
        );
        assert_eq!(sniff(b"BZh91AY"), Sniffed::Bzip2);
        assert_eq!(sniff(b"manifest.json\0"), Sniffed::Plain);
        assert_eq!(sniff(b""), Sniffed::Plain);
    }

    #[test]
    fn decompresses_each_format() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        let xz = {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        let zst = zstd::encode_all(&data[..], 1).unwrap();
        for (c, bytes) in [
            (Compression::Gzip, gz),
            (Compression::Xz, xz),
            (Compression::Zstd, zst),
        ] {
            assert_eq!(sniff(&bytes), Sniffed::Compressed(c));
            let mut src = tempfile::tempfile().unwrap();
            src.write_all(&bytes).unwrap();
            use std::io::Seek;
            src.rewind().unwrap();
            let mut out =
                decompress_to_temp(src, c, Path::new("x"), &std::env::temp_dir()).unwrap();
            out.rewind().unwrap();
            let mut back = Vec::new();
            out.read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "{c:?}");
        }
        // A truncated stream is an error naming the format.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&data).unwrap();
        let gz = e.finish().unwrap();
        let mut src = tempfile::tempfile().unwrap();
        src.write_all(&gz[..gz.len() / 2]).unwrap();
        use std::io::Seek;
        src.rewind().unwrap();
        let err = decompress_to_temp(
            src,
            Compression::Gzip,
            Path::new("x.tar.gz"),
            &std::env::temp_dir(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("gzip"), "{err}");
    }
}
