//! `ferry unpack`: an image the policy admits, made into an OCI runtime bundle a runtime (runc,
//! crun) runs, as `umoci unpack` makes one.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use ferry::UnpackOptions;

use super::copy::GateArgs;
use super::errors::UsageError;
use super::options::{ImageAccessArgs, SourceArg, parse_source};
use super::progress::TerminalProgress;

/// Unpack SOURCE into an OCI runtime bundle at BUNDLE: BUNDLE/rootfs (the layers applied in
/// order) and BUNDLE/config.json (the image configuration converted as the OCI image-spec's
/// conversion.md says), as `umoci unpack` writes them. The signature policy decides first,
/// exactly as for `ferry copy` in the same signature mode: a rejected image writes nothing.
///
/// SOURCE is any image ferry reads: docker://HOST/REPO[:TAG|@DIGEST], oci:PATH[:NAME],
/// dir:PATH, store:REF (or a name without transport, resolved through registries.conf).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Layers are hostile input: every name is resolved inside the root and never through a \
symlink that leaves it (openat2 RESOLVE_IN_ROOT where the kernel has it, a no-follow walk otherwise); \
'..' in names, and hardlinks out of the root, are refused naming the layer and the entry. From a \
registry, several layers download while one is applied, each checked against its digest. The \
bundle is built beside BUNDLE and renamed into place when complete: a failure, Ctrl-C or kill -9 \
leaves no BUNDLE, and the next unpack removes what a killed one left. Unpacking a store: image adds \
a record of it (where, under which verdict) that `ferry signatures list` shows.

Exit status: 0 unpacked, 1 rejected by the signature policy or the signatures, 2 bad usage,
3 any other failure (unreachable, a corrupt or hostile layer, a cap reached, IO)."
)]
pub struct UnpackArgs {
    /// The image to unpack.
    #[arg(value_name = "SOURCE", value_parser = parse_source)]
    source: SourceArg,
    /// The bundle directory to make: it must not exist, or be empty.
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    #[command(flatten)]
    gate: GateArgs,
    /// Write only the root filesystem, into BUNDLE itself (no rootfs/ below it, no
    /// config.json): for a runtime that makes its own configuration.
    #[arg(long)]
    rootfs_only: bool,
    /// Unpack without root, as umoci's --rootless: files are owned by you (the layers' owners
    /// are not applied), device nodes are skipped with a warning, and config.json maps your
    /// uid and gid to root in a user namespace. Without it, unpacking as another user than
    /// root is an error.
    #[arg(long)]
    rootless: bool,
    /// Stop when the layers' uncompressed tar exceeds SIZE in all (bytes, or with a K, M, G or
    /// T suffix, powers of 1024): a decompression bomb fails cleanly here.
    #[arg(long, value_name = "SIZE", default_value = "64G", value_parser = parse_size)]
    max_bytes: u64,
    /// Stop when the layers hold more than N entries in all.
    #[arg(long, value_name = "N", default_value_t = ferry::bundle::DEFAULT_MAX_ENTRIES)]
    max_entries: u64,
    /// How many layers may be downloading or waiting to be applied at once (their bytes wait in
    /// unnamed temporary files beside BUNDLE; memory stays flat).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    parallel_layers: u16,
    #[command(flatten)]
    access: ImageAccessArgs,
    /// No progress output (warnings and errors still go to stderr).
    #[arg(short, long)]
    quiet: bool,
}

/// A size: bytes, or a number with a K, M, G or T suffix (powers of 1024; `KiB`, `MB` and the
/// like are read the same).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {text:?}: use bytes or a number with K, M, G or T");
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_uppercase().trim_end_matches('B') {
        "" => 0,
        "K" | "KI" => 10,
        "M" | "MI" => 20,
        "G" | "GI" => 30,
        "T" | "TI" => 40,
        _ => return Err(bad()),
    };
    number.checked_mul(1u64 << shift).ok_or_else(bad)
}

/// Runs `ferry unpack`.
pub async fn run(args: UnpackArgs) -> anyhow::Result<ExitCode> {
    if args.gate.selection.all {
        return Err(UsageError(
            "--all: a bundle holds one image; choose one of a list with --platform OS/ARCH[/VARIANT] (the default is this machine's)".into(),
        )
        .into());
    }
    let session = args.access.session();
    let gate = args.gate.options(args.access.options())?;
    let mut options = UnpackOptions::new(gate.policy.clone());
    options.gate = gate;
    options.rootfs_only = args.rootfs_only;
    options.rootless = args.rootless;
    options.max_bytes = args.max_bytes;
    options.max_entries = args.max_entries;
    options.parallel_layers = usize::from(args.parallel_layers);
    // FERRY_UNPACK_RESOLVER=walk forces the fallback resolver (for tests of the CLI).
    options.resolver = ferry::bundle::ApplyOptions::from_env().resolver;
    let progress = Arc::new(TerminalProgress::new(args.quiet));
    options.gate.progress = Some(progress.clone());

    let candidates = super::options::candidates(&session, &args.source).await?;
    let mut result = None;
    for (i, candidate) in candidates.iter().enumerate() {
        let r = ferry::unpack(&session, candidate, &args.bundle, &options).await;
        match &r {
            Err(ferry::UnpackError::Gate(ferry::CopyError::Source { source: e, .. }))
                if i + 1 < candidates.len() && super::options::try_next_candidate(e) =>
            {
                tracing::warn!("{candidate}: {e}; trying the next candidate");
            }
            _ => {
                result = Some(r);
                break;
            }
        }
    }
    let report = result.context("no candidate to unpack")??;
    let what = if report.rootfs_only {
        "root filesystem"
    } else {
        "bundle"
    };
    progress.line(&format!(
        "Unpacked {} ({}) to the {what} {}",
        report.source,
        report.manifest_digest,
        report.bundle.display()
    ));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64G"), Ok(64 << 30));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("2TB"), Ok(2 << 40));
        for bad in ["", "G", "1.5G", "-1", "10X", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
