//! Benchmarks, not tests: run with `scripts/bench` (release build, hyperfine). Each ratio is measured side
//! by side in one invocation against its baseline. Ignored in the normal suite: timing is not asserted.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{App, Launcher, Lock, Server, assert_success, fixtures, require_ruby, which};

/// Runs hyperfine over named commands and returns each one's median seconds.
fn hyperfine(runs: usize, prepare: Option<&str>, commands: &[(&str, String)]) -> Vec<f64> {
    let each: Vec<(&str, Option<&str>, String)> = commands
        .iter()
        .map(|(name, command)| (*name, prepare, command.clone()))
        .collect();
    hyperfine_each(runs, &each)
}

/// Runs hyperfine over named commands, each with its own prepare step, and returns each one's median seconds.
fn hyperfine_each(runs: usize, commands: &[(&str, Option<&str>, String)]) -> Vec<f64> {
    // Each command once, outside hyperfine, so that a failing one shows its own output.
    for (name, prepare, command) in commands {
        let script = match prepare {
            Some(p) => format!("{p} && {command}"),
            None => command.clone(),
        };
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert!(
            out.status.success(),
            "{name} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
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
    if commands.iter().all(|(_, prepare, _)| prepare.is_none()) {
        cmd.arg("-N");
    } else {
        // A prepare step needs a shell; hyperfine subtracts the shell's own start-up time. One per command.
        for (_, prepare, _) in commands {
            cmd.args(["--prepare", prepare.unwrap_or("true")]);
        }
    }
    for (name, _, command) in commands {
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
    let (_fake_dir, fake_ruby) = stand_in_ruby(&cache);
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
    let envs = cache.join("v2/envs");
    let real_env = std::fs::read_dir(&envs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for i in 0..100 {
        let copy = envs.join(format!("{i:024x}"));
        std::fs::create_dir_all(&copy).unwrap();
        for f in ["boot.rb", "manifest", "last-used"] {
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

/// A stand-in "ruby" that exits at once, answering the launcher's one-time probe with the real Ruby's memo from
/// `cache`: what the launcher execs is then nearly free, leaving its own work to measure.
fn stand_in_ruby(cache: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ruby = dir.path().join("ruby");
    let probe = std::fs::read_dir(cache.join("v2/rubies"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(
        &ruby,
        format!(
            "#!/bin/sh\n[ \"$1\" = -e ] && cat {}\nexit 0\n",
            sh_quote(&probe)
        ),
    )
    .unwrap();
    std::fs::set_permissions(&ruby, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (dir, ruby)
}

/// Median wall time of `f` over `n` runs.
fn median_of(n: usize, mut f: impl FnMut()) -> std::time::Duration {
    let mut times: Vec<_> = (0..n)
        .map(|_| {
            let start = std::time::Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[n / 2]
}

/// A lockfile of `specs` gems in chains of ten, the root depending on every chain head.
fn synthetic_lockfile(specs: usize) -> String {
    let mut text =
        String::from("GEM\n  remote: https://rubygems.org/\n  specs:\n    kamal (2.7.0)\n");
    for head in (0..specs).step_by(10) {
        text.push_str(&format!("      gem_{head:05} (~> 1.0)\n"));
    }
    for i in 0..specs {
        text.push_str(&format!("    gem_{i:05} (1.{}.{})\n", i % 7, i % 3));
        if i % 10 != 9 && i + 1 < specs {
            text.push_str(&format!("      gem_{:05} (>= 1.0, < 2)\n", i + 1));
        }
    }
    text.push_str("\nPLATFORMS\n  ruby\n  x86_64-linux\n\nDEPENDENCIES\n  kamal\n\nCHECKSUMS\n");
    for i in 0..specs {
        text.push_str(&format!(
            "  gem_{i:05} (1.{}.{}) sha256={:064x}\n",
            i % 7,
            i % 3,
            i
        ));
    }
    text.push_str("\nBUNDLED WITH\n   2.5.22\n");
    text
}

#[test]
#[ignore = "benchmark: run scripts/bench"]
fn bench_fast_start() {
    require_ruby();
    assert!(which("hyperfine").is_some(), "install hyperfine");
    let bin = env!("CARGO_BIN_EXE_kamal-launcher");
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("kl");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/kamal_like.rb");
    let st = Command::new("ruby")
        .arg(&script)
        .arg(&root)
        .arg("https://rubygems.org/")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let server = Server::start(&root);
    let mirror = server.url();
    let q = sh_quote;
    let cache = work.path().join("cache");
    let env = format!(
        "env BUNDLE_MIRROR__ALL={mirror} KAMAL_LAUNCHER_CACHE_DIR={}",
        q(&cache)
    );
    let launch = |what: &str| {
        format!(
            "{env} {bin} --gem kl_kamal --lockfile {} {what}",
            q(&root.join("Gemfile.lock"))
        )
    };

    // 3. Cold install: the launcher vs `gem install` of the same 23 files vs the bundler/inline binstub.
    let files: Vec<String> = std::fs::read_dir(root.join("gems"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().contains("kl_dep_21-1.22.1"))
        .map(|p| q(&p))
        .collect();
    let gem_home = work.path().join("gemhome");
    let inline_home = work.path().join("inline");
    let inline = work.path().join("inline_kamal.rb");
    std::fs::write(
        &inline,
        format!(
            "require \"bundler/inline\"\ngemfile(true, quiet: true) do\n  source \"{mirror}\"\n  gem \"kl_kamal\", \"2.7.0\"\nend\nload Gem.bin_path(\"kl_kamal\", \"kl_kamal\")\n"
        ),
    )
    .unwrap();
    let inline_cmd = format!(
        "env GEM_HOME={h} GEM_PATH={h} BUNDLE_USER_HOME={h}/.bundle ruby {}",
        q(&inline),
        h = q(&inline_home)
    );
    let cold = hyperfine(
        3,
        Some(&format!(
            "rm -rf {} {} {}",
            q(&cache),
            q(&gem_home),
            q(&inline_home)
        )),
        &[
            ("launcher install (cold)", launch("install -q")),
            (
                "gem install (cold)",
                format!(
                    "gem install --local --ignore-dependencies --no-document --install-dir {} {}",
                    q(&gem_home),
                    files.join(" ")
                ),
            ),
            ("bundler/inline binstub (cold)", inline_cmd.clone()),
        ],
    );

    // Warm everything up once, then 1. warm start against the same installed gems run directly, and the
    // bundler/inline binstub.
    for cmd in [
        launch("install -q"),
        launch("exec -- x"),
        inline_cmd.clone(),
    ] {
        assert!(
            Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .status()
                .unwrap()
                .success(),
            "{cmd}"
        );
    }
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gem install --local --ignore-dependencies --no-document --install-dir {} {} >/dev/null",
            q(&gem_home),
            files.join(" ")
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let direct = format!(
        "env GEM_HOME={h} GEM_PATH={h} ruby {h}/bin/kl_kamal",
        h = q(&gem_home)
    );
    let warm = hyperfine(
        20,
        None,
        &[
            ("direct ruby", direct),
            ("kamal-launcher exec", launch("exec -- x")),
            ("bundler/inline binstub (warm)", inline_cmd),
            (
                "launcher without bytecode cache",
                format!("env KAMAL_LAUNCHER_NO_BYTECODE=1 {}", launch("exec -- x")),
            ),
        ],
    );

    // 4. Reuse: a second app whose closure differs in one pure-Ruby gem.
    let reuse = format!(
        "{env} {bin} --gem kl_kamal --lockfile {} install -q",
        q(&root.join("reuse/Gemfile.lock"))
    );
    let start = std::time::Instant::now();
    assert!(
        Command::new("sh")
            .arg("-c")
            .arg(&reuse)
            .status()
            .unwrap()
            .success()
    );
    let reuse_time = start.elapsed();

    // 6. Peak RSS before exec: exec a stand-in "ruby" (sh) whose own RSS is smaller than the launcher's.
    let (_fake_dir, fake) = stand_in_ruby(&cache);
    let rss = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "/usr/bin/time -f %M {env} KAMAL_LAUNCHER_RUBY={} {bin} --gem kl_kamal --lockfile {} exec -- x 2>&1 >/dev/null | tail -1",
            q(&fake),
            q(&root.join("Gemfile.lock"))
        ))
        .output()
        .unwrap();
    let rss = String::from_utf8_lossy(&rss.stdout).trim().to_string();
    let size = std::fs::metadata(bin).unwrap().len();

    // What the machine's CPUs deliver together: no parallel install can beat a serial one by more than this.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let burn = "ruby -e 'x = 0; 20_000_000.times { x += 1 }'";
    let parallel = (0..cpus)
        .map(|_| format!("{burn} &"))
        .collect::<Vec<_>>()
        .join(" ")
        + " wait";
    let capacity = hyperfine(
        3,
        None,
        &[
            ("one CPU-bound job", burn.to_string()),
            ("one per CPU at once", parallel),
        ],
    );
    let speedup = cpus as f64 * capacity[0] / capacity[1];

    println!("\nFAST START (kamal-like closure: 23 gems, ~600 files, 3 C extensions)");
    println!(
        "0. machine: {cpus} CPUs run {cpus} CPU-bound jobs {speedup:.2}x as fast as one after another, so a parallel \
         install can take at best {:.2}x a serial one",
        1.0 / speedup
    );
    println!(
        "1. warm: launcher {:.0} ms, direct ruby {:.0} ms, bundler/inline {:.0} ms: {:.2}x direct, {:.2}x bundler/inline (without bytecode cache: {:.0} ms)",
        warm[1] * 1e3,
        warm[0] * 1e3,
        warm[2] * 1e3,
        warm[1] / warm[0],
        warm[1] / warm[2],
        warm[3] * 1e3
    );
    println!(
        "3. cold: launcher {:.2} s, gem install {:.2} s, bundler/inline {:.2} s: {:.2}x gem install, {:.2}x bundler/inline",
        cold[0],
        cold[1],
        cold[2],
        cold[0] / cold[1],
        cold[0] / cold[2]
    );
    println!(
        "4. reuse: second app differing in one pure-Ruby gem installed in {:.2} s",
        reuse_time.as_secs_f64()
    );
    println!(
        "6. peak RSS before exec: {rss} KiB; binary size {:.2} MiB",
        size as f64 / 1048576.0
    );
}

#[test]
#[ignore = "benchmark: run scripts/bench"]
fn bench_parse_2000_specs() {
    use kamal_launcher::{closure, lockfile::Lockfile, platform::Platform};
    // 5. Parsing and selecting the closure of a 2,000-spec lockfile, in process (the launcher's own code path).
    let text = synthetic_lockfile(2000);
    let local = Platform::parse("x86_64-linux");
    let lock = Lockfile::parse(&text).unwrap();
    // This VM's speed changes by up to 1.7x from one moment to the next (its host is shared), so many short
    // rounds are timed and both the best round and the typical one are shown.
    let mut rounds: Vec<(std::time::Duration, std::time::Duration)> = (0..21)
        .map(|_| {
            let parse = median_of(31, || {
                std::hint::black_box(Lockfile::parse(&text).unwrap());
            });
            let select = median_of(31, || {
                let closure = closure::select(&lock, "kamal", &local, false).unwrap();
                assert_eq!(closure.gems.len(), 2001);
            });
            (parse, select)
        })
        .collect();
    rounds.sort_by_key(|(parse, select)| *parse + *select);
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let show = |what: &str, (parse, select): (std::time::Duration, std::time::Duration)| {
        println!(
            "   {what}: parse {:.3} ms + select closure {:.3} ms = {:.3} ms",
            ms(parse),
            ms(select),
            ms(parse + select)
        );
    };
    println!(
        "\n5. 2,000-spec lockfile ({} KiB), 21 rounds of 31 runs each (medians per round):",
        text.len() / 1024
    );
    show("best round  ", rounds[0]);
    show("median round", rounds[rounds.len() / 2]);
    show("worst round ", rounds[rounds.len() - 1]);
}

/// Issue 12's figures: the shim's warm overhead over calling the launcher directly, the handover's cost when a
/// launcher of another version starts, and a first run from an empty cache to the launcher's exec (loopback).
#[test]
#[ignore = "benchmark: run scripts/bench"]
fn bench_pinned_launcher() {
    require_ruby();
    assert!(which("hyperfine").is_some(), "install hyperfine");
    let bin = Path::new(env!("CARGO_BIN_EXE_kamal-launcher"));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("server");
    std::fs::create_dir_all(root.join("gems")).unwrap();
    let own = env!("CARGO_PKG_VERSION").replace('-', ".");
    // This build as the pinned version, and the same bytes as 9.9.8: a launcher of "another version".
    let mut gems = Vec::new();
    for version in [own.as_str(), "9.9.8"] {
        let out = Command::new("sh")
            .arg(repo.join("scripts/package-gems"))
            .arg("--binary")
            .arg(bin)
            .args(["--version", version])
            .arg(root.join("gems"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let gem = PathBuf::from(stdout.lines().next().unwrap());
        gems.push((version.to_string(), gem));
    }
    let st = Command::new("ruby")
        .arg(repo.join("tests/fixtures/build_index.rb"))
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success());
    let server = Server::start(&root);
    let app_for = |version: &str, gem: &Path| {
        let name = gem.file_stem().unwrap().to_string_lossy().into_owned();
        let platform = name[format!("kamal-launcher-{version}-").len()..].to_string();
        let digest = support::sha256_hex(&std::fs::read(gem).unwrap());
        let lock = Lock::new(server.url()).add_spec(support::LockedSpec {
            name: "kamal-launcher".into(),
            version: version.into(),
            platform,
            deps: Vec::new(),
            sha256: digest,
            served: true,
        });
        let app = App::new(&lock);
        std::fs::create_dir_all(app.path().join("bin")).unwrap();
        std::fs::write(
            app.path().join("bin/kamal"),
            kamal_launcher::init::shim("Gemfile.lock"),
        )
        .unwrap();
        app
    };
    let pinned = app_for(&own, &gems[0].1);
    let other = app_for("9.9.8", &gems[1].1);
    let q = sh_quote;
    let cache = work.path().join("cache");
    let env = format!("env KAMAL_LAUNCHER_CACHE_DIR={}", q(&cache));
    let shim = |app: &App| {
        format!(
            "{env} KAMAL_LAUNCHER_CLI=1 sh {}",
            q(&app.path().join("bin/kamal"))
        )
    };

    let first = hyperfine(
        10,
        Some(&format!("rm -rf {}", q(&cache))),
        &[(
            "first run: fetch, verify, cache, exec",
            format!("{} --version", shim(&pinned)),
        )],
    );
    let warm = hyperfine(
        200,
        None,
        &[
            (
                "launcher directly",
                format!(
                    "{env} KAMAL_LAUNCHER_CLI=1 {} --lockfile {} --version",
                    q(bin),
                    q(&pinned.lockfile_path())
                ),
            ),
            (
                "through bin/kamal (warm)",
                format!("{} --version", shim(&pinned)),
            ),
        ],
    );
    // `cache key` parses the lockfile and needs no Ruby: what a handover adds is one read and parse, and an exec.
    let other_lock = q(&other.lockfile_path());
    let cached = kamal_launcher::cache::Cache::new(cache.clone()).launcher("9.9.8");
    assert!(
        Command::new(bin)
            .args(["--lockfile"])
            .arg(other.lockfile_path())
            .args(["cache", "key"])
            .env("KAMAL_LAUNCHER_CACHE_DIR", &cache)
            .status()
            .unwrap()
            .success()
    );
    assert!(cached.is_file());
    let handover = hyperfine(
        200,
        None,
        &[
            (
                "the pinned launcher directly",
                format!(
                    "{env} KAMAL_LAUNCHER_HANDED_OVER_FROM=bench {} -q --lockfile {other_lock} cache key",
                    q(&cached)
                ),
            ),
            (
                "another version, handing over",
                format!("{env} {} -q --lockfile {other_lock} cache key", q(bin)),
            ),
        ],
    );
    println!(
        "first run to the launcher's exec: {:.1} ms; shim warm overhead: {:.2} ms ({:.2} -> {:.2} ms); \
         handover: {:.2} ms ({:.2} -> {:.2} ms)",
        first[0] * 1e3,
        (warm[1] - warm[0]) * 1e3,
        warm[0] * 1e3,
        warm[1] * 1e3,
        (handover[1] - handover[0]) * 1e3,
        handover[0] * 1e3,
        handover[1] * 1e3
    );
}

/// Issue 13: the warm path's own time with Ruby behind a version manager's shim (the selection inputs are read:
/// variables, version files from the working directory up, install directories) against a plain `ruby`. Both
/// stand-ins are the same tiny compiled program, so only the launcher's own work differs.
#[test]
#[ignore = "benchmark: run scripts/bench"]
fn bench_ruby_behind_a_shim() {
    require_ruby();
    assert!(which("hyperfine").is_some(), "install hyperfine");
    let bin = env!("CARGO_BIN_EXE_kamal-launcher");
    let fx = fixtures();
    let server = Server::start(&fx.dir);
    let app = App::new(&Lock::new(server.url()));
    let work = tempfile::tempdir().unwrap();
    let launcher = Launcher::new(app.path()).arg("install");
    assert_success(&launcher.run());
    let cache = launcher.cache_path().to_path_buf();
    let probe = std::fs::read_to_string(
        std::fs::read_dir(cache.join("v2/rubies"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap();
    // `ruby -e PROBE` prints what the real Ruby reported; anything else (boot.rb) exits at once.
    let source = work.path().join("ruby.c");
    std::fs::write(
        &source,
        format!(
            "#include <stdio.h>\n#include <string.h>\nint main(int c, char **v) {{ if (c > 1 && !strcmp(v[1], \"-e\")) fputs({:?}, stdout); return 0; }}\n",
            probe
        ),
    )
    .unwrap();
    let plain = work.path().join("plain/ruby");
    let home = work.path().join("home");
    let shim = home.join(".rbenv/shims/ruby");
    for dest in [&plain, &shim] {
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        assert!(
            Command::new("cc")
                .arg("-O2")
                .arg("-o")
                .arg(dest)
                .arg(&source)
                .status()
                .unwrap()
                .success()
        );
    }
    std::fs::create_dir_all(home.join(".rbenv/versions/3.1.2")).unwrap();
    std::fs::write(home.join(".rbenv/version"), "3.1.2\n").unwrap();
    std::fs::write(app.path().join(".ruby-version"), "3.1.2\n").unwrap();
    let q = sh_quote;
    let run = |ruby: &Path| {
        format!(
            "env HOME={} RBENV_SHELL=sh KAMAL_LAUNCHER_CACHE_DIR={} {} --lockfile {} --ruby {} exec -- version",
            q(&home),
            q(&cache),
            bin,
            q(&app.lockfile_path()),
            q(ruby)
        )
    };
    let medians = hyperfine(
        300,
        None,
        &[
            ("plain ruby", run(&plain)),
            ("ruby behind an rbenv shim", run(&shim)),
        ],
    );
    println!(
        "warm path own time: plain {:.2} ms, behind a shim {:.2} ms ({:+.2} ms)",
        medians[0] * 1e3,
        medians[1] * 1e3,
        (medians[1] - medians[0]) * 1e3
    );
}

/// Issue 21: a CI cache restore (tar: new inodes, whole-second times) starts as warm as the cache it was saved
/// from. The real kamal 2.12.0, `kamal version`: the cache as it was; the same cache restored from a tar archive
/// before every run, at the same path; and, for what a restore that invalidated the bytecode cost, restored
/// without its bytecode.
#[test]
#[ignore = "benchmark: run scripts/bench"]
fn bench_restored_cache() {
    require_ruby();
    assert!(which("hyperfine").is_some(), "install hyperfine");
    let real = support::real::real_kamal();
    let launcher = Launcher::new(real.app.path());
    for _ in 0..2 {
        assert_success(&launcher.clone().args(["exec", "--", "version"]).run());
    }
    let cache = launcher.cache_path().to_path_buf();
    let archive = tempfile::tempdir().unwrap();
    let tar = archive.path().join("cache.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&cache)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let bin = env!("CARGO_BIN_EXE_kamal-launcher");
    let run = format!(
        "env KAMAL_LAUNCHER_CACHE_DIR={} {bin} --lockfile {} exec -- version",
        sh_quote(&cache),
        sh_quote(&real.lockfile())
    );
    let restore = format!(
        "rm -rf {c} && mkdir {c} && tar -C {c} -xpf {t}",
        c = sh_quote(&cache),
        t = sh_quote(&tar)
    );
    let without_bytecode = format!(
        "{restore} && rm -rf {}",
        sh_quote(&cache.join("v2/bytecode"))
    );
    let medians = hyperfine_each(
        30,
        &[
            ("as saved", Some("true"), run.clone()),
            ("restored from tar", Some(&restore), run.clone()),
            ("restored, bytecode lost", Some(&without_bytecode), run),
        ],
    );
    println!(
        "\nRESTORED: as saved {:.1} ms, restored from tar {:.1} ms ({:+.1} ms), restored without bytecode {:.1} ms",
        medians[0] * 1e3,
        medians[1] * 1e3,
        (medians[1] - medians[0]) * 1e3,
        medians[2] * 1e3
    );
}

/// The launcher's own time on the warm path against another build of it (`KAMAL_LAUNCHER_BASELINE=<binary>`, e.g.
/// a release build of the commit before a change): the real kamal 2.12.0 closure installed, and a stand-in `ruby`
/// that exits at once, so what is timed is the launcher up to its exec.
#[test]
#[ignore = "benchmark: run scripts/bench"]
fn bench_warm_path_against_a_baseline() {
    require_ruby();
    assert!(which("hyperfine").is_some(), "install hyperfine");
    let Some(baseline) = std::env::var_os("KAMAL_LAUNCHER_BASELINE") else {
        eprintln!(
            "bench_warm_path_against_a_baseline: set KAMAL_LAUNCHER_BASELINE=<binary> to run it"
        );
        return;
    };
    let real = support::real::real_kamal();
    let launcher = Launcher::new(real.app.path());
    assert_success(&launcher.clone().args(["exec", "--", "version"]).run());
    let cache = launcher.cache_path().to_path_buf();
    let (_dir, ruby) = stand_in_ruby(&cache);
    let path = format!(
        "{}:{}",
        ruby.parent().unwrap().display(),
        std::env::var("PATH").unwrap()
    );
    let command = |bin: &Path| {
        format!(
            "env PATH={} KAMAL_LAUNCHER_CACHE_DIR={} {} --lockfile {} exec -- version",
            sh_quote(Path::new(&path)),
            sh_quote(&cache),
            sh_quote(bin),
            sh_quote(&real.lockfile())
        )
    };
    let stand_in = format!("{} -e 0", sh_quote(&ruby));
    let medians = hyperfine(
        1000,
        None,
        &[
            ("stand-in ruby", stand_in),
            ("baseline", command(Path::new(&baseline))),
            (
                "this build",
                command(Path::new(env!("CARGO_BIN_EXE_kamal-launcher"))),
            ),
        ],
    );
    println!(
        "\nWARM PATH: stand-in {:.3} ms; baseline {:.3} ms; this build {:.3} ms ({:+.3} ms)",
        medians[0] * 1e3,
        medians[1] * 1e3,
        medians[2] * 1e3,
        (medians[2] - medians[1]) * 1e3
    );
}
