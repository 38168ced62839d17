//! Limits on concurrent handshakes per destination, per jump host and in all, and on open
//! connections.
//!
//! OpenSSH's `MaxStartups 10:30:100` randomly drops unauthenticated connections beyond 10 per
//! sshd. Every handshake therefore holds a slot of the sshd it talks to (its destination
//! `host:port`, default 8 at once) until authentication finished. A handshake through jump hosts
//! also holds a slot of each jump host it passes through (default 8 at once per jump host): the
//! bastion's sshd carries every tunnel, and its own `MaxStartups` is not the only limit that
//! matters there (CPU for the forwarded key exchanges, and its `MaxSessions`-like limits on
//! forwarded channels). Dialling `web-1` through `bastion` is thus two handshakes: the one with
//! `bastion` (destination slot of `bastion`), then the one with `web-1` (destination slot of
//! `web-1` and a jump slot of `bastion`).
//!
//! A handshake that needs several slots takes them in one global order (jump slots by address,
//! then destination slots by address), so two handshakes never each hold a slot the other waits
//! for.
//!
//! Across all destinations, at most `in_flight` handshakes run their key exchange and
//! authentication at once (an [`ExchangePermit`], default 32). That is a limit on memory, not on
//! sshd: a wave of hundreds of hosts connects in one burst, and every handshake's temporaries
//! (key-exchange state, packets, the known_hosts file read, key files and signatures) would
//! otherwise be live together, interleaved with the sessions' lasting state; the allocator's
//! pages they leave partly used stay resident (docs/benchmarks.md, issue 14). The permit is taken
//! after the TCP connection (or the jump host's channel) is open and last of all slots: a host
//! that does not answer the TCP connect never holds it, and its holder waits for nothing but its
//! own peer, so it cannot deadlock with the slots above.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// What a slot limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SlotKind {
    /// Handshakes passing through a jump host (over `direct-tcpip`).
    JumpHost,
    /// Handshakes with one sshd.
    Destination,
}

/// One semaphore per (kind, `host:port`), created on first use, and one for all handshakes.
pub struct HandshakeSlots {
    per_destination: usize,
    per_jump_host: usize,
    slots: Mutex<HashMap<(SlotKind, String), Arc<Semaphore>>>,
    in_flight: Arc<Semaphore>,
}

/// Sizes of the handshake limits (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub struct HandshakeLimits {
    pub per_destination: usize,
    pub per_jump_host: usize,
    pub in_flight: usize,
}

/// The slots one handshake holds; released on drop.
#[derive(Debug)]
pub struct HandshakePermit {
    _permits: Vec<OwnedSemaphorePermit>,
}

/// One of the `in_flight` key exchanges of all destinations; released on drop.
#[derive(Debug)]
pub struct ExchangePermit {
    _permit: OwnedSemaphorePermit,
}

impl HandshakeSlots {
    pub fn new(limits: HandshakeLimits) -> Self {
        HandshakeSlots {
            per_destination: limits.per_destination.max(1),
            per_jump_host: limits.per_jump_host.max(1),
            slots: Mutex::new(HashMap::new()),
            in_flight: Arc::new(Semaphore::new(
                limits.in_flight.clamp(1, Semaphore::MAX_PERMITS),
            )),
        }
    }

    fn slot(&self, kind: SlotKind, address: &str) -> Arc<Semaphore> {
        let size = match kind {
            SlotKind::Destination => self.per_destination,
            SlotKind::JumpHost => self.per_jump_host,
        };
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry((kind, address.to_string()))
            .or_insert_with(|| Arc::new(Semaphore::new(size)))
            .clone()
    }

    /// Waits for the slots of one handshake with `destination` (`host:port`) through the jump
    /// hosts `through` (`host:port` each, outermost first).
    pub async fn acquire(
        &self,
        destination: &str,
        through: &[String],
    ) -> Result<HandshakePermit, AcquireError> {
        let mut keys: Vec<(SlotKind, &str)> = through
            .iter()
            .map(|j| (SlotKind::JumpHost, j.as_str()))
            .collect();
        keys.push((SlotKind::Destination, destination));
        keys.sort();
        keys.dedup();
        let mut permits = Vec::with_capacity(keys.len());
        for (kind, address) in keys {
            permits.push(self.slot(kind, address).acquire_owned().await?);
        }
        Ok(HandshakePermit { _permits: permits })
    }

    /// Waits for one of the key exchanges in flight, whatever the destination; taken after the
    /// slots of [`HandshakeSlots::acquire`] and the TCP connection.
    pub async fn exchange(&self) -> Result<ExchangePermit, AcquireError> {
        let permit = self.in_flight.clone().acquire_owned().await?;
        Ok(ExchangePermit { _permit: permit })
    }
}

/// Half the soft `RLIMIT_NOFILE` (raised to the hard limit first, see [`crate::fd_limit`]):
/// each connection holds one socket, and the rest of the process (local commands, audit files)
/// needs descriptors too.
pub fn connections_for_fd_limit() -> usize {
    crate::fd_limit::raised().ssh_connections()
}

/// Delay before handshake retry `attempt` (1-based): growing, with jitter so that connections
/// dropped together do not come back together.
pub fn retry_delay(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let random = RandomState::new().hash_one(attempt) % 100;
    Duration::from_millis(50 * u64::from(attempt.min(6)) + random * u64::from(attempt.min(6)))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn handshake_slots(
        per_destination: usize,
        per_jump_host: usize,
        in_flight: usize,
    ) -> HandshakeSlots {
        HandshakeSlots::new(HandshakeLimits {
            per_destination,
            per_jump_host,
            in_flight,
        })
    }

    /// Runs `tasks` handshakes (destination, through) at once, each holding its slots and an
    /// exchange permit for a moment, as `Dialer::dial_hop` does; returns the most that were
    /// ever in flight together.
    async fn most_in_flight(
        slots: Arc<HandshakeSlots>,
        tasks: Vec<(String, Vec<String>)>,
    ) -> usize {
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let runs = tasks.into_iter().map(|(dest, through)| {
            let (slots, now, most) = (slots.clone(), now.clone(), most.clone());
            tokio::spawn(async move {
                let _permit = slots.acquire(&dest, &through).await.unwrap();
                let _exchange = slots.exchange().await.unwrap();
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                now.fetch_sub(1, Ordering::SeqCst);
            })
        });
        let all = futures::future::join_all(runs);
        tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .expect("handshakes deadlocked on their slots");
        most.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn one_destination_gets_at_most_its_cap() {
        let slots = Arc::new(handshake_slots(3, 8, 1000));
        let tasks = (0..30).map(|_| ("web:22".to_string(), vec![])).collect();
        assert_eq!(most_in_flight(slots, tasks).await, 3);
    }

    #[tokio::test]
    async fn all_destinations_together_get_at_most_the_exchanges_in_flight() {
        let slots = Arc::new(handshake_slots(8, 8, 4));
        let tasks = (0..40).map(|i| (format!("web-{i}:22"), vec![])).collect();
        assert_eq!(most_in_flight(slots, tasks).await, 4);
    }

    #[tokio::test]
    async fn a_jump_host_caps_handshakes_through_it_whatever_their_destination() {
        let slots = Arc::new(handshake_slots(8, 2, 1000));
        let tasks = (0..30)
            .map(|i| (format!("web-{i}:22"), vec!["bastion:22".to_string()]))
            .collect();
        assert_eq!(most_in_flight(slots, tasks).await, 2);
    }

    #[tokio::test]
    async fn behind_a_bastion_each_destination_is_capped_too() {
        let slots = Arc::new(handshake_slots(2, 100, 1000));
        let tasks = (0..30)
            .map(|_| ("web-1:22".to_string(), vec!["bastion:22".to_string()]))
            .collect();
        assert_eq!(most_in_flight(slots, tasks).await, 2);
    }

    #[tokio::test]
    async fn handshakes_with_the_bastion_itself_do_not_use_its_jump_slots() {
        let slots = Arc::new(handshake_slots(8, 1, 1000));
        // Hold the bastion's only jump slot; a direct handshake with it still gets through.
        let held = slots
            .acquire("web-1:22", &["bastion:22".to_string()])
            .await
            .unwrap();
        let direct =
            tokio::time::timeout(Duration::from_secs(1), slots.acquire("bastion:22", &[])).await;
        assert!(direct.is_ok());
        drop(held);
    }

    #[tokio::test]
    async fn crossing_jump_chains_never_deadlock() {
        let slots = Arc::new(handshake_slots(1, 1, 1));
        let (a, b) = ("a:22".to_string(), "b:22".to_string());
        let tasks = (0..20)
            .map(|i| {
                let through = if i % 2 == 0 {
                    vec![a.clone(), b.clone()]
                } else {
                    vec![b.clone(), a.clone()]
                };
                (format!("dest-{}:22", i % 3), through)
            })
            .collect();
        assert_eq!(most_in_flight(slots, tasks).await, 1);
    }
}
