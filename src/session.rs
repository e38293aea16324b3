//! A session: what one command shares across every copy it runs. It opens sources and
//! destinations, and keeps one client per registry (its connection pool, bearer tokens and
//! probe result), registries.d read once, and the store's root. `ferry copy` runs one copy in a
//! session; `ferry sync` runs many in one, so images never reconnect or re-authenticate.
//!
//! The library reads no environment on its own: [`SessionConfig::default`] knows no store, no
//! registries.d and no auth files. [`SessionConfig::from_env`] fills them as skopeo and podman
//! do (`$HOME`, `$XDG_*`, `$FERRY_STORE`, `$REGISTRY_AUTH_FILE`, the effective user).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::OnceCell;
use url::Url;

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
    authfile: Option<PathBuf>,
    retry_times: u32,
}

/// What every client of one registry host shares in a session.
type HostShared = (Arc<RegistryLimits>, Arc<BlobLocations>);

/// One command's shared state. Cheap to share (`Arc<Session>`); every method takes `&self`.
pub struct Session {
    config: SessionConfig,
    registries: OnceCell<Arc<RegistriesConfig>>,
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

    /// The client for `r`'s registry with `options`: connected (and probed) once per session.
    pub async fn registry_client(
        &self,
        r: &DockerReference,
        options: &TransportOptions,
    ) -> Result<Arc<RegistryClient>> {
        let key = ClientKey {
            registry: r.domain().to_string(),
            tls: options.tls_policy(),
            timeouts: options.timeouts(),
            creds: options.creds.clone(),
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
                let files = match &options.authfile {
                    Some(f) => vec![f.clone()],
                    None => self.config.auth_files.clone(),
                };
                let (creds, tried) =
                    auth::resolve(r.domain(), &r.name(), options.creds.as_deref(), &files)?;
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
                Ok::<_, TransportError>(Arc::new(client))
            })
            .await?;
        Ok(client.clone())
    }

    fn lookaside_client(&self, options: &TransportOptions) -> Result<reqwest::Client> {
        let timeout = options
            .lookaside_timeout
            .unwrap_or(DEFAULT_LOOKASIDE_TIMEOUT);
        let key = (options.tls_policy(), timeout.as_millis() as u64);
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
            ImageReference::Docker(r) => {
                let registries = self.registries().await?;
                let client = self.registry_client(r, options).await?;
                let lookaside = LookasideReader {
                    default_base: self.config.default_lookaside.clone(),
                    http: self.lookaside_client(options)?,
                };
                Box::new(
                    docker::DockerSource::new(r, client, registries, lookaside)
                        .with_referrers(options.referrers),
                )
            }
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
