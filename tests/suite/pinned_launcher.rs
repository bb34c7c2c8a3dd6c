//! `bin/kamal` on a machine where nothing is installed: the launcher ships as platform gems, the app's
//! lockfile pins one (real Bundler locks it: this machine's own, 2.3 or 2.5, without CHECKSUMS, the vendored 2.6.9
//! with them), and the shim fetches, verifies and caches it with sh tools only. A launcher of another version
//! hands over to the pinned one. Everything is served from a loopback gem server with a compact index.

use crate::support;

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use support::{Fault, Output, Server, assert_success, clean_command, fixtures, spawn, which};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_kamal-launcher");
pub(crate) const SECRET: &str = "s3cret-t0ken";
/// Versions the world serves besides this build's: a stand-in script, and this very binary under another name.
pub(crate) const STAND_IN: &str = "9.9.9";
pub(crate) const RELABELLED: &str = "9.9.8";

pub(crate) fn own_version() -> String {
    env!("CARGO_PKG_VERSION").replace('-', ".")
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The gem server's tree: the fixture gems plus kamal-launcher gems packaged by `scripts/package-gems`, with a
/// compact index rebuilt over all of them; and the real Bundler 2.6.9, installed once.
pub(crate) struct World {
    pub(crate) root: PathBuf,
    /// This machine's platform gem of this build, as packaged (`…-x86_64-linux-gnu.gem` or `…-x86_64-linux.gem`).
    pub(crate) host_gem: String,
    bundler_home: PathBuf,
    _dir: tempfile::TempDir,
}

pub(crate) fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("pinned-world-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("server");
        copy_dir(&fixtures().dir, &root);
        let gems = root.join("gems");
        // A stripped copy packs and downloads in a fraction of the debug binary's time; it is the same program.
        let binary = dir.path().join("kamal-launcher");
        fs::copy(BIN, &binary).unwrap();
        run_ok(Command::new("strip").arg(&binary));
        let stand_in = dir.path().join("stand-in");
        fs::write(
            &stand_in,
            format!(
                "#!/bin/sh\necho \"stand-in kamal-launcher {STAND_IN} ran: $*\"\n\
                 echo \"guard=${{KAMAL_LAUNCHER_HANDED_OVER_FROM:-unset}}\"\n"
            ),
        )
        .unwrap();
        fs::set_permissions(&stand_in, fs::Permissions::from_mode(0o755)).unwrap();
        let own = own_version();
        let mut host_gem = String::new();
        for (version, program) in [
            (own.as_str(), &binary),
            (STAND_IN, &stand_in),
            (RELABELLED, &binary),
        ] {
            let out = package(program, version, &gems);
            if version == own {
                host_gem = out
                    .lines()
                    .map(|l| l.rsplit('/').next().unwrap().to_string())
                    .find(|name| name != &format!("kamal-launcher-{own}.gem"))
                    .unwrap();
            }
        }
        run_ok(
            clean_command("ruby")
                .arg(repo().join("tests/fixtures/build_index.rb"))
                .arg(&root),
        );
        let bundler_home = dir.path().join("bundler-2.6.9");
        run_ok(
            clean_command("gem")
                .args(["install", "--local", "--no-document", "--install-dir"])
                .arg(&bundler_home)
                .arg(repo().join("tests/fixtures/vendor/bundler-2.6.9.gem")),
        );
        World {
            root,
            host_gem,
            bundler_home,
            _dir: dir,
        }
    })
}

fn package(binary: &Path, version: &str, out: &Path) -> String {
    let output = run_ok(
        clean_command("sh")
            .arg(repo().join("scripts/package-gems"))
            .arg("--binary")
            .arg(binary)
            .args(["--version", version])
            .arg(out)
            .env("SOURCE_DATE_EPOCH", "1700000000"),
    );
    output.stdout
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = spawn(std::mem::replace(cmd, Command::new("true"))).wait();
    assert_success(&out);
    out
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

pub(crate) fn host_gem_path() -> String {
    format!("/gems/{}", world().host_gem)
}

/// Which Bundler writes the lockfile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bundler {
    /// This machine's `bundle`, which writes no CHECKSUMS and locks one platform: Debian 12's 2.3, or in the
    /// trixie tier Ruby 3.3's own 2.5 (scripts/trixie-root).
    System,
    /// The vendored 2.6.9: CHECKSUMS, several platforms.
    V269,
}

/// Which Bundler locked which pin.
type LockKey = (Bundler, Option<String>);

/// A lockfile written by real Bundler against the world's server through a mirror setting; `launcher` is the
/// kamal-launcher version to pin, if any. Cached per combination: locking is deterministic.
pub(crate) fn lockfile(bundler: Bundler, launcher: Option<&str>) -> String {
    static CACHE: std::sync::Mutex<Vec<(LockKey, String)>> = std::sync::Mutex::new(Vec::new());
    let key = (bundler, launcher.map(str::to_string));
    if let Some((_, text)) = CACHE.lock().unwrap().iter().find(|(k, _)| *k == key) {
        return text.clone();
    }
    let server = Server::start(&world().root);
    let dir = tempfile::tempdir().unwrap();
    let mut gemfile = String::from(
        "source \"https://rubygems.org\"\n\ngem \"kamal\", require: false\ngem \"ostruct\", \"0.1.0\"\n",
    );
    if let Some(v) = launcher {
        gemfile.push_str(&format!(
            "gem \"kamal-launcher\", \"{v}\", group: :development, require: false\n"
        ));
    }
    fs::write(dir.path().join("Gemfile"), gemfile).unwrap();
    let mut cmd = match bundler {
        Bundler::System => {
            let mut c = clean_command("bundle");
            c.arg("lock");
            c
        }
        Bundler::V269 => {
            let home = &world().bundler_home;
            let mut c = clean_command(home.join("bin/bundle"));
            c.args([
                "lock",
                "--add-checksums",
                "--add-platform",
                "x86_64-linux",
                "arm64-darwin",
            ])
            .env("GEM_HOME", home)
            .env("GEM_PATH", home);
            c
        }
    };
    cmd.current_dir(dir.path())
        .env("HOME", dir.path())
        .env("BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/", server.url());
    run_ok(&mut cmd);
    let text = fs::read_to_string(dir.path().join("Gemfile.lock")).unwrap();
    assert_eq!(
        text.contains("CHECKSUMS"),
        bundler == Bundler::V269,
        "{bundler:?} wrote:\n{text}"
    );
    CACHE.lock().unwrap().push((key, text.clone()));
    text
}

/// An app with `bin/kamal` written by `kamal-launcher init`, and a fresh, empty HOME (so an empty cache).
pub(crate) struct App {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) home: tempfile::TempDir,
}

impl App {
    pub(crate) fn new(lockfile: &str) -> App {
        let dir = tempfile::Builder::new()
            .prefix("pinned-app-")
            .tempdir()
            .unwrap();
        fs::write(dir.path().join("Gemfile.lock"), lockfile).unwrap();
        fs::create_dir_all(dir.path().join("bin")).unwrap();
        // Only the shim is wanted here; KAMAL_LAUNCHER_BIN keeps init itself from handing over.
        let out = spawn({
            let mut c = clean_command(BIN);
            c.arg("init")
                .current_dir(dir.path())
                .env("KAMAL_LAUNCHER_BIN", BIN)
                .env("KAMAL_LAUNCHER_CACHE_DIR", dir.path().join("unused-cache"));
            c
        })
        .wait();
        assert_success(&out);
        App {
            dir,
            home: tempfile::Builder::new()
                .prefix("empty-home-")
                .tempdir()
                .unwrap(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The default cache, under the empty HOME (no KAMAL_LAUNCHER_CACHE_DIR is set).
    pub(crate) fn cache(&self) -> PathBuf {
        self.home.path().join(".cache/kamal-launcher")
    }

    pub(crate) fn cached_launcher(&self, version: &str) -> PathBuf {
        self.cache()
            .join(format!("v2/launchers/{version}/kamal-launcher"))
    }

    /// `SHELL bin/kamal ARGS` with only PATH, HOME, LANG and the mirror setting for `server`. (The mirror is
    /// `mirror.all`: dash and busybox drop `BUNDLE_MIRROR__HTTPS://…`, not a valid name, from what they pass on.)
    pub(crate) fn shim(&self, shell: &[&str], path: &OsString, server: &Server) -> Command {
        let mut cmd = Command::new(
            which(shell[0]).unwrap_or_else(|| panic!("{} is not installed", shell[0])),
        );
        cmd.args(&shell[1..])
            .arg(self.path().join("bin/kamal"))
            .current_dir(self.path())
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.home.path())
            .env("LANG", "C.UTF-8")
            .env("BUNDLE_MIRROR__ALL", server.url());
        cmd
    }
}

/// A PATH directory holding links to exactly these programs (from `from`, else from PATH).
pub(crate) fn toolbox(programs: &[&str], from: Option<&Path>) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("toolbox-")
        .tempdir()
        .unwrap();
    for program in programs {
        let target = match from {
            Some(binary) => binary.to_path_buf(),
            None => which(program).unwrap_or_else(|| panic!("{program} is not installed")),
        };
        std::os::unix::fs::symlink(target, dir.path().join(program)).unwrap();
    }
    dir
}

/// What the shim needs: sh, a downloader, a digest tool, tar and gzip, and the POSIX basics.
pub(crate) const SHIM_TOOLS: &[&str] = &[
    "sh", "awk", "sed", "uname", "mkdir", "ln", "readlink", "rm", "mv", "chmod", "sleep", "head",
    "tar", "gzip", "ls", "wc", "sync", "df", "grep", "id",
];

/// sha256sum where it exists (Linux), else shasum (macOS).
pub(crate) fn digest_tool() -> &'static str {
    if which("sha256sum").is_some() {
        "sha256sum"
    } else {
        "shasum"
    }
}

/// This machine's PATH (Ruby, a C toolchain: wherever CI put them) without any directory holding a
/// kamal-launcher; the shim's own fallbacks (/usr/local/bin, Homebrew's) must not hold one either.
pub(crate) fn system_path() -> OsString {
    for dir in ["/usr/local/bin", "/opt/homebrew/bin"] {
        assert!(
            !Path::new(dir).join("kamal-launcher").exists(),
            "{dir}/kamal-launcher exists: these tests need a machine where no launcher is installed"
        );
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(
        std::env::split_paths(&path).filter(|dir| !dir.join("kamal-launcher").exists()),
    )
    .unwrap()
}

pub(crate) fn with_launcher_on_path() -> (tempfile::TempDir, OsString) {
    let dir = toolbox(&["kamal-launcher"], Some(Path::new(BIN)));
    let mut path = dir.path().as_os_str().to_owned();
    path.push(":");
    path.push(system_path());
    (dir, path)
}

/// What `kamal-launcher --version` prints.
pub(crate) fn expected_version() -> String {
    format!("kamal-launcher {}\n", env!("CARGO_PKG_VERSION"))
}

/// `SHELL bin/kamal --version` through the launcher's own CLI: the shim's whole path, and no Ruby.
pub(crate) fn launcher_version(
    app: &App,
    shell: &[&str],
    path: &OsString,
    server: &Server,
) -> Command {
    let mut cmd = app.shim(shell, path, server);
    cmd.env("KAMAL_LAUNCHER_CLI", "1").arg("--version");
    cmd
}

/// Runs to the end; a shim that hangs fails the test (its process group killed) instead of hanging the suite.
pub(crate) fn run_bounded(cmd: Command) -> Output {
    spawn(cmd).wait_timeout(Duration::from_secs(120))
}

/// The URL of this machine's launcher gem under a server (or mirror) base URL.
pub(crate) fn gem_url(base: &str) -> String {
    format!("{base}{}", &host_gem_path()[1..])
}

/// Nothing of the pinned launcher was left in `app`'s cache: no binary, no record, no temporary file.
pub(crate) fn assert_nothing_cached(app: &App, what: &str) {
    let dir = app.cached_launcher(&own_version());
    let left = support::entries(dir.parent().unwrap());
    assert!(left.is_empty(), "{what}: left behind {left:?}");
}

/// A run with `BUNDLE_TIMEOUT=1 BUNDLE_RETRY=1` whose download stalled gave up as the launcher does: exit 1,
/// said with the setting, tried once more, nothing left in the cache.
pub(crate) fn assert_gave_up_on_a_stall(what: &str, out: &Output, app: &App, server: &Server) {
    assert_eq!(out.code(), Some(1), "{what}: {out}");
    for needle in [
        format!("could not download {}", gem_url(&server.url())),
        "nothing arrived for 1s, after 2 attempts".to_string(),
        "BUNDLE_TIMEOUT".to_string(),
    ] {
        assert!(
            out.stderr.contains(&needle),
            "{what}: no {needle:?} in\n{out}"
        );
    }
    assert_eq!(server.count(&host_gem_path()), 2, "{what}: {out}");
    assert_nothing_cached(app, what);
}

pub(crate) fn run(cmd: Command) -> Output {
    spawn(cmd).wait()
}

#[test]
fn a_machine_without_ruby_gets_as_far_as_the_launcher_which_then_says_ruby_is_missing() {
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    let mut tools = SHIM_TOOLS.to_vec();
    tools.extend(["curl", digest_tool()]);
    let bin = toolbox(&tools, None);
    let path = bin.path().as_os_str().to_owned();
    let out = run(app.shim(&["dash"], &path, &server));
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "verified and cached kamal-launcher {}",
            own_version()
        )),
        "{out}"
    );
    assert!(
        out.stderr.contains("could not find `ruby` on PATH"),
        "the launcher itself must say Ruby is missing:\n{out}"
    );
    assert!(app.cached_launcher(&own_version()).is_file());
    assert_eq!(server.count(&host_gem_path()), 1);
}

#[test]
fn the_shim_fetches_verifies_caches_and_runs_then_needs_no_network() {
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    let path = system_path();
    let mut cmd = app.shim(&["dash"], &path, &server);
    cmd.arg("version");
    let out = run(cmd);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "stdout is kamal's alone:\n{out}");
    assert!(out.stderr.contains("fetching kamal-launcher"), "{out}");
    let cached = app.cached_launcher(&own_version());
    assert!(cached.metadata().unwrap().permissions().mode() & 0o111 != 0);
    assert_eq!(server.count(&host_gem_path()), 1);
    // The lockfile's CHECKSUMS verified it: the index was not needed for the launcher.
    assert_eq!(server.count("/info/kamal-launcher"), 0);

    server.clear_log();
    let mut again = app.shim(&["dash"], &path, &server);
    again.arg("version");
    let out = run(again);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n");
    assert_eq!(out.stderr, "", "a warm run says nothing");
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    // The server gone, it still runs; the launcher it found reports the cache the shim used.
    let mut offline = app.shim(&["dash"], &path, &server);
    drop(server);
    offline.arg("version");
    let out = run(offline);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n");
}

/// BusyBox is Linux's (Alpine's sh and tools); macOS has no package of it.
#[cfg(target_os = "linux")]
#[test]
fn the_shim_works_under_busybox_with_its_own_wget_and_tools() {
    // This machine's Bundler writes no CHECKSUMS: the digest comes from the source's compact index.
    let app = App::new(&lockfile(Bundler::System, Some(&own_version())));
    let server = Server::start(&world().root);
    let busybox = which("busybox").expect("busybox is not installed (apt-get install busybox)");
    let mut applets = SHIM_TOOLS.to_vec();
    applets.extend(["wget", "sha256sum"]);
    let bin = toolbox(&applets, Some(&busybox));
    let path = bin.path().as_os_str().to_owned();
    let cmd = launcher_version(&app, &["busybox", "sh"], &path, &server);
    let out = run(cmd);
    assert_success(&out);
    assert_eq!(
        out.stdout,
        format!("kamal-launcher {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(server.count("/info/kamal-launcher"), 1, "{out}");
    assert_eq!(server.count(&host_gem_path()), 1);
}

#[test]
fn a_lockfile_without_checksums_is_verified_through_the_compact_index() {
    let app = App::new(&lockfile(Bundler::System, Some(&own_version())));
    let server = Server::start(&world().root);
    let mut cmd = app.shim(&["dash"], &system_path(), &server);
    cmd.arg("version");
    let out = run(cmd);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n");
    assert_eq!(server.count("/info/kamal-launcher"), 1, "{out}");
    assert_eq!(server.count(&host_gem_path()), 1);
}

#[test]
fn eight_first_runs_at_once_all_succeed_with_one_download() {
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    // The first download stalls until all eight have started, so they really do race for it.
    server.set_fault(&host_gem_path(), Fault::StallAfter(4096));
    let path = system_path();
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let cmd = launcher_version(&app, &["dash"], &path, &server);
            spawn(cmd)
        })
        .collect();
    server.wait_for_stalled(1, Duration::from_secs(60));
    server.clear_faults();
    server.release();
    for run in runs {
        let out = run.wait();
        assert_success(&out);
        assert!(out.stdout.starts_with("kamal-launcher "), "{out}");
    }
    assert_eq!(server.count(&host_gem_path()), 1, "{:?}", server.requests());
    let dir = app.cached_launcher(&own_version());
    assert_eq!(
        support::entries(dir.parent().unwrap()),
        ["kamal-launcher", "kamal-launcher.ok"]
    );
}

#[test]
fn a_kill_9_mid_download_leaves_nothing_a_later_run_takes_for_done() {
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    server.set_fault(&host_gem_path(), Fault::StallAfter(4096));
    let cmd = launcher_version(&app, &["dash"], &system_path(), &server);
    let running = spawn(cmd);
    server.wait_for_stalled(1, Duration::from_secs(60));
    running.signal_group("KILL");
    let out = running.wait();
    assert!(out.signal().is_some(), "{out}");
    let cached = app.cached_launcher(&own_version());
    assert!(!cached.exists(), "a killed download must not look done");

    server.clear_faults();
    server.release();
    let cmd = launcher_version(&app, &["dash"], &system_path(), &server);
    let out = run(cmd);
    assert_success(&out);
    assert_eq!(
        support::entries(cached.parent().unwrap()),
        ["kamal-launcher", "kamal-launcher.ok"],
        "the dead run's lock and files are gone"
    );
}

#[test]
fn a_tampered_launcher_gem_is_refused_with_and_without_checksums() {
    let real = fs::read(world().root.join(&host_gem_path()[1..])).unwrap();
    let mut tampered = real.clone();
    tampered.extend_from_slice(b"tampered");
    let expected = support::sha256_hex(&real);
    let actual = support::sha256_hex(&tampered);
    for bundler in [Bundler::V269, Bundler::System] {
        let app = App::new(&lockfile(bundler, Some(&own_version())));
        let server = Server::start(&world().root);
        server.set_fault(&host_gem_path(), Fault::Body(tampered.clone()));
        let mut cmd = app.shim(&["dash"], &system_path(), &server);
        cmd.arg("version");
        let out = run(cmd);
        assert_eq!(out.code(), Some(1), "{bundler:?}: {out}");
        assert!(out.stdout.is_empty(), "nothing ran:\n{out}");
        for needle in [
            "checksum mismatch".to_string(),
            format!("{}{}", server.url(), &host_gem_path()[1..]),
            expected.clone(),
            actual.clone(),
        ] {
            assert!(
                out.stderr.contains(&needle),
                "{bundler:?}: no {needle:?} in\n{out}"
            );
        }
        let dir = app.cached_launcher(&own_version());
        let left: Vec<_> = fs::read_dir(dir.parent().unwrap())
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{bundler:?}: left behind {left:?}");
    }
}

#[test]
fn no_checksum_known_is_refused_unless_unverified_is_allowed_with_a_warning() {
    let app = App::new(&lockfile(Bundler::System, Some(&own_version())));
    let server = Server::start(&world().root);
    // The index answers, and lists no version: the one case where running unverified is the way on.
    server.set_fault(
        "/info/kamal-launcher",
        Fault::Response {
            status: 200,
            headers: vec![],
            body: b"---\n".to_vec(),
        },
    );
    let cmd = launcher_version(&app, &["dash"], &system_path(), &server);
    let out = run(cmd);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr
            .contains("no checksum is known for kamal-launcher"),
        "{out}"
    );
    assert!(
        out.stderr.contains("KAMAL_LAUNCHER_ALLOW_UNVERIFIED=1"),
        "{out}"
    );
    assert_eq!(
        server.count(&host_gem_path()),
        0,
        "refused before downloading"
    );
    assert!(!app.cached_launcher(&own_version()).exists());

    let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
    cmd.env("KAMAL_LAUNCHER_ALLOW_UNVERIFIED", "1");
    let out = run(cmd);
    assert_success(&out);
    assert!(
        out.stderr.contains("warning: no checksum is known"),
        "{out}"
    );
    assert!(out.stdout.starts_with("kamal-launcher "), "{out}");

    // A source without an index (404) is a source problem: said as one, and never answered by switching
    // verification off; knowingly allowed, the launcher still runs unverified.
    let app = App::new(&lockfile(Bundler::System, Some(&own_version())));
    server.set_fault("/info/kamal-launcher", Fault::Status(404));
    let cmd = launcher_version(&app, &["dash"], &system_path(), &server);
    let out = run(cmd);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "mirror {} (for https://rubygems.org/) answered HTTP 404 Not Found for info/kamal-launcher",
            server.url()
        )),
        "{out}"
    );
    assert!(out.stderr.contains("compact index"), "{out}");
    assert!(
        !out.stderr.contains("KAMAL_LAUNCHER_ALLOW_UNVERIFIED"),
        "{out}"
    );
    let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
    cmd.env("KAMAL_LAUNCHER_ALLOW_UNVERIFIED", "1");
    let out = run(cmd);
    assert_success(&out);
    assert!(
        out.stderr.contains("warning: no checksum is known"),
        "{out}"
    );
}

#[test]
fn mirror_and_credentials_from_bundler_settings_never_printed() {
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    server.require_basic_auth("deploy", SECRET);
    // The mirror comes from the app's .bundle/config (its key holds "://"), the credential from the environment.
    fs::create_dir_all(app.path().join(".bundle")).unwrap();
    fs::write(
        app.path().join(".bundle/config"),
        format!(
            "---\nBUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/: \"{}\"\n",
            server.url()
        ),
    )
    .unwrap();
    let shim = |with_credential: bool| {
        let mut cmd = app.shim(&["dash"], &system_path(), &server);
        cmd.env_remove("BUNDLE_MIRROR__ALL").arg("version");
        if with_credential {
            cmd.env("BUNDLE_127__0__0__1", format!("deploy:{SECRET}"));
        }
        cmd
    };
    let refused = run(shim(false));
    assert_eq!(refused.code(), Some(1), "{refused}");
    assert!(refused.stderr.contains("401"), "{refused}");

    let out = run(shim(true));
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n");
    for o in [&refused, &out] {
        assert!(
            !o.stdout.contains(SECRET) && !o.stderr.contains(SECRET),
            "{o}"
        );
    }
    let auth = server
        .requests()
        .iter()
        .filter(|r| r.path == host_gem_path())
        .filter(|r| r.header("authorization").is_some())
        .count();
    assert_eq!(auth, 1);
}

#[test]
fn a_launcher_of_another_version_hands_over_to_the_pinned_one_once() {
    let (_bin, path) = with_launcher_on_path();
    let stand_in_gem = format!(
        "/gems/kamal-launcher-{STAND_IN}-{}",
        &world().host_gem[format!("kamal-launcher-{}-", own_version()).len()..]
    );

    // The PATH launcher (this build) fetches the pinned 9.9.9 in Rust, verified, and execs it with its arguments.
    let app = App::new(&lockfile(Bundler::V269, Some(STAND_IN)));
    let server = Server::start(&world().root);
    let mut cmd = app.shim(&["dash"], &path, &server);
    cmd.arg("version");
    let out = run(cmd);
    assert_success(&out);
    let lock = app.path().join("Gemfile.lock");
    assert_eq!(
        out.stdout,
        format!(
            "stand-in kamal-launcher {STAND_IN} ran: --lockfile {} exec -- version\nguard={}\n",
            fs::canonicalize(&lock).unwrap().display(),
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(server.count(&stand_in_gem), 1);
    assert!(app.cached_launcher(STAND_IN).is_file());
    // Afterwards the shim finds the pinned binary itself: no handover, no request.
    server.clear_log();
    let mut cmd = app.shim(&["dash"], &path, &server);
    cmd.arg("version");
    let out = run(cmd);
    assert!(out.stdout.ends_with("guard=unset\n"), "{out}");
    assert!(server.requests().is_empty());

    // KAMAL_LAUNCHER_BIN opts out: this build runs kamal itself.
    let app = App::new(&lockfile(Bundler::V269, Some(STAND_IN)));
    let mut cmd = app.shim(&["dash"], &path, &server);
    cmd.env("KAMAL_LAUNCHER_BIN", BIN).arg("version");
    let out = run(cmd);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n");
    assert!(!app.cached_launcher(STAND_IN).exists());

    // The pinned gem holds this very build (so it reports another version than pinned): it runs, says so once,
    // and never hands over again.
    let app = App::new(&lockfile(Bundler::V269, Some(RELABELLED)));
    let mut cmd = app.shim(&["dash"], &path, &server);
    cmd.arg("version");
    let out = run(cmd);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n");
    assert_eq!(
        out.stderr
            .matches(&format!(
                "pins kamal-launcher {RELABELLED}, but the binary handed over to is"
            ))
            .count(),
        1,
        "{out}"
    );
    assert!(app.cached_launcher(RELABELLED).is_file());
}

#[test]
fn without_a_pin_the_shim_behaves_as_before_and_says_how_to_pin() {
    let app = App::new(&lockfile(Bundler::V269, None));
    let server = Server::start(&world().root);
    let mut cmd = app.shim(&["dash"], &system_path(), &server);
    cmd.arg("version");
    let out = run(cmd);
    assert_eq!(out.code(), Some(127), "{out}");
    assert!(
        out.stderr
            .contains("bundle add kamal-launcher --group development --require false"),
        "{out}"
    );
    assert!(server.requests().is_empty());

    let (_bin, path) = with_launcher_on_path();
    let mut cmd = app.shim(&["dash"], &path, &server);
    cmd.arg("version");
    let out = run(cmd);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n");

    // init says the same line when the pin is missing, and never touches the Gemfile.
    let gemfile = fs::read_to_string(app.path().join("Gemfile")).ok();
    let out = run({
        let mut c = clean_command(BIN);
        c.args(["init", "--dry-run"])
            .current_dir(app.path())
            .env("HOME", app.home.path());
        c
    });
    assert_success(&out);
    assert!(
        out.stderr
            .contains("bundle add kamal-launcher --group development --require false"),
        "{out}"
    );
    assert_eq!(fs::read_to_string(app.path().join("Gemfile")).ok(), gemfile);
}

#[test]
fn the_shim_is_posix_sh_that_shellcheck_accepts() {
    let app = App::new(&lockfile(Bundler::System, None));
    let shellcheck =
        which("shellcheck").expect("shellcheck is not installed (apt-get install shellcheck)");
    let out = run({
        let mut c = Command::new(shellcheck);
        c.args(["-s", "sh"]).arg(app.path().join("bin/kamal"));
        c
    });
    assert_success(&out);
}

#[test]
fn doctor_reports_the_pin_its_platforms_this_machine_and_the_running_launcher() {
    let server = Server::start(&world().root);
    let doctor = |lockfile: &str| {
        let app = App::new(lockfile);
        run({
            let mut c = clean_command(BIN);
            c.arg("doctor")
                .current_dir(app.path())
                .env("HOME", app.home.path())
                .env("BUNDLE_MIRROR__ALL", server.url());
            c
        })
    };
    let out = doctor(&lockfile(Bundler::V269, Some(&own_version())));
    let line = |name: &str| {
        out.stdout
            .lines()
            .find(|l| l[4..].trim_start().starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} check:\n{out}"))
            .to_string()
    };
    assert!(line("Launcher pin").starts_with("ok"), "{out}");
    assert!(line("Launcher pin").ends_with(&format!("pins kamal-launcher {}", own_version())));
    // Bundler 2.6.9 locked PLATFORMS for which the world publishes no launcher: doctor names them.
    let platforms = line("Launcher platforms");
    // This machine is not stopped by it: a warning.
    assert!(platforms.starts_with("warn"), "{out}");
    assert!(
        platforms.contains("arm64-darwin") && platforms.contains("aarch64-linux"),
        "{out}"
    );
    let this = line("Launcher for this machine");
    assert!(this.starts_with("ok"), "{out}");
    assert!(
        this.contains("its SHA-256 is in the lockfile's CHECKSUMS"),
        "{out}"
    );
    assert!(line("Launcher running").starts_with("ok"), "{out}");

    let out = doctor(&lockfile(Bundler::V269, None));
    assert!(
        out.stdout
            .contains("warn Launcher pin: Gemfile.lock pins no kamal-launcher"),
        "{out}"
    );
    assert!(
        out.stdout.contains(
            "hint: pin it with `bundle add kamal-launcher --group development --require false`"
        ),
        "{out}"
    );
}

#[test]
fn the_ci_key_changes_with_the_pinned_launcher() {
    let key = |lockfile: &str| {
        let app = App::new(lockfile);
        let out = run({
            let mut c = clean_command(BIN);
            c.args(["cache", "key"])
                .current_dir(app.path())
                .env("HOME", app.home.path())
                .env("KAMAL_LAUNCHER_BIN", BIN);
            c
        });
        assert_success(&out);
        out.stdout
    };
    let unpinned = key(&lockfile(Bundler::V269, None));
    let pinned = key(&lockfile(Bundler::V269, Some(&own_version())));
    let other = key(&lockfile(Bundler::V269, Some(STAND_IN)));
    assert_ne!(unpinned, pinned);
    assert_ne!(pinned, other);
}

#[test]
fn a_stale_pin_memo_costs_a_handover_never_the_wrong_version() {
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    let path = system_path();
    let version = |app: &App| {
        let mut cmd = app.shim(&["dash"], &path, &server);
        cmd.arg("version");
        run(cmd)
    };
    assert_success(&version(&app));
    let memo = app.cache().join(format!(
        "v2/launchers/pins{}",
        fs::canonicalize(app.path().join("Gemfile.lock"))
            .unwrap()
            .display()
    ));
    assert_eq!(
        fs::read_to_string(&memo).unwrap(),
        format!("{}\n", own_version())
    );

    // A new pin whose file time is older than the memo (as `rsync -a` or an archive restore leave it): the shim
    // trusts the memo, and the launcher it runs sees the new pin and hands over.
    let lock = app.path().join("Gemfile.lock");
    fs::write(&lock, lockfile(Bundler::V269, Some(STAND_IN))).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let out = version(&app);
    assert_success(&out);
    assert!(
        out.stdout
            .starts_with(&format!("stand-in kamal-launcher {STAND_IN} ran")),
        "{out}"
    );
    assert!(
        out.stdout
            .ends_with(&format!("guard={}\n", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );

    // An ordinary edit makes the lockfile newer: the shim reads it and runs the pinned binary itself.
    fs::write(&lock, lockfile(Bundler::V269, Some(STAND_IN))).unwrap();
    let out = version(&app);
    assert!(out.stdout.ends_with("guard=unset\n"), "{out}");
    assert_eq!(fs::read_to_string(&memo).unwrap(), format!("{STAND_IN}\n"));
}

#[test]
fn the_shim_finds_a_launcher_gem_installed_into_the_user_gem_directory() {
    let app = App::new(&lockfile(Bundler::V269, None));
    let server = Server::start(&world().root);
    let gem = world().root.join(&host_gem_path()[1..]);
    let out = run({
        let mut c = clean_command("gem");
        c.args(["install", "--local", "--no-document", "--user-install"])
            .arg(&gem)
            .env("HOME", app.home.path());
        c
    });
    assert_success(&out);
    let mut cmd = app.shim(&["dash"], &system_path(), &server);
    cmd.arg("version");
    let out = run(cmd);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n");
}

/// A lockfile locked on other machines may lack this machine's variant: the shim, and a launcher handing over,
/// find it in the source's compact index, with its digest.
#[test]
fn a_lockfile_without_this_machines_variant_falls_back_to_the_compact_index() {
    let host_platform = world().host_gem[format!("kamal-launcher-{}-", own_version()).len()..]
        .trim_end_matches(".gem");
    let without_host = |version: &str| {
        let entry = format!("kamal-launcher ({version}-{host_platform})");
        let text = lockfile(Bundler::V269, Some(version));
        assert!(text.contains(&entry), "{text}");
        text.lines()
            .filter(|l| !l.contains(&entry))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };

    // The shim, with no launcher anywhere.
    let app = App::new(&without_host(&own_version()));
    let server = Server::start(&world().root);
    let cmd = launcher_version(&app, &["dash"], &system_path(), &server);
    let out = run(cmd);
    assert_success(&out);
    assert_eq!(server.count("/info/kamal-launcher"), 1, "{out}");
    assert_eq!(server.count(&host_gem_path()), 1, "{out}");

    // A launcher of another version, handing over in Rust.
    let (_bin, path) = with_launcher_on_path();
    let app = App::new(&without_host(STAND_IN));
    server.clear_log();
    let mut cmd = app.shim(&["dash"], &path, &server);
    cmd.arg("version");
    let out = run(cmd);
    assert_success(&out);
    assert!(
        out.stdout
            .starts_with(&format!("stand-in kamal-launcher {STAND_IN} ran")),
        "{out}"
    );
    assert_eq!(server.count("/info/kamal-launcher"), 1, "{out}");
}
