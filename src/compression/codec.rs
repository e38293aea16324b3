//! Streaming decompressors and compressors: a decompressing reader for a layer (chosen by its
//! first bytes, its media type only as a hint), a compressing writer for each output format,
//! and a reader that checks the uncompressed digest (the diff_id) at the end of the stream.
//! Memory stays bounded by the codecs' windows and a few buffers, whatever the layer's size.

use std::io::{self, BufRead, Read, Write};

use super::CompressionError;
use super::chunked::{ChunkedSummary, ChunkedWriter};
use super::format::{Compression, OutputFormat, OutputSpec};
use crate::digest::{Digest, Digester};

/// A reader that decompresses `r`, which is compressed with `compression`. gzip streams of
/// several members and zstd streams of several frames (skippable ones included, as in
/// zstd:chunked) are read whole.
pub fn decompressing_reader<'a, R: Read + Send + 'a>(
    r: R,
    compression: Compression,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Compression::Uncompressed => Box::new(r),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::with_capacity(64 * 1024, r),
        )),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        Compression::Bzip2 | Compression::Xz => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{compression} layers are not supported: ferry reads gzip and zstd"),
            ));
        }
    })
}

/// A stream whose first bytes were read ahead to sniff its compression, then the rest.
pub type Sniffed<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// Reads up to 6 bytes of `r` (fewer only at its end, whatever its chunking), tells the
/// compression their magic shows, and gives them back in front of the rest.
pub fn sniff_reader<R: Read>(mut r: R) -> io::Result<(Compression, Sniffed<R>)> {
    let mut head = [0u8; 6];
    let mut n = 0;
    while n < head.len() {
        match r.read(head.get_mut(n..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = head.get(..n).unwrap_or_default().to_vec();
    Ok((Compression::sniff(&head), io::Cursor::new(head).chain(r)))
}

/// A streaming decoder over a buffered reader of compressed bytes, which gives the reader back
/// ([`LayerDecoder::into_inner`]) so a caller can drain and hash what the decoder did not need.
pub enum LayerDecoder<R: BufRead> {
    /// No compression.
    Plain(R),
    /// gzip, every member.
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
    /// zstd, every frame; libzstd's default window cap (128 MiB) stays, so a frame asking for
    /// more is an error, not a large allocation.
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

impl<R: BufRead> LayerDecoder<R> {
    /// A decoder for `compression`; bzip2 and xz are an [`io::ErrorKind::Unsupported`] error.
    pub fn new(compression: Compression, r: R) -> io::Result<LayerDecoder<R>> {
        Ok(match compression {
            Compression::Uncompressed => LayerDecoder::Plain(r),
            Compression::Gzip => {
                LayerDecoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(r)))
            }
            Compression::Zstd => LayerDecoder::Zstd(zstd::stream::read::Decoder::with_buffer(r)?),
            Compression::Bzip2 | Compression::Xz => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("{compression} layers are not supported: ferry reads gzip and zstd"),
                ));
            }
        })
    }

    /// The compressed reader back.
    pub fn into_inner(self) -> R {
        match self {
            LayerDecoder::Plain(r) => r,
            LayerDecoder::Gzip(d) => d.into_inner(),
            LayerDecoder::Zstd(d) => d.finish(),
        }
    }
}

impl<R: BufRead> Read for LayerDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            LayerDecoder::Plain(r) => r.read(buf),
            LayerDecoder::Gzip(d) => d.read(buf),
            LayerDecoder::Zstd(d) => d.read(buf),
        }
    }
}

/// Opens a layer for reading its tar: the first bytes decide the compression (as
/// containers/image decides), `media_type` is only compared with them for a debug message.
/// Returns the compression found and a reader of the uncompressed tar.
pub fn open_layer<'a, R: Read + Send + 'a>(
    r: R,
    media_type: Option<&str>,
) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let (found, r) = sniff_reader(r)?;
    if let Some(declared) = media_type.and_then(Compression::from_media_type)
        && declared != found
    {
        tracing::debug!(
            media_type,
            %found,
            "layer media type and contents disagree on the compression; going by the contents"
        );
    }
    let reader = decompressing_reader(r, found)?;
    Ok((found, reader))
}

/// Decompresses a layer (by its magic, as [`open_layer`]) and fails at the end of the stream
/// unless the tar's digest is `diff_id`. The error names `layer`. The unpack step reads
/// through this so a layer that is not the one the config lists is never committed.
pub fn verified_layer_reader<'a, R: Read + Send + 'a>(
    r: R,
    media_type: Option<&str>,
    diff_id: Digest,
    layer: impl Into<String>,
) -> io::Result<DiffIdReader<Box<dyn Read + Send + 'a>>> {
    let (_, reader) = open_layer(r, media_type)?;
    Ok(DiffIdReader::new(reader, Some(diff_id), layer.into()))
}

/// Passes an uncompressed layer through, hashing it; at EOF, an error (an
/// [`io::ErrorKind::InvalidData`] wrapping [`CompressionError::DiffIdMismatch`]) when an
/// expected diff_id was given and does not match.
pub struct DiffIdReader<R: Read> {
    inner: R,
    digester: Option<Digester>,
    expected: Option<Digest>,
    actual: Option<Digest>,
    size: u64,
    layer: String,
}

impl<R: Read> DiffIdReader<R> {
    /// Wraps `inner` (an uncompressed tar); `expected` is checked at EOF.
    pub fn new(inner: R, expected: Option<Digest>, layer: String) -> DiffIdReader<R> {
        let algorithm = expected
            .as_ref()
            .map_or(crate::digest::Algorithm::Sha256, Digest::algorithm);
        DiffIdReader {
            inner,
            digester: Some(Digester::new(algorithm)),
            expected,
            actual: None,
            size: 0,
            layer,
        }
    }

    /// The digest and size of everything read, once the stream was read to its end.
    pub fn diff_id(&self) -> Option<(&Digest, u64)> {
        self.actual.as_ref().map(|d| (d, self.size))
    }
}

impl<R: Read> Read for DiffIdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some(d) = self.digester.as_mut() {
                d.update(buf.get(..n).unwrap_or_default());
            }
            self.size += n as u64;
            return Ok(n);
        }
        if let Some(d) = self.digester.take() {
            let actual = d.finish();
            self.actual = Some(actual.clone());
            if let Some(expected) = &self.expected
                && *expected != actual
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    CompressionError::DiffIdMismatch {
                        layer: self.layer.clone(),
                        expected: expected.clone(),
                        actual,
                    },
                ));
            }
        }
        Ok(0)
    }
}

enum Inner<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Chunked(Box<ChunkedWriter<W>>),
}

/// A `Write` that compresses an uncompressed layer tar into `W` as an [`OutputSpec`] says.
/// Write the whole tar, then call [`LayerCompressor::finish`].
pub struct LayerCompressor<W: Write> {
    inner: Inner<W>,
}

impl<W: Write> LayerCompressor<W> {
    /// A compressor writing to `out`.
    pub fn new(out: W, spec: &OutputSpec) -> io::Result<LayerCompressor<W>> {
        let level = spec.effective_level();
        let inner = match spec.format {
            OutputFormat::Uncompressed => Inner::Plain(out),
            OutputFormat::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(level.clamp(0, 9) as u32),
            )),
            OutputFormat::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, level)?;
                enc.include_checksum(true)?;
                if spec.threads > 0 {
                    enc.multithread(spec.threads)?;
                }
                Inner::Zstd(enc)
            }
            OutputFormat::ZstdChunked => Inner::Chunked(Box::new(ChunkedWriter::new(out, level)?)),
        };
        Ok(LayerCompressor { inner })
    }

    /// Ends the compressed stream; returns the writer and, for zstd:chunked, its summary
    /// (annotations). A malformed tar given to zstd:chunked is an [`io::ErrorKind::InvalidData`]
    /// error wrapping a [`super::TarError`].
    pub fn finish(self) -> io::Result<(W, Option<ChunkedSummary>)> {
        match self.inner {
            Inner::Plain(mut w) => {
                w.flush()?;
                Ok((w, None))
            }
            Inner::Gzip(g) => {
                let mut w = g.finish()?;
                w.flush()?;
                Ok((w, None))
            }
            Inner::Zstd(z) => {
                let mut w = z.finish()?;
                w.flush()?;
                Ok((w, None))
            }
            Inner::Chunked(c) => {
                let (w, s) = c
                    .finish()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                Ok((w, Some(s)))
            }
        }
    }
}

impl<W: Write> Write for LayerCompressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(w) => w.write(buf),
            Inner::Gzip(w) => w.write(buf),
            Inner::Zstd(w) => w.write(buf),
            Inner::Chunked(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(w) => w.write_all(buf),
            Inner::Gzip(w) => w.write_all(buf),
            Inner::Zstd(w) => w.write_all(buf),
            Inner::Chunked(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(w) => w.flush(),
            Inner::Gzip(w) => w.flush(),
            Inner::Zstd(w) => w.flush(),
            Inner::Chunked(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(format: OutputFormat) {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut c = LayerCompressor::new(Vec::new(), &OutputSpec::new(format)).unwrap();
        c.write_all(&data).unwrap();
        let (blob, _) = c.finish().unwrap();
        let (found, mut r) = open_layer(&blob[..], None).unwrap();
        assert_eq!(found, format.compression());
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn gzip_zstd_and_plain_round_trip() {
        roundtrip(OutputFormat::Gzip);
        roundtrip(OutputFormat::Zstd);
        roundtrip(OutputFormat::Uncompressed);
    }

    #[test]
    fn a_wrong_diff_id_fails_naming_the_layer() {
        let wrong = Digest::sha256_of(b"other");
        let mut r =
            verified_layer_reader(&b"not really a tar"[..], None, wrong.clone(), "sha256:abc")
                .unwrap();
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("sha256:abc") && msg.contains(&wrong.to_string()),
            "{msg}"
        );

        let right = Digest::sha256_of(b"not really a tar");
        let mut r = verified_layer_reader(&b"not really a tar"[..], None, right, "l").unwrap();
        r.read_to_end(&mut Vec::new()).unwrap();
    }

    #[test]
    fn the_decoder_gives_the_compressed_reader_back_to_drain() {
        struct Count<'a>(&'a [u8], usize);
        impl Read for Count<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.read(buf)?;
                self.1 += n;
                Ok(n)
            }
        }
        for format in [
            OutputFormat::Gzip,
            OutputFormat::Zstd,
            OutputFormat::Uncompressed,
        ] {
            let data: Vec<u8> = (0..100_000u32).map(|i| (i % 13) as u8).collect();
            let mut c = LayerCompressor::new(Vec::new(), &OutputSpec::new(format)).unwrap();
            c.write_all(&data).unwrap();
            let (blob, _) = c.finish().unwrap();
            let (found, r) = sniff_reader(Count(&blob, 0)).unwrap();
            assert_eq!(found, format.compression());
            let mut d = LayerDecoder::new(found, io::BufReader::with_capacity(16, r)).unwrap();
            let mut first = [0u8; 10];
            d.read_exact(&mut first).unwrap();
            assert_eq!(&first[..], &data[..10]);
            // A tar reader stops at the end blocks; the rest of the blob is drained from here.
            let mut inner = d.into_inner();
            io::copy(&mut inner, &mut io::sink()).unwrap();
            let (_, count) = inner.into_inner().into_inner();
            assert_eq!(count.1, blob.len(), "{format}");
        }
    }

    #[test]
    fn bzip2_is_named_not_misread() {
        let err = open_layer(&b"BZh91AY&SY"[..], None).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(err.to_string().contains("bzip2"));
    }
}
