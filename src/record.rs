//! The record the store keeps of every copy into it, and the per-manifest parts that the copy
//! report shares with it; and the record of every unpack of a stored image into a runtime
//! bundle ([`UnpackRecord`]). Plain data, below the transports (which keep records) and the copy
//! (which makes them). The JSON is documented in docs/report.md; fields are only ever added,
//! and `version` says which exist.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::verdict::{SignatureMode, SlotOutcome, UnreadableSlot, Verdict};

/// The format version ferry writes. Version 1 numbered requirements from 0; version 2 numbers
/// everything from 1. Version 1 records are converted when read ([`Record::from_json`]).
pub const RECORD_VERSION: u32 = 2;

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
    /// Where the bytes of a copied blob came from, when that is not the source reference
    /// itself (a registries.conf mirror, or a blob a format conversion made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The source layer this blob was recompressed from (`--dest-compress-format`), when it
    /// is a recompressed layer: the source's digest the report names beside the new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub converted_from: Option<Digest>,
}

/// A signature written to the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenSignature {
    /// Its position among what this copy wrote (`signature-N` for dir: and lookaside). The
    /// store keeps every signature it has received for a manifest, so there the file is found by
    /// `digest`.
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
    /// When the copy converted the manifest (`--format`): the source manifest's digest, which
    /// the verdict is about; `digest` is the converted manifest that was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub converted_from: Option<Digest>,
    /// Artifacts attached to it that the destination got as themselves (referrers, cosign's
    /// `.att`/`.sbom` tags).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached: Vec<AttachedReport>,
}

/// One attached artifact written with a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedReport {
    /// Its manifest's digest.
    pub digest: Digest,
    /// `signature`, `attestation (PREDICATE)`, `SBOM`, `artifact`.
    pub kind: String,
    /// Its artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// `referrer`, or the cosign tag suffix (`att`, `sbom`).
    pub via: String,
    /// The signature slots it carries (for a signature).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<usize>,
}

/// The record the store keeps for each copy into it, under `records/sha256-HEX/TIME.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Record format version ([`RECORD_VERSION`] when written by this ferry).
    pub version: u32,
    /// When the copy was made (RFC 3339, UTC).
    pub time: String,
    /// The source reference.
    pub source: String,
    /// The destination reference: the name this record was made for.
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

/// Why stored record bytes cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("not a ferry record: {0}")]
#[non_exhaustive]
pub struct RecordError(#[from] serde_json::Error);

impl Record {
    /// Parses a stored record, converting older versions to the current numbering.
    pub fn from_json(bytes: &[u8]) -> Result<Record, RecordError> {
        let mut r: Record = serde_json::from_slice(bytes)?;
        if r.version < 2 {
            // Version 1 numbered requirements from 0. Saturating: a record is outside input, and
            // an index at the top of the range stays there rather than wrapping to 0 (or
            // panicking in a debug build).
            if let Some(v) = &mut r.manifest.verdict {
                for req in &mut v.requirements {
                    req.index = req.index.saturating_add(1);
                }
                for s in &mut v.slots {
                    if let SlotOutcome::Accepted { requirement, .. } = &mut s.outcome {
                        *requirement = requirement.saturating_add(1);
                    }
                }
            }
            r.version = RECORD_VERSION;
        }
        Ok(r)
    }

    /// The record as stored.
    pub fn to_json(&self) -> Vec<u8> {
        // A Record holds only strings, numbers and maps with string keys: serialising cannot
        // fail, and an empty object would only ever be written if serde_json changed that.
        serde_json::to_vec_pretty(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

/// The record the store keeps of an unpack of one of its images into a runtime bundle (`ferry
/// unpack store:NAME BUNDLE`), under `records/sha256-HEX/unpacked/TIME.json` beside the copy
/// records of the same manifest: that the image was unpacked, where, and under which verdict.
/// Its own directory keeps it apart from the copy records, which say what the store holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UnpackRecord {
    /// Record format version ([`RECORD_VERSION`] when written by this ferry).
    pub version: u32,
    /// When the bundle was complete (RFC 3339, UTC).
    pub time: String,
    /// The stored image unpacked (`store:NAME`).
    pub source: String,
    /// The absolute path of the bundle (or of the root filesystem, with `rootfs_only`).
    pub bundle: String,
    /// Only the root filesystem was written (no `config.json`).
    pub rootfs_only: bool,
    /// Unpacked rootless (files owned by the caller, devices skipped).
    pub rootless: bool,
    /// The signature mode the gate decided in.
    pub mode: SignatureMode,
    /// The policy file the verdict came from.
    pub policy: Option<String>,
    /// The sha256 of that file's bytes.
    pub policy_digest: Option<String>,
    /// The image manifest unpacked (for a list, the instance chosen).
    pub manifest_digest: Digest,
    /// Its platform, when it was chosen from a list.
    pub platform: Option<String>,
    /// The gate's verdict on it at the time of the unpack.
    pub verdict: Option<Verdict>,
    /// The layers applied, bottom first.
    pub layers: Vec<Digest>,
    /// Warnings of the unpack (the gate's and the applier's).
    pub warnings: Vec<String>,
}

impl UnpackRecord {
    /// Parses a stored unpack record.
    pub fn from_json(bytes: &[u8]) -> Result<UnpackRecord, RecordError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// The record as stored.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, numbers and maps with string keys only: serialising cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_records_are_renumbered_from_one() {
        let v1 = br#"{"version":1,"time":"2026-01-01T00:00:00Z","source":"dir:/x","destination":"store:docker.io/a/b:1",
          "mode":"copy-all","policy":"/p","policy_digest":"sha256:00","warnings":[],
          "manifest":{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","media_type":"m","platform":null,"is_list":false,
            "signatures":{"slots_read":1,"written":[],"unreadable":[]},"blobs":[],
            "verdict":{"accepted":true,"policy":"/p","policy_digest":"sha256:00","scope":"default",
              "requirements":[{"index":0,"kind":"signedBy","description":"d","satisfied":true,"reason":"r"}],
              "slots":[{"index":1,"location":"l","outcome":{"status":"accepted","requirement":0,"signer":{},"claims":{}}}]}}}"#;
        let r = Record::from_json(v1).unwrap();
        let v = r.manifest.verdict.unwrap();
        assert_eq!(v.requirements[0].index, 1);
        assert!(matches!(
            v.slots[0].outcome,
            SlotOutcome::Accepted { requirement: 1, .. }
        ));
        assert_eq!(r.version, RECORD_VERSION);
        assert!(Record::from_json(b"{}").is_err());
    }

    // Found while fuzzing (fuzz/artifacts/record/): renumbering a version 1 record overflowed.
    #[test]
    fn version_1_records_with_the_largest_indexes_do_not_overflow() {
        let v1 = br#"{"version":1,"time":"t","source":"s","destination":"d","mode":"copy-all","policy":null,"policy_digest":null,"warnings":[],
          "manifest":{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","media_type":"m","platform":null,"is_list":false,
            "signatures":{"slots_read":0,"written":[],"unreadable":[]},"blobs":[],
            "verdict":{"accepted":true,"policy":"p","policy_digest":"d","scope":"default",
              "requirements":[{"index":18446744073709551615,"kind":"k","description":"d","satisfied":true,"reason":"r"}],
              "slots":[{"index":1,"location":"l","outcome":{"status":"accepted","requirement":18446744073709551615,"signer":{},"claims":{}}}]}}}"#;
        let r = Record::from_json(v1).unwrap();
        let v = r.manifest.verdict.unwrap();
        assert_eq!(v.requirements[0].index, usize::MAX);
        assert!(matches!(
            v.slots[0].outcome,
            SlotOutcome::Accepted {
                requirement: usize::MAX,
                ..
            }
        ));
    }
}
