//! Opening the next wave's SSH connections while the current wave runs.
//!
//! A rolling patch spends much of its wall time in SSH handshakes: every host of a wave connects
//! when the wave starts, and a handshake costs a round trip or three plus the server's key
//! exchange and session start-up, tens of milliseconds each that queue up on a busy bastion or
//! controller. Hosts of the current wave spend most of theirs waiting on remote commands, so the
//! handshakes of the next wave can overlap that wait instead of following it
//! (docs/benchmarks.md, "Where sluice's time goes").
//!
//! What this may and may not do, because a change board reads "wave 2 was not touched" literally:
//! - only a connection is opened (TCP, host key check, authentication); no channel, no command;
//!   a wave that never starts never receives a command, and its warm connections are closed;
//! - only for hosts whose transport says connecting ahead is worth it
//!   ([`sluice_ssh::Transport::worth_opening_ahead`]: SSH yes; `local` no, since a local host's
//!   "connection" creates its working directory, which is a change);
//! - not across an approval gate or a pause: a connection held while people decide, or while a
//!   soak time runs, would sit idle for minutes;
//! - at most the wave's concurrency: the hosts that start first;
//! - a failed warm-up is forgotten, not reported: the host connects again when its turn comes,
//!   and that attempt is the one that counts (the host may have come back meanwhile).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sluice_plan::PlanArtifact;
use sluice_ssh::{Connection, TransportError};
use tokio::task::JoinHandle;

use crate::transports::{Transports, host_target};

type Warming = JoinHandle<Result<Arc<dyn Connection>, TransportError>>;

/// Connections being opened for hosts of a later wave, by host name.
pub(crate) struct Preconnect {
    enabled: bool,
    warming: Mutex<HashMap<String, Warming>>,
}

impl Preconnect {
    pub fn new(enabled: bool) -> Self {
        Preconnect {
            enabled,
            warming: Mutex::new(HashMap::new()),
        }
    }

    /// Starts connecting the first hosts of wave `next`, when the rules above allow it.
    pub fn warm(&self, artifact: &PlanArtifact, transports: &Transports, next: usize) {
        if !self.enabled || next == 0 {
            return;
        }
        let (Some(before), Some(wave)) = (artifact.waves.get(next - 1), artifact.waves.get(next))
        else {
            return;
        };
        if wave.approval || before.pause_ms.is_some_and(|ms| ms > 0) {
            return;
        }
        let Ok(mut warming) = self.warming.lock() else {
            return;
        };
        for name in wave.hosts.iter().take(wave.concurrency.max(1)) {
            let Some(plan) = artifact.host(name) else {
                continue;
            };
            if warming.contains_key(name) {
                continue;
            }
            let Some(transport) = transports.get(plan.connection.transport) else {
                continue;
            };
            if !transport.worth_opening_ahead() {
                continue;
            }
            let target = host_target(plan);
            warming.insert(
                name.clone(),
                tokio::spawn(async move { transport.connect(&target).await }),
            );
        }
    }

    /// The warm connection of `host`, waiting for its handshake to end if it is still going;
    /// `None` when there is none or it failed (the caller connects as usual).
    pub async fn take(&self, host: &str) -> Option<Arc<dyn Connection>> {
        let handle = self.warming.lock().ok()?.remove(host)?;
        match handle.await {
            Ok(Ok(conn)) => Some(conn),
            _ => None,
        }
    }

    /// Drops every warm connection that was not used (the run is over).
    pub fn clear(&self) {
        if let Ok(mut warming) = self.warming.lock() {
            for (_, handle) in warming.drain() {
                handle.abort();
            }
        }
    }
}

impl Drop for Preconnect {
    fn drop(&mut self) {
        self.clear();
    }
}
