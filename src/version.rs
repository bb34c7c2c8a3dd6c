//! RubyGems versions and requirements (`Gem::Version`, `Gem::Requirement`).
//!
//! These are not semver: a version is a dotted list of numeric and alphabetic
//! segments, any letter makes it a prerelease, and trailing zeros do not count.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// Why a version or requirement string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The text is not a RubyGems version.
    #[error(
        "`{}` is not a valid gem version (expected digits separated by dots, like `1.2.3` or `2.0.0.beta1`)",
        shown(.0)
    )]
    BadVersion(String),
    /// The text is not a RubyGems requirement.
    #[error(
        "`{}` is not a valid version requirement (expected e.g. `~> 1.6` or `>= 1.15.7, != 1.16.7`)",
        shown(.0)
    )]
    BadRequirement(String),
}

/// Renders untrusted text for an error message: escaped, and cut short so a
/// hostile input cannot flood the terminal.
pub(crate) fn shown(text: &str) -> String {
    const LIMIT: usize = 80;
    let mut out = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == LIMIT {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}

/// One comparable piece of a version, as stored in the general representation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Segment {
    /// A number that fits in 64 bits.
    Num(u64),
    /// Decimal digits without leading zeros, too many for `Num`; kept as text
    /// so that arbitrarily long numbers compare correctly without overflow.
    Big(Box<str>),
    Str(Box<str>),
}

impl Segment {
    fn is_zero(&self) -> bool {
        matches!(self, Segment::Num(0))
    }

    fn view(&self) -> Seg<'_> {
        match self {
            Segment::Num(n) => Seg::Num(*n),
            Segment::Big(s) => Seg::Big(s),
            Segment::Str(s) => Seg::Str(s),
        }
    }

    /// One more, for the numeric segment that `~>` bumps; letters are left alone.
    fn incremented(&self) -> Segment {
        match self {
            Segment::Num(n) => n.checked_add(1).map_or_else(
                || Segment::Big(increment_decimal(&n.to_string()).into()),
                Segment::Num,
            ),
            Segment::Big(digits) => Segment::Big(increment_decimal(digits).into()),
            Segment::Str(_) => self.clone(),
        }
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Num(n) => write!(f, "{n}"),
            Segment::Big(s) | Segment::Str(s) => f.write_str(s),
        }
    }
}

/// A borrowed segment, so both representations compare through one rule.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Num(u64),
    Big(&'a str),
    Str(&'a str),
}

impl Seg<'_> {
    fn compare(self, other: Seg<'_>) -> Ordering {
        match (self, other) {
            (Seg::Num(a), Seg::Num(b)) => a.cmp(&b),
            // `Big` only holds numbers beyond `u64::MAX`.
            (Seg::Num(_), Seg::Big(_)) => Ordering::Less,
            (Seg::Big(_), Seg::Num(_)) => Ordering::Greater,
            (Seg::Big(a), Seg::Big(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            (Seg::Str(a), Seg::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
            // A letter segment marks a prerelease, which sorts before any release.
            (Seg::Str(_), _) => Ordering::Less,
            (_, Seg::Str(_)) => Ordering::Greater,
        }
    }
}

/// How many numeric parts a version may have and still be stored inline.
/// `plain_numeric` keeps exactly this many parts in its locals.
const INLINE_PARTS: usize = 4;

/// Segments with trailing zeros removed from the release part and from the
/// prerelease part, which is what makes "1.0" equal "1.0.0". Each canonical
/// list has exactly one representation, so derived equality and hashing agree
/// with version equality.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Canonical {
    /// At most `INLINE_PARTS` numbers, zero-padded: nearly every real version,
    /// compared without allocating.
    Numeric([u64; INLINE_PARTS]),
    /// Everything else.
    General(Box<[Segment]>),
}

impl Canonical {
    fn from_segments(segs: Vec<Segment>) -> Canonical {
        if segs.len() <= INLINE_PARTS {
            let mut parts = [0u64; INLINE_PARTS];
            let all_numeric = segs.iter().zip(&mut parts).all(|(s, p)| match s {
                Segment::Num(n) => {
                    *p = *n;
                    true
                }
                _ => false,
            });
            if all_numeric {
                return Canonical::Numeric(parts);
            }
        }
        Canonical::General(segs.into_boxed_slice())
    }

    fn len(&self) -> usize {
        match self {
            Canonical::Numeric(parts) => parts.iter().rposition(|&p| p != 0).map_or(0, |i| i + 1),
            Canonical::General(segs) => segs.len(),
        }
    }

    /// The segment at `i`; missing ones count as zero.
    fn get(&self, i: usize) -> Seg<'_> {
        match self {
            Canonical::Numeric(parts) => Seg::Num(parts.get(i).copied().unwrap_or(0)),
            Canonical::General(segs) => segs.get(i).map_or(Seg::Num(0), Segment::view),
        }
    }
}

/// Version text as written; short ones (nearly all) are kept without a heap allocation. Measured on the real
/// lockfiles (tests/fixtures/real-lockfiles, whole `cache key` runs, hyperfine): a `Box<str>` per version, or
/// a plain `copy_from_slice` into the array, made a run 6% slower (1.32 -> 1.42 ms).
#[derive(Clone)]
enum Text {
    Inline { len: u8, bytes: [u8; 22] },
    Heap(Box<str>),
}

impl Text {
    fn new(s: &str) -> Text {
        if s.len() > 22 {
            return Text::Heap(s.into());
        }
        // Gathered in words, then stored whole: a `memcpy` of the short text followed by reading the array
        // back in other widths made the CPU wait on its store buffer, and versions are parsed by the thousand.
        let mut words = [0u64; 3];
        for (i, &b) in s.as_bytes().iter().enumerate() {
            words[i / 8] |= u64::from(b) << (8 * (i % 8));
        }
        let mut bytes = [0u8; 22];
        bytes[..8].copy_from_slice(&words[0].to_le_bytes());
        bytes[8..16].copy_from_slice(&words[1].to_le_bytes());
        bytes[16..].copy_from_slice(&words[2].to_le_bytes()[..6]);
        Text::Inline {
            len: s.len() as u8,
            bytes,
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // The bytes were copied whole from a `str`, so this cannot fail.
            Text::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)])
                .expect("inline version text is a copied str"),
            Text::Heap(s) => s,
        }
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A RubyGems version; equality and ordering follow `Gem::Version#<=>`.
#[derive(Debug, Clone)]
pub struct Version {
    text: Text,
    canonical: Canonical,
    /// Dot-separated parts as written, for `Numeric` versions only (0 otherwise): `~>` bumps by position.
    parts: u8,
}

impl Version {
    /// Parses a version such as `1.2.3`, `8.2.0.alpha` or `1.0-pre`.
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        if let Some((numbers, parts)) = plain_numeric(s) {
            return Ok(Version {
                text: Text::new(s),
                canonical: Canonical::Numeric(numbers),
                parts,
            });
        }
        if !is_valid_version(s) {
            return Err(VersionError::BadVersion(s.to_owned()));
        }
        Ok(Version {
            text: Text::new(s),
            canonical: Canonical::from_segments(canonicalize(segments_of(s))),
            parts: 0,
        })
    }

    /// Whether [`Version::parse`] would accept `s`, without building the version.
    pub fn is_valid(s: &str) -> bool {
        plain_numeric(s).is_some() || is_valid_version(s)
    }

    /// The version exactly as it was written.
    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }

    /// True when the version contains a letter (RubyGems treats `-` as `.pre.`).
    #[cfg(test)]
    pub fn is_prerelease(&self) -> bool {
        self.as_str()
            .bytes()
            .any(|b| b.is_ascii_alphabetic() || b == b'-')
    }

    /// The version with every segment from the first letter on dropped
    /// (`1.2.0.a` gives `1.2.0`).
    fn release(&self) -> Version {
        let mut segs = segments_of(self.as_str());
        truncate_at_first_letter(&mut segs);
        Version::from_segments(segs)
    }

    /// The exclusive upper bound of `~>`: drop letter segments, drop the last
    /// segment if more than one remains, then increment the last one
    /// (`1.6.1` gives `1.7`, `1.6` gives `2`).
    fn bump(&self) -> Version {
        let mut segs = segments_of(self.as_str());
        truncate_at_first_letter(&mut segs);
        if segs.len() > 1 {
            segs.pop();
        }
        if let Some(last) = segs.last_mut() {
            *last = last.incremented();
        }
        Version::from_segments(segs)
    }

    /// `self.release() < limit.bump()` without building either, when both are
    /// plain numbers (`None` otherwise).
    fn below_bump_of(&self, limit: &Version) -> Option<bool> {
        let (Canonical::Numeric(mine), Canonical::Numeric(theirs)) =
            (&self.canonical, &limit.canonical)
        else {
            return None;
        };
        below_bump(mine, theirs, limit.parts)
    }

    /// `self` against a plain-number constraint without building a [`Version`] for it; `None` when this
    /// version is not plain numbers or the bound cannot be computed inline.
    fn satisfies_numeric(&self, op: Op, theirs: &[u64; INLINE_PARTS], parts: u8) -> Option<bool> {
        let Canonical::Numeric(mine) = &self.canonical else {
            return None;
        };
        match compares(op, mine.cmp(theirs)) {
            Some(answer) => Some(answer),
            None => Some(mine >= theirs && below_bump(mine, theirs, parts)?),
        }
    }

    fn from_segments(segs: Vec<Segment>) -> Version {
        let text = segs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(".");
        Version {
            text: Text::new(&text),
            canonical: Canonical::from_segments(canonicalize(segs)),
            parts: 0,
        }
    }
}

/// `mine < bump(theirs)` for plain numbers written in `parts` dot-separated parts (see [`Version::bump`]).
fn below_bump(mine: &[u64; INLINE_PARTS], theirs: &[u64; INLINE_PARTS], parts: u8) -> Option<bool> {
    let parts = usize::from(parts);
    if parts == 0 || parts > INLINE_PARTS {
        return None;
    }
    let kept = if parts > 1 { parts - 1 } else { parts };
    let mut bound = [0u64; INLINE_PARTS];
    bound[..kept].copy_from_slice(&theirs[..kept]);
    bound[kept - 1] = bound[kept - 1].checked_add(1)?;
    Some(*mine < bound)
}

/// Reads digits separated by single dots (`1.2.3`, the shape of almost every
/// locked version) into inline numbers and the count of parts; `None` sends
/// anything else, including numbers beyond `u64`, down the general path.
fn plain_numeric(s: &str) -> Option<([u64; INLINE_PARTS], u8)> {
    // The parts are kept in locals rather than an indexed array so that they stay in registers: storing
    // them one by one and then reading the array whole made the CPU wait on its store buffer.
    let mut numbers = (0u64, 0u64, 0u64, 0u64);
    let mut index = 0usize;
    let mut value = 0u64;
    let mut digits = 0usize;
    let mut store = |index: usize, value: u64| {
        match index {
            0 => numbers.0 = value,
            1 => numbers.1 = value,
            2 => numbers.2 = value,
            3 => numbers.3 = value,
            // Past the inline parts only zeros may follow, which canonical form drops.
            _ => return (value == 0).then_some(()),
        }
        Some(())
    };
    for &b in s.as_bytes() {
        match b {
            b'0'..=b'9' => {
                value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
                digits += 1;
            }
            b'.' if digits > 0 => {
                store(index, value)?;
                index += 1;
                value = 0;
                digits = 0;
            }
            _ => return None,
        }
    }
    if digits == 0 {
        return None;
    }
    store(index, value)?;
    let (a, b, c, d) = numbers;
    Some(([a, b, c, d], u8::try_from(index + 1).unwrap_or(u8::MAX)))
}

fn truncate_at_first_letter(segs: &mut Vec<Segment>) {
    if let Some(i) = segs.iter().position(|s| matches!(s, Segment::Str(_))) {
        segs.truncate(i);
    }
}

/// Adds one to a decimal digit string of any length.
fn increment_decimal(digits: &str) -> String {
    let mut out = digits.as_bytes().to_vec();
    let mut carry = true;
    for b in out.iter_mut().rev() {
        if *b == b'9' {
            *b = b'0';
        } else {
            *b += 1;
            carry = false;
            break;
        }
    }
    let body: String = out.into_iter().map(char::from).collect();
    if carry { format!("1{body}") } else { body }
}

/// RubyGems' version grammar: a numeric first part, further dot-separated
/// alphanumeric parts, and an optional `-` tail whose dot-separated parts may
/// also contain `-`. Every byte is checked, so nothing that could act as a
/// path separator, a parent directory or whitespace gets through.
fn is_valid_version(s: &str) -> bool {
    let (main, tail) = match s.split_once('-') {
        Some((main, tail)) => (main, Some(tail)),
        None => (s, None),
    };
    let mut parts = main.split('.');
    let first_ok = parts
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !first_ok || !parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric())) {
        return false;
    }
    match tail {
        None => true,
        Some(tail) => tail
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')),
    }
}

/// Splits into maximal runs of digits or of letters; RubyGems rewrites `-` as
/// `.pre.`, so each dash contributes a `pre` segment.
fn segments_of(s: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'-' {
            out.push(Segment::Str("pre".into()));
            i += 1;
        } else if b.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let trimmed = s[start..i].trim_start_matches('0');
            out.push(match trimmed.parse::<u64>() {
                Ok(n) => Segment::Num(n),
                Err(_) if trimmed.is_empty() => Segment::Num(0),
                Err(_) => Segment::Big(trimmed.into()),
            });
        } else if b.is_ascii_alphabetic() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            out.push(Segment::Str(s[start..i].into()));
        } else {
            i += 1;
        }
    }
    out
}

fn canonicalize(mut segs: Vec<Segment>) -> Vec<Segment> {
    let split = segs
        .iter()
        .position(|s| matches!(s, Segment::Str(_)))
        .unwrap_or(segs.len());
    let mut letters = segs.split_off(split);
    while segs.last().is_some_and(Segment::is_zero) {
        segs.pop();
    }
    while letters.last().is_some_and(Segment::is_zero) {
        letters.pop();
    }
    segs.extend(letters);
    segs
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (&self.canonical, &other.canonical);
        if let (Canonical::Numeric(a), Canonical::Numeric(b)) = (a, b) {
            // Zero padding stands for the missing segments, so arrays compare like versions.
            return a.cmp(b);
        }
        for i in 0..a.len().max(b.len()) {
            match a.get(i).compare(b.get(i)) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        // One representation per canonical list makes this the same as `cmp == Equal`.
        self.canonical == other.canonical
    }
}

impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Canonical segments have no trailing zeros, so versions that compare
        // equal hash alike.
        self.canonical.hash(state);
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A requirement operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `<`
    Lt,
    /// `>=`
    Ge,
    /// `<=`
    Le,
    /// `~>`
    Pessimistic,
}

impl Op {
    /// The operator as written in a Gemfile or lockfile.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Lt => "<",
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::Pessimistic => "~>",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A conjunction of version constraints, such as `~> 1.6, >= 1.6.1`; none means `>= 0`. It is kept as the text
/// it was written in, checked once when made: a large lockfile has thousands of requirements and a launch
/// evaluates only its closure's, so they are re-read on use rather than stored parsed, an allocation each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Requirement<'t> {
    /// Checked text; empty means no constraints.
    text: &'t str,
}

impl<'t> Requirement<'t> {
    /// Parses a comma-separated list such as `~> 1.6, >= 1.6.1`; a bare version means `=`.
    pub fn parse(s: &'t str) -> Result<Requirement<'t>, VersionError> {
        if parts(s).all(|part| Version::is_valid(split_constraint(part).1)) {
            Ok(Requirement { text: s })
        } else {
            Err(VersionError::BadRequirement(s.to_owned()))
        }
    }

    /// The constraints, in the order they were written.
    pub fn constraints(&self) -> impl Iterator<Item = (Op, Version)> + 't {
        // The text was checked when this was made, so every part is a constraint.
        let text = (!self.text.is_empty()).then_some(self.text);
        text.into_iter().flat_map(parts).filter_map(constraint)
    }

    /// True when `v` satisfies every constraint, as `Gem::Requirement#satisfied_by?`
    /// decides it: a prerelease is not excluded by itself (`>= 0` matches
    /// `1.0.beta`); only the comparisons count.
    pub fn matches(&self, v: &Version) -> bool {
        self.text.is_empty()
            || parts(self.text).all(|part| {
                let (op, text) = split_constraint(part);
                // Plain numbers on both sides, nearly every check, compare without a `Version` for the bound.
                plain_numeric(text)
                    .and_then(|(numbers, written)| v.satisfies_numeric(op, &numbers, written))
                    .unwrap_or_else(|| constraint(part).is_some_and(|(op, r)| satisfies(v, op, &r)))
            })
    }

    /// [`Requirement::matches`] with a [`Version`] built for every bound: the reference its shortcut is
    /// tested against.
    #[cfg(test)]
    fn matches_by_versions(&self, v: &Version) -> bool {
        self.constraints().all(|(op, r)| satisfies(v, op, &r))
    }
}

impl fmt::Display for Requirement<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for (i, (op, v)) in self.constraints().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{op} {v}")?;
            any = true;
        }
        if !any {
            f.write_str(">= 0")?;
        }
        Ok(())
    }
}

/// One constraint such as `>= 1.6.1`; a bare version means `=`.
fn constraint(part: &str) -> Option<(Op, Version)> {
    let (op, version) = split_constraint(part);
    Some((op, Version::parse(version).ok()?))
}

/// A constraint's operator and its version's text.
fn split_constraint(part: &str) -> (Op, &str) {
    let part = trim_ruby_space(part);
    // Two-character operators first so that `>=` is not read as `>`.
    let (op, width) = match part.as_bytes() {
        [b'!', b'=', ..] => (Op::Ne, 2),
        [b'>', b'=', ..] => (Op::Ge, 2),
        [b'<', b'=', ..] => (Op::Le, 2),
        [b'~', b'>', ..] => (Op::Pessimistic, 2),
        [b'=', ..] => (Op::Eq, 1),
        [b'>', ..] => (Op::Gt, 1),
        [b'<', ..] => (Op::Lt, 1),
        _ => (Op::Eq, 0),
    };
    (op, trim_ruby_space(&part[width..]))
}

/// The comma-separated parts of a requirement.
fn parts(s: &str) -> impl Iterator<Item = &str> {
    split_byte(s, b',')
}

/// `s` split at every ASCII byte `b`, like `str::split`; for short text a byte loop is cheaper than a `char`
/// pattern.
pub(crate) fn split_byte(s: &str, b: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.bytes().position(|c| c == b) {
            Some(at) => {
                rest = Some(&text[at + 1..]);
                Some(&text[..at])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

/// Whether `v` satisfies the single constraint `op r`.
fn satisfies(v: &Version, op: Op, r: &Version) -> bool {
    compares(op, v.cmp(r))
        .unwrap_or_else(|| v >= r && v.below_bump_of(r).unwrap_or_else(|| v.release() < r.bump()))
}

/// Whether a version that orders as `ordering` against the bound passes `op`; `None` for `~>`, whose upper
/// bound depends on how the bound is written.
fn compares(op: Op, ordering: Ordering) -> Option<bool> {
    Some(match op {
        Op::Eq => ordering.is_eq(),
        Op::Ne => ordering.is_ne(),
        Op::Gt => ordering.is_gt(),
        Op::Lt => ordering.is_lt(),
        Op::Ge => ordering.is_ge(),
        Op::Le => ordering.is_le(),
        Op::Pessimistic => return None,
    })
}

/// Ruby's `\s`, which `Gem::Requirement::PATTERN` allows around operators.
fn is_ruby_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// `s` without Ruby whitespace at either end; all of it is ASCII, so the cuts fall on character boundaries.
fn trim_ruby_space(s: &str) -> &str {
    let start = s.bytes().position(|b| !is_ruby_space(b)).unwrap_or(s.len());
    let end = s
        .bytes()
        .rposition(|b| !is_ruby_space(b))
        .map_or(start, |at| at + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn req(s: &str) -> Requirement<'_> {
        Requirement::parse(s).unwrap()
    }

    #[test]
    fn parses_ordinary_versions_and_keeps_text() {
        for s in [
            "0",
            "7.2.2.1",
            "8.2.0.alpha",
            "1.0.0.beta1",
            "1.0-pre",
            "1.0-pre-x.1",
            "01.002",
        ] {
            assert_eq!(v(s).as_str(), s);
            assert_eq!(v(s).to_string(), s);
        }
    }

    #[test]
    fn rejects_non_versions() {
        for s in [
            "",
            " ",
            " 1.0",
            "1.0 ",
            "1..2",
            "1.",
            ".1",
            "a",
            "1a",
            "../../x",
            "1/2",
            "1\\2",
            "1.0\0",
            "1.0\n",
            "1.0+build",
            "1.0-",
            "1.0-a..b",
            "1.é",
            "-1",
            "1.0-pre/x",
        ] {
            assert!(Version::parse(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn orders_like_rubygems() {
        assert!(v("7.2.2.1") > v("7.2.2"));
        assert!(v("7.2.2.1") < v("7.2.10"));
        assert!(v("1.0.0.beta1") < v("1.0.0"));
        assert!(v("1.0.0.beta1") > v("0.9"));
        assert!(v("1.0.a10") > v("1.0.a9"));
        assert!(v("1.0.b") > v("1.0.a10"));
        assert!(v("1.0.A") < v("1.0.a"));
        assert!(v("1.0-1") < v("1.0"));
        assert!(v("99999999999999999999999") > v("99999999999999999999998"));
        assert!(v("100000000000000000000000") > v("99999999999999999999999"));
        let mut list = [v("1.0"), v("0.9"), v("1.0.b1"), v("1.0.a.2")];
        list.sort();
        let sorted: Vec<_> = list.iter().map(Version::as_str).collect();
        assert_eq!(sorted, ["0.9", "1.0.a.2", "1.0.b1", "1.0"]);
    }

    #[test]
    fn trailing_zeros_are_insignificant() {
        assert_eq!(v("1.0"), v("1.0.0"));
        assert_eq!(v("1"), v("1.0.0.0"));
        assert_eq!(v("1.0.a"), v("1.0.0.a"));
        assert_eq!(v("1.0.a.0"), v("1.0.a"));
        assert_eq!(v("1.01"), v("1.1"));
        assert_eq!(v("1.0-1"), v("1.0.pre.1"));
        assert_eq!(v("1.0").as_str(), "1.0");
        let set: HashSet<Version> = [v("1.0"), v("1.0.0"), v("1")].into_iter().collect();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn prerelease_means_any_letter() {
        assert!(v("8.2.0.alpha").is_prerelease());
        assert!(v("1.0-1").is_prerelease());
        assert!(!v("7.2.2.1").is_prerelease());
    }

    #[test]
    fn bump_and_release() {
        assert_eq!(v("1.6").bump().as_str(), "2");
        assert_eq!(v("1.6.1").bump().as_str(), "1.7");
        assert_eq!(v("1").bump().as_str(), "2");
        assert_eq!(v("1.a.2").bump().as_str(), "2");
        assert_eq!(v("1.0.0.a").bump().as_str(), "1.1");
        assert_eq!(v("1.9.99").bump().as_str(), "1.10");
        assert_eq!(v("9.9").bump().as_str(), "10");
        assert_eq!(v("1.2.0.a").release().as_str(), "1.2.0");
    }

    #[test]
    fn pessimistic_semantics() {
        let r = req("~> 1.6");
        assert!(r.matches(&v("1.6")));
        assert!(r.matches(&v("1.9")));
        assert!(r.matches(&v("1.99.1")));
        assert!(!r.matches(&v("1.5.9")));
        assert!(!r.matches(&v("2.0")));
        assert!(!r.matches(&v("2.0.a")));
        let r = req("~> 1.6.1");
        assert!(r.matches(&v("1.6.9")));
        assert!(!r.matches(&v("1.6.0")));
        assert!(!r.matches(&v("1.7")));
        assert!(!r.matches(&v("1.7.0.a")));
        assert!(req("~> 1.0.a").matches(&v("1.5")));
        assert!(!req("~> 1.0").matches(&v("1.0.a")));
    }

    #[test]
    fn other_operators_and_conjunctions() {
        let r = req(">= 1.15.7, != 1.16.7, != 1.16.0.rc1");
        assert!(r.matches(&v("1.15.7")));
        assert!(r.matches(&v("1.19.4")));
        assert!(!r.matches(&v("1.16.7")));
        assert!(!r.matches(&v("1.16.0.rc1")));
        assert!(!r.matches(&v("1.15.6")));
        assert!(req("= 8.2.0.alpha").matches(&v("8.2.0.alpha")));
        assert!(req("= 1.0").matches(&v("1.0.0")));
        assert!(req("1.0").matches(&v("1.0")));
        assert!(req("> 1.0").matches(&v("1.0.1")));
        assert!(!req("> 1.0").matches(&v("1.0.0")));
        assert!(req("< 8.0").matches(&v("7.9")));
        assert!(req("<= 8.0").matches(&v("8")));
        assert!(req(">= 0").matches(&v("1.0.beta")));
        assert!(Requirement::default().matches(&v("0.0.1.a")));
        assert!(req(">=1.0").matches(&v("1.0")));
    }

    #[test]
    fn the_plain_number_shortcut_agrees_with_building_versions() {
        let requirements = [
            "~> 1.6",
            "~> 1.6.1",
            "~> 1.0.a",
            "~> 1.0",
            "~> 1",
            "~> 1.2.3.4",
            "~> 1.2.3.4.5",
            "~>1.2",
            ">= 1.15.7, != 1.16.7, != 1.16.0.rc1",
            "= 8.2.0.alpha",
            "= 1.0",
            "1.0",
            "> 1.0",
            "< 8.0",
            "<= 8.0",
            ">= 0",
            " >=  1.0 , < 2 ",
            "~> 18446744073709551615.1",
            "~> 99999999999999999999999.1",
            "!= 1.0.0.0.0.1",
        ];
        let versions = [
            "0",
            "1",
            "1.0",
            "1.0.a",
            "1.5.9",
            "1.6",
            "1.6.0",
            "1.6.1",
            "1.6.9",
            "1.7",
            "1.7.0.a",
            "1.9",
            "1.99.1",
            "2",
            "2.0.a",
            "1.2.3.4",
            "1.2.3.5",
            "1.2.4",
            "1.2.3.4.6",
            "1.15.7",
            "1.16.0.rc1",
            "1.16.7",
            "8",
            "8.2.0.alpha",
            "1.0.0.0.0.1",
            "18446744073709551615.5",
            "18446744073709551616",
            "99999999999999999999999.9",
        ];
        for r in requirements {
            let requirement = req(r);
            assert_eq!(
                requirement.constraints().count(),
                r.split(',').count(),
                "{r}"
            );
            for version in versions {
                let version = v(version);
                assert_eq!(
                    requirement.matches(&version),
                    requirement.matches_by_versions(&version),
                    "{r} against {version}"
                );
            }
        }
        assert!(Requirement::default().matches(&v("0.0.1.a")));
        assert_eq!(Requirement::default().to_string(), ">= 0");
        assert!(Requirement::parse(">= 1.0,").is_err());
    }

    #[test]
    fn requirement_display_and_errors() {
        assert_eq!(req("~> 1.6,>= 1.6.1").to_string(), "~> 1.6, >= 1.6.1");
        assert_eq!(req("1.0").to_string(), "= 1.0");
        assert_eq!(Requirement::default().to_string(), ">= 0");
        assert_eq!(
            req("~> 1.6").constraints().collect::<Vec<_>>(),
            vec![(Op::Pessimistic, v("1.6"))]
        );
        for s in [
            "", ">=", "~> ", "=> 1.0", ">= 1.0,", "1.0 2.0", ">= ../x", "=== 1",
        ] {
            assert!(Requirement::parse(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn error_messages_escape_input() {
        let e = Version::parse("1\n\0").unwrap_err().to_string();
        assert!(e.contains("`1\\n\\0`"), "{e}");
        let long = "x".repeat(500);
        assert!(Version::parse(&long).unwrap_err().to_string().len() < 300);
    }
}
