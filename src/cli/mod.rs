//! The command line: one file per subcommand. Each parses its flags (clap) and calls the
//! library; nothing here holds logic the library should have.

pub mod copy;
pub mod delete;
pub mod errors;
pub mod inspect;
pub mod list_tags;
pub mod login;
pub mod manifest_digest;
pub mod options;
pub mod output;
pub mod policy;
pub mod progress;
pub mod sign;
pub mod signatures;
pub mod store;
pub mod sync;
pub mod template;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status: the policy or the signatures rejected the image.
pub const EXIT_REJECTED: u8 = 1;
/// Exit status: bad usage.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: anything else failed (unreachable, IO, corrupt data).
pub const EXIT_FAILURE: u8 = 3;

/// The command line with Go's spelling of switches made clap's: skopeo's flags are Go flags,
/// where a switch also takes `=true` or `=false` (`--remove-signatures=false`, as templated
/// CI tasks write it). `--NAME=true` becomes `--NAME` and `--NAME=false` goes, for the names that
/// are switches wherever they occur; everything after `--` is left alone.
pub fn go_switches(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory;
    fn collect(
        cmd: &clap::Command,
        switches: &mut std::collections::BTreeSet<String>,
        valued: &mut std::collections::BTreeSet<String>,
    ) {
        for a in cmd.get_arguments() {
            let names = a
                .get_long_and_visible_aliases()
                .into_iter()
                .flatten()
                .chain(a.get_all_aliases().into_iter().flatten());
            let is_switch = matches!(a.get_action(), clap::ArgAction::SetTrue);
            for n in names {
                if is_switch {
                    switches.insert(n.to_string());
                } else {
                    valued.insert(n.to_string());
                }
            }
        }
        for sub in cmd.get_subcommands() {
            collect(sub, switches, valued);
        }
    }
    let (mut switches, mut valued) = Default::default();
    collect(&Cli::command(), &mut switches, &mut valued);
    let mut out = Vec::new();
    let mut rest = false;
    for arg in args {
        if !rest && let Some(text) = arg.to_str() {
            if text == "--" {
                rest = true;
            } else if let Some((name, value)) =
                text.strip_prefix("--").and_then(|t| t.split_once('='))
                && switches.contains(name)
                && !valued.contains(name)
            {
                match value {
                    "true" => {
                        out.push(format!("--{name}").into());
                        continue;
                    }
                    "false" => continue,
                    _ => {}
                }
            }
        }
        out.push(arg);
    }
    out
}

/// ferry copies container images between registries, OCI layouts, directories and its own
/// store, checking their signatures against a containers-policy.json policy on the way.
#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_help = "Exit status: 0 done (or accepted), 1 rejected by the signature policy or the signatures, \
2 bad usage, 3 any other failure (unreachable, IO, corrupt data).\n\
The policy is --policy FILE, else $CONTAINERS_POLICY_JSON, else ~/.config/containers/policy.json, \
else /etc/containers/policy.json."
)]
pub struct Cli {
    /// Log more (repeat for more detail); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once; boxing would only obscure the clap derive
pub enum Command {
    /// Copy an image (or a list of images) from SOURCE to DESTINATION, through the policy gate.
    Copy(copy::CopyArgs),
    /// Show an image's manifest, config and digest.
    Inspect(inspect::InspectArgs),
    /// List the tags of a registry repository.
    ListTags(list_tags::ListTagsArgs),
    /// Delete an image from a registry.
    Delete(delete::DeleteArgs),
    /// Log in to a registry (credentials stored in auth.json).
    Login(login::LoginArgs),
    /// Log out of a registry (credentials removed from auth.json).
    Logout(login::LogoutArgs),
    /// Print the digest of a manifest file.
    ManifestDigest(manifest_digest::ManifestDigestArgs),
    /// Evaluate the signature policy on an image without copying it.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// The forensic view of the signatures kept with an image in ferry's store.
    #[command(subcommand)]
    Signatures(signatures::SignaturesCommand),
    /// The store's lifecycle: list, remove, prune, check and repair, disk usage.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Sign a manifest file with simple signing (as skopeo standalone-sign).
    StandaloneSign(sign::StandaloneSignArgs),
    /// Verify a simple-signing signature of a manifest file (as skopeo standalone-verify).
    StandaloneVerify(sign::StandaloneVerifyArgs),
    /// Generate a sigstore (cosign) key pair: PREFIX.private (encrypted) and PREFIX.pub.
    GenerateSigstoreKey(sign::GenerateSigstoreKeyArgs),
    /// Copy many images (a repository, a directory tree, a skopeo sync YAML) through the gate,
    /// skipping those already there (as skopeo sync).
    Sync(sync::SyncArgs),
}

impl Command {
    /// How this command spells per-side flags, for hints.
    pub fn flag_style(&self) -> errors::FlagStyle {
        match self {
            Command::Copy(_) | Command::Sync(_) => errors::FlagStyle::PerSide,
            _ => errors::FlagStyle::Single,
        }
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Copy(a) => copy::run(a).await,
        Command::Inspect(a) => inspect::run(a).await,
        Command::ListTags(a) => list_tags::run(a).await,
        Command::Delete(a) => delete::run(a).await,
        Command::Login(a) => login::run_login(a).await,
        Command::Logout(a) => login::run_logout(a).await,
        Command::ManifestDigest(a) => manifest_digest::run(a).await,
        Command::Policy(a) => policy::run(a).await,
        Command::Signatures(a) => signatures::run(a).await,
        Command::Store(a) => store::run(a).await,
        Command::StandaloneSign(a) => sign::run_sign(a).await,
        Command::StandaloneVerify(a) => sign::run_verify(a).await,
        Command::GenerateSigstoreKey(a) => sign::run_generate_sigstore_key(a).await,
        Command::Sync(a) => sync::run(a).await,
    }
}
