//! `plan`: what would be installed, and from where, as a table or as JSON.

use serde::Serialize;

use crate::closure::Closure;
use crate::error::redact_url;
use crate::lockfile::{Lockfile, SourceKind};

/// One gem of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Gem name.
    pub name: String,
    /// Locked version.
    pub version: String,
    /// Chosen platform (`ruby` for the generic gem).
    pub platform: String,
    /// The remote (GEM), repository (GIT) or path (PATH) it comes from, without credentials.
    pub source: String,
    /// `gem`, `git`, `path` or `plugin`.
    pub source_type: &'static str,
    /// The git revision for GIT sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Hex SHA-256 of the `.gem`, when known.
    pub sha256: Option<String>,
    /// Why the SHA-256 of a gem from a gem server is not known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256_unknown: Option<String>,
}

/// A gem's digest, or why it is not known.
pub type Digest = Result<[u8; 32], crate::fetch::Unknown>;

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The lockfile read.
    pub lockfile: String,
    /// The root gem.
    pub root: String,
    /// The platform the variants were chosen for.
    pub platform: String,
    /// The closure, sorted by name.
    pub gems: Vec<Entry>,
}

/// Describes where a closure's gems come from; `sha256` gives each gem's digest or why it is unknown (`None`
/// for GIT and PATH gems, which have none).
pub fn entries(lock: &Lockfile, closure: &Closure<'_>, sha256: &[Option<Digest>]) -> Vec<Entry> {
    closure
        .gems
        .iter()
        .zip(sha256)
        .map(|(g, sum)| {
            let source = &lock.sources[g.spec.source];
            let (source_type, location, revision) = match &source.kind {
                SourceKind::Gem { remotes } => (
                    "gem",
                    remotes.first().map(|r| redact_url(r)).unwrap_or_default(),
                    None,
                ),
                SourceKind::Git {
                    remote, revision, ..
                } => ("git", redact_url(remote), Some(revision.clone())),
                SourceKind::Path { path, .. } => ("path", path.clone(), None),
                SourceKind::Plugin { remote, .. } => ("plugin", redact_url(remote), None),
            };
            Entry {
                name: g.spec.name.to_owned(),
                version: g.spec.version.to_string(),
                platform: g.spec.platform.to_owned(),
                source: location,
                source_type,
                revision,
                sha256: sum.as_ref().and_then(|s| s.as_ref().ok()).map(hex::encode),
                sha256_unknown: sum
                    .as_ref()
                    .and_then(|s| s.as_ref().err())
                    .map(ToString::to_string),
            }
        })
        .collect()
}

/// Pretty JSON, stable key and gem order.
pub fn to_json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).expect("plans serialize")
}

/// An aligned table for people.
pub fn to_table(plan: &Plan) -> String {
    let headers = ["GEM", "VERSION", "PLATFORM", "SOURCE", "SHA256"];
    let rows: Vec<[String; 5]> = plan
        .gems
        .iter()
        .map(|e| {
            [
                e.name.clone(),
                e.version.clone(),
                e.platform.clone(),
                match &e.revision {
                    Some(rev) => format!("{} @ {}", e.source, &rev[..rev.len().min(12)]),
                    None => e.source.clone(),
                },
                e.sha256
                    .as_deref()
                    .map_or("-".to_string(), |s| format!("{}…", &s[..12])),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| -> String {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = format!(
        "{} {} for {} ({} gems) from {}\n",
        plan.root,
        plan.gems
            .iter()
            .find(|g| g.name == plan.root)
            .map_or("", |g| g.version.as_str()),
        plan.platform,
        plan.gems.len(),
        plan.lockfile
    );
    out.push_str(&line(&headers));
    for row in &rows {
        out.push_str(&line(&row.each_ref().map(String::as_str)));
    }
    out.push_str(&unknown_digests(&plan.gems));
    out
}

/// What the `-` cells mean: the unknown digests grouped by reason, with the first gem's detail.
fn unknown_digests(gems: &[Entry]) -> String {
    let mut groups: Vec<(&str, Vec<&str>, &str)> = Vec::new();
    for gem in gems {
        let Some(why) = &gem.sha256_unknown else {
            continue;
        };
        let (kind, detail) = why.split_once(": ").unwrap_or((why, ""));
        match groups.iter_mut().find(|(k, ..)| *k == kind) {
            Some((_, names, _)) => names.push(&gem.name),
            None => groups.push((kind, vec![&gem.name], detail)),
        }
    }
    let mut out = String::new();
    for (kind, names, detail) in groups {
        out.push_str(&format!(
            "SHA256 unknown for {} gem(s), {kind}: {}\n  {detail}\n",
            names.len(),
            names.join(", ")
        ));
    }
    out
}
