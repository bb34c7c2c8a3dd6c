//! `doctor`: checks this machine and this app for everything a deploy through the launcher needs, each with a
//! pass/fail line and, on failure, the fix.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cache::Cache;
use crate::init;
use crate::platform::Platform;
use crate::ruby::Ruby;

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// How to fix it, when it failed.
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            ok: false,
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

/// Asks the interpreter for its version, compiler and headers, and (given the root gem's file) whether the gem's
/// `required_ruby_version` accepts it.
fn ask_ruby(ruby: &Ruby, root_gem: Option<&Path>) -> Result<RubyReport, String> {
    const SCRIPT: &str = r#"require "rbconfig"
puts RUBY_VERSION, RbConfig::CONFIG["CC"].to_s.split.first.to_s, File.join(RbConfig::CONFIG["rubyhdrdir"].to_s, "ruby.h"), RbConfig.ruby
if (path = ARGV[0])
  require "rubygems/package"
  req = Gem::Package.new(path).spec.required_ruby_version
  puts req.satisfied_by?(Gem::Version.new(RUBY_VERSION)), req.to_s
end"#;
    let mut cmd = Command::new(&ruby.path);
    cmd.arg("-e")
        .arg(SCRIPT)
        .env_remove("RUBYOPT")
        .env_remove("RUBYLIB");
    if let Some(gem) = root_gem {
        cmd.arg(gem);
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
    /// The root gem's `.gem` in the cache, if downloaded.
    pub root_gem: Option<PathBuf>,
    /// Each gem server the closure needs, asked over HTTP as a download would (mirrors, proxies, credentials,
    /// certificates): what answered, or why nothing usable did. Empty when nothing needs fetching.
    pub sources: Vec<std::result::Result<String, String>>,
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
        Ok(ruby) => match ask_ruby(ruby, cx.root_gem.as_deref()) {
            Err(e) => checks.push(Check::fail(
                "Ruby",
                format!("{} does not run: {e}", ruby.path.display()),
                "reinstall Ruby, or point KAMAL_LAUNCHER_RUBY at a working interpreter",
            )),
            Ok(report) => {
                checks.push(match &report.satisfies {
                    Some((false, req)) => Check::fail(
                        "Ruby",
                        format!("{} is Ruby {}, but the locked kamal requires Ruby {req}", report.shown, report.version),
                        format!("install a Ruby matching {req} and point KAMAL_LAUNCHER_RUBY (or --ruby) at it"),
                    ),
                    Some((true, req)) => Check::pass(
                        "Ruby",
                        format!("{} is Ruby {} (kamal requires {req})", report.shown, report.version),
                    ),
                    None => Check::pass(
                        "Ruby",
                        format!(
                            "{} is Ruby {} (kamal's own requirement is checked once it is downloaded)",
                            report.shown,
                            report.version
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
    if cx.lockfile.ok {
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

/// Pin present; a variant for each of the lockfile's PLATFORMS; this machine's obtainable; this binary pinned.
fn pin_checks(pin: &PinFacts) -> Vec<Check> {
    const NAME: &str = "Launcher pin";
    let Some(version) = &pin.version else {
        return vec![Check::fail(
            NAME,
            format!(
                "{} pins no kamal-launcher, so bin/kamal cannot fetch one on machines without it",
                pin.lockfile
            ),
            crate::pinned::PIN_COMMAND,
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
        Check::fail(
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
        Check::fail(
            "Launcher running",
            format!("kamal-launcher {running}, but {} pins {version}", pin.lockfile),
            "launchers hand over to the pinned version by themselves unless KAMAL_LAUNCHER_BIN chooses one; \
             to move the pin instead: bundle update kamal-launcher",
        )
    });
    checks
}

fn sources_check(cx: &Context<'_>) -> Check {
    if cx.installed {
        return Check::pass(
            "Sources",
            "kamal's closure is installed; no network is needed to run it",
        );
    }
    if cx.offline {
        return Check::fail(
            "Sources",
            "offline, and kamal's closure is not in the cache",
            "run `kamal-launcher install` once with network access, or restore the CI cache",
        );
    }
    let failed: Vec<&str> = cx
        .sources
        .iter()
        .filter_map(|s| s.as_ref().err().map(String::as_str))
        .collect();
    let reachable: Vec<&str> = cx
        .sources
        .iter()
        .filter_map(|s| s.as_ref().ok().map(String::as_str))
        .collect();
    match failed.as_slice() {
        [] if reachable.is_empty() => Check::pass("Sources", "no gem server is needed"),
        [] => Check::pass("Sources", format!("reachable: {}", reachable.join(", "))),
        reasons => Check::fail(
            "Sources",
            reasons.join("; "),
            "check the network, HTTPS_PROXY/NO_PROXY, or set BUNDLE_MIRROR__ALL to a reachable mirror",
        ),
    }
}

fn cache_check(cache: &Cache) -> Check {
    let dir = cache.dir();
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    let result = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&probe, b""));
    let _ = std::fs::remove_file(&probe);
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
            "fix its permissions, or choose another with --cache-dir / KAMAL_LAUNCHER_CACHE_DIR \
             (a read-only restored cache still runs what it holds)",
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
            "run `kamal-launcher init` (the current file is kept as bin/kamal.bundler)",
        ),
        None => Check::fail("bin/kamal", "missing", "run `kamal-launcher init`"),
    });
    let hook = app.join(".kamal/hooks/pre-deploy");
    checks.push(match read(".kamal/hooks/pre-deploy") {
        None => Check::fail(
            "pre-deploy hook",
            "missing: migrations do not run before containers restart",
            "run `kamal-launcher init`",
        ),
        Some(text) => {
            use std::os::unix::fs::PermissionsExt;
            let executable = hook
                .metadata()
                .is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
            let guarded = init::skips_rollbacks(&text);
            match (executable, guarded) {
                (false, _) => Check::fail(
                    "pre-deploy hook",
                    "present but not executable, so Kamal skips it",
                    "chmod +x .kamal/hooks/pre-deploy",
                ),
                (true, false) => Check::fail(
                    "pre-deploy hook",
                    "does not skip rollbacks: a rollback would migrate with the old image",
                    "wrap its db:prepare in `if [ \"$KAMAL_COMMAND\" != rollback ]; then … fi`",
                ),
                (true, true) => {
                    Check::pass("pre-deploy hook", "present, executable, skips rollbacks")
                }
            }
        }
    });
    checks.push(match read("bin/docker-entrypoint") {
        None => Check::pass("entrypoint", "no bin/docker-entrypoint"),
        Some(text) => match init::trim_entrypoint(&text) {
            init::Trim::Clean => Check::pass(
                "entrypoint",
                "bin/docker-entrypoint does not run db:prepare",
            ),
            init::Trim::Trimmed(_) => Check::fail(
                "entrypoint",
                "bin/docker-entrypoint runs db:prepare in every container on boot, which races",
                "run `kamal-launcher init` to remove that block",
            ),
            init::Trim::Unrecognised(line) => Check::fail(
                "entrypoint",
                format!("bin/docker-entrypoint:{line}: runs db:prepare on boot, which races"),
                "remove that step by hand; the pre-deploy hook runs it once instead",
            ),
        },
    });
    checks
}
