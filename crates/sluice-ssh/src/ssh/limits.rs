//! Limits on concurrent handshakes per destination and on open connections overall.
//!
//! OpenSSH's `MaxStartups 10:30:100` randomly drops unauthenticated connections beyond 10 per
//! sshd. A bastion that every connection passes through is one such sshd for all of them, so
//! the slot is keyed by the first hop's `host:port`, and held until authentication finished.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

/// One semaphore per destination, created on first use.
pub struct HandshakeSlots {
    per_destination: usize,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl HandshakeSlots {
    pub fn new(per_destination: usize) -> Self {
        HandshakeSlots {
            per_destination: per_destination.max(1),
            slots: Mutex::new(HashMap::new()),
        }
    }

    pub fn for_destination(&self, destination: &str) -> Arc<Semaphore> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(destination.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_destination)))
            .clone()
    }
}

/// Half the soft `RLIMIT_NOFILE`: each connection holds one socket, and the rest of the process
/// (audit files, pipes of local commands) needs descriptors too.
pub fn connections_for_fd_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass; no other effect.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc != 0 {
        return 512;
    }
    usize::try_from(limit.rlim_cur / 2)
        .unwrap_or(usize::MAX)
        .clamp(16, 65_536)
}

/// Delay before handshake retry `attempt` (1-based): growing, with jitter so that connections
/// dropped together do not come back together.
pub fn retry_delay(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let random = RandomState::new().hash_one(attempt) % 100;
    Duration::from_millis(50 * u64::from(attempt.min(6)) + random * u64::from(attempt.min(6)))
}
