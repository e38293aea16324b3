//! Blobs: every distinct blob of the plan, several at once, each reused at the destination
//! when it is there (or can be mounted) and otherwise streamed and verified as it passes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt, TryStreamExt};
use tokio::sync::{Semaphore, oneshot};

use super::{CopyError, CopyOptions, ProgressEvent};
use crate::digest::{ByteStream, Digest, VerifyingStream};
use crate::hint::Side;
use crate::manifest::Descriptor;
use crate::policy::Admission;
use crate::record::BlobAction;
use crate::reference::ImageReference;
use crate::transport::{ImageDestination, ImageSource, TransportError};

/// What became of one blob: its digest, copied or reused, bytes streamed.
pub type BlobOutcome = (Digest, BlobAction, u64);

/// Copies every distinct blob of `blobs` (the plan's, or attached artifacts'),
/// `options.parallel_blobs` at once. The destination is asked about every blob at once (up to
/// [`CHECKS_AT_ONCE`]), so the answers come back in one round trip; only the transfers of the
/// blobs it lacks wait for one of the `parallel_blobs` places.
pub async fn copy_these<'a>(
    admission: &Admission,
    src: &ImageReference,
    dst: &ImageReference,
    source: &dyn ImageSource,
    destination: &dyn ImageDestination,
    blobs: impl Iterator<Item = &'a Descriptor>,
    options: &CopyOptions,
) -> Result<Vec<BlobOutcome>, CopyError> {
    let mut seen = BTreeSet::new();
    let unique: Vec<&Descriptor> = blobs.filter(|d| seen.insert(d.digest.clone())).collect();
    let transfers = Semaphore::new(options.parallel_blobs.max(1));
    // The futures are made before they are streamed: a closure over references inside the
    // stream's type makes the copy's future fail to be Send for every lifetime (rustc's
    // higher-ranked lifetime limits), and a sync spawns its copies on the runtime's threads.
    let copies: Vec<_> = unique
        .into_iter()
        .map(|d| copy_one(admission, src, source, destination, d, options, &transfers))
        .collect();
    futures::stream::iter(copies)
        .buffer_unordered(options.parallel_blobs.max(CHECKS_AT_ONCE))
        .map_err(|failed| {
            let (digest, side, source) = *failed;
            CopyError::Blob {
                digest,
                source_ref: src.to_string(),
                destination: dst.to_string(),
                side,
                source: Box::new(source),
            }
        })
        .try_collect()
        .await
}

/// How many blobs the destination is asked about at once (each question a request in flight,
/// so a connection of its own over HTTP/1.1).
pub const CHECKS_AT_ONCE: usize = 16;

/// Copies one blob unless the destination has it, verifying it as it streams. The source's
/// answer is asked for while the destination gets ready to take the blob (a registry opens its
/// upload then), so neither waits for the other's round trip.
async fn copy_one(
    admission: &Admission,
    src: &ImageReference,
    source: &dyn ImageSource,
    destination: &dyn ImageDestination,
    d: &Descriptor,
    options: &CopyOptions,
    transfers: &Semaphore,
) -> Result<BlobOutcome, Box<(Digest, Side, TransportError)>> {
    let fail = |side| move |e| Box::new((d.digest.clone(), side, e));
    if destination
        .try_reuse_blob(d, src)
        .await
        .map_err(fail(Side::Destination))?
    {
        options.emit(ProgressEvent::BlobDone {
            digest: d.digest.clone(),
            action: BlobAction::Reused,
        });
        return Ok((d.digest.clone(), BlobAction::Reused, 0));
    }
    // Held until the blob is written: the caps count transfers, not reuse checks.
    let _place = transfers.acquire().await.ok();
    let _slot = match &options.blob_slots {
        Some(slots) => slots.clone().acquire_owned().await.ok(),
        None => None,
    };
    options.emit(ProgressEvent::BlobStarted {
        digest: d.digest.clone(),
        size: d.size,
    });
    // The source's stream reaches the destination through a channel: the destination may
    // start (a registry's POST) before the source has answered, and reads the first byte
    // only once both are ready.
    let (opened, arrives) = oneshot::channel::<Result<ByteStream, String>>();
    let raw: ByteStream = Box::pin(
        futures::stream::once(arrives)
            .map(|r| match r {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => failed_stream(e),
                Err(_) => failed_stream("the source's stream was not opened".into()),
            })
            .flatten(),
    );
    let open = async {
        match source.blob(d).await {
            Ok(stream) => {
                let _ = opened.send(Ok(stream));
                Ok(())
            }
            Err(e) => {
                let _ = opened.send(Err(e.to_string()));
                Err(e)
            }
        }
    };
    // Verified on the task that writes: the benchmark showed that handing chunks to a separate
    // hashing task bought no speed on 2 cores (the copy is CPU-bound either way) and cost 20 MiB
    // of buffered chunks (docs/performance.md). Bytes the source made and hashed itself (a
    // recompressed layer) are only counted: hashing them again was 0.11 CPU-s of a 1.7 CPU-s
    // recompression of 256 MiB (docs/compression.md).
    let verified = if source.blob_was_hashed_when_made(d) {
        VerifyingStream::size_only(raw, d.digest.clone(), d.size)
    } else {
        VerifyingStream::new(raw, d.digest.clone(), Some(d.size))
    };
    let total = Arc::new(AtomicU64::new(0));
    let (counter, progress, digest) = (
        total.clone(),
        options.gate.progress.clone(),
        d.digest.clone(),
    );
    let stream: ByteStream = Box::pin(verified.inspect(move |item| {
        if let Ok(chunk) = item {
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if let Some(p) = &progress {
                p.event(ProgressEvent::BlobBytes {
                    digest: digest.clone(),
                    bytes: chunk.len() as u64,
                });
            }
        }
    }));
    // A failure here may be the source's (it did not answer, the stream broke or failed
    // verification) or the destination's; the source's own error comes first.
    let (opened, put) =
        futures::future::join(open, destination.put_blob(admission, d, stream)).await;
    opened.map_err(fail(Side::Source))?;
    put.map_err(|e| {
        let side = if matches!(
            e,
            TransportError::Verify(_) | TransportError::SourceStream(_)
        ) {
            Side::Source
        } else {
            Side::Destination
        };
        Box::new((d.digest.clone(), side, e))
    })?;
    options.emit(ProgressEvent::BlobDone {
        digest: d.digest.clone(),
        action: BlobAction::Copied,
    });
    Ok((
        d.digest.clone(),
        BlobAction::Copied,
        total.load(Ordering::Relaxed),
    ))
}

/// A stream whose only item is the error `message` (the source could not be read).
fn failed_stream(message: String) -> ByteStream {
    Box::pin(futures::stream::once(async move {
        Err(std::io::Error::other(message))
    }))
}
