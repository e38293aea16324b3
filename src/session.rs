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

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::OnceCell;
use url::Url;

use crate::config::certs_d;
use crate::config::registries_conf::{RegistriesConf, RegistriesConfPaths};
use crate::config::registries_d::{self, RegistriesConfig};
use crate::digest::Digest;
use crate::policy::BundleIdentity;
use crate::reference::{DockerReference, ImageReference};
use crate::transport::docker::client::RegistryClient;
use crate::transport::docker::pool::RegistryPool;
use crate::transport::docker::{self, auth};
use crate::transport::store::Store;
use crate::transport::{
    ImageDestination, ImageSource, Present, Result, TransportError, TransportOptions, registry,
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

/// One command's shared state. Cheap to share (`Arc<Session>`); every method takes `&self`.
pub struct Session {
    config: SessionConfig,
    registries: OnceCell<Arc<RegistriesConfig>>,
    registries_conf: OnceCell<Arc<RegistriesConf>>,
    /// The registry connections every docker:// image of the session shares.
    pub(crate) docker: RegistryPool,
    /// The `oci-archive:` and `docker-archive:` files the session reads and writes.
    pub(crate) archives: crate::tarfile::OpenArchives,
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
            docker: RegistryPool::default(),
            archives: crate::tarfile::OpenArchives::default(),
        }
    }

    /// Keeps the archives this session writes (`oci-archive:`, `docker-archive:`) open across
    /// copies until [`Session::finish_archives`]: every copy into one archive file adds its
    /// image to the same archive, and the file appears only when the archives are finished.
    /// `ferry sync` does this; without it, each copy's commit finishes its own archive.
    pub fn hold_archives(&self) {
        self.archives.hold();
    }

    /// Ends [`Session::hold_archives`]: every archive that lists at least one image is finished
    /// and appears at its path (`keep`), or every one is abandoned, leaving no file. Returns
    /// the archives written.
    pub async fn finish_archives(&self, keep: bool) -> Result<Vec<PathBuf>> {
        Ok(self.archives.release(keep).await?)
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
    pub(crate) async fn registries(&self) -> Result<Arc<RegistriesConfig>> {
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
    pub(crate) async fn registries_conf(&self) -> Result<Arc<RegistriesConf>> {
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

    /// The client for `r`'s registry with `options`: connected (and probed) once per session.
    /// registries.conf applies: a blocked registry is refused, an insecure one is reached
    /// without TLS verification (unless `options` say otherwise).
    pub(crate) async fn registry_client(
        &self,
        r: &DockerReference,
        options: &TransportOptions,
    ) -> Result<Arc<RegistryClient>> {
        self.docker.registry_client(self, r, options).await
    }

    /// Opens `reference` for reading with the settings of that side.
    pub async fn open_source(
        &self,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Box<dyn ImageSource>> {
        registry::of(reference)?
            .open_source(self, reference, options)
            .await
    }

    /// Opens `reference` for writing with the settings of that side.
    pub(crate) async fn open_destination(
        &self,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Box<dyn ImageDestination>> {
        registry::of(reference)?
            .open_destination(self, reference, options)
            .await
    }

    /// What the destination `reference` holds now (its manifest's digest and how many
    /// signatures it keeps for it), or `None`: sync's incremental check.
    pub(crate) async fn present(
        &self,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Option<Present>> {
        registry::of(reference)?
            .present(self, reference, options)
            .await
    }

    /// The candidates a short name (`fedora:40`, no registry) resolves to through
    /// registries.conf, in the order they are tried: its alias, else each
    /// unqualified-search registry.
    pub async fn resolve_short_name(&self, name: &str) -> Result<Vec<ImageReference>> {
        let conf = self.registries_conf().await?;
        let resolved = conf.resolve_short_name(name)?;
        if resolved.candidates.len() > 1 {
            tracing::info!(
                "{name} resolves to {} (unqualified-search-registries); trying them in order",
                resolved
                    .candidates
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(resolved
            .candidates
            .into_iter()
            .map(docker::Reference::image)
            .collect())
    }

    /// How sigstore bundles that name no image meet `signedIdentity` for `image`: registries.d's
    /// `sigstore-bundle-identity` for its scope (bundles claim only what they name, when the
    /// image has no docker reference).
    pub async fn bundle_identity(&self, image: &ImageReference) -> Result<BundleIdentity> {
        match image.docker_reference() {
            Some(d) => Ok(self.registries().await?.sigstore_bundle_identity(&d)?),
            None => Ok(BundleIdentity::Named),
        }
    }

    /// The tags of the repository `repository` names, as the registry lists them (following
    /// its pages): skopeo's `list-tags`.
    pub async fn list_tags(
        &self,
        repository: &DockerReference,
        options: &TransportOptions,
    ) -> Result<Vec<String>> {
        let client = self.registry_client(repository, options).await?;
        docker::list_tags(&client, repository).await
    }

    /// The tags of the docker-archive at `path`: every RepoTag of every image, normalised
    /// (`docker.io/library/busybox:latest`), as skopeo's `list-tags docker-archive:PATH`.
    pub async fn list_archive_tags(&self, path: &std::path::Path) -> Result<Vec<String>> {
        crate::transport::docker_archive::list_tags(self, path).await
    }

    /// Deletes the manifest `image` names from its registry (with every tag that points to it)
    /// and its signatures in a `file://` lookaside: skopeo's `delete`. Returns the deleted
    /// manifest's digest.
    pub async fn delete_image(
        &self,
        image: &DockerReference,
        options: &TransportOptions,
    ) -> Result<Digest> {
        let client = self.registry_client(image, options).await?;
        let registries = self.registries().await?;
        docker::registry_ops::delete_image(&client, image, &registries).await
    }

    /// Whether the registry `registry` (`host[:port]`) accepts the credentials of `options`:
    /// skopeo's `login` before it stores them.
    pub async fn check_login(&self, registry: &str, options: &TransportOptions) -> Result<()> {
        let probe = DockerReference::parse(&format!("{registry}/login")).map_err(|e| {
            TransportError::Unsupported(format!("{registry:?} is not a registry: {e}"))
        })?;
        let client = self.registry_client(&probe, options).await?;
        docker::registry_ops::check_login(&client).await
    }
}
