//! Operations on a registry that are not copies: deleting an image (`ferry delete`) and
//! checking credentials (`ferry login`), as containers/image's `deleteImage` and `CheckAuth`.

use reqwest::StatusCode;

use super::client::RegistryClient;
use super::{get_manifest, lookaside, manifest_ref};
use crate::config::registries_d::RegistriesConfig;
use crate::digest::Digest;
use crate::reference::DockerReference;
use crate::transport::{Result, TransportError};

/// Deletes the manifest `image` names (its tag's manifest, or the digest) from its repository,
/// with every tag that points to it (registries delete manifests, not tags), and the
/// signatures of that manifest in a `file://` lookaside-staging (or lookaside) location that
/// registries.d configures. Returns the deleted manifest's digest.
pub async fn delete_image(
    client: &RegistryClient,
    image: &DockerReference,
    registries: &RegistriesConfig,
) -> Result<Digest> {
    // docker/distribution wants pull and delete, quay.io push; both accept "*".
    let scopes = vec![format!("repository:{}:*", image.path())];
    let reference = manifest_ref(image);
    let manifest = match get_manifest(client, image, &reference, &scopes).await {
        Err(TransportError::NotFound(m)) => {
            return Err(TransportError::NotFound(format!(
                "{m}: unable to delete {image}: the image may not exist"
            )));
        }
        other => other?,
    };
    let digest = Digest::sha256_of(&manifest.bytes);
    let url = client.url(&format!("v2/{}/manifests/{digest}", image.path()));
    let accept = crate::manifest::ACCEPTED.join(", ");
    let resp = client
        .send_with_retries(&scopes, |c| {
            c.delete(url.clone())
                .header(reqwest::header::ACCEPT, accept.clone())
        })
        .await?;
    if resp.status() != StatusCode::ACCEPTED {
        let status = resp.status();
        let e = client.status_error(&url, resp).await;
        return Err(match status {
            StatusCode::METHOD_NOT_ALLOWED => TransportError::registry(
                url.to_string(),
                format!(
                    "{e}: the registry does not allow deleting (docker/distribution needs storage.delete.enabled: true)"
                ),
            ),
            _ => e,
        });
    }
    if let Ok(Some(base)) = registries.write_base(image)
        && base.scheme() == "file"
    {
        lookaside::write_signatures(&base, image, &digest, &[])?;
    }
    Ok(digest)
}

/// Whether the client's credentials are accepted: `GET /v2/` with them (through the token
/// service for bearer registries) must answer 200.
pub async fn check_login(client: &RegistryClient) -> Result<()> {
    let url = client.url("v2/");
    let resp = client
        .send_with_retries(&[], |c| c.get(url.clone()))
        .await?;
    if resp.status() == StatusCode::OK {
        return Ok(());
    }
    Err(client.status_error(&url, resp).await)
}
