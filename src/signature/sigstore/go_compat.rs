//! The two pieces of Go's standard library whose exact behaviour shows in sigstore signatures:
//! `encoding/json`'s string escaping (so the blobs ferry writes are byte-identical to
//! containers/image's) and `encoding/base64`'s `StdEncoding` decoder (so ferry accepts and refuses
//! the same base64, with the same "illegal base64 data at input byte N" offsets).

use std::fmt::Write as _;

/// Go's `base64.CorruptInputError`: the offset of the first byte Go's decoder refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal base64 data at input byte {0}")]
#[non_exhaustive]
pub struct CorruptInput(pub usize);

fn value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

fn is_newline(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

/// Decodes like Go's `base64.StdEncoding.DecodeString`: the standard alphabet, padding required,
/// `\r` and `\n` anywhere ignored, non-zero trailing bits accepted (Go's encoding is not
/// `Strict()`), nothing allowed after the padding but newlines.
pub fn base64_decode(src: &[u8]) -> Result<Vec<u8>, CorruptInput> {
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    while si < src.len() {
        // One quantum of up to four symbols, as Go's decodeQuantum reads it.
        let mut buf = [0u8; 4];
        let mut len = 4;
        let mut j = 0;
        let mut trailing_error = None;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                // Padding is required: a quantum cut short is an error at its start.
                return Err(CorruptInput(si - j));
            }
            let Some(&b) = src.get(si) else {
                return Err(CorruptInput(si));
            };
            si += 1;
            if let Some(v) = value(b) {
                if let Some(slot) = buf.get_mut(j) {
                    *slot = v;
                }
                j += 1;
                continue;
            }
            if is_newline(b) {
                continue;
            }
            if b != b'=' {
                return Err(CorruptInput(si - 1));
            }
            // Padding: only after two or three symbols, and then the input must end.
            match j {
                0 | 1 => return Err(CorruptInput(si - 1)),
                2 => {
                    while src.get(si).is_some_and(|&b| is_newline(b)) {
                        si += 1;
                    }
                    if si == src.len() {
                        return Err(CorruptInput(src.len()));
                    }
                    if src.get(si) != Some(&b'=') {
                        return Err(CorruptInput(si - 1));
                    }
                    si += 1;
                }
                _ => {}
            }
            while src.get(si).is_some_and(|&b| is_newline(b)) {
                si += 1;
            }
            if si < src.len() {
                trailing_error = Some(CorruptInput(si));
            }
            len = j;
            break;
        }
        let v = (u32::from(buf[0]) << 18)
            | (u32::from(buf[1]) << 12)
            | (u32::from(buf[2]) << 6)
            | u32::from(buf[3]);
        let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        out.extend_from_slice(bytes.get(..len.saturating_sub(1)).unwrap_or_default());
        if let Some(e) = trailing_error {
            return Err(e);
        }
    }
    Ok(out)
}

/// Appends `s` as a JSON string the way Go's `json.Marshal` writes it: `<`, `>` and `&` as
/// `\u003c`, `\u003e`, `\u0026` (HTML-safe), U+2028 and U+2029 escaped, `\b \f \n \r \t` short,
/// other control characters as `\u00XX`.
pub fn push_json_string(out: &mut String, s: &str) {
    push_escaped(out, s, true);
}

/// Appends `s` as a JSON string with only the escapes JSON requires (`"`, `\\`, control
/// characters; `\b \f \n \r \t` short) and, when `html_safe`, Go's extra escapes of `<`, `>`,
/// `&`, U+2028 and U+2029. RFC 8785 (JCS) is the same without them.
pub fn push_escaped(out: &mut String, s: &str, html_safe: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' if html_safe => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON string as Go's `json.Marshal` writes it.
#[cfg(test)]
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_json_string(&mut out, s);
    out
}

/// What Go's `encoding/json` calls a JSON value's kind in "cannot unmarshal X into ..." errors.
pub fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// A member of a JSON object, found as Go's `encoding/json` finds a struct field: the exact
/// name, else a case-insensitive match.
pub fn member<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a serde_json::Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Go's `hex.DecodeString`, with its error texts.
pub fn hex_decode(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let nibble = |c: u8| -> Result<u8, String> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(format!(
                "encoding/hex: invalid byte: U+{:04X} {:?}",
                c,
                char::from(c)
            )),
        }
    };
    let mut out = Vec::with_capacity(b.len() / 2);
    for pair in b.chunks_exact(2) {
        if let [hi, lo] = *pair {
            out.push((nibble(hi)? << 4) | nibble(lo)?);
        }
    }
    if b.len() % 2 == 1 {
        if let Some(&last) = b.last() {
            nibble(last)?;
        }
        return Err("encoding/hex: odd length hex string".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn base64_like_go_std_encoding() {
        let std = base64::engine::general_purpose::STANDARD;
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            assert_eq!(base64_decode(std.encode(data).as_bytes()).unwrap(), data);
        }
        // Newlines anywhere are skipped, as in PEM bodies.
        assert_eq!(base64_decode(b"Zm9v\r\nYmFy\n").unwrap(), b"foobar");
        assert_eq!(base64_decode(b"Zg=\n=").unwrap(), b"f");
        // Offsets as Go reports them.
        assert_eq!(base64_decode(b"Zm9v!"), Err(CorruptInput(4)));
        assert_eq!(base64_decode(b"Zg"), Err(CorruptInput(0)));
        assert_eq!(base64_decode(b"Zm9vZg"), Err(CorruptInput(4)));
        assert_eq!(base64_decode(b"Zg="), Err(CorruptInput(3)));
        assert_eq!(base64_decode(b"Z==="), Err(CorruptInput(1)));
        assert_eq!(base64_decode(b"Zg==Zg=="), Err(CorruptInput(4)));
        assert_eq!(base64_decode(b"Zm8=x"), Err(CorruptInput(4)));
        assert_eq!(base64_decode(b"Zg=x"), Err(CorruptInput(2)));
        assert_eq!(base64_decode(b"Zm9v Zm9v"), Err(CorruptInput(4)));
        // Non-zero trailing bits are accepted, as by Go's non-strict encoding.
        assert_eq!(base64_decode(b"Zh==").unwrap(), b"f");
    }

    #[test]
    fn json_strings_like_go() {
        assert_eq!(json_string("a<b>&c"), r#""a\u003cb\u003e\u0026c""#);
        assert_eq!(
            json_string("q\"\\\n\r\t\u{8}\u{c}\u{1}\u{7f}é\u{2028}"),
            "\"q\\\"\\\\\\n\\r\\t\\b\\f\\u0001\u{7f}é\\u2028\""
        );
    }
}
