//! An environment: the locked closure as installed gems, in activation order. This module alone writes, reads
//! and checks its format: `envs/<key>/manifest` (one installed gem per line: its store directory relative to the
//! environment, a tab, its full name), `boot.rb` (the same for every environment: it reads the manifest) and
//! `last-used`, sealed by a record (`record.rs`) and renamed into place complete. The warm path checks the
//! environment's own files against the record (a few small reads); `install` and the cold path also check every
//! installed gem it uses, and rebuild what is damaged.

use std::fs;
use std::path::{Path, PathBuf};

use crate::cache::{self, Cache};
use crate::error::{Error, Result};
use crate::install::normalize;
use crate::record::{self, Damage};

/// The script Ruby runs: activates the manifest's gems, then the root gem's executable.
const BOOT: &str = include_str!("ruby/boot.rb");
/// The manifest's file name.
const MANIFEST: &str = "manifest";
/// The script's file name.
const BOOT_FILE: &str = "boot.rb";
/// Its first line: a format change bumps `cache::LAYOUT`, so an old tree is ignored, never misread.
const MANIFEST_HEADER: &str = "# kamal-launcher environment: store directory (relative to this file) <TAB> full name, dependencies first";

/// The environment's description: store units and spec files, in activation order.
#[derive(Debug, Clone)]
pub struct EnvPlan {
    /// `(unit dir, full name)` in activation order (dependencies first).
    pub units: Vec<(PathBuf, String)>,
}

/// Writes the environment for `plan` at `dest` unless an intact one is there; returns whether it was created.
/// Its gems must be installed already: only the environment's own files are checked here.
pub fn assemble(cache: &Cache, dest: &Path, plan: &EnvPlan) -> Result<bool> {
    if check(dest, Depth::Own).is_ok() {
        return Ok(false);
    }
    if fs::symlink_metadata(dest).is_ok() {
        // A damaged environment goes out of the way, never seen half removed.
        cache::remove_entry(cache, dest, "replacing the damaged environment")?;
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
        let boot_path = staging.join(BOOT_FILE);
        fs::write(&boot_path, BOOT).map_err(Error::io("writing", &boot_path))?;
        // Its modification time records the environment's last use, for `cache prune`.
        let used = staging.join("last-used");
        fs::write(&used, "").map_err(Error::io("writing", &used))?;
        record::seal(&staging)?;
        fs::create_dir_all(envs).map_err(Error::io("creating the cache directory", envs))?;
        match cache::publish(&staging, dest) {
            Ok(()) => Ok(true),
            // Someone else finished the same environment first: theirs is identical.
            Err(_) if check(dest, Depth::Own).is_ok() => Ok(false),
            Err(e) => Err(e),
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

/// How much of an environment [`check`] reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The environment's own files (the warm path: a few small reads, no gem is hashed).
    Own,
    /// Its own files and every installed gem it uses (`install`, the cold path).
    Full,
}

/// Why an environment cannot be used as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// Nothing is installed under this key.
    Missing,
    /// Something is there, but not what was installed: rebuild it.
    Damaged(Damage),
}

/// Checks an environment against its record (and, with [`Depth::Full`], its gems against theirs; with
/// [`Depth::Own`], only that each gem is still a directory with a record, one `lstat` each).
pub fn check(env: &Path, depth: Depth) -> std::result::Result<(), Unusable> {
    if fs::symlink_metadata(env).is_err() {
        return Err(Unusable::Missing);
    }
    record::verify(env).map_err(Unusable::Damaged)?;
    for unit in units(env) {
        if depth == Depth::Full {
            record::verify(&unit).map_err(Unusable::Damaged)?;
        } else if !fs::symlink_metadata(unit.join(record::RECORD)).is_ok_and(|m| m.is_file()) {
            // A gem removed or replaced (by a symlink, a file) would fail inside Ruby on every run, where the
            // launcher can no longer repair it: said here, it is rebuilt. Its content is `install`'s to check.
            return Err(Unusable::Damaged(
                record::verify(&unit).err().unwrap_or_else(|| Damage {
                    path: unit.join(record::RECORD),
                    problem: "missing".into(),
                }),
            ));
        }
    }
    Ok(())
}
