//! The launcher's own output. stdout belongs to kamal, so everything here goes to stderr: progress on a
//! terminal, nothing off a terminal unless asked (`-v`), warnings and errors always.

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
        let _ = writeln!(std::io::stderr().lock(), "{msg}");
    }

    /// `text` in bold and the SGR colour `code` (`"32"`: green) when colour is on for stderr.
    pub fn paint(&self, text: &str, code: &str) -> String {
        painted(text, &format!("1;{code}"), self.color)
    }
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

/// A live progress display on stderr: a bar for downloads, a spinner naming the gems being built. Draws only
/// on a terminal (with `-v`, each event is a line instead); stops and clears itself when dropped.
pub struct Progress<'a> {
    ui: &'a Ui,
    state: std::sync::Arc<Mutex<ProgressState>>,
    ticker: Option<std::thread::JoinHandle<()>>,
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
    tick: usize,
    stopped: bool,
}

impl Ui {
    /// Starts a progress display for `total` items (`verb` is "Fetching" or "Installing").
    pub fn progress_bar(&self, verb: &'static str, total: usize) -> Progress<'_> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
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
            std::thread::spawn(move || {
                loop {
                    {
                        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                        if s.stopped {
                            break;
                        }
                        let shown = LIVE_BARS.lock().unwrap_or_else(|e| e.into_inner()).last()
                            == Some(&s.id);
                        if shown {
                            s.tick += 1;
                            // A line longer than the terminal wraps, and `\r` cannot take the wrapped part
                            // back: the bar is cut to the width, read at every tick (windows get resized).
                            let width = width();
                            let _ =
                                write!(std::io::stderr(), "\r\x1b[2K{}", fit(&s.render(), width));
                        }
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            })
        });
        Progress {
            ui: self,
            state,
            ticker,
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

/// `line` cut to fit `width` terminal columns (one left free, so the cursor never wraps), ending in `…` when cut.
fn fit(line: &str, width: usize) -> String {
    let room = width.saturating_sub(1);
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
    fn render(&self) -> String {
        const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
        let width = 24;
        let filled = (self.done * width).checked_div(self.total).unwrap_or(0);
        let mut line = format!(
            "{} [{}{}] {}/{} gems",
            self.verb,
            "=".repeat(filled),
            " ".repeat(width - filled),
            self.done,
            self.total
        );
        if self.bytes > 0 {
            line.push_str(&format!(", {}", human_bytes(self.bytes)));
        }
        if !self.active.is_empty() {
            line.push_str(&format!(
                "  {} {}",
                SPINNER[self.tick % SPINNER.len()],
                self.active.join(", ")
            ));
        }
        line
    }
}

impl Progress<'_> {
    fn update(&self, f: impl FnOnce(&mut ProgressState)) {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Adds `n` items to the total, for work discovered as it goes.
    pub fn add_total(&self, n: usize) {
        self.update(|s| s.total += n);
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

    /// Marks `name` as done.
    pub fn finished(&self, name: &str) {
        self.update(|s| {
            s.active.retain(|a| a != name);
            s.done += 1;
        });
        self.ui.verbose(&format!("done {name}"));
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
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
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
            assert_eq!(shown.chars().count(), width - 1, "{shown}");
            assert!(shown.ends_with('…'));
        }
        assert_eq!(fit("short", 80), "short");
    }

    #[test]
    fn bytes_for_people() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
