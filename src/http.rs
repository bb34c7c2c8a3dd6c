//! HTTP for gem sources, set up the way Bundler (and the OpenSSL under it) would be: trusted roots from the
//! system store, `SSL_CERT_FILE`/`SSL_CERT_DIR` and `ssl_ca_cert`; a client certificate from `ssl_client_cert`;
//! proxies from `HTTPS_PROXY`/`HTTP_PROXY` minus `NO_PROXY`; Bundler's `timeout`; and redirects followed here
//! rather than by ureq, so that an `Authorization` header never reaches another origin.

use std::collections::HashMap;
use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use url::Url;

use crate::error::redact_url;
use crate::settings::BundlerSettings;

const USER_AGENT: &str = concat!("kamal-launcher/", env!("CARGO_PKG_VERSION"));

/// Makes GET requests for the fetcher; built once per run, agents and TLS roots only when first needed.
pub struct Client {
    timeout: Duration,
    redirect_limit: u32,
    ca_cert: Option<FileSetting>,
    client_cert: Option<FileSetting>,
    proxies: Proxies,
    tls: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
    /// Keyed by (https, proxied): which agent a URL needs depends only on those.
    agents: Mutex<HashMap<(bool, bool), ureq::Agent>>,
}

/// A path-valued setting and the words that name it in messages.
#[derive(Debug, Clone)]
struct FileSetting {
    path: PathBuf,
    named: String,
}

/// A successful (2xx or 304) response and how it was reached.
pub struct Response {
    /// The response itself.
    pub inner: ureq::Response,
    /// Each redirect followed, as `(to, credentials_dropped)`, the URL without credentials.
    pub hops: Vec<(String, bool)>,
}

/// Why a request failed.
#[derive(Debug)]
pub enum HttpError {
    /// The server answered with an error status; `url` is the one that answered, without credentials.
    Status {
        code: u16,
        text: String,
        url: String,
        /// The server's `Retry-After`, in seconds form (HTTP dates are rare from gem servers and ignored).
        retry_after: Option<Duration>,
    },
    /// A connection, TLS, proxy or redirect failure; the message is complete.
    Other(String),
    /// A failure another attempt may not meet: a refused or reset connection, a timeout.
    Transient(String),
    /// The settings for TLS are unusable (a certificate file that cannot be read); the message is complete.
    Config(String),
}

impl HttpError {
    /// Whether trying again later may succeed: 429, 5xx, and connection-level failures.
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Status { code, .. } => *code == 429 || (500..=599).contains(code),
            HttpError::Transient(_) => true,
            HttpError::Other(_) | HttpError::Config(_) => false,
        }
    }

    /// How long the server asked us to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl Client {
    /// Reads Bundler's `timeout`, `redirect`, `ssl_ca_cert`, `ssl_client_cert` and the proxy variables in `env`.
    pub fn new(
        settings: &BundlerSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Client, String> {
        let file_setting = |key: &str| {
            let found = settings.find(key)?;
            let value = found.value.trim();
            (!value.is_empty()).then(|| FileSetting {
                path: PathBuf::from(value),
                named: found.describe(),
            })
        };
        Ok(Client {
            timeout: settings.timeout(),
            redirect_limit: settings.redirect_limit(),
            ca_cert: file_setting("ssl_ca_cert"),
            client_cert: file_setting("ssl_client_cert"),
            proxies: Proxies::from_env(env)?,
            tls: OnceLock::new(),
            agents: Mutex::new(HashMap::new()),
        })
    }

    /// The proxy a request for `url` goes through, redacted and with the variable that set it, if any.
    pub fn proxy_for(&self, url: &str) -> Option<String> {
        let url = Url::parse(url).ok()?;
        self.proxies
            .for_url(&url)
            .map(|p| format!("{} (from {})", p.shown, p.var))
    }

    /// GETs `url` (which must carry no userinfo), sending `authorization` only to `url`'s own origin and
    /// following up to `redirect` redirects.
    pub fn get(
        &self,
        url: &str,
        authorization: Option<&str>,
        if_none_match: Option<&str>,
    ) -> Result<Response, HttpError> {
        let mut current = Url::parse(url).map_err(|e| {
            HttpError::Other(format!("{} is not a valid URL: {e}", redact_url(url)))
        })?;
        // Credentials travel only in `authorization`, where redirects can drop them; ureq would send these.
        let _ = current.set_username("");
        let _ = current.set_password(None);
        let mut authorization = authorization;
        let mut seen = vec![current.clone()];
        let mut hops = Vec::new();
        loop {
            let proxy = self.proxies.for_url(&current);
            let agent = self.agent(current.scheme() == "https", proxy.is_some())?;
            let mut request = agent.get(current.as_str());
            if let Some(auth) = authorization {
                request = request.set("Authorization", auth);
            }
            if let Some(tag) = if_none_match {
                request = request.set("If-None-Match", tag);
            }
            // ureq sends proxy credentials only in CONNECT, i.e. for https; plain http needs the header.
            if let Some(p) = proxy
                && current.scheme() == "http"
                && let Some(header) = &p.authorization
            {
                request = request.set("Proxy-Authorization", header);
            }
            let response = match (request.call(), proxy) {
                (Ok(r), _) => r,
                (Err(ureq::Error::Status(407, _)), Some(p)) => {
                    return Err(HttpError::Other(p.refused(&current)));
                }
                (Err(ureq::Error::Status(code, r)), _) => {
                    return Err(HttpError::Status {
                        code,
                        text: r.status_text().to_string(),
                        url: current.to_string(),
                        retry_after: r
                            .header("Retry-After")
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(Duration::from_secs),
                    });
                }
                (Err(ureq::Error::Transport(t)), _) => {
                    let message = self.describe_transport(&current, proxy, &t);
                    let transient = rustls_error(&t).is_none()
                        && matches!(
                            t.kind(),
                            ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Io
                        );
                    return Err(if transient {
                        HttpError::Transient(message)
                    } else {
                        HttpError::Other(message)
                    });
                }
            };
            if !matches!(response.status(), 301 | 302 | 303 | 307 | 308) {
                return Ok(Response {
                    inner: response,
                    hops,
                });
            }
            let next = redirect_target(&current, &response)?;
            if hops.len() >= self.redirect_limit as usize {
                return Err(HttpError::Other(format!(
                    "too many redirects fetching {}: gave up after {} (the last to {next}); the server or a \
                     mirror is misconfigured, or set BUNDLE_REDIRECT to allow more",
                    seen[0], self.redirect_limit
                )));
            }
            if seen.contains(&next) {
                return Err(HttpError::Other(format!(
                    "redirect loop fetching {}: {current} redirects to {next}, which was already visited; \
                     the server or a mirror is misconfigured",
                    seen[0]
                )));
            }
            let dropped = authorization.is_some() && next.origin() != current.origin();
            if dropped {
                authorization = None;
            }
            hops.push((next.to_string(), dropped));
            seen.push(next.clone());
            current = next;
        }
    }

    fn agent(&self, https: bool, proxied: bool) -> Result<ureq::Agent, HttpError> {
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(agent) = agents.get(&(https, proxied)) {
            return Ok(agent.clone());
        }
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(self.timeout)
            .timeout_read(self.timeout)
            .timeout_write(self.timeout)
            .redirects(0)
            .user_agent(USER_AGENT);
        if https {
            builder = builder.tls_config(self.tls_config()?);
        }
        let proxy = if https {
            &self.proxies.https
        } else {
            &self.proxies.http
        };
        if proxied && let Some(p) = proxy {
            builder = builder.proxy(p.proxy.clone());
        }
        let agent = builder.build();
        agents.insert((https, proxied), agent.clone());
        Ok(agent)
    }

    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, HttpError> {
        self.tls
            .get_or_init(|| {
                tls_config(self.ca_cert.as_ref(), self.client_cert.as_ref()).map(Arc::new)
            })
            .clone()
            .map_err(HttpError::Config)
    }

    fn describe_transport(
        &self,
        url: &Url,
        proxy: Option<&ProxyConf>,
        t: &ureq::Transport,
    ) -> String {
        let detail = transport_detail(t);
        if let Some(tls) = rustls_error(t) {
            return self.describe_tls(url, tls);
        }
        let secs = self.timeout.as_secs_f64();
        match (t.kind(), proxy) {
            (ureq::ErrorKind::ProxyUnauthorized, Some(p)) => p.refused(url),
            (ureq::ErrorKind::ProxyConnect | ureq::ErrorKind::ConnectionFailed, Some(p)) => {
                format!(
                    "could not fetch {url} through the proxy {} (from {}): {detail}\n  check that variable, \
                 or add the host to NO_PROXY",
                    p.shown, p.var
                )
            }
            _ if is_timeout(t) => format!(
                "could not fetch {url}: no answer within {secs}s ({detail}); raise BUNDLE_TIMEOUT if the \
                 server is slow"
            ),
            _ => format!("could not fetch {url}: {detail}"),
        }
    }

    fn describe_tls(&self, url: &Url, e: &rustls::Error) -> String {
        use rustls::AlertDescription as A;
        match e {
            rustls::Error::InvalidCertificate(cause) => format!(
                "could not fetch {url}: the server's TLS certificate is not trusted ({cause:?})\n  if it is \
                 signed by a private CA, set SSL_CERT_FILE or BUNDLE_SSL_CA_CERT to that CA's certificate \
                 (a PEM file, or a directory of PEM files){}",
                match &self.ca_cert {
                    Some(ca) => format!(
                        "; {} ({}) does not vouch for it",
                        ca.named,
                        ca.path.display()
                    ),
                    None => String::new(),
                }
            ),
            rustls::Error::AlertReceived(
                A::CertificateRequired
                | A::BadCertificate
                | A::UnknownCA
                | A::CertificateUnknown
                | A::HandshakeFailure
                | A::AccessDenied,
            ) => match &self.client_cert {
                None => format!(
                    "could not fetch {url}: the server refused the TLS connection ({e}); it probably requires \
                     a client certificate\n  set BUNDLE_SSL_CLIENT_CERT to a PEM file holding your \
                     certificate and its private key"
                ),
                Some(c) => format!(
                    "could not fetch {url}: the server refused the client certificate from {} ({}): {e}\n  \
                     check that the certificate is the one this server expects and has not expired",
                    c.named,
                    c.path.display()
                ),
            },
            other => format!("could not fetch {url}: TLS failed: {other}"),
        }
    }
}

/// Whether `url`'s host accepts a TCP connection within `timeout`: Bundler's probe of a mirror with a
/// `fallback_timeout`, which falls back to the source when the mirror is down.
pub fn probe(url: &str, timeout: Duration) -> bool {
    let Ok(url) = Url::parse(url) else {
        return false;
    };
    let Ok(addrs) = url.socket_addrs(|| None) else {
        return false;
    };
    addrs
        .iter()
        .any(|a| TcpStream::connect_timeout(a, timeout).is_ok())
}

/// The `Authorization` header for `user:password` or a bare token, decoded the way Bundler decodes them
/// (`CGI.unescape` of each part).
pub fn basic_auth(userinfo: &str) -> String {
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let pair = format!("{}:{}", cgi_unescape(user), cgi_unescape(password));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// Ruby's `CGI.unescape`: `%XX` escapes and `+` for a space.
fn cgi_unescape(s: &str) -> String {
    percent_decode(&s.replace('+', " "))
}

/// Decodes `%XX` escapes (invalid ones are kept as they are).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Where a redirect points, resolved against the current URL, without userinfo or fragment.
fn redirect_target(current: &Url, response: &ureq::Response) -> Result<Url, HttpError> {
    let code = response.status();
    let location = response.header("Location").ok_or_else(|| {
        HttpError::Other(format!(
            "{current} answered HTTP {code} without a Location to redirect to"
        ))
    })?;
    let mut next = current.join(location).map_err(|e| {
        HttpError::Other(format!(
            "{current} redirects to {:?}, which is not a valid URL: {e}",
            redact_url(location)
        ))
    })?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(HttpError::Other(format!(
            "{current} redirects to {}, which is not an http(s) URL",
            redact_url(next.as_str())
        )));
    }
    // Credentials a server puts in a Location are not ours to send, and must not be printed.
    let _ = next.set_username("");
    let _ = next.set_password(None);
    next.set_fragment(None);
    Ok(next)
}

fn transport_detail(t: &ureq::Transport) -> String {
    let mut detail = t
        .message()
        .map_or_else(|| t.kind().to_string(), str::to_string);
    let mut source = std::error::Error::source(t);
    while let Some(s) = source {
        detail.push_str(&format!(": {s}"));
        source = s.source();
    }
    detail
}

/// The rustls error behind a transport failure, if TLS is what failed.
fn rustls_error(t: &ureq::Transport) -> Option<&rustls::Error> {
    let mut source = std::error::Error::source(t);
    while let Some(s) = source {
        if let Some(e) = s.downcast_ref::<rustls::Error>() {
            return Some(e);
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && let Some(e) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return Some(e);
        }
        source = s.source();
    }
    None
}

fn is_timeout(t: &ureq::Transport) -> bool {
    let mut source = std::error::Error::source(t);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            )
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// Roots: the system store (for which `SSL_CERT_FILE`/`SSL_CERT_DIR` stand in when set, as for OpenSSL),
/// the bundled Mozilla roots, and `ssl_ca_cert`. Plus the client certificate, if one is configured.
fn tls_config(
    ca_cert: Option<&FileSetting>,
    client_cert: Option<&FileSetting>,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let env_set = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .iter()
        .filter(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
        .copied()
        .collect::<Vec<_>>();
    if !env_set.is_empty() && !native.errors.is_empty() {
        return Err(format!(
            "could not read the certificates {} names: {}\n  point it at a PEM file (SSL_CERT_FILE) or a \
             directory of PEM files (SSL_CERT_DIR), or unset it",
            env_set.join(" / "),
            native
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    roots.add_parsable_certificates(native.certs);
    // A floor under the system store: a minimal container without a CA bundle, or SSL_CERT_FILE naming only a
    // private CA, still reaches public hosts such as rubygems.org.
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = ca_cert {
        let loaded = if ca.path.is_dir() {
            rustls_native_certs::load_certs_from_paths(None, Some(&ca.path))
        } else {
            rustls_native_certs::load_certs_from_paths(Some(&ca.path), None)
        };
        let (added, _) = roots.add_parsable_certificates(loaded.certs);
        if added == 0 {
            return Err(format!(
                "{} names {}, but no certificate could be read from it{}\n  it must be a PEM file, or a \
                 directory of PEM files, with the CA certificates to trust",
                ca.named,
                ca.path.display(),
                match loaded.errors.first() {
                    Some(e) => format!(" ({e})"),
                    None => String::new(),
                }
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("setting up TLS failed: {e}"))?
        .with_root_certificates(roots);
    match client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some(c) => {
            let (chain, key) = read_client_cert(&c.path).map_err(|why| {
                format!(
                    "{} names {}, which {why}\n  it must be one PEM file with the certificate (and any \
                     intermediates) followed by its private key",
                    c.named,
                    c.path.display()
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!(
                    "{} ({}): the certificate and key do not go together: {e}",
                    c.named,
                    c.path.display()
                )
            })
        }
    }
}

fn read_client_cert(
    path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    std::fs::metadata(path).map_err(|e| format!("cannot be read ({e})"))?;
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("holds no readable certificate ({e})"))?;
    if chain.is_empty() {
        return Err("holds no certificate".to_string());
    }
    let key = PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("holds no readable private key ({e})"))?;
    Ok((chain, key))
}

/// The proxies from the environment, by the scheme of the URL requested.
#[derive(Debug, Default)]
struct Proxies {
    http: Option<ProxyConf>,
    https: Option<ProxyConf>,
    no_proxy: NoProxy,
}

#[derive(Debug, Clone)]
struct ProxyConf {
    /// The variable that set it, for messages.
    var: &'static str,
    /// Its URL without credentials, for messages.
    shown: String,
    proxy: ureq::Proxy,
    /// `Proxy-Authorization` for plain-http requests.
    authorization: Option<String>,
}

impl ProxyConf {
    fn refused(&self, url: &Url) -> String {
        format!(
            "could not fetch {url}: the proxy {} (from {}) answered HTTP 407 Proxy Authentication Required\n  \
             put the proxy's user:password in that variable (http://user:password@host:port), \
             percent-encoding special characters",
            self.shown, self.var
        )
    }
}

impl Proxies {
    /// `https_proxy` / `HTTPS_PROXY` for https URLs, falling back like RubyGems to `http_proxy` / `HTTP_PROXY`,
    /// which also serves http URLs; `no_proxy` / `NO_PROXY` exempts hosts.
    fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Proxies, String> {
        let first = |names: &[&'static str]| -> Result<Option<ProxyConf>, String> {
            for &name in names {
                if let Some(v) = env(name).filter(|v| !v.trim().is_empty()) {
                    return ProxyConf::parse(name, v.trim()).map(Some);
                }
            }
            Ok(None)
        };
        let http = first(&["http_proxy", "HTTP_PROXY"])?;
        let https = first(&["https_proxy", "HTTPS_PROXY"])?.or_else(|| http.clone());
        let no_proxy = env("no_proxy")
            .or_else(|| env("NO_PROXY"))
            .map(|v| NoProxy::parse(&v))
            .unwrap_or_default();
        Ok(Proxies {
            http,
            https,
            no_proxy,
        })
    }

    fn for_url(&self, url: &Url) -> Option<&ProxyConf> {
        let proxy = match url.scheme() {
            "https" => self.https.as_ref(),
            _ => self.http.as_ref(),
        }?;
        let host = match url.host()? {
            url::Host::Domain(d) => d.to_ascii_lowercase(),
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => ip.to_string(),
        };
        let port = url.port_or_known_default().unwrap_or(0);
        (!self.no_proxy.exempts(&host, port)).then_some(proxy)
    }
}

impl ProxyConf {
    fn parse(var: &'static str, value: &str) -> Result<ProxyConf, String> {
        let with_scheme = if value.contains("://") {
            value.to_string()
        } else {
            format!("http://{value}")
        };
        let shown = redact_url(&with_scheme);
        let bad = |why: &str| format!("{var}={shown} {why}");
        let url = Url::parse(&with_scheme).map_err(|e| {
            bad(&format!(
                "is not a proxy URL ({e}); write it as http://host:port"
            ))
        })?;
        if url.scheme() != "http" {
            return Err(bad(
                "is not supported: only http:// proxies (which tunnel https with CONNECT) are",
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| bad("names no host; write it as http://host:port"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let creds = (!url.username().is_empty()).then(|| {
            (
                percent_decode(url.username()),
                percent_decode(url.password().unwrap_or("")),
            )
        });
        let spec = match &creds {
            Some((user, pass)) => format!("http://{user}:{pass}@{host}:{port}"),
            None => format!("http://{host}:{port}"),
        };
        let proxy = ureq::Proxy::new(spec).map_err(|_| bad("could not be used as a proxy"))?;
        Ok(ProxyConf {
            var,
            shown: format!("http://{host}:{port}"),
            proxy,
            authorization: creds.map(|(user, pass)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
                )
            }),
        })
    }
}

/// `NO_PROXY` as Ruby's `URI::Generic.use_proxy?` reads it: a comma (or space) separated list of host
/// suffixes matched at a dot boundary, optionally with `:port`, IP networks in CIDR form, or `*` for all.
#[derive(Debug, Default, Clone)]
struct NoProxy {
    all: bool,
    entries: Vec<(String, Option<u16>)>,
}

impl NoProxy {
    fn parse(value: &str) -> NoProxy {
        let mut no_proxy = NoProxy::default();
        for entry in value
            .split([',', ' ', '\t'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            if entry == "*" {
                no_proxy.all = true;
                continue;
            }
            let entry = entry.trim_start_matches("*.").trim_start_matches('.');
            let (host, port) = split_host_port(entry);
            no_proxy.entries.push((host.to_ascii_lowercase(), port));
        }
        no_proxy
    }

    fn exempts(&self, host: &str, port: u16) -> bool {
        self.all
            || self.entries.iter().any(|(entry, entry_port)| {
                entry_port.is_none_or(|p| p == port)
                    && (host == entry
                        || host
                            .strip_suffix(entry.as_str())
                            .is_some_and(|rest| rest.ends_with('.'))
                        || in_network(host, entry))
            })
    }
}

/// `host:port`, `[v6]:port`, a bare v6 address or a CIDR; the port only where it is unambiguous.
fn split_host_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[')
        && let Some((host, after)) = rest.split_once(']')
    {
        return (host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

/// Whether the IP address `host` lies in `entry`, an address or `address/prefix`.
fn in_network(host: &str, entry: &str) -> bool {
    let Ok(addr) = host.parse::<IpAddr>() else {
        return false;
    };
    let (net, prefix) = match entry.split_once('/') {
        Some((net, prefix)) => (net, prefix.parse::<u32>().ok()),
        None => (entry, None),
    };
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let prefix = prefix.unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let prefix = prefix.unwrap_or(128).min(128);
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(vars: &[(&str, &str)]) -> Result<Proxies, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Proxies::from_env(&|k| vars.get(k).cloned())
    }

    fn proxied(p: &Proxies, url: &str) -> Option<&'static str> {
        p.for_url(&Url::parse(url).unwrap()).map(|c| c.var)
    }

    #[test]
    fn proxy_by_scheme_with_rubygems_fallback() {
        let p = proxies(&[("HTTP_PROXY", "http://h:1")]).unwrap();
        assert_eq!(proxied(&p, "http://a/"), Some("HTTP_PROXY"));
        assert_eq!(proxied(&p, "https://a/"), Some("HTTP_PROXY"));
        let p = proxies(&[("https_proxy", "s:2"), ("HTTPS_PROXY", "x:3")]).unwrap();
        assert_eq!(proxied(&p, "http://a/"), None);
        assert_eq!(proxied(&p, "https://a/"), Some("https_proxy"));
        assert_eq!(p.https.as_ref().unwrap().shown, "http://s:2");
        assert!(proxies(&[("HTTPS_PROXY", "socks5://h:1")]).is_err());
        assert!(proxies(&[("HTTPS_PROXY", "")]).unwrap().https.is_none());
    }

    #[test]
    fn proxy_credentials_are_decoded_and_hidden() {
        let p = proxies(&[("HTTP_PROXY", "http://us%40r:p%3Ass@proxy:3128/")]).unwrap();
        let conf = p.http.unwrap();
        assert_eq!(conf.shown, "http://proxy:3128");
        assert_eq!(
            conf.authorization.as_deref(),
            Some(
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("us@r:p:ss")
                )
                .as_str()
            )
        );
        let err = proxies(&[("HTTP_PROXY", "ftp://u:secret@proxy/")]).unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn no_proxy_matching() {
        let n =
            NoProxy::parse("example.com, .corp.net ,10.0.0.0/8 localhost:8080,[::1],*.wild.org");
        assert!(n.exempts("example.com", 443));
        assert!(n.exempts("gems.example.com", 443));
        assert!(!n.exempts("notexample.com", 443));
        assert!(n.exempts("a.corp.net", 80));
        assert!(n.exempts("10.1.2.3", 80));
        assert!(!n.exempts("11.1.2.3", 80));
        assert!(n.exempts("localhost", 8080));
        assert!(!n.exempts("localhost", 8081));
        assert!(n.exempts("::1", 80));
        assert!(n.exempts("x.wild.org", 80));
        assert!(NoProxy::parse("*").exempts("anything", 1));
        assert!(!NoProxy::parse("").exempts("anything", 1));
        let p = proxies(&[("HTTP_PROXY", "h:1"), ("NO_PROXY", "127.0.0.1")]).unwrap();
        assert_eq!(proxied(&p, "http://127.0.0.1:9/"), None);
        assert_eq!(proxied(&p, "http://localhost:9/"), Some("HTTP_PROXY"));
    }

    #[test]
    fn basic_auth_decodes_like_bundler() {
        let enc = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert_eq!(basic_auth("u:p"), enc("u:p"));
        assert_eq!(basic_auth("tok"), enc("tok:"));
        assert_eq!(basic_auth("u%40x:p%3A+q"), enc("u@x:p: q"));
        assert_eq!(basic_auth("u:a:b"), enc("u:a:b"));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn redirect_targets_lose_credentials() {
        let redirect = |location: &str| -> ureq::Response {
            format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\n\r\n")
                .parse()
                .unwrap()
        };
        let current = Url::parse("http://a:1/gems/x.gem").unwrap();
        let next = redirect_target(&current, &redirect("http://u:p@b:2/y#frag")).unwrap();
        assert_eq!(next.as_str(), "http://b:2/y");
        assert_ne!(current.origin(), next.origin());
        let next = redirect_target(&current, &redirect("/other?q=1")).unwrap();
        assert_eq!(next.as_str(), "http://a:1/other?q=1");
        assert_eq!(current.origin(), next.origin());
        let next = redirect_target(&current, &redirect("https://a:1/")).unwrap();
        assert_ne!(current.origin(), next.origin());
        let Err(HttpError::Other(msg)) = redirect_target(&current, &redirect("ftp://u:secret@c/"))
        else {
            panic!("ftp is not followed")
        };
        assert!(!msg.contains("secret"), "{msg}");
        let no_location: ureq::Response = "HTTP/1.1 301 Moved\r\n\r\n".parse().unwrap();
        assert!(redirect_target(&current, &no_location).is_err());
    }
}
