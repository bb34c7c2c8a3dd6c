//! Reading lockfile text into the model, one section at a time, with every refusal located by line.

use std::collections::HashMap;

use base64::Engine as _;

use super::*;
use crate::version::{Requirement, Version, VersionError};

impl<'t> Lockfile<'t> {
    /// Parses lockfile text.
    pub fn parse(text: &'t str) -> Result<Lockfile<'t>, ParseError> {
        Parser::default().run(text)
    }

    /// Parses raw bytes, reporting invalid UTF-8 with its line number.
    pub fn parse_bytes(bytes: &'t [u8]) -> Result<Lockfile<'t>, ParseError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Lockfile::parse(text),
            Err(e) => {
                let before = &bytes[..e.valid_up_to()];
                Err(ParseError {
                    line: before.iter().filter(|&&b| b == b'\n').count() + 1,
                    kind: ParseErrorKind::InvalidUtf8,
                })
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceHeader {
    Gem,
    Git,
    Path,
    Plugin,
}

impl SourceHeader {
    fn title(self) -> &'static str {
        match self {
            SourceHeader::Gem => "GEM",
            SourceHeader::Git => "GIT",
            SourceHeader::Path => "PATH",
            SourceHeader::Plugin => "PLUGIN SOURCE",
        }
    }
}

/// A source block being read; it becomes a [`Source`] at `  specs:`.
struct OpenSource {
    header: SourceHeader,
    line: usize,
    options: Vec<(String, String, usize)>,
    index: Option<usize>,
    /// The spec whose dependencies the following 6-space lines are; always the last spec read.
    current_spec: Option<usize>,
}

enum Section {
    /// Before the first header, or inside a section this parser does not
    /// know; Bundler skips those, so newer lockfiles still load.
    Ignored,
    Source(OpenSource),
    Platforms,
    Dependencies,
    Checksums,
    RubyVersion,
    BundledWith,
}

/// What the parser tracks per name while reading.
#[derive(Clone, Copy)]
struct Slot {
    /// The last spec with this name, to keep variants in file order.
    last_variant: u32,
    /// The first stored checksum with this name; the rest follow `Parser::next_checksum`.
    first_checksum: u32,
    /// The DEPENDENCIES line naming it, or 0.
    dependency_line: usize,
}

const EMPTY_SLOT: Slot = Slot {
    last_variant: NONE,
    first_checksum: NONE,
    dependency_line: 0,
};

/// The parser's indexes borrow the text, so reading an entry allocates only what the result keeps.
#[derive(Default)]
pub(super) struct Parser<'t> {
    out: Lockfile<'t>,
    /// Names to numbers. Hashed with a per-process random key: the file may come from anywhere, and
    /// foldhash is several times cheaper than SipHash on short names.
    ids: HashMap<&'t str, NameId, foldhash::fast::RandomState>,
    slots: Vec<Slot>,
    /// Per stored checksum, the next one with the same name, or `NONE`.
    next_checksum: Vec<u32>,
    /// Whether some spec or checksum name has a `-` before a digit. Bundler keys gems by the joined full name
    /// (`name-version-platform`), and only then can two different names join to the same one (`a-1 (2)` and
    /// `a (1-2)`): such files get a second, joined-text check after reading.
    joinable: bool,
}

const EXPECT_INDENT: &str = "an entry indented by 2, 4 or 6 spaces";
const EXPECT_OPTION: &str = "a source option like `  remote: https://rubygems.org/`, or `  specs:`";
const EXPECT_SPEC: &str =
    "a gem entry like `    rake (13.0.6)` or `    nokogiri (1.16.0-x86_64-linux)`";
const EXPECT_SPEC_DEPENDENCY: &str = "a dependency like `      rack (>= 2.2.4, < 4)`";
const EXPECT_DEPENDENCY: &str = "a dependency like `  rails (~> 8.0)` or `  rails!`";
const EXPECT_CHECKSUM: &str = "a checksum entry like `  rake (13.0.6) sha256=<64 hex digits>`";
const EXPECT_PLATFORM: &str = "a platform like `  x86_64-linux`";
const EXPECT_VALUE: &str = "a single value indented by 2 or 3 spaces, like `   2.6.5`";
const EXPECT_SUBMODULES: &str = "`  submodules: true` or `  submodules: false`";
const EXPECT_REVISION: &str = "a Git commit id like `  revision: 1a2b3c4…` (hexadecimal)";

/// Ruby's `\s`, which is what Bundler uses to tell headers from entries; all
/// of it is ASCII, so no byte of a multi-byte character can match.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// `s` split around the first ASCII byte `b`. Entries are short, so a plain byte loop beats both a `char`
/// pattern and `memchr`'s set-up.
fn split_once_byte(s: &str, b: u8) -> Option<(&str, &str)> {
    let at = s.bytes().position(|c| c == b)?;
    Some((&s[..at], &s[at + 1..]))
}

/// Whether `s` contains a space.
fn has_space(s: &str) -> bool {
    // Without an early exit the compiler checks many bytes at once; a checksum's 71 bytes are read whole.
    s.bytes().fold(false, |any, c| any | (c == b' '))
}

fn is_conflict_marker(line: &str) -> bool {
    line.starts_with(['<', '=', '>', '|'])
        && ["<<<<<<<", "=======", ">>>>>>>", "|||||||"]
            .iter()
            .any(|m| line.starts_with(m))
}

/// Whether `line` has a control character; printable ASCII, nearly every line, is settled without decoding.
fn has_control(line: &str) -> bool {
    // A fold without early exit lets the compiler check many bytes at once.
    let printable = line
        .bytes()
        .fold(true, |all, b| all & (0x20..0x7f).contains(&b));
    !printable && line.chars().any(char::is_control)
}

/// Whether a `-` in `name` is followed by a digit, the start of a version.
fn has_dash_digit(name: &str) -> bool {
    name.as_bytes()
        .windows(2)
        .any(|pair| pair[0] == b'-' && pair[1].is_ascii_digit())
}

/// One line of the file, as the section loop sees it.
enum Line<'t> {
    /// Empty or whitespace only.
    Blank,
    /// Unindented: a section header, known or not.
    Header(&'t str),
    /// Anything indented, without trailing blanks.
    Entry { line: &'t str, indent: usize },
}

/// Cuts a raw line (without its `\n`) into what [`Line`] tells apart.
fn classify(raw: &str) -> Result<Line<'_>, ParseErrorKind> {
    let line = raw.strip_suffix('\r').unwrap_or(raw);
    if is_conflict_marker(line) {
        return Err(ParseErrorKind::MergeConflict);
    }
    // Trailing blanks are invisible in editors; they must not change meaning.
    let blank_end = line
        .bytes()
        .rposition(|b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    let line = &line[..blank_end];
    // Entries are indented by spaces only; one scan finds the indent and tells a blank line.
    let indent = line.bytes().position(|b| b != b' ').unwrap_or(line.len());
    Ok(match line.as_bytes().get(indent) {
        None => Line::Blank,
        Some(&b) if is_space(b) && line.bytes().all(is_space) => Line::Blank,
        Some(&b) if indent == 0 && !is_space(b) => Line::Header(line),
        Some(_) => Line::Entry { line, indent },
    })
}

/// An entry's content after its indent, once the line is known to be plain text indented by spaces only.
fn content_of(line: &str, indent: usize) -> Result<&str, ParseErrorKind> {
    if has_control(line) {
        return Err(ParseErrorKind::ControlCharacter(line.to_owned()));
    }
    let content = &line[indent..];
    if content.bytes().next().is_some_and(is_space) {
        return Err(malformed(line, EXPECT_INDENT));
    }
    Ok(content)
}

/// The lines of `text` from byte `start`, numbered from `line_no + 1`, with the byte offset after each.
fn lines_from(
    text: &str,
    mut start: usize,
    mut line_no: usize,
) -> impl Iterator<Item = (usize, &str, usize)> {
    std::iter::from_fn(move || {
        if start >= text.len() {
            return None;
        }
        let end =
            memchr::memchr(b'\n', &text.as_bytes()[start..]).map_or(text.len(), |at| start + at);
        let raw = &text[start..end];
        start = end + 1;
        line_no += 1;
        Some((line_no, raw, start))
    })
}

/// One indented line of a section: its number, the line as written, its indent and what follows the indent.
#[derive(Clone, Copy)]
struct Entry<'t> {
    line_no: usize,
    line: &'t str,
    indent: usize,
    content: &'t str,
}

impl Entry<'_> {
    /// An error located on this line.
    fn error(&self, kind: ParseErrorKind) -> ParseError {
        ParseError {
            line: self.line_no,
            kind,
        }
    }
}

impl<'t> Parser<'t> {
    pub(super) fn run(mut self, text: &'t str) -> Result<Lockfile<'t>, ParseError> {
        // A byte-order mark would turn the first header into an unknown
        // section and silently hide it.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // Each locked gem takes a spec line, a checksum line and usually a dependency or two, well over 100
        // bytes in all; reserving for that spares large lockfiles repeated rehashing and copying.
        let gems = text.len() / 128;
        self.ids.reserve(gems);
        self.slots.reserve(gems);
        self.out.first_variant.reserve(gems);
        self.out.specs.reserve(gems);
        self.out.checksums.reserve(gems);
        self.next_checksum.reserve(gems);
        self.out.spec_dependencies.reserve(gems);
        self.read_lines(text)?;
        self.finish()
    }

    /// Reads the lines of `text`, one section after another.
    fn read_lines(&mut self, text: &'t str) -> Result<(), ParseError> {
        let mut section = Section::Ignored;
        for (line_no, raw, _) in lines_from(text, 0, 0) {
            let at = |kind| ParseError {
                line: line_no,
                kind,
            };
            let (line, indent) = match classify(raw).map_err(at)? {
                Line::Blank => continue,
                Line::Header(line) => {
                    close(section)?;
                    section = match line {
                        "GEM" => open(SourceHeader::Gem, line_no),
                        "GIT" => open(SourceHeader::Git, line_no),
                        "PATH" => open(SourceHeader::Path, line_no),
                        "PLUGIN SOURCE" => open(SourceHeader::Plugin, line_no),
                        "PLATFORMS" => Section::Platforms,
                        "DEPENDENCIES" => Section::Dependencies,
                        "CHECKSUMS" => Section::Checksums,
                        "RUBY VERSION" => Section::RubyVersion,
                        "BUNDLED WITH" => Section::BundledWith,
                        _ => Section::Ignored,
                    };
                    continue;
                }
                Line::Entry { line, indent } => (line, indent),
            };
            if matches!(section, Section::Ignored) {
                continue;
            }
            let content = content_of(line, indent).map_err(at)?;
            self.entry(
                &mut section,
                Entry {
                    line_no,
                    line,
                    indent,
                    content,
                },
            )?;
        }
        close(section)
    }

    /// Links what was read: checksums to specs, and Bundler's joined-name rule where it can matter.
    fn finish(mut self) -> Result<Lockfile<'t>, ParseError> {
        self.attach_checksums();
        if self.joinable {
            for (spec, sha256) in self.check_joined_names()? {
                self.out.specs[spec].sha256 = Some(sha256);
            }
        }
        Ok(self.out)
    }

    /// The number for `name`, made on first sight.
    fn intern(&mut self, name: &'t str) -> NameId {
        let fresh = NameId(self.slots.len() as u32);
        let id = *self.ids.entry(name).or_insert(fresh);
        if id == fresh {
            self.slots.push(EMPTY_SLOT);
            self.out.first_variant.push(NONE);
        }
        id
    }

    /// Gives each spec the digest CHECKSUMS records under its exact name, version text and platform.
    fn attach_checksums(&mut self) {
        for checksum in &self.out.checksums {
            let mut at = self.out.first_variant[checksum.name_id.index()];
            while at != NONE {
                let spec = &mut self.out.specs[at as usize];
                if spec.version.as_str() == checksum.version && spec.platform == checksum.platform {
                    spec.sha256 = Some(checksum.sha256);
                    break;
                }
                at = spec.next_variant;
            }
        }
    }

    /// Bundler's own rule, applied by joined full name for the rare files where two names can join alike:
    /// two specs may not share a full name, and a checksum counts for the spec whose full name it spells.
    /// Returns each spec's digest so found.
    fn check_joined_names(&self) -> Result<Vec<(usize, [u8; 32])>, ParseError> {
        let mut specs: HashMap<String, usize> = HashMap::new();
        for (index, spec) in self.out.specs.iter().enumerate() {
            let key = spec.full_name();
            if let Some(&first) = specs.get(&key) {
                return Err(ParseError {
                    line: spec.line,
                    kind: ParseErrorKind::DuplicateSpec {
                        full_name: key,
                        first_line: self.out.specs[first].line,
                    },
                });
            }
            specs.insert(key, index);
        }
        let mut checksums: HashMap<String, usize> = HashMap::new();
        let mut found = Vec::new();
        for (index, checksum) in self.out.checksums.iter().enumerate() {
            let key = FullName::new(checksum.name, checksum.version, checksum.platform).joined();
            if let Some(&first) = checksums.get(&key) {
                let first = &self.out.checksums[first];
                if first.sha256 != checksum.sha256 {
                    return Err(ParseError {
                        line: checksum.line,
                        kind: ParseErrorKind::ConflictingChecksum {
                            full_name: key,
                            first_line: first.line,
                        },
                    });
                }
                continue;
            }
            if let Some(&spec) = specs.get(&key) {
                found.push((spec, checksum.sha256));
            }
            checksums.insert(key, index);
        }
        Ok(found)
    }

    fn entry(&mut self, section: &mut Section, e: Entry<'t>) -> Result<(), ParseError> {
        let (line_no, line, indent, content) = (e.line_no, e.line, e.indent, e.content);
        let at = |kind| e.error(kind);
        match section {
            Section::Ignored => Ok(()),
            Section::Source(open) => self.source_entry(open, e),
            Section::Platforms => {
                if indent != 2 {
                    return Err(at(malformed(line, EXPECT_PLATFORM)));
                }
                if !is_valid_platform(content) {
                    return Err(at(ParseErrorKind::BadPlatform(content.to_owned())));
                }
                self.out.platforms.push(content);
                Ok(())
            }
            Section::Dependencies => {
                if indent != 2 {
                    return Err(at(malformed(line, EXPECT_DEPENDENCY)));
                }
                let item = Item::split(line, content, EXPECT_DEPENDENCY).map_err(at)?;
                if item.trailer.is_some() {
                    return Err(at(malformed(line, EXPECT_DEPENDENCY)));
                }
                let dependency = self.dependency(&item, line_no).map_err(at)?;
                let slot = &mut self.slots[dependency.name_id.index()];
                if slot.dependency_line != 0 {
                    return Err(at(ParseErrorKind::DuplicateDependency {
                        name: dependency.name.to_owned(),
                        first_line: slot.dependency_line,
                    }));
                }
                slot.dependency_line = line_no;
                self.out.dependencies.push(dependency);
                Ok(())
            }
            Section::Checksums => {
                if indent != 2 {
                    return Err(at(malformed(line, EXPECT_CHECKSUM)));
                }
                self.checksum_entry(line_no, line, content).map_err(at)
            }
            Section::RubyVersion | Section::BundledWith => {
                let (slot, title) = if matches!(section, Section::RubyVersion) {
                    (&mut self.out.ruby_version, "RUBY VERSION")
                } else {
                    (&mut self.out.bundled_with, "BUNDLED WITH")
                };
                if indent != 2 && indent != 3 {
                    return Err(at(malformed(line, EXPECT_VALUE)));
                }
                if slot.is_some() {
                    return Err(at(ParseErrorKind::DuplicateValue { section: title }));
                }
                if title == "BUNDLED WITH" && Version::parse(content).is_err() {
                    return Err(at(ParseErrorKind::Version(VersionError::BadVersion(
                        content.to_owned(),
                    ))));
                }
                *slot = Some(content);
                Ok(())
            }
        }
    }

    fn source_entry(&mut self, open: &mut OpenSource, e: Entry<'t>) -> Result<(), ParseError> {
        let (line_no, line, indent, content) = (e.line_no, e.line, e.indent, e.content);
        let at = |kind| e.error(kind);
        match indent {
            2 if content == "specs:" => {
                if open.index.is_some() {
                    return Err(at(ParseErrorKind::DuplicateSpecsLine));
                }
                let kind = build_source(open)?;
                open.index = Some(self.out.sources.len());
                self.out.sources.push(Source {
                    kind,
                    line: open.line,
                });
                Ok(())
            }
            2 => {
                let (key, value) =
                    split_option(content).ok_or_else(|| at(malformed(line, EXPECT_OPTION)))?;
                if open.index.is_some() {
                    return Err(at(ParseErrorKind::OptionAfterSpecs));
                }
                open.options
                    .push((key.to_owned(), value.to_owned(), line_no));
                Ok(())
            }
            4 => {
                let source = open
                    .index
                    .ok_or_else(|| at(ParseErrorKind::SpecOutsideSource))?;
                let index = self
                    .spec_entry(line, content, source, line_no)
                    .map_err(at)?;
                open.current_spec = Some(index);
                Ok(())
            }
            6 => {
                let spec = open
                    .current_spec
                    .ok_or_else(|| at(ParseErrorKind::DependencyBeforeSpec))?;
                let item = Item::split(line, content, EXPECT_SPEC_DEPENDENCY).map_err(at)?;
                if item.pinned || item.trailer.is_some() {
                    return Err(at(malformed(line, EXPECT_SPEC_DEPENDENCY)));
                }
                let dependency = self.dependency(&item, line_no).map_err(at)?;
                self.out.spec_dependencies.push(dependency);
                // The spec is the last one read, so its dependencies are the latest entries.
                self.out.specs[spec].dependencies.end = self.out.spec_dependencies.len() as u32;
                Ok(())
            }
            _ => Err(at(malformed(line, EXPECT_INDENT))),
        }
    }

    /// Reads a spec line, refusing a second spec with the same full name, and returns its index.
    fn spec_entry(
        &mut self,
        line: &str,
        content: &'t str,
        source: usize,
        line_no: usize,
    ) -> Result<usize, ParseErrorKind> {
        let item = Item::split(line, content, EXPECT_SPEC)?;
        let paren = item.paren.ok_or_else(|| malformed(line, EXPECT_SPEC))?;
        if item.pinned || item.trailer.is_some() {
            return Err(malformed(line, EXPECT_SPEC));
        }
        let (version_text, platform) = version_and_platform(paren)?;
        let version = Version::parse(version_text).map_err(|_| {
            ParseErrorKind::Version(VersionError::BadVersion(version_text.to_owned()))
        })?;
        let name_id = self.intern(item.name);
        self.joinable |= has_dash_digit(item.name);
        let slot = &mut self.slots[name_id.index()];
        let mut at = self.out.first_variant[name_id.index()];
        while at != NONE {
            let other = &self.out.specs[at as usize];
            if other.version.as_str() == version_text && other.platform == platform {
                return Err(ParseErrorKind::DuplicateSpec {
                    full_name: FullName::new(item.name, version_text, platform).joined(),
                    first_line: other.line,
                });
            }
            at = other.next_variant;
        }
        let index = self.out.specs.len();
        match slot.last_variant {
            NONE => self.out.first_variant[name_id.index()] = index as u32,
            last => self.out.specs[last as usize].next_variant = index as u32,
        }
        slot.last_variant = index as u32;
        let deps_at = self.out.spec_dependencies.len() as u32;
        self.out.specs.push(Spec {
            name: item.name,
            name_id,
            version,
            platform,
            source,
            sha256: None,
            line: line_no,
            dependencies: deps_at..deps_at,
            next_variant: NONE,
        });
        Ok(index)
    }

    fn dependency(
        &mut self,
        item: &Item<'t>,
        line: usize,
    ) -> Result<Dependency<'t>, ParseErrorKind> {
        let requirement = match item.paren {
            None => Requirement::default(),
            Some(text) => Requirement::parse(text).map_err(|_| {
                ParseErrorKind::Version(VersionError::BadRequirement(text.to_owned()))
            })?,
        };
        Ok(Dependency {
            name: item.name,
            name_id: self.intern(item.name),
            requirement,
            pinned: item.pinned,
            line,
        })
    }

    fn checksum_entry(
        &mut self,
        line_no: usize,
        line: &str,
        content: &'t str,
    ) -> Result<(), ParseErrorKind> {
        match read_checksum(line, content)? {
            Some(read) => self.store_checksum(read, line_no),
            None => Ok(()),
        }
    }

    /// Keeps a checksum read from `line_no`, refusing a different digest for a full name already listed.
    fn store_checksum(
        &mut self,
        read: ReadChecksum<'t>,
        line_no: usize,
    ) -> Result<(), ParseErrorKind> {
        let ReadChecksum {
            name,
            version,
            platform,
            sha256,
        } = read;
        let name_id = self.intern(name);
        self.joinable |= has_dash_digit(name);
        let slot = &mut self.slots[name_id.index()];
        let mut at = slot.first_checksum;
        while at != NONE {
            let first = &self.out.checksums[at as usize];
            if first.version == version && first.platform == platform {
                if first.sha256 == sha256 {
                    return Ok(());
                }
                return Err(ParseErrorKind::ConflictingChecksum {
                    full_name: FullName::new(name, version, platform).joined(),
                    first_line: first.line,
                });
            }
            at = self.next_checksum[at as usize];
        }
        self.next_checksum.push(slot.first_checksum);
        slot.first_checksum = self.out.checksums.len() as u32;
        self.out.checksums.push(ChecksumEntry {
            name,
            name_id,
            version,
            platform,
            sha256,
            line: line_no,
        });
        Ok(())
    }
}

/// A CHECKSUMS line's digest and whom it is for, read but not yet kept.
struct ReadChecksum<'t> {
    name: &'t str,
    version: &'t str,
    platform: &'t str,
    sha256: [u8; 32],
}

/// Reads a CHECKSUMS entry; `None` for one without a sha256 (Git and path gems are listed without a digest).
fn read_checksum<'t>(
    line: &str,
    content: &'t str,
) -> Result<Option<ReadChecksum<'t>>, ParseErrorKind> {
    let item = Item::split(line, content, EXPECT_CHECKSUM)?;
    let paren = item.paren.ok_or_else(|| malformed(line, EXPECT_CHECKSUM))?;
    if item.pinned {
        return Err(malformed(line, EXPECT_CHECKSUM));
    }
    let (version, platform) = version_and_platform(paren)?;
    let Some(trailer) = item.trailer else {
        return Ok(None);
    };
    Ok(sha256_of(trailer)?.map(|sha256| ReadChecksum {
        name: item.name,
        version,
        platform,
        sha256,
    }))
}

fn open(header: SourceHeader, line: usize) -> Section {
    Section::Source(OpenSource {
        header,
        line,
        options: Vec::new(),
        index: None,
        current_spec: None,
    })
}

/// Ends a section; a source block that never reached `  specs:` is an error
/// because Bundler always writes that line, so its absence means a cut-off file.
fn close(section: Section) -> Result<(), ParseError> {
    match section {
        Section::Source(open) if open.index.is_none() => Err(ParseError {
            line: open.line,
            kind: ParseErrorKind::MissingSpecs {
                section: open.header.title(),
            },
        }),
        _ => Ok(()),
    }
}

fn malformed(line: &str, expected: &'static str) -> ParseErrorKind {
    ParseErrorKind::Malformed {
        text: line.to_owned(),
        expected,
    }
}

/// `key: value` with an alphabetic key, the shape Bundler writes options in.
fn split_option(content: &str) -> Option<(&str, &str)> {
    let (key, value) = content.split_once(':')?;
    let value = value.strip_prefix(' ')?;
    let key_ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphabetic());
    (key_ok && !value.is_empty()).then_some((key, value))
}

/// Turns the collected options into a source, checking what each kind needs.
fn build_source(open: &OpenSource) -> Result<SourceKind, ParseError> {
    let section = open.header.title();
    let missing = |key| ParseError {
        line: open.line,
        kind: ParseErrorKind::MissingOption { section, key },
    };
    // Only GEM's `remote:` may repeat; elsewhere a second value would make
    // the source ambiguous.
    let single = |key: &'static str| -> Result<Option<(&str, usize)>, ParseError> {
        let mut found = None;
        for (k, v, line) in &open.options {
            if k == key {
                if found.is_some() {
                    return Err(ParseError {
                        line: *line,
                        kind: ParseErrorKind::DuplicateOption {
                            section,
                            key: k.clone(),
                        },
                    });
                }
                found = Some((v.as_str(), *line));
            }
        }
        Ok(found)
    };
    let owned = |found: Option<(&str, usize)>| found.map(|(v, _)| v.to_owned());
    Ok(match open.header {
        SourceHeader::Gem => SourceKind::Gem {
            remotes: open
                .options
                .iter()
                .filter(|(k, _, _)| k == "remote")
                .map(|(_, v, _)| v.clone())
                .collect(),
        },
        SourceHeader::Git => {
            let remote = single("remote")?.ok_or_else(|| missing("remote"))?.0;
            let (revision, revision_line) =
                single("revision")?.ok_or_else(|| missing("revision"))?;
            let revision_ok = (4..=64).contains(&revision.len())
                && revision.bytes().all(|b| b.is_ascii_hexdigit());
            if !revision_ok {
                return Err(ParseError {
                    line: revision_line,
                    kind: malformed(revision, EXPECT_REVISION),
                });
            }
            let submodules = match single("submodules")? {
                None | Some(("false", _)) => false,
                Some(("true", _)) => true,
                Some((other, line)) => {
                    return Err(ParseError {
                        line,
                        kind: malformed(other, EXPECT_SUBMODULES),
                    });
                }
            };
            SourceKind::Git {
                remote: remote.to_owned(),
                revision: revision.to_owned(),
                branch: owned(single("branch")?),
                tag: owned(single("tag")?),
                reference: owned(single("ref")?),
                submodules,
                glob: owned(single("glob")?),
            }
        }
        SourceHeader::Path => SourceKind::Path {
            path: single("remote")?
                .ok_or_else(|| missing("remote"))?
                .0
                .to_owned(),
            glob: owned(single("glob")?),
        },
        SourceHeader::Plugin => SourceKind::Plugin {
            remote: single("remote")?
                .ok_or_else(|| missing("remote"))?
                .0
                .to_owned(),
            plugin_type: owned(single("type")?),
            options: open
                .options
                .iter()
                .filter(|(k, _, _)| k != "remote" && k != "type")
                .map(|(k, v, _)| (k.clone(), v.clone()))
                .collect(),
        },
    })
}

/// The parts of `name (paren)! trailer`, the one entry shape Bundler uses for
/// specs, dependencies and checksums alike.
#[derive(Debug, PartialEq)]
struct Item<'a> {
    name: &'a str,
    paren: Option<&'a str>,
    pinned: bool,
    trailer: Option<&'a str>,
}

/// Bytes RubyGems allows in names and platforms.
const NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric() || matches!(b as u8, b'.' | b'_' | b'-');
        b += 1;
    }
    table
};

impl<'a> Item<'a> {
    fn split(
        line: &str,
        content: &'a str,
        expected: &'static str,
    ) -> Result<Item<'a>, ParseErrorKind> {
        match Item::split_usual(content) {
            Some(item) => Ok(item),
            None => Item::split_general(line, content, expected),
        }
    }

    /// Any entry, with the exact error for a malformed one.
    fn split_general(
        line: &str,
        content: &'a str,
        expected: &'static str,
    ) -> Result<Item<'a>, ParseErrorKind> {
        let bad = || malformed(line, expected);
        let (name, paren, after) = match split_at_paren(content) {
            Some((name, rest)) => {
                let (paren, after) = split_once_byte(rest, b')').ok_or_else(bad)?;
                (name, Some(paren), after)
            }
            None if has_space(content) => return Err(bad()),
            None => match content.strip_suffix('!') {
                Some(name) => (name, None, "!"),
                None => (content, None, ""),
            },
        };
        let (pinned, trailer) = pin_and_trailer(after).ok_or_else(bad)?;
        if has_space(name) {
            return Err(bad());
        }
        if !is_valid_name(name) {
            return Err(ParseErrorKind::BadName(name.to_owned()));
        }
        Ok(Item {
            name,
            paren,
            pinned,
            trailer,
        })
    }

    /// What Bundler writes (`name`, `name!`, `name (paren)`, `name (paren)!`, `name (paren) trailer`), read
    /// in one pass with the name checked on the way. `None` sends everything else, well-formed or not,
    /// through [`Item::split`]'s general reading, which gives the exact error.
    fn split_usual(content: &'a str) -> Option<Item<'a>> {
        let bytes = content.as_bytes();
        if bytes.first().is_none_or(|&b| b == b'-') {
            return None;
        }
        // Starting `previous` at `.` also refuses a leading dot, as `is_valid_name` does.
        let mut previous = b'.';
        let mut end = 0;
        for &b in bytes {
            if !NAME_BYTE[usize::from(b)] {
                break;
            }
            if b == b'.' && previous == b'.' {
                return None;
            }
            previous = b;
            end += 1;
        }
        if end == 0 {
            return None;
        }
        let (name, rest) = content.split_at(end);
        let (paren, after) = match rest.as_bytes() {
            [] | [b'!'] => (None, rest),
            [b' ', b'(', ..] => {
                let (paren, after) = split_once_byte(&rest[2..], b')')?;
                (Some(paren), after)
            }
            _ => return None,
        };
        let (pinned, trailer) = pin_and_trailer(after)?;
        Some(Item {
            name,
            paren,
            pinned,
            trailer,
        })
    }
}

/// What may follow an entry's name and parenthesis: an optional `!`, then an optional single-word trailer
/// after one space. `None` when something else follows.
fn pin_and_trailer(after: &str) -> Option<(bool, Option<&str>)> {
    let (pinned, after) = match after.strip_prefix('!') {
        Some(after) => (true, after),
        None => (false, after),
    };
    let trailer = match after {
        "" => None,
        _ => {
            let trailer = after.strip_prefix(' ')?;
            if trailer.is_empty() || has_space(trailer) {
                return None;
            }
            Some(trailer)
        }
    };
    Some((pinned, trailer))
}

/// `name (rest` split at the first ` (`, the opening of a version or requirement.
fn split_at_paren(content: &str) -> Option<(&str, &str)> {
    let bytes = content.as_bytes();
    let mut from = 1;
    while let Some(offset) = bytes.get(from..)?.iter().position(|&b| b == b'(') {
        let at = from + offset;
        if bytes[at - 1] == b' ' {
            return Some((&content[..at - 1], &content[at + 1..]));
        }
        from = at + 1;
    }
    None
}

/// Splits `1.16.0-x86_64-linux-gnu` at the first `-`: versions as Bundler
/// writes them never contain one, platforms often do. The version comes back
/// as written, checked but not parsed.
fn version_and_platform(paren: &str) -> Result<(&str, &str), ParseErrorKind> {
    let (text, platform) = match split_once_byte(paren, b'-') {
        Some((version, platform)) => (version, platform),
        None => (paren, RUBY),
    };
    if !Version::is_valid(text) {
        return Err(ParseErrorKind::Version(VersionError::BadVersion(
            text.to_owned(),
        )));
    }
    if !is_valid_platform(platform) {
        return Err(ParseErrorKind::BadPlatform(platform.to_owned()));
    }
    Ok((text, platform))
}

/// RubyGems' name pattern `[A-Za-z0-9._-]+`, minus a leading `.` or `-` so a
/// name can be neither `.`/`..` nor look like a command-line flag, and minus
/// `..` anywhere: no real gem or platform has it, and without it no name, alone
/// or joined with others, can read as a parent directory. A leading `_` is
/// allowed: RubyGems' policy forbids it for new gems only, and it is harmless in
/// a path.
fn is_valid_name(name: &str) -> bool {
    let mut previous = b'.';
    !name.starts_with('-')
        && !name.is_empty()
        && name.bytes().all(|b| {
            // Starting `previous` at `.` also refuses a leading dot.
            let ok = b.is_ascii_alphanumeric()
                || matches!(b, b'_' | b'-')
                || (b == b'.' && previous != b'.');
            previous = b;
            ok
        })
}

/// Platforms use the same alphabet as names (`x86_64-linux-gnu`, `universal-java-17`).
fn is_valid_platform(platform: &str) -> bool {
    is_valid_name(platform)
}

/// Reads the comma-separated `algo=value` list after a CHECKSUMS entry and
/// returns the sha256, ignoring other algorithms as Bundler does.
fn sha256_of(trailer: &str) -> Result<Option<[u8; 32]>, ParseErrorKind> {
    // What Bundler writes, settled without splitting: hex digits contain no `,`, so this is the one-item list.
    if let Some(hex) = trailer.strip_prefix("sha256=")
        && hex.len() == 64
        && let Some(digest) = decode_sha256(hex)
    {
        return Ok(Some(digest));
    }
    let mut found: Option<[u8; 32]> = None;
    for item in crate::version::split_byte(trailer, b',') {
        let bad = || ParseErrorKind::BadChecksum(item.to_owned());
        let (algo, value) = split_once_byte(item, b'=').ok_or_else(bad)?;
        if algo.is_empty() || !algo.bytes().all(|b| b.is_ascii_alphanumeric()) || value.is_empty() {
            return Err(bad());
        }
        if algo != "sha256" {
            continue;
        }
        let digest = decode_sha256(value).ok_or_else(bad)?;
        if found.is_some_and(|f| f != digest) {
            return Err(ParseErrorKind::BadChecksum(trailer.to_owned()));
        }
        found = Some(digest);
    }
    Ok(found)
}

/// Each byte's value as a hex digit, or `NOT_HEX`: a table lookup per digit instead of three range tests.
const HEX: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut b = 0;
    while b < 10 {
        table[b'0' as usize + b] = b as u8;
        b += 1;
    }
    let mut b = 0;
    while b < 6 {
        table[b'a' as usize + b] = 10 + b as u8;
        table[b'A' as usize + b] = 10 + b as u8;
        b += 1;
    }
    table
};
const NOT_HEX: u8 = 0xff;

/// Bundler accepts a sha256 as 64 hex digits or as (URL-safe) base64.
fn decode_sha256(value: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if value.len() == 64 {
        // Every digit is decoded before any is checked: one test at the end instead of one per digit.
        let mut any_bad = 0;
        for (byte, pair) in out.iter_mut().zip(value.as_bytes().chunks_exact(2)) {
            let (high, low) = (HEX[usize::from(pair[0])], HEX[usize::from(pair[1])]);
            any_bad |= high | low;
            *byte = high << 4 | low;
        }
        return (any_bad & 0xf0 == 0).then_some(out);
    }
    let core = value.trim_end_matches('=');
    if core.len() != 43 || value.len() - core.len() > 1 {
        return None;
    }
    let standard: String = core
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    );
    let bytes = engine.decode(standard).ok()?;
    out.copy_from_slice(bytes.get(..32).filter(|_| bytes.len() == 32)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_use_what_decides_the_content_not_messages() {
        let git = |branch: Option<&str>| Source {
            kind: SourceKind::Git {
                remote: "https://github.com/basecamp/kamal.git".into(),
                revision: "0123456789abcdef".into(),
                branch: branch.map(str::to_owned),
                tag: None,
                reference: None,
                submodules: false,
                glob: None,
            },
            line: 1,
        };
        // The branch name is display only: the revision decides the content.
        assert_eq!(git(Some("main")).key_parts(), git(None).key_parts());
        assert_ne!(git(None).describe(), git(Some("main")).describe());
        let gem = Source {
            kind: SourceKind::Gem {
                remotes: vec!["https://rubygems.org/".into()],
            },
            line: 1,
        };
        assert_eq!(gem.key_parts(), ["gem", "https://rubygems.org/"]);
    }
    use crate::version::Op;

    const FIZZY: &str = "basecamp__fizzy__Gemfile.lock";
    const RUBYEVENTS: &str = "rubyevents__rubyevents__Gemfile.lock";
    const HOME: &str = "11bDev-FOB__11bdev-home__Gemfile.lock";
    const RAILSGURU: &str = "1klap__railsguru-web__Gemfile.lock";

    /// A real lockfile's text; kept for the whole test run, since parsed lockfiles borrow it.
    fn real(file: &str) -> &'static str {
        let path = format!(
            "{}/tests/fixtures/real-lockfiles/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Box::leak(text.into_boxed_str())
    }

    fn parse(text: &str) -> Lockfile<'_> {
        Lockfile::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(text: &str) -> ParseError {
        match Lockfile::parse(text) {
            Ok(l) => panic!("expected an error, got {l:?}"),
            Err(e) => e,
        }
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn spec<'a>(lock: &'a Lockfile<'a>, full_name: &str) -> &'a Spec<'a> {
        lock.specs
            .iter()
            .find(|s| s.full_name() == full_name)
            .unwrap_or_else(|| panic!("{full_name} not locked"))
    }

    fn dependency_names<'a>(lock: &'a Lockfile<'a>, spec: &Spec<'a>) -> Vec<&'a str> {
        lock.dependencies_of(spec).iter().map(|d| d.name).collect()
    }

    /// The DEPENDENCIES entry for `name`.
    fn dependency<'a>(lock: &'a Lockfile<'a>, name: &str) -> &'a Dependency<'a> {
        lock.dependencies.iter().find(|d| d.name == name).unwrap()
    }

    /// Checks how messages name the sources: (index, text).
    fn assert_described(lock: &Lockfile<'_>, expected: &[(usize, &str)]) {
        for &(i, text) in expected {
            assert_eq!(lock.sources[i].describe(), text, "source {i}");
        }
    }

    /// What `pick` takes from each source (its kind and header line) that it takes anything from, in order.
    fn sources<'a, T>(
        lock: &'a Lockfile<'_>,
        pick: impl Fn(&'a SourceKind, usize) -> Option<T>,
    ) -> Vec<T> {
        lock.sources
            .iter()
            .filter_map(|s| pick(&s.kind, s.line))
            .collect()
    }

    const KAMAL_DEPENDENCIES: [&str; 10] = [
        "activesupport",
        "base64",
        "bcrypt_pbkdf",
        "concurrent-ruby",
        "dotenv",
        "ed25519",
        "net-ssh",
        "sshkit",
        "thor",
        "zeitwerk",
    ];

    #[test]
    fn real_lockfiles_hold_what_their_sections_say() {
        // (file, sources, specs, PLATFORMS, DEPENDENCIES, CHECKSUMS, RUBY VERSION, BUNDLED WITH)
        let table = [
            (
                FIZZY,
                8,
                192,
                10,
                47,
                174,
                Some("ruby 3.4.8"),
                Some("4.0.18"),
            ),
            (
                RUBYEVENTS,
                5,
                355,
                11,
                86,
                0,
                Some("ruby 4.0.6"),
                Some("4.0.16"),
            ),
            // BUNDLED WITH written with three spaces by this Bundler version.
            (HOME, 1, 155, 8, 31, 0, None, Some("2.7.2")),
            (RAILSGURU, 1, 158, 14, 30, 0, None, Some("2.5.11")),
        ];
        for (file, sources, specs, platforms, dependencies, checksums, ruby, bundler) in table {
            let lock = parse(real(file));
            let counts = (lock.sources.len(), lock.specs.len(), lock.platforms.len());
            assert_eq!(counts, (sources, specs, platforms), "{file}");
            let counts = (lock.dependencies.len(), lock.checksums.len());
            assert_eq!(counts, (dependencies, checksums), "{file}");
            assert_eq!(
                (lock.ruby_version, lock.bundled_with),
                (ruby, bundler),
                "{file}"
            );
        }
    }

    #[test]
    fn fizzy_git_sources_checksums_and_versions() {
        let lock = parse(real(FIZZY));

        let git = sources(&lock, |kind, line| match kind {
            SourceKind::Git {
                remote,
                revision,
                branch,
                ..
            } => Some((remote.as_str(), revision.as_str(), branch.as_deref(), line)),
            _ => None,
        });
        assert_eq!(git.len(), 7);
        assert_eq!(
            git[2],
            (
                "https://github.com/hotwired/turbo-rails.git",
                "93ce5bc461cd71af1797e79fcd7e09a19242d080",
                Some("offline-cache"),
                13
            )
        );
        assert_eq!(
            git[3],
            (
                "https://github.com/rails/rails.git",
                "ce95deb79b0402a21cf2fe854f47179427af98c7",
                Some("main"),
                22
            )
        );
        assert_described(
            &lock,
            &[
                (
                    3,
                    "git https://github.com/rails/rails.git (at main@ce95deb)",
                ),
                (0, "git https://github.com/basecamp/surfguard (at 910be91)"),
                (7, "https://rubygems.org/"),
            ],
        );
        assert_eq!(
            lock.sources[7].kind,
            SourceKind::Gem {
                remotes: vec!["https://rubygems.org/".to_owned()]
            }
        );

        let actioncable = spec(&lock, "actioncable-8.2.0.alpha");
        assert_eq!(actioncable.source, 3);
        assert_eq!(actioncable.line, 27);
        assert!(actioncable.version.is_prerelease());
        assert_eq!(lock.dependencies_of(actioncable)[0].name, "actionpack");
        assert_eq!(
            lock.dependencies_of(actioncable)[0]
                .requirement
                .constraints()
                .collect::<Vec<_>>(),
            vec![(Op::Eq, v("8.2.0.alpha"))]
        );

        let kamal: Vec<_> = lock.specs_named("kamal").collect();
        assert_eq!(kamal.len(), 1);
        assert_eq!(kamal[0].version.as_str(), "2.11.0");
        assert_eq!(kamal[0].source, 7);
        assert_eq!(dependency_names(&lock, kamal[0]), KAMAL_DEPENDENCIES);
        assert_eq!(
            lock.dependencies_of(kamal[0])[7].requirement.to_string(),
            ">= 1.23.0, < 2.0"
        );
        assert_eq!(
            lock.checksum("kamal", &v("2.11.0"), "ruby")
                .map(hex::encode)
                .as_deref(),
            Some("1408864425e0dec7e0a14d712a3b13f614e9f3a425b7661d3f9d287a51d7dd75")
        );
        // Git gems are listed without a digest, and bundler itself has one.
        assert_eq!(
            lock.checksum("actioncable", &v("8.2.0.alpha"), "ruby"),
            None
        );
        assert!(lock.checksum("bundler", &v("4.0.18"), "ruby").is_some());

        let nokogiri: Vec<_> = lock.specs_named("nokogiri").map(|s| s.platform).collect();
        assert_eq!(
            nokogiri,
            [
                "aarch64-linux-gnu",
                "aarch64-linux-musl",
                "arm-linux-gnu",
                "arm-linux-musl",
                "arm64-darwin",
                "x86_64-darwin",
                "x86_64-linux-gnu",
                "x86_64-linux-musl"
            ]
        );
        let gnu = spec(&lock, "nokogiri-1.19.4-x86_64-linux-gnu");
        assert_eq!(gnu.version.as_str(), "1.19.4");
        assert_eq!(
            lock.checksum("nokogiri", &gnu.version, gnu.platform)
                .map(hex::encode)
                .as_deref(),
            Some("379fae440b28915e3f19d752ce2dcf8465ed2b2fbefd2a7ca0dd497bc981a06a")
        );

        let pinned: Vec<_> = lock
            .dependencies
            .iter()
            .filter(|d| d.pinned)
            .map(|d| d.name)
            .collect();
        assert_eq!(
            pinned,
            [
                "rails",
                "solid_cable",
                "solid_queue",
                "surfguard",
                "turbo-rails",
                "useragent",
                "web-console"
            ]
        );
        let puma = lock.dependencies.iter().find(|d| d.name == "puma").unwrap();
        assert_eq!(puma.requirement.to_string(), "~> 8.0");
        assert!(!puma.pinned);
    }

    #[test]
    fn rubyevents_has_two_gem_sources() {
        let lock = parse(real(RUBYEVENTS));
        let remotes = sources(&lock, |kind, line| match kind {
            SourceKind::Gem { remotes } => Some((remotes.clone(), line)),
            _ => None,
        });
        assert_eq!(
            remotes,
            [
                (vec!["https://packager.dev/avo-hq/".to_owned()], 123),
                (vec!["https://rubygems.org/".to_owned()], 141)
            ]
        );
        let avo_pro = lock.specs_named("avo-pro").next().unwrap();
        assert_eq!(avo_pro.source, 3);
        assert_eq!(avo_pro.line, 135);
        // Pinning is not only for GIT and PATH: avo-pro is pinned to a GEM source.
        let pinned = dependency(&lock, "avo-pro");
        assert!(pinned.pinned);
        assert_eq!(pinned.line, 873);
        let kamal_dependency = dependency(&lock, "kamal");
        assert_eq!(
            kamal_dependency
                .requirement
                .constraints()
                .collect::<Vec<_>>(),
            vec![(Op::Eq, v("2.7.0"))]
        );
        let kamal = lock.specs_named("kamal").next().unwrap();
        assert_eq!(kamal.version.as_str(), "2.7.0");
        assert_eq!(kamal.source, 4);
        assert!(kamal_dependency.requirement.matches(&kamal.version));
        assert_eq!(dependency_names(&lock, kamal), KAMAL_DEPENDENCIES);
        assert_eq!(lock.specs_named("nokogiri").count(), 8);
    }

    #[test]
    fn bundler_2_7_and_2_5_lockfiles() {
        let home = parse(real(HOME));
        let kamal = home.specs_named("kamal").next().unwrap();
        assert_eq!(kamal.version.as_str(), "2.7.0");
        assert_eq!(dependency_names(&home, kamal), KAMAL_DEPENDENCIES);
        assert_eq!(home.specs_named("nokogiri").count(), 6);
        assert_eq!(
            spec(&home, "nokogiri-1.18.10-arm-linux-musl").platform,
            "arm-linux-musl"
        );

        let guru = parse(real(RAILSGURU));
        let kamal = guru.specs_named("kamal").next().unwrap();
        assert_eq!(kamal.version.as_str(), "2.3.0");
        assert_eq!(
            guru.dependencies_of(kamal)[5].requirement.to_string(),
            "~> 1.2"
        );
        // This older Bundler wrote `x86_64-linux` on the spec while PLATFORMS
        // lists both `x86_64-linux` and `x86_64-linux-gnu`.
        let platforms: Vec<_> = guru.specs_named("nokogiri").map(|s| s.platform).collect();
        assert_eq!(
            platforms,
            [
                "aarch64-linux",
                "arm-linux",
                "arm64-darwin",
                "x86-linux",
                "x86_64-darwin",
                "x86_64-linux"
            ]
        );
        assert!(guru.platforms.contains(&"x86_64-linux-gnu"));
    }

    #[test]
    fn crlf_parses_identically() {
        for file in [FIZZY, HOME] {
            let text = real(file);
            let crlf = text.replace('\n', "\r\n");
            assert_eq!(parse(&crlf), parse(text));
            assert_eq!(Lockfile::parse_bytes(crlf.as_bytes()).unwrap(), parse(text));
        }
    }

    const SYNTHETIC: &str = "\
GIT
  remote: https://github.com/example/tagged.git
  revision: 0123456789abcdef0123456789abcdef01234567
  tag: v1.2.0
  submodules: true
  glob: gems/*.gemspec
  specs:
    tagged (1.2.0)

GIT
  remote: https://github.com/example/reffed.git
  revision: fedcba9876543210fedcba9876543210fedcba98
  ref: fedcba98
  specs:
    reffed (0.1.0.pre-java)
      rack (>= 2.2.4, < 4)

PATH
  remote: vendor/kamal
  specs:
    kamal (2.8.0)
      sshkit (>= 1.23.0, < 2.0)
      thor

PLUGIN SOURCE
  remote: https://plugins.example.com/
  type: mytype
  revision: abc
  specs:
    plugged (3.0)

FUTURE SECTION
  anything: goes here (really)
    even (((nonsense

GEM
  remote: https://mirror.example.com/
  remote: https://rubygems.org/
  specs:

    rack (3.1.8)
    sshkit (1.23.1)
      base64
    thor (1.3.2)

PLATFORMS
  ruby
  x86_64-linux

DEPENDENCIES
  kamal!
  plugged (~> 3.0)!
  rack (>= 3, != 3.1.0)
  reffed!
  tagged!

CHECKSUMS
  bundler (2.6.5) sha256=f51b10cfe581ed598543d952e9d809c31cbb1e5a21d0ae8dfda9ee5f3c36c30b
  kamal (2.8.0)
  rack (3.1.8) md5=abc,sha256=FAiGRCXg3sfgoU1xKjsT9hTp86Qlt2YdP50oelHX3XU=
  sshkit (1.23.1) sha256=9RsQz-WB7VmFQ9lS6dgJwxy7Hloh0K6N_anuXzw2wws
  thor (1.3.2) sha512=deadbeef
  reffed (0.1.0.pre-java) sha256=F51B10CFE581ED598543D952E9D809C31CBB1E5A21D0AE8DFDA9EE5F3C36C30B

RUBY VERSION
   ruby 3.3.5p100

BUNDLED WITH
   2.6.5
";

    #[test]
    fn every_section_and_source_kind() {
        let lock = parse(SYNTHETIC);
        assert_eq!(lock.sources.len(), 5);
        assert_eq!(
            lock.sources[0],
            Source {
                kind: SourceKind::Git {
                    remote: "https://github.com/example/tagged.git".to_owned(),
                    revision: "0123456789abcdef0123456789abcdef01234567".to_owned(),
                    branch: None,
                    tag: Some("v1.2.0".to_owned()),
                    reference: None,
                    submodules: true,
                    glob: Some("gems/*.gemspec".to_owned()),
                },
                line: 1,
            }
        );
        assert_described(
            &lock,
            &[
                (
                    0,
                    "git https://github.com/example/tagged.git (at v1.2.0@0123456)",
                ),
                (2, "path vendor/kamal"),
                (3, "plugin mytype https://plugins.example.com/"),
            ],
        );
        match &lock.sources[1].kind {
            SourceKind::Git {
                reference,
                submodules,
                ..
            } => {
                assert_eq!(reference.as_deref(), Some("fedcba98"));
                assert!(!submodules);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            lock.sources[2].kind,
            SourceKind::Path {
                path: "vendor/kamal".to_owned(),
                glob: None
            }
        );
        assert_eq!(
            lock.sources[3].kind,
            SourceKind::Plugin {
                remote: "https://plugins.example.com/".to_owned(),
                plugin_type: Some("mytype".to_owned()),
                options: vec![("revision".to_owned(), "abc".to_owned())],
            }
        );
        assert_eq!(
            lock.sources[4].kind,
            SourceKind::Gem {
                remotes: vec![
                    "https://mirror.example.com/".to_owned(),
                    "https://rubygems.org/".to_owned()
                ]
            }
        );
        assert_eq!(lock.sources[4].line, 36);

        let names: Vec<_> = lock.specs.iter().map(Spec::full_name).collect();
        assert_eq!(
            names,
            [
                "tagged-1.2.0",
                "reffed-0.1.0.pre-java",
                "kamal-2.8.0",
                "plugged-3.0",
                "rack-3.1.8",
                "sshkit-1.23.1",
                "thor-1.3.2"
            ]
        );
        let sources: Vec<_> = lock.specs.iter().map(|s| s.source).collect();
        assert_eq!(sources, [0, 1, 2, 3, 4, 4, 4]);
        let reffed = &lock.specs[1];
        assert_eq!(
            (reffed.version.as_str(), reffed.platform),
            ("0.1.0.pre", "java")
        );
        assert_eq!(lock.dependencies_of(reffed)[0].line, 16);
        let kamal = &lock.specs[2];
        assert_eq!(kamal.line, 21);
        assert_eq!(kamal.platform, "ruby");
        assert_eq!(dependency_names(&lock, kamal), ["sshkit", "thor"]);
        let kamal_dependencies = lock.dependencies_of(kamal);
        assert_eq!(kamal_dependencies[1].requirement.constraints().count(), 0);
        assert_eq!(kamal_dependencies[1].requirement.to_string(), ">= 0");
        assert_eq!(lock.dependencies_of(&lock.specs[5])[0].name, "base64");

        assert_eq!(lock.platforms, ["ruby", "x86_64-linux"]);
        let deps: Vec<_> = lock
            .dependencies
            .iter()
            .map(|d| (d.name, d.requirement.to_string(), d.pinned, d.line))
            .collect();
        assert_eq!(
            deps,
            [
                ("kamal", ">= 0".to_owned(), true, 51),
                ("plugged", "~> 3.0".to_owned(), true, 52),
                ("rack", ">= 3, != 3.1.0".to_owned(), false, 53),
                ("reffed", ">= 0".to_owned(), true, 54),
                ("tagged", ">= 0".to_owned(), true, 55),
            ]
        );

        assert_eq!(lock.checksums.len(), 4);
        let rack = lock.checksum("rack", &v("3.1.8"), "ruby").unwrap();
        assert_eq!(
            hex::encode(rack),
            "1408864425e0dec7e0a14d712a3b13f614e9f3a425b7661d3f9d287a51d7dd75"
        );
        let sshkit = lock.checksum("sshkit", &v("1.23.1"), "ruby").unwrap();
        assert_eq!(
            hex::encode(sshkit),
            "f51b10cfe581ed598543d952e9d809c31cbb1e5a21d0ae8dfda9ee5f3c36c30b"
        );
        assert_eq!(
            lock.checksum("reffed", &v("0.1.0.pre"), "java"),
            Some(sshkit)
        );
        assert_eq!(lock.checksum("reffed", &v("0.1.0.pre"), "ruby"), None);
        assert_eq!(lock.checksum("bundler", &v("2.6.5"), "ruby"), Some(sshkit));
        // Only sha256 is kept; the text of the version must match as written.
        assert_eq!(lock.checksum("thor", &v("1.3.2"), "ruby"), None);
        assert_eq!(lock.checksum("rack", &v("3.1.8.0"), "ruby"), None);
        assert_eq!(lock.checksums[1].line, 60);

        assert_eq!(lock.ruby_version, Some("ruby 3.3.5p100"));
        assert_eq!(lock.bundled_with, Some("2.6.5"));
    }

    #[test]
    fn empty_and_header_only_inputs() {
        assert_eq!(parse(""), Lockfile::default());
        assert_eq!(parse("\n\n  \n"), Lockfile::default());
        assert_eq!(parse("GEM\n  specs:\n").sources.len(), 1);
        assert_eq!(parse("\u{feff}PLATFORMS\n  ruby\n").platforms, ["ruby"]);
        // Trailing blanks are invisible and must not hide a section.
        assert_eq!(parse("PLATFORMS \n  ruby  \n").platforms, ["ruby"]);
    }

    #[test]
    fn merge_conflict_markers() {
        let mut text = real(HOME).to_owned();
        text = text.replacen(
            "    kamal (2.7.0)\n",
            "<<<<<<< HEAD\n    kamal (2.7.0)\n=======\n    kamal (2.8.0)\n>>>>>>> feature\n",
            1,
        );
        let e = err(&text);
        assert_eq!(e.kind, ParseErrorKind::MergeConflict);
        assert_eq!(e.line, 154);
        let message = e.to_string();
        assert!(message.starts_with("line 154: "), "{message}");
        assert!(
            message.contains("resolve the merge conflict in Gemfile.lock (or run `bundle lock`)")
        );
        for marker in ["=======", ">>>>>>> theirs", "||||||| base"] {
            let e = err(&format!("GEM\n  specs:\n{marker}\n"));
            assert_eq!((e.line, e.kind), (3, ParseErrorKind::MergeConflict));
        }
    }

    #[test]
    fn malformed_lines_report_their_line() {
        let cases: &[(&str, usize)] = &[
            (
                "GEM\n  remote: https://rubygems.org/\n  specs:\n    rake 13.0.6\n",
                4,
            ),
            ("GEM\n  specs:\n    rake\n", 3),
            ("GEM\n  specs:\n    rake (13.0.6)!\n", 3),
            ("GEM\n  specs:\n    rake (13.0.6) sha256=00\n", 3),
            ("GEM\n  specs:\n    rake (13.0.6\n", 3),
            ("GEM\n  specs:\n     rake (13.0.6)\n", 3),
            ("GEM\n  specs:\n\n\n   rake (13.0.6)\n", 5),
            (
                "GEM\n  specs:\n    rake (13.0.6)\n      minitest (~> 5)!\n",
                4,
            ),
            ("GEM\n  what is this\n  specs:\n", 2),
            ("GEM\n  remote:\n  specs:\n", 2),
            ("PLATFORMS\n    ruby\n", 2),
            ("DEPENDENCIES\n  rails (~> 8.0) extra\n", 2),
            ("DEPENDENCIES\n    rails\n", 2),
            ("DEPENDENCIES\n  rails 8\n", 2),
            ("CHECKSUMS\n  rake sha256=00\n", 2),
            ("CHECKSUMS\n  rake (13.0.6)  sha256=00\n", 2),
            ("BUNDLED WITH\n        2.6.5\n", 2),
            ("RUBY VERSION\n ruby 3.3.5\n", 2),
            (
                "GIT\n  remote: x\n  revision: 0123abc\n  submodules: yes\n  specs:\n",
                4,
            ),
            ("GIT\n  remote: x\n  revision: not-hex!\n  specs:\n", 3),
        ];
        for (text, line) in cases {
            let e = err(text);
            assert!(
                matches!(e.kind, ParseErrorKind::Malformed { .. }),
                "{text:?} gave {e:?}"
            );
            assert_eq!(e.line, *line, "{text:?}");
            assert!(
                e.to_string()
                    .starts_with(&format!("line {line}: cannot read `"))
            );
        }
    }

    #[test]
    fn structural_errors() {
        let cases: &[(&str, usize, ParseErrorKind)] = &[
            (
                "GEM\n  remote: x\n    rake (1.0)\n",
                3,
                ParseErrorKind::SpecOutsideSource,
            ),
            (
                "GEM\n  specs:\n      rake (>= 1)\n",
                3,
                ParseErrorKind::DependencyBeforeSpec,
            ),
            (
                "GEM\n  specs:\n  remote: x\n",
                3,
                ParseErrorKind::OptionAfterSpecs,
            ),
            (
                "GEM\n  specs:\n  specs:\n",
                3,
                ParseErrorKind::DuplicateSpecsLine,
            ),
            (
                "PATH\n  glob: *.gemspec\n  specs:\n",
                1,
                ParseErrorKind::MissingOption {
                    section: "PATH",
                    key: "remote",
                },
            ),
            (
                "GIT\n  remote: x\n  specs:\n",
                1,
                ParseErrorKind::MissingOption {
                    section: "GIT",
                    key: "revision",
                },
            ),
            (
                "GIT\n  remote: x\n  revision: abcd\n  branch: a\n  branch: b\n  specs:\n",
                5,
                ParseErrorKind::DuplicateOption {
                    section: "GIT",
                    key: "branch".to_owned(),
                },
            ),
            (
                "PLATFORMS\n  ruby\n\nGIT\n  remote: x\n\nDEPENDENCIES\n",
                4,
                ParseErrorKind::MissingSpecs { section: "GIT" },
            ),
            (
                "GEM\n  remote: x\n",
                1,
                ParseErrorKind::MissingSpecs { section: "GEM" },
            ),
            (
                "GEM\n  specs:\n    a (1.0)\n    b (1.0)\n    a (1.0)\n",
                5,
                ParseErrorKind::DuplicateSpec {
                    full_name: "a-1.0".to_owned(),
                    first_line: 3,
                },
            ),
            // Different names can join to one full name (`a-1-2`), which Bundler keys gems by.
            (
                "GEM\n  specs:\n    a (1-2)\n    b (1.0)\n    a-1 (2)\n",
                5,
                ParseErrorKind::DuplicateSpec {
                    full_name: "a-1-2".to_owned(),
                    first_line: 3,
                },
            ),
            (
                "CHECKSUMS\n  a-1 (2) sha256=f51b10cfe581ed598543d952e9d809c31cbb1e5a21d0ae8dfda9ee5f3c36c30b\n  a (1-2) sha256=1408864425e0dec7e0a14d712a3b13f614e9f3a425b7661d3f9d287a51d7dd75\n",
                3,
                ParseErrorKind::ConflictingChecksum {
                    full_name: "a-1-2".to_owned(),
                    first_line: 2,
                },
            ),
            (
                "DEPENDENCIES\n  a\n  a (>= 1)\n",
                3,
                ParseErrorKind::DuplicateDependency {
                    name: "a".to_owned(),
                    first_line: 2,
                },
            ),
            (
                "BUNDLED WITH\n   2.6.5\n   2.6.6\n",
                3,
                ParseErrorKind::DuplicateValue {
                    section: "BUNDLED WITH",
                },
            ),
            (
                "CHECKSUMS\n  a (1.0) sha256=f51b10cfe581ed598543d952e9d809c31cbb1e5a21d0ae8dfda9ee5f3c36c30b\n  a (1.0) sha256=1408864425e0dec7e0a14d712a3b13f614e9f3a425b7661d3f9d287a51d7dd75\n",
                3,
                ParseErrorKind::ConflictingChecksum {
                    full_name: "a-1.0".to_owned(),
                    first_line: 2,
                },
            ),
            (
                "PLATFORMS\n  ruby\tx\n",
                2,
                ParseErrorKind::ControlCharacter("  ruby\tx".to_owned()),
            ),
            (
                "GEM\n  specs:\n    a (1.0)\r\r\n",
                3,
                ParseErrorKind::ControlCharacter("    a (1.0)\r".to_owned()),
            ),
        ];
        for (text, line, kind) in cases {
            let e = err(text);
            assert_eq!((&e.kind, e.line), (kind, *line), "{text:?}");
        }
        // A checksum counts for the spec whose full name it spells, even split differently.
        let lock = parse(
            "GEM\n  specs:\n    a (1-2)\n\nCHECKSUMS\n  a-1 (2) sha256=f51b10cfe581ed598543d952e9d809c31cbb1e5a21d0ae8dfda9ee5f3c36c30b\n",
        );
        assert_eq!(
            lock.specs[0].sha256.map(hex::encode).as_deref(),
            Some("f51b10cfe581ed598543d952e9d809c31cbb1e5a21d0ae8dfda9ee5f3c36c30b")
        );
        // A repeated checksum that agrees is harmless.
        let same = "CHECKSUMS\n  a (1.0) sha256=f51b10cfe581ed598543d952e9d809c31cbb1e5a21d0ae8dfda9ee5f3c36c30b\n  a (1.0) sha256=9RsQz+WB7VmFQ9lS6dgJwxy7Hloh0K6N/anuXzw2wws=\n";
        assert_eq!(parse(same).checksums.len(), 1);
    }

    #[test]
    fn hostile_names_versions_and_platforms_are_rejected() {
        let names = [
            "../evil", "a/b", "..", ".hidden", "-rf", "a\\b", "na me", "a\0b", "é",
        ];
        for name in names {
            for text in [
                format!("GEM\n  specs:\n    {name} (1.0)\n"),
                format!("GEM\n  specs:\n    ok (1.0)\n      {name} (>= 1)\n"),
                format!("DEPENDENCIES\n  {name}\n"),
                format!("DEPENDENCIES\n  {name}!\n"),
                format!("CHECKSUMS\n  {name} (1.0)\n"),
            ] {
                let e = err(&text);
                assert_eq!(e.line, text.lines().count(), "{text:?}");
                assert!(
                    matches!(
                        e.kind,
                        ParseErrorKind::BadName(_)
                            | ParseErrorKind::Malformed { .. }
                            | ParseErrorKind::ControlCharacter(_)
                    ),
                    "{text:?} gave {e:?}"
                );
            }
        }
        let e = err("GEM\n  specs:\n    ../evil (1.0)\n");
        assert_eq!(e.kind, ParseErrorKind::BadName("../evil".to_owned()));
        assert!(e.to_string().contains("is not a valid gem name"));

        for paren in ["../../x", "1.0/x", "", "1..0", "1.0 ", "v1"] {
            let e = err(&format!("GEM\n  specs:\n    a ({paren})\n"));
            assert!(
                matches!(e.kind, ParseErrorKind::Version(VersionError::BadVersion(_))),
                "{paren:?}: {e:?}"
            );
        }
        for paren in ["1.0-../x", "1.0-x/y", "1.0-", "1.0--x", "1.0-.x"] {
            let e = err(&format!("GEM\n  specs:\n    a ({paren})\n"));
            assert!(
                matches!(e.kind, ParseErrorKind::BadPlatform(_)),
                "{paren:?}: {e:?}"
            );
        }
        let e = err("PLATFORMS\n  x86_64/linux\n");
        assert_eq!(
            e.kind,
            ParseErrorKind::BadPlatform("x86_64/linux".to_owned())
        );
        let e = err("DEPENDENCIES\n  a (>= ../x)\n");
        assert_eq!(
            e.kind,
            ParseErrorKind::Version(VersionError::BadRequirement(">= ../x".to_owned()))
        );
        let e = err("BUNDLED WITH\n  ../2.6\n");
        assert_eq!(
            e.kind,
            ParseErrorKind::Version(VersionError::BadVersion("../2.6".to_owned()))
        );
        // A name may start with `_`, as some old gems do.
        assert_eq!(parse("GEM\n  specs:\n    _x (1.0)\n").specs[0].name, "_x");
        // Single dots inside names and platforms are fine.
        let lock = parse("GEM\n  specs:\n    a.b (1.0-x86_64-linux.x)\n");
        assert_eq!(
            (lock.specs[0].name, lock.specs[0].platform),
            ("a.b", "x86_64-linux.x")
        );
    }

    #[test]
    fn the_usual_entry_reading_agrees_with_the_general_one() {
        let mut contents: Vec<String> = [
            "rails",
            "rails!",
            "a (1.0)",
            "a (1.0)!",
            "a (1.0) sha256=ab",
            "a (>= 1, < 2)",
            "a (1.0-java)",
            "_x (1)",
            "a.b-c_d (1)",
            ".a (1)",
            "-a (1)",
            "a..b (1)",
            "a (1.0",
            "a (1.0) ",
            "a (1.0)  x",
            "a (1.0) x y",
            "a  (1.0)",
            "a(1.0)",
            "a ((1)",
            "a (1))",
            "a (1)!!",
            "a! (1)",
            "a!x",
            "a b",
            "a\u{e9} (1)",
            "",
            "!",
            " (1)",
            "a (1) !",
            "a (1)! x",
            "a (1)!x",
        ]
        .iter()
        .map(|c| c.to_string())
        .collect();
        // Every prefix of a few checksum lines too, to cover entries cut anywhere.
        let whole = "nokogiri (1.16.0-x86_64-linux) sha256=379fae440b28915e3f19d752ce2dcf8465ed2b2fbefd2a7ca0dd497bc981a06a";
        contents.extend((0..=whole.len()).map(|end| whole[..end].to_string()));
        for content in &contents {
            if let Some(usual) = Item::split_usual(content) {
                assert_eq!(
                    Ok(usual),
                    Item::split_general(content, content, EXPECT_SPEC),
                    "{content:?}"
                );
            }
        }
        // The usual shapes do take the one-pass reading.
        for content in [
            "rails",
            "rails!",
            "a (1.0)",
            "a (1.0)!",
            "a (1.0) sha256=ab",
        ] {
            assert!(Item::split_usual(content).is_some(), "{content:?}");
        }
    }

    /// Found by `cargo fuzz run lockfile` (fuzz/README.md): `..` inside a name or platform was accepted.
    #[test]
    fn double_dots_inside_names_and_platforms_are_rejected() {
        let fuzzed = "GE.org/\n /ss:\n    kamal (2.5.3)\n      thor3.2)\n\nPLATFORMS\n  ru..\n\nDERUBY VKRSION  kamal\n\ncHECKSUMS\n  kamalbwjndTpG0Z0\n";
        let e = err(fuzzed);
        assert_eq!(
            (e.line, e.kind),
            (7, ParseErrorKind::BadPlatform("ru..".to_owned()))
        );
        for (text, line) in [
            ("GEM\n  specs:\n    a..b (1.0)\n", 3),
            ("GEM\n  specs:\n    a.. (1.0)\n", 3),
            ("GEM\n  specs:\n    ok (1.0)\n      x..y (>= 1)\n", 4),
            ("DEPENDENCIES\n  a..b!\n", 2),
            ("CHECKSUMS\n  a..b (1.0)\n", 2),
        ] {
            let e = err(text);
            assert!(
                matches!(&e.kind, ParseErrorKind::BadName(n) if n.contains("..")),
                "{text:?}: {e:?}"
            );
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.to_string().contains("nor contain `..`"), "{e}");
        }
        for paren in ["1.0-x86_64..linux", "1.0-..", "1.0-x.."] {
            let e = err(&format!("GEM\n  specs:\n    a ({paren})\n"));
            assert!(
                matches!(e.kind, ParseErrorKind::BadPlatform(_)),
                "{paren:?}: {e:?}"
            );
        }
    }

    #[test]
    fn bad_checksums() {
        for item in [
            "sha256=abc",
            "sha256=",
            "sha256",
            "=abc",
            "sha256=zz08864425e0dec7e0a14d712a3b13f614e9f3a425b7661d3f9d287a51d7dd75",
            "sha256=FAiGRCXg3sfgoU1xKjsT9hTp86Qlt2YdP50oelHX3XU==",
            "sha256=FAiGRCXg3sfgoU1xKjsT9hTp86Qlt2YdP50oelHX3XV",
            "sha256=FAiGRCXg3sfgoU1xKjsT9hTp86Qlt2YdP50oelHX3X*",
            "md5=1,",
        ] {
            let e = err(&format!("CHECKSUMS\n  a (1.0) {item}\n"));
            assert!(
                matches!(e.kind, ParseErrorKind::BadChecksum(_)),
                "{item}: {e:?}"
            );
            assert_eq!(e.line, 2);
        }
        let two = "CHECKSUMS\n  a (1.0) sha256=f51b10cfe581ed598543d952e9d809c31cbb1e5a21d0ae8dfda9ee5f3c36c30b,sha256=1408864425e0dec7e0a14d712a3b13f614e9f3a425b7661d3f9d287a51d7dd75\n";
        assert!(matches!(err(two).kind, ParseErrorKind::BadChecksum(_)));
    }

    #[test]
    fn invalid_utf8_reports_line() {
        let mut bytes = b"GEM\n  specs:\n    rake (1.0)\n".to_vec();
        bytes.extend_from_slice(b"    caf\xc3(1.0)\n");
        let e = Lockfile::parse_bytes(&bytes).unwrap_err();
        assert_eq!((e.line, &e.kind), (4, &ParseErrorKind::InvalidUtf8));
        assert!(
            e.to_string()
                .starts_with("line 4: the file is not valid UTF-8")
        );
        assert_eq!(Lockfile::parse_bytes(b"\xff").unwrap_err().line, 1);
    }

    #[test]
    fn error_messages_are_escaped_and_bounded() {
        let long = format!("DEPENDENCIES\n  {}\u{7}x\n", "a".repeat(10_000));
        let message = err(&long).to_string();
        assert!(message.len() < 400, "{message}");
        assert!(message.starts_with("line 2: "));
        let message = err("GEM\n  specs:\n    a\u{1b}[31m (1.0)\n").to_string();
        assert!(message.contains("\\u{1b}"), "{message}");
    }

    /// Deterministic pseudo-random numbers for the mutation test.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn mutated_lockfiles_never_panic() {
        let original = real(HOME).as_bytes().to_vec();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut outcomes = [0usize; 2];
        for _ in 0..3000 {
            let bytes = mutate(&mut rng, &original);
            match Lockfile::parse_bytes(&bytes) {
                Ok(lock) => {
                    outcomes[0] += 1;
                    for spec in &lock.specs {
                        assert!(spec.source < lock.sources.len());
                        assert!(is_valid_name(spec.name) && is_valid_platform(spec.platform));
                    }
                }
                Err(e) => {
                    outcomes[1] += 1;
                    let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
                    assert!((1..=lines).contains(&e.line), "{e}");
                }
            }
        }
        // Both outcomes must occur, or the mutations are not exercising the parser.
        assert!(outcomes[0] > 100 && outcomes[1] > 100, "{outcomes:?}");
    }

    /// `original` with up to four random edits: a byte changed, a lockfile-ish token inserted, a stretch
    /// removed or copied elsewhere, or the tail cut.
    fn mutate(rng: &mut XorShift, original: &[u8]) -> Vec<u8> {
        let tokens: &[&[u8]] = &[
            b" (",
            b")",
            b"-",
            b"!",
            b",",
            b"=",
            b"\n",
            b"\r",
            b"\t",
            b"\0",
            b"\xff",
            b"\xc3",
            b"  ",
            b"      ",
            b"  specs:\n",
            b"GIT\n",
            b"PATH\n  remote: .\n",
            b"CHECKSUMS\n  a (1.0) sha256=",
            b"<<<<<<<",
            b"~> ",
            b"-x86_64-linux",
            "é".as_bytes(),
        ];
        let mut bytes = original.to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(5) {
                0 if at < bytes.len() => bytes[at] = rng.next() as u8,
                1 => {
                    let token = tokens[rng.below(tokens.len())];
                    bytes.splice(at..at, token.iter().copied());
                }
                2 => {
                    let end = (at + rng.below(40)).min(bytes.len());
                    bytes.drain(at..end);
                }
                3 => {
                    let end = (at + rng.below(200)).min(bytes.len());
                    let copy = bytes[at..end].to_vec();
                    let to = rng.below(bytes.len() + 1);
                    bytes.splice(to..to, copy);
                }
                _ => bytes.truncate(at),
            }
        }
        bytes
    }
}
