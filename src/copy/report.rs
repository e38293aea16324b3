//! The JSON report of a copy (`--report FILE`). Documented in docs/report.md; fields are only
//! ever added. The per-manifest parts are shared with the store's records ([`crate::record`]).

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
pub use crate::record::{BlobAction, ManifestReport};
use crate::verdict::{SignatureMode, Verdict};

/// The report format version ferry writes (2: everything numbered from 1).
pub const REPORT_VERSION: u32 = crate::record::RECORD_VERSION;

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
    /// Where the source's bytes were read, when that is not the source reference itself (a
    /// registries.conf mirror): `docker://mirror.example/ns/app:1 (mirror)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulled_from: Option<String>,
    /// Time spent.
    pub timings: Timings,
}

impl Report {
    /// The verdict on the image: for a single image its verdict, for a list the verdict of
    /// the instance copied (or, with every instance, the first).
    pub fn verdict(&self) -> Option<&Verdict> {
        self.manifests.iter().find_map(|m| m.verdict.as_ref())
    }

    /// The verdict of every image copied, with its platform (one for a single image).
    pub fn verdicts(&self) -> impl Iterator<Item = (Option<&str>, &Verdict)> {
        self.manifests
            .iter()
            .filter_map(|m| m.verdict.as_ref().map(|v| (m.platform.as_deref(), v)))
    }
}
