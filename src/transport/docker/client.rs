//! The HTTP layer under the docker transport: one registry, its scheme (https, or http when TLS
//! verification is off and https does not answer), authentication (basic, or bearer tokens
//! cached per scope set) and retries with backoff that honour Retry-After. One client serves a
//! whole session ([`crate::session::Session`]): every copy to or from the registry shares its
//! connections, its tokens and its probe.
//!
//! Why not oci-client here: its high-level calls hide the response headers ferry needs
//! (Retry-After, Content-Type of an HTML error page, Range support), cache one token per
//! repository (a cross-repository mount needs pull on the source repository in the same token),
//! and offer no signature extension; so requests are built on reqwest, the HTTP layer oci-client
//! itself uses. oci-client serves where its API fits: listing tags for `ferry inspect`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};
use url::Url;

use super::auth::Credentials;
use crate::digest::ByteStream;
use crate::hint::Hint;
use crate::transport::RegistryErrorKind;
use crate::transport::TransportError;
use crate::transport::http::{self, ProgressWatch, Timeouts, TlsPolicy};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Challenge {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A connection to one registry.
pub struct RegistryClient {
    http: reqwest::Client,
    base: Url,
    registry: String,
    credentials: Option<Credentials>,
    credentials_tried: String,
    challenge: Mutex<Challenge>,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    // One token fetch at a time, so blobs copied in parallel share one token per scope set.
    token_fetch: tokio::sync::Mutex<()>,
    retry_times: u32,
    tls: TlsPolicy,
    timeouts: Timeouts,
    registry_token: Option<String>,
    /// Whether the registry announced `X-Registry-Supports-Signatures: 1`.
    pub supports_signatures: bool,
    /// The registry's request cap and 429 pause, shared with every client of the host.
    pub(crate) limits: std::sync::Arc<super::limits::RegistryLimits>,
    /// Whether [`RegistryClient::warm_up`] opened this client's connections already.
    warmed: std::sync::atomic::AtomicBool,
    /// Whether the registry answered the probe over HTTP/2 (one connection carries every
    /// request in flight).
    http2: bool,
    /// Whether a request other than a probe went out yet, and who waits for it.
    used: std::sync::atomic::AtomicBool,
    first_request: tokio::sync::Notify,
}

fn transient(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::INTERNAL_SERVER_ERROR
        || status == StatusCode::BAD_GATEWAY
        || status == StatusCode::SERVICE_UNAVAILABLE
        || status == StatusCode::GATEWAY_TIMEOUT
}

/// The longest Retry-After ferry honours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Backoff before retry `attempt` (from 0): 100 ms, 200 ms, 400 ms, … capped at 5 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(5))
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
}

fn parse_challenge(h: &str) -> Challenge {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Challenge::Basic;
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Challenge::None;
    }
    let mut params = HashMap::new();
    // key="value" pairs separated by commas; values may contain commas inside quotes.
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let (value, remaining) = if let Some(stripped) = after.strip_prefix('"') {
            match stripped.find('"') {
                Some(end) => (
                    &stripped[..end],
                    stripped[end + 1..].trim_start_matches([',', ' ']),
                ),
                None => (stripped, ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, r)) => (v, r.trim_start()),
                None => (after, ""),
            }
        };
        params.insert(k.trim().to_ascii_lowercase(), value.to_string());
        rest = remaining.trim();
    }
    match params.remove("realm") {
        Some(realm) => Challenge::Bearer {
            realm,
            service: params.remove("service"),
        },
        None => Challenge::None,
    }
}

impl RegistryClient {
    /// Connects to `registry` (`host[:port]`): https with verification, or with an insecure
    /// [`TlsPolicy`] unverified https falling back to plain http.
    pub async fn connect(
        registry: &str,
        credentials: Option<Credentials>,
        credentials_tried: String,
        tls: &TlsPolicy,
        timeouts: Timeouts,
        retry_times: u32,
    ) -> Result<RegistryClient, TransportError> {
        let api_host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        let client = http::registry_client(tls, registry)?;
        let make = |scheme: &str| {
            let base = Url::parse(&format!("{scheme}://{api_host}/")).map_err(|e| {
                TransportError::registry(registry, format!("invalid registry host: {e}"))
            })?;
            Ok::<_, TransportError>(RegistryClient {
                http: client.clone(),
                base,
                registry: registry.to_string(),
                credentials: credentials.clone(),
                credentials_tried: credentials_tried.clone(),
                challenge: Mutex::new(Challenge::None),
                tokens: Mutex::new(HashMap::new()),
                token_fetch: tokio::sync::Mutex::new(()),
                retry_times,
                tls: tls.clone(),
                timeouts,
                registry_token: None,
                supports_signatures: false,
                limits: Default::default(),
                warmed: std::sync::atomic::AtomicBool::new(false),
                http2: false,
                used: std::sync::atomic::AtomicBool::new(false),
                first_request: tokio::sync::Notify::new(),
            })
        };
        let mut https = make("https")?;
        if tls.verify {
            https.ping(retry_times).await?;
            return Ok(https);
        }
        // Without verification, https is preferred and plain http is the fallback. Both are
        // probed at once, each without retries, so a plain-http registry costs one round trip
        // rather than a failed TLS handshake and then the probe: https wins when it answers,
        // http is taken once https has failed, and only when both fail is http probed again
        // with the configured retries.
        let mut plain = make("http")?;
        let (first, second) = {
            let secure = https.ping(0);
            let insecure = plain.ping(0);
            tokio::pin!(secure, insecure);
            tokio::select! {
                s = &mut secure => match s {
                    Ok(()) => (Ok(()), None),
                    Err(e) => (Err(e), Some(insecure.await)),
                },
                i = &mut insecure => (secure.await, Some(i)),
            }
        };
        if first.is_ok() {
            return Ok(https);
        }
        match second {
            Some(Ok(())) => Ok(plain),
            Some(Err(e)) if retry_times == 0 => Err(e),
            _ => {
                plain.ping(retry_times.saturating_sub(1)).await?;
                Ok(plain)
            }
        }
    }

    async fn ping(&mut self, retries: u32) -> Result<(), TransportError> {
        let url = self.url("v2/");
        let configured = self.retry_times;
        self.retry_times = retries;
        // No token dance for the ping: a 401 here only tells how to authenticate.
        let resp = self.send_inner(&[], false, |c| c.get(url.clone())).await;
        self.retry_times = configured;
        let resp = resp?;
        let status = resp.status();
        if status != StatusCode::OK && status != StatusCode::UNAUTHORIZED {
            return Err(self.status_error(&url, resp).await);
        }
        self.http2 = resp.version() == reqwest::Version::HTTP_2;
        self.supports_signatures = resp
            .headers()
            .get("X-Registry-Supports-Signatures")
            .is_some_and(|v| v.as_bytes() == b"1");
        if let Some(h) = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            && let Ok(mut c) = self.challenge.lock()
        {
            *c = parse_challenge(h);
        }
        // Read to the end (it is small), so the connection goes back to the pool for the
        // requests that follow.
        let _ = self.read_limited(resp, MAX_ERROR_BODY, &url).await;
        Ok(())
    }

    /// Gets the registry ready for a copy's first wave of parallel requests, once per client:
    /// opens up to `connections` connections (over HTTP/1.1 each request in flight needs its
    /// own, and a new one costs a handshake round trip; a registry that speaks HTTP/2 carries
    /// them all on one, so nothing is opened there) and fetches the token for `scopes`. Each
    /// connection carries one probe (`GET /v2/`): nothing of the image is read or written, and
    /// failures are left for the copy's own requests to meet and report. Done when every
    /// connection is back in the pool, idle, so the copy's requests find it there.
    /// With `after_first_request`, the connections are opened once the client's first request
    /// has gone out (a source's manifest, which would otherwise wait for a connection of its
    /// own while the probes hold the one the client connected with).
    pub async fn warm_up(&self, connections: usize, scopes: &[String], after_first_request: bool) {
        if self.warmed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        if after_first_request {
            let sent = self.first_request.notified();
            tokio::pin!(sent);
            sent.as_mut().enable();
            if !self.used.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = tokio::time::timeout(self.timeouts.response, sent).await;
            }
        }
        let url = self.url("v2/");
        let extra = if self.http2 { 0 } else { connections };
        let probes = futures::future::join_all((0..extra).map(|_| {
            let url = url.clone();
            async move {
                let _slot = self.limits.admit().await;
                let sent = self.http.get(url).send();
                // The body is read so the connection goes back to the pool.
                if let Ok(Ok(resp)) = tokio::time::timeout(self.timeouts.response, sent).await {
                    let _ = resp.bytes().await;
                }
            }
        }));
        let token = async {
            if let Err(e) = self.token(scopes, false).await {
                tracing::debug!("fetching a token ahead of the copy: {e}");
            }
        };
        futures::future::join(probes, token).await;
    }

    /// A URL on the registry.
    pub fn url(&self, path: &str) -> Url {
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    /// Uses `token` as the bearer token for every request to a registry that asks for one,
    /// instead of fetching tokens from its token service (skopeo's `--registry-token`).
    pub fn set_registry_token(&mut self, token: Option<String>) {
        self.registry_token = token;
    }

    /// The registry's name as the user wrote it.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The TLS policy this registry is reached with (its lookaside is read with the same).
    pub fn tls(&self) -> &TlsPolicy {
        &self.tls
    }

    /// How many times failed requests are retried.
    pub fn retry_times(&self) -> u32 {
        self.retry_times
    }

    /// How long this client waits for answers and for bodies to move.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The HTTP client (for requests that must not carry credentials, like lookaside reads).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    async fn token(
        &self,
        scopes: &[String],
        force: bool,
    ) -> Result<Option<String>, TransportError> {
        let challenge = self
            .challenge
            .lock()
            .map(|c| c.clone())
            .unwrap_or(Challenge::None);
        let Challenge::Bearer { realm, service } = challenge else {
            return Ok(None);
        };
        if let Some(t) = &self.registry_token {
            return Ok(Some(t.clone()));
        }
        let key = scopes.join(" ");
        let cached = || {
            self.tokens.lock().ok().and_then(|t| {
                t.get(&key)
                    .filter(|(_, until)| *until > Instant::now())
                    .map(|(tok, _)| tok.clone())
            })
        };
        if !force && let Some(tok) = cached() {
            return Ok(Some(tok));
        }
        let _single = self.token_fetch.lock().await;
        if !force && let Some(tok) = cached() {
            return Ok(Some(tok));
        }
        let mut url = Url::parse(&realm).map_err(|e| {
            TransportError::registry(
                &realm,
                format!("the registry's token realm is not a URL: {e}"),
            )
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = &service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
        }
        let mut rb = self.http.get(url.clone());
        if let Some(c) = &self.credentials {
            rb = rb.basic_auth(&c.username, Some(&c.password));
        }
        let resp = rb
            .send()
            .await
            .map_err(|e| request_error(&e, &redact(&url), "fetching a token"))?;
        if !resp.status().is_success() {
            let status = resp.status();
            return Err(TransportError::Registry {
                kind: RegistryErrorKind::from_status(status.as_u16()),
                url: redact(&url),
                message: format!(
                    "the token service of {} refused {} with {status}; ferry tried {}",
                    self.registry,
                    scopes.join(" "),
                    self.credentials_tried
                ),
                status: Some(status.as_u16()),
                hint: Some(Hint::Credentials {
                    registry: self.registry.clone(),
                }),
            });
        }
        // containers/image bounds token answers at 1 MiB.
        let body = self.read_limited(resp, MAX_TOKEN_RESPONSE, &url).await?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            TransportError::registry(redact(&url), format!("the token answer is not JSON: {e}"))
        })?;
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| TransportError::registry(redact(&url), "the token answer has no token"))?
            .to_string();
        let expires = v
            .get("expires_in")
            .and_then(|e| e.as_u64())
            .unwrap_or(60)
            .max(10);
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(
                key,
                (
                    token.clone(),
                    Instant::now() + Duration::from_secs(expires - 5),
                ),
            );
        }
        Ok(Some(token))
    }

    async fn authorize(
        &self,
        rb: RequestBuilder,
        scopes: &[String],
        force: bool,
    ) -> Result<RequestBuilder, TransportError> {
        let challenge = self
            .challenge
            .lock()
            .map(|c| c.clone())
            .unwrap_or(Challenge::None);
        Ok(match challenge {
            Challenge::Bearer { .. } => match self.token(scopes, force).await? {
                Some(t) => rb.bearer_auth(t),
                None => rb,
            },
            Challenge::Basic => match &self.credentials {
                Some(c) => rb.basic_auth(&c.username, Some(&c.password)),
                None => rb,
            },
            Challenge::None => rb,
        })
    }

    /// Sends a request built by `make` with authentication, retrying transient failures (429
    /// and 5xx, honouring Retry-After; connection errors) up to the retry limit and refreshing
    /// the token once on a 401. The response may still be any status.
    pub async fn send_with_retries(
        &self,
        scopes: &[String],
        make: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, TransportError> {
        self.send_inner(scopes, true, make).await
    }

    async fn send_inner(
        &self,
        scopes: &[String],
        reauthenticate: bool,
        make: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, TransportError> {
        let mut attempt = 0;
        let mut refreshed = !reauthenticate;
        loop {
            let rb = self
                .authorize(make(&self.http), scopes, refreshed && attempt == 0)
                .await?;
            let slot = self.limits.admit().await;
            if reauthenticate && !self.used.swap(true, std::sync::atomic::Ordering::SeqCst) {
                self.first_request.notify_waiters();
            }
            let result = match tokio::time::timeout(self.timeouts.response, rb.send()).await {
                Ok(r) => r.map_err(Failure::Request),
                Err(_) => Err(Failure::NoAnswer),
            };
            drop(slot);
            match result {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !refreshed => {
                    refreshed = true;
                    if let Some(h) = resp
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        && let Ok(mut c) = self.challenge.lock()
                    {
                        let new = parse_challenge(h);
                        if new == Challenge::None {
                            return Ok(resp);
                        }
                        *c = new;
                    } else {
                        return Ok(resp);
                    }
                    if let Ok(mut t) = self.tokens.lock() {
                        t.remove(&scopes.join(" "));
                    }
                    continue;
                }
                Ok(resp) if retryable(resp.status()) && attempt < self.retry_times => {
                    let wait = retry_after(resp.headers()).unwrap_or_else(|| backoff(attempt));
                    if resp.status() == StatusCode::TOO_MANY_REQUESTS {
                        self.limits.pause_for(wait);
                    }
                    tracing::info!(
                        "{} answered {}; retrying in {:?}",
                        resp.url(),
                        resp.status(),
                        wait
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Ok(resp) => {
                    // A 429 this request can no longer retry still tells every other request
                    // of the session to hold off (with --retry-times 0 too).
                    if resp.status() == StatusCode::TOO_MANY_REQUESTS
                        && let Some(wait) = retry_after(resp.headers())
                    {
                        self.limits.pause_for(wait);
                    }
                    return Ok(resp);
                }
                Err(Failure::Request(e)) if transient(&e) && attempt < self.retry_times => {
                    tracing::info!("request failed ({e}); retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(Failure::NoAnswer) if attempt < self.retry_times => {
                    tracing::info!(
                        "{}: no answer within {} seconds; retrying",
                        self.registry,
                        self.timeouts.response.as_secs()
                    );
                    attempt += 1;
                }
                Err(Failure::Request(e)) => {
                    let url = e.url().map(redact).unwrap_or_else(|| self.registry.clone());
                    return Err(request_error(&e, &url, "the request failed"));
                }
                Err(Failure::NoAnswer) => {
                    let url = make(&self.http)
                        .build()
                        .map(|r| redact(r.url()))
                        .unwrap_or_else(|_| self.registry.clone());
                    return Err(TransportError::registry(
                        url,
                        format!(
                            "no answer within {} seconds, {} times (the response timeout; the registry accepted the connection but did not answer)",
                            self.timeouts.response.as_secs(),
                            attempt + 1
                        ),
                    ));
                }
            }
        }
    }

    /// Sends `rb` once with `body` as its streamed body (which cannot be replayed), with
    /// authentication. The upload is watched: a server that stops taking the body for the stall
    /// timeout fails the request, and once the whole body is sent the answer must come within
    /// the response timeout.
    pub async fn send_upload(
        &self,
        scopes: &[String],
        rb: RequestBuilder,
        body: ByteStream,
        url: &Url,
    ) -> Result<Response, TransportError> {
        let rb = self.authorize(rb, scopes, false).await?;
        let watch = Arc::new(UploadWatch::new());
        let body = WatchedBody {
            inner: body,
            watch: watch.clone(),
        };
        let _slot = self.limits.admit().await;
        let send = rb.body(reqwest::Body::wrap_stream(body)).send();
        tokio::pin!(send);
        loop {
            tokio::select! {
                r = &mut send => {
                    return r.map_err(|e| request_error(&e, &redact(url), "the upload failed"));
                }
                _ = tokio::time::sleep(Duration::from_millis(250)) => {
                    let (idle, done) = watch.idle();
                    if !done && idle > self.timeouts.stall {
                        return Err(TransportError::registry(
                            redact(url),
                            format!(
                                "the upload made no progress for {} seconds (the stall timeout): the registry stopped taking the body",
                                idle.as_secs()
                            ),
                        ));
                    }
                    if done && idle > self.timeouts.response {
                        return Err(TransportError::registry(
                            redact(url),
                            format!(
                                "no answer within {} seconds after the whole upload was sent (the response timeout)",
                                self.timeouts.response.as_secs()
                            ),
                        ));
                    }
                }
            }
        }
    }

    /// Reads a response body of at most `limit` bytes; a larger one is refused, naming the URL
    /// and the limit, without being read whole. A body that stalls fails.
    pub async fn read_limited(
        &self,
        resp: Response,
        limit: usize,
        url: &Url,
    ) -> Result<Vec<u8>, TransportError> {
        if let Some(n) = resp.content_length()
            && n > limit as u64
        {
            return Err(TransportError::registry(
                redact(url),
                format!("the answer announces {n} bytes, more than the {limit}-byte limit for it"),
            ));
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        let mut watch = ProgressWatch::new(self.timeouts.stall);
        loop {
            match watch.next(&mut stream).await {
                Ok(Some(Ok(chunk))) => {
                    if body.len() + chunk.len() > limit {
                        return Err(TransportError::registry(
                            redact(url),
                            format!("the answer is longer than the {limit}-byte limit for it"),
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(Some(Err(e))) => {
                    return Err(request_error(&e, &redact(url), "reading the answer"));
                }
                Ok(None) => return Ok(body),
                Err(stalled) => {
                    return Err(TransportError::registry(
                        redact(url),
                        format!("reading the answer: {stalled}"),
                    ));
                }
            }
        }
    }

    /// An error for an unexpected response: the status, what the body looks like, and for a
    /// 401 which credentials were tried.
    pub async fn status_error(&self, url: &Url, resp: Response) -> TransportError {
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        // containers/image bounds error bodies at 1 MiB; the message needs far less.
        let body = self
            .read_limited(resp, MAX_ERROR_BODY, url)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(body.get(..200).unwrap_or(&body)).into_owned();
        // The registry's error as Go's errcode prints it ("manifest unknown: manifest
        // unknown", "unauthorized: authentication required"): the words skopeo shows and
        // scripts grep for.
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                let message = v.pointer("/errors/0/message").and_then(|m| m.as_str())?;
                Some(match v.pointer("/errors/0/code").and_then(|c| c.as_str()) {
                    Some(code) => {
                        format!("{}: {message}", code.to_lowercase().replace('_', " "))
                    }
                    None => message.to_string(),
                })
            });
        let mut hint = None;
        let message = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                hint = Some(Hint::Credentials {
                    registry: self.registry.clone(),
                });
                format!(
                    "{status}{}: {} refused access; ferry tried {}",
                    detail
                        .as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default(),
                    self.registry,
                    self.credentials_tried
                )
            }
            _ => match detail {
                Some(d) => format!("{status}: {d}"),
                None if content_type.starts_with("text/html") => {
                    format!(
                        "{status} with an HTML page (Content-Type {content_type:?}) where the registry API was expected: {text:?}"
                    )
                }
                None => format!(
                    "{status}{}",
                    if text.is_empty() {
                        String::new()
                    } else {
                        format!(": {text:?}")
                    }
                ),
            },
        };
        if status == StatusCode::NOT_FOUND {
            return TransportError::NotFound(format!("{}: {message}", redact(url)));
        }
        TransportError::Registry {
            kind: RegistryErrorKind::from_status(status.as_u16()),
            url: redact(url),
            message,
            status: Some(status.as_u16()),
            hint,
        }
    }
}

/// The most of a token answer ferry reads (containers/image's `iolimits`).
pub const MAX_TOKEN_RESPONSE: usize = crate::limits::MAX_TOKEN_RESPONSE as usize;

/// The most of the signature extension's list ferry reads (containers/image's
/// `MaxSignatureListBodySize`).
pub const MAX_SIGNATURE_LIST: usize = 4 * 1024 * 1024;

/// The most of an error answer ferry reads (containers/image's `iolimits`).
pub const MAX_ERROR_BODY: usize = crate::limits::MAX_ERROR_BODY as usize;

/// Why one attempt of a request failed.
enum Failure {
    Request(reqwest::Error),
    NoAnswer,
}

/// When an upload's body last moved, and whether it is all sent.
struct UploadWatch {
    state: Mutex<(Instant, bool)>,
}

impl UploadWatch {
    fn new() -> UploadWatch {
        UploadWatch {
            state: Mutex::new((Instant::now(), false)),
        }
    }
    fn touch(&self, done: bool) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *s = (Instant::now(), done);
    }
    /// How long since the body last moved, and whether it is all sent.
    fn idle(&self) -> (Duration, bool) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (s.0.elapsed(), s.1)
    }
}

/// An upload body that tells its [`UploadWatch`] whenever it moves.
struct WatchedBody {
    inner: ByteStream,
    watch: Arc<UploadWatch>,
}

impl futures::Stream for WatchedBody {
    type Item = std::io::Result<bytes::Bytes>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let r = self.inner.as_mut().poll_next(cx);
        match &r {
            std::task::Poll::Ready(Some(_)) => self.watch.touch(false),
            std::task::Poll::Ready(None) => self.watch.touch(true),
            std::task::Poll::Pending => {}
        }
        r
    }
}

/// A failed request in words: what happened on the network or in TLS, and a hint only where
/// one applies (a registry that is down gets no advice about TLS).
pub fn request_error(e: &reqwest::Error, url: &str, doing: &str) -> TransportError {
    let (message, hint, kind) = describe_failure(e, url);
    TransportError::Registry {
        kind,
        url: url.to_string(),
        message: format!("{doing}: {message}"),
        status: None,
        hint,
    }
}

/// What a network or TLS failure was, for people, what applies to it, and its kind.
fn describe_failure(e: &reqwest::Error, url: &str) -> (String, Option<Hint>, RegistryErrorKind) {
    use RegistryErrorKind::{TimedOut, Tls, Unreachable};
    let host = Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| {
                format!(
                    "{h}{}",
                    u.port().map(|p| format!(":{p}")).unwrap_or_default()
                )
            })
        })
        .unwrap_or_else(|| url.to_string());
    let detail = source_chain(e);
    // rustls' own errors, when the failure is in TLS. io::Error hides what it wraps from
    // source() (it returns the wrapped error's source, not the wrapped error), so the walk
    // goes through get_ref() for those.
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(t) = c.downcast_ref::<rustls::Error>() {
            let (message, hint) = describe_tls(t, &host, &detail);
            return (message, hint, Tls);
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return (
                        format!(
                            "connection refused: nothing is listening at {host} (is the registry running, and is the host and port right?)"
                        ),
                        None,
                        Unreachable,
                    );
                }
                std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
                    return (format!("no route to {host}{detail}"), None, Unreachable);
                }
                std::io::ErrorKind::ConnectionReset => {
                    return (
                        format!("{host} reset the connection{detail}"),
                        None,
                        Unreachable,
                    );
                }
                std::io::ErrorKind::TimedOut => {
                    return (
                        format!("{host} did not answer in time{detail}"),
                        None,
                        TimedOut,
                    );
                }
                std::io::ErrorKind::UnexpectedEof if detail.contains("tls handshake") => {
                    return (
                        format!(
                            "{host} closed the connection during the TLS handshake: it may not speak TLS on this port"
                        ),
                        Some(Hint::TlsVerification),
                        Tls,
                    );
                }
                _ => {}
            }
            if let Some(inner) = io.get_ref() {
                cur = Some(inner as &(dyn std::error::Error + 'static));
                continue;
            }
        }
        cur = c.source();
    }
    if e.is_timeout() {
        return (
            format!("{host} did not answer in time{detail}"),
            None,
            TimedOut,
        );
    }
    let lower = detail.to_lowercase();
    if lower.contains("dns error") || lower.contains("failed to lookup address") {
        return (
            format!("cannot resolve the host name of {host}{detail}"),
            None,
            Unreachable,
        );
    }
    (format!("{e}{detail}"), None, Unreachable)
}

fn describe_tls(t: &rustls::Error, host: &str, detail: &str) -> (String, Option<Hint>) {
    use rustls::{CertificateError, Error as E, InvalidMessage};
    let registry = host.to_string();
    match t {
        E::InvalidMessage(InvalidMessage::InvalidContentType)
        | E::InvalidMessage(InvalidMessage::InvalidEmptyPayload) => (
            format!("{host} answered in plain http, not TLS: it serves http, not https"),
            Some(Hint::TlsVerification),
        ),
        E::InvalidCertificate(CertificateError::UnknownIssuer) => (
            format!(
                "the certificate of {host} is signed by an unknown authority (a private CA or a self-signed certificate)"
            ),
            Some(Hint::TrustCa { registry }),
        ),
        E::InvalidCertificate(CertificateError::NotValidForName)
        | E::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => (
            format!("the certificate {host} presents is not for {host}"),
            None,
        ),
        E::InvalidCertificate(CertificateError::Expired)
        | E::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            (format!("the certificate of {host} has expired"), None)
        }
        E::InvalidCertificate(CertificateError::NotValidYet)
        | E::InvalidCertificate(CertificateError::NotValidYetContext { .. }) => (
            format!("the certificate of {host} is not valid yet (check the clocks)"),
            None,
        ),
        E::InvalidCertificate(CertificateError::Other(o))
            if o.to_string().contains("CaUsedAsEndEntity") =>
        {
            (
                format!(
                    "{host} presents a CA certificate as its own certificate (a self-signed certificate made as Docker's documentation makes one), and that certificate is not trusted"
                ),
                // Trusting that very certificate makes it acceptable, as in Go's clients
                // (transport/http.rs, TrustedLeafVerifier); a CA that signed it does not.
                Some(Hint::TrustCa { registry }),
            )
        }
        E::AlertReceived(
            alert @ (rustls::AlertDescription::BadCertificate
            | rustls::AlertDescription::CertificateRequired
            | rustls::AlertDescription::UnknownCA),
        ) => (
            format!(
                "{host} refused the TLS handshake ({alert:?}): it asks for a client certificate, and ferry presented none it accepts"
            ),
            Some(Hint::ClientCertificate { registry }),
        ),
        other => (format!("TLS with {host} failed: {other}{detail}"), None),
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// A URL for messages, without a password.
pub fn redact(u: &Url) -> String {
    let mut u = u.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("xxxxx"));
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        assert_eq!(parse_challenge("Basic realm=\"x\""), Challenge::Basic);
        assert_eq!(
            parse_challenge(
                "Bearer realm=\"https://auth.example/token\",service=\"registry.example\",scope=\"repository:a:pull,push\""
            ),
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            }
        );
        assert_eq!(parse_challenge("Negotiate"), Challenge::None);
        assert!(backoff(0) < backoff(3));
        assert!(backoff(30) <= Duration::from_secs(5));
    }
}
