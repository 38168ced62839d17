//! Commands on an open connection: one channel per command, bounded concurrency, timeout with
//! a kill of the remote process group, reconnect once when the connection dropped in between.
//!
//! A command's channel is read until it closes, not until the exit status arrives: OpenSSH may
//! send the status before the last output. A command's timeout covers opening its channel,
//! sending it and reading it; what happens when it passes (the kill, bounded by the grace, and
//! giving up on a host that answers nothing) is in [`timeout`].

mod timeout;

use std::sync::Arc;
use std::time::Instant;

use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::sync::Semaphore;

use super::SshTransport;
use super::connect::Session;
use super::runner::{self, Routed, RunnerSlot};
use super::shell;
use super::sudo::{SudoEvent, SudoGate};
use crate::capture::OutputCapture;
use crate::secret_stdin::Prologue;
use crate::transport::{
    BoxFuture, Connection, ExecOutcome, ExecRequest, ExitStatus, HostTarget, Stream, TransportError,
};

/// A connection to one host; commands may run on it concurrently.
pub struct SshConnection {
    pub(super) transport: SshTransport,
    pub(super) target: HostTarget,
    session: std::sync::Mutex<Arc<Session>>,
    /// Held while reconnecting, so concurrent commands reconnect once, not each.
    reconnecting: tokio::sync::Mutex<()>,
    channels: Arc<Semaphore>,
    /// Why sluice gave up on this connection (the host stopped answering, see [`timeout`]):
    /// once set, every operation fails at once instead of waiting for keepalives.
    given_up: std::sync::Mutex<Option<String>>,
    /// The host's runner ([`super::runner`]), unless this host uses a channel per command.
    runner: tokio::sync::Mutex<RunnerSlot>,
}

/// What the client writes next on a command's stdin.
pub(super) enum Input {
    /// The become password, because sudo asked for it.
    Password,
    /// The command's stdin (the frame of secret values first), then EOF: the command runs.
    Stdin,
    /// Only EOF: sudo gives up instead of asking again.
    Eof,
}

/// What goes to the host for one command: the `exec` request's text (no secret value in it)
/// and its stdin (the frame of secret values, then the request's own stdin).
pub(super) struct Sent<'a> {
    pub(super) line: &'a str,
    pub(super) stdin: &'a [u8],
}

/// Why one attempt failed: before the command started (safe to retry) or after.
pub(super) enum Attempt {
    NotStarted(String),
    Failed(TransportError),
}

impl SshConnection {
    pub(crate) fn new(transport: SshTransport, target: HostTarget, session: Session) -> Self {
        let channels = transport.options().channels_per_connection.max(1);
        SshConnection {
            transport,
            target,
            session: std::sync::Mutex::new(Arc::new(session)),
            reconnecting: tokio::sync::Mutex::new(()),
            channels: Arc::new(Semaphore::new(channels)),
            given_up: std::sync::Mutex::new(None),
            runner: tokio::sync::Mutex::new(RunnerSlot::default()),
        }
    }

    pub(super) fn current(&self) -> Arc<Session> {
        self.session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces a dropped connection, unless another command already did.
    pub(super) async fn reconnect(
        &self,
        dead: &Arc<Session>,
    ) -> Result<Arc<Session>, TransportError> {
        let _guard = self.reconnecting.lock().await;
        let now = self.current();
        if !Arc::ptr_eq(&now, dead) && !now.handle.is_closed() {
            return Ok(now);
        }
        tracing::info!(host = %self.target.name, "connection dropped; reconnecting once");
        let fresh = Arc::new(self.transport.inner.open(&self.target).await?);
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        Ok(fresh)
    }

    /// Runs `request`, reconnecting once if the connection was found dead before it started.
    pub async fn run(&self, request: ExecRequest) -> Result<ExecOutcome, TransportError> {
        let spawn_error = |reason: String| TransportError::Spawn {
            host: self.target.name.clone(),
            reason,
        };
        // Secret values go on stdin, read by a prologue in the shell that runs the command:
        // the `exec` request's text is a command line on the host.
        let prologue = Prologue::of(&request).map_err(|e| spawn_error(e.to_string()))?;
        let line = shell::remote_command(
            &request.command,
            prologue.as_ref().map_or("", |p| p.text.as_str()),
            &[self.target.env.clone(), request.env.clone()].concat(),
            request.become_user.as_ref(),
            request.timeout,
        )
        .map_err(|e| spawn_error(e.to_string()))?;
        let mut stdin = prologue.map(|p| p.frame).unwrap_or_default();
        stdin.extend_from_slice(request.stdin.as_deref().unwrap_or_default());
        let sent = Sent {
            line: &line,
            stdin: &stdin,
        };
        self.refuse_if_given_up()?;
        if self.uses_runner() && runner::can_carry(&line, &stdin) {
            // Busy (another command of this host is running on it): a channel of its own.
            if let Ok(mut slot) = self.runner.try_lock()
                && slot.unusable.is_none()
                && let Routed::Ran(result) = self.run_on_runner(&mut slot, &sent, &request).await
            {
                return result;
            }
        }
        let _channel_slot = self
            .channels
            .acquire()
            .await
            .map_err(|e| self.lost(e.to_string()))?;
        // Given up while this command waited for a channel slot.
        self.refuse_if_given_up()?;
        let session = self.current();
        match self.attempt(&session, &sent, &request).await {
            Ok(outcome) => Ok(outcome),
            Err(Attempt::Failed(e)) => Err(e),
            Err(Attempt::NotStarted(reason)) if session.handle.is_closed() => {
                self.refuse_if_given_up()?;
                let fresh = self.reconnect(&session).await?;
                match self.attempt(&fresh, &sent, &request).await {
                    Ok(outcome) => Ok(outcome),
                    Err(Attempt::Failed(e)) => Err(e),
                    Err(Attempt::NotStarted(again)) => {
                        Err(self.lost(format!("{reason}; after reconnecting: {again}")))
                    }
                }
            }
            Err(Attempt::NotStarted(reason)) => Err(TransportError::Spawn {
                host: self.target.name.clone(),
                reason: format!("the host refused a new channel: {reason}"),
            }),
        }
    }

    pub(super) fn lost(&self, reason: String) -> TransportError {
        TransportError::ConnectionLost {
            host: self.target.name.clone(),
            reason,
        }
    }

    async fn attempt(
        &self,
        session: &Session,
        sent: &Sent<'_>,
        request: &ExecRequest,
    ) -> Result<ExecOutcome, Attempt> {
        let started = Instant::now();
        // One deadline for the whole command: a host that does not even open the channel must
        // not cost more than the timeout either.
        let deadline = request.timeout.map(|t| tokio::time::Instant::now() + t);
        let (mut reader, writer) = self.start(session, sent.line, request, deadline).await?;

        let password = request
            .become_user
            .as_ref()
            .and_then(|b| b.password.as_deref());
        let stdin = sent.stdin;
        let mut reading = Reading::new(request);
        // The writer half is driven by what the reader sees: the password only when sudo asks
        // for it, the command's stdin only once the command runs (see ssh::sudo).
        let (input_tx, input_rx) = tokio::sync::mpsc::unbounded_channel::<Input>();
        if reading.gate.is_none() {
            let _ = input_tx.send(Input::Stdin);
        }
        let feed = feed(&writer, input_rx, password, stdin);
        let drain = async {
            while let Some(msg) = reader.wait().await {
                if reading.take(msg, &input_tx, &self.target.name) {
                    break;
                }
            }
            drop(input_tx);
        };
        let both = async { tokio::join!(feed, drain) };
        let timed_out = match deadline {
            None => {
                both.await;
                false
            }
            Some(at) => tokio::time::timeout_at(at, both).await.is_err(),
        };
        let held_back = reading.pgid.finish();
        reading.err.push(&held_back);
        if timed_out {
            let group = timeout::Groups {
                login: reading.pgid.pgid,
                become_group: request
                    .become_user
                    .as_ref()
                    .zip(reading.gate.as_ref().and_then(|g| g.pgid)),
            };
            let timeout = request.timeout.unwrap_or_default();
            self.end_timed_out(session, &writer, &mut reader, group, timeout)
                .await
                .map_err(Attempt::Failed)?;
            return Ok(ExecOutcome {
                status: ExitStatus::TimedOut,
                stdout: reading.out.finish(),
                stderr: reading.err.finish(),
                duration: started.elapsed(),
            });
        }
        self.conclude(session, reading, started)
    }

    /// Opens the command's channel and sends the command, by `deadline` if there is one.
    async fn start(
        &self,
        session: &Session,
        line: &str,
        request: &ExecRequest,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(ChannelReadHalf, ChannelWriteHalf<Msg>), Attempt> {
        let start = async {
            let channel = self.open_channel(session).await?;
            let (reader, writer) = channel.split();
            writer
                .exec(true, line.as_bytes())
                .await
                .map_err(|e| Attempt::NotStarted(e.to_string()))?;
            Ok((reader, writer))
        };
        self.start_by(session, request.timeout, deadline, start, Attempt::Failed)
            .await
    }

    /// The outcome of a command whose channel ended before its deadline.
    fn conclude(
        &self,
        session: &Session,
        reading: Reading,
        started: Instant,
    ) -> Result<ExecOutcome, Attempt> {
        let Reading {
            out,
            err,
            status,
            closed,
            gate,
            ..
        } = reading;
        if let Some(gate) = gate.as_ref().filter(|g| !g.started())
            && (closed || status.is_some())
        {
            return Err(Attempt::Failed(TransportError::BecomeFailed {
                host: self.target.name.clone(),
                reason: gate.refusal(status.as_ref()),
            }));
        }
        let Some(status) = status else {
            let why = if let Some(reason) = self.given_up() {
                // Another command on this connection found the host hung.
                format!("sluice gave up on the connection: {reason}")
            } else if session.handle.is_closed() || !closed {
                "the connection dropped before the command reported how it ended (the host stopped \
                 answering keepalives, or the network or sshd failed)"
                    .into()
            } else {
                "the channel closed without an exit status".into()
            };
            return Err(Attempt::Failed(self.lost(why)));
        };
        Ok(ExecOutcome {
            status,
            stdout: out.finish(),
            stderr: err.finish(),
            duration: started.elapsed(),
        })
    }

    /// Opens a session channel. sshd frees a channel only after our reply to its close, so a
    /// slot we just released may still count against `MaxSessions`: a refused open is retried
    /// briefly while the connection is alive.
    async fn open_channel(
        &self,
        session: &Session,
    ) -> Result<russh::Channel<russh::client::Msg>, Attempt> {
        let mut last = String::new();
        for attempt in 0..20u64 {
            match session.handle.channel_open_session().await {
                Ok(channel) => return Ok(channel),
                Err(e) => last = e.to_string(),
            }
            if session.handle.is_closed() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5 + attempt * 5)).await;
        }
        Err(Attempt::NotStarted(last))
    }

    /// Writes `contents` to `path` via `cat` on a channel, through a temporary file and `mv`
    /// so a reader never sees half a file.
    pub async fn put(&self, path: &str, contents: &[u8], mode: u32) -> Result<(), TransportError> {
        let q = shell::quote(path);
        let tmp = shell::quote(&format!("{path}.sluice-upload"));
        let mut req = ExecRequest::new(format!(
            "umask 077; cat > {tmp} && chmod {mode:o} {tmp} && mv -f {tmp} {q}"
        ));
        req.stdin = Some(contents.to_vec());
        let outcome = self.run(req).await?;
        if outcome.status.success() {
            Ok(())
        } else {
            Err(TransportError::Upload {
                host: self.target.name.clone(),
                path: path.to_string(),
                reason: format!("{}: {}", outcome.status, outcome.stderr.text_lossy().trim()),
            })
        }
    }
}

impl Connection for SshConnection {
    fn exec(&self, request: ExecRequest) -> BoxFuture<'_, Result<ExecOutcome, TransportError>> {
        Box::pin(self.run(request))
    }

    fn upload<'a>(
        &'a self,
        path: &'a str,
        contents: &'a [u8],
        mode: u32,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(self.put(path, contents, mode))
    }

    fn host_key_fingerprint(&self) -> Option<String> {
        Some(self.current().fingerprint.clone())
    }
}

/// What a command's channel reported so far.
pub(super) struct Reading {
    pub(super) out: OutputCapture,
    pub(super) err: OutputCapture,
    pub(super) status: Option<ExitStatus>,
    /// The channel closed (as opposed to the connection dropping).
    closed: bool,
    /// The process-group marker, stripped off the start of stderr.
    pub(super) pgid: shell::PgidLine,
    /// Under `become`, stderr goes through the gate until sudo started the command.
    pub(super) gate: Option<SudoGate>,
    /// A become password can answer sudo's first prompt.
    has_password: bool,
}

impl Reading {
    pub(super) fn new(request: &ExecRequest) -> Self {
        let capture =
            |stream| OutputCapture::new(stream, request.output_cap, request.on_line.clone());
        Reading {
            out: capture(Stream::Stdout),
            err: capture(Stream::Stderr),
            status: None,
            closed: false,
            pgid: if request.timeout.is_some() {
                shell::PgidLine::default()
            } else {
                shell::PgidLine::absent()
            },
            gate: request.become_user.as_ref().map(|_| SudoGate::default()),
            has_password: request
                .become_user
                .as_ref()
                .is_some_and(|b| b.password.is_some()),
        }
    }

    /// Takes one message of the channel; sends on `inputs` what sudo's prompts call for.
    /// True when the channel closed.
    fn take(
        &mut self,
        msg: ChannelMsg,
        inputs: &tokio::sync::mpsc::UnboundedSender<Input>,
        host: &str,
    ) -> bool {
        match msg {
            ChannelMsg::Data { data } => self.out.push(&data),
            ChannelMsg::ExtendedData { data, ext: 1 } => self.stderr(&data, inputs),
            ChannelMsg::ExitStatus { exit_status } => {
                self.status = Some(ExitStatus::Code(i32::try_from(exit_status).unwrap_or(-1)));
            }
            ChannelMsg::ExitSignal { signal_name, .. } => {
                self.status = Some(ExitStatus::Signal(signal_label(&signal_name)));
            }
            ChannelMsg::Failure if self.status.is_none() => {
                tracing::debug!(host, "the host refused a channel request");
            }
            ChannelMsg::Close => {
                self.closed = true;
                return true;
            }
            _ => {}
        }
        false
    }
}

impl Reading {
    /// Takes a chunk of the command's stderr: the process-group marker, sudo's part (its
    /// prompts call for `inputs`), then the command's own.
    pub(super) fn stderr(
        &mut self,
        data: &[u8],
        inputs: &tokio::sync::mpsc::UnboundedSender<Input>,
    ) {
        let data = self.pgid.feed(data);
        let Some(gate) = self.gate.as_mut() else {
            self.err.push(&data);
            return;
        };
        let (events, data) = gate.feed(&data);
        self.err.push(&data);
        for event in events {
            let next = match event {
                SudoEvent::PasswordPrompt(1) if self.has_password => Input::Password,
                // Asked again: the password was wrong. sudo gives up at EOF.
                SudoEvent::PasswordPrompt(_) => Input::Eof,
                SudoEvent::Started => Input::Stdin,
            };
            let _ = inputs.send(next);
        }
    }
}

/// Writes on the command's stdin what the reader asks for (see [`Input`]).
async fn feed(
    writer: &ChannelWriteHalf<Msg>,
    mut inputs: tokio::sync::mpsc::UnboundedReceiver<Input>,
    password: Option<&str>,
    stdin: &[u8],
) {
    while let Some(what) = inputs.recv().await {
        match what {
            Input::Password => {
                let mut line = password.unwrap_or_default().as_bytes().to_vec();
                line.push(b'\n');
                let _ = writer.data(&line[..]).await;
            }
            Input::Stdin => {
                // A command that exits without reading its stdin closes the channel: not an
                // error.
                if !stdin.is_empty() {
                    let _ = writer.data(stdin).await;
                }
                let _ = writer.eof().await;
                break;
            }
            Input::Eof => {
                let _ = writer.eof().await;
                break;
            }
        }
    }
}

/// `KILL` for `Sig::KILL`, the name itself for custom signals.
fn signal_label(sig: &russh::Sig) -> String {
    match sig {
        russh::Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}
