//! `oci-archive:PATH[:NAME|:@N]`: an OCI image layout kept in one tar file, for air-gapped
//! sites that carry images as files.
//!
//! An archive holds as many images (and multi-platform indexes) as its `index.json` lists, with
//! what ferry's `oci:` keeps beside them: sigstore signatures as cosign's `sha256-HEX.sig`
//! attachment, OCI 1.1 referrers (signature bundles, attestations, SBOMs) as unnamed entries.
//! Both are read and written by the same code as `oci:`'s (`oci_layout::attached`), so
//! `copy --all` of a signed image into an archive and back out keeps every signature a layout
//! can keep; simple signing signatures have no place in a layout, here as there.
//!
//! Reading never unpacks the archive: it is indexed once (per session) and every blob is read
//! in place (`crate::tarfile`). Writing streams every blob straight into the archive's
//! temporary file, one at a time ([`crate::tarfile::BlobTurns`]), and the file appears under its name when the
//! copy commits, or, for a sync writing many images into one archive, when the sync ends
//! (`crate::tarfile::OpenArchives`). A failed copy leaves no file, and no image in the index.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use super::oci_layout::attached::{self, LayoutFiles};
use super::oci_layout::index_descriptor;
use super::referrers::{Attached, Referrers};
use super::*;
use crate::tarfile::oci::{OciArchive, OciArchiveWriter};
use crate::tarfile::reference::{OciSelector, is_valid_oci_name};
use crate::tarfile::{ArchiveFormat, ArchiveWriter};

pub mod reference;
pub(crate) mod writing;
pub use reference::Reference;
use writing::{ArchiveSlot, blob_error, watched};

/// The `oci-archive:` transport.
pub struct OciArchiveTransport;

#[async_trait]
impl Transport for OciArchiveTransport {
    fn name(&self) -> &'static str {
        reference::NAME
    }
    fn grammar(&self) -> &'static str {
        "oci-archive:PATH[:NAME]"
    }
    fn parse(&self, within: &str) -> std::result::Result<ImageReference, ReferenceError> {
        Reference::parse(within)
    }
    /// Every image of a sync goes into the one archive `file`, named by its name there
    /// (`app:v1`, or with `--scoped` `registry.example.com/ns/app:v1`).
    fn sync_destination_in_file(
        &self,
        file: &str,
        name: &str,
    ) -> Option<std::result::Result<ImageReference, ReferenceError>> {
        if !is_valid_oci_name(name) {
            return Some(Err(ReferenceError::Invalid {
                transport: reference::NAME,
                reference: format!("{}:{file}:{name}", reference::NAME),
                why: "the image's name is not a valid org.opencontainers.image.ref.name".into(),
            }));
        }
        Some(Ok(Reference::image(
            PathBuf::from(file),
            OciSelector::Name(name.to_string()),
        )))
    }
    async fn open_source(
        &self,
        session: &Session,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Box<dyn ImageSource>> {
        let own = registry::own::<Reference>(reference)?;
        let archive = OciArchive::from_tar(session.archives.reader(&own.path).await?).await?;
        let top = select(&archive, &own.selector)?;
        Ok(Box::new(OciArchiveSource {
            reference: reference.clone(),
            archive,
            top,
            referrers: options.referrers,
        }))
    }
    async fn open_destination(
        &self,
        session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
    ) -> Result<Box<dyn ImageDestination>> {
        let own = registry::own::<Reference>(reference)?;
        if let OciSelector::Index(_) = own.selector {
            return Err(TransportError::Unsupported(format!(
                "{reference}: an image is written under a name (oci-archive:PATH:NAME) or alone (oci-archive:PATH), not at an index"
            )));
        }
        Ok(Box::new(OciArchiveDestination {
            reference: reference.clone(),
            name: own.name().map(str::to_string),
            slot: ArchiveSlot::open(session, &own.path, ArchiveFormat::Oci).await?,
            top: Mutex::new(None),
            queued: Mutex::new(Vec::new()),
        }))
    }
    /// An archive is written whole: a sync writes every image into a new file, so nothing is
    /// ever "already there".
    async fn present(
        &self,
        _session: &Session,
        _reference: &ImageReference,
        _options: &TransportOptions,
    ) -> Result<Option<Present>> {
        Ok(None)
    }
}

/// The `index.json` entry `selector` picks. With no name, the one image the archive holds,
/// not counting what is attached to it (signatures, referrers), as `oci:` does.
fn select(archive: &OciArchive, selector: &OciSelector) -> Result<Descriptor> {
    if *selector != OciSelector::Only {
        return Ok(archive.select(selector)?.clone());
    }
    let entries = LayoutFiles::entries(archive)?;
    match attached::images(&entries).as_slice() {
        [(_, d)] => Ok(d.clone()),
        _ => Ok(archive.select(selector)?.clone()),
    }
}

/// The images of the archive at `path` (not what is attached to them), for a sync from it:
/// each one's reference and its name in the archive (`None`: unnamed, referenced by position).
pub(crate) async fn list_images(
    session: &Session,
    path: &Path,
) -> Result<Vec<(ImageReference, Option<String>)>> {
    let archive = OciArchive::from_tar(session.archives.reader(path).await?).await?;
    let entries = LayoutFiles::entries(&archive)?;
    let mut out = Vec::new();
    for (position, (name, d)) in entries.iter().enumerate() {
        if super::oci_layout::is_attached_entry(name.as_deref(), d) {
            continue;
        }
        let selector = match name {
            Some(n) => OciSelector::Name(n.clone()),
            None => OciSelector::Index(position),
        };
        out.push((Reference::image(path.to_path_buf(), selector), name.clone()));
    }
    Ok(out)
}

#[async_trait]
impl LayoutFiles for OciArchive {
    fn place(&self) -> String {
        self.tar().path().display().to_string()
    }
    fn entries(&self) -> Result<Vec<(Option<String>, Descriptor)>> {
        Ok(self
            .list()
            .into_iter()
            .map(|e| (e.name, e.descriptor))
            .collect())
    }
    async fn manifest_blob(&self, digest: &Digest) -> Result<Bytes> {
        Ok(self
            .read_blob(digest, crate::limits::MAX_MANIFEST, "a manifest")
            .await?
            .into())
    }
    async fn small_blob(
        &self,
        descriptor: Descriptor,
        limit: u64,
    ) -> std::result::Result<Vec<u8>, String> {
        self.read_blob(&descriptor.digest, limit, "a signature")
            .await
            .map_err(|e| e.to_string())
    }
}

/// Reads an image of an oci-archive, in place.
pub struct OciArchiveSource {
    reference: ImageReference,
    archive: OciArchive,
    top: Descriptor,
    referrers: Referrers,
}

#[async_trait]
impl ImageSource for OciArchiveSource {
    fn reference(&self) -> &ImageReference {
        &self.reference
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<RawManifest> {
        match instance {
            None => Ok(RawManifest {
                bytes: self.archive.read_manifest(&self.top).await?.into(),
                media_type: Some(self.top.media_type.clone()).filter(|m| !m.is_empty()),
            }),
            Some(d) => Ok(RawManifest {
                bytes: LayoutFiles::manifest_blob(&self.archive, d).await?,
                media_type: None,
            }),
        }
    }

    async fn blob(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        Ok(self.archive.blob_stream(&descriptor.digest)?)
    }

    /// The sigstore attachment and the referrers the archive keeps, as `oci:` reads them.
    async fn signatures(
        &self,
        manifest_digest: &Digest,
        _instance: Option<&Digest>,
    ) -> Result<SignatureSet> {
        attached::read_signatures(&self.archive, manifest_digest, self.referrers).await
    }
}

/// Writes an image into an oci-archive.
pub struct OciArchiveDestination {
    reference: ImageReference,
    name: Option<String>,
    slot: ArchiveSlot,
    top: Mutex<Option<RawManifest>>,
    /// Entries for `index.json`, added on commit: attachments (named) and referrers.
    queued: Mutex<Vec<(Option<String>, Value)>>,
}

impl OciArchiveDestination {
    /// Runs `f` on the archive's writer.
    async fn with_writer<T>(
        &self,
        f: impl AsyncFnOnce(&mut OciArchiveWriter) -> Result<T>,
    ) -> Result<T> {
        self.slot.with(ArchiveWriter::as_oci, f).await
    }

    /// Writes the blobs of `add` now and queues its entries for the commit.
    async fn apply(&self, add: attached::Additions) -> Result<()> {
        self.with_writer(async |w| {
            for (_, bytes) in &add.blobs {
                w.put_blob_bytes(bytes).await?;
            }
            Ok(())
        })
        .await?;
        self.queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(add.entries);
        Ok(())
    }
}

/// An `index.json` entry as built for a layout, as a descriptor and its artifact type.
fn entry_descriptor(entry: Value) -> Result<(Descriptor, Option<String>)> {
    let artifact_type = entry
        .get("artifactType")
        .and_then(Value::as_str)
        .map(str::to_string);
    let d = serde_json::from_value(entry)
        .map_err(|e| TransportError::Unsupported(format!("an index.json entry: {e}")))?;
    Ok((d, artifact_type))
}

#[async_trait]
impl ImageDestination for OciArchiveDestination {
    fn reference(&self) -> &ImageReference {
        &self.reference
    }

    fn signature_support(&self, kind: crate::signature::sniff::Format) -> SignatureSupport {
        match kind {
            crate::signature::sniff::Format::SigstoreJson => SignatureSupport::Yes,
            _ => SignatureSupport::No(
                "an oci-archive holds an OCI image layout, which has no place for simple signing signatures; copy to a dir: or store: destination to keep them".into(),
            ),
        }
    }

    async fn try_reuse_blob(
        &self,
        descriptor: &Descriptor,
        _source: &ImageReference,
    ) -> Result<bool> {
        self.slot
            .reuse(ArchiveWriter::as_oci, |w| {
                w.has_blob(&descriptor.digest) == Some(descriptor.size)
            })
            .await
    }

    async fn put_blob(
        &self,
        _admission: &Admission,
        descriptor: &Descriptor,
        stream: ByteStream,
    ) -> Result<()> {
        let (stream, failure) = watched(stream);
        self.slot
            .put(ArchiveWriter::as_oci, async |w| {
                w.put_verified_stream(&descriptor.digest, descriptor.size, stream)
                    .await
                    .map_err(|e| blob_error(e, &failure))
            })
            .await
    }

    async fn put_manifest(
        &self,
        _admission: &Admission,
        manifest: &RawManifest,
        instance: Option<&Digest>,
    ) -> Result<()> {
        self.with_writer(async |w| {
            w.put_blob_bytes(&manifest.bytes).await?;
            Ok(())
        })
        .await?;
        if instance.is_none() {
            *self.top.lock().unwrap_or_else(|p| p.into_inner()) = Some(manifest.clone());
        }
        Ok(())
    }

    /// As `oci:`: sigstore signatures join the attachment `sha256-HEX.sig`, bundles become
    /// referrers; simple signing has no place here.
    async fn put_signatures(
        &self,
        _admission: &Admission,
        manifest_digest: &Digest,
        _instance: Option<&Digest>,
        signatures: &[Vec<u8>],
    ) -> Result<()> {
        let place = self.slot.path().display().to_string();
        let add = self
            .with_writer(async |w| {
                let w: &OciArchiveWriter = w;
                attached::signature_additions(
                    manifest_digest,
                    || {
                        w.small_blob(manifest_digest).cloned().ok_or_else(|| {
                            TransportError::NotFound(format!(
                                "{place}: the manifest {manifest_digest} is not in the archive"
                            ))
                        })
                    },
                    |tag| {
                        let d = w.named(tag)?;
                        w.small_blob(&d.digest).map(|b| b.to_vec())
                    },
                    signatures,
                    &place,
                )
            })
            .await?;
        self.apply(add).await
    }

    fn attached_support(&self) -> SignatureSupport {
        SignatureSupport::Yes
    }

    async fn put_attached(
        &self,
        _admission: &Admission,
        subject: &Digest,
        _instance: Option<&Digest>,
        attached: &[&Attached],
    ) -> Result<()> {
        self.apply(attached::attached_additions(subject, attached))
            .await
    }

    async fn commit(self: Box<Self>, _admission: &Admission) -> Result<()> {
        let top = self
            .top
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| TransportError::Unsupported("commit without a manifest".into()))?;
        let mut entries =
            std::mem::take(&mut *self.queued.lock().unwrap_or_else(|p| p.into_inner()));
        entries.push((
            self.name.clone(),
            index_descriptor(&top, self.name.as_deref()),
        ));
        let mut descriptors = Vec::with_capacity(entries.len());
        for (_, entry) in entries {
            descriptors.push(entry_descriptor(entry)?);
        }
        self.slot
            .commit(ArchiveWriter::as_oci, async |w| {
                for (d, artifact_type) in descriptors {
                    w.add_index_entry(d, artifact_type);
                }
                Ok(())
            })
            .await
    }
}
