//! Shared integration-test harness: fixture gems built with the real `gem
//! build`, a rubygems.org-like loopback server, a Gemfile.lock builder and a
//! runner for the launcher binary.

// Every test binary compiles this module but uses only part of it.
#![allow(dead_code, unused_imports)]

mod fixtures;
mod launcher;
mod lock;
pub mod lockgen;
pub mod nobody;
mod oracle;
pub mod power;
pub mod proxy;
pub mod pty;
pub mod real;
pub mod screen;
mod server;
pub mod tls;

use std::path::PathBuf;
use std::process::Command;

pub use fixtures::{
    Dep, Fixtures, GemFile, closure, closure_gems, copy_tree, fixtures, kamal_deps_plus,
    local_platform,
};
pub use launcher::{Launcher, Output, Running, assert_failure, assert_success, entries, spawn};
pub use lock::{App, Lock, LockedSpec};
pub use oracle::{assert_same_closure, oracle_closure, plan_closure};
pub use server::{Fault, Request, Server};

/// Locates `program` on PATH without spawning it, so a missing Ruby toolchain
/// is reported as such rather than as an obscure spawn error later.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Panics unless both `ruby` and `gem` are on PATH. The suite must fail, not
/// skip, on a machine without Ruby: a skipped suite looks like a green one.
pub fn require_ruby() {
    for program in ["ruby", "gem"] {
        if which(program).is_none() {
            panic!(
                "\n\n==== kamal-launcher integration tests need Ruby ====\n\
                 `{program}` was not found on PATH.\n\
                 Install it with: apt-get install -y ruby-full\n\
                 (the fixture gems are built with the real `gem build`, and the \
                 launcher under test execs Ruby)\n\n"
            );
        }
    }
}

/// A command with an environment reduced to what any process here needs, so
/// the developer's RUBYOPT, GEM_HOME, BUNDLE_GEMFILE and friends can neither
/// break fixture builds nor leak into what the launcher sees.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    cmd.env("PATH", default_path());
    cmd.env("LANG", "C.UTF-8");
    cmd
}

pub fn default_path() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_owned())
}

/// Hex SHA-256, the digest format used by the compact index and CHECKSUMS.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Files under `dir` (symlinks not followed) whose names end with `suffix`.
pub fn files_ending(dir: &std::path::Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            found.extend(files_ending(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            found.push(path);
        }
    }
    found
}

/// The native extension a gem's installed unit (`store/<abi>/<gem>-…`) built, as Ruby names it on this OS.
pub fn built_extension(launcher: &Launcher, gem: &str) -> PathBuf {
    let prefix = format!("{gem}-");
    let unit = launcher
        .store_unit_dirs()
        .into_iter()
        .find(|dir| {
            dir.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .unwrap_or_else(|| panic!("no {gem} in {:?}", launcher.store_unit_dirs()));
    files_ending(&unit, &format!(".{}", std::env::consts::DLL_EXTENSION))
        .into_iter()
        .chain(files_ending(&unit, ".bundle"))
        .next()
        .unwrap_or_else(|| panic!("{gem}: no extension built under {}", unit.display()))
}

/// What `ruby -e CODE` prints (this machine's Ruby, in a clean environment), trimmed: facts of the Ruby the tests
/// run against (its platform, its ABI), never assumed.
pub fn ruby_prints(code: &str) -> String {
    let out = clean_command("ruby").args(["-e", code]).output().unwrap();
    assert!(out.status.success(), "ruby -e {code}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
