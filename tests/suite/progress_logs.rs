//! Progress off a terminal: a line every so often in a CI log, so a long install is never silent.
//!
//! The interval is shortened with `KAMAL_LAUNCHER_PROGRESS_INTERVAL` (it exists for tests); the install is held at
//! known points by events, never by time: a download stalled by the gem server, a native build held by a
//! stand-in `make` until a file appears. What is awaited is the launcher's own stderr.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::screens_progress::{HELD_MAKE, KAMAL_GEM, WAIT, wait_until};
use support::screen::{Look, assert_screen, stable};
use support::{App, Fault, Launcher, Lock, Running, Server, assert_success, fixtures};

/// A cold `install` with its output going to pipes (a CI log), the root gem's download stalled by the server and
/// the native build held until [`Held::go`].
struct Held {
    server: Server,
    _app: App,
    launcher: Launcher,
    builds: tempfile::TempDir,
}

impl Held {
    fn new(look: Look) -> Held {
        let server = Server::start(&fixtures().dir);
        let app = App::new(&Lock::new(server.url()));
        let builds = tempfile::tempdir().unwrap();
        let make = builds.path().join("make");
        fs::write(&make, HELD_MAKE).unwrap();
        fs::set_permissions(&make, fs::Permissions::from_mode(0o755)).unwrap();
        let launcher = look
            .apply(Launcher::new(app.path()))
            .arg("install")
            .env("KAMAL_LAUNCHER_PROGRESS_INTERVAL", "1s")
            .env("MAKE", &make)
            .env("KL_TEST_BUILDS", builds.path())
            .env(
                "KL_TEST_REAL_MAKE",
                support::which("make").expect("make on PATH"),
            )
            .env("KAMAL_LAUNCHER_JOBS", "4")
            // The stall is the test's: no read timeout may end it first.
            .env("BUNDLE_TIMEOUT", "600");
        server.set_fault(KAMAL_GEM, Fault::StallAfter(1024));
        Held {
            server,
            _app: app,
            launcher,
            builds,
        }
    }

    fn started(&self) -> bool {
        self.builds.path().join("started").exists()
    }

    fn go(&self) {
        fs::write(self.builds.path().join("go"), "").unwrap();
    }
}

/// `verb` as the launcher writes it in `look` (painted with colour).
fn label(verb: &str, look: Look) -> String {
    if look.color {
        format!("\x1b[1;32m{verb}\x1b[0m")
    } else {
        verb.to_string()
    }
}

/// The first line of `text` holding `needle`.
fn line_with<'t>(text: &'t str, needle: &str) -> &'t str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line holds {needle:?}:\n{text}"))
}

/// A log line made stable: sizes and rates (they depend on how Ruby's zlib compressed the fixtures, and on the
/// moment) and the elapsed time become placeholders.
fn reviewed(line: &str) -> String {
    let mut out = stable(line, &[]);
    if let Some(at) = out.find(" at ")
        && let (Some(start), Some(end)) = (out[..at].rfind(", "), out[at..].find("/s"))
    {
        out = format!(
            "{}, [SIZE] at [RATE]/s{}",
            &out[..start],
            &out[at + end + 2..]
        );
    }
    if let Some(end) = out.find(" elapsed)")
        && let Some(start) = out[..end].rfind('(')
    {
        out = format!("{}([ELAPSED]{}", &out[..start], &out[end..]);
    }
    out
}

/// Lines that are the launcher's progress in a log.
fn progress_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(" elapsed)")).collect()
}

/// An install whose output is a CI log: a line while the last download is stalled (the others done, what was
/// received and the rate, what it waits on), a line while the native extension builds alone, then the summary.
/// Nothing a terminal needs (`\r`, erasing) reaches the log.
fn log_an_install(look: Look) {
    let held = Held::new(look);
    let mut run = held.launcher.spawn();
    held.server.wait_for_stalled(1, WAIT);
    let downloading = format!("{}: 5 of 6 gems, ", label("Downloading", look));
    run.wait_for_stderr(&downloading, WAIT);
    held.server.release();
    let building = format!(
        "{}: 5 of 6 gems; building fixture_ext (native extension) (",
        label("Installing", look)
    );
    run.wait_for_stderr(&building, WAIT);
    wait_until("the native build", || held.started());
    held.go();
    let out = run.wait_timeout(WAIT);
    assert_success(&out);

    let stderr = &out.stderr;
    assert!(
        !stderr.contains('\r') && !stderr.contains("\x1b[2K") && !stderr.contains("\x1b[K"),
        "terminal drawing in a log: {stderr:?}"
    );
    for line in progress_lines(stderr) {
        assert!(line.contains(" of 6 gems"), "{line:?}\n{stderr}");
    }
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("kamal 2.7.0: 6 gems verified and ready in "),
        "the summary is not the last word:\n{stderr}"
    );
    let text = [
        line_with(stderr, &downloading),
        line_with(stderr, &building),
        last,
    ]
    .map(reviewed)
    .join("\n")
        + "\n";
    assert_screen("progress_log", look, &text);
}

#[test]
fn a_long_install_says_where_it_is_in_a_log() {
    for color in [false, true] {
        log_an_install(Look { width: 80, color });
    }
}

/// A cold install that ends within the first interval (the default, 30 s) prints its summary and nothing else;
/// a warm run prints nothing at all.
#[test]
fn a_quick_install_stays_quiet_in_a_log() {
    let server = Server::start(&fixtures().dir);
    let app = App::new(&Lock::new(server.url()));
    let launcher = Launcher::new(app.path());
    let out = launcher.clone().arg("install").run();
    assert_success(&out);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].starts_with("kamal 2.7.0: 6 gems verified and ready in "),
        "{out}"
    );
    let warm = launcher.clone().args(["exec", "--", "version"]).run();
    assert_success(&warm);
    assert_eq!(warm.stderr, "", "{warm}");
}

/// Interrupted in a log while a download is stalled and the native extension builds: the interrupt's line is the
/// last one, saying what was kept, and no progress line follows it.
#[test]
fn an_interrupt_in_a_log_has_the_last_word() {
    let look = Look {
        width: 80,
        color: false,
    };
    let held = Held::new(look);
    let mut run: Running = held.launcher.spawn();
    held.server.wait_for_stalled(1, WAIT);
    wait_until("the native build", || held.started());
    wait_until("the four other installs", || {
        held.launcher.store_units().len() == 4
    });
    run.wait_for_stderr("Downloading: 5 of 6 gems, ", WAIT);
    run.signal_group("INT");
    let out = run.wait_timeout(WAIT);
    assert_eq!(out.code(), Some(130), "{out}");
    assert!(
        out.stderr.ends_with(
            "\ninterrupted: 5 downloads and 4 installed gems kept; nothing half-installed\n"
        ),
        "{out}"
    );
    assert!(!progress_lines(&out.stderr).is_empty(), "{out}");
}
