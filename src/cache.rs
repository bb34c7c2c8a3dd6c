//! The cache: its layout, its keys, and the primitives (locks, temporary files, atomic renames) that keep it
//! consistent when many launchers share it.
//!
//! Layout under `<cache dir>/v2/`:
//! - `downloads/<sha256>.gem`: verified gem files, content-addressed.
//! - `store/<abi>/<full name>-<sha256 prefix>/`: one gem installed by RubyGems into its own GEM_HOME, shared by
//!   every environment that uses it.
//! - `envs/<key>/`: an environment (`env.rs`): `manifest` (the closure in activation order), `boot.rb`,
//!   `last-used`; present only when complete.
//! - `git/<remote key>/<revision>/`: a GIT source at one revision: `checkout/` and the `.gem`s built from it.
//! - `launchers/<version>/kamal-launcher`: the launcher binary a lockfile pins, renamed into place verified.
//! - `rubies/<identity>.txt`: what a Ruby interpreter reported about itself, so the warm path need not ask.
//! - `tmp/`, `locks/`, `logs/`: work in progress, lock files, kept build logs.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Version of the on-disk layout; bumping it gives a fresh tree beside the old one.
pub const LAYOUT: &str = "v2";

/// The directories directly under the layout root, which `trust::check` checks before anything in them is used.
pub const TOP_LEVEL: &[&str] = &[
    "downloads",
    "store",
    "envs",
    "git",
    "index",
    "launchers",
    "rubies",
    "bytecode",
    "tmp",
    "locks",
    "logs",
];

/// How long a bytecode entry's temporary file must have been left untouched before [`Cache::sweep`] takes it for
/// a dead writer's.
pub const BYTECODE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// The file whose presence says an entry is complete: an installed gem's or an environment's record
/// (`record.rs`), a pinned launcher's (`pinned.rs`). [`remove_entry`] removes it first.
pub const RECORD: &str = ".kamal-launcher-record";

/// A cache rooted at a user-visible directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    root: PathBuf,
}

/// The default cache directory: `$XDG_CACHE_HOME/kamal-launcher`, else `~/.cache/kamal-launcher`, on macOS too
/// (as uv does), so that docs, CI recipes and the `bin/kamal` shim (which computes it in sh) name one place.
/// `None` without a usable `HOME`: falling back to the password database's home would put the cache somewhere
/// the caller never named (a service account's, `/root`, `/nonexistent`).
pub fn default_dir() -> Option<PathBuf> {
    Some(xdg_dir("XDG_CACHE_HOME", ".cache")?.join("kamal-launcher"))
}

/// An XDG base directory: the variable when it holds an absolute path (the spec ignores relative ones), else
/// `$HOME/<fallback>`.
pub fn xdg_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    let absolute = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    absolute(var).or_else(|| Some(absolute("HOME")?.join(fallback)))
}

impl Cache {
    /// A cache in `dir`; nothing is created until something is written.
    pub fn new(dir: PathBuf) -> Cache {
        let root = dir.join(LAYOUT);
        Cache { dir, root }
    }

    /// The directory a CI system should save and restore.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a verified `.gem` with this digest lives.
    pub fn download(&self, sha256: &[u8; 32]) -> PathBuf {
        self.root
            .join("downloads")
            .join(format!("{}.gem", hex::encode(sha256)))
    }

    /// Where one installed gem lives for one Ruby ABI.
    pub fn unit(&self, abi: &str, full_name: &str, sha256: &[u8; 32]) -> PathBuf {
        self.root
            .join("store")
            .join(abi)
            .join(format!("{full_name}-{}", &hex::encode(sha256)[..16]))
    }

    /// Where one revision of a git remote is checked out and its gems are built.
    pub fn git(&self, remote_key: &str, revision: &str) -> PathBuf {
        self.root.join("git").join(remote_key).join(revision)
    }

    /// The directory of the environment with this key.
    pub fn env(&self, key: &str) -> PathBuf {
        self.root.join("envs").join(key)
    }

    /// Where a Ruby's probe result is remembered.
    pub fn ruby_probe(&self, identity: &str) -> PathBuf {
        self.root.join("rubies").join(format!("{identity}.txt"))
    }

    /// Where compact-index info files of one remote are kept.
    pub fn index(&self, remote_key: &str) -> PathBuf {
        self.root.join("index").join(remote_key)
    }

    /// Where the kamal-launcher binary of one version lives (the `bin/kamal` shim computes the same path).
    pub fn launcher(&self, version: &str) -> PathBuf {
        self.root
            .join("launchers")
            .join(version)
            .join("kamal-launcher")
    }

    /// Where kept build logs go.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// A fresh, unique path in this process's private temporary area (same filesystem as the cache, so
    /// renames into place are atomic). The area is removed by [`Cache::finish`], on Ctrl-C, or, after a crash,
    /// by the next launcher's [`Cache::sweep`].
    pub fn temp_path(&self, what: &str) -> Result<PathBuf> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let area = self.workspace()?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Ok(area.join(format!("{what}.{n}")))
    }

    fn workspace(&self) -> Result<PathBuf> {
        let tmp = self.root.join("tmp");
        let mut areas = WORKSPACES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ws) = areas.iter().find(|ws| ws.tmp_root == tmp) {
            return Ok(ws.dir.clone());
        }
        fs::create_dir_all(&tmp).map_err(Error::io("creating the cache directory", &tmp))?;
        let name = format!("{}-{}", std::process::id(), unique_suffix());
        let lock_path = tmp.join(format!("{name}.lock"));
        let lock = File::create(&lock_path).map_err(Error::io("creating", &lock_path))?;
        // Held until this process ends: the kernel releases it even on SIGKILL, which is how a sweeper knows
        // the area's owner is gone.
        lock.lock().map_err(Error::io("locking", &lock_path))?;
        // The processes this run starts (installer, builds, git) write into the area too: they hold the lock
        // with us, so the area is swept only once the last of them is gone, even if the launcher is killed first.
        crate::children::share_with_children(&lock);
        let dir = tmp.join(&name);
        fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
        install_interrupt_handler();
        areas.push(Workspace {
            tmp_root: tmp,
            dir: dir.clone(),
            lock_path,
            _lock: lock,
        });
        Ok(dir)
    }

    /// Removes temporary areas whose owners died (killed, crashed, power loss), which live owners hold their
    /// lock on, and the temporary files of bytecode writers long gone. Not for the warm path: it reads
    /// directories.
    pub fn sweep(&self) {
        self.sweep_bytecode();
        let tmp = self.root.join("tmp");
        let Ok(entries) = fs::read_dir(&tmp) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "lock") {
                continue;
            }
            let Ok(file) = File::options().write(true).open(&path) else {
                continue;
            };
            if file.try_lock().is_ok() {
                let _ = fs::remove_dir_all(path.with_extension(""));
                let _ = fs::remove_file(&path);
            }
        }
    }

    /// Removes what `boot.rb` leaves when killed between creating an entry's temporary file (`*.iseq.<hex>.tmp`,
    /// beside the entry) and renaming it: a live writer is done within milliseconds, so one untouched for
    /// [`BYTECODE_TEMP_AGE`] belongs to a dead run. The warm path itself never looks (it must stay fast).
    fn sweep_bytecode(&self) {
        let Some(cutoff) = std::time::SystemTime::now().checked_sub(BYTECODE_TEMP_AGE) else {
            return;
        };
        let Ok(rubies) = fs::read_dir(self.root.join("bytecode")) else {
            return;
        };
        for ruby in rubies.flatten() {
            let Ok(files) = fs::read_dir(ruby.path()) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name();
                let name = name.to_string_lossy();
                if !(name.ends_with(".tmp") && name.contains(".iseq.")) {
                    continue;
                }
                let old = file
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < cutoff);
                if old {
                    let _ = fs::remove_file(file.path());
                }
            }
        }
    }

    /// Removes this process's temporary area; call before exec, which skips destructors.
    pub fn finish(&self) {
        let tmp = self.root.join("tmp");
        finish_workspaces(|ws| ws.tmp_root == tmp);
    }

    /// Takes a shared lock named `name`: many holders at once, none while someone holds it exclusively.
    pub fn lock_shared(&self, name: &str) -> Result<Lock> {
        let (file, path) = self.lock_file(name)?;
        file.lock_shared().map_err(Error::io("locking", &path))?;
        Ok(Lock { _file: file })
    }

    /// Takes an exclusive lock named `name`, blocking until it is free; released on drop or process death.
    pub fn lock(&self, name: &str) -> Result<Lock> {
        let (file, path) = self.lock_file(name)?;
        file.lock().map_err(Error::io("locking", &path))?;
        Ok(Lock { _file: file })
    }

    /// Takes an exclusive lock named `name` if it is free now; `None` if someone else holds it.
    pub fn try_lock(&self, name: &str) -> Result<Option<Lock>> {
        let (file, path) = self.lock_file(name)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io("locking", &path)(e)),
        }
    }

    fn lock_file(&self, name: &str) -> Result<(File, PathBuf)> {
        let dir = self.root.join("locks");
        fs::create_dir_all(&dir).map_err(Error::io("creating the cache directory", &dir))?;
        let path = dir.join(format!("{name}.lock"));
        let opened = open_lock(&path);
        if !opened.as_ref().is_err_and(|_| not_a_lock_file(&path)) {
            return Ok((
                opened.map_err(Error::io("opening the lock file", &path))?,
                path,
            ));
        }
        // Its name is taken by something else (a directory, a symlink, left by a tool or a hand): never a lock
        // anyone holds, since locks are opened without following links. Removed under a lock on the directory,
        // so that two launchers repairing at once never remove the lock file one of them has just created.
        let guard = File::open(&dir).map_err(Error::io("opening", &dir))?;
        guard.lock().map_err(Error::io("locking", &dir))?;
        if not_a_lock_file(&path) {
            let removed = match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => fs::remove_dir_all(&path),
                Ok(_) => fs::remove_file(&path),
                Err(e) => Err(e),
            };
            match removed {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Io {
                        action: "removing what stands where a lock file belongs,",
                        path,
                        source: e,
                    });
                }
                _ => {}
            }
        }
        let file = open_lock(&path).map_err(Error::io("opening the lock file", &path))?;
        Ok((file, path))
    }

    /// The layout root (`<dir>/v2`).
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Opens (creating) a lock file, never through a symlink: one planted in `locks/` must not make the launcher
/// create or lock a file elsewhere. Non-blocking, so that a FIFO in its place fails instead of hanging.
fn open_lock(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(std::io::Error::from_raw_os_error(libc::EISDIR))
    }
}

/// Whether something other than a regular file has the lock file's name.
fn not_a_lock_file(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|meta| !meta.is_file())
}

/// This process's private temporary area.
struct Workspace {
    tmp_root: PathBuf,
    dir: PathBuf,
    lock_path: PathBuf,
    _lock: File,
}

/// One area per cache this process writes to (normally exactly one).
static WORKSPACES: Mutex<Vec<Workspace>> = Mutex::new(Vec::new());

fn finish_workspaces(which: impl Fn(&Workspace) -> bool) {
    if crate::children::interrupted() {
        // The interrupt handler removes the areas once the children are stopped, then exits (130, 143): this
        // thread must neither remove them under a running build nor reach an exit, a message or an exec first.
        loop {
            std::thread::park();
        }
    }
    remove_workspaces(which);
}

/// Removes the temporary areas `which` selects, with their locks.
fn remove_workspaces(which: impl Fn(&Workspace) -> bool) {
    let mut areas = WORKSPACES.lock().unwrap_or_else(|e| e.into_inner());
    areas.retain(|ws| {
        if !which(ws) {
            return true;
        }
        remove_area(&ws.dir);
        let _ = fs::remove_file(&ws.lock_path);
        false
    });
}

/// Removes a temporary area whose files other threads may still be creating (an interrupt stops the children
/// first, not the threads): a removal that meets a new entry is tried again, briefly.
fn remove_area(dir: &Path) {
    for attempt in 1..=5u64 {
        match fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10 * attempt)),
        }
    }
}

/// Removes every temporary area this process made; the CLI calls it on the way out, whatever happened.
pub fn finish_all() {
    finish_workspaces(|_| true);
}

/// Ctrl-C (or TERM, HUP) stops the children this run started, then removes its temporary areas, then exits 130
/// (143, 129).
fn install_interrupt_handler() {
    crate::children::on_interrupt(|| remove_workspaces(|_| true));
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{nanos:08x}")
}

/// Stamps `path`'s modification time with now, without failing: it records last use, which a read-only cache
/// simply does not record.
pub fn touch(path: &Path) {
    let _ = File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
}

/// A held cache lock.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Writes `bytes` to `path` through a temporary file in the cache, so readers see the old file or the new one,
/// and a crash right after never leaves an empty file under the final name (see [`publish`]).
pub fn write_atomic(cache: &Cache, path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(Error::io("creating the cache directory", parent))?;
    let tmp = cache.temp_path("write")?;
    let result = (|| {
        let mut f = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(Error::io("creating", &tmp))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(Error::io("writing", &tmp))?;
        publish(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes a small file that carries its own SHA-256 (a last line `sha256=HEX`), durably: a memo whose damage must
/// be noticed, not believed. [`read_checked`] gives the content back only while it matches.
pub fn write_checked(cache: &Cache, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut sealed = bytes.to_vec();
    // The digest is a line of its own.
    if !sealed.is_empty() && !sealed.ends_with(b"\n") {
        sealed.push(b'\n');
    }
    let digest = hex::encode(Sha256::digest(&sealed));
    sealed.extend_from_slice(format!("sha256={digest}\n").as_bytes());
    write_atomic(cache, path, &sealed)
}

/// The content [`write_checked`] wrote (with a final newline), or `None` when the file is missing, torn or changed.
pub fn read_checked(path: &Path) -> Option<Vec<u8>> {
    let mut bytes = fs::read(path).ok()?;
    let body = bytes.strip_suffix(b"\n")?;
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let digest = body[start..].strip_prefix(b"sha256=")?;
    if digest != hex::encode(Sha256::digest(&body[..start])).as_bytes() {
        return None;
    }
    bytes.truncate(start);
    Some(bytes)
}

/// Renames a complete, flushed file or tree into place, then flushes the directory that gained it. Filesystems
/// such as ext4 may commit a rename before the data it names: what marks something done must be on disk before
/// the rename (the caller's part: `File::sync_all`, [`crate::record::seal`]) and the rename after it (this).
pub fn publish(staged: &Path, dest: &Path) -> Result<()> {
    fs::rename(staged, dest).map_err(Error::io("renaming into place", dest))?;
    sync_dir(dest.parent().unwrap_or(Path::new(".")))
}

/// Removes a published entry (an environment, an installed gem, a download, a git revision, a pinned launcher)
/// so that no run ever takes what is left of it for whole: renamed into this process's temporary area at once,
/// then deleted there. Where a directory cannot be renamed (an overlayfs lower layer, i.e. a cache baked into a
/// container image, answers EXDEV) it is deleted in place, its record first, made durable before anything else
/// goes: a run that meets it half deleted finds no record, takes it for damaged and rebuilds it. `action` says
/// what the removal is for, in errors.
pub fn remove_entry(cache: &Cache, path: &Path, action: &'static str) -> Result<()> {
    let trash = cache.temp_path("trash")?;
    match fs::rename(path, &trash) {
        Ok(()) => remove_any(&trash).map_err(Error::io("removing", &trash)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            remove_in_place(path).map_err(Error::io(action, path))
        }
        Err(e) => Err(Error::io(action, path)(e)),
    }
}

/// Deletes `path` where it is: first what says it is complete (a record, a pinned launcher's `*.ok`), flushed,
/// then the rest. Another launcher removing the same entry at the same time is no error.
fn remove_in_place(path: &Path) -> std::io::Result<()> {
    let gone = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Ok(())
        } else {
            Err(e)
        }
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) => return gone(e),
    };
    if !meta.is_dir() {
        return fs::remove_file(path).or_else(gone);
    }
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) => return gone(e),
    };
    let mut marked = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let seal = name == RECORD || name.as_encoded_bytes().ends_with(b".ok");
        if seal && entry.file_type().is_ok_and(|t| !t.is_dir()) {
            fs::remove_file(entry.path()).or_else(gone)?;
            marked = true;
        }
    }
    if marked {
        // Durable before the rest goes: after a power loss the record must not be back beside missing files.
        flush_dir(path)?;
    }
    // std's removal never follows a symlink inside the tree.
    fs::remove_dir_all(path).or_else(gone)
}

/// Removes a file or a whole tree (never following a symlink).
fn remove_any(path: &Path) -> std::io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

/// Flushes a directory's entries (a rename into it, a new file) to disk.
pub fn sync_dir(dir: &Path) -> Result<()> {
    flush_dir(dir).map_err(|e| Error::Io {
        action: "flushing to disk",
        path: dir.to_path_buf(),
        source: e,
    })
}

fn flush_dir(dir: &Path) -> std::io::Result<()> {
    match File::open(dir).and_then(|d| d.sync_all()) {
        // Some filesystems cannot flush a directory by itself; their renames are as durable as they get.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTSUP)) => Ok(()),
        other => other,
    }
}

/// `path` with `suffix` appended to its last component: a file kept beside another (`gem.sha256`, `binary.ok`).
pub fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A short, stable hex key of the given parts.
pub fn key_of<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part.as_bytes());
        // A separator that cannot occur in names, versions or URLs keeps ("ab","c") apart from ("a","bc").
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_separated() {
        assert_eq!(key_of(["a", "bc"]), key_of(["a", "bc"]));
        assert_ne!(key_of(["ab", "c"]), key_of(["a", "bc"]));
        assert_eq!(key_of(["x"]).len(), 24);
    }

    #[test]
    fn a_checked_file_is_believed_only_while_it_matches() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let p = dir.path().join("v2/rubies/x.txt");
        write_checked(&cache, &p, b"platform=x86_64-linux\n").unwrap();
        assert_eq!(
            read_checked(&p).as_deref(),
            Some(&b"platform=x86_64-linux\n"[..])
        );
        // Without a final newline, one is added (the digest is a line of its own) and read back.
        write_checked(&cache, &p, b"abc").unwrap();
        assert_eq!(read_checked(&p).as_deref(), Some(&b"abc\n"[..]));
        write_checked(&cache, &p, b"platform=x86_64-linux\n").unwrap();
        let flipped = fs::read_to_string(&p).unwrap().replace("x86_64", "x86_65");
        fs::write(&p, flipped).unwrap();
        assert_eq!(read_checked(&p), None);
        fs::write(&p, "").unwrap();
        assert_eq!(read_checked(&p), None);
        cache.finish();
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let p = dir.path().join("v2/rubies/x.txt");
        write_atomic(&cache, &p, b"one").unwrap();
        write_atomic(&cache, &p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        cache.finish();
        assert_eq!(fs::read_dir(dir.path().join("v2/tmp")).unwrap().count(), 0);
    }
}
