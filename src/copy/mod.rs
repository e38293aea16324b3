//! The copy pipeline: plan (manifests), gate (signatures and policy), blobs (concurrent,
//! verified while they stream), then manifests, signatures and records, then one commit.
//!
//! The gate runs before the destination is even opened: a rejected image leaves the destination
//! exactly as it was.

pub mod report;
pub mod signatures;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};

pub use report::{
    BlobAction, BlobReport, ManifestReport, Record, Report, SignaturesReport, Timings,
    WrittenSignature,
};
pub use signatures::{SignatureDecision, SignatureFailure, SignatureMode, UnreadableSlot};

use crate::digest::{ByteStream, Digest, VerifyingStream};
use crate::manifest::{self, Descriptor, Manifest, ManifestError, PlatformSpec};
use crate::policy::{self, Policy, Verdict};
use crate::reference::{DockerReference, ImageReference};
use crate::signature::SignatureSlot;
use crate::signature::simple::{self as simple_signing, SigningKey};
use crate::transport::{
    self, ImageDestination, ImageSource, RawManifest, SignatureSupport, TransportError,
    TransportOptions,
};

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
    fn accepts(self, kind: crate::manifest::ManifestKind) -> bool {
        use crate::manifest::ManifestKind::*;
        match self {
            ManifestFormat::Oci => matches!(kind, OciManifest | OciIndex),
            ManifestFormat::V2s2 => matches!(kind, DockerV2S2 | DockerList),
        }
    }
}

impl std::str::FromStr for ManifestFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "oci" => Ok(ManifestFormat::Oci),
            "v2s2" => Ok(ManifestFormat::V2s2),
            "v2s1" => Err("Docker schema 1 (v2s1) is not supported: use oci or v2s2".into()),
            _ => Err(format!("unknown manifest format {s:?}: use oci or v2s2")),
        }
    }
}

/// Signing the copied image with simple signing.
#[derive(Clone)]
pub struct SignOptions {
    /// The secret key.
    pub key: Arc<SigningKey>,
    /// The identity to sign for; default: the destination's docker reference.
    pub identity: Option<DockerReference>,
}

impl std::fmt::Debug for SignOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignOptions")
            .field("key", &self.key.fingerprint())
            .field("identity", &self.identity)
            .finish()
    }
}

/// Progress of a copy, reported to whoever embeds ferry (the CLI draws progress bars from it).
#[derive(Debug, Clone)]
pub enum ProgressEvent {
    /// A phase began: `reading manifest`, `checking signatures`, `copying blobs`, `writing manifest`.
    Phase(String),
    /// A blob transfer starts.
    BlobStarted {
        /// Its digest.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// Bytes of a blob arrived (a delta).
    BlobBytes {
        /// Its digest.
        digest: Digest,
        /// Bytes since the last event.
        bytes: u64,
    },
    /// A blob is done.
    BlobDone {
        /// Its digest.
        digest: Digest,
        /// Copied or reused.
        action: BlobAction,
    },
    /// Something the user should know that does not fail the copy.
    Warning(String),
}

/// Receives [`ProgressEvent`]s. Called from any thread; keep it cheap.
pub trait Progress: Send + Sync {
    /// One event.
    fn event(&self, event: ProgressEvent);
}

/// Everything a copy needs besides the two references.
#[derive(Clone)]
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
        }
    }

    fn emit(&self, e: ProgressEvent) {
        if let Some(p) = &self.progress {
            p.event(e);
        }
    }
}

/// Why a copy failed. Nothing was committed at the destination.
#[derive(Debug, thiserror::Error)]
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
    #[error(
        "{reference} is a list of images with none for {platform}; it has {available}. Use --platform OS/ARCH[/VARIANT] to choose one, or --all"
    )]
    NoPlatform {
        /// The source.
        reference: String,
        /// The wanted platform.
        platform: String,
        /// The platforms it has.
        available: String,
    },
    /// The policy could not be evaluated.
    #[error("evaluating the signature policy: {0}")]
    Policy(#[from] policy::PolicyError),
    /// The signatures stop the copy (rejected, or unreadable in copy-all).
    #[error("{reference}: {failure}")]
    Signatures {
        /// The source (and instance).
        reference: String,
        /// Why.
        failure: SignatureFailure,
    },
    /// The destination cannot keep the signatures that would be written.
    #[error(
        "{destination} cannot keep signatures: {why}.\nThe source has {count} signature(s) to copy; use --signatures remove-signatures to copy the image without them"
    )]
    NoSignatureStorage {
        /// The destination.
        destination: String,
        /// Why not.
        why: String,
        /// How many signatures would be written.
        count: usize,
    },
    /// Signing failed.
    #[error("signing the copied image: {0}")]
    Signing(String),
    /// A blob failed to copy.
    #[error("copying blob {digest} from {source_ref} to {destination}: {source}")]
    Blob {
        /// The blob.
        digest: Digest,
        /// The source reference.
        source_ref: String,
        /// The destination reference.
        destination: String,
        /// What failed.
        source: TransportError,
    },
    /// The copy would have to change a manifest.
    #[error("{0}")]
    ManifestChange(String),
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

impl CopyError {
    /// The policy's verdict, when the copy failed on the signatures.
    pub fn verdict(&self) -> Option<&Verdict> {
        match self {
            CopyError::Signatures {
                failure: SignatureFailure::Rejected { verdict, .. },
                ..
            } => Some(verdict),
            _ => None,
        }
    }

    /// The slots that could not be read, when the copy failed on the signatures.
    pub fn unreadable(&self) -> &[UnreadableSlot] {
        match self {
            CopyError::Signatures {
                failure:
                    SignatureFailure::Rejected { unreadable, .. }
                    | SignatureFailure::Unreadable { unreadable },
                ..
            } => unreadable,
            _ => &[],
        }
    }
}

/// One manifest the copy will write.
struct Planned {
    raw: RawManifest,
    digest: Digest,
    media_type: String,
    /// Set for an instance written beside its list; `None` for what becomes the top level.
    dest_instance: Option<Digest>,
    /// Set when the source knows this manifest as an instance of a list.
    src_instance: Option<Digest>,
    platform: Option<String>,
    blobs: Vec<Descriptor>,
    is_list: bool,
    slots: Vec<SignatureSlot>,
    verdict: Option<Verdict>,
    decision: SignatureDecision,
}

fn media_type_of(raw: &RawManifest, m: &Manifest) -> String {
    raw.media_type
        .clone()
        .unwrap_or_else(|| m.kind().media_type().to_string())
}

/// Copies `src` to `dst`: reads the manifest and the signatures, evaluates the policy, and only
/// if it accepts, copies the blobs, manifests and the signatures the mode keeps, then commits.
pub async fn copy(
    src: &ImageReference,
    dst: &ImageReference,
    options: &CopyOptions,
) -> Result<Report, CopyError> {
    let started = Instant::now();
    let src_name = src.to_string();
    let dst_name = dst.to_string();
    let source_err = |source: TransportError| CopyError::Source {
        reference: src_name.clone(),
        source,
    };
    let dest_err = |source: TransportError| CopyError::Destination {
        reference: dst_name.clone(),
        source,
    };

    options.emit(ProgressEvent::Phase("reading manifest".into()));
    let source: Arc<dyn ImageSource> = Arc::from(
        transport::open_source(src, &options.source)
            .await
            .map_err(source_err)?,
    );
    let mut plan = plan(src, source.as_ref(), &options.selection).await?;

    // The gate: every image's signatures are read and judged before anything is written.
    options.emit(ProgressEvent::Phase("checking signatures".into()));
    let mut warnings = Vec::new();
    for p in plan.iter_mut() {
        p.slots = source
            .signatures(&p.digest, p.src_instance.as_ref())
            .await
            .map_err(source_err)?;
        let verdict = policy::evaluate(&options.policy, src, &p.raw.bytes, &p.slots)?;
        let gated = !p.is_list;
        let what = match &p.platform {
            Some(pl) => format!("{src_name} ({pl} image {})", p.digest),
            None => src_name.clone(),
        };
        p.decision =
            signatures::decide(options.mode, &verdict, &p.slots, gated).map_err(|failure| {
                CopyError::Signatures {
                    reference: what.clone(),
                    failure,
                }
            })?;
        for w in &p.decision.warnings {
            let msg =
                format!("{what}: {w}: could not be read; copied without it (sufficient-subset)");
            options.emit(ProgressEvent::Warning(msg.clone()));
            warnings.push(msg);
        }
        p.verdict = Some(verdict);
    }
    let gate_done = started.elapsed().as_secs_f64();

    // ferry never rewrites a manifest: a different format would change its digest, and every
    // signature kept with it would then sign something else.
    if let Some(want) = options.format {
        for p in &plan {
            let kind = crate::manifest::detect(&p.raw.bytes, p.raw.media_type.as_deref()).map_err(
                |source| CopyError::Manifest {
                    what: format!("manifest {}", p.digest),
                    source,
                },
            )?;
            if want.accepts(kind) {
                continue;
            }
            let keeps = plan.iter().map(|q| q.decision.keep.len()).sum::<usize>()
                + usize::from(options.sign.is_some());
            return Err(CopyError::ManifestChange(if keeps > 0 {
                format!(
                    "{src_name}: converting the manifest {} ({}) to {want:?} would change its digest and invalidate the {keeps} signature(s) this copy keeps; copy it in its own format, or drop the signatures with --signatures remove-signatures (ferry does not convert formats yet either way)",
                    p.digest,
                    kind.media_type()
                )
            } else {
                format!(
                    "{src_name}: the manifest {} is {}, and ferry does not convert manifest formats; copy it without --format",
                    p.digest,
                    kind.media_type()
                )
            }));
        }
    }

    if let ImageReference::Docker(r) = dst
        && let Some(wanted) = r.digest()
    {
        let top = plan.last().map(|p| p.digest.clone());
        if let Some(actual) = top.filter(|d| d != wanted) {
            return Err(CopyError::DestinationDigest {
                destination: dst_name.clone(),
                wanted: wanted.clone(),
                actual,
            });
        }
    }

    let destination = transport::open_destination(dst, &options.destination)
        .await
        .map_err(dest_err)?;
    let to_write: usize = plan.iter().map(|p| p.decision.keep.len()).sum::<usize>()
        + usize::from(options.sign.is_some());
    if to_write > 0
        && let SignatureSupport::No(why) = destination.signature_support()
    {
        return Err(CopyError::NoSignatureStorage {
            destination: dst_name.clone(),
            why,
            count: to_write,
        });
    }

    // Blobs: every distinct blob of every image, several at once.
    options.emit(ProgressEvent::Phase("copying blobs".into()));
    let blobs_started = Instant::now();
    let mut seen = BTreeSet::new();
    let unique: Vec<Descriptor> = plan
        .iter()
        .flat_map(|p| p.blobs.iter())
        .filter(|d| seen.insert(d.digest.clone()))
        .cloned()
        .collect();
    let results: Vec<(Digest, BlobAction, u64)> = futures::stream::iter(unique.iter())
        .map(|d| copy_blob(src, source.clone(), destination.as_ref(), d, options))
        .buffer_unordered(options.parallel_blobs.max(1))
        .map_err(|failed| {
            let (digest, source) = *failed;
            CopyError::Blob {
                digest,
                source_ref: src_name.clone(),
                destination: dst_name.clone(),
                source,
            }
        })
        .try_collect()
        .await?;
    let blobs_seconds = blobs_started.elapsed().as_secs_f64();
    let bytes_copied = results.iter().map(|r| r.2).sum();

    options.emit(ProgressEvent::Phase("writing manifest".into()));
    for p in &plan {
        destination
            .put_manifest(&p.raw, p.dest_instance.as_ref())
            .await
            .map_err(dest_err)?;
    }

    // Signatures: the ones the mode keeps, byte for byte in slot order, then ferry's own.
    let mut manifest_reports = Vec::new();
    let top_index = plan.len() - 1;
    for (i, p) in plan.iter().enumerate() {
        let mut sigs: Vec<Vec<u8>> = Vec::new();
        let mut written = Vec::new();
        for slot in &p.decision.keep {
            if let Some(Ok(bytes)) = p
                .slots
                .iter()
                .find(|s| s.index == *slot)
                .map(|s| &s.content)
            {
                sigs.push(bytes.clone());
                written.push(WrittenSignature {
                    destination_index: sigs.len(),
                    source_slot: Some(*slot),
                    digest: Digest::sha256_of(bytes),
                });
            }
        }
        if i == top_index
            && let Some(sign) = &options.sign
        {
            let sig = sign_manifest(dst, &p.digest, sign).map_err(CopyError::Signing)?;
            written.push(WrittenSignature {
                destination_index: sigs.len() + 1,
                source_slot: None,
                digest: Digest::sha256_of(&sig),
            });
            sigs.push(sig);
        }
        if !sigs.is_empty() {
            destination
                .put_signatures(&p.digest, p.dest_instance.as_ref(), &sigs)
                .await
                .map_err(dest_err)?;
        }
        let blob_reports = p
            .blobs
            .iter()
            .map(|d| BlobReport {
                digest: d.digest.clone(),
                size: d.size,
                media_type: d.media_type.clone(),
                action: results
                    .iter()
                    .find(|r| r.0 == d.digest)
                    .map(|r| r.1)
                    .unwrap_or(BlobAction::Copied),
            })
            .collect();
        manifest_reports.push(ManifestReport {
            digest: p.digest.clone(),
            media_type: p.media_type.clone(),
            platform: p.platform.clone(),
            is_list: p.is_list,
            verdict: p.verdict.clone(),
            signatures: SignaturesReport {
                slots_read: p.slots.len(),
                written,
                unreadable: p.decision.warnings.clone(),
            },
            blobs: blob_reports,
        });
    }

    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for m in &manifest_reports {
        let record = Record {
            version: 1,
            time: now.clone(),
            source: src_name.clone(),
            destination: dst_name.clone(),
            mode: options.mode,
            policy: Some(options.policy.origin().to_string()),
            policy_digest: Some(options.policy.digest().to_string()),
            manifest: m.clone(),
            warnings: warnings.clone(),
        };
        let value = serde_json::to_value(&record).map_err(|e| CopyError::Destination {
            reference: dst_name.clone(),
            source: TransportError::Unsupported(format!("cannot serialise the record: {e}")),
        })?;
        destination
            .put_record(&m.digest, &value)
            .await
            .map_err(dest_err)?;
    }

    destination.commit().await.map_err(dest_err)?;

    Ok(Report {
        version: 1,
        source: src_name.clone(),
        destination: dst_name.clone(),
        mode: options.mode,
        manifest_digest: plan[top_index].digest.clone(),
        manifests: manifest_reports,
        warnings,
        bytes_copied,
        timings: Timings {
            total: started.elapsed().as_secs_f64(),
            gate: gate_done,
            blobs: blobs_seconds,
        },
    })
}

fn sign_manifest(
    dst: &ImageReference,
    digest: &Digest,
    sign: &SignOptions,
) -> Result<Vec<u8>, String> {
    let identity = match (&sign.identity, dst.docker_reference()) {
        (Some(i), _) => i.clone(),
        (None, Some(r)) => r,
        (None, None) => {
            return Err(format!(
                "{dst} has no docker reference to sign for; give one with --sign-identity"
            ));
        }
    };
    if identity.tag().is_none() && identity.digest().is_none() {
        return Err(format!("the identity {identity} needs a tag or digest"));
    }
    let payload = simple_signing::payload_json(digest, &identity.to_string());
    simple_signing::sign(&payload, &sign.key).map_err(|e| e.to_string())
}

/// Reads the manifests the copy will write; instances before the list, the top level last.
async fn plan(
    src: &ImageReference,
    source: &dyn ImageSource,
    selection: &ImageSelection,
) -> Result<Vec<Planned>, CopyError> {
    let src_name = src.to_string();
    let top = source
        .manifest(None)
        .await
        .map_err(|source| CopyError::Source {
            reference: src_name.clone(),
            source,
        })?;
    let top_digest = Digest::sha256_of(&top.bytes);
    let parsed = manifest::parse(&top.bytes, top.media_type.as_deref()).map_err(|source| {
        CopyError::Manifest {
            what: format!("manifest of {src_name}"),
            source,
        }
    })?;
    let list = match parsed {
        Manifest::Image(_, ref img) => {
            return Ok(vec![Planned {
                media_type: media_type_of(&top, &parsed),
                blobs: img.blobs().into_iter().cloned().collect(),
                raw: top,
                digest: top_digest,
                dest_instance: None,
                src_instance: None,
                platform: None,
                is_list: false,
                slots: vec![],
                verdict: None,
                decision: SignatureDecision::default(),
            }]);
        }
        Manifest::List(_, ref list) => list.clone(),
    };
    let chosen: Vec<&Descriptor> = match selection {
        ImageSelection::All => list.manifests.iter().collect(),
        ImageSelection::System | ImageSelection::Platform(_) => {
            let want = match selection {
                ImageSelection::Platform(p) => p.clone(),
                _ => PlatformSpec::current(),
            };
            match want.choose(&list) {
                Some(d) => vec![d],
                None => {
                    let available = list
                        .manifests
                        .iter()
                        .filter_map(|d| d.platform.as_ref())
                        .map(|p| {
                            let mut s = format!("{}/{}", p.os, p.architecture);
                            if let Some(v) = &p.variant {
                                s.push('/');
                                s.push_str(v);
                            }
                            s
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(CopyError::NoPlatform {
                        reference: src_name,
                        platform: want.to_string(),
                        available,
                    });
                }
            }
        }
    };
    let all = matches!(selection, ImageSelection::All);
    let mut out = Vec::new();
    for d in chosen {
        let what = format!("{src_name} instance {}", d.digest);
        let raw = source
            .manifest(Some(&d.digest))
            .await
            .map_err(|source| CopyError::Source {
                reference: src_name.clone(),
                source,
            })?;
        let actual = d.digest.of_same_algorithm(&raw.bytes);
        if actual != d.digest {
            return Err(CopyError::ManifestDigest {
                what,
                expected: d.digest.clone(),
                actual,
            });
        }
        let parsed = manifest::parse(
            &raw.bytes,
            raw.media_type.as_deref().or(Some(&d.media_type)),
        )
        .map_err(|source| CopyError::Manifest {
            what: what.clone(),
            source,
        })?;
        let Manifest::Image(_, img) = &parsed else {
            return Err(CopyError::Manifest {
                what,
                source: ManifestError::Unknown("a list inside a list is not supported".into()),
            });
        };
        out.push(Planned {
            media_type: media_type_of(&raw, &parsed),
            blobs: img.blobs().into_iter().cloned().collect(),
            digest: d.digest.clone(),
            dest_instance: all.then(|| d.digest.clone()),
            src_instance: Some(d.digest.clone()),
            platform: d.platform.as_ref().map(|p| {
                let mut s = format!("{}/{}", p.os, p.architecture);
                if let Some(v) = &p.variant {
                    s.push('/');
                    s.push_str(v);
                }
                s
            }),
            raw,
            is_list: false,
            slots: vec![],
            verdict: None,
            decision: SignatureDecision::default(),
        });
    }
    if all {
        out.push(Planned {
            media_type: media_type_of(&top, &parsed),
            raw: top,
            digest: top_digest,
            dest_instance: None,
            src_instance: None,
            platform: None,
            blobs: vec![],
            is_list: true,
            slots: vec![],
            verdict: None,
            decision: SignatureDecision::default(),
        });
    }
    Ok(out)
}

/// Copies one blob unless the destination has it, verifying it as it streams.
async fn copy_blob(
    src: &ImageReference,
    source: Arc<dyn ImageSource>,
    destination: &dyn ImageDestination,
    d: &Descriptor,
    options: &CopyOptions,
) -> Result<(Digest, BlobAction, u64), Box<(Digest, TransportError)>> {
    let fail = |e| Box::new((d.digest.clone(), e));
    if destination.try_reuse_blob(d, src).await.map_err(fail)? {
        options.emit(ProgressEvent::BlobDone {
            digest: d.digest.clone(),
            action: BlobAction::Reused,
        });
        return Ok((d.digest.clone(), BlobAction::Reused, 0));
    }
    options.emit(ProgressEvent::BlobStarted {
        digest: d.digest.clone(),
        size: d.size,
    });
    let raw = source.blob(d).await.map_err(fail)?;
    // Verified on the task that writes: the benchmark showed that handing chunks to a separate
    // hashing task bought no speed on 2 cores (the copy is CPU-bound either way) and cost 20 MiB
    // of buffered chunks (docs/performance.md).
    let verified = VerifyingStream::new(raw, d.digest.clone(), Some(d.size));
    let total = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (counter, progress, digest) = (total.clone(), options.progress.clone(), d.digest.clone());
    let stream: ByteStream = Box::pin(verified.inspect(move |item| {
        if let Ok(chunk) = item {
            counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if let Some(p) = &progress {
                p.event(ProgressEvent::BlobBytes {
                    digest: digest.clone(),
                    bytes: chunk.len() as u64,
                });
            }
        }
    }));
    destination.put_blob(d, stream).await.map_err(fail)?;
    options.emit(ProgressEvent::BlobDone {
        digest: d.digest.clone(),
        action: BlobAction::Copied,
    });
    let total = total.load(std::sync::atomic::Ordering::Relaxed);
    Ok((d.digest.clone(), BlobAction::Copied, total))
}
