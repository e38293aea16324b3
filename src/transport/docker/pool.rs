//! The registry connections of one session: one client per registry and way of reaching it
//! (its connection pool, bearer tokens and probe result), the request limits and known blob
//! locations every client of a host shares, and the lookaside HTTP clients. The session owns one
//! pool; every docker:// source and destination of the session is opened through it, so the
//! images of a `ferry sync` never reconnect or re-authenticate.
//!
//! registries.conf applies here, for every user of the pool alike: blocked registries are
//! refused, insecure ones reached without TLS verification, pulls tried on mirrors first; and
//! certs.d gives a registry its own CAs and client certificates.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::OnceCell;

use super::blob_locations::BlobLocations;
use super::client::RegistryClient;
use super::limits::RegistryLimits;
use super::{DEFAULT_LOOKASIDE_TIMEOUT, DockerSource, LookasideReader, auth, mirrors};
use crate::config::certs_d;
use crate::config::registries_conf::RegistriesConf;
use crate::reference::DockerReference;
use crate::session::Session;
use crate::transport::{ImageSource, Result, TransportError, TransportOptions, http};

/// The identity of a registry connection: the registry and everything that changes how it is
/// reached or who ferry is there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    registry: String,
    tls: http::TlsPolicy,
    timeouts: http::Timeouts,
    creds: Option<String>,
    no_creds: bool,
    registry_token: Option<String>,
    authfile: Option<PathBuf>,
    retry_times: u32,
}

/// What every client of one registry host shares in a session.
pub type HostShared = (Arc<RegistryLimits>, Arc<BlobLocations>);

/// The registry connections of one session (see the module documentation).
#[derive(Default)]
pub struct RegistryPool {
    clients: std::sync::Mutex<HashMap<ClientKey, Arc<OnceCell<Arc<RegistryClient>>>>>,
    lookaside_http: std::sync::Mutex<HashMap<(http::TlsPolicy, u64), reqwest::Client>>,
    /// Per registry host: its request limits and the blobs seen in its repositories, shared
    /// by every client of the host (a source and a destination with other credentials too).
    hosts: std::sync::Mutex<HashMap<String, HostShared>>,
}

impl RegistryPool {
    /// What every client of `registry` shares in a session: its request limits and the blobs
    /// seen in its repositories.
    pub fn host(&self, session: &Session, registry: &str) -> HostShared {
        let mut hosts = self
            .hosts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        hosts
            .entry(registry.to_string())
            .or_insert_with(|| {
                (
                    Arc::new(RegistryLimits::new(
                        session.config().max_requests_per_registry,
                    )),
                    Arc::default(),
                )
            })
            .clone()
    }

    /// The TLS policy for `registry` (`host[:port]`): verification as `options` say, else off
    /// when registries.conf marks the registry (or mirror) `insecure`; the CAs and client
    /// certificates of `options.cert_dir`, else of the registry's certs.d directory.
    pub fn tls_policy(
        session: &Session,
        registry: &str,
        options: &TransportOptions,
        insecure: bool,
    ) -> Result<http::TlsPolicy> {
        let verify = options.tls_verify.unwrap_or(!insecure);
        let mut tls = if verify {
            http::TlsPolicy::verified()
        } else {
            http::TlsPolicy::insecure()
        };
        let dir = match &options.cert_dir {
            Some(d) => Some(d.clone()),
            None => certs_d::host_dir(&session.config().certs_d, registry),
        };
        if let Some(d) = dir {
            tls = tls.with_certs(certs_d::load(&d)?);
        }
        Ok(tls.with_env_proxy(session.config().env_proxy))
    }

    /// Refuses `r` when registries.conf blocks its registry.
    fn check_blocked(conf: &RegistriesConf, r: &DockerReference) -> Result<()> {
        match conf.find_registry(&r.to_string()) {
            Some(reg) if reg.blocked => Err(TransportError::Blocked {
                reference: r.to_string(),
                prefix: reg.prefix.clone(),
                origin: format!("{}:{}", reg.origin.0.display(), reg.origin.1),
            }),
            _ => Ok(()),
        }
    }

    /// The client for `r`'s registry with `options`: connected (and probed) once per session.
    /// registries.conf applies: a blocked registry is refused, an insecure one is reached
    /// without TLS verification (unless `options` say otherwise).
    pub async fn registry_client(
        &self,
        session: &Session,
        r: &DockerReference,
        options: &TransportOptions,
    ) -> Result<Arc<RegistryClient>> {
        let conf = session.registries_conf().await?;
        Self::check_blocked(&conf, r)?;
        let insecure = conf
            .find_registry(&r.to_string())
            .is_some_and(|reg| reg.endpoint.insecure);
        self.client_for(session, r, options, insecure).await
    }

    async fn client_for(
        &self,
        session: &Session,
        r: &DockerReference,
        options: &TransportOptions,
        insecure: bool,
    ) -> Result<Arc<RegistryClient>> {
        let key = ClientKey {
            registry: r.domain().to_string(),
            tls: Self::tls_policy(session, r.domain(), options, insecure)?,
            timeouts: options.timeouts(),
            creds: options.creds.clone(),
            no_creds: options.no_creds,
            registry_token: options.registry_token.clone(),
            authfile: options.authfile.clone(),
            retry_times: options.retry_times.unwrap_or(3),
        };
        let cell = {
            let mut clients = self
                .clients
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            clients.entry(key.clone()).or_default().clone()
        };
        let client = cell
            .get_or_try_init(|| async {
                let (creds, tried) = if options.no_creds {
                    (
                        None,
                        "no credentials (anonymous access was asked for)".to_string(),
                    )
                } else {
                    let files = match &options.authfile {
                        Some(f) => vec![f.clone()],
                        None => session.config().auth_files.clone(),
                    };
                    auth::resolve(r.domain(), &r.name(), options.creds.as_deref(), &files)?
                };
                let mut client = RegistryClient::connect(
                    &key.registry,
                    creds,
                    tried,
                    &key.tls,
                    key.timeouts,
                    key.retry_times,
                )
                .await?;
                client.limits = self.host(session, &key.registry).0;
                client.set_registry_token(key.registry_token.clone());
                Ok::<_, TransportError>(Arc::new(client))
            })
            .await?;
        Ok(client.clone())
    }

    /// Opens a pull of `r` through registries.conf: each endpoint in order (mirrors, then the
    /// registry) until one serves the manifest. The source keeps `r` as its reference.
    pub async fn open_source(
        &self,
        session: &Session,
        r: &DockerReference,
        options: &TransportOptions,
    ) -> Result<Box<dyn ImageSource>> {
        let conf = session.registries_conf().await?;
        Self::check_blocked(&conf, r)?;
        let registries = session.registries().await?;
        let sources = conf.pull_sources(r)?;
        if let [only] = sources.as_slice()
            && only.reference == *r
        {
            let client = self
                .client_for(session, r, options, only.endpoint.insecure)
                .await?;
            let lookaside = LookasideReader {
                default_base: session.config().default_lookaside.clone(),
                http: self.lookaside_client(client.tls(), options)?,
            };
            return Ok(Box::new(
                DockerSource::new(r, client, registries, lookaside)
                    .with_referrers(options.referrers),
            ));
        }
        let mut failed: Vec<(String, TransportError)> = Vec::new();
        for s in &sources {
            // Credentials given for the registry are not sent to a mirror on another host,
            // as containers/image.
            let mut opts = options.clone();
            if s.reference.domain() != r.domain() {
                opts.creds = None;
                opts.registry_token = None;
            }
            let attempt = async {
                Self::check_blocked(&conf, &s.reference)?;
                let client = self
                    .client_for(session, &s.reference, &opts, s.endpoint.insecure)
                    .await?;
                let lookaside = LookasideReader {
                    default_base: session.config().default_lookaside.clone(),
                    http: self.lookaside_client(client.tls(), &opts)?,
                };
                let source = DockerSource::new(&s.reference, client, registries.clone(), lookaside)
                    .with_referrers(opts.referrers);
                let top = source.manifest(None).await?;
                Ok::<_, TransportError>((source, top))
            };
            match attempt.await {
                Ok((source, top)) => {
                    tracing::info!("pulling {r} from {}", s.reference);
                    return Ok(Box::new(mirrors::EndpointSource::new(
                        r,
                        &s.reference,
                        s.mirror,
                        source,
                        top,
                    )));
                }
                // Other content for a digest is not a missing image: never fall back past it.
                Err(TransportError::DigestMismatch {
                    url,
                    expected,
                    actual,
                    ..
                }) => {
                    return Err(TransportError::DigestMismatch {
                        url,
                        expected,
                        actual,
                        mirror: s.mirror,
                    });
                }
                Err(e) => {
                    tracing::info!("{}: {e}; trying the next endpoint", s.reference);
                    failed.push((s.reference.to_string(), e));
                }
            }
        }
        match failed.pop() {
            Some((_, primary)) if failed.is_empty() => Err(primary),
            Some((_, primary)) => Err(TransportError::AllEndpointsFailed {
                primary: Box::new(primary),
                mirrors: failed
                    .into_iter()
                    .map(|(r, e)| (r, e.to_string()))
                    .collect(),
            }),
            None => Err(TransportError::Unsupported(format!(
                "registries.conf gives no endpoint to pull {r} from"
            ))),
        }
    }

    fn lookaside_client(
        &self,
        tls: &http::TlsPolicy,
        options: &TransportOptions,
    ) -> Result<reqwest::Client> {
        let timeout = options
            .lookaside_timeout
            .unwrap_or(DEFAULT_LOOKASIDE_TIMEOUT);
        let key = (tls.clone(), timeout.as_millis() as u64);
        let mut cache = self
            .lookaside_http
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let c = http::lookaside_client(&key.0, timeout)?;
        cache.insert(key, c.clone());
        Ok(c)
    }
}
