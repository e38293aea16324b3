//! Output shared by commands that print what skopeo prints.

/// JSON as skopeo prints it (Go's `json.MarshalIndent(v, "", "    ")`): four-space indents and
/// `<`, `>`, `&` escaped.
pub fn go_json_pretty<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    value.serialize(&mut ser)?;
    Ok(String::from_utf8_lossy(&buf)
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026"))
}
