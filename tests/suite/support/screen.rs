//! Screens as a user sees them, reviewed as text: the launcher run at several terminal widths with colour on and
//! off (`COLUMNS`, `CLICOLOR_FORCE`/`NO_COLOR`, which the launcher and clap read as they read a terminal), its
//! output made stable (temporary paths, ports, times) and compared with snapshots kept in
//! `tests/suite/snapshots/` (insta: `cargo insta review`, or `INSTA_UPDATE=always` then `git diff`).
//!
//! A screen that must come from a real terminal (live progress, Ctrl-C) is driven through a pseudo-terminal
//! instead; this module is for everything a command prints.

use super::{Launcher, Output};

/// How a screen is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    /// Terminal columns.
    pub width: u16,
    /// Whether colour is on.
    pub color: bool,
}

/// The looks every screen is reviewed in: a narrow, a usual and a wide terminal, each with and without colour.
pub const LOOKS: [Look; 6] = [
    Look {
        width: 60,
        color: false,
    },
    Look {
        width: 80,
        color: false,
    },
    Look {
        width: 160,
        color: false,
    },
    Look {
        width: 60,
        color: true,
    },
    Look {
        width: 80,
        color: true,
    },
    Look {
        width: 160,
        color: true,
    },
];

impl Look {
    /// The snapshot's suffix, e.g. `80` or `80-color`.
    pub fn suffix(self) -> String {
        if self.color {
            format!("{}-color", self.width)
        } else {
            self.width.to_string()
        }
    }

    /// `launcher` set up to look like this.
    pub fn apply(self, launcher: Launcher) -> Launcher {
        let launcher = launcher.env("COLUMNS", self.width.to_string());
        if self.color {
            launcher.env("CLICOLOR_FORCE", "1").env_remove("NO_COLOR")
        } else {
            launcher.env("NO_COLOR", "1").env_remove("CLICOLOR_FORCE")
        }
    }
}

/// Text made stable for a snapshot: each `(from, to)` replaced (longest first, so a path inside another is not cut),
/// loopback ports and durations given placeholders, colour escapes shown as `[1;31m` … `[0m`.
pub fn stable(text: &str, replacements: &[(&str, &str)]) -> String {
    let mut pairs: Vec<&(&str, &str)> = replacements
        .iter()
        .filter(|(from, _)| !from.is_empty())
        .collect();
    pairs.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    let mut out = text.to_string();
    for (from, to) in pairs {
        out = out.replace(from, to);
    }
    let out = out.replace('\x1b', "␛");
    let out = regex_lite_replace(&out, "127.0.0.1:", |rest| {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        ("127.0.0.1:[PORT]".to_string(), digits)
    });
    duration_placeholders(&out)
}

/// Replaces each `needle` followed by what `f` claims (it returns the replacement and how many characters after
/// the needle it consumed).
fn regex_lite_replace(text: &str, needle: &str, f: impl Fn(&str) -> (String, usize)) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(needle) {
        out.push_str(&rest[..at]);
        let after = &rest[at + needle.len()..];
        let (replacement, consumed) = f(after);
        out.push_str(&replacement);
        let skip = after
            .char_indices()
            .nth(consumed)
            .map_or(after.len(), |(i, _)| i);
        rest = &after[skip..];
    }
    out.push_str(rest);
    out
}

/// `0.4s`, `12.3 s`, `1.2ms` and the like become `[TIME]`: they differ from run to run.
fn duration_placeholders(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts_number =
            chars[i].is_ascii_digit() && (i == 0 || !chars[i - 1].is_alphanumeric());
        if starts_number {
            let mut j = i;
            while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                j += 1;
            }
            let mut k = j;
            if k < chars.len() && chars[k] == ' ' {
                k += 1;
            }
            let unit: String = chars[k..chars.len().min(k + 2)].iter().collect();
            let is_time = chars[i..j].contains(&'.')
                && (unit.starts_with("ms") || unit.starts_with('s'))
                && chars
                    .get(k + if unit.starts_with("ms") { 2 } else { 1 })
                    .is_none_or(|c| !c.is_alphanumeric());
            if is_time {
                out.push_str("[TIME]");
                i = k + if unit.starts_with("ms") { 2 } else { 1 };
                continue;
            }
            out.extend(&chars[i..j]);
            i = j;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// One screen's text for a snapshot: the exit status, then stdout (when there is any), then stderr.
pub fn transcript(out: &Output) -> String {
    let mut text = format!(
        "exit: {}\n",
        out.code().map_or("signal".to_string(), |c| c.to_string())
    );
    if !out.stdout.is_empty() {
        text.push_str("--- stdout\n");
        text.push_str(&out.stdout);
    }
    if !out.stderr.is_empty() {
        text.push_str("--- stderr\n");
        text.push_str(&out.stderr);
    }
    text
}

/// Snapshots `screen(look)` for every look as `<name>@<width>[-color]`.
#[track_caller]
pub fn assert_screens(name: &str, screen: impl Fn(Look) -> String) {
    for look in LOOKS {
        assert_screen(name, look, &screen(look));
    }
}

/// Snapshots one screen seen in `look` as `<name>@<width>[-color]` (for screens that come several from one run).
#[track_caller]
pub fn assert_screen(name: &str, look: Look, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/suite/snapshots"
    ));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        insta::assert_snapshot!(format!("{name}@{}", look.suffix()), text);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_ports_become_placeholders() {
        assert_eq!(
            stable(
                "ready in 0.4s, http://127.0.0.1:41234/ took 12.5 s; 23 gems, 1.5ms",
                &[]
            ),
            "ready in [TIME], http://127.0.0.1:[PORT]/ took [TIME]; 23 gems, [TIME]"
        );
        assert_eq!(stable("kamal 2.7.0: 6 gems", &[]), "kamal 2.7.0: 6 gems");
        assert_eq!(
            stable(
                "/tmp/a/b and /tmp/a",
                &[("/tmp/a", "[APP]"), ("/tmp/a/b", "[B]")]
            ),
            "[B] and [APP]"
        );
    }
}
