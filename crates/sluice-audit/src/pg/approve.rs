//! Recording approvals in the PostgreSQL store, with the same checks as the redb store
//! (`crate::approvals::resolve_gate`), read in the transaction that records the answer. Any
//! controller on the same database may answer a gate; the waiting run polls for the answer.

use sluice_model::{Approval, ApprovalScope, Fact};

use super::{PgStore, PgTx};
use crate::approvals::{Gate, artifact_gates_wave, progress_of, resolve_gate};
use crate::error::AuditError;
use crate::record::Entry;
use crate::store::Appended;

fn gate_in(tx: &mut PgTx<'_>, run: &str, wave: &str) -> Result<Gate, AuditError> {
    let summary = tx.run_summary(run)?.cloned();
    let tx: &PgTx<'_> = tx;
    resolve_gate(
        summary,
        run,
        wave,
        |plan_hash, name| {
            // A run without its stored plan cannot have its gate checked, so it is not refused
            // (as in the redb store).
            Ok(tx
                .artifact(plan_hash)?
                .is_none_or(|artifact| artifact_gates_wave(&artifact, name)))
        },
        |name| {
            let records = tx.run_records(run)?;
            Ok(progress_of(records.iter().map(|r| &r.fact), name))
        },
    )
}

impl PgStore {
    /// Records an approval of a plan artifact, storing the artifact in the same commit.
    pub fn approve_plan(
        &self,
        artifact: Option<serde_json::Value>,
        approval: Approval,
    ) -> Result<Appended, AuditError> {
        let ApprovalScope::Plan { plan_hash } = &approval.scope else {
            return Err(AuditError::NotAPlanApproval);
        };
        let plan_hash = plan_hash.clone();
        let run = crate::record::plan_run_id(&plan_hash);
        self.write(|tx| {
            if let Some(artifact) = artifact {
                tx.store_artifact(&run, &plan_hash, artifact)?;
            }
            tx.append(Entry::new(&run, Fact::Approval(approval)))
        })
    }

    /// The gate before `wave` of `run`, if it can still be answered.
    pub fn gate(&self, run: &str, wave: &str) -> Result<Gate, AuditError> {
        self.write(|tx| gate_in(tx, run, wave))
    }

    /// Answers the gate of a run, after the checks of [`PgStore::gate`], in one transaction.
    pub fn approve_wave(&self, run: &str, approval: Approval) -> Result<Appended, AuditError> {
        let ApprovalScope::Wave { wave } = &approval.scope else {
            return Err(AuditError::NotAGateApproval);
        };
        let wave = wave.clone();
        self.write(|tx| {
            gate_in(tx, run, &wave)?;
            tx.append(Entry::new(run, Fact::Approval(approval)))
        })
    }
}
