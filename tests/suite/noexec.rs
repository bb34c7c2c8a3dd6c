//! A cache on a noexec mount: detected once, said with the fix, and checked by doctor.
//!
//! A tmpfs mounted `noexec` stands in for a hardened /tmp or CI mount. The closure has native code: fixture_ext
//! builds a C extension, which cannot be built (extconf's checks link and run nothing there) nor loaded from such a
//! mount.

use crate::support;

use support::power::{Tmpfs, skip_loudly};
use support::screen::{Look, assert_screen, stable, transcript};
use support::{App, Launcher, Lock, Server, assert_failure, assert_success, entries, fixtures};

/// What says that the cache is the problem, and what to do.
const SAID: &str = "is on a filesystem mounted noexec, where the native extensions kamal needs";
const FIX: &str = "hint: set KAMAL_LAUNCHER_CACHE_DIR (or --cache-dir) to a directory on a filesystem that allows \
                   executables";

/// A server, an app, and a launcher whose cache is in a tmpfs mounted with `options`; `None` (said loudly) where
/// this machine cannot mount.
fn on_tmpfs(options: &str, what: &str) -> Option<(Tmpfs, Server, App, Launcher)> {
    let fs = match Tmpfs::mount(options) {
        Ok(fs) => fs,
        Err(why) => {
            skip_loudly(what, &why);
            return None;
        }
    };
    let server = Server::start(&fixtures().dir);
    let app = App::new(&Lock::new(server.url()));
    let launcher = Launcher::new(app.path()).cache_dir(&fs.path().join("cache"));
    Some((fs, server, app, launcher))
}

#[test]
fn a_cold_install_into_a_noexec_cache_says_so_with_the_fix() {
    let Some((fs, _server, _app, launcher)) = on_tmpfs(
        "size=256m,mode=0755,noexec",
        "a cold install into a noexec cache",
    ) else {
        return;
    };
    let cache = fs.path().join("cache");
    for args in [&["install"][..], &["exec", "--", "version"]] {
        let out = launcher.clone().args(args).run();
        assert_failure(&out);
        assert_eq!(out.stdout, "", "{out}");
        assert!(
            out.stderr.contains(&format!("{} {SAID}", cache.display())),
            "{out}"
        );
        assert!(out.stderr.contains(FIX), "{out}");
        assert!(!out.stderr.contains("lack of necessary libraries"), "{out}");
    }
    // Refused before anything was downloaded, built or installed.
    assert_eq!(launcher.store_units(), Vec::<String>::new());
    assert_eq!(launcher.env_dirs(), Vec::<String>::new());
    assert_eq!(
        entries(&launcher.layout_root().join("downloads")),
        Vec::<String>::new()
    );
    let look = Look {
        width: 80,
        color: false,
    };
    let out = look.apply(launcher.clone()).arg("install").run();
    assert_screen(
        "noexec_cold_install",
        look,
        &stable(
            &transcript(&out),
            &[(&cache.display().to_string(), "[CACHE]")],
        ),
    );
}

#[test]
fn doctor_fails_a_noexec_cache_and_passes_an_exec_one() {
    let Some((fs, _server, _app, launcher)) =
        on_tmpfs("size=64m,mode=0755,noexec", "doctor on a noexec cache")
    else {
        return;
    };
    let cache = fs.path().join("cache");
    let out = launcher.clone().arg("doctor").env("NO_COLOR", "1").run();
    assert_failure(&out);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("Cache:"))
        .unwrap_or_else(|| panic!("no Cache check:\n{out}"));
    assert!(
        line.starts_with(&format!(
            "FAIL Cache: refusing to use the cache: {} {SAID}",
            cache.display()
        )),
        "{out}"
    );
    assert!(out.stdout.contains(&format!("     {FIX}")), "{out}");
    // Nothing of the probe is left behind.
    let left: Vec<String> = entries(&cache)
        .into_iter()
        .filter(|e| e.starts_with(".doctor"))
        .collect();
    assert_eq!(left, Vec::<String>::new());

    fs.remount("exec");
    let out = launcher.clone().arg("doctor").env("NO_COLOR", "1").run();
    assert!(
        out.stdout.contains(&format!(
            "ok   Cache: {} is writable, and no other user can change it",
            cache.display()
        )),
        "{out}"
    );
}

#[test]
fn a_warm_run_of_a_cache_that_became_noexec_refuses_instead_of_running_without_native_code() {
    let Some((fs, _server, _app, launcher)) = on_tmpfs(
        "size=256m,mode=0755",
        "a warm run of a cache that became noexec",
    ) else {
        return;
    };
    let cache = fs.path().join("cache");
    let specs = launcher.clone().args(["exec", "--", "specs"]).run();
    assert_success(&specs);
    assert!(specs.stdout.contains("ext=hello"), "{specs}");

    fs.remount("noexec");
    for args in [&["exec", "--", "version"][..], &["install"]] {
        let out = launcher.clone().args(args).run();
        assert_failure(&out);
        // kamal did not run at all, rather than without its native extensions.
        assert_eq!(out.stdout, "", "{out}");
        assert!(
            out.stderr.contains(&format!("{} {SAID}", cache.display())),
            "{out}"
        );
        assert!(out.stderr.contains(FIX), "{out}");
    }

    // Nothing was damaged: mounted as it was, the same cache runs at once, quietly.
    fs.remount("exec");
    let out = launcher.clone().args(["exec", "--", "specs"]).run();
    assert_success(&out);
    assert_eq!(out.stderr, "", "{out}");
    assert!(out.stdout.contains("ext=hello"), "{out}");
}
