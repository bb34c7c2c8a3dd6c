//! Step 6: install verified gems, each once per Ruby ABI into the shared store, and assemble the closure's
//! environment. Everything is built under `tmp/` and renamed into place only when complete, so a failed or
//! killed install never leaves anything a later run mistakes for done.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cache::{self, Cache};
use crate::error::{Error, Result};
use crate::ruby::Ruby;
use crate::ui::Ui;

const INSTALLER: &str = include_str!("ruby/install.rb");
const BOOT: &str = include_str!("ruby/boot.rb");

/// One gem of the environment.
#[derive(Debug, Clone)]
pub struct Unit {
    /// `name-version[-platform]`.
    pub full_name: String,
    /// The verified `.gem` file.
    pub gem_file: PathBuf,
    /// Where it is (or will be) installed in the store.
    pub dir: PathBuf,
}

/// Installs every unit missing from the store, several at a time.
pub fn install_units(
    cache: &Cache,
    ruby: &Ruby,
    units: &[Unit],
    jobs: usize,
    ui: &Ui,
) -> Result<usize> {
    let mut missing: Vec<&Unit> = units.iter().filter(|u| !u.dir.is_dir()).collect();
    if missing.is_empty() {
        return Ok(0);
    }
    // Lock in a fixed order so that two launchers with overlapping closures cannot deadlock.
    missing.sort_by(|a, b| a.dir.cmp(&b.dir));
    let mut locks = Vec::with_capacity(missing.len());
    for unit in &missing {
        let name = cache::key_of([unit.dir.to_string_lossy().as_ref()]);
        locks.push(cache.lock(&format!("unit-{name}"))?);
    }
    // Another launcher may have installed some while we waited.
    missing.retain(|u| !u.dir.is_dir());
    if missing.is_empty() {
        return Ok(0);
    }

    let staging: Vec<PathBuf> = missing
        .iter()
        .map(|_| cache.temp_path("unit"))
        .collect::<Result<_>>()?;
    let result = run_installer(cache, ruby, &missing, &staging, jobs, ui);
    for dir in &staging {
        let _ = fs::remove_dir_all(dir);
        let _ = fs::remove_file(log_of(dir));
        let mut err = dir.as_os_str().to_owned();
        err.push(".err");
        let _ = fs::remove_file(err);
    }
    result?;
    Ok(missing.len())
}

fn log_of(dir: &Path) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(".log");
    PathBuf::from(s)
}

fn run_installer(
    cache: &Cache,
    ruby: &Ruby,
    units: &[&Unit],
    staging: &[PathBuf],
    jobs: usize,
    ui: &Ui,
) -> Result<()> {
    let mut cmd = Command::new(&ruby.path);
    cmd.arg("-e").arg(INSTALLER);
    for (unit, dir) in units.iter().zip(staging) {
        cmd.arg(&unit.gem_file).arg(dir);
    }
    cmd.env("KAMAL_LAUNCHER_JOBS", jobs.to_string())
        .env("MAKEFLAGS", format!("-j{jobs}"))
        // The caller's Bundler and gem paths must not leak into the installer or extension builds.
        .env_remove("RUBYOPT")
        .env_remove("RUBYLIB")
        .env_remove("BUNDLE_GEMFILE")
        .env_remove("GEM_HOME")
        .env_remove("GEM_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::Exec {
        ruby: ruby.path.clone(),
        source: e,
    })?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut done = 0;
    let mut failure: Option<Error> = None;
    // An error that makes the rest of the installer's work useless: the installer is told to stop (it ends its
    // running installs and waits for them), and its output is drained until it has exited, so that nothing
    // writes into the temporary area after it is removed.
    let mut fatal: Option<Error> = None;
    let stop = |child: &std::process::Child| {
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill has no memory preconditions; the child is not yet waited for, so its pid is ours.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    };
    let progress = ui.progress_bar("Installing", units.len());
    for line in BufReader::new(stdout).lines() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                stop(&child);
                fatal = Some(Error::Install(format!(
                    "reading the installer's output: {e}"
                )));
                break;
            }
        };
        if fatal.is_some() {
            continue;
        }
        let mut parts = line.splitn(3, ' ');
        let (status, index, hint) = (parts.next(), parts.next(), parts.next());
        let Some(i) = index
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|i| *i < units.len())
        else {
            continue;
        };
        let unit = units[i];
        if status == Some("start") {
            progress.started(&unit.full_name);
            continue;
        }
        if status == Some("ok") {
            let parent = unit.dir.parent().expect("store paths have a parent");
            let stored = fs::create_dir_all(parent)
                .map_err(Error::io("creating the store directory", parent))
                .and_then(|()| match fs::rename(&staging[i], &unit.dir) {
                    Ok(()) => Ok(()),
                    // A concurrent launcher holding an older lock layout won the race; its result is as good.
                    Err(_) if unit.dir.is_dir() => Ok(()),
                    Err(e) => Err(Error::Io {
                        action: "moving the installed gem into",
                        path: unit.dir.clone(),
                        source: e,
                    }),
                });
            if let Err(e) = stored {
                stop(&child);
                fatal = Some(e);
                continue;
            }
            done += 1;
            progress.finished(&unit.full_name);
        } else if failure.is_none() && status == Some("no-space") {
            // Nothing could be written to explain it, and there is no room for a log: say where and why.
            failure = Some(Error::Io {
                action: "installing a gem into",
                path: unit.dir.clone(),
                source: std::io::Error::from_raw_os_error(libc::ENOSPC),
            });
        } else if failure.is_none() {
            let build = status == Some("build-failed");
            failure = Some(install_failure(
                cache,
                unit,
                &staging[i],
                build,
                hint.unwrap_or(""),
            ));
        }
    }
    let status = child.wait().map_err(|e| Error::Exec {
        ruby: ruby.path.clone(),
        source: e,
    })?;
    if let Some(err) = fatal.or(failure) {
        return Err(err);
    }
    if !status.success() || done != units.len() {
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        return Err(Error::Install(format!(
            "the gem installer ({}) stopped unexpectedly ({status}): {}",
            ruby.path.display(),
            stderr.trim()
        )));
    }
    Ok(())
}

/// Keeps the failed gem's log and explains the failure.
fn install_failure(cache: &Cache, unit: &Unit, staging: &Path, build: bool, hint: &str) -> Error {
    let log = fs::read_to_string(log_of(staging)).unwrap_or_default();
    let kept = cache.logs().join(format!("{}.log", unit.full_name));
    let saved = fs::create_dir_all(cache.logs())
        .and_then(|_| fs::write(&kept, &log))
        .is_ok();
    let err_file = {
        let mut p = staging.as_os_str().to_owned();
        p.push(".err");
        PathBuf::from(p)
    };
    let summary = fs::read_to_string(&err_file)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| {
            log.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output")
                .to_string()
        })
        .lines()
        .map(|l| format!("\n    {l}"))
        .collect::<String>();
    Error::Install(format!(
        "{} {}:{summary}\n  {}{}",
        if build {
            "failed to build the native extension of"
        } else {
            "failed to install"
        },
        unit.full_name,
        if hint.is_empty() {
            String::new()
        } else {
            format!("{hint}\n  ")
        },
        if saved {
            format!("full log: {}", kept.display())
        } else {
            format!("log:\n{log}")
        }
    ))
}

/// The environment's description: store units and spec files, in activation order.
#[derive(Debug, Clone)]
pub struct EnvPlan {
    /// `(unit dir, full name)` in activation order (dependencies first).
    pub units: Vec<(PathBuf, String)>,
}

/// Writes the environment for `plan` at `dest` unless it already exists; returns whether it was created.
pub fn assemble_env(cache: &Cache, dest: &Path, plan: &EnvPlan) -> Result<bool> {
    if env_is_intact(dest) {
        return Ok(false);
    }
    if dest.exists() {
        // A damaged environment (its store entries were deleted): move it out of the way, atomically.
        let broken = cache.temp_path("broken-env")?;
        fs::rename(dest, &broken).map_err(Error::io("replacing the damaged environment", dest))?;
        let _ = fs::remove_dir_all(&broken);
    }
    let staging = cache.temp_path("env")?;
    let result = (|| {
        fs::create_dir_all(&staging).map_err(Error::io("creating", &staging))?;
        let envs = dest.parent().expect("env paths have a parent");
        let mut units = String::new();
        let mut specs = String::new();
        for (dir, full) in &plan.units {
            let rel = relative_to(dir, envs);
            units.push_str(&format!("  {:?},\n", rel));
            specs.push_str(&format!(
                "  {:?},\n",
                format!("{rel}/specifications/{full}.gemspec")
            ));
        }
        let boot = format!(
            "# frozen_string_literal: true\n# Generated by kamal-launcher {}; do not edit.\nKAMAL_LAUNCHER_UNITS = [\n{units}].freeze\nKAMAL_LAUNCHER_SPECS = [\n{specs}].freeze\n{BOOT}",
            env!("CARGO_PKG_VERSION")
        );
        let boot_path = staging.join("boot.rb");
        fs::write(&boot_path, boot).map_err(Error::io("writing", &boot_path))?;
        // Its modification time records the environment's last use, for `cache prune`.
        let used = staging.join("last-used");
        fs::write(&used, "").map_err(Error::io("writing", &used))?;
        fs::create_dir_all(envs).map_err(Error::io("creating the cache directory", envs))?;
        match fs::rename(&staging, dest) {
            Ok(()) => Ok(true),
            // Someone else finished the same environment first: theirs is identical.
            Err(_) if env_is_intact(dest) => Ok(false),
            Err(e) => Err(Error::Io {
                action: "moving the environment into",
                path: dest.to_path_buf(),
                source: e,
            }),
        }
    })();
    let _ = fs::remove_dir_all(&staging);
    result
}

/// `dir` relative to the env directory (`envs/<key>/`), so a cache restored elsewhere still works.
fn relative_to(dir: &Path, envs: &Path) -> String {
    let root = envs.parent().expect("envs has a parent");
    match dir.strip_prefix(root) {
        Ok(rel) => format!("../../{}", rel.display()),
        Err(_) => dir.display().to_string(),
    }
}

/// The store entries an environment uses, read from its `boot.rb` (paths relative to the env, resolved).
pub fn env_units(env: &Path) -> Vec<PathBuf> {
    let Ok(boot) = fs::read_to_string(env.join("boot.rb")) else {
        return Vec::new();
    };
    boot.lines()
        .filter_map(|l| l.trim().strip_prefix("\"../../")?.strip_suffix("\","))
        .filter(|rel| !rel.contains("/specifications/"))
        .map(|rel| normalize(&env.join("../..").join(rel)))
        .collect()
}

/// Whether every store entry of an installed environment is present (a manual deletion breaks this).
pub fn env_is_intact(env: &Path) -> bool {
    env.join("boot.rb").is_file() && env_units(env).iter().all(|u| u.is_dir())
}

/// Resolves `.` and `..` lexically, without touching the filesystem (the path may not exist).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
