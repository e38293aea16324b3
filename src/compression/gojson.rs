//! JSON strings written the way Go's `encoding/json` writes them (HTML characters escaped,
//! invalid UTF-8 replaced by U+FFFD), so the tar-split and TOC documents ferry writes read the
//! same as the ones containers/storage writes, field for field and byte for byte where it can.

/// Appends `s` as a quoted JSON string to `out`, escaping as Go's `json.Marshal` does.
pub(crate) fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\u{8}' => out.extend_from_slice(b"\\b"),
                '\u{c}' => out.extend_from_slice(b"\\f"),
                '\u{2028}' => out.extend_from_slice(b"\\u2028"),
                '\u{2029}' => out.extend_from_slice(b"\\u2029"),
                c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        // Go replaces each byte of an invalid sequence on its own.
        for _ in chunk.invalid() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_like_go() {
        let mut out = Vec::new();
        super::string(&mut out, b"a<b>&\"\\\n\x01\xff\xe2\x80\xa8z");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a\u003cb\u003e\u0026\"\\\n\u0001\ufffd\u2028z""#
        );
    }
}
