//! `dir:PATH`: an image in a containers directory, as skopeo writes them.

use std::any::Any;
use std::path::PathBuf;

use crate::reference::{
    ImageReference, ReferenceError, TransportReference, path_scopes, resolve_path,
};

/// The transport's name.
pub const NAME: &str = "dir";

/// The image in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The directory, as given.
    pub path: PathBuf,
    /// The path made absolute and symlink-resolved when parsed: the policy's identity.
    resolved: PathBuf,
}

impl Reference {
    /// The image in the directory `path`.
    pub fn image(path: PathBuf) -> ImageReference {
        let resolved = resolve_path(&path);
        ImageReference::new(Reference { path, resolved })
    }

    /// Parses what follows `dir:`.
    pub fn parse(within: &str) -> Result<ImageReference, ReferenceError> {
        if within.is_empty() {
            return Err(ReferenceError::Invalid {
                transport: NAME,
                reference: format!("{NAME}:{within}"),
                why: "the path is empty".into(),
            });
        }
        Ok(Reference::image(PathBuf::from(within)))
    }
}

impl TransportReference for Reference {
    fn transport(&self) -> &'static str {
        NAME
    }
    fn within(&self) -> String {
        self.path.display().to_string()
    }
    fn policy_scopes(&self) -> Vec<String> {
        path_scopes(&self.resolved)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
