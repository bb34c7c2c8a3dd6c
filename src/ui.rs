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
    /// Whether a transient status line is on screen and must be cleared before other output.
    status_shown: Mutex<bool>,
}

impl Ui {
    /// A UI for this process's stderr.
    pub fn new(level: Level) -> Ui {
        let tty = std::io::stderr().is_terminal();
        let color = tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Ui {
            level,
            tty,
            color,
            status_shown: Mutex::new(false),
        }
    }

    /// Whether progress is worth drawing.
    pub fn shows_progress(&self) -> bool {
        (self.tty && self.level >= Level::Normal) || self.level == Level::Verbose
    }

    /// A transient progress line: redrawn in place on a terminal, a plain line with `-v`.
    pub fn progress(&self, msg: &str) {
        if !self.shows_progress() {
            return;
        }
        let mut shown = self.status_shown.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{msg}");
            *shown = true;
        } else {
            let _ = writeln!(err, "{msg}");
        }
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

    /// Removes a transient status line, if any.
    pub fn clear(&self) {
        let mut shown = self.status_shown.lock().unwrap_or_else(|e| e.into_inner());
        if *shown {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            *shown = false;
        }
    }

    fn line(&self, msg: &str) {
        self.clear();
        let _ = writeln!(std::io::stderr().lock(), "{msg}");
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[1;{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}
