//! The JSON of the protocol: a request `{"method", "args"}`, a reply `{"success", "value",
//! "pipeid", "error_code", "error"}`, and the error object written to `GetRawBlob`'s error pipe.
//! Kept apart from the methods so that what goes on the wire, and how a JSON number becomes an
//! id, is decided in one place and unit-tested without a socket.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request: a method and its arguments.
#[derive(Debug, Deserialize)]
pub struct Request {
    /// The method's name.
    pub method: String,
    /// Its arguments (none when the field is missing).
    #[serde(default)]
    pub args: Vec<Value>,
}

/// How a failure is classified for the client (`error_code`, protocol 0.2.8): the crate turns
/// `retryable` into `is_retryable()`, and treats `EPIPE` on the error pipe as no error (the
/// client closed the data pipe on purpose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Writing to a pipe the client owns failed because it closed its end.
    #[serde(rename = "EPIPE")]
    Pipe,
    /// A transient failure (network, a registry's 429 or 5xx, a stall): trying again may work.
    #[serde(rename = "retryable")]
    Retryable,
    /// Anything else.
    #[serde(rename = "other")]
    Other,
}

/// A reply, serialised with skopeo's field names and order.
#[derive(Debug, Serialize)]
pub struct Reply {
    /// Whether the method succeeded.
    pub success: bool,
    /// What it returned.
    pub value: Value,
    /// The pipe its data comes through, or 0.
    pub pipeid: u32,
    /// How a failure is classified (`""` on success).
    #[serde(serialize_with = "code_or_empty")]
    pub error_code: Option<ErrorCode>,
    /// The failure's message (`""` on success).
    pub error: String,
}

fn code_or_empty<S: serde::Serializer>(c: &Option<ErrorCode>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        Some(c) => c.serialize(s),
        None => s.serialize_str(""),
    }
}

impl Reply {
    /// A successful reply.
    pub fn ok(value: Value, pipeid: u32) -> Reply {
        Reply {
            success: true,
            value,
            pipeid,
            error_code: None,
            error: String::new(),
        }
    }

    /// A failed reply.
    pub fn failed(error: String, code: ErrorCode) -> Reply {
        Reply {
            success: false,
            value: Value::Null,
            pipeid: 0,
            error_code: Some(code),
            error,
        }
    }
}

/// What `GetRawBlob` writes to its error pipe when the copy fails.
#[derive(Debug, Serialize)]
pub struct PipeError<'a> {
    /// How the failure is classified.
    pub code: ErrorCode,
    /// Its message.
    pub message: &'a str,
}

/// The largest integer a JSON number carries exactly (JavaScript's `MAX_SAFE_INTEGER`): skopeo
/// refuses ids above it, and so does ferry.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why an argument is not what the method takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgumentError {
    /// The wrong number of arguments.
    #[error("invalid request, expecting {expected}")]
    Count {
        /// What the method takes, as `(imgid, digest)`.
        expected: &'static str,
    },
    /// A number was expected.
    #[error("expecting numeric, not {found}")]
    NotANumber {
        /// The JSON type found.
        found: &'static str,
    },
    /// A number that is negative, fractional or too large for an id or a size.
    #[error("out of range integer for numeric {0}")]
    OutOfRange(String),
    /// A string was expected.
    #[error("expecting string {what}, not {found}")]
    NotAString {
        /// What the string names (`imageref`, `blobid`).
        what: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks the number of arguments.
pub fn expect_args(args: &[Value], n: usize, expected: &'static str) -> Result<(), ArgumentError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(ArgumentError::Count { expected })
    }
}

/// A non-negative integer argument (an image id, a pipe id, a size). A JSON number with a
/// fraction of zero (`3.0`) counts, as Go's decoder into `float64` takes it.
pub fn uint(v: Option<&Value>) -> Result<u64, ArgumentError> {
    let v = v.ok_or(ArgumentError::Count {
        expected: "a numeric argument",
    })?;
    let Value::Number(n) = v else {
        return Err(ArgumentError::NotANumber {
            found: type_name(v),
        });
    };
    let out_of_range = || ArgumentError::OutOfRange(n.to_string());
    let value = match n.as_u64() {
        Some(u) => u,
        None => {
            let f = n.as_f64().ok_or_else(out_of_range)?;
            if f < 0.0 || f.fract() != 0.0 || f > MAX_SAFE_INTEGER as f64 {
                return Err(out_of_range());
            }
            f as u64
        }
    };
    if value > MAX_SAFE_INTEGER {
        return Err(out_of_range());
    }
    Ok(value)
}

/// A string argument.
pub fn string<'a>(v: Option<&'a Value>, what: &'static str) -> Result<&'a str, ArgumentError> {
    match v {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(ArgumentError::NotAString {
            what,
            found: type_name(other),
        }),
        None => Err(ArgumentError::Count {
            expected: "a string argument",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies_have_skopeos_fields_in_skopeos_order() {
        let ok = serde_json::to_string(&Reply::ok(json!(1), 0)).unwrap();
        assert_eq!(
            ok,
            r#"{"success":true,"value":1,"pipeid":0,"error_code":"","error":""}"#
        );
        let failed =
            serde_json::to_string(&Reply::failed("no image 7".into(), ErrorCode::Other)).unwrap();
        assert_eq!(
            failed,
            r#"{"success":false,"value":null,"pipeid":0,"error_code":"other","error":"no image 7"}"#
        );
        let pipe = serde_json::to_string(&PipeError {
            code: ErrorCode::Retryable,
            message: "stalled",
        })
        .unwrap();
        assert_eq!(pipe, r#"{"code":"retryable","message":"stalled"}"#);
    }

    #[test]
    fn ids_are_json_numbers_within_the_safe_range() {
        assert_eq!(uint(Some(&json!(3))), Ok(3));
        assert_eq!(uint(Some(&json!(3.0))), Ok(3));
        assert!(matches!(
            uint(Some(&json!(3.5))),
            Err(ArgumentError::OutOfRange(_))
        ));
        assert!(matches!(
            uint(Some(&json!(-1))),
            Err(ArgumentError::OutOfRange(_))
        ));
        assert!(matches!(
            uint(Some(&json!(1u64 << 60))),
            Err(ArgumentError::OutOfRange(_))
        ));
        assert_eq!(
            uint(Some(&json!("3"))),
            Err(ArgumentError::NotANumber { found: "string" })
        );
        assert_eq!(string(Some(&json!("x")), "imageref"), Ok("x"));
        assert_eq!(
            string(Some(&json!(1)), "imageref"),
            Err(ArgumentError::NotAString {
                what: "imageref",
                found: "number"
            })
        );
    }

    #[test]
    fn requests_without_args_parse() {
        let r: Request = serde_json::from_str(r#"{"method":"Shutdown"}"#).unwrap();
        assert_eq!(r.method, "Shutdown");
        assert!(r.args.is_empty());
    }
}
