//! Strict JSON, as containers/image's "paranoid" decoder reads policy files and signature
//! payloads: duplicate keys, unknown keys, missing keys and trailing data are errors.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A JSON error with the message containers/image would give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
#[non_exhaustive]
pub struct JsonError(pub String);

struct NoDup(Value);

impl<'de> serde::Deserialize<'de> for NoDup {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDupVisitor)
    }
}

struct NoDupVisitor;

impl<'de> Visitor<'de> for NoDupVisitor {
    type Value = NoDup;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<NoDup, E> {
        Ok(NoDup(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<NoDup, E> {
        Ok(NoDup(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<NoDup, E> {
        Ok(NoDup(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<NoDup, E> {
        Ok(NoDup(Value::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<NoDup, E> {
        Ok(NoDup(Value::String(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<NoDup, E> {
        Ok(NoDup(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<NoDup, E> {
        Ok(NoDup(Value::Null))
    }
    fn visit_none<E>(self) -> Result<NoDup, E> {
        Ok(NoDup(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDup, A::Error> {
        let mut out = Vec::new();
        while let Some(NoDup(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(NoDup(Value::Array(out)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDup, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(de::Error::custom(format!("Duplicate key {k:?}")));
            }
            let NoDup(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(NoDup(Value::Object(out)))
    }
}

/// Parses JSON, rejecting duplicate keys anywhere and data after the value.
pub fn parse(bytes: &[u8]) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let NoDup(v) = serde::Deserialize::deserialize(&mut de).map_err(|e| {
        let msg = e.to_string();
        JsonError(msg)
    })?;
    de.end()
        .map_err(|_| JsonError("Unexpected data after JSON object".into()))?;
    Ok(v)
}

/// The members of a checked JSON object: read with [`Members::req`] (a missing key is an error,
/// never a panic) or [`Members::get`].
#[derive(Debug, Clone)]
pub struct Members<'a>(BTreeMap<&'a str, &'a Value>);

impl<'a> Members<'a> {
    /// A member the object must have.
    pub fn req(&self, key: &str) -> Result<&'a Value, JsonError> {
        self.0
            .get(key)
            .copied()
            .ok_or_else(|| JsonError(format!("Key {key:?} missing in a JSON object")))
    }
    /// A member the object may have.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).copied()
    }
    /// Whether the object has `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
}

/// The members of a JSON object, checked against the keys it may have (`allowed`) and must have
/// (`required`).
pub fn object<'a>(
    v: &'a Value,
    allowed: &[&str],
    required: &[&str],
) -> Result<Members<'a>, JsonError> {
    let obj = v
        .as_object()
        .ok_or_else(|| JsonError(format!("JSON object expected, got {}", kind(v))))?;
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(JsonError(format!("Unknown key {k:?}")));
        }
    }
    for k in required {
        if !obj.contains_key(*k) {
            return Err(JsonError(format!("Key {k:?} missing in a JSON object")));
        }
    }
    Ok(Members(obj.iter().map(|(k, v)| (k.as_str(), v)).collect()))
}

/// A member that must be a string.
pub fn string<'a>(v: &'a Value, key: &str) -> Result<&'a str, JsonError> {
    v.as_str()
        .ok_or_else(|| JsonError(format!("Field {key:?} must be a string, got {}", kind(v))))
}

/// The `type` member of an object, or `""` when there is none (containers/image then reports
/// the type as unknown).
pub fn type_name(v: &Value) -> &str {
    v.as_object()
        .and_then(|o| o.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// An object that must be `{"type": ...}` and nothing else: `value` when it is.
pub fn only_type<T>(v: &Value, value: T) -> Result<T, JsonError> {
    object(v, &["type"], &["type"])?;
    Ok(value)
}

/// What kind of JSON value this is, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_duplicates_unknowns_missing_and_trailing() {
        assert!(
            parse(br#"{"a":1,"a":2}"#)
                .unwrap_err()
                .0
                .contains("Duplicate key")
        );
        assert!(parse(br#"{"a":{"b":1,"b":1}}"#).is_err());
        assert!(
            parse(br#"{"a":1} x"#)
                .unwrap_err()
                .0
                .contains("Unexpected data")
        );
        let v = parse(br#"{"a":1,"b":[1,2]}"#).unwrap();
        assert!(
            object(&v, &["a"], &[])
                .unwrap_err()
                .0
                .contains("Unknown key \"b\"")
        );
        assert!(
            object(&v, &["a", "b", "c"], &["c"])
                .unwrap_err()
                .0
                .contains("missing")
        );
        let m = object(&v, &["a", "b"], &["a"]).unwrap();
        assert!(m.req("a").is_ok() && m.get("b").is_some());
        assert!(m.req("c").unwrap_err().0.contains("missing"));
        assert!(
            object(&Value::Null, &[], &[])
                .unwrap_err()
                .0
                .contains("JSON object expected")
        );
    }
}
