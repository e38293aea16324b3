//! `oci:PATH[:NAME]`: an image in an OCI image layout directory, named by its
//! `org.opencontainers.image.ref.name` annotation (or the only image, without NAME).

use std::any::Any;
use std::path::PathBuf;

use crate::reference::{
    ImageReference, ReferenceError, TransportReference, path_scopes, resolve_path,
    valid_oci_ref_name,
};

/// The transport's name.
pub const NAME: &str = "oci";

/// An image of an OCI layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The layout directory, as given.
    pub path: PathBuf,
    /// The `org.opencontainers.image.ref.name`, if given.
    pub tag: Option<String>,
    /// The path made absolute and symlink-resolved when parsed: the policy's identity.
    resolved: PathBuf,
}

impl Reference {
    /// The image `tag` (or the only one) of the layout at `path`.
    pub fn image(path: PathBuf, tag: Option<String>) -> ImageReference {
        let resolved = resolve_path(&path);
        ImageReference::new(Reference {
            path,
            tag,
            resolved,
        })
    }

    /// Parses what follows `oci:`. As in containers/image, the first ':' after the path
    /// separates the image name.
    pub fn parse(within: &str) -> Result<ImageReference, ReferenceError> {
        let invalid = |why: &str| ReferenceError::Invalid {
            transport: NAME,
            reference: format!("{NAME}:{within}"),
            why: why.to_string(),
        };
        let (path, tag) = match within.split_once(':') {
            Some((p, t)) => (p, Some(t)),
            None => (within, None),
        };
        if path.is_empty() {
            return Err(invalid("the path is empty"));
        }
        if let Some(t) = tag
            && !valid_oci_ref_name(t)
        {
            return Err(invalid(
                "the image name after ':' is empty or has characters an OCI ref.name cannot have",
            ));
        }
        Ok(Reference::image(
            PathBuf::from(path),
            tag.map(str::to_string),
        ))
    }
}

impl TransportReference for Reference {
    fn transport(&self) -> &'static str {
        NAME
    }
    fn within(&self) -> String {
        match &self.tag {
            Some(t) => format!("{}:{t}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }
    fn policy_scopes(&self) -> Vec<String> {
        path_scopes(&self.resolved)
    }
    fn write_lock_key(&self) -> Option<String> {
        Some(format!("{NAME}:{}", self.resolved.display()))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
