//! `plan`: what would be installed, and from where (the output format is `crate::plan`'s).

use crate::error::Result;
use crate::fetch;
use crate::pipeline::{Session, requests, select};
use crate::plan;
use crate::platform::{self, Platform};
use crate::ruby;

/// Prints the plan for this Ruby's platform, or `platform`'s, as a table or JSON.
pub fn run(s: &Session<'_, '_>, json: bool, platform: Option<&str>) -> Result<()> {
    let path_var = std::env::var_os("PATH");
    // A plan needs no Ruby: the machine's own platform stands in when there is none.
    let local = match (
        platform,
        ruby::find(s.opts.ruby.as_deref(), path_var.as_deref()),
    ) {
        (Some(p), _) => Platform::parse(p),
        (None, Ok(ruby)) => Platform::parse(&ruby.info(s.cache)?.platform),
        (None, Err(_)) => platform::machine_platform(),
    };
    let force_ruby = s.settings.flag("force_ruby_platform") || platform == Some("ruby");
    let closure = select(s.located, s.lock, &s.opts.gem, &local, force_ruby)?;
    let requests = requests(s.lock, &closure);
    let sums = fetch::known_checksums(s.cache, s.settings, &requests, s.opts.offline);
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
        lockfile: s.located.path.display().to_string(),
        root: s.opts.gem.clone(),
        platform: local.to_string(),
        gems: plan::entries(s.lock, &closure, &sums),
    };
    let out = if json {
        plan::to_json(&plan) + "\n"
    } else {
        plan::to_table(&plan)
    };
    print!("{out}");
    Ok(())
}
