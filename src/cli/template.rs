//! The small subset of Go templates that `inspect --format` accepts, printing values as Go's
//! text/template prints skopeo's inspect output, so scripts written for skopeo work:
//!
//! - `{{.Field}}` for a top-level field (`{{.Name}}`, `{{.Digest}}`, `{{.Created}}`, …), and
//!   `{{.Labels.KEY}}` for one label (`<no value>` when absent, as Go);
//! - `{{json .}}` and `{{json .Field}}`: the value as compact JSON;
//! - `{{range .List}}…{{.}}…{{end}}` over a list field (`RepoTags`, `Layers`, `Env`);
//! - literal text, with `\t` and `\n` written as tab and newline (containers/common does that
//!   to user formats), and a newline added at the end when the format has none.
//!
//! Anything else (functions other than `json`, `if`, pipelines, variables) is refused with a
//! message that lists what is supported, rather than printed wrongly.

use serde_json::Value;

/// A parsed format.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Field(Vec<String>),
    Json(Vec<String>),
    Range(Vec<String>, Vec<Node>),
    Dot,
}

const SUPPORTED: &str = "ferry supports {{.Field}}, {{.Labels.KEY}}, {{json .}}, {{json .Field}} and {{range .Field}}…{{.}}…{{end}}";

/// Renders `format` over `data` (a JSON object of the inspect output). `fields` are the names
/// a `.Field` may use.
pub fn render(format: &str, data: &Value) -> Result<String, String> {
    let format = format.replace("\\t", "\t").replace("\\n", "\n");
    let nodes = parse(&format)?;
    let mut out = String::new();
    eval(&nodes, data, data, &mut out)?;
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

fn parse(format: &str) -> Result<Vec<Node>, String> {
    let mut stack: Vec<(Vec<String>, Vec<Node>)> = Vec::new();
    let mut nodes = Vec::new();
    let mut rest = format;
    while !rest.is_empty() {
        let Some(start) = rest.find("{{") else {
            nodes.push(Node::Text(rest.to_string()));
            break;
        };
        if start > 0 {
            nodes.push(Node::Text(
                rest.get(..start).unwrap_or_default().to_string(),
            ));
        }
        let after = rest.get(start + 2..).unwrap_or_default();
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed action in the format {format:?}"))?;
        let action = after.get(..end).unwrap_or_default().trim();
        rest = after.get(end + 2..).unwrap_or_default();
        let words: Vec<&str> = action.split_whitespace().collect();
        match words.as_slice() {
            ["."] => nodes.push(Node::Dot),
            [path] if path.starts_with('.') => nodes.push(Node::Field(field_path(path)?)),
            ["json", "."] => nodes.push(Node::Json(vec![])),
            ["json", path] if path.starts_with('.') => nodes.push(Node::Json(field_path(path)?)),
            ["range", path] if path.starts_with('.') => {
                stack.push((field_path(path)?, std::mem::take(&mut nodes)));
            }
            ["end"] => {
                let (path, outer) = stack
                    .pop()
                    .ok_or_else(|| format!("{{{{end}}}} without {{{{range}}}} in {format:?}"))?;
                let body = std::mem::replace(&mut nodes, outer);
                nodes.push(Node::Range(path, body));
            }
            _ => {
                return Err(format!(
                    "the format action {{{{{action}}}}} is not supported: {SUPPORTED}"
                ));
            }
        }
    }
    if !stack.is_empty() {
        return Err(format!("{{{{range}}}} without {{{{end}}}} in {format:?}"));
    }
    Ok(nodes)
}

fn field_path(path: &str) -> Result<Vec<String>, String> {
    let parts: Vec<String> = path
        .trim_start_matches('.')
        .split('.')
        .map(str::to_string)
        .collect();
    if parts.iter().any(String::is_empty) {
        return Err(format!("invalid field {path:?}: {SUPPORTED}"));
    }
    Ok(parts)
}

fn lookup<'a>(root: &'a Value, path: &[String]) -> Result<Option<&'a Value>, String> {
    let mut cur = root;
    for (i, name) in path.iter().enumerate() {
        match cur {
            Value::Object(m) if i == 0 => match m.get(name) {
                Some(v) => cur = v,
                None => {
                    return Err(format!(
                        "can't evaluate field {name}: the fields are {}",
                        m.keys().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            },
            // A map's key (Labels.KEY): absent is "<no value>", as Go prints it.
            Value::Object(m) => match m.get(name) {
                Some(v) => cur = v,
                None => return Ok(None),
            },
            Value::Null => return Ok(None),
            _ => {
                return Err(format!(
                    "can't evaluate field {name} in {}: only maps have keys",
                    path.get(..i).map(|p| p.join(".")).unwrap_or_default()
                ));
            }
        }
    }
    Ok(Some(cur))
}

fn eval(nodes: &[Node], root: &Value, dot: &Value, out: &mut String) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            // Inside a range over LayersData, `.` is a Go struct, which Go prints as
            // `{v1 v2 …}`: refused rather than printed another way.
            Node::Dot if dot.is_object() && !std::ptr::eq(dot, root) => {
                return Err(format!(
                    "{{{{.}}}} is a layer record here; print it with {{{{json .}}}}: {SUPPORTED}"
                ));
            }
            Node::Dot => out.push_str(&go_print(dot, true)),
            Node::Field(path) if path.first().is_some_and(|p| p == "LayersData") => {
                return Err(format!(
                    ".LayersData holds records Go prints as structs; use {{{{json .LayersData}}}}: {SUPPORTED}"
                ));
            }
            Node::Field(path) => match lookup(root, path)? {
                Some(v) => out.push_str(&go_print(
                    v,
                    path.len() == 1 && path.first().is_some_and(|p| p == "Created"),
                )),
                None => out.push_str("<no value>"),
            },
            Node::Json(path) => {
                let v = if path.is_empty() {
                    Some(dot)
                } else {
                    lookup(root, path)?
                };
                out.push_str(&serde_json::to_string(v.unwrap_or(&Value::Null)).unwrap_or_default());
            }
            Node::Range(path, body) => match lookup(root, path)? {
                Some(Value::Array(items)) => {
                    for item in items {
                        eval(body, root, item, out)?;
                    }
                }
                Some(Value::Null) | None => {}
                Some(_) => return Err(format!("range over .{}: not a list", path.join("."))),
            },
        }
    }
    Ok(())
}

/// A value as Go's fmt prints it in a template: strings bare, lists `[a b]`, maps
/// `map[k:v]` (keys sorted), nil as `<nil>`, and a time (`Created`) as Go's `Time.String`.
fn go_print(v: &Value, is_time: bool) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) if is_time => go_time(s).unwrap_or_else(|| s.clone()),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| go_print(i, false))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            format!(
                "map[{}]",
                keys.iter()
                    .map(|k| format!(
                        "{k}:{}",
                        m.get(*k).map(|v| go_print(v, false)).unwrap_or_default()
                    ))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    }
}

/// RFC 3339 as Go's `time.Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST` (UTC as
/// `+0000 UTC`).
fn go_time(s: &str) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    let frac = t.format("%.9f").to_string();
    let frac = frac.trim_end_matches('0').trim_end_matches('.');
    let offset = t.offset().local_minus_utc();
    let zone = if offset == 0 {
        "+0000 UTC".to_string()
    } else {
        t.format("%z %z").to_string()
    };
    Some(format!("{}{frac} {zone}", t.format("%Y-%m-%d %H:%M:%S")))
}

/// Whether `format` asks for the whole output as JSON (`json`, `{{json .}}`), which skopeo
/// prints indented, as without a format.
pub fn is_json(format: &str) -> bool {
    let f = format.trim();
    f == "json" || {
        let inner = f
            .strip_prefix("{{")
            .and_then(|r| r.strip_suffix("}}"))
            .map(str::trim);
        inner.is_some_and(|i| i.split_whitespace().collect::<Vec<_>>() == ["json", "."])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prints_fields_as_go_templates_do() {
        let data = json!({
            "Name": "r/a", "Digest": "sha256:00", "RepoTags": ["v1", "v2"],
            "Created": "2026-11-01T00:00:00Z", "Labels": {"b": "2", "a": "x y"},
            "Env": null, "Os": "linux",
        });
        let r = |f: &str| render(f, &data).unwrap();
        assert_eq!(r("{{.Name}} {{ .Digest }}"), "r/a sha256:00\n");
        assert_eq!(r("{{.Created}}"), "2026-11-01 00:00:00 +0000 UTC\n");
        assert_eq!(r("{{.Labels}}|{{.RepoTags}}"), "map[a:x y b:2]|[v1 v2]\n");
        assert_eq!(r("{{.Labels.a}}|{{.Labels.zz}}"), "x y|<no value>\n");
        assert_eq!(
            r("{{json .RepoTags}}\\t{{.Os}}"),
            "[\"v1\",\"v2\"]\tlinux\n"
        );
        assert_eq!(r("{{range .RepoTags}}{{.}},{{end}}"), "v1,v2,\n");
        assert_eq!(r("{{.Env}}"), "<nil>\n");
        assert!(render("{{.Nope}}", &data).unwrap_err().contains("Nope"));
        assert!(
            render("{{if .Name}}x{{end}}", &data)
                .unwrap_err()
                .contains("not supported")
        );
        assert!(render("{{lower .Name}}", &data).is_err());
        assert!(render("{{range .Os}}x{{end}}", &data).is_err());
        let layers = json!({"LayersData": [{"Digest": "sha256:1"}]});
        assert!(render("{{.LayersData}}", &layers).is_err());
        assert!(render("{{range .LayersData}}{{.}}{{end}}", &layers).is_err());
        assert_eq!(
            render("{{range .LayersData}}{{json .}}{{end}}", &layers).unwrap(),
            "{\"Digest\":\"sha256:1\"}\n"
        );
        assert_eq!(
            render("{{json .LayersData}}", &layers).unwrap(),
            "[{\"Digest\":\"sha256:1\"}]\n"
        );
        assert!(is_json("{{ json . }}") && is_json("json") && !is_json("{{json .Labels}}"));
        assert_eq!(
            go_time("2024-01-02T03:04:05.120+02:00").unwrap(),
            "2024-01-02 03:04:05.12 +0200 +0200"
        );
    }
}
