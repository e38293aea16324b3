//! The stall bound the proxy's client sees: a blob whose source keeps the proxy waiting for the
//! stall timeout (`--stall-timeout`, default 60 s) without delivering 1 KiB ends in an error
//! then, however the transport underneath tries to recover (a resumed download, a retried
//! request, a new connection each get a fresh timeout of their own there).
//!
//! Only time spent waiting on the source counts: while the proxy waits for the client to read
//! its pipe the clock stops, so a slow client is never called a stalled source. The opening
//! request counts too: a registry that never answers is a stall like a body that never moves.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use futures::StreamExt;

use crate::digest::ByteStream;
use crate::transport::TransportError;
use crate::transport::http::STALL_MIN_BYTES;

/// Waiting time against the stall timeout, reset by every [`STALL_MIN_BYTES`] that arrive.
#[derive(Debug)]
pub(crate) struct StallWatch {
    limit: Duration,
    waited: Duration,
    bytes: u64,
}

impl StallWatch {
    /// A watch that allows `limit` of waiting per 1 KiB.
    pub(crate) fn new(limit: Duration) -> StallWatch {
        StallWatch {
            limit,
            waited: Duration::ZERO,
            bytes: 0,
        }
    }

    /// Waits for `f`, within what is left of the stall timeout.
    pub(crate) async fn wait<F: Future>(&mut self, f: F) -> std::io::Result<F::Output> {
        let left = self.limit.saturating_sub(self.waited);
        let started = Instant::now();
        let r = tokio::time::timeout(left, f).await;
        self.waited += started.elapsed();
        r.map_err(|_| self.stalled())
    }

    /// Records `n` bytes that arrived.
    pub(crate) fn record(&mut self, n: u64) {
        self.bytes += n;
        if self.bytes >= STALL_MIN_BYTES {
            self.bytes = 0;
            self.waited = Duration::ZERO;
        }
    }

    fn stalled(&self) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "no progress: fewer than {STALL_MIN_BYTES} bytes in {} s of waiting for the source (the stall timeout, --stall-timeout)",
                self.limit.as_secs_f64()
            ),
        )
    }
}

/// The stream that [`open`] gives: `stream`'s items, ending in a stall error when the source
/// keeps the reader waiting for `limit` without 1 KiB.
pub(crate) fn bounded(stream: ByteStream, watch: StallWatch) -> ByteStream {
    Box::pin(futures::stream::unfold(
        (Some(stream), watch),
        |(stream, mut watch)| async move {
            let mut s = stream?;
            match watch.wait(s.next()).await {
                Ok(Some(Ok(chunk))) => {
                    watch.record(chunk.len() as u64);
                    Some((Ok(chunk), (Some(s), watch)))
                }
                Ok(Some(Err(e))) => Some((Err(e), (None, watch))),
                Ok(None) => None,
                Err(stalled) => Some((Err(stalled), (None, watch))),
            }
        },
    ))
}

/// Opens a blob with `opening` and bounds the whole of it, the opening included, by the stall
/// timeout `limit`.
pub(crate) async fn open<F>(limit: Duration, opening: F) -> Result<ByteStream, TransportError>
where
    F: Future<Output = Result<ByteStream, TransportError>>,
{
    let mut watch = StallWatch::new(limit);
    let stream = watch
        .wait(opening)
        .await
        .map_err(TransportError::SourceStream)??;
    Ok(bounded(stream, watch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test(start_paused = true)]
    async fn waiting_counts_and_a_kibibyte_resets_it() {
        let mut w = StallWatch::new(Duration::from_secs(10));
        w.wait(tokio::time::sleep(Duration::from_secs(6)))
            .await
            .unwrap();
        // 512 bytes are not progress: the clock keeps running.
        w.record(512);
        let e = w
            .wait(tokio::time::sleep(Duration::from_secs(6)))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("stall timeout"), "{e}");
        let mut w = StallWatch::new(Duration::from_secs(10));
        w.wait(tokio::time::sleep(Duration::from_secs(6)))
            .await
            .unwrap();
        w.record(1024);
        w.wait(tokio::time::sleep(Duration::from_secs(6)))
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_that_stops_ends_in_an_error_within_the_limit() {
        let chunk = Bytes::from(vec![0u8; 4096]);
        let source: ByteStream =
            Box::pin(futures::stream::iter(vec![Ok(chunk)]).chain(futures::stream::pending()));
        let started = tokio::time::Instant::now();
        let mut s = bounded(source, StallWatch::new(Duration::from_secs(3)));
        assert!(s.next().await.unwrap().is_ok());
        let e = s.next().await.unwrap().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert!(s.next().await.is_none());
    }
}
