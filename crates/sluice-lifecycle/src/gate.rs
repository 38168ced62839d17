//! Approval gates answered from the audit store.
//!
//! The executor records `approval_requested` before it asks, so `sluice approve RUN --wave W` in
//! another terminal (or on another machine sharing the store) sees the gate waiting. The
//! [`StoreApprover`] then polls [`AuditLog::wave_approved`] and, when the run has a terminal,
//! races the prompt there: whichever answers first wins. An answer typed at the terminal is
//! recorded (`how: terminal`) before the executor hears it; an answer that cannot be recorded is
//! a refusal, since no wave may start on an approval the audit trail does not hold.

use std::sync::Arc;
use std::time::Duration;

use sluice_audit::AuditLog;
use sluice_exec::Approver;
use sluice_exec::approval::{ApprovalFuture, refusal};
use sluice_model::{Approval, Fact};

/// How often a waiting gate looks at the store.
pub const POLL: Duration = Duration::from_millis(250);

pub struct StoreApprover {
    pub log: Arc<AuditLog>,
    /// Asks on the operator's terminal, when there is one.
    pub terminal: Option<Arc<dyn Approver>>,
}

impl Approver for StoreApprover {
    fn approve<'a>(&'a self, run_id: &'a str, wave: &'a str) -> ApprovalFuture<'a> {
        Box::pin(async move {
            let store = self.poll(run_id, wave);
            match &self.terminal {
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

    /// Waits until the store holds an answer to the gate. A store that cannot be read is read
    /// again at the next poll: the gate keeps waiting (a stop request still ends the wait).
    async fn poll(&self, run: &str, wave: &str) -> Approval {
        loop {
            let (log, r, w) = (self.log.clone(), run.to_string(), wave.to_string());
            let found = tokio::task::spawn_blocking(move || log.wave_approved(&r, &w)).await;
            if let Ok(Ok(Some(approval))) = found {
                return approval;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
