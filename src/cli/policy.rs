//! `ferry policy check`. (Stub: being written.)
use std::process::ExitCode;

/// `ferry policy` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Evaluate the policy on IMAGE; exit 0 when accepted, 1 when not.
    Check(CheckArgs),
}

/// Flags of `ferry policy check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

/// Runs `ferry policy ...`.
pub async fn run(_cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet implemented")
}
