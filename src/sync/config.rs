//! The YAML of `skopeo sync --src yaml`, read the way skopeo reads it, with errors that name the
//! file and the line:
//!
//! ```yaml
//! registry.example.com:
//!   images:
//!     busybox: []                 # every tag
//!     redis: ["1.0", "2.0", "sha256:0123…"]
//!   images-by-tag-regex:
//!     nginx: ^1\.13\.[12]-alpine-perl$
//!   images-by-semver:
//!     alpine: ">= 3.12.0, < 3.14"
//!   credentials:
//!     username: john
//!     password: this is a secret
//!   tls-verify: true
//!   cert-dir: /home/john/certs
//!   immutable-tags: true          # ferry's: a tag already mirrored is not read again
//! ```
//!
//! Registries and repositories keep the file's order (skopeo's is Go's random map order).
//! Where skopeo logs a bad entry and skips it (a repository name, a tag, a regex, a constraint),
//! ferry refuses the file: a mirror that silently leaves images out looks like it worked.
//! Unknown keys are ignored as skopeo ignores them, with a warning naming the line.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

use super::semver::Constraints;
use crate::digest::Digest;
use crate::reference::DockerReference;

/// The largest sync config ferry reads.
pub const MAX_CONFIG_SIZE: u64 = 16 * 1024 * 1024;

/// Why a sync config cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is larger than the cap on a sync configuration (16 MiB).
    #[error("{}: {size} bytes is more than the {MAX_CONFIG_SIZE}-byte limit for a sync configuration", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The file is not YAML of the expected shape.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The line (from 1), when known.
        line: Option<usize>,
        /// What the YAML parser said.
        message: String,
    },
    /// An entry is well-formed YAML but cannot be used.
    #[error("{}{}: {what}: {why}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line (from 1), when found.
        line: Option<usize>,
        /// The entry (`registry.example.com images-by-tag-regex nginx`).
        what: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Tags (or digests) to copy from one repository.
#[derive(Debug, Clone)]
pub enum TagSelection {
    /// Exactly these tags and digests, in order.
    List(Vec<ImageRef>),
    /// Every tag the repository lists.
    All,
    /// Every listed tag a regular expression matches (anywhere in the tag, as Go's
    /// `MatchString`).
    Regex(TagRegex),
    /// Every listed tag that reads as a version within the range.
    Semver(Constraints),
}

/// A tag or a digest from a `images` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A tag.
    Tag(String),
    /// A digest.
    Digest(Digest),
}

/// A tag regular expression with Go's RE2 semantics for ASCII tags (`\w`, `\d` are ASCII).
#[derive(Debug, Clone)]
pub struct TagRegex {
    text: String,
    regex: regex::bytes::Regex,
}

impl TagRegex {
    /// Compiles `text`.
    pub fn new(text: &str) -> Result<TagRegex, regex::Error> {
        // Tags are ASCII, and Go's classes are too; the ASCII form also compiles far faster.
        let regex = regex::bytes::RegexBuilder::new(text)
            .unicode(false)
            .build()
            .or_else(|_| regex::bytes::Regex::new(text))?;
        Ok(TagRegex {
            text: text.to_string(),
            regex,
        })
    }

    /// Whether the regex matches somewhere in `tag`.
    pub fn matches(&self, tag: &str) -> bool {
        self.regex.is_match(tag.as_bytes())
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// One repository entry of a registry.
#[derive(Debug, Clone)]
pub struct RepositoryEntry {
    /// The repository (`registry/name`, normalised: `docker.io/library/busybox`).
    pub repository: DockerReference,
    /// Which of its images.
    pub selection: TagSelection,
    /// Where it is in the file (from 1), when found.
    pub line: Option<usize>,
}

/// Credentials for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// One registry of the config.
#[derive(Debug, Clone)]
pub struct RegistryEntry {
    /// The registry as written (`registry.example.com`, `127.0.0.1:5000`).
    pub registry: String,
    /// Its repositories: `images`, then `images-by-tag-regex`, then `images-by-semver`, each
    /// in the file's order (skopeo's order of the three kinds).
    pub repositories: Vec<RepositoryEntry>,
    /// Credentials for it, overriding the command line's.
    pub credentials: Option<Credentials>,
    /// TLS verification for it, when given (overrides the command line's).
    pub tls_verify: Option<bool>,
    /// A directory of certificates for it, when given.
    pub cert_dir: Option<PathBuf>,
    /// ferry's `immutable-tags`, when given: its tags never change once published, so a tag
    /// already at the destination with its signatures is not read at the source (overrides the
    /// command line's `--immutable-tags`).
    pub immutable_tags: Option<bool>,
    /// Where it is in the file (from 1), when found.
    pub line: Option<usize>,
}

/// A whole sync config.
#[derive(Debug, Clone, Default)]
pub struct SyncConfig {
    /// The file it was read from.
    pub origin: PathBuf,
    /// The registries, in the file's order.
    pub registries: Vec<RegistryEntry>,
    /// Things ignored, as skopeo ignores them (unknown keys, registries with no images).
    pub warnings: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawCredentials {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(flatten)]
    unknown: IndexMap<String, serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct RawRegistry {
    #[serde(default)]
    images: Option<IndexMap<String, Option<Vec<Scalar>>>>,
    #[serde(default, rename = "images-by-tag-regex")]
    images_by_tag_regex: Option<IndexMap<String, Scalar>>,
    #[serde(default, rename = "images-by-semver")]
    images_by_semver: Option<IndexMap<String, Scalar>>,
    #[serde(default)]
    credentials: Option<RawCredentials>,
    #[serde(default, rename = "tls-verify")]
    tls_verify: Option<bool>,
    #[serde(default, rename = "cert-dir")]
    cert_dir: Option<String>,
    #[serde(default, rename = "immutable-tags")]
    immutable_tags: Option<bool>,
    #[serde(flatten)]
    unknown: IndexMap<String, serde_yaml_ng::Value>,
}

/// A YAML scalar read as its text, as Go's yaml.v3 reads any scalar into a string field: the
/// tag `3.10` stays `3.10`, not the float 3.1.
#[derive(Debug, Clone)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        // deserialize_str hands plain scalars over as written, numbers included.
        d.deserialize_str(V)
    }
}

/// Finds the line (from 1) of a nested key path: each key is looked for after the previous
/// one's line, indented deeper. Good enough to point at an entry; `None` when not found.
fn line_of(text: &str, keys: &[&str]) -> Option<usize> {
    let mut from = 0;
    let mut indent: Option<usize> = None;
    let lines: Vec<&str> = text.lines().collect();
    let mut found = None;
    for key in keys {
        let mut hit = None;
        for (i, line) in lines.iter().enumerate().skip(from) {
            let trimmed = line.trim_start();
            let this_indent = line.len() - trimmed.len();
            if let Some(outer) = indent
                && this_indent <= outer
                && !trimmed.is_empty()
                && !trimmed.starts_with('#')
            {
                break;
            }
            let rest = [
                format!("{key}:"),
                format!("\"{key}\":"),
                format!("'{key}':"),
            ]
            .into_iter()
            .find(|k| trimmed.starts_with(k.as_str()));
            if rest.is_some() {
                hit = Some((i, this_indent));
                break;
            }
        }
        let (i, ind) = hit?;
        from = i + 1;
        indent = Some(ind);
        found = Some(i + 1);
    }
    found
}

impl SyncConfig {
    /// Reads and checks the config at `path`.
    pub fn from_file(path: &Path) -> Result<SyncConfig, ConfigError> {
        let read = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read)?.len();
        if size > MAX_CONFIG_SIZE {
            return Err(ConfigError::TooLarge {
                path: path.to_path_buf(),
                size,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        SyncConfig::from_yaml(&text, path)
    }

    /// Parses and checks `text`, naming `origin` in errors.
    pub fn from_yaml(text: &str, origin: &Path) -> Result<SyncConfig, ConfigError> {
        let yaml_error = |e: serde_yaml_ng::Error| ConfigError::Yaml {
            path: origin.to_path_buf(),
            line: e.location().map(|l| l.line()),
            message: e.to_string(),
        };
        // Duplicate keys are an error in Go's yaml.v3 and in serde_yaml_ng's own mapping:
        // parse into that first so a registry or repository given twice is refused.
        // (The typed parse reads scalars as written; a Value would have turned 3.10 into 3.1.)
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text).map_err(yaml_error)?;
        let raw: Option<IndexMap<String, Option<RawRegistry>>> =
            serde_yaml_ng::from_str(text).map_err(yaml_error)?;
        let mut config = SyncConfig {
            origin: origin.to_path_buf(),
            ..SyncConfig::default()
        };
        for (registry, raw) in raw.unwrap_or_default() {
            let entry = config.registry(text, &registry, raw.unwrap_or_default())?;
            config.registries.push(entry);
        }
        Ok(config)
    }

    fn invalid(&self, line: Option<usize>, what: String, why: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.origin.clone(),
            line,
            what,
            why,
        }
    }

    fn warn(&mut self, line: Option<usize>, message: String) {
        let at = match line {
            Some(l) => format!("{}:{l}", self.origin.display()),
            None => self.origin.display().to_string(),
        };
        self.warnings.push(format!("{at}: {message}"));
    }

    fn registry(
        &mut self,
        text: &str,
        registry: &str,
        raw: RawRegistry,
    ) -> Result<RegistryEntry, ConfigError> {
        let line = line_of(text, &[registry]);
        for key in raw.unknown.keys() {
            let l = line_of(text, &[registry, key]);
            self.warn(
                l,
                format!("{registry}: unknown key {key:?} is ignored (as skopeo ignores it)"),
            );
        }
        let mut entry = RegistryEntry {
            registry: registry.to_string(),
            repositories: Vec::new(),
            credentials: None,
            tls_verify: raw.tls_verify,
            cert_dir: raw.cert_dir.filter(|d| !d.is_empty()).map(PathBuf::from),
            immutable_tags: raw.immutable_tags,
            line,
        };
        if let Some(c) = raw.credentials {
            for key in c.unknown.keys() {
                let l = line_of(text, &[registry, "credentials", key]);
                self.warn(
                    l,
                    format!(
                        "{registry}: credentials: unknown key {key:?} is ignored (as skopeo ignores it)"
                    ),
                );
            }
            // skopeo uses the credentials when any field is set.
            if !c.username.is_empty() || !c.password.is_empty() {
                entry.credentials = Some(Credentials {
                    username: c.username,
                    password: c.password,
                });
            }
        }
        let repository = |this: &SyncConfig, section: &str, name: &str| {
            let l = line_of(text, &[registry, section, name]);
            let what = format!("{registry} {section} {name}");
            let r = DockerReference::parse(&format!("{registry}/{name}"))
                .map_err(|e| this.invalid(l, what.clone(), e.to_string()))?;
            if r.tag().is_some() || r.digest().is_some() {
                return Err(this.invalid(
                    l,
                    what,
                    "names an image, not a repository: put tags in the list, not in the name"
                        .into(),
                ));
            }
            Ok((r, l))
        };
        for (name, refs) in raw.images.unwrap_or_default() {
            let (r, l) = repository(self, "images", &name)?;
            let refs = refs.unwrap_or_default();
            let selection = if refs.is_empty() {
                TagSelection::All
            } else {
                let mut list = Vec::new();
                for Scalar(s) in refs {
                    let what = format!("{registry} images {name}");
                    let item = if let Ok(d) = Digest::parse(&s) {
                        ImageRef::Digest(d)
                    } else {
                        r.with_tag(&s).map_err(|_| {
                            self.invalid(
                                l,
                                what,
                                format!("{s:?} is neither a tag nor a digest (sha256:…)"),
                            )
                        })?;
                        ImageRef::Tag(s)
                    };
                    list.push(item);
                }
                TagSelection::List(list)
            };
            entry.repositories.push(RepositoryEntry {
                repository: r,
                selection,
                line: l,
            });
        }
        for (name, Scalar(pattern)) in raw.images_by_tag_regex.unwrap_or_default() {
            let (r, l) = repository(self, "images-by-tag-regex", &name)?;
            let regex = TagRegex::new(&pattern).map_err(|e| {
                self.invalid(
                    l,
                    format!("{registry} images-by-tag-regex {name}"),
                    format!("invalid regular expression {pattern:?}: {e}"),
                )
            })?;
            entry.repositories.push(RepositoryEntry {
                repository: r,
                selection: TagSelection::Regex(regex),
                line: l,
            });
        }
        for (name, Scalar(constraint)) in raw.images_by_semver.unwrap_or_default() {
            let (r, l) = repository(self, "images-by-semver", &name)?;
            let c = Constraints::parse(&constraint).map_err(|e| {
                self.invalid(
                    l,
                    format!("{registry} images-by-semver {name}"),
                    e.to_string(),
                )
            })?;
            entry.repositories.push(RepositoryEntry {
                repository: r,
                selection: TagSelection::Semver(c),
                line: l,
            });
        }
        if entry.repositories.is_empty() {
            self.warn(
                line,
                format!("{registry}: no images specified (as skopeo, nothing is synced from it)"),
            );
        }
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SyncConfig, ConfigError> {
        SyncConfig::from_yaml(text, Path::new("/etc/sync.yaml"))
    }

    #[test]
    fn skopeo_example_parses_in_file_order() {
        let c = parse(
            r#"
registry.example.com:
    images:
        busybox: []
        redis:
            - "1.0"
            - 2.0
            - 3.10
            - "sha256:0000000000000000000000000000000000000000000000000000000000000000"
    images-by-tag-regex:
        nginx: ^1\.13\.[12]-alpine-perl$
    images-by-semver:
        alpine: ">= 3.12.0"
    credentials:
        username: john
        password: this is a secret
    tls-verify: true
    cert-dir: /home/john/certs
    immutable-tags: true
quay.io:
    tls-verify: false
    images:
        coreos/etcd:
"#,
        )
        .expect("parse");
        assert_eq!(c.registries.len(), 2);
        let r = &c.registries[0];
        assert_eq!(r.registry, "registry.example.com");
        assert_eq!(r.line, Some(2));
        assert_eq!(r.tls_verify, Some(true));
        assert_eq!(r.cert_dir.as_deref(), Some(Path::new("/home/john/certs")));
        assert_eq!(r.immutable_tags, Some(true));
        assert_eq!(
            r.credentials,
            Some(Credentials {
                username: "john".into(),
                password: "this is a secret".into()
            })
        );
        let names: Vec<String> = r
            .repositories
            .iter()
            .map(|e| e.repository.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "registry.example.com/busybox",
                "registry.example.com/redis",
                "registry.example.com/nginx",
                "registry.example.com/alpine"
            ]
        );
        assert!(matches!(r.repositories[0].selection, TagSelection::All));
        let TagSelection::List(list) = &r.repositories[1].selection else {
            panic!("a list");
        };
        assert_eq!(list[0], ImageRef::Tag("1.0".into()));
        assert_eq!(list[1], ImageRef::Tag("2.0".into()));
        assert_eq!(
            list[2],
            ImageRef::Tag("3.10".into()),
            "a YAML float keeps its text"
        );
        assert!(matches!(list[3], ImageRef::Digest(_)));
        assert_eq!(r.repositories[1].line, Some(5));
        let TagSelection::Regex(re) = &r.repositories[2].selection else {
            panic!("a regex");
        };
        assert!(re.matches("1.13.1-alpine-perl") && !re.matches("1.13.3-alpine-perl"));
        let q = &c.registries[1];
        assert_eq!(q.tls_verify, Some(false));
        assert_eq!(q.immutable_tags, None);
        assert_eq!(
            q.repositories[0].repository.to_string(),
            "quay.io/coreos/etcd"
        );
        assert!(matches!(q.repositories[0].selection, TagSelection::All));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn docker_io_names_are_normalised() {
        let c = parse("docker.io:\n  images:\n    busybox: [latest]\n").expect("parse");
        assert_eq!(
            c.registries[0].repositories[0].repository.to_string(),
            "docker.io/library/busybox"
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse(
            "r.example:\n  images:\n    app: [latest]\n  images-by-tag-regex:\n    web: \"([\"\n",
        )
        .expect_err("bad regex");
        let text = e.to_string();
        assert!(
            text.starts_with(
                "/etc/sync.yaml:5: r.example images-by-tag-regex web: invalid regular expression"
            ),
            "{text}"
        );

        let e = parse("r.example:\n  images-by-semver:\n    app: \">= bar\"\n")
            .expect_err("bad semver");
        assert!(
            e.to_string().starts_with(
                "/etc/sync.yaml:3: r.example images-by-semver app: improper constraint"
            ),
            "{e}"
        );

        let e = parse("r.example:\n  images:\n    app: [\"no/slashes\"]\n").expect_err("bad tag");
        assert!(
            e.to_string()
                .starts_with("/etc/sync.yaml:3: r.example images app:"),
            "{e}"
        );

        let e = parse("r.example:\n  images:\n    App: [v1]\n").expect_err("bad repository");
        assert!(
            e.to_string()
                .starts_with("/etc/sync.yaml:3: r.example images App:"),
            "{e}"
        );

        let e = parse("r.example:\n  images:\n    app:v1: []\n")
            .expect_err("an image, not a repository");
        assert!(
            e.to_string().contains("names an image, not a repository"),
            "{e}"
        );

        let e = parse("r.example:\n  images: [a, b]\n").expect_err("wrong shape");
        assert!(e.to_string().starts_with("/etc/sync.yaml:"), "{e}");

        let e = parse("r.example:\n  tls-verify: maybe\n").expect_err("not a bool");
        assert!(e.to_string().starts_with("/etc/sync.yaml"), "{e}");

        let e = parse("r.example:\n  images:\n    a: []\nr.example:\n  images:\n    b: []\n")
            .expect_err("duplicate registry");
        assert!(e.to_string().contains("duplicate"), "{e}");
    }

    #[test]
    fn unknown_keys_and_empty_registries_are_warnings() {
        let c = parse(
            "r.example:\n  imagess:\n    app: []\n  credentials:\n    user: x\nempty.example:\n",
        )
        .expect("parse");
        assert_eq!(c.warnings.len(), 4, "{:?}", c.warnings);
        assert!(c.warnings[0].starts_with("/etc/sync.yaml:2: r.example: unknown key \"imagess\""));
        assert!(c.warnings[1].contains("credentials: unknown key \"user\""));
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("empty.example: no images"))
        );
        assert!(parse("").expect("empty").registries.is_empty());
        assert!(parse("# nothing\n").expect("comment").registries.is_empty());
    }
}
