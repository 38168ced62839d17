//! `sluice resume RUN`: carry on a run whose controller died (kill -9, power cut), on the same
//! run id, with the same confirmation, window and approval rules as `sluice apply`.
//!
//! Order of business: refuse what cannot be resumed (unknown run, finished run, a live process
//! still holding its leases, a stored plan that does not match the run's hash, hosts live
//! workers still hold when resuming without `--workers`, UNKNOWN steps nobody chose for (steps
//! in flight on live workers are theirs, not UNKNOWN), check the window, confirm, then in one commit re-take the leases and record
//! `run_resumed` (and the operator's choice), and run the executor with the run's prior outcomes.
//! What is run again and what is not is decided in `sluice_exec::prior`.

use std::sync::Arc;

use sluice_audit::Redactor;
use sluice_exec::RunOptions;
use sluice_exec::prior::{Handling, UnknownStep};
use sluice_lifecycle::resume::{TakeOver, decide, leave_to_workers, load, take_over};
use sluice_model::{Fact, UnknownChoice};

use super::apply::{self, Recorded};
use super::audit::StateDirArg;
use crate::console::Console;
use crate::error::{CliError, ErrorKind};
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
    /// Exit 0, not 6, when the run went through with failures its budgets tolerated.
    #[arg(long)]
    allow_tolerated: bool,
    /// Send every command on an SSH channel and login shell of its own instead of through each
    /// host's runner (as `transport_mode: exec` in the inventory does per host): for hosts whose
    /// login shell is not POSIX (docs/operations.md, "Connections").
    #[arg(long)]
    exec_per_step: bool,
    /// Carry the run on with its hosts on `sluice worker` processes (a run applied with
    /// `--workers` whose coordinator died; PostgreSQL store only).
    #[arg(long)]
    workers: bool,
    #[command(flatten)]
    policy: super::authorize::PolicyArgs,
    #[command(flatten)]
    store: StateDirArg,
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    let log = Arc::new(
        args.store
            .open_existing()
            .map_err(|e| e.with_kind(ErrorKind::InvalidInput))?,
    );
    let run_id = args.run.clone();
    let mut resumable = load(&log, &run_id)?;
    // Before the UNKNOWN steps are sorted out: those in flight on live workers are theirs.
    let held = leave_to_workers(&mut resumable, args.workers)?;
    let done = resumable.prior.done_steps();
    let choice = match (args.rerun_unknown, args.skip_unknown) {
        (true, _) => Some(UnknownChoice::Rerun),
        (_, true) => Some(UnknownChoice::Skip),
        _ => None,
    };
    let (artifact, decided) = decide(resumable, choice)?;
    if args.workers {
        super::worker::check_workers(&log, &artifact)?;
    }
    let overrides: Vec<&str> = [
        (args.ignore_window, "--ignore-window"),
        (args.rerun_unknown, "--rerun-unknown"),
        (args.skip_unknown, "--skip-unknown"),
    ]
    .into_iter()
    .filter_map(|(used, flag)| used.then_some(flag))
    .collect();
    // The run's approvals were checked when it started; the gates still need what they need.
    let authorized =
        super::authorize::authorize(&log, &artifact, &args.policy, &overrides, false, console)?;

    apply::check_window(&artifact, args.ignore_window, console)?;
    console.text(summary::plan(&artifact, console));
    console.status(
        "Resume",
        format!(
            "run {run_id}: {done} step result(s) recorded are not run again; {} UNKNOWN step(s)",
            decided.unknown.len()
        ),
    );
    for u in &decided.unknown {
        console.text(format!("  {}\n", describe_unknown(u, choice)));
    }
    if !held.is_empty() {
        console.status(
            "Workers",
            format!(
                "{} host task(s) still held by live workers are waited for, not handed out again",
                held.len()
            ),
        );
    }
    let typed = apply::confirm(args.yes, console)?;
    let secrets = super::worker::coordinator_secrets(&artifact, args.workers)?;
    let redactor = Arc::new(Redactor::new(secrets.values().values().cloned()));
    let command_line: Vec<String> = std::env::args().collect();
    let resumed = take_over(
        &log,
        &run_id,
        &artifact,
        &decided,
        TakeOver {
            redactor: &redactor,
            command_line: &command_line,
            typed,
            more: authorized.facts,
        },
    )?;
    console.status(
        "Run",
        format!("{run_id} resumed (recorded in {})", log.path().display()),
    );
    let run = Recorded {
        log,
        run_id,
        opening: Fact::RunResumed(resumed),
        artifact,
        secrets,
        redactor,
        options: RunOptions {
            ignore_window: args.ignore_window,
            resume: Some(Arc::new(decided.state)),
            // The run re-takes its own host-side leases; it breaks none of another run.
            host_lease: Some(sluice_exec::host_lease::HostLeaseIdentity {
                run: args.run.clone(),
                controller: sluice_audit::controller_name(),
                operator: sluice_audit::operator_name(),
                break_expired: None,
            }),
            ..RunOptions::default()
        },
        json: args.json,
        allow_tolerated: args.allow_tolerated,
        gate_policy: authorized.gate_policy,
        metrics_file: None,
        exec_per_step: args.exec_per_step,
        workers: args.workers,
        held,
    };
    apply::run_recorded(run, console)
}

fn describe_unknown(u: &UnknownStep, choice: Option<UnknownChoice>) -> String {
    let what = match (&u.handling, choice) {
        (Handling::Guard, _) => "UNKNOWN: its skip_if guard decides".to_string(),
        (Handling::Idempotent, _) => "UNKNOWN: idempotent, runs again".to_string(),
        (Handling::Reboot, _) => "UNKNOWN: a reboot: the boot id decides".to_string(),
        (Handling::Operator { why }, Some(UnknownChoice::Rerun)) => {
            format!("runs again (--rerun-unknown): {why}")
        }
        (Handling::Operator { why }, _) => format!("marked done (--skip-unknown): {why}"),
    };
    format!("{} {}: {what}", u.host, u.step)
}
