//! The plan: which manifests a copy reads and writes. For an image, the image; for a list, the
//! chosen instance (the system's platform, or the one asked for), or with `All` every instance
//! and then the list itself. Instance digests are checked against the list here.

use crate::digest::Digest;
use crate::manifest::{self, Descriptor, Manifest, ManifestError, PlatformSpec};
use crate::policy::ManifestRole;
use crate::reference::ImageReference;
use crate::transport::{ImageSource, RawManifest};

use super::{CopyError, ImageSelection};

/// One manifest the copy will write.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Its exact bytes.
    pub raw: RawManifest,
    /// Its digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Set for an instance written beside its list; `None` for what becomes the top level.
    pub dest_instance: Option<Digest>,
    /// Set when the source knows this manifest as an instance of a list.
    pub src_instance: Option<Digest>,
    /// The platform, for an instance of a list.
    pub platform: Option<String>,
    /// Its blobs (config and layers; none for a list).
    pub blobs: Vec<Descriptor>,
    /// Image or list, for the gate.
    pub role: ManifestRole,
}

fn media_type_of(raw: &RawManifest, m: &Manifest) -> String {
    raw.media_type
        .clone()
        .unwrap_or_else(|| m.kind().media_type().to_string())
}

fn platform_text(p: &crate::manifest::Platform) -> String {
    let mut s = format!("{}/{}", p.os, p.architecture);
    if let Some(v) = &p.variant {
        s.push('/');
        s.push_str(v);
    }
    s
}

/// The blobs of an image, refusing a config larger than containers/image reads (a manifest can
/// claim any size; the cap is checked before a byte is downloaded).
fn blobs_of(
    what: &str,
    img: &crate::manifest::ImageManifest,
) -> Result<Vec<Descriptor>, CopyError> {
    if img.config.size > crate::limits::MAX_CONFIG_BLOB {
        return Err(CopyError::Manifest {
            what: what.to_string(),
            source: ManifestError::Unknown(format!(
                "its config blob {} claims {} bytes, more than the {}-byte limit for a config",
                img.config.digest,
                img.config.size,
                crate::limits::MAX_CONFIG_BLOB
            )),
        });
    }
    Ok(img.blobs().into_iter().cloned().collect())
}

/// Reads the manifests the copy will write; instances before the list, the top level last.
pub async fn plan(
    src: &ImageReference,
    source: &dyn ImageSource,
    selection: &ImageSelection,
) -> Result<Vec<Planned>, CopyError> {
    let src_name = src.to_string();
    let source_err = |source| CopyError::Source {
        reference: src_name.clone(),
        source,
    };
    let top = source.manifest(None).await.map_err(source_err)?;
    let top_digest = Digest::sha256_of(&top.bytes);
    let parsed = manifest::parse(&top.bytes, top.media_type.as_deref()).map_err(|source| {
        CopyError::Manifest {
            what: format!("manifest of {src_name}"),
            source,
        }
    })?;
    let list = match parsed {
        Manifest::Image(_, ref img) => {
            return Ok(vec![Planned {
                media_type: media_type_of(&top, &parsed),
                blobs: blobs_of(&format!("manifest of {src_name}"), img)?,
                raw: top,
                digest: top_digest,
                dest_instance: None,
                src_instance: None,
                platform: None,
                role: ManifestRole::Image,
            }]);
        }
        Manifest::List(_, ref list) => list.clone(),
    };
    let chosen: Vec<&Descriptor> = match selection {
        ImageSelection::All => list.manifests.iter().collect(),
        ImageSelection::System | ImageSelection::Platform(_) => {
            let want = match selection {
                ImageSelection::Platform(p) => p.clone(),
                _ => PlatformSpec::current(),
            };
            match want.choose(&list) {
                Some(d) => vec![d],
                None => {
                    let available = list
                        .manifests
                        .iter()
                        .filter_map(|d| d.platform.as_ref())
                        .map(platform_text)
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(CopyError::NoPlatform {
                        reference: src_name,
                        platform: want.to_string(),
                        available,
                    });
                }
            }
        }
    };
    let all = matches!(selection, ImageSelection::All);
    let mut out = Vec::new();
    for d in chosen {
        let what = format!("{src_name} instance {}", d.digest);
        let raw = source.manifest(Some(&d.digest)).await.map_err(source_err)?;
        let actual = d.digest.of_same_algorithm(&raw.bytes);
        if actual != d.digest {
            return Err(CopyError::ManifestDigest {
                what,
                expected: d.digest.clone(),
                actual,
            });
        }
        let parsed = manifest::parse(
            &raw.bytes,
            raw.media_type.as_deref().or(Some(&d.media_type)),
        )
        .map_err(|source| CopyError::Manifest {
            what: what.clone(),
            source,
        })?;
        let Manifest::Image(_, img) = &parsed else {
            return Err(CopyError::Manifest {
                what,
                source: ManifestError::Unknown("a list inside a list is not supported".into()),
            });
        };
        out.push(Planned {
            media_type: media_type_of(&raw, &parsed),
            blobs: blobs_of(&what, img)?,
            digest: d.digest.clone(),
            dest_instance: all.then(|| d.digest.clone()),
            src_instance: Some(d.digest.clone()),
            platform: d.platform.as_ref().map(platform_text),
            raw,
            role: ManifestRole::Image,
        });
    }
    if all {
        out.push(Planned {
            media_type: media_type_of(&top, &parsed),
            raw: top,
            digest: top_digest,
            dest_instance: None,
            src_instance: None,
            platform: None,
            blobs: vec![],
            role: ManifestRole::List,
        });
    }
    Ok(out)
}
