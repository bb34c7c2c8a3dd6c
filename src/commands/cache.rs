//! `cache key|dir|prune|clean`.

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::gc::{self, Report};
use crate::pipeline::{Session, ci_key, select};
use crate::platform;
use crate::ui::{self, Ui, count};

/// The cache commands that need no lockfile.
#[derive(Debug, Clone, Copy)]
pub enum Maintenance {
    /// Print the directory.
    Dir,
    /// Remove what was not used for this many days.
    Prune {
        /// Age in days.
        older_than_days: u64,
        /// Say what would go, remove nothing.
        dry_run: bool,
    },
    /// Remove everything not in use.
    Clean {
        /// Say what would go, remove nothing.
        dry_run: bool,
    },
}

/// `cache key`: the same on every machine with this lockfile and platform: no Ruby, no network, no cache.
pub fn key(s: &Session<'_, '_>) -> Result<()> {
    let local = platform::machine_platform();
    let force_ruby = s.settings.flag("force_ruby_platform");
    let closure = select(s.located, s.lock, &s.opts.gem, &local, force_ruby)?;
    ui::result(&format!("{}\n", ci_key(s.lock, &closure, &local)))
        .map_err(Error::io("writing the key to", "stdout"))
}

/// `cache dir`, `cache prune`, `cache clean`: need no lockfile.
pub fn maintain(what: Maintenance, cache: &Cache, ui: &Ui) -> Result<()> {
    let (report, dry_run) = match what {
        Maintenance::Dir => {
            return ui::result(&format!("{}\n", cache.dir().display()))
                .map_err(Error::io("writing the directory to", "stdout"));
        }
        Maintenance::Prune {
            older_than_days,
            dry_run,
        } => (
            gc::prune(
                cache,
                std::time::Duration::from_secs(older_than_days.saturating_mul(86_400)),
                dry_run,
            ),
            dry_run,
        ),
        Maintenance::Clean { dry_run } => (gc::clean(cache, dry_run), dry_run),
    };
    cache.finish();
    let report = report?;
    let older_than_days = match what {
        Maintenance::Prune {
            older_than_days, ..
        } => Some(older_than_days),
        _ => None,
    };
    ui.summary(&summary(
        &report,
        &cache.dir().display().to_string(),
        older_than_days,
        dry_run,
    ));
    Ok(())
}

/// The one line a prune or clean ends with: what went (or would go), from where, and what was kept.
fn summary(report: &Report, dir: &str, older_than_days: Option<u64>, dry_run: bool) -> String {
    if !report.removed_any() && report.kept == 0 {
        return format!("{dir} is already empty");
    }
    let in_use = if report.in_use > 0 {
        format!(
            "; kept {} in use by a running kamal",
            count(report.in_use, "environment", "environments")
        )
    } else {
        String::new()
    };
    if !report.removed_any() {
        let why = match older_than_days {
            Some(0) | None => String::new(),
            Some(days) => format!(
                ": everything was used in the last {}",
                count(days as usize, "day", "days")
            ),
        };
        return format!("nothing to remove in {dir}{why}{in_use}");
    }
    let mut what = Vec::new();
    for (n, one, many) in [
        (report.envs, "environment", "environments"),
        (report.units, "installed gem", "installed gems"),
        (report.downloads, "download", "downloads"),
        (report.launchers, "pinned launcher", "pinned launchers"),
    ] {
        if n > 0 {
            what.push(count(n, one, many));
        }
    }
    let what = match what.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    let bytes = ui::human_bytes(report.bytes);
    if dry_run {
        format!("would remove {what} from {dir}, freeing {bytes}{in_use}")
    } else {
        format!("removed {what} from {dir}: {bytes} freed{in_use}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_name_the_directory_and_count_in_words() {
        let dir = "/c";
        let empty = Report::default();
        assert_eq!(summary(&empty, dir, Some(30), false), "/c is already empty");
        let recent = Report {
            kept: 3,
            ..Report::default()
        };
        assert_eq!(
            summary(&recent, dir, Some(1), false),
            "nothing to remove in /c: everything was used in the last 1 day"
        );
        let some = Report {
            envs: 1,
            units: 6,
            downloads: 1,
            bytes: 2048,
            in_use: 1,
            kept: 1,
            ..Report::default()
        };
        assert_eq!(
            summary(&some, dir, Some(30), false),
            "removed 1 environment, 6 installed gems and 1 download from /c: 2.0 KiB freed; kept 1 environment in \
             use by a running kamal"
        );
        let launchers = Report {
            launchers: 2,
            bytes: 10,
            ..Report::default()
        };
        assert_eq!(
            summary(&launchers, dir, None, true),
            "would remove 2 pinned launchers from /c, freeing 10 B"
        );
    }
}
