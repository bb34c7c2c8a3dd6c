//! The command line: parses arguments (clap, and a fast path for `exec`), resolves the options, finds and parses
//! the lockfile, and hands the [`Session`] to the command in `crate::commands`. No step's logic lives here.

use std::ffi::OsString;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::cache::{self, Cache};
use crate::commands::{self, cache::Maintenance};
use crate::config::{self, FileConfig, Options};
use crate::error::{self, Error, Result};
use crate::locate;
use crate::pinned;
use crate::pipeline::{self, Session};
use crate::settings::BundlerSettings;
use crate::ui::{Level, Ui};

const EXAMPLES: &str = "\
Examples:
  kamal-launcher exec -- version          run the locked kamal
  kamal-launcher exec -- deploy -d staging
  kamal-launcher install                  CI warm-up: install the closure, run nothing
  kamal-launcher plan --json              what would be installed, and from where
  ln -s \"$(command -v kamal-launcher)\" ~/.local/bin/kamal && kamal version";

/// Runs the exact kamal locked in your Gemfile.lock, installed in isolation from the rest of the bundle.
#[derive(Debug, Parser)]
#[command(name = "kamal-launcher", version, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
struct Global {
    /// The lockfile to read [default: BUNDLE_GEMFILE's lock, else the nearest Gemfile.lock]
    #[arg(long, global = true, value_name = "PATH")]
    lockfile: Option<PathBuf>,
    /// The gem whose closure is installed and run [default: kamal]
    #[arg(long, global = true, env = "KAMAL_LAUNCHER_GEM")]
    gem: Option<String>,
    /// The executable of that gem to run [default: the gem's name]
    #[arg(long, global = true, env = "KAMAL_LAUNCHER_EXE")]
    exe: Option<String>,
    /// The Ruby interpreter (a path, or a name on PATH) [default: ruby]. Behind an rbenv, asdf or mise shim,
    /// the Ruby it selects (by variable or version file from the working directory) is the one keyed and run
    #[arg(long, global = true, env = "KAMAL_LAUNCHER_RUBY", value_name = "RUBY")]
    ruby: Option<OsString>,
    /// Where gems and environments are cached [default: $XDG_CACHE_HOME/kamal-launcher, else
    /// ~/.cache/kamal-launcher, on macOS too]
    #[arg(
        long,
        global = true,
        env = "KAMAL_LAUNCHER_CACHE_DIR",
        value_name = "DIR"
    )]
    cache_dir: Option<PathBuf>,
    /// Never use the network; fail if something is not cached [env: KAMAL_LAUNCHER_OFFLINE=1]
    #[arg(long, global = true)]
    offline: bool,
    /// Install gems whose checksum is known nowhere (dangerous: their bytes are not verified)
    /// [env: KAMAL_LAUNCHER_ALLOW_UNVERIFIED=1]
    #[arg(long, global = true)]
    allow_unverified: bool,
    /// Parallel downloads and builds, 1 or more [default: number of CPUs]
    #[arg(long, global = true, env = "KAMAL_LAUNCHER_JOBS", value_name = "N")]
    jobs: Option<NonZeroUsize>,
    /// Say what is happening, even off a terminal
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Only errors and warnings
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install kamal's locked closure if needed, then run kamal with ARGS
    #[command(
        after_help = "Examples:\n  kamal-launcher exec -- version\n  kamal-launcher exec -- app exec --primary \"bin/rails db:prepare\""
    )]
    Exec {
        /// Arguments passed verbatim to kamal
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<OsString>,
    },
    /// Install kamal's locked closure into the cache and run nothing (CI warm-up)
    #[command(
        after_help = "Examples:\n  kamal-launcher install\n  kamal-launcher install --lockfile path/to/Gemfile.lock"
    )]
    Install,
    /// Adopt the launcher in this Rails app: bin/kamal shim, pre-deploy hook, entrypoint without db:prepare
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
    /// Check this machine and this app for what a deploy through the launcher needs
    #[command(after_help = "Examples:\n  kamal-launcher doctor\n  kamal-launcher doctor --offline")]
    Doctor,
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  kamal-launcher completions bash > ~/.local/share/bash-completion/completions/kamal-launcher\n  kamal-launcher completions zsh > \"${fpath[1]}/_kamal-launcher\"\n  kamal-launcher completions fish > ~/.config/fish/completions/kamal-launcher.fish"
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
    /// Print a key for CI caches: changes exactly when what `install` puts in the cache changes
    #[command(
        after_help = "Examples:\n  key=$(kamal-launcher cache key)   # actions/cache `key:`, GitLab `cache:key`"
    )]
    Key,
    /// Print the directory to save and restore between CI runs
    #[command(
        after_help = "Examples:\n  kamal-launcher cache dir\n  KAMAL_LAUNCHER_CACHE_DIR=$PWD/.cache/kl kamal-launcher cache dir"
    )]
    Dir,
    /// Remove environments and downloads not used recently, and installed gems nothing uses
    #[command(
        after_help = "Examples:\n  kamal-launcher cache prune\n  kamal-launcher cache prune --older-than 7"
    )]
    Prune {
        /// Age in days
        #[arg(long, value_name = "DAYS", default_value_t = 30)]
        older_than: u64,
    },
    /// Remove everything (environments a running kamal uses are kept)
    #[command(after_help = "Examples:\n  kamal-launcher cache clean")]
    Clean,
}

/// Every option resolved: flags, then `KAMAL_LAUNCHER_*` variables, then the app's and the user's files.
fn resolve(g: &Global, file: FileConfig, cwd: &Path) -> Options {
    Options {
        gem: g
            .gem
            .clone()
            .or(file.gem)
            .unwrap_or_else(|| "kamal".to_string()),
        exe: g.exe.clone().or(file.exe),
        ruby: g.ruby.clone().or(file.ruby.map(OsString::from)),
        cache_dir: g.cache_dir.as_ref().map(|d| cwd.join(d)).or(file.cache_dir),
        offline: g.offline
            || env_flag("KAMAL_LAUNCHER_OFFLINE")
                .or(file.offline)
                .unwrap_or(false),
        allow_unverified: g.allow_unverified
            || env_flag("KAMAL_LAUNCHER_ALLOW_UNVERIFIED")
                .or(file.allow_unverified)
                .unwrap_or(false),
        jobs: g.jobs.or(file.jobs).map(NonZeroUsize::get),
    }
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

/// Entry point: parses argv (or treats it as kamal's when invoked as `kamal`) and runs the command.
pub fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let parsed = if let Some(cli) = fast_exec(&argv) {
        Ok(cli)
    } else if invoked_as_kamal(argv.first()) {
        let mut as_exec = vec![OsString::from("kamal-launcher"), "exec".into(), "--".into()];
        as_exec.extend(argv.into_iter().skip(1));
        Cli::try_parse_from(as_exec)
    } else {
        Cli::try_parse_from(argv)
    };
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { error::EXIT_USAGE } else { 0 });
        }
    };
    let level = if cli.global.quiet {
        Level::Quiet
    } else if cli.global.verbose {
        Level::Verbose
    } else {
        Level::Normal
    };
    let ui = Ui::new(level);
    let result = run(cli, &ui);
    // Errors can leave this run's temporary area behind (exec already cleaned up before it replaced us).
    cache::finish_all();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            ui.error(&e.to_string(), e.hint().as_deref());
            ExitCode::from(error::EXIT_FAILURE)
        }
    }
}

/// The common shapes of an `exec` (`kamal …` through the symlink, `kamal-launcher [globals] exec [--] ARGS`)
/// read without building clap's parser, which costs about as much as the rest of the warm path. Anything else,
/// or anything clap might reject, returns `None` and takes the full parser, so the two never disagree.
fn fast_exec(argv: &[OsString]) -> Option<Cli> {
    let env = |name: &str| match std::env::var_os(name) {
        None => Some(None),
        // Empty or not UTF-8: let clap decide what that means.
        Some(v) if v.is_empty() => None,
        Some(v) => Some(Some(v)),
    };
    let env_string = |name: &str| {
        env(name).and_then(|v| v.map_or(Some(None), |v| v.into_string().ok().map(Some)))
    };
    let mut global = Global {
        lockfile: None,
        gem: env_string("KAMAL_LAUNCHER_GEM")?,
        exe: env_string("KAMAL_LAUNCHER_EXE")?,
        ruby: env("KAMAL_LAUNCHER_RUBY")?,
        cache_dir: env("KAMAL_LAUNCHER_CACHE_DIR")?.map(PathBuf::from),
        offline: false,
        allow_unverified: false,
        jobs: match env_string("KAMAL_LAUNCHER_JOBS")? {
            Some(n) => Some(n.parse().ok()?),
            None => None,
        },
        verbose: false,
        quiet: false,
    };
    if invoked_as_kamal(argv.first()) {
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
            "--jobs" => global.jobs = Some(value()?.parse().ok()?),
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
        clap_complete::generate(
            *shell,
            &mut Cli::command(),
            "kamal-launcher",
            &mut std::io::stdout(),
        );
        return Ok(());
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
            Command::Cache(CacheCommand::Dir | CacheCommand::Prune { .. } | CacheCommand::Clean),
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
    let opts = resolve(g, file_config, &cwd);
    let cache = Cache::new(match &opts.cache_dir {
        Some(dir) => dir.clone(),
        None => cache::default_dir().ok_or(Error::NoCacheDir)?,
    });
    if matches!(cli.command, Command::Doctor) {
        return commands::doctor::run(located.as_ref(), lockfile_problem, &opts, &cache);
    }
    let maintenance = match &cli.command {
        Command::Cache(CacheCommand::Dir) => Some(Maintenance::Dir),
        Command::Cache(CacheCommand::Prune { older_than }) => Some(Maintenance::Prune {
            older_than_days: *older_than,
        }),
        Command::Cache(CacheCommand::Clean) => Some(Maintenance::Clean),
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
    fn argv0() {
        assert!(invoked_as_kamal(Some(&OsString::from(
            "/usr/local/bin/kamal"
        ))));
        assert!(!invoked_as_kamal(Some(&OsString::from("kamal-launcher"))));
    }
}
