//! `ferry policy check`.

use std::process::ExitCode;

use anyhow::Context;
use ferry::digest::Digest;
use ferry::policy::{self, SlotOutcome, Verdict};
use ferry::reference::ImageReference;
use ferry::transport;

use super::options::{CommonTransportArgs, PolicyArgs, SourceArgs, StoreArgs, parse_image};

/// `ferry policy` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Evaluate the signature policy on IMAGE without copying it: print the verdict of every
    /// requirement and every signature slot. Exit 0 when accepted, 1 when not.
    Check(CheckArgs),
}

/// Output format.
#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// For people.
    Text,
    /// The verdict as JSON on stdout.
    Json,
}

/// Flags of `ferry policy check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The image (docker://, oci:, dir:, store:).
    #[arg(value_name = "IMAGE", value_parser = parse_image)]
    image: ImageReference,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    src: SourceArgs,
    #[command(flatten)]
    common: CommonTransportArgs,
    #[command(flatten)]
    store: StoreArgs,
}

/// Runs `ferry policy ...`.
pub async fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    let PolicyCommand::Check(args) = cmd;
    let policy = args.policy.load()?;
    let options = super::options::transport_options(
        args.src.src_tls_verify,
        args.src.src_creds.clone(),
        &args.common,
        &args.store,
    );
    let source = transport::open_source(&args.image, &options)
        .await
        .with_context(|| format!("reading {}", args.image))?;
    let manifest = source
        .manifest(None)
        .await
        .with_context(|| format!("reading the manifest of {}", args.image))?;
    let digest = Digest::sha256_of(&manifest.bytes);
    let slots = source
        .signatures(&digest, None)
        .await
        .with_context(|| format!("reading the signatures of {}", args.image))?;
    let verdict = policy::evaluate(&policy, &args.image, &manifest.bytes, &slots)?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&verdict)?),
        Format::Text => print_verdict(&args.image, &verdict),
    }
    Ok(if verdict.accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Prints a verdict for people: the answer, each requirement, each slot.
pub fn print_verdict(image: &ImageReference, v: &Verdict) {
    println!(
        "{image}: {} by {} (scope {})",
        if v.accepted { "ACCEPTED" } else { "REJECTED" },
        v.policy,
        v.scope
    );
    for r in &v.requirements {
        println!(
            "  requirement {} {}: {} — {}",
            r.index + 1,
            r.description,
            if r.satisfied {
                "satisfied"
            } else {
                "NOT satisfied"
            },
            r.reason
        );
    }
    if v.slots.is_empty() {
        println!("  no signatures");
    }
    for s in &v.slots {
        let what = match &s.outcome {
            SlotOutcome::Accepted {
                requirement,
                signer,
                claims,
            } => format!(
                "accepted by requirement {}: key {}{}, identity {}",
                requirement + 1,
                signer.fingerprint.as_deref().unwrap_or("?"),
                signer
                    .user_id
                    .as_deref()
                    .map(|u| format!(" \"{u}\""))
                    .unwrap_or_default(),
                claims.docker_reference.as_deref().unwrap_or("?")
            ),
            SlotOutcome::Rejected { reasons, .. } => format!("rejected: {}", reasons.join("; ")),
            SlotOutcome::NotExamined { format } => {
                format!("readable ({format}), not examined by the policy")
            }
            SlotOutcome::Unreadable { reason } => format!("UNREADABLE: {reason}"),
        };
        println!("  signature-{} ({}): {what}", s.index, s.location);
    }
}
