//! After a command's timeout: the kill, bounded by a grace, and giving up on a host that
//! answers nothing.
//!
//! A command with a timeout costs at most its timeout plus `SshOptions::timeout_grace`:
//! 1. The deadline covers opening the command's channel, sending the command and reading it
//!    (see [`super`]).
//! 2. When it passes, the command's process group is killed (the SSH `signal` request, which
//!    sshd ≥ 8.1 honours for non-root logins; `kill` of the group over a second channel, which
//!    also works for root, where sshd refuses `signal`; under `become`, the command's own group
//!    through sudo), and the host is asked for a sign of life (OpenSSH's
//!    `keepalive@openssh.com` request, which sshd answers at once). Then the command's channel
//!    gets `kill_grace` to report its end. All of it runs under the grace.
//! 3. A host that answered anything within the grace (the probe, the kill's channel, the end
//!    of the command) is alive: the command is TIMED_OUT. A host that answered nothing is hung:
//!    sluice gives up on the connection at once (`connection_lost`: the command may still be
//!    running), disconnects it, so the other commands on it end now, and marks it, so every
//!    later operation on it fails at once (`unreachable`, nothing sent) instead of waiting out
//!    the keepalives (about a minute).
//!
//! A command whose channel did not even open by its deadline was never sent: on a hung host
//! that is `unreachable`, on a live one (all its sessions busy) a refused start.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Disconnect, Sig};

use super::SshConnection;
use crate::ssh::connect::Session;
use crate::ssh::shell;
use crate::transport::{Become, ExecRequest, TransportError};

/// How long queueing the disconnect of a hung connection may take. The message only goes into
/// russh's queue (the socket's send buffer takes it, or nobody needs it), so this is a safety
/// net, not a wait for the host.
const DISCONNECT_QUEUE_LIMIT: Duration = Duration::from_millis(100);

/// The process groups a timed-out command runs in.
pub(super) struct Groups<'a> {
    /// The login shell's group, from the marker line (see `shell::PGID_MARKER`).
    pub login: Option<i64>,
    /// Under `become`: how to become the command's user, and the command's own group.
    pub become_group: Option<(&'a Become, i64)>,
}

impl SshConnection {
    /// Kills a command that reached its `timeout` and waits, within the grace, for the host to
    /// show it is alive. `Ok` when it did (the command is TIMED_OUT); otherwise the connection
    /// is given up and the error says so.
    pub(super) async fn end_timed_out(
        &self,
        session: &Session,
        writer: &ChannelWriteHalf<Msg>,
        reader: &mut ChannelReadHalf,
        groups: Groups<'_>,
        timeout: Duration,
    ) -> Result<(), TransportError> {
        let options = self.transport.options();
        let answered = AtomicBool::new(false);
        let heard = || answered.store(true, Ordering::Relaxed);
        let kill = async {
            let _ = writer.signal(Sig::KILL).await;
            if let Some(pgid) = groups.login.filter(|&p| p > 1)
                && self.kill_group(session, pgid).await
            {
                heard();
            }
            if let Some((b, pgid)) = groups.become_group.filter(|&(_, p)| p > 1)
                && self.kill_become_group(session, b, pgid).await
            {
                heard();
            }
            // Closed only now: russh drops the server's late messages on a channel we already
            // closed, and we would wait out the whole `kill_grace`.
            if let Ok(true) = tokio::time::timeout(options.kill_grace, channel_ends(reader)).await {
                heard();
            }
            let _ = writer.close().await;
        };
        let probe = async {
            if self.answers(session).await {
                heard();
            }
        };
        let grace = options.timeout_grace;
        let _ = tokio::time::timeout(grace, async { tokio::join!(kill, probe) }).await;
        if answered.load(Ordering::Relaxed) {
            return Ok(());
        }
        let reason = format!(
            "the command reached its timeout of {timeout:?}, then the host did not answer for \
             {grace:?}, not even the kill: sluice gave up on this connection (the host hangs); the \
             command may still be running there"
        );
        self.give_up(session, &reason).await;
        Err(self.lost(reason))
    }

    /// The error for a command whose channel did not open by its deadline (`timeout`): it was
    /// not sent. A host that then answers nothing within the grace is given up.
    pub(in crate::ssh) async fn never_started(
        &self,
        session: &Session,
        timeout: Duration,
    ) -> TransportError {
        let grace = self.transport.options().timeout_grace;
        let alive = tokio::time::timeout(grace, self.answers(session))
            .await
            .unwrap_or(false);
        if alive {
            return TransportError::Spawn {
                host: self.target.name.clone(),
                reason: format!(
                    "the host did not open a channel for the command within its timeout of \
                     {timeout:?}; the command was not sent"
                ),
            };
        }
        let reason = format!(
            "the host did not answer within the command's timeout of {timeout:?} and the \
             {grace:?} after it: sluice gave up on this connection (the host hangs); the command \
             was not sent"
        );
        self.give_up(session, &reason).await;
        self.unreachable(reason)
    }

    /// Awaits `start` (opening a command's channel, or starting the host's runner) by
    /// `deadline` when there is one; past it, the error [`SshConnection::never_started`] gives,
    /// wrapped by `failed`.
    pub(in crate::ssh) async fn start_by<T, E>(
        &self,
        session: &Session,
        timeout: Option<Duration>,
        deadline: Option<tokio::time::Instant>,
        start: impl std::future::Future<Output = Result<T, E>>,
        failed: impl FnOnce(TransportError) -> E,
    ) -> Result<T, E> {
        let Some(at) = deadline else {
            return start.await;
        };
        match tokio::time::timeout_at(at, start).await {
            Ok(started) => started,
            Err(_) => {
                let timeout = timeout.unwrap_or_default();
                Err(failed(self.never_started(session, timeout).await))
            }
        }
    }

    /// Fails at once when the connection was given up (see [`SshConnection::give_up`]).
    pub(in crate::ssh) fn refuse_if_given_up(&self) -> Result<(), TransportError> {
        match self.given_up() {
            Some(reason) => Err(self.unreachable(format!("nothing was sent: {reason}"))),
            None => Ok(()),
        }
    }

    /// Why the connection was given up, if it was.
    pub(in crate::ssh) fn given_up(&self) -> Option<String> {
        self.given_up
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Marks the connection given up and disconnects it: commands still running on it end now
    /// (`connection_lost`), and the socket is freed.
    pub(in crate::ssh) async fn give_up(&self, session: &Session, reason: &str) {
        tracing::warn!(host = %self.target.name, "{reason}");
        *self.given_up.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_string());
        let bye =
            session
                .handle
                .disconnect(Disconnect::ByApplication, "the host stopped answering", "");
        let _ = tokio::time::timeout(DISCONNECT_QUEUE_LIMIT, bye).await;
    }

    /// True when the host answers a `keepalive@openssh.com` request (sshd replies to it even
    /// while every session is busy). Callers bound the wait.
    pub(in crate::ssh) async fn answers(&self, session: &Session) -> bool {
        session.handle.send_ping().await.is_ok() && !session.handle.is_closed()
    }

    fn unreachable(&self, reason: String) -> TransportError {
        TransportError::Unreachable {
            host: self.target.name.clone(),
            address: format!("{}:{}", self.target.address, self.target.port),
            reason,
        }
    }

    /// Kills process group `pgid` on the host over a fresh channel (best effort: the group may
    /// already be gone, or belong to another user under `become`). True when the host opened the
    /// channel, i.e. answered.
    pub(in crate::ssh) async fn kill_group(&self, session: &Session, pgid: i64) -> bool {
        let Ok(channel) = session.handle.channel_open_session().await else {
            tracing::warn!(host = %self.target.name, pgid, "cannot open a channel to kill the timed-out command");
            return false;
        };
        let (mut reader, writer) = channel.split();
        // `-s KILL --`: dash, a common login shell and sh on Debian, rejects `kill -KILL --`.
        let line =
            format!("kill -s KILL -- -{pgid} 2>/dev/null; kill -s KILL {pgid} 2>/dev/null; true");
        if writer.exec(true, line.as_bytes()).await.is_ok() {
            let _ = writer.eof().await;
            let grace = self.transport.options().kill_grace;
            let _ =
                tokio::time::timeout(grace, async { while reader.wait().await.is_some() {} }).await;
        }
        true
    }

    /// Kills the `become` command's own process group (see ssh::sudo) as the become user, over
    /// a fresh channel: the login user may not be allowed to signal that user's processes. True
    /// when the kill command ran to its end.
    pub(in crate::ssh) async fn kill_become_group(
        &self,
        session: &Session,
        b: &Become,
        pgid: i64,
    ) -> bool {
        let mut request = ExecRequest::new(format!(
            "kill -s KILL -- -{pgid} 2>/dev/null || kill -s KILL {pgid} 2>/dev/null; true"
        ));
        request.become_user = Some(b.clone());
        let Ok(line) = shell::remote_command(&request.command, "", &[], Some(b), None) else {
            return false;
        };
        let limit = self.transport.options().kill_grace * 3;
        // Boxed: `attempt` is the function that called us.
        let sent = super::Sent {
            line: &line,
            stdin: &[],
        };
        let kill = Box::pin(self.attempt(session, &sent, &request));
        match tokio::time::timeout(limit, kill).await {
            Ok(Ok(_)) => true,
            _ => {
                tracing::warn!(host = %self.target.name, pgid, "could not kill the timed-out become command; its own deadline will");
                false
            }
        }
    }
}

/// Reads a killed command's channel until it reports its end: true then, false when the
/// channel went away without a word from the host.
async fn channel_ends(reader: &mut ChannelReadHalf) -> bool {
    while let Some(msg) = reader.wait().await {
        if matches!(
            msg,
            ChannelMsg::Close | ChannelMsg::ExitSignal { .. } | ChannelMsg::ExitStatus { .. }
        ) {
            return true;
        }
    }
    false
}
