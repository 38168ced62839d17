//! Stopping a run early: Ctrl-C once or twice, the maintenance window closing, and the audit
//! store becoming unreachable.
//!
//! As in mini-redis, one sender broadcasts the stop state and every task that can stop holds a
//! receiver ([`StopListener`]). A *soft* stop (first Ctrl-C, window closed) means: start no new
//! host and no new step, let the commands in flight finish, then roll back or halt per policy.
//! A *hard* stop (second Ctrl-C) means: abandon the commands in flight now; their steps are
//! recorded as UNKNOWN and nothing is undone. A stop because the audit store cannot be reached
//! ([`StopReason::StoreUnreachable`]) is soft, but nothing is rolled back after it: an undo's
//! intent could not be recorded, so its command would not be sent anyway; the run is left
//! unfinished for `sluice resume`.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;

/// Why a soft stop was requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Interrupted,
    WindowClosed,
    /// The journal could not reach its store (a database that went away).
    StoreUnreachable,
    /// A host handed to workers needs the operator (`host_needs_operator`): like
    /// `StoreUnreachable`, nothing is undone and the run is left for `sluice resume`.
    OperatorNeeded,
}

/// The current stop state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stop {
    pub soft: Option<StopReason>,
    pub hard: bool,
}

impl Stop {
    /// The run is stopping because its store cannot be reached.
    pub fn store_lost(&self) -> bool {
        self.soft == Some(StopReason::StoreUnreachable)
    }

    /// The run is stopping for the operator (`--workers`).
    pub fn operator_needed(&self) -> bool {
        self.soft == Some(StopReason::OperatorNeeded)
    }
}

/// The sending side, shared by the signal handler and the window timer.
#[derive(Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<Stop>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Shutdown {
            tx: Arc::new(watch::Sender::new(Stop::default())),
        }
    }

    /// Ctrl-C: the first is a soft stop, the second a hard one. Returns the new state.
    pub fn interrupt(&self) -> Stop {
        self.tx.send_modify(|s| {
            if s.soft == Some(StopReason::Interrupted) {
                s.hard = true;
            } else if s.soft.is_none() {
                s.soft = Some(StopReason::Interrupted);
            } else {
                // Already stopping because the window closed: a Ctrl-C now means "now".
                s.hard = true;
            }
        });
        *self.tx.borrow()
    }

    /// The maintenance window closed: a soft stop unless one is already under way.
    pub fn window_closed(&self) {
        self.tx.send_modify(|s| {
            if s.soft.is_none() {
                s.soft = Some(StopReason::WindowClosed);
            }
        });
    }

    /// The journal cannot reach its store: a soft stop that nothing is undone after. It takes
    /// precedence over an earlier soft stop (whose rollback could not be recorded either).
    pub fn store_unreachable(&self) {
        self.tx
            .send_modify(|s| s.soft = Some(StopReason::StoreUnreachable));
    }

    /// A host handed to workers needs the operator: a soft stop nothing is undone after,
    /// unless the store was lost (which says more).
    pub fn operator_needed(&self) {
        self.tx.send_modify(|s| {
            if s.soft != Some(StopReason::StoreUnreachable) {
                s.soft = Some(StopReason::OperatorNeeded);
            }
        });
    }

    pub fn state(&self) -> Stop {
        *self.tx.borrow()
    }

    pub fn subscribe(&self) -> StopListener {
        StopListener {
            rx: self.tx.subscribe(),
        }
    }
}

/// The receiving side held by each task that may have to stop.
#[derive(Clone)]
pub struct StopListener {
    rx: watch::Receiver<Stop>,
}

impl StopListener {
    pub fn state(&self) -> Stop {
        *self.rx.borrow()
    }

    pub fn soft_requested(&self) -> Option<StopReason> {
        self.state().soft
    }

    pub fn hard_requested(&self) -> bool {
        self.state().hard
    }

    /// Resolves once any stop (soft or hard) is requested.
    pub async fn soft(&mut self) {
        if self
            .rx
            .wait_for(|s| s.soft.is_some() || s.hard)
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once a hard stop is requested.
    pub async fn hard(&mut self) {
        if self.rx.wait_for(|s| s.hard).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_interrupt_is_soft_second_is_hard() {
        let s = Shutdown::new();
        assert_eq!(
            s.interrupt(),
            Stop {
                soft: Some(StopReason::Interrupted),
                hard: false
            }
        );
        assert!(s.interrupt().hard);
    }

    #[test]
    fn an_unreachable_store_overrides_an_earlier_soft_stop() {
        let s = Shutdown::new();
        s.interrupt();
        s.store_unreachable();
        assert!(s.state().store_lost());
        assert!(!s.state().hard);
    }

    #[test]
    fn window_close_keeps_an_earlier_interrupt_as_the_reason() {
        let s = Shutdown::new();
        s.interrupt();
        s.window_closed();
        assert_eq!(s.state().soft, Some(StopReason::Interrupted));
    }
}
