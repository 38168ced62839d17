//! Approval gates answered from the audit store.
//!
//! The executor records `approval_requested` before it asks, so `sluice approve RUN --wave W` in
//! another terminal (or on another machine sharing the store) sees the gate waiting. The
//! [`StoreApprover`] then polls the store for the latest answer and, when the run has a
//! terminal, races the prompt there: whichever answers first wins, and a prompt that lost is
//! withdrawn. An answer typed at the terminal is recorded (`how: terminal`) before the executor
//! hears it; an answer that cannot be recorded is a refusal, since no wave may start on an
//! approval the audit trail does not hold.
//!
//! Under a policy with `gates: signed` ([`GatePolicy`]), only a signed approval by an allowed
//! signer over the gate's statement opens the gate (a refusal needs no proof); the terminal is
//! not asked, and an answer that does not count is logged as a warning and the gate waits on.

use std::sync::Arc;
use std::time::Duration;

use sluice_audit::AuditLog;
use sluice_exec::Approver;
use sluice_exec::approval::{ApprovalFuture, refusal};
use sluice_model::{Approval, Fact};

use crate::policy::GatePolicy;

/// How often a waiting gate looks at the store.
pub const POLL: Duration = Duration::from_millis(250);

pub struct StoreApprover {
    pub log: Arc<AuditLog>,
    /// Asks on the operator's terminal, when there is one (never under signed gates).
    pub terminal: Option<Arc<dyn Approver>>,
    /// The policy's rule for gates, when they must be signed.
    pub policy: Option<GatePolicy>,
}

impl Approver for StoreApprover {
    fn approve<'a>(&'a self, run_id: &'a str, wave: &'a str) -> ApprovalFuture<'a> {
        Box::pin(async move {
            let store = self.poll(run_id, wave);
            match self.terminal.as_ref().filter(|_| self.policy.is_none()) {
                Some(terminal) => {
                    tokio::select! {
                        a = store => a,
                        a = terminal.approve(run_id, wave) => self.record_typed(run_id, wave, a).await,
                    }
                }
                None => store.await,
            }
        })
    }
}

impl StoreApprover {
    /// Records an answer typed at the terminal; an answer that cannot be recorded is a refusal.
    async fn record_typed(&self, run: &str, wave: &str, approval: Approval) -> Approval {
        let (log, run_id, fact) = (
            self.log.clone(),
            run.to_string(),
            Fact::Approval(approval.clone()),
        );
        let recorded = tokio::task::spawn_blocking(move || log.append(&run_id, fact)).await;
        match recorded {
            Ok(Ok(_)) => approval,
            _ => refusal(
                wave,
                "sluice (the audit store could not record the answer typed at the terminal)",
            ),
        }
    }

    /// Waits until the store holds an answer that opens (or closes) the gate. A store that
    /// cannot be read is read again at the next poll: the gate keeps waiting (a stop request
    /// still ends the wait).
    async fn poll(&self, run: &str, wave: &str) -> Approval {
        let mut judged = None;
        loop {
            let (log, r, w) = (self.log.clone(), run.to_string(), wave.to_string());
            let found = tokio::task::spawn_blocking(move || log.wave_answer(&r, &w)).await;
            if let Ok(Ok(Some((seq, approval)))) = found
                && judged != Some(seq)
            {
                judged = Some(seq);
                match &self.policy {
                    None => return approval,
                    Some(policy) => {
                        match policy.admits(run, wave, &approval, jiff::Timestamp::now()) {
                            Ok(principal) => {
                                return Approval {
                                    by: principal,
                                    ..approval
                                };
                            }
                            Err(why) => tracing::warn!(
                                "the answer to the gate before wave {wave} (record {seq}, by {}) does not open it: {why}; still waiting for a signed approval",
                                approval.by
                            ),
                        }
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
