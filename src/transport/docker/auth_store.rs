//! Writing credentials to an auth.json (containers-auth.json(5)) as `podman login` and
//! `skopeo login` write them: `{"auths": {"KEY": {"auth": BASE64(USER:PASSWORD)}}}`, indented
//! with tabs, mode 0600, replaced atomically; every other key of the file (`credHelpers`,
//! `credsStore`, other registries) is kept.
//!
//! KEY is a registry (`host[:port]`) or a repository namespace (`host[:port]/ns/repo`), which
//! ferry's reading ([`super::auth`]) looks up most specific first.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Map, Value};

use crate::transport::{Result, TransportError};

/// Where `login` writes when no file is given, as containers/image's `getPathToAuth`:
/// `$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`, else
/// `/run/containers/UID/auth.json`. Reads the environment: for the CLI.
pub fn default_write_path() -> PathBuf {
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(r) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(r).join("containers/auth.json");
    }
    let uid = crate::config::registries_d::effective_uid().unwrap_or(0);
    PathBuf::from(format!("/run/containers/{uid}/auth.json"))
}

/// The key a login argument names, as containers/common normalises it: a scheme and trailing
/// slashes dropped, Docker Hub's names as `docker.io`. `None` when it is not
/// `host[:port][/path]`.
pub fn normalize_key(arg: &str) -> Option<String> {
    let s = arg
        .strip_prefix("https://")
        .or_else(|| arg.strip_prefix("http://"))
        .unwrap_or(arg)
        .trim_end_matches('/');
    let (host, path) = match s.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if host.is_empty() || host.contains(['@', ' ']) {
        return None;
    }
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io",
        h => h,
    };
    match path {
        None => Some(host.to_string()),
        Some(p) if p == "v1" || p == "v2" => Some(host.to_string()),
        Some(p) => {
            let r = crate::reference::DockerReference::parse(&format!("{host}/{p}")).ok()?;
            (r.tag().is_none() && r.digest().is_none()).then(|| r.name())
        }
    }
}

fn read(path: &Path) -> Result<Map<String, Value>> {
    match crate::limits::read_file(path, crate::limits::MAX_CONFIG_FILE, "an auth file") {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(TransportError::Unsupported(format!(
                "{}: not a JSON object; refusing to rewrite it",
                path.display()
            ))),
            Err(source) => Err(super::auth::AuthError::InvalidFile {
                path: path.to_path_buf(),
                source,
            }
            .into()),
        },
        Err(crate::limits::ReadError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(Map::new())
        }
        Err(crate::limits::ReadError::Io { source, .. }) => Err(TransportError::io(path, source)),
        Err(crate::limits::ReadError::TooLarge(t)) => Err(TransportError::TooLarge {
            path: path.to_path_buf(),
            size: t.size,
            limit: t.limit,
            what: t.what,
        }),
    }
}

fn write(path: &Path, file: &Map<String, Value>) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| TransportError::io(dir, e))?;
    // Go's json.MarshalIndent(v, "", "\t"): tabs, and `<`, `>`, `&` escaped.
    let mut text = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut text, formatter);
    serde::Serialize::serialize(file, &mut ser)
        .map_err(|e| TransportError::Unsupported(format!("{}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&text)
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let mut tmp = tempfile::Builder::new()
        .prefix(".ferry-tmp-auth-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| TransportError::io(dir, e))?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| TransportError::io(tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| TransportError::io(path, e.error))?;
    Ok(())
}

fn auths(file: &mut Map<String, Value>) -> Result<&mut Map<String, Value>> {
    let entry = file
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    entry
        .as_object_mut()
        .ok_or_else(|| TransportError::Unsupported("\"auths\" is not a JSON object".into()))
}

/// Stores `username` and `password` for `key` in `path`.
pub fn store(path: &Path, key: &str, username: &str, password: &str) -> Result<()> {
    let mut file = read(path)?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    auths(&mut file)?.insert(key.to_string(), serde_json::json!({ "auth": auth }));
    write(path, &file)
}

/// Removes the entry of `key` from `path`; false when there was none.
pub fn remove(path: &Path, key: &str) -> Result<bool> {
    let mut file = read(path)?;
    let removed = auths(&mut file)?.remove(key).is_some();
    if removed {
        write(path, &file)?;
    }
    Ok(removed)
}

/// Removes every entry of `auths` from `path` (other keys are kept).
pub fn remove_all(path: &Path) -> Result<()> {
    let mut file = read(path)?;
    if file.is_empty() && !path.exists() {
        return Ok(());
    }
    auths(&mut file)?.clear();
    write(path, &file)
}

/// The username stored for `key` in `path`, if any.
pub fn username(path: &Path, key: &str) -> Result<Option<String>> {
    let mut file = read(path)?;
    let Some(entry) = auths(&mut file)?.get(key) else {
        return Ok(None);
    };
    if let Some(u) = entry.get("username").and_then(Value::as_str) {
        return Ok(Some(u.to_string()));
    }
    Ok(entry
        .get("auth")
        .and_then(Value::as_str)
        .and_then(|a| {
            base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| t.split_once(':').map(|(u, _)| u.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_removes_entries_keeping_the_rest() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("sub/auth.json");
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(
            &f,
            r#"{"credHelpers":{"x.io":"pass"},"auths":{"a.io":{"auth":"eDp5"}}}"#,
        )
        .unwrap();
        store(&f, "127.0.0.1:5000", "user", "pw").unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        assert_eq!(v["credHelpers"]["x.io"], "pass");
        assert_eq!(v["auths"]["a.io"]["auth"], "eDp5");
        assert_eq!(v["auths"]["127.0.0.1:5000"]["auth"], "dXNlcjpwdw==");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            username(&f, "127.0.0.1:5000").unwrap().as_deref(),
            Some("user")
        );
        assert_eq!(username(&f, "a.io").unwrap().as_deref(), Some("x"));
        assert!(remove(&f, "127.0.0.1:5000").unwrap());
        assert!(!remove(&f, "127.0.0.1:5000").unwrap());
        remove_all(&f).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        assert_eq!(v["auths"], serde_json::json!({}));
        assert_eq!(v["credHelpers"]["x.io"], "pass");
        let fresh = t.path().join("new/dir/auth.json");
        store(&fresh, "docker.io", "u", "p").unwrap();
        assert!(
            std::fs::read_to_string(&fresh)
                .unwrap()
                .contains("\n\t\"auths\"")
        );
    }

    #[test]
    fn keys_are_normalised_as_containers_common() {
        assert_eq!(
            normalize_key("https://127.0.0.1:5000/").as_deref(),
            Some("127.0.0.1:5000")
        );
        assert_eq!(
            normalize_key("index.docker.io").as_deref(),
            Some("docker.io")
        );
        assert_eq!(
            normalize_key("quay.io/ns/repo").as_deref(),
            Some("quay.io/ns/repo")
        );
        assert_eq!(normalize_key("quay.io/v2/").as_deref(), Some("quay.io"));
        assert_eq!(normalize_key("quay.io/ns/repo:tag"), None);
        assert_eq!(normalize_key(""), None);
    }
}
