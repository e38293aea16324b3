//! Parsing policy.json (containers-policy.json(5)) as strictly as containers/image: unknown
//! keys, duplicate keys, missing keys and empty requirement lists are errors naming the file.
//! It makes the requirement types of `requirement.rs`; key files are read here, once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use super::requirement::{IdentityMatch, Requirement, SignedBy, SigstoreSigned, TrustedKeys};
use super::sigstore_trust;
use crate::digest::Digest;
use crate::reference::DockerReference;
use crate::signature::simple::Keyring;
use crate::strict_json::{self, JsonError};

/// Why a policy cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read, or is too large to be a policy.
    #[error("cannot read the signature policy {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: crate::limits::ReadError,
    },
    /// The file is not a valid policy.
    #[error("invalid policy in {origin:?}: {message}")]
    Invalid {
        /// The file.
        origin: String,
        /// What is wrong, in containers/image's words.
        message: String,
    },
}

impl PolicyError {
    /// Always [`ErrorKind::Config`](crate::error::ErrorKind::Config): the policy cannot be used.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Config
    }
}

/// A parsed policy.
#[derive(Debug, Clone)]
pub struct Policy {
    origin: String,
    digest: Digest,
    /// `default`.
    pub default: Vec<Requirement>,
    /// `transports`: transport name → scope → requirements.
    pub transports: BTreeMap<String, BTreeMap<String, Vec<Requirement>>>,
}

const REGISTERED_PATH_TRANSPORTS: [&str; 4] = ["dir", "oci", "oci-archive", "sif"];

impl Policy {
    /// Reads and parses a policy file; key files it names are read now.
    pub fn from_file(path: &Path) -> Result<Policy, PolicyError> {
        let bytes =
            crate::limits::read_file(path, crate::limits::MAX_CONFIG_FILE, "a signature policy")
                .map_err(|source| PolicyError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
        Policy::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses policy bytes; `origin` names them in messages.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Policy, PolicyError> {
        let invalid = |e: JsonError| PolicyError::Invalid {
            origin: origin.to_string(),
            message: e.0,
        };
        let v = strict_json::parse(bytes).map_err(invalid)?;
        let top = strict_json::object(&v, &["default", "transports"], &[]).map_err(invalid)?;
        let default = match top.get("default") {
            None => return Err(invalid(JsonError("Default policy is missing".into()))),
            Some(d) => requirements(d).map_err(invalid)?,
        };
        let mut transports = BTreeMap::new();
        if let Some(t) = top.get("transports") {
            let t = t.as_object().ok_or_else(|| {
                invalid(JsonError(format!(
                    "JSON object expected, got {}",
                    strict_json::kind(t)
                )))
            })?;
            for (name, scopes) in t {
                let scopes_obj = scopes.as_object().ok_or_else(|| {
                    invalid(JsonError(format!(
                        "JSON object expected, got {}",
                        strict_json::kind(scopes)
                    )))
                })?;
                let mut out = BTreeMap::new();
                for (scope, reqs) in scopes_obj {
                    if !scope.is_empty() && !valid_scope(name, scope) {
                        return Err(invalid(JsonError(format!("Unknown key {scope:?}"))));
                    }
                    out.insert(scope.clone(), requirements(reqs).map_err(invalid)?);
                }
                transports.insert(name.clone(), out);
            }
        }
        Ok(Policy {
            origin: origin.to_string(),
            digest: Digest::sha256_of(bytes),
            default,
            transports,
        })
    }

    /// `$CONTAINERS_POLICY_JSON`, then `$XDG_CONFIG_HOME/containers/policy.json` (or
    /// `~/.config/containers/policy.json`), then `/etc/containers/policy.json`, as skopeo looks.
    /// Reads the environment; the library itself never calls it.
    pub fn default_path_from_env() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("CONTAINERS_POLICY_JSON") {
            return Some(PathBuf::from(p));
        }
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::home_dir().map(|h| h.join(".config")));
        let user = config.map(|c| c.join("containers/policy.json"));
        [user, Some(PathBuf::from("/etc/containers/policy.json"))]
            .into_iter()
            .flatten()
            .find(|p| p.exists())
    }

    /// The file this policy came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The sha256 of the policy's bytes.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
}

// containers/image validates scopes of registered transports; a bad one is "Unknown key".
fn valid_scope(transport: &str, scope: &str) -> bool {
    if REGISTERED_PATH_TRANSPORTS.contains(&transport) {
        let clean = Path::new(scope).components().collect::<PathBuf>();
        return scope.starts_with('/') && scope != "/" && clean.as_os_str() == scope;
    }
    true
}

fn requirements(v: &Value) -> Result<Vec<Requirement>, JsonError> {
    let list = v
        .as_array()
        .ok_or_else(|| JsonError(format!("JSON array expected, got {}", strict_json::kind(v))))?;
    if list.is_empty() {
        return Err(JsonError(
            "List of verification policy requirements must not be empty".into(),
        ));
    }
    list.iter().map(requirement).collect()
}

fn requirement(v: &Value) -> Result<Requirement, JsonError> {
    match strict_json::type_name(v) {
        "insecureAcceptAnything" => strict_json::only_type(v, Requirement::InsecureAcceptAnything),
        "reject" => strict_json::only_type(v, Requirement::Reject),
        "signedBaseLayer" => {
            let o = strict_json::object(
                v,
                &["type", "baseLayerIdentity"],
                &["type", "baseLayerIdentity"],
            )?;
            identity(o.req("baseLayerIdentity")?)?;
            Ok(Requirement::SignedBaseLayer)
        }
        "signedBy" => signed_by(v),
        "sigstoreSigned" => sigstore_signed(v),
        other => Err(JsonError(format!(
            "Unknown policy requirement type {other:?}"
        ))),
    }
}

fn signed_by(v: &Value) -> Result<Requirement, JsonError> {
    let o = strict_json::object(
        v,
        &[
            "type",
            "keyType",
            "keyPath",
            "keyPaths",
            "keyData",
            "signedIdentity",
        ],
        &["type"],
    )?;
    let key_type = match o.get("keyType") {
        None => return Err(JsonError("invalid keyType \"\"".into())),
        Some(k) => strict_json::string(k, "keyType")?.to_string(),
    };
    if ![
        "GPGKeys",
        "signedByGPGKeys",
        "X509Certificates",
        "signedByX509CAs",
    ]
    .contains(&key_type.as_str())
    {
        return Err(JsonError(format!(
            "Unrecognized keyType value {key_type:?}"
        )));
    }
    let present = ["keyPath", "keyPaths", "keyData"]
        .iter()
        .filter(|k| o.contains_key(k))
        .count();
    match present {
        0 => {
            return Err(JsonError(
                "Exactly one of keyPath, keyPaths and keyData must be specified, none of them present".into(),
            ));
        }
        1 => {}
        _ => {
            return Err(JsonError(
                "Exactly one of keyPath, keyPaths and keyData must be specified, more than one present".into(),
            ));
        }
    }
    let keys = if let Some(p) = o.get("keyPath") {
        let p = strict_json::string(p, "keyPath")?;
        if p.is_empty() {
            return Err(JsonError(
                "exactly one of keyPath, keyPaths and keyData must be specified".into(),
            ));
        }
        load_key_files(&[p.to_string()])
    } else if let Some(ps) = o.get("keyPaths") {
        let list = ps.as_array().ok_or_else(|| {
            JsonError(format!(
                "JSON array expected, got {}",
                strict_json::kind(ps)
            ))
        })?;
        let paths = list
            .iter()
            .map(|p| strict_json::string(p, "keyPaths").map(str::to_string))
            .collect::<Result<Vec<_>, _>>()?;
        load_key_files(&paths)
    } else {
        let d = strict_json::string(o.req("keyData")?, "keyData")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(d)
            .map_err(|e| JsonError(format!("illegal base64 data in keyData: {e}")))?;
        TrustedKeys {
            sources: vec!["keyData".into()],
            keyring: Keyring::from_bytes(&bytes).map_err(|e| format!("keyData: {e}")),
        }
    };
    let identity = match o.get("signedIdentity") {
        None => IdentityMatch::MatchRepoDigestOrExact,
        Some(i) => identity(i)?,
    };
    Ok(Requirement::SignedBy(SignedBy {
        key_type,
        keys,
        identity,
    }))
}

fn load_key_files(paths: &[String]) -> TrustedKeys {
    let mut rings = Vec::new();
    for p in paths {
        match crate::limits::read_file(Path::new(p), crate::limits::MAX_CONFIG_FILE, "a key file") {
            Ok(bytes) => match Keyring::from_bytes(&bytes) {
                Ok(k) => rings.push(k),
                Err(e) => {
                    return TrustedKeys {
                        sources: paths.to_vec(),
                        keyring: Err(format!("{p}: {e}")),
                    };
                }
            },
            Err(e) => {
                return TrustedKeys {
                    sources: paths.to_vec(),
                    keyring: Err(match e {
                        crate::limits::ReadError::Io { .. } => format!("open {e}"),
                        other => other.to_string(),
                    }),
                };
            }
        }
    }
    let keyring = Keyring::merge(rings);
    TrustedKeys {
        sources: paths.to_vec(),
        keyring: if keyring.is_empty() {
            Err("No public keys imported".into())
        } else {
            Ok(keyring)
        },
    }
}

fn sigstore_signed(v: &Value) -> Result<Requirement, JsonError> {
    let o = strict_json::object(
        v,
        &[
            "type",
            "keyPath",
            "keyPaths",
            "keyData",
            "keyDatas",
            "fulcio",
            "pki",
            "rekorPublicKeyPath",
            "rekorPublicKeyPaths",
            "rekorPublicKeyData",
            "rekorPublicKeyDatas",
            "signedIdentity",
        ],
        &["type"],
    )?;
    let sources = [
        "keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki",
    ]
    .iter()
    .filter(|k| o.contains_key(k))
    .count();
    if sources != 1 {
        return Err(JsonError(
            "exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio, and pki must be specified".into(),
        ));
    }
    for k in [
        "keyPaths",
        "keyDatas",
        "rekorPublicKeyPaths",
        "rekorPublicKeyDatas",
    ] {
        if let Some(list) = o.get(k) {
            let a = list.as_array().ok_or_else(|| {
                JsonError(format!(
                    "JSON array expected, got {}",
                    strict_json::kind(list)
                ))
            })?;
            if a.is_empty() {
                return Err(JsonError(format!("{k:?} contains no entries")));
            }
        }
    }
    let rekor = [
        "rekorPublicKeyPath",
        "rekorPublicKeyPaths",
        "rekorPublicKeyData",
        "rekorPublicKeyDatas",
    ]
    .iter()
    .filter(|k| o.contains_key(k))
    .count();
    if rekor > 1 {
        return Err(JsonError("at most one of rekorPublickeyPath, rekorPublicKeyPaths, rekorPublickeyData and rekorPublicKeyDatas can be used simultaneously".into()));
    }
    if let Some(f) = o.get("fulcio") {
        let f = strict_json::object(f, sigstore_trust::FULCIO_FIELDS, &[])?;
        match (f.contains_key("caPath"), f.contains_key("caData")) {
            (true, true) => {
                return Err(JsonError(
                    "caPath and caData cannot be used simultaneously".into(),
                ));
            }
            (false, false) => {
                return Err(JsonError(
                    "At least one of caPath and caData must be specified".into(),
                ));
            }
            _ => {}
        }
        if !f.contains_key("oidcIssuer") {
            return Err(JsonError("oidcIssuer not specified".into()));
        }
        if !f.contains_key("subjectEmail") {
            return Err(JsonError("subjectEmail not specified".into()));
        }
        if rekor == 0 {
            return Err(JsonError("At least one of rekorPublickeyPath, rekorPublicKeyPaths, rekorPublickeyData and rekorPublicKeyDatas must be specified if fulcio is used".into()));
        }
    }
    if let Some(p) = o.get("pki") {
        let p = strict_json::object(p, sigstore_trust::PKI_FIELDS, &[])?;
        if p.contains_key("caRootsPath") == p.contains_key("caRootsData") {
            return Err(JsonError(
                "exactly one of caRootsPath and caRootsData must be specified".into(),
            ));
        }
        if p.contains_key("caIntermediatesPath") && p.contains_key("caIntermediatesData") {
            return Err(JsonError(
                "caIntermediatesPath and caIntermediatesData cannot be used simultaneously".into(),
            ));
        }
        if !p.contains_key("subjectEmail") && !p.contains_key("subjectHostname") {
            return Err(JsonError(
                "at least one of subjectEmail and subjectHostname must be specified".into(),
            ));
        }
        if rekor > 0 {
            return Err(JsonError("rekorPublickeyPath, rekorPublicKeyPaths, rekorPublickeyData and rekorPublicKeyDatas are not supported for pki".into()));
        }
    }
    let identity = match o.get("signedIdentity") {
        None => IdentityMatch::MatchRepoDigestOrExact,
        Some(i) => identity(i)?,
    };
    let trust = sigstore_trust::load(&o)?;
    Ok(Requirement::SigstoreSigned(SigstoreSigned {
        trust,
        identity,
    }))
}

fn identity(v: &Value) -> Result<IdentityMatch, JsonError> {
    match strict_json::type_name(v) {
        "matchExact" => strict_json::only_type(v, IdentityMatch::MatchExact),
        "matchRepoDigestOrExact" => {
            strict_json::only_type(v, IdentityMatch::MatchRepoDigestOrExact)
        }
        "matchRepository" => strict_json::only_type(v, IdentityMatch::MatchRepository),
        "exactReference" => {
            let o = strict_json::object(
                v,
                &["type", "dockerReference"],
                &["type", "dockerReference"],
            )?;
            let s = strict_json::string(o.req("dockerReference")?, "dockerReference")?;
            let r = DockerReference::parse(s)
                .map_err(|e| JsonError(format!("Invalid format of dockerReference {s:?}: {e}")))?;
            if r.tag().is_none() && r.digest().is_none() {
                return Err(JsonError(format!(
                    "dockerReference {s:?} contains neither a tag nor digest"
                )));
            }
            Ok(IdentityMatch::ExactReference(r))
        }
        "exactRepository" => {
            let o = strict_json::object(
                v,
                &["type", "dockerRepository"],
                &["type", "dockerRepository"],
            )?;
            let s = strict_json::string(o.req("dockerRepository")?, "dockerRepository")?;
            let r = DockerReference::parse(s)
                .map_err(|e| JsonError(format!("Invalid format of dockerRepository {s:?}: {e}")))?;
            Ok(IdentityMatch::ExactRepository(r))
        }
        "remapIdentity" => {
            let o = strict_json::object(
                v,
                &["type", "prefix", "signedPrefix"],
                &["type", "prefix", "signedPrefix"],
            )?;
            let prefix = strict_json::string(o.req("prefix")?, "prefix")?;
            let signed_prefix = strict_json::string(o.req("signedPrefix")?, "signedPrefix")?;
            for p in [prefix, signed_prefix] {
                if !crate::reference::is_remap_prefix(p) {
                    return Err(JsonError(format!("prefix {p:?} is not valid")));
                }
            }
            Ok(IdentityMatch::RemapIdentity {
                prefix: prefix.to_string(),
                signed_prefix: signed_prefix.to_string(),
            })
        }
        other => Err(JsonError(format!(
            "Unknown policy reference match type {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        Policy::from_bytes(s.as_bytes(), "/p.json")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn rejects_invalid_policies_like_containers_image() {
        assert!(err("{}").contains("Default policy is missing"));
        assert!(err(r#"{"default":[]}"#).contains("must not be empty"));
        assert!(
            err(r#"{"default":[{"type":"insecureAcceptAnything"}],"x":1}"#)
                .contains("Unknown key \"x\"")
        );
        assert!(
            err(r#"{"default":[{"type":"insecureAcceptAnything","a":1}]}"#)
                .contains("Unknown key \"a\"")
        );
        assert!(
            err(r#"{"default":[{"type":"nope"}]}"#)
                .contains("Unknown policy requirement type \"nope\"")
        );
        assert!(
            err(r#"{"default":[{"type":"reject"}],"default":[{"type":"reject"}]}"#)
                .contains("Duplicate key")
        );
        assert!(
            err(r#"{"default":[{"type":"signedBy","keyType":"GPGKeys"}]}"#)
                .contains("none of them present")
        );
        assert!(err(r#"{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/a","keyData":""}]}"#).contains("more than one present"));
        assert!(
            err(r#"{"default":[{"type":"signedBy","keyType":"PGP","keyPath":"/a"}]}"#)
                .contains("Unrecognized keyType")
        );
        assert!(
            err(r#"{"default":[{"type":"signedBy","keyPath":"/a"}]}"#).contains("invalid keyType")
        );
        assert!(err(r#"{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/a","signedIdentity":{"type":"exactReference","dockerReference":"a/b"}}]}"#).contains("neither a tag nor digest"));
        assert!(err(r#"{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/a","signedIdentity":{"type":"what"}}]}"#).contains("Unknown policy reference match type"));
        assert!(err(r#"{"default":[{"type":"reject"}],"transports":{"dir":{"relative":[{"type":"reject"}]}}}"#).contains("Unknown key \"relative\""));
        assert!(
            err(
                r#"{"default":[{"type":"reject"}],"transports":{"oci":{"/":[{"type":"reject"}]}}}"#
            )
            .contains("Unknown key \"/\"")
        );
        assert!(
            err(r#"{"default":[{"type":"reject"}],"transports":{"docker":{"a":[]}}}"#)
                .contains("must not be empty")
        );
        assert!(
            err(r#"{"default":[{"type":"sigstoreSigned","keyPath":"/a","keyData":"eA=="}]}"#)
                .contains("exactly one of keyPath")
        );
        assert!(err(r#"{"default":[{"type":"sigstoreSigned","fulcio":{"caPath":"/a","oidcIssuer":"x","subjectEmail":"y"}}]}"#).contains("if fulcio is used"));
        assert!(err(r#"{"default":[{"type":"signedBaseLayer"}]}"#).contains("missing"));
        assert!(err(r#"{"default":[{"type":"reject"}]} trailing"#).contains("Unexpected data"));
        assert!(err("<html>").contains("/p.json"));
    }

    #[test]
    fn parses_every_form() {
        let p = Policy::from_bytes(
            br#"{"default":[{"type":"reject"}],
                 "transports":{
                   "docker":{"example.com/a":[{"type":"signedBy","keyType":"GPGKeys","keyPaths":["/nonexistent/k.gpg"],"signedIdentity":{"type":"remapIdentity","prefix":"example.com","signedPrefix":"mirror.example.org/x"}}],
                             "*.example.org":[{"type":"sigstoreSigned","keyData":"eA==","signedIdentity":{"type":"matchRepository"}}],
                             "":[{"type":"insecureAcceptAnything"}]},
                   "dir":{"/srv/images":[{"type":"signedBaseLayer","baseLayerIdentity":{"type":"matchExact"}}]},
                   "store":{"anything goes":[{"type":"reject"}]}}}"#,
            "inline",
        )
        .unwrap();
        assert_eq!(p.transports["docker"].len(), 3);
        match &p.transports["docker"]["example.com/a"][0] {
            Requirement::SignedBy(SignedBy { keys, .. }) => {
                assert!(
                    keys.keyring
                        .as_ref()
                        .unwrap_err()
                        .contains("/nonexistent/k.gpg")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.origin(), "inline");
    }
}
