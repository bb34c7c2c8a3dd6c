//! `init`: adopt the launcher in a Rails app. Writes the `bin/kamal` shim, the pre-deploy hook that runs
//! `db:prepare` once on the primary host, and removes the stock `db:prepare` step from `bin/docker-entrypoint`,
//! which races when every container runs it on boot. Every change is planned first (with a report per file for
//! the summary, and diffs on demand), and is idempotent: a second run finds nothing to do.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Marks files this command wrote, so a later run (and `doctor`) recognises them.
pub const MARKER: &str = "Written by `kamal-launcher init`";

/// One planned change to the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Create (or replace) a file with this content and mode.
    Write {
        /// Path relative to the app.
        path: PathBuf,
        /// The file's content before, if it exists.
        before: Option<String>,
        /// The new content.
        after: String,
        /// Whether to make it executable.
        executable: bool,
    },
    /// Move a file aside before it is replaced.
    Rename {
        /// From, relative to the app.
        from: PathBuf,
        /// To, relative to the app.
        to: PathBuf,
    },
}

/// What `init` does to one file, as its summary says it (in the Rails generators' words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written where there was none.
    Create,
    /// A file that is not ours, moved aside to `kept`, and ours written in its place.
    Replace {
        /// Where the previous file is kept, relative to the app.
        kept: PathBuf,
    },
    /// Edited in place: lines added and removed.
    Update {
        /// Lines added.
        added: usize,
        /// Lines removed.
        removed: usize,
    },
    /// Already what `init` would write.
    Identical,
    /// The user's own, left alone because it already does the job; why.
    Keep(&'static str),
    /// The user's own, left alone although it needs a hand: a note says what to do.
    Skip,
}

/// One file `init` looked at, and what it does to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Relative to the app.
    pub path: PathBuf,
    /// What happens to it.
    pub outcome: Outcome,
}

/// What `init` would do, and what it deliberately does not.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    /// Changes, in the order they are applied.
    pub changes: Vec<Change>,
    /// Every file looked at, in the order they are reported.
    pub files: Vec<Report>,
    /// Things the user has to do by hand, with the reason (an existing hook, an unrecognised entrypoint).
    pub notes: Vec<Note>,
}

/// Something left to the user: why, and the step, short, for the list of what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The warning: what was found, why it matters, what to do (with the lines to add, if any).
    pub warning: String,
    /// The same as a step: "add the lines above to .kamal/hooks/pre-deploy".
    pub step: String,
}

impl Plan {
    fn report(&mut self, path: &str, outcome: Outcome) {
        self.files.push(Report {
            path: PathBuf::from(path),
            outcome,
        });
    }

    /// Whether applying it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Plans the changes for the app in `app`, whose lockfile is `lockfile_name` (`Gemfile.lock` or `gems.locked`).
pub fn plan(app: &Path, lockfile_name: &str) -> Result<Plan> {
    let mut plan = Plan::default();
    plan_shim(app, lockfile_name, &mut plan)?;
    plan_hook(app, &mut plan)?;
    plan_entrypoint(app, &mut plan)?;
    Ok(plan)
}

fn read(app: &Path, rel: &str) -> Result<Option<String>> {
    let path = app.join(rel);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            action: "reading",
            path,
            source: e,
        }),
    }
}

/// Lines added and removed from `before` to `after`.
pub fn line_counts(before: &str, after: &str) -> (usize, usize) {
    let diff = similar::TextDiff::from_lines(before, after);
    let (mut added, mut removed) = (0, 0);
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Delete => removed += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    (added, removed)
}

/// Plans writing `after` at `path` in place of `before` (ours, or nothing): `Create` or `Update`.
fn write(plan: &mut Plan, path: &str, before: Option<String>, after: String) {
    let outcome = match &before {
        None => Outcome::Create,
        Some(before) => {
            let (added, removed) = line_counts(before, &after);
            Outcome::Update { added, removed }
        }
    };
    plan.changes.push(Change::Write {
        path: PathBuf::from(path),
        before,
        after,
        executable: true,
    });
    plan.report(path, outcome);
}

fn plan_shim(app: &Path, lockfile_name: &str, plan: &mut Plan) -> Result<()> {
    const SHIM_PATH: &str = "bin/kamal";
    let shim = shim(lockfile_name);
    match read(app, SHIM_PATH)? {
        Some(text) if text == shim => plan.report(SHIM_PATH, Outcome::Identical),
        // An older shim of ours: replace it in place (its diff shows what changed), nothing to keep.
        Some(text) if text.contains(MARKER) => write(plan, SHIM_PATH, Some(text), shim),
        Some(_) => {
            let kept = free_name(app, "bin/kamal.bundler");
            plan.changes.push(Change::Rename {
                from: PathBuf::from(SHIM_PATH),
                to: kept.clone(),
            });
            plan.changes.push(Change::Write {
                path: PathBuf::from(SHIM_PATH),
                before: None,
                after: shim,
                executable: true,
            });
            plan.report(SHIM_PATH, Outcome::Replace { kept });
        }
        None => write(plan, SHIM_PATH, None, shim),
    }
    Ok(())
}

/// `bin/kamal.bundler`, or `bin/kamal.bundler.2` … when that is taken: nothing is ever overwritten.
fn free_name(app: &Path, base: &str) -> PathBuf {
    let mut candidate = PathBuf::from(base);
    let mut n = 2;
    while app.join(&candidate).exists() {
        candidate = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    candidate
}

fn plan_hook(app: &Path, plan: &mut Plan) -> Result<()> {
    const HOOK: &str = ".kamal/hooks/pre-deploy";
    match read(app, HOOK)? {
        None => write(plan, HOOK, None, PRE_DEPLOY.to_string()),
        Some(text) if text == PRE_DEPLOY => plan.report(HOOK, Outcome::Identical),
        // An older hook of ours: brought up to date in place.
        Some(text) if text.contains(MARKER) => {
            write(plan, HOOK, Some(text), PRE_DEPLOY.to_string())
        }
        Some(text) if runs_db_prepare(&text) => {
            if skips_rollbacks(&text) {
                plan.report(HOOK, Outcome::Keep("yours; it already runs db:prepare"));
            } else {
                plan.report(HOOK, Outcome::Skip);
                plan.notes.push(Note {
                    warning: format!(
                        "{HOOK} runs db:prepare on rollbacks too, which would migrate with the old image; \
                         wrap it in `if [ \"${{KAMAL_COMMAND:-}}\" != \"rollback\" ]; then … fi`"
                    ),
                    step: format!("Skip rollbacks in {HOOK}, as the warning above says"),
                });
            }
        }
        Some(_) => {
            plan.report(HOOK, Outcome::Skip);
            plan.notes.push(Note {
                warning: format!(
                    "{HOOK} is your own, so init leaves it alone; add this to it, to run migrations once per \
                     deploy, before containers restart:\n\n{PRE_DEPLOY_SNIPPET}"
                ),
                step: format!("Add the lines above to {HOOK}"),
            });
        }
    }
    Ok(())
}

/// Whether a pre-deploy hook looks at `KAMAL_COMMAND` for rollbacks (what `doctor` requires of it).
pub fn skips_rollbacks(hook: &str) -> bool {
    hook.contains("KAMAL_COMMAND") && hook.contains("rollback")
}

/// Whether a hook runs `db:prepare` with `--primary` in one command (lines continued with `\` joined).
fn runs_db_prepare(hook: &str) -> bool {
    let mut command = String::new();
    for line in hook.lines() {
        if command.is_empty() && line.trim_start().starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => command.push_str(head),
            None => {
                command.push_str(line);
                if command.contains("db:prepare") && command.contains("--primary") {
                    return true;
                }
                command.clear();
            }
        }
    }
    false
}

fn plan_entrypoint(app: &Path, plan: &mut Plan) -> Result<()> {
    const ENTRYPOINT: &str = "bin/docker-entrypoint";
    let Some(text) = read(app, ENTRYPOINT)? else {
        return Ok(());
    };
    match trim_entrypoint(&text) {
        Trim::Clean => plan.report(ENTRYPOINT, Outcome::Identical),
        Trim::Trimmed(after) => write(plan, ENTRYPOINT, Some(text), after),
        Trim::Unrecognised(line) => {
            plan.report(ENTRYPOINT, Outcome::Skip);
            plan.notes.push(Note {
                warning: format!(
                    "{ENTRYPOINT}:{line}: runs db:prepare in a form init does not recognise, so init leaves it \
                     alone; remove that step by hand (on every container's boot, migrations race; the \
                     pre-deploy hook runs them once per deploy)"
                ),
                step: format!("Remove db:prepare from {ENTRYPOINT}:{line}"),
            });
        }
    }
    Ok(())
}

/// The result of looking for the stock `db:prepare` block in an entrypoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trim {
    /// No `db:prepare` at all.
    Clean,
    /// The stock block was found; this is the file without it.
    Trimmed(String),
    /// `db:prepare` appears, but not in the stock block; the 1-based line.
    Unrecognised(usize),
}

/// Removes the block Rails generates (7.0 to 8.x):
/// ```sh
/// # If running the rails server then create or migrate existing database
/// if [ "${@: -2:1}" == "./bin/rails" ] && [ "${@: -1:1}" == "server" ]; then
///   ./bin/rails db:prepare
/// fi
/// ```
/// with its comment and one following blank line; anything else is left exactly as it was.
pub fn trim_entrypoint(text: &str) -> Trim {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let is = |i: usize, f: &dyn Fn(&str) -> bool| lines.get(i).is_some_and(|l| f(l.trim()));
    let mentions = lines.iter().position(|l| l.contains("db:prepare"));
    let Some(mention) = mentions else {
        return Trim::Clean;
    };
    for i in 0..lines.len() {
        let opens = is(i, &|l| {
            l.starts_with("if ")
                && l.ends_with("then")
                && l.contains("./bin/rails")
                && l.contains("server")
        });
        if !(opens && is(i + 1, &|l| l == "./bin/rails db:prepare") && is(i + 2, &|l| l == "fi")) {
            continue;
        }
        let start = if i > 0 && is(i - 1, &|l| l.starts_with('#') && l.contains("database")) {
            i - 1
        } else {
            i
        };
        let mut end = i + 3;
        // Keep the file's spacing: drop one blank line after the block only if one also precedes it.
        if is(end, &str::is_empty) && (start == 0 || is(start - 1, &str::is_empty)) {
            end += 1;
        }
        // Another db:prepare, before or after the block, is the user's own: report its line, edit nothing.
        let other = (0..lines.len())
            .filter(|j| !(start..end).contains(j))
            .find(|&j| lines[j].contains("db:prepare"));
        return match other {
            Some(other) => Trim::Unrecognised(other + 1),
            None => Trim::Trimmed(lines[..start].concat() + &lines[end..].concat()),
        };
    }
    Trim::Unrecognised(mention + 1)
}

/// Applies a plan (its summary is [`Plan::files`]).
pub fn apply(app: &Path, plan: &Plan) -> Result<()> {
    for change in &plan.changes {
        match change {
            Change::Rename { from, to } => {
                fs::rename(app.join(from), app.join(to))
                    .map_err(Error::io("moving aside", app.join(from)))?;
            }
            Change::Write {
                path,
                after,
                executable,
                ..
            } => {
                let full = app.join(path);
                if let Some(dir) = full.parent() {
                    fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
                }
                // Write beside and rename, so an interrupted init never leaves a half-written script.
                let tmp = full.with_extension("kamal-launcher-tmp");
                fs::write(&tmp, after).map_err(Error::io("writing", &tmp))?;
                let mode = if *executable { 0o755 } else { 0o644 };
                fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
                    .map_err(Error::io("setting permissions of", &tmp))?;
                fs::rename(&tmp, &full).map_err(Error::io("writing", &full))?;
            }
        }
    }
    Ok(())
}

/// The plan's writes as unified diffs: edits to existing files, and with `new_files` the files written where
/// none was (a replaced `bin/kamal` among them: what it was is kept, not changed).
pub fn diff(plan: &Plan, new_files: bool) -> String {
    let mut out = String::new();
    for change in &plan.changes {
        let Change::Write {
            path,
            before,
            after,
            ..
        } = change
        else {
            continue;
        };
        let (old, a) = match before {
            Some(before) => (before.as_str(), format!("a/{}", path.display())),
            None if new_files => ("", "/dev/null".to_string()),
            None => continue,
        };
        out.push_str(
            &similar::TextDiff::from_lines(old, after.as_str())
                .unified_diff()
                .context_radius(3)
                .header(&a, &format!("b/{}", path.display()))
                .to_string(),
        );
    }
    out
}

/// The `bin/kamal` shim for an app whose lockfile is `lockfile_name`.
pub fn shim(lockfile_name: &str) -> String {
    let functions = PLATFORM_FUNCTIONS
        .strip_prefix("# shellcheck shell=sh\n")
        .unwrap_or(PLATFORM_FUNCTIONS);
    SHIM.replace("@LOCKFILE@", lockfile_name)
        .replace("@LAYOUT@", crate::cache::LAYOUT)
        .replace("@PLATFORM_FUNCTIONS@\n", functions)
}

/// The shim's source; `@LOCKFILE@`, `@LAYOUT@` and `@PLATFORM_FUNCTIONS@` are filled in by [`shim`].
const SHIM: &str = include_str!("shim.sh");
/// `kl_platforms`, shared with the packaging scripts.
const PLATFORM_FUNCTIONS: &str = include_str!("platform.sh");

/// The pre-deploy hook: `db:prepare` once, on the primary host, in the new image, before containers restart.
pub const PRE_DEPLOY: &str = r#"#!/bin/sh
# Runs `bin/rails db:prepare` once, on the primary host, with the image being deployed, before any container
# is restarted: migrations never race between containers, and a failing migration stops the deploy.
# Written by `kamal-launcher init`.
set -e

if [ "${KAMAL_COMMAND:-}" = "rollback" ]; then
  echo "pre-deploy: rollback, not running db:prepare" >&2
  exit 0
fi

if [ -z "${KAMAL_VERSION:-}" ]; then
  echo "pre-deploy: KAMAL_VERSION is not set; refusing to run db:prepare without knowing which image to use" >&2
  exit 1
fi

app=$(CDPATH= cd -P "$(dirname "$0")/../.." && pwd -P)
set -- app exec --primary --version="$KAMAL_VERSION"
if [ -n "${KAMAL_DESTINATION:-}" ]; then
  set -- "$@" -d "$KAMAL_DESTINATION"
elif ls "$app"/config/deploy.*.yml >/dev/null 2>&1; then
  echo "pre-deploy: this app has destinations (config/deploy.*.yml) but KAMAL_DESTINATION is not set; refusing to guess" >&2
  exit 1
fi

exec "$app/bin/kamal" "$@" "bin/rails db:prepare"
"#;

/// What to add to a pre-deploy hook of the user's own: lines short enough for an 80-column terminal.
const PRE_DEPLOY_SNIPPET: &str = r#"    if [ "${KAMAL_COMMAND:-}" != "rollback" ]; then
      bin/kamal app exec --primary --version="$KAMAL_VERSION" \
        ${KAMAL_DESTINATION:+-d "$KAMAL_DESTINATION"} "bin/rails db:prepare"
    fi"#;

#[cfg(test)]
mod tests {
    use super::*;

    const RAILS_8: &str = "#!/bin/bash -e\n\n# Enable jemalloc for reduced memory usage and latency.\nif [ -z \"${LD_PRELOAD+x}\" ]; then\n    LD_PRELOAD=$(find /usr/lib -name libjemalloc.so.2 -print -quit)\n    export LD_PRELOAD\nfi\n\n# If running the rails server then create or migrate existing database\nif [ \"${@: -2:1}\" == \"./bin/rails\" ] && [ \"${@: -1:1}\" == \"server\" ]; then\n  ./bin/rails db:prepare\nfi\n\nexec \"${@}\"\n";

    #[test]
    fn trims_exactly_the_stock_block() {
        let Trim::Trimmed(after) = trim_entrypoint(RAILS_8) else {
            panic!("stock Rails 8 entrypoint not recognised")
        };
        assert_eq!(
            after,
            "#!/bin/bash -e\n\n# Enable jemalloc for reduced memory usage and latency.\nif [ -z \"${LD_PRELOAD+x}\" ]; then\n    LD_PRELOAD=$(find /usr/lib -name libjemalloc.so.2 -print -quit)\n    export LD_PRELOAD\nfi\n\nexec \"${@}\"\n"
        );
        assert_eq!(trim_entrypoint(&after), Trim::Clean);
        let rails_71 = "#!/bin/bash -e\n\n# If running the rails server then create or migrate existing database\nif [ \"${1}\" == \"./bin/rails\" ] && [ \"${2}\" == \"server\" ]; then\n  ./bin/rails db:prepare\nfi\n\nexec \"${@}\"\n";
        assert_eq!(
            trim_entrypoint(rails_71),
            Trim::Trimmed("#!/bin/bash -e\n\nexec \"${@}\"\n".into())
        );
        let rails_70 = "#!/bin/bash -e\n\n# If running the rails server then create or migrate existing database\nif [ \"${*}\" == \"./bin/rails server\" ]; then\n  ./bin/rails db:prepare\nfi\n\nexec \"${@}\"\n";
        assert!(matches!(trim_entrypoint(rails_70), Trim::Trimmed(_)));
    }

    #[test]
    fn other_forms_are_reported_not_edited() {
        let custom = "#!/bin/sh\nbundle exec rails db:prepare && exec \"$@\"\n";
        assert_eq!(trim_entrypoint(custom), Trim::Unrecognised(2));
        let twice = RAILS_8.replace("exec \"${@}\"", "./bin/rails db:prepare\nexec \"${@}\"");
        assert_eq!(trim_entrypoint(&twice), Trim::Unrecognised(14));
        let before = RAILS_8.replacen(
            "#!/bin/bash -e\n",
            "#!/bin/bash -e\nbin/rails db:prepare\n",
            1,
        );
        assert_eq!(trim_entrypoint(&before), Trim::Unrecognised(2));
        assert_eq!(trim_entrypoint("#!/bin/sh\nexec \"$@\"\n"), Trim::Clean);
    }

    #[test]
    fn the_snippet_counts_as_running_db_prepare_once_pasted() {
        let pasted = format!("#!/bin/sh\nset -e\n{PRE_DEPLOY_SNIPPET}\n");
        assert!(runs_db_prepare(&pasted) && skips_rollbacks(&pasted));
        assert!(PRE_DEPLOY_SNIPPET.lines().all(|l| l.len() <= 79));
        assert!(!runs_db_prepare(
            "# bin/kamal app exec --primary \\\n# \"bin/rails db:prepare\"\n"
        ));
        assert!(!runs_db_prepare(
            "bin/kamal app exec --primary \"bin/rails db:migrate\"\n"
        ));
    }

    #[test]
    fn plan_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path();
        fs::create_dir_all(app.join("bin")).unwrap();
        fs::write(
            app.join("bin/kamal"),
            "#!/usr/bin/env ruby\nrequire \"bundler/setup\"\n",
        )
        .unwrap();
        fs::write(app.join("bin/docker-entrypoint"), RAILS_8).unwrap();
        let first = plan(app, "Gemfile.lock").unwrap();
        assert_eq!(first.changes.len(), 4, "{first:?}");
        assert!(diff(&first, false).contains("-  ./bin/rails db:prepare"));
        assert!(!diff(&first, false).contains("+++ b/bin/kamal"));
        assert!(diff(&first, true).contains("+++ b/bin/kamal"));
        apply(app, &first).unwrap();
        assert!(app.join("bin/kamal.bundler").is_file());
        let second = plan(app, "Gemfile.lock").unwrap();
        assert!(
            second.changes.is_empty() && second.notes.is_empty(),
            "{second:?}"
        );
    }
}
