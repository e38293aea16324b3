//! The copy pipeline: plan (manifests), gate (signatures and policy), then blobs, manifests,
//! signatures and records, then one commit. [`copy`] is the spine: it orders the steps of one
//! image's copy (`single.rs`), each of which returns what the next needs.
//!
//! The gate runs before the destination is even opened, and every write needs the gate's
//! [`Admission`](crate::policy::Admission): a rejected image leaves the destination exactly as
//! it was. [`check`] runs the same plan and gate without writing, for `ferry policy check`;
//! [`open_admitted`] runs them and keeps the source open, for the consumers that read an
//! admitted image without copying it (`unpack`, the image proxy).

mod admitted;
pub mod blobs;
pub mod convert;
pub mod error;
pub mod plan;
pub mod recompress;
pub mod report;
pub mod sign;
pub mod signatures;
mod single;
mod stored;
pub mod unpack;

use std::sync::Arc;

pub use error::CopyError;
pub use recompress::LayerCompression;
pub use report::{BlobAction, Report};
pub use sign::{SignError, SignKey, SignOptions};

use crate::manifest::PlatformSpec;
pub use crate::policy::SignatureMode;
use crate::policy::{self, Admitted, Policy, Rejected};
use crate::reference::ImageReference;
use crate::session::Session;
use crate::transport::TransportOptions;
use admitted::Gated;
pub use admitted::{AdmittedImage, open_admitted};
use single::ImageCopier;

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
#[non_exhaustive]
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

/// What the gate needs to decide on an image: the policy, the mode, which images of a list,
/// and how the source is read. Every consumer of an image takes these: a copy, a check, unpack
/// and the image proxy.
#[derive(Clone)]
#[non_exhaustive]
pub struct GateOptions {
    /// The signature policy.
    pub policy: Arc<Policy>,
    /// The signature mode.
    pub mode: SignatureMode,
    /// Which images of a list.
    pub selection: ImageSelection,
    /// Settings for the source side.
    pub source: TransportOptions,
    /// Where progress goes.
    pub progress: Option<Arc<dyn Progress>>,
}

impl GateOptions {
    /// The defaults: copy-all, the system's image, the source read with default settings.
    pub fn new(policy: Arc<Policy>) -> GateOptions {
        GateOptions {
            policy,
            mode: SignatureMode::CopyAll,
            selection: ImageSelection::System,
            source: TransportOptions::default(),
            progress: None,
        }
    }

    fn emit(&self, e: ProgressEvent) {
        if let Some(p) = &self.progress {
            p.event(e);
        }
    }
}

/// Everything a copy needs besides the session and the two references.
#[derive(Clone)]
#[non_exhaustive]
pub struct CopyOptions {
    /// How the gate decides, and how the source is read.
    pub gate: GateOptions,
    /// Settings for the destination side.
    pub destination: TransportOptions,
    /// How many blobs are copied at once.
    pub parallel_blobs: usize,
    /// Sign the copied image.
    pub sign: Option<SignOptions>,
    /// The manifest format the destination must get; `None` keeps the source's.
    pub format: Option<ManifestFormat>,
    /// How layers are (re)compressed; `None` copies every layer byte for byte.
    pub compression: Option<LayerCompression>,
    /// A cap on blob transfers shared with other copies (a sync's global cap): a transfer
    /// holds one permit from the start of its stream to its end. `None`: only
    /// `parallel_blobs` bounds this copy.
    pub blob_slots: Option<Arc<tokio::sync::Semaphore>>,
}

impl CopyOptions {
    /// Options with the defaults: copy-all, the system image, 6 blobs at once.
    pub fn new(policy: Arc<Policy>) -> CopyOptions {
        CopyOptions {
            gate: GateOptions::new(policy),
            destination: TransportOptions::default(),
            parallel_blobs: 6,
            sign: None,
            format: None,
            compression: None,
            blob_slots: None,
        }
    }

    fn emit(&self, e: ProgressEvent) {
        self.gate.emit(e);
    }
}

/// What [`check`] found: the gate's answer, with every manifest's judgement either way.
#[derive(Debug)]
#[non_exhaustive]
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

/// What a copy of `src` with `options` would decide, without opening a destination or writing
/// anything: the plan and the gate of [`copy`], per instance for lists, in `options.mode`.
pub async fn check(
    session: &Session,
    src: &ImageReference,
    options: &GateOptions,
) -> Result<Checked, CopyError> {
    Ok(match Gated::open(session, src, options).await?.outcome {
        Ok(a) => Checked::Admitted(a),
        Err(r) => Checked::Rejected(r),
    })
}

/// Copies `src` to `dst` within `session`: reads the manifest and the signatures, runs the
/// gate, and only if it admits the image copies the blobs, manifests and the signatures the
/// mode keeps, then commits. Nothing is written at the destination unless the gate admitted
/// the image, and nothing becomes visible there unless everything was written.
pub async fn copy(
    session: &Session,
    src: &ImageReference,
    dst: &ImageReference,
    options: &CopyOptions,
) -> Result<Report, CopyError> {
    let mut copier = ImageCopier::new(session, src, dst, options);
    let image = copier.admitted().await?;
    let destination = copier.open().await?;
    let prepared = copier.prepare(&image, destination.as_ref()).await?;
    let routed = copier.route(&prepared, destination)?;
    let written = copier.write(&image, &prepared, &routed).await?;
    copier.commit(image, prepared, routed, written).await
}
