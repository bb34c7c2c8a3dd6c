//! The command line: parses arguments and wires the steps together. No step's logic lives here.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::cache::{self, Cache};
use crate::closure::{self, Closure};
use crate::error::{self, Error, Result};
use crate::exec;
use crate::fetch::{self, FetchOptions, GemRequest};
use crate::install::{self, EnvPlan, Unit};
use crate::locate::{self, Located};
use crate::lockfile::{Lockfile, SourceKind};
use crate::plan;
use crate::platform::{self, Platform};
use crate::ruby::{self, Ruby, RubyInfo};
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
    /// The gem whose closure is installed and run
    #[arg(
        long,
        global = true,
        env = "KAMAL_LAUNCHER_GEM",
        default_value = "kamal"
    )]
    gem: String,
    /// The executable of that gem to run [default: the gem's name]
    #[arg(long, global = true, env = "KAMAL_LAUNCHER_EXE")]
    exe: Option<String>,
    /// The Ruby interpreter (a path, or a name on PATH) [default: ruby]
    #[arg(long, global = true, env = "KAMAL_LAUNCHER_RUBY", value_name = "RUBY")]
    ruby: Option<OsString>,
    /// Where gems and environments are cached [default: ~/.cache/kamal-launcher]
    #[arg(
        long,
        global = true,
        env = "KAMAL_LAUNCHER_CACHE_DIR",
        value_name = "DIR"
    )]
    cache_dir: Option<PathBuf>,
    /// Never use the network; fail if something is not cached
    #[arg(long, global = true, env = "KAMAL_LAUNCHER_OFFLINE")]
    offline: bool,
    /// Install gems whose checksum is known nowhere (dangerous: their bytes are not verified)
    #[arg(long, global = true, env = "KAMAL_LAUNCHER_ALLOW_UNVERIFIED")]
    allow_unverified: bool,
    /// Parallel downloads and builds [default: number of CPUs]
    #[arg(long, global = true, env = "KAMAL_LAUNCHER_JOBS", value_name = "N")]
    jobs: Option<usize>,
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

/// Entry point: parses argv (or treats it as kamal's when invoked as `kamal`) and runs the command.
pub fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let parsed = if invoked_as_kamal(argv.first()) {
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
    match run(cli, &ui) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            ui.error(&e.to_string(), e.hint().as_deref());
            ExitCode::from(error::EXIT_FAILURE)
        }
    }
}

fn invoked_as_kamal(argv0: Option<&OsString>) -> bool {
    argv0
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == "kamal")
}

fn run(cli: Cli, ui: &Ui) -> Result<()> {
    let g = &cli.global;
    let cwd = std::env::current_dir().map_err(Error::io("reading the current directory", "."))?;
    let located = locate::find(
        g.lockfile.as_deref(),
        std::env::var_os("BUNDLE_GEMFILE").as_deref(),
        &cwd,
    )?;
    ui.verbose(&format!(
        "using {} ({})",
        located.path.display(),
        match located.origin {
            locate::Origin::Explicit => "given by --lockfile",
            locate::Origin::BundleGemfile => "from BUNDLE_GEMFILE",
            locate::Origin::Search => "found from the current directory",
        }
    ));
    let lock = read_lockfile(&located)?;
    let settings = BundlerSettings::load(located.app_dir(), std::env::vars());
    let cache = Cache::new(match &g.cache_dir {
        Some(dir) => cwd.join(dir),
        None => cache::default_dir().ok_or_else(|| {
            Error::Io {
                action: "finding the default cache directory (set KAMAL_LAUNCHER_CACHE_DIR or --cache-dir)",
                path: PathBuf::from("~/.cache"),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "HOME is not set"),
            }
        })?,
    });
    let force_ruby = settings.flag("force_ruby_platform");
    let path_var = std::env::var_os("PATH");

    match &cli.command {
        Command::Plan { json, platform } => {
            // A plan needs no Ruby: the machine's own platform stands in when there is none.
            let local = match (platform, ruby::find(g.ruby.as_deref(), path_var.as_deref())) {
                (Some(p), _) => Platform::parse(p),
                (None, Ok(ruby)) => Platform::parse(&ruby.info(&cache)?.platform),
                (None, Err(_)) => platform::machine_platform(),
            };
            let force_ruby = force_ruby || platform.as_deref() == Some("ruby");
            let closure = select(&located, &lock, &g.gem, &local, force_ruby)?;
            let requests = requests(&lock, &closure);
            let sums = fetch::known_checksums(&cache, &settings, &requests, g.offline);
            let sums: Vec<Option<[u8; 32]>> = closure
                .gems
                .iter()
                .map(|gem| {
                    requests
                        .iter()
                        .zip(&sums)
                        .find(|(r, _)| r.full_name == gem.spec.full_name())
                        .and_then(|(_, s)| *s)
                })
                .collect();
            let plan = plan::Plan {
                lockfile: located.path.display().to_string(),
                root: g.gem.clone(),
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
            let ruby = ruby::find(g.ruby.as_deref(), path_var.as_deref())?;
            let info = ruby.info(&cache)?;
            let local = Platform::parse(&info.platform);
            let closure = select(&located, &lock, &g.gem, &local, force_ruby)?;
            let key = env_key(&lock, &closure, &info);
            let env_dir = cache.env(&key);
            // The warm path: an installed environment is complete by construction (renamed into place).
            if !env_dir.join("boot.rb").is_file() {
                let started = std::time::Instant::now();
                let summary = prepare(
                    &cache, &settings, &ruby, &info, &lock, &closure, &env_dir, g, ui,
                )?;
                ui.clear();
                let text = format!(
                    "{} {}: {} gems ready ({}) in {:.1}s",
                    closure.gems[closure.root].spec.name,
                    closure.gems[closure.root].spec.version,
                    closure.gems.len(),
                    summary,
                    started.elapsed().as_secs_f64()
                );
                match cli.command {
                    Command::Install => ui.summary(&text),
                    _ => ui.verbose(&text),
                }
            } else if matches!(cli.command, Command::Install) {
                ui.summary(&format!(
                    "{} {}: {} gems already installed",
                    closure.gems[closure.root].spec.name,
                    closure.gems[closure.root].spec.version,
                    closure.gems.len()
                ));
            }
            if let Command::Exec { args } = &cli.command {
                let root = closure.gems[closure.root].spec.name.as_str();
                return Err(exec::exec(&ruby, &env_dir, root, g.exe.as_deref(), args));
            }
            Ok(())
        }
    }
}

fn read_lockfile(located: &Located) -> Result<Lockfile> {
    let bytes = std::fs::read(&located.path).map_err(Error::io("reading", &located.path))?;
    Lockfile::parse_bytes(&bytes).map_err(|source| Error::Lockfile {
        path: located.path.clone(),
        source,
    })
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
                name: g.spec.name.clone(),
                version: g.spec.version.to_string(),
                platform: g.spec.platform.clone(),
                full_name: g.spec.full_name(),
                remotes: remotes.clone(),
                expected: g.sha256,
            }),
            _ => None,
        })
        .collect()
}

/// The environment's key: the closure as locked (names, versions, platforms, sources, checksums), the Ruby ABI
/// and platform, and the cache layout.
fn env_key(lock: &Lockfile, closure: &Closure<'_>, info: &RubyInfo) -> String {
    let mut parts = vec![cache::LAYOUT.to_string(), info.abi(), info.platform.clone()];
    for g in &closure.gems {
        parts.push(format!(
            "{} {} {} {} {}",
            g.spec.name,
            g.spec.version,
            g.spec.platform,
            lock.sources[g.spec.source].describe(),
            g.sha256.map_or("-".to_string(), hex::encode)
        ));
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
    env_dir: &Path,
    g: &Global,
    ui: &Ui,
) -> Result<String> {
    for gem in &closure.gems {
        let source = &lock.sources[gem.spec.source];
        if !matches!(source.kind, SourceKind::Gem { .. }) {
            return Err(Error::Unsupported(format!(
                "{} comes from {}; installing from GIT, PATH and plugin sources is not supported yet. \
                 `kamal-launcher plan` shows the whole closure; lock {} from a gem server to use the launcher",
                gem.spec.full_name(),
                source.describe(),
                gem.spec.name
            )));
        }
    }
    let jobs = g
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let requests = requests(lock, closure);
    let fetched = fetch::fetch_all(
        cache,
        settings,
        &requests,
        FetchOptions {
            offline: g.offline,
            allow_unverified: g.allow_unverified,
            jobs: jobs.max(4),
        },
        ui,
    )?;
    let downloaded = fetched.iter().filter(|f| f.downloaded).count();
    let abi = info.abi();
    let units: Vec<Unit> = requests
        .iter()
        .zip(&fetched)
        .map(|(r, f)| Unit {
            full_name: r.full_name.clone(),
            gem_file: f.path.clone(),
            dir: cache.unit(&abi, &r.full_name, &f.sha256),
        })
        .collect();

    let key = env_dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let _env_lock = cache.lock(&format!("env-{key}"))?;
    if env_dir.join("boot.rb").is_file() {
        return Ok("installed by a concurrent run".to_string());
    }
    let installed = install::install_units(cache, ruby, &units, jobs, ui)?;
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
    Ok(format!("{downloaded} downloaded, {installed} installed"))
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
    fn argv0() {
        assert!(invoked_as_kamal(Some(&OsString::from(
            "/usr/local/bin/kamal"
        ))));
        assert!(!invoked_as_kamal(Some(&OsString::from("kamal-launcher"))));
    }
}
