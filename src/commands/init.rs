//! `init`: adopt the launcher in the app (the changes themselves are planned and applied by `crate::init`).
//!
//! What it prints is a story, in the order a user reads it: one line per file in the Rails generators' words
//! (`create`, `replace`, `update`, `identical`, `keep`, `skip`), then the warnings, then "Next:" with what is left
//! to do, last, where a short terminal still shows it. Diffs are shown only when asked: `--dry-run` shows edits to
//! existing files, `--diff` every change; they go to stdout (they are the result), the story to stderr.

use std::io::{IsTerminal, Write};

use crate::closure::ClosureError;
use crate::error::{Error, Result};
use crate::init::{self, Outcome, Plan};
use crate::pinned;
use crate::pipeline::Session;
use crate::ui::{self, Ui};

/// Plans the changes, tells what they are (`dry_run`: only tells), shows diffs (`--dry-run`: of edits;
/// `diff`: of everything), and applies them.
pub fn run(s: &Session<'_, '_>, dry_run: bool, diff: bool) -> Result<()> {
    let ui = s.ui;
    // bin/kamal runs the lockfile's kamal: without one, every file init writes would be for nothing. Refused as
    // `exec` refuses it, in the same words.
    if s.lock.specs_named(&s.opts.gem).next().is_none() {
        return Err(Error::Closure {
            path: s.located.path.clone(),
            source: Box::new(ClosureError::RootMissing {
                root: s.opts.gem.clone(),
            }),
        });
    }
    let lockfile_name = s
        .located
        .path
        .file_name()
        .map_or("Gemfile.lock".into(), |n| n.to_string_lossy().into_owned());
    let app = s.located.app_dir();
    let plan = init::plan(app, &lockfile_name)?;
    let pinned = pinned::pin(s.lock).is_some();

    let diffs = init::diff(&plan, diff);
    if (dry_run || diff) && !diffs.is_empty() {
        let color = ui::color_wanted(std::io::stdout().is_terminal(), &|k| std::env::var_os(k));
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) is no failure of init's.
        let _ = out
            .write_all(colored_diff(&diffs, color).as_bytes())
            .and_then(|()| out.flush());
    }
    if !dry_run {
        init::apply(app, &plan)?;
    } else if !diffs.is_empty() {
        // The diffs are on stdout, the story on stderr: a blank line between them on a terminal.
        ui.summary("");
    }

    for report in &plan.files {
        ui.summary(&status_line(ui, &plan, report, dry_run));
    }
    let mut warnings = Vec::new();
    if !pinned {
        warnings.push(format!(
            "{lockfile_name} pins no kamal-launcher: bin/kamal works only where it is installed; pin it with \
             `bundle add kamal-launcher --group development --require false`"
        ));
    }
    warnings.extend(plan.notes.iter().map(|n| n.warning.clone()));
    if !warnings.is_empty() {
        ui.summary("");
        for warning in &warnings {
            ui.warn(warning);
        }
    }

    ui.summary("");
    if plan.is_empty() {
        ui.summary(&if plan.notes.is_empty() {
            format!("{} is set up: nothing to change", app.display())
        } else {
            format!(
                "{}: nothing to change; see the warnings above",
                app.display()
            )
        });
    } else if dry_run {
        ui.summary("dry run: nothing written; `kamal-launcher init` writes it");
        let new_files = plan
            .files
            .iter()
            .any(|f| matches!(f.outcome, Outcome::Create | Outcome::Replace { .. }));
        if new_files && !diff {
            ui.summary(&format!(
                "  {} `kamal-launcher init --dry-run --diff` shows the new files in full",
                ui.paint("hint:", "36")
            ));
        }
    }
    if dry_run {
        return Ok(());
    }
    let next = next_steps(&plan, pinned, &lockfile_name);
    if !next.is_empty() {
        if plan.is_empty() {
            ui.summary("");
        }
        ui.summary(&ui.paint("Next:", "39"));
        for (n, step) in next.iter().enumerate() {
            ui.summary(&format!("  {}. {step}", n + 1));
        }
    }
    Ok(())
}

/// `      create  bin/kamal`: the status right-aligned in 12 columns, as Rails' generators print it.
fn status_line(ui: &Ui, plan: &Plan, report: &init::Report, dry_run: bool) -> String {
    // A new file's size, in a dry run: the one line that stands for its diff.
    let lines = |path: &std::path::Path| {
        let text = plan.changes.iter().find_map(|c| match c {
            init::Change::Write { path: p, after, .. } if p == path => Some(after),
            _ => None,
        });
        let n = text.map_or(0, |t| t.lines().count());
        format!("{n} {}", if n == 1 { "line" } else { "lines" })
    };
    let path = report.path.display();
    let (status, color, detail) = match &report.outcome {
        Outcome::Create => ("create", "32", dry_run.then(|| lines(&report.path))),
        Outcome::Replace { kept } => (
            "replace",
            "32",
            Some(format!(
                "{}old one kept as {}",
                if dry_run {
                    format!("{}; ", lines(&report.path))
                } else {
                    String::new()
                },
                kept.display()
            )),
        ),
        Outcome::Update { added, removed } => ("update", "32", Some(line_counts(*added, *removed))),
        Outcome::Identical => ("identical", "34", None),
        Outcome::Keep(why) => ("keep", "34", Some((*why).to_string())),
        Outcome::Skip => (
            "skip",
            "33",
            Some("yours; see the warning below".to_string()),
        ),
    };
    let label = format!(
        "{}{}",
        " ".repeat(12usize.saturating_sub(status.len())),
        ui.paint(status, color)
    );
    match detail {
        Some(detail) => format!("{label}  {path} ({detail})"),
        None => format!("{label}  {path}"),
    }
}

/// `-5 lines`, `+1 line`, `+3 -2 lines`.
fn line_counts(added: usize, removed: usize) -> String {
    let mut parts = Vec::new();
    if added > 0 {
        parts.push(format!("+{added}"));
    }
    if removed > 0 {
        parts.push(format!("-{removed}"));
    }
    let unit = if added + removed == 1 {
        "line"
    } else {
        "lines"
    };
    format!("{} {unit}", parts.join(" "))
}

/// What is left to do, in the order to do it: try it, what init left to the user, pin the launcher, commit.
fn next_steps(plan: &Plan, pinned: bool, lockfile_name: &str) -> Vec<String> {
    let mut steps = Vec::new();
    if !plan.is_empty() {
        steps.push("Try it: bin/kamal version".to_string());
    }
    steps.extend(plan.notes.iter().map(|n| n.step.clone()));
    if !pinned {
        steps.push(format!(
            "Pin the launcher, so that bin/kamal can fetch it on any machine:\n       {}",
            pinned::PIN_COMMAND
        ));
    }
    let gemfile = if lockfile_name == "gems.locked" {
        "gems.rb"
    } else {
        "Gemfile"
    };
    match (plan.is_empty(), pinned) {
        (false, true) => steps.push("Review the changes (git diff) and commit them".to_string()),
        (false, false) => steps.push(format!(
            "Review the changes (git diff) and commit them with {gemfile} and {lockfile_name}"
        )),
        (true, false) => steps.push(format!("Commit {gemfile} and {lockfile_name}")),
        (true, true) => {}
    }
    steps
}

/// `text`, a unified diff, with its headers bold, hunks cyan, additions green and removals red when `color`.
fn colored_diff(text: &str, color: bool) -> String {
    if !color {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        let sgr = if body.starts_with("+++ ") || body.starts_with("--- ") {
            "1"
        } else if body.starts_with("@@") {
            "36"
        } else if body.starts_with('+') {
            "32"
        } else if body.starts_with('-') {
            "31"
        } else {
            ""
        };
        if sgr.is_empty() {
            out.push_str(line);
        } else {
            out.push_str(&ui::painted(body, sgr, true));
            out.push_str(end);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_counts_read_as_words() {
        assert_eq!(line_counts(0, 5), "-5 lines");
        assert_eq!(line_counts(1, 0), "+1 line");
        assert_eq!(line_counts(3, 2), "+3 -2 lines");
    }

    #[test]
    fn diffs_are_coloured_only_when_asked() {
        let diff = "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n keep\n-old\n+new\n";
        assert_eq!(colored_diff(diff, false), diff);
        assert_eq!(
            colored_diff(diff, true),
            "\x1b[1m--- a/x\x1b[0m\n\x1b[1m+++ b/x\x1b[0m\n\x1b[36m@@ -1,2 +1,2 @@\x1b[0m\n keep\n\x1b[31m-old\x1b[0m\n\x1b[32m+new\x1b[0m\n"
        );
    }
}
