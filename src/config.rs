//! The launcher's own configuration files: the app's `.kamal-launcher.toml` (next to the lockfile) and the
//! user's `config.toml` (e.g. `~/.config/kamal-launcher/config.toml`). Flags and `KAMAL_LAUNCHER_*` variables
//! override them; the app's file overrides the user's.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Every option resolved: flags, then `KAMAL_LAUNCHER_*` variables, then the app's and the user's config files.
#[derive(Debug)]
pub struct Options {
    /// The root gem (`kamal`).
    pub gem: String,
    /// The executable to run, when not the gem's name.
    pub exe: Option<String>,
    /// The interpreter, when not `ruby` on PATH.
    pub ruby: Option<OsString>,
    /// The cache, when not the default.
    pub cache_dir: Option<PathBuf>,
    /// Never use the network.
    pub offline: bool,
    /// Install gems whose checksum is known nowhere.
    pub allow_unverified: bool,
    /// `None`: one per CPU, counted only when an install needs it (it costs cgroup reads).
    pub jobs: Option<usize>,
}

/// The app's configuration file name, looked for in the lockfile's directory.
pub const APP_FILE: &str = ".kamal-launcher.toml";

/// Settings a configuration file may hold; every key is optional.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where gems and environments are cached (relative paths are relative to the file).
    pub cache_dir: Option<PathBuf>,
    /// The Ruby interpreter.
    pub ruby: Option<String>,
    /// Never use the network.
    pub offline: Option<bool>,
    /// The root gem.
    pub gem: Option<String>,
    /// The executable to run.
    pub exe: Option<String>,
    /// Install gems whose checksum is known nowhere.
    pub allow_unverified: Option<bool>,
    /// Parallel downloads and builds (1 or more).
    #[serde(default, deserialize_with = "jobs")]
    pub jobs: Option<std::num::NonZeroUsize>,
}

/// The keys a configuration file may hold, as the message about an unknown one lists them.
pub const KEYS: [&str; 7] = [
    "cache_dir",
    "ruby",
    "offline",
    "gem",
    "exe",
    "allow_unverified",
    "jobs",
];

/// `jobs = N`: a whole number, 1 or more (serde's own words would be "expected a nonzero usize", or "i64").
fn jobs<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<std::num::NonZeroUsize>, D::Error> {
    struct Jobs;
    impl serde::de::Visitor<'_> for Jobs {
        type Value = std::num::NonZeroUsize;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number, 1 or more")
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> std::result::Result<Self::Value, E> {
            usize::try_from(n)
                .ok()
                .and_then(std::num::NonZeroUsize::new)
                .ok_or_else(|| {
                    E::custom(format!(
                        "`jobs` is {n}, but takes a whole number, 1 or more"
                    ))
                })
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> std::result::Result<Self::Value, E> {
            self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
        }
    }
    d.deserialize_any(Jobs).map(Some)
}

/// serde's "invalid type: string \"yes\", expected a boolean", for `key`, in the launcher's words:
/// "`offline` is the string "yes", but takes true or false".
fn wrong_type(key: Option<&str>, message: &str) -> Option<String> {
    let (found, expected) = message
        .strip_prefix("invalid type: ")?
        .split_once(", expected ")?;
    let expected = match expected.trim_end() {
        "a boolean" => "true or false",
        "a string" => "text in quotes",
        "path string" => "a path in quotes",
        other => other,
    };
    Some(match key {
        Some(key) => format!(
            "`{key}` is {}, but takes {expected}",
            found.replace('`', "")
        ),
        None => format!("{} where {expected} belongs", found.replace('`', "")),
    })
}

/// The message for a key no version of the launcher reads: the key, its likely spelling, the valid keys once.
fn unknown_key(key: &str) -> String {
    let close = KEYS.iter().find(|k| {
        let d = edit_distance(k, key);
        // Close for its length: `cahce_dir` is `cache_dir`, `x` is not `exe`.
        (d <= 2 && d <= key.chars().count() / 3)
            || k.replace('_', "") == key.replace(['-', '_'], "")
    });
    format!(
        "unknown key `{key}`{}; the valid keys are {}",
        close.map_or(String::new(), |k| format!(" (did you mean `{k}`?)")),
        KEYS.join(", ")
    )
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

impl FileConfig {
    /// Reads one file; a missing file is an empty configuration.
    pub fn read(path: &Path) -> Result<FileConfig> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
            Err(e) => {
                return Err(Error::Io {
                    action: "reading the configuration file",
                    path: path.to_path_buf(),
                    source: e,
                });
            }
        };
        let mut config: FileConfig = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            // The key on that line, for messages that do not name it.
            let key = line
                .and_then(|l| text.lines().nth(l - 1))
                .and_then(|l| l.split_once('='))
                .map(|(key, _)| key.trim())
                .filter(|key| !key.is_empty() && !key.starts_with('['));
            // serde says "unknown field `x`, expected one of `a`, `b`, …": said once, in our words.
            let message = match e
                .message()
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
            {
                Some((key, _)) => unknown_key(key),
                None => wrong_type(key, e.message())
                    .unwrap_or_else(|| e.message().trim_end().to_string()),
            };
            Error::Config(format!(
                "{}{}: {message}",
                path.display(),
                line.map_or(String::new(), |l| format!(":{l}")),
            ))
        })?;
        if let (Some(dir), Some(base)) = (&config.cache_dir, path.parent()) {
            config.cache_dir = Some(base.join(dir));
        }
        Ok(config)
    }

    /// Fills every unset key from `lower`.
    pub fn or(self, lower: FileConfig) -> FileConfig {
        FileConfig {
            cache_dir: self.cache_dir.or(lower.cache_dir),
            ruby: self.ruby.or(lower.ruby),
            offline: self.offline.or(lower.offline),
            gem: self.gem.or(lower.gem),
            exe: self.exe.or(lower.exe),
            allow_unverified: self.allow_unverified.or(lower.allow_unverified),
            jobs: self.jobs.or(lower.jobs),
        }
    }
}

/// The user's configuration file.
pub fn user_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KAMAL_LAUNCHER_CONFIG") {
        return Some(PathBuf::from(path));
    }
    Some(
        crate::cache::xdg_dir("XDG_CONFIG_HOME", ".config")?
            .join("kamal-launcher")
            .join("config.toml"),
    )
}

/// The app's and the user's files merged, the app's winning.
pub fn load(app_dir: &Path) -> Result<FileConfig> {
    let app = FileConfig::read(&app_dir.join(APP_FILE))?;
    let user = match user_file() {
        Some(path) => FileConfig::read(&path)?,
        None => FileConfig::default(),
    };
    Ok(app.or(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_and_resolves_relative_cache_dir() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(APP_FILE);
        std::fs::write(
            &file,
            "offline = true\ncache_dir = \"tmp/cache\"\ngem = \"kamal\"\n",
        )
        .unwrap();
        let c = FileConfig::read(&file).unwrap();
        assert_eq!(c.offline, Some(true));
        assert_eq!(c.cache_dir, Some(dir.path().join("tmp/cache")));
        assert_eq!(
            FileConfig::read(&dir.path().join("none.toml")).unwrap(),
            FileConfig::default()
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_file_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(APP_FILE);
        std::fs::write(&file, "gem = \"kamal\"\n\ncahce_dir = \"x\"\n").unwrap();
        let err = FileConfig::read(&file).unwrap_err().to_string();
        assert!(err.contains(&format!("{}:3", file.display())), "{err}");
        assert!(
            err.contains("unknown key `cahce_dir` (did you mean `cache_dir`?)"),
            "{err}"
        );
        // The valid keys, once.
        assert_eq!(err.matches("allow_unverified").count(), 1, "{err}");
        std::fs::write(&file, "jobs = 0\n").unwrap();
        let err = FileConfig::read(&file).unwrap_err().to_string();
        assert!(
            err.ends_with(":1: `jobs` is 0, but takes a whole number, 1 or more"),
            "{err}"
        );
        std::fs::write(&file, "jobs = 3\n").unwrap();
        assert_eq!(
            FileConfig::read(&file).unwrap().jobs.map(|j| j.get()),
            Some(3)
        );
        std::fs::write(&file, "offline = \"yes\"\n").unwrap();
        let err = FileConfig::read(&file).unwrap_err().to_string();
        assert!(
            err.ends_with(":1: `offline` is string \"yes\", but takes true or false"),
            "{err}"
        );
        std::fs::write(&file, "\njobs = \"many\"\n").unwrap();
        let err = FileConfig::read(&file).unwrap_err().to_string();
        assert!(
            err.ends_with(":2: `jobs` is string \"many\", but takes a whole number, 1 or more"),
            "{err}"
        );
        std::fs::write(&file, "[x]\n").unwrap();
        let err = FileConfig::read(&file).unwrap_err().to_string();
        assert!(err.contains("unknown key `x`; the valid keys"), "{err}");
    }

    #[test]
    fn app_wins_over_user() {
        let app = FileConfig {
            gem: Some("a".into()),
            ..FileConfig::default()
        };
        let user = FileConfig {
            gem: Some("u".into()),
            exe: Some("e".into()),
            ..FileConfig::default()
        };
        let merged = app.or(user);
        assert_eq!(merged.gem.as_deref(), Some("a"));
        assert_eq!(merged.exe.as_deref(), Some("e"));
    }
}
