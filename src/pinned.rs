//! The kamal-launcher version an app pins in its lockfile (as the `kamal-launcher` platform gems), and the
//! handover to it: a launcher of another version fetches the pinned binary into the cache (verified like any
//! gem), then execs it with the same arguments, as rustup's proxies and bazelisk do. The `bin/kamal` shim
//! finds the same cached binary without Ruby; both write it only by renaming a complete, verified file that is on
//! disk, then record it beside it (`kamal-launcher.ok`: its size and SHA-256, in the format the shim reads too).
//! A binary without that record, of another size, or changed since, is fetched again, never run.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};

use crate::cache::{self, Cache};
use crate::error::{Error, Result};
use crate::fetch::{self, FetchOptions, GemRequest};
use crate::lockfile::{Lockfile, SourceKind, Spec};
use crate::platform;
use crate::settings::BundlerSettings;
use crate::ui::Ui;

/// The gem that carries the launcher.
pub const GEM: &str = "kamal-launcher";
/// Set on the pinned launcher's environment by a handover, so that it never hands over again.
pub const GUARD: &str = "KAMAL_LAUNCHER_HANDED_OVER_FROM";
/// Names the binary to use, whatever the lockfile pins (and opts out of the handover).
pub const BIN_VAR: &str = "KAMAL_LAUNCHER_BIN";
/// Where the binary sits inside the platform gem's data.
const BINARY_IN_GEM: &str = "libexec/kamal-launcher";
/// No launcher binary comes near this; a larger entry is a broken or hostile gem.
const MAX_BINARY_BYTES: u64 = 256 << 20;
/// The line a user adds to pin the launcher.
pub const PIN_COMMAND: &str = "bundle add kamal-launcher --group development --require false";

/// This build's version as RubyGems writes it: Cargo's `1.2.0-beta.1` is the gem's `1.2.0.beta.1`.
pub fn own_version() -> String {
    env!("CARGO_PKG_VERSION").replace('-', ".")
}

/// The pinned version and its locked variants.
#[derive(Debug)]
pub struct Pin<'l, 't> {
    /// The locked version, as written in the lockfile.
    pub version: String,
    /// Every locked platform variant of that version (all from one GEM source).
    pub variants: Vec<&'l Spec<'t>>,
}

/// The kamal-launcher version the lockfile pins from a gem server, if it pins one.
pub fn pin<'l, 't>(lock: &'l Lockfile<'t>) -> Option<Pin<'l, 't>> {
    let first = lock
        .specs_named(GEM)
        .find(|s| matches!(lock.sources[s.source].kind, SourceKind::Gem { .. }))?;
    let variants = lock
        .specs_named(GEM)
        .filter(|s| s.source == first.source && s.version.as_str() == first.version.as_str())
        .collect();
    Some(Pin {
        version: first.version.to_string(),
        variants,
    })
}

/// The platform gems of the launcher that run on this machine, best first; the same names, in the same order,
/// as `kl_platforms` in the shim (`src/platform.sh`). Empty where none is published.
pub fn machine_platforms() -> Vec<&'static str> {
    let musl = platform::machine_platform().version.as_deref() == Some("musl");
    match (std::env::consts::OS, std::env::consts::ARCH, musl) {
        ("linux", "x86_64", false) => vec!["x86_64-linux-gnu", "x86_64-linux"],
        ("linux", "x86_64", true) => vec!["x86_64-linux-musl"],
        ("linux", "aarch64", false) => vec!["aarch64-linux-gnu", "aarch64-linux"],
        ("linux", "aarch64", true) => vec!["aarch64-linux-musl"],
        ("macos", "aarch64", _) => vec!["arm64-darwin"],
        ("macos", "x86_64", _) => vec!["x86_64-darwin"],
        _ => Vec::new(),
    }
}

/// What a launcher should do about the lockfile's pin.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Run as this binary: nothing pinned, the pin is this version, or `KAMAL_LAUNCHER_BIN` chose the binary.
    Stay,
    /// A handover already happened and still landed on another version: run, but say so.
    StayMismatched {
        /// The version the lockfile pins.
        pinned: String,
    },
    /// Hand over to the pinned version.
    HandOver {
        /// The version the lockfile pins.
        pinned: String,
    },
}

/// Decides from the pin and the environment; costs no I/O, so the warm path keeps its cost.
pub fn decide(pin: Option<&Pin<'_, '_>>, env: &dyn Fn(&str) -> Option<OsString>) -> Decision {
    let Some(pin) = pin else {
        return Decision::Stay;
    };
    if pin.version == own_version() || env(BIN_VAR).is_some_and(|v| !v.is_empty()) {
        return Decision::Stay;
    }
    if env(GUARD).is_some() {
        return Decision::StayMismatched {
            pinned: pin.version.clone(),
        };
    }
    Decision::HandOver {
        pinned: pin.version.clone(),
    }
}

/// Where the pinned binary comes from: the lockfile's pin, Bundler's settings for its source, and the cache.
pub struct Pinned<'a, 'l, 't> {
    /// The cache that holds (or will hold) the binary.
    pub cache: &'a Cache,
    /// Mirrors, credentials, certificates for the pin's source.
    pub settings: &'a BundlerSettings,
    /// The lockfile that pins it.
    pub lock: &'a Lockfile<'t>,
    /// The pin.
    pub pin: &'a Pin<'l, 't>,
}

impl Pinned<'_, '_, '_> {
    /// The cached binary of the pinned version, if the cache holds it whole; else why the one there is not.
    fn cached(&self) -> std::result::Result<PathBuf, Option<String>> {
        let binary = self.cache.launcher(&self.pin.version);
        if !is_executable(&binary) {
            return Err(None);
        }
        check_record(&binary).map(|()| binary).map_err(Some)
    }

    /// Makes sure the cache holds the pinned binary, fetching and verifying its gem when it does not; returns it.
    pub fn ensure(&self, opts: FetchOptions, ui: &Ui) -> Result<PathBuf> {
        let Pinned {
            cache,
            settings,
            pin,
            ..
        } = *self;
        let damage = match self.cached() {
            Ok(binary) => return Ok(binary),
            Err(damage) => damage,
        };
        let binary = cache.launcher(&pin.version);
        if let Some(why) = damage {
            ui.warn(&format!(
                "{} is damaged: {why}; fetching it again",
                binary.display()
            ));
        }
        let req = self.choose(opts.offline)?;
        ui.summary(&format!(
            "fetching kamal-launcher {} ({}), pinned in the lockfile",
            pin.version, req.platform
        ));
        let fetched = fetch::fetch_all(cache, settings, &[req], opts, ui, &|_, _| Ok(()))?;
        install_binary(cache, &fetched[0].path, &binary)?;
        Ok(binary)
    }

    /// How this machine would get the pinned binary, for `doctor`: where it is cached, or which gem it would fetch
    /// and what verifies it; else why it cannot.
    pub fn obtainable(&self, offline: bool) -> Result<String> {
        if let Ok(binary) = self.cached() {
            return Ok(format!("cached at {}", binary.display()));
        }
        let pin = self.pin;
        let req = self.choose(offline)?;
        let locked = pin.variants.iter().any(|s| s.platform == req.platform);
        let verified_by = match (locked, req.expected.is_some()) {
            (true, true) => "its SHA-256 is in the lockfile's CHECKSUMS",
            (true, false) => "its SHA-256 will come from the source's compact index",
            (false, _) => "not locked, but the source's compact index lists it with its SHA-256",
        };
        Ok(format!("{}: {verified_by}", req.full_name))
    }

    /// The gem to fetch for this machine: the lockfile's variant, else one the source's compact index lists.
    fn choose(&self, offline: bool) -> Result<GemRequest> {
        let Pinned {
            cache,
            settings,
            lock,
            pin,
        } = *self;
        let platforms = machine_platforms();
        if platforms.is_empty() {
            return Err(Error::Handover(format!(
                "the lockfile pins kamal-launcher {}, but no prebuilt kamal-launcher exists for {} {}",
                pin.version,
                std::env::consts::OS,
                std::env::consts::ARCH
            )));
        }
        let source = pin.variants[0].source;
        let SourceKind::Gem { remotes } = &lock.sources[source].kind else {
            unreachable!("pin() keeps GEM sources only")
        };
        let request = |platform: &str| GemRequest {
            name: GEM.to_string(),
            version: pin.version.clone(),
            platform: platform.to_string(),
            full_name: format!("{GEM}-{}-{platform}", pin.version),
            remotes: remotes.clone(),
            expected: pin
                .variants
                .iter()
                .find(|s| s.platform == platform)
                .and_then(|s| lock.checksum(s.name, &s.version, s.platform))
                .copied(),
        };
        // The lockfile's variant for this machine; else the source's compact index names one (and its digest).
        let locked = platforms
            .iter()
            .find(|p| pin.variants.iter().any(|s| s.platform == **p));
        Ok(match locked {
            Some(p) => request(p),
            None => {
                let candidates: Vec<GemRequest> = platforms.iter().map(|p| request(p)).collect();
                let sums = fetch::known_checksums(cache, settings, &candidates, offline);
                // An index that could not be read says nothing about which variants exist: that is the error.
                if let Some(fetch::Unknown::Unreachable(why)) = sums
                    .iter()
                    .find_map(|s| s.as_ref().err())
                    .filter(|_| sums.iter().all(Result::is_err))
                {
                    return Err(Error::Handover(format!(
                        "the lockfile pins kamal-launcher {} but locks no variant for this machine ({}), and the \
                         source's index, which would name one, could not be read: {why}",
                        pin.version,
                        platforms.join(", "),
                    )));
                }
                let Some((mut req, sum)) = candidates
                    .into_iter()
                    .zip(sums)
                    .find_map(|(req, sum)| Some((req, sum.ok()?)))
                else {
                    return Err(Error::Handover(format!(
                        "the lockfile pins kamal-launcher {} but locks no variant for this machine ({}), and {}'s \
                     index lists none\n  add this platform to the lockfile (`bundle lock --add-platform {}`), \
                     or set {BIN_VAR} to a kamal-launcher to use",
                        pin.version,
                        platforms.join(", "),
                        remotes.join(", "),
                        platforms[0]
                    )));
                };
                req.expected = Some(sum);
                req
            }
        })
    }
}

/// The error for a pinned launcher that could not be fetched. A gem server's failure keeps its diagnosis (a source
/// problem is said as one, with its cause); anything else is said as a failed handover.
pub fn not_obtained(lockfile: &Path, pinned: &str, e: Error) -> Error {
    let fix = format!("set {BIN_VAR}=$(command -v kamal-launcher) to run this one instead");
    match e {
        Error::Server {
            scope,
            message,
            hint,
        } => Error::Server {
            scope,
            message: format!(
                "could not fetch kamal-launcher {pinned}, which {} pins (this is {}): {message}",
                lockfile.display(),
                own_version()
            ),
            hint: format!("{hint}; or {fix}"),
        },
        e => Error::Handover(format!(
            "{} pins kamal-launcher {pinned} (this is {}), and it could not be obtained: {e}\n  run again with \
             network access, or {fix}",
            lockfile.display(),
            own_version(),
        )),
    }
}

/// Copies the binary out of a verified platform gem into place: a temporary file, flushed to disk, renamed in (the
/// directory flushed after), then its record, written the same way. A crash at any point leaves either no record
/// (the binary is fetched again) or the record of a binary that is whole.
fn install_binary(cache: &Cache, gem: &Path, dest: &Path) -> Result<()> {
    let tmp = cache.temp_path("launcher")?;
    let result = (|| {
        let mut out = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(Error::io("creating", &tmp))?;
        let mut hashed = Hashing {
            out: &mut out,
            hasher: Sha256::new(),
            len: 0,
        };
        let copied = copy_binary(gem, &mut hashed).map_err(Error::io("reading", gem))?;
        if !copied {
            return Err(Error::Handover(format!(
                "{} holds no {BINARY_IN_GEM}: it is not a kamal-launcher platform gem",
                gem.display()
            )));
        }
        let (len, sha256) = (hashed.len, hashed.hasher.finalize());
        out.set_permissions(fs::Permissions::from_mode(0o755))
            .map_err(Error::io("setting permissions of", &tmp))?;
        out.sync_all().map_err(Error::io("writing", &tmp))?;
        let dir = dest.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(Error::io("creating the cache directory", dir))?;
        // The old record goes first: until the new one is written, the binary counts as not verified.
        let record = record_path(dest);
        match fs::remove_file(&record) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(Error::io("removing", &record)(e));
            }
            _ => {}
        }
        cache::publish(&tmp, dest)?;
        write_record(cache, dest, len, &sha256.into())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Counts and hashes what is written through it.
struct Hashing<'a> {
    out: &'a mut File,
    hasher: Sha256,
    len: u64,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `<binary>.ok`: the record of a cached launcher, one line `SIZE SHA256`. The shim (`src/shim.sh`,
/// `check_launcher`) reads and writes the same file.
fn record_path(binary: &Path) -> PathBuf {
    cache::beside(binary, ".ok")
}

fn record_text(len: u64, sha256: &[u8; 32]) -> String {
    format!("{len} {}\n", hex::encode(sha256))
}

/// Writes the record of `binary` durably (a temporary file, flushed, renamed in, the directory flushed).
fn write_record(cache: &Cache, binary: &Path, len: u64, sha256: &[u8; 32]) -> Result<()> {
    cache::write_atomic(
        cache,
        &record_path(binary),
        record_text(len, sha256).as_bytes(),
    )
}

/// Whether `binary` is what its record says was verified: the size, as the shim checks it on every start, and the
/// SHA-256 as well when the binary is newer than the record (what the shim leaves to its next fetch). A handover
/// happens once per run at most, so hashing then costs little.
fn check_record(binary: &Path) -> std::result::Result<(), String> {
    let record = record_path(binary);
    let Ok(text) = fs::read_to_string(&record) else {
        return Err(
            "nothing records that it was verified (a run interrupted, or a crash before it reached the disk)"
                .to_string(),
        );
    };
    let parsed = text.strip_suffix('\n').and_then(|line| {
        let (len, sha) = line.split_once(' ')?;
        let sha: [u8; 32] = hex::decode(sha).ok()?.try_into().ok()?;
        Some((len.parse::<u64>().ok()?, sha))
    });
    let Some((len, sha256)) = parsed else {
        return Err(format!("its record {} is damaged", record.display()));
    };
    let meta = fs::metadata(binary).map_err(|e| e.to_string())?;
    if meta.len() != len {
        return Err(format!(
            "it is {} bytes, but {len} were verified",
            meta.len()
        ));
    }
    let newer = match (
        meta.modified(),
        fs::metadata(&record).and_then(|m| m.modified()),
    ) {
        (Ok(binary), Ok(record)) => binary > record,
        _ => true,
    };
    // The full digest only when the binary changed after its record: the size check is the cheap one.
    if newer && crate::record::sha256_file(binary).map_err(|e| e.to_string())? != sha256 {
        return Err("it changed after it was verified".to_string());
    }
    Ok(())
}

/// Streams `libexec/kamal-launcher` from the gem's `data.tar.gz` into `out`; false when there is none.
fn copy_binary(gem: &Path, out: &mut impl Write) -> io::Result<bool> {
    let mut outer = tar::Archive::new(File::open(gem)?);
    for entry in outer.entries()? {
        let entry = entry?;
        if entry.path()?.as_os_str() != "data.tar.gz" {
            continue;
        }
        let mut data = tar::Archive::new(GzDecoder::new(entry));
        for file in data.entries()? {
            let file = file?;
            if file.path()?.as_os_str() == BINARY_IN_GEM && file.header().entry_type().is_file() {
                let copied = io::copy(&mut file.take(MAX_BINARY_BYTES), out)?;
                return Ok(copied > 0);
            }
        }
        return Ok(false);
    }
    Ok(false)
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Replaces this process with `binary`, given this process's own arguments (its name included, so that
/// `kamal` through a symlink stays `kamal`) and the guard; returns only if the exec failed.
pub fn hand_over(binary: &Path) -> Error {
    let mut args = std::env::args_os();
    let mut cmd = Command::new(binary);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    let source = cmd.args(args).env(GUARD, own_version()).exec();
    Error::Io {
        action: "running the pinned kamal-launcher",
        path: binary.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = "GEM\n  remote: https://rubygems.org/\n  specs:\n    kamal (2.0.0)\n    kamal-launcher (9.9.9-arm64-darwin)\n    kamal-launcher (9.9.9-x86_64-linux-gnu)\n\nPLATFORMS\n  ruby\n\nDEPENDENCIES\n  kamal\n  kamal-launcher\n";

    #[test]
    fn the_pin_and_its_variants() {
        let lock = Lockfile::parse(LOCK).unwrap();
        let pin = pin(&lock).unwrap();
        assert_eq!(pin.version, "9.9.9");
        let platforms: Vec<_> = pin.variants.iter().map(|s| s.platform).collect();
        assert_eq!(platforms, ["arm64-darwin", "x86_64-linux-gnu"]);
        let none =
            Lockfile::parse("GEM\n  remote: https://rubygems.org/\n  specs:\n    kamal (2.0.0)\n")
                .unwrap();
        assert!(super::pin(&none).is_none());
    }

    #[test]
    fn hands_over_once_and_never_against_the_user() {
        let lock = Lockfile::parse(LOCK).unwrap();
        let pin = pin(&lock).unwrap();
        let none = |_: &str| None;
        assert_eq!(
            decide(Some(&pin), &none),
            Decision::HandOver {
                pinned: "9.9.9".into()
            }
        );
        let guarded = |k: &str| (k == GUARD).then(|| OsString::from("0.1.0"));
        assert_eq!(
            decide(Some(&pin), &guarded),
            Decision::StayMismatched {
                pinned: "9.9.9".into()
            }
        );
        let chosen = |k: &str| (k == BIN_VAR).then(|| OsString::from("/opt/kl"));
        assert_eq!(decide(Some(&pin), &chosen), Decision::Stay);
        assert_eq!(decide(None, &none), Decision::Stay);
        let own = own_version();
        let same = LOCK.replace("9.9.9", &own);
        let lock = Lockfile::parse(&same).unwrap();
        assert_eq!(decide(super::pin(&lock).as_ref(), &none), Decision::Stay);
    }

    #[test]
    fn rust_and_the_shim_name_the_same_platform_gems() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/src/platform.sh");
        let out = Command::new("sh")
            .arg("-c")
            .arg(". \"$0\" && kl_platforms")
            .arg(script)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let shim: Vec<&str> = std::str::from_utf8(&out.stdout)
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(shim, machine_platforms());
    }

    #[test]
    fn this_machine_has_a_platform_gem() {
        // The test machines (Linux and macOS, x86_64 and aarch64) all have one.
        let platforms = machine_platforms();
        assert!(!platforms.is_empty());
        assert!(platforms[0].contains(if cfg!(target_os = "macos") {
            "darwin"
        } else {
            "linux"
        }));
    }
}
