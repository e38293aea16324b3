//! The work list of a sync: every image to copy, with its destination named exactly as
//! `skopeo sync` names it (`cmd/skopeo/sync.go`):
//!
//! - the suffix of a registry image is its full reference (`registry.example.com/ns/app:v1`),
//!   of a `dir:` image its path under the source directory (or the directory's own name when
//!   the source directory is itself an image);
//! - without `scoped`, only the suffix's last path element is kept (`app:v1`);
//! - the destination is `DESTINATION/SUFFIX` (joined and cleaned as Go's `path.Join`) with the
//!   appended suffix after it (after the tag, for registries: `app:v1-mirror`).
//!
//! ferry adds destinations skopeo sync does not have: `oci` (one OCI layout per repository,
//! `DESTINATION/app`, the tag as the image's name in it), `store` (ferry's store, the
//! destination a name prefix: `store:DESTINATION/app:v1`), and the archives `oci-archive` and
//! `docker-archive`, where DESTINATION is one file that receives every image under its name
//! (`oci-archive:FILE:app:v1`). It also reads archives as sources (`--src oci-archive FILE`):
//! every image the archive names, its name the suffix, as an air-gapped site restores what a
//! sync into an archive carried.
//!
//! Tags are listed (with the session's client for the registry, so listing shares the
//! connection and token the copies use) only for the repositories of this shard, and filtered
//! by the YAML's selection and the request's [`TagFilter`]. What each repository's listing gave
//! (or why there was none) is kept for the prune after the copies ([`RepositoryScope`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;

use super::config::{ConfigError, ImageRef, RepositoryEntry, SyncConfig, TagSelection};
use super::filter::{TagFilter, takes_tag};
use super::shard::Shard;
use crate::reference::{DockerReference, ImageReference, ReferenceError};
use crate::session::Session;
use crate::transport::{Transport, TransportError, TransportOptions, docker, registry};

/// Where a sync reads images from (skopeo sync's `--src`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A registry repository (every tag) or one image.
    Docker,
    /// A directory tree of `dir:` images.
    Dir,
    /// A YAML file in skopeo sync's format.
    Yaml,
    /// An oci-archive: every image its index names (what a sync `--dest oci-archive` wrote).
    #[serde(rename = "oci-archive")]
    OciArchive,
    /// A docker-archive: every tagged image of its manifest.json, once per tag.
    #[serde(rename = "docker-archive")]
    DockerArchive,
}

/// Where a sync writes images (skopeo sync's `--dest`): a transport that names an image
/// under the destination it is given (docker and dir as skopeo's, ferry's oci and store, and any
/// transport whose [`Transport::sync_destination`] answers).
#[derive(Clone, Copy)]
pub struct DestinationKind(&'static dyn Transport);

impl DestinationKind {
    /// The transport called `name`, when a sync can write to it.
    pub fn named(name: &str) -> Option<DestinationKind> {
        registry::TRANSPORTS
            .iter()
            .copied()
            .find(|t| t.name() == name && syncs_to(*t))
            .map(DestinationKind)
    }

    /// Whether every image goes into the one file the destination names (an archive), rather
    /// than each under its own name below it.
    pub fn is_one_file(&self) -> bool {
        self.0
            .sync_destination_in_file("probe.tar", "ferry/probe:latest")
            .is_some()
    }

    /// The transport's name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    fn allowed() -> String {
        registry::TRANSPORTS
            .iter()
            .filter(|t| syncs_to(**t))
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether a sync can write to `t`: under a destination, or into one file.
fn syncs_to(t: &dyn Transport) -> bool {
    t.sync_destination("ferry/probe:latest").is_some()
        || t.sync_destination_in_file("probe.tar", "ferry/probe:latest")
            .is_some()
}

impl std::fmt::Debug for DestinationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq for DestinationKind {
    fn eq(&self, other: &DestinationKind) -> bool {
        self.name() == other.name()
    }
}

impl Eq for DestinationKind {}

impl serde::Serialize for DestinationKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A transport name a sync does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a valid {side} transport for sync: use {allowed}")]
#[non_exhaustive]
pub struct UnknownKind {
    /// The name given.
    pub name: String,
    /// `source` or `destination`.
    pub side: &'static str,
    /// The names allowed.
    pub allowed: String,
}

impl std::str::FromStr for SourceKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "docker" => Ok(SourceKind::Docker),
            "dir" => Ok(SourceKind::Dir),
            "yaml" => Ok(SourceKind::Yaml),
            "oci-archive" => Ok(SourceKind::OciArchive),
            "docker-archive" => Ok(SourceKind::DockerArchive),
            _ => Err(UnknownKind {
                name: s.to_string(),
                side: "source",
                allowed: "docker, dir, yaml, oci-archive or docker-archive".into(),
            }),
        }
    }
}

impl std::str::FromStr for DestinationKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DestinationKind::named(s).ok_or_else(|| UnknownKind {
            name: s.to_string(),
            side: "destination",
            allowed: DestinationKind::allowed(),
        })
    }
}

/// Why the work list could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The YAML config is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `dir` to `dir` (skopeo refuses it too).
    #[error("sync from dir to dir is not implemented; copy the directory tree instead (rsync)")]
    DirToDir,
    /// The source names nothing to copy.
    #[error("no images to sync found in {0:?}")]
    NoImages(String),
    /// The source directory cannot be read.
    #[error("invalid source directory {}: {source}", path.display())]
    SourceDirectory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A source or destination name is not a valid reference.
    #[error("{what}: {source}")]
    Reference {
        /// What was being named.
        what: String,
        /// Why it is invalid.
        source: ReferenceError,
    },
    /// The images of a source archive could not be listed.
    #[error("listing the images of {}: {source}", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What failed.
        source: TransportError,
    },
    /// A repository's tags could not be listed.
    #[error("listing the tags of {repository}: {source}")]
    ListTags {
        /// The repository.
        repository: String,
        /// What failed.
        source: TransportError,
    },
}

/// What to sync from where to where.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PlanRequest {
    /// The source's kind.
    pub source_kind: SourceKind,
    /// The source: a repository or image (docker), a directory (dir), a YAML file (yaml).
    pub source: String,
    /// The destination's kind.
    pub destination_kind: DestinationKind,
    /// The destination: a registry and repository prefix (docker), a directory (dir, oci), a
    /// name prefix (store).
    pub destination: String,
    /// Keep the source's whole name under the destination, not only its last element.
    pub scoped: bool,
    /// Appended to every destination name (after the tag, for registries).
    pub append_suffix: String,
    /// Settings for source registries (a YAML registry's own settings override them).
    pub source_options: TransportOptions,
    /// Only this shard's repositories.
    pub shard: Option<Shard>,
    /// How many repositories' tags are listed at once.
    pub parallel_listings: usize,
    /// Which listed tags are taken, besides the YAML's own selection (docker and yaml sources).
    pub tag_filter: TagFilter,
    /// A tag already at the destination with its signatures is not read at the source (a YAML
    /// registry's `immutable-tags` overrides this).
    pub immutable_tags: bool,
}

impl PlanRequest {
    /// A request with no scoping, no suffix, default source settings, no shard.
    pub fn new(
        source_kind: SourceKind,
        source: impl Into<String>,
        destination_kind: DestinationKind,
        destination: impl Into<String>,
    ) -> PlanRequest {
        PlanRequest {
            source_kind,
            source: source.into(),
            destination_kind,
            destination: destination.into(),
            scoped: false,
            append_suffix: String::new(),
            source_options: TransportOptions::default(),
            shard: None,
            parallel_listings: 8,
            tag_filter: TagFilter::default(),
            immutable_tags: false,
        }
    }
}

/// One image to copy.
#[derive(Debug, Clone)]
pub struct WorkItem {
    /// Where it is read.
    pub source: ImageReference,
    /// Where it is written.
    pub destination: ImageReference,
    /// The repository it belongs to (the shard key): `registry/ns/app`, or for `dir:` sources
    /// the image's path under the source directory without its `:tag`.
    pub repository: String,
    /// Settings for reading it.
    pub source_options: TransportOptions,
    /// Its tag is immutable: when the destination has it with its signatures, the source is not
    /// read.
    pub immutable: bool,
}

/// A repository whose images could not be listed; the rest of the plan stands.
#[derive(Debug)]
pub struct PlanFailure {
    /// The repository (`docker://registry/ns/app`).
    pub repository: String,
    /// Why.
    pub error: PlanError,
}

/// The work list.
#[derive(Debug, Default)]
pub struct Plan {
    /// Every image to copy, in the config's order.
    pub items: Vec<WorkItem>,
    /// Repositories whose tags could not be listed.
    pub failures: Vec<PlanFailure>,
    /// Things skipped or ignored, as skopeo skips them.
    pub warnings: Vec<String>,
    /// Repositories this shard took.
    pub repositories: usize,
    /// Repositories left to other shards.
    pub other_shards: usize,
    /// This shard's repositories, with what their listing gave: what a prune goes by.
    pub scopes: Vec<RepositoryScope>,
}

/// A source repository of this shard, as a prune sees it: where its images go, and which tags
/// the source listed and the filters took (or why there is no such listing).
#[derive(Debug, Clone)]
pub struct RepositoryScope {
    /// The source repository (`registry.example.com/ns/app`): the shard key.
    pub repository: String,
    /// An image reference in the destination repository its images go to (tagged with
    /// [`PROBE_TAG`]), or why none can be named.
    pub destination: Result<ImageReference, String>,
    /// Other source repositories, of any shard, whose images go to the same destination
    /// repository (skopeo's naming keeps only the last path element).
    pub shares_destination_with: Vec<String>,
    pub(crate) listing: Listing,
}

/// What a repository's listing gave.
#[derive(Debug, Clone)]
pub(crate) enum Listing {
    /// Every tag the source listed, whole.
    Complete {
        /// The YAML's selection.
        selection: TagSelection,
        /// How many tags the source listed.
        listed: usize,
        /// The tags the selection and the filter took.
        taken: BTreeSet<String>,
    },
    /// The listing failed (or came back incomplete).
    Failed(String),
    /// The tags were not listed (an explicit list, one image named): why.
    NotListed(String),
}

/// The tag of the reference that names a destination repository in a [`RepositoryScope`].
pub const PROBE_TAG: &str = "ferry-repository-probe";

/// Go's `path.Clean`.
fn go_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Go's `path.Join`.
fn go_join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => String::new(),
        (true, false) => go_clean(b),
        (false, true) => go_clean(a),
        (false, false) => go_clean(&format!("{a}/{b}")),
    }
}

/// Go's `path.Base`.
fn go_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// Names the destination of an image whose suffix (see the module doc) is `suffix`.
pub fn destination_for(request: &PlanRequest, suffix: &str) -> Result<ImageReference, PlanError> {
    let suffix = if request.scoped {
        suffix.to_string()
    } else {
        go_base(suffix)
    };
    let transport = request.destination_kind.0;
    let within = format!("{suffix}{}", request.append_suffix);
    if let Some(r) = transport.sync_destination_in_file(&request.destination, &within) {
        return r.map_err(|source| PlanError::Reference {
            what: format!("destination {within:?} in {:?}", request.destination),
            source,
        });
    }
    let name = go_join(&request.destination, &suffix) + &request.append_suffix;
    let invalid = |source| PlanError::Reference {
        what: format!("destination {name:?}"),
        source,
    };
    transport
        .sync_destination(&name)
        .unwrap_or_else(|| {
            Err(ReferenceError::Invalid {
                transport: request.destination_kind.name(),
                reference: name.clone(),
                why: "a sync cannot write to this transport".into(),
            })
        })
        .map_err(invalid)
}

fn source_options_for(
    base: &TransportOptions,
    registry: &super::config::RegistryEntry,
) -> TransportOptions {
    let mut o = base.clone();
    if let Some(v) = registry.tls_verify {
        o.tls_verify = Some(v);
    }
    if let Some(c) = &registry.credentials {
        o.creds = Some(format!("{}:{}", c.username, c.password));
    }
    // As skopeo sync: the registry's `cert-dir` replaces its certs.d directory, as
    // `--src-cert-dir` would.
    if let Some(d) = &registry.cert_dir {
        o.cert_dir = Some(d.clone());
    }
    o
}

/// Makes the work list of `request`: reads the YAML or walks the directory, lists tags where
/// the source asks for them, filters, names destinations, keeps this shard's repositories.
pub async fn plan(session: &Arc<Session>, request: &PlanRequest) -> Result<Plan, PlanError> {
    if request.source_kind == SourceKind::Dir && request.destination_kind.name() == "dir" {
        return Err(PlanError::DirToDir);
    }
    let mut plan = match request.source_kind {
        SourceKind::Docker => plan_docker(session, request).await?,
        SourceKind::Dir => plan_dir(request)?,
        SourceKind::Yaml => plan_yaml(session, request).await?,
        SourceKind::OciArchive | SourceKind::DockerArchive => {
            plan_archive(session, request).await?
        }
    };
    // The same image asked for twice (a tag in a list and matched by a regex) is copied once.
    let mut seen = HashSet::new();
    plan.items
        .retain(|i| seen.insert((i.source.to_string(), i.destination.to_string())));
    Ok(plan)
}

fn takes(request: &PlanRequest, plan: &mut Plan, repository: &str) -> bool {
    let ok = request.shard.is_none_or(|s| s.takes(repository));
    if ok {
        plan.repositories += 1;
    } else {
        plan.other_shards += 1;
    }
    ok
}

fn item(
    request: &PlanRequest,
    source: DockerReference,
    options: &TransportOptions,
    immutable: bool,
) -> Result<WorkItem, PlanError> {
    let destination = destination_for(request, &source.to_string())?;
    Ok(WorkItem {
        repository: source.name(),
        source: crate::transport::docker::Reference::image(source),
        destination,
        source_options: options.clone(),
        immutable,
    })
}

/// The destination repository `repository`'s images go to, named by an image in it.
fn probe(request: &PlanRequest, repository: &DockerReference) -> Result<ImageReference, String> {
    let tagged = repository
        .with_tag(PROBE_TAG)
        .map_err(|e| format!("{}: {e}", repository.name()))?;
    destination_for(request, &tagged.to_string()).map_err(|e| e.to_string())
}

fn scope(request: &PlanRequest, repository: &DockerReference, listing: Listing) -> RepositoryScope {
    RepositoryScope {
        repository: repository.name(),
        destination: probe(request, repository),
        shares_destination_with: Vec::new(),
        listing,
    }
}

/// The image tags of a source repository. cosign's attachment tags and referrers fallback
/// indexes are left out: they travel with the images they belong to (or are left behind with
/// `--signatures remove-signatures`), and a withdrawn image's leftovers must not come back
/// as images of their own.
async fn list_tags(
    session: &Session,
    repository: &DockerReference,
    options: &TransportOptions,
) -> Result<Vec<String>, PlanError> {
    let fail = |source| PlanError::ListTags {
        repository: format!("docker://{}", repository.name()),
        source,
    };
    let client = session
        .registry_client(repository, options)
        .await
        .map_err(fail)?;
    let tags = docker::list_tags(&client, repository).await.map_err(fail)?;
    Ok(tags
        .into_iter()
        .filter(|t| !docker::registry_ops::is_attachment_tag(t))
        .collect())
}

async fn plan_docker(session: &Arc<Session>, request: &PlanRequest) -> Result<Plan, PlanError> {
    let text = request
        .source
        .strip_prefix("docker://")
        .unwrap_or(&request.source);
    let named = DockerReference::parse(text).map_err(|source| PlanError::Reference {
        what: format!("source {:?}", request.source),
        source,
    })?;
    let mut plan = Plan::default();
    if !takes(request, &mut plan, &named.name()) {
        return Ok(plan);
    }
    let options = &request.source_options;
    let immutable = request.immutable_tags;
    if named.tag().is_some() || named.digest().is_some() {
        let why = "one image was named, not a repository whose tags the source lists";
        plan.scopes
            .push(scope(request, &named, Listing::NotListed(why.into())));
        plan.items.push(item(request, named, options, immutable)?);
        return Ok(plan);
    }
    let listed = list_tags(session, &named, options).await?;
    let mut taken = BTreeSet::new();
    let count = listed.len();
    for tag in listed.into_iter().filter(|t| request.tag_filter.matches(t)) {
        match named.with_tag(&tag) {
            Ok(r) => {
                plan.items.push(item(request, r, options, immutable)?);
                taken.insert(tag);
            }
            Err(e) => plan.warnings.push(format!(
                "{}: skipping the tag {tag:?} the registry listed: {e}",
                named.name()
            )),
        }
    }
    if plan.items.is_empty() {
        return Err(PlanError::NoImages(request.source.clone()));
    }
    let listing = Listing::Complete {
        selection: TagSelection::All,
        listed: count,
        taken,
    };
    plan.scopes.push(scope(request, &named, listing));
    Ok(plan)
}

/// The repository of an image name: `ns/app` of `ns/app:v1` or `ns/app@sha256:…` (a port in
/// the registry's name is not a tag).
fn repository_of(name: &str) -> String {
    let last = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    let tail = name.get(last..).unwrap_or_default();
    match tail.find(['@', ':']) {
        Some(i) => name.get(..last + i).unwrap_or(name).to_string(),
        None => name.to_string(),
    }
}

/// Every image of the source archive, named by its name there (an image without one is
/// skipped with a warning: nothing names its destination).
async fn plan_archive(session: &Arc<Session>, request: &PlanRequest) -> Result<Plan, PlanError> {
    let path = PathBuf::from(&request.source);
    let listed = match request.source_kind {
        SourceKind::DockerArchive => {
            crate::transport::docker_archive::list_images(session, &path).await
        }
        _ => crate::transport::oci_archive::list_images(session, &path).await,
    }
    .map_err(|source| PlanError::Archive {
        path: path.clone(),
        source,
    })?;
    let mut plan = Plan::default();
    for (source, name) in listed {
        let Some(name) = name else {
            plan.warnings.push(format!(
                "{source}: the image has no name in the archive, and a sync names each destination by its image's name: skipped (copy it with `ferry copy {source} DESTINATION`)"
            ));
            continue;
        };
        let repository = repository_of(&name);
        if !takes(request, &mut plan, &repository) {
            continue;
        }
        plan.items.push(WorkItem {
            destination: destination_for(request, &name)?,
            source,
            repository,
            source_options: request.source_options.clone(),
            immutable: request.immutable_tags,
        });
    }
    if plan.items.is_empty() && plan.other_shards == 0 {
        return Err(PlanError::NoImages(request.source.clone()));
    }
    Ok(plan)
}

/// The `dir:` images under `base`: directories holding a `manifest.json`, not looked into
/// further, in path order; symbolic links are not followed (as Go's `filepath.WalkDir`).
fn walk_dir_images(base: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![base.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dir.join("manifest.json").is_file() {
            out.push(dir);
            continue;
        }
        let mut children = Vec::new();
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                children.push(e.path());
            }
        }
        children.sort();
        stack.extend(children.into_iter().rev());
    }
    Ok(out)
}

fn plan_dir(request: &PlanRequest) -> Result<Plan, PlanError> {
    let base = PathBuf::from(&request.source);
    let base = base
        .canonicalize()
        .map_err(|source| PlanError::SourceDirectory {
            path: base.clone(),
            source,
        })?;
    let images = walk_dir_images(&base).map_err(|source| PlanError::SourceDirectory {
        path: base.clone(),
        source,
    })?;
    let mut plan = Plan::default();
    for path in images {
        let rel = path
            .strip_prefix(&base)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let suffix = if rel.is_empty() {
            base.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            rel
        };
        // The repository of `ns/app:v1` is `ns/app`: its tags stay in one shard.
        let repository = repository_of(&suffix);
        if !takes(request, &mut plan, &repository) {
            continue;
        }
        plan.items.push(WorkItem {
            destination: destination_for(request, &suffix)?,
            source: crate::transport::dir::Reference::image(path),
            repository,
            source_options: request.source_options.clone(),
            immutable: request.immutable_tags,
        });
    }
    if plan.items.is_empty() && plan.other_shards == 0 {
        return Err(PlanError::NoImages(request.source.clone()));
    }
    Ok(plan)
}

/// What one repository entry gave: its images, warnings, and what its listing was.
type Expanded = (Vec<DockerReference>, Vec<String>, Listing);

/// The images of one repository entry, or why they could not be listed.
async fn expand(
    session: &Session,
    entry: &RepositoryEntry,
    options: &TransportOptions,
    filter: &TagFilter,
) -> Result<Expanded, PlanError> {
    let repo = &entry.repository;
    let mut warnings = Vec::new();
    let (images, listing) = match &entry.selection {
        TagSelection::List(list) => {
            let mut images = Vec::new();
            for i in list {
                match i {
                    ImageRef::Tag(t) if !filter.matches(t) => warnings.push(format!(
                        "{}: the tag {t:?} the YAML lists is left out by the tag filters",
                        repo.name()
                    )),
                    ImageRef::Tag(t) => {
                        images.push(repo.with_tag(t).map_err(|source| PlanError::Reference {
                            what: format!("{}:{t}", repo.name()),
                            source,
                        })?)
                    }
                    ImageRef::Digest(d) => images.push(repo.with_digest(d.clone())),
                }
            }
            let why = "its tags are listed in the YAML, not listed by the source";
            (images, Listing::NotListed(why.into()))
        }
        selection => {
            let tags = list_tags(session, repo, options).await?;
            let listed = tags.len();
            let mut images = Vec::new();
            let mut taken = BTreeSet::new();
            for tag in tags.into_iter().filter(|t| takes_tag(selection, filter, t)) {
                match repo.with_tag(&tag) {
                    Ok(r) => {
                        images.push(r);
                        taken.insert(tag);
                    }
                    Err(e) => warnings.push(format!(
                        "{}: skipping the tag {tag:?} the registry listed: {e}",
                        repo.name()
                    )),
                }
            }
            let listing = Listing::Complete {
                selection: selection.clone(),
                listed,
                taken,
            };
            (images, listing)
        }
    };
    if images.is_empty() {
        warnings.push(format!("{}: no images to sync found", repo.name()));
    }
    Ok((images, warnings, listing))
}

async fn plan_yaml(session: &Arc<Session>, request: &PlanRequest) -> Result<Plan, PlanError> {
    let config = SyncConfig::from_file(Path::new(&request.source))?;
    let mut plan = Plan {
        warnings: config.warnings.clone(),
        ..Plan::default()
    };
    let mut work = Vec::new();
    // Which source repositories (of every shard) go to each destination repository.
    let mut by_destination: HashMap<String, Vec<String>> = HashMap::new();
    for registry in &config.registries {
        let options = source_options_for(&request.source_options, registry);
        let immutable = registry.immutable_tags.unwrap_or(request.immutable_tags);
        for entry in &registry.repositories {
            if let Ok(d) = probe(request, &entry.repository) {
                by_destination
                    .entry(d.to_string())
                    .or_default()
                    .push(entry.repository.name());
            }
            if takes(request, &mut plan, &entry.repository.name()) {
                work.push((entry, options.clone(), immutable));
            }
        }
    }
    // Listing is the slow part of planning a large mirror (one request or more per
    // repository): several at once, results kept in the config's order.
    let filter = &request.tag_filter;
    let expanded: Vec<_> = futures::stream::iter(work)
        .map(|(entry, options, immutable)| async move {
            let r = expand(session, entry, &options, filter).await;
            (entry, options, immutable, r)
        })
        .buffered(request.parallel_listings.max(1))
        .collect()
        .await;
    for (entry, options, immutable, r) in expanded {
        let listing = match r {
            Ok((images, warnings, listing)) => {
                plan.warnings.extend(warnings);
                for image in images {
                    plan.items.push(item(request, image, &options, immutable)?);
                }
                listing
            }
            Err(error) => {
                let why = error.to_string();
                plan.failures.push(PlanFailure {
                    repository: format!("docker://{}", entry.repository.name()),
                    error,
                });
                Listing::Failed(why)
            }
        };
        let mut scope = scope(request, &entry.repository, listing);
        if let Ok(d) = &scope.destination {
            scope.shares_destination_with = by_destination
                .get(&d.to_string())
                .into_iter()
                .flatten()
                .filter(|r| **r != scope.repository)
                .cloned()
                .collect();
        }
        plan.scopes.push(scope);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(name: &str) -> DestinationKind {
        DestinationKind::named(name).unwrap()
    }

    fn req(dest: DestinationKind, destination: &str, scoped: bool, suffix: &str) -> PlanRequest {
        let mut r = PlanRequest::new(SourceKind::Docker, "x", dest, destination);
        r.scoped = scoped;
        r.append_suffix = suffix.to_string();
        r
    }

    fn dest(r: &PlanRequest, suffix: &str) -> String {
        destination_for(r, suffix)
            .map(|d| d.to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn repositories_of_names() {
        assert_eq!(repository_of("app:v1"), "app");
        assert_eq!(
            repository_of("r.example:5000/ns/app:v1"),
            "r.example:5000/ns/app"
        );
        assert_eq!(repository_of("ns/app@sha256:00"), "ns/app");
        assert_eq!(repository_of("app"), "app");
    }

    #[test]
    fn go_paths() {
        assert_eq!(go_join("a/b/", "c:v1"), "a/b/c:v1");
        assert_eq!(go_join("/srv//mirror/", "./x"), "/srv/mirror/x");
        assert_eq!(go_join("/a", "../b"), "/b");
        assert_eq!(go_join("", "x"), "x");
        assert_eq!(go_clean("/.."), "/");
        assert_eq!(go_base("r.example/ns/app:v1"), "app:v1");
        assert_eq!(go_base("app/"), "app");
        assert_eq!(go_base(""), ".");
    }

    #[test]
    fn names_as_skopeo_sync() {
        let r = req(kind("docker"), "mirror.example:5000/m", false, "");
        assert_eq!(
            dest(&r, "r.example/ns/app:v1"),
            "docker://mirror.example:5000/m/app:v1"
        );
        let d = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        assert_eq!(
            dest(&r, &format!("r.example/ns/app@{d}")),
            format!("docker://mirror.example:5000/m/app@{d}")
        );
        let r = req(kind("docker"), "mirror.example/m", true, "-mirror");
        assert_eq!(
            dest(&r, "r.example/ns/app:v1"),
            "docker://mirror.example/m/r.example/ns/app:v1-mirror"
        );
        // A port in the scoped name is no repository path: skopeo fails the same way.
        let r = req(kind("docker"), "mirror.example/m", true, "");
        assert!(dest(&r, "127.0.0.1:5000/ns/app:v1").starts_with("error: destination"));
        // A dir: image without a tag goes to :latest.
        let r = req(kind("docker"), "mirror.example/m", false, "");
        assert_eq!(dest(&r, "/ns/app"), "docker://mirror.example/m/app:latest");

        let r = req(kind("dir"), "/srv/dirs", false, "");
        assert_eq!(dest(&r, "r.example/ns/app:v1"), "dir:/srv/dirs/app:v1");
        let r = req(kind("dir"), "/srv/dirs", true, "");
        assert_eq!(
            dest(&r, "127.0.0.1:5000/ns/app:v1"),
            "dir:/srv/dirs/127.0.0.1:5000/ns/app:v1"
        );

        let r = req(kind("oci"), "/srv/oci", false, "-m");
        assert_eq!(dest(&r, "r.example/ns/app:v1"), "oci:/srv/oci/app:v1-m");
        let r = req(kind("oci"), "/srv/oci", true, "");
        assert_eq!(
            dest(&r, "r.example/ns/app:v1"),
            "oci:/srv/oci/r.example/ns/app:v1"
        );
        assert_eq!(
            dest(&r, &format!("r.example/ns/app@{d}")),
            format!("oci:/srv/oci/r.example/ns/app:{d}")
        );

        let r = req(kind("store"), "mirror.example/m", false, "");
        assert_eq!(
            dest(&r, "r.example/ns/app:v1"),
            "store:mirror.example/m/app:v1"
        );

        // Archives: every image into the one file, by its name.
        let r = req(kind("oci-archive"), "/srv/all.tar", false, "");
        assert!(kind("oci-archive").is_one_file());
        assert!(!kind("oci").is_one_file());
        assert_eq!(
            dest(&r, "r.example/ns/app:v1"),
            "oci-archive:/srv/all.tar:app:v1"
        );
        let r = req(kind("oci-archive"), "/srv/all.tar", true, "-m");
        assert_eq!(
            dest(&r, "r.example/ns/app:v1"),
            "oci-archive:/srv/all.tar:r.example/ns/app:v1-m"
        );
        let r = req(kind("docker-archive"), "/srv/all.tar", false, "");
        assert_eq!(
            dest(&r, "r.example/ns/app:v1"),
            "docker-archive:/srv/all.tar:docker.io/library/app:v1"
        );
        assert!(dest(&r, &format!("r.example/ns/app@{d}")).starts_with("error: destination"));
    }

    #[test]
    fn dir_images_are_found_in_path_order_without_descending_into_images() {
        let t = tempfile::tempdir().expect("tempdir");
        for d in ["b/app:v2", "a/app:v1", "a/app:v1/nested", "c/empty"] {
            std::fs::create_dir_all(t.path().join(d)).expect("mkdir");
        }
        for d in ["b/app:v2", "a/app:v1", "a/app:v1/nested"] {
            std::fs::write(t.path().join(d).join("manifest.json"), "{}").expect("write");
        }
        let found = walk_dir_images(t.path()).expect("walk");
        let rel: Vec<_> = found
            .iter()
            .map(|p| p.strip_prefix(t.path()).expect("under").to_path_buf())
            .collect();
        assert_eq!(rel, [PathBuf::from("a/app:v1"), PathBuf::from("b/app:v2")]);
    }
}
