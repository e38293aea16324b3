//! A layer's tar going into the store and coming back out of it.
//!
//! In: the blob is decompressed on one thread while another applies the tar with ferry's safe
//! applier ([`crate::unpack::Rootfs`]: overlay whiteouts for the overlay driver, removals for
//! vfs) and, on the way, writes its tar-split (gzip-compressed, as containers/storage keeps it)
//! and learns its diff_id, size and owners. All of it lands in a staging directory beside the
//! store; [`super::store::Store::install_layer`] later moves it in under the store's lock.
//!
//! Out: the layer's exact tar again, from its tar-split and its files
//! ([`crate::compression::assemble`]), each file's size and CRC-64 checked.

use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Buf as _, Bytes};

use super::store::{self, NewLayer, Store};
use crate::compression::{self, Compression, DirectoryFiles, LayerDecoder, TarSplitReader};
use crate::digest::{ByteStream, Digest};
use crate::policy::Admission;
use crate::transport::{Result, TransportError};
use crate::unpack::{ApplyError, ApplyOptions, Rootfs, Whiteouts};

/// containers/storage's number for a compression (`archive.Compression`).
pub fn compression_number(c: Compression) -> u64 {
    match c {
        Compression::Gzip => 2,
        Compression::Zstd => 4,
        Compression::Bzip2 => 1,
        Compression::Xz => 3,
        _ => 0,
    }
}

/// A layer applied in the staging directory, ready to be installed.
#[derive(Debug)]
pub struct Staged {
    /// The tree as the layer's tar names it (overlay's `diff`, or vfs's whole tree).
    pub dir: PathBuf,
    /// Its tar-split, gzip-compressed.
    pub tar_split: PathBuf,
    /// What its record says.
    pub info: NewLayer,
}

/// An error of the applier as a transport error: a refused or corrupt layer is corrupt data, an
/// IO failure is IO, a caller without the rights is unsupported.
pub fn unpack_error(at: &Path, e: ApplyError) -> TransportError {
    match e {
        ApplyError::Io { path, source, .. } => TransportError::io(path, source),
        ApplyError::Entry { source, .. }
            if !matches!(
                source.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
            ) =>
        {
            TransportError::Io {
                path: at.to_path_buf(),
                source: io::Error::new(source.kind(), e_to_string(&source)),
            }
        }
        ApplyError::NeedsRoot { .. } => TransportError::Unsupported(format!(
            "containers-storage: {e}; ferry writes a store with the image's file owners, as podman run as root does"
        )),
        other => TransportError::InvalidLayout {
            path: at.to_path_buf(),
            why: other.to_string(),
        },
    }
}

fn e_to_string(e: &io::Error) -> String {
    e.to_string()
}

/// A blocking reader of an async byte stream: a task forwards the stream's chunks into a
/// bounded channel, this reads them on a blocking thread. Clones share one position, so what
/// the decoder left unread can be drained through another clone.
#[derive(Clone)]
pub struct StreamReader(Arc<Mutex<StreamState>>);

struct StreamState {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    done: bool,
}

impl StreamReader {
    /// Starts forwarding `stream` (on the current tokio runtime).
    pub fn spawn(mut stream: ByteStream) -> StreamReader {
        use futures::StreamExt as _;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        StreamReader(Arc::new(Mutex::new(StreamState {
            rx,
            current: Bytes::new(),
            done: false,
        })))
    }
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self
            .0
            .lock()
            .map_err(|_| io::Error::other("the stream reader is poisoned"))?;
        while s.current.is_empty() {
            if s.done {
                return Ok(0);
            }
            match s.rx.blocking_recv() {
                Some(Ok(b)) => s.current = b,
                Some(Err(e)) => {
                    s.done = true;
                    return Err(e);
                }
                None => {
                    s.done = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(s.current.len());
        let (dst, src) = (buf.get_mut(..n), s.current.get(..n));
        if let (Some(d), Some(s2)) = (dst, src) {
            d.copy_from_slice(s2);
        }
        s.current.advance(n);
        Ok(n)
    }
}

/// Applies the blob `reader` (compressed or not, sniffed) in `dir` (made here; for vfs,
/// `lower` gives the layers below, applied first from their tar-split), writing its tar-split
/// beside it. `drain` is read to its end after the tar, so the source's verification at the end
/// of the stream is never skipped. Blocking.
#[allow(clippy::too_many_arguments)]
pub fn stage<R: Read + Send>(
    admission: &Admission,
    store: &Store,
    reader: R,
    drain: Option<Box<dyn Read + Send>>,
    dir: &Path,
    lower: &[String],
    compressed: (Digest, u64),
    label: &str,
    compression_override: Option<u64>,
) -> Result<Staged> {
    let overlay = store.driver == store::Driver::Overlay;
    std::fs::create_dir(dir).map_err(|e| TransportError::io(dir, e))?;
    store::set_mode(dir, if overlay { 0o555 } else { 0o755 })?;
    let mut options = ApplyOptions::from_env();
    options.whiteouts = if overlay {
        Whiteouts::Overlay
    } else {
        Whiteouts::Remove
    };
    let mut root = Rootfs::open(dir, options, admission).map_err(|e| unpack_error(dir, e))?;
    for id in lower {
        apply_recomposed(store, id, &mut root, dir)?;
    }

    let tar_split = {
        let mut p = dir.as_os_str().to_owned();
        p.push(".tar-split.gz");
        PathBuf::from(p)
    };
    let ts_file =
        std::fs::File::create(&tar_split).map_err(|e| TransportError::io(&tar_split, e))?;
    let gz = flate2::write::GzEncoder::new(
        io::BufWriter::with_capacity(256 * 1024, ts_file),
        flate2::Compression::fast(),
    );

    let (compression, sniffed) =
        compression::sniff_reader(reader).map_err(TransportError::source_stream)?;
    let (pipe_r, mut pipe_w) = io::pipe().map_err(|e| TransportError::io(dir, e))?;
    let outcome = std::thread::scope(|scope| {
        // Decompression on its own thread: the applier (tar-split, diff_id, files) keeps the
        // other core busy.
        let decoder = scope.spawn(move || -> io::Result<()> {
            let mut d =
                LayerDecoder::new(compression, BufReader::with_capacity(256 * 1024, sniffed))?;
            io::copy(&mut d, &mut pipe_w)?;
            drop(pipe_w);
            // What follows the compressed stream is still read, to its end.
            let mut rest = d.into_inner();
            io::copy(&mut rest, &mut io::sink())?;
            if let Some(mut more) = drain {
                io::copy(&mut more, &mut io::sink())?;
            }
            Ok(())
        });
        let mut tsr = TarSplitReader::new(BufReader::with_capacity(256 * 1024, pipe_r), gz);
        let applied = root.apply_tar(&mut tsr, label);
        let split = match &applied {
            Ok(_) => Some(tsr.finish()),
            Err(_) => {
                drop(tsr);
                None
            }
        };
        let decoded = decoder
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the decompression thread panicked")));
        (applied, split, decoded)
    });
    let (applied, split, decoded) = outcome;
    // The source's failure (a broken or unverified stream) explains the applier's; but a
    // broken pipe is the applier having stopped reading (a refused entry), which its own
    // error explains.
    match decoded {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe && applied.is_err() => {}
        other => other.map_err(TransportError::source_stream)?,
    }
    let stats = applied.map_err(|e| unpack_error(dir, e))?;
    let (gz, _summary) = match split {
        Some(s) => s.map_err(|e| TransportError::InvalidLayout {
            path: dir.to_path_buf(),
            why: e.to_string(),
        })?,
        None => {
            return Err(TransportError::Unsupported(
                "internal: no tar-split after a layer applied".into(),
            ));
        }
    };
    let mut w = gz.finish().map_err(|e| TransportError::io(&tar_split, e))?;
    w.flush().map_err(|e| TransportError::io(&tar_split, e))?;
    let f = w
        .into_inner()
        .map_err(|e| TransportError::io(&tar_split, e.into_error()))?;
    f.sync_all()
        .map_err(|e| TransportError::io(&tar_split, e))?;
    Ok(Staged {
        dir: dir.to_path_buf(),
        tar_split,
        info: NewLayer {
            compressed_digest: compressed.0,
            compressed_size: compressed.1,
            diff_digest: stats.digest,
            diff_size: stats.tar_bytes,
            compression: compression_override.unwrap_or(compression_number(compression)),
            uids: stats.uids,
            gids: stats.gids,
        },
    })
}

/// Applies the recomposed tar of the stored layer `id` onto `root` (a vfs layer's lower).
fn apply_recomposed(store: &Store, id: &str, root: &mut Rootfs, dir: &Path) -> Result<()> {
    let (pipe_r, pipe_w) = io::pipe().map_err(|e| TransportError::io(dir, e))?;
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || recompose(store, id, pipe_w));
        let applied = root.apply_tar(
            BufReader::with_capacity(256 * 1024, pipe_r),
            &format!("layer {id}"),
        );
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(TransportError::Unsupported("recomposing panicked".into())));
        written?;
        applied.map(|_| ()).map_err(|e| unpack_error(dir, e))
    })
}

/// Writes the exact tar of the stored layer `id` to `out`, from its tar-split and its files;
/// returns its size. Blocking.
pub fn recompose(store: &Store, id: &str, out: impl Write) -> Result<u64> {
    super::store::require_plain_id(
        id,
        store.layers_dir().join("layers.json"),
        &format!("layer ID {id:?}"),
    )?;
    let ts = store.tar_split_path(id);
    let f = std::fs::File::open(&ts).map_err(|e| TransportError::io(&ts, e))?;
    let split = BufReader::with_capacity(
        256 * 1024,
        flate2::read::MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, f)),
    );
    let files_dir = store.layer_files(id);
    let mut files =
        DirectoryFiles::open(&files_dir).map_err(|e| TransportError::io(&files_dir, e))?;
    compression::assemble(
        split,
        &mut files,
        io::BufWriter::with_capacity(256 * 1024, out),
    )
    .map_err(|e| TransportError::InvalidLayout {
        path: files_dir.clone(),
        why: format!("layer {id} cannot be given back as it was stored: {e}"),
    })
}
