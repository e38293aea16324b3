//! `docker-archive:`: the `docker save` format, read in place and written as a stream.
//!
//! `manifest.json` is the table of contents: `[{"Config": FILE, "RepoTags": [...], "Layers":
//! [FILE, ...]}]`, plus the legacy `repositories` map (`{name: {tag: top layer id}}`). Docker
//! before 25 stored `HEX.json` configs and `HEX/layer.tar` layers (with `VERSION` and `json`
//! beside each, and symlinks for repeated layers); Docker 25+ stores an OCI layout in the same tar
//! (`oci-layout`, `index.json`, `blobs/sha256/HEX`) and points `Config` and `Layers` into it. The
//! reader follows `manifest.json` either way, as containers/image's `docker/internal/tarfile`
//! does, and offers the image as that code does: a generated Docker schema 2 manifest whose
//! layers are the uncompressed layer tars named by their DiffIDs.
//!
//! The writer writes the Docker 25+ shape, which is what k3s's air-gap import and `ctr import`
//! are documented and tested with (skopeo issue #2776 asks skopeo for it). What goes wrong with
//! skopeo's own docker-archive (the Docker < 25 shape), as found with containerd 1.6 here:
//! containerd's importer sees no `oci-layout`, takes its Docker v1.x path, and names images only
//! from `RepoTags`; skopeo writes `"RepoTags":[]` unless the destination reference has a tag, and
//! such an archive imports *nothing*, silently, exit 0 (skopeo issue #2568). A tagged skopeo
//! archive imports. The "overlayfs whiteout" errors of #2776 come from unpacking layers inside a
//! nested container, which no archive shape changes. ferry's archives carry the OCI layout with
//! `index.json` entries named by `io.containerd.image.name` and
//! `org.opencontainers.image.ref.name` (the full reference), so containerd imports them by name
//! (tests/tarfile.rs runs `ctr import`), and `manifest.json` for podman, skopeo and Docker; both
//! describe the same config and layers. An untagged image still imports nothing into containerd,
//! so the writer warns about it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use super::archive::TarArchive;
use super::blob_path;
use super::compressed::{Compression, Sniffed};
use super::error::ArchiveError;
use super::index::normalize_name;
use super::oci::{self, OciIndex, OciLayout};
use super::reference::{DockerSelector, RepoTag};
use super::writer::TarWriter;
use crate::digest::{ByteStream, Digest};
use crate::manifest::{self, Descriptor};

/// The table of contents.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The legacy `{name: {tag: id}}` map.
pub const REPOSITORIES_FILE: &str = "repositories";
/// The media type of a docker image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";
/// The media type of an uncompressed docker layer, which ferry's generated manifests give the
/// (uncompressed) layers of a docker archive.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// The layer media type containers/image writes into the manifest it generates for a docker
/// archive (`manifest.DockerV2Schema2LayerMediaType`, the gzip one, although the layers are
/// uncompressed: its copy re-detects compression anyway). Only for matching skopeo's digests.
pub const CONTAINERS_IMAGE_LAYER_MEDIA_TYPE: &str =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// One element of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestItem {
    /// The config's entry name.
    #[serde(rename = "Config")]
    pub config: String,
    /// `name:tag` references (Docker writes familiar names, containers/image full ones).
    #[serde(rename = "RepoTags", default, deserialize_with = "null_as_empty")]
    pub repo_tags: Vec<String>,
    /// The layers' entry names, bottom first.
    #[serde(rename = "Layers", default, deserialize_with = "null_as_empty")]
    pub layers: Vec<String>,
    /// The parent image's ID (legacy; not used).
    #[serde(rename = "Parent", default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Descriptors of foreign layers, by DiffID.
    #[serde(
        rename = "LayerSources",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub layer_sources: Option<BTreeMap<Digest, Descriptor>>,
}

/// The legacy `repositories` file: repository → tag → image (top layer) ID.
pub type Repositories = BTreeMap<String, BTreeMap<String, String>>;

/// The parts of an image config the archive formats need.
#[derive(Deserialize)]
struct ConfigRootfs {
    rootfs: Option<RootFs>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<Digest>,
}

/// A schema 2 descriptor, fields in the order Go's `manifest.Schema2Descriptor` marshals them,
/// so that the generated manifest is byte for byte containers/image's.
#[derive(Serialize)]
struct Schema2Descriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    size: u64,
    digest: &'a Digest,
}

#[derive(Serialize)]
struct Schema2<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: Schema2Descriptor<'a>,
    layers: Vec<Schema2Descriptor<'a>>,
}

/// The Docker schema 2 manifest of an image: config and uncompressed layers (named by DiffID)
/// of `layer_media_type` ([`LAYER_MEDIA_TYPE`], or [`CONTAINERS_IMAGE_LAYER_MEDIA_TYPE`] for the
/// bytes containers/image generates), in the JSON form containers/image generates.
pub fn schema2_manifest(
    config_digest: &Digest,
    config_size: u64,
    layers: &[(Digest, u64)],
    layer_media_type: &str,
) -> Vec<u8> {
    let m = Schema2 {
        schema_version: 2,
        media_type: manifest::DOCKER_V2S2,
        config: Schema2Descriptor {
            media_type: CONFIG_MEDIA_TYPE,
            size: config_size,
            digest: config_digest,
        },
        layers: layers
            .iter()
            .map(|(digest, size)| Schema2Descriptor {
                media_type: layer_media_type,
                size: *size,
                digest,
            })
            .collect(),
    };
    // Serialising plain strings and numbers into a Vec cannot fail.
    serde_json::to_vec(&m).unwrap_or_default()
}

fn diff_ids(config: &[u8]) -> Result<Vec<Digest>, String> {
    let parsed: ConfigRootfs =
        serde_json::from_slice(config).map_err(|e| format!("not an image config: {e}"))?;
    parsed
        .rootfs
        .map(|r| r.diff_ids)
        .ok_or_else(|| "Invalid image config (rootFS is not set)".to_string())
}

/// A docker archive, indexed, with its `manifest.json` read.
#[derive(Debug, Clone)]
pub struct DockerArchive {
    tar: TarArchive,
    items: Vec<ManifestItem>,
}

/// One layer of an image in a docker archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerLayer {
    /// Its DiffID: the digest of the uncompressed layer tar, which names it in the generated
    /// manifest.
    pub diff_id: Digest,
    /// The entry holding it (links resolved).
    pub entry: String,
    /// Its uncompressed size.
    pub size: u64,
    /// How the entry is compressed, if it is (containers/image decompresses such layers).
    pub compression: Option<Compression>,
}

/// An image of a docker archive, ready to copy: its config, generated manifest and layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerImage {
    /// Its position in `manifest.json`.
    pub position: usize,
    /// The manifest.json element.
    pub item: ManifestItem,
    /// The config bytes.
    pub config: Vec<u8>,
    /// The config's sha256.
    pub config_digest: Digest,
    /// The generated Docker schema 2 manifest, its layers typed as what they are
    /// (uncompressed): the manifest to copy.
    pub manifest: Vec<u8>,
    /// Its sha256.
    pub manifest_digest: Digest,
    /// The manifest containers/image generates for the same image, byte for byte (its layers
    /// typed gzip, see [`CONTAINERS_IMAGE_LAYER_MEDIA_TYPE`]): what `skopeo inspect --raw`
    /// prints, for reporting the digest skopeo reports. Not for copying.
    pub containers_image_manifest: Vec<u8>,
    /// The distinct layers, by DiffID, in order of first use.
    pub layers: Vec<DockerLayer>,
}

impl DockerImage {
    /// The layer with this DiffID.
    pub fn layer(&self, diff_id: &Digest) -> Option<&DockerLayer> {
        self.layers.iter().find(|l| &l.diff_id == diff_id)
    }
}

impl DockerArchive {
    /// Opens, indexes and reads `manifest.json` of the archive at `path`.
    pub async fn open(path: &Path) -> Result<DockerArchive, ArchiveError> {
        DockerArchive::from_tar(TarArchive::open(path).await?).await
    }

    /// Reads `manifest.json` of an opened archive.
    pub async fn from_tar(tar: TarArchive) -> Result<DockerArchive, ArchiveError> {
        let path = tar.path().to_path_buf();
        if !tar.contains(MANIFEST_FILE) {
            return Err(ArchiveError::format(
                &path,
                "not a docker-archive: it has no manifest.json (is it an oci-archive, or an archive from `docker save` before Docker 1.10?)",
            ));
        }
        let bytes = tar
            .read_small(MANIFEST_FILE, crate::limits::MAX_MANIFEST, "manifest.json")
            .await?;
        let items: Vec<ManifestItem> =
            serde_json::from_slice(&bytes).map_err(|source| ArchiveError::Json {
                archive: path,
                entry: MANIFEST_FILE.into(),
                what: "a docker-archive manifest.json",
                source,
            })?;
        Ok(DockerArchive { tar, items })
    }

    /// The underlying tar archive.
    pub fn tar(&self) -> &TarArchive {
        &self.tar
    }

    /// The elements of `manifest.json`.
    pub fn items(&self) -> &[ManifestItem] {
        &self.items
    }

    /// The legacy `repositories` map, if the archive has one.
    pub async fn repositories(&self) -> Result<Option<Repositories>, ArchiveError> {
        if !self.tar.contains(REPOSITORIES_FILE) {
            return Ok(None);
        }
        let bytes = self
            .tar
            .read_small(
                REPOSITORIES_FILE,
                crate::limits::MAX_CONFIG_FILE,
                "repositories",
            )
            .await?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| ArchiveError::Json {
                archive: self.tar.path().to_path_buf(),
                entry: REPOSITORIES_FILE.into(),
                what: "a repositories map",
                source,
            })
    }

    fn available(&self) -> Vec<String> {
        self.items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                if item.repo_tags.is_empty() {
                    format!("@{i} (untagged)")
                } else {
                    format!("@{i} {}", item.repo_tags.join(" "))
                }
            })
            .collect()
    }

    /// The position in `manifest.json` of the image `selector` picks, and for a tag, the
    /// position of the matching RepoTag (containers/image `ChooseManifestItem`).
    pub fn select(
        &self,
        selector: &DockerSelector,
    ) -> Result<(usize, Option<usize>), ArchiveError> {
        let path = self.tar.path().to_path_buf();
        match selector {
            DockerSelector::Tag(wanted) => {
                for (i, item) in self.items.iter().enumerate() {
                    for (t, tag) in item.repo_tags.iter().enumerate() {
                        let parsed = RepoTag::parse(tag).map_err(|e| {
                            ArchiveError::format(
                                &path,
                                format!("Invalid tag {tag:?} in manifest.json item @{i}: {e}"),
                            )
                        })?;
                        if &parsed == wanted {
                            return Ok((i, Some(t)));
                        }
                    }
                }
                Err(ArchiveError::ImageNotFound {
                    archive: path,
                    wanted: wanted.to_string(),
                    available: self.available(),
                })
            }
            DockerSelector::Index(i) if *i < self.items.len() => Ok((*i, None)),
            DockerSelector::Index(i) => Err(ArchiveError::ImageNotFound {
                archive: path,
                wanted: format!("@{i} (only {} manifest items available)", self.items.len()),
                available: self.available(),
            }),
            DockerSelector::Only => match self.items.len() {
                1 => Ok((0, None)),
                n => Err(ArchiveError::AmbiguousImage {
                    archive: path,
                    count: n,
                    how: "docker-archive:PATH:NAME:TAG or docker-archive:PATH:@N",
                    available: self.available(),
                }),
            },
        }
    }

    /// Reads image `position` of `manifest.json`: its config, its layers' entries and sizes,
    /// and the manifest containers/image generates for it. A compressed layer entry is read
    /// through once to learn its uncompressed size (containers/image does the same).
    pub async fn image(&self, position: usize) -> Result<DockerImage, ArchiveError> {
        let path = self.tar.path().to_path_buf();
        let item = self
            .items
            .get(position)
            .ok_or_else(|| ArchiveError::ImageNotFound {
                archive: path.clone(),
                wanted: format!("@{position}"),
                available: self.available(),
            })?;
        let config = self
            .tar
            .read_small(
                &item.config,
                crate::limits::MAX_CONFIG_BLOB,
                "an image config",
            )
            .await?;
        let ids = diff_ids(&config)
            .map_err(|p| ArchiveError::format(&path, format!("config {:?}: {p}", item.config)))?;
        if ids.len() != item.layers.len() {
            return Err(ArchiveError::format(
                &path,
                format!(
                    "Inconsistent layer count: {} in manifest, {} in config",
                    item.layers.len(),
                    ids.len()
                ),
            ));
        }
        let mut layers: Vec<DockerLayer> = Vec::new();
        let mut by_entry: HashMap<String, Digest> = HashMap::new();
        for (diff_id, layer_path) in ids.iter().zip(&item.layers) {
            if layers.iter().any(|l| &l.diff_id == diff_id) {
                // The same layer twice in one image (docker save links the copies).
                continue;
            }
            let name = normalize_name(layer_path).unwrap_or_else(|_| layer_path.clone());
            if let Some(other) = by_entry.get(&name)
                && other != diff_id
            {
                return Err(ArchiveError::format(
                    &path,
                    format!("Layer tarfile {name:?} used for two different DiffID values"),
                ));
            }
            let entry = self.tar.entry(&name)?;
            let compression = match self.tar.sniff_entry(entry).await? {
                Sniffed::Compressed(c) => Some(c),
                Sniffed::Plain | Sniffed::Bzip2 => None,
            };
            let size = match compression {
                None => entry.size,
                Some(c) => self.count_decompressed(entry, c).await?,
            };
            by_entry.insert(name, diff_id.clone());
            layers.push(DockerLayer {
                diff_id: diff_id.clone(),
                entry: entry.name.clone(),
                size,
                compression,
            });
        }
        let config_digest = Digest::sha256_of(&config);
        let listed: Vec<(Digest, u64)> = ids
            .iter()
            .map(|id| {
                let size = layers
                    .iter()
                    .find(|l| &l.diff_id == id)
                    .map_or(0, |l| l.size);
                (id.clone(), size)
            })
            .collect();
        let manifest = schema2_manifest(
            &config_digest,
            config.len() as u64,
            &listed,
            LAYER_MEDIA_TYPE,
        );
        let containers_image_manifest = schema2_manifest(
            &config_digest,
            config.len() as u64,
            &listed,
            CONTAINERS_IMAGE_LAYER_MEDIA_TYPE,
        );
        Ok(DockerImage {
            containers_image_manifest,
            position,
            item: item.clone(),
            manifest_digest: Digest::sha256_of(&manifest),
            manifest,
            config_digest,
            config,
            layers,
        })
    }

    async fn count_decompressed(
        &self,
        entry: &super::Entry,
        c: Compression,
    ) -> Result<u64, ArchiveError> {
        let reader = self.tar.blocking_reader(entry);
        let (path, name) = (self.tar.path().to_path_buf(), entry.name.clone());
        tokio::task::spawn_blocking(move || {
            let err = |source| ArchiveError::Decompress {
                archive: path.clone(),
                entry: Some(name.clone()),
                format: c.name(),
                source,
            };
            let mut d = super::compressed::decoder(c, reader).map_err(err)?;
            std::io::copy(&mut d, &mut std::io::sink()).map_err(err)
        })
        .await
        .map_err(|e| {
            ArchiveError::io(self.tar.path(), "reading a layer", std::io::Error::other(e))
        })?
    }

    /// The uncompressed content of a layer (unverified: the copy checks it against the DiffID
    /// the manifest names it by).
    pub fn layer_stream(&self, layer: &DockerLayer) -> Result<ByteStream, ArchiveError> {
        let entry = self.tar.entry(&layer.entry)?;
        Ok(match layer.compression {
            None => self.tar.stream_entry(entry),
            Some(c) => self.tar.decompressed_stream(entry, c),
        })
    }
}

/// Writes a docker archive with any number of images, in the Docker 25+ shape: blobs in an OCI
/// layout, `manifest.json`, `repositories` and `index.json` (see the module doc for why).
/// Layers must be given uncompressed, named by their DiffIDs, as the format requires.
#[derive(Debug)]
pub struct DockerArchiveWriter {
    tar: TarWriter,
    blobs: HashMap<Digest, u64>,
    items: Vec<ManifestItem>,
    by_config: HashMap<Digest, usize>,
    repositories: Repositories,
    index: Vec<Descriptor>,
    /// Layers written decompressed: the digest of the blob they came as, to their DiffID.
    decompressed: HashMap<Digest, Digest>,
}

/// What [`DockerArchiveWriter::add_image`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenImage {
    /// The digest of the manifest written into the archive's OCI layout (what podman and
    /// containerd see).
    pub manifest_digest: Digest,
    /// The digest skopeo reports for the image read through `manifest.json` (see
    /// [`DockerImage::containers_image_manifest`]).
    pub containers_image_manifest_digest: Digest,
    /// The config's digest (the image ID).
    pub config_digest: Digest,
}

impl DockerArchiveWriter {
    /// Starts an archive that will become `path` when finished (see [`TarWriter`]).
    pub async fn create(path: &Path) -> Result<DockerArchiveWriter, ArchiveError> {
        let mut tar = TarWriter::create(path).await?;
        let layout = serde_json::to_vec(&OciLayout {
            image_layout_version: oci::LAYOUT_VERSION.into(),
        })
        .map_err(|e| ArchiveError::format(path, format!("encoding oci-layout: {e}")))?;
        tar.add_bytes(oci::LAYOUT_FILE, &layout).await?;
        Ok(DockerArchiveWriter {
            tar,
            blobs: HashMap::new(),
            items: Vec::new(),
            by_config: HashMap::new(),
            repositories: Repositories::new(),
            index: Vec::new(),
            decompressed: HashMap::new(),
        })
    }

    /// The path the archive will have once finished.
    pub fn final_path(&self) -> &Path {
        self.tar.final_path()
    }

    /// Writes an uncompressed layer or a config from a stream the caller verifies itself (the
    /// copy pipeline does, as it passes: hashing it twice would double the cost). A stream that
    /// fails leaves nothing; a blob already written is skipped (the stream is not read).
    pub async fn put_verified_stream(
        &mut self,
        digest: &Digest,
        size: u64,
        stream: ByteStream,
    ) -> Result<(), ArchiveError> {
        oci::put_unverified_blob(&mut self.tar, &mut self.blobs, digest, size, stream).await
    }

    /// Writes the uncompressed form of the layer that came as blob `blob` (compressed):
    /// `uncompressed` is its decompressed content, whose digest (the DiffID) `diff_id` gives once
    /// the stream has ended. The entry is named `blobs/sha256/DIFFID` then (see
    /// [`TarWriter::add_unnamed_stream`]); a layer already there is cut off again. Returns the
    /// DiffID and the uncompressed size.
    pub async fn put_decompressed_layer<F>(
        &mut self,
        blob: &Digest,
        uncompressed: ByteStream,
        diff_id: F,
    ) -> Result<(Digest, u64), ArchiveError>
    where
        F: std::future::Future<Output = Result<Digest, String>>,
    {
        let probe = Digest::sha256_of(b"");
        oci::ensure_blob_dirs(&mut self.tar, &probe).await?;
        let size = self.tar.add_unnamed_stream(uncompressed).await?;
        let id = match diff_id.await {
            Ok(id) => id,
            Err(problem) => {
                self.tar.discard_unnamed().await;
                return Err(ArchiveError::Write {
                    archive: self.tar.temp_path().to_path_buf(),
                    entry: format!("the uncompressed layer of {blob}"),
                    problem,
                });
            }
        };
        if self.blobs.contains_key(&id) {
            self.tar.discard_unnamed().await;
        } else {
            self.tar.name_unnamed(&blob_path(&id)).await?;
            self.blobs.insert(id.clone(), size);
        }
        self.decompressed.insert(blob.clone(), id.clone());
        Ok((id, size))
    }

    /// How many images `manifest.json` lists so far.
    pub fn images(&self) -> usize {
        self.items.len()
    }

    /// The DiffID and size of the layer that came as (compressed) blob `blob`, or of the
    /// uncompressed layer `blob`, when it is in the archive already.
    pub fn layer_of(&self, blob: &Digest) -> Option<(Digest, u64)> {
        let id = self.decompressed.get(blob).unwrap_or(blob);
        self.blobs.get(id).map(|size| (id.clone(), *size))
    }

    /// The size of blob `digest` if it was written already.
    pub fn has_blob(&self, digest: &Digest) -> Option<u64> {
        self.blobs.get(digest).copied()
    }

    /// Writes an uncompressed layer (`digest` is its DiffID) or a config from a stream of
    /// `size` bytes, verified as it passes; a blob already written is skipped.
    pub async fn put_blob(
        &mut self,
        digest: &Digest,
        size: u64,
        stream: ByteStream,
    ) -> Result<(), ArchiveError> {
        oci::put_verified_blob(&mut self.tar, &mut self.blobs, digest, size, stream).await
    }

    /// Writes a small blob from bytes; returns its sha256 digest.
    pub async fn put_blob_bytes(&mut self, bytes: &[u8]) -> Result<Digest, ArchiveError> {
        let digest = Digest::sha256_of(bytes);
        let stream: ByteStream = Box::pin(futures::stream::iter(std::iter::once(Ok(
            bytes::Bytes::copy_from_slice(bytes),
        ))));
        self.put_blob(&digest, bytes.len() as u64, stream).await?;
        Ok(digest)
    }

    /// Adds an image: `config` (written here) and its layers, which must have been written with
    /// [`DockerArchiveWriter::put_blob`] and must be the config's `rootfs.diff_ids`, tagged with
    /// `tags` (none: an untagged image). The same config added twice is one image with the
    /// tags of both, as containers/image's writer does.
    pub async fn add_image(
        &mut self,
        config: &[u8],
        tags: &[RepoTag],
    ) -> Result<WrittenImage, ArchiveError> {
        let temp = self.tar.temp_path().to_path_buf();
        let ids = diff_ids(config).map_err(|p| ArchiveError::Write {
            archive: temp.clone(),
            entry: "config".into(),
            problem: p,
        })?;
        let mut layers = Vec::with_capacity(ids.len());
        for id in &ids {
            let size = self
                .blobs
                .get(id)
                .copied()
                .ok_or_else(|| ArchiveError::Write {
                    archive: temp.clone(),
                    entry: blob_path(id),
                    problem: "the image's layer (a DiffID of its config) was not written first"
                        .into(),
                })?;
            layers.push((id.clone(), size));
        }
        let config_digest = self.put_blob_bytes(config).await?;
        let manifest = schema2_manifest(
            &config_digest,
            config.len() as u64,
            &layers,
            LAYER_MEDIA_TYPE,
        );
        let manifest_digest = self.put_blob_bytes(&manifest).await?;
        let containers_image_manifest_digest = Digest::sha256_of(&schema2_manifest(
            &config_digest,
            config.len() as u64,
            &layers,
            CONTAINERS_IMAGE_LAYER_MEDIA_TYPE,
        ));

        let position = match self.by_config.get(&config_digest) {
            Some(&i) => i,
            None => {
                self.items.push(ManifestItem {
                    config: blob_path(&config_digest),
                    repo_tags: Vec::new(),
                    layers: ids.iter().map(blob_path).collect(),
                    parent: None,
                    layer_sources: None,
                });
                self.by_config
                    .insert(config_digest.clone(), self.items.len() - 1);
                self.items.len() - 1
            }
        };
        let descriptor = |name: Option<&RepoTag>| Descriptor {
            media_type: manifest::DOCKER_V2S2.to_string(),
            digest: manifest_digest.clone(),
            size: manifest.len() as u64,
            urls: None,
            annotations: name.map(|t| {
                BTreeMap::from([
                    (oci::CONTAINERD_IMAGE_NAME.to_string(), t.to_string()),
                    (oci::REF_NAME.to_string(), t.to_string()),
                ])
            }),
            platform: None,
        };
        if tags.is_empty() {
            // containerd's importer (ctr import, k3s) names images only from these names and
            // silently imports nothing for an unnamed one (skopeo issue #2568).
            tracing::warn!(
                archive = %self.tar.final_path().display(),
                image = %config_digest,
                "an untagged image in a docker-archive: podman and docker load it, but ctr import and k3s ignore it"
            );
            oci::add_to_index(&mut self.index, descriptor(None));
        }
        for tag in tags {
            let full = tag.to_string();
            if let Some(item) = self.items.get_mut(position)
                && !item.repo_tags.contains(&full)
            {
                item.repo_tags.push(full);
            }
            // Docker records the top layer's ID; with no legacy layer directories, the top
            // layer's DiffID hex (Docker 25 does the same).
            if let Some((top, _)) = layers.last() {
                self.repositories
                    .entry(tag.name().to_string())
                    .or_default()
                    .insert(tag.tag().to_string(), top.hex().to_string());
            }
            oci::add_to_index(&mut self.index, descriptor(Some(tag)));
        }
        Ok(WrittenImage {
            manifest_digest,
            containers_image_manifest_digest,
            config_digest,
        })
    }

    /// Writes `manifest.json`, `repositories` and `index.json`, and makes the archive appear at
    /// its path.
    pub async fn finish(mut self) -> Result<PathBuf, ArchiveError> {
        let temp = self.tar.temp_path().to_path_buf();
        let encode = |what: &str, r: serde_json::Result<Vec<u8>>| {
            r.map_err(|e| ArchiveError::format(&temp, format!("encoding {what}: {e}")))
        };
        let manifest = encode(MANIFEST_FILE, serde_json::to_vec(&self.items))?;
        let repositories = encode(REPOSITORIES_FILE, serde_json::to_vec(&self.repositories))?;
        let index = encode(
            oci::INDEX_FILE,
            serde_json::to_vec(&OciIndex {
                schema_version: 2,
                media_type: Some(manifest::OCI_INDEX.to_string()),
                manifests: std::mem::take(&mut self.index),
                annotations: None,
            }),
        )?;
        self.tar.add_bytes(oci::INDEX_FILE, &index).await?;
        self.tar.add_bytes(MANIFEST_FILE, &manifest).await?;
        self.tar.add_bytes(REPOSITORIES_FILE, &repositories).await?;
        self.tar.finish().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_item_reads_docker_and_containers_image_forms() {
        let docker = br#"[{"Config":"a.json","RepoTags":null,"Layers":["x/layer.tar"]}]"#;
        let items: Vec<ManifestItem> = serde_json::from_slice(docker).unwrap();
        assert!(items[0].repo_tags.is_empty());
        let ci =
            br#"[{"Config":"a.json","RepoTags":["docker.io/library/busybox:latest"],"Layers":[]}]"#;
        let items: Vec<ManifestItem> = serde_json::from_slice(ci).unwrap();
        assert_eq!(items[0].repo_tags.len(), 1);
        let out = serde_json::to_string(&items).unwrap();
        assert_eq!(
            out,
            r#"[{"Config":"a.json","RepoTags":["docker.io/library/busybox:latest"],"Layers":[]}]"#
        );
    }

    #[test]
    fn generated_manifest_matches_go_field_order() {
        let c = Digest::sha256_of(b"c");
        let l = Digest::sha256_of(b"l");
        let m = String::from_utf8(schema2_manifest(
            &c,
            1,
            &[(l.clone(), 2)],
            CONTAINERS_IMAGE_LAYER_MEDIA_TYPE,
        ))
        .unwrap();
        assert_eq!(
            m,
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":1,"digest":"{c}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":2,"digest":"{l}"}}]}}"#
            )
        );
    }
}
