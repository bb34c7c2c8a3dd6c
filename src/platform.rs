//! Gem platforms as current RubyGems (`Gem::Platform`) and Bundler see them.
//!
//! Lockfiles name one gem version several times, once per platform, and the
//! launcher must install the same variant Bundler would. Installed RubyGems
//! releases disagree on linux libc handling, so this module follows the
//! current upstream rules rather than whichever Ruby happens to be around.

use std::fmt;

/// A parsed `Gem::Platform`; the generic "ruby" platform is not one of these.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Platform {
    /// CPU name, `None` when the platform string had no CPU part (e.g. "java").
    pub cpu: Option<String>,
    /// Operating system family, "unknown" when RubyGems would not recognise it.
    pub os: String,
    /// OS version, or the libc/ABI suffix on linux ("gnu", "musl", "gnueabihf").
    pub version: Option<String>,
}

impl Platform {
    /// Parses a platform string the way `Gem::Platform.new(String)` does.
    ///
    /// "ruby" has no `Platform` form: callers compare it as a string first.
    pub fn parse(s: &str) -> Platform {
        let trimmed = s.trim_end_matches('-');
        let (head, tail) = match trimmed.split_once('-') {
            Some((head, tail)) => (Some(head), Some(tail)),
            None if trimmed.is_empty() => (None, None),
            None => (Some(trimmed), None),
        };
        let mut cpu = head.map(|c| {
            if has_ix86(c) {
                "x86".to_string()
            } else {
                c.to_string()
            }
        });
        // A lone word ("java", "darwin0") is an OS without a CPU, and the OS
        // table must see the word as written, not the x86-normalised CPU.
        let os_part = match tail {
            Some(tail) => Some(tail),
            None => {
                cpu = None;
                head
            }
        };
        let (os, version) = match os_part {
            Some(os) => classify_os(os, &mut cpu),
            None => ("unknown".to_string(), None),
        };
        Platform { cpu, os, version }
    }

    /// `Gem::Platform#===` with `self` as the gem's platform and `runtime` as the machine's.
    ///
    /// Not symmetric: on linux a runtime without libc means glibc, while a gem
    /// without libc is libc-generic and so also installs on musl.
    pub fn matches(&self, runtime: &Platform) -> bool {
        let universal = |cpu: &Option<String>| cpu.as_deref() == Some("universal");
        if (universal(&self.cpu) || universal(&runtime.cpu))
            && self.os.starts_with("mingw")
            && runtime.os.starts_with("mingw")
        {
            return true;
        }

        let cpu_ok = match (self.cpu.as_deref(), runtime.cpu.as_deref()) {
            (None | Some("universal"), _) | (_, None | Some("universal")) => true,
            (Some(gem), Some(local)) => gem == local || (gem == "arm" && local.starts_with("armv")),
        };
        if !cpu_ok || self.os != runtime.os {
            return false;
        }

        if self.os != "linux" && (self.version.is_none() || runtime.version.is_none()) {
            return true;
        }
        if self.os == "linux" {
            if self.normalized_linux_version() == runtime.normalized_linux_version() {
                return true;
            }
            // This is how libc-generic gems reach musl hosts: the runtime libc
            // may be a musl flavour followed by the gem's own suffix (none
            // for a versionless gem), a plain concatenation upstream.
            let suffix = self.version.as_deref().unwrap_or("");
            if let Some(local) = runtime.version.as_deref() {
                let accepted = ["musl", "musleabi", "musleabihf"];
                if accepted
                    .iter()
                    .any(|p| local.strip_prefix(p) == Some(suffix))
                {
                    return true;
                }
            }
        }
        self.version == runtime.version
    }

    /// Linux libc with the implied "gnu" prefix and the ARM "eabi"/"eabihf" tail removed.
    fn normalized_linux_version(&self) -> Option<&str> {
        let version = self.version.as_deref()?;
        let without_gnu = version.strip_prefix("gnu").unwrap_or(version);
        let core = without_gnu
            .strip_suffix("eabihf")
            .or_else(|| without_gnu.strip_suffix("eabi"))
            .unwrap_or(without_gnu);
        (!core.is_empty()).then_some(core)
    }
}

impl fmt::Display for Platform {
    /// `Gem::Platform#to_s`: parts joined by "-", glued together when there is no CPU.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Without a CPU the string must stay one word ("darwin0"), since a dash
        // would make the OS read back as a CPU.
        let sep = if self.cpu.is_some() { "-" } else { "" };
        let parts = [
            self.cpu.as_deref(),
            Some(self.os.as_str()),
            self.version.as_deref(),
        ];
        let mut first = true;
        for part in parts.into_iter().flatten() {
            if !first {
                f.write_str(sep)?;
            }
            f.write_str(part)?;
            first = false;
        }
        Ok(())
    }
}

/// Platform of the running machine when no Ruby can be asked, as `Gem::Platform.local` would be, except that on
/// macOS (and FreeBSD) it names no OS version: Ruby's carries the version of the system it was *built* on,
/// which the running kernel's does not tell, and a versionless platform matches every version's gems, so
/// `cache key` and `plan` agree on every Mac.
pub fn machine_platform() -> Platform {
    let os = std::env::consts::OS;
    let musl =
        os == "linux" && (cfg!(target_env = "musl") || (musl_loader_present() && !glibc_present()));
    Platform::parse(&ruby_arch(
        std::env::consts::ARCH,
        os,
        musl,
        cfg!(target_endian = "little"),
    ))
}

/// Bundler's choice among the locked platform variants of one gem version, as an index into `variants`.
///
/// Mirrors `select_best_platform_match`: a variant qualifies when it is "ruby"
/// or its platform matches `local`; an exact platform wins, then the lowest
/// specificity score, then the earliest entry. `force_ruby` keeps only "ruby".
pub fn select_variant(variants: &[&str], local: &Platform, force_ruby: bool) -> Option<usize> {
    // Most gems are locked once, as "ruby": nothing to parse or rank.
    if let [only] = variants
        && is_ruby(only)
    {
        return Some(0);
    }
    let candidates: Vec<(usize, Option<Platform>)> = variants
        .iter()
        .enumerate()
        .filter_map(|(index, name)| {
            let platform = if is_ruby(name) {
                None
            } else if force_ruby {
                return None;
            } else {
                let platform = Platform::parse(name);
                if platform != *local && !platform.matches(local) {
                    return None;
                }
                Some(platform)
            };
            Some((index, platform))
        })
        .collect();

    if let Some((index, _)) = candidates
        .iter()
        .find(|(_, platform)| platform.as_ref() == Some(local))
    {
        return Some(*index);
    }
    // min_by_key keeps the first of equal scores, matching Bundler's stable sort.
    candidates
        .iter()
        .min_by_key(|(_, platform)| specificity(platform.as_ref(), local))
        .map(|(index, _)| *index)
}

/// Bundler's `platform_specificity_match`: lower is a closer fit for `user`.
fn specificity(spec: Option<&Platform>, user: &Platform) -> u32 {
    let Some(spec) = spec else {
        return 1_000_000;
    };
    let os = u32::from(spec.os != user.os);
    let cpu = match (spec.cpu.as_deref(), user.cpu.as_deref()) {
        (a, b) if a == b => 0,
        (Some("arm"), Some(u)) if u.starts_with("arm") => 0,
        (None | Some("universal"), _) => 1,
        _ => 2,
    };
    let version = if spec.version == user.version {
        0
    } else if spec.version.is_none() {
        1
    } else {
        2
    };
    os + cpu * 10 + version * 100
}

/// `Gem::Platform.new` returns the generic platform for these rather than parsing them.
fn is_ruby(name: &str) -> bool {
    name == "ruby" || name.is_empty()
}

/// The `RbConfig::CONFIG["arch"]` a stock Ruby build reports for this target, without an OS version.
fn ruby_arch(arch: &str, os: &str, musl: bool, little_endian: bool) -> String {
    match os {
        "linux" => {
            let cpu = match arch {
                "x86" => "i686",
                "powerpc64" if little_endian => "powerpc64le",
                other => other,
            };
            // Ruby's configure drops "-gnu" from the triple, so glibc builds
            // say plain "linux" and only 32-bit ARM keeps its float ABI tail.
            let libc = match (arch, musl) {
                ("arm", true) => "-musleabihf",
                ("arm", false) => "-eabihf",
                (_, true) => "-musl",
                (_, false) => "",
            };
            format!("{cpu}-linux{libc}")
        }
        "macos" => {
            let cpu = if arch == "aarch64" { "arm64" } else { arch };
            format!("{cpu}-darwin")
        }
        // Termux's Ruby is a linux build whose libc is Bionic.
        "android" => format!("{arch}-linux-android"),
        "freebsd" => {
            let cpu = if arch == "x86_64" { "amd64" } else { arch };
            format!("{cpu}-freebsd")
        }
        other => format!("{arch}-{other}"),
    }
}

/// Whether glibc's dynamic loader is installed: Debian's `musl` package adds a musl loader beside it, and such a
/// machine is still a glibc one.
fn glibc_present() -> bool {
    ["/lib64", "/lib", "/usr/lib64", "/usr/lib"]
        .iter()
        .any(|dir| {
            std::fs::read_dir(dir).is_ok_and(|entries| {
                entries.flatten().any(|entry| {
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    name.starts_with("ld-linux") && name.contains(".so.")
                })
            })
        })
}

/// Whether the musl dynamic loader is installed, which marks Alpine-like systems.
fn musl_loader_present() -> bool {
    std::fs::read_dir("/lib").is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with("ld-musl-") && name.ends_with(".so.1")
        })
    })
}

/// Whether `cpu` contains `i<digit>86`, which RubyGems folds into "x86".
fn has_ix86(cpu: &str) -> bool {
    cpu.as_bytes()
        .windows(4)
        .any(|w| w[0] == b'i' && w[1].is_ascii_digit() && w[2] == b'8' && w[3] == b'6')
}

/// Where an arm of RubyGems' OS table looks for its word in the text after the CPU.
#[derive(Clone, Copy)]
enum Found {
    /// The whole text is the word.
    Exactly,
    /// The text starts with it.
    AtStart,
    /// Anywhere in the text (the first occurrence).
    Anywhere,
}

/// What RubyGems' regex reads as the version after the word (each after an optional dash).
#[derive(Clone, Copy)]
enum Then {
    Nothing,
    /// `(\d+)?`
    Digits,
    /// `(\d+(?:\.\d+)*)?`
    Dotted,
    /// `(\d+\.\d+)?`
    Decimal,
    /// `(\w+)?`
    Word,
}

/// One arm: how the word is found, the word, the OS name it gives, and the version that follows.
type Arm = (Found, &'static str, &'static str, Then);

// RubyGems' OS table (`Gem::Platform#initialize`) in its order, because the first hit wins and most arms match
// anywhere. The arms a word and a position cannot say (dalvik, mswin, the test platforms) are in `classify_os`,
// between these three parts.

/// The arms before dalvik's.
const BEFORE_DALVIK: &[Arm] = &[
    (Found::Anywhere, "aix", "aix", Then::Digits),
    (Found::Anywhere, "cygwin", "cygwin", Then::Nothing),
    (Found::Anywhere, "darwin", "darwin", Then::Digits),
    (Found::Exactly, "macruby", "macruby", Then::Nothing),
    (Found::AtStart, "macruby", "macruby", Then::Dotted),
    (Found::Anywhere, "freebsd", "freebsd", Then::Digits),
    (Found::Exactly, "java", "java", Then::Nothing),
    (Found::Exactly, "jruby", "java", Then::Nothing),
    (Found::AtStart, "java", "java", Then::Dotted),
];

/// The arms between dalvik's and mswin's.
const BEFORE_MSWIN: &[Arm] = &[
    (Found::Exactly, "dotnet", "dotnet", Then::Nothing),
    (Found::AtStart, "dotnet", "dotnet", Then::Dotted),
    (Found::Anywhere, "linux", "linux", Then::Word),
    (Found::Anywhere, "mingw32", "mingw32", Then::Nothing),
    (Found::Anywhere, "mingw", "mingw", Then::Word),
];

/// The arms between mswin's and the test platforms'.
const BEFORE_TEST_PLATFORMS: &[Arm] = &[
    (Found::Anywhere, "netbsdelf", "netbsdelf", Then::Nothing),
    (Found::Anywhere, "openbsd", "openbsd", Then::Decimal),
    (Found::Anywhere, "solaris", "solaris", Then::Decimal),
    (Found::Anywhere, "wasi", "wasi", Then::Nothing),
];

/// Applies RubyGems' OS table to the text after the CPU, returning `(os, version)`.
fn classify_os(os: &str, cpu: &mut Option<String>) -> (String, Option<String>) {
    let owned = |name: &str, version: Option<&str>| (name.to_string(), version.map(str::to_string));
    if let Some((name, version)) = first_arm(os, BEFORE_DALVIK) {
        return owned(name, version);
    }
    if let Some(rest) = os.strip_prefix("dalvik") {
        // This arm is anchored at both ends: only an optional dash and digits may follow.
        let skip = usize::from(rest.starts_with('-'));
        let digits = digits_len(rest, skip);
        if skip + digits == rest.len() {
            return owned("dalvik", (digits > 0).then(|| &rest[skip..]));
        }
    }
    if let Some((name, version)) = first_arm(os, BEFORE_MSWIN) {
        return owned(name, version);
    }
    if let Some((name, version)) = mswin(os) {
        if cpu.is_none() && name.ends_with("32") {
            *cpu = Some("x86".to_string());
        }
        return owned(name, version);
    }
    if let Some((name, version)) =
        first_arm(os, BEFORE_TEST_PLATFORMS).or_else(|| test_platform(os))
    {
        return owned(name, version);
    }
    owned("unknown", None)
}

/// The first arm of `arms` that matches `os`: its OS name and version.
fn first_arm<'a>(os: &'a str, arms: &[Arm]) -> Option<(&'static str, Option<&'a str>)> {
    arms.iter().find_map(|&(found, word, name, then)| {
        let at = match found {
            Found::Exactly => (os == word).then_some(0),
            Found::AtStart => os.starts_with(word).then_some(0),
            Found::Anywhere => os.find(word),
        }?;
        let after = at + word.len();
        let version = match then {
            Then::Nothing => None,
            Then::Digits => digits_after_optional_dash(os, after),
            Then::Dotted => dotted_after_optional_dash(os, after),
            Then::Decimal => decimal_after_optional_dash(os, after),
            Then::Word => word_after_optional_dash(os, after),
        };
        Some((name, version))
    })
}

/// The `(mswin\d+)(?:[_-](\d+))?` arm: the first "mswin" followed by a digit.
fn mswin(os: &str) -> Option<(&str, Option<&str>)> {
    os.match_indices("mswin").find_map(|(at, _)| {
        let digits = digits_len(os, at + 5);
        if digits == 0 {
            return None;
        }
        let end = at + 5 + digits;
        let version = match os.as_bytes().get(end) {
            Some(b'_' | b'-') => {
                let n = digits_len(os, end + 1);
                (n > 0).then(|| &os[end + 1..end + 1 + n])
            }
            _ => None,
        };
        Some((&os[at..end], version))
    })
}

/// RubyGems' test-only `^(\w+_platform)-?(\d+)?` arm; the greedy `\w+` ends at the last "_platform".
fn test_platform(os: &str) -> Option<(&str, Option<&str>)> {
    const SUFFIX: &str = "_platform";
    let run = word_len(os, 0);
    let word = &os[..run];
    let at = word
        .rmatch_indices(SUFFIX)
        .map(|(at, _)| at)
        .find(|&at| at > 0)?;
    let end = at + SUFFIX.len();
    Some((&os[..end], digits_after_optional_dash(os, end)))
}

/// `-?(\d+)?` starting at byte `at`.
fn digits_after_optional_dash(s: &str, at: usize) -> Option<&str> {
    let start = skip_dash(s, at);
    let n = digits_len(s, start);
    (n > 0).then(|| &s[start..start + n])
}

/// `-?(\w+)?` starting at byte `at`.
fn word_after_optional_dash(s: &str, at: usize) -> Option<&str> {
    let start = skip_dash(s, at);
    let n = word_len(s, start);
    (n > 0).then(|| &s[start..start + n])
}

/// `-?(\d+(?:\.\d+)*)?` starting at byte `at`.
fn dotted_after_optional_dash(s: &str, at: usize) -> Option<&str> {
    let start = skip_dash(s, at);
    let mut end = start + digits_len(s, start);
    if end == start {
        return None;
    }
    while s.as_bytes().get(end) == Some(&b'.') {
        let n = digits_len(s, end + 1);
        if n == 0 {
            break;
        }
        end += 1 + n;
    }
    Some(&s[start..end])
}

/// `-?(\d+\.\d+)?` starting at byte `at`.
fn decimal_after_optional_dash(s: &str, at: usize) -> Option<&str> {
    let start = skip_dash(s, at);
    let whole = digits_len(s, start);
    if whole == 0 || s.as_bytes().get(start + whole) != Some(&b'.') {
        return None;
    }
    let frac = digits_len(s, start + whole + 1);
    (frac > 0).then(|| &s[start..start + whole + 1 + frac])
}

fn skip_dash(s: &str, at: usize) -> usize {
    if s.as_bytes().get(at) == Some(&b'-') {
        at + 1
    } else {
        at
    }
}

/// Ruby's `\d` is ASCII-only, so bytes suffice and slices stay on char boundaries.
fn digits_len(s: &str, at: usize) -> usize {
    s.as_bytes().get(at..).map_or(0, |rest| {
        rest.iter().take_while(|b| b.is_ascii_digit()).count()
    })
}

/// Ruby's `\w` is ASCII-only too: letters, digits and underscore.
fn word_len(s: &str, at: usize) -> usize {
    s.as_bytes().get(at..).map_or(0, |rest| {
        rest.iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s)
    }

    /// The variant Bundler installs on `local`.
    fn pick(variants: &[&str], local: &str) -> Option<usize> {
        select_variant(variants, &p(local), false)
    }

    /// The variant Bundler installs on `local` with `force_ruby_platform`.
    fn pick_ruby(variants: &[&str], local: &str) -> Option<usize> {
        select_variant(variants, &p(local), true)
    }

    fn parts(s: &str) -> (Option<String>, String, Option<String>) {
        let pl = p(s);
        (pl.cpu, pl.os, pl.version)
    }

    fn expect(
        cpu: Option<&str>,
        os: &str,
        version: Option<&str>,
    ) -> (Option<String>, String, Option<String>) {
        (
            cpu.map(String::from),
            os.to_string(),
            version.map(String::from),
        )
    }

    // Expected values were printed by a Ruby cross-check script run against
    // the installed RubyGems 3.3.15 / Bundler 2.3.15, then hard-coded here.
    // Rows marked "3.3:" are where 3.3 prints something else and the value
    // is current upstream's. Chiefly, 3.3 drops a "gnu" libc while parsing
    // (its linux regex refuses to capture "gnu..."); current keeps it and
    // normalises only when matching.
    const PARSE_TABLE: &[(&str, Option<&str>, &str, Option<&str>)] = &[
        ("x86_64-linux", Some("x86_64"), "linux", None),
        ("x86_64-linux-gnu", Some("x86_64"), "linux", Some("gnu")), // 3.3: nil
        ("x86_64-linux-musl", Some("x86_64"), "linux", Some("musl")),
        ("aarch64-linux", Some("aarch64"), "linux", None),
        ("aarch64-linux-gnu", Some("aarch64"), "linux", Some("gnu")), // 3.3: nil
        ("aarch64-linux-musl", Some("aarch64"), "linux", Some("musl")),
        ("arm-linux", Some("arm"), "linux", None),
        ("arm-linux-gnu", Some("arm"), "linux", Some("gnu")), // 3.3: nil
        ("arm-linux-musl", Some("arm"), "linux", Some("musl")),
        (
            "arm-linux-gnueabihf",
            Some("arm"),
            "linux",
            Some("gnueabihf"),
        ), // 3.3: nil
        (
            "arm-linux-musleabihf",
            Some("arm"),
            "linux",
            Some("musleabihf"),
        ),
        (
            "armv7l-linux-eabihf",
            Some("armv7l"),
            "linux",
            Some("eabihf"),
        ),
        ("arm64-darwin", Some("arm64"), "darwin", None),
        ("x86_64-darwin", Some("x86_64"), "darwin", None),
        ("arm64-darwin-23", Some("arm64"), "darwin", Some("23")),
        ("arm64-darwin23", Some("arm64"), "darwin", Some("23")),
        ("x86_64-darwin-20", Some("x86_64"), "darwin", Some("20")),
        ("x86_64-darwin-20.1", Some("x86_64"), "darwin", Some("20")), // 3.3: "20.1"
        ("universal-darwin", Some("universal"), "darwin", None),
        ("x64-mingw-ucrt", Some("x64"), "mingw", Some("ucrt")),
        ("x64-mingw32", Some("x64"), "mingw32", None),
        ("x86-mingw32", Some("x86"), "mingw32", None),
        ("java", None, "java", None),
        ("jruby", None, "java", None),
        ("universal-java-11", Some("universal"), "java", Some("11")),
        ("i686-linux", Some("x86"), "linux", None),
        ("x86-linux", Some("x86"), "linux", None),
        ("x86-linux-gnu", Some("x86"), "linux", Some("gnu")), // 3.3: nil
        ("x86-linux-musl", Some("x86"), "linux", Some("musl")),
        ("powerpc64le-linux", Some("powerpc64le"), "linux", None),
        ("mswin32", Some("x86"), "mswin32", None),
        ("i386-mswin32_80", Some("x86"), "mswin32", Some("80")),
        ("powerpc-aix5.3.0.0", Some("powerpc"), "aix", Some("5")),
        ("sparc-solaris2.10", Some("sparc"), "solaris", Some("2.10")),
        ("i386-solaris-2.10", Some("x86"), "solaris", Some("2.10")),
        ("amd64-freebsd14", Some("amd64"), "freebsd", Some("14")),
        ("x86_64-openbsd7.4", Some("x86_64"), "openbsd", Some("7.4")),
        ("wasm32-wasi", Some("wasm32"), "wasi", None), // 3.3: "unknown"
        ("darwin0", None, "darwin", Some("0")),
        (
            "linux-linux-linux1.0",
            Some("linux"),
            "linux",
            Some("linux1"),
        ), // 3.3: nil
        ("--", None, "unknown", None),
        ("cpu-my_platform1", Some("cpu"), "my_platform", Some("1")),
        ("x86_64-dalvik0", Some("x86_64"), "dalvik", Some("0")),
    ];

    // Odd inputs from the current RubyGems test suite, which pin down how the
    // unanchored regexes of the OS table behave; 3.3 was not consulted here.
    const UPSTREAM_EDGE_CASES: &[(&str, Option<&str>, &str, Option<&str>)] = &[
        ("darwin-java-java", Some("darwin"), "java", None),
        ("linux-linux-linux", Some("linux"), "linux", Some("linux")),
        (
            "x86x86-1x86x86x86x861linuxx86x86",
            Some("x86x86"),
            "linux",
            Some("x86x86"),
        ),
        ("darwin0---", None, "darwin", Some("0")),
        ("x86-linux-x8611.0l", Some("x86"), "linux", Some("x8611")),
        ("0-x86linuxx86---", Some("0"), "linux", Some("x86")),
        ("x86_64-macruby-x86", Some("x86_64"), "macruby", None),
        ("x86_64-dotnetx86", Some("x86_64"), "dotnet", None),
        ("x86_64-dotnet1.", Some("x86_64"), "dotnet", Some("1")),
        (
            "universal-dotnet2.0",
            Some("universal"),
            "dotnet",
            Some("2.0"),
        ),
        ("universal-macruby", Some("universal"), "macruby", None),
        ("i686-darwin8.4.1", Some("x86"), "darwin", Some("8")),
        ("i386-java1.5", Some("x86"), "java", Some("1.5")),
        ("i386-mswin32-80", Some("x86"), "mswin32", Some("80")),
        ("i386-netbsdelf", Some("x86"), "netbsdelf", None),
        ("i386-cygwin", Some("x86"), "cygwin", None),
        ("wasm32-wasip1", Some("wasm32"), "wasi", None),
        (
            "x86_64-linux-uclibc",
            Some("x86_64"),
            "linux",
            Some("uclibc"),
        ),
        (
            "arm-linux-uclibceabi",
            Some("arm"),
            "linux",
            Some("uclibceabi"),
        ),
        ("x86_64-openbsd", Some("x86_64"), "openbsd", None),
    ];

    #[test]
    fn parse_matches_rubygems() {
        for &(input, cpu, os, version) in PARSE_TABLE.iter().chain(UPSTREAM_EDGE_CASES) {
            assert_eq!(parts(input), expect(cpu, os, version), "parse({input:?})");
        }
    }

    #[test]
    fn to_string_round_trips() {
        // Upstream relies on to_s feeding back into new; the CPU-less join is
        // what keeps "darwin0" readable as an OS.
        for &(input, ..) in PARSE_TABLE.iter().chain(UPSTREAM_EDGE_CASES) {
            let once = p(input);
            assert_eq!(p(&once.to_string()), once, "round trip of {input:?}");
        }
    }

    #[test]
    fn display_follows_to_s() {
        let cases = [
            ("x86_64-linux-gnu", "x86_64-linux-gnu"), // 3.3: "x86_64-linux"
            ("i686-linux", "x86-linux"),
            ("java", "java"),
            ("jruby", "java"),
            ("universal-java-11", "universal-java-11"),
            ("arm64-darwin23", "arm64-darwin-23"),
            ("i386-mswin32_80", "x86-mswin32-80"),
            ("darwin0", "darwin0"), // 3.3: "darwin-0"
            ("mswin64", "mswin64"),
            ("--", "unknown"),
        ];
        for (input, shown) in cases {
            assert_eq!(p(input).to_string(), shown, "to_s of {input:?}");
        }
    }

    #[test]
    fn parse_keeps_non_ascii_intact() {
        // Ruby's \w and \d are ASCII-only, so a non-ASCII byte ends a capture.
        assert_eq!(
            parts("x86_64-linux-gnü"),
            expect(Some("x86_64"), "linux", Some("gn"))
        );
        assert_eq!(parts("é-darwin"), expect(Some("é"), "darwin", None));
    }

    #[test]
    fn matches_truth_table() {
        // (gem platform, runtime platform, current RubyGems answer). Rows
        // marked "3.3" are answered differently by the installed RubyGems
        // 3.3.15, whose === ignores libc entirely and lets "arm" gems onto any
        // "arm*" CPU, including arm64.
        let table = "
x86_64-linux          x86_64-linux-gnu        yes
x86_64-linux-gnu      x86_64-linux            yes
x86_64-linux          x86_64-linux            yes
x86_64-linux-gnu      x86_64-linux-gnu        yes
x86_64-linux-musl     x86_64-linux            no  # 3.3: yes
x86_64-linux          x86_64-linux-musl       yes
x86_64-linux-gnu      x86_64-linux-musl       no  # 3.3: yes
x86_64-linux-musl     x86_64-linux-gnu        no  # 3.3: yes
x86_64-linux-musl     x86_64-linux-musl       yes
x86_64-linux-uclibc   x86_64-linux            no  # 3.3: yes
x86_64-linux          x86_64-linux-uclibc     no
aarch64-linux-gnu     aarch64-linux           yes
aarch64-linux-gnu     x86_64-linux            no
aarch64-linux-musl    aarch64-linux-musl      yes
arm-linux-gnu         arm-linux-gnueabihf     yes
arm-linux-gnueabihf   arm-linux-eabihf        yes
arm-linux-musl        arm-linux-musleabihf    yes  # 3.3: no
arm-linux-musl        arm-linux-gnueabihf     no  # 3.3: yes
arm-linux             arm-linux-musleabihf    yes
arm-linux-eabi        arm-linux-musleabi      yes
arm-linux-musleabi    arm-linux-eabi          no
arm-linux-gnu         armv7l-linux-eabihf     yes
arm-linux             aarch64-linux           no
arm-linux             arm64-linux             no  # 3.3: yes
armv7-linux           arm-linux               no
arm64-darwin          arm64-darwin-23         yes
arm64-darwin-23       arm64-darwin            yes
arm64-darwin-23       arm64-darwin-23         yes
arm64-darwin-22       arm64-darwin-23         no
x86_64-darwin         arm64-darwin-23         no
universal-darwin      arm64-darwin-23         yes
java                  x86_64-linux            no
universal-java-11     x86_64-linux            no
java                  universal-java-11       yes
x64-mingw-ucrt        x64-mingw32             no
x64-mingw32           x64-mingw32             yes
universal-mingw32     x64-mingw-ucrt          yes  # 3.3: no
x86-linux             i686-linux              yes
";
        for row in table.lines().filter(|l| !l.trim().is_empty()) {
            let fields: Vec<&str> = row.split('#').next().unwrap().split_whitespace().collect();
            let [gem, runtime, answer] = fields[..] else {
                panic!("bad row {row:?}")
            };
            let expected = match answer {
                "yes" => true,
                "no" => false,
                _ => panic!("bad answer in {row:?}"),
            };
            assert_eq!(p(gem).matches(&p(runtime)), expected, "{gem} === {runtime}");
        }
    }

    const NOKOGIRI: &[&str] = &[
        "ruby",
        "x86_64-linux-gnu",
        "x86_64-linux-musl",
        "aarch64-linux-gnu",
        "arm64-darwin",
        "java",
    ];

    #[test]
    fn select_variant_for_nokogiri_like_lists() {
        // Bundler 2.3.15 on RubyGems 3.3.15 (the cross-check script) picks the
        // same variant for every row; it names the first one "x86_64-linux"
        // only because 3.3 parses away the "gnu".
        let cases = [
            ("x86_64-linux", Some(1)),      // glibc Ruby built from source
            ("x86_64-linux-gnu", Some(1)),  // Debian's Ruby, exact match
            ("x86_64-linux-musl", Some(2)), // Alpine
            ("aarch64-linux", Some(3)),
            ("arm64-darwin-23", Some(4)),
            ("x86_64-darwin-22", Some(0)), // no variant: generic ruby
            ("riscv64-linux", Some(0)),
        ];
        for (local, expected) in cases {
            assert_eq!(pick(NOKOGIRI, local), expected, "local {local}");
        }
    }

    #[test]
    fn select_variant_force_ruby_keeps_only_ruby() {
        assert_eq!(pick_ruby(NOKOGIRI, "x86_64-linux"), Some(0));
        assert_eq!(pick_ruby(NOKOGIRI, "arm64-darwin-23"), Some(0));
        assert_eq!(
            select_variant(&["x86_64-linux-gnu", "java"], &p("x86_64-linux"), true),
            None
        );
    }

    #[test]
    fn select_variant_without_installable_variant() {
        assert_eq!(pick(&["java"], "x86_64-linux"), None);
        assert_eq!(pick(&["universal-java-11"], "x86_64-linux"), None);
        assert_eq!(pick_ruby(&["java"], "x86_64-linux"), None);
        assert_eq!(pick(&["x86_64-linux-musl"], "x86_64-linux"), None);
        assert_eq!(pick(&[], "x86_64-linux"), None);
    }

    #[test]
    fn select_variant_prefers_exact_then_specific() {
        // Both spellings of glibc linux can sit side by side in old lockfiles.
        // RubyGems 3.3 parses them to the same platform, so Bundler 2.3.15
        // returns both and index 1 first for every local below, musl included.
        let both = ["ruby", "x86_64-linux-gnu", "x86_64-linux"];
        assert_eq!(pick(&both, "x86_64-linux"), Some(2));
        assert_eq!(pick(&both, "x86_64-linux-gnu"), Some(1));
        // A libc-generic build is accepted on musl, but a musl build wins.
        assert_eq!(pick(&both, "x86_64-linux-musl"), Some(2));
        let with_musl = ["ruby", "x86_64-linux", "x86_64-linux-musl"];
        assert_eq!(pick(&with_musl, "x86_64-linux-musl"), Some(2));
        // Ties keep lockfile order, like Bundler's index-stable sort.
        let tie = ["ruby", "universal-darwin", "universal-darwin"];
        assert_eq!(pick(&tie, "arm64-darwin-23"), Some(1));
    }

    #[test]
    fn select_variant_for_32_bit_arm() {
        // Bundler 2.3.15 on RubyGems 3.3.15 picks index 1 for all four locals:
        // it cannot tell gnu from musl here and lets "arm" gems onto arm64.
        let variants = ["ruby", "arm-linux-gnu", "arm-linux-musl"];
        assert_eq!(pick(&variants, "arm-linux-eabihf"), Some(1));
        assert_eq!(pick(&variants, "armv7l-linux-eabihf"), Some(1));
        assert_eq!(pick(&variants, "arm-linux-musleabihf"), Some(2));
        // arm64 is not a 32-bit ARM, whatever its name starts with.
        assert_eq!(pick(&variants, "arm64-linux"), Some(0));
    }

    #[test]
    fn select_variant_darwin_versions() {
        // The expected picks are those of upstream's own
        // sort_and_filter_best_platform_match test for the same list, and
        // Bundler 2.3.15 (the cross-check script) agrees on every row.
        let variants = [
            "ruby",
            "java",
            "universal-darwin",
            "universal-darwin-19",
            "universal-darwin-20",
            "arm64-darwin-19",
            "x86-darwin",
        ];
        let cases = [
            ("arm64-darwin-19", Some(5)),
            ("arm64-darwin-20", Some(4)),
            ("x86-darwin-19", Some(3)),
            ("x86-darwin-20", Some(4)),
            ("x86-darwin-21", Some(6)),
            ("x86_64-linux", Some(0)),
        ];
        for (local, expected) in cases {
            assert_eq!(pick(&variants, local), expected, "local {local}");
        }
    }

    #[test]
    fn ruby_arch_per_target() {
        let cases = [
            (("x86_64", "linux", false), "x86_64-linux"),
            (("x86_64", "linux", true), "x86_64-linux-musl"),
            (("aarch64", "linux", false), "aarch64-linux"),
            (("aarch64", "linux", true), "aarch64-linux-musl"),
            (("x86", "linux", false), "x86-linux"),
            (("arm", "linux", false), "arm-linux-eabihf"),
            (("arm", "linux", true), "arm-linux-musleabihf"),
            (("powerpc64", "linux", false), "powerpc64le-linux"),
            (("aarch64", "macos", false), "arm64-darwin"),
            (("x86_64", "macos", false), "x86_64-darwin"),
            (("x86_64", "freebsd", false), "amd64-freebsd"),
            (("aarch64", "android", false), "aarch64-linux-android"),
        ];
        for ((arch, os, musl), expected) in cases {
            let platform = p(&ruby_arch(arch, os, musl, true));
            assert_eq!(platform.to_string(), expected, "{arch} {os} musl={musl}");
        }
    }

    #[test]
    fn without_ruby_a_mac_names_no_darwin_version_and_matches_every_one() {
        // Ruby reports the darwin version it was built on (22 on a machine running 24, say): the machine's own
        // platform must not pick one, so that keys agree on every Mac and every version's gems still match.
        let mac = p(&ruby_arch("aarch64", "macos", false, true));
        assert_eq!(mac.to_string(), "arm64-darwin");
        for built_on in ["arm64-darwin-22", "arm64-darwin-23", "arm64-darwin"] {
            assert!(p(built_on).matches(&mac), "{built_on}");
        }
        assert!(!p("x86_64-darwin-23").matches(&mac));
    }

    #[test]
    fn ix86_folds_into_x86() {
        for cpu in ["i386", "i486", "i586", "i686", "xi686y"] {
            assert_eq!(
                p(&format!("{cpu}-linux")).cpu.as_deref(),
                Some("x86"),
                "{cpu}"
            );
        }
        assert_eq!(p("ia64-linux").cpu.as_deref(), Some("ia64"));
    }

    #[test]
    fn machine_platform_on_this_machine() {
        let local = machine_platform();
        assert_ne!(local.os, "unknown");
        // `ruby -e 'p Gem::Platform.local.to_s'` prints "x86_64-linux" on the
        // glibc x86_64 machine these tests were written on.
        if cfg!(all(
            target_os = "linux",
            target_arch = "x86_64",
            target_env = "gnu"
        )) && !musl_loader_present()
        {
            assert_eq!(local.to_string(), "x86_64-linux");
        }
        if cfg!(target_os = "macos") {
            assert_eq!(local.os, "darwin");
        }
    }
}
