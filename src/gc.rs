//! Cache maintenance: `cache prune` drops what has not been used for a while, `cache clean` drops everything.
//! Both are safe against concurrent launchers: installs in progress hold the shared `gc` lock that these take
//! exclusively, and environments that a running kamal was started from are kept. A dry run counts the same
//! things and changes nothing (it takes no lock, so an install finishing meanwhile may change the answer).

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::cache::Cache;
use crate::error::{Error, Result};

/// What a prune or clean removed (or, in a dry run, would remove) and kept.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Environments removed.
    pub envs: usize,
    /// Installed gems removed from the store.
    pub units: usize,
    /// Downloaded `.gem` files and git checkouts removed.
    pub downloads: usize,
    /// Pinned launchers removed (`clean` only).
    pub launchers: usize,
    /// Bytes freed.
    pub bytes: u64,
    /// Environments kept because a running kamal uses them.
    pub in_use: usize,
    /// Environments, installed gems, downloads and pinned launchers kept (in use or used recently).
    pub kept: usize,
}

impl Report {
    /// Whether anything was (or would be) removed.
    pub fn removed_any(&self) -> bool {
        self.envs + self.units + self.downloads + self.launchers > 0
    }
}

/// The lock name cold-path launchers hold shared while they install.
pub const GC_LOCK: &str = "gc";

/// Removes environments and downloads unused for `older_than`, and store entries no remaining environment uses;
/// with `dry_run`, only counts them.
pub fn prune(cache: &Cache, older_than: Duration, dry_run: bool) -> Result<Report> {
    let cutoff = SystemTime::now()
        .checked_sub(older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = collect(cache, |modified| modified < cutoff, dry_run)?;
    // Pinned launchers stay (see `clean`), and count as what the cache still holds.
    report.kept += launchers(cache.root()).len();
    Ok(report)
}

/// Removes every environment, installed gem, download and pinned launcher, except environments a running kamal
/// uses; with `dry_run`, only counts them.
pub fn clean(cache: &Cache, dry_run: bool) -> Result<Report> {
    let mut report = collect(cache, |_| true, dry_run)?;
    for launcher in launchers(cache.root()) {
        report.launchers += 1;
        report.bytes += size_of(&launcher);
    }
    if dry_run {
        return Ok(report);
    }
    // Memos and indexes are cheap to rebuild; logs are only useful next to what they describe. Pinned launchers
    // go too (`bin/kamal` fetches one again); `prune` keeps them: one small binary per pinned version, and the
    // warm path records no use of them.
    for dir in ["rubies", "index", "logs", "bytecode", "launchers"] {
        let path = cache.root().join(dir);
        // One pinned launcher at a time: removed in place (an image layer), each loses its record first.
        for entry in read_dir(&path).unwrap_or_default() {
            let _ = remove_tree(cache, &entry);
        }
        if path.exists() {
            let _ = remove_tree(cache, &path);
        }
    }
    Ok(report)
}

/// The pinned launchers' directories (`launchers/<version>`; `launchers/pins` holds the shim's memos).
fn launchers(root: &Path) -> Vec<PathBuf> {
    read_dir(&root.join("launchers"))
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "pins") && p.is_dir())
        .collect()
}

fn collect(cache: &Cache, stale: impl Fn(SystemTime) -> bool, dry_run: bool) -> Result<Report> {
    if !cache.root().exists() {
        return Ok(Report::default());
    }
    // Environments name their store entries relative to themselves; compare in one canonical form.
    let root = &fs::canonicalize(cache.root()).map_err(Error::io("reading", cache.root()))?;
    let _gc = if dry_run {
        None
    } else {
        let lock = cache.lock(GC_LOCK)?;
        cache.sweep();
        Some(lock)
    };
    let remove_tree = |path: &Path| {
        if dry_run {
            Ok(())
        } else {
            remove_tree(cache, path)
        }
    };
    let remove_file = |path: &Path| {
        if dry_run {
            Ok(())
        } else {
            fs::remove_file(path)
        }
    };
    let mut report = Report::default();

    let envs_dir = root.join("envs");
    let mut kept_units: HashSet<PathBuf> = HashSet::new();
    for env in read_dir(&envs_dir)? {
        let last_used = modified(&env.join("last-used")).or_else(|| modified(&env));
        // Held until the environment is gone, so a kamal starting meanwhile finds it busy, not half removed.
        let claimed = claim(&env);
        let in_use = claimed.is_err();
        if in_use || !last_used.is_some_and(&stale) {
            report.in_use += usize::from(in_use && last_used.is_some_and(&stale));
            report.kept += 1;
            kept_units.extend(crate::env::units(&env));
            continue;
        }
        report.bytes += size_of(&env);
        remove_tree(&env)?;
        report.envs += 1;
    }

    let store = root.join("store");
    for abi in read_dir(&store)? {
        for unit in read_dir(&abi)? {
            if kept_units.contains(&unit) {
                report.kept += 1;
                continue;
            }
            report.bytes += size_of(&unit);
            remove_tree(&unit)?;
            report.units += 1;
        }
    }

    // Compiled bytecode is rebuilt on the next run that needs it; a whole Ruby's worth goes once unused.
    for ruby in read_dir(&root.join("bytecode"))? {
        for file in read_dir(&ruby)? {
            if modified(&file).is_some_and(&stale) {
                report.bytes += size_of(&file);
                let _ = remove_file(&file);
            }
        }
        if !dry_run {
            let _ = fs::remove_dir(&ruby);
        }
    }

    for file in read_dir(&root.join("downloads"))? {
        if modified(&file).is_some_and(&stale) {
            report.bytes += size_of(&file);
            remove_file(&file).map_err(Error::io("removing", &file))?;
            report.downloads += 1;
        } else {
            report.kept += 1;
        }
    }

    // Git checkouts and the gems built from them are only needed to install again: like downloads, they go
    // when unused. Installs hold the gc lock shared, so none is being fetched or built now.
    for remote in read_dir(&root.join("git"))? {
        for revision in read_dir(&remote)? {
            let last_used = modified(&revision.join("last-used")).or_else(|| modified(&revision));
            if last_used.is_some_and(&stale) {
                report.bytes += size_of(&revision);
                remove_tree(&revision)?;
                report.downloads += 1;
            } else {
                report.kept += 1;
            }
        }
        if !dry_run {
            let _ = fs::remove_dir(&remote);
        }
    }
    Ok(report)
}

/// A kamal runs from the environment.
struct InUse;

/// The environment's `last-used` file, locked exclusively, unless a kamal runs from it (`boot.rb` holds it
/// shared for kamal's lifetime): flock(2), the same on Linux and macOS. Without the file there is no runner.
fn claim(env: &Path) -> Result<Option<fs::File>, InUse> {
    let Ok(file) = fs::File::open(env.join("last-used")) else {
        return Ok(None);
    };
    file.try_lock().map(|()| Some(file)).map_err(|_| InUse)
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries.flatten().map(|e| e.path()).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::Io {
            action: "reading",
            path: dir.to_path_buf(),
            source: e,
        }),
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    path.symlink_metadata().ok()?.modified().ok()
}

fn size_of(path: &Path) -> u64 {
    let Ok(meta) = path.symlink_metadata() else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}

/// Removes an entry so that nobody ever takes what is left of it for whole ([`crate::cache::remove_entry`]).
fn remove_tree(cache: &Cache, path: &Path) -> Result<()> {
    crate::cache::remove_entry(cache, path, "removing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_recent_and_drops_old() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let root = cache.root().to_path_buf();
        let unit = root.join("store/ruby-3.1.0-x86_64-linux/a-1.0-0011");
        fs::create_dir_all(unit.join("gems")).unwrap();
        fs::write(unit.join("gems/f.rb"), "x").unwrap();
        let orphan = root.join("store/ruby-3.1.0-x86_64-linux/b-1.0-0022");
        fs::create_dir_all(&orphan).unwrap();
        let env = root.join("envs/k1");
        fs::create_dir_all(&env).unwrap();
        fs::write(env.join("boot.rb"), "").unwrap();
        fs::write(
            env.join("manifest"),
            "# header\n../../store/ruby-3.1.0-x86_64-linux/a-1.0-0011\ta-1.0\n",
        )
        .unwrap();
        fs::write(env.join("last-used"), "").unwrap();
        fs::create_dir_all(root.join("downloads")).unwrap();
        fs::write(root.join("downloads/00.gem"), "gem").unwrap();

        let dry = prune(&cache, Duration::from_secs(3600), true).unwrap();
        assert!(orphan.exists(), "a dry run removed something");
        let report = prune(&cache, Duration::from_secs(3600), false).unwrap();
        assert_eq!(dry, report);
        assert_eq!((report.envs, report.units, report.downloads), (0, 1, 0));
        assert_eq!(report.kept, 3, "{report:?}");
        assert!(unit.exists() && !orphan.exists());

        let dry = clean(&cache, true).unwrap();
        assert!(env.exists() && unit.exists(), "a dry run removed something");
        let report = clean(&cache, false).unwrap();
        assert_eq!(dry, report);
        assert_eq!((report.envs, report.units, report.downloads), (1, 1, 1));
        assert_eq!(report.kept, 0);
        assert!(report.bytes >= 4);
        assert!(!env.exists() && !unit.exists());
        let again = clean(&cache, false).unwrap();
        assert!(!again.removed_any() && again.kept == 0, "{again:?}");
        cache.finish();
    }
}
