//! The copy pipeline: plan (manifests), gate (signatures and policy), then blobs, manifests,
//! signatures and records, then one commit. Each step is its own module; [`copy`] only orders
//! them.
//!
//! The gate runs before the destination is even opened, and every write needs the gate's
//! [`Admission`](crate::policy::Admission): a rejected image leaves the destination exactly as
//! it was. [`check`] runs the same plan and gate without writing, for `ferry policy check`.

pub mod blobs;
pub mod convert;
pub mod error;
pub mod plan;
pub mod report;
pub mod sign;
pub mod signatures;

use std::sync::Arc;
use std::time::Instant;

pub use error::CopyError;
pub use report::{
    BlobAction, BlobReport, ManifestReport, Record, Report, SignaturesReport, Timings,
    WrittenSignature,
};
pub use sign::{SignError, SignKey, SignOptions};

use crate::manifest::PlatformSpec;
pub use crate::policy::SignatureMode;
use crate::policy::{self, Admitted, GateInput, Policy, Rejected};
use crate::record::RECORD_VERSION;
use crate::reference::ImageReference;
use crate::session::Session;
use crate::signature::sniff::Format;
use crate::transport::{
    ImageSource, SignatureSet, SignatureSupport, TransportError, TransportOptions,
};
use plan::Planned;

/// Which images of a list to copy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ImageSelection {
    /// The image for the platform ferry runs on (as skopeo does by default).
    #[default]
    System,
    /// The image for this platform.
    Platform(PlatformSpec),
    /// The list and every image in it.
    All,
}

/// A manifest format a copy may be asked to produce (skopeo's `--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    /// OCI image manifest (and OCI index for lists).
    Oci,
    /// Docker schema 2 (and Docker manifest list for lists).
    V2s2,
}

impl ManifestFormat {
    /// Whether a manifest of `kind` is already in this format.
    pub fn accepts(self, kind: crate::manifest::ManifestKind) -> bool {
        use crate::manifest::ManifestKind::*;
        match self {
            ManifestFormat::Oci => matches!(kind, OciManifest | OciIndex),
            ManifestFormat::V2s2 => matches!(kind, DockerV2S2 | DockerList),
        }
    }

    /// The name skopeo gives it: `oci`, `v2s2`.
    pub fn name(self) -> &'static str {
        match self {
            ManifestFormat::Oci => "oci",
            ManifestFormat::V2s2 => "v2s2",
        }
    }
}

/// A `--format` value ferry does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown manifest format {0:?}: use oci or v2s2 (Docker schema 1, v2s1, is not supported)")]
pub struct UnknownFormat(pub String);

impl std::str::FromStr for ManifestFormat {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "oci" => Ok(ManifestFormat::Oci),
            "v2s2" => Ok(ManifestFormat::V2s2),
            _ => Err(UnknownFormat(s.to_string())),
        }
    }
}

/// Progress of a copy, reported to whoever embeds ferry (the CLI draws progress bars from it).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ProgressEvent {
    /// A phase began: `reading manifest`, `checking signatures`, `copying blobs`, `writing manifest`.
    Phase(String),
    /// A blob transfer starts.
    BlobStarted {
        /// Its digest.
        digest: crate::digest::Digest,
        /// Its size.
        size: u64,
    },
    /// Bytes of a blob arrived (a delta).
    BlobBytes {
        /// Its digest.
        digest: crate::digest::Digest,
        /// Bytes since the last event.
        bytes: u64,
    },
    /// A blob is done.
    BlobDone {
        /// Its digest.
        digest: crate::digest::Digest,
        /// Copied or reused.
        action: BlobAction,
    },
    /// Signatures were written for a manifest.
    SignaturesWritten {
        /// The manifest.
        digest: crate::digest::Digest,
        /// How many.
        count: usize,
    },
    /// Something the user should know that does not fail the copy.
    Warning(String),
}

/// Receives [`ProgressEvent`]s. Called from any thread; keep it cheap.
pub trait Progress: Send + Sync {
    /// One event.
    fn event(&self, event: ProgressEvent);
}

/// Everything a copy needs besides the session and the two references.
#[derive(Clone)]
#[non_exhaustive]
pub struct CopyOptions {
    /// The signature mode.
    pub mode: SignatureMode,
    /// Which images of a list.
    pub selection: ImageSelection,
    /// The signature policy.
    pub policy: Arc<Policy>,
    /// Settings for the source side.
    pub source: TransportOptions,
    /// Settings for the destination side.
    pub destination: TransportOptions,
    /// How many blobs are copied at once.
    pub parallel_blobs: usize,
    /// Sign the copied image.
    pub sign: Option<SignOptions>,
    /// Where progress goes.
    pub progress: Option<Arc<dyn Progress>>,
    /// The manifest format the destination must get; `None` keeps the source's.
    pub format: Option<ManifestFormat>,
    /// A cap on blob transfers shared with other copies (a sync's global cap): a transfer
    /// holds one permit from the start of its stream to its end. `None`: only
    /// `parallel_blobs` bounds this copy.
    pub blob_slots: Option<Arc<tokio::sync::Semaphore>>,
}

impl CopyOptions {
    /// Options with the defaults: copy-all, the system image, 6 blobs at once.
    pub fn new(policy: Arc<Policy>) -> CopyOptions {
        CopyOptions {
            mode: SignatureMode::CopyAll,
            selection: ImageSelection::System,
            policy,
            source: TransportOptions::default(),
            destination: TransportOptions::default(),
            parallel_blobs: 6,
            sign: None,
            progress: None,
            format: None,
            blob_slots: None,
        }
    }

    fn emit(&self, e: ProgressEvent) {
        if let Some(p) = &self.progress {
            p.event(e);
        }
    }
}

/// What [`check`] found: the gate's answer, with every manifest's judgement either way.
#[derive(Debug)]
pub enum Checked {
    /// A copy in this mode would be admitted.
    Admitted(Admitted),
    /// A copy in this mode would be refused.
    Rejected(Rejected),
}

impl Checked {
    /// Every manifest's judgement, in plan order (the top level last).
    pub fn judgements(&self) -> &[policy::Judgement] {
        match self {
            Checked::Admitted(a) => a.judgements(),
            Checked::Rejected(r) => &r.judgements,
        }
    }
    /// Whether the copy would be admitted.
    pub fn admitted(&self) -> bool {
        matches!(self, Checked::Admitted(_))
    }
}

/// The source opened, its plan read, and every planned manifest's signatures read and judged.
struct Gated {
    source: Box<dyn ImageSource>,
    plan: Vec<Planned>,
    slots: Vec<SignatureSet>,
    outcome: Result<Admitted, Rejected>,
}

/// Opens the source, plans, reads every planned manifest's signatures and runs the gate. The
/// shared first half of [`copy`] and [`check`], so both always agree.
async fn open_and_gate(
    session: &Session,
    src: &ImageReference,
    options: &CopyOptions,
) -> Result<Gated, CopyError> {
    let source_err = |source| CopyError::Source {
        reference: src.to_string(),
        source,
    };
    options.emit(ProgressEvent::Phase("reading manifest".into()));
    let source = session
        .open_source(src, &options.source)
        .await
        .map_err(source_err)?;
    let plan = plan::plan(src, source.as_ref(), &options.selection).await?;
    options.emit(ProgressEvent::Phase("checking signatures".into()));
    let mut slots = Vec::with_capacity(plan.len());
    for p in &plan {
        slots.push(
            source
                .signatures(&p.digest, p.src_instance.as_ref())
                .await
                .map_err(source_err)?,
        );
    }
    let inputs: Vec<GateInput<'_>> = plan
        .iter()
        .zip(&slots)
        .map(|(p, s)| GateInput {
            digest: &p.digest,
            manifest: &p.raw.bytes,
            slots: &s.slots,
            role: p.role,
            platform: p.platform.as_deref(),
            searched: &s.searched,
            bundles: s.bundles,
            attached_unreadable: &s.attached_errors,
        })
        .collect();
    let outcome = policy::gate(&options.policy, src, options.mode, &inputs);
    Ok(Gated {
        source,
        plan,
        slots,
        outcome,
    })
}

/// What a copy of `src` with `options` would decide, without opening a destination or writing
/// anything: the plan and the gate of [`copy`], per instance for lists, in `options.mode`.
pub async fn check(
    session: &Session,
    src: &ImageReference,
    options: &CopyOptions,
) -> Result<Checked, CopyError> {
    Ok(match open_and_gate(session, src, options).await?.outcome {
        Ok(a) => Checked::Admitted(a),
        Err(r) => Checked::Rejected(r),
    })
}

/// Copies `src` to `dst` within `session`: reads the manifest and the signatures, runs the
/// gate, and only if it admits the image copies the blobs, manifests and the signatures the
/// mode keeps, then commits.
pub async fn copy(
    session: &Session,
    src: &ImageReference,
    dst: &ImageReference,
    options: &CopyOptions,
) -> Result<Report, CopyError> {
    let started = Instant::now();
    let dest_err = |source: TransportError| CopyError::Destination {
        reference: dst.to_string(),
        source,
    };
    let gated = open_and_gate(session, src, options).await?;
    let admitted = gated.outcome?;
    let admission = admitted.admission();
    let judgements = admitted.judgements();
    let mut warnings = Vec::new();
    for j in judgements {
        let what = match &j.platform {
            Some(pl) => format!("{src} ({pl} image {})", j.digest),
            None => src.to_string(),
        };
        for w in &j.warnings {
            let msg =
                format!("{what}: {w}: could not be read; copied without it (sufficient-subset)");
            options.emit(ProgressEvent::Warning(msg.clone()));
            warnings.push(msg);
        }
    }
    for j in judgements {
        for e in &j.attached_warnings {
            let msg = format!("{src}: {e}: could not be read; copied without it");
            options.emit(ProgressEvent::Warning(msg.clone()));
            warnings.push(msg);
        }
    }
    let gate_seconds = started.elapsed().as_secs_f64();

    // A format change makes new manifests (and maybe a config blob); the gate has judged the
    // source's, and no source signature may be kept with a converted one.
    let conversion =
        convert::convert(src, gated.source.as_ref(), &gated.plan, options.format).await?;
    let (plan, converted_from): (&[Planned], Vec<Option<crate::digest::Digest>>) = match &conversion
    {
        Some(c) => (&c.plan, c.from.clone()),
        None => (&gated.plan, vec![None; gated.plan.len()]),
    };
    let to_write = signatures::choose(plan, &gated.slots, judgements, options.sign.as_ref(), dst)?;
    if let (Some(c), Some(want)) = (&conversion, options.format) {
        convert::check_signatures(src, c, &to_write, want)?;
    }
    check_destination_digest(dst, plan)?;
    let no_blobs_made = std::collections::HashMap::new();
    let source = convert::WithMadeBlobs {
        inner: gated.source.as_ref(),
        made: conversion
            .as_ref()
            .map(|c| &c.made)
            .unwrap_or(&no_blobs_made),
    };
    let pulled_from = gated.source.pulled_from();

    let destination = session
        .open_destination(dst, &options.destination)
        .await
        .map_err(dest_err)?;
    // Attached artifacts: where the destination keeps them as themselves, signatures among
    // them go that way; elsewhere signatures go as signature blobs, and anything else attached
    // would be lost, which copy-all refuses as it refuses to drop a signature.
    let native = destination.attached_support();
    let lost: Vec<String> = to_write
        .iter()
        .flat_map(|w| w.lost_without_native())
        .map(|a| format!("{} {}", a.kind, a.digest))
        .collect();
    if let SignatureSupport::No(why) = &native
        && !lost.is_empty()
    {
        if options.mode == SignatureMode::CopyAll {
            return Err(CopyError::NoAttachedStorage {
                destination: dst.to_string(),
                why: why.clone(),
                lost,
            });
        }
        for l in &lost {
            let msg = format!("{dst}: {why}; {l} is not copied");
            options.emit(ProgressEvent::Warning(msg.clone()));
            warnings.push(msg);
        }
    }
    let native = native == SignatureSupport::Yes;
    let routed: Vec<(Vec<Vec<u8>>, Vec<&crate::transport::referrers::Attached>)> =
        to_write.iter().map(|w| w.routed(native)).collect();
    // Each kind of signature the copy writes must have a place at the destination. A sigstore
    // bundle goes where attached artifacts go when the destination keeps them.
    for kind in [Format::SimpleSigning, Format::SigstoreJson] {
        let count = routed
            .iter()
            .flat_map(|(sigs, _)| sigs)
            .filter(|s| match crate::signature::sniff::sniff(s) {
                Ok((Format::SigstoreJson, json)) if native => {
                    kind == Format::SigstoreJson
                        && !crate::signature::sigstore::SigstoreSignature::from_json(json)
                            .is_ok_and(|g| {
                                crate::signature::sigstore::bundle::is_bundle_media_type(
                                    &g.mime_type,
                                )
                            })
                }
                Ok((f, _)) => f == kind,
                Err(_) => false,
            })
            .count();
        if count > 0
            && let SignatureSupport::No(why) = destination.signature_support(kind)
        {
            return Err(CopyError::NoSignatureStorage {
                destination: dst.to_string(),
                why,
                count,
            });
        }
    }

    options.emit(ProgressEvent::Phase("copying blobs".into()));
    let blobs_started = Instant::now();
    let mut outcomes = blobs::copy_all(
        admission,
        src,
        dst,
        &source,
        destination.as_ref(),
        plan,
        options,
    )
    .await?;
    // Collected (owned) first: an iterator of closures over the borrowed artifacts would make
    // the copy's future fail to be Send for every lifetime (a sync spawns copies).
    let mut attached_blobs: Vec<crate::manifest::Descriptor> = Vec::new();
    for (_, artifacts) in &routed {
        for a in artifacts {
            attached_blobs.extend(a.blobs.iter().cloned());
        }
    }
    outcomes.extend(
        blobs::copy_these(
            admission,
            src,
            dst,
            gated.source.as_ref(),
            destination.as_ref(),
            attached_blobs.iter(),
            options,
        )
        .await?,
    );
    let blobs_seconds = blobs_started.elapsed().as_secs_f64();

    options.emit(ProgressEvent::Phase("writing manifest".into()));
    for p in plan {
        destination
            .put_manifest(admission, &p.raw, p.dest_instance.as_ref())
            .await
            .map_err(dest_err)?;
    }
    for (p, (sigs, attached)) in plan.iter().zip(&routed) {
        if !sigs.is_empty() {
            destination
                .put_signatures(admission, &p.digest, p.dest_instance.as_ref(), sigs)
                .await
                .map_err(dest_err)?;
        }
        if !attached.is_empty() {
            destination
                .put_attached(admission, &p.digest, p.dest_instance.as_ref(), attached)
                .await
                .map_err(dest_err)?;
        }
        let count = sigs.len()
            + attached
                .iter()
                .filter(|a| a.kind == crate::transport::referrers::AttachedKind::Signature)
                .map(|a| a.slots.len())
                .sum::<usize>();
        if count > 0 {
            options.emit(ProgressEvent::SignaturesWritten {
                digest: p.digest.clone(),
                count,
            });
        }
    }

    let made = conversion.as_ref().map(|c| &c.made);
    let manifests: Vec<ManifestReport> = plan
        .iter()
        .zip(&gated.slots)
        .zip(judgements)
        .zip(to_write.iter().zip(&routed))
        .zip(converted_from)
        .map(
            |((((p, slots), j), (w, (_, attached))), converted_from)| ManifestReport {
                digest: p.digest.clone(),
                media_type: p.media_type.clone(),
                platform: p.platform.clone(),
                is_list: j.is_list,
                verdict: j.verdict.clone(),
                signatures: SignaturesReport {
                    slots_read: slots.slots.len(),
                    written: w.written.clone(),
                    unreadable: j.warnings.clone(),
                },
                attached: attached
                    .iter()
                    .map(|a| report::AttachedReport {
                        digest: a.digest.clone(),
                        kind: a.kind.to_string(),
                        artifact_type: a.artifact_type.clone(),
                        via: match &a.via {
                            crate::transport::referrers::Via::Referrer => "referrer".to_string(),
                            crate::transport::referrers::Via::Tag(t) => t.clone(),
                        },
                        slots: a.slots.clone(),
                    })
                    .collect(),
                blobs: p
                    .blobs
                    .iter()
                    .map(|d| {
                        let action = outcomes
                            .iter()
                            .find(|o| o.0 == d.digest)
                            .map(|o| o.1)
                            .unwrap_or(BlobAction::Copied);
                        let from = match action {
                            BlobAction::Reused => None,
                            BlobAction::Copied
                                if made.is_some_and(|m| m.contains_key(&d.digest)) =>
                            {
                                Some(format!("made by the conversion to {}", p.media_type))
                            }
                            BlobAction::Copied => pulled_from.clone(),
                        };
                        BlobReport {
                            digest: d.digest.clone(),
                            size: d.size,
                            media_type: d.media_type.clone(),
                            action,
                            from,
                        }
                    })
                    .collect(),
                converted_from,
            },
        )
        .collect();

    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for m in &manifests {
        let record = Record {
            version: RECORD_VERSION,
            time: now.clone(),
            source: src.to_string(),
            destination: dst.to_string(),
            mode: options.mode,
            policy: Some(options.policy.origin().to_string()),
            policy_digest: Some(options.policy.digest().to_string()),
            manifest: m.clone(),
            warnings: warnings.clone(),
        };
        destination
            .put_record(admission, &m.digest, &record)
            .await
            .map_err(dest_err)?;
    }

    destination.commit(admission).await.map_err(dest_err)?;

    let manifest_digest = manifests
        .last()
        .map(|m| m.digest.clone())
        .unwrap_or_else(|| crate::digest::Digest::sha256_of(b""));
    Ok(Report {
        version: report::REPORT_VERSION,
        source: src.to_string(),
        destination: dst.to_string(),
        mode: options.mode,
        manifest_digest,
        manifests,
        warnings,
        bytes_copied: outcomes.iter().map(|o| o.2).sum(),
        pulled_from,
        timings: Timings {
            total: started.elapsed().as_secs_f64(),
            gate: gate_seconds,
            blobs: blobs_seconds,
        },
    })
}

/// A destination by digest must name the digest the copy writes.
fn check_destination_digest(dst: &ImageReference, plan: &[Planned]) -> Result<(), CopyError> {
    if let Some(r) = dst.docker_reference()
        && let Some(wanted) = r.digest()
        && let Some(top) = plan.last()
        && top.digest != *wanted
    {
        return Err(CopyError::DestinationDigest {
            destination: dst.to_string(),
            wanted: wanted.clone(),
            actual: top.digest.clone(),
        });
    }
    Ok(())
}
