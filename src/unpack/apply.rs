//! One layer's changeset applied onto a root directory (OCI image-spec `layer.md`): files,
//! directories, links, devices and FIFOs with their metadata; `.wh.NAME` whiteouts and
//! `.wh..wh..opq` opaque directories; later entries replacing earlier ones. The layer's
//! compressed bytes are hashed as they stream and checked against the manifest's digest.
//!
//! Names: a leading `/` is dropped (the name means the same path inside the root; umoci and GNU
//! tar do the same, and real layers carry such names), but a name or hardlink target that climbs
//! above the root with `..` is refused (umoci silently rewrites it into the root; a layer that
//! needs that is broken or hostile, so ferry says so). Everything is then resolved by
//! the `root` module.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use super::root::{self, SafeRoot};
use super::tar_stream::{Entry, Kind, TarStream};
use super::{ApplyError, ApplyOptions, LimitKind, Refusal, Whiteouts, lossy};
use crate::compression::{Compression, LayerDecoder, sniff_reader};
use crate::digest::{Digest, Digester};
use crate::policy::Admission;

/// What the applier did not do as the layer asked, and why (returned, never printed: the
/// caller decides how to show it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Warning {
    /// The entry's name as written in the layer.
    pub entry: String,
    /// What was skipped.
    pub kind: WarningKind,
}

/// The kinds of [`Warning`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// A device node skipped in rootless mode (only root may make one).
    DeviceSkipped,
    /// An extended attribute the filesystem or the caller's privileges refused.
    XattrSkipped {
        /// The attribute's name.
        name: String,
        /// The error.
        error: String,
    },
    /// An extended attribute on a symlink (Linux allows none in the user namespace and ferry
    /// sets none through a path).
    SymlinkXattrSkipped {
        /// The attribute's name.
        name: String,
    },
    /// A `.wh..wh.` entry other than the opaque marker (e.g. aufs's hardlink directory).
    SpecialWhiteoutSkipped,
    /// More warnings than are kept; this one counts them.
    More(u64),
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            WarningKind::DeviceSkipped => {
                write!(f, "{:?}: device node skipped (rootless)", self.entry)
            }
            WarningKind::XattrSkipped { name, error } => {
                write!(f, "{:?}: xattr {name} not set: {error}", self.entry)
            }
            WarningKind::SymlinkXattrSkipped { name } => {
                write!(f, "{:?}: xattr {name} on a symlink not set", self.entry)
            }
            WarningKind::SpecialWhiteoutSkipped => {
                write!(f, "{:?}: special whiteout entry skipped", self.entry)
            }
            WarningKind::More(n) => write!(f, "{n} more warnings"),
        }
    }
}

/// What one layer did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LayerStats {
    /// Tar entries read (whiteouts included).
    pub entries: u64,
    /// Uncompressed tar bytes read.
    pub tar_bytes: u64,
    /// Compressed bytes read (the blob's size).
    pub compressed_bytes: u64,
    /// The digest the compressed bytes hash to (equal to the expected one).
    pub digest: Digest,
    /// What was skipped (at most 1000 kept; a last [`WarningKind::More`] counts the rest).
    pub warnings: Vec<Warning>,
    /// The uids the layer's entries (whiteouts aside) name, ascending: containers/storage's
    /// `uidset` of a layer.
    pub uids: Vec<u32>,
    /// The gids likewise (`gidset`).
    pub gids: Vec<u32>,
}

const MAX_WARNINGS: usize = 1000;

/// A root directory that layers are applied onto, bottom layer first. Used by
/// [`super::BundleBuilder`] for a bundle's rootfs; usable alone for any directory a caller owns
/// (a containers-storage layer, a test). A layer that fails leaves the root partly written:
/// the caller discards it (the bundle builder does).
pub struct Rootfs {
    root: SafeRoot,
    path: PathBuf,
    options: ApplyOptions,
    bytes_left: u64,
    entries_left: u64,
    euid: u32,
    egid: u32,
    umask: Option<u32>,
}

impl Rootfs {
    /// Opens the existing directory `path` as a root for the layers of an image the gate
    /// admitted: `admission` is the gate's proof (from
    /// [`AdmittedImage::admission`](crate::AdmittedImage::admission)), so nothing can unpack an
    /// image the policy did not admit. Without `options.rootless` the caller must be root
    /// ([`ApplyError::NeedsRoot`]).
    pub fn open(
        path: &Path,
        options: ApplyOptions,
        _admission: &Admission,
    ) -> Result<Rootfs, ApplyError> {
        let euid = rustix::process::geteuid().as_raw();
        if !options.rootless && euid != 0 {
            return Err(ApplyError::NeedsRoot { uid: euid });
        }
        let root = SafeRoot::open(path, options.resolver).map_err(|(e, openat2)| {
            if openat2 {
                ApplyError::NoOpenat2(e)
            } else {
                ApplyError::Io {
                    path: path.to_path_buf(),
                    op: "open the root directory",
                    source: e,
                }
            }
        })?;
        Ok(Rootfs {
            root,
            path: path.to_path_buf(),
            bytes_left: options.max_bytes,
            entries_left: options.max_entries,
            options,
            euid,
            egid: rustix::process::getegid().as_raw(),
            umask: read_umask(),
        })
    }

    /// The root's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether names are resolved with openat2 (else with the no-follow walk).
    pub fn uses_openat2(&self) -> bool {
        self.root.uses_openat2()
    }

    /// Opens a file inside the root for reading, resolving its name (symlinks included) as if
    /// the root were `/`: for reading `/etc/passwd` of an image. `None` when it does not exist.
    pub(crate) fn open_inside(&self, path: &str) -> io::Result<Option<File>> {
        let comps: Vec<&[u8]> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::as_bytes)
            .collect();
        let Some((name, parent)) = comps.split_last() else {
            return Ok(None);
        };
        let dir = match self.root.dir(parent, false) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // The final name may itself be a symlink (e.g. /etc/passwd -> ../usr/share/...): resolve
        // it in the root too, a bounded number of times.
        let mut dir = dir;
        let mut name = name.to_vec();
        // The directory the current name is in, as components from the root.
        let mut at: Vec<Vec<u8>> = parent.iter().map(|c| c.to_vec()).collect();
        for _ in 0..40 {
            match root::kind_at(&dir, &name)? {
                None => return Ok(None),
                Some(FileType::Symlink) => {
                    let target = rustix::fs::readlinkat(&dir, name.as_slice(), Vec::new())?;
                    let t = target.as_bytes();
                    let parts: Vec<&[u8]> =
                        t.split(|b| *b == b'/').filter(|c| !c.is_empty()).collect();
                    let Some((last, pre)) = parts.split_last() else {
                        return Ok(None);
                    };
                    if *last == b".." || *last == b"." {
                        return Ok(None);
                    }
                    // A relative target is relative to the link's directory, an absolute one
                    // to the root; either way resolved inside the root.
                    if t.starts_with(b"/") {
                        at.clear();
                    }
                    at.extend(pre.iter().map(|c| c.to_vec()));
                    let comps: Vec<&[u8]> = at.iter().map(Vec::as_slice).collect();
                    dir = match self.root.dir(&comps, false) {
                        Ok(d) => d,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                        Err(e) => return Err(e),
                    };
                    name = last.to_vec();
                }
                Some(FileType::RegularFile) => {
                    let fd = rustix::fs::openat(
                        &dir,
                        name.as_slice(),
                        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )?;
                    return Ok(Some(File::from(fd)));
                }
                Some(_) => return Ok(None),
            }
        }
        Err(Errno::LOOP.into())
    }

    /// Applies one layer. `reader` gives the blob's bytes as stored (compressed or not);
    /// `media_type` is the descriptor's (a generic one is sniffed by magic); `expected` is the
    /// descriptor's digest of those bytes; `label` names the layer in errors (e.g.
    /// `"layer 2/5 sha256:…"`). The digest is checked after the last byte: a mismatch is
    /// [`ApplyError::Digest`] and what was written must be discarded.
    pub fn apply_layer<R: Read>(
        &mut self,
        reader: R,
        media_type: &str,
        expected: &Digest,
        label: &str,
    ) -> Result<LayerStats, ApplyError> {
        self.apply(reader, media_type, Check::Hash(expected), label)
    }

    /// Applies an uncompressed tar whose digest the caller learns here and checks itself (a
    /// containers-storage layer, whose diff_id is known only once it has streamed):
    /// [`LayerStats::digest`] is the sha256 of the tar's bytes.
    pub fn apply_tar<R: Read>(&mut self, reader: R, label: &str) -> Result<LayerStats, ApplyError> {
        self.apply(
            reader,
            "application/vnd.oci.image.layer.v1.tar",
            Check::Learn,
            label,
        )
    }

    /// Applies one layer whose bytes are checked as `check` says (a reader that verifies them
    /// itself spares the applier a second SHA-256 pass, a third of an unpack's CPU time).
    pub(crate) fn apply<R: Read>(
        &mut self,
        reader: R,
        media_type: &str,
        check: Check<'_>,
        label: &str,
    ) -> Result<LayerStats, ApplyError> {
        let layer = label.to_string();
        let corrupt = |entry: Option<&[u8]>| {
            let layer = layer.clone();
            let entry = entry.map(lossy);
            move |e: io::Error| ApplyError::Corrupt {
                layer,
                entry,
                source: e,
            }
        };
        let hashing = Hashing {
            inner: reader,
            digester: match check {
                Check::Hash(d) => Some(Digester::new(d.algorithm())),
                Check::Learn => Some(Digester::new(crate::digest::Algorithm::Sha256)),
                Check::Verified(_) => None,
            },
            count: 0,
        };
        let buffered = BufReader::with_capacity(128 * 1024, hashing);
        if !is_layer_media_type(media_type) {
            return Err(ApplyError::MediaType {
                layer,
                media_type: media_type.to_string(),
            });
        }
        // The bytes decide the compression, as containers/image decides: the media type only
        // has to name a layer (a generic type, or Docker's uncompressed one over gzip bytes,
        // are common).
        let (compression, head) = sniff_reader(buffered).map_err(corrupt(None))?;
        if matches!(compression, Compression::Bzip2 | Compression::Xz) {
            return Err(ApplyError::Compression {
                layer,
                compression: compression.to_string(),
            });
        }
        let decoder = LayerDecoder::new(compression, head).map_err(corrupt(None))?;
        let capped = Capped {
            inner: decoder,
            count: 0,
            limit: self.bytes_left,
        };
        let mut tar = TarStream::new(BufReader::with_capacity(128 * 1024, capped));

        let mut state = LayerState {
            layer: layer.clone(),
            keys: RandomState::new(),
            upper: HashSet::new(),
            upper_dirs: HashSet::new(),
            deferred: Vec::new(),
            cached: None,
            cache_ok: true,
            writable_dirs: self.options.rootless && self.euid != 0,
            warnings: Vec::new(),
            dropped_warnings: 0,
            buf: vec![0u8; 128 * 1024],
            uids: BTreeSet::new(),
            gids: BTreeSet::new(),
        };
        let mut entries: u64 = 0;
        let mut last: Option<Vec<u8>> = None;
        loop {
            let next = tar.next_entry();
            let entry = match next {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) => return Err(self.read_error(&layer, last.as_deref(), e)),
            };
            entries += 1;
            if entries > self.entries_left {
                return Err(ApplyError::Limit {
                    layer,
                    kind: LimitKind::Entries,
                    limit: self.options.max_entries,
                });
            }
            self.apply_entry(&mut state, &layer, &entry, &mut tar)?;
            last = Some(entry.name);
        }
        // What follows the end-of-archive blocks still counts against the byte cap and must
        // decompress cleanly (the gzip trailer's CRC is checked here).
        let mut rest = tar.into_inner();
        if let Err(e) = io::copy(&mut rest, &mut io::sink()) {
            return Err(self.read_error(&layer, last.as_deref(), e));
        }
        let capped = rest.into_inner();
        let tar_bytes = capped.count;
        let (cursor, buffered) = capped.inner.into_inner().into_inner();
        drop(cursor);
        let mut hashing = buffered.into_inner();
        io::copy(&mut hashing, &mut io::sink()).map_err(corrupt(last.as_deref()))?;
        state.finish_dirs(&self.root, self.options.rootless)?;

        let actual = match (hashing.digester, check) {
            (Some(d), Check::Hash(expected)) => {
                let actual = d.finish();
                if &actual != expected {
                    return Err(ApplyError::Digest {
                        layer,
                        expected: expected.clone(),
                        actual,
                    });
                }
                actual
            }
            (Some(d), _) => d.finish(),
            (None, Check::Verified(expected) | Check::Hash(expected)) => expected.clone(),
            (None, Check::Learn) => {
                return Err(ApplyError::Config(
                    "internal: a tar's digest was not computed".to_string(),
                ));
            }
        };
        self.bytes_left = self.bytes_left.saturating_sub(tar_bytes);
        self.entries_left = self.entries_left.saturating_sub(entries);
        let mut warnings = state.warnings;
        if state.dropped_warnings > 0 {
            warnings.push(Warning {
                entry: String::new(),
                kind: WarningKind::More(state.dropped_warnings),
            });
        }
        Ok(LayerStats {
            entries,
            tar_bytes,
            compressed_bytes: hashing.count,
            digest: actual,
            warnings,
            uids: state.uids.into_iter().collect(),
            gids: state.gids.into_iter().collect(),
        })
    }

    fn read_error(&self, layer: &str, entry: Option<&[u8]>, e: io::Error) -> ApplyError {
        if e.get_ref().is_some_and(|i| i.is::<CapReached>()) {
            return ApplyError::Limit {
                layer: layer.to_string(),
                kind: LimitKind::Bytes,
                limit: self.options.max_bytes,
            };
        }
        ApplyError::Corrupt {
            layer: layer.to_string(),
            entry: entry.map(lossy),
            source: e,
        }
    }

    fn apply_entry<R: io::BufRead>(
        &self,
        st: &mut LayerState,
        layer: &str,
        e: &Entry,
        data: &mut TarStream<R>,
    ) -> Result<(), ApplyError> {
        let refuse = |reason: Refusal| ApplyError::Refused {
            layer: layer.to_string(),
            entry: lossy(&e.name),
            reason,
        };
        let comps = clean(&e.name).map_err(refuse)?;
        if let Kind::Other(flag) = e.kind {
            return Err(refuse(Refusal::UnsupportedType(char::from(flag))));
        }
        let Some((name, parent)) = comps.split_last() else {
            // The root itself ("./"): only a directory, whose metadata applies to the root.
            if e.kind != Kind::Dir {
                return Err(refuse(Refusal::RootNotDirectory));
            }
            st.uids.insert(u32::try_from(e.uid).unwrap_or(u32::MAX));
            st.gids.insert(u32::try_from(e.gid).unwrap_or(u32::MAX));
            let fd = self.root.fd();
            self.owner_and_xattrs(st, e, fd)?;
            st.deferred.push(Deferred {
                path: Vec::new(),
                mode: e.mode & 0o7777,
                mtime: e.mtime,
            });
            return Ok(());
        };
        let name: &[u8] = name;

        if !name.starts_with(b".wh.") {
            st.uids.insert(u32::try_from(e.uid).unwrap_or(u32::MAX));
            st.gids.insert(u32::try_from(e.gid).unwrap_or(u32::MAX));
        }
        if let Some(target) = name.strip_prefix(b".wh.") {
            st.cached = None;
            if target == b".wh..opq" {
                return self.opaque(st, e, parent);
            }
            if target.starts_with(b".wh.") {
                st.warn(e, WarningKind::SpecialWhiteoutSkipped);
                return Ok(());
            }
            if target.is_empty() || target == b"." || target == b".." {
                return Err(refuse(Refusal::BadWhiteout(lossy(target))));
            }
            return self.whiteout(st, e, parent, target);
        }

        let key = comps.join(&b'/');
        let (pkey, parent_dir) = st.take_parent(&self.root, parent, &key, e)?;
        st.record(&key, parent.len());
        st.cache_ok = true;
        let res = self.apply_in(st, layer, e, &comps, name, &key, &parent_dir, data);
        if st.cache_ok && res.is_ok() {
            st.cached = Some((pkey, parent_dir));
        }
        res
    }

    /// Applies a non-whiteout entry `name` in its resolved parent directory `dir`.
    #[allow(clippy::too_many_arguments)]
    fn apply_in<R: io::BufRead>(
        &self,
        st: &mut LayerState,
        layer: &str,
        e: &Entry,
        comps: &[&[u8]],
        name: &[u8],
        key: &[u8],
        dir: &ParentDir,
        data: &mut TarStream<R>,
    ) -> Result<(), ApplyError> {
        let refuse = |reason: Refusal| ApplyError::Refused {
            layer: layer.to_string(),
            entry: lossy(&e.name),
            reason,
        };
        let io_err = |op: &'static str| {
            let layer = layer.to_string();
            let entry = lossy(&e.name);
            move |source: io::Error| ApplyError::Entry {
                layer,
                entry,
                op,
                source,
            }
        };
        let fd = &dir.fd;

        if e.kind == Kind::Dir {
            match rustix::fs::mkdirat(fd, name, Mode::from_raw_mode(0o700)) {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    let existing =
                        root::kind_at(fd, name).map_err(io_err("inspect the existing entry"))?;
                    if existing != Some(FileType::Directory) {
                        st.replaced(existing);
                        root::remove_any(fd, name).map_err(io_err("remove what it replaces"))?;
                        rustix::fs::mkdirat(fd, name, Mode::from_raw_mode(0o700))
                            .map_err(|err| io_err("create the directory")(err.into()))?;
                    }
                }
                Err(err) => return Err(io_err("create the directory")(err.into())),
            }
            let dfd = root::open_dir_at(fd, name).map_err(io_err("open the directory"))?;
            self.owner_and_xattrs(st, e, dfd.as_fd())?;
            if !self.options.rootless {
                // Root can write into any directory, so the mode can be set now; rootless, a
                // read-only directory would refuse its own contents, so it waits with the mtime.
                rustix::fs::fchmod(&dfd, Mode::from_raw_mode(e.mode & 0o7777))
                    .map_err(|err| io_err("set the mode")(err.into()))?;
            }
            st.deferred.push(Deferred {
                path: key.to_vec(),
                mode: e.mode & 0o7777,
                mtime: e.mtime,
            });
            return Ok(());
        }

        match e.kind {
            Kind::File => {
                let perm = e.mode & 0o777;
                let flags = OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                let created = replace(st, fd, name, || {
                    rustix::fs::openat(fd, name, flags, Mode::from_raw_mode(perm))
                })
                .map_err(io_err("create the file"))?;
                let mut file = File::from(created);
                let mut left = e.size;
                while left > 0 {
                    let want = st
                        .buf
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    let chunk = st.buf.get_mut(..want).unwrap_or(&mut []);
                    let n = match data.read(chunk) {
                        Ok(n) => n,
                        Err(err) => return Err(self.read_error(layer, Some(&e.name), err)),
                    };
                    if n == 0 {
                        break;
                    }
                    let got = chunk.get(..n).unwrap_or(&[]);
                    file.write_all(got).map_err(io_err("write the file"))?;
                    left -= n as u64;
                }
                let ffd = OwnedFd::from(file);
                let chowned = self.owner_and_xattrs_new(st, e, ffd.as_fd(), dir)?;
                // The file was made with its permission bits less the umask; set the mode again
                // only where that differs, or for setuid/setgid/sticky (which chown clears).
                let exact = self
                    .umask
                    .is_some_and(|u| perm & u == 0 && e.mode & 0o7000 == 0);
                if !exact || chowned && e.mode & 0o6000 != 0 {
                    rustix::fs::fchmod(&ffd, Mode::from_raw_mode(e.mode & 0o7777))
                        .map_err(|err| io_err("set the mode")(err.into()))?;
                }
                rustix::fs::futimens(&ffd, &times(e.mtime))
                    .map_err(|err| io_err("set the mtime")(err.into()))?;
            }
            Kind::Symlink => {
                replace(st, fd, name, || {
                    rustix::fs::symlinkat(e.link.as_slice(), fd, name)
                })
                .map_err(io_err("create the symlink"))?;
                self.owner_at(st, e, fd, name)?;
                for (xname, _) in &e.xattrs {
                    st.warn(e, WarningKind::SymlinkXattrSkipped { name: lossy(xname) });
                }
                rustix::fs::utimensat(fd, name, &times(e.mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|err| io_err("set the mtime")(err.into()))?;
            }
            Kind::Hardlink => {
                let tcomps = clean(&e.link).map_err(|r| {
                    refuse(match r {
                        Refusal::Escapes => Refusal::HardlinkEscapes {
                            target: lossy(&e.link),
                        },
                        Refusal::Absolute => Refusal::HardlinkAbsolute {
                            target: lossy(&e.link),
                        },
                        other => other,
                    })
                })?;
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(refuse(Refusal::HardlinkTarget {
                        target: lossy(&e.link),
                        why: "is the root directory",
                    }));
                };
                // A link to itself (tar writes these for a file listed twice) is a no-op, not a
                // removal of its own target.
                if tcomps == comps {
                    return Ok(());
                }
                let missing = || {
                    refuse(Refusal::HardlinkTarget {
                        target: lossy(&e.link),
                        why: "does not exist in this or a lower layer",
                    })
                };
                let tdir = match self.root.dir(tparent, false) {
                    Ok(d) => d,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(missing()),
                    Err(err) => return Err(io_err("resolve the hardlink's target")(err)),
                };
                match root::kind_at(&tdir, tname)
                    .map_err(io_err("inspect the hardlink's target"))?
                {
                    None => return Err(missing()),
                    Some(FileType::Directory) => {
                        return Err(refuse(Refusal::HardlinkTarget {
                            target: lossy(&e.link),
                            why: "is a directory",
                        }));
                    }
                    Some(_) => {}
                }
                replace(st, fd, name, || {
                    rustix::fs::linkat(&tdir, *tname, fd, name, AtFlags::empty())
                })
                .map_err(io_err("create the hardlink"))?;
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                let ft = match e.kind {
                    Kind::Char => FileType::CharacterDevice,
                    Kind::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if ft != FileType::Fifo && self.options.rootless {
                    st.warn(e, WarningKind::DeviceSkipped);
                    return Ok(());
                }
                let dev = rustix::fs::makedev(e.dev_major, e.dev_minor);
                replace(st, fd, name, || {
                    rustix::fs::mknodat(fd, name, ft, Mode::from_raw_mode(0o600), dev)
                })
                .map_err(io_err("create the node"))?;
                self.owner_at(st, e, fd, name)?;
                // The node was just made by this process and is not a symlink, so chmodat
                // (which has no no-follow flag on older kernels) acts on it.
                rustix::fs::chmodat(
                    fd,
                    name,
                    Mode::from_raw_mode(e.mode & 0o7777),
                    AtFlags::empty(),
                )
                .map_err(|err| io_err("set the mode")(err.into()))?;
                rustix::fs::utimensat(fd, name, &times(e.mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|err| io_err("set the mtime")(err.into()))?;
            }
            Kind::Dir | Kind::Other(_) => {}
        }
        Ok(())
    }

    /// Owner and xattrs of a file this layer just created in `dir`: the chown is skipped when
    /// creation already gave the wanted owner. Returns whether it chowned.
    fn owner_and_xattrs_new(
        &self,
        st: &mut LayerState,
        e: &Entry,
        fd: std::os::fd::BorrowedFd<'_>,
        dir: &ParentDir,
    ) -> Result<bool, ApplyError> {
        let created_gid = if dir.setgid { dir.gid } else { self.egid };
        let same = u64::from(self.euid) == e.uid && u64::from(created_gid) == e.gid;
        if self.options.rootless || same {
            if !e.xattrs.is_empty() {
                self.xattrs(st, e, fd)?;
            }
            return Ok(false);
        }
        self.owner_and_xattrs(st, e, fd)?;
        Ok(true)
    }

    /// Owner (unless rootless) and xattrs of an open file or directory.
    fn owner_and_xattrs(
        &self,
        st: &mut LayerState,
        e: &Entry,
        fd: std::os::fd::BorrowedFd<'_>,
    ) -> Result<(), ApplyError> {
        if !self.options.rootless {
            let (uid, gid) = ids(st, e)?;
            rustix::fs::fchown(fd, Some(uid), Some(gid)).map_err(|err| ApplyError::Entry {
                layer: st.layer.clone(),
                entry: lossy(&e.name),
                op: "set the owner",
                source: err.into(),
            })?;
        }
        self.xattrs(st, e, fd)
    }

    /// The entry's xattrs on an open file or directory.
    fn xattrs(
        &self,
        st: &mut LayerState,
        e: &Entry,
        fd: std::os::fd::BorrowedFd<'_>,
    ) -> Result<(), ApplyError> {
        for (name, value) in &e.xattrs {
            match rustix::fs::fsetxattr(fd, name.as_slice(), value, XattrFlags::empty()) {
                Ok(()) => {}
                // Not supported here, or (rootless) not permitted: skipped and said, as umoci.
                Err(err @ (Errno::NOTSUP | Errno::PERM | Errno::ACCESS))
                    if self.options.rootless || err == Errno::NOTSUP =>
                {
                    st.warn(
                        e,
                        WarningKind::XattrSkipped {
                            name: lossy(name),
                            error: io::Error::from(err).to_string(),
                        },
                    );
                }
                Err(err) => {
                    return Err(ApplyError::Entry {
                        layer: st.layer.clone(),
                        entry: lossy(&e.name),
                        op: "set an extended attribute",
                        source: err.into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Owner (unless rootless) of `name` in `dir`, not following a symlink.
    fn owner_at(
        &self,
        st: &LayerState,
        e: &Entry,
        dir: &OwnedFd,
        name: &[u8],
    ) -> Result<(), ApplyError> {
        if self.options.rootless {
            return Ok(());
        }
        let (uid, gid) = ids(st, e)?;
        rustix::fs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW).map_err(
            |err| ApplyError::Entry {
                layer: st.layer.clone(),
                entry: lossy(&e.name),
                op: "set the owner",
                source: err.into(),
            },
        )
    }

    /// `.wh.NAME`: remove NAME as the lower layers left it. What this layer itself added stays
    /// (layer.md: a whiteout applies to lower layers only).
    fn whiteout(
        &self,
        st: &mut LayerState,
        e: &Entry,
        parent: &[&[u8]],
        target: &[u8],
    ) -> Result<(), ApplyError> {
        let mut key = parent.join(&b'/');
        if !key.is_empty() {
            key.push(b'/');
        }
        key.extend_from_slice(target);
        if st.upper.contains(&st.keys.hash_one(&key)) {
            return Ok(());
        }
        if self.options.whiteouts == Whiteouts::Overlay {
            return self.overlay_whiteout(st, e, parent, target, &key);
        }
        let dir = match self.root.dir(parent, false) {
            Ok(d) => d,
            // Nothing below to hide.
            Err(err) if matches!(err.raw_os_error(), Some(c) if c == Errno::NOENT.raw_os_error() || c == Errno::NOTDIR.raw_os_error()) =>
            {
                return Ok(());
            }
            Err(err) => return Err(st.entry_err(e, "resolve the whiteout's directory", err)),
        };
        if st.upper_dirs.contains(&st.keys.hash_one(&key)) {
            // This layer added entries below it: hide only the lower ones.
            let fd = match root::open_dir_at(&dir, target) {
                Ok(fd) => fd,
                Err(err) => return Err(st.entry_err(e, "open the whited-out directory", err)),
            };
            return st
                .prune(&fd, &key, 0)
                .map_err(|err| st.entry_err(e, "apply the whiteout", err));
        }
        root::remove_any(&dir, target).map_err(|err| st.entry_err(e, "apply the whiteout", err))
    }

    /// `.wh..wh..opq`: hide everything the lower layers put in the directory, keeping what this
    /// layer adds (before or after the marker).
    fn opaque(&self, st: &mut LayerState, e: &Entry, parent: &[&[u8]]) -> Result<(), ApplyError> {
        let key = parent.join(&b'/');
        let dir = self
            .root
            .dir(parent, true)
            .map_err(|err| st.entry_err(e, "resolve the opaque directory", err))?;
        if self.options.whiteouts == Whiteouts::Overlay {
            // The lower layers are other directories: overlayfs hides them by this xattr.
            return rustix::fs::fsetxattr(&dir, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(|err| st.entry_err(e, "mark the directory opaque", err.into()));
        }
        st.prune(&dir, &key, 0)
            .map_err(|err| st.entry_err(e, "apply the opaque whiteout", err))
    }
}

/// The xattr overlayfs reads on an upper directory that hides the lower ones.
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

impl Rootfs {
    /// `.wh.NAME` in [`Whiteouts::Overlay`]: a 0/0 character device NAME, owned as the entry
    /// says, that overlayfs reads as "removed" (containers/storage's overlay whiteout format).
    /// The parent directories are made if the layer did not list them.
    fn overlay_whiteout(
        &self,
        st: &mut LayerState,
        e: &Entry,
        parent: &[&[u8]],
        target: &[u8],
        key: &[u8],
    ) -> Result<(), ApplyError> {
        if st.upper_dirs.contains(&st.keys.hash_one(key)) {
            // This layer put entries below it: they stay, as with Whiteouts::Remove.
            return Ok(());
        }
        let dir = match self.root.dir(parent, true) {
            Ok(d) => d,
            // `rm -rf /a/b` can give `.wh.a` then `a/.wh.b`: `a` is a whiteout already.
            Err(err) if err.raw_os_error() == Some(Errno::NOTDIR.raw_os_error()) => return Ok(()),
            Err(err) => return Err(st.entry_err(e, "resolve the whiteout's directory", err)),
        };
        match rustix::fs::mknodat(
            &dir,
            target,
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        ) {
            Ok(()) => {}
            Err(Errno::EXIST) => return Ok(()),
            Err(err) => return Err(st.entry_err(e, "make the overlay whiteout", err.into())),
        }
        if !self.options.rootless {
            let (uid, gid) = ids(st, e)?;
            rustix::fs::chownat(
                &dir,
                target,
                Some(uid),
                Some(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|err| st.entry_err(e, "set the whiteout's owner", err.into()))?;
        }
        st.record(key, parent.len());
        Ok(())
    }
}

/// Names the layer's uid and gid as the kernel's types.
fn ids(st: &LayerState, e: &Entry) -> Result<(rustix::fs::Uid, rustix::fs::Gid), ApplyError> {
    let bad = || ApplyError::Entry {
        layer: st.layer.clone(),
        entry: lossy(&e.name),
        op: "set the owner",
        source: io::Error::new(io::ErrorKind::InvalidData, "uid or gid above 2^32-2"),
    };
    let uid = u32::try_from(e.uid)
        .ok()
        .filter(|u| *u != u32::MAX)
        .ok_or_else(bad)?;
    let gid = u32::try_from(e.gid)
        .ok()
        .filter(|g| *g != u32::MAX)
        .ok_or_else(bad)?;
    Ok((
        rustix::fs::Uid::from_raw(uid),
        rustix::fs::Gid::from_raw(gid),
    ))
}

fn times(mtime: (i64, u32)) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime.0,
        tv_nsec: i64::from(mtime.1),
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// A name's components inside the root: `.` and empty parts dropped, `..` applied lexically.
/// An absolute name and climbing above the root are refused (docs/unpack.md says why).
pub(crate) fn clean(name: &[u8]) -> Result<Vec<&[u8]>, Refusal> {
    if name.contains(&0) {
        return Err(Refusal::BadName);
    }
    if name.len() > 4096 {
        return Err(Refusal::NameTooLong);
    }
    if name.first() == Some(&b'/') {
        return Err(Refusal::Absolute);
    }
    let mut out: Vec<&[u8]> = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(Refusal::Escapes);
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A resolved parent directory, and what a file created in it gets as its group.
struct ParentDir {
    fd: OwnedFd,
    setgid: bool,
    gid: u32,
}

/// Runs `create` for `name` in `dir`; if something is already there, removes it (a later entry
/// replaces an earlier one, a layer replaces what lower layers left) and runs it again. Trying
/// first saves a stat per entry in the common case of a new name.
fn replace<T>(
    st: &mut LayerState,
    dir: &OwnedFd,
    name: &[u8],
    mut create: impl FnMut() -> rustix::io::Result<T>,
) -> io::Result<T> {
    match create() {
        Err(Errno::EXIST) => {}
        other => return other.map_err(io::Error::from),
    }
    let existing = root::kind_at(dir, name)?;
    st.replaced(existing);
    root::remove_any(dir, name)?;
    Ok(create()?)
}

/// Whether `media_type` names a tar layer (OCI image-spec `layer.md` and `media-types.md`,
/// Docker's image manifest v2 schema 2), or is generic enough that the bytes must tell
/// (`application/octet-stream`, none at all). A config or any other non-layer type is refused.
fn is_layer_media_type(media_type: &str) -> bool {
    matches!(
        media_type.trim(),
        "" | "application/octet-stream" | "application/x-tar"
    ) || Compression::from_media_type(media_type).is_some()
}

/// The process umask, from /proc (reading it with umask(2) would change it for every thread
/// for a moment); `None` when it cannot be read, and then every mode is set explicitly.
fn read_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Umask:"))?;
    u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).ok()
}

/// A directory whose mode (rootless) and mtime are set after the layer's contents.
struct Deferred {
    path: Vec<u8>,
    mode: u32,
    mtime: (i64, u32),
}

/// One layer's bookkeeping.
struct LayerState {
    layer: String,
    /// Paths this layer wrote (for whiteouts, which apply to lower layers only).
    ///
    /// Paths are kept as 64-bit keyed hashes (SipHash with this process's random key), not as
    /// strings: memory per entry stays at a few bytes, and a layer cannot choose names that
    /// collide without knowing the key.
    upper: HashSet<u64>,
    keys: RandomState,
    /// Directories with something of this layer below them.
    upper_dirs: HashSet<u64>,
    deferred: Vec<Deferred>,
    /// The last parent directory resolved, reused while nothing can have moved it.
    cached: Option<(Vec<u8>, ParentDir)>,
    /// Cleared when the entry being applied removed a directory or symlink.
    cache_ok: bool,
    /// Rootless and not root: read-only parent directories are opened up for the layer.
    writable_dirs: bool,
    warnings: Vec<Warning>,
    dropped_warnings: u64,
    buf: Vec<u8>,
    /// The owners the layer's entries name (whiteouts aside), for [`LayerStats::uids`].
    uids: BTreeSet<u32>,
    gids: BTreeSet<u32>,
}

impl LayerState {
    fn warn(&mut self, e: &Entry, kind: WarningKind) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(Warning {
                entry: lossy(&e.name),
                kind,
            });
        } else {
            self.dropped_warnings += 1;
        }
    }

    fn entry_err(&self, e: &Entry, op: &'static str, source: io::Error) -> ApplyError {
        ApplyError::Entry {
            layer: self.layer.clone(),
            entry: lossy(&e.name),
            op,
            source,
        }
    }

    /// Something of kind `k` is being removed: if it was a directory or a symlink, a cached
    /// parent may no longer be what its path names.
    fn replaced(&mut self, k: Option<FileType>) {
        if matches!(k, Some(FileType::Directory | FileType::Symlink)) {
            self.cached = None;
            self.cache_ok = false;
        }
    }

    /// The parent directory of the entry `key` (made when missing), taken out of the cache or
    /// resolved; the caller puts it back when the entry is done.
    fn take_parent(
        &mut self,
        root: &SafeRoot,
        parent: &[&[u8]],
        key: &[u8],
        e: &Entry,
    ) -> Result<(Vec<u8>, ParentDir), ApplyError> {
        let pkey = parent.join(&b'/');
        if let Some((ck, _)) = &self.cached {
            // An entry at the cached directory or above it may replace what the path names.
            let under =
                ck.len() > key.len() && ck.starts_with(key) && ck.get(key.len()) == Some(&b'/');
            if ck.as_slice() == key || under {
                self.cached = None;
            }
        }
        if let Some((ck, _)) = &self.cached
            && *ck == pkey
            && let Some((ck, dir)) = self.cached.take()
        {
            return Ok((ck, dir));
        }
        let fd = root
            .dir(parent, true)
            .map_err(|err| self.entry_err(e, "resolve the parent directory", err))?;
        let stat = rustix::fs::fstat(&fd)
            .map_err(|err| self.entry_err(e, "inspect the parent directory", err.into()))?;
        if self.writable_dirs && stat.st_mode & 0o300 != 0o300 {
            // Rootless and not root: a lower layer's read-only directory would refuse this
            // layer's entries (umoci does the same). Opened for writing for the layer, its
            // mode and mtime are put back when the layer ends.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode((stat.st_mode | 0o700) & 0o7777))
                .map_err(|err| self.entry_err(e, "open up a read-only directory", err.into()))?;
            self.deferred.push(Deferred {
                path: pkey.clone(),
                mode: stat.st_mode & 0o7777,
                mtime: (
                    stat.st_mtime,
                    u32::try_from(stat.st_mtime_nsec).unwrap_or(0),
                ),
            });
        }
        Ok((
            pkey,
            ParentDir {
                fd,
                setgid: stat.st_mode & 0o2000 != 0,
                gid: stat.st_gid,
            },
        ))
    }

    /// Records that this layer wrote `key`, and that its ancestors hold something of it.
    fn record(&mut self, key: &[u8], depth: usize) {
        self.upper.insert(self.keys.hash_one(key));
        let mut p = key;
        for _ in 0..depth {
            let Some(i) = p.iter().rposition(|b| *b == b'/') else {
                break;
            };
            p = p.get(..i).unwrap_or(&[]);
            if !self.upper_dirs.insert(self.keys.hash_one(p)) {
                break;
            }
        }
    }

    /// Removes from the directory `dir` (at `key`) everything this layer did not write, and
    /// descends into what it did.
    fn prune(&mut self, dir: &OwnedFd, key: &[u8], depth: usize) -> io::Result<()> {
        if depth > 2048 {
            return Err(io::Error::other("directory tree too deep"));
        }
        self.cached = None;
        for name in root::list(dir)? {
            let mut ck = key.to_vec();
            if !ck.is_empty() {
                ck.push(b'/');
            }
            ck.extend_from_slice(&name);
            let h = self.keys.hash_one(&ck);
            let written = self.upper.contains(&h);
            let holds = self.upper_dirs.contains(&h);
            if !written && !holds {
                root::remove_any(dir, &name)?;
            } else if root::kind_at(dir, &name)? == Some(FileType::Directory) {
                let child = root::open_dir_at(dir, &name)?;
                self.prune(&child, &ck, depth + 1)?;
            }
        }
        Ok(())
    }

    /// Sets the deferred directories' modes (rootless) and mtimes, now that nothing more is
    /// written into them. A path that is no longer a directory is skipped.
    fn finish_dirs(&mut self, root: &SafeRoot, rootless: bool) -> Result<(), ApplyError> {
        self.cached = None;
        let deferred = std::mem::take(&mut self.deferred);
        for d in deferred.iter().rev() {
            let comps: Vec<&[u8]> = d
                .path
                .split(|b| *b == b'/')
                .filter(|c| !c.is_empty())
                .collect();
            let fd = match comps.split_last() {
                None => root.dir(&[], false),
                Some((name, parent)) => match root.dir(parent, false) {
                    Ok(p) => root::open_dir_at(&p, name),
                    Err(e) => Err(e),
                },
            };
            let err = |op: &'static str, source: io::Error| ApplyError::Entry {
                layer: self.layer.clone(),
                entry: lossy(&d.path),
                op,
                source,
            };
            let fd = match fd {
                Ok(fd) => fd,
                Err(e)
                    if matches!(e.raw_os_error(), Some(c) if c == Errno::NOENT.raw_os_error()
                        || c == Errno::NOTDIR.raw_os_error()
                        || c == Errno::LOOP.raw_os_error()) =>
                {
                    continue;
                }
                Err(e) => return Err(err("reopen the directory", e)),
            };
            if rootless || d.path.is_empty() {
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(d.mode))
                    .map_err(|e| err("set the mode", e.into()))?;
            }
            rustix::fs::futimens(&fd, &times(d.mtime))
                .map_err(|e| err("set the mtime", e.into()))?;
        }
        Ok(())
    }
}

/// How a layer's bytes are checked.
#[derive(Clone, Copy)]
pub(crate) enum Check<'a> {
    /// Hashed here and compared with the manifest's digest at the end.
    Hash(&'a Digest),
    /// Hashed here (sha256), the digest learned (a tar whose diff_id the caller checks).
    Learn,
    /// Verified by the reader itself, which ends (gives 0) only once all the blob's bytes
    /// matched this digest and fails otherwise (the unpack's spool behind a verifying
    /// download).
    Verified(&'a Digest),
}

/// Hashes (unless the reader verifies) and counts the compressed bytes as they are read.
struct Hashing<R> {
    inner: R,
    digester: Option<Digester>,
    count: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(d) = &mut self.digester {
            d.update(buf.get(..n).unwrap_or(&[]));
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// The byte cap was reached (carried inside an `io::Error` through the readers above).
#[derive(Debug)]
struct CapReached;
impl std::fmt::Display for CapReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the uncompressed byte cap was reached")
    }
}
impl std::error::Error for CapReached {}

/// Counts uncompressed bytes and fails past the cap.
struct Capped<R> {
    inner: R,
    count: u64,
    limit: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            return Err(io::Error::other(CapReached));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_or_refused() {
        let c = |n: &str| clean(n.as_bytes()).map(|v| v.join(&b'/'));
        assert_eq!(c("./etc/passwd").unwrap(), b"etc/passwd");
        assert_eq!(c("etc//passwd/").unwrap(), b"etc/passwd");
        assert_eq!(c(".//etc/./passwd").unwrap(), b"etc/passwd");
        assert_eq!(c("a/../b").unwrap(), b"b");
        assert_eq!(c("./").unwrap(), b"");
        assert_eq!(c("../x"), Err(Refusal::Escapes));
        assert_eq!(c("a/../../x"), Err(Refusal::Escapes));
        assert_eq!(c("/etc/passwd"), Err(Refusal::Absolute));
        assert_eq!(c("//etc"), Err(Refusal::Absolute));
        assert_eq!(c("/"), Err(Refusal::Absolute));
        assert_eq!(c("/.."), Err(Refusal::Absolute));
        assert_eq!(clean(b"a\0b"), Err(Refusal::BadName));
    }

    #[test]
    fn layer_media_types_and_others() {
        for mt in [
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "application/vnd.docker.image.rootfs.diff.tar",
            "application/octet-stream",
            "",
        ] {
            assert!(is_layer_media_type(mt), "{mt}");
        }
        for mt in [
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.layer.v1.tar+bzip2",
            "text/plain",
        ] {
            assert!(!is_layer_media_type(mt), "{mt}");
        }
    }
}
