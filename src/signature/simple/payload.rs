//! The simple signing payload: `{"critical": {"type", "image", "identity"}, "optional"}`.

use std::time::SystemTime;

use super::SignatureError;
use crate::digest::Digest;
use crate::strict_json;

/// The `critical.type` of a simple signing payload.
pub const SIGNATURE_TYPE: &str = "atomic container signature";

/// The content of a simple signing payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// `critical.image.docker-manifest-digest`.
    pub manifest_digest: String,
    /// `critical.identity.docker-reference`.
    pub docker_reference: String,
    /// `optional.creator`.
    pub creator: Option<String>,
    /// `optional.timestamp` (Unix seconds).
    pub timestamp: Option<i64>,
}

fn invalid(e: impl std::fmt::Display) -> SignatureError {
    SignatureError::InvalidPayload(e.to_string())
}

/// Parses a payload as strictly as containers/image: exactly the `critical` members, the right
/// type, a valid digest; `optional` must be an object whose known members have the right types.
pub fn parse_payload(json: &[u8]) -> Result<Payload, SignatureError> {
    let v = strict_json::parse(json).map_err(invalid)?;
    let top = strict_json::object(&v, &["critical", "optional"], &["critical", "optional"])
        .map_err(invalid)?;
    let critical = strict_json::object(
        top.req("critical").map_err(invalid)?,
        &["type", "image", "identity"],
        &["type", "image", "identity"],
    )
    .map_err(invalid)?;
    let ty =
        strict_json::string(critical.req("type").map_err(invalid)?, "type").map_err(invalid)?;
    if ty != SIGNATURE_TYPE {
        return Err(invalid(format!("Unrecognized signature type {ty}")));
    }
    let image = strict_json::object(
        critical.req("image").map_err(invalid)?,
        &["docker-manifest-digest"],
        &["docker-manifest-digest"],
    )
    .map_err(invalid)?;
    let digest = strict_json::string(
        image.req("docker-manifest-digest").map_err(invalid)?,
        "docker-manifest-digest",
    )
    .map_err(invalid)?;
    if let Err(e) = Digest::parse(digest) {
        return Err(invalid(format!(
            "invalid docker-manifest-digest value {digest:?}: {e}"
        )));
    }
    let identity = strict_json::object(
        critical.req("identity").map_err(invalid)?,
        &["docker-reference"],
        &["docker-reference"],
    )
    .map_err(invalid)?;
    let reference = strict_json::string(
        identity.req("docker-reference").map_err(invalid)?,
        "docker-reference",
    )
    .map_err(invalid)?;
    let optional = top
        .req("optional")
        .map_err(invalid)?
        .as_object()
        .ok_or_else(|| invalid("Field optional must be a JSON object"))?;
    let creator = match optional.get("creator") {
        None => None,
        Some(c) => Some(
            strict_json::string(c, "optional.creator")
                .map_err(invalid)?
                .to_string(),
        ),
    };
    let timestamp = match optional.get("timestamp") {
        None => None,
        Some(t) => Some(
            t.as_i64()
                .or_else(|| t.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .ok_or_else(|| invalid("Field optional.timestamp is not an integer"))?,
        ),
    };
    Ok(Payload {
        manifest_digest: digest.to_string(),
        docker_reference: reference.to_string(),
        creator,
        timestamp,
    })
}

/// A payload for `manifest_digest` and `docker_reference`, made by ferry now.
pub fn payload_json(manifest_digest: &Digest, docker_reference: &str) -> Vec<u8> {
    let timestamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Keys in the order containers/image writes them (sorted), so payloads look alike.
    let v = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest.to_string()},
            "type": SIGNATURE_TYPE,
        },
        "optional": {
            "creator": format!("ferry {}", env!("CARGO_PKG_VERSION")),
            "timestamp": timestamp,
        },
    });
    v.to_string().into_bytes()
}
