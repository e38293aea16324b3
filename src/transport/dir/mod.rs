//! `dir:PATH`: the containers directory format that skopeo reads and writes: `version`,
//! `manifest.json`, blobs named by their hex digest, `signature-N`; for the instances of a
//! list, `HEX.manifest.json` and `HEX.signature-N`.
//!
//! A destination is built in a temporary sibling directory and swapped into place on commit,
//! so a failed copy leaves nothing at PATH (and an image already there stays whole).

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::fsutil::{self, TEMP_PREFIX, TempSession};
use super::*;

pub mod reference;
pub use reference::Reference;

/// The `dir:` transport.
pub struct DirTransport;

#[async_trait]
impl Transport for DirTransport {
    fn name(&self) -> &'static str {
        reference::NAME
    }
    fn grammar(&self) -> &'static str {
        "dir:PATH"
    }
    fn parse(&self, within: &str) -> std::result::Result<ImageReference, ReferenceError> {
        Reference::parse(within)
    }
    fn sync_destination(
        &self,
        name: &str,
    ) -> Option<std::result::Result<ImageReference, ReferenceError>> {
        Some(Reference::parse(name))
    }
    async fn open_source(
        &self,
        _session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
    ) -> Result<Box<dyn ImageSource>> {
        let own = registry::own::<Reference>(reference)?;
        Ok(Box::new(DirSource::open(reference.clone(), &own.path)?))
    }
    async fn open_destination(
        &self,
        _session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
    ) -> Result<Box<dyn ImageDestination>> {
        let own = registry::own::<Reference>(reference)?;
        Ok(Box::new(DirDestination::open(
            reference.clone(),
            &own.path,
        )?))
    }
    async fn present(
        &self,
        _session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
    ) -> Result<Option<Present>> {
        let path = &registry::own::<Reference>(reference)?.path;
        let m = path.join(manifest_name(None));
        if !m.is_file() {
            return Ok(None);
        }
        let bytes = fsutil::read_manifest_file(&m)?;
        let n = (1..)
            .take_while(|i| path.join(signature_name(None, *i)).is_file())
            .count();
        let incomplete = fsutil::incomplete_image(&bytes, &|d| path.join(d.hex()), &|d| {
            fsutil::read_manifest_file(&path.join(manifest_name(Some(d)))).ok()
        });
        Ok(Some(
            Present::new(Digest::sha256_of(&bytes), n).with_incomplete(incomplete),
        ))
    }

    /// The `dir:` images beside this one whose directory is named `NAME:TAG` with this one's
    /// NAME (how a sync names them): a repository of `dir:` images is one directory's
    /// `app:v1`, `app:v2`, …
    async fn list_repository(
        &self,
        _session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
    ) -> Result<Vec<HeldImage>> {
        let path = &registry::own::<Reference>(reference)?.path;
        let (parent, prefix) = repository_of(path)?;
        let rd = match std::fs::read_dir(&parent) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(TransportError::io(&parent, e)),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(|e| TransportError::io(&parent, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(tag) = name.strip_prefix(&prefix) else {
                continue;
            };
            // Only dir: images: a directory with ferry's or skopeo's `version` file.
            if !tag.is_empty() && e.path().join("version").is_file() {
                out.push(HeldImage::new(tag, Reference::image(e.path())));
            }
        }
        out.sort_by(|a, b| a.tag.cmp(&b.tag));
        Ok(out)
    }

    /// Removes the image's directory (its signatures are files in it): renamed aside first,
    /// under this copy's temporary prefix, so a kill midway leaves either the whole image or a
    /// temporary the next copy into the same directory removes. Each `dir:` image holds its
    /// own blobs and signatures, so nothing another image needs goes with it.
    async fn delete(
        &self,
        _session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
        _request: &DeleteRequest,
    ) -> Result<Option<Deletion>> {
        let path = registry::own::<Reference>(reference)?.path.clone();
        let m = path.join(manifest_name(None));
        if !m.is_file() {
            return Ok(None);
        }
        let digest = Digest::sha256_of(&fsutil::read_manifest_file(&m)?);
        let signatures = std::fs::read_dir(&path)
            .map_err(|e| TransportError::io(&path, e))?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("signature-"))
            .count();
        let (parent, _) = repository_of(&path)?;
        let session = TempSession::start(&parent, 0)?;
        let aside = parent.join(format!("{}deleted", session.prefix()));
        std::fs::rename(&path, &aside).map_err(|e| TransportError::io(&path, e))?;
        fsutil::sync_dir(&parent);
        std::fs::remove_dir_all(&aside).map_err(|e| TransportError::io(&aside, e))?;
        let removed = if signatures > 0 {
            vec![format!(
                "{signatures} signature file(s) in {}",
                path.display()
            )]
        } else {
            Vec::new()
        };
        Ok(Some(Deletion::whole(digest, removed)))
    }
}

/// The directory holding a `dir:` image named `NAME:TAG` and the prefix `NAME:` its
/// repository's images share.
fn repository_of(path: &Path) -> Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some((repo, _)) = name.split_once(':') else {
        return Err(TransportError::Unsupported(format!(
            "{}: not named NAME:TAG, so it belongs to no repository of dir: images",
            path.display()
        )));
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, format!("{repo}:")))
}

/// The content of the `version` file.
pub const VERSION: &str = "Directory Transport Version: 1.1\n";

fn manifest_name(instance: Option<&Digest>) -> String {
    match instance {
        None => "manifest.json".into(),
        Some(d) => format!("{}.manifest.json", d.hex()),
    }
}

fn signature_name(instance: Option<&Digest>, n: usize) -> String {
    match instance {
        None => format!("signature-{n}"),
        Some(d) => format!("{}.signature-{n}", d.hex()),
    }
}

/// Reads a `dir:` image.
pub struct DirSource {
    reference: ImageReference,
    path: PathBuf,
}

impl DirSource {
    /// Opens the directory `path` (of `reference`) for reading.
    pub fn open(reference: ImageReference, path: &Path) -> Result<DirSource> {
        let meta = std::fs::metadata(path).map_err(|e| TransportError::io(path, e))?;
        if !meta.is_dir() {
            return Err(TransportError::InvalidLayout {
                path: path.to_path_buf(),
                why: "is not a directory".into(),
            });
        }
        if let Ok(v) = std::fs::read_to_string(path.join("version"))
            && !v.starts_with("Directory Transport Version: 1.")
        {
            return Err(TransportError::InvalidLayout {
                path: path.join("version"),
                why: format!("unsupported directory transport version {:?}", v.trim()),
            });
        }
        Ok(DirSource {
            reference,
            path: path.to_path_buf(),
        })
    }
}

#[async_trait]
impl ImageSource for DirSource {
    fn reference(&self) -> &ImageReference {
        &self.reference
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<RawManifest> {
        let p = self.path.join(manifest_name(instance));
        let bytes = fsutil::read_manifest_file(&p)?;
        crate::manifest::detect(&bytes, None).map_err(|source| TransportError::Manifest {
            what: p.display().to_string(),
            source,
        })?;
        Ok(RawManifest {
            bytes: bytes.into(),
            media_type: None,
        })
    }

    async fn blob(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        fsutil::file_stream(&self.path.join(descriptor.digest.hex())).await
    }

    async fn signatures(
        &self,
        _manifest_digest: &Digest,
        instance: Option<&Digest>,
    ) -> Result<SignatureSet> {
        let dir = self.path.clone();
        let searched = format!(
            "the files {} in {}",
            signature_name(instance, 1).replace("-1", "-N"),
            self.path.display()
        );
        let instance = instance.cloned();
        let slots = tokio::task::spawn_blocking(move || {
            fsutil::read_signature_files(&dir, |n| signature_name(instance.as_ref(), n))
        })
        .await
        .map_err(|e| TransportError::Unsupported(format!("reading signatures failed: {e}")))?;
        Ok(SignatureSet::new(slots, searched))
    }
}

/// Writes a `dir:` image.
pub struct DirDestination {
    reference: ImageReference,
    path: PathBuf,
    staging: tempfile::TempDir,
    // Last, so it drops after the staging directory: it removes anything left beside it.
    session: TempSession,
}

impl DirDestination {
    /// Opens a directory for writing. An existing directory must be empty or hold a `dir:`
    /// image (which the copy replaces on commit).
    pub fn open(reference: ImageReference, path: &Path) -> Result<DirDestination> {
        match std::fs::read_dir(path) {
            Ok(mut entries) => {
                let empty = entries.next().is_none();
                if !empty && !path.join("version").exists() {
                    return Err(TransportError::InvalidLayout {
                        path: path.to_path_buf(),
                        why: "refusing to overwrite a non-empty directory that is not a dir: image (it has no `version` file); choose an empty or new directory".into(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(TransportError::io(path, e)),
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // The image is built in a staging directory beside its final place; a killed copy's
        // staging directories are removed by the next copy into the same parent.
        let session = TempSession::start(&parent, 0)?;
        let staging = tempfile::Builder::new()
            .prefix(&session.prefix())
            .tempdir_in(&parent)
            .map_err(|e| TransportError::io(&parent, e))?;
        Ok(DirDestination {
            reference,
            path: path.to_path_buf(),
            staging,
            session,
        })
    }
}

#[async_trait]
impl ImageDestination for DirDestination {
    fn reference(&self) -> &ImageReference {
        &self.reference
    }

    fn signature_support(&self, _kind: crate::signature::sniff::Format) -> SignatureSupport {
        SignatureSupport::Yes
    }

    async fn try_reuse_blob(
        &self,
        _descriptor: &Descriptor,
        _source: &ImageReference,
    ) -> Result<bool> {
        Ok(false)
    }

    async fn put_blob(
        &self,
        _admission: &Admission,
        descriptor: &Descriptor,
        stream: ByteStream,
    ) -> Result<()> {
        let dir = self.staging.path();
        let tmp = fsutil::stream_to_temp(dir, TEMP_PREFIX, stream).await?;
        fsutil::persist(tmp, &dir.join(descriptor.digest.hex()))
    }

    async fn put_manifest(
        &self,
        _admission: &Admission,
        manifest: &RawManifest,
        instance: Option<&Digest>,
    ) -> Result<()> {
        let p = self.staging.path().join(manifest_name(instance));
        std::fs::write(&p, &manifest.bytes).map_err(|e| TransportError::io(&p, e))
    }

    async fn put_signatures(
        &self,
        _admission: &Admission,
        _manifest_digest: &Digest,
        instance: Option<&Digest>,
        signatures: &[Vec<u8>],
    ) -> Result<()> {
        for (i, s) in signatures.iter().enumerate() {
            let p = self.staging.path().join(signature_name(instance, i + 1));
            std::fs::write(&p, s).map_err(|e| TransportError::io(&p, e))?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>, _admission: &Admission) -> Result<()> {
        let staging = self.staging.path().to_path_buf();
        std::fs::write(staging.join("version"), VERSION)
            .map_err(|e| TransportError::io(staging.join("version"), e))?;
        fsutil::sync_dir(&staging);
        let staging = self.staging.keep();
        // Swap: the old image (if any) moves aside, the new one takes its name, the old goes.
        let old = if self.path.exists() {
            let parent = staging.parent().unwrap_or(Path::new("."));
            let aside = tempfile::Builder::new()
                .prefix(&self.session.prefix())
                .tempdir_in(parent)
                .map_err(|e| TransportError::io(parent, e))?
                .keep();
            let aside = aside.join("old");
            std::fs::rename(&self.path, &aside).map_err(|e| TransportError::io(&self.path, e))?;
            Some(aside)
        } else {
            None
        };
        if let Err(e) = std::fs::rename(&staging, &self.path) {
            if let Some(old) = &old {
                let _ = std::fs::rename(old, &self.path);
            }
            let _ = std::fs::remove_dir_all(&staging);
            return Err(TransportError::io(&self.path, e));
        }
        if let Some(old) = old
            && let Some(holder) = old.parent()
        {
            let _ = std::fs::remove_dir_all(holder);
        }
        if let Some(parent) = self.path.parent() {
            fsutil::sync_dir(parent);
        }
        Ok(())
    }
}
