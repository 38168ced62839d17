//! The `ssh` transport: an in-process SSH client (russh) with OpenSSH's safety defaults.
//!
//! 0. Gaps in the inventory's host entry are filled from `~/.ssh/config` ([`config`]).
//! 1. [`SshTransport::connect`] dials the host (through its ProxyJump hosts, if any), each
//!    handshake holding a slot of its sshd and of every jump host it passes through, so a burst
//!    of connections never exceeds sshd's `MaxStartups`, and, once its TCP connection is open,
//!    one of the key exchanges in flight across all hosts, so a burst of hundreds does not
//!    hold all their temporaries at once (see [`limits`]); a connection dropped during the
//!    banner exchange is retried with jitter.
//! 2. The host key is checked against known_hosts before anything else is sent ([`known_hosts`],
//!    [`connect`]); a refused key ends the connection, no channel is ever opened.
//! 3. Authentication tries ssh-agent keys, then identity files ([`auth`]).
//! 4. The resulting [`SshConnection`] runs every command of the host on its own channel over
//!    that one connection, at most `channels_per_connection` at a time, and reconnects once if
//!    the connection dropped between commands ([`exec`]).
//! 5. `become` wraps the command in sudo and reads sudo's prompts and refusals off stderr
//!    ([`sudo`]); keepalives (every `keepalive_interval` of silence, dead after
//!    `keepalive_max` unanswered) turn a hung host into `ConnectionLost`.
//! 6. A command with a timeout costs at most its timeout plus `timeout_grace`: a host that
//!    answers nothing after the timeout, not even the kill, is given up at once, and so is its
//!    connection ([`exec`]).

pub mod auth;
pub mod config;
pub mod connect;
pub mod exec;
pub mod known_hosts;
pub mod limits;
pub mod runner;
pub mod shell;
pub mod sudo;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use exec::SshConnection;

use crate::transport::{BoxFuture, Connection, HostTarget, Transport, TransportError};

/// Tunables of the SSH transport. The defaults suit a fleet of stock OpenSSH servers.
#[derive(Clone, Debug)]
pub struct SshOptions {
    /// Limit for the TCP connect (per hop).
    pub connect_timeout: Duration,
    /// Limit for the SSH handshake and authentication after TCP connected.
    pub handshake_timeout: Duration,
    /// Keepalive probe interval when the server is silent.
    pub keepalive_interval: Duration,
    /// The peer is declared dead after this many unanswered keepalives.
    pub keepalive_max: usize,
    /// Concurrent channels (commands) per connection; OpenSSH's `MaxSessions` is 10.
    pub channels_per_connection: usize,
    /// Handshakes in flight per sshd `host:port` (each hop's own, jump hosts included); OpenSSH
    /// starts dropping unauthenticated connections at `MaxStartups` 10.
    pub handshakes_per_destination: usize,
    /// Handshakes in flight through one jump host `host:port`, whatever their destination.
    pub handshakes_per_jump_host: usize,
    /// Key exchanges and authentications in flight across all destinations: bounds the memory
    /// a wave's burst of connections holds at once (see [`limits`]).
    pub handshakes_in_flight: usize,
    /// Retries when the server drops the connection during the banner exchange.
    pub handshake_retries: u32,
    /// Open connections in total, sized from the file-descriptor limit.
    pub max_connections: usize,
    /// Try keys from the ssh-agent on `SSH_AUTH_SOCK` first.
    pub use_agent: bool,
    /// The agent socket; `None` means `$SSH_AUTH_SOCK`.
    pub agent_socket: Option<PathBuf>,
    /// Passphrase of encrypted identity files, e.g. read by the CLI from a TTY prompt; takes
    /// precedence over `passphrase_env`.
    pub passphrase: Option<Passphrase>,
    /// Environment variable holding the passphrase of encrypted identity files.
    pub passphrase_env: String,
    /// Asks the operator for a key's passphrase when neither option above gives it (the CLI
    /// sets it only when it has a terminal to ask on); `None`: an encrypted key is an error
    /// naming `passphrase_env`.
    pub passphrase_prompt: Option<PassphrasePrompt>,
    /// After a timeout and the kill, how long the killed command gets to close its channel.
    pub kill_grace: Duration,
    /// The most a command may take beyond its timeout: the kill, the wait for its channel to
    /// end and a liveness probe all run within it. A host that answers nothing in that time is
    /// given up (`connection_lost`), and so is its connection: later operations on it fail at
    /// once instead of waiting for keepalives.
    pub timeout_grace: Duration,
    /// known_hosts files used when the target names none (`~/.ssh/known_hosts`).
    pub default_known_hosts: Vec<PathBuf>,
    /// The OpenSSH client config consulted for gaps in the inventory (`~/.ssh/config`);
    /// `None` reads none.
    pub ssh_config: Option<PathBuf>,
    /// Identity files used when the target names none (`~/.ssh/id_{ed25519,ecdsa,rsa}`).
    pub default_identity_files: Vec<PathBuf>,
    /// Every host gets a channel per command, whatever its `transport_mode` (`--exec-per-step`).
    pub exec_per_step: bool,
}

impl Default for SshOptions {
    fn default() -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let ssh_dir = home.map(|h| h.join(".ssh"));
        SshOptions {
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(20),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 3,
            channels_per_connection: 8,
            handshakes_per_destination: 8,
            handshakes_per_jump_host: 8,
            handshakes_in_flight: 32,
            handshake_retries: 5,
            max_connections: limits::connections_for_fd_limit(),
            use_agent: true,
            agent_socket: None,
            passphrase: None,
            passphrase_env: "SLUICE_SSH_PASSPHRASE".into(),
            passphrase_prompt: None,
            kill_grace: Duration::from_secs(1),
            timeout_grace: Duration::from_secs(5),
            default_known_hosts: ssh_dir.iter().map(|d| d.join("known_hosts")).collect(),
            ssh_config: ssh_dir.as_ref().map(|d| d.join("config")),
            default_identity_files: ssh_dir
                .iter()
                .flat_map(|d| ["id_ed25519", "id_ecdsa", "id_rsa"].map(|f| d.join(f)))
                .collect(),
            exec_per_step: false,
        }
    }
}

/// A key passphrase; never printed by `Debug`.
#[derive(Clone)]
pub struct Passphrase(pub String);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(***)")
    }
}

/// Asks for the passphrase of the key file it is given; `None` when it cannot or the operator
/// gave none. Called on a blocking thread, once per key file per transport.
pub type AskPassphrase = dyn Fn(&Path) -> Option<Passphrase> + Send + Sync;

/// A passphrase prompt (see [`SshOptions::passphrase_prompt`]).
#[derive(Clone)]
pub struct PassphrasePrompt(pub Arc<AskPassphrase>);

impl std::fmt::Debug for PassphrasePrompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PassphrasePrompt")
    }
}

/// Opens SSH connections. Cheap to clone; clones share the handshake and connection limits.
#[derive(Clone)]
pub struct SshTransport {
    pub(crate) inner: Arc<connect::Dialer>,
}

impl SshTransport {
    pub fn new(options: SshOptions) -> Self {
        SshTransport {
            inner: Arc::new(connect::Dialer::new(options)),
        }
    }

    pub fn options(&self) -> &SshOptions {
        &self.inner.options
    }

    /// Connects and returns the concrete connection type (the trait method boxes it).
    pub async fn connect_ssh(&self, target: &HostTarget) -> Result<SshConnection, TransportError> {
        let session = self.inner.open(target).await?;
        Ok(SshConnection::new(self.clone(), target.clone(), session))
    }
}

impl Default for SshTransport {
    fn default() -> Self {
        SshTransport::new(SshOptions::default())
    }
}

impl Transport for SshTransport {
    fn connect<'a>(
        &'a self,
        target: &'a HostTarget,
    ) -> BoxFuture<'a, Result<Arc<dyn Connection>, TransportError>> {
        Box::pin(async move {
            let conn = self.connect_ssh(target).await?;
            Ok(Arc::new(conn) as Arc<dyn Connection>)
        })
    }

    fn worth_opening_ahead(&self) -> bool {
        true
    }
}
