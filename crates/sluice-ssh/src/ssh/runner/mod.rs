//! The per-host runner: one long-lived `sh` on one SSH channel runs every command of the host,
//! so a step costs about one round trip instead of a channel, an `exec` request and a login shell.
//!
//! 1. On a connection's first command, [`Runner::start`] opens a session channel and sends
//!    `exec sh -c SCRIPT sluice-runner` ([`SCRIPT`], `runner.sh`: POSIX `sh`, `mkfifo`, `cat`,
//!    `mktemp` and util-linux `setsid`; nothing to install). The script is public on the host, like
//!    every command line; it holds no secret. The controller writes a random session nonce on the
//!    runner's stdin and, in the same packet, the first command when it has no stdin and no
//!    timeout ([`Outgoing::may_go_with_start`]): the runner reads it once it is ready, so the
//!    runner's start costs no round trip of its own. The runner answers `\x1e NONCE ready` on
//!    stderr and `\x1e NONCE ready PID SETSID` on stdout; whatever a login shell printed before
//!    them on either stream is dropped. A runner that cannot start (no `setsid`: it answers `no`
//!    and exits without reading a command; a login shell that is not POSIX; no `mkfifo`) makes the
//!    connection fall back to a channel per command, where the first command then runs.
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
//!    the session's environment, stdin, stdout and stderr on FIFOs in a private temporary
//!    directory. The runner wraps the text so that a normal exit leaves a mark: an exit status
//!    above 128 without the mark is a death by that signal. With STDIN `1` a background feeder
//!    copies the `I` messages into the stdin FIFO and closes it at `E`.
//! 4. Two copiers, started with the runner, carry the command's output to the channel: per
//!    stream one `cat` whose arguments are the stream's FIFO and a frame FIFO, in turn, 1024
//!    times (a new pair after 1024 commands). It copies the output FIFO until every process of the
//!    command has closed it (as sshd waits for a channel's output to close), then the frame FIFO,
//!    then the next command's output FIFO. No process is started per command for its output.
//! 5. The runner prints `\x1e NONCE start` on stdout before it starts the command and, once the
//!    command's shell has ended, writes `\x1e NONCE end` into the stderr frame FIFO and
//!    `\x1e NONCE exit CODE` (or `signal NAME`) into the stdout one: opening a FIFO waits for its
//!    reader, so each frame follows all of the command's output on its stream. The step's output is
//!    everything else on the two streams ([`frames`]): bytes are never interpreted, so output
//!    without a trailing line break, binary output and output of any size are passed exactly;
//!    output cannot end a step early because it cannot know the nonce.
//!
//! **Failure modes.** The runner's channel ending (the runner killed, the host rebooting, sshd
//! dying, the connection dropping or keepalives unanswered) before `start` means nothing ran: the
//! command is retried once on a new runner (after reconnecting when the connection is gone).
//! After `start` and before the status, the command's outcome is unknown: `connection_lost`, and
//! the next command starts a new runner. A runner that ended while its connection lives (killed
//! alone, e.g. by the OOM killer) has its process group killed over a second channel: its
//! copiers would otherwise wait on their FIFOs forever. A command that reaches its timeout has
//! its process group killed over a second channel, as in the channel-per-command mode; a runner
//! that does not then report the end within `kill_grace` (a process escaped the group and holds
//! the output) is killed and replaced. A runner that hangs is found by the keepalives and the
//! command's timeout like a hung host. A runner left mid-command by a caller that was dropped (a
//! second Ctrl-C) gets the end of its stdin, so it ends after that command, and the next
//! command starts a new one. Commands sent while the runner is busy (concurrent commands on
//! one host) use a channel each, as before.

mod frames;
#[cfg(test)]
mod script_tests;
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
    /// What followed the `ready` frames when the runner started.
    early: Early,
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
    /// Starts a runner on `session` and waits for its `ready` frame. `first`, a command that
    /// may go before the runner answered ([`Outgoing::may_go_with_start`]), is sent in the same
    /// packet as the session nonce: the runner reads it once it is ready, so the command costs
    /// no round trip of its own.
    pub(super) async fn start(
        session: Arc<Session>,
        first: Option<&Outgoing>,
    ) -> Result<Runner, StartError> {
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
        let mut out = FrameScanner::new(&nonce);
        let mut err = FrameScanner::new(&nonce);
        let mut hello = nonce.into_bytes();
        hello.push(b'\n');
        if let Some(first) = first {
            hello.extend_from_slice(&first.message);
            out.then_expect(&first.nonce);
            err.then_expect(&first.nonce);
        }
        writer
            .data(&hello[..])
            .await
            .map_err(|e| not_started(e.to_string()))?;
        let mut early = Early::default();
        let mut said = Vec::new();
        let mut ready = None;
        while let Some(msg) = reader.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    for piece in out.feed(&data) {
                        match piece {
                            _ if ready.is_some() => early.out.push(piece),
                            Piece::Frame(text) => ready = Ready::parse(&text),
                            // A login shell's output before the runner started.
                            Piece::Output(_) => {}
                        }
                    }
                }
                ChannelMsg::ExtendedData { data, .. } => {
                    for piece in err.feed(&data) {
                        match piece {
                            _ if early.err_ready => early.err.push(piece),
                            Piece::Frame(text) => early.err_ready |= text == "ready",
                            // A login shell's complaints, kept for the reason if the runner
                            // never starts.
                            Piece::Output(bytes) => said.extend_from_slice(
                                &bytes[..bytes.len().min(4096 - said.len().min(4096))],
                            ),
                        }
                    }
                }
                ChannelMsg::Close | ChannelMsg::Eof => break,
                _ => continue,
            }
            match ready {
                Some(Ready { setsid: false, .. }) => {
                    return Err(StartError::Unusable(
                        "the host has no setsid (util-linux)".into(),
                    ));
                }
                Some(Ready { pid, .. }) => {
                    return Ok(Runner {
                        reader,
                        writer,
                        session,
                        pid,
                        out,
                        err,
                        early,
                        busy: false,
                    });
                }
                None => {}
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

/// The runner's `ready` frame on stdout: `ready PID yes` (or `no` without `setsid`).
struct Ready {
    pid: i64,
    setsid: bool,
}

impl Ready {
    fn parse(text: &str) -> Option<Ready> {
        let words: Vec<&str> = text.split(' ').collect();
        match words.as_slice() {
            ["ready", pid, setsid] => Some(Ready {
                pid: pid.parse().unwrap_or(0),
                setsid: *setsid == "yes",
            }),
            _ => None,
        }
    }
}

/// What the runner's streams held beyond its `ready` frames when it started: the start of the
/// first command's output when the command was sent with the start.
#[derive(Default)]
struct Early {
    out: Vec<Piece>,
    err: Vec<Piece>,
    /// The `ready` frame arrived on stderr: what comes before it is the login shell's.
    err_ready: bool,
}

/// One command as the runner gets it: its nonce and its message.
pub(super) struct Outgoing {
    pub(super) nonce: String,
    /// `R NONCE N STDIN` and the command text, followed by its stdin and its end when they go
    /// at once.
    pub(super) message: Vec<u8>,
    /// The runner feeds the command stdin messages (`R … 1`).
    pub(super) feeds: bool,
    /// All of the command's stdin (none, or all of it and its end) is in `message`.
    pub(super) stdin_sent: bool,
}

impl Outgoing {
    /// The message for command `line` with `stdin`; under `sudo` the stdin goes only when sudo's
    /// prompt or started marker shows.
    pub(super) fn new(line: &str, stdin: &[u8], sudo: bool) -> Outgoing {
        let nonce = nonce();
        // Most commands have no stdin and no sudo to answer: their stdin is /dev/null and the
        // runner starts no feeder.
        let feeds = sudo || !stdin.is_empty();
        let mut message = run_message(&nonce, line, feeds);
        if feeds && !sudo {
            message.extend_from_slice(&input_message(stdin));
            message.extend_from_slice(END_OF_STDIN);
        }
        Outgoing {
            nonce,
            message,
            feeds,
            stdin_sent: !sudo,
        }
    }

    /// Whether the command may go with the runner's start, before the runner answered: when
    /// it has nothing for stdin (no secret value or password goes out before the host showed
    /// that the runner, not some other program, reads it) and no timeout (a deadline that
    /// passes while the runner starts means the command was not sent, which a command already
    /// on its way could not promise).
    pub(super) fn may_go_with_start(&self, timeout: Option<std::time::Duration>) -> bool {
        !self.feeds && timeout.is_none()
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
