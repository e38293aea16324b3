//! registries.d (containers-registries.d(5)): where a registry's signatures live. Files from
//! skopeo, podman and CRI-O installs work unchanged: `default-docker` and `docker` scopes (most
//! specific first, falling through field by field like containers/image), the legacy
//! `sigstore`/`sigstore-staging` names, `use-sigstore-attachments`.
//!
//! Pure configuration: the URLs of signature slots are computed here; reading and writing them
//! is the docker transport's (`transport::docker::lookaside`).

use crate::policy::BundleIdentity;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

use crate::digest::Digest;
use crate::reference::DockerReference;

/// The system registries.d directory, read when the per-user one does not exist.
pub const SYSTEM_REGISTRIES_D: &str = "/etc/containers/registries.d";

/// `~/.config/containers/registries.d` if it exists (whatever it is, as containers/image
/// checks only existence), else [`SYSTEM_REGISTRIES_D`]. Reads `$HOME`: used by
/// [`crate::session::SessionConfig::from_env`].
pub fn default_dir() -> PathBuf {
    match std::env::home_dir().map(|h| h.join(".config/containers/registries.d")) {
        Some(user) if user.exists() => user,
        _ => PathBuf::from(SYSTEM_REGISTRIES_D),
    }
}

/// Why registries.d cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistriesDError {
    /// A YAML file could not be parsed.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line and column when the parser knows them.
        message: String,
    },
    /// The registries.d directory or one of its files could not be read.
    #[error("reading registries.d {path}: {source}")]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A file is larger than ferry reads.
    #[error(transparent)]
    TooLarge(crate::limits::TooLarge),
    /// A value ferry does not know.
    #[error("registries.d: {0}")]
    Invalid(String),
    /// Two files define the same section.
    #[error(
        "Error parsing signature storage configuration: {what} defined both in {a:?} and {b:?}; keep one of them"
    )]
    Duplicate {
        /// `"default-docker"` or `"docker" namespace "X"`.
        what: String,
        /// The first file.
        a: PathBuf,
        /// The second file.
        b: PathBuf,
    },
    /// A URL in the configuration is invalid, or cannot be read from.
    #[error("Invalid signature storage URL {url}: {message}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
}

/// One section: `default-docker`, or one scope under `docker`.
#[derive(Debug, Clone, Default, Deserialize)]
struct Section {
    lookaside: Option<String>,
    #[serde(rename = "lookaside-staging")]
    lookaside_staging: Option<String>,
    sigstore: Option<String>,
    #[serde(rename = "sigstore-staging")]
    sigstore_staging: Option<String>,
    #[serde(rename = "use-sigstore-attachments")]
    use_sigstore_attachments: Option<bool>,
    /// ferry's: read sigstore signatures among the image's OCI 1.1 referrers.
    #[serde(rename = "use-sigstore-referrers")]
    use_sigstore_referrers: Option<bool>,
    /// ferry's: how a sigstore bundle that names no image meets signedIdentity.
    #[serde(rename = "sigstore-bundle-identity")]
    sigstore_bundle_identity: Option<String>,
}

impl Section {
    /// containers/image's `signatureTopLevel`: an empty string counts as unset.
    fn top_level(&self, write: bool) -> Option<&str> {
        let staging = if write {
            non_empty(&self.lookaside_staging).or(non_empty(&self.sigstore_staging))
        } else {
            None
        };
        staging
            .or(non_empty(&self.lookaside))
            .or(non_empty(&self.sigstore))
    }
}

/// One YAML file. Unknown keys are ignored, as yaml.v3 does in containers/image; a scope with
/// an empty value (`example.com:` with its keys commented out) is a defined, empty section.
#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(rename = "default-docker")]
    default_docker: Option<Section>,
    docker: Option<BTreeMap<String, Option<Section>>>,
}

fn parse_file(text: &str, path: &Path) -> Result<File, RegistriesDError> {
    // A file of comments only is an empty document, which yaml.v3 accepts as an empty config.
    let parsed: Option<File> =
        serde_yaml_ng::from_str(text).map_err(|e| RegistriesDError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(parsed.unwrap_or_default())
}

/// The merged registries.d configuration.
#[derive(Debug, Clone, Default)]
pub struct RegistriesConfig {
    origin: Option<PathBuf>,
    default_docker: Option<Section>,
    docker: BTreeMap<String, Section>,
    /// Which file defined each scope, for messages.
    files: BTreeMap<String, PathBuf>,
    default_file: Option<PathBuf>,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

impl RegistriesConfig {
    /// Loads every `*.yaml` file in `dir`. A missing directory is an empty config; any other
    /// failure to read it is an error.
    pub fn load(dir: &Path) -> Result<RegistriesConfig, RegistriesDError> {
        let read_err = |path: &Path, source| RegistriesDError::Read {
            path: path.to_path_buf(),
            source,
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RegistriesConfig::default());
            }
            Err(e) => return Err(read_err(dir, e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| read_err(dir, e))?;
            if entry.file_name().as_encoded_bytes().ends_with(b".yaml") {
                files.push(entry.path());
            }
        }
        // containers/image takes directory order; sorting makes "defined both in A and B" and
        // the first error the same on every run.
        files.sort();
        let mut config = RegistriesConfig {
            origin: Some(dir.to_path_buf()),
            ..RegistriesConfig::default()
        };
        let mut default_from: Option<PathBuf> = None;
        let mut scope_from: BTreeMap<String, PathBuf> = BTreeMap::new();
        for path in files {
            let bytes = match crate::limits::read_file(
                &path,
                crate::limits::MAX_CONFIG_FILE,
                "a registries.d file",
            ) {
                Ok(b) => b,
                // Removed between listing and reading: containers/image ignores it too.
                Err(crate::limits::ReadError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    continue;
                }
                Err(crate::limits::ReadError::Io { source, .. }) => {
                    return Err(read_err(&path, source));
                }
                Err(crate::limits::ReadError::TooLarge(t)) => {
                    return Err(RegistriesDError::TooLarge(t));
                }
            };
            let text = String::from_utf8(bytes).map_err(|e| RegistriesDError::Parse {
                path: path.clone(),
                message: format!("not UTF-8 text: {e}"),
            })?;
            let parsed = parse_file(&text, &path)?;
            if let Some(d) = parsed.default_docker {
                if let Some(a) = &default_from {
                    return Err(RegistriesDError::Duplicate {
                        what: "\"default-docker\"".into(),
                        a: a.clone(),
                        b: path,
                    });
                }
                default_from = Some(path.clone());
                config.default_file = Some(path.clone());
                config.default_docker = Some(d);
            }
            for (scope, section) in parsed.docker.unwrap_or_default() {
                if let Some(a) = scope_from.get(&scope) {
                    return Err(RegistriesDError::Duplicate {
                        what: format!("\"docker\" namespace {scope:?}"),
                        a: a.clone(),
                        b: path,
                    });
                }
                scope_from.insert(scope.clone(), path.clone());
                config.files.insert(scope.clone(), path.clone());
                config.docker.insert(scope, section.unwrap_or_default());
            }
        }
        Ok(config)
    }

    /// Parses one YAML document as if it were the only file (for tests and embedding);
    /// `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &Path) -> Result<RegistriesConfig, RegistriesDError> {
        let parsed = parse_file(text, origin)?;
        Ok(RegistriesConfig {
            origin: Some(origin.to_path_buf()),
            files: BTreeMap::new(),
            default_file: None,
            default_docker: parsed.default_docker,
            docker: parsed
                .docker
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
        })
    }

    /// The sections that apply to `image`, most specific first: its full identity, its
    /// namespaces, `*.domain` wildcards, then `default-docker`; each with where it is
    /// (`None` for `default-docker`), for [`Self::describe`].
    fn located_sections(
        &self,
        image: &DockerReference,
    ) -> impl Iterator<Item = (Option<String>, &Section)> {
        image
            .scopes()
            .into_iter()
            .filter_map(|s| self.docker.get(&s).map(|sec| (Some(s), sec)))
            .chain(self.default_docker.iter().map(|sec| (None, sec)))
    }

    fn sections(&self, image: &DockerReference) -> impl Iterator<Item = &Section> {
        self.located_sections(image).map(|(_, sec)| sec)
    }

    /// A section's place for messages: "…/registries.d/x.yaml, docker scope \"example.com\""
    /// or "…/x.yaml, default-docker".
    fn describe(&self, scope: Option<&str>) -> String {
        let file = match scope {
            Some(s) => self.files.get(s),
            None => self.default_file.as_ref(),
        }
        .or(self.origin.as_ref())
        .map(|p| p.display().to_string())
        .unwrap_or_default();
        match scope {
            Some(s) => format!("{file}, docker scope {s:?}"),
            None => format!("{file}, default-docker"),
        }
    }

    fn top_level(&self, image: &DockerReference, write: bool) -> Option<&str> {
        self.sections(image).find_map(|s| s.top_level(write))
    }

    /// The directory (or file) this configuration was read from.
    pub fn origin(&self) -> Option<&Path> {
        self.origin.as_deref()
    }

    /// Where the lookaside URL for reading `image`'s signatures is configured: the scope and
    /// the file that defined it, for messages ("…/registries.d/x.yaml, scope example.com").
    pub fn read_source(&self, image: &DockerReference) -> Option<String> {
        self.located_sections(image)
            .find(|(_, sec)| sec.top_level(false).is_some())
            .map(|(scope, _)| self.describe(scope.as_deref()))
    }

    /// Where signatures of `image` are read from: the most specific `lookaside` (or legacy
    /// `sigstore`); `None` when nothing is configured (containers/image then reads its built-in
    /// default, [`builtin_default_base`], which the caller supplies). Errors when the
    /// configured URL does not parse, or is not an `http`, `https` or local `file` URL.
    pub fn read_base(&self, image: &DockerReference) -> Result<Option<Url>, RegistriesDError> {
        let Some(configured) = self.top_level(image, false) else {
            return Ok(None);
        };
        let url = parse_url(configured)?;
        match url.scheme() {
            "http" | "https" => Ok(Some(url)),
            "file" => match url.host_str() {
                None | Some("") | Some("localhost") => Ok(Some(url)),
                Some(host) => Err(RegistriesDError::Url {
                    url: configured.to_string(),
                    message: format!(
                        "a file:// URL with the host {host:?}; write file:///ABSOLUTE/PATH (three slashes)"
                    ),
                }),
            },
            other => Err(RegistriesDError::Url {
                url: configured.to_string(),
                message: format!(
                    "Unsupported scheme {other:?} when reading signatures; use http, https or file"
                ),
            }),
        }
    }

    /// Where signatures of `image` are written: the most specific `lookaside-staging` (or
    /// legacy `sigstore-staging`), else `lookaside` (or `sigstore`); `None` when nothing is
    /// configured. Unlike containers/image, ferry does not fall back to the built-in default
    /// for writing (the docker transport then says that nothing is configured).
    pub fn write_base(&self, image: &DockerReference) -> Result<Option<Url>, RegistriesDError> {
        self.top_level(image, true).map(parse_url).transpose()
    }

    /// `use-sigstore-attachments` for `image`: the value of the most specific section that
    /// sets it; false when none does.
    pub fn use_sigstore_attachments(&self, image: &DockerReference) -> bool {
        self.sections(image)
            .find_map(|s| s.use_sigstore_attachments)
            .unwrap_or(false)
    }

    /// ferry's `use-sigstore-referrers` for `image`: whether sigstore signatures among the
    /// image's OCI 1.1 referrers (cosign 3's bundles) are read. The most specific section that
    /// sets it decides; when none does, [`Self::use_sigstore_attachments`] does, so that the
    /// one switch people already set for sigstore turns on both places.
    pub fn use_sigstore_referrers(&self, image: &DockerReference) -> bool {
        self.sections(image)
            .find_map(|s| s.use_sigstore_referrers)
            .unwrap_or_else(|| self.use_sigstore_attachments(image))
    }

    /// ferry's `sigstore-bundle-identity` for `image`: `named` (the default: a bundle claims
    /// only the image its statement names) or `attached-image` (one that names none claims the
    /// image it is attached to, as cosign 3 treats it). Another value is an error.
    pub fn sigstore_bundle_identity(
        &self,
        image: &DockerReference,
    ) -> Result<BundleIdentity, RegistriesDError> {
        let set = self
            .located_sections(image)
            .find_map(|(scope, sec)| Some((sec.sigstore_bundle_identity.as_deref()?, scope)));
        match set {
            None | Some(("named", _)) => Ok(BundleIdentity::Named),
            Some(("attached-image", _)) => Ok(BundleIdentity::AttachedImage),
            Some((other, scope)) => Err(RegistriesDError::Invalid(format!(
                "{}: sigstore-bundle-identity is {other:?} (for {}); use named or attached-image",
                self.describe(scope.as_deref()),
                image.name()
            ))),
        }
    }
}

fn parse_url(s: &str) -> Result<Url, RegistriesDError> {
    Url::parse(s).map_err(|e| RegistriesDError::Url {
        url: s.to_string(),
        message: e.to_string(),
    })
}

/// The effective user ID as containers/image's rootless helper sees it:
/// `$_CONTAINERS_ROOTLESS_UID` when set (podman sets it inside its user namespace), else the
/// process's effective UID from `/proc/self/status`.
pub fn effective_uid() -> Option<u32> {
    if let Ok(v) = std::env::var("_CONTAINERS_ROOTLESS_UID")
        && !v.is_empty()
    {
        // Go's Atoi failure yields 0 there; an unparsable value is treated the same way.
        return Some(v.trim().parse().unwrap_or(0));
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    // "Uid:	real	effective	saved	filesystem"
    line.split_whitespace().nth(2)?.parse().ok()
}

/// containers/image's built-in lookaside, used for reading when nothing is configured:
/// `file:///var/lib/containers/sigstore` for root, `file://$HOME/.local/share/containers/sigstore`
/// otherwise. Reads the environment (the effective user and `$HOME`), so the library calls it
/// only through [`crate::session::SessionConfig::from_env`].
pub fn builtin_default_base() -> Option<Url> {
    let is_root = match effective_uid() {
        Some(uid) => uid == 0,
        None => std::env::home_dir().is_some_and(|h| h == Path::new("/root")),
    };
    let path = if is_root {
        PathBuf::from("/var/lib/containers/sigstore")
    } else {
        std::env::home_dir()
            .unwrap_or_else(|| PathBuf::from("/"))
            .join(".local/share/containers/sigstore")
    };
    // Only a relative $HOME makes the path relative; the root default is then the sensible place.
    Url::from_file_path(&path)
        .or_else(|()| Url::from_file_path("/var/lib/containers/sigstore"))
        .ok()
}

/// The URL of signature `index` (from 1) of the manifest `manifest_digest` of `image`:
/// `BASE/REPO-PATH@ALGO=HEX/signature-N`, REPO-PATH being the repository without host, tag or
/// digest. The digest is a validated [`Digest`], so no `/` or `..` can appear. Unlike
/// containers/image, a trailing `/` on the base does not produce `//`.
pub fn signature_url(
    base: &Url,
    image: &DockerReference,
    manifest_digest: &Digest,
    index: usize,
) -> Url {
    let mut u = base.clone();
    let path = format!(
        "{}/{}@{}={}/signature-{}",
        base.path().trim_end_matches('/'),
        image.path(),
        manifest_digest.algorithm().name(),
        manifest_digest.hex(),
        index
    );
    u.set_path(&path);
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> DockerReference {
        DockerReference::parse(s).unwrap()
    }

    fn yaml(text: &str) -> RegistriesConfig {
        RegistriesConfig::from_yaml(text, Path::new("/x.yaml")).unwrap()
    }

    #[test]
    fn comments_only_and_empty_files_are_empty_configs() {
        for text in [
            "",
            "\n",
            "# only a comment\n",
            "---\n",
            "docker:\ndefault-docker:\n",
        ] {
            let c = yaml(text);
            assert!(
                c.docker.is_empty() && c.default_docker.is_none(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_scope_with_everything_commented_out_is_defined_and_empty() {
        let c = yaml("docker:\n  example.com:\n#    lookaside: https://x/\n");
        assert!(c.docker.contains_key("example.com"));
        assert!(c.write_base(&r("example.com/a:1")).unwrap().is_none());
    }

    #[test]
    fn unknown_keys_are_ignored_and_wrong_types_name_the_file() {
        let c = yaml(
            "future-key: 1\ndocker:\n  example.com:\n    lookaside: https://x/\n    mirror: y\n",
        );
        assert_eq!(
            c.read_base(&r("example.com/a:1"))
                .unwrap()
                .unwrap()
                .as_str(),
            "https://x/"
        );
        let e = RegistriesConfig::from_yaml(
            "default-docker:\n  use-sigstore-attachments: [1]\n",
            Path::new("/etc/x/bad.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/etc/x/bad.yaml") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn sigstore_bundle_identity_takes_the_most_specific_scope_and_names_a_bad_value_s_file() {
        let c = RegistriesConfig::from_yaml(
            "default-docker:\n  sigstore-bundle-identity: attached-image\ndocker:\n  example.com/ns:\n    sigstore-bundle-identity: Attached\n  example.com/ok:\n    sigstore-bundle-identity: named\n",
            Path::new("/etc/containers/registries.d/f.yaml"),
        )
        .unwrap();
        assert_eq!(
            c.sigstore_bundle_identity(&r("other.example/a:1")).unwrap(),
            BundleIdentity::AttachedImage
        );
        assert_eq!(
            c.sigstore_bundle_identity(&r("example.com/ok/a:1"))
                .unwrap(),
            BundleIdentity::Named
        );
        let e = c
            .sigstore_bundle_identity(&r("example.com/ns/a:1"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/etc/containers/registries.d/f.yaml")
                && e.contains("\"example.com/ns\"")
                && e.contains("\"Attached\"")
                && e.contains("use named or attached-image"),
            "{e}"
        );
        assert_eq!(
            yaml("")
                .sigstore_bundle_identity(&r("a.example/b:1"))
                .unwrap(),
            BundleIdentity::Named
        );
    }

    #[test]
    fn read_source_names_the_file_and_scope_of_the_lookaside_in_use() {
        let c = RegistriesConfig::from_yaml(
            "default-docker:\n  lookaside: https://d.example/s\ndocker:\n  example.com/ns:\n    use-sigstore-attachments: true\n  example.com/ns/a:\n    lookaside: https://a.example/s\n",
            Path::new("/etc/containers/registries.d/f.yaml"),
        )
        .unwrap();
        assert_eq!(
            c.read_source(&r("example.com/ns/a:1")).as_deref(),
            Some("/etc/containers/registries.d/f.yaml, docker scope \"example.com/ns/a\"")
        );
        // A more specific section without a lookaside does not hide default-docker's.
        assert_eq!(
            c.read_source(&r("example.com/ns/b:1")).as_deref(),
            Some("/etc/containers/registries.d/f.yaml, default-docker")
        );
        assert_eq!(yaml("").read_source(&r("example.com/ns/b:1")), None);
    }

    #[test]
    fn read_base_refuses_urls_it_cannot_read() {
        for (u, want) in [
            ("ftp://x/s", "Unsupported scheme \"ftp\""),
            ("file://var/lib/sigs", "three slashes"),
            ("/var/lib/sigs", "relative URL"),
        ] {
            let c = yaml(&format!("default-docker:\n  lookaside: {u}\n"));
            let e = c.read_base(&r("a.example/b:1")).unwrap_err().to_string();
            assert!(e.contains(u) && e.contains(want), "{e}");
        }
        let c = yaml("default-docker:\n  lookaside: file://localhost/var/s\n");
        assert!(c.read_base(&r("a.example/b:1")).is_ok());
    }

    #[test]
    fn builtin_default_follows_the_effective_uid() {
        let u = builtin_default_base().unwrap();
        assert_eq!(u.scheme(), "file");
        if effective_uid() == Some(0) {
            assert_eq!(u.path(), "/var/lib/containers/sigstore");
        } else {
            assert!(
                u.path().ends_with("/.local/share/containers/sigstore"),
                "{u}"
            );
        }
    }
}
