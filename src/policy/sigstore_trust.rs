//! Loading a `sigstoreSigned` requirement's trust root when the policy is parsed: public keys
//! (`keyPath`, `keyPaths`, `keyData`, `keyDatas`), Rekor keys, a Fulcio CA with the identity its
//! certificates must name, or a PKI. Files are read here, once, as containers/image reads them
//! at evaluation; what cannot be read becomes the requirement's standing rejection, so the
//! judges do no IO.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use serde_json::Value;

use super::requirement::{SigstoreTrust, TrustRoot};
use crate::signature::sigstore::PublicKey;
use crate::signature::sigstore::fulcio::{FulcioTrustRoot, PkiTrustRoot};
use crate::strict_json::{self, JsonError, Members};

fn base64_bytes(v: &Value, key: &str) -> Result<Vec<u8>, JsonError> {
    let s = strict_json::string(v, key)?;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| JsonError(format!("illegal base64 data in {key}: {e}")))
}

fn string_list<'a>(v: &'a Value, key: &str) -> Result<Vec<&'a str>, JsonError> {
    v.as_array()
        .ok_or_else(|| JsonError(format!("JSON array expected, got {}", strict_json::kind(v))))?
        .iter()
        .map(|s| strict_json::string(s, key))
        .collect()
}

/// One source of bytes in the policy: files to read later, or inline data.
enum Source<'a> {
    Files(Vec<&'a str>),
    Data(Vec<Vec<u8>>),
}

impl Source<'_> {
    fn describe(&self, what: &str) -> String {
        match self {
            Source::Files(f) => format!("{what} {}", f.join(", ")),
            Source::Data(d) => format!("{what} (inline, {} item(s))", d.len()),
        }
    }
    /// The bytes of every item, reading files as containers/image does at evaluation (and
    /// with ferry's cap on configuration files).
    fn load(&self) -> Result<Vec<Vec<u8>>, String> {
        match self {
            Source::Data(d) => Ok(d.clone()),
            Source::Files(files) => files
                .iter()
                .map(|p| {
                    crate::limits::read_file(
                        Path::new(p),
                        crate::limits::MAX_CONFIG_FILE,
                        "a key or certificate file",
                    )
                    .map_err(|e| match e {
                        crate::limits::ReadError::Io { .. } => format!("open {e}"),
                        other => other.to_string(),
                    })
                })
                .collect(),
        }
    }
}

/// The one source among `path`/`paths`/`data`/`datas` keys the policy gives (the parser has
/// already checked that at most one is present).
fn source<'a>(
    o: &Members<'a>,
    path: &str,
    paths: Option<&str>,
    data: &str,
    datas: Option<&str>,
) -> Result<Option<Source<'a>>, JsonError> {
    if let Some(v) = o.get(path) {
        return Ok(Some(Source::Files(vec![strict_json::string(v, path)?])));
    }
    if let Some(k) = paths
        && let Some(v) = o.get(k)
    {
        return Ok(Some(Source::Files(string_list(v, k)?)));
    }
    if let Some(v) = o.get(data) {
        return Ok(Some(Source::Data(vec![base64_bytes(v, data)?])));
    }
    if let Some(k) = datas
        && let Some(v) = o.get(k)
    {
        let list = v.as_array().ok_or_else(|| {
            JsonError(format!("JSON array expected, got {}", strict_json::kind(v)))
        })?;
        return Ok(Some(Source::Data(
            list.iter()
                .map(|d| base64_bytes(d, k))
                .collect::<Result<_, _>>()?,
        )));
    }
    Ok(None)
}

fn public_keys(pems: &[Vec<u8>], what: &str) -> Result<Vec<PublicKey>, String> {
    pems.iter()
        .enumerate()
        .map(|(i, pem)| {
            PublicKey::from_pem(pem).map_err(|e| format!("parsing {what} {}: {e}", i + 1))
        })
        .collect()
}

fn rekor_keys(src: &Source<'_>) -> Result<Vec<PublicKey>, String> {
    let keys = public_keys(&src.load()?, "Rekor public key")?;
    if let Some(i) = keys.iter().position(|k| !k.is_ecdsa()) {
        return Err(format!("Rekor public key {} is not using ECDSA", i + 1));
    }
    if keys.is_empty() {
        return Err(r#"Internal inconsistency: "rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData" and "rekorPublicKeyDatas" produced no public keys"#.into());
    }
    Ok(keys)
}

/// The trust of a `sigstoreSigned` object whose shape the policy parser has checked.
/// Malformed inline data is a policy error; files that cannot be read or keys that cannot be
/// parsed become the requirement's standing rejection.
pub(crate) fn load(o: &Members<'_>) -> Result<SigstoreTrust, JsonError> {
    let keys = source(o, "keyPath", Some("keyPaths"), "keyData", Some("keyDatas"))?;
    let rekor = source(
        o,
        "rekorPublicKeyPath",
        Some("rekorPublicKeyPaths"),
        "rekorPublicKeyData",
        Some("rekorPublicKeyDatas"),
    )?;
    let mut sources = Vec::new();
    let root: Result<TrustRoot, String> = if let Some(k) = &keys {
        sources.push(k.describe("key"));
        if let Some(r) = &rekor {
            sources.push(r.describe("rekor"));
        }
        (|| {
            let keys = public_keys(&k.load()?, "public key")?;
            if keys.is_empty() {
                return Err(r#"Internal inconsistency: "keyPath", "keyPaths", "keyData" and "keyDatas" produced no public keys"#.into());
            }
            let rekor = rekor.as_ref().map(rekor_keys).transpose()?;
            Ok(TrustRoot::Keys { keys, rekor })
        })()
    } else if let Some(f) = o.get("fulcio") {
        let f = strict_json::object(f, FULCIO_FIELDS, &[])?;
        let ca = source(&f, "caPath", None, "caData", None)?;
        let issuer = f
            .get("oidcIssuer")
            .map(|v| strict_json::string(v, "oidcIssuer"))
            .transpose()?
            .unwrap_or_default();
        let email = f
            .get("subjectEmail")
            .map(|v| strict_json::string(v, "subjectEmail"))
            .transpose()?
            .unwrap_or_default();
        if let Some(c) = &ca {
            sources.push(c.describe("fulcio CA"));
        }
        sources.push(format!("oidcIssuer {issuer}, subjectEmail {email}"));
        if let Some(r) = &rekor {
            sources.push(r.describe("rekor"));
        }
        (|| {
            let ca = ca
                    .as_ref()
                    .ok_or(r#"Internal inconsistency: Fulcio specified with not exactly one of "caPath" nor "caData""#)?
                    .load()?;
            let root = FulcioTrustRoot::new(
                ca.first().map(Vec::as_slice).unwrap_or_default(),
                issuer,
                email,
            )
            .map_err(|e| e.to_string())?;
            let rekor = rekor
                .as_ref()
                .ok_or("Internal inconsistency: Fulcio CA specified without a Rekor public key")
                .map_err(String::from)
                .and_then(rekor_keys)?;
            Ok(TrustRoot::Fulcio {
                root: Box::new(root),
                rekor,
            })
        })()
    } else if let Some(p) = o.get("pki") {
        let p = strict_json::object(p, PKI_FIELDS, &[])?;
        let roots = source(&p, "caRootsPath", None, "caRootsData", None)?;
        let intermediates = source(&p, "caIntermediatesPath", None, "caIntermediatesData", None)?;
        let email = p
            .get("subjectEmail")
            .map(|v| strict_json::string(v, "subjectEmail"))
            .transpose()?;
        let host = p
            .get("subjectHostname")
            .map(|v| strict_json::string(v, "subjectHostname"))
            .transpose()?;
        if let Some(r) = &roots {
            sources.push(r.describe("pki roots"));
        }
        if let Some(i) = &intermediates {
            sources.push(i.describe("pki intermediates"));
        }
        (|| {
            let roots = roots
                    .as_ref()
                    .ok_or(r#"Internal inconsistency: PKI specified with not exactly one of "caRootsPath" nor "caRootsData""#)?
                    .load()?;
            let intermediates = intermediates.as_ref().map(Source::load).transpose()?;
            let root = PkiTrustRoot::new(
                roots.first().map(Vec::as_slice).unwrap_or_default(),
                intermediates
                    .as_ref()
                    .and_then(|i| i.first())
                    .map(Vec::as_slice),
                email,
                host,
            )
            .map_err(|e| e.to_string())?;
            Ok(TrustRoot::Pki {
                root: Box::new(root),
            })
        })()
    } else {
        Err("Internal inconsistency: A public key, Fulcio, or PKI must be specified.".into())
    };
    Ok(SigstoreTrust {
        sources,
        root: root.map(Arc::new),
    })
}

/// The members of a `sigstoreSigned` requirement's `fulcio` object.
pub(crate) const FULCIO_FIELDS: &[&str] = &["caPath", "caData", "oidcIssuer", "subjectEmail"];

/// The members of a `sigstoreSigned` requirement's `pki` object.
pub(crate) const PKI_FIELDS: &[&str] = &[
    "caRootsPath",
    "caRootsData",
    "caIntermediatesPath",
    "caIntermediatesData",
    "subjectEmail",
    "subjectHostname",
];
