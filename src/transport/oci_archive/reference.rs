//! `oci-archive:PATH[:NAME|:@N]`: an image of an OCI image layout kept in a tar file, named by
//! its `org.opencontainers.image.ref.name` (or the only image, or the N-th entry). The policy
//! identifies it by the archive's path, as containers/image does.

use std::any::Any;
use std::path::PathBuf;

use crate::reference::{
    ImageReference, ReferenceError, TransportReference, path_scopes, resolve_path,
};
use crate::tarfile::reference::{OciSelector, parse_oci_archive};

/// The transport's name.
pub const NAME: &str = "oci-archive";

/// An image of an oci-archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The archive file, as given.
    pub path: PathBuf,
    /// Which image (for a destination, the name it gets; `Only` gives none).
    pub selector: OciSelector,
    /// The path made absolute and symlink-resolved when parsed: the policy's identity.
    resolved: PathBuf,
}

impl Reference {
    /// The image `selector` picks in the archive at `path`.
    pub fn image(path: PathBuf, selector: OciSelector) -> ImageReference {
        let resolved = resolve_path(&path);
        ImageReference::new(Reference {
            path,
            selector,
            resolved,
        })
    }

    /// Parses what follows `oci-archive:`, as containers/image does.
    pub fn parse(within: &str) -> Result<ImageReference, ReferenceError> {
        let r = parse_oci_archive(within).map_err(|e| invalid(NAME, within, e))?;
        Ok(Reference::image(r.path, r.selector))
    }

    /// The image's name in the archive, if the reference gives one.
    pub fn name(&self) -> Option<&str> {
        match &self.selector {
            OciSelector::Name(n) => Some(n),
            _ => None,
        }
    }
}

impl TransportReference for Reference {
    fn transport(&self) -> &'static str {
        NAME
    }
    fn within(&self) -> String {
        match &self.selector {
            OciSelector::Name(n) => format!("{}:{n}", self.path.display()),
            OciSelector::Index(i) => format!("{}:@{i}", self.path.display()),
            _ => self.path.display().to_string(),
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

/// A reference of an archive transport (`transport`) that does not parse, as the other
/// transports say it.
pub(crate) fn invalid(
    transport: &'static str,
    within: &str,
    e: crate::tarfile::ArchiveError,
) -> ReferenceError {
    ReferenceError::Invalid {
        transport,
        reference: format!("{transport}:{within}"),
        why: match e {
            crate::tarfile::ArchiveError::InvalidReference { problem, .. } => problem,
            other => other.to_string(),
        },
    }
}
