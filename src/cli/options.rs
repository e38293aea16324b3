//! Flags shared by several subcommands: policy, registries.d, TLS and credentials, the store;
//! and the session they give.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use ferry::ImageReference;
use ferry::ImageSelection;
use ferry::Policy;
use ferry::RegistriesConfPaths;
use ferry::TransportOptions;
use ferry::manifest::PlatformSpec;
use ferry::{Session, SessionConfig};

/// Parses an image reference argument (a usage error when malformed).
pub fn parse_image(s: &str) -> Result<ImageReference, String> {
    ImageReference::parse(s).map_err(|e| e.to_string())
}

/// Which image of a list: ferry's `--platform`, or skopeo's `--override-os`, `--override-arch`
/// and `--override-variant` (which replace those parts of the running platform).
#[derive(Debug, clap::Args)]
pub struct PlatformArgs {
    /// For a list, the image of this platform instead of the running one's.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = PlatformSpec::parse,
          conflicts_with_all = ["override_os", "override_arch", "override_variant"])]
    pub platform: Option<PlatformSpec>,
    /// For a list, use OS instead of the running OS (as skopeo's --override-os).
    #[arg(long, value_name = "OS")]
    pub override_os: Option<String>,
    /// For a list, use ARCH instead of the running architecture (as skopeo's --override-arch).
    #[arg(long, value_name = "ARCH")]
    pub override_arch: Option<String>,
    /// For a list, use VARIANT instead of the running architecture's variant (as skopeo's
    /// --override-variant).
    #[arg(long, value_name = "VARIANT")]
    pub override_variant: Option<String>,
}

impl PlatformArgs {
    /// Which images of a list a copy takes: all of them with `--all`, else the one for the
    /// platform asked for, else the running one's.
    pub fn selection(&self, all: bool) -> ImageSelection {
        match (all, self.wanted()) {
            (true, _) => ImageSelection::All,
            (false, Some(p)) => ImageSelection::Platform(p),
            (false, None) => ImageSelection::System,
        }
    }

    /// The platform asked for, if any: `--platform`, else the running one with the overrides.
    pub fn wanted(&self) -> Option<PlatformSpec> {
        if let Some(p) = &self.platform {
            return Some(p.clone());
        }
        if self.override_os.is_none()
            && self.override_arch.is_none()
            && self.override_variant.is_none()
        {
            return None;
        }
        let mut p = PlatformSpec::current();
        if let Some(os) = &self.override_os {
            p.os = os.clone();
        }
        if let Some(arch) = &self.override_arch {
            // As containers/image: another architecture has no variant unless one is given.
            p.architecture = arch.clone();
            p.variant = None;
        }
        if let Some(v) = &self.override_variant {
            p.variant = Some(v.clone());
        }
        Some(p)
    }
}

/// Where the signature policy comes from.
#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    /// The signature policy (containers-policy.json(5)). Default: $CONTAINERS_POLICY_JSON, then
    /// $XDG_CONFIG_HOME/containers/policy.json (~/.config without it), then
    /// /etc/containers/policy.json.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Accept any image, signed or not, without reading a policy file.
    #[arg(long, conflicts_with = "policy")]
    pub insecure_policy: bool,
}

impl PolicyArgs {
    /// Loads the policy.
    pub fn load(&self) -> anyhow::Result<Arc<Policy>> {
        if self.insecure_policy {
            let p = Policy::from_bytes(
                br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
                "<--insecure-policy>",
            )?;
            return Ok(Arc::new(p));
        }
        let path = match &self.policy {
            Some(p) => p.clone(),
            None => Policy::default_path_from_env().context(
                "no signature policy: none given with --policy, $CONTAINERS_POLICY_JSON is not set, and neither \
                 $XDG_CONFIG_HOME (or ~/.config)/containers/policy.json nor /etc/containers/policy.json exists. Write one (see \
                 containers-policy.json(5)), or use --insecure-policy to accept any image",
            )?,
        };
        Ok(Arc::new(Policy::from_file(&path)?))
    }
}

/// Store location.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Root of ferry's store for store: references. Default: $FERRY_STORE, else
    /// $XDG_DATA_HOME/ferry/store (~/.local/share/ferry/store).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
}

/// Settings for the source side of a copy (skopeo's `--src-*` flags; `ferry copy` and `ferry
/// sync` share them).
#[derive(Debug, clap::Args)]
pub struct SourceArgs {
    /// Require https and verify certificates for the source registry (false allows http and
    /// unverified https).
    #[arg(long = "src-tls-verify", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub src_tls_verify: Option<bool>,
    /// USERNAME[:PASSWORD] for the source registry.
    #[arg(long = "src-creds", value_name = "USER:PASSWORD", conflicts_with_all = ["src_no_creds", "src_username"])]
    pub src_creds: Option<String>,
    /// Certificates for the source registry (*.crt CAs, *.cert/*.key client pairs), instead of
    /// its certs.d directory.
    #[arg(long = "src-cert-dir", value_name = "DIR")]
    pub src_cert_dir: Option<PathBuf>,
    /// Access the source registry anonymously.
    #[arg(long = "src-no-creds", conflicts_with = "src_username")]
    pub src_no_creds: bool,
    /// The credentials file (auth.json) for the source registry, instead of --authfile's.
    #[arg(long = "src-authfile", value_name = "FILE")]
    pub src_authfile: Option<PathBuf>,
    /// A bearer token for the source registry, sent instead of one from its token service.
    #[arg(long = "src-registry-token", value_name = "TOKEN")]
    pub src_registry_token: Option<String>,
    /// Username for the source registry (with --src-password).
    #[arg(long = "src-username", value_name = "USER", requires = "src_password")]
    pub src_username: Option<String>,
    /// Password for the source registry (with --src-username).
    #[arg(
        long = "src-password",
        value_name = "PASSWORD",
        requires = "src_username"
    )]
    pub src_password: Option<String>,
}

impl SourceArgs {
    /// The source side's transport options.
    pub fn options(&self, common: &CommonTransportArgs) -> TransportOptions {
        side_options(
            Side {
                tls_verify: self.src_tls_verify,
                creds: self.src_creds.clone(),
                cert_dir: self.src_cert_dir.clone(),
                no_creds: self.src_no_creds,
                authfile: self.src_authfile.clone(),
                registry_token: self.src_registry_token.clone(),
                username: self.src_username.clone(),
                password: self.src_password.clone(),
            },
            common,
        )
    }
}

/// Settings for the destination side of a copy (skopeo's `--dest-*` flags).
#[derive(Debug, clap::Args)]
pub struct DestArgs {
    /// Require https and verify certificates for the destination registry (false allows http and
    /// unverified https).
    #[arg(long = "dest-tls-verify", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub dest_tls_verify: Option<bool>,
    /// USERNAME[:PASSWORD] for the destination registry.
    #[arg(long = "dest-creds", value_name = "USER:PASSWORD", conflicts_with_all = ["dest_no_creds", "dest_username"])]
    pub dest_creds: Option<String>,
    /// Certificates for the destination registry (*.crt CAs, *.cert/*.key client pairs),
    /// instead of its certs.d directory.
    #[arg(long = "dest-cert-dir", value_name = "DIR")]
    pub dest_cert_dir: Option<PathBuf>,
    /// Access the destination registry anonymously.
    #[arg(long = "dest-no-creds", conflicts_with = "dest_username")]
    pub dest_no_creds: bool,
    /// The credentials file (auth.json) for the destination registry, instead of --authfile's.
    #[arg(long = "dest-authfile", value_name = "FILE")]
    pub dest_authfile: Option<PathBuf>,
    /// A bearer token for the destination registry, sent instead of one from its token
    /// service.
    #[arg(long = "dest-registry-token", value_name = "TOKEN")]
    pub dest_registry_token: Option<String>,
    /// Username for the destination registry (with --dest-password).
    #[arg(
        long = "dest-username",
        value_name = "USER",
        requires = "dest_password"
    )]
    pub dest_username: Option<String>,
    /// Password for the destination registry (with --dest-username).
    #[arg(
        long = "dest-password",
        value_name = "PASSWORD",
        requires = "dest_username"
    )]
    pub dest_password: Option<String>,
}

impl DestArgs {
    /// The destination side's transport options.
    pub fn options(&self, common: &CommonTransportArgs) -> TransportOptions {
        side_options(
            Side {
                tls_verify: self.dest_tls_verify,
                creds: self.dest_creds.clone(),
                cert_dir: self.dest_cert_dir.clone(),
                no_creds: self.dest_no_creds,
                authfile: self.dest_authfile.clone(),
                registry_token: self.dest_registry_token.clone(),
                username: self.dest_username.clone(),
                password: self.dest_password.clone(),
            },
            common,
        )
    }
}

/// The registry settings of a command about one image (inspect, policy check, list-tags,
/// delete, …), with skopeo's single-side spellings; the `--src-` spellings are accepted too.
#[derive(Debug, clap::Args)]
pub struct ImageSideArgs {
    /// Require https and verify certificates for the registry (false allows http and
    /// unverified https).
    #[arg(long = "tls-verify", alias = "src-tls-verify", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tls_verify: Option<bool>,
    /// USERNAME[:PASSWORD] for the registry.
    #[arg(long = "creds", alias = "src-creds", value_name = "USER:PASSWORD", conflicts_with_all = ["no_creds", "username"])]
    pub creds: Option<String>,
    /// Certificates for the registry (*.crt CAs, *.cert/*.key client pairs), instead of its
    /// certs.d directory (/etc/containers/certs.d/HOST:PORT).
    #[arg(long = "cert-dir", alias = "src-cert-dir", value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Access the registry anonymously.
    #[arg(long = "no-creds", alias = "src-no-creds", conflicts_with = "username")]
    pub no_creds: bool,
    /// A bearer token, sent instead of one from the registry's token service.
    #[arg(
        long = "registry-token",
        alias = "src-registry-token",
        value_name = "TOKEN"
    )]
    pub registry_token: Option<String>,
    /// Username for the registry (with --password).
    #[arg(
        long = "username",
        alias = "src-username",
        value_name = "USER",
        requires = "password"
    )]
    pub username: Option<String>,
    /// Password for the registry (with --username).
    #[arg(
        long = "password",
        alias = "src-password",
        value_name = "PASSWORD",
        requires = "username"
    )]
    pub password: Option<String>,
}

impl ImageSideArgs {
    /// The transport options of the image's side.
    pub fn options(&self, common: &CommonTransportArgs) -> TransportOptions {
        side_options(
            Side {
                tls_verify: self.tls_verify,
                creds: self.creds.clone(),
                cert_dir: self.cert_dir.clone(),
                no_creds: self.no_creds,
                authfile: None,
                registry_token: self.registry_token.clone(),
                username: self.username.clone(),
                password: self.password.clone(),
            },
            common,
        )
    }
}

/// One side's registry flags, whatever they are spelled.
struct Side {
    tls_verify: Option<bool>,
    creds: Option<String>,
    cert_dir: Option<PathBuf>,
    no_creds: bool,
    /// This side's auth.json, instead of the common one.
    authfile: Option<PathBuf>,
    registry_token: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

fn side_options(side: Side, common: &CommonTransportArgs) -> TransportOptions {
    let creds = match (side.creds, side.username, side.password) {
        (Some(c), _, _) => Some(c),
        (None, Some(u), Some(p)) => Some(format!("{u}:{p}")),
        _ => None,
    };
    let mut o = transport_options(side.tls_verify, creds, common);
    o.cert_dir = side.cert_dir;
    o.no_creds = side.no_creds;
    if side.authfile.is_some() {
        o.authfile = side.authfile;
    }
    o.registry_token = side.registry_token;
    o
}

/// Settings for both sides.
#[derive(Debug, clap::Args)]
pub struct CommonTransportArgs {
    /// Registry credentials file (auth.json). Default: $REGISTRY_AUTH_FILE,
    /// $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json, ~/.docker/config.json.
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Directory of registries.d YAML files saying where lookaside signatures live. Default:
    /// ~/.config/containers/registries.d, then /etc/containers/registries.d.
    #[arg(long = "registries.d", value_name = "DIR")]
    pub registries_d: Option<PathBuf>,
    /// registries.conf (mirrors, blocked and insecure registries, short names). Default:
    /// $CONTAINERS_REGISTRIES_CONF, else ~/.config/containers/registries.conf, else
    /// /etc/containers/registries.conf; then the registries.conf.d drop-ins.
    #[arg(long = "registries-conf", value_name = "FILE")]
    pub registries_conf: Option<PathBuf>,
    /// How many times a failed registry request is retried.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retry_times: u32,
    /// How long one lookaside signature request may take, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub lookaside_timeout: u64,
    /// How long to wait for a registry to answer a request before retrying it, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// A download or upload that moves less than 1 KiB in this many seconds has stalled: it is
    /// retried (downloads resume where they stopped) within --retry-times.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_timeout: u64,
}

/// How a command about one image reaches it: the registry's settings, those every registry
/// shares, and the store.
#[derive(Debug, clap::Args)]
pub struct ImageAccessArgs {
    #[command(flatten)]
    pub side: ImageSideArgs,
    #[command(flatten)]
    pub common: CommonTransportArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

impl ImageAccessArgs {
    /// The session the command runs in.
    pub fn session(&self) -> Session {
        session(Some(&self.common), &self.store)
    }

    /// How to reach the image.
    pub fn options(&self) -> TransportOptions {
        self.side.options(&self.common)
    }
}

/// How `ferry copy` and `ferry sync` reach both ends: each side's settings, those every
/// registry shares, and the store.
#[derive(Debug, clap::Args)]
pub struct EndsArgs {
    #[command(flatten)]
    pub src: SourceArgs,
    #[command(flatten)]
    pub dest: DestArgs,
    #[command(flatten)]
    pub common: CommonTransportArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

impl EndsArgs {
    /// The session the command runs in.
    pub fn session(&self) -> Session {
        Session::new(self.session_config())
    }

    /// The configuration of the session the command runs in.
    pub fn session_config(&self) -> SessionConfig {
        session_config(Some(&self.common), &self.store)
    }

    /// How to reach the source.
    pub fn source_options(&self) -> TransportOptions {
        self.src.options(&self.common)
    }

    /// How to reach the destination.
    pub fn destination_options(&self) -> TransportOptions {
        self.dest.options(&self.common)
    }
}

/// The session of a command: the environment's defaults (as skopeo reads them), with the
/// command line's overrides.
pub fn session(common: Option<&CommonTransportArgs>, store: &StoreArgs) -> Session {
    Session::new(session_config(common, store))
}

/// The configuration [`session`] makes a session of, for a command that adds to it.
pub fn session_config(common: Option<&CommonTransportArgs>, store: &StoreArgs) -> SessionConfig {
    let mut config = SessionConfig::from_env();
    if let Some(s) = &store.store {
        config.store_root = Some(s.clone());
    }
    if let Some(c) = common
        && let Some(d) = &c.registries_d
    {
        config.registries_d = Some(d.clone());
    }
    if let Some(c) = common
        && let Some(f) = &c.registries_conf
    {
        config.registries_conf = Some(RegistriesConfPaths::for_home(
            Some(f.clone()),
            std::env::home_dir().as_deref(),
        ));
    }
    config
}

/// Builds the transport options of one side.
pub fn transport_options(
    tls_verify: Option<bool>,
    creds: Option<String>,
    common: &CommonTransportArgs,
) -> TransportOptions {
    let mut o = TransportOptions::default();
    o.tls_verify = tls_verify;
    o.creds = creds;
    o.authfile = common.authfile.clone();
    o.retry_times = Some(common.retry_times);
    o.lookaside_timeout = Some(std::time::Duration::from_secs(common.lookaside_timeout));
    o.timeout = Some(std::time::Duration::from_secs(common.timeout));
    o.stall_timeout = Some(std::time::Duration::from_secs(common.stall_timeout));
    o
}

/// A source argument: a reference with its transport, or (as podman takes it) an image name
/// without one, fully qualified or short, resolved through registries.conf.
#[derive(Debug, Clone)]
pub enum SourceArg {
    /// `TRANSPORT:…`.
    Reference(ImageReference),
    /// `[HOST/]REPOSITORY[:TAG|@DIGEST]`, to resolve.
    Name(String),
}

impl std::fmt::Display for SourceArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceArg::Reference(r) => write!(f, "{r}"),
            SourceArg::Name(n) => f.write_str(n),
        }
    }
}

/// The docker reference `r` names when it is a reference of `transport` (`docker`, `store`).
pub fn named_in(r: &ImageReference, transport: &str) -> Option<ferry::DockerReference> {
    if r.transport() == transport {
        r.docker_reference()
    } else {
        None
    }
}

/// Parses a source argument: a reference with a known transport, else an image name.
pub fn parse_source(s: &str) -> Result<SourceArg, String> {
    match ImageReference::parse(s) {
        Ok(r) => Ok(SourceArg::Reference(r)),
        Err(e @ ferry::ReferenceError::Transport { .. }) => {
            match ferry::DockerReference::parse(s) {
                Ok(_) => Ok(SourceArg::Name(s.to_string())),
                Err(_) => Err(e.to_string()),
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The references a source argument may be read from, in order: itself, or a name's
/// candidates from registries.conf (its alias, else each unqualified-search registry).
pub async fn candidates(session: &Session, arg: &SourceArg) -> anyhow::Result<Vec<ImageReference>> {
    match arg {
        SourceArg::Reference(r) => Ok(vec![r.clone()]),
        SourceArg::Name(n) => Ok(session.resolve_short_name(n).await?),
    }
}

/// Whether a failure to read one candidate of a short name lets the next be tried: the image
/// is not there, or its registry cannot be reached. A rejection never does.
pub fn try_next_candidate(e: &ferry::TransportError) -> bool {
    use ferry::TransportError as T;
    matches!(
        e,
        T::NotFound(_) | T::AllEndpointsFailed { .. } | T::Registry { .. }
    )
}
