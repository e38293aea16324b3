//! OCI 1.1 referrers in a registry: listing them (`GET /v2/NAME/referrers/DIGEST`, or the
//! `sha256-HEX` fallback index where the registry has no such API), reading them through
//! [`crate::transport::referrers::read`], cosign's `.att`/`.sbom` tags, and writing attached
//! artifacts (the manifest by digest, then the fallback index unless the registry said, with
//! `OCI-Subject`, that it indexes referrers itself).

use reqwest::StatusCode;

use super::client::RegistryClient;
use super::{DockerDestination, DockerSource, get_manifest, read_page};
use crate::digest::Digest;
use crate::reference::DockerReference;
use crate::signature::{SignatureSlot, SlotReadError, SlotReadErrorKind};
use crate::transport::referrers::{
    self, Attached, ReferrerEntry, Referrers, Via, cosign_tag, fallback_tag,
};
use crate::transport::{RawManifest, Result, SignatureSet, TransportError};

/// How many pages of a referrers listing ferry follows.
const MAX_PAGES: usize = 16;

/// Where a referrers listing came from, for messages.
pub(super) enum Listing {
    Api(Vec<ReferrerEntry>),
    Fallback(Vec<ReferrerEntry>),
    NoFallback,
}

impl Listing {
    /// The entries found (none where there is neither the API nor a fallback index).
    pub(super) fn entries(&self) -> &[ReferrerEntry] {
        match self {
            Listing::Api(e) | Listing::Fallback(e) => e,
            Listing::NoFallback => &[],
        }
    }
}

/// The referrers of `d` in `image`'s repository: the API's listing, else the fallback index.
pub(super) async fn list_referrers(
    client: &RegistryClient,
    image: &DockerReference,
    scopes: &[String],
    d: &Digest,
) -> Result<Listing> {
    let mut url = client.url(&format!("v2/{}/referrers/{d}", image.path()));
    let mut entries = Vec::new();
    for page in 0..MAX_PAGES {
        let resp = client
            .send_with_retries(scopes, |c| {
                c.get(url.clone())
                    .header(reqwest::header::ACCEPT, crate::manifest::OCI_INDEX)
            })
            .await?;
        match resp.status() {
            s if s.is_success() => {}
            // No referrers API (distribution 2.8 has no such route): the fallback tag.
            StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED
            | StatusCode::BAD_REQUEST
                if page == 0 =>
            {
                let tag = fallback_tag(d);
                return match get_manifest(client, image, &tag, scopes).await {
                    Ok(m) => referrers::parse_index(&m.bytes)
                        .map(Listing::Fallback)
                        .map_err(|e| {
                            TransportError::registry(
                                format!("{}:{tag}", image.name()),
                                format!("the referrers fallback index: {e}"),
                            )
                        }),
                    Err(TransportError::NotFound(_)) => Ok(Listing::NoFallback),
                    Err(e) => Err(e),
                };
            }
            _ => return Err(client.status_error(&url, resp).await),
        }
        let (body, next) = read_page(client, resp, &url).await?;
        entries.extend(referrers::parse_index(&body).map_err(|e| {
            TransportError::registry(url.to_string(), format!("the referrers listing: {e}"))
        })?);
        if entries.len() > referrers::MAX_REFERRERS {
            return Err(TransportError::registry(
                url.to_string(),
                format!(
                    "more than {} referrers; giving up",
                    referrers::MAX_REFERRERS
                ),
            ));
        }
        match next {
            Some(n) => {
                url = url.join(&n).map_err(|e| {
                    TransportError::registry(url.to_string(), format!("invalid Link {n:?}: {e}"))
                })?;
            }
            None => return Ok(Listing::Api(entries)),
        }
    }
    Err(TransportError::registry(
        url.to_string(),
        format!("the referrers listing has more than {MAX_PAGES} pages; giving up"),
    ))
}

impl DockerSource {
    /// The referrers of `d`: the API's listing, else the fallback index.
    async fn list_referrers(&self, d: &Digest) -> Result<Listing> {
        list_referrers(&self.client, &self.image, &self.scopes(), d).await
    }

    /// A manifest by digest (checked against it by the caller), as bytes and media type.
    async fn manifest_by_digest(
        &self,
        d: Digest,
    ) -> std::result::Result<(Vec<u8>, Option<String>), String> {
        get_manifest(&self.client, &self.image, &d.to_string(), &self.scopes())
            .await
            .map(|m| (m.bytes.to_vec(), m.media_type))
            .map_err(|e| e.to_string())
    }

    /// Adds what is attached to `d` to `set`, as `self.referrers` and registries.d say.
    pub(super) async fn read_attached(&self, d: &Digest, set: &mut SignatureSet) -> Result<()> {
        set.bundles = self.registries.sigstore_bundle_identity(&self.image)?;
        let mode = match self.referrers {
            Referrers::None => return Ok(()),
            Referrers::Signatures if !self.registries.use_sigstore_referrers(&self.image) => {
                set.searched.push(format!(
                    "NOT READ: OCI referrers (use-sigstore-referrers is not enabled for {} in registries.d)",
                    self.image.name()
                ));
                return Ok(());
            }
            m => m,
        };
        let location = format!("{}@{d}", self.image.name());
        let first = set.slots.len() + 1;
        let entries = match self.list_referrers(d).await {
            Ok(Listing::Api(e)) => {
                set.searched.push(format!(
                    "the OCI referrers API of {} ({} referrers)",
                    location,
                    e.len()
                ));
                e
            }
            Ok(Listing::Fallback(e)) => {
                set.searched.push(format!(
                    "the referrers fallback tag {}:{} ({} referrers)",
                    self.image.name(),
                    fallback_tag(d),
                    e.len()
                ));
                e
            }
            Ok(Listing::NoFallback) => {
                set.searched.push(format!(
                    "OCI referrers: the registry has no referrers API and there is no {}:{}",
                    self.image.name(),
                    fallback_tag(d)
                ));
                Vec::new()
            }
            Err(e) => {
                // Signatures may be among them: a listing that fails is an unreadable slot.
                set.slots.push(SignatureSlot {
                    index: first,
                    location: format!("the referrers of {location}"),
                    content: Err(SlotReadError {
                        kind: SlotReadErrorKind::Io,
                        message: format!("listing the referrers: {e}"),
                    }),
                });
                return Ok(());
            }
        };
        let read = referrers::read(
            &entries,
            &location,
            first,
            mode,
            |digest| self.manifest_by_digest(digest),
            |desc| self.small_blob(desc),
        )
        .await;
        set.slots.extend(read.slots);
        set.attached.extend(read.attached);
        set.attached_errors.extend(read.errors);
        if mode == Referrers::All {
            for (suffix, kind) in referrers::cosign_artifact_tags() {
                let tag = cosign_tag(d, suffix);
                let read = match get_manifest(&self.client, &self.image, &tag, &self.scopes()).await
                {
                    Ok(m) => {
                        Attached::from_cosign_tag(&m.bytes, m.media_type.as_deref(), suffix, kind)
                    }
                    Err(TransportError::NotFound(_)) => continue,
                    Err(e) => Err(e.to_string()),
                };
                set.add_attached(read, format_args!("{}:{tag}", self.image.name()));
            }
        }
        Ok(())
    }
}

impl DockerDestination {
    /// Writes attached artifacts of `subject` (their blobs are already pushed): each manifest
    /// by digest (or, for cosign's tags, under its tag); then, for referrers the registry did
    /// not index itself (no `OCI-Subject` in its answer), the fallback index.
    pub(super) async fn write_attached(
        &self,
        subject: &Digest,
        attached: &[&Attached],
    ) -> Result<()> {
        let mut unindexed = Vec::new();
        for a in attached {
            let reference = match &a.via {
                Via::Referrer => a.digest.to_string(),
                Via::Tag(suffix) => cosign_tag(subject, suffix),
            };
            let indexed = self.put_manifest_answer(&a.manifest, &reference).await?;
            if a.via == Via::Referrer && !indexed {
                unindexed.push(a.index_entry());
            }
        }
        if unindexed.is_empty() {
            return Ok(());
        }
        let tag = fallback_tag(subject);
        let existing = match get_manifest(&self.client, &self.image, &tag, &self.scopes()).await {
            Ok(m) => Some(m.bytes.to_vec()),
            Err(TransportError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let merged = referrers::merge_fallback(existing.as_deref(), &unindexed).map_err(|e| {
            TransportError::registry(
                format!("{}:{tag}", self.image.name()),
                format!("the existing referrers fallback index: {e}"),
            )
        })?;
        if let Some(bytes) = merged {
            let raw = RawManifest {
                bytes: bytes.into(),
                media_type: Some(crate::manifest::OCI_INDEX.to_string()),
            };
            self.put_manifest_answer(&raw, &tag).await?;
        }
        Ok(())
    }

    /// Writes sigstore bundles that arrived as signature blobs (from `dir:`, or a store that
    /// kept no artifact) as referrers of `subject`, in cosign's layout.
    pub(super) async fn put_bundles(
        &self,
        subject: &Digest,
        bundles: &[crate::signature::sigstore::SigstoreSignature],
    ) -> Result<()> {
        let m = get_manifest(
            &self.client,
            &self.image,
            &subject.to_string(),
            &self.scopes(),
        )
        .await?;
        let media_type = m.media_type.clone().unwrap_or_else(|| {
            crate::manifest::detect(&m.bytes, None)
                .map(|k| k.media_type().to_string())
                .unwrap_or_else(|_| crate::manifest::OCI_MANIFEST.to_string())
        });
        let mut artifacts = Vec::new();
        for sig in bundles {
            let (manifest, blobs) =
                referrers::bundle_artifact(subject, &media_type, m.bytes.len() as u64, sig);
            for (d, bytes) in &blobs {
                self.put_small_blob(d, bytes).await?;
            }
            artifacts.push(
                Attached::from_manifest(
                    &manifest,
                    Some(crate::manifest::OCI_MANIFEST),
                    Via::Referrer,
                )
                .map_err(TransportError::Unsupported)?,
            );
        }
        let refs: Vec<&Attached> = artifacts.iter().collect();
        self.write_attached(subject, &refs).await
    }
}
