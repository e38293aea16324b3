//! The one error type of the archive module: every variant names the archive (and the entry, where
//! there is one), so a user with several archives on an air-gapped site knows which file is bad
//! and what to do about it.

use std::path::PathBuf;

/// Why reading or writing an `oci-archive:` / `docker-archive:` tar failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The file could not be opened, read or written.
    #[error("{archive}: {action}: {source}")]
    Io {
        /// The archive (or the temporary file being written).
        archive: PathBuf,
        /// What was being done.
        action: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The archive ends in the middle of a tar header: it was cut short (an interrupted copy or
    /// download). Copy it again.
    #[error(
        "{archive}: truncated archive: it ends at byte {archive_len}, inside the tar header at byte {offset}; the file was cut short, copy it again"
    )]
    Truncated {
        /// The archive.
        archive: PathBuf,
        /// Where the header starts.
        offset: u64,
        /// The archive's length.
        archive_len: u64,
    },
    /// An entry's declared size runs past the end of the archive: the archive was cut short, or
    /// the header lies.
    #[error(
        "{archive}: entry {entry:?} declares {size} bytes from byte {data_offset}, past the end of the archive ({archive_len} bytes); the file was cut short or is corrupt, copy it again"
    )]
    EntryPastEnd {
        /// The archive.
        archive: PathBuf,
        /// The entry's name as written in its header.
        entry: String,
        /// Where its data starts.
        data_offset: u64,
        /// Its declared size.
        size: u64,
        /// The archive's length.
        archive_len: u64,
    },
    /// A block that should be a tar header is not one (bad checksum, bad number, bad PAX record).
    #[error("{archive}: not a valid tar archive: the header at byte {offset} {problem}")]
    BadHeader {
        /// The archive.
        archive: PathBuf,
        /// Where the header starts.
        offset: u64,
        /// What is wrong with it.
        problem: String,
    },
    /// An entry name that is absolute or climbs out with `..`: ferry refuses archives that try
    /// to name files outside themselves, whatever a reader would do with them.
    #[error(
        "{archive}: entry {entry:?} has an unsafe name ({problem}); refusing the archive, whose entries must be relative names inside it"
    )]
    UnsafeName {
        /// The archive.
        archive: PathBuf,
        /// The name as written.
        entry: String,
        /// Absolute, or a `..` component.
        problem: &'static str,
    },
    /// Two entries with the same name: which one a reader sees would depend on the reader, so
    /// the archive is refused.
    #[error(
        "{archive}: entry {entry:?} appears twice (headers at bytes {first_offset} and {second_offset}); refusing an ambiguous archive"
    )]
    DuplicateEntry {
        /// The archive.
        archive: PathBuf,
        /// The name.
        entry: String,
        /// The first header's offset.
        first_offset: u64,
        /// The second header's offset.
        second_offset: u64,
    },
    /// The archive has no entry of that name (after following links inside the archive).
    #[error("{archive}: no entry {entry:?} in the archive{detail}")]
    NotFound {
        /// The archive.
        archive: PathBuf,
        /// The name looked for.
        entry: String,
        /// More about the lookup (e.g. the link that led there), or empty.
        detail: String,
    },
    /// The entry exists but holds no file content (a directory, a device, a link chain that is
    /// too long).
    #[error("{archive}: entry {entry:?} is not a regular file ({what})")]
    NotRegular {
        /// The archive.
        archive: PathBuf,
        /// The name.
        entry: String,
        /// What it is instead.
        what: String,
    },
    /// A small metadata entry (index.json, manifest.json, a config) is larger than ferry reads.
    #[error(
        "{archive}: entry {entry:?} is {size} bytes, more than the {limit}-byte limit for {what}; refusing to read it"
    )]
    TooLarge {
        /// The archive.
        archive: PathBuf,
        /// The entry.
        entry: String,
        /// Its size.
        size: u64,
        /// The cap.
        limit: u64,
        /// What kind of entry.
        what: &'static str,
    },
    /// The archive is compressed with a format ferry does not read.
    #[error(
        "{archive}: the archive is {format}-compressed, which ferry does not read; decompress it first (e.g. `{hint}`) or use gzip, xz or zstd"
    )]
    UnsupportedCompression {
        /// The archive.
        archive: PathBuf,
        /// The format.
        format: &'static str,
        /// A command that decompresses it.
        hint: &'static str,
    },
    /// Decompressing a compressed archive (or a compressed entry) failed: corrupt data or a
    /// truncated file.
    #[error("{archive}: cannot decompress ({format}){entry}: {source}", entry = .entry.as_ref().map(|e| format!(" entry {e:?}")).unwrap_or_default())]
    Decompress {
        /// The archive.
        archive: PathBuf,
        /// The entry, when an entry (not the whole archive) was compressed.
        entry: Option<String>,
        /// The format.
        format: &'static str,
        /// The decoder's error.
        source: std::io::Error,
    },
    /// A JSON entry does not parse as the format requires.
    #[error("{archive}: entry {entry:?} is not valid {what}: {source}")]
    Json {
        /// The archive.
        archive: PathBuf,
        /// The entry.
        entry: String,
        /// What it should be.
        what: &'static str,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The archive's contents break its format's rules (a missing file, an unsupported layout
    /// version, a layer count that does not match the config).
    #[error("{archive}: {problem}")]
    Format {
        /// The archive.
        archive: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A blob's content does not match the digest that names it.
    #[error("{archive}: entry {entry:?} does not match its digest: {source}")]
    Digest {
        /// The archive.
        archive: PathBuf,
        /// The entry.
        entry: String,
        /// The verification error.
        source: crate::digest::VerifyError,
    },
    /// No image in the archive matches the requested name, tag or index.
    #[error("{archive}: no image {wanted} in the archive; it has: {}", if .available.is_empty() { "no images".to_string() } else { .available.join(", ") })]
    ImageNotFound {
        /// The archive.
        archive: PathBuf,
        /// What was asked for (`"name"`, `name:tag`, `@N`).
        wanted: String,
        /// What the archive offers, for the message.
        available: Vec<String>,
    },
    /// No image was named and the archive holds more (or fewer) than one.
    #[error(
        "{archive}: the archive holds {count} images, so the reference must name one ({how}); it has: {}", .available.join(", ")
    )]
    AmbiguousImage {
        /// The archive.
        archive: PathBuf,
        /// How many images it holds.
        count: usize,
        /// The grammar that picks one.
        how: &'static str,
        /// What the archive offers.
        available: Vec<String>,
    },
    /// A transport reference (`PATH[:NAME]`, `PATH[:NAME:TAG|:@N]`) does not parse.
    #[error("invalid {transport} reference {input:?}: {problem}")]
    InvalidReference {
        /// `oci-archive` or `docker-archive`.
        transport: &'static str,
        /// The reference as given (without the transport prefix).
        input: String,
        /// What is wrong.
        problem: String,
    },
    /// A writer was asked to write an entry it cannot (a name already written, an unsafe name,
    /// a stream of the wrong size).
    #[error("{archive}: cannot write entry {entry:?}: {problem}")]
    Write {
        /// The temporary file being written.
        archive: PathBuf,
        /// The entry.
        entry: String,
        /// What is wrong.
        problem: String,
    },
    /// An earlier write failed in a way that could not be undone; the archive is abandoned and
    /// its temporary file removed when the writer is dropped.
    #[error(
        "{archive}: the archive writer failed earlier and cannot continue; start the copy again"
    )]
    WriterFailed {
        /// The temporary file.
        archive: PathBuf,
    },
}

impl ArchiveError {
    /// An [`ArchiveError::Io`] naming the archive and the action.
    pub(crate) fn io(
        archive: &std::path::Path,
        action: impl Into<String>,
        source: std::io::Error,
    ) -> ArchiveError {
        ArchiveError::Io {
            archive: archive.to_path_buf(),
            action: action.into(),
            source,
        }
    }

    /// An [`ArchiveError::Format`].
    pub(crate) fn format(archive: &std::path::Path, problem: impl Into<String>) -> ArchiveError {
        ArchiveError::Format {
            archive: archive.to_path_buf(),
            problem: problem.into(),
        }
    }
}

impl ArchiveError {
    /// What kind of failure this is: a file that cannot be read or written is `Io`; an archive
    /// that breaks its format (cut short, unsafe names, a digest that does not match) is
    /// `Corrupt`; an image the archive does not have is `NotFound`; a reference that does not
    /// parse, or one naming none of several images, is `Config`; a compression ferry does not
    /// read is `Unsupported`.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            ArchiveError::Io { .. } | ArchiveError::WriterFailed { .. } => ErrorKind::Io,
            ArchiveError::Truncated { .. }
            | ArchiveError::EntryPastEnd { .. }
            | ArchiveError::BadHeader { .. }
            | ArchiveError::UnsafeName { .. }
            | ArchiveError::DuplicateEntry { .. }
            | ArchiveError::NotFound { .. }
            | ArchiveError::NotRegular { .. }
            | ArchiveError::TooLarge { .. }
            | ArchiveError::Decompress { .. }
            | ArchiveError::Json { .. }
            | ArchiveError::Format { .. }
            | ArchiveError::Digest { .. } => ErrorKind::Corrupt,
            ArchiveError::ImageNotFound { .. } => ErrorKind::NotFound,
            ArchiveError::AmbiguousImage { .. } | ArchiveError::InvalidReference { .. } => {
                ErrorKind::Config
            }
            ArchiveError::UnsupportedCompression { .. } => ErrorKind::Unsupported,
            ArchiveError::Write { .. } => ErrorKind::Io,
        }
    }
}
