//! What `sluice apply` writes to the audit store around a run: `run_started` with the leases
//! on every target host (one commit), the plan artifact, and at the end the released leases
//! and `run_finished`.

use sluice_audit::{AuditError, AuditLog, LeaseHolder, Payload, Redactor, RunFinished, RunStarted};
use sluice_exec::{RunReport, RunStatus};
use sluice_plan::PlanArtifact;

use super::super::audit::audit_error;
use crate::error::CliError;

/// Records `run_started`, leases every target host and stores the artifact. Returns the
/// store's run id, which is the run id the operator sees. A host leased by another run refuses
/// the start (exit 2) naming the holder; nothing is recorded then.
pub fn start(
    log: &AuditLog,
    artifact: &PlanArtifact,
    redactor: &Redactor,
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
    let run = log
        .start_run(started, &LeaseHolder::this_process())
        .map_err(|e| match e {
            AuditError::LeaseHeld { .. } => {
                CliError::invalid_input(format!("refused, nothing was started: {e}"))
            }
            other => audit_error(other),
        })?;
    let value = serde_json::to_value(artifact)
        .map_err(|e| CliError::failed(format!("cannot encode the plan artifact: {e}")));
    let stored = value.and_then(|v| {
        log.store_artifact(&run, &artifact.plan_hash, v)
            .map_err(audit_error)
    });
    if let Err(e) = stored {
        // The run never started: give its hosts back before refusing.
        let _ = log.release_leases(&run);
        return Err(e);
    }
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

/// The executor's journal over the audit store: each intent and result is one durable commit,
/// done on a blocking thread, before the executor goes on.
pub struct AuditJournal {
    pub log: std::sync::Arc<AuditLog>,
    pub run: String,
    pub redactor: std::sync::Arc<Redactor>,
}

impl AuditJournal {
    fn commit(&self, payload: Payload) -> sluice_exec::JournalFuture<'_> {
        let log = self.log.clone();
        let run = self.run.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || log.append(&run, payload))
                .await
                .map_err(|e| format!("the journal task failed: {e}"))?
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

impl AuditJournal {
    /// The store's form of a captured stream, redacted again (sha256 and bytes describe the
    /// stream as received).
    fn capture(&self, c: &sluice_exec::CapturedNote) -> sluice_audit::Capture {
        sluice_audit::Capture {
            head: self.redactor.redact_str(&c.head),
            tail: self.redactor.redact_str(&c.tail),
            bytes: c.bytes,
            sha256: c.sha256.clone(),
            truncated: c.truncated,
        }
    }
}

impl sluice_exec::Journal for AuditJournal {
    fn intent<'a>(
        &'a self,
        note: &'a sluice_exec::StepIntentNote,
    ) -> sluice_exec::JournalFuture<'a> {
        self.commit(Payload::StepIntent(sluice_audit::StepIntent {
            host: note.host.clone(),
            step: note.step.clone(),
            command: self.redactor.redact_str(&note.command),
            rollback: false,
            attempt: note.attempt,
        }))
    }

    fn result<'a>(
        &'a self,
        note: &'a sluice_exec::StepResultNote,
    ) -> sluice_exec::JournalFuture<'a> {
        let exit = match note.exit_code {
            Some(code) => sluice_audit::Exit::Code(code),
            None => sluice_audit::Exit::None {
                reason: self.redactor.redact_str(&note.detail),
            },
        };
        self.commit(Payload::StepResult(sluice_audit::StepResult {
            host: note.host.clone(),
            step: note.step.clone(),
            attempt: note.attempt,
            exit,
            ok: note.ok,
            duration_ms: note.duration_ms,
            stdout: self.capture(&note.stdout),
            stderr: self.capture(&note.stderr),
            host_key_fingerprint: None,
        }))
    }
}

/// Answers approval gates from the store: records `approval_requested`, then polls
/// [`AuditLog::wave_approved`] (so `sluice approve RUN --wave W` from another terminal releases
/// the gate), racing the terminal prompt when there is one.
pub struct StoreApprover {
    pub log: std::sync::Arc<AuditLog>,
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
                return sluice_exec::ApprovalDecision::Refused {
                    by: "sluice (the audit store could not record the approval request)".into(),
                };
            }
            let store = self.poll(run_id, wave);
            match &self.terminal {
                Some(terminal) => {
                    tokio::select! {
                        d = store => d,
                        d = terminal.approve(run_id, wave) => d,
                    }
                }
                None => store.await,
            }
        })
    }
}

impl StoreApprover {
    async fn poll(&self, run: &str, wave: &str) -> sluice_exec::ApprovalDecision {
        loop {
            let (log, r, w) = (self.log.clone(), run.to_string(), wave.to_string());
            let found = tokio::task::spawn_blocking(move || log.wave_approved(&r, &w)).await;
            if let Ok(Ok(Some(approval))) = found {
                return if approval.refused {
                    sluice_exec::ApprovalDecision::Refused { by: approval.by }
                } else {
                    sluice_exec::ApprovalDecision::Approved { by: approval.by }
                };
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
