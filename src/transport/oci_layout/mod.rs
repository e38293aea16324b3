//! `oci:PATH[:NAME]`: an OCI image layout (`oci-layout`, `index.json`, `blobs/ALG/HEX`); NAME
//! is the `org.opencontainers.image.ref.name` annotation of an `index.json` entry.
//!
//! Blobs are content-addressed, written to temp files and renamed into place; `index.json` is
//! replaced atomically last, on commit, so a failed copy adds no image to the index. The same
//! [`Layout`] code is the base of ferry's store.
//!
//! A shared blob directory (skopeo's `--src-shared-blob-dir` / `--dest-shared-blob-dir`, as
//! build caches use: many layouts, one `ALG/HEX` store of blobs) replaces the layout's own
//! `blobs/` for every blob, manifests included, as containers/image's `blobPath` does; the
//! layout keeps `oci-layout`, `index.json` and an empty `blobs/`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::fsutil::{self, TEMP_PREFIX, TempSession};
use super::referrers::{Attached, Referrers};
use super::*;

pub(crate) mod attached;
pub mod reference;
pub use reference::Reference;

/// The `oci:` transport.
pub struct OciTransport;

#[async_trait]
impl Transport for OciTransport {
    fn name(&self) -> &'static str {
        reference::NAME
    }
    fn grammar(&self) -> &'static str {
        "oci:PATH[:NAME]"
    }
    fn parse(&self, within: &str) -> std::result::Result<ImageReference, ReferenceError> {
        Reference::parse(within)
    }
    /// `DESTINATION/app:v1` is the layout `DESTINATION/app` holding the image named `v1`.
    fn sync_destination(
        &self,
        name: &str,
    ) -> Option<std::result::Result<ImageReference, ReferenceError>> {
        let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
        let tail = name.get(slash..).unwrap_or_default();
        let (path, tag) = match tail.find(['@', ':']) {
            Some(i) => (
                name.get(..slash + i).unwrap_or_default(),
                tail.get(i + 1..).unwrap_or_default(),
            ),
            None => (name, "latest"),
        };
        Some(Reference::parse(&format!("{path}:{tag}")))
    }
    async fn open_source(
        &self,
        _session: &Session,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Box<dyn ImageSource>> {
        let own = registry::own::<Reference>(reference)?;
        Ok(Box::new(
            OciLayoutSource::open(reference.clone(), &own.path, own.tag.as_deref())?
                .with_referrers(options.referrers)
                .with_shared_blobs(options.shared_blob_dir.as_deref()),
        ))
    }
    async fn open_destination(
        &self,
        _session: &Session,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Box<dyn ImageDestination>> {
        let own = registry::own::<Reference>(reference)?;
        Ok(Box::new(
            OciLayoutDestination::open(reference.clone(), &own.path, own.tag.as_deref())?
                .with_shared_blobs(options.shared_blob_dir.as_deref())?,
        ))
    }
    async fn present(
        &self,
        session: &Session,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Option<Present>> {
        let own = registry::own::<Reference>(reference)?;
        if !own.path.join("index.json").is_file() {
            return Ok(None);
        }
        match Layout::new(&own.path).find(own.tag.as_deref()) {
            Ok(d) => {
                // The layout keeps sigstore signatures beside the image (the `.sig` attachment,
                // bundles among its referrers): counting them is a local read.
                let layout = self.open_source(session, reference, options).await?;
                let n = layout.signatures(&d.digest, None).await?.slots.len();
                let l = Layout::new(&own.path);
                let incomplete = match l.read_manifest_blob(&d.digest) {
                    Ok(bytes) => fsutil::incomplete_image(&bytes, &|b| l.blob_path(b), &|i| {
                        l.read_manifest_blob(i).ok().map(|b| b.to_vec())
                    }),
                    Err(e) => Some(format!("its manifest cannot be read: {e}")),
                };
                Ok(Some(Present::new(d.digest, n).with_incomplete(incomplete)))
            }
            Err(TransportError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The images named in the layout (a sync's repository is one layout), not what is
    /// attached to them.
    async fn list_repository(
        &self,
        _session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
    ) -> Result<Vec<HeldImage>> {
        let own = registry::own::<Reference>(reference)?;
        if !own.path.join("index.json").is_file() {
            return Ok(Vec::new());
        }
        Ok(Layout::new(&own.path)
            .entries()?
            .into_iter()
            .filter(|(n, d)| !is_attached_entry(n.as_deref(), d))
            .filter_map(|(n, _)| n)
            .map(|n| {
                let r = Reference::image(own.path.clone(), Some(n.clone()));
                HeldImage::new(n, r)
            })
            .collect())
    }

    /// Removes the name from `index.json` (one atomic replace, under the layout's lock) and,
    /// unless another name in the layout (or `request.keep`) still needs its manifest, the
    /// entries of what is attached to it: its `sha256-HEX.sig`/`.att`/`.sbom` and its
    /// referrers (and theirs). Blobs stay, as files nothing names: a layout has no collector,
    /// and a copy writing into it now may be about to name them.
    async fn delete(
        &self,
        _session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
        request: &DeleteRequest,
    ) -> Result<Option<Deletion>> {
        let own = registry::own::<Reference>(reference)?;
        let Some(tag) = own.tag.as_deref() else {
            return Err(TransportError::Unsupported(format!(
                "{reference}: name the image to delete (oci:PATH:NAME)"
            )));
        };
        if !own.path.join("index.json").is_file() {
            return Ok(None);
        }
        let _lock = fsutil::FileLock::acquire_dir(own.path.clone()).await?;
        let session = TempSession::start(&own.path, 0)?;
        let layout = Layout::new(&own.path).with_temp_prefix(session.prefix());
        let entries = layout.entries()?;
        let Some(digest) = entries
            .iter()
            .find(|(n, _)| n.as_deref() == Some(tag))
            .map(|(_, d)| d.digest.clone())
        else {
            return Ok(None);
        };
        let shared = request.keep.contains(&digest)
            || entries.iter().any(|(n, d)| {
                n.as_deref() != Some(tag)
                    && !is_attached_entry(n.as_deref(), d)
                    && d.digest == digest
            });
        let mut gone: Vec<(Option<String>, Digest)> = vec![(Some(tag.to_string()), digest.clone())];
        let mut removed = Vec::new();
        if !shared {
            // What is attached to the image, and to what is attached to it (a signature of
            // an SBOM), a few levels down.
            let mut subjects = vec![digest.clone()];
            for _ in 0..4 {
                let mut next = Vec::new();
                for subject in &subjects {
                    let tags: Vec<String> = referrers::cosign_artifact_tags()
                        .iter()
                        .map(|(suffix, _)| referrers::cosign_tag(subject, suffix))
                        .chain(std::iter::once(attachments::signature_tag(subject)))
                        .collect();
                    let referring = attached::referrers_of(&layout, &entries, subject).await;
                    for (n, d) in &entries {
                        let attached = match n {
                            Some(n) => tags.contains(n),
                            None => referring.iter().any(|r| r.digest == d.digest),
                        };
                        if attached && !gone.iter().any(|(gn, gd)| gn == n && gd == &d.digest) {
                            removed.push(match n {
                                Some(n) => format!("the attachment {n}"),
                                None => format!("the referrer {}", d.digest),
                            });
                            gone.push((n.clone(), d.digest.clone()));
                            next.push(d.digest.clone());
                        }
                    }
                }
                if next.is_empty() {
                    break;
                }
                subjects = next;
            }
        }
        layout.remove_index_entries(&gone)?;
        Ok(Some(if shared {
            Deletion::name_only(digest, "another name in the layout names the same manifest")
        } else {
            Deletion::whole(digest, removed)
        }))
    }
}

/// The annotation that names an image in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image layout on disk.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    temp_prefix: String,
    /// A shared blob directory used instead of `ROOT/blobs`, and the prefix of the
    /// temporaries written there.
    shared_blobs: Option<(PathBuf, String)>,
}

impl Layout {
    /// The layout at `root` (nothing is read yet).
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
            temp_prefix: TEMP_PREFIX.to_string(),
            shared_blobs: None,
        }
    }

    /// The same layout with its blobs in `dir` (`dir/ALG/HEX`) instead of `ROOT/blobs`, blob
    /// temporaries there named with `temp_prefix`.
    pub fn with_shared_blobs(mut self, dir: PathBuf, temp_prefix: String) -> Layout {
        self.shared_blobs = Some((dir, temp_prefix));
        self
    }

    /// The prefix of temporaries beside blobs.
    fn blob_temp_prefix(&self) -> &str {
        match &self.shared_blobs {
            Some((_, prefix)) => prefix,
            None => &self.temp_prefix,
        }
    }

    /// The same layout, naming its temporaries with `prefix` (a session's).
    pub fn with_temp_prefix(mut self, prefix: String) -> Layout {
        self.temp_prefix = prefix;
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob lives.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        let blobs = match &self.shared_blobs {
            Some((dir, _)) => dir.clone(),
            None => self.root.join("blobs"),
        };
        blobs.join(d.algorithm().name()).join(d.hex())
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// The parsed `index.json`.
    pub fn read_index(&self) -> Result<Value> {
        let p = self.index_path();
        let bytes = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.root.exists() => {
                return Err(TransportError::io(&self.root, e));
            }
            Err(e) => return Err(TransportError::io(&p, e)),
        };
        let v: Value =
            serde_json::from_slice(&bytes).map_err(|e| TransportError::InvalidLayout {
                path: p.clone(),
                why: format!("not valid JSON: {e}"),
            })?;
        if !v.get("manifests").is_some_and(Value::is_array) {
            return Err(TransportError::InvalidLayout {
                path: p,
                why: "has no \"manifests\" array".into(),
            });
        }
        Ok(v)
    }

    /// The index entries as descriptors with their names.
    pub fn entries(&self) -> Result<Vec<(Option<String>, Descriptor)>> {
        let index = self.read_index()?;
        let mut out = Vec::new();
        for m in index
            .get("manifests")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let d: Descriptor =
                serde_json::from_value(m.clone()).map_err(|e| TransportError::InvalidLayout {
                    path: self.index_path(),
                    why: format!("invalid manifest descriptor: {e}"),
                })?;
            let name = d
                .annotations
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .cloned();
            out.push((name, d));
        }
        Ok(out)
    }

    /// The entry named `name`, or with no name the only entry.
    pub fn find(&self, name: Option<&str>) -> Result<Descriptor> {
        let entries = self.entries()?;
        let names = || {
            let n: Vec<String> = entries.iter().filter_map(|(n, _)| n.clone()).collect();
            if n.is_empty() {
                "none".to_string()
            } else {
                n.join(", ")
            }
        };
        match name {
            Some(want) => entries
                .iter()
                .find(|(n, _)| n.as_deref() == Some(want))
                .map(|(_, d)| d.clone())
                .ok_or_else(|| {
                    TransportError::NotFound(format!(
                        "{}: no image named {want:?} in index.json (it has: {})",
                        self.root.display(),
                        names()
                    ))
                }),
            None => match attached::images(&entries).as_slice() {
                [(_, d)] => Ok(d.clone()),
                [] => Err(TransportError::NotFound(format!(
                    "{}: index.json lists no image",
                    self.root.display()
                ))),
                many => Err(TransportError::NotFound(format!(
                    "{}: index.json lists {} images; say which with oci:PATH:NAME (names: {})",
                    self.root.display(),
                    many.len(),
                    names()
                ))),
            },
        }
    }

    /// A blob's bytes, when it is small (manifests), checked against its digest.
    pub fn read_manifest_blob(&self, d: &Digest) -> Result<Bytes> {
        let p = self.blob_path(d);
        let bytes = fsutil::read_manifest_file(&p)?;
        if !d.matches(&bytes) {
            return Err(TransportError::InvalidLayout {
                path: p,
                why: format!("manifest blob does not match its digest {d}"),
            });
        }
        Ok(bytes.into())
    }

    /// The manifest of an image whose index entry has `top_digest` and `top_media_type`: the
    /// top level with `None`, an instance of a list by its digest.
    pub fn manifest(
        &self,
        top_digest: &Digest,
        top_media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<RawManifest> {
        let (digest, media_type) = match instance {
            None => (
                top_digest,
                Some(top_media_type.to_string()).filter(|m| !m.is_empty()),
            ),
            Some(d) => (d, None),
        };
        Ok(RawManifest {
            bytes: self.read_manifest_blob(digest)?,
            media_type,
        })
    }

    /// A stream of a blob's bytes.
    pub async fn blob_stream(&self, d: &Digest) -> Result<ByteStream> {
        fsutil::file_stream(&self.blob_path(d)).await
    }

    /// Streams a blob into place (temp file, then rename).
    pub async fn put_blob(&self, d: &Digest, stream: ByteStream) -> Result<()> {
        let final_path = self.blob_path(d);
        let dir = final_path.parent().unwrap_or(&self.root).to_path_buf();
        fsutil::mkdir_all(&dir)?;
        let tmp = fsutil::stream_to_temp(&dir, self.blob_temp_prefix(), stream).await?;
        fsutil::persist(tmp, &final_path)
    }

    /// Writes small bytes as a blob.
    pub fn put_small_blob(&self, d: &Digest, bytes: &[u8]) -> Result<()> {
        let p = self.blob_path(d);
        if fsutil::has_file_of_size(&p, bytes.len() as u64) {
            return Ok(());
        }
        fsutil::mkdir_all(p.parent().unwrap_or(&self.root))?;
        fsutil::write_atomic_with(&p, bytes, self.blob_temp_prefix())
    }

    /// Removes from `index.json` the entries named and with the digests `gone` gives (an
    /// unnamed entry by its digest alone), in one atomic replace. Call with the layout's lock
    /// held.
    pub fn remove_index_entries(&self, gone: &[(Option<String>, Digest)]) -> Result<()> {
        let mut index = self.read_index()?;
        if let Some(list) = index.get_mut("manifests").and_then(Value::as_array_mut) {
            list.retain(|m| {
                let n = m
                    .pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1")))
                    .and_then(Value::as_str);
                let d = m.get("digest").and_then(Value::as_str);
                !gone.iter().any(|(gn, gd)| match gn {
                    Some(gn) => n == Some(gn.as_str()),
                    None => n.is_none() && d == Some(gd.to_string().as_str()),
                })
            });
        }
        let bytes =
            serde_json::to_vec(&index).map_err(|e| TransportError::Unsupported(e.to_string()))?;
        fsutil::write_atomic_with(&self.index_path(), &bytes, &self.temp_prefix)
    }

    /// Adds `descriptor` to `index.json` under `name`, replacing an entry of the same name (or,
    /// with no name, an unnamed entry of the same digest). Call with the layout's lock held.
    pub fn set_index_entry(&self, name: Option<&str>, descriptor: Value) -> Result<()> {
        let layout_file = self.root.join("oci-layout");
        if !layout_file.exists() {
            fsutil::write_atomic_with(
                &layout_file,
                br#"{"imageLayoutVersion":"1.0.0"}"#,
                &self.temp_prefix,
            )?;
        }
        let mut index = match self.read_index() {
            Ok(v) => v,
            Err(TransportError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                json!({"schemaVersion": 2, "manifests": []})
            }
            Err(e) => return Err(e),
        };
        let digest = descriptor.get("digest").cloned();
        if let Some(list) = index.get_mut("manifests").and_then(Value::as_array_mut) {
            list.retain(|m| {
                let n = m
                    .pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1")))
                    .and_then(Value::as_str);
                match name {
                    Some(want) => n != Some(want),
                    None => !(n.is_none() && m.get("digest") == digest.as_ref()),
                }
            });
            list.push(descriptor);
        }
        let bytes =
            serde_json::to_vec(&index).map_err(|e| TransportError::Unsupported(e.to_string()))?;
        fsutil::write_atomic_with(&self.index_path(), &bytes, &self.temp_prefix)
    }
}

/// Whether an `index.json` entry is something attached to an image rather than an image: a
/// referrer (ferry writes them unnamed, with their artifact type) or one of cosign's tags
/// (`sha256-HEX.sig`, `.att`, `.sbom`).
pub(crate) fn is_attached_entry(name: Option<&str>, d: &Descriptor) -> bool {
    match name {
        Some(n) => {
            n.starts_with("sha256-")
                && (n.ends_with(".sig") || n.ends_with(".att") || n.ends_with(".sbom"))
        }
        None => d
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(ATTACHED_ANNOTATION)),
    }
}

/// The annotation ferry puts on the `index.json` entries of referrers it writes into a layout
/// (value: the subject's digest), so that `oci:PATH` still finds the one image.
pub const ATTACHED_ANNOTATION: &str = "dev.ferry.referrer.subject";

/// A descriptor for `index.json`.
pub fn index_descriptor(manifest: &RawManifest, name: Option<&str>) -> Value {
    let media_type = manifest.media_type.clone().unwrap_or_else(|| {
        crate::manifest::detect(&manifest.bytes, None)
            .map(|k| k.media_type().to_string())
            .unwrap_or_else(|_| crate::manifest::OCI_MANIFEST.to_string())
    });
    let mut d = json!({
        "mediaType": media_type,
        "digest": Digest::sha256_of(&manifest.bytes).to_string(),
        "size": manifest.bytes.len(),
    });
    if let (Some(n), Some(o)) = (name, d.as_object_mut()) {
        o.insert("annotations".into(), json!({ REF_NAME: n }));
    }
    d
}

/// Reads an `oci:` image.
pub struct OciLayoutSource {
    reference: ImageReference,
    layout: Layout,
    top: Descriptor,
    referrers: Referrers,
}

impl OciLayoutSource {
    /// Opens the image named `tag` (or the only image) of the layout at `path`.
    pub fn open(
        reference: ImageReference,
        path: &Path,
        tag: Option<&str>,
    ) -> Result<OciLayoutSource> {
        let layout = Layout::new(path);
        let top = layout.find(tag)?;
        Ok(OciLayoutSource {
            reference,
            layout,
            top,
            referrers: Referrers::default(),
        })
    }

    /// Reads attached artifacts as `mode` says (`--referrers`).
    pub fn with_referrers(mut self, mode: Referrers) -> OciLayoutSource {
        self.referrers = mode;
        self
    }

    /// Reads blobs (manifests included) from the shared blob directory `dir`, if given,
    /// instead of the layout's `blobs/`.
    pub fn with_shared_blobs(mut self, dir: Option<&Path>) -> OciLayoutSource {
        if let Some(dir) = dir {
            self.layout = self
                .layout
                .with_shared_blobs(dir.to_path_buf(), TEMP_PREFIX.to_string());
        }
        self
    }
}

#[async_trait]
impl ImageSource for OciLayoutSource {
    fn reference(&self) -> &ImageReference {
        &self.reference
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<RawManifest> {
        self.layout
            .manifest(&self.top.digest, &self.top.media_type, instance)
    }

    async fn blob(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        self.layout.blob_stream(&descriptor.digest).await
    }

    /// Sigstore signatures in the layout, as `cosign save` lays them out: an image manifest
    /// named `sha256-HEX.sig` in `index.json` (a ferry extension: containers/image reads none
    /// from `oci:`), and the referrers it lists. An OCI layout has no place for simple signing
    /// signatures.
    async fn signatures(
        &self,
        manifest_digest: &Digest,
        _instance: Option<&Digest>,
    ) -> Result<SignatureSet> {
        attached::read_signatures(&self.layout, manifest_digest, self.referrers).await
    }
}

#[async_trait]
impl attached::LayoutFiles for Layout {
    fn place(&self) -> String {
        self.root.display().to_string()
    }
    fn entries(&self) -> Result<Vec<(Option<String>, Descriptor)>> {
        Layout::entries(self)
    }
    async fn manifest_blob(&self, digest: &Digest) -> Result<Bytes> {
        self.read_manifest_blob(digest)
    }
    async fn small_blob(
        &self,
        descriptor: Descriptor,
        limit: u64,
    ) -> std::result::Result<Vec<u8>, String> {
        fsutil::read_capped(&self.blob_path(&descriptor.digest), limit).map_err(|e| e.to_string())
    }
}

/// Writes an `oci:` image.
pub struct OciLayoutDestination {
    reference: ImageReference,
    layout: Layout,
    tag: Option<String>,
    top: Mutex<Option<RawManifest>>,
    created_root: bool,
    committed: bool,
    /// Entries for `index.json` on commit: sigstore attachments (named), referrers (unnamed).
    attachments: Mutex<Vec<(Option<String>, Value)>>,
    session: Option<TempSession>,
    /// The session of the temporaries in a shared blob directory.
    shared_session: Option<TempSession>,
}

/// The entries of a directory other than an OCI layout's own (`oci-layout`, `index.json`,
/// `blobs`) and ferry's temporaries: what makes it someone else's directory.
fn foreign_entries(path: &Path) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(path).map_err(|e| TransportError::io(path, e))?;
    Ok(rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !(n == "oci-layout" || n == "index.json" || n == "blobs" || n.starts_with(TEMP_PREFIX))
        })
        .collect())
}

impl OciLayoutDestination {
    /// Opens (or will create) the layout at `path` to add an image named `tag`. An existing
    /// directory must be a layout, empty, or hold only what ferry leaves while it builds one
    /// (`blobs/` and temporaries of a copy running now or killed earlier; the killed one's are
    /// removed here).
    pub fn open(
        reference: ImageReference,
        path: &Path,
        tag: Option<&str>,
    ) -> Result<OciLayoutDestination> {
        let created_root = !path.exists();
        if !created_root {
            if !path.is_dir() {
                return Err(TransportError::InvalidLayout {
                    path: path.to_path_buf(),
                    why: "is not a directory".into(),
                });
            }
            let is_layout = path.join("oci-layout").exists() || path.join("index.json").exists();
            if !is_layout {
                let foreign = foreign_entries(path)?;
                if !foreign.is_empty() {
                    return Err(TransportError::InvalidLayout {
                        path: path.to_path_buf(),
                        why: format!(
                            "is a non-empty directory that is not an OCI image layout (no oci-layout or index.json; it holds {}); choose an empty or new directory",
                            foreign
                                .iter()
                                .take(3)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                }
            }
            if path.join("index.json").exists() {
                Layout::new(path).read_index()?;
            }
        }
        // Temporaries lie in the root and in blobs/ALG.
        let session = TempSession::start(path, 2)?;
        Ok(OciLayoutDestination {
            reference,
            layout: Layout::new(path).with_temp_prefix(session.prefix()),
            tag: tag.map(str::to_string),
            top: Mutex::new(None),
            created_root,
            committed: false,
            attachments: Mutex::new(Vec::new()),
            session: Some(session),
            shared_session: None,
        })
    }

    /// Writes blobs (manifests included) to the shared blob directory `dir`, if given, instead
    /// of the layout's `blobs/` (created if missing, as containers/image creates it).
    pub fn with_shared_blobs(mut self, dir: Option<&Path>) -> Result<OciLayoutDestination> {
        if let Some(dir) = dir {
            // Temporaries lie in dir/ALG.
            let session = TempSession::start(dir, 1)?;
            self.layout = self
                .layout
                .clone()
                .with_shared_blobs(dir.to_path_buf(), session.prefix());
            self.shared_session = Some(session);
        }
        Ok(self)
    }
}

impl OciLayoutDestination {
    fn queue_entry(&self, name: Option<String>, entry: Value) {
        self.attachments
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, entry));
    }

    /// Writes the blobs of `add` and queues its entries for `index.json` (on commit).
    fn apply(&self, add: attached::Additions) -> Result<()> {
        for (d, bytes) in &add.blobs {
            self.layout.put_small_blob(d, bytes)?;
        }
        for (name, entry) in add.entries {
            self.queue_entry(name, entry);
        }
        Ok(())
    }
}

/// The `index.json` entry of a referrer: the referrers-index descriptor, with ferry's
/// annotation naming the subject.
pub fn referrer_descriptor(a: &Attached, subject: &Digest) -> Value {
    let e = a.index_entry();
    let mut annotations = e.annotations.clone();
    annotations.insert(ATTACHED_ANNOTATION.to_string(), subject.to_string());
    let mut v = json!({
        "mediaType": e.media_type,
        "digest": e.digest.to_string(),
        "size": e.size,
        "annotations": annotations,
    });
    if let Some(t) = &e.artifact_type
        && let Some(o) = v.as_object_mut()
    {
        o.insert("artifactType".into(), json!(t));
    }
    v
}

impl Drop for OciLayoutDestination {
    fn drop(&mut self) {
        // The sessions go first: their temporaries and locks with them.
        drop(self.shared_session.take());
        drop(self.session.take());
        // A layout this copy created and no copy committed to (and none is writing) goes too.
        let root = self.layout.root();
        if !self.committed
            && self.created_root
            && !root.join("index.json").exists()
            && !fsutil::has_sessions(root)
        {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

#[async_trait]
impl ImageDestination for OciLayoutDestination {
    fn reference(&self) -> &ImageReference {
        &self.reference
    }

    fn signature_support(&self, kind: crate::signature::sniff::Format) -> SignatureSupport {
        match kind {
            crate::signature::sniff::Format::SigstoreJson => SignatureSupport::Yes,
            _ => SignatureSupport::No(
                "an OCI image layout has no place for simple signing signatures; copy to a dir: or store: destination to keep them".into(),
            ),
        }
    }

    async fn try_reuse_blob(
        &self,
        descriptor: &Descriptor,
        _source: &ImageReference,
    ) -> Result<bool> {
        Ok(fsutil::has_file_of_size(
            &self.layout.blob_path(&descriptor.digest),
            descriptor.size,
        ))
    }

    async fn put_blob(
        &self,
        _admission: &Admission,
        descriptor: &Descriptor,
        stream: ByteStream,
    ) -> Result<()> {
        self.layout.put_blob(&descriptor.digest, stream).await
    }

    async fn put_manifest(
        &self,
        _admission: &Admission,
        manifest: &RawManifest,
        instance: Option<&Digest>,
    ) -> Result<()> {
        let d = Digest::sha256_of(&manifest.bytes);
        self.layout.put_small_blob(&d, &manifest.bytes)?;
        if instance.is_none()
            && let Ok(mut top) = self.top.lock()
        {
            *top = Some(manifest.clone());
        }
        Ok(())
    }

    /// Sigstore signatures become (or join) the attachment `sha256-HEX.sig`, named in
    /// `index.json` on commit; simple signing ones have no place here.
    async fn put_signatures(
        &self,
        _admission: &Admission,
        manifest_digest: &Digest,
        _instance: Option<&Digest>,
        signatures: &[Vec<u8>],
    ) -> Result<()> {
        let add = attached::signature_additions(
            manifest_digest,
            || self.layout.read_manifest_blob(manifest_digest),
            |tag| {
                let d = self.layout.find(Some(tag)).ok()?;
                self.layout
                    .read_manifest_blob(&d.digest)
                    .ok()
                    .map(|b| b.to_vec())
            },
            signatures,
            &self.layout.root().display().to_string(),
        )?;
        self.apply(add)
    }

    fn attached_support(&self) -> SignatureSupport {
        SignatureSupport::Yes
    }

    /// Referrers become unnamed `index.json` entries (with their artifact type, annotations,
    /// and ferry's subject annotation); cosign's `.att`/`.sbom` keep their tag as the name.
    async fn put_attached(
        &self,
        _admission: &Admission,
        subject: &Digest,
        _instance: Option<&Digest>,
        attached: &[&Attached],
    ) -> Result<()> {
        self.apply(attached::attached_additions(subject, attached))
    }

    async fn commit(mut self: Box<Self>, _admission: &Admission) -> Result<()> {
        let top = self
            .top
            .lock()
            .ok()
            .and_then(|t| t.clone())
            .ok_or_else(|| TransportError::Unsupported("commit without a manifest".into()))?;
        let _lock = fsutil::FileLock::acquire_dir(self.layout.root().to_path_buf()).await?;
        if self.shared_session.is_some() {
            // The image layout's own blobs/ stays, empty: the specification requires it.
            fsutil::mkdir_all(&self.layout.root().join("blobs"))?;
        }
        let attachments =
            std::mem::take(&mut *self.attachments.lock().unwrap_or_else(|p| p.into_inner()));
        for (name, entry) in attachments {
            self.layout.set_index_entry(name.as_deref(), entry)?;
        }
        self.layout.set_index_entry(
            self.tag.as_deref(),
            index_descriptor(&top, self.tag.as_deref()),
        )?;
        self.committed = true;
        Ok(())
    }
}
