//! An ad-hoc command (`sluice exec`) as a recorded run: it takes the leases of its target hosts
//! (refused, naming the holder, while another run holds any of them), records the command's
//! intent on each host before it is sent and its result after (exit code, captured output
//! redacted, its sha256 and size), and ends with the leases released and `run_finished`, as a
//! run of kind `exec`. `runs`, `show`, `logs` and `audit export` then show it like any run.

use std::sync::Arc;
use std::time::Duration;

use sluice_audit::{AuditLog, GroupCommitter, LeaseHolder, Redactor};
use sluice_exec::Journal;
use sluice_model::{
    Capture, Fact, HostFinished, HostOutcome, RunFinished, RunKind, RunStarted, RunStatus,
    StepIntent, StepResult, StepStatus,
};
use sluice_ssh::{CapturedOutput, ExecOutcome, ExitStatus, TransportError};

use crate::error::LifecycleError;
use crate::journal::AuditJournal;
use crate::start::leased;

/// The step name an ad-hoc command is recorded under.
pub const STEP: &str = "exec";

/// A recorded ad-hoc run in progress.
pub struct AdHocRun {
    log: Arc<AuditLog>,
    pub run_id: String,
    journal: AuditJournal,
    redactor: Arc<Redactor>,
}

impl AdHocRun {
    /// Leases `hosts` and records `run_started` (kind `exec`) in one commit.
    pub fn start(
        log: Arc<AuditLog>,
        hosts: &[String],
        command: &str,
        redactor: Arc<Redactor>,
        command_line: &[String],
    ) -> Result<AdHocRun, LifecycleError> {
        let holder = LeaseHolder::this_process();
        let started = RunStarted {
            run_kind: RunKind::Exec,
            operator: holder.operator.clone(),
            controller: holder.controller.clone(),
            sluice_version: env!("CARGO_PKG_VERSION").to_string(),
            plan_name: format!("exec: {}", redactor.redact_str(command)),
            ticket: None,
            plan_hash: String::new(),
            command_line: redactor.redact_args(command_line),
            hosts: hosts.to_vec(),
            waves: Vec::new(),
            environment: None,
            change_hash: None,
        };
        let run_id = log.start_run(started, &holder).map_err(leased)?;
        let writer = GroupCommitter::start(log.clone()).map_err(|e| {
            let _ = log.release_leases(&run_id);
            LifecycleError::Writer(e)
        })?;
        let journal = AuditJournal::new(Arc::new(writer), &run_id, redactor.clone());
        Ok(AdHocRun {
            log,
            run_id,
            journal,
            redactor,
        })
    }

    /// Records that `command` is about to be sent to `host`; it must not be sent otherwise.
    pub async fn intent(&self, host: &str, command: &str) -> Result<(), LifecycleError> {
        let fact = Fact::StepIntent(StepIntent {
            host: host.to_string(),
            step: STEP.into(),
            command: self.redactor.redact_str(command),
            attempt: 1,
            boot_id: None,
        });
        self.journal
            .record(&fact)
            .await
            .map_err(|e| LifecycleError::Journal(e.to_string()))
    }

    /// Records how the command ended on `host`, and that the host is done.
    pub async fn result(
        &self,
        host: &str,
        outcome: &Result<ExecOutcome, TransportError>,
        took: Duration,
    ) -> Result<(), LifecycleError> {
        let result = self.step_result(host, outcome, took);
        let finished = Fact::HostFinished(HostFinished {
            wave: String::new(),
            host: host.to_string(),
            outcome: match (&result.status, outcome) {
                (StepStatus::Ok, _) => HostOutcome::Ok,
                (_, Err(e)) if e.kind().is_unreachable() => HostOutcome::Unreachable,
                (StepStatus::Unknown, _) => HostOutcome::Unknown,
                _ => HostOutcome::Failed,
            },
            duration_ms: millis(took),
            error: (result.status != StepStatus::Ok).then(|| format!("{STEP}: {}", result.detail)),
            stage: None,
        });
        for fact in [Fact::StepResult(result), finished] {
            self.journal
                .record(&fact)
                .await
                .map_err(|e| LifecycleError::Journal(e.to_string()))?;
        }
        Ok(())
    }

    fn step_result(
        &self,
        host: &str,
        outcome: &Result<ExecOutcome, TransportError>,
        took: Duration,
    ) -> StepResult {
        let redact = |s: &str| self.redactor.redact_str(s);
        let mut result = StepResult {
            host: host.to_string(),
            step: STEP.into(),
            attempt: 1,
            status: StepStatus::Failed,
            exit_code: None,
            detail: String::new(),
            duration_ms: millis(took),
            stdout: Capture::default(),
            stderr: Capture::default(),
            host_key_fingerprint: None,
        };
        match outcome {
            Ok(out) => {
                result.status = match out.status {
                    ExitStatus::Code(0) => StepStatus::Ok,
                    ExitStatus::TimedOut => StepStatus::TimedOut,
                    _ => StepStatus::Failed,
                };
                if let ExitStatus::Code(code) = out.status {
                    result.exit_code = Some(code);
                }
                result.detail = out.status.to_string();
                result.stdout = capture(&out.stdout, &redact);
                result.stderr = capture(&out.stderr, &redact);
            }
            Err(e) => {
                if matches!(e, TransportError::ConnectionLost { .. }) {
                    result.status = StepStatus::Unknown;
                }
                result.detail = redact(&e.to_string());
            }
        }
        result
    }

    /// Releases the leases and records `run_finished`: `succeeded` when every host exited 0.
    pub fn finish(&self, all_ok: bool, took: Duration) -> Result<(), LifecycleError> {
        // Every record of the hosts was acknowledged before this point.
        let finished = RunFinished {
            status: if all_ok {
                RunStatus::Succeeded
            } else {
                RunStatus::Failed
            },
            duration_ms: millis(took),
        };
        self.log.finish_run(&self.run_id, finished)?;
        Ok(())
    }
}

fn capture(out: &CapturedOutput, redact: &impl Fn(&str) -> String) -> Capture {
    Capture {
        head: redact(&String::from_utf8_lossy(&out.head)),
        tail: redact(&String::from_utf8_lossy(&out.tail)),
        bytes: out.total_bytes,
        sha256: out.sha256.clone(),
        truncated: out.truncated(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
