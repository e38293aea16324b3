//! A large blob fetched over several connections with `Range` requests, when one connection
//! proves slow and the registry honours them: where each connection is capped (CDNs and
//! registries commonly cap them), a runtime waiting for its largest layer waits for one
//! connection's bandwidth otherwise (containerd measured about 2x on real registries with the
//! same idea, its PR #10177).
//!
//! The first request asks for the whole blob as one range (`bytes=0-END`): a `206 Partial
//! Content` says the registry honours `Range`, a `200` is the whole blob over one stream (no
//! round trip is lost finding out either way). That first stream is then watched over its first
//! [`PROBE_BYTES`] (or [`PROBE_TIME`], whichever comes first): if it delivers at least
//! [`FAST_STREAM`] bytes a second, counting the other large blobs fetched from the registry at
//! the same time (its speed times their number: they share the link), it stays the only stream.
//! A fast link is limited by this host (hashing, writing) or the registry's CPU, not by the
//! connections, and more of them would only add work on both sides: measured on 127.0.0.1,
//! ranges doubled the registry's CPU and ferry's memory for no gain (docs/performance.md), and
//! with 6 layers at once each stream alone looked slow while the link was not. A slower stream is cut at the end of the
//! [`RANGE_SIZE`] range it is in (so it stays busy while the others connect) and the rest of the blob is cut into ranges of [`RANGE_SIZE`] bytes, each on a connection of
//! its own. The stream the caller reads gives the bytes in order: the range being read passes
//! straight through, and the ranges after it are held in memory as they arrive until their turn.
//! At most [`STREAMS_PER_BLOB`] ranges are in flight (fetched or waiting to be read), so a blob
//! never holds more than that many ranges in memory, whatever its size. The caller hashes the
//! bytes as they pass and checks the digest at the end, exactly as for one stream: nothing is
//! committed before every byte is checked.
//!
//! Connections are bounded per registry: a blob's first stream uses the stream its blob slot
//! pays for (`--parallel-blobs`, or a sync's cap), and every further range in flight holds one
//! of the registry's extra range streams ([`super::limits::RegistryLimits::range_streams`]),
//! shared by every blob and image of the session; a blob that finds none free fetches its ranges
//! one after another on its own stream. A range cut off midway resumes where it broke, within
//! the retry limit.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use url::Url;

use super::client::{self, RegistryClient};
use super::limits::LargeBlob;
use crate::digest::ByteStream;
use crate::transport::Result;
use crate::transport::http::ProgressWatch;

/// Blobs at least this large are fetched in ranges (smaller ones gain nothing over the round
/// trip the second range costs).
pub const RANGED_FROM: u64 = 16 << 20;

/// The bytes one range request asks for: what one connection fetches per round trip, and the
/// most a range fetched ahead of the one being read holds in memory.
pub const RANGE_SIZE: u64 = 4 << 20;

/// How much of the first stream is watched before deciding whether to cut the rest of the blob
/// into ranges (unless [`PROBE_TIME`] passes first).
pub const PROBE_BYTES: u64 = RANGE_SIZE;

/// The longest the first stream is watched before deciding, from its first bytes.
pub const PROBE_TIME: Duration = Duration::from_millis(250);

/// A first stream delivering at least this many bytes a second (100 MiB/s, about a gigabit),
/// times the number of large blobs fetched from the registry at once, is not limited by its
/// connection, so it stays the only one.
pub const FAST_STREAM: u64 = 100 << 20;

/// The chunks the first stream may run ahead of its reader.
const LEAD_CHUNKS: usize = 2;

/// The chunks a range fetched ahead of its turn may hold: enough for a whole range in the
/// chunk sizes HTTP bodies come in (a range that fills them waits for its turn, which only
/// delays it).
const RANGE_CHUNKS: usize = 1024;

/// The most ranges of one blob in flight, so the most connections one blob uses and the most
/// ranges it holds in memory: [`STREAMS_PER_BLOB`] × [`RANGE_SIZE`] = 24 MiB.
pub const STREAMS_PER_BLOB: usize = 6;

/// A blob of `size` bytes at `url`: its bytes in order, fetched in ranges when the registry
/// honours `Range` (see the module documentation), else over one resumable stream.
pub async fn fetch(
    client: Arc<RegistryClient>,
    url: Url,
    scopes: Vec<String>,
    size: u64,
) -> Result<ByteStream> {
    let first = Span {
        start: 0,
        end: size.saturating_sub(1),
    };
    let range = first.header();
    let resp = client
        .send_with_retries(&scopes, |c| {
            c.get(url.clone())
                .header(reqwest::header::RANGE, range.clone())
        })
        .await?;
    let status = resp.status();
    if status == StatusCode::PARTIAL_CONTENT {
        let answered = resp
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(content_range);
        match answered {
            Some((span, total)) if span == first && total.is_none_or(|t| t == size) => {
                return Ok(Box::pin(Ranged::start(client, url, scopes, size, resp)));
            }
            other => {
                // Another range than the one asked for: take the blob whole instead.
                tracing::info!(
                    "{}: asked for {range}, the registry answered {other:?}; fetching the blob over one stream",
                    client::redact(&url)
                );
                drop(resp);
                let resp = client
                    .send_with_retries(&scopes, |c| c.get(url.clone()))
                    .await?;
                if !resp.status().is_success() {
                    return Err(client.status_error(&url, resp).await);
                }
                return Ok(super::resumable_blob(client, url, scopes, resp));
            }
        }
    }
    if status.is_success() {
        // The registry does not honour Range: this is the whole blob.
        return Ok(super::resumable_blob(client, url, scopes, resp));
    }
    Err(client.status_error(&url, resp).await)
}

/// A range of bytes, both ends included (as HTTP writes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u64,
    end: u64,
}

impl Span {
    fn header(&self) -> String {
        format!("bytes={}-{}", self.start, self.end)
    }
    fn len(&self) -> u64 {
        self.end - self.start + 1
    }
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`): the span and the total, if known.
fn content_range(h: &str) -> Option<(Span, Option<u64>)> {
    let rest = h.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let span = Span {
        start: start.trim().parse().ok()?,
        end: end.trim().parse().ok()?,
    };
    if span.end < span.start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((span, total))
}

/// The ranges of a blob of `size` bytes from byte `from` (a multiple of [`RANGE_SIZE`]), in order.
fn spans(from: u64, size: u64) -> impl Iterator<Item = Span> {
    (from / RANGE_SIZE..size.div_ceil(RANGE_SIZE)).map(move |i| {
        let start = i * RANGE_SIZE;
        Span {
            start,
            end: (start + RANGE_SIZE).min(size) - 1,
        }
    })
}

/// What watching the first stream decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Not yet: too few bytes and too little time seen.
    Undecided,
    /// Fast enough: the first stream fetches the whole blob.
    Single,
    /// Slow: the first stream ends at this byte (excluded), ranges fetch the rest.
    CutAt(u64),
}

/// Watches the first stream's speed over its first bytes ([`PROBE_BYTES`], [`PROBE_TIME`]).
#[derive(Debug)]
struct Probe {
    size: u64,
    first_bytes_at: Option<Instant>,
    bytes: u64,
}

impl Probe {
    fn new(size: u64) -> Probe {
        Probe {
            size,
            first_bytes_at: None,
            bytes: 0,
        }
    }

    /// `n` more bytes arrived at `now`, the stream being at byte `at` after them, while
    /// `at_once` large blobs (this one included) are being fetched from the registry.
    fn observe(&mut self, n: u64, at: u64, now: Instant, at_once: usize) -> Decision {
        let since = *self.first_bytes_at.get_or_insert(now);
        self.bytes += n;
        let elapsed = now.saturating_duration_since(since);
        if self.bytes < PROBE_BYTES && elapsed < PROBE_TIME {
            return Decision::Undecided;
        }
        let link = self.bytes as f64 * at_once.max(1) as f64;
        let fast = link >= FAST_STREAM as f64 * elapsed.as_secs_f64();
        // The end of the range the stream is in: it fetches on while the others connect.
        let cut = (at / RANGE_SIZE + 1) * RANGE_SIZE;
        if fast || cut >= self.size {
            Decision::Single
        } else {
            Decision::CutAt(cut)
        }
    }
}

/// One range as the reader gets it: its bytes as they arrive, and its place among the ranges
/// in flight, given back when the reader is done with it.
type Delivery = (mpsc::Receiver<std::io::Result<Bytes>>, OwnedSemaphorePermit);

/// The bytes of a blob fetched in ranges, in order (see the module documentation).
struct Ranged {
    /// The ranges in order, as the scheduler starts them.
    ranges: mpsc::UnboundedReceiver<Delivery>,
    /// The range being read.
    current: Option<Delivery>,
    /// The scheduler; aborted (with every range it started) when the reader goes away.
    scheduler: tokio::task::AbortHandle,
    failed: bool,
}

impl Drop for Ranged {
    fn drop(&mut self) {
        self.scheduler.abort();
    }
}

impl Ranged {
    /// Starts fetching every range after the first, whose answer is `first`.
    fn start(
        client: Arc<RegistryClient>,
        url: Url,
        scopes: Vec<String>,
        size: u64,
        first: reqwest::Response,
    ) -> Ranged {
        let (deliver, ranges) = mpsc::unbounded_channel();
        let task = tokio::spawn(schedule(client, url, scopes, size, first, deliver));
        Ranged {
            ranges,
            current: None,
            scheduler: task.abort_handle(),
            failed: false,
        }
    }
}

impl futures::Stream for Ranged {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        loop {
            if self.current.is_none() {
                match self.ranges.poll_recv(cx) {
                    Poll::Ready(Some(next)) => self.current = Some(next),
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let Some((bytes, _place)) = self.current.as_mut() else {
                continue;
            };
            match bytes.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => return Poll::Ready(Some(Ok(chunk))),
                Poll::Ready(Some(Err(e))) => {
                    self.failed = true;
                    return Poll::Ready(Some(Err(e)));
                }
                // This range is read whole: its place goes to the next range to fetch.
                Poll::Ready(None) => self.current = None,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Reads the first stream and, if it proves slow, starts the ranges after it in order, each
/// when a place among the ranges in flight and a stream are free, and hands each to the reader;
/// lives until every range it started has ended.
async fn schedule(
    client: Arc<RegistryClient>,
    url: Url,
    scopes: Vec<String>,
    size: u64,
    first: reqwest::Response,
    deliver: mpsc::UnboundedSender<Delivery>,
) {
    let in_flight = Arc::new(Semaphore::new(STREAMS_PER_BLOB));
    let own = Arc::new(Semaphore::new(1));
    let extra = client.limits.range_streams();
    let counted = Arc::new(client.limits.large_blob());
    let mut fetching = JoinSet::new();
    let job = Arc::new((client, url, scopes));
    let (Ok(place), Ok(stream)) = (
        in_flight.clone().acquire_owned().await,
        own.clone().acquire_owned().await,
    ) else {
        return;
    };
    // The first stream is read as it arrives: a few chunks of slack, then it waits for the
    // reader (it may be the whole blob, which must not pile up in memory).
    let (tx, rx) = mpsc::channel(LEAD_CHUNKS);
    if deliver.send((rx, place)).is_err() {
        return;
    }
    let (decided, decision) = oneshot::channel();
    let whole = Span {
        start: 0,
        end: size.saturating_sub(1),
    };
    let lead = Lead {
        probe: Probe::new(size),
        decided: Some(decided),
        counted: counted.clone(),
    };
    fetching.spawn(fetch_range(
        job.clone(),
        whole,
        Some(first),
        tx,
        stream,
        Some(lead),
    ));
    // The first stream fetches the whole blob unless it proves slow (or ends before deciding).
    if let Ok(cut) = decision.await {
        for span in spans(cut, size) {
            let Ok(place) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let stream = tokio::select! {
                biased;
                p = own.clone().acquire_owned() => p,
                p = extra.clone().acquire_owned() => p,
            };
            let Ok(stream) = stream else {
                return;
            };
            let (tx, rx) = mpsc::channel(RANGE_CHUNKS);
            if deliver.send((rx, place)).is_err() {
                // The reader went away.
                return;
            }
            fetching.spawn(fetch_range(job.clone(), span, None, tx, stream, None));
            while fetching.try_join_next().is_some() {}
        }
    }
    drop(deliver);
    while fetching.join_next().await.is_some() {}
}

/// The first stream's watch, and where to say that it proved slow (with the byte it stops at).
struct Lead {
    probe: Probe,
    decided: Option<oneshot::Sender<u64>>,
    /// This blob among the large blobs fetched from the registry now (counted until every
    /// range of it is fetched).
    counted: Arc<LargeBlob>,
}

/// Fetches one range into `tx`, resuming where it broke (within the retry limit); `answer` is
/// the first range's answer, already asked for, and `lead` watches the first stream (which may
/// then end early, see [`Probe`]). `_stream` is the connection's permit, held until the range is
/// fetched.
async fn fetch_range(
    job: Arc<(Arc<RegistryClient>, Url, Vec<String>)>,
    mut span: Span,
    mut answer: Option<reqwest::Response>,
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    _stream: OwnedSemaphorePermit,
    mut lead: Option<Lead>,
) {
    let (client, url) = (&job.0, &job.1);
    let mut at = span.start;
    let mut resumes = 0;
    loop {
        let read = read_range(&job, &mut span, &mut at, answer.take(), &tx, &mut lead);
        let broke = match read.await {
            Ok(()) => return,
            Err(Outcome::ReaderGone) => return,
            Err(Outcome::Failed(e)) => e,
            Err(Outcome::Broke(e)) if resumes >= client.retry_times().max(1) => {
                format!(
                    "{e}; it could not be resumed ({} of the range's {} bytes arrived)",
                    at - span.start,
                    span.len()
                )
            }
            Err(Outcome::Broke(e)) => {
                tracing::info!(
                    "{}: range {} broke off at byte {at}: {e}; resuming",
                    client::redact(url),
                    span.header()
                );
                tokio::time::sleep(client::backoff(resumes)).await;
                resumes += 1;
                continue;
            }
        };
        let _ = tx
            .send(Err(std::io::Error::other(format!(
                "{}: fetching {}: {broke}",
                client::redact(url),
                span.header()
            ))))
            .await;
        return;
    }
}

/// Why a range stopped before its end.
enum Outcome {
    /// The reader is gone: nothing more to do.
    ReaderGone,
    /// The registry refused the range: resuming would not help.
    Failed(String),
    /// The connection broke, stalled or ended early: worth resuming.
    Broke(String),
}

/// Reads the rest of `span` from `*at` into `tx` (asking for it unless `answer` is given). On
/// the first stream, `lead` watches the speed and may pull `span`'s end in to a cut.
async fn read_range(
    job: &(Arc<RegistryClient>, Url, Vec<String>),
    span: &mut Span,
    at: &mut u64,
    answer: Option<reqwest::Response>,
    tx: &mpsc::Sender<std::io::Result<Bytes>>,
    lead: &mut Option<Lead>,
) -> std::result::Result<(), Outcome> {
    let (client, url, scopes) = (&job.0, &job.1, &job.2);
    // The last byte the answer covers: past a cut, the first stream's answer goes on beyond
    // `span`, and what it sends there is left unread.
    let answered_end = span.end;
    let resp = match answer {
        Some(r) => r,
        None => {
            let want = Span {
                start: *at,
                end: span.end,
            };
            let range = want.header();
            let resp = client
                .send_with_retries(scopes, |c| {
                    c.get(url.clone())
                        .header(reqwest::header::RANGE, range.clone())
                })
                .await
                .map_err(|e| Outcome::Broke(e.to_string()))?;
            if resp.status() != StatusCode::PARTIAL_CONTENT {
                let status = resp.status();
                let e = client.status_error(url, resp).await;
                return Err(Outcome::Failed(if status.is_success() {
                    format!(
                        "the registry answered {status} to a Range request it had honoured before"
                    )
                } else {
                    e.to_string()
                }));
            }
            let answered = resp
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(content_range);
            if answered.map(|(s, _)| s) != Some(want) {
                return Err(Outcome::Failed(format!(
                    "asked for {range}, the registry answered Content-Range {answered:?}"
                )));
            }
            resp
        }
    };
    let mut body = resp.bytes_stream();
    let mut watch = ProgressWatch::new(client.timeouts().stall);
    loop {
        match watch.next(&mut body).await {
            Ok(Some(Ok(mut chunk))) => {
                let n = chunk.len() as u64;
                if *at + n > answered_end + 1 {
                    return Err(Outcome::Failed(format!(
                        "the registry sent more than the {} bytes of the range",
                        answered_end + 1 - span.start
                    )));
                }
                if let Some(watch) = lead.as_mut() {
                    let at_once = watch.counted.at_once();
                    match watch.probe.observe(n, *at + n, Instant::now(), at_once) {
                        Decision::Undecided => {}
                        Decision::Single => *lead = None,
                        Decision::CutAt(cut) => {
                            span.end = cut - 1;
                            if let Some(decided) = watch.decided.take() {
                                let _ = decided.send(cut);
                            }
                            *lead = None;
                        }
                    }
                }
                let room = span.end + 1 - *at;
                if n > room {
                    // The first stream reached its cut: the ranges fetch the rest.
                    chunk.truncate(room as usize);
                }
                *at += chunk.len() as u64;
                if !chunk.is_empty() && tx.send(Ok(chunk)).await.is_err() {
                    return Err(Outcome::ReaderGone);
                }
                if *at == span.end + 1 && span.end < answered_end {
                    return Ok(());
                }
            }
            Ok(Some(Err(e))) => return Err(Outcome::Broke(e.to_string())),
            Ok(None) if *at == span.end + 1 => return Ok(()),
            Ok(None) => return Err(Outcome::Broke("the answer ended early".into())),
            Err(stalled) => return Err(Outcome::Broke(stalled.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(
            content_range("bytes 0-4194303/268435456"),
            Some((
                Span {
                    start: 0,
                    end: 4194303
                },
                Some(268435456)
            ))
        );
        assert_eq!(
            content_range("bytes 5-9/*"),
            Some((Span { start: 5, end: 9 }, None))
        );
        assert_eq!(content_range("bytes 9-5/10"), None);
        assert_eq!(content_range("items 0-1/2"), None);
        assert_eq!(content_range("bytes */10"), None);
    }

    #[test]
    fn spans_cover_the_blob_in_order() {
        let size = 2 * RANGE_SIZE + 7;
        let all: Vec<Span> = spans(0, size).collect();
        assert_eq!(all.len(), 3);
        assert_eq!(all.first().map(|s| s.start), Some(0));
        assert_eq!(all.last().map(|s| s.end), Some(size - 1));
        assert_eq!(all.iter().map(Span::len).sum::<u64>(), size);
        for w in all.windows(2) {
            if let [a, b] = w {
                assert_eq!(a.end + 1, b.start);
            }
        }
    }

    #[test]
    fn spans_after_a_cut_start_at_it() {
        let size = 5 * RANGE_SIZE + 1;
        let rest: Vec<Span> = spans(2 * RANGE_SIZE, size).collect();
        assert_eq!(rest.len(), 4);
        assert_eq!(rest.first().map(|s| s.start), Some(2 * RANGE_SIZE));
        assert_eq!(
            rest.iter().map(Span::len).sum::<u64>(),
            size - 2 * RANGE_SIZE
        );
    }

    #[test]
    fn a_fast_first_stream_stays_alone_and_a_slow_one_is_cut_at_the_end_of_its_range() {
        let size = 64 << 20;
        let t0 = Instant::now();
        // 4 MiB in 10 ms: 400 MiB/s.
        let mut fast = Probe::new(size);
        assert_eq!(fast.observe(64 << 10, 64 << 10, t0, 1), Decision::Undecided);
        let at = PROBE_BYTES;
        let d = fast.observe(at - (64 << 10), at, t0 + Duration::from_millis(10), 1);
        assert_eq!(d, Decision::Single);
        // 4 MiB in 160 ms: 25 MiB/s, cut at the end of the range it is in (4-8 MiB).
        let mut slow = Probe::new(size);
        slow.observe(64 << 10, 64 << 10, t0, 1);
        let d = slow.observe(at - (64 << 10), at, t0 + Duration::from_millis(160), 1);
        assert_eq!(d, Decision::CutAt(2 * RANGE_SIZE));
        // The same speed while 6 large blobs share the link: 150 MiB/s in all, not cut.
        let mut shared = Probe::new(size);
        shared.observe(64 << 10, 64 << 10, t0, 6);
        let d = shared.observe(at - (64 << 10), at, t0 + Duration::from_millis(160), 6);
        assert_eq!(d, Decision::Single);
        // A trickle is judged when the probe's time is up, not after 4 MiB, and cut at the end
        // of the first range.
        let mut trickle = Probe::new(size);
        trickle.observe(1000, 1000, t0, 1);
        assert_eq!(
            trickle.observe(1000, 2000, t0 + Duration::from_millis(100), 1),
            Decision::Undecided
        );
        assert_eq!(
            trickle.observe(1000, 3000, t0 + PROBE_TIME, 1),
            Decision::CutAt(RANGE_SIZE)
        );
        // A slow stream with nothing left after the cut stays alone.
        let mut near_end = Probe::new(RANGE_SIZE);
        near_end.observe(1, 1, t0, 1);
        assert_eq!(near_end.observe(1, 2, t0 + PROBE_TIME, 1), Decision::Single);
    }
}
