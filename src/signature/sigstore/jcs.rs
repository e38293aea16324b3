//! RFC 8785 JSON Canonicalization Scheme, as the Go canonicalizer containers/image and cosign
//! use (github.com/cyberphone/json-canonicalization) writes it: members sorted by their UTF-16
//! code units, no whitespace, minimal string escapes, numbers as ECMAScript prints an IEEE 754
//! double. A Rekor SET signs the canonical form of its payload.

use serde_json::Value;

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
#[non_exhaustive]
pub struct CanonicalError(String);

/// The canonical form of `v`.
pub fn canonicalize(v: &Value) -> Result<String, CanonicalError> {
    let mut out = String::new();
    write_value(&mut out, v)?;
    Ok(out)
}

fn write_value(out: &mut String, v: &Value) -> Result<(), CanonicalError> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            // Go's canonicalizer parses every number as a float64, as ECMAScript does.
            let f = n
                .as_f64()
                .ok_or_else(|| CanonicalError(format!("invalid number {n}")))?;
            out.push_str(&es6_number(f)?);
        }
        Value::String(s) => write_string(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, e)?;
            }
            out.push(']');
        }
        Value::Object(o) => {
            let mut members: Vec<(&String, &Value)> = o.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (k, e)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, e)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_string(out: &mut String, s: &str) {
    super::go_compat::push_escaped(out, s, false);
}

/// ECMAScript's Number.prototype.toString for a finite double (ECMA-262 §7.1.12.1).
fn es6_number(f: f64) -> Result<String, CanonicalError> {
    if !f.is_finite() {
        return Err(CanonicalError(format!("invalid number {f}")));
    }
    if f == 0.0 {
        return Ok("0".to_string());
    }
    // Rust prints the shortest digits that round-trip, as ECMAScript requires.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci
        .split_once('e')
        .ok_or_else(|| CanonicalError(format!("cannot format {f}")))?;
    let exp: i32 = exp
        .parse()
        .map_err(|_| CanonicalError(format!("cannot format {f}")))?;
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    let n = exp + 1;
    let mut out = String::new();
    if f < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = n - 1;
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        out.push_str(&e.abs().to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_as_ecmascript_prints_them() {
        // Values from RFC 8785 Appendix B.
        for (f, s) in [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (1674247893.0, "1674247893"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1e-7, "1e-7"),
            (1e-6, "0.000001"),
            (123.456, "123.456"),
            (9007199254740992.0, "9007199254740992"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (333333333.3333333, "333333333.3333333"),
            (295147905179352830000.0, "295147905179352830000"),
            (4.5e-7, "4.5e-7"),
        ] {
            assert_eq!(es6_number(f).unwrap(), s, "{f}");
        }
    }

    #[test]
    fn canonical_form() {
        let v = json!({"b": [1, "x\u{1}\n\"é<"], "a": {"z": null, "é": true, "\u{fb33}": 1, "\u{1d11e}": 2}, "integratedTime": 1674247893});
        // U+1D11E sorts before U+FB33 by UTF-16 code units (its first is the surrogate 0xD834),
        // though not by code point.
        assert_eq!(
            canonicalize(&v).unwrap(),
            "{\"a\":{\"z\":null,\"é\":true,\"\u{1d11e}\":2,\"\u{fb33}\":1},\"b\":[1,\"x\\u0001\\n\\\"é<\"],\"integratedTime\":1674247893}"
        );
        // Large integers go through a double, as in Go's canonicalizer.
        assert_eq!(
            canonicalize(&json!(12345678901234567890u64)).unwrap(),
            "12345678901234567000"
        );
    }
}
