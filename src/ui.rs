//! The launcher's own output. stdout belongs to kamal, so everything here goes to stderr: progress on a
//! terminal (off one, a plain line now and then while a long install runs, for CI logs), details when asked
//! (`-v`), warnings and errors always.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// How much the launcher says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Errors and warnings only (`-q`).
    Quiet,
    /// Progress on a terminal, summaries where a command promises one.
    Normal,
    /// Everything, on or off a terminal (`-v`).
    Verbose,
}

/// Writes the launcher's messages to stderr.
#[derive(Debug)]
pub struct Ui {
    level: Level,
    tty: bool,
    color: bool,
}

impl Ui {
    /// A UI for this process's stderr.
    pub fn new(level: Level) -> Ui {
        let tty = std::io::stderr().is_terminal();
        let color = color_wanted(tty, &|k| std::env::var_os(k));
        Ui { level, tty, color }
    }

    /// A detail only shown with `-v`.
    pub fn verbose(&self, msg: &str) {
        if self.level == Level::Verbose {
            self.line(msg);
        }
    }

    /// A summary line, shown unless `-q`.
    pub fn summary(&self, msg: &str) {
        if self.level >= Level::Normal {
            self.line(msg);
        }
    }

    /// A warning: always shown.
    pub fn warn(&self, msg: &str) {
        let label = self.paint("warning:", "33");
        self.line(&format!("{label} {msg}"));
    }

    /// An error and its hint: always shown.
    pub fn error(&self, msg: &str, hint: Option<&str>) {
        let label = self.paint("error:", "31");
        self.line(&format!("{label} {msg}"));
        if let Some(hint) = hint {
            let label = self.paint("hint:", "36");
            self.line(&format!("  {label} {hint}"));
        }
    }

    fn line(&self, msg: &str) {
        write_line(msg);
    }

    /// `text` in bold and the SGR colour `code` (`"32"`: green) when colour is on for stderr.
    pub fn paint(&self, text: &str, code: &str) -> String {
        painted(text, &format!("1;{code}"), self.color)
    }
}

/// Writes `msg` and a newline to stderr. A message printed while a progress line is drawn takes the line's place;
/// the line is drawn again below it at the next tick.
fn write_line(msg: &str) {
    let mut screen = screen();
    let mut err = std::io::stderr().lock();
    if screen.drawn {
        let _ = write!(err, "\r{ERASE_LINE}");
        screen.drawn = false;
    }
    let _ = writeln!(err, "{msg}");
}

/// `text` with the SGR attributes `sgr` (`"32"`, `"1;31"`) when `color`, else as it is: for output that goes
/// elsewhere than stderr, such as a command's result on stdout (decide with [`color_wanted`] for that stream).
pub fn painted(text: &str, sgr: &str, color: bool) -> String {
    if color {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// A live progress display on stderr, one line: what is being done (labels aligned), a bar, done out of a total
/// known from the start, bytes for downloads, a spinner and the gems being worked on (a native extension's build
/// named as such). Draws only on a terminal; off one (a CI log), a plain line every [`LOG_INTERVAL`] says the
/// same and the rate, so a long install is never silent, while one that ends sooner prints nothing (with `-v`,
/// each event is a line too). Stops and clears itself when dropped. The line never reaches the terminal's last column, with room left for the `^C` the terminal
/// echoes; an interrupt clears it for good and says what was kept ([`interrupt_report`]).
pub struct Progress<'a> {
    ui: &'a Ui,
    state: std::sync::Arc<Mutex<ProgressState>>,
    ticker: Option<std::thread::JoinHandle<()>>,
    /// Dropped to wake the log reporter at once (it waits for its next line on the other end), so that the end of
    /// a display never waits for a tick.
    stop: Option<std::sync::mpsc::Sender<()>>,
}

#[derive(Default)]
struct ProgressState {
    /// Which bar this is: only the newest live bar draws, so that the install's bar waits below the downloads'.
    id: u64,
    verb: &'static str,
    total: usize,
    done: usize,
    bytes: u64,
    active: Vec<String>,
    /// How an item of `active` is shown (a gem's name without its version), and whether it builds a native
    /// extension; without an entry, as it is named.
    shown: std::collections::HashMap<String, (String, bool)>,
    tick: usize,
    stopped: bool,
}

/// What is on the terminal's current line, shared by every display and message of the process.
struct Screen {
    /// Whether a progress line is drawn there (and must be erased before anything else is written).
    drawn: bool,
}

static SCREEN: Mutex<Screen> = Mutex::new(Screen { drawn: false });

fn screen() -> std::sync::MutexGuard<'static, Screen> {
    SCREEN.lock().unwrap_or_else(|e| e.into_inner())
}

/// How often a progress display off a terminal says where it is: often enough that a CI log shows a slow or
/// stalled install moving (or not), as Bundler's and cargo's do, rarely enough that a fast one says nothing.
const LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// When this process's first progress display started: lines off a terminal fall due every [`LOG_INTERVAL`] from
/// it, whichever display is showing (downloads, then installs), and say how long the whole has taken.
static FIRST_SHOWN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// The interval between progress lines off a terminal. `KAMAL_LAUNCHER_PROGRESS_INTERVAL` (`1s`, `500ms`, or
/// seconds) exists for tests, which cannot wait 30 s for a line; anything unreadable leaves the default.
fn log_interval() -> std::time::Duration {
    std::env::var("KAMAL_LAUNCHER_PROGRESS_INTERVAL")
        .ok()
        .and_then(|v| parse_interval(v.trim()))
        .unwrap_or(LOG_INTERVAL)
}

fn parse_interval(text: &str) -> Option<std::time::Duration> {
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else {
        (text.strip_suffix('s').unwrap_or(text), 1.0)
    };
    let secs = number.trim().parse::<f64>().ok()? * scale;
    // Below 10 ms the log would be nothing but progress lines.
    (secs.is_finite() && secs >= 0.01).then(|| std::time::Duration::from_secs_f64(secs))
}

/// Erases the whole current line (the cursor stays where it is: `\r` first).
const ERASE_LINE: &str = "\x1b[2K";

/// Columns a progress line leaves free at its end: the `^C` a terminal echoes after it when Ctrl-C is pressed,
/// which must not wrap (the erase would then leave half of it behind), and the last column, never written.
const ECHO_ROOM: usize = 3;

/// What this process's progress displays have finished, for the line an interrupt leaves: gems whose download
/// is verified in the cache, and gems installed in the store.
static KEPT_DOWNLOADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static KEPT_INSTALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Whether the interrupt line is wanted (not with `-q`).
static REPORT_INTERRUPTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Ui {
    /// Starts a progress display for `total` items, all of them (those already done are counted with
    /// [`Progress::present`]): `verb` is "Downloading", "Installing" or "Building".
    pub fn progress_bar(&self, verb: &'static str, total: usize) -> Progress<'_> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        REPORT_INTERRUPTS.store(
            self.level >= Level::Normal,
            std::sync::atomic::Ordering::SeqCst,
        );
        crate::children::on_interrupt_report(interrupt_report);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        LIVE_BARS.lock().unwrap_or_else(|e| e.into_inner()).push(id);
        let state = std::sync::Arc::new(Mutex::new(ProgressState {
            id,
            verb,
            total,
            ..ProgressState::default()
        }));
        let ticker = (self.tty && self.level >= Level::Normal).then(|| {
            let state = state.clone();
            let color = self.color;
            std::thread::spawn(move || {
                loop {
                    {
                        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                        if s.stopped {
                            break;
                        }
                        let shown = LIVE_BARS.lock().unwrap_or_else(|e| e.into_inner()).last()
                            == Some(&s.id);
                        let mut screen = screen();
                        // Once interrupted, the line stays erased: the handler says what was kept.
                        if shown && !crate::children::interrupted() {
                            s.tick += 1;
                            // A line longer than the terminal wraps, and `\r` cannot take the wrapped part
                            // back: the bar is cut to the width, read at every tick (windows get resized).
                            // One write, so that a terminal never shows half a frame over the last.
                            let frame = format!("\r{}\x1b[K", s.render(width(), color));
                            let _ = std::io::stderr().lock().write_all(frame.as_bytes());
                            screen.drawn = true;
                        }
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            })
        });
        // The clock starts with the first display, not with its reporter thread.
        FIRST_SHOWN.get_or_init(std::time::Instant::now);
        let mut stop = None;
        let ticker = ticker.or_else(|| {
            (!self.tty && self.level >= Level::Normal).then(|| {
                let (sender, stopped) = std::sync::mpsc::channel();
                stop = Some(sender);
                let state = state.clone();
                let color = self.color;
                std::thread::spawn(move || log_progress(&state, &stopped, color))
            })
        });
        Progress {
            ui: self,
            state,
            ticker,
            stop,
        }
    }
}

/// Off a terminal: a line every [`log_interval`] from the first display's start, by the newest live display (the
/// one a terminal would show), until `stopped` says the display ended (its sender is dropped).
fn log_progress(
    state: &Mutex<ProgressState>,
    stopped: &std::sync::mpsc::Receiver<()>,
    color: bool,
) {
    use std::sync::mpsc::RecvTimeoutError;
    use std::time::Instant;
    let interval = log_interval();
    let first = *FIRST_SHOWN.get_or_init(Instant::now);
    // The rate is over the last interval, not the whole: a download that stalled says 0 B/s at once.
    let mut last = (Instant::now(), 0u64);
    loop {
        let since = first.elapsed();
        let ticks = since.as_nanos() / interval.as_nanos().max(1) + 1;
        let due = first + interval * u32::try_from(ticks).unwrap_or(u32::MAX);
        match stopped.recv_timeout(due.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let s = state.lock().unwrap_or_else(|e| e.into_inner());
        if s.stopped {
            return;
        }
        let now = Instant::now();
        let rate = (s.bytes.saturating_sub(last.1) as f64
            / now.duration_since(last.0).as_secs_f64().max(0.001)) as u64;
        last = (now, s.bytes);
        let newest = LIVE_BARS.lock().unwrap_or_else(|e| e.into_inner()).last() == Some(&s.id);
        if newest {
            let line = s.log_line(first.elapsed(), rate, color);
            drop(s);
            // Once interrupted, the handler's line is the last word: asked under the screen's lock, which the
            // handler takes to write that line, so that no progress line can follow it.
            let _screen = screen();
            if !crate::children::interrupted() {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
        }
    }
}

/// Whether to colour output on a stream that is (or is not) a terminal: never with `NO_COLOR`, always with
/// `CLICOLOR_FORCE` (other than `0`), as cargo, uv and clap read them; else on a terminal only.
pub fn color_wanted(tty: bool, var: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    if set("NO_COLOR") {
        return false;
    }
    if var("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    tty
}

/// The terminal's width in columns: `COLUMNS` when it holds a number (as clap's help and `ls` read it), else
/// stderr's terminal, else 80.
pub fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
        .or_else(|| {
            terminal_size::terminal_size_of(std::io::stderr()).map(|(w, _)| usize::from(w.0))
        })
        .unwrap_or(80)
}

/// `line` cut to fit a terminal `width` columns wide, ending in `…` when cut: [`ECHO_ROOM`] columns stay free, so
/// neither the cursor nor an echoed `^C` ever wraps.
fn fit(line: &str, width: usize) -> String {
    let room = width.saturating_sub(ECHO_ROOM);
    if line.chars().count() <= room {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(room.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Progress bars alive in this process, oldest first.
static LIVE_BARS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

impl ProgressState {
    /// The names of what is at work, as shown: native builds (which may take minutes), then the rest.
    fn at_work(&self) -> (Vec<&str>, Vec<&str>) {
        let (mut native, mut others) = (Vec::new(), Vec::new());
        for name in &self.active {
            match self.shown.get(name) {
                Some((shown, true)) => native.push(shown.as_str()),
                Some((shown, false)) => others.push(shown.as_str()),
                None => others.push(name.as_str()),
            }
        }
        (native, others)
    }

    /// The line for a log (off a terminal), `elapsed` since the first display started, with the download rate of
    /// the last interval: `Downloading: 3 of 23 gems, 412.0 KiB at 1.0 KiB/s; waiting on net-ssh, ed25519
    /// (1m30s elapsed)`. Plain text of any length: a log does not wrap, and `\r` would garble it.
    fn log_line(&self, elapsed: std::time::Duration, rate: u64, color: bool) -> String {
        let mut line = format!(
            "{}: {} of {}",
            painted(self.verb, "1;32", color),
            self.done,
            count(self.total, "gem", "gems")
        );
        if self.verb == "Downloading" {
            line.push_str(&format!(
                ", {} at {}/s",
                human_bytes(self.bytes),
                human_bytes(rate)
            ));
        }
        let (native, others) = self.at_work();
        if !native.is_empty() {
            line.push_str(&format!(
                "; building {} (native extension{})",
                native.join(", "),
                if native.len() == 1 { "" } else { "s" }
            ));
        }
        if !others.is_empty() {
            // A download waits on its server; anything else is being worked on here.
            let doing = match self.verb {
                "Downloading" => "waiting on",
                "Installing" => "installing",
                "Building" => "building",
                _ => "working on",
            };
            line.push_str(&format!("; {doing} {}", others.join(", ")));
        }
        line.push_str(&format!(" ({} elapsed)", clock(elapsed)));
        line
    }

    /// The line for a terminal `width` columns wide (see [`fit`]); with `color`, the label is painted.
    fn render(&self, width: usize, color: bool) -> String {
        const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
        // As wide as the longest label ("Downloading"), right-aligned as cargo's: the bars of successive
        // displays start in the same column.
        const LABEL: usize = 11;
        // 14 at 80 columns, which leaves room for "building bigdecimal (native extension)" and more.
        let bar = (width.saturating_sub(52) / 2).clamp(8, 30);
        let filled = (self.done * bar)
            .checked_div(self.total)
            .unwrap_or(0)
            .min(bar);
        let head = usize::from(filled < bar && filled > 0);
        let digits = self.total.to_string().len();
        let mut line = format!(
            "{:>LABEL$} [{}{}{}] {:>digits$}/{}",
            self.verb,
            "=".repeat(filled - head),
            ">".repeat(head),
            " ".repeat(bar - filled),
            self.done,
            self.total
        );
        if self.verb == "Downloading" {
            line.push_str(&format!("  {:>9}", human_bytes(self.bytes)));
        }
        if !self.active.is_empty() {
            let (native, others) = self.at_work();
            // The names first: on a narrow terminal, the end of the line is what is cut.
            let mut what = String::new();
            if !native.is_empty() {
                what = format!(
                    "building {} (native extension{})",
                    native.join(", "),
                    if native.len() == 1 { "" } else { "s" },
                );
                if !others.is_empty() {
                    what.push_str("; ");
                }
            }
            what.push_str(&others.join(", "));
            line.push_str(&format!("  {} {what}", SPINNER[self.tick % SPINNER.len()]));
        }
        let line = fit(&line, width);
        let label = format!("{:>LABEL$}", self.verb);
        match line.strip_prefix(&label) {
            Some(rest) => format!("{}{rest}", painted(&label, "1;32", color)),
            None => line,
        }
    }
}

/// Called by the interrupt handler (`children.rs`) once everything the launcher started has stopped and its
/// temporary area is removed: erases the progress line for good (nothing draws once interrupted) and says, in one
/// line, what the run kept. Everything kept is complete: a download is verified before it is renamed into the
/// cache, a gem is sealed before it is renamed into the store.
fn interrupt_report(signal: i32) {
    use std::sync::atomic::Ordering::SeqCst;
    let mut screen = screen();
    let mut err = std::io::stderr().lock();
    if screen.drawn {
        let _ = write!(err, "\r{ERASE_LINE}");
        screen.drawn = false;
    }
    if !REPORT_INTERRUPTS.load(SeqCst) {
        return;
    }
    let how = match signal {
        libc::SIGINT => "interrupted",
        libc::SIGTERM => "terminated",
        libc::SIGHUP => "hung up",
        _ => "stopped",
    };
    let downloads = count(KEPT_DOWNLOADS.load(SeqCst), "download", "downloads");
    let installs = count(
        KEPT_INSTALLS.load(SeqCst),
        "installed gem",
        "installed gems",
    );
    let kept = match (KEPT_DOWNLOADS.load(SeqCst), KEPT_INSTALLS.load(SeqCst)) {
        (0, 0) => String::new(),
        (_, 0) => format!("{downloads} kept; "),
        (0, _) => format!("{installs} kept; "),
        _ => format!("{downloads} and {installs} kept; "),
    };
    let _ = writeln!(err, "{how}: {kept}nothing half-installed");
}

impl Progress<'_> {
    fn update(&self, f: impl FnOnce(&mut ProgressState)) {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Counts an item that was done before this display started (a gem already downloaded or installed).
    pub fn present(&self) {
        self.update(|s| s.done += 1);
        self.kept();
    }

    /// Counts downloaded bytes.
    pub fn add_bytes(&self, n: u64) {
        self.update(|s| s.bytes += n);
    }

    /// Marks `name` as being worked on (shown beside the spinner).
    pub fn started(&self, name: &str) {
        self.update(|s| s.active.push(name.to_string()));
        self.ui.verbose(&format!("{} {name}", self.state_verb()));
    }

    /// Marks `name` as being worked on, shown as `shown` (a gem's name without its version, which the plan
    /// has), and whether it builds a native extension (said so: it may take minutes).
    pub fn started_as(&self, name: &str, shown: &str, native: bool) {
        self.update(|s| {
            s.shown
                .insert(name.to_string(), (shown.to_string(), native));
        });
        self.started(name);
    }

    /// Marks `name` as no longer worked on, not done (it failed).
    pub fn abandoned(&self, name: &str) {
        self.update(|s| {
            s.active.retain(|a| a != name);
            s.shown.remove(name);
        });
    }

    /// Counts one more item kept, for the line an interrupt leaves.
    fn kept(&self) {
        let kept = match self.state_verb() {
            "Downloading" => &KEPT_DOWNLOADS,
            "Installing" => &KEPT_INSTALLS,
            _ => return,
        };
        kept.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Marks `name` as done; with `-v`, a line says what was done to it (a download, an install, a build), when
    /// it was started here (a gem already downloaded is counted without a line).
    pub fn finished(&self, name: &str) {
        let mut was_active = false;
        self.update(|s| {
            was_active = s.active.iter().any(|a| a == name);
            s.active.retain(|a| a != name);
            s.shown.remove(name);
            s.done += 1;
        });
        self.kept();
        if was_active {
            self.ui
                .verbose(&format!("{} {name}", past_tense(self.state_verb())));
        }
    }

    fn state_verb(&self) -> &'static str {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).verb
    }
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        let id = self.state.lock().unwrap_or_else(|e| e.into_inner()).id;
        LIVE_BARS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|&live| live != id);
        self.update(|s| s.stopped = true);
        drop(self.stop.take());
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
            let mut screen = screen();
            if screen.drawn {
                let _ = write!(std::io::stderr().lock(), "\r{ERASE_LINE}");
                screen.drawn = false;
            }
        }
    }
}

/// Writes a command's result (`cache key`, `cache dir`, completions) to stdout. A reader that closed the pipe
/// (`| head -1`) has what it wanted: that is not an error.
pub fn result(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// What a progress display's verb did, for the line that says an item is finished: "Fetching" → "downloaded".
fn past_tense(verb: &str) -> &'static str {
    match verb {
        "Fetching" | "Downloading" => "downloaded",
        "Installing" => "installed",
        "Building" => "built",
        _ => "finished",
    }
}

/// A duration as a log says it, to the second: `45s`, `1m30s`, `1h02m`.
fn clock(elapsed: std::time::Duration) -> String {
    let secs = elapsed.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// `n` and the noun that fits it: "1 gem", "3 gems", "0 gems"; never "gem(s)".
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Formats a byte count for people.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    // 1023.96 KiB would read "1024.0 KiB": the next unit says it.
    if unit > 0 && unit + 1 < UNITS.len() && (value * 10.0).round() >= 10240.0 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_follows_no_color_then_clicolor_force_then_the_terminal() {
        // (NO_COLOR, CLICOLOR_FORCE, terminal) -> colour
        let rows = [
            (None, None, true, true),
            (None, None, false, false),
            (Some("1"), None, true, false),
            (Some("1"), Some("1"), true, false),
            (Some(""), None, true, true),
            (None, Some("1"), false, true),
            (None, Some("0"), false, false),
            (None, Some(""), false, false),
        ];
        for (no_color, force, tty, expected) in rows {
            let var = |k: &str| match k {
                "NO_COLOR" => no_color.map(std::ffi::OsString::from),
                "CLICOLOR_FORCE" => force.map(std::ffi::OsString::from),
                _ => None,
            };
            assert_eq!(
                color_wanted(tty, &var),
                expected,
                "{no_color:?} {force:?} {tty}"
            );
        }
    }

    #[test]
    fn the_progress_line_fits_the_terminal() {
        let long = format!(
            "Installing [====    ] 3/30 gems  ⠋ {}",
            "activesupport, ".repeat(20)
        );
        for width in [20, 40, 80] {
            let shown = fit(&long, width);
            // Room for the `^C` a terminal echoes, and the last column untouched.
            assert_eq!(shown.chars().count(), width - 3, "{shown}");
            assert!(shown.ends_with('…'));
        }
        assert_eq!(fit("short", 80), "short");
    }

    fn state(verb: &'static str, done: usize, total: usize) -> ProgressState {
        ProgressState {
            verb,
            done,
            total,
            ..ProgressState::default()
        }
    }

    #[test]
    fn progress_lines_align_and_say_what_is_built() {
        let mut downloading = state("Downloading", 9, 23);
        downloading.bytes = 1024 * 1024;
        downloading.active = vec!["net-ssh-7.3.3".into()];
        downloading
            .shown
            .insert("net-ssh-7.3.3".into(), ("net-ssh".into(), false));
        let mut installing = state("Installing", 19, 23);
        installing.active = vec!["thor-1.5.0".into(), "bigdecimal-4.1.2".into()];
        installing
            .shown
            .insert("bigdecimal-4.1.2".into(), ("bigdecimal".into(), true));
        let down = downloading.render(80, false);
        let inst = installing.render(80, false);
        assert_eq!(
            down,
            "Downloading [====>         ]  9/23    1.0 MiB  ⠋ net-ssh"
        );
        // The build first, then the others, as far as they fit.
        assert_eq!(
            inst,
            " Installing [==========>   ] 19/23  ⠋ building bigdecimal (native extension)…"
        );
        assert_eq!(down.find('['), inst.find('['));
        for width in [20, 60, 80, 160] {
            assert!(inst.chars().count() <= 80 - ECHO_ROOM);
            let line = installing.render(width, false);
            assert!(line.chars().count() <= width - ECHO_ROOM, "{width}: {line}");
        }
        // Colour paints the label only; the width is the same.
        let painted = installing.render(80, true);
        assert_eq!(
            painted.replace("\x1b[1;32m", "").replace("\x1b[0m", ""),
            inst
        );
    }

    #[test]
    fn log_lines_say_what_is_done_left_and_waited_on() {
        let mut downloading = state("Downloading", 3, 23);
        downloading.bytes = 412 * 1024;
        downloading.active = vec!["net-ssh-7.3.3".into(), "ed25519-1.4.0".into()];
        for (full, name) in [("net-ssh-7.3.3", "net-ssh"), ("ed25519-1.4.0", "ed25519")] {
            downloading.shown.insert(full.into(), (name.into(), false));
        }
        assert_eq!(
            downloading.log_line(std::time::Duration::from_secs(90), 1024, false),
            "Downloading: 3 of 23 gems, 412.0 KiB at 1.0 KiB/s; waiting on net-ssh, ed25519 (1m30s elapsed)"
        );
        let mut installing = state("Installing", 22, 23);
        installing.active = vec!["thor-1.5.0".into(), "bigdecimal-4.1.2".into()];
        installing
            .shown
            .insert("bigdecimal-4.1.2".into(), ("bigdecimal".into(), true));
        assert_eq!(
            installing.log_line(std::time::Duration::from_secs(3725), 0, false),
            "Installing: 22 of 23 gems; building bigdecimal (native extension); installing thor-1.5.0 (1h02m elapsed)"
        );
        assert_eq!(clock(std::time::Duration::from_millis(59_999)), "59s");
        assert_eq!(
            parse_interval("1s"),
            Some(std::time::Duration::from_secs(1))
        );
        assert_eq!(
            parse_interval("250ms"),
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(parse_interval("2"), Some(std::time::Duration::from_secs(2)));
        assert_eq!(parse_interval("0"), None);
        assert_eq!(parse_interval("soon"), None);
    }

    #[test]
    fn bytes_for_people() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(human_bytes(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(human_bytes(1023), "1023 B");
    }
}
