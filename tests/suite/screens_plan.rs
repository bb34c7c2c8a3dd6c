//! `plan` as people read it, at 60, 80 and 160 columns, colour on and off: one header that says once what is the
//! same for every gem (source, where checksums come from, what is here, whether a compiler is needed), a table that
//! fits the width, and why a checksum is unknown ("all 6", not six names). `--json` carries the same facts.

use crate::support;

use std::fs;

use support::screen::{Look, assert_screens, stable, transcript};
use support::{App, Launcher, Lock, Server, assert_success, fixtures};

/// The plan's screen in `look`, after checking that no line of it is wider than the terminal.
fn plan_screen(launcher: &Launcher, look: Look, args: &[&str]) -> String {
    let out = look.apply(launcher.clone().arg("plan").args(args)).run();
    assert_success(&out);
    for line in out.stdout.lines() {
        assert!(
            line.chars().count() < usize::from(look.width),
            "wider than {} columns: {line:?}\n{out}",
            look.width
        );
    }
    stable(&transcript(&out), &[])
}

/// The fixture app, locked with CHECKSUMS except for kamal and ostruct (theirs come from the source's index).
fn mixed_checksums(server: &Server) -> App {
    App::new(
        &Lock::new(server.url())
            .checksum_raw("kamal", "")
            .checksum_raw("ostruct", ""),
    )
}

/// Puts a fixture gem into the launcher's download cache, as a download would leave it.
fn downloaded(launcher: &Launcher, name: &str, version: &str) {
    let gem = fixtures().gem(name, version, "ruby");
    let dir = launcher.layout_root().join("downloads");
    fs::copy(
        fixtures().gem_path(gem),
        dir.join(format!("{}.gem", gem.sha256)),
    )
    .unwrap();
}

/// A cache holding some of the closure: fixture_dep_a's closure installed, fixture_ext (which builds a native
/// extension) and ostruct downloaded, kamal and fixture_native not there.
fn partly_here(server: &Server) -> (App, Launcher) {
    let app = mixed_checksums(server);
    let launcher = Launcher::new(app.path());
    let out = launcher
        .clone()
        .args(["--gem", "fixture_dep_a", "install"])
        .run();
    assert_success(&out);
    downloaded(&launcher, "fixture_ext", "1.0.1");
    downloaded(&launcher, "ostruct", "0.1.0");
    (app, launcher)
}

#[test]
fn plan_with_nothing_here_yet() {
    let server = Server::start(&fixtures().dir);
    let app = App::new(&Lock::new(server.url()));
    let launcher = Launcher::new(app.path());
    assert_screens("plan_nothing_here", |look| {
        plan_screen(&launcher, look, &[])
    });
}

#[test]
fn plan_with_part_of_the_closure_here() {
    let server = Server::start(&fixtures().dir);
    let (_app, launcher) = partly_here(&server);
    assert_screens("plan_partly_here", |look| plan_screen(&launcher, look, &[]));
}

#[test]
fn plan_once_installed() {
    let server = Server::start(&fixtures().dir);
    let app = App::new(&Lock::new(server.url()));
    let launcher = Launcher::new(app.path());
    assert_success(&launcher.clone().arg("install").run());
    assert_screens("plan_all_installed", |look| {
        plan_screen(&launcher, look, &[])
    });
}

#[test]
fn plan_offline_without_checksums_says_all() {
    let server = Server::start(&fixtures().dir);
    let app = App::new(&Lock::new(server.url()).with_checksums(false));
    let launcher = Launcher::new(app.path());
    assert_screens("plan_offline_unknown", |look| {
        plan_screen(&launcher, look, &["--offline"])
    });
}

#[test]
fn plan_with_several_sources_names_each() {
    let text = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lockfiles/several-sources.lock"
    ))
    .unwrap();
    let app = App::with_lockfile("https://rubygems.org/", &text);
    let launcher = Launcher::new(app.path());
    assert_screens("plan_several_sources", |look| {
        plan_screen(
            &launcher,
            look,
            &["--offline", "--platform", "x86_64-linux"],
        )
    });
}

#[test]
fn plan_json_says_the_root_version_where_checksums_come_from_and_what_is_here() {
    let server = Server::start(&fixtures().dir);
    let (_app, launcher) = partly_here(&server);
    let out = launcher.clone().args(["plan", "--json"]).run();
    assert_success(&out);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["root_version"], "2.7.0", "{out}");
    let gem = |name: &str| {
        plan["gems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {out}"))
            .clone()
    };
    assert_eq!(gem("kamal")["sha256_origin"], "index", "{out}");
    assert_eq!(gem("fixture_dep_a")["sha256_origin"], "lockfile", "{out}");
    assert_eq!(gem("fixture_dep_a")["status"], "installed", "{out}");
    assert_eq!(gem("ostruct")["status"], "downloaded", "{out}");
    assert_eq!(gem("kamal")["status"], "to_download", "{out}");
    assert_eq!(gem("fixture_ext")["native_extension"], true, "{out}");
    assert_eq!(gem("ostruct")["native_extension"], false, "{out}");
    assert_eq!(gem("kamal")["native_extension"], serde_json::Value::Null);

    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/suite/snapshots"
    ));
    settings.set_prepend_module_to_snapshot(false);
    let json = stable(&out.stdout, &[(&launcher_dir(&launcher), "[APP]")]);
    settings.bind(|| insta::assert_snapshot!("plan_json", json));
}

/// The app directory the launcher runs in (the JSON names the lockfile by its absolute path).
fn launcher_dir(launcher: &Launcher) -> String {
    launcher
        .command()
        .get_current_dir()
        .expect("a working directory")
        .display()
        .to_string()
}
