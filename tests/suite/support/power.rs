//! A power loss, simulated: an ext4 filesystem on a loop device whose journal commits every second, so that a
//! rename reaches the disk long before delayed data does (ext4 writes data back after 30 s), and a copy of its
//! image taken once the journal has committed what a run did: the disk as the boot after a power loss finds it.
//! Mounting needs root; [`Disk::new`] says why it cannot where it cannot, and the caller skips loudly.

use std::fs;
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
        let ok = Command::new("umount")
            .arg(self.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds it (a failed test's leftover process): detach it lazily.
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
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
