//! `become` through sudo: the command line around the user's command, and reading sudo's part of
//! stderr until the command has really started.
//!
//! Without a password sluice runs `sudo -n`, which fails at once when sudo would ask. With a
//! password it runs `sudo -S -p MARKER`: sudo writes the marker to stderr when, and only when, it
//! reads a password, and the client answers with the password line on the channel's stdin. The
//! password is therefore never on a command line, and never sent when sudo does not ask for it
//! (a `NOPASSWD` rule, or root): it cannot end up on the command's stdin.
//!
//! Under sudo a small wrapper prints [`STARTED_MARKER`] with its pid before it runs the command.
//! Everything on stderr before that marker is sudo's; a channel that ends without it is a
//! refused `become`, classified by [`refusal`] (password, TTY, not allowed, no sudo), never a
//! plain "exit 1" of the user's command. The command's stdin is sent only after the marker:
//! first the frame of the command's secret values, which the prologue inside the wrapped
//! command reads as the become user ([`crate::secret_stdin`]), then its own stdin. The text on
//! sudo's command line names those values by shell variables, never holds them.
//!
//! With a timeout the wrapper `exec`s coreutils `timeout -s KILL`, which makes itself leader of a
//! new process group: the pid in the marker is that group. On timeout the client kills the group
//! with a second `kill` through the same `become` (the login user may not signal the other user's
//! processes), and `timeout` itself kills it a second after the limit if the client cannot.

use std::time::Duration;

use super::shell::quote;
use crate::transport::{Become, ExitStatus};

/// sudo's password prompt (`sudo -p`), so the client knows when sudo reads the password. It
/// does not end with `\x1e`: through the runner, a trailing `\x1e` could be the start of a frame
/// and would be held back until more output came (`ssh::runner::frames`), and sudo prints
/// nothing more while it waits for the password.
pub const PROMPT_MARKER: &[u8] = b"\x1esluice-sudo-prompt\x1e>";

/// First line the command's wrapper prints on stderr under sudo: `MARKER<pid>\n`.
pub const STARTED_MARKER: &[u8] = b"\x1esluice-become=";

/// sudo's text kept for the error message; sudo says little, anything longer is not sudo.
const SUDO_TEXT_CAP: usize = 16 * 1024;

/// `sudo ... -- sh -c WRAPPER INNER`: runs `inner` as the become user.
pub fn command_line(inner: &str, b: &Become, timeout: Option<Duration>) -> String {
    let mut line = String::from("sudo ");
    if b.password.is_some() {
        let prompt = String::from_utf8_lossy(PROMPT_MARKER);
        line.push_str(&format!("-S -p {} ", quote(&prompt)));
    } else {
        line.push_str("-n ");
    }
    if let Some(user) = &b.user {
        line.push_str(&format!("-u {} ", quote(user)));
    }
    let started = "printf '\\036sluice-become=%s\\n' \"$$\" >&2; ";
    let wrapper = match timeout {
        // `timeout` is a backstop a second after the client's own limit: normally the client
        // has killed the group by then.
        Some(limit) => {
            let secs = limit.as_secs().max(1) + 1;
            format!(
                "{started}if command -v timeout >/dev/null 2>&1; then exec timeout -s KILL {secs} sh -c \"$0\"; else exec sh -c \"$0\"; fi"
            )
        }
        None => format!("{started}exec sh -c \"$0\""),
    };
    line.push_str("-- sh -c ");
    line.push_str(&quote(&wrapper));
    line.push(' ');
    line.push_str(&quote(inner));
    line
}

/// What the gate saw in a chunk of stderr.
#[derive(Debug, PartialEq, Eq)]
pub enum SudoEvent {
    /// sudo is reading a password (the 1st, 2nd, ... time).
    PasswordPrompt(u32),
    /// The command started under sudo.
    Started,
}

/// Reads stderr until the command started: sudo's prompts and messages before, the command's
/// own stderr after.
#[derive(Default)]
pub struct SudoGate {
    buf: Vec<u8>,
    started: bool,
    prompts: u32,
    /// The wrapper's pid, the process group to kill on timeout.
    pub pgid: Option<i64>,
}

impl SudoGate {
    /// True once the wrapper printed [`STARTED_MARKER`].
    pub fn started(&self) -> bool {
        self.started
    }

    /// How many times sudo asked for a password.
    pub fn prompts(&self) -> u32 {
        self.prompts
    }

    /// Feeds stderr bytes: returns what happened, and the bytes that belong to the captured
    /// stderr (sudo's own messages once the command started, then the command's stderr).
    pub fn feed(&mut self, data: &[u8]) -> (Vec<SudoEvent>, Vec<u8>) {
        if self.started {
            return (Vec::new(), data.to_vec());
        }
        self.buf.extend_from_slice(data);
        let mut events = Vec::new();
        loop {
            let prompt = find(&self.buf, PROMPT_MARKER);
            let start = find(&self.buf, STARTED_MARKER);
            match (prompt, start) {
                (Some(p), s) if s.is_none_or(|s| p < s) => {
                    self.buf.drain(p..p + PROMPT_MARKER.len());
                    self.prompts += 1;
                    events.push(SudoEvent::PasswordPrompt(self.prompts));
                }
                (_, Some(s)) => {
                    let rest = &self.buf[s + STARTED_MARKER.len()..];
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        break;
                    };
                    self.pgid = std::str::from_utf8(&rest[..nl])
                        .ok()
                        .and_then(|p| p.parse().ok());
                    let mut out = self.buf[..s].to_vec();
                    out.extend_from_slice(&rest[nl + 1..]);
                    self.buf.clear();
                    self.started = true;
                    events.push(SudoEvent::Started);
                    return (events, out);
                }
                _ => break,
            }
        }
        if self.buf.len() > SUDO_TEXT_CAP {
            let cut = self.buf.len() - SUDO_TEXT_CAP;
            self.buf.drain(..cut);
        }
        (events, Vec::new())
    }

    /// Why sudo did not start the command, for an operator: from sudo's messages, the number of
    /// prompts and how the remote shell ended.
    pub fn refusal(&self, status: Option<&ExitStatus>) -> String {
        refusal(&self.buf, self.prompts, status)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Classifies sudo's messages (sudo 1.8/1.9, English). The first line of sudo's own text
/// follows the explanation, so an unusual message is still visible.
pub fn refusal(sudo_text: &[u8], prompts: u32, status: Option<&ExitStatus>) -> String {
    let text = String::from_utf8_lossy(sudo_text);
    let said = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    let has = |needle: &str| text.contains(needle);
    let reason = if has("must have a tty") || has("a terminal is required") {
        "sudo requires a TTY (`requiretty` in sudoers); sluice runs commands without one: remove \
         requiretty for this user"
            .to_string()
    } else if prompts > 1 || has("incorrect password") {
        "sudo refused the password: check the become password".to_string()
    } else if has("a password is required") || has("no password was provided") {
        "sudo requires a password: give become a password, or allow NOPASSWD for this user in \
         sudoers"
            .to_string()
    } else if has("is not allowed to execute") || has("is not in the sudoers file") {
        "sudo does not allow this login user to run the command as the become user".to_string()
    } else if matches!(status, Some(ExitStatus::Code(127))) && has("sudo") && has("not found") {
        "sudo is not installed on the host".to_string()
    } else {
        let how = status.map_or_else(|| "without a status".to_string(), ToString::to_string);
        format!("sudo did not start the command ({how})")
    };
    if said.is_empty() {
        reason
    } else {
        format!("{reason} (sudo said: {said})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(user: Option<&str>, password: Option<&str>) -> Become {
        Become {
            user: user.map(str::to_string),
            password: password.map(str::to_string),
        }
    }

    #[test]
    fn without_password_sudo_is_non_interactive_and_the_command_is_an_argument() {
        let line = command_line("id; echo 'x'", &b(Some("app"), None), None);
        assert_eq!(
            line,
            r#"sudo -n -u 'app' -- sh -c 'printf '\''\036sluice-become=%s\n'\'' "$$" >&2; exec sh -c "$0"' 'id; echo '\''x'\'''"#
        );
    }

    #[test]
    fn with_password_sudo_reads_stdin_and_the_password_is_not_in_the_line() {
        let line = command_line(
            "id",
            &b(None, Some("hunter2")),
            Some(Duration::from_secs(5)),
        );
        assert!(line.starts_with("sudo -S -p '\x1esluice-sudo-prompt\x1e>' -- sh -c"));
        assert!(line.contains("exec timeout -s KILL 6 sh -c"), "{line}");
        assert!(!line.contains("hunter2"));
    }

    #[test]
    fn the_gate_reports_prompts_and_start_across_chunks_and_keeps_the_rest() {
        let mut gate = SudoGate::default();
        let (ev, out) = gate.feed(b"\x1esluice-sudo-pr");
        assert!(ev.is_empty() && out.is_empty());
        let (ev, out) = gate.feed(b"ompt\x1e>");
        assert_eq!(ev, vec![SudoEvent::PasswordPrompt(1)]);
        assert!(out.is_empty());
        let (ev, out) = gate.feed(b"\x1esluice-become=77");
        assert!(ev.is_empty() && out.is_empty());
        let (ev, out) = gate.feed(b"\nerr of cmd");
        assert_eq!(ev, vec![SudoEvent::Started]);
        assert_eq!(out, b"err of cmd");
        assert_eq!(gate.pgid, Some(77));
        assert_eq!(gate.feed(b" more").1, b" more");
    }

    #[test]
    fn sudo_messages_become_clear_reasons() {
        let check = |text: &str, prompts: u32, expected: &str| {
            let reason = refusal(text.as_bytes(), prompts, Some(&ExitStatus::Code(1)));
            assert!(reason.starts_with(expected), "{text:?} -> {reason}");
        };
        check(
            "sudo: a password is required\n",
            0,
            "sudo requires a password",
        );
        check(
            "sudo: sorry, you must have a tty to run sudo\n",
            0,
            "sudo requires a TTY",
        );
        check(
            "Sorry, try again.\nsudo: no password was provided\nsudo: 1 incorrect password attempt\n",
            2,
            "sudo refused the password",
        );
        check(
            "Sorry, user x is not allowed to execute '/bin/sh' as root on h.\n",
            1,
            "sudo does not allow",
        );
        check("weird\n", 0, "sudo did not start the command (exit 1)");
        let missing = refusal(b"sh: 1: sudo: not found\n", 0, Some(&ExitStatus::Code(127)));
        assert!(missing.starts_with("sudo is not installed"), "{missing}");
    }
}
