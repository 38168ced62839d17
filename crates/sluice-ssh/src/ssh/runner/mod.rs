//! The per-host runner: one long-lived `sh` on one SSH channel runs every command of the host,
//! so a step costs about one round trip instead of a channel, an `exec` request and a login shell.
//!
//! 1. On a connection's first command, [`Runner::start`] opens a session channel and sends
//!    `exec sh -c SCRIPT sluice-runner` ([`SCRIPT`], `runner.sh`: POSIX `sh`, `mkfifo`, `cat`,
//!    `mktemp` and util-linux `setsid`; nothing to install). The script is public on the host, like
//!    every command line; it holds no secret. The controller writes a random session nonce on the
//!    runner's stdin; the runner answers `\x1e NONCE ready PID SETSID` on stdout. Whatever a login
//!    shell prints before that is dropped. A runner that cannot start (no `setsid`, a login shell
//!    that is not POSIX, no `mkfifo`) makes the connection fall back to a channel per command.
//! 2. Each command goes as one write ([`step`]): `R NONCE N STDIN`, then the N lines of the
//!    command text (the same text an `exec` request would carry: exports, the secret prologue,
//!    sudo), and, when STDIN is `1`, as soon as the command may read it, its stdin as `I N` and N
//!    lines, then `E` (end of stdin). With STDIN `0` (no stdin, no secret values, no sudo) the
//!    command's stdin is `/dev/null`.
//!    NONCE is fresh per command. The runner reads all of it with `IFS= read -r` (byte by byte on
//!    a pipe, so it never consumes past a message), so a command text or stdin holding a NUL byte,
//!    or stdin over [`MAX_STDIN`], goes on a channel of its own instead.
//! 3. The runner runs the command as `setsid "$SHELL" -c TEXT`: a fresh shell in a session and
//!    process group of its own (what sshd gives an `exec` request), in the login directory, with
//!    the session's environment, stdin, stdout and stderr on three FIFOs in a private temporary
//!    directory. A background feeder copies the `I` messages into the stdin FIFO and closes it at
//!    `E`; two `cat`s copy the stdout and stderr FIFOs to the channel's stdout and stderr, and end
//!    when every process of the step has closed them (as sshd waits for a channel's output to
//!    close). The command text is wrapped so that a normal exit leaves a mark: an exit status
//!    above 128 without the mark is a death by that signal.
//! 4. The runner prints `\x1e NONCE start` on stdout before it starts the command and, once its
//!    output has ended, `\x1e NONCE end` on stderr and `\x1e NONCE exit CODE` (or `signal NAME`) on
//!    stdout. The step's output is everything else on the two streams ([`frames`]): bytes are never
//!    interpreted, so output without a trailing line break, binary output and output of any size
//!    are passed exactly; output cannot end a step early because it cannot know the nonce.
//!
//! **Failure modes.** The runner's channel ending (the runner killed, the host rebooting, sshd
//! dying, the connection dropping or keepalives unanswered) before `start` means nothing ran: the
//! command is retried once on a new runner (after reconnecting when the connection is gone).
//! After `start` and before the status, the command's outcome is unknown: `connection_lost`, and
//! the next command starts a new runner. A command that reaches its timeout has its process group
//! killed over a second channel, as in the channel-per-command mode; a runner that does not then
//! report the end within `kill_grace` (a process escaped the group and holds the output) is
//! killed and replaced. A runner that hangs is found by the keepalives and the command's timeout
//! like a hung host. Commands sent while the runner is busy (concurrent commands on one host)
//! use a channel each, as before.

mod frames;
mod step;

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use sha2::{Digest, Sha256};

use super::connect::Session;
use super::exec::Attempt;
use super::shell::quote;
use frames::{FrameScanner, Piece};
pub(super) use step::Routed;

/// The runner's shell script (see the module documentation).
pub const SCRIPT: &str = include_str!("runner.sh");

/// The most stdin a command sent through the runner may have: the runner reads it a byte at a
/// time. Larger stdin (uploads) goes on a channel of its own.
pub const MAX_STDIN: usize = 64 * 1024;

/// Whether `request` can go through the runner (see the module documentation, item 2).
pub(super) fn can_carry(command: &str, stdin: &[u8]) -> bool {
    stdin.len() <= MAX_STDIN && !command.contains('\0') && !stdin.contains(&0)
}

/// A runner process on the host and its channel.
pub(super) struct Runner {
    reader: ChannelReadHalf,
    writer: ChannelWriteHalf<Msg>,
    /// The connection the channel belongs to: a runner on a replaced connection is dead.
    session: Arc<Session>,
    /// The runner's pid, its process group (sshd starts it in a session of its own).
    pid: i64,
    out: FrameScanner,
    err: FrameScanner,
    /// A command was sent and its end not read yet (its caller was dropped mid-way): the
    /// runner's state is unknown, so it is not used again.
    busy: bool,
}

/// What the connection knows about its runner.
#[derive(Default)]
pub(super) struct RunnerSlot {
    pub(super) runner: Option<Runner>,
    /// Why this host cannot have a runner; its commands use a channel each.
    pub(super) unusable: Option<String>,
}

/// Why a runner did not start.
pub(super) enum StartError {
    /// The host cannot run it (no `setsid`, a login shell that is not POSIX): use a channel per
    /// command from now on.
    Unusable(String),
    /// The connection failed; as for a command that was not sent.
    Attempt(Attempt),
}

impl Runner {
    /// Starts a runner on `session` and waits for its `ready` frame.
    pub(super) async fn start(session: Arc<Session>) -> Result<Runner, StartError> {
        let not_started = |e: String| StartError::Attempt(Attempt::NotStarted(e));
        let channel = session
            .handle
            .channel_open_session()
            .await
            .map_err(|e| not_started(e.to_string()))?;
        let (mut reader, writer) = channel.split();
        let line = format!("exec sh -c {} sluice-runner", quote(SCRIPT));
        writer
            .exec(true, line.as_bytes())
            .await
            .map_err(|e| not_started(e.to_string()))?;
        let nonce = nonce();
        let mut hello = nonce.clone().into_bytes();
        hello.push(b'\n');
        writer
            .data(&hello[..])
            .await
            .map_err(|e| not_started(e.to_string()))?;
        let mut out = FrameScanner::new(&nonce);
        let mut said = Vec::new();
        while let Some(msg) = reader.wait().await {
            let data = match msg {
                ChannelMsg::Data { data } => data,
                ChannelMsg::ExtendedData { data, .. } => {
                    // A login shell's complaints, kept for the reason if the runner never starts.
                    said.extend_from_slice(&data[..data.len().min(4096 - said.len().min(4096))]);
                    continue;
                }
                ChannelMsg::Close | ChannelMsg::Eof => break,
                _ => continue,
            };
            for piece in out.feed(&data) {
                let Piece::Frame(text) = piece else { continue };
                let words: Vec<&str> = text.split(' ').collect();
                match words.as_slice() {
                    ["ready", pid, "yes"] => {
                        let pid = pid.parse().unwrap_or(0);
                        return Ok(Runner {
                            reader,
                            writer,
                            session,
                            pid,
                            out,
                            err: FrameScanner::new(&nonce),
                            busy: false,
                        });
                    }
                    ["ready", _, _] => {
                        return Err(StartError::Unusable(
                            "the host has no setsid (util-linux)".into(),
                        ));
                    }
                    _ => {}
                }
            }
        }
        if session.handle.is_closed() {
            return Err(not_started("the connection dropped".into()));
        }
        let said = String::from_utf8_lossy(&said).trim().to_string();
        Err(StartError::Unusable(format!(
            "the runner did not start (is the login shell POSIX?){}",
            if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            }
        )))
    }

    /// True when this runner's connection is `session`.
    pub(super) fn is_on(&self, session: &Arc<Session>) -> bool {
        Arc::ptr_eq(&self.session, session)
    }
}

/// `R NONCE N STDIN` and the N lines of `text`; STDIN is `1` when `I`/`E` messages follow (the
/// runner then feeds them to the command), `0` when the command's stdin is `/dev/null`.
fn run_message(nonce: &str, text: &str, stdin: bool) -> Vec<u8> {
    let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
    let mut message = format!("R {nonce} {lines} {}\n", u8::from(stdin)).into_bytes();
    message.extend_from_slice(text.as_bytes());
    message.push(b'\n');
    message
}

/// `I N` and the N lines of `bytes` (nothing for no bytes).
fn input_message(bytes: &[u8]) -> Vec<u8> {
    if bytes.is_empty() {
        return Vec::new();
    }
    counted("I", bytes)
}

/// `HEAD N\n` then `bytes` split at its line breaks into N lines, each followed by a line break:
/// the reader joins them again with line breaks, so `a\n` is the lines `a` and ``.
fn counted(head: &str, bytes: &[u8]) -> Vec<u8> {
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
    let mut message = format!("{head} {lines}\n").into_bytes();
    message.reserve(bytes.len() + 1);
    message.extend_from_slice(bytes);
    message.push(b'\n');
    message
}

/// The end of the command's stdin.
const END_OF_STDIN: &[u8] = b"E\n";

/// Wraps a command text for the runner: `$1` is the mark a normal exit leaves; the command runs
/// in a subshell so that its `exit` ends only the subshell, while `kill $$` still kills the
/// shell (a death by signal leaves no mark).
fn wrap(text: &str) -> String {
    format!(
        "__sluice_x=$1; set --\n(\nunset __sluice_x\n{text}\n)\n__sluice_st=$?; echo >\"$__sluice_x\"; exit $__sluice_st\n"
    )
}

/// 32 hex digits from the system's random source (or, failing that, from the time, the pid and
/// a counter: a nonce only has to be unguessable by the output of the command it frames).
fn nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        let mut h = Sha256::new();
        h.update(format!("{:?}", std::time::SystemTime::now()));
        h.update(std::process::id().to_le_bytes());
        h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        bytes.copy_from_slice(&h.finalize()[..16]);
    }
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_count_lines_so_a_missing_last_line_break_survives() {
        assert_eq!(input_message(b"a\nb"), b"I 2\na\nb\n");
        assert_eq!(input_message(b"a\n"), b"I 2\na\n\n");
        assert!(input_message(b"").is_empty());
        assert_eq!(run_message("n", "x", true), b"R n 1 1\nx\n");
        assert_eq!(run_message("n", "a\nb", false), b"R n 2 0\na\nb\n");
        assert!(can_carry("echo", b"in") && !can_carry("a\0", b"") && !can_carry("a", b"\0"));
        assert_ne!(nonce(), nonce());
        assert_eq!(nonce().len(), 32);
    }
}
