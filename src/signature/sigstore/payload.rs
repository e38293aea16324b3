//! The cosign signature payload ("simple signing" in cosign's terms), which is what the
//! signature signs:
//! `{"critical":{"identity":{"docker-reference":R},"image":{"docker-manifest-digest":D},
//! "type":"cosign container image signature"},"optional":{...}|null}`.
//!
//! Parsed with containers/image's rules (signature/internal/sigstore_payload.go): exactly
//! `critical` and `optional` at the top; exactly `type`, `image` and `identity` in `critical`,
//! exactly one member in each of those; `optional` may be `null` (cosign writes that when there
//! are no annotations) or an object whose unknown members are ignored, with `creator` a string
//! and `timestamp` an integral number.

use serde_json::Value;

use super::go_compat::{self, json_kind};
use crate::digest::Digest;
use crate::strict_json;

/// The `critical.type` of a cosign signature payload.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// Why a payload is not a valid cosign signature payload. The messages are containers/image's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// Not JSON, or JSON of the wrong shape: a duplicate, unknown or missing key, trailing data,
    /// a member of the wrong type.
    #[error("{0}")]
    Json(String),
    /// `critical.type` is not [`SIGNATURE_TYPE`].
    #[error("Unrecognized signature type {0}")]
    UnrecognizedType(String),
    /// `critical.image.docker-manifest-digest` is not a digest.
    #[error("invalid docker-manifest-digest value {value:?}: {reason}")]
    InvalidDigest {
        /// The value.
        value: String,
        /// Why it is not a digest.
        reason: String,
    },
    /// `optional.timestamp` has a fractional part or is out of range.
    #[error("Field optional.timestamp is not an integer")]
    TimestampNotInteger,
    /// Serializing a payload with an empty digest or reference.
    #[error("Unexpected empty signature content")]
    EmptyContent,
}

/// The content of a cosign signature payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigstorePayload {
    /// `critical.image.docker-manifest-digest`, a valid digest.
    pub manifest_digest: String,
    /// `critical.identity.docker-reference`, unchecked: cosign writes the repository without
    /// the tag, containers/image the reference as signed. The policy decides what matches.
    pub docker_reference: String,
    /// `optional.creator`.
    pub creator: Option<String>,
    /// `optional.timestamp` (Unix seconds).
    pub timestamp: Option<i64>,
}

fn json(e: impl std::fmt::Display) -> PayloadError {
    PayloadError::Json(e.to_string())
}

/// A member that Go decodes into a `string`: `null` leaves it empty, another kind is an error.
fn go_string(v: &Value) -> Result<String, PayloadError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        other => Err(json(format!(
            "json: cannot unmarshal {} into Go value of type string",
            json_kind(other)
        ))),
    }
}

impl SigstorePayload {
    /// A payload for `manifest_digest` and `docker_reference` with the given `optional` members.
    pub fn new(
        manifest_digest: &Digest,
        docker_reference: &str,
        creator: Option<String>,
        timestamp: Option<i64>,
    ) -> SigstorePayload {
        SigstorePayload {
            manifest_digest: manifest_digest.to_string(),
            docker_reference: docker_reference.to_string(),
            creator,
            timestamp,
        }
    }

    /// Parses a payload as strictly as containers/image. Duplicate keys are refused anywhere
    /// (containers/image refuses them everywhere but inside the values of unknown `optional`
    /// members, which it ignores).
    pub fn from_json(bytes: &[u8]) -> Result<SigstorePayload, PayloadError> {
        let v = strict_json::parse(bytes).map_err(json)?;
        let top = strict_json::object(&v, &["critical", "optional"], &["critical", "optional"])
            .map_err(json)?;

        let mut creator = None;
        let mut timestamp = None;
        let optional = top.req("optional").map_err(json)?;
        if !optional.is_null() {
            let Some(obj) = optional.as_object() else {
                return Err(json(format!(
                    "JSON object expected, got {}",
                    strict_json::kind(optional)
                )));
            };
            for (k, v) in obj {
                match k.as_str() {
                    "creator" => creator = Some(go_string(v)?),
                    "timestamp" => {
                        let f = match v {
                            Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                            Value::Null => 0.0,
                            other => {
                                return Err(json(format!(
                                    "json: cannot unmarshal {} into Go value of type float64",
                                    json_kind(other)
                                )));
                            }
                        };
                        timestamp = Some(integral(f)?);
                    }
                    _ => {}
                }
            }
        }

        let critical = strict_json::object(
            top.req("critical").map_err(json)?,
            &["type", "image", "identity"],
            &["type", "image", "identity"],
        )
        .map_err(json)?;
        let ty = go_string(critical.req("type").map_err(json)?)?;
        if ty != SIGNATURE_TYPE {
            return Err(PayloadError::UnrecognizedType(ty));
        }
        let image = strict_json::object(
            critical.req("image").map_err(json)?,
            &["docker-manifest-digest"],
            &["docker-manifest-digest"],
        )
        .map_err(json)?;
        let digest = go_string(image.req("docker-manifest-digest").map_err(json)?)?;
        if let Err(e) = Digest::parse(&digest) {
            return Err(PayloadError::InvalidDigest {
                value: digest,
                reason: e.to_string(),
            });
        }
        let identity = strict_json::object(
            critical.req("identity").map_err(json)?,
            &["docker-reference"],
            &["docker-reference"],
        )
        .map_err(json)?;
        let docker_reference = go_string(identity.req("docker-reference").map_err(json)?)?;
        Ok(SigstorePayload {
            manifest_digest: digest,
            docker_reference,
            creator,
            timestamp,
        })
    }

    /// The payload as containers/image writes it when it signs: keys sorted, no spaces, strings
    /// escaped as Go escapes them, `optional` an object (possibly empty).
    pub fn to_json(&self) -> Result<Vec<u8>, PayloadError> {
        if self.manifest_digest.is_empty() || self.docker_reference.is_empty() {
            return Err(PayloadError::EmptyContent);
        }
        let mut out = String::from("{\"critical\":{\"identity\":{\"docker-reference\":");
        go_compat::push_json_string(&mut out, &self.docker_reference);
        out.push_str("},\"image\":{\"docker-manifest-digest\":");
        go_compat::push_json_string(&mut out, &self.manifest_digest);
        out.push_str("},\"type\":");
        go_compat::push_json_string(&mut out, SIGNATURE_TYPE);
        out.push_str("},\"optional\":{");
        if let Some(c) = &self.creator {
            out.push_str("\"creator\":");
            go_compat::push_json_string(&mut out, c);
            if self.timestamp.is_some() {
                out.push(',');
            }
        }
        if let Some(t) = self.timestamp {
            out.push_str(&format!("\"timestamp\":{t}"));
        }
        out.push_str("}}");
        Ok(out.into_bytes())
    }
}

/// Go's check: the float64 converted to int64 and back must be the same number.
fn integral(f: f64) -> Result<i64, PayloadError> {
    // 2^63 is exactly representable; anything at or above it does not fit an i64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if f.is_finite() && f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f) {
        Ok(f as i64)
    } else {
        Err(PayloadError::TimestampNotInteger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn full() -> SigstorePayload {
        SigstorePayload {
            manifest_digest: DIGEST.into(),
            docker_reference: "reference#@!".into(),
            creator: Some("CREATOR".into()),
            timestamp: Some(1484683104),
        }
    }

    #[test]
    fn serializes_byte_for_byte_like_containers_image() {
        // The expected strings are those of containers/image's TestUntrustedSigstorePayloadMarshalJSON.
        let expected = format!(
            "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"reference#@!\"}},\"image\":{{\"docker-manifest-digest\":\"{DIGEST}\"}},\"type\":\"cosign container image signature\"}},\"optional\":{{\"creator\":\"CREATOR\",\"timestamp\":1484683104}}}}"
        );
        assert_eq!(full().to_json().unwrap(), expected.as_bytes());
        let bare = SigstorePayload {
            creator: None,
            timestamp: None,
            ..full()
        };
        let expected = format!(
            "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"reference#@!\"}},\"image\":{{\"docker-manifest-digest\":\"{DIGEST}\"}},\"type\":\"cosign container image signature\"}},\"optional\":{{}}}}"
        );
        assert_eq!(bare.to_json().unwrap(), expected.as_bytes());
        let only_ts = SigstorePayload {
            creator: None,
            ..full()
        };
        assert!(
            String::from_utf8(only_ts.to_json().unwrap())
                .unwrap()
                .ends_with("\"optional\":{\"timestamp\":1484683104}}")
        );
        // Go escapes HTML characters.
        let html = SigstorePayload {
            creator: Some("a<b>&c".into()),
            ..full()
        };
        assert!(
            String::from_utf8(html.to_json().unwrap())
                .unwrap()
                .contains(r#""creator":"a\u003cb\u003e\u0026c""#)
        );
        for empty in [
            SigstorePayload {
                manifest_digest: String::new(),
                ..full()
            },
            SigstorePayload {
                docker_reference: String::new(),
                ..full()
            },
        ] {
            assert_eq!(empty.to_json(), Err(PayloadError::EmptyContent));
        }
        // What ferry writes, it reads back.
        assert_eq!(
            SigstorePayload::from_json(&full().to_json().unwrap()).unwrap(),
            full()
        );
        let d = Digest::parse(DIGEST).unwrap();
        assert_eq!(
            SigstorePayload::new(&d, "reference#@!", Some("CREATOR".into()), Some(1484683104)),
            full()
        );
    }

    #[test]
    fn reads_what_cosign_writes() {
        let p = SigstorePayload::from_json(br#"{"critical":{"identity":{"docker-reference":"192.168.64.2:5000/cosign-signed-multi"},"image":{"docker-manifest-digest":"sha256:43955d6857268cc948ae9b370b221091057de83c4962da0826f9a2bdc9bd6b44"},"type":"cosign container image signature"},"optional":null}"#).unwrap();
        assert_eq!(p.docker_reference, "192.168.64.2:5000/cosign-signed-multi");
        assert_eq!(
            p.manifest_digest,
            "sha256:43955d6857268cc948ae9b370b221091057de83c4962da0826f9a2bdc9bd6b44"
        );
        assert_eq!((p.creator, p.timestamp), (None, None));
    }

    fn valid() -> Value {
        serde_json::from_slice(&full().to_json().unwrap()).unwrap()
    }

    fn with(f: impl FnOnce(&mut Value)) -> Result<SigstorePayload, PayloadError> {
        let mut v = valid();
        f(&mut v);
        SigstorePayload::from_json(v.to_string().as_bytes())
    }

    fn err(f: impl FnOnce(&mut Value)) -> String {
        with(f).unwrap_err().to_string()
    }

    #[test]
    fn refuses_what_containers_image_refuses() {
        // The corruptions of containers/image's TestUntrustedSigstorePayloadUnmarshalJSON, with
        // the messages its decoder gives.
        assert!(SigstorePayload::from_json(b"&").is_err());
        assert!(SigstorePayload::from_json(b"1").is_err());
        assert_eq!(
            err(|v| {
                v.as_object_mut().unwrap().remove("critical");
            }),
            "Key \"critical\" missing in a JSON object"
        );
        assert_eq!(
            err(|v| {
                v.as_object_mut().unwrap().remove("optional");
            }),
            "Key \"optional\" missing in a JSON object"
        );
        assert_eq!(
            err(|v| v["unexpected"] = json!(1)),
            "Unknown key \"unexpected\""
        );
        assert!(err(|v| v["critical"] = json!(1)).contains("JSON object expected"));
        assert!(err(|v| v["optional"] = json!(1)).contains("JSON object expected"));
        for k in ["type", "image", "identity"] {
            assert_eq!(
                err(|v| {
                    v["critical"].as_object_mut().unwrap().remove(k);
                }),
                format!("Key \"{k}\" missing in a JSON object")
            );
        }
        assert_eq!(
            err(|v| v["critical"]["unexpected"] = json!(1)),
            "Unknown key \"unexpected\""
        );
        assert_eq!(
            err(|v| v["critical"]["type"] = json!(1)),
            "json: cannot unmarshal number into Go value of type string"
        );
        assert_eq!(
            err(|v| v["critical"]["type"] = json!("unexpected")),
            "Unrecognized signature type unexpected"
        );
        assert!(err(|v| v["critical"]["image"] = json!(1)).contains("JSON object expected"));
        assert_eq!(
            err(|v| {
                v["critical"]["image"]
                    .as_object_mut()
                    .unwrap()
                    .remove("docker-manifest-digest");
            }),
            "Key \"docker-manifest-digest\" missing in a JSON object"
        );
        assert_eq!(
            err(|v| v["critical"]["image"]["unexpected"] = json!(1)),
            "Unknown key \"unexpected\""
        );
        assert!(
            err(|v| v["critical"]["image"]["docker-manifest-digest"] = json!(1))
                .contains("cannot unmarshal number")
        );
        assert!(
            err(|v| v["critical"]["image"]["docker-manifest-digest"] = json!("sha256:../.."))
                .starts_with("invalid docker-manifest-digest value \"sha256:../..\": ")
        );
        assert!(err(|v| v["critical"]["identity"] = json!(1)).contains("JSON object expected"));
        assert_eq!(
            err(|v| {
                v["critical"]["identity"]
                    .as_object_mut()
                    .unwrap()
                    .remove("docker-reference");
            }),
            "Key \"docker-reference\" missing in a JSON object"
        );
        assert_eq!(
            err(|v| v["critical"]["identity"]["unexpected"] = json!(1)),
            "Unknown key \"unexpected\""
        );
        assert!(
            err(|v| v["critical"]["identity"]["docker-reference"] = json!(1))
                .contains("cannot unmarshal number")
        );
        assert!(err(|v| v["optional"]["creator"] = json!(1)).contains("cannot unmarshal number"));
        assert_eq!(
            err(|v| v["optional"]["timestamp"] = json!("unexpected")),
            "json: cannot unmarshal string into Go value of type float64"
        );
        assert_eq!(
            err(|v| v["optional"]["timestamp"] = json!(0.5)),
            "Field optional.timestamp is not an integer"
        );
        // Duplicates and trailing data, as containers/image's paranoid decoder.
        assert!(
            SigstorePayload::from_json(br#"{"critical":{},"critical":{},"optional":null}"#)
                .unwrap_err()
                .to_string()
                .contains("Duplicate key")
        );
        let mut trailing = full().to_json().unwrap();
        trailing.extend_from_slice(b" x");
        assert!(SigstorePayload::from_json(&trailing).is_err());
    }

    #[test]
    fn optional_is_lenient_as_in_containers_image() {
        // Unknown members of "optional" are ignored.
        assert_eq!(
            with(|v| v["optional"]["unexpected"] = json!(1)).unwrap(),
            full()
        );
        // Members may be missing, or "optional" empty or null.
        let p = with(|v| v["optional"] = json!({})).unwrap();
        assert_eq!((p.creator, p.timestamp), (None, None));
        let p = with(|v| v["optional"] = Value::Null).unwrap();
        assert_eq!((p.creator, p.timestamp), (None, None));
        // An integral float is an integer; Go decodes into float64 first.
        assert_eq!(
            with(|v| v["optional"]["timestamp"] = json!(1e3))
                .unwrap()
                .timestamp,
            Some(1000)
        );
        assert_eq!(
            err(|v| v["optional"]["timestamp"] = json!(1e19)),
            "Field optional.timestamp is not an integer"
        );
        // Go decodes null into a string as "", leaving the policy to refuse the reference.
        assert_eq!(
            with(|v| v["critical"]["identity"]["docker-reference"] = Value::Null)
                .unwrap()
                .docker_reference,
            ""
        );
        assert_eq!(
            err(|v| v["critical"]["type"] = Value::Null),
            "Unrecognized signature type "
        );
    }
}
