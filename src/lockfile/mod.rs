//! Bundler's `Gemfile.lock`: the model ([`Lockfile`] and what it holds), its parser (`parser.rs`) and the
//! errors a malformed file gets (`error.rs`).
//!
//! The parser accepts what Bundler writes, section by section, and refuses anything it cannot read with
//! certainty: names, versions and platforms from this file end up in download URLs and install paths, so a line
//! that is not understood is an error with its line number, never a guess.

use std::ops::Range;

use crate::version::{Requirement, Version};

mod error;
// The grammar: `Lockfile::parse` and `Lockfile::parse_bytes` are implemented there.
mod parser;

pub use error::{ParseError, ParseErrorKind};

/// The parsed contents of a `Gemfile.lock`. Names, platforms and requirements are borrowed from the text, so
/// that even a large lockfile is read with few allocations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lockfile<'t> {
    /// Source blocks (GEM, GIT, PATH, PLUGIN SOURCE) in file order.
    pub sources: Vec<Source>,
    /// Every locked gem of every source, in file order.
    pub specs: Vec<Spec<'t>>,
    /// The PLATFORMS section, as written.
    pub platforms: Vec<&'t str>,
    /// The DEPENDENCIES section: the Gemfile's direct dependencies.
    pub dependencies: Vec<Dependency<'t>>,
    /// CHECKSUMS lines that carry a sha256 digest; entries without one are not stored.
    pub checksums: Vec<ChecksumEntry<'t>>,
    /// The RUBY VERSION value, e.g. `ruby 3.4.8`.
    pub ruby_version: Option<&'t str>,
    /// The BUNDLED WITH value, e.g. `2.6.5`.
    pub bundled_with: Option<&'t str>,
    /// Every spec's dependencies, one spec after another; see [`Lockfile::dependencies_of`].
    spec_dependencies: Vec<Dependency<'t>>,
    /// Per [`NameId`], the first spec with that name, or `NONE`; the rest follow `Spec::next_variant`.
    first_variant: Vec<u32>,
}

/// A gem name as a number: every spec, dependency and checksum that spells a name alike has the same one, so
/// that walking the graph needs no string hashing. Numbers are dense, from 0 to [`Lockfile::name_count`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NameId(u32);

impl NameId {
    /// The number, to index per-name tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// No spec or checksum: the end of a chain.
const NONE: u32 = u32::MAX;

/// What kind of source a block describes, with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A gem server (`GEM`); `remotes` keeps the file order of the `remote:` lines.
    Gem { remotes: Vec<String> },
    /// A Git checkout (`GIT`).
    Git {
        remote: String,
        revision: String,
        branch: Option<String>,
        tag: Option<String>,
        reference: Option<String>,
        submodules: bool,
        glob: Option<String>,
    },
    /// A local directory (`PATH`), relative to the Gemfile.
    Path { path: String, glob: Option<String> },
    /// A Bundler plugin source (`PLUGIN SOURCE`); `options` holds every key but `remote` and `type`.
    Plugin {
        remote: String,
        plugin_type: Option<String>,
        options: Vec<(String, String)>,
    },
}

/// One source block of the lockfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The kind and options of the source.
    pub kind: SourceKind,
    /// 1-based line of the block's header.
    pub line: usize,
}

impl Source {
    /// The fields that decide what the source delivers, for cache keys: never the wording of a message, so that
    /// rewording one cannot move every environment.
    pub fn key_parts(&self) -> Vec<&str> {
        fn opt(o: &Option<String>) -> &str {
            o.as_deref().unwrap_or("")
        }
        match &self.kind {
            SourceKind::Gem { remotes } => std::iter::once("gem")
                .chain(remotes.iter().map(String::as_str))
                .collect(),
            SourceKind::Git {
                remote,
                revision,
                submodules,
                glob,
                ..
            } => vec![
                "git",
                remote,
                revision,
                if *submodules { "submodules" } else { "" },
                opt(glob),
            ],
            SourceKind::Path { path, glob } => vec!["path", path, opt(glob)],
            SourceKind::Plugin {
                remote,
                plugin_type,
                ..
            } => vec!["plugin", remote, opt(plugin_type)],
        }
    }

    /// A short human-readable description for messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            SourceKind::Gem { remotes } if remotes.is_empty() => {
                "gem source without a remote".to_owned()
            }
            SourceKind::Gem { remotes } => remotes.join(", "),
            SourceKind::Git {
                remote,
                revision,
                branch,
                tag,
                reference,
                ..
            } => {
                let short: String = revision.chars().take(7).collect();
                match branch.as_ref().or(tag.as_ref()).or(reference.as_ref()) {
                    Some(named) => format!("git {remote} (at {named}@{short})"),
                    None => format!("git {remote} (at {short})"),
                }
            }
            SourceKind::Path { path, .. } => format!("path {path}"),
            SourceKind::Plugin {
                remote,
                plugin_type: Some(kind),
                ..
            } => format!("plugin {kind} {remote}"),
            SourceKind::Plugin { remote, .. } => format!("plugin source {remote}"),
        }
    }
}

/// A locked gem: one name, version and platform from a source's `specs:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec<'t> {
    /// The gem name.
    pub name: &'t str,
    /// The name's number.
    pub name_id: NameId,
    /// The locked version.
    pub version: Version,
    /// The platform suffix, or `ruby` when there is none.
    pub platform: &'t str,
    /// Index into [`Lockfile::sources`].
    pub source: usize,
    /// The sha256 that CHECKSUMS records for this full name, if any.
    pub sha256: Option<[u8; 32]>,
    /// 1-based line of the spec.
    pub line: usize,
    /// Its runtime dependencies within `Lockfile::spec_dependencies`.
    dependencies: Range<u32>,
    /// The next spec (platform variant) with the same name, or `NONE`.
    next_variant: u32,
}

impl Spec<'_> {
    /// The RubyGems full name, e.g. `rake-13.0.6` or `nokogiri-1.16.0-x86_64-linux-gnu`.
    pub fn full_name(&self) -> String {
        FullName::new(self.name, self.version.as_str(), self.platform).joined()
    }
}

/// A full name (`name-version[-platform]`) kept as its parts. Bundler keys
/// specs and checksums by the joined text, so names are equal exactly when
/// their joined texts are; the text itself is built only when needed.
#[derive(Clone, Copy)]
struct FullName<'t> {
    pieces: [&'t str; 5],
}

impl<'t> FullName<'t> {
    fn new(name: &'t str, version: &'t str, platform: &'t str) -> FullName<'t> {
        let pieces = if platform == RUBY {
            [name, "-", version, "", ""]
        } else {
            [name, "-", version, "-", platform]
        };
        FullName { pieces }
    }

    fn len(&self) -> usize {
        self.pieces.iter().map(|p| p.len()).sum()
    }

    fn bytes(&self) -> impl Iterator<Item = u8> + 't {
        self.pieces.into_iter().flat_map(str::bytes)
    }

    fn joined(&self) -> String {
        self.pieces.concat()
    }
}

impl PartialEq for FullName<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.pieces == other.pieces || (self.len() == other.len() && self.bytes().eq(other.bytes()))
    }
}

impl Eq for FullName<'_> {}

const RUBY: &str = "ruby";

/// A dependency: under a spec, or in the DEPENDENCIES section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency<'t> {
    /// The gem name.
    pub name: &'t str,
    /// The name's number.
    pub name_id: NameId,
    /// The version constraints; empty means any version.
    pub requirement: Requirement<'t>,
    /// Whether the line ends in `!` (the Gemfile names a specific source for it).
    pub pinned: bool,
    /// 1-based line of the dependency.
    pub line: usize,
}

/// A CHECKSUMS entry that carries a sha256 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumEntry<'t> {
    /// The gem name.
    pub name: &'t str,
    /// The name's number.
    pub name_id: NameId,
    /// The version as written (checked to be a valid version).
    pub version: &'t str,
    /// The platform suffix, or `ruby` when there is none.
    pub platform: &'t str,
    /// The sha256 digest of the `.gem` file.
    pub sha256: [u8; 32],
    /// 1-based line of the entry.
    pub line: usize,
}

impl<'t> Lockfile<'t> {
    /// The runtime dependencies listed under `spec`, which must be one of this lockfile's specs.
    pub fn dependencies_of(&self, spec: &Spec<'t>) -> &[Dependency<'t>] {
        let Range { start, end } = spec.dependencies;
        &self.spec_dependencies[start as usize..end as usize]
    }

    /// Whether the text held none of a lockfile's sections (Bundler skips unknown ones, so a Gemfile parses).
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
            && self.platforms.is_empty()
            && self.dependencies.is_empty()
            && self.checksums.is_empty()
            && self.ruby_version.is_none()
            && self.bundled_with.is_none()
    }

    /// How many distinct names the lockfile spells: every [`NameId`] is below this.
    pub fn name_count(&self) -> usize {
        self.first_variant.len()
    }

    /// Indexes into [`Lockfile::specs`] of every locked variant (version and platform) of a name, in file order.
    pub fn variants(&self, name: NameId) -> impl Iterator<Item = usize> + '_ {
        let first = self
            .first_variant
            .get(name.index())
            .copied()
            .unwrap_or(NONE);
        std::iter::successors((first != NONE).then_some(first), |&at| {
            let next = self.specs[at as usize].next_variant;
            (next != NONE).then_some(next)
        })
        .map(|at| at as usize)
    }

    /// The recorded sha256 of a gem; the version must be written exactly as
    /// locked, since Bundler keys checksums by the full name's text. This scans
    /// the entries: for a locked spec, [`Spec::sha256`] is the direct answer.
    pub fn checksum(&self, name: &str, version: &Version, platform: &str) -> Option<&[u8; 32]> {
        let wanted = FullName::new(name, version.as_str(), platform);
        self.checksums
            .iter()
            .find(|c| FullName::new(c.name, c.version, c.platform) == wanted)
            .map(|c| &c.sha256)
    }

    /// Every locked variant (version and platform) of the named gem.
    pub fn specs_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Spec<'t>> {
        self.specs.iter().filter(move |s| s.name == name)
    }
}
