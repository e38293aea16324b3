//! Operations on a registry that are not copies: deleting an image (`ferry delete`), listing
//! a repository's images and deleting a tag with what is attached to it (a mirror's prune), and
//! checking credentials (`ferry login`), as containers/image's `deleteImage` and `CheckAuth`.

use std::collections::HashSet;

use reqwest::StatusCode;

use super::client::RegistryClient;
use super::probe::{self, Access};
use super::referrers::{Listing, list_referrers};
use super::{get_manifest, lookaside, manifest_ref};
use crate::config::registries_d::RegistriesConfig;
use crate::digest::Digest;
use crate::reference::DockerReference;
use crate::transport::referrers::{cosign_artifact_tags, cosign_tag, fallback_tag};
use crate::transport::{
    Deletion, PreparedDeletion, RegistryErrorKind, Result, TransportError, attachments,
};

/// Deletes the manifest `image` names (its tag's manifest, or the digest) from its repository,
/// with every tag that points to it (registries delete manifests, not tags), and the
/// signatures of that manifest in a `file://` lookaside-staging (or lookaside) location that
/// registries.d configures. Returns the deleted manifest's digest.
pub async fn delete_image(
    client: &RegistryClient,
    image: &DockerReference,
    registries: &RegistriesConfig,
) -> Result<Digest> {
    let scopes = delete_scopes(image);
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
    if !delete_manifest(client, image, &digest.to_string()).await? {
        return Err(TransportError::NotFound(format!(
            "unable to delete {image}: the manifest {digest} is gone"
        )));
    }
    if let Ok(Some(base)) = registries.write_base(image)
        && base.scheme() == "file"
    {
        lookaside::write_signatures(&base, image, &digest, &[])?;
    }
    Ok(digest)
}

fn delete_scopes(image: &DockerReference) -> Vec<String> {
    // docker/distribution wants pull and delete, quay.io push; both accept "*".
    vec![format!("repository:{}:*", image.path())]
}

/// `DELETE /v2/NAME/manifests/REFERENCE` (a digest, or a tag where the registry deletes tags
/// alone): true when deleted, false when it was not there.
async fn delete_manifest(
    client: &RegistryClient,
    image: &DockerReference,
    reference: &str,
) -> Result<bool> {
    let url = client.url(&format!("v2/{}/manifests/{reference}", image.path()));
    let accept = crate::manifest::ACCEPTED.join(", ");
    let resp = client
        .send_with_retries(&delete_scopes(image), |c| {
            c.delete(url.clone())
                .header(reqwest::header::ACCEPT, accept.clone())
        })
        .await?;
    match resp.status() {
        StatusCode::ACCEPTED | StatusCode::OK => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        status => {
            let e = client.status_error(&url, resp).await;
            Err(match status {
                StatusCode::METHOD_NOT_ALLOWED => TransportError::registry(
                    url.to_string(),
                    format!(
                        "{e}: the registry does not allow deleting (docker/distribution needs storage.delete.enabled: true)"
                    ),
                ),
                _ => e,
            })
        }
    }
}

/// Whether a tag holds what is attached to an image rather than an image: cosign's
/// `sha256-HEX.sig`, `.att` and `.sbom`, and the referrers fallback index `sha256-HEX`.
pub fn is_attachment_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let (hex, suffix) = rest.split_at(rest.len().min(64));
    hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && matches!(suffix, "" | ".sig" | ".att" | ".sbom")
}

/// The image tags of `repository`'s repository (attachment tags left out); empty when the
/// repository does not exist.
pub async fn list_images(
    client: &RegistryClient,
    repository: &DockerReference,
) -> Result<Vec<String>> {
    match super::list_tags(client, repository).await {
        Ok(tags) => Ok(tags.into_iter().filter(|t| !is_attachment_tag(t)).collect()),
        Err(TransportError::NotFound(_)) => Ok(Vec::new()),
        Err(TransportError::Registry {
            kind: RegistryErrorKind::NotFound,
            ..
        }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The digest a tag or digest names in `image`'s repository, `None` when nothing.
async fn digest_of(
    client: &RegistryClient,
    image: &DockerReference,
    reference: &str,
) -> Result<Option<Digest>> {
    let named = match Digest::parse(reference) {
        Ok(d) => image.with_digest(d),
        Err(_) => image.with_tag(reference).map_err(|e| {
            TransportError::Unsupported(format!("{}:{reference}: {e}", image.name()))
        })?,
    };
    Ok(probe::manifest_head(client, &named, Access::Push)
        .await?
        .map(|h| h.digest))
}

/// Reads what [`delete_tag`] would remove, without deleting anything: the manifest the tag
/// names and everything attached to it (referrers a few levels down, with the fallback indexes
/// that list them, and cosign's tags), in the order it would go: the deepest level first, each
/// level's fallback index after what it lists, so the manifest goes last. `None`: the tag is
/// not there.
pub async fn prepare_delete_tag(
    client: &RegistryClient,
    image: &DockerReference,
) -> Result<Option<PreparedDeletion>> {
    let tag = manifest_ref(image);
    let Some(digest) = digest_of(client, image, &tag).await? else {
        return Ok(None);
    };
    let mut levels = Vec::new();
    let mut subjects = vec![digest.clone()];
    for _ in 0..4 {
        let found =
            futures::future::try_join_all(subjects.iter().map(|s| attached(client, image, s)))
                .await?;
        let (mut doomed, mut indexes) = (Vec::new(), Vec::new());
        subjects = Vec::new();
        for a in found {
            doomed.extend(a.doomed);
            indexes.extend(a.index);
            subjects.extend(a.referrers);
        }
        levels.push(doomed);
        levels.push(indexes);
        if subjects.is_empty() {
            break;
        }
    }
    // Deepest first: [level 1, index 1, level 2, index 2, ...] read backwards by pairs.
    let mut waves = Vec::new();
    for pair in levels.chunks(2).rev() {
        waves.extend(pair.iter().filter(|w| !w.is_empty()).cloned());
    }
    Ok(Some(PreparedDeletion::new(digest, waves)))
}

/// Deletes the tag `image` names from its repository. Unless its manifest is in `keep` (other
/// tags name it), everything attached to that manifest goes first — its referrers (and theirs,
/// a few levels down) with the fallback index that lists them, cosign's `.sig`, `.att` and
/// `.sbom` tags, its signatures in a `file://` lookaside — and then the manifest, so a prune
/// that breaks off leaves the tag to be found again. A kept manifest loses only the tag, where
/// the registry deletes tags alone (OCI distribution 1.1); distribution 2.8 cannot, and then
/// the tag stays and the answer says why. `prepared`: what [`prepare_delete_tag`] read of
/// the tag earlier, deleted as read (no lookups, only the deletions' round trips). `None`:
/// the tag is not there.
pub async fn delete_tag(
    client: &RegistryClient,
    image: &DockerReference,
    registries: &RegistriesConfig,
    keep: &HashSet<Digest>,
    prepared: Option<&PreparedDeletion>,
) -> Result<Option<Deletion>> {
    let tag = manifest_ref(image);
    let digest = match prepared {
        Some(p) => p.digest.clone(),
        None => match digest_of(client, image, &tag).await? {
            Some(d) => d,
            None => return Ok(None),
        },
    };
    if keep.contains(&digest) {
        return Ok(Some(match delete_manifest(client, image, &tag).await {
            Ok(_) => Deletion::name_only(digest, "other tags name the same manifest"),
            Err(e) => Deletion::kept(
                digest,
                format!(
                    "other tags name the same manifest, and the registry cannot delete a tag alone ({e}): the tag stays"
                ),
            ),
        }));
    }
    let mut removed = Vec::new();
    match prepared {
        Some(p) => {
            for wave in &p.waves {
                removed.extend(delete_all(client, image, wave).await?);
            }
        }
        None => {
            let mut subjects = vec![digest.clone()];
            for _ in 0..4 {
                let found = futures::future::try_join_all(
                    subjects.iter().map(|s| delete_attached(client, image, s)),
                )
                .await?;
                subjects = Vec::new();
                for (gone, referrers) in found {
                    removed.extend(gone);
                    subjects.extend(referrers);
                }
                if subjects.is_empty() {
                    break;
                }
            }
        }
    }
    if let Some(base) = registries.write_base(image)?
        && base.scheme() == "file"
    {
        let had = crate::config::registries_d::signature_url(&base, image, &digest, 1)
            .to_file_path()
            .is_ok_and(|p| p.is_file());
        lookaside::write_signatures(&base, image, &digest, &[])?;
        if had {
            removed.push(format!("the lookaside signatures at {base}"));
        }
    }
    delete_manifest(client, image, &digest.to_string()).await?;
    Ok(Some(Deletion::whole(digest, removed)))
}

/// What is attached to one subject, as [`attached`] reads it.
struct Attached {
    /// Its referrers and cosign's tags of it, by digest with what they are for people.
    doomed: Vec<(Digest, String)>,
    /// The fallback index that lists its referrers, which goes after them.
    index: Option<(Digest, String)>,
    /// Its referrers, whose own attachments go with them.
    referrers: Vec<Digest>,
}

/// Reads what is attached to `subject`: its referrers and cosign's tags of it, the places
/// asked all at once (one round trip or two, not one per place), and the fallback index that
/// lists the referrers.
async fn attached(
    client: &RegistryClient,
    image: &DockerReference,
    subject: &Digest,
) -> Result<Attached> {
    let mut tags = vec![attachments::signature_tag(subject)];
    tags.extend(
        cosign_artifact_tags()
            .iter()
            .map(|(s, _)| cosign_tag(subject, s)),
    );
    let scopes = delete_scopes(image);
    let index_tag = fallback_tag(subject);
    let (listing, tagged) = futures::future::try_join(
        list_referrers(client, image, &scopes, subject),
        futures::future::try_join_all(tags.iter().map(|t| digest_of(client, image, t))),
    )
    .await?;
    let mut doomed: Vec<(Digest, String)> = listing
        .entries()
        .iter()
        .map(|e| (e.digest.clone(), format!("the referrer {}", e.digest)))
        .collect();
    let referrers: Vec<Digest> = listing.entries().iter().map(|e| e.digest.clone()).collect();
    for (t, d) in tags.iter().zip(tagged) {
        if let Some(d) = d {
            doomed.push((d, format!("the attachment {t}")));
        }
    }
    let index = match listing {
        Listing::Fallback(_) => digest_of(client, image, &index_tag)
            .await?
            .map(|d| (d, format!("the attachment {index_tag}"))),
        _ => None,
    };
    Ok(Attached {
        doomed,
        index,
        referrers,
    })
}

/// Deletes the manifests of `wave` at once; what went, for people.
async fn delete_all(
    client: &RegistryClient,
    image: &DockerReference,
    wave: &[(Digest, String)],
) -> Result<Vec<String>> {
    let digests: Vec<String> = wave.iter().map(|(d, _)| d.to_string()).collect();
    let deleted =
        futures::future::try_join_all(digests.iter().map(|d| delete_manifest(client, image, d)))
            .await?;
    Ok(wave
        .iter()
        .zip(deleted)
        .filter(|(_, gone)| *gone)
        .map(|((_, what), _)| what.clone())
        .collect())
}

/// Deletes what is attached to `subject` as [`attached`] reads it: its referrers and cosign's
/// tags of it, then the fallback index that listed the referrers. Returns what went, for
/// people, and the referrers deleted, whose own attachments go next.
async fn delete_attached(
    client: &RegistryClient,
    image: &DockerReference,
    subject: &Digest,
) -> Result<(Vec<String>, Vec<Digest>)> {
    let found = attached(client, image, subject).await?;
    let mut removed = delete_all(client, image, &found.doomed).await?;
    // The fallback index goes once what it lists is gone.
    if let Some(index) = found.index {
        removed.extend(delete_all(client, image, &[index]).await?);
    }
    Ok((removed, found.referrers))
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
