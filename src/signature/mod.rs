//! Signatures: what a transport read for each signature slot, format sniffing, and the formats
//! ferry understands. Pure: no IO here; transports hand in bytes.

pub mod decode;
pub mod sigstore;
pub mod simple;
pub mod sniff;

use serde::{Deserialize, Serialize};

/// The largest signature ferry reads (containers/image's limit); a larger one is refused
/// without being held in memory.
pub const MAX_SIGNATURE_SIZE: usize = 4 * 1024 * 1024;

/// The most signature slots read for one image before assuming the server is broken.
pub const MAX_SLOTS: usize = 128;

/// One signature slot of an image as the source reported it: where it was read from and either
/// its bytes or the reason it could not be read. A failed slot never hides the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureSlot {
    /// 1-based position (`signature-1` is index 1).
    pub index: usize,
    /// Where it was read from: a URL, a file path, `registry extension`, for messages.
    pub location: String,
    /// The bytes, or why they could not be read.
    pub content: Result<Vec<u8>, SlotReadError>,
}

impl SignatureSlot {
    /// `signature-N`, as people and containers/image call the slot.
    pub fn name(&self) -> String {
        format!("signature-{}", self.index)
    }
}

/// The kind of a failed slot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlotReadErrorKind {
    /// An HTTP status other than 200 and 404.
    HttpStatus,
    /// No answer in time.
    Timeout,
    /// The connection failed or broke, or a file could not be read.
    Io,
    /// Larger than [`MAX_SIGNATURE_SIZE`].
    TooLarge,
    /// The body ended before its announced length.
    Truncated,
}

/// Why one slot could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct SlotReadError {
    /// The kind.
    pub kind: SlotReadErrorKind,
    /// What happened, for people: status and reason, IO error text.
    pub message: String,
}

impl SlotReadError {
    /// A failed read of this kind, said as `message`.
    pub fn new(kind: SlotReadErrorKind, message: impl Into<String>) -> SlotReadError {
        SlotReadError {
            kind,
            message: message.into(),
        }
    }
}
