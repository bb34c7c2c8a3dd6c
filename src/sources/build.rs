//! Building a GIT or PATH gem: what building needs ([`Context`]), finding the gemspec in a checkout or directory,
//! and `gem build` into a temporary `.gem`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cache::Cache;
use crate::children::{self, Terminal};
use crate::error::{Error, Result};
use crate::ruby::Ruby;
use crate::settings::BundlerSettings;
use crate::ui::Ui;

const BUILD: &str = include_str!("../ruby/build.rb");

/// Everything building needs besides the gems.
pub struct Context<'a> {
    /// The cache.
    pub cache: &'a Cache,
    /// The Ruby whose `gem build` builds and whose ABI the units are for.
    pub ruby: &'a Ruby,
    /// That Ruby's ABI (the store's subdirectory).
    pub abi: &'a str,
    /// Credentials for git remotes over HTTPS.
    pub settings: &'a BundlerSettings,
    /// The launcher's PATH, where `git` is looked for.
    pub path_var: Option<&'a std::ffi::OsStr>,
    /// Never use the network.
    pub offline: bool,
    /// Output.
    pub ui: &'a Ui,
}

/// A fresh `.gem` path in this run's temporary area (same filesystem as the cache: renamed into place).
pub fn temp_gem(cache: &Cache, what: &str) -> Result<PathBuf> {
    let mut path = cache.temp_path(what)?.into_os_string();
    path.push(".gem");
    Ok(PathBuf::from(path))
}

/// Bundler's default for GIT and PATH sources: gemspecs at the top, one and two directories down.
pub const DEFAULT_GLOB: &str = "{,*,*/*}.gemspec";

/// The gemspec for `name` under `root`: `<name>.gemspec` among the files `glob` matches (the shallowest), else
/// the only gemspec there is (its gem name is checked after the build). `Err` explains what was found.
pub fn find_gemspec(
    root: &Path,
    glob: Option<&str>,
    name: &str,
) -> std::result::Result<PathBuf, String> {
    let glob = glob.unwrap_or(DEFAULT_GLOB);
    let mut found: Vec<PathBuf> = expand_braces(glob)
        .iter()
        .flat_map(|pattern| matches(root, pattern))
        .filter(|p| p.extension().is_some_and(|e| e == "gemspec"))
        .collect();
    found.sort_by_key(|p| (p.components().count(), p.clone()));
    found.dedup();
    let wanted = format!("{name}.gemspec");
    if let Some(hit) = found
        .iter()
        .find(|p| p.file_name().is_some_and(|f| f == wanted.as_str()))
    {
        return Ok(hit.clone());
    }
    match found.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(format!("no gemspec matches `{glob}` in {}", root.display())),
        many => Err(format!(
            "no {wanted} among the gemspecs matching `{glob}` in {} ({})",
            root.display(),
            many.iter()
                .map(|p| p.strip_prefix(root).unwrap_or(p).display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Runs `gem build` for `gemspec` with `ruby`, writing the gem to `output`; returns the built gem's full name.
/// `what` names the source in messages (e.g. "kamal from git https://…").
pub fn gem_build(
    cache: &Cache,
    ruby: &Ruby,
    gemspec: &Path,
    output: &Path,
    what: &str,
) -> Result<String> {
    let mut cmd = Command::new(&ruby.path);
    cmd.arg("-e")
        .arg(BUILD)
        .arg("--")
        .arg(gemspec)
        .arg(output)
        // The caller's `bundle exec` settings would load the app's Gemfile into the gemspec's Ruby.
        .env_remove("RUBYOPT")
        .env_remove("RUBYLIB")
        .env_remove("RUBYGEMS_GEMDEPS")
        .env_remove("BUNDLE_GEMFILE")
        .env_remove("BUNDLE_BIN_PATH")
        .env_remove("GEM_HOME")
        .env_remove("GEM_PATH")
        .stdin(Stdio::null());
    // Tracked: an interrupt stops it before the area it writes the gem into is removed.
    let out = children::output(&mut cmd, Terminal::Unused).map_err(|e| Error::Exec {
        ruby: ruby.path.clone(),
        source: e,
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let built = stdout
        .lines()
        .find_map(|l| l.strip_prefix("kamal-launcher-built "))
        .map(str::trim)
        .filter(|n| !n.is_empty());
    match (out.status.success(), built) {
        (true, Some(name)) => Ok(name.to_string()),
        _ => {
            let log = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
            let stem = gemspec
                .file_stem()
                .map_or_else(|| "gem".to_string(), |s| s.to_string_lossy().into_owned());
            let kept = cache.logs().join(format!("{stem}-build.log"));
            let saved = fs::create_dir_all(cache.logs())
                .and_then(|_| fs::write(&kept, &log))
                .is_ok();
            let tail: String = log
                .lines()
                .filter(|l| !l.trim().is_empty())
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .map(|l| format!("\n    {l}"))
                .collect();
            Err(Error::Source(format!(
                "`gem build {}` failed ({}) for {what}:{tail}\n  {}; fix the gemspec (or the lockfile's source) and \
                 run again",
                gemspec.display(),
                out.status,
                if saved {
                    format!("full log: {}", kept.display())
                } else {
                    "no log kept".to_string()
                }
            )))
        }
    }
}

/// `a{b,c{d,e}}f` → `abf`, `acdf`, `acef`, as Ruby's `Dir.glob` expands braces.
fn expand_braces(pattern: &str) -> Vec<String> {
    let Some(open) = pattern.find('{') else {
        return vec![pattern.to_string()];
    };
    let mut depth = 0;
    let mut close = None;
    let mut commas = Vec::new();
    for (i, c) in pattern[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            ',' if depth == 1 => commas.push(open + i),
            _ => {}
        }
    }
    // An unbalanced brace is literal, as in Ruby.
    let Some(close) = close else {
        return vec![pattern.to_string()];
    };
    let (prefix, suffix) = (&pattern[..open], &pattern[close + 1..]);
    let mut bounds = vec![open];
    bounds.extend(&commas);
    bounds.push(close);
    bounds
        .windows(2)
        .flat_map(|w| expand_braces(&format!("{prefix}{}{suffix}", &pattern[w[0] + 1..w[1]])))
        .collect()
}

/// Files under `root` matching a brace-free pattern of `/`-separated segments with `*`, `?` and `**`.
fn matches(root: &Path, pattern: &str) -> Vec<PathBuf> {
    let segments: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let mut out = Vec::new();
    walk(root, &segments, &mut out);
    out
}

fn walk(dir: &Path, segments: &[&str], out: &mut Vec<PathBuf>) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    if *first == "**" {
        walk(dir, rest, out);
        for (path, is_dir) in children(dir) {
            if is_dir {
                walk(&path, segments, out);
            }
        }
        return;
    }
    if !first.contains(['*', '?']) {
        let path = dir.join(first);
        if rest.is_empty() {
            if path.is_file() {
                out.push(path);
            }
        } else if path.is_dir() {
            walk(&path, rest, out);
        }
        return;
    }
    for (path, is_dir) in children(dir) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Like Dir.glob, wildcards do not match hidden names (so `.git` is never searched).
        if name.starts_with('.') && !first.starts_with('.') {
            continue;
        }
        if !wildcard(first.as_bytes(), name.as_bytes()) {
            continue;
        }
        if rest.is_empty() {
            if !is_dir {
                out.push(path);
            }
        } else if is_dir {
            walk(&path, rest, out);
        }
    }
}

/// Entries of `dir` with whether each is a real directory (symlinked directories are not entered: no loops).
fn children(dir: &Path) -> Vec<(PathBuf, bool)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, bool)> = entries
        .flatten()
        .map(|e| (e.path(), e.file_type().is_ok_and(|t| t.is_dir())))
        .collect();
    out.sort();
    out
}

/// `*` (any run) and `?` (one character) against a name.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| wildcard(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && wildcard(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && wildcard(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braces_expand_like_ruby() {
        assert_eq!(
            expand_braces(DEFAULT_GLOB),
            [".gemspec", "*.gemspec", "*/*.gemspec"]
        );
        assert_eq!(expand_braces("a{b,c{d,e}}f"), ["abf", "acdf", "acef"]);
        assert_eq!(expand_braces("a{b"), ["a{b"]);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard(b"*.gemspec", b"kamal.gemspec"));
        assert!(!wildcard(b"*.gemspec", b"kamal.gemspec.bak"));
        assert!(wildcard(b"k?mal*", b"kamal.gemspec"));
        assert!(wildcard(b"*", b""));
    }

    #[test]
    fn finds_the_named_gemspec_shallowest_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "kamal.gemspec",
            "sub/kamal.gemspec",
            "sub/other.gemspec",
            "a/b/c/deep.gemspec",
            ".hidden/kamal.gemspec",
        ] {
            let p = root.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "").unwrap();
        }
        assert_eq!(
            find_gemspec(root, None, "kamal").unwrap(),
            root.join("kamal.gemspec")
        );
        assert_eq!(
            find_gemspec(root, None, "other").unwrap(),
            root.join("sub/other.gemspec")
        );
        // Beyond the default depth, only a glob finds it.
        assert!(find_gemspec(root, None, "deep").is_err());
        assert_eq!(
            find_gemspec(root, Some("**/*.gemspec"), "deep").unwrap(),
            root.join("a/b/c/deep.gemspec")
        );
        assert_eq!(
            find_gemspec(root, Some("sub/*.gemspec"), "kamal").unwrap(),
            root.join("sub/kamal.gemspec")
        );
        let err = find_gemspec(root, Some("nowhere/*.gemspec"), "kamal").unwrap_err();
        assert!(err.contains("nowhere/*.gemspec"), "{err}");
    }
}
