//! Layer recompression in a copy (skopeo's `--dest-compress-format`, `--dest-compress-level`,
//! `--dest-compress`, `--dest-decompress`, and `--force-compression`): a format conversion of
//! the layers, after the gate and once the destination is open (nothing there is visible before
//! the commit).
//!
//! A recompressed layer is a new blob with a new digest, so its image gets a new manifest (the
//! config, and so the diff_ids, unchanged; a Docker image that must hold zstd layers becomes an
//! OCI image first, as containers/image does it). The rules of [`super::convert`] apply: the
//! gate judged the source's manifests, no source signature can be kept with a changed one, and
//! `--sign-by` signs the new manifest. The report names each source layer beside the layer it
//! became.
//!
//! Each layer is read once from the source (verified against its digest), decompressed,
//! checked against the config's diff_id and compressed again into a temporary file (the new
//! manifest, and its signature, need every layer's digest); several layers at once, each in
//! its own blocking threads, memory bounded by a few buffers per layer. Each spooled layer goes
//! to the destination as soon as it is complete ([`Uploads`]), while the others are still
//! converted: the destination's work overlaps the conversion instead of following it. Nothing
//! becomes visible there before the copy commits, so a failure to sign the new manifest still
//! leaves nothing behind.
//!
//! A [`ConversionCache`] makes the second copy cheap: a layer recompressed before with the same
//! settings is not recompressed to build the manifest; the destination is asked for the blob
//! the cache names, and only when it lacks it is the layer recompressed again, as it streams to
//! the destination, checked against the digest the cache promised.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::blobs::{self, BlobOutcome};
use super::convert::{self, Conversion};
use super::plan::Planned;
use super::signatures::ToWrite;
use super::{CopyError, CopyOptions, ManifestFormat, ProgressEvent};
use crate::compression::{
    CachedLayer, CompressionError, ConversionCache, OutputFormat, OutputSpec, Transform,
    transform_stream, transform_stream_into,
};
use crate::digest::{ByteStream, Digest, VerifyingStream};
use crate::manifest::{self, Descriptor, Manifest, ManifestKind, convert as formats};
use crate::policy::{Admission, ManifestRole};
use crate::reference::ImageReference;
use crate::transport::{ImageDestination, ImageSource, Result as TransportResult, TransportError};

/// Layers at least this large going to plain zstd use libzstd's worker threads when cores
/// would otherwise be idle (see [`zstd_threads`]).
const THREADED_LAYER_SIZE: u64 = 32 * 1024 * 1024;

/// libzstd worker threads for one layer (0: compress in the layer's own thread).
///
/// A layer in flight keeps a thread busy compressing, and a second one decompressing when its
/// input is compressed; `in_flight` layers are converted at once. Cores beyond those are idle,
/// and a large layer going to plain zstd gets them as libzstd's workers (one more than idle, as
/// the layer's own thread then only feeds them). Where no core is idle the workers would only
/// cost CPU (libzstd's multi-threaded mode spends about 1.8x the CPU of the single-threaded one
/// here), so they are not used. The choice depends only on the machine's cores and the copy's
/// layers, never on timing, so the same copy gives the same bytes; and libzstd's output is the
/// same for any number of workers from 1 up (not for 0), so the cache records only whether they
/// were used.
fn zstd_threads(
    format: OutputFormat,
    layer_size: u64,
    compressed: bool,
    cores: usize,
    in_flight: usize,
) -> u32 {
    let busy = in_flight.saturating_mul(if compressed { 2 } else { 1 });
    if format != OutputFormat::Zstd || layer_size < THREADED_LAYER_SIZE || busy >= cores {
        return 0;
    }
    u32::try_from(cores - busy + 1).unwrap_or(u32::MAX)
}

/// How a copy compresses the layers it writes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LayerCompression {
    /// The format, level and threads to write (`Uncompressed`: `--dest-decompress`).
    pub output: OutputSpec,
    /// Convert only the layers that are uncompressed (`--dest-compress` alone); otherwise every
    /// layer not already in `output.format` is converted.
    pub only_uncompressed: bool,
    /// Recompress layers already in `output.format` too (`--force-compression`): a new level,
    /// or a zstd:chunked layer made again.
    pub force: bool,
    /// What earlier recompressions gave, so a second copy does not recompress.
    pub cache: Option<Arc<ConversionCache>>,
    /// Where recompressed layers wait for the upload (containers/image uses `$TMPDIR` or
    /// `/var/tmp` too).
    pub spool_dir: PathBuf,
}

impl LayerCompression {
    /// Every layer not in `output.format` converted to it, with no cache, spooled in `/var/tmp`.
    pub fn new(output: OutputSpec) -> LayerCompression {
        LayerCompression {
            output,
            only_uncompressed: false,
            force: false,
            cache: None,
            spool_dir: PathBuf::from(crate::tarfile::DEFAULT_TEMP_DIR),
        }
    }

    /// Whether a layer now in `current` is converted.
    fn converts(&self, current: OutputFormat) -> bool {
        let want = self.output.format;
        if want == OutputFormat::Uncompressed && current == OutputFormat::Uncompressed {
            return false;
        }
        if self.only_uncompressed {
            return current == OutputFormat::Uncompressed;
        }
        self.force || current != want
    }

    /// Whether `written` is what a copy with this compression makes of `source` (a sync's
    /// incremental check): the same config (so the same diff_ids, layer for layer) and no layer
    /// left that this compression would convert. Never with `force`, which converts every
    /// layer again.
    pub(crate) fn already_applied(
        &self,
        source: &crate::manifest::ImageManifest,
        written: &crate::manifest::ImageManifest,
    ) -> bool {
        !self.force
            && source.config.digest == written.config.digest
            && source.layers.len() == written.layers.len()
            && source.layers.iter().zip(&written.layers).all(|(s, w)| {
                s.digest == w.digest || layer_format(w).is_some_and(|f| !self.converts(f))
            })
    }

    /// The manifest format a copy must write: zstd layers have no Docker form, so a copy that
    /// writes them makes OCI manifests unless told otherwise (as containers/image does).
    pub fn manifest_format(&self, asked: Option<ManifestFormat>) -> Option<ManifestFormat> {
        match asked {
            None if self.output.format.docker_layer_media_type().is_none() => {
                Some(ManifestFormat::Oci)
            }
            other => other,
        }
    }
}

/// The annotation prefixes of zstd:chunked layers: containers/storage's current keys, and the
/// older ones skopeo 1.9.3 writes.
const CHUNKED_PREFIXES: [&str; 2] = [
    "io.github.containers.zstd-chunked.",
    "io.containers.zstd-chunked.",
];

fn is_chunked_key(key: &str) -> bool {
    CHUNKED_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// What a layer is now, or `None` for one that is not converted whatever is asked: a foreign
/// (non-distributable) layer, an encrypted one, or a type ferry does not know.
fn layer_format(l: &Descriptor) -> Option<OutputFormat> {
    let foreign = l.urls.as_ref().is_some_and(|u| !u.is_empty())
        || l.media_type.contains("nondistributable")
        || l.media_type.contains("foreign");
    if foreign {
        return None;
    }
    match OutputFormat::of_layer(&l.media_type, l.annotations.as_ref())? {
        OutputFormat::Zstd
            if l.annotations
                .as_ref()
                .is_some_and(|a| a.keys().any(|k| is_chunked_key(k))) =>
        {
            Some(OutputFormat::ZstdChunked)
        }
        f => Some(f),
    }
}

/// Where a converted layer's bytes come from when the destination does not have it.
#[derive(Debug)]
enum LayerBytes {
    /// Recompressed in this copy, waiting in a temporary file (removed when dropped).
    Spooled(Arc<tempfile::NamedTempFile>),
    /// Known from the cache: recompressed again as it streams, and checked against it.
    Again {
        transform: Transform,
        cache: Arc<ConversionCache>,
        cached_spec: OutputSpec,
    },
}

/// A layer the recompression made: the source layer it came from, and its bytes.
#[derive(Debug)]
pub struct MadeLayer {
    /// The source layer.
    pub source: Descriptor,
    bytes: LayerBytes,
}

impl MadeLayer {
    /// The converted layer's bytes: the spooled file, or the source's layer recompressed again.
    pub async fn stream(
        &self,
        source: &dyn ImageSource,
        digest: &Digest,
    ) -> TransportResult<ByteStream> {
        match &self.bytes {
            LayerBytes::Spooled(file) => {
                let f = std::fs::File::open(file.path()).map_err(TransportError::source_stream)?;
                Ok(read_spool(f))
            }
            LayerBytes::Again {
                transform,
                cache,
                cached_spec,
            } => {
                let raw = source.blob(&self.source).await?;
                let verified: ByteStream = Box::pin(VerifyingStream::new(
                    raw,
                    self.source.digest.clone(),
                    Some(self.source.size),
                ));
                let (out, _report) = transform_stream(verified, transform.clone());
                // The cache promised these bytes; if they differ, its entry is wrong (another
                // ferry or libzstd made it): forget it and say so, naming the layer.
                let (cache, spec, layer, promised) = (
                    cache.clone(),
                    *cached_spec,
                    self.source.digest.clone(),
                    digest.clone(),
                );
                let checked = VerifyingStream::new(out, digest.clone(), None).map(move |item| {
                    item.map_err(|e| {
                        if crate::digest::verify_error(&e).is_none() {
                            return e;
                        }
                        let _ = cache.forget(&layer, &spec);
                        std::io::Error::other(format!(
                            "layer {layer}: recompressing it again did not give {promised}, which the cache of earlier recompressions promised (written by another version of ferry or libzstd?); the entry is forgotten, so copying again recompresses it anew"
                        ))
                    })
                });
                Ok(Box::pin(checked))
            }
        }
    }
}

/// Chunks of the spool file read into the chunks themselves.
const SPOOL_CHUNK: u64 = 512 * 1024;

/// The spool file as a stream, read by one blocking thread straight into each chunk (a tokio
/// file reads into a buffer of its own, then copies), a few chunks ahead of the upload.
fn read_spool(mut file: std::fs::File) -> ByteStream {
    use std::io::Read as _;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut chunk = Vec::with_capacity(SPOOL_CHUNK as usize);
            match (&mut file).take(SPOOL_CHUNK).read_to_end(&mut chunk) {
                Ok(0) => break,
                Ok(_) => {
                    if tx.blocking_send(Ok(chunk.into())).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// One layer to convert: the source's descriptor, the diff_id its image's config lists, and
/// the kind of the first manifest that names it (which decides the new layer's media type).
struct Job {
    layer: Descriptor,
    diff_id: Digest,
    kind: ManifestKind,
}

/// Where each recompressed layer goes as soon as it is spooled: the copy's destination, opened
/// before the conversion. Its blob step then skips the layers uploaded here.
pub struct Uploads<'a> {
    /// The gate's proof, which every write to a destination takes.
    pub admission: &'a Admission,
    /// The destination's reference, for errors.
    pub dst: &'a ImageReference,
    /// The destination, not yet committed.
    pub destination: &'a dyn ImageDestination,
}

/// One layer converted: the source's descriptor, the new layer, where its bytes are, and the
/// kind of manifest its descriptor is first written for.
struct Done {
    source: Descriptor,
    new: CachedLayer,
    bytes: LayerBytes,
    kind: ManifestKind,
}

/// An image manifest whose layers change.
struct Changing {
    index: usize,
    kind: ManifestKind,
    image: Box<crate::manifest::ImageManifest>,
}

/// Recompresses the layers of the images in `conversion` (the format conversion's plan, or the
/// source's `original` plan) as `options.compression` asks, returning the conversion with the
/// new manifests and the layers it made (`conversion` as it was when nothing changes), and what
/// became of the layers already sent to `uploads`. `kept` is, per manifest of the plan, how many
/// source signatures and attached artifacts the copy keeps of it
/// ([`super::signatures::kept_from_source`]): a manifest that changes may keep none, which is
/// checked before any layer is converted or sent.
pub async fn recompress(
    src: &ImageReference,
    source: &dyn ImageSource,
    original: &[Planned],
    conversion: Option<Conversion>,
    options: &CopyOptions,
    kept: &[usize],
    uploads: &Uploads<'_>,
) -> Result<(Option<Conversion>, Vec<BlobOutcome>), CopyError> {
    let Some(want) = &options.compression else {
        return Ok((conversion, Vec::new()));
    };
    let had_conversion = conversion.is_some();
    let mut conv = conversion.unwrap_or_else(|| Conversion {
        plan: original.to_vec(),
        from: vec![None; original.len()],
        made: HashMap::new(),
        layers: HashMap::new(),
    });
    let mut changing = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    for (index, p) in conv.plan.iter().enumerate() {
        if p.role == ManifestRole::List {
            continue;
        }
        let Ok(Manifest::Image(kind, image)) =
            manifest::parse(&p.raw.bytes, p.raw.media_type.as_deref())
        else {
            continue;
        };
        let is_image_config = image.config.media_type == formats::OCI_CONFIG
            || image.config.media_type == formats::DOCKER_CONFIG;
        let convertible: Vec<usize> = image
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| layer_format(l).is_some_and(|f| want.converts(f)))
            .map(|(i, _)| i)
            .collect();
        if convertible.is_empty() || !is_image_config {
            continue;
        }
        if kind == ManifestKind::DockerV2S2
            && want.output.format.docker_layer_media_type().is_none()
        {
            return Err(CopyError::Conversion {
                reference: src.to_string(),
                digest: p.digest.clone(),
                wanted: ManifestFormat::V2s2,
                reason: format!(
                    "its layers would be {}, and Docker schema 2 images have no zstd layers; leave out --format v2s2 (ferry then writes an OCI image)",
                    want.output.format
                ),
            });
        }
        let config = match conv.made.get(&image.config.digest) {
            Some(bytes) => bytes.to_vec(),
            None => convert::read_config(source, &image.config).await?,
        };
        let diff_ids = diff_ids(&config).map_err(|why| CopyError::Manifest {
            what: format!(
                "config blob {} of manifest {}",
                image.config.digest, p.digest
            ),
            source: crate::manifest::ManifestError::Unknown(why),
        })?;
        if diff_ids.len() != image.layers.len() {
            return Err(CopyError::Manifest {
                what: format!("manifest {}", p.digest),
                source: crate::manifest::ManifestError::Unknown(format!(
                    "it has {} layers, but its config {} lists {} diff_ids",
                    image.layers.len(),
                    image.config.digest,
                    diff_ids.len()
                )),
            });
        }
        for i in convertible {
            if let (Some(layer), Some(diff_id)) = (image.layers.get(i), diff_ids.get(i))
                && !jobs.iter().any(|j| j.layer.digest == layer.digest)
            {
                jobs.push(Job {
                    layer: layer.clone(),
                    diff_id: diff_id.clone(),
                    kind,
                });
            }
        }
        changing.push(Changing { index, kind, image });
    }
    if jobs.is_empty() {
        return Ok((had_conversion.then_some(conv), Vec::new()));
    }
    // Every image with a converted layer changes, and so does every list (it names them).
    let broken = conv.plan.iter().enumerate().find_map(|(i, p)| {
        let changes = p.role == ManifestRole::List || changing.iter().any(|c| c.index == i);
        let n = kept.get(i).copied().unwrap_or(0);
        // Named as the source has it (the gate judged that digest).
        let from = original.get(i).unwrap_or(p);
        (changes && n > 0).then(|| (from.digest.clone(), n))
    });
    if let Some((digest, signatures)) = broken {
        return Err(CopyError::Recompression {
            reference: src.to_string(),
            digest,
            format: want.output.format.to_string(),
            signatures,
        });
    }

    options.emit(ProgressEvent::Phase(format!(
        "recompressing {} layer(s) to {}",
        jobs.len(),
        want.output.format
    )));
    let (made, uploaded) = run_jobs(src, source, jobs, want, options, uploads).await?;
    if let Some(cache) = &want.cache {
        let fresh = made
            .iter()
            .filter(|(_, done)| matches!(done.bytes, LayerBytes::Spooled(_)))
            .map(|(from, done)| (from.clone(), want.output, done.new.clone()));
        if let Err(e) = cache.insert_all(fresh.collect::<Vec<_>>()) {
            let path = cache
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            options.emit(ProgressEvent::Warning(format!(
                "the cache of recompressed layers {path} could not be written ({e}): a second copy of this image will recompress it again"
            )));
        }
    }

    // The new manifests, and what each list must now name.
    let mut updates: BTreeMap<Digest, formats::InstanceUpdate> = BTreeMap::new();
    for c in changing {
        let Some(p) = conv.plan.get(c.index) else {
            continue;
        };
        let layers: Vec<Descriptor> = c
            .image
            .layers
            .iter()
            .map(|l| match made.get(&l.digest) {
                Some(done) => converted_descriptor(l, &done.new, want.output.format, c.kind),
                None => l.clone(),
            })
            .collect();
        let fail = |reason: String| CopyError::Manifest {
            what: format!("manifest {} with recompressed layers", p.digest),
            source: crate::manifest::ManifestError::Unknown(reason),
        };
        let (bytes, media_type) = match c.kind {
            ManifestKind::DockerV2S2 => (
                formats::docker_image_manifest(&c.image.config, &layers)
                    .map_err(|e| fail(e.to_string()))?,
                manifest::DOCKER_V2S2,
            ),
            _ => (
                oci_image_manifest(&p.raw.bytes, &layers).map_err(fail)?,
                manifest::OCI_MANIFEST,
            ),
        };
        let mut blobs = layers.clone();
        blobs.push(c.image.config.clone());
        let new = convert::converted_plan(
            p,
            formats::Converted {
                manifest: bytes,
                media_type,
                new_config: None,
            },
            blobs,
            p.dest_instance.is_some(),
        );
        updates.insert(
            p.digest.clone(),
            formats::InstanceUpdate {
                digest: new.digest.clone(),
                size: new.raw.bytes.len() as u64,
                media_type: new.media_type.clone(),
            },
        );
        if let (Some(slot), Some(from)) = (conv.plan.get_mut(c.index), conv.from.get_mut(c.index)) {
            *slot = new;
            if from.is_none() {
                *from = original.get(c.index).map(|o| o.digest.clone());
            }
        }
    }
    for done in made.into_values() {
        conv.layers.insert(
            done.new.digest.clone(),
            MadeLayer {
                source: done.source,
                bytes: done.bytes,
            },
        );
    }
    for (index, p) in conv.plan.clone().iter().enumerate() {
        if p.role != ManifestRole::List {
            continue;
        }
        let to_oci = p.media_type == manifest::OCI_INDEX;
        let list =
            formats::list_to(&p.raw.bytes, to_oci, &updates).map_err(|e| CopyError::Manifest {
                what: format!("list {} naming recompressed images", p.digest),
                source: crate::manifest::ManifestError::Unknown(e.to_string()),
            })?;
        if let (Some(slot), Some(from)) = (conv.plan.get_mut(index), conv.from.get_mut(index)) {
            *slot = convert::converted_plan(p, list, vec![], false);
            if from.is_none() {
                *from = original.get(index).map(|o| o.digest.clone());
            }
        }
    }
    Ok((Some(conv), uploaded))
}

/// The config's `rootfs.diff_ids`.
fn diff_ids(config: &[u8]) -> Result<Vec<Digest>, String> {
    #[derive(Deserialize)]
    struct Config {
        rootfs: RootFs,
    }
    #[derive(Deserialize)]
    struct RootFs {
        #[serde(default)]
        diff_ids: Vec<Digest>,
    }
    serde_json::from_slice::<Config>(config)
        .map(|c| c.rootfs.diff_ids)
        .map_err(|e| format!("reading its rootfs.diff_ids: {e}"))
}

/// The descriptor of the layer `old` became: the new digest, size and media type; its
/// annotations less any zstd:chunked ones, plus the new layer's.
fn converted_descriptor(
    old: &Descriptor,
    new: &CachedLayer,
    format: OutputFormat,
    kind: ManifestKind,
) -> Descriptor {
    let media_type = match kind {
        ManifestKind::DockerV2S2 => format.docker_layer_media_type(),
        _ => None,
    }
    .unwrap_or(format.oci_layer_media_type());
    let mut annotations = old.annotations.clone().unwrap_or_default();
    annotations.retain(|k, _| !is_chunked_key(k));
    annotations.extend(new.annotations.clone());
    Descriptor {
        media_type: media_type.to_string(),
        digest: new.digest.clone(),
        size: new.size,
        urls: None,
        annotations: (!annotations.is_empty()).then_some(annotations),
        platform: None,
    }
}

/// An OCI image manifest as containers/image's `manifest.OCI1` encodes it (image-spec's field
/// order), with `layers` in place of the source's; everything else kept.
fn oci_image_manifest(source: &[u8], layers: &[Descriptor]) -> Result<Vec<u8>, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        #[serde(default)]
        artifact_type: Option<String>,
        config: Descriptor,
        #[serde(default)]
        subject: Option<Descriptor>,
        #[serde(default)]
        annotations: Option<BTreeMap<String, String>>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Out<'a> {
        schema_version: u32,
        media_type: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        artifact_type: Option<&'a String>,
        config: &'a Descriptor,
        layers: &'a [Descriptor],
        #[serde(skip_serializing_if = "Option::is_none")]
        subject: Option<&'a Descriptor>,
        #[serde(skip_serializing_if = "Option::is_none")]
        annotations: Option<&'a BTreeMap<String, String>>,
    }
    let m: In = serde_json::from_slice(source).map_err(|e| e.to_string())?;
    formats::go_json(&Out {
        schema_version: 2,
        media_type: manifest::OCI_MANIFEST,
        artifact_type: m.artifact_type.as_ref(),
        config: &m.config,
        layers,
        subject: m.subject.as_ref(),
        annotations: m.annotations.as_ref().filter(|a| !a.is_empty()),
    })
    .map_err(|e| e.to_string())
}

/// Every job, several at once: a layer known to the cache costs nothing now; the others are
/// recompressed into temporary files, each sent to `uploads` as soon as it is complete. Keyed
/// by the source layer's digest; with the outcomes of the uploads.
async fn run_jobs(
    src: &ImageReference,
    source: &dyn ImageSource,
    jobs: Vec<Job>,
    want: &LayerCompression,
    options: &CopyOptions,
    uploads: &Uploads<'_>,
) -> Result<(HashMap<Digest, Done>, Vec<BlobOutcome>), CopyError> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let slots = options.parallel_blobs.clamp(1, cores.max(2));
    let in_flight = jobs.len().min(slots);
    // Made before they are streamed: a closure over references inside the stream's type makes
    // the copy's future fail to be Send (see blobs.rs).
    let work: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let compressed = layer_format(&job.layer) != Some(OutputFormat::Uncompressed);
            let threads = zstd_threads(
                want.output.format,
                job.layer.size,
                compressed,
                cores,
                in_flight,
            );
            one_job(
                src,
                source,
                job,
                want.output.with_threads(threads),
                want,
                options,
            )
        })
        .collect();
    let mut conversions = futures::stream::iter(work).buffer_unordered(slots);
    let mut sending = futures::stream::FuturesUnordered::new();
    let mut done = HashMap::new();
    let mut uploaded = Vec::new();
    loop {
        tokio::select! {
            next = conversions.next() => {
                let Some(result) = next else { break };
                let (digest, layer) = result?;
                if let LayerBytes::Spooled(file) = &layer.bytes {
                    sending.push(upload(uploads, src, source, &layer, file.clone(), want, options));
                }
                done.insert(digest, layer);
            }
            Some(sent) = sending.next(), if !sending.is_empty() => uploaded.extend(sent?),
        }
    }
    while let Some(sent) = sending.next().await {
        uploaded.extend(sent?);
    }
    Ok((done, uploaded))
}

/// Sends one spooled layer to the destination, as the blob step would (asking first whether
/// the destination has it), while the other layers are converted.
fn upload<'a>(
    to: &'a Uploads<'_>,
    src: &'a ImageReference,
    source: &'a dyn ImageSource,
    layer: &Done,
    file: Arc<tempfile::NamedTempFile>,
    want: &LayerCompression,
    options: &'a CopyOptions,
) -> impl std::future::Future<Output = Result<Vec<BlobOutcome>, CopyError>> + Send + 'a {
    let descriptor =
        converted_descriptor(&layer.source, &layer.new, want.output.format, layer.kind);
    let made = HashMap::from([(
        descriptor.digest.clone(),
        MadeLayer {
            source: layer.source.clone(),
            bytes: LayerBytes::Spooled(file),
        },
    )]);
    async move {
        let no_blobs = HashMap::new();
        let spooled = convert::WithMadeBlobs {
            inner: source,
            made: &no_blobs,
            layers: Some(&made),
        };
        blobs::copy_these(
            to.admission,
            src,
            to.dst,
            &spooled,
            to.destination,
            std::iter::once(&descriptor),
            options,
        )
        .await
    }
}

/// The spool file, naming its directory in its errors (a full `$TMPDIR` should say so).
struct SpoolWriter {
    file: std::fs::File,
    dir: PathBuf,
}

impl SpoolWriter {
    fn context(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(
            e.kind(),
            format!("spooling it in {}: {e}", self.dir.display()),
        )
    }
}

impl std::io::Write for SpoolWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf).map_err(|e| self.context(e))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush().map_err(|e| self.context(e))
    }
}

/// One layer: from the cache, or recompressed into a temporary file.
async fn one_job(
    src: &ImageReference,
    source: &dyn ImageSource,
    job: Job,
    spec: OutputSpec,
    want: &LayerCompression,
    options: &CopyOptions,
) -> Result<(Digest, Done), CopyError> {
    let transform = Transform {
        output: spec,
        expected_diff_id: Some(job.diff_id.clone()),
        media_type: Some(job.layer.media_type.clone()),
        layer: job.layer.digest.to_string(),
    };
    if let Some(cache) = &want.cache
        && let Some(hit) = cache.get(&job.layer.digest, &spec)
        && hit.diff_id == job.diff_id
    {
        let mut transform = transform;
        transform.output = spec.with_threads(hit.threads);
        let bytes = LayerBytes::Again {
            transform,
            cache: cache.clone(),
            cached_spec: spec,
        };
        return Ok((
            job.layer.digest.clone(),
            Done {
                source: job.layer,
                new: hit,
                bytes,
                kind: job.kind,
            },
        ));
    }
    let compression_err = |source| CopyError::Compression {
        reference: src.to_string(),
        source,
    };
    let spool_err = |e: std::io::Error| {
        compression_err(CompressionError::Write {
            layer: job.layer.digest.to_string(),
            format: spec.format,
            source: std::io::Error::new(
                e.kind(),
                format!("spooling it in {}: {e}", want.spool_dir.display()),
            ),
        })
    };
    // A recompression is a transfer from the source: it holds one of a sync's blob slots.
    let _slot = match &options.blob_slots {
        Some(slots) => slots.clone().acquire_owned().await.ok(),
        None => None,
    };
    let raw = source
        .blob(&job.layer)
        .await
        .map_err(|e| CopyError::Source {
            reference: src.to_string(),
            source: e,
        })?;
    let verified: ByteStream = Box::pin(VerifyingStream::new(
        raw,
        job.layer.digest.clone(),
        Some(job.layer.size),
    ));
    let spool = tempfile::Builder::new()
        .prefix(".ferry-layer-")
        .tempfile_in(&want.spool_dir)
        .map_err(spool_err)?;
    // Written from the thread that compresses: no channel, task or copy between the
    // compressor and the file.
    let file = SpoolWriter {
        file: spool.reopen().map_err(spool_err)?,
        dir: want.spool_dir.clone(),
    };
    let (report, _file) = transform_stream_into(verified, transform, file)
        .await
        .map_err(|e| spool_err(std::io::Error::other(e.to_string())))?
        .map_err(compression_err)?;
    let layer = CachedLayer {
        digest: report.digest,
        size: report.size,
        diff_id: report.diff_id,
        annotations: report.annotations,
        threads: spec.threads,
    };
    Ok((
        job.layer.digest.clone(),
        Done {
            source: job.layer,
            new: layer,
            bytes: LayerBytes::Spooled(Arc::new(spool)),
            kind: job.kind,
        },
    ))
}

/// Refuses a recompression that would keep a source signature (or an attached artifact) with
/// a manifest it changed.
pub fn check_signatures(
    src: &ImageReference,
    conversion: &Conversion,
    to_write: &[ToWrite],
    want: &LayerCompression,
) -> Result<(), CopyError> {
    match convert::broken_by(conversion, to_write) {
        Some((_, from, kept)) => Err(CopyError::Recompression {
            reference: src.to_string(),
            digest: from.clone(),
            format: want.output.format.to_string(),
            signatures: kept,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the layers this copy recompressed skip the blob step's hash: the source's own blobs,
    /// and any source without made layers, are hashed as they stream.
    #[test]
    fn only_made_layers_count_as_hashed_when_made() {
        let t = tempfile::tempdir().unwrap();
        let at = format!("dir:{}", t.path().display());
        let inner =
            crate::transport::dir::DirSource::open(ImageReference::parse(&at).unwrap(), t.path())
                .unwrap();
        let source = layer("application/vnd.oci.image.layer.v1.tar+gzip", &[]);
        let made = layer("application/vnd.oci.image.layer.v1.tar+zstd", &[]);
        let spool = tempfile::NamedTempFile::new_in(t.path()).unwrap();
        let layers = HashMap::from([(
            made.digest.clone(),
            MadeLayer {
                source: source.clone(),
                bytes: LayerBytes::Spooled(Arc::new(spool)),
            },
        )]);
        let no_blobs = HashMap::new();
        let with = |layers| super::super::convert::WithMadeBlobs {
            inner: &inner,
            made: &no_blobs,
            layers,
        };
        assert!(with(Some(&layers)).blob_was_hashed_when_made(&made));
        assert!(!with(Some(&layers)).blob_was_hashed_when_made(&source));
        assert!(!with(None).blob_was_hashed_when_made(&made));
    }

    fn layer(media_type: &str, annotations: &[(&str, &str)]) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: Digest::sha256_of(media_type.as_bytes()),
            size: 1,
            urls: None,
            annotations: (!annotations.is_empty()).then(|| {
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            platform: None,
        }
    }

    #[test]
    fn which_layers_convert() {
        let gzip = layer("application/vnd.oci.image.layer.v1.tar+gzip", &[]);
        let zstd = layer("application/vnd.oci.image.layer.v1.tar+zstd", &[]);
        let tar = layer("application/vnd.oci.image.layer.v1.tar", &[]);
        let old_chunked = layer(
            "application/vnd.oci.image.layer.v1.tar+zstd",
            &[("io.containers.zstd-chunked.manifest-checksum", "sha256:x")],
        );
        let foreign = layer(
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            &[],
        );
        let encrypted = layer("application/vnd.oci.image.layer.v1.tar+gzip+encrypted", &[]);
        assert_eq!(layer_format(&old_chunked), Some(OutputFormat::ZstdChunked));
        assert_eq!(layer_format(&foreign), None);
        assert_eq!(layer_format(&encrypted), None);

        let mut to_zstd = LayerCompression::new(OutputSpec::new(OutputFormat::Zstd));
        let converts =
            |c: &LayerCompression, l: &Descriptor| layer_format(l).is_some_and(|f| c.converts(f));
        assert!(converts(&to_zstd, &gzip));
        assert!(converts(&to_zstd, &tar));
        assert!(!converts(&to_zstd, &zstd));
        // zstd:chunked is not plain zstd: asking for zstd converts it (skopeo 1.9.3 keeps it).
        assert!(converts(&to_zstd, &old_chunked));
        to_zstd.force = true;
        assert!(converts(&to_zstd, &zstd));
        assert!(!converts(&to_zstd, &foreign));

        let mut compress = LayerCompression::new(OutputSpec::new(OutputFormat::Gzip));
        compress.only_uncompressed = true;
        assert!(converts(&compress, &tar));
        assert!(!converts(&compress, &zstd));
        let mut decompress = LayerCompression::new(OutputSpec::new(OutputFormat::Uncompressed));
        assert!(converts(&decompress, &gzip));
        decompress.force = true;
        assert!(!converts(&decompress, &tar));

        assert_eq!(to_zstd.manifest_format(None), Some(ManifestFormat::Oci));
        assert_eq!(compress.manifest_format(None), None);
        assert_eq!(
            compress.manifest_format(Some(ManifestFormat::V2s2)),
            Some(ManifestFormat::V2s2)
        );
    }

    #[test]
    fn libzstd_workers_only_on_idle_cores() {
        const BIG: u64 = THREADED_LAYER_SIZE;
        let zstd = OutputFormat::Zstd;
        // One large gzip layer on 2 cores: its decompressor and compressor fill both.
        assert_eq!(zstd_threads(zstd, BIG, true, 2, 1), 0);
        // ... on 4 cores, two are idle: three workers.
        assert_eq!(zstd_threads(zstd, BIG, true, 4, 1), 3);
        // One large tar on 2 cores: one idle core.
        assert_eq!(zstd_threads(zstd, BIG, false, 2, 1), 2);
        // Eight layers, two at a time, on 2 or 4 cores: none idle.
        assert_eq!(zstd_threads(zstd, BIG, true, 2, 2), 0);
        assert_eq!(zstd_threads(zstd, BIG, true, 4, 2), 0);
        assert_eq!(zstd_threads(zstd, BIG, false, 4, 2), 3);
        // Small layers, and other formats, never.
        assert_eq!(zstd_threads(zstd, BIG - 1, false, 8, 1), 0);
        assert_eq!(zstd_threads(OutputFormat::ZstdChunked, BIG, false, 8, 1), 0);
        assert_eq!(zstd_threads(OutputFormat::Gzip, BIG, false, 8, 1), 0);
    }

    #[test]
    fn a_converted_descriptor_keeps_other_annotations_and_drops_old_chunked_ones() {
        let old = layer(
            "application/vnd.oci.image.layer.v1.tar+zstd",
            &[
                ("io.containers.zstd-chunked.manifest-checksum", "sha256:x"),
                ("org.example.keep", "yes"),
            ],
        );
        let new = CachedLayer {
            digest: Digest::sha256_of(b"new"),
            size: 9,
            diff_id: Digest::sha256_of(b"tar"),
            annotations: BTreeMap::new(),
            threads: 0,
        };
        let d = converted_descriptor(&old, &new, OutputFormat::Gzip, ManifestKind::DockerV2S2);
        assert_eq!(
            d.media_type,
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        assert_eq!(d.digest, new.digest);
        assert_eq!(
            d.annotations.unwrap().keys().collect::<Vec<_>>(),
            ["org.example.keep"]
        );
    }

    #[test]
    fn an_oci_manifest_keeps_its_annotations_and_subject_in_go_order() {
        let src = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[],"annotations":{"b":"<2>","a":"1"}}"#;
        let l = layer("application/vnd.oci.image.layer.v1.tar+zstd", &[]);
        let out = String::from_utf8(oci_image_manifest(src, &[l]).unwrap()).unwrap();
        assert!(out.starts_with(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType""#), "{out}");
        assert!(
            out.ends_with(r#""size":1}],"annotations":{"a":"1","b":"\u003c2\u003e"}}"#),
            "{out}"
        );
    }
}
