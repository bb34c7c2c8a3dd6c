//! The end-to-end scenarios the second tier runs on another Ruby: `scripts/tier-trixie` runs these, with others
//! named there, inside a Debian trixie root (Ruby 3.3, RubyGems 3.6, Bundler 2.5, platform `x86_64-linux-gnu`).
//! They run in the first tier too, on whatever Ruby this machine has: nothing here assumes a Ruby version.

use crate::pinned_launcher::{
    App, Bundler, host_gem_path, lockfile, own_version, run, system_path, world,
};
use crate::support::{self, Launcher, Server, assert_success, clean_command, ruby_prints};
use support::real::{REAL_KAMAL_VERSION, real_kamal};

/// The tier is what it says it is: a trixie run on the host's Ruby would pass and prove nothing.
#[test]
fn this_machine_runs_the_tier_it_names() {
    let facts = ruby_prints("print RUBY_VERSION, ' ', Gem::VERSION, ' ', Gem::Platform.local");
    let facts: Vec<&str> = facts.split(' ').collect();
    let bundler = clean_command("bundle").arg("-v").output().unwrap();
    let bundler = String::from_utf8_lossy(&bundler.stdout).trim().to_string();
    match std::env::var("KAMAL_LAUNCHER_TEST_TIER").as_deref() {
        Ok("trixie") => {
            assert!(facts[0].starts_with("3.3."), "Ruby {}", facts[0]);
            assert!(facts[1].starts_with("3.6."), "RubyGems {}", facts[1]);
            assert!(
                bundler.starts_with("Bundler version 2.5."),
                "bundle -v: {bundler}"
            );
            assert!(
                facts[2].ends_with("-linux-gnu"),
                "Debian's Ruby 3.3 says {}",
                facts[2]
            );
        }
        Ok(other) => panic!("KAMAL_LAUNCHER_TEST_TIER={other}: no such tier (trixie, or unset)"),
        // The first tier: any Ruby the launcher supports.
        Err(_) => {
            let minor: Vec<u32> = facts[0]
                .split('.')
                .take(2)
                .map(|n| n.parse().unwrap())
                .collect();
            assert!(minor >= vec![3, 1], "Ruby {} is below 3.1", facts[0]);
            assert!(bundler.starts_with("Bundler version "), "{bundler}");
        }
    }
}

/// The real kamal 2.12.0 closure (native extensions built against this Ruby's headers), locked by this machine's
/// Bundler: a cold install from an empty cache, then a warm start that needs no network.
#[test]
fn the_real_kamal_installs_cold_then_runs_warm() {
    let real = real_kamal();
    let launcher = Launcher::new(real.app.path());
    let cold = launcher.clone().args(["exec", "--", "version"]).run();
    assert_success(&cold);
    assert_eq!(cold.stdout, format!("{REAL_KAMAL_VERSION}\n"), "{cold}");

    // The two native extensions of the closure load into this Ruby.
    for gem in ["ed25519", "bcrypt_pbkdf"] {
        let built = support::built_extension(&launcher, gem);
        ruby_prints(&format!("require {:?}", built.to_str().unwrap()));
    }

    for round in ["warm", "warm again (bytecode cached)"] {
        let warm = launcher
            .clone()
            .args(["--offline", "exec", "--", "version"])
            .run();
        assert_success(&warm);
        assert_eq!(
            warm.stdout,
            format!("{REAL_KAMAL_VERSION}\n"),
            "{round}: {warm}"
        );
        assert_eq!(warm.stderr, "", "{round}: a warm start says nothing");
    }
}

/// `scripts/package-gems` names the host gem after this Ruby's platform, this machine's Bundler (2.3 here, 2.5 in
/// the trixie tier) and Bundler 2.6.9 lock that variant, and the shim fetches exactly that file, once.
#[test]
fn bundler_locks_this_machines_launcher_gem_and_the_shim_fetches_exactly_it() {
    let own = own_version();
    let platform = ruby_prints("print Gem::Platform.local");
    assert_eq!(
        world().host_gem,
        format!("kamal-launcher-{own}-{platform}.gem"),
        "scripts/package-gems must name the gem after Gem::Platform.local"
    );
    for bundler in [Bundler::System, Bundler::V269] {
        let lock = lockfile(bundler, Some(&own));
        let locked: Vec<&str> = lock
            .lines()
            .filter_map(|l| l.strip_prefix("    kamal-launcher ("))
            .filter_map(|l| l.strip_suffix(')'))
            .collect();
        assert!(
            locked.contains(&format!("{own}-{platform}").as_str()),
            "{bundler:?} locked {locked:?}, not this machine's {own}-{platform}:\n{lock}"
        );

        let app = App::new(&lock);
        let server = Server::start(&world().root);
        let mut cmd = app.shim(&["dash"], &system_path(), &server);
        cmd.arg("version");
        let out = run(cmd);
        assert_success(&out);
        assert_eq!(out.stdout, "2.7.0\n", "{bundler:?}: {out}");
        let launcher_gems: Vec<String> = server
            .requests()
            .into_iter()
            .map(|r| r.path)
            .filter(|p| p.starts_with("/gems/kamal-launcher"))
            .collect();
        assert_eq!(launcher_gems, [host_gem_path()], "{bundler:?}");
    }
}
