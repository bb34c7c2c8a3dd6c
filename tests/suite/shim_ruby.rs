//! `bin/kamal` on a root with Ruby and no curl, wget, sha256sum or shasum (the `ruby:*-slim` images' shape, issue
//! 20 point 1): the shim downloads with Ruby's Net::HTTP and hashes with Ruby's Digest, and keeps everything the
//! curl path keeps: one verified download, proxies, credentials as a header (never in argv, a URL or output),
//! SSL_CERT_FILE, redirects that carry no credentials to another host and never go from https down to http, the
//! stall timeout and retries, the same diagnosis. Under dash, bash and BusyBox sh.
//!
//! The PATH is a toolbox: the shim's POSIX basics, tar and gzip, and `ruby` as a wrapper that logs each argv it is
//! given and execs the real Ruby, so that a test can read every command line a credential could have been on.

use crate::pinned_launcher::{
    App, Bundler, SECRET, SHIM_TOOLS, assert_gave_up_on_a_stall, assert_nothing_cached,
    expected_version, gem_url, host_gem_path, lockfile, own_version, run_bounded, toolbox, world,
};
use crate::support::power::{Tmpfs, skip_loudly};
use crate::support::{
    Fault, Output, Server, assert_success,
    proxy::Proxy,
    tls::{Pki, TlsServer},
    which,
};

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// The shells the shim must work under, each with its own tools (BusyBox sh with BusyBox's applets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shell {
    Dash,
    Bash,
    BusyBox,
}

impl Shell {
    fn all() -> Vec<Shell> {
        if cfg!(target_os = "linux") {
            vec![Shell::Dash, Shell::Bash, Shell::BusyBox]
        } else {
            vec![Shell::Dash, Shell::Bash]
        }
    }

    fn argv(self) -> &'static [&'static str] {
        match self {
            Shell::Dash => &["dash"],
            Shell::Bash => &["bash"],
            Shell::BusyBox => &["busybox", "sh"],
        }
    }
}

/// A root that has Ruby and neither curl, wget, sha256sum nor shasum.
struct RubyRoot {
    bin: tempfile::TempDir,
    shell: Shell,
}

impl RubyRoot {
    fn new(shell: Shell) -> RubyRoot {
        let from = match shell {
            Shell::BusyBox => {
                Some(which("busybox").expect("busybox is not installed (apt-get install busybox)"))
            }
            _ => None,
        };
        let bin = toolbox(SHIM_TOOLS, from.as_deref());
        let ruby = which("ruby").expect("ruby is not installed");
        let wrapper = bin.path().join("ruby");
        let log = bin.path().join("ruby-argv.log");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >>'{}'; done\necho ---- >>'{}'\nexec '{}' \"$@\"\n",
                log.display(),
                log.display(),
                ruby.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        for missing in ["curl", "wget", "sha256sum", "shasum"] {
            assert!(
                !bin.path().join(missing).exists(),
                "{missing} is in the toolbox"
            );
        }
        RubyRoot { bin, shell }
    }

    fn path(&self) -> OsString {
        self.bin.path().as_os_str().to_owned()
    }

    /// The root's PATH, then a C toolchain: the fixture kamal has a native extension, which the launcher (once the
    /// shim has handed over to it) builds. The shim finds nothing there it could download or hash with.
    fn path_with_toolchain(&self) -> (tempfile::TempDir, OsString) {
        let tools = toolbox(
            &[
                "make",
                "cc",
                "gcc",
                "x86_64-linux-gnu-gcc",
                "as",
                "ld",
                "install",
                "cp",
                "echo",
                "touch",
                "cat",
                "true",
                "env",
                "dirname",
                "basename",
                "tr",
                "cut",
            ],
            None,
        );
        let mut path = self.path();
        path.push(":");
        path.push(tools.path());
        (tools, path)
    }

    /// Every argument the shim (and the launcher) gave Ruby, one a line.
    fn ruby_argv(&self) -> String {
        fs::read_to_string(self.bin.path().join("ruby-argv.log")).unwrap_or_default()
    }

    /// `SHELL bin/kamal ARGS` on this root.
    fn shim(&self, app: &App, server: &Server) -> Command {
        app.shim(self.shell.argv(), &self.path(), server)
    }

    /// `SHELL bin/kamal --version`: the launcher's own CLI, so the whole of the shim's path and nothing after.
    fn launcher_version(&self, app: &App, server: &Server) -> Command {
        let mut cmd = self.shim(app, server);
        cmd.env("KAMAL_LAUNCHER_CLI", "1").arg("--version");
        cmd
    }
}

fn assert_no_secret(root: &RubyRoot, out: &Output) {
    assert!(
        !out.stdout.contains(SECRET) && !out.stderr.contains(SECRET),
        "{:?}: the secret was printed:\n{out}",
        root.shell
    );
    assert!(
        !root.ruby_argv().contains(SECRET),
        "{:?}: the secret was on Ruby's command line:\n{}",
        root.shell,
        root.ruby_argv()
    );
}

#[test]
fn a_ruby_only_root_fetches_verifies_and_runs_the_pinned_launcher() {
    for shell in Shell::all() {
        let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
        let server = Server::start(&world().root);
        let root = RubyRoot::new(shell);
        let (_toolchain, path) = root.path_with_toolchain();
        let mut cmd = app.shim(shell.argv(), &path, &server);
        cmd.arg("version");
        let out = run_bounded(cmd);
        assert_success(&out);
        assert_eq!(
            out.stdout, "2.7.0\n",
            "{shell:?}: stdout is kamal's alone:\n{out}"
        );
        assert!(
            out.stderr.contains(&format!(
                "verified and cached kamal-launcher {}",
                own_version()
            )),
            "{shell:?}: {out}"
        );
        assert_eq!(server.count(&host_gem_path()), 1, "{shell:?}: one download");
        // Ruby downloaded it and hashed it: the shim gave it --disable-gems, and Digest for the hash.
        let argv = root.ruby_argv();
        assert!(argv.contains("--disable-gems"), "{shell:?}: {argv}");
        assert!(argv.contains("-rdigest"), "{shell:?}: {argv}");
        let cached = app.cached_launcher(&own_version());
        let record = fs::read_to_string(cached.with_file_name("kamal-launcher.ok")).unwrap();
        let digest = crate::support::sha256_hex(&fs::read(&cached).unwrap());
        assert_eq!(
            record,
            format!("{} {digest}\n", fs::metadata(&cached).unwrap().len()),
            "{shell:?}: the record holds the binary's size and SHA-256"
        );
    }
}

#[test]
fn a_ruby_only_root_verifies_through_the_compact_index_without_checksums() {
    // This machine's Bundler writes no CHECKSUMS: the index is read with Ruby too.
    let app = App::new(&lockfile(Bundler::System, Some(&own_version())));
    let server = Server::start(&world().root);
    let root = RubyRoot::new(Shell::Dash);
    let out = run_bounded(root.launcher_version(&app, &server));
    assert_success(&out);
    assert_eq!(out.stdout, expected_version());
    assert_eq!(server.count("/info/kamal-launcher"), 1, "{out}");
    assert_eq!(server.count(&host_gem_path()), 1, "{out}");
}

#[test]
fn a_ruby_only_root_goes_through_the_proxy_unless_no_proxy_says_otherwise() {
    for (variable, no_proxy) in [
        ("http_proxy", None),
        ("HTTP_PROXY", None),
        ("HTTPS_PROXY", None),
        ("http_proxy", Some("NO_PROXY")),
        ("HTTP_PROXY", Some("no_proxy")),
    ] {
        let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
        let server = Server::start(&world().root);
        let proxy = Proxy::start_with_auth("proxyuser", SECRET);
        let root = RubyRoot::new(Shell::Dash);
        let mut cmd = root.launcher_version(&app, &server);
        cmd.env(variable, proxy.url_with_auth("proxyuser", SECRET));
        if let Some(exempt) = no_proxy {
            cmd.env(exempt, "127.0.0.1");
        }
        let out = run_bounded(cmd);
        let what = format!("{variable} {no_proxy:?}");
        if variable == "HTTPS_PROXY" {
            // An http source does not use the https proxy, as Net::HTTP and curl have it.
            assert_success(&out);
            assert_eq!(proxy.count(), 0, "{what}: {:?}", proxy.requests());
            continue;
        }
        assert_success(&out);
        assert_eq!(out.stdout, expected_version(), "{what}");
        assert_no_secret(&root, &out);
        let through: Vec<_> = proxy
            .requests()
            .into_iter()
            .filter(|r| r.target == gem_url(&server.url()))
            .collect();
        if no_proxy.is_some() {
            assert!(through.is_empty(), "{what}: {:?}", proxy.requests());
            assert_eq!(server.count(&host_gem_path()), 1, "{what}");
        } else {
            assert_eq!(through.len(), 1, "{what}: {:?}", proxy.requests());
            assert_eq!(through[0].method, "GET");
            assert!(through[0].allowed, "{what}: {:?}", through[0]);
            assert!(through[0].proxy_authorization.is_some(), "{what}");
        }
    }
}

#[test]
fn a_ruby_only_root_sends_bundler_credentials_as_a_header_never_in_argv_or_output() {
    for shell in Shell::all() {
        let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
        let server = Server::start(&world().root);
        server.require_basic_auth("deploy", SECRET);
        let root = RubyRoot::new(shell);

        let refused = run_bounded(root.launcher_version(&app, &server));
        assert_eq!(refused.code(), Some(1), "{shell:?}: {refused}");
        assert!(
            refused.stderr.contains(&format!(
                "mirror {} (for https://rubygems.org/) answered HTTP 401 Unauthorized",
                server.url()
            )),
            "{shell:?}: {refused}"
        );
        assert!(
            refused
                .stderr
                .contains("bundle config set --global 127.0.0.1"),
            "{refused}"
        );
        assert_nothing_cached(&app, "refused");

        let mut cmd = root.launcher_version(&app, &server);
        cmd.env("BUNDLE_127__0__0__1", format!("deploy:{SECRET}"));
        let out = run_bounded(cmd);
        assert_success(&out);
        assert_eq!(out.stdout, expected_version(), "{shell:?}");
        assert_no_secret(&root, &refused);
        assert_no_secret(&root, &out);
        let authorized = server
            .requests()
            .iter()
            .filter(|r| r.path == host_gem_path() && r.header("authorization").is_some())
            .count();
        assert_eq!(authorized, 1, "{shell:?}: {:?}", server.requests());
    }
}

#[test]
fn a_ruby_only_root_sends_a_password_of_any_characters_as_bundler_stores_it() {
    // Sent as curl -u and GNU Wget send it: undecoded, whatever it holds.
    let password = format!("{SECRET} :%41\"\\$(x)'");
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    server.require_basic_auth("deploy", &password);
    let root = RubyRoot::new(Shell::Dash);
    let mut cmd = root.launcher_version(&app, &server);
    cmd.env("BUNDLE_127__0__0__1", format!("deploy:{password}"));
    let out = run_bounded(cmd);
    assert_success(&out);
    assert_eq!(out.stdout, expected_version());
    assert_no_secret(&root, &out);
}

#[test]
fn a_ruby_only_root_refuses_a_tampered_launcher_gem() {
    let real = fs::read(world().root.join(&host_gem_path()[1..])).unwrap();
    let mut tampered = real.clone();
    tampered.extend_from_slice(b"tampered");
    let expected = crate::support::sha256_hex(&real);
    let actual = crate::support::sha256_hex(&tampered);
    for (shell, bundler) in [
        (Shell::Dash, Bundler::V269),
        (Shell::Dash, Bundler::System),
        (Shell::BusyBox, Bundler::V269),
    ] {
        if shell == Shell::BusyBox && !cfg!(target_os = "linux") {
            continue;
        }
        let app = App::new(&lockfile(bundler, Some(&own_version())));
        let server = Server::start(&world().root);
        server.set_fault(&host_gem_path(), Fault::Body(tampered.clone()));
        let root = RubyRoot::new(shell);
        let mut cmd = root.shim(&app, &server);
        cmd.arg("version");
        let out = run_bounded(cmd);
        assert_eq!(out.code(), Some(1), "{shell:?} {bundler:?}: {out}");
        assert!(out.stdout.is_empty(), "nothing ran:\n{out}");
        for needle in [
            "checksum mismatch".to_string(),
            gem_url(&server.url()),
            expected.clone(),
            actual.clone(),
        ] {
            assert!(
                out.stderr.contains(&needle),
                "{shell:?} {bundler:?}: no {needle:?} in\n{out}"
            );
        }
        assert_nothing_cached(&app, &format!("{shell:?} {bundler:?}"));
    }
}

#[test]
fn a_ruby_only_root_sends_no_credentials_through_a_redirect_to_another_host() {
    for shell in Shell::all() {
        let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
        let server = Server::start(&world().root);
        server.require_basic_auth("deploy", SECRET);
        let elsewhere = Server::start(&world().root);
        server.set_fault(&host_gem_path(), Fault::Redirect(gem_url(&elsewhere.url())));
        let root = RubyRoot::new(shell);
        let mut cmd = root.launcher_version(&app, &server);
        // Both ways Bundler gives credentials: in the mirror's URL, and as BUNDLE_<HOST>.
        cmd.env("BUNDLE_MIRROR__ALL", server.url_with_auth("deploy", SECRET));
        let out = run_bounded(cmd);
        assert_success(&out);
        assert_eq!(out.stdout, expected_version(), "{shell:?}");
        assert_no_secret(&root, &out);
        let authorized = server
            .requests()
            .iter()
            .filter(|r| r.path == host_gem_path() && r.header("authorization").is_some())
            .count();
        assert_eq!(authorized, 1, "{shell:?}: {:?}", server.requests());
        assert_eq!(elsewhere.count(&host_gem_path()), 1, "{shell:?}");
        let leaked: Vec<_> = elsewhere
            .requests()
            .into_iter()
            .filter(|r| r.header("authorization").is_some())
            .collect();
        assert!(
            leaked.is_empty(),
            "{shell:?}: credentials sent on: {leaked:?}"
        );
    }
}

#[test]
fn a_ruby_only_root_trusts_ssl_cert_file_and_never_follows_https_down_to_http() {
    let pki = Pki::new();
    // https with credentials, the private CA given by SSL_CERT_FILE (and by SSL_CERT_DIR).
    for (variable, value) in [
        ("SSL_CERT_FILE", pki.ca_pem()),
        ("SSL_CERT_DIR", pki.ca_dir()),
    ] {
        let app = App::new(&lockfile(Bundler::System, Some(&own_version())));
        let server = Server::start(&world().root);
        server.require_basic_auth("deploy", SECRET);
        let tls = TlsServer::start(&pki, server.addr(), false);
        let root = RubyRoot::new(Shell::Dash);
        let mut cmd = root.launcher_version(&app, &server);
        cmd.env("BUNDLE_MIRROR__ALL", tls.url())
            .env("BUNDLE_127__0__0__1", format!("deploy:{SECRET}"))
            .env(variable, &value);
        let out = run_bounded(cmd);
        assert_success(&out);
        assert_eq!(out.stdout, expected_version(), "{variable}");
        assert_no_secret(&root, &out);
        assert_eq!(tls.failed_handshakes(), 0, "{variable}: {out}");
        for path in [host_gem_path(), "/info/kamal-launcher".to_string()] {
            let authorized = server
                .requests()
                .iter()
                .filter(|r| r.path == path && r.header("authorization").is_some())
                .count();
            assert_eq!(authorized, 1, "{variable}: {path}: {:?}", server.requests());
        }
    }

    // Without the CA: said as an untrusted certificate, with the variable that fixes it.
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    let tls = TlsServer::start(&pki, server.addr(), false);
    let root = RubyRoot::new(Shell::Dash);
    let mut cmd = root.launcher_version(&app, &server);
    cmd.env("BUNDLE_MIRROR__ALL", tls.url())
        .env("BUNDLE_RETRY", "0");
    let out = run_bounded(cmd);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains("its TLS certificate is not trusted"),
        "{out}"
    );
    assert!(out.stderr.contains("SSL_CERT_FILE"), "{out}");

    // A redirect from https to plain http is refused.
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let plain = Server::start(&world().root);
    server.set_fault(&host_gem_path(), Fault::Redirect(gem_url(&plain.url())));
    let mut cmd = root.launcher_version(&app, &server);
    cmd.env("BUNDLE_MIRROR__ALL", tls.url())
        .env("SSL_CERT_FILE", pki.ca_pem());
    let out = run_bounded(cmd);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("could not download"), "{out}");
    assert!(out.stderr.contains("from https to plain http"), "{out}");
    assert!(
        plain.requests().is_empty(),
        "followed https down to http: {:?}",
        plain.requests()
    );
    assert_nothing_cached(&app, "https to http");
}

#[test]
fn a_ruby_only_root_gives_up_on_a_stall_and_says_what_failed_as_the_curl_path_does() {
    for shell in Shell::all() {
        let root = RubyRoot::new(shell);

        // A body that stops: BUNDLE_TIMEOUT bounds the silence, BUNDLE_RETRY the tries.
        let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
        let server = Server::start(&world().root);
        server.set_fault(&host_gem_path(), Fault::StallAfter(4096));
        let mut cmd = root.launcher_version(&app, &server);
        cmd.env("BUNDLE_TIMEOUT", "1").env("BUNDLE_RETRY", "1");
        let out = run_bounded(cmd);
        assert_gave_up_on_a_stall(&format!("{shell:?}"), &out, &app, &server);

        // A status: the server's answer, and a 404 is not tried again.
        let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
        let server = Server::start(&world().root);
        server.set_fault(&host_gem_path(), Fault::Status(404));
        let out = run_bounded(root.launcher_version(&app, &server));
        assert_eq!(out.code(), Some(1), "{shell:?}: {out}");
        assert!(
            out.stderr.contains(&format!(
                "mirror {} (for https://rubygems.org/) answered HTTP 404 Not Found for gems/",
                server.url()
            )),
            "{shell:?}: {out}"
        );
        assert_eq!(server.count(&host_gem_path()), 1, "{shell:?}");

        // A 503, tried BUNDLE_RETRY more times.
        server.set_fault(&host_gem_path(), Fault::Status(503));
        let mut cmd = root.launcher_version(&app, &server);
        cmd.env("BUNDLE_RETRY", "1");
        server.clear_log();
        let out = run_bounded(cmd);
        assert_eq!(out.code(), Some(1), "{shell:?}: {out}");
        assert!(out.stderr.contains("answered HTTP 503"), "{shell:?}: {out}");
        assert!(out.stderr.contains("(2 tries)"), "{shell:?}: {out}");
        assert_eq!(server.count(&host_gem_path()), 2, "{shell:?}");

        // Nobody listening.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let mut cmd = root.launcher_version(&app, &server);
        cmd.env("BUNDLE_MIRROR__ALL", format!("http://{closed}/"))
            .env("BUNDLE_RETRY", "0");
        let out = run_bounded(cmd);
        assert_eq!(out.code(), Some(1), "{shell:?}: {out}");
        assert!(
            out.stderr
                .contains(&format!("could not reach http://{closed}/")),
            "{shell:?}: {out}"
        );
        assert!(
            out.stderr.contains("connection refused"),
            "{shell:?}: {out}"
        );
    }
}

#[test]
fn a_ruby_only_root_calls_a_full_disk_a_full_disk() {
    let fs = match Tmpfs::mount("size=128m,mode=0755") {
        Ok(fs) => fs,
        Err(why) => return skip_loudly("a full disk under the shim's Ruby download", &why),
    };
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    let cache = fs.path().join("cache");
    let gem_len = fs::metadata(world().root.join(&host_gem_path()[1..]))
        .unwrap()
        .len();
    let root = RubyRoot::new(Shell::Dash);
    let version = || {
        let mut cmd = root.launcher_version(&app, &server);
        cmd.env("KAMAL_LAUNCHER_CACHE_DIR", &cache);
        run_bounded(cmd)
    };
    fs.leave_free(gem_len / 2);
    let out = version();
    assert_eq!(out.code(), Some(1), "{out}");
    for needle in [
        format!(
            "the disk holding {}/v2/launchers/{} is full",
            cache.display(),
            own_version()
        ),
        format!(
            "downloading {} needs {gem_len} bytes there",
            gem_url(&server.url())
        ),
        "KAMAL_LAUNCHER_CACHE_DIR".to_string(),
    ] {
        assert!(out.stderr.contains(&needle), "no {needle:?} in\n{out}");
    }
    assert!(!out.stderr.contains("checksum"), "{out}");
    fs.free_everything();
    let out = version();
    assert_success(&out);
    assert_eq!(out.stdout, expected_version());
}

#[test]
fn a_ruby_only_root_tunnels_https_through_the_https_proxy_with_credentials() {
    let pki = Pki::new();
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    server.require_basic_auth("deploy", SECRET);
    let tls = TlsServer::start(&pki, server.addr(), false);
    let proxy = Proxy::start_with_auth("proxyuser", SECRET);
    let root = RubyRoot::new(Shell::Dash);
    let mut cmd = root.launcher_version(&app, &server);
    cmd.env("BUNDLE_MIRROR__ALL", tls.url())
        .env("BUNDLE_127__0__0__1", format!("deploy:{SECRET}"))
        .env("SSL_CERT_FILE", pki.ca_pem())
        .env("https_proxy", proxy.url_with_auth("proxyuser", SECRET));
    let out = run_bounded(cmd);
    assert_success(&out);
    assert_eq!(out.stdout, expected_version());
    assert_no_secret(&root, &out);
    let tunnels: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "CONNECT" && r.target == tls.addr().to_string())
        .collect();
    assert_eq!(tunnels.len(), 1, "{:?}", proxy.requests());
    assert!(tunnels[0].allowed && tunnels[0].proxy_authorization.is_some());
    let authorized = server
        .requests()
        .iter()
        .filter(|r| r.path == host_gem_path() && r.header("authorization").is_some())
        .count();
    assert_eq!(authorized, 1, "{:?}", server.requests());
}
