//! Whether the cache is this user's alone. Everything the launcher runs comes from the cache (the environment's
//! `boot.rb`, the installed gems, compiled bytecode, a pinned launcher), so a cache another user can change lets
//! that user run code as whoever runs the launcher next. Like ssh's `StrictModes` and Go's module cache, the
//! launcher refuses a cache where that is possible, before it reads anything from it.
//!
//! The rules (the `bin/kamal` shim applies the same ones in sh): the cache directory's real path (symlinks
//! resolved) and each of its ancestors, the cache directory, `v2/` and v2's top-level directories are each
//! trusted when owned by this user (the effective uid) or root, and writable by no one else: neither
//! group- nor world-writable, except a world-writable directory with the sticky bit (a /tmp-style 1777 directory:
//! others may add entries but cannot rename or remove ours) and a group-writable one whose group is this user's
//! private group (group name = user name, gid = the effective gid: Ubuntu's umask 002 convention). Deeper
//! directories need no check: only whoever may write their parent can create or replace them.
//!
//! A cache where nothing may run is refused too: on a filesystem mounted `noexec` (a common hardening of /tmp and
//! CI mounts) native extensions fail to build and, once installed, fail to load ([`check_exec`],
//! [`check_mounted_exec`]).
//!
//! This module uses nothing else in the crate, so that `error.rs` can carry its error.

use std::fs::{self, DirBuilder, Metadata};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Mode of the directories the launcher creates here: never group- or world-writable, whatever the umask.
const DIR_MODE: u32 = 0o755;
const STICKY: u32 = 0o1000;
const GROUP_WRITE: u32 = 0o020;
const WORLD_WRITE: u32 = 0o002;

/// Why another user could change a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Owned by a user who is neither this one nor root.
    Owner,
    /// Writable by a group that is not this user's private group.
    GroupWritable,
    /// Writable by everyone, without the sticky bit.
    WorldWritable,
}

/// Why the cache cannot be used: another user could change it, or nothing in it may run.
#[derive(Debug)]
pub enum Distrust {
    /// The cache is on a filesystem mounted `noexec`: native extensions built there cannot be loaded.
    NoExec {
        /// The cache directory.
        path: PathBuf,
    },
    /// A directory on the cache's path that another user could change.
    Untrusted {
        /// The directory.
        path: PathBuf,
        /// Whether it is the cache directory or in it (else an ancestor).
        in_cache: bool,
        /// Its owner's uid.
        uid: u32,
        /// Its group's gid.
        gid: u32,
        /// Its permission bits (with the sticky bit).
        mode: u32,
        /// What is wrong with it.
        reason: Reason,
    },
    /// A directory on the cache's path whose owner and mode could not be read.
    Unreadable {
        /// The directory.
        path: PathBuf,
        /// What reading it returned.
        source: io::Error,
    },
}

impl std::error::Error for Distrust {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Distrust::Unreadable { source, .. } => Some(source),
            Distrust::Untrusted { .. } | Distrust::NoExec { .. } => None,
        }
    }
}

impl std::fmt::Display for Distrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Distrust::NoExec { path } => write!(
                f,
                "refusing to use the cache: {} is on a filesystem mounted noexec, where the native extensions kamal \
                 needs (ed25519, bcrypt_pbkdf) can be neither built nor loaded",
                path.display()
            ),
            Distrust::Unreadable { path, source } => write!(
                f,
                "refusing to use the cache: cannot read the owner and permissions of {}: {source}",
                path.display()
            ),
            Distrust::Untrusted {
                path,
                uid,
                gid,
                mode,
                reason,
                ..
            } => {
                let what = match reason {
                    Reason::Owner => format!("is not owned by you (uid {}) or root", euid()),
                    Reason::GroupWritable => format!(
                        "is writable by the group {}, which is not yours alone",
                        group_name(*gid)
                    ),
                    Reason::WorldWritable => {
                        "is writable by every user (and has no sticky bit)".to_string()
                    }
                };
                write!(
                    f,
                    "refusing to use the cache: {} (owner {}, group {}, mode {:04o}) {what}: another user \
                     could change what runs as you",
                    path.display(),
                    user_name(*uid),
                    group_name(*gid),
                    mode & 0o7777
                )
            }
        }
    }
}

impl Distrust {
    /// What to do about it.
    pub fn fix(&self) -> String {
        let elsewhere = if crate::invocation::flags_are_ours() {
            "set KAMAL_LAUNCHER_CACHE_DIR (or --cache-dir) to a directory of your own"
        } else {
            "set KAMAL_LAUNCHER_CACHE_DIR to a directory of your own"
        };
        match self {
            Distrust::NoExec { .. } => format!(
                "set KAMAL_LAUNCHER_CACHE_DIR{} to a directory on a filesystem that allows executables, such as one \
                 in your home directory (hardened /tmp and CI scratch mounts often do not)",
                if crate::invocation::flags_are_ours() {
                    " (or --cache-dir)"
                } else {
                    ""
                }
            ),
            Distrust::Unreadable { path, .. } => format!(
                "check the permissions of {}, or {elsewhere}",
                path.display()
            ),
            Distrust::Untrusted {
                path,
                in_cache: false,
                reason: Reason::Owner,
                ..
            } => format!("{elsewhere}, outside {}", path.display()),
            Distrust::Untrusted {
                path,
                in_cache: false,
                ..
            } => format!(
                "{elsewhere}, outside {p} (or make it writable by its owner alone: chmod go-w {p}; a directory \
                 every user shares needs the sticky bit: chmod 1777 {p})",
                p = path.display()
            ),
            Distrust::Untrusted {
                path,
                reason: Reason::Owner,
                ..
            } => format!(
                "{elsewhere}, or, if its contents are yours, take it over: sudo chown -R {} {}",
                nix::unistd::User::from_uid(euid().into())
                    .ok()
                    .flatten()
                    .map_or_else(|| euid().to_string(), |u| u.name),
                path.display()
            ),
            Distrust::Untrusted { path, .. } => format!(
                "{elsewhere}, or make it writable by you alone: chmod go-w {}",
                path.display()
            ),
        }
    }
}

/// Checks the cache in `dir`, laid out under `dir/<layout>`, whose `top_level` directories the launcher uses
/// (those that exist: whoever may create one may write its parent, which is checked). The cache directory and
/// the layout root are created with mode 0755 when missing, so that the umask cannot leave them open to others;
/// a failure to create them is left to the code that writes there to report (a read-only cache still runs what
/// it holds). A handful of `stat` calls when everything exists: this runs before every warm start.
pub fn check(dir: &Path, layout: &str, top_level: &[&str]) -> Result<(), Distrust> {
    let me = Me::current();
    let mut created = false;
    let real = loop {
        let (real, exists) = real_path(dir)?;
        let upper = if exists {
            real.parent()
        } else {
            Some(real.as_path())
        };
        for ancestor in upper
            .into_iter()
            .flat_map(Path::ancestors)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            check_one(ancestor, false, &me)?;
        }
        if exists {
            break real;
        }
        // Created here rather than by whichever write comes first, so that the umask cannot leave it open to
        // others; then checked again, since someone may have made it (or a parent) in between.
        if created
            || DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)
                .is_err()
        {
            return Ok(());
        }
        created = true;
    };
    check_one(&real, true, &me)?;
    let root = real.join(layout);
    if !check_created(&root, &me)? {
        return Ok(());
    }
    for name in top_level {
        if let Some(meta) = stat(&root.join(name))? {
            judge(&root.join(name), true, &meta, &me)?;
        }
    }
    Ok(())
}

/// Checks that files in the cache `dir` may run, by asking the kernel about `probe`, a path in the cache's private
/// temporary area (same filesystem): a tiny file is written there with mode 0755 and `access(X_OK)` asked of it,
/// which a `noexec` mount answers with `EACCES` on Linux and macOS alike (even for root), the same refusal that
/// `mmap(PROT_EXEC)` of a native extension meets. Writes a file: for the cold path, once, before anything is
/// built. A probe that cannot be written says nothing (whatever writes there next reports why).
pub fn check_exec(probe: &Path, dir: &Path) -> Result<(), Distrust> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    // A probe left by a killed run under a reused name must not make this one say nothing.
    let _ = fs::remove_file(probe);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(probe)
        // Set again after creating: the umask applies to the mode given at creation, and a probe left without
        // its execute bits would be refused on any filesystem.
        .and_then(|file| file.set_permissions(fs::Permissions::from_mode(0o755)));
    if written.is_err() {
        let _ = fs::remove_file(probe);
        return Ok(());
    }
    let refused = nix::unistd::access(probe, nix::unistd::AccessFlags::X_OK)
        == Err(nix::errno::Errno::EACCES);
    let _ = fs::remove_file(probe);
    if refused {
        return Err(Distrust::NoExec {
            path: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// The warm path's check that `path` (an installed environment) is not on a `noexec` mount: its mount flags, one
/// `statvfs`/`statfs` call that writes nothing (a read-only restored cache must still run) and costs what one of
/// [`check`]'s `stat` calls does. Creating and probing a file as [`check_exec`] does is too much for every start;
/// and no file the warm path already knows is executable. Where the mount flags cannot be read this way, only the
/// cold path's probe guards. `dir` is the cache directory, for the message.
pub fn check_mounted_exec(path: &Path, dir: &Path) -> Result<(), Distrust> {
    if mounted_noexec(path) {
        return Err(Distrust::NoExec {
            path: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// Whether `path`'s filesystem is mounted `noexec` (`false` when that cannot be told).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn mounted_noexec(path: &Path) -> bool {
    use nix::sys::statvfs::{FsFlags, statvfs};
    statvfs(path).is_ok_and(|st| st.flags().contains(FsFlags::ST_NOEXEC))
}

/// Whether `path`'s filesystem is mounted `noexec` (`false` when that cannot be told). macOS and the BSDs report
/// it in `statfs`'s flags, not `statvfs`'s.
#[cfg(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "openbsd"
))]
fn mounted_noexec(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: all-zero bytes are a valid `statfs`; it is only read after the call filled it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid out-pointer.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let noexec = u64::from(st.f_flags) & (libc::MNT_NOEXEC as u64) != 0;
    rc == 0 && noexec
}

/// Elsewhere the mount flags are not read: the cold path's probe ([`check_exec`]) still guards.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "openbsd"
)))]
fn mounted_noexec(_path: &Path) -> bool {
    false
}

/// Checks `path`, creating it (mode 0755) when missing; `false` when it is still missing.
fn check_created(path: &Path, me: &Me) -> Result<bool, Distrust> {
    let meta = match stat(path)? {
        Some(meta) => meta,
        None => {
            // A failure is someone else's to report; a directory made meanwhile by another is judged.
            let _ = DirBuilder::new().mode(DIR_MODE).create(path);
            match stat(path)? {
                Some(meta) => meta,
                None => return Ok(false),
            }
        }
    };
    judge(path, true, &meta, me)?;
    Ok(true)
}

/// The real path of `dir` and `true`, or, when it does not exist, that of its nearest existing ancestor and
/// `false`.
fn real_path(dir: &Path) -> Result<(PathBuf, bool), Distrust> {
    let mut at = dir;
    loop {
        let unreadable = |source| Distrust::Unreadable {
            path: at.to_path_buf(),
            source,
        };
        match fs::canonicalize(at) {
            Ok(real) => return Ok((real, at == dir)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                at = match at.parent() {
                    Some(p) if p.as_os_str().is_empty() => Path::new("."),
                    Some(p) => p,
                    None => return Err(unreadable(e)),
                };
            }
            Err(e) => return Err(unreadable(e)),
        }
    }
}

/// The metadata of `path` (following a symlink), `None` when it does not exist (a file where a directory on its
/// way belongs is reported by whatever would write there).
fn stat(path: &Path) -> Result<Option<Metadata>, Distrust> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(source) => Err(Distrust::Unreadable {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn check_one(path: &Path, in_cache: bool, me: &Me) -> Result<(), Distrust> {
    match stat(path)? {
        Some(meta) => judge(path, in_cache, &meta, me),
        None => Err(Distrust::Unreadable {
            path: path.to_path_buf(),
            source: io::ErrorKind::NotFound.into(),
        }),
    }
}

/// The rules, applied to one directory.
fn judge(path: &Path, in_cache: bool, meta: &Metadata, me: &Me) -> Result<(), Distrust> {
    let (uid, gid, mode) = (meta.uid(), meta.gid(), meta.mode());
    let reason = if uid != me.uid && uid != 0 {
        Some(Reason::Owner)
    } else if mode & WORLD_WRITE != 0 {
        (mode & STICKY == 0).then_some(Reason::WorldWritable)
    } else if mode & GROUP_WRITE != 0 {
        (!me.private_group(gid)).then_some(Reason::GroupWritable)
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Distrust::Untrusted {
            path: path.to_path_buf(),
            in_cache,
            uid,
            gid,
            mode,
            reason,
        }),
    }
}

/// This process's effective identity.
struct Me {
    uid: u32,
    gid: u32,
    /// Whether `gid` is this user's private group: looked up (the user and group databases, maybe over the
    /// network) at most once, and only for a group-writable directory.
    private: std::cell::OnceCell<bool>,
}

impl Me {
    fn current() -> Me {
        Me::new(euid(), nix::unistd::getegid().as_raw())
    }

    fn new(uid: u32, gid: u32) -> Me {
        Me {
            uid,
            gid,
            private: std::cell::OnceCell::new(),
        }
    }

    fn private_group(&self, gid: u32) -> bool {
        gid == self.gid
            && *self.private.get_or_init(|| {
                let user = nix::unistd::User::from_uid(self.uid.into()).ok().flatten();
                let group = nix::unistd::Group::from_gid(gid.into()).ok().flatten();
                matches!((user, group), (Some(u), Some(g)) if u.name == g.name)
            })
    }
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// `name (uid N)`, or `uid N` for a uid without a name.
fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(uid.into()).ok().flatten() {
        Some(user) => format!("{} (uid {uid})", user.name),
        None => format!("uid {uid}"),
    }
}

/// `name (gid N)`, or `gid N` for a gid without a name.
fn group_name(gid: u32) -> String {
    match nix::unistd::Group::from_gid(gid.into()).ok().flatten() {
        Some(group) => format!("{} (gid {gid})", group.name),
        None => format!("gid {gid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn meta_with(dir: &Path, mode: u32) -> Metadata {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode)).unwrap();
        fs::metadata(dir).unwrap()
    }

    #[test]
    fn the_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let me = Me::current();
        let other_group = Me::new(me.uid, me.gid.wrapping_add(1));
        for (mode, ok) in [
            (0o755, true),
            (0o700, true),
            (0o1777, true),
            (0o777, false),
            (0o757, false),
            (0o1775, false),
            (0o775, false),
        ] {
            let meta = meta_with(dir, mode);
            let judged = judge(dir, true, &meta, &other_group);
            assert_eq!(judged.is_ok(), ok, "{mode:o}: {judged:?}");
        }
        let meta = meta_with(dir, 0o775);
        let err = judge(dir, true, &meta, &other_group).unwrap_err();
        assert!(matches!(
            err,
            Distrust::Untrusted {
                reason: Reason::GroupWritable,
                ..
            }
        ));
        // Root's group is root's own: a group-writable directory of root's group is root's alone.
        if me.uid == 0 {
            std::os::unix::fs::chown(dir, Some(0), Some(0)).unwrap();
            assert!(judge(dir, true, &meta_with(dir, 0o775), &me).is_ok());
        }
        // Owned by someone else: as root, chown it away; as anyone else, judge as a stranger.
        let meta = meta_with(dir, 0o755);
        let judged = if me.uid == 0 {
            std::os::unix::fs::chown(dir, Some(65534), None).unwrap();
            judge(dir, true, &fs::metadata(dir).unwrap(), &me)
        } else {
            let stranger = Me::new(me.uid.wrapping_add(12345), me.gid);
            judge(dir, true, &meta, &stranger)
        };
        let err = judged.unwrap_err();
        assert!(
            matches!(
                err,
                Distrust::Untrusted {
                    reason: Reason::Owner,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("another user could change what runs as you"),
            "{err}"
        );
        assert!(
            err.fix().contains("KAMAL_LAUNCHER_CACHE_DIR"),
            "{}",
            err.fix()
        );
        assert!(err.fix().contains("chown -R"), "{}", err.fix());
    }

    #[test]
    fn creates_the_layout_never_writable_by_others() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/cache");
        check(&dir, "v2", &["envs", "store"]).unwrap();
        assert!(!dir.join("v2/envs").exists());
        fs::create_dir(dir.join("v2/envs")).unwrap();
        for rel in ["a", "a/cache", "a/cache/v2"] {
            let mode = fs::metadata(tmp.path().join(rel)).unwrap().mode();
            assert_eq!(mode & 0o022, 0, "{rel}: {mode:o}");
        }
        fs::set_permissions(dir.join("v2/envs"), fs::Permissions::from_mode(0o777)).unwrap();
        let err = check(&dir, "v2", &["envs", "store"]).unwrap_err();
        assert!(err.to_string().contains("v2/envs"), "{err}");
    }
}
