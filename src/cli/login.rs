//! `ferry login` and `ferry logout`: credentials in auth.json, as podman and skopeo keep them.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ferry::auth as auth_store;

use super::errors::UsageError;
use super::options::{CommonTransportArgs, StoreArgs};

/// Log in to REGISTRY: check the credentials with the registry, then store them in the auth
/// file (--authfile, else $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json,
/// else /run/containers/UID/auth.json), where every ferry, skopeo and podman command finds
/// them.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The registry (HOST[:PORT]), or a repository namespace in it (HOST/NS).
    #[arg(value_name = "REGISTRY")]
    registry: String,
    /// The username (asked on the terminal when not given).
    #[arg(short = 'u', long = "username", value_name = "USER")]
    user: Option<String>,
    /// The password (asked on the terminal when not given; prefer --password-stdin).
    #[arg(
        short = 'p',
        long = "password",
        value_name = "PASSWORD",
        conflicts_with = "password_stdin"
    )]
    secret: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// Print the username stored for REGISTRY, and check nothing.
    #[arg(long)]
    get_login: bool,
    /// Require https and verify certificates (false allows http and unverified https).
    #[arg(long = "tls-verify", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    tls_verify: Option<bool>,
    /// Certificates for the registry (*.crt CAs, *.cert/*.key client pairs), instead of its
    /// certs.d directory.
    #[arg(long = "cert-dir", value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    #[command(flatten)]
    common: CommonTransportArgs,
    #[command(flatten)]
    store: StoreArgs,
}

/// Remove the stored credentials of REGISTRY (or of every registry with --all) from the auth
/// file.
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// The registry (HOST[:PORT]), or a repository namespace in it (HOST/NS).
    #[arg(value_name = "REGISTRY", required_unless_present = "all")]
    registry: Option<String>,
    /// Remove the credentials of every registry.
    #[arg(short = 'a', long, conflicts_with = "registry")]
    all: bool,
    /// The auth file (default as for login).
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// Accepted for skopeo's command lines; logout does not connect.
    #[arg(long = "tls-verify", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    tls_verify: Option<bool>,
}

fn key_of(arg: &str) -> anyhow::Result<String> {
    auth_store::normalize_key(arg).ok_or_else(|| {
        UsageError(format!(
            "{arg:?} is not a registry: give HOST[:PORT] or HOST[:PORT]/NAMESPACE, without tag or digest"
        ))
        .into()
    })
}

fn read_line(prompt: &str) -> anyhow::Result<String> {
    use std::io::Write;
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Runs `ferry login`.
pub async fn run_login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let key = key_of(&args.registry)?;
    let path = args
        .common
        .authfile
        .clone()
        .unwrap_or_else(auth_store::default_write_path);
    if args.get_login {
        return match auth_store::username(&path, &key)? {
            Some(u) => {
                outln!("{u}");
                Ok(ExitCode::SUCCESS)
            }
            None => anyhow::bail!("not logged into {key} (no entry in {})", path.display()),
        };
    }
    let interactive = std::io::stdin().is_terminal();
    let user = match &args.user {
        Some(u) => u.clone(),
        None if interactive && !args.password_stdin => read_line("Username: ")?,
        None => {
            return Err(UsageError("give the username with --username".into()).into());
        }
    };
    let password = if args.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the password from standard input")?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = &args.secret {
        p.clone()
    } else if interactive {
        rpassword::prompt_password("Password: ")?
    } else {
        return Err(
            UsageError("give the password with --password-stdin (or --password)".into()).into(),
        );
    };
    if user.is_empty() || password.is_empty() {
        return Err(UsageError("the username and the password must not be empty".into()).into());
    }
    let host = key.split('/').next().unwrap_or(&key);
    let session = super::options::session(Some(&args.common), &args.store);
    let mut options = super::options::transport_options(
        args.tls_verify,
        Some(format!("{user}:{password}")),
        &args.common,
    );
    options.cert_dir = args.cert_dir.clone();
    let what = || format!("logging in to {host}");
    session
        .check_login(host, &options)
        .await
        .with_context(what)?;
    auth_store::store(&path, &key, &user, &password)
        .with_context(|| format!("storing the credentials in {}", path.display()))?;
    outln!("Login Succeeded!");
    Ok(ExitCode::SUCCESS)
}

/// Runs `ferry logout`.
pub async fn run_logout(args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let _ = args.tls_verify;
    let path = args
        .authfile
        .clone()
        .unwrap_or_else(auth_store::default_write_path);
    if args.all {
        auth_store::remove_all(&path)?;
        outln!("Removed login credentials for all registries");
        return Ok(ExitCode::SUCCESS);
    }
    let key = key_of(args.registry.as_deref().unwrap_or_default())?;
    if auth_store::remove(&path, &key)? {
        outln!("Removed login credentials for {key}");
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!("not logged into {key} (no entry in {})", path.display())
    }
}
