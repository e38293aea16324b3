//! A small HTTP/1.1 server on 127.0.0.1 for fault injection, written by hand so it can
//! misbehave on purpose: HTML pages with 200, error statuses, answers that never come, bodies
//! shorter than announced, connections reset midway. With an upstream it is a reverse proxy in
//! front of a real registry whose answers can be cut or corrupted.
//!
//! Each request is answered on its own connection (`Connection: close`), which keeps the proxy
//! a byte pipe that never needs to parse the upstream's responses.
//!
//! Two ways to say what to answer: a [`Handler`] closure ([`HttpServer::start`]), or a table of
//! routes, exact path → [`Route`] ([`HttpServer::with_routes`]), which can be changed while the
//! server runs ([`HttpServer::set_route`]) and is consulted before the handler. A lookaside
//! whose `signature-2` is an HTML page:
//! ```ignore
//! let server = HttpServer::with_routes([
//!     (format!("{dir}/signature-1"), Route::signature(sig1)),
//!     (format!("{dir}/signature-2"), Route::html()),
//! ]);
//! // everything else, signature-3 included, is a 404
//! assert_eq!(server.hits(&format!("{dir}/signature-3")), 1);
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `PUT`, …
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete answer.
    Bytes {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Body.
        body: Vec<u8>,
    },
    /// Accept the request and never answer (until the client gives up).
    Hang,
    /// Announce `declared` bytes, send `body`, then stall without closing.
    Stalled {
        /// What is sent before the stall.
        body: Vec<u8>,
        /// The Content-Length announced.
        declared: usize,
    },
    /// Announce `declared` bytes, send `body`, close.
    Truncated {
        /// What is sent.
        body: Vec<u8>,
        /// The Content-Length announced.
        declared: usize,
    },
    /// Announce `declared` bytes, send `body`, then reset the connection (RST, not FIN).
    Reset {
        /// What is sent before the reset.
        body: Vec<u8>,
        /// The Content-Length announced.
        declared: usize,
    },
    /// A 200 whose body never ends (until the client goes away or the server is dropped),
    /// announcing `declared` as Content-Length if set, else delimited by the connection's close.
    /// The bytes written are counted ([`HttpServer::bytes_sent`]).
    Endless {
        /// The Content-Length announced, if any.
        declared: Option<u64>,
    },
    /// Pass the request to the upstream, send the first `after` bytes of its answer and close
    /// the connection normally (a FIN, not a reset): a body shorter than its Content-Length.
    ForwardTruncated {
        /// Bytes of the answer (head included) sent before closing.
        after: usize,
    },
    /// Pass the request to the upstream, send the head and the first `body_bytes` of the body,
    /// then stall without closing.
    ForwardStalled {
        /// Bytes of the body sent before the stall.
        body_bytes: usize,
    },
    /// Pass the request to the upstream, and send its answer's body at `bytes_per_second`
    /// (the head at once), as a half-dead proxy does.
    ForwardSlowly {
        /// The rate of the body.
        bytes_per_second: usize,
    },
    /// Wait `0`, then answer with `1` (which is not itself `Delayed`): a server that takes
    /// its time, so that requests overlap and their concurrency can be measured.
    Delayed(Duration, Box<Reply>),
    /// Pass the request to the upstream; optionally cut the answer after `cut_after` bytes
    /// (a reset) or flip the byte at `corrupt_at` (counted from the start of the body).
    Forward {
        /// Reset the connection after this many bytes of the answer.
        cut_after: Option<usize>,
        /// Flip this byte of the answer's body.
        corrupt_at: Option<usize>,
    },
}

impl Reply {
    /// 200 with a body and content type.
    pub fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Bytes {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }
    /// A status with a short text body.
    pub fn status(status: u16) -> Reply {
        Reply::Bytes {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: format!("status {status}\n").into_bytes(),
        }
    }
    /// 404.
    pub fn not_found() -> Reply {
        Reply::status(404)
    }
    /// An HTML page served with 200, as a broken cache does.
    pub fn html() -> Reply {
        Reply::ok(
            "text/html; charset=utf-8",
            "<!DOCTYPE html>\n<html><head><title>Cache</title></head><body>Please wait</body></html>\n",
        )
    }
    /// 200 with `application/octet-stream`, as a lookaside serves a signature.
    pub fn signature(body: impl Into<Vec<u8>>) -> Reply {
        Reply::ok("application/octet-stream", body)
    }
    /// Any status, content type and body.
    pub fn bytes(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Bytes {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }
    /// 429 Too Many Requests with `Retry-After: SECONDS`.
    pub fn too_many_requests(retry_after_seconds: u32) -> Reply {
        Reply::Bytes {
            status: 429,
            headers: vec![
                ("Content-Type".into(), "text/plain".into()),
                ("Retry-After".into(), retry_after_seconds.to_string()),
            ],
            body: b"slow down\n".to_vec(),
        }
    }
    /// A body that never ends, without a Content-Length.
    pub fn endless() -> Reply {
        Reply::Endless { declared: None }
    }
    /// Pass to the upstream unchanged.
    pub fn forward() -> Reply {
        Reply::Forward {
            cut_after: None,
            corrupt_at: None,
        }
    }
}

/// What a route answers: the same behaviours as a handler's [`Reply`].
pub type Route = Reply;

/// Decides the reply to each request.
pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// Exact path (without the query) → reply, consulted before the handler.
type Routes = Arc<Mutex<HashMap<String, Reply>>>;

/// What every connection task shares.
#[derive(Clone)]
struct Shared {
    handler: Handler,
    routes: Routes,
    log: Arc<Mutex<Vec<(String, String)>>>,
    sent: Arc<Mutex<HashMap<String, u64>>>,
    upstream: Option<String>,
    stall_bodies: Arc<AtomicBool>,
}

/// A running server; stops when dropped.
pub struct HttpServer {
    port: u16,
    requests: Arc<Mutex<Vec<(String, String)>>>,
    routes: Routes,
    sent: Arc<Mutex<HashMap<String, u64>>>,
    stop: Arc<AtomicBool>,
    stall_bodies: Arc<AtomicBool>,
    _thread: std::thread::JoinHandle<()>,
}

fn path_only(p: &str) -> &str {
    p.split('?').next().unwrap_or("")
}

impl HttpServer {
    /// Starts a server answering with `handler`; `upstream` (`host:port`) is where
    /// [`Reply::Forward`] goes.
    pub fn start(handler: Handler, upstream: Option<String>) -> HttpServer {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let port = std_listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let routes: Routes = Arc::new(Mutex::new(HashMap::new()));
        let sent = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let stall_bodies = Arc::new(AtomicBool::new(false));
        let shared = Shared {
            handler,
            routes: routes.clone(),
            log: requests.clone(),
            sent: sent.clone(),
            upstream,
            stall_bodies: stall_bodies.clone(),
        };
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                while !s2.load(Ordering::Relaxed) {
                    let accepted =
                        tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
                    let Ok(Ok((stream, _))) = accepted else {
                        continue;
                    };
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let _ = serve(stream, shared).await;
                    });
                }
            });
        });
        HttpServer {
            port,
            requests,
            routes,
            sent,
            stop,
            stall_bodies,
            _thread: thread,
        }
    }

    /// With `true`, the server stops reading request bodies larger than 1 MiB after their
    /// headers (an upload the server stops taking), and never answers them.
    pub fn stall_request_bodies(&self, on: bool) {
        self.stall_bodies.store(on, Ordering::Relaxed);
    }

    /// Starts a server that answers from a route table (exact path → reply) and 404 for
    /// every other path.
    pub fn with_routes(routes: impl IntoIterator<Item = (String, Route)>) -> HttpServer {
        let server = HttpServer::start(Arc::new(|_: &Request| Reply::not_found()), None);
        for (path, route) in routes {
            server.set_route(&path, route);
        }
        server
    }

    /// Answers `path` (exact, without query) with `route` from now on, on any server.
    pub fn set_route(&self, path: &str, route: Route) {
        self.routes
            .lock()
            .expect("routes lock")
            .insert(path.to_string(), route);
    }

    /// Stops answering `path` from the route table (the handler answers it again).
    pub fn remove_route(&self, path: &str) {
        self.routes.lock().expect("routes lock").remove(path);
    }

    /// How many requests, of any method, had exactly this path (query ignored).
    pub fn hits(&self, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|(_, p)| path_only(p) == path)
            .count()
    }

    /// Body bytes written for this path so far (all requests), for proving a client stopped
    /// reading.
    pub fn bytes_sent(&self, path: &str) -> u64 {
        self.sent
            .lock()
            .map(|m| m.get(path).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every request so far: (method, path).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// How many requests had this method and a path containing `part`.
    pub fn count(&self, method: &str, part: &str) -> usize {
        self.requests()
            .iter()
            .filter(|(m, p)| m == method && p.contains(part))
            .count()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn read_request(
    reader: &mut BufReader<TcpStream>,
    stall_bodies: &AtomicBool,
) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).await?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if len > 1024 * 1024 && stall_bodies.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_secs(120)).await;
        return Ok(None);
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await?;
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::from_secs(0)));
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn count_sent(shared: &Shared, path: &str, n: usize) {
    if let Ok(mut m) = shared.sent.lock() {
        *m.entry(path.to_string()).or_insert(0) += n as u64;
    }
}

async fn serve(stream: TcpStream, shared: Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let Some(req) = read_request(&mut reader, &shared.stall_bodies).await? else {
        return Ok(());
    };
    if let Ok(mut l) = shared.log.lock() {
        l.push((req.method.clone(), req.path.clone()));
    }
    let path = path_only(&req.path).to_string();
    let routed = shared
        .routes
        .lock()
        .ok()
        .and_then(|r| r.get(&path).cloned());
    let mut reply = match routed {
        Some(r) => r,
        None => (shared.handler)(&req),
    };
    if let Reply::Delayed(wait, inner) = reply {
        tokio::time::sleep(wait).await;
        reply = *inner;
    }
    let mut stream = reader.into_inner();
    match reply {
        Reply::Bytes {
            status,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
                reason(status),
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
            stream.flush().await?;
            count_sent(&shared, &path, body.len());
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
        Reply::Stalled { body, declared } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\nContent-Type: application/octet-stream\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
            stream.flush().await?;
            count_sent(&shared, &path, body.len());
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
        Reply::Truncated { body, declared } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\nContent-Type: application/octet-stream\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
            stream.flush().await?;
            count_sent(&shared, &path, body.len());
        }
        Reply::Reset { body, declared } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\nContent-Type: application/octet-stream\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
            stream.flush().await?;
            count_sent(&shared, &path, body.len());
            // Let the client take the partial body before the RST discards what is unread.
            tokio::time::sleep(Duration::from_millis(100)).await;
            reset(&stream);
            return Ok(());
        }
        Reply::Endless { declared } => {
            let mut head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n".to_string();
            if let Some(n) = declared {
                head.push_str(&format!("Content-Length: {n}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).await?;
            // Signature-like bytes (an OpenPGP compressed-data tag), so only the size is wrong.
            let chunk = vec![0xa3u8; 64 * 1024];
            loop {
                if stream.write_all(&chunk).await.is_err() {
                    return Ok(());
                }
                count_sent(&shared, &path, chunk.len());
            }
        }
        Reply::ForwardTruncated { after } => {
            let (answer, _) = exchange(&shared, &req).await?;
            let n = after.min(answer.len());
            stream.write_all(&answer[..n]).await?;
            stream.flush().await?;
            count_sent(&shared, &path, n);
        }
        Reply::ForwardStalled { body_bytes } => {
            let (answer, body_start) = exchange(&shared, &req).await?;
            let n = (body_start + body_bytes).min(answer.len());
            stream.write_all(&answer[..n]).await?;
            stream.flush().await?;
            count_sent(&shared, &path, n);
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
        Reply::ForwardSlowly { bytes_per_second } => {
            let (answer, body_start) = exchange(&shared, &req).await?;
            stream.write_all(&answer[..body_start]).await?;
            stream.flush().await?;
            let tick = Duration::from_millis(100);
            let per_tick = (bytes_per_second / 10).max(1);
            for chunk in answer[body_start..].chunks(per_tick) {
                if stream.write_all(chunk).await.is_err() {
                    return Ok(());
                }
                let _ = stream.flush().await;
                count_sent(&shared, &path, chunk.len());
                tokio::time::sleep(tick).await;
            }
        }
        Reply::Delayed(..) => {
            let body = "a Delayed reply inside a Delayed reply is not supported\n";
            let head = format!(
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
        }
        Reply::Forward {
            cut_after,
            corrupt_at,
        } => {
            let (mut answer, body_start) = exchange(&shared, &req).await?;
            if let Some(i) = corrupt_at
                && body_start + i < answer.len()
            {
                answer[body_start + i] ^= 0xff;
            }
            match cut_after {
                Some(n) if n < answer.len() => {
                    stream.write_all(&answer[..n]).await?;
                    stream.flush().await?;
                    reset(&stream);
                    return Ok(());
                }
                _ => stream.write_all(&answer).await?,
            }
            stream.flush().await?;
        }
    }
    let _ = stream.shutdown().await;
    Ok(())
}

/// Sends `req` to the upstream and reads the whole answer: its bytes and where the body starts.
async fn exchange(shared: &Shared, req: &Request) -> std::io::Result<(Vec<u8>, usize)> {
    let up = shared
        .upstream
        .clone()
        .expect("forwarding needs an upstream");
    let mut conn = TcpStream::connect(&up).await?;
    // The client's Host goes through, so the registry's Location URLs (uploads) point back at
    // this proxy and every request of a copy passes here.
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    for (k, v) in &req.headers {
        if k == "connection" {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if req.header("host").is_none() {
        head.push_str(&format!("host: {up}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(&req.body).await?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await?;
    let body_start = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(0);
    Ok((answer, body_start))
}

/// A handler from a function of the request and how many times its path was seen before.
pub fn counting(f: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Handler {
    let seen: Mutex<HashMap<String, usize>> = Mutex::new(HashMap::new());
    Arc::new(move |req: &Request| {
        let n = {
            let mut s = seen.lock().expect("lock");
            let key = format!(
                "{} {}",
                req.method,
                req.path.split('?').next().unwrap_or("")
            );
            let e = s.entry(key).or_insert(0);
            *e += 1;
            *e - 1
        };
        f(req, n)
    })
}
