//! The processes the launcher starts (the gem installer, `gem build`, git) and what an interrupt does to them.
//!
//! Each child leads a process group of its own, so that one signal reaches everything it starts (make, cc, ssh)
//! even after the child itself has exited. On SIGHUP, SIGINT or SIGTERM the handler signals every group still
//! tracked (TERM, then KILL after `GRACE`), waits until the groups are empty, and only then runs the cleanup
//! the cache registered (removing this run's temporary area and its lock) and exits 128 + the signal's number
//! (129, 130, 143), as shells report them. Removing the area first would let a build still running write into
//! it, or re-create it, after its lock is gone, where no later sweep would ever look. Process groups,
//! `kill(-pgid)` and `waitid` are POSIX: Linux and macOS alike.
//!
//! A child stays tracked until it is reaped ([`Child::wait`] first waits without reaping), so the handler never
//! signals a pid the system has given to someone else. When the launcher is SIGKILLed nothing here runs: the
//! installer sees its stdin close and stops its own group (`ruby/install.rb`), and as the children share the
//! area's lock ([`share_with_children`]), no sweep removes the area before the last of them is gone.

use std::fs::File;
use std::io::{self, Read};
use std::ops::{Deref, DerefMut};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, Once, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::Pid;

/// How long stopped children get to end after TERM (make deletes its half-written target) before KILL.
const GRACE: Duration = Duration::from_secs(3);

/// How long to wait after KILL for the groups to empty: a process in uninterruptible sleep (slow disk, NFS) dies
/// only when it wakes, and what init adopted is reaped when init gets round to it.
const AFTER_KILL: Duration = Duration::from_secs(2);

/// Whether a child may need the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    /// It never reads the terminal (its stdin is a pipe or /dev/null, and nothing it runs opens /dev/tty).
    Unused,
    /// It may prompt on /dev/tty (ssh asks for a passphrase or to trust a host key there).
    MayPrompt,
}

/// A started child, tracked until it has been reaped; it derefs to [`std::process::Child`] for its pipes.
#[derive(Debug)]
pub struct Child {
    inner: std::process::Child,
    pid: i32,
}

impl Child {
    /// Waits for the child to exit, then stops tracking it, then reaps it: in that order, so that an interrupt
    /// never signals its pid once the system may have reused it.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        wait_without_reaping(self.pid);
        live().retain(|t| t.pid != self.pid);
        self.inner.wait()
    }
}

impl Deref for Child {
    type Target = std::process::Child;

    fn deref(&self) -> &std::process::Child {
        &self.inner
    }
}

impl DerefMut for Child {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.inner
    }
}

/// A tracked child: its pid, whether it leads its own group, and whether the handler has reaped it.
struct Tracked {
    pid: i32,
    group: bool,
    reaped: bool,
}

/// Every child started and not yet reaped.
static LIVE: Mutex<Vec<Tracked>> = Mutex::new(Vec::new());
/// Set once an interrupt is being handled: nothing new starts, and the handler owns the way out.
static STOPPING: AtomicBool = AtomicBool::new(false);
/// What to do once the children are gone, before exiting (the cache removes this run's temporary areas).
static CLEANUP: OnceLock<fn()> = OnceLock::new();
/// What to say once everything is stopped and cleaned up, given the signal (the UI erases its progress line and
/// says what was kept).
static REPORT: OnceLock<fn(i32)> = OnceLock::new();
/// The write end of the pipe the signal handler wakes the interrupt thread with.
static WAKE: AtomicI32 = AtomicI32::new(-1);

fn live() -> MutexGuard<'static, Vec<Tracked>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts `cmd` tracked, in a process group of its own unless it may prompt on the terminal this launcher runs
/// in. Refused (`Interrupted`) once an interrupt is being handled.
pub fn spawn(cmd: &mut Command, terminal: Terminal) -> io::Result<Child> {
    install();
    // Held while spawning, so the handler either sees this child or refuses it: none escapes.
    let mut live = live();
    if STOPPING.load(Ordering::SeqCst) {
        return Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "interrupted: no new process is started",
        ));
    }
    // Only the foreground process group may read the terminal: a child in a group of its own that prompts
    // there would be stopped (SIGTTIN) and the launcher would wait for it forever. With a terminal, Ctrl-C
    // reaches such a child directly, and the handler signals it too (its pid alone).
    let group = terminal == Terminal::Unused || !has_terminal();
    if group {
        cmd.process_group(0);
    }
    let inner = cmd.spawn()?;
    let pid = i32::try_from(inner.id()).map_err(io::Error::other)?;
    live.push(Tracked {
        pid,
        group,
        reaped: false,
    });
    Ok(Child { inner, pid })
}

/// Like [`Command::output`], tracked: runs `cmd` to its end and collects its stdout and stderr (stdin is as
/// the caller set it).
pub fn output(cmd: &mut Command, terminal: Terminal) -> io::Result<Output> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = spawn(cmd, terminal)?;
    let stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = stderr {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    });
    let mut stdout = Vec::new();
    let read = match child.stdout.take() {
        Some(mut pipe) => pipe.read_to_end(&mut stdout).map(drop),
        None => Ok(()),
    };
    let stderr = errors.join().unwrap_or_default();
    // Reaped whatever the reading did, so that no zombie stays tracked.
    let status = child.wait()?;
    read?;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Lets every child started from now on inherit `file`, so that a lock held on it stays held until the last
/// of them has exited (flock(2) locks belong to the open file, which children share), not only this process.
pub fn share_with_children(file: &File) {
    // SAFETY: clears the close-on-exec flag of a descriptor `file` keeps open.
    unsafe {
        libc::fcntl(file.as_raw_fd(), libc::F_SETFD, 0);
    }
}

/// Registers what an interrupt does once the children are gone (before exiting), and handles interrupts from
/// now on.
pub fn on_interrupt(cleanup: fn()) {
    let _ = CLEANUP.set(cleanup);
    install();
}

/// Registers what an interrupt says, last, once the children are gone and the cleanup is done. It does not
/// handle interrupts by itself: only what must be cleaned up does ([`on_interrupt`], [`spawn`]).
pub fn on_interrupt_report(report: fn(i32)) {
    let _ = REPORT.set(report);
}

/// Whether an interrupt is being handled: the handler thread will exit the process, so other threads must not
/// finish (nor print, nor exec) on their own.
pub fn interrupted() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// Handles SIGHUP, SIGINT and SIGTERM from now on: a thread waits on a pipe that the signal handler (which may do
/// almost nothing itself) writes the signal's number to.
fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Some((read, write)) = wake_pipe() else {
            return;
        };
        let thread = std::thread::Builder::new()
            .name("interrupts".into())
            .spawn(move || {
                let mut byte = 0u8;
                loop {
                    // SAFETY: reads one byte into a live local buffer from a descriptor this thread owns.
                    let n = unsafe { libc::read(read, (&raw mut byte).cast(), 1) };
                    if n == 1 {
                        stop_and_exit(i32::from(byte));
                    }
                    if n < 0 && Errno::last() == Errno::EINTR {
                        continue;
                    }
                    return;
                }
            });
        if thread.is_err() {
            return;
        }
        WAKE.store(write, Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for sig in [Signal::SIGHUP, Signal::SIGINT, Signal::SIGTERM] {
            // SAFETY: the handler only writes to a pipe and restores errno, both async-signal-safe.
            let _ = unsafe { signal::sigaction(sig, &action) };
        }
    });
}

/// A close-on-exec pipe whose write end never blocks: `(read, write)`.
fn wake_pipe() -> Option<(i32, i32)> {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors into the array; fcntl only sets flags on them.
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            return None;
        }
        for fd in fds {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
        libc::fcntl(fds[1], libc::F_SETFL, libc::O_NONBLOCK);
    }
    Some((fds[0], fds[1]))
}

extern "C" fn on_signal(sig: libc::c_int) {
    let saved = Errno::last_raw();
    let byte = u8::try_from(sig).unwrap_or(0);
    // SAFETY: write(2) is async-signal-safe; a full pipe (a second signal) just drops the byte.
    unsafe {
        libc::write(WAKE.load(Ordering::Relaxed), (&raw const byte).cast(), 1);
    }
    Errno::set_raw(saved);
}

fn stop_and_exit(sig: i32) -> ! {
    stop_all();
    if let Some(cleanup) = CLEANUP.get() {
        cleanup();
    }
    // Only now, so that nothing on the screen (a terminal that blocks output) can delay stopping or cleaning up.
    if let Some(report) = REPORT.get() {
        report(sig);
    }
    // As shells report a death by signal: 129 for SIGHUP, 130 for SIGINT, 143 for SIGTERM.
    std::process::exit(128 + sig);
}

/// Stops every tracked child and what it started, and returns once they are gone (or `GRACE` and `AFTER_KILL`
/// have passed).
fn stop_all() {
    let mut live = live();
    STOPPING.store(true, Ordering::SeqCst);
    // What a stopped child started is re-parented when the child dies. To init, it stays a zombie (still in its
    // group) until init gets round to reaping it, which some (a container's PID 1) do late or never; to us, it is
    // reaped at once (`gone`). Only Linux has this; macOS's launchd reaps at once anyway. Set only now, so that
    // no stray process becomes ours in normal operation, nor kamal's after the exec.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    send(&live, Signal::SIGTERM);
    let mut deadline = Instant::now() + GRACE;
    let mut killed = false;
    loop {
        live.retain_mut(|t| !gone(t));
        if live.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            if killed {
                return;
            }
            send(&live, Signal::SIGKILL);
            killed = true;
            deadline = Instant::now() + AFTER_KILL;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn send(live: &[Tracked], sig: Signal) {
    for t in live {
        let pid = Pid::from_raw(t.pid);
        let _ = if t.group {
            signal::killpg(pid, sig)
        } else if !t.reaped {
            signal::kill(pid, sig)
        } else {
            Ok(())
        };
    }
}

/// Whether a child has exited and, if it leads a group, everything in the group has too (what it started keeps
/// the group when re-parented). Reaps what is ours to reap: the child, and the group's orphans `stop_all` adopted.
fn gone(t: &mut Tracked) -> bool {
    // Any child of ours in the group (the leader included), or the child alone.
    let target = if t.group { -t.pid } else { t.pid };
    loop {
        // SAFETY: waitpid on our own children, without blocking, with no status wanted.
        let reaped = unsafe { libc::waitpid(target, std::ptr::null_mut(), libc::WNOHANG) };
        if reaped == t.pid || (reaped < 0 && Errno::last() == Errno::ECHILD) {
            t.reaped = true;
        }
        if reaped <= 0 || !t.group {
            break;
        }
    }
    t.reaped && (!t.group || signal::killpg(Pid::from_raw(t.pid), None) == Err(Errno::ESRCH))
}

/// Blocks until the child `pid` has exited, leaving it to be reaped (`WNOWAIT`).
fn wait_without_reaping(pid: i32) {
    let Ok(id) = libc::id_t::try_from(pid) else {
        return;
    };
    loop {
        // SAFETY: waitid fills a zeroed siginfo_t we own; WNOWAIT leaves the child waitable.
        let r = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                id,
                &raw mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || Errno::last() != Errno::EINTR {
            return;
        }
    }
}

/// Whether this process has a controlling terminal (opening `/dev/tty` fails without one).
fn has_terminal() -> bool {
    static TTY: OnceLock<bool> = OnceLock::new();
    *TTY.get_or_init(|| std::fs::File::open("/dev/tty").is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracked(pid: i32) -> bool {
        live().iter().any(|t| t.pid == pid)
    }

    #[test]
    fn a_child_leads_its_own_group_and_is_tracked_until_reaped() {
        let mut child = spawn(Command::new("sleep").arg("0.1"), Terminal::Unused).unwrap();
        let pid = child.pid;
        // SAFETY: asks for a live child's process group.
        assert_eq!(unsafe { libc::getpgid(pid) }, pid);
        assert!(tracked(pid));
        assert!(child.wait().unwrap().success());
        assert!(!tracked(pid));
    }

    #[test]
    fn output_collects_both_streams_and_reaps() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"])
            .stdin(Stdio::null());
        let out = output(&mut cmd, Terminal::Unused).unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }
}
