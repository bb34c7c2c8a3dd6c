//! The launcher on the network the way Bundler would be: credentials from
//! the remote URL, the environment and both `.bundle/config` files; redirects
//! that never carry credentials to another host; forward proxies (plain and
//! CONNECT, with credentials) and NO_PROXY; private CAs and client
//! certificates; mirrors with `fallback_timeout`; compact-index revalidation.
//! Everything is on loopback, each test with its own servers and cache.

use crate::support;

use std::collections::BTreeSet;
use std::fs;
use std::net::TcpListener;

use support::proxy::Proxy;
use support::tls::{Pki, TlsServer};
use support::{
    App, Fault, Launcher, Lock, Output, Server, assert_failure, assert_success, fixtures,
};

const USER: &str = "deploy";
/// Distinctive, so that finding it in any output is unambiguous.
const PASSWORD: &str = "pw-Net-S3cret-9931";
const WRONG: &str = "wrong-Pa55-4417";
const PROXY_USER: &str = "puser";
const PROXY_PASSWORD: &str = "px-Hidd3n-6620";

/// `BUNDLE_<HOST>` for the loopback servers.
const HOST_KEY: &str = "BUNDLE_127__0__0__1";

const SMALL_GEMS: [&str; 2] = [
    "/gems/fixture_dep_a-1.2.0.gem",
    "/gems/fixture_dep_b-0.3.1.gem",
];

fn serve() -> Server {
    Server::start(&fixtures().dir)
}

/// Installs `fixture_dep_a`'s closure (it and `fixture_dep_b`, pure Ruby, so
/// a cold install is quick), saying everything (`-v`).
fn install_small(launcher: &Launcher) -> Output {
    launcher
        .clone()
        .args(["-v", "--gem", "fixture_dep_a", "install"])
        .run()
}

fn gem_paths(server: &Server) -> BTreeSet<String> {
    server
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.starts_with("/gems/"))
        .collect()
}

fn small_gems() -> BTreeSet<String> {
    SMALL_GEMS.iter().map(|s| s.to_string()).collect()
}

fn base64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Neither the secret nor any Basic token made from it was printed.
#[track_caller]
fn assert_secret_hidden(out: &Output, user: &str, secret: &str) {
    for needle in [secret.to_string(), base64(&format!("{user}:{secret}"))] {
        assert!(!out.stdout.contains(&needle), "{needle} printed:\n{out}");
        assert!(!out.stderr.contains(&needle), "{needle} printed:\n{out}");
    }
}

#[track_caller]
fn assert_mentions(out: &Output, needles: &[&str]) {
    for needle in needles {
        assert!(out.stderr.contains(needle), "no {needle:?} in:\n{out}");
    }
}

fn user_config(launcher: &Launcher, yaml: &str) {
    let dir = launcher.home_path().join(".bundle");
    fs::create_dir_all(&dir).expect("create ~/.bundle");
    fs::write(dir.join("config"), yaml).expect("write ~/.bundle/config");
}

fn yaml_credentials(value: &str) -> String {
    format!("---\n{HOST_KEY}: \"{value}\"\n")
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn authed_server() -> Server {
    let server = serve();
    server.require_basic_auth(USER, PASSWORD);
    server
}

#[track_caller]
fn assert_all_authorized(server: &Server) {
    let requests = server.requests();
    assert!(!requests.is_empty());
    let expected = format!("Basic {}", base64(&format!("{USER}:{PASSWORD}")));
    for r in &requests {
        assert_eq!(r.header("Authorization"), Some(expected.as_str()), "{r:?}");
    }
}

// ---- credentials ----

#[test]
fn credentials_in_the_remote_url() {
    let server = authed_server();
    let app = App::new(&Lock::new(server.url_with_auth(USER, PASSWORD)));
    let out = install_small(&Launcher::new(app.path()));
    assert_success(&out);
    assert_secret_hidden(&out, USER, PASSWORD);
    assert_eq!(gem_paths(&server), small_gems());
    assert_all_authorized(&server);

    let app = App::new(&Lock::new(server.url_with_auth(USER, WRONG)));
    let out = install_small(&Launcher::new(app.path()));
    assert_failure(&out);
    assert_mentions(
        &out,
        &["HTTP 401", "the user:password in the URL", "refused"],
    );
    assert_secret_hidden(&out, USER, WRONG);
}

#[test]
fn credentials_in_the_environment_for_the_whole_closure() {
    let server = authed_server();
    let app = App::new(&Lock::new(server.url()));
    let launcher = Launcher::new(app.path()).env(HOST_KEY, format!("{USER}:{PASSWORD}"));
    let out = launcher.clone().args(["-v", "exec", "--", "version"]).run();
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert_secret_hidden(&out, USER, PASSWORD);
    assert_all_authorized(&server);

    let out = install_small(&Launcher::new(app.path()).env(HOST_KEY, format!("{USER}:{WRONG}")));
    assert_failure(&out);
    assert_mentions(
        &out,
        &[
            "HTTP 401",
            "BUNDLE_127__0__0__1 in the environment",
            "refused",
        ],
    );
    assert_secret_hidden(&out, USER, WRONG);
}

#[test]
fn credentials_in_the_apps_bundle_config() {
    let server = authed_server();
    let app = App::new(&Lock::new(server.url()));
    app.write(
        ".bundle/config",
        &yaml_credentials(&format!("{USER}:{PASSWORD}")),
    );
    let out = install_small(&Launcher::new(app.path()));
    assert_success(&out);
    assert_secret_hidden(&out, USER, PASSWORD);
    assert_all_authorized(&server);

    app.write(
        ".bundle/config",
        &yaml_credentials(&format!("{USER}:{WRONG}")),
    );
    let out = install_small(&Launcher::new(app.path()));
    assert_failure(&out);
    assert_mentions(&out, &["HTTP 401", "in the app's", ".bundle/config"]);
    assert_secret_hidden(&out, USER, WRONG);
}

#[test]
fn credentials_in_the_users_bundle_config() {
    let server = authed_server();
    let app = App::new(&Lock::new(server.url()));
    let launcher = Launcher::new(app.path());
    user_config(&launcher, &yaml_credentials(&format!("{USER}:{PASSWORD}")));
    let out = install_small(&launcher);
    assert_success(&out);
    assert_secret_hidden(&out, USER, PASSWORD);
    assert_all_authorized(&server);

    let launcher = Launcher::new(app.path());
    user_config(&launcher, &yaml_credentials(&format!("{USER}:{WRONG}")));
    let out = install_small(&launcher);
    assert_failure(&out);
    assert_mentions(&out, &["HTTP 401", "in the user's"]);
    assert_secret_hidden(&out, USER, WRONG);
}

#[test]
fn credentials_precedence_is_app_config_then_environment_then_user_config() {
    let server = authed_server();
    let app = App::new(&Lock::new(server.url()));
    let right = format!("{USER}:{PASSWORD}");
    let wrong = format!("{USER}:{WRONG}");

    // The environment beats the user's file.
    let launcher = Launcher::new(app.path()).env(HOST_KEY, &right);
    user_config(&launcher, &yaml_credentials(&wrong));
    assert_success(&install_small(&launcher));

    // The app's file beats the environment.
    app.write(".bundle/config", &yaml_credentials(&right));
    assert_success(&install_small(
        &Launcher::new(app.path()).env(HOST_KEY, &wrong),
    ));
    app.write(".bundle/config", &yaml_credentials(&wrong));
    let out = install_small(&Launcher::new(app.path()).env(HOST_KEY, &right));
    assert_failure(&out);
    assert_mentions(&out, &["in the app's"]);
}

#[test]
fn missing_credentials_say_how_to_configure_them() {
    let server = authed_server();
    let app = App::new(&Lock::new(server.url()));
    let out = install_small(&Launcher::new(app.path()));
    assert_failure(&out);
    assert_mentions(
        &out,
        &[
            "HTTP 401",
            "requires credentials",
            "BUNDLE_127__0__0__1=user:password",
            &server.addr().to_string(),
        ],
    );
}

// ---- redirects ----

#[test]
fn redirect_to_another_host_does_not_carry_credentials() {
    let origin = authed_server();
    let other = serve();
    for path in SMALL_GEMS {
        origin.set_fault(
            path,
            Fault::Redirect(format!("http://localhost:{}{path}", other.addr().port())),
        );
    }
    let app = App::new(&Lock::new(origin.url_with_auth(USER, PASSWORD)));
    let out = install_small(&Launcher::new(app.path()));
    assert_success(&out);
    assert_secret_hidden(&out, USER, PASSWORD);
    assert_mentions(
        &out,
        &["redirected to http://localhost:", "credentials not sent"],
    );
    assert_all_authorized(&origin);
    assert_eq!(gem_paths(&other), small_gems());
    for r in other.requests() {
        assert_eq!(r.header("Authorization"), None, "{r:?}");
    }

    // Even when the other host wants the very same credentials, they are not sent.
    other.require_basic_auth(USER, PASSWORD);
    other.clear_log();
    let out = install_small(&Launcher::new(app.path()));
    assert_failure(&out);
    assert_mentions(
        &out,
        &["HTTP 401", "never sent across a redirect to another host"],
    );
    assert_secret_hidden(&out, USER, PASSWORD);
    assert!(!other.requests().is_empty());
    for r in other.requests() {
        assert_eq!(r.header("Authorization"), None, "{r:?}");
    }
}

#[test]
fn redirect_within_the_origin_keeps_credentials() {
    let server = authed_server();
    let path = SMALL_GEMS[0];
    server.set_fault_times(path, Fault::Redirect(format!("{path}?moved")), 1);
    let app = App::new(&Lock::new(server.url()));
    let out = install_small(&Launcher::new(app.path()).env(HOST_KEY, format!("{USER}:{PASSWORD}")));
    assert_success(&out);
    let hits: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert_eq!(hits[1].query.as_deref(), Some("moved"));
    assert_all_authorized(&server);
}

#[test]
fn redirect_loop_is_an_error_naming_the_url() {
    let server = serve();
    let path = SMALL_GEMS[0];
    server.set_fault(path, Fault::Redirect(path.to_string()));
    let app = App::new(&Lock::new(server.url_with_auth(USER, PASSWORD)));
    let out = install_small(&Launcher::new(app.path()));
    assert_failure(&out);
    assert_mentions(
        &out,
        &["redirect loop", &format!("http://{}{path}", server.addr())],
    );
    assert_secret_hidden(&out, USER, PASSWORD);
    assert!(server.count(path) <= 2, "{:?}", server.requests());
}

#[test]
fn too_many_redirects_is_an_error_and_bundle_redirect_raises_the_limit() {
    let server = serve();
    let path = SMALL_GEMS[0];
    let chain = |server: &Server| {
        server.set_fault_times(path, Fault::Redirect("/hop/1".into()), 1);
        for i in 1..6 {
            server.set_fault(
                &format!("/hop/{i}"),
                Fault::Redirect(format!("/hop/{}", i + 1)),
            );
        }
        server.set_fault("/hop/6", Fault::Redirect(format!("{path}?final")));
    };
    chain(&server);
    let app = App::new(&Lock::new(server.url()));
    let out = install_small(&Launcher::new(app.path()));
    assert_failure(&out);
    assert_mentions(&out, &["too many redirects", "BUNDLE_REDIRECT", path]);

    chain(&server);
    let out = install_small(&Launcher::new(app.path()).env("BUNDLE_REDIRECT", "10"));
    assert_success(&out);
}

// ---- proxies ----

#[test]
fn http_proxy_carries_the_requests_unless_no_proxy_exempts_the_host() {
    let server = serve();
    let proxy = Proxy::start();
    let app = App::new(&Lock::new(server.url()));
    let out = install_small(&Launcher::new(app.path()).env("HTTP_PROXY", proxy.url()));
    assert_success(&out);
    assert_mentions(&out, &[&format!("via {} (from HTTP_PROXY)", proxy.url())]);
    let proxied: BTreeSet<String> = proxy.requests().into_iter().map(|r| r.target).collect();
    let expected: BTreeSet<String> = SMALL_GEMS
        .iter()
        .map(|p| format!("http://{}{p}", server.addr()))
        .collect();
    assert_eq!(proxied, expected);
    assert_eq!(gem_paths(&server), small_gems());

    let bypassed = Proxy::start();
    let out = install_small(
        &Launcher::new(app.path())
            .env("http_proxy", bypassed.url())
            .env("NO_PROXY", "example.com, 127.0.0.1"),
    );
    assert_success(&out);
    assert_eq!(bypassed.count(), 0, "{:?}", bypassed.requests());
}

/// Behind a proxy the gem server's name may resolve only for the proxy: the launcher must hand the name over
/// (an absolute-form request) rather than resolve it, and say what the proxy answered.
#[test]
fn http_through_a_proxy_leaves_the_host_name_to_the_proxy() {
    let proxy = Proxy::start();
    let app = App::new(&Lock::new("http://gems.example.invalid/"));
    let out = install_small(
        &Launcher::new(app.path())
            .env("HTTP_PROXY", proxy.url())
            .env("BUNDLE_RETRY", "0"),
    );
    assert_failure(&out);
    let requests = proxy.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.method == "GET" && r.target.starts_with("http://gems.example.invalid/")),
        "{requests:?}"
    );
    // The test proxy reaches loopback only, so it answers 502 for this host.
    assert_mentions(&out, &["502", "gems.example.invalid"]);
    assert!(!out.stderr.contains("could not be resolved"), "{out}");
}

#[test]
fn proxy_credentials_are_sent_and_never_printed() {
    let server = serve();
    let proxy = Proxy::start_with_auth(PROXY_USER, PROXY_PASSWORD);
    let app = App::new(&Lock::new(server.url()));
    let out = install_small(&Launcher::new(app.path()).env(
        "HTTP_PROXY",
        proxy.url_with_auth(PROXY_USER, PROXY_PASSWORD),
    ));
    assert_success(&out);
    assert_secret_hidden(&out, PROXY_USER, PROXY_PASSWORD);
    let requests = proxy.requests();
    assert_eq!(requests.len(), SMALL_GEMS.len(), "{requests:?}");
    assert!(requests.iter().all(|r| r.allowed), "{requests:?}");
    // The proxy keeps its credentials to itself.
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.header("Proxy-Authorization").is_none())
    );

    let out = install_small(
        &Launcher::new(app.path()).env("HTTP_PROXY", proxy.url_with_auth(PROXY_USER, WRONG)),
    );
    assert_failure(&out);
    assert_mentions(&out, &["407", "HTTP_PROXY", &proxy.url()]);
    assert_secret_hidden(&out, PROXY_USER, WRONG);
}

#[test]
fn https_goes_through_the_proxy_with_connect_and_credentials() {
    let pki = Pki::new();
    let server = serve();
    let tls = TlsServer::start(&pki, server.addr(), false);
    let proxy = Proxy::start_with_auth(PROXY_USER, PROXY_PASSWORD);
    let app = App::new(&Lock::new(tls.url()));
    let launcher = Launcher::new(app.path())
        .env("SSL_CERT_FILE", pki.ca_pem())
        .env(
            "HTTPS_PROXY",
            proxy.url_with_auth(PROXY_USER, PROXY_PASSWORD),
        );
    let out = install_small(&launcher);
    assert_success(&out);
    assert_secret_hidden(&out, PROXY_USER, PROXY_PASSWORD);
    let requests = proxy.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.method, "CONNECT", "{r:?}");
        assert_eq!(r.target, tls.addr().to_string(), "{r:?}");
        assert!(r.allowed, "{r:?}");
    }
    assert_eq!(gem_paths(&server), small_gems());

    let out = install_small(
        &Launcher::new(app.path())
            .env("SSL_CERT_FILE", pki.ca_pem())
            .env("HTTPS_PROXY", proxy.url_with_auth(PROXY_USER, WRONG)),
    );
    assert_failure(&out);
    assert_mentions(&out, &["407", "HTTPS_PROXY"]);
    assert_secret_hidden(&out, PROXY_USER, WRONG);
}

// ---- certificates ----

#[test]
fn a_private_ca_is_trusted_through_ssl_cert_file_or_bundle_ssl_ca_cert() {
    let pki = Pki::new();
    let server = serve();
    let tls = TlsServer::start(&pki, server.addr(), false);
    let app = App::new(&Lock::new(tls.url()));

    let out = install_small(&Launcher::new(app.path()));
    assert_failure(&out);
    assert_mentions(
        &out,
        &[
            "certificate is not trusted",
            "SSL_CERT_FILE",
            "BUNDLE_SSL_CA_CERT",
            &tls.url(),
        ],
    );
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    assert!(tls.failed_handshakes() >= 1);

    let with = |key: &str, value: &std::path::Path| {
        install_small(&Launcher::new(app.path()).env(key, value))
    };
    assert_success(&with("SSL_CERT_FILE", &pki.ca_pem()));
    assert_eq!(gem_paths(&server), small_gems());
    assert_success(&with("SSL_CERT_DIR", &pki.ca_dir()));
    assert_success(&with("BUNDLE_SSL_CA_CERT", &pki.ca_pem()));
    assert_success(&with("BUNDLE_SSL_CA_CERT", &pki.ca_dir()));

    let missing = pki.dir().join("missing.pem");
    let out = with("BUNDLE_SSL_CA_CERT", &missing);
    assert_failure(&out);
    assert_mentions(
        &out,
        &[
            "BUNDLE_SSL_CA_CERT in the environment",
            &missing.display().to_string(),
        ],
    );
}

#[test]
fn a_server_requiring_a_client_certificate_gets_bundle_ssl_client_cert() {
    let pki = Pki::new();
    let server = serve();
    let tls = TlsServer::start(&pki, server.addr(), true);
    let app = App::new(&Lock::new(tls.url()));
    let trusting = || Launcher::new(app.path()).env("SSL_CERT_FILE", pki.ca_pem());

    let out = install_small(&trusting().env("BUNDLE_SSL_CLIENT_CERT", pki.client_pem()));
    assert_success(&out);
    assert_eq!(gem_paths(&server), small_gems());

    server.clear_log();
    let out = install_small(&trusting());
    assert_failure(&out);
    assert_mentions(
        &out,
        &["client certificate", "BUNDLE_SSL_CLIENT_CERT", &tls.url()],
    );
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    // A certificate without its key is a configuration error, named as such.
    let out = install_small(&trusting().env("BUNDLE_SSL_CLIENT_CERT", pki.ca_pem()));
    assert_failure(&out);
    assert_mentions(&out, &["BUNDLE_SSL_CLIENT_CERT", "private key"]);
}

// ---- timeouts ----

#[test]
fn a_stalled_download_times_out_after_bundle_timeout() {
    let server = serve();
    server.set_fault(SMALL_GEMS[0], Fault::StallAfter(100));
    let app = App::new(&Lock::new(server.url()));
    let out = install_small(&Launcher::new(app.path()).env("BUNDLE_TIMEOUT", "1"));
    assert_failure(&out);
    // The setting, not the 10 s default, bounded the wait (said, not timed: a loaded machine is slow).
    assert_mentions(
        &out,
        &[
            "nothing arrived for 1s",
            "BUNDLE_TIMEOUT",
            "after 100 bytes",
            SMALL_GEMS[0],
        ],
    );
}

// ---- mirrors ----

#[test]
fn unreachable_mirror_with_fallback_timeout_falls_back_to_the_source() {
    let server = serve();
    let app = App::new(&Lock::new(server.url()));
    let dead = format!("http://127.0.0.1:{}/", closed_port());
    let key = format!(
        "BUNDLE_MIRROR__HTTP://127__0__0__1:{}/",
        server.addr().port()
    );

    let out = install_small(
        &Launcher::new(app.path())
            .env(&key, &dead)
            .env(format!("{key}__FALLBACK_TIMEOUT"), "true"),
    );
    assert_success(&out);
    assert_mentions(&out, &["did not accept a connection", &dead]);
    assert_eq!(gem_paths(&server), small_gems());

    // mirror.all falls back the same way.
    server.clear_log();
    let out = install_small(
        &Launcher::new(app.path())
            .env("BUNDLE_MIRROR__ALL", &dead)
            .env("BUNDLE_MIRROR__ALL__FALLBACK_TIMEOUT", "true"),
    );
    assert_success(&out);
    assert_eq!(gem_paths(&server), small_gems());

    // Without a fallback_timeout the mirror is used, as in Bundler, and its failure names it.
    server.clear_log();
    let out = install_small(&Launcher::new(app.path()).env(&key, &dead));
    assert_failure(&out);
    assert_mentions(
        &out,
        &[&format!(
            "{dead} is the mirror configured for {}",
            server.url()
        )],
    );
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn a_live_mirror_is_used_from_any_settings_layer() {
    let source = serve();
    let mirror = serve();
    let app = App::new(&Lock::new(source.url()));
    let key = format!(
        "BUNDLE_MIRROR__HTTP://127__0__0__1:{}/",
        source.addr().port()
    );

    // Per source, with a fallback_timeout that the live mirror meets, in the user's config.
    let launcher = Launcher::new(app.path());
    user_config(
        &launcher,
        &format!(
            "---\n{key}: \"{}\"\n{key}__FALLBACK_TIMEOUT: \"true\"\n",
            mirror.url()
        ),
    );
    assert_success(&install_small(&launcher));
    assert_eq!(gem_paths(&mirror), small_gems());
    assert!(source.requests().is_empty(), "{:?}", source.requests());

    // mirror.all in the app's config beats a dead one in the environment.
    mirror.clear_log();
    app.write(
        ".bundle/config",
        &format!("---\nBUNDLE_MIRROR__ALL: \"{}\"\n", mirror.url()),
    );
    let dead = format!("http://127.0.0.1:{}/", closed_port());
    assert_success(&install_small(
        &Launcher::new(app.path()).env("BUNDLE_MIRROR__ALL", dead),
    ));
    assert_eq!(gem_paths(&mirror), small_gems());
    assert!(source.requests().is_empty(), "{:?}", source.requests());
}

// ---- compact index ----

#[test]
fn compact_index_is_revalidated_with_its_etag_on_a_later_cold_run() {
    let server = serve();
    let app = App::new(&Lock::new(server.url()).with_checksums(false));
    let launcher = Launcher::new(app.path());
    let infos = ["/info/fixture_dep_a", "/info/fixture_dep_b"];

    assert_success(&install_small(&launcher));
    for info in infos {
        let hits: Vec<_> = server
            .requests()
            .into_iter()
            .filter(|r| r.path == info)
            .collect();
        assert_eq!(hits.len(), 1, "{info} once per run: {hits:?}");
        assert_eq!(hits[0].header("If-None-Match"), None);
    }

    // Cold again, but with the index cached.
    let v1 = launcher.layout_root();
    for dir in ["envs", "store", "downloads"] {
        fs::remove_dir_all(v1.join(dir)).expect("remove cache part");
    }
    assert!(v1.join("index").is_dir());
    server.clear_log();
    assert_success(&install_small(&launcher));
    for info in infos {
        let hits: Vec<_> = server
            .requests()
            .into_iter()
            .filter(|r| r.path == info)
            .collect();
        assert_eq!(hits.len(), 1, "{info} once per run: {hits:?}");
        let body = fs::read(fixtures().info_path(info.trim_start_matches("/info/"))).unwrap();
        // The server answers 304 exactly when this matches its ETag.
        let etag = format!("\"{}\"", {
            use md5::Digest;
            hex::encode(md5::Md5::digest(&body))
        });
        assert_eq!(
            hits[0].header("If-None-Match"),
            Some(etag.as_str()),
            "{info}"
        );
    }
    assert_eq!(gem_paths(&server), small_gems());
}

#[test]
fn compact_index_with_unknown_keys_and_lines_is_understood() {
    let root = fixtures().mirror();
    let info = root.path().join("info/fixture_dep_a");
    let text = fs::read_to_string(&info).unwrap();
    let (_, versions) = text.split_once("---\n").unwrap();
    let versions = versions.replace("|checksum:", "|future_key:some value,checksum:");
    fs::write(
        &info,
        format!(
            "created_at: 2030-01-01T00:00:00Z\n---\n0.9.0 |checksum:{},rubygems:>= 9\n{}1.3.0 fixture_dep_b:~> 0.3|checksum:{},ruby:>= 2.7,extra:1\n",
            "00".repeat(32),
            versions.trim_end_matches('\n').to_string() + "\n",
            "11".repeat(32)
        ),
    )
    .unwrap();
    let server = Server::start(root.path());
    let app = App::new(&Lock::new(server.url()).with_checksums(false));
    let out = install_small(&Launcher::new(app.path()));
    assert_success(&out);
    assert_eq!(gem_paths(&server), small_gems());
}

// ---- what is not https stays out ----

/// An https source that redirects to plain http is refused: the bytes would cross the network unprotected
/// (issue 21). Nothing is asked of the plain server and nothing is installed.
#[test]
fn an_https_source_redirecting_down_to_plain_http_is_refused() {
    let pki = Pki::new();
    let server = serve();
    let tls = TlsServer::start(&pki, server.addr(), false);
    let plain = serve();
    for path in SMALL_GEMS {
        server.set_fault(
            path,
            Fault::Redirect(format!("{}{}", plain.url(), &path[1..])),
        );
    }
    let app = App::new(&Lock::new(tls.url()));
    let launcher = Launcher::new(app.path()).env("SSL_CERT_FILE", pki.ca_pem());
    let out = install_small(&launcher);
    assert_failure(&out);
    assert_mentions(&out, &["plain http", "refused", &plain.url()]);
    assert!(
        plain.requests().is_empty(),
        "followed https down to http: {:?}",
        plain.requests()
    );
    assert!(
        launcher.store_units().is_empty(),
        "{:?}",
        launcher.store_units()
    );

    // Plain http chosen by the user (the source's or a mirror's own http:// URL) is theirs to choose.
    let out = install_small(&launcher.clone().env("BUNDLE_MIRROR__ALL", plain.url()));
    assert_success(&out);
    assert_eq!(gem_paths(&plain), small_gems());
}

/// A source or mirror that is not an http(s) URL (`-o…`, `--config=…`, `ftp://`) is refused before anything is
/// fetched, naming the lockfile line or the setting, with the fix (issue 21).
#[test]
fn a_source_or_mirror_that_is_not_an_http_url_is_refused_by_name() {
    let server = serve();
    for remote in ["-o/tmp/owned", "ftp://127.0.0.1/gems/"] {
        let app = App::new(&Lock::new(remote.to_string()));
        let out = install_small(&Launcher::new(app.path()));
        assert_failure(&out);
        assert_mentions(
            &out,
            &[
                "Gemfile.lock:2",
                remote,
                "not an http(s) URL",
                "bundle lock",
            ],
        );
    }
    let app = App::new(&Lock::new(server.url()));
    for mirror in ["--config=/tmp/x", "file:///tmp/gems"] {
        let out = install_small(&Launcher::new(app.path()).env("BUNDLE_MIRROR__ALL", mirror));
        assert_failure(&out);
        assert_mentions(&out, &[mirror, "BUNDLE_MIRROR__ALL", "not an http(s) URL"]);
    }
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}
