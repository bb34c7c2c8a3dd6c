//! Cache maintenance: `cache prune` drops what has not been used for a while, `cache clean` drops everything.
//! Both are safe against concurrent launchers: installs in progress hold the shared `gc` lock that these take
//! exclusively, and environments that a running kamal was started from are kept.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::cache::Cache;
use crate::error::{Error, Result};

/// What a prune or clean removed and kept.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Environments removed.
    pub envs: usize,
    /// Installed gems removed from the store.
    pub units: usize,
    /// Downloaded `.gem` files and git checkouts removed.
    pub downloads: usize,
    /// Bytes freed.
    pub bytes: u64,
    /// Environments kept because a running kamal uses them.
    pub in_use: usize,
}

/// The lock name cold-path launchers hold shared while they install.
pub const GC_LOCK: &str = "gc";

/// Removes environments and downloads unused for `older_than`, and store entries no remaining environment uses.
pub fn prune(cache: &Cache, older_than: Duration) -> Result<Report> {
    let cutoff = SystemTime::now()
        .checked_sub(older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    collect(cache, |modified| modified < cutoff)
}

/// Removes every environment, installed gem, download and pinned launcher, except environments a running kamal
/// uses.
pub fn clean(cache: &Cache) -> Result<Report> {
    let report = collect(cache, |_| true)?;
    // Memos and indexes are cheap to rebuild; logs are only useful next to what they describe. Pinned launchers
    // go too (`bin/kamal` fetches one again); `prune` keeps them: one small binary per pinned version, and the
    // warm path records no use of them.
    for dir in ["rubies", "index", "logs", "bytecode", "launchers"] {
        let path = cache.root().join(dir);
        if path.exists() {
            let _ = remove_tree(cache, &path);
        }
    }
    Ok(report)
}

fn collect(cache: &Cache, stale: impl Fn(SystemTime) -> bool) -> Result<Report> {
    if !cache.root().exists() {
        return Ok(Report::default());
    }
    // Environments name their store entries relative to themselves; compare in one canonical form.
    let root = &fs::canonicalize(cache.root()).map_err(Error::io("reading", cache.root()))?;
    let _gc = cache.lock(GC_LOCK)?;
    cache.sweep();
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
            kept_units.extend(crate::env::units(&env));
            continue;
        }
        report.bytes += size_of(&env);
        remove_tree(cache, &env)?;
        report.envs += 1;
    }

    let store = root.join("store");
    for abi in read_dir(&store)? {
        for unit in read_dir(&abi)? {
            if kept_units.contains(&unit) {
                continue;
            }
            report.bytes += size_of(&unit);
            remove_tree(cache, &unit)?;
            report.units += 1;
        }
    }

    // Compiled bytecode is rebuilt on the next run that needs it; a whole Ruby's worth goes once unused.
    for ruby in read_dir(&root.join("bytecode"))? {
        for file in read_dir(&ruby)? {
            if modified(&file).is_some_and(&stale) {
                report.bytes += size_of(&file);
                let _ = fs::remove_file(&file);
            }
        }
        let _ = fs::remove_dir(&ruby);
    }

    for file in read_dir(&root.join("downloads"))? {
        if modified(&file).is_some_and(&stale) {
            report.bytes += size_of(&file);
            fs::remove_file(&file).map_err(Error::io("removing", &file))?;
            report.downloads += 1;
        }
    }

    // Git checkouts and the gems built from them are only needed to install again: like downloads, they go
    // when unused. Installs hold the gc lock shared, so none is being fetched or built now.
    for remote in read_dir(&root.join("git"))? {
        for revision in read_dir(&remote)? {
            let last_used = modified(&revision.join("last-used")).or_else(|| modified(&revision));
            if last_used.is_some_and(&stale) {
                report.bytes += size_of(&revision);
                remove_tree(cache, &revision)?;
                report.downloads += 1;
            }
        }
        let _ = fs::remove_dir(&remote);
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

/// Moves a tree out of sight atomically, then deletes it: nobody ever sees it half-removed.
fn remove_tree(cache: &Cache, path: &Path) -> Result<()> {
    let trash = cache.temp_path("trash")?;
    fs::rename(path, &trash).map_err(Error::io("removing", path))?;
    fs::remove_dir_all(&trash).map_err(Error::io("removing", &trash))
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

        let report = prune(&cache, Duration::from_secs(3600)).unwrap();
        assert_eq!((report.envs, report.units, report.downloads), (0, 1, 0));
        assert!(unit.exists() && !orphan.exists());

        let report = clean(&cache).unwrap();
        assert_eq!((report.envs, report.units, report.downloads), (1, 1, 1));
        assert!(report.bytes >= 4);
        assert!(!env.exists() && !unit.exists());
        cache.finish();
    }
}
