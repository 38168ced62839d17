//! `sluice apply --check` as a recorded run of kind `check`: started like a change (the plan
//! artifact stored, the hosts leased, so a check never reads hosts while a change runs on them
//! and reports a state in flux), every command it sends recorded before it is sent, each
//! verdict recorded (`step_checked`, `host_checked`), and ended with the leases released and
//! `run_finished`. A check run is never resumed: it changed nothing, so it is simply run again.

use std::sync::Arc;

use sluice_audit::{AuditLog, GroupCommitter, Redactor};
use sluice_exec::{CheckReport, Emitter, Executor, JournalHandle, Secrets, Shutdown, Transports};
use sluice_model::{Fact, RunFinished, RunKind};
use sluice_plan::PlanArtifact;

use crate::error::LifecycleError;
use crate::journal::{AuditJournal, Lost};
use crate::recorded::{holding_the_end, release_alone};
use crate::start::{Started, start_kind};

/// Records the start of a check run of `artifact`: `run_started` (kind `check`), the leases and
/// the artifact in one commit, or a refusal naming a lease holder with nothing recorded.
pub fn start_check_run(
    log: &AuditLog,
    artifact: &PlanArtifact,
    redactor: &Redactor,
    command_line: &[String],
) -> Result<Started, LifecycleError> {
    start_kind(
        RunKind::Check,
        log,
        artifact,
        redactor,
        command_line,
        false,
        Vec::new(),
    )
}

/// A check run whose start is committed.
pub struct CheckRun {
    pub log: Arc<AuditLog>,
    pub started: Started,
    pub artifact: PlanArtifact,
    pub secrets: Secrets,
    pub redactor: Arc<Redactor>,
    pub transports: Transports,
    pub shutdown: Shutdown,
}

/// How a check run ended.
#[derive(Debug)]
pub struct CheckFinished {
    pub report: CheckReport,
    /// Facts the store could not record.
    pub lost: Lost,
    /// Why `run_finished` could not be recorded, if it could not.
    pub unrecorded: Option<sluice_audit::AuditError>,
}

impl CheckRun {
    /// Runs the check to the end and records how it ended.
    pub async fn run(self, events: Emitter) -> Result<CheckFinished, LifecycleError> {
        let CheckRun {
            log,
            started,
            artifact,
            secrets,
            redactor,
            transports,
            shutdown,
        } = self;
        let run_id = started.run_id.clone();
        let writer = match GroupCommitter::start(log.clone()) {
            Ok(writer) => Arc::new(writer),
            Err(e) => {
                let _ = log.release_leases(&run_id);
                return Err(LifecycleError::Writer(e));
            }
        };
        events.emit(Fact::RunStarted(started.fact));
        let journal = Arc::new(AuditJournal::new(writer, &run_id, redactor));
        let executor = Executor {
            artifact: Arc::new(artifact),
            transports,
            secrets,
            shutdown,
            approver: None,
            options: sluice_exec::RunOptions {
                journal: JournalHandle::new(journal.clone()),
                ..sluice_exec::RunOptions::default()
            },
        };
        let report = holding_the_end(|e| executor.check(e), &run_id, &events).await;
        let finished = RunFinished {
            status: report.status,
            duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
        };
        let (finish_log, finish_run) = (log.clone(), run_id.clone());
        let recorded = finished.clone();
        let unrecorded =
            match tokio::task::spawn_blocking(move || finish_log.finish_run(&finish_run, recorded))
                .await
            {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e),
                Err(join) => Some(sluice_audit::AuditError::Write(std::io::Error::other(
                    join.to_string(),
                ))),
            };
        if unrecorded.is_some() {
            let (log, run_id) = (log.clone(), run_id.clone());
            let _ = tokio::task::spawn_blocking(move || release_alone(&log, &run_id)).await;
        }
        events.emit(Fact::RunFinished(finished));
        Ok(CheckFinished {
            report,
            lost: journal.lost(),
            unrecorded,
        })
    }
}
