//! `ferry standalone-sign` and `ferry standalone-verify`. (Stub: being written.)
use std::process::ExitCode;

/// Flags of `ferry standalone-sign`.
#[derive(Debug, clap::Args)]
pub struct StandaloneSignArgs {}

/// Flags of `ferry standalone-verify`.
#[derive(Debug, clap::Args)]
pub struct StandaloneVerifyArgs {}

/// Runs `ferry standalone-sign`.
pub async fn run_sign(_args: StandaloneSignArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet implemented")
}

/// Runs `ferry standalone-verify`.
pub async fn run_verify(_args: StandaloneVerifyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet implemented")
}
