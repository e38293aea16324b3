//! Format conversion in a copy (`--format oci|v2s2`): the manifests the destination gets when
//! they must be in the other format.
//!
//! The gate always judges the SOURCE manifests: the signatures it read sign those digests. A
//! converted manifest has a new digest, so no source signature can be kept with it; a copy
//! converts only when none is kept (the mode keeps no signature of that manifest, as with
//! remove-signatures or an unsigned image), and signs the converted manifest itself when asked
//! to (`--sign-by`: the new signatures are made over the new digest). Otherwise the copy is
//! refused before anything is written at the destination ([`CopyError::FormatChange`]). The
//! report and the store's record name both digests: `digest` is what was written,
//! `converted_from` the source manifest the verdict is about.
//!
//! Lists: a copy of one platform converts that image; `--all` converts every image, then the
//! list (Docker manifest list ↔ OCI index) naming the converted images' digests. Each manifest
//! is judged as the source has it, before anything is converted.

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::plan::Planned;
use super::recompress::MadeLayer;
use super::signatures::ToWrite;
use super::{CopyError, ManifestFormat};
use crate::digest::{ByteStream, Digest, VerifyingStream};
use crate::manifest::{self, Descriptor, Manifest, ManifestKind, convert};
use crate::policy::ManifestRole;
use crate::reference::ImageReference;
use crate::transport::{ImageSource, RawManifest, Result as TransportResult, SignatureSet};

/// What a copy writes after a format conversion.
#[derive(Debug)]
pub struct Conversion {
    /// The manifests to write, in plan order.
    pub plan: Vec<Planned>,
    /// For each, the source manifest's digest when the conversion changed it.
    pub from: Vec<Option<Digest>>,
    /// Blobs the conversion made (an OCI config made from a Docker one), by digest.
    pub made: HashMap<Digest, Bytes>,
    /// Layers a recompression made, by their new digest (`recompress.rs`).
    pub layers: HashMap<Digest, MadeLayer>,
}

/// The manifests of `plan` in format `want`, or `None` when every one already is.
pub async fn convert(
    src: &ImageReference,
    source: &dyn ImageSource,
    plan: &[Planned],
    want: Option<ManifestFormat>,
) -> Result<Option<Conversion>, CopyError> {
    let Some(want) = want else {
        return Ok(None);
    };
    let mut kinds = Vec::with_capacity(plan.len());
    for p in plan {
        kinds.push(
            manifest::detect(&p.raw.bytes, p.raw.media_type.as_deref()).map_err(|source| {
                CopyError::Manifest {
                    what: format!("manifest {}", p.digest),
                    source,
                }
            })?,
        );
    }
    if kinds.iter().all(|k| want.accepts(*k)) {
        return Ok(None);
    }
    let mut out = Conversion {
        plan: Vec::with_capacity(plan.len()),
        from: Vec::with_capacity(plan.len()),
        made: HashMap::new(),
        layers: HashMap::new(),
    };
    for (p, kind) in plan.iter().zip(kinds) {
        let fail = |reason: String| CopyError::Conversion {
            reference: src.to_string(),
            digest: p.digest.clone(),
            wanted: want,
            reason,
        };
        if p.role == ManifestRole::List || kind.is_list() {
            // Every instance is earlier in the plan (copied with --all): the list names their
            // converted digests, and is itself in the format asked for.
            let updates: std::collections::BTreeMap<Digest, convert::InstanceUpdate> = plan
                .iter()
                .zip(&out.plan)
                .filter(|(old, new)| old.digest != new.digest)
                .map(|(old, new)| {
                    (
                        old.digest.clone(),
                        convert::InstanceUpdate {
                            digest: new.digest.clone(),
                            size: new.raw.bytes.len() as u64,
                            media_type: new.media_type.clone(),
                        },
                    )
                })
                .collect();
            if want.accepts(kind) && updates.is_empty() {
                out.plan.push(p.clone());
                out.from.push(None);
                continue;
            }
            let converted = convert::list_to(&p.raw.bytes, want == ManifestFormat::Oci, &updates)
                .map_err(|e| fail(e.to_string()))?;
            // A list is the top manifest: it has no instance digest of its own.
            out.plan.push(converted_plan(p, converted, vec![], false));
            out.from.push(Some(p.digest.clone()));
            continue;
        }
        if want.accepts(kind) {
            out.plan.push(p.clone());
            out.from.push(None);
            continue;
        }
        let converted = match (kind, want) {
            (ManifestKind::OciManifest, ManifestFormat::V2s2) => {
                convert::oci_to_docker(&p.raw.bytes).map_err(|e| fail(e.to_string()))?
            }
            (ManifestKind::DockerV2S2, ManifestFormat::Oci) => {
                let img = match manifest::parse(&p.raw.bytes, p.raw.media_type.as_deref()) {
                    Ok(Manifest::Image(_, img)) => img,
                    Ok(Manifest::List(..)) => return Err(fail("it is a list".into())),
                    Err(e) => return Err(fail(e.to_string())),
                };
                let config = read_config(source, &img.config).await?;
                convert::docker_to_oci(&p.raw.bytes, &config).map_err(|e| fail(e.to_string()))?
            }
            (other, _) => {
                return Err(fail(format!(
                    "ferry converts only between OCI and Docker schema 2 images, not from {}",
                    other.media_type()
                )));
            }
        };
        if let Some((d, bytes)) = &converted.new_config {
            out.made
                .insert(d.digest.clone(), Bytes::from(bytes.clone()));
        }
        let blobs = match manifest::parse(&converted.manifest, Some(converted.media_type)) {
            Ok(Manifest::Image(_, img)) => img.blobs().into_iter().cloned().collect(),
            Ok(Manifest::List(..)) => vec![],
            Err(e) => return Err(fail(e.to_string())),
        };
        let instance = p.dest_instance.is_some();
        out.plan.push(converted_plan(p, converted, blobs, instance));
        out.from.push(Some(p.digest.clone()));
    }
    Ok(Some(out))
}

/// The plan of `p` after conversion: the converted bytes, media type and digest, with `blobs`;
/// as an instance of a list (`instance`), named by its new digest.
pub(super) fn converted_plan(
    p: &Planned,
    converted: convert::Converted,
    blobs: Vec<Descriptor>,
    instance: bool,
) -> Planned {
    let digest = Digest::sha256_of(&converted.manifest);
    Planned {
        raw: RawManifest {
            bytes: Bytes::from(converted.manifest),
            media_type: Some(converted.media_type.to_string()),
        },
        media_type: converted.media_type.to_string(),
        dest_instance: instance.then(|| digest.clone()),
        src_instance: p.src_instance.clone(),
        platform: p.platform.clone(),
        blobs,
        role: p.role,
        digest,
    }
}

/// Refuses a conversion that would keep a source signature: it signs the source manifest's
/// digest, which the destination would not have.
pub fn check_signatures(
    src: &ImageReference,
    conversion: &Conversion,
    to_write: &[ToWrite],
    wanted: ManifestFormat,
) -> Result<(), CopyError> {
    match broken_by(conversion, to_write) {
        Some((p, from, kept)) => Err(CopyError::FormatChange {
            reference: src.to_string(),
            digest: from.clone(),
            media_type: p.media_type.clone(),
            wanted,
            signatures: kept,
        }),
        None => Ok(()),
    }
}

/// The first manifest the conversion changed while the copy keeps source signatures of it
/// (or attached artifacts, which name the source manifest as their subject and would point at
/// nothing the destination has): the new manifest, the source's digest, how many are kept.
pub(super) fn broken_by<'c>(
    conversion: &'c Conversion,
    to_write: &[ToWrite],
) -> Option<(&'c Planned, &'c Digest, usize)> {
    conversion
        .plan
        .iter()
        .zip(&conversion.from)
        .zip(to_write)
        .find_map(|((p, from), w)| {
            let kept = w.kept_from_source();
            match from {
                Some(from) if kept > 0 => Some((p, from, kept)),
                _ => None,
            }
        })
}

/// Reads a config blob (at most containers/image's config limit), verified.
pub(super) async fn read_config(
    source: &dyn ImageSource,
    d: &Descriptor,
) -> Result<Vec<u8>, CopyError> {
    let err = |source| CopyError::Source {
        reference: source_name(d),
        source,
    };
    if d.size > crate::limits::MAX_CONFIG_BLOB {
        return Err(CopyError::Manifest {
            what: format!("config blob {}", d.digest),
            source: crate::manifest::ManifestError::Unknown(format!(
                "it claims {} bytes, more than the {}-byte limit for a config",
                d.size,
                crate::limits::MAX_CONFIG_BLOB
            )),
        });
    }
    let stream = source.blob(d).await.map_err(err)?;
    let mut verified = VerifyingStream::new(stream, d.digest.clone(), Some(d.size));
    let mut out = Vec::new();
    while let Some(chunk) = verified.next().await {
        out.extend_from_slice(
            &chunk.map_err(|e| err(crate::transport::TransportError::source_stream(e)))?,
        );
    }
    Ok(out)
}

fn source_name(d: &Descriptor) -> String {
    format!("config blob {}", d.digest)
}

/// The source, serving also the blobs a conversion made.
pub struct WithMadeBlobs<'a> {
    /// The source.
    pub inner: &'a dyn ImageSource,
    /// The blobs made, by digest.
    pub made: &'a HashMap<Digest, Bytes>,
    /// The layers a recompression made, by digest.
    pub layers: Option<&'a HashMap<Digest, MadeLayer>>,
}

#[async_trait]
impl ImageSource for WithMadeBlobs<'_> {
    fn reference(&self) -> &ImageReference {
        self.inner.reference()
    }

    async fn manifest(&self, instance: Option<&Digest>) -> TransportResult<RawManifest> {
        self.inner.manifest(instance).await
    }

    async fn blob(&self, descriptor: &Descriptor) -> TransportResult<ByteStream> {
        if let Some(bytes) = self.made.get(&descriptor.digest) {
            let b = bytes.clone();
            return Ok(Box::pin(futures::stream::once(async move { Ok(b) })));
        }
        if let Some(layer) = self.layers.and_then(|l| l.get(&descriptor.digest)) {
            return layer.stream(self.inner, &descriptor.digest).await;
        }
        self.inner.blob(descriptor).await
    }

    async fn signatures(
        &self,
        manifest_digest: &Digest,
        instance: Option<&Digest>,
    ) -> TransportResult<SignatureSet> {
        self.inner.signatures(manifest_digest, instance).await
    }

    fn blob_was_hashed_when_made(&self, descriptor: &Descriptor) -> bool {
        // A made layer's digest is the hash of the bytes its stream gives: computed as the spool
        // was written, or checked by the stream itself when the layer is recompressed again.
        self.layers
            .is_some_and(|l| l.contains_key(&descriptor.digest))
            || self.inner.blob_was_hashed_when_made(descriptor)
    }

    fn pulled_from(&self) -> Option<String> {
        self.inner.pulled_from()
    }
}
