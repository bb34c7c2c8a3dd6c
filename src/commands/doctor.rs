//! `doctor`: gathers what the checks need (nothing here may fail the command early) and prints them.

use std::io::Write;

use crate::cache::Cache;
use crate::config::Options;
use crate::doctor::{Check, RootGem, RubyRequirement, Status};
use crate::error::{Error, Result};
use crate::fetch;
use crate::locate::Located;
use crate::lockfile::Lockfile;
use crate::pinned::{self, Decision};
use crate::pipeline::{env_key, fetch_options, parse_lockfile, read_lockfile, requests, select};
use crate::platform::{self, Platform};
use crate::ruby;
use crate::settings::BundlerSettings;
use crate::sources;
use crate::ui::{Level, Ui};

/// `doctor`: gathers what the checks need (nothing here may fail the command early) and prints them.
pub fn run(
    located: Option<&Located>,
    lockfile_problem: Option<Error>,
    opts: &Options,
    cache: &Cache,
) -> Result<()> {
    let path_var = std::env::var_os("PATH");
    let ruby = ruby::find(opts.ruby.as_deref(), path_var.as_deref()).map_err(|e| e.to_string());
    let untrusted =
        crate::trust::check(cache.dir(), crate::cache::LAYOUT, crate::cache::TOP_LEVEL).err();
    // Nothing is read from, run from or written to a cache another user could change: the rest is gathered with
    // a private, empty one (and not at all without one).
    let scratch = untrusted.as_ref().and_then(|_| Scratch::new());
    let usable = untrusted.is_none() || scratch.is_some();
    let mut context = crate::doctor::Context {
        app: located.map(Located::app_dir),
        lockfile: Check::fail(
            "Lockfile",
            lockfile_problem.map_or_else(String::new, |e| e.to_string()),
            if crate::invocation::flags_are_ours() {
                "run this in the app's directory, or pass --lockfile PATH"
            } else {
                "run this in the app's directory, or set BUNDLE_GEMFILE=path/to/Gemfile"
            },
        ),
        ruby: ruby.clone(),
        root: None,
        sources: Vec::new(),
        installed: false,
        offline: opts.offline,
        cache,
        untrusted: untrusted.as_ref(),
        pin: None,
    };
    let cache = scratch.as_ref().map_or(cache, |s| &s.cache);
    if let Some(located) = located.filter(|_| usable) {
        let gathered = (|| -> Result<()> {
            let text = read_lockfile(located)?;
            let lock = parse_lockfile(located, &text)?;
            let settings = BundlerSettings::load(located.app_dir(), std::env::vars());
            context.pin = Some(pin_facts(located, &lock, &settings, opts, cache));
            let local = match &ruby {
                Ok(r) => Platform::parse(&r.info(cache)?.platform),
                Err(_) => platform::machine_platform(),
            };
            let force_ruby = settings.flag("force_ruby_platform");
            let closure = select(located, &lock, &opts.gem, &local, force_ruby)?;
            let root = &closure.gems[closure.root];
            context.lockfile = Check::pass(
                "Lockfile",
                format!(
                    "{} locks {} {}",
                    located.path.display(),
                    root.spec.name,
                    root.spec.version
                ),
            );
            let requests = requests(located, &lock, &closure, &settings)?;
            // The root gem's Ruby requirement: installed, else downloaded (by the lockfile's checksum or the
            // cached index's), else what its source's index says (read below).
            let downloaded = root
                .sha256
                .or_else(|| {
                    let req = requests.iter().find(|r| r.name == root.spec.name)?;
                    fetch::known_checksums(cache, &settings, std::slice::from_ref(req), true)
                        .pop()?
                        .ok()
                })
                .and_then(|sha| fetch::verified_download(cache, &sha));
            let mut requirement = match downloaded {
                Some(gem) => RubyRequirement::Downloaded(gem),
                None => RubyRequirement::Unknown,
            };
            if let Ok(r) = &ruby {
                let info = r.info(cache)?;
                let sourced = sources::resolve(located.app_dir(), &lock, &closure)?;
                let key = env_key(&lock, &closure, &info, &sourced);
                let env = cache.env(&key);
                context.installed = crate::env::check(&env, crate::env::Depth::Full).is_ok();
                let spec = format!("specifications/{}.gemspec", root.spec.full_name());
                if let Some(unit) = crate::env::units(&env)
                    .into_iter()
                    .find(|unit| unit.join(&spec).is_file())
                    .filter(|_| context.installed)
                {
                    requirement = RubyRequirement::Installed(unit.join(&spec));
                }
            }
            context.root = Some(RootGem {
                shown: format!("{} {}", root.spec.name, root.spec.version),
                ruby: requirement,
            });
            if !context.installed && !opts.offline {
                let mut remotes: Vec<&str> = requests
                    .iter()
                    .flat_map(|r| r.remotes.iter().map(String::as_str))
                    .collect();
                remotes.sort_unstable();
                remotes.dedup();
                context.sources = remotes
                    .iter()
                    .filter_map(|remote| {
                        let from: Vec<&fetch::GemRequest> = requests
                            .iter()
                            .filter(|r| r.remotes.iter().any(|r| r == remote))
                            .collect();
                        // The root gem when it comes from there, else the first gem that does.
                        let gem = from
                            .iter()
                            .find(|r| r.name == root.spec.name)
                            .or(from.first())?;
                        let locked = from.iter().all(|r| r.expected.is_some());
                        Some(fetch::check_source(cache, &settings, remote, gem, locked))
                    })
                    .collect();
            }
            Ok(())
        })();
        if let Err(e) = gathered {
            context.lockfile = Check::fail(
                "Lockfile",
                e.to_string(),
                e.hint()
                    .unwrap_or_else(|| "fix the lockfile (or run `bundle lock`)".into()),
            );
        }
    }
    let checks = crate::doctor::run(&context);
    let stdout = std::io::stdout();
    let tty = std::io::IsTerminal::is_terminal(&stdout);
    let color = crate::ui::color_wanted(tty, &|k| std::env::var_os(k));
    // Wrapped to the terminal's width on a terminal (or when COLUMNS says how wide it is); a log gets one line
    // per check, for grep.
    let width = (tty || std::env::var_os("COLUMNS").is_some()).then(crate::ui::width);
    let mut out = stdout.lock();
    for check in &checks {
        let _ = out.write_all(render(check, color, width).as_bytes());
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed > 0 {
        return Err(Error::Doctor(failed));
    }
    let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
    let _ = match warned {
        0 => writeln!(out, "all {} checks passed", checks.len()),
        _ => writeln!(
            out,
            "{} passed, {}: see the {} above",
            crate::ui::count(checks.len() - warned, "check", "checks"),
            crate::ui::count(warned, "warning", "warnings"),
            if warned == 1 { "hint" } else { "hints" }
        ),
    };
    Ok(())
}

/// One check as printed: its mark, name and detail, then its fix under the name. Plain marks are words of one
/// width (`ok`, `warn`, `FAIL`), coloured ones a symbol; either way the fix starts where the name does, and wrapped
/// lines start under the text they continue.
fn render(check: &Check, color: bool, width: Option<usize>) -> String {
    let (mark, code) = match check.status {
        Status::Pass => (if color { "✓" } else { "ok" }, "32"),
        Status::Warn => (if color { "!" } else { "warn" }, "33"),
        Status::Fail => (if color { "✗" } else { "FAIL" }, "31"),
    };
    let mark_width = if color { 1 } else { 4 };
    let paint = |text: &str, code: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let indent = mark_width + 1;
    let mut text = String::new();
    let head = format!("{}: ", check.name);
    let lines = wrap(&check.detail, indent + head.chars().count(), indent, width);
    text.push_str(&format!(
        "{}{} {head}{}\n",
        paint(mark, code),
        " ".repeat(mark_width - mark.chars().count()),
        lines.join("\n")
    ));
    if let Some(fix) = &check.fix {
        let label = "hint: ";
        let lines = wrap(fix, indent + label.len(), indent + label.len(), width);
        text.push_str(&format!(
            "{}{}{}\n",
            " ".repeat(indent),
            paint(label.trim_end(), "36") + " ",
            lines.join("\n")
        ));
    }
    text
}

/// `text` in lines that fit `width` columns (none: one line), the first starting at column `first`, the others
/// indented by `indent`. A command in backquotes is never broken (it is copied from here), and a word longer than a
/// line (a path) overflows rather than being cut.
fn wrap(text: &str, first: usize, indent: usize, width: Option<usize>) -> Vec<String> {
    let Some(width) = width else {
        return vec![text.to_string()];
    };
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut column = first;
    for (i, word) in words(text).into_iter().enumerate() {
        let len = word.chars().count();
        if i > 0 && column + 1 + len > width {
            lines.push(std::mem::replace(&mut line, " ".repeat(indent)));
            column = indent;
        } else if i > 0 {
            line.push(' ');
            column += 1;
        }
        line.push_str(word);
        column += len;
    }
    lines.push(line);
    lines
}

/// The words of `text` between single spaces, a backquoted span (`bundle add …`) counting as one.
fn words(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '`' => quoted = !quoted,
            ' ' if !quoted => {
                words.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    words.push(&text[start..]);
    words
}

/// A private, empty cache in the system's temporary directory, removed when dropped.
struct Scratch {
    cache: Cache,
}

impl Scratch {
    fn new() -> Option<Scratch> {
        use std::os::unix::fs::DirBuilderExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "kamal-launcher-doctor-{}-{nanos:08x}",
            std::process::id()
        ));
        // Not recursive: a directory someone planted under that name makes this fail rather than be used.
        std::fs::DirBuilder::new().mode(0o700).create(&dir).ok()?;
        Some(Scratch {
            cache: Cache::new(dir),
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.cache.finish();
        let _ = std::fs::remove_dir_all(self.cache.dir());
    }
}

/// What `doctor` reports of the pin. Like every command, doctor first hands over to the pinned version; when
/// that fails, it goes on as this binary and reports why.
fn pin_facts(
    located: &Located,
    lock: &Lockfile,
    settings: &BundlerSettings,
    opts: &Options,
    cache: &Cache,
) -> crate::doctor::PinFacts {
    let pin = pinned::pin(lock);
    let from = |p| pinned::Pinned {
        cache,
        settings,
        lock,
        pin: p,
    };
    let decision = pinned::decide(pin.as_ref(), &|k| std::env::var_os(k));
    let this_machine = match (&pin, decision) {
        (None, _) => Err("nothing is pinned".to_string()),
        (Some(p), Decision::HandOver { .. }) => {
            let quiet = Ui::new(Level::Quiet);
            match from(p).ensure(fetch_options(opts, 1), &quiet) {
                Ok(binary) => {
                    cache.finish();
                    Err(pinned::hand_over(&binary).to_string())
                }
                Err(e) => Err(e.to_string()),
            }
        }
        (Some(p), _) => from(p).obtainable(opts.offline).map_err(|e| e.to_string()),
    };
    crate::doctor::PinFacts {
        lockfile: located.path.file_name().map_or_else(
            || "the lockfile".into(),
            |n| n.to_string_lossy().into_owned(),
        ),
        version: pin.as_ref().map(|p| p.version.clone()),
        variants: pin
            .iter()
            .flat_map(|p| p.variants.iter().map(|s| s.platform.to_string()))
            .collect(),
        lock_platforms: lock.platforms.iter().map(|p| p.to_string()).collect(),
        this_machine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixes_start_under_the_name_and_commands_are_never_broken() {
        let check = Check::fail(
            "Gem source",
            "http://127.0.0.1:1/ answered HTTP 404 Not Found for info/kamal",
            "pin it with `bundle add kamal-launcher --group development --require false` now",
        );
        assert_eq!(
            render(&check, false, Some(40)),
            "FAIL Gem source: http://127.0.0.1:1/\n     answered HTTP 404 Not Found for\n     info/kamal\n     \
             hint: pin it with\n           `bundle add kamal-launcher --group development --require false`\n           now\n"
        );
        // Colour: a one-column mark, so the fix starts two columns in; no width: one line each.
        let coloured = render(&check, true, None);
        assert_eq!(coloured.lines().count(), 2, "{coloured}");
        assert!(
            coloured
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("  \x1b[36mhint:"),
            "{coloured}"
        );
        assert_eq!(
            words("a `b c` d"),
            ["a", "`b c`", "d"],
            "a backquoted span is one word"
        );
    }
}
