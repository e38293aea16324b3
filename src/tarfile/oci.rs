//! `oci-archive:`: an OCI image layout (`oci-layout`, `index.json`, `blobs/ALG/HEX`) inside a
//! tar, read in place and written as a stream.
//!
//! One archive can hold many images and multi-platform indexes; `index.json` lists them, and an
//! image is chosen by its `org.opencontainers.image.ref.name` annotation or by position, with
//! containers/image's rules (`oci/layout/oci_transport.go`, `getManifestDescriptor`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::archive::TarArchive;
use super::blob_path;
use super::error::ArchiveError;
use super::index::Entry;
use super::reference::OciSelector;
use super::writer::TarWriter;
use crate::digest::{ByteStream, Digest, VerifyingStream};
use crate::manifest::{self, Descriptor};

/// The annotation that names an image in an OCI layout's index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's (and buildkit's) annotation for an image's full name, which podman and
/// `ctr import` read before [`REF_NAME`].
pub const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";
/// The layout version ferry writes (and the only major version it reads).
pub const LAYOUT_VERSION: &str = "1.0.0";
/// The `oci-layout` entry.
pub const LAYOUT_FILE: &str = "oci-layout";
/// The `index.json` entry.
pub const INDEX_FILE: &str = "index.json";

/// The `oci-layout` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciLayout {
    /// `imageLayoutVersion`, "1.0.0".
    #[serde(rename = "imageLayoutVersion")]
    pub image_layout_version: String,
}

/// The layout's `index.json`: the images it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciIndex {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.index.v1+json` (optional in the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// One descriptor per image (or per image index).
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Annotations of the index itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// One entry of `index.json`, for listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Its position in `index.json`.
    pub position: usize,
    /// Its `org.opencontainers.image.ref.name`, if any.
    pub name: Option<String>,
    /// The descriptor.
    pub descriptor: Descriptor,
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

/// An OCI layout read from a tar archive.
#[derive(Debug, Clone)]
pub struct OciArchive {
    tar: TarArchive,
    index: OciIndex,
    index_bytes: Vec<u8>,
}

impl OciArchive {
    /// Opens, indexes and reads the layout of the archive at `path`.
    pub async fn open(path: &Path) -> Result<OciArchive, ArchiveError> {
        OciArchive::from_tar(TarArchive::open(path).await?).await
    }

    /// Reads the layout of an opened archive.
    pub async fn from_tar(tar: TarArchive) -> Result<OciArchive, ArchiveError> {
        let path = tar.path().to_path_buf();
        // containers/image does not read oci-layout; ferry checks it when it is there.
        if tar.contains(LAYOUT_FILE) {
            let bytes = tar
                .read_small(LAYOUT_FILE, crate::limits::MAX_CONFIG_FILE, "oci-layout")
                .await?;
            let layout: OciLayout =
                serde_json::from_slice(&bytes).map_err(|source| ArchiveError::Json {
                    archive: path.clone(),
                    entry: LAYOUT_FILE.into(),
                    what: "an oci-layout file",
                    source,
                })?;
            if !layout.image_layout_version.starts_with("1.") {
                return Err(ArchiveError::format(
                    &path,
                    format!(
                        "unsupported OCI layout version {:?} (ferry reads 1.x)",
                        layout.image_layout_version
                    ),
                ));
            }
        }
        if !tar.contains(INDEX_FILE) {
            return Err(ArchiveError::format(
                &path,
                "not an oci-archive: it has no index.json (is it a docker-archive, or not an image archive?)",
            ));
        }
        let index_bytes = tar
            .read_small(INDEX_FILE, crate::limits::MAX_MANIFEST, "index.json")
            .await?;
        let index: OciIndex =
            serde_json::from_slice(&index_bytes).map_err(|source| ArchiveError::Json {
                archive: path.clone(),
                entry: INDEX_FILE.into(),
                what: "an OCI image index",
                source,
            })?;
        Ok(OciArchive {
            tar,
            index,
            index_bytes,
        })
    }

    /// The underlying tar archive.
    pub fn tar(&self) -> &TarArchive {
        &self.tar
    }

    /// The parsed `index.json`.
    pub fn index(&self) -> &OciIndex {
        &self.index
    }

    /// `index.json` as stored.
    pub fn index_bytes(&self) -> &[u8] {
        &self.index_bytes
    }

    /// Every entry of `index.json`, in order.
    pub fn list(&self) -> Vec<IndexEntry> {
        self.index
            .manifests
            .iter()
            .enumerate()
            .map(|(position, d)| IndexEntry {
                position,
                name: ref_name(d).map(str::to_string),
                descriptor: d.clone(),
            })
            .collect()
    }

    fn available(&self) -> Vec<String> {
        self.list()
            .iter()
            .map(|e| match &e.name {
                Some(n) => format!("@{} {n:?}", e.position),
                None => format!("@{} (unnamed {})", e.position, e.descriptor.digest),
            })
            .collect()
    }

    /// The descriptor of the image (or image index) `selector` picks, as containers/image
    /// picks it: by name, only entries of a manifest media type count; with no name, the index
    /// must list exactly one entry.
    pub fn select(&self, selector: &OciSelector) -> Result<&Descriptor, ArchiveError> {
        let path = self.tar.path().to_path_buf();
        let manifests = &self.index.manifests;
        match selector {
            OciSelector::Index(i) => manifests
                .get(*i)
                .ok_or_else(|| ArchiveError::ImageNotFound {
                    archive: path,
                    wanted: format!(
                        "@{i} (index {i} is too large, only {} entries available)",
                        manifests.len()
                    ),
                    available: self.available(),
                }),
            OciSelector::Name(name) => {
                let mut unsupported = Vec::new();
                for d in manifests.iter().filter(|d| ref_name(d) == Some(name)) {
                    if [
                        manifest::OCI_MANIFEST,
                        manifest::OCI_INDEX,
                        manifest::DOCKER_V2S2,
                        manifest::DOCKER_LIST,
                    ]
                    .contains(&d.media_type.as_str())
                    {
                        return Ok(d);
                    }
                    unsupported.push(d.media_type.clone());
                }
                if !unsupported.is_empty() {
                    return Err(ArchiveError::format(
                        &path,
                        format!(
                            "reference {name:?} matches unsupported manifest MIME types {unsupported:?}"
                        ),
                    ));
                }
                Err(ArchiveError::ImageNotFound {
                    archive: path,
                    wanted: format!("{name:?}"),
                    available: self.available(),
                })
            }
            OciSelector::Only => match manifests.as_slice() {
                [only] => Ok(only),
                _ => Err(ArchiveError::AmbiguousImage {
                    archive: path,
                    count: manifests.len(),
                    how: "oci-archive:PATH:NAME",
                    available: self.available(),
                }),
            },
        }
    }

    /// The entry holding blob `digest`.
    pub fn blob_entry(&self, digest: &Digest) -> Result<&Entry, ArchiveError> {
        self.tar.entry(&blob_path(digest))
    }

    /// Whether the archive holds blob `digest`; its size if it does.
    pub fn has_blob(&self, digest: &Digest) -> Option<u64> {
        self.blob_entry(digest).ok().map(|e| e.size)
    }

    /// The raw bytes of blob `digest`, unverified (wrap them in a
    /// [`VerifyingStream`], or use [`OciArchive::verified_blob`]).
    pub fn blob_stream(&self, digest: &Digest) -> Result<ByteStream, ArchiveError> {
        let entry = self.blob_entry(digest)?;
        Ok(self.tar.stream_entry(entry))
    }

    /// The blob a descriptor names, checked against its size and digest as it streams (the
    /// stream's last item is an error if either is wrong).
    pub fn verified_blob(&self, d: &Descriptor) -> Result<ByteStream, ArchiveError> {
        let stream = self.blob_stream(&d.digest)?;
        Ok(Box::pin(VerifyingStream::new(
            stream,
            d.digest.clone(),
            Some(d.size),
        )))
    }

    /// A small blob (a manifest, an index, a config) read whole and checked against its
    /// digest; refused when larger than `limit`.
    pub async fn read_blob(
        &self,
        digest: &Digest,
        limit: u64,
        what: &'static str,
    ) -> Result<Vec<u8>, ArchiveError> {
        let name = blob_path(digest);
        let bytes = self.tar.read_small(&name, limit, what).await?;
        let actual = digest.of_same_algorithm(&bytes);
        if &actual != digest {
            return Err(ArchiveError::Digest {
                archive: self.tar.path().to_path_buf(),
                entry: name,
                source: crate::digest::VerifyError::Digest {
                    expected: digest.clone(),
                    actual,
                },
            });
        }
        Ok(bytes)
    }

    /// The manifest (or image index) a descriptor names, digest-checked, at most 4 MiB.
    pub async fn read_manifest(&self, d: &Descriptor) -> Result<Vec<u8>, ArchiveError> {
        self.read_blob(&d.digest, crate::limits::MAX_MANIFEST, "a manifest")
            .await
    }
}

/// Writes an oci-archive as a stream: blobs as they come, `index.json` at the end.
#[derive(Debug)]
pub struct OciArchiveWriter {
    tar: TarWriter,
    blobs: HashMap<Digest, u64>,
    manifests: Vec<Descriptor>,
    /// The `artifactType` of index entries that have one (referrers), by digest.
    artifact_types: HashMap<Digest, String>,
    /// The small blobs written from bytes (manifests, signature attachments), kept to be read
    /// again while the archive is written (a later signature joins an earlier attachment).
    small: HashMap<Digest, bytes::Bytes>,
}

/// Writes the directories of blob `digest` if not yet written (readers do not need them;
/// `tar -x` of the archive looks like the layout directory with them).
pub(crate) async fn ensure_blob_dirs(
    tar: &mut TarWriter,
    digest: &Digest,
) -> Result<(), ArchiveError> {
    if !tar.contains("blobs") {
        tar.add_directory("blobs").await?;
    }
    let alg = format!("blobs/{}", digest.algorithm().name());
    if !tar.contains(&alg) {
        tar.add_directory(&alg).await?;
    }
    Ok(())
}

/// Writes blob `digest` of `size` bytes from `stream` into `tar`, verifying it as it passes;
/// a blob that does not match is removed again and the error returned.
pub(crate) async fn put_verified_blob(
    tar: &mut TarWriter,
    blobs: &mut HashMap<Digest, u64>,
    digest: &Digest,
    size: u64,
    stream: ByteStream,
) -> Result<(), ArchiveError> {
    let verified = Box::pin(VerifyingStream::new(stream, digest.clone(), Some(size)));
    put_unverified_blob(tar, blobs, digest, size, verified).await
}

/// Writes blob `digest` of `size` bytes from `stream` into `tar` unless it is there already,
/// for a caller that verifies the stream itself; a stream that fails leaves nothing.
pub(crate) async fn put_unverified_blob(
    tar: &mut TarWriter,
    blobs: &mut HashMap<Digest, u64>,
    digest: &Digest,
    size: u64,
    stream: ByteStream,
) -> Result<(), ArchiveError> {
    if blobs.contains_key(digest) {
        return Ok(());
    }
    ensure_blob_dirs(tar, digest).await?;
    tar.add_stream(&blob_path(digest), size, stream).await?;
    blobs.insert(digest.clone(), size);
    Ok(())
}

/// Adds `d` to an index's entries as containers/image's layout destination does
/// (`oci/layout/oci_dest.go` `addManifest`): a name moves from an older entry to the new one, and
/// an unnamed entry of the same digest is replaced rather than repeated.
pub(crate) fn add_to_index(manifests: &mut Vec<Descriptor>, d: Descriptor) {
    if let Some(name) = ref_name(&d).map(str::to_string)
        && let Some(older) = manifests
            .iter_mut()
            .find(|m| ref_name(m) == Some(name.as_str()))
        && let Some(a) = older.annotations.as_mut()
    {
        a.remove(REF_NAME);
    }
    if let Some(same) = manifests
        .iter_mut()
        .find(|m| m.digest == d.digest && ref_name(m).is_none())
    {
        *same = d;
        return;
    }
    manifests.push(d);
}

impl OciArchiveWriter {
    /// Starts an archive that will become `path` when finished (see [`TarWriter`]).
    pub async fn create(path: &Path) -> Result<OciArchiveWriter, ArchiveError> {
        let mut tar = TarWriter::create(path).await?;
        let layout = OciLayout {
            image_layout_version: LAYOUT_VERSION.into(),
        };
        let bytes = serde_json::to_vec(&layout)
            .map_err(|e| ArchiveError::format(path, format!("encoding oci-layout: {e}")))?;
        tar.add_bytes(LAYOUT_FILE, &bytes).await?;
        Ok(OciArchiveWriter {
            tar,
            blobs: HashMap::new(),
            manifests: Vec::new(),
            artifact_types: HashMap::new(),
            small: HashMap::new(),
        })
    }

    /// The path the archive will have once finished.
    pub fn final_path(&self) -> &Path {
        self.tar.final_path()
    }

    /// Writes a blob from a stream that the caller verifies itself (the copy pipeline checks
    /// every blob's size and digest as it passes; hashing it twice would double the cost). A
    /// stream that fails, or ends short or long, leaves nothing in the archive. A blob already
    /// written is not written again (the stream is not read).
    pub async fn put_verified_stream(
        &mut self,
        digest: &Digest,
        size: u64,
        stream: ByteStream,
    ) -> Result<(), ArchiveError> {
        put_unverified_blob(&mut self.tar, &mut self.blobs, digest, size, stream).await
    }

    /// How many entries `index.json` lists so far.
    pub fn images(&self) -> usize {
        self.manifests.len()
    }

    /// A small blob written from bytes earlier in this archive (a manifest, an attachment).
    pub fn small_blob(&self, digest: &Digest) -> Option<&bytes::Bytes> {
        self.small.get(digest)
    }

    /// The `index.json` entry named `name` so far, if any.
    pub fn named(&self, name: &str) -> Option<&Descriptor> {
        self.manifests.iter().find(|d| ref_name(d) == Some(name))
    }

    /// Lists `d` in `index.json` (with `artifact_type`, for a referrer), as
    /// [`OciArchiveWriter::add_manifest`] does; its blob must have been written.
    pub fn add_index_entry(&mut self, d: Descriptor, artifact_type: Option<String>) {
        if let Some(t) = artifact_type {
            self.artifact_types.insert(d.digest.clone(), t);
        }
        add_to_index(&mut self.manifests, d);
    }

    /// The size of blob `digest` if it was written already (a copy can skip it).
    pub fn has_blob(&self, digest: &Digest) -> Option<u64> {
        self.blobs.get(digest).copied()
    }

    /// Writes a blob from a stream of `size` bytes, verified against `digest` as it passes; a
    /// blob already written is not written again (the stream is not read).
    pub async fn put_blob(
        &mut self,
        digest: &Digest,
        size: u64,
        stream: ByteStream,
    ) -> Result<(), ArchiveError> {
        put_verified_blob(&mut self.tar, &mut self.blobs, digest, size, stream).await
    }

    /// Writes a small blob from bytes; returns its sha256 digest.
    pub async fn put_blob_bytes(&mut self, bytes: &[u8]) -> Result<Digest, ArchiveError> {
        let digest = Digest::sha256_of(bytes);
        let kept = bytes::Bytes::copy_from_slice(bytes);
        let stream: ByteStream = Box::pin(futures::stream::iter(std::iter::once(Ok(kept.clone()))));
        self.put_blob(&digest, bytes.len() as u64, stream).await?;
        self.small.insert(digest.clone(), kept);
        Ok(digest)
    }

    /// Writes a manifest (or image index) blob and lists it in `index.json`, named `name`
    /// (`org.opencontainers.image.ref.name`) if given; an earlier entry of the same name loses
    /// it, as containers/image's layout destination does. Its blobs should be written first.
    pub async fn add_manifest(
        &mut self,
        manifest: &[u8],
        media_type: &str,
        name: Option<&str>,
    ) -> Result<Descriptor, ArchiveError> {
        let digest = self.put_blob_bytes(manifest).await?;
        let d = Descriptor {
            media_type: media_type.to_string(),
            digest,
            size: manifest.len() as u64,
            urls: None,
            annotations: name.map(|n| BTreeMap::from([(REF_NAME.to_string(), n.to_string())])),
            platform: None,
        };
        add_to_index(&mut self.manifests, d.clone());
        Ok(d)
    }

    /// Writes `index.json` and makes the archive appear at its path.
    pub async fn finish(mut self) -> Result<PathBuf, ArchiveError> {
        let temp = self.tar.temp_path().to_path_buf();
        let encoding =
            |e: serde_json::Error| ArchiveError::format(&temp, format!("encoding index.json: {e}"));
        let mut manifests = Vec::with_capacity(self.manifests.len());
        for d in std::mem::take(&mut self.manifests) {
            let mut v = serde_json::to_value(&d).map_err(encoding)?;
            if let (Some(t), Some(o)) = (self.artifact_types.get(&d.digest), v.as_object_mut()) {
                o.insert("artifactType".into(), serde_json::Value::String(t.clone()));
            }
            manifests.push(v);
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_INDEX,
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec(&index).map_err(encoding)?;
        self.tar.add_bytes(INDEX_FILE, &bytes).await?;
        self.tar.finish().await
    }
}
