//! `ferry manifest-digest`: the digest of a manifest file, as skopeo manifest-digest.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ferry::Digest;

/// Print the digest of the manifest in FILE (sha256 of its exact bytes).
#[derive(Debug, clap::Args)]
pub struct ManifestDigestArgs {
    /// The manifest file.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// Runs `ferry manifest-digest`.
pub async fn run(args: ManifestDigestArgs) -> anyhow::Result<ExitCode> {
    let bytes = ferry::limits::read_file(&args.file, ferry::limits::MAX_MANIFEST, "a manifest")
        .with_context(|| format!("reading the manifest {}", args.file.display()))?;
    let digest = Digest::sha256_of(&bytes);
    // A signed schema 1 manifest's digest is of its payload without the JWS signatures.
    ferry::manifest::matches_digest(&bytes, &digest)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    outln!("{digest}");
    Ok(ExitCode::SUCCESS)
}
