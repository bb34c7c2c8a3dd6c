//! The lockfile contract and the generator that exercises it, shared by the property tests
//! (`tests/suite/properties.rs`, fixed seeds) and the fuzz target (`fuzz/fuzz_targets/lockfile.rs`, which
//! includes this file by path and lets the fuzz input make the generator's choices). One copy, so that the fuzz
//! target cannot drift from the library's API or from what the suite checks: a change that breaks it breaks
//! `cargo test` first.
//!
//! The contract: any byte sequence gives either a parsed lockfile or an error with its line number, never a
//! panic; nothing a parsed lockfile names (gems, versions, platforms) can be a path separator, a parent
//! directory or anything else RubyGems forbids; and selecting a closure from it neither panics nor yields a
//! store path that leaves its directory.
//!
//! Only `std` and the library: the fuzz crate has no other dependencies.

use std::collections::HashSet;
use std::path::Component;

use kamal_launcher::cache::Cache;
use kamal_launcher::closure;
use kamal_launcher::lockfile::{Lockfile, ParseError, ParseErrorKind};
use kamal_launcher::platform::Platform;

// ---- choices ----

/// The source of every choice the generator makes, deterministic so that a failure reproduces exactly.
pub struct Rng(Source);

enum Source {
    /// xorshift64 from a fixed seed: the property tests.
    Seed(u64),
    /// A fuzz input's bytes, then zeros: libFuzzer's mutations of the input become changes of structure, and an
    /// exhausted input makes every later choice the smallest.
    Tape(Vec<u8>, usize),
}

impl Rng {
    pub fn seeded(seed: u64) -> Rng {
        Rng(Source::Seed(seed))
    }

    pub fn tape(bytes: &[u8]) -> Rng {
        Rng(Source::Tape(bytes.to_vec(), 0))
    }

    fn byte(tape: &[u8], at: &mut usize) -> u8 {
        let b = tape.get(*at).copied().unwrap_or(0);
        *at += 1;
        b
    }

    pub fn next(&mut self) -> u64 {
        match &mut self.0 {
            Source::Seed(s) => {
                *s ^= *s << 13;
                *s ^= *s >> 7;
                *s ^= *s << 17;
                *s
            }
            Source::Tape(tape, at) => {
                u64::from_le_bytes(std::array::from_fn(|_| Rng::byte(tape, at)))
            }
        }
    }

    pub fn below(&mut self, n: usize) -> usize {
        let n = n.max(1);
        match &mut self.0 {
            // One byte a choice, so that an input of a few hundred bytes describes a whole lockfile.
            Source::Tape(tape, at) if n <= 256 => usize::from(Rng::byte(tape, at)) % n,
            _ => (self.next() % n as u64) as usize,
        }
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
}

// ---- the contract ----

/// Everything the fuzz target checks of one input: the input as a lockfile, and the input as the generator's
/// choices: the lockfile generated from them parses back, is refused with a hostile value on one of its lines,
/// and keeps the contract after mutations, as does a soup of lockfile tokens.
pub fn check_input(data: &[u8]) {
    let _ = check(data);
    let mut rng = Rng::tape(data);
    let g = generate(&mut rng);
    check_round_trip(&g);
    let (kind, values) = HOSTILE[rng.below(HOSTILE.len())];
    let hostile = values[rng.below(values.len())];
    check_hostile(&mut rng, &g, kind, hostile);
    let mut bytes = g.text().into_bytes();
    mutate(&mut rng, &mut bytes);
    let _ = check(&bytes);
    let _ = check(&token_soup(&mut rng));
}

/// Fails unless `text` is one harmless path component.
pub fn assert_path_safe(what: &str, text: &str, input: &[u8]) {
    let bad = text.is_empty()
        || ["/", "\\", "\0", ".."].iter().any(|b| text.contains(b))
        || text.starts_with(['.', '-']);
    assert!(
        !bad,
        "{what} {text:?} accepted from {:?}",
        String::from_utf8_lossy(input)
    );
}

/// Parses `input` and checks every invariant of the contract; returns the outcome for further checks.
pub fn check(input: &[u8]) -> Result<Lockfile<'_>, ParseError> {
    let result = Lockfile::parse_bytes(input);
    // Parsing is a function of the bytes.
    assert_eq!(result, Lockfile::parse_bytes(input));
    let lines = input.iter().filter(|&&b| b == b'\n').count() + 1;
    match &result {
        Err(e) => {
            assert!(
                (1..=lines).contains(&e.line),
                "line {} out of 1..={lines}: {e}\ninput: {:?}",
                e.line,
                String::from_utf8_lossy(input)
            );
            let message = e.to_string();
            assert!(
                message.starts_with(&format!("line {}: ", e.line)),
                "{message}"
            );
            // Hostile text is escaped and cut short in messages.
            assert!(message.len() < 2_000, "unbounded message: {message}");
        }
        Ok(lock) => check_parsed(lock, input),
    }
    result
}

fn check_parsed(lock: &Lockfile, input: &[u8]) {
    for spec in &lock.specs {
        assert_path_safe("name", spec.name, input);
        assert_path_safe("version", spec.version.as_str(), input);
        assert_path_safe("platform", spec.platform, input);
        assert_path_safe("full name", &spec.full_name(), input);
        assert!(spec.source < lock.sources.len());
        for dep in lock.dependencies_of(spec) {
            assert_path_safe("dependency", dep.name, input);
        }
    }
    for dep in &lock.dependencies {
        assert_path_safe("dependency", dep.name, input);
    }
    for sum in &lock.checksums {
        assert_path_safe("checksum name", sum.name, input);
        assert_path_safe("checksum version", sum.version, input);
        assert_path_safe("checksum platform", sum.platform, input);
    }
    for platform in &lock.platforms {
        assert_path_safe("platform", platform, input);
    }
    // Whatever root is asked for, on whatever machine, selection answers without panicking, and what it
    // selects maps to exactly one directory level under the store.
    let cache = Cache::new("/cache".into());
    let store = cache.root().join("store");
    let roots: Vec<&str> = lock
        .specs
        .iter()
        .take(2)
        .map(|s| s.name)
        .chain(["kamal"])
        .collect();
    for root in roots {
        for local in ["x86_64-linux", "x86_64-linux-musl", "arm64-darwin-23"] {
            for force_ruby in [false, true] {
                let local = Platform::parse(local);
                let Ok(closure) = closure::select(lock, root, &local, force_ruby) else {
                    continue;
                };
                assert_eq!(closure.gems[closure.root].spec.name, root);
                let mut order = closure.activation_order.clone();
                order.sort_unstable();
                assert_eq!(order, (0..closure.gems.len()).collect::<Vec<_>>());
                for gem in &closure.gems {
                    let unit =
                        cache.unit("ruby-3.4.0-x86_64-linux", &gem.spec.full_name(), &[7; 32]);
                    let rel = unit.strip_prefix(&store).expect("under the store");
                    assert_eq!(rel.components().count(), 2, "{}", unit.display());
                    assert!(
                        rel.components().all(|c| matches!(c, Component::Normal(_))),
                        "{}",
                        unit.display()
                    );
                }
            }
        }
    }
}

/// A generated lockfile parses back to exactly what was written, with LF or CRLF line endings.
pub fn check_round_trip(g: &Generated) {
    let text = g.text();
    let lock = check(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let got: Vec<Expected> = lock
        .specs
        .iter()
        .map(|s| Expected {
            name: s.name.to_owned(),
            version: s.version.as_str().to_owned(),
            platform: s.platform.to_owned(),
            deps: lock
                .dependencies_of(s)
                .iter()
                .map(|d| d.name.to_owned())
                .collect(),
            line: s.line,
        })
        .collect();
    assert_eq!(got, g.specs, "\n{text}");
    assert_eq!(lock.platforms, g.platforms, "\n{text}");
    let crlf = text.replace('\n', "\r\n");
    assert_eq!(check(crlf.as_bytes()), Ok(lock), "\n{text}");
}

/// Puts `hostile` on one of `g`'s lines of this kind, chosen by `rng`, and checks that it is an error on that
/// line; false when `g` has no line of this kind.
pub fn check_hostile(rng: &mut Rng, g: &Generated, kind: Slot, hostile: &str) -> bool {
    let candidates: Vec<_> = g.slots.iter().filter(|s| s.kind == kind).collect();
    if candidates.is_empty() {
        return false;
    }
    let slot = candidates[rng.below(candidates.len())];
    let mut lines = g.lines.clone();
    lines[slot.line - 1] = format!("{}{hostile}{}", slot.before, slot.after);
    let text = lines.join("\n") + "\n";
    let line = slot.line;
    let e = match check(text.as_bytes()) {
        Ok(_) => panic!("{hostile:?} as {kind:?} on line {line} was accepted:\n{text}"),
        Err(e) => e,
    };
    assert_eq!(e.line, line, "{hostile:?} as {kind:?}: {e}\n{text}");
    assert!(
        matches!(
            e.kind,
            ParseErrorKind::BadName(_)
                | ParseErrorKind::Version(_)
                | ParseErrorKind::BadPlatform(_)
                | ParseErrorKind::ControlCharacter(_)
                | ParseErrorKind::Malformed { .. }
        ),
        "{hostile:?} as {kind:?}: {e:?}"
    );
    true
}

// ---- generators ----

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn word(rng: &mut Rng, alphabet: &[u8], min: usize, max: usize) -> String {
    let len = min + rng.below(max - min + 1);
    (0..len)
        .map(|_| alphabet[rng.below(alphabet.len())] as char)
        .collect()
}

/// A name RubyGems accepts: `[A-Za-z0-9_]` then `[A-Za-z0-9._-]`, with no `..`.
fn gem_name(rng: &mut Rng) -> String {
    let mut name = word(rng, b"abcdefghijklmnopqrstuvwxyz0123456789_", 1, 1);
    for _ in 0..rng.below(12) {
        let c = match rng.below(10) {
            0 if !name.ends_with('.') => '.',
            1 => '-',
            2 => '_',
            _ => ALNUM[rng.below(ALNUM.len())] as char,
        };
        name.push(c);
    }
    name
}

/// One of the names already locked, `percent` times in a hundred, else a new one: dependencies that resolve
/// and dependencies that do not.
fn known_or_new(rng: &mut Rng, names: &[String], percent: usize) -> String {
    if !names.is_empty() && rng.chance(percent) {
        names[rng.below(names.len())].clone()
    } else {
        gem_name(rng)
    }
}

fn version(rng: &mut Rng) -> String {
    let mut v = word(rng, b"0123456789", 1, 3);
    for _ in 0..rng.below(4) {
        v.push('.');
        if rng.chance(15) {
            v.push_str(rng.pick(&["pre", "beta1", "rc2", "alpha"]));
        } else {
            v.push_str(&word(rng, b"0123456789", 1, 2));
        }
    }
    v
}

fn platform(rng: &mut Rng) -> String {
    if rng.chance(70) {
        rng.pick(&[
            "ruby",
            "x86_64-linux",
            "x86_64-linux-gnu",
            "x86_64-linux-musl",
            "aarch64-linux",
            "arm64-darwin",
            "java",
            "universal-java-17",
            "x64-mingw-ucrt",
            "arm-linux-gnueabihf",
        ])
        .to_owned()
    } else {
        gem_name(rng)
    }
}

fn requirement(rng: &mut Rng) -> String {
    let mut parts = Vec::new();
    for _ in 0..1 + rng.below(2) {
        let op = rng.pick(&["= ", ">= ", "~> ", "< ", "<= ", "> ", "!= "]);
        parts.push(format!("{op}{}", version(rng)));
    }
    parts.join(", ")
}

/// One locked spec as generated: what the parser must give back.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub name: String,
    pub version: String,
    pub platform: String,
    pub deps: Vec<String>,
    pub line: usize,
}

/// Kinds of line a hostile value can be put on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slot {
    SpecName,
    SpecVersion,
    SpecPlatform,
    SpecDependency,
    Platform,
    Dependency,
    ChecksumName,
    ChecksumVersion,
}

/// Where one value sits: its kind, its line (from 1), and the text around it on that line.
#[derive(Debug, Clone)]
pub struct Place {
    pub kind: Slot,
    pub line: usize,
    pub before: String,
    pub after: String,
}

/// A generated lockfile: its lines, what it locks, and where each kind of value sits.
pub struct Generated {
    pub lines: Vec<String>,
    pub specs: Vec<Expected>,
    pub platforms: Vec<String>,
    pub slots: Vec<Place>,
}

impl Generated {
    pub fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        text
    }

    /// Records that the value of `kind` on the last line sits between `before` and `after`.
    fn slot(&mut self, kind: Slot, before: impl Into<String>, after: impl Into<String>) {
        self.slots.push(Place {
            kind,
            line: self.lines.len(),
            before: before.into(),
            after: after.into(),
        });
    }
}

/// A lockfile as Bundler writes it: several GEM, GIT and PATH sources, specs with dependencies, PLATFORMS,
/// DEPENDENCIES, CHECKSUMS, RUBY VERSION, BUNDLED WITH, sometimes an unknown section.
pub fn generate(rng: &mut Rng) -> Generated {
    let mut g = Generated {
        lines: Vec::new(),
        specs: Vec::new(),
        platforms: Vec::new(),
        slots: Vec::new(),
    };
    let mut full_names = HashSet::new();
    let mut names: Vec<String> = Vec::new();
    for _ in 0..1 + rng.below(4) {
        match rng.below(4) {
            0 => {
                g.lines.push("GIT".into());
                g.lines.push(format!(
                    "  remote: https://github.com/{}/{}.git",
                    gem_name(rng),
                    gem_name(rng)
                ));
                g.lines.push(format!(
                    "  revision: {}",
                    word(rng, b"0123456789abcdef", 40, 40)
                ));
                if rng.chance(50) {
                    g.lines.push("  branch: main".into());
                }
            }
            1 => {
                g.lines.push("PATH".into());
                g.lines.push(format!("  remote: vendor/{}", gem_name(rng)));
            }
            _ => {
                g.lines.push("GEM".into());
                g.lines.push("  remote: https://rubygems.org/".into());
                if rng.chance(20) {
                    g.lines.push("  remote: https://gems.example.com/".into());
                }
            }
        }
        g.lines.push("  specs:".into());
        for _ in 0..rng.below(8) {
            let name = known_or_new(rng, &names, 20);
            let version = version(rng);
            let platform = if rng.chance(70) {
                "ruby".to_owned()
            } else {
                platform(rng)
            };
            let paren = if platform == "ruby" {
                version.clone()
            } else {
                format!("{version}-{platform}")
            };
            if !full_names.insert(format!("{name}-{paren}")) {
                continue;
            }
            g.lines.push(format!("    {name} ({paren})"));
            let line = g.lines.len();
            g.slot(Slot::SpecName, "    ", format!(" ({paren})"));
            g.slot(
                Slot::SpecVersion,
                format!("    {name} ("),
                paren[version.len()..].to_owned() + ")",
            );
            if platform != "ruby" {
                g.slot(Slot::SpecPlatform, format!("    {name} ({version}-"), ")");
            }
            let mut deps = Vec::new();
            for _ in 0..rng.below(4) {
                let dep = known_or_new(rng, &names, 60);
                let tail = if rng.chance(40) {
                    String::new()
                } else {
                    format!(" ({})", requirement(rng))
                };
                g.lines.push(format!("      {dep}{tail}"));
                g.slot(Slot::SpecDependency, "      ", tail);
                deps.push(dep);
            }
            names.push(name.clone());
            g.specs.push(Expected {
                name,
                version,
                platform,
                deps,
                line,
            });
        }
        g.lines.push(String::new());
    }
    if rng.chance(20) {
        g.lines.push("SOMETHING NEW".into());
        g.lines.push("  whatever: (goes) here ../../x \\ /".into());
        g.lines.push(String::new());
    }
    g.lines.push("PLATFORMS".into());
    let mut seen = HashSet::new();
    for _ in 0..1 + rng.below(4) {
        let p = platform(rng);
        if seen.insert(p.clone()) {
            g.lines.push(format!("  {p}"));
            g.slot(Slot::Platform, "  ", "");
            g.platforms.push(p);
        }
    }
    g.lines.push(String::new());
    g.lines.push("DEPENDENCIES".into());
    let mut listed = HashSet::new();
    for _ in 0..rng.below(6) {
        let name = known_or_new(rng, &names, 70);
        if !listed.insert(name.clone()) {
            continue;
        }
        let req = if rng.chance(50) {
            format!(" ({})", requirement(rng))
        } else {
            String::new()
        };
        let bang = if rng.chance(20) { "!" } else { "" };
        g.lines.push(format!("  {name}{req}{bang}"));
        g.slot(Slot::Dependency, "  ", format!("{req}{bang}"));
    }
    if rng.chance(70) {
        g.lines.push(String::new());
        g.lines.push("CHECKSUMS".into());
        for spec in g.specs.clone() {
            let paren = if spec.platform == "ruby" {
                spec.version.clone()
            } else {
                format!("{}-{}", spec.version, spec.platform)
            };
            let sum = if rng.chance(80) {
                format!(" sha256={}", word(rng, b"0123456789abcdef", 64, 64))
            } else {
                String::new()
            };
            g.lines.push(format!("  {} ({paren}){sum}", spec.name));
            g.slot(Slot::ChecksumName, "  ", format!(" ({paren}){sum}"));
            g.slot(
                Slot::ChecksumVersion,
                format!("  {} (", spec.name),
                format!("{}){sum}", &paren[spec.version.len()..]),
            );
        }
    }
    if rng.chance(50) {
        g.lines.push(String::new());
        g.lines.push("RUBY VERSION".into());
        g.lines.push("   ruby 3.3.5p100".into());
    }
    g.lines.push(String::new());
    g.lines.push("BUNDLED WITH".into());
    g.lines.push(format!("   {}", version(rng)));
    g
}

/// Pieces of lockfile syntax and bytes that trouble parsers, for token soups.
const SOUP: &[&[u8]] = &[
    b"GEM\n",
    b"GIT\n",
    b"PATH\n",
    b"PLATFORMS\n",
    b"DEPENDENCIES\n",
    b"CHECKSUMS\n",
    b"BUNDLED WITH\n",
    b"RUBY VERSION\n",
    b"PLUGIN SOURCE\n",
    b"  specs:\n",
    b"  remote: ",
    b"  revision: ",
    b"abcdef0123",
    b"  ",
    b"    ",
    b"      ",
    b" (",
    b")",
    b"-",
    b".",
    b"..",
    b"/",
    b"\\",
    b"!",
    b",",
    b"=",
    b"~> ",
    b"sha256=",
    b"kamal",
    b"1.0",
    b"x86_64-linux",
    b"\n",
    b"\r\n",
    b"\t",
    b"\0",
    b"\xff",
    b"\xc3",
    b"\xef\xbb\xbf",
    b"<<<<<<<",
    "é".as_bytes(),
];

/// Up to 120 pieces of lockfile syntax and random bytes: mostly nonsense, often close to a lockfile.
pub fn token_soup(rng: &mut Rng) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..rng.below(120) {
        if rng.chance(15) {
            bytes.push(rng.next() as u8);
        } else {
            bytes.extend_from_slice(SOUP[rng.below(SOUP.len())]);
        }
    }
    bytes
}

/// What mutations insert: separators, line breaks, indentation, brackets, invalid UTF-8, section headers.
const INSERTS: &[&[u8]] = &[
    b"/",
    b"\\",
    b"..",
    b"../",
    b"\0",
    b"\n",
    b"\r",
    b"\t",
    b" ",
    b"    ",
    b"      ",
    b" (",
    b")",
    b"-",
    b"!",
    b"\xff",
    b"\xc3",
    "é".as_bytes(),
    b"<<<<<<<",
    b"  specs:\n",
    b"GEM\n",
    b"CHECKSUMS\n",
    b"sha256=",
];

/// One to five structured mutations: a byte overwritten, a token inserted, a run deleted, a run copied elsewhere,
/// the rest cut off.
pub fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 if at < bytes.len() => bytes[at] = rng.next() as u8,
            1 | 0 => {
                let token = INSERTS[rng.below(INSERTS.len())];
                bytes.splice(at..at, token.iter().copied());
            }
            2 => {
                let end = (at + rng.below(30)).min(bytes.len());
                bytes.drain(at..end);
            }
            3 => {
                let end = (at + rng.below(120)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                let to = rng.below(bytes.len() + 1);
                bytes.splice(to..to, copy);
            }
            _ => bytes.truncate(at),
        }
    }
}

/// Values RubyGems forbids in names, versions and platforms: separators, parent directories, control and
/// non-ASCII characters, empty text.
const HOSTILE_NAMES: &[&str] = &[
    "../../evil",
    "..",
    ".",
    "a/b",
    "/etc",
    "a\\b",
    "..\\..\\x",
    "a\0b",
    "x/../y",
    "a..b",
    "evil/..",
    "%2e%2e%2f",
    "é",
    "a\u{202e}b",
    "~root",
    "$HOME",
    "a:b",
    "*",
    "-rf",
    ".hidden",
    "a\u{7}b",
];
const HOSTILE_VERSIONS: &[&str] = &[
    "1.0/../../x",
    "../1.0",
    "1.0/",
    "/1.0",
    "1.0\\x",
    "1..0",
    "1.0.",
    ".1",
    "1.0\0",
    "1.0%2f..",
    "١.٠",
    "v2",
    "",
];
const HOSTILE_PLATFORMS: &[&str] = &[
    "x86_64-linux/../..",
    "..",
    "a/b",
    "x\\y",
    ".x",
    "-x",
    "x..y",
    "x\0",
    "é",
];

/// Every kind of line and the hostile values that can go on it.
pub const HOSTILE: &[(Slot, &[&str])] = &[
    (Slot::SpecName, HOSTILE_NAMES),
    (Slot::SpecDependency, HOSTILE_NAMES),
    (Slot::Dependency, HOSTILE_NAMES),
    (Slot::ChecksumName, HOSTILE_NAMES),
    (Slot::SpecVersion, HOSTILE_VERSIONS),
    (Slot::ChecksumVersion, HOSTILE_VERSIONS),
    (Slot::SpecPlatform, HOSTILE_PLATFORMS),
    (Slot::Platform, HOSTILE_PLATFORMS),
];
