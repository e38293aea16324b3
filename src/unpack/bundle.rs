//! An OCI runtime bundle built where a failure cannot leave a half-made one: everything goes into
//! a temporary directory beside BUNDLE, renamed into place only when complete. A rootfs-only
//! build (`ferry unpack --rootfs-only`) is the same with the temporary directory as the root
//! filesystem itself and no `config.json`. A temporary
//! directory has a lock file beside it, held (flock) while its unpack runs; the next unpack to
//! the same parent removes any whose lock it can take, i.e. whose process died (killed, power
//! loss). Nothing without ferry's name pattern and lock is ever removed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use super::{ApplyError, ApplyOptions, Check, LayerStats, Rootfs, runtime_config};
use crate::digest::Digest;
use crate::policy::Admission;

/// The marker in a temporary directory's name; its lock file adds [`LOCK_SUFFIX`].
const TMP_MARK: &str = ".ferry-unpack-";
const LOCK_SUFFIX: &str = ".lock";

/// A bundle being built: apply the layers in order, then [`BundleBuilder::finish`]. Dropped
/// unfinished (an error, a panic, a cancelled task), it removes its temporary directory.
pub struct BundleBuilder {
    bundle: PathBuf,
    tmp: PathBuf,
    lock_path: PathBuf,
    _lock: File,
    rootfs: Option<Rootfs>,
    rootless: bool,
    rootfs_only: bool,
    layers: Vec<LayerStats>,
    removed: Vec<PathBuf>,
    done: bool,
}

/// What a finished bundle holds.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BundleReport {
    /// The bundle's path (holds `rootfs/` and `config.json`).
    pub bundle: PathBuf,
    /// Each layer's statistics, in order.
    pub layers: Vec<LayerStats>,
    /// Whether names were resolved with openat2 (else with the no-follow walk).
    pub openat2: bool,
    /// Temporary directories of earlier, killed unpacks that were removed.
    pub removed_leftovers: Vec<PathBuf>,
}

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(std::io::Error) -> ApplyError {
    let path = path.to_path_buf();
    move |source| ApplyError::Io { path, op, source }
}

impl BundleBuilder {
    /// Starts a bundle (`rootfs/` and `config.json`) at `bundle`, which must not exist or be
    /// an empty directory, for an image the gate admitted (`admission` is the gate's proof, see
    /// [`Rootfs::open`]). Removes the leftovers of killed unpacks beside it first.
    pub fn create(
        bundle: &Path,
        options: ApplyOptions,
        admission: &Admission,
    ) -> Result<BundleBuilder, ApplyError> {
        BundleBuilder::start(bundle, options, admission, false)
    }

    /// Starts a root filesystem alone at `dir` (the layers applied into `dir` itself, no
    /// `config.json`), with the same rules as [`BundleBuilder::create`]: `dir` must not exist
    /// or be empty, and appears only when [`BundleBuilder::finish`] succeeds.
    pub fn create_rootfs(
        dir: &Path,
        options: ApplyOptions,
        admission: &Admission,
    ) -> Result<BundleBuilder, ApplyError> {
        BundleBuilder::start(dir, options, admission, true)
    }

    fn start(
        bundle: &Path,
        options: ApplyOptions,
        admission: &Admission,
        rootfs_only: bool,
    ) -> Result<BundleBuilder, ApplyError> {
        let (parent, name) = split(bundle)?;
        if let Ok(mut entries) = std::fs::read_dir(bundle) {
            if entries.next().is_some() {
                return Err(ApplyError::BundleExists {
                    path: bundle.to_path_buf(),
                });
            }
        } else if std::fs::symlink_metadata(bundle).is_ok() {
            return Err(ApplyError::BundleExists {
                path: bundle.to_path_buf(),
            });
        }
        let removed = remove_leftovers(&parent, &name)?;

        let stem = format!(
            ".{name}{TMP_MARK}{}-{}",
            std::process::id(),
            random_suffix()
        );
        let tmp = parent.join(&stem);
        let lock_path = parent.join(format!("{stem}{LOCK_SUFFIX}"));
        let lock = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path, "create the unpack's lock file"))?;
        rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| io_err(&lock_path, "lock the unpack's lock file")(e.into()))?;
        let mut builder = BundleBuilder {
            bundle: bundle.to_path_buf(),
            tmp: tmp.clone(),
            lock_path,
            _lock: lock,
            rootfs: None,
            rootless: options.rootless,
            rootfs_only,
            layers: Vec::new(),
            removed,
            done: false,
        };
        std::fs::create_dir(&tmp).map_err(io_err(&tmp, "create the temporary bundle"))?;
        let rootfs_path = if rootfs_only {
            tmp.clone()
        } else {
            let p = tmp.join("rootfs");
            std::fs::create_dir(&p).map_err(io_err(&p, "create the rootfs directory"))?;
            p
        };
        // The rootfs is the container's `/`: 0755 like umoci's (create_dir applied the umask).
        std::fs::set_permissions(
            &rootfs_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(io_err(&rootfs_path, "set the rootfs mode"))?;
        builder.rootfs = Some(Rootfs::open(&rootfs_path, options, admission)?);
        Ok(builder)
    }

    /// Applies the next layer (bottom first); see [`Rootfs::apply_layer`].
    pub fn apply_layer<R: Read>(
        &mut self,
        reader: R,
        media_type: &str,
        expected: &Digest,
        label: &str,
    ) -> Result<&LayerStats, ApplyError> {
        self.apply_checked(reader, media_type, Check::Hash(expected), label)
    }

    /// As [`BundleBuilder::apply_layer`], the bytes checked as `check` says.
    pub(crate) fn apply_checked<R: Read>(
        &mut self,
        reader: R,
        media_type: &str,
        check: Check<'_>,
        label: &str,
    ) -> Result<&LayerStats, ApplyError> {
        let rootfs = self.rootfs_mut()?;
        let stats = rootfs.apply(reader, media_type, check, label)?;
        self.layers.push(stats);
        self.layers
            .last()
            .ok_or_else(|| ApplyError::Config("no layer recorded".to_string()))
    }

    fn rootfs_mut(&mut self) -> Result<&mut Rootfs, ApplyError> {
        self.rootfs
            .as_mut()
            .ok_or_else(|| ApplyError::Config("the bundle's rootfs is not open".to_string()))
    }

    /// The rootfs being filled (to read from it, e.g. for checks before finishing).
    pub fn rootfs(&self) -> Option<&Rootfs> {
        self.rootfs.as_ref()
    }

    /// Writes `config.json` made from the image config (JSON bytes) and renames the bundle into
    /// place. The bundle exists only after this returns Ok. A rootfs-only build writes no
    /// `config.json` (and does not read `image_config`).
    pub fn finish(mut self, image_config: &[u8]) -> Result<BundleReport, ApplyError> {
        let rootfs = self
            .rootfs
            .as_ref()
            .ok_or_else(|| ApplyError::Config("the bundle's rootfs is not open".to_string()))?;
        let openat2 = rootfs.uses_openat2();
        if !self.rootfs_only {
            let spec = runtime_config(image_config, rootfs, self.rootless)?;
            let config_path = self.tmp.join("config.json");
            let mut bytes = serde_json::to_vec_pretty(&spec)
                .map_err(|e| ApplyError::Config(format!("cannot serialise config.json: {e}")))?;
            bytes.push(b'\n');
            let mut f =
                File::create(&config_path).map_err(io_err(&config_path, "write config.json"))?;
            f.write_all(&bytes)
                .and_then(|()| f.sync_all())
                .map_err(io_err(&config_path, "write config.json"))?;
        }
        // Close the root's handle before the rename.
        self.rootfs = None;
        // An empty directory at BUNDLE is replaced by rename(2); anything else makes it fail.
        std::fs::rename(&self.tmp, &self.bundle).map_err(|e| {
            if matches!(e.raw_os_error(), Some(c) if c == rustix::io::Errno::NOTEMPTY.raw_os_error() || c == rustix::io::Errno::EXIST.raw_os_error())
            {
                ApplyError::BundleExists {
                    path: self.bundle.clone(),
                }
            } else {
                io_err(&self.bundle, "rename the finished bundle into place")(e)
            }
        })?;
        self.done = true;
        let _ = std::fs::remove_file(&self.lock_path);
        Ok(BundleReport {
            bundle: self.bundle.clone(),
            layers: std::mem::take(&mut self.layers),
            openat2,
            removed_leftovers: std::mem::take(&mut self.removed),
        })
    }
}

impl Drop for BundleBuilder {
    fn drop(&mut self) {
        if !self.done {
            self.rootfs = None;
            let _ = std::fs::remove_dir_all(&self.tmp);
            let _ = std::fs::remove_file(&self.lock_path);
        }
    }
}

/// The directory BUNDLE is made in (`.` for a bare name): where its temporaries go.
pub(crate) fn parent_of(bundle: &Path) -> PathBuf {
    match bundle.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// BUNDLE's parent (`.` for a bare name) and its last component.
fn split(bundle: &Path) -> Result<(PathBuf, String), ApplyError> {
    let name = bundle
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ApplyError::Io {
            path: bundle.to_path_buf(),
            op: "name the bundle",
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the bundle path must end in a UTF-8 directory name",
            ),
        })?
        .to_string();
    Ok((parent_of(bundle), name))
}

/// Removes `.{name}.ferry-unpack-*` directories in `parent` whose lock file nobody holds.
fn remove_leftovers(parent: &Path, name: &str) -> Result<Vec<PathBuf>, ApplyError> {
    let prefix = format!(".{name}{TMP_MARK}");
    let mut removed = Vec::new();
    let entries = std::fs::read_dir(parent).map_err(io_err(parent, "list the bundle's parent"))?;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        let Some(stem) = n.strip_suffix(LOCK_SUFFIX) else {
            continue;
        };
        if !stem.starts_with(&prefix) {
            continue;
        }
        let lock_path = entry.path();
        let Ok(lock) = OpenOptions::new().write(true).open(&lock_path) else {
            continue;
        };
        if rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
            // Its unpack is still running.
            continue;
        }
        let dir = parent.join(stem);
        if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            // remove_dir_all does not follow symlinks inside the tree.
            std::fs::remove_dir_all(&dir)
                .map_err(io_err(&dir, "remove a killed unpack's leftovers"))?;
            removed.push(dir);
        }
        let _ = std::fs::remove_file(&lock_path);
    }
    Ok(removed)
}

fn random_suffix() -> String {
    let mut b = [0u8; 6];
    // Uniqueness comes from the pid and create_new; randomness only avoids a stale name.
    let _ = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}{nanos:08x}", hex::encode(b))
}
