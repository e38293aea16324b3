//! Bulk data to the client: a pipe per answer, its read end passed with the reply, its write
//! end fed by a task that streams the bytes with bounded memory. Two kinds, as skopeo has them:
//! a *finished* pipe (`GetManifest`, `GetBlob`, …), whose write end stays open until the client
//! calls `FinishPipe` and learns how the copy ended; and a *raw* pair (`GetRawBlob`), a data pipe
//! and an error pipe that are both closed when the copy ends, the error pipe holding a JSON
//! error if it failed.
//!
//! A blob comes as a stream (read from the source, verified as it passes) or from a read-ahead
//! spool file ([`super::readahead::Follower`]); a spool's bytes go from the file's pages into
//! the pipe with `splice(2)`, never copied through memory of ours.
//!
//! A pipe never waits on a source forever: the source's stream ends in an error when the
//! transport's stall timeout passes (the docker transport enforces it), and that error is what
//! `FinishPipe` or the error pipe reports.

use std::os::fd::{AsFd, OwnedFd};

use bytes::Bytes;
use futures::StreamExt;
use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe::Sender;
use tokio::task::JoinHandle;

use super::readahead::{Follower, Next};
use super::wire::{ErrorCode, PipeError};
use crate::digest::{ByteStream, Digest};
use crate::transport::TransportError;

/// How much a pipe buffers, asked of the kernel (it may give less): larger than the default
/// 64 KiB so that a layer moves in fewer wake-ups.
const PIPE_BUFFER: usize = 1024 * 1024;

/// Why a pipe's copy failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipeFailure {
    /// The source's bytes could not be read, or did not match the digest and size.
    #[error("reading blob {digest}: {source}")]
    Source {
        /// The blob.
        digest: Digest,
        /// What failed (a stall, a broken connection, a digest mismatch, …).
        source: TransportError,
    },
    /// The client closed its end of the pipe before the copy ended.
    #[error("writing to the client's pipe: {0}")]
    Client(std::io::Error),
}

impl PipeFailure {
    /// The code the client sees.
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            PipeFailure::Source { source, .. } => super::error_code(source),
            PipeFailure::Client(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ErrorCode::Pipe,
            PipeFailure::Client(_) => ErrorCode::Other,
        }
    }
}

/// A new pipe: the read end for the client (blocking, as the client expects), the write end
/// for the server (non-blocking, driven by tokio).
pub(crate) fn pipe() -> std::io::Result<(OwnedFd, Sender)> {
    let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
    // A smaller buffer only costs speed; the limit for unprivileged users may refuse this.
    let _ = rustix::pipe::fcntl_setpipe_size(&write, PIPE_BUFFER);
    let write = Sender::from_owned_fd(write)?;
    Ok((read, write))
}

/// A blob's bytes, as the pipe gets them.
pub(crate) enum Body {
    /// Read from the source (or local files), verified as they pass.
    Stream(ByteStream),
    /// From a read-ahead spool, verified by its fetch.
    Spool(Follower),
}

/// What a finished pipe's task hands back: the write end (kept open until `FinishPipe`) and
/// how the copy ended.
pub(crate) type Finished = (Sender, Result<u64, PipeFailure>);

/// Streams `stream` (the blob `digest`) into `sender`; the write end is handed back, not closed.
pub(crate) fn spawn_finished(
    digest: Digest,
    stream: Body,
    mut sender: Sender,
) -> JoinHandle<Finished> {
    tokio::spawn(async move {
        let r = copy(&digest, stream, &mut sender).await;
        (sender, r)
    })
}

/// Writes `bytes` into `sender`; the write end is handed back, not closed.
pub(crate) fn spawn_bytes(bytes: Bytes, mut sender: Sender) -> JoinHandle<Finished> {
    tokio::spawn(async move {
        let n = bytes.len() as u64;
        let r = sender
            .write_all(&bytes)
            .await
            .map(|()| n)
            .map_err(PipeFailure::Client);
        (sender, r)
    })
}

/// Streams the blob into the data pipe and then closes it; on failure writes the JSON error
/// into the error pipe first. Both are closed when the task ends, which is how the client
/// knows the copy is over.
pub(crate) fn spawn_raw(
    digest: Digest,
    stream: Body,
    mut data: Sender,
    mut errors: Sender,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let r = copy(&digest, stream, &mut data).await;
        // Close the data pipe before the error pipe: a client reading the error pipe to its
        // end then knows the data pipe has ended too.
        drop(data);
        if let Err(failure) = r {
            tracing::debug!("GetRawBlob {digest}: {failure}");
            let message = failure.to_string();
            let json = serde_json::to_vec(&PipeError {
                code: failure.code(),
                message: &message,
            });
            if let Ok(json) = json
                && let Err(e) = errors.write_all(&json).await
            {
                tracing::debug!("GetRawBlob {digest}: the client's error pipe: {e}");
            }
        }
    })
}

async fn copy(digest: &Digest, body: Body, sender: &mut Sender) -> Result<u64, PipeFailure> {
    match body {
        Body::Stream(stream) => copy_stream(digest, stream, sender).await,
        Body::Spool(follower) => splice_spool(digest, follower, sender).await,
    }
}

/// Moves a spool's bytes into the pipe as its fetch writes them, with `splice(2)`: the file's
/// pages go into the pipe without a copy through user memory (the spool is in the page cache,
/// just written; a read that has to go to the disk blocks this task's thread as long). What
/// the fetch hands over once this reader caught up with it is written as it comes.
async fn splice_spool(
    digest: &Digest,
    mut follower: Follower,
    sender: &mut Sender,
) -> Result<u64, PipeFailure> {
    let source = |e: std::io::Error| PipeFailure::Source {
        digest: digest.clone(),
        source: TransportError::source_stream(e),
    };
    let (mut n, mut spliced) = (0u64, 0u64);
    loop {
        let mut left = match follower.next().await.map_err(source)? {
            Next::End => {
                tracing::debug!(
                    "{digest}: {n} bytes from the read-ahead, {spliced} of them through its file"
                );
                return Ok(n);
            }
            Next::Bytes(batch) => {
                for chunk in batch {
                    sender
                        .write_all(&chunk)
                        .await
                        .map_err(PipeFailure::Client)?;
                    n += chunk.len() as u64;
                }
                continue;
            }
            Next::File(left) => left,
        };
        while left > 0 {
            let moved = splice_some(&*sender, &mut follower, left).await;
            match moved {
                Ok(0) => {
                    return Err(source(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the spool file is shorter than what was written to it",
                    )));
                }
                Ok(k) => {
                    left = left.saturating_sub(k as u64);
                    n += k as u64;
                    spliced += k as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Err(PipeFailure::Client(e));
                }
                Err(e) => return Err(source(e)),
            }
        }
    }
}

/// Splices at most `left` bytes of the follower's file into the pipe once it has room.
async fn splice_some(
    sender: &Sender,
    follower: &mut Follower,
    left: u64,
) -> std::io::Result<usize> {
    loop {
        sender.writable().await?;
        let len = usize::try_from(left).map_or(PIPE_BUFFER, |l| l.min(PIPE_BUFFER));
        let (file, offset) = follower.file_at();
        let moved = sender.try_io(|| {
            rustix::pipe::splice(
                file,
                Some(offset),
                sender.as_fd(),
                None,
                len,
                SpliceFlags::NONBLOCK | SpliceFlags::MORE,
            )
            .map_err(std::io::Error::from)
        });
        match moved {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => return other,
        }
    }
}

async fn copy_stream(
    digest: &Digest,
    mut stream: ByteStream,
    sender: &mut Sender,
) -> Result<u64, PipeFailure> {
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| PipeFailure::Source {
            digest: digest.clone(),
            source: TransportError::source_stream(e),
        })?;
        sender
            .write_all(&chunk)
            .await
            .map_err(PipeFailure::Client)?;
        n += chunk.len() as u64;
    }
    Ok(n)
}
