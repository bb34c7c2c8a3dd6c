//! HTTPS in front of a loopback `Server`: a CA made at test time (rcgen), a
//! server certificate for 127.0.0.1 and localhost, a client certificate, and
//! a TLS terminator that relays each request to the plain server so its
//! request log and faults still apply.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A throwaway PKI: a CA, a server certificate it signed, and a client
/// certificate it signed, written as PEM files in a temp dir.
pub struct Pki {
    dir: tempfile::TempDir,
    ca_der: CertificateDer<'static>,
    server_der: CertificateDer<'static>,
    server_key: Vec<u8>,
}

impl Pki {
    pub fn new() -> Pki {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "kamal-launcher test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = |names: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().expect("leaf key");
            let mut params = CertificateParams::new(names).expect("leaf params");
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &issuer).expect("sign leaf");
            (cert, key)
        };
        let (server_cert, server_key) = leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            "127.0.0.1",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) = leaf(
            Vec::new(),
            "deploy client",
            ExtendedKeyUsagePurpose::ClientAuth,
        );

        let dir = tempfile::Builder::new()
            .prefix("test-pki-")
            .tempdir()
            .expect("pki dir");
        std::fs::create_dir(dir.path().join("ca-dir")).expect("ca dir");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write ca");
        std::fs::write(dir.path().join("ca-dir/test-ca.pem"), ca_cert.pem()).expect("write ca");
        std::fs::write(
            dir.path().join("client.pem"),
            format!("{}{}", client_cert.pem(), client_key.serialize_pem()),
        )
        .expect("write client cert");
        Pki {
            ca_der: ca_cert.der().clone(),
            server_der: server_cert.der().clone(),
            server_key: server_key.serialize_der(),
            dir,
        }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A directory holding only the CA certificate (not `c_rehash`ed).
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.path().join("ca-dir")
    }

    /// The client certificate followed by its private key, PEM.
    pub fn client_pem(&self) -> PathBuf {
        self.dir.path().join("client.pem")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn server_config(&self, require_client_cert: bool) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone()).expect("add CA");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        builder
            .with_single_cert(
                vec![self.server_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone())),
            )
            .expect("server cert")
    }
}

struct Shared {
    shutdown: AtomicBool,
    handshakes: AtomicUsize,
    failed_handshakes: AtomicUsize,
    streams: Mutex<Vec<TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// An HTTPS listener on 127.0.0.1 relaying to `upstream` over plain HTTP,
/// one request per connection (it answers `Connection: close`).
pub struct TlsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl TlsServer {
    /// Serves with `pki`'s server certificate; with `require_client_cert`,
    /// the handshake fails unless the client presents a certificate the CA
    /// signed.
    pub fn start(pki: &Pki, upstream: SocketAddr, require_client_cert: bool) -> TlsServer {
        let config = Arc::new(pki.server_config(require_client_cert));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            shutdown: AtomicBool::new(false),
            handshakes: AtomicUsize::new(0),
            failed_handshakes: AtomicUsize::new(0),
            streams: Mutex::new(Vec::new()),
            workers: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("tls-server-{}", addr.port()))
                .spawn(move || {
                    for stream in listener.incoming() {
                        if shared.shutdown.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        if let Ok(clone) = stream.try_clone() {
                            shared.streams.lock().unwrap().push(clone);
                        }
                        let config = Arc::clone(&config);
                        let worker_shared = Arc::clone(&shared);
                        let worker = std::thread::spawn(move || {
                            serve(&worker_shared, config, stream, upstream);
                        });
                        shared.workers.lock().unwrap().push(worker);
                    }
                })
                .expect("spawn acceptor")
        };
        TlsServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `https://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("https://{}/", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Completed handshakes so far.
    pub fn handshakes(&self) -> usize {
        self.shared.handshakes.load(Ordering::SeqCst)
    }

    /// Handshakes that failed (untrusted certificate, missing client
    /// certificate, ...).
    pub fn failed_handshakes(&self) -> usize {
        self.shared.failed_handshakes.load(Ordering::SeqCst)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for stream in self.shared.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let workers: Vec<_> = self.shared.workers.lock().unwrap().drain(..).collect();
        for worker in workers {
            let _ = worker.join();
        }
    }
}

fn serve(shared: &Shared, config: Arc<rustls::ServerConfig>, tcp: TcpStream, upstream: SocketAddr) {
    // Bounds every wait, so a confused client cannot keep a worker (and Drop) forever.
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        if tls.conn.complete_io(&mut tls.sock).is_err() {
            shared.failed_handshakes.fetch_add(1, Ordering::SeqCst);
            // rustls has sent its alert; reading what the client still sends
            // until it closes keeps the kernel from resetting the connection
            // before the client has read that alert.
            let _ = tls.sock.shutdown(Shutdown::Write);
            let _ = tls.sock.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = io::copy(&mut tls.sock, &mut io::sink());
            return;
        }
    }
    if shared.shutdown.load(Ordering::SeqCst) {
        return;
    }
    shared.handshakes.fetch_add(1, Ordering::SeqCst);
    let mut reader = BufReader::new(tls);
    let Ok(Some(request)) = read_head(&mut reader) else {
        return;
    };
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    if up.write_all(&request).is_err() {
        return;
    }
    let mut response = Vec::new();
    let _ = up.read_to_end(&mut response);
    let tls = reader.get_mut();
    let _ = tls.write_all(&response);
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let _ = tls.sock.shutdown(Shutdown::Write);
}

/// Reads one request head (and its Content-Length body), rewritten for the
/// upstream: origin-form target (a proxy receives the absolute form, which
/// servers must accept but the test server does not) and `Connection: close`.
pub(crate) fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "request line"));
    };
    let target = origin_form(target);
    let mut out = format!("{method} {target} {version}\r\n");
    let mut length = 0u64;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        let name = trimmed.split(':').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("connection") {
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            length = trimmed[name.len() + 1..].trim().parse().unwrap_or(0);
        }
        out.push_str(trimmed);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    reader.take(length).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// `http://host:port/path?q` → `/path?q`; other forms unchanged.
pub(crate) fn origin_form(target: &str) -> String {
    match target.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(i) => rest[i..].to_owned(),
            None => "/".to_owned(),
        },
        None => target.to_owned(),
    }
}
