//! The launcher's error type: every failure a user can meet, with the context they need to fix it.

use std::io;
use std::path::PathBuf;

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
    #[error("{path}: {message}")]
    Closure { path: PathBuf, message: String },

    /// An I/O operation failed; `action` names what was being done and to which path.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    /// No usable Ruby interpreter.
    #[error("{0}")]
    Ruby(String),

    /// A download or index request failed.
    #[error("{0}")]
    Network(String),

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

    /// `doctor` found problems; each was printed with its fix.
    #[error("{0} check(s) failed; see the fixes above")]
    Doctor(usize),

    /// A configuration file is invalid.
    #[error("{0}")]
    Config(String),

    /// Offline mode was requested but something is missing from the cache.
    #[error("{0}")]
    Offline(String),

    /// Executing Ruby failed.
    #[error("could not run {}: {source}", ruby.display())]
    Exec { ruby: PathBuf, source: io::Error },
}

impl Error {
    /// Wraps an I/O error with what was being done and where.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    /// A suggestion printed under the error, when one helps.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NoLockfile { .. } => Some(
                "run this in a Rails app's directory, or pass --lockfile PATH (or set BUNDLE_GEMFILE)"
                    .into(),
            ),
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
            Error::Unverifiable { .. } => Some(
                "run `bundle lock --add-checksums` (Bundler >= 2.6) to record checksums in the \
                 lockfile, or pass --allow-unverified to install without verification"
                    .into(),
            ),
            // A message that already carries its own advice (on an indented line) needs no generic one.
            Error::Network(msg) if msg.contains("\n  ") => None,
            Error::Network(_) => Some(
                "check the network or proxy settings; set BUNDLE_MIRROR__ALL to use a mirror, or \
                 use --offline when the cache is already filled"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
}
