//! `cache key|dir|prune|clean`.

use crate::cache::Cache;
use crate::error::Result;
use crate::gc;
use crate::pipeline::{Session, ci_key, select};
use crate::platform;
use crate::ui::Ui;

/// The cache commands that need no lockfile.
#[derive(Debug, Clone, Copy)]
pub enum Maintenance {
    /// Print the directory.
    Dir,
    /// Remove what was not used for this many days.
    Prune {
        /// Age in days.
        older_than_days: u64,
    },
    /// Remove everything not in use.
    Clean,
}

/// `cache key`: the same on every machine with this lockfile and platform: no Ruby, no network, no cache.
pub fn key(s: &Session<'_, '_>) -> Result<()> {
    let local = platform::machine_platform();
    let force_ruby = s.settings.flag("force_ruby_platform");
    let closure = select(s.located, s.lock, &s.opts.gem, &local, force_ruby)?;
    println!("{}", ci_key(s.lock, &closure, &local));
    Ok(())
}

/// `cache dir`, `cache prune`, `cache clean`: need no lockfile.
pub fn maintain(what: Maintenance, cache: &Cache, ui: &Ui) -> Result<()> {
    let report = match what {
        Maintenance::Dir => {
            println!("{}", cache.dir().display());
            return Ok(());
        }
        Maintenance::Prune { older_than_days } => gc::prune(
            cache,
            std::time::Duration::from_secs(older_than_days.saturating_mul(86_400)),
        ),
        Maintenance::Clean => gc::clean(cache),
    };
    cache.finish();
    let report = report?;
    ui.summary(&format!(
        "removed {} environment(s), {} installed gem(s), {} download(s): {} freed{}",
        report.envs,
        report.units,
        report.downloads,
        crate::ui::human_bytes(report.bytes),
        if report.in_use > 0 {
            format!(
                "; kept {} environment(s) in use by a running kamal",
                report.in_use
            )
        } else {
            String::new()
        }
    ));
    Ok(())
}
