//! The archive transports' reference grammars, as containers/image parses them
//! (`oci/archive/oci_transport.go`, `docker/archive/transport.go`):
//!
//! - `oci-archive:PATH[:NAME|:@N]`: everything after the first `:` is the image name, matched
//!   against `org.opencontainers.image.ref.name`; it must be a valid annotation value (OCI
//!   components joined by `/`, separators `-._:@+`); `@N` is the N-th entry of `index.json`
//!   (from 0), as newer containers/image reads it.
//! - `docker-archive:PATH[:NAME:TAG|:@N]`: after the first `:`, either `@N` (the N-th entry of
//!   manifest.json, from 0) or a docker reference, normalised (`busybox` is
//!   `docker.io/library/busybox:latest`); digests are refused.
//!
//! Neither path may contain `:`. Docker references are normalised here, with the grammar of
//! distribution/reference, so that the RepoTags of a docker archive and a reference compare as
//! containers/image compares them.

use std::path::PathBuf;
use std::sync::LazyLock;

use regex::Regex;

use super::error::ArchiveError;

/// Which image of an OCI archive.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OciSelector {
    /// The only image (an error if the index lists more or fewer than one).
    Only,
    /// The index entry whose `org.opencontainers.image.ref.name` is this.
    Name(String),
    /// The index entry at this position (from 0), as containers/image's `oci:PATH:@N`.
    Index(usize),
}

/// A parsed `oci-archive:` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciArchiveReference {
    /// The archive file.
    pub path: PathBuf,
    /// Which image (for a destination, the name to give it; `Only` gives none).
    pub selector: OciSelector,
}

/// Which image of a docker archive.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DockerSelector {
    /// The only image (an error if manifest.json has more or fewer than one entry).
    Only,
    /// The image one of whose RepoTags normalises to this.
    Tag(RepoTag),
    /// The N-th entry of manifest.json (from 0). Sources only.
    Index(usize),
}

/// A parsed `docker-archive:` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerArchiveReference {
    /// The archive file.
    pub path: PathBuf,
    /// Which image (for a destination, the tag to record; `Only` records none).
    pub selector: DockerSelector,
}

/// A normalised, tagged docker reference: `docker.io/library/busybox` and `latest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoTag {
    name: String,
    tag: String,
}

const DEFAULT_DOMAIN: &str = "docker.io";

static OCI_NAME: LazyLock<Regex> = LazyLock::new(|| {
    let sep = r"(?:[-._:@+]|--)";
    let alnum = r"(?:[A-Za-z0-9]+)";
    let component = format!("(?:{alnum}(?:{sep}{alnum})*)");
    #[allow(clippy::expect_used)] // a constant pattern, checked by the unit tests
    Regex::new(&format!("^{component}(?:/{component})*$")).expect("valid regex")
});

static DOCKER_REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    let alnum = r"[a-z0-9]+";
    let sep = r"(?:[._]|__|[-]+)";
    let path_component = format!("{alnum}(?:{sep}{alnum})*");
    let domain_component = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let host = format!(r"(?:{domain_component}(?:\.{domain_component})*|\[[a-fA-F0-9:]+\])");
    let domain = format!(r"{host}(?::[0-9]+)?");
    let name = format!("(?:{domain}/)?{path_component}(?:/{path_component})*");
    let tag = r"[\w][\w.-]{0,127}";
    let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
    #[allow(clippy::expect_used)] // a constant pattern, checked by the unit tests
    Regex::new(&format!("^({name})(?::({tag}))?(?:@({digest}))?$")).expect("valid regex")
});

impl RepoTag {
    /// Parses and normalises a docker reference as containers/image's docker-archive does
    /// (`reference.ParseNormalizedNamed` then `TagNameOnly`): a missing tag is `latest`, a
    /// digest is refused.
    pub fn parse(s: &str) -> Result<RepoTag, String> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
            ));
        }
        let (domain, remainder) = match s.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.to_lowercase() != first =>
            {
                (first, rest.to_string())
            }
            _ => (DEFAULT_DOMAIN, s.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            DEFAULT_DOMAIN
        } else {
            domain
        };
        let remainder = if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
            format!("library/{remainder}")
        } else {
            remainder
        };
        let remote = remainder.split(':').next().unwrap_or_default();
        if remote.to_lowercase() != remote {
            return Err(format!(
                "invalid reference format: repository name ({remote}) must be lowercase"
            ));
        }
        let full = format!("{domain}/{remainder}");
        let caps = DOCKER_REFERENCE
            .captures(&full)
            .ok_or_else(|| format!("invalid reference format: {s:?}"))?;
        let name = caps.get(1).map(|m| m.as_str()).unwrap_or_default();
        if name.len() > 255 {
            return Err("repository name must not be more than 255 characters".into());
        }
        let tag = caps.get(2).map(|m| m.as_str());
        if caps.get(3).is_some() {
            return Err(match tag {
                Some(_) => format!("docker-archive doesn't support digest references: {s}"),
                None => format!("reference does not include a tag: {s}"),
            });
        }
        Ok(RepoTag {
            name: name.to_string(),
            tag: tag.unwrap_or("latest").to_string(),
        })
    }

    /// The repository, domain included (`docker.io/library/busybox`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }
}

impl std::fmt::Display for RepoTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

/// Whether `name` is a valid `org.opencontainers.image.ref.name` for an oci-archive reference.
pub fn is_valid_oci_name(name: &str) -> bool {
    OCI_NAME.is_match(name)
}

fn invalid(transport: &'static str, input: &str, problem: impl Into<String>) -> ArchiveError {
    ArchiveError::InvalidReference {
        transport,
        input: input.to_string(),
        problem: problem.into(),
    }
}

/// Parses what follows `oci-archive:`.
pub fn parse_oci_archive(s: &str) -> Result<OciArchiveReference, ArchiveError> {
    let (path, image) = match s.split_once(':') {
        Some((p, i)) => (p, i),
        None => (s, ""),
    };
    if path.is_empty() {
        return Err(invalid("oci-archive", s, "the archive path is empty"));
    }
    let selector = if image.is_empty() {
        OciSelector::Only
    } else if let Some(digits) = image.strip_prefix('@') {
        // containers/image (5.29+) reads `@N` as the N-th entry of index.json, for sources.
        OciSelector::Index(digits.parse().map_err(|_| {
            invalid(
                "oci-archive",
                s,
                format!("Invalid source index {image}: @ and a number from 0"),
            )
        })?)
    } else if is_valid_oci_name(image) {
        OciSelector::Name(image.to_string())
    } else {
        return Err(invalid("oci-archive", s, format!("Invalid image {image}")));
    };
    Ok(OciArchiveReference {
        path: PathBuf::from(path),
        selector,
    })
}

/// Parses what follows `docker-archive:`.
pub fn parse_docker_archive(s: &str) -> Result<DockerArchiveReference, ArchiveError> {
    if s.is_empty() {
        return Err(invalid(
            "docker-archive",
            s,
            "it isn't of the form <path>[:<reference>]",
        ));
    }
    let (path, rest) = match s.split_once(':') {
        Some((p, r)) => (p, Some(r)),
        None => (s, None),
    };
    let selector = match rest {
        None => DockerSelector::Only,
        Some(r) if r.starts_with('@') => {
            let digits = r.get(1..).unwrap_or_default();
            let i: i64 = digits
                .parse()
                .map_err(|_| invalid("docker-archive", s, format!("Invalid source index {r}")))?;
            let i = usize::try_from(i).map_err(|_| {
                invalid(
                    "docker-archive",
                    s,
                    format!("Invalid source index @{i}: must not be negative"),
                )
            })?;
            DockerSelector::Index(i)
        }
        Some(r) => {
            DockerSelector::Tag(RepoTag::parse(r).map_err(|p| invalid("docker-archive", s, p))?)
        }
    };
    Ok(DockerArchiveReference {
        path: PathBuf::from(path),
        selector,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_docker_references() {
        let t = |s: &str| RepoTag::parse(s).map(|r| r.to_string());
        assert_eq!(t("busybox").unwrap(), "docker.io/library/busybox:latest");
        assert_eq!(t("busybox:1.36").unwrap(), "docker.io/library/busybox:1.36");
        assert_eq!(
            t("index.docker.io/foo/bar:x").unwrap(),
            "docker.io/foo/bar:x"
        );
        assert_eq!(t("quay.io/a/b:v1").unwrap(), "quay.io/a/b:v1");
        assert_eq!(t("localhost/app").unwrap(), "localhost/app:latest");
        assert_eq!(t("localhost:5000/app:2").unwrap(), "localhost:5000/app:2");
        assert_eq!(t("example.com/Org/app").ok(), None, "uppercase repository");
        assert!(t("Busybox").is_err());
        assert!(
            t("busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
                .unwrap_err()
                .contains("does not include a tag")
        );
        assert!(
            t("busybox:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
                .unwrap_err()
                .contains("digest references")
        );
        assert!(t(&"a".repeat(64).replace('a', "f")).is_err());
        assert!(t("busy box").is_err());
    }

    #[test]
    fn parses_docker_archive_references() {
        let r = parse_docker_archive("/tmp/x.tar").unwrap();
        assert_eq!(r.selector, DockerSelector::Only);
        let r = parse_docker_archive("/tmp/x.tar:@2").unwrap();
        assert_eq!(r.selector, DockerSelector::Index(2));
        let r = parse_docker_archive("x.tar:busybox:1").unwrap();
        assert_eq!(r.path, PathBuf::from("x.tar"));
        match r.selector {
            DockerSelector::Tag(t) => assert_eq!(t.to_string(), "docker.io/library/busybox:1"),
            other => panic!("{other:?}"),
        }
        assert!(
            parse_docker_archive("x.tar:@-1")
                .unwrap_err()
                .to_string()
                .contains("negative")
        );
        assert!(parse_docker_archive("x.tar:@x").is_err());
        assert!(parse_docker_archive("").is_err());
    }

    #[test]
    fn parses_oci_archive_references() {
        let r = parse_oci_archive("/tmp/x.tar").unwrap();
        assert_eq!(r.selector, OciSelector::Only);
        let r = parse_oci_archive("/tmp/x.tar:docker.io/library/busybox:latest").unwrap();
        assert_eq!(
            r.selector,
            OciSelector::Name("docker.io/library/busybox:latest".into())
        );
        let r = parse_oci_archive("x.tar:v1").unwrap();
        assert_eq!(r.selector, OciSelector::Name("v1".into()));
        assert!(parse_oci_archive("x.tar:bad name").is_err());
        let r = parse_oci_archive("x.tar:@3").unwrap();
        assert_eq!(r.selector, OciSelector::Index(3));
        assert!(parse_oci_archive("x.tar:@-1").is_err());
        assert!(parse_oci_archive(":v1").is_err());
    }
}
