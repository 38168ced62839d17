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
