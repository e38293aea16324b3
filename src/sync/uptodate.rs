//! The incremental check: is an image already at its destination, with its signatures?
//!
//! One manifest request per side says whether the destination's manifest is the one the copy
//! would write: the source's [`ImageSource::head`](crate::transport::ImageSource::head) (a
//! `HEAD` answered by `Docker-Content-Digest` for registries, a file read for local sources)
//! and the destination's [`Transport::present`](crate::transport::Transport::present), which
//! also counts the signatures the destination keeps for it where its transport keeps them (a
//! file check for a `file://` lookaside, one request for the signature extension, local reads
//! for `dir:`, `oci:` and the store). This module reads no transport's files itself. Only when
//! the destination has no signatures at all is the source asked whether it has any (an
//! unsigned image is up to date without them). No blob, and no lookaside signature of an image
//! found up to date, is fetched.
//!
//! With recompression (`--dest-compress-format` and kin) the destination's manifest digest is
//! not the source's: the image is up to date when the destination's manifest has the source's
//! config and no layer the compression would still convert (one manifest read per side more).
//!
//! An image the destination holds but not whole (a blob or an instance missing or cut short:
//! a copy into `dir:` or `oci:` that broke off, or damage) is copied again, which repairs it;
//! the destination transport says so in [`Present::incomplete`].
//!
//! For immutable tags ([`immutable`]), the destination alone decides: a tag that is there, whole,
//! with signatures (or with none wanted) is skipped without a single request to the source.
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
use crate::transport::{Present, Result, TransportError, TransportOptions};

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
    let source = session.open_source(src, options).await?;
    let Some(head) = source.head().await? else {
        return Ok(None);
    };
    let is_list = head
        .media_type
        .as_deref()
        .map(|m| m == manifest::OCI_INDEX || m == manifest::DOCKER_LIST);
    if matches!(selection, ImageSelection::All) || is_list == Some(false) {
        return Ok(Some((head.digest, None)));
    }
    // A list (or a media type the source did not give): read the manifest itself.
    let raw = source.manifest(None).await?;
    let top = Digest::sha256_of(&raw.bytes);
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

/// With recompression the destination's manifest is not the source's: it is up to date when it
/// is the source's image with its layers already in the format asked for (one more manifest
/// read per side, as the copy's own check would cost more: the config and every layer's HEAD).
async fn recompressed_already(
    session: &Session,
    src: &ImageReference,
    dst: &ImageReference,
    instance: Option<&Digest>,
    options: &CopyOptions,
) -> Result<bool> {
    let Some(compression) = &options.compression else {
        return Ok(false);
    };
    let image = |raw: crate::transport::RawManifest| match manifest::parse(
        &raw.bytes,
        raw.media_type.as_deref(),
    ) {
        Ok(Manifest::Image(_, image)) => Some(image),
        _ => None,
    };
    let source = session.open_source(src, &options.gate.source).await?;
    let Some(source_image) = image(source.manifest(instance).await?) else {
        return Ok(false);
    };
    let written = session.open_source(dst, &options.destination).await?;
    let Some(written_image) = image(written.manifest(None).await?) else {
        return Ok(false);
    };
    Ok(compression.already_applied(&source_image, &written_image))
}

/// Whether a copy with `options` leaves signatures at the destination.
fn wants_signatures(options: &CopyOptions) -> bool {
    options.gate.mode != SignatureMode::RemoveSignatures || options.sign.is_some()
}

/// For an immutable tag: the digest and signature count of `dst` when the destination holds it
/// whole and with signatures (or the copy wants none), so the source need not be read at all.
/// An image there without signatures is not enough when the copy keeps them: only the source
/// can say that it has none.
pub async fn immutable(
    session: &Arc<Session>,
    dst: &ImageReference,
    options: &CopyOptions,
) -> Result<Option<(Digest, usize)>> {
    Ok(session
        .present(dst, &options.destination)
        .await?
        .filter(|p| p.incomplete.is_none() && (p.signatures > 0 || !wants_signatures(options)))
        .map(|p| (p.digest, p.signatures)))
}

/// Whether copying `src` to `dst` with `options` (its source and destination settings, mode,
/// selection and signing) would change anything at the destination.
pub async fn check(
    session: &Arc<Session>,
    src: &ImageReference,
    dst: &ImageReference,
    options: &CopyOptions,
) -> Result<Freshness> {
    let Some(Present {
        digest: dst_digest,
        signatures: dst_signatures,
        incomplete,
        ..
    }) = session.present(dst, &options.destination).await?
    else {
        return Ok(Freshness::Stale("not at the destination".into()));
    };
    if let Some(why) = incomplete {
        return Ok(Freshness::Stale(format!(
            "half-written at the destination ({why}); copying it again repairs it"
        )));
    }
    let Some((src_digest, instance)) =
        source_digest(session, src, &options.gate.source, &options.gate.selection).await?
    else {
        return Ok(Freshness::Stale("not found at the source".into()));
    };
    if src_digest != dst_digest
        && !recompressed_already(session, src, dst, instance.as_ref(), options).await?
    {
        return Ok(Freshness::Stale(format!(
            "the destination has {dst_digest}, the source {src_digest}"
        )));
    }
    let up_to_date = Freshness::UpToDate {
        digest: dst_digest.clone(),
    };
    if !wants_signatures(options) || dst_signatures > 0 {
        return Ok(up_to_date);
    }
    if options.sign.is_some() {
        return Ok(Freshness::Stale(
            "the destination has no signatures for it (the copy signs it)".into(),
        ));
    }
    // The destination has none: up to date only if the source has none either.
    let source = session.open_source(src, &options.gate.source).await?;
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
