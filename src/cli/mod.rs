//! The command line: one file per subcommand. Each parses its flags (clap) and calls the
//! library; nothing here holds logic the library should have.

pub mod compat;
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
pub mod proxy;
pub mod sign;
pub mod signatures;
pub mod store;
pub mod sync;
pub mod template;
pub mod unpack;

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

/// skopeo's root flags that ferry keeps on the commands that use them, with whether each takes
/// a value.
const SKOPEO_ROOT_FLAGS: &[(&str, bool)] = &[
    ("policy", true),
    ("insecure-policy", false),
    ("registries.d", true),
    ("registries-conf", true),
    ("override-arch", true),
    ("override-os", true),
    ("override-variant", true),
];

/// The command line with skopeo's root flags where ferry reads them: skopeo takes `--policy`,
/// `--insecure-policy`, `--registries.d`, `--registries-conf` and `--override-*` before the
/// command (`skopeo --insecure-policy copy …`), ferry on the commands that use them. Those
/// written before the command are moved behind its name (`policy check`, `store prune`: the
/// whole path); one that the command does not use is dropped, as skopeo ignores it there
/// (`--policy` before `inspect`).
pub fn skopeo_root_flags(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory;
    let root = Cli::command();
    // ferry's own root flags that take a value (`--command-timeout 60s`): the value is not
    // the command's name.
    let root_valued = |name: &str| {
        root.get_arguments()
            .any(|a| a.get_long() == Some(name) && matches!(a.get_action(), clap::ArgAction::Set))
    };
    let mut args = args.into_iter().peekable();
    let mut out: Vec<std::ffi::OsString> = args.next().into_iter().collect();
    let mut moved: Vec<(&str, Vec<std::ffi::OsString>)> = Vec::new();
    while let Some(text) = args.peek().and_then(|a| a.to_str()).map(str::to_string) {
        if !text.starts_with('-') || text == "--" {
            break;
        }
        let Some(arg) = args.next() else { break };
        let long = text.strip_prefix("--").unwrap_or_default();
        let (name, inline) = match long.split_once('=') {
            Some((n, _)) => (n, true),
            None => (long, false),
        };
        match SKOPEO_ROOT_FLAGS.iter().find(|(n, _)| *n == name) {
            Some((n, valued)) => {
                let mut words = vec![arg];
                if *valued && !inline {
                    words.extend(args.next());
                }
                moved.push((n, words));
            }
            None => {
                out.push(arg);
                if root_valued(name) && !inline {
                    out.extend(args.next());
                }
            }
        }
    }
    if moved.is_empty() {
        out.extend(args);
        return out;
    }
    let mut command = &root;
    while let Some(sub) = args
        .peek()
        .and_then(|a| a.to_str())
        .and_then(|w| command.find_subcommand(w))
    {
        command = sub;
        out.extend(args.next());
    }
    for (name, words) in moved {
        if command.get_arguments().any(|a| a.get_long() == Some(name)) {
            out.extend(words);
        }
    }
    out.extend(args);
    out
}

/// A Go duration (`90s`, `1h30m`, `1.5h`, `250ms`), as skopeo's `--command-timeout` takes.
pub fn parse_go_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad =
        || format!("invalid duration {text:?}: expected a Go duration such as 90s, 10m or 1h30m");
    match text {
        "" => return Err(bad()),
        "0" => return Ok(std::time::Duration::ZERO),
        _ => {}
    }
    let mut rest = text;
    let mut seconds = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        seconds += number * scale;
    }
    std::time::Duration::try_from_secs_f64(seconds).map_err(|_| bad())
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
2 bad usage, 3 any other failure (unreachable, IO, corrupt data). Invoked as skopeo (a link named \
skopeo, or FERRY_COMPAT=skopeo), ferry follows skopeo 1.9.3 where scripts see it: every failure \
exits 1, --version prints skopeo's version line (docs/config.md).\n\
skopeo's root flags (--policy, --insecure-policy, --registries.d, --registries-conf, --override-arch, \
--override-os, --override-variant) may stand before the command, as in skopeo.\n\
The policy is --policy FILE, else $CONTAINERS_POLICY_JSON, else \
$XDG_CONFIG_HOME/containers/policy.json (~/.config without it), else /etc/containers/policy.json."
)]
pub struct Cli {
    /// Log more (repeat for more detail); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log at debug level, as skopeo's --debug (the same as -vv).
    #[arg(long, global = true)]
    pub debug: bool,
    /// Stop the command if it has not finished after this long (a Go duration: 90s, 10m,
    /// 1h30m), as skopeo's --command-timeout: its temporary files are removed and the exit
    /// status is 3.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_go_duration)]
    pub command_timeout: Option<std::time::Duration>,
    /// Accepted for skopeo's command lines; changes nothing: ferry writes a temporary file only
    /// beside its destination, so that a finished file is renamed into place.
    #[arg(long, global = true, value_name = "DIR")]
    pub tmpdir: Option<std::path::PathBuf>,
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
    /// Serve skopeo's image proxy protocol on a socket (for bootc, rpm-ostree, composefs-rs).
    ExperimentalImageProxy(proxy::ProxyArgs),
    /// Unpack an image the policy admits into an OCI runtime bundle (rootfs and config.json)
    /// that runc runs.
    Unpack(unpack::UnpackArgs),
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
        Command::ExperimentalImageProxy(a) => proxy::run(a).await,
        Command::Unpack(a) => unpack::run(a).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(line: &str) -> String {
        let args = line.split(' ').map(std::ffi::OsString::from).collect();
        skopeo_root_flags(args)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn skopeo_root_flags_move_behind_the_command_that_uses_them() {
        assert_eq!(
            rewrite("ferry --insecure-policy --registries.d d copy a b"),
            "ferry copy --insecure-policy --registries.d d a b"
        );
        // The whole path of a nested command, `=` forms, and ferry's own -v left in place.
        assert_eq!(
            rewrite("ferry -v --policy=p.json policy check docker://x"),
            "ferry -v policy check --policy=p.json docker://x"
        );
        assert_eq!(
            rewrite("ferry --override-arch arm64 --override-os linux inspect docker://x"),
            "ferry inspect --override-arch arm64 --override-os linux docker://x"
        );
        // ferry's own root flags stay, with their values.
        assert_eq!(
            rewrite("ferry --command-timeout 60s --override-arch=arm64 --debug inspect x"),
            "ferry --command-timeout 60s --debug inspect --override-arch=arm64 x"
        );
        // A root flag the command does not use is dropped, as skopeo ignores it there.
        assert_eq!(
            rewrite("ferry --policy p --registries-conf r inspect docker://x"),
            "ferry inspect --registries-conf r docker://x"
        );
        // Nothing changes after the command, or without root flags.
        assert_eq!(
            rewrite("ferry copy --policy p a b"),
            "ferry copy --policy p a b"
        );
        assert_eq!(
            rewrite("ferry store prune --dry-run"),
            "ferry store prune --dry-run"
        );
    }

    #[test]
    fn command_timeouts_are_go_durations() {
        use std::time::Duration;
        assert_eq!(parse_go_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "10", "5x", "s", "1h-2m", "1..5s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} is not a duration");
        }
    }
}
