//! An environment: the locked closure as installed gems, in activation order. This module alone writes, reads
//! and checks its format: `envs/<key>/manifest` (one installed gem per line: its store directory relative to the
//! environment, a tab, its full name), `boot.rb` (the same for every environment: it reads the manifest) and
//! `last-used`. An environment is renamed into place complete, so the manifest's presence means installed.

use std::fs;
use std::path::{Path, PathBuf};

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::install::normalize;

/// The script Ruby runs: activates the manifest's gems, then the root gem's executable.
const BOOT: &str = include_str!("ruby/boot.rb");
/// The manifest's file name.
const MANIFEST: &str = "manifest";
/// Its first line: a format change bumps `cache::LAYOUT`, so an old tree is ignored, never misread.
const MANIFEST_HEADER: &str = "# kamal-launcher environment: store directory (relative to this file) <TAB> full name, dependencies first";

/// The environment's description: store units and spec files, in activation order.
#[derive(Debug, Clone)]
pub struct EnvPlan {
    /// `(unit dir, full name)` in activation order (dependencies first).
    pub units: Vec<(PathBuf, String)>,
}

/// Writes the environment for `plan` at `dest` unless it already exists; returns whether it was created.
pub fn assemble(cache: &Cache, dest: &Path, plan: &EnvPlan) -> Result<bool> {
    if is_intact(dest) {
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
        let mut manifest = format!("{MANIFEST_HEADER}\n");
        for (dir, full) in &plan.units {
            manifest.push_str(&format!("{}\t{full}\n", relative_to(dir, envs)));
        }
        let manifest_path = staging.join(MANIFEST);
        fs::write(&manifest_path, manifest).map_err(Error::io("writing", &manifest_path))?;
        let boot_path = staging.join("boot.rb");
        fs::write(&boot_path, BOOT).map_err(Error::io("writing", &boot_path))?;
        // Its modification time records the environment's last use, for `cache prune`.
        let used = staging.join("last-used");
        fs::write(&used, "").map_err(Error::io("writing", &used))?;
        fs::create_dir_all(envs).map_err(Error::io("creating the cache directory", envs))?;
        match fs::rename(&staging, dest) {
            Ok(()) => Ok(true),
            // Someone else finished the same environment first: theirs is identical.
            Err(_) if is_intact(dest) => Ok(false),
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

/// The store entries an environment uses, from its manifest (paths relative to the env, resolved).
pub fn units(env: &Path) -> Vec<PathBuf> {
    let Ok(manifest) = fs::read_to_string(env.join(MANIFEST)) else {
        return Vec::new();
    };
    manifest
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .map(|(dir, _)| normalize(&env.join(dir)))
        .collect()
}

/// Whether the environment was completely assembled (the warm path's only check: it was renamed into place).
pub fn is_installed(env: &Path) -> bool {
    env.join(MANIFEST).is_file()
}

/// Whether every store entry of an installed environment is present (a manual deletion breaks this).
pub fn is_intact(env: &Path) -> bool {
    is_installed(env) && units(env).iter().all(|u| u.is_dir())
}
