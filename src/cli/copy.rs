//! `ferry copy`. (Stub: being written.)
use std::process::ExitCode;

/// Flags of `ferry copy`.
#[derive(Debug, clap::Args)]
pub struct CopyArgs {}

/// Runs `ferry copy`.
pub async fn run(_args: CopyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet implemented")
}
