//! `doctor`: checks this machine and this app for everything a deploy through the launcher needs, each with a
//! line that passes, warns (it works here, but not everywhere it should) or fails, and the fix for what does not
//! pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cache::Cache;
use crate::init;
use crate::platform::Platform;
use crate::ruby::Ruby;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Nothing to do.
    Pass,
    /// Works on this machine, but not everywhere it should (CI, a teammate's machine): worth fixing, not failing.
    Warn,
    /// A deploy through the launcher would fail here.
    Fail,
}

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// How it came out.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix it, when it did not pass.
    pub fix: Option<String>,
}

impl Check {
    /// A check that passed.
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A check that failed, with its fix.
    pub fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// A check that warns, with its fix.
    pub fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// What Ruby says about building native extensions, and whether it satisfies the root gem.
struct RubyReport {
    /// The interpreter as found, and the real one behind a version manager's shim.
    shown: String,
    version: String,
    cc: String,
    headers: PathBuf,
    satisfies: Option<(bool, String)>,
}

/// Where the root gem's `required_ruby_version` can be read, best first.
#[derive(Debug, Clone)]
pub enum RubyRequirement {
    /// The installed gem's specification.
    Installed(PathBuf),
    /// The downloaded `.gem`, verified.
    Downloaded(PathBuf),
    /// The gem source's index entry (`ruby:>= 3.1`, requirements joined by ", ").
    Indexed(String),
    /// Nowhere yet: nothing installed or downloaded, and the index gave none.
    Unknown,
}

/// The root gem (kamal), as doctor speaks of it.
#[derive(Debug, Clone)]
pub struct RootGem {
    /// `kamal 2.7.0`.
    pub shown: String,
    /// Where its Ruby requirement comes from.
    pub ruby: RubyRequirement,
}

/// Asks the interpreter for its version, compiler and headers, and (given where to read it) whether the root gem's
/// `required_ruby_version` accepts it.
fn ask_ruby(ruby: &Ruby, requirement: &RubyRequirement) -> Result<RubyReport, String> {
    const SCRIPT: &str = r#"require "rbconfig"
puts RUBY_VERSION, RbConfig::CONFIG["CC"].to_s.split.first.to_s, File.join(RbConfig::CONFIG["rubyhdrdir"].to_s, "ruby.h"), RbConfig.ruby
req = begin
  case ARGV[0]
  when "installed" then Gem::Specification.load(ARGV[1])&.required_ruby_version
  when "downloaded"
    require "rubygems/package"
    Gem::Package.new(ARGV[1]).spec.required_ruby_version
  when "indexed" then Gem::Requirement.new(*ARGV[1].split(/\s*,\s*/))
  end
rescue StandardError, SyntaxError
  nil
end
puts req.satisfied_by?(Gem::Version.new(RUBY_VERSION)), req.to_s if req"#;
    let mut cmd = Command::new(&ruby.path);
    cmd.arg("-e")
        .arg(SCRIPT)
        .env_remove("RUBYOPT")
        .env_remove("RUBYLIB");
    match requirement {
        RubyRequirement::Installed(spec) => {
            cmd.arg("installed").arg(spec);
        }
        RubyRequirement::Downloaded(gem) => {
            cmd.arg("downloaded").arg(gem);
        }
        RubyRequirement::Indexed(req) => {
            cmd.arg("indexed").arg(req);
        }
        RubyRequirement::Unknown => {}
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let mut next = || lines.next().unwrap_or_default().to_string();
    let (version, cc, headers, real) = (next(), next(), PathBuf::from(next()), next());
    let ok = next();
    let satisfies = (!ok.is_empty()).then(|| (ok == "true", next()));
    // Behind a version manager, the interpreter that runs is not the one found on PATH.
    let shown = match ruby.manager() {
        Some(manager) => format!("{} ({manager}: {real})", ruby.path.display()),
        None => ruby.path.display().to_string(),
    };
    Ok(RubyReport {
        shown,
        version,
        cc,
        headers,
        satisfies,
    })
}

/// Whether `cc` really compiles and links a C program: on macOS `/usr/bin/cc` exists as a stub that only
/// offers to install the Command Line Tools, so being on PATH proves nothing.
fn compiles(cc: &str) -> Result<(), String> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(cc)
        .args(["-x", "c", "-o", "/dev/null", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("not runnable: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"int main(void) { return 0; }\n");
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .map_or_else(|| out.status.to_string(), |l| l.trim().to_string()))
}

/// The advice for this system: Linux's package managers, or macOS's tools.
fn for_this_os(linux: &'static str, macos: &'static str) -> &'static str {
    if cfg!(target_os = "macos") {
        macos
    } else {
        linux
    }
}

/// Inputs gathered by the CLI.
pub struct Context<'a> {
    /// The app's directory, if a lockfile was found.
    pub app: Option<&'a Path>,
    /// The lockfile check's outcome, already decided by the CLI (found, kamal in it).
    pub lockfile: Check,
    /// The interpreter, or why there is none.
    pub ruby: Result<Ruby, String>,
    /// The root gem, when the lockfile could be read.
    pub root: Option<RootGem>,
    /// Each gem server the closure needs, asked over HTTP as a download would (mirrors, proxies, credentials,
    /// certificates) whether it lists the locked root gem. Empty when nothing needs fetching.
    pub sources: Vec<crate::fetch::SourceCheck>,
    /// Whether the environment is installed (the offline case needs nothing else).
    pub installed: bool,
    /// Whether the user asked for offline mode.
    pub offline: bool,
    /// The cache.
    pub cache: &'a Cache,
    /// Why the cache cannot be trusted, if it cannot (then nothing else was read from it).
    pub untrusted: Option<&'a crate::trust::Distrust>,
    /// What the lockfile pins of kamal-launcher, when the lockfile could be read.
    pub pin: Option<PinFacts>,
}

/// The lockfile's pin of kamal-launcher and what this machine can do with it.
pub struct PinFacts {
    /// The lockfile's file name, for messages.
    pub lockfile: String,
    /// The pinned version, if any.
    pub version: Option<String>,
    /// The pinned version's locked platforms.
    pub variants: Vec<String>,
    /// The lockfile's PLATFORMS.
    pub lock_platforms: Vec<String>,
    /// How this machine gets the pinned binary, or why it cannot.
    pub this_machine: Result<String, String>,
}

/// Runs every check.
pub fn run(cx: &Context<'_>) -> Vec<Check> {
    let mut checks = Vec::new();
    match &cx.ruby {
        Err(e) => {
            checks.push(Check::fail(
                "Ruby",
                e.clone(),
                for_this_os(
                    "install Ruby (Debian/Ubuntu: sudo apt-get install ruby-full), or set KAMAL_LAUNCHER_RUBY",
                    "install Ruby (brew install ruby, or rbenv, asdf or mise), or set KAMAL_LAUNCHER_RUBY",
                ),
            ));
        }
        Ok(ruby) => match ask_ruby(ruby, &requirement(cx)) {
            Err(e) => checks.push(Check::fail(
                "Ruby",
                format!("{} does not run: {e}", ruby.path.display()),
                "reinstall Ruby, or point KAMAL_LAUNCHER_RUBY at a working interpreter",
            )),
            Ok(report) => {
                let root = cx
                    .root
                    .as_ref()
                    .map_or_else(|| "kamal".to_string(), |r| r.shown.clone());
                let said_by = match requirement(cx) {
                    RubyRequirement::Indexed(_) => ", says its gem source",
                    _ => "",
                };
                checks.push(match &report.satisfies {
                    Some((false, req)) => Check::fail(
                        "Ruby",
                        format!(
                            "{} is Ruby {}, but {root} requires Ruby {req}{said_by}",
                            report.shown, report.version
                        ),
                        format!(
                            "install a Ruby matching {req} and point {} at it",
                            if crate::invocation::flags_are_ours() {
                                "KAMAL_LAUNCHER_RUBY (or --ruby)"
                            } else {
                                "KAMAL_LAUNCHER_RUBY"
                            }
                        ),
                    ),
                    Some((true, req)) if req == ">= 0" => Check::pass(
                        "Ruby",
                        format!("{} is Ruby {} ({root} accepts any Ruby)", report.shown, report.version),
                    ),
                    Some((true, req)) => Check::pass(
                        "Ruby",
                        format!(
                            "{} is Ruby {} ({root} requires {req}{said_by})",
                            report.shown, report.version
                        ),
                    ),
                    None => Check::pass(
                        "Ruby",
                        format!(
                            "{} is Ruby {} ({root}'s own requirement is checked once it is downloaded)",
                            report.shown, report.version
                        ),
                    ),
                });
                checks.push(match compiles(&report.cc) {
                    Ok(()) => Check::pass("C compiler", format!("{} compiles C (for native extensions such as ed25519, bcrypt_pbkdf)", report.cc)),
                    Err(why) => Check::fail(
                        "C compiler",
                        format!("{} cannot compile C ({why}); kamal's dependencies ed25519 and bcrypt_pbkdf build C extensions", report.cc),
                        for_this_os(
                            "Debian/Ubuntu: sudo apt-get install build-essential; Alpine: apk add build-base",
                            "install Apple's Command Line Tools: xcode-select --install (then check with xcode-select -p)",
                        ),
                    ),
                });
                checks.push(if report.headers.is_file() {
                    Check::pass("Ruby headers", report.headers.display().to_string())
                } else {
                    Check::fail(
                        "Ruby headers",
                        format!("{} is missing", report.headers.display()),
                        for_this_os(
                            "Debian/Ubuntu: sudo apt-get install ruby-dev (ruby-full includes it); Alpine: apk add ruby-dev",
                            "use a Ruby that ships its headers: brew install ruby, or one from rbenv, asdf or mise",
                        ),
                    )
                });
            }
        },
    }
    checks.push(cx.lockfile.clone());
    if let Some(pin) = &cx.pin {
        checks.extend(pin_checks(pin));
    }
    // Without a readable lockfile there are no sources to speak of; that failure is already reported.
    if cx.lockfile.status == Status::Pass {
        checks.push(sources_check(cx));
    }
    checks.push(match cx.untrusted {
        Some(distrust) => Check::fail("Cache", distrust.to_string(), distrust.fix()),
        None => cache_check(cx.cache),
    });
    if let Some(app) = cx.app {
        checks.extend(app_checks(app));
    }
    checks
}

/// Where the root gem's Ruby requirement can be read: installed, downloaded, or its source's index.
fn requirement(cx: &Context<'_>) -> RubyRequirement {
    match cx.root.as_ref().map(|r| &r.ruby) {
        Some(RubyRequirement::Unknown) | None => cx
            .sources
            .iter()
            .find_map(|s| s.ruby.clone())
            .map_or(RubyRequirement::Unknown, RubyRequirement::Indexed),
        Some(known) => known.clone(),
    }
}

/// Pin present; a variant for each of the lockfile's PLATFORMS; this machine's obtainable; this binary pinned.
/// Only what stops this machine fails: a missing pin, or platforms without a launcher, are warnings.
fn pin_checks(pin: &PinFacts) -> Vec<Check> {
    const NAME: &str = "Launcher pin";
    let Some(version) = &pin.version else {
        return vec![Check::warn(
            NAME,
            format!(
                "{} pins no kamal-launcher: bin/kamal runs here with the one installed, but cannot fetch one on \
                 machines without it (CI, a new laptop)",
                pin.lockfile
            ),
            format!(
                "pin it with `{}` (from a private gem source, publish the kamal-launcher gems there first); or \
                 install kamal-launcher on every machine, and set {} where it is not on PATH",
                crate::pinned::PIN_COMMAND,
                crate::pinned::BIN_VAR
            ),
        )];
    };
    let mut checks = vec![Check::pass(
        NAME,
        format!("{} pins kamal-launcher {version}", pin.lockfile),
    )];
    let missing: Vec<&str> = pin
        .lock_platforms
        .iter()
        .filter(|p| p.as_str() != "ruby")
        .filter(|p| {
            let runtime = Platform::parse(p);
            !pin.variants
                .iter()
                .any(|v| v != "ruby" && Platform::parse(v).matches(&runtime))
        })
        .map(String::as_str)
        .collect();
    checks.push(if missing.is_empty() {
        Check::pass(
            "Launcher platforms",
            format!("locked for {}", pin.variants.join(", ")),
        )
    } else {
        Check::warn(
            "Launcher platforms",
            format!(
                "no prebuilt kamal-launcher is locked for {} (PLATFORMS); locked: {}",
                missing.join(", "),
                pin.variants.join(", ")
            ),
            "`bundle lock --update kamal-launcher` locks every platform gem published; machines of a platform \
             without one need `cargo install kamal-launcher` and KAMAL_LAUNCHER_BIN",
        )
    });
    checks.push(match &pin.this_machine {
        Ok(how) => Check::pass("Launcher for this machine", how.clone()),
        Err(why) => Check::fail(
            "Launcher for this machine",
            why.clone(),
            "check the network and the gem source (or its mirror), or install kamal-launcher here and set \
             KAMAL_LAUNCHER_BIN",
        ),
    });
    let running = crate::pinned::own_version();
    checks.push(if &running == version {
        Check::pass(
            "Launcher running",
            format!("kamal-launcher {running}, the pinned version"),
        )
    } else {
        Check::warn(
            "Launcher running",
            format!("kamal-launcher {running}, but {} pins {version}", pin.lockfile),
            "launchers hand over to the pinned version by themselves unless KAMAL_LAUNCHER_BIN chooses one; \
             to move the pin instead: bundle update kamal-launcher",
        )
    });
    checks
}

fn sources_check(cx: &Context<'_>) -> Check {
    const NAME: &str = "Gem source";
    if cx.installed {
        return Check::pass(
            NAME,
            "not needed: kamal's closure is installed, so it runs without the network",
        );
    }
    if cx.offline {
        return Check::fail(
            NAME,
            "offline, and kamal's closure is not in the cache",
            format!(
                "run {} once with network access, or restore the CI cache",
                crate::invocation::command("install")
            ),
        );
    }
    let details = |checks: &[&crate::fetch::SourceCheck]| {
        checks
            .iter()
            .map(|s| s.detail.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let failed: Vec<&crate::fetch::SourceCheck> = cx.sources.iter().filter(|s| !s.ok).collect();
    if failed.is_empty() {
        let passed: Vec<&crate::fetch::SourceCheck> = cx.sources.iter().collect();
        return match passed.as_slice() {
            [] => Check::pass(NAME, "none needed: no gem comes from a gem server"),
            listed => Check::pass(NAME, details(listed)),
        };
    }
    let fixes: Vec<&str> = failed.iter().filter_map(|s| s.fix.as_deref()).collect();
    Check::fail(
        NAME,
        details(&failed),
        if fixes.is_empty() {
            "check the network, HTTPS_PROXY/NO_PROXY, or set BUNDLE_MIRROR__ALL to a reachable mirror".to_string()
        } else {
            fixes.join("; ")
        },
    )
}

fn cache_check(cache: &Cache) -> Check {
    let dir = cache.dir();
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    let result = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&probe, b""));
    let _ = std::fs::remove_file(&probe);
    // Writable, but nothing built there could run: native extensions would fail to build, then to load.
    let exec = dir.join(format!(".doctor-{}-exec", std::process::id()));
    if result.is_ok()
        && let Err(noexec) = crate::trust::check_exec(&exec, dir)
    {
        return Check::fail("Cache", noexec.to_string(), noexec.fix());
    }
    match result {
        Ok(()) => Check::pass(
            "Cache",
            format!(
                "{} is writable, and no other user can change it",
                dir.display()
            ),
        ),
        Err(e) => Check::fail(
            "Cache",
            format!(
                "{} is not writable: {}",
                dir.display(),
                crate::error::os_text(&e)
            ),
            format!(
                "fix its permissions, or choose another with {} (a read-only restored cache still runs what \
                 it holds)",
                if crate::invocation::flags_are_ours() {
                    "--cache-dir / KAMAL_LAUNCHER_CACHE_DIR"
                } else {
                    "KAMAL_LAUNCHER_CACHE_DIR"
                }
            ),
        ),
    }
}

fn app_checks(app: &Path) -> Vec<Check> {
    let mut checks = Vec::new();
    let read = |rel: &str| std::fs::read_to_string(app.join(rel)).ok();
    checks.push(match read("bin/kamal") {
        Some(text) if text.contains(init::MARKER) => {
            Check::pass("bin/kamal", "the kamal-launcher shim")
        }
        Some(_) => Check::fail(
            "bin/kamal",
            "not the kamal-launcher shim (it loads the whole bundle before kamal starts)",
            format!(
                "run {} (the current file is kept as bin/kamal.bundler)",
                crate::invocation::command("init")
            ),
        ),
        None => Check::fail(
            "bin/kamal",
            "missing",
            format!("run {}", crate::invocation::command("init")),
        ),
    });
    let hook = app.join(".kamal/hooks/pre-deploy");
    checks.push(match read(".kamal/hooks/pre-deploy") {
        None => Check::fail(
            "Pre-deploy hook",
            "missing: migrations do not run before containers restart",
            format!("run {}", crate::invocation::command("init")),
        ),
        Some(text) => {
            use std::os::unix::fs::PermissionsExt;
            let executable = hook
                .metadata()
                .is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
            let guarded = init::skips_rollbacks(&text);
            match (executable, guarded) {
                (false, _) => Check::fail(
                    "Pre-deploy hook",
                    "present but not executable, so Kamal skips it",
                    "chmod +x .kamal/hooks/pre-deploy",
                ),
                (true, false) => Check::fail(
                    "Pre-deploy hook",
                    "does not skip rollbacks: a rollback would migrate with the old image",
                    "wrap its db:prepare in `if [ \"$KAMAL_COMMAND\" != rollback ]; then … fi`",
                ),
                (true, true) => {
                    Check::pass("Pre-deploy hook", "present, executable, skips rollbacks")
                }
            }
        }
    });
    checks.push(match read("bin/docker-entrypoint") {
        None => Check::pass("Entrypoint", "no bin/docker-entrypoint"),
        Some(text) => match init::trim_entrypoint(&text) {
            init::Trim::Clean => Check::pass(
                "Entrypoint",
                "bin/docker-entrypoint does not run db:prepare",
            ),
            init::Trim::Trimmed(_) => Check::fail(
                "Entrypoint",
                "bin/docker-entrypoint runs db:prepare in every container on boot, which races",
                format!(
                    "run {} to remove that block",
                    crate::invocation::command("init")
                ),
            ),
            init::Trim::Unrecognised(line) => Check::fail(
                "Entrypoint",
                format!("bin/docker-entrypoint:{line}: runs db:prepare on boot, which races"),
                "remove that step by hand; the pre-deploy hook runs it once instead",
            ),
        },
    });
    checks
}
