//! The live progress line and Ctrl-C, seen on a real terminal (a pseudo-terminal 60, 80 and 160 columns wide, with
//! colour and without): the launcher reads the window's width itself, as it does for users, and what the terminal
//! shows is read back through an emulator (`support::pty`). The install is held at known points by events, never by
//! time: a download stalled by the gem server, a native build held by a stand-in `make` until a file appears.
//!
//! What must hold: totals are known from the first frame (`/6`), labels align, a native build says so, the line
//! never reaches the last column (an echoed `^C` included), and on Ctrl-C the line is erased, never drawn again,
//! and one line says what was kept.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use support::pty::{Pty, Terminal};
use support::screen::{Look, assert_screen, stable};
use support::{App, Fault, Launcher, Lock, Server, entries, fixtures};

/// Generous bound for waits on events (a cold install builds a C extension).
pub(crate) const WAIT: Duration = Duration::from_secs(120);

/// The terminal's height: the whole install fits on it.
const ROWS: u16 = 24;

/// The root gem's download, which the server stalls to hold the downloads' line.
pub(crate) const KAMAL_GEM: &str = "/gems/kamal-2.7.0.gem";

/// Stands in for `make` (RubyGems runs `$MAKE`): says it has started, waits for the test's go-ahead (a file), then
/// runs the real make. RubyGems runs it for `clean`, the build and `install`: the first call holds them all.
pub(crate) const HELD_MAKE: &str = r#"#!/bin/sh
: > "$KL_TEST_BUILDS/started"
while [ ! -e "$KL_TEST_BUILDS/go" ]; do sleep 0.05; done
exec "$KL_TEST_REAL_MAKE" "$@"
"#;

/// A native build held until [`HeldBuild::go`].
struct HeldBuild {
    dir: tempfile::TempDir,
}

impl HeldBuild {
    fn new() -> HeldBuild {
        let dir = tempfile::tempdir().unwrap();
        let make = dir.path().join("make");
        fs::write(&make, HELD_MAKE).unwrap();
        fs::set_permissions(&make, fs::Permissions::from_mode(0o755)).unwrap();
        HeldBuild { dir }
    }

    /// The launcher's `install` on a terminal: its window's width is what it reads (no `COLUMNS`); colour is the
    /// terminal's default, or off with `NO_COLOR`.
    fn command(&self, launcher: &Launcher, look: Look) -> Command {
        let real_make = support::which("make").expect("make on PATH");
        let mut launcher = launcher
            .clone()
            .arg("install")
            .env("MAKE", self.dir.path().join("make"))
            .env("KL_TEST_BUILDS", self.dir.path())
            .env("KL_TEST_REAL_MAKE", real_make)
            // Several installs at once, as on any machine with cores: the others finish while the build is held.
            .env("KAMAL_LAUNCHER_JOBS", "4")
            .env_remove("COLUMNS")
            .env_remove("CLICOLOR_FORCE");
        launcher = if look.color {
            launcher.env_remove("NO_COLOR")
        } else {
            launcher.env("NO_COLOR", "1")
        };
        launcher.command()
    }

    fn started(&self) -> bool {
        self.dir.path().join("started").exists()
    }

    fn go(&self) {
        fs::write(self.dir.path().join("go"), "").unwrap();
    }
}

/// Waits for something on the file system (a file appearing is the event).
pub(crate) fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A progress line's labels.
const LABELS: [&str; 3] = ["Downloading [", "Installing [", "Building ["];

fn is_progress(line: &str) -> bool {
    LABELS.iter().any(|l| line.contains(l))
}

/// Without colour escapes.
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Every progress frame the launcher drew (`\r` FRAME `ESC[K`), without colour.
fn frames(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    text.split('\r')
        .filter_map(|part| part.split_once("\x1b[K").map(|(frame, _)| plain(frame)))
        .filter(|frame| is_progress(frame))
        .collect()
}

/// A screen for review: stable times, one spinner glyph, sizes' digits as `#` (they depend on how Ruby's zlib
/// compressed the fixtures; their form and alignment do not).
fn reviewed(screen: &Terminal) -> String {
    let text = stable(&screen.text(), &[]);
    let spinner = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let text: String = text
        .chars()
        .map(|c| if spinner.contains(&c) { '⠋' } else { c })
        .collect();
    text.lines()
        .map(|line| {
            let Some(at) = line.find(" KiB").or_else(|| line.find(" MiB")) else {
                return line.to_string();
            };
            let start = line[..at]
                .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
                .map_or(0, |i| i + 1);
            let digits: String = line[start..at]
                .chars()
                .map(|c| if c == '.' { '.' } else { '#' })
                .collect();
            format!("{}{digits}{}", &line[..start], &line[at..])
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// What every frame and the terminal must show, whatever the moment: the total from the start, labels in one
/// column, never the last column (the `^C` echo included), nothing this emulator does not know.
fn assert_well_drawn(raw: &[u8], screen: &Terminal, look: Look) {
    let frames = frames(raw);
    assert!(!frames.is_empty(), "no progress was drawn");
    let width = usize::from(look.width);
    let column = frames[0].find('[');
    for frame in &frames {
        assert!(frame.contains("/6"), "a frame without the total: {frame:?}");
        assert!(
            frame.chars().count() <= width - 3,
            "a frame leaves no room for ^C: {frame:?}"
        );
        assert_eq!(frame.find('['), column, "labels do not align: {frame:?}");
    }
    for line in &screen.last_column {
        assert!(
            !is_progress(line) && !line.contains("^C"),
            "the last column was reached: {line:?}"
        );
    }
    assert_eq!(screen.unknown, Vec::<String>::new());
}

/// An install watched on a terminal: the downloads' line while the last download is stalled, the install's line
/// while the native extension builds (everything else done), and the screen once it is over.
fn watch_an_install(look: Look) {
    let server = Server::start(&fixtures().dir);
    let app = App::new(&Lock::new(server.url()));
    let launcher = Launcher::new(app.path());
    let held = HeldBuild::new();
    server.set_fault(KAMAL_GEM, Fault::StallAfter(1024));
    let mut pty = Pty::spawn(held.command(&launcher, look), look.width, ROWS);

    server.wait_for_stalled(1, WAIT);
    pty.wait_for("the other five downloads done", WAIT, |t| {
        let line = t.cursor_line();
        line.contains("Downloading [") && line.contains("5/6")
    });
    let downloading = pty.screen();
    server.release();
    pty.wait_for("the native build going on alone", WAIT, |t| {
        let line = t.cursor_line();
        line.contains("Installing [")
            && line.contains("5/6")
            && line.contains("building fixture_ext")
    });
    wait_until("the native build", || held.started());
    let building = pty.screen();
    held.go();
    let (status, raw) = pty.wait(WAIT);
    let done = Terminal::show(&raw, usize::from(look.width), usize::from(ROWS));
    assert!(status.success(), "{status}:\n{}", done.text());

    assert_well_drawn(&raw, &done, look);
    // Erased once over: nothing of it is left on the screen.
    assert!(
        !done.plain_lines().iter().any(|l| is_progress(l)),
        "{}",
        done.text()
    );
    assert_screen("progress_downloading", look, &reviewed(&downloading));
    assert_screen("progress_building", look, &reviewed(&building));
    assert_screen("progress_done", look, &reviewed(&done));
}

/// Ctrl-C typed on the terminal while a download is stalled and the native extension builds, the four other gems
/// installed: the launcher stops everything, erases its line for good and says what it kept, which is all there is.
fn press_ctrl_c(look: Look) {
    let server = Server::start(&fixtures().dir);
    let app = App::new(&Lock::new(server.url()));
    let launcher = Launcher::new(app.path());
    let held = HeldBuild::new();
    server.set_fault(KAMAL_GEM, Fault::StallAfter(1024));
    let mut pty = Pty::spawn(held.command(&launcher, look), look.width, ROWS);

    server.wait_for_stalled(1, WAIT);
    wait_until("the native build", || held.started());
    wait_until("the four other installs", || {
        launcher.store_units().len() == 4
    });
    pty.wait_for("the other five downloads done", WAIT, |t| {
        t.cursor_line().contains("Downloading [") && t.cursor_line().contains("5/6")
    });
    pty.send(b"\x03");
    let (status, raw) = pty.wait(WAIT);
    let screen = Terminal::show(&raw, usize::from(look.width), usize::from(ROWS));
    assert_eq!(status.code(), Some(130), "{status}:\n{}", screen.text());

    assert_well_drawn(&raw, &screen, look);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("^C"), "the terminal echoed no ^C: {text:?}");
    let summary = "interrupted: 5 downloads and 4 installed gems kept; nothing half-installed";
    // Erased, then the one line, then nothing: never drawn again.
    assert!(
        text.ends_with(&format!("\r\x1b[2K{summary}\r\n")),
        "{text:?}"
    );
    // (A narrow terminal wraps it: compared without the spaces the wrap may eat.)
    let no_spaces = |s: &str| s.replace(' ', "");
    assert_eq!(
        no_spaces(&screen.plain_lines().concat()),
        no_spaces(summary),
        "{}",
        screen.text()
    );
    // What it says is what there is: five verified downloads, four installed gems, nothing else.
    let root = launcher.layout_root();
    let downloads = entries(&root.join("downloads"));
    assert_eq!(downloads.len(), 5, "{downloads:?}");
    assert_eq!(launcher.store_units().len(), 4);
    assert_eq!(entries(&root.join("tmp")), Vec::<String>::new());
    assert_eq!(launcher.env_dirs(), Vec::<String>::new());
    assert_screen("progress_interrupted", look, &reviewed(&screen));
}

fn looks(width: u16) -> [Look; 2] {
    [false, true].map(|color| Look { width, color })
}

#[test]
fn progress_at_60_columns() {
    looks(60).into_iter().for_each(watch_an_install);
}

#[test]
fn progress_at_80_columns() {
    looks(80).into_iter().for_each(watch_an_install);
}

#[test]
fn progress_at_160_columns() {
    looks(160).into_iter().for_each(watch_an_install);
}

#[test]
fn ctrl_c_at_60_columns() {
    looks(60).into_iter().for_each(press_ctrl_c);
}

#[test]
fn ctrl_c_at_80_columns() {
    looks(80).into_iter().for_each(press_ctrl_c);
}

#[test]
fn ctrl_c_at_160_columns() {
    looks(160).into_iter().for_each(press_ctrl_c);
}
