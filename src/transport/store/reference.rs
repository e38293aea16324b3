//! `store:REF`: an image in ferry's own store, named by a docker reference (with `:latest`
//! added when neither tag nor digest is given, as pulls do).

use std::any::Any;

use crate::reference::{DockerReference, ImageReference, ReferenceError, TransportReference};

/// The transport's name.
pub const NAME: &str = "store";

/// A name in ferry's store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference(pub DockerReference);

impl Reference {
    /// `store:` followed by `name` (no default tag is added).
    pub fn image(name: DockerReference) -> ImageReference {
        ImageReference::new(Reference(name))
    }

    /// Parses what follows `store:`.
    pub fn parse(within: &str) -> Result<ImageReference, ReferenceError> {
        Ok(Reference::image(
            DockerReference::parse(within)?.with_default_tag(),
        ))
    }
}

impl TransportReference for Reference {
    fn transport(&self) -> &'static str {
        NAME
    }
    fn within(&self) -> String {
        self.0.to_string()
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
