//! registries.conf (containers-registries.conf(5), version 2): which registries are blocked or
//! insecure, their mirrors, and how short names resolve. Read as containers/image's
//! `sysregistriesv2` reads it: one main file, then every `*.conf` drop-in of the
//! registries.conf.d directories in order (later files replace a `[[registry]]` of the same
//! prefix, `unqualified-search-registries`, `short-name-mode`, and single aliases).
//!
//! Pure configuration: parsing with errors that name the file and line, the longest-prefix
//! lookup ([`RegistriesConf::find_registry`]), the endpoints a pull tries
//! ([`RegistriesConf::pull_sources`]) and short-name resolution
//! ([`RegistriesConf::resolve_short_name`]). ferry never prompts: where containers/image would
//! ask on a terminal (`enforcing` with several candidates), ferry refuses and says what to do.
//!
//! Keys ferry does not use (`credential-helpers`, `additional-layer-store-auth-helper`) are
//! accepted and ignored, as unknown keys are by containers/image. The version 1 format
//! (`[registries.search]` …) is refused with a message saying so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::reference::DockerReference;

/// The system registries.conf.
pub const SYSTEM_REGISTRIES_CONF: &str = "/etc/containers/registries.conf";
/// The system drop-in directory.
pub const SYSTEM_REGISTRIES_CONF_D: &str = "/etc/containers/registries.conf.d";

/// Which files make the configuration, in the order they are read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RegistriesConfPaths {
    /// The main file.
    pub file: Option<PathBuf>,
    /// Whether a missing main file is an error (it was named explicitly) or an empty config.
    pub file_required: bool,
    /// Drop-in directories; their `*.conf` files are read in name order, directory by directory.
    pub dropin_dirs: Vec<PathBuf>,
}

impl RegistriesConfPaths {
    /// Only `file` (required to exist), with no drop-ins.
    pub fn file(file: impl Into<PathBuf>) -> RegistriesConfPaths {
        RegistriesConfPaths {
            file: Some(file.into()),
            file_required: true,
            dropin_dirs: vec![],
        }
    }

    /// The files containers/image reads for a home directory and an explicit file (from
    /// `$CONTAINERS_REGISTRIES_CONF` or `--registries-conf`): the explicit file with both
    /// drop-in directories; else `~/.config/containers/registries.conf` if it exists, with only
    /// the user's drop-ins; else the system file with the system's, then the user's drop-ins.
    /// Pure apart from checking whether the user's file exists.
    pub fn for_home(explicit: Option<PathBuf>, home: Option<&Path>) -> RegistriesConfPaths {
        let user_file = home.map(|h| h.join(".config/containers/registries.conf"));
        let user_dir = home.map(|h| h.join(".config/containers/registries.conf.d"));
        let both = || {
            let mut d = vec![PathBuf::from(SYSTEM_REGISTRIES_CONF_D)];
            d.extend(user_dir.clone());
            d
        };
        if let Some(f) = explicit {
            return RegistriesConfPaths {
                file: Some(f),
                file_required: true,
                dropin_dirs: both(),
            };
        }
        if let Some(u) = user_file.filter(|u| u.exists()) {
            return RegistriesConfPaths {
                file: Some(u),
                file_required: false,
                dropin_dirs: user_dir.into_iter().collect(),
            };
        }
        RegistriesConfPaths {
            file: Some(PathBuf::from(SYSTEM_REGISTRIES_CONF)),
            file_required: false,
            dropin_dirs: both(),
        }
    }

    /// The files and directories, for messages: `FILE, DIR, DIR`.
    pub fn describe(&self) -> String {
        self.file
            .iter()
            .chain(&self.dropin_dirs)
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why registries.conf cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistriesConfError {
    /// A file or directory could not be read.
    #[error("reading registries configuration {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A file is larger than ferry reads.
    #[error(transparent)]
    TooLarge(crate::limits::TooLarge),
    /// A file is not valid TOML or has a value of the wrong type.
    #[error("parsing registries configuration {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the line and column.
        message: String,
    },
    /// A value is not allowed (containers/image's checks), at a line of a file.
    #[error("{path}:{line}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line (from 1; 0 when the file gave no position).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A short name did not resolve.
    #[error("{0}")]
    ShortName(String),
}

/// How pulls of short names are resolved (`short-name-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShortNameMode {
    /// An ambiguous short name (several search registries, no alias) is refused. Where
    /// containers/image would prompt on a terminal, ferry refuses too: it never prompts.
    Enforcing,
    /// An ambiguous short name tries every search registry in order (containers/image's
    /// default, and what it does without a terminal).
    #[default]
    Permissive,
    /// No ambiguity check: every search registry in order.
    Disabled,
}

/// Which pulls a mirror serves (`pull-from-mirror`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullFromMirror {
    /// Pulls by tag and by digest.
    #[default]
    All,
    /// Only pulls by digest.
    DigestOnly,
    /// Only pulls by tag.
    TagOnly,
}

/// One place a registry's images can be pulled from: the registry itself or a mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port][/namespace]`; empty for a wildcard-prefix entry without a location.
    pub location: String,
    /// TLS not verified and plain http allowed.
    pub insecure: bool,
    /// For a mirror: which pulls it serves.
    pub pull_from_mirror: PullFromMirror,
}

/// One `[[registry]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// What it matches: `host[:port][/namespace…]` or `*.domain`.
    pub prefix: String,
    /// Where it is.
    pub endpoint: Endpoint,
    /// Its mirrors, tried in order before it.
    pub mirrors: Vec<Endpoint>,
    /// Pulls from it (and pushes to it) are refused.
    pub blocked: bool,
    /// Mirrors serve only pulls by digest (the older form of `pull-from-mirror`).
    pub mirror_by_digest_only: bool,
    /// The file that defined it, and the line of its table.
    pub origin: (PathBuf, usize),
}

/// One endpoint a pull tries, and the reference there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSource {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The image's reference at that endpoint.
    pub reference: DockerReference,
    /// Whether this is a mirror (not the registry itself).
    pub mirror: bool,
}

/// Where the candidates of a short name came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShortNameRationale {
    /// The name was not short: the one candidate is the name itself.
    NotShort,
    /// An `[aliases]` entry, in this file.
    Alias(PathBuf),
    /// `unqualified-search-registries`, from this file.
    SearchRegistries(PathBuf),
}

/// The fully qualified references a name may be pulled from, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortNameResolution {
    /// The candidates, tried in order; the first that has the image wins.
    pub candidates: Vec<DockerReference>,
    /// Why these.
    pub rationale: ShortNameRationale,
}

/// The merged configuration.
#[derive(Debug, Clone, Default)]
pub struct RegistriesConf {
    registries: Vec<Registry>,
    search: Vec<String>,
    search_origin: Option<PathBuf>,
    mode: ShortNameMode,
    aliases: BTreeMap<String, (Option<DockerReference>, PathBuf)>,
    paths: RegistriesConfPaths,
}

#[derive(Deserialize, Default)]
struct MirrorToml {
    location: Option<Spanned<String>>,
    insecure: Option<bool>,
    #[serde(rename = "pull-from-mirror")]
    pull_from_mirror: Option<Spanned<String>>,
}

#[derive(Deserialize)]
struct RegistryToml {
    location: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    insecure: Option<bool>,
    blocked: Option<bool>,
    #[serde(rename = "mirror-by-digest-only")]
    mirror_by_digest_only: Option<bool>,
    #[serde(rename = "pull-from-mirror")]
    pull_from_mirror: Option<Spanned<String>>,
    mirror: Option<Vec<MirrorToml>>,
}

#[derive(Deserialize, Default)]
struct FileToml {
    registry: Option<Vec<Spanned<RegistryToml>>>,
    #[serde(rename = "unqualified-search-registries")]
    search: Option<Vec<Spanned<String>>>,
    #[serde(rename = "short-name-mode")]
    short_name_mode: Option<Spanned<String>>,
    aliases: Option<BTreeMap<String, Spanned<String>>>,
    registries: Option<toml::Value>,
}

/// One file, parsed and checked.
#[derive(Debug, Default)]
struct FileConf {
    registries: Vec<Registry>,
    search: Option<Vec<String>>,
    mode: Option<ShortNameMode>,
    aliases: BTreeMap<String, Option<DockerReference>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map(|t| t.matches('\n').count() + 1)
        .unwrap_or(0)
}

/// containers/image's `parseLocation`: trailing slashes dropped; a URL scheme refused.
fn parse_location(s: &str) -> Result<String, String> {
    let trimmed = s.trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return Err(format!(
            "invalid location '{s}': URI schemes are not supported (write host[:port][/namespace])"
        ));
    }
    Ok(trimmed.to_string())
}

/// `host[:port]` as docker/distribution's domain grammar: dot-separated labels of letters,
/// digits and inner dashes (or a bracketed IPv6 address), and an optional port.
fn is_domain(s: &str) -> bool {
    let port_ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let (host, port) = match s.strip_prefix('[') {
        Some(rest) => {
            let Some((inner, after)) = rest.split_once(']') else {
                return false;
            };
            if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                return false;
            }
            return after.is_empty() || after.strip_prefix(':').is_some_and(port_ok);
        }
        None => match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        },
    };
    if port.is_some_and(|p| !port_ok(p)) {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The domain of an unnormalised name, as docker/distribution's `reference.Domain` of
/// `reference.Parse`: the first component when a slash follows it.
fn first_component(name: &str) -> Option<&str> {
    name.split_once('/').map(|(d, _)| d)
}

fn has_registry(name: &str) -> bool {
    first_component(name).is_some_and(|d| d.contains(['.', ':']) || d == "localhost")
}

/// A name split from its tag and digest: `(repository, tag, digest)`.
fn split_name(name: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match name.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (name, None),
    };
    // A ':' after the last '/' starts the tag (before it, it is a port).
    let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match rest
        .get(slash..)
        .and_then(|tail| tail.find(':'))
        .map(|i| slash + i)
    {
        Some(i) => (rest.get(..i).unwrap_or(rest), rest.get(i + 1..), digest),
        None => (rest, None, digest),
    }
}

impl FileConf {
    fn parse(text: &str, path: &Path, dropin: bool) -> Result<FileConf, RegistriesConfError> {
        let parsed: FileToml = toml::from_str(text).map_err(|e| RegistriesConfError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let invalid = |offset: usize, message: String| RegistriesConfError::Invalid {
            path: path.to_path_buf(),
            line: line_of(text, offset),
            message,
        };
        if parsed.registries.is_some() {
            return Err(invalid(
                0,
                if dropin {
                    "registry must be in v2 format but is in v1 ([registries.search] and the like); drop-in files must use the v2 format".into()
                } else {
                    "this is the version 1 format ([registries.search], [registries.insecure], [registries.block]), which ferry does not read: write it as version 2 ([[registry]] tables and unqualified-search-registries), see containers-registries.conf(5)".into()
                },
            ));
        }
        let mut out = FileConf::default();
        let mut by_location: BTreeMap<String, (bool, bool)> = BTreeMap::new();
        for spanned in parsed.registry.unwrap_or_default() {
            let at = spanned.span().start;
            let r = spanned.into_inner();
            let location = match &r.location {
                Some(l) => parse_location(l.get_ref()).map_err(|m| invalid(l.span().start, m))?,
                None => String::new(),
            };
            let prefix = match &r.prefix {
                Some(p) if !p.get_ref().is_empty() => {
                    let prefix =
                        parse_location(p.get_ref()).map_err(|m| invalid(p.span().start, m))?;
                    if !prefix.starts_with("*.") && location.is_empty() {
                        return Err(invalid(
                            p.span().start,
                            "invalid condition: location is unset and prefix is not in the format: *.example.com".into(),
                        ));
                    }
                    if prefix.starts_with("*.") && prefix.contains(['/', '@', ':']) {
                        return Err(invalid(
                            p.span().start,
                            format!(
                                "Wildcarded prefix should be in the format: *.example.com. Current prefix {prefix:?} is incorrectly formatted"
                            ),
                        ));
                    }
                    prefix
                }
                _ if location.is_empty() => {
                    return Err(invalid(
                        at,
                        "invalid condition: both location and prefix are unset".into(),
                    ));
                }
                _ => location.clone(),
            };
            if let Some(p) = &r.pull_from_mirror {
                return Err(invalid(
                    p.span().start,
                    format!(
                        "pull-from-mirror must not be set for a non-mirror registry {prefix:?}"
                    ),
                ));
            }
            let digest_only = r.mirror_by_digest_only.unwrap_or(false);
            let mut mirrors = Vec::new();
            for m in r.mirror.unwrap_or_default() {
                let Some(loc) = &m.location else {
                    return Err(invalid(
                        at,
                        format!("invalid condition: a mirror of {prefix:?} has no location"),
                    ));
                };
                let mloc =
                    parse_location(loc.get_ref()).map_err(|e| invalid(loc.span().start, e))?;
                if mloc.is_empty() {
                    return Err(invalid(
                        loc.span().start,
                        "invalid condition: mirror location is unset".into(),
                    ));
                }
                let pull = match &m.pull_from_mirror {
                    None => PullFromMirror::All,
                    Some(p) => {
                        if digest_only {
                            return Err(invalid(
                                p.span().start,
                                format!(
                                    "cannot set mirror usage mirror-by-digest-only for the registry ({prefix:?}) and pull-from-mirror for per-mirror ({mloc:?}) at the same time"
                                ),
                            ));
                        }
                        match p.get_ref().as_str() {
                            "" | "all" => PullFromMirror::All,
                            "digest-only" => PullFromMirror::DigestOnly,
                            "tag-only" => PullFromMirror::TagOnly,
                            other => {
                                return Err(invalid(
                                    p.span().start,
                                    format!(
                                        "unsupported pull-from-mirror value {other:?} for mirror {mloc:?} (use all, digest-only or tag-only)"
                                    ),
                                ));
                            }
                        }
                    }
                };
                mirrors.push(Endpoint {
                    location: mloc,
                    insecure: m.insecure.unwrap_or(false),
                    pull_from_mirror: pull,
                });
            }
            let insecure = r.insecure.unwrap_or(false);
            let blocked = r.blocked.unwrap_or(false);
            let key = if location.is_empty() {
                prefix.clone()
            } else {
                location.clone()
            };
            if let Some((i, b)) = by_location.get(&key) {
                if *i != insecure {
                    return Err(invalid(
                        at,
                        format!(
                            "registry '{key}' is defined multiple times with conflicting 'insecure' setting"
                        ),
                    ));
                }
                if *b != blocked {
                    return Err(invalid(
                        at,
                        format!(
                            "registry '{key}' is defined multiple times with conflicting 'blocked' setting"
                        ),
                    ));
                }
            }
            by_location.insert(key, (insecure, blocked));
            // The first entry of a prefix wins within a file, as containers/image.
            if out.registries.iter().any(|e| e.prefix == prefix) {
                continue;
            }
            out.registries.push(Registry {
                prefix,
                endpoint: Endpoint {
                    location,
                    insecure,
                    pull_from_mirror: PullFromMirror::All,
                },
                mirrors,
                blocked,
                mirror_by_digest_only: digest_only,
                origin: (path.to_path_buf(), line_of(text, at)),
            });
        }
        out.registries.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        if let Some(search) = parsed.search {
            let mut list = Vec::new();
            for s in search {
                let r = parse_location(s.get_ref()).map_err(|m| invalid(s.span().start, m))?;
                if !is_domain(&r) {
                    return Err(invalid(
                        s.span().start,
                        format!(
                            "Invalid unqualified-search-registries entry {r:?}: it must be a host[:port], without a namespace"
                        ),
                    ));
                }
                list.push(r);
            }
            out.search = Some(list);
        }
        if let Some(m) = parsed.short_name_mode {
            out.mode = Some(match m.get_ref().as_str() {
                "enforcing" => ShortNameMode::Enforcing,
                "permissive" => ShortNameMode::Permissive,
                "disabled" => ShortNameMode::Disabled,
                other => {
                    return Err(invalid(
                        m.span().start,
                        format!(
                            "invalid short-name mode: {other:?} (use enforcing, permissive or disabled)"
                        ),
                    ));
                }
            });
        }
        for (name, value) in parsed.aliases.unwrap_or_default() {
            let at = value.span().start;
            let (repo, tag, digest) = split_name(&name);
            if has_registry(&name) || tag.is_some() || digest.is_some() || repo.is_empty() {
                return Err(invalid(
                    at,
                    format!(
                        "invalid short name {name:?}: an alias name must be a repository without registry, tag or digest"
                    ),
                ));
            }
            let v = value.get_ref();
            if v.is_empty() {
                // An empty value resets an alias of an earlier file.
                out.aliases.insert(name, None);
                continue;
            }
            let (_, vtag, vdigest) = split_name(v);
            if !has_registry(v) || vtag.is_some() || vdigest.is_some() {
                return Err(invalid(
                    at,
                    format!(
                        "invalid alias {v:?} for {name:?}: it must be registry/repository, without tag or digest"
                    ),
                ));
            }
            let r = DockerReference::parse(v)
                .map_err(|e| invalid(at, format!("parsing alias {v:?}: {e}")))?;
            out.aliases.insert(name, Some(r));
        }
        Ok(out)
    }
}

/// containers/image's `refMatchingPrefix`: the length of `prefix` when `reference` (a name
/// starting with its host) is under it; wildcards match subdomains.
fn matching_prefix(reference: &str, prefix: &str) -> Option<usize> {
    if let Some(domain) = prefix.strip_prefix('*') {
        // `*.example.com`: `domain` is `.example.com`, matched inside the host part only.
        let index = reference.find(domain)?;
        if reference.get(..index)?.contains('/') {
            return None;
        }
        let end = index + domain.len();
        return match reference.as_bytes().get(end) {
            None => Some(end),
            Some(b':' | b'/' | b'@') => Some(end),
            Some(_) => None,
        };
    }
    if !reference.starts_with(prefix) {
        return None;
    }
    match reference.as_bytes().get(prefix.len()) {
        None | Some(b':' | b'/' | b'@') => Some(prefix.len()),
        Some(_) => None,
    }
}

impl RegistriesConf {
    /// Parses one file's text (`path` names it in errors) as the whole configuration.
    pub fn parse(text: &str, path: &Path) -> Result<RegistriesConf, RegistriesConfError> {
        let mut conf = RegistriesConf {
            paths: RegistriesConfPaths::file(path),
            ..RegistriesConf::default()
        };
        conf.merge(FileConf::parse(text, path, false)?, path);
        Ok(conf)
    }

    /// Reads the main file and the drop-ins of `paths`. A missing main file is an empty
    /// configuration unless it is required; missing drop-in directories are skipped.
    pub fn load(paths: &RegistriesConfPaths) -> Result<RegistriesConf, RegistriesConfError> {
        let mut conf = RegistriesConf {
            paths: paths.clone(),
            ..RegistriesConf::default()
        };
        if let Some(f) = &paths.file {
            match read_text(f)? {
                Some(text) => conf.merge(FileConf::parse(&text, f, false)?, f),
                None if paths.file_required => {
                    return Err(RegistriesConfError::Read {
                        path: f.clone(),
                        source: std::io::ErrorKind::NotFound.into(),
                    });
                }
                None => {}
            }
        }
        for dir in &paths.dropin_dirs {
            let entries = match std::fs::read_dir(dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(RegistriesConfError::Read {
                        path: dir.clone(),
                        source,
                    });
                }
            };
            let mut files = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|source| RegistriesConfError::Read {
                    path: dir.clone(),
                    source,
                })?;
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "conf") && !path.is_dir() {
                    files.push(path);
                }
            }
            files.sort();
            for f in files {
                if let Some(text) = read_text(&f)? {
                    conf.merge(FileConf::parse(&text, &f, true)?, &f);
                }
            }
        }
        Ok(conf)
    }

    /// containers/image's `updateWithConfigurationFrom`.
    fn merge(&mut self, file: FileConf, path: &Path) {
        let mut by_prefix: BTreeMap<String, Registry> = std::mem::take(&mut self.registries)
            .into_iter()
            .map(|r| (r.prefix.clone(), r))
            .collect();
        for r in file.registries {
            by_prefix.insert(r.prefix.clone(), r);
        }
        self.registries = by_prefix.into_values().collect();
        if let Some(s) = file.search {
            self.search = s;
            self.search_origin = Some(path.to_path_buf());
        }
        if let Some(m) = file.mode {
            self.mode = m;
        }
        for (name, value) in file.aliases {
            self.aliases.insert(name, (value, path.to_path_buf()));
        }
    }

    /// The files this configuration was read from, for messages.
    pub fn sources(&self) -> String {
        self.paths.describe()
    }

    /// Every `[[registry]]`, sorted by prefix.
    pub fn registries(&self) -> &[Registry] {
        &self.registries
    }

    /// The short-name mode.
    pub fn short_name_mode(&self) -> ShortNameMode {
        self.mode
    }

    /// `unqualified-search-registries`.
    pub fn search_registries(&self) -> &[String] {
        &self.search
    }

    /// The `[[registry]]` with the longest prefix matching `reference` (`host[:port]/path…`,
    /// with or without tag or digest), as containers/image's `FindRegistry`.
    pub fn find_registry(&self, reference: &str) -> Option<&Registry> {
        self.registries
            .iter()
            .filter(|r| matching_prefix(reference, &r.prefix).is_some())
            .max_by_key(|r| r.prefix.len())
    }

    /// The endpoints a pull of `reference` tries, in order: the mirrors that serve this kind
    /// of pull (by tag or by digest), then the registry itself. With no matching entry, just
    /// the reference's own registry (verified TLS).
    pub fn pull_sources(
        &self,
        reference: &DockerReference,
    ) -> Result<Vec<PullSource>, RegistriesConfError> {
        let text = reference.to_string();
        let Some(reg) = self.find_registry(&text) else {
            return Ok(vec![PullSource {
                endpoint: Endpoint {
                    location: reference.domain().to_string(),
                    insecure: false,
                    pull_from_mirror: PullFromMirror::All,
                },
                reference: reference.clone(),
                mirror: false,
            }]);
        };
        let digested = reference.digest().is_some();
        let mut endpoints: Vec<(&Endpoint, bool)> = Vec::new();
        for m in &reg.mirrors {
            let serves = if reg.mirror_by_digest_only {
                digested
            } else {
                match m.pull_from_mirror {
                    PullFromMirror::All => true,
                    PullFromMirror::DigestOnly => digested,
                    PullFromMirror::TagOnly => !digested,
                }
            };
            if serves {
                endpoints.push((m, true));
            }
        }
        endpoints.push((&reg.endpoint, false));
        let mut out = Vec::new();
        for (ep, mirror) in endpoints {
            let rewritten = if ep.location.is_empty() {
                reference.clone()
            } else {
                let len = matching_prefix(&text, &reg.prefix).unwrap_or(0);
                let rest = text.get(len..).unwrap_or_default();
                let new = format!("{}{rest}", ep.location);
                DockerReference::parse(&new).map_err(|e| RegistriesConfError::Invalid {
                    path: reg.origin.0.clone(),
                    line: reg.origin.1,
                    message: format!(
                        "rewriting {text} with prefix {:?} to location {:?} gives {new:?}, which is not a valid reference: {e}",
                        reg.prefix, ep.location
                    ),
                })?
            };
            out.push(PullSource {
                endpoint: ep.clone(),
                reference: rewritten,
                mirror,
            });
        }
        Ok(out)
    }

    /// Whether `name` (as a person typed it, without a transport) is a short name: its first
    /// component is not a registry (no `.` or `:`, not `localhost`).
    pub fn is_short_name(name: &str) -> bool {
        !has_registry(name)
    }

    /// The references `name` may be pulled from, as containers/image's `shortnames.Resolve`
    /// (without the prompt): a fully qualified name is itself; a short name is its alias, if
    /// one is configured, else each unqualified-search registry in order, subject to the
    /// short-name mode. A name with neither tag nor digest gets `:latest`.
    pub fn resolve_short_name(
        &self,
        name: &str,
    ) -> Result<ShortNameResolution, RegistriesConfError> {
        let bad =
            |e: crate::reference::ReferenceError| RegistriesConfError::ShortName(e.to_string());
        if has_registry(name) {
            return Ok(ShortNameResolution {
                candidates: vec![
                    DockerReference::parse(name)
                        .map_err(bad)?
                        .with_default_tag(),
                ],
                rationale: ShortNameRationale::NotShort,
            });
        }
        let (repo, tag, digest) = split_name(name);
        let suffix = format!(
            "{}{}",
            tag.map(|t| format!(":{t}")).unwrap_or_default(),
            digest.map(|d| format!("@{d}")).unwrap_or_default()
        );
        if let Some((Some(alias), origin)) = self.aliases.get(repo) {
            let r = DockerReference::parse(&format!("{alias}{suffix}")).map_err(bad)?;
            return Ok(ShortNameResolution {
                candidates: vec![r.with_default_tag()],
                rationale: ShortNameRationale::Alias(origin.clone()),
            });
        }
        let origin = self.search_origin.clone();
        if self.search.is_empty() {
            return Err(RegistriesConfError::ShortName(match &origin {
                Some(o) => format!(
                    "short name {name:?} did not resolve to an alias and no unqualified-search-registries are defined in {}: write a fully qualified name (HOST/REPOSITORY), or add an alias or search registries to registries.conf",
                    o.display()
                ),
                None => format!(
                    "short name {name:?} did not resolve to an alias and no unqualified-search-registries are configured (read: {}): write a fully qualified name (HOST/REPOSITORY), or configure registries.conf",
                    self.sources()
                ),
            }));
        }
        let mut candidates = Vec::new();
        for reg in &self.search {
            candidates.push(
                DockerReference::parse(&format!("{reg}/{name}"))
                    .map_err(bad)?
                    .with_default_tag(),
            );
        }
        if candidates.len() > 1 && self.mode == ShortNameMode::Enforcing {
            return Err(RegistriesConfError::ShortName(format!(
                "short name {name:?} is ambiguous: it could be {} (unqualified-search-registries{}), and short-name-mode is enforcing; ferry never prompts: use a fully qualified name, or add an alias for {repo:?} under [aliases]",
                candidates
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                origin
                    .as_ref()
                    .map(|o| format!(" in {}", o.display()))
                    .unwrap_or_default()
            )));
        }
        Ok(ShortNameResolution {
            candidates,
            rationale: ShortNameRationale::SearchRegistries(origin.unwrap_or_default()),
        })
    }
}

fn read_text(path: &Path) -> Result<Option<String>, RegistriesConfError> {
    let bytes = match crate::limits::read_file(
        path,
        crate::limits::MAX_CONFIG_FILE,
        "a registries configuration file",
    ) {
        Ok(b) => b,
        Err(crate::limits::ReadError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(None);
        }
        Err(crate::limits::ReadError::Io { source, .. }) => {
            return Err(RegistriesConfError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
        Err(crate::limits::ReadError::TooLarge(t)) => return Err(RegistriesConfError::TooLarge(t)),
    };
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|e| RegistriesConfError::Syntax {
            path: path.to_path_buf(),
            message: format!("not UTF-8 text: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> RegistriesConf {
        RegistriesConf::parse(text, Path::new("/etc/containers/registries.conf")).unwrap()
    }

    fn err(text: &str) -> String {
        RegistriesConf::parse(text, Path::new("/r.conf"))
            .unwrap_err()
            .to_string()
    }

    fn r(s: &str) -> DockerReference {
        DockerReference::parse(s).unwrap()
    }

    #[test]
    fn mirrors_come_first_and_rewrite_the_prefix() {
        let c = conf(
            r#"
[[registry]]
prefix = "example.com/foo"
location = "internal.example.com/bar"
insecure = false

[[registry.mirror]]
location = "mirror-1.local/mirrored"
insecure = true

[[registry.mirror]]
location = "mirror-2.local"
pull-from-mirror = "digest-only"
"#,
        );
        let by_tag = c.pull_sources(&r("example.com/foo/app:v1")).unwrap();
        let refs: Vec<String> = by_tag.iter().map(|s| s.reference.to_string()).collect();
        assert_eq!(
            refs,
            [
                "mirror-1.local/mirrored/app:v1",
                "internal.example.com/bar/app:v1"
            ]
        );
        assert!(by_tag[0].mirror && by_tag[0].endpoint.insecure && !by_tag[1].mirror);
        let d = format!("sha256:{}", "a".repeat(64));
        let by_digest = c
            .pull_sources(&r(&format!("example.com/foo/app@{d}")))
            .unwrap();
        assert_eq!(by_digest.len(), 3);
        assert_eq!(
            by_digest[1].reference.to_string(),
            format!("mirror-2.local/app@{d}")
        );
        // Not under the prefix: the reference itself.
        let other = c.pull_sources(&r("example.com/foobar/app:v1")).unwrap();
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].reference.to_string(), "example.com/foobar/app:v1");
    }

    #[test]
    fn tag_only_and_digest_only_mirrors_serve_only_their_kind_of_pull() {
        let d = format!("sha256:{}", "b".repeat(64));
        let pulls = |c: &RegistriesConf| {
            ["a.io/app:v1".to_string(), format!("a.io/app@{d}")].map(|p| {
                c.pull_sources(&r(&p))
                    .unwrap()
                    .iter()
                    .map(|s| s.endpoint.location.clone())
                    .collect::<Vec<_>>()
            })
        };
        let c = conf(
            r#"
[[registry]]
location = "a.io"
[[registry.mirror]]
location = "tags.local"
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "any.local"
"#,
        );
        let [by_tag, by_digest] = pulls(&c);
        assert_eq!(by_tag, ["tags.local", "any.local", "a.io"]);
        assert_eq!(by_digest, ["any.local", "a.io"]);
        // The older registry-wide key: every mirror serves digest pulls only.
        let old = "[[registry]]\nlocation = \"a.io\"\nmirror-by-digest-only = true\n\
                   [[registry.mirror]]\nlocation = \"one.local\"\n\
                   [[registry.mirror]]\nlocation = \"two.local\"\n";
        let [by_tag, by_digest] = pulls(&conf(old));
        assert_eq!(by_tag, ["a.io"]);
        assert_eq!(by_digest, ["one.local", "two.local", "a.io"]);
        // Both keys at once are refused, as containers/image refuses them.
        let both = format!("{old}pull-from-mirror = \"tag-only\"\n");
        assert!(err(&both).contains("at the same time"), "{}", err(&both));
    }

    #[test]
    fn the_longest_prefix_wins_and_wildcards_match_subdomains() {
        let c = conf(
            r#"
[[registry]]
location = "example.com"
blocked = true
[[registry]]
location = "example.com/team"
[[registry]]
prefix = "*.internal.example"
insecure = true
"#,
        );
        assert!(c.find_registry("example.com/x/y:1").unwrap().blocked);
        assert!(!c.find_registry("example.com/team/y:1").unwrap().blocked);
        assert!(c.find_registry("example.com:5000/x").is_some()); // as containers/image, for now
        assert!(c.find_registry("example.community/x").is_none());
        assert!(
            c.find_registry("a.internal.example/x")
                .unwrap()
                .endpoint
                .insecure
        );
        assert!(c.find_registry("internal.example/x").is_none());
        let s = c.pull_sources(&r("b.internal.example/x:1")).unwrap();
        assert_eq!(s[0].reference.to_string(), "b.internal.example/x:1");
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = err(
            "unqualified-search-registries = [\"a.io\"]\n\n[[registry]]\nlocation = \"https://x.io\"\n",
        );
        assert!(e.starts_with("/r.conf:4: invalid location"), "{e}");
        let e = err("[[registry]]\nprefix = \"x.io\"\n");
        assert!(e.contains("location is unset"), "{e}");
        let e = err("[[registry]]\nlocation = \"x.io\"\npull-from-mirror = \"all\"\n");
        assert!(e.contains("/r.conf:3:") && e.contains("non-mirror"), "{e}");
        let e = err(
            "[[registry]]\nlocation = \"x.io\"\n[[registry.mirror]]\nlocation = \"m.io\"\npull-from-mirror = \"sometimes\"\n",
        );
        assert!(e.contains("/r.conf:5:") && e.contains("sometimes"), "{e}");
        let e = err("short-name-mode = \"prompt\"\n");
        assert!(e.contains("invalid short-name mode"), "{e}");
        let e = err(
            "[[registry]]\nlocation = \"x.io\"\ninsecure = true\n[[registry]]\nprefix = \"x.io/a\"\nlocation = \"x.io\"\n",
        );
        assert!(e.contains("conflicting 'insecure'"), "{e}");
        let e = err("[registries.search]\nregistries = [\"a.io\"]\n");
        assert!(e.contains("version 1"), "{e}");
        let e = err("unqualified-search-registries = [\"a.io/ns\"]\n");
        assert!(e.contains("Invalid unqualified-search-registries"), "{e}");
        let e = err("[aliases]\n\"quay.io/x\" = \"quay.io/x\"\n");
        assert!(e.contains("invalid short name"), "{e}");
        let e = err("[aliases]\n\"x\" = \"x:1\"\n");
        assert!(e.contains("invalid alias"), "{e}");
        let e = err("[[registry]\n");
        assert!(
            e.starts_with("parsing registries configuration /r.conf") && e.contains("line 1"),
            "{e}"
        );
        // Keys ferry does not use are accepted.
        conf("credential-helpers = [\"containers-auth.json\"]\nsomething-new = 1\n");
    }

    #[test]
    fn short_names_resolve_by_alias_then_search_registries() {
        let c = conf(
            r#"
unqualified-search-registries = ["registry.fedoraproject.org", "quay.io"]
short-name-mode = "permissive"
[aliases]
"fedora" = "registry.fedoraproject.org/fedora"
"#,
        );
        let res = c.resolve_short_name("fedora:39").unwrap();
        assert_eq!(
            res.candidates,
            vec![r("registry.fedoraproject.org/fedora:39")]
        );
        assert!(matches!(res.rationale, ShortNameRationale::Alias(_)));
        let res = c.resolve_short_name("tools/app").unwrap();
        assert_eq!(
            res.candidates,
            vec![
                r("registry.fedoraproject.org/tools/app:latest"),
                r("quay.io/tools/app:latest")
            ]
        );
        let res = c.resolve_short_name("localhost/app:1").unwrap();
        assert_eq!(res.rationale, ShortNameRationale::NotShort);

        let enforcing = conf(
            "unqualified-search-registries = [\"a.io\", \"b.io\"]\nshort-name-mode = \"enforcing\"\n",
        );
        let e = enforcing.resolve_short_name("app").unwrap_err().to_string();
        assert!(
            e.contains("ambiguous") && e.contains("never prompts"),
            "{e}"
        );
        // disabled: every candidate in order, as permissive (and as containers/image).
        let disabled = conf(
            "unqualified-search-registries = [\"a.io\", \"b.io\"]\nshort-name-mode = \"disabled\"\n",
        );
        assert_eq!(
            disabled.short_name_mode(),
            ShortNameMode::Disabled,
            "the key is read"
        );
        assert_eq!(
            disabled.resolve_short_name("app").unwrap().candidates,
            vec![r("a.io/app:latest"), r("b.io/app:latest")]
        );
        let one =
            conf("unqualified-search-registries = [\"a.io\"]\nshort-name-mode = \"enforcing\"\n");
        assert_eq!(one.resolve_short_name("app").unwrap().candidates.len(), 1);
        let none = conf("");
        assert!(
            none.resolve_short_name("app")
                .unwrap_err()
                .to_string()
                .contains("did not resolve")
        );
        // docker.io names are normalised as pulls normalise them.
        let hub = conf("unqualified-search-registries = [\"docker.io\"]\n");
        assert_eq!(
            hub.resolve_short_name("busybox").unwrap().candidates,
            vec![r("docker.io/library/busybox:latest")]
        );
    }

    #[test]
    fn drop_ins_replace_registries_search_lists_and_aliases() {
        let t = tempfile::tempdir().unwrap();
        let main = t.path().join("registries.conf");
        std::fs::write(
            &main,
            "unqualified-search-registries = [\"a.io\"]\n[aliases]\n\"x\" = \"a.io/x\"\n[[registry]]\nlocation = \"a.io\"\n",
        )
        .unwrap();
        let d = t.path().join("registries.conf.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            d.join("10-block.conf"),
            "[[registry]]\nlocation = \"a.io\"\nblocked = true\n[aliases]\n\"x\" = \"\"\n",
        )
        .unwrap();
        std::fs::write(
            d.join("20-search.conf"),
            "unqualified-search-registries = [\"b.io\"]\n",
        )
        .unwrap();
        std::fs::write(d.join("ignored.txt"), "not toml at all [").unwrap();
        let paths = RegistriesConfPaths {
            file: Some(main),
            file_required: true,
            dropin_dirs: vec![d.clone(), t.path().join("missing")],
        };
        let c = RegistriesConf::load(&paths).unwrap();
        assert!(c.find_registry("a.io/x").unwrap().blocked);
        assert_eq!(c.search_registries(), ["b.io"]);
        assert_eq!(
            c.resolve_short_name("x").unwrap().candidates,
            vec![r("b.io/x:latest")]
        );
        std::fs::write(
            d.join("30-v1.conf"),
            "[registries.search]\nregistries = []\n",
        )
        .unwrap();
        let e = RegistriesConf::load(&paths).unwrap_err().to_string();
        assert!(e.contains("30-v1.conf") && e.contains("v2 format"), "{e}");
        let missing = RegistriesConfPaths::file(t.path().join("nope.conf"));
        assert!(RegistriesConf::load(&missing).is_err());
        let optional = RegistriesConfPaths {
            file: Some(t.path().join("nope.conf")),
            ..RegistriesConfPaths::default()
        };
        assert!(
            RegistriesConf::load(&optional)
                .unwrap()
                .registries()
                .is_empty()
        );
    }

    #[test]
    fn default_paths_follow_containers_image() {
        let t = tempfile::tempdir().unwrap();
        let p = RegistriesConfPaths::for_home(None, Some(t.path()));
        assert_eq!(p.file.as_deref(), Some(Path::new(SYSTEM_REGISTRIES_CONF)));
        assert_eq!(p.dropin_dirs.len(), 2);
        let user = t.path().join(".config/containers");
        std::fs::create_dir_all(&user).unwrap();
        std::fs::write(user.join("registries.conf"), "").unwrap();
        let p = RegistriesConfPaths::for_home(None, Some(t.path()));
        assert_eq!(p.file, Some(user.join("registries.conf")));
        assert_eq!(p.dropin_dirs, vec![user.join("registries.conf.d")]);
        let p = RegistriesConfPaths::for_home(Some("/x.conf".into()), Some(t.path()));
        assert!(p.file_required && p.dropin_dirs.len() == 2);
    }
}
