//! A session: what one command shares across every copy it runs. It opens sources and
//! destinations, and keeps one client per registry (its connection pool, bearer tokens and
//! probe result), registries.d read once, and the store's root. `ferry copy` runs one copy in a
//! session; `ferry sync` runs many in one, so images never reconnect or re-authenticate.
//!
//! The library reads no environment on its own: [`SessionConfig::default`] knows no store, no
//! registries.d, no registries.conf, no certs.d, no auth files and no proxy.
//! [`SessionConfig::from_env`] fills them as skopeo and podman do (`$HOME`, `$XDG_*`,
//! `$FERRY_STORE`, `$REGISTRY_AUTH_FILE`, `$CONTAINERS_REGISTRIES_CONF`, `$HTTPS_PROXY` and its
//! kin, the effective user).
//!
//! The host's registry configuration applies here, for every transport user alike:
//! registries.conf (blocked registries refused, insecure ones reached without TLS verification,
//! pulls tried on mirrors first) and certs.d (a registry's own CAs and client certificates).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::OnceCell;
use url::Url;

use crate::config::certs_d;
use crate::config::registries_conf::{RegistriesConf, RegistriesConfPaths};
use crate::config::registries_d::{self, RegistriesConfig};
use crate::reference::{DockerReference, ImageReference};
use crate::transport::docker::blob_locations::BlobLocations;
use crate::transport::docker::client::RegistryClient;
use crate::transport::docker::limits::RegistryLimits;
use crate::transport::docker::{self, DEFAULT_LOOKASIDE_TIMEOUT, LookasideReader, auth};
use crate::transport::store::Store;
use crate::transport::{
    ImageDestination, ImageSource, Result, TransportError, TransportOptions, dir, http, oci_layout,
    store,
};

/// What a session needs from the host: where things are. Every field is explicit; nothing is
/// read from the environment unless the config came from [`SessionConfig::from_env`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SessionConfig {
    /// The root of ferry's store, for `store:` references.
    pub store_root: Option<PathBuf>,
    /// The registries.d directory (where signatures live); `None` reads none.
    pub registries_d: Option<PathBuf>,
    /// auth.json files looked in for credentials, in order, when a side gives no authfile.
    pub auth_files: Vec<PathBuf>,
    /// Where lookaside signatures are read when registries.d configures nothing for a
    /// registry (containers/image's built-in default); `None` reads no lookaside then.
    pub default_lookaside: Option<Url>,
    /// The most requests in flight to one registry, across every copy of the session (`None`:
    /// no cap). A 429 pauses the registry for every copy whatever this is.
    pub max_requests_per_registry: Option<usize>,
    /// registries.conf and its drop-in directories; `None` reads none (no mirrors, nothing
    /// blocked or insecure, no short names).
    pub registries_conf: Option<RegistriesConfPaths>,
    /// The per-host certs.d parents, searched in order for `HOST[:PORT]`
    /// ([`certs_d::host_dir`]); empty reads none.
    pub certs_d: Vec<PathBuf>,
    /// Whether registry and lookaside connections go through the proxy that `HTTPS_PROXY`,
    /// `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` name (as skopeo's do); `false` connects
    /// directly whatever the environment says.
    pub env_proxy: bool,
}

impl SessionConfig {
    /// The defaults skopeo and podman use, from the environment: the store at `$FERRY_STORE`,
    /// else `$XDG_DATA_HOME/ferry/store`, else `~/.local/share/ferry/store`; registries.d in
    /// `~/.config/containers/registries.d`, else `/etc/containers/registries.d`; auth files as
    /// [`auth::default_auth_files`]; the built-in lookaside for the effective user.
    pub fn from_env() -> SessionConfig {
        SessionConfig {
            store_root: store_root_from_env(),
            registries_d: Some(registries_d::default_dir()),
            auth_files: auth::default_auth_files(),
            default_lookaside: registries_d::builtin_default_base(),
            max_requests_per_registry: None,
            registries_conf: Some(RegistriesConfPaths::for_home(
                std::env::var_os("CONTAINERS_REGISTRIES_CONF")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from),
                std::env::home_dir().as_deref(),
            )),
            certs_d: certs_d::default_dirs(std::env::home_dir().as_deref()),
            env_proxy: true,
        }
    }
}

/// `$FERRY_STORE`, else `$XDG_DATA_HOME/ferry/store`, else `~/.local/share/ferry/store`.
pub fn store_root_from_env() -> Option<PathBuf> {
    if let Some(r) = std::env::var_os("FERRY_STORE").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(r));
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return Some(d.join("ferry/store"));
    }
    std::env::home_dir().map(|h| h.join(".local/share/ferry/store"))
}

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
type HostShared = (Arc<RegistryLimits>, Arc<BlobLocations>);

/// One command's shared state. Cheap to share (`Arc<Session>`); every method takes `&self`.
pub struct Session {
    config: SessionConfig,
    registries: OnceCell<Arc<RegistriesConfig>>,
    registries_conf: OnceCell<Arc<RegistriesConf>>,
    clients: std::sync::Mutex<HashMap<ClientKey, Arc<OnceCell<Arc<RegistryClient>>>>>,
    lookaside_http: std::sync::Mutex<HashMap<(http::TlsPolicy, u64), reqwest::Client>>,
    /// Per registry host: its request limits and the blobs seen in its repositories, shared
    /// by every client of the host (a source and a destination with other credentials too).
    hosts: std::sync::Mutex<HashMap<String, HostShared>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session with `config`. Nothing is opened until it is needed.
    pub fn new(config: SessionConfig) -> Session {
        Session {
            config,
            registries: OnceCell::new(),
            registries_conf: OnceCell::new(),
            clients: std::sync::Mutex::new(HashMap::new()),
            lookaside_http: std::sync::Mutex::new(HashMap::new()),
            hosts: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn host(&self, registry: &str) -> HostShared {
        let mut hosts = self
            .hosts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        hosts
            .entry(registry.to_string())
            .or_insert_with(|| {
                (
                    Arc::new(RegistryLimits::new(self.config.max_requests_per_registry)),
                    Arc::default(),
                )
            })
            .clone()
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// ferry's store, when the session has a root for it.
    pub fn store(&self, reference: &ImageReference) -> Result<Store> {
        match &self.config.store_root {
            Some(r) => Store::open(r),
            None => Err(TransportError::NoStore {
                reference: reference.to_string(),
            }),
        }
    }

    /// registries.d, read once per session (a failed read is tried again next time).
    pub async fn registries(&self) -> Result<Arc<RegistriesConfig>> {
        self.registries
            .get_or_try_init(|| async {
                Ok(Arc::new(match &self.config.registries_d {
                    Some(d) => {
                        let d = d.clone();
                        tokio::task::spawn_blocking(move || RegistriesConfig::load(&d))
                            .await
                            .map_err(|e| {
                                TransportError::Unsupported(format!(
                                    "reading registries.d failed: {e}"
                                ))
                            })??
                    }
                    None => RegistriesConfig::default(),
                }))
            })
            .await
            .cloned()
    }

    /// registries.conf, read once per session (a failed read is tried again next time).
    pub async fn registries_conf(&self) -> Result<Arc<RegistriesConf>> {
        self.registries_conf
            .get_or_try_init(|| async {
                Ok(Arc::new(match &self.config.registries_conf {
                    Some(paths) => {
                        let paths = paths.clone();
                        tokio::task::spawn_blocking(move || RegistriesConf::load(&paths))
                            .await
                            .map_err(|e| {
                                TransportError::Unsupported(format!(
                                    "reading registries.conf failed: {e}"
                                ))
                            })??
                    }
                    None => RegistriesConf::default(),
                }))
            })
            .await
            .cloned()
    }

    /// The TLS policy for `registry` (`host[:port]`): verification as `options` say, else off
    /// when registries.conf marks the registry (or mirror) `insecure`; the CAs and client
    /// certificates of `options.cert_dir`, else of the registry's certs.d directory.
    pub fn tls_policy(
        &self,
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
            None => certs_d::host_dir(&self.config.certs_d, registry),
        };
        if let Some(d) = dir {
            tls = tls.with_certs(certs_d::load(&d)?);
        }
        Ok(tls.with_env_proxy(self.config.env_proxy))
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
        r: &DockerReference,
        options: &TransportOptions,
    ) -> Result<Arc<RegistryClient>> {
        let conf = self.registries_conf().await?;
        Self::check_blocked(&conf, r)?;
        let insecure = conf
            .find_registry(&r.to_string())
            .is_some_and(|reg| reg.endpoint.insecure);
        self.client_for(r, options, insecure).await
    }

    async fn client_for(
        &self,
        r: &DockerReference,
        options: &TransportOptions,
        insecure: bool,
    ) -> Result<Arc<RegistryClient>> {
        let key = ClientKey {
            registry: r.domain().to_string(),
            tls: self.tls_policy(r.domain(), options, insecure)?,
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
                        None => self.config.auth_files.clone(),
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
                client.limits = self.host(&key.registry).0;
                client.set_registry_token(key.registry_token.clone());
                Ok::<_, TransportError>(Arc::new(client))
            })
            .await?;
        Ok(client.clone())
    }

    /// Opens a pull of `r` through registries.conf: each endpoint in order (mirrors, then the
    /// registry) until one serves the manifest. The source keeps `r` as its reference.
    async fn open_docker_source(
        &self,
        r: &DockerReference,
        options: &TransportOptions,
    ) -> Result<Box<dyn ImageSource>> {
        let conf = self.registries_conf().await?;
        Self::check_blocked(&conf, r)?;
        let registries = self.registries().await?;
        let sources = conf.pull_sources(r)?;
        if let [only] = sources.as_slice()
            && only.reference == *r
        {
            let client = self.client_for(r, options, only.endpoint.insecure).await?;
            let lookaside = LookasideReader {
                default_base: self.config.default_lookaside.clone(),
                http: self.lookaside_client(client.tls(), options)?,
            };
            return Ok(Box::new(
                docker::DockerSource::new(r, client, registries, lookaside)
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
                    .client_for(&s.reference, &opts, s.endpoint.insecure)
                    .await?;
                let lookaside = LookasideReader {
                    default_base: self.config.default_lookaside.clone(),
                    http: self.lookaside_client(client.tls(), &opts)?,
                };
                let source =
                    docker::DockerSource::new(&s.reference, client, registries.clone(), lookaside)
                        .with_referrers(opts.referrers);
                let top = source.manifest(None).await?;
                Ok::<_, TransportError>((source, top))
            };
            match attempt.await {
                Ok((source, top)) => {
                    tracing::info!("pulling {r} from {}", s.reference);
                    return Ok(Box::new(docker::mirrors::EndpointSource::new(
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

    /// Opens `reference` for reading with the settings of that side.
    pub async fn open_source(
        &self,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Box<dyn ImageSource>> {
        Ok(match reference {
            ImageReference::Docker(r) => self.open_docker_source(r, options).await?,
            ImageReference::OciLayout { path, tag } => Box::new(
                oci_layout::OciLayoutSource::open(path, tag.as_deref())?
                    .with_referrers(options.referrers),
            ),
            ImageReference::Dir { path } => Box::new(dir::DirSource::open(path)?),
            ImageReference::Store(r) => Box::new(
                store::StoreSource::open(self.store(reference)?, r)?
                    .with_referrers(options.referrers),
            ),
        })
    }

    /// Opens `reference` for writing with the settings of that side.
    pub async fn open_destination(
        &self,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Box<dyn ImageDestination>> {
        Ok(match reference {
            ImageReference::Docker(r) => {
                let registries = self.registries().await?;
                let client = self.registry_client(r, options).await?;
                let locations = self.host(r.domain()).1;
                Box::new(
                    docker::DockerDestination::new(r, client, registries)
                        .with_blob_locations(locations),
                )
            }
            ImageReference::OciLayout { path, tag } => Box::new(
                oci_layout::OciLayoutDestination::open(path, tag.as_deref())?,
            ),
            ImageReference::Dir { path } => Box::new(dir::DirDestination::open(path)?),
            ImageReference::Store(r) => {
                Box::new(store::StoreDestination::open(self.store(reference)?, r)?)
            }
        })
    }
}
