//! `docker-archive:PATH[:NAME:TAG|:@N]`: the `docker save` format, which `docker load`,
//! `podman load`, k3s and `ctr import` take.
//!
//! Reading (any archive Docker, podman or skopeo writes, Docker 25+ included, compressed as a
//! whole or not) offers an image as containers/image does: a Docker schema 2 manifest made for
//! it, whose layers are the uncompressed layer tars named by their DiffIDs; blobs are read in
//! place. Writing makes ferry's docker archive (the Docker 25+ shape, see `crate::tarfile::docker`):
//! the format holds uncompressed layers named by DiffID, so a compressed layer is decompressed
//! on its way into the archive and named once its DiffID is known; the config's `rootfs.diff_ids`
//! must then match. Several images go into one archive with `--additional-tag` (one image,
//! several tags) or a sync (one writer shared by its copies). The format has no place for
//! signatures, of either kind: as containers/image ("Storing signatures for docker tar files is
//! not supported"), a copy that would keep some fails and says so.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use futures::TryStreamExt;

use super::oci_archive::writing::{ArchiveSlot, blob_error, watched};
use super::*;
use crate::compression::{OutputFormat, OutputSpec, Transform, transform_stream};
use crate::manifest::Manifest;
use crate::tarfile::docker::{DockerArchive, DockerArchiveWriter, DockerImage};
use crate::tarfile::reference::{DockerSelector, RepoTag};
use crate::tarfile::{ArchiveFormat, ArchiveWriter};

pub mod reference;
pub use reference::Reference;

/// The `docker-archive:` transport.
pub struct DockerArchiveTransport;

#[async_trait]
impl Transport for DockerArchiveTransport {
    fn name(&self) -> &'static str {
        reference::NAME
    }
    fn grammar(&self) -> &'static str {
        "docker-archive:PATH[:NAME:TAG|:@N]"
    }
    fn parse(&self, within: &str) -> std::result::Result<ImageReference, ReferenceError> {
        Reference::parse(within)
    }
    /// Every image of a sync goes into the one archive `file`, tagged with its name
    /// (`app:v1` is `docker.io/library/app:v1`, as `docker save` would tag it). A name by
    /// digest has no tag to give: that image fails.
    fn sync_destination_in_file(
        &self,
        file: &str,
        name: &str,
    ) -> Option<std::result::Result<ImageReference, ReferenceError>> {
        Some(
            RepoTag::parse(name)
                .map(|t| Reference::image(PathBuf::from(file), DockerSelector::Tag(t)))
                .map_err(|why| ReferenceError::Invalid {
                    transport: reference::NAME,
                    reference: format!("{}:{file}:{name}", reference::NAME),
                    why,
                }),
        )
    }
    async fn open_source(
        &self,
        session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
    ) -> Result<Box<dyn ImageSource>> {
        let own = registry::own::<Reference>(reference)?;
        let archive = DockerArchive::from_tar(session.archives.reader(&own.path).await?).await?;
        let (position, _) = archive.select(&own.selector)?;
        let image = archive.image(position).await?;
        Ok(Box::new(DockerArchiveSource {
            reference: reference.clone(),
            archive,
            image,
        }))
    }
    async fn open_destination(
        &self,
        session: &Session,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Box<dyn ImageDestination>> {
        let own = registry::own::<Reference>(reference)?;
        let mut tags = match &own.selector {
            DockerSelector::Tag(t) => vec![t.clone()],
            DockerSelector::Index(_) => {
                return Err(TransportError::Unsupported(format!(
                    "{reference}: an image is written under a tag (docker-archive:PATH:NAME:TAG) or untagged (docker-archive:PATH), not at an index"
                )));
            }
            _ => Vec::new(),
        };
        for extra in &options.additional_tags {
            let t = RepoTag::parse(extra).map_err(|why| {
                TransportError::Unsupported(format!("additional tag {extra:?}: {why}"))
            })?;
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        Ok(Box::new(DockerArchiveDestination {
            reference: reference.clone(),
            path: own.path.clone(),
            tags,
            slot: ArchiveSlot::open(session, &own.path, ArchiveFormat::Docker).await?,
            small: Mutex::new(HashMap::new()),
            top: Mutex::new(None),
        }))
    }
    /// An archive is written whole: nothing is ever "already there" for a sync.
    async fn present(
        &self,
        _session: &Session,
        _reference: &ImageReference,
        _options: &TransportOptions,
    ) -> Result<Option<Present>> {
        Ok(None)
    }
}

/// The images of the archive at `path` for a sync from it: one per RepoTag (an image tagged
/// twice is copied under both names), with its tag; untagged images by position, with none.
pub(crate) async fn list_images(
    session: &Session,
    path: &std::path::Path,
) -> Result<Vec<(ImageReference, Option<String>)>> {
    let archive = DockerArchive::from_tar(session.archives.reader(path).await?).await?;
    let mut out = Vec::new();
    for (i, item) in archive.items().iter().enumerate() {
        if item.repo_tags.is_empty() {
            out.push((
                Reference::image(path.to_path_buf(), DockerSelector::Index(i)),
                None,
            ));
        }
        for tag in &item.repo_tags {
            let t = RepoTag::parse(tag).map_err(|why| {
                TransportError::from(crate::tarfile::ArchiveError::format(
                    path,
                    format!("manifest.json item @{i}: invalid tag {tag:?}: {why}"),
                ))
            })?;
            let name = t.to_string();
            out.push((
                Reference::image(path.to_path_buf(), DockerSelector::Tag(t)),
                Some(name),
            ));
        }
    }
    Ok(out)
}

/// The tags of the archive at `path`, as skopeo's `list-tags docker-archive:PATH` lists them:
/// every RepoTag of every image, normalised (`docker.io/library/busybox:latest`).
pub async fn list_tags(session: &Session, path: &std::path::Path) -> Result<Vec<String>> {
    Ok(list_images(session, path)
        .await?
        .into_iter()
        .filter_map(|(_, name)| name)
        .collect())
}

/// Reads an image of a docker-archive, in place.
pub struct DockerArchiveSource {
    reference: ImageReference,
    archive: DockerArchive,
    image: DockerImage,
}

#[async_trait]
impl ImageSource for DockerArchiveSource {
    fn reference(&self) -> &ImageReference {
        &self.reference
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<RawManifest> {
        match instance {
            None => Ok(RawManifest {
                bytes: self.image.manifest.clone().into(),
                media_type: Some(crate::manifest::DOCKER_V2S2.to_string()),
            }),
            Some(d) => Err(TransportError::NotFound(format!(
                "{}: a docker-archive holds single images, not lists; it has no instance {d}",
                self.reference
            ))),
        }
    }

    async fn blob(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        if descriptor.digest == self.image.config_digest {
            let config = Bytes::from(self.image.config.clone());
            return Ok(Box::pin(futures::stream::iter(std::iter::once(Ok(config)))));
        }
        match self.image.layer(&descriptor.digest) {
            Some(layer) => Ok(self.archive.layer_stream(layer)?),
            None => Err(TransportError::NotFound(format!(
                "{}: the image has no blob {}",
                self.reference, descriptor.digest
            ))),
        }
    }

    /// A docker-archive keeps no signatures.
    async fn signatures(
        &self,
        _manifest_digest: &Digest,
        _instance: Option<&Digest>,
    ) -> Result<SignatureSet> {
        Ok(SignatureSet::new(
            vec![],
            format!(
                "nowhere: a docker-archive ({}) keeps no signatures",
                self.archive.tar().path().display()
            ),
        ))
    }
}

/// Writes an image into a docker-archive.
pub struct DockerArchiveDestination {
    reference: ImageReference,
    path: PathBuf,
    tags: Vec<RepoTag>,
    slot: ArchiveSlot,
    /// Blobs that are not layers (the config), kept to make the image at commit.
    small: Mutex<HashMap<Digest, Bytes>>,
    top: Mutex<Option<RawManifest>>,
}

/// Whether a blob of this media type is a layer (else a config or an artifact's blob).
fn is_layer(media_type: &str) -> bool {
    media_type.contains(".layer.") || media_type.contains(".rootfs.")
}

/// Whether a layer of this media type is an uncompressed tar.
fn is_uncompressed_layer(media_type: &str) -> bool {
    media_type.ends_with(".tar") || media_type.ends_with("rootfs.diff.tar")
}

impl DockerArchiveDestination {
    /// The image the copy wrote: its config, checked against the layers as they were
    /// written (the DiffIDs the config lists must be the layers' uncompressed digests).
    fn image_config(&self, manifest: &RawManifest, layers: &[(Digest, Digest)]) -> Result<Bytes> {
        let parsed = crate::manifest::parse(&manifest.bytes, manifest.media_type.as_deref())
            .map_err(|source| TransportError::Manifest {
                what: self.reference.to_string(),
                source,
            })?;
        let Manifest::Image(_, image) = parsed else {
            return Err(TransportError::Unsupported(format!(
                "{}: a docker-archive holds single images, not lists; copy one platform's image (--platform), or use an oci-archive: for the whole list",
                self.reference
            )));
        };
        let config = self
            .small
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&image.config.digest)
            .cloned()
            .ok_or_else(|| {
                TransportError::Unsupported(format!(
                    "{}: the image's config {} was not written",
                    self.reference, image.config.digest
                ))
            })?;
        #[derive(serde::Deserialize)]
        struct Rootfs {
            #[serde(default)]
            diff_ids: Vec<Digest>,
        }
        #[derive(serde::Deserialize)]
        struct Config {
            rootfs: Option<Rootfs>,
        }
        let listed: Vec<Digest> = serde_json::from_slice::<Config>(&config)
            .ok()
            .and_then(|c| c.rootfs)
            .map(|r| r.diff_ids)
            .unwrap_or_default();
        let written: Vec<Digest> = image
            .layers
            .iter()
            .map(|l| {
                layers
                    .iter()
                    .find(|(blob, _)| *blob == l.digest)
                    .map(|(_, id)| id.clone())
                    .ok_or_else(|| {
                        TransportError::Unsupported(format!(
                            "{}: the layer {} was not written",
                            self.reference, l.digest
                        ))
                    })
            })
            .collect::<Result<_>>()?;
        if listed != written {
            return Err(TransportError::InvalidLayout {
                path: self.path.clone(),
                why: format!(
                    "the image's config lists the layers (DiffIDs) {} but its layers uncompress to {}; the source image is inconsistent, and a docker-archive names layers by DiffID",
                    join(&listed),
                    join(&written)
                ),
            });
        }
        Ok(config)
    }
}

/// Writes a layer: an uncompressed one as it is (its digest is its DiffID), a compressed one
/// decompressed on its way in and named by the DiffID that comes out.
async fn put_layer(
    w: &mut DockerArchiveWriter,
    descriptor: &Descriptor,
    stream: ByteStream,
) -> Result<()> {
    let (stream, failure) = watched(stream);
    if is_uncompressed_layer(&descriptor.media_type) {
        return w
            .put_verified_stream(&descriptor.digest, descriptor.size, stream)
            .await
            .map_err(|e| blob_error(e, &failure));
    }
    let t = Transform::new(
        descriptor.digest.to_string(),
        OutputSpec::new(OutputFormat::Uncompressed),
    );
    let (uncompressed, report) = transform_stream(stream, t);
    let diff_id = async move {
        match report.await {
            Ok(Ok(r)) => Ok(r.diff_id),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("the decompressing task failed: {e}")),
        }
    };
    w.put_decompressed_layer(&descriptor.digest, uncompressed, diff_id)
        .await
        .map(|_| ())
        .map_err(|e| blob_error(e, &failure))
}

fn join(d: &[Digest]) -> String {
    let all: Vec<String> = d.iter().map(Digest::to_string).collect();
    format!("[{}]", all.join(", "))
}

#[async_trait]
impl ImageDestination for DockerArchiveDestination {
    fn reference(&self) -> &ImageReference {
        &self.reference
    }

    fn signature_support(&self, _kind: crate::signature::sniff::Format) -> SignatureSupport {
        SignatureSupport::No(
            "a docker-archive (the docker save format) has no place for signatures (containers/image: \"Storing signatures for docker tar files is not supported\"); an oci-archive: keeps sigstore signatures, dir: and store: keep both kinds".into(),
        )
    }

    async fn try_reuse_blob(
        &self,
        descriptor: &Descriptor,
        _source: &ImageReference,
    ) -> Result<bool> {
        if !is_layer(&descriptor.media_type) {
            // The config is read whole: the image is made from it at commit.
            return Ok(false);
        }
        self.slot
            .reuse(ArchiveWriter::as_docker, |w| {
                w.layer_of(&descriptor.digest).is_some()
            })
            .await
    }

    async fn put_blob(
        &self,
        _admission: &Admission,
        descriptor: &Descriptor,
        stream: ByteStream,
    ) -> Result<()> {
        if is_layer(&descriptor.media_type) {
            return self
                .slot
                .put(ArchiveWriter::as_docker, async |w| {
                    put_layer(w, descriptor, stream).await
                })
                .await;
        }
        if descriptor.size > crate::limits::MAX_CONFIG_BLOB {
            return Err(TransportError::TooLarge {
                path: self.path.clone(),
                size: descriptor.size,
                limit: crate::limits::MAX_CONFIG_BLOB,
                what: "an image config",
            });
        }
        let chunks: Vec<Bytes> = stream
            .try_collect()
            .await
            .map_err(TransportError::source_stream)?;
        self.small
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(descriptor.digest.clone(), chunks.concat().into());
        Ok(())
    }

    async fn put_manifest(
        &self,
        _admission: &Admission,
        manifest: &RawManifest,
        instance: Option<&Digest>,
    ) -> Result<()> {
        if instance.is_some() {
            return Err(TransportError::Unsupported(format!(
                "{}: a docker-archive holds single images, not lists; copy one platform's image (--platform, without --all), or use an oci-archive: for the whole list",
                self.reference
            )));
        }
        *self.top.lock().unwrap_or_else(|p| p.into_inner()) = Some(manifest.clone());
        Ok(())
    }

    async fn put_signatures(
        &self,
        _admission: &Admission,
        _manifest_digest: &Digest,
        _instance: Option<&Digest>,
        signatures: &[Vec<u8>],
    ) -> Result<()> {
        if signatures.is_empty() {
            return Ok(());
        }
        Err(TransportError::Unsupported(
            "Storing signatures for docker tar files is not supported".into(),
        ))
    }

    async fn commit(self: Box<Self>, _admission: &Admission) -> Result<()> {
        let top = self
            .top
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| TransportError::Unsupported("commit without a manifest".into()))?;
        self.slot
            .commit(ArchiveWriter::as_docker, async |w| {
                let layers: Vec<(Digest, Digest)> =
                    match crate::manifest::parse(&top.bytes, top.media_type.as_deref()) {
                        Ok(Manifest::Image(_, image)) => image
                            .layers
                            .iter()
                            .filter_map(|l| {
                                w.layer_of(&l.digest).map(|(id, _)| (l.digest.clone(), id))
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                let config = self.image_config(&top, &layers)?;
                w.add_image(&config, &self.tags).await?;
                Ok(())
            })
            .await
    }
}
