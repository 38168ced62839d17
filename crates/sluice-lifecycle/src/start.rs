//! Starting a recorded run: everything the audit trail must hold before the first command.

use sluice_audit::{AuditError, AuditLog, LeaseHolder, Redactor};
use sluice_model::{Approval, Fact, RunKind, RunStarted};
use sluice_plan::PlanArtifact;

use crate::error::LifecycleError;

/// A run that has started: its id (what the operator sees) and the `run_started` fact recorded.
#[derive(Clone, Debug)]
pub struct Started {
    pub run_id: String,
    pub fact: RunStarted,
}

/// Records `run_started`, leases every target host, stores the artifact and, when the operator
/// typed the confirmation (`typed`), records it as an approval of the start — in ONE commit, so
/// a controller killed at any point leaves no run, or a resumable one. A host leased by another
/// run refuses the start naming the holder; nothing is recorded then.
pub fn start_run(
    log: &AuditLog,
    artifact: &PlanArtifact,
    redactor: &Redactor,
    command_line: &[String],
    typed: bool,
) -> Result<Started, LifecycleError> {
    start_checked_run(log, artifact, redactor, command_line, typed, Vec::new())
}

/// As [`start_run`], with `more` facts in the same first commit: the operator's signed
/// identification and the policy's verdict on the plan's approvals.
pub fn start_checked_run(
    log: &AuditLog,
    artifact: &PlanArtifact,
    redactor: &Redactor,
    command_line: &[String],
    typed: bool,
    more: Vec<Fact>,
) -> Result<Started, LifecycleError> {
    start_kind(
        RunKind::Apply,
        log,
        artifact,
        redactor,
        command_line,
        typed,
        more,
    )
}

/// As [`start_checked_run`], for a run of `kind` (`apply`, or `check` for `apply --check`).
pub(crate) fn start_kind(
    kind: RunKind,
    log: &AuditLog,
    artifact: &PlanArtifact,
    redactor: &Redactor,
    command_line: &[String],
    typed: bool,
    more: Vec<Fact>,
) -> Result<Started, LifecycleError> {
    let holder = LeaseHolder::this_process();
    let fact = RunStarted {
        run_kind: kind,
        operator: holder.operator.clone(),
        controller: holder.controller.clone(),
        sluice_version: env!("CARGO_PKG_VERSION").to_string(),
        plan_name: artifact.name.clone(),
        ticket: artifact.ticket.clone(),
        plan_hash: artifact.plan_hash.clone(),
        command_line: redactor.redact_args(command_line),
        hosts: artifact.leased_hosts(),
        waves: artifact.waves.iter().map(|w| w.name.clone()).collect(),
        environment: artifact.environment.clone(),
        change_hash: artifact.change_hash.clone(),
    };
    let artifact_json = serde_json::to_value(artifact).map_err(LifecycleError::Encode)?;
    // The prompt was answered before the run existed; its record goes in the run's first commit.
    let confirmation = typed.then(|| Approval::run_start(&artifact.plan_hash, &holder.operator));
    let facts: Vec<Fact> = confirmation
        .map(Fact::Approval)
        .into_iter()
        .chain(more)
        .collect();
    let run_id = log
        .start_run_with_plan(fact.clone(), &holder, artifact_json, facts)
        .map_err(leased)?;
    Ok(Started { run_id, fact })
}

/// A lease held by someone else is a refusal; anything else is the store's failure.
pub(crate) fn leased(err: AuditError) -> LifecycleError {
    match err {
        AuditError::LeaseHeld { .. } | AuditError::LeaseHolderAlive { .. } => {
            LifecycleError::Leased(err)
        }
        other => LifecycleError::Audit(other),
    }
}

/// `--require-approval`: the plan's exact hash must have an approval that is not a refusal.
pub fn require_approval(log: &AuditLog, plan_hash: &str) -> Result<(), LifecycleError> {
    let approvals = log.plan_approvals(plan_hash)?;
    if approvals.iter().any(|(_, a)| !a.refused) {
        return Ok(());
    }
    Err(LifecycleError::NotApproved {
        plan_hash: plan_hash.to_string(),
    })
}
