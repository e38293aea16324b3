//! PEM as Go's `encoding/pem` reads and writes it, because containers/image and cosign decide
//! what a key file holds with `pem.Decode`: text before the first block is skipped, `Key: value`
//! headers are allowed, a block that does not parse is skipped in favour of the next, and
//! only the first block counts unless the caller asks for the rest.

use super::go_compat;

/// One PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The label: `PUBLIC KEY`, `CERTIFICATE`, `ENCRYPTED SIGSTORE PRIVATE KEY`, ...
    pub label: String,
    /// `Key: value` headers (RFC 1421 style), in order.
    pub headers: Vec<(String, String)>,
    /// The decoded body.
    pub der: Vec<u8>,
}

const BEGIN: &[u8] = b"\n-----BEGIN ";
const END: &[u8] = b"\n-----END ";
const DASHES: &[u8] = b"-----";

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The first line (without `\r\n`/`\n` and trailing spaces and tabs) and what follows it.
fn line(data: &[u8]) -> (&[u8], &[u8]) {
    let (mut end, next) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (i, i + 1),
        None => (data.len(), data.len()),
    };
    if end > 0 && end < data.len() && data.get(end - 1) == Some(&b'\r') {
        end -= 1;
    }
    let mut l = data.get(..end).unwrap_or_default();
    while let [rest @ .., b' ' | b'\t'] = l {
        l = rest;
    }
    (l, data.get(next..).unwrap_or_default())
}

/// The first PEM block in `data` and the bytes after it, as Go's `pem.Decode`; `None` when
/// there is no block that parses.
pub fn decode(data: &[u8]) -> Option<(Block, &[u8])> {
    let mut rest = data;
    loop {
        let begin_here = BEGIN.get(1..).unwrap_or_default();
        if rest.starts_with(begin_here) {
            rest = rest.get(begin_here.len()..).unwrap_or_default();
        } else if let Some(i) = find(rest, BEGIN) {
            rest = rest.get(i + BEGIN.len()..).unwrap_or_default();
        } else {
            return None;
        }
        let (type_line, after) = line(rest);
        rest = after;
        let Some(label) = type_line.strip_suffix(DASHES) else {
            continue;
        };
        let mut headers = Vec::new();
        loop {
            if rest.is_empty() {
                return None;
            }
            let (l, next) = line(rest);
            let Some(colon) = l.iter().position(|&b| b == b':') else {
                break;
            };
            let (k, v) = l.split_at(colon);
            let key = String::from_utf8_lossy(k.trim_ascii()).into_owned();
            let value =
                String::from_utf8_lossy(v.get(1..).unwrap_or_default().trim_ascii()).into_owned();
            headers.push((key, value));
            rest = next;
        }
        // Without headers the END line may come at once, with no newline before it.
        let end_here = END.get(1..).unwrap_or_default();
        let (end_index, trailer_index) = if headers.is_empty() && rest.starts_with(end_here) {
            (0, end_here.len())
        } else {
            match find(rest, END) {
                Some(i) => (i, i + END.len()),
                None => continue,
            }
        };
        let trailer = rest.get(trailer_index..).unwrap_or_default();
        let trailer_len = label.len() + DASHES.len();
        if trailer.len() < trailer_len {
            continue;
        }
        let (end_label, rest_of_end_line) = trailer.split_at(trailer_len);
        if !end_label.starts_with(label) || !end_label.ends_with(DASHES) {
            continue;
        }
        if !line(rest_of_end_line).0.is_empty() {
            continue;
        }
        let body: Vec<u8> = rest
            .get(..end_index)
            .unwrap_or_default()
            .iter()
            .copied()
            .filter(|&b| b != b' ' && b != b'\t')
            .collect();
        let Ok(der) = go_compat::base64_decode(&body) else {
            continue;
        };
        let after_end = line(rest.get(end_index + END.len() - 1..).unwrap_or_default()).1;
        return Some((
            Block {
                label: String::from_utf8_lossy(label).into_owned(),
                headers,
                der,
            },
            after_end,
        ));
    }
}

/// Every block in `data`, in order, as repeated `pem.Decode` calls find them.
pub fn decode_all(data: &[u8]) -> Vec<Block> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((block, next)) = decode(rest) {
        out.push(block);
        rest = next;
    }
    out
}

/// A PEM block as Go's `pem.EncodeToMemory` writes it: 64 columns, a final newline.
pub fn encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // The base64 alphabet is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_go() {
        let pem = encode("PUBLIC KEY", b"hello world, a body longer than a few bytes");
        let (b, rest) = decode(pem.as_bytes()).unwrap();
        assert_eq!(b.label, "PUBLIC KEY");
        assert_eq!(b.der, b"hello world, a body longer than a few bytes");
        assert!(rest.is_empty());

        // Text before, CRLF, headers, trailing blanks, and a second block left in `rest`.
        let text = format!(
            "some comment\r\n-----BEGIN X-----\r\nProc-Type: 4,ENCRYPTED\r\n\r\naGVs\r\nbG8=  \r\n-----END X-----  \r\n{}",
            encode("Y", b"second")
        );
        let (b, rest) = decode(text.as_bytes()).unwrap();
        assert_eq!(b.label, "X");
        assert_eq!(b.headers, vec![("Proc-Type".into(), "4,ENCRYPTED".into())]);
        assert_eq!(b.der, b"hello");
        assert_eq!(decode(rest).unwrap().0.der, b"second");
        assert_eq!(decode_all(text.as_bytes()).len(), 2);

        // A block whose END label differs or whose body is not base64 is skipped.
        let bad = format!(
            "-----BEGIN A-----\naGVsbG8=\n-----END B-----\n-----BEGIN C-----\n!!!!\n-----END C-----\n{}",
            encode("D", b"ok")
        );
        assert_eq!(decode(bad.as_bytes()).unwrap().0.label, "D");
        assert!(decode(b"not pem at all").is_none());
        assert!(decode(b"-----BEGIN A-----\naGVsbG8=\n").is_none());
        assert_eq!(
            decode(b"-----BEGIN A-----\n-----END A-----").unwrap().0.der,
            b""
        );
    }

    #[test]
    fn encodes_at_64_columns() {
        let pem = encode("K", &[0u8; 60]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN K-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2].len(), 16);
        assert_eq!(lines[3], "-----END K-----");
        assert!(pem.ends_with("-----\n"));
    }
}
