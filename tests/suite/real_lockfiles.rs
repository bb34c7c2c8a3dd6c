//! `plan --json` must equal an oracle built on Bundler's own lockfile parser and RubyGems' platform matching
//! (tests/oracle/closure.rb) for real apps' lockfiles (tests/fixtures/real-lockfiles, vendored) and for the hand-written dialect
//! fixtures (tests/fixtures/lockfiles), under several platforms, offline.
//!
//! Debian's Bundler is 2.3; where its rules differ from current Bundler's (CHECKSUMS, "-gnu" platforms, libc
//! matching), the oracle follows current Bundler and says so in its comments.

use crate::support;

use std::path::{Path, PathBuf};

use support::{
    Launcher, assert_failure, assert_same_closure, oracle_closure, plan_closure, require_ruby,
};

/// Platforms every lockfile is planned for, besides this Ruby's own.
const PLATFORMS: [&str; 9] = [
    "x86_64-linux",
    "x86_64-linux-gnu",
    "x86_64-linux-musl",
    "aarch64-linux",
    "aarch64-linux-musl",
    "arm-linux",
    "arm64-darwin-23",
    "x86_64-darwin-22",
    "java",
];

fn lockfiles_in(dir: &Path, min: usize) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            (name.ends_with(".lock") || name.ends_with(".locked"))
                && !name.contains("merge-conflict")
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= min,
        "expected lockfiles in {}",
        dir.display()
    );
    files
}

fn vendored_real_lockfiles() -> Vec<PathBuf> {
    lockfiles_in(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real-lockfiles"),
        4,
    )
}

fn fixture_lockfiles() -> Vec<PathBuf> {
    lockfiles_in(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lockfiles"),
        8,
    )
}

fn local_platform() -> String {
    support::ruby_prints("print Gem::Platform.local")
}

fn check_all_platforms(lockfile: &Path) {
    let local = local_platform();
    let name = lockfile.display();
    assert_same_closure(
        &plan_closure(lockfile, None, &[]),
        &oracle_closure(lockfile, &local, false),
        &format!("{name} on this Ruby ({local})"),
    );
    for platform in PLATFORMS {
        assert_same_closure(
            &plan_closure(lockfile, Some(platform), &[]),
            &oracle_closure(lockfile, platform, false),
            &format!("{name} on {platform}"),
        );
    }
    assert_same_closure(
        &plan_closure(lockfile, None, &[("BUNDLE_FORCE_RUBY_PLATFORM", "true")]),
        &oracle_closure(lockfile, &local, true),
        &format!("{name} with BUNDLE_FORCE_RUBY_PLATFORM"),
    );
}

#[test]
fn real_lockfiles_match_the_bundler_oracle() {
    require_ruby();
    for lockfile in vendored_real_lockfiles() {
        check_all_platforms(&lockfile);
    }
}

#[test]
fn dialect_fixtures_match_the_bundler_oracle() {
    require_ruby();
    for lockfile in fixture_lockfiles() {
        check_all_platforms(&lockfile);
    }
}

#[test]
fn checksums_come_from_the_lockfile_and_are_null_offline_without_them() {
    for lockfile in vendored_real_lockfiles()
        .into_iter()
        .chain(fixture_lockfiles())
    {
        let text = std::fs::read_to_string(&lockfile).unwrap();
        let lines = plan_closure(&lockfile, Some("x86_64-linux"), &[]);
        if !text.contains("\nCHECKSUMS") {
            assert!(
                lines.iter().all(|l| l.split(' ').nth(3) == Some("null")),
                "{}: {lines:?}",
                lockfile.display()
            );
        }
    }
    // Hex (any case) and both base64 alphabets decode to the same digests Bundler records.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lockfiles");
    let b64 = plan_closure(
        &dir.join("checksums-base64.lock"),
        Some("x86_64-linux"),
        &[],
    );
    assert!(
        b64[0].contains(" 5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9 "),
        "{b64:?}"
    );
    assert!(
        b64[1].contains(" 40510175845988f13f6162ed8526f0b09f73384467fa855e1e79b44a56562a58 "),
        "{b64:?}"
    );
    let hex = plan_closure(
        &dir.join("checksums-hex-with-bundler.lock"),
        Some("x86_64-linux"),
        &[],
    );
    assert!(
        hex.iter()
            .any(|l| l
                .contains(" a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90 ")),
        "{hex:?}"
    );
}

#[test]
fn merge_conflict_markers_are_a_clear_error() {
    let lockfile =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lockfiles/merge-conflict.lock");
    let dir = tempfile::tempdir().unwrap();
    let out = Launcher::new(dir.path())
        .arg("--lockfile")
        .arg(&lockfile)
        .args(["plan", "--offline"])
        .run();
    assert_failure(&out);
    assert!(out.stderr.contains("merge-conflict.lock:4"), "{out}");
    assert!(out.stderr.to_lowercase().contains("conflict"), "{out}");
}

#[test]
fn gems_locked_is_found_next_to_gems_rb() {
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lockfiles/gems.locked");
    std::fs::copy(&fixture, dir.path().join("gems.locked")).unwrap();
    std::fs::write(
        dir.path().join("gems.rb"),
        "source \"https://rubygems.org\"\ngem \"kamal\"\n",
    )
    .unwrap();
    let out = Launcher::new(dir.path())
        .args(["plan", "--json", "--offline"])
        .run();
    support::assert_success(&out);
    assert!(out.stdout.contains("gems.locked"), "{out}");
    assert!(out.stdout.contains("\"kamal\""), "{out}");
}
