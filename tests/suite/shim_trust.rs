//! `bin/kamal`'s part of issue 18, "Trust that holds": nothing damaged, half-written or planted is ever taken as
//! done. The pinned launcher that the shim (or `pinned.rs`) caches survives a power loss right after it was cached;
//! one that is empty, half-written or changed is fetched again, never run; one another user could have planted is
//! refused. A lock that cannot be made, or whose holder cannot be seen, never hangs the shim; a download that
//! stalls gives up as the launcher's does; https keeps its scheme and credentials their host; a full disk is called
//! a full disk; a cache path with a backslash or a newline verifies.
//!
//! Real shells (dash, BusyBox sh), the real binary, the loopback gem server (`pinned_launcher`'s world). Every wait
//! is on an event (an exit, the request log, the journal's commit counter), never on time; a bounded wait on the
//! exit turns a hang into a failure. The ownership tests run as root and as uid 65534; the mount tests need root
//! and say so loudly where this machine cannot mount.

use crate::pinned_launcher::{
    App, BIN, Bundler, SECRET, SHIM_TOOLS, STAND_IN, assert_gave_up_on_a_stall, digest_tool,
    expected_version, host_gem_path, launcher_version, lockfile, own_version, run_bounded,
    system_path, toolbox, with_launcher_on_path, world,
};
use crate::support::{
    self, Fault, Output, Server, assert_success, entries,
    nobody::{NOBODY, add_mode, command_as_nobody, require_root},
    tls::{Pki, TlsServer},
    which,
};

use crate::support::power::{Disk, Tmpfs, skip_loudly};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The same command, run by a dash that first runs `prelude` and then execs it: `$$` in the prelude is the pid the
/// shim will have.
fn with_prelude(base: &Command, prelude: &str) -> Command {
    let mut cmd = Command::new(which("dash").expect("dash is not installed"));
    cmd.arg("-c")
        .arg(format!("{prelude}\nexec \"$0\" \"$@\""))
        .arg(base.get_program())
        .args(base.get_args())
        .env_clear();
    for (key, value) in base.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    if let Some(dir) = base.get_current_dir() {
        cmd.current_dir(dir);
    }
    cmd
}

fn record_of(binary: &Path) -> PathBuf {
    let mut name = binary.as_os_str().to_owned();
    name.push(".ok");
    PathBuf::from(name)
}

fn set_mtime(path: &Path, time: std::time::SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

/// The downloaders the shim uses, each with the shell it runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tool {
    /// dash, with the machine's tools (curl among them).
    Curl,
    /// dash, with GNU Wget and no curl.
    GnuWget,
    /// BusyBox sh and BusyBox's applets only (Alpine's shape), its wget among them.
    BusyBox,
}

impl Tool {
    pub(crate) fn all() -> Vec<Tool> {
        // BusyBox is Linux's; macOS has no package of it.
        if cfg!(target_os = "linux") {
            vec![Tool::Curl, Tool::GnuWget, Tool::BusyBox]
        } else {
            vec![Tool::Curl, Tool::GnuWget]
        }
    }

    /// The shell and the PATH to run the shim with; the guard keeps the PATH directory alive.
    pub(crate) fn setup(self) -> (&'static [&'static str], OsString, Option<tempfile::TempDir>) {
        match self {
            Tool::Curl => (&["dash"], system_path(), None),
            Tool::GnuWget => {
                let wget = which("wget").expect("GNU Wget is not installed (apt-get install wget)");
                let out = Command::new(&wget).arg("--version").output().unwrap();
                assert!(
                    String::from_utf8_lossy(&out.stdout).contains("GNU Wget"),
                    "{} is not GNU Wget",
                    wget.display()
                );
                let mut tools = SHIM_TOOLS.to_vec();
                tools.extend(["wget", digest_tool()]);
                let bin = toolbox(&tools, None);
                (&["dash"], bin.path().as_os_str().to_owned(), Some(bin))
            }
            Tool::BusyBox => {
                let busybox =
                    which("busybox").expect("busybox is not installed (apt-get install busybox)");
                let mut applets = SHIM_TOOLS.to_vec();
                applets.extend(["wget", "sha256sum"]);
                let bin = toolbox(&applets, Some(&busybox));
                (
                    &["busybox", "sh"],
                    bin.path().as_os_str().to_owned(),
                    Some(bin),
                )
            }
        }
    }
}

/// This machine's name, as the shim writes it into its locks.
pub(crate) fn hostname() -> String {
    let out = Command::new("uname").arg("-n").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

// ---- 1. a power loss right after a successful run ----

#[test]
fn a_power_loss_right_after_the_first_run_leaves_a_launcher_that_runs() {
    let disk = match Disk::new() {
        Ok(disk) => disk,
        Err(why) => return skip_loudly("power loss after bin/kamal cached the launcher", &why),
    };
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    let mut first = launcher_version(&app, &["dash"], &system_path(), &server);
    first.env("KAMAL_LAUNCHER_CACHE_DIR", disk.cache());
    let out = run_bounded(first);
    assert_success(&out);
    assert_eq!(out.stdout, expected_version());

    let after = disk.power_loss();
    let mut again = launcher_version(&app, &["dash"], &system_path(), &server);
    again.env("KAMAL_LAUNCHER_CACHE_DIR", after.cache());
    drop(server);
    // Offline, from what survived: the run that said "cached" left a launcher that runs (never an empty file that
    // exits 0 having done nothing).
    let out = run_bounded(again);
    assert_success(&out);
    assert_eq!(
        out.stdout,
        expected_version(),
        "the launcher did not survive the power loss:\n{out}"
    );
    assert_eq!(out.stderr, "", "{out}");
}

#[test]
fn a_power_loss_right_after_a_handover_leaves_the_pinned_launcher_whole() {
    let disk = match Disk::new() {
        Ok(disk) => disk,
        Err(why) => return skip_loudly("power loss after a handover cached the launcher", &why),
    };
    // The launcher on PATH (this build) fetches the pinned stand-in in Rust (pinned.rs) and hands over to it.
    let (_bin, path) = with_launcher_on_path();
    let app = App::new(&lockfile(Bundler::V269, Some(STAND_IN)));
    let server = Server::start(&world().root);
    let mut first = app.shim(&["dash"], &path, &server);
    first
        .env("KAMAL_LAUNCHER_CACHE_DIR", disk.cache())
        .arg("version");
    let out = run_bounded(first);
    assert_success(&out);
    assert!(
        out.stdout
            .starts_with(&format!("stand-in kamal-launcher {STAND_IN} ran")),
        "{out}"
    );

    let after = disk.power_loss();
    // No launcher on PATH now, and no network: only what pinned.rs cached can run.
    let mut again = app.shim(&["dash"], &system_path(), &server);
    again
        .env("KAMAL_LAUNCHER_CACHE_DIR", after.cache())
        .arg("version");
    drop(server);
    let out = run_bounded(again);
    assert_success(&out);
    assert!(
        out.stdout
            .starts_with(&format!("stand-in kamal-launcher {STAND_IN} ran"))
            && out.stdout.ends_with("guard=unset\n"),
        "what pinned.rs cached did not survive the power loss:\n{out}"
    );
}

// ---- 2. a cached launcher that is not what was verified ----

type Damage = fn(&Path);

/// What happens to a cached binary: a crash before its data reached the disk, one mid-write, a flipped byte, a
/// record lost; and a copy or restore that changes only its time (which costs no download).
const DAMAGE: &[(&str, Damage, bool)] = &[
    ("emptied", |b| fs::write(b, "").unwrap(), true),
    (
        "half written",
        |b| {
            let len = fs::metadata(b).unwrap().len();
            fs::File::options()
                .write(true)
                .open(b)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        },
        true,
    ),
    (
        "a byte flipped",
        |b| {
            let mut bytes = fs::read(b).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x20;
            fs::write(b, bytes).unwrap();
        },
        true,
    ),
    (
        "its record lost",
        |b| fs::remove_file(record_of(b)).unwrap(),
        true,
    ),
    (
        "only its time changed",
        |b| {
            // Newer than its record, as a copy or a restore leaves it; the record dated back keeps it in the past.
            let recorded = fs::metadata(record_of(b)).unwrap().modified().unwrap();
            set_mtime(&record_of(b), recorded - Duration::from_secs(60));
        },
        false,
    ),
];

#[test]
fn a_cached_launcher_that_is_not_what_was_verified_is_fetched_again_never_run() {
    for (name, damage, fetched_again) in DAMAGE {
        let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
        let server = Server::start(&world().root);
        let version = || run_bounded(launcher_version(&app, &["dash"], &system_path(), &server));
        assert_success(&version());
        let binary = app.cached_launcher(&own_version());
        damage(&binary);

        server.clear_log();
        let out = version();
        assert_success(&out);
        assert_eq!(out.stdout, expected_version(), "{name}: {out}");
        if *fetched_again {
            assert!(
                out.stderr
                    .contains(&format!("{} is damaged", binary.display()))
                    && out.stderr.contains("fetching it again"),
                "{name}: {out}"
            );
            assert_eq!(server.count(&host_gem_path()), 1, "{name}: {out}");
        } else {
            assert_eq!(out.stderr, "", "{name}");
            assert!(
                server.requests().is_empty(),
                "{name}: {:?}",
                server.requests()
            );
        }

        // Whole again, and recorded: the next start is warm, silent and offline.
        server.clear_log();
        let out = version();
        assert_success(&out);
        assert_eq!(out.stderr, "", "{name}");
        assert!(server.requests().is_empty(), "{name}");
    }
}

#[test]
fn the_handover_reads_the_shims_record_and_fetches_a_damaged_launcher_again() {
    let app = App::new(&lockfile(Bundler::V269, Some(STAND_IN)));
    let server = Server::start(&world().root);
    let stand_in_gem = format!(
        "/gems/kamal-launcher-{STAND_IN}-{}",
        &world().host_gem[format!("kamal-launcher-{}-", own_version()).len()..]
    );
    // The shim caches the stand-in and records it.
    let mut cmd = app.shim(&["dash"], &system_path(), &server);
    cmd.arg("version");
    let out = run_bounded(cmd);
    assert_success(&out);
    assert_eq!(server.count(&stand_in_gem), 1);

    // A launcher of another version hands over to it, trusting the shim's record: no download, no word.
    let lock = app.path().join("Gemfile.lock");
    let hand_over = || {
        let mut cmd = support::clean_command(BIN);
        cmd.arg("--lockfile")
            .arg(&lock)
            .args(["exec", "--", "version"])
            .current_dir(app.path())
            .env("HOME", app.home.path())
            .env("BUNDLE_MIRROR__ALL", server.url());
        run_bounded(cmd)
    };
    let out = hand_over();
    assert_success(&out);
    assert!(
        out.stdout
            .starts_with(&format!("stand-in kamal-launcher {STAND_IN} ran")),
        "{out}"
    );
    assert!(!out.stderr.contains("damaged"), "{out}");
    assert_eq!(server.count(&stand_in_gem), 1);

    // Emptied (a crash before its data reached the disk): the handover names it and installs it again.
    let binary = app.cached_launcher(STAND_IN);
    fs::write(&binary, "").unwrap();
    let out = hand_over();
    assert_success(&out);
    assert!(
        out.stderr
            .contains(&format!("{} is damaged", binary.display()))
            && out.stderr.contains("fetching it again"),
        "{out}"
    );
    assert!(
        out.stdout
            .starts_with(&format!("stand-in kamal-launcher {STAND_IN} ran")),
        "{out}"
    );
    // pinned.rs's own record now: the shim runs it warm.
    server.clear_log();
    let mut cmd = app.shim(&["dash"], &system_path(), &server);
    cmd.arg("version");
    let out = run_bounded(cmd);
    assert!(out.stdout.ends_with("guard=unset\n"), "{out}");
    assert_eq!(out.stderr, "", "{out}");
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

// ---- 8. locks ----

/// The version directory of `cache`, made as a run that got that far would have made it.
fn version_dir(cache: &Path) -> PathBuf {
    let dir = cache.join(format!("v2/launchers/{}", own_version()));
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_lock_that_cannot_be_made_is_said_at_once_never_waited_for() {
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    let check = |label: &str, out: &Output, dir: &Path, reason: &str| {
        assert_eq!(out.code(), Some(1), "{label}: {out}");
        for needle in [
            format!("cannot create the lock {}/.lock", dir.display()),
            reason.to_string(),
            "KAMAL_LAUNCHER_CACHE_DIR".to_string(),
        ] {
            assert!(
                out.stderr.contains(&needle),
                "{label}: no {needle:?} in\n{out}"
            );
        }
        assert_eq!(server.count(&host_gem_path()), 0, "{label}");
    };

    // Another user's directory (root's, 0755): readable, trusted, not writable by uid 65534.
    require_root();
    let shared = tempfile::Builder::new()
        .prefix("root-cache-")
        .tempdir()
        .unwrap();
    add_mode(shared.path(), 0o755);
    add_mode(app.path(), 0o755);
    let dir = version_dir(shared.path());
    let home = tempfile::Builder::new()
        .prefix("nobody-home-")
        .tempdir()
        .unwrap();
    chown(home.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
    cmd.env("KAMAL_LAUNCHER_CACHE_DIR", shared.path())
        .env("HOME", home.path());
    check(
        "another user's directory",
        &run_bounded(command_as_nobody(&cmd)),
        &dir,
        "Permission denied",
    );

    // A read-only mount.
    match Tmpfs::mount("size=16m,mode=0755") {
        Ok(fs) => {
            let dir = version_dir(&fs.path().join("cache"));
            fs.remount("ro");
            let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
            cmd.env("KAMAL_LAUNCHER_CACHE_DIR", fs.path().join("cache"));
            check(
                "a read-only mount",
                &run_bounded(cmd),
                &dir,
                "Read-only file system",
            );
        }
        Err(why) => skip_loudly("a read-only cache", &why),
    }

    // No inodes left.
    match Tmpfs::mount("size=16m,nr_inodes=64,mode=0755") {
        Ok(fs) => {
            let dir = version_dir(&fs.path().join("cache"));
            for i in 0.. {
                if fs::File::create(fs.path().join(format!("inode-{i}"))).is_err() {
                    break;
                }
            }
            let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
            cmd.env("KAMAL_LAUNCHER_CACHE_DIR", fs.path().join("cache"));
            check(
                "no inodes left",
                &run_bounded(cmd),
                &dir,
                "No space left on device",
            );
        }
        Err(why) => skip_loudly("a cache without inodes", &why),
    }
}

#[test]
fn a_stale_lock_naming_the_shims_own_pid_is_broken_not_waited_for() {
    // A container's pid 1 left the lock; the next container's shim is pid 1 again, and `kill -0` would find
    // itself alive. Both the lock older bin/kamals made (a pid) and this one's (pid@host).
    for (label, holder) in [("pid", "$$"), ("pid@host", "$$@$(uname -n)")] {
        let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
        let server = Server::start(&world().root);
        let dir = version_dir(&app.cache());
        let base = launcher_version(&app, &["dash"], &system_path(), &server);
        let mut cmd = with_prelude(
            &base,
            &format!("ln -s \"{holder}\" \"$PLANT\"; unset PLANT"),
        );
        cmd.env("PLANT", dir.join(".lock"));
        let out = run_bounded(cmd);
        assert_success(&out);
        assert_eq!(out.stdout, expected_version(), "{label}: {out}");
        assert_eq!(server.count(&host_gem_path()), 1, "{label}");
        assert_eq!(
            entries(&dir),
            ["kamal-launcher", "kamal-launcher.ok"],
            "{label}"
        );
    }
}

/// Kills the process on drop.
struct Sleeper(std::process::Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_lock_whose_holder_cannot_be_seen_is_taken_over_after_a_bounded_wait() {
    // A pid this host runs but that is no bin/kamal (reused), and a lock from another host sharing the cache.
    let sleeper = Sleeper(Command::new("sleep").arg("600").spawn().unwrap());
    for (label, holder) in [
        (
            "a live pid, reused",
            format!("{}@{}", sleeper.0.id(), hostname()),
        ),
        ("another host's", "4242@elsewhere.invalid".to_string()),
    ] {
        let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
        let server = Server::start(&world().root);
        let dir = version_dir(&app.cache());
        symlink(&holder, dir.join(".lock")).unwrap();
        let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
        // Waits are 60 times BUNDLE_TIMEOUT: 6 s here.
        cmd.env("BUNDLE_TIMEOUT", "0.1");
        let out = run_bounded(cmd);
        assert_success(&out);
        assert_eq!(out.stdout, expected_version(), "{label}: {out}");
        let (pid, host) = holder.split_once('@').unwrap();
        assert!(
            out.stderr.contains(&format!(
                "{}/.lock has been held by pid {pid} on {host}",
                dir.display()
            )) && out.stderr.contains("taking it over"),
            "{label}: {out}"
        );
        assert_eq!(server.count(&host_gem_path()), 1, "{label}");
        assert_eq!(
            entries(&dir),
            ["kamal-launcher", "kamal-launcher.ok"],
            "{label}"
        );
    }
}

// ---- 9. a download that stalls ----

#[test]
fn a_download_that_stops_mid_body_gives_up_as_the_launcher_does() {
    for tool in Tool::all() {
        let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
        let server = Server::start(&world().root);
        server.set_fault(&host_gem_path(), Fault::StallAfter(4096));
        let (shell, path, _bin) = tool.setup();
        let mut cmd = launcher_version(&app, shell, &path, &server);
        cmd.env("BUNDLE_TIMEOUT", "1").env("BUNDLE_RETRY", "1");
        let out = run_bounded(cmd);
        // Tried again once (BUNDLE_RETRY=1), as the launcher would, then gave up.
        assert_gave_up_on_a_stall(&format!("{tool:?}"), &out, &app, &server);
    }
}

// ---- 10. https and credentials ----

#[test]
fn credentials_for_an_https_source_keep_https_and_are_never_printed() {
    // With CHECKSUMS only the gem is fetched; without (this machine's Bundler), the compact index gives the checksum: it must
    // come over https too.
    for bundler in [Bundler::V269, Bundler::System] {
        let app = App::new(&lockfile(bundler, Some(&own_version())));
        let server = Server::start(&world().root);
        server.require_basic_auth("deploy", SECRET);
        let pki = Pki::new();
        let tls = TlsServer::start(&pki, server.addr(), false);
        let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
        cmd.env(
            "BUNDLE_MIRROR__ALL",
            format!("https://deploy:{SECRET}@{}/", tls.addr()),
        )
        .env("CURL_CA_BUNDLE", pki.ca_pem());
        let out = run_bounded(cmd);
        assert_success(&out);
        assert_eq!(out.stdout, expected_version(), "{bundler:?}");
        assert!(!out.stderr.contains(SECRET), "{bundler:?}: {out}");
        assert_eq!(
            tls.failed_handshakes(),
            0,
            "{bundler:?}: spoke plain http to the https port:\n{out}"
        );
        let mut wanted = vec![host_gem_path()];
        if bundler == Bundler::System {
            wanted.push("/info/kamal-launcher".to_string());
        }
        // Every request reached the server through TLS (one per handshake), with the credentials.
        assert_eq!(tls.handshakes(), server.requests().len(), "{bundler:?}");
        for path in wanted {
            let authorized = server
                .requests()
                .iter()
                .filter(|r| r.path == path && r.header("authorization").is_some())
                .count();
            assert_eq!(
                authorized,
                1,
                "{bundler:?}: {path}: {:?}",
                server.requests()
            );
        }
    }
}

#[test]
fn an_https_source_is_never_followed_down_to_plain_http() {
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    let plain = Server::start(&world().root);
    server.set_fault(
        &host_gem_path(),
        Fault::Redirect(format!("{}{}", plain.url(), &host_gem_path()[1..])),
    );
    let pki = Pki::new();
    let tls = TlsServer::start(&pki, server.addr(), false);
    let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
    cmd.env("BUNDLE_MIRROR__ALL", tls.url())
        .env("CURL_CA_BUNDLE", pki.ca_pem());
    let out = run_bounded(cmd);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("could not download"), "{out}");
    assert!(
        plain.requests().is_empty(),
        "followed https down to http: {:?}",
        plain.requests()
    );
    assert!(!app.cached_launcher(&own_version()).exists());
}

#[test]
fn credentials_go_to_their_own_host_never_on_through_a_redirect() {
    for tool in Tool::all() {
        let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
        let server = Server::start(&world().root);
        server.require_basic_auth("deploy", SECRET);
        let elsewhere = Server::start(&world().root);
        server.set_fault(
            &host_gem_path(),
            Fault::Redirect(format!("{}{}", elsewhere.url(), &host_gem_path()[1..])),
        );
        let (shell, path, _bin) = tool.setup();
        let mut cmd = launcher_version(&app, shell, &path, &server);
        // An http source of its own: credentials may travel over http to it, and to it alone.
        cmd.env("BUNDLE_MIRROR__ALL", server.url_with_auth("deploy", SECRET));
        let out = run_bounded(cmd);
        assert!(
            !out.stdout.contains(SECRET) && !out.stderr.contains(SECRET),
            "{tool:?}: {out}"
        );
        let leaked: Vec<_> = elsewhere
            .requests()
            .into_iter()
            .filter(|r| r.header("authorization").is_some())
            .collect();
        assert!(
            leaked.is_empty(),
            "{tool:?}: credentials sent on: {leaked:?}"
        );
        if tool == Tool::BusyBox {
            // It cannot be kept from passing them on: it is not given them.
            assert_eq!(out.code(), Some(1), "{tool:?}: {out}");
            assert!(
                out.stderr.contains("BusyBox's wget would send them on"),
                "{out}"
            );
            assert!(out.stderr.contains("install curl"), "{out}");
            assert!(elsewhere.requests().is_empty());
            continue;
        }
        assert_success(&out);
        assert_eq!(out.stdout, expected_version(), "{tool:?}");
        let authorized = server
            .requests()
            .iter()
            .filter(|r| r.path == host_gem_path() && r.header("authorization").is_some())
            .count();
        assert_eq!(authorized, 1, "{tool:?}: {:?}", server.requests());
        assert_eq!(elsewhere.count(&host_gem_path()), 1, "{tool:?}");
    }
}

// ---- 11. a full disk ----

#[test]
fn a_full_disk_is_called_a_full_disk_with_the_room_that_was_needed() {
    let fs = match Tmpfs::mount("size=128m,mode=0755") {
        Ok(fs) => fs,
        Err(why) => return skip_loudly("a full disk under the shim", &why),
    };
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    let cache = fs.path().join("cache");
    let gem = world().root.join(&host_gem_path()[1..]);
    let gem_len = fs::metadata(&gem).unwrap().len();
    let unpacked = Command::new("sh")
        .arg("-c")
        .arg("tar -xOf \"$0\" data.tar.gz | tar -xzOf - libexec/kamal-launcher | wc -c")
        .arg(&gem)
        .output()
        .unwrap();
    let binary_len: u64 = String::from_utf8_lossy(&unpacked.stdout)
        .trim()
        .parse()
        .unwrap();
    let version = || {
        let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
        cmd.env("KAMAL_LAUNCHER_CACHE_DIR", &cache);
        run_bounded(cmd)
    };
    let full = |out: &Output, needle: &str| {
        assert_eq!(out.code(), Some(1), "{out}");
        for needle in [
            format!(
                "the disk holding {}/v2/launchers/{} is full",
                cache.display(),
                own_version()
            ),
            needle.to_string(),
            "KAMAL_LAUNCHER_CACHE_DIR".to_string(),
        ] {
            assert!(out.stderr.contains(&needle), "no {needle:?} in\n{out}");
        }
        assert!(!out.stderr.contains("checksum"), "{out}");
    };

    // Less room than the gem: the download stops, and the message gives the gem's size.
    fs.leave_free(gem_len / 2);
    full(
        &version(),
        &format!(
            "downloading {}{} needs {gem_len} bytes there",
            server.url(),
            &host_gem_path()[1..]
        ),
    );
    // Room for the gem, not for the binary unpacked beside it.
    fs.leave_free(gem_len + binary_len / 2);
    full(
        &version(),
        &format!(
            "unpacking kamal-launcher from the {gem_len}-byte gem needs {binary_len} bytes there"
        ),
    );
    // Room again: it runs, and nothing the failed runs left is in the way.
    fs.free_everything();
    let out = version();
    assert_success(&out);
    assert_eq!(out.stdout, expected_version());
}

// ---- 12. odd cache paths ----

#[test]
fn a_cache_path_holding_a_backslash_or_a_newline_verifies_and_runs() {
    let odd = tempfile::Builder::new().prefix("odd-").tempdir().unwrap();
    // Under each shell the shim supports: dash with curl, bash (what macOS's sh is) and BusyBox.
    let mut shells: Vec<(&[&str], Tool)> = vec![(&["dash"], Tool::Curl), (&["bash"], Tool::Curl)];
    if cfg!(target_os = "linux") {
        shells.push((&["busybox", "sh"], Tool::BusyBox));
    }
    for (shell, tool) in shells {
        let (_, path, _bin) = tool.setup();
        for (var, value) in [
            (
                "KAMAL_LAUNCHER_CACHE_DIR",
                odd.path()
                    .join(format!("{}/back\\slash\nnew line", shell[0])),
            ),
            ("HOME", odd.path().join(format!("{}/h\\o\nme", shell[0]))),
        ] {
            let label = format!("{shell:?}, {var}");
            let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
            let server = Server::start(&world().root);
            let version = || {
                let mut cmd = launcher_version(&app, shell, &path, &server);
                cmd.env(var, &value);
                run_bounded(cmd)
            };
            let out = version();
            assert_success(&out);
            assert_eq!(out.stdout, expected_version(), "{label}: {out}");
            assert!(!out.stderr.contains("mismatch"), "{label}: {out}");
            // Warm: the record and the owner checks read the odd path too.
            server.clear_log();
            let out = version();
            assert_success(&out);
            assert_eq!(out.stderr, "", "{label}");
            assert!(server.requests().is_empty(), "{label}");
        }
    }
}

// ---- 13. a cache another user can change ----

/// An app uid 65534 can read, and a /tmp-style (1777, root's) cache directory in which uid 65534 ran bin/kamal
/// first: `v2/` and everything in it are its own.
struct Shared {
    app: App,
    server: Server,
    cache: tempfile::TempDir,
    _home: tempfile::TempDir,
}

fn shared_cache_set_up_by_nobody() -> Shared {
    require_root();
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    add_mode(app.path(), 0o755);
    let server = Server::start(&world().root);
    let cache = tempfile::Builder::new()
        .prefix("shared-cache-")
        .tempdir()
        .unwrap();
    fs::set_permissions(cache.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let home = tempfile::Builder::new()
        .prefix("nobody-home-")
        .tempdir()
        .unwrap();
    chown(home.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
    cmd.env("KAMAL_LAUNCHER_CACHE_DIR", cache.path())
        .env("HOME", home.path());
    let out = run_bounded(command_as_nobody(&cmd));
    assert_success(&out);
    assert_eq!(fs::metadata(cache.path().join("v2")).unwrap().uid(), NOBODY);
    Shared {
        app,
        server,
        cache,
        _home: home,
    }
}

fn assert_refused(out: &Output, path: &Path, why: &str) {
    assert_eq!(out.code(), Some(1), "{out}");
    for needle in [
        format!("refusing to use the cache: {}", path.display()),
        why.to_string(),
        "another user could change what runs as you".to_string(),
        "KAMAL_LAUNCHER_CACHE_DIR".to_string(),
    ] {
        assert!(out.stderr.contains(&needle), "no {needle:?} in\n{out}");
    }
    assert!(out.stdout.is_empty(), "{out}");
}

#[test]
fn a_launcher_another_user_planted_in_a_shared_cache_is_refused() {
    let Shared {
        app, server, cache, ..
    } = shared_cache_set_up_by_nobody();
    // uid 65534 wraps the launcher it cached, record and all, to run its code as whoever comes next.
    let binary = cache
        .path()
        .join(format!("v2/launchers/{}/kamal-launcher", own_version()));
    let real = binary.with_file_name("real");
    fs::rename(&binary, &real).unwrap();
    let witness = tempfile::Builder::new()
        .prefix("witness-")
        .tempdir()
        .unwrap();
    let marker = witness.path().join("ran");
    let wrapper = format!(
        "#!/bin/sh\necho \"$(id -u)\" >'{}'\nexec '{}' \"$@\"\n",
        marker.display(),
        real.display()
    );
    fs::write(&binary, &wrapper).unwrap();
    fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(
        record_of(&binary),
        format!(
            "{} {}\n",
            wrapper.len(),
            support::sha256_hex(wrapper.as_bytes())
        ),
    )
    .unwrap();
    for path in [&binary, &real, &record_of(&binary)] {
        chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    }

    let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
    cmd.env("KAMAL_LAUNCHER_CACHE_DIR", cache.path());
    let out = run_bounded(cmd);
    assert!(!marker.exists(), "root ran uid 65534's wrapper:\n{out}");
    assert_refused(
        &out,
        &cache.path().join("v2"),
        "is owned by nobody (uid 65534), neither you (root, uid 0) nor root",
    );
    assert!(out.stderr.contains("sudo chown -R root"), "{out}");
}

#[test]
fn a_symlink_planted_at_a_temporary_name_overwrites_nothing() {
    let Shared {
        app, server, cache, ..
    } = shared_cache_set_up_by_nobody();
    let secret_dir = tempfile::Builder::new()
        .prefix("secret-")
        .tempdir()
        .unwrap();
    let secret = secret_dir.path().join("root-only");
    fs::write(&secret, "root only\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    // The lockfile edited since: bin/kamal reads it and writes its memo of the pin again.
    let lock = app.path().join("Gemfile.lock");
    set_mtime(
        &lock,
        std::time::SystemTime::now() + Duration::from_secs(60),
    );
    let memo = cache.path().join(format!(
        "v2/launchers/pins{}",
        fs::canonicalize(&lock).unwrap().display()
    ));
    assert!(memo.exists());
    // uid 65534 can write where the memo's temporary file goes: a symlink there, named as the shim names it.
    let base = launcher_version(&app, &["dash"], &system_path(), &server);
    let mut cmd = with_prelude(
        &base,
        "ln -s \"$SECRET_FILE\" \"$MEMO.$$\"; unset SECRET_FILE MEMO",
    );
    cmd.env("KAMAL_LAUNCHER_CACHE_DIR", cache.path())
        .env("SECRET_FILE", &secret)
        .env("MEMO", &memo);
    let out = run_bounded(cmd);
    assert_eq!(fs::read_to_string(&secret).unwrap(), "root only\n", "{out}");
    assert_refused(
        &out,
        &cache.path().join("v2"),
        "is owned by nobody (uid 65534)",
    );
}

type Change = fn(&Path, &Path);
/// What the refusal names (relative to the cache; "" for the binary, ".." for the directory above the cache), and
/// the words of its reason; `None` where the shim runs.
type Refusal = Option<(&'static str, &'static str)>;

/// Changes to a cache (its directory, and the cached binary) and whether the shim must refuse it afterwards.
const CHANGES: &[(&str, Change, Refusal)] = &[
    (
        "v2 writable by everyone",
        |c, _| set_mode(&c.join("v2"), 0o777),
        Some(("v2", "is writable by every user (and has no sticky bit)")),
    ),
    (
        "v2 writable by everyone, sticky",
        |c, _| set_mode(&c.join("v2"), 0o1777),
        None,
    ),
    (
        "v2 writable by root's own group",
        |c, _| set_mode(&c.join("v2"), 0o775),
        None,
    ),
    (
        "v2 writable by another group",
        |c, _| {
            chown(c.join("v2"), None, Some(NOBODY)).unwrap();
            set_mode(&c.join("v2"), 0o775);
        },
        Some(("v2", "(gid 65534), which is not your own group")),
    ),
    (
        "launchers owned by another user",
        |c, _| chown(c.join("v2/launchers"), Some(NOBODY), None).unwrap(),
        Some(("v2/launchers", "is owned by nobody (uid 65534)")),
    ),
    (
        "the launcher owned by another user",
        |_, b| chown(b, Some(NOBODY), None).unwrap(),
        Some(("", "is owned by nobody (uid 65534)")),
    ),
    (
        "the cache directory writable by everyone",
        |c, _| set_mode(c, 0o777),
        Some((".", "is writable by every user")),
    ),
    (
        "a directory above the cache writable by everyone",
        |c, _| set_mode(c.parent().unwrap(), 0o777),
        Some(("..", "is writable by every user")),
    ),
];

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_cache_others_may_write_to_is_refused_unless_sticky_or_the_users_own_group() {
    require_root();
    for (name, change, refused) in CHANGES {
        let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
        let server = Server::start(&world().root);
        let version = || run_bounded(launcher_version(&app, &["dash"], &system_path(), &server));
        assert_success(&version());
        let cache = app.cache();
        let binary = app.cached_launcher(&own_version());
        change(&cache, &binary);
        let out = version();
        match refused {
            None => {
                assert_success(&out);
                assert_eq!(out.stdout, expected_version(), "{name}");
            }
            Some((which, why)) => {
                let path = match *which {
                    "" => binary.clone(),
                    "." => cache.clone(),
                    ".." => cache.parent().unwrap().to_path_buf(),
                    rel => cache.join(rel),
                };
                assert_refused(&out, &path, why);
            }
        }
    }
}
