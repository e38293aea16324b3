//! Why a copy failed. Nothing was committed at the destination.

use super::ManifestFormat;
use crate::digest::Digest;
use crate::error::ErrorKind;
use crate::hint::{Hint, Hinted, Side};
use crate::manifest::ManifestError;
use crate::policy::{self, UnreadableSlot, Verdict};
use crate::transport::TransportError;

/// Why a copy failed. Nothing was committed at the destination.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// The source could not be read.
    #[error("reading {reference}: {source}")]
    Source {
        /// The source reference.
        reference: String,
        /// What failed.
        source: TransportError,
    },
    /// The destination could not be written.
    #[error("writing {reference}: {source}")]
    Destination {
        /// The destination reference.
        reference: String,
        /// What failed.
        source: TransportError,
    },
    /// A manifest could not be used.
    #[error("{what}: {source}")]
    Manifest {
        /// Which manifest.
        what: String,
        /// Why.
        source: ManifestError,
    },
    /// A manifest's bytes did not match the digest that names it.
    #[error(
        "{what}: the manifest's bytes hash to {actual}, not to {expected}; the source is corrupt"
    )]
    ManifestDigest {
        /// Which manifest.
        what: String,
        /// The digest that names it.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// No image in the list for the wanted platform.
    #[error("{reference} is a list of images with none for {platform}; it has {available}")]
    NoPlatform {
        /// The source.
        reference: String,
        /// The wanted platform.
        platform: String,
        /// The platforms it has.
        available: String,
    },
    /// The gate did not admit the image: the policy rejected it, or the mode refused slots it
    /// could not read. Every manifest's judgement is in it.
    #[error(transparent)]
    Rejected(#[from] policy::Rejected),
    /// The destination cannot keep the signatures that would be written.
    #[error(
        "{destination} cannot keep signatures: {why}.\nThe copy has {count} signature(s) of this kind to write (the source's that are kept, and those it makes)"
    )]
    NoSignatureStorage {
        /// The destination.
        destination: String,
        /// Why not.
        why: String,
        /// How many signatures would be written.
        count: usize,
    },
    /// The destination cannot keep attached artifacts (attestations, SBOMs) that copy-all
    /// would copy.
    #[error(
        "{destination} cannot keep what is attached to the image: {why}.\nThe source has {} attached artifact(s) to copy: {}", lost.len(), lost.join(", ")
    )]
    NoAttachedStorage {
        /// The destination.
        destination: String,
        /// Why not.
        why: String,
        /// What would be lost.
        lost: Vec<String>,
    },
    /// Signing failed.
    #[error("signing the copied image: {0}")]
    Signing(#[from] super::sign::SignError),
    /// A blob failed to copy.
    #[error("copying blob {digest} from {source_ref} to {destination}: {source}")]
    Blob {
        /// The blob.
        digest: Digest,
        /// The source reference.
        source_ref: String,
        /// The destination reference.
        destination: String,
        /// The side that failed.
        side: Side,
        /// What failed.
        source: Box<TransportError>,
    },
    /// The copy would have to change a manifest's format.
    #[error("{}", format_change_message(.reference, .digest, .media_type, *.wanted, *.signatures))]
    FormatChange {
        /// The source.
        reference: String,
        /// The manifest that would change.
        digest: Digest,
        /// Its media type.
        media_type: String,
        /// The format asked for.
        wanted: ManifestFormat,
        /// How many signatures the copy keeps (they would break).
        signatures: usize,
    },
    /// A manifest could not be converted to the format asked for.
    #[error("{reference}: the manifest {digest} cannot be converted to {}: {reason}", .wanted.name())]
    Conversion {
        /// The source.
        reference: String,
        /// The source manifest.
        digest: Digest,
        /// The format asked for.
        wanted: ManifestFormat,
        /// Why not.
        reason: String,
    },
    /// A layer could not be recompressed: its compressed stream is corrupt, its contents do not
    /// match the config's diff_id, it is in a compression ferry does not read, or the
    /// recompressed bytes could not be kept for the upload. The error names the layer.
    #[error("{reference}: {source}")]
    Compression {
        /// The source.
        reference: String,
        /// What failed, naming the layer.
        source: crate::compression::CompressionError,
    },
    /// Recompressing layers would change a manifest whose source signatures the copy keeps.
    #[error(
        "{reference}: recompressing the layers of {digest} to {format} gives it a new manifest digest, which would invalidate the {signatures} source signature(s) this copy keeps"
    )]
    Recompression {
        /// The source.
        reference: String,
        /// The source manifest that would change.
        digest: Digest,
        /// The compression asked for.
        format: String,
        /// How many signatures (and attached artifacts) the copy keeps of it.
        signatures: usize,
    },
    /// The destination reference names a digest the image does not have.
    #[error("{destination} names digest {wanted}, but the copied manifest has digest {actual}")]
    DestinationDigest {
        /// The destination.
        destination: String,
        /// The digest it names.
        wanted: Digest,
        /// The manifest's digest.
        actual: Digest,
    },
}

fn format_change_message(
    reference: &str,
    digest: &Digest,
    media_type: &str,
    wanted: ManifestFormat,
    signatures: usize,
) -> String {
    format!(
        "{reference}: converting the manifest {digest} to {} ({media_type}) would change its digest and invalidate the {signatures} source signature(s) this copy keeps",
        wanted.name()
    )
}

impl CopyError {
    /// What kind of failure this is: [`ErrorKind::Rejected`] when the policy or the signature
    /// mode refused the image, else the kind of what failed.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CopyError::Source { source, .. } | CopyError::Destination { source, .. } => {
                source.kind()
            }
            CopyError::Blob { source, .. } => source.kind(),
            CopyError::Manifest { .. } | CopyError::ManifestDigest { .. } => ErrorKind::Corrupt,
            CopyError::NoPlatform { .. } => ErrorKind::NotFound,
            CopyError::Rejected(_) => ErrorKind::Rejected,
            CopyError::NoSignatureStorage { .. }
            | CopyError::NoAttachedStorage { .. }
            | CopyError::FormatChange { .. }
            | CopyError::Recompression { .. }
            | CopyError::Conversion { .. } => ErrorKind::Unsupported,
            CopyError::Compression { source, .. } => source.kind(),
            CopyError::Signing(_) | CopyError::DestinationDigest { .. } => ErrorKind::Config,
        }
    }

    /// Whether the image was refused (by the policy or the signature mode) rather than the copy
    /// failing: the difference between "not trusted" and "could not check".
    pub fn is_rejection(&self) -> bool {
        self.kind() == ErrorKind::Rejected
    }

    /// The policy's verdict, when the copy failed on the signatures.
    pub fn verdict(&self) -> Option<&Verdict> {
        match self {
            CopyError::Rejected(r) => r.verdict(),
            _ => None,
        }
    }

    /// The slots that could not be read, when the copy failed on the signatures.
    pub fn unreadable(&self) -> Vec<UnreadableSlot> {
        match self {
            CopyError::Rejected(r) => r.unreadable(),
            _ => vec![],
        }
    }

    /// The side whose failure this is, when it is one side's.
    pub fn side(&self) -> Option<Side> {
        match self {
            CopyError::Source { .. } => Some(Side::Source),
            CopyError::Destination { .. }
            | CopyError::NoSignatureStorage { .. }
            | CopyError::NoAttachedStorage { .. } => Some(Side::Destination),
            CopyError::Blob { side, .. } => Some(*side),
            _ => None,
        }
    }
}

impl Hinted for CopyError {
    fn hint(&self) -> Option<Hint> {
        match self {
            CopyError::Source { source, .. } | CopyError::Destination { source, .. } => {
                source.hint()
            }
            CopyError::Blob { source, .. } => source.hint(),
            CopyError::Rejected(r) => r.hint(),
            CopyError::NoSignatureStorage { .. } => Some(Hint::RemoveSignatures),
            CopyError::NoAttachedStorage { .. } => Some(Hint::Referrers),
            CopyError::NoPlatform { .. } => Some(Hint::Platform),
            CopyError::Signing(e) => e.hint(),
            CopyError::FormatChange { .. } => Some(Hint::FormatConversion),
            CopyError::Recompression { .. } => Some(Hint::Recompression),
            _ => None,
        }
    }
}
