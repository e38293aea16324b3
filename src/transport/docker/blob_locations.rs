//! Which repositories of one registry hold which blobs, as far as this session has seen, and
//! which blobs are being pushed there right now.
//!
//! A registry only answers "I have it" for a blob in the repository asked about, so an image
//! pushed to `mirror/b` does not see the base layer another image already pushed to `mirror/a`.
//! With this record a destination asks the registry to mount the blob from `mirror/a` instead
//! of sending it again; and when another image of the same session is pushing that blob right
//! now, it waits for that push and then mounts, so a blob shared by many images crosses the
//! network once. containers/image keeps the same knowledge across runs (its blob info cache);
//! ferry keeps it for one session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::digest::Digest;

/// How many known repositories a destination tries to mount a blob from before pushing it.
pub const MOUNT_CANDIDATES: usize = 3;

#[derive(Debug, Default)]
struct Known {
    /// Repositories (paths without the host) known to hold the blob, newest last.
    repositories: Vec<String>,
    /// Set while someone pushes it; its sender is dropped when that push ends either way.
    pushing: Option<watch::Receiver<()>>,
}

/// The blobs of one registry this session knows about. Shared by every destination on the
/// registry (`Arc`); every method takes `&self`.
#[derive(Debug, Default)]
pub struct BlobLocations {
    blobs: Mutex<HashMap<Digest, Known>>,
}

/// The right to push a blob while others wait for it. Dropping it (the push finished, failed,
/// or the copy was abandoned) wakes the waiters.
#[derive(Debug)]
pub struct PushClaim {
    locations: Arc<BlobLocations>,
    digest: Digest,
    _done: watch::Sender<()>,
}

impl Drop for PushClaim {
    fn drop(&mut self) {
        let mut blobs = self.locations.lock();
        if let Some(k) = blobs.get_mut(&self.digest) {
            k.pushing = None;
        }
    }
}

/// What [`BlobLocations::claim`] found.
#[derive(Debug)]
pub enum Claim {
    /// Nobody else is pushing the blob: push it, holding this until done.
    Push(PushClaim),
    /// Another image is pushing it: wait with [`PushInProgress::finished`], then look again.
    Wait(PushInProgress),
}

/// A push by someone else.
#[derive(Debug)]
pub struct PushInProgress(watch::Receiver<()>);

impl PushInProgress {
    /// Resolves when that push has ended, successfully or not.
    pub async fn finished(mut self) {
        // The sender never sends; changed() returns when it is dropped.
        while self.0.changed().await.is_ok() {}
    }
}

impl BlobLocations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Known>> {
        // Each change is one assignment, so a poisoned map is still whole.
        self.blobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes that `repository` holds `digest`.
    pub fn record(&self, digest: &Digest, repository: &str) {
        let mut blobs = self.lock();
        let k = blobs.entry(digest.clone()).or_default();
        if !k.repositories.iter().any(|r| r == repository) {
            k.repositories.push(repository.to_string());
        }
    }

    /// Whether `repository` is known to hold `digest`.
    pub fn holds(&self, digest: &Digest, repository: &str) -> bool {
        self.lock()
            .get(digest)
            .is_some_and(|k| k.repositories.iter().any(|r| r == repository))
    }

    /// Repositories other than `except` known to hold `digest`, newest first, at most
    /// [`MOUNT_CANDIDATES`].
    pub fn candidates(&self, digest: &Digest, except: &str) -> Vec<String> {
        self.lock()
            .get(digest)
            .map(|k| {
                k.repositories
                    .iter()
                    .rev()
                    .filter(|r| *r != except)
                    .take(MOUNT_CANDIDATES)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Claims the push of `digest`, or says who is pushing it.
    pub fn claim(self: &Arc<Self>, digest: &Digest) -> Claim {
        let mut blobs = self.lock();
        let k = blobs.entry(digest.clone()).or_default();
        if let Some(rx) = &k.pushing
            && rx.has_changed().is_ok()
        {
            return Claim::Wait(PushInProgress(rx.clone()));
        }
        let (tx, rx) = watch::channel(());
        k.pushing = Some(rx);
        Claim::Push(PushClaim {
            locations: self.clone(),
            digest: digest.clone(),
            _done: tx,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    #[test]
    fn candidates_are_other_repositories_newest_first() {
        let l = BlobLocations::default();
        for r in ["a", "b", "c", "d", "b"] {
            l.record(&d(1), r);
        }
        assert_eq!(l.candidates(&d(1), "c"), vec!["d", "b", "a"]);
        assert!(l.candidates(&d(2), "x").is_empty());
    }

    #[tokio::test]
    async fn one_push_at_a_time_and_waiters_wake_when_it_ends() {
        let l = Arc::new(BlobLocations::default());
        let Claim::Push(first) = l.claim(&d(1)) else {
            panic!("the first claim pushes");
        };
        let Claim::Wait(wait) = l.claim(&d(1)) else {
            panic!("a second claim waits");
        };
        // Another blob is independent.
        assert!(matches!(l.claim(&d(2)), Claim::Push(_)));
        let waiter = tokio::spawn(wait.finished());
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        l.record(&d(1), "a");
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("task");
        assert!(matches!(l.claim(&d(1)), Claim::Push(_)));
    }
}
