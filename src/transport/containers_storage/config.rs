//! Where a containers/storage store is and which driver writes it, as podman finds out:
//! `storage.conf` (`$CONTAINERS_STORAGE_CONF`; for a user other than root
//! `$XDG_CONFIG_HOME/containers/storage.conf` or `~/.config/containers/storage.conf`; then
//! `/etc/containers/storage.conf`, then `/usr/share/containers/storage.conf`), its `[storage]`
//! table's `driver`, `graphroot` and `runroot` (`rootless_storage_path` for a user), else
//! containers/storage's defaults (`/var/lib/containers/storage`, `/run/containers/storage`; a
//! user's `~/.local/share/containers/storage` and `$XDG_RUNTIME_DIR/containers`) and the
//! overlay driver.

use std::path::{Path, PathBuf};

/// A store: its driver and directories, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSpec {
    /// The graph driver's name (`overlay`, `vfs`).
    pub driver: String,
    /// The graph root: layers, images and their records.
    pub graph_root: PathBuf,
    /// The run root: mount state, kept on a tmpfs by podman.
    pub run_root: PathBuf,
    /// Driver options given in the reference (`:OPT,OPT`).
    pub options: Vec<String>,
}

#[derive(serde::Deserialize, Default)]
struct ConfFile {
    #[serde(default)]
    storage: ConfStorage,
}

/// The `[storage]` table of storage.conf: the keys ferry reads.
#[derive(serde::Deserialize, Default, Debug)]
pub struct ConfStorage {
    /// `driver`.
    #[serde(default)]
    pub driver: Option<String>,
    /// `graphroot`.
    #[serde(default)]
    pub graphroot: Option<String>,
    /// `runroot`.
    #[serde(default)]
    pub runroot: Option<String>,
    /// `rootless_storage_path`.
    #[serde(default)]
    pub rootless_storage_path: Option<String>,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The storage.conf podman reads, if there is one.
pub fn conf_path() -> Option<PathBuf> {
    if let Some(p) = env_path("CONTAINERS_STORAGE_CONF") {
        return Some(p);
    }
    if !rustix::process::geteuid().is_root() {
        let user = env_path("XDG_CONFIG_HOME")
            .or_else(|| env_path("HOME").map(|h| h.join(".config")))
            .map(|d| d.join("containers/storage.conf"));
        if let Some(u) = user.filter(|p| p.is_file()) {
            return Some(u);
        }
    }
    [
        "/etc/containers/storage.conf",
        "/usr/share/containers/storage.conf",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// `$HOME` and `$XDG_*` expanded as containers/storage expands them in storage.conf paths.
fn expand(s: &str) -> PathBuf {
    let mut out = s.to_string();
    for var in [
        "HOME",
        "XDG_RUNTIME_DIR",
        "XDG_DATA_HOME",
        "XDG_CONFIG_HOME",
        "UID",
        "USER",
    ] {
        if let Ok(v) = std::env::var(var) {
            out = out
                .replace(&format!("${var}"), &v)
                .replace(&format!("${{{var}}}"), &v);
        }
    }
    PathBuf::from(out)
}

/// The store podman uses when the reference names none: storage.conf, then the defaults.
pub fn default_store() -> Result<StoreSpec, String> {
    let conf = match conf_path() {
        Some(p) => read_conf(&p)?,
        None => ConfStorage::default(),
    };
    let root = rustix::process::geteuid().is_root();
    let uid = rustix::process::geteuid().as_raw();
    let graph_root = if root {
        conf.graphroot.as_deref().map(expand)
    } else {
        conf.rootless_storage_path.as_deref().map(expand)
    }
    .unwrap_or_else(|| {
        if root {
            PathBuf::from("/var/lib/containers/storage")
        } else {
            env_path("XDG_DATA_HOME")
                .or_else(|| env_path("HOME").map(|h| h.join(".local/share")))
                .unwrap_or_else(|| PathBuf::from(format!("/tmp/containers-user-{uid}")))
                .join("containers/storage")
        }
    });
    let run_root = match (root, conf.runroot.as_deref()) {
        (true, Some(r)) => expand(r),
        (true, None) => PathBuf::from("/run/containers/storage"),
        (false, _) => env_path("XDG_RUNTIME_DIR")
            .map(|d| d.join("containers"))
            .unwrap_or_else(|| PathBuf::from(format!("/tmp/containers-user-{uid}/containers"))),
    };
    Ok(StoreSpec {
        driver: conf
            .driver
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "overlay".to_string()),
        graph_root,
        run_root,
        options: Vec::new(),
    })
}

/// Reads the `[storage]` table of the storage.conf at `path`.
pub fn read_conf(path: &Path) -> Result<ConfStorage, String> {
    let bytes = crate::limits::read_file(path, crate::limits::MAX_CONFIG_FILE, "storage.conf")
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8", path.display()))?;
    let file: ConfFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(file.storage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_conf_gives_driver_and_roots() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("storage.conf");
        std::fs::write(
            &p,
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"/srv/g\"\nrunroot = \"/srv/r\"\n[storage.options]\nmount_program = \"\"\n",
        )
        .unwrap();
        let c = read_conf(&p).unwrap();
        assert_eq!(c.driver.as_deref(), Some("vfs"));
        assert_eq!(c.graphroot.as_deref(), Some("/srv/g"));
        assert_eq!(c.runroot.as_deref(), Some("/srv/r"));
        std::fs::write(&p, "[storage\n").unwrap();
        assert!(read_conf(&p).unwrap_err().contains("storage.conf"));
    }
}
