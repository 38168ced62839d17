//! Dialling a host: TCP, SSH handshake, host key check, authentication, ProxyJump.
//!
//! The host key is verified inside russh's `check_server_key` callback, i.e. before
//! authentication; a refusal aborts the handshake with a typed error and the connection is
//! dropped, so no credential is offered and no channel is opened to a refused host.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use russh::keys::PublicKeyOrCertificate;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::SshConfig;
use super::known_hosts::{self, Verdict};
use super::limits::{self, HandshakeLimits, HandshakeSlots};
use super::{SshOptions, auth};
use crate::transport::{HostKeyPolicy, HostTarget, TransportError};

/// What the russh handler returns: a protocol error, or our own refusal of the host key.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Ssh(russh::Error),
    #[error("{0}")]
    Refused(Box<TransportError>),
}

impl From<russh::Error> for ClientError {
    fn from(e: russh::Error) -> Self {
        ClientError::Ssh(e)
    }
}

/// The russh client handler of one hop: checks the host key.
pub struct Client {
    host: String,
    address: String,
    port: u16,
    known_hosts: Vec<PathBuf>,
    policy: HostKeyPolicy,
    fingerprint: Arc<Mutex<Option<String>>>,
}

impl Client {
    fn verify(&self, key: &russh::keys::PublicKey) -> Result<(), TransportError> {
        let fingerprint = known_hosts::fingerprint(key);
        let files = || {
            self.known_hosts
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let verdict = known_hosts::check(&self.known_hosts, &self.address, self.port, key);
        match (verdict, self.policy) {
            (_, HostKeyPolicy::InsecureIgnoreHostKeys) | (Verdict::Trusted, _) => Ok(()),
            (Verdict::Revoked { file }, _) => Err(TransportError::HostKeyRevoked {
                host: self.host.clone(),
                fingerprint,
                known_hosts: file.display().to_string(),
            }),
            (Verdict::Changed { expected, file }, _) => Err(TransportError::HostKeyChanged {
                host: self.host.clone(),
                expected,
                presented: fingerprint,
                known_hosts: file.display().to_string(),
            }),
            (Verdict::Unknown, HostKeyPolicy::Strict) => Err(TransportError::HostKeyUnknown {
                host: self.host.clone(),
                fingerprint,
                known_hosts: files(),
            }),
            (Verdict::Unknown, HostKeyPolicy::AcceptNew) => {
                let Some(file) = self.known_hosts.first() else {
                    return Err(TransportError::HostKeyUnknown {
                        host: self.host.clone(),
                        fingerprint,
                        known_hosts: "(no known_hosts file configured)".into(),
                    });
                };
                known_hosts::append(file, &self.address, self.port, key).map_err(|e| {
                    TransportError::HostKeyUnknown {
                        host: self.host.clone(),
                        fingerprint: fingerprint.clone(),
                        known_hosts: format!("{} (cannot record the new key: {e})", file.display()),
                    }
                })?;
                tracing::warn!(host = %self.host, %fingerprint, file = %file.display(), "accept-new: learned and recorded a new host key");
                Ok(())
            }
        }
    }
}

impl client::Handler for Client {
    type Error = ClientError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_key else {
            return Err(ClientError::Refused(Box::new(TransportError::Protocol {
                host: self.host.clone(),
                reason:
                    "the host presented a host certificate; sluice verifies plain host keys only"
                        .into(),
            })));
        };
        self.verify(key)
            .map_err(|e| ClientError::Refused(Box::new(e)))?;
        if let Ok(mut slot) = self.fingerprint.lock() {
            *slot = Some(known_hosts::fingerprint(key));
        }
        Ok(true)
    }
}

/// An authenticated connection and the jump connections it runs through.
pub struct Session {
    pub handle: Handle<Client>,
    pub fingerprint: String,
    /// Kept alive: dropping a jump host's handle would cut the tunnel.
    _jumps: Vec<Handle<Client>>,
    _permit: OwnedSemaphorePermit,
}

/// One hop: where to connect and as whom.
#[derive(Clone, Debug)]
struct Hop {
    address: String,
    port: u16,
    user: String,
}

impl Hop {
    /// Parses `[user@]host[:port]` (or `[user@][v6addr]:port`), defaulting the user.
    fn parse(spec: &str, default_user: &str) -> Hop {
        let (user, rest) = match spec.rsplit_once('@') {
            Some((u, r)) => (u.to_string(), r),
            None => (default_user.to_string(), spec),
        };
        let (address, port) = if let Some(v6) = rest.strip_prefix('[') {
            match v6.split_once("]:") {
                Some((a, p)) => (a.to_string(), p.parse().unwrap_or(22)),
                None => (v6.trim_end_matches(']').to_string(), 22),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((a, p)) if p.parse::<u16>().is_ok() => {
                    (a.to_string(), p.parse().unwrap_or(22))
                }
                _ => (rest.to_string(), 22),
            }
        };
        Hop {
            address,
            port,
            user,
        }
    }
}

/// Where one hop's handshake goes: its sshd and the jump hosts it passes through (`host:port`).
#[derive(Clone, Copy)]
struct Route<'a> {
    destination: &'a str,
    through: &'a [String],
}

/// Shared state of all connections of one [`super::SshTransport`].
pub struct Dialer {
    pub options: SshOptions,
    config: Arc<client::Config>,
    handshakes: HandshakeSlots,
    connections: Arc<Semaphore>,
    ssh_config: Option<SshConfig>,
    passphrases: auth::AskedPassphrases,
}

impl Dialer {
    pub fn new(options: SshOptions) -> Self {
        let config = client::Config {
            keepalive_interval: Some(options.keepalive_interval),
            keepalive_max: options.keepalive_max,
            inactivity_timeout: None,
            nodelay: true,
            ..Default::default()
        };
        Dialer {
            ssh_config: options.ssh_config.as_deref().map(SshConfig::load),
            handshakes: HandshakeSlots::new(HandshakeLimits {
                per_destination: options.handshakes_per_destination,
                per_jump_host: options.handshakes_per_jump_host,
                in_flight: options.handshakes_in_flight,
            }),
            connections: Arc::new(Semaphore::new(options.max_connections.max(1))),
            passphrases: auth::AskedPassphrases::default(),
            config: Arc::new(config),
            options,
        }
    }

    fn user(target: &HostTarget) -> String {
        target
            .user
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "root".into())
    }

    fn known_hosts(&self, target: &HostTarget) -> Vec<PathBuf> {
        // As OpenSSH's UserKnownHostsFile: files the inventory names replace the default.
        if target.known_hosts.is_empty() {
            self.options.default_known_hosts.clone()
        } else {
            target.known_hosts.clone()
        }
    }

    /// Connects to `target` through its jump hosts and authenticates.
    pub async fn open(&self, target: &HostTarget) -> Result<Session, TransportError> {
        let resolved = match &self.ssh_config {
            Some(cfg) => cfg.apply(target),
            None => target.clone(),
        };
        let target = &resolved;
        let permit = self
            .connections
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| unreachable(target, &e.to_string()))?;
        let user = Self::user(target);
        let mut hops: Vec<(String, Hop)> = target
            .proxy_jump
            .iter()
            .map(|spec| (format!("jump host {spec}"), Hop::parse(spec, &user)))
            .collect();
        hops.push((
            target.name.clone(),
            Hop {
                address: target.address.clone(),
                port: target.port,
                user,
            },
        ));
        let addresses: Vec<String> = hops
            .iter()
            .map(|(_, hop)| format!("{}:{}", hop.address, hop.port))
            .collect();
        let mut jumps: Vec<Handle<Client>> = Vec::new();
        let hop_count = hops.len();
        for (i, (label, hop)) in hops.into_iter().enumerate() {
            let name = if i + 1 == hop_count {
                target.name.clone()
            } else {
                format!("{} ({label})", target.name)
            };
            let fingerprint = Arc::new(Mutex::new(None));
            let route = Route {
                destination: &addresses[i],
                through: &addresses[..i],
            };
            let (handle, fp) = self
                .dial_hop(target, &name, &hop, jumps.last(), route, fingerprint)
                .await?;
            if i + 1 == hop_count {
                return Ok(Session {
                    handle,
                    fingerprint: fp,
                    _jumps: jumps,
                    _permit: permit,
                });
            }
            jumps.push(handle);
        }
        Err(unreachable(target, "no hop to connect to"))
    }

    /// Handshake and authentication of one hop, retried when sshd drops the connection early.
    ///
    /// All attempts of a hop share one budget, `connect_timeout + handshake_timeout` (the TCP
    /// connect alone also within `connect_timeout`), retry delays included; waiting for a
    /// handshake slot or an exchange permit is not counted: that is queueing behind other
    /// connections, each bounded.
    async fn dial_hop(
        &self,
        target: &HostTarget,
        name: &str,
        hop: &Hop,
        via: Option<&Handle<Client>>,
        route: Route<'_>,
        fingerprint: Arc<Mutex<Option<String>>>,
    ) -> Result<(Handle<Client>, String), TransportError> {
        let unreachable_hop = |reason: String| TransportError::Unreachable {
            host: name.to_string(),
            address: format!("{}:{}", hop.address, hop.port),
            reason,
        };
        let budget = self.options.connect_timeout + self.options.handshake_timeout;
        let over_budget = |attempt: u32| {
            unreachable_hop(format!(
                "no SSH handshake within {budget:?} ({attempt} attempt(s))"
            ))
        };
        let mut spent = Duration::ZERO;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let slots = self
                .handshakes
                .acquire(route.destination, route.through)
                .await
                .map_err(|e| unreachable_hop(e.to_string()))?;
            let started = Instant::now();
            let stream = tokio::time::timeout(budget.saturating_sub(spent), self.stream(hop, via))
                .await
                .map_err(|_| over_budget(attempt))?
                .map_err(|e| unreachable_hop(e.to_string()))?;
            spent += started.elapsed();
            let exchange = self
                .handshakes
                .exchange()
                .await
                .map_err(|e| unreachable_hop(e.to_string()))?;
            let handler = Client {
                host: name.to_string(),
                address: hop.address.clone(),
                port: hop.port,
                known_hosts: self.known_hosts(target),
                policy: target.host_key_policy,
                fingerprint: fingerprint.clone(),
            };
            let started = Instant::now();
            let result = tokio::time::timeout(budget.saturating_sub(spent), async {
                let mut handle =
                    client::connect_stream(self.config.clone(), stream, handler).await?;
                auth::authenticate(
                    &mut handle,
                    name,
                    &hop.user,
                    target,
                    &self.options,
                    &self.passphrases,
                )
                .await
                .map_err(|e| ClientError::Refused(Box::new(e)))?;
                Ok::<_, ClientError>(handle)
            })
            .await;
            spent += started.elapsed();
            let err = match result {
                Err(_) => return Err(over_budget(attempt)),
                Ok(Ok(handle)) => {
                    let fp = fingerprint
                        .lock()
                        .ok()
                        .and_then(|g| g.clone())
                        .unwrap_or_default();
                    return Ok((handle, fp));
                }
                Ok(Err(ClientError::Refused(e))) => return Err(*e),
                Ok(Err(ClientError::Ssh(e))) => e,
            };
            // Free the slots while waiting: other handshakes may use them meanwhile.
            drop((exchange, slots));
            let delay = limits::retry_delay(attempt);
            if dropped_during_banner(&err)
                && attempt <= self.options.handshake_retries
                && spent + delay < budget
            {
                tracing::debug!(
                    host = name,
                    attempt,
                    "connection dropped during handshake; retrying"
                );
                tokio::time::sleep(delay).await;
                spent += delay;
                continue;
            }
            return Err(unreachable_hop(format!("SSH handshake failed: {err}")));
        }
    }

    /// The byte stream of one hop: a TCP connection, or a `direct-tcpip` channel through the
    /// previous hop. One boxed type for both, so russh's session is compiled once.
    async fn stream(
        &self,
        hop: &Hop,
        via: Option<&Handle<Client>>,
    ) -> Result<HopStream, StreamError> {
        match via {
            None => {
                let limit = self.options.connect_timeout;
                let tcp = tokio::time::timeout(
                    limit,
                    TcpStream::connect((hop.address.as_str(), hop.port)),
                )
                .await
                .map_err(|_| StreamError::TcpTimeout(limit))?
                .map_err(StreamError::Tcp)?;
                let _ = tcp.set_nodelay(true);
                Ok(Box::new(tcp))
            }
            Some(jump) => {
                let channel = jump
                    .channel_open_direct_tcpip(
                        hop.address.clone(),
                        u32::from(hop.port),
                        "127.0.0.1",
                        0,
                    )
                    .await
                    .map_err(StreamError::Jump)?;
                Ok(Box::new(channel.into_stream()))
            }
        }
    }
}

/// What an SSH session runs over (see [`Dialer::stream`]).
type HopStream = Box<dyn HopIo>;

/// A byte stream russh can run a session over.
trait HopIo: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> HopIo for T {}

/// Why the stream of one hop could not be opened.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("no TCP connection within {0:?}")]
    TcpTimeout(Duration),
    #[error("{0}")]
    Tcp(#[source] std::io::Error),
    #[error("jump host cannot reach it: {0}")]
    Jump(#[source] russh::Error),
}

/// sshd's `MaxStartups` drop shows as a reset or EOF before the key exchange finished.
fn dropped_during_banner(e: &russh::Error) -> bool {
    use std::io::ErrorKind::*;
    match e {
        russh::Error::IO(io) => matches!(
            io.kind(),
            ConnectionReset | UnexpectedEof | BrokenPipe | ConnectionAborted
        ),
        russh::Error::Disconnect | russh::Error::HUP => true,
        _ => false,
    }
}

fn unreachable(target: &HostTarget, reason: &str) -> TransportError {
    TransportError::Unreachable {
        host: target.name.clone(),
        address: format!("{}:{}", target.address, target.port),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::Hop;

    /// Every russh session creates three tokio channels of `Msg` (and one of its private
    /// `Reply`) and keeps them for its whole life; tokio allocates a channel's first block of 32
    /// messages up front. With a certificate inline, `Msg` was ~500 bytes: ~16 KiB per channel
    /// and connected host (issue 14). vendor/russh boxes the large fields (vendor/russh/PATCHED.md);
    /// this fails if a russh version makes the message large again.
    #[test]
    fn russh_channel_messages_stay_small() {
        let size = std::mem::size_of::<russh::client::Msg>();
        assert!(size <= 192, "russh::client::Msg is {size} bytes");
    }

    #[test]
    fn jump_specs_parse_like_openssh() {
        let h = Hop::parse("admin@bastion:2222", "me");
        assert_eq!(
            (h.user.as_str(), h.address.as_str(), h.port),
            ("admin", "bastion", 2222)
        );
        let h = Hop::parse("bastion", "me");
        assert_eq!(
            (h.user.as_str(), h.address.as_str(), h.port),
            ("me", "bastion", 22)
        );
        let h = Hop::parse("[::1]:2200", "me");
        assert_eq!((h.address.as_str(), h.port), ("::1", 2200));
    }
}
