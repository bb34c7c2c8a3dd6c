//! Ctrl-C and TERM sent to the launcher alone (as a supervisor sends them) while a native extension builds: the
//! launcher stops the processes it started, and theirs (make, cc), waits for them, and only then removes its
//! temporary area and exits. Nothing is left running, and nothing is written afterwards into an area whose lock is
//! gone (which no sweep would ever remove).

use crate::support;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{App, Launcher, Lock, Server, assert_success, closure, entries, fixtures};

/// Generous bound for waits on events (a cold run builds a C extension first).
const WAIT: Duration = Duration::from_secs(90);

/// Stands in for `make` (RubyGems runs `$MAKE`): it records its pid, then keeps "building": it writes into its
/// build directory again and again, re-creating the path if it is gone, as RubyGems' `mkdir_p` would.
const SLOW_MAKE: &str = r#"#!/bin/sh
: > "$KL_TEST_BUILDS/$$"
while :; do
  mkdir -p "$PWD" && : > "$PWD/still-building"
  sleep 0.05
done
"#;

/// A process seen by `ps`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Process {
    pid: u32,
    ppid: u32,
    pgid: u32,
    args: String,
}

/// Every live process (zombies are already gone: they only wait to be reaped).
fn processes() -> Vec<Process> {
    let out = Command::new("ps")
        .args([
            "-A", "-o", "pid=", "-o", "ppid=", "-o", "pgid=", "-o", "stat=", "-o", "args=",
        ])
        .output()
        .expect("run ps");
    assert!(out.status.success(), "ps failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let mut number = || fields.next()?.parse::<u32>().ok();
            let (pid, ppid, pgid) = (number()?, number()?, number()?);
            let stat = fields.next()?;
            // The installer's argv is its whole script: the start says enough.
            let args: String = fields
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(80)
                .collect();
            (!stat.starts_with('Z')).then_some(Process {
                pid,
                ppid,
                pgid,
                args,
            })
        })
        .collect()
}

/// The process groups of `root`'s descendants (its own included): a process that leaves the tree (re-parented
/// when its parent exits) keeps its group.
fn groups_below(root: u32) -> BTreeSet<u32> {
    let all = processes();
    let mut tree = BTreeSet::from([root]);
    loop {
        let more: Vec<u32> = all
            .iter()
            .filter(|p| tree.contains(&p.ppid) && !tree.contains(&p.pid))
            .map(|p| p.pid)
            .collect();
        if more.is_empty() {
            break;
        }
        tree.extend(more);
    }
    all.iter()
        .filter(|p| tree.contains(&p.pid))
        .map(|p| p.pgid)
        .collect()
}

/// Live processes in any of `groups`.
fn alive_in(groups: &BTreeSet<u32>) -> Vec<Process> {
    processes()
        .into_iter()
        .filter(|p| groups.contains(&p.pgid))
        .collect()
}

/// Kills whatever a failed assertion left running, so that a failing test does not leave builds behind.
struct KillOnDrop(BTreeSet<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for group in &self.0 {
            let _ = Command::new("/bin/sh")
                .args([
                    "-c",
                    "kill -s KILL -- \"-$0\" 2>/dev/null",
                    &group.to_string(),
                ])
                .status();
        }
    }
}

/// Polls the file system (an event: a file appearing) until `done` holds.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` to the launcher's pid only, while `make` runs for the native extension, and checks that it
/// exits with `code` having stopped everything it started and removed its area; then a plain run installs.
fn interrupted_during_a_native_build(signal: &str, code: i32) {
    let server = Server::start(&fixtures().dir);
    let app = App::new(&Lock::new(server.url()));
    let launcher = Launcher::new(app.path());
    let scratch = tempfile::tempdir().unwrap();
    let make = scratch.path().join("make");
    fs::write(&make, SLOW_MAKE).unwrap();
    fs::set_permissions(&make, fs::Permissions::from_mode(0o755)).unwrap();
    let builds = scratch.path().join("builds");
    fs::create_dir(&builds).unwrap();

    let running = launcher
        .clone()
        .arg("install")
        .env("MAKE", &make)
        .env("KL_TEST_BUILDS", &builds)
        .spawn();
    wait_until("make to start", || !entries(&builds).is_empty());
    let groups = groups_below(running.pid());
    let _cleanup = KillOnDrop(groups.clone());
    let makes: Vec<u32> = entries(&builds)
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        alive_in(&groups).iter().any(|p| makes.contains(&p.pid)),
        "make is not among the install's processes: {:?}",
        alive_in(&groups)
    );

    running.signal(signal);
    let out = running.wait_timeout(WAIT);
    assert_eq!(out.code(), Some(code), "{out}");
    // The launcher exits after its children, not before: nothing of the install runs on.
    assert_eq!(
        alive_in(&groups),
        Vec::new(),
        "still running after the launcher exited\n{out}"
    );
    // With every writer gone, what is in tmp/ now is all there will ever be: nothing, not even a build
    // directory re-created after the area was removed.
    let tmp = launcher.layout_root().join("tmp");
    assert_eq!(entries(&tmp), Vec::<String>::new(), "{out}");
    assert_eq!(launcher.env_dirs(), Vec::<String>::new(), "{out}");

    let out = launcher.clone().arg("install").run();
    assert_success(&out);
    assert_eq!(entries(&tmp), Vec::<String>::new(), "{out}");
    assert_eq!(launcher.store_units().len(), closure().len(), "{out}");
    let out = launcher.clone().args(["exec", "--", "specs"]).run();
    assert_success(&out);
    assert!(out.stdout_lines().contains(&"ext=hello from C"), "{out}");
}

#[test]
fn ctrl_c_during_a_native_build_stops_the_build_before_removing_the_area() {
    interrupted_during_a_native_build("INT", 130);
}

#[test]
fn term_during_a_native_build_stops_the_build_before_removing_the_area() {
    interrupted_during_a_native_build("TERM", 143);
}
