//! PATH sources: a gem vendored in the app (`gem "kamal", path: "vendor/kamal"`), used as the directory is now.
//! A cheap fingerprint of the directory (names, sizes, times; no contents) decides whether it changed.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::build::{self, Context};
use crate::error::{Error, Result};
use crate::lockfile::Spec;

/// A PATH source's directory and the state it is in.
#[derive(Debug, Clone)]
pub struct PathSource {
    /// The path as the lockfile writes it.
    written: String,
    /// The directory, resolved against the lockfile's directory and canonical, so that every working
    /// directory and every spelling of `--lockfile` gives the same key.
    dir: PathBuf,
    glob: Option<String>,
    fingerprint: String,
}

impl PathSource {
    /// Resolves `written` against the app's directory and fingerprints it.
    pub fn locate(
        app_dir: &Path,
        name: &str,
        written: &str,
        glob: Option<&str>,
    ) -> Result<PathSource> {
        let joined = app_dir.join(written);
        let dir = fs::canonicalize(&joined)
            .ok()
            .filter(|d| d.is_dir())
            .ok_or_else(|| {
                Error::Source(format!(
                    "{name} comes from path `{written}`, but {} is not a directory. Restore it (e.g. check out the \
                     vendored gem), or change the Gemfile and run `bundle lock`",
                    joined.display()
                ))
            })?;
        let fingerprint = fingerprint(&dir)?;
        Ok(PathSource {
            written: written.to_string(),
            dir,
            glob: glob.map(str::to_string),
            fingerprint,
        })
    }

    /// The directory and its fingerprint.
    pub fn identity(&self) -> String {
        format!(
            "path\0{}\0{}\0{}",
            self.dir.display(),
            self.fingerprint,
            self.glob.as_deref().unwrap_or("")
        )
    }

    /// For messages.
    pub fn describe(&self) -> String {
        format!("path {} ({})", self.written, self.dir.display())
    }

    /// Builds the gem from the directory into this run's temporary area.
    pub fn build(&self, ctx: &Context<'_>, spec: &Spec) -> Result<PathBuf> {
        let full_name = spec.full_name();
        let what = format!("{} from {}", spec.name, self.describe());
        let gemspec = build::find_gemspec(&self.dir, self.glob.as_deref(), spec.name)
            .map_err(|e| Error::Source(format!("cannot build {what}: {e}")))?;
        let output = build::temp_gem(ctx.cache, "path-gem")?;
        ctx.ui
            .verbose(&format!("building {what} ({})", gemspec.display()));
        let built = build::gem_build(ctx.cache, ctx.ruby, &gemspec, &output, &what)?;
        if built != full_name {
            return Err(Error::Source(format!(
                "{} builds {built}, but the lockfile locks {full_name}; run `bundle lock` (or `bundle install`) \
                 so that the lockfile matches the vendored gem",
                gemspec.display()
            )));
        }
        Ok(output)
    }
}

/// A digest of every entry under `dir` but `.git`: relative path, type, size, inode, modification and change
/// times, mode (and a link's target). An edit changes a size or a time (the change time even when a tool
/// restores the modification time; the inode when an editor saves by renaming), and reading metadata costs a
/// few microseconds per file, cheap enough for every run.
pub fn fingerprint(dir: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        let mut entries: Vec<(std::ffi::OsString, fs::Metadata)> = fs::read_dir(&abs)
            .map_err(Error::io(
                "reading (to see whether the vendored gem changed)",
                &abs,
            ))?
            .map(|e| {
                let e = e.map_err(Error::io("reading", &abs))?;
                let meta = e.metadata().map_err(Error::io("reading", e.path()))?;
                Ok((e.file_name(), meta))
            })
            .collect::<Result<_>>()?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        // Directories are pushed in reverse so that they are visited in name order.
        let mut subdirs = Vec::new();
        for (name, meta) in entries {
            if name == ".git" {
                continue;
            }
            let path = rel.join(&name);
            let kind = if meta.is_dir() {
                subdirs.push(path.clone());
                'd'
            } else if meta.file_type().is_symlink() {
                'l'
            } else {
                'f'
            };
            use std::os::unix::ffi::OsStrExt;
            h.update(path.as_os_str().as_bytes());
            h.update([0u8]);
            let stamp = format!(
                "{kind} {} {} {}.{} {}.{} {:o}",
                meta.len(),
                meta.ino(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
                meta.mode()
            );
            h.update(stamp.as_bytes());
            if kind == 'l'
                && let Ok(target) = fs::read_link(dir.join(&path))
            {
                h.update(target.as_os_str().as_bytes());
            }
            h.update([0u8]);
        }
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(hex::encode(&h.finalize()[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_sees_edits_and_ignores_git() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("lib")).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::write(root.join("lib/a.rb"), "a").unwrap();
        let first = fingerprint(root).unwrap();
        assert_eq!(first, fingerprint(root).unwrap());
        fs::write(root.join(".git/HEAD"), "x").unwrap();
        assert_eq!(first, fingerprint(root).unwrap());
        fs::write(root.join("lib/a.rb"), "edited").unwrap();
        assert_ne!(first, fingerprint(root).unwrap());
        let second = fingerprint(root).unwrap();
        fs::write(root.join("lib/new.rb"), "").unwrap();
        assert_ne!(second, fingerprint(root).unwrap());
    }

    #[test]
    fn a_missing_directory_names_the_resolved_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = PathSource::locate(dir.path(), "kamal", "vendor/kamal", None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&dir.path().join("vendor/kamal").display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("kamal"), "{msg}");
    }
}
