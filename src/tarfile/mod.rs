//! The tar core of the `oci-archive:` and `docker-archive:` transports, for air-gapped sites that
//! move images as files.
//!
//! containers/image extracts a whole oci-archive to a temporary directory before reading one
//! blob; ferry does not. An archive is indexed once (headers only, seeking past contents), and a
//! blob is then read in place over its exact byte range ([`TarArchive`]), so reading an image
//! from an archive costs what reading it from a layout directory costs. Archives compressed as a
//! whole are decompressed once to a temporary file ([`compressed`]). Writing streams every blob
//! straight into a temporary file beside the destination that appears under its name only when
//! finished ([`TarWriter`]).
//!
//! On top of the tar layer, the two formats as data with their readers and writers:
//! [`oci`] (an OCI image layout inside a tar; images chosen by
//! `org.opencontainers.image.ref.name` or position) and [`docker`] (`docker save`: manifest.json,
//! the legacy `repositories` map, both the Docker < 25 and the Docker 25+ layouts; images chosen
//! by `NAME:TAG` or `@N`). [`reference`] parses the transports' `PATH[:…]` grammars as
//! containers/image does.
//!
//! [`OpenArchives`] keeps a session's archives: the writers a sync's copies share (the file
//! appears when the sync ends), and readers indexed once per session.
//!
//! Archives are hostile input: names that are absolute or climb out with `..`, duplicate names
//! and sizes past the end of the file are refused when the archive is indexed, and links are only
//! ever resolved to other entries of the archive, never to files on disk.

mod archive;
pub mod compressed;
pub mod docker;
mod error;
pub mod header;
mod index;
pub mod oci;
mod open;
pub mod reference;
mod writer;

pub use archive::{DEFAULT_TEMP_DIR, EntryRead, EntryReader, OpenOptions, TarArchive};
pub use compressed::Compression;
pub use error::ArchiveError;
pub use index::{Entry, EntryKind, TarIndex, normalize_name};
pub use open::{ArchiveFormat, ArchiveWriter, BlobTurns, OpenArchives, SharedWriter};
pub use writer::{TEMP_MARKER, TarWriter, remove_leftovers};

/// The entry name of a blob in an OCI layout: `blobs/ALGORITHM/HEX`.
pub fn blob_path(digest: &crate::digest::Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().name(), digest.hex())
}
