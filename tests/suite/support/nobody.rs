//! Running the launcher as another user (uid/gid 65534, `nobody` on Debian) with `setpriv`, for the tests of
//! caches that user may read but not write.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Launcher, Output};

/// The uid/gid the tests run the launcher as.
pub const NOBODY: u32 = 65534;

/// Adds permission `bits` to `path`.
pub fn add_mode(path: &Path, bits: u32) {
    let mode = fs::metadata(path).expect("stat").permissions().mode();
    fs::set_permissions(path, fs::Permissions::from_mode(mode | bits)).expect("chmod");
}

/// Whether every directory above `file` lets others in and `file` lets them read and execute it.
fn usable_by_others(file: &Path) -> bool {
    let mode = |p: &Path| fs::metadata(p).map(|m| m.permissions().mode()).unwrap_or(0);
    mode(file) & 0o005 == 0o005 && file.ancestors().skip(1).all(|d| mode(d) & 0o001 != 0)
}

/// The launcher binary at a path uid 65534 can execute: where cargo put it when every parent directory
/// allows that, else a copy in a world-readable temporary directory (kept alive by the returned guard).
pub fn launcher_for_others() -> (PathBuf, Option<tempfile::TempDir>) {
    let built = Path::new(env!("CARGO_BIN_EXE_kamal-launcher"))
        .canonicalize()
        .expect("canonicalize the launcher binary");
    if usable_by_others(&built) {
        return (built, None);
    }
    let dir = tempfile::Builder::new()
        .prefix("launcher-bin-")
        .tempdir()
        .expect("tempdir");
    add_mode(dir.path(), 0o755);
    let copy = dir.path().join("kamal-launcher");
    fs::copy(&built, &copy).expect("copy launcher");
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod launcher");
    assert!(usable_by_others(&copy), "{} is not usable", copy.display());
    (copy, Some(dir))
}

/// `program args...` as uid/gid 65534 with no supplementary groups, in the launcher's working directory
/// and environment, with HOME replaced.
pub fn as_nobody(launcher: &Launcher, home: &Path, program: &Path, args: &[&str]) -> Output {
    let base = launcher.command();
    let mut cmd = Command::new("setpriv");
    cmd.env_clear()
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg(program)
        .args(args);
    if let Some(dir) = base.get_current_dir() {
        cmd.current_dir(dir);
    }
    for (key, value) in base.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    cmd.env("HOME", home);
    super::spawn(cmd).wait()
}

/// Panics unless this runs as root, which changing owners and running as [`NOBODY`] with setpriv needs.
pub fn require_root() {
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata("/proc/self")
            .expect("stat /proc/self")
            .uid(),
        0,
        "this test changes owners and runs the shim as uid {NOBODY} with setpriv, which needs root"
    );
}

/// The command, run as uid/gid 65534 with no supplementary groups.
pub fn command_as_nobody(base: &std::process::Command) -> std::process::Command {
    let mut cmd = std::process::Command::new("setpriv");
    cmd.env_clear()
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg(base.get_program())
        .args(base.get_args());
    for (key, value) in base.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    if let Some(dir) = base.get_current_dir() {
        cmd.current_dir(dir);
    }
    cmd
}
