//! Ruby behind a version manager: rbenv and asdf put a script named `ruby` on PATH, mise a symlink to itself,
//! and each picks the interpreter at run time from a variable or a version file found from the working
//! directory. Fixture managers laid out like theirs switch between two Rubies: the real one, and a wrapper of it
//! that reports another ABI through RbConfig. The environment must follow the selection.

use crate::support;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use support::{App, Launcher, Lock, Output, Server, assert_success, fixtures, which};

const REAL: &str = "3.1.2";
const OTHER: &str = "9.9.0";

/// A home directory with one manager installed, holding both Rubies.
struct Manager {
    name: &'static str,
    home: tempfile::TempDir,
    shims: PathBuf,
    /// The variable that selects a version.
    var: &'static str,
    /// The version file read from the working directory up, and how a version is written in it.
    file: &'static str,
    line: fn(&str) -> String,
}

fn write_exe(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Installs the two Rubies under `versions`: REAL is the system interpreter, OTHER a wrapper that reports ABI
/// 9.9.0 (RubyGems then builds and looks for extensions under that name).
fn install_rubies(home: &Path, versions: &Path) {
    let ruby = which("ruby").expect("ruby");
    let real = versions.join(REAL).join("bin/ruby");
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    symlink(&ruby, &real).unwrap();
    let fake = home.join("fake_abi.rb");
    fs::write(
        &fake,
        format!(
            "RbConfig::CONFIG[\"ruby_version\"] = \"{OTHER}\"\nGem.instance_variable_set(:@ruby_api_version, nil)\n"
        ),
    )
    .unwrap();
    write_exe(
        &versions.join(OTHER).join("bin/ruby"),
        &format!(
            "#!/bin/sh\nexec '{}' -r'{}' \"$@\"\n",
            ruby.display(),
            fake.display()
        ),
    );
}

/// The shell function the fixture managers share: the first `$1` file from the working directory up, its
/// version (`$2` picks the line's field), else empty.
const FIND_VERSION: &str = r#"find_version() {
  dir=$PWD
  while :; do
    if [ -f "$dir/$1" ]; then
      awk -v f="$2" 'f == 1 || $1 == "ruby" { print $f; exit }' "$dir/$1"
      return
    fi
    [ "$dir" = / ] && return
    dir=$(dirname "$dir")
  done
}
"#;

fn rbenv() -> Manager {
    let home = tempfile::Builder::new()
        .prefix("rbenv-home-")
        .tempdir()
        .unwrap();
    let root = home.path().join(".rbenv");
    install_rubies(home.path(), &root.join("versions"));
    fs::write(root.join("version"), format!("{REAL}\n")).unwrap();
    let shims = root.join("shims");
    write_exe(
        &shims.join("ruby"),
        &format!(
            "#!/bin/sh\n{FIND_VERSION}root=${{RBENV_ROOT:-$HOME/.rbenv}}\nv=${{RBENV_VERSION:-$(find_version .ruby-version 1)}}\n\
             [ -n \"$v\" ] || read -r v < \"$root/version\"\nexec \"$root/versions/$v/bin/ruby\" \"$@\"\n"
        ),
    );
    Manager {
        name: "rbenv",
        home,
        shims,
        var: "RBENV_VERSION",
        file: ".ruby-version",
        line: |v| format!("{v}\n"),
    }
}

fn asdf() -> Manager {
    let home = tempfile::Builder::new()
        .prefix("asdf-home-")
        .tempdir()
        .unwrap();
    let data = home.path().join(".asdf");
    install_rubies(home.path(), &data.join("installs/ruby"));
    fs::write(home.path().join(".tool-versions"), format!("ruby {REAL}\n")).unwrap();
    let shims = data.join("shims");
    write_exe(
        &shims.join("ruby"),
        &format!(
            "#!/bin/sh\n{FIND_VERSION}data=${{ASDF_DATA_DIR:-$HOME/.asdf}}\nv=${{ASDF_RUBY_VERSION:-$(find_version .tool-versions 2)}}\n\
             exec \"$data/installs/ruby/$v/bin/ruby\" \"$@\"\n"
        ),
    );
    Manager {
        name: "asdf",
        home,
        shims,
        var: "ASDF_RUBY_VERSION",
        file: ".tool-versions",
        line: |v| format!("nodejs 20.0.0\nruby {v}\n"),
    }
}

/// mise's shims are symlinks to the mise binary, which looks at the name it was called by.
fn mise() -> Manager {
    let home = tempfile::Builder::new()
        .prefix("mise-home-")
        .tempdir()
        .unwrap();
    let data = home.path().join(".local/share/mise");
    install_rubies(home.path(), &data.join("installs/ruby"));
    fs::create_dir_all(home.path().join(".config/mise")).unwrap();
    fs::write(
        home.path().join(".config/mise/config.toml"),
        format!("[tools]\nruby = \"{REAL}\"\n"),
    )
    .unwrap();
    let mise = home.path().join(".local/bin/mise");
    write_exe(
        &mise,
        &format!(
            "#!/bin/sh\n{FIND_VERSION}[ \"${{0##*/}}\" = ruby ] || {{ echo \"mise fixture: only ruby\" >&2; exit 2; }}\n\
             data=${{MISE_DATA_DIR:-$HOME/.local/share/mise}}\nv=${{MISE_RUBY_VERSION:-$(find_version .tool-versions 2)}}\n\
             [ -n \"$v\" ] || v=$(awk -F'\"' '/^ruby/ {{ print $2 }}' \"$HOME/.config/mise/config.toml\")\n\
             exec \"$data/installs/ruby/$v/bin/ruby\" \"$@\"\n"
        ),
    );
    let shims = data.join("shims");
    fs::create_dir_all(&shims).unwrap();
    symlink(&mise, shims.join("ruby")).unwrap();
    Manager {
        name: "mise",
        home,
        shims,
        var: "MISE_RUBY_VERSION",
        file: ".tool-versions",
        line: |v| format!("ruby {v}\n"),
    }
}

impl Manager {
    fn path(&self) -> String {
        format!("{}:{}", self.shims.display(), support::default_path())
    }
}

fn envs(cache: &Path) -> usize {
    fs::read_dir(cache.join("v2/envs")).map_or(0, |d| d.count())
}

/// The ABI of the system Ruby behind REAL (3.1.0 on Debian 12, 3.3.0 in the trixie tier).
fn system_abi() -> String {
    support::ruby_prints("print RbConfig::CONFIG['ruby_version']")
}

fn abis(cache: &Path) -> Vec<String> {
    let mut abis: Vec<String> = fs::read_dir(cache.join("v2/store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    abis.sort();
    abis
}

/// Selecting by variable, then by a version file found from a subdirectory of the app: each selection has its
/// own environment, built for its ABI, and going back reuses the first without installing anything.
fn follows_the_selection(manager: Manager) {
    let server = Server::start(&fixtures().dir);
    let app = App::new(&Lock::new(server.url()));
    let sub = app.path().join("config");
    let launcher = Launcher::new(app.path())
        .env("HOME", manager.home.path())
        .env("PATH", manager.path())
        .cwd(&sub);
    let cache = launcher.cache_path().to_path_buf();
    let run = |select: Option<&str>| -> Output {
        let mut l = launcher.clone().args(["exec", "--", "version"]);
        if let Some(v) = select {
            l = l.env(manager.var, v);
        }
        let out = l.run();
        assert_success(&out);
        assert_eq!(out.stdout, "2.7.0\n", "{}: {out}", manager.name);
        out
    };

    run(Some(REAL));
    assert_eq!(envs(&cache), 1, "{}", manager.name);
    let other = run(Some(OTHER));
    assert_eq!(
        envs(&cache),
        2,
        "{}: a new selection gets its own environment: {other}",
        manager.name
    );
    let built: Vec<String> = abis(&cache)
        .iter()
        .map(|a| a.split('-').take(2).collect::<Vec<_>>().join("-"))
        .collect();
    assert_eq!(
        built,
        [format!("ruby-{}", system_abi()), format!("ruby-{OTHER}")],
        "{}: gems installed for each ABI",
        manager.name
    );
    let back = run(Some(REAL));
    assert_eq!(envs(&cache), 2, "{}", manager.name);
    assert_eq!(
        back.stderr, "",
        "{}: warm, nothing installed: {back}",
        manager.name
    );

    // By version file, from a subdirectory: the app's file wins over the global default.
    fs::write(app.path().join(manager.file), (manager.line)(OTHER)).unwrap();
    let by_file = run(None);
    assert_eq!(
        by_file.stderr, "",
        "{}: the OTHER environment again: {by_file}",
        manager.name
    );
    fs::write(app.path().join(manager.file), (manager.line)(REAL)).unwrap();
    let back = run(None);
    assert_eq!(back.stderr, "", "{}: {back}", manager.name);
    assert_eq!(envs(&cache), 2, "{}", manager.name);

    // doctor names the manager and the interpreter behind the shim.
    let out = launcher.clone().arg("doctor").run();
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("Ruby:"))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    assert!(
        line.contains(&format!(
            "{}/ruby ({}: /",
            manager.shims.display(),
            manager.name
        )),
        "{line}"
    );
}

#[test]
fn rbenv_selection_picks_the_environment() {
    follows_the_selection(rbenv());
}

#[test]
fn asdf_selection_picks_the_environment() {
    follows_the_selection(asdf());
}

#[test]
fn mise_selection_picks_the_environment() {
    follows_the_selection(mise());
}
