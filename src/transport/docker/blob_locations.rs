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
    /// Per repository, set while someone makes it present there (a mount, or a push).
    landing: HashMap<String, watch::Receiver<()>>,
}

/// The blobs of one registry this session knows about. Shared by every destination on the
/// registry (`Arc`); every method takes `&self`.
#[derive(Debug, Default)]
pub struct BlobLocations {
    blobs: Mutex<HashMap<Digest, Known>>,
}

/// What a claim is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Sending the blob's bytes to the registry (one push per registry at a time).
    Push,
    /// Making the blob present in one repository, by mount or push (one at a time per
    /// repository: the distribution registry rewrites a repository's link file on each mount,
    /// and a manifest checked while it is rewritten fails with "digest invalid").
    Land(String),
}

/// The right to do what a [`Scope`] names while others wait. Dropping it (done, failed, or
/// the copy abandoned) wakes the waiters.
#[derive(Debug)]
pub struct ClaimGuard {
    locations: Arc<BlobLocations>,
    digest: Digest,
    scope: Scope,
    _done: watch::Sender<()>,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let mut blobs = self.locations.lock();
        if let Some(k) = blobs.get_mut(&self.digest) {
            match &self.scope {
                Scope::Push => k.pushing = None,
                Scope::Land(repo) => {
                    k.landing.remove(repo);
                }
            }
        }
    }
}

/// What [`BlobLocations::claim`] found.
#[derive(Debug)]
pub enum Claim {
    /// Nobody else holds it: go ahead, holding this until done.
    Mine(ClaimGuard),
    /// Another image holds it: wait with [`InProgress::finished`], then look again.
    Wait(InProgress),
}

/// Something another image is doing with a blob.
#[derive(Debug)]
pub struct InProgress(watch::Receiver<()>);

impl InProgress {
    /// Resolves when it has ended, successfully or not.
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

    /// Claims `scope` for `digest`, or says who holds it.
    pub fn claim(self: &Arc<Self>, digest: &Digest, scope: Scope) -> Claim {
        let mut blobs = self.lock();
        let k = blobs.entry(digest.clone()).or_default();
        let held = match &scope {
            Scope::Push => k.pushing.as_ref(),
            Scope::Land(repo) => k.landing.get(repo),
        };
        // A receiver whose sender is gone is a claim whose guard is being dropped right now.
        if let Some(rx) = held
            && rx.has_changed().is_ok()
        {
            return Claim::Wait(InProgress(rx.clone()));
        }
        let (tx, rx) = watch::channel(());
        match &scope {
            Scope::Push => k.pushing = Some(rx),
            Scope::Land(repo) => {
                k.landing.insert(repo.clone(), rx);
            }
        }
        Claim::Mine(ClaimGuard {
            locations: self.clone(),
            digest: digest.clone(),
            scope,
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
    async fn one_claim_at_a_time_and_waiters_wake_when_it_ends() {
        let l = Arc::new(BlobLocations::default());
        let Claim::Mine(first) = l.claim(&d(1), Scope::Push) else {
            panic!("the first claim is granted");
        };
        let Claim::Wait(wait) = l.claim(&d(1), Scope::Push) else {
            panic!("a second claim waits");
        };
        // Another blob, or landing in a repository, is independent of the push.
        assert!(matches!(l.claim(&d(2), Scope::Push), Claim::Mine(_)));
        let Claim::Mine(land_a) = l.claim(&d(1), Scope::Land("a".into())) else {
            panic!("landing in a is free");
        };
        assert!(matches!(
            l.claim(&d(1), Scope::Land("a".into())),
            Claim::Wait(_)
        ));
        assert!(matches!(
            l.claim(&d(1), Scope::Land("b".into())),
            Claim::Mine(_)
        ));
        drop(land_a);
        assert!(matches!(
            l.claim(&d(1), Scope::Land("a".into())),
            Claim::Mine(_)
        ));

        let waiter = tokio::spawn(wait.finished());
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        l.record(&d(1), "a");
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("task");
        assert!(matches!(l.claim(&d(1), Scope::Push), Claim::Mine(_)));
    }
}
