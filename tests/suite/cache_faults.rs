//! The cache under the faults of issue 21: an image layer (overlayfs, EXDEV), locks and entries replaced by directories or symlinks, inode exhaustion, bytecode temp files left by killed runs.
//!
//! The overlayfs and tmpfs tests mount filesystems, which needs root (the suite runs as root); where mounting is
//! refused they say so loudly and skip.

use crate::support;
use crate::support::power::{Tmpfs, free_bytes, run as run_cmd, skip_loudly, unmount};

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use support::{App, Launcher, Lock, Output, Server, assert_success, entries, fixtures};

fn serve() -> Server {
    Server::start(&fixtures().dir)
}

fn app_for(server: &Server) -> App {
    App::new(&Lock::new(server.url()))
}

fn run(launcher: &Launcher, args: &[&str]) -> Output {
    launcher.clone().args(args).run()
}

fn set_mtime(path: &Path, when: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

/// The one environment a launcher's cache holds.
fn the_env(launcher: &Launcher) -> PathBuf {
    let envs = launcher.env_dirs();
    assert_eq!(envs.len(), 1, "{envs:?}");
    launcher.layout_root().join("envs").join(&envs[0])
}

#[track_caller]
fn assert_no_panic(out: &Output) {
    assert!(!out.stderr.contains("panicked"), "{out}");
}

// ---- 2. a cache baked into an image layer (overlayfs: directory renames cross devices) ----

/// An overlayfs whose lower layer holds a filled cache, as a container image built with `bin/kamal install`
/// has: every directory of the cache is in the lower layer, where renaming a directory fails with EXDEV. All of
/// it lives on a tmpfs (an overlay's upper layer cannot be on an overlay, which a container's /tmp may be).
struct ImageLayer {
    merged: PathBuf,
    tmpfs: Tmpfs,
}

impl ImageLayer {
    /// A tmpfs with `lower/` (fill it, then call [`ImageLayer::mount`]).
    fn new() -> Result<ImageLayer, String> {
        let tmpfs = Tmpfs::mount("size=256m,mode=0755")?;
        for dir in ["lower", "upper", "work", "merged"] {
            fs::create_dir(tmpfs.path().join(dir)).unwrap();
        }
        Ok(ImageLayer {
            merged: tmpfs.path().join("merged"),
            tmpfs,
        })
    }

    fn lower(&self) -> PathBuf {
        self.tmpfs.path().join("lower")
    }

    /// Mounts the overlay (a fresh upper layer each time, as a new container from the image).
    fn mount(&self) -> Result<(), String> {
        for dir in ["upper", "work"] {
            let path = self.tmpfs.path().join(dir);
            let _ = fs::remove_dir_all(&path);
            fs::create_dir(&path).unwrap();
        }
        let p = |d: &str| self.tmpfs.path().join(d).display().to_string();
        run_cmd(
            Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o"])
                .arg(format!(
                    "lowerdir={},upperdir={},workdir={}",
                    p("lower"),
                    p("upper"),
                    p("work")
                ))
                .arg(&self.merged),
        )
    }

    fn unmount(&self) {
        unmount(&self.merged);
    }
}

/// The overlay goes before the tmpfs under it (fields are dropped after this).
impl Drop for ImageLayer {
    fn drop(&mut self) {
        self.unmount();
    }
}

/// An image layer whose lower layer holds the fixture closure, installed by `launcher` (whose cache is
/// `lower/cache`), and a launcher using the same cache through the mounted overlay.
fn baked(launcher: &Launcher) -> Option<(ImageLayer, Launcher)> {
    let layer = match ImageLayer::new() {
        Ok(layer) => layer,
        Err(why) => {
            skip_loudly("a cache in an image layer (tmpfs)", &why);
            return None;
        }
    };
    let building = launcher.clone().cache_dir(&layer.lower().join("cache"));
    assert_success(&run(&building, &["install"]));
    assert_success(&run(&building, &["exec", "--", "version"]));
    if let Err(why) = layer.mount() {
        skip_loudly("a cache in an image layer (overlayfs)", &why);
        return None;
    }
    let through = launcher.clone().cache_dir(&layer.merged.join("cache"));
    Some((layer, through))
}

#[test]
fn prune_and_clean_empty_a_cache_baked_into_an_image_layer() {
    let server = serve();
    let app = app_for(&server);
    let Some((layer, launcher)) = baked(&Launcher::new(app.path())) else {
        return;
    };
    assert_eq!(launcher.store_units().len(), 6);

    let out = run(&launcher, &["cache", "prune", "--older-than", "0"]);
    assert_success(&out);
    assert_no_panic(&out);
    assert!(out.stderr.contains("removed 1 environment"), "{out}");
    assert_eq!(launcher.env_dirs(), Vec::<String>::new());
    assert_eq!(launcher.store_units(), Vec::<String>::new());
    assert_eq!(
        entries(&launcher.layout_root().join("tmp")),
        Vec::<String>::new()
    );
    // Whatever was removed in place is gone for good: the next run installs again and works.
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");

    // A new container from the same image: `clean` too.
    layer.unmount();
    layer.mount().unwrap();
    assert_eq!(launcher.env_dirs().len(), 1);
    let out = run(&launcher, &["cache", "clean"]);
    assert_success(&out);
    assert_no_panic(&out);
    assert!(out.stderr.contains("removed 1 environment"), "{out}");
    assert_eq!(launcher.env_dirs(), Vec::<String>::new());
    assert_eq!(launcher.store_units(), Vec::<String>::new());
    for dir in ["rubies", "bytecode", "downloads"] {
        assert_eq!(
            entries(&launcher.layout_root().join(dir)),
            Vec::<String>::new(),
            "{dir}"
        );
    }
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
}

#[test]
fn a_damaged_entry_in_an_image_layer_is_repaired_in_place() {
    let server = serve();
    let app = app_for(&server);
    let Some((_layer, launcher)) = baked(&Launcher::new(app.path())) else {
        return;
    };
    // One environment file and one installed gem's file changed in the container (copied up, then damaged).
    let env = the_env(&launcher);
    fs::write(env.join("manifest"), "").unwrap();
    let unit = launcher
        .store_unit_dirs()
        .into_iter()
        .find(|u| {
            u.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("kamal-")
        })
        .unwrap();
    let gemspec = fs::read_dir(unit.join("specifications"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::write(&gemspec, "damaged").unwrap();

    let out = run(&launcher, &["install"]);
    assert_success(&out);
    assert_no_panic(&out);
    assert!(out.stderr.contains("repairing it"), "{out}");
    assert!(
        kamal_launcher::env::check(&env, kamal_launcher::env::Depth::Full).is_ok(),
        "{out}"
    );
    assert_eq!(
        entries(&launcher.layout_root().join("tmp")),
        Vec::<String>::new()
    );
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert_eq!(out.stdout, "2.7.0\n", "{out}");
    assert!(!out.stderr.contains("damaged"), "{out}");
}

// ---- 9b. a lock file replaced by a directory or a symlink ----

#[test]
fn lock_files_replaced_by_a_directory_or_a_symlink_are_replaced() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    assert_success(&run(&launcher, &["install"]));
    let locks = launcher.layout_root().join("locks");
    let names = entries(&locks);
    let units: Vec<&String> = names.iter().filter(|n| n.starts_with("unit-")).collect();
    assert!(
        names.contains(&"gc.lock".to_string()) && units.len() >= 2,
        "{names:?}"
    );

    // A directory (with something in it), a dangling symlink, a symlink to someone's file: none is followed.
    let elsewhere = tempfile::tempdir().unwrap();
    let planted = elsewhere.path().join("created-through-the-link");
    let victim = elsewhere.path().join("victim");
    fs::write(&victim, "keep me").unwrap();
    fs::remove_file(locks.join("gc.lock")).unwrap();
    fs::create_dir_all(locks.join("gc.lock/inside")).unwrap();
    fs::remove_file(locks.join(units[0])).unwrap();
    symlink(&planted, locks.join(units[0])).unwrap();
    fs::remove_file(locks.join(units[1])).unwrap();
    symlink(&victim, locks.join(units[1])).unwrap();
    // The next run takes them all again: a cold install.
    fs::remove_dir_all(launcher.layout_root().join("envs")).unwrap();
    fs::remove_dir_all(launcher.layout_root().join("store")).unwrap();

    for _ in 0..2 {
        let out = run(&launcher, &["install"]);
        assert_success(&out);
        assert_no_panic(&out);
        for name in ["gc.lock", units[0], units[1]] {
            let meta = fs::symlink_metadata(locks.join(name)).unwrap();
            assert!(
                meta.is_file(),
                "{name} is still not a file: {meta:?}\n{out}"
            );
        }
        assert!(
            !planted.exists(),
            "a lock was created through a planted symlink"
        );
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
    }
    let out = run(&launcher, &["cache", "prune"]);
    assert_success(&out);
}

// ---- 9c. an environment or an installed gem replaced by a dangling symlink ----

#[test]
fn an_environment_or_installed_gem_replaced_by_a_dangling_symlink_is_rebuilt() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    assert_success(&run(&launcher, &["install"]));
    let env = the_env(&launcher);
    let gone = tempfile::tempdir().unwrap();
    fs::write(gone.path().join("file"), "").unwrap();
    let kamal_unit = || {
        launcher
            .store_unit_dirs()
            .into_iter()
            .find(|u| {
                u.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("kamal-")
            })
            .unwrap()
    };
    let replace = |path: &Path, target: PathBuf| {
        fs::remove_dir_all(path).unwrap();
        symlink(target, path).unwrap();
    };

    // Dangling, and through a file ("Not a directory"), on the warm path: the environment, then a gem of it.
    for target in [gone.path().join("nothing"), gone.path().join("file/sub")] {
        for path in [env.clone(), kamal_unit()] {
            replace(&path, target.clone());
            let out = run(&launcher, &["exec", "--", "version"]);
            assert_success(&out);
            assert_eq!(out.stdout, "2.7.0\n", "{out}");
            assert!(out.stderr.contains("repairing it"), "{out}");
            assert!(!out.stderr.contains("os error"), "{out}");
            assert!(fs::symlink_metadata(&path).unwrap().is_dir(), "{out}");
        }
    }

    // `install`: a gem and the environment at once.
    replace(&kamal_unit(), gone.path().join("unit"));
    replace(&env, gone.path().join("env"));
    let out = run(&launcher, &["install"]);
    assert_success(&out);
    assert!(
        out.stderr
            .contains("a symlink where the installed directory belongs"),
        "{out}"
    );
    assert!(
        fs::symlink_metadata(kamal_unit()).unwrap().is_dir(),
        "{out}"
    );
    assert!(
        kamal_launcher::env::check(&env, kamal_launcher::env::Depth::Full).is_ok(),
        "{out}"
    );
    assert!(!gone.path().join("env").exists() && !gone.path().join("unit").exists());
    let out = run(&launcher, &["exec", "--", "version"]);
    assert_success(&out);
    assert!(!out.stderr.contains("damaged"), "{out}");
}

// ---- 9e. inode exhaustion ----

#[test]
fn running_out_of_inodes_is_not_called_a_full_disk() {
    // Plenty of bytes, few inodes: the fixture closure needs a few hundred files.
    let fs = match Tmpfs::mount("size=64m,nr_inodes=120,mode=0755") {
        Ok(fs) => fs,
        Err(why) => return skip_loudly("inode exhaustion on tmpfs", &why),
    };
    let server = serve();
    let app = app_for(&server);
    let cache = fs.path().join("cache");
    let launcher = Launcher::new(app.path()).cache_dir(&cache);
    let out = run(&launcher, &["install"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_no_panic(&out);
    assert!(out.stderr.contains("no space left on device"), "{out}");
    assert!(
        out.stderr.contains(&fs.path().display().to_string()),
        "{out}"
    );
    assert!(out.stderr.contains("run out of inodes"), "{out}");
    assert!(!out.stderr.contains("is full"), "{out}");
    // How much room there still is, in the launcher's words (the filesystem has tens of MiB).
    assert!(out.stderr.contains(" MiB free"), "{out}");
    assert!(out.stderr.contains("cache prune"), "{out}");
    assert!(out.stderr.contains("--cache-dir"), "{out}");
    assert!(free_bytes(fs.path()) > 32 << 20);
}

// ---- 9h. bytecode temporary files left by killed warm runs ----

#[test]
fn bytecode_temporary_files_of_killed_runs_are_swept_by_install_and_prune() {
    let server = serve();
    let app = app_for(&server);
    let launcher = Launcher::new(app.path());
    assert_success(&run(&launcher, &["exec", "--", "version"]));
    let bytecode = launcher.layout_root().join("bytecode");
    let rubies = entries(&bytecode);
    assert_eq!(rubies.len(), 1, "{rubies:?}");
    let dir = bytecode.join(&rubies[0]);
    let iseq = entries(&dir)
        .into_iter()
        .find(|f| f.ends_with(".iseq"))
        .unwrap();
    // What `boot.rb` leaves when killed between creating its temporary file and renaming it.
    let plant = |n: u32, age: Duration| {
        let path = dir.join(format!("{iseq}.{n:016x}.tmp"));
        fs::write(&path, "half an entry").unwrap();
        set_mtime(&path, SystemTime::now() - age);
        path
    };
    let hour = Duration::from_secs(3600);
    let old = plant(1, hour);
    let live = plant(2, Duration::ZERO);
    // The warm path does not look.
    assert_success(&run(&launcher, &["exec", "--", "version"]));
    assert!(old.exists());

    assert_success(&run(&launcher, &["install"]));
    assert!(!old.exists(), "install left {}", old.display());
    assert!(live.exists(), "install removed a live writer's file");

    let old = plant(3, hour);
    let out = run(&launcher, &["cache", "prune"]);
    assert_success(&out);
    assert!(!old.exists(), "prune left {}\n{out}", old.display());
    assert!(live.exists(), "prune removed a live writer's file");
    assert!(dir.join(&iseq).exists(), "prune removed bytecode in use");
}
