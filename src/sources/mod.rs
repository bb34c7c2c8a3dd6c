//! Gems locked from GIT and PATH sources. Each is identified for the environment key (a git revision; a
//! directory's fingerprint), then turned into a `.gem` with `gem build` so that it installs into the store by
//! the same route as a downloaded gem.
//!
//! Built gems are not byte-reproducible (timestamps), so their store units are keyed by what identifies the
//! source content, not by the digest of the `.gem`.

mod build;
mod git;
mod path;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::closure::Closure;
use crate::error::{Error, Result};
use crate::install::Unit;
use crate::lockfile::{Lockfile, SourceKind, Spec};

pub use build::Context;
pub use git::GitSource;
pub use path::PathSource;

/// A gem of the closure that comes from a GIT or PATH source.
#[derive(Debug)]
pub struct SourceGem<'a> {
    /// The locked spec.
    pub spec: &'a Spec<'a>,
    /// Where its content comes from.
    pub origin: Origin,
}

/// The two kinds of source the launcher builds gems from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A commit of a git repository.
    Git(GitSource),
    /// A directory of the app, as it is now.
    Path(PathSource),
}

impl SourceGem<'_> {
    /// What identifies this gem's content: part of the environment key and of its store unit's name.
    pub fn identity(&self) -> String {
        match &self.origin {
            Origin::Git(g) => g.identity(),
            Origin::Path(p) => p.identity(),
        }
    }
}

/// The closure's GIT and PATH gems, located and identified. PATH directories are fingerprinted here, on every
/// run, because the fingerprint is part of the environment key.
pub fn resolve<'a>(
    app_dir: &Path,
    lock: &Lockfile,
    closure: &Closure<'a>,
) -> Result<Vec<SourceGem<'a>>> {
    let mut out = Vec::new();
    // Several gems of one PATH source (a monorepo) share one fingerprint.
    let mut paths: Vec<(usize, PathSource)> = Vec::new();
    for g in &closure.gems {
        let source = &lock.sources[g.spec.source];
        let origin = match &source.kind {
            SourceKind::Gem { .. } => continue,
            SourceKind::Git {
                remote,
                revision,
                reference,
                submodules,
                glob,
                ..
            } => Origin::Git(GitSource::new(
                app_dir,
                g.spec.name,
                remote,
                revision,
                reference.as_deref(),
                *submodules,
                glob.as_deref(),
            )?),
            SourceKind::Path { path, glob } => {
                match paths.iter().find(|(i, _)| *i == g.spec.source) {
                    Some((_, p)) => Origin::Path(p.clone()),
                    None => {
                        let p = PathSource::locate(app_dir, g.spec.name, path, glob.as_deref())?;
                        paths.push((g.spec.source, p.clone()));
                        Origin::Path(p)
                    }
                }
            }
            SourceKind::Plugin { .. } => {
                return Err(Error::Unsupported(format!(
                    "{} comes from {}; installing from Bundler plugin sources is not supported. \
                     {} shows the whole closure; lock {} from a gem server, git or a path \
                     to use the launcher",
                    g.spec.full_name(),
                    source.describe(),
                    crate::invocation::command("plan"),
                    g.spec.name
                )));
            }
        };
        out.push(SourceGem {
            spec: g.spec,
            origin,
        });
    }
    Ok(out)
}

/// Builds (or finds already built) every gem of `gems` and returns its store unit, in the order given.
/// Returns the units and how many gems were built in this run.
pub fn prepare(ctx: &Context<'_>, gems: &[SourceGem<'_>]) -> Result<(Vec<Unit>, usize)> {
    let mut units = Vec::with_capacity(gems.len());
    let mut built = 0;
    let mut missing = Vec::new();
    let todo: Vec<&SourceGem<'_>> = gems.iter().filter(|g| !unit_dir(ctx, g).is_dir()).collect();
    // No display at all (not even an empty bar for a moment) when everything is installed.
    let progress = (!todo.is_empty()).then(|| ctx.ui.progress_bar("Building", todo.len()));
    for gem in gems {
        let full_name = gem.spec.full_name();
        let dir = unit_dir(ctx, gem);
        if dir.is_dir() {
            // Installed before: nothing to fetch or build. The unit's .gem is never read.
            units.push(Unit {
                name: gem.spec.name.to_owned(),
                gem_file: dir.join("installed"),
                full_name,
                dir,
            });
            continue;
        }
        if let Some(p) = &progress {
            p.started(&full_name);
        }
        let gem_file = match &gem.origin {
            Origin::Git(g) => g.built_gem(ctx, gem.spec)?,
            Origin::Path(p) => Some(p.build(ctx, gem.spec)?),
        };
        if let Some(p) = &progress {
            p.finished(&full_name);
        }
        match gem_file {
            Some(gem_file) => {
                built += 1;
                units.push(Unit {
                    name: gem.spec.name.to_owned(),
                    full_name,
                    gem_file,
                    dir,
                });
            }
            None => missing.push(format!(
                "{full_name} from {}",
                match &gem.origin {
                    Origin::Git(g) => g.describe(),
                    Origin::Path(p) => p.describe(),
                }
            )),
        }
    }
    if !missing.is_empty() {
        return Err(Error::Offline(format!(
            "offline, and not in the cache: {}. Run once with the network (e.g. {}) to fetch and build {}",
            missing.join(", "),
            crate::invocation::command("install"),
            if missing.len() == 1 { "it" } else { "them" }
        )));
    }
    Ok((units, built))
}

/// The store unit of a source gem: keyed by its source identity, since its `.gem` differs at every build.
fn unit_dir(ctx: &Context<'_>, gem: &SourceGem<'_>) -> PathBuf {
    let full_name = gem.spec.full_name();
    let digest: [u8; 32] = Sha256::new()
        .chain_update(gem.identity().as_bytes())
        .chain_update([0u8])
        .chain_update(full_name.as_bytes())
        .finalize()
        .into();
    ctx.cache.unit(ctx.abi, &full_name, &digest)
}
