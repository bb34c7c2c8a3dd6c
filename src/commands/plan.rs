//! `plan`: what would be installed, and from where (the output format is `crate::plan`'s).

use std::path::Path;

use crate::cache::Cache;
use crate::env;
use crate::error::Result;
use crate::fetch;
use crate::package;
use crate::pipeline::{Session, env_key, requests, select};
use crate::plan::{self, Known, Origin, Status};
use crate::platform::{self, Platform};
use crate::record;
use crate::ruby;
use crate::sources;
use crate::ui;

/// Prints the plan for this Ruby's platform, or `platform`'s, as a table or JSON.
pub fn run(s: &Session<'_, '_>, json: bool, platform: Option<&str>) -> Result<()> {
    let path_var = std::env::var_os("PATH");
    // A plan needs no Ruby: the machine's own platform stands in when there is none. With one, what is
    // installed for it is said.
    let ruby = ruby::find(s.opts.ruby.as_deref(), path_var.as_deref());
    let info = match (platform, &ruby) {
        (None, Ok(ruby)) => Some(ruby.info(s.cache)?),
        (Some(_), Ok(ruby)) => ruby.info(s.cache).ok(),
        (_, Err(_)) => None,
    };
    let local = match (platform, &info) {
        (Some(p), _) => Platform::parse(p),
        (None, Some(info)) => Platform::parse(&info.platform),
        (None, None) => platform::machine_platform(),
    };
    let force_ruby = s.settings.flag("force_ruby_platform") || platform == Some("ruby");
    let closure = select(s.located, s.lock, &s.opts.gem, &local, force_ruby)?;
    let requests = requests(s.located, s.lock, &closure, s.settings)?;
    let sums = fetch::known_checksums(s.cache, s.settings, &requests, s.opts.offline);
    // By name, not by a search per gem: a hostile lockfile with a huge closure must stay linear.
    let by_name: std::collections::HashMap<&str, (&fetch::GemRequest, &plan::Digest)> = requests
        .iter()
        .zip(&sums)
        .map(|(r, s)| (r.full_name.as_str(), (r, s)))
        .collect();
    // The whole environment installed: every gem of it is, GIT and PATH gems included.
    let ready = info.as_ref().is_some_and(|info| {
        sources::resolve(s.located.app_dir(), s.lock, &closure).is_ok_and(|sourced| {
            let key = env_key(s.lock, &closure, info, &sourced);
            env::check(&s.cache.env(&key), env::Depth::Own).is_ok()
        })
    });
    let abi = info.as_ref().map(ruby::RubyInfo::abi);
    let known: Vec<Known> = closure
        .gems
        .iter()
        .map(|gem| {
            let full_name = gem.spec.full_name();
            match by_name.get(full_name.as_str()) {
                Some((request, digest)) => {
                    known_gem(s.cache, abi.as_deref(), ready, request, digest)
                }
                // GIT and PATH gems have no digest, and are built from their source.
                None => Known {
                    digest: None,
                    origin: None,
                    status: if ready {
                        Status::Installed
                    } else {
                        Status::ToBuild
                    },
                    native: None,
                },
            }
        })
        .collect();
    let root = &closure.gems[closure.root].spec;
    let plan = plan::Plan {
        lockfile: s.located.path.display().to_string(),
        root: s.opts.gem.clone(),
        root_version: root.version.to_string(),
        platform: local.to_string(),
        gems: plan::entries(s.lock, &closure, &known),
    };
    let out = if json {
        plan::to_json(&plan) + "\n"
    } else {
        // People read the lockfile's path from where they are.
        let shown = std::env::current_dir()
            .ok()
            .and_then(|cwd| s.located.path.strip_prefix(cwd).ok().map(Path::to_path_buf))
            .map(|p| p.display().to_string());
        let plan = plan::Plan {
            lockfile: shown.unwrap_or(plan.lockfile.clone()),
            ..plan
        };
        plan::to_table(&plan, ui::width())
    };
    print!("{out}");
    Ok(())
}

/// What is known of a gem from a gem server: its digest and where it comes from, what the cache holds of it,
/// and whether it builds a native extension (read from the downloaded gem, or the installed one).
fn known_gem(
    cache: &Cache,
    abi: Option<&str>,
    ready: bool,
    request: &fetch::GemRequest,
    digest: &plan::Digest,
) -> Known {
    let origin = match (request.expected, digest) {
        (Some(_), _) => Some(Origin::Lockfile),
        (None, Ok(_)) => Some(Origin::Index),
        (None, Err(_)) => None,
    };
    let Ok(sha) = digest else {
        return Known {
            digest: Some(digest.clone()),
            origin,
            status: Status::ToDownload,
            native: None,
        };
    };
    let unit = abi
        .map(|abi| cache.unit(abi, &request.full_name, sha))
        .filter(|dir| ready || record::verify(dir).is_ok());
    let download = fetch::verified_download(cache, sha);
    let native = match (&download, &unit) {
        (Some(gem), _) => Some(package::build_weight(gem) > 0),
        // An installed gem that built an extension keeps it under `extensions/`.
        (None, Some(dir)) => Some(dir.join("extensions").is_dir()),
        (None, None) => None,
    };
    let status = match (&unit, &download) {
        (Some(_), _) => Status::Installed,
        (None, Some(_)) => Status::Downloaded,
        (None, None) => Status::ToDownload,
    };
    Known {
        digest: Some(digest.clone()),
        origin,
        status,
        native,
    }
}
