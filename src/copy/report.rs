//! The JSON report of a copy (`--report FILE`) and the record the store keeps of each copy.
//! Both are documented in docs/report.md; fields are only ever added.

use serde::{Deserialize, Serialize};

use super::signatures::{SignatureMode, UnreadableSlot};
use crate::digest::Digest;
use crate::policy::Verdict;

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlobAction {
    /// Streamed from the source.
    Copied,
    /// Already at the destination, or mounted from the source repository: no bytes moved.
    Reused,
}

/// One blob of the copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobReport {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// Copied or reused.
    pub action: BlobAction,
}

/// A signature written to the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenSignature {
    /// Its position at the destination (`signature-N`).
    pub destination_index: usize,
    /// The source slot it came from; `None` for a signature ferry made (`--sign-by`).
    pub source_slot: Option<usize>,
    /// sha256 of its bytes, to match it with the file later.
    pub digest: Digest,
}

/// The signatures of one manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SignaturesReport {
    /// Slots the source reported.
    pub slots_read: usize,
    /// What the destination got.
    pub written: Vec<WrittenSignature>,
    /// Slots that could not be read (warnings in sufficient-subset).
    pub unreadable: Vec<UnreadableSlot>,
}

/// One manifest written: the image, or each instance and the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestReport {
    /// The manifest digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// The platform, for an instance of a list.
    pub platform: Option<String>,
    /// Whether this manifest is a list.
    pub is_list: bool,
    /// The policy's verdict on it (`None` for a list, which is not checked itself).
    pub verdict: Option<Verdict>,
    /// Its signatures.
    pub signatures: SignaturesReport,
    /// Its blobs (empty for a list).
    pub blobs: Vec<BlobReport>,
}

/// Time spent, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Timings {
    /// From start to commit.
    pub total: f64,
    /// Reading manifests and signatures and evaluating the policy.
    pub gate: f64,
    /// Copying blobs.
    pub blobs: f64,
}

/// The report of one copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Report format version.
    pub version: u32,
    /// The source reference.
    pub source: String,
    /// The destination reference.
    pub destination: String,
    /// The signature mode.
    pub mode: SignatureMode,
    /// The digest of the top-level manifest written to the destination.
    pub manifest_digest: Digest,
    /// Every manifest written, instances before their list, the top level last.
    pub manifests: Vec<ManifestReport>,
    /// Warnings, also printed to stderr.
    pub warnings: Vec<String>,
    /// Bytes streamed from the source.
    pub bytes_copied: u64,
    /// Time spent.
    pub timings: Timings,
}

/// The record the store keeps for each copy into it, under records/sha256-HEX/TIME.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Record format version.
    pub version: u32,
    /// When the copy was made (RFC 3339, UTC).
    pub time: String,
    /// The source reference.
    pub source: String,
    /// The destination reference.
    pub destination: String,
    /// The signature mode.
    pub mode: SignatureMode,
    /// The policy file the verdict came from.
    pub policy: Option<String>,
    /// The sha256 of that file's bytes.
    pub policy_digest: Option<String>,
    /// The manifest this record is about.
    pub manifest: ManifestReport,
    /// Warnings of the copy.
    pub warnings: Vec<String>,
}
