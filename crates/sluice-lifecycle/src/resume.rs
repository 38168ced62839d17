//! Carrying on a run whose controller died (kill -9, power cut), on the same run id.
//!
//! [`load`] refuses what cannot be resumed (unknown run, finished run, a live process still
//! holding its leases, a stored plan that does not match the run's hash) and reads what the run
//! did ([`sluice_exec::prior::Prior`]); [`leave_to_workers`] leaves the steps in flight on live
//! workers to them (a run handed to workers); [`take_over`] re-takes the leases and records
//! `run_resumed` (and the operator's choice for UNKNOWN steps) in one commit.
//!
//! The hosts live workers hold are read before the run's records: a host that ends in between
//! is then both held and, in the records, done, and the resumed coordinator takes its recorded
//! end instead of handing it out again (`crate::coordinate`). Read the other way round, a host
//! that ended in between would look in flight in the records and held by nobody.

use sluice_audit::pg::HeldHost;
use sluice_audit::{AuditError, AuditLog, LeaseHolder, Record, Redactor};
use sluice_exec::prior::{Handling, Prior, UnknownStep};
use sluice_exec::{ResumeState, verify_artifact};
use sluice_model::{
    Approval, Fact, RunKind, RunResumed, RunState, StepRef, UnknownChoice, UnknownStepsResolved,
    WorkerTask,
};
use sluice_plan::PlanArtifact;

use crate::error::{LifecycleError, UnknownNeed};
use crate::start::leased;

/// An interrupted run that can be carried on, and what it did before.
pub struct Resumable {
    pub run_id: String,
    pub artifact: PlanArtifact,
    pub prior: Prior,
    /// The run's tasks live workers held, read before its records (PostgreSQL; none on a
    /// local store).
    pub held: Vec<HeldHost>,
}

/// Reads the run `run` for a resume, refusing what cannot be resumed.
pub fn load(log: &AuditLog, run: &str) -> Result<Resumable, LifecycleError> {
    let (held, records) = resumable_records(log, run)?;
    let artifact = stored_artifact(log, run, &records)?;
    let prior = Prior::read(&artifact, records.iter().map(|r| &r.fact));
    Ok(Resumable {
        run_id: run.to_string(),
        artifact,
        prior,
        held,
    })
}

/// The hosts live workers hold and then the run's records, once it is known to be a run that
/// can be resumed: it exists, it has not finished, and no live process holds its leases.
fn resumable_records(
    log: &AuditLog,
    run: &str,
) -> Result<(Vec<HeldHost>, Vec<Record>), LifecycleError> {
    if sluice_audit::is_plan_run(run) {
        return Err(LifecycleError::NotARun {
            run: run.to_string(),
        });
    }
    let summary = log.run_summary(run)?;
    if let RunState::Finished(_) = summary.status {
        return Err(LifecycleError::AlreadyFinished {
            run: run.to_string(),
            status: summary.status,
        });
    }
    // How a holder is judged alive is the backend's: a local pid, or a heartbeat in a shared
    // database (so a controller on another machine that died can be taken over from here).
    if let Some(live) = log.live_lease_of(run)? {
        return Err(LifecycleError::StillRunning {
            run: run.to_string(),
            pid: live.pid,
            controller: live.controller,
            operator: live.operator,
            since: live.since,
            expires_at: live.expires_at,
        });
    }
    // Before the records: see the module documentation.
    let held = match log.postgres("resume") {
        Ok(pg) => pg.held_hosts(run)?,
        Err(_) => Vec::new(),
    };
    let records = log.run_records(run)?;
    let kind = records.iter().find_map(|r| match &r.fact {
        Fact::RunStarted(s) => Some(s.run_kind),
        _ => None,
    });
    if let Some(kind @ (RunKind::Check | RunKind::Exec)) = kind {
        return Err(LifecycleError::NotResumable {
            run: run.to_string(),
            kind,
        });
    }
    Ok((held, records))
}

/// The plan artifact stored for the run, checked against the run's recorded plan hash.
fn stored_artifact(
    log: &AuditLog,
    run: &str,
    records: &[Record],
) -> Result<PlanArtifact, LifecycleError> {
    let plan_hash = records
        .iter()
        .find_map(|r| match &r.fact {
            Fact::RunStarted(s) => Some(s.plan_hash.clone()),
            _ => None,
        })
        .ok_or_else(|| LifecycleError::NoStart {
            run: run.to_string(),
        })?;
    let value = log
        .artifact(&plan_hash)?
        .ok_or_else(|| LifecycleError::NoArtifact {
            run: run.to_string(),
            plan_hash: plan_hash.clone(),
        })?;
    let artifact: PlanArtifact =
        serde_json::from_value(value).map_err(|source| LifecycleError::BadArtifact {
            run: run.to_string(),
            source,
        })?;
    verify_artifact(&artifact, Some(&plan_hash)).map_err(|source| {
        LifecycleError::ArtifactMismatch {
            run: run.to_string(),
            plan_hash,
            source,
        }
    })?;
    Ok(artifact)
}

/// Hosts of a run handed to workers whose coordinator died and that live workers still hold
/// (PostgreSQL store; none on a local store), as [`load`] read them. With `workers`, their
/// steps in flight are left to those workers (not UNKNOWN: the resumed coordinator waits for
/// their results); without, the resume is refused, as it would run them a second time beside
/// the workers. Returns the hosts held.
pub fn leave_to_workers(
    resumable: &mut Resumable,
    workers: bool,
) -> Result<Vec<HeldHost>, LifecycleError> {
    let held = resumable.held.clone();
    if held.is_empty() {
        return Ok(held);
    }
    if !workers {
        return Err(LifecycleError::HeldByWorkers {
            run: resumable.run_id.clone(),
            hosts: held
                .iter()
                .map(|h| format!("{} (worker {})", h.host, h.worker))
                .collect(),
        });
    }
    let in_flight: Vec<(String, bool)> = held
        .iter()
        .map(|h| (h.host.clone(), h.task == WorkerTask::Undo))
        .collect();
    resumable.prior.in_flight_on_workers(&in_flight);
    Ok(held)
}

/// What the operator decided, and what the resume does.
pub struct Decided {
    pub state: ResumeState,
    /// Every UNKNOWN step and how it is handled.
    pub unknown: Vec<UnknownStep>,
    /// Of those, the ones the operator's choice applies to.
    pub asked: Vec<UnknownStep>,
    pub choice: Option<UnknownChoice>,
}

/// Applies the operator's `choice` (if any is needed); without one while one is needed, refuses
/// naming the steps.
pub fn decide(
    resumable: Resumable,
    choice: Option<UnknownChoice>,
) -> Result<(PlanArtifact, Decided), LifecycleError> {
    let Resumable {
        run_id,
        artifact,
        prior,
        ..
    } = resumable;
    let unknown = prior.unknown().to_vec();
    let asked: Vec<UnknownStep> = prior.needs_choice().into_iter().cloned().collect();
    let state = prior.resolve(choice).map_err(|steps| {
        let steps = steps
            .into_iter()
            .map(|u| UnknownNeed {
                why: match &u.handling {
                    Handling::Operator { why } => why.clone(),
                    _ => String::new(),
                },
                step: StepRef::new(u.host, u.step),
            })
            .collect();
        LifecycleError::UnknownNeedsChoice { run: run_id, steps }
    })?;
    Ok((
        artifact,
        Decided {
            state,
            unknown,
            asked,
            choice,
        },
    ))
}

/// Who takes a run over, and what they bring to its take-over commit.
pub struct TakeOver<'a> {
    /// Masks secrets in the recorded command line.
    pub redactor: &'a Redactor,
    pub command_line: &'a [String],
    /// The operator typed the confirmation at the prompt.
    pub typed: bool,
    /// Facts for the same commit (the operator's signed identification, a break-glass reason).
    pub more: Vec<Fact>,
}

/// Re-takes the leases and records `run_resumed`, the operator's choice, (`typed`) the
/// confirmation typed at the prompt and `more` (the operator's signed identification, a
/// break-glass reason), in one commit. Returns the `run_resumed` fact recorded.
pub fn take_over(
    log: &AuditLog,
    run: &str,
    artifact: &PlanArtifact,
    decided: &Decided,
    by: TakeOver<'_>,
) -> Result<RunResumed, LifecycleError> {
    let TakeOver {
        redactor,
        command_line,
        typed,
        more,
    } = by;
    let refs = |handling: fn(&Handling) -> bool| -> Vec<StepRef> {
        decided
            .unknown
            .iter()
            .filter(|u| handling(&u.handling))
            .map(|u| StepRef::new(&u.host, &u.step))
            .collect()
    };
    let holder = LeaseHolder::this_process();
    let resumed = RunResumed {
        operator: holder.operator.clone(),
        controller: holder.controller.clone(),
        sluice_version: env!("CARGO_PKG_VERSION").to_string(),
        command_line: redactor.redact_args(command_line),
        pid: holder.pid,
        plan_hash: artifact.plan_hash.clone(),
        guarded: refs(|h| matches!(h, Handling::Guard)),
        idempotent: refs(|h| matches!(h, Handling::Idempotent)),
    };
    let choice = decided
        .choice
        .filter(|_| !decided.asked.is_empty())
        .map(|choice| UnknownStepsResolved {
            choice,
            by: holder.operator.clone(),
            steps: decided
                .asked
                .iter()
                .map(|u| StepRef::new(&u.host, &u.step))
                .collect(),
        });
    // As `apply` records the confirmation typed at its prompt, so does the resume.
    let confirmation = typed.then(|| Approval::run_start(&artifact.plan_hash, &holder.operator));
    let hosts: Vec<String> = artifact.leased_hosts();
    let facts: Vec<Fact> = confirmation
        .map(Fact::Approval)
        .into_iter()
        .chain(more)
        .collect();
    log.resume_run(run, resumed.clone(), &hosts, &holder, choice, facts)
        .map_err(|e| match e {
            AuditError::RunFinished { run, status } => {
                LifecycleError::AlreadyFinished { run, status }
            }
            other => leased(other),
        })?;
    Ok(resumed)
}
