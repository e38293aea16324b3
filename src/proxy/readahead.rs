//! Read-ahead: the layers of an opened image fetched before the client asks for them.
//!
//! The client (the `containers-image-proxy` crate, and bootc or rpm-ostree above it) asks for
//! one layer at a time and reads it to its end before asking for the next, so a proxy that only
//! answers what is asked fetches one blob at a time where `ferry copy` fetches six. Once an image
//! is opened (its manifest is known and admitted), its config is read (the client asks for it
//! first), then its layers are fetched in manifest order, at most
//! [`super::ServeOptions::read_ahead_blobs`] at once (large layers [`NARROW`] at a time while
//! the link proves fast), each verified against its digest as it streams, into a spool file of
//! its own. The fetches run on the threads of [`super::priority::Background`], at the lowest
//! CPU priority while no reader waits on them. `GetBlob` and `GetRawBlob` then serve the spool
//! (a [`Follower`]): a finished one (verified whole), or one still filling, following the fetch as
//! it writes; the pipe moves the file's bytes with `splice(2)`, never through ferry's memory. A
//! follower that has caught up with its fetch is handed the rest of the blob through a small
//! channel instead: those bytes skip the spool file.
//!
//! Bounds: the spool holds at most [`super::ServeOptions::read_ahead_bytes`] (a layer is
//! fetched ahead only when its whole size fits beside what is spooled and not yet served; a
//! layer larger than the whole bound is never fetched ahead). Memory holds only the chunks in
//! flight. Each spool file is unnamed (`O_TMPFILE`, in `$TMPDIR` or `/var/tmp`): nothing else
//! can open it, and it is gone when its last descriptor closes, so nothing is left behind
//! whichever way the proxy ends, `kill -9` included. A spool is dropped when it has been
//! served, when the image is closed, and when the proxy ends.
//!
//! What the client sees does not change: a blob asked for before its fetch started, asked for
//! again, or whose fetch failed before the client asked, is read from the source as it would be
//! without read-ahead. A fetch that fails while the client follows it ends the client's pipe in
//! that error (`FinishPipe`, or `GetRawBlob`'s error pipe), as a direct read would. A spool that
//! finished was verified whole; one followed while it fills passes bytes before the digest is
//! known, and a mismatch ends it in the error, as a direct read does.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::image::ProxyImage;
use super::priority::Priority;
use super::stall::StallWatch;
use crate::digest::{Digest, VerifyError, verify_error};
use crate::manifest::Descriptor;
use crate::transport::docker::ranges::{FAST_STREAM, RANGED_FROM};

/// The most bytes one read or write of a spool file moves.
const CHUNK: usize = 1 << 20;

/// Where spool files go when `$TMPDIR` does not say (large temporary files, as containers/image
/// puts them).
const DEFAULT_SPOOL_DIR: &str = "/var/tmp";

/// Layers at least this large (those `ferry copy` would fetch in ranges over a slow link) are
/// fetched ahead [`NARROW`] at a time while the link proves fast; smaller ones are fetched as
/// many at once as the limits allow, their time being mostly round trips.
const LARGE: u64 = RANGED_FROM;

/// How many large layers are fetched at once while the link is fast: the one the client reads
/// (or will read next) and the one after it. On a fast link the fetches are limited by the CPU
/// (hashing, spooling, the client's own hashing), so more of them only take it from the client,
/// whose layer then arrives later (measured: docs/performance.md, "the client first").
const NARROW: usize = 2;

/// How often a driver waiting to start a large layer looks again at how fast the link is.
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// How long a large layer's fetch runs before its speed counts (its first round trips are not a
/// measure of the link).
const PROBE_AFTER: Duration = Duration::from_millis(100);

/// A large layer's fetch with at most this many bytes left no longer counts against
/// [`NARROW`]: the next one starts while it ends, so that its request's round trip is not
/// waited for in a row.
const ENDING: u64 = 4 << 20;

/// The read-ahead of one opened image. Dropping it stops every fetch and drops every spool not
/// being served.
pub(crate) struct ReadAhead {
    shared: Arc<Shared>,
    driver: JoinHandle<()>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when spooled bytes are given back to the budget.
    released: Notify,
    /// The priority of the threads the fetches run on, raised while a reader waits on one.
    priority: Arc<Priority>,
    /// The large layers being fetched: how many and how fast.
    large: Arc<Large>,
}

/// The large layers being fetched, each with when it started and how many bytes it received.
#[derive(Default)]
struct Large {
    fetches: Mutex<Vec<Arc<Rate>>>,
    /// Signalled when one ends, or is about to.
    ending: Notify,
}

struct Rate {
    started: Instant,
    size: u64,
    received: AtomicU64,
}

impl Rate {
    fn ending(&self, received: u64) -> bool {
        received.saturating_add(ENDING) >= self.size
    }
}

impl Large {
    fn start(self: &Arc<Self>, size: u64, started: Instant) -> LargeFetch {
        let rate = Arc::new(Rate {
            started,
            size,
            received: AtomicU64::new(0),
        });
        self.fetches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(rate.clone());
        LargeFetch {
            large: self.clone(),
            rate,
        }
    }

    /// Whether another large layer may start now: fewer than [`NARROW`] are being fetched
    /// (not counting those about to end), or those that ran long enough to tell deliver less
    /// than [`FAST_STREAM`] bytes a second together (the link, not this host, is what limits
    /// them: more connections add to it).
    fn may_start(&self, now: Instant) -> bool {
        let fetches = self.fetches.lock().unwrap_or_else(|e| e.into_inner());
        let going = fetches
            .iter()
            .filter(|f| !f.ending(f.received.load(Ordering::Relaxed)))
            .count();
        if going < NARROW {
            return true;
        }
        let mut told = false;
        let mut rate = 0.0;
        for f in fetches.iter() {
            let ran = now.saturating_duration_since(f.started);
            if ran >= PROBE_AFTER {
                told = true;
                rate += f.received.load(Ordering::Relaxed) as f64 / ran.as_secs_f64();
            }
        }
        told && rate < FAST_STREAM as f64
    }
}

/// One large layer being fetched; dropping it says the fetch ended.
struct LargeFetch {
    large: Arc<Large>,
    rate: Arc<Rate>,
}

impl LargeFetch {
    /// Counts `n` more bytes received, and says so when the fetch is about to end.
    fn received(&self, n: u64) {
        let before = self.rate.received.fetch_add(n, Ordering::Relaxed);
        if !self.rate.ending(before) && self.rate.ending(before + n) {
            self.large.ending.notify_one();
        }
    }
}

impl Drop for LargeFetch {
    fn drop(&mut self) {
        self.large
            .fetches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|f| !Arc::ptr_eq(f, &self.rate));
        self.large.ending.notify_one();
    }
}

struct State {
    entries: HashMap<Digest, Entry>,
    /// Bytes of the budget not reserved by a spool.
    free: u64,
}

enum Entry {
    /// Not fetched yet.
    Queued,
    /// Being fetched, or fetched.
    Spooled(Arc<Spool>),
    /// Served, or left to be read from the source.
    Gone,
}

/// One layer's spool file and how far its fetch has got.
struct Spool {
    digest: Digest,
    file: File,
    progress: watch::Receiver<Progress>,
    /// Set by a reader that has caught up with the fetch: the fetch hands it the rest of the
    /// blob through this channel instead of writing it to the file.
    hand_over: Mutex<Option<mpsc::Sender<Vec<Bytes>>>>,
    /// Raised while a reader waits on the fetch.
    priority: Arc<Priority>,
    _reservation: Reservation,
}

/// How many batches (of at most [`CHUNK`] each) a fetch hands over ahead of its reader.
const HAND_OVER_BATCHES: usize = 2;

#[derive(Debug, Clone, Default)]
struct Progress {
    /// Bytes in the file, from its start.
    written: u64,
    /// The rest of the blob goes to the reader that asked for it, not to the file (which then
    /// ends at `written`).
    handed_over: bool,
    /// How the fetch ended: `Ok` once every byte was written and matched the digest.
    end: Option<Result<(), Failure>>,
}

/// A fetch's error, kept so that every reader gets it (an [`std::io::Error`] is not `Clone`).
#[derive(Debug, Clone)]
struct Failure {
    kind: std::io::ErrorKind,
    message: String,
    verify: Option<VerifyError>,
}

impl Failure {
    fn of(e: &std::io::Error) -> Failure {
        Failure {
            kind: e.kind(),
            message: e.to_string(),
            verify: verify_error(e).cloned(),
        }
    }

    fn to_io(&self) -> std::io::Error {
        match &self.verify {
            Some(v) => std::io::Error::new(self.kind, v.clone()),
            None => std::io::Error::new(self.kind, self.message.clone()),
        }
    }
}

/// Bytes of the budget held by one spool, given back when it is dropped.
struct Reservation {
    shared: Weak<Shared>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.lock().free += self.bytes;
            shared.released.notify_one();
        }
    }
}

/// What the budget says about a layer.
enum Reserve {
    Now(Reservation),
    Wait,
    Skip,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reserve(self: &Arc<Self>, layer: &Descriptor, budget: u64) -> Reserve {
        let mut st = self.lock();
        if !matches!(st.entries.get(&layer.digest), Some(Entry::Queued)) || layer.size > budget {
            return Reserve::Skip;
        }
        if layer.size > st.free {
            return Reserve::Wait;
        }
        st.free -= layer.size;
        Reserve::Now(Reservation {
            shared: Arc::downgrade(self),
            bytes: layer.size,
        })
    }

    /// Makes `spool` the layer's entry, unless the client took the layer meanwhile (then the
    /// spool is handed back, to be dropped outside the lock).
    fn install(&self, spool: Arc<Spool>) -> Result<(), Arc<Spool>> {
        let mut st = self.lock();
        match st.entries.get_mut(&spool.digest) {
            Some(e @ Entry::Queued) => {
                *e = Entry::Spooled(spool);
                Ok(())
            }
            _ => Err(spool),
        }
    }

    fn give_up(&self, digest: &Digest) {
        if let Some(e) = self.lock().entries.get_mut(digest) {
            *e = Entry::Gone;
        }
    }
}

/// How a read-ahead is bounded.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) blobs: usize,
    pub(crate) bytes: u64,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) stall: Duration,
}

impl ReadAhead {
    /// Starts fetching `image`'s layers, within `limits`, on `runtime` (the caller's when
    /// `None`), whose threads' priority is `priority`.
    pub(crate) fn start(
        image: Arc<ProxyImage>,
        limits: Limits,
        runtime: Option<&tokio::runtime::Handle>,
        priority: Arc<Priority>,
    ) -> ReadAhead {
        let layers = image.layers().to_vec();
        let entries = layers
            .iter()
            .map(|l| (l.digest.clone(), Entry::Queued))
            .collect();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                entries,
                free: limits.bytes,
            }),
            released: Notify::new(),
            priority,
            large: Arc::default(),
        });
        // The config is read on the caller's threads, at its priority: the client asks for it
        // next, and waits on this read when it does.
        let config = {
            let image = image.clone();
            tokio::spawn(async move { image.prefetch_config().await })
        };
        let task = drive(shared.clone(), image, layers, limits, config);
        let driver = match runtime {
            Some(r) => r.spawn(task),
            None => tokio::spawn(task),
        };
        ReadAhead { shared, driver }
    }

    /// The blob `digest` from its spool (finished, or followed as it fills), or `None` when it
    /// is to be read from the source: not fetched ahead (yet), already served, or failed
    /// before it was asked for. Either way the layer is not fetched ahead any more.
    pub(crate) fn take(&self, digest: &Digest) -> Option<Follower> {
        let taken = {
            let mut st = self.shared.lock();
            let entry = st.entries.get_mut(digest)?;
            std::mem::replace(entry, Entry::Gone)
        };
        let Entry::Spooled(spool) = taken else {
            return None;
        };
        let failed = matches!(spool.progress.borrow().end, Some(Err(_)));
        if failed {
            tracing::debug!("{digest}: its read-ahead failed; reading it from the source");
            return None;
        }
        Some(Follower::new(spool))
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.driver.abort();
        // Spools not being served close now (their reservations lock the state: dropped
        // outside the lock).
        let entries = std::mem::take(&mut self.shared.lock().entries);
        drop(entries);
    }
}

/// Fetches the layers in order, at most `limits.blobs` at once and `limits.bytes` spooled.
async fn drive(
    shared: Arc<Shared>,
    image: Arc<ProxyImage>,
    layers: Vec<Descriptor>,
    limits: Limits,
    config: JoinHandle<Result<(), super::MethodError>>,
) {
    // The config first: the client asks for it before any layer, and behind six layers in
    // flight its one small request waited 20-170 ms (measured on a 2-core machine). A failure
    // is the client's to see when it asks (the config is then read again).
    match config.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("reading the config ahead: {e}"),
        Err(e) => tracing::debug!("reading the config ahead: {e}"),
    }
    let mut tasks = JoinSet::new();
    let slots = Arc::new(Semaphore::new(limits.blobs.max(1)));
    for layer in layers {
        if layer.size >= LARGE {
            while !shared.large.may_start(Instant::now()) {
                let ending = shared.large.ending.notified();
                tokio::select! {
                    () = ending => {}
                    () = tokio::time::sleep(PROBE_EVERY) => {}
                }
            }
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let reservation = loop {
            match shared.reserve(&layer, limits.bytes) {
                Reserve::Now(r) => break Some(r),
                Reserve::Skip => break None,
                Reserve::Wait => shared.released.notified().await,
            }
        };
        let Some(reservation) = reservation else {
            continue;
        };
        let dir = limits.dir.clone();
        let file = tokio::task::spawn_blocking(move || spool_file(dir)).await;
        let file = match file {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                tracing::debug!("{}: no spool file for the read-ahead: {e}", layer.digest);
                shared.give_up(&layer.digest);
                continue;
            }
            Err(e) => {
                tracing::debug!("{}: no spool file for the read-ahead: {e}", layer.digest);
                shared.give_up(&layer.digest);
                continue;
            }
        };
        let (tx, rx) = watch::channel(Progress::default());
        let spool = Arc::new(Spool {
            digest: layer.digest.clone(),
            file,
            progress: rx,
            hand_over: Mutex::new(None),
            priority: shared.priority.clone(),
            _reservation: reservation,
        });
        if let Err(spool) = shared.install(spool.clone()) {
            drop(spool);
            continue;
        }
        let image = image.clone();
        let stall = limits.stall;
        let large = (layer.size >= LARGE).then(|| shared.large.start(layer.size, Instant::now()));
        tasks.spawn(async move {
            let result = fill(&image, &layer, &spool, &tx, stall, large.as_ref()).await;
            drop(large);
            if let Err(e) = &result {
                tracing::debug!("read-ahead of {}: {e}", layer.digest);
            }
            tx.send_modify(|p| p.end = Some(result.map_err(|e| Failure::of(&e))));
            drop(slot);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// An unnamed file in the spool directory.
fn spool_file(dir: Option<PathBuf>) -> std::io::Result<File> {
    let dir = dir
        .or_else(|| {
            std::env::var_os("TMPDIR")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SPOOL_DIR));
    tempfile::tempfile_in(&dir).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("creating a spool file in {}: {e}", dir.display()),
        )
    })
}

/// Fetches `layer` into `spool`, verified as it streams, telling readers how far it got.
async fn fill(
    image: &ProxyImage,
    layer: &Descriptor,
    spool: &Arc<Spool>,
    progress: &watch::Sender<Progress>,
    stall: Duration,
    large: Option<&LargeFetch>,
) -> std::io::Result<()> {
    let mut watch = StallWatch::new(stall);
    let mut stream = watch
        .wait(image.admitted().blob(layer))
        .await?
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut offset = 0u64;
    let mut hand_over: Option<mpsc::Sender<Vec<Bytes>>> = None;
    loop {
        let Some(first) = watch.wait(stream.next()).await? else {
            return Ok(());
        };
        let first = first?;
        watch.record(first.len() as u64);
        // Whatever else has arrived goes in the same write.
        let mut batch = vec![first];
        let mut size = batch.iter().map(Bytes::len).sum::<usize>();
        let mut ended = false;
        while size < CHUNK {
            match stream.next().now_or_never() {
                Some(Some(chunk)) => {
                    let chunk = chunk?;
                    watch.record(chunk.len() as u64);
                    size += chunk.len();
                    batch.push(chunk);
                }
                Some(None) => {
                    ended = true;
                    break;
                }
                None => break,
            }
        }
        if let Some(l) = large {
            l.received(size as u64);
        }
        if hand_over.is_none() {
            hand_over = spool
                .hand_over
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if hand_over.is_some() {
                progress.send_modify(|p| p.handed_over = true);
            }
        }
        if let Some(reader) = &hand_over {
            // The reader has caught up: the rest goes straight to it, not through the file.
            reader
                .send(batch)
                .await
                .map_err(|_| std::io::Error::other("the reader of the read-ahead went away"))?;
            if ended {
                return Ok(());
            }
            continue;
        }
        let writer = spool.clone();
        let at = offset;
        tokio::task::spawn_blocking(move || {
            let mut at = at;
            for chunk in batch {
                writer.file.write_all_at(&chunk, at)?;
                at += chunk.len() as u64;
            }
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(std::io::Error::other)??;
        offset += size as u64;
        progress.send_modify(|p| p.written = offset);
        if ended {
            return Ok(());
        }
    }
}

/// A reader of one spool, from its start, following its fetch until it ends: it says how many
/// bytes are ready past its offset, and the pipe moves them out of the file itself (`splice(2)`,
/// see `super::pipes`), so the spooled bytes are not read back into memory.
pub(crate) struct Follower {
    progress: watch::Receiver<Progress>,
    spool: Arc<Spool>,
    offset: u64,
    /// What the fetch hands over once this reader caught up with it (`None` before it asked,
    /// and once the channel closed).
    handed: Option<mpsc::Receiver<Vec<Bytes>>>,
    asked: bool,
}

/// What a [`Follower`] has next.
pub(crate) enum Next {
    /// This many bytes in the file past the offset.
    File(u64),
    /// Bytes the fetch handed over (they follow what is in the file).
    Bytes(Vec<Bytes>),
    /// Every byte was read and the fetch ended verified.
    End,
}

impl Follower {
    fn new(spool: Arc<Spool>) -> Follower {
        Follower {
            progress: spool.progress.clone(),
            spool,
            offset: 0,
            handed: None,
            asked: false,
        }
    }

    /// What is next: bytes in the file past the offset, bytes handed over by the fetch, or
    /// the end, waiting for the fetch while there is nothing. The fetch's error if it failed
    /// (even with bytes left unread: they are not to be trusted, and the pipe's end says so),
    /// an error if the fetch stopped before its end (the image was closed).
    ///
    /// A reader that has caught up with the fetch asks it to hand the rest over (bounded by
    /// [`HAND_OVER_BATCHES`]): the bytes then go to the pipe without a round trip through the
    /// file, and the fetch goes no faster than the reader.
    pub(crate) async fn next(&mut self) -> std::io::Result<Next> {
        loop {
            let (written, end, handed_over) = {
                let p = self.progress.borrow_and_update();
                (p.written, p.end.clone(), p.handed_over)
            };
            if let Some(Err(f)) = end {
                return Err(f.to_io());
            }
            if self.offset < written {
                return Ok(Next::File(written - self.offset));
            }
            if handed_over && let Some(rx) = &mut self.handed {
                let got = match rx.try_recv() {
                    Ok(batch) => Some(batch),
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        // The reader waits on the fetch: its threads go back to the proxy's
                        // own priority meanwhile.
                        let _waiting = self.spool.priority.waiting();
                        rx.recv().await
                    }
                };
                match got {
                    Some(batch) => return Ok(Next::Bytes(batch)),
                    // The fetch is over: its end follows.
                    None => self.handed = None,
                }
                continue;
            }
            if end.is_some() {
                return Ok(Next::End);
            }
            if !self.asked {
                self.asked = true;
                let (tx, rx) = mpsc::channel(HAND_OVER_BATCHES);
                *self
                    .spool
                    .hand_over
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(tx);
                self.handed = Some(rx);
            }
            let changed = {
                let _waiting = self.spool.priority.waiting();
                self.progress.changed().await
            };
            if changed.is_err() {
                return Err(std::io::Error::other(format!(
                    "the read-ahead of blob {} stopped before its end (the image was closed)",
                    self.spool.digest
                )));
            }
        }
    }

    /// The spool file and the offset of the next byte to read, which the caller advances by
    /// what it read (at most what [`Follower::ready`] said).
    pub(crate) fn file_at(&mut self) -> (&File, &mut u64) {
        (&self.spool.file, &mut self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    fn spool(dir: &std::path::Path) -> (Arc<Spool>, watch::Sender<Progress>) {
        let (tx, rx) = watch::channel(Progress::default());
        let spool = Arc::new(Spool {
            digest: digest('a'),
            file: spool_file(Some(dir.to_path_buf())).unwrap(),
            progress: rx,
            hand_over: Mutex::new(None),
            priority: Priority::unchanged(),
            _reservation: Reservation {
                shared: Weak::new(),
                bytes: 0,
            },
        });
        (spool, tx)
    }

    /// A large fetch of `size` bytes that started `ago` ms before `now` and received
    /// `received`.
    fn fetch(large: &Arc<Large>, now: Instant, ago: u64, size: u64, received: u64) -> LargeFetch {
        let f = large.start(size, now - Duration::from_millis(ago));
        f.rate.received.store(received, Ordering::Relaxed);
        f
    }

    #[test]
    fn large_layers_go_two_at_a_time_on_a_fast_link_and_wider_on_a_slow_one() {
        const MIB: u64 = 1 << 20;
        let now = Instant::now();
        // Fewer than two: the next starts.
        let large = Arc::new(Large::default());
        assert!(large.may_start(now));
        let _a = fetch(&large, now, 500, 64 * MIB, 0);
        assert!(large.may_start(now));
        // Two that just started: too early to tell, so no third.
        let large = Arc::new(Large::default());
        let _a = fetch(&large, now, 10, 64 * MIB, MIB);
        let _b = fetch(&large, now, 10, 64 * MIB, 0);
        assert!(!large.may_start(now));
        // Two on a fast link (together 200 MiB/s): no third.
        let large = Arc::new(Large::default());
        let _a = fetch(&large, now, 200, 64 * MIB, 30 * MIB);
        let _b = fetch(&large, now, 200, 64 * MIB, 10 * MIB);
        assert!(!large.may_start(now));
        // Two on a slow link (together 50 MiB/s): a third, and a fourth.
        let large = Arc::new(Large::default());
        let _a = fetch(&large, now, 200, 64 * MIB, 5 * MIB);
        let _b = fetch(&large, now, 200, 64 * MIB, 5 * MIB);
        assert!(large.may_start(now));
        let _c = fetch(&large, now, 50, 64 * MIB, 0);
        assert!(large.may_start(now), "the new one is not counted yet");
        // A fast one about to end does not count against the two: the next starts while it
        // ends (its request's round trip overlaps the end).
        let large = Arc::new(Large::default());
        let _a = fetch(&large, now, 200, 64 * MIB, 61 * MIB);
        let b = fetch(&large, now, 200, 64 * MIB, 30 * MIB);
        assert!(large.may_start(now));
        // One that ends leaves, and says so.
        let large = Arc::new(Large::default());
        let _a = fetch(&large, now, 200, 64 * MIB, 30 * MIB);
        let _c = fetch(&large, now, 200, 64 * MIB, 30 * MIB);
        assert!(!large.may_start(now));
        let ending = large.ending.notified();
        drop(_c);
        assert!(large.may_start(now));
        assert!(ending.now_or_never().is_some());
        // Crossing into its last bytes says so too.
        let ending = b.large.ending.notified();
        b.received(30 * MIB);
        assert!(ending.now_or_never().is_some());
    }

    #[test]
    fn a_digest_mismatch_reaches_every_reader_as_itself() {
        let v = VerifyError::Digest {
            expected: digest('a'),
            actual: digest('b'),
        };
        let e = std::io::Error::new(std::io::ErrorKind::InvalidData, v.clone());
        let again = Failure::of(&e).to_io();
        assert_eq!(verify_error(&again), Some(&v));
        let stall = std::io::Error::new(std::io::ErrorKind::TimedOut, "no progress");
        let again = Failure::of(&stall).to_io();
        assert_eq!(again.kind(), std::io::ErrorKind::TimedOut);
        assert!(verify_error(&again).is_none());
    }

    /// What `f` has next, read from its file (as the pipe's splice would move it) or handed
    /// over; empty at the end.
    async fn next(f: &mut Follower) -> std::io::Result<Vec<u8>> {
        match f.next().await? {
            Next::File(n) => {
                let (file, at) = f.file_at();
                let mut buf = vec![0u8; usize::try_from(n).unwrap()];
                file.read_exact_at(&mut buf, *at).unwrap();
                *at += n;
                Ok(buf)
            }
            Next::Bytes(batch) => Ok(batch.concat()),
            Next::End => Ok(Vec::new()),
        }
    }

    /// What `f` gives from now to its end.
    fn rest(mut f: Follower) -> tokio::task::JoinHandle<std::io::Result<Vec<u8>>> {
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let chunk = next(&mut f).await?;
                if chunk.is_empty() {
                    return Ok(got);
                }
                got.extend_from_slice(&chunk);
            }
        })
    }

    /// The channel a reader spawned on `s` asked for once it caught up (it is let run until
    /// it waits).
    async fn asked(s: &Spool) -> mpsc::Sender<Vec<Bytes>> {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        s.hand_over
            .lock()
            .unwrap()
            .take()
            .expect("the reader asked")
    }

    #[tokio::test]
    async fn a_reader_follows_the_file_then_gets_the_rest_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let (s, tx) = spool(dir.path());
        // The file has no name in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut reader = Follower::new(s.clone());
        s.file.write_all_at(b"one ", 0).unwrap();
        tx.send_modify(|p| p.written = 4);
        assert_eq!(next(&mut reader).await.unwrap(), b"one ");
        // Caught up: the reader waits and asks for the rest.
        let more = rest(reader);
        let handed = asked(&s).await;
        // A batch the fetch wrote before it saw the ask comes from the file first.
        s.file.write_all_at(b"two ", 4).unwrap();
        tx.send_modify(|p| {
            p.written = 8;
            p.handed_over = true;
        });
        handed
            .send(vec![
                Bytes::from_static(b"three "),
                Bytes::from_static(b"four"),
            ])
            .await
            .unwrap();
        drop(handed);
        tx.send_modify(|p| p.end = Some(Ok(())));
        assert_eq!(more.await.unwrap().unwrap(), b"two three four");
    }

    #[tokio::test]
    async fn a_fetch_that_fails_or_stops_ends_its_readers_in_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (s, tx) = spool(dir.path());
        let mut reader = Follower::new(s.clone());
        // Bytes written before the failure are not handed out after it.
        s.file.write_all_at(b"bad", 0).unwrap();
        let stall = std::io::Error::new(std::io::ErrorKind::TimedOut, "no progress");
        tx.send_modify(|p| {
            p.written = 3;
            p.end = Some(Err(Failure::of(&stall)));
        });
        let e = reader.next().await.err().unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        // Handed over, then failed (a digest mismatch at the end): the error, not an end.
        let (s, tx) = spool(dir.path());
        let more = rest(Follower::new(s.clone()));
        let handed = asked(&s).await;
        tx.send_modify(|p| p.handed_over = true);
        handed
            .send(vec![Bytes::from_static(b"unverified")])
            .await
            .unwrap();
        drop(handed);
        tx.send_modify(|p| p.end = Some(Err(Failure::of(&stall))));
        let e = more.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        // A fetch stopped (its image closed) before its end.
        let (s, tx) = spool(dir.path());
        let mut reader = Follower::new(s);
        drop(tx);
        let e = reader.next().await.err().unwrap();
        assert!(e.to_string().contains("stopped before its end"), "{e}");
    }
}
