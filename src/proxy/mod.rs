//! The image proxy: skopeo's `experimental-image-proxy` protocol (version 0.2.8), served from
//! ferry's library so that bootc, rpm-ostree and composefs-rs (through the
//! `containers-image-proxy` crate) can pull through ferry's policy gate and transports.
//!
//! The client speaks over a `SOCK_SEQPACKET` socket, one JSON request per packet
//! (`{"method", "args"}`), and gets one reply per request (`{"success", "value", "pipeid",
//! "error_code", "error"}`); bulk data comes through pipes whose read ends travel with the
//! reply. The methods are skopeo's ([`METHODS`]) and one of ferry's own,
//! `GetSignatureVerdict`, which a client that does not know it never calls.
//!
//! What differs from skopeo's proxy, on purpose:
//! - `OpenImage` runs ferry's gate ([`crate::copy::open_admitted`]): the policy judges the
//!   image that will be read (for a list, this platform's instance), with every verifier
//!   ferry has, and a rejection is the reply's error with the reason. Blobs are then read only
//!   through the admitted image, and only those its manifest names.
//! - A blob that stalls or breaks ends with an error (on `FinishPipe`, or on `GetRawBlob`'s
//!   error pipe) within the transport's stall timeout; it never hangs.
//! - A client that goes away (its socket closed) ends the server, even in the middle of a
//!   request.
//!
//! The modules: [`socket`] (the packets and descriptors), [`wire`] (the JSON), `pipes` (bulk
//! data), `image` (one opened image's views), `handler` (the methods), `verdict` (the
//! document `GetSignatureVerdict` answers).

mod handler;
mod image;
mod pipes;
mod priority;
mod readahead;
pub mod socket;
mod stall;
mod verdict;
pub mod wire;

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use crate::copy::{CopyError, GateOptions};
use crate::digest::Digest;
use crate::session::Session;
use crate::transport::TransportError;

pub use pipes::PipeFailure;
pub use wire::{ArgumentError, ErrorCode};

/// The protocol version ferry serves: skopeo 1.19's. Clients check it as `0.2.x` and use what
/// each minor step added (0.2.5 `GetLayerInfo`, 0.2.7 `GetLayerInfoPiped`, 0.2.8 `GetRawBlob`
/// and `error_code`).
pub const PROTOCOL_VERSION: &str = "0.2.8";

/// The methods served: skopeo's, then ferry's own.
pub const METHODS: &[&str] = &[
    "Initialize",
    "OpenImage",
    "OpenImageOptional",
    "CloseImage",
    "GetManifest",
    "GetFullConfig",
    "GetConfig",
    "GetBlob",
    "GetRawBlob",
    "GetLayerInfo",
    "GetLayerInfoPiped",
    "FinishPipe",
    "Shutdown",
    "GetSignatureVerdict",
];

/// Why the server stopped serving (a failed method is a reply, not this).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The descriptor given is not a socket.
    #[error(
        "the descriptor given is not a socket ({source}); the proxy is started by its client with one end of a SOCK_SEQPACKET socket pair as standard input or as --sockfd N"
    )]
    NotASocket {
        /// What asking for its type said.
        source: std::io::Error,
    },
    /// The socket is not a sequenced-packet socket.
    #[error(
        "the socket is of type {kind}, not SOCK_SEQPACKET: the protocol needs one message per packet"
    )]
    WrongSocketType {
        /// The type it has.
        kind: String,
    },
    /// Reading or writing the socket failed.
    #[error("the client's socket: {source}")]
    Socket {
        /// The error.
        source: std::io::Error,
    },
    /// A message larger than the protocol allows.
    #[error("a message larger than the protocol's {limit}-byte limit")]
    MessageTooLarge {
        /// The limit.
        limit: usize,
    },
}

/// Why one method failed: the reply's `error`, with the code [`MethodError::code`] gives.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MethodError {
    /// A method before `Initialize`.
    #[error("client error: must invoke Initialize")]
    NotInitialized,
    /// `Initialize` twice.
    #[error("already initialized")]
    AlreadyInitialized,
    /// A method ferry does not serve.
    #[error("unknown method: {0}")]
    UnknownMethod(String),
    /// The request is not JSON of the protocol's shape.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// An argument is not what the method takes.
    #[error("{method}: {source}")]
    Arguments {
        /// The method.
        method: String,
        /// What is wrong.
        source: ArgumentError,
    },
    /// The image reference does not parse.
    #[error("{reference:?}: {source}")]
    Reference {
        /// The reference given.
        reference: String,
        /// Why it does not parse.
        source: crate::reference::ReferenceError,
    },
    /// Opening the image failed, or the gate refused it (the error names why).
    #[error(transparent)]
    Open(Box<CopyError>),
    /// No image has this id (never opened, or closed).
    #[error("no image {0}")]
    NoImage(u64),
    /// Image id 0 names no image (it is `OpenImageOptional`'s "not found").
    #[error("invalid imageid value of zero")]
    ZeroImage,
    /// No pipe has this id (never made, or already finished).
    #[error("finishpipe: no active pipe {0}")]
    NoPipe(u64),
    /// The gate admitted no single image to read (a list read as a whole).
    #[error("{reference}: the admitted plan has no image to read")]
    NoImageInPlan {
        /// The image.
        reference: String,
    },
    /// The image's manifest cannot be used.
    #[error("{reference}: {source}")]
    Manifest {
        /// The image.
        reference: String,
        /// Why.
        source: crate::manifest::ManifestError,
    },
    /// A manifest kind the protocol does not serve (it serves OCI, and Docker schema 2 as OCI).
    #[error("unsupported manifest MIME type: {media_type}")]
    UnsupportedManifest {
        /// Its media type.
        media_type: String,
    },
    /// A Docker manifest or config could not be converted to OCI.
    #[error("converting {digest} to OCI: {source}")]
    Conversion {
        /// The manifest or config.
        digest: Digest,
        /// Why.
        source: crate::manifest::convert::ConvertError,
    },
    /// The digest does not parse.
    #[error("invalid digest {digest:?}: {source}")]
    Digest {
        /// What was given.
        digest: String,
        /// Why it does not parse.
        source: crate::digest::DigestError,
    },
    /// A blob the admitted image does not name: the gate judged the manifest, and the manifest
    /// names what may be read.
    #[error(
        "blob {digest} is not part of the opened image (manifest {image}): the proxy serves only the config and layers of the image the policy admitted"
    )]
    NotInImage {
        /// The blob asked for.
        digest: Digest,
        /// The image's manifest.
        image: Digest,
    },
    /// `GetBlob` asked for a size that is not the manifest's.
    #[error("blob {digest}: asked for {asked} bytes, but the image's manifest says {manifest}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// The size asked for.
        asked: u64,
        /// The size the manifest gives.
        manifest: u64,
    },
    /// A blob could not be read.
    #[error("reading blob {digest}: {source}")]
    Blob {
        /// The blob.
        digest: Digest,
        /// What failed.
        source: Box<TransportError>,
    },
    /// A pipe could not be made.
    #[error("creating a pipe: {0}")]
    Pipe(std::io::Error),
    /// The data of a pipe could not be copied in full (`FinishPipe`).
    #[error(transparent)]
    Finished(Box<PipeFailure>),
    /// The reply would be larger than a packet may be.
    #[error(
        "{method}: the reply of {size} bytes is larger than the protocol's {limit}-byte limit{}",
        if .method == "GetLayerInfo" { "; use GetLayerInfoPiped" } else { "" }
    )]
    ReplyTooLarge {
        /// The method.
        method: String,
        /// The reply's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A reply could not be encoded (a bug).
    #[error("encoding the reply: {0}")]
    Encode(#[from] serde_json::Error),
}

impl MethodError {
    /// The `error_code` the client sees: `retryable` for what trying again may fix (a
    /// network failure, a registry's 429 or 5xx, a stall), `EPIPE` when the client closed a
    /// pipe, `other` for the rest.
    pub fn code(&self) -> ErrorCode {
        match self {
            MethodError::Open(e) => match e.as_ref() {
                CopyError::Source { source, .. } => error_code(source),
                _ => ErrorCode::Other,
            },
            MethodError::Blob { source, .. } => error_code(source),
            MethodError::Finished(f) => f.code(),
            _ => ErrorCode::Other,
        }
    }
}

/// Whether a transport's failure is worth trying again, as containers/common's
/// `IsErrorRetryable` judges errors for podman and skopeo: a registry that is busy or failing,
/// a network that failed or stalled.
pub(crate) fn error_code(e: &TransportError) -> ErrorCode {
    // containers/common retries 500 to 504 only (a 505 will not change by retrying).
    let beyond = matches!(e, TransportError::Registry { status: Some(s), .. } if *s > 504);
    if e.kind().is_transient() && !beyond {
        ErrorCode::Retryable
    } else {
        ErrorCode::Other
    }
}

/// Whether opening failed because the image is not there (`OpenImageOptional` answers 0 for
/// that): a missing tag or manifest, a missing name in a layout or the store. Anything else
/// (unreachable, refused, rejected) stays an error.
pub(crate) fn is_not_found(e: &CopyError) -> bool {
    fn transport(e: &TransportError) -> bool {
        match e {
            TransportError::NotFound(_) => true,
            TransportError::AllEndpointsFailed { primary, .. } => transport(primary),
            _ => false,
        }
    }
    match e {
        CopyError::Source { source, .. } => transport(source),
        _ => false,
    }
}

/// How the server serves, beside what the gate decides: the read-ahead of layers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeOptions {
    /// How many layers of an opened image are fetched ahead at once (0: none; the client's
    /// requests alone fetch blobs, one at a time).
    pub read_ahead_blobs: usize,
    /// The most bytes of layers fetched ahead and not yet served, per opened image: a layer is
    /// fetched ahead only when it fits.
    pub read_ahead_bytes: u64,
    /// Where the unnamed spool files of the read-ahead go (`None`: `$TMPDIR`, else
    /// `/var/tmp`).
    pub spool_dir: Option<PathBuf>,
}

impl Default for ServeOptions {
    /// Six layers at once (as `ferry copy`'s `--parallel-blobs`), at most 1 GiB spooled.
    fn default() -> Self {
        ServeOptions {
            read_ahead_blobs: 6,
            read_ahead_bytes: 1 << 30,
            spool_dir: None,
        }
    }
}

/// Serves one client on `socket` until it says `Shutdown` or goes away, opening images in
/// `session` and admitting them with `options` (the policy, the signature mode, which image of
/// a list, and how the source is read). Returns `Ok` when the client is done, whichever way.
pub async fn serve(
    session: &Session,
    options: &GateOptions,
    socket: OwnedFd,
) -> Result<(), ProxyError> {
    serve_with(session, options, &ServeOptions::default(), socket).await
}

/// [`serve`], with the read-ahead set by `serve`.
pub async fn serve_with(
    session: &Session,
    options: &GateOptions,
    serve: &ServeOptions,
    socket: OwnedFd,
) -> Result<(), ProxyError> {
    let channel = socket::Channel::new(socket)?;
    let mut handler = handler::Handler::new(session, options.clone(), serve.clone());
    let outcome = run(&channel, &mut handler).await;
    handler.abandon();
    outcome
}

async fn run(
    channel: &socket::Channel,
    handler: &mut handler::Handler<'_>,
) -> Result<(), ProxyError> {
    loop {
        let message = match channel.recv().await? {
            socket::Packet::Message(m) => m,
            socket::Packet::Closed => {
                tracing::debug!("the client closed its socket; stopping");
                return Ok(());
            }
            socket::Packet::Oversized => Vec::new(),
        };
        let step = tokio::select! {
            step = handler.handle(&message) => step,
            () = channel.closed() => {
                tracing::debug!("the client closed its socket during a request; stopping");
                return Ok(());
            }
        };
        let (reply, fds) = match step {
            handler::Step::Shutdown => {
                tracing::debug!("Shutdown: stopping");
                return Ok(());
            }
            handler::Step::Reply(method, result) => handler::encode(method, result),
        };
        let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        match channel.send(&reply, &borrowed).await {
            Ok(()) => {}
            Err(ProxyError::Socket { source })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                tracing::debug!("the client closed its socket before the reply; stopping");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        // Our copies of the read ends close here: the client holds its own.
        drop(fds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(status: Option<u16>) -> TransportError {
        TransportError::Registry {
            kind: status.map_or(
                crate::transport::RegistryErrorKind::Unreachable,
                crate::transport::RegistryErrorKind::from_status,
            ),
            url: "https://r.example/v2/".into(),
            message: "failed".into(),
            status,
            hint: None,
        }
    }

    #[test]
    fn transient_failures_are_retryable_and_the_rest_are_not() {
        for s in [429, 500, 502, 503, 504] {
            assert_eq!(error_code(&registry(Some(s))), ErrorCode::Retryable, "{s}");
        }
        for s in [400, 401, 403, 505] {
            assert_eq!(error_code(&registry(Some(s))), ErrorCode::Other, "{s}");
        }
        // A network failure has no status.
        assert_eq!(error_code(&registry(None)), ErrorCode::Retryable);
        let stall = TransportError::SourceStream(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no progress",
        ));
        assert_eq!(error_code(&stall), ErrorCode::Retryable);
        assert_eq!(
            error_code(&TransportError::NotFound("gone".into())),
            ErrorCode::Other
        );
        let mirrored = TransportError::AllEndpointsFailed {
            primary: Box::new(registry(Some(503))),
            mirrors: vec![],
        };
        assert_eq!(error_code(&mirrored), ErrorCode::Retryable);
    }

    #[test]
    fn only_a_missing_image_is_not_found() {
        let source = |source| CopyError::Source {
            reference: "docker://r.example/app:1".into(),
            source,
        };
        assert!(is_not_found(&source(TransportError::NotFound(
            "tag".into()
        ))));
        assert!(is_not_found(&source(TransportError::AllEndpointsFailed {
            primary: Box::new(TransportError::NotFound("tag".into())),
            mirrors: vec![("mirror".into(), "unreachable".into())],
        })));
        assert!(!is_not_found(&source(registry(Some(401)))));
        assert!(!is_not_found(&source(registry(None))));
    }
}
