//! A forward HTTP proxy on loopback: absolute-form requests for http://
//! targets and CONNECT tunnels for https, optionally demanding
//! Proxy-Authorization, with a log of what it was asked. It only ever
//! connects to loopback addresses.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::tls::read_head;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRequest {
    /// `GET`, `CONNECT`, ...
    pub method: String,
    /// As sent: `http://127.0.0.1:PORT/gems/x.gem` or `127.0.0.1:PORT`.
    pub target: String,
    pub proxy_authorization: Option<String>,
    /// Whether the proxy let it through.
    pub allowed: bool,
}

#[derive(Default)]
struct State {
    log: Vec<ProxyRequest>,
    streams: Vec<TcpStream>,
    workers: Vec<JoinHandle<()>>,
}

struct Shared {
    shutdown: AtomicBool,
    /// Expected credentials, `user:pass`.
    auth: Option<String>,
    state: Mutex<State>,
}

pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy that lets everyone through.
    pub fn start() -> Proxy {
        Proxy::spawn(None)
    }

    /// A proxy that answers 407 unless the request carries these Basic
    /// credentials (the scheme name compared case-insensitively).
    pub fn start_with_auth(user: &str, pass: &str) -> Proxy {
        Proxy::spawn(Some(format!("{user}:{pass}")))
    }

    fn spawn(auth: Option<String>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            shutdown: AtomicBool::new(false),
            auth,
            state: Mutex::new(State::default()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("proxy-{}", addr.port()))
                .spawn(move || {
                    for stream in listener.incoming() {
                        if shared.shutdown.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        let worker_shared = Arc::clone(&shared);
                        let mut state = shared.state.lock().unwrap();
                        if let Ok(clone) = stream.try_clone() {
                            state.streams.push(clone);
                        }
                        state.workers.push(std::thread::spawn(move || {
                            let _ = handle(&worker_shared, stream);
                        }));
                    }
                })
                .expect("spawn acceptor")
        };
        Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://user:pass@127.0.0.1:PORT`; no percent-encoding is applied.
    pub fn url_with_auth(&self, user: &str, pass: &str) -> String {
        format!("http://{user}:{pass}@{}", self.addr)
    }

    pub fn requests(&self) -> Vec<ProxyRequest> {
        self.shared.state.lock().unwrap().log.clone()
    }

    /// Requests it was asked to forward or tunnel, allowed or not.
    pub fn count(&self) -> usize {
        self.requests().len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let (streams, workers) = {
            let mut state = self.shared.state.lock().unwrap();
            (
                std::mem::take(&mut state.streams),
                std::mem::take(&mut state.workers),
            )
        };
        for stream in &streams {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for worker in workers {
            let _ = worker.join();
        }
    }
}

fn handle(shared: &Shared, client: TcpStream) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 || shared.shutdown.load(Ordering::SeqCst) {
        return Ok(());
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let version = parts.next().unwrap_or("HTTP/1.1").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Ok(());
        }
        let h = h.trim_end_matches(['\r', '\n']).to_owned();
        if h.is_empty() {
            break;
        }
        headers.push(h);
    }
    let proxy_authorization = headers.iter().find_map(|h| {
        let (name, value) = h.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_owned())
    });
    let allowed = match &shared.auth {
        None => true,
        Some(expected) => proxy_authorization.as_deref().is_some_and(|v| {
            v.split_once(' ').is_some_and(|(scheme, token)| {
                scheme.eq_ignore_ascii_case("basic") && token.trim() == base64(expected.as_bytes())
            })
        }),
    };
    shared.state.lock().unwrap().log.push(ProxyRequest {
        method: method.clone(),
        target: target.clone(),
        proxy_authorization,
        allowed,
    });
    let mut client = client;
    if !allowed {
        client.write_all(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"proxy\"\r\n\
              Content-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return close(&client);
    }

    if method == "CONNECT" {
        let Some(mut upstream) = connect_loopback(&target) else {
            client.write_all(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return close(&client);
        };
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        // Anything the client sent after the head is already in our buffer.
        upstream.write_all(reader.buffer())?;
        let mut up_read = upstream.try_clone()?;
        let mut client_write = client.try_clone()?;
        let down = std::thread::spawn(move || {
            let _ = io::copy(&mut up_read, &mut client_write);
            let _ = client_write.shutdown(Shutdown::Write);
        });
        let _ = io::copy(&mut reader.get_mut(), &mut upstream);
        let _ = upstream.shutdown(Shutdown::Write);
        let _ = down.join();
        return close(&client);
    }

    // Absolute form: `GET http://host:port/path HTTP/1.1`.
    let authority = target
        .strip_prefix("http://")
        .map(|rest| rest.split('/').next().unwrap_or(rest));
    let Some(mut upstream) = authority.and_then(connect_loopback) else {
        client.write_all(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return close(&client);
    };
    let mut head = format!("{method} {target} {version}\r\n");
    for h in headers.iter().filter(|h| {
        let name = h.split(':').next().unwrap_or("").trim();
        !name.eq_ignore_ascii_case("proxy-authorization")
            && !name.eq_ignore_ascii_case("proxy-connection")
    }) {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    // Reuses the TLS relay's rewriting: origin-form target, Connection: close.
    let request = read_head(&mut BufReader::new(io::Cursor::new(head.into_bytes())))?
        .expect("a head was just built");
    upstream.write_all(&request)?;
    io::copy(&mut upstream, &mut client)?;
    close(&client)
}

fn close(stream: &TcpStream) -> io::Result<()> {
    let _ = stream.shutdown(Shutdown::Write);
    // Drain so closing does not reset a connection the client still reads.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = io::copy(&mut (&*stream), &mut io::sink());
    Ok(())
}

/// Connects to `host:port` only if it resolves to loopback.
fn connect_loopback(authority: &str) -> Option<TcpStream> {
    authority
        .to_socket_addrs()
        .ok()?
        .filter(|a| a.ip().is_loopback())
        .find_map(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok())
}

fn base64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}
