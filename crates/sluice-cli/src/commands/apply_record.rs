//! What `sluice apply` writes to the audit store: around the run, `run_started` with the leases
//! on every target host, the plan artifact and the confirmation typed at the prompt (one commit),
//! and at the end the released leases and `run_finished`; during it, through [`AuditJournal`],
//! everything the executor journals (waves and their decisions, step intents and results, health
//! checks, undos), and through [`StoreApprover`], approval gates and their answers.

use std::sync::Arc;

use sluice_audit::{
    Approval, ApprovalScope, AuditError, AuditLog, Capture, Entry, Exit, GroupCommitter,
    HealthResult, LeaseHolder, Payload, Redactor, RunFinished, RunStarted, StepIntent, StepResult,
    WaveDecided, WaveStarted,
};
use sluice_exec::{
    ApprovalDecision, CapturedNote, HealthNote, Journal, JournalFuture, RunReport, RunStatus,
    StepIntentNote, StepResultNote, WaveDecidedNote, WaveStartedNote,
};
use sluice_plan::PlanArtifact;

use super::super::audit::audit_error;
use crate::error::CliError;

/// Records `run_started`, leases every target host, stores the artifact and, when the operator
/// typed the confirmation (`typed`), records it as an approval of the start. Returns the
/// store's run id, which is the run id the operator sees. A host leased by another run refuses
/// the start (exit 2) naming the holder; nothing is recorded then.
pub fn start(
    log: &AuditLog,
    artifact: &PlanArtifact,
    redactor: &Redactor,
    typed: bool,
) -> Result<String, CliError> {
    let command_line: Vec<String> = std::env::args().collect();
    let started = RunStarted {
        operator: sluice_audit::operator_name(),
        controller: sluice_audit::controller_name(),
        sluice_version: env!("CARGO_PKG_VERSION").to_string(),
        plan_name: artifact.name.clone(),
        ticket: artifact.ticket.clone(),
        plan_hash: artifact.plan_hash.clone(),
        command_line: redactor.redact_args(&command_line),
        hosts: artifact.hosts.iter().map(|h| h.name.clone()).collect(),
        waves: artifact.waves.iter().map(|w| w.name.clone()).collect(),
    };
    let artifact_json = serde_json::to_value(artifact)
        .map_err(|e| CliError::failed(format!("cannot encode the plan artifact: {e}")))?;
    // The prompt was answered before the run existed; its record goes in the run's first commit.
    let confirmation = typed.then(|| Approval {
        scope: ApprovalScope::RunStart {
            plan_hash: artifact.plan_hash.clone(),
        },
        by: sluice_audit::operator_name(),
        comment: None,
        refused: false,
        how: Some("terminal".into()),
    });
    // One commit: a controller killed at any point leaves no run, or a resumable one.
    let run = log
        .start_run_with_plan(
            started,
            &LeaseHolder::this_process(),
            artifact_json,
            confirmation,
        )
        .map_err(|e| match e {
            AuditError::LeaseHeld { .. } => {
                CliError::invalid_input(format!("refused, nothing was started: {e}"))
            }
            other => audit_error(other),
        })?;
    Ok(run)
}

/// `--require-approval`: the plan's exact hash must have an approval that is not a refusal.
pub fn require_approval(log: &AuditLog, plan_hash: &str) -> Result<(), CliError> {
    let approvals = log.plan_approvals(plan_hash).map_err(audit_error)?;
    if approvals.iter().any(|(_, a)| !a.refused) {
        return Ok(());
    }
    Err(CliError::invalid_input(format!(
        "--require-approval: plan {plan_hash} has no approval for this exact hash; nothing was started (`sluice approve-plan PLAN.json --by NAME`)"
    )))
}

/// Releases the run's leases and records `run_finished` with its status and exit code.
pub fn finish(log: &AuditLog, run: &str, report: &RunReport, code: u8) -> Result<(), AuditError> {
    log.release_leases(run)?;
    log.append(
        run,
        Payload::RunFinished(RunFinished {
            status: status_name(report.status).to_string(),
            exit_code: code,
        }),
    )?;
    Ok(())
}

/// The `run_finished` status of a run's outcome.
fn status_name(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Applied => "succeeded",
        RunStatus::WaveFailed => "failed",
        RunStatus::RollbackFailed => "rollback_failed",
        RunStatus::Interrupted
        | RunStatus::WindowClosed
        | RunStatus::OutsideWindow
        | RunStatus::ApprovalRefused => "aborted",
    }
}

/// The executor's journal over the audit store. Every record goes through one
/// [`GroupCommitter`]: the executor still waits for each record to be durable, but records of
/// hosts that reach the store together share a commit.
pub struct AuditJournal {
    pub writer: Arc<GroupCommitter>,
    pub run: String,
    pub redactor: Arc<Redactor>,
}

/// Records per commit from `SLUICE_AUDIT_BATCH` (1 commits every record alone, to measure what
/// group commit saves), else [`sluice_audit::group::MAX_BATCH`].
pub fn max_batch() -> Result<usize, CliError> {
    match std::env::var("SLUICE_AUDIT_BATCH") {
        Err(_) => Ok(sluice_audit::group::MAX_BATCH),
        Ok(v) => v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            CliError::invalid_input(format!(
                "SLUICE_AUDIT_BATCH={v}: expected a number of records per commit, 1 or more"
            ))
        }),
    }
}

impl AuditJournal {
    fn commit(&self, payload: Payload) -> JournalFuture<'_> {
        // Queued now, in the order the executor calls; the future only waits for the commit.
        let wait = self.writer.submit(Entry::new(&self.run, payload));
        Box::pin(async move { wait.await.map(|_| ()).map_err(|e| e.to_string()) })
    }

    /// The store's form of a captured stream, redacted again (sha256 and bytes describe the
    /// stream as received).
    fn capture(&self, c: &CapturedNote) -> Capture {
        Capture {
            head: self.redactor.redact_str(&c.head),
            tail: self.redactor.redact_str(&c.tail),
            bytes: c.bytes,
            sha256: c.sha256.clone(),
            truncated: c.truncated,
        }
    }

    fn intent_record(&self, note: &StepIntentNote, rollback: bool) -> StepIntent {
        StepIntent {
            host: note.host.clone(),
            step: note.step.clone(),
            command: self.redactor.redact_str(&note.command),
            rollback,
            attempt: note.attempt,
        }
    }

    fn result_record(&self, note: &StepResultNote) -> StepResult {
        let exit = match note.exit_code {
            Some(code) => Exit::Code(code),
            None => Exit::None {
                reason: self.redactor.redact_str(&note.detail),
            },
        };
        StepResult {
            host: note.host.clone(),
            step: note.step.clone(),
            attempt: note.attempt,
            exit,
            ok: note.ok,
            duration_ms: note.duration_ms,
            stdout: self.capture(&note.stdout),
            stderr: self.capture(&note.stderr),
            host_key_fingerprint: note.host_key_fingerprint.clone(),
        }
    }
}

/// Counts in records are u32; a wave of more than 4 billion hosts saturates.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Journal for AuditJournal {
    fn intent<'a>(&'a self, note: &'a StepIntentNote) -> JournalFuture<'a> {
        self.commit(Payload::StepIntent(self.intent_record(note, false)))
    }

    fn result<'a>(&'a self, note: &'a StepResultNote) -> JournalFuture<'a> {
        self.commit(Payload::StepResult(self.result_record(note)))
    }

    fn rollback_intent<'a>(&'a self, note: &'a StepIntentNote) -> JournalFuture<'a> {
        self.commit(Payload::StepIntent(self.intent_record(note, true)))
    }

    fn rollback_result<'a>(&'a self, note: &'a StepResultNote) -> JournalFuture<'a> {
        self.commit(Payload::RollbackStepResult(self.result_record(note)))
    }

    fn wave_started<'a>(&'a self, note: &'a WaveStartedNote) -> JournalFuture<'a> {
        self.commit(Payload::WaveStarted(WaveStarted {
            wave: count(note.index),
            name: note.wave.clone(),
            hosts: note.hosts.clone(),
            concurrency: count(note.concurrency),
            budget: note.budget.clone(),
            budget_hosts: count(note.max_failed),
        }))
    }

    fn wave_decided<'a>(&'a self, note: &'a WaveDecidedNote) -> JournalFuture<'a> {
        self.commit(Payload::WaveDecided(WaveDecided {
            wave: count(note.index.unwrap_or(0)),
            name: note.wave.clone(),
            run_once: note.index.is_none(),
            hosts: count(note.hosts),
            succeeded: count(note.ok),
            failed: count(note.failed),
            unreachable: count(note.unreachable),
            interrupted: count(note.interrupted),
            not_started: count(note.not_started),
            budget: note.budget.clone(),
            budget_hosts: count(note.max_failed),
            decision: note.decision.clone(),
            reason: self.redactor.redact_str(&note.reason),
        }))
    }

    fn health<'a>(&'a self, note: &'a HealthNote) -> JournalFuture<'a> {
        self.commit(Payload::HealthResult(HealthResult {
            host: note.host.clone(),
            check: note.check.clone(),
            probe: note.probe.clone(),
            round: note.round,
            ok: note.ok,
            detail: self.redactor.redact_str(&note.detail),
            duration_ms: note.duration_ms,
        }))
    }
}

/// Answers approval gates from the store: records `approval_requested`, then polls
/// [`AuditLog::wave_approved`] (so `sluice approve RUN --wave W` from another terminal releases
/// the gate), racing the terminal prompt when there is one.
pub struct StoreApprover {
    pub log: Arc<AuditLog>,
    pub terminal: Option<super::TerminalApprover>,
}

/// How often a waiting gate looks at the store.
const POLL: std::time::Duration = std::time::Duration::from_millis(250);

impl sluice_exec::Approver for StoreApprover {
    fn approve<'a>(
        &'a self,
        run_id: &'a str,
        wave: &'a str,
    ) -> sluice_exec::approval::ApprovalFuture<'a> {
        Box::pin(async move {
            let (log, run, name) = (self.log.clone(), run_id.to_string(), wave.to_string());
            let requested = tokio::task::spawn_blocking(move || {
                log.append(
                    &run,
                    Payload::ApprovalRequested(sluice_audit::ApprovalRequested { wave: name }),
                )
            })
            .await;
            if !matches!(requested, Ok(Ok(_))) {
                // A gate that cannot be recorded cannot be answered through the store.
                return ApprovalDecision::Refused {
                    by: "sluice (the audit store could not record the approval request)".into(),
                };
            }
            let store = self.poll(run_id, wave);
            match &self.terminal {
                Some(terminal) => {
                    tokio::select! {
                        d = store => d,
                        d = terminal.approve(run_id, wave) => self.record_typed(run_id, wave, d).await,
                    }
                }
                None => store.await,
            }
        })
    }
}

impl StoreApprover {
    /// Records an answer typed at the terminal as `sluice approve` would have, with `how:
    /// terminal`. An answer that cannot be recorded is a refusal: no wave starts on an approval
    /// the audit trail does not hold.
    async fn record_typed(
        &self,
        run: &str,
        wave: &str,
        decision: ApprovalDecision,
    ) -> ApprovalDecision {
        let (by, refused) = match &decision {
            ApprovalDecision::Approved { by } => (by.clone(), false),
            ApprovalDecision::Refused { by } => (by.clone(), true),
        };
        let approval = Approval {
            scope: ApprovalScope::Wave {
                wave: wave.to_string(),
            },
            by,
            comment: None,
            refused,
            how: Some("terminal".into()),
        };
        let (log, run) = (self.log.clone(), run.to_string());
        let recorded =
            tokio::task::spawn_blocking(move || log.append(&run, Payload::Approval(approval)))
                .await;
        match recorded {
            Ok(Ok(_)) => decision,
            _ => ApprovalDecision::Refused {
                by: "sluice (the audit store could not record the answer typed at the terminal)"
                    .into(),
            },
        }
    }

    async fn poll(&self, run: &str, wave: &str) -> ApprovalDecision {
        loop {
            let (log, r, w) = (self.log.clone(), run.to_string(), wave.to_string());
            let found = tokio::task::spawn_blocking(move || log.wave_approved(&r, &w)).await;
            if let Ok(Ok(Some(approval))) = found {
                return if approval.refused {
                    ApprovalDecision::Refused { by: approval.by }
                } else {
                    ApprovalDecision::Approved { by: approval.by }
                };
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
