//! Manifest format conversion between OCI and Docker schema 2 images, as containers/image does
//! it (`internal/image/oci.go` `convertToManifestSchema2`, `docker_schema2.go`
//! `convertToManifestOCI1`): only media types change, layer blobs stay the same bytes.
//!
//! - OCI → Docker schema 2: the config blob is kept as it is (its media type becomes Docker's);
//!   layers map `tar` → `rootfs.diff.tar`, `tar+gzip` → `rootfs.diff.tar.gzip`, the
//!   non-distributable kinds → foreign layers; zstd and encrypted layers have no Docker form and
//!   are refused; a manifest whose config is not an OCI image config (an artifact) is refused.
//! - Docker schema 2 → OCI: the config blob is rewritten with only the OCI image-spec fields
//!   (containers/image decodes it into the OCI `Image` type and encodes it again), so the image
//!   gets a new config blob; layers map back.
//!
//! Output is encoded as Go's `encoding/json` encodes these types (field order, omitted empty
//! fields, `<`, `>` and `&` escaped, times as RFC 3339 with trailing zeros dropped), so a
//! conversion by ferry and one by skopeo give the same bytes, and so the same digest. The OCI
//! types are those of the image-spec skopeo vendors today (1.1.2: the platform's `variant`
//! after `os`, an empty `config` omitted); Debian's skopeo 1.9.3 vendors image-spec 1.0.2,
//! whose config puts `variant` after `architecture` and keeps an empty `config`, so for such
//! images its bytes differ from upstream's and ferry's. Pure: bytes in, bytes out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{DOCKER_V2S2, Descriptor, OCI_MANIFEST};
use crate::digest::Digest;

/// The OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const OCI_FOREIGN: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
const OCI_FOREIGN_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
const OCI_FOREIGN_ZSTD: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar";
const DOCKER_FOREIGN_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// Why a manifest cannot be converted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// The manifest is not an image of the kind the conversion starts from.
    #[error("the manifest is not {expected}: {why}")]
    NotConvertible {
        /// The media type a conversion from it would need.
        expected: &'static str,
        /// Why not.
        why: String,
    },
    /// A layer whose media type has no form in the other format.
    #[error("layer {digest} has media type {media_type:?}, which {why}")]
    Layer {
        /// The layer.
        digest: Digest,
        /// Its media type.
        media_type: String,
        /// Why it cannot be converted.
        why: &'static str,
    },
    /// The config blob is not a JSON image config.
    #[error("the config blob is not an image config: {0}")]
    Config(String),
}

/// A converted image manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// The new manifest's bytes.
    pub manifest: Vec<u8>,
    /// Its media type.
    pub media_type: &'static str,
    /// A config blob the conversion made (Docker → OCI), with its descriptor; `None` when the
    /// source's config blob is used as it is.
    pub new_config: Option<(Descriptor, Vec<u8>)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InManifest {
    #[serde(default)]
    media_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// A Docker schema 2 descriptor, in Go's field order.
#[derive(Serialize)]
struct Schema2Descriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    size: u64,
    digest: &'a Digest,
    #[serde(skip_serializing_if = "Option::is_none")]
    urls: Option<&'a Vec<String>>,
}

#[derive(Serialize)]
struct Schema2<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: Schema2Descriptor<'a>,
    layers: Vec<Schema2Descriptor<'a>>,
}

/// An OCI descriptor, in Go's field order.
#[derive(Serialize)]
struct OciDescriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    digest: &'a Digest,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    urls: Option<&'a Vec<String>>,
}

#[derive(Serialize)]
struct Oci<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: OciDescriptor<'a>,
    layers: Vec<OciDescriptor<'a>>,
}

/// JSON as Go's `encoding/json` writes it: compact, with `<`, `>`, `&`, U+2028 and U+2029
/// escaped (they can only occur inside strings, so replacing them is exact).
pub(crate) fn go_json<T: Serialize>(value: &T) -> Result<Vec<u8>, ConvertError> {
    let s = serde_json::to_string(value).map_err(|e| ConvertError::Config(e.to_string()))?;
    Ok(s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
        .into_bytes())
}

fn parse(bytes: &[u8], expected: &'static str) -> Result<InManifest, ConvertError> {
    let m: InManifest =
        serde_json::from_slice(bytes).map_err(|e| ConvertError::NotConvertible {
            expected,
            why: e.to_string(),
        })?;
    if let Some(mt) = &m.media_type
        && mt != expected
    {
        return Err(ConvertError::NotConvertible {
            expected,
            why: format!("its mediaType is {mt}"),
        });
    }
    Ok(m)
}

/// An OCI image manifest as Docker schema 2. The config blob is unchanged.
pub fn oci_to_docker(manifest: &[u8]) -> Result<Converted, ConvertError> {
    let m = parse(manifest, OCI_MANIFEST)?;
    if m.config.media_type != OCI_CONFIG {
        return Err(ConvertError::NotConvertible {
            expected: OCI_MANIFEST,
            why: format!(
                "its config has media type {:?}, so it is an artifact, not an image; Docker schema 2 holds only images",
                m.config.media_type
            ),
        });
    }
    let mut layers = Vec::with_capacity(m.layers.len());
    for l in &m.layers {
        let media_type = match l.media_type.as_str() {
            OCI_LAYER => DOCKER_LAYER,
            OCI_LAYER_GZIP => DOCKER_LAYER_GZIP,
            OCI_FOREIGN => DOCKER_FOREIGN,
            OCI_FOREIGN_GZIP => DOCKER_FOREIGN_GZIP,
            OCI_LAYER_ZSTD | OCI_FOREIGN_ZSTD => {
                return Err(ConvertError::Layer {
                    digest: l.digest.clone(),
                    media_type: l.media_type.clone(),
                    why: "is zstd-compressed, and Docker images have no zstd layers",
                });
            }
            other if other.contains("+encrypted") => {
                return Err(ConvertError::Layer {
                    digest: l.digest.clone(),
                    media_type: l.media_type.clone(),
                    why: "is encrypted, and Docker images have no encrypted layers",
                });
            }
            _ => {
                return Err(ConvertError::Layer {
                    digest: l.digest.clone(),
                    media_type: l.media_type.clone(),
                    why: "is not a layer type ferry knows how to convert",
                });
            }
        };
        layers.push(Schema2Descriptor {
            media_type,
            size: l.size,
            digest: &l.digest,
            urls: l.urls.as_ref(),
        });
    }
    let out = Schema2 {
        schema_version: 2,
        media_type: DOCKER_V2S2,
        config: Schema2Descriptor {
            media_type: DOCKER_CONFIG,
            size: m.config.size,
            digest: &m.config.digest,
            urls: None,
        },
        layers,
    };
    Ok(Converted {
        manifest: go_json(&out)?,
        media_type: DOCKER_V2S2,
        new_config: None,
    })
}

/// A Docker schema 2 image manifest naming `config` and `layers` (their media types, sizes,
/// digests and URLs as given), encoded as containers/image encodes one: for a copy that changes
/// layers (recompression) and so writes a new manifest.
pub(crate) fn docker_image_manifest<'a>(
    config: &'a Descriptor,
    layers: &'a [Descriptor],
) -> Result<Vec<u8>, ConvertError> {
    let descriptor = |d: &'a Descriptor| Schema2Descriptor {
        media_type: &d.media_type,
        size: d.size,
        digest: &d.digest,
        urls: d.urls.as_ref(),
    };
    let out = Schema2 {
        schema_version: 2,
        media_type: DOCKER_V2S2,
        config: descriptor(config),
        layers: layers.iter().map(descriptor).collect(),
    };
    go_json(&out)
}

/// The OCI image-spec `ImageConfig`, in Go's field order.
#[derive(Serialize, Deserialize, Default)]
struct OciImageConfig {
    #[serde(
        rename = "User",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    user: String,
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    env: Option<Vec<String>>,
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    cmd: Option<Vec<String>>,
    #[serde(rename = "Volumes", default, skip_serializing_if = "Option::is_none")]
    volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    working_dir: String,
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    labels: Option<BTreeMap<String, String>>,
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    stop_signal: String,
    #[serde(
        rename = "ArgsEscaped",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    args_escaped: bool,
}

impl OciImageConfig {
    fn is_zero(&self) -> bool {
        self.user.is_empty()
            && self.exposed_ports.is_none()
            && self.env.is_none()
            && self.entrypoint.is_none()
            && self.cmd.is_none()
            && self.volumes.is_none()
            && self.working_dir.is_empty()
            && self.labels.is_none()
            && self.stop_signal.is_empty()
            && !self.args_escaped
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Go's decoding leaves a field at its zero value for a JSON `null`; serde's `default` does not
/// cover `null`, so this does.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A time as Go's `time.Time` encodes it (RFC 3339 with nanoseconds, trailing zeros dropped,
/// `Z` for UTC), so a config decoded and encoded again as containers/image does gets the same
/// bytes. A value that is not RFC 3339 is kept as it is (Go would refuse the config).
fn go_time<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<String>::deserialize(d)?.map(|s| {
        chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| {
                let frac = t.format("%.9f").to_string();
                let frac = frac.trim_end_matches('0').trim_end_matches('.').to_string();
                let zone = if t.offset().local_minus_utc() == 0 {
                    "Z".to_string()
                } else {
                    t.format("%:z").to_string()
                };
                format!("{}{frac}{zone}", t.format("%Y-%m-%dT%H:%M:%S"))
            })
            .unwrap_or(s)
    }))
}

#[derive(Serialize, Deserialize, Default)]
struct OciRootFs {
    #[serde(rename = "type", default, deserialize_with = "null_default")]
    kind: String,
    #[serde(default)]
    diff_ids: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Default)]
struct OciHistory {
    #[serde(
        default,
        deserialize_with = "go_time",
        skip_serializing_if = "Option::is_none"
    )]
    created: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    created_by: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    author: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    comment: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    empty_layer: bool,
}

/// The image-spec `Platform` fields, in Go's order: inline in the OCI `Image` and the
/// platform of an entry in either list format.
#[derive(Serialize, Deserialize, Default, Clone)]
struct PlatformFields {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    os_version: String,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    os_features: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    variant: String,
}

/// The OCI image-spec `Image` (with its inline `Platform`), in Go's field order.
#[derive(Serialize, Deserialize, Default)]
struct OciImage {
    #[serde(
        default,
        deserialize_with = "go_time",
        skip_serializing_if = "Option::is_none"
    )]
    created: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    author: String,
    #[serde(flatten)]
    platform: PlatformFields,
    // `omitzero` in the image-spec skopeo vendors now: an all-empty config is left out.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "OciImageConfig::is_zero"
    )]
    config: OciImageConfig,
    #[serde(default, deserialize_with = "null_default")]
    rootfs: OciRootFs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    history: Option<Vec<OciHistory>>,
}

/// A Docker schema 2 image manifest as OCI, with its config blob `config` (the bytes the
/// manifest's config descriptor names) rewritten to the OCI image config.
pub fn docker_to_oci(manifest: &[u8], config: &[u8]) -> Result<Converted, ConvertError> {
    let m = parse(manifest, DOCKER_V2S2)?;
    let image: OciImage =
        serde_json::from_slice(config).map_err(|e| ConvertError::Config(e.to_string()))?;
    let config_bytes = go_json(&image)?;
    let config_desc = Descriptor {
        media_type: OCI_CONFIG.to_string(),
        digest: Digest::sha256_of(&config_bytes),
        size: config_bytes.len() as u64,
        urls: None,
        annotations: None,
        platform: None,
    };
    let mut layers = Vec::with_capacity(m.layers.len());
    for l in &m.layers {
        let media_type = match l.media_type.as_str() {
            DOCKER_LAYER => OCI_LAYER,
            DOCKER_LAYER_GZIP => OCI_LAYER_GZIP,
            DOCKER_FOREIGN => OCI_FOREIGN,
            DOCKER_FOREIGN_GZIP => OCI_FOREIGN_GZIP,
            _ => {
                return Err(ConvertError::Layer {
                    digest: l.digest.clone(),
                    media_type: l.media_type.clone(),
                    why: "is not a Docker layer type ferry knows how to convert",
                });
            }
        };
        layers.push(OciDescriptor {
            media_type,
            digest: &l.digest,
            size: l.size,
            urls: l.urls.as_ref(),
        });
    }
    let out = Oci {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        config: OciDescriptor {
            media_type: OCI_CONFIG,
            digest: &config_desc.digest,
            size: config_desc.size,
            urls: None,
        },
        layers,
    };
    Ok(Converted {
        manifest: go_json(&out)?,
        media_type: OCI_MANIFEST,
        new_config: Some((config_desc, config_bytes)),
    })
}

/// A list entry's platform, with the fields of both formats, in Go's order.
#[derive(Serialize, Deserialize, Default, Clone)]
struct ListPlatform {
    #[serde(flatten)]
    fields: PlatformFields,
    /// Docker only (removed in OCI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    features: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InListEntry {
    #[serde(default)]
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default)]
    urls: Option<Vec<String>>,
    #[serde(default)]
    platform: Option<ListPlatform>,
}

#[derive(Deserialize)]
struct InList {
    manifests: Vec<InListEntry>,
}

#[derive(Serialize)]
struct Schema2ListEntry<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    size: u64,
    digest: &'a Digest,
    #[serde(skip_serializing_if = "Option::is_none")]
    urls: Option<&'a Vec<String>>,
    platform: ListPlatform,
}

#[derive(Serialize)]
struct Schema2List<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    manifests: Vec<Schema2ListEntry<'a>>,
}

#[derive(Serialize)]
struct OciIndexEntry<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    digest: &'a Digest,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    urls: Option<&'a Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<ListPlatform>,
}

#[derive(Serialize)]
struct OciIndex<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    manifests: Vec<OciIndexEntry<'a>>,
}

/// What became of one instance of a list: its new digest, size and media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceUpdate {
    /// The converted instance's digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
}

/// A list of images (Docker manifest list or OCI index) in the other list format
/// (`to_oci`: an OCI index; else a Docker manifest list), with each converted instance's entry
/// updated from `updates` (keyed by the instance's old digest), as containers/image's
/// `ToOCI1Index` / `ToSchema2List`: entry annotations are dropped in a Docker list, Docker's
/// platform `features` in an OCI index.
pub fn list_to(
    list: &[u8],
    to_oci: bool,
    updates: &BTreeMap<Digest, InstanceUpdate>,
) -> Result<Converted, ConvertError> {
    let expected = if to_oci {
        super::DOCKER_LIST
    } else {
        super::OCI_INDEX
    };
    let parsed: InList =
        serde_json::from_slice(list).map_err(|e| ConvertError::NotConvertible {
            expected,
            why: e.to_string(),
        })?;
    let entries: Vec<(InstanceUpdate, &InListEntry)> = parsed
        .manifests
        .iter()
        .map(|e| {
            let u = updates.get(&e.digest).cloned().unwrap_or(InstanceUpdate {
                digest: e.digest.clone(),
                size: e.size,
                media_type: e.media_type.clone(),
            });
            (u, e)
        })
        .collect();
    let manifest = if to_oci {
        go_json(&OciIndex {
            schema_version: 2,
            media_type: super::OCI_INDEX,
            manifests: entries
                .iter()
                .map(|(u, e)| OciIndexEntry {
                    media_type: &u.media_type,
                    digest: &u.digest,
                    size: u.size,
                    urls: e.urls.as_ref(),
                    platform: e.platform.clone().map(|mut p| {
                        p.features = None;
                        p
                    }),
                })
                .collect(),
        })?
    } else {
        go_json(&Schema2List {
            schema_version: 2,
            media_type: super::DOCKER_LIST,
            manifests: entries
                .iter()
                .map(|(u, e)| Schema2ListEntry {
                    media_type: &u.media_type,
                    size: u.size,
                    digest: &u.digest,
                    urls: e.urls.as_ref(),
                    platform: e.platform.clone().unwrap_or_default(),
                })
                .collect(),
        })?
    };
    Ok(Converted {
        manifest,
        media_type: if to_oci {
            super::OCI_INDEX
        } else {
            super::DOCKER_LIST
        },
        new_config: None,
    })
}

/// An image config as the OCI image-spec `Image` type holds it (fields of other formats
/// dropped), indented with four spaces as skopeo's `inspect --config` prints it.
pub fn oci_config_pretty(config: &[u8]) -> Result<String, ConvertError> {
    let image: OciImage =
        serde_json::from_slice(config).map_err(|e| ConvertError::Config(e.to_string()))?;
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    image
        .serialize(&mut ser)
        .map_err(|e| ConvertError::Config(e.to_string()))?;
    Ok(String::from_utf8_lossy(&buf)
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn oci_to_docker_and_back_changes_media_types_only() {
        let oci = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{D1}","size":10}},"layers":[{{"mediaType":"{OCI_LAYER_GZIP}","digest":"{D2}","size":20,"annotations":{{"a":"b"}}}}],"annotations":{{"x":"y"}}}}"#
        );
        let d = oci_to_docker(oci.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(d.manifest.clone()).unwrap(),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{DOCKER_V2S2}","config":{{"mediaType":"{DOCKER_CONFIG}","size":10,"digest":"{D1}"}},"layers":[{{"mediaType":"{DOCKER_LAYER_GZIP}","size":20,"digest":"{D2}"}}]}}"#
            )
        );
        assert!(d.new_config.is_none());
        let config = br#"{"architecture":"amd64","os":"linux","container":"abc","docker_version":"1","config":{"Hostname":"h","Env":["A=<b>"],"Labels":{"z":"1","a":"2"},"User":null},"rootfs":{"type":"layers","diff_ids":["sha256:33"]},"created":"2024-01-02T03:04:05.000Z","author":null}"#;
        let o = docker_to_oci(&d.manifest, config).unwrap();
        let (desc, bytes) = o.new_config.unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"created":"2024-01-02T03:04:05Z","architecture":"amd64","os":"linux","config":{"Env":["A=\u003cb\u003e"],"Labels":{"a":"2","z":"1"}},"rootfs":{"type":"layers","diff_ids":["sha256:33"]}}"#
        );
        assert_eq!(desc.digest, Digest::sha256_of(&bytes));
        let text = String::from_utf8(o.manifest).unwrap();
        assert!(
            text.starts_with(&format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{}""#,
                desc.digest
            )),
            "{text}"
        );
        assert!(text.contains(OCI_LAYER_GZIP), "{text}");
        // As Go: an all-empty config is omitted (omitzero), nulls are zero values, times are
        // re-encoded with trailing zeros dropped.
        let bare = br#"{"architecture":"arm64","variant":"v8","os":"linux","config":null,"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created":"2024-01-02T03:04:05.500+02:00","empty_layer":null}]}"#;
        let o = docker_to_oci(&d.manifest, bare).unwrap();
        assert_eq!(
            String::from_utf8(o.new_config.unwrap().1).unwrap(),
            r#"{"architecture":"arm64","os":"linux","variant":"v8","rootfs":{"type":"layers","diff_ids":[]},"history":[{"created":"2024-01-02T03:04:05.5+02:00"}]}"#
        );
    }

    #[test]
    fn layers_and_artifacts_without_a_docker_form_are_refused() {
        let zstd = format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{D1}","size":1}},"layers":[{{"mediaType":"{OCI_LAYER_ZSTD}","digest":"{D2}","size":1}}]}}"#
        );
        assert!(
            oci_to_docker(zstd.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("zstd")
        );
        let artifact = format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.example+json","digest":"{D1}","size":1}},"layers":[]}}"#
        );
        assert!(
            oci_to_docker(artifact.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("artifact")
        );
        assert!(docker_to_oci(artifact.as_bytes(), b"{}").is_err());
    }
}
