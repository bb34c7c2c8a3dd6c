//! Step 1: find the app's lockfile the way Bundler would.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where the lockfile came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `--lockfile PATH` (or the config key).
    Explicit,
    /// Derived from `BUNDLE_GEMFILE`.
    BundleGemfile,
    /// Found by walking up from the working directory.
    Search,
}

/// A located lockfile.
#[derive(Debug, Clone)]
pub struct Located {
    /// Absolute path of the lockfile.
    pub path: PathBuf,
    /// How it was found.
    pub origin: Origin,
}

impl Located {
    /// The app's root: the directory holding the lockfile.
    pub fn app_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }
}

/// The lockfile name Bundler pairs with a Gemfile: `gems.rb` → `gems.locked`, anything else → `<name>.lock`.
pub fn lockfile_for_gemfile(gemfile: &Path) -> PathBuf {
    if gemfile.file_name() == Some(OsStr::new("gems.rb")) {
        gemfile.with_file_name("gems.locked")
    } else {
        let mut name = gemfile.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }
}

/// The Gemfile Bundler pairs with a lockfile: `gems.locked` → `gems.rb`, `<name>.lock` → `<name>`.
fn gemfile_for_lockfile(lockfile: &Path) -> PathBuf {
    match lockfile.file_name().and_then(OsStr::to_str) {
        Some("gems.locked") => lockfile.with_file_name("gems.rb"),
        Some(name) if name.ends_with(".lock") => lockfile.with_file_name(&name[..name.len() - 5]),
        _ => lockfile.to_path_buf(),
    }
}

/// Finds the lockfile: explicit path, else `BUNDLE_GEMFILE`, else the nearest `Gemfile.lock` or `gems.locked`
/// in `cwd` or a parent.
pub fn find(
    explicit: Option<&Path>,
    bundle_gemfile: Option<&OsStr>,
    cwd: &Path,
) -> Result<Located> {
    if let Some(path) = explicit {
        let path = cwd.join(path);
        return existing(path, Origin::Explicit, "--lockfile");
    }
    if let Some(gemfile) = bundle_gemfile.filter(|g| !g.is_empty()) {
        let gemfile = cwd.join(gemfile);
        let path = lockfile_for_gemfile(&gemfile);
        if !path.is_file() && names_a_lockfile(&gemfile) {
            return Err(Error::GemfileIsLockfile {
                gemfile: gemfile_for_lockfile(&gemfile),
                path: gemfile,
            });
        }
        return existing(path, Origin::BundleGemfile, "BUNDLE_GEMFILE");
    }
    for dir in cwd.ancestors() {
        // Bundler prefers gems.rb over Gemfile when both exist; the lock follows the Gemfile it picks.
        for (gemfile, lock) in [("gems.rb", "gems.locked"), ("Gemfile", "Gemfile.lock")] {
            let lock = dir.join(lock);
            if dir.join(gemfile).is_file() && lock.is_file() {
                return Ok(Located {
                    path: lock,
                    origin: Origin::Search,
                });
            }
        }
        for lock in ["Gemfile.lock", "gems.locked"] {
            let lock = dir.join(lock);
            if lock.is_file() {
                return Ok(Located {
                    path: lock,
                    origin: Origin::Search,
                });
            }
        }
    }
    Err(Error::NoLockfile {
        searched: cwd.to_path_buf(),
    })
}

/// Whether `path` is named as lockfiles are (`Gemfile.lock`, `gems.locked`): what `BUNDLE_GEMFILE`, which names
/// the Gemfile, is set to by mistake.
fn names_a_lockfile(path: &Path) -> bool {
    path.file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|n| n.ends_with(".lock") || n.ends_with(".locked"))
}

fn existing(path: PathBuf, origin: Origin, via: &str) -> Result<Located> {
    if path.is_file() {
        Ok(Located { path, origin })
    } else {
        Err(Error::Io {
            action: match via {
                // bin/kamal passes the app's lockfile itself: the user gave no --lockfile.
                "--lockfile"
                    if crate::invocation::current() == crate::invocation::Invocation::Shim =>
                {
                    "reading the app's lockfile"
                }
                "--lockfile" => "reading the lockfile given by --lockfile",
                _ => "reading the lockfile named by BUNDLE_GEMFILE",
            },
            path,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file (run `bundle lock` to create it)",
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemfile_names_follow_bundler() {
        assert_eq!(
            lockfile_for_gemfile(Path::new("/a/Gemfile")),
            Path::new("/a/Gemfile.lock")
        );
        assert_eq!(
            lockfile_for_gemfile(Path::new("/a/gems.rb")),
            Path::new("/a/gems.locked")
        );
        assert_eq!(
            lockfile_for_gemfile(Path::new("/a/Gemfile.deploy")),
            Path::new("/a/Gemfile.deploy.lock")
        );
    }

    #[test]
    fn walks_up_and_prefers_explicit() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        let sub = app.join("config/deploy");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(app.join("Gemfile"), "").unwrap();
        std::fs::write(app.join("Gemfile.lock"), "").unwrap();
        let found = find(None, None, &sub).unwrap();
        assert_eq!(found.path, app.join("Gemfile.lock"));
        assert_eq!(found.origin, Origin::Search);

        std::fs::write(app.join("other.lock"), "").unwrap();
        let found = find(Some(Path::new("../../other.lock")), None, &sub).unwrap();
        assert_eq!(found.origin, Origin::Explicit);

        let err = find(None, None, dir.path()).unwrap_err();
        assert!(matches!(err, Error::NoLockfile { .. }));

        let err = find(None, Some(OsStr::new("nope/Gemfile")), &app).unwrap_err();
        assert!(err.to_string().contains("nope/Gemfile.lock"), "{err}");

        // BUNDLE_GEMFILE names the Gemfile; naming its lockfile is said as such.
        for lock in ["Gemfile.lock", "gems.locked"] {
            std::fs::write(app.join(lock), "").unwrap();
            let err = find(None, Some(OsStr::new(lock)), &app).unwrap_err();
            assert!(
                matches!(&err, Error::GemfileIsLockfile { path, gemfile }
                    if *path == app.join(lock) && *gemfile == app.join(if lock == "gems.locked" { "gems.rb" } else { "Gemfile" })),
                "{err}"
            );
        }
    }
}
