//! `ferry list-tags`: the tags of a repository, as skopeo prints them.

use std::process::ExitCode;

use anyhow::Context;
use ferry::DockerReference;

use super::options::ImageAccessArgs;

/// `docker://HOST/REPOSITORY`, without tag or digest (a usage error otherwise).
fn parse_repository(s: &str) -> Result<DockerReference, String> {
    let rest = s.strip_prefix("docker://").ok_or_else(|| {
        format!(
            "{s:?}: list-tags lists the tags of a registry repository: docker://HOST/REPOSITORY"
        )
    })?;
    let r = DockerReference::parse(rest).map_err(|e| e.to_string())?;
    if r.tag().is_some() || r.digest().is_some() {
        return Err(format!(
            "{s:?}: no tag or digest allowed in the reference: give docker://{}",
            r.name()
        ));
    }
    Ok(r)
}

/// List the tags of a repository (docker://HOST/REPOSITORY), as JSON:
/// `{"Repository": …, "Tags": […]}`, as skopeo list-tags prints it.
#[derive(Debug, clap::Args)]
pub struct ListTagsArgs {
    /// The repository, without tag or digest: docker://HOST/REPOSITORY.
    #[arg(value_name = "REPOSITORY", value_parser = parse_repository)]
    repository: DockerReference,
    #[command(flatten)]
    access: ImageAccessArgs,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct TagList {
    repository: String,
    tags: Vec<String>,
}

/// Runs `ferry list-tags`.
pub async fn run(args: ListTagsArgs) -> anyhow::Result<ExitCode> {
    let r = &args.repository;
    let session = args.access.session();
    let options = args.access.options();
    let tags = session
        .list_tags(r, &options)
        .await
        .with_context(|| format!("listing the tags of docker://{r}"))?;
    let out = TagList {
        repository: r.name(),
        tags,
    };
    outln!("{}", super::output::go_json_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
