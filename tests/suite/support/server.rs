//! A rubygems.org-like HTTP/1.1 server on loopback, serving a directory laid
//! out like the fixture build (`gems/`, `info/`, `versions`), with a request
//! log tests can block on and per-path fault injection.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::sha256_hex;

/// Larger heads are rejected: nothing legitimate sends them, and the limit
/// keeps a confused client from growing memory without bound.
const MAX_HEAD_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Request target up to `?`, exactly as sent (not percent-decoded).
    pub path: String,
    pub query: Option<String>,
    /// In arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    /// Which TCP connection carried it, numbered from 0 in accept order, so
    /// tests can see keep-alive reuse.
    pub connection: usize,
}

impl Request {
    /// First header named `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What to do instead of serving a path normally. New failure modes go here
/// plus one arm in `Shared::fault_reply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Responds with this status and a short text body.
    Status(u16),
    /// Responds 200 with these bytes instead of the file (a tampered gem).
    Body(Vec<u8>),
    /// Sends the head and the first N bytes of the file, then blocks until
    /// `Server::release` or drop; after a release the rest is sent.
    StallAfter(usize),
    /// Announces the full Content-Length, sends N bytes, then closes.
    Truncate(usize),
    /// 302 to this Location (absolute, or a path on this server).
    Redirect(String),
    /// Any response, e.g. 503 with `Retry-After`. Content-Length is added
    /// unless given in `headers`.
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Closes the connection without responding.
    Disconnect,
}

struct FaultRule {
    fault: Fault,
    /// `None` applies forever; `Some(n)` to the next n requests only.
    remaining: Option<usize>,
}

#[derive(Default)]
struct State {
    shutdown: bool,
    log: Vec<Request>,
    faults: HashMap<String, FaultRule>,
    /// Expected `Authorization` header value, when auth is required.
    auth: Option<String>,
    /// Bumped by `release`, which is how stalled responses know to resume.
    release_generation: u64,
    stalled: usize,
    /// Clones of live connections, shut down on drop to unblock workers.
    streams: HashMap<usize, TcpStream>,
    workers: Vec<JoinHandle<()>>,
    next_connection: usize,
}

struct Shared {
    root: PathBuf,
    state: Mutex<State>,
    changed: Condvar,
}

pub struct Server {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves files under `root` on 127.0.0.1 with an OS-assigned port until
    /// dropped.
    pub fn start(root: &Path) -> Server {
        let root = root
            .canonicalize()
            .unwrap_or_else(|e| panic!("server root {}: {e}", root.display()));
        assert!(root.is_dir(), "server root {} is not a dir", root.display());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            root,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("gem-server-{}", addr.port()))
                .spawn(move || accept_loop(shared, listener))
                .expect("spawn acceptor")
        };
        Server {
            shared,
            addr,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT/`, with the trailing slash lockfiles use.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// `http://user:pass@127.0.0.1:PORT/`; no percent-encoding is applied.
    pub fn url_with_auth(&self, user: &str, pass: &str) -> String {
        format!("http://{user}:{pass}@{}/", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().log.clone()
    }

    /// Requests for exactly `path` (query ignored), any method.
    pub fn count(&self, path: &str) -> usize {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    pub fn clear_log(&self) {
        self.shared.lock().log.clear();
    }

    /// Blocks until `pred` holds for the request log and returns the log;
    /// panics with the log after `timeout`. Requests are logged as soon as
    /// their head is read, before any response is sent.
    pub fn wait_for(&self, pred: impl Fn(&[Request]) -> bool, timeout: Duration) -> Vec<Request> {
        let state = self.shared.wait_until(timeout, |s| pred(&s.log));
        match state {
            Ok(state) => state.log.clone(),
            Err(state) => panic!(
                "timed out after {timeout:?} waiting for requests; log so far:\n{}",
                format_log(&state.log)
            ),
        }
    }

    /// Like `wait_for` but returns `false` on timeout instead of panicking.
    pub fn wait_until(&self, pred: impl Fn(&[Request]) -> bool, timeout: Duration) -> bool {
        self.shared.wait_until(timeout, |s| pred(&s.log)).is_ok()
    }

    /// Blocks until at least `n` responses are parked by `Fault::StallAfter`,
    /// i.e. the client has received the partial body.
    pub fn wait_for_stalled(&self, n: usize, timeout: Duration) {
        if let Err(state) = self.shared.wait_until(timeout, |s| s.stalled >= n) {
            panic!(
                "timed out after {timeout:?} waiting for {n} stalled responses ({} stalled); log:\n{}",
                state.stalled,
                format_log(&state.log)
            );
        }
    }

    /// Applies `fault` to every later request for `path` (query ignored).
    pub fn set_fault(&self, path: &str, fault: Fault) {
        self.shared.lock().faults.insert(
            path.to_owned(),
            FaultRule {
                fault,
                remaining: None,
            },
        );
    }

    /// Applies `fault` to the next `times` requests for `path`, after which
    /// the path is served normally again (for retry tests).
    pub fn set_fault_times(&self, path: &str, fault: Fault, times: usize) {
        self.shared.lock().faults.insert(
            path.to_owned(),
            FaultRule {
                fault,
                remaining: Some(times),
            },
        );
    }

    pub fn clear_fault(&self, path: &str) {
        self.shared.lock().faults.remove(path);
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Lets every currently stalled response send the rest of its body.
    /// Faults stay in place, so later requests stall again.
    pub fn release(&self) {
        let mut state = self.shared.lock();
        state.release_generation += 1;
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Answers 401 to any request without these HTTP Basic credentials.
    pub fn require_basic_auth(&self, user: &str, pass: &str) {
        let token = base64_encode(format!("{user}:{pass}").as_bytes());
        self.shared.lock().auth = Some(format!("Basic {token}"));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.changed.notify_all();
        // Wakes the acceptor so it can observe the shutdown flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let (streams, workers) = {
            let mut state = self.shared.lock();
            (
                std::mem::take(&mut state.streams),
                std::mem::take(&mut state.workers),
            )
        };
        // Workers block in reads on idle keep-alive connections; shutting the
        // sockets down is what lets them finish.
        for stream in streams.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for worker in workers {
            let _ = worker.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking worker must not take the whole test down with a
        // poisoned-mutex panic that hides the original failure.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&State) -> bool,
    ) -> Result<MutexGuard<'_, State>, MutexGuard<'_, State>> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if done(&state) {
                return Ok(state);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(state);
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn record(&self, request: Request) {
        self.lock().log.push(request);
        self.changed.notify_all();
    }

    fn reply(&self, req: &Request) -> Reply {
        if req.method != "GET" && req.method != "HEAD" {
            let mut reply = Reply::text(405, "method not allowed\n");
            reply.headers.push(("Allow".into(), "GET, HEAD".into()));
            return reply;
        }
        let fault = {
            let mut state = self.lock();
            if let Some(expected) = &state.auth
                && req.header("Authorization") != Some(expected.as_str())
            {
                let mut reply = Reply::text(401, "authentication required\n");
                reply
                    .headers
                    .push(("WWW-Authenticate".into(), "Basic realm=\"gems\"".into()));
                return reply;
            }
            take_fault(&mut state.faults, &req.path)
        };
        match fault {
            Some(fault) => self.fault_reply(req, fault),
            None => self.file_reply(req),
        }
    }

    fn fault_reply(&self, req: &Request, fault: Fault) -> Reply {
        match fault {
            Fault::Status(status) => Reply::text(status, &format!("fault: status {status}\n")),
            Fault::Body(body) => Reply::ok(&req.path, body).conditional(req),
            Fault::StallAfter(n) => {
                let mut reply = self.file_reply(req);
                reply.delivery = Delivery::StallAfter(n);
                reply
            }
            Fault::Truncate(n) => {
                let mut reply = self.file_reply(req);
                reply.delivery = Delivery::TruncateAfter(n);
                reply
            }
            Fault::Redirect(location) => {
                let mut reply = Reply::text(302, "moved\n");
                reply.headers.push(("Location".into(), location));
                reply
            }
            Fault::Response {
                status,
                headers,
                body,
            } => Reply {
                status,
                headers,
                body,
                delivery: Delivery::Full,
            },
            Fault::Disconnect => Reply {
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
                delivery: Delivery::Disconnect,
            },
        }
    }

    fn file_reply(&self, req: &Request) -> Reply {
        let Some(path) = self.resolve(&req.path) else {
            return Reply::text(404, "not found\n");
        };
        match fs::read(&path) {
            Ok(body) => Reply::ok(&req.path, body).conditional(req),
            Err(_) => Reply::text(404, "not found\n"),
        }
    }

    /// Maps a request path onto a regular file under the root, refusing
    /// anything that could escape it.
    fn resolve(&self, request_path: &str) -> Option<PathBuf> {
        let rel = Path::new(request_path.strip_prefix('/')?);
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return None;
        }
        let path = self.root.join(rel);
        path.is_file().then_some(path)
    }
}

fn take_fault(faults: &mut HashMap<String, FaultRule>, path: &str) -> Option<Fault> {
    let rule = faults.get_mut(path)?;
    let fault = rule.fault.clone();
    if let Some(remaining) = &mut rule.remaining {
        *remaining -= 1;
        if *remaining == 0 {
            faults.remove(path);
        }
    }
    Some(fault)
}

enum Delivery {
    Full,
    StallAfter(usize),
    TruncateAfter(usize),
    Disconnect,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delivery: Delivery,
}

impl Reply {
    fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: body.as_bytes().to_vec(),
            delivery: Delivery::Full,
        }
    }

    fn ok(request_path: &str, body: Vec<u8>) -> Reply {
        let content_type = if request_path.ends_with(".gem") {
            "application/octet-stream"
        } else {
            "text/plain; charset=utf-8"
        };
        Reply {
            status: 200,
            headers: vec![
                ("Content-Type".into(), content_type.into()),
                // rubygems.org's ETag is the body's MD5, and Bundler's compact-index client checks exactly that.
                ("ETag".into(), format!("\"{}\"", md5_hex(&body))),
                ("Accept-Ranges".into(), "none".into()),
            ],
            body,
            delivery: Delivery::Full,
        }
    }

    /// Turns a 200 into a 304 when the client already has this body.
    fn conditional(mut self, req: &Request) -> Reply {
        let etag = self
            .headers
            .iter()
            .find(|(n, _)| n == "ETag")
            .map(|(_, v)| v.clone());
        if let (Some(etag), Some(if_none_match)) = (etag, req.header("If-None-Match")) {
            let hit = if_none_match
                .split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == etag);
            if hit {
                self.status = 304;
                self.headers = vec![("ETag".into(), etag)];
                self.body.clear();
            }
        }
        self
    }
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    for stream in listener.incoming() {
        let mut state = shared.lock();
        if state.shutdown {
            break;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let connection = state.next_connection;
        state.next_connection += 1;
        state.streams.insert(connection, clone);
        let worker_shared = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name(format!("gem-server-conn-{connection}"))
            .spawn(move || {
                serve_connection(&worker_shared, stream, connection);
                worker_shared.lock().streams.remove(&connection);
            })
            .expect("spawn connection worker");
        state.workers.push(worker);
    }
}

fn serve_connection(shared: &Shared, stream: TcpStream, connection: usize) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let (request, keep_alive) = match read_request(&mut reader, connection) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => break,
            Err(_) => {
                let _ = write_reply(
                    shared,
                    &mut writer,
                    "GET",
                    Reply::text(400, "bad request\n"),
                    false,
                );
                break;
            }
        };
        let method = request.method.clone();
        shared.record(request.clone());
        let reply = shared.reply(&request);
        match write_reply(shared, &mut writer, &method, reply, keep_alive) {
            Ok(true) => continue,
            Ok(false) | Err(_) => break,
        }
    }
    // The acceptor holds a clone of this socket, so dropping ours would not
    // close it; the client needs to see EOF now.
    let _ = writer.shutdown(Shutdown::Both);
}

/// Reads one request head (and discards any body). `Ok(None)` is a clean
/// close between requests.
fn read_request(
    reader: &mut BufReader<TcpStream>,
    connection: usize,
) -> io::Result<Option<(Request, bool)>> {
    let mut head_bytes = 0;
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    head_bytes += line.len();
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "request line"));
    };
    let (method, target, version) = (method.to_owned(), target.to_owned(), version.to_owned());

    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head_bytes += line.len();
        if head_bytes > MAX_HEAD_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed
            .split_once(':')
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "header line"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }

    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target, None),
    };
    let request = Request {
        method,
        path,
        query,
        headers,
        connection,
    };

    if let Some(len) = request.header("Content-Length") {
        let len: u64 = len
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "content-length"))?;
        io::copy(&mut reader.by_ref().take(len), &mut io::sink())?;
    }

    let connection_header = request.header("Connection").map(str::to_ascii_lowercase);
    let keep_alive = match connection_header.as_deref() {
        Some(v) if v.contains("close") => false,
        Some(v) if v.contains("keep-alive") => true,
        _ => version == "HTTP/1.1",
    };
    Ok(Some((request, keep_alive)))
}

/// Returns whether the connection may serve another request.
fn write_reply(
    shared: &Shared,
    writer: &mut TcpStream,
    method: &str,
    reply: Reply,
    keep_alive: bool,
) -> io::Result<bool> {
    if matches!(reply.delivery, Delivery::Disconnect) {
        return Ok(false);
    }
    let keep_alive =
        keep_alive && matches!(reply.delivery, Delivery::Full | Delivery::StallAfter(_));
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let has_length = reply
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("Content-Length"));
    if reply.status != 304 && !has_length {
        head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n"
    } else {
        "Connection: close\r\n"
    });
    head.push_str("Server: kamal-launcher-test-server\r\n\r\n");
    writer.write_all(head.as_bytes())?;

    let body: &[u8] = if method == "HEAD" || reply.status == 304 {
        &[]
    } else {
        &reply.body
    };
    match reply.delivery {
        Delivery::Full | Delivery::Disconnect => writer.write_all(body)?,
        Delivery::TruncateAfter(n) => {
            writer.write_all(&body[..n.min(body.len())])?;
            writer.flush()?;
            return Ok(false);
        }
        Delivery::StallAfter(n) => {
            let (sent, rest) = body.split_at(n.min(body.len()));
            writer.write_all(sent)?;
            writer.flush()?;
            if !stall(shared) {
                return Ok(false);
            }
            writer.write_all(rest)?;
        }
    }
    writer.flush()?;
    Ok(keep_alive)
}

/// Parks until `release` or shutdown; `false` means shutdown.
fn stall(shared: &Shared) -> bool {
    let mut state = shared.lock();
    let generation = state.release_generation;
    state.stalled += 1;
    shared.changed.notify_all();
    while !state.shutdown && state.release_generation == generation {
        state = shared
            .changed
            .wait(state)
            .unwrap_or_else(|e| e.into_inner());
    }
    state.stalled -= 1;
    !state.shutdown
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Fault",
    }
}

fn format_log(log: &[Request]) -> String {
    if log.is_empty() {
        return "  (no requests)".to_owned();
    }
    log.iter()
        .map(|r| format!("  #{} {} {}", r.connection, r.method, r.path))
        .collect::<Vec<_>>()
        .join("\n")
}

fn base64_encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(bytes))
}
