//! The one seam between the copy pipeline and where images live. Each transport is a folder
//! that implements [`Transport`] (its reference grammar, opening a source and a destination,
//! and what a destination holds), [`ImageSource`] and [`ImageDestination`]; [`registry`] is the
//! one list of them. The copy code never asks which transport it has. All IO lives in the
//! transports. [`crate::session::Session`] opens them.
//!
//! Every write takes the gate's [`Admission`]: a destination cannot be given an image the
//! policy did not admit.

pub mod attachments;
pub mod containers_storage;
pub mod dir;
pub mod docker;
pub mod docker_archive;
pub mod fsutil;
pub mod http;
pub mod oci_archive;
pub mod oci_layout;
pub mod referrers;
pub mod registry;
pub mod store;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::digest::{ByteStream, Digest};
use crate::error::ErrorKind;
use crate::hint::{Hint, Hinted};
use crate::manifest::Descriptor;
use crate::policy::Admission;
use crate::record::Record;
use crate::reference::{ImageReference, ReferenceError};
use crate::session::Session;
use crate::signature::SignatureSlot;

/// An error of a transport, naming the thing that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The image (or tag, or blob) is not there.
    #[error("{0}")]
    NotFound(String),
    /// A manifest or index that cannot be used.
    #[error("{what}: {source}")]
    Manifest {
        /// Which manifest (path or URL).
        what: String,
        /// Why.
        source: crate::manifest::ManifestError,
    },
    /// A layout file (index.json, version, …) that is malformed.
    #[error("{path}: {why}")]
    InvalidLayout {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        why: String,
    },
    /// A registry request failed.
    #[error("{url}: {message}")]
    Registry {
        /// What kind of failure: what a caller branches on.
        kind: RegistryErrorKind,
        /// The URL or registry.
        url: String,
        /// What happened, with the status, for people.
        message: String,
        /// The HTTP status, when there was one.
        status: Option<u16>,
        /// What the user can do about it.
        hint: Option<Hint>,
    },
    /// Signature configuration (registries.d) is wrong.
    #[error(transparent)]
    Config(#[from] crate::config::registries_d::RegistriesDError),
    /// Credentials could not be read.
    #[error(transparent)]
    Auth(#[from] docker::auth::AuthError),
    /// registries.conf is wrong, or a short name did not resolve.
    #[error(transparent)]
    RegistriesConf(#[from] crate::config::registries_conf::RegistriesConfError),
    /// A certs.d directory is wrong.
    #[error(transparent)]
    CertsD(#[from] crate::config::certs_d::CertsDError),
    /// registries.conf blocks the registry.
    #[error(
        "{reference}: the registry is blocked: registries.conf marks [[registry]] prefix {prefix:?} blocked = true ({origin}); ferry neither pulls from nor pushes to it"
    )]
    Blocked {
        /// The reference refused.
        reference: String,
        /// The prefix of the entry that blocks it.
        prefix: String,
        /// The file (and line) of that entry.
        origin: String,
    },
    /// Every endpoint of a pull failed (the mirrors and the registry): the registry's error,
    /// with each mirror's.
    #[error("{primary} (mirrors also failed: {})", .mirrors.iter().map(|(r, e)| format!("[{r}: {e}]")).collect::<Vec<_>>().join(" "))]
    AllEndpointsFailed {
        /// The last endpoint's error (the registry's own).
        primary: Box<TransportError>,
        /// Each mirror tried, and its error.
        mirrors: Vec<(String, String)>,
    },
    /// A manifest fetched by digest does not hash to that digest.
    #[error(
        "{url}: the manifest does not match its digest {expected} (it hashes to {actual}){}",
        if *.mirror { "; a mirror serving other content for a digest is refused, not skipped" } else { "" }
    )]
    DigestMismatch {
        /// Where it came from.
        url: String,
        /// The digest asked for.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
        /// Whether the answer came from a registries.conf mirror.
        mirror: bool,
    },
    /// A file is larger than ferry reads for its kind.
    #[error(
        "{path}: {size} bytes is more than the {limit}-byte limit for {what}; refusing to read it"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
        /// What kind of file (`a configuration file`, …).
        what: &'static str,
    },
    /// Signatures could not be written to a lookaside.
    #[error(transparent)]
    Lookaside(#[from] docker::lookaside::LookasideError),
    /// A `store:` reference, but the session was given no store root.
    #[error(
        "{reference}: no store is configured (the library reads no environment on its own: set the session's store root, or build it with SessionConfig::from_env)"
    )]
    NoStore {
        /// The reference.
        reference: String,
    },
    /// The destination cannot do what was asked.
    #[error("{0}")]
    Unsupported(String),
    /// A blob failed verification while streaming.
    #[error(transparent)]
    Verify(#[from] crate::digest::VerifyError),
    /// The source's stream of a blob broke (its message names the URL or file).
    #[error("{0}")]
    SourceStream(std::io::Error),
    /// An `oci-archive:` or `docker-archive:` file could not be read or written (the error
    /// names the archive, and the entry where there is one).
    #[error(transparent)]
    Archive(Box<crate::tarfile::ArchiveError>),
}

impl From<crate::tarfile::ArchiveError> for TransportError {
    fn from(e: crate::tarfile::ArchiveError) -> TransportError {
        TransportError::Archive(Box::new(e))
    }
}

impl Hinted for TransportError {
    fn hint(&self) -> Option<Hint> {
        match self {
            TransportError::Registry { hint, .. } => hint.clone(),
            TransportError::AllEndpointsFailed { primary, .. } => primary.hint(),
            _ => None,
        }
    }
}

/// What kind of failure a registry request met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RegistryErrorKind {
    /// 401: credentials are wanted, or the ones given were refused.
    Unauthorized,
    /// 403: access is refused.
    Denied,
    /// 404 on something that is not the image itself (the image's own absence is
    /// [`TransportError::NotFound`]).
    NotFound,
    /// 429: too many requests.
    RateLimited,
    /// TLS failed.
    Tls,
    /// Nothing answered: refused, no route, no such host, reset.
    Unreachable,
    /// No answer in time, or a transfer stalled.
    TimedOut,
    /// 5xx.
    Server,
    /// An answer that does not follow the protocol.
    Protocol,
}

impl RegistryErrorKind {
    /// The kind an HTTP status gives.
    pub fn from_status(status: u16) -> RegistryErrorKind {
        match status {
            401 => RegistryErrorKind::Unauthorized,
            403 => RegistryErrorKind::Denied,
            404 => RegistryErrorKind::NotFound,
            429 => RegistryErrorKind::RateLimited,
            500..=599 => RegistryErrorKind::Server,
            _ => RegistryErrorKind::Protocol,
        }
    }
}

impl From<RegistryErrorKind> for ErrorKind {
    fn from(k: RegistryErrorKind) -> ErrorKind {
        match k {
            RegistryErrorKind::Unauthorized => ErrorKind::Unauthorized,
            RegistryErrorKind::Denied => ErrorKind::Denied,
            RegistryErrorKind::NotFound => ErrorKind::NotFound,
            RegistryErrorKind::RateLimited => ErrorKind::RateLimited,
            RegistryErrorKind::Tls => ErrorKind::Tls,
            RegistryErrorKind::Unreachable => ErrorKind::Unreachable,
            RegistryErrorKind::TimedOut => ErrorKind::TimedOut,
            RegistryErrorKind::Server => ErrorKind::Server,
            RegistryErrorKind::Protocol => ErrorKind::Protocol,
        }
    }
}

impl TransportError {
    /// A registry answer that does not follow the protocol, with no status and no hint.
    pub fn registry(url: impl Into<String>, message: impl Into<String>) -> TransportError {
        TransportError::Registry {
            kind: RegistryErrorKind::Protocol,
            url: url.into(),
            message: message.into(),
            status: None,
            hint: None,
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TransportError::Io { .. } | TransportError::Lookaside(_) => ErrorKind::Io,
            TransportError::NotFound(_) => ErrorKind::NotFound,
            TransportError::Manifest { .. }
            | TransportError::InvalidLayout { .. }
            | TransportError::DigestMismatch { .. }
            | TransportError::TooLarge { .. }
            | TransportError::Verify(_) => ErrorKind::Corrupt,
            TransportError::Registry { kind, .. } => (*kind).into(),
            TransportError::Config(_)
            | TransportError::Auth(_)
            | TransportError::RegistriesConf(_)
            | TransportError::CertsD(_)
            | TransportError::NoStore { .. } => ErrorKind::Config,
            TransportError::Blocked { .. } => ErrorKind::Denied,
            TransportError::AllEndpointsFailed { primary, .. } => primary.kind(),
            TransportError::Unsupported(_) => ErrorKind::Unsupported,
            TransportError::Archive(e) => e.kind(),
            TransportError::SourceStream(e) => match e.kind() {
                std::io::ErrorKind::TimedOut => ErrorKind::TimedOut,
                _ => ErrorKind::Unreachable,
            },
        }
    }

    /// An error of a blob stream being written: a verification failure, or the source's own
    /// failure (not the destination file's).
    pub fn source_stream(e: std::io::Error) -> TransportError {
        match crate::digest::verify_error(&e) {
            Some(v) => TransportError::Verify(v.clone()),
            None => TransportError::SourceStream(e),
        }
    }

    /// An IO error at `path`, or the [`crate::digest::VerifyError`] hidden in it.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> TransportError {
        if let Some(v) = crate::digest::verify_error(&source) {
            return TransportError::Verify(v.clone());
        }
        TransportError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result of transports.
pub type Result<T> = std::result::Result<T, TransportError>;

/// Manifest bytes, exactly as stored, with the media type the transport knows them by.
#[derive(Debug, Clone)]
pub struct RawManifest {
    /// The exact bytes.
    pub bytes: Bytes,
    /// The media type reported by the transport (the body's own `mediaType` decides when absent).
    pub media_type: Option<String>,
}

/// A transport: the answers containers/image's `ImageTransport` and `ImageReference` give, for
/// one kind of place images live. Each transport's folder implements it once, and
/// [`registry::TRANSPORTS`] lists it: adding a transport is its folder and that one line.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// The name before the colon (`docker`, `oci`), as policy.json's `transports` key it.
    fn name(&self) -> &'static str;

    /// The reference grammar, for people: `oci:PATH[:NAME]`.
    fn grammar(&self) -> &'static str;

    /// Parses what follows `NAME:`. A path is resolved here (absolute, symlinks followed) so
    /// that the policy's questions need no IO later.
    fn parse(&self, within: &str) -> std::result::Result<ImageReference, ReferenceError>;

    /// The reference of the image `name` (a repository path with `:TAG` or `@DIGEST`, already
    /// joined under the destination a sync was given) when a sync writes to this transport;
    /// `None` when this transport is not a sync destination.
    fn sync_destination(
        &self,
        _name: &str,
    ) -> Option<std::result::Result<ImageReference, ReferenceError>> {
        None
    }

    /// The reference of the image `name` (a repository path with `:TAG` or `@DIGEST`, the
    /// name a sync gives it) inside `file`, when this transport keeps many images in one file
    /// (an archive) and a sync writes them all into the one file it is given; `None` when it
    /// does not (then [`Transport::sync_destination`] names the image under the destination).
    fn sync_destination_in_file(
        &self,
        _file: &str,
        _name: &str,
    ) -> Option<std::result::Result<ImageReference, ReferenceError>> {
        None
    }

    /// Opens `reference` (one of this transport's) for reading with the settings of that side.
    async fn open_source(
        &self,
        session: &Session,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Box<dyn ImageSource>>;

    /// Opens `reference` (one of this transport's) for writing with the settings of that side.
    async fn open_destination(
        &self,
        session: &Session,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Box<dyn ImageDestination>>;

    /// What is at `reference` now, as a destination sees it: the manifest it names and how many
    /// signatures are kept for that manifest where this transport keeps them; `None` when
    /// nothing is there. Sync's incremental check asks this and reads no file of its own.
    async fn present(
        &self,
        session: &Session,
        reference: &ImageReference,
        options: &TransportOptions,
    ) -> Result<Option<Present>>;

    /// Gets ready for a copy that will soon read (`writing` false) or write `reference` with
    /// up to `connections` requests at once, without reading or writing anything of the image,
    /// so that the copy's first requests find the way open: a registry is connected, probed,
    /// its connections opened and its token fetched while the gate reads the source. Failures
    /// are left for the open that follows to report. Nothing by default.
    async fn warm_up(
        &self,
        _session: &Session,
        _reference: &ImageReference,
        _options: &TransportOptions,
        _connections: usize,
        _writing: bool,
    ) {
    }

    /// The images a destination holds in the repository of `reference` (the tags of a
    /// registry repository, the names of an OCI layout, the `dir:` images beside it named
    /// `NAME:TAG`, the store's names of the same repository), without what is attached to
    /// images (signatures, sigstore attachments, referrers): what a mirror's prune compares
    /// with the source. Empty when the repository does not exist. By default the transport
    /// cannot say.
    async fn list_repository(
        &self,
        _session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
    ) -> Result<Vec<HeldImage>> {
        Err(TransportError::Unsupported(format!(
            "{reference}: the {} transport cannot list the images of a repository",
            reference.transport()
        )))
    }

    /// Reads, ahead of a [`Transport::delete`], what deleting `reference` would remove: the
    /// manifest it names and what is attached to that manifest, so that a prune can look
    /// while the copies run and leave only the deletions themselves for after them. `None`
    /// when the transport does not read ahead (its deletions are local) or nothing is there;
    /// either way `delete` then reads for itself. Nothing is changed.
    async fn prepare_delete(
        &self,
        _session: &Session,
        _reference: &ImageReference,
        _options: &TransportOptions,
    ) -> Result<Option<PreparedDeletion>> {
        Ok(None)
    }

    /// Deletes the image `reference` names with what belongs to it: its signatures, its
    /// sigstore attachments and its referrers, unless its manifest is one of
    /// `request.keep` (other names here still name it: then only the name goes, where the
    /// transport can remove a name alone, and everything else stays). `None` when nothing is
    /// there. A failure leaves the name in place, so the next prune finds it again. By default
    /// the transport cannot delete.
    async fn delete(
        &self,
        _session: &Session,
        reference: &ImageReference,
        _options: &TransportOptions,
        _request: &DeleteRequest,
    ) -> Result<Option<Deletion>> {
        Err(TransportError::Unsupported(format!(
            "{reference}: the {} transport cannot delete images",
            reference.transport()
        )))
    }
}

/// An image a destination holds ([`Transport::list_repository`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeldImage {
    /// Its tag within the repository (`v1`; for `dir:`, what follows `NAME:`).
    pub tag: String,
    /// Its reference.
    pub reference: ImageReference,
}

impl HeldImage {
    /// The image `reference`, tagged `tag`.
    pub fn new(tag: impl Into<String>, reference: ImageReference) -> HeldImage {
        HeldImage {
            tag: tag.into(),
            reference,
        }
    }
}

/// What [`Transport::delete`] is asked to leave in place.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DeleteRequest {
    /// Manifests that other names at the destination still name: such a manifest, its
    /// signatures, attachments and referrers stay; only the name goes.
    pub keep: std::collections::HashSet<Digest>,
    /// For the store: also remove the records made for the name and the signatures only
    /// they wrote (the store keeps this evidence by default).
    pub purge_evidence: bool,
    /// What [`Transport::prepare_delete`] read earlier of this name: the transport deletes
    /// that (unless its manifest is in `keep`) instead of reading it again. The caller
    /// passes it only when nothing it did since can have changed the name.
    pub prepared: Option<PreparedDeletion>,
}

/// What deleting a name would remove, read ahead ([`Transport::prepare_delete`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PreparedDeletion {
    /// The manifest the name named when it was read.
    pub digest: Digest,
    /// What is attached to that manifest (signatures, attachments, referrers and the indexes
    /// that list them), by digest with what it is for people, in the order it goes: the
    /// manifests of one wave are deleted at once, after those of the wave before; the
    /// manifest itself goes after the last wave, so a deletion that breaks off leaves the
    /// name to be found again.
    pub waves: Vec<Vec<(Digest, String)>>,
}

impl PreparedDeletion {
    /// The name's manifest `digest`, with what goes before it in `waves`.
    pub fn new(digest: Digest, waves: Vec<Vec<(Digest, String)>>) -> PreparedDeletion {
        PreparedDeletion { digest, waves }
    }
}

/// What [`Transport::delete`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Deletion {
    /// The manifest the name named.
    pub digest: Digest,
    /// Whether the name is gone (false: it stays, and `kept` says why).
    pub name_removed: bool,
    /// Whether the manifest went too (false when other names still need it, or the
    /// transport removes names only).
    pub manifest_removed: bool,
    /// What went with it, for people: signatures, attachments, referrers.
    pub removed: Vec<String>,
    /// What stayed and why, for people.
    pub kept: Option<String>,
}

impl Deletion {
    /// The name and the manifest `digest` went, with `removed`.
    pub fn whole(digest: Digest, removed: Vec<String>) -> Deletion {
        Deletion {
            digest,
            name_removed: true,
            manifest_removed: true,
            removed,
            kept: None,
        }
    }

    /// Only the name went: the manifest stays, for `why`.
    pub fn name_only(digest: Digest, why: impl Into<String>) -> Deletion {
        Deletion {
            digest,
            name_removed: true,
            manifest_removed: false,
            removed: Vec::new(),
            kept: Some(why.into()),
        }
    }

    /// Nothing went, for `why`.
    pub fn kept(digest: Digest, why: impl Into<String>) -> Deletion {
        Deletion {
            digest,
            name_removed: false,
            manifest_removed: false,
            removed: Vec::new(),
            kept: Some(why.into()),
        }
    }
}

/// What a destination holds under a reference ([`Transport::present`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Present {
    /// The digest of the manifest the reference names.
    pub digest: Digest,
    /// How many signatures the destination keeps for that manifest.
    pub signatures: usize,
    /// Why the image is not whole there, when it is not (a blob or an instance missing or
    /// cut short: a copy that broke off, or damage): copying it again repairs it.
    pub incomplete: Option<String>,
}

impl Present {
    /// A manifest with this many signatures.
    pub fn new(digest: Digest, signatures: usize) -> Present {
        Present {
            digest,
            signatures,
            incomplete: None,
        }
    }

    /// The same, not whole there for `why` (`None`: whole).
    pub fn with_incomplete(mut self, why: Option<String>) -> Present {
        self.incomplete = why;
        self
    }
}

/// The top-level manifest's digest and media type, as [`ImageSource::head`] learns them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManifestHead {
    /// The digest of the top-level manifest.
    pub digest: Digest,
    /// Its media type, when the source says it without the body.
    pub media_type: Option<String>,
}

/// Where an image is read from.
#[async_trait]
pub trait ImageSource: Send + Sync {
    /// The reference this source was opened for.
    fn reference(&self) -> &ImageReference;

    /// The manifest: the top-level one with `None`, an instance of a list by its digest.
    async fn manifest(&self, instance: Option<&Digest>) -> Result<RawManifest>;

    /// A blob's bytes. The stream is not verified here; the copy pipeline verifies it.
    async fn blob(&self, descriptor: &Descriptor) -> Result<ByteStream>;

    /// One outcome per signature slot of the manifest with digest `manifest_digest`, in order,
    /// and where they were looked for. `instance` is set when that manifest is an instance of a
    /// list rather than the top level (dir: names those files differently). An error here means
    /// the slots could not even be enumerated (bad configuration); a failed read of one slot is
    /// an outcome in the list.
    async fn signatures(
        &self,
        manifest_digest: &Digest,
        instance: Option<&Digest>,
    ) -> Result<SignatureSet>;

    /// Whether the bytes `blob(descriptor)` gives were made by this process and hashed against
    /// `descriptor`'s digest as they were made (a layer the copy recompressed, read back from its
    /// spool), so the copy checks only their size instead of hashing them again. A source that
    /// reads bytes from anywhere else must answer `false`, the default.
    fn blob_was_hashed_when_made(&self, descriptor: &Descriptor) -> bool {
        let _ = descriptor;
        false
    }

    /// Where the bytes actually come from, when that is not the reference itself (a
    /// registries.conf mirror): `docker://mirror.example/ns/app:1 (mirror)`.
    fn pulled_from(&self) -> Option<String> {
        None
    }

    /// The top-level manifest's digest and media type at the least cost the source has (a
    /// registry answers a `HEAD`); `None` when the image is not there. By default the manifest
    /// is read and hashed.
    async fn head(&self) -> Result<Option<ManifestHead>> {
        let raw = self.manifest(None).await?;
        Ok(Some(ManifestHead {
            digest: Digest::sha256_of(&raw.bytes),
            media_type: raw.media_type,
        }))
    }
}

/// The signatures of one manifest as a source found them.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SignatureSet {
    /// One outcome per slot, in order.
    pub slots: Vec<SignatureSlot>,
    /// Where they were looked for, and what was not looked at and why, for people: "lookaside
    /// https://… (registries.d FILE, docker scope \"host\")", "a sigstore attachment exists
    /// but use-sigstore-attachments is not enabled …". Said when a signature was required and
    /// none was found.
    pub searched: Vec<String>,
    /// How sigstore bundles that name no image meet `signedIdentity`: the source's
    /// registries.d `sigstore-bundle-identity` for the image's scope.
    pub bundles: crate::policy::BundleIdentity,
    /// Artifacts attached to the manifest that were read (referrers, cosign's `.att` and
    /// `.sbom` tags), signatures among them with the slots they gave.
    pub attached: Vec<referrers::Attached>,
    /// Attached artifacts (not signatures) that could not be read: a copy-all copy fails on
    /// them, the other modes warn.
    pub attached_errors: Vec<String>,
}

impl SignatureSet {
    /// Keeps an attached artifact that was read, or says where one could not be (`place`).
    pub fn add_attached(
        &mut self,
        read: std::result::Result<referrers::Attached, String>,
        place: impl std::fmt::Display,
    ) {
        match read {
            Ok(a) => self.attached.push(a),
            Err(e) => self.attached_errors.push(format!("{place}: {e}")),
        }
    }

    /// Slots found in one place.
    pub fn new(slots: Vec<SignatureSlot>, searched: impl Into<String>) -> SignatureSet {
        SignatureSet {
            slots,
            searched: vec![searched.into()],
            ..SignatureSet::default()
        }
    }
}

/// Whether a destination keeps signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureSupport {
    /// It keeps them.
    Yes,
    /// It cannot, and why (for the error that suggests `--signatures remove-signatures`).
    No(String),
}

/// Where an image is written. Nothing written becomes visible until [`commit`]; dropping a
/// destination without committing abandons everything it was given.
///
/// [`commit`]: ImageDestination::commit
#[async_trait]
pub trait ImageDestination: Send + Sync {
    /// The reference this destination was opened for.
    fn reference(&self) -> &ImageReference;

    /// Whether it keeps signatures of this kind (simple signing, or sigstore).
    fn signature_support(&self, kind: crate::signature::sniff::Format) -> SignatureSupport;

    /// Makes the blob present without a transfer if it can: already there, or mounted from
    /// `source` (the same registry). True when the blob is now present.
    async fn try_reuse_blob(
        &self,
        descriptor: &Descriptor,
        source: &ImageReference,
    ) -> Result<bool>;

    /// Writes a blob from a stream. The stream fails at its end if the bytes do not match the
    /// descriptor; the destination must then keep nothing of them.
    async fn put_blob(
        &self,
        admission: &Admission,
        descriptor: &Descriptor,
        stream: ByteStream,
    ) -> Result<()>;

    /// Writes a manifest: the top level with `None`, an instance of a list by its digest (all
    /// instances are put before the list that names them).
    async fn put_manifest(
        &self,
        admission: &Admission,
        manifest: &RawManifest,
        instance: Option<&Digest>,
    ) -> Result<()>;

    /// Writes the signatures of the manifest with digest `manifest_digest`, byte for byte, in
    /// this order. Called at most once per manifest.
    async fn put_signatures(
        &self,
        admission: &Admission,
        manifest_digest: &Digest,
        instance: Option<&Digest>,
        signatures: &[Vec<u8>],
    ) -> Result<()>;

    /// Whether it keeps artifacts attached to an image (OCI 1.1 referrers, cosign's `.att` and
    /// `.sbom` tags) as themselves, byte for byte.
    fn attached_support(&self) -> SignatureSupport {
        SignatureSupport::No(format!(
            "{} keeps no artifacts attached to an image (referrers, attestations, SBOMs)",
            self.reference().transport()
        ))
    }

    /// Writes artifacts attached to the manifest `subject` (`instance` as for
    /// [`ImageDestination::put_signatures`]). Their blobs have been put already.
    async fn put_attached(
        &self,
        _admission: &Admission,
        _subject: &Digest,
        _instance: Option<&Digest>,
        _attached: &[&referrers::Attached],
    ) -> Result<()> {
        Err(TransportError::Unsupported(format!(
            "{} keeps no artifacts attached to an image",
            self.reference().transport()
        )))
    }

    /// Keeps the record of this copy (only the store keeps records; others ignore it).
    async fn put_record(
        &self,
        _admission: &Admission,
        _manifest_digest: &Digest,
        _record: &Record,
    ) -> Result<()> {
        Ok(())
    }

    /// Makes everything written visible at once.
    async fn commit(self: Box<Self>, admission: &Admission) -> Result<()>;
}

/// Settings for one side of a copy (the source or the destination), as skopeo's per-side flags.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TransportOptions {
    /// Verify TLS (and require https) for registries; `false` allows http and unverified https.
    pub tls_verify: Option<bool>,
    /// `USER:PASSWORD` for the registry.
    pub creds: Option<String>,
    /// An auth.json to read credentials from instead of the session's auth files.
    pub authfile: Option<PathBuf>,
    /// How many times to retry a failed registry request.
    pub retry_times: Option<u32>,
    /// How long one lookaside signature request may take.
    pub lookaside_timeout: Option<Duration>,
    /// The longest wait for a registry's answer to a request (default 60 s).
    pub timeout: Option<Duration>,
    /// A download or upload that moves fewer than 1 KiB in this long has stalled (default 60 s).
    pub stall_timeout: Option<Duration>,
    /// Which attached artifacts a source reads (`--referrers`).
    pub referrers: referrers::Referrers,
    /// A directory of certificates (`*.crt` CAs, `*.cert`/`*.key` client pairs) used instead
    /// of the registry's certs.d directory (skopeo's `--cert-dir`).
    pub cert_dir: Option<PathBuf>,
    /// Access the registry anonymously: no credentials from anywhere.
    pub no_creds: bool,
    /// A bearer token sent as it is, instead of one from the registry's token service.
    pub registry_token: Option<String>,
    /// More tags for the image in a `docker-archive:` destination (skopeo's
    /// `--additional-tag`); other destinations ignore them.
    pub additional_tags: Vec<String>,
    /// For `oci:` layouts: a directory of blobs (`DIR/ALG/HEX`) shared by many layouts, used
    /// instead of each layout's `blobs/` (skopeo's `--src-shared-blob-dir` /
    /// `--dest-shared-blob-dir`).
    pub shared_blob_dir: Option<PathBuf>,
}

impl TransportOptions {
    /// The timeouts these options give.
    pub fn timeouts(&self) -> http::Timeouts {
        http::Timeouts::new(self.timeout, self.stall_timeout)
    }

    /// The TLS policy these options give for registries, before the host's configuration
    /// (registries.conf, certs.d) is applied: the session does that
    /// ([`docker::pool::RegistryPool::tls_policy`]).
    pub fn tls_policy(&self) -> http::TlsPolicy {
        if self.tls_verify.unwrap_or(true) {
            http::TlsPolicy::verified()
        } else {
            http::TlsPolicy::insecure()
        }
    }
}
