//! `plan`: what would be installed, and from where, as a table that fits the terminal or as JSON. It answers what
//! users ask before an install: which source, whether each checksum is known and where it came from, what is
//! already here (installed, downloaded) and which gems build a native extension (they need a compiler).

use serde::Serialize;

use crate::closure::Closure;
use crate::error::redact_url;
use crate::lockfile::{Lockfile, SourceKind};
use crate::ui::count;

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
    /// Where the SHA-256 comes from, when known.
    pub sha256_origin: Option<Origin>,
    /// Why the SHA-256 of a gem from a gem server is not known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256_unknown: Option<String>,
    /// What is already in the cache.
    pub status: Status,
    /// Whether installing it builds a native extension (`null`: not known before it is downloaded).
    pub native_extension: Option<bool>,
}

/// Where a checksum comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The lockfile's `CHECKSUMS` section (Bundler 2.6 and later write it).
    Lockfile,
    /// The source's compact index (`info/NAME`), or this machine's verified copy of it.
    Index,
}

/// What the cache holds of a gem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Installed for this Ruby: an install uses it as it is.
    Installed,
    /// Its verified `.gem` is in the cache: an install installs it without the network.
    Downloaded,
    /// An install downloads it.
    ToDownload,
    /// A GIT or PATH gem an install builds with `gem build`.
    ToBuild,
}

impl Status {
    fn words(self) -> &'static str {
        match self {
            Status::Installed => "installed",
            Status::Downloaded => "downloaded",
            Status::ToDownload => "to download",
            Status::ToBuild => "to build",
        }
    }
}

/// A gem's digest, or why it is not known.
pub type Digest = Result<[u8; 32], crate::fetch::Unknown>;

/// What the lockfile, the source and the cache say of one gem of the closure.
#[derive(Debug, Clone)]
pub struct Known {
    /// Its digest or why it is not known (`None` for GIT and PATH gems, which have none).
    pub digest: Option<Digest>,
    /// Where the digest comes from.
    pub origin: Option<Origin>,
    /// What the cache holds of it.
    pub status: Status,
    /// Whether it builds a native extension, when known.
    pub native: Option<bool>,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The lockfile read.
    pub lockfile: String,
    /// The root gem.
    pub root: String,
    /// The root gem's locked version.
    pub root_version: String,
    /// The platform the variants were chosen for.
    pub platform: String,
    /// The closure, sorted by name.
    pub gems: Vec<Entry>,
}

/// Describes where a closure's gems come from and what is known of them (`known`, one per gem, in order).
pub fn entries(lock: &Lockfile, closure: &Closure<'_>, known: &[Known]) -> Vec<Entry> {
    closure
        .gems
        .iter()
        .zip(known)
        .map(|(g, known)| {
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
            let sum = known.digest.as_ref();
            let sha256 = sum.and_then(|s| s.as_ref().ok()).map(hex::encode);
            Entry {
                name: g.spec.name.to_owned(),
                version: g.spec.version.to_string(),
                platform: g.spec.platform.to_owned(),
                source: location,
                source_type,
                revision,
                sha256_origin: sha256.as_ref().and(known.origin),
                sha256,
                sha256_unknown: sum.and_then(|s| s.as_ref().err()).map(ToString::to_string),
                status: known.status,
                native_extension: known.native,
            }
        })
        .collect()
}

/// Pretty JSON, stable key and gem order.
pub fn to_json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).expect("plans serialize")
}

/// `n` of `total`, as people say it: "all 6" when it is all of them.
fn all_or(n: usize, total: usize) -> String {
    if n == total && total > 1 {
        format!("all {total}")
    } else {
        n.to_string()
    }
}

/// Where a gem comes from, as a cell: the remote, or the repository at its revision.
fn source_cell(e: &Entry) -> String {
    match &e.revision {
        Some(rev) => format!("{} @ {}", e.source, &rev[..rev.len().min(12)]),
        None => e.source.clone(),
    }
}

/// A table for people, `width` columns wide at most: a header that says once what is the same for every gem
/// (the source, where checksums come from, what is here, what needs a compiler), then a row per gem, then why a
/// checksum is not known.
pub fn to_table(plan: &Plan, width: usize) -> String {
    let gems = &plan.gems;
    let total = gems.len();
    let mut out = format!(
        "{} {} for {}: {}\n",
        plan.root,
        plan.root_version,
        plan.platform,
        count(total, "gem", "gems")
    );
    let mut fact = |key: &str, value: &str| out.push_str(&fact_line(key, value, width));
    fact("lockfile", &plan.lockfile);

    let mut sources: Vec<String> = gems.iter().map(source_cell).collect();
    sources.sort();
    sources.dedup();
    let one_source = sources.len() == 1;
    if one_source {
        fact("source", &sources[0]);
    } else {
        fact("sources", &format!("{} (see SOURCE)", sources.len()));
    }

    let has_digest = gems.iter().filter(|g| g.source_type == "gem").count();
    let by_origin = |o: Origin| gems.iter().filter(|g| g.sha256_origin == Some(o)).count();
    let (from_lock, from_index) = (by_origin(Origin::Lockfile), by_origin(Origin::Index));
    let unknown = gems.iter().filter(|g| g.sha256_unknown.is_some()).count();
    let mut origins = Vec::new();
    if from_lock > 0 {
        origins.push(format!(
            "the lockfile's CHECKSUMS ({})",
            all_or(from_lock, has_digest)
        ));
    }
    if from_index > 0 {
        origins.push(format!(
            "the source's index ({})",
            all_or(from_index, has_digest)
        ));
    }
    if unknown > 0 {
        origins.push(format!(
            "unknown for {} (below)",
            all_or(unknown, has_digest)
        ));
    }
    if !origins.is_empty() {
        fact("checksums", &origins.join(", "));
    }

    let mut statuses = Vec::new();
    for status in [
        Status::Installed,
        Status::Downloaded,
        Status::ToDownload,
        Status::ToBuild,
    ] {
        let n = gems.iter().filter(|g| g.status == status).count();
        if n > 0 {
            statuses.push(format!("{} {}", all_or(n, total), status.words()));
        }
    }
    fact("status", &statuses.join(", "));

    let native: Vec<&str> = gems
        .iter()
        .filter(|g| g.native_extension == Some(true))
        .map(|g| g.name.as_str())
        .collect();
    let not_known = gems.iter().filter(|g| g.native_extension.is_none()).count();
    // Whether installing needs a C compiler (and Ruby's headers), which a bare CI runner may lack.
    let not_downloaded = count(not_known, "gem", "gems");
    let says = match (native.as_slice(), not_known) {
        ([], 0) => "not needed: no gem builds a native extension".to_string(),
        ([], n) if n == total => "not known before the gems are downloaded".to_string(),
        ([], _) => format!(
            "not known: {not_downloaded} not downloaded yet (the others build no native extension)"
        ),
        ([one], n) => format!(
            "needed: {one} builds a native extension{}",
            if n > 0 {
                format!("; {not_downloaded} not downloaded yet may too")
            } else {
                String::new()
            }
        ),
        (many, n) => format!(
            "needed: {} build native extensions{}",
            many.join(", "),
            if n > 0 {
                format!("; {not_downloaded} not downloaded yet may too")
            } else {
                String::new()
            }
        ),
    };
    fact("compiler", &says);
    out.push('\n');

    out.push_str(&rows(plan, width, one_source, !native.is_empty()));
    out.push_str(&unknown_digests(gems, has_digest));
    out
}

/// `key  value` under the title, the value wrapped at spaces to `width` under itself.
fn fact_line(key: &str, value: &str, width: usize) -> String {
    const INDENT: usize = 13;
    let room = width.saturating_sub(INDENT + 1).max(20);
    let mut lines: Vec<String> = vec![String::new()];
    for word in value.split(' ') {
        let last = lines.last_mut().expect("one line at least");
        if last.is_empty() {
            last.push_str(word);
        } else if last.chars().count() + 1 + word.chars().count() <= room {
            last.push(' ');
            last.push_str(word);
        } else {
            lines.push(word.to_string());
        }
    }
    let mut out = format!("  {key:<10} {}\n", lines[0]);
    for line in &lines[1..] {
        out.push_str(&format!("{:INDENT$}{line}\n", ""));
    }
    out
}

/// One column of the table.
struct Column {
    header: &'static str,
    cells: Vec<String>,
}

impl Column {
    fn width(&self) -> usize {
        self.cells
            .iter()
            .map(|c| c.chars().count())
            .chain([self.header.len()])
            .max()
            .unwrap_or(0)
    }
}

/// The table's rows, fitted to `width`: the SHA-256 shortened, the sources cut, then the SHA-256, where each
/// checksum comes from and the sources left out (the JSON has them), in that order.
fn rows(plan: &Plan, width: usize, one_source: bool, native_column: bool) -> String {
    let gems = &plan.gems;
    let column = |header: &'static str, cell: &dyn Fn(&Entry) -> String| Column {
        header,
        cells: gems.iter().map(cell).collect(),
    };
    let sha = |hex: usize| {
        column("SHA256", &|e| {
            e.sha256
                .as_deref()
                .map_or("-".to_string(), |s| format!("{}…", &s[..hex]))
        })
    };
    let mixed_origins = gems
        .iter()
        .any(|g| g.sha256_origin == Some(Origin::Lockfile))
        && gems.iter().any(|g| g.sha256_origin == Some(Origin::Index));
    let mut columns = vec![
        column("GEM", &|e| e.name.clone()),
        column("VERSION", &|e| {
            if e.platform == "ruby" {
                e.version.clone()
            } else {
                format!("{}-{}", e.version, e.platform)
            }
        }),
        column("STATUS", &|e| e.status.words().to_string()),
    ];
    // Not one known: the column would be all dashes (why is said below the table).
    if gems.iter().any(|e| e.sha256.is_some()) {
        columns.push(sha(12));
    }
    if mixed_origins {
        columns.push(column("FROM", &|e| {
            match e.sha256_origin {
                Some(Origin::Lockfile) => "lockfile",
                Some(Origin::Index) => "index",
                None => "",
            }
            .to_string()
        }));
    }
    if !one_source {
        // The host is what tells sources apart: the scheme goes, to keep it.
        columns.push(column("SOURCE", &|e| {
            let cell = source_cell(e);
            match cell.split_once("://") {
                Some((_, rest)) => rest.to_string(),
                None => cell,
            }
        }));
    }
    if native_column {
        columns.push(column("NATIVE", &|e| {
            match e.native_extension {
                Some(true) => "yes",
                Some(false) => "",
                None => "?",
            }
            .to_string()
        }));
    }
    let room = width.saturating_sub(1);
    let total = |columns: &[Column]| {
        columns.iter().map(Column::width).sum::<usize>() + 2 * columns.len().saturating_sub(1)
    };
    let position =
        |columns: &[Column], header: &str| columns.iter().position(|c| c.header == header);
    let mut left_out = Vec::new();
    while total(&columns) > room {
        let excess = total(&columns) - room;
        if let Some(i) = position(&columns, "SHA256")
            && columns[i].width() > 9
        {
            columns[i] = sha(8);
        } else if let Some(i) = position(&columns, "SOURCE")
            && columns[i].width() > 16
        {
            let keep = columns[i].width().saturating_sub(excess).max(16);
            for cell in &mut columns[i].cells {
                *cell = cut(cell, keep);
            }
        } else if let Some(i) = ["SHA256", "FROM", "SOURCE"]
            .iter()
            .find_map(|h| position(&columns, h))
        {
            left_out.push(columns.remove(i).header);
        } else {
            break;
        }
    }

    let widths: Vec<usize> = columns.iter().map(Column::width).collect();
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
    let headers: Vec<&str> = columns.iter().map(|c| c.header).collect();
    let mut out = line(&headers);
    for row in 0..gems.len() {
        let cells: Vec<&str> = columns.iter().map(|c| c.cells[row].as_str()).collect();
        out.push_str(&line(&cells));
    }
    let mut notes = Vec::new();
    if !left_out.is_empty() {
        notes.push(format!(
            "{} left out to fit: see `plan --json`",
            left_out.join(" and ")
        ));
    }
    if native_column && gems.iter().any(|e| e.native_extension.is_none()) {
        notes.push("NATIVE ?: known once the gem is downloaded".to_string());
    }
    if !notes.is_empty() {
        out.push('\n');
        for note in notes {
            out.push_str(&note);
            out.push('\n');
        }
    }
    out
}

/// `text` cut to `room` characters, ending in `…` when cut.
fn cut(text: &str, room: usize) -> String {
    if text.chars().count() <= room {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(room.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Why checksums are unknown: grouped by reason, the gems named ("all N" when it is every gem from a server),
/// with the first gem's detail.
fn unknown_digests(gems: &[Entry], of: usize) -> String {
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
    let unknown = !groups.is_empty();
    for (kind, names, detail) in groups {
        out.push('\n');
        if names.len() == of && of > 1 {
            out.push_str(&format!("SHA256 unknown for all {of} gems, {kind}\n"));
        } else {
            out.push_str(&format!(
                "SHA256 unknown for {}, {kind}: {}\n",
                count(names.len(), "gem", "gems"),
                names.join(", ")
            ));
        }
        if !detail.is_empty() {
            out.push_str(&format!("  {detail}\n"));
        }
    }
    if unknown {
        out.push_str("hint: `bundle lock --add-checksums` records them\n");
    }
    out
}
