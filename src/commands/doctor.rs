//! `doctor`: gathers what the checks need (nothing here may fail the command early) and prints them.

use crate::cache::Cache;
use crate::config::Options;
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
        lockfile: crate::doctor::Check {
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
            context.lockfile = crate::doctor::Check {
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
                .and_then(|sha| fetch::verified_download(cache, &sha));
            if let Ok(r) = &ruby {
                let info = r.info(cache)?;
                let sourced = sources::resolve(located.app_dir(), &lock, &closure)?;
                let key = env_key(&lock, &closure, &info, &sourced);
                context.installed =
                    crate::env::check(&cache.env(&key), crate::env::Depth::Full).is_ok();
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
            context.lockfile = crate::doctor::Check {
                name: "Lockfile",
                ok: false,
                detail: e.to_string(),
                fix: e
                    .hint()
                    .or_else(|| Some("fix the lockfile (or run `bundle lock`)".into())),
            };
        }
    }
    let checks = crate::doctor::run(&context);
    let color =
        crate::ui::color_wanted(std::io::IsTerminal::is_terminal(&std::io::stdout()), &|k| {
            std::env::var_os(k)
        });
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
