//! A run recorded from its first command to its end: the executor with the audit store as its
//! journal and its gates, then the finish commit.

use std::sync::Arc;

use sluice_audit::{AuditError, AuditLog, CommitStats, GroupCommitter, Redactor};
use sluice_exec::{
    Approver, Emitter, Executor, Journal, JournalHandle, RunOptions, RunReport, Secrets, Shutdown,
    Transports,
};
use sluice_model::{Fact, RunFinished};
use sluice_plan::PlanArtifact;

use crate::error::LifecycleError;
use crate::gate::StoreApprover;
use crate::journal::AuditJournal;
use crate::warnings::WarningTap;

/// Everything a recorded run needs. The run's start (or take-over) is already committed.
pub struct RecordedRun {
    pub log: Arc<AuditLog>,
    pub run_id: String,
    /// The fact that opens the event stream, already recorded: `run_started` or `run_resumed`.
    pub opening: Fact,
    pub artifact: PlanArtifact,
    pub secrets: Secrets,
    pub redactor: Arc<Redactor>,
    pub options: RunOptions,
    pub transports: Transports,
    pub shutdown: Shutdown,
    /// Asks for approvals on the operator's terminal, raced with the store.
    pub terminal: Option<Arc<dyn Approver>>,
    /// Records per commit of the group committer.
    pub max_batch: usize,
    /// The gates' policy, when the plan's environment wants them signed.
    pub gate_policy: Option<crate::policy::GatePolicy>,
}

/// How a recorded run ended.
#[derive(Debug)]
pub struct Finished {
    pub report: RunReport,
    /// What the group committer did: records, commits, waits.
    pub commits: CommitStats,
    /// Why the finish commit (leases released, `run_finished`) failed, if it did: the run's
    /// record is then incomplete and its leases may still be held.
    pub unrecorded: Option<AuditError>,
}

impl RecordedRun {
    /// Runs the executor to the end and records how it ended. Every outcome of the run,
    /// failures and stops included, ends with the finish commit; only a run that could not
    /// start at all (the audit writer did not start) returns an error, with its leases released.
    pub async fn run(self, events: Emitter) -> Result<Finished, LifecycleError> {
        let RecordedRun {
            log,
            run_id,
            opening,
            artifact,
            secrets,
            redactor,
            mut options,
            transports,
            shutdown,
            terminal,
            max_batch,
            gate_policy,
        } = self;
        let writer = match GroupCommitter::with_max_batch(log.clone(), max_batch) {
            Ok(writer) => Arc::new(writer),
            Err(e) => {
                // Nothing ran: the leases go, the run stays unfinished (resumable).
                let _ = log.release_leases(&run_id);
                return Err(LifecycleError::Writer(e));
            }
        };
        events.emit(opening);
        let journal = Arc::new(AuditJournal {
            writer: writer.clone(),
            run: run_id.clone(),
            redactor,
        });
        options.journal = JournalHandle::new(journal.clone());
        let warnings = tokio::spawn(record_warnings(
            WarningTap::install(),
            journal,
            events.clone(),
        ));
        let approver: Arc<dyn Approver> = Arc::new(StoreApprover {
            log: log.clone(),
            terminal,
            policy: gate_policy,
        });
        let executor = Executor {
            artifact: Arc::new(artifact),
            transports,
            secrets,
            shutdown,
            approver: Some(approver),
            options,
        };
        let report = executor.run(events).await;
        // The tap is dropped when the recorder stops: warnings after the run are not its own.
        warnings.abort();
        let commits = writer.stats();
        let finished = RunFinished {
            status: report.status,
            duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
        };
        let finish = tokio::task::spawn_blocking(move || log.finish_run(&run_id, finished)).await;
        let unrecorded = match finish {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e),
            Err(join) => Some(AuditError::Write(std::io::Error::other(join.to_string()))),
        };
        Ok(Finished {
            report,
            commits,
            unrecorded,
        })
    }
}

/// Records and shows each warning reported during the run. A warning that cannot be recorded is
/// still shown (the log layer has shown it to the operator already).
async fn record_warnings(mut tap: WarningTap, journal: Arc<AuditJournal>, events: Emitter) {
    while let Some(warning) = tap.next().await {
        let fact = Fact::Warning(warning);
        let _ = journal.record(&fact).await;
        events.emit(fact);
    }
}
