//! Step 6: install verified gems, each once per Ruby ABI into the shared store (`env.rs` then assembles the
//! closure's environment from them). Everything is built under `tmp/` and renamed into place only when complete,
//! so a failed or killed install never leaves anything a later run mistakes for done.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, mpsc};

use crate::cache::{self, Cache};
use crate::children::{self, Terminal};
use crate::error::{Error, Result};
use crate::record;
use crate::ruby::Ruby;
use crate::ui::{Progress, Ui};

const INSTALLER: &str = include_str!("ruby/install.rb");

/// One gem of the environment.
#[derive(Debug, Clone)]
pub struct Unit {
    /// The gem's name.
    pub name: String,
    /// `name-version[-platform]`.
    pub full_name: String,
    /// The verified `.gem` file.
    pub gem_file: PathBuf,
    /// Where it is (or will be) installed in the store.
    pub dir: PathBuf,
}

/// What the installer's stdout and the feeding thread tell the loop that drives an install.
enum Event {
    /// A line of the installer's output.
    Line(String),
    /// The installer closed its output: it has exited, or is about to.
    Eof,
    /// The feed has submitted everything it will (or failed).
    FeedDone(Result<()>),
    /// A submitted unit was already in the store: done without the installer.
    Present,
}

/// A unit handed to the installer, with the lock that keeps others from installing it too.
struct Job {
    unit: Unit,
    staging: PathBuf,
    /// Whether it builds a native extension (its progress says so: it may take minutes).
    native: bool,
    _lock: cache::Lock,
}

/// The feed's side of a streaming install: [`Feeder::submit`] hands over gems as they become available.
pub struct Feeder<'a> {
    cache: &'a Cache,
    ruby: &'a Ruby,
    jobs: usize,
    /// Whether to wait for a unit another launcher is installing (the second, ordered pass) or defer it.
    blocking: bool,
    events: mpsc::Sender<Event>,
    state: Mutex<FeedState>,
}

#[derive(Default)]
struct FeedState {
    child: Option<children::Child>,
    stdin: Option<std::process::ChildStdin>,
    jobs: Vec<Job>,
    /// Units another launcher was installing when they became available.
    deferred: Vec<Unit>,
    /// Set once the install is failing: later submissions are dropped.
    stopped: bool,
}

impl Feeder<'_> {
    /// Queues `unit` for installation unless the store has it (or another launcher is installing it: then it
    /// is waited for after this launcher's own installs, which keeps lock waits ordered and deadlock-free).
    pub fn submit(&self, unit: Unit) -> Result<()> {
        if record::verify(&unit.dir).is_ok() {
            let _ = self.events.send(Event::Present);
            return Ok(());
        }
        let name = format!(
            "unit-{}",
            cache::key_of([unit.dir.to_string_lossy().as_ref()])
        );
        let lock = if self.blocking {
            self.cache.lock(&name)?
        } else {
            match self.cache.try_lock(&name)? {
                Some(lock) => lock,
                None => {
                    self.state().deferred.push(unit);
                    return Ok(());
                }
            }
        };
        // Another launcher may have installed it while we waited.
        match record::verify(&unit.dir) {
            Ok(()) => {
                let _ = self.events.send(Event::Present);
                return Ok(());
            }
            // What is there is not what was installed (a crash before it reached the disk, a damaged or
            // planted file): it goes, never seen half removed, and the gem is installed again.
            Err(_) if fs::symlink_metadata(&unit.dir).is_ok() => {
                cache::remove_entry(self.cache, &unit.dir, "replacing the damaged installed gem")?;
            }
            Err(_) => {}
        }
        let staging = self.cache.temp_path("unit")?;
        let weight = crate::package::build_weight(&unit.gem_file);
        let mut state = self.state();
        if state.stopped {
            return Ok(());
        }
        if state.child.is_none() {
            self.spawn(&mut state)?;
        }
        let index = state.jobs.len();
        let mut record = Vec::new();
        for field in [
            index.to_string().as_bytes(),
            weight.to_string().as_bytes(),
            unit.gem_file.as_os_str().as_bytes(),
            staging.as_os_str().as_bytes(),
        ] {
            record.extend_from_slice(field);
            record.push(0);
        }
        state.jobs.push(Job {
            unit,
            staging,
            native: weight > 0,
            _lock: lock,
        });
        let sent = state.stdin.as_mut().map(|stdin| stdin.write_all(&record));
        if let Some(Err(_)) = sent {
            // The installer is gone. The loop reading its output reports why (its exit status and stderr say more
            // than a broken pipe), counting this job as not done.
            state.stdin = None;
            state.stopped = true;
        }
        Ok(())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spawn(&self, state: &mut FeedState) -> Result<()> {
        let mut cmd = Command::new(&self.ruby.path);
        cmd.arg("-e").arg(INSTALLER);
        cmd.env("KAMAL_LAUNCHER_JOBS", self.jobs.to_string())
            .env("MAKEFLAGS", format!("-j{}", self.jobs))
            // The caller's Bundler and gem paths must not leak into the installer or extension builds.
            .env_remove("RUBYOPT")
            .env_remove("RUBYLIB")
            .env_remove("BUNDLE_GEMFILE")
            .env_remove("GEM_HOME")
            .env_remove("GEM_PATH")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // In a process group of its own, tracked: an interrupt stops it and its builds (make, cc) before the
        // temporary area they write into is removed.
        let mut child = children::spawn(&mut cmd, Terminal::Unused).map_err(|e| Error::Exec {
            ruby: self.ruby.path.clone(),
            source: e,
        })?;
        state.stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let events = self.events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(line) => {
                        if events.send(Event::Line(line)).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = events.send(Event::Eof);
        });
        state.child = Some(child);
        Ok(())
    }

    /// Stops the installer: no new install starts, running ones end (with what they started), and its exit follows.
    fn stop(&self) {
        let mut state = self.state();
        state.stopped = true;
        state.stdin = None;
        if let Some(pid) = state
            .child
            .as_ref()
            .and_then(|c| i32::try_from(c.id()).ok())
        {
            // The child is not yet waited for, so its pid (its group's id) is still ours.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

/// Installs the units `feed` submits (`total` of them: the progress counts them all from the start, those
/// already installed as done), starting each as soon as it is submitted (downloads and installs overlap),
/// several at a time, native extensions first. Units another launcher is installing are waited for at the end.
/// Returns how many units this run installed.
pub fn install_units(
    cache: &Cache,
    ruby: &Ruby,
    jobs: usize,
    ui: &Ui,
    total: usize,
    feed: impl FnOnce(&Feeder<'_>) -> Result<()> + Send,
) -> Result<usize> {
    let deferred = run(cache, ruby, jobs, false, ui, total, feed)?;
    let (installed, mut deferred) = deferred;
    if deferred.is_empty() {
        return Ok(installed);
    }
    // Waiting in a fixed order, holding no lock from the first pass, so that launchers cannot deadlock.
    deferred.sort_by(|a, b| a.dir.cmp(&b.dir));
    deferred.dedup_by(|a, b| a.dir == b.dir);
    let waited = deferred.len();
    let (more, _) = run(cache, ruby, jobs, true, ui, waited, |feeder| {
        deferred.into_iter().try_for_each(|u| feeder.submit(u))
    })?;
    Ok(installed + more)
}

/// One pass of [`install_units`]: returns how many were installed and the units deferred to another launcher.
fn run(
    cache: &Cache,
    ruby: &Ruby,
    jobs: usize,
    blocking: bool,
    ui: &Ui,
    total: usize,
    feed: impl FnOnce(&Feeder<'_>) -> Result<()> + Send,
) -> Result<(usize, Vec<Unit>)> {
    let (events, received) = mpsc::channel();
    let feeder = Feeder {
        cache,
        ruby,
        jobs,
        blocking,
        events: events.clone(),
        state: Mutex::new(FeedState::default()),
    };
    let progress = ui.progress_bar("Installing", total);
    let result = std::thread::scope(|s| {
        let feeder = &feeder;
        s.spawn(move || {
            let done = feed(feeder);
            let _ = events.send(Event::FeedDone(done));
        });
        drive(feeder, &received, &progress)
    });
    drop(progress);
    let state = feeder.state.into_inner().unwrap_or_else(|e| e.into_inner());
    for job in &state.jobs {
        let _ = fs::remove_dir_all(&job.staging);
        let _ = fs::remove_file(cache::beside(&job.staging, ".log"));
        let _ = fs::remove_file(cache::beside(&job.staging, ".err"));
    }
    result.map(|installed| (installed, state.deferred))
}

/// Reacts to the installer's reports and the feed's end until both are over; returns the number installed.
fn drive(
    feeder: &Feeder<'_>,
    events: &mpsc::Receiver<Event>,
    progress: &Progress<'_>,
) -> Result<usize> {
    let mut done = 0;
    let mut feeding = true;
    let mut output_open = true;
    let mut failure: Option<Error> = None;
    // An error that makes the rest of the installer's work useless: the installer is told to stop (it ends its
    // running installs and waits for them), and its output is drained until it has exited, so that nothing
    // writes into the temporary area after it is removed.
    let mut fatal: Option<Error> = None;
    while feeding || (output_open && feeder.state().child.is_some()) {
        let Ok(event) = events.recv() else { break };
        let line = match event {
            Event::FeedDone(result) => {
                feeding = false;
                if let Err(e) = result {
                    feeder.stop();
                    fatal.get_or_insert(e);
                }
                // No more jobs: the installer finishes what it has and exits. The end is said explicitly, so that
                // a launcher that dies (its stdin closing without it) makes the installer stop instead.
                let mut state = feeder.state();
                if let Some(mut stdin) = state.stdin.take() {
                    let _ = stdin.write_all(b"end\0");
                }
                continue;
            }
            Event::Eof => {
                output_open = false;
                continue;
            }
            Event::Present => {
                progress.present();
                continue;
            }
            Event::Line(line) => line,
        };
        if fatal.is_some() {
            continue;
        }
        let mut parts = line.splitn(3, ' ');
        let (status, index, hint) = (parts.next(), parts.next(), parts.next());
        let Some(i) = index.and_then(|i| i.parse::<usize>().ok()) else {
            continue;
        };
        let state = feeder.state();
        let Some(job) = state.jobs.get(i) else {
            continue;
        };
        let (unit, staging, native) = (job.unit.clone(), job.staging.clone(), job.native);
        drop(state);
        match status {
            Some("start") => progress.started_as(&unit.full_name, &unit.name, native),
            Some("ok") => match store(&unit, &staging) {
                Ok(()) => {
                    done += 1;
                    progress.finished(&unit.full_name);
                }
                Err(e) => {
                    progress.abandoned(&unit.full_name);
                    feeder.stop();
                    fatal = Some(e);
                }
            },
            Some("no-space") if failure.is_none() => {
                progress.abandoned(&unit.full_name);
                // Nothing could be written to explain it, and there is no room for a log: say where and why.
                crate::error::note_no_space(&staging);
                failure = Some(Error::Io {
                    action: "installing a gem into",
                    path: unit.dir.clone(),
                    source: std::io::Error::from_raw_os_error(libc::ENOSPC),
                });
            }
            Some(other) if failure.is_none() => {
                progress.abandoned(&unit.full_name);
                let build = other == "build-failed";
                failure = Some(install_failure(
                    feeder.cache,
                    &unit,
                    &staging,
                    build,
                    hint.unwrap_or(""),
                ));
            }
            _ => {}
        }
    }
    let child = feeder.state().child.take();
    let Some(mut child) = child else {
        return match fatal.or(failure) {
            Some(e) => Err(e),
            None => Ok(done),
        };
    };
    let status = child.wait().map_err(|e| Error::Exec {
        ruby: feeder.ruby.path.clone(),
        source: e,
    })?;
    if let Some(err) = fatal.or(failure) {
        return Err(err);
    }
    let submitted = feeder.state().jobs.len();
    if !status.success() || done != submitted {
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        return Err(Error::Install(format!(
            "the gem installer ({}) stopped unexpectedly ({status}): {}",
            feeder.ruby.path.display(),
            stderr.trim()
        )));
    }
    Ok(done)
}

/// Seals an installed unit (every file on disk, its record written last) and moves it into the store.
fn store(unit: &Unit, staging: &Path) -> Result<()> {
    record::seal(staging)?;
    let parent = unit.dir.parent().expect("store paths have a parent");
    fs::create_dir_all(parent).map_err(Error::io("creating the store directory", parent))?;
    match cache::publish(staging, &unit.dir) {
        Ok(()) => Ok(()),
        // A concurrent launcher holding an older lock layout won the race; its result is as good.
        Err(_) if record::verify(&unit.dir).is_ok() => Ok(()),
        Err(Error::Io { source, .. }) => Err(Error::Io {
            action: "moving the installed gem into",
            path: unit.dir.clone(),
            source,
        }),
        Err(e) => Err(e),
    }
}

/// Keeps the failed gem's log and explains the failure.
fn install_failure(cache: &Cache, unit: &Unit, staging: &Path, build: bool, hint: &str) -> Error {
    let log = fs::read_to_string(cache::beside(staging, ".log")).unwrap_or_default();
    let kept = cache.logs().join(format!("{}.log", unit.full_name));
    let saved = fs::create_dir_all(cache.logs())
        .and_then(|_| fs::write(&kept, &log))
        .is_ok();
    let summary = fs::read_to_string(cache::beside(staging, ".err"))
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| {
            log.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output")
                .to_string()
        })
        .lines()
        .map(|l| format!("\n    {l}"))
        .collect::<String>();
    Error::Install(format!(
        "{} {}:{summary}\n  {}{}",
        if build {
            "failed to build the native extension of"
        } else {
            "failed to install"
        },
        unit.full_name,
        if hint.is_empty() {
            String::new()
        } else {
            format!("{hint}\n  ")
        },
        if saved {
            format!("full log: {}", kept.display())
        } else {
            format!("log:\n{log}")
        }
    ))
}

/// Resolves `.` and `..` lexically, without touching the filesystem (the path may not exist).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
