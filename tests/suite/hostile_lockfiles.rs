//! Hostile lockfiles against the launcher binary. The contract: any byte sequence gives either a parsed lockfile
//! or an error naming `Gemfile.lock:<line>`, never a panic, a hang or unbounded memory; and gem names, versions
//! and platforms with path separators or other characters RubyGems forbids cannot make the launcher touch a
//! path outside its cache. The parser's side of this is in tests/suite/properties.rs and fuzz/.

use crate::support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use support::{App, Launcher, Lock, LockedSpec, Output, Server, assert_success, fixtures};

fn serve() -> Server {
    Server::start(&fixtures().dir)
}

/// Every command that reads the lockfile.
const COMMANDS: &[&[&str]] = &[
    &["exec", "--", "version"],
    &["install"],
    &["plan"],
    &["plan", "--json", "--offline"],
    &["cache", "key"],
];

/// Every path under `root` (relative), or nothing when it does not exist.
fn tree(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            out.insert(path.strip_prefix(root).unwrap().to_path_buf());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    out
}

/// A launcher run refused the lockfile at `line`: exit 1, `Gemfile.lock:<line>:` on stderr, nothing on stdout,
/// a short message.
#[track_caller]
fn assert_refused_at(out: &Output, line: usize) {
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!("Gemfile.lock:{line}: ")),
        "expected Gemfile.lock:{line}:\n{out}"
    );
    assert_eq!(out.stdout, "", "{out}");
    assert!(!out.stderr.contains("panicked"), "{out}");
    assert!(
        out.stderr.len() < 4_000,
        "unbounded message: {} bytes",
        out.stderr.len()
    );
}

/// Nothing was written outside the cache's `v2/`, nor anywhere a hostile name could point: the launcher's
/// temporary cache root holds at most `cache/v2`, and the app, the home directory and /tmp gained nothing.
#[track_caller]
fn assert_nothing_escaped(
    launcher: &Launcher,
    app: &App,
    app_before: &BTreeSet<PathBuf>,
    tmp_before: &BTreeSet<String>,
) {
    let cache_root = launcher.cache_path().parent().unwrap();
    for path in tree(cache_root) {
        assert!(
            path.starts_with("cache/v2") || path == Path::new("cache"),
            "created outside the cache's v2/: {}",
            cache_root.join(&path).display()
        );
        assert!(
            !path.to_string_lossy().contains("evil"),
            "{}",
            path.display()
        );
    }
    assert_eq!(&tree(app.path()), app_before, "the app directory changed");
    let home = tree(launcher.home_path());
    assert!(
        home.iter().all(|p| !p.to_string_lossy().contains("evil")),
        "{home:?}"
    );
    let tmp_after = tmp_entries();
    let new: Vec<_> = tmp_after
        .difference(tmp_before)
        .filter(|n| n.contains("evil"))
        .collect();
    assert!(new.is_empty(), "created in /tmp: {new:?}");
}

fn tmp_entries() -> BTreeSet<String> {
    fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The fixture lockfile with `spec` added to the closure (kamal depends on it) and to CHECKSUMS.
fn with_hostile_spec(server: &Server, name: &str, version: &str, platform: &str) -> String {
    let kamal = fixtures().gem("kamal", "2.7.0", "ruby");
    let mut deps: Vec<(&str, String)> = kamal
        .deps
        .iter()
        .map(|d| (d.name.as_str(), d.requirement_text()))
        .collect();
    deps.push((name, String::new()));
    let deps: Vec<(&str, &str)> = deps.iter().map(|(n, r)| (*n, r.as_str())).collect();
    Lock::new(server.url())
        .add_spec(LockedSpec {
            name: name.to_owned(),
            version: version.to_owned(),
            platform: platform.to_owned(),
            deps: Vec::new(),
            sha256: "ab".repeat(32),
            served: false,
        })
        .set_deps("kamal", &deps)
        .render()
}

/// Runs every command on `lockfile` and checks the refusal and that nothing escaped.
fn refuse_everywhere(server: &Server, lockfile: &str, hostile: &str) {
    let line = lockfile
        .lines()
        .position(|l| l.contains(hostile))
        .unwrap_or_else(|| panic!("{hostile:?} is not in the lockfile"))
        + 1;
    let app = App::with_lockfile(&server.url(), lockfile);
    let app_before = tree(app.path());
    let tmp_before = tmp_entries();
    let launcher = Launcher::new(app.path());
    for args in COMMANDS {
        let out = launcher.clone().args(*args).run();
        assert_refused_at(&out, line);
    }
    assert_nothing_escaped(&launcher, &app, &app_before, &tmp_before);
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn names_with_path_separators_or_parent_directories_are_refused() {
    let server = serve();
    for name in [
        "../../evil",
        "a/b-evil",
        "/tmp/kl-evil-absolute",
        "..",
        "evil\\..\\..\\x",
        "..evil",
        "evil..",
        "evil/../../../../tmp/kl-evil",
    ] {
        refuse_everywhere(
            &server,
            &with_hostile_spec(&server, name, "1.0", "ruby"),
            name,
        );
    }
}

#[test]
fn versions_with_path_separators_or_parent_directories_are_refused() {
    let server = serve();
    for version in [
        "1.0/../../evil",
        "../../../evil",
        "1.0\\..\\evil",
        "1..0",
        "1.0/",
    ] {
        refuse_everywhere(
            &server,
            &with_hostile_spec(&server, "evil", version, "ruby"),
            &format!("({version}"),
        );
    }
}

#[test]
fn platforms_with_path_separators_or_parent_directories_are_refused() {
    let server = serve();
    for platform in [
        "x86_64-linux/../../evil",
        "../../evil",
        "x86_64..linux",
        "x\\..\\evil",
    ] {
        refuse_everywhere(
            &server,
            &with_hostile_spec(&server, "evil", "1.0", platform),
            &format!("-{platform})"),
        );
    }
    // In the PLATFORMS section too.
    let text = Lock::new(server.url())
        .platforms(&["ruby", "x86_64-linux/../../evil"])
        .render();
    refuse_everywhere(&server, &text, "x86_64-linux/../../evil");
}

#[test]
fn a_hostile_gem_outside_the_closure_is_refused_too() {
    // The whole file is read before anything is selected: a bad line anywhere is an error.
    let server = serve();
    let text = Lock::new(server.url())
        .add_spec(LockedSpec {
            name: "../../evil".to_owned(),
            version: "1.0".to_owned(),
            platform: "ruby".to_owned(),
            deps: Vec::new(),
            sha256: "cd".repeat(32),
            served: false,
        })
        .render();
    refuse_everywhere(&server, &text, "../../evil");
}

#[test]
fn invalid_utf8_is_refused_with_its_line() {
    let server = serve();
    let text = Lock::new(server.url()).render();
    let lines: Vec<&str> = text.lines().collect();
    for at in [0, 3, lines.len() / 2, lines.len() - 1] {
        for bad in [&b"\xff"[..], b"\xc3(", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"] {
            let mut bytes = Vec::new();
            for (i, line) in lines.iter().enumerate() {
                if i == at {
                    bytes.extend_from_slice(&line.as_bytes()[..line.len() / 2]);
                    bytes.extend_from_slice(bad);
                    bytes.extend_from_slice(&line.as_bytes()[line.len() / 2..]);
                } else {
                    bytes.extend_from_slice(line.as_bytes());
                }
                bytes.push(b'\n');
            }
            let app = App::with_lockfile(&server.url(), "");
            fs::write(app.lockfile_path(), &bytes).unwrap();
            let launcher = Launcher::new(app.path());
            let out = launcher.clone().args(["exec", "--", "version"]).run();
            assert_refused_at(&out, at + 1);
            assert!(out.stderr.contains("not valid UTF-8"), "{out}");
            assert!(!launcher.layout_root().join("envs").exists());
        }
    }
    assert!(server.requests().is_empty());
}

#[test]
fn a_50_mb_line_is_refused_with_a_short_message_or_skipped() {
    let server = serve();
    let base = Lock::new(server.url()).render();
    let specs_line = base.lines().position(|l| l == "  specs:").unwrap() + 1;
    let huge = "a/".repeat(25 << 20);

    // As a gem name: refused, on its line, in a few hundred bytes.
    let text = base.replacen("  specs:\n", &format!("  specs:\n    {huge} (1.0)\n"), 1);
    let app = App::with_lockfile(&server.url(), &text);
    let launcher = Launcher::new(app.path());
    for args in [&["exec", "--", "version"][..], &["plan"]] {
        let out = launcher.clone().args(args).run();
        assert_refused_at(&out, specs_line + 1);
        assert!(out.stderr.contains("is not a valid gem name"), "{out}");
    }
    assert!(server.requests().is_empty());

    // Inside a section the parser does not know (as Bundler, it skips those): planned as usual.
    let text = format!("{base}\nFUTURE SECTION\n  {huge}\n");
    let app = App::with_lockfile(&server.url(), &text);
    let launcher = Launcher::new(app.path());
    let out = launcher.clone().args(["plan", "--offline"]).run();
    assert_success(&out);
    assert!(out.stdout.contains("kamal"), "{out}");
    let out = launcher.clone().args(["cache", "key"]).run();
    assert_success(&out);
}

/// 200k lines: kamal depends on a chain of 66,000 gems, each with a dependency line and a checksum.
fn two_hundred_thousand_lines(remote: &str) -> String {
    let n = 66_000;
    let mut text =
        format!("GEM\n  remote: {remote}\n  specs:\n    kamal (2.7.0)\n      g0 (>= 1.0)\n");
    for i in 0..n {
        text.push_str(&format!("    g{i} (1.0.{i})\n"));
        if i + 1 < n {
            text.push_str(&format!("      g{} (>= 1.0)\n", i + 1));
        }
    }
    text.push_str("\nPLATFORMS\n  ruby\n\nDEPENDENCIES\n  kamal\n\nCHECKSUMS\n");
    for i in 0..n {
        text.push_str(&format!("  g{i} (1.0.{i}) sha256={i:064x}\n"));
    }
    text
}

#[test]
fn a_200k_line_lockfile_completes() {
    // Nothing is timed: every run must merely finish within the harness's timeout (a quadratic step over the
    // closure or the checksums did not).
    let server = serve();
    let text = two_hundred_thousand_lines(&server.url());
    assert!(text.lines().count() >= 198_000);
    let app = App::with_lockfile(&server.url(), &text);
    let launcher = Launcher::new(app.path());

    let out = launcher.clone().args(["cache", "key"]).run();
    assert_success(&out);
    let out = launcher
        .clone()
        .args(["plan", "--offline", "--platform", "x86_64-linux"])
        .run();
    assert_success(&out);
    // A row per gem under the column headers; the lines above say what is the same for all, the footer (the
    // digests offline cannot know, and why) is not a gem.
    let table = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("GEM "))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .count();
    let head: String = out.stdout.chars().take(2000).collect();
    assert_eq!(table, 66_001, "one row per gem:\n{head}");
    // The root gem has no CHECKSUMS line, and no index is asked offline.
    assert!(
        out.stdout
            .contains("SHA256 unknown for 1 gem, offline: kamal\n"),
        "{head}"
    );

    // Installing cannot succeed (the server has none of these gems): it fails, and leaves no environment.
    for args in [&["install", "--offline"][..], &["install"]] {
        let out = launcher.clone().args(args).run();
        assert_eq!(
            out.code(),
            Some(1),
            "{}",
            &out.stderr[..out.stderr.len().min(2_000)]
        );
        assert!(!out.stderr.contains("panicked"));
    }
    assert!(!launcher.layout_root().join("envs").exists());
    let cache_root = launcher.cache_path().parent().unwrap();
    for path in tree(cache_root) {
        assert!(
            path.starts_with("cache/v2") || path == Path::new("cache"),
            "{}",
            path.display()
        );
    }
}
