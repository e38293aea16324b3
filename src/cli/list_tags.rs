//! `ferry list-tags`: the tags of a registry repository, or of a docker-archive file, as skopeo
//! prints them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ferry::DockerReference;

use super::options::ImageAccessArgs;

/// What list-tags lists.
#[derive(Debug, Clone)]
pub enum Listed {
    /// A registry repository.
    Repository(DockerReference),
    /// A docker-archive file.
    DockerArchive(PathBuf),
}

/// `docker://HOST/REPOSITORY` (without tag or digest) or `docker-archive:PATH` (a usage error
/// otherwise).
fn parse_listed(s: &str) -> Result<Listed, String> {
    if let Some(path) = s.strip_prefix("docker-archive:") {
        if path.is_empty() || path.contains(':') {
            return Err(format!(
                "{s:?}: give the archive's path alone (docker-archive:PATH): list-tags lists every image in it"
            ));
        }
        return Ok(Listed::DockerArchive(PathBuf::from(path)));
    }
    let rest = s.strip_prefix("docker://").ok_or_else(|| {
        format!(
            "{s:?}: list-tags lists the tags of a registry repository (docker://HOST/REPOSITORY) or of a docker-archive file (docker-archive:PATH)"
        )
    })?;
    let r = DockerReference::parse(rest).map_err(|e| e.to_string())?;
    if r.tag().is_some() || r.digest().is_some() {
        return Err(format!(
            "{s:?}: no tag or digest allowed in the reference: give docker://{}",
            r.name()
        ));
    }
    Ok(Listed::Repository(r))
}

/// List the tags of a repository (docker://HOST/REPOSITORY) or of the images in a
/// docker-archive file (docker-archive:PATH), as JSON: `{"Repository": …, "Tags": […]}`, as
/// skopeo list-tags prints it. An archive's tags are full references
/// (`docker.io/library/busybox:latest`), one per RepoTag of every image.
#[derive(Debug, clap::Args)]
pub struct ListTagsArgs {
    /// The repository, without tag or digest (docker://HOST/REPOSITORY), or a docker-archive
    /// file (docker-archive:PATH).
    #[arg(value_name = "REPOSITORY", value_parser = parse_listed)]
    repository: Listed,
    #[command(flatten)]
    access: ImageAccessArgs,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct TagList {
    #[serde(skip_serializing_if = "Option::is_none")]
    repository: Option<String>,
    tags: Vec<String>,
}

/// Runs `ferry list-tags`.
pub async fn run(args: ListTagsArgs) -> anyhow::Result<ExitCode> {
    let session = args.access.session();
    let out = match &args.repository {
        Listed::Repository(r) => {
            let options = args.access.options();
            let tags = session
                .list_tags(r, &options)
                .await
                .with_context(|| format!("listing the tags of docker://{r}"))?;
            TagList {
                repository: Some(r.name()),
                tags,
            }
        }
        Listed::DockerArchive(path) => {
            let tags = session.list_archive_tags(path).await.with_context(|| {
                format!("listing the tags of docker-archive:{}", path.display())
            })?;
            TagList {
                repository: None,
                tags,
            }
        }
    };
    outln!("{}", super::output::go_json_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
