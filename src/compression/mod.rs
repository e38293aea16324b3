//! Layer compression: detect it, undo it, redo it in another format, and make the tar-split
//! that containers/storage needs, all as streams.
//!
//! skopeo's `--dest-compress-format gzip|zstd|zstd:chunked`, `--dest-compress-level`,
//! `--dest-compress`, `--dest-decompress` and `--force-compression` come down to one operation
//! per layer: [`transform`] (or [`transform_stream`] from async code) reads a layer whatever its
//! compression, checks its diff_id when one is expected, writes it in the [`OutputFormat`]
//! asked for, and returns a [`LayerReport`] with the new digest, size, diff_id and (for
//! zstd:chunked) the annotations the descriptor must carry.
//!
//! The parts are usable alone: [`open_layer`] and [`verified_layer_reader`] (a decompressing
//! reader for a layer, by magic, checking the diff_id); [`LayerCompressor`] (a compressing
//! writer); [`ChunkedWriter`] (zstd:chunked); [`tar_split`], [`TarSplitReader`] and
//! [`assemble`] (tar-split both ways).
//!
//! The formats follow containers/storage and vbatts/tar-split; docs/compression.md says how,
//! and where ferry differs.

mod cache;
mod chunked;
mod codec;
mod format;
mod gojson;
mod tar;
mod tarsplit;
mod transform;

pub use cache::{CachedLayer, ConversionCache};
pub use chunked::{
    ChunkedMetadata, ChunkedSummary, ChunkedWriter, FOOTER_MAGIC, FOOTER_SIZE,
    MANIFEST_CHECKSUM_KEY, MANIFEST_POSITION_KEY, TARSPLIT_POSITION_KEY, read_metadata,
};
pub use codec::{
    DiffIdReader, LayerCompressor, LayerDecoder, Sniffed, decompressing_reader, open_layer,
    sniff_reader, verified_layer_reader,
};
pub use format::{Compression, OutputFormat, OutputSpec};
pub use tar::{TarError, TarProblem};
pub use tarsplit::{
    DirectoryFiles, FileSource, TarSplitError, TarSplitReader, TarSplitSummary, assemble, tar_split,
};
pub use transform::{LayerReport, Transform, transform, transform_stream, transform_stream_into};

use crate::digest::Digest;

/// Why a layer could not be decompressed, verified or compressed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompressionError {
    /// Reading or decompressing the layer failed: the source failed, or the data is corrupt.
    #[error("layer {layer}: reading its {compression} data failed: {source}")]
    Read {
        /// The layer.
        layer: String,
        /// Its compression.
        compression: Compression,
        /// The error.
        source: std::io::Error,
    },
    /// Compressing or writing the output failed.
    #[error("layer {layer}: writing it as {format} failed: {source}")]
    Write {
        /// The layer.
        layer: String,
        /// The output format.
        format: OutputFormat,
        /// The error.
        source: std::io::Error,
    },
    /// The layer is compressed in a way ferry does not read.
    #[error(
        "layer {layer} is {compression}-compressed, which ferry cannot decompress (it reads gzip and zstd); copy it without recompressing"
    )]
    Unsupported {
        /// The layer.
        layer: String,
        /// Its compression.
        compression: Compression,
    },
    /// The uncompressed layer is not the one the image config lists.
    #[error(
        "layer {layer}: its uncompressed contents hash to {actual}, but the image config lists diff_id {expected}; the layer is corrupt or does not belong to this image"
    )]
    DiffIdMismatch {
        /// The layer.
        layer: String,
        /// The diff_id the config lists.
        expected: Digest,
        /// What the uncompressed contents hash to.
        actual: Digest,
    },
    /// The layer's tar cannot be read as zstd:chunked needs (malformed, or an entry it cannot
    /// describe).
    #[error("layer {layer}: {source}; write it as zstd or gzip instead")]
    Tar {
        /// The layer.
        layer: String,
        /// What is wrong, and where.
        source: TarError,
    },
    /// A compression format name that is not one ferry writes.
    #[error("unknown compression format {0:?}: use gzip, zstd or zstd:chunked")]
    UnknownFormat(String),
    /// A compression level out of the format's range.
    #[error("compression level {level} is out of range for {format}: use {min} to {max}")]
    Level {
        /// The format.
        format: OutputFormat,
        /// The level asked for.
        level: i32,
        /// The lowest level.
        min: i32,
        /// The highest level.
        max: i32,
    },
}

impl CompressionError {
    /// What kind of failure this is: a corrupt layer (its stream, or its diff_id), one ferry
    /// cannot read or describe, a level or format that is not one, or a failure to write.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            CompressionError::Read { .. } | CompressionError::DiffIdMismatch { .. } => {
                ErrorKind::Corrupt
            }
            CompressionError::Unsupported { .. } | CompressionError::Tar { .. } => {
                ErrorKind::Unsupported
            }
            CompressionError::Write { .. } => ErrorKind::Io,
            CompressionError::UnknownFormat(_) | CompressionError::Level { .. } => {
                ErrorKind::Config
            }
        }
    }
}
