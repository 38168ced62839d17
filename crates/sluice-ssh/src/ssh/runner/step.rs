//! One command through the host's runner: starting the runner when there is none, sending the
//! command, reading its output and frames, the timeout, and replacing a runner that died.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use russh::ChannelMsg;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::frames::Piece;
use super::{END_OF_STDIN, Outgoing, Runner, RunnerSlot, StartError, input_message};
use crate::ssh::SshConnection;
use crate::ssh::connect::Session;
use crate::ssh::exec::{Attempt, Input, Reading, Sent};
use crate::transport::{ExecOutcome, ExecRequest, ExitStatus, TransportError};

/// Where a command went.
pub(in crate::ssh) enum Routed {
    /// It ran through the runner (or failed there): this is its result.
    Ran(Result<ExecOutcome, TransportError>),
    /// The host cannot have a runner: send it on a channel of its own.
    UseChannel,
}

/// How reading a command's output on the runner ended.
enum Ended {
    /// Both end frames arrived.
    Done,
    /// The runner's channel ended first.
    Gone,
}

/// One command for the runner: what goes to the host, and whether it already went with the
/// runner's start.
struct Command<'a, 'b> {
    sent: &'a Sent<'b>,
    outgoing: Outgoing,
    presented: bool,
}

/// What the runner reported of the command so far, beyond its output.
#[derive(Default)]
struct Progress {
    started: bool,
    stderr_ended: bool,
    stdin_closed: bool,
}

impl SshConnection {
    /// Whether this host's commands go through a runner.
    pub(in crate::ssh) fn uses_runner(&self) -> bool {
        !self.transport.options().exec_per_step
            && self.target.transport_mode == crate::transport::TransportMode::Runner
    }

    /// Runs `request` on the host's runner, starting one when there is none or it died; retries
    /// once on a new runner when the command was not sent.
    pub(in crate::ssh) async fn run_on_runner(
        &self,
        slot: &mut RunnerSlot,
        sent: &Sent<'_>,
        request: &ExecRequest,
    ) -> Routed {
        let started = Instant::now();
        let deadline = request.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut why_not = String::new();
        for _ in 0..2 {
            let mut session = self.current();
            if session.handle.is_closed() {
                if let Err(e) = self.refuse_if_given_up() {
                    return Routed::Ran(Err(e));
                }
                session = match self.reconnect(&session).await {
                    Ok(fresh) => fresh,
                    Err(e) => return Routed::Ran(Err(e)),
                };
            }
            // A runner left mid-command (its caller was dropped: a hard stop) or on a replaced
            // connection is not reused.
            if let Some(old) = slot.runner.take_if(|r| r.busy || !r.is_on(&session)) {
                self.retire(old).await;
            }
            let outgoing = Outgoing::new(sent.line, sent.stdin, request.become_user.is_some());
            let mut presented = false;
            if slot.runner.is_none() {
                let first = outgoing
                    .may_go_with_start(request.timeout)
                    .then_some(&outgoing);
                match self.start_runner(&session, request, deadline, first).await {
                    Ok(runner) => {
                        slot.runner = Some(runner);
                        presented = first.is_some();
                    }
                    Err(StartError::Unusable(reason)) => {
                        tracing::info!(host = %self.target.name, "no runner, a channel per command: {reason}");
                        slot.unusable = Some(reason);
                        return Routed::UseChannel;
                    }
                    Err(StartError::Attempt(Attempt::Failed(e))) => return Routed::Ran(Err(e)),
                    Err(StartError::Attempt(Attempt::NotStarted(reason))) => {
                        why_not = reason;
                        continue;
                    }
                }
            }
            let Some(runner) = slot.runner.as_mut() else {
                continue;
            };
            let command = Command {
                sent,
                outgoing,
                presented,
            };
            match self.step(runner, command, request, deadline, started).await {
                Ok((result, keep)) => {
                    if !keep {
                        slot.runner = None;
                    }
                    return Routed::Ran(result);
                }
                Err(Attempt::Failed(e)) => {
                    slot.runner = None;
                    return Routed::Ran(Err(e));
                }
                Err(Attempt::NotStarted(reason)) => {
                    tracing::info!(host = %self.target.name, "the runner was gone before the command started ({reason}); starting a new one");
                    slot.runner = None;
                    why_not = reason;
                }
            }
        }
        // Nothing ran: the command never reached a runner that started it.
        Routed::Ran(Err(TransportError::Spawn {
            host: self.target.name.clone(),
            reason: format!(
                "the host's runner ended twice before it started the command: {why_not}"
            ),
        }))
    }

    /// Starts a runner, within the command's deadline, with `first` sent at once.
    async fn start_runner(
        &self,
        session: &Arc<Session>,
        request: &ExecRequest,
        deadline: Option<tokio::time::Instant>,
        first: Option<&Outgoing>,
    ) -> Result<Runner, StartError> {
        let start = Runner::start(session.clone(), first);
        self.start_by(session, request.timeout, deadline, start, |e| {
            StartError::Attempt(Attempt::Failed(e))
        })
        .await
    }

    /// A runner that is not used again: one left mid-command gets the end of its input, so it
    /// ends (removing its FIFOs and copiers) once the abandoned command has, instead of waiting
    /// for a next command that never comes.
    async fn retire(&self, old: Runner) {
        if old.busy && old.is_on(&self.current()) {
            let grace = self.transport.options().kill_grace;
            let _ = tokio::time::timeout(grace, old.writer.eof()).await;
        }
    }

    /// Sends one command to `runner` (unless it went with the runner's start) and reads it to
    /// its end: its result (a refused `become` is an error, but the runner is fine) and whether
    /// the runner can take the next command.
    async fn step(
        &self,
        runner: &mut Runner,
        command: Command<'_, '_>,
        request: &ExecRequest,
        deadline: Option<tokio::time::Instant>,
        started: Instant,
    ) -> Result<(Result<ExecOutcome, TransportError>, bool), Attempt> {
        let Command {
            sent,
            outgoing,
            presented,
        } = command;
        let mut reading = Reading::new(request);
        let mut progress = Progress {
            stdin_closed: outgoing.stdin_sent,
            ..Progress::default()
        };
        runner.busy = true;
        if !presented {
            runner.out.expect(&outgoing.nonce);
            if runner.early.err_ready {
                runner.err.expect(&outgoing.nonce);
            } else {
                // The runner's `ready` on stderr has not arrived yet: its frames come after it.
                runner.err.then_expect(&outgoing.nonce);
            }
            runner
                .writer
                .data(&outgoing.message[..])
                .await
                .map_err(|e| Attempt::NotStarted(format!("the runner's channel is closed: {e}")))?;
        }
        let password = request
            .become_user
            .as_ref()
            .and_then(|b| b.password.as_deref());
        let (inputs, mut asked) = unbounded_channel::<Input>();
        for piece in std::mem::take(&mut runner.early.out) {
            take_output(piece, &mut reading, &mut progress);
        }
        for piece in std::mem::take(&mut runner.early.err) {
            take_error(
                piece,
                &mut runner.early.err_ready,
                &mut reading,
                &mut progress,
                &inputs,
            );
        }
        let pump = pump(
            runner,
            &mut reading,
            &mut progress,
            &inputs,
            &mut asked,
            sent,
            password,
        );
        let ended = match deadline {
            None => Some(pump.await),
            Some(at) => tokio::time::timeout_at(at, pump).await.ok(),
        };
        let held_back = reading.pgid.finish();
        reading.err.push(&held_back);
        let keep = match ended {
            Some(Ended::Done) => true,
            Some(Ended::Gone) => {
                self.reap(runner).await;
                return Err(self.runner_gone(runner, reading, &progress));
            }
            None => {
                let keep = self
                    .end_timed_out_on_runner(runner, &mut reading, &mut progress, request)
                    .await
                    .map_err(Attempt::Failed)?;
                reading.status = Some(ExitStatus::TimedOut);
                keep
            }
        };
        if !progress.stdin_closed {
            // The runner's feeder reads until the end of stdin before the runner takes the next
            // command.
            let _ = runner.writer.data(END_OF_STDIN).await;
        }
        runner.busy = false;
        Ok((self.conclude_on_runner(reading, started), keep))
    }

    /// Kills what is left of a runner whose channel ended while its connection lives (it was
    /// killed alone, e.g. by `kill -KILL` or the OOM killer): its copiers, in its process group,
    /// would otherwise wait on their FIFOs forever.
    async fn reap(&self, runner: &Runner) {
        if runner.pid > 1 && !runner.session.handle.is_closed() && self.given_up().is_none() {
            let grace = self.transport.options().kill_grace;
            let _ = tokio::time::timeout(grace, self.kill_group(&runner.session, runner.pid)).await;
        }
    }

    /// The error for a command whose runner's channel ended before the command's end.
    fn runner_gone(&self, runner: &Runner, reading: Reading, progress: &Progress) -> Attempt {
        if !progress.started {
            return Attempt::NotStarted("the runner ended before it started the command".into());
        }
        if let Some(gate) = reading.gate.as_ref().filter(|g| !g.started()) {
            tracing::debug!(host = %self.target.name, prompts = gate.prompts(), "runner ended under sudo");
        }
        let why = if let Some(reason) = self.given_up() {
            format!("sluice gave up on the connection: {reason}")
        } else if runner.session.handle.is_closed() {
            "the connection dropped while the command ran (the host rebooted or stopped answering \
             keepalives, or the network or sshd failed)"
                .to_string()
        } else {
            "the runner died while the command ran (it was killed, or its session ended)"
                .to_string()
        };
        Attempt::Failed(self.lost(why))
    }

    /// The outcome of a command that ended on the runner (or timed out there).
    fn conclude_on_runner(
        &self,
        reading: Reading,
        started: Instant,
    ) -> Result<ExecOutcome, TransportError> {
        let status = reading.status.unwrap_or(ExitStatus::Code(-1));
        if let Some(gate) = reading.gate.as_ref().filter(|g| !g.started())
            && status != ExitStatus::TimedOut
        {
            return Err(TransportError::BecomeFailed {
                host: self.target.name.clone(),
                reason: gate.refusal(Some(&status)),
            });
        }
        Ok(ExecOutcome {
            status,
            stdout: reading.out.finish(),
            stderr: reading.err.finish(),
            duration: started.elapsed(),
        })
    }

    /// After the command's timeout: kills its process group (and, under `become`, the command's
    /// own group) over a second channel while probing the host, all within the grace; then gives
    /// the runner `kill_grace` to report the end. `Ok(true)`: the runner can take the next
    /// command; `Ok(false)`: it was killed and is replaced; `Err`: the host answered nothing and
    /// the connection is given up.
    async fn end_timed_out_on_runner(
        &self,
        runner: &mut Runner,
        reading: &mut Reading,
        progress: &mut Progress,
        request: &ExecRequest,
    ) -> Result<bool, TransportError> {
        let options = self.transport.options();
        let session = runner.session.clone();
        let answered = AtomicBool::new(false);
        let heard = || answered.store(true, Ordering::Relaxed);
        let login = reading.pgid.pgid.filter(|&p| p > 1);
        let become_group = request
            .become_user
            .as_ref()
            .zip(reading.gate.as_ref().and_then(|g| g.pgid))
            .filter(|&(_, p)| p > 1);
        let kill = async {
            if let Some(pgid) = login
                && self.kill_group(&session, pgid).await
            {
                heard();
            }
            if let Some((b, pgid)) = become_group
                && self.kill_become_group(&session, b, pgid).await
            {
                heard();
            }
        };
        let probe = async {
            if self.answers(&session).await {
                heard();
            }
        };
        let grace = options.timeout_grace;
        let _ = tokio::time::timeout(grace, async { tokio::join!(kill, probe) }).await;
        if !answered.load(Ordering::Relaxed) {
            let reason = format!(
                "the command reached its timeout of {:?}, then the host did not answer for \
                 {grace:?}, not even the kill: sluice gave up on this connection (the host \
                 hangs); the command may still be running there",
                request.timeout.unwrap_or_default()
            );
            self.give_up(&session, &reason).await;
            return Err(self.lost(reason));
        }
        let (inputs, mut asked) = unbounded_channel::<Input>();
        let sent = Sent {
            line: "",
            stdin: &[],
        };
        let rest = pump(runner, reading, progress, &inputs, &mut asked, &sent, None);
        if let Ok(Ended::Done) = tokio::time::timeout(options.kill_grace, rest).await {
            return Ok(true);
        }
        // Something of the command still holds its output, or the runner is stuck: kill the
        // runner's own group (the feeder and the copies), and start a new one next time.
        tracing::info!(host = %self.target.name, "the runner did not report the timed-out command's end; replacing it");
        if runner.pid > 1 {
            let _ = tokio::time::timeout(options.kill_grace, self.kill_group(&session, runner.pid))
                .await;
        }
        Ok(false)
    }
}

/// Reads the runner's channel until the command's two end frames (or the channel's end),
/// writing the command's stdin when sudo's prompts call for it.
async fn pump(
    runner: &mut Runner,
    reading: &mut Reading,
    progress: &mut Progress,
    inputs: &UnboundedSender<Input>,
    asked: &mut UnboundedReceiver<Input>,
    sent: &Sent<'_>,
    password: Option<&str>,
) -> Ended {
    while reading.status.is_none() || !progress.stderr_ended {
        let Some(msg) = runner.reader.wait().await else {
            return Ended::Gone;
        };
        match msg {
            ChannelMsg::Data { data } => {
                for piece in runner.out.feed(&data) {
                    take_output(piece, reading, progress);
                }
            }
            ChannelMsg::ExtendedData { data, ext: 1 } => {
                for piece in runner.err.feed(&data) {
                    take_error(
                        piece,
                        &mut runner.early.err_ready,
                        reading,
                        progress,
                        inputs,
                    );
                }
            }
            ChannelMsg::Eof
            | ChannelMsg::Close
            | ChannelMsg::ExitStatus { .. }
            | ChannelMsg::ExitSignal { .. } => return Ended::Gone,
            _ => {}
        }
        while let Ok(input) = asked.try_recv() {
            if progress.stdin_closed {
                continue;
            }
            let message = match input {
                Input::Password => {
                    let mut line = password.unwrap_or_default().as_bytes().to_vec();
                    line.push(b'\n');
                    input_message(&line)
                }
                Input::Stdin => {
                    progress.stdin_closed = true;
                    [input_message(sent.stdin), END_OF_STDIN.to_vec()].concat()
                }
                Input::Eof => {
                    progress.stdin_closed = true;
                    END_OF_STDIN.to_vec()
                }
            };
            if runner.writer.data(&message[..]).await.is_err() {
                return Ended::Gone;
            }
        }
    }
    Ended::Done
}

/// Takes one piece of the runner's stdout: the command's output, or a frame.
fn take_output(piece: Piece, reading: &mut Reading, progress: &mut Progress) {
    match piece {
        Piece::Output(bytes) => reading.out.push(&bytes),
        Piece::Frame(text) => take_frame(&text, reading, progress),
    }
}

/// Takes one piece of the runner's stderr: before the runner's `ready` frame there, a login
/// shell's output (dropped); after it, the command's stderr and the `end` frame.
fn take_error(
    piece: Piece,
    err_ready: &mut bool,
    reading: &mut Reading,
    progress: &mut Progress,
    inputs: &UnboundedSender<Input>,
) {
    match piece {
        Piece::Frame(text) if !*err_ready => *err_ready = text == "ready",
        Piece::Output(_) if !*err_ready => {}
        Piece::Output(bytes) => reading.stderr(&bytes, inputs),
        Piece::Frame(text) if text == "end" => progress.stderr_ended = true,
        Piece::Frame(_) => {}
    }
}

/// Takes one frame of the runner's stdout: `start`, `exit CODE` or `signal NAME`.
fn take_frame(text: &str, reading: &mut Reading, progress: &mut Progress) {
    let mut words = text.splitn(2, ' ');
    match (words.next(), words.next()) {
        (Some("start"), None) => progress.started = true,
        (Some("exit"), Some(code)) => {
            reading.status = Some(ExitStatus::Code(code.parse().unwrap_or(-1)));
        }
        (Some("signal"), Some(name)) => reading.status = Some(ExitStatus::Signal(name.into())),
        _ => {}
    }
}
