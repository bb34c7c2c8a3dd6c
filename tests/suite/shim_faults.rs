//! The shim under the faults of issue 21: stale locks whose pid was reused, URLs that are not http(s), a second user's run, a relative HOME, wget's reasons.
//!
//! Real shells (dash, BusyBox sh), the real binary, the loopback gem server (`pinned_launcher`'s world), and for a
//! download that progresses slowly a loopback server of this module's own that sends the gem a little at a time.
//! Waits are on events (an exit, a request, a line on stderr); a bounded wait on the exit turns a hang into a
//! failure. The shared-cache tests run as root and as uid 65534; the mount tests need root and say so loudly
//! where this machine cannot mount.

use crate::pinned_launcher::{
    App, Bundler, SECRET, SHIM_TOOLS, digest_tool, expected_version, host_gem_path,
    launcher_version, lockfile, own_version, run_bounded, system_path, toolbox, world,
};
use crate::shim_trust::{Tool, hostname};
use crate::support::{
    Fault, Output, Server, assert_success, entries,
    nobody::{NOBODY, add_mode, command_as_nobody, require_root},
    power::{Tmpfs, skip_loudly},
    spawn,
};

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

/// The version directory of `cache`, made as a run that got that far would have made it.
fn version_dir(cache: &Path) -> PathBuf {
    let dir = cache.join(format!("v2/launchers/{}", own_version()));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A live process that is no bin/kamal (a pid a new container reused); killed on drop.
struct Sleeper(std::process::Child);

impl Sleeper {
    fn start() -> Sleeper {
        Sleeper(Command::new("sleep").arg("600").spawn().unwrap())
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A pid this host ran and no longer runs.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

// ---- 1. a stale lock whose pid was reused ----

#[test]
fn a_lock_naming_a_live_pid_that_fetches_nothing_is_taken_over_once_nothing_moves() {
    // The container killed mid-download left its lock; in the next one that pid is tini, or a sleep: alive, and
    // no bin/kamal. With and without the work directory it left.
    let sleeper = Sleeper::start();
    let holder = format!("{}@{}", sleeper.0.id(), hostname());
    for (label, work, still) in [
        (
            "no work directory",
            false,
            "it has not started a download".to_string(),
        ),
        (
            "a work directory that does not change",
            true,
            "nothing in its download".to_string(),
        ),
    ] {
        let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
        let server = Server::start(&world().root);
        let dir = version_dir(&app.cache());
        symlink(&holder, dir.join(".lock")).unwrap();
        if work {
            let work = dir.join(format!(".tmp.{holder}"));
            fs::create_dir(&work).unwrap();
            fs::write(work.join("gem"), vec![0x5a; 4096]).unwrap();
        }
        let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
        // Nothing moving for 3 times BUNDLE_TIMEOUT and 2 s more (5 s) is enough; the absolute bound is 60 s.
        cmd.env("BUNDLE_TIMEOUT", "1");
        let out = run_bounded(cmd);
        assert_success(&out);
        assert_eq!(out.stdout, expected_version(), "{label}: {out}");
        let pid = sleeper.0.id();
        for needle in [
            format!(
                "{}/.lock has been held by pid {pid} on {}, and {still}",
                dir.display(),
                hostname()
            ),
            "(3 times BUNDLE_TIMEOUT and more)".to_string(),
            "taking it over".to_string(),
        ] {
            assert!(
                out.stderr.contains(&needle),
                "{label}: no {needle:?} in\n{out}"
            );
        }
        assert!(
            !out.stderr.contains("60 times BUNDLE_TIMEOUT"),
            "{label}: waited for the absolute bound\n{out}"
        );
        assert_eq!(server.count(&host_gem_path()), 1, "{label}");
        assert_eq!(
            entries(&dir),
            ["kamal-launcher", "kamal-launcher.ok"],
            "{label}: the lock and the work directory taken over are gone"
        );
    }
}

/// Serves the launcher gem to the first request a little at a time (4 KiB every 250 ms, well above the stall
/// limit) until told to send the rest, then serves every later request whole. Reports each request's path.
struct Trickle {
    url: String,
    requests: mpsc::Receiver<String>,
    finish: mpsc::Sender<()>,
    chunks: mpsc::Receiver<usize>,
}

impl Trickle {
    fn start() -> Trickle {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let gem = fs::read(world().root.join(&host_gem_path()[1..])).unwrap();
        let (req_tx, requests) = mpsc::channel();
        let (finish, finish_rx) = mpsc::channel::<()>();
        let (chunk_tx, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut first = true;
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let path = head.split(' ').nth(1).unwrap_or("").to_string();
                let _ = req_tx.send(path.clone());
                if path != host_gem_path() {
                    let _ =
                        stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                    continue;
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    gem.len()
                );
                let mut sent = 0;
                if first {
                    first = false;
                    let mut n = 0;
                    while finish_rx.try_recv().is_err() && sent + 4096 < gem.len() {
                        if stream.write_all(&gem[sent..sent + 4096]).is_err() {
                            break;
                        }
                        sent += 4096;
                        n += 1;
                        let _ = chunk_tx.send(n);
                        std::thread::sleep(Duration::from_millis(250));
                    }
                }
                let _ = stream.write_all(&gem[sent..]);
            }
        });
        Trickle {
            url,
            requests,
            finish,
            chunks,
        }
    }
}

#[test]
fn a_holder_whose_download_progresses_is_waited_for_not_taken_over() {
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    let trickle = Trickle::start();
    let run = || {
        let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
        cmd.env("BUNDLE_MIRROR__ALL", &trickle.url)
            .env("BUNDLE_TIMEOUT", "1");
        spawn(cmd)
    };
    let holder = run();
    let path = trickle
        .requests
        .recv_timeout(Duration::from_secs(60))
        .unwrap();
    assert_eq!(path, host_gem_path());
    let mut waiter = run();
    waiter.wait_for_stderr("waiting for pid", Duration::from_secs(60));
    // The download goes on at 16 KiB/s for 40 chunks (10 s), twice what the waiter would allow a silent holder.
    let seen = trickle.chunks.try_iter().last().unwrap_or(0);
    while trickle
        .chunks
        .recv_timeout(Duration::from_secs(60))
        .unwrap()
        < seen + 40
    {}
    trickle.finish.send(()).unwrap();
    let held = holder.wait_timeout(Duration::from_secs(120));
    let waited = waiter.wait_timeout(Duration::from_secs(120));
    for out in [&held, &waited] {
        assert_success(out);
        assert_eq!(out.stdout, expected_version(), "{out}");
    }
    assert!(
        !waited.stderr.contains("taking it over"),
        "a holder whose download progressed was taken over:\n{waited}"
    );
    assert!(
        trickle.requests.try_iter().next().is_none(),
        "the waiter downloaded too:\n{waited}"
    );
    assert!(server.requests().is_empty());
}

// ---- 7. URLs that are not http(s) ----

/// Each downloader the shim has, with its shell and PATH: `Tool`'s, and Ruby's Net::HTTP where neither curl nor
/// wget is there.
fn downloaders() -> Vec<(
    String,
    &'static [&'static str],
    OsString,
    Option<tempfile::TempDir>,
)> {
    let mut all: Vec<_> = Tool::all()
        .into_iter()
        .map(|tool| {
            let (shell, path, guard) = tool.setup();
            (format!("{tool:?}"), shell, path, guard)
        })
        .collect();
    let mut tools = SHIM_TOOLS.to_vec();
    tools.extend(["ruby", digest_tool()]);
    let bin = toolbox(&tools, None);
    all.push((
        "Ruby".to_string(),
        &["dash"][..],
        bin.path().as_os_str().to_owned(),
        Some(bin),
    ));
    all
}

#[test]
fn a_remote_or_mirror_that_is_not_an_http_url_never_reaches_a_command_line() {
    let witness = tempfile::Builder::new()
        .prefix("witness-")
        .tempdir()
        .unwrap();
    let written = witness.path().join("written");
    let config = witness.path().join("curlrc");
    fs::write(&config, format!("output = \"{}\"\n", written.display())).unwrap();
    let hostile = [
        format!("-o{}", written.display()),
        format!("--config={}", config.display()),
    ];
    for (tool, shell, path, _guard) in downloaders() {
        for value in &hostile {
            // The lockfile's GEM remote, with no mirror: it alone would be downloaded from.
            let text = lockfile(Bundler::V269, Some(&own_version())).replace(
                "  remote: https://rubygems.org/",
                &format!("  remote: {value}"),
            );
            assert!(text.contains(&format!("remote: {value}")));
            let app = App::new(&text);
            let server = Server::start(&world().root);
            let mut cmd = launcher_version(&app, shell, &path, &server);
            cmd.env_remove("BUNDLE_MIRROR__ALL");
            let out = run_bounded(cmd);
            let label = format!("{tool}, remote {value}");
            assert_eq!(out.code(), Some(1), "{label}: {out}");
            for needle in [
                format!("\"{value}\" (the remote: line in "),
                "is not an http(s) URL".to_string(),
                "hint: fix that line".to_string(),
            ] {
                assert!(
                    out.stderr.contains(&needle),
                    "{label}: no {needle:?} in\n{out}"
                );
            }
            assert!(
                !written.exists(),
                "{label}: a downloader took it for an option"
            );

            // BUNDLE_MIRROR__ALL, in front of a good remote.
            let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
            let mut cmd = launcher_version(&app, shell, &path, &server);
            cmd.env("BUNDLE_MIRROR__ALL", value);
            let out = run_bounded(cmd);
            let label = format!("{tool}, BUNDLE_MIRROR__ALL={value}");
            assert_eq!(out.code(), Some(1), "{label}: {out}");
            for needle in [
                format!("\"{value}/\" (set by BUNDLE_MIRROR__ALL), is not an http(s) URL"),
                "hint: set it to the mirror's http(s) URL, or remove it".to_string(),
            ] {
                assert!(
                    out.stderr.contains(&needle),
                    "{label}: no {needle:?} in\n{out}"
                );
            }
            assert!(
                !written.exists(),
                "{label}: a downloader took it for an option"
            );
            assert!(server.requests().is_empty(), "{label}");
        }
    }

    // In the app's .bundle/config, the message names the key and the file.
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    fs::create_dir_all(app.path().join(".bundle")).unwrap();
    let config = app.path().join(".bundle/config");
    fs::write(&config, "---\nBUNDLE_MIRROR__ALL: \"-oops\"\n").unwrap();
    let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
    cmd.env_remove("BUNDLE_MIRROR__ALL");
    let out = run_bounded(cmd);
    assert_eq!(out.code(), Some(1), "{out}");
    let needle = format!("(set by BUNDLE_MIRROR__ALL in {})", config.display());
    assert!(out.stderr.contains(&needle), "no {needle:?} in\n{out}");
}

// ---- 5. a noexec cache ----

#[test]
fn a_cache_on_a_noexec_mount_is_said_and_exits_1_never_126() {
    let fs = match Tmpfs::mount("size=64m,mode=0755") {
        Ok(fs) => fs,
        Err(why) => return skip_loudly("a noexec cache", &why),
    };
    let cache = fs.path().join("cache");
    let check = |label: &str, out: &Output| {
        assert_eq!(out.code(), Some(1), "{label}: {out}");
        for needle in [
            "the cache is on a filesystem mounted noexec".to_string(),
            "hint: set KAMAL_LAUNCHER_CACHE_DIR to a directory on a filesystem that allows executables"
                .to_string(),
            format!(
                "cannot run {}",
                cache
                    .join(format!("v2/launchers/{}/kamal-launcher", own_version()))
                    .display()
            ),
        ] {
            assert!(out.stderr.contains(&needle), "{label}: no {needle:?} in\n{out}");
        }
        assert!(!out.stderr.contains("Permission denied"), "{label}: {out}");
    };
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);

    // The first run, on every shell: BusyBox's `[ -x ]` as root believes the mode.
    fs.remount("noexec");
    for tool in Tool::all() {
        let (shell, path, _guard) = tool.setup();
        let mut cmd = launcher_version(&app, shell, &path, &server);
        cmd.env("KAMAL_LAUNCHER_CACHE_DIR", &cache);
        check(&format!("{tool:?}, first run"), &run_bounded(cmd));
    }

    // A cache that worked, mounted noexec since: the warm path says so without a download.
    fs.remount("exec");
    let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
    cmd.env("KAMAL_LAUNCHER_CACHE_DIR", &cache);
    assert_success(&run_bounded(cmd));
    fs.remount("noexec");
    server.clear_log();
    let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
    cmd.env("KAMAL_LAUNCHER_CACHE_DIR", &cache);
    check("dash, warm", &run_bounded(cmd));
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

// ---- 9a. a second user's run in a shared cache ----

/// A /tmp-style cache, root's and 1777 down to the version directory (the trust rules accept it), with an app
/// and a HOME uid 65534 can use.
fn shared_sticky_cache() -> (App, tempfile::TempDir, PathBuf, tempfile::TempDir) {
    require_root();
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    add_mode(app.path(), 0o755);
    let cache = tempfile::Builder::new()
        .prefix("shared-cache-")
        .tempdir()
        .unwrap();
    let dir = version_dir(cache.path());
    for d in [
        cache.path().to_path_buf(),
        cache.path().join("v2"),
        cache.path().join("v2/launchers"),
        dir.clone(),
    ] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o1777)).unwrap();
    }
    let home = tempfile::Builder::new()
        .prefix("nobody-home-")
        .tempdir()
        .unwrap();
    chown(home.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    (app, cache, dir, home)
}

#[test]
fn another_users_stale_lock_or_files_in_a_shared_cache_are_said_never_a_raw_rm_error() {
    let server = Server::start(&world().root);
    let stale = format!("{}@{}", dead_pid(), hostname());

    // root's run was killed: its lock (root's, in a sticky directory) is one uid 65534 may not remove.
    let (app, cache, dir, home) = shared_sticky_cache();
    let lock = dir.join(".lock");
    symlink(&stale, &lock).unwrap();
    let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
    cmd.env("KAMAL_LAUNCHER_CACHE_DIR", cache.path())
        .env("HOME", home.path());
    let out = run_bounded(command_as_nobody(&cmd));
    assert_eq!(out.code(), Some(1), "{out}");
    for needle in [
        format!("cannot remove the stale lock {}", lock.display()),
        format!(
            "pid {} on {}, which holds it, is gone",
            &stale[..stale.find('@').unwrap()],
            hostname()
        ),
        "belongs to uid 0, another user".to_string(),
        format!("rm {}", lock.display()),
        "KAMAL_LAUNCHER_CACHE_DIR".to_string(),
    ] {
        assert!(out.stderr.contains(&needle), "no {needle:?} in\n{out}");
    }
    assert!(!out.stderr.contains("rm: "), "a raw rm error:\n{out}");
    assert_eq!(server.count(&host_gem_path()), 0);

    // root's run is alive (or its pid is), its work directory private: no progress can be seen, so uid 65534
    // waits for the absolute bound (60 times BUNDLE_TIMEOUT, 6 s here), not for a silent holder's.
    let sleeper = Sleeper::start();
    let alive = format!("{}@{}", sleeper.0.id(), hostname());
    fs::remove_file(&lock).unwrap();
    symlink(&alive, &lock).unwrap();
    let private = dir.join(format!(".tmp.{alive}"));
    fs::create_dir(&private).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let mut waiting = launcher_version(&app, &["dash"], &system_path(), &server);
    waiting
        .env("KAMAL_LAUNCHER_CACHE_DIR", cache.path())
        .env("HOME", home.path())
        .env("BUNDLE_TIMEOUT", "0.1");
    let out = run_bounded(command_as_nobody(&waiting));
    assert_eq!(out.code(), Some(1), "{out}");
    for needle in [
        format!("waiting for pid {}", sleeper.0.id()),
        "longer than a download may take (60 times BUNDLE_TIMEOUT)".to_string(),
        format!("cannot remove the stale lock {}", lock.display()),
    ] {
        assert!(out.stderr.contains(&needle), "no {needle:?} in\n{out}");
    }
    assert!(!out.stderr.contains("3 times BUNDLE_TIMEOUT"), "{out}");
    assert!(!out.stderr.contains("rm: "), "a raw rm error:\n{out}");
    fs::remove_dir(&private).unwrap();
    drop(sleeper);

    // Once the lock is gone, root's private work directory, left behind, is root's to sweep: it is passed by.
    fs::remove_file(&lock).unwrap();
    let work = dir.join(format!(".tmp.{stale}"));
    fs::create_dir(&work).unwrap();
    fs::write(work.join("gem"), b"partial").unwrap();
    fs::set_permissions(&work, fs::Permissions::from_mode(0o700)).unwrap();
    let out = run_bounded(command_as_nobody(&cmd));
    assert_success(&out);
    assert_eq!(out.stdout, expected_version(), "{out}");
    assert!(!out.stderr.contains("rm: "), "a raw rm error:\n{out}");
    assert_eq!(server.count(&host_gem_path()), 1);
    assert!(work.exists());
}

// ---- 9d. a relative HOME ----

#[test]
fn a_relative_home_is_no_home_as_the_launcher_says_and_nothing_lands_in_the_app() {
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    let before = entries(app.path());
    let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
    cmd.env("HOME", "relative-home");
    let out = run_bounded(cmd);
    assert_eq!(out.code(), Some(1), "{out}");
    for needle in [
        "no cache directory: HOME (\"relative-home\") is not an absolute path (nor XDG_CACHE_HOME), so the default ~/.cache/kamal-launcher has no place to go",
        "hint: set KAMAL_LAUNCHER_CACHE_DIR to the directory the cache should live in",
    ] {
        assert!(out.stderr.contains(needle), "no {needle:?} in\n{out}");
    }
    assert_eq!(entries(app.path()), before, "the shim wrote into the app");
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    // Unset, the words are the launcher's own (error.rs).
    let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
    cmd.env_remove("HOME");
    let out = run_bounded(cmd);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains(
            "no cache directory: HOME is not set (nor XDG_CACHE_HOME), so the default ~/.cache/kamal-launcher has no place to go"
        ),
        "{out}"
    );
}

// ---- 9f. why a wget download failed ----

#[test]
fn every_downloader_says_why_a_download_failed_never_a_credential() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    // What each says, after `could not download URL:` (or in the line about the server).
    let cases: [(&str, Option<Fault>, [&str; 3]); 4] = [
        (
            "a connection closed before any answer",
            Some(Fault::Disconnect),
            [
                "curl: (52) Empty reply from server",
                "No data received.",
                "wget: error getting response",
            ],
        ),
        (
            "a body cut short",
            Some(Fault::Truncate(4096)),
            [
                "transfer closed with",
                "Connection closed at byte 4096. Giving up.",
                "wget: connection closed prematurely",
            ],
        ),
        (
            "a server that is down",
            None,
            [
                "(could not connect",
                "(connection refused",
                "(connection refused",
            ],
        ),
        (
            "an error status",
            Some(Fault::Status(503)),
            ["answered HTTP 503 Service Unavailable"; 3],
        ),
    ];
    for (i, tool) in Tool::all().into_iter().enumerate() {
        let (shell, path, _guard) = tool.setup();
        for (label, fault, said) in &cases {
            let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
            let server = Server::start(&world().root);
            let mut cmd = launcher_version(&app, shell, &path, &server);
            cmd.env("BUNDLE_RETRY", "1");
            match fault {
                Some(fault) => server.set_fault(&host_gem_path(), fault.clone()),
                // With credentials, which GNU Wget takes in the URL and prints with each try. (BusyBox's wget is
                // refused them: it would send them on through a redirect.)
                None if tool != Tool::BusyBox => {
                    cmd.env(
                        "BUNDLE_MIRROR__ALL",
                        format!("http://deploy:{SECRET}@127.0.0.1:{closed}/"),
                    );
                }
                None => {
                    cmd.env("BUNDLE_MIRROR__ALL", format!("http://127.0.0.1:{closed}/"));
                }
            }
            let out = run_bounded(cmd);
            let label = format!("{tool:?}, {label}");
            assert_eq!(out.code(), Some(1), "{label}: {out}");
            assert!(
                out.stderr.contains(said[i]),
                "{label}: no {:?} in\n{out}",
                said[i]
            );
            for noise in [SECRET, "Content-Length", "HTTP/1.1 200"] {
                assert!(!out.stderr.contains(noise), "{label}: {noise:?} in\n{out}");
            }
        }
    }
}

// ---- 9e. a filesystem out of inodes ----

#[test]
fn a_filesystem_out_of_inodes_is_said_so_not_called_a_full_disk() {
    let fs = match Tmpfs::mount("size=16m,nr_inodes=64,mode=0755") {
        Ok(fs) => fs,
        Err(why) => return skip_loudly("a cache without inodes", &why),
    };
    let app = App::new(&lockfile(Bundler::V269, Some(&own_version())));
    let server = Server::start(&world().root);
    let cache = fs.path().join("cache");
    let dir = version_dir(&cache);
    let mut ballast = Vec::new();
    for i in 0.. {
        let file = fs.path().join(format!("inode-{i}"));
        if fs::File::create(&file).is_err() {
            break;
        }
        ballast.push(file);
    }
    let run = || {
        let mut cmd = launcher_version(&app, &["dash"], &system_path(), &server);
        cmd.env("KAMAL_LAUNCHER_CACHE_DIR", &cache);
        run_bounded(cmd)
    };
    let check = |label: &str, out: &Output, needles: &[String]| {
        assert_eq!(out.code(), Some(1), "{label}: {out}");
        for needle in needles {
            assert!(
                out.stderr.contains(needle),
                "{label}: no {needle:?} in\n{out}"
            );
        }
        assert!(!out.stderr.contains("is full"), "{label}: {out}");
        assert!(
            out.stderr
                .contains("KAMAL_LAUNCHER_CACHE_DIR to a directory of your own on another one")
                || out
                    .stderr
                    .contains("KAMAL_LAUNCHER_CACHE_DIR to a directory on another one"),
            "{label}: {out}"
        );
        assert_eq!(server.count(&host_gem_path()), 0, "{label}");
    };

    // Not an inode left: the lock cannot be made.
    check(
        "no inode",
        &run(),
        &[format!(
            "cannot create the lock {}/.lock: No space left on device: the filesystem holding {} has run out of inodes",
            dir.display(),
            dir.display()
        )],
    );

    // Two: the lock and the work directory are made, the first file in it is not.
    for file in ballast.iter().rev().take(2) {
        fs::remove_file(file).unwrap();
    }
    check(
        "two inodes",
        &run(),
        &[format!(
            "the filesystem holding {} has run out of inodes: fetching kamal-launcher could not create a file there, though",
            dir.display()
        )],
    );
    assert_eq!(entries(&dir), Vec::<String>::new(), "left behind");
}
