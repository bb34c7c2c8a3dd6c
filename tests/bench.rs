//! Benchmarks, not tests: run with `scripts/bench` (release build, hyperfine). Each ratio is measured side
//! by side in one invocation against its baseline. Ignored in the normal suite: timing is not asserted.

mod support;

use std::path::Path;
use std::process::Command;

use support::{App, Launcher, Lock, Server, assert_success, fixtures, require_ruby, which};

/// Runs hyperfine over named commands and returns each one's median seconds.
fn hyperfine(runs: usize, prepare: Option<&str>, commands: &[(&str, String)]) -> Vec<f64> {
    let out_dir = tempfile::tempdir().unwrap();
    let json = out_dir.path().join("result.json");
    let mut cmd = Command::new("hyperfine");
    cmd.args([
        "--style",
        "basic",
        "--warmup",
        "3",
        "--runs",
        &runs.to_string(),
    ])
    .arg("--export-json")
    .arg(&json);
    match prepare {
        // A prepare step needs a shell; hyperfine subtracts the shell's own start-up time.
        Some(p) => cmd.args(["--prepare", p]),
        None => cmd.arg("-N"),
    };
    for (name, command) in commands {
        cmd.args(["-n", name, command]);
    }
    let status = cmd.status().expect("hyperfine (apt-get install hyperfine)");
    assert!(status.success());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["median"].as_f64().unwrap())
        .collect()
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

#[test]
#[ignore = "benchmark: run scripts/bench"]
fn bench_warm_and_cold() {
    require_ruby();
    assert!(which("hyperfine").is_some(), "install hyperfine");
    let fx = fixtures();
    let server = Server::start(&fx.dir);
    let lock = Lock::new(server.url());
    let app = App::new(&lock);
    let launcher = Launcher::new(app.path()).arg("install");
    assert_success(&launcher.run());
    let bin = env!("CARGO_BIN_EXE_kamal-launcher");
    let cache = launcher.cache_path().to_path_buf();

    // Baseline: the same locked gems installed by `gem install` into one GEM_HOME, run directly with ruby.
    let gem_home = tempfile::tempdir().unwrap();
    let names = [
        ("kamal", "2.7.0", "ruby"),
        ("fixture_dep_a", "1.2.0", "ruby"),
        ("fixture_dep_b", "0.3.1", "ruby"),
        ("fixture_ext", "1.0.1", "ruby"),
        ("fixture_native", "1.0.0", "x86_64-linux"),
        ("ostruct", "0.1.0", "ruby"),
    ];
    let files: Vec<_> = names
        .iter()
        .map(|(n, v, p)| fx.gem_path(fx.gem(n, v, p)))
        .collect();
    let st = Command::new("gem")
        .args([
            "install",
            "--local",
            "--ignore-dependencies",
            "--no-document",
            "--install-dir",
        ])
        .arg(gem_home.path())
        .args(&files)
        .status()
        .unwrap();
    assert!(st.success());
    let direct = format!(
        "env GEM_HOME={h} GEM_PATH={h} ruby {h}/bin/kamal version",
        h = sh_quote(gem_home.path())
    );
    let launch = format!(
        "env KAMAL_LAUNCHER_CACHE_DIR={} {} --lockfile {} exec -- version",
        sh_quote(&cache),
        bin,
        sh_quote(&app.lockfile_path())
    );
    let ruby_e0 = "ruby -e 0".to_string();
    let medians = hyperfine(
        40,
        None,
        &[
            ("direct ruby", direct),
            ("kamal-launcher exec", launch),
            ("ruby -e 0", ruby_e0),
        ],
    );
    println!(
        "\nWARM: direct {:.1} ms, launcher {:.1} ms, ruby -e 0 {:.1} ms; launcher/direct = {:.2}; launcher overhead = {:+.1} ms",
        medians[0] * 1e3,
        medians[1] * 1e3,
        medians[2] * 1e3,
        medians[1] / medians[0],
        (medians[1] - medians[0]) * 1e3
    );

    // The launcher's own time, and whether it grows with the cache: exec a stand-in "ruby" that exits at once
    // (it answers the launcher's one-time probe with the real Ruby's answers), with 1 and with 101 environments.
    let fake_dir = tempfile::tempdir().unwrap();
    let fake_ruby = fake_dir.path().join("ruby");
    let probe = std::fs::read_dir(cache.join("v1/rubies"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(
        &fake_ruby,
        format!(
            "#!/bin/sh\n[ \"$1\" = -e ] && cat {}\nexit 0\n",
            sh_quote(&probe)
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &fake_ruby,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let own = format!(
        "env KAMAL_LAUNCHER_CACHE_DIR={} KAMAL_LAUNCHER_RUBY={} {} --lockfile {} exec -- version",
        sh_quote(&cache),
        sh_quote(&fake_ruby),
        bin,
        sh_quote(&app.lockfile_path())
    );
    assert!(
        Command::new("sh")
            .arg("-c")
            .arg(&own)
            .status()
            .unwrap()
            .success()
    );
    // Both sides start through `env`, so only the launcher's own work differs.
    let bare = format!(
        "env KAMAL_LAUNCHER_CACHE_DIR={} {} boot.rb kamal '' version",
        sh_quote(&cache),
        sh_quote(&fake_ruby)
    );
    let small = hyperfine(
        200,
        None,
        &[
            ("fake ruby alone", bare.clone()),
            ("launcher → fake ruby", own.clone()),
        ],
    );
    let envs = cache.join("v1/envs");
    let real_env = std::fs::read_dir(&envs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for i in 0..100 {
        let copy = envs.join(format!("{i:024x}"));
        std::fs::create_dir_all(&copy).unwrap();
        for f in ["boot.rb", "last-used"] {
            std::fs::copy(real_env.join(f), copy.join(f)).unwrap();
        }
    }
    let large = hyperfine(
        200,
        None,
        &[("fake ruby alone", bare), ("launcher → fake ruby", own)],
    );
    println!(
        "\nOWN TIME: launcher before exec {:.2} ms with 1 environment, {:.2} ms with 101 (fake ruby alone {:.2} ms)",
        (small[1] - small[0]) * 1e3,
        (large[1] - large[0]) * 1e3,
        small[0] * 1e3
    );

    // Cold: empty cache each run, over loopback; baseline `gem install` of the same closure from the server.
    let cold_cache = tempfile::tempdir().unwrap();
    let cold_home = tempfile::tempdir().unwrap();
    let cold = format!(
        "env KAMAL_LAUNCHER_CACHE_DIR={c}/c {bin} --lockfile {l} install -q",
        c = sh_quote(cold_cache.path()),
        l = sh_quote(&app.lockfile_path())
    );
    // `gem install` of exactly the locked .gem files (no resolution, no network: its cheapest possible form).
    let gem_install = format!(
        "gem install --local --ignore-dependencies --no-document --install-dir {}/g {}",
        sh_quote(cold_home.path()),
        files
            .iter()
            .map(|f| sh_quote(f))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let prepare = format!(
        "rm -rf {}/c {}/g",
        sh_quote(cold_cache.path()),
        sh_quote(cold_home.path())
    );
    // One run outside hyperfine, so that a failing baseline shows its own error.
    let probe = Command::new("sh")
        .arg("-c")
        .arg(format!("{prepare} && {gem_install}"))
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "gem install baseline failed: {}{}",
        String::from_utf8_lossy(&probe.stdout),
        String::from_utf8_lossy(&probe.stderr)
    );
    let medians = hyperfine(
        5,
        Some(&prepare),
        &[
            ("launcher cold install", cold),
            ("gem install", gem_install),
        ],
    );
    println!(
        "\nCOLD: launcher install {:.2} s, gem install {:.2} s; ratio = {:.2}",
        medians[0],
        medians[1],
        medians[0] / medians[1]
    );
}
