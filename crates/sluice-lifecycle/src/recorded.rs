//! A run recorded from its first command to its end: the executor with the audit store as its
//! journal and its gates, then the finish commit.
//!
//! **A run whose record is incomplete never ends as `succeeded`.** The executor carries on when
//! the store cannot record a result (the next intent guards the next command), so a disk that
//! fills up mid-run could leave hosts that all succeeded and a record without their end. The
//! journal counts every fact it could not record; the executor's `run_finished` is held back
//! until the finish commit (leases released, `run_finished`) is done, and when any fact was lost
//! or the finish commit failed, a run that would have `succeeded` ends `record_incomplete` (exit
//! 5), in the event stream, in the report and, when the store takes it, in the record. Leases the
//! finish commit could not release are released alone if the store allows, else
//! [`Finished::leases_held`] says so (`sluice unlock RUN` breaks them).
//!
//! **A store that cannot be reached stops the run, unfinished.** When a commit fails because
//! the database went away, the journal stops the executor (`Shutdown::store_unreachable`): no
//! further host or step starts (none could have its intent recorded), the commands in flight
//! finish, nothing is undone, and the run ends `store_unreachable` (exit 7) without a finish
//! commit: its record stays open and its leases stay held (they expire, as a dead controller's
//! do), so `sluice resume RUN` carries it on once the database is back.

use std::sync::Arc;

use sluice_audit::{AuditError, AuditLog, CommitStats, GroupCommitter, Redactor};
use sluice_exec::dispatch::Workers;
use sluice_exec::{
    Approver, Emitter, Executor, Journal, JournalHandle, RunOptions, RunReport, Secrets, Shutdown,
    Transports,
};
use sluice_model::{Event, Fact, RunFinished, RunStatus};
use sluice_plan::PlanArtifact;
use tokio::sync::mpsc;

use crate::coordinate::StoreWorkers;
use crate::error::LifecycleError;
use crate::gate::StoreApprover;
use crate::journal::{AuditJournal, Lost};
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
    /// Hand the hosts to workers through the shared store (`--workers`; see
    /// [`crate::coordinate`]) instead of running them in this process.
    pub workers: bool,
    /// With `workers`, for a resumed run: the tasks live workers held when it was resumed
    /// (`crate::resume::Resumable::held`); their ends are theirs, not handed out again.
    pub held: Vec<sluice_audit::pg::HeldHost>,
}

/// How a recorded run ended.
#[derive(Debug)]
pub struct Finished {
    /// The executor's report; its status is `record_incomplete` for a run that would have
    /// succeeded but whose record is not complete.
    pub report: RunReport,
    /// What the group committer did: records, commits, waits.
    pub commits: CommitStats,
    /// The facts of the run the store could not record before its end.
    pub lost: Lost,
    /// Why the finish commit (leases released, `run_finished`) failed, if it did: the run's
    /// record then has no end.
    pub unrecorded: Option<AuditError>,
    /// The run's leases are still held: the finish commit failed, and so did releasing them
    /// on their own; or the store could not be reached and the run was left to be resumed.
    pub leases_held: bool,
}

impl Finished {
    /// Every fact of the run, its end included, is in the store.
    pub fn record_complete(&self) -> bool {
        self.lost.facts == 0 && self.unrecorded.is_none() && !self.store_lost()
    }

    /// The run stopped because its store could not be reached; it is unfinished in the store.
    pub fn store_lost(&self) -> bool {
        self.report.status == RunStatus::StoreUnreachable
    }
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
            workers,
            held,
        } = self;
        if workers {
            let started = StoreWorkers::start(
                log.clone(),
                &run_id,
                events.clone(),
                shutdown.clone(),
                &held,
            );
            match started {
                Ok(dispatch) => options.workers = Some(Workers(Arc::new(dispatch))),
                Err(e) => {
                    // Nothing ran: the leases go, the run stays unfinished (resumable).
                    let _ = log.release_leases(&run_id);
                    return Err(e);
                }
            }
        }
        let writer = match GroupCommitter::with_max_batch(log.clone(), max_batch) {
            Ok(writer) => Arc::new(writer),
            Err(e) => {
                // Nothing ran: the leases go, the run stays unfinished (resumable).
                let _ = log.release_leases(&run_id);
                return Err(LifecycleError::Writer(e));
            }
        };
        events.emit(opening);
        let journal = Arc::new(
            AuditJournal::new(writer.clone(), &run_id, redactor).stopping(shutdown.clone()),
        );
        options.journal = JournalHandle::new(journal.clone());
        let warnings = tokio::spawn(record_warnings(
            WarningTap::install(),
            journal.clone(),
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
        let mut report = run_holding_the_end(executor, &run_id, &events).await;
        // The tap is dropped when the recorder stops: warnings after the run are not its own.
        warnings.abort();
        let commits = writer.stats();
        let lost = journal.lost();
        let duration_ms = u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX);
        if matches!(
            report.status,
            RunStatus::StoreUnreachable | RunStatus::OperatorNeeded
        ) {
            // No finish commit: the run stays open for `sluice resume`. A store that cannot be
            // reached keeps the leases (they expire, as a dead controller's do); a run stopped
            // for the operator releases them, so the resume may start at once, anywhere.
            let leases_held = if report.status == RunStatus::OperatorNeeded {
                let (release_log, release_run) = (log.clone(), run_id.clone());
                !tokio::task::spawn_blocking(move || release_alone(&release_log, &release_run))
                    .await
                    .unwrap_or(false)
            } else {
                true
            };
            events.emit(Fact::RunFinished(RunFinished {
                status: report.status,
                duration_ms,
            }));
            return Ok(Finished {
                report,
                commits,
                lost,
                unrecorded: None,
                leases_held,
            });
        }
        let mut status = report.status;
        if lost.facts > 0 && went_through(status) {
            status = RunStatus::RecordIncomplete;
        }
        let finished = RunFinished {
            status,
            duration_ms,
        };
        let (finish_log, finish_run_id) = (log.clone(), run_id.clone());
        let finish =
            tokio::task::spawn_blocking(move || finish_log.finish_run(&finish_run_id, finished))
                .await;
        let unrecorded = match finish {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e),
            Err(join) => Some(AuditError::Write(std::io::Error::other(join.to_string()))),
        };
        let mut leases_held = false;
        if unrecorded.is_some() {
            if went_through(status) {
                status = RunStatus::RecordIncomplete;
            }
            let (log, run_id) = (log.clone(), run_id.clone());
            leases_held = !tokio::task::spawn_blocking(move || release_alone(&log, &run_id))
                .await
                .unwrap_or(false);
        }
        events.emit(Fact::RunFinished(RunFinished {
            status,
            duration_ms,
        }));
        report.status = status;
        Ok(Finished {
            report,
            commits,
            lost,
            unrecorded,
            leases_held,
        })
    }
}

/// Runs the executor, passing its events on to `events` except its `run_finished`, which the
/// caller emits once the end of the run is recorded (or known not to be).
async fn run_holding_the_end(executor: Executor, run_id: &str, events: &Emitter) -> RunReport {
    holding_the_end(|e| executor.run(e), run_id, events).await
}

/// Runs `run` (the executor, in any mode) with an emitter of its own, passing its events on to
/// `events` except its `run_finished`.
pub(crate) async fn holding_the_end<F, T>(
    run: impl FnOnce(Emitter) -> F,
    run_id: &str,
    events: &Emitter,
) -> T
where
    F: std::future::Future<Output = T>,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let pass_on = |event: Event| {
        if !matches!(event.fact, Fact::RunFinished(_)) {
            events.emit(event.fact);
        }
    };
    let run = run(Emitter::new(run_id, tx));
    tokio::pin!(run);
    let report = loop {
        tokio::select! {
            report = &mut run => break report,
            Some(event) = rx.recv() => pass_on(event),
        }
    };
    while let Ok(event) = rx.try_recv() {
        pass_on(event);
    }
    report
}

/// Releases the leases of a run whose finish commit failed: through `log`, else through a new
/// handle (redb refuses every write of a handle after a failed one). Returns whether they are
/// released.
pub(crate) fn release_alone(log: &AuditLog, run_id: &str) -> bool {
    if log.release_leases(run_id).is_ok() {
        return true;
    }
    log.reopen()
        .is_ok_and(|fresh| fresh.release_leases(run_id).is_ok())
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

/// A run that went through (`succeeded`, or `tolerated`: every wave within its budget) must not
/// report so when its record is incomplete: it ends `record_incomplete` instead. A run that
/// failed, rolled back or was aborted keeps its status; its record's gap is reported beside it.
fn went_through(status: RunStatus) -> bool {
    matches!(status, RunStatus::Succeeded | RunStatus::Tolerated)
}
