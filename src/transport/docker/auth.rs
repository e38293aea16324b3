//! Registry credentials: where they come from, in the order skopeo looks, and the credential
//! helpers of docker's config.json.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use crate::transport::TransportError;

/// Why credentials could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// An auth file is not JSON.
    #[error("{path}: not valid JSON: {source}")]
    InvalidFile {
        /// The file.
        path: std::path::PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A credential helper could not run, found nothing, or answered garbage.
    #[error("the credential helper {program} {problem}")]
    Helper {
        /// `docker-credential-NAME`.
        program: String,
        /// What went wrong, in words.
        problem: String,
    },
}

/// A username and secret for one registry, and where they were found (for messages).
#[derive(Clone)]
pub struct Credentials {
    /// The username.
    pub username: String,
    /// The password or token.
    pub password: String,
    /// Where they came from: `--src-creds`, `/run/user/0/containers/auth.json`, `credential
    /// helper docker-credential-pass`.
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The auth files looked at, in order, when none is given: `$REGISTRY_AUTH_FILE`,
/// `$XDG_RUNTIME_DIR/containers/auth.json` (without that variable,
/// `/run/containers/UID/auth.json`), `~/.config/containers/auth.json`,
/// `~/.docker/config.json`. Reads the environment: used by
/// [`crate::session::SessionConfig::from_env`].
pub fn default_auth_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
        out.push(PathBuf::from(p));
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(r) => out.push(PathBuf::from(r).join("containers/auth.json")),
        // Where `login` writes without a runtime directory (containers/image's per-UID path).
        None => out.push(PathBuf::from(format!(
            "/run/containers/{}/auth.json",
            crate::config::registries_d::effective_uid().unwrap_or(0)
        ))),
    }
    if let Some(h) = std::env::home_dir() {
        out.push(h.join(".config/containers/auth.json"));
        out.push(h.join(".docker/config.json"));
    }
    out
}

/// The credentials for `registry` (`host[:port]`) and `repository` (`host/path`): `creds`
/// (`USER[:PASSWORD]`) when given, else the first of `auth_files` that has some; `None` for
/// anonymous access. Also a description of what was tried, for a 401's message.
pub fn resolve(
    registry: &str,
    repository: &str,
    creds: Option<&str>,
    auth_files: &[PathBuf],
) -> Result<(Option<Credentials>, String), TransportError> {
    if let Some(c) = creds {
        let (u, p) = c.split_once(':').unwrap_or((c, ""));
        return Ok((
            Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
                source: "the credentials given for this side".into(),
            }),
            "the credentials given on the command line".into(),
        ));
    }
    let files = auth_files;
    let mut tried = Vec::new();
    for f in files {
        if !f.exists() {
            continue;
        }
        tried.push(f.display().to_string());
        if let Some(c) = from_file(f, registry, repository)? {
            return Ok((Some(c), format!("credentials from {}", f.display())));
        }
    }
    let what = if tried.is_empty() {
        format!(
            "no credentials (none given, and no auth file among {})",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        format!("no credentials for {registry} in {}", tried.join(", "))
    };
    Ok((None, what))
}

fn decode_auth(s: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn keys_for(registry: &str, repository: &str) -> Vec<String> {
    // Most specific first: repository namespaces (containers auth.json), then the host in the
    // forms docker's config.json uses.
    let mut keys = Vec::new();
    let mut cur = repository;
    loop {
        keys.push(cur.to_string());
        match cur.rfind('/') {
            Some(i) => cur = &cur[..i],
            None => break,
        }
    }
    keys.push(format!("https://{registry}"));
    keys.push(format!("http://{registry}"));
    keys.push(format!("https://{registry}/v1/"));
    keys.push(format!("https://{registry}/v2/"));
    if registry == "docker.io" {
        keys.push("https://index.docker.io/v1/".into());
        keys.push("index.docker.io".into());
    }
    keys
}

fn from_file(
    path: &Path,
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>, TransportError> {
    let bytes =
        crate::transport::fsutil::read_capped(path, crate::transport::fsutil::MAX_CONFIG_FILE)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|source| AuthError::InvalidFile {
        path: path.to_path_buf(),
        source,
    })?;
    let keys = keys_for(registry, repository);
    if let Some(helpers) = v.get("credHelpers").and_then(Value::as_object) {
        for k in &keys {
            if let Some(helper) = helpers.get(k).and_then(Value::as_str) {
                return helper_get(helper, registry).map(Some);
            }
        }
    }
    if let Some(auths) = v.get("auths").and_then(Value::as_object) {
        for k in &keys {
            if let Some(entry) = auths.get(k) {
                if let Some((u, p)) = entry
                    .get("auth")
                    .and_then(Value::as_str)
                    .and_then(decode_auth)
                {
                    return Ok(Some(Credentials {
                        username: u,
                        password: p,
                        source: path.display().to_string(),
                    }));
                }
                if let (Some(u), Some(p)) = (
                    entry.get("username").and_then(Value::as_str),
                    entry.get("password").and_then(Value::as_str),
                ) {
                    return Ok(Some(Credentials {
                        username: u.into(),
                        password: p.into(),
                        source: path.display().to_string(),
                    }));
                }
            }
        }
    }
    if let Some(store) = v.get("credsStore").and_then(Value::as_str) {
        return match helper_get(store, registry) {
            Ok(c) => Ok(Some(c)),
            Err(_) => Ok(None),
        };
    }
    Ok(None)
}

/// Asks `docker-credential-NAME get` for the registry's credentials.
fn helper_get(name: &str, registry: &str) -> Result<Credentials, TransportError> {
    use std::io::Write;
    let program = format!("docker-credential-{name}");
    let mut child = std::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| AuthError::Helper {
            program: program.clone(),
            problem: format!("could not be run: {e}"),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| AuthError::Helper {
        program: program.clone(),
        problem: format!("failed: {e}"),
    })?;
    if !out.status.success() {
        return Err(AuthError::Helper {
            program,
            problem: format!(
                "found no credentials for {registry}: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            ),
        }
        .into());
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| AuthError::Helper {
        program: program.clone(),
        problem: format!("answered something that is not JSON: {e}"),
    })?;
    Ok(Credentials {
        username: v
            .get("Username")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        password: v
            .get("Secret")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        source: format!("credential helper {program}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auth_files_most_specific_first() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("auth.json");
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            &f,
            serde_json::json!({"auths": {
                "example.com": {"auth": enc("host:pw")},
                "example.com/team": {"auth": enc("team:pw2")},
                "https://index.docker.io/v1/": {"auth": enc("hub:pw3")},
            }})
            .to_string(),
        )
        .unwrap();
        let opts = [f.clone()];
        let c = resolve("example.com", "example.com/team/app", None, &opts)
            .unwrap()
            .0
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("team", "pw2"));
        let c = resolve("example.com", "example.com/other/app", None, &opts)
            .unwrap()
            .0
            .unwrap();
        assert_eq!(c.username, "host");
        let c = resolve("docker.io", "docker.io/library/busybox", None, &opts)
            .unwrap()
            .0
            .unwrap();
        assert_eq!(c.username, "hub");
        let (none, why) = resolve("nowhere.io", "nowhere.io/x", None, &opts).unwrap();
        assert!(none.is_none() && why.contains("auth.json"), "{why}");
        let c = resolve("example.com", "example.com/x", Some("u:p:q"), &opts)
            .unwrap()
            .0
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p:q"));
    }
}
