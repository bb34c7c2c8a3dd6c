//! `plan --json` on real apps' lockfiles must equal an oracle built on Bundler's own lockfile parser and
//! RubyGems' platform matching (tests/oracle/closure.rb), for several platforms, offline.

mod support;

use std::path::{Path, PathBuf};

use support::{Launcher, assert_success, clean_command, require_ruby};

fn shared_lockfiles() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/lockfiles");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".lock"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the shared real lockfiles in {}",
        dir.display()
    );
    files
}

fn oracle(lockfile: &Path, platform: &str, force_ruby: bool) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/closure.rb");
    let out = clean_command("ruby")
        .arg(script)
        .arg(lockfile)
        .arg("kamal")
        .arg(platform)
        .arg(force_ruby.to_string())
        .output()
        .expect("running the oracle");
    assert!(
        out.status.success(),
        "oracle failed for {}: {}",
        lockfile.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn plan(lockfile: &Path, platform: Option<&str>, env: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut launcher = Launcher::new(dir.path())
        .arg("--lockfile")
        .arg(lockfile)
        .args(["plan", "--json", "--offline"]);
    if let Some(p) = platform {
        launcher = launcher.args(["--platform", p]);
    }
    for (k, v) in env {
        launcher = launcher.env(k, v);
    }
    let out = launcher.run();
    assert_success(&out);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("plan --json is JSON");
    json["gems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            format!(
                "{} {} {} {}",
                g["name"].as_str().unwrap(),
                g["version"].as_str().unwrap(),
                g["platform"].as_str().unwrap(),
                g["sha256"].as_str().unwrap_or("null")
            )
        })
        .collect()
}

#[test]
fn real_lockfiles_match_the_bundler_oracle_on_this_ruby() {
    require_ruby();
    let local = String::from_utf8(
        clean_command("ruby")
            .args(["-e", "print Gem::Platform.local"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for lockfile in shared_lockfiles() {
        let expected = oracle(&lockfile, &local, false);
        assert!(
            expected.iter().any(|l| l.starts_with("kamal ")),
            "{expected:?}"
        );
        assert_eq!(
            plan(&lockfile, None, &[]),
            expected,
            "{}",
            lockfile.display()
        );
    }
}

#[test]
fn real_lockfiles_match_the_bundler_oracle_on_other_platforms() {
    require_ruby();
    for lockfile in shared_lockfiles() {
        for platform in [
            "x86_64-linux",
            "x86_64-linux-musl",
            "aarch64-linux",
            "arm64-darwin-23",
        ] {
            let expected = oracle(&lockfile, platform, false);
            assert_eq!(
                plan(&lockfile, Some(platform), &[]),
                expected,
                "{} on {platform}",
                lockfile.display()
            );
        }
        let expected = oracle(&lockfile, "x86_64-linux", true);
        assert_eq!(
            plan(&lockfile, None, &[("BUNDLE_FORCE_RUBY_PLATFORM", "true")]),
            expected,
            "{} with BUNDLE_FORCE_RUBY_PLATFORM",
            lockfile.display()
        );
    }
}

#[test]
fn checksums_come_from_the_lockfile_and_are_null_offline_without_them() {
    for lockfile in shared_lockfiles() {
        let text = std::fs::read_to_string(&lockfile).unwrap();
        let lines = plan(&lockfile, Some("x86_64-linux"), &[]);
        for line in &lines {
            let fields: Vec<&str> = line.split(' ').collect();
            let sha = fields[3];
            if sha == "null" {
                continue;
            }
            assert!(
                text.contains(&format!("sha256={sha}")),
                "{} digest {sha} of {line} is not the lockfile's",
                lockfile.display()
            );
        }
        if !text.contains("\nCHECKSUMS") {
            assert!(lines.iter().all(|l| l.ends_with(" null")), "{lines:?}");
        }
    }
}
