//! End-to-end tests of the launcher's foundation: finding and parsing the
//! lockfile, selecting kamal's closure, fetching and verifying it, installing
//! it into the cache, and exec'ing kamal, all against the fixture gems served
//! by a loopback rubygems.org look-alike.

use crate::support;

use support::{closure, closure_gems, entries, local_platform};

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::{
    App, Fault, Launcher, Lock, Output, Server, assert_failure, assert_success, clean_command,
    fixtures, sha256_hex,
};

/// Generous bound for waits on events (a cold run installs a C extension
/// before kamal prints anything).
const WAIT: Duration = Duration::from_secs(90);

/// `/gems/<file>` for every gem of the closure.
fn closure_gem_paths() -> BTreeSet<String> {
    closure_gems()
        .iter()
        .map(|g| format!("/gems/{}", g.file))
        .collect()
}

fn serve() -> Server {
    Server::start(&fixtures().dir)
}

/// A Rails-ish app whose lockfile points at `server`.
fn app_for(server: &Server) -> App {
    App::new(&Lock::new(server.url()))
}

fn run(launcher: &Launcher, args: &[&str]) -> Output {
    launcher.clone().args(args).run()
}

fn paths_with_prefix(server: &Server, prefix: &str) -> BTreeSet<String> {
    server
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.starts_with(prefix))
        .collect()
}

fn parse_json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("plan --json printed invalid JSON ({e}):\n{out}"))
}

/// `(name, version, platform)` of every gem in a `plan --json` document.
fn plan_gems(plan: &Value) -> Vec<(String, String, String)> {
    plan["gems"]
        .as_array()
        .unwrap_or_else(|| panic!("no gems array in {plan}"))
        .iter()
        .map(|g| {
            let field = |k: &str| {
                g[k].as_str()
                    .unwrap_or_else(|| panic!("gem without string {k}: {g}"))
                    .to_owned()
            };
            (field("name"), field("version"), field("platform"))
        })
        .collect()
}

fn expected_plan_gems() -> Vec<(String, String, String)> {
    closure()
        .into_iter()
        .map(|(n, v, p)| (n.to_owned(), v.to_owned(), p.to_owned()))
        .collect()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn plan_lockfile(plan: &Value) -> PathBuf {
    PathBuf::from(plan["lockfile"].as_str().expect("plan has a lockfile"))
}

/// A directory whose only program is `sh`: a PATH with no Ruby on it.
fn path_without_ruby() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("no-ruby-path-")
        .tempdir()
        .expect("create dir");
    std::os::unix::fs::symlink("/bin/sh", dir.path().join("sh")).expect("symlink sh");
    dir
}

/// Runs `program` (e.g. a symlink to the launcher) with the launcher's
/// environment and working directory.
fn run_program(launcher: &Launcher, program: &Path, args: &[&str]) -> Output {
    let mut cmd = launcher.command_for(program);
    cmd.args(args);
    support::spawn(cmd).wait()
}

/// Existing files named in `text` whose name ends in `.log`.
fn log_files_named_in(text: &str) -> Vec<PathBuf> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '`' | '\'' | '"' | ','))
        .map(|t| t.trim_end_matches(['.', ':', ';']))
        .filter(|t| t.ends_with(".log"))
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .collect()
}

fn as_refs(deps: &[(String, String)]) -> Vec<(&str, &str)> {
    deps.iter().map(|(n, r)| (n.as_str(), r.as_str())).collect()
}

// ---- 1. lockfile discovery ----

#[test]
fn discovery_walks_up_from_a_subdirectory() {
    let server = serve();
    let app = app_for(&server);
    let sub = app.path().join("config/deploy/hooks");
    fs::create_dir_all(&sub).expect("create subdir");
    let launcher = Launcher::new(&sub);

    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");

    let out = run(&launcher, &["plan", "--json", "--offline"]);
    assert_success(&out);
    let plan = parse_json(&out);
    assert!(
        same_file(&plan_lockfile(&plan), &app.lockfile_path()),
        "{out}"
    );
}

#[test]
fn discovery_uses_lockfile_option() {
    let server = serve();
    let app = app_for(&server);
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let launcher = Launcher::new(elsewhere.path());

    let lockfile = app.lockfile_path();
    let out = run(
        &launcher,
        &[
            "--lockfile",
            lockfile.to_str().unwrap(),
            "plan",
            "--json",
            "--offline",
        ],
    );
    assert_success(&out);
    assert!(
        same_file(&plan_lockfile(&parse_json(&out)), &lockfile),
        "{out}"
    );

    // A relative path is relative to the working directory.
    let sub = app.path().join("bin");
    fs::create_dir_all(&sub).expect("create bin");
    let out = run(
        &Launcher::new(&sub),
        &[
            "plan",
            "--json",
            "--offline",
            "--lockfile",
            "../Gemfile.lock",
        ],
    );
    assert_success(&out);
    assert!(
        same_file(&plan_lockfile(&parse_json(&out)), &lockfile),
        "{out}"
    );
}

#[test]
fn discovery_follows_bundle_gemfile_from_an_unrelated_directory() {
    let server = serve();
    let app = app_for(&server);
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let out = run(
        &Launcher::new(elsewhere.path()).env("BUNDLE_GEMFILE", app.path().join("Gemfile")),
        &["plan", "--json", "--offline"],
    );
    assert_success(&out);
    let plan = parse_json(&out);
    assert!(
        same_file(&plan_lockfile(&plan), &app.lockfile_path()),
        "{out}"
    );
    assert_eq!(plan_gems(&plan), expected_plan_gems());
}

#[test]
fn discovery_pairs_gems_rb_with_gems_locked() {
    let server = serve();
    let text = Lock::new(server.url()).render();
    let app = App::with_lockfile(&server.url(), "<<<<<<< HEAD\nnot the lockfile to read\n");
    app.write(
        "gems.rb",
        "source \"https://rubygems.org\"\ngem \"kamal\"\n",
    );
    app.write("gems.locked", &text);

    let elsewhere = tempfile::tempdir().expect("tempdir");
    let out = run(
        &Launcher::new(elsewhere.path()).env("BUNDLE_GEMFILE", app.path().join("gems.rb")),
        &["plan", "--json", "--offline"],
    );
    assert_success(&out);
    let plan = parse_json(&out);
    assert!(
        same_file(&plan_lockfile(&plan), &app.path().join("gems.locked")),
        "{out}"
    );
    assert_eq!(plan_gems(&plan), expected_plan_gems());
}

#[test]
fn discovery_without_any_lockfile_fails_and_suggests_the_option() {
    let empty = tempfile::tempdir().expect("tempdir");
    let dir = empty.path().canonicalize().expect("canonical tempdir");
    let launcher = Launcher::new(&dir);
    for args in [&["exec", "--", "version"][..], &["plan"][..]] {
        let out = run(&launcher, args);
        assert_eq!(out.code(), Some(1), "{out}");
        assert_eq!(out.stdout, "", "{out}");
        assert!(
            out.stderr.contains(dir.to_str().unwrap()),
            "stderr should name {}:\n{out}",
            dir.display()
        );
        assert!(out.stderr.contains("--lockfile"), "{out}");
    }
}

// ---- 2. parsing ----

#[test]
fn crlf_lockfile_works_end_to_end() {
    let server = serve();
    let lock = Lock::new(server.url()).crlf(true);
    assert!(lock.render().contains("\r\n"));
    let app = App::new(&lock);
    let launcher = Launcher::new(app.path());
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert_eq!(paths_with_prefix(&server, "/gems/"), closure_gem_paths());
}

/// Inserts `inserted` lines right after the first line equal to `after`;
/// returns the text and the 1-based number of the first inserted line.
fn insert_after(text: &str, after: &str, inserted: &[&str]) -> (String, usize) {
    let mut lines: Vec<&str> = text.split('\n').collect();
    let at = lines
        .iter()
        .position(|l| *l == after)
        .unwrap_or_else(|| panic!("no line {after:?} in:\n{text}"))
        + 1;
    for (i, line) in inserted.iter().enumerate() {
        lines.insert(at + i, line);
    }
    (lines.join("\n"), at + 1)
}

#[test]
fn malformed_line_is_reported_with_file_and_line() {
    let server = serve();
    let text = Lock::new(server.url()).render();
    let (broken, line) = insert_after(&text, "  specs:", &["    fixture_dep_a 1.2.0 (oops"]);
    let app = App::with_lockfile(&server.url(), &broken);
    let launcher = Launcher::new(app.path());
    for args in [&["exec", "--", "version"][..], &["plan", "--json"][..]] {
        let out = run(&launcher, args);
        assert_eq!(out.code(), Some(1), "{out}");
        assert_eq!(out.stdout, "", "{out}");
        assert!(
            out.stderr.contains(&format!("Gemfile.lock:{line}")),
            "stderr should contain `Gemfile.lock:{line}`:\n{out}"
        );
    }
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn merge_conflict_marker_is_reported_as_a_conflict() {
    let server = serve();
    let text = Lock::new(server.url()).render();
    let (broken, _) = insert_after(
        &text,
        "  specs:",
        &[
            "<<<<<<< HEAD",
            "    kamal (2.7.0)",
            "=======",
            "    kamal (2.8.0)",
            ">>>>>>> upgrade-kamal",
        ],
    );
    let app = App::with_lockfile(&server.url(), &broken);
    let out = run(&Launcher::new(app.path()), &["exec", "--", "version"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("Gemfile.lock"), "{out}");
    assert!(
        out.stderr.to_lowercase().contains("conflict"),
        "stderr should mention the merge conflict:\n{out}"
    );
    assert!(server.requests().is_empty());
}

// ---- 3. closure selection ----

#[test]
fn plan_lists_exactly_kamals_closure() {
    let server = serve();
    let app = app_for(&server);
    let out = run(&Launcher::new(app.path()), &["plan", "--json"]);
    assert_success(&out);
    let plan = parse_json(&out);
    assert_eq!(plan_gems(&plan), expected_plan_gems(), "{out}");
    for gem in plan["gems"].as_array().unwrap() {
        let name = gem["name"].as_str().unwrap();
        assert!(
            !["rails", "unbuildable_pg", "actionpack", "nokogiri"].contains(&name),
            "{name} is not in kamal's closure:\n{out}"
        );
    }
    assert!(!out.stdout.contains("unbuildable_pg"), "{out}");
    assert!(!out.stdout.contains("\"0.4.0\""), "{out}");
}

#[test]
fn exec_fetches_only_the_closure() {
    let server = serve();
    let lock = Lock::new(server.url());
    let text = lock.render();
    // The lockfile really does lock gems outside the closure, one of which
    // cannot be built and one of which the server does not have.
    assert!(text.contains("    unbuildable_pg (1.0.0)\n"));
    assert!(text.contains("    rails (7.2.2.1)\n"));
    let app = App::new(&lock);
    let out = run(&Launcher::new(app.path()), &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");

    let fetched = paths_with_prefix(&server, "/gems/");
    assert_eq!(fetched, closure_gem_paths());
    assert!(!fetched.iter().any(|p| p.contains("unbuildable_pg")));
    assert!(!fetched.contains("/gems/fixture_dep_b-0.4.0.gem"));
    assert!(!fetched.iter().any(|p| p.contains("rails")));
}

#[test]
fn force_ruby_platform_selects_the_ruby_variant() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path()).env("BUNDLE_FORCE_RUBY_PLATFORM", "true");

    let out = run(&launcher, &["plan", "--json"]);
    assert_success(&out);
    let native: Vec<_> = plan_gems(&parse_json(&out))
        .into_iter()
        .filter(|(n, _, _)| n == "fixture_native")
        .collect();
    assert_eq!(
        native,
        [(
            "fixture_native".to_owned(),
            "1.0.0".to_owned(),
            "ruby".to_owned()
        )]
    );

    let out = run(&launcher, &["exec", "--", "specs"]);
    assert_success(&out);
    assert!(out.stdout_lines().contains(&"native=ruby"), "{out}");
    assert!(
        out.stdout_lines().contains(&"fixture_native 1.0.0 ruby"),
        "{out}"
    );
    let fetched = paths_with_prefix(&server, "/gems/fixture_native");
    assert_eq!(
        fetched,
        BTreeSet::from(["/gems/fixture_native-1.0.0.gem".to_owned()])
    );
}

#[test]
fn gem_option_selects_another_root() {
    let server = serve();
    let app = app_for(&server);
    let out = run(
        &Launcher::new(app.path()),
        &["--gem", "fixture_dep_a", "plan", "--json"],
    );
    assert_success(&out);
    let plan = parse_json(&out);
    assert_eq!(
        plan_gems(&plan),
        [
            (
                "fixture_dep_a".to_owned(),
                "1.2.0".to_owned(),
                "ruby".to_owned()
            ),
            (
                "fixture_dep_b".to_owned(),
                "0.3.1".to_owned(),
                "ruby".to_owned()
            ),
        ],
        "{out}"
    );
}

#[test]
fn kamal_missing_from_the_lockfile_explains_how_to_add_it() {
    let server = serve();
    let lock = Lock::new(server.url())
        .remove_spec("kamal")
        .dependencies(&["rails (~> 7.2.2, >= 7.2.2.1)", "unbuildable_pg"]);
    assert!(!lock.render().contains("kamal"));
    let app = App::new(&lock);
    let launcher = Launcher::new(app.path());
    for args in [&["exec", "--", "version"][..], &["plan"][..]] {
        let out = run(&launcher, args);
        assert_eq!(out.code(), Some(1), "{out}");
        assert_eq!(out.stdout, "", "{out}");
        assert!(out.stderr.contains("kamal"), "{out}");
        assert!(
            out.stderr.contains("gem \"kamal\"") && out.stderr.contains("bundle lock"),
            "stderr should tell how to add kamal to the lockfile:\n{out}"
        );
    }
    assert!(server.requests().is_empty());
}

// ---- 4. fetch and verify ----

#[test]
fn with_checksums_no_index_is_requested() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    let out = run(&launcher, &["install"]);
    assert_success(&out);
    assert_eq!(paths_with_prefix(&server, "/info/"), BTreeSet::new());
    assert_eq!(paths_with_prefix(&server, "/gems/"), closure_gem_paths());
    assert!(
        !server.requests().iter().any(|r| r.path == "/versions"),
        "{:?}",
        server.requests()
    );
}

#[test]
fn without_checksums_each_info_file_is_fetched() {
    let server = serve();
    let lock = Lock::new(server.url()).with_checksums(false);
    assert!(!lock.render().contains("CHECKSUMS"));
    let app = App::new(&lock);
    let launcher = Launcher::new(app.path());
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");

    let expected: BTreeSet<String> = closure()
        .iter()
        .map(|(n, _, _)| format!("/info/{n}"))
        .collect();
    assert_eq!(paths_with_prefix(&server, "/info/"), expected);
    assert_eq!(paths_with_prefix(&server, "/gems/"), closure_gem_paths());
}

#[test]
fn tampered_gem_is_rejected_and_nothing_is_kept() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    let gem = fixtures().gem("fixture_dep_b", "0.3.1", "ruby");
    let path = format!("/gems/{}", gem.file);
    let tampered = b"these are not the bytes you locked\n".to_vec();
    server.set_fault(&path, Fault::Body(tampered.clone()));

    let out = run(&launcher, &["exec", "--", "version"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert!(
        server.count(&path) >= 1,
        "the tampered gem was never requested"
    );
    let url = format!("{}gems/{}", server.url(), gem.file);
    for needle in [
        "fixture_dep_b-0.3.1",
        url.as_str(),
        gem.sha256.as_str(),
        sha256_hex(&tampered).as_str(),
    ] {
        assert!(
            out.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{out}"
        );
    }

    let v1 = launcher.layout_root();
    assert_eq!(launcher.env_dirs(), Vec::<String>::new());
    let downloads = entries(&v1.join("downloads"));
    for sha in [gem.sha256.clone(), sha256_hex(&tampered)] {
        assert!(
            !downloads.iter().any(|d| d.contains(&sha)),
            "download cache keeps {sha}: {downloads:?}"
        );
    }
    let units = launcher.store_units();
    assert!(
        !units.iter().any(|u| u.starts_with("fixture_dep_b")),
        "store has {units:?}"
    );
    let leftovers: Vec<String> = entries(&v1.join("tmp"))
        .into_iter()
        .filter(|t| t.starts_with("download"))
        .collect();
    assert_eq!(leftovers, Vec::<String>::new(), "partial downloads left");

    server.clear_faults();
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert_eq!(launcher.env_dirs().len(), 1);
}

#[test]
fn wrong_lockfile_checksum_is_a_mismatch() {
    let server = serve();
    let wrong = "0".repeat(64);
    let lock = Lock::new(server.url()).checksum_override("fixture_dep_a", &wrong);
    let app = App::new(&lock);
    let launcher = Launcher::new(app.path());
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_eq!(out.code(), Some(1), "{out}");
    let real = &fixtures().gem("fixture_dep_a", "1.2.0", "ruby").sha256;
    for needle in ["fixture_dep_a-1.2.0", wrong.as_str(), real.as_str()] {
        assert!(
            out.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{out}"
        );
    }
    assert!(
        out.stderr.to_lowercase().contains("mismatch"),
        "stderr should call it a checksum mismatch:\n{out}"
    );
    assert_eq!(launcher.env_dirs(), Vec::<String>::new());
    assert!(
        !entries(&launcher.layout_root().join("downloads"))
            .iter()
            .any(|d| d.contains(real.as_str()))
    );
}

#[test]
fn gem_without_any_checksum_needs_allow_unverified() {
    let fx = fixtures();
    let mirror = fx.mirror();
    let info = mirror.path().join("info/fixture_dep_a");
    let text = fs::read_to_string(&info).expect("read info");
    let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("1.2.0 ")).collect();
    assert!(kept.len() < text.lines().count(), "{text}");
    fs::write(&info, kept.join("\n") + "\n").expect("write info");

    let server = Server::start(mirror.path());
    let app = App::new(&Lock::new(server.url()).with_checksums(false));
    let launcher = Launcher::new(app.path());

    let out = run(&launcher, &["exec", "--", "version"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert!(out.stderr.contains("fixture_dep_a"), "{out}");
    assert!(out.stderr.contains("--allow-unverified"), "{out}");
    assert_eq!(launcher.env_dirs(), Vec::<String>::new());
    assert!(
        !launcher
            .store_units()
            .iter()
            .any(|u| u.starts_with("fixture_dep_a"))
    );

    let out = run(&launcher, &["--allow-unverified", "exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert!(out.stderr.contains("warning"), "{out}");
    assert!(out.stderr.contains("fixture_dep_a"), "{out}");
    assert!(server.count("/gems/fixture_dep_a-1.2.0.gem") >= 1);
}

#[test]
fn per_source_mirror_is_used() {
    let server = serve();
    let app = App::new(&Lock::new("https://rubygems.org/"));
    let launcher =
        Launcher::new(app.path()).env("BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/", server.url());
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert_eq!(paths_with_prefix(&server, "/gems/"), closure_gem_paths());
}

#[test]
fn host_only_mirror_key_is_honoured_like_bundler() {
    // Bundler looks mirrors up by full URI, then by host (`Settings::Mirrors#fetch_valid_mirror_for` in
    // Bundler 2.3.15 and later), so `BUNDLE_MIRROR__RUBYGEMS__ORG` applies to https://rubygems.org/.
    let server = serve();
    let app = App::new(&Lock::new("https://rubygems.org/"));
    let launcher = Launcher::new(app.path()).env("BUNDLE_MIRROR__RUBYGEMS__ORG", server.url());
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n");
    assert!(
        server.count("/gems/kamal-2.7.0.gem") == 1,
        "{:?}",
        server.requests()
    );
    // A key for another host does not apply.
    let other = App::new(&Lock::new("https://rubygems.org/").with_checksums(false));
    let launcher =
        Launcher::new(other.path()).env("BUNDLE_MIRROR__GEMS__EXAMPLE__COM", server.url());
    let out = run(&launcher, &["plan", "--json"]);
    assert!(server.count("/info/kamal") == 0, "{out}");
}

#[test]
fn credentials_in_the_remote_work_and_never_leak() {
    let password = "pw-Sekr1t-4242";
    let server = serve();
    server.require_basic_auth("deploy", password);
    let lock = Lock::new(server.url_with_auth("deploy", password));
    let app = App::new(&lock);

    let launcher = Launcher::new(app.path());
    let out = run(&launcher, &["-v", "exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert!(!out.stderr.contains(password), "{out}");
    assert_eq!(paths_with_prefix(&server, "/gems/"), closure_gem_paths());
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.header("Authorization").is_some())
    );

    let out = run(&launcher, &["plan"]);
    assert_success(&out);
    assert!(!out.stdout.contains(password), "{out}");
    assert!(!out.stderr.contains(password), "{out}");

    // A failure that names URLs: a tampered gem, fresh cache, verbose.
    let gem = fixtures().gem("ostruct", "0.1.0", "ruby");
    server.set_fault(
        &format!("/gems/{}", gem.file),
        Fault::Body(b"tampered".to_vec()),
    );
    let out = run(&Launcher::new(app.path()), &["-v", "exec", "--", "version"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains(&gem.sha256), "{out}");
    assert!(
        out.stderr
            .contains(&format!("{}/gems/{}", server.addr(), gem.file)),
        "{out}"
    );
    assert!(!out.stderr.contains(password), "{out}");

    // Wrong credentials: refused by the server, and still not echoed.
    let wrong = "wrong-Pa55-777";
    let app = App::new(&Lock::new(server.url_with_auth("deploy", wrong)));
    let out = run(&Launcher::new(app.path()), &["-v", "exec", "--", "version"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("401"), "{out}");
    assert!(!out.stderr.contains(wrong), "{out}");
    assert!(!out.stderr.contains(password), "{out}");
}

// ---- 5. install ----

#[test]
fn install_prints_one_summary_line_and_second_install_is_offline() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    let out = run(&launcher, &["install"]);
    assert_success(&out);
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(
        out.stderr.lines().count(),
        1,
        "exactly one summary line:\n{out}"
    );
    assert!(out.stderr.contains("kamal"), "{out}");
    assert!(out.stderr.ends_with('\n'), "{out}");
    assert_eq!(launcher.env_dirs().len(), 1);

    let before = server.requests().len();
    assert!(before > 0);
    let out = run(&launcher, &["install"]);
    assert_success(&out);
    assert_eq!(out.stdout, "", "{out}");
    assert!(out.stderr.lines().count() <= 1, "{out}");
    assert_eq!(
        server.requests().len(),
        before,
        "second install made requests: {:?}",
        &server.requests()[before..]
    );
}

#[test]
fn locked_versions_and_the_c_extension_are_active() {
    let server = serve();
    let app = app_for(&server);
    let out = run(&Launcher::new(app.path()), &["exec", "--", "specs"]);
    assert_success(&out);
    let lines = out.stdout_lines();
    for line in [
        "ext=hello from C",
        "ostruct=0.1.0",
        "dep_b=0.3.1",
        &format!("native={}", local_platform()),
        "ostruct 0.1.0 ruby",
        "fixture_dep_b 0.3.1 ruby",
        "kamal 2.7.0 ruby",
    ] {
        assert!(lines.contains(&line), "missing {line:?}:\n{out}");
    }
    assert!(!out.stdout.contains("0.4.0"), "{out}");
    // The served-but-unlocked 0.4.0 was never even downloaded.
    assert_eq!(server.count("/gems/fixture_dep_b-0.4.0.gem"), 0);
}

#[test]
fn failing_native_build_keeps_a_log_and_no_environment() {
    let server = serve();
    let deps = support::kamal_deps_plus(("unbuildable_pg", ">= 1.0"));
    let lock = Lock::new(server.url()).set_deps("kamal", &as_refs(&deps));
    assert!(lock.render().contains("      unbuildable_pg (>= 1.0)\n"));
    let app = App::new(&lock);
    let launcher = Launcher::new(app.path());

    let out = run(&launcher, &["install"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("unbuildable_pg"), "{out}");
    let logs = log_files_named_in(&out.stderr);
    assert!(
        !logs.is_empty(),
        "stderr should name a kept log that exists:\n{out}"
    );
    assert!(
        logs.iter().any(|l| fs::read_to_string(l)
            .unwrap_or_default()
            .contains("pg_config")),
        "no named log mentions pg_config: {logs:?}\n{out}"
    );
    assert_eq!(launcher.env_dirs(), Vec::<String>::new());

    let out = run(&launcher, &["exec", "--", "version"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(launcher.env_dirs(), Vec::<String>::new());
}

#[test]
fn two_apps_with_the_same_closure_share_one_environment() {
    let server = serve();
    let lock = Lock::new(server.url());
    let first = App::new(&lock);
    let second = App::new(&lock);
    let one = Launcher::new(first.path());
    let two = Launcher::new(second.path()).cache_dir(one.cache_path());

    let out = run(&one, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n");
    let requests = server.requests().len();

    let out = run(&two, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n");
    assert_eq!(one.env_dirs().len(), 1, "{:?}", one.env_dirs());
    assert_eq!(server.requests().len(), requests);
}

// ---- 6. exec ----

#[test]
fn exec_output_status_and_arguments_are_kamals() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());

    let cold = run(&launcher, &["exec", "--", "version"]);
    assert_success(&cold);
    assert_eq!(cold.stdout, "2.7.0\n", "{cold}");

    let warm = run(&launcher, &["exec", "--", "version"]);
    assert_success(&warm);
    assert_eq!(warm.stdout, "2.7.0\n", "{warm}");
    assert_eq!(warm.stderr, "", "{warm}");
    assert_eq!(cold.stdout, warm.stdout);

    let out = run(&launcher, &["exec", "--", "exit", "7"]);
    assert_eq!(out.code(), Some(7), "{out}");
    assert_eq!(out.stdout, "exiting 7\n", "{out}");
    assert_eq!(out.stderr, "to-stderr\n", "{out}");

    let args = ["a b", "", "--flag", "quote\"d"];
    let mut argv = vec!["exec", "--", "argv"];
    argv.extend(args);
    let out = run(&launcher, &argv);
    assert_success(&out);
    assert_eq!(out.stdout, "a b\n\n--flag\nquote\"d\n", "{out}");
    assert_eq!(out.stderr, "", "{out}");

    let out = run(&launcher, &["exec", "--", "defined-bundler"]);
    assert_success(&out);
    assert_eq!(out.stdout, "no-bundler\n", "{out}");
}

#[test]
fn unknown_exe_lists_the_gems_executables() {
    let server = serve();
    let app = app_for(&server);
    let out = run(
        &Launcher::new(app.path()),
        &["--exe", "no-such-exe", "exec", "--", "version"],
    );
    assert_failure(&out);
    assert_eq!(out.stdout, "", "{out}");
    assert!(out.stderr.contains("no-such-exe"), "{out}");
    // "kamal" must appear as an executable, not only in the gem's or the
    // launcher's name.
    let rest = out
        .stderr
        .replace("kamal-launcher", "")
        .replace("kamal-2.7.0", "")
        .replace("kamal 2.7.0", "");
    assert!(
        rest.contains("kamal"),
        "stderr should list the executable `kamal`:\n{out}"
    );
}

#[test]
fn bundle_exec_environment_cannot_reach_kamal_but_reaches_its_children() {
    let server = serve();
    let app = app_for(&server);
    let gemfile = app.path().join("Gemfile");
    let gemfile_text = gemfile.to_str().unwrap();

    // Proof that the caller's settings are poisonous: plain Ruby dies.
    let home = tempfile::tempdir().expect("home");
    let mut plain = clean_command("ruby");
    plain
        .current_dir(app.path())
        .env("HOME", home.path())
        .env("RUBYOPT", "-rbundler/setup")
        .env("BUNDLE_GEMFILE", &gemfile)
        .args(["-e", "puts :alive"]);
    let out = support::spawn(plain).wait();
    assert_failure(&out);

    let launcher = Launcher::new(app.path())
        .env("RUBYOPT", "-rbundler/setup")
        .env("BUNDLE_GEMFILE", &gemfile);
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");

    let out = run(&launcher, &["exec", "--", "defined-bundler"]);
    assert_success(&out);
    assert_eq!(out.stdout, "no-bundler\n", "{out}");

    let names = ["RUBYOPT", "BUNDLE_GEMFILE", "GEM_HOME", "GEM_PATH"];
    let child_env = |launcher: &Launcher| {
        let mut args = vec!["exec", "--", "child-env"];
        args.extend(names);
        let out = run(launcher, &args);
        // The grandchild Ruby itself may die of the caller's RUBYOPT; only
        // what the hook's shell saw matters here.
        let lines: Vec<String> = out
            .stdout_lines()
            .iter()
            .take(names.len())
            .map(|l| (*l).to_owned())
            .collect();
        (lines, out)
    };
    let (lines, out) = child_env(&launcher);
    assert_eq!(
        lines,
        [
            "RUBYOPT=-rbundler/setup".to_owned(),
            format!("BUNDLE_GEMFILE={gemfile_text}"),
            "GEM_HOME unset".to_owned(),
            "GEM_PATH unset".to_owned(),
        ],
        "{out}"
    );

    let gem_home = tempfile::tempdir().expect("gem home");
    let gem_home_text = gem_home.path().to_str().unwrap().to_owned();
    let gem_path = format!("{gem_home_text}:/opt/caller/gems");
    let with_gem_vars = launcher
        .clone()
        .env("GEM_HOME", &gem_home_text)
        .env("GEM_PATH", &gem_path);
    let out = run(&with_gem_vars, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    let (lines, out) = child_env(&with_gem_vars);
    assert_eq!(
        lines,
        [
            "RUBYOPT=-rbundler/setup".to_owned(),
            format!("BUNDLE_GEMFILE={gemfile_text}"),
            format!("GEM_HOME={gem_home_text}"),
            format!("GEM_PATH={gem_path}"),
        ],
        "{out}"
    );
}

#[test]
fn signal_kills_kamal_itself() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path()).args(["exec", "--", "sleep-then-exit"]);
    let mut running = launcher.spawn();
    running.wait_for_stdout("ready\n", WAIT);
    running.signal("TERM");
    let out = running.wait_timeout(WAIT);
    assert_eq!(out.signal(), Some(15), "{out}");
    assert_eq!(out.code(), None, "{out}");
}

// ---- 7. argv[0] ----

#[test]
fn invoked_as_kamal_behaves_as_exec() {
    let server = serve();
    let app = app_for(&server);
    let bin = tempfile::tempdir().expect("bin dir");
    let kamal = bin.path().join("kamal");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kamal-launcher"), &kamal).expect("symlink");
    let launcher = Launcher::new(app.path());

    let out = run_program(&launcher, &kamal, &["version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");

    let args = ["argv", "deploy", "-d", "x", "--version=1", "-v", "--help"];
    let out = run_program(&launcher, &kamal, &args);
    assert_success(&out);
    assert_eq!(out.stdout_lines(), args[1..], "{out}");
}

// ---- 8. no Ruby ----

#[test]
fn no_ruby_on_path_says_how_to_install_it() {
    let server = serve();
    let app = app_for(&server);
    let no_ruby = path_without_ruby();
    let out = run(
        &Launcher::new(app.path()).env("PATH", no_ruby.path()),
        &["exec", "--", "version"],
    );
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    let lower = out.stderr.to_lowercase();
    assert!(lower.contains("ruby"), "{out}");
    assert!(
        lower.contains("apt-get install") || lower.contains("install ruby"),
        "stderr should say how to install Ruby:\n{out}"
    );
    assert!(server.requests().is_empty());
}

#[test]
fn missing_configured_ruby_is_named() {
    let server = serve();
    let app = app_for(&server);
    let out = run(
        &Launcher::new(app.path()).env("KAMAL_LAUNCHER_RUBY", "/nonexistent"),
        &["exec", "--", "version"],
    );
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert!(out.stderr.contains("/nonexistent"), "{out}");
}

#[test]
fn offline_plan_needs_neither_ruby_nor_network() {
    let server = serve();
    let app = app_for(&server);
    drop(server);
    let no_ruby = path_without_ruby();
    let out = run(
        &Launcher::new(app.path()).env("PATH", no_ruby.path()),
        &["plan", "--json", "--offline"],
    );
    assert_success(&out);
    let plan = parse_json(&out);
    assert_eq!(plan["platform"].as_str(), Some(local_platform()), "{out}");
    assert_eq!(plan_gems(&plan), expected_plan_gems(), "{out}");
    for (entry, gem) in plan["gems"].as_array().unwrap().iter().zip(closure_gems()) {
        assert_eq!(entry["sha256"].as_str(), Some(gem.sha256.as_str()), "{out}");
    }
}

// ---- 9. the warm path ----

#[test]
fn warm_path_makes_no_requests_even_without_a_server() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    let out = run(&launcher, &["install"]);
    assert_success(&out);
    let before = server.requests().len();
    assert!(before > 0);

    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert_eq!(
        server.requests().len(),
        before,
        "warm exec made requests: {:?}",
        &server.requests()[before..]
    );

    drop(server);
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert_eq!(out.stderr, "", "{out}");
}

// ---- 10. plan output ----

#[test]
fn plan_table_has_a_header_and_a_row_per_gem() {
    let server = serve();
    let app = app_for(&server);
    let out = run(&Launcher::new(app.path()), &["plan"]);
    assert_success(&out);
    let lines = out.stdout_lines();
    let header = lines
        .iter()
        .position(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.len() >= 2
                && cells[0].eq_ignore_ascii_case("gem")
                && cells[1].eq_ignore_ascii_case("version")
        })
        .unwrap_or_else(|| panic!("no header row:\n{out}"));
    let rows: Vec<Vec<&str>> = lines[header + 1..]
        .iter()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), closure().len(), "{out}");
    // The version as the lockfile writes it: with the platform, for a platform gem.
    let mut seen: Vec<(&str, String)> = rows
        .iter()
        .map(|cells| {
            assert!(cells.len() >= 3, "short row {cells:?}:\n{out}");
            (cells[0], cells[1].to_string())
        })
        .collect();
    seen.sort();
    let locked: Vec<(&str, String)> = closure()
        .into_iter()
        .map(|(name, version, platform)| match platform {
            "ruby" => (name, version.to_string()),
            _ => (name, format!("{version}-{platform}")),
        })
        .collect();
    assert_eq!(seen, locked, "{out}");
}

#[test]
fn plan_json_is_stable_and_sorted() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    let first = run(&launcher, &["plan", "--json"]);
    assert_success(&first);
    let second = run(&launcher, &["plan", "--json"]);
    assert_success(&second);
    assert_eq!(first.stdout, second.stdout);

    let plan = parse_json(&first);
    let gems = plan["gems"].as_array().expect("gems array");
    let names: Vec<&str> = gems.iter().map(|g| g["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "{first}");
    for (gem, fixture) in gems.iter().zip(closure_gems()) {
        for key in ["name", "version", "platform", "source", "sha256"] {
            assert!(gem[key].is_string(), "{key} missing in {gem}");
        }
        assert_eq!(gem["source"].as_str(), Some(server.url().as_str()), "{gem}");
        assert_eq!(gem["sha256"].as_str(), Some(fixture.sha256.as_str()));
    }
}

#[test]
fn installed_gems_look_properly_installed_to_rubygems() {
    // RubyGems warns "Ignoring … because its extensions are not built" whenever it scans a gem whose
    // extensions are not where this Ruby expects them; scan every installed unit as RubyGems itself would.
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    assert_success(&run(&launcher, &["install"]));
    let store = launcher.layout_root().join("store");
    let units: Vec<String> = entries(&store)
        .into_iter()
        .flat_map(|abi| {
            let abi_dir = store.join(&abi);
            entries(&abi_dir)
                .into_iter()
                .map(move |u| abi_dir.join(u).display().to_string())
        })
        .collect();
    assert_eq!(units.len(), closure().len(), "{units:?}");
    let out = clean_command("ruby")
        .env("GEM_HOME", launcher.home_path())
        .env("GEM_PATH", units.join(":"))
        .args([
            "-e",
            "Gem::Specification.each { |s| puts \"missing #{s.full_name}\" if s.missing_extensions? }; \
             require 'fixture_ext'; puts FixtureExt.hello",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "hello from C\n", "{stderr}");
    assert!(!stderr.contains("Ignoring"), "{stderr}");
    // And the exec'd kamal, which activates them all, prints nothing but its own output.
    let out = run(&launcher, &["exec", "--", "specs"]);
    assert_success(&out);
    assert_eq!(out.stderr, "", "{out}");
}

#[test]
fn git_sourced_gems_are_planned_and_need_the_network_to_install() {
    let server = serve();
    let lock = Lock::new(server.url()).with_checksums(false);
    let mut text = lock.render();
    // Move fixture_dep_b into a GIT source, as `gem "fixture_dep_b", github: …` would lock it.
    text = text.replace("    fixture_dep_b (0.3.1)\n", "");
    text = format!(
        "GIT\n  remote: https://github.com/example/fixture_dep_b.git\n  revision: 0123456789abcdef0123456789abcdef01234567\n  specs:\n    fixture_dep_b (0.3.1)\n\n{text}"
    );
    let app = App::with_lockfile(&server.url(), &text);
    let launcher = Launcher::new(app.path());
    let out = run(&launcher, &["plan", "--json", "--offline"]);
    assert_success(&out);
    let plan = parse_json(&out);
    let dep_b = plan["gems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "fixture_dep_b")
        .expect("fixture_dep_b in the plan");
    assert_eq!(dep_b["source_type"], "git");
    assert_eq!(
        dep_b["source"],
        "https://github.com/example/fixture_dep_b.git"
    );
    assert_eq!(
        dep_b["revision"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    // Installing and running it is tests/suite/sources.rs's subject; offline, the missing checkout is named first.
    let out = run(&launcher, &["--offline", "exec", "--", "version"]);
    assert_failure(&out);
    assert!(out.stderr.contains("fixture_dep_b-0.3.1"), "{out}");
    assert!(
        out.stderr
            .contains("https://github.com/example/fixture_dep_b.git"),
        "{out}"
    );
    assert_eq!(
        server.count("/gems/kamal-2.7.0.gem"),
        0,
        "nothing is fetched before refusing"
    );
    assert!(launcher.env_dirs().is_empty());
}
