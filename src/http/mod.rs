//! HTTP for gem sources, set up the way Bundler (and the OpenSSL under it) would be: trusted roots from the
//! system store, `SSL_CERT_FILE`/`SSL_CERT_DIR` and `ssl_ca_cert`; a client certificate from `ssl_client_cert`;
//! proxies from `HTTPS_PROXY`/`HTTP_PROXY` minus `NO_PROXY`; Bundler's `timeout`; and redirects followed here
//! rather than by ureq, so that an `Authorization` header never reaches another origin.

mod credentials;
mod proxy;
mod tls;

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use ureq::http::Response as HttpResponse;
use url::Url;

use crate::error::redact_url;
use crate::settings::BundlerSettings;
pub use credentials::{basic_auth, percent_decode};
use proxy::{Proxies, ProxyConf};
use tls::FileSetting;

const USER_AGENT: &str = concat!("kamal-launcher/", env!("CARGO_PKG_VERSION"));

/// Makes GET requests for the fetcher; built once per run, agents and TLS roots only when first needed.
pub struct Client {
    timeout: Duration,
    redirect_limit: u32,
    ca_cert: Option<FileSetting>,
    client_cert: Option<FileSetting>,
    proxies: Proxies,
    tls: OnceLock<Result<ureq::tls::TlsConfig, String>>,
    /// Keyed by (https, proxied): which agent a URL needs depends only on those.
    agents: Mutex<HashMap<(bool, bool), ureq::Agent>>,
}

/// A successful (2xx or 304) response and how it was reached.
pub struct Response {
    inner: HttpResponse<ureq::Body>,
    /// Each redirect followed, as `(to, credentials_dropped)`, the URL without credentials.
    pub hops: Vec<(String, bool)>,
}

impl Response {
    /// The status code: 2xx, or 304 for a conditional request.
    pub fn status(&self) -> u16 {
        self.inner.status().as_u16()
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.inner, name)
    }

    /// The body, decoded; a read that waits longer than Bundler's `timeout` fails with `ErrorKind::TimedOut`.
    pub fn into_reader(self) -> impl Read {
        TimeoutsAsIo(self.inner.into_body().into_reader())
    }
}

fn header<'r>(response: &'r HttpResponse<ureq::Body>, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// ureq reports a body that stalls as its own error inside an `io::Error` of kind `Other`; callers tell a
/// timeout by its kind.
struct TimeoutsAsIo<R>(R);

impl<R: Read> Read for TimeoutsAsIo<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            match e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
                Some(ureq::Error::Timeout(_)) => {
                    io::Error::new(io::ErrorKind::TimedOut, "timed out reading the response")
                }
                _ => e,
            }
        })
    }
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
    /// No answer: the connection, TLS or a proxy failed.
    NoAnswer(NoAnswer),
    /// A redirect that cannot be followed, or a proxy that refused the credentials; the message is complete.
    Other(String),
    /// The settings for TLS are unusable (a certificate file that cannot be read); the message is complete.
    Config(String),
}

/// A request that got no answer, said in the launcher's words: the server (or the proxy in between) is what
/// failed, so callers speak of the server, not of the file asked for.
#[derive(Debug)]
pub struct NoAnswer {
    /// The URL asked, without credentials.
    pub url: String,
    /// The proxy it went through, as `URL (from VARIABLE)`, when the proxy is what failed.
    pub via: Option<String>,
    /// What happened, in a few words: "connection refused", "no answer within 10s", "its TLS certificate is not
    /// trusted (signed by an unknown authority)". Never the system's error text with its `os error` number.
    pub why: String,
    /// What to do, when this failure has a fix of its own (certificates, proxies, timeouts).
    pub advice: Option<String>,
    /// Whether another attempt may succeed: a refused or reset connection, a timeout; not a certificate.
    pub transient: bool,
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "could not fetch {}", self.url)?;
        if let Some(via) = &self.via {
            write!(f, " through the proxy {via}")?;
        }
        write!(f, ": {}", self.why)
    }
}

impl HttpError {
    /// Whether trying again later may succeed: 429, 5xx, and connection-level failures.
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Status { code, .. } => *code == 429 || (500..=599).contains(code),
            HttpError::NoAnswer(no) => no.transient,
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
            let https = current.scheme() == "https";
            let agent = self.agent(https, proxy)?;
            let mut request = agent.get(current.as_str());
            if let Some(auth) = authorization {
                request = request.header("Authorization", auth);
            }
            if let Some(tag) = if_none_match {
                request = request.header("If-None-Match", tag);
            }
            // Plain http goes to the proxy itself (absolute form), so it carries the proxy's credentials; https
            // sends them only in CONNECT, never to the origin.
            if let Some(p) = proxy
                && !https
                && let Some(header) = &p.authorization
            {
                request = request.header("Proxy-Authorization", header);
            }
            let response = request
                .call()
                .map_err(|e| self.failure(&current, proxy, e))?;
            let code = response.status().as_u16();
            if code == 407
                && let Some(p) = proxy
            {
                return Err(HttpError::Other(p.refused(&current)));
            }
            if code >= 400 {
                return Err(HttpError::Status {
                    code,
                    text: response
                        .status()
                        .canonical_reason()
                        .unwrap_or("")
                        .to_string(),
                    url: current.to_string(),
                    retry_after: header(&response, "Retry-After")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs),
                });
            }
            if !matches!(code, 301 | 302 | 303 | 307 | 308) {
                return Ok(Response {
                    inner: response,
                    hops,
                });
            }
            let next = redirect_target(&current, code, header(&response, "Location"))?;
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

    fn agent(&self, https: bool, proxy: Option<&ProxyConf>) -> Result<ureq::Agent, HttpError> {
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(agent) = agents.get(&(https, proxy.is_some())) {
            return Ok(agent.clone());
        }
        let mut config = ureq::Agent::config_builder()
            .timeout_connect(Some(self.timeout))
            .timeout_per_read(Some(self.timeout))
            .timeout_per_write(Some(self.timeout))
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(USER_AGENT)
            // Never ureq's own reading of the environment: the proxies here are Bundler's, NO_PROXY included.
            .proxy(None);
        if https {
            config = config.tls_config(self.tls_config()?);
        }
        let agent = match proxy {
            Some(p) if https => config.proxy(Some(p.proxy.clone())).build().new_agent(),
            Some(p) => proxy::absolute_form_agent(config.build(), p),
            None => config.build().new_agent(),
        };
        agents.insert((https, proxy.is_some()), agent.clone());
        Ok(agent)
    }

    fn tls_config(&self) -> Result<ureq::tls::TlsConfig, HttpError> {
        self.tls
            .get_or_init(|| tls::config(self.ca_cert.as_ref(), self.client_cert.as_ref()))
            .clone()
            .map_err(HttpError::Config)
    }

    /// The error for a request that got no response, worded for the user and classed for retrying.
    fn failure(&self, url: &Url, proxy: Option<&ProxyConf>, e: ureq::Error) -> HttpError {
        let no_answer = |why: String, advice: Option<String>, transient: bool| {
            HttpError::NoAnswer(NoAnswer {
                url: url.to_string(),
                via: None,
                why,
                advice,
                transient,
            })
        };
        if let Some(tls) = rustls_error(&e) {
            let (why, advice) = self.describe_tls(tls);
            return no_answer(why, advice, false);
        }
        let through = |why: String, p: &ProxyConf, transient: bool| {
            HttpError::NoAnswer(NoAnswer {
                url: url.to_string(),
                via: Some(format!("{} (from {})", p.shown, p.var)),
                why,
                advice: Some(format!(
                    "check {} (with the proxy's user:password if it needs them, special characters \
                     percent-encoded), or add the host to NO_PROXY",
                    p.var
                )),
                transient,
            })
        };
        let timed_out = || {
            no_answer(
                format!("no answer within {}s", self.timeout.as_secs_f64()),
                Some(format!(
                    "is the server up, and reachable from here? If it is only slow, raise BUNDLE_TIMEOUT (now \
                     {}s)",
                    self.timeout.as_secs_f64()
                )),
                true,
            )
        };
        match (&e, proxy) {
            (ureq::Error::ConnectProxyFailed(reason), Some(p)) => {
                through(format!("the proxy failed: {reason}"), p, false)
            }
            (ureq::Error::Io(io), Some(p)) if !is_timeout(io) => through(io_words(io), p, true),
            (ureq::Error::ConnectionFailed, Some(p)) => {
                through("the connection failed".to_string(), p, true)
            }
            (ureq::Error::Timeout(_), _) => timed_out(),
            (ureq::Error::Io(io), _) if is_timeout(io) => timed_out(),
            (ureq::Error::Io(io), None) => no_answer(io_words(io), None, true),
            (ureq::Error::ConnectionFailed, None) => {
                no_answer("the connection failed".to_string(), None, true)
            }
            (ureq::Error::HostNotFound, _) => no_answer(
                format!(
                    "the host {} could not be resolved",
                    url.host_str().unwrap_or("")
                ),
                None,
                false,
            ),
            _ => no_answer(e.to_string(), None, false),
        }
    }

    /// What failed in a TLS handshake, and what to do about it.
    fn describe_tls(&self, e: &rustls::Error) -> (String, Option<String>) {
        use rustls::AlertDescription as A;
        match e {
            rustls::Error::InvalidCertificate(cause) => (
                format!(
                    "its TLS certificate is not trusted ({})",
                    certificate_words(cause)
                ),
                Some(format!(
                    "if it is signed by a private CA, set SSL_CERT_FILE or BUNDLE_SSL_CA_CERT to that CA's \
                     certificate (a PEM file, or a directory of PEM files){}",
                    match &self.ca_cert {
                        Some(ca) => format!(
                            "; {} ({}) does not vouch for it",
                            ca.named,
                            ca.path.display()
                        ),
                        None => String::new(),
                    }
                )),
            ),
            rustls::Error::AlertReceived(
                A::CertificateRequired
                | A::BadCertificate
                | A::UnknownCA
                | A::CertificateUnknown
                | A::HandshakeFailure
                | A::AccessDenied,
            ) => match &self.client_cert {
                None => (
                    "it refused the TLS connection, probably for want of a client certificate".to_string(),
                    Some(
                        "set BUNDLE_SSL_CLIENT_CERT to a PEM file holding your certificate and its private key"
                            .to_string(),
                    ),
                ),
                Some(c) => (
                    format!(
                        "it refused the client certificate from {} ({})",
                        c.named,
                        c.path.display()
                    ),
                    Some(
                        "check that the certificate is the one this server expects and has not expired"
                            .to_string(),
                    ),
                ),
            },
            other => (format!("TLS failed: {other}"), None),
        }
    }
}

/// Why a certificate is not trusted, in words.
fn certificate_words(cause: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match cause {
        C::UnknownIssuer => "signed by an unknown authority".into(),
        C::Expired | C::ExpiredContext { .. } => "expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "not valid yet".into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "issued for another host name".into()
        }
        C::Revoked => "revoked".into(),
        C::BadSignature => "its signature does not verify".into(),
        C::BadEncoding => "it cannot be read".into(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => "not issued for a server".into(),
        _ => "rejected".into(),
    }
}

/// An I/O failure in a few words, without the system's `(os error N)`: "connection refused".
fn io_words(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "the connection closed before an answer".to_string(),
        _ => crate::error::os_text(e),
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

/// Where a redirect points, resolved against the current URL, without userinfo or fragment.
fn redirect_target(current: &Url, code: u16, location: Option<&str>) -> Result<Url, HttpError> {
    let location = location.ok_or_else(|| {
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
    // What was asked over https must not arrive over plain http, where anyone on the way can change it (the
    // checksum catches changed gems, not changed indexes without one). A user who wants plain http says so by
    // making the http:// URL the source or a mirror.
    if current.scheme() == "https" && next.scheme() == "http" {
        return Err(HttpError::Other(format!(
            "{current} redirects to {}: from https down to plain http, which is refused; if that server only \
             serves plain http, make its http:// URL the source or a mirror (BUNDLE_MIRROR__ALL)",
            redact_url(next.as_str())
        )));
    }
    // Credentials a server puts in a Location are not ours to send, and must not be printed.
    let _ = next.set_username("");
    let _ = next.set_password(None);
    next.set_fragment(None);
    Ok(next)
}

/// The rustls error behind a failure, if TLS is what failed.
fn rustls_error(e: &ureq::Error) -> Option<&rustls::Error> {
    match e {
        ureq::Error::Rustls(tls) => Some(tls),
        ureq::Error::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        _ => None,
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_our_words() {
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(io_words(&refused), "connection refused");
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "eof");
        assert_eq!(io_words(&eof), "the connection closed before an answer");
        assert_eq!(
            certificate_words(&rustls::CertificateError::UnknownIssuer),
            "signed by an unknown authority"
        );
        assert_eq!(
            certificate_words(&rustls::CertificateError::NotValidForName),
            "issued for another host name"
        );
        let no = NoAnswer {
            url: "http://127.0.0.1:1/info/kamal".into(),
            via: Some("http://proxy:3128 (from HTTP_PROXY)".into()),
            why: "connection refused".into(),
            advice: None,
            transient: true,
        };
        assert_eq!(
            no.to_string(),
            "could not fetch http://127.0.0.1:1/info/kamal through the proxy http://proxy:3128 (from \
             HTTP_PROXY): connection refused"
        );
        assert!(HttpError::NoAnswer(no).is_transient());
    }

    #[test]
    fn redirect_targets_lose_credentials() {
        let redirect = |location: &'static str| Some(location);
        let current = Url::parse("http://a:1/gems/x.gem").unwrap();
        let next = redirect_target(&current, 302, redirect("http://u:p@b:2/y#frag")).unwrap();
        assert_eq!(next.as_str(), "http://b:2/y");
        assert_ne!(current.origin(), next.origin());
        let next = redirect_target(&current, 302, redirect("/other?q=1")).unwrap();
        assert_eq!(next.as_str(), "http://a:1/other?q=1");
        assert_eq!(current.origin(), next.origin());
        let next = redirect_target(&current, 302, redirect("https://a:1/")).unwrap();
        assert_ne!(current.origin(), next.origin());
        let Err(HttpError::Other(msg)) =
            redirect_target(&current, 302, redirect("ftp://u:secret@c/"))
        else {
            panic!("ftp is not followed")
        };
        assert!(!msg.contains("secret"), "{msg}");
        assert!(redirect_target(&current, 301, None).is_err());
    }

    #[test]
    fn https_is_never_followed_down_to_http() {
        let current = Url::parse("https://a/gems/x.gem").unwrap();
        let Err(HttpError::Other(msg)) =
            redirect_target(&current, 302, Some("http://a/gems/x.gem"))
        else {
            panic!("followed https down to http")
        };
        assert!(msg.contains("plain http, which is refused"), "{msg}");
        let up = redirect_target(&current, 302, Some("https://b/x.gem")).unwrap();
        assert_eq!(up.as_str(), "https://b/x.gem");
    }
}
