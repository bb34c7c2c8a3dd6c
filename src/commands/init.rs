//! `init`: adopt the launcher in the app (the changes themselves are planned and applied by `crate::init`).

use crate::error::Result;
use crate::init;
use crate::pinned;
use crate::pipeline::Session;

/// Plans the changes, shows them (`dry_run`: only shows them), and applies them.
pub fn run(s: &Session<'_, '_>, dry_run: bool) -> Result<()> {
    let ui = s.ui;
    let lockfile_name = s
        .located
        .path
        .file_name()
        .map_or("Gemfile.lock".into(), |n| n.to_string_lossy().into_owned());
    let app = s.located.app_dir();
    let plan = init::plan(app, &lockfile_name)?;
    if pinned::pin(s.lock).is_none() {
        // The Gemfile is the user's to change (it takes Bundler and the network): say the line.
        ui.warn(&format!(
            "{} pins no kamal-launcher, so bin/kamal cannot fetch one on machines without it; pin it \
             (a version and a SHA-256 per platform) with:\n    {}",
            lockfile_name,
            pinned::PIN_COMMAND
        ));
    }
    if dry_run {
        print!("{}", init::diff(&plan));
    }
    for note in &plan.notes {
        ui.warn(note);
    }
    if plan.changes.is_empty() {
        ui.summary(&format!(
            "{} is already set up: nothing to change",
            app.display()
        ));
    } else if dry_run {
        ui.summary(&format!(
            "dry run: {} change(s) shown above, nothing written",
            plan.changes.len()
        ));
    } else {
        print!("{}", init::diff(&plan));
        for done in init::apply(app, &plan)? {
            ui.summary(&done);
        }
    }
    Ok(())
}
