//! The result of a sync, image by image: what `--report FILE` writes (docs/sync.md documents
//! the schema; fields are only ever added).

use serde::Serialize;

use super::plan::{DestinationKind, SourceKind};
use super::shard::Shard;
use crate::digest::Digest;
use crate::verdict::{SignatureMode, Verdict};

/// The report format version.
pub const SYNC_REPORT_VERSION: u32 = 1;

/// What became of one image (or of a repository whose images could not be listed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageStatus {
    /// Copied through the gate.
    Copied,
    /// Already at the destination with its signatures; nothing was read beyond one manifest
    /// request per side.
    Skipped,
    /// Refused by the signature policy or the signature mode; nothing was written.
    Rejected,
    /// The copy (or the listing of the repository) failed.
    Failed,
    /// Not tried: the sync stopped at an earlier failure.
    NotAttempted,
    /// A dry run found that the copy would be admitted.
    WouldCopy,
}

impl ImageStatus {
    /// The name used in the report and in progress lines.
    pub fn name(self) -> &'static str {
        match self {
            ImageStatus::Copied => "copied",
            ImageStatus::Skipped => "skipped",
            ImageStatus::Rejected => "rejected",
            ImageStatus::Failed => "failed",
            ImageStatus::NotAttempted => "not-attempted",
            ImageStatus::WouldCopy => "would-copy",
        }
    }
}

/// One image's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ImageResult {
    /// The source reference (for a repository that could not be listed, the repository).
    pub source: String,
    /// The destination reference, when one was named.
    pub destination: Option<String>,
    /// The repository the image belongs to (the shard key).
    pub repository: String,
    /// What became of it.
    pub status: ImageStatus,
    /// Why: the error of a failure or rejection, what made a copy necessary, or why an image
    /// was skipped.
    pub reason: Option<String>,
    /// The digest of the manifest at the destination (copied or skipped).
    pub digest: Option<Digest>,
    /// The signature policy's verdict: for a copy or a rejection; `null` for an image skipped
    /// (the gate ran when it was copied) or that failed before the gate.
    pub verdict: Option<Verdict>,
    /// Warnings of the copy (unreadable signature slots in sufficient-subset mode).
    pub warnings: Vec<String>,
    /// Signatures written to the destination.
    pub signatures_written: usize,
    /// Blobs transferred.
    pub blobs_copied: usize,
    /// Blobs already at the destination or mounted there.
    pub blobs_reused: usize,
    /// Bytes transferred.
    pub bytes_copied: u64,
    /// Copy attempts (0 for images not copied).
    pub attempts: u32,
    /// Seconds from the image's start to its end.
    pub seconds: f64,
    /// Skipped as an immutable tag: the destination had it with its signatures, and the source
    /// was not read at all.
    pub immutable: bool,
}

impl ImageResult {
    /// A result with only the names and the status filled in.
    pub fn new(
        source: String,
        destination: Option<String>,
        repository: String,
        status: ImageStatus,
    ) -> ImageResult {
        ImageResult {
            source,
            destination,
            repository,
            status,
            reason: None,
            digest: None,
            verdict: None,
            warnings: Vec::new(),
            signatures_written: 0,
            blobs_copied: 0,
            blobs_reused: 0,
            bytes_copied: 0,
            attempts: 0,
            seconds: 0.0,
            immutable: false,
        }
    }
}

/// What became of a destination tag a prune found withdrawn at the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PruneStatus {
    /// Deleted, with what belonged to it (or only its name, when other names still need its
    /// manifest: `detail` says).
    Deleted,
    /// A dry run found that it would be deleted.
    WouldDelete,
    /// Left in place: the destination cannot remove it without removing what other names need
    /// (`detail` says why).
    Kept,
    /// The deletion failed (`detail` has the error); the tag is still there.
    Failed,
}

impl PruneStatus {
    /// The name used in the report and in progress lines.
    pub fn name(self) -> &'static str {
        match self {
            PruneStatus::Deleted => "deleted",
            PruneStatus::WouldDelete => "would-delete",
            PruneStatus::Kept => "kept",
            PruneStatus::Failed => "failed",
        }
    }
}

/// A destination tag the prune found withdrawn at the source.
#[derive(Debug, Clone, Serialize)]
pub struct PrunedTag {
    /// The destination image (`docker://mirror.example/m/app:v0.9`).
    pub destination: String,
    /// The source repository it was mirrored from.
    pub repository: String,
    /// What became of it.
    pub status: PruneStatus,
    /// Why it went: the source's listing, and that this tag was within the filters but not in
    /// it.
    pub reason: String,
    /// The manifest it named.
    pub digest: Option<Digest>,
    /// What went with it: signatures, sigstore attachments, referrers.
    pub removed: Vec<String>,
    /// What stayed and why, or the error of a failure.
    pub detail: Option<String>,
}

/// A repository the prune left alone, and why.
#[derive(Debug, Clone, Serialize)]
pub struct NotPruned {
    /// The source repository.
    pub repository: String,
    /// Its destination repository, when one is named.
    pub destination: Option<String>,
    /// Why nothing was deleted there.
    pub reason: String,
    /// Whether that is a failure (the destination could not be listed or checked), rather than
    /// the prune declining (a failed or incomplete source listing, images not copied, a
    /// destination shared with another repository).
    pub failed: bool,
}

/// Counts over every image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Entries in `images`.
    pub images: usize,
    /// Copied.
    pub copied: usize,
    /// Skipped (up to date).
    pub skipped: usize,
    /// Rejected by the policy or the mode.
    pub rejected: usize,
    /// Failed (copies and repository listings).
    pub failed: usize,
    /// Not tried after an earlier failure.
    pub not_attempted: usize,
    /// Would be copied (dry run).
    pub would_copy: usize,
    /// Bytes transferred.
    pub bytes_copied: u64,
    /// Repositories this shard took.
    pub repositories: usize,
    /// Repositories left to other shards.
    pub other_shards_repositories: usize,
    /// Skipped as immutable tags (counted in `skipped` too): the source was not read.
    pub skipped_immutable: usize,
    /// Destination tags deleted by the prune.
    pub deleted: usize,
    /// Destination tags a dry run would delete.
    pub would_delete: usize,
    /// Withdrawn destination tags left in place (the destination cannot remove them alone).
    pub prune_kept: usize,
    /// Withdrawn destination tags whose deletion failed, and repositories the prune could not
    /// check.
    pub prune_failed: usize,
    /// Repositories the prune left alone.
    pub not_pruned: usize,
}

/// The whole sync.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// Report format version.
    pub version: u32,
    /// The source as given.
    pub source: String,
    /// Its kind.
    pub source_kind: SourceKind,
    /// The destination as given.
    pub destination: String,
    /// Its kind.
    pub destination_kind: DestinationKind,
    /// The signature mode.
    pub mode: SignatureMode,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Whether destination tags the source withdrew were deleted (`--prune`).
    pub prune: bool,
    /// The shard, when the sync was split.
    pub shard: Option<Shard>,
    /// When it started (RFC 3339, UTC).
    pub started: String,
    /// How long it took, in seconds.
    pub seconds: f64,
    /// The counts.
    pub summary: Summary,
    /// Warnings of planning (ignored config keys, skipped tags).
    pub warnings: Vec<String>,
    /// Every image, in the work list's order (repositories that could not be listed first).
    pub images: Vec<ImageResult>,
    /// With `prune`: the destination tags withdrawn at the source, and what became of each.
    pub pruned: Vec<PrunedTag>,
    /// With `prune`: the repositories where nothing was deleted, and why.
    pub not_pruned: Vec<NotPruned>,
}

impl SyncReport {
    /// Recounts the summary from `images` (keeping the repository counts).
    pub fn tally(&mut self) {
        let mut s = Summary {
            images: self.images.len(),
            repositories: self.summary.repositories,
            other_shards_repositories: self.summary.other_shards_repositories,
            not_pruned: self.not_pruned.len(),
            ..Summary::default()
        };
        for p in &self.pruned {
            match p.status {
                PruneStatus::Deleted => s.deleted += 1,
                PruneStatus::WouldDelete => s.would_delete += 1,
                PruneStatus::Kept => s.prune_kept += 1,
                PruneStatus::Failed => s.prune_failed += 1,
            }
        }
        s.prune_failed += self.not_pruned.iter().filter(|n| n.failed).count();
        for i in &self.images {
            s.skipped_immutable += usize::from(i.immutable);
            match i.status {
                ImageStatus::Copied => s.copied += 1,
                ImageStatus::Skipped => s.skipped += 1,
                ImageStatus::Rejected => s.rejected += 1,
                ImageStatus::Failed => s.failed += 1,
                ImageStatus::NotAttempted => s.not_attempted += 1,
                ImageStatus::WouldCopy => s.would_copy += 1,
            }
            s.bytes_copied += i.bytes_copied;
        }
        self.summary = s;
    }

    /// One line for people: `60 images: 58 copied, 0 skipped, 1 rejected, 1 failed in 12.3 s`.
    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let mut parts = vec![
            format!("{} copied", s.copied),
            format!("{} skipped", s.skipped),
        ];
        if self.dry_run {
            parts = vec![
                format!("{} would be copied", s.would_copy),
                format!("{} up to date", s.skipped),
            ];
        }
        if s.skipped_immutable > 0 {
            parts.push(format!("{} of them immutable", s.skipped_immutable));
        }
        parts.push(format!("{} rejected", s.rejected));
        parts.push(format!("{} failed", s.failed));
        if s.not_attempted > 0 {
            parts.push(format!("{} not attempted", s.not_attempted));
        }
        if self.prune {
            parts.push(if self.dry_run {
                format!("{} would be deleted", s.would_delete)
            } else {
                format!("{} deleted", s.deleted)
            });
            if s.prune_kept > 0 {
                parts.push(format!("{} withdrawn but kept", s.prune_kept));
            }
            if s.prune_failed > 0 {
                parts.push(format!("{} deletion(s) failed", s.prune_failed));
            }
            if s.not_pruned > 0 {
                parts.push(format!("{} repositories not pruned", s.not_pruned));
            }
        }
        let shard = match &self.shard {
            Some(sh) => format!(" (shard {sh}, {} repositories)", s.repositories),
            None => String::new(),
        };
        format!(
            "{} {}{shard}: {} in {:.1} s, {} transferred",
            s.images,
            if s.images == 1 { "image" } else { "images" },
            parts.join(", "),
            self.seconds,
            human_bytes(s.bytes_copied)
        )
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS.get(u).unwrap_or(&"TiB"))
    }
}
