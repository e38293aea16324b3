//! Registry credentials: where they come from, in the order skopeo looks, and the credential
//! helpers of docker's config.json.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use crate::transport::{TransportError, TransportOptions};

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

/// The auth files looked at, in order, when none is given.
pub fn default_auth_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
        out.push(PathBuf::from(p));
    }
    if let Some(r) = std::env::var_os("XDG_RUNTIME_DIR") {
        out.push(PathBuf::from(r).join("containers/auth.json"));
    }
    if let Some(h) = std::env::home_dir() {
        out.push(h.join(".config/containers/auth.json"));
        out.push(h.join(".docker/config.json"));
    }
    out
}

/// The credentials for `registry` (`host[:port]`) and `repository` (`host/path`), or `None`
/// for anonymous access; also a description of what was tried, for a 401's message.
pub fn resolve(
    registry: &str,
    repository: &str,
    options: &TransportOptions,
) -> Result<(Option<Credentials>, String), TransportError> {
    if let Some(c) = &options.creds {
        let (u, p) = c.split_once(':').unwrap_or((c.as_str(), ""));
        return Ok((
            Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
                source: "the --creds flag".into(),
            }),
            "the credentials given on the command line".into(),
        ));
    }
    let files = match &options.authfile {
        Some(f) => vec![f.clone()],
        None => default_auth_files(),
    };
    let mut tried = Vec::new();
    for f in &files {
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
            "no credentials (none in --creds, and no auth file among {})",
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
    let bytes = std::fs::read(path).map_err(|e| TransportError::io(path, e))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| TransportError::Config(format!("{}: not valid JSON: {e}", path.display())))?;
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
        .map_err(|e| {
            TransportError::Config(format!("running the credential helper {program}: {e}"))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| {
        TransportError::Config(format!("running the credential helper {program}: {e}"))
    })?;
    if !out.status.success() {
        return Err(TransportError::Config(format!(
            "the credential helper {program} found no credentials for {registry}: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        )));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        TransportError::Config(format!(
            "the credential helper {program} answered something that is not JSON: {e}"
        ))
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
        let opts = TransportOptions {
            authfile: Some(f.clone()),
            ..Default::default()
        };
        let c = resolve("example.com", "example.com/team/app", &opts)
            .unwrap()
            .0
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("team", "pw2"));
        let c = resolve("example.com", "example.com/other/app", &opts)
            .unwrap()
            .0
            .unwrap();
        assert_eq!(c.username, "host");
        let c = resolve("docker.io", "docker.io/library/busybox", &opts)
            .unwrap()
            .0
            .unwrap();
        assert_eq!(c.username, "hub");
        let (none, why) = resolve("nowhere.io", "nowhere.io/x", &opts).unwrap();
        assert!(none.is_none() && why.contains("auth.json"), "{why}");
        let flag = TransportOptions {
            creds: Some("u:p:q".into()),
            ..Default::default()
        };
        let c = resolve("example.com", "example.com/x", &flag)
            .unwrap()
            .0
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p:q"));
    }
}
