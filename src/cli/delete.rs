//! `ferry delete`: delete an image from a registry, as skopeo delete.

use std::process::ExitCode;

use anyhow::Context;
use ferry::ImageReference;

use super::errors::UsageError;
use super::options::{ImageAccessArgs, parse_image};

/// Delete IMAGE (docker://HOST/REPOSITORY:TAG or @DIGEST) from its registry. Registries delete
/// manifests, not tags: every tag of the same manifest goes with it. Its signatures in a
/// file:// lookaside of registries.d are removed too.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The image: docker://HOST/REPOSITORY:TAG or docker://HOST/REPOSITORY@DIGEST.
    #[arg(value_name = "IMAGE", value_parser = parse_image)]
    image: ImageReference,
    #[command(flatten)]
    access: ImageAccessArgs,
}

/// Runs `ferry delete`.
pub async fn run(args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let Some(r) = &super::options::named_in(&args.image, "docker") else {
        return Err(UsageError(format!(
            "{}: ferry delete deletes images from registries (docker://); for the store use ferry store rm",
            args.image
        ))
        .into());
    };
    let r = r.clone().with_default_tag();
    let session = args.access.session();
    let options = args.access.options();
    let what = || format!("deleting {}", args.image);
    let digest = session
        .delete_image(&r, &options)
        .await
        .with_context(what)?;
    tracing::info!("deleted {} ({digest})", args.image);
    Ok(ExitCode::SUCCESS)
}
