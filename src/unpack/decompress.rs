//! A layer's compression, from its media type or, for a generic one, from its first bytes; and
//! the streaming decoder for it. Kept in this one small file because the shared compression
//! module (src/compression/) will replace it.

use std::io::{self, BufRead, Chain, Cursor, Read};

use flate2::bufread::MultiGzDecoder;

/// How a layer's tar is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

/// What a media type says about compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Declared {
    /// The media type names the compression.
    Known(Compression),
    /// A generic type (`application/octet-stream`, none): read the magic.
    Sniff,
    /// Not a tar layer ferry knows.
    Unsupported,
}

/// The compression a layer media type declares (OCI image-spec `layer.md` and
/// `media-types.md`, and Docker's image manifest v2 schema 2).
pub(crate) fn declared(media_type: &str) -> Declared {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/x-tar" => Declared::Known(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            Declared::Known(Compression::Gzip)
        }
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
            Declared::Known(Compression::Zstd)
        }
        "" | "application/octet-stream" | "application/vnd.docker.image.rootfs.diff.tar" => {
            Declared::Sniff
        }
        _ => Declared::Unsupported,
    }
}

/// The compression whose magic starts `head` (gzip 1f 8b, zstd 28 b5 2f fd), else none.
pub(crate) fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// The magic's bytes read ahead, then the rest of the stream.
pub(crate) type Sniffed<R> = Chain<Cursor<Vec<u8>>, R>;

/// Reads up to 4 bytes (fewer only at the end of the stream) so the magic can be sniffed
/// whatever the reader's chunking, and gives them back in front of the rest.
pub(crate) fn read_head<R: BufRead>(mut r: R) -> io::Result<(Compression, Sniffed<R>)> {
    let mut head = Vec::with_capacity(4);
    let mut buf = [0u8; 4];
    while head.len() < 4 {
        let want = 4 - head.len();
        let n = r.read(buf.get_mut(..want).unwrap_or(&mut []))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(buf.get(..n).unwrap_or(&[]));
    }
    Ok((sniff(&head), Cursor::new(head).chain(r)))
}

/// A streaming decoder over a buffered reader of the compressed bytes.
pub(crate) enum Decoder<R: BufRead> {
    Plain(R),
    Gzip(Box<MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

impl<R: BufRead> Decoder<R> {
    /// A decoder for `compression`. zstd keeps its default window cap (128 MiB), so a frame
    /// asking for more is an error, not a large allocation.
    pub(crate) fn new(compression: Compression, r: R) -> io::Result<Decoder<R>> {
        Ok(match compression {
            Compression::None => Decoder::Plain(r),
            // Multi-member: pigz and some registries' recompressors write several gzip members.
            Compression::Gzip => Decoder::Gzip(Box::new(MultiGzDecoder::new(r))),
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(r)?),
        })
    }

    /// The compressed reader back, to drain what the decoder left (so the digest covers every
    /// byte of the blob).
    pub(crate) fn into_inner(self) -> R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Zstd(d) => d.finish(),
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn media_types_and_magic() {
        assert_eq!(
            declared("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Declared::Known(Compression::Gzip)
        );
        assert_eq!(
            declared("application/vnd.oci.image.layer.v1.tar+zstd"),
            Declared::Known(Compression::Zstd)
        );
        assert_eq!(
            declared("application/vnd.oci.image.layer.v1.tar"),
            Declared::Known(Compression::None)
        );
        assert_eq!(declared("application/octet-stream"), Declared::Sniff);
        assert_eq!(
            declared("application/vnd.oci.image.layer.v1.tar+bzip2"),
            Declared::Unsupported
        );
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(sniff(b"etc/"), Compression::None);
        assert_eq!(sniff(&[0x1f]), Compression::None);
    }

    /// A reader that gives one byte a call: the magic must still be seen.
    struct Trickle(Vec<u8>, usize);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.get(self.1), buf.first_mut()) {
                (Some(b), Some(slot)) => {
                    *slot = *b;
                    self.1 += 1;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn sniffs_gzip_through_a_trickle_and_decodes() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"hello layer").unwrap();
        let bytes = gz.finish().unwrap();
        let r = io::BufReader::with_capacity(1, Trickle(bytes, 0));
        let (c, rest) = read_head(r).unwrap();
        assert_eq!(c, Compression::Gzip);
        let mut out = String::new();
        Decoder::new(c, rest)
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello layer");
    }
}
