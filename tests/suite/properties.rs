//! Properties of the lockfile parser and the closure selection over random byte sequences, generated
//! lockfiles and structured mutations of them. The contract: any byte sequence gives either a parsed lockfile
//! or an error with its line number, never a panic; and nothing a parsed lockfile names (gems, versions,
//! platforms) can be a path separator, a parent directory or anything else RubyGems forbids.
//!
//! Deterministic (fixed seeds) and bounded: a few thousand cases, a second or two in a debug build. The same
//! invariants run unbounded under `cargo fuzz run lockfile` (fuzz/README.md).

use std::collections::HashSet;
use std::path::Component;

use kamal_launcher::cache::Cache;
use kamal_launcher::closure;
use kamal_launcher::lockfile::{Lockfile, ParseError, ParseErrorKind};
use kamal_launcher::platform::Platform;

/// Deterministic pseudo-random numbers (xorshift64), so a failure reproduces exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
}

/// Fails unless `text` is one harmless path component.
fn assert_path_safe(what: &str, text: &str, input: &[u8]) {
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
fn check(input: &[u8]) -> Result<Lockfile<'_>, ParseError> {
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
    // Whatever root is asked for, selection answers without panicking, and what it selects maps to exactly one
    // directory level under the store.
    let cache = Cache::new("/cache".into());
    let roots: Vec<&str> = lock
        .specs
        .iter()
        .take(2)
        .map(|s| s.name)
        .chain(["kamal"])
        .collect();
    for root in roots {
        for local in ["x86_64-linux-musl", "arm64-darwin-23"] {
            let Ok(closure) = closure::select(lock, root, &Platform::parse(local), false) else {
                continue;
            };
            assert_eq!(closure.gems[closure.root].spec.name, root);
            let mut order = closure.activation_order.clone();
            order.sort_unstable();
            assert_eq!(order, (0..closure.gems.len()).collect::<Vec<_>>());
            for gem in &closure.gems {
                let unit = cache.unit("ruby-3.4.0-x86_64-linux", &gem.spec.full_name(), &[7; 32]);
                let rel = unit
                    .strip_prefix("/cache/v2/store")
                    .expect("under the store");
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
struct Expected {
    name: String,
    version: String,
    platform: String,
    deps: Vec<String>,
    line: usize,
}

/// Kinds of line a hostile value can be put on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    SpecName,
    SpecVersion,
    SpecPlatform,
    SpecDependency,
    Platform,
    Dependency,
    ChecksumName,
    ChecksumVersion,
}

/// A generated lockfile: its lines, what it locks, and where each kind of value sits (line index, the text
/// before the value, the value, the text after it).
struct Generated {
    lines: Vec<String>,
    specs: Vec<Expected>,
    platforms: Vec<String>,
    slots: Vec<(Slot, usize, String, String, String)>,
}

impl Generated {
    fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        text
    }
}

/// A lockfile as Bundler writes it: several GEM, GIT and PATH sources, specs with dependencies, PLATFORMS,
/// DEPENDENCIES, CHECKSUMS, RUBY VERSION, BUNDLED WITH, sometimes an unknown section.
fn generate(rng: &mut Rng) -> Generated {
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
            let name = if !names.is_empty() && rng.chance(20) {
                names[rng.below(names.len())].clone()
            } else {
                gem_name(rng)
            };
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
            g.slots.push((
                Slot::SpecName,
                line,
                "    ".into(),
                name.clone(),
                format!(" ({paren})"),
            ));
            g.slots.push((
                Slot::SpecVersion,
                line,
                format!("    {name} ("),
                version.clone(),
                paren[version.len()..].to_owned() + ")",
            ));
            if platform != "ruby" {
                g.slots.push((
                    Slot::SpecPlatform,
                    line,
                    format!("    {name} ({version}-"),
                    platform.clone(),
                    ")".into(),
                ));
            }
            let mut deps = Vec::new();
            for _ in 0..rng.below(4) {
                let dep = if !names.is_empty() && rng.chance(60) {
                    names[rng.below(names.len())].clone()
                } else {
                    gem_name(rng)
                };
                let tail = if rng.chance(40) {
                    String::new()
                } else {
                    format!(" ({})", requirement(rng))
                };
                g.lines.push(format!("      {dep}{tail}"));
                g.slots.push((
                    Slot::SpecDependency,
                    g.lines.len(),
                    "      ".into(),
                    dep.clone(),
                    tail,
                ));
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
            g.slots.push((
                Slot::Platform,
                g.lines.len(),
                "  ".into(),
                p.clone(),
                String::new(),
            ));
            g.platforms.push(p);
        }
    }
    g.lines.push(String::new());
    g.lines.push("DEPENDENCIES".into());
    let mut listed = HashSet::new();
    for _ in 0..rng.below(6) {
        let name = if !names.is_empty() && rng.chance(70) {
            names[rng.below(names.len())].clone()
        } else {
            gem_name(rng)
        };
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
        g.slots.push((
            Slot::Dependency,
            g.lines.len(),
            "  ".into(),
            name,
            format!("{req}{bang}"),
        ));
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
            let line = g.lines.len();
            g.slots.push((
                Slot::ChecksumName,
                line,
                "  ".into(),
                spec.name.clone(),
                format!(" ({paren}){sum}"),
            ));
            g.slots.push((
                Slot::ChecksumVersion,
                line,
                format!("  {} (", spec.name),
                spec.version.clone(),
                format!("{}){sum}", &paren[spec.version.len()..]),
            ));
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

// ---- properties ----

#[test]
fn random_bytes_parse_or_fail_with_a_line() {
    let tokens: &[&[u8]] = &[
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
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut outcomes = [0usize; 2];
    for _ in 0..3_000 {
        let mut bytes = Vec::new();
        for _ in 0..rng.below(120) {
            if rng.chance(15) {
                bytes.push(rng.next() as u8);
            } else {
                bytes.extend_from_slice(tokens[rng.below(tokens.len())]);
            }
        }
        outcomes[usize::from(check(&bytes).is_err())] += 1;
    }
    // Both outcomes must occur, or the generator is not reaching the parser's interesting states.
    assert!(outcomes[0] > 100 && outcomes[1] > 100, "{outcomes:?}");
}

#[test]
fn generated_lockfiles_parse_back_to_what_was_written() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..250 {
        let g = generate(&mut rng);
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
        // CRLF line endings mean the same file.
        let crlf = text.replace('\n', "\r\n");
        assert_eq!(check(crlf.as_bytes()), Ok(lock), "\n{text}");
    }
}

#[test]
fn a_hostile_value_is_an_error_on_its_own_line() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let kinds = [
        (Slot::SpecName, HOSTILE_NAMES),
        (Slot::SpecDependency, HOSTILE_NAMES),
        (Slot::Dependency, HOSTILE_NAMES),
        (Slot::ChecksumName, HOSTILE_NAMES),
        (Slot::SpecVersion, HOSTILE_VERSIONS),
        (Slot::ChecksumVersion, HOSTILE_VERSIONS),
        (Slot::SpecPlatform, HOSTILE_PLATFORMS),
        (Slot::Platform, HOSTILE_PLATFORMS),
    ];
    // Every hostile value on every kind of line it can go on, each time in a different generated lockfile and
    // at a random one of the lines of that kind.
    for (kind, values) in kinds {
        for hostile in values {
            let (mut g, candidates) = loop {
                let g = generate(&mut rng);
                let candidates: Vec<_> = g.slots.iter().filter(|s| s.0 == kind).cloned().collect();
                if !candidates.is_empty() {
                    break (g, candidates);
                }
            };
            let (_, line, before, _, after) = candidates[rng.below(candidates.len())].clone();
            g.lines[line - 1] = format!("{before}{hostile}{after}");
            let text = g.text();
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
        }
    }
}

#[test]
fn mutated_lockfiles_keep_the_contract() {
    let tokens: &[&[u8]] = &[
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
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let mut outcomes = [0usize; 2];
    for _ in 0..1_000 {
        let mut bytes = generate(&mut rng).text().into_bytes();
        for _ in 0..=rng.below(4) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(5) {
                0 if at < bytes.len() => bytes[at] = rng.next() as u8,
                1 | 0 => {
                    let token = tokens[rng.below(tokens.len())];
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
        outcomes[usize::from(check(&bytes).is_err())] += 1;
    }
    assert!(outcomes[0] > 100 && outcomes[1] > 100, "{outcomes:?}");
}

#[test]
fn huge_lines_give_short_errors() {
    let long = "a".repeat(1 << 20);
    for (text, line) in [
        (format!("GEM\n  specs:\n    {long}/x (1.0)\n"), 3),
        (format!("GEM\n  specs:\n    a ({long})\n"), 3),
        (format!("GEM\n  specs:\n    a (1.0-{long}..)\n"), 3),
        (format!("PLATFORMS\n  x86_64-linux/{long}\n"), 2),
        (format!("GEM\n  specs:\n    a{long}\n"), 3),
    ] {
        let e = check(text.as_bytes()).unwrap_err();
        assert_eq!(e.line, line, "{e}");
    }
    // A huge line in a section the parser skips is skipped.
    let text = format!("SOMETHING NEW\n  {long}\nPLATFORMS\n  ruby\n");
    assert_eq!(check(text.as_bytes()).unwrap().platforms, ["ruby"]);
    // Invalid UTF-8 far into a long line is reported on that line.
    let mut bytes = format!("GEM\n  specs:\n    {long}").into_bytes();
    bytes.push(0xff);
    bytes.extend_from_slice(b"\n    b (1.0)\n");
    let e = check(&bytes).unwrap_err();
    assert_eq!((e.line, e.kind), (3, ParseErrorKind::InvalidUtf8));
}

#[test]
fn a_deep_dependency_chain_is_selected_without_recursion() {
    // kamal -> g0 -> g1 -> ... -> g4999, and back to kamal: a cycle through five thousand gems.
    let n = 5_000;
    let mut text = String::from(
        "GEM\n  remote: https://rubygems.org/\n  specs:\n    kamal (2.7.0)\n      g0\n",
    );
    for i in 0..n {
        text.push_str(&format!("    g{i} (1.0.{i})\n"));
        let next = if i + 1 < n {
            format!("g{}", i + 1)
        } else {
            "kamal".into()
        };
        text.push_str(&format!("      {next} (>= 1.0)\n"));
    }
    text.push_str("\nPLATFORMS\n  ruby\n\nDEPENDENCIES\n  kamal\n\nCHECKSUMS\n");
    for i in 0..n {
        text.push_str(&format!("  g{i} (1.0.{i}) sha256={i:064x}\n"));
    }
    let lock = Lockfile::parse(&text).unwrap();
    assert_eq!(lock.specs.len(), n + 1);
    let closure = closure::select(&lock, "kamal", &Platform::parse("x86_64-linux"), false).unwrap();
    assert_eq!(closure.gems.len(), n + 1);
    assert_eq!(closure.activation_order.len(), n + 1);
    let g7 = closure.gems.iter().find(|g| g.spec.name == "g7").unwrap();
    assert_eq!(
        g7.sha256.map(hex_of).as_deref(),
        Some(&*format!("{:064x}", 7))
    );
}

fn hex_of(bytes: [u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
