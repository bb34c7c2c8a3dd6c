//! The closure oracle (tests/oracle/closure.rb, built on Bundler's own lockfile parser and RubyGems' platform
//! matching) and the launcher's `plan --json`, in the same comparable form: one line per gem,
//! `name version platform sha256-or-null source`.

use std::path::Path;

use super::{Launcher, assert_success, clean_command};

/// The oracle's closure of `kamal` for `platform` (with `force_ruby` as BUNDLE_FORCE_RUBY_PLATFORM).
pub fn oracle_closure(lockfile: &Path, platform: &str, force_ruby: bool) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/closure.rb");
    let out = clean_command("ruby")
        .env("ORACLE_SOURCES", "1")
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

/// The launcher's plan in the oracle's form; the source column is the launcher's chosen remote, which must be
/// one of the oracle's (comma-separated) remotes: see [`assert_same_closure`].
pub fn plan_closure(lockfile: &Path, platform: Option<&str>, env: &[(&str, &str)]) -> Vec<String> {
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
                "{} {} {} {} {}",
                g["name"].as_str().unwrap(),
                g["version"].as_str().unwrap(),
                g["platform"].as_str().unwrap(),
                g["sha256"].as_str().unwrap_or("null"),
                g["source"].as_str().unwrap()
            )
        })
        .collect()
}

/// Asserts that the plan equals the oracle: same gems, versions, platforms, digests, and a source among the
/// oracle's remotes for that gem.
pub fn assert_same_closure(plan: &[String], oracle: &[String], what: &str) {
    let strip = |l: &str| {
        l.rsplit_once(' ')
            .map(|(head, _)| head.to_string())
            .unwrap()
    };
    assert_eq!(
        plan.iter().map(|l| strip(l)).collect::<Vec<_>>(),
        oracle.iter().map(|l| strip(l)).collect::<Vec<_>>(),
        "{what}"
    );
    for (p, o) in plan.iter().zip(oracle) {
        let source = p.rsplit_once(' ').unwrap().1;
        let remotes = o.rsplit_once(' ').unwrap().1;
        assert!(
            remotes.split(',').any(|r| r == source),
            "{what}: {p} comes from {source}, the oracle says one of {remotes}"
        );
    }
}
