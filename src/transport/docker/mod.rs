//! `docker://REF`: a registry through the OCI distribution API, as source and destination.
//!
//! Blobs stream in both directions and are never whole in memory; a blob download cut off
//! midway resumes with `Range` where the registry allows, and a large blob is fetched over
//! several connections in ranges where the registry honours them (`ranges.rs`); pushes skip
//! blobs the registry has and mount them across repositories of the same registry. Signatures come from the registry's
//! signature extension when it announces one, else from the lookaside storage registries.d names.

pub mod auth;
pub mod auth_store;
pub mod blob_locations;
pub mod client;
pub mod limits;
pub mod lookaside;
pub mod mirrors;
pub mod pool;
pub mod probe;
pub mod ranges;
pub mod reference;
mod referrers;
pub mod registry_ops;

pub use reference::Reference;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use futures::StreamExt;
use reqwest::StatusCode;
use url::Url;

use self::blob_locations::{BlobLocations, Claim, ClaimGuard, Scope};
use self::client::RegistryClient;
use super::*;
use crate::config::registries_d::RegistriesConfig;
use crate::reference::DockerReference;
use crate::signature::sniff::Format;
use crate::signature::{SignatureSlot, SlotReadError, SlotReadErrorKind};
use crate::transport::attachments;

/// How long one lookaside request may take by default.
pub const DEFAULT_LOOKASIDE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a source reads lookaside signatures from when registries.d configures nothing, and
/// the client it reads them with (no credentials; the registry side's TLS policy).
#[derive(Clone)]
pub struct LookasideReader {
    /// containers/image's built-in default base, when the session has one.
    pub default_base: Option<Url>,
    /// The HTTP client for lookaside reads.
    pub http: reqwest::Client,
}

fn pull_scope(r: &DockerReference) -> String {
    format!("repository:{}:pull", r.path())
}

fn push_scope(r: &DockerReference) -> String {
    format!("repository:{}:pull,push", r.path())
}

/// The manifest reference of `r`: its digest if it has one, else its tag.
fn manifest_ref(r: &DockerReference) -> String {
    match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    }
}

/// The `docker://` transport.
pub struct DockerTransport;

#[async_trait]
impl Transport for DockerTransport {
    fn name(&self) -> &'static str {
        reference::NAME
    }
    fn grammar(&self) -> &'static str {
        "docker://HOST/REPO[:TAG|@DIGEST]"
    }
    fn parse(&self, within: &str) -> std::result::Result<ImageReference, ReferenceError> {
        Reference::parse(within)
    }
    fn sync_destination(
        &self,
        name: &str,
    ) -> Option<std::result::Result<ImageReference, ReferenceError>> {
        Some(Reference::parse(&format!("//{name}")))
    }
    async fn open_source(
        &self,
        session: &Session,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Box<dyn ImageSource>> {
        let Reference(r) = registry::own::<Reference>(reference)?;
        session.docker.open_source(session, r, options).await
    }
    async fn open_destination(
        &self,
        session: &Session,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Box<dyn ImageDestination>> {
        let Reference(r) = registry::own::<Reference>(reference)?;
        let registries = session.registries().await?;
        let client = session.docker.registry_client(session, r, options).await?;
        let locations = session.docker.host(session, r.domain()).1;
        Ok(Box::new(
            DockerDestination::new(r, client, registries).with_blob_locations(locations),
        ))
    }
    async fn present(
        &self,
        session: &Session,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Option<Present>> {
        let Reference(r) = registry::own::<Reference>(reference)?;
        let client = session.docker.registry_client(session, r, options).await?;
        let Some(head) = probe::manifest_head(&client, r, probe::Access::Push).await? else {
            return Ok(None);
        };
        let registries = session.registries().await?;
        let n = probe::destination_signatures(&client, &registries, r, &head.digest).await?;
        Ok(Some(Present::new(head.digest, n)))
    }
    /// Connects to the registry (the probe), then opens `connections` connections and fetches
    /// the token for the copy's access. A pull through mirrors is left alone: which endpoint
    /// serves it is only known once the manifest is read.
    async fn warm_up(
        &self,
        session: &Session,
        reference: &ImageReference,
        options: &TransportOptions,
        connections: usize,
        writing: bool,
    ) {
        let Ok(Reference(r)) = registry::own::<Reference>(reference) else {
            return;
        };
        if !writing {
            let Ok(conf) = session.registries_conf().await else {
                return;
            };
            match conf.pull_sources(r) {
                Ok(sources) if matches!(sources.as_slice(), [only] if only.reference == *r) => {}
                _ => return,
            }
        }
        let Ok(client) = session.docker.registry_client(session, r, options).await else {
            return;
        };
        let scope = if writing {
            push_scope(r)
        } else {
            pull_scope(r)
        };
        client.warm_up(connections, &[scope], !writing).await;
    }

    /// The repository's tags, without cosign's attachment tags and referrers fallback indexes.
    async fn list_repository(
        &self,
        session: &Session,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Vec<HeldImage>> {
        let Reference(r) = registry::own::<Reference>(reference)?;
        let client = session.docker.registry_client(session, r, options).await?;
        let mut out = Vec::new();
        for tag in registry_ops::list_images(&client, r).await? {
            // A tag the registry lists but docker references cannot name is not one of ours.
            if let Ok(image) = r.with_tag(&tag) {
                out.push(HeldImage::new(tag, Reference::image(image)));
            }
        }
        Ok(out)
    }

    async fn delete(
        &self,
        session: &Session,
        reference: &ImageReference,
        options: &TransportOptions,
        request: &DeleteRequest,
    ) -> Result<Option<Deletion>> {
        let Reference(r) = registry::own::<Reference>(reference)?;
        let client = session.docker.registry_client(session, r, options).await?;
        let registries = session.registries().await?;
        registry_ops::delete_tag(
            &client,
            r,
            &registries,
            &request.keep,
            request.prepared.as_ref(),
        )
        .await
    }

    /// The tag's manifest and what is attached to it, read while nothing is deleted yet.
    async fn prepare_delete(
        &self,
        session: &Session,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Option<PreparedDeletion>> {
        let Reference(r) = registry::own::<Reference>(reference)?;
        let client = session.docker.registry_client(session, r, options).await?;
        registry_ops::prepare_delete_tag(&client, r).await
    }
}

/// Reads from a registry.
pub struct DockerSource {
    reference: ImageReference,
    image: DockerReference,
    client: Arc<RegistryClient>,
    registries: Arc<RegistriesConfig>,
    lookaside: LookasideReader,
    referrers: crate::transport::referrers::Referrers,
}

impl DockerSource {
    /// Reads attached artifacts as `mode` says (`--referrers`; the default reads signatures
    /// among the referrers where registries.d enables them).
    pub fn with_referrers(mut self, mode: crate::transport::referrers::Referrers) -> DockerSource {
        self.referrers = mode;
        self
    }

    /// A source for `r` over a connected client, with registries.d and the lookaside reader.
    pub fn new(
        r: &DockerReference,
        client: Arc<RegistryClient>,
        registries: Arc<RegistriesConfig>,
        lookaside: LookasideReader,
    ) -> DockerSource {
        DockerSource {
            reference: Reference::image(r.clone()),
            image: r.clone(),
            client,
            registries,
            lookaside,
            referrers: Default::default(),
        }
    }

    fn scopes(&self) -> Vec<String> {
        vec![pull_scope(&self.image)]
    }
}

/// A manifest, fetched again (within the retry limit) when its body breaks off or stalls: the
/// request itself is retried by the client, but a body cut short arrives as a success.
async fn get_manifest(
    client: &RegistryClient,
    image: &DockerReference,
    reference: &str,
    scopes: &[String],
) -> Result<RawManifest> {
    let mut attempt = 0;
    loop {
        match get_manifest_once(client, image, reference, scopes).await {
            Err(Interrupted(e)) if attempt < client.retry_times() => {
                tracing::info!("{e}; fetching the manifest again");
                tokio::time::sleep(client::backoff(attempt)).await;
                attempt += 1;
            }
            Err(Interrupted(e)) => return Err(e),
            Ok(r) => return r,
        }
    }
}

/// A manifest body that broke off or stalled: worth fetching again.
struct Interrupted(TransportError);

async fn get_manifest_once(
    client: &RegistryClient,
    image: &DockerReference,
    reference: &str,
    scopes: &[String],
) -> std::result::Result<Result<RawManifest>, Interrupted> {
    let url = client.url(&format!("v2/{}/manifests/{reference}", image.path()));
    let accept = crate::manifest::ACCEPTED.join(", ");
    let resp = client
        .send_with_retries(scopes, |c| {
            c.get(url.clone())
                .header(reqwest::header::ACCEPT, accept.clone())
        })
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    if !resp.status().is_success() {
        return Ok(Err(client.status_error(&url, resp).await));
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or("").trim().to_string());
    if resp
        .content_length()
        .is_some_and(|n| n > crate::manifest::MAX_MANIFEST_SIZE as u64)
    {
        return Ok(Err(TransportError::Manifest {
            what: url.to_string(),
            source: crate::manifest::ManifestError::TooLarge(
                resp.content_length().unwrap_or(0) as usize
            ),
        }));
    }
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    let mut watch = http::ProgressWatch::new(client.timeouts().stall);
    loop {
        let chunk = match watch.next(&mut stream).await {
            Ok(None) => break,
            Ok(Some(c)) => c.map_err(|e| {
                Interrupted(client::request_error(
                    &e,
                    &client::redact(&url),
                    "reading the manifest",
                ))
            })?,
            Err(stalled) => {
                return Err(Interrupted(TransportError::registry(
                    client::redact(&url),
                    format!("reading the manifest: {stalled}"),
                )));
            }
        };
        body.extend_from_slice(&chunk);
        if body.len() > crate::manifest::MAX_MANIFEST_SIZE {
            return Ok(Err(TransportError::Manifest {
                what: url.to_string(),
                source: crate::manifest::ManifestError::TooLarge(body.len()),
            }));
        }
    }
    Ok(check_manifest(&url, content_type, body, reference))
}

/// The manifest a registry sent, checked: not an HTML page, a known kind, and the digest the
/// request named (when it named one).
fn check_manifest(
    url: &Url,
    content_type: Option<String>,
    body: Vec<u8>,
    reference: &str,
) -> Result<RawManifest> {
    if let Some(ct) = &content_type
        && ct.eq_ignore_ascii_case("text/html")
    {
        return Err(TransportError::registry(
            url.to_string(),
            format!(
                "answered an HTML page (Content-Type {ct:?}) where a manifest was expected: {:?}; is this really a registry?",
                String::from_utf8_lossy(body.get(..80).unwrap_or(&body))
            ),
        ));
    }
    crate::manifest::detect(&body, content_type.as_deref()).map_err(|source| {
        TransportError::Manifest {
            what: url.to_string(),
            source,
        }
    })?;
    if let Ok(d) = Digest::parse(reference)
        && !d.matches(&body)
    {
        return Err(TransportError::DigestMismatch {
            url: url.to_string(),
            actual: d.of_same_algorithm(&body),
            expected: d,
            mirror: false,
        });
    }
    let media_type = content_type.filter(|c| crate::manifest::ACCEPTED.contains(&c.as_str()));
    Ok(RawManifest {
        bytes: body.into(),
        media_type,
    })
}

/// A blob download that resumes with `Range: bytes=N-` when the connection breaks.
fn resumable_blob(
    client: Arc<RegistryClient>,
    url: Url,
    scopes: Vec<String>,
    first: reqwest::Response,
) -> ByteStream {
    struct State {
        client: Arc<RegistryClient>,
        url: Url,
        scopes: Vec<String>,
        body: Option<futures::stream::BoxStream<'static, reqwest::Result<Bytes>>>,
        watch: http::ProgressWatch,
        offset: u64,
        resumes: u32,
        done: bool,
    }
    let stall = client.timeouts().stall;
    let state = State {
        client,
        url,
        scopes,
        body: Some(first.bytes_stream().boxed()),
        watch: http::ProgressWatch::new(stall),
        offset: 0,
        resumes: 0,
        done: false,
    };
    Box::pin(futures::stream::unfold(state, move |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            let body = st.body.as_mut()?;
            // A body that stops moving (silence, or a trickle) is a broken download: resumed
            // like a reset one, within the retry limit.
            let next = match st.watch.next(body).await {
                Ok(n) => n.map(|r| r.map_err(|e| e.to_string())),
                Err(stalled) => Some(Err(stalled.to_string())),
            };
            match next {
                Some(Ok(chunk)) => {
                    st.offset += chunk.len() as u64;
                    return Some((Ok(chunk), st));
                }
                None => return None,
                Some(Err(e)) => {
                    st.body = None;
                    st.watch = http::ProgressWatch::new(stall);
                    if st.resumes >= st.client.retry_times().max(1) {
                        st.done = true;
                        let msg = format!(
                            "{}: the download broke off after {} bytes and could not be resumed: {e}",
                            st.url, st.offset
                        );
                        return Some((Err(std::io::Error::other(msg)), st));
                    }
                    st.resumes += 1;
                    tokio::time::sleep(client::backoff(st.resumes - 1)).await;
                    tracing::info!("{}: resuming at byte {} after: {e}", st.url, st.offset);
                    let range = format!("bytes={}-", st.offset);
                    let url = st.url.clone();
                    let resp = st
                        .client
                        .send_with_retries(&st.scopes, |c| {
                            c.get(url.clone())
                                .header(reqwest::header::RANGE, range.clone())
                        })
                        .await;
                    match resp {
                        Ok(r) if r.status() == StatusCode::PARTIAL_CONTENT => {
                            st.body = Some(r.bytes_stream().boxed())
                        }
                        Ok(r) if r.status() == StatusCode::OK && st.offset == 0 => {
                            st.body = Some(r.bytes_stream().boxed())
                        }
                        Ok(r) => {
                            st.done = true;
                            let msg = format!(
                                "{}: the download broke off after {} bytes and the registry does not resume it (answered {} to a Range request)",
                                st.url,
                                st.offset,
                                r.status()
                            );
                            return Some((Err(std::io::Error::other(msg)), st));
                        }
                        Err(e) => {
                            st.done = true;
                            return Some((Err(std::io::Error::other(e.to_string())), st));
                        }
                    }
                }
            }
        }
    }))
}

#[derive(serde::Deserialize)]
struct ExtensionList {
    #[serde(default)]
    signatures: Vec<ExtensionSignature>,
}

#[derive(serde::Deserialize, serde::Serialize)]
struct ExtensionSignature {
    #[serde(rename = "schemaVersion", alias = "version", default)]
    schema_version: i64,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    content: String,
}

#[async_trait]
impl ImageSource for DockerSource {
    fn reference(&self) -> &ImageReference {
        &self.reference
    }

    async fn head(&self) -> Result<Option<ManifestHead>> {
        probe::manifest_head(&self.client, &self.image, probe::Access::Pull).await
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<RawManifest> {
        let reference = match instance {
            Some(d) => d.to_string(),
            None => manifest_ref(&self.image),
        };
        match get_manifest(&self.client, &self.image, &reference, &self.scopes()).await {
            Err(TransportError::NotFound(raw)) if instance.is_none() => Err(
                TransportError::NotFound(self.not_found(&reference, raw).await),
            ),
            other => other,
        }
    }

    async fn blob(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        let url = self.client.url(&format!(
            "v2/{}/blobs/{}",
            self.image.path(),
            descriptor.digest
        ));
        let scopes = self.scopes();
        if descriptor.size >= ranges::RANGED_FROM {
            return ranges::fetch(self.client.clone(), url, scopes, descriptor.size).await;
        }
        let resp = self
            .client
            .send_with_retries(&scopes, |c| c.get(url.clone()))
            .await?;
        if !resp.status().is_success() {
            return Err(self.client.status_error(&url, resp).await);
        }
        Ok(resumable_blob(self.client.clone(), url, scopes, resp))
    }

    async fn signatures(
        &self,
        manifest_digest: &Digest,
        _instance: Option<&Digest>,
    ) -> Result<SignatureSet> {
        let tag = attachments::signature_tag(manifest_digest);
        let at = format!("{}:{tag}", self.image.name());
        let use_attachments = self.registries.use_sigstore_attachments(&self.image);
        // The simple signatures and the sigstore attachment are asked for at once: neither
        // request waits for the other's round trip.
        let (simple, attachment) =
            futures::future::join(self.simple_signatures(manifest_digest), async {
                if use_attachments {
                    Attachment::Read(self.attachment_manifest(&tag).await)
                } else {
                    Attachment::Exists(self.attachment_exists(&tag).await)
                }
            })
            .await;
        let mut set = simple?;
        if let Attachment::Read(read) = attachment {
            match read? {
                Some(bytes) => {
                    let first = set.slots.len() + 1;
                    let location = format!("the sigstore attachment {at}");
                    let slots =
                        attachments::read_slots(&bytes, &location, first, |d| self.small_blob(d))
                            .await
                            .map_err(|source| TransportError::Manifest {
                                what: location.clone(),
                                source,
                            })?;
                    set.slots.extend(slots);
                    set.searched.push(format!(
                        "the sigstore attachment {at} (use-sigstore-attachments is on)"
                    ));
                }
                None => set.searched.push(format!(
                    "sigstore attachments (use-sigstore-attachments is on): there is no {at}"
                )),
            }
        } else if matches!(attachment, Attachment::Exists(true)) {
            // containers/image#1613: say why a signature that exists was not looked at.
            set.searched.push(format!(
                "NOT READ: a sigstore attachment {at} exists, but use-sigstore-attachments is not enabled for {} in registries.d{}",
                self.image.name(),
                self.registries
                    .origin()
                    .map(|o| format!(" ({})", o.display()))
                    .unwrap_or_default()
            ));
        }
        self.read_attached(manifest_digest, &mut set).await?;
        Ok(set)
    }
}

/// What a source learned about the sigstore attachment of a manifest: read where registries.d
/// enables attachments, else only whether one exists (for a note).
enum Attachment {
    Read(Result<Option<Vec<u8>>>),
    Exists(bool),
}

impl DockerSource {
    /// What a 404 for the image's manifest means, in words: no such repository, or no such tag
    /// (naming the tags the repository has when there are few), or no such digest.
    async fn not_found(&self, reference: &str, raw: String) -> String {
        let repo = self.image.name();
        match list_tags(&self.client, &self.image).await {
            Err(TransportError::NotFound(_)) => format!(
                "{repo}: no such repository in {} ({raw})",
                self.client.registry()
            ),
            Ok(tags) if self.image.digest().is_some() => format!(
                "{repo}: no manifest {reference} in the repository (it has {} tag(s); {raw})",
                tags.len()
            ),
            Ok(tags) if tags.is_empty() => {
                format!("{repo}: no tag {reference:?}; the repository has no tags ({raw})")
            }
            Ok(mut tags) if tags.len() <= 20 => {
                tags.sort();
                format!(
                    "{repo}: no tag {reference:?}; the repository has {} ({raw})",
                    tags.join(", ")
                )
            }
            Ok(tags) => format!(
                "{repo}: no tag {reference:?} among the repository's {} tags ({raw})",
                tags.len()
            ),
            Err(_) => raw,
        }
    }

    /// Simple-signing signatures: the registry's extension when it has one, else lookaside.
    async fn simple_signatures(&self, manifest_digest: &Digest) -> Result<SignatureSet> {
        if self.client.supports_signatures {
            let url = self.client.url(&format!(
                "extensions/v2/{}/signatures/{manifest_digest}",
                self.image.path()
            ));
            let resp = self
                .client
                .send_with_retries(&self.scopes(), |c| c.get(url.clone()))
                .await?;
            if !resp.status().is_success() {
                return Err(self.client.status_error(&url, resp).await);
            }
            let body = self
                .client
                .read_limited(resp, client::MAX_SIGNATURE_LIST, &url)
                .await?;
            let list: ExtensionList = serde_json::from_slice(&body).map_err(|e| {
                TransportError::registry(url.to_string(), format!("decoding signature list: {e}"))
            })?;
            let slots = list
                .signatures
                .into_iter()
                .filter(|s| s.schema_version == 2 && s.kind == "atomic")
                .enumerate()
                .map(|(i, s)| SignatureSlot {
                    index: i + 1,
                    location: format!("{url} ({})", s.name),
                    content: base64::engine::general_purpose::STANDARD
                        .decode(&s.content)
                        .map_err(|e| SlotReadError {
                            kind: SlotReadErrorKind::Io,
                            message: format!("invalid base64 content: {e}"),
                        }),
                })
                .collect();
            return Ok(SignatureSet::new(
                slots,
                format!("the registry's signature extension ({url})"),
            ));
        }
        let (base, from) = match self.registries.read_base(&self.image)? {
            Some(b) => (
                b,
                self.registries
                    .read_source(&self.image)
                    .unwrap_or_else(|| "registries.d".into()),
            ),
            None => match &self.lookaside.default_base {
                Some(b) => (
                    b.clone(),
                    format!(
                        "the built-in default: no registries.d entry covers {}",
                        self.image.name()
                    ),
                ),
                None => {
                    return Ok(SignatureSet::new(
                        vec![],
                        format!(
                            "no lookaside: no registries.d entry covers {}",
                            self.image.name()
                        ),
                    ));
                }
            },
        };
        let slots =
            lookaside::read_signatures(&self.lookaside.http, &base, &self.image, manifest_digest)
                .await;
        let url =
            crate::config::registries_d::signature_url(&base, &self.image, manifest_digest, 1);
        Ok(SignatureSet::new(
            slots,
            format!(
                "lookaside {} ({from})",
                url.as_str().trim_end_matches("signature-1")
            ),
        ))
    }

    /// The attachment manifest tagged `tag`, or `None` when there is none.
    async fn attachment_manifest(&self, tag: &str) -> Result<Option<Vec<u8>>> {
        match get_manifest(&self.client, &self.image, tag, &self.scopes()).await {
            Ok(m) => Ok(Some(m.bytes.to_vec())),
            Err(TransportError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether a manifest is tagged `tag` (for a message only: any failure is "no").
    async fn attachment_exists(&self, tag: &str) -> bool {
        let url = self
            .client
            .url(&format!("v2/{}/manifests/{tag}", self.image.path()));
        let accept = crate::manifest::ACCEPTED.join(", ");
        matches!(
            self.client
                .send_with_retries(&self.scopes(), |c| c
                    .head(url.clone())
                    .header(reqwest::header::ACCEPT, accept.clone()))
                .await,
            Ok(r) if r.status().is_success()
        )
    }

    /// A small blob (a signature payload), capped at the signature limit.
    async fn small_blob(&self, d: Descriptor) -> std::result::Result<Vec<u8>, String> {
        let url = self
            .client
            .url(&format!("v2/{}/blobs/{}", self.image.path(), d.digest));
        let resp = self
            .client
            .send_with_retries(&self.scopes(), |c| c.get(url.clone()))
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(self.client.status_error(&url, resp).await.to_string());
        }
        self.client
            .read_limited(resp, crate::signature::MAX_SIGNATURE_SIZE, &url)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Writes to a registry.
pub struct DockerDestination {
    reference: ImageReference,
    image: DockerReference,
    client: Arc<RegistryClient>,
    registries: Arc<RegistriesConfig>,
    locations: Option<Arc<BlobLocations>>,
    /// The push (and landing) claims of blobs this destination is pushing, held until the
    /// push ends.
    claims: std::sync::Mutex<std::collections::HashMap<Digest, (ClaimGuard, ClaimGuard)>>,
}

impl DockerDestination {
    /// Adds `new` to the sigstore attachment of `manifest_digest` (keeping what it holds):
    /// the payloads and the config are pushed, then the manifest under its tag.
    async fn put_attachment(
        &self,
        manifest_digest: &Digest,
        new: &[crate::signature::sigstore::SigstoreSignature],
    ) -> Result<()> {
        let tag = attachments::signature_tag(manifest_digest);
        let what = format!("the sigstore attachment {}:{tag}", self.image.name());
        let existing = match get_manifest(&self.client, &self.image, &tag, &self.scopes()).await {
            Ok(m) => Some(m.bytes.to_vec()),
            Err(TransportError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let bad = |source| TransportError::Manifest {
            what: what.clone(),
            source,
        };
        let Some((layers, added)) = attachments::merge(existing.as_deref(), new).map_err(bad)?
        else {
            return Ok(());
        };
        let attachment = attachments::build(&layers)
            .map_err(|e| TransportError::Unsupported(format!("building {what}: {e}")))?;
        for (d, bytes) in added.iter().chain(attachment.blobs.iter()) {
            self.put_small_blob(d, bytes).await?;
        }
        let raw = RawManifest {
            bytes: attachment.manifest.into(),
            media_type: Some(crate::manifest::OCI_MANIFEST.to_string()),
        };
        self.put_manifest_as(&raw, &tag).await
    }

    /// Pushes a small blob (a signature payload, a config) unless the registry has it.
    async fn put_small_blob(&self, d: &Descriptor, bytes: &[u8]) -> Result<()> {
        let url = self
            .client
            .url(&format!("v2/{}/blobs/{}", self.image.path(), d.digest));
        let resp = self
            .client
            .send_with_retries(&self.scopes(), |c| c.head(url.clone()))
            .await?;
        if resp.status().is_success() {
            return Ok(());
        }
        let stream: ByteStream = Box::pin(futures::stream::once({
            let b = Bytes::copy_from_slice(bytes);
            async move { Ok(b) }
        }));
        self.upload(d, stream).await
    }

    /// One streamed upload of a blob (POST, then one PUT whose body is `stream`).
    async fn upload(&self, descriptor: &Descriptor, stream: ByteStream) -> Result<()> {
        let start = self
            .client
            .url(&format!("v2/{}/blobs/uploads/", self.image.path()));
        let resp = self
            .client
            .send_with_retries(&self.scopes(), |c| c.post(start.clone()))
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.client.status_error(&start, resp).await);
        }
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                TransportError::registry(
                    start.to_string(),
                    "the registry started an upload without a Location",
                )
            })?;
        let mut url = start.join(location).map_err(|e| {
            TransportError::registry(
                start.to_string(),
                format!("invalid upload Location {location:?}: {e}"),
            )
        })?;
        url.query_pairs_mut()
            .append_pair("digest", &descriptor.digest.to_string());
        // One streamed PUT: the body flows from the source as it arrives, nothing is buffered
        // beyond the stream's chunks. If the stream fails (including the digest check at its
        // end), the request is aborted and the registry commits nothing.
        let rb = self
            .client
            .http()
            .put(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, descriptor.size);
        let resp = self
            .client
            .send_upload(&self.scopes(), rb, stream, &url)
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.client.status_error(&url, resp).await);
        }
        Ok(())
    }

    /// Writes `manifest` under `reference` (a tag or digest).
    async fn put_manifest_as(&self, manifest: &RawManifest, reference: &str) -> Result<()> {
        self.put_manifest_answer(manifest, reference)
            .await
            .map(|_| ())
    }

    /// Writes `manifest` under `reference`; true when the registry answered with
    /// `OCI-Subject`, saying it indexed the manifest as a referrer of its subject.
    async fn put_manifest_answer(&self, manifest: &RawManifest, reference: &str) -> Result<bool> {
        let url = self
            .client
            .url(&format!("v2/{}/manifests/{reference}", self.image.path()));
        let media_type = manifest.media_type.clone().unwrap_or_else(|| {
            crate::manifest::detect(&manifest.bytes, None)
                .map(|k| k.media_type().to_string())
                .unwrap_or_else(|_| crate::manifest::OCI_MANIFEST.to_string())
        });
        let bytes = manifest.bytes.clone();
        let resp = self
            .client
            .send_with_retries(&self.scopes(), |c| {
                c.put(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, media_type.clone())
                    .body(bytes.clone())
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.client.status_error(&url, resp).await);
        }
        Ok(resp.headers().contains_key("oci-subject"))
    }

    /// A destination for `r` over a connected client, with registries.d for lookaside writes.
    pub fn new(
        r: &DockerReference,
        client: Arc<RegistryClient>,
        registries: Arc<RegistriesConfig>,
    ) -> DockerDestination {
        DockerDestination {
            reference: Reference::image(r.clone()),
            image: r.clone(),
            client,
            registries,
            locations: None,
            claims: Default::default(),
        }
    }

    /// Shares what the session knows about the registry's blobs: blobs other images pushed to
    /// sibling repositories are mounted from there, and a blob another image is pushing right
    /// now is waited for rather than sent twice.
    pub fn with_blob_locations(mut self, locations: Arc<BlobLocations>) -> DockerDestination {
        self.locations = Some(locations);
        self
    }

    fn scopes(&self) -> Vec<String> {
        vec![push_scope(&self.image)]
    }

    fn landed(&self, digest: &Digest) {
        if let Some(l) = &self.locations {
            l.record(digest, self.image.path());
        }
    }

    /// Asks the registry to mount `digest` into this repository from `from` (same registry).
    async fn mount_from(&self, digest: &Digest, from: &DockerReference) -> Result<bool> {
        let mut url = self
            .client
            .url(&format!("v2/{}/blobs/uploads/", self.image.path()));
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from.path());
        let scopes = vec![push_scope(&self.image), pull_scope(from)];
        let resp = self
            .client
            .send_with_retries(&scopes, |c| c.post(url.clone()))
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // The registry started an ordinary upload instead; cancel it.
                if let Some(loc) = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    && let Ok(u) = self.client.url("/").join(loc)
                {
                    let _ = self
                        .client
                        .send_with_retries(&self.scopes(), |c| c.delete(u.clone()))
                        .await;
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    /// Mounts `digest` from the copy's source when that is another repository of this registry.
    async fn mount_from_source(&self, digest: &Digest, source: &ImageReference) -> Result<bool> {
        match source.downcast_ref::<Reference>() {
            Some(Reference(src))
                if src.domain() == self.image.domain() && src.path() != self.image.path() =>
            {
                self.mount_from(digest, src).await
            }
            _ => Ok(false),
        }
    }

    /// Mounts `digest` from a sibling repository the session saw it land in.
    async fn mount_from_known(&self, digest: &Digest) -> Result<bool> {
        let Some(l) = &self.locations else {
            return Ok(false);
        };
        for repo in l.candidates(digest, self.image.path()) {
            let Ok(from) = DockerReference::parse(&format!("{}/{repo}", self.image.domain()))
            else {
                continue;
            };
            if self.mount_from(digest, &from).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[async_trait]
impl ImageDestination for DockerDestination {
    fn reference(&self) -> &ImageReference {
        &self.reference
    }

    fn signature_support(&self, kind: Format) -> SignatureSupport {
        if kind == Format::SigstoreJson {
            // As containers/image: sigstore signatures go to attachments only where
            // registries.d enables them for the repository.
            return if self.registries.use_sigstore_attachments(&self.image) {
                SignatureSupport::Yes
            } else {
                SignatureSupport::No(format!(
                    "writing sigstore attachments is disabled by configuration: set use-sigstore-attachments: true for {} in registries.d",
                    self.image.name()
                ))
            };
        }
        if self.client.supports_signatures {
            return SignatureSupport::Yes;
        }
        match self.registries.write_base(&self.image) {
            Ok(Some(u)) if u.scheme() == "file" => SignatureSupport::Yes,
            Ok(Some(u)) => SignatureSupport::No(format!(
                "the lookaside for {} is {u}, and ferry writes lookaside signatures only to file:// locations; set lookaside-staging: file:///... for it in registries.d",
                self.image.name()
            )),
            Ok(None) => SignatureSupport::No(format!(
                "{} has no signature extension and registries.d configures no lookaside-staging (or lookaside) file:// location for {}",
                self.client.registry(),
                self.image.name()
            )),
            Err(e) => SignatureSupport::No(e.to_string()),
        }
    }

    async fn try_reuse_blob(
        &self,
        descriptor: &Descriptor,
        source: &ImageReference,
    ) -> Result<bool> {
        let url = self.client.url(&format!(
            "v2/{}/blobs/{}",
            self.image.path(),
            descriptor.digest
        ));
        let resp = self
            .client
            .send_with_retries(&self.scopes(), |c| c.head(url.clone()))
            .await?;
        match resp.status() {
            s if s.is_success() => {
                self.landed(&descriptor.digest);
                return Ok(true);
            }
            StatusCode::NOT_FOUND => {}
            _ => return Err(self.client.status_error(&url, resp).await),
        }
        let Some(locations) = &self.locations else {
            // Same registry, another repository: ask the registry to mount the blob.
            return self.mount_from_source(&descriptor.digest, source).await;
        };
        let digest = &descriptor.digest;
        let here = self.image.path();
        loop {
            // Another image of this session made it present here while this one waited.
            if locations.holds(digest, here) {
                return Ok(true);
            }
            // One image at a time makes a blob present in a repository.
            let land = match locations.claim(digest, Scope::Land(here.to_string())) {
                Claim::Mine(guard) => guard,
                Claim::Wait(other) => {
                    other.finished().await;
                    continue;
                }
            };
            if locations.holds(digest, here) {
                return Ok(true);
            }
            if self.mount_from_source(digest, source).await?
                || self.mount_from_known(digest).await?
            {
                self.landed(digest);
                return Ok(true);
            }
            // One push of a blob per registry: the others wait, then mount it from here.
            match locations.claim(digest, Scope::Push) {
                Claim::Mine(push) => {
                    self.claims
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .insert(digest.clone(), (push, land));
                    return Ok(false);
                }
                Claim::Wait(other) => {
                    drop(land);
                    other.finished().await;
                }
            }
        }
    }

    async fn put_blob(
        &self,
        _admission: &Admission,
        descriptor: &Descriptor,
        stream: ByteStream,
    ) -> Result<()> {
        let result = self.upload(descriptor, stream).await;
        // Whatever happened, this push is over: images waiting for it look again.
        let claim = self
            .claims
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&descriptor.digest);
        result?;
        self.landed(&descriptor.digest);
        drop(claim);
        Ok(())
    }

    async fn put_manifest(
        &self,
        _admission: &Admission,
        manifest: &RawManifest,
        instance: Option<&Digest>,
    ) -> Result<()> {
        let reference = match instance {
            Some(d) => d.to_string(),
            None => manifest_ref(&self.image),
        };
        self.put_manifest_as(manifest, &reference).await
    }

    async fn put_signatures(
        &self,
        _admission: &Admission,
        manifest_digest: &Digest,
        _instance: Option<&Digest>,
        signatures: &[Vec<u8>],
    ) -> Result<()> {
        let super::attachments::Split {
            sigstore,
            bundles,
            simple,
        } = super::attachments::split(signatures).map_err(TransportError::Unsupported)?;
        if !bundles.is_empty() {
            self.put_bundles(manifest_digest, &bundles).await?;
        }
        if !sigstore.is_empty() {
            self.put_attachment(manifest_digest, &sigstore).await?;
        }
        let signatures = simple.as_slice();
        if signatures.is_empty() {
            return Ok(());
        }
        if self.client.supports_signatures {
            let url = self.client.url(&format!(
                "extensions/v2/{}/signatures/{manifest_digest}",
                self.image.path()
            ));
            for s in signatures {
                let body = serde_json::to_vec(&ExtensionSignature {
                    schema_version: 2,
                    kind: "atomic".into(),
                    name: format!(
                        "{manifest_digest}@{}{}",
                        super::fsutil::unique_id(),
                        super::fsutil::unique_id()
                    ),
                    content: base64::engine::general_purpose::STANDARD.encode(s),
                })
                .map_err(|e| TransportError::Unsupported(e.to_string()))?;
                let resp = self
                    .client
                    .send_with_retries(&self.scopes(), |c| {
                        c.put(url.clone())
                            .header(reqwest::header::CONTENT_TYPE, "application/json")
                            .body(body.clone())
                    })
                    .await?;
                if !resp.status().is_success() {
                    return Err(self.client.status_error(&url, resp).await);
                }
            }
            return Ok(());
        }
        let base = self.registries.write_base(&self.image)?.ok_or_else(|| {
            TransportError::Unsupported(format!(
                "no signature storage is configured for {}: set lookaside-staging (or lookaside) to a file:// URL for it in registries.d",
                self.image.name()
            ))
        })?;
        Ok(lookaside::write_signatures(
            &base,
            &self.image,
            manifest_digest,
            signatures,
        )?)
    }

    fn attached_support(&self) -> SignatureSupport {
        SignatureSupport::Yes
    }

    async fn put_attached(
        &self,
        _admission: &Admission,
        subject: &Digest,
        _instance: Option<&Digest>,
        attached: &[&crate::transport::referrers::Attached],
    ) -> Result<()> {
        self.write_attached(subject, attached).await
    }

    /// Registries have no transaction: blobs pushed before a failure stay, unreferenced and
    /// invisible (no manifest names them) until the registry's garbage collection.
    async fn commit(self: Box<Self>, _admission: &Admission) -> Result<()> {
        Ok(())
    }
}

/// The tags of `image`'s repository (`GET /v2/NAME/tags/list`, following `Link` pages), for
/// `ferry inspect`'s `RepoTags` and `ferry list-tags`. On ferry's own client rather than
/// oci-client's `list_tags`, so the same TLS policy, credentials and retries apply as to every
/// other request.
pub async fn list_tags(client: &RegistryClient, image: &DockerReference) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Page {
        #[serde(default)]
        tags: Option<Vec<String>>,
    }
    let scopes = vec![pull_scope(image)];
    let mut url = client.url(&format!("v2/{}/tags/list", image.path()));
    let mut out = Vec::new();
    // A registry that links back to a page it already served would loop forever.
    for _ in 0..10_000 {
        let resp = client
            .send_with_retries(&scopes, |c| c.get(url.clone()))
            .await?;
        if !resp.status().is_success() {
            return Err(client.status_error(&url, resp).await);
        }
        let (body, next) = read_page(client, resp, &url).await?;
        let page: Page = serde_json::from_slice(&body).map_err(|e| {
            TransportError::registry(
                url.to_string(),
                format!("the tag list is not valid JSON: {e}"),
            )
        })?;
        out.extend(page.tags.unwrap_or_default());
        match next {
            Some(n) => {
                url = url.join(&n).map_err(|e| {
                    TransportError::registry(url.to_string(), format!("invalid Link {n:?}: {e}"))
                })?;
            }
            None => return Ok(out),
        }
    }
    Err(TransportError::registry(
        url.to_string(),
        "the tag list has more than 10000 pages; giving up",
    ))
}

/// A listing page (tags, referrers): its body, up to the manifest size cap, and the target of
/// its `Link: <URL>; rel="next"` header, if any.
async fn read_page(
    client: &RegistryClient,
    resp: reqwest::Response,
    url: &reqwest::Url,
) -> Result<(Vec<u8>, Option<String>)> {
    let next = resp
        .headers()
        .get(reqwest::header::LINK)
        .and_then(|v| v.to_str().ok())
        .and_then(next_link);
    let body = client
        .read_limited(resp, crate::manifest::MAX_MANIFEST_SIZE, url)
        .await?;
    Ok((body, next))
}

/// The target of a `Link: <URL>; rel="next"` header.
fn next_link(h: &str) -> Option<String> {
    h.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"")
            .then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn link_headers_give_the_next_page() {
        assert_eq!(
            super::next_link("</v2/a/tags/list?last=b&n=2>; rel=\"next\""),
            Some("/v2/a/tags/list?last=b&n=2".into())
        );
        assert_eq!(super::next_link("</x>; rel=\"prev\""), None);
    }
}
