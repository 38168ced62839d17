//! `sluice resume RUN`: carry on a run whose controller died (kill -9, power cut), on the same
//! run id, with the same confirmation, window and approval rules as `sluice apply`.
//!
//! Order of business: refuse what cannot be resumed (unknown run, finished run, a live process
//! still holding its leases, a stored plan that does not match the run's hash, UNKNOWN steps
//! nobody chose for), check the window, confirm, then in one commit re-take the leases and record
//! `run_resumed` (and the operator's choice), and run the executor with the run's prior outcomes.
//! What is run again and what is not is decided in `sluice_exec::prior`.

use std::sync::Arc;

use sluice_audit::{
    AuditError, AuditLog, LeaseHolder, Payload, Record, Redactor, RunResumed, UnknownChoice,
    UnknownStepsResolved,
};
use sluice_exec::prior::{Handling, Prior, UnknownStep};
use sluice_exec::{RunOptions, Secrets, verify_artifact};
use sluice_plan::PlanArtifact;

use super::apply;
use super::audit::{StateDirArg, audit_error};
use crate::console::Console;
use crate::error::CliError;
use crate::exit;
use crate::summary;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The interrupted run (see `sluice runs`: status `interrupted`).
    run: String,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(short, long)]
    yes: bool,
    /// Write every event as JSON Lines to stdout (docs/json-events.md).
    #[arg(long)]
    json: bool,
    /// Run even outside the plan's maintenance window (recorded in the run's events).
    #[arg(long)]
    ignore_window: bool,
    /// Run again the UNKNOWN steps (started, no result) that have no guard and are not
    /// idempotent (recorded).
    #[arg(long, conflicts_with = "skip_unknown")]
    rerun_unknown: bool,
    /// Treat those UNKNOWN steps as done: they took effect (recorded).
    #[arg(long)]
    skip_unknown: bool,
    #[command(flatten)]
    store: StateDirArg,
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    let log = Arc::new(args.store.open_existing().map_err(|mut e| {
        e.exit_code = exit::INVALID_INPUT;
        e
    })?);
    let run_id = args.run.clone();
    let records = resumable_records(&log, &run_id)?;
    let artifact = stored_artifact(&log, &run_id, &records)?;
    let prior = Prior::read(&artifact, records.iter().map(|r| &r.payload));
    let choice = match (args.rerun_unknown, args.skip_unknown) {
        (true, _) => Some(UnknownChoice::Rerun),
        (_, true) => Some(UnknownChoice::Skip),
        _ => None,
    };
    let unknown = prior.unknown().to_vec();
    let asked: Vec<UnknownStep> = prior.needs_choice().into_iter().cloned().collect();
    let done = prior.done_steps();
    let state = prior
        .resolve(choice)
        .map_err(|steps| CliError::invalid_input(unknown_message(&run_id, &steps)))?;

    apply::check_window(&artifact, args.ignore_window, console)?;
    console.text(summary::plan(&artifact, console));
    console.status(
        "Resume",
        format!(
            "run {run_id}: {done} step result(s) recorded are not run again; {} UNKNOWN step(s)",
            unknown.len()
        ),
    );
    for u in &unknown {
        console.text(format!("  {}\n", describe_unknown(u, choice)));
    }
    apply::confirm(args.yes, console)?;
    let secrets =
        Secrets::load(&artifact.secrets).map_err(|e| CliError::invalid_input(e.to_string()))?;
    let redactor = Arc::new(Redactor::new(secrets.values().values().cloned()));
    take_over(
        &log, &run_id, &artifact, &unknown, &asked, choice, &redactor,
    )?;
    console.status(
        "Run",
        format!("{run_id} resumed (recorded in {})", log.path().display()),
    );

    let options = RunOptions {
        ignore_window: args.ignore_window,
        resume: Some(Arc::new(state)),
        ..RunOptions::default()
    };
    apply::run_recorded(
        log, run_id, artifact, secrets, redactor, options, args.json, console,
    )
}

/// The run's records, once it is known to be a run that can be resumed: it exists, it has not
/// finished, and no live process holds its leases.
fn resumable_records(log: &AuditLog, run: &str) -> Result<Vec<Record>, CliError> {
    if sluice_audit::is_plan_run(run) {
        return Err(CliError::invalid_input(format!(
            "{run} holds plan approvals, not a run; nothing to resume"
        )));
    }
    let summary = log.run_summary(run).map_err(audit_error)?;
    if summary.finished_at.is_some() {
        return Err(CliError::invalid_input(format!(
            "run {run} already finished ({}, exit {}); there is nothing to resume",
            summary.status,
            summary.exit_code.unwrap_or_default()
        )));
    }
    let leases = log.active_leases().map_err(audit_error)?;
    if let Some(live) = leases.iter().find(|l| {
        l.run == run && (l.controller != log.controller() || sluice_audit::pid_alive(l.pid))
    }) {
        return Err(CliError::invalid_input(format!(
            "run {run} is still running: process {} on {} (operator {}, since {}) holds its leases; stop it first (a resume takes over only from a dead controller)",
            live.pid, live.controller, live.operator, live.since
        )));
    }
    log.run_records(run).map_err(audit_error)
}

/// The plan artifact stored for the run, checked against the run's recorded plan hash.
fn stored_artifact(
    log: &AuditLog,
    run: &str,
    records: &[Record],
) -> Result<PlanArtifact, CliError> {
    let plan_hash = records
        .iter()
        .find_map(|r| match &r.payload {
            Payload::RunStarted(s) => Some(s.plan_hash.clone()),
            _ => None,
        })
        .ok_or_else(|| {
            CliError::invalid_input(format!(
                "run {run} has no run_started record; cannot resume it"
            ))
        })?;
    let value = log.artifact(&plan_hash).map_err(audit_error)?.ok_or_else(|| {
        CliError::invalid_input(format!(
            "the plan artifact of run {run} (hash {plan_hash}) is not in the audit store; cannot resume it"
        ))
    })?;
    let artifact: PlanArtifact = serde_json::from_value(value).map_err(|e| {
        CliError::invalid_input(format!(
            "the plan artifact stored for run {run} cannot be read ({e}); refusing to resume"
        ))
    })?;
    verify_artifact(&artifact, Some(&plan_hash)).map_err(|e| {
        CliError::invalid_input(format!(
            "the plan artifact stored for run {run} does not match the run's plan hash {plan_hash}: {e}; refusing to resume"
        ))
    })?;
    Ok(artifact)
}

/// Re-takes the leases and records `run_resumed` and the operator's choice, in one commit.
fn take_over(
    log: &AuditLog,
    run: &str,
    artifact: &PlanArtifact,
    unknown: &[UnknownStep],
    asked: &[UnknownStep],
    choice: Option<UnknownChoice>,
    redactor: &Redactor,
) -> Result<(), CliError> {
    let pairs = |handling: fn(&Handling) -> bool| -> Vec<(String, String)> {
        unknown
            .iter()
            .filter(|u| handling(&u.handling))
            .map(|u| (u.host.clone(), u.step.clone()))
            .collect()
    };
    let holder = LeaseHolder::this_process();
    let command_line: Vec<String> = std::env::args().collect();
    let resumed = RunResumed {
        operator: holder.operator.clone(),
        controller: holder.controller.clone(),
        sluice_version: env!("CARGO_PKG_VERSION").to_string(),
        command_line: redactor.redact_args(&command_line),
        pid: holder.pid,
        plan_hash: artifact.plan_hash.clone(),
        guarded: pairs(|h| matches!(h, Handling::Guard)),
        idempotent: pairs(|h| matches!(h, Handling::Idempotent)),
    };
    let choice = choice
        .filter(|_| !asked.is_empty())
        .map(|choice| UnknownStepsResolved {
            choice,
            by: holder.operator.clone(),
            steps: asked
                .iter()
                .map(|u| (u.host.clone(), u.step.clone()))
                .collect(),
        });
    let hosts: Vec<String> = artifact.hosts.iter().map(|h| h.name.clone()).collect();
    log.resume_run(run, resumed, &hosts, &holder, choice)
        .map(|_| ())
        .map_err(|e| match e {
            AuditError::LeaseHeld { .. }
            | AuditError::LeaseHolderAlive { .. }
            | AuditError::RunFinished { .. } => {
                CliError::invalid_input(format!("refused, nothing was started: {e}"))
            }
            other => audit_error(other),
        })
}

/// Exit-2 message: each UNKNOWN step waiting for a choice, and both ways to give it.
fn unknown_message(run: &str, steps: &[UnknownStep]) -> String {
    let mut text = format!(
        "run {run} has {} step(s) whose outcome is UNKNOWN (the controller died while they ran) and that have neither a skip_if guard nor `idempotent: true`; nothing was started:\n",
        steps.len()
    );
    for step in steps {
        if let Handling::Operator { why } = &step.handling {
            text.push_str(&format!("  {} {}: {why}\n", step.host, step.step));
        }
    }
    text.push_str(&format!(
        "Check those hosts, then choose (recorded): `sluice resume {run} --rerun-unknown` runs them again; `sluice resume {run} --skip-unknown` treats them as done."
    ));
    text
}

fn describe_unknown(u: &UnknownStep, choice: Option<UnknownChoice>) -> String {
    let what = match (&u.handling, choice) {
        (Handling::Guard, _) => "UNKNOWN: its skip_if guard decides".to_string(),
        (Handling::Idempotent, _) => "UNKNOWN: idempotent, runs again".to_string(),
        (Handling::Operator { why }, Some(UnknownChoice::Rerun)) => {
            format!("runs again (--rerun-unknown): {why}")
        }
        (Handling::Operator { why }, _) => format!("marked done (--skip-unknown): {why}"),
    };
    format!("{} {}: {what}", u.host, u.step)
}
