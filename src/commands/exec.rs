//! `exec` and `install`: the warm path (an installed environment is complete by construction) or the cold one
//! (`pipeline::prepare`), then, for `exec`, Ruby in place of this process.

use std::ffi::OsString;

use crate::cache;
use crate::env;
use crate::error::Result;
use crate::exec;
use crate::pipeline::{Session, env_key, prepare, select};
use crate::platform::Platform;
use crate::ruby;
use crate::sources;

/// Installs the closure if needed; with `args`, runs kamal with them (and returns only on failure).
pub fn run(s: &Session<'_, '_>, args: Option<&[OsString]>) -> Result<()> {
    let (cache, ui) = (s.cache, s.ui);
    let path_var = std::env::var_os("PATH");
    let ruby = ruby::find(s.opts.ruby.as_deref(), path_var.as_deref())?;
    let info = ruby.info(cache)?;
    let local = Platform::parse(&info.platform);
    let force_ruby = s.settings.flag("force_ruby_platform");
    let closure = select(s.located, s.lock, &s.opts.gem, &local, force_ruby)?;
    // GIT and PATH gems are identified by revision and directory fingerprint: both are in the key.
    let sourced = sources::resolve(s.located.app_dir(), s.lock, &closure)?;
    let key = env_key(s.lock, &closure, &info, &sourced);
    let env_dir = cache.env(&key);
    let root = &closure.gems[closure.root].spec;
    // `install` is the repair tool: it reads back every installed gem. The warm path reads back only the
    // environment's own small files, so that an emptied manifest or boot.rb is rebuilt, never run as nothing.
    let depth = match args {
        None => env::Depth::Full,
        Some(_) => env::Depth::Own,
    };
    let installed = match env::check(&env_dir, depth) {
        Ok(()) => true,
        Err(env::Unusable::Missing) => false,
        Err(env::Unusable::Damaged(damage)) => {
            ui.warn(&format!(
                "the installed {} {} is damaged ({damage}); repairing it",
                root.name, root.version
            ));
            false
        }
    };
    // One line: what is ready, and where (warm) or how long it took (cold), never both.
    let said = |what: String| {
        let gems = crate::ui::count(closure.gems.len(), "gem", "gems");
        ui.summary(&format!("{} {}: {gems} {what}", root.name, root.version));
    };
    if installed {
        // A cache that became noexec (remounted, restored onto a hardened mount) would run kamal without its
        // native extensions, whose load failure net-ssh swallows: said here, by one statvfs, not found out later.
        crate::trust::check_mounted_exec(&env_dir, cache.dir())?;
        cache::touch(&env_dir.join("last-used"));
        if args.is_none() {
            // What crashed runs left (temporary areas, bytecode being written) goes here and on the cold
            // path, never on the warm one.
            cache.sweep();
            // `install` read every installed file back against its record (`Depth::Full`).
            said(format!(
                "already installed and intact in {}",
                cache.dir().display()
            ));
        }
    } else {
        // Once, before anything is built: on a noexec mount a native build fails in misleading words ("lack of
        // necessary libraries"), or succeeds and never loads.
        crate::trust::check_exec(&cache.temp_path("exec-probe")?, cache.dir())?;
        let started = std::time::Instant::now();
        let summary = prepare(s, &ruby, &info, &closure, &sourced, &env_dir)?;
        let took = started.elapsed().as_secs_f64();
        // Unverified gems were each warned about; the others were verified like every gem without the option.
        let verified = if s.opts.allow_unverified {
            ""
        } else {
            "verified and "
        };
        said(format!("{verified}ready in {took:.1}s ({summary})"));
    }
    // A probe memo written on the way may have opened this run's temporary area; exec skips destructors.
    cache.finish();
    match args {
        Some(args) => Err(exec::exec(
            &ruby,
            &env_dir,
            root.name,
            s.opts.exe.as_deref(),
            args,
        )),
        None => Ok(()),
    }
}
