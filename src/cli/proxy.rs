//! `ferry experimental-image-proxy`: skopeo's image proxy for bootc, rpm-ostree and composefs-rs
//! (the `containers-image-proxy` crate starts it with one end of a socket pair as standard
//! input). This file only turns the flags the crate and skopeo pass into a session and gate
//! options and hands the socket to the library ([`ferry::image_proxy::serve_with`]).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::ExitCode;

use anyhow::Context;
use ferry::GateOptions;

use super::copy::ModeArgs;
use super::errors::UsageError;
use super::options::{ImageAccessArgs, PlatformArgs, PolicyArgs};

/// Serve skopeo's image proxy protocol (0.2.8) on a socket, for bootc, rpm-ostree and
/// composefs-rs: every image opened goes through the signature policy gate first.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The client starts ferry with one end of a SOCK_SEQPACKET socket pair as \
standard input (or as --sockfd N) and sends one JSON request per packet; see docs/proxy.md. \
Beyond skopeo's methods, GetSignatureVerdict [imgid] answers who signed the opened image and why \
the policy admitted it. A blob whose source delivers less than 1 KiB in --stall-timeout seconds of \
waiting fails then (on FinishPipe, or GetRawBlob's error pipe), whatever retries or resumes were \
under way: that is the longest a client waits on a stalled blob."
)]
pub struct ProxyArgs {
    /// Serve on this descriptor, an open SOCK_SEQPACKET socket (default: 0, standard input).
    #[arg(long, value_name = "N", default_value_t = 0)]
    sockfd: i32,
    #[command(flatten)]
    access: ImageAccessArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    mode: ModeArgs,
    #[command(flatten)]
    platform: PlatformArgs,
    /// The most layers of an opened registry image fetched ahead at once, before the client
    /// asks for them (0: none, each layer is fetched when asked for). Layers of 16 MiB and more
    /// go two at a time while the link proves fast (100 MiB/s or more), up to N on a slower one.
    /// Each is verified as it streams and kept in an unnamed file in $TMPDIR (else /var/tmp)
    /// until it is served or the image is closed. The fetches run at the lowest CPU priority
    /// (nice 19) while the client does not wait on them (when the proxy may raise it back:
    /// root, or CAP_SYS_NICE).
    #[arg(long, value_name = "N", default_value_t = 6)]
    read_ahead: usize,
    /// The most MiB of layers fetched ahead and not yet served, per opened image: a layer is
    /// fetched ahead only when it fits.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    read_ahead_mib: u64,
    /// skopeo's decryption of encrypted layers, which ferry does not do: refused with the reason.
    #[arg(long, hide = true, value_name = "KEY")]
    decryption_key: Vec<String>,
    /// Accepted for the crate's command line; ferry sends its own user agent.
    #[arg(long, hide = true, value_name = "PREFIX")]
    user_agent_prefix: Option<String>,
    /// skopeo's --shared-blob-dir and --daemon-host name transports ferry does not have.
    #[arg(long, hide = true, value_name = "DIR")]
    shared_blob_dir: Option<std::path::PathBuf>,
    #[arg(long, hide = true, value_name = "HOST")]
    daemon_host: Option<String>,
}

/// Runs `ferry experimental-image-proxy` until the client shuts it down or goes away.
pub async fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    if !args.decryption_key.is_empty() {
        return Err(UsageError(
            "--decryption-key: ferry does not decrypt layers (ocicrypt); an encrypted image is served as it is stored. Use skopeo's proxy for encrypted images".into(),
        )
        .into());
    }
    if args.shared_blob_dir.is_some() || args.daemon_host.is_some() {
        return Err(UsageError(
            "--shared-blob-dir/--daemon-host: ferry has no docker-daemon: transport and oci: layouts keep their own blobs; open docker://, oci:, dir: or store: images instead".into(),
        )
        .into());
    }
    if let Some(p) = &args.user_agent_prefix {
        tracing::debug!("--user-agent-prefix {p:?}: accepted; ferry sends its own user agent");
    }
    let session = args.access.session();
    let mut options = GateOptions::new(args.policy.load()?);
    options.mode = args.mode.mode();
    options.selection = args.platform.selection(false);
    let mut source = args.access.options();
    source.referrers = args.mode.referrers;
    options.source = source;
    let mut serve = ferry::image_proxy::ServeOptions::default();
    serve.read_ahead_blobs = args.read_ahead;
    serve.read_ahead_bytes = args.read_ahead_mib.saturating_mul(1 << 20);
    let socket = take_socket(args.sockfd)?;
    ferry::image_proxy::serve_with(&session, &options, &serve, socket)
        .await
        .context("serving the image proxy")?;
    Ok(ExitCode::SUCCESS)
}

/// Our own descriptor for the client's socket `n`, which the client left open for us.
fn take_socket(n: i32) -> anyhow::Result<OwnedFd> {
    if n == 0 {
        return std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating standard input (the client's socket)");
    }
    if n < 0 {
        return Err(UsageError(format!("--sockfd {n}: not a file descriptor")).into());
    }
    if std::fs::symlink_metadata(format!("/proc/self/fd/{n}")).is_err() {
        return Err(UsageError(format!(
            "--sockfd {n}: no such open file descriptor; the client must start ferry with its socket open at {n}"
        ))
        .into());
    }
    // SAFETY: descriptor n is open (checked just above, and nothing in this process closes
    // descriptors it did not open) and is only borrowed for the duration of the duplication.
    let borrowed = unsafe { BorrowedFd::borrow_raw(n) };
    borrowed
        .try_clone_to_owned()
        .with_context(|| format!("duplicating --sockfd {n}"))
}
