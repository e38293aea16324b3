//! The methods: what each request does and answers, following skopeo's json-proxy handler for
//! names, arguments, values and error texts, with ferry's gate at `OpenImage`. One request is
//! handled at a time (the client waits for each reply); the bytes of a pipe are copied by a
//! task of their own, so `FinishPipe` can wait for them while the client reads.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::image::{BlobSource, ProxyImage};
use super::pipes::{self, Finished};
use super::priority::{Background, Priority};
use super::readahead::{self, ReadAhead};
use super::wire::{self, Reply, Request};
use super::{MethodError, PROTOCOL_VERSION, ServeOptions, is_not_found};
use crate::copy::{GateOptions, open_admitted};
use crate::digest::Digest;
use crate::reference::ImageReference;
use crate::session::Session;

/// What a request led to.
pub(crate) enum Step {
    /// Send this reply (and these descriptors) to a request of this method.
    Reply(String, Result<Answer, MethodError>),
    /// Stop serving, without a reply (as skopeo: the client waits for the process to exit).
    Shutdown,
}

/// A successful method's reply: its value, the pipe id for `FinishPipe` (0 for none), and
/// the read ends passed to the client.
pub(crate) struct Answer {
    value: Value,
    pipeid: u32,
    fds: Vec<OwnedFd>,
}

impl Answer {
    fn value(value: Value) -> Answer {
        Answer {
            value,
            pipeid: 0,
            fds: Vec::new(),
        }
    }
}

/// The reply's bytes and the descriptors to pass with it. A reply too large for a packet
/// becomes an error reply naming the method.
pub(crate) fn encode(
    method: String,
    result: Result<Answer, MethodError>,
) -> (Vec<u8>, Vec<OwnedFd>) {
    let (reply, fds) = match result {
        Ok(a) => (Reply::ok(a.value, a.pipeid), a.fds),
        Err(e) => (Reply::failed(e.to_string(), e.code()), Vec::new()),
    };
    let bytes = serde_json::to_vec(&reply).unwrap_or_default();
    if bytes.len() <= super::socket::MAX_MESSAGE {
        return (bytes, fds);
    }
    let e = MethodError::ReplyTooLarge {
        method,
        size: bytes.len(),
        limit: super::socket::MAX_MESSAGE,
    };
    let reply = Reply::failed(e.to_string(), e.code());
    (serde_json::to_vec(&reply).unwrap_or_default(), Vec::new())
}

/// An image the client opened, and the read-ahead of its layers (none for an image read from
/// local files, which gains nothing from a copy).
struct Opened {
    image: Arc<ProxyImage>,
    ahead: Option<ReadAhead>,
}

/// The server's state: what the client opened and the pipes it has not finished.
pub(crate) struct Handler<'s> {
    session: &'s Session,
    options: GateOptions,
    serve: ServeOptions,
    initialized: bool,
    images: HashMap<u64, Opened>,
    last_image: u64,
    pipes: HashMap<u64, JoinHandle<Finished>>,
    last_pipe: u32,
    raw: Vec<JoinHandle<()>>,
    /// The read-ahead's runtime, made for the first image read ahead (`Err` when it could not
    /// be: the read-ahead then runs on the proxy's own threads). Declared last: dropped after
    /// the read-aheads running on it.
    background: Option<Result<Background, ()>>,
}

impl<'s> Handler<'s> {
    /// A handler opening images in `session`, admitted with `options`, served with `serve`.
    pub(crate) fn new(
        session: &'s Session,
        options: GateOptions,
        serve: ServeOptions,
    ) -> Handler<'s> {
        Handler {
            session,
            options,
            serve,
            initialized: false,
            images: HashMap::new(),
            last_image: 0,
            pipes: HashMap::new(),
            last_pipe: 0,
            raw: Vec::new(),
            background: None,
        }
    }

    /// Where a read-ahead runs, and its threads' priority.
    fn background(&mut self) -> (Option<&tokio::runtime::Handle>, Arc<Priority>) {
        let made = self.background.get_or_insert_with(|| {
            Background::new().map_err(|e| {
                tracing::debug!("no runtime of its own for the read-ahead: {e}");
            })
        });
        match made {
            Ok(b) => (b.handle(), b.priority().clone()),
            Err(()) => (None, Priority::unchanged()),
        }
    }

    /// Stops every copy still running (the client is gone or done) and every read-ahead.
    pub(crate) fn abandon(&mut self) {
        self.images.clear();
        for (_, task) in self.pipes.drain() {
            task.abort();
        }
        for task in self.raw.drain(..) {
            task.abort();
        }
    }

    /// Handles one request (an empty one stands for a packet too large to read).
    pub(crate) async fn handle(&mut self, message: &[u8]) -> Step {
        if message.is_empty() {
            return Step::Reply(
                String::new(),
                Err(MethodError::InvalidRequest(format!(
                    "a request larger than the protocol's {}-byte limit",
                    super::socket::MAX_MESSAGE
                ))),
            );
        }
        let request: Request = match serde_json::from_slice(message) {
            Ok(r) => r,
            Err(e) => {
                return Step::Reply(
                    String::new(),
                    Err(MethodError::InvalidRequest(e.to_string())),
                );
            }
        };
        tracing::debug!("method {} {:?}", request.method, request.args);
        let method = request.method.as_str();
        if method == "Shutdown" {
            return Step::Shutdown;
        }
        let result = self.dispatch(method, &request.args).await;
        if let Err(e) = &result {
            tracing::debug!("{method}: {e}");
        }
        Step::Reply(request.method.clone(), result)
    }

    async fn dispatch(&mut self, method: &str, args: &[Value]) -> Result<Answer, MethodError> {
        let bad = |source| MethodError::Arguments {
            method: method.to_string(),
            source,
        };
        if method == "Initialize" {
            wire::expect_args(args, 0, "zero arguments").map_err(bad)?;
            if self.initialized {
                return Err(MethodError::AlreadyInitialized);
            }
            self.initialized = true;
            return Ok(Answer::value(json!(PROTOCOL_VERSION)));
        }
        if !super::METHODS.contains(&method) {
            return Err(MethodError::UnknownMethod(method.to_string()));
        }
        if !self.initialized {
            return Err(MethodError::NotInitialized);
        }
        match method {
            "OpenImage" | "OpenImageOptional" => {
                wire::expect_args(args, 1, "one argument").map_err(bad)?;
                let reference = wire::string(args.first(), "imageref").map_err(bad)?;
                self.open(reference, method == "OpenImageOptional").await
            }
            "CloseImage" => {
                wire::expect_args(args, 1, "one argument").map_err(bad)?;
                let id = self.image_id(args.first(), method)?;
                self.images.remove(&id);
                Ok(Answer::value(Value::Null))
            }
            "GetManifest" => {
                wire::expect_args(args, 1, "one argument").map_err(bad)?;
                let image = self.image(args.first(), method)?;
                let manifest = image.oci_manifest().await?;
                let digest = image.digest().to_string();
                self.finished_bytes(json!(digest), manifest)
            }
            "GetFullConfig" | "GetConfig" => {
                wire::expect_args(args, 1, "[imgid]").map_err(bad)?;
                let image = self.image(args.first(), method)?;
                let config = if method == "GetFullConfig" {
                    image.full_config().await?
                } else {
                    image.runtime_config().await?
                };
                self.finished_bytes(Value::Null, Bytes::from(config))
            }
            "GetBlob" => {
                wire::expect_args(args, 3, "(imgid, digest, size)").map_err(bad)?;
                let id = self.image_id(args.first(), method)?;
                let image = self.image(args.first(), method)?;
                let digest = parse_digest(wire::string(args.get(1), "blobid").map_err(bad)?)?;
                let size = wire::uint(args.get(2)).map_err(bad)?;
                let source = image.blob_source(&digest).await?;
                let manifest_size = source.descriptor().size;
                if manifest_size != size {
                    return Err(MethodError::SizeMismatch {
                        digest,
                        asked: size,
                        manifest: manifest_size,
                    });
                }
                let stream = self.blob(id, &image, &source).await?;
                let (read, write) = pipes::pipe().map_err(MethodError::Pipe)?;
                let task = pipes::spawn_finished(digest, stream, write);
                let pipeid = self.register(task);
                Ok(Answer {
                    value: json!(size),
                    pipeid,
                    fds: vec![read],
                })
            }
            "GetRawBlob" => {
                wire::expect_args(args, 2, "(imgid, digest)").map_err(bad)?;
                let id = self.image_id(args.first(), method)?;
                let image = self.image(args.first(), method)?;
                let digest = parse_digest(wire::string(args.get(1), "blobid").map_err(bad)?)?;
                let source = image.blob_source(&digest).await?;
                let size = source.descriptor().size;
                let stream = self.blob(id, &image, &source).await?;
                let (data_read, data_write) = pipes::pipe().map_err(MethodError::Pipe)?;
                let (err_read, err_write) = pipes::pipe().map_err(MethodError::Pipe)?;
                self.raw.retain(|t| !t.is_finished());
                self.raw
                    .push(pipes::spawn_raw(digest, stream, data_write, err_write));
                Ok(Answer {
                    value: json!(size),
                    pipeid: 0,
                    fds: vec![data_read, err_read],
                })
            }
            "GetLayerInfo" => {
                wire::expect_args(args, 1, "(imgid)").map_err(bad)?;
                let image = self.image(args.first(), method)?;
                Ok(Answer::value(serde_json::to_value(image.layer_info())?))
            }
            "GetLayerInfoPiped" => {
                wire::expect_args(args, 1, "(imgid)").map_err(bad)?;
                let image = self.image(args.first(), method)?;
                let json = serde_json::to_vec(&image.layer_info())?;
                self.finished_bytes(Value::Null, Bytes::from(json))
            }
            "GetSignatureVerdict" => {
                wire::expect_args(args, 1, "(imgid)").map_err(bad)?;
                let image = self.image(args.first(), method)?;
                let json = super::verdict::document(&image, self.options.mode)?;
                self.finished_bytes(Value::Null, Bytes::from(json))
            }
            "FinishPipe" => {
                wire::expect_args(args, 1, "(pipeid)").map_err(bad)?;
                let id = wire::uint(args.first()).map_err(bad)?;
                let task = self.pipes.remove(&id).ok_or(MethodError::NoPipe(id))?;
                // The copy ends with its bytes all in the pipe, or with the source's error
                // (a stall is an error within the stall timeout): this wait is bounded.
                let (sender, result) = match task.await {
                    Ok(done) => done,
                    Err(e) => {
                        return Err(MethodError::Finished(Box::new(super::PipeFailure::Client(
                            std::io::Error::other(format!("the pipe's copy stopped: {e}")),
                        ))));
                    }
                };
                // Only now does the client see the end of the data.
                drop(sender);
                result.map_err(|f| MethodError::Finished(Box::new(f)))?;
                Ok(Answer::value(Value::Null))
            }
            other => Err(MethodError::UnknownMethod(other.to_string())),
        }
    }

    async fn open(&mut self, reference: &str, optional: bool) -> Result<Answer, MethodError> {
        let parsed = ImageReference::parse(reference).map_err(|source| MethodError::Reference {
            reference: reference.to_string(),
            source,
        })?;
        let admitted = match open_admitted(self.session, &parsed, &self.options).await {
            Ok(a) => a,
            Err(e) if optional && is_not_found(&e) => {
                tracing::debug!("OpenImageOptional {reference}: not found ({e})");
                return Ok(Answer::value(json!(0)));
            }
            Err(e) => return Err(MethodError::Open(Box::new(e))),
        };
        for w in admitted.warnings() {
            tracing::warn!("{w}");
        }
        let stall = self.options.source.timeouts().stall;
        let image = Arc::new(ProxyImage::new(admitted, stall)?);
        // Local files gain nothing from being copied ahead; a registry's blobs do.
        let ahead = (image.admitted().reference().transport() == "docker"
            && self.serve.read_ahead_blobs > 0
            && self.serve.read_ahead_bytes > 0)
            .then(|| {
                let limits = readahead::Limits {
                    blobs: self.serve.read_ahead_blobs,
                    bytes: self.serve.read_ahead_bytes,
                    dir: self.serve.spool_dir.clone(),
                    stall,
                };
                let (runtime, priority) = self.background();
                ReadAhead::start(image.clone(), limits, runtime, priority)
            });
        self.last_image += 1;
        let id = self.last_image;
        self.images.insert(id, Opened { image, ahead });
        Ok(Answer::value(json!(id)))
    }

    fn image_id(&self, v: Option<&Value>, method: &str) -> Result<u64, MethodError> {
        let id = wire::uint(v).map_err(|source| MethodError::Arguments {
            method: method.to_string(),
            source,
        })?;
        if id == 0 {
            return Err(MethodError::ZeroImage);
        }
        if !self.images.contains_key(&id) {
            return Err(MethodError::NoImage(id));
        }
        Ok(id)
    }

    fn image(&self, v: Option<&Value>, method: &str) -> Result<Arc<ProxyImage>, MethodError> {
        let id = self.image_id(v, method)?;
        self.images
            .get(&id)
            .map(|o| o.image.clone())
            .ok_or(MethodError::NoImage(id))
    }

    /// The bytes of a blob of image `id`: from its read-ahead when it has one for the blob,
    /// else from the source.
    async fn blob(
        &self,
        id: u64,
        image: &ProxyImage,
        source: &BlobSource,
    ) -> Result<pipes::Body, MethodError> {
        if let BlobSource::Source(d) = source
            && let Some(follower) = self
                .images
                .get(&id)
                .and_then(|o| o.ahead.as_ref())
                .and_then(|a| a.take(&d.digest))
        {
            return Ok(pipes::Body::Spool(follower));
        }
        // Read on demand while a read-ahead runs: the client waits on this blob, which may
        // come over a connection the read-ahead opened (its reads then run on the read-ahead's
        // threads), so they keep the proxy's own priority from the request to the stream's end.
        let waiting = match &self.background {
            Some(Ok(b)) if self.images.get(&id).is_some_and(|o| o.ahead.is_some()) => {
                Some(b.priority().waiting())
            }
            _ => None,
        };
        let stream = image.blob(source).await?;
        Ok(pipes::Body::Stream(match waiting {
            None => stream,
            Some(w) => Box::pin(futures::StreamExt::inspect(stream, move |_| {
                let _ = &w;
            })),
        }))
    }

    fn register(&mut self, task: JoinHandle<Finished>) -> u32 {
        // Never 0: the client reads 0 as "no pipe".
        self.last_pipe = self.last_pipe.checked_add(1).unwrap_or(1);
        self.pipes.insert(u64::from(self.last_pipe), task);
        self.last_pipe
    }

    fn finished_bytes(&mut self, value: Value, bytes: Bytes) -> Result<Answer, MethodError> {
        let (read, write) = pipes::pipe().map_err(MethodError::Pipe)?;
        let pipeid = self.register(pipes::spawn_bytes(bytes, write));
        Ok(Answer {
            value,
            pipeid,
            fds: vec![read],
        })
    }
}

fn parse_digest(s: &str) -> Result<Digest, MethodError> {
    Digest::parse(s).map_err(|source| MethodError::Digest {
        digest: s.to_string(),
        source,
    })
}
