//! Where an OCI layout keeps an image's sigstore signatures and the artifacts attached to it, as
//! ferry's `oci:` lays them out (cosign's `sha256-HEX.sig` attachment and `.att`/`.sbom` tags as
//! named `index.json` entries; OCI 1.1 referrers as unnamed entries carrying
//! [`super::ATTACHED_ANNOTATION`]), whether the layout is a directory (`oci:`) or a tar
//! (`oci-archive:`). Both transports read and write them through this one piece, so an image
//! carried through an archive keeps exactly what a layout keeps.
//!
//! Reading goes through [`LayoutFiles`] (the index and small blobs, wherever they are);
//! writing is [`Additions`]: the blobs and `index.json` entries a write adds, which each
//! transport then puts in its own place.

use bytes::Bytes;
use serde_json::Value;

use super::{index_descriptor, is_attached_entry, referrer_descriptor};
use crate::digest::Digest;
use crate::manifest::Descriptor;
use crate::transport::referrers::{self, Attached, ReferrerEntry, Referrers, Via};
use crate::transport::{RawManifest, Result, SignatureSet, TransportError, attachments};

/// An OCI layout's index and small blobs, wherever they are kept.
#[async_trait::async_trait]
pub(crate) trait LayoutFiles: Send + Sync {
    /// Where the layout is, for messages (a directory, or an archive file).
    fn place(&self) -> String;

    /// The `index.json` entries, each with its `org.opencontainers.image.ref.name`.
    fn entries(&self) -> Result<Vec<(Option<String>, Descriptor)>>;

    /// A manifest blob, checked against its digest.
    async fn manifest_blob(&self, digest: &Digest) -> Result<Bytes>;

    /// A small blob (a signature's payload), at most `limit` bytes; the readers of signatures
    /// check it against its digest.
    async fn small_blob(
        &self,
        descriptor: Descriptor,
        limit: u64,
    ) -> std::result::Result<Vec<u8>, String>;
}

/// The entry named `name`.
fn named<'e>(entries: &'e [(Option<String>, Descriptor)], name: &str) -> Option<&'e Descriptor> {
    entries
        .iter()
        .find(|(n, _)| n.as_deref() == Some(name))
        .map(|(_, d)| d)
}

/// The entries that are images (or lists), not something attached to one.
pub(crate) fn images(
    entries: &[(Option<String>, Descriptor)],
) -> Vec<(Option<String>, Descriptor)> {
    entries
        .iter()
        .filter(|(n, d)| !is_attached_entry(n.as_deref(), d))
        .cloned()
        .collect()
}

/// The referrers of `subject` a layout lists: unnamed entries whose manifest names `subject`. A
/// manifest that cannot be read is skipped: it is not known to be a referrer.
pub(crate) async fn referrers_of(
    files: &dyn LayoutFiles,
    entries: &[(Option<String>, Descriptor)],
    subject: &Digest,
) -> Vec<ReferrerEntry> {
    let mut out = Vec::new();
    for (name, d) in entries {
        if name.is_some() {
            continue;
        }
        let Ok(bytes) = files.manifest_blob(&d.digest).await else {
            continue;
        };
        let Ok(a) = Attached::from_manifest(&bytes, Some(&d.media_type), Via::Referrer) else {
            continue;
        };
        if a.subject().as_ref() == Some(subject) {
            out.push(a.index_entry());
        }
    }
    out
}

/// The signatures of the manifest `manifest_digest` a layout keeps (the sigstore attachment
/// `sha256-HEX.sig`, then the referrers as `mode` says), and the other attached artifacts
/// `mode` asks for. A layout has no place for simple signing signatures.
pub(crate) async fn read_signatures(
    files: &dyn LayoutFiles,
    manifest_digest: &Digest,
    mode: Referrers,
) -> Result<SignatureSet> {
    let place = files.place();
    let entries = files.entries()?;
    let tag = attachments::signature_tag(manifest_digest);
    let searched = format!("the sigstore attachment {tag} in {place}");
    let mut set = match named(&entries, &tag) {
        None => SignatureSet::new(vec![], searched),
        Some(entry) => {
            let bytes = files.manifest_blob(&entry.digest).await?;
            let location = format!("{place}:{tag}");
            let slots = attachments::read_slots(&bytes, &location, 1, |d| {
                files.small_blob(d, crate::signature::MAX_SIGNATURE_SIZE as u64)
            })
            .await
            .map_err(|source| TransportError::Manifest {
                what: location.clone(),
                source,
            })?;
            SignatureSet::new(slots, searched)
        }
    };
    if mode == Referrers::None {
        return Ok(set);
    }
    let listed = referrers_of(files, &entries, manifest_digest).await;
    set.searched.push(format!(
        "the referrers of {manifest_digest} in {place} ({} listed)",
        listed.len()
    ));
    let location = format!("{place}@{manifest_digest}");
    let read = referrers::read(
        &listed,
        &location,
        set.slots.len() + 1,
        mode,
        |digest| async move {
            files
                .manifest_blob(&digest)
                .await
                .map(|b| (b.to_vec(), None))
                .map_err(|e| e.to_string())
        },
        |desc| files.small_blob(desc, crate::signature::MAX_SIGNATURE_SIZE as u64),
    )
    .await;
    set.slots.extend(read.slots);
    set.attached.extend(read.attached);
    set.attached_errors.extend(read.errors);
    if mode == Referrers::All {
        for (suffix, kind) in referrers::cosign_artifact_tags() {
            let tag = referrers::cosign_tag(manifest_digest, suffix);
            let Some(entry) = named(&entries, &tag) else {
                continue;
            };
            let read = match files.manifest_blob(&entry.digest).await {
                Ok(b) => Attached::from_cosign_tag(&b, Some(&entry.media_type), suffix, kind),
                Err(e) => Err(e.to_string()),
            };
            set.add_attached(read, format_args!("{place}:{tag}"));
        }
    }
    Ok(set)
}

/// What a write of signatures or attached artifacts adds to a layout: blobs, and `index.json`
/// entries (named: cosign's tags; unnamed: referrers, with [`super::ATTACHED_ANNOTATION`]).
#[derive(Debug, Default)]
pub(crate) struct Additions {
    /// Blobs to write (manifests, configs, payloads), by digest.
    pub blobs: Vec<(Digest, Bytes)>,
    /// Entries for `index.json`, in order, with their names.
    pub entries: Vec<(Option<String>, Value)>,
}

/// What writing `signatures` of the manifest `subject` adds to a layout: sigstore bundles
/// become referrers of `subject` (in cosign's layout; `subject_manifest` gives its bytes), the
/// other sigstore signatures join the attachment `sha256-HEX.sig` (`existing` gives the one the
/// layout has, by its name). Simple signing signatures have no place in a layout: an error.
pub(crate) fn signature_additions(
    subject: &Digest,
    subject_manifest: impl FnOnce() -> Result<Bytes>,
    existing: impl FnOnce(&str) -> Option<Vec<u8>>,
    signatures: &[Vec<u8>],
    place: &str,
) -> Result<Additions> {
    let attachments::Split {
        sigstore,
        bundles,
        simple,
    } = attachments::split(signatures).map_err(TransportError::Unsupported)?;
    if !simple.is_empty() {
        return Err(TransportError::Unsupported(
            "an OCI image layout cannot hold simple signing signatures".into(),
        ));
    }
    let mut out = Additions::default();
    if !bundles.is_empty() {
        let subject_bytes = subject_manifest()?;
        let media_type = crate::manifest::detect(&subject_bytes, None)
            .map(|k| k.media_type().to_string())
            .unwrap_or_else(|_| crate::manifest::OCI_MANIFEST.to_string());
        for sig in &bundles {
            let (manifest, blobs) =
                referrers::bundle_artifact(subject, &media_type, subject_bytes.len() as u64, sig);
            for (d, bytes) in blobs {
                out.blobs.push((d.digest, bytes.into()));
            }
            let a = Attached::from_manifest(
                &manifest,
                Some(crate::manifest::OCI_MANIFEST),
                Via::Referrer,
            )
            .map_err(TransportError::Unsupported)?;
            out.blobs.push((a.digest.clone(), manifest.into()));
            out.entries.push((None, referrer_descriptor(&a, subject)));
        }
    }
    if sigstore.is_empty() {
        return Ok(out);
    }
    let tag = attachments::signature_tag(subject);
    let what = format!("{place}:{tag}");
    let existing = existing(&tag);
    let bad = |source| TransportError::Manifest {
        what: what.clone(),
        source,
    };
    let Some((layers, added)) = attachments::merge(existing.as_deref(), &sigstore).map_err(bad)?
    else {
        return Ok(out);
    };
    let a = attachments::build(&layers)
        .map_err(|e| TransportError::Unsupported(format!("building {what}: {e}")))?;
    for (d, bytes) in added.into_iter().chain(a.blobs) {
        out.blobs.push((d.digest, bytes.into()));
    }
    let raw = RawManifest {
        bytes: a.manifest.into(),
        media_type: Some(crate::manifest::OCI_MANIFEST.to_string()),
    };
    out.blobs
        .push((Digest::sha256_of(&raw.bytes), raw.bytes.clone()));
    out.entries
        .push((Some(tag.clone()), index_descriptor(&raw, Some(&tag))));
    Ok(out)
}

/// What writing artifacts attached to the manifest `subject` adds to a layout (their blobs are
/// written by the copy): referrers as unnamed entries, cosign's `.att`/`.sbom` under their tag.
pub(crate) fn attached_additions(subject: &Digest, attached: &[&Attached]) -> Additions {
    let mut out = Additions::default();
    for a in attached {
        out.blobs.push((a.digest.clone(), a.manifest.bytes.clone()));
        match &a.via {
            Via::Referrer => out.entries.push((None, referrer_descriptor(a, subject))),
            Via::Tag(suffix) => {
                let tag = referrers::cosign_tag(subject, suffix);
                out.entries
                    .push((Some(tag.clone()), index_descriptor(&a.manifest, Some(&tag))));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::ATTACHED_ANNOTATION;
    use super::*;

    #[test]
    fn attached_entries_are_not_images() {
        let d = |annotations: Option<&str>| Descriptor {
            media_type: crate::manifest::OCI_MANIFEST.into(),
            digest: Digest::sha256_of(b"x"),
            size: 1,
            urls: None,
            annotations: annotations.map(|a| {
                std::collections::BTreeMap::from([(a.to_string(), "sha256:00".to_string())])
            }),
            platform: None,
        };
        let entries = vec![
            (Some("v1".to_string()), d(None)),
            (Some(format!("sha256-{}.sig", "a".repeat(64))), d(None)),
            (None, d(Some(ATTACHED_ANNOTATION))),
            (None, d(None)),
        ];
        let kept = images(&entries);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].0.as_deref(), Some("v1"));
        assert_eq!(kept[1].0, None);
    }
}
