//! ferry installed as `skopeo` (a link named `skopeo`, or `FERRY_COMPAT=skopeo`): where a script
//! can see the difference, ferry then behaves as the skopeo release it follows. Every failure
//! exits 1 (skopeo's `logrus.Fatal`), `skopeo --version` prints skopeo's version line, and the
//! error goes out as skopeo's log line (`time="…" level=fatal msg="…"`), so a script that
//! checks `-eq 1`, parses the version or greps the log keeps working. Invoked as `ferry`,
//! nothing here applies: ferry's own exit statuses (0/1/2/3) and messages stay.

use std::ffi::{OsStr, OsString};
use std::process::ExitCode;
use std::sync::OnceLock;

/// The skopeo release whose command-line behaviour ferry follows when invoked as skopeo (the
/// one tests/skopeo_compat.rs compares against).
pub const SKOPEO_VERSION: &str = "1.9.3";

/// The environment variable that turns skopeo's behaviour on without a link: `skopeo`.
pub const COMPAT_VARIABLE: &str = "FERRY_COMPAT";

/// Who ferry is being, for this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    /// ferry's own contract.
    Ferry,
    /// skopeo's, where scripts can see it.
    Skopeo,
}

static PERSONALITY: OnceLock<Personality> = OnceLock::new();

/// The personality a process started as `argv0` with `$FERRY_COMPAT` = `variable` has: skopeo
/// when the program's file name is `skopeo` (a link, or a copy), or when the variable says
/// `skopeo`; ferry otherwise. `FERRY_COMPAT=ferry` keeps ferry's own behaviour under any name.
pub fn detect(argv0: Option<&OsStr>, variable: Option<&OsStr>) -> Personality {
    match variable.and_then(OsStr::to_str) {
        Some("skopeo") => return Personality::Skopeo,
        Some("ferry") => return Personality::Ferry,
        _ => {}
    }
    let name = argv0
        .map(std::path::Path::new)
        .and_then(std::path::Path::file_name)
        .and_then(OsStr::to_str);
    match name {
        Some("skopeo") => Personality::Skopeo,
        _ => Personality::Ferry,
    }
}

/// Sets this process's personality from its command line and environment (once, first thing).
pub fn init(args: &[OsString]) -> Personality {
    let p = detect(
        args.first().map(OsString::as_os_str),
        std::env::var_os(COMPAT_VARIABLE).as_deref(),
    );
    *PERSONALITY.get_or_init(|| p)
}

/// This process's personality (ferry's until [`init`] says otherwise).
pub fn personality() -> Personality {
    PERSONALITY.get().copied().unwrap_or(Personality::Ferry)
}

/// Whether ferry is being skopeo.
pub fn is_skopeo() -> bool {
    personality() == Personality::Skopeo
}

/// The exit status as this personality reports it: skopeo exits 1 for every failure (bad
/// usage, an image not found, a rejected signature alike); ferry keeps its 1/2/3.
pub fn exit_status(code: u8) -> u8 {
    match (personality(), code) {
        (_, 0) => 0,
        (Personality::Skopeo, _) => 1,
        (Personality::Ferry, c) => c,
    }
}

/// [`exit_status`] for a command's finished [`ExitCode`] (0 stays 0, anything else becomes 1
/// as skopeo).
pub fn exit_code(code: ExitCode) -> ExitCode {
    if is_skopeo() && code != ExitCode::SUCCESS {
        ExitCode::from(1)
    } else {
        code
    }
}

/// The version line skopeo prints, with ferry's version after it on the same line, as skopeo
/// built from git adds `commit: …`: `skopeo version 1.9.3 ferry: 0.1.0`. Scripts that take the
/// third word, or match `skopeo version [0-9.]+` (skopeo's own system test), read 1.9.3.
pub fn version_line() -> String {
    format!(
        "skopeo version {SKOPEO_VERSION} ferry: {}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Whether the command line (without the program name) asks for skopeo's version: `--version`
/// or `-v` alone (skopeo's `-v` is `--version`; ferry's is `--verbose`), or `version`.
pub fn asks_for_version(rest: &[OsString]) -> bool {
    matches!(
        rest.iter()
            .map(|a| a.to_str())
            .collect::<Vec<_>>()
            .as_slice(),
        [Some("--version" | "-v" | "version")]
    )
}

/// A string quoted as Go's `strconv.Quote` quotes it (logrus quotes a message that way).
pub fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let n = u32::from(c);
                if n < 0x100 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{n:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One log line as skopeo's logrus writes it to a pipe: `time="…" level=LEVEL msg="…"` and
/// `KEY="VALUE"` for each field, in the order given (logrus sorts them; callers pass them
/// sorted).
pub fn log_line(level: &str, message: &str, fields: &[(&str, &str)]) -> String {
    let now = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut line = format!("time=\"{now}\" level={level} msg={}", go_quote(message));
    for (k, v) in fields {
        line.push_str(&format!(" {k}={}", go_quote(v)));
    }
    line
}

/// What skopeo's fatal line says for an error: for an image the policy rejected, skopeo's
/// `Source image rejected: REASON` (the first requirement that was not satisfied; skopeo's
/// system tests grep it), else ferry's message.
pub fn fatal_message(e: &anyhow::Error, ferry_message: &str) -> String {
    let verdict = e.chain().find_map(|c| {
        c.downcast_ref::<ferry::CopyError>()
            .and_then(ferry::CopyError::verdict)
            .or_else(|| {
                c.downcast_ref::<ferry::Rejected>()
                    .and_then(ferry::Rejected::verdict)
            })
    });
    match verdict.and_then(|v| v.requirements.iter().find(|r| !r.satisfied)) {
        Some(r) => format!("Source image rejected: {}", r.reason),
        None => ferry_message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skopeo_by_name_or_by_the_variable() {
        let p =
            |argv0: &str, var: Option<&str>| detect(Some(OsStr::new(argv0)), var.map(OsStr::new));
        assert_eq!(p("/usr/local/bin/skopeo", None), Personality::Skopeo);
        assert_eq!(p("skopeo", None), Personality::Skopeo);
        assert_eq!(p("/usr/bin/ferry", None), Personality::Ferry);
        assert_eq!(p("/usr/bin/skopeo-real", None), Personality::Ferry);
        assert_eq!(p("/usr/bin/ferry", Some("skopeo")), Personality::Skopeo);
        assert_eq!(p("/usr/bin/skopeo", Some("ferry")), Personality::Ferry);
        assert_eq!(p("/usr/bin/ferry", Some("")), Personality::Ferry);
    }

    #[test]
    fn the_version_is_asked_for_alone() {
        let a = |words: &[&str]| {
            asks_for_version(&words.iter().map(OsString::from).collect::<Vec<_>>())
        };
        assert!(a(&["--version"]));
        assert!(a(&["-v"]));
        assert!(a(&["version"]));
        assert!(!a(&["-v", "inspect", "docker://x"]));
        assert!(!a(&[]));
        let line = version_line();
        assert!(line.starts_with("skopeo version 1.9.3 "), "{line}");
        assert_eq!(line.split(' ').nth(2), Some(SKOPEO_VERSION));
    }

    #[test]
    fn messages_are_quoted_as_go_quotes_them() {
        assert_eq!(go_quote(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(go_quote("x\ny\u{1}"), r#""x\ny\x01""#);
        assert_eq!(go_quote("é"), "\"é\"");
        let l = log_line(
            "info",
            "Would have copied image ref 1/1",
            &[("from", "docker://a"), ("to", "dir:/b")],
        );
        assert!(l.starts_with("time=\""), "{l}");
        assert!(
            l.ends_with(
                r#" level=info msg="Would have copied image ref 1/1" from="docker://a" to="dir:/b""#
            ),
            "{l}"
        );
    }
}
