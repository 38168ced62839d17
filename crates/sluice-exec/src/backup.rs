//! The backup gate: a host's `backup:` entries run, each `run` then `verify`, before the first
//! step that may change the host; a host whose backup or verification fails is not changed.
//!
//! The gate is passed once per host per run ([`BackupLedger`], shared by the stages of a plan
//! with stages): before the first step whose `skip_if` guard did not skip it, that is not a
//! `check: true` (read-only) step. Guards and check steps may run before it, since they do not
//! change the host; a host whose every step is skipped is never backed up. Each backup records
//! `backup_started` before its command is sent, and `backup_result` with the sha256 and size of
//! `verify`'s stdout (the evidence) when it ends. Under `sluice resume`, a backup with an `ok`
//! result is not run again; one left without a result is run again from its `run` (backups
//! must be safe to repeat: docs/plan-format.md).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use sluice_model::{BackupEvidence, BackupPhase, BackupResult, BackupStarted, Capture, Fact};
use sluice_plan::StepSpec;
use sluice_plan::backup::{BackupSpec, HostBackup};
use sluice_ssh::ExitStatus;
use tokio::time::Instant;

use crate::host::{HostRun, Ran, millis, shown_command};
use crate::report::{FailureDetail, StepStatus};
use crate::run::RunContext;
use crate::shutdown::StopListener;

/// The backups that completed in this run, by (host, backup id): a host is backed up once,
/// whatever stage changes it first.
#[derive(Debug, Default)]
pub(crate) struct BackupLedger {
    done: Mutex<HashSet<(String, String)>>,
}

impl BackupLedger {
    fn is_done(&self, host: &str, id: &str) -> bool {
        self.done
            .lock()
            .is_ok_and(|d| d.contains(&(host.to_string(), id.to_string())))
    }

    fn note_done(&self, host: &str, id: &str) {
        if let Ok(mut d) = self.done.lock() {
            d.insert((host.to_string(), id.to_string()));
        }
    }
}

/// Runs the host's backups that have not run yet, in plan order. `Err` carries the status the
/// host's step ends with: its first change step is then not sent.
pub(crate) async fn ensure_backed_up(
    run: &mut HostRun,
    ctx: &RunContext,
    stop: &mut StopListener,
) -> Result<(), StepStatus> {
    if run.backed_up || ctx.artifact.backup.is_empty() {
        return Ok(());
    }
    let backups: Vec<HostBackup> = ctx
        .artifact
        .host(&run.host)
        .map(|h| h.backup.clone())
        .unwrap_or_default();
    for backup in &backups {
        if ctx.resume.backup_done(&run.host, &backup.id)
            || ctx.backups.is_done(&run.host, &backup.id)
        {
            continue;
        }
        let Some(spec) = ctx.artifact.backup.iter().find(|b| b.id == backup.id) else {
            continue;
        };
        run_one(run, ctx, backup, spec, stop).await?;
        ctx.backups.note_done(&run.host, &backup.id);
    }
    run.backed_up = true;
    Ok(())
}

/// One backup: `backup_started`, `run`, `verify`, `backup_result`.
async fn run_one(
    run: &mut HostRun,
    ctx: &RunContext,
    backup: &HostBackup,
    spec: &BackupSpec,
    stop: &mut StopListener,
) -> Result<(), StepStatus> {
    let Some(conn) = run.conn.clone() else {
        return Err(StepStatus::Failed);
    };
    let as_step = step_of(spec);
    let become_user = match ctx.become_for(&as_step, &run.host) {
        Ok(b) => b,
        Err(why) => return Err(fail(run, &backup.id, why.to_string(), Vec::new())),
    };
    let started = BackupStarted {
        host: run.host.clone(),
        backup: backup.id.clone(),
        command: shown_command(ctx, &backup.run, &run.values),
    };
    // Durable before the command is sent, as a step's intent: unrecorded, it is not sent.
    if let Err(why) = ctx.record(Fact::BackupStarted(started)).await {
        let why = format!("not started: the journal failed: {why}");
        return Err(fail(run, &backup.id, why, Vec::new()));
    }
    let timeout = spec.timeout_ms.map(Duration::from_millis);
    let clock = Instant::now();
    let mut phase = BackupPhase::Run;
    let mut ran = run
        .exec(&conn, &backup.run, timeout, &become_user, stop)
        .await;
    if succeeded(&ran) {
        phase = BackupPhase::Verify;
        ran = run
            .exec(&conn, &backup.verify, timeout, &become_user, stop)
            .await;
    }
    let step = run.result_of(ctx, &backup.id, 1, &ran, clock.elapsed(), Some(&conn));
    let ok = step.status == StepStatus::Ok;
    let result = BackupResult {
        host: run.host.clone(),
        backup: backup.id.clone(),
        status: step.status,
        phase,
        exit_code: step.exit_code,
        detail: if ok {
            "verified".to_string()
        } else {
            format!("{phase}: {}", step.detail)
        },
        duration_ms: millis(clock.elapsed()),
        evidence: ok.then(|| evidence(&step.stdout)),
        stdout: step.stdout.clone(),
        stderr: step.stderr.clone(),
    };
    ctx.note(Fact::BackupResult(result.clone())).await;
    if ok {
        return Ok(());
    }
    let output = step.first_lines(crate::host::OUTPUT_LINES);
    let status = fail(run, &backup.id, result.detail, output);
    Err(match step.status {
        StepStatus::Unknown => StepStatus::Unknown,
        _ => status,
    })
}

/// The host fails at its backup: what the report and `host_finished` say.
fn fail(run: &mut HostRun, id: &str, detail: String, output: Vec<String>) -> StepStatus {
    run.failure = Some(FailureDetail {
        what: format!("backup {id}"),
        detail: format!("{detail}; no change step was sent to the host"),
        output,
    });
    StepStatus::Failed
}

fn succeeded(ran: &Ran) -> bool {
    matches!(ran, Ran::Done(out) if out.status == ExitStatus::Code(0))
}

fn evidence(stdout: &Capture) -> BackupEvidence {
    BackupEvidence {
        verify_sha256: stdout.sha256.clone(),
        verify_bytes: stdout.bytes,
    }
}

/// A backup's settings as a step's, for `become` and limits.
fn step_of(spec: &BackupSpec) -> StepSpec {
    let mut step = crate::host::bare_spec(&spec.id);
    step.become_root = spec.become_root;
    step.become_user = spec.become_user.clone();
    step.timeout_ms = spec.timeout_ms;
    step
}
