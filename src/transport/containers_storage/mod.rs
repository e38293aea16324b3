//! `containers-storage:`: podman's and CRI-O's image store (containers/storage), as a
//! destination and a source, written as containers/storage 1.43 and containers/image 5.23
//! (podman 4.3.1's) write it, so podman reads what ferry pulled as its own.
//!
//! A pull: each layer blob is applied, as it streams, into a staging directory beside the store
//! by ferry's safe applier (overlay: the layer's own changes, whiteouts as overlayfs reads
//! them; vfs: spooled, then applied at commit onto its lower layers), with its tar-split and
//! diff_id learned on the way. The commit takes the store's locks as containers/storage does
//! (layers, then images), removes layers a killed writer left incomplete, reuses the layers the
//! store has, records each new layer as incomplete, moves its files in and clears the flag, and
//! only then writes the image record with its big-data items (config, manifest, signatures):
//! a failure or a kill leaves what containers/storage would, and never an image naming a
//! missing layer. docs/containers-storage.md has the details.

// `config` and `store` are public for the fuzz target of storage.conf and the record files
// (through `ferry::internal`); neither is part of the library's interface.
pub mod config;
mod layer;
mod lock;
mod reference;
pub mod store;

pub use config::StoreSpec;
pub use reference::Reference;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use self::layer::Staged;
use self::store::{Driver, Images, Layers, Store};
use super::fsutil::TempSession;
use super::*;
use crate::manifest::{Manifest, ManifestKind};

/// The `containers-storage:` transport.
pub struct ContainersStorageTransport;

#[async_trait]
impl Transport for ContainersStorageTransport {
    fn name(&self) -> &'static str {
        reference::NAME
    }
    fn grammar(&self) -> &'static str {
        "containers-storage:[[DRIVER@ROOT[+RUNROOT][:OPTIONS]]]NAME|@ID"
    }
    fn parse(&self, within: &str) -> std::result::Result<ImageReference, ReferenceError> {
        Reference::parse(within)
    }
    async fn open_source(
        &self,
        _session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
    ) -> Result<Box<dyn ImageSource>> {
        Ok(Box::new(opened(reference, StorageSource::open).await?))
    }
    async fn open_destination(
        &self,
        _session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
    ) -> Result<Box<dyn ImageDestination>> {
        Ok(Box::new(opened(reference, StorageDestination::open).await?))
    }
    async fn present(
        &self,
        _session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
    ) -> Result<Option<Present>> {
        let own = registry::own::<Reference>(reference)?.clone();
        let reference = reference.clone();
        blocking(move || match StorageSource::open(reference, own) {
            Ok(src) => {
                let bytes = src.read_manifest(None)?;
                let digest = Digest::sha256_of(&bytes);
                let n = src.signature_blobs(&digest)?.len();
                Ok(Some(Present::new(digest, n)))
            }
            Err(TransportError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }
}

/// Opens `reference` (one of this transport's) with `open`, on a blocking thread.
async fn opened<T: Send + 'static>(
    reference: &ImageReference,
    open: fn(ImageReference, Reference) -> Result<T>,
) -> Result<T> {
    let own = registry::own::<Reference>(reference)?.clone();
    let reference = reference.clone();
    blocking(move || open(reference, own)).await
}

/// Runs blocking store work on tokio's blocking threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        TransportError::Unsupported(format!("containers-storage: a task failed: {e}"))
    })?
}

/// Whether a descriptor is a layer (a tar, compressed or not) rather than a data blob.
fn is_layer(d: &Descriptor) -> bool {
    let mt = d.media_type.as_str();
    mt.contains(".layer.") || mt.contains(".tar") || mt.contains("rootfs.diff")
}

fn big_data_path(store: &Store, image: &str, key: &str) -> PathBuf {
    store
        .images_dir()
        .join(image)
        .join(store::big_data_file(key))
}

// ---------------------------------------------------------------------------------------------
// The destination.

/// A layer blob the destination has been given (or told it has).
enum Pending {
    /// Applied into the staging directory (overlay).
    Staged(Staged),
    /// Kept as a file, applied at commit onto its lower layers (vfs).
    Spooled(tempfile::TempPath),
    /// The store has a layer of this blob: its ID, the tar's digest and the record's
    /// compression.
    Stored {
        from: String,
        diff_id: Digest,
        compression: u64,
    },
}

#[derive(Default)]
struct DestState {
    layers: HashMap<Digest, Pending>,
    data: HashMap<Digest, Bytes>,
    manifest: Option<Bytes>,
    instances: usize,
    signatures: Option<(Digest, Vec<Vec<u8>>)>,
    records: Vec<(Digest, Vec<u8>)>,
    staged: usize,
}

/// Writes one image into a containers/storage store.
pub struct StorageDestination {
    reference: ImageReference,
    own: Reference,
    store: Store,
    staging: PathBuf,
    state: Mutex<DestState>,
    // Last: dropping it removes what was staged and not moved into the store.
    session: TempSession,
}

impl StorageDestination {
    fn open(reference: ImageReference, own: Reference) -> Result<StorageDestination> {
        let store = Store::open(&own.store)?;
        store.prepare()?;
        let staging = store.staging_dir();
        // Removes what killed copies staged here (their lock is free).
        let session = TempSession::start(&staging, 0)?;
        Ok(StorageDestination {
            reference,
            own,
            store,
            staging,
            state: Mutex::new(DestState::default()),
            session,
        })
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, DestState>> {
        self.state
            .lock()
            .map_err(|_| TransportError::Unsupported("containers-storage: state poisoned".into()))
    }

    fn next_staging_name(&self, what: &str) -> Result<PathBuf> {
        let mut st = self.state()?;
        st.staged += 1;
        Ok(self
            .staging
            .join(format!("{}{what}-{}", self.session.prefix(), st.staged)))
    }
}

#[async_trait]
impl ImageDestination for StorageDestination {
    fn reference(&self) -> &ImageReference {
        &self.reference
    }

    fn signature_support(&self, _kind: crate::signature::sniff::Format) -> SignatureSupport {
        SignatureSupport::Yes
    }

    async fn try_reuse_blob(
        &self,
        descriptor: &Descriptor,
        _source: &ImageReference,
    ) -> Result<bool> {
        if !is_layer(descriptor) {
            return Ok(false);
        }
        let store = self.store.clone();
        let digest = descriptor.digest.clone();
        let found = blocking(move || {
            let _lock = store.lock_layers(false)?;
            Ok(Layers::load(&store)?.by_digest(&digest).into_iter().next())
        })
        .await?;
        let Some(l) = found else { return Ok(false) };
        let Some(diff_id) = l.diff_digest.clone() else {
            return Ok(false);
        };
        self.state()?.layers.insert(
            descriptor.digest.clone(),
            Pending::Stored {
                from: l.id,
                diff_id,
                compression: l.compression,
            },
        );
        Ok(true)
    }

    async fn put_blob(
        &self,
        admission: &Admission,
        descriptor: &Descriptor,
        stream: ByteStream,
    ) -> Result<()> {
        if !is_layer(descriptor) {
            let bytes = collect_capped(stream, crate::limits::MAX_CONFIG_FILE).await?;
            self.state()?.data.insert(descriptor.digest.clone(), bytes);
            return Ok(());
        }
        let pending = match self.store.driver {
            Driver::Vfs => {
                let tmp =
                    fsutil::stream_to_temp(&self.staging, &self.session.prefix(), stream).await?;
                Pending::Spooled(tmp)
            }
            Driver::Overlay => {
                let dir = self.next_staging_name("layer")?;
                let store = self.store.clone();
                let reader = layer::StreamReader::spawn(stream);
                let compressed = (descriptor.digest.clone(), descriptor.size);
                let label = format!("layer {}", descriptor.digest);
                let admission = admission.clone();
                let staged = blocking(move || {
                    layer::stage(
                        &admission,
                        &store,
                        reader,
                        None,
                        &dir,
                        &[],
                        compressed,
                        &label,
                        None,
                    )
                })
                .await?;
                Pending::Staged(staged)
            }
        };
        self.state()?
            .layers
            .insert(descriptor.digest.clone(), pending);
        Ok(())
    }

    async fn put_manifest(
        &self,
        _admission: &Admission,
        manifest: &RawManifest,
        instance: Option<&Digest>,
    ) -> Result<()> {
        let mut st = self.state()?;
        match instance {
            None => st.manifest = Some(manifest.bytes.clone()),
            Some(_) => st.instances += 1,
        }
        Ok(())
    }

    async fn put_signatures(
        &self,
        _admission: &Admission,
        manifest_digest: &Digest,
        instance: Option<&Digest>,
        signatures: &[Vec<u8>],
    ) -> Result<()> {
        if instance.is_none() {
            self.state()?.signatures = Some((manifest_digest.clone(), signatures.to_vec()));
        }
        Ok(())
    }

    async fn put_record(
        &self,
        _admission: &Admission,
        manifest_digest: &Digest,
        record: &Record,
    ) -> Result<()> {
        self.state()?
            .records
            .push((manifest_digest.clone(), record.to_json()));
        Ok(())
    }

    async fn commit(self: Box<Self>, admission: &Admission) -> Result<()> {
        let this = *self;
        let admission = admission.clone();
        blocking(move || this.commit_blocking(&admission)).await
    }
}

async fn collect_capped(mut stream: ByteStream, limit: u64) -> Result<Bytes> {
    use futures::StreamExt as _;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(TransportError::source_stream)?;
        out.extend_from_slice(&chunk);
        if out.len() as u64 > limit {
            return Err(TransportError::Unsupported(format!(
                "containers-storage: a non-layer blob larger than {limit} bytes"
            )));
        }
    }
    Ok(Bytes::from(out))
}

/// The image config's `created`, kept as the image record's creation time.
fn config_created(config: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(config).ok()?;
    let c = v.get("created")?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(c).ok()?;
    Some(c.to_string())
}

impl StorageDestination {
    fn commit_blocking(self, admission: &Admission) -> Result<()> {
        let mut st = std::mem::take(&mut *self.state()?);
        let Some(manifest_bytes) = st.manifest.take() else {
            return Err(TransportError::Unsupported(
                "containers-storage: commit without a manifest".into(),
            ));
        };
        let manifest_digest = Digest::sha256_of(&manifest_bytes);
        let what = format!("manifest written to {}", self.reference);
        let parsed = crate::manifest::parse(&manifest_bytes, None).map_err(|source| {
            TransportError::Manifest {
                what: what.clone(),
                source,
            }
        })?;
        let img = match parsed {
            Manifest::Image(ManifestKind::DockerV2S2 | ManifestKind::OciManifest, img) => img,
            other => {
                return Err(TransportError::Unsupported(format!(
                    "{}: containers-storage keeps one image per reference, as an OCI or Docker schema 2 manifest ({:?} given){}",
                    self.reference,
                    other.kind(),
                    if st.instances > 0 {
                        "; copy one platform's image instead of all of them"
                    } else {
                        ""
                    }
                )));
            }
        };
        if let Some(expected) = self.own.named.as_ref().and_then(|n| n.digest())
            && expected != &manifest_digest
        {
            return Err(TransportError::DigestMismatch {
                url: self.reference.to_string(),
                expected: expected.clone(),
                actual: manifest_digest,
                mirror: false,
            });
        }
        let config = st.data.get(&img.config.digest).cloned().ok_or_else(|| {
            TransportError::Unsupported(format!(
                "containers-storage: the config {} was not written",
                img.config.digest
            ))
        })?;
        let image_id = self
            .own
            .id
            .clone()
            .unwrap_or_else(|| img.config.digest.hex().to_string());

        self.store.prepare()?;
        let layers_lock = self.store.lock_layers(true)?;
        let mut layers = Layers::load(&self.store)?;
        if layers.remove_incomplete(&self.store) {
            layers.save(&layers_lock)?;
        }
        let mut chain: Vec<String> = Vec::new();
        for (i, d) in img.layers.iter().enumerate() {
            let label = format!("layer {}/{} {}", i + 1, img.layers.len(), d.digest);
            let pending = st.layers.remove(&d.digest).ok_or_else(|| {
                TransportError::Unsupported(format!(
                    "containers-storage: {label} was neither written nor found in the store"
                ))
            })?;
            let parent = chain.last().cloned();
            let (id, next) = self.commit_layer(
                admission,
                &mut layers,
                &layers_lock,
                d,
                parent,
                &chain,
                pending,
                &label,
            )?;
            // The same blob may come again in this image (on another parent).
            st.layers.insert(d.digest.clone(), next);
            chain.push(id);
        }
        let top = chain.last().cloned();

        let images_lock = self.store.lock_images(true)?;
        let mut images = Images::load(&self.store)?;
        let existing = images.get(&image_id).cloned();
        if let Some(e) = &existing {
            let their_top = e.get("layer").and_then(Value::as_str);
            if their_top != top.as_deref() {
                return Err(TransportError::Unsupported(format!(
                    "containers-storage: image {image_id} already exists with other layers (top {their_top:?}, this copy's {top:?})"
                )));
            }
        }
        // Big-data items, as containers/image's storage destination writes them.
        let mut items: Vec<(String, Vec<u8>, Digest)> = Vec::new();
        let mut data: Vec<_> = st.data.iter().collect();
        data.sort_by_key(|a| a.0.to_string());
        for (digest, bytes) in data {
            items.push((digest.to_string(), bytes.to_vec(), Digest::sha256_of(bytes)));
        }
        items.push((
            format!("manifest-{manifest_digest}"),
            manifest_bytes.to_vec(),
            manifest_digest.clone(),
        ));
        items.push((
            "manifest".to_string(),
            manifest_bytes.to_vec(),
            manifest_digest.clone(),
        ));
        let sigs: Vec<Vec<u8>> = match &st.signatures {
            Some((d, s)) if d == &manifest_digest => s.clone(),
            _ => Vec::new(),
        };
        let sizes: Vec<usize> = sigs.iter().map(Vec::len).collect();
        let joined: Vec<u8> = sigs.concat();
        if !joined.is_empty() {
            items.push((
                "signatures".into(),
                joined.clone(),
                Digest::sha256_of(&joined),
            ));
        }
        items.push((
            format!("signature-{}", manifest_digest.hex()),
            joined.clone(),
            Digest::sha256_of(&joined),
        ));
        for (d, record) in &st.records {
            items.push((
                format!("ferry-verdict-{}", d.hex()),
                record.clone(),
                Digest::sha256_of(record),
            ));
        }
        let image_dir = self.store.images_dir().join(&image_id);
        if !image_dir.exists() {
            std::fs::create_dir(&image_dir).map_err(|e| TransportError::io(&image_dir, e))?;
            store::set_mode(&image_dir, 0o700)?;
        }
        for (key, bytes, _) in &items {
            store::write_file(&big_data_path(&self.store, &image_id, key), bytes, 0o600)?;
        }

        let mut metadata = Map::new();
        if !sizes.is_empty() {
            metadata.insert("signature-sizes".into(), json!(sizes));
        }
        metadata.insert(
            "signatures-sizes".into(),
            json!({ manifest_digest.to_string(): sizes }),
        );
        let mut record = match existing {
            Some(Value::Object(m)) => m,
            _ => {
                let mut m = Map::new();
                m.insert("id".into(), json!(image_id));
                m.insert("digest".into(), json!(manifest_digest.to_string()));
                m
            }
        };
        if let Some(t) = &top {
            record.insert("layer".into(), json!(t));
        }
        record.insert(
            "metadata".into(),
            json!(Value::Object(metadata).to_string()),
        );
        let mut names: Vec<Value> = record
            .get("big-data-names")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut bd_sizes = record
            .get("big-data-sizes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut bd_digests = record
            .get("big-data-digests")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (key, bytes, digest) in &items {
            if !names.iter().any(|n| n.as_str() == Some(key)) {
                names.push(json!(key));
            }
            bd_sizes.insert(key.clone(), json!(bytes.len()));
            bd_digests.insert(key.clone(), json!(digest.to_string()));
        }
        record.insert("big-data-names".into(), Value::Array(names));
        record.insert("big-data-sizes".into(), Value::Object(bd_sizes));
        record.insert("big-data-digests".into(), Value::Object(bd_digests));
        if !record.contains_key("created") {
            record.insert(
                "created".into(),
                json!(config_created(&config).unwrap_or_else(store::now_rfc3339)),
            );
        }
        images.put(Value::Object(record));
        if let Some(name) = &self.own.named {
            images.add_name(&image_id, &name.to_string());
        }
        images.save(&images_lock)?;
        drop(images_lock);
        drop(layers_lock);
        Ok(())
    }

    /// Makes layer `d` present on `parent`: reused when the store has it under the ID
    /// containers/image gives it, else installed from what was staged or spooled, or from the
    /// store's copy of the same blob on another parent. Returns its ID and what the blob is now.
    #[allow(clippy::too_many_arguments)]
    fn commit_layer(
        &self,
        admission: &Admission,
        layers: &mut Layers,
        lock: &lock::Held,
        d: &Descriptor,
        parent: Option<String>,
        chain: &[String],
        pending: Pending,
        label: &str,
    ) -> Result<(String, Pending)> {
        let diff_id = match &pending {
            Pending::Staged(s) => s.info.diff_digest.clone(),
            Pending::Stored { diff_id, .. } => diff_id.clone(),
            Pending::Spooled(_) => {
                // The tar's digest is learned when it is applied: vfs applies at commit.
                return self
                    .commit_spooled(admission, layers, lock, d, parent, chain, pending, label);
            }
        };
        let id = layer_id(parent.as_deref(), &diff_id);
        if layers.get(&id).is_some() {
            return Ok((id.clone(), stored_as(&id, diff_id, &pending)));
        }
        let staged = match pending {
            Pending::Staged(s) if self.store.driver == Driver::Overlay => s,
            Pending::Staged(s) => {
                return Err(TransportError::Unsupported(format!(
                    "internal: {} staged for overlay in a vfs store",
                    s.dir.display()
                )));
            }
            Pending::Stored {
                from, compression, ..
            } => self.stage_from_store(admission, &from, d, chain, compression, label)?,
            Pending::Spooled(_) => {
                return Err(TransportError::Unsupported(
                    "internal: spooled layer".into(),
                ));
            }
        };
        if staged.info.diff_digest != diff_id {
            return Err(TransportError::InvalidLayout {
                path: staged.dir.clone(),
                why: format!(
                    "{label}: the tar hashes to {} where {diff_id} was expected",
                    staged.info.diff_digest
                ),
            });
        }
        self.install(layers, lock, &id, parent.as_deref(), staged)?;
        Ok((
            id.clone(),
            Pending::Stored {
                from: id,
                diff_id,
                compression: 0,
            },
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_spooled(
        &self,
        admission: &Admission,
        layers: &mut Layers,
        lock: &lock::Held,
        d: &Descriptor,
        parent: Option<String>,
        chain: &[String],
        pending: Pending,
        label: &str,
    ) -> Result<(String, Pending)> {
        let Pending::Spooled(file) = pending else {
            return Err(TransportError::Unsupported("internal: not spooled".into()));
        };
        let dir = self.next_staging_name("layer")?;
        let f = std::fs::File::open(&file).map_err(|e| TransportError::io(&*file, e))?;
        let staged = layer::stage(
            admission,
            &self.store,
            f,
            None,
            &dir,
            chain,
            (d.digest.clone(), d.size),
            label,
            None,
        )?;
        drop(file);
        let diff_id = staged.info.diff_digest.clone();
        let id = layer_id(parent.as_deref(), &diff_id);
        if layers.get(&id).is_some() {
            store::remove_tree(&staged.dir);
            let _ = std::fs::remove_file(&staged.tar_split);
        } else {
            self.install(layers, lock, &id, parent.as_deref(), staged)?;
        }
        Ok((
            id.clone(),
            Pending::Stored {
                from: id,
                diff_id,
                compression: 0,
            },
        ))
    }

    /// Stages a copy of the stored layer `from` (the same blob on another parent).
    #[allow(clippy::too_many_arguments)]
    fn stage_from_store(
        &self,
        admission: &Admission,
        from: &str,
        d: &Descriptor,
        chain: &[String],
        compression: u64,
        label: &str,
    ) -> Result<Staged> {
        let dir = self.next_staging_name("layer")?;
        let (r, w) = std::io::pipe().map_err(|e| TransportError::io(&dir, e))?;
        let store = &self.store;
        let lower: &[String] = match store.driver {
            Driver::Overlay => &[],
            Driver::Vfs => chain,
        };
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || layer::recompose(store, from, w));
            let staged = layer::stage(
                admission,
                store,
                r,
                None,
                &dir,
                lower,
                (d.digest.clone(), d.size),
                label,
                Some(compression),
            );
            let written = writer.join().unwrap_or_else(|_| {
                Err(TransportError::Unsupported("recomposing panicked".into()))
            });
            written?;
            staged
        })
    }

    /// Records layer `id` as incomplete, moves its files in, then records it complete.
    fn install(
        &self,
        layers: &mut Layers,
        lock: &lock::Held,
        id: &str,
        parent: Option<&str>,
        staged: Staged,
    ) -> Result<()> {
        layers.put(store::layer_record(id, parent, &staged.info));
        layers.save(lock)?;
        self.store.install_layer(id, parent, &staged.dir)?;
        store::move_file(&staged.tar_split, &self.store.tar_split_path(id), 0o600)?;
        fsutil::sync_dir(&self.store.driver_home());
        fsutil::sync_dir(&self.store.layers_dir());
        layers.complete(id);
        layers.save(lock)
    }
}

fn stored_as(id: &str, diff_id: Digest, pending: &Pending) -> Pending {
    if let Pending::Staged(s) = pending {
        store::remove_tree(&s.dir);
        let _ = std::fs::remove_file(&s.tar_split);
    }
    Pending::Stored {
        from: id.to_string(),
        diff_id,
        compression: 0,
    }
}

/// containers/image's layer ID: the diff_id's hex for a base layer, else the hex of
/// sha256("PARENT+DIFFHEX").
pub fn layer_id(parent: Option<&str>, diff_id: &Digest) -> String {
    match parent {
        None => diff_id.hex().to_string(),
        Some(p) => Digest::sha256_of(format!("{p}+{}", diff_id.hex()).as_bytes())
            .hex()
            .to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// The source.

/// Reads one image out of a containers/storage store.
pub struct StorageSource {
    reference: ImageReference,
    store: Store,
    image: String,
    record: Value,
    /// The image's layers, bottom first.
    layers: Vec<store::LayerInfo>,
    /// The manifest digest the reference asked for, if any.
    wanted: Option<Digest>,
}

impl StorageSource {
    fn open(reference: ImageReference, own: Reference) -> Result<StorageSource> {
        let store = Store::open(&own.store)?;
        let not_found =
            || TransportError::NotFound(format!("{reference}: no such image in the store"));
        if !store.images_dir().join("images.json").exists() {
            return Err(not_found());
        }
        let images_lock = store.lock_images(false)?;
        let images = Images::load(&store)?;
        drop(images_lock);
        let record = if let Some(id) = &own.id {
            images.get(id).cloned()
        } else if let Some(n) = &own.named {
            match images.by_name(&n.to_string()) {
                Some(r) => Some(r.clone()),
                None => n.digest().and_then(|d| {
                    let repo = n.name();
                    images
                        .by_digest(d)
                        .into_iter()
                        .find(|r| {
                            r.get("names").and_then(Value::as_array).is_some_and(|ns| {
                                ns.iter().filter_map(Value::as_str).any(|x| {
                                    crate::reference::DockerReference::parse(x)
                                        .is_ok_and(|p| p.name() == repo)
                                })
                            })
                        })
                        .cloned()
                }),
            }
        } else {
            None
        };
        let record = record.ok_or_else(not_found)?;
        let image = record
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(not_found)?;
        // IDs come from the store's JSON files and become paths: one that is not a plain name
        // (a corrupt or hostile images.json or layers.json) would read files outside the store.
        store::require_plain_id(
            &image,
            store.images_dir().join("images.json"),
            &format!("image ID {image:?}"),
        )?;
        let layers_lock = store.lock_layers(false)?;
        let all = Layers::load(&store)?;
        drop(layers_lock);
        let mut layers = Vec::new();
        let mut next = record
            .get("layer")
            .and_then(Value::as_str)
            .map(str::to_string);
        while let Some(id) = next {
            store::require_plain_id(
                &id,
                store.layers_dir().join("layers.json"),
                &format!("layer ID {id:?} of image {image}"),
            )?;
            let l = all.get(&id).ok_or_else(|| TransportError::InvalidLayout {
                path: store.layers_dir().join("layers.json"),
                why: format!("image {image} names layer {id}, which the store does not have"),
            })?;
            next = l.parent.clone();
            layers.push(l);
            if layers.len() > 10_000 {
                return Err(TransportError::InvalidLayout {
                    path: store.layers_dir().join("layers.json"),
                    why: "the layers' parents make a loop".into(),
                });
            }
        }
        layers.reverse();
        Ok(StorageSource {
            reference,
            wanted: own.named.as_ref().and_then(|n| n.digest().cloned()),
            store,
            image,
            record,
            layers,
        })
    }

    fn big_data(&self, key: &str) -> Result<Vec<u8>> {
        let p = big_data_path(&self.store, &self.image, key);
        crate::limits::read_file(
            &p,
            crate::manifest::MAX_MANIFEST_SIZE as u64 * 4,
            "an image big-data item",
        )
        .map_err(|e| match e {
            crate::limits::ReadError::Io { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                TransportError::NotFound(format!(
                    "{}: image {} has no {key:?} item",
                    self.reference, self.image
                ))
            }
            other => TransportError::InvalidLayout {
                path: p.clone(),
                why: other.to_string(),
            },
        })
    }

    /// The stored manifest bytes (the instance `instance`, the one the reference's digest
    /// names, or the image's).
    fn read_manifest(&self, instance: Option<&Digest>) -> Result<Vec<u8>> {
        if let Some(d) = instance.or(self.wanted.as_ref())
            && let Ok(b) = self.big_data(&format!("manifest-{d}"))
        {
            return Ok(b);
        }
        self.big_data("manifest")
    }

    /// The signatures stored for `digest` (containers/image's `signature-HEX` item and the
    /// sizes in the image's metadata; the image's own `signatures` item as a fallback).
    fn signature_blobs(&self, digest: &Digest) -> Result<Vec<Vec<u8>>> {
        let metadata: Value = self
            .record
            .get("metadata")
            .and_then(Value::as_str)
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or(Value::Null);
        let sizes_of = |v: Option<&Value>| -> Vec<usize> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_u64)
                        .map(|n| n as usize)
                        .collect()
                })
                .unwrap_or_default()
        };
        let (sizes, key) = match metadata
            .get("signatures-sizes")
            .and_then(|m| m.get(digest.to_string()))
        {
            Some(s) => (sizes_of(Some(s)), format!("signature-{}", digest.hex())),
            None => (
                sizes_of(metadata.get("signature-sizes")),
                "signatures".to_string(),
            ),
        };
        if sizes.is_empty() {
            return Ok(Vec::new());
        }
        let blob = self.big_data(&key)?;
        let mut out = Vec::new();
        let mut rest: &[u8] = &blob;
        for n in sizes {
            if n > rest.len() {
                return Err(TransportError::InvalidLayout {
                    path: big_data_path(&self.store, &self.image, &key),
                    why: format!(
                        "the signatures data is shorter than the sizes the image's metadata records ({} bytes)",
                        blob.len()
                    ),
                });
            }
            let (one, after) = rest.split_at(n);
            out.push(one.to_vec());
            rest = after;
        }
        Ok(out)
    }

    /// The manifest given to a copy: the stored one when every layer can be given back as the
    /// blob it names (a layer stored from an uncompressed tar); otherwise the stored manifest
    /// with each layer as its uncompressed tar (digest = diff_id), as containers/image's storage
    /// source gives it, because containers/storage keeps the tar, not the compressed blob.
    fn manifest_for_copy(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        let mut v: Value =
            serde_json::from_slice(&bytes).map_err(|e| TransportError::InvalidLayout {
                path: big_data_path(&self.store, &self.image, "manifest"),
                why: e.to_string(),
            })?;
        let oci = v.get("mediaType").and_then(Value::as_str) != Some(crate::manifest::DOCKER_V2S2);
        let Some(descs) = v.get_mut("layers").and_then(Value::as_array_mut) else {
            return Ok(bytes);
        };
        if descs.len() != self.layers.len() {
            return Err(TransportError::InvalidLayout {
                path: self.store.layers_dir().join("layers.json"),
                why: format!(
                    "image {} has {} layers in the store and {} in its manifest",
                    self.image,
                    self.layers.len(),
                    descs.len()
                ),
            });
        }
        let exact = descs.iter().zip(&self.layers).all(|(d, l)| {
            let digest = d.get("digest").and_then(Value::as_str);
            l.diff_digest.as_ref().map(Digest::to_string).as_deref() == digest
        });
        if exact {
            return Ok(bytes);
        }
        for (d, l) in descs.iter_mut().zip(&self.layers) {
            let (Some(diff), Some(size)) = (&l.diff_digest, l.diff_size) else {
                return Err(TransportError::InvalidLayout {
                    path: self.store.layers_dir().join("layers.json"),
                    why: format!("layer {} has no diff digest or size", l.id),
                });
            };
            *d = json!({
                "mediaType": if oci {
                    "application/vnd.oci.image.layer.v1.tar"
                } else {
                    "application/vnd.docker.image.rootfs.diff.tar"
                },
                "digest": diff.to_string(),
                "size": size,
            });
        }
        serde_json::to_vec_pretty(&v).map_err(|e| TransportError::InvalidLayout {
            path: big_data_path(&self.store, &self.image, "manifest"),
            why: e.to_string(),
        })
    }
}

#[async_trait]
impl ImageSource for StorageSource {
    fn reference(&self) -> &ImageReference {
        &self.reference
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<RawManifest> {
        let bytes = self.read_manifest(instance)?;
        let bytes = if crate::manifest::detect(&bytes, None).is_ok_and(|k| !k.is_list()) {
            self.manifest_for_copy(bytes)?
        } else {
            bytes
        };
        Ok(RawManifest {
            bytes: bytes.into(),
            media_type: None,
        })
    }

    async fn blob(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        let layer = self
            .layers
            .iter()
            .find(|l| l.diff_digest.as_ref() == Some(&descriptor.digest));
        let Some(layer) = layer else {
            let bytes = self.big_data(&descriptor.digest.to_string())?;
            return Ok(Box::pin(futures::stream::once(async move {
                Ok(Bytes::from(bytes))
            })));
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
        let store = self.store.clone();
        let id = layer.id.clone();
        tokio::task::spawn_blocking(move || {
            let lock = store.lock_layers(false);
            let out = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(256 * 1024),
            };
            let result = lock.and_then(|_held| layer::recompose(&store, &id, out));
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        });
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })))
    }

    async fn signatures(
        &self,
        manifest_digest: &Digest,
        _instance: Option<&Digest>,
    ) -> Result<SignatureSet> {
        // Signatures were stored for the manifest as it was pulled.
        let stored = Digest::sha256_of(&self.read_manifest(None)?);
        let digest = if self
            .signature_blobs(manifest_digest)
            .map(|s| s.is_empty())
            .unwrap_or(true)
        {
            stored
        } else {
            manifest_digest.clone()
        };
        let key = format!("signature-{}", digest.hex());
        let location = big_data_path(&self.store, &self.image, &key);
        let slots = match self.signature_blobs(&digest) {
            Ok(blobs) => blobs
                .into_iter()
                .enumerate()
                .map(|(i, b)| crate::signature::SignatureSlot {
                    index: i + 1,
                    location: format!("{} (signature {})", location.display(), i + 1),
                    content: Ok(b),
                })
                .collect(),
            Err(e) => vec![crate::signature::SignatureSlot {
                index: 1,
                location: location.display().to_string(),
                content: Err(crate::signature::SlotReadError {
                    kind: crate::signature::SlotReadErrorKind::Io,
                    message: e.to_string(),
                }),
            }],
        };
        Ok(SignatureSet::new(
            slots,
            format!(
                "the image's {key:?} item in {}",
                self.store.images_dir().join(&self.image).display()
            ),
        ))
    }
}

/// A `Write` that hands 256 KiB chunks to an async reader.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 256 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(256 * 1024),
        ));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the reader went away")
        })
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = std::io::Write::flush(self);
    }
}
