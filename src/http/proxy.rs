//! Proxies as Bundler's Net::HTTP finds them: `HTTPS_PROXY`/`HTTP_PROXY` minus `NO_PROXY`. https goes through a
//! CONNECT tunnel (ureq's own); plain http goes to the proxy as an absolute-form request, the way Net::HTTP and
//! curl send it, because proxies commonly refuse CONNECT to any port but 443 (Squid's default) and ureq 3
//! would tunnel every request.

use std::fmt;
use std::net::IpAddr;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, NextTimeout, TcpConnector, Transport,
};
use url::Url;

use super::credentials::{basic, percent_decode};
use crate::error::redact_url;

/// The proxies from the environment, by the scheme of the URL requested.
#[derive(Debug, Default)]
pub(super) struct Proxies {
    http: Option<ProxyConf>,
    https: Option<ProxyConf>,
    no_proxy: NoProxy,
}

/// One proxy setting.
#[derive(Debug, Clone)]
pub(super) struct ProxyConf {
    /// The variable that set it, for messages.
    pub(super) var: &'static str,
    /// Its URL without credentials, for messages.
    pub(super) shown: String,
    /// The proxy for ureq's CONNECT tunnels (https).
    pub(super) proxy: ureq::Proxy,
    host: String,
    port: u16,
    /// `Proxy-Authorization` for plain-http requests.
    pub(super) authorization: Option<String>,
}

impl ProxyConf {
    /// The message for a 407 from this proxy.
    pub(super) fn refused(&self, url: &Url) -> String {
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
    pub(super) fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Proxies, String> {
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

    /// The proxy a request for `url` goes through, if any.
    pub(super) fn for_url(&self, url: &Url) -> Option<&ProxyConf> {
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
        let mut builder = ureq::Proxy::builder(ureq::ProxyProtocol::Http)
            .host(host)
            .port(port);
        if let Some((user, pass)) = &creds {
            builder = builder.username(user).password(pass);
        }
        let proxy = builder
            .build()
            .map_err(|_| bad("could not be used as a proxy"))?;
        Ok(ProxyConf {
            var,
            shown: format!("http://{host}:{port}"),
            proxy,
            host: host.to_string(),
            port,
            authorization: creds.map(|(user, pass)| basic(&user, &pass)),
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

/// An agent that sends every request to `proxy` in absolute form (`GET http://host/path HTTP/1.1`), for plain
/// http: ureq itself only tunnels.
pub(super) fn absolute_form_agent(config: ureq::config::Config, proxy: &ProxyConf) -> ureq::Agent {
    ureq::Agent::with_parts(
        config,
        TcpConnector::default().chain(AbsoluteForm),
        ToProxy {
            proxy: format!("http://{}:{}/", proxy.host, proxy.port),
        },
    )
}

/// Resolves every host to the proxy: the origin's name is the proxy's to resolve (it may not resolve here).
#[derive(Debug)]
struct ToProxy {
    proxy: String,
}

impl Resolver for ToProxy {
    fn resolve(
        &self,
        _origin: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let uri: Uri = self
            .proxy
            .parse()
            .map_err(|_| ureq::Error::BadUri(self.proxy.clone()))?;
        DefaultResolver::default().resolve(&uri, config, timeout)
    }
}

/// Puts the origin into each request line sent over a connection to the proxy.
#[derive(Debug)]
struct AbsoluteForm;

impl<In: Transport> Connector<In> for AbsoluteForm {
    type Out = AbsoluteFormTransport<In>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let origin = details
            .uri
            .authority()
            .map(|a| format!("http://{}", a.as_str()))
            .ok_or_else(|| ureq::Error::BadUri(details.uri.to_string()))?;
        Ok(chained.map(|inner| AbsoluteFormTransport {
            inner,
            origin,
            at_request_line: true,
        }))
    }
}

struct AbsoluteFormTransport<In> {
    inner: In,
    /// `http://host:port`, put before the path of each request line.
    origin: String,
    /// Whether the next bytes sent start a request: on a new connection, and after each response.
    at_request_line: bool,
}

impl<In> fmt::Debug for AbsoluteFormTransport<In> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbsoluteFormTransport")
            .field("origin", &self.origin)
            .finish()
    }
}

impl<In: Transport> Transport for AbsoluteFormTransport<In> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let amount = if std::mem::take(&mut self.at_request_line) {
            insert_origin(self.inner.buffers().output(), amount, &self.origin)?
        } else {
            amount
        };
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.at_request_line = true;
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }
}

/// Turns `GET /path HTTP/1.1` at the start of `buffer[..len]` into `GET http://host:port/path HTTP/1.1`, in
/// place; returns the new length.
fn insert_origin(buffer: &mut [u8], len: usize, origin: &str) -> Result<usize, ureq::Error> {
    let target = buffer[..len]
        .iter()
        .position(|&b| b == b' ')
        .map(|space| space + 1)
        .filter(|&at| buffer.get(at) == Some(&b'/'))
        .ok_or_else(|| io_error("no request line to send to the proxy"))?;
    let grown = len + origin.len();
    if grown > buffer.len() {
        return Err(io_error(
            "the request line is too long to send to the proxy",
        ));
    }
    buffer.copy_within(target..len, target + origin.len());
    buffer[target..target + origin.len()].copy_from_slice(origin.as_bytes());
    Ok(grown)
}

fn io_error(why: &str) -> ureq::Error {
    ureq::Error::Io(std::io::Error::other(why.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

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
        // "us@r:p:ss" in base64.
        assert_eq!(conf.authorization.as_deref(), Some("Basic dXNAcjpwOnNz"));
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

    /// A connection that records what would go on the wire.
    #[derive(Debug)]
    struct Wire {
        buffers: ureq::unversioned::transport::LazyBuffers,
        sent: Vec<u8>,
    }

    impl Transport for Wire {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }

        fn transmit_output(&mut self, amount: usize, _: NextTimeout) -> Result<(), ureq::Error> {
            let output = self.buffers.output();
            self.sent.extend_from_slice(&output[..amount]);
            Ok(())
        }

        fn await_input(&mut self, _: NextTimeout) -> Result<bool, ureq::Error> {
            Ok(true)
        }

        fn is_open(&mut self) -> bool {
            true
        }
    }

    fn send(transport: &mut AbsoluteFormTransport<Wire>, bytes: &[u8]) {
        transport.buffers().output()[..bytes.len()].copy_from_slice(bytes);
        transport
            .transmit_output(bytes.len(), NextTimeout::default())
            .unwrap();
    }

    #[test]
    fn every_request_on_a_kept_alive_connection_gets_the_origin_once() {
        let mut transport = AbsoluteFormTransport {
            inner: Wire {
                buffers: ureq::unversioned::transport::LazyBuffers::new(1024, 1024),
                sent: Vec::new(),
            },
            origin: "http://a:1".to_string(),
            at_request_line: true,
        };
        // A head sent in two writes: only its first line is rewritten.
        send(&mut transport, b"GET /x HTTP/1.1\r\n");
        send(&mut transport, b"Host: a:1\r\n\r\n");
        transport.await_input(NextTimeout::default()).unwrap();
        // The response read, the next request on the same connection starts a new request line.
        send(&mut transport, b"GET /y HTTP/1.1\r\n\r\n");
        assert_eq!(
            String::from_utf8_lossy(&transport.inner.sent),
            "GET http://a:1/x HTTP/1.1\r\nHost: a:1\r\n\r\nGET http://a:1/y HTTP/1.1\r\n\r\n"
        );
    }

    #[test]
    fn request_lines_get_the_origin() {
        let mut buffer = [0u8; 64];
        let head = b"GET /gems/x.gem HTTP/1.1\r\nHost: a:1\r\n\r\n";
        buffer[..head.len()].copy_from_slice(head);
        let len = insert_origin(&mut buffer, head.len(), "http://a:1").unwrap();
        assert_eq!(
            &buffer[..len],
            b"GET http://a:1/gems/x.gem HTTP/1.1\r\nHost: a:1\r\n\r\n"
        );
        assert!(insert_origin(&mut [0u8; 8], 0, "http://a:1").is_err());
        let mut small = *b"GET / HTTP/1.1";
        assert!(insert_origin(&mut small, 14, "http://a:1").is_err());
    }
}
