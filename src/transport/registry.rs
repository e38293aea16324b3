//! The one place that lists ferry's transports. Adding a transport is its folder under
//! `src/transport/` (implementing [`Transport`], [`super::ImageSource`] and
//! [`super::ImageDestination`], with its reference type) and one line in [`TRANSPORTS`]; nothing
//! in copy, sync or policy changes. containers/image does the same with `transports.Register`.

use super::{
    Result, Transport, TransportError, containers_storage, dir, docker, docker_archive,
    oci_archive, oci_layout, store,
};
use crate::reference::{ImageReference, ReferenceError};

/// Every transport ferry has, in the order messages list them.
pub static TRANSPORTS: &[&dyn Transport] = &[
    &docker::DockerTransport,
    &oci_layout::OciTransport,
    &dir::DirTransport,
    &store::StoreTransport,
    &containers_storage::ContainersStorageTransport,
    &oci_archive::OciArchiveTransport,
    &docker_archive::DockerArchiveTransport,
];

/// The transport called `name`.
pub fn find(name: &str) -> Option<&'static dyn Transport> {
    TRANSPORTS.iter().copied().find(|t| t.name() == name)
}

/// The transport of `reference`.
pub(crate) fn of(reference: &ImageReference) -> Result<&'static dyn Transport> {
    find(reference.transport()).ok_or_else(|| {
        TransportError::Unsupported(format!(
            "{reference}: ferry has no transport called {:?}",
            reference.transport()
        ))
    })
}

/// `reference` as its transport's own type `T`. A transport calls this on the references it is
/// given, which it made itself, so this fails only on a caller's mistake.
pub(crate) fn own<T: crate::reference::TransportReference>(
    reference: &ImageReference,
) -> Result<&T> {
    reference.downcast_ref::<T>().ok_or_else(|| {
        TransportError::Unsupported(format!(
            "{reference}: a reference of another transport was given to {}",
            std::any::type_name::<T>()
        ))
    })
}

/// Every transport's grammar, for people: `docker://REF, oci:PATH[:NAME], …`.
pub fn grammars() -> String {
    let all: Vec<&str> = TRANSPORTS.iter().map(|t| t.grammar()).collect();
    match all.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => all.join(""),
    }
}

impl ImageReference {
    /// Parses `TRANSPORT:REST` for every transport ferry has: `docker://REF`,
    /// `oci:PATH[:NAME]`, `dir:PATH`, `store:REF`, …
    pub fn parse(s: &str) -> std::result::Result<ImageReference, ReferenceError> {
        let unknown = || ReferenceError::Transport {
            reference: s.to_string(),
            known: grammars(),
        };
        let (name, within) = s.split_once(':').ok_or_else(unknown)?;
        find(name).ok_or_else(unknown)?.parse(within)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_scopes_most_specific_first() {
        let img = ImageReference::parse("docker://registry.example.com:5000/ns/app:1").unwrap();
        assert_eq!(
            img.policy_scopes(),
            vec![
                "registry.example.com:5000/ns/app:1",
                "registry.example.com:5000/ns/app",
                "registry.example.com:5000/ns",
                "registry.example.com:5000",
                "*.example.com",
                "*.com",
            ]
        );
        let dir = ImageReference::parse("dir:/nonexistent/a/b").unwrap();
        assert_eq!(
            dir.policy_scopes(),
            vec!["/nonexistent/a/b", "/nonexistent/a", "/nonexistent"]
        );
    }

    #[test]
    fn every_transport_parses_and_prints_its_references() {
        for (given, printed) in [
            (
                "docker://busybox",
                "docker://docker.io/library/busybox:latest",
            ),
            ("oci:/tmp/x:v1", "oci:/tmp/x:v1"),
            ("oci:/tmp/x", "oci:/tmp/x"),
            ("dir:/tmp/d", "dir:/tmp/d"),
            ("store:app", "store:docker.io/library/app:latest"),
            ("oci-archive:/tmp/a.tar", "oci-archive:/tmp/a.tar"),
            (
                "oci-archive:/tmp/a.tar:app:v1",
                "oci-archive:/tmp/a.tar:app:v1",
            ),
            ("oci-archive:/tmp/a.tar:@2", "oci-archive:/tmp/a.tar:@2"),
            ("docker-archive:/tmp/d.tar", "docker-archive:/tmp/d.tar"),
            (
                "docker-archive:/tmp/d.tar:app",
                "docker-archive:/tmp/d.tar:docker.io/library/app:latest",
            ),
            (
                "docker-archive:/tmp/d.tar:@0",
                "docker-archive:/tmp/d.tar:@0",
            ),
        ] {
            let r = ImageReference::parse(given).unwrap();
            assert_eq!(r.to_string(), printed);
            assert_eq!(ImageReference::parse(printed).unwrap(), r);
        }
        let oci = ImageReference::parse("oci:/tmp/x:v1").unwrap();
        let own = oci.downcast_ref::<oci_layout::Reference>().unwrap();
        assert_eq!(own.path, std::path::Path::new("/tmp/x"));
        assert_eq!(own.tag.as_deref(), Some("v1"));
        assert_eq!(oci.transport(), "oci");
        assert!(oci.docker_reference().is_none());
        let store = ImageReference::parse("store:app").unwrap();
        assert_eq!(
            store.docker_reference().unwrap().to_string(),
            "docker.io/library/app:latest"
        );
        assert_ne!(
            ImageReference::parse("store:app").unwrap(),
            ImageReference::parse("docker://app").unwrap()
        );
        // As containers/image: an oci-archive is identified by its path, a docker-archive has
        // only the transport's default scope and its tag as its docker reference.
        let oa = ImageReference::parse("oci-archive:/nonexistent/x.tar:app:v1").unwrap();
        assert_eq!(
            oa.policy_scopes(),
            vec!["/nonexistent/x.tar", "/nonexistent"]
        );
        assert!(oa.docker_reference().is_none());
        let da = ImageReference::parse("docker-archive:/nonexistent/x.tar:app:v1").unwrap();
        assert!(da.policy_scopes().is_empty());
        assert_eq!(
            da.docker_reference().unwrap().to_string(),
            "docker.io/library/app:v1"
        );
    }

    #[test]
    fn bad_references_name_the_rule() {
        for bad in ["ftp:x", "nocolon"] {
            match ImageReference::parse(bad) {
                Err(ReferenceError::Transport { known, .. }) => {
                    for t in TRANSPORTS {
                        assert!(known.contains(t.grammar()), "{known}");
                    }
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        for bad in [
            "docker:busybox",
            "dir:",
            "oci:/x:",
            "oci:",
            "oci-archive:",
            "oci-archive:/x.tar:bad name",
            "docker-archive:",
            "docker-archive:/x.tar:@x",
            "docker-archive:/x.tar:app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(
                matches!(
                    ImageReference::parse(bad),
                    Err(ReferenceError::Invalid { .. })
                ),
                "{bad}"
            );
        }
    }
}
