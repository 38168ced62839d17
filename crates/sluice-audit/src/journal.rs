//! Taking over an interrupted run: the checks, the leases and `run_resumed` in one commit,
//! written once over [`StoreTx`] for both backends. What the run did before is read from its
//! records by the executor (`sluice_exec::prior`).

use sluice_model::{Fact, RunResumed, UnknownStepsResolved};

use crate::error::AuditError;
use crate::lease::{LeaseHolder, lease_hosts};
use crate::record::Entry;
use crate::store::Appended;
use crate::store_tx::{StoreTx, WritableStore};

/// Carries on an interrupted run, in ONE commit: checks that it has not finished and that no
/// live holder (other than `holder`) holds its leases, re-takes the leases of `hosts` for
/// `holder` (`lease_taken`), records `run_resumed` and, when the operator chose, the choice for
/// the UNKNOWN steps and the confirmation typed at the prompt. Doing it in one transaction means
/// two `sluice resume` of one run cannot both pass the checks: the second sees the first's live
/// holder.
pub(crate) fn resume_run(
    store: &impl WritableStore,
    run: &str,
    resumed: RunResumed,
    hosts: &[String],
    holder: &LeaseHolder,
    choice: Option<UnknownStepsResolved>,
    more: Vec<Fact>,
) -> Result<Appended, AuditError> {
    let appended = store.write(|tx| {
        let summary = tx.run_summary(run)?.ok_or_else(|| AuditError::UnknownRun {
            run: run.to_string(),
        })?;
        if summary.finished_at.is_some() {
            return Err(AuditError::RunFinished {
                run: run.to_string(),
                status: summary.status,
            });
        }
        refuse_live_holder(tx, run, holder)?;
        lease_hosts(tx, run, hosts, holder)?;
        let mut appended = tx.append(Entry::new(run, Fact::RunResumed(resumed)))?;
        if let Some(choice) = choice {
            appended = tx.append(Entry::new(run, Fact::UnknownStepsResolved(choice)))?;
        }
        for fact in more {
            appended = tx.append(Entry::new(run, fact))?;
        }
        Ok(appended)
    })?;
    store.leases_taken(holder);
    Ok(appended)
}

/// Refuses while a lease of `run` is held by a live holder other than `holder`, as the backend
/// judges it alive.
fn refuse_live_holder(
    tx: &impl StoreTx,
    run: &str,
    holder: &LeaseHolder,
) -> Result<(), AuditError> {
    for held in tx.leases_of(run)? {
        let ours = held.lease.controller == holder.controller && held.lease.pid == holder.pid;
        if held.alive && !ours {
            return Err(AuditError::LeaseHolderAlive {
                run: run.to_string(),
                pid: held.lease.pid,
                controller: held.lease.controller,
            });
        }
    }
    Ok(())
}
