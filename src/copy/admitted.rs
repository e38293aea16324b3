//! The first half of every consumer of an image: open the source, plan which manifests are
//! read, read each one's signatures, and let the gate judge them. What comes out is either an
//! [`AdmittedImage`] (the gate's proof, with the source still open so its blobs can be read) or
//! the rejection. `copy`, `check` (policy check, sync --dry-run, signatures verify), and the
//! consumers that read an image without writing it to a transport (`unpack`, the image proxy)
//! all start here, so they always agree.

use std::time::Instant;

use super::plan::{self, Planned};
use super::{CopyError, GateOptions, ProgressEvent};
use crate::digest::{ByteStream, VerifyingStream};
use crate::manifest::Descriptor;
use crate::policy::{self, Admission, Admitted, GateInput, Judgement, Rejected};
use crate::reference::ImageReference;
use crate::session::Session;
use crate::transport::{ImageSource, SignatureSet, TransportError};
use crate::verdict::Verdict;

/// The source opened, its plan read, and every planned manifest's signatures read and judged.
pub(crate) struct Gated {
    pub(crate) source: Box<dyn ImageSource>,
    pub(crate) reference: ImageReference,
    pub(crate) plan: Vec<Planned>,
    pub(crate) slots: Vec<SignatureSet>,
    pub(crate) outcome: Result<Admitted, Rejected>,
    pub(crate) started: Instant,
}

impl Gated {
    /// Opens the source, plans, reads every planned manifest's signatures and runs the gate.
    pub(crate) async fn open(
        session: &Session,
        src: &ImageReference,
        options: &GateOptions,
    ) -> Result<Gated, CopyError> {
        let started = Instant::now();
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
            reference: src.clone(),
            plan,
            slots,
            outcome,
            started,
        })
    }

    /// The image, if the gate admitted it; what the mode let it go without becomes warnings.
    pub(crate) fn admit(self, options: &GateOptions) -> Result<AdmittedImage, Rejected> {
        let admitted = self.outcome?;
        let src = &self.reference;
        let mut warnings = Vec::new();
        for j in admitted.judgements() {
            let what = match &j.platform {
                Some(pl) => format!("{src} ({pl} image {})", j.digest),
                None => src.to_string(),
            };
            for w in &j.warnings {
                warnings.push(format!(
                    "{what}: {w}: could not be read; copied without it (sufficient-subset)"
                ));
            }
            for e in &j.attached_warnings {
                warnings.push(format!("{src}: {e}: could not be read; copied without it"));
            }
        }
        for w in &warnings {
            options.emit(ProgressEvent::Warning(w.clone()));
        }
        Ok(AdmittedImage {
            source: self.source,
            reference: self.reference,
            plan: self.plan,
            slots: self.slots,
            admitted,
            warnings,
            gate_seconds: self.started.elapsed().as_secs_f64(),
        })
    }
}

/// An image the gate admitted, with its source still open: what a copy writes, what `unpack`
/// applies and what the image proxy serves. Only [`open_admitted`] (and the copy pipeline) make
/// one, so holding it is holding the gate's [`Admission`].
pub struct AdmittedImage {
    pub(crate) source: Box<dyn ImageSource>,
    pub(crate) reference: ImageReference,
    pub(crate) plan: Vec<Planned>,
    pub(crate) slots: Vec<SignatureSet>,
    pub(crate) admitted: Admitted,
    pub(crate) warnings: Vec<String>,
    pub(crate) gate_seconds: f64,
}

impl std::fmt::Debug for AdmittedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmittedImage")
            .field("reference", &self.reference)
            .field("manifests", &self.plan.len())
            .finish_non_exhaustive()
    }
}

/// Opens `src`, reads its manifests and signatures and runs the gate in `options.mode`: the
/// image if it is admitted, else [`CopyError::Rejected`] with every manifest's judgement.
pub async fn open_admitted(
    session: &Session,
    src: &ImageReference,
    options: &GateOptions,
) -> Result<AdmittedImage, CopyError> {
    Ok(Gated::open(session, src, options).await?.admit(options)?)
}

impl AdmittedImage {
    /// The gate's proof, which every write needs.
    pub fn admission(&self) -> &Admission {
        self.admitted.admission()
    }

    /// Every planned manifest's judgement, in plan order (the top level last).
    pub fn judgements(&self) -> &[Judgement] {
        self.admitted.judgements()
    }

    /// The verdict on the image: for a single image its verdict, for a list the verdict of the
    /// chosen instance (or, with every instance, the first).
    pub fn verdict(&self) -> Option<&Verdict> {
        self.judgements().iter().find_map(|j| j.verdict.as_ref())
    }

    /// What the mode let the image go without (unreadable signatures or attached artifacts).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The source reference.
    pub fn reference(&self) -> &ImageReference {
        &self.reference
    }

    /// Where the bytes come from when that is not the reference itself (a mirror).
    pub fn pulled_from(&self) -> Option<String> {
        self.source.pulled_from()
    }

    /// The manifests read, instances before their list, the top level last.
    pub fn manifests(&self) -> &[Planned] {
        &self.plan
    }

    /// The image to run: the one manifest of an image, or the instance chosen from a list (the
    /// first image of the plan; with every instance of a list selected, the first of them).
    pub fn image(&self) -> Option<&Planned> {
        self.plan
            .iter()
            .find(|p| p.role == policy::ManifestRole::Image)
    }

    /// A blob of the image, verified as it streams: the stream ends in an error if its bytes
    /// do not match `descriptor`'s digest and size.
    pub async fn blob(&self, descriptor: &Descriptor) -> Result<ByteStream, TransportError> {
        let raw = self.source.blob(descriptor).await?;
        Ok(Box::pin(VerifyingStream::new(
            raw,
            descriptor.digest.clone(),
            Some(descriptor.size),
        )))
    }

    /// The source, for reading what the gate admitted.
    pub(crate) fn source(&self) -> &dyn ImageSource {
        self.source.as_ref()
    }
}
