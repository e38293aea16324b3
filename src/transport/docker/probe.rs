//! Cheap questions to a registry that a mirror asks before deciding to copy: which manifest
//! does this tag name now (one `HEAD`, answered by `Docker-Content-Digest`), and does the
//! destination already keep signatures for a manifest (a file check for a `file://` lookaside,
//! one request for the signature extension, one for the sigstore attachment and one listing of
//! referrers where registries.d enables them). Nothing here reads a blob or a lookaside
//! signature.

use std::sync::Arc;

use super::client::RegistryClient;
use super::{manifest_ref, pull_scope, push_scope};
use crate::config::registries_d::{RegistriesConfig, signature_url};
use crate::digest::Digest;
use crate::reference::DockerReference;
use crate::transport::{ManifestHead, Result, TransportError};

/// Which side's token a probe uses, so the copy that may follow reuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Pull only (a source).
    Pull,
    /// Pull and push (a destination).
    Push,
}

/// The digest (and media type) of the manifest `image` names, from one `HEAD` request; `None`
/// when the registry has no such manifest. A registry that leaves out `Docker-Content-Digest`
/// is asked with `GET` and the bytes are hashed.
pub async fn manifest_head(
    client: &RegistryClient,
    image: &DockerReference,
    access: Access,
) -> Result<Option<ManifestHead>> {
    let scopes = vec![match access {
        Access::Pull => pull_scope(image),
        Access::Push => push_scope(image),
    }];
    let reference = manifest_ref(image);
    let url = client.url(&format!("v2/{}/manifests/{reference}", image.path()));
    let accept = crate::manifest::ACCEPTED.join(", ");
    let resp = client
        .send_with_retries(&scopes, |c| {
            c.head(url.clone())
                .header(reqwest::header::ACCEPT, accept.clone())
        })
        .await?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !resp.status().is_success() {
        return Err(client.status_error(&url, resp).await);
    }
    let media_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| crate::manifest::ACCEPTED.contains(&c.as_str()));
    let announced = resp
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Digest::parse(v.trim()).ok());
    if let Some(digest) = announced {
        return Ok(Some(ManifestHead { digest, media_type }));
    }
    match super::get_manifest(client, image, &reference, &scopes).await {
        Ok(raw) => Ok(Some(ManifestHead {
            digest: Digest::sha256_of(&raw.bytes),
            media_type: raw.media_type.or(media_type),
        })),
        Err(TransportError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// How many signatures the destination `image` already keeps for `manifest_digest`, where
/// ferry would write them: the registry's signature extension when it has one (one request),
/// else the `file://` lookaside registries.d names for writing (files counted from
/// `signature-1` until the first missing one). Zero when there is nowhere to keep them.
pub async fn destination_signatures(
    client: &RegistryClient,
    registries: &Arc<RegistriesConfig>,
    image: &DockerReference,
    manifest_digest: &Digest,
) -> Result<usize> {
    let sigstore =
        destination_sigstore_signatures(client, registries, image, manifest_digest).await?;
    Ok(
        sigstore
            + destination_simple_signatures(client, registries, image, manifest_digest).await?,
    )
}

/// How many sigstore signatures the destination keeps for a manifest where registries.d says
/// it keeps them: layers of the `.sig` attachment (one manifest request), signature bundles
/// among its referrers (one listing).
async fn destination_sigstore_signatures(
    client: &RegistryClient,
    registries: &Arc<RegistriesConfig>,
    image: &DockerReference,
    manifest_digest: &Digest,
) -> Result<usize> {
    let scopes = [push_scope(image)];
    let mut n = 0;
    if registries.use_sigstore_attachments(image) {
        let tag = crate::transport::attachments::signature_tag(manifest_digest);
        match super::get_manifest(client, image, &tag, &scopes).await {
            Ok(m) => {
                n += serde_json::from_slice::<serde_json::Value>(&m.bytes)
                    .ok()
                    .and_then(|v| v.get("layers")?.as_array().map(Vec::len))
                    .unwrap_or(0);
            }
            Err(TransportError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    if registries.use_sigstore_referrers(image) {
        let listing =
            super::referrers::list_referrers(client, image, &scopes, manifest_digest).await?;
        n += listing
            .entries()
            .iter()
            .filter(|e| {
                e.artifact_type
                    .as_deref()
                    .is_some_and(crate::signature::sigstore::bundle::is_bundle_media_type)
            })
            .count();
    }
    Ok(n)
}

/// How many simple-signing signatures the destination keeps for a manifest: in the signature
/// extension, or in a `file://` lookaside.
async fn destination_simple_signatures(
    client: &RegistryClient,
    registries: &Arc<RegistriesConfig>,
    image: &DockerReference,
    manifest_digest: &Digest,
) -> Result<usize> {
    if client.supports_signatures {
        let url = client.url(&format!(
            "extensions/v2/{}/signatures/{manifest_digest}",
            image.path()
        ));
        let resp = client
            .send_with_retries(&[push_scope(image)], |c| c.get(url.clone()))
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(0);
        }
        if !resp.status().is_success() {
            return Err(client.status_error(&url, resp).await);
        }
        let body = client
            .read_limited(resp, crate::manifest::MAX_MANIFEST_SIZE, &url)
            .await?;
        let list: super::ExtensionList = serde_json::from_slice(&body).map_err(|e| {
            TransportError::registry(url.to_string(), format!("decoding signature list: {e}"))
        })?;
        return Ok(list
            .signatures
            .iter()
            .filter(|s| s.schema_version == 2 && s.kind == "atomic")
            .count());
    }
    let Some(base) = registries.write_base(image)? else {
        return Ok(0);
    };
    if base.scheme() != "file" {
        return Ok(0);
    }
    let mut n = 0;
    // containers/image reads at most 128 signatures; counting further would be pointless.
    while n < 128 {
        let Ok(path) = signature_url(&base, image, manifest_digest, n + 1).to_file_path() else {
            break;
        };
        if !path.is_file() {
            break;
        }
        n += 1;
    }
    Ok(n)
}
