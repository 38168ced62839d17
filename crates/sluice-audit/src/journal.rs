//! Taking over an interrupted run: the checks, the leases and `run_resumed` in one commit. What
//! the run did before is read from its records by the executor (`sluice_exec::prior`).

use redb::ReadableTable;
use sluice_model::{Fact, RunResumed, UnknownStepsResolved};

use crate::error::AuditError;
use crate::lease::{LeaseHolder, decode_lease, lease_hosts, pid_alive};
use crate::record::Entry;
use crate::store::{Appended, LEASES, RedbStore, Tx};

impl RedbStore {
    /// Carries on an interrupted run, in ONE commit: checks that it has not finished and that
    /// no live process holds its leases, re-takes the leases of `hosts` for `holder`
    /// (`lease_taken`), records `run_resumed` and, when the operator chose, the choice for the
    /// UNKNOWN steps and the confirmation typed at the prompt. Doing it in one transaction means two `sluice resume` of one run cannot
    /// both pass the checks: the second sees the first's live pid.
    pub fn resume_run(
        &self,
        run: &str,
        resumed: RunResumed,
        hosts: &[String],
        holder: &LeaseHolder,
        choice: Option<UnknownStepsResolved>,
        more: Vec<Fact>,
    ) -> Result<Appended, AuditError> {
        self.write(|tx| {
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
        })
    }
}

/// Refuses while a lease of `run` is held by a process that is alive on this controller (other
/// than `holder`), or by another controller, whose processes cannot be checked from here.
fn refuse_live_holder(tx: &mut Tx<'_>, run: &str, holder: &LeaseHolder) -> Result<(), AuditError> {
    let log = tx.log;
    let leases = tx.table(LEASES)?;
    for item in leases.iter().map_err(|e| log.err(e))? {
        let (host, bytes) = item.map_err(|e| log.err(e))?;
        let lease = decode_lease(log, host.value(), bytes.value())?;
        let ours = lease.controller == holder.controller && lease.pid == holder.pid;
        let alive = lease.controller != log.controller() || pid_alive(lease.pid);
        if lease.run == run && alive && !ours {
            return Err(AuditError::LeaseHolderAlive {
                run: run.to_string(),
                pid: lease.pid,
                controller: lease.controller,
            });
        }
    }
    Ok(())
}
