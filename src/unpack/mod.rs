//! `ferry unpack`'s core: apply an admitted image's layers safely onto a root directory and make
//! the OCI runtime bundle (rootfs + config.json) a runtime such as runc runs.
//!
//! Layers are hostile input: container tools' worst CVEs were in this step (names escaping the
//! root, writes through symlinks that point out of it, hardlinks to host files). So every name is
//! resolved inside the root and never through a symlink that leaves it (the `root` module: openat2
//! `RESOLVE_IN_ROOT` where the kernel has it, a component-by-component `O_NOFOLLOW` walk
//! otherwise), and every limit (bytes, entries) is a clean error, not a full disk.
//!
//! The pieces, bottom up: the shared `compression` module (a layer's magic to a decoder),
//! `tar_stream` (tar framing, PAX and GNU long names, with caps), `root` (the safe
//! filesystem calls), `apply` (one layer's changeset onto a root: [`Rootfs`]), `config` (the
//! image config to a runtime `config.json`) and `bundle` (a bundle built beside its final path
//! and renamed into place: [`BundleBuilder`]).
//!
//! Everything here is synchronous and streams: a caller with async sources runs it in
//! `tokio::task::spawn_blocking` and hands each layer over as a `std::io::Read`
//! (`tokio_util::io::SyncIoBridge`), as docs/unpack.md shows.

mod apply;
mod bundle;
mod config;
mod root;
mod tar_stream;

use std::path::PathBuf;

pub(crate) use apply::Check;
pub use apply::{LayerStats, Rootfs, Warning, WarningKind};
pub(crate) use bundle::parent_of;
pub use bundle::{BundleBuilder, BundleReport};
pub use config::{RuntimeUser, runtime_config};

use crate::digest::Digest;

/// How names are resolved inside the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Resolver {
    /// openat2 with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` when the kernel has it, the walk
    /// otherwise.
    #[default]
    Auto,
    /// openat2 only; an error where the kernel lacks it.
    Openat2,
    /// The component-by-component `O_NOFOLLOW` walk, even where openat2 exists (for tests of
    /// the fallback, and for kernels or seccomp profiles that refuse openat2).
    Walk,
}

/// What a whiteout entry becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Whiteouts {
    /// The whited-out path is removed from the root (every layer applied onto one directory:
    /// a bundle, a vfs layer of containers-storage).
    #[default]
    Remove,
    /// The root holds this layer alone, as an overlay filesystem's upper directory (a
    /// containers-storage overlay layer's `diff`): `.wh.NAME` becomes a 0/0 character device
    /// NAME and `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on its directory, as the
    /// kernel's overlayfs reads them and containers/storage writes them.
    Overlay,
}

/// Options of an unpack. `ApplyOptions::default()` reads no environment; see
/// [`ApplyOptions::from_env`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApplyOptions {
    /// As umoci's `--rootless`: files are owned by the caller (the layer's uid/gid are not
    /// applied), devices are skipped with a [`Warning`], and the runtime config maps the
    /// caller's uid to root in a user namespace. Without it, unpacking needs root.
    pub rootless: bool,
    /// The most bytes of uncompressed tar the whole unpack may read (headers, data, padding),
    /// over all layers: a decompression bomb stops here with [`ApplyError::Limit`].
    pub max_bytes: u64,
    /// The most tar entries the whole unpack may apply, over all layers.
    pub max_entries: u64,
    /// How names are resolved inside the root.
    pub resolver: Resolver,
    /// What whiteout entries become.
    pub whiteouts: Whiteouts,
}

/// The default cap on uncompressed bytes: 64 GiB, far above any real image.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024 * 1024;
/// The default cap on entries: 4 million, far above any real image (a full distribution is
/// a few hundred thousand files).
pub const DEFAULT_MAX_ENTRIES: u64 = 4_000_000;

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            rootless: false,
            max_bytes: DEFAULT_MAX_BYTES,
            max_entries: DEFAULT_MAX_ENTRIES,
            resolver: Resolver::Auto,
            whiteouts: Whiteouts::Remove,
        }
    }
}

impl ApplyOptions {
    /// The defaults, with `FERRY_UNPACK_RESOLVER=walk|openat2|auto` choosing the resolver (so a
    /// test of the CLI can force the fallback). An unknown value is ignored.
    pub fn from_env() -> Self {
        let mut o = ApplyOptions::default();
        match std::env::var("FERRY_UNPACK_RESOLVER").as_deref() {
            Ok("walk") => o.resolver = Resolver::Walk,
            Ok("openat2") => o.resolver = Resolver::Openat2,
            _ => {}
        }
        o
    }
}

/// Why an entry was refused: the entry would reach outside the root or is not a thing a layer
/// may hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The name climbs above the root with `..`.
    #[error("its name climbs out of the root with '..'")]
    Escapes,
    /// A hardlink's target climbs above the root with `..`.
    #[error("it is a hardlink to {target:?}, which climbs out of the root with '..'")]
    HardlinkEscapes {
        /// The link's target as written in the layer.
        target: String,
    },
    /// The name is absolute (`/etc/x`). Image builders write names relative to the root
    /// (`etc/x`, `./etc/x`); a layer that does not is hostile or broken, so ferry refuses it
    /// where umoci and GNU tar strip the `/`.
    #[error("its name is absolute (a layer's names are relative to its root)")]
    Absolute,
    /// A hardlink's target name is absolute.
    #[error(
        "it is a hardlink to {target:?}, an absolute name (a layer's names are relative to its root)"
    )]
    HardlinkAbsolute {
        /// The link's target as written in the layer.
        target: String,
    },
    /// A hardlink to something that is not a file (a directory, or nothing).
    #[error("it is a hardlink to {target:?}, which {why}")]
    HardlinkTarget {
        /// The link's target as written in the layer.
        target: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A whiteout of `.`, `..` or of an empty name.
    #[error("it is a whiteout of {0:?}, which names no entry")]
    BadWhiteout(String),
    /// An entry for the root directory itself that is not a directory.
    #[error("it would replace the root directory with something that is not a directory")]
    RootNotDirectory,
    /// An empty name, or a name with a NUL byte.
    #[error("its name is empty or holds a NUL byte")]
    BadName,
    /// A name longer than the kernel's `PATH_MAX` (4096 bytes).
    #[error("its name is longer than 4096 bytes")]
    NameTooLong,
    /// A tar entry type a layer may not hold (e.g. GNU sparse or multi-volume).
    #[error("its tar type {0:?} is not supported in a layer")]
    UnsupportedType(char),
}

/// Which cap an unpack hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// [`ApplyOptions::max_bytes`].
    Bytes,
    /// [`ApplyOptions::max_entries`].
    Entries,
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LimitKind::Bytes => "uncompressed bytes",
            LimitKind::Entries => "entries",
        })
    }
}

/// Why an unpack failed. Each variant names the layer (the caller's label) and, where there is
/// one, the tar entry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// An entry was refused for safety; nothing was written for it.
    #[error("{layer}: entry {entry:?} refused: {reason}")]
    Refused {
        /// The layer's label.
        layer: String,
        /// The entry's name as written in the layer.
        entry: String,
        /// Why.
        reason: Refusal,
    },
    /// A filesystem call for an entry failed.
    #[error("{layer}: entry {entry:?}: {op}: {source}")]
    Entry {
        /// The layer's label.
        layer: String,
        /// The entry's name as written in the layer.
        entry: String,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The layer's bytes are not a valid (compressed) tar stream, or ended early.
    #[error("{layer}: the layer is corrupt or truncated{}: {source}", entry.as_ref().map(|e| format!(" (at entry {e:?})")).unwrap_or_default())]
    Corrupt {
        /// The layer's label.
        layer: String,
        /// The last entry read, if any.
        entry: Option<String>,
        /// What the decoder or tar reader said.
        source: std::io::Error,
    },
    /// The layer's compressed bytes do not hash to the digest the manifest names.
    #[error(
        "{layer}: the layer's content does not match its digest {expected} (it hashes to {actual}); the source is corrupt or was changed, and what was unpacked must be discarded"
    )]
    Digest {
        /// The layer's label.
        layer: String,
        /// The manifest's digest.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// A cap of [`ApplyOptions`] was reached.
    #[error(
        "{layer}: more than {limit} {kind}: refusing to unpack further (a decompression bomb, or raise the limit for an image trusted to be this large)"
    )]
    Limit {
        /// The layer's label.
        layer: String,
        /// Which cap.
        kind: LimitKind,
        /// The cap's value.
        limit: u64,
    },
    /// The layer is compressed in a way ferry does not read (bzip2, xz).
    #[error(
        "{layer}: the layer is {compression}-compressed; ferry unpacks tar, gzip and zstd layers"
    )]
    Compression {
        /// The layer's label.
        layer: String,
        /// The compression its bytes show.
        compression: String,
    },
    /// The layer's media type is not a tar layer ferry can decompress.
    #[error(
        "{layer}: media type {media_type:?} is not a layer ferry can unpack (tar, tar+gzip, tar+zstd, or Docker's tar.gzip)"
    )]
    MediaType {
        /// The layer's label.
        layer: String,
        /// The media type.
        media_type: String,
    },
    /// Unpacking with the layers' owners needs root.
    #[error(
        "unpacking with the image's file owners needs root (running as uid {uid}); run as root or unpack rootless (files owned by you, devices skipped)"
    )]
    NeedsRoot {
        /// The caller's effective uid.
        uid: u32,
    },
    /// The kernel lacks openat2 and [`Resolver::Openat2`] was asked for.
    #[error("openat2 is not available here ({0}); use Resolver::Auto or Resolver::Walk")]
    NoOpenat2(std::io::Error),
    /// A filesystem call on the root or the bundle failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The bundle directory exists and is not empty.
    #[error("{}: the bundle directory exists and is not empty; remove it or choose another path", path.display())]
    BundleExists {
        /// The bundle's path.
        path: PathBuf,
    },
    /// The image config cannot be made into a runtime config.
    #[error("image config: {0}")]
    Config(String),
    /// The image config's `User` cannot be resolved in the unpacked root.
    #[error("image config: user {user:?}: {reason}")]
    User {
        /// `User` as the image config gives it.
        user: String,
        /// Why it cannot be resolved.
        reason: String,
    },
}

impl ApplyError {
    /// What kind of failure this is: a refused, corrupt, oversized or mismatching layer and a
    /// config that cannot be used are [`ErrorKind::Corrupt`](crate::error::ErrorKind::Corrupt)
    /// (the image is at fault); a filesystem failure is `Io`; running without root, or onto a
    /// bundle that exists, is `Config` (the caller must change how it runs).
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            ApplyError::Refused { .. }
            | ApplyError::Corrupt { .. }
            | ApplyError::Digest { .. }
            | ApplyError::Limit { .. }
            | ApplyError::Config(_)
            | ApplyError::User { .. } => ErrorKind::Corrupt,
            ApplyError::Compression { .. }
            | ApplyError::MediaType { .. }
            | ApplyError::NoOpenat2(_) => ErrorKind::Unsupported,
            ApplyError::Entry { .. } | ApplyError::Io { .. } => ErrorKind::Io,
            ApplyError::NeedsRoot { .. } | ApplyError::BundleExists { .. } => ErrorKind::Config,
        }
    }
}

/// Bytes of a name as a string for messages.
fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
