//! What every request to one registry waits for, whichever image it serves: a cap on requests
//! in flight to that registry, and a registry-wide pause after a 429 Too Many Requests.
//!
//! A registry that says "slow down" says it to the client, not to one request: when one request
//! gets a 429 with `Retry-After`, every request to that registry (from every image a sync is
//! copying) waits until the pause is over, instead of the others carrying on and earning their
//! own 429s. The session keeps one [`RegistryLimits`] per registry host and hands it to every
//! client of that host ([`crate::session::Session`]).
//!
//! A request holds its slot until the registry answers (the status and headers); a blob's body
//! streams after that, bounded by the copy's cap on blobs in flight instead. A large blob
//! fetched in ranges uses more connections than its own: those come from a per-registry pool of
//! range streams ([`RegistryLimits::range_streams`]), so the connections to a registry stay
//! bounded whatever a sync runs at once; and the count of large blobs being fetched from the
//! registry at once ([`RegistryLimits::large_blob`]) tells a stream's speed from the link's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The shared limits of one registry.
#[derive(Debug)]
pub struct RegistryLimits {
    /// `None`: no cap on requests in flight.
    requests: Option<Arc<Semaphore>>,
    /// No request starts before this instant.
    paused_until: Mutex<Option<Instant>>,
    /// The connections blobs fetched in ranges may use beyond each blob's own.
    range_streams: Arc<Semaphore>,
    /// Large blobs (those [`super::ranges`] fetches) being fetched from this registry now.
    large_blobs: Arc<AtomicUsize>,
}

/// One large blob being fetched, counted in [`RegistryLimits::large_blob`] until dropped.
#[derive(Debug)]
pub struct LargeBlob {
    count: Arc<AtomicUsize>,
}

impl LargeBlob {
    /// How many large blobs are being fetched from the registry now, this one included.
    pub fn at_once(&self) -> usize {
        self.count.load(Ordering::Relaxed).max(1)
    }
}

impl Drop for LargeBlob {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connections to one registry that blobs fetched in ranges may use beyond each blob's own
/// (so a large blob alone uses up to this many more), when no request cap says fewer.
pub const EXTRA_RANGE_STREAMS: usize = 5;

impl Default for RegistryLimits {
    fn default() -> RegistryLimits {
        RegistryLimits::new(None)
    }
}

/// A request's place among the registry's requests in flight; the place is given back when
/// this is dropped.
#[derive(Debug)]
pub struct RequestSlot {
    _permit: Option<OwnedSemaphorePermit>,
}

impl RegistryLimits {
    /// Limits allowing at most `max_requests` requests in flight (`None` or 0: no cap).
    pub fn new(max_requests: Option<usize>) -> RegistryLimits {
        let max_requests = max_requests.filter(|n| *n > 0);
        // Under a request cap of N, ranges use at most N connections beyond the blobs' own.
        let extra = max_requests.map_or(EXTRA_RANGE_STREAMS, |n| n.min(EXTRA_RANGE_STREAMS));
        RegistryLimits {
            requests: max_requests.map(|n| Arc::new(Semaphore::new(n))),
            paused_until: Mutex::new(None),
            range_streams: Arc::new(Semaphore::new(extra)),
            large_blobs: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Counts one more large blob being fetched from this registry, until the guard is dropped:
    /// streams that share the link each see a part of it, so a stream's speed times this
    /// count is what the link gives.
    pub fn large_blob(&self) -> LargeBlob {
        self.large_blobs.fetch_add(1, Ordering::Relaxed);
        LargeBlob {
            count: self.large_blobs.clone(),
        }
    }

    /// The connections beyond each blob's own that blobs fetched in ranges share: a range
    /// holds one while it is fetched.
    pub fn range_streams(&self) -> Arc<Semaphore> {
        self.range_streams.clone()
    }

    /// When the registry-wide pause ends, if one is running.
    pub fn paused_until(&self) -> Option<Instant> {
        let until = *self
            .paused_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        until.filter(|u| *u > Instant::now())
    }

    /// Pauses every request to this registry for `wait` from now (a longer pause already
    /// running is kept).
    pub fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut p = self
            .paused_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if p.is_none_or(|current| current < until) {
            *p = Some(until);
        }
    }

    /// Waits until the registry is not paused and a request slot is free, and takes the slot.
    pub async fn admit(&self) -> RequestSlot {
        loop {
            if let Some(until) = self.paused_until() {
                tokio::time::sleep_until(until).await;
                continue;
            }
            let permit = match &self.requests {
                // A closed semaphore (never closed here) would only mean no cap.
                Some(s) => s.clone().acquire_owned().await.ok(),
                None => None,
            };
            // A 429 may have paused the registry while this request waited for its slot.
            if self.paused_until().is_some() {
                continue;
            }
            return RequestSlot { _permit: permit };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_request_until_it_ends() {
        let limits = Arc::new(RegistryLimits::new(None));
        let start = Instant::now();
        limits.pause_for(Duration::from_secs(2));
        let mut waiting = Vec::new();
        for _ in 0..3 {
            let l = limits.clone();
            waiting.push(tokio::spawn(async move {
                let _slot = l.admit().await;
                Instant::now()
            }));
        }
        for w in waiting {
            let admitted = w.await.expect("task");
            assert!(admitted - start >= Duration::from_secs(2));
        }
        // A shorter pause does not cut a longer one short.
        limits.pause_for(Duration::from_secs(5));
        limits.pause_for(Duration::from_secs(1));
        let before = Instant::now();
        let _slot = limits.admit().await;
        assert!(Instant::now() - before >= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn the_cap_bounds_requests_in_flight() {
        let limits = Arc::new(RegistryLimits::new(Some(2)));
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (l, f, m) = (limits.clone(), in_flight.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = l.admit().await;
                let now = f.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                m.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                f.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_set_while_waiting_for_a_slot_is_honoured() {
        let limits = Arc::new(RegistryLimits::new(Some(1)));
        let first = limits.admit().await;
        let l = limits.clone();
        let start = Instant::now();
        let second = tokio::spawn(async move {
            let _slot = l.admit().await;
            Instant::now()
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        limits.pause_for(Duration::from_secs(3));
        drop(first);
        let admitted = second.await.expect("task");
        assert!(admitted - start >= Duration::from_secs(3));
    }
}
