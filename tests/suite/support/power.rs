//! A power loss, simulated: an ext4 filesystem on a loop device whose journal commits every second, so that a
//! rename reaches the disk long before delayed data does (ext4 writes data back after 30 s), and a copy of its
//! image taken once the journal has committed what a run did: the disk as the boot after a power loss finds it.
//! Mounting needs root; [`Disk::new`] says why it cannot where it cannot, and the caller skips loudly
//! ([`skip_loudly`]). Also a small [`Tmpfs`] to fill up (full disks, no inodes, read-only mounts).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A mounted ext4 image; unmounted on drop.
pub struct Disk {
    images: tempfile::TempDir,
    mount: tempfile::TempDir,
}

impl Disk {
    /// A fresh 256 MiB ext4 filesystem, mounted with a one-second journal commit.
    pub fn new() -> Result<Disk, String> {
        let images = tempfile::Builder::new().prefix("power-").tempdir().unwrap();
        let image = images.path().join("disk.img");
        fs::File::create(&image)
            .unwrap()
            .set_len(256 << 20)
            .unwrap();
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))?;
        let mount = tempfile::Builder::new()
            .prefix("power-mnt-")
            .tempdir()
            .unwrap();
        run(Command::new("mount")
            .args(["-o", "loop,commit=1"])
            .arg(&image)
            .arg(mount.path()))?;
        Ok(Disk { images, mount })
    }

    /// Where the filesystem is mounted.
    pub fn path(&self) -> &Path {
        self.mount.path()
    }

    /// A cache directory on this disk.
    pub fn cache(&self) -> PathBuf {
        self.path().join("cache")
    }

    /// The journal's count of committed transactions (`/proc/fs/jbd2/<dev>-8/info`).
    fn transactions(&self) -> u64 {
        let out = Command::new("findmnt")
            .args(["-n", "-o", "SOURCE", "--target"])
            .arg(self.path())
            .output()
            .unwrap();
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let name = dev.rsplit('/').next().unwrap().to_string();
        let text = fs::read_to_string(format!("/proc/fs/jbd2/{name}-8/info")).unwrap_or_default();
        text.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// The disk as a power loss now would leave it: the journal's committed metadata, and only the data that was
    /// written back. Waits on the journal's own counter (an event, not a clock) until what the run did has been
    /// committed.
    pub fn power_loss(&self) -> Disk {
        // A change made after the run's commits with or after everything before it. The transaction committing
        // when the first marker was made may not hold it; the one that commits the second holds both.
        for marker in ["marker-1", "marker-2"] {
            fs::write(self.path().join(marker), "").unwrap();
            let seen = self.transactions();
            let deadline = Instant::now() + Duration::from_secs(30);
            while self.transactions() <= seen {
                assert!(Instant::now() < deadline, "the journal never committed");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let images = tempfile::Builder::new()
            .prefix("power-after-")
            .tempdir()
            .unwrap();
        let copy = images.path().join("disk.img");
        run(Command::new("cp")
            .arg("--sparse=always")
            .arg(self.images.path().join("disk.img"))
            .arg(&copy))
        .unwrap();
        let mount = tempfile::Builder::new()
            .prefix("power-after-mnt-")
            .tempdir()
            .unwrap();
        // Mounting replays the journal, as the boot after the power loss would.
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&copy)
            .arg(mount.path()))
        .unwrap();
        Disk { images, mount }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        unmount(self.path());
    }
}

/// A tmpfs mounted for one test; unmounted on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// A tmpfs mounted with `options` (`size=16m,mode=0755`, …).
    pub fn mount(options: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::Builder::new().prefix("tmpfs-").tempdir().unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path()))?;
        Ok(Tmpfs { dir })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Mounts it again with other options (read-only, fewer inodes).
    pub fn remount(&self, options: &str) {
        run(Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.path()))
        .unwrap();
    }

    /// Fills it with a ballast file so that about `free` bytes are left (in whole pages, as tmpfs counts).
    pub fn leave_free(&self, free: u64) {
        let ballast = self.path().join("ballast");
        let _ = fs::remove_file(&ballast);
        let mut file = fs::File::create(&ballast).unwrap();
        let chunk = vec![0x5a; 64 * 1024];
        let mut written = 0u64;
        for size in [64 * 1024, 4096, 512] {
            while let Ok(n @ 1..) = file.write(&chunk[..size]) {
                written += n as u64;
            }
        }
        file.set_len(written.saturating_sub(free.div_ceil(4096) * 4096))
            .unwrap();
        drop(file);
        let left = free_bytes(self.path());
        assert!(
            left >= free / 2 && left <= free + 256 * 1024,
            "asked for {free} bytes free, got {left}"
        );
    }

    /// Removes the ballast.
    pub fn free_everything(&self) {
        let _ = fs::remove_file(self.path().join("ballast"));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        unmount(self.path());
    }
}

/// Free bytes for root (reserved blocks included: the suite runs as root).
pub fn free_bytes(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statvfs {}", path.display());
    st.f_bfree * st.f_frsize
}

/// Unmounts, lazily when something still holds it (a failed test's leftover process).
pub fn unmount(path: &Path) {
    let ok = Command::new("umount")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        // Something still holds it (a failed test's leftover process): detach it lazily.
        let _ = Command::new("umount").arg("-l").arg(path).status();
    }
}

pub fn skip_loudly(what: &str, why: &str) {
    eprintln!(
        "\n\n==== SKIPPED: {what} ====\n{why}\nMounting a filesystem (tmpfs; ext4 on a loop device) needs root and a \
         kernel that lets this container mount.\n\n"
    );
}

/// Runs a command to completion; its stderr is the error when it fails.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
