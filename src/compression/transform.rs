//! One layer through decompress → (verify diff_id) → compress, reporting the digest and size of
//! the output and of the uncompressed tar, computed while the bytes pass. The blocking form
//! ([`transform`]) takes a `Read` and a `Write`; the async form ([`transform_stream`]) runs it
//! in `spawn_blocking` between two bounded channels, so a tokio pipeline can put it between a
//! source's blob stream and a destination's upload.
//!
//! When the input is compressed, decompression (and the diff_id hash) runs in a second thread
//! handing bounded buffers to the compressor, so both cores work on a recompression.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read, Write};
use std::sync::mpsc;

use bytes::{Buf as _, Bytes};
use futures::StreamExt as _;

use super::CompressionError;
use super::codec::{LayerCompressor, LayerDecoder};
use super::format::{Compression, OutputFormat, OutputSpec};
use super::tar::TarError;
use crate::digest::{Algorithm, ByteStream, Digest, Digester};

/// Size of the buffers handed between threads and sent on the output channel.
const BUF: usize = 256 * 1024;
/// Buffers in flight between the decompressing and the compressing thread, and on each
/// channel of [`transform_stream`]: memory is bounded by a few MiB per layer.
const IN_FLIGHT: usize = 4;

/// What to do with one layer.
#[derive(Debug, Clone)]
pub struct Transform {
    /// The output's format, level and threads (`Uncompressed` only decompresses).
    pub output: OutputSpec,
    /// The diff_id the image config lists for this layer; the transform fails when the
    /// uncompressed tar does not hash to it.
    pub expected_diff_id: Option<Digest>,
    /// The layer's media type, a hint only: the bytes decide (see `open_layer`).
    pub media_type: Option<String>,
    /// How messages name the layer (its digest, usually).
    pub layer: String,
}

impl Transform {
    /// A transform of `layer` to `output`, checking nothing.
    pub fn new(layer: impl Into<String>, output: OutputSpec) -> Transform {
        Transform {
            output,
            expected_diff_id: None,
            media_type: None,
            layer: layer.into(),
        }
    }

    /// Checks the uncompressed tar against `diff_id`.
    pub fn expect_diff_id(mut self, diff_id: Digest) -> Transform {
        self.expected_diff_id = Some(diff_id);
        self
    }
}

/// What a transform produced: everything a manifest and config need for the new layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerReport {
    /// The compression the input had.
    pub input_compression: Compression,
    /// The format written.
    pub output: OutputFormat,
    /// Digest of the bytes written (the new layer descriptor's digest).
    pub digest: Digest,
    /// Bytes written (the descriptor's size).
    pub size: u64,
    /// Digest of the uncompressed tar (the config's diff_id).
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar.
    pub uncompressed_size: u64,
    /// Annotations the layer descriptor must carry (zstd:chunked's; empty otherwise).
    pub annotations: BTreeMap<String, String>,
}

/// Hashes and counts what passes to the inner writer.
struct HashingWriter<W: Write> {
    inner: W,
    digester: Digester,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digester.update(buf.get(..n).unwrap_or_default());
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads until `buf` is full or EOF.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(buf.get_mut(n..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn read_error(t: &Transform, compression: Compression, source: io::Error) -> CompressionError {
    if source.kind() == io::ErrorKind::Unsupported {
        return CompressionError::Unsupported {
            layer: t.layer.clone(),
            compression,
        };
    }
    CompressionError::Read {
        layer: t.layer.clone(),
        compression,
        source,
    }
}

fn write_error(t: &Transform, source: io::Error) -> CompressionError {
    match source.downcast::<TarError>() {
        Ok(tar) => CompressionError::Tar {
            layer: t.layer.clone(),
            source: tar,
        },
        Err(source) => CompressionError::Write {
            layer: t.layer.clone(),
            format: t.output.format,
            source,
        },
    }
}

/// Decompresses `input` (whatever its compression), checks the diff_id if one is expected,
/// and writes it to `output` in the requested format. On error, what was written to `output`
/// must be discarded.
pub fn transform<R: Read + Send, W: Write>(
    input: R,
    output: W,
    t: &Transform,
) -> Result<LayerReport, CompressionError> {
    // Reads of a whole buffer (the uncompressed path's) bypass the BufReader's own buffer.
    transform_buffered(io::BufReader::with_capacity(64 * 1024, input), output, t)
}

/// [`transform`] over a buffered input: the decoder reads the input's own buffers, so a
/// channel of chunks ([`transform_stream`]) is decompressed without copying it first.
fn transform_buffered<R: BufRead + Send, W: Write>(
    mut input: R,
    output: W,
    t: &Transform,
) -> Result<LayerReport, CompressionError> {
    let mut head = [0u8; 6];
    let n = fill(&mut input, &mut head).map_err(|e| read_error(t, Compression::Uncompressed, e))?;
    let head = head.get(..n).unwrap_or_default().to_vec();
    let compression = Compression::sniff(&head);
    let mut decoder = LayerDecoder::new(compression, Read::chain(io::Cursor::new(head), input))
        .map_err(|e| read_error(t, compression, e))?;
    let algorithm = t
        .expected_diff_id
        .as_ref()
        .map_or(Algorithm::Sha256, Digest::algorithm);
    let out = HashingWriter {
        inner: output,
        digester: Digester::new(Algorithm::Sha256),
        size: 0,
    };
    let mut compressor = LayerCompressor::new(out, &t.output).map_err(|e| write_error(t, e))?;

    let (diff_id, uncompressed_size) = if compression == Compression::Uncompressed {
        let mut hasher = Digester::new(algorithm);
        let mut size = 0u64;
        let mut buf = vec![0u8; BUF];
        loop {
            let k = fill(&mut decoder, &mut buf).map_err(|e| read_error(t, compression, e))?;
            if k == 0 {
                break;
            }
            let data = buf.get(..k).unwrap_or_default();
            hasher.update(data);
            size += k as u64;
            compressor.write_all(data).map_err(|e| write_error(t, e))?;
        }
        (hasher.finish(), size)
    } else {
        // Decompress and hash in a second thread; compress here. The buffers go round: full
        // ones to the compressor, empty ones back, so none is allocated (or zeroed) per read.
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
            let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
            for _ in 0..IN_FLIGHT + 2 {
                let _ = free_tx.send(vec![0u8; BUF]);
            }
            let producer = s.spawn(move || -> io::Result<(Digest, u64)> {
                let mut hasher = Digester::new(algorithm);
                let mut size = 0u64;
                // No buffer back: the compressing side stopped, and its error is the one to
                // report.
                while let Ok(mut buf) = free_rx.recv() {
                    buf.resize(BUF, 0);
                    let k = fill(&mut decoder, &mut buf)?;
                    if k == 0 {
                        break;
                    }
                    buf.truncate(k);
                    hasher.update(&buf);
                    size += k as u64;
                    if tx.send(buf).is_err() {
                        break;
                    }
                }
                Ok((hasher.finish(), size))
            });
            let mut written = Ok(());
            for buf in rx.iter() {
                if let Err(e) = compressor.write_all(&buf) {
                    written = Err(e);
                    break;
                }
                let _ = free_tx.send(buf);
            }
            drop(free_tx);
            drop(rx);
            let produced = producer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the decompressing thread panicked")));
            written.map_err(|e| write_error(t, e))?;
            produced.map_err(|e| read_error(t, compression, e))
        })?
    };

    if let Some(expected) = &t.expected_diff_id
        && *expected != diff_id
    {
        return Err(CompressionError::DiffIdMismatch {
            layer: t.layer.clone(),
            expected: expected.clone(),
            actual: diff_id,
        });
    }
    let (mut out, chunked) = compressor.finish().map_err(|e| write_error(t, e))?;
    out.flush().map_err(|e| write_error(t, e))?;
    Ok(LayerReport {
        input_compression: compression,
        output: t.output.format,
        digest: out.digester.finish(),
        size: out.size,
        diff_id,
        uncompressed_size,
        annotations: chunked.map(|c| c.annotations).unwrap_or_default(),
    })
}

/// A blocking reader over a bounded channel of stream items; as a `BufRead`, the items are
/// its buffers (a decoder reads them in place).
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl BufRead for ChannelReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, n: usize) {
        self.current.advance(n.min(self.current.len()));
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let data = self.fill_buf()?;
        let n = buf.len().min(data.len());
        buf.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(data.get(..n).unwrap_or_default());
        self.consume(n);
        Ok(n)
    }
}

/// Feeds `input` into a bounded channel from a task of its own, and gives the blocking reader
/// of that channel.
fn channel_reader(mut input: ByteStream) -> ChannelReader {
    let (in_tx, in_rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(IN_FLIGHT);
    tokio::spawn(async move {
        while let Some(item) = input.next().await {
            let failed = item.is_err();
            if in_tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    ChannelReader {
        rx: in_rx,
        current: Bytes::new(),
    }
}

/// A blocking `Write` that sends full buffers on a bounded channel.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(BUF));
        self.tx
            .blocking_send(Ok(Bytes::from(full)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the layer's reader went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = (BUF - self.buf.len()).min(data.len());
        self.buf
            .extend_from_slice(data.get(..n).unwrap_or_default());
        if self.buf.len() >= BUF {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// [`transform`] for async code: returns the output as a byte stream and a handle on the
/// report. The work runs in `spawn_blocking`, reading `input` and feeding the output through
/// bounded channels. If the transform fails, the stream's last item is an error (so a consumer
/// never mistakes a cut stream for a whole layer) and the handle gives the typed error. The
/// consumer must read the stream to its end before the handle completes.
pub fn transform_stream(
    input: ByteStream,
    t: Transform,
) -> (
    ByteStream,
    tokio::task::JoinHandle<Result<LayerReport, CompressionError>>,
) {
    let reader = channel_reader(input);
    let (out_tx, out_rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(IN_FLIGHT);
    let handle = tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter {
            tx: out_tx.clone(),
            buf: Vec::with_capacity(BUF),
        };
        let result = transform_buffered(reader, &mut writer, &t);
        if let Err(e) = &result {
            let _ = out_tx.blocking_send(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                e.to_string(),
            )));
        }
        result
    });
    let stream = futures::stream::unfold(out_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (Box::pin(stream), handle)
}

/// [`transform`] for async code writing to a blocking `Write` (a spool file): the output is
/// written from the blocking thread that compresses it, with no channel and no copy between
/// them. Returns the writer with the report; on error, what it holds must be discarded.
pub fn transform_stream_into<W: Write + Send + 'static>(
    input: ByteStream,
    t: Transform,
    mut output: W,
) -> tokio::task::JoinHandle<Result<(LayerReport, W), CompressionError>> {
    let reader = channel_reader(input);
    tokio::task::spawn_blocking(move || {
        let report = transform_buffered(reader, &mut output, &t)?;
        Ok((report, output))
    })
}
