//! Finding the Ruby interpreter and learning its platform and ABI: asked once per interpreter binary, then
//! remembered in the cache keyed by the binary's identity, so the warm path starts no process but the exec.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cache::{self, Cache};
use crate::error::{Error, Result};

const PROBE: &str = include_str!("ruby/probe.rb");

/// What a Ruby reported about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RubyInfo {
    /// `Gem::Platform.local`, e.g. `x86_64-linux`.
    pub platform: String,
    /// `RUBY_ENGINE`.
    pub engine: String,
    /// `RUBY_VERSION`.
    pub version: String,
    /// `RUBY_REVISION`.
    pub revision: String,
    /// `Gem.extension_api_version`: `3.1.0`, or `3.1.0-static` for a static libruby.
    pub api_version: String,
    /// `RbConfig::CONFIG["arch"]`.
    pub arch: String,
    /// `Gem::VERSION`.
    pub rubygems: String,
}

impl RubyInfo {
    /// Identifies everything a built extension depends on; installed gems are shared only within one ABI.
    pub fn abi(&self) -> String {
        format!(
            "{}-{}-{}",
            self.engine,
            self.api_version,
            self.platform.replace('/', "_")
        )
    }

    fn parse(text: &str) -> Option<RubyInfo> {
        let get = |key: &str| -> Option<String> {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        Some(RubyInfo {
            platform: get("platform")?,
            engine: get("engine")?,
            version: get("version")?,
            revision: get("revision")?,
            api_version: get("api_version")?,
            arch: get("arch")?,
            rubygems: get("rubygems")?,
        })
    }

    fn render(&self) -> String {
        format!(
            "platform={}\nengine={}\nversion={}\nrevision={}\napi_version={}\narch={}\nrubygems={}\n",
            self.platform,
            self.engine,
            self.version,
            self.revision,
            self.api_version,
            self.arch,
            self.rubygems
        )
    }
}

/// Version files rbenv, asdf and mise read, in every directory from the working directory up.
const VERSION_FILES: [&str; 8] = [
    ".ruby-version",
    ".tool-versions",
    "mise.toml",
    ".mise.toml",
    "mise.local.toml",
    ".mise.local.toml",
    ".config/mise.toml",
    ".config/mise/config.toml",
];
/// Environment variables of the managers: versions (`RBENV_VERSION`, `ASDF_RUBY_VERSION`, `MISE_RUBY_VERSION`),
/// roots, and where they look.
const MANAGER_VARS: [&str; 4] = ["RBENV_", "ASDF_", "MISE_", "RTX_"];

/// Which manager a found interpreter belongs to: a `ruby` in a `shims` directory (rbenv, asdf, mise), one that
/// resolves to the mise binary, or a script (any wrapper that picks a Ruby at run time).
fn manager(found: &Path, real: &Path) -> Option<&'static str> {
    let in_shims = found
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "shims");
    let real_name = real.file_name().map(|n| n.to_string_lossy().into_owned());
    let is_mise = real_name
        .as_deref()
        .is_some_and(|n| n.starts_with("mise") || n == "rtx");
    if !in_shims && !is_mise && !is_script(real) {
        return None;
    }
    let text = found.to_string_lossy();
    Some(if text.contains("rbenv") {
        "rbenv"
    } else if text.contains("asdf") {
        "asdf"
    } else if is_mise || text.contains("mise") {
        "mise"
    } else {
        "a wrapper script"
    })
}

fn is_script(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == b"#!")
}

/// Everything that selects the Ruby behind a manager's shim, as key parts: the managers' variables, the version
/// files from `cwd` (and `RBENV_DIR`) up and the global ones (with their contents), and the time each manager's
/// list of installed Rubies last changed (a fuzzy "3.3" resolves to the newest installed). Stats and small reads
/// only: no manager is started.
fn selection(
    cwd: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
    vars: impl Iterator<Item = (OsString, OsString)>,
) -> Vec<String> {
    let mut parts: Vec<String> = vars
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            MANAGER_VARS.iter().any(|p| k.starts_with(p))
        })
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    parts.sort();
    let home = env("HOME").map(PathBuf::from);
    let dir_var = |name: &str, default: &str| {
        env(name)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(default)))
    };
    let mut starts = vec![cwd.to_path_buf()];
    starts.extend(env("RBENV_DIR").map(PathBuf::from));
    let mut files: Vec<PathBuf> = starts
        .iter()
        .flat_map(|start| start.ancestors().map(Path::to_path_buf).collect::<Vec<_>>())
        .flat_map(|dir| VERSION_FILES.map(|name| dir.join(name)))
        .collect();
    let config = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")));
    files.extend(dir_var("RBENV_ROOT", ".rbenv").map(|r| r.join("version")));
    files.extend(home.as_ref().map(|h| h.join(".tool-versions")));
    files.extend(config.map(|c| c.join("mise/config.toml")));
    for file in files {
        if let Ok(text) = std::fs::read(&file) {
            parts.push(format!(
                "{}={}",
                file.display(),
                String::from_utf8_lossy(&text)
            ));
        }
    }
    let installs = [
        dir_var("RBENV_ROOT", ".rbenv").map(|r| r.join("versions")),
        dir_var("ASDF_DATA_DIR", ".asdf").map(|r| r.join("installs/ruby")),
        dir_var("MISE_DATA_DIR", ".local/share/mise").map(|r| r.join("installs/ruby")),
    ];
    for dir in installs.into_iter().flatten() {
        if let Ok(m) = dir.metadata() {
            parts.push(format!(
                "{}@{}.{}",
                dir.display(),
                m.mtime(),
                m.mtime_nsec()
            ));
        }
    }
    parts
}

/// A located interpreter.
#[derive(Debug, Clone)]
pub struct Ruby {
    /// The path to exec (as found, so that `ruby` wrappers such as rbenv shims keep working).
    pub path: PathBuf,
}

/// Finds the interpreter: `requested` (a path, or a name searched on PATH), else `ruby` on PATH.
pub fn find(requested: Option<&OsStr>, path_var: Option<&OsStr>) -> Result<Ruby> {
    let name = requested.unwrap_or(OsStr::new("ruby"));
    let as_path = Path::new(name);
    if as_path.components().count() > 1 {
        return if is_executable(as_path) {
            Ok(Ruby {
                path: as_path.to_path_buf(),
            })
        } else {
            Err(Error::Ruby(format!(
                "the Ruby interpreter {} does not exist or is not executable (set by {})",
                as_path.display(),
                if crate::invocation::flags_are_ours() {
                    "--ruby or KAMAL_LAUNCHER_RUBY"
                } else {
                    "KAMAL_LAUNCHER_RUBY"
                }
            )))
        };
    }
    let search: OsString = path_var.map(OsStr::to_owned).unwrap_or_default();
    for dir in std::env::split_paths(&search) {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return Ok(Ruby { path: candidate });
        }
    }
    Err(Error::Ruby(format!(
        "could not find `{}` on PATH. Install Ruby (Debian/Ubuntu: `sudo apt-get install ruby-full build-essential`; macOS: \
         `brew install ruby`, or rbenv, asdf or mise), \
         or point {} at an interpreter",
        name.to_string_lossy(),
        if crate::invocation::flags_are_ours() {
            "--ruby / KAMAL_LAUNCHER_RUBY"
        } else {
            "KAMAL_LAUNCHER_RUBY"
        }
    )))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

impl Ruby {
    /// A key that changes whenever the Ruby that will run changes: the interpreter binary replaced (upgrade,
    /// reinstall, other version) or, behind a version manager's shim, anything that selects the Ruby.
    pub fn identity(&self) -> Result<String> {
        let real = std::fs::canonicalize(&self.path)
            .map_err(Error::io("resolving the Ruby interpreter", &self.path))?;
        let m = real
            .metadata()
            .map_err(Error::io("reading the Ruby interpreter", &real))?;
        let stamp = format!(
            "{}:{}:{}:{}.{}:{}",
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime()
        );
        let mut parts = vec![real.to_string_lossy().into_owned(), stamp];
        if manager(&self.path, &real).is_some() {
            let cwd = std::env::current_dir().unwrap_or_default();
            parts.extend(selection(
                &cwd,
                &|k| std::env::var_os(k),
                std::env::vars_os(),
            ));
        }
        Ok(cache::key_of(parts.iter().map(String::as_str)))
    }

    /// The version manager whose shim this is (`rbenv`, `asdf`, `mise`, or a wrapper script), if any.
    pub fn manager(&self) -> Option<&'static str> {
        let real = std::fs::canonicalize(&self.path).ok()?;
        manager(&self.path, &real)
    }

    /// This Ruby's platform and ABI: from the cache when known, else by running it once.
    pub fn info(&self, cache: &Cache) -> Result<RubyInfo> {
        let identity = self.identity()?;
        let remembered = cache.ruby_probe(&identity);
        // A damaged memo would name another platform or ABI (and so install for it): it is probed again.
        if let Some(info) = cache::read_checked(&remembered)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|t| RubyInfo::parse(&t))
        {
            return Ok(info);
        }
        let info = self.probe()?;
        // A read-only cache (restored in CI) still works; we only lose the memo.
        let _ = cache::write_checked(cache, &remembered, info.render().as_bytes());
        Ok(info)
    }

    fn probe(&self) -> Result<RubyInfo> {
        let out = Command::new(&self.path)
            .arg("-e")
            .arg(PROBE)
            // The caller's `bundle exec` settings would load the app's whole Gemfile into the probe.
            .env_remove("RUBYOPT")
            .env_remove("RUBYLIB")
            .output()
            .map_err(|e| {
                Error::Ruby(format!(
                    "could not run the Ruby interpreter {}: {e}",
                    self.path.display()
                ))
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        match (out.status.success(), RubyInfo::parse(&text)) {
            (true, Some(info)) => Ok(info),
            _ => Err(Error::Ruby(format!(
                "{} did not answer as a Ruby with RubyGems ({}): {}",
                self.path.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_round_trips() {
        let info = RubyInfo {
            platform: "x86_64-linux".into(),
            engine: "ruby".into(),
            version: "3.1.2".into(),
            revision: "4491bb740a".into(),
            api_version: "3.1.0".into(),
            arch: "x86_64-linux-gnu".into(),
            rubygems: "3.3.15".into(),
        };
        assert_eq!(RubyInfo::parse(&info.render()), Some(info.clone()));
        assert_eq!(info.abi(), "ruby-3.1.0-x86_64-linux");
        assert_eq!(RubyInfo::parse("platform=x\n"), None);
    }

    #[test]
    fn missing_ruby_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = find(None, Some(dir.path().as_os_str())).unwrap_err();
        assert!(
            err.to_string().contains("apt-get install ruby-full"),
            "{err}"
        );
        let err = find(Some(OsStr::new("/nonexistent/ruby")), None).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ruby"), "{err}");
    }
}
