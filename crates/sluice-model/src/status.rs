//! Statuses, outcomes and kinds: the closed vocabularies of a run, as enums.

use serde::{Deserialize, Serialize};

/// Why a host could not be reached or a command could not be carried, as the transport
/// classifies it. Serialized snake_case (`host_key_refused`), as in `--json` and records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectErrorKind {
    /// No TCP connection, or the handshake did not complete.
    Unreachable,
    /// The host key is unknown, changed or revoked: nothing was sent to the host.
    HostKeyRefused,
    /// Authentication failed, or the identity file is unusable.
    AuthFailed,
    /// The connection dropped while a command ran: its outcome is unknown.
    ConnectionLost,
    /// sudo refused or failed before the command started.
    BecomeFailed,
    /// Anything else the transport could not do (spawn, protocol, upload).
    TransportError,
}

impl ConnectErrorKind {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectErrorKind::Unreachable => "unreachable",
            ConnectErrorKind::HostKeyRefused => "host_key_refused",
            ConnectErrorKind::AuthFailed => "auth_failed",
            ConnectErrorKind::ConnectionLost => "connection_lost",
            ConnectErrorKind::BecomeFailed => "become_failed",
            ConnectErrorKind::TransportError => "transport_error",
        }
    }

    /// The host could not be reached at all (counted as unreachable, not failed).
    pub fn is_unreachable(self) -> bool {
        matches!(
            self,
            ConnectErrorKind::Unreachable
                | ConnectErrorKind::HostKeyRefused
                | ConnectErrorKind::AuthFailed
        )
    }
}

impl std::fmt::Display for ConnectErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
