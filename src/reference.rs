//! Image references: the docker reference grammar (normalised exactly as docker/distribution's
//! `ParseNormalizedNamed` does) and ferry's `TRANSPORT:REST` form.

use std::fmt;
use std::path::PathBuf;
use std::sync::LazyLock;

use regex::Regex;

use crate::digest::Digest;

/// The registry that unqualified names live on.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

// The grammar of docker/distribution's reference package (reference/regexp.go), written as
// Rust regexes. Kept as separate pieces so each can be read against the original grammar.
const ALPHA_NUMERIC: &str = r"[a-z0-9]+";
const SEPARATOR: &str = r"(?:[._]|__|[-]+)";
const DOMAIN_NAME_COMPONENT: &str = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const IPV6: &str = r"\[(?:[a-fA-F0-9:]+)\]";
// Go's `\w` is ASCII-only; Rust's is Unicode (and makes this regex slow to compile), so the
// classes are spelled out.
const TAG: &str = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
const DIGEST: &str = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";

fn name_component() -> String {
    format!("{ALPHA_NUMERIC}(?:{SEPARATOR}{ALPHA_NUMERIC})*")
}

fn domain_and_port() -> String {
    format!(r"(?:{DOMAIN_NAME_COMPONENT}(?:\.{DOMAIN_NAME_COMPONENT})*|{IPV6})(?::[0-9]+)?")
}

/// Compiles one of this module's constant patterns. Every pattern is a constant that every unit
/// test run compiles, so the `expect` cannot fire on any input: only an edit of a pattern could
/// make it, and the tests would catch that.
#[allow(clippy::expect_used)]
fn static_regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a constant pattern that the unit tests compile")
}

static REFERENCE_RE: LazyLock<Regex> = LazyLock::new(|| {
    let nc = name_component();
    let name = format!("(?:{}/)?{nc}(?:/{nc})*", domain_and_port());
    static_regex(&format!("^({name})(?::({TAG}))?(?:@({DIGEST}))?$"))
});
static TAG_RE: LazyLock<Regex> = LazyLock::new(|| static_regex(&format!("^{TAG}$")));

/// Why a string is not a valid docker reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReferenceError {
    /// Empty name.
    #[error("invalid reference {0:?}: repository name must have at least one component")]
    Empty(String),
    /// Uppercase letters in the repository path.
    #[error("invalid reference {0:?}: repository name must be lowercase")]
    Uppercase(String),
    /// Over 255 characters.
    #[error("invalid reference {0:?}: repository name must not be more than 255 characters")]
    TooLong(String),
    /// Does not match the grammar.
    #[error(
        "invalid reference format {0:?}: expected [HOST[:PORT]/]PATH[:TAG][@DIGEST], path components of [a-z0-9] joined by '.', '_', '__' or '-', tags of [A-Za-z0-9_.-] up to 128 characters"
    )]
    Format(String),
    /// A digest part that ferry cannot use.
    #[error("invalid reference {reference:?}: {source}")]
    Digest {
        /// The reference as given.
        reference: String,
        /// What is wrong with its digest.
        source: crate::digest::DigestError,
    },
    /// An unknown `TRANSPORT:` prefix.
    #[error("unknown transport in {reference:?}: use {known}")]
    Transport {
        /// The reference as given.
        reference: String,
        /// The grammar of every transport ferry knows, for people.
        known: String,
    },
    /// A transport with an empty or wrong remainder.
    #[error("invalid {transport} reference {reference:?}: {why}")]
    Invalid {
        /// The transport name.
        transport: &'static str,
        /// The reference as given.
        reference: String,
        /// What is wrong.
        why: String,
    },
}

/// A normalised docker reference: `domain/path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DockerReference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl DockerReference {
    /// Parses and normalises like docker/distribution `ParseNormalizedNamed`: `busybox` becomes
    /// `docker.io/library/busybox`. No tag is added: see [`DockerReference::with_default_tag`].
    pub fn parse(s: &str) -> Result<DockerReference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty(s.to_string()));
        }
        // Fully-qualified docker.io references keep their form; only the split decides.
        let (domain, remainder) = split_domain(s);
        if remainder.is_empty() {
            return Err(ReferenceError::Empty(s.to_string()));
        }
        let name_part = remainder.split([':', '@']).next().unwrap_or_default();
        if name_part.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(s.to_string()));
        }
        let full = format!("{domain}/{remainder}");
        let caps = REFERENCE_RE
            .captures(&full)
            .ok_or_else(|| ReferenceError::Format(s.to_string()))?;
        let name = caps.get(1).map(|m| m.as_str()).unwrap_or_default();
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::TooLong(s.to_string()));
        }
        let (domain, path) = name
            .split_once('/')
            .ok_or_else(|| ReferenceError::Format(s.to_string()))?;
        let digest = match caps.get(3) {
            Some(m) => {
                Some(
                    Digest::parse(m.as_str()).map_err(|source| ReferenceError::Digest {
                        reference: s.to_string(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        Ok(DockerReference {
            domain: domain.to_string(),
            path: path.to_string(),
            tag: caps.get(2).map(|m| m.as_str().to_string()),
            digest,
        })
    }

    /// The reference with `:latest` added when it has neither tag nor digest, as pulls do.
    pub fn with_default_tag(mut self) -> DockerReference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".to_string());
        }
        self
    }

    /// The registry host (and port): `docker.io`, `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }
    /// The repository path without the host: `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// `domain/path`: the repository's full name.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }
    /// The same repository with only this tag.
    pub fn with_tag(&self, tag: &str) -> Result<DockerReference, ReferenceError> {
        if !TAG_RE.is_match(tag) {
            return Err(ReferenceError::Format(format!("{}:{tag}", self.name())));
        }
        Ok(DockerReference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }
    /// The same repository with only this digest.
    pub fn with_digest(&self, digest: Digest) -> DockerReference {
        DockerReference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest),
        }
    }
    /// The same repository with neither tag nor digest.
    pub fn repository(&self) -> DockerReference {
        DockerReference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: None,
        }
    }
    /// The parent namespaces used for scope lookups, longest first: for
    /// `host/ns/repo` that is `host/ns/repo`, `host/ns`, `host`.
    pub fn namespaces(&self) -> Vec<String> {
        let name = self.name();
        let mut out = vec![name.clone()];
        let mut cur = name.as_str();
        while let Some(i) = cur.rfind('/') {
            cur = &cur[..i];
            out.push(cur.to_string());
        }
        out
    }
    /// The scopes a configuration keyed by docker names is looked up in, most specific first:
    /// the reference itself, its repository and each parent namespace, then wildcard domains
    /// (`*.example.com`, `*.com`; the port is not part of them). Shared by policy.json and
    /// registries.d, which containers/image resolves the same way.
    pub fn scopes(&self) -> Vec<String> {
        let mut out = vec![self.to_string()];
        out.extend(self.namespaces());
        let host = self.domain.split(':').next().unwrap_or_default();
        let mut labels: Vec<&str> = host.split('.').collect();
        while labels.len() > 1 {
            labels.remove(0);
            out.push(format!("*.{}", labels.join(".")));
        }
        out
    }

    /// A name in the shortest form a person would type (`busybox:latest` for docker.io images).
    pub fn familiar(&self) -> String {
        let s = self.to_string();
        let s = s
            .strip_prefix("docker.io/")
            .map(str::to_string)
            .unwrap_or(s);
        s.strip_prefix(OFFICIAL_REPO_PREFIX)
            .filter(|rest| !rest.split([':', '@']).next().unwrap_or("").contains('/'))
            .map(str::to_string)
            .unwrap_or(s)
    }
}

// docker/distribution normalize.go splitDomain: the first component is a domain when it has a
// '.' or ':', is `localhost`, or has an uppercase letter (a path component never may).
fn split_domain(s: &str) -> (String, String) {
    let (mut domain, mut remainder) = match s.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), s.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

impl fmt::Display for DockerReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// What every transport's own reference type answers: containers/image's `ImageReference`
/// without the IO. Each transport's folder (`src/transport/NAME/`) has one; what opens it lives
/// there too, and `src/transport/registry.rs` is the one list of transports.
///
/// Everything here is computed when the reference is parsed (a `dir:` or `oci:` path is made
/// absolute and symlink-resolved then, as containers/image does), so the policy, which asks
/// these questions, does no IO.
pub trait TransportReference: fmt::Debug + Send + Sync + 'static {
    /// The transport's name, as policy.json and the command line spell it (`docker`, `oci`).
    fn transport(&self) -> &'static str;
    /// The reference after `TRANSPORT:`, as given (containers/image's
    /// `StringWithinTransport`): `//registry.example/app:1`, `/srv/layout:v1`.
    fn within(&self) -> String;
    /// The docker reference the image is known by, where it has one (containers/image: docker
    /// and its kin; `dir:` and `oci:` images have none). `signedIdentity` is matched against it.
    fn docker_reference(&self) -> Option<&DockerReference> {
        None
    }
    /// The scopes policy.json looks this image up in, most specific first: containers/image's
    /// `PolicyConfigurationIdentity` followed by its `PolicyConfigurationNamespaces`.
    fn policy_scopes(&self) -> Vec<String>;
    /// Destinations with the same key are written one at a time within a process (the images of
    /// one OCI layout share its `index.json`); `None`: no such constraint.
    fn write_lock_key(&self) -> Option<String> {
        None
    }
    /// The reference as `Any`, so its transport can get its own type back.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// A parsed `TRANSPORT:REST` image reference: any transport's reference, behind the questions
/// every reference answers. Parse one with `ImageReference::parse`, which knows every transport
/// ferry has (`src/transport/registry.rs`). Cheap to clone.
#[derive(Clone)]
pub struct ImageReference(std::sync::Arc<dyn TransportReference>);

impl ImageReference {
    /// Wraps a transport's own reference.
    pub fn new(inner: impl TransportReference) -> ImageReference {
        ImageReference(std::sync::Arc::new(inner))
    }

    /// The transport's name as policy.json names it (`docker`, `oci`, `dir`; `store` for ferry's).
    pub fn transport(&self) -> &'static str {
        self.0.transport()
    }

    /// The docker reference this image is known by, where it has one (docker and store; like
    /// containers/image, `dir:` and `oci:` images have none).
    pub fn docker_reference(&self) -> Option<DockerReference> {
        self.0.docker_reference().cloned()
    }

    /// The scopes policy.json looks this image up in, most specific first: containers/image's
    /// `PolicyConfigurationIdentity` followed by its `PolicyConfigurationNamespaces`. Docker
    /// names give the reference, its repository, each parent namespace and `*.domain`
    /// wildcards; `dir:` and `oci:` give the absolute, symlink-resolved path and each parent.
    pub fn policy_scopes(&self) -> Vec<String> {
        self.0.policy_scopes()
    }

    /// See [`TransportReference::write_lock_key`].
    pub fn write_lock_key(&self) -> Option<String> {
        self.0.write_lock_key()
    }

    /// The transport's own reference type, when it is `T`.
    pub fn downcast_ref<T: TransportReference>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref::<T>()
    }
}

impl fmt::Debug for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for ImageReference {
    fn eq(&self, other: &ImageReference) -> bool {
        self.transport() == other.transport() && self.0.within() == other.0.within()
    }
}

impl Eq for ImageReference {}

impl std::hash::Hash for ImageReference {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.transport().hash(state);
        self.0.within().hash(state);
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport(), self.0.within())
    }
}

/// The scopes of an image named by a path, as containers/image gives them for `dir:` and `oci:`:
/// the path (already absolute and symlink-resolved, see [`resolve_path`]) and each parent
/// directory up to, not including, `/`.
pub fn path_scopes(resolved: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<&std::path::Path> = Some(resolved);
    while let Some(p) = cur {
        if p == std::path::Path::new("/") || p.as_os_str().is_empty() {
            break;
        }
        out.push(p.display().to_string());
        cur = p.parent();
    }
    out
}

/// The absolute, symlink-resolved path, as containers/image identifies `dir:` and `oci:` images
/// when it parses their references; a path that does not exist (yet) is made absolute without
/// resolving.
pub fn resolve_path(path: &std::path::Path) -> PathBuf {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// Whether `s` may be a `prefix` or `signedPrefix` of a `remapIdentity` policy: exactly the
/// check containers/image makes (`validateIdentityRemappingPrefix`), with the grammar of its own
/// copy of the reference package (whose separator allows any run of dashes, and no IPv6). Like
/// containers/image, this accepts `shortname` and `ns/shortname`, which simply never match.
pub fn is_remap_prefix(s: &str) -> bool {
    const DC: &str = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    const NC: &str = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*";
    static DOMAIN: LazyLock<Regex> =
        LazyLock::new(|| static_regex(&format!(r"^{DC}(?:\.{DC})*(?::[0-9]+)?$")));
    static DOMAIN_PREFIX: LazyLock<Regex> =
        LazyLock::new(|| static_regex(&format!(r"^{DC}(?:\.{DC})*(?::[0-9]+)?/")));
    static NAME: LazyLock<Regex> = LazyLock::new(|| {
        static_regex(&format!(
            r"^(?:{DC}(?:\.{DC})*(?::[0-9]+)?/)?{NC}(?:/{NC})*$"
        ))
    });
    DOMAIN.is_match(s) || (NAME.is_match(s) && DOMAIN_PREFIX.is_match(s))
}

/// OCI ref.name grammar (image-spec annotations): components of alphanumerics joined by
/// separators `-._:@/+`, as containers/image's oci layout transport checks it.
pub(crate) fn valid_oci_ref_name(s: &str) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        static_regex(
            r"^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$",
        )
    });
    RE.is_match(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        DockerReference::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox");
        assert_eq!(
            DockerReference::parse("busybox")
                .unwrap()
                .with_default_tag()
                .to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("library/busybox:1"), "docker.io/library/busybox:1");
        assert_eq!(norm("index.docker.io/foo/bar"), "docker.io/foo/bar");
        assert_eq!(norm("docker.io/busybox"), "docker.io/library/busybox");
        assert_eq!(norm("localhost/app"), "localhost/app");
        assert_eq!(norm("localhost:5000/ns/app:v1"), "localhost:5000/ns/app:v1");
        assert_eq!(norm("127.0.0.1:5000/app"), "127.0.0.1:5000/app");
        assert_eq!(norm("quay.io/a/b/c"), "quay.io/a/b/c");
        assert_eq!(norm("foo/bar"), "docker.io/foo/bar");
        assert_eq!(norm("a__b/c-d---e.f_g"), "docker.io/a__b/c-d---e.f_g");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = DockerReference::parse(&format!("example.com/app:v1@{d}")).unwrap();
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest().unwrap().to_string(), d);
        assert_eq!(r.domain(), "example.com");
        assert_eq!(r.path(), "app");
        assert_eq!(
            DockerReference::parse("busybox:1").unwrap().familiar(),
            "busybox:1"
        );
        assert_eq!(
            DockerReference::parse("foo/bar").unwrap().familiar(),
            "foo/bar"
        );
        assert_eq!(
            DockerReference::parse("host.io/ns/app:1")
                .unwrap()
                .namespaces(),
            vec!["host.io/ns/app", "host.io/ns", "host.io"]
        );
    }

    #[test]
    fn rejects_with_the_rule() {
        assert!(matches!(
            DockerReference::parse("Busybox"),
            Err(ReferenceError::Uppercase(_))
        ));
        assert!(matches!(
            DockerReference::parse("example.com/App"),
            Err(ReferenceError::Uppercase(_))
        ));
        assert!(matches!(
            DockerReference::parse(""),
            Err(ReferenceError::Empty(_))
        ));
        assert!(matches!(
            DockerReference::parse("a/b:"),
            Err(ReferenceError::Format(_))
        ));
        assert!(matches!(
            DockerReference::parse("a//b"),
            Err(ReferenceError::Format(_))
        ));
        assert!(matches!(
            DockerReference::parse("a/-b"),
            Err(ReferenceError::Format(_))
        ));
        assert!(matches!(
            DockerReference::parse(&format!("a:{}", "t".repeat(129))),
            Err(ReferenceError::Format(_))
        ));
        assert!(DockerReference::parse(&format!("a:{}", "t".repeat(128))).is_ok());
        // Tags are ASCII, as Go's \w is: skopeo rejects this one too.
        assert!(matches!(
            DockerReference::parse("host.io/y:\u{e9}"),
            Err(ReferenceError::Format(_))
        ));
        let long = format!("example.com/{}", "a".repeat(250));
        assert!(matches!(
            DockerReference::parse(&long),
            Err(ReferenceError::TooLong(_))
        ));
        assert!(matches!(
            DockerReference::parse("a@sha256:abc"),
            Err(ReferenceError::Format(_))
        ));
        assert!(matches!(
            DockerReference::parse(&format!("a@md5:{}", "a".repeat(32))),
            Err(ReferenceError::Digest { .. })
        ));
    }

    #[test]
    fn remap_prefixes_are_checked_as_containers_image_checks_them() {
        for ok in [
            "example.com",
            "example.com:5000",
            "example.com/ns/app",
            "localhost/app",
            "shortname",
            "ns/shortname",
            "a--b.example/x---y",
        ] {
            assert!(is_remap_prefix(ok), "{ok}");
        }
        for bad in [
            "",
            "my_host/app",
            "example.com/App",
            "example.com/app:1",
            "example.com/app@sha256:00",
            "-x.example/app",
            "example.com/",
        ] {
            assert!(!is_remap_prefix(bad), "{bad}");
        }
    }
}
