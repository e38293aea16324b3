//! `docker://REF`: a registry through the OCI distribution API, as source and destination.
//!
//! Blobs stream in both directions and are never whole in memory; a blob download cut off
//! midway resumes with `Range` where the registry allows; pushes skip blobs the registry has and
//! mount them across repositories of the same registry. Signatures come from the registry's
//! signature extension when it announces one, else from the lookaside storage registries.d names.

pub mod auth;
pub mod client;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use futures::StreamExt;
use reqwest::StatusCode;
use url::Url;

use self::client::RegistryClient;
use super::*;
use crate::lookaside::{self, RegistriesConfig};
use crate::reference::DockerReference;
use crate::signature::{SignatureSlot, SlotReadError, SlotReadErrorKind};

/// How long one lookaside request may take by default.
pub const DEFAULT_LOOKASIDE_TIMEOUT: Duration = Duration::from_secs(30);

fn pull_scope(r: &DockerReference) -> String {
    format!("repository:{}:pull", r.path())
}

fn push_scope(r: &DockerReference) -> String {
    format!("repository:{}:pull,push", r.path())
}

fn config_error(e: lookaside::LookasideError) -> TransportError {
    TransportError::Config(e.to_string())
}

async fn connect(r: &DockerReference, options: &TransportOptions) -> Result<Arc<RegistryClient>> {
    let (creds, tried) = auth::resolve(r.domain(), &r.name(), options)?;
    let client = RegistryClient::connect(
        r.domain(),
        creds,
        tried,
        options.tls_verify.unwrap_or(true),
        options.retry_times.unwrap_or(3),
    )
    .await?;
    Ok(Arc::new(client))
}

/// The manifest reference of `r`: its digest if it has one, else its tag.
fn manifest_ref(r: &DockerReference) -> String {
    match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    }
}

/// Reads from a registry.
pub struct DockerSource {
    reference: ImageReference,
    image: DockerReference,
    client: Arc<RegistryClient>,
    registries: RegistriesConfig,
    lookaside_timeout: Duration,
}

impl DockerSource {
    /// Opens an image in a registry: connects (and authenticates) and reads registries.d.
    pub async fn open(r: &DockerReference, options: &TransportOptions) -> Result<DockerSource> {
        let registries =
            RegistriesConfig::load(options.registries_d.as_deref()).map_err(config_error)?;
        let client = connect(r, options).await?;
        Ok(DockerSource {
            reference: ImageReference::Docker(r.clone()),
            image: r.clone(),
            client,
            registries,
            lookaside_timeout: options
                .lookaside_timeout
                .unwrap_or(DEFAULT_LOOKASIDE_TIMEOUT),
        })
    }

    fn scopes(&self) -> Vec<String> {
        vec![pull_scope(&self.image)]
    }
}

async fn get_manifest(
    client: &RegistryClient,
    image: &DockerReference,
    reference: &str,
    scopes: &[String],
) -> Result<RawManifest> {
    let url = client.url(&format!("v2/{}/manifests/{reference}", image.path()));
    let accept = crate::manifest::ACCEPTED.join(", ");
    let resp = client
        .send_with_retries(scopes, |c| {
            c.get(url.clone())
                .header(reqwest::header::ACCEPT, accept.clone())
        })
        .await?;
    if !resp.status().is_success() {
        return Err(client.status_error(&url, resp).await);
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
        return Err(TransportError::Manifest {
            what: url.to_string(),
            source: crate::manifest::ManifestError::TooLarge(
                resp.content_length().unwrap_or(0) as usize
            ),
        });
    }
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| TransportError::Registry {
            url: url.to_string(),
            message: format!("reading the manifest: {e}"),
            status: None,
        })?;
        body.extend_from_slice(&chunk);
        if body.len() > crate::manifest::MAX_MANIFEST_SIZE {
            return Err(TransportError::Manifest {
                what: url.to_string(),
                source: crate::manifest::ManifestError::TooLarge(body.len()),
            });
        }
    }
    if let Some(ct) = &content_type
        && ct.eq_ignore_ascii_case("text/html")
    {
        return Err(TransportError::Registry {
            url: url.to_string(),
            message: format!(
                "answered an HTML page (Content-Type {ct:?}) where a manifest was expected: {:?}; is this really a registry?",
                String::from_utf8_lossy(&body[..body.len().min(80)])
            ),
            status: None,
        });
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
        return Err(TransportError::Registry {
            url: url.to_string(),
            message: format!(
                "the manifest does not match its digest {d} (it hashes to {})",
                d.of_same_algorithm(&body)
            ),
            status: None,
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
        offset: u64,
        resumes: u32,
        done: bool,
    }
    let state = State {
        client,
        url,
        scopes,
        body: Some(first.bytes_stream().boxed()),
        offset: 0,
        resumes: 0,
        done: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            let body = st.body.as_mut()?;
            match body.next().await {
                Some(Ok(chunk)) => {
                    st.offset += chunk.len() as u64;
                    return Some((Ok(chunk), st));
                }
                None => return None,
                Some(Err(e)) => {
                    st.body = None;
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

    async fn manifest(&self, instance: Option<&Digest>) -> Result<RawManifest> {
        let reference = match instance {
            Some(d) => d.to_string(),
            None => manifest_ref(&self.image),
        };
        get_manifest(&self.client, &self.image, &reference, &self.scopes()).await
    }

    async fn blob(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        let url = self.client.url(&format!(
            "v2/{}/blobs/{}",
            self.image.path(),
            descriptor.digest
        ));
        let scopes = self.scopes();
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
    ) -> Result<Vec<SignatureSlot>> {
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
            let body = resp.bytes().await.map_err(|e| TransportError::Registry {
                url: url.to_string(),
                message: e.to_string(),
                status: None,
            })?;
            let list: ExtensionList =
                serde_json::from_slice(&body).map_err(|e| TransportError::Registry {
                    url: url.to_string(),
                    message: format!("decoding signature list: {e}"),
                    status: None,
                })?;
            return Ok(list
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
                .collect());
        }
        let base = self
            .registries
            .read_base(&self.image)
            .map_err(config_error)?;
        let http = lookaside::http_client(self.client.tls_verify(), self.lookaside_timeout);
        Ok(lookaside::read_signatures(&http, &base, &self.image, manifest_digest).await)
    }
}

/// Writes to a registry.
pub struct DockerDestination {
    reference: ImageReference,
    image: DockerReference,
    client: Arc<RegistryClient>,
    registries: RegistriesConfig,
}

impl DockerDestination {
    /// Opens a registry for writing an image.
    pub async fn open(
        r: &DockerReference,
        options: &TransportOptions,
    ) -> Result<DockerDestination> {
        let registries =
            RegistriesConfig::load(options.registries_d.as_deref()).map_err(config_error)?;
        let client = connect(r, options).await?;
        Ok(DockerDestination {
            reference: ImageReference::Docker(r.clone()),
            image: r.clone(),
            client,
            registries,
        })
    }

    fn scopes(&self) -> Vec<String> {
        vec![push_scope(&self.image)]
    }
}

#[async_trait]
impl ImageDestination for DockerDestination {
    fn reference(&self) -> &ImageReference {
        &self.reference
    }

    fn signature_support(&self) -> SignatureSupport {
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
            s if s.is_success() => return Ok(true),
            StatusCode::NOT_FOUND => {}
            _ => return Err(self.client.status_error(&url, resp).await),
        }
        // Same registry, another repository: ask the registry to mount the blob.
        let ImageReference::Docker(src) = source else {
            return Ok(false);
        };
        if src.domain() != self.image.domain() || src.path() == self.image.path() {
            return Ok(false);
        }
        let mut url = self
            .client
            .url(&format!("v2/{}/blobs/uploads/", self.image.path()));
        url.query_pairs_mut()
            .append_pair("mount", &descriptor.digest.to_string())
            .append_pair("from", src.path());
        let scopes = vec![push_scope(&self.image), pull_scope(src)];
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

    async fn put_blob(&self, descriptor: &Descriptor, stream: ByteStream) -> Result<()> {
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
            .ok_or_else(|| TransportError::Registry {
                url: start.to_string(),
                message: "the registry started an upload without a Location".into(),
                status: None,
            })?;
        let mut url = start.join(location).map_err(|e| TransportError::Registry {
            url: start.to_string(),
            message: format!("invalid upload Location {location:?}: {e}"),
            status: None,
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
            .header(reqwest::header::CONTENT_LENGTH, descriptor.size)
            .body(reqwest::Body::wrap_stream(stream));
        let resp = self.client.send_once(&self.scopes(), rb).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.client.status_error(&url, resp).await);
        }
        Ok(())
    }

    async fn put_manifest(&self, manifest: &RawManifest, instance: Option<&Digest>) -> Result<()> {
        let reference = match instance {
            Some(d) => d.to_string(),
            None => manifest_ref(&self.image),
        };
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
        Ok(())
    }

    async fn put_signatures(
        &self,
        manifest_digest: &Digest,
        _instance: Option<&Digest>,
        signatures: &[Vec<u8>],
    ) -> Result<()> {
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
                    name: format!("{manifest_digest}@{:032x}", rand::random::<u128>()),
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
        let base = self.registries.write_base(&self.image).map_err(config_error)?.ok_or_else(|| {
            TransportError::Unsupported(format!(
                "no signature storage is configured for {}: set lookaside-staging (or lookaside) to a file:// URL for it in registries.d",
                self.image.name()
            ))
        })?;
        lookaside::write_signatures(&base, &self.image, manifest_digest, signatures)
            .map_err(config_error)
    }

    /// Registries have no transaction: blobs pushed before a failure stay, unreferenced and
    /// invisible (no manifest names them) until the registry's garbage collection.
    async fn commit(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// The tags of `image`'s repository, for `ferry inspect`'s `RepoTags`. This is where oci-client
/// serves as it is: one authenticated, paginated call with no headers ferry needs to see.
pub async fn list_tags(image: &DockerReference, options: &TransportOptions) -> Result<Vec<String>> {
    use oci_client::client::{ClientConfig, ClientProtocol};
    use oci_client::secrets::RegistryAuth;
    crate::init_tls();
    let tls_verify = options.tls_verify.unwrap_or(true);
    let config = ClientConfig {
        protocol: if tls_verify {
            ClientProtocol::Https
        } else {
            ClientProtocol::Http
        },
        accept_invalid_certificates: !tls_verify,
        ..Default::default()
    };
    let client = oci_client::Client::new(config);
    let reference = oci_client::Reference::with_tag(
        image.domain().to_string(),
        image.path().to_string(),
        image.tag().unwrap_or("latest").to_string(),
    );
    let auth = match auth::resolve(image.domain(), &image.name(), options)?.0 {
        Some(c) => RegistryAuth::Basic(c.username, c.password),
        None => RegistryAuth::Anonymous,
    };
    let tags = client
        .list_tags(&reference, &auth, None, None)
        .await
        .map_err(|e| TransportError::Registry {
            url: image.name(),
            message: format!("listing tags: {e}"),
            status: None,
        })?;
    Ok(tags.tags)
}
