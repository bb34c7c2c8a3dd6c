//! End-to-end tests of the cache: many launchers sharing it at once, crashes and Ctrl-C in the middle of a
//! download or an install, offline use, the CI commands (`cache key`, `cache dir`), a read-only cache,
//! maintenance (`cache prune`, `cache clean`), configuration files and the progress output.
//!
//! Every test has its own cache directory (the `Launcher` builder creates one) and its own loopback server,
//! and synchronises on events (the server's request log, stalled responses, output text), never on time.

use crate::support;

use support::nobody::{NOBODY, add_mode, as_nobody, launcher_for_others};
use support::{closure, closure_gems, entries};

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use support::{
    App, Fault, GemFile, Launcher, Lock, LockedSpec, Output, Running, Server, assert_success,
    fixtures, sha256_hex,
};

/// Generous bound for waits on events (a cold run builds a C extension first).
const WAIT: Duration = Duration::from_secs(90);

const KAMAL_GEM: &str = "/gems/kamal-2.7.0.gem";

// ---- helpers ----

fn gem_path(gem: &GemFile) -> String {
    format!("/gems/{}", gem.file)
}

fn dep_b_040() -> &'static GemFile {
    fixtures().gem("fixture_dep_b", "0.4.0", "ruby")
}

fn serve() -> Server {
    Server::start(&fixtures().dir)
}

/// A Rails-ish app whose lockfile points at `server`.
fn app_for(server: &Server) -> App {
    App::new(&Lock::new(server.url()))
}

/// The usual lockfile, except that fixture_dep_b is locked at 0.4.0 (with its real checksum), which
/// fixture_dep_a's `~> 0.3` allows.
fn lock_with_dep_b_040(remote: &str) -> Lock {
    let gem = dep_b_040();
    Lock::new(remote)
        .remove_spec("fixture_dep_b")
        .add_spec(LockedSpec {
            name: gem.name.clone(),
            version: gem.version.clone(),
            platform: gem.platform.clone(),
            deps: Vec::new(),
            sha256: gem.sha256.clone(),
            served: true,
        })
        .checksum_override("fixture_dep_b", &gem.sha256)
}

fn run(launcher: &Launcher, args: &[&str]) -> Output {
    launcher.clone().args(args).run()
}

/// How many times each `.gem` was requested.
fn gem_fetches(server: &Server) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in server.requests() {
        if r.path.ends_with(".gem") {
            *counts.entry(r.path).or_insert(0) += 1;
        }
    }
    counts
}

/// Every path in `paths`, once.
fn once<'a>(paths: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, usize> {
    paths.into_iter().map(|p| (p.to_owned(), 1)).collect()
}

fn tmp_entries(launcher: &Launcher) -> Vec<String> {
    entries(&launcher.layout_root().join("tmp"))
}

fn downloads(launcher: &Launcher) -> Vec<String> {
    entries(&launcher.layout_root().join("downloads"))
}

/// Removes every environment (so the next run takes the cold path).
fn remove_envs(launcher: &Launcher) {
    for env in launcher.env_dirs() {
        fs::remove_dir_all(launcher.layout_root().join("envs").join(env)).expect("remove env");
    }
}

fn remove_store(launcher: &Launcher) {
    let store = launcher.layout_root().join("store");
    if store.exists() {
        fs::remove_dir_all(store).expect("remove store");
    }
}

/// The single environment's directory.
fn the_env(launcher: &Launcher) -> PathBuf {
    let envs = launcher.env_dirs();
    assert_eq!(envs.len(), 1, "expected one environment: {envs:?}");
    launcher.layout_root().join("envs").join(&envs[0])
}

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("mtime of {}: {e}", path.display()))
}

fn set_mtime(path: &Path, when: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

fn days_ago(days: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(days * 86_400)
}

/// Every download is complete: named after its own SHA-256.
fn assert_downloads_verified(launcher: &Launcher) {
    let dir = launcher.layout_root().join("downloads");
    for name in downloads(launcher) {
        let stem = name
            .strip_suffix(".gem")
            .unwrap_or_else(|| panic!("unexpected file in downloads: {name}"));
        let bytes = fs::read(dir.join(&name)).expect("read download");
        assert_eq!(sha256_hex(&bytes), stem, "download {name} is not complete");
    }
}

/// Every store unit is a finished install (RubyGems wrote its specification last).
fn assert_units_complete(launcher: &Launcher) {
    for unit in launcher.store_unit_dirs() {
        let specs = entries(&unit.join("specifications"));
        assert!(
            specs.iter().any(|s| s.ends_with(".gemspec")),
            "half-installed store unit {} (specifications: {specs:?})",
            unit.display()
        );
    }
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

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize()
        .unwrap_or_else(|e| panic!("canonicalize {}: {e}", path.display()))
}

/// Runs `cache dir` and returns the one line it printed.
fn cache_dir_of(launcher: &Launcher) -> String {
    let out = run(launcher, &["cache", "dir"]);
    assert_success(&out);
    assert_eq!(out.stdout.lines().count(), 1, "{out}");
    out.stdout.trim_end_matches('\n').to_owned()
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

// ---- 1. concurrency ----

#[test]
fn sixteen_launchers_at_once_on_an_empty_cache_install_once() {
    let server = serve();
    let app = app_for(&server);
    let base = Launcher::new(app.path()).args(["exec", "--", "version"]);
    // All started before any is waited for; clones share the cache directory.
    let running: Vec<Running> = (0..16).map(|_| base.spawn()).collect();
    for r in running {
        let out = r.wait_timeout(WAIT);
        assert_success(&out);
        assert_eq!(out.stdout, "2.7.0\n", "{out}");
    }

    let paths: Vec<String> = closure_gems().into_iter().map(gem_path).collect();
    assert_eq!(
        gem_fetches(&server),
        once(paths.iter().map(String::as_str)),
        "each .gem must be downloaded exactly once"
    );
    assert_eq!(base.env_dirs().len(), 1, "{:?}", base.env_dirs());
    assert_eq!(base.store_units().len(), closure().len());
    assert_eq!(
        tmp_entries(&base),
        Vec::<String>::new(),
        "temporary areas left in v2/tmp after every launcher exited"
    );
}

#[test]
fn eight_launchers_for_two_lockfiles_share_the_common_gems() {
    let server = serve();
    let app_a = App::new(&Lock::new(server.url()));
    let app_b = App::new(&lock_with_dep_b_040(&server.url()));
    assert!(
        fs::read_to_string(app_b.lockfile_path())
            .unwrap()
            .contains("    fixture_dep_b (0.4.0)\n")
    );
    let a = Launcher::new(app_a.path()).args(["exec", "--", "version"]);
    let b = Launcher::new(app_b.path())
        .cache_dir(a.cache_path())
        .args(["exec", "--", "version"]);
    let running: Vec<Running> = (0..4).flat_map(|_| [a.spawn(), b.spawn()]).collect();
    for r in running {
        let out = r.wait_timeout(WAIT);
        assert_success(&out);
        assert_eq!(out.stdout, "2.7.0\n", "{out}");
    }

    let mut paths: Vec<String> = closure_gems().into_iter().map(gem_path).collect();
    paths.push(gem_path(dep_b_040()));
    assert_eq!(
        gem_fetches(&server),
        once(paths.iter().map(String::as_str)),
        "each .gem must be downloaded exactly once"
    );
    assert_eq!(a.env_dirs().len(), 2, "{:?}", a.env_dirs());
    let units = a.store_units();
    assert_eq!(units.len(), 7, "6 shared + 1 distinct gem: {units:?}");
    for (name, version, platform) in closure() {
        let full = if platform == "ruby" {
            format!("{name}-{version}-")
        } else {
            format!("{name}-{version}-{platform}-")
        };
        assert_eq!(
            units.iter().filter(|u| u.starts_with(&full)).count(),
            1,
            "{full}: {units:?}"
        );
    }
    assert_eq!(
        units
            .iter()
            .filter(|u| u.starts_with("fixture_dep_b-0.4.0-"))
            .count(),
        1,
        "{units:?}"
    );
    assert_eq!(tmp_entries(&a), Vec::<String>::new());

    // Each environment activates its own lockfile's versions.
    let base_b = Launcher::new(app_b.path()).cache_dir(a.cache_path());
    let out = run(&base_b, &["exec", "--", "specs"]);
    assert_success(&out);
    assert!(out.stdout_lines().contains(&"dep_b=0.4.0"), "{out}");
    let base_a = Launcher::new(app_a.path()).cache_dir(a.cache_path());
    let out = run(&base_a, &["exec", "--", "specs"]);
    assert_success(&out);
    assert!(out.stdout_lines().contains(&"dep_b=0.3.1"), "{out}");
}

#[test]
fn warm_exec_that_probes_ruby_leaves_no_temporary_area() {
    // The Ruby probe memo is written through the process's temporary area; a run that then finds the
    // environment installed (the warm path) must not leave that area behind when it execs kamal. With
    // many launchers started at once this happens to every launcher that loses the race to install.
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    assert_success(&run(&launcher, &["install"]));
    assert_eq!(tmp_entries(&launcher), Vec::<String>::new());
    let rubies = launcher.layout_root().join("rubies");
    assert!(!entries(&rubies).is_empty(), "no Ruby probe memo was kept");
    fs::remove_dir_all(&rubies).expect("remove probe memos");

    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert!(!entries(&rubies).is_empty(), "the probe memo was not saved");
    assert_eq!(
        tmp_entries(&launcher),
        Vec::<String>::new(),
        "a warm exec left its temporary area in v2/tmp"
    );
}

// ---- 1b. the install pipeline ----

/// Polls the file system (an event: a directory appearing) until `done` holds or `timeout` passes.
fn wait_for_files(timeout: Duration, what: &str, done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn installing_starts_while_other_gems_still_download() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path()).env("BUNDLE_TIMEOUT", "300");
    let ostruct = "/gems/ostruct-0.1.0.gem";
    server.set_fault(ostruct, Fault::StallAfter(100));

    let running = launcher.clone().args(["-v", "install"]).spawn();
    server.wait_for_stalled(1, WAIT);
    // ostruct cannot finish before the release below, yet gems fetched meanwhile are installed into the store.
    wait_for_files(
        WAIT,
        "fixture_ext in the store while ostruct downloads",
        || {
            launcher
                .store_units()
                .iter()
                .any(|u| u.starts_with("fixture_ext-1.0.1-"))
        },
    );
    assert!(
        !launcher
            .store_units()
            .iter()
            .any(|u| u.starts_with("ostruct-")),
        "ostruct was installed before its download finished"
    );
    server.clear_faults();
    server.release();
    let out = running.wait_timeout(WAIT);
    assert_success(&out);
    assert_eq!(server.count(ostruct), 1, "{out}");
    assert_eq!(launcher.store_units().len(), closure().len(), "{out}");
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
}

#[test]
fn gems_with_native_extensions_are_installed_first() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    assert_success(&run(&launcher, &["install"]));
    // Downloads stay cached: every gem is ready at once, and one install slot makes the order visible.
    remove_envs(&launcher);
    fs::remove_dir_all(launcher.layout_root().join("store")).unwrap();
    let out = run(&launcher, &["-v", "--jobs", "1", "--offline", "install"]);
    assert_success(&out);
    let order: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("Installing "))
        .collect();
    assert_eq!(order.len(), closure().len(), "{out}");
    assert_eq!(order[0], "fixture_ext-1.0.1", "{out}");
    // The others keep the lockfile's order.
    let mut rest = order[1..].to_vec();
    rest.sort();
    assert_eq!(rest, order[1..], "{out}");
}

// ---- 2. crashes ----

#[test]
fn kill_9_mid_download_is_swept_and_the_next_run_succeeds() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    server.set_fault(KAMAL_GEM, Fault::StallAfter(1000));

    let running = launcher.clone().arg("install").spawn();
    server.wait_for_stalled(1, WAIT);
    // The partial download lives in the run's private temporary area.
    let areas = tmp_entries(&launcher);
    assert!(
        areas.iter().any(|a| a.ends_with(".lock")),
        "no temporary area while downloading: {areas:?}"
    );
    running.signal_group("KILL");
    let out = running.wait_timeout(WAIT);
    assert_eq!(out.signal(), Some(9), "{out}");
    // The installer (already installing what has arrived) is not in the launcher's process group: the area
    // stays locked until it has stopped.
    wait_for_files(WAIT, "the killed run's installer to stop", || {
        areas_unlocked(&launcher)
    });
    server.clear_faults();
    server.release();
    assert!(!tmp_entries(&launcher).is_empty(), "nothing left to sweep");

    let out = run(&launcher, &["install"]);
    assert_success(&out);
    assert_eq!(
        tmp_entries(&launcher),
        Vec::<String>::new(),
        "the killed run's temporary area was not swept"
    );
    assert_downloads_verified(&launcher);
    let expected: BTreeSet<String> = closure_gems()
        .iter()
        .map(|g| format!("{}.gem", g.sha256))
        .collect();
    assert_eq!(
        downloads(&launcher).into_iter().collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(launcher.env_dirs().len(), 1);
    assert_units_complete(&launcher);
}

#[test]
fn kill_9_mid_install_is_swept_and_the_next_run_succeeds() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());

    let mut running = launcher.clone().args(["-v", "install"]).spawn();
    // Printed when the installer starts building the C extension of fixture_ext.
    running.wait_for_stderr("Installing fixture_ext-1.0.1", WAIT);
    running.signal_group("KILL");
    let out = running.wait_timeout(WAIT);
    assert_eq!(out.signal(), Some(9), "{out}");
    // The installer leads a process group of its own, which the KILL did not reach: it stops when its stdin
    // closes, and until it and its builds are gone the area stays locked (they share the lock), unswept.
    wait_for_files(WAIT, "the killed run's installer to stop", || {
        areas_unlocked(&launcher)
    });
    assert_eq!(launcher.env_dirs(), Vec::<String>::new(), "{out}");
    // Killed while fixture_ext was being built, so it never reached the store; what did is complete.
    let units = launcher.store_units();
    assert!(
        !units.iter().any(|u| u.starts_with("fixture_ext-")),
        "fixture_ext was installed before the kill landed: {units:?}"
    );
    assert_units_complete(&launcher);
    assert!(!tmp_entries(&launcher).is_empty(), "nothing left to sweep");

    let out = run(&launcher, &["install"]);
    assert_success(&out);
    let out = run(&launcher, &["exec", "--", "specs"]);
    assert_success(&out);
    assert!(out.stdout_lines().contains(&"ext=hello from C"), "{out}");
    assert_eq!(
        tmp_entries(&launcher),
        Vec::<String>::new(),
        "the killed run's temporary area was not swept"
    );
    assert_eq!(launcher.store_units().len(), closure().len());
    assert_units_complete(&launcher);
    assert_downloads_verified(&launcher);
}

/// Whether no process holds the lock of a temporary area (its launcher and the children sharing it are gone).
fn areas_unlocked(launcher: &Launcher) -> bool {
    let tmp = launcher.layout_root().join("tmp");
    tmp_entries(launcher)
        .iter()
        .filter(|name| name.ends_with(".lock"))
        .all(|name| {
            fs::File::options()
                .write(true)
                .open(tmp.join(name))
                .is_ok_and(|f| f.try_lock().is_ok())
        })
}

/// Pids of `parent`'s children named `comm`, from /proc.
fn children_named(parent: u32, comm: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces, so split after its closing parenthesis.
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let ppid = rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) && head.ends_with(&format!("({comm}")) {
            found.extend(head.split(' ').next().and_then(|p| p.parse::<u32>().ok()));
        }
    }
    found
}

/// Whether a process is gone (or a zombie nobody will reap until its parent's own end).
fn is_gone(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

#[test]
fn a_killed_launcher_stops_its_installer_instead_of_letting_it_finish() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path()).env("BUNDLE_TIMEOUT", "300");
    // ostruct's download never ends, so the launcher is still feeding the installer when it is killed.
    server.set_fault("/gems/ostruct-0.1.0.gem", Fault::StallAfter(100));
    let mut running = launcher
        .clone()
        .args(["-v", "--jobs", "1", "install"])
        .spawn();
    server.wait_for_stalled(1, WAIT);
    // With one slot, fixture_ext's native build is what the installer is doing now (it goes first).
    running.wait_for_stderr("Installing fixture_ext-1.0.1", WAIT);
    let installers = children_named(running.pid(), "ruby");
    assert_eq!(installers.len(), 1, "{installers:?}");
    running.signal("KILL");
    let out = running.wait_timeout(WAIT);
    assert_eq!(out.signal(), Some(9), "{out}");
    wait_for_files(WAIT, "the installer to exit", || is_gone(installers[0]));
    // Its stdin closed without the launcher's "end": it stopped the build rather than finishing the gem into a
    // temporary area nobody will use.
    let finished: Vec<String> = tmp_entries(&launcher)
        .iter()
        .flat_map(|area| {
            let area = launcher.layout_root().join("tmp").join(area);
            entries(&area).into_iter().map(move |unit| {
                area.join(unit)
                    .join("specifications/fixture_ext-1.0.1.gemspec")
            })
        })
        .filter(|spec| spec.exists())
        .map(|spec| spec.display().to_string())
        .collect();
    assert_eq!(finished, Vec::<String>::new(), "{out}");
    server.clear_faults();
    server.release();
    let out = run(&launcher, &["install"]);
    assert_success(&out);
    assert_eq!(tmp_entries(&launcher), Vec::<String>::new(), "{out}");
    assert_units_complete(&launcher);
}

// ---- 3. Ctrl-C ----

#[test]
fn ctrl_c_exits_130_and_removes_the_temporary_area_at_once() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    server.set_fault(KAMAL_GEM, Fault::StallAfter(1000));

    let running = launcher.clone().arg("install").spawn();
    server.wait_for_stalled(1, WAIT);
    assert!(!tmp_entries(&launcher).is_empty());
    running.signal("INT");
    let out = running.wait_timeout(WAIT);
    assert_eq!(out.code(), Some(130), "{out}");
    // No later launcher has swept: the interrupted run cleaned up after itself.
    assert_eq!(tmp_entries(&launcher), Vec::<String>::new(), "{out}");
    assert_eq!(launcher.env_dirs(), Vec::<String>::new());
    assert_downloads_verified(&launcher);
}

// ---- 4. offline ----

fn assert_offline_failure(out: &Output) {
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    for gem in closure_gems() {
        assert!(
            out.stderr.contains(&gem.full_name()),
            "stderr should list the missing {}:\n{out}",
            gem.full_name()
        );
    }
    assert!(
        out.stderr.contains("kamal-launcher install"),
        "stderr should say how to fill the cache:\n{out}"
    );
}

#[test]
fn offline_with_an_empty_cache_lists_the_missing_gems() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());

    let out = run(&launcher, &["--offline", "exec", "--", "version"]);
    assert_offline_failure(&out);
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    let out = run(
        &launcher.clone().env("KAMAL_LAUNCHER_OFFLINE", "1"),
        &["exec", "--", "version"],
    );
    assert_offline_failure(&out);
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    assert_eq!(launcher.env_dirs(), Vec::<String>::new());
    assert_eq!(tmp_entries(&launcher), Vec::<String>::new());
}

#[test]
fn offline_installs_from_cached_downloads() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    assert_success(&run(&launcher, &["install"]));
    server.clear_log();

    remove_envs(&launcher);
    let out = run(&launcher, &["--offline", "exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert_eq!(launcher.env_dirs().len(), 1);

    // Also when the installed gems are gone: they are rebuilt from the downloads.
    remove_envs(&launcher);
    remove_store(&launcher);
    let out = run(&launcher, &["--offline", "exec", "--", "specs"]);
    assert_success(&out);
    assert!(out.stdout_lines().contains(&"ext=hello from C"), "{out}");
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn offline_without_checksums_uses_the_cached_compact_index() {
    let server = serve();
    let lock = Lock::new(server.url()).with_checksums(false);
    assert!(!lock.render().contains("CHECKSUMS"));
    let app = App::new(&lock);
    let launcher = Launcher::new(app.path());
    assert_success(&run(&launcher, &["install"]));
    assert!(server.count("/info/kamal") >= 1, "the index was not used");
    server.clear_log();

    remove_envs(&launcher);
    remove_store(&launcher);
    let out = run(&launcher, &["--offline", "exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn a_partly_cached_closure_fetches_only_what_is_missing() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    assert_success(&run(&launcher, &["install"]));
    let missing = fixtures().gem("fixture_dep_a", "1.2.0", "ruby");
    fs::remove_file(
        launcher
            .layout_root()
            .join("downloads")
            .join(format!("{}.gem", missing.sha256)),
    )
    .expect("remove one download");
    remove_envs(&launcher);
    remove_store(&launcher);
    server.clear_log();

    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, [gem_path(missing)]);
}

// ---- 5. the warm path ----

#[test]
fn warm_path_needs_no_server() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    assert_success(&run(&launcher, &["install"]));
    server.clear_log();

    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    drop(server);
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert_eq!(out.stderr, "", "{out}");
}

// ---- 6. cache key ----

#[test]
fn cache_key_follows_exactly_the_closure() {
    let server = serve();
    let remote = server.url();
    // Neither a server nor Ruby is needed.
    drop(server);
    let no_ruby = path_without_ruby();
    let key = |lock: &Lock| -> String {
        let app = App::new(lock);
        let out = run(
            &Launcher::new(app.path()).env("PATH", no_ruby.path()),
            &["cache", "key"],
        );
        assert_success(&out);
        let lines = out.stdout_lines();
        assert_eq!(lines.len(), 1, "one line:\n{out}");
        assert!(!lines[0].trim().is_empty(), "empty key:\n{out}");
        assert!(out.stdout.ends_with('\n'), "{out}");
        lines[0].to_owned()
    };

    let base = Lock::new(remote.as_str());
    let first = key(&base);
    assert_eq!(key(&base), first, "same lockfile in another app directory");

    let changed = [
        ("dep_b locked at 0.4.0", lock_with_dep_b_040(&remote)),
        (
            "dep_b's checksum",
            base.clone()
                .checksum_override("fixture_dep_b", &"ab".repeat(32)),
        ),
    ];
    for (what, lock) in changed {
        assert_ne!(key(&lock), first, "key unchanged after changing {what}");
    }

    let mut rails = base
        .specs()
        .into_iter()
        .find(|s| s.name == "rails")
        .expect("rails is locked");
    rails.version = "7.2.2.2".to_owned();
    let unchanged = [
        (
            "rails' version",
            base.clone().remove_spec("rails").add_spec(rails),
        ),
        (
            "unbuildable_pg's checksum",
            base.clone()
                .checksum_override("unbuildable_pg", &"cd".repeat(32)),
        ),
    ];
    for (what, lock) in unchanged {
        assert!(lock.render() != base.render());
        assert_eq!(key(&lock), first, "key changed after changing {what}");
    }
}

// ---- 7. cache dir ----

#[test]
fn cache_dir_prints_the_configured_directory() {
    let server = serve();
    let app = app_for(&server);
    let app_dir = canonical(app.path());
    let launcher = Launcher::new(&app_dir);

    // From the environment (the Launcher sets KAMAL_LAUNCHER_CACHE_DIR).
    assert_eq!(cache_dir_of(&launcher), shown(launcher.cache_path()));
    // From the flag, absolute or relative to the working directory.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let flag = elsewhere.path().join("flag-cache");
    assert_eq!(
        cache_dir_of(&launcher.clone().arg("--cache-dir").arg(&flag)),
        shown(&flag)
    );
    assert_eq!(
        cache_dir_of(&launcher.clone().args(["--cache-dir", "rel-cache"])),
        shown(&app_dir.join("rel-cache"))
    );

    let no_env = launcher.clone().env_remove("KAMAL_LAUNCHER_CACHE_DIR");
    // The default.
    assert_eq!(
        cache_dir_of(&no_env),
        shown(&launcher.home_path().join(".cache/kamal-launcher"))
    );
    // The user's file at its default place, then named by KAMAL_LAUNCHER_CONFIG; relative to the file.
    let user_dir = launcher.home_path().join(".config/kamal-launcher");
    fs::create_dir_all(&user_dir).unwrap();
    fs::write(user_dir.join("config.toml"), "cache_dir = \"home-cache\"\n").unwrap();
    assert_eq!(cache_dir_of(&no_env), shown(&user_dir.join("home-cache")));
    let user_file = elsewhere.path().join("user.toml");
    fs::write(&user_file, "cache_dir = \"user-cache\"\n").unwrap();
    let with_user = no_env.clone().env("KAMAL_LAUNCHER_CONFIG", &user_file);
    assert_eq!(
        cache_dir_of(&with_user),
        shown(&elsewhere.path().join("user-cache"))
    );
    // The app's file, relative to the app.
    app.write(".kamal-launcher.toml", "cache_dir = \"ci/cache\"\n");
    assert_eq!(cache_dir_of(&with_user), shown(&app_dir.join("ci/cache")));

    // Outside any app only the user's file counts.
    let outside = with_user.clone().cwd(elsewhere.path());
    assert_eq!(
        cache_dir_of(&outside),
        shown(&elsewhere.path().join("user-cache"))
    );
    assert!(server.requests().is_empty());
}

// ---- 8. read-only cache ----

/// Sets or clears write bits on every file and directory under `root` (symlinks are left alone).
fn chmod_tree(root: &Path, writable: bool) {
    let meta = fs::symlink_metadata(root).expect("stat");
    if meta.file_type().is_symlink() {
        return;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(root).expect("read dir") {
            chmod_tree(&entry.expect("dir entry").path(), writable);
        }
    }
    let mode = meta.permissions().mode();
    let mode = if writable {
        mode | 0o200
    } else {
        mode & !0o222
    };
    fs::set_permissions(root, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Gives the owner (root) write access back when dropped, so the temporary directories can be deleted
/// even when an assertion failed.
struct RestoreWrite(PathBuf);

impl Drop for RestoreWrite {
    fn drop(&mut self) {
        chmod_tree(&self.0, true);
    }
}

#[test]
fn read_only_cache_runs_the_installed_kamal() {
    assert_eq!(
        fs::metadata("/proc/self").expect("stat /proc/self").uid(),
        0,
        "this test runs the launcher as uid {NOBODY} with setpriv, which needs root"
    );
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    assert_success(&run(&launcher, &["install"]));
    drop(server);

    // How the cache is made read-only: everything in it stays owned by root (the installing user) and loses
    // every write bit (`chmod -R a-w`); the launcher then runs as uid/gid 65534 (`nobody`, no groups), which
    // may read and traverse the cache but write nothing in it. Its HOME is a directory it cannot write
    // either. The temporary parents of the app and the cache only gain o+x/o+r so that uid 65534 can reach
    // them; the launcher binary is used in place if uid 65534 can reach it, else copied (see
    // `launcher_for_others`).
    let cache_root = launcher
        .cache_path()
        .parent()
        .expect("cache parent")
        .to_path_buf();
    add_mode(&cache_root, 0o755);
    add_mode(app.path(), 0o755);
    let home = tempfile::Builder::new()
        .prefix("nobody-home-")
        .tempdir()
        .expect("tempdir");
    fs::set_permissions(home.path(), fs::Permissions::from_mode(0o555)).expect("chmod home");
    let (program, _bin_dir) = launcher_for_others();
    let _restore = RestoreWrite(launcher.cache_path().to_path_buf());
    chmod_tree(launcher.cache_path(), false);

    // The premise: uid 65534 really cannot write there.
    let env = the_env(&launcher);
    for path in [
        launcher.cache_path().to_path_buf(),
        launcher.layout_root().join("tmp"),
        env.clone(),
        env.join("last-used"),
        home.path().to_path_buf(),
    ] {
        let probe = as_nobody(
            &launcher,
            home.path(),
            Path::new("/bin/sh"),
            &[
                "-c",
                "test -w \"$0\" || test ! -e \"$0\"",
                path.to_str().unwrap(),
            ],
        );
        assert_eq!(
            probe.code(),
            Some(1),
            "uid {NOBODY} can write {}",
            path.display()
        );
    }

    let out = as_nobody(&launcher, home.path(), &program, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert_eq!(out.stderr, "", "{out}");

    // Without the Ruby probe memo: the probe runs, its result just is not saved.
    chmod_tree(launcher.cache_path(), true);
    let rubies = launcher.layout_root().join("rubies");
    assert!(!entries(&rubies).is_empty());
    for memo in entries(&rubies) {
        fs::remove_file(rubies.join(memo)).expect("remove probe memo");
    }
    chmod_tree(launcher.cache_path(), false);
    let out = as_nobody(&launcher, home.path(), &program, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert_eq!(entries(&rubies), Vec::<String>::new());
    assert_eq!(tmp_entries(&launcher), Vec::<String>::new());
}

// ---- 9. prune and clean ----

/// The summary line of `cache prune`/`cache clean` (`removed …`, `nothing to remove …`, `… is already empty`).
fn gc_summary(out: &Output) -> String {
    assert_success(out);
    assert_eq!(out.stdout, "", "{out}");
    out.stderr
        .lines()
        .find(|l| l.contains("remove") || l.ends_with("is already empty"))
        .unwrap_or_else(|| panic!("no report:\n{out}"))
        .to_owned()
}

/// Whether the report says some bytes were freed (`... : <n> <unit> freed`, n > 0).
fn freed_something(summary: &str) -> bool {
    let before = summary
        .split(" freed")
        .next()
        .unwrap_or_else(|| panic!("no `freed` in {summary:?}"));
    let number = before
        .rsplit(' ')
        .nth(1)
        .unwrap_or_else(|| panic!("no byte count in {summary:?}"));
    number
        .parse::<f64>()
        .unwrap_or_else(|_| panic!("bad byte count in {summary:?}"))
        > 0.0
}

#[test]
fn prune_keeps_a_fresh_install_and_older_than_0_removes_it() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    assert_success(&run(&launcher, &["install"]));
    let (envs, units, dls) = (
        launcher.env_dirs(),
        launcher.store_units(),
        downloads(&launcher),
    );
    assert_eq!(
        (envs.len(), units.len(), dls.len()),
        (1, 6, 6),
        "{envs:?} {units:?} {dls:?}"
    );

    let summary = gc_summary(&run(&launcher, &["cache", "prune"]));
    assert_eq!(
        summary,
        format!(
            "nothing to remove in {}: everything was used in the last 30 days",
            launcher.cache_path().display()
        )
    );
    assert_eq!(launcher.env_dirs(), envs);
    assert_eq!(launcher.store_units(), units);
    assert_eq!(downloads(&launcher), dls);
    let out = run(&launcher, &["--offline", "exec", "--", "version"]);
    assert_success(&out);

    let summary = gc_summary(&run(&launcher, &["cache", "prune", "--older-than", "0"]));
    assert!(summary.contains("removed 1 environment"), "{summary}");
    assert!(freed_something(&summary), "{summary}");
    assert_eq!(launcher.env_dirs(), Vec::<String>::new());
    assert_eq!(launcher.store_units(), Vec::<String>::new());
    assert_eq!(downloads(&launcher), Vec::<String>::new());
    assert_eq!(tmp_entries(&launcher), Vec::<String>::new());
}

#[test]
fn prune_removes_environments_unused_for_30_days() {
    let server = serve();
    let app_a = App::new(&Lock::new(server.url()));
    let app_b = App::new(&lock_with_dep_b_040(&server.url()));
    let a = Launcher::new(app_a.path());
    let b = Launcher::new(app_b.path()).cache_dir(a.cache_path());
    assert_success(&run(&a, &["install"]));
    let env_a = the_env(&a);
    assert_success(&run(&b, &["install"]));
    assert_eq!(a.env_dirs().len(), 2);
    assert_eq!(a.store_units().len(), 7);

    set_mtime(&env_a.join("last-used"), days_ago(40));
    let summary = gc_summary(&run(&a, &["cache", "prune"]));
    assert!(summary.contains("removed 1 environment"), "{summary}");
    assert!(freed_something(&summary), "{summary}");
    assert!(!env_a.exists(), "the old environment was kept");
    assert_eq!(a.env_dirs().len(), 1);
    // Only what the old environment alone used leaves the store.
    let units = a.store_units();
    assert_eq!(units.len(), 6, "{units:?}");
    assert!(
        !units.iter().any(|u| u.starts_with("fixture_dep_b-0.3.1-")),
        "{units:?}"
    );
    let out = run(&b, &["--offline", "exec", "--", "specs"]);
    assert_success(&out);
    assert!(out.stdout_lines().contains(&"dep_b=0.4.0"), "{out}");
}

#[test]
fn prune_with_a_relative_cache_dir_keeps_what_is_in_use() {
    // `--cache-dir ../kl-cache` from the app's config/ directory: the cache is <app>/config/../kl-cache.
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(&app.path().join("config"))
        .env_remove("KAMAL_LAUNCHER_CACHE_DIR")
        .args(["--cache-dir", "../kl-cache"]);
    assert_success(&run(&launcher, &["install"]));
    let store = app.path().join("kl-cache/v2/store");
    let units = || -> Vec<String> {
        entries(&store)
            .into_iter()
            .flat_map(|abi| entries(&store.join(abi)))
            .collect()
    };
    let installed = units();
    assert_eq!(installed.len(), closure().len(), "{installed:?}");

    let out = run(&launcher, &["cache", "prune"]);
    let summary = gc_summary(&out);
    assert!(summary.starts_with("nothing to remove"), "{summary}");
    assert_eq!(units(), installed, "prune removed installed gems in use");
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
}

#[test]
fn clean_removes_everything() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    assert_success(&run(&launcher, &["install"]));

    let summary = gc_summary(&run(&launcher, &["cache", "clean"]));
    assert!(summary.contains("removed 1 environment"), "{summary}");
    assert!(freed_something(&summary), "{summary}");
    assert_eq!(launcher.env_dirs(), Vec::<String>::new());
    assert_eq!(launcher.store_units(), Vec::<String>::new());
    assert_eq!(downloads(&launcher), Vec::<String>::new());
    assert_eq!(
        entries(&launcher.layout_root().join("rubies")),
        Vec::<String>::new()
    );
    assert_eq!(tmp_entries(&launcher), Vec::<String>::new());

    // And the cache fills again.
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
}

#[test]
fn clean_never_deletes_a_running_environment() {
    clean_keeps_a_running_environment(|launcher| run(launcher, &["cache", "clean"]));
}

/// macOS has no /proc: with it hidden (a private mount namespace), running environments are still found, since
/// the lock boot.rb holds is what both systems go by.
#[cfg(target_os = "linux")]
#[test]
fn clean_finds_running_environments_without_proc_as_on_macos() {
    clean_keeps_a_running_environment(|launcher| {
        let cmd = launcher.clone().args(["cache", "clean"]).command();
        let program = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
        let mut hidden = std::process::Command::new("unshare");
        hidden
            .args(["--mount", "--map-root-user", "sh", "-c"])
            .arg(
                "mount -t tmpfs none /proc || exit 97; [ ! -e /proc/self ] || exit 98; exec \"$@\"",
            )
            .arg("sh")
            .arg(program)
            .args(args);
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => hidden.env(k, v),
                None => hidden.env_remove(k),
            };
        }
        hidden.current_dir(cmd.get_current_dir().unwrap());
        let out = support::spawn(hidden).wait();
        assert!(
            !matches!(out.code(), Some(97 | 98)),
            "could not hide /proc (unshare needs user namespaces):\n{out}"
        );
        out
    });
}

fn clean_keeps_a_running_environment(clean: impl Fn(&Launcher) -> Output) {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    assert_success(&run(&launcher, &["install"]));
    let env = the_env(&launcher);
    let units = launcher.store_units();

    let mut sleeper = launcher
        .clone()
        .args(["exec", "--", "sleep-then-exit"])
        .spawn();
    sleeper.wait_for_stdout("ready\n", WAIT);
    let out = clean(&launcher);
    let summary = gc_summary(&out);
    assert!(
        env.join("boot.rb").is_file(),
        "`cache clean` deleted the environment of a running kamal:\n{out}"
    );
    assert_eq!(launcher.store_units(), units, "{out}");
    assert_units_complete(&launcher);
    assert!(
        summary.contains("in use"),
        "the report should mention the environment kept in use:\n{out}"
    );
    // Downloads nobody runs from are still removed.
    assert_eq!(downloads(&launcher), Vec::<String>::new(), "{out}");

    sleeper.signal_group("KILL");
    let out = sleeper.wait_timeout(WAIT);
    assert_eq!(out.signal(), Some(9), "{out}");
}

#[test]
fn warm_exec_records_last_use() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    assert_success(&run(&launcher, &["install"]));
    let last_used = the_env(&launcher).join("last-used");
    let old = days_ago(10);
    set_mtime(&last_used, old);
    assert_eq!(mtime(&last_used), old);

    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    let now = mtime(&last_used);
    assert!(
        now > days_ago(1),
        "last-used was not updated by a warm exec: {now:?}"
    );
}

// ---- 10. configuration ----

/// The root gem `plan` reports.
fn plan_root(launcher: &Launcher) -> String {
    let out = run(launcher, &["plan", "--json", "--offline"]);
    assert_success(&out);
    let plan: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("plan --json printed invalid JSON ({e}):\n{out}"));
    plan["root"]
        .as_str()
        .unwrap_or_else(|| panic!("no root in {plan}"))
        .to_owned()
}

#[test]
fn configuration_precedence_is_flags_env_app_file_user_file_defaults() {
    let server = serve();
    let app = app_for(&server);
    let app_dir = canonical(app.path());
    let user = tempfile::tempdir().expect("tempdir");
    let user_file = user.path().join("config.toml");
    let none = Launcher::new(&app_dir)
        .env_remove("KAMAL_LAUNCHER_CACHE_DIR")
        .env("KAMAL_LAUNCHER_CONFIG", &user_file);
    let env_cache = none.cache_path().join("env");
    let flag_cache = none.cache_path().join("flag");

    // Defaults.
    assert_eq!(
        cache_dir_of(&none),
        shown(&none.home_path().join(".cache/kamal-launcher"))
    );
    assert_eq!(plan_root(&none), "kamal");

    // The user's file.
    fs::write(
        &user_file,
        "cache_dir = \"user-cache\"\ngem = \"fixture_dep_b\"\n",
    )
    .unwrap();
    assert_eq!(cache_dir_of(&none), shown(&user.path().join("user-cache")));
    assert_eq!(plan_root(&none), "fixture_dep_b");

    // The app's file over the user's.
    app.write(
        ".kamal-launcher.toml",
        "cache_dir = \"app-cache\"\ngem = \"fixture_dep_a\"\n",
    );
    assert_eq!(cache_dir_of(&none), shown(&app_dir.join("app-cache")));
    assert_eq!(plan_root(&none), "fixture_dep_a");

    // The environment over the files.
    let env = none
        .clone()
        .env("KAMAL_LAUNCHER_CACHE_DIR", &env_cache)
        .env("KAMAL_LAUNCHER_GEM", "fixture_ext");
    assert_eq!(cache_dir_of(&env), shown(&env_cache));
    assert_eq!(plan_root(&env), "fixture_ext");

    // Flags over the environment.
    let flags = env
        .clone()
        .arg("--cache-dir")
        .arg(&flag_cache)
        .args(["--gem", "ostruct"]);
    assert_eq!(cache_dir_of(&flags), shown(&flag_cache));
    assert_eq!(plan_root(&flags), "ostruct");
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn offline_from_configuration_files_and_its_override() {
    let server = serve();
    let app = app_for(&server);
    let user = tempfile::tempdir().expect("tempdir");
    let user_file = user.path().join("config.toml");
    fs::write(&user_file, "offline = true\n").unwrap();
    let launcher = Launcher::new(app.path());
    let with_user = launcher.clone().env("KAMAL_LAUNCHER_CONFIG", &user_file);

    // The user's file alone makes the launcher offline.
    let out = run(&with_user, &["exec", "--", "version"]);
    assert_offline_failure(&out);
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    // So does the app's.
    app.write(".kamal-launcher.toml", "offline = true\n");
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_offline_failure(&out);
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    // KAMAL_LAUNCHER_OFFLINE=0 overrides the files.
    let out = run(
        &with_user.clone().env("KAMAL_LAUNCHER_OFFLINE", "0"),
        &["exec", "--", "version"],
    );
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert!(!server.requests().is_empty());
}

#[test]
fn configuration_errors_name_the_file_the_key_and_the_line() {
    let server = serve();
    let app = app_for(&server);
    let app_file = canonical(app.path()).join(".kamal-launcher.toml");
    let launcher = Launcher::new(&canonical(app.path()));

    let check = |launcher: &Launcher, file: &Path, line: usize, needles: &[&str]| {
        for args in [&["exec", "--", "version"][..], &["cache", "dir"][..]] {
            let out = run(launcher, args);
            assert_eq!(out.code(), Some(1), "{out}");
            assert_eq!(out.stdout, "", "{out}");
            let at = format!("{}:{line}", file.display());
            assert!(out.stderr.contains(&at), "stderr should name {at}:\n{out}");
            for needle in needles {
                assert!(
                    out.stderr.contains(needle),
                    "stderr lacks {needle:?}:\n{out}"
                );
            }
        }
    };

    fs::write(&app_file, "gem = \"kamal\"\n\ncahce_dir = \"x\"\n").unwrap();
    check(&launcher, &app_file, 3, &["cahce_dir"]);
    fs::write(&app_file, "gem = \"kamal\"\noffline = \"yes\"\n").unwrap();
    check(&launcher, &app_file, 2, &["offline"]);
    fs::remove_file(&app_file).unwrap();

    let user = tempfile::tempdir().expect("tempdir");
    let user_file = canonical(user.path()).join("config.toml");
    fs::write(&user_file, "# mine\njobs = 2\nofline = true\n").unwrap();
    let with_user = launcher.clone().env("KAMAL_LAUNCHER_CONFIG", &user_file);
    check(&with_user, &user_file, 3, &["ofline"]);
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

// ---- 11. progress ----

#[test]
fn progress_off_a_terminal() {
    let server = serve();
    let app = app_for(&server);

    let out = run(&Launcher::new(app.path()), &["install"]);
    assert_success(&out);
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(out.stderr.lines().count(), 1, "one summary line:\n{out}");
    assert!(
        !out.stderr.contains('\r') && !out.stderr.contains('\x1b'),
        "{out}"
    );

    let out = run(&Launcher::new(app.path()), &["-q", "install"]);
    assert_success(&out);
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(out.stderr, "", "{out}");

    let out = run(&Launcher::new(app.path()), &["-v", "install"]);
    assert_success(&out);
    assert_eq!(out.stdout, "", "{out}");
    assert!(out.stderr.lines().count() > 3, "several lines:\n{out}");
    assert!(out.stderr.contains("fixture_ext-1.0.1"), "{out}");
    assert!(
        !out.stderr.contains('\r') && !out.stderr.contains('\x1b'),
        "{out}"
    );
}

#[test]
fn install_repairs_an_environment_whose_store_entries_were_deleted() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    assert_success(&run(&launcher, &["install"]));
    let ext = launcher
        .store_unit_dirs()
        .into_iter()
        .find(|u| u.to_string_lossy().contains("fixture_ext-"))
        .expect("fixture_ext in the store");
    fs::remove_dir_all(&ext).unwrap();
    // The warm path finds it missing (an lstat per gem) and rebuilds it too, from the verified download.
    let before = server.requests().len();
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert!(out.stderr.contains("repairing it"), "{out}");
    assert!(ext.is_dir(), "the missing store entry was rebuilt");
    assert_eq!(server.requests().len(), before);
    fs::remove_dir_all(&ext).unwrap();
    let out = run(&launcher, &["install"]);
    assert_success(&out);
    assert!(ext.is_dir(), "the missing store entry was rebuilt");
    // Rebuilt from the verified download already in the cache.
    assert_eq!(server.requests().len(), before);
    let out = run(&launcher, &["exec", "--", "specs"]);
    assert_success(&out);
    assert!(out.stdout.contains("ext=hello from C"), "{out}");
}
