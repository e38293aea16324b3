//! A containers/storage store on disk, as containers/storage 1.43 (podman 4.3.1's) lays it
//! out: the driver's directory (`overlay/ID/{diff,link,lower,work,merged,empty}` with the short
//! links in `overlay/l/`, or `vfs/dir/ID`), the layer records (`DRIVER-layers/layers.json`,
//! one `ID.tar-split.gz` per layer) and the image records (`DRIVER-images/images.json`, one
//! directory of big-data items per image), each JSON file guarded by its `.lock` and replaced
//! whole by a rename, as `ioutils.AtomicWriteFile` does.
//!
//! Records are kept as JSON values, so fields ferry does not know (and other tools' records)
//! are written back as they were read.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::config::StoreSpec;
use super::lock::{self, Held};
use crate::digest::Digest;
use crate::transport::{Result, TransportError};

/// The graph drivers ferry writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// overlay: each layer's own changes in `overlay/ID/diff`, whiteouts as 0/0 devices.
    Overlay,
    /// vfs: each layer a full copy of the tree in `vfs/dir/ID`.
    Vfs,
}

/// `incomplete`: the flag containers/storage sets on a layer record before the layer's files
/// exist, and clears after; a record still flagged is a layer whose writer died, removed by the
/// next writer.
pub const INCOMPLETE: &str = "incomplete";

/// An opened store: its paths.
#[derive(Debug, Clone)]
pub struct Store {
    /// What the reference named.
    pub spec: StoreSpec,
    /// Its driver.
    pub driver: Driver,
}

impl Store {
    /// The store `spec` names; an error for a driver ferry does not write.
    pub fn open(spec: &StoreSpec) -> Result<Store> {
        let driver = match spec.driver.as_str() {
            "overlay" | "overlay2" => Driver::Overlay,
            "vfs" => Driver::Vfs,
            other => {
                return Err(TransportError::Unsupported(format!(
                    "containers-storage: the {other:?} graph driver is not one ferry reads or writes (overlay, vfs)"
                )));
            }
        };
        let mut spec = spec.clone();
        if spec.driver == "overlay2" {
            spec.driver = "overlay".into();
        }
        Ok(Store { spec, driver })
    }

    fn name(&self) -> &'static str {
        match self.driver {
            Driver::Overlay => "overlay",
            Driver::Vfs => "vfs",
        }
    }

    /// `ROOT/DRIVER-layers`.
    pub fn layers_dir(&self) -> PathBuf {
        self.spec.graph_root.join(format!("{}-layers", self.name()))
    }

    /// `ROOT/DRIVER-images`.
    pub fn images_dir(&self) -> PathBuf {
        self.spec.graph_root.join(format!("{}-images", self.name()))
    }

    /// The driver's own directory: `ROOT/overlay` or `ROOT/vfs/dir`.
    pub fn driver_home(&self) -> PathBuf {
        match self.driver {
            Driver::Overlay => self.spec.graph_root.join("overlay"),
            Driver::Vfs => self.spec.graph_root.join("vfs/dir"),
        }
    }

    /// The directory holding a layer's files as the layer's tar names them: overlay's `diff`
    /// (this layer's changes) or vfs's whole tree.
    pub fn layer_files(&self, id: &str) -> PathBuf {
        match self.driver {
            Driver::Overlay => self.driver_home().join(id).join("diff"),
            Driver::Vfs => self.driver_home().join(id),
        }
    }

    /// `ROOT/DRIVER-layers/ID.tar-split.gz`.
    pub fn tar_split_path(&self, id: &str) -> PathBuf {
        self.layers_dir().join(format!("{id}.tar-split.gz"))
    }

    /// Where ferry stages layers before they join the store: inside the driver's directory,
    /// which podman bind-mounts on itself (so a rename from anywhere else fails with EXDEV),
    /// as containers/storage's own `overlay/staging`.
    pub fn staging_dir(&self) -> PathBuf {
        match self.driver {
            Driver::Overlay => self.driver_home().join("ferry-staging"),
            Driver::Vfs => self.spec.graph_root.join("vfs/ferry-staging"),
        }
    }

    /// The write lock of the layer records.
    pub fn lock_layers(&self, exclusive: bool) -> Result<Held> {
        Held::take(&self.layers_dir().join("layers.lock"), exclusive)
    }

    /// The write lock of the image records.
    pub fn lock_images(&self, exclusive: bool) -> Result<Held> {
        Held::take(&self.images_dir().join("images.lock"), exclusive)
    }

    /// Makes the directories (and lock files) podman expects of a store, as containers/storage
    /// makes them on first use.
    pub fn prepare(&self) -> Result<()> {
        let mk = |p: &Path, mode: u32| -> Result<()> {
            if !p.exists() {
                std::fs::create_dir_all(p).map_err(|e| TransportError::io(p, e))?;
                set_mode(p, mode)?;
            }
            Ok(())
        };
        mk(&self.spec.graph_root, 0o700)?;
        mk(&self.spec.run_root, 0o700)?;
        mk(&self.layers_dir(), 0o700)?;
        mk(&self.images_dir(), 0o700)?;
        match self.driver {
            Driver::Overlay => {
                mk(&self.driver_home(), 0o700)?;
                mk(&self.driver_home().join("l"), 0o755)?;
            }
            Driver::Vfs => {
                mk(&self.spec.graph_root.join("vfs"), 0o700)?;
                mk(&self.driver_home(), 0o700)?;
            }
        }
        mk(
            &self.spec.run_root.join(format!("{}-layers", self.name())),
            0o700,
        )?;
        for lock in [
            self.spec.graph_root.join("storage.lock"),
            self.layers_dir().join("layers.lock"),
            self.images_dir().join("images.lock"),
        ] {
            if !lock.exists() {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock)
                    .map_err(|e| TransportError::io(&lock, e))?;
            }
        }
        Ok(())
    }

    /// Removes a layer's files (driver directory, short link, tar-split); its record is the
    /// caller's. An ID that is not one plain path component (see [`is_plain_id`]) names no
    /// files of the store, so nothing is removed for it.
    pub fn remove_layer_files(&self, id: &str) {
        if !is_plain_id(id) {
            tracing::warn!(layer = %id, "not removing files for a layer ID that is not a plain name");
            return;
        }
        let dir = self.driver_home().join(id);
        if self.driver == Driver::Overlay
            && let Ok(link) = std::fs::read_to_string(dir.join("link"))
        {
            let link = link.trim();
            if !link.is_empty() && !link.contains('/') {
                let _ = std::fs::remove_file(self.driver_home().join("l").join(link));
            }
        }
        remove_tree(&dir);
        let _ = std::fs::remove_file(self.tar_split_path(id));
    }

    /// Moves a layer's files (`staged`: a directory of the tree as the layer's tar names it) into
    /// the driver's place for layer `id`, made as containers/storage's driver makes it.
    pub fn install_layer(&self, id: &str, parent: Option<&str>, staged: &Path) -> Result<()> {
        let home = self.driver_home();
        let dir = home.join(id);
        if std::fs::symlink_metadata(&dir).is_ok() {
            // A killed writer's leftover with no record (containers/storage removes it too).
            self.remove_layer_files(id);
        }
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |e| TransportError::io(p, e)
        };
        match self.driver {
            Driver::Vfs => {
                std::fs::rename(staged, &dir).map_err(io(&dir))?;
            }
            Driver::Overlay => {
                std::fs::create_dir(&dir).map_err(io(&dir))?;
                set_mode(&dir, 0o700)?;
                let diff = dir.join("diff");
                std::fs::rename(staged, &diff).map_err(io(&diff))?;
                let link = lock::random_link_id();
                let l = home.join("l").join(&link);
                std::os::unix::fs::symlink(format!("../{id}/diff"), &l).map_err(io(&l))?;
                write_file(&dir.join("link"), link.as_bytes(), 0o644)?;
                for sub in ["work", "merged"] {
                    std::fs::create_dir(dir.join(sub)).map_err(io(&dir.join(sub)))?;
                    set_mode(&dir.join(sub), 0o700)?;
                }
                match parent {
                    None => {
                        std::fs::create_dir(dir.join("empty")).map_err(io(&dir.join("empty")))?;
                        set_mode(&dir.join("empty"), 0o700)?;
                    }
                    Some(p) => {
                        let pdir = home.join(p);
                        let plink = std::fs::read_to_string(pdir.join("link"))
                            .map_err(io(&pdir.join("link")))?;
                        let mut lower = format!("l/{}", plink.trim());
                        if let Ok(pl) = std::fs::read_to_string(pdir.join("lower"))
                            && !pl.is_empty()
                        {
                            lower.push(':');
                            lower.push_str(&pl);
                        }
                        write_file(&dir.join("lower"), lower.as_bytes(), 0o644)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether a layer ID read from `layers.json` can name a layer's files: one path component,
/// not `.` or `..`. containers/storage's IDs are 64 hex digits; a record whose ID is `/`, `..`, the
/// empty ID or `../x` (a corrupt or hostile `layers.json`) would otherwise make the store's paths
/// (`driver_home().join(id)`) point at the driver's directory itself or outside the store.
pub fn is_plain_id(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".." && !id.contains(['/', '\0'])
}

/// `Ok` when `id` (read from `file`, one of the store's record files) is a plain name (see
/// [`is_plain_id`]); otherwise the error that names it as `what` (`layer ID "../x"`) and the file.
pub fn require_plain_id(id: &str, file: PathBuf, what: &str) -> Result<()> {
    if is_plain_id(id) {
        return Ok(());
    }
    Err(TransportError::InvalidLayout {
        path: file,
        why: format!("{what} is not a plain name, so it names no files of the store"),
    })
}

/// Moves a file by a rename, or (across mounts) by a copy renamed into place.
pub fn move_file(from: &Path, to: &Path, mode: u32) -> Result<()> {
    match std::fs::rename(from, to) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {
            let dir = to.parent().unwrap_or(Path::new("."));
            let tmp = tempfile::Builder::new()
                .prefix(".tmp-")
                .tempfile_in(dir)
                .map_err(|e| TransportError::io(dir, e))?;
            std::fs::copy(from, tmp.path()).map_err(|e| TransportError::io(to, e))?;
            tmp.as_file()
                .sync_all()
                .map_err(|e| TransportError::io(to, e))?;
            tmp.persist(to)
                .map_err(|e| TransportError::io(to, e.error))?;
            let _ = std::fs::remove_file(from);
        }
        Err(e) => return Err(TransportError::io(to, e)),
    }
    set_mode(to, mode)
}

/// Sets a path's permission bits.
pub fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| TransportError::io(p, e))
}

/// Removes a tree, read-only directories included; errors are ignored (a leftover is removed
/// again by the next writer).
pub fn remove_tree(p: &Path) {
    if std::fs::remove_dir_all(p).is_ok() || !p.exists() {
        return;
    }
    // A read-only directory stops a caller that is not root: open them up and try again.
    fn open_up(p: &Path) {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(m) = std::fs::symlink_metadata(p)
            && m.is_dir()
        {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    open_up(&e.path());
                }
            }
        }
    }
    open_up(p);
    let _ = std::fs::remove_dir_all(p);
}

/// Writes `bytes` to `path` through a temporary file in the same directory, synced, then
/// renamed over it: readers see the old file or the new one, never a part.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| TransportError::io(dir, e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| TransportError::io(path, e))?;
    set_mode(tmp.path(), mode)?;
    tmp.persist(path)
        .map_err(|e| TransportError::io(path, e.error))?;
    Ok(())
}

/// Reads a JSON array of records; a missing or empty file is none.
fn read_array(path: &Path) -> Result<Vec<Value>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TransportError::io(path, e)),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Array(a)) => Ok(a),
        Ok(Value::Null) => Ok(Vec::new()),
        Ok(_) => Err(TransportError::InvalidLayout {
            path: path.to_path_buf(),
            why: "is not a JSON array of records".into(),
        }),
        Err(e) => Err(TransportError::InvalidLayout {
            path: path.to_path_buf(),
            why: format!("is not valid JSON: {e}"),
        }),
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A JSON file of records (`layers.json`, `images.json`), read and written under its lock.
pub struct Records<K> {
    path: PathBuf,
    /// The records, in file order.
    pub list: Vec<Value>,
    kind: std::marker::PhantomData<K>,
}

impl<K> Records<K> {
    fn read(path: PathBuf) -> Result<Records<K>> {
        Ok(Records {
            list: read_array(&path)?,
            path,
            kind: std::marker::PhantomData,
        })
    }

    /// Adds a record, or replaces the one with the same ID.
    pub fn put(&mut self, record: Value) {
        let id = str_field(&record, "id").map(str::to_string);
        if let Some(old) = self
            .list
            .iter_mut()
            .find(|v| str_field(v, "id").map(str::to_string) == id)
        {
            *old = record;
        } else {
            self.list.push(record);
        }
    }

    /// Writes the records back (atomically) and records the change in the lock file.
    pub fn save(&self, lock: &Held) -> Result<()> {
        let bytes = serde_json::to_vec(&self.list).map_err(|e| TransportError::InvalidLayout {
            path: self.path.clone(),
            why: e.to_string(),
        })?;
        write_file(&self.path, &bytes, 0o600)?;
        lock.touch()
    }
}

/// Marks [`Records`] of layers.
pub struct LayerKind;
/// Marks [`Records`] of images.
pub struct ImageKind;

/// The layer records (`layers.json`), read under the layers lock.
pub type Layers = Records<LayerKind>;
/// The image records (`images.json`), read under the images lock.
pub type Images = Records<ImageKind>;

/// What ferry needs of a layer record.
#[derive(Debug, Clone)]
pub struct LayerInfo {
    /// Its ID.
    pub id: String,
    /// Its parent's ID.
    pub parent: Option<String>,
    /// The digest of its tar (the diff_id).
    pub diff_digest: Option<Digest>,
    /// The tar's size.
    pub diff_size: Option<u64>,
    /// containers/storage's compression number of the blob (0 none, 2 gzip, 4 zstd).
    pub compression: u64,
}

impl LayerInfo {
    fn of(v: &Value) -> Option<LayerInfo> {
        Some(LayerInfo {
            id: str_field(v, "id")?.to_string(),
            parent: str_field(v, "parent")
                .filter(|p| !p.is_empty())
                .map(str::to_string),
            diff_digest: str_field(v, "diff-digest").and_then(|d| Digest::parse(d).ok()),
            diff_size: v.get("diff-size").and_then(Value::as_u64),
            compression: v.get("compression").and_then(Value::as_u64).unwrap_or(0),
        })
    }
}

fn incomplete(v: &Value) -> bool {
    v.get("flags")
        .and_then(|f| f.get(INCOMPLETE))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

impl Layers {
    /// Reads the records of `store`.
    pub fn load(store: &Store) -> Result<Layers> {
        Records::read(store.layers_dir().join("layers.json"))
    }

    /// Removes the layers a killed writer left flagged incomplete, as containers/storage does
    /// when it loads the records for writing. True when any was removed (save then).
    pub fn remove_incomplete(&mut self, store: &Store) -> bool {
        let dead: Vec<String> = self
            .list
            .iter()
            .filter(|v| incomplete(v))
            .filter_map(|v| str_field(v, "id").map(str::to_string))
            .collect();
        for id in &dead {
            tracing::warn!(layer = %id, "removing a layer a killed writer left incomplete");
            store.remove_layer_files(id);
        }
        self.list.retain(|v| !incomplete(v));
        !dead.is_empty()
    }

    /// The complete layer `id`.
    pub fn get(&self, id: &str) -> Option<LayerInfo> {
        self.list
            .iter()
            .filter(|v| !incomplete(v))
            .find(|v| str_field(v, "id") == Some(id))
            .and_then(LayerInfo::of)
    }

    /// The complete layers made from a blob with this digest, or whose tar has it.
    pub fn by_digest(&self, d: &Digest) -> Vec<LayerInfo> {
        let d = d.to_string();
        self.list
            .iter()
            .filter(|v| !incomplete(v))
            .filter(|v| {
                str_field(v, "compressed-diff-digest") == Some(d.as_str())
                    || str_field(v, "diff-digest") == Some(d.as_str())
            })
            .filter_map(LayerInfo::of)
            .collect()
    }

    /// Clears the incomplete flag of `id`.
    pub fn complete(&mut self, id: &str) {
        for v in &mut self.list {
            if str_field(v, "id") == Some(id)
                && let Some(Value::Object(flags)) = v.get_mut("flags")
            {
                flags.remove(INCOMPLETE);
                if flags.is_empty()
                    && let Some(o) = v.as_object_mut()
                {
                    o.remove("flags");
                }
            }
        }
    }
}

/// What ferry learned of a layer it made: the fields of its record.
#[derive(Debug, Clone)]
pub struct NewLayer {
    /// The blob's digest.
    pub compressed_digest: Digest,
    /// The blob's size.
    pub compressed_size: u64,
    /// The tar's digest.
    pub diff_digest: Digest,
    /// The tar's size.
    pub diff_size: u64,
    /// containers/storage's number for the blob's compression.
    pub compression: u64,
    /// The uids the tar names (whiteouts aside).
    pub uids: Vec<u32>,
    /// The gids likewise.
    pub gids: Vec<u32>,
}

/// A layer record as containers/storage writes it (`omitempty` fields left out), flagged
/// incomplete until [`Layers::complete`].
pub fn layer_record(id: &str, parent: Option<&str>, l: &NewLayer) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    if let Some(p) = parent {
        m.insert("parent".into(), json!(p));
    }
    m.insert("created".into(), json!(now_rfc3339()));
    m.insert(
        "compressed-diff-digest".into(),
        json!(l.compressed_digest.to_string()),
    );
    m.insert("compressed-size".into(), json!(l.compressed_size));
    m.insert("diff-digest".into(), json!(l.diff_digest.to_string()));
    m.insert("diff-size".into(), json!(l.diff_size));
    if l.compression != 0 {
        m.insert("compression".into(), json!(l.compression));
    }
    if !l.uids.is_empty() {
        m.insert("uidset".into(), json!(l.uids));
    }
    if !l.gids.is_empty() {
        m.insert("gidset".into(), json!(l.gids));
    }
    m.insert("flags".into(), json!({ INCOMPLETE: true }));
    Value::Object(m)
}

/// The time now as Go's `time.Time` marshals it in UTC (RFC 3339 with nanoseconds).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The file name containers/storage gives a big-data item: the key itself when it is made of
/// `[.0-9a-z]`, else `=` and its base64.
pub fn big_data_file(key: &str) -> String {
    if !key.is_empty()
        && key
            .bytes()
            .all(|b| b == b'.' || b.is_ascii_digit() || b.is_ascii_lowercase())
    {
        key.to_string()
    } else {
        format!("={}", base64::engine::general_purpose::STANDARD.encode(key))
    }
}

impl Images {
    /// Reads the records of `store`.
    pub fn load(store: &Store) -> Result<Images> {
        Records::read(store.images_dir().join("images.json"))
    }

    /// The record of image `id`.
    pub fn get(&self, id: &str) -> Option<&Value> {
        self.list.iter().find(|v| str_field(v, "id") == Some(id))
    }

    /// The record of image `id`, to change.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.list
            .iter_mut()
            .find(|v| str_field(v, "id") == Some(id))
    }

    /// The image that has `name` among its names.
    pub fn by_name(&self, name: &str) -> Option<&Value> {
        self.list.iter().find(|v| {
            v.get("names")
                .and_then(Value::as_array)
                .is_some_and(|n| n.iter().any(|x| x.as_str() == Some(name)))
        })
    }

    /// The images whose manifests (the `digest` field or a `manifest*` big-data item) have
    /// digest `d`.
    pub fn by_digest(&self, d: &Digest) -> Vec<&Value> {
        let d = d.to_string();
        self.list
            .iter()
            .filter(|v| {
                str_field(v, "digest") == Some(d.as_str())
                    || v.get("big-data-digests")
                        .and_then(Value::as_object)
                        .is_some_and(|m| {
                            m.iter().any(|(k, x)| {
                                k.starts_with("manifest") && x.as_str() == Some(d.as_str())
                            })
                        })
            })
            .collect()
    }

    /// Gives `name` to image `id`, taking it from any other image, as containers/storage's
    /// `AddNames` does (the name also goes first in `names-history`).
    pub fn add_name(&mut self, id: &str, name: &str) {
        for v in &mut self.list {
            if str_field(v, "id") == Some(id) {
                continue;
            }
            if let Some(Value::Array(names)) = v.get_mut("names") {
                names.retain(|n| n.as_str() != Some(name));
            }
        }
        if let Some(Value::Object(m)) = self.get_mut(id) {
            let names = m.entry("names").or_insert_with(|| json!([]));
            if let Value::Array(a) = names
                && !a.iter().any(|n| n.as_str() == Some(name))
            {
                a.push(json!(name));
            }
            let history = m.entry("names-history").or_insert_with(|| json!([]));
            if let Value::Array(h) = history {
                h.retain(|n| n.as_str() != Some(name));
                h.insert(0, json!(name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_an_incomplete_layer_stays_inside_the_store() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"keep").unwrap();
        let spec = StoreSpec {
            driver: "vfs".into(),
            graph_root: t.path().join("graph"),
            run_root: t.path().join("run"),
            options: Vec::new(),
        };
        let store = Store::open(&spec).unwrap();
        store.prepare().unwrap();
        std::fs::create_dir(store.driver_home().join("good")).unwrap();
        // Every ID that would escape names a directory inside the test's own (an absolute one
        // too), so that this test removes nothing else should the check ever go.
        let absolute = outside.to_str().unwrap();
        let ids = [
            "",
            ".",
            "..",
            "../../../outside",
            absolute,
            "a/../..",
            "good",
        ];
        let records: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "flags": {INCOMPLETE: true}}))
            .collect();
        std::fs::write(
            store.layers_dir().join("layers.json"),
            serde_json::to_vec(&records).unwrap(),
        )
        .unwrap();
        let mut layers = Layers::load(&store).unwrap();
        assert!(layers.remove_incomplete(&store));
        assert!(layers.list.is_empty());
        assert!(
            !store.driver_home().join("good").exists(),
            "a real layer's files go"
        );
        assert!(store.driver_home().exists(), "the driver's directory stays");
        assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"keep");
        for id in ids.iter().take(6) {
            assert!(!is_plain_id(id), "{id:?}");
        }
        assert!(is_plain_id(&"a".repeat(64)));
    }

    #[test]
    fn big_data_names_as_containers_storage() {
        assert_eq!(big_data_file("manifest"), "manifest");
        assert_eq!(
            big_data_file(
                "manifest-sha256:e1bd24ea8f4d6877950bf0fa0952b6a928f098d3c9552efbca85bccfad003179"
            ),
            "=bWFuaWZlc3Qtc2hhMjU2OmUxYmQyNGVhOGY0ZDY4Nzc5NTBiZjBmYTA5NTJiNmE5MjhmMDk4ZDNjOTU1MmVmYmNhODViY2NmYWQwMDMxNzk="
        );
    }
}
