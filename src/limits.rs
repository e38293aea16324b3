//! How much ferry reads of anything that comes from outside, as containers/image bounds it
//! (`internal/iolimits`): nothing whose size someone else chooses is read whole without a cap,
//! and every refusal names the file or URL and the cap.

use std::io::Read;
use std::path::Path;

/// Manifests (containers/image `MaxManifestBodySize`).
pub const MAX_MANIFEST: u64 = 4 * 1024 * 1024;
/// One signature (`MaxSignatureBodySize`).
pub const MAX_SIGNATURE: u64 = 4 * 1024 * 1024;
/// An image's config blob (`MaxConfigBodySize`): refused before it is downloaded.
pub const MAX_CONFIG_BLOB: u64 = 4 * 1024 * 1024;
/// A bearer token answer (`MaxAuthTokenBodySize`).
pub const MAX_TOKEN_RESPONSE: u64 = 1024 * 1024;
/// An error answer's body (`MaxErrorBodySize`).
pub const MAX_ERROR_BODY: u64 = 1024 * 1024;
/// A configuration file: policy.json, a registries.d file, auth.json, a key file, a record.
pub const MAX_CONFIG_FILE: u64 = 4 * 1024 * 1024;

/// A file larger than its cap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {size} bytes is more than the {limit}-byte limit for {what}; refusing to read it")]
#[non_exhaustive]
pub struct TooLarge {
    /// The file.
    pub path: String,
    /// Its size (at least; the file is not read to its end).
    pub size: u64,
    /// The cap.
    pub limit: u64,
    /// What kind of file.
    pub what: &'static str,
}

/// Why a capped file read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is over its cap.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
}

/// Reads a whole file of at most `limit` bytes; a larger one is refused without being read
/// past the cap. `what` names the kind of file for the message.
pub fn read_file(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, ReadError> {
    let io = |source| ReadError::Io {
        path: path.display().to_string(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    f.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        let size = std::fs::metadata(path)
            .map(|m| m.len())
            .unwrap_or(bytes.len() as u64);
        return Err(TooLarge {
            path: path.display().to_string(),
            size,
            limit,
            what,
        }
        .into());
    }
    Ok(bytes)
}
