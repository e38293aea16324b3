//! One opened image as the proxy serves it: the gate's [`AdmittedImage`] and the views a client
//! asks for, made from it once and kept (the manifest as OCI, the config as containers/image
//! encodes it, the layers' list). A blob can only be read through the admitted image, and only
//! if the admitted manifest names it: what the gate judged is what the client gets.

use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use serde::Serialize;
use tokio::sync::OnceCell;

use super::{MethodError, stall};
use crate::copy::AdmittedImage;
use crate::copy::plan::Planned;
use crate::digest::{ByteStream, Digest};
use crate::manifest::convert;
use crate::manifest::{self, Descriptor, ImageManifest, Manifest, ManifestKind};

/// An image the client opened, admitted by the gate.
pub(crate) struct ProxyImage {
    admitted: AdmittedImage,
    /// The image the client reads: the only image, or the platform's instance of a list.
    image: Planned,
    kind: ManifestKind,
    parsed: ImageManifest,
    oci: OnceCell<OciForm>,
    config: OnceCell<Bytes>,
    /// The stall timeout every read of a blob is bounded by ([`super::stall`]).
    stall: Duration,
}

/// The manifest as OCI, and the config blob a conversion made (Docker schema 2 images).
struct OciForm {
    manifest: Bytes,
    made_config: Option<(Descriptor, Bytes)>,
}

/// Where a blob the client asked for comes from.
pub(crate) enum BlobSource {
    /// Read from the source, verified against this descriptor as it streams.
    Source(Descriptor),
    /// Made by the proxy (the OCI config of a converted Docker image).
    Made(Descriptor, Bytes),
}

impl BlobSource {
    /// The blob's descriptor.
    pub(crate) fn descriptor(&self) -> &Descriptor {
        match self {
            BlobSource::Source(d) | BlobSource::Made(d, _) => d,
        }
    }
}

/// One layer as `GetLayerInfo` describes it (skopeo's `convertedLayerInfo`).
#[derive(Debug, Serialize)]
pub(crate) struct LayerInfo<'a> {
    digest: &'a Digest,
    size: u64,
    media_type: &'a str,
}

impl ProxyImage {
    /// The client's view of an admitted image, its blobs read within the stall timeout `stall`.
    pub(crate) fn new(admitted: AdmittedImage, stall: Duration) -> Result<ProxyImage, MethodError> {
        let reference = admitted.reference().to_string();
        let image = admitted
            .image()
            .cloned()
            .ok_or_else(|| MethodError::NoImageInPlan {
                reference: reference.clone(),
            })?;
        let parsed = manifest::parse(&image.raw.bytes, image.raw.media_type.as_deref()).map_err(
            |source| MethodError::Manifest {
                reference: reference.clone(),
                source,
            },
        )?;
        let (kind, parsed) = match parsed {
            Manifest::Image(kind, m) => (kind, *m),
            Manifest::List(..) => {
                return Err(MethodError::NoImageInPlan { reference });
            }
        };
        Ok(ProxyImage {
            admitted,
            image,
            kind,
            parsed,
            oci: OnceCell::new(),
            config: OnceCell::new(),
            stall,
        })
    }

    /// The admitted image.
    pub(crate) fn admitted(&self) -> &AdmittedImage {
        &self.admitted
    }

    /// The digest of the image's own manifest (for a list, the chosen instance's), as the
    /// source has it.
    pub(crate) fn digest(&self) -> &Digest {
        &self.image.digest
    }

    /// The manifest converted to OCI (an OCI manifest is given as it is, byte for byte).
    pub(crate) async fn oci_manifest(&self) -> Result<Bytes, MethodError> {
        Ok(self.oci().await?.manifest.clone())
    }

    async fn oci(&self) -> Result<&OciForm, MethodError> {
        self.oci
            .get_or_try_init(|| async {
                match self.kind {
                    ManifestKind::OciManifest => Ok(OciForm {
                        manifest: self.image.raw.bytes.clone(),
                        made_config: None,
                    }),
                    ManifestKind::DockerV2S2 => {
                        let config = self.config_blob().await?;
                        let converted = convert::docker_to_oci(&self.image.raw.bytes, &config)
                            .map_err(|source| MethodError::Conversion {
                                digest: self.image.digest.clone(),
                                source,
                            })?;
                        Ok(OciForm {
                            manifest: Bytes::from(converted.manifest),
                            made_config: converted
                                .new_config
                                .map(|(d, bytes)| (d, Bytes::from(bytes))),
                        })
                    }
                    other => Err(MethodError::UnsupportedManifest {
                        media_type: other.media_type().to_string(),
                    }),
                }
            })
            .await
    }

    /// Reads the config blob now, so that `GetFullConfig` (which every client asks right after
    /// the manifest) finds it read rather than waiting behind the layers' read-ahead.
    pub(crate) async fn prefetch_config(&self) -> Result<(), MethodError> {
        self.config_blob().await.map(drop)
    }

    /// The config blob as the source has it, verified, read once.
    async fn config_blob(&self) -> Result<Bytes, MethodError> {
        self.config
            .get_or_try_init(|| async {
                let desc = &self.parsed.config;
                let stream = stall::open(self.stall, self.admitted.blob(desc))
                    .await
                    .map_err(|source| MethodError::Blob {
                        digest: desc.digest.clone(),
                        source: Box::new(source),
                    })?;
                // The plan refused configs above the limit before a byte was read, and the
                // stream ends in an error past the descriptor's size.
                let chunks: Vec<Bytes> =
                    stream.try_collect().await.map_err(|e| MethodError::Blob {
                        digest: desc.digest.clone(),
                        source: Box::new(crate::transport::TransportError::source_stream(e)),
                    })?;
                Ok(Bytes::from(chunks.concat()))
            })
            .await
            .cloned()
    }

    /// The image config as the OCI image-spec `Image` type, encoded as containers/image encodes
    /// it (what skopeo's `GetFullConfig` answers): fields of other formats dropped.
    pub(crate) async fn full_config(&self) -> Result<Vec<u8>, MethodError> {
        let config = self.config_blob().await?;
        let pretty =
            convert::oci_config_pretty(&config).map_err(|source| MethodError::Conversion {
                digest: self.parsed.config.digest.clone(),
                source,
            })?;
        Ok(compact_json(pretty.as_bytes()))
    }

    /// The `config` member of [`ProxyImage::full_config`] (the runtime settings), `{}` when it
    /// has none: skopeo's deprecated `GetConfig`.
    pub(crate) async fn runtime_config(&self) -> Result<Vec<u8>, MethodError> {
        let full = self.full_config().await?;
        Ok(top_level_member(&full, "config")
            .map(<[u8]>::to_vec)
            .unwrap_or_else(|| b"{}".to_vec()))
    }

    /// The layers' descriptors, in the manifest's order.
    pub(crate) fn layers(&self) -> &[Descriptor] {
        &self.parsed.layers
    }

    /// The layers, as the image's manifest names them.
    pub(crate) fn layer_info(&self) -> Vec<LayerInfo<'_>> {
        self.parsed
            .layers
            .iter()
            .map(|l| LayerInfo {
                digest: &l.digest,
                size: l.size,
                media_type: &l.media_type,
            })
            .collect()
    }

    /// Where the blob `digest` comes from, if the image names it (its config and layers, and
    /// the OCI config made when its Docker manifest was converted).
    pub(crate) async fn blob_source(&self, digest: &Digest) -> Result<BlobSource, MethodError> {
        if let Some(d) = self
            .parsed
            .blobs()
            .into_iter()
            .find(|d| &d.digest == digest)
        {
            return Ok(BlobSource::Source(d.clone()));
        }
        if self.kind == ManifestKind::DockerV2S2
            && let Some((d, bytes)) = &self.oci().await?.made_config
            && &d.digest == digest
        {
            return Ok(BlobSource::Made(d.clone(), bytes.clone()));
        }
        Err(MethodError::NotInImage {
            digest: digest.clone(),
            image: self.image.digest.clone(),
        })
    }

    /// The blob's bytes from the source, verified as they stream (a mismatch ends the stream in
    /// an error), within the stall timeout.
    pub(crate) async fn blob(&self, source: &BlobSource) -> Result<ByteStream, MethodError> {
        match source {
            BlobSource::Made(_, bytes) => {
                let bytes = bytes.clone();
                Ok(Box::pin(futures::stream::once(async move { Ok(bytes) })))
            }
            BlobSource::Source(d) => stall::open(self.stall, self.admitted.blob(d))
                .await
                .map_err(|source| MethodError::Blob {
                    digest: d.digest.clone(),
                    source: Box::new(source),
                }),
        }
    }
}

/// JSON text without the whitespace between tokens (strings left as they are): what Go's
/// `json.Marshal` writes for the same value.
pub(crate) fn compact_json(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
            out.push(b);
        } else if !b.is_ascii_whitespace() {
            out.push(b);
        }
    }
    out
}

/// The bytes of the value of the member `name` of the top-level object of compact JSON `text`.
fn top_level_member<'a>(text: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let key = format!("\"{name}\":");
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut value_start = None;
    for (i, &b) in text.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => {
                // A key of the top-level object starts right after `{` or `,` at depth 1.
                if depth == 1
                    && value_start.is_none()
                    && i > 0
                    && matches!(text.get(i - 1), Some(b'{') | Some(b','))
                    && text
                        .get(i..)
                        .is_some_and(|rest| rest.starts_with(key.as_bytes()))
                {
                    value_start = Some(i + key.len());
                }
                in_string = true;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                match (value_start, depth) {
                    // The member's object or array value closes.
                    (Some(start), 1) => return text.get(start..=i),
                    // The top-level object closes after a scalar value.
                    (Some(start), 0) => return text.get(start..i),
                    _ => {}
                }
            }
            b',' if depth == 1 => {
                if let Some(start) = value_start {
                    return text.get(start..i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_json_keeps_strings_whole() {
        let pretty = b"{\n    \"a\": \"x y\\\" z\",\n    \"b\": [\n        1,\n        2\n    ]\n}";
        assert_eq!(
            compact_json(pretty),
            br#"{"a":"x y\" z","b":[1,2]}"#.to_vec()
        );
    }

    #[test]
    fn a_top_level_member_is_found_whole_and_only_at_the_top() {
        let text = br#"{"architecture":"amd64","rootfs":{"config":1},"config":{"Env":["A=\"}"]},"history":[]}"#;
        assert_eq!(
            top_level_member(text, "config"),
            Some(&br#"{"Env":["A=\"}"]}"#[..])
        );
        assert_eq!(
            top_level_member(br#"{"config":{"User":"x"}}"#, "config"),
            Some(&br#"{"User":"x"}"#[..])
        );
        assert_eq!(
            top_level_member(br#"{"os":"linux","rootfs":{"config":{}}}"#, "config"),
            None
        );
        assert_eq!(
            top_level_member(br#"{"a":1,"config":7}"#, "config"),
            Some(&b"7"[..])
        );
    }
}
