//! `ferry policy check`: what a copy would decide, without copying. It runs the same plan and
//! gate as `ferry copy` (per instance for lists, in the same signature mode), so the two
//! always agree.

use std::process::ExitCode;

use anyhow::Context;
use ferry::{Judgement, SignatureFailure};
use serde_json::json;

use super::copy::GateArgs;
use super::errors::RejectedError;
use super::options::{ImageAccessArgs, SourceArg, parse_source};

/// `ferry policy` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Evaluate the signature policy on IMAGE without copying it: print what a copy in the
    /// given signature mode would decide, with the verdict of every requirement and every
    /// signature slot (per image of a list). Exit 0 when a copy would be admitted, 1 when it
    /// would be refused, 3 when the image or its signatures could not be read.
    Check(CheckArgs),
}

/// Output format.
#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// For people.
    Text,
    /// JSON on stdout.
    Json,
}

/// Flags of `ferry policy check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The image (docker://, oci:, dir:, store:; a name without transport is resolved through
    /// registries.conf, as podman resolves it).
    #[arg(value_name = "IMAGE", value_parser = parse_source)]
    image: SourceArg,
    #[command(flatten)]
    gate: GateArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    access: ImageAccessArgs,
}

fn judgement_json(j: &Judgement) -> serde_json::Value {
    json!({
        "digest": j.digest,
        "platform": j.platform,
        "is_list": j.is_list,
        "verdict": j.verdict,
        "keep": j.keep,
        "unreadable": j.unreadable,
        "failure": j.failure.as_ref().map(|f| f.to_string()),
    })
}

/// Runs `ferry policy ...`.
pub async fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    let PolicyCommand::Check(args) = cmd;
    let options = args.gate.options(args.access.options())?;
    check(&args.image, options, &args.access, args.format).await
}

/// Prints what a copy of `image` with `options` would decide, and exits 0 when it would be
/// admitted; `ferry policy check` and `ferry signatures verify` outside the store.
pub async fn check(
    image: &SourceArg,
    options: ferry::GateOptions,
    access: &ImageAccessArgs,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let session = access.session();
    let candidates = super::options::candidates(&session, image).await?;
    let mut found = None;
    for (i, candidate) in candidates.iter().enumerate() {
        match ferry::check(&session, candidate, &options).await {
            Err(ferry::CopyError::Source { source: e, .. })
                if i + 1 < candidates.len() && super::options::try_next_candidate(&e) =>
            {
                tracing::warn!("{candidate}: {e}; trying the next candidate");
            }
            r => {
                found = Some((candidate.clone(), r?));
                break;
            }
        }
    }
    let (image, checked) = found.context("no candidate to check")?;
    let judgements = checked.judgements();
    match format {
        Format::Json => {
            let out = json!({
                "version": ferry::REPORT_VERSION,
                "image": image.to_string(),
                "mode": options.mode,
                "admitted": checked.admitted(),
                "verdict": judgements.iter().find_map(|j| j.verdict.as_ref()),
                "manifests": judgements.iter().map(judgement_json).collect::<Vec<_>>(),
            });
            outln!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Text => {
            for j in judgements {
                let what = match (&j.platform, j.is_list) {
                    (Some(p), _) => format!("{} ({p} image {})", image, j.digest),
                    (None, true) => format!("{} (the list {})", image, j.digest),
                    (None, false) => image.to_string(),
                };
                match &j.verdict {
                    Some(v) => outln!("{what}: {v}"),
                    None => outln!(
                        "{what}: a list is not judged by the policy itself; each image in it is"
                    ),
                }
                match &j.failure {
                    Some(SignatureFailure::Unreadable { unreadable }) => outln!(
                        "  in {} mode this is refused: {} signature slot(s) could not be read",
                        options.mode,
                        unreadable.len()
                    ),
                    Some(SignatureFailure::AttachedUnreadable { unreadable }) => outln!(
                        "  in {} mode this is refused: {} attached artifact(s) could not be read:\n{}",
                        options.mode,
                        unreadable.len(),
                        unreadable
                            .iter()
                            .map(|u| format!("    {u}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    ),
                    _ => {}
                }
                for w in &j.attached_warnings {
                    outln!("  warning: {w}: could not be read; a copy goes without it");
                }
            }
            outln!(
                "A copy in {} mode would be {}.",
                options.mode,
                if checked.admitted() {
                    "ADMITTED"
                } else {
                    "REFUSED"
                }
            );
        }
    }
    if checked.admitted() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(RejectedError(format!(
            "{}: a copy in {} mode would be refused",
            image, options.mode
        ))
        .into())
    }
}
