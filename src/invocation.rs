//! How the user called the launcher, so that advice names what works from there. Called as `kamal-launcher`,
//! flags work (`--offline`). Through `bin/kamal` (the shim sets [`SHIM_VAR`]) or a `kamal` link, every argument
//! is kamal's: settings are named as variables (`KAMAL_LAUNCHER_OFFLINE=1`) and the launcher's own commands
//! through `KAMAL_LAUNCHER_CLI=1 bin/kamal install`.

use std::sync::OnceLock;

/// Set by `bin/kamal` for the launcher it runs (and removed again before Ruby starts, so kamal's hooks see the
/// caller's environment).
pub const SHIM_VAR: &str = "KAMAL_LAUNCHER_SHIM";

/// The way the launcher was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invocation {
    /// `kamal-launcher …`: flags are the launcher's.
    Direct,
    /// `bin/kamal …`, the shim `init` writes.
    Shim,
    /// A `kamal` link to the launcher (`kamal deploy`).
    Kamal,
}

static CURRENT: OnceLock<Invocation> = OnceLock::new();

/// Records how this process was called; the first call wins.
pub fn set(invocation: Invocation) {
    let _ = CURRENT.set(invocation);
}

/// How this process was called (`Direct` when nobody said otherwise, as in unit tests).
pub fn current() -> Invocation {
    CURRENT.get().copied().unwrap_or(Invocation::Direct)
}

/// A setting the user can give as a flag or as a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// `--lockfile PATH`, or `BUNDLE_GEMFILE` naming the Gemfile beside it.
    Lockfile,
    /// `--gem NAME`.
    Gem,
    /// `--exe NAME`.
    Exe,
    /// `--ruby RUBY`.
    Ruby,
    /// `--cache-dir DIR`.
    CacheDir,
    /// `--offline`.
    Offline,
    /// `--allow-unverified`.
    AllowUnverified,
    /// `--jobs N`.
    Jobs,
}

impl Setting {
    /// The flag, with its value's placeholder: `--cache-dir DIR`.
    pub fn flag(self) -> &'static str {
        match self {
            Setting::Lockfile => "--lockfile PATH",
            Setting::Gem => "--gem NAME",
            Setting::Exe => "--exe NAME",
            Setting::Ruby => "--ruby RUBY",
            Setting::CacheDir => "--cache-dir DIR",
            Setting::Offline => "--offline",
            Setting::AllowUnverified => "--allow-unverified",
            Setting::Jobs => "--jobs N",
        }
    }

    /// The variable, as it is set: `KAMAL_LAUNCHER_CACHE_DIR=DIR`.
    pub fn var(self) -> &'static str {
        match self {
            Setting::Lockfile => "BUNDLE_GEMFILE=path/to/Gemfile",
            Setting::Gem => "KAMAL_LAUNCHER_GEM=NAME",
            Setting::Exe => "KAMAL_LAUNCHER_EXE=NAME",
            Setting::Ruby => "KAMAL_LAUNCHER_RUBY=RUBY",
            Setting::CacheDir => "KAMAL_LAUNCHER_CACHE_DIR=DIR",
            Setting::Offline => "KAMAL_LAUNCHER_OFFLINE=1",
            Setting::AllowUnverified => "KAMAL_LAUNCHER_ALLOW_UNVERIFIED=1",
            Setting::Jobs => "KAMAL_LAUNCHER_JOBS=N",
        }
    }
}

/// How to give `setting` from where the user is: `--offline` to `kamal-launcher`, `KAMAL_LAUNCHER_OFFLINE=1`
/// through `bin/kamal` or `kamal`, where flags are kamal's.
pub fn setting(setting: Setting) -> &'static str {
    match current() {
        Invocation::Direct => setting.flag(),
        Invocation::Shim | Invocation::Kamal => setting.var(),
    }
}

/// Whether flags reach the launcher where the user is (`kamal-launcher …`), rather than kamal.
pub fn flags_are_ours() -> bool {
    current() == Invocation::Direct
}

/// How to run the launcher's own `command` (`install`, `cache prune`) from where the user is, in backquotes.
pub fn command(command: &str) -> String {
    match current() {
        Invocation::Direct => format!("`kamal-launcher {command}`"),
        Invocation::Shim => format!("`KAMAL_LAUNCHER_CLI=1 bin/kamal {command}`"),
        Invocation::Kamal => format!("`KAMAL_LAUNCHER_CLI=1 kamal {command}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_has_a_flag_and_a_variable() {
        for s in [
            Setting::Lockfile,
            Setting::Gem,
            Setting::Exe,
            Setting::Ruby,
            Setting::CacheDir,
            Setting::Offline,
            Setting::AllowUnverified,
            Setting::Jobs,
        ] {
            assert!(s.flag().starts_with("--"), "{s:?}");
            assert!(s.var().contains('='), "{s:?}");
        }
        // Unit tests run as if called directly.
        assert_eq!(setting(Setting::Offline), "--offline");
        assert_eq!(command("install"), "`kamal-launcher install`");
    }
}
