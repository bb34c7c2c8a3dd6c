//! The command line: parses arguments (clap, and a fast path for `exec`), resolves the options, finds and parses
//! the lockfile, and hands the [`Session`] to the command in `crate::commands`. No step's logic lives here.
//!
//! Everything a user sees from here is in the launcher's words: help that fits the terminal, usage errors with a
//! `hint:`, values checked with messages naming the flag or the variable they came from, and advice that names
//! what works where the user is (`crate::invocation`).

use std::ffi::OsString;
use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::cache::{self, Cache};
use crate::commands::{self, cache::Maintenance};
use crate::config::{self, FileConfig, Options};
use crate::error::{self, Error, Result};
use crate::invocation::{self, Invocation};
use crate::locate;
use crate::pinned;
use crate::pipeline::{self, Session};
use crate::settings::BundlerSettings;
use crate::ui::{self, Level, Ui};

// Examples fit 60 columns: clap wraps text, and a wrapped command reads as two.
const EXAMPLES: &str = "\
Examples:
  kamal-launcher exec -- version     # the locked kamal
  kamal-launcher exec -- deploy -d staging
  kamal-launcher install             # CI warm-up
  kamal-launcher plan --json         # what it installs
  ln -s \"$(command -v kamal-launcher)\" ~/.local/bin/kamal
  kamal version                      # through the link";

/// Runs the exact kamal locked in your Gemfile.lock, installed in isolation from the rest of the bundle.
#[derive(Debug, Parser)]
#[command(
    name = "kamal-launcher",
    version,
    after_help = EXAMPLES,
    arg_required_else_help = true
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command accepts (`bin/kamal` passes `--lockfile` to all of them); each command's help offers
/// only those that mean something to it ([`OFFERED`]). Their variables are read in [`resolve`], so that a bad
/// value is named as coming from the variable.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
struct Global {
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help = "The lockfile [default: the nearest Gemfile.lock]\n[env: BUNDLE_GEMFILE, naming its Gemfile]"
    )]
    lockfile: Option<PathBuf>,
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        help = "The gem to install and run [default: kamal]\n[env: KAMAL_LAUNCHER_GEM]"
    )]
    gem: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        help = "Its executable to run [default: the gem's name]\n[env: KAMAL_LAUNCHER_EXE]"
    )]
    exe: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "RUBY",
        help = "The Ruby to use [default: ruby on PATH]\n[env: KAMAL_LAUNCHER_RUBY]"
    )]
    ruby: Option<OsString>,
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help = "The cache [default: ~/.cache/kamal-launcher]\n[env: KAMAL_LAUNCHER_CACHE_DIR]"
    )]
    cache_dir: Option<PathBuf>,
    #[arg(
        long,
        global = true,
        help = "Never use the network\n[env: KAMAL_LAUNCHER_OFFLINE=1]"
    )]
    offline: bool,
    #[arg(
        long,
        global = true,
        help = "Install gems with no known checksum, unverified\n[env: KAMAL_LAUNCHER_ALLOW_UNVERIFIED=1]"
    )]
    allow_unverified: bool,
    #[arg(
        long,
        global = true,
        value_name = "N",
        value_parser = jobs_flag,
        help = "Parallel downloads and builds [default: one per CPU]\n[env: KAMAL_LAUNCHER_JOBS]"
    )]
    jobs: Option<NonZeroUsize>,
    /// Say what is happening, even off a terminal
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Only errors and warnings
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
}

/// Every global option, by clap id.
const ALL: &[&str] = &[
    "lockfile",
    "gem",
    "exe",
    "ruby",
    "cache_dir",
    "offline",
    "allow_unverified",
    "jobs",
    "verbose",
    "quiet",
];

/// The global options each command offers in its help and completions (by command path). The others are
/// accepted and mean nothing there.
const OFFERED: &[(&str, &[&str])] = &[
    ("", ALL),
    ("exec", ALL),
    (
        "install",
        &[
            "lockfile",
            "gem",
            "ruby",
            "cache_dir",
            "offline",
            "allow_unverified",
            "jobs",
            "verbose",
            "quiet",
        ],
    ),
    ("init", &["lockfile", "verbose", "quiet"]),
    (
        "doctor",
        &["lockfile", "gem", "ruby", "cache_dir", "offline"],
    ),
    (
        "plan",
        &[
            "lockfile",
            "gem",
            "ruby",
            "cache_dir",
            "offline",
            "verbose",
            "quiet",
        ],
    ),
    ("cache key", &["lockfile", "gem"]),
    ("cache dir", &["lockfile", "cache_dir"]),
    ("cache prune", &["lockfile", "cache_dir", "quiet"]),
    ("cache clean", &["lockfile", "cache_dir", "quiet"]),
];

#[derive(Debug, Subcommand)]
enum Command {
    /// Install kamal's locked closure if needed, then run kamal
    #[command(
        after_help = "Examples:\n  kamal-launcher exec -- version\n  kamal-launcher exec -- deploy -d staging"
    )]
    Exec {
        /// kamal's arguments, passed as they are
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<OsString>,
    },
    /// Install kamal's locked closure and run nothing (CI warm-up)
    #[command(
        after_help = "Examples:\n  kamal-launcher install\n  kamal-launcher install --lockfile path/to/Gemfile.lock"
    )]
    Install,
    /// Set up this app: bin/kamal, the pre-deploy hook, the entrypoint
    #[command(
        after_help = "Examples:\n  kamal-launcher init --dry-run          # what would change; edits as diffs\n  kamal-launcher init --dry-run --diff   # new files in full too\n  kamal-launcher init"
    )]
    Init {
        /// Show what would change (edits to existing files as unified diffs) and write nothing
        #[arg(long)]
        dry_run: bool,
        /// Show every change as a unified diff, new files included
        #[arg(long)]
        diff: bool,
    },
    /// Check this machine and app for what a deploy needs
    #[command(after_help = "Examples:\n  kamal-launcher doctor\n  kamal-launcher doctor --offline")]
    Doctor,
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  kamal-launcher completions bash \\\n  >~/.local/share/bash-completion/completions/kamal-launcher\n  kamal-launcher completions zsh \\\n  >\"${fpath[1]}/_kamal-launcher\"\n  kamal-launcher completions fish \\\n  >~/.config/fish/completions/kamal-launcher.fish"
    )]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Inspect and maintain the cache (CI: `cache key`, `cache dir`)
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Show what would be installed, and from where
    #[command(
        after_help = "Examples:\n  kamal-launcher plan\n  kamal-launcher plan --json --offline"
    )]
    Plan {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
        /// Plan for another platform (e.g. aarch64-linux, arm64-darwin-23) instead of this Ruby's
        #[arg(long, value_name = "PLATFORM")]
        platform: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Print a key for CI caches: it changes when what `install` puts there does
    #[command(after_help = "Examples:\n  key=$(kamal-launcher cache key)   # the CI cache's key")]
    Key,
    /// Print the directory to save and restore between CI runs
    #[command(after_help = "Examples:\n  dir=$(kamal-launcher cache dir)   # what CI saves")]
    Dir,
    /// Remove what was not used recently, and installed gems nothing uses
    #[command(
        after_help = "Examples:\n  kamal-launcher cache prune --dry-run\n  kamal-launcher cache prune --older-than 7"
    )]
    Prune {
        /// Remove what was last used longer ago than this: days (7), or weeks (2w)
        #[arg(long, value_name = "DAYS", default_value = "30", value_parser = days)]
        older_than: u64,
        /// Say what would be removed, and remove nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove everything but what a running kamal uses
    #[command(
        after_help = "Examples:\n  kamal-launcher cache clean --dry-run\n  kamal-launcher cache clean"
    )]
    Clean {
        /// Say what would be removed, and remove nothing
        #[arg(long)]
        dry_run: bool,
    },
}

/// The parser: clap's, from [`Cli`], wrapping help to the terminal (up to 100 columns, where lines still read
/// well), each command offering only the global options that mean something to it.
fn command() -> clap::Command {
    use clap::builder::styling::{AnsiColor, Effects, Styles};
    let mut cmd = Cli::command()
        .term_width(ui::width().min(100))
        // clap's labels in the launcher's colours: `error:` bold red, `hint:` (clap's `tip:`) bold cyan.
        .styles(Styles::styled().valid(AnsiColor::Cyan.on_default() | Effects::BOLD));
    // Globals are copied into each command when it is built; hide them afterwards, where they do not apply.
    cmd.build();
    offer_only_what_applies(cmd, "")
}

fn offer_only_what_applies(cmd: clap::Command, path: &str) -> clap::Command {
    let offered = OFFERED
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(&[][..], |(_, offered)| offered);
    cmd.mut_args(|arg| {
        let id = arg.get_id().as_str();
        if arg.is_global_set() && !offered.contains(&id) {
            arg.hide(true)
        } else {
            arg
        }
    })
    .mut_subcommands(|sub| {
        // clap's own words for it say "subcommand(s)".
        let sub = if sub.get_name() == "help" {
            sub.about("Print the help of a command")
        } else {
            sub
        };
        let path = if path.is_empty() {
            sub.get_name().to_string()
        } else {
            format!("{path} {}", sub.get_name())
        };
        offer_only_what_applies(sub, &path)
    })
}

/// `--jobs N`: a whole number, 1 or more.
fn jobs_flag(text: &str) -> std::result::Result<NonZeroUsize, String> {
    jobs(text).ok_or_else(|| JOBS_RULE.to_string())
}

const JOBS_RULE: &str = "the number of parallel downloads and builds is a whole number, 1 or more";

fn jobs(text: &str) -> Option<NonZeroUsize> {
    text.trim()
        .parse::<usize>()
        .ok()
        .and_then(NonZeroUsize::new)
}

/// `--older-than`: days (`30`, `30d`) or weeks (`2w`).
fn days(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let (number, per_unit) = match text.strip_suffix(['w', 'W']) {
        Some(weeks) => (weeks, 7),
        None => (text.strip_suffix(['d', 'D']).unwrap_or(text), 1),
    };
    number
        .trim()
        .parse::<u64>()
        .map(|n| n.saturating_mul(per_unit))
        .map_err(|_| "give an age in days, as 30, or in weeks, as 2w".to_string())
}

/// Every option resolved: flags, then `KAMAL_LAUNCHER_*` variables, then the app's and the user's files.
fn resolve(g: &Global, file: FileConfig, cwd: &Path) -> Result<Options> {
    Ok(Options {
        gem: g
            .gem
            .clone()
            .or(env_text("KAMAL_LAUNCHER_GEM")?)
            .or(file.gem)
            .unwrap_or_else(|| "kamal".to_string()),
        exe: g
            .exe
            .clone()
            .or(env_text("KAMAL_LAUNCHER_EXE")?)
            .or(file.exe),
        ruby: g
            .ruby
            .clone()
            .or(env_os("KAMAL_LAUNCHER_RUBY"))
            .or(file.ruby.map(OsString::from)),
        cache_dir: g
            .cache_dir
            .clone()
            .or(env_os("KAMAL_LAUNCHER_CACHE_DIR").map(PathBuf::from))
            .map(|d| cwd.join(d))
            .or(file.cache_dir),
        offline: g.offline
            || env_flag("KAMAL_LAUNCHER_OFFLINE")
                .or(file.offline)
                .unwrap_or(false),
        allow_unverified: g.allow_unverified
            || env_flag("KAMAL_LAUNCHER_ALLOW_UNVERIFIED")
                .or(file.allow_unverified)
                .unwrap_or(false),
        jobs: match g.jobs {
            Some(n) => Some(n),
            None => env_jobs()?.or(file.jobs),
        }
        .map(NonZeroUsize::get),
    })
}

/// A variable's value; unset and empty are alike ("not said").
fn env_os(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// A variable holding text.
fn env_text(name: &str) -> Result<Option<String>> {
    env_os(name)
        .map(|v| {
            v.into_string().map_err(|v| Error::Usage {
                message: format!("{name} is not valid UTF-8 ({})", v.to_string_lossy()),
                hint: Some(format!("unset {name}, or set it to a name in plain text")),
            })
        })
        .transpose()
}

/// `KAMAL_LAUNCHER_JOBS`, named as the variable when its value cannot be used.
fn env_jobs() -> Result<Option<NonZeroUsize>> {
    const NAME: &str = "KAMAL_LAUNCHER_JOBS";
    let Some(value) = env_os(NAME) else {
        return Ok(None);
    };
    let text = value.to_string_lossy();
    jobs(&text).map(Some).ok_or_else(|| Error::Usage {
        message: format!("{NAME} is `{text}`: {JOBS_RULE}"),
        hint: Some(format!(
            "unset {NAME} for one job per CPU, or set it to a number, as {NAME}=4"
        )),
    })
}

/// A boolean environment variable: unset or empty is "not said"; `0`, `false`, `no`, `off` say false.
fn env_flag(name: &str) -> Option<bool> {
    let v = std::env::var(name).ok()?;
    match v.trim().to_ascii_lowercase().as_str() {
        "" => None,
        "0" | "false" | "no" | "off" => Some(false),
        _ => Some(true),
    }
}

/// `KAMAL_LAUNCHER_CLI=1`: the launcher's own commands through `bin/kamal` or the `kamal` name.
fn cli_requested() -> bool {
    std::env::var_os("KAMAL_LAUNCHER_CLI").is_some_and(|v| v == "1")
}

/// Entry point: parses argv (or treats it as kamal's when invoked as `kamal`) and runs the command.
pub fn main() -> ExitCode {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    let as_kamal = invoked_as_kamal(argv.first());
    invocation::set(if as_kamal {
        Invocation::Kamal
    } else if std::env::var_os(invocation::SHIM_VAR).is_some_and(|v| v == "1") {
        Invocation::Shim
    } else {
        Invocation::Direct
    });
    let parsed = if let Some(cli) = fast_exec(&argv) {
        Ok(cli)
    } else if as_kamal && !cli_requested() {
        let mut as_exec = vec![OsString::from("kamal-launcher"), "exec".into(), "--".into()];
        as_exec.extend(argv.iter().skip(1).cloned());
        parse(as_exec)
    } else {
        if as_kamal {
            // `KAMAL_LAUNCHER_CLI=1 kamal install`: the launcher's commands, under its own name.
            argv[0] = OsString::from("kamal-launcher");
        }
        parse(argv.clone())
    };
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e, &argv),
    };
    let level = if cli.global.quiet {
        Level::Quiet
    } else if cli.global.verbose {
        Level::Verbose
    } else {
        Level::Normal
    };
    let ui = Ui::new(level);
    let result = quiet_when_stdout_closes(|| run(cli, &ui));
    // Errors can leave this run's temporary area behind (exec already cleaned up before it replaced us).
    cache::finish_all();
    match result {
        None | Some(Ok(())) => ExitCode::SUCCESS,
        Some(Err(e)) => {
            ui.error(
                &error::without_os_codes(&e.to_string()),
                e.hint().map(|h| error::without_os_codes(&h)).as_deref(),
            );
            ExitCode::from(match e {
                Error::Usage { .. } => error::EXIT_USAGE,
                _ => error::EXIT_FAILURE,
            })
        }
    }
}

fn parse(argv: Vec<OsString>) -> std::result::Result<Cli, clap::Error> {
    let matches = command().try_get_matches_from(argv)?;
    Cli::from_arg_matches(&matches)
}

/// Runs `f`; `None` when it stopped because stdout's reader went away (`| head -3`): a quiet exit, as for any
/// command whose reader has read enough. Writes to stdout that go through `println!` panic on a closed pipe;
/// that panic is caught here, and only that one is kept quiet.
fn quiet_when_stdout_closes<T>(f: impl FnOnce() -> T) -> Option<T> {
    fn closed_stdout(text: Option<&str>) -> bool {
        text.is_some_and(|t| {
            t.starts_with("failed printing to stdout")
                && t.contains(&format!("(os error {})", libc::EPIPE))
        })
    }
    fn text(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
        payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !closed_stdout(text(info.payload())) {
            default(info);
        }
    }));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(payload) => {
            if closed_stdout(text(&*payload)) {
                None
            } else {
                std::panic::resume_unwind(payload)
            }
        }
    }
}

/// Says what was wrong with the command line, in the launcher's words, and returns the exit status: help and
/// the version go to stdout (exit 0), everything else to stderr (exit 2).
fn usage_error(e: &clap::Error, argv: &[OsString]) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let color = ui::color_wanted(std::io::stdout().is_terminal(), &|k| std::env::var_os(k));
            let _ = ui::result(&styled(&e.render(), color));
            ExitCode::SUCCESS
        }
        ErrorKind::InvalidSubcommand => {
            let Some(ContextValue::String(word)) = e.get(ContextKind::InvalidSubcommand) else {
                return clap_error(e);
            };
            let suggested = e.get(ContextKind::SuggestedSubcommand).is_some();
            // `cache frob` is a typo of the launcher's, not kamal's.
            let nested = argv
                .iter()
                .skip(1)
                .take_while(|a| *a != word.as_str())
                .any(|a| a == "cache");
            if nested || (suggested && !KAMAL_COMMANDS.contains(&word.as_str())) {
                return clap_error(e);
            }
            let ui = Ui::new(Level::Normal);
            let (message, hint) = not_our_command(word, argv);
            ui.error(&message, Some(&hint));
            ExitCode::from(error::EXIT_USAGE)
        }
        // `kamal-launcher -v`: the help, as for no arguments at all (`cache` alone gets its own from clap).
        ErrorKind::MissingSubcommand if !argv.iter().skip(1).any(|a| a == "cache") => {
            let help = command().render_help();
            let color = ui::color_wanted(std::io::stderr().is_terminal(), &|k| std::env::var_os(k));
            eprint!("{}", styled(&help, color));
            ExitCode::from(error::EXIT_USAGE)
        }
        _ => clap_error(e),
    }
}

/// clap's own message, with its `tip:` lines as `hint:`, as every hint of the launcher's is labelled.
fn clap_error(e: &clap::Error) -> ExitCode {
    let color = ui::color_wanted(std::io::stderr().is_terminal(), &|k| std::env::var_os(k));
    let text = styled(&e.render(), color).replace("tip:", "hint:");
    eprint!("{text}");
    ExitCode::from(if e.use_stderr() { error::EXIT_USAGE } else { 0 })
}

fn styled(text: &clap::builder::StyledStr, color: bool) -> String {
    if color {
        text.ansi().to_string()
    } else {
        text.to_string()
    }
}

/// kamal 2's commands: given to the launcher, they get a pointer to where kamal runs.
const KAMAL_COMMANDS: &[&str] = &[
    "accessory",
    "app",
    "audit",
    "build",
    "config",
    "deploy",
    "details",
    "docs",
    "help",
    "init",
    "lock",
    "proxy",
    "prune",
    "redeploy",
    "registry",
    "remove",
    "rollback",
    "secrets",
    "server",
    "setup",
    "upgrade",
    "version",
];

/// The message and hint for `word`, not a command of the launcher's: kamal's commands run through `bin/kamal`
/// (or `exec --`), with the rest of the arguments as given.
fn not_our_command(word: &str, argv: &[OsString]) -> (String, String) {
    let at = argv
        .iter()
        .skip(1)
        .position(|a| a == word)
        .map_or(argv.len(), |i| i + 1);
    let args = argv[at..]
        .iter()
        .map(|a| shell_word(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let args = if args.is_empty() {
        word.to_string()
    } else {
        args
    };
    let kamals = KAMAL_COMMANDS.contains(&word);
    let message = if kamals {
        format!("`{word}` is a kamal command, not one of kamal-launcher's")
    } else {
        format!("`{word}` is not a kamal-launcher command")
    };
    let hint = match invocation::current() {
        Invocation::Shim => format!(
            "without KAMAL_LAUNCHER_CLI=1, `bin/kamal {args}` runs kamal{}",
            if kamals {
                ""
            } else {
                "; `KAMAL_LAUNCHER_CLI=1 bin/kamal --help` lists the launcher's commands"
            }
        ),
        Invocation::Kamal => format!(
            "without KAMAL_LAUNCHER_CLI=1, `kamal {args}` runs kamal{}",
            if kamals {
                ""
            } else {
                "; `KAMAL_LAUNCHER_CLI=1 kamal --help` lists the launcher's commands"
            }
        ),
        Invocation::Direct if kamals => {
            format!("did you mean `bin/kamal {args}` or `kamal-launcher exec -- {args}`?")
        }
        Invocation::Direct => format!(
            "`kamal-launcher --help` lists the launcher's commands; kamal's run as `bin/kamal {args}` or \
             `kamal-launcher exec -- {args}`"
        ),
    };
    (message, hint)
}

/// `text` as a shell reads it back: bare when it is plain, else in single quotes.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The common shapes of an `exec` (`kamal …` through the symlink, `kamal-launcher [globals] exec [--] ARGS`)
/// read without building clap's parser, which costs about as much as the rest of the warm path. Anything else,
/// or anything clap might reject, returns `None` and takes the full parser, so the two never disagree.
fn fast_exec(argv: &[OsString]) -> Option<Cli> {
    let mut global = Global {
        lockfile: None,
        gem: None,
        exe: None,
        ruby: None,
        cache_dir: None,
        offline: false,
        allow_unverified: false,
        jobs: None,
        verbose: false,
        quiet: false,
    };
    if invoked_as_kamal(argv.first()) {
        if cli_requested() {
            return None;
        }
        let args = argv[1..].to_vec();
        return Some(Cli {
            global,
            command: Command::Exec { args },
        });
    }
    let mut rest = argv.get(1..)?.iter();
    let mut seen_exec = false;
    let mut args = Vec::new();
    while let Some(arg) = rest.next() {
        let text = arg.to_str()?;
        if !seen_exec && text == "exec" {
            seen_exec = true;
            continue;
        }
        if seen_exec && text == "--" {
            args = rest.cloned().collect();
            break;
        }
        if seen_exec && !text.starts_with('-') {
            // The first of kamal's arguments: it and everything after it are kamal's.
            args = std::iter::once(arg.clone()).chain(rest.cloned()).collect();
            break;
        }
        let (flag, inline) = match text.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (text, None),
        };
        let mut value = || -> Option<String> {
            let v = match inline {
                Some(v) => v.to_string(),
                None => rest.next()?.to_str()?.to_string(),
            };
            (!v.is_empty() && !v.starts_with('-')).then_some(v)
        };
        match flag {
            "--lockfile" => global.lockfile = Some(PathBuf::from(value()?)),
            "--gem" => global.gem = Some(value()?),
            "--exe" => global.exe = Some(value()?),
            "--ruby" => global.ruby = Some(OsString::from(value()?)),
            "--cache-dir" => global.cache_dir = Some(PathBuf::from(value()?)),
            "--jobs" => global.jobs = Some(jobs(&value()?)?),
            "--offline" if inline.is_none() => global.offline = true,
            "--allow-unverified" if inline.is_none() => global.allow_unverified = true,
            "-v" | "--verbose" if inline.is_none() => global.verbose = true,
            "-q" | "--quiet" if inline.is_none() => global.quiet = true,
            _ => return None,
        }
    }
    // clap rejects `-v` with `-q`.
    if !seen_exec || (global.verbose && global.quiet) {
        return None;
    }
    Some(Cli {
        global,
        command: Command::Exec { args },
    })
}

fn invoked_as_kamal(argv0: Option<&OsString>) -> bool {
    argv0
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == "kamal")
}

fn run(cli: Cli, ui: &Ui) -> Result<()> {
    let g = &cli.global;
    if let Command::Completions { shell } = &cli.command {
        let mut script = Vec::new();
        clap_complete::generate(*shell, &mut command(), "kamal-launcher", &mut script);
        return ui::result(&String::from_utf8_lossy(&script))
            .map_err(Error::io("writing the completion script to", "stdout"));
    }
    let cwd = std::env::current_dir().map_err(Error::io("reading the current directory", "."))?;
    let located = locate::find(
        g.lockfile.as_deref(),
        std::env::var_os("BUNDLE_GEMFILE").as_deref(),
        &cwd,
    );
    // Cache maintenance works outside an app too; everything else needs the lockfile.
    let mut lockfile_problem = None;
    let located = match (&cli.command, located) {
        (
            Command::Cache(
                CacheCommand::Dir | CacheCommand::Prune { .. } | CacheCommand::Clean { .. },
            ),
            Err(_),
        ) => None,
        (Command::Doctor, Err(e)) => {
            lockfile_problem = Some(e);
            None
        }
        (_, located) => Some(located?),
    };
    let file_config = match &located {
        Some(l) => config::load(l.app_dir())?,
        None => match config::user_file() {
            Some(path) => FileConfig::read(&path)?,
            None => FileConfig::default(),
        },
    };
    let opts = resolve(g, file_config, &cwd)?;
    let cache = Cache::new(match &opts.cache_dir {
        Some(dir) => dir.clone(),
        None => cache::default_dir().ok_or(Error::NoCacheDir)?,
    });
    if matches!(cli.command, Command::Doctor) {
        return commands::doctor::run(located.as_ref(), lockfile_problem, &opts, &cache);
    }
    let maintenance = match &cli.command {
        Command::Cache(CacheCommand::Dir) => Some(Maintenance::Dir),
        Command::Cache(CacheCommand::Prune {
            older_than,
            dry_run,
        }) => Some(Maintenance::Prune {
            older_than_days: *older_than,
            dry_run: *dry_run,
        }),
        Command::Cache(CacheCommand::Clean { dry_run }) => {
            Some(Maintenance::Clean { dry_run: *dry_run })
        }
        _ => None,
    };
    // Before anything in the cache is read, run or written; `cache dir` only names it.
    if !matches!(maintenance, Some(Maintenance::Dir)) {
        crate::trust::check(cache.dir(), cache::LAYOUT, cache::TOP_LEVEL)?;
    }
    let Some(located) = located else {
        // Only the maintenance commands get here without a lockfile.
        let what = maintenance.expect("every other command needs the lockfile");
        return commands::cache::maintain(what, &cache, ui);
    };
    ui.verbose(&format!(
        "using {} ({})",
        located.path.display(),
        match located.origin {
            locate::Origin::Explicit if invocation::current() == Invocation::Shim => {
                "the app's, as bin/kamal says"
            }
            locate::Origin::Explicit => "given by --lockfile",
            locate::Origin::BundleGemfile => "from BUNDLE_GEMFILE",
            locate::Origin::Search => "found from the current directory",
        }
    ));
    let text = pipeline::read_lockfile(&located)?;
    let lock = pipeline::parse_lockfile(&located, &text)?;
    let settings = BundlerSettings::load(located.app_dir(), std::env::vars());
    let session = Session {
        located: &located,
        lock: &lock,
        settings: &settings,
        opts: &opts,
        cache: &cache,
        ui,
    };
    if let Some(binary) = pipeline::pinned_launcher(&session)? {
        return Err(pinned::hand_over(&binary));
    }
    match &cli.command {
        Command::Cache(CacheCommand::Key) => commands::cache::key(&session),
        Command::Cache(_) => commands::cache::maintain(
            maintenance.expect("the other cache commands are maintenance"),
            &cache,
            ui,
        ),
        Command::Init { dry_run, diff } => commands::init::run(&session, *dry_run, *diff),
        Command::Plan { json, platform } => {
            commands::plan::run(&session, *json, platform.as_deref())
        }
        Command::Install => commands::exec::run(&session, None),
        Command::Exec { args } => commands::exec::run(&session, Some(args)),
        Command::Doctor | Command::Completions { .. } => {
            unreachable!("handled before the lockfile is needed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exec_takes_everything_after_the_first_argument() {
        let cli =
            Cli::try_parse_from(["kl", "exec", "--offline", "--", "deploy", "-d", "x"]).unwrap();
        assert!(cli.global.offline);
        let Command::Exec { args } = cli.command else {
            panic!()
        };
        assert_eq!(args, ["deploy", "-d", "x"]);
        let cli = Cli::try_parse_from(["kl", "exec", "app", "--version=1", "-v"]).unwrap();
        assert!(!cli.global.verbose);
        let Command::Exec { args } = cli.command else {
            panic!()
        };
        assert_eq!(args, ["app", "--version=1", "-v"]);
    }

    #[test]
    fn the_fast_exec_path_agrees_with_clap() {
        let cases: &[&[&str]] = &[
            &["kl", "exec", "--", "version"],
            &["kl", "exec", "version"],
            &["kl", "exec"],
            &["kl", "exec", "--"],
            &["kl", "exec", "--", "--offline", "-v"],
            &["kl", "exec", "app", "--version=1", "-v", "--", "x"],
            &["kl", "exec", "--offline", "-v", "--", "deploy", "-d", "x"],
            &[
                "kl",
                "--lockfile",
                "a/Gemfile.lock",
                "--gem=kamal",
                "exec",
                "--",
                "x",
            ],
            &[
                "kl", "--jobs", "3", "--exe", "kamal", "-q", "exec", "x", "y",
            ],
            &[
                "kl",
                "--cache-dir=/tmp/c",
                "--ruby",
                "ruby3.3",
                "--allow-unverified",
                "exec",
                "x",
            ],
            &["kl", "exec", "--jobs=2", "--", "x"],
            &["kl", "exec", "--lockfile", "L", "x", "--lockfile", "M"],
        ];
        for case in cases {
            let argv: Vec<OsString> = case.iter().map(OsString::from).collect();
            let fast = fast_exec(&argv).unwrap_or_else(|| panic!("no fast path for {case:?}"));
            let full = Cli::try_parse_from(&argv).unwrap();
            assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{case:?}");
        }
        // Help, errors and every other command go to clap.
        let declined: &[&[&str]] = &[
            &["kl", "exec", "--help"],
            &["kl", "--help"],
            &["kl", "install"],
            &["kl", "plan", "exec"],
            &["kl", "-v", "-q", "exec", "x"],
            &["kl", "--jobs", "many", "exec", "x"],
            &["kl", "--jobs", "0", "exec", "x"],
            &["kl", "--gem", "exec", "x"],
            &["kl", "--gem=", "exec", "x"],
            &["kl", "--offline=yes", "exec", "x"],
            &["kl", "--unknown", "exec", "x"],
            &["kl", "exec", "--unknown", "x"],
            &["kl", "version"],
        ];
        for case in declined {
            let argv: Vec<OsString> = case.iter().map(OsString::from).collect();
            assert!(fast_exec(&argv).is_none(), "{case:?}");
        }
    }

    #[test]
    fn each_command_offers_only_the_global_options_it_uses() {
        let help = |path: &[&str]| {
            let mut cmd = command();
            let mut sub = &mut cmd;
            for name in path {
                sub = sub.find_subcommand_mut(name).unwrap();
            }
            sub.render_help().to_string()
        };
        let completions = help(&["completions"]);
        assert!(
            !completions.contains("--jobs") && !completions.contains("Global options"),
            "{completions}"
        );
        let exec = help(&["exec"]);
        assert!(
            exec.contains("Global options:") && exec.contains("--jobs <N>"),
            "{exec}"
        );
        let prune = help(&["cache", "prune"]);
        let own = prune.find("--older-than").unwrap();
        let global = prune.find("Global options:").unwrap();
        assert!(
            own < global && prune.contains("--cache-dir") && !prune.contains("--ruby"),
            "{prune}"
        );
        // Hidden, not refused: bin/kamal passes --lockfile to every command.
        let cli = parse(
            [
                "kl",
                "--lockfile",
                "x",
                "completions",
                "bash",
                "--jobs",
                "2",
            ]
            .map(OsString::from)
            .to_vec(),
        )
        .unwrap();
        assert_eq!(cli.global.jobs.map(NonZeroUsize::get), Some(2));
        // Every path in the table names a command.
        for (path, offered) in OFFERED {
            if !path.is_empty() {
                let parts: Vec<&str> = path.split(' ').collect();
                help(&parts);
            }
            for id in *offered {
                assert!(ALL.contains(id), "{id}");
            }
        }
    }

    #[test]
    fn ages_in_days_or_weeks() {
        assert_eq!(days("30"), Ok(30));
        assert_eq!(days("7d"), Ok(7));
        assert_eq!(days("2w"), Ok(14));
        assert_eq!(days("0"), Ok(0));
        assert!(days("1y").unwrap_err().contains("in days, as 30"));
        assert!(days("").is_err() && days("-1").is_err());
        assert_eq!(jobs_flag("0").unwrap_err(), JOBS_RULE);
        assert_eq!(jobs_flag(" 3 ").map(NonZeroUsize::get), Ok(3));
    }

    #[test]
    fn kamal_commands_given_to_the_launcher_point_to_kamal() {
        let argv: Vec<OsString> = ["kamal-launcher", "-v", "deploy", "-d", "my stage"]
            .map(OsString::from)
            .to_vec();
        let (message, hint) = not_our_command("deploy", &argv);
        assert_eq!(
            message,
            "`deploy` is a kamal command, not one of kamal-launcher's"
        );
        assert_eq!(
            hint,
            "did you mean `bin/kamal deploy -d 'my stage'` or `kamal-launcher exec -- deploy -d 'my stage'`?"
        );
        let (message, _) = not_our_command("frobnicate", &argv);
        assert_eq!(message, "`frobnicate` is not a kamal-launcher command");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("--version=1.2"), "--version=1.2");
    }

    #[test]
    fn argv0() {
        assert!(invoked_as_kamal(Some(&OsString::from(
            "/usr/local/bin/kamal"
        ))));
        assert!(!invoked_as_kamal(Some(&OsString::from("kamal-launcher"))));
    }
}
