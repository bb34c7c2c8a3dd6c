//! `doctor` as a checklist a user can act on (issue 19, points 2 and 7): a missing pin warns (exit 0) with its fix
//! and the alternatives; the gem-source check asks the source for the root gem and fails one that cannot serve it
//! (a typo'd URL, a server that is down); once kamal is installed, its own Ruby requirement is checked against the
//! Ruby in use; `hint:` starts where the message does, at every width.

use crate::support;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use support::screen::{Look, assert_screens, stable};
use support::{App, Launcher, Lock, Output, Server, assert_success, fixtures};

/// A port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// An app as `init` leaves it: bin/kamal, the pre-deploy hook.
fn initialised(lock: &Lock) -> App {
    let app = App::new(lock);
    assert_success(&Launcher::new(app.path()).arg("init").run());
    app
}

/// What this machine's Ruby says of itself, to name it in snapshots: its path on PATH, version, compiler, header.
fn ruby_facts() -> Vec<(String, &'static str)> {
    let ruby = support::which("ruby").expect("ruby on PATH");
    let out = Command::new(&ruby)
        .args([
            "-rrbconfig",
            "-e",
            r#"puts RUBY_VERSION, RbConfig::CONFIG["CC"].to_s.split.first.to_s, File.join(RbConfig::CONFIG["rubyhdrdir"].to_s, "ruby.h"), RbConfig.ruby"#,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    vec![
        (ruby.display().to_string(), "[RUBY]"),
        (lines[3].to_string(), "[RUBY]"),
        (lines[2].to_string(), "[RUBY_H]"),
        (format!("{} compiles C", lines[1]), "[CC] compiles C"),
        (
            format!("is Ruby {} (", lines[0]),
            "is Ruby [RUBY_VERSION] (",
        ),
    ]
}

/// `doctor` in `app` as `look` shows it, with this machine's and this run's particulars named. Doctor wraps to the
/// terminal's width, and a path or a version of another length would wrap elsewhere: the screen is taken apart
/// into its checks (a test that the launcher wrapped them exactly as [`rewrap`] does), named, and wrapped again.
fn doctor(app: &Path, launcher: &Launcher, look: Look) -> (Output, String) {
    let out = look.apply(launcher.clone()).arg("doctor").run();
    let app_dir = app.display().to_string();
    let cache = launcher.cache_path().display().to_string();
    let mut names = ruby_facts();
    names.push((app_dir, "[APP]"));
    names.push((cache, "[CACHE]"));
    // The pinned launcher's gem for this machine (the list of those locked is the same everywhere).
    let version = env!("CARGO_PKG_VERSION").replace('-', ".");
    let host = kamal_launcher::pinned::machine_platforms()[0];
    names.push((
        format!("kamal-launcher-{version}-{host}"),
        "kamal-launcher-[VERSION]-[HOST]",
    ));
    names.push((
        format!("kamal-launcher {version}"),
        "kamal-launcher [VERSION]",
    ));
    let pairs: Vec<(&str, &str)> = names.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    let width = usize::from(look.width);
    let lines = logical_lines(&out.stdout);
    assert_eq!(
        rewrap(&lines, width, &|t| t.to_string()),
        out.stdout,
        "doctor's lines are not wrapped to {width} columns under their message:\n{out}"
    );
    let named = rewrap(&lines, width, &|t| stable(t, &pairs));
    let mut screen = format!("exit: {}\n--- stdout\n", out.code().unwrap_or(-1));
    screen.push_str(&named.replace('\x1b', "␛"));
    if !out.stderr.is_empty() {
        screen.push_str("--- stderr\n");
        screen.push_str(&stable(&out.stderr, &pairs));
    }
    (out, screen)
}

/// A line of doctor's as printed before wrapping: a check (its mark and name as printed, its detail, its fix
/// label as printed and its fix), or any other line.
enum Logical {
    Check {
        head: String,
        detail: String,
        fix: Option<(String, String)>,
    },
    Other(String),
}

/// Columns `text` takes on a terminal: its characters, less colour escapes.
fn columns(text: &str) -> usize {
    let mut n = 0;
    let mut escape = false;
    for c in text.chars() {
        match (escape, c) {
            (false, '\x1b') => escape = true,
            (true, 'm') => escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// Doctor's output taken back to one line per check (and one per fix).
fn logical_lines(stdout: &str) -> Vec<Logical> {
    let mut lines: Vec<Logical> = Vec::new();
    for line in stdout.lines() {
        let rest = line.trim_start();
        if rest.len() == line.len() {
            lines.push(match line.find(": ") {
                Some(at) if line.starts_with(['o', 'w', 'F', '\x1b']) => Logical::Check {
                    head: line[..at + 2].to_string(),
                    detail: line[at + 2..].to_string(),
                    fix: None,
                },
                _ => Logical::Other(line.to_string()),
            });
            continue;
        }
        let Some(Logical::Check { detail, fix, .. }) = lines.last_mut() else {
            panic!("an indented line without a check: {line:?}\n{stdout}");
        };
        match (fix.as_mut(), rest.find("hint:")) {
            (None, Some(at)) if at <= 5 => {
                let label_end = rest[at..].find(' ').map_or(rest.len(), |i| at + i + 1);
                let indent = line.len() - rest.len();
                *fix = Some((
                    format!("{}{}", &line[..indent], &rest[..label_end]),
                    rest[label_end..].to_string(),
                ));
            }
            (Some((_, text)), _) => {
                text.push(' ');
                text.push_str(rest);
            }
            (None, _) => {
                detail.push(' ');
                detail.push_str(rest);
            }
        }
    }
    lines
}

/// The lines again, each text passed through `name` and wrapped as doctor wraps: words on a line up to `width`
/// columns, the rest indented under where the text started (the detail under the check's name, the fix under its
/// own start).
fn rewrap(lines: &[Logical], width: usize, name: &dyn Fn(&str) -> String) -> String {
    // Words between spaces; a command in backquotes is one word.
    let words = |text: &str| {
        let mut words: Vec<String> = Vec::new();
        let mut quoted = false;
        for piece in text.split(' ') {
            match words.last_mut() {
                Some(last) if quoted => {
                    last.push(' ');
                    last.push_str(piece);
                }
                _ => words.push(piece.to_string()),
            }
            if piece.matches('`').count() % 2 == 1 {
                quoted = !quoted;
            }
        }
        words
    };
    let wrap = |text: &str, first: usize, indent: usize| {
        let mut out = String::new();
        let mut column = first;
        for (i, word) in words(text).iter().enumerate() {
            let len = word.chars().count();
            if i > 0 && column + 1 + len > width {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                column = indent;
            } else if i > 0 {
                out.push(' ');
                column += 1;
            }
            out.push_str(word);
            column += len;
        }
        out
    };
    let mut out = String::new();
    for line in lines {
        match line {
            Logical::Other(text) => out.push_str(&name(text)),
            Logical::Check { head, detail, fix } => {
                // The name starts after the mark and the spaces that follow it.
                let after_mark = head.find(' ').unwrap_or(0);
                let name_at = head.len() - head[after_mark..].trim_start().len();
                let indent = columns(&head[..name_at]);
                out.push_str(head);
                out.push_str(&wrap(&name(detail), columns(head), indent));
                if let Some((label, text)) = fix {
                    out.push('\n');
                    out.push_str(label);
                    out.push_str(&wrap(&name(text), columns(label), columns(label)));
                }
            }
        }
        out.push('\n');
    }
    out
}

/// The text of check `name`: its line and the lines it wraps onto, joined, without its fix.
fn line(out: &Output, name: &str) -> String {
    let mut lines = out.stdout.lines();
    let first = lines
        .find(|l| l.contains(&format!(" {name}: ")))
        .unwrap_or_else(|| panic!("no {name} check in\n{out}"));
    let mut text = first.to_string();
    for more in lines {
        let rest = more.trim_start();
        if rest.len() == more.len()
            || rest.starts_with("hint:")
            || rest.starts_with("\x1b[36mhint:")
        {
            break;
        }
        text.push(' ');
        text.push_str(rest);
    }
    text
}

/// An app that pins no kamal-launcher, on a machine where one is installed: it works here, so doctor warns with
/// the fix and the alternatives, and exits 0. Before, it failed ("FAIL Launcher pin", exit 1).
#[test]
fn a_missing_pin_is_a_warning_with_its_fix_and_the_alternatives() {
    let server = Server::start(&fixtures().dir);
    let app = initialised(&Lock::new(server.url()));
    let launcher = Launcher::new(app.path());
    assert_screens("doctor_missing_pin", |look| {
        let (out, screen) = doctor(app.path(), &launcher, look);
        assert_eq!(out.code(), Some(0), "{out}");
        let pin = line(&out, "Launcher pin");
        assert!(pin.contains("pins no kamal-launcher"), "{out}");
        for needle in [
            "bundle add kamal-launcher",
            "private gem source",
            "KAMAL_LAUNCHER_BIN",
        ] {
            assert!(out.stdout.contains(needle), "no {needle:?} in\n{out}");
        }
        assert!(
            !out.stdout.contains("FAIL") && !out.stdout.contains('✗'),
            "{out}"
        );
        assert!(!screen.contains("(s)"), "{screen}");
        screen
    });
}

/// An app set up as it should be (pinned, initialised), before anything is installed: every check passes, the gem
/// source lists the locked kamal, and kamal's own Ruby requirement is read from its index entry.
#[test]
fn a_set_up_app_passes_every_check_and_the_source_lists_kamal() {
    let server = Server::start(&fixtures().dir);
    let app = initialised(&Lock::new(server.url()).pin_launcher());
    let launcher = Launcher::new(app.path());
    assert_screens("doctor_all_pass", |look| {
        let (out, screen) = doctor(app.path(), &launcher, look);
        assert_eq!(out.code(), Some(0), "{out}");
        assert!(
            line(&out, "Gem source").contains(&format!("{} lists kamal 2.7.0", server.url())),
            "{out}"
        );
        assert!(
            line(&out, "Ruby").contains("(kamal 2.7.0 requires >= 2.7, says its gem source)"),
            "{out}"
        );
        assert!(out.stdout.contains("checks passed"), "{out}");
        screen
    });
}

/// A source URL with a typo answers 404 for everything: the gem-source check fails with the source's answer and
/// the likely cause. Before, a 404 counted as reachable and the check passed.
#[test]
fn a_source_that_answers_404_for_everything_fails_the_source_check() {
    let server = Server::start(&fixtures().dir);
    let typo = format!("{}gemz/", server.url());
    let app = initialised(&Lock::new(&typo).pin_launcher().with_checksums(false));
    let launcher = Launcher::new(app.path());
    assert_screens("doctor_source_404", |look| {
        let (out, screen) = doctor(app.path(), &launcher, look);
        assert_eq!(out.code(), Some(1), "{out}");
        let source = line(&out, "Gem source");
        assert!(
            source.contains(&typo) && source.contains("HTTP 404"),
            "{out}"
        );
        assert!(out.stdout.contains("compact index"), "{out}");
        screen
    });
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.path == "/gemz/info/kamal"),
        "the source check asks for the root gem's index entry: {:?}",
        server.requests()
    );
}

/// A source that is down: one line about the server, in the launcher's words.
#[test]
fn a_source_that_is_down_fails_the_source_check_in_our_words() {
    let down = format!("http://127.0.0.1:{}/", closed_port());
    let app = initialised(&Lock::new(&down).pin_launcher());
    let launcher = Launcher::new(app.path());
    assert_screens("doctor_source_refused", |look| {
        let (out, screen) = doctor(app.path(), &launcher, look);
        assert_eq!(out.code(), Some(1), "{out}");
        assert!(
            line(&out, "Gem source")
                .contains(&format!("could not reach {down} (connection refused)")),
            "{out}"
        );
        assert!(!out.stdout.contains("os error"), "{out}");
        screen
    });
}

/// Once kamal is installed (from a lockfile without CHECKSUMS, so nothing names its download), its own Ruby
/// requirement is read from what is installed. Before, the Ruby line said the requirement "is checked once it is
/// downloaded" beside a source check saying it was installed.
#[test]
fn once_kamal_is_installed_its_ruby_requirement_is_checked() {
    let server = Server::start(&fixtures().dir);
    let app = initialised(&Lock::new(server.url()).pin_launcher().with_checksums(false));
    let launcher = Launcher::new(app.path());
    assert_success(&launcher.clone().arg("install").run());
    drop(server);
    assert_screens("doctor_installed", |look| {
        let (out, screen) = doctor(app.path(), &launcher, look);
        assert_eq!(out.code(), Some(0), "{out}");
        assert!(
            line(&out, "Ruby").contains("(kamal 2.7.0 requires >= 2.7)"),
            "{out}"
        );
        assert!(!out.stdout.contains("once it is downloaded"), "{out}");
        assert!(line(&out, "Gem source").contains("installed"), "{out}");
        screen
    });
}
