//! The command line: parses arguments and wires the steps together. No step's logic lives here.

use std::ffi::OsString;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::cache::{self, Cache};
use crate::closure::{self, Closure};
use crate::config::{self, FileConfig};
use crate::error::{self, Error, Result};
use crate::exec;
use crate::fetch::{self, FetchOptions, GemRequest};
use crate::gc;
use crate::install::{self, EnvPlan, Unit};
use crate::locate::{self, Located};
use crate::lockfile::{Lockfile, SourceKind};
use crate::pinned::{self, Decision};
use crate::plan;
use crate::platform::{self, Platform};
use crate::ruby::{self, Ruby, RubyInfo};
use crate::settings::BundlerSettings;
use crate::sources::{self, SourceGem};
use crate::ui::{Level, Ui};
use crate::{doctor, init};

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
        after_help = "Examples:\n  kamal-launcher init --dry-run   # show every change as a diff\n  kamal-launcher init"
    )]
    Init {
        /// Show the changes as unified diffs and change nothing
        #[arg(long)]
        dry_run: bool,
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

/// Every option resolved: flags, then `KAMAL_LAUNCHER_*` variables, then the app's and the user's config files.
#[derive(Debug)]
struct Options {
    gem: String,
    exe: Option<String>,
    ruby: Option<OsString>,
    cache_dir: Option<PathBuf>,
    offline: bool,
    allow_unverified: bool,
    /// `None`: one per CPU, counted only when an install needs it (it costs cgroup reads).
    jobs: Option<usize>,
}

impl Options {
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
    let opts = Options::resolve(g, file_config, &cwd);
    let cache = Cache::new(match &opts.cache_dir {
        Some(dir) => dir.clone(),
        None => cache::default_dir().ok_or(Error::NoCacheDir)?,
    });
    if matches!(cli.command, Command::Doctor) {
        return doctor(located.as_ref(), lockfile_problem, &opts, &cache);
    }
    let Some(located) = located else {
        return maintain(&cli.command, &cache, ui);
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
    let text = read_lockfile(&located)?;
    let lock = parse_lockfile(&located, &text)?;
    let settings = BundlerSettings::load(located.app_dir(), std::env::vars());
    if let Some(binary) = pinned_launcher(&located, &lock, &settings, &cache, &opts, ui)? {
        return Err(pinned::hand_over(&binary));
    }
    let force_ruby = settings.flag("force_ruby_platform");
    let path_var = std::env::var_os("PATH");

    match &cli.command {
        Command::Cache(CacheCommand::Key) => {
            // The same on every machine with this lockfile and platform: no Ruby, no network, no cache.
            let local = platform::machine_platform();
            let closure = select(&located, &lock, &opts.gem, &local, force_ruby)?;
            println!("{}", ci_key(&lock, &closure, &local));
            Ok(())
        }
        Command::Cache(_) => maintain(&cli.command, &cache, ui),
        Command::Init { dry_run } => {
            let lockfile_name = located
                .path
                .file_name()
                .map_or("Gemfile.lock".into(), |n| n.to_string_lossy().into_owned());
            let app = located.app_dir();
            let plan = init::plan(app, &lockfile_name)?;
            if pinned::pin(&lock).is_none() {
                // The Gemfile is the user's to change (it takes Bundler and the network): say the line.
                ui.warn(&format!(
                    "{} pins no kamal-launcher, so bin/kamal cannot fetch one on machines without it; pin it \
                     (a version and a SHA-256 per platform) with:\n    {}",
                    lockfile_name,
                    pinned::PIN_COMMAND
                ));
            }
            if *dry_run {
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
            } else if *dry_run {
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
        Command::Doctor | Command::Completions { .. } => {
            unreachable!("handled before the lockfile is needed")
        }
        Command::Plan { json, platform } => {
            // A plan needs no Ruby: the machine's own platform stands in when there is none.
            let local = match (
                platform,
                ruby::find(opts.ruby.as_deref(), path_var.as_deref()),
            ) {
                (Some(p), _) => Platform::parse(p),
                (None, Ok(ruby)) => Platform::parse(&ruby.info(&cache)?.platform),
                (None, Err(_)) => platform::machine_platform(),
            };
            let force_ruby = force_ruby || platform.as_deref() == Some("ruby");
            let closure = select(&located, &lock, &opts.gem, &local, force_ruby)?;
            let requests = requests(&lock, &closure);
            let sums = fetch::known_checksums(&cache, &settings, &requests, opts.offline);
            // By name, not by a search per gem: a hostile lockfile with a huge closure must stay linear.
            let by_name: std::collections::HashMap<&str, &plan::Digest> = requests
                .iter()
                .zip(&sums)
                .map(|(r, s)| (r.full_name.as_str(), s))
                .collect();
            // GIT and PATH gems have no digest to look up.
            let sums: Vec<Option<plan::Digest>> = closure
                .gems
                .iter()
                .map(|gem| {
                    by_name
                        .get(gem.spec.full_name().as_str())
                        .map(|d| (*d).clone())
                })
                .collect();
            let plan = plan::Plan {
                lockfile: located.path.display().to_string(),
                root: opts.gem.clone(),
                platform: local.to_string(),
                gems: plan::entries(&lock, &closure, &sums),
            };
            let out = if *json {
                plan::to_json(&plan) + "\n"
            } else {
                plan::to_table(&plan)
            };
            print!("{out}");
            Ok(())
        }
        Command::Install | Command::Exec { .. } => {
            let ruby = ruby::find(opts.ruby.as_deref(), path_var.as_deref())?;
            let info = ruby.info(&cache)?;
            let local = Platform::parse(&info.platform);
            let closure = select(&located, &lock, &opts.gem, &local, force_ruby)?;
            // GIT and PATH gems are identified by revision and directory fingerprint: both are in the key.
            let sourced = sources::resolve(located.app_dir(), &lock, &closure)?;
            let key = env_key(&lock, &closure, &info, &sourced);
            let env_dir = cache.env(&key);
            let root = &closure.gems[closure.root].spec;
            // The warm path: an installed environment is complete by construction (renamed into place).
            let installed = match cli.command {
                // `install` is the repair tool: it checks that the environment's store entries still exist.
                Command::Install => install::env_is_intact(&env_dir),
                _ => env_dir.join("boot.rb").is_file(),
            };
            if installed {
                cache::touch(&env_dir.join("last-used"));
                if matches!(cli.command, Command::Install) {
                    ui.summary(&format!(
                        "{} {}: {} gems already installed in {}",
                        root.name,
                        root.version,
                        closure.gems.len(),
                        cache.dir().display()
                    ));
                }
            } else {
                let started = std::time::Instant::now();
                let result = prepare(
                    &cache, &settings, &ruby, &info, &lock, &closure, &sourced, &env_dir, &opts, ui,
                );
                let summary = result?;
                ui.summary(&format!(
                    "{} {}: {} gems ready ({summary}) in {:.1}s",
                    root.name,
                    root.version,
                    closure.gems.len(),
                    started.elapsed().as_secs_f64()
                ));
            }
            // A probe memo written on the way may have opened this run's temporary area; exec skips destructors.
            cache.finish();
            if let Command::Exec { args } = &cli.command {
                return Err(exec::exec(
                    &ruby,
                    &env_dir,
                    root.name,
                    opts.exe.as_deref(),
                    args,
                ));
            }
            Ok(())
        }
    }
}

/// The binary to hand over to when the lockfile pins another kamal-launcher version, fetched and verified into
/// the cache if needed; `None` to go on as this binary.
fn pinned_launcher(
    located: &Located,
    lock: &Lockfile,
    settings: &BundlerSettings,
    cache: &Cache,
    opts: &Options,
    ui: &Ui,
) -> Result<Option<PathBuf>> {
    let pin = pinned::pin(lock);
    match pinned::decide(pin.as_ref(), &|k| std::env::var_os(k)) {
        Decision::Stay => Ok(None),
        Decision::StayMismatched { pinned } => {
            ui.warn(&format!(
                "{} pins kamal-launcher {pinned}, but the binary handed over to is {}; running it anyway (set \
                 {} to choose a binary explicitly)",
                located.path.display(),
                pinned::own_version(),
                pinned::BIN_VAR
            ));
            Ok(None)
        }
        Decision::HandOver { pinned } => {
            let Some(pin) = pin else { return Ok(None) };
            let binary = pinned::ensure(cache, settings, lock, &pin, fetch_options(opts, 1), ui)
                .map_err(|e| {
                    Error::Handover(format!(
                        "{} pins kamal-launcher {pinned} (this is {}), and it could not be obtained: {e}\n  \
                         run again with network access, or set {}=$(command -v kamal-launcher) to run this one",
                        located.path.display(),
                        pinned::own_version(),
                        pinned::BIN_VAR
                    ))
                })?;
            ui.verbose(&format!(
                "handing over to kamal-launcher {pinned} ({}), pinned in {}",
                binary.display(),
                located.path.display()
            ));
            cache.finish();
            Ok(Some(binary))
        }
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
) -> doctor::PinFacts {
    let pin = pinned::pin(lock);
    let decision = pinned::decide(pin.as_ref(), &|k| std::env::var_os(k));
    let this_machine = match (&pin, decision) {
        (None, _) => Err("nothing is pinned".to_string()),
        (Some(p), Decision::HandOver { .. }) => {
            let quiet = Ui::new(Level::Quiet);
            match pinned::ensure(cache, settings, lock, p, fetch_options(opts, 1), &quiet) {
                Ok(binary) => {
                    cache.finish();
                    Err(pinned::hand_over(&binary).to_string())
                }
                Err(e) => Err(e.to_string()),
            }
        }
        (Some(p), _) => {
            pinned::obtainable(cache, settings, lock, p, opts.offline).map_err(|e| e.to_string())
        }
    };
    doctor::PinFacts {
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

fn fetch_options(opts: &Options, jobs: usize) -> FetchOptions {
    FetchOptions {
        offline: opts.offline,
        allow_unverified: opts.allow_unverified,
        jobs,
    }
}

/// `doctor`: gathers what the checks need (nothing here may fail the command early) and prints them.
fn doctor(
    located: Option<&Located>,
    lockfile_problem: Option<Error>,
    opts: &Options,
    cache: &Cache,
) -> Result<()> {
    let path_var = std::env::var_os("PATH");
    let ruby = ruby::find(opts.ruby.as_deref(), path_var.as_deref()).map_err(|e| e.to_string());
    let mut context = doctor::Context {
        app: located.map(Located::app_dir),
        lockfile: doctor::Check {
            name: "Lockfile",
            ok: false,
            detail: lockfile_problem.map_or_else(String::new, |e| e.to_string()),
            fix: Some("run this in the app's directory, or pass --lockfile PATH".into()),
        },
        ruby: ruby.clone(),
        root_gem: None,
        sources: Vec::new(),
        installed: false,
        offline: opts.offline,
        cache,
        pin: None,
    };
    if let Some(located) = located {
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
            context.lockfile = doctor::Check {
                name: "Lockfile",
                ok: true,
                detail: format!(
                    "{} locks {} {}",
                    located.path.display(),
                    root.spec.name,
                    root.spec.version
                ),
                fix: None,
            };
            context.root_gem = root
                .sha256
                .map(|sha| cache.download(&sha))
                .filter(|p| p.is_file());
            if let Ok(r) = &ruby {
                let info = r.info(cache)?;
                let sourced = sources::resolve(located.app_dir(), &lock, &closure)?;
                let key = env_key(&lock, &closure, &info, &sourced);
                context.installed = install::env_is_intact(&cache.env(&key));
            }
            if !context.installed && !opts.offline {
                let requests = requests(&lock, &closure);
                let mut remotes: Vec<&str> = requests
                    .iter()
                    .flat_map(|r| r.remotes.iter().map(String::as_str))
                    .collect();
                remotes.sort_unstable();
                remotes.dedup();
                context.sources = remotes
                    .iter()
                    .map(|remote| fetch::reachable(cache, &settings, remote, root.spec.name))
                    .collect();
            }
            Ok(())
        })();
        if let Err(e) = gathered {
            context.lockfile = doctor::Check {
                name: "Lockfile",
                ok: false,
                detail: e.to_string(),
                fix: e
                    .hint()
                    .or_else(|| Some("fix the lockfile (or run `bundle lock`)".into())),
            };
        }
    }
    let checks = doctor::run(&context);
    let color = std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mark = |ok: bool| match (ok, color) {
        (true, true) => "\x1b[32m✓\x1b[0m",
        (false, true) => "\x1b[31m✗\x1b[0m",
        (true, false) => "ok  ",
        (false, false) => "FAIL",
    };
    for check in &checks {
        println!("{} {}: {}", mark(check.ok), check.name, check.detail);
        if let Some(fix) = &check.fix {
            println!("       fix: {fix}");
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        return Err(Error::Doctor(failed));
    }
    println!("all {} checks passed", checks.len());
    Ok(())
}

/// `cache dir`, `cache prune`, `cache clean`: need no lockfile.
fn maintain(command: &Command, cache: &Cache, ui: &Ui) -> Result<()> {
    let report = match command {
        Command::Cache(CacheCommand::Dir) => {
            println!("{}", cache.dir().display());
            return Ok(());
        }
        Command::Cache(CacheCommand::Prune { older_than }) => gc::prune(
            cache,
            std::time::Duration::from_secs(older_than.saturating_mul(86_400)),
        ),
        Command::Cache(CacheCommand::Clean) => gc::clean(cache),
        _ => {
            return Err(Error::NoLockfile {
                searched: std::env::current_dir().unwrap_or_default(),
            });
        }
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

/// The CI cache key: the closure as it would be cached (names, versions, platforms, checksums), the OS and
/// CPU, and the layout version. Gem servers are left out: the same verified bytes from a mirror are the same
/// cache. A GIT gem's revision is its checksum; a PATH gem adds its path only, since its fingerprint (file
/// times) differs on every CI checkout: the launcher rebuilds it when the restored one does not match. The
/// pinned launcher version is in it too, since `bin/kamal` caches that binary in the same directory.
fn ci_key(lock: &Lockfile, closure: &Closure<'_>, local: &Platform) -> String {
    let mut parts = vec![
        cache::LAYOUT.to_string(),
        std::env::consts::OS.to_string(),
        std::env::consts::ARCH.to_string(),
        local.to_string(),
    ];
    if let Some(pin) = pinned::pin(lock) {
        parts.push(format!("{} {}", pinned::GEM, pin.version));
    }
    for g in &closure.gems {
        let origin = match &lock.sources[g.spec.source].kind {
            SourceKind::Git {
                revision,
                submodules,
                glob,
                ..
            } => format!(
                " git {revision} {submodules} {}",
                glob.as_deref().unwrap_or("")
            ),
            SourceKind::Path { path, glob } => {
                format!(" path {path} {}", glob.as_deref().unwrap_or(""))
            }
            _ => String::new(),
        };
        parts.push(format!(
            "{} {} {} {}{origin}",
            g.spec.name,
            g.spec.version,
            g.spec.platform,
            g.sha256.map_or("-".to_string(), hex::encode)
        ));
    }
    format!(
        "kamal-launcher-{}-{}-{}-{}",
        cache::LAYOUT,
        std::env::consts::OS,
        std::env::consts::ARCH,
        cache::key_of(parts.iter().map(String::as_str))
    )
}

fn read_lockfile(located: &Located) -> Result<Vec<u8>> {
    std::fs::read(&located.path).map_err(Error::io("reading", &located.path))
}

/// Parses what [`read_lockfile`] read; the result borrows names from `bytes`.
fn parse_lockfile<'t>(located: &Located, bytes: &'t [u8]) -> Result<Lockfile<'t>> {
    let lock = Lockfile::parse_bytes(bytes).map_err(|source| Error::Lockfile {
        path: located.path.clone(),
        source,
    })?;
    // Bundler ignores sections it does not know, so a Gemfile parses as an empty lockfile: refuse it by name
    // rather than report "kamal is not locked".
    if lock.is_empty() {
        return Err(Error::NotALockfile {
            path: located.path.clone(),
        });
    }
    Ok(lock)
}

fn select<'a>(
    located: &Located,
    lock: &'a Lockfile,
    root: &str,
    local: &Platform,
    force_ruby: bool,
) -> Result<Closure<'a>> {
    closure::select(lock, root, local, force_ruby).map_err(|e| Error::Closure {
        path: located.path.clone(),
        line: e.line(),
        message: e.to_string(),
    })
}

/// What to download for each gem of the closure that comes from a gem server.
fn requests(lock: &Lockfile, closure: &Closure<'_>) -> Vec<GemRequest> {
    closure
        .gems
        .iter()
        .filter_map(|g| match &lock.sources[g.spec.source].kind {
            SourceKind::Gem { remotes } => Some(GemRequest {
                name: g.spec.name.to_owned(),
                version: g.spec.version.to_string(),
                platform: g.spec.platform.to_owned(),
                full_name: g.spec.full_name(),
                remotes: remotes.clone(),
                expected: g.sha256,
            }),
            _ => None,
        })
        .collect()
}

/// The environment's key: the closure as locked (names, versions, platforms, sources, checksums), what
/// identifies each GIT and PATH gem's content (full revision; directory fingerprint), the Ruby ABI and platform,
/// and the cache layout.
fn env_key(
    lock: &Lockfile,
    closure: &Closure<'_>,
    info: &RubyInfo,
    sourced: &[SourceGem<'_>],
) -> String {
    let mut parts = vec![cache::LAYOUT.to_string(), info.abi(), info.platform.clone()];
    let identities: std::collections::HashMap<*const crate::lockfile::Spec, String> = sourced
        .iter()
        .map(|s| (std::ptr::from_ref(s.spec), s.identity()))
        .collect();
    for g in &closure.gems {
        parts.push(format!(
            "{} {} {} {} {}",
            g.spec.name,
            g.spec.version,
            g.spec.platform,
            lock.sources[g.spec.source].key_parts().join("\u{1f}"),
            g.sha256.map_or("-".to_string(), hex::encode)
        ));
        if let Some(identity) = identities.get(&std::ptr::from_ref(g.spec)) {
            parts.push(identity.clone());
        }
    }
    cache::key_of(parts.iter().map(String::as_str))
}

/// The cold path: fetch, verify, install, assemble. Returns a short summary of the work done.
#[allow(clippy::too_many_arguments)]
fn prepare(
    cache: &Cache,
    settings: &BundlerSettings,
    ruby: &Ruby,
    info: &RubyInfo,
    lock: &Lockfile,
    closure: &Closure<'_>,
    sourced: &[SourceGem<'_>],
    env_dir: &Path,
    opts: &Options,
    ui: &Ui,
) -> Result<String> {
    let jobs = opts
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    cache.sweep();
    // Held while installing, so that `cache prune`/`clean` never remove store entries an install is about
    // to link into its environment.
    let _gc = cache.lock_shared(gc::GC_LOCK)?;
    let abi = info.abi();
    // GIT and PATH gems first: a missing revision or directory is reported before any download.
    let path_var = std::env::var_os("PATH");
    let (source_units, built) = sources::prepare(
        &sources::Context {
            cache,
            ruby,
            abi: &abi,
            settings,
            path_var: path_var.as_deref(),
            offline: opts.offline,
            ui,
        },
        sourced,
    )?;
    let requests = requests(lock, closure);
    let key = env_dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    // Taken before downloading: a concurrent launcher preparing the same environment waits, then finds it done.
    let _env_lock = cache.lock(&format!("env-{key}"))?;
    if install::env_is_intact(env_dir) {
        return Ok("installed by a concurrent run".to_string());
    }
    let unit_of = |r: &GemRequest, f: &fetch::Fetched| Unit {
        full_name: r.full_name.clone(),
        gem_file: f.path.clone(),
        dir: cache.unit(&abi, &r.full_name, &f.sha256),
    };
    let mut fetched = Vec::new();
    // Installing starts with the first verified gem, while the rest download.
    let installed = install::install_units(cache, ruby, jobs, ui, |feeder| {
        for unit in &source_units {
            feeder.submit(unit.clone())?;
        }
        fetched = fetch::fetch_all(
            cache,
            settings,
            &requests,
            fetch_options(opts, jobs.max(4)),
            ui,
            &|i, f| feeder.submit(unit_of(&requests[i], f)),
        )?;
        Ok(())
    })?;
    let downloaded = fetched.iter().filter(|f| f.downloaded).count();
    let mut units: Vec<Unit> = requests
        .iter()
        .zip(&fetched)
        .map(|(r, f)| unit_of(r, f))
        .collect();
    units.extend(source_units);
    let by_name: std::collections::HashMap<&str, &Unit> =
        units.iter().map(|u| (u.full_name.as_str(), u)).collect();
    let plan = EnvPlan {
        units: closure
            .activation_order
            .iter()
            .map(|&i| {
                let unit = by_name[closure.gems[i].spec.full_name().as_str()];
                (unit.dir.clone(), unit.full_name.clone())
            })
            .collect(),
    };
    install::assemble_env(cache, env_dir, &plan)?;
    Ok(if built > 0 {
        format!("{downloaded} downloaded, {built} built from source, {installed} installed")
    } else {
        format!("{downloaded} downloaded, {installed} installed")
    })
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
