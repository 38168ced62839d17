//! What resume needs from the store: which (host, step) pairs have an intent, which have a
//! result, and which are UNKNOWN (an intent and no result: the controller died while the step
//! ran, or before its result was committed).

use std::collections::{BTreeMap, BTreeSet};

use redb::ReadableTable;

use crate::error::AuditError;
use crate::lease::{LeaseHolder, decode_lease, lease_hosts, pid_alive};
use crate::record::{Entry, Payload, RunResumed, UnknownChoice, UnknownStepsResolved};
use crate::store::{Appended, AuditLog, LEASES, Tx};

/// A step of a host; rollback steps are tracked apart from forward steps.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StepKey {
    pub host: String,
    pub step: String,
    pub rollback: bool,
}

/// The step journal of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepJournal {
    /// Steps with an intent, with the seq of the latest intent.
    pub intents: BTreeMap<StepKey, u64>,
    /// Steps with a result, with whether it succeeded (the latest result counts).
    pub results: BTreeMap<StepKey, bool>,
    /// Unknown steps the operator chose to skip: treated as done.
    pub skipped: BTreeSet<StepKey>,
    /// Whether `run_finished` was recorded.
    pub finished: bool,
}

impl StepJournal {
    /// Steps with an intent and neither a result nor an operator's skip.
    pub fn unknown(&self) -> Vec<StepKey> {
        self.intents
            .iter()
            .filter(|(key, intent_seq)| {
                // A rerun after a choice writes a new intent; only a result after it settles it.
                !self.results.contains_key(*key) && !self.skipped.contains(*key) && **intent_seq > 0
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Whether the step needs no further run: it has a result, or was skipped.
    pub fn is_done(&self, key: &StepKey) -> bool {
        self.results.contains_key(key) || self.skipped.contains(key)
    }
}

impl AuditLog {
    /// The journal of intents and results of `run`, for resume.
    pub fn step_journal(&self, run: &str) -> Result<StepJournal, AuditError> {
        let mut journal = StepJournal::default();
        for record in self.run_records(run)? {
            let rollback = record.kind() == "rollback_step_result";
            match record.payload {
                Payload::StepIntent(i) => {
                    let key = StepKey {
                        host: i.host,
                        step: i.step,
                        rollback: i.rollback,
                    };
                    journal.results.remove(&key);
                    journal.skipped.remove(&key);
                    journal.intents.insert(key, record.seq);
                }
                Payload::StepResult(r) | Payload::RollbackStepResult(r) => {
                    let key = StepKey {
                        host: r.host,
                        step: r.step,
                        rollback,
                    };
                    journal.results.insert(key, r.ok);
                }
                Payload::UnknownStepsResolved(choice) if choice.choice == UnknownChoice::Skip => {
                    for (host, step) in choice.steps {
                        journal.skipped.insert(StepKey {
                            host,
                            step,
                            rollback: false,
                        });
                    }
                }
                Payload::RunFinished(_) => journal.finished = true,
                _ => {}
            }
        }
        Ok(journal)
    }

    /// Records the operator's choice for UNKNOWN steps (`--rerun-unknown` / `--skip-unknown`).
    pub fn resolve_unknown(
        &self,
        run: &str,
        choice: UnknownChoice,
        by: &str,
        steps: &[StepKey],
    ) -> Result<Appended, AuditError> {
        let steps = steps
            .iter()
            .map(|k| (k.host.clone(), k.step.clone()))
            .collect();
        self.append(
            run,
            Payload::UnknownStepsResolved(UnknownStepsResolved {
                choice,
                by: by.to_string(),
                steps,
            }),
        )
    }
}

impl AuditLog {
    /// Carries on an interrupted run, in ONE commit: checks that it has not finished and that
    /// no live process holds its leases, re-takes the leases of `hosts` for `holder`
    /// (`lease_taken`), records `run_resumed` and, when the operator chose, the choice for the
    /// UNKNOWN steps. Doing it in one transaction means two `sluice resume` of one run cannot
    /// both pass the checks: the second sees the first's live pid.
    pub fn resume_run(
        &self,
        run: &str,
        resumed: RunResumed,
        hosts: &[String],
        holder: &LeaseHolder,
        choice: Option<UnknownStepsResolved>,
    ) -> Result<Appended, AuditError> {
        self.write(|tx| {
            let summary = tx.run_summary(run)?.ok_or_else(|| AuditError::UnknownRun {
                run: run.to_string(),
            })?;
            if summary.finished_at.is_some() {
                return Err(AuditError::RunFinished {
                    run: run.to_string(),
                    status: summary.status.clone(),
                });
            }
            refuse_live_holder(tx, run, holder)?;
            lease_hosts(tx, run, hosts, holder)?;
            let appended = tx.append(Entry::new(run, Payload::RunResumed(resumed)))?;
            match choice {
                Some(choice) => tx.append(Entry::new(run, Payload::UnknownStepsResolved(choice))),
                None => Ok(appended),
            }
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
