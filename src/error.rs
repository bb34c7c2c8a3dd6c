//! The launcher's error type: every failure a user can meet, with the context they need to fix it.

use std::io;
use std::path::{Path, PathBuf};

use crate::invocation::{self, Invocation, Setting};

/// Exit status for launcher failures (lockfile, network, install).
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for command-line usage errors, as clap uses.
pub const EXIT_USAGE: u8 = 2;
/// Exit status when interrupted by Ctrl-C, as shells report SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Everything that can stop the launcher before kamal runs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No Gemfile.lock was found.
    #[error("could not find Gemfile.lock in {searched} or any parent directory")]
    NoLockfile { searched: PathBuf },

    /// The lockfile could not be parsed.
    #[error("{}:{}: {}", path.display(), source.line, source.kind)]
    Lockfile {
        path: PathBuf,
        source: crate::lockfile::ParseError,
    },

    /// The lockfile's graph is not usable for the requested gem.
    #[error("{}{}: {source}", path.display(), source.line().map_or(String::new(), |l| format!(":{l}")))]
    Closure {
        path: PathBuf,
        source: Box<crate::closure::ClosureError>,
    },

    /// The file given as the lockfile has none of a lockfile's sections.
    #[error(
        "{} is not a lockfile: it has none of the sections Bundler writes (GEM, PLATFORMS, DEPENDENCIES, …)",
        path.display()
    )]
    NotALockfile { path: PathBuf },

    /// `BUNDLE_GEMFILE` names a lockfile; it names the Gemfile.
    #[error(
        "BUNDLE_GEMFILE is {}, a lockfile; it names the Gemfile, and the lockfile is read beside it",
        path.display()
    )]
    GemfileIsLockfile {
        /// The lockfile it names.
        path: PathBuf,
        /// The Gemfile beside it, which it should name.
        gemfile: PathBuf,
    },

    /// An I/O operation failed; `action` names what was being done and to which path.
    #[error("{action} {}: {}", path.display(), os_text(source))]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    /// No cache directory was configured and there is no home directory to put the default one in.
    #[error(
        "no cache directory: HOME is not set (nor XDG_CACHE_HOME), so the default ~/.cache/kamal-launcher has no place to go"
    )]
    NoCacheDir,

    /// No usable Ruby interpreter.
    #[error("{0}")]
    Ruby(String),

    /// A download or index request failed.
    #[error("{message}")]
    Network {
        /// What failed, for the user.
        message: String,
        /// Whether the message already says what to do, so that no generic advice is added.
        advised: bool,
    },

    /// A gem server answered with an error, or not at all: a source that is down, a typo'd URL, an index that
    /// is missing or failing (`Scope::Source`, said once, about the source), or one gem's file missing from it.
    #[error("{message}")]
    Server {
        /// Whether the whole source (or its mirror) failed, or one gem's request.
        scope: Scope,
        /// What answered what, naming the source's URL (never its credentials).
        message: String,
        /// The likely cause and what to do.
        hint: String,
    },

    /// A download broke off while its body was arriving: worth another attempt from the start.
    #[error("{0}")]
    BrokeOff(String),

    /// A downloaded gem did not match its expected digest.
    #[error(
        "checksum mismatch for {gem} downloaded from {url}\n  expected sha256: {expected}\n  actual sha256:   {actual}"
    )]
    ChecksumMismatch {
        gem: String,
        url: String,
        expected: String,
        actual: String,
    },

    /// A downloaded gem is malformed or hostile; it was not installed or cached.
    #[error("refusing to install {gem} (from {url}): {reason}")]
    Refused {
        gem: String,
        url: String,
        reason: String,
    },

    /// A gem has no checksum in the lockfile nor in its source's compact index.
    #[error("no checksum is known for {gem} (not in the lockfile's CHECKSUMS, not in {index})")]
    Unverifiable { gem: String, index: String },

    /// Installing (unpacking or building) a gem failed.
    #[error("{0}")]
    Install(String),

    /// The requested feature is not available yet.
    #[error("{0}")]
    Unsupported(String),

    /// Fetching or building a gem from a GIT or PATH source failed.
    #[error("{0}")]
    Source(String),

    /// `doctor` found problems; each was printed with its hint.
    #[error(
        "{} failed; see the {} above",
        crate::ui::count(*.0, "check", "checks"),
        if *.0 == 1 { "hint" } else { "hints" }
    )]
    Doctor(usize),

    /// A configuration file is invalid.
    #[error("{0}")]
    Config(String),

    /// An option's value (a flag's, or its variable's) cannot be used; exits as a usage error.
    #[error("{message}")]
    Usage {
        /// What is wrong, naming the flag or the variable the value came from.
        message: String,
        /// What to do instead.
        hint: Option<String>,
    },

    /// Offline mode was requested but something is missing from the cache.
    #[error("{0}")]
    Offline(String),

    /// The launcher version the lockfile pins could not be obtained.
    #[error("{0}")]
    Handover(String),

    /// The cache, or a directory above or in it, could be changed by another user; nothing in it was used.
    #[error("{0}")]
    Untrusted(#[from] crate::trust::Distrust),

    /// Executing Ruby failed.
    #[error("could not run {}: {}", ruby.display(), os_text(source))]
    Exec { ruby: PathBuf, source: io::Error },
}

impl Error {
    /// A network failure whose message gives no advice of its own.
    pub fn network(message: String) -> Error {
        Error::Network {
            message,
            advised: false,
        }
    }

    /// Wraps an I/O error with what was being done and where.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| {
            if source.raw_os_error() == Some(libc::ENOSPC) {
                note_no_space(&path);
            }
            Error::Io {
                action,
                path,
                source,
            }
        }
    }

    /// A suggestion printed under the error, when one helps.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NotALockfile { .. } => Some(match invocation::current() {
                Invocation::Direct => "pass the app's Gemfile.lock (or gems.locked) to --lockfile, not the Gemfile; \
                                       BUNDLE_GEMFILE names the Gemfile itself"
                    .into(),
                Invocation::Shim => "run `bundle lock` in the app to write its Gemfile.lock again".into(),
                Invocation::Kamal => "BUNDLE_GEMFILE names the app's Gemfile (its lockfile is read beside it), not \
                                      the lockfile itself"
                    .into(),
            }),
            Error::NoLockfile { .. } => Some(if invocation::flags_are_ours() {
                "run this in a Rails app's directory, or pass --lockfile PATH (or set \
                 BUNDLE_GEMFILE=path/to/Gemfile)"
                    .into()
            } else {
                "run this in a Rails app's directory, or set BUNDLE_GEMFILE=path/to/Gemfile".into()
            }),
            Error::Usage { hint, .. } => hint.clone(),
            Error::GemfileIsLockfile { gemfile, .. } => Some(format!(
                "set BUNDLE_GEMFILE={}{}",
                gemfile.display(),
                if invocation::flags_are_ours() {
                    ", or pass the lockfile itself with --lockfile"
                } else {
                    ""
                }
            )),
            Error::ChecksumMismatch { .. } => Some(
                "the gem was not installed. If the lockfile is right, the server or a mirror served \
                 different bytes: check BUNDLE_MIRROR__* settings and proxies; if the gem was \
                 re-released, run `bundle lock --update <gem>`"
                    .into(),
            ),
            Error::Refused { .. } => Some(
                "nothing was unpacked or cached. The package itself is broken or unsafe: check the source or \
                 mirror it came from, and report it to the gem's maintainers"
                    .into(),
            ),
            Error::Unverifiable { .. } => Some(format!(
                "run `bundle lock --add-checksums` (Bundler >= 2.6) to record checksums in the \
                 lockfile, or use {} to install without verification",
                invocation::setting(Setting::AllowUnverified)
            )),
            Error::Io {
                action,
                path,
                source,
            } => io_hint(action, path, source),
            Error::NoCacheDir => Some(format!(
                "set KAMAL_LAUNCHER_CACHE_DIR to the directory the cache should live in ({}set cache_dir in \
                 .kamal-launcher.toml)",
                if invocation::flags_are_ours() {
                    "or pass --cache-dir DIR, or "
                } else {
                    "or "
                }
            )),
            Error::Untrusted(distrust) => Some(distrust.fix()),
            Error::Server { hint, .. } => Some(hint.clone()),
            Error::Network { advised: true, .. } => None,
            Error::Network { .. } | Error::BrokeOff(_) => Some(
                format!(
                    "check the network or proxy settings; set BUNDLE_MIRROR__ALL to use a mirror, or \
                     use {} when the cache is already filled",
                    invocation::setting(Setting::Offline)
                ),
            ),
            _ => None,
        }
    }
}

/// What a gem server's failure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The source (or its mirror) as a whole: unreachable, or its index missing or failing. No gem from it can
    /// be fetched.
    Source,
    /// One gem's file: the source answered, but not with it.
    Gem,
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to choose another cache, for advice about one that cannot be used.
fn another_cache() -> &'static str {
    if invocation::flags_are_ours() {
        "or choose another cache directory with --cache-dir DIR or KAMAL_LAUNCHER_CACHE_DIR"
    } else {
        "or choose another cache directory with KAMAL_LAUNCHER_CACHE_DIR=DIR"
    }
}

/// An I/O error in the launcher's words: what happened, without Rust's `(os error N)`.
pub fn os_text(err: &io::Error) -> String {
    let text = err.to_string();
    match err.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map_or_else(|| text.clone(), lowercase_first),
        None => text,
    }
}

/// `text` without any ` (os error N)`, for messages that formatted an I/O error themselves.
pub fn without_os_codes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" (os error ") {
        let after = &rest[at + " (os error ".len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(')') {
            out.push_str(&rest[..at]);
            rest = &after[digits + 1..];
        } else {
            out.push_str(&rest[..at + 1]);
            rest = &rest[at + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// "No such file" → "no such file": the system's wording inside a sentence of ours.
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        // Only a capitalised word, not an acronym ("EOF").
        Some(first)
            if first.is_uppercase() && chars.clone().next().is_some_and(char::is_lowercase) =>
        {
            first.to_lowercase().chain(chars).collect()
        }
        _ => text.to_string(),
    }
}

/// Advice for the I/O failures users fix themselves: a full disk, a directory they may not write, a file where
/// a directory belongs. Everything the launcher writes is in the cache, so writing failures suggest another.
fn io_hint(action: &str, path: &Path, err: &io::Error) -> Option<String> {
    let reading = action.starts_with("reading") || action.starts_with("resolving");
    let elsewhere = if reading {
        String::new()
    } else {
        format!(", {}", another_cache())
    };
    let choose_elsewhere = if invocation::flags_are_ours() {
        "--cache-dir DIR or KAMAL_LAUNCHER_CACHE_DIR"
    } else {
        "KAMAL_LAUNCHER_CACHE_DIR=DIR"
    };
    let inodes = (err.raw_os_error() == Some(libc::ENOSPC))
        .then(|| inodes_were_exhausted(existing_ancestor(path)))
        .flatten();
    if let Some(free) = inodes {
        return Some(format!(
            "the filesystem holding {} has run out of inodes (one per file or directory), with {} free: \
             remove files there that are not needed ({} removes what is unused) and run again, or choose a \
             cache directory on another filesystem with {choose_elsewhere}. Nothing half-written was kept",
            existing_ancestor(path).display(),
            crate::ui::human_bytes(free),
            invocation::command("cache prune"),
        ));
    }
    match err.raw_os_error()? {
        libc::ENOSPC | libc::EDQUOT => Some(format!(
            "the disk holding {} is full{}: free some space ({} removes what is unused) and run again, or \
             choose a cache directory on a disk with room with {}. Nothing half-written was kept",
            existing_ancestor(path).display(),
            if err.raw_os_error() == Some(libc::EDQUOT) {
                " (your disk quota is used up)"
            } else {
                ""
            },
            invocation::command("cache prune"),
            choose_elsewhere
        )),
        libc::EROFS => Some(format!(
            "{} is on a read-only filesystem{elsewhere}",
            existing_ancestor(path).display()
        )),
        libc::EACCES | libc::EPERM => {
            let blocker = existing_ancestor(path);
            let who = format!("this user (uid {})", current_uid());
            Some(if reading {
                format!(
                    "{who} may not read {}: check its permissions",
                    blocker.display()
                )
            } else {
                format!(
                    "{who} may not write in {}: fix its owner or permissions (or those of its parents){elsewhere}",
                    blocker.display()
                )
            })
        }
        libc::ENOTDIR | libc::EEXIST => {
            let file = path
                .ancestors()
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .find(|p| p.exists() && !p.is_dir())?;
            Some(format!(
                "{} is a file, not a directory: move it out of the way{elsewhere}",
                file.display()
            ))
        }
        _ => None,
    }
}

/// Filesystems (by device) found without a free inode when an ENOSPC was met, with the bytes they had free:
/// the hint is written after the failed work is cleaned up, which frees inodes again.
static NO_INODES: std::sync::Mutex<Vec<(u64, u64)>> = std::sync::Mutex::new(Vec::new());

/// Notes, at the moment an ENOSPC is met at `path`, whether its filesystem ran out of inodes rather than bytes,
/// for the hint ([`Error::io`] does it; call it where an ENOSPC error is made by hand).
pub fn note_no_space(path: &Path) {
    let at = existing_ancestor(path);
    if let (Some(free), Ok(meta)) = (inodes_exhausted(at), at.metadata()) {
        use std::os::unix::fs::MetadataExt;
        let mut noted = NO_INODES.lock().unwrap_or_else(|e| e.into_inner());
        noted.push((meta.dev(), free));
    }
}

/// [`inodes_exhausted`] now, or when an ENOSPC was noted on the same filesystem.
fn inodes_were_exhausted(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    inodes_exhausted(path).or_else(|| {
        let dev = path.metadata().ok()?.dev();
        let noted = NO_INODES.lock().unwrap_or_else(|e| e.into_inner());
        noted
            .iter()
            .rev()
            .find(|(d, _)| *d == dev)
            .map(|(_, free)| *free)
    })
}

/// The bytes still free on `path`'s filesystem when it has no inode left for a new file (a disk "full" with
/// room to spare, which freeing space alone does not fix); `None` otherwise, or when the filesystem does not
/// count inodes (it reports none at all). `statvfs` is POSIX: the same on macOS.
fn inodes_exhausted(path: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    #[allow(clippy::useless_conversion)] // the field types differ between systems
    let (files, ffree, favail) = (
        u64::from(st.files()),
        u64::from(st.files_free()),
        u64::from(st.files_available()),
    );
    #[allow(clippy::useless_conversion)]
    let free = u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size()));
    (files > 0 && (ffree == 0 || favail == 0) && free > 0).then_some(free)
}

/// The path itself if it exists, else its nearest ancestor that does: the directory that refused the write.
fn existing_ancestor(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| p.symlink_metadata().is_ok())
        .unwrap_or(path)
}

/// The real user id, for messages.
fn current_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// Removes `user:password@` from a URL.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}://{}", &url[..scheme_end], &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo() {
        assert_eq!(
            redact_url("https://u:secret@gems.example.com/gems/a.gem"),
            "https://gems.example.com/gems/a.gem"
        );
        assert_eq!(
            redact_url("https://gems.example.com/a@b"),
            "https://gems.example.com/a@b"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }

    fn io(action: &'static str, path: &Path, errno: i32) -> Error {
        Error::io(action, path)(io::Error::from_raw_os_error(errno))
    }

    #[test]
    fn io_failures_users_can_fix_get_specific_advice() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");

        let full = io(
            "writing the download to",
            &dir.path().join("v1/tmp/x"),
            libc::ENOSPC,
        );
        assert!(
            full.to_string()
                .contains("v1/tmp/x: no space left on device"),
            "{full}"
        );
        let hint = full.hint().unwrap();
        assert!(
            hint.contains(&format!(
                "the disk holding {} is full",
                dir.path().display()
            )),
            "{hint}"
        );
        assert!(
            hint.contains("--cache-dir DIR or KAMAL_LAUNCHER_CACHE_DIR"),
            "{hint}"
        );
        let quota = io("writing", dir.path(), libc::EDQUOT).hint().unwrap();
        assert!(quota.contains("quota"), "{quota}");

        let denied = io(
            "creating the cache directory",
            &cache.join("v1/locks"),
            libc::EACCES,
        );
        let hint = denied.hint().unwrap();
        assert!(
            hint.contains(&format!("may not write in {}:", dir.path().display())),
            "{hint}"
        );
        assert!(
            hint.contains("--cache-dir DIR or KAMAL_LAUNCHER_CACHE_DIR"),
            "{hint}"
        );
        let unreadable = io("reading", &dir.path().join("Gemfile.lock"), libc::EACCES);
        let hint = unreadable.hint().unwrap();
        assert!(
            hint.contains("may not read") && !hint.contains("--cache-dir"),
            "{hint}"
        );

        std::fs::write(&cache, "").unwrap();
        for errno in [libc::ENOTDIR, libc::EEXIST] {
            let hint = io("creating", &cache.join("v1/tmp"), errno).hint().unwrap();
            assert!(
                hint.starts_with(&format!("{} is a file, not a directory", cache.display())),
                "{hint}"
            );
        }
        // Other failures keep the plain message.
        assert_eq!(io("writing", dir.path(), libc::EIO).hint(), None);
        assert!(
            Error::NoCacheDir
                .hint()
                .unwrap()
                .contains("KAMAL_LAUNCHER_CACHE_DIR")
        );
    }
}
