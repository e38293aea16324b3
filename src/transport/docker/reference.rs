//! `docker://HOST/REPO[:TAG|@DIGEST]`: the docker transport's reference, normalised as
//! docker/distribution does, with `:latest` added when neither tag nor digest is given (as
//! pulls do).

use std::any::Any;

use crate::reference::{DockerReference, ImageReference, ReferenceError, TransportReference};

/// The transport's name.
pub const NAME: &str = "docker";

/// An image in a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference(pub DockerReference);

impl Reference {
    /// `docker://` followed by the docker reference `r` (no default tag is added).
    pub fn image(r: DockerReference) -> ImageReference {
        ImageReference::new(Reference(r))
    }

    /// Parses what follows `docker:`, which must start with `//`.
    pub fn parse(within: &str) -> Result<ImageReference, ReferenceError> {
        let r = within
            .strip_prefix("//")
            .ok_or_else(|| ReferenceError::Invalid {
                transport: NAME,
                reference: format!("{NAME}:{within}"),
                why: "docker references must start with docker://".into(),
            })?;
        Ok(Reference::image(
            DockerReference::parse(r)?.with_default_tag(),
        ))
    }
}

impl TransportReference for Reference {
    fn transport(&self) -> &'static str {
        NAME
    }
    fn within(&self) -> String {
        format!("//{}", self.0)
    }
    fn docker_reference(&self) -> Option<&DockerReference> {
        Some(&self.0)
    }
    fn policy_scopes(&self) -> Vec<String> {
        self.0.scopes()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
