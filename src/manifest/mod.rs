//! Manifests: the media types, detection of the kind from the media type and the body, the two
//! shapes ferry copies (a single image, a list of images) and platform selection in lists.
//!
//! Manifests are kept as the exact bytes they arrived as; these types are parsed views used to
//! find blobs and instances. Nothing here re-serialises a manifest; [`convert`] makes new
//! manifests in the other format, for copies that ask for one and keep no signature.

pub mod convert;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Docker image manifest, schema 2.
pub const DOCKER_V2S2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 (unsigned).
pub const DOCKER_V2S1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema 1, signed with JWS.
pub const DOCKER_V2S1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Every manifest media type ferry asks registries for.
pub const ACCEPTED: [&str; 6] = [
    OCI_MANIFEST,
    DOCKER_V2S2,
    OCI_INDEX,
    DOCKER_LIST,
    DOCKER_V2S1_SIGNED,
    DOCKER_V2S1,
];

/// The largest manifest ferry reads (containers/image's limit).
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

/// The kind of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ManifestKind {
    /// Docker schema 2 image.
    DockerV2S2,
    /// OCI image.
    OciManifest,
    /// Docker manifest list.
    DockerList,
    /// OCI index.
    OciIndex,
    /// Docker schema 1 (recognised only to refuse it clearly).
    DockerV2S1,
}

impl ManifestKind {
    /// The media type that names this kind.
    pub fn media_type(self) -> &'static str {
        match self {
            ManifestKind::DockerV2S2 => DOCKER_V2S2,
            ManifestKind::OciManifest => OCI_MANIFEST,
            ManifestKind::DockerList => DOCKER_LIST,
            ManifestKind::OciIndex => OCI_INDEX,
            ManifestKind::DockerV2S1 => DOCKER_V2S1_SIGNED,
        }
    }
    /// Whether this is a list of images.
    pub fn is_list(self) -> bool {
        matches!(self, ManifestKind::DockerList | ManifestKind::OciIndex)
    }
    fn from_media_type(mt: &str) -> Option<ManifestKind> {
        match mt {
            DOCKER_V2S2 => Some(ManifestKind::DockerV2S2),
            OCI_MANIFEST => Some(ManifestKind::OciManifest),
            DOCKER_LIST => Some(ManifestKind::DockerList),
            OCI_INDEX => Some(ManifestKind::OciIndex),
            DOCKER_V2S1 | DOCKER_V2S1_SIGNED => Some(ManifestKind::DockerV2S1),
            _ => None,
        }
    }
}

/// Why bytes are not a manifest ferry can use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not JSON at all.
    #[error("manifest is not valid JSON ({source}); it starts with {start:?}")]
    NotJson {
        /// The JSON error.
        source: serde_json::Error,
        /// The first bytes, to show what it was instead (an HTML page, say).
        start: String,
    },
    /// JSON, but not a manifest of a known kind.
    #[error("unrecognised manifest: {0}")]
    Unknown(String),
    /// Schema 1, which ferry does not copy.
    #[error(
        "manifest is Docker schema 1 ({0}), which ferry does not support: schema 1 is deprecated and its digest depends on re-serialisation; convert the image to schema 2 or OCI with another tool first"
    )]
    Schema1(String),
    /// A known kind whose fields do not parse.
    #[error("invalid {kind} manifest: {source}")]
    Invalid {
        /// The media type.
        kind: &'static str,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// Larger than [`MAX_MANIFEST_SIZE`].
    #[error("manifest of {0} bytes is larger than the 4 MiB limit")]
    TooLarge(usize),
}

/// A content descriptor: what a manifest says about one blob or one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The blob's media type.
    #[serde(default)]
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// Alternative download URLs (foreign layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
    /// The platform of a list entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform an image in a list is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// CPU variant (`v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// OS version.
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

/// A single image: config and layers.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageManifest {
    /// The config blob.
    pub config: Descriptor,
    /// The layers, bottom first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

impl ImageManifest {
    /// Every blob the image needs: the layers, then the config.
    pub fn blobs(&self) -> Vec<&Descriptor> {
        self.layers
            .iter()
            .chain(std::iter::once(&self.config))
            .collect()
    }
}

/// A list of images (Docker manifest list or OCI index).
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestList {
    /// The instances.
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest.
#[derive(Debug, Clone)]
pub enum Manifest {
    /// One image.
    Image(ManifestKind, Box<ImageManifest>),
    /// A list of images.
    List(ManifestKind, ManifestList),
}

impl Manifest {
    /// The kind.
    pub fn kind(&self) -> ManifestKind {
        match self {
            Manifest::Image(k, _) | Manifest::List(k, _) => *k,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<i64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    layers: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
    #[serde(default)]
    fs_layers: Option<serde_json::Value>,
    #[serde(default)]
    signatures: Option<serde_json::Value>,
}

/// The kind of a manifest, from the media type it was served with (if any and known) and its
/// body's `mediaType` and shape, as containers/image `GuessMIMEType` does.
pub fn detect(bytes: &[u8], declared: Option<&str>) -> Result<ManifestKind, ManifestError> {
    if bytes.len() > MAX_MANIFEST_SIZE {
        return Err(ManifestError::TooLarge(bytes.len()));
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|source| ManifestError::NotJson {
        source,
        start: String::from_utf8_lossy(bytes.get(..40).unwrap_or(bytes)).into_owned(),
    })?;
    if let Some(mt) = probe.media_type.as_deref()
        && let Some(k) = ManifestKind::from_media_type(mt)
    {
        return Ok(k);
    }
    if let Some(k) = declared
        .and_then(|d| ManifestKind::from_media_type(d.split(';').next().unwrap_or("").trim()))
    {
        return Ok(k);
    }
    if probe.schema_version == Some(1) || probe.fs_layers.is_some() {
        return Ok(ManifestKind::DockerV2S1);
    }
    if probe.manifests.is_some() {
        return Ok(ManifestKind::OciIndex);
    }
    if probe.config.is_some() && probe.layers.is_some() {
        return Ok(ManifestKind::OciManifest);
    }
    Err(ManifestError::Unknown(format!(
        "mediaType {:?} and no config/layers or manifests",
        probe.media_type.unwrap_or_default()
    )))
}

/// Whether `expected` is the digest of the manifest `bytes`, computed as containers/image's
/// `manifest.Digest` does: over the exact bytes, with `expected`'s own algorithm. A signed
/// Docker schema 1 manifest (`+prettyjws`) is hashed there only after its JWS signatures are
/// stripped and the payload re-assembled; ferry does not do that, so it refuses to judge one
/// rather than compare against the wrong bytes.
pub fn matches_digest(bytes: &[u8], expected: &crate::digest::Digest) -> Result<bool, String> {
    let signed_schema1 = serde_json::from_slice::<Probe>(bytes).is_ok_and(|p| {
        (p.schema_version == Some(1) || p.fs_layers.is_some()) && p.signatures.is_some()
    });
    if signed_schema1 {
        return Err(
            "the manifest is a signed Docker schema 1 manifest, whose digest is computed without its JWS signatures; ferry does not support schema 1, so it cannot check which manifest the signature is for"
                .into(),
        );
    }
    Ok(expected.matches(bytes))
}

/// Parses a manifest of a known kind. Schema 1 is an error that says so.
pub fn parse(bytes: &[u8], declared: Option<&str>) -> Result<Manifest, ManifestError> {
    let kind = detect(bytes, declared)?;
    match kind {
        ManifestKind::DockerV2S1 => Err(ManifestError::Schema1(kind.media_type().to_string())),
        ManifestKind::DockerV2S2 | ManifestKind::OciManifest => serde_json::from_slice(bytes)
            .map(|m| Manifest::Image(kind, Box::new(m)))
            .map_err(|source| ManifestError::Invalid {
                kind: kind.media_type(),
                source,
            }),
        ManifestKind::DockerList | ManifestKind::OciIndex => serde_json::from_slice(bytes)
            .map(|m| Manifest::List(kind, m))
            .map_err(|source| ManifestError::Invalid {
                kind: kind.media_type(),
                source,
            }),
    }
}

/// A wanted platform: `OS/ARCH[/VARIANT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    /// OS.
    pub os: String,
    /// Architecture, in Go's names.
    pub architecture: String,
    /// Variant, if wanted.
    pub variant: Option<String>,
}

impl PlatformSpec {
    /// Parses `OS/ARCH[/VARIANT]`.
    pub fn parse(s: &str) -> Result<PlatformSpec, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(PlatformSpec {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, var] if !os.is_empty() && !arch.is_empty() && !var.is_empty() => {
                Ok(PlatformSpec {
                    os: os.to_string(),
                    architecture: arch.to_string(),
                    variant: Some(var.to_string()),
                })
            }
            _ => Err(format!(
                "invalid platform {s:?}: expected OS/ARCH[/VARIANT], e.g. linux/arm64/v8"
            )),
        }
    }

    /// The platform this program runs on, in Go's names.
    pub fn current() -> PlatformSpec {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        PlatformSpec {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: match architecture {
                "arm64" => Some("v8".to_string()),
                _ => None,
            },
        }
    }

    /// The entry of `list` for this platform: same OS and architecture; with a variant wanted,
    /// an entry with that variant, or one that names none. An exact variant match wins.
    pub fn choose<'a>(&self, list: &'a ManifestList) -> Option<&'a Descriptor> {
        let candidates: Vec<&Descriptor> = list
            .manifests
            .iter()
            .filter(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == self.os && p.architecture == self.architecture)
            })
            .collect();
        let variant_of = |d: &Descriptor| d.platform.as_ref().and_then(|p| p.variant.clone());
        candidates
            .iter()
            .find(|d| variant_of(d) == self.variant)
            .or_else(|| candidates.iter().find(|d| variant_of(d).is_none()))
            .or_else(|| {
                if self.variant.is_none() {
                    candidates.first()
                } else {
                    None
                }
            })
            .copied()
    }
}

impl std::fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_schema1_digests_are_refused_not_misjudged() {
        let signed = br#"{"schemaVersion":1,"name":"a","tag":"1","fsLayers":[],"history":[],"signatures":[{"header":{},"signature":"x","protected":"y"}]}"#;
        let d = crate::digest::Digest::sha256_of(signed);
        assert!(matches_digest(signed, &d).unwrap_err().contains("schema 1"));
        let unsigned = br#"{"schemaVersion":1,"name":"a","tag":"1","fsLayers":[],"history":[]}"#;
        let d = crate::digest::Digest::sha256_of(unsigned);
        assert_eq!(matches_digest(unsigned, &d), Ok(true));
        assert_eq!(matches_digest(b"{}", &d), Ok(false));
    }

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn detects_kinds() {
        let oci = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{D}","size":0}},"layers":[]}}"#
        );
        assert_eq!(
            detect(oci.as_bytes(), None).unwrap(),
            ManifestKind::OciManifest
        );
        let bare = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{D}","size":0}},"layers":[]}}"#
        );
        assert_eq!(
            detect(bare.as_bytes(), None).unwrap(),
            ManifestKind::OciManifest
        );
        assert_eq!(
            detect(bare.as_bytes(), Some(DOCKER_V2S2)).unwrap(),
            ManifestKind::DockerV2S2
        );
        let idx = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(
            detect(idx.as_bytes(), None).unwrap(),
            ManifestKind::OciIndex
        );
        let s1 = r#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(matches!(
            parse(s1.as_bytes(), None),
            Err(ManifestError::Schema1(_))
        ));
        let e = parse(b"<html>nope</html>", None).unwrap_err();
        assert!(e.to_string().contains("<html>"), "{e}");
        assert!(matches!(
            parse(br#"{"a":1}"#, None),
            Err(ManifestError::Unknown(_))
        ));
        let bad = format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","config":{{"digest":"sha256:zz","size":0}}}}"#
        );
        assert!(matches!(
            parse(bad.as_bytes(), None),
            Err(ManifestError::Invalid { .. })
        ));
    }

    #[test]
    fn chooses_platforms() {
        let entry = |arch: &str, var: Option<&str>| Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: crate::digest::Digest::sha256_of(format!("{arch}{var:?}").as_bytes()),
            size: 1,
            urls: None,
            annotations: None,
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: var.map(str::to_string),
                os_version: None,
            }),
        };
        let list = ManifestList {
            manifests: vec![
                entry("amd64", None),
                entry("arm", Some("v7")),
                entry("arm64", Some("v8")),
            ],
        };
        let pick = |s: &str| {
            PlatformSpec::parse(s)
                .unwrap()
                .choose(&list)
                .map(|d| d.digest.clone())
        };
        assert_eq!(pick("linux/amd64"), Some(list.manifests[0].digest.clone()));
        assert_eq!(pick("linux/arm/v7"), Some(list.manifests[1].digest.clone()));
        assert_eq!(
            pick("linux/arm64/v8"),
            Some(list.manifests[2].digest.clone())
        );
        assert_eq!(pick("linux/arm/v6"), None);
        assert_eq!(pick("windows/amd64"), None);
        assert!(PlatformSpec::parse("linux").is_err());
    }
}
