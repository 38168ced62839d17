//! The one place that writes to the terminal.
//!
//! cargo's console rule: human output (status lines, warnings, errors, tables) goes to stderr;
//! machine output (`--json`) goes to stdout, one JSON document or one JSON Lines event per line.
//! Commands never call `println!`/`eprintln!` themselves, so `--quiet`, colour and JSON mode are
//! decided here once.

use std::io::{self, IsTerminal, Write};

use clap::ValueEnum;

/// `n` of a noun, singular when there is one: `count(1, "host")` is "1 host", `count(3,
/// "wave")` is "3 waves". For the nouns of the run display and `show` (all plural with -s).
pub fn count<N: std::fmt::Display + PartialEq + From<u8>>(n: N, noun: &str) -> String {
    if n == N::from(1) {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `--color`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// How much human output to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// Owns stdout and stderr for the whole process.
#[derive(Debug)]
pub struct Console {
    color: bool,
    verbosity: Verbosity,
    stderr_is_tty: bool,
    stdin_is_tty: bool,
}

impl Console {
    pub fn new(color: ColorChoice, verbosity: Verbosity) -> Self {
        let stderr_is_tty = io::stderr().is_terminal();
        let color = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stderr_is_tty && std::env::var_os("NO_COLOR").is_none(),
        };
        Console {
            color,
            verbosity,
            stderr_is_tty,
            stdin_is_tty: io::stdin().is_terminal(),
        }
    }

    pub fn color(&self) -> bool {
        self.color
    }

    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }

    /// True when stderr is a terminal (progress bars make sense).
    pub fn is_interactive(&self) -> bool {
        self.stderr_is_tty
    }

    /// True when a question can be asked and answered.
    pub fn can_prompt(&self) -> bool {
        self.stdin_is_tty && self.stderr_is_tty
    }

    /// A human status line: a right-aligned coloured verb and a message (cargo style).
    pub fn status(&self, verb: &str, message: impl std::fmt::Display) {
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        let verb = self.paint(Paint::Status, &format!("{verb:>12}"));
        self.write_err(&format!("{verb} {message}\n"));
    }

    /// Human text as is (already formatted, may span lines). Suppressed by `--quiet`.
    pub fn text(&self, text: impl std::fmt::Display) {
        if self.verbosity > Verbosity::Quiet {
            self.write_err(&text.to_string());
        }
    }

    /// Only with `-v`.
    pub fn verbose(&self, text: impl std::fmt::Display) {
        if self.verbosity == Verbosity::Verbose {
            self.write_err(&format!("{text}\n"));
        }
    }

    pub fn warn(&self, message: impl std::fmt::Display) {
        let label = self.paint(Paint::Warning, "warning");
        self.write_err(&format!("{label}: {message}\n"));
    }

    /// Errors are printed even with `--quiet`.
    pub fn error(&self, message: impl std::fmt::Display) {
        let label = self.paint(Paint::Error, "error");
        self.write_err(&format!("{label}: {message}\n"));
    }

    /// Machine output: one line on stdout.
    pub fn json_line(&self, value: &serde_json::Value) {
        let mut out = io::stdout().lock();
        // A closed stdout (`sluice ... --json | head`) is the reader's choice, not our error.
        let _ = serde_json::to_writer(&mut out, value);
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }

    /// Machine output: a whole document on stdout, pretty-printed.
    pub fn json_document(&self, value: &serde_json::Value) {
        let mut out = io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut out, value);
        let _ = out.write_all(b"\n");
    }

    /// Raw bytes to stdout (e.g. `--dot`).
    pub fn stdout(&self, text: &str) {
        let _ = io::stdout().lock().write_all(text.as_bytes());
    }

    /// Applies a colour when colour is on.
    pub fn paint(&self, paint: Paint, text: &str) -> String {
        paint_text(self.color, paint, text)
    }

    fn write_err(&self, text: &str) {
        let _ = io::stderr().lock().write_all(text.as_bytes());
    }
}

/// `text` in the colour of `paint` when `color` is on.
pub fn paint_text(color: bool, paint: Paint, text: &str) -> String {
    if !color {
        return text.to_string();
    }
    let code = match paint {
        Paint::Status => "1;32",
        Paint::Warning => "1;33",
        Paint::Error => "1;31",
        Paint::Bold => "1",
        Paint::Ok => "32",
        Paint::Bad => "31",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// Colours by meaning, not by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paint {
    Status,
    Warning,
    Error,
    Bold,
    Ok,
    Bad,
}
