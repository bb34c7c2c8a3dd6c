//! The operations behind the commands: from a located lockfile to an installed environment (parse → hand over to
//! the pinned launcher → select → fetch and verify → install → assemble), and the keys naming what they make.
//! Commands (`crate::commands`) call these with one [`Session`]; nothing here parses arguments or prints results.

use std::path::{Path, PathBuf};

use crate::cache::{self, Cache};
use crate::closure::{self, Closure};
use crate::config::Options;
use crate::env::{self, EnvPlan};
use crate::error::{Error, Result};
use crate::fetch::{self, FetchOptions, GemRequest};
use crate::gc;
use crate::install::{self, Unit};
use crate::locate::Located;
use crate::lockfile::{Lockfile, SourceKind};
use crate::pinned::{self, Decision};
use crate::platform::Platform;
use crate::ruby::{Ruby, RubyInfo};
use crate::settings::BundlerSettings;
use crate::sources::{self, SourceGem};
use crate::ui::Ui;

/// What every operation on an app works with.
#[derive(Clone, Copy)]
pub struct Session<'a, 't> {
    /// Where the lockfile is, and how it was found.
    pub located: &'a Located,
    /// The parsed lockfile.
    pub lock: &'a Lockfile<'t>,
    /// Bundler's settings for the app (mirrors, credentials, certificates, timeouts).
    pub settings: &'a BundlerSettings,
    /// Every option, resolved.
    pub opts: &'a Options,
    /// The cache.
    pub cache: &'a Cache,
    /// Where messages go.
    pub ui: &'a Ui,
}

pub fn read_lockfile(located: &Located) -> Result<Vec<u8>> {
    std::fs::read(&located.path).map_err(Error::io("reading", &located.path))
}

/// Parses what [`read_lockfile`] read; the result borrows names from `bytes`.
pub fn parse_lockfile<'t>(located: &Located, bytes: &'t [u8]) -> Result<Lockfile<'t>> {
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

pub fn select<'a>(
    located: &Located,
    lock: &'a Lockfile,
    root: &str,
    local: &Platform,
    force_ruby: bool,
) -> Result<Closure<'a>> {
    closure::select(lock, root, local, force_ruby).map_err(|source| Error::Closure {
        path: located.path.clone(),
        source: Box::new(source),
    })
}

/// What to download for each gem of the closure that comes from a gem server. A source or mirror that is not an
/// http(s) URL is refused here, before anything is fetched: `-o…`, `--config=…` or `file://…` is a typo or an
/// attack, and is never requested nor handed on.
pub fn requests(
    located: &Located,
    lock: &Lockfile,
    closure: &Closure<'_>,
    settings: &BundlerSettings,
) -> Result<Vec<GemRequest>> {
    let mut checked = std::collections::HashSet::new();
    let mut out = Vec::new();
    for g in &closure.gems {
        let source = &lock.sources[g.spec.source];
        let SourceKind::Gem { remotes } = &source.kind else {
            continue;
        };
        if checked.insert(g.spec.source) {
            check_remotes(located, source.line, remotes, settings)?;
        }
        out.push(GemRequest {
            name: g.spec.name.to_owned(),
            version: g.spec.version.to_string(),
            platform: g.spec.platform.to_owned(),
            full_name: g.spec.full_name(),
            remotes: remotes.clone(),
            expected: g.sha256,
        });
    }
    Ok(out)
}

/// Each remote of a GEM block (its `remote:` lines follow the header at `header_line`), and each mirror set for
/// it, must be an http(s) URL.
fn check_remotes(
    located: &Located,
    header_line: usize,
    remotes: &[String],
    settings: &BundlerSettings,
) -> Result<()> {
    let is_http = |s: &str| {
        url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
    };
    for (i, remote) in remotes.iter().enumerate() {
        if !is_http(remote) {
            return Err(Error::Server {
                scope: crate::error::Scope::Source,
                message: format!(
                    "{}:{}: the gem source `{}` is not an http(s) URL",
                    located.path.display(),
                    header_line + 1 + i,
                    crate::error::redact_url(remote)
                ),
                hint: "fix the Gemfile's `source` line (e.g. source \"https://rubygems.org\") and run `bundle lock`"
                    .into(),
            });
        }
        for mirror in settings.mirrors_for(&crate::error::redact_url(remote)) {
            if !is_http(&mirror.uri) {
                return Err(Error::Server {
                    scope: crate::error::Scope::Source,
                    message: format!(
                        "the mirror `{}` for {} ({}) is not an http(s) URL",
                        crate::error::redact_url(&mirror.uri),
                        crate::error::redact_url(remote),
                        mirror.from
                    ),
                    hint:
                        "set the mirror to the http(s) URL of a gem server, or remove the setting"
                            .into(),
                });
            }
        }
    }
    Ok(())
}

/// The environment's key: the closure as locked (names, versions, platforms, sources, checksums), what
/// identifies each GIT and PATH gem's content (full revision; directory fingerprint), the Ruby ABI and platform,
/// and the cache layout.
pub fn env_key(
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

/// The CI cache key: the closure as it would be cached (names, versions, platforms, checksums), the OS and
/// CPU, and the layout version. Gem servers are left out: the same verified bytes from a mirror are the same
/// cache. A GIT gem's revision is its checksum; a PATH gem adds its path only, since its fingerprint (file
/// times) differs on every CI checkout: the launcher rebuilds it when the restored one does not match. The
/// pinned launcher version is in it too, since `bin/kamal` caches that binary in the same directory.
pub fn ci_key(lock: &Lockfile, closure: &Closure<'_>, local: &Platform) -> String {
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

/// The binary to hand over to when the lockfile pins another kamal-launcher version, fetched and verified into
/// the cache if needed; `None` to go on as this binary.
pub fn pinned_launcher(s: &Session<'_, '_>) -> Result<Option<PathBuf>> {
    let Session {
        located,
        lock,
        settings,
        cache,
        opts,
        ui,
    } = *s;
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
            let from = pinned::Pinned {
                cache,
                settings,
                lock,
                pin: &pin,
            };
            let binary = from
                .ensure(fetch_options(opts, 1), ui)
                .map_err(|e| pinned::not_obtained(&located.path, &pinned, e))?;
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

pub fn fetch_options(opts: &Options, jobs: usize) -> FetchOptions {
    FetchOptions {
        offline: opts.offline,
        allow_unverified: opts.allow_unverified,
        jobs,
    }
}

/// The cold path: fetch, verify, install, assemble. Returns a short summary of the work done.
pub fn prepare(
    s: &Session<'_, '_>,
    ruby: &Ruby,
    info: &RubyInfo,
    closure: &Closure<'_>,
    sourced: &[SourceGem<'_>],
    env_dir: &Path,
) -> Result<String> {
    let Session {
        cache,
        settings,
        lock,
        opts,
        ui,
        ..
    } = *s;
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
    let requests = requests(s.located, lock, closure, settings)?;
    let key = env_dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    // Taken before downloading: a concurrent launcher preparing the same environment waits, then finds it done.
    let _env_lock = cache.lock(&format!("env-{key}"))?;
    if env::check(env_dir, env::Depth::Full).is_ok() {
        return Ok("installed by a concurrent run".to_string());
    }
    let unit_of = |r: &GemRequest, f: &fetch::Fetched| Unit {
        name: r.name.clone(),
        full_name: r.full_name.clone(),
        gem_file: f.path.clone(),
        dir: cache.unit(&abi, &r.full_name, &f.sha256),
    };
    let mut fetched = Vec::new();
    // Installing starts with the first verified gem, while the rest download.
    let total = source_units.len() + requests.len();
    let installed = install::install_units(cache, ruby, jobs, ui, total, |feeder| {
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
    env::assemble(cache, env_dir, &plan)?;
    Ok(if built > 0 {
        format!("{downloaded} downloaded, {built} built from source, {installed} installed")
    } else {
        format!("{downloaded} downloaded, {installed} installed")
    })
}
