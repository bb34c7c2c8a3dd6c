//! Trust in the cache (issue 18): nothing damaged or planted is taken as done. A damaged compact-index copy is
//! fetched whole instead of being revalidated by its ETag, and its checksums are never used; a damaged download is
//! hashed, named and fetched again (or, offline, named with the fix); a cache another user could change is refused
//! before anything in it runs.
//!
//! Each test has its own cache and loopback server and waits on events (exit, the request log), never on time.
//! The ownership tests run the launcher as root and as uid 65534 (`nobody`), so the suite must run as root.

use crate::support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, lchown};
use std::path::{Path, PathBuf};

use support::nobody::{NOBODY, add_mode, as_nobody, launcher_for_others};
use support::{
    App, Launcher, Lock, Output, Server, assert_failure, assert_success, entries, fixtures,
    sha256_hex,
};

const DEP_A: &str = "/gems/fixture_dep_a-1.2.0.gem";
const DEP_B: &str = "/gems/fixture_dep_b-0.3.1.gem";

fn serve() -> Server {
    Server::start(&fixtures().dir)
}

/// Installs `fixture_dep_a`'s closure (it and `fixture_dep_b`, pure Ruby: a quick cold install).
fn install_small(launcher: &Launcher, extra: &[&str]) -> Output {
    launcher
        .clone()
        .args(["-v", "--gem", "fixture_dep_a"])
        .args(extra)
        .arg("install")
        .run()
}

/// Removes the environments and installed gems, so that the next run installs from the downloads again.
fn remove_installed(launcher: &Launcher) {
    for dir in ["envs", "store"] {
        let path = launcher.layout_root().join(dir);
        if path.exists() {
            fs::remove_dir_all(&path).expect("remove cache part");
        }
    }
}

/// How many requests the server got for `path`, and the `If-None-Match` of each.
fn conditionals(server: &Server, path: &str) -> Vec<Option<String>> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .map(|r| r.header("If-None-Match").map(str::to_owned))
        .collect()
}

/// The cached compact-index copy of `name` (one source, so one index directory).
fn index_copy(launcher: &Launcher, name: &str) -> PathBuf {
    let index = launcher.layout_root().join("index");
    let keys = entries(&index);
    assert_eq!(keys.len(), 1, "one source, one index directory: {keys:?}");
    let path = index.join(&keys[0]).join(name);
    assert!(path.is_file(), "{} is not cached", path.display());
    path
}

/// Replaces the checksum the cached index copy gives `version` with `sha256` (hex), leaving the rest (and any
/// stored ETag) as it was: what a disk error or a stray edit does.
fn damage_index_copy(path: &Path, version: &str, sha256: &str) {
    let text = fs::read_to_string(path).expect("read index copy");
    let mut replaced = false;
    let damaged: String = text
        .lines()
        .map(|line| {
            let Some(rest) = line.strip_prefix(&format!("{version} ")) else {
                return format!("{line}\n");
            };
            let at = rest.find("checksum:").expect("a checksum on the line") + "checksum:".len();
            replaced = true;
            format!("{version} {}{sha256}{}\n", &rest[..at], &rest[at + 64..])
        })
        .collect();
    assert!(replaced, "{version} not in {}:\n{text}", path.display());
    assert_ne!(damaged, text);
    fs::write(path, damaged).expect("write index copy");
}

fn gem_sha(name: &str, version: &str) -> String {
    fixtures().gem(name, version, "ruby").sha256.clone()
}

// ---- 5. a damaged compact-index copy ----

#[test]
fn a_damaged_index_copy_is_fetched_whole_not_revalidated_by_its_etag() {
    let server = serve();
    let app = App::new(&Lock::new(server.url()).with_checksums(false));
    let launcher = Launcher::new(app.path());
    assert_success(&install_small(&launcher, &[]));
    let copy = index_copy(&launcher, "fixture_dep_a");
    let intact = fs::read(&copy).unwrap();

    // The copy's ETag still matches the server's, so a revalidation would be answered 304.
    damage_index_copy(&copy, "1.2.0", &"0".repeat(64));
    remove_installed(&launcher);
    fs::remove_dir_all(launcher.layout_root().join("downloads")).unwrap();
    server.clear_log();
    let out = install_small(&launcher, &[]);
    assert_success(&out);
    assert!(!out.stderr.contains("checksum mismatch"), "{out}");
    // The damaged copy was fetched whole; the intact one was still revalidated (and kept).
    assert_eq!(
        conditionals(&server, "/info/fixture_dep_a"),
        [None],
        "{out}"
    );
    let revalidated = conditionals(&server, "/info/fixture_dep_b");
    assert!(
        matches!(revalidated.as_slice(), [Some(_)]),
        "fixture_dep_b's intact copy was not revalidated: {revalidated:?}"
    );
    assert_eq!(server.count(DEP_A), 1);
    // The copy written back is whole again.
    assert_eq!(fs::read(&copy).unwrap(), intact);
}

#[test]
fn a_checksum_from_a_damaged_index_copy_accepts_nothing_offline() {
    let server = serve();
    let app = App::new(&Lock::new(server.url()).with_checksums(false));
    let launcher = Launcher::new(app.path());
    assert_success(&install_small(&launcher, &[]));
    // The damaged copy names another gem's download, which is in the cache: used, it would install
    // fixture_dep_b's bytes as fixture_dep_a.
    let copy = index_copy(&launcher, "fixture_dep_a");
    damage_index_copy(&copy, "1.2.0", &gem_sha("fixture_dep_b", "0.3.1"));
    remove_installed(&launcher);
    server.clear_log();

    let out = install_small(&launcher, &["--offline"]);
    assert_failure(&out);
    assert!(out.stderr.contains("fixture_dep_a-1.2.0"), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "the cached index copy {} does not match the digest recorded when it was fetched",
            copy.display()
        )),
        "{out}"
    );
    assert!(out.stderr.contains("kamal-launcher install"), "{out}");
    assert!(
        server.requests().is_empty(),
        "offline: {:?}",
        server.requests()
    );
    assert!(launcher.env_dirs().is_empty(), "an environment was made");

    // With the network, the copy is replaced and the right gem installed.
    let out = install_small(&launcher, &[]);
    assert_success(&out);
    assert_eq!(
        conditionals(&server, "/info/fixture_dep_a"),
        [None],
        "{out}"
    );
    let units = launcher.store_units();
    assert!(
        units.iter().any(|u| u.starts_with(&format!(
            "fixture_dep_a-1.2.0-{}",
            &gem_sha("fixture_dep_a", "1.2.0")[..16]
        ))),
        "{units:?}"
    );
}

// ---- 6. a damaged download ----

#[test]
fn a_damaged_download_is_named_and_downloaded_again() {
    let server = serve();
    let app = App::new(&Lock::new(server.url()));
    let launcher = Launcher::new(app.path());
    assert_success(&install_small(&launcher, &[]));
    let sha = gem_sha("fixture_dep_a", "1.2.0");
    let download = launcher
        .layout_root()
        .join("downloads")
        .join(format!("{sha}.gem"));
    let genuine = fs::read(&download).expect("the download is cached");
    let damage = || {
        let mut bytes = genuine.clone();
        bytes.truncate(bytes.len() / 2);
        fs::write(&download, bytes).unwrap();
        remove_installed(&launcher);
    };

    // Offline, the file is named as damaged, with the fix, and left alone; nothing is installed from it.
    damage();
    server.clear_log();
    let out = install_small(&launcher, &["--offline"]);
    assert_failure(&out);
    assert!(
        out.stderr.contains(&format!(
            "{} (fixture_dep_a-1.2.0: its SHA-256 is now",
            download.display()
        )),
        "{out}"
    );
    assert!(out.stderr.contains("damaged"), "{out}");
    assert!(
        out.stderr
            .contains("run `kamal-launcher install` once with network access"),
        "{out}"
    );
    assert!(!out.stderr.contains("NoMethodError"), "{out}");
    assert!(
        server.requests().is_empty(),
        "offline: {:?}",
        server.requests()
    );
    assert!(launcher.env_dirs().is_empty(), "an environment was made");
    assert_ne!(fs::read(&download).unwrap(), genuine);

    // Online, it is downloaded again (only it), verified, and installed.
    let out = install_small(&launcher, &[]);
    assert_success(&out);
    assert!(
        out.stderr.contains(&format!(
            "{} was damaged (its SHA-256 is now",
            download.display()
        )),
        "{out}"
    );
    assert_eq!(server.count(DEP_A), 1, "{out}");
    assert_eq!(server.count(DEP_B), 0, "{out}");
    assert_eq!(sha256_hex(&fs::read(&download).unwrap()), sha);
    assert_eq!(launcher.env_dirs().len(), 1);
}

// ---- 13. a cache another user could change ----

/// Asserts the suite runs as root: these tests change owners and run the launcher as uid 65534.
fn require_root() {
    assert_eq!(
        fs::metadata("/proc/self").expect("stat /proc/self").uid(),
        0,
        "this test changes owners and runs the launcher as uid {NOBODY} with setpriv, which needs root"
    );
}

/// Makes `path` owned by uid/gid `who` (the directory itself, not what is in it).
fn owner(path: &Path, who: u32) {
    lchown(path, Some(who), Some(who)).expect("chown");
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Plants, at the start of the installed kamal's executable, a line that writes `marker`: what a user who may
/// change the cache would do to run code as whoever runs kamal next.
fn plant(launcher: &Launcher, marker: &Path) {
    let unit = launcher
        .store_unit_dirs()
        .into_iter()
        .find(|d| {
            d.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("kamal-2.7.0-")
        })
        .expect("kamal is installed");
    let exe = unit.join("gems/kamal-2.7.0/exe/kamal");
    let text = fs::read_to_string(&exe).unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    let (shebang, rest) = text.split_once('\n').unwrap();
    fs::write(
        &exe,
        format!(
            "{shebang}\nFile.write({:?}, \"planted\")\n{rest}",
            marker.display().to_string()
        ),
    )
    .unwrap();
}

/// The run was refused before anything ran, naming `path` and why.
#[track_caller]
fn assert_refused(out: &Output, path: &Path, why: &str, marker: &Path) {
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    for needle in [
        format!("refusing to use the cache: {} (owner ", path.display()),
        why.to_string(),
        "another user could change what runs as you".to_string(),
        "KAMAL_LAUNCHER_CACHE_DIR".to_string(),
    ] {
        assert!(out.stderr.contains(&needle), "{needle:?} not in:\n{out}");
    }
    assert!(!marker.exists(), "the planted code ran:\n{out}");
}

#[test]
fn a_cache_another_user_owns_or_may_write_is_refused_and_nothing_in_it_runs() {
    require_root();
    let server = serve();
    let app = App::new(&Lock::new(server.url()));
    let launcher = Launcher::new(app.path());
    assert_success(&launcher.clone().arg("install").run());
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("planted");
    plant(&launcher, &marker);
    let exec = || launcher.clone().args(["exec", "--", "version"]).run();

    // The premise: in a trusted cache, the planted line runs.
    assert_success(&exec());
    assert!(marker.exists(), "the plant did not run in a trusted cache");
    fs::remove_file(&marker).unwrap();

    let cache = launcher.cache_path().to_path_buf();
    let v2 = launcher.layout_root();
    let envs = v2.join("envs");
    let store = v2.join("store");
    // Owned by another user: v2/ (whoever made it first in a shared directory), a directory in it, the cache.
    for path in [&v2, &envs, &store, &cache] {
        owner(path, NOBODY);
        for args in [
            &["exec", "--", "version"][..],
            &["install"],
            &["cache", "clean"],
        ] {
            let out = launcher.clone().args(args).run();
            assert_refused(&out, path, "nobody (uid 65534), group nogroup", &marker);
            assert!(
                out.stderr.contains("is not owned by you (uid 0) or root"),
                "{out}"
            );
            assert!(
                out.stderr
                    .contains(&format!("chown -R root {}", path.display())),
                "{out}"
            );
        }
        // doctor reports it, as a failed check with the fix.
        let out = launcher.clone().arg("doctor").run();
        assert_eq!(out.code(), Some(1), "{out}");
        assert!(
            out.stdout.contains(&format!(
                "Cache: refusing to use the cache: {} (owner",
                path.display()
            )),
            "{out}"
        );
        assert!(
            out.stdout.contains("hint: set KAMAL_LAUNCHER_CACHE_DIR"),
            "{out}"
        );
        assert!(!marker.exists());
        owner(path, 0);
    }
    assert!(
        launcher
            .store_units()
            .iter()
            .any(|u| u.starts_with("kamal-")),
        "clean ran"
    );

    // Writable by a group other than root's own, or by everyone without the sticky bit.
    chown(&v2, None, Some(NOBODY)).unwrap();
    set_mode(&v2, 0o775);
    assert_refused(
        &exec(),
        &v2,
        "is writable by the group nogroup (gid 65534)",
        &marker,
    );
    set_mode(&envs, 0o777);
    chown(&v2, None, Some(0)).unwrap();
    // Root's private group (group name = user name, gid = egid) may write: umask 002's convention.
    assert_refused(
        &exec(),
        &envs,
        "is writable by every user (and has no sticky bit)",
        &marker,
    );
    set_mode(&envs, 0o755);
    set_mode(&v2, 0o755);

    // An ancestor another user may change is refused too, with the fix of moving the cache out of it.
    let parent = cache.parent().unwrap().to_path_buf();
    let parent_mode = fs::metadata(&parent).unwrap().mode() & 0o7777;
    set_mode(&parent, 0o777);
    let out = exec();
    assert_refused(&out, &parent, "is writable by every user", &marker);
    assert!(
        out.stderr
            .contains(&format!("outside {}", parent.display())),
        "{out}"
    );
    // A /tmp-style directory (1777: others cannot rename or remove what is ours) is fine.
    set_mode(&parent, 0o1777);
    assert_success(&exec());
    assert!(marker.exists(), "the trusted cache did not run");
    set_mode(&parent, parent_mode);
    // Nothing was changed to make it run.
    assert_eq!(fs::metadata(&v2).unwrap().uid(), 0);
}

#[test]
fn in_a_shared_sticky_directory_the_first_user_to_create_the_cache_owns_it_alone() {
    require_root();
    let server = serve();
    let app = App::new(&Lock::new(server.url()));
    add_mode(app.path(), 0o755);
    // A directory CI runners and dev containers share: root's, 1777.
    let shared = tempfile::Builder::new()
        .prefix("shared-")
        .tempdir()
        .unwrap();
    set_mode(shared.path(), 0o1777);
    let cache = shared.path().join("kamal-launcher");
    let launcher = Launcher::new(app.path()).cache_dir(&cache);
    let home = tempfile::Builder::new()
        .prefix("nobody-home-")
        .tempdir()
        .unwrap();
    chown(home.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let (program, _bin) = launcher_for_others();

    // uid 65534 comes first, with a umask that would leave everything it creates open to others: the cache
    // directory and v2/ are its own and writable by it alone.
    let sh = Path::new("/bin/sh");
    let script = "umask 000; exec \"$0\" \"$@\"";
    let program_text = program.to_str().unwrap();
    let out = as_nobody(
        &launcher,
        home.path(),
        sh,
        &["-c", script, program_text, "install"],
    );
    assert_success(&out);
    for dir in [cache.clone(), launcher.layout_root()] {
        let meta = fs::metadata(&dir).unwrap();
        assert_eq!(meta.uid(), NOBODY, "{}", dir.display());
        assert_eq!(
            format!("{:o}", meta.mode() & 0o7777),
            "755",
            "{}",
            dir.display()
        );
    }

    // Root is refused that cache, and told how to use one of its own: what uid 65534 put there never runs.
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("planted");
    plant(&launcher, &marker);
    server.clear_log();
    for args in [&["exec", "--", "version"][..], &["install"]] {
        let out = launcher.clone().args(args).run();
        assert_refused(&out, &cache, "is not owned by you (uid 0) or root", &marker);
    }
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    // Root first instead: accepted in the same 1777 directory; uid 65534 may then run what root installed.
    fs::remove_dir_all(&cache).unwrap();
    assert_success(&launcher.clone().arg("install").run());
    let out = as_nobody(&launcher, home.path(), &program, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
}
