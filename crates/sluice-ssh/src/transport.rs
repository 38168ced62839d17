//! The interface between the executor and a host.
//!
//! The executor asks a [`Transport`] for a [`Connection`] to a [`HostTarget`] once, then runs every
//! command of that host through it. Errors are typed so the operator can tell an unreachable host
//! from a refused host key, an authentication failure or a command that timed out.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::capture::CapturedOutput;

/// The kinds [`TransportError::kind`] sorts errors into; defined with the run's vocabulary.
pub use sluice_model::ConnectErrorKind;

/// A boxed future, so transports can be used behind `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where and how to reach one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostTarget {
    /// The inventory name, used in messages.
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: Option<String>,
    pub identity_files: Vec<PathBuf>,
    pub known_hosts: Vec<PathBuf>,
    pub host_key_policy: HostKeyPolicy,
    /// Jump hosts, outermost first, as `[user@]host[:port]`.
    pub proxy_jump: Vec<String>,
    /// Directory commands start in (local transport).
    pub workdir: Option<PathBuf>,
    /// Environment set for every command on this host.
    pub env: Vec<(String, String)>,
    /// How commands reach the host over SSH: a runner, or a channel per command.
    pub transport_mode: TransportMode,
}

/// How an SSH host runs its commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TransportMode {
    /// One long-lived POSIX `sh` per host, started on first use, runs every command
    /// (`ssh::runner`). The default.
    #[default]
    Runner,
    /// A channel, an `exec` request and a login shell per command: for hosts whose login shell
    /// is not POSIX, or that lack `setsid`.
    Exec,
}

impl HostTarget {
    /// A target with defaults for everything but the name and address.
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Self {
        HostTarget {
            name: name.into(),
            address: address.into(),
            port: 22,
            user: None,
            identity_files: Vec::new(),
            known_hosts: Vec::new(),
            host_key_policy: HostKeyPolicy::Strict,
            proxy_jump: Vec::new(),
            workdir: None,
            env: Vec::new(),
            transport_mode: TransportMode::default(),
        }
    }
}

/// What to do with a host key that is not in known_hosts, or that differs from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HostKeyPolicy {
    /// Unknown or changed: refuse. The default.
    Strict,
    /// Unknown: append to known_hosts and accept. Changed: refuse.
    AcceptNew,
    /// Accept anything. The operator opted out of host key checking; the run records it.
    InsecureIgnoreHostKeys,
}

/// Which stream a line of live output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Receives each line of output as it arrives (for live display). Lines may be cut at the
/// capture cap; they are bytes, not necessarily UTF-8.
pub type LineSink = Arc<dyn Fn(Stream, &[u8]) + Send + Sync>;

/// Run a command as another user through sudo.
#[derive(Clone, PartialEq, Eq)]
pub struct Become {
    /// `None` means root.
    pub user: Option<String>,
    /// Password for `sudo -S`, fed on stdin, never on the command line. `None` means `sudo -n`.
    pub password: Option<String>,
}

impl fmt::Debug for Become {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Become")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// One command to run.
#[derive(Clone)]
pub struct ExecRequest {
    /// Passed to the remote shell as is. A command line on the host: it refers to secrets by
    /// the variables of `secrets`, never holds their values.
    pub command: String,
    pub env: Vec<(String, String)>,
    pub stdin: Option<Vec<u8>>,
    /// Secret values the command refers to as shell variables: passed on its stdin, never on a
    /// command line ([`crate::secret_stdin`]).
    pub secrets: Vec<crate::secret_stdin::SecretVar>,
    /// `None`: no limit.
    pub timeout: Option<Duration>,
    pub become_user: Option<Become>,
    /// Bytes kept of each stream: half from the start, half from the end.
    pub output_cap: usize,
    pub on_line: Option<LineSink>,
}

impl ExecRequest {
    /// Default cap on captured output per stream.
    pub const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;

    pub fn new(command: impl Into<String>) -> Self {
        ExecRequest {
            command: command.into(),
            env: Vec::new(),
            stdin: None,
            secrets: Vec::new(),
            timeout: None,
            become_user: None,
            output_cap: Self::DEFAULT_OUTPUT_CAP,
            on_line: None,
        }
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl fmt::Debug for ExecRequest {
    // The command may carry a secret; Debug output must not.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecRequest")
            .field("command_bytes", &self.command.len())
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("secrets", &self.secrets)
            .field("timeout", &self.timeout)
            .field("become_user", &self.become_user)
            .finish()
    }
}

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// The process exited with this code.
    Code(i32),
    /// The process was killed by a signal (name without `SIG`, e.g. `KILL`).
    Signal(String),
    /// The timeout expired; the process (and, for `become`, its process group) was killed.
    TimedOut,
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Code(0))
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by SIG{s}"),
            ExitStatus::TimedOut => f.write_str("timed out"),
        }
    }
}

/// What a finished command produced.
#[derive(Clone, Debug)]
pub struct ExecOutcome {
    pub status: ExitStatus,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
    pub duration: Duration,
}

/// Why a host could not be reached or a command could not be run.
///
/// Every variant names the host. The executor counts all of them as a failed host.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No TCP connection or no SSH handshake within the time limit: the host is down, or the
    /// address, port or a firewall is wrong; or a jump host could not reach it; or its sshd kept
    /// dropping the handshake (`MaxStartups`) after every retry. Or the host stopped answering
    /// earlier on this connection and sluice gave it up (see `SshOptions::timeout_grace`).
    /// Nothing ran on the host.
    #[error("{host}: unreachable at {address}: {reason}")]
    Unreachable {
        host: String,
        address: String,
        reason: String,
    },

    /// The host key is not in known_hosts and the policy is strict. Nothing ran on the host.
    /// Check the fingerprint out of band, then add it (or use `host_key_checking: accept-new`).
    #[error(
        "{host}: host key refused: unknown key {fingerprint} (not in {known_hosts}); verify it and add it to known_hosts, or set host_key_checking: accept-new"
    )]
    HostKeyUnknown {
        host: String,
        fingerprint: String,
        known_hosts: String,
    },

    /// The host presented a key that differs from the one on record: possibly a reinstalled
    /// host, possibly an attack. Nothing ran on the host.
    #[error(
        "{host}: host key refused: the key CHANGED: known_hosts has {expected}, the host presented {presented}; if the change is expected, remove the old entry ({known_hosts})"
    )]
    HostKeyChanged {
        host: String,
        expected: String,
        presented: String,
        known_hosts: String,
    },

    /// The key is marked `@revoked` in known_hosts: it was declared compromised. Nothing ran on
    /// the host. Give the host a new key and record that one; keep the `@revoked` line.
    #[error("{host}: host key refused: {fingerprint} is marked @revoked in {known_hosts}")]
    HostKeyRevoked {
        host: String,
        fingerprint: String,
        known_hosts: String,
    },

    /// The server refused every credential tried (listed in the message). Nothing ran on the
    /// host. Check the login user, the host's authorized_keys and which keys the inventory, the
    /// ssh-agent and `~/.ssh/config` offer.
    #[error("{host}: authentication failed for user {user} (tried: {tried})")]
    AuthFailed {
        host: String,
        user: String,
        tried: String,
    },

    /// An identity file could not be used, so no credential from it was offered and nothing ran
    /// on the host: missing or unreadable, not a key, or encrypted with no passphrase given
    /// (`SLUICE_SSH_PASSPHRASE`, or the terminal prompt when there is one) or a wrong one.
    #[error("{host}: cannot use identity file {path}: {reason}")]
    IdentityFile {
        host: String,
        path: String,
        reason: String,
    },

    /// The connection broke while a command ran: the host stopped answering keepalives (every
    /// 15 s, dead after 3 unanswered by default), or sshd, the host or the network failed; or
    /// the command timed out and the host then answered nothing within the grace, so sluice
    /// gave the connection up. The command's outcome on the host is unknown: check the host
    /// before running it again. (A connection found dead *before* a command started is
    /// reconnected once, silently.)
    #[error(
        "{host}: connection lost while the command ran; its outcome on the host is unknown: {reason}"
    )]
    ConnectionLost { host: String, reason: String },

    /// sudo did not start the command, so the command did not run; the reason says why in
    /// sudo's terms: it requires a password (give `become` one, or allow `NOPASSWD`), it
    /// requires a TTY (`requiretty` in sudoers), it refused the password, it does not allow the
    /// login user to become that user, or sudo is not installed. Fix sudoers or the inventory.
    #[error("{host}: become failed: {reason}")]
    BecomeFailed { host: String, reason: String },

    /// The command could not be started, so nothing ran: locally `sh` could not be spawned; over
    /// SSH the host refused a new channel (its `MaxSessions`, or a dying sshd) or the request
    /// was invalid (an environment variable name that is not a shell name).
    #[error("{host}: cannot start the command: {reason}")]
    Spawn { host: String, reason: String },

    /// The SSH protocol failed in a way not covered above (no common algorithm, a host
    /// certificate, a malformed message, the server disconnecting during authentication). No
    /// command ran on this connection; the reason is russh's.
    #[error("{host}: ssh protocol error: {reason}")]
    Protocol { host: String, reason: String },

    /// A file could not be written on the host (directory missing, no permission, disk full).
    /// The previous file at that path, if any, is unchanged.
    #[error("{host}: upload to {path} failed: {reason}")]
    Upload {
        host: String,
        path: String,
        reason: String,
    },
}

impl TransportError {
    /// The host this error is about.
    pub fn host(&self) -> &str {
        match self {
            TransportError::Unreachable { host, .. }
            | TransportError::HostKeyUnknown { host, .. }
            | TransportError::HostKeyChanged { host, .. }
            | TransportError::HostKeyRevoked { host, .. }
            | TransportError::AuthFailed { host, .. }
            | TransportError::IdentityFile { host, .. }
            | TransportError::ConnectionLost { host, .. }
            | TransportError::BecomeFailed { host, .. }
            | TransportError::Spawn { host, .. }
            | TransportError::Protocol { host, .. }
            | TransportError::Upload { host, .. } => host,
        }
    }

    /// What kind of failure this is, for summaries and JSON (`unreachable`,
    /// `host_key_refused`, ...): callers decide on the kind, never on the message.
    pub fn kind(&self) -> ConnectErrorKind {
        match self {
            TransportError::Unreachable { .. } => ConnectErrorKind::Unreachable,
            TransportError::HostKeyUnknown { .. }
            | TransportError::HostKeyChanged { .. }
            | TransportError::HostKeyRevoked { .. } => ConnectErrorKind::HostKeyRefused,
            TransportError::AuthFailed { .. } | TransportError::IdentityFile { .. } => {
                ConnectErrorKind::AuthFailed
            }
            TransportError::ConnectionLost { .. } => ConnectErrorKind::ConnectionLost,
            TransportError::BecomeFailed { .. } => ConnectErrorKind::BecomeFailed,
            TransportError::Spawn { .. }
            | TransportError::Protocol { .. }
            | TransportError::Upload { .. } => ConnectErrorKind::TransportError,
        }
    }
}

/// Opens connections to hosts.
pub trait Transport: Send + Sync {
    /// Connects (TCP, handshake, host key check, authentication) or fails with a typed error.
    fn connect<'a>(
        &'a self,
        target: &'a HostTarget,
    ) -> BoxFuture<'a, Result<Arc<dyn Connection>, TransportError>>;

    /// Whether connecting costs enough (network round trips, a handshake) that opening a
    /// connection before it is needed saves time. The executor opens the next wave's
    /// connections ahead only for such transports.
    fn worth_opening_ahead(&self) -> bool {
        false
    }
}

/// An open connection to one host; commands may run on it concurrently.
pub trait Connection: Send + Sync {
    /// Runs one command to completion (or timeout).
    fn exec(&self, request: ExecRequest) -> BoxFuture<'_, Result<ExecOutcome, TransportError>>;

    /// Writes `contents` to `path` on the host with the given mode (e.g. 0o755 for scripts).
    fn upload<'a>(
        &'a self,
        path: &'a str,
        contents: &'a [u8],
        mode: u32,
    ) -> BoxFuture<'a, Result<(), TransportError>>;

    /// SHA256 fingerprint of the host key this connection verified (`None` for local).
    fn host_key_fingerprint(&self) -> Option<String>;
}
