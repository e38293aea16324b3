//! containers/storage's lock files (`pkg/lockfile`), taken as it takes them so that ferry,
//! podman and CRI-O can use one store at once: a POSIX record lock (`fcntl(F_SETLKW)`, whole
//! file) on `overlay-layers/layers.lock`, `overlay-images/images.lock`, …; and, after a change
//! under the write lock, a new 64-byte "last writer" value written at offset 0 (nanosecond
//! time, a counter and the pid, little-endian, then random bytes), which tells a long-running
//! reader such as CRI-O to reload the JSON it cached.
//!
//! POSIX record locks belong to the process, and closing any descriptor of the file drops them
//! all: so each lock file is opened once per process and kept open, and holders within the
//! process take turns on a mutex before the kernel lock is asked for.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rustix::fs::FlockOperation;

use super::super::{Result, TransportError};

/// One lock file of this process: its descriptor (never closed) and who in this process holds
/// it (readers share, a writer is alone).
struct LockFile {
    file: File,
    state: Mutex<Holders>,
    turn: Condvar,
}

#[derive(Default)]
struct Holders {
    readers: usize,
    writer: bool,
}

static FILES: Mutex<Option<HashMap<PathBuf, Arc<LockFile>>>> = Mutex::new(None);
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn poisoned() -> TransportError {
    TransportError::Unsupported("a containers-storage lock is poisoned".into())
}

fn lock_file(path: &Path) -> Result<Arc<LockFile>> {
    let mut files = FILES.lock().map_err(|_| poisoned())?;
    let files = files.get_or_insert_with(HashMap::new);
    if let Some(f) = files.get(path) {
        return Ok(f.clone());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| TransportError::io(parent, e))?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| TransportError::io(path, e))?;
    let f = Arc::new(LockFile {
        file,
        state: Mutex::new(Holders::default()),
        turn: Condvar::new(),
    });
    files.insert(path.to_path_buf(), f.clone());
    Ok(f)
}

fn fcntl(file: &File, op: FlockOperation) -> std::io::Result<()> {
    loop {
        match rustix::fs::fcntl_lock(file, op) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map_err(Into::into),
        }
    }
}

/// A held lock; released when dropped. Blocks: call it from a blocking thread.
pub struct Held {
    file: Arc<LockFile>,
    path: PathBuf,
    exclusive: bool,
}

impl Held {
    /// Takes the lock at `path` (created if missing), exclusive for a writer, shared for a
    /// reader, waiting for other processes and for other holders in this one.
    pub fn take(path: &Path, exclusive: bool) -> Result<Held> {
        let file = lock_file(path)?;
        let mut st = file.state.lock().map_err(|_| poisoned())?;
        while st.writer || (exclusive && st.readers > 0) {
            st = file.turn.wait(st).map_err(|_| poisoned())?;
        }
        // The kernel lock is asked for by the first holder in this process (the mutex is held
        // while waiting for other processes: holders here would wait for them anyway).
        if exclusive || st.readers == 0 {
            let op = if exclusive {
                FlockOperation::LockExclusive
            } else {
                FlockOperation::LockShared
            };
            fcntl(&file.file, op).map_err(|e| TransportError::io(path, e))?;
        }
        if exclusive {
            st.writer = true;
        } else {
            st.readers += 1;
        }
        drop(st);
        Ok(Held {
            file,
            path: path.to_path_buf(),
            exclusive,
        })
    }

    /// Records a change for readers that cache what the lock guards: a new last-writer value.
    pub fn touch(&self) -> Result<()> {
        if !self.exclusive {
            return Err(TransportError::Unsupported(format!(
                "{}: a change recorded under a shared lock",
                self.path.display()
            )));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
        let random: [u8; 44] = rand_bytes();
        let mut id = Vec::with_capacity(64);
        id.extend_from_slice(&now.to_le_bytes());
        id.extend_from_slice(&n.to_le_bytes());
        id.extend_from_slice(&std::process::id().to_le_bytes());
        id.extend_from_slice(&random);
        self.file
            .file
            .write_all_at(&id, 0)
            .map_err(|e| TransportError::io(&self.path, e))
    }
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    use rand_core::RngCore as _;
    let mut b = [0u8; N];
    rand_core::OsRng.fill_bytes(&mut b);
    b
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut st) = self.file.state.lock() {
            if self.exclusive {
                st.writer = false;
            } else {
                st.readers = st.readers.saturating_sub(1);
            }
            if !st.writer && st.readers == 0 {
                let _ = fcntl(&self.file.file, FlockOperation::Unlock);
            }
        }
        self.file.turn.notify_all();
    }
}

/// A random short name for overlay's `l/` links: 26 base32 letters, as containers/storage's
/// `generateID(26)`.
pub fn random_link_id() -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes: [u8; 26] = rand_bytes();
    bytes
        .iter()
        .map(|b| char::from(ALPHABET.get(usize::from(b & 31)).copied().unwrap_or(b'A')))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_in_one_process_take_turns_and_touch_writes_64_bytes() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x/layers.lock");
        let a = Held::take(&p, true).unwrap();
        a.touch().unwrap();
        let first = std::fs::read(&p).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(&first[16..20], &std::process::id().to_le_bytes());
        let p2 = p.clone();
        let waiter = std::thread::spawn(move || {
            let b = Held::take(&p2, true).unwrap();
            b.touch().unwrap();
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(
            !waiter.is_finished(),
            "a second holder got the lock while it was held"
        );
        drop(a);
        waiter.join().unwrap();
        assert_ne!(std::fs::read(&p).unwrap(), first);
        assert_eq!(random_link_id().len(), 26);
    }
}
