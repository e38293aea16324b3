//! The read-ahead's own threads, which yield the CPU to the client while it has work to do.
//!
//! A pull through the proxy is a chain: the registry sends a layer, the proxy verifies it, and
//! the client (bootc, rpm-ostree) reads it and hashes it again, one layer after another, on one
//! thread. When the host's cores are all busy (the read-ahead fetching and hashing the layers
//! after the client's, the client, and on the bench a registry on the same host), the kernel
//! shares them equally between threads, so the client's one thread gets the smallest share: the
//! layers fetched ahead then wait in their spools while the client crawls, and once the fetches
//! are over it reads them with one core idle (measured: docs/performance.md, "the client
//! first"). The read-ahead is work done early, not work anyone waits for, so its tasks run on a
//! runtime of their own whose threads are at the lowest CPU priority (nice 19): on an idle core
//! they run as fast as before; on a busy one the client (and anything else the host runs) goes
//! first.
//!
//! Whoever waits on the read-ahead (a client whose reader caught up with its layer's fetch)
//! holds a [`Waiting`] guard: while one is held, the threads are back at the proxy's own
//! priority, so a layer the client waits for is never fetched at the lowest priority on a busy
//! host. Raising a thread's priority back needs `CAP_SYS_NICE` (or a high enough
//! `RLIMIT_NICE`): a proxy that cannot (checked once, on a thread of its own, when the runtime
//! is made) leaves its read-ahead at its own priority all the time, as before.

use std::sync::{Arc, Mutex, MutexGuard};

use rustix::process::{Pid, getpriority_process, setpriority_process};

/// The nice value of the read-ahead's threads while nobody waits on them: the lowest priority.
const LOW: i32 = 19;

/// The read-ahead's runtime and the priority of its threads. Dropping it stops every task on it.
pub(crate) struct Background {
    runtime: Option<tokio::runtime::Runtime>,
    priority: Arc<Priority>,
}

/// Who is at which priority: the read-ahead's threads, and how many wait on them.
pub(crate) struct Priority {
    state: Mutex<State>,
}

struct State {
    threads: Vec<Pid>,
    waiting: usize,
    /// The proxy's own nice value, which waited-on threads run at.
    base: i32,
    /// The nice value of threads nobody waits on (`None`: `base` always, since it could not be
    /// restored).
    low: Option<i32>,
}

impl State {
    fn now(&self) -> i32 {
        match self.low {
            Some(low) if self.waiting == 0 => low,
            _ => self.base,
        }
    }

    fn apply(&self) {
        let nice = self.now();
        for &tid in &self.threads {
            if let Err(e) = setpriority_process(Some(tid), nice) {
                tracing::debug!("setting the read-ahead thread {tid:?} to nice {nice}: {e}");
            }
        }
    }
}

impl Priority {
    /// Threads at `base` always (nothing lowered): for a read-ahead on the caller's runtime.
    pub(crate) fn unchanged() -> Arc<Priority> {
        Arc::new(Priority {
            state: Mutex::new(State {
                threads: Vec::new(),
                waiting: 0,
                base: 0,
                low: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn started(&self) {
        let tid = rustix::thread::gettid();
        let mut st = self.lock();
        if st.low.is_some()
            && let Err(e) = setpriority_process(Some(tid), st.now())
        {
            tracing::debug!("setting a read-ahead thread's priority: {e}");
        }
        st.threads.push(tid);
    }

    fn stopped(&self) {
        let tid = rustix::thread::gettid();
        self.lock().threads.retain(|&t| t != tid);
    }

    /// Says that the caller waits on the read-ahead until the guard is dropped: its threads run
    /// at the proxy's own priority meanwhile.
    pub(crate) fn waiting(self: &Arc<Self>) -> Waiting {
        let mut st = self.lock();
        st.waiting += 1;
        if st.waiting == 1 && st.low.is_some() {
            st.apply();
        }
        Waiting {
            priority: self.clone(),
        }
    }

    /// The nice value the read-ahead's threads run at now.
    #[cfg(test)]
    fn now(&self) -> i32 {
        self.lock().now()
    }
}

/// Held while a caller waits on the read-ahead.
pub(crate) struct Waiting {
    priority: Arc<Priority>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut st = self.priority.lock();
        st.waiting = st.waiting.saturating_sub(1);
        if st.waiting == 0 && st.low.is_some() {
            st.apply();
        }
    }
}

impl Background {
    /// A runtime with as many workers as the host has cores, its threads at the lowest
    /// priority while nobody waits on them (if their priority can be raised back).
    pub(crate) fn new() -> std::io::Result<Background> {
        let base = getpriority_process(None).unwrap_or(0);
        let low = (base < LOW && can_restore(base)).then_some(LOW);
        if low.is_none() {
            tracing::debug!(
                "the read-ahead runs at the proxy's own priority (nice {base}): a thread's priority could not be raised back after lowering it"
            );
        }
        let priority = Arc::new(Priority {
            state: Mutex::new(State {
                threads: Vec::new(),
                waiting: 0,
                base,
                low,
            }),
        });
        let (start, stop) = (priority.clone(), priority.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("ferry-read-ahead")
            .worker_threads(workers())
            .enable_all()
            .on_thread_start(move || start.started())
            .on_thread_stop(move || stop.stopped())
            .build()?;
        Ok(Background {
            runtime: Some(runtime),
            priority,
        })
    }

    /// Where the read-ahead's tasks are spawned.
    pub(crate) fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref().map(tokio::runtime::Runtime::handle)
    }

    pub(crate) fn priority(&self) -> &Arc<Priority> {
        &self.priority
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Dropping a runtime waits for its blocking threads, which an async context may not
        // do: its tasks are stopped and its threads left to end on their own.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The read-ahead's worker threads: one fewer than the host's cores (at least one), so that it
/// never takes every core even when nobody else wants them at the time it starts: on 2 cores,
/// one worker fetched as fast as two on the bench, with less CPU (the other core's threads
/// moved data between them; docs/performance.md).
fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .saturating_sub(1)
        .max(1)
}

/// Whether a thread of this process that lowers its priority from `base` can raise it back
/// (tried on a thread of its own, which then ends).
fn can_restore(base: i32) -> bool {
    std::thread::spawn(move || {
        setpriority_process(Some(rustix::thread::gettid()), LOW).is_ok()
            && setpriority_process(Some(rustix::thread::gettid()), base).is_ok()
    })
    .join()
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of each of the read-ahead's threads, read back from the kernel.
    fn nices(p: &Priority) -> Vec<i32> {
        p.lock()
            .threads
            .iter()
            .map(|&t| getpriority_process(Some(t)).unwrap())
            .collect()
    }

    #[test]
    fn the_read_ahead_runs_at_the_lowest_priority_unless_someone_waits_on_it() {
        let bg = Background::new().unwrap();
        let handle = bg.handle().unwrap().clone();
        // Start the workers, and a blocking thread, by giving them work.
        handle.block_on(async {
            tokio::task::spawn_blocking(|| ()).await.unwrap();
        });
        let p = bg.priority().clone();
        assert!(!p.lock().threads.is_empty());
        let base = getpriority_process(None).unwrap();
        if p.lock().low.is_none() {
            // Not allowed to raise a priority back here (no CAP_SYS_NICE): nothing lowered.
            assert!(nices(&p).iter().all(|&n| n == base), "{:?}", nices(&p));
            panic!("this test needs CAP_SYS_NICE (run it as root) to check the lowering");
        }
        assert_eq!(p.now(), LOW);
        assert!(nices(&p).iter().all(|&n| n == LOW), "{:?}", nices(&p));
        let first = p.waiting();
        let second = p.waiting();
        assert!(nices(&p).iter().all(|&n| n == base), "{:?}", nices(&p));
        drop(first);
        // One still waits.
        assert!(nices(&p).iter().all(|&n| n == base), "{:?}", nices(&p));
        drop(second);
        assert!(nices(&p).iter().all(|&n| n == LOW), "{:?}", nices(&p));
        // The thread that made the runtime keeps its own priority.
        assert_eq!(getpriority_process(None).unwrap(), base);
    }

    #[test]
    fn an_unchanged_priority_never_touches_a_thread() {
        let p = Priority::unchanged();
        let base = getpriority_process(None).unwrap();
        let w = p.waiting();
        drop(w);
        assert_eq!(getpriority_process(None).unwrap(), base);
        assert_eq!(p.now(), 0);
    }
}
