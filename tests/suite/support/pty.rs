//! The launcher on a pseudo-terminal, as a user's terminal runs it: `openpty` with a window size, the launcher
//! leading a session whose controlling terminal it is (so a `^C` written to the terminal is the kernel's SIGINT
//! to its foreground group, echoed as `^C`, exactly as in a shell), and what the terminal shows, read back through
//! a small terminal emulator ([`Terminal`]) that also notes every glyph written to the last column.
//!
//! `openpty` is POSIX-ish and everywhere the launcher runs: glibc (libutil, merged into libc from 2.34, which the
//! `libc` crate links), musl, and macOS's libSystem.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A process running on a pseudo-terminal; dropped unwaited, its whole session is killed.
pub struct Pty {
    master: File,
    pid: u32,
    width: usize,
    height: usize,
    exit: mpsc::Receiver<ExitStatus>,
    output: Arc<Output>,
    reader: Option<JoinHandle<()>>,
    finished: bool,
}

#[derive(Default)]
struct Output {
    state: Mutex<(Vec<u8>, bool)>,
    changed: Condvar,
}

/// Marks `fd` close-on-exec: no other process (another test's child) may hold the terminal open.
fn cloexec(fd: i32) {
    // SAFETY: sets a descriptor flag on a descriptor this process owns.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
}

impl Pty {
    /// Starts `cmd` on a new terminal `width` × `height`, as its controlling terminal, with stdin, stdout and
    /// stderr on it.
    pub fn spawn(mut cmd: Command, width: u16, height: u16) -> Pty {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors; the name and termios are not asked for (the terminal's defaults:
        // ISIG, ECHO, ECHOCTL, ONLCR, as a terminal emulator's).
        let r = unsafe {
            libc::openpty(
                &raw mut master,
                &raw mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &raw const size,
            )
        };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        cloexec(master);
        cloexec(slave);
        // SAFETY: both descriptors were just opened and are owned here alone.
        let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let stdio = || Stdio::from(slave.try_clone().expect("dup the terminal"));
        cmd.stdin(stdio()).stdout(stdio()).stderr(stdio());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // A session of its own, with this terminal as its controlling terminal: its group is the
                // terminal's foreground group, which the kernel sends SIGINT to on `^C`.
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn on the terminal");
        // Only the child holds the terminal now: reading it ends once the child and what it started are gone.
        drop(cmd);
        drop(slave);
        let pid = child.id();
        let output = Arc::new(Output::default());
        let reader = {
            let output = Arc::clone(&output);
            let mut master = master.try_clone().expect("dup the master");
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    // EIO (Linux) or 0 once no process holds the terminal.
                    let n = master.read(&mut buf).unwrap_or(0);
                    let mut state = output.state.lock().unwrap();
                    if n == 0 {
                        state.1 = true;
                    } else {
                        state.0.extend_from_slice(&buf[..n]);
                    }
                    drop(state);
                    output.changed.notify_all();
                    if n == 0 {
                        break;
                    }
                }
            })
        };
        let (exit_tx, exit) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = exit_tx.send(child.wait().expect("wait for the child"));
        });
        Pty {
            master,
            pid,
            width: usize::from(width),
            height: usize::from(height),
            exit,
            output,
            reader: Some(reader),
            finished: false,
        }
    }

    /// Types `bytes` on the terminal's keyboard (`b"\x03"` is Ctrl-C).
    pub fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("write to the terminal");
    }

    /// Everything the terminal received so far, escapes included.
    pub fn raw(&self) -> Vec<u8> {
        self.output.state.lock().unwrap().0.clone()
    }

    /// What the terminal shows now, as of the last line or frame received whole (see [`settled`]).
    pub fn screen(&self) -> Terminal {
        Terminal::show(settled(&self.raw()), self.width, self.height)
    }

    /// Blocks until `done` holds for the screen (checked at each output, as [`Pty::screen`] shows it), or panics
    /// with the screen after `timeout`, killing the process.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, done: impl Fn(&Terminal) -> bool) {
        let deadline = Instant::now() + timeout;
        let mut state = self.output.state.lock().unwrap();
        loop {
            if done(&Terminal::show(settled(&state.0), self.width, self.height)) {
                return;
            }
            let now = Instant::now();
            if now >= deadline || state.1 {
                break;
            }
            state = self
                .output
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap()
                .0;
        }
        drop(state);
        self.kill();
        panic!(
            "the terminal never showed {what} within {timeout:?}; it shows:\n{}",
            self.screen().text()
        );
    }

    /// Waits for the process to exit and the terminal to be closed by all it started; returns its status and
    /// everything the terminal received.
    pub fn wait(mut self, timeout: Duration) -> (ExitStatus, Vec<u8>) {
        let status = match self.exit.recv_timeout(timeout) {
            Ok(status) => status,
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                panic!(
                    "did not exit within {timeout:?}; the terminal shows:\n{}",
                    self.screen().text()
                );
            }
            Err(RecvTimeoutError::Disconnected) => panic!("the waiter died"),
        };
        self.finished = true;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut state = self.output.state.lock().unwrap();
        while !state.1 && Instant::now() < deadline {
            state = self
                .output
                .changed
                .wait_timeout(state, deadline - Instant::now())
                .unwrap()
                .0;
        }
        let eof = state.1;
        drop(state);
        assert!(
            eof,
            "something the process started still holds the terminal"
        );
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status, self.raw())
    }

    fn kill(&mut self) {
        // The session's group is the child's pid (setsid).
        let _ = Command::new("/bin/sh")
            .args([
                "-c",
                "kill -s KILL -- \"-$0\" 2>/dev/null",
                &self.pid.to_string(),
            ])
            .status();
        let _ = self.exit.recv_timeout(Duration::from_secs(10));
        self.finished = true;
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if !self.finished {
            self.kill();
        }
    }
}

/// `raw` up to the end of its last line (`\n`) or redrawn line (`ESC[K`, which ends a progress frame): a read
/// may return part of a write, and a frame half received over the last is not what the terminal settles on.
pub fn settled(raw: &[u8]) -> &[u8] {
    let line = raw.iter().rposition(|&b| b == b'\n').map(|i| i + 1);
    let frame = raw.windows(3).rposition(|w| w == b"\x1b[K").map(|i| i + 3);
    &raw[..line.max(frame).unwrap_or(0)]
}

/// One character cell: the glyph and the SGR parameters in force when it was written (`""`: none).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cell {
    glyph: char,
    sgr: String,
}

const BLANK: Cell = Cell {
    glyph: ' ',
    sgr: String::new(),
};

/// A terminal emulator as small as these screens need: printable text with a deferred wrap at the last column
/// (as xterm and VT100s do), CR, LF, BS, TAB, erase in line and display, cursor movement and SGR. Anything else is
/// collected in [`Terminal::unknown`] for the tests to refuse.
#[derive(Debug, Clone)]
pub struct Terminal {
    width: usize,
    height: usize,
    /// Every line written, scrolled-off ones included; the screen is the last `height`.
    lines: Vec<Vec<Cell>>,
    row: usize,
    col: usize,
    /// The cursor sits past a glyph written in the last column: the next glyph starts a new line.
    wrap_pending: bool,
    sgr: String,
    /// The text of the line each time a glyph was written to the last column.
    pub last_column: Vec<String>,
    /// Escape sequences this emulator does not know.
    pub unknown: Vec<String>,
}

impl Terminal {
    /// What a terminal `width` × `height` shows after receiving `bytes`.
    pub fn show(bytes: &[u8], width: usize, height: usize) -> Terminal {
        let mut t = Terminal {
            width,
            height,
            lines: vec![Vec::new()],
            row: 0,
            col: 0,
            wrap_pending: false,
            sgr: String::new(),
            last_column: Vec::new(),
            unknown: Vec::new(),
        };
        let text = String::from_utf8_lossy(bytes);
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\x1b' => {
                    if chars.peek() == Some(&'[') {
                        chars.next();
                        let mut params = String::new();
                        let mut end = None;
                        for c in chars.by_ref() {
                            if ('\x40'..='\x7e').contains(&c) {
                                end = Some(c);
                                break;
                            }
                            params.push(c);
                        }
                        t.csi(&params, end.unwrap_or('?'));
                    } else {
                        let next = chars.next().map(String::from).unwrap_or_default();
                        t.unknown.push(format!("ESC {next}"));
                    }
                }
                '\r' => {
                    t.col = 0;
                    t.wrap_pending = false;
                }
                '\n' => t.line_feed(),
                '\x08' => {
                    t.col = t.col.saturating_sub(1);
                    t.wrap_pending = false;
                }
                '\t' => t.col = ((t.col / 8 + 1) * 8).min(t.width - 1),
                c if c.is_control() => {}
                c => t.put(c),
            }
        }
        t
    }

    fn line_feed(&mut self) {
        self.wrap_pending = false;
        self.row += 1;
        if self.row == self.lines.len() {
            self.lines.push(Vec::new());
        }
    }

    fn put(&mut self, glyph: char) {
        if self.wrap_pending {
            self.line_feed();
            self.col = 0;
        }
        let line = &mut self.lines[self.row];
        if line.len() <= self.col {
            line.resize(self.col + 1, BLANK);
        }
        line[self.col] = Cell {
            glyph,
            sgr: self.sgr.clone(),
        };
        if self.col + 1 == self.width {
            let text = plain(line);
            self.last_column.push(text);
            self.wrap_pending = true;
        } else {
            self.col += 1;
        }
    }

    fn csi(&mut self, params: &str, end: char) {
        let n = |default: usize| {
            params
                .split(';')
                .next()
                .and_then(|p| p.parse::<usize>().ok())
                .unwrap_or(default)
        };
        match end {
            'm' => {
                self.sgr = if params == "0" {
                    String::new()
                } else {
                    params.to_string()
                }
            }
            'K' => {
                let line = &mut self.lines[self.row];
                match n(0) {
                    0 => line.truncate(self.col),
                    1 => {
                        for cell in line.iter_mut().take(self.col + 1) {
                            *cell = BLANK;
                        }
                    }
                    _ => line.clear(),
                }
            }
            'J' if n(0) == 2 => {
                let top = self.lines.len().saturating_sub(self.height);
                for line in &mut self.lines[top..] {
                    line.clear();
                }
            }
            'A' => {
                let top = self.lines.len().saturating_sub(self.height);
                self.row = self.row.saturating_sub(n(1)).max(top);
            }
            'B' => {
                for _ in 0..n(1) {
                    self.line_feed();
                }
            }
            'C' => self.col = (self.col + n(1)).min(self.width - 1),
            'D' => self.col = self.col.saturating_sub(n(1)),
            'G' => self.col = n(1).clamp(1, self.width) - 1,
            'h' | 'l' if params.starts_with('?') => {}
            _ => self.unknown.push(format!("CSI {params}{end}")),
        }
        if matches!(end, 'C' | 'D' | 'G' | 'A' | 'B') {
            self.wrap_pending = false;
        }
    }

    /// The screen and what scrolled off it, one line each, right-trimmed, without trailing blank lines; colour
    /// shown as `␛[…m` where it changes.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            let mut sgr = "";
            let mut text = String::new();
            for cell in line {
                if cell.sgr != sgr {
                    text.push_str(&format!(
                        "␛[{}m",
                        if cell.sgr.is_empty() { "0" } else { &cell.sgr }
                    ));
                    sgr = &cell.sgr;
                }
                text.push(cell.glyph);
            }
            if !sgr.is_empty() {
                text.push_str("␛[0m");
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        while out.ends_with("\n\n") {
            out.pop();
        }
        if out == "\n" {
            out.clear();
        }
        out
    }

    /// The lines as plain text (no colour), scrolled-off ones included.
    pub fn plain_lines(&self) -> Vec<String> {
        self.lines
            .iter()
            .map(|l| plain(l).trim_end().to_string())
            .collect()
    }

    /// The line the cursor is on, as plain text.
    pub fn cursor_line(&self) -> String {
        plain(&self.lines[self.row]).trim_end().to_string()
    }
}

fn plain(line: &[Cell]) -> String {
    line.iter().map(|c| c.glyph).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulator_wraps_late_erases_and_notes_the_last_column() {
        let t = Terminal::show(b"abcde\r\x1b[Kxy\x1b[1;32mz\x1b[0m\r\n12345678", 5, 3);
        assert_eq!(t.text(), "xy␛[1;32mz␛[0m\n12345\n678\n");
        assert_eq!(t.last_column, vec!["abcde", "12345"]);
        // A glyph in the last column leaves the cursor there until the next glyph: `\r` stays on the line.
        let t = Terminal::show(b"abcde\r\x1b[2Kok", 5, 3);
        assert_eq!(t.text(), "ok\n");
        assert!(t.unknown.is_empty());
    }
}
