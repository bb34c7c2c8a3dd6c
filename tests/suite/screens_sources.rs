//! Screens of a gem source that fails (issue 19, point 2): a typo'd URL, a server error, a server that is down, a
//! certificate nobody trusts, an index that lacks a version. Each is a source problem and reads as one: the source's
//! URL, what it answered (or that it did not), and the likely cause; `--allow-unverified` is suggested only when the
//! index answered and lacks the checksum. The pinned launcher's fetch (Rust and the `bin/kamal` shim) says the same.

use crate::pinned_launcher::{self, Bundler};
use crate::support;

use std::fs;
use std::net::TcpListener;
use std::path::Path;

use support::screen::{Look, assert_screens, stable, transcript};
use support::tls::{Pki, TlsServer};
use support::{App, Fault, Launcher, Lock, Output, Server, fixtures};

/// A port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The launcher in `app`, looking like `look`, with a cache of its own.
fn launcher(app: &Path, look: Look) -> Launcher {
    look.apply(Launcher::new(app))
}

/// The run as a user sees it, with this run's paths named.
fn screen(out: &Output, launcher: &Launcher, app: &Path) -> String {
    let app_dir = app.display().to_string();
    let cache = launcher.cache_path().display().to_string();
    let this = format!("(this is {})", pinned_launcher::own_version());
    stable(
        &transcript(out),
        &[
            (app_dir.as_str(), "[APP]"),
            (cache.as_str(), "[CACHE]"),
            (support::local_platform(), "[PLATFORM]"),
            (this.as_str(), "(this is [VERSION])"),
        ],
    )
}

#[track_caller]
fn assert_says(out: &Output, needles: &[&str]) {
    for needle in needles {
        assert!(out.stderr.contains(needle), "no {needle:?} in:\n{out}");
    }
}

#[track_caller]
fn assert_never_says(out: &Output, needles: &[&str]) {
    for needle in needles {
        assert!(!out.stderr.contains(needle), "{needle:?} in:\n{out}");
    }
}

/// A typo in the source URL: every request answers 404. The lockfile has no CHECKSUMS (Bundler before 2.6), so
/// the index is where the checksums would come from; before, this read "no checksum is known … pass
/// --allow-unverified", steering the user to switch verification off.
#[test]
fn a_typo_in_the_source_url_is_a_source_problem_not_a_missing_checksum() {
    let server = Server::start(&fixtures().dir);
    let typo = format!("{}gemz/", server.url());
    let app = App::new(&Lock::new(&typo).with_checksums(false));
    assert_screens("sources_index_404", |look| {
        let launcher = launcher(app.path(), look);
        let out = launcher.clone().arg("install").run();
        assert_eq!(out.code(), Some(1), "{out}");
        assert_says(&out, &[&typo, "HTTP 404", "info/", "compact index"]);
        assert_never_says(&out, &["--allow-unverified", "no checksum", "(s)"]);
        assert_eq!(out.stderr.matches("error:").count(), 1, "{out}");
        screen(&out, &launcher, app.path())
    });
    assert!(
        !server.requests().iter().any(|r| r.path.contains("/gems/")),
        "nothing is downloaded from a source whose index is missing"
    );
}

/// The same typo with CHECKSUMS in the lockfile: nothing asks the index, and the first gem's 404 asks about the
/// source before blaming a yanked version.
#[test]
fn a_typo_in_the_source_url_with_checksums_asks_about_the_source_first() {
    let server = Server::start(&fixtures().dir);
    let typo = format!("{}gemz/", server.url());
    let app = App::new(&Lock::new(&typo));
    assert_screens("sources_gems_404", |look| {
        let launcher = launcher(app.path(), look);
        let out = launcher.clone().arg("install").run();
        assert_eq!(out.code(), Some(1), "{out}");
        assert_says(&out, &[&typo, "HTTP 404", "source URL right", "yanked"]);
        assert_never_says(&out, &["--allow-unverified", "(s)"]);
        screen(&out, &launcher, app.path())
    });
}

/// A source whose index fails with 503 on every try: the server's fault, said once, with the tries.
#[test]
fn a_failing_index_is_the_servers_fault_said_once_with_the_tries() {
    let server = Server::start(&fixtures().dir);
    for (name, _, _) in support::closure() {
        server.set_fault(&format!("/info/{name}"), Fault::Status(503));
    }
    let app = App::new(&Lock::new(server.url()).with_checksums(false));
    assert_screens("sources_index_503", |look| {
        let launcher = launcher(app.path(), look).env("BUNDLE_RETRY", "1");
        let out = launcher.clone().arg("install").run();
        assert_eq!(out.code(), Some(1), "{out}");
        assert_says(&out, &[&server.url(), "HTTP 503", "2 tries"]);
        assert_never_says(&out, &["--allow-unverified", "no checksum", "(s)"]);
        assert_eq!(out.stderr.matches("error:").count(), 1, "{out}");
        screen(&out, &launcher, app.path())
    });
}

/// A server that is down: one line about the server, not "activesupport: …", and no Rust error text.
#[test]
fn a_server_that_is_down_is_one_line_about_the_server() {
    let down = format!("http://127.0.0.1:{}/", closed_port());
    for (name, checksums) in [
        ("sources_refused", true),
        ("sources_refused_no_checksums", false),
    ] {
        let app = App::new(&Lock::new(&down).with_checksums(checksums));
        assert_screens(name, |look| {
            let launcher = launcher(app.path(), look);
            let out = launcher.clone().arg("install").run();
            assert_eq!(out.code(), Some(1), "{out}");
            assert_says(
                &out,
                &[&format!(
                    "could not reach {down} (connection refused, 4 tries)"
                )],
            );
            assert_never_says(&out, &["os error", "fixture_", "kamal-2.7.0:", "(s)"]);
            assert_eq!(out.stderr.matches("error:").count(), 1, "{out}");
            screen(&out, &launcher, app.path())
        });
    }
}

/// A certificate signed by a CA this machine does not trust: about the server, with what to set.
#[test]
fn an_untrusted_certificate_is_about_the_server_and_says_what_to_set() {
    let pki = Pki::new();
    let server = Server::start(&fixtures().dir);
    let tls = TlsServer::start(&pki, server.addr(), false);
    let app = App::new(&Lock::new(tls.url()));
    assert_screens("sources_tls_untrusted", |look| {
        let launcher = launcher(app.path(), look);
        let out = launcher.clone().arg("install").run();
        assert_eq!(out.code(), Some(1), "{out}");
        assert_says(
            &out,
            &[
                &format!("could not reach {}", tls.url()),
                "certificate",
                "SSL_CERT_FILE",
            ],
        );
        assert_never_says(&out, &["UnknownIssuer", "fixture_", "(s)"]);
        screen(&out, &launcher, app.path())
    });
}

/// The index answered and lacks the version's checksum: the one case where `--allow-unverified` is the way
/// on, and then its warning comes once, with the count.
#[test]
fn allow_unverified_is_offered_only_when_the_index_answered_and_warned_once() {
    let fx = fixtures();
    let mirror = fx.mirror();
    let info = mirror.path().join("info/fixture_dep_a");
    let text = fs::read_to_string(&info).unwrap();
    let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("1.2.0 ")).collect();
    fs::write(&info, kept.join("\n") + "\n").unwrap();
    let server = Server::start(mirror.path());
    let app = App::new(&Lock::new(server.url()).with_checksums(false));
    assert_screens("sources_not_listed", |look| {
        let launcher = launcher(app.path(), look);
        let out = launcher.clone().arg("install").run();
        assert_eq!(out.code(), Some(1), "{out}");
        assert_says(
            &out,
            &[
                "fixture_dep_a-1.2.0",
                &format!("{}info/fixture_dep_a", server.url()),
                "--allow-unverified",
            ],
        );
        screen(&out, &launcher, app.path())
    });

    // A mirror of the gem files without any index: each gem is unverified, and the warning says so once.
    let bare = fx.mirror();
    fs::remove_dir_all(bare.path().join("info")).unwrap();
    let server = Server::start(bare.path());
    let app = App::new(&Lock::new(server.url()).with_checksums(false));
    assert_screens("sources_allow_unverified", |look| {
        let launcher = launcher(app.path(), look);
        let out = launcher
            .clone()
            .args(["--allow-unverified", "install"])
            .run();
        assert_eq!(out.code(), Some(0), "{out}");
        assert_eq!(out.stderr.matches("WITHOUT").count(), 1, "{out}");
        assert_says(
            &out,
            &[&format!("{} gems", support::closure().len()), "WITHOUT"],
        );
        screen(&out, &launcher, app.path())
    });
}

/// The pinned launcher, fetched by a launcher of another version (src/pinned.rs) from a source whose index
/// answers 404 (this machine's Bundler writes no CHECKSUMS): the same diagnosis as for any gem.
#[test]
fn the_handover_to_the_pinned_launcher_gets_the_same_diagnosis() {
    let world = pinned_launcher::world();
    let server = Server::start(&world.root);
    server.set_fault("/info/kamal-launcher", Fault::Status(404));
    let app = pinned_launcher::App::new(&pinned_launcher::lockfile(
        Bundler::System,
        Some(pinned_launcher::STAND_IN),
    ));
    assert_screens("sources_pinned_index_404", |look| {
        let launcher = look
            .apply(Launcher::new(app.path()))
            .env("BUNDLE_MIRROR__ALL", server.url());
        let out = launcher.clone().args(["exec", "--", "version"]).run();
        assert_eq!(out.code(), Some(1), "{out}");
        assert!(out.stdout.is_empty(), "{out}");
        assert_says(
            &out,
            &[
                &server.url(),
                "HTTP 404",
                "info/kamal-launcher",
                "compact index",
            ],
        );
        assert_never_says(&out, &["--allow-unverified", "no checksum"]);
        screen(&out, &launcher, app.path())
    });

    let down = format!("http://127.0.0.1:{}/", closed_port());
    assert_screens("sources_pinned_refused", |look| {
        let launcher = look
            .apply(Launcher::new(app.path()))
            .env("BUNDLE_MIRROR__ALL", &down);
        let out = launcher.clone().args(["exec", "--", "version"]).run();
        assert_eq!(out.code(), Some(1), "{out}");
        assert_says(
            &out,
            &[
                &format!("could not reach {down}, the mirror for https://rubygems.org/"),
                "(connection refused, 4 tries)",
            ],
        );
        assert_never_says(&out, &["os error", "no checksum"]);
        screen(&out, &launcher, app.path())
    });
}

/// bin/kamal fetching the pinned launcher itself (sh, curl or wget): the same diagnosis, in the shim's words.
#[test]
fn the_shim_fetching_the_pinned_launcher_gets_the_same_diagnosis() {
    let world = pinned_launcher::world();
    let server = Server::start(&world.root);
    server.set_fault("/info/kamal-launcher", Fault::Status(404));
    let down = format!("http://127.0.0.1:{}/", closed_port());
    let own = pinned_launcher::own_version();
    let app = pinned_launcher::App::new(&pinned_launcher::lockfile(Bundler::System, Some(&own)));
    let shim = |mirror: &str| {
        let mut cmd = app.shim(&["dash"], &pinned_launcher::system_path(), &server);
        cmd.env("BUNDLE_MIRROR__ALL", mirror)
            .env("BUNDLE_RETRY", "1")
            .arg("version");
        pinned_launcher::run(cmd)
    };
    let shown = |out: &Output| {
        let app_dir = app.path().display().to_string();
        let home = app.home.path().display().to_string();
        stable(
            &transcript(out),
            &[(app_dir.as_str(), "[APP]"), (home.as_str(), "[HOME]")],
        )
    };
    assert_screens("sources_shim_index_404", |_| {
        let out = shim(&server.url());
        assert_eq!(out.code(), Some(1), "{out}");
        assert_says(
            &out,
            &[
                &server.url(),
                "HTTP 404 Not Found for info/kamal-launcher",
                "compact index",
            ],
        );
        assert_never_says(&out, &["KAMAL_LAUNCHER_ALLOW_UNVERIFIED", "no checksum"]);
        shown(&out)
    });
    assert_screens("sources_shim_refused", |_| {
        let out = shim(&down);
        assert_eq!(out.code(), Some(1), "{out}");
        // curl says only that it could not connect; wget, that the connection was refused.
        assert_says(&out, &[&format!("could not reach {down}"), "2 tries)"]);
        assert_never_says(&out, &["KAMAL_LAUNCHER_ALLOW_UNVERIFIED", "no checksum"]);
        shown(&out)
    });
}

/// The shim's diagnosis is the same whichever downloader it finds: curl, GNU Wget, BusyBox's wget. A missing
/// index, a failing one (with the tries), a server that is down.
#[test]
fn the_shims_diagnosis_is_the_same_with_every_downloader() {
    let world = pinned_launcher::world();
    let own = pinned_launcher::own_version();
    for tool in crate::shim_trust::Tool::all() {
        let (shell, path, _bin) = tool.setup();
        let server = Server::start(&world.root);
        let down = format!("http://127.0.0.1:{}/", closed_port());
        let run = |mirror: &str| {
            let app =
                pinned_launcher::App::new(&pinned_launcher::lockfile(Bundler::System, Some(&own)));
            let mut cmd = app.shim(shell, &path, &server);
            cmd.env("BUNDLE_MIRROR__ALL", mirror)
                .env("BUNDLE_RETRY", "1")
                .env("BUNDLE_TIMEOUT", "2")
                .arg("version");
            pinned_launcher::run(cmd)
        };
        let mirror = format!("mirror {} (for https://rubygems.org/)", server.url());

        server.set_fault("/info/kamal-launcher", Fault::Status(404));
        let out = run(&server.url());
        assert_eq!(out.code(), Some(1), "{tool:?}: {out}");
        assert_says(
            &out,
            &[
                &format!("bin/kamal: {mirror} answered HTTP 404 Not Found for info/kamal-launcher"),
                "hint: is the mirror's URL right",
                "compact index",
            ],
        );

        server.set_fault("/info/kamal-launcher", Fault::Status(503));
        let out = run(&server.url());
        assert_eq!(out.code(), Some(1), "{tool:?}: {out}");
        assert_says(
            &out,
            &[
                &format!(
                    "bin/kamal: {mirror} answered HTTP 503 Service Unavailable for info/kamal-launcher"
                ),
                "the server is failing",
            ],
        );

        let out = run(&down);
        assert_eq!(out.code(), Some(1), "{tool:?}: {out}");
        assert_says(
            &out,
            &[
                &format!("could not reach {down}, the mirror for https://rubygems.org/ ("),
                "2 tries)",
                "hint: is the mirror up?",
            ],
        );
        assert_never_says(&out, &["no checksum", "KAMAL_LAUNCHER_ALLOW_UNVERIFIED"]);
    }
}
