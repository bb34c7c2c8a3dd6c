//! Durability and repair (issue 18, points 1 and 3): what marks something done reaches the disk before the rename
//! that publishes it, and an environment or installed gem that is not what was installed (emptied, flipped,
//! removed, planted) is found by `install` and rebuilt, and by the warm path for the environment's own files:
//! never "already installed", never an exit 0 having run nothing.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};

use support::power::Disk;
use support::{App, Launcher, Lock, Output, Server, assert_success, entries, fixtures};

fn serve() -> Server {
    Server::start(&fixtures().dir)
}

fn installed(server: &Server) -> (App, Launcher) {
    let app = App::new(&Lock::new(server.url()));
    let launcher = Launcher::new(app.path());
    assert_success(&launcher.clone().arg("install").run());
    (app, launcher)
}

/// The fixture kamal's version, which its `version` command prints.
fn kamal_version() -> &'static str {
    support::closure()
        .into_iter()
        .find(|(name, ..)| *name == "kamal")
        .map(|(_, version, _)| version)
        .unwrap()
}

fn version(launcher: &Launcher) -> Output {
    launcher.clone().args(["exec", "--", "version"]).run()
}

/// The one environment of a cache.
fn env_dir(launcher: &Launcher) -> PathBuf {
    let envs = launcher.env_dirs();
    assert_eq!(envs.len(), 1, "one environment expected: {envs:?}");
    launcher.layout_root().join("envs").join(&envs[0])
}

/// A file of the installed gem `name` (its gemspec, or a path under its gem directory).
fn unit_file(launcher: &Launcher, name: &str, what: &str) -> PathBuf {
    let unit = launcher
        .store_unit_dirs()
        .into_iter()
        .find(|d| {
            d.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{name}-")))
        })
        .unwrap_or_else(|| panic!("no installed {name}"));
    let spec_dir = unit.join("specifications");
    let spec = spec_dir.join(&entries(&spec_dir)[0]);
    if what == "gemspec" {
        return spec;
    }
    let gems = unit.join("gems");
    gems.join(&entries(&gems)[0]).join(what)
}

type Fault = fn(&Path);

/// The ways a file goes bad on disk: a crash before its data was written, a flipped byte, a lost file.
const FAULTS: &[(&str, Fault)] = &[
    ("emptied", |p| fs::write(p, "").unwrap()),
    ("flipped", |p| {
        let mut bytes = fs::read(p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x20;
        fs::write(p, bytes).unwrap();
    }),
    ("removed", |p| fs::remove_file(p).unwrap()),
];

#[test]
fn install_finds_and_rebuilds_every_damaged_file_of_an_environment_and_its_gems() {
    let server = serve();
    let (_app, launcher) = installed(&server);
    let targets: Vec<(&str, PathBuf)> = vec![
        ("manifest", env_dir(&launcher).join("manifest")),
        ("boot.rb", env_dir(&launcher).join("boot.rb")),
        ("kamal's gemspec", unit_file(&launcher, "kamal", "gemspec")),
        (
            "kamal's executable",
            unit_file(&launcher, "kamal", "exe/kamal"),
        ),
        (
            "fixture_ext's gemspec",
            unit_file(&launcher, "fixture_ext", "gemspec"),
        ),
    ];
    for (what, path) in &targets {
        for (fault_name, fault) in FAULTS {
            let case = format!("{what} {fault_name}");
            let before = fs::read(path).unwrap();
            fault(path);
            let out = launcher.clone().arg("install").run();
            assert_success(&out);
            assert!(
                !out.stderr.contains("already installed"),
                "{case}: install took a damaged install for done:\n{}",
                out.stderr
            );
            assert!(
                out.stderr.contains("damaged") && out.stderr.contains("repairing"),
                "{case}: install did not say what it repairs:\n{}",
                out.stderr
            );
            assert_eq!(fs::read(path).unwrap(), before, "{case}: not restored");
            let again = launcher.clone().arg("install").run();
            assert!(
                again.stderr.contains("already installed"),
                "{case}: {}",
                again.stderr
            );
            let out = version(&launcher);
            assert_success(&out);
            assert_eq!(out.stdout.trim(), kamal_version(), "{case}");
        }
    }
    // Downloads were reused: repairs install again from the verified cache, not the network.
    let gem_requests = server
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/gems/"))
        .count();
    assert_eq!(
        gem_requests,
        support::closure().len(),
        "repairs downloaded again"
    );
}

#[test]
fn a_planted_file_in_an_installed_gem_is_found_and_removed_by_install() {
    let server = serve();
    let (_app, launcher) = installed(&server);
    let kamal_exe = unit_file(&launcher, "kamal", "exe/kamal");
    let planted = kamal_exe.with_file_name("planted.rb");
    fs::write(&planted, "puts 'planted'\n").unwrap();
    let out = launcher.clone().arg("install").run();
    assert_success(&out);
    assert!(out.stderr.contains("planted.rb"), "{}", out.stderr);
    assert!(!planted.exists(), "the planted file is still installed");
}

#[test]
fn the_warm_path_never_runs_nothing_from_an_empty_manifest_or_boot_rb() {
    let server = serve();
    let (_app, launcher) = installed(&server);
    for name in ["manifest", "boot.rb"] {
        for (fault_name, fault) in FAULTS {
            let path = env_dir(&launcher).join(name);
            fault(&path);
            let out = version(&launcher);
            assert_success(&out);
            assert_eq!(
                out.stdout.trim(),
                kamal_version(),
                "{name} {fault_name}: kamal did not run\n{}",
                out.stderr
            );
            assert!(
                out.stderr.contains(name) && out.stderr.contains("repairing"),
                "{name} {fault_name}: the repair was silent:\n{}",
                out.stderr
            );
            // Repaired for good: the next run is warm and quiet.
            let out = version(&launcher);
            assert_success(&out);
            assert_eq!(out.stderr.trim(), "", "{name} {fault_name}");
        }
    }
}

// ---- a power loss right after a successful run ----

#[test]
fn a_power_loss_right_after_a_successful_install_leaves_it_installed() {
    let disk = match Disk::new() {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!(
                "\n\n==== SKIPPED: power loss on ext4 ====\n{why}\nMounting a loop device needs root.\n\n"
            );
            return;
        }
    };
    let server = serve();
    let app = App::new(&Lock::new(server.url()));
    let cache = disk.cache();
    let launcher = Launcher::new(app.path()).cache_dir(&cache);
    assert_success(&launcher.clone().arg("install").run());

    let after = disk.power_loss();
    drop(server);
    // Offline, from what survived: a run that said "installed" left it installed, durable.
    let survivor = Launcher::new(app.path()).cache_dir(&after.cache());
    let out = version(&survivor);
    assert_success(&out);
    assert_eq!(out.stdout.trim(), kamal_version(), "{}", out.stderr);
    assert!(
        !out.stderr.contains("damaged"),
        "the install did not survive the power loss:\n{}",
        out.stderr
    );
    let out = survivor.clone().args(["--offline", "install"]).run();
    assert_success(&out);
    assert!(out.stderr.contains("already installed"), "{}", out.stderr);
}

#[test]
fn a_damaged_ruby_probe_memo_is_probed_again_not_believed() {
    let server = serve();
    let (_app, launcher) = installed(&server);
    let rubies = launcher.layout_root().join("rubies");
    let memos = entries(&rubies);
    assert_eq!(memos.len(), 1, "{memos:?}");
    let memo = rubies.join(&memos[0]);
    let text = fs::read_to_string(&memo).unwrap();
    // One flipped byte that still reads as a memo: another platform, so another closure and environment.
    let platform = text.lines().find(|l| l.starts_with("platform=")).unwrap();
    let flipped = format!("{}{}", &platform[..platform.len() - 1], "q");
    fs::write(&memo, text.replace(platform, &flipped)).unwrap();
    let out = version(&launcher);
    assert_success(&out);
    assert_eq!(out.stdout.trim(), kamal_version());
    assert_eq!(out.stderr.trim(), "", "the damaged memo was believed");
    assert_eq!(
        fs::read_to_string(&memo).unwrap(),
        text,
        "the memo was not rewritten"
    );
    assert_eq!(
        launcher.env_dirs().len(),
        1,
        "another environment was installed"
    );
}

/// Issue 21: ed25519's native extension emptied in the store. net-ssh rescues the LoadError, so kamal would
/// run on with ed25519 keys silently unusable; `install` verifies every file of the environment's gems, says
/// what is damaged and builds it again, after which the extension loads.
#[test]
fn an_emptied_native_extension_is_found_by_install_and_built_again() {
    let real = support::real::real_kamal();
    let launcher = Launcher::new(real.app.path());
    assert_success(&launcher.clone().args(["exec", "--", "version"]).run());
    let so = support::built_extension(&launcher, "ed25519");
    let require = |path: &Path| {
        support::clean_command("ruby")
            .args(["-e", &format!("require {:?}", path.to_str().unwrap())])
            .output()
            .unwrap()
    };
    assert!(require(&so).status.success());
    let good = fs::read(&so).unwrap();
    fs::write(&so, b"").unwrap();
    // The fault bites: Ruby cannot load what is left.
    assert!(!require(&so).status.success());

    let out = launcher.clone().arg("install").run();
    assert_success(&out);
    assert!(
        out.stderr.contains("damaged")
            && out.stderr.contains("ed25519")
            && out.stderr.contains("repairing"),
        "install did not say it repairs ed25519:\n{out}"
    );
    let so = support::built_extension(&launcher, "ed25519");
    assert!(!fs::read(&so).unwrap().is_empty() && !good.is_empty());
    assert!(require(&so).status.success(), "{out}");
    let again = launcher.clone().arg("install").run();
    assert!(again.stderr.contains("already installed"), "{again}");
}

/// Issue 21: a Ruby file or a gemspec in the store that no longer parses (a flipped byte, a file cut short) is
/// named as a damaged file in the launcher's cache, with the command that repairs it, instead of a raw Ruby
/// backtrace that never mentions the cache; `install` then repairs it.
#[test]
fn a_damaged_ruby_file_or_gemspec_is_named_as_cache_damage_with_the_fix() {
    let server = serve();
    for what in ["exe/kamal", "gemspec"] {
        let (_app, launcher) = installed(&server);
        let path = unit_file(&launcher, "kamal", what);
        let good = fs::read(&path).unwrap();
        fs::write(&path, "def broken(\n").unwrap();
        let out = version(&launcher);
        assert!(!out.status.success(), "{what}: {out}");
        assert!(
            out.stderr.contains(&path.display().to_string())
                && out.stderr.contains("kamal-launcher's cache")
                && out.stderr.contains("kamal-launcher install"),
            "{what}: the damage is not named as such:\n{out}"
        );
        assert!(
            !out.stderr.contains("\tfrom "),
            "{what}: a raw backtrace:\n{out}"
        );
        let repaired = launcher.clone().arg("install").run();
        assert_success(&repaired);
        assert_eq!(fs::read(&path).unwrap(), good, "{what}: {repaired}");
        let out = version(&launcher);
        assert_success(&out);
        assert_eq!(out.stdout.trim(), kamal_version());
    }
}
