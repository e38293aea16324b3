//! The only way the applier touches the filesystem: a directory handle on the root, and
//! directories inside it resolved so that no name and no symlink can lead out of it. A final
//! name is then always acted on with a `*at` call relative to its resolved parent and never
//! followed, so a symlink planted by a layer is replaced, not written through.
//!
//! Two resolvers with one meaning (symlinks are followed as if the root were `/`, `..` stops at
//! the root; the semantics of umoci's securejoin and the kernel's `RESOLVE_IN_ROOT`):
//! openat2 with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` (Linux 5.6+), and a walk that opens
//! one component at a time with `O_NOFOLLOW`, reads each symlink itself and restarts absolute
//! targets at the root, for kernels (or seccomp profiles) without openat2.

use std::collections::VecDeque;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::Resolver;

/// Symlinks followed in one resolution before it is refused, as the kernel's limit.
const MAX_SYMLINKS: usize = 40;
/// How deep a removal may descend; deeper trees are refused rather than risk the stack.
const MAX_REMOVE_DEPTH: usize = 2048;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// A root directory and how names are resolved in it.
pub(crate) struct SafeRoot {
    fd: OwnedFd,
    openat2: bool,
}

impl SafeRoot {
    /// Opens `path` (a directory) as the root. With [`Resolver::Auto`] openat2 is probed once.
    pub(crate) fn open(path: &Path, resolver: Resolver) -> Result<SafeRoot, (io::Error, bool)> {
        let fd = rustix::fs::open(path, DIR_FLAGS, Mode::empty()).map_err(|e| (e.into(), false))?;
        let openat2 = match resolver {
            Resolver::Walk => false,
            Resolver::Auto | Resolver::Openat2 => {
                match rustix::fs::openat2(&fd, ".", DIR_FLAGS, Mode::empty(), in_root()) {
                    Ok(_) => true,
                    Err(e) if resolver == Resolver::Openat2 => return Err((e.into(), true)),
                    Err(_) => false,
                }
            }
        };
        Ok(SafeRoot { fd, openat2 })
    }

    /// Whether openat2 is in use (for tests and reports).
    pub(crate) fn uses_openat2(&self) -> bool {
        self.openat2
    }

    /// The root's own directory handle.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens the directory `comps` names inside the root, following symlinks inside the root.
    /// With `create`, missing directories are made (mode 0755, as tar and umoci make missing
    /// parents).
    pub(crate) fn dir(&self, comps: &[&[u8]], create: bool) -> io::Result<OwnedFd> {
        if comps.is_empty() {
            return Ok(rustix::fs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())?);
        }
        if self.openat2 {
            let path = comps.join(&b'/');
            let mut tries = 0;
            loop {
                match rustix::fs::openat2(
                    &self.fd,
                    path.as_slice(),
                    DIR_FLAGS,
                    Mode::empty(),
                    in_root(),
                ) {
                    Ok(fd) => return Ok(fd),
                    // The kernel asks for a retry when a rename raced the lookup.
                    Err(Errno::AGAIN) if tries < 8 => tries += 1,
                    Err(Errno::NOENT) if create => return self.walk(comps, true),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.walk(comps, create)
    }

    /// The walk: one component at a time, never following a symlink the kernel would follow
    /// for us; symlink targets are read and resolved against the root.
    fn walk(&self, comps: &[&[u8]], create: bool) -> io::Result<OwnedFd> {
        let root = rustix::fs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())?;
        let mut stack: Vec<OwnedFd> = vec![root];
        let mut queue: VecDeque<Vec<u8>> = comps.iter().map(|c| c.to_vec()).collect();
        let mut links = 0;
        while let Some(c) = queue.pop_front() {
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if stack.len() > 1 {
                        stack.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let top = stack.last().ok_or_else(|| io::Error::other("empty walk"))?;
            match rustix::fs::openat(
                top,
                c.as_slice(),
                DIR_FLAGS | OFlags::NOFOLLOW,
                Mode::empty(),
            ) {
                Ok(fd) => stack.push(fd),
                Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                    let st = rustix::fs::statat(top, c.as_slice(), AtFlags::SYMLINK_NOFOLLOW)?;
                    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                        return Err(Errno::NOTDIR.into());
                    }
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(Errno::LOOP.into());
                    }
                    let target = rustix::fs::readlinkat(top, c.as_slice(), Vec::new())?;
                    let target = target.as_bytes();
                    if target.starts_with(b"/") {
                        stack.truncate(1);
                    }
                    for part in target.split(|b| *b == b'/').rev() {
                        queue.push_front(part.to_vec());
                    }
                }
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(top, c.as_slice(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    queue.push_front(c);
                }
                Err(e) => return Err(e.into()),
            }
        }
        stack.pop().ok_or_else(|| io::Error::other("empty walk"))
    }
}

fn in_root() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// What is at `name` in `dir`, not following a symlink: `None` when nothing is.
pub(crate) fn kind_at(dir: impl AsFd, name: &[u8]) -> io::Result<Option<FileType>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes whatever is at `name` in `dir` (a directory with everything below it), never
/// following a symlink. Nothing there is not an error.
pub(crate) fn remove_any(dir: impl AsFd, name: &[u8]) -> io::Result<()> {
    remove_at(dir.as_fd(), name, 0)
}

fn remove_at(dir: BorrowedFd<'_>, name: &[u8], depth: usize) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    if depth > MAX_REMOVE_DEPTH {
        return Err(io::Error::other("directory tree too deep to remove"));
    }
    let child = match rustix::fs::openat(dir, name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for n in list(&child)? {
        remove_at(child.as_fd(), &n, depth + 1)?;
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The names in a directory, without `.` and `..`.
pub(crate) fn list(dir: impl AsFd) -> io::Result<Vec<Vec<u8>>> {
    let mut d = rustix::fs::Dir::read_from(dir)?;
    let mut names = Vec::new();
    while let Some(e) = d.read() {
        let e = e?;
        let n: &CStr = e.file_name();
        let n = n.to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    Ok(names)
}

/// Opens `name` in `dir` as a directory, not following a symlink.
pub(crate) fn open_dir_at(dir: impl AsFd, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        DIR_FLAGS | OFlags::NOFOLLOW,
        Mode::empty(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn both(f: impl Fn(Resolver)) {
        f(Resolver::Walk);
        f(Resolver::Auto);
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        both(|resolver| {
            let t = tempfile::tempdir().unwrap();
            let root = t.path().join("root");
            let outside = t.path().join("outside");
            std::fs::create_dir_all(root.join("real/sub")).unwrap();
            std::fs::create_dir_all(outside.join("sub")).unwrap();
            symlink(&outside, root.join("abs")).unwrap(); // absolute, to outside
            symlink("../../../..", root.join("up")).unwrap();
            symlink("/real", root.join("inroot")).unwrap();
            let r = SafeRoot::open(&root, resolver).unwrap();
            if resolver == Resolver::Walk {
                assert!(!r.uses_openat2());
            }
            // `abs` points at <tmp>/outside: resolved in the root that is <root>/<tmp>/outside,
            // which does not exist, and is created there when asked.
            let d = r.dir(&[b"abs", b"sub"], true).unwrap();
            rustix::fs::mkdirat(&d, "made", Mode::from_raw_mode(0o755)).unwrap();
            assert!(!outside.join("sub/made").exists());
            let inside = root
                .join(outside.strip_prefix("/").unwrap())
                .join("sub/made");
            assert!(inside.is_dir(), "{inside:?}");
            // `..` stops at the root.
            let d = r.dir(&[b"up", b"real"], false).unwrap();
            rustix::fs::mkdirat(&d, "x", Mode::from_raw_mode(0o755)).unwrap();
            assert!(root.join("real/x").is_dir());
            let d = r.dir(&[b"inroot", b"sub"], false).unwrap();
            rustix::fs::mkdirat(&d, "y", Mode::from_raw_mode(0o755)).unwrap();
            assert!(root.join("real/sub/y").is_dir());
        });
    }

    #[test]
    fn symlink_loops_fail() {
        both(|resolver| {
            let t = tempfile::tempdir().unwrap();
            symlink("b", t.path().join("a")).unwrap();
            symlink("a", t.path().join("b")).unwrap();
            let r = SafeRoot::open(t.path(), resolver).unwrap();
            let e = r.dir(&[b"a", b"x"], true).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(Errno::LOOP.raw_os_error()), "{e}");
        });
    }

    #[test]
    fn removes_trees_without_following_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let keep = t.path().join("keep");
        std::fs::create_dir(&keep).unwrap();
        std::fs::write(keep.join("f"), "x").unwrap();
        let d = t.path().join("d");
        std::fs::create_dir_all(d.join("e/f")).unwrap();
        symlink(&keep, d.join("e/link")).unwrap();
        let root = rustix::fs::open(t.path(), DIR_FLAGS, Mode::empty()).unwrap();
        remove_any(&root, b"d").unwrap();
        assert!(!d.exists());
        assert!(keep.join("f").exists());
        remove_any(&root, b"nothing").unwrap();
    }
}
