//! `containers-storage:[[DRIVER@ROOT[+RUNROOT][:OPTIONS]]]NAME` and `…@ID`: an image in
//! containers/storage (podman's and CRI-O's image store), with containers/image's grammar
//! (`storage/storage_transport.go`). The store is resolved when the reference is parsed (the
//! bracketed part, else storage.conf, else containers/storage's defaults), so the policy's
//! scopes name the store's driver and graph root as containers/image's do, with no IO later.

use std::any::Any;
use std::path::PathBuf;

use super::config::{self, StoreSpec};
use crate::digest::Digest;
use crate::reference::{DockerReference, ImageReference, ReferenceError, TransportReference};

/// The transport's name.
pub const NAME: &str = "containers-storage";

/// An image in a containers/storage store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The store: driver, graph root, run root and driver options, defaults applied.
    pub store: StoreSpec,
    /// The name (`:latest` added when neither tag nor digest is given), if any.
    pub named: Option<DockerReference>,
    /// The image ID (64 hex digits), if given.
    pub id: Option<String>,
}

fn invalid(within: &str, why: impl Into<String>) -> ReferenceError {
    ReferenceError::Invalid {
        transport: NAME,
        reference: format!("{NAME}:{within}"),
        why: why.into(),
    }
}

/// Whether `s` is a full image ID: 64 lowercase hex digits.
pub fn is_image_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Reference {
    /// The image `named` and/or `id` in `store`.
    pub fn image(
        store: StoreSpec,
        named: Option<DockerReference>,
        id: Option<String>,
    ) -> ImageReference {
        ImageReference::new(Reference { store, named, id })
    }

    /// Parses what follows `containers-storage:`.
    pub fn parse(within: &str) -> Result<ImageReference, ReferenceError> {
        let (spec, rest) = match within.strip_prefix('[') {
            Some(after) => {
                let Some(close) = after.find(']') else {
                    return Err(invalid(
                        within,
                        "the store specifier [ … ] does not end with ']'",
                    ));
                };
                let (inside, rest) = after.split_at(close);
                (Some(inside), rest.get(1..).unwrap_or(""))
            }
            None => (None, within),
        };
        let store = match spec {
            Some(inside) => parse_store_spec(within, inside)?,
            None => config::default_store().map_err(|e| invalid(within, e))?,
        };
        if rest.is_empty() {
            return Err(invalid(within, "no image name or @ID follows the store"));
        }
        let mut name = rest;
        let mut id = None;
        if let Some(at) = rest.rfind('@') {
            let possible = rest.get(at + 1..).unwrap_or("");
            if possible.is_empty() {
                return Err(invalid(within, "an empty digest or ID follows '@'"));
            }
            if Digest::parse(possible).is_err() {
                if !is_image_id(possible) {
                    return Err(invalid(
                        within,
                        format!(
                            "{possible:?} does not look like an image ID (64 hex digits) or a digest"
                        ),
                    ));
                }
                id = Some(possible.to_string());
                name = rest.get(..at).unwrap_or("");
            }
        }
        // A bare 64-hex-digit name is an ID, as containers/image resolves it.
        if id.is_none() && is_image_id(name) {
            id = Some(name.to_string());
            name = "";
        }
        let named = if name.is_empty() {
            None
        } else {
            Some(DockerReference::parse(name)?.with_default_tag())
        };
        if named.is_none() && id.is_none() {
            return Err(invalid(within, "neither an image name nor an ID is given"));
        }
        Ok(Reference::image(store, named, id))
    }

    /// `[DRIVER@ROOT]`: the store part of the policy identity.
    fn store_scope(&self) -> String {
        format!(
            "[{}@{}]",
            self.store.driver,
            self.store.graph_root.display()
        )
    }
}

fn parse_store_spec(within: &str, inside: &str) -> Result<StoreSpec, ReferenceError> {
    if inside.is_empty() {
        return Err(invalid(within, "the store specifier [] is empty"));
    }
    let (driver, spec) = match inside.split_once('@') {
        Some((d, s)) => {
            if d.is_empty() {
                return Err(invalid(within, "an empty driver name before '@'"));
            }
            if s.is_empty() {
                return Err(invalid(within, "an empty graph root after '@'"));
            }
            (Some(d), s)
        }
        None => (None, inside),
    };
    let (spec, options) = match spec.split_once(':') {
        Some((s, o)) => (s, o.split(',').map(str::to_string).collect()),
        None => (spec, Vec::new()),
    };
    let (root, run_root) = match spec.split_once('+') {
        Some((r, rr)) => (r, Some(rr)),
        None => (spec, None),
    };
    for p in [Some(root), run_root].into_iter().flatten() {
        if !p.is_empty() && !p.starts_with('/') {
            return Err(invalid(within, format!("{p:?} is not an absolute path")));
        }
    }
    let mut store = config::default_store().map_err(|e| invalid(within, e))?;
    if let Some(d) = driver {
        store.driver = d.to_string();
    }
    if !root.is_empty() {
        store.graph_root = PathBuf::from(root);
    }
    if let Some(rr) = run_root.filter(|r| !r.is_empty()) {
        store.run_root = PathBuf::from(rr);
    }
    if !options.is_empty() {
        store.options = options;
    }
    Ok(store)
}

impl TransportReference for Reference {
    fn transport(&self) -> &'static str {
        NAME
    }
    fn within(&self) -> String {
        let mut s = format!(
            "[{}@{}+{}",
            self.store.driver,
            self.store.graph_root.display(),
            self.store.run_root.display()
        );
        if !self.store.options.is_empty() {
            s.push(':');
            s.push_str(&self.store.options.join(","));
        }
        s.push(']');
        if let Some(n) = &self.named {
            s.push_str(&n.to_string());
        }
        if let Some(id) = &self.id {
            s.push('@');
            s.push_str(id);
        }
        s
    }
    fn docker_reference(&self) -> Option<&DockerReference> {
        self.named.as_ref()
    }
    /// containers/image's `PolicyConfigurationIdentity` then `PolicyConfigurationNamespaces`:
    /// `[driver@root]name@id`, `[driver@root]name`, the repository's parents, `[driver@root]`,
    /// `[root]`.
    fn policy_scopes(&self) -> Vec<String> {
        let store = self.store_scope();
        let mut identity = store.clone();
        if let Some(n) = &self.named {
            identity.push_str(&n.to_string());
        }
        if let Some(id) = &self.id {
            identity.push('@');
            identity.push_str(id);
        }
        let mut scopes = vec![identity];
        if let Some(n) = &self.named {
            if self.id.is_some() {
                scopes.push(format!("{store}{n}"));
            }
            if let (Some(tag), Some(_)) = (n.tag(), n.digest()) {
                scopes.push(format!("{store}{}:{tag}", n.name()));
            }
            let name = n.name();
            let mut comps: Vec<&str> = name.split('/').collect();
            while !comps.is_empty() {
                scopes.push(format!("{store}{}", comps.join("/")));
                comps.pop();
            }
        }
        scopes.push(store);
        scopes.push(format!("[{}]", self.store.graph_root.display()));
        scopes.dedup();
        scopes
    }
    fn write_lock_key(&self) -> Option<String> {
        None
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(r: &ImageReference) -> &Reference {
        r.downcast_ref::<Reference>().unwrap()
    }

    #[test]
    fn the_grammar_of_containers_image() {
        let r = Reference::parse("[vfs@/s/root+/s/run:a=1,b=2]busybox").unwrap();
        let o = own(&r);
        assert_eq!(o.store.driver, "vfs");
        assert_eq!(o.store.graph_root, PathBuf::from("/s/root"));
        assert_eq!(o.store.run_root, PathBuf::from("/s/run"));
        assert_eq!(o.store.options, vec!["a=1", "b=2"]);
        assert_eq!(
            o.named.as_ref().unwrap().to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            r.to_string(),
            "containers-storage:[vfs@/s/root+/s/run:a=1,b=2]docker.io/library/busybox:latest"
        );
        let again = ImageReference::parse(&r.to_string()).unwrap();
        assert_eq!(again, r);

        let id = "a".repeat(64);
        let r = Reference::parse(&format!("[overlay@/s/root+/s/run]@{id}")).unwrap();
        assert_eq!(own(&r).id.as_deref(), Some(id.as_str()));
        assert!(own(&r).named.is_none());
        let r = Reference::parse(&format!("[overlay@/s/root+/s/run]x/y:1@{id}")).unwrap();
        assert_eq!(
            own(&r).named.as_ref().unwrap().to_string(),
            "docker.io/x/y:1"
        );
        let d = format!("sha256:{}", "b".repeat(64));
        let r = Reference::parse(&format!("[overlay@/s/root+/s/run]x/y@{d}")).unwrap();
        assert_eq!(
            own(&r)
                .named
                .as_ref()
                .unwrap()
                .digest()
                .unwrap()
                .to_string(),
            d
        );
        assert!(own(&r).id.is_none());
    }

    #[test]
    fn policy_scopes_as_containers_image() {
        let id = "c".repeat(64);
        let r =
            Reference::parse(&format!("[overlay@/s/root+/s/run]quay.io/ns/app:1@{id}")).unwrap();
        assert_eq!(
            r.policy_scopes(),
            vec![
                format!("[overlay@/s/root]quay.io/ns/app:1@{id}"),
                "[overlay@/s/root]quay.io/ns/app:1".to_string(),
                "[overlay@/s/root]quay.io/ns/app".to_string(),
                "[overlay@/s/root]quay.io/ns".to_string(),
                "[overlay@/s/root]quay.io".to_string(),
                "[overlay@/s/root]".to_string(),
                "[/s/root]".to_string(),
            ]
        );
    }

    #[test]
    fn bad_references_say_why() {
        for bad in [
            "",
            "[overlay@/s]",
            "[overlay@relative]x",
            "[overlay@/s+rel]x",
            "[@/s]x",
            "[overlay@]x",
            "[]x",
            "[overlay@/s",
            "[overlay@/s]x@",
            "[overlay@/s]x@nothex",
            "[overlay@/s]Upper",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
