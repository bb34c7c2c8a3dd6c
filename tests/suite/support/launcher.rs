//! Running the launcher binary (or any command) under a clean environment,
//! with captured output, event-driven waits and a hard timeout.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::default_path;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// After the process exits, how long to wait for its pipes to close; only
/// matters when it left a descendant holding them open.
const PIPE_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Builder for one or more launcher runs. Clones share the cache and home
/// directories, so `base.clone().arg("specs").run()` twice exercises a warm
/// cache on the second run.
#[derive(Clone)]
pub struct Launcher {
    program: PathBuf,
    cwd: PathBuf,
    args: Vec<OsString>,
    /// `None` marks a variable removed from the base environment.
    env: BTreeMap<OsString, Option<OsString>>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    cache_dir: PathBuf,
    home: Arc<tempfile::TempDir>,
    _cache_root: Arc<tempfile::TempDir>,
}

impl Launcher {
    /// Runs in `app_dir` with env cleared except PATH, HOME (a fresh temp
    /// dir), LANG and KAMAL_LAUNCHER_CACHE_DIR (a fresh, not yet created
    /// directory, as on a machine that never ran the launcher).
    pub fn new(app_dir: &Path) -> Launcher {
        let cache_root = tempfile::Builder::new()
            .prefix("launcher-cache-")
            .tempdir()
            .expect("create cache dir");
        let home = tempfile::Builder::new()
            .prefix("launcher-home-")
            .tempdir()
            .expect("create home dir");
        let cache_dir = cache_root.path().join("cache");
        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: &OsStr| {
            env.insert(OsString::from(k), Some(v.to_owned()));
        };
        set("PATH", OsStr::new(&default_path()));
        set("HOME", home.path().as_os_str());
        set("LANG", OsStr::new("C.UTF-8"));
        set("KAMAL_LAUNCHER_CACHE_DIR", cache_dir.as_os_str());
        Launcher {
            program: PathBuf::from(env!("CARGO_BIN_EXE_kamal-launcher")),
            cwd: app_dir.to_owned(),
            args: Vec::new(),
            env,
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
            cache_dir,
            home: Arc::new(home),
            _cache_root: Arc::new(cache_root),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Launcher {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Launcher
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Launcher {
        self.env
            .insert(key.as_ref().to_owned(), Some(value.as_ref().to_owned()));
        self
    }

    /// Removes a variable, including one of the defaults (e.g. HOME).
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Launcher {
        self.env.insert(key.as_ref().to_owned(), None);
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Launcher {
        self.cwd = dir.to_owned();
        self
    }

    /// Points KAMAL_LAUNCHER_CACHE_DIR elsewhere, e.g. at another launcher's
    /// cache to share it across apps.
    pub fn cache_dir(mut self, dir: &Path) -> Launcher {
        self.cache_dir = dir.to_owned();
        self.env.insert(
            OsString::from("KAMAL_LAUNCHER_CACHE_DIR"),
            Some(dir.as_os_str().to_owned()),
        );
        self
    }

    /// Bytes fed to stdin (otherwise stdin is /dev/null).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Launcher {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Launcher {
        self.timeout = timeout;
        self
    }

    /// The cache directory the launcher is told to use; it may not exist yet.
    pub fn cache_path(&self) -> &Path {
        &self.cache_dir
    }

    pub fn home_path(&self) -> &Path {
        self.home.path()
    }

    /// The cache's layout root (`<cache>/v2`), where every assertion about the cache looks.
    pub fn layout_root(&self) -> PathBuf {
        self.cache_dir.join(kamal_launcher::cache::LAYOUT)
    }

    /// The environments' directory names, sorted.
    pub fn env_dirs(&self) -> Vec<String> {
        entries(&self.layout_root().join("envs"))
    }

    /// Every `store/<abi>/<unit>` directory.
    pub fn store_unit_dirs(&self) -> Vec<PathBuf> {
        let store = self.layout_root().join("store");
        entries(&store)
            .into_iter()
            .flat_map(|abi| {
                let abi_dir = store.join(abi);
                entries(&abi_dir).into_iter().map(move |u| abi_dir.join(u))
            })
            .collect()
    }

    /// Every `store/<abi>/<unit>` entry name.
    pub fn store_units(&self) -> Vec<String> {
        self.store_unit_dirs()
            .iter()
            .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    /// The fully configured command, for tests that need something the
    /// builder does not offer.
    pub fn command(&self) -> Command {
        let mut cmd = self.command_for(&self.program);
        cmd.args(&self.args);
        cmd
    }

    /// `program` (a symlink to the launcher, a shell wrapping it) with this launcher's environment and working
    /// directory, and no arguments.
    pub fn command_for(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.cwd).env_clear();
        for (key, value) in &self.env {
            if let Some(value) = value {
                cmd.env(key, value);
            }
        }
        cmd
    }

    pub fn spawn(&self) -> Running {
        let description = format!(
            "kamal-launcher {} (in {})",
            self.args
                .iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(" "),
            self.cwd.display()
        );
        spawn_with(
            self.command(),
            description,
            self.stdin.clone(),
            self.timeout,
        )
    }

    /// Runs to completion; panics with the output so far on timeout.
    pub fn run(&self) -> Output {
        self.spawn().wait()
    }
}

/// Spawns any command with the same capture/timeout machinery the launcher
/// runs use. The environment is taken from `cmd` as is.
pub fn spawn(cmd: Command) -> Running {
    let description = format!("{cmd:?}");
    spawn_with(cmd, description, None, DEFAULT_TIMEOUT)
}

fn spawn_with(
    mut cmd: Command,
    description: String,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> Running {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    // Its own process group lets a timeout kill whatever it spawned too,
    // instead of leaving stray Ruby processes holding our pipes.
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("failed to spawn {description}: {e}"));
    let pid = child.id();

    let stdout = Arc::new(Capture::default());
    let stderr = Arc::new(Capture::default());
    let readers = vec![
        start_reader(
            child.stdout.take().expect("piped stdout"),
            Arc::clone(&stdout),
        ),
        start_reader(
            child.stderr.take().expect("piped stderr"),
            Arc::clone(&stderr),
        ),
    ];
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A separate thread, so a child that never reads cannot deadlock us.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let (exit_tx, exit_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = exit_tx.send(wait_child(child));
    });

    Running {
        pid,
        description,
        timeout,
        exit: exit_rx,
        stdout,
        stderr,
        readers,
        finished: false,
    }
}

fn wait_child(mut child: Child) -> ExitStatus {
    child.wait().expect("wait for child")
}

#[derive(Default)]
struct Capture {
    state: Mutex<CaptureState>,
    changed: Condvar,
}

#[derive(Default)]
struct CaptureState {
    bytes: Vec<u8>,
    eof: bool,
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.state.lock().expect("capture lock").bytes).into_owned()
    }

    /// Blocks until `done` holds for the captured text or EOF/deadline.
    fn wait(&self, deadline: Instant, done: impl Fn(&str, bool) -> bool) -> bool {
        let mut state = self.state.lock().expect("capture lock");
        loop {
            if done(&String::from_utf8_lossy(&state.bytes), state.eof) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .expect("capture lock")
                .0;
        }
    }
}

fn start_reader(mut pipe: impl Read + Send + 'static, capture: Arc<Capture>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            let n = pipe.read(&mut buf).unwrap_or(0);
            let mut state = capture.state.lock().expect("capture lock");
            if n == 0 {
                state.eof = true;
            } else {
                state.bytes.extend_from_slice(&buf[..n]);
            }
            drop(state);
            capture.changed.notify_all();
            if n == 0 {
                break;
            }
        }
    })
}

/// A process started by `Launcher::spawn` or `spawn`. Dropping it unwaited
/// SIGKILLs its process group.
pub struct Running {
    pid: u32,
    description: String,
    timeout: Duration,
    exit: mpsc::Receiver<ExitStatus>,
    stdout: Arc<Capture>,
    stderr: Arc<Capture>,
    readers: Vec<JoinHandle<()>>,
    finished: bool,
}

impl Running {
    /// Also the process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn stdout_so_far(&self) -> String {
        self.stdout.text()
    }

    pub fn stderr_so_far(&self) -> String {
        self.stderr.text()
    }

    /// Blocks until stdout contains `needle`; panics (killing the process) if
    /// it closes without it or `timeout` passes.
    pub fn wait_for_stdout(&mut self, needle: &str, timeout: Duration) {
        let found = self.stdout.wait(Instant::now() + timeout, |text, eof| {
            text.contains(needle) || eof
        }) && self.stdout.text().contains(needle);
        if !found {
            self.fail(&format!(
                "stdout never contained {needle:?} within {timeout:?}"
            ));
        }
    }

    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) {
        let found = self.stderr.wait(Instant::now() + timeout, |text, eof| {
            text.contains(needle) || eof
        }) && self.stderr.text().contains(needle);
        if !found {
            self.fail(&format!(
                "stderr never contained {needle:?} within {timeout:?}"
            ));
        }
    }

    /// Sends `signal` (a name like `TERM` or `INT`) to the process only.
    pub fn signal(&self, signal: &str) {
        send_signal(signal, &self.pid.to_string());
    }

    /// Sends `signal` to the whole process group, as a terminal's Ctrl-C does.
    pub fn signal_group(&self, signal: &str) {
        send_signal(signal, &format!("-{}", self.pid));
    }

    /// Waits with the timeout the process was configured with.
    pub fn wait(self) -> Output {
        let timeout = self.timeout;
        self.wait_timeout(timeout)
    }

    /// Waits for exit; on timeout SIGKILLs the process group and panics with
    /// the output so far.
    pub fn wait_timeout(mut self, timeout: Duration) -> Output {
        let status = match self.exit.recv_timeout(timeout) {
            Ok(status) => status,
            Err(RecvTimeoutError::Timeout) => {
                self.fail(&format!("did not exit within {timeout:?}"));
            }
            Err(RecvTimeoutError::Disconnected) => panic!("waiter for {} died", self.description),
        };
        self.finished = true;
        let deadline = Instant::now() + PIPE_DRAIN_TIMEOUT;
        let drained =
            self.stdout.wait(deadline, |_, eof| eof) && self.stderr.wait(deadline, |_, eof| eof);
        if drained {
            for reader in self.readers.drain(..) {
                let _ = reader.join();
            }
        } else {
            // A leftover descendant still holds the pipes; it is not part of
            // the result, and killing it lets the reader threads end.
            send_signal_quiet("KILL", &format!("-{}", self.pid));
        }
        Output {
            status,
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
        }
    }

    fn fail(&mut self, why: &str) -> ! {
        send_signal_quiet("KILL", &format!("-{}", self.pid));
        let status = self.exit.recv_timeout(Duration::from_secs(10)).ok();
        self.finished = true;
        panic!(
            "{}: {why}\nexit status: {}\n--- stdout so far ---\n{}\n--- stderr so far ---\n{}",
            self.description,
            status.map_or("still running".to_owned(), |s| s.to_string()),
            self.stdout.text(),
            self.stderr.text()
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished {
            send_signal_quiet("KILL", &format!("-{}", self.pid));
            let _ = self.exit.recv_timeout(Duration::from_secs(10));
        }
    }
}

fn send_signal(signal: &str, target: &str) {
    let status = kill_command(signal, target)
        .status()
        .expect("run /bin/sh for kill");
    assert!(status.success(), "kill -s {signal} {target} failed");
}

fn send_signal_quiet(signal: &str, target: &str) {
    let _ = kill_command(signal, target).stderr(Stdio::null()).status();
}

/// std can only SIGKILL a child, and the shell's kill builtin is always
/// there, unlike procps' kill or a libc dependency.
fn kill_command(signal: &str, target: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "kill -s \"$0\" -- \"$1\"", signal, target]);
    cmd
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The signal that killed the process, if one did.
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[track_caller]
pub fn assert_success(out: &Output) {
    assert!(out.status.success(), "expected success, got:\n{out}");
}

#[track_caller]
pub fn assert_failure(out: &Output) {
    assert!(!out.status.success(), "expected failure, got:\n{out}");
}

/// Sorted names in `dir`; empty when it does not exist.
pub fn entries(dir: &Path) -> Vec<String> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = read
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}
