//! One image's copy, as containers/image's `imageCopier`: one struct holds what the copy knows,
//! and each step is a method that returns what the next step needs. The spine
//! ([`super::copy`]) reads like the table of contents:
//!
//! 1. gated ([`super::admitted`]): the source's manifests and signatures judged; the proof;
//! 2. opened ([`ImageCopier::open`]): the destination, where nothing is visible before the
//!    commit;
//! 3. prepared ([`ImageCopier::prepare`]): the format conversion and the signatures each
//!    manifest's destination gets (recompressed layers sent as each is made);
//! 4. routed ([`ImageCopier::route`]): where each signature and attached artifact goes at the
//!    destination (or why it cannot);
//! 5. written ([`ImageCopier::write`]): blobs, manifests, signatures, attached artifacts;
//! 6. reported ([`ImageCopier::commit`]): the records, the commit, the report.

use std::collections::HashMap;
use std::time::Instant;

use super::admitted::{AdmittedImage, open_admitted};
use super::blobs::{self, BlobOutcome};
use super::convert::{self, Conversion};
use super::plan::Planned;
use super::recompress;
use super::signatures::{self, ToWrite};
use super::{CopyError, CopyOptions, ProgressEvent, report};
use crate::digest::Digest;
use crate::manifest::Descriptor;
use crate::policy::SignatureMode;
use crate::record::{
    AttachedReport, BlobAction, BlobReport, ManifestReport, RECORD_VERSION, Record,
    SignaturesReport,
};
use crate::reference::ImageReference;
use crate::session::Session;
use crate::signature::sigstore::{SigstoreSignature, bundle::is_bundle_media_type};
use crate::signature::sniff::{self, Format};
use crate::transport::referrers::{Attached, AttachedKind, Via};
use crate::transport::{
    ImageDestination, SignatureSupport, TransportError, TransportOptions, registry,
};

/// What one image's copy knows as it goes.
pub(super) struct ImageCopier<'a> {
    pub(super) session: &'a Session,
    pub(super) src: &'a ImageReference,
    pub(super) dst: &'a ImageReference,
    pub(super) options: &'a CopyOptions,
    /// Everything the copy went without, in the order it was decided (gate first).
    warnings: Vec<String>,
    started: Instant,
}

/// The manifests to write and what each one's destination gets.
pub(super) struct Prepared {
    conversion: Option<Conversion>,
    to_write: Vec<ToWrite>,
    /// The recompressed layers already sent to the destination, and what became of them.
    uploaded: Vec<BlobOutcome>,
}

impl Prepared {
    /// The manifests the destination gets: the converted ones, or the source's.
    fn plan<'p>(&'p self, image: &'p AdmittedImage) -> &'p [Planned] {
        match &self.conversion {
            Some(c) => &c.plan,
            None => &image.plan,
        }
    }
}

/// The destination, open, and per manifest the signature blobs and the artifacts it gets.
pub(super) struct Routed {
    destination: Box<dyn ImageDestination>,
    per_manifest: Vec<(Vec<Vec<u8>>, Vec<Attached>)>,
}

/// What writing did to each blob, and how long it took.
pub(super) struct Written {
    blobs: Vec<BlobOutcome>,
    blobs_seconds: f64,
}

impl<'a> ImageCopier<'a> {
    pub(super) fn new(
        session: &'a Session,
        src: &'a ImageReference,
        dst: &'a ImageReference,
        options: &'a CopyOptions,
    ) -> ImageCopier<'a> {
        ImageCopier {
            session,
            src,
            dst,
            options,
            warnings: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Step 1, with both ends made ready beside it: while the gate reads the source, a
    /// registry at either end connects, probes, opens the connections the blobs will need and
    /// fetches its token (none of which reads or writes the image; the destination is still
    /// not opened). A rejection or a failure of the gate returns at once.
    pub(super) async fn admitted(&self) -> Result<AdmittedImage, CopyError> {
        let connections = self.options.parallel_blobs.max(1);
        let warm = |reference: &'a ImageReference, options: &'a TransportOptions, writing| async move {
            if let Ok(transport) = registry::of(reference) {
                transport
                    .warm_up(self.session, reference, options, connections, writing)
                    .await;
            }
        };
        let ends = futures::future::join(
            warm(self.src, &self.options.gate.source, false),
            warm(self.dst, &self.options.destination, true),
        );
        let gate = open_admitted(self.session, self.src, &self.options.gate);
        tokio::pin!(gate, ends);
        let mut ready = false;
        loop {
            tokio::select! {
                image = &mut gate => {
                    let image = image?;
                    // The ends are ready about when the gate is (both take the probe's round
                    // trips and one or two more); the blobs then find their connections open
                    // instead of racing the last of them and opening more.
                    if !ready {
                        ends.await;
                    }
                    return Ok(image);
                }
                _ = &mut ends, if !ready => ready = true,
            }
        }
    }

    fn dest_err(&self) -> impl Fn(TransportError) -> CopyError + use<'_> {
        |source| CopyError::Destination {
            reference: self.dst.to_string(),
            source,
        }
    }

    fn warn(&mut self, message: String) {
        self.options.emit(ProgressEvent::Warning(message.clone()));
        self.warnings.push(message);
    }

    /// Step 2: opens the destination. Nothing written there becomes visible before the commit,
    /// so a failure in the steps that follow (a signature that cannot be made, a layer that does
    /// not recompress) leaves nothing behind.
    pub(super) async fn open(&self) -> Result<Box<dyn ImageDestination>, CopyError> {
        self.session
            .open_destination(self.dst, &self.options.destination)
            .await
            .map_err(self.dest_err())
    }

    /// Step 3: a format change makes new manifests (and maybe a config blob); the gate has
    /// judged the source's, and no source signature may be kept with a converted one. The
    /// signatures (ferry's own made now) are decided before anything but recompressed layers
    /// is written. Each recompressed layer goes to `destination` as soon as it is made, while
    /// the others are converted.
    pub(super) async fn prepare(
        &mut self,
        image: &AdmittedImage,
        destination: &dyn ImageDestination,
    ) -> Result<Prepared, CopyError> {
        self.warnings.extend(image.warnings().iter().cloned());
        let format = match &self.options.compression {
            Some(c) => c.manifest_format(self.options.format),
            None => self.options.format,
        };
        let conversion = convert::convert(self.src, image.source(), &image.plan, format).await?;
        let uploads = recompress::Uploads {
            admission: image.admission(),
            dst: self.dst,
            destination,
        };
        let kept =
            signatures::kept_from_source(&image.plan, &image.slots, image.judgements(), self.dst);
        let (conversion, uploaded) = recompress::recompress(
            self.src,
            image.source(),
            &image.plan,
            conversion,
            self.options,
            &kept,
            &uploads,
        )
        .await?;
        let plan = match &conversion {
            Some(c) => &c.plan,
            None => &image.plan,
        };
        let to_write = signatures::choose(
            plan,
            &image.slots,
            image.judgements(),
            self.options.sign.as_ref(),
            self.dst,
        )?;
        if let (Some(c), Some(want)) = (&conversion, self.options.format) {
            convert::check_signatures(self.src, c, &to_write, want)?;
        }
        if let (Some(c), Some(want)) = (&conversion, &self.options.compression) {
            recompress::check_signatures(self.src, c, &to_write, want)?;
        }
        check_destination_digest(self.dst, plan)?;
        Ok(Prepared {
            conversion,
            to_write,
            uploaded,
        })
    }

    /// Step 4: decides where everything goes. Attached artifacts go as themselves where the
    /// destination keeps them, signatures among them too; elsewhere signatures go as signature
    /// blobs, and anything else attached would be lost, which copy-all refuses as it refuses to
    /// drop a signature. Each kind of signature must have a place at the destination.
    pub(super) fn route(
        &mut self,
        prepared: &Prepared,
        destination: Box<dyn ImageDestination>,
    ) -> Result<Routed, CopyError> {
        let native = destination.attached_support();
        let lost: Vec<String> = prepared
            .to_write
            .iter()
            .flat_map(|w| w.lost_without_native())
            .map(|a| format!("{} {}", a.kind, a.digest))
            .collect();
        if let SignatureSupport::No(why) = &native
            && !lost.is_empty()
        {
            if self.options.gate.mode == SignatureMode::CopyAll {
                return Err(CopyError::NoAttachedStorage {
                    destination: self.dst.to_string(),
                    why: why.clone(),
                    lost,
                });
            }
            for l in &lost {
                self.warn(format!("{}: {why}; {l} is not copied", self.dst));
            }
        }
        let native = native == SignatureSupport::Yes;
        let per_manifest: Vec<(Vec<Vec<u8>>, Vec<Attached>)> = prepared
            .to_write
            .iter()
            .map(|w| {
                let (sigs, attached) = w.routed(native);
                (sigs, attached.into_iter().cloned().collect())
            })
            .collect();
        for kind in [Format::SimpleSigning, Format::SigstoreJson] {
            let count = per_manifest
                .iter()
                .flat_map(|(sigs, _)| sigs)
                .filter(|s| goes_as(s, native) == Some(kind))
                .count();
            if count > 0
                && let SignatureSupport::No(why) = destination.signature_support(kind)
            {
                return Err(CopyError::NoSignatureStorage {
                    destination: self.dst.to_string(),
                    why,
                    count,
                });
            }
        }
        Ok(Routed {
            destination,
            per_manifest,
        })
    }

    /// Step 5: every blob (the image's not sent yet, then the attached artifacts'), then the
    /// manifests (instances before their list), then each manifest's signatures and artifacts.
    pub(super) async fn write(
        &mut self,
        image: &AdmittedImage,
        prepared: &Prepared,
        routed: &Routed,
    ) -> Result<Written, CopyError> {
        let admission = image.admission();
        let destination = routed.destination.as_ref();
        let plan = prepared.plan(image);
        self.options
            .emit(ProgressEvent::Phase("copying blobs".into()));
        let started = Instant::now();
        let no_blobs_made = HashMap::new();
        let source = convert::WithMadeBlobs {
            inner: image.source(),
            made: prepared
                .conversion
                .as_ref()
                .map(|c| &c.made)
                .unwrap_or(&no_blobs_made),
            layers: prepared.conversion.as_ref().map(|c| &c.layers),
        };
        // Collected (owned) first, as the attached artifacts' blobs below.
        let sent: std::collections::HashSet<&Digest> =
            prepared.uploaded.iter().map(|(d, _, _)| d).collect();
        let unsent: Vec<Descriptor> = plan
            .iter()
            .flat_map(|p| p.blobs.iter())
            .filter(|d| !sent.contains(&d.digest))
            .cloned()
            .collect();
        let mut outcomes = prepared.uploaded.clone();
        outcomes.extend(
            blobs::copy_these(
                admission,
                self.src,
                self.dst,
                &source,
                destination,
                unsent.iter(),
                self.options,
            )
            .await?,
        );
        // Collected (owned) first: an iterator of closures over the borrowed artifacts would
        // make the copy's future fail to be Send for every lifetime (a sync spawns copies).
        let attached_blobs: Vec<Descriptor> = routed
            .per_manifest
            .iter()
            .flat_map(|(_, artifacts)| artifacts.iter().flat_map(|a| a.blobs.iter().cloned()))
            .collect();
        outcomes.extend(
            blobs::copy_these(
                admission,
                self.src,
                self.dst,
                image.source(),
                destination,
                attached_blobs.iter(),
                self.options,
            )
            .await?,
        );
        let blobs_seconds = started.elapsed().as_secs_f64();

        self.options
            .emit(ProgressEvent::Phase("writing manifest".into()));
        // Manifests and signatures do not wait on each other: a signature names its manifest
        // by digest, so a reader finds it whether it was written before or after the manifest.
        // Among the manifests, order matters to readers: the instances (at once) come before
        // the list that names them, the top level last.
        let dest_err = self.dest_err();
        let manifests =
            async {
                let (top, instances) = match plan.split_last() {
                    Some((top, instances)) => (Some(top), instances),
                    None => (None, &[][..]),
                };
                futures::future::try_join_all(instances.iter().map(|p| {
                    destination.put_manifest(admission, &p.raw, p.dest_instance.as_ref())
                }))
                .await?;
                if let Some(p) = top {
                    destination
                        .put_manifest(admission, &p.raw, p.dest_instance.as_ref())
                        .await?;
                }
                Ok::<_, TransportError>(())
            };
        let signatures = futures::future::try_join_all(plan.iter().zip(&routed.per_manifest).map(
            |(p, (sigs, attached))| async move {
                if !sigs.is_empty() {
                    destination
                        .put_signatures(admission, &p.digest, p.dest_instance.as_ref(), sigs)
                        .await?;
                }
                if !attached.is_empty() {
                    let refs: Vec<&Attached> = attached.iter().collect();
                    destination
                        .put_attached(admission, &p.digest, p.dest_instance.as_ref(), &refs)
                        .await?;
                }
                Ok::<_, TransportError>(
                    sigs.len()
                        + attached
                            .iter()
                            .filter(|a| a.kind == AttachedKind::Signature)
                            .map(|a| a.slots.len())
                            .sum::<usize>(),
                )
            },
        ));
        let (written, counts) = futures::future::join(manifests, signatures).await;
        written.map_err(&dest_err)?;
        for (p, count) in plan.iter().zip(counts.map_err(&dest_err)?) {
            if count > 0 {
                self.options.emit(ProgressEvent::SignaturesWritten {
                    digest: p.digest.clone(),
                    count,
                });
            }
        }
        Ok(Written {
            blobs: outcomes,
            blobs_seconds,
        })
    }

    /// Step 6: the store's records of the verdict, the commit that makes everything visible at
    /// once, and the report.
    pub(super) async fn commit(
        self,
        image: AdmittedImage,
        prepared: Prepared,
        routed: Routed,
        written: Written,
    ) -> Result<report::Report, CopyError> {
        let plan = prepared.plan(&image);
        let pulled_from = image.pulled_from();
        let made = prepared.conversion.as_ref();
        let converted_from: Vec<Option<Digest>> = match &prepared.conversion {
            Some(c) => c.from.clone(),
            None => vec![None; plan.len()],
        };
        let manifests: Vec<ManifestReport> = plan
            .iter()
            .zip(&image.slots)
            .zip(image.judgements())
            .zip(prepared.to_write.iter().zip(&routed.per_manifest))
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
                    attached: attached.iter().map(attached_report).collect(),
                    blobs: p
                        .blobs
                        .iter()
                        .map(|d| blob_report(d, p, &written.blobs, made, &pulled_from))
                        .collect(),
                    converted_from,
                },
            )
            .collect();

        let admission = image.admission();
        let gate = &self.options.gate;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        for m in &manifests {
            let record = Record {
                version: RECORD_VERSION,
                time: now.clone(),
                source: self.src.to_string(),
                destination: self.dst.to_string(),
                mode: gate.mode,
                policy: Some(gate.policy.origin().to_string()),
                policy_digest: Some(gate.policy.digest().to_string()),
                manifest: m.clone(),
                warnings: self.warnings.clone(),
            };
            routed
                .destination
                .put_record(admission, &m.digest, &record)
                .await
                .map_err(self.dest_err())?;
        }
        routed
            .destination
            .commit(admission)
            .await
            .map_err(self.dest_err())?;

        let total = self.started.elapsed().as_secs_f64();
        Ok(report::Report {
            version: report::REPORT_VERSION,
            source: self.src.to_string(),
            destination: self.dst.to_string(),
            mode: gate.mode,
            manifest_digest: manifests
                .last()
                .map(|m| m.digest.clone())
                .unwrap_or_else(|| Digest::sha256_of(b"")),
            manifests,
            warnings: self.warnings,
            bytes_copied: written.blobs.iter().map(|o| o.2).sum(),
            pulled_from,
            timings: report::Timings {
                total,
                gate: image.gate_seconds,
                blobs: written.blobs_seconds,
            },
        })
    }
}

/// The kind of signature a signature blob is written as: a sigstore bundle goes where attached
/// artifacts go when the destination keeps them (`native`), so it needs no signature storage.
fn goes_as(signature: &[u8], native: bool) -> Option<Format> {
    match sniff::sniff(signature) {
        Ok((Format::SigstoreJson, json)) if native => {
            let bundle = SigstoreSignature::from_json(json)
                .is_ok_and(|g| is_bundle_media_type(&g.mime_type));
            (!bundle).then_some(Format::SigstoreJson)
        }
        Ok((f, _)) => Some(f),
        Err(_) => None,
    }
}

fn attached_report(a: &Attached) -> AttachedReport {
    AttachedReport {
        digest: a.digest.clone(),
        kind: a.kind.to_string(),
        artifact_type: a.artifact_type.clone(),
        via: match &a.via {
            Via::Referrer => "referrer".to_string(),
            Via::Tag(t) => t.clone(),
        },
        slots: a.slots.clone(),
    }
}

fn blob_report(
    d: &Descriptor,
    p: &Planned,
    outcomes: &[BlobOutcome],
    conversion: Option<&Conversion>,
    pulled_from: &Option<String>,
) -> BlobReport {
    let recompressed = conversion.and_then(|c| c.layers.get(&d.digest));
    let action = outcomes
        .iter()
        .find(|o| o.0 == d.digest)
        .map(|o| o.1)
        .unwrap_or(BlobAction::Copied);
    let from = match (action, recompressed) {
        (_, Some(l)) => Some(format!(
            "recompressed from {} ({})",
            l.source.digest, l.source.media_type
        )),
        (BlobAction::Reused, None) => None,
        (BlobAction::Copied, None)
            if conversion.is_some_and(|c| c.made.contains_key(&d.digest)) =>
        {
            Some(format!("made by the conversion to {}", p.media_type))
        }
        (BlobAction::Copied, None) => pulled_from.clone(),
    };
    BlobReport {
        digest: d.digest.clone(),
        size: d.size,
        media_type: d.media_type.clone(),
        action,
        from,
        converted_from: recompressed.map(|l| l.source.digest.clone()),
    }
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
