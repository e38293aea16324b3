//! `ferry inspect`. (Stub: being written.)
use std::process::ExitCode;

/// Flags of `ferry inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {}

/// Runs `ferry inspect`.
pub async fn run(_args: InspectArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet implemented")
}
