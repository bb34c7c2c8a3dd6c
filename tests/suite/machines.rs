//! Right on the machines Rails developers have (issue 13): inputs that are not lockfiles, option values that
//! mean nothing, one format for error locations, a compiler that only looks installed, proxies and unreachable
//! gem servers, and environments in use found the same way on Linux and macOS.

use crate::support;

use std::fs;

use support::{App, Launcher, Lock, Output, Server, assert_success, fixtures};

fn failed_with(out: &Output, code: i32, needles: &[&str]) {
    assert_eq!(out.code(), Some(code), "{out}");
    for needle in needles {
        assert!(out.stderr.contains(needle), "no {needle:?} in:\n{out}");
    }
}

#[test]
fn a_gemfile_given_as_the_lockfile_is_refused_as_not_a_lockfile() {
    let server = Server::start(&fixtures().dir);
    let app = App::new(&Lock::new(server.url()));
    let gemfile = app.path().join("Gemfile");
    for args in [
        vec!["--lockfile", "Gemfile", "exec", "--", "version"],
        vec!["--lockfile", "Gemfile", "plan"],
        vec!["--lockfile", "Gemfile", "cache", "key"],
    ] {
        let out = Launcher::new(app.path()).args(&args).run();
        failed_with(
            &out,
            1,
            &[
                &format!("{} is not a lockfile", gemfile.display()),
                "not the Gemfile",
            ],
        );
        assert!(!out.stderr.contains("is not locked"), "{out}");
    }
    // An empty file is no lockfile either; BUNDLE_GEMFILE still finds the lock beside the Gemfile.
    fs::write(app.path().join("empty.lock"), "").unwrap();
    let out = Launcher::new(app.path())
        .args(["--lockfile", "empty.lock", "cache", "key"])
        .run();
    failed_with(&out, 1, &["empty.lock is not a lockfile"]);
    let out = Launcher::new(app.path())
        .env("BUNDLE_GEMFILE", &gemfile)
        .args(["cache", "key"])
        .run();
    assert_success(&out);
}

#[test]
fn zero_jobs_is_refused_from_flag_environment_and_file() {
    let server = Server::start(&fixtures().dir);
    let app = App::new(&Lock::new(server.url()));
    for out in [
        Launcher::new(app.path())
            .args(["--jobs", "0", "exec", "--", "version"])
            .run(),
        Launcher::new(app.path())
            .args(["exec", "--jobs=0", "--", "version"])
            .run(),
    ] {
        failed_with(&out, 2, &["'0'", "--jobs", "1 or more"]);
    }
    // From the environment, the message names the variable, not the flag.
    let out = Launcher::new(app.path())
        .env("KAMAL_LAUNCHER_JOBS", "0")
        .args(["install"])
        .run();
    failed_with(&out, 2, &["KAMAL_LAUNCHER_JOBS is `0`", "1 or more"]);
    assert!(!out.stderr.contains("--jobs"), "{out}");
    app.write(".kamal-launcher.toml", "offline = false\njobs = 0\n");
    let out = Launcher::new(app.path()).arg("install").run();
    failed_with(
        &out,
        1,
        &[&format!(
            "{}:2: `jobs` is 0, but takes a whole number, 1 or more",
            app.path().join(".kamal-launcher.toml").display()
        )],
    );
}

#[test]
fn an_inconsistent_lockfile_names_its_line_as_path_colon_line() {
    let server = Server::start(&fixtures().dir);
    let lock = Lock::new(server.url()).remove_spec("fixture_dep_b");
    let app = App::new(&lock);
    let text = fs::read_to_string(app.lockfile_path()).unwrap();
    let line = text
        .lines()
        .position(|l| l.trim() == "fixture_dep_b (~> 0.3)")
        .expect("fixture_dep_a depends on fixture_dep_b")
        + 1;
    let out = Launcher::new(app.path()).args(["cache", "key"]).run();
    failed_with(
        &out,
        1,
        &[&format!(
            "{}:{line}: fixture_dep_a-1.2.0 depends on fixture_dep_b",
            app.lockfile_path().display()
        )],
    );
}

/// macOS's `/usr/bin/cc` is a stub until the Command Line Tools are installed: present on PATH, compiling
/// nothing. A compiler that only looks installed must fail the check, with the reason it gave.
#[test]
fn doctor_fails_a_compiler_that_exists_but_cannot_compile() {
    let server = Server::start(&fixtures().dir);
    let app = App::new(&Lock::new(server.url()));
    let out = std::process::Command::new("ruby")
        .args(["-e", "print RbConfig::CONFIG['CC'].split.first"])
        .output()
        .unwrap();
    let cc = String::from_utf8(out.stdout).unwrap();
    let stubs = tempfile::tempdir().unwrap();
    let stub = stubs.path().join(&cc);
    fs::write(
        &stub,
        "#!/bin/sh\necho 'xcrun: error: invalid active developer path (/Library/Developer/CommandLineTools), missing xcrun' >&2\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let doctor = |path: String| {
        Launcher::new(app.path())
            .env("PATH", path)
            .env("BUNDLE_MIRROR__ALL", server.url())
            .arg("doctor")
            .run()
    };
    let out = doctor(format!(
        "{}:{}",
        stubs.path().display(),
        support::default_path()
    ));
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("C compiler:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.starts_with("FAIL"), "{out}");
    assert!(line.contains("invalid active developer path"), "{out}");
    // The real one passes.
    let out = doctor(support::default_path());
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("C compiler:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.starts_with("ok") && line.contains("compiles C"),
        "{out}"
    );
}

/// `plan` with an index that never answers (a proxy swallowing requests) or a port nobody listens on: it ends
/// within its deadline instead of retrying gem after gem, and says which checksums are unknown and why.
#[test]
fn plan_with_an_unreachable_index_says_which_checksums_are_unknown_and_why() {
    let server = Server::start(&fixtures().dir);
    let stalled = Lock::new(server.url()).with_checksums(false);
    for (name, _, _) in support::closure() {
        server.set_fault(&format!("/info/{name}"), support::Fault::StallAfter(0));
    }
    let app = App::new(&stalled);
    let out = Launcher::new(app.path())
        .env("BUNDLE_TIMEOUT", "1")
        .args(["plan"])
        .timeout(std::time::Duration::from_secs(60))
        .run();
    assert_success(&out);
    let gems = support::closure().len();
    assert!(
        out.stdout.contains(&format!(
            "SHA256 unknown for all {gems} gems, index unreachable\n"
        )),
        "{out}"
    );
    // The launcher's own words for a stall, not the HTTP library's.
    assert!(
        out.stdout
            .contains("timed out reading the response (nothing arrived for 1s"),
        "{out}"
    );
    server.release();

    let closed = App::new(&Lock::new("http://127.0.0.1:1/").with_checksums(false));
    let out = Launcher::new(closed.path())
        .args(["plan", "--json"])
        .timeout(std::time::Duration::from_secs(60))
        .run();
    assert_success(&out);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    for gem in plan["gems"].as_array().unwrap() {
        let why = gem["sha256_unknown"]
            .as_str()
            .unwrap_or_else(|| panic!("{gem}"));
        assert!(why.starts_with("index unreachable: "), "{why}");
        assert!(why.contains("127.0.0.1:1"), "{why}");
    }
}

/// Behind a mandatory proxy a direct connection fails while downloads work: doctor must ask the way a download
/// does, through the proxy, and name a source that does not answer with the reason.
#[test]
fn doctor_checks_sources_through_the_proxy_downloads_use() {
    let server = Server::start(&fixtures().dir);
    let app = App::new(&Lock::new(server.url()));
    let proxy = support::proxy::Proxy::start();
    let out = Launcher::new(app.path())
        .env("HTTP_PROXY", proxy.url())
        .arg("doctor")
        .run();
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("Gem source:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.starts_with("ok"), "{out}");
    assert!(line.contains("via"), "{out}");
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.target.contains("/info/kamal")),
        "doctor went around the proxy: {:?}",
        proxy.requests()
    );

    let down = App::new(&Lock::new("http://127.0.0.1:1/"));
    let out = Launcher::new(down.path()).arg("doctor").run();
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("Gem source:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.starts_with("FAIL") && line.contains("127.0.0.1:1"),
        "{out}"
    );
}

/// One rule for where things live, on macOS too (the `directories` crate would say ~/Library there): the cache
/// under XDG_CACHE_HOME or ~/.cache, the user's config under XDG_CONFIG_HOME or ~/.config. The bin/kamal shim
/// computes the same paths in sh.
#[test]
fn the_cache_and_the_user_config_follow_xdg_then_home_on_every_unix() {
    let server = Server::start(&fixtures().dir);
    let app = App::new(&Lock::new(server.url()));
    let home = tempfile::tempdir().unwrap();
    let dir = |extra: &[(&str, &str)]| {
        let mut l = Launcher::new(app.path())
            .env_remove("KAMAL_LAUNCHER_CACHE_DIR")
            .env("HOME", home.path())
            .args(["cache", "dir"]);
        for (k, v) in extra {
            l = l.env(k, v);
        }
        let out = l.run();
        assert_success(&out);
        out.stdout
    };
    assert_eq!(
        dir(&[]),
        format!("{}/.cache/kamal-launcher\n", home.path().display())
    );
    assert_eq!(
        dir(&[("XDG_CACHE_HOME", "/xdg/cache")]),
        "/xdg/cache/kamal-launcher\n"
    );
    // A relative XDG_CACHE_HOME is ignored, as the XDG spec says.
    assert_eq!(
        dir(&[("XDG_CACHE_HOME", "rel")]),
        format!("{}/.cache/kamal-launcher\n", home.path().display())
    );

    let config = home.path().join(".config/kamal-launcher/config.toml");
    fs::create_dir_all(config.parent().unwrap()).unwrap();
    fs::write(&config, "jobs = 0\n").unwrap();
    let out = Launcher::new(app.path())
        .env("HOME", home.path())
        .args(["cache", "key"])
        .run();
    failed_with(&out, 1, &[&format!("{}:1:", config.display())]);
}
