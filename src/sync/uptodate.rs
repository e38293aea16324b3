//! The incremental check: is an image already at its destination, with its signatures?
//!
//! One manifest request per side (`HEAD`, answered by `Docker-Content-Digest`, for registries;
//! a file read for local destinations) says whether the destination's manifest is the one the
//! copy would write. If it is, the signatures the copy would write are looked for where the
//! destination keeps them (a file check for a `file://` lookaside, one request for the signature
//! extension, local reads for `dir:`, `oci:` and the store). Only when the destination has no signatures at all is the source asked whether
//! it has any (an unsigned image is up to date without them). No blob, and no lookaside
//! signature of an image found up to date, is fetched.
//!
//! What this cannot see: a signature added at the source after the image was mirrored, while
//! the destination keeps older ones. The gate is not run for an image found up to date: it ran
//! when the image was copied, and nothing is written now.

use std::sync::Arc;

use crate::copy::{CopyOptions, ImageSelection};
use crate::digest::Digest;
use crate::manifest::{self, Manifest, PlatformSpec};
use crate::policy::SignatureMode;
use crate::reference::ImageReference;
use crate::session::Session;
use crate::transport::docker::probe::{self, Access};
use crate::transport::oci_layout::Layout;
use crate::transport::{Result, TransportError, TransportOptions};

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// The destination has this manifest and the signatures the copy would give it.
    UpToDate {
        /// The manifest's digest.
        digest: Digest,
    },
    /// The copy has work to do, and why.
    Stale(String),
}

/// The manifest the copy would write as the destination's top level: the source's own, or
/// for a list copied without every image, the chosen instance. `None`: not at the source.
async fn source_digest(
    session: &Session,
    src: &ImageReference,
    options: &TransportOptions,
    selection: &ImageSelection,
) -> Result<Option<(Digest, Option<Digest>)>> {
    let mut head_is_list = None;
    if let ImageReference::Docker(r) = src {
        let client = session.registry_client(r, options).await?;
        let Some(head) = probe::manifest_head(&client, r, Access::Pull).await? else {
            return Ok(None);
        };
        let is_list = head
            .media_type
            .as_deref()
            .map(|m| m == manifest::OCI_INDEX || m == manifest::DOCKER_LIST);
        if matches!(selection, ImageSelection::All) || is_list == Some(false) {
            return Ok(Some((head.digest, None)));
        }
        head_is_list = is_list;
    }
    // A list (or a media type the registry did not give): read the manifest itself.
    let source = session.open_source(src, options).await?;
    let raw = source.manifest(None).await?;
    let top = Digest::sha256_of(&raw.bytes);
    if matches!(selection, ImageSelection::All) || head_is_list == Some(false) {
        return Ok(Some((top, None)));
    }
    let parsed = manifest::parse(&raw.bytes, raw.media_type.as_deref()).map_err(|source| {
        TransportError::Manifest {
            what: src.to_string(),
            source,
        }
    })?;
    match parsed {
        Manifest::Image(..) => Ok(Some((top, None))),
        Manifest::List(_, list) => {
            let want = match selection {
                ImageSelection::Platform(p) => p.clone(),
                _ => PlatformSpec::current(),
            };
            // No instance for the platform: the copy will say so; nothing is up to date.
            Ok(want
                .choose(&list)
                .map(|d| (d.digest.clone(), Some(d.digest.clone()))))
        }
    }
}

/// The destination's manifest digest and how many signatures it keeps for it.
async fn destination_state(
    session: &Session,
    dst: &ImageReference,
    options: &TransportOptions,
) -> Result<Option<(Digest, usize)>> {
    Ok(match dst {
        ImageReference::Docker(r) => {
            let client = session.registry_client(r, options).await?;
            let Some(head) = probe::manifest_head(&client, r, Access::Push).await? else {
                return Ok(None);
            };
            let registries = session.registries().await?;
            let n = probe::destination_signatures(&client, &registries, r, &head.digest).await?;
            Some((head.digest, n))
        }
        ImageReference::Dir { path } => {
            let m = path.join("manifest.json");
            if !m.is_file() {
                return Ok(None);
            }
            let bytes = crate::transport::fsutil::read_manifest_file(&m)?;
            let n = (1..)
                .take_while(|i| path.join(format!("signature-{i}")).is_file())
                .count();
            Some((Digest::sha256_of(&bytes), n))
        }
        ImageReference::OciLayout { path, tag } => {
            if !path.join("index.json").is_file() {
                return Ok(None);
            }
            match Layout::new(path).find(tag.as_deref()) {
                Ok(d) => {
                    // The layout keeps sigstore signatures beside the image (the `.sig`
                    // attachment, bundles among its referrers): counting them is a local read.
                    let layout = session.open_source(dst, options).await?;
                    let n = layout.signatures(&d.digest, None).await?.slots.len();
                    Some((d.digest, n))
                }
                Err(TransportError::NotFound(_)) => None,
                Err(e) => return Err(e),
            }
        }
        ImageReference::Store(name) => {
            let store = session.store(dst)?;
            match store.resolve(name) {
                Ok(image) => {
                    let n = store.signatures(&image.digest)?.len();
                    Some((image.digest, n))
                }
                Err(TransportError::NotFound(_)) => None,
                Err(e) => return Err(e),
            }
        }
    })
}

/// Whether copying `src` to `dst` with `options` (its source and destination settings, mode,
/// selection and signing) would change anything at the destination.
pub async fn check(
    session: &Arc<Session>,
    src: &ImageReference,
    dst: &ImageReference,
    options: &CopyOptions,
) -> Result<Freshness> {
    let Some((dst_digest, dst_signatures)) =
        destination_state(session, dst, &options.destination).await?
    else {
        return Ok(Freshness::Stale("not at the destination".into()));
    };
    let Some((src_digest, instance)) =
        source_digest(session, src, &options.source, &options.selection).await?
    else {
        return Ok(Freshness::Stale("not found at the source".into()));
    };
    if src_digest != dst_digest {
        return Ok(Freshness::Stale(format!(
            "the destination has {dst_digest}, the source {src_digest}"
        )));
    }
    let up_to_date = Freshness::UpToDate { digest: src_digest };
    let wants_signatures =
        options.mode != SignatureMode::RemoveSignatures || options.sign.is_some();
    if !wants_signatures || dst_signatures > 0 {
        return Ok(up_to_date);
    }
    if options.sign.is_some() {
        return Ok(Freshness::Stale(
            "the destination has no signatures for it (the copy signs it)".into(),
        ));
    }
    // The destination has none: up to date only if the source has none either.
    let source = session.open_source(src, &options.source).await?;
    let slots = source.signatures(&dst_digest, instance.as_ref()).await?;
    if slots.slots.is_empty() {
        Ok(up_to_date)
    } else {
        Ok(Freshness::Stale(format!(
            "the destination has none of its {} signature(s)",
            slots.slots.len()
        )))
    }
}
