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

use russh::ChannelMsg;
use tokio::sync::Semaphore;

use super::SshTransport;
use super::connect::Session;
use super::shell;
use super::sudo::{SudoEvent, SudoGate};
use crate::capture::OutputCapture;
use crate::transport::{
    BoxFuture, Connection, ExecOutcome, ExecRequest, ExitStatus, HostTarget, Stream, TransportError,
};

/// A connection to one host; commands may run on it concurrently.
pub struct SshConnection {
    transport: SshTransport,
    target: HostTarget,
    session: std::sync::Mutex<Arc<Session>>,
    /// Held while reconnecting, so concurrent commands reconnect once, not each.
    reconnecting: tokio::sync::Mutex<()>,
    channels: Arc<Semaphore>,
    /// Why sluice gave up on this connection (the host stopped answering, see [`timeout`]):
    /// once set, every operation fails at once instead of waiting for keepalives.
    given_up: std::sync::Mutex<Option<String>>,
}

/// What the client writes next on a command's stdin.
enum Input {
    /// The become password, because sudo asked for it.
    Password,
    /// The command's stdin, then EOF: the command runs.
    Stdin,
    /// Only EOF: sudo gives up instead of asking again.
    Eof,
}

/// Why one attempt failed: before the command started (safe to retry) or after.
enum Attempt {
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
        }
    }

    fn current(&self) -> Arc<Session> {
        self.session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces a dropped connection, unless another command already did.
    async fn reconnect(&self, dead: &Arc<Session>) -> Result<Arc<Session>, TransportError> {
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
        let line = shell::remote_command(
            &request.command,
            &[self.target.env.clone(), request.env.clone()].concat(),
            request.become_user.as_ref(),
            request.timeout,
        )
        .map_err(|e| TransportError::Spawn {
            host: self.target.name.clone(),
            reason: e.to_string(),
        })?;
        self.refuse_if_given_up()?;
        let _channel_slot = self
            .channels
            .acquire()
            .await
            .map_err(|e| self.lost(e.to_string()))?;
        // Given up while this command waited for a channel slot.
        self.refuse_if_given_up()?;
        let session = self.current();
        match self.attempt(&session, &line, &request).await {
            Ok(outcome) => Ok(outcome),
            Err(Attempt::Failed(e)) => Err(e),
            Err(Attempt::NotStarted(reason)) if session.handle.is_closed() => {
                self.refuse_if_given_up()?;
                let fresh = self.reconnect(&session).await?;
                match self.attempt(&fresh, &line, &request).await {
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

    fn lost(&self, reason: String) -> TransportError {
        TransportError::ConnectionLost {
            host: self.target.name.clone(),
            reason,
        }
    }

    async fn attempt(
        &self,
        session: &Session,
        line: &str,
        request: &ExecRequest,
    ) -> Result<ExecOutcome, Attempt> {
        let started = Instant::now();
        // One deadline for the whole command: a host that does not even open the channel must
        // not cost more than the timeout either.
        let deadline = request.timeout.map(|t| tokio::time::Instant::now() + t);
        let start = async {
            let channel = self.open_channel(session).await?;
            let (reader, writer) = channel.split();
            writer
                .exec(true, line.as_bytes())
                .await
                .map_err(|e| Attempt::NotStarted(e.to_string()))?;
            Ok::<_, Attempt>((reader, writer))
        };
        let (mut reader, writer) = match deadline {
            None => start.await?,
            Some(at) => match tokio::time::timeout_at(at, start).await {
                Ok(started) => started?,
                Err(_) => {
                    let timeout = request.timeout.unwrap_or_default();
                    return Err(Attempt::Failed(self.never_started(session, timeout).await));
                }
            },
        };

        let password = request
            .become_user
            .as_ref()
            .and_then(|b| b.password.as_deref());
        let stdin = request.stdin.as_deref().unwrap_or_default();

        let mut out =
            OutputCapture::new(Stream::Stdout, request.output_cap, request.on_line.clone());
        let mut err =
            OutputCapture::new(Stream::Stderr, request.output_cap, request.on_line.clone());
        let mut status: Option<ExitStatus> = None;
        let mut closed = false;
        let mut pgid = if request.timeout.is_some() {
            shell::PgidLine::default()
        } else {
            shell::PgidLine::absent()
        };
        // Under `become`, stderr goes through the gate until sudo started the command.
        let mut gate = request.become_user.as_ref().map(|_| SudoGate::default());

        // The writer half is driven by what the reader sees: the password only when sudo asks
        // for it, the command's stdin only once the command runs (see ssh::sudo).
        let (input_tx, mut input_rx) = tokio::sync::mpsc::unbounded_channel::<Input>();
        if gate.is_none() {
            let _ = input_tx.send(Input::Stdin);
        }
        let feed = async {
            while let Some(what) = input_rx.recv().await {
                match what {
                    Input::Password => {
                        let mut line = password.unwrap_or_default().as_bytes().to_vec();
                        line.push(b'\n');
                        let _ = writer.data(&line[..]).await;
                    }
                    Input::Stdin => {
                        // A command that exits without reading its stdin closes the channel:
                        // not an error.
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
        };
        let drain = async {
            while let Some(msg) = reader.wait().await {
                match msg {
                    ChannelMsg::Data { data } => out.push(&data),
                    ChannelMsg::ExtendedData { data, ext: 1 } => {
                        let data = pgid.feed(&data);
                        let Some(gate) = gate.as_mut() else {
                            err.push(&data);
                            continue;
                        };
                        let (events, data) = gate.feed(&data);
                        err.push(&data);
                        for event in events {
                            let next = match event {
                                SudoEvent::PasswordPrompt(1) if password.is_some() => {
                                    Input::Password
                                }
                                // Asked again: the password was wrong. sudo gives up at EOF.
                                SudoEvent::PasswordPrompt(_) => Input::Eof,
                                SudoEvent::Started => Input::Stdin,
                            };
                            let _ = input_tx.send(next);
                        }
                    }
                    ChannelMsg::ExitStatus { exit_status } => {
                        status = Some(ExitStatus::Code(i32::try_from(exit_status).unwrap_or(-1)));
                    }
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        status = Some(ExitStatus::Signal(signal_label(&signal_name)));
                    }
                    ChannelMsg::Failure if status.is_none() => {
                        tracing::debug!(host = %self.target.name, "the host refused a channel request");
                    }
                    ChannelMsg::Close => {
                        closed = true;
                        break;
                    }
                    _ => {}
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
        err.push(&pgid.finish());
        if timed_out {
            let group = timeout::Groups {
                login: pgid.pgid,
                become_group: request
                    .become_user
                    .as_ref()
                    .zip(gate.as_ref().and_then(|g| g.pgid)),
            };
            let timeout = request.timeout.unwrap_or_default();
            self.end_timed_out(session, &writer, &mut reader, group, timeout)
                .await
                .map_err(Attempt::Failed)?;
            return Ok(ExecOutcome {
                status: ExitStatus::TimedOut,
                stdout: out.finish(),
                stderr: err.finish(),
                duration: started.elapsed(),
            });
        }
        let stdout = out.finish();
        let stderr = err.finish();
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
            stdout,
            stderr,
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

/// `KILL` for `Sig::KILL`, the name itself for custom signals.
fn signal_label(sig: &russh::Sig) -> String {
    match sig {
        russh::Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}
