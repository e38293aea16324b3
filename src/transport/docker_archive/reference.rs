//! `docker-archive:PATH[:NAME:TAG|:@N]`: an image of a `docker save` archive, named by one of
//! its RepoTags (normalised as distribution/reference does) or by its position in
//! `manifest.json`. As in containers/image, the policy has no scope for it but the transport's
//! default (`""`), and its docker reference is the tag given.

use std::any::Any;
use std::path::PathBuf;

use crate::reference::{
    DockerReference, ImageReference, ReferenceError, TransportReference, resolve_path,
};
use crate::tarfile::reference::{DockerSelector, parse_docker_archive};

/// The transport's name.
pub const NAME: &str = "docker-archive";

/// An image of a docker-archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The archive file, as given.
    pub path: PathBuf,
    /// Which image (for a destination, the tag it gets; `Only` gives none).
    pub selector: DockerSelector,
    docker: Option<DockerReference>,
    resolved: PathBuf,
}

impl Reference {
    /// The image `selector` picks in the archive at `path`.
    pub fn image(path: PathBuf, selector: DockerSelector) -> ImageReference {
        let docker = match &selector {
            DockerSelector::Tag(t) => DockerReference::parse(&t.to_string()).ok(),
            _ => None,
        };
        let resolved = resolve_path(&path);
        ImageReference::new(Reference {
            path,
            selector,
            docker,
            resolved,
        })
    }

    /// Parses what follows `docker-archive:`, as containers/image does.
    pub fn parse(within: &str) -> Result<ImageReference, ReferenceError> {
        let r = parse_docker_archive(within)
            .map_err(|e| crate::transport::oci_archive::reference::invalid(NAME, within, e))?;
        Ok(Reference::image(r.path, r.selector))
    }
}

impl TransportReference for Reference {
    fn transport(&self) -> &'static str {
        NAME
    }
    fn within(&self) -> String {
        match &self.selector {
            DockerSelector::Tag(t) => format!("{}:{t}", self.path.display()),
            DockerSelector::Index(i) => format!("{}:@{i}", self.path.display()),
            _ => self.path.display().to_string(),
        }
    }
    fn docker_reference(&self) -> Option<&DockerReference> {
        self.docker.as_ref()
    }
    /// containers/image gives docker-archive images no scope but the transport's default.
    fn policy_scopes(&self) -> Vec<String> {
        Vec::new()
    }
    fn write_lock_key(&self) -> Option<String> {
        Some(format!("{NAME}:{}", self.resolved.display()))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
