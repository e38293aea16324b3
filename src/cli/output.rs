//! Output shared by commands that print what skopeo prints, and the one way commands write to
//! standard output.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once standard output's reader has gone away.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Writes `bytes` to standard output. When its reader has gone away (`ferry store list | head
/// -1`), the rest of the output is dropped and the command goes on to its own exit status,
/// instead of the panic `println!` gives; any other write error ends ferry with status 3.
pub fn stdout_write(bytes: &[u8]) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            STDOUT_GONE.store(true, Ordering::Relaxed);
            return;
        }
        eprintln!("ferry: writing to standard output: {e}");
        std::process::exit(i32::from(super::EXIT_FAILURE));
    }
}

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
