//! Local faults: a full disk, a cache directory this user may not write, a cache directory (or a directory in
//! it) that is a file, no HOME. Each gives a clear error that names the path and says what to do, and leaves
//! the cache consistent: every download matches its digest, every installed gem is complete, no environment is
//! half-built, no temporary file is left. And secrets: the environment kamal and its hooks see carries none of
//! the launcher's own variables, and credentials never reach the cache's file names or contents.
//!
//! The disk-full tests mount small filesystems (tmpfs, and ext4 on a loop device), which needs root; the
//! suite runs as root (see tests/suite/cache.rs). Where mounting is refused they say so loudly and skip that part.

use crate::support;
use crate::support::power::{free_bytes, skip_loudly};

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::nobody::{NOBODY, add_mode, as_nobody, launcher_for_others};
use support::{App, Launcher, Lock, Output, Server, assert_success, entries, fixtures, sha256_hex};

/// The uid/gid of `nobody` on Debian, as in tests/suite/cache.rs.
fn serve() -> Server {
    Server::start(&fixtures().dir)
}

fn app_for(server: &Server) -> App {
    App::new(&Lock::new(server.url()))
}

/// Every file and directory under `root`, relative, with the file's size (directories: `None`).
fn tree(root: &Path) -> BTreeMap<PathBuf, Option<u64>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(read) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in read.flatten() {
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if meta.is_dir() {
                out.insert(rel, None);
                stack.push(path);
            } else {
                out.insert(rel, Some(meta.len()));
            }
        }
    }
    out
}

/// Bytes the files under `root` occupy, counted in whole 4 KiB pages (how tmpfs and 4 KiB-block ext4 count).
fn pages_used(root: &Path) -> u64 {
    tree(root)
        .values()
        .flatten()
        .map(|size| size.div_ceil(4096) * 4096)
        .sum()
}

/// `v2/store/<abi>/<unit>` for every installed gem, by `<abi>/<unit>`.
fn store_units(cache: &Path) -> BTreeMap<String, PathBuf> {
    let store = cache.join("v2/store");
    let mut out = BTreeMap::new();
    for abi in entries(&store) {
        for unit in entries(&store.join(&abi)) {
            out.insert(format!("{abi}/{unit}"), store.join(&abi).join(unit));
        }
    }
    out
}

/// A complete install of the fixture closure on an ordinary disk: the space it takes and the files of each
/// installed gem, to hold interrupted installs against.
struct Reference {
    bytes: u64,
    units: BTreeMap<String, BTreeSet<PathBuf>>,
}

fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let server = serve();
        let app = app_for(&server);
        let launcher = Launcher::new(app.path());
        assert_success(&launcher.clone().arg("install").run());
        let cache = launcher.cache_path();
        let units = store_units(cache)
            .into_iter()
            .map(|(name, dir)| (name, tree(&dir).into_keys().collect()))
            .collect();
        Reference {
            bytes: pages_used(cache),
            units,
        }
    })
}

/// What any run, failed or not, must leave: downloads named after their own digest, installed gems complete
/// (exactly the files a complete install has), environments whose every gem is installed, no temporary files.
#[track_caller]
fn assert_consistent(cache: &Path) {
    let v1 = cache.join("v2");
    for name in entries(&v1.join("downloads")) {
        let stem = name
            .strip_suffix(".gem")
            .unwrap_or_else(|| panic!("unexpected file in downloads: {name}"));
        let bytes = fs::read(v1.join("downloads").join(&name)).unwrap();
        assert_eq!(sha256_hex(&bytes), stem, "download {name} is not complete");
    }
    let reference = reference();
    for (name, dir) in store_units(cache) {
        let files: BTreeSet<PathBuf> = tree(&dir).into_keys().collect();
        let expected = reference
            .units
            .get(&name)
            .unwrap_or_else(|| panic!("unknown store entry {name}"));
        assert_eq!(
            &files, expected,
            "store entry {name} is not a complete install"
        );
    }
    for env in entries(&v1.join("envs")) {
        let env = v1.join("envs").join(env);
        assert!(
            kamal_launcher::env::check(&env, kamal_launcher::env::Depth::Full).is_ok(),
            "half-built environment {}",
            env.display()
        );
    }
    assert_eq!(
        entries(&v1.join("tmp")),
        Vec::<String>::new(),
        "temporary files left"
    );
}

// ---- 1. a full disk ----

/// A filesystem mounted for one test; unmounted (and its loop image removed) on drop.
struct Mounted {
    dir: tempfile::TempDir,
    _image: Option<tempfile::TempDir>,
}

impl Mounted {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A tmpfs of `size` bytes.
    fn tmpfs(size: u64) -> Result<Mounted, String> {
        let dir = tempfile::Builder::new().prefix("tmpfs-").tempdir().unwrap();
        run_ok(
            Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size},mode=0755"),
                    "tmpfs",
                ])
                .arg(dir.path()),
        )?;
        Ok(Mounted { dir, _image: None })
    }

    /// An ext4 filesystem (4 KiB blocks) of `size` bytes in an image file on a loop device.
    fn ext4(size: u64) -> Result<Mounted, String> {
        let images = tempfile::Builder::new()
            .prefix("ext4-image-")
            .tempdir()
            .unwrap();
        let image = images.path().join("disk.img");
        fs::File::create(&image).unwrap().set_len(size).unwrap();
        run_ok(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-b", "4096"])
                .arg(&image),
        )?;
        let dir = tempfile::Builder::new().prefix("ext4-").tempdir().unwrap();
        run_ok(
            Command::new("mount")
                .args(["-o", "loop"])
                .arg(&image)
                .arg(dir.path()),
        )?;
        Ok(Mounted {
            dir,
            _image: Some(images),
        })
    }

    /// Fills the filesystem with a ballast file so that about `free` bytes are left.
    fn leave_free(&self, free: u64) {
        let ballast = self.path().join("ballast");
        let _ = fs::remove_file(&ballast);
        let mut file = fs::File::create(&ballast).unwrap();
        let chunk = vec![0x5a; 64 * 1024];
        let mut written = 0u64;
        for size in [64 * 1024, 4096, 512] {
            loop {
                match file.write(&chunk[..size]) {
                    Ok(n) if n > 0 => written += n as u64,
                    _ => break,
                }
            }
        }
        let _ = file.sync_all();
        // Whole pages: a partly freed page is no room at all.
        file.set_len(written.saturating_sub(free.div_ceil(4096) * 4096))
            .unwrap();
        file.sync_all().unwrap();
        drop(file);
        sync(self.path());
        let left = free_bytes(self.path());
        assert!(
            left >= free / 2 && left <= free + 256 * 1024,
            "asked for {free} bytes free, got {left}"
        );
    }

    /// Removes the ballast: space is freed, as a user would after reading the message.
    fn free_everything(&self) {
        let _ = fs::remove_file(self.path().join("ballast"));
        sync(self.path());
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds it (a failed test's leftover process): detach it lazily.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

fn run_ok(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn sync(path: &Path) {
    let _ = Command::new("sync").arg("-f").arg(path).status();
}

/// Runs `install` with less room than it needs, several times, each time leaving free a larger part of what is
/// still missing (as a user freeing a little space and retrying would): the first runs out of space early
/// (creating directories, downloading), later ones while installing gems. Every run fails with a message that names the path and says
/// the disk is full, and leaves the cache consistent. Then, with room, `install` completes from what the failed
/// runs kept, and kamal runs.
fn fill_the_disk(fs: &Mounted, label: &str) {
    let reference = reference();
    let server = serve();
    let app = app_for(&server);
    let cache = fs.path().join("cache");
    let launcher = Launcher::new(app.path()).cache_dir(&cache);
    let mut phases = BTreeSet::new();
    for fraction in [0.02, 0.3, 0.55, 0.8] {
        let missing = reference.bytes.saturating_sub(pages_used(&cache));
        // Near the end, a part of what is missing may be within the slack of the estimate: stop before then.
        if missing < reference.bytes / 8 {
            break;
        }
        fs.leave_free((missing as f64 * fraction) as u64);
        let out = launcher.clone().arg("install").run();
        eprintln!(
            "---- {label}: {fraction} of {missing} missing bytes free:\n{}",
            out.stderr
        );
        assert_eq!(
            out.code(),
            Some(1),
            "{label}, {fraction} of {missing} bytes free: {out}"
        );
        assert_disk_full_message(&out, &cache);
        assert_consistent(&cache);
        phases.insert(if out.stderr.contains("/v2/store/") {
            "installing"
        } else if out.stderr.contains("download") {
            "downloading"
        } else {
            "elsewhere"
        });
    }
    // tmpfs runs out while downloading first; ext4 already while creating the cache's directories (each takes a
    // block).
    assert!(
        phases.contains("installing") && phases.len() >= 2,
        "{label}: runs ran out of space only while {phases:?}"
    );

    fs.free_everything();
    let out = launcher.clone().arg("install").run();
    assert_success(&out);
    assert_consistent(&cache);
    assert_eq!(
        store_units(&cache).keys().collect::<Vec<_>>(),
        reference.units.keys().collect::<Vec<_>>()
    );
    let out = launcher.clone().args(["exec", "--", "version"]).run();
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
}

#[track_caller]
fn assert_disk_full_message(out: &Output, cache: &Path) {
    assert!(out.stderr.contains("no space left on device"), "{out}");
    assert!(
        out.stderr.contains(&cache.display().to_string()),
        "the message should name the path in {}:\n{out}",
        cache.display()
    );
    assert!(out.stderr.contains("is full"), "{out}");
    assert!(out.stderr.contains("free some space"), "{out}");
    assert!(out.stderr.contains("--cache-dir"), "{out}");
    assert!(!out.stderr.contains("panicked"), "{out}");
    assert_eq!(out.stdout, "", "{out}");
}

#[test]
fn a_full_tmpfs_fails_cleanly_and_room_lets_the_install_finish() {
    let size = (reference().bytes * 3).max(4 << 20);
    match Mounted::tmpfs(size) {
        Ok(fs) => fill_the_disk(&fs, "tmpfs"),
        Err(why) => skip_loudly("disk full on tmpfs", &why),
    }
}

#[test]
fn a_full_ext4_disk_fails_cleanly_and_room_lets_the_install_finish() {
    let size = reference().bytes * 3 + (8 << 20);
    match Mounted::ext4(size) {
        Ok(fs) => fill_the_disk(&fs, "ext4"),
        Err(why) => skip_loudly("disk full on ext4 (loop device)", &why),
    }
}

#[test]
fn a_disk_too_small_for_even_the_first_download() {
    // The classic tiny tmpfs: a few pages, less than one gem.
    let Ok(fs) = Mounted::tmpfs(48 * 1024).map_err(|why| skip_loudly("tiny tmpfs", &why)) else {
        return;
    };
    let server = serve();
    let app = app_for(&server);
    let cache = fs.path().join("cache");
    let launcher = Launcher::new(app.path()).cache_dir(&cache);
    for args in [&["install"][..], &["exec", "--", "version"]] {
        let out = launcher.clone().args(args).run();
        assert_eq!(out.code(), Some(1), "{out}");
        assert_disk_full_message(&out, &cache);
        assert_consistent(&cache);
    }
}

// ---- 2. a cache directory this user may not write ----

#[test]
fn a_cache_directory_this_user_may_not_write_is_named_with_what_to_do() {
    assert_eq!(
        fs::metadata("/proc/self").unwrap().uid(),
        0,
        "this test runs the launcher as uid {NOBODY} with setpriv, which needs root"
    );
    let server = serve();
    let app = app_for(&server);
    add_mode(app.path(), 0o755);
    // Root-owned and 0755, as a cache directory made by `sudo` or a CI image is.
    let root = tempfile::Builder::new()
        .prefix("root-owned-")
        .tempdir()
        .unwrap();
    add_mode(root.path(), 0o755);
    let existing = root.path().join("cache");
    fs::create_dir(&existing).unwrap();
    fs::set_permissions(&existing, fs::Permissions::from_mode(0o755)).unwrap();
    let home = tempfile::Builder::new()
        .prefix("nobody-home-")
        .tempdir()
        .unwrap();
    fs::set_permissions(home.path(), fs::Permissions::from_mode(0o555)).unwrap();
    let (program, _bin) = launcher_for_others();

    // The directory exists but is not ours; or it does not exist and its parent is not ours.
    for (cache, refusing) in [
        (existing.clone(), existing.clone()),
        (root.path().join("missing/cache"), root.path().to_path_buf()),
    ] {
        let launcher = Launcher::new(app.path()).cache_dir(&cache);
        for args in [&["install"][..], &["exec", "--", "version"]] {
            let out = as_nobody(&launcher, home.path(), &program, args);
            assert_eq!(out.code(), Some(1), "{out}");
            assert_eq!(out.stdout, "", "{out}");
            assert!(out.stderr.contains("permission denied"), "{out}");
            assert!(
                out.stderr.contains(&format!(
                    "this user (uid {NOBODY}) may not write in {}:",
                    refusing.display()
                )),
                "{out}"
            );
            assert!(
                out.stderr
                    .contains("--cache-dir DIR or KAMAL_LAUNCHER_CACHE_DIR"),
                "{out}"
            );
        }
    }
    assert_eq!(entries(&existing), Vec::<String>::new());
    assert_eq!(entries(root.path()), ["cache"]);
    assert!(
        server.requests().is_empty(),
        "nothing was fetched only to be thrown away"
    );
}

// ---- 3. a cache directory, or a directory in it, that is a file ----

#[test]
fn a_file_where_the_cache_needs_a_directory_is_named() {
    let server = serve();
    let app = app_for(&server);
    for rel in [
        "",
        "v2",
        "v2/tmp",
        "v2/locks",
        "v2/downloads",
        "v2/store",
        "v2/envs",
    ] {
        let launcher = Launcher::new(app.path());
        let cache = launcher.cache_path().to_path_buf();
        let file = cache.join(rel);
        let file = if rel.is_empty() { cache.clone() } else { file };
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, "not a directory\n").unwrap();

        let out = launcher.clone().arg("install").run();
        eprintln!("---- {rel}: {}", out.stderr);
        assert_eq!(out.code(), Some(1), "{rel}: {out}");
        assert!(
            out.stderr
                .contains(&format!("{} is a file, not a directory", file.display())),
            "{rel}: {out}"
        );
        assert!(
            out.stderr
                .contains("--cache-dir DIR or KAMAL_LAUNCHER_CACHE_DIR"),
            "{out}"
        );
        assert!(!out.stderr.contains("panicked"), "{out}");
        assert_eq!(fs::read_to_string(&file).unwrap(), "not a directory\n");
        if !rel.is_empty() && rel != "v2" {
            if rel != "v2/tmp" {
                assert_consistent(&cache);
            }
            assert!(!cache.join("v2/envs").is_dir() || entries(&cache.join("v2/envs")).is_empty());
        }

        // Out of the way, the same cache works, with what the failed run kept.
        fs::remove_file(&file).unwrap();
        if matches!(rel, "" | "v2/store" | "v2/envs") {
            assert_success(&launcher.clone().arg("install").run());
            assert_consistent(&cache);
        }
    }
}

// ---- 4. no HOME ----

#[test]
fn without_home_or_a_cache_directory_the_error_says_how_to_choose_one() {
    let server = serve();
    let app = app_for(&server);
    // What the password database would have offered instead of HOME: it must stay untouched.
    let passwd_cache = PathBuf::from("/root/.cache/kamal-launcher");
    let before = tree(&passwd_cache);
    let launcher = Launcher::new(app.path())
        .env_remove("HOME")
        .env_remove("KAMAL_LAUNCHER_CACHE_DIR");
    for args in [
        &["install"][..],
        &["exec", "--", "version"],
        &["cache", "dir"],
        &["plan"],
    ] {
        let out = launcher.clone().args(args).run();
        assert_eq!(out.code(), Some(1), "{args:?}: {out}");
        assert!(out.stderr.contains("HOME is not set"), "{out}");
        assert!(out.stderr.contains("KAMAL_LAUNCHER_CACHE_DIR"), "{out}");
        assert!(out.stderr.contains("--cache-dir"), "{out}");
        assert_eq!(out.stdout, "", "{out}");
    }
    assert_eq!(tree(&passwd_cache), before);
    assert!(server.requests().is_empty());

    // XDG_CACHE_HOME is enough for the default.
    let xdg = tempfile::tempdir().unwrap();
    let out = launcher
        .clone()
        .env("XDG_CACHE_HOME", xdg.path())
        .args(["cache", "dir"])
        .run();
    assert_success(&out);
    assert_eq!(
        out.stdout,
        format!("{}\n", xdg.path().join("kamal-launcher").display())
    );
}

#[test]
fn without_home_an_explicit_cache_directory_works_cold_and_warm() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path()).env_remove("HOME");
    let out = launcher.clone().arg("install").run();
    assert_success(&out);
    for _ in 0..2 {
        let out = launcher.clone().args(["exec", "--", "version"]).run();
        assert_success(&out);
        assert_eq!(out.stdout, "2.7.0\n", "{out}");
    }
    // kamal sees the caller's environment: still no HOME.
    let out = launcher.clone().args(["exec", "--", "env", "HOME"]).run();
    assert_success(&out);
    assert_eq!(out.stdout, "HOME unset\n", "{out}");
    assert_consistent(launcher.cache_path());
}

// ---- 5. secrets ----

const USER: &str = "deployer-u5er";
const PASSWORD: &str = "pw-Sekr1t-local-7731";

/// Every path under the cache, and every file's bytes except the gems themselves, must be free of `secret`.
#[track_caller]
fn assert_secret_absent_from_cache(cache: &Path, secret: &str) {
    let mut read = 0;
    for (rel, size) in tree(cache) {
        assert!(
            !rel.to_string_lossy().contains(secret),
            "a cache path carries the secret: {}",
            rel.display()
        );
        let is_gem = rel.extension().is_some_and(|e| e == "gem");
        if size.is_some() && !is_gem {
            let bytes = fs::read(cache.join(&rel)).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} contains the secret",
                rel.display()
            );
            read += 1;
        }
    }
    assert!(read > 10, "only {read} files were checked");
}

#[test]
fn the_environment_of_kamal_and_its_hooks_carries_nothing_of_the_launcher() {
    let server = serve();
    let app = app_for(&server);
    // A RUBYOPT (as `bundle exec` sets) is moved aside for kamal and restored for its hooks; the variable that
    // carries it across must not reach either. The hook's Ruby loads `dump.rb` through that RUBYOPT and writes
    // its whole environment out.
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("hook-env.txt");
    let script = dir.path().join("dump.rb");
    fs::write(
        &script,
        format!(
            "File.write({:?}, ENV.map {{ |k, v| \"#{{k}}=#{{v}}\" }}.sort.join(\"\\n\") + \"\\n\")\n",
            dump.to_str().unwrap()
        ),
    )
    .unwrap();
    let rubyopt = format!("-r{}", script.display());
    let launcher = Launcher::new(app.path())
        .env("RUBYOPT", &rubyopt)
        .env("RUBYLIB", "/opt/caller/lib")
        .env("KAMAL_LAUNCHER_MARKER", "from-the-caller");
    assert_success(&launcher.clone().arg("install").run());

    let saved = [
        "KAMAL_LAUNCHER_SAVED_RUBYOPT",
        "KAMAL_LAUNCHER_SAVED_RUBYLIB",
    ];
    let mut args = vec!["exec", "--", "env"];
    args.extend(saved);
    args.extend(["RUBYOPT", "RUBYLIB", "KAMAL_LAUNCHER_MARKER"]);
    let out = launcher.clone().args(&args).run();
    assert_success(&out);
    assert_eq!(
        out.stdout_lines(),
        [
            "KAMAL_LAUNCHER_SAVED_RUBYOPT unset",
            "KAMAL_LAUNCHER_SAVED_RUBYLIB unset",
            &format!("RUBYOPT={rubyopt}"),
            "RUBYLIB=/opt/caller/lib",
            "KAMAL_LAUNCHER_MARKER=from-the-caller",
        ],
        "{out}"
    );

    let mut args = vec!["exec", "--", "child-env"];
    args.extend(saved);
    args.push("RUBYOPT");
    let out = launcher.clone().args(&args).run();
    assert_eq!(
        out.stdout_lines()[..3],
        [
            "KAMAL_LAUNCHER_SAVED_RUBYOPT unset",
            "KAMAL_LAUNCHER_SAVED_RUBYLIB unset",
            &format!("RUBYOPT={rubyopt}"),
        ],
        "{out}"
    );
    // The hook's whole environment is the caller's: no KAMAL_LAUNCHER_SAVED_*, nothing added but what the
    // shell itself sets.
    let hook_env =
        fs::read_to_string(&dump).unwrap_or_else(|e| panic!("{}: {e}\n{out}", dump.display()));
    let hook: BTreeMap<&str, &str> = hook_env.lines().filter_map(|l| l.split_once('=')).collect();
    assert!(
        !hook.keys().any(|k| k.starts_with("KAMAL_LAUNCHER_SAVED")),
        "{hook_env}"
    );
    let caller: BTreeMap<String, String> = launcher
        .command()
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
        .collect();
    for (key, value) in &caller {
        assert_eq!(
            hook.get(key.as_str()).copied(),
            Some(value.as_str()),
            "{key} in the hook\n{hook_env}"
        );
    }
    let added: Vec<&&str> = hook
        .keys()
        .filter(|k| !caller.contains_key(**k) && !["PWD", "SHLVL", "_", "OLDPWD"].contains(*k))
        .collect();
    assert!(
        added.is_empty(),
        "the hook's environment gained {added:?}\n{hook_env}"
    );
}

#[test]
fn credentials_never_reach_the_cache() {
    let server = serve();
    server.require_basic_auth(USER, PASSWORD);
    // Credentials from BUNDLE_<HOST>, a lockfile without CHECKSUMS (so the compact index is fetched and kept),
    // and a gem whose native build fails (so a build log is kept).
    let lock = Lock::new(server.url()).with_checksums(false);
    let app = App::new(&lock);
    let launcher =
        Launcher::new(app.path()).env("BUNDLE_127__0__0__1", format!("{USER}:{PASSWORD}"));
    let out = launcher.clone().args(["exec", "--", "version"]).run();
    assert_success(&out);
    assert!(!out.stderr.contains(PASSWORD), "{out}");
    let deps = support::kamal_deps_plus(("unbuildable_pg", ">= 1.0"));
    let deps: Vec<(&str, &str)> = deps.iter().map(|(n, r)| (n.as_str(), r.as_str())).collect();
    app.write_lockfile(&lock.clone().set_deps("kamal", &deps).render());
    let out = launcher.clone().arg("install").run();
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        !entries(&launcher.layout_root().join("logs")).is_empty(),
        "no build log kept\n{out}"
    );
    assert!(!entries(&launcher.layout_root().join("index")).is_empty());
    for secret in [PASSWORD, USER] {
        assert_secret_absent_from_cache(launcher.cache_path(), secret);
    }

    // The same with `user:password@` in the lockfile's remote.
    let app = App::new(&Lock::new(server.url_with_auth(USER, PASSWORD)).with_checksums(false));
    let launcher = Launcher::new(app.path());
    let out = launcher.clone().args(["exec", "--", "version"]).run();
    assert_success(&out);
    assert!(!out.stderr.contains(PASSWORD), "{out}");
    for secret in [PASSWORD, USER] {
        assert_secret_absent_from_cache(launcher.cache_path(), secret);
    }
}

#[test]
fn an_installer_that_dies_is_reported_with_its_own_words() {
    let server = serve();
    let app = app_for(&server);
    // A Ruby that answers the probe and runs everything else, except that the installer dies at once.
    let bin = tempfile::tempdir().unwrap();
    let ruby = bin.path().join("ruby");
    fs::write(
        &ruby,
        "#!/bin/sh\ncase \"$2\" in *Gem::Installer*) echo 'installer exploded' >&2; exit 3;; esac\nexec ruby \"$@\"\n",
    )
    .unwrap();
    fs::set_permissions(&ruby, fs::Permissions::from_mode(0o755)).unwrap();
    let launcher = Launcher::new(app.path()).env("KAMAL_LAUNCHER_RUBY", &ruby);
    let out = launcher.clone().arg("install").run();
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("stopped unexpectedly"), "{out}");
    assert!(out.stderr.contains("installer exploded"), "{out}");
    assert!(!out.stderr.contains("panicked"), "{out}");
    let cache = launcher.cache_path().to_path_buf();
    assert!(store_units(&cache).is_empty(), "{out}");
    assert_consistent(&cache);
}
