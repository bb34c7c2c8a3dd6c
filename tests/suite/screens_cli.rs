//! Screens of the launcher's own command line (issue 19, points 3, 4, 8 and 9), at 60, 80 and 160 columns with
//! colour on and off: help that fits the terminal and offers each command only its own options; a kamal command
//! given to the launcher pointing to where kamal runs; values refused in the launcher's words, naming the
//! variable they came from; advice that names what works where the user is (`bin/kamal`, a `kamal` link, or
//! `kamal-launcher`); cache maintenance naming the directory; the summary line. And what is not a screen: a
//! closed pipe is a quiet exit, and no message carries Rust's `(os error N)`.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::support;
use support::screen::{Look, assert_screens, stable, transcript};
use support::{App, Launcher, Lock, Output, Server, copy_tree, fixtures};

const BIN: &str = env!("CARGO_BIN_EXE_kamal-launcher");

/// The launcher in `dir`, looking like `look`, with a cache of its own.
fn launcher(dir: &Path, look: Look) -> Launcher {
    look.apply(Launcher::new(dir))
}

/// Sizes (`114.5 KiB`) become `[SIZE]`: they change with every byte of the fixtures and of boot.rb.
fn sizes_placeholder(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut words = text.split(' ').peekable();
    let mut first = true;
    while let Some(word) = words.next() {
        let unit = words
            .peek()
            .map(|u| u.trim_end_matches([',', ';', ')', '\n']));
        let is_size = !word.is_empty()
            && word.chars().all(|c| c.is_ascii_digit() || c == '.')
            && matches!(unit, Some("B" | "KiB" | "MiB" | "GiB"));
        if !first {
            out.push(' ');
        }
        first = false;
        if is_size {
            let unit = words.next().unwrap_or_default();
            let rest = unit.trim_start_matches(|c: char| c.is_ascii_alphabetic());
            out.push_str("[SIZE]");
            out.push_str(rest);
        } else {
            out.push_str(word);
        }
    }
    out
}

/// The run as a user sees it, with this run's paths named.
fn screen(out: &Output, launcher: &Launcher, app: &Path) -> String {
    let app_dir = app.display().to_string();
    let real_app = fs::canonicalize(app).map_or(app_dir.clone(), |p| p.display().to_string());
    let cache = launcher.cache_path().display().to_string();
    let home = launcher.home_path().display().to_string();
    stable(
        &sizes_placeholder(&transcript(out)),
        &[
            (real_app.as_str(), "[APP]"),
            (app_dir.as_str(), "[APP]"),
            (cache.as_str(), "[CACHE]"),
            (home.as_str(), "[HOME]"),
        ],
    )
}

/// Runs `launcher` with `args`.
fn run(launcher: &Launcher, args: &[&str]) -> Output {
    launcher.clone().args(args).run()
}

/// The text a person reads: colour escapes removed.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
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

#[track_caller]
fn assert_fits(text: &str, width: u16) {
    for line in plain(text).lines() {
        assert!(
            line.chars().count() <= usize::from(width),
            "wider than {width} columns: {line:?}\n{text}"
        );
    }
}

#[track_caller]
fn assert_says(out: &Output, needles: &[&str]) {
    for needle in needles {
        assert!(
            plain(&out.stderr).contains(needle),
            "no {needle:?} in:\n{out}"
        );
    }
}

#[track_caller]
fn assert_never_says(out: &Output, needles: &[&str]) {
    let all = format!("{}{}", out.stdout, out.stderr);
    for needle in needles {
        assert!(!all.contains(needle), "{needle:?} in:\n{out}");
    }
}

/// An app locking the fixture kamal from `server`.
fn app(server: &Server) -> App {
    App::new(&Lock::new(server.url()))
}

/// `bin/kamal` as `init` writes it, in `app`.
fn write_shim(app: &App) -> PathBuf {
    let shim = app.path().join("bin/kamal");
    fs::create_dir_all(shim.parent().unwrap()).unwrap();
    fs::write(&shim, kamal_launcher::init::shim("Gemfile.lock")).unwrap();
    fs::set_permissions(&shim, fs::Permissions::from_mode(0o755)).unwrap();
    shim
}

/// `bin/kamal ARGS` with `launcher`'s environment, the shim finding the launcher under test.
fn run_shim(launcher: &Launcher, shim: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = launcher.command_for(shim);
    cmd.env("KAMAL_LAUNCHER_BIN", BIN).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    support::spawn(cmd).wait()
}

/// A `kamal` link to the launcher, as `install.sh --as-kamal` makes.
fn kamal_link() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("kamal");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    (dir, link)
}

fn run_link(launcher: &Launcher, link: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = launcher.command_for(link);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    support::spawn(cmd).wait()
}

// ---- Point 4: help fits the terminal ----

/// Before: help never wrapped (lines of 120 columns and more at any width), every command listed all ten
/// shared options (`completions --jobs`) among its own, and `--ruby`'s text ran over three lines.
#[test]
fn help_wraps_to_the_terminal_and_offers_each_command_its_own_options() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("cli_help", &["--help"][..]),
        ("cli_help_exec", &["exec", "--help"][..]),
        ("cli_help_cache_prune", &["cache", "prune", "--help"][..]),
        ("cli_help_completions", &["completions", "--help"][..]),
    ] {
        assert_screens(name, |look| {
            let launcher = launcher(dir.path(), look);
            let out = run(&launcher, args);
            assert_eq!(out.code(), Some(0), "{out}");
            assert_eq!(out.stderr, "", "{out}");
            // Up to 100 columns: wider lines are hard to read.
            assert_fits(&out.stdout, look.width.min(100));
            assert_eq!(
                out.stdout.contains('\x1b'),
                look.color,
                "clap's colour follows NO_COLOR and CLICOLOR_FORCE:\n{out}"
            );
            screen(&out, &launcher, dir.path())
        });
    }
    let out = run(&Launcher::new(dir.path()), &["completions", "--help"]);
    assert_never_says(&out, &["--jobs", "--offline", "Global options"]);
    let out = run(&Launcher::new(dir.path()), &["cache", "prune", "--help"]);
    let (own, global) = (
        out.stdout.find("--dry-run").unwrap(),
        out.stdout.find("Global options:").unwrap(),
    );
    assert!(own < global, "its own options first:\n{out}");
    assert_never_says(&out, &["--jobs", "--ruby", "--allow-unverified"]);
}

/// Before: `error: 'kamal-launcher' requires a subcommand but one was not provided` and a usage line.
#[test]
fn no_command_prints_the_help() {
    let dir = tempfile::tempdir().unwrap();
    assert_screens("cli_no_command", |look| {
        let launcher = launcher(dir.path(), look);
        let out = run(&launcher, &[]);
        assert_eq!(out.code(), Some(2), "{out}");
        assert_says(&out, &["Commands:", "exec", "Examples:"]);
        screen(&out, &launcher, dir.path())
    });
    // Only options, no command: the same help. Before: "requires a subcommand but one was not provided".
    let out = run(&Launcher::new(dir.path()), &["-v"]);
    assert_eq!(out.code(), Some(2), "{out}");
    assert_says(&out, &["Commands:", "Global options:"]);
    // A typo under `cache` is the launcher's own, not a kamal command.
    let out = run(&Launcher::new(dir.path()), &["cache", "frob"]);
    assert_eq!(out.code(), Some(2), "{out}");
    assert_never_says(&out, &["bin/kamal", "exec --"]);
}

/// Before: `error: unrecognized subcommand 'deploy'` with clap's usage line, and nothing about kamal.
#[test]
fn a_kamal_command_given_to_the_launcher_points_to_kamal() {
    let dir = tempfile::tempdir().unwrap();
    assert_screens("cli_kamal_command", |look| {
        let launcher = launcher(dir.path(), look);
        let out = run(&launcher, &["deploy", "-d", "staging"]);
        assert_eq!(out.code(), Some(2), "{out}");
        assert_says(
            &out,
            &[
                "`bin/kamal deploy -d staging`",
                "`kamal-launcher exec -- deploy -d staging`",
            ],
        );
        screen(&out, &launcher, dir.path())
    });
    // A typo of the launcher's own keeps clap's suggestion, under the launcher's one hint label.
    assert_screens("cli_unknown_command", |look| {
        let launcher = launcher(dir.path(), look);
        let out = run(&launcher, &["instal"]);
        assert_eq!(out.code(), Some(2), "{out}");
        assert_says(&out, &["hint:", "'install'"]);
        assert_never_says(&out, &["tip:"]);
        screen(&out, &launcher, dir.path())
    });
}

// ---- Point 8: our words, never Rust's ----

/// Before: `--jobs 0` said "number would be zero for non-zero type", `--older-than 1w` "invalid digit found in
/// string", and `KAMAL_LAUNCHER_JOBS=0` named `--jobs`, not the variable the value came from.
#[test]
fn values_are_refused_in_the_launchers_words_naming_where_they_came_from() {
    let server = Server::start(&fixtures().dir);
    let app = app(&server);
    assert_screens("cli_jobs_zero", |look| {
        let launcher = launcher(app.path(), look);
        let out = run(&launcher, &["--jobs", "0", "install"]);
        assert_eq!(out.code(), Some(2), "{out}");
        assert_never_says(&out, &["non-zero type"]);
        screen(&out, &launcher, app.path())
    });
    assert_screens("cli_jobs_env", |look| {
        let launcher = launcher(app.path(), look).env("KAMAL_LAUNCHER_JOBS", "many");
        let out = run(&launcher, &["install"]);
        assert_eq!(out.code(), Some(2), "{out}");
        assert_says(&out, &["KAMAL_LAUNCHER_JOBS is `many`", "hint:"]);
        assert_never_says(&out, &["--jobs", "invalid digit"]);
        screen(&out, &launcher, app.path())
    });
    assert_screens("cli_older_than", |look| {
        let launcher = launcher(app.path(), look);
        let out = run(&launcher, &["cache", "prune", "--older-than", "1y"]);
        assert_eq!(out.code(), Some(2), "{out}");
        assert_never_says(&out, &["invalid digit"]);
        screen(&out, &launcher, app.path())
    });
    // Weeks are understood.
    let out = run(
        &Launcher::new(app.path()),
        &["cache", "prune", "--older-than", "2w", "--dry-run"],
    );
    assert_eq!(out.code(), Some(0), "{out}");
}

/// Before: `kamal-launcher completions bash | head -3` panicked ("failed printing to stdout: Broken pipe (os
/// error 32)", exit 101); so did every command printing its result to a reader that went away.
#[test]
fn a_closed_pipe_is_a_quiet_exit() {
    let server = Server::start(&fixtures().dir);
    let app = app(&server);
    for args in [
        &["completions", "bash"][..],
        &["--help"],
        &["cache", "dir"],
        &["cache", "key"],
        &["plan"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = Launcher::new(app.path()).command();
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}: {status}\n{stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}

/// Before: a cache directory under a file read "creating … : Not a directory (os error 20)" (and so did
/// `doctor`), and a source that refuses connections "… Connection refused (os error 111)".
#[test]
fn no_message_carries_an_os_error_code() {
    let server = Server::start(&fixtures().dir);
    let app = app(&server);
    let file = app.path().join("not-a-dir");
    fs::write(&file, "").unwrap();
    assert_screens("cli_cache_dir_is_a_file", |look| {
        let launcher = launcher(app.path(), look).cache_dir(&file.join("cache"));
        let out = run(&launcher, &["install"]);
        assert_eq!(out.code(), Some(1), "{out}");
        assert_never_says(&out, &["os error"]);
        screen(&out, &launcher, app.path())
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = App::new(&Lock::new(format!("http://127.0.0.1:{port}/")).with_checksums(false));
    let out = Launcher::new(down.path())
        .env("BUNDLE_RETRY", "0")
        .args(["install"])
        .run();
    assert_eq!(out.code(), Some(1), "{out}");
    assert_never_says(&out, &["os error"]);
    let out = Launcher::new(app.path())
        .cache_dir(&file.join("cache"))
        .args(["doctor", "--offline"])
        .run();
    assert_says_anywhere(&out, "not writable: not a directory");
    assert_never_says(&out, &["os error"]);
}

#[track_caller]
fn assert_says_anywhere(out: &Output, needle: &str) {
    assert!(
        out.stdout.contains(needle) || out.stderr.contains(needle),
        "no {needle:?} in:\n{out}"
    );
}

// ---- Point 3: hints fit the way the user called us ----

/// The same missing cache, met three ways: each hint names what works from there. Before, all three said
/// `run \`kamal-launcher install\``, which through `bin/kamal` is a command the user may not have.
#[test]
fn hints_name_what_works_where_the_user_is() {
    support::require_ruby();
    let server = Server::start(&fixtures().dir);
    let app = app(&server);
    let shim = write_shim(&app);
    let (_dir, link) = kamal_link();
    assert_screens("cli_hint_offline_direct", |look| {
        let launcher = launcher(app.path(), look);
        let out = run(&launcher, &["--offline", "exec", "--", "version"]);
        assert_eq!(out.code(), Some(1), "{out}");
        assert_says(&out, &["`kamal-launcher install`"]);
        screen(&out, &launcher, app.path())
    });
    assert_screens("cli_hint_offline_shim", |look| {
        let launcher = launcher(app.path(), look);
        let out = run_shim(
            &launcher,
            &shim,
            &[("KAMAL_LAUNCHER_OFFLINE", "1")],
            &["version"],
        );
        assert_eq!(out.code(), Some(1), "{out}");
        assert_says(&out, &["`KAMAL_LAUNCHER_CLI=1 bin/kamal install`"]);
        assert_never_says(&out, &["kamal-launcher install", "--offline", "--lockfile"]);
        screen(&out, &launcher, app.path())
    });
    assert_screens("cli_hint_offline_kamal", |look| {
        let launcher = launcher(app.path(), look);
        let out = run_link(
            &launcher,
            &link,
            &[("KAMAL_LAUNCHER_OFFLINE", "1")],
            &["version"],
        );
        assert_eq!(out.code(), Some(1), "{out}");
        assert_says(&out, &["`KAMAL_LAUNCHER_CLI=1 kamal install`"]);
        assert_never_says(&out, &["kamal-launcher install", "--offline"]);
        screen(&out, &launcher, app.path())
    });
    // What the hint says works: the launcher's own commands through the link.
    let out = run_link(
        &Launcher::new(app.path()),
        &link,
        &[("KAMAL_LAUNCHER_CLI", "1")],
        &["cache", "dir"],
    );
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(!out.stdout.is_empty(), "{out}");
}

/// `KAMAL_LAUNCHER_CLI=1 bin/kamal doctor`, the README's way on a machine without the launcher, offers fixes that
/// work from there. Before: "run `kamal-launcher init`" and "--cache-dir".
#[test]
fn doctor_through_bin_kamal_names_what_works_from_there() {
    let server = Server::start(&fixtures().dir);
    let app = app(&server);
    let shim = write_shim(&app);
    let launcher = Launcher::new(app.path());
    let out = run_shim(
        &launcher,
        &shim,
        &[("KAMAL_LAUNCHER_CLI", "1")],
        &["doctor"],
    );
    assert!(
        out.stdout
            .contains("hint: run `KAMAL_LAUNCHER_CLI=1 bin/kamal init`"),
        "{out}"
    );
    assert_never_says(
        &out,
        &["kamal-launcher init", "--cache-dir", "--lockfile", "--ruby"],
    );
}

/// Settings given wrongly through `bin/kamal` are named as variables. Before: "choose another gem with --gem",
/// a flag `bin/kamal` hands to kamal.
#[test]
fn through_bin_kamal_settings_are_variables() {
    let server = Server::start(&fixtures().dir);
    let app = app(&server);
    let shim = write_shim(&app);
    assert_screens("cli_hint_gem_shim", |look| {
        let launcher = launcher(app.path(), look);
        let out = run_shim(
            &launcher,
            &shim,
            &[("KAMAL_LAUNCHER_GEM", "kamall")],
            &["version"],
        );
        assert_eq!(out.code(), Some(1), "{out}");
        assert_says(&out, &["KAMAL_LAUNCHER_GEM=NAME"]);
        assert_never_says(&out, &["--gem"]);
        screen(&out, &launcher, app.path())
    });
    assert_screens("cli_shim_cli_kamal_command", |look| {
        let launcher = launcher(app.path(), look);
        let out = run_shim(
            &launcher,
            &shim,
            &[("KAMAL_LAUNCHER_CLI", "1")],
            &["deploy", "-d", "staging"],
        );
        assert_eq!(out.code(), Some(2), "{out}");
        assert_says(
            &out,
            &["without KAMAL_LAUNCHER_CLI=1, `bin/kamal deploy -d staging`"],
        );
        assert_never_says(&out, &["kamal-launcher exec"]);
        screen(&out, &launcher, app.path())
    });
}

// ---- Point 9: the small things ----

/// Before: BUNDLE_GEMFILE=Gemfile.lock read "reading the lockfile named by BUNDLE_GEMFILE …/Gemfile.lock.lock:
/// no such file".
#[test]
fn bundle_gemfile_naming_the_lockfile_says_it_names_the_gemfile() {
    let server = Server::start(&fixtures().dir);
    let app = app(&server);
    let (_dir, link) = kamal_link();
    assert_screens("cli_bundle_gemfile_names_lockfile", |look| {
        let launcher = launcher(app.path(), look).env("BUNDLE_GEMFILE", "Gemfile.lock");
        let out = run(&launcher, &["cache", "key"]);
        assert_eq!(out.code(), Some(1), "{out}");
        let fix = format!("BUNDLE_GEMFILE={}", app.path().join("Gemfile").display());
        assert_says(&out, &["names the Gemfile", &fix]);
        screen(&out, &launcher, app.path())
    });
    // Through the kamal link, the hint offers no flag.
    let out = run_link(
        &Launcher::new(app.path()).env("BUNDLE_GEMFILE", "Gemfile.lock"),
        &link,
        &[],
        &["version"],
    );
    assert_eq!(out.code(), Some(1), "{out}");
    assert_never_says(&out, &["--lockfile"]);
}

/// Before: the valid keys were listed twice (serde's "expected one of `cache_dir`, …", then ours).
#[test]
fn an_unknown_config_key_lists_the_valid_keys_once() {
    let server = Server::start(&fixtures().dir);
    let app = app(&server);
    app.write(".kamal-launcher.toml", "jobs = 2\ncahce_dir = \"tmp/kl\"\n");
    assert_screens("cli_config_unknown_key", |look| {
        let launcher = launcher(app.path(), look);
        let out = run(&launcher, &["cache", "key"]);
        assert_eq!(out.code(), Some(1), "{out}");
        assert_eq!(out.stderr.matches("allow_unverified").count(), 1, "{out}");
        assert_says(&out, &["did you mean `cache_dir`?"]);
        screen(&out, &launcher, app.path())
    });
}

/// An installed cache, for the maintenance screens to work on copies of.
fn installed(app: &App) -> Launcher {
    support::require_ruby();
    let launcher = Launcher::new(app.path());
    let out = run(&launcher, &["install"]);
    assert_eq!(out.code(), Some(0), "{out}");
    launcher
}

/// `launcher` on a copy of `filled`'s cache.
fn on_a_copy(launcher: Launcher, filled: &Launcher) -> Launcher {
    copy_tree(filled.cache_path(), launcher.cache_path());
    launcher
}

/// Before: "removed 0 environment(s), 0 installed gem(s), 0 download(s): 0 B freed", whether or not the cache
/// held anything, never naming it; there was no `--dry-run`.
#[test]
fn cache_maintenance_names_the_directory_and_counts_in_words() {
    let server = Server::start(&fixtures().dir);
    let app = app(&server);
    let filled = installed(&app);
    assert_screens("cli_cache_prune_empty", |look| {
        let launcher = launcher(app.path(), look);
        let out = run(&launcher, &["cache", "prune"]);
        assert_eq!(out.code(), Some(0), "{out}");
        assert_says(&out, &["is already empty"]);
        screen(&out, &launcher, app.path())
    });
    assert_screens("cli_cache_prune_recent", |look| {
        let launcher = on_a_copy(launcher(app.path(), look), &filled);
        let out = run(&launcher, &["cache", "prune"]);
        assert_eq!(out.code(), Some(0), "{out}");
        assert_says(&out, &["nothing to remove", "in the last 30 days"]);
        screen(&out, &launcher, app.path())
    });
    assert_screens("cli_cache_prune_dry_run", |look| {
        let launcher = on_a_copy(launcher(app.path(), look), &filled);
        let before = launcher.store_units();
        let out = run(
            &launcher,
            &["cache", "prune", "--older-than", "0", "--dry-run"],
        );
        assert_eq!(out.code(), Some(0), "{out}");
        assert_eq!(
            launcher.store_units(),
            before,
            "a dry run removed something"
        );
        assert_says(
            &out,
            &["would remove 1 environment, 6 installed gems and 6 downloads"],
        );
        screen(&out, &launcher, app.path())
    });
    assert_screens("cli_cache_clean", |look| {
        let launcher = on_a_copy(launcher(app.path(), look), &filled);
        let out = run(&launcher, &["cache", "clean"]);
        assert_eq!(out.code(), Some(0), "{out}");
        assert_says(
            &out,
            &["removed 1 environment, 6 installed gems and 6 downloads from"],
        );
        assert_never_says(&out, &["(s)"]);
        let again = run(&launcher, &["cache", "clean"]);
        assert_says(&again, &["is already empty"]);
        format!(
            "{}\n--- again\n{}",
            screen(&out, &launcher, app.path()),
            screen(&again, &launcher, app.path())
        )
    });
}

/// Before: "kamal 2.7.0: 6 gems ready (6 downloaded, 6 installed) in 1.2s" (no word of verification, "in" for
/// the time) and "6 gems already installed in …"; `-v` ended downloads and installs alike with "done NAME".
#[test]
fn the_summary_says_verified_and_uses_in_once() {
    support::require_ruby();
    let server = Server::start(&fixtures().dir);
    let app = app(&server);
    let launcher = Launcher::new(app.path());
    let out = run(&launcher, &["-v", "--jobs", "1", "install"]);
    assert_eq!(out.code(), Some(0), "{out}");
    let summary = out.stderr.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("kamal 2.7.0: 6 gems verified and ready in ")
            && summary.ends_with("s (6 downloaded, 6 installed)"),
        "{out}"
    );
    assert_eq!(summary.matches(" in ").count(), 1, "{summary}");
    for (name, version, platform) in support::closure() {
        let full = if platform == "ruby" {
            format!("{name}-{version}")
        } else {
            format!("{name}-{version}-{platform}")
        };
        assert_says(
            &out,
            &[
                &format!("downloaded {full}\n"),
                &format!("installed {full}\n"),
            ],
        );
    }
    assert_never_says(&out, &["done "]);
    assert_screens("cli_install_warm", |look| {
        let launcher = look.apply(launcher.clone());
        let out = run(&launcher, &["install"]);
        assert_eq!(out.code(), Some(0), "{out}");
        assert_eq!(out.stderr.matches(" in ").count(), 1, "{out}");
        screen(&out, &launcher, app.path())
    });
}

/// boot.rb speaks after the launcher is gone, so it cannot know how it was called: its hint names both ways.
/// Before: "choose one with --exe", a flag `bin/kamal` hands to kamal.
#[test]
fn boot_rb_names_the_setting_both_ways() {
    let server = Server::start(&fixtures().dir);
    let app = app(&server);
    let launcher = installed(&app);
    let out = run(&launcher, &["--exe", "nope", "exec", "--", "version"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_says(
        &out,
        &["  hint: choose one with --exe NAME (through bin/kamal: KAMAL_LAUNCHER_EXE=NAME)"],
    );
}
