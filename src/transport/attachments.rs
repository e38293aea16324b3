//! Sigstore (cosign) signature attachments: the OCI image manifest tagged `sha256-HEX.sig`
//! beside an image, one layer per signature (the payload as the blob, the signature and any
//! certificate or Rekor bundle as annotations), as cosign and containers/image write them in
//! registries, and as `cosign save` lays them out in an OCI layout.
//!
//! Reading turns each layer into a [`SignatureSlot`] holding containers/image's blob form of
//! the signature (`0x00 sigstore-json \n` + JSON), so a sigstore signature travels through the
//! gate, the modes, `dir:` and the store exactly as a simple-signing one does. Writing merges new
//! signatures into the existing attachment (keeping the ones already there, as cosign does).

use std::collections::BTreeMap;
use std::future::Future;

use oci_client::manifest::{OciDescriptor, OciImageManifest};

use crate::digest::Digest;
use crate::manifest::{self, Descriptor, Manifest};
use crate::signature::sigstore::{SIGNATURE_MIME_TYPE, SigstoreSignature};
use crate::signature::{MAX_SIGNATURE_SIZE, SignatureSlot, SlotReadError, SlotReadErrorKind};

/// Signatures to write, split by where a destination keeps them, as containers/image splits
/// them: sigstore signatures as layers of the `.sig` attachment, sigstore bundles as referrers
/// (cosign 3), simple signing ones in the signature extension, lookaside or files.
#[derive(Default)]
pub struct Split {
    /// Sigstore signatures for the `.sig` attachment.
    pub sigstore: Vec<SigstoreSignature>,
    /// Sigstore bundles.
    pub bundles: Vec<SigstoreSignature>,
    /// Simple signing signatures, as given.
    pub simple: Vec<Vec<u8>>,
}

/// Splits `signatures` (containers/image blob forms) by kind; a sigstore blob that does not
/// parse is an error.
pub fn split(signatures: &[Vec<u8>]) -> Result<Split, String> {
    let mut out = Split::default();
    for s in signatures {
        match crate::signature::sniff::sniff(s) {
            Ok((crate::signature::sniff::Format::SigstoreJson, json)) => {
                let sig = SigstoreSignature::from_json(json)
                    .map_err(|e| format!("a sigstore signature to write: {e}"))?;
                if crate::signature::sigstore::bundle::is_bundle_media_type(&sig.mime_type) {
                    out.bundles.push(sig);
                } else {
                    out.sigstore.push(sig);
                }
            }
            _ => out.simple.push(s.clone()),
        }
    }
    Ok(out)
}

/// The tag of the signature attachment of the manifest `d`: `sha256-HEX.sig`.
pub fn signature_tag(d: &Digest) -> String {
    format!("{}-{}.sig", d.algorithm().name(), d.hex())
}

/// The media type of an attachment's config blob, as containers/image writes it.
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

fn unreadable(kind: SlotReadErrorKind, message: String) -> Result<Vec<u8>, SlotReadError> {
    Err(SlotReadError { kind, message })
}

/// The signature slots of an attachment manifest (`bytes`, read from `location`): one per layer,
/// numbered from `first_index`. `fetch` reads a layer's blob (capped at the signature limit by
/// the caller's transport, and checked against its digest here). A layer that is not a cosign
/// signature, or whose blob cannot be read, is an unreadable slot saying why; a slot never hides
/// the others.
pub async fn read_slots<F, Fut>(
    bytes: &[u8],
    location: &str,
    first_index: usize,
    fetch: F,
) -> Result<Vec<SignatureSlot>, manifest::ManifestError>
where
    F: Fn(Descriptor) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, String>>,
{
    let layers = match manifest::parse(bytes, None)? {
        Manifest::Image(_, m) => m.layers,
        Manifest::List(..) => {
            return Err(manifest::ManifestError::Unknown(
                "a signature attachment is an image manifest, not a list".into(),
            ));
        }
    };
    let mut out = Vec::with_capacity(layers.len());
    for (i, layer) in layers.into_iter().enumerate() {
        let index = first_index + i;
        let here = format!("{location} layer {} ({})", i + 1, layer.digest);
        let content = if layer.media_type != SIGNATURE_MIME_TYPE {
            unreadable(
                SlotReadErrorKind::Io,
                format!(
                    "the attachment layer has media type {:?}, not a cosign signature ({SIGNATURE_MIME_TYPE})",
                    layer.media_type
                ),
            )
        } else if layer.size > MAX_SIGNATURE_SIZE as u64 {
            unreadable(
                SlotReadErrorKind::TooLarge,
                format!(
                    "the attachment layer claims {} bytes; exceeded maximum allowed size of {MAX_SIGNATURE_SIZE} bytes",
                    layer.size
                ),
            )
        } else {
            match fetch(layer.clone()).await {
                Err(e) => unreadable(SlotReadErrorKind::Io, e),
                Ok(payload) if !layer.digest.matches(&payload) => unreadable(
                    SlotReadErrorKind::Io,
                    format!(
                        "the payload blob does not match its digest (it hashes to {})",
                        layer.digest.of_same_algorithm(&payload)
                    ),
                ),
                Ok(payload) => Ok(SigstoreSignature {
                    mime_type: layer.media_type.clone(),
                    payload,
                    annotations: layer.annotations.clone().unwrap_or_default(),
                }
                .to_blob()),
            }
        };
        out.push(SignatureSlot {
            index,
            location: here,
            content,
        });
    }
    Ok(out)
}

/// An attachment manifest to write: its bytes, and the blobs it names that must be present
/// (the payloads and the config).
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The manifest's bytes (an OCI image manifest).
    pub manifest: Vec<u8>,
    /// Blobs the manifest names, with their bytes: the config, then every payload.
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
}

fn descriptor(
    media_type: &str,
    bytes: &[u8],
    annotations: Option<BTreeMap<String, String>>,
) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: Digest::sha256_of(bytes),
        size: bytes.len() as u64,
        urls: None,
        annotations,
        platform: None,
    }
}

fn oci(d: &Descriptor) -> OciDescriptor {
    OciDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.to_string(),
        size: d.size as i64,
        urls: None,
        artifact_type: None,
        annotations: d
            .annotations
            .as_ref()
            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
    }
}

/// The layers of a merged attachment, and the new payloads (with their descriptors) to upload.
pub type Merged = (Vec<Descriptor>, Vec<(Descriptor, Vec<u8>)>);

/// The layers of the attachment that holds the signatures of `existing` (the current
/// attachment manifest's layers, kept first and in order) and then each of `new` that is not
/// already there (same payload and annotations), with the payloads to upload for the new ones.
/// `None` when nothing new is to be added.
pub fn merge(
    existing: Option<&[u8]>,
    new: &[SigstoreSignature],
) -> Result<Option<Merged>, manifest::ManifestError> {
    let mut layers: Vec<Descriptor> = match existing {
        None => vec![],
        Some(bytes) => match manifest::parse(bytes, None)? {
            Manifest::Image(_, m) => m.layers,
            Manifest::List(..) => vec![],
        },
    };
    let mut added = Vec::new();
    for sig in new {
        let annotations = Some(sig.annotations.clone()).filter(|a| !a.is_empty());
        let d = descriptor(&sig.mime_type, &sig.payload, annotations);
        let present = layers
            .iter()
            .any(|l| l.digest == d.digest && l.annotations == d.annotations);
        if !present {
            layers.push(d.clone());
            added.push((d, sig.payload.clone()));
        }
    }
    if added.is_empty() {
        return Ok(None);
    }
    Ok(Some((layers, added)))
}

/// The attachment manifest for `layers`, with its config (listing the layers' digests as
/// containers/image does), built on oci-client's OCI manifest types.
pub fn build(layers: &[Descriptor]) -> Result<Attachment, serde_json::Error> {
    let config_bytes = serde_json::to_vec(&serde_json::json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>(),
        },
    }))?;
    let config = descriptor(CONFIG_MEDIA_TYPE, &config_bytes, None);
    let m = OciImageManifest {
        schema_version: 2,
        media_type: Some(manifest::OCI_MANIFEST.to_string()),
        config: oci(&config),
        layers: layers.iter().map(oci).collect(),
        subject: None,
        artifact_type: None,
        annotations: None,
    };
    Ok(Attachment {
        manifest: serde_json::to_vec(&m)?,
        blobs: vec![(config, config_bytes)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(n: u8, annotation: &str) -> SigstoreSignature {
        SigstoreSignature {
            mime_type: SIGNATURE_MIME_TYPE.into(),
            payload: vec![b'{', n, b'}'],
            annotations: [(
                "dev.cosignproject.cosign/signature".to_string(),
                annotation.to_string(),
            )]
            .into(),
        }
    }

    #[tokio::test]
    async fn an_attachment_round_trips_and_merging_keeps_the_old_and_skips_duplicates() {
        let (layers, added) = merge(None, &[sig(1, "a"), sig(2, "b")]).unwrap().unwrap();
        assert_eq!(added.len(), 2);
        let a = build(&layers).unwrap();
        let payloads: BTreeMap<Digest, Vec<u8>> = added
            .iter()
            .map(|(d, b)| (d.digest.clone(), b.clone()))
            .collect();
        let slots = read_slots(&a.manifest, "attachment", 1, |d| {
            let p = payloads.get(&d.digest).cloned();
            async move { p.ok_or_else(|| "missing".to_string()) }
        })
        .await
        .unwrap();
        assert_eq!(slots.len(), 2);
        for (s, want) in slots.iter().zip([sig(1, "a"), sig(2, "b")]) {
            assert_eq!(s.content.as_ref().unwrap(), &want.to_blob());
        }
        // Merging the same again adds nothing; a new one is appended after the old.
        assert!(merge(Some(&a.manifest), &[sig(2, "b")]).unwrap().is_none());
        let (layers2, added2) = merge(Some(&a.manifest), &[sig(2, "b"), sig(3, "c")])
            .unwrap()
            .unwrap();
        assert_eq!(layers2.len(), 3);
        assert_eq!(added2.len(), 1);
        assert_eq!(layers2[..2], layers[..]);
    }

    #[tokio::test]
    async fn broken_layers_are_unreadable_slots_that_say_why() {
        let mut other = sig(9, "x");
        other.mime_type = "text/html".into();
        let (layers, _) = merge(None, &[sig(1, "a"), other, sig(2, "b")])
            .unwrap()
            .unwrap();
        let a = build(&layers).unwrap();
        let slots = read_slots(&a.manifest, "att", 5, |d| async move {
            if d.size == 3 && d.digest == Digest::sha256_of(&[b'{', 2, b'}']) {
                Err("404 blob unknown".to_string())
            } else {
                Ok(b"<html>".to_vec())
            }
        })
        .await
        .unwrap();
        assert_eq!(slots[0].index, 5);
        assert!(
            slots[0]
                .content
                .as_ref()
                .unwrap_err()
                .message
                .contains("does not match its digest")
        );
        assert!(
            slots[1]
                .content
                .as_ref()
                .unwrap_err()
                .message
                .contains("text/html")
        );
        assert!(
            slots[2]
                .content
                .as_ref()
                .unwrap_err()
                .message
                .contains("404")
        );
    }
}
