//! Under `sluice resume`: a confirm the crash left without a result is settled before the
//! host's steps, as the interrupted run would have settled it.
//!
//! The directory on the host is found again by its name (the run, host and step give it).
//! sluice connects anew and tries to disarm, for up to `within` from now, then waits up to
//! `revert_timeout` for the revert to show, exactly as after a step:
//! - disarmed by this resume and the step's result was `ok`: `confirmed` (a new connection
//!   got in, and the timer can no longer fire); the host's steps go on (the step replays);
//! - disarmed, the step's result unknown: `disarmed`; the step is UNKNOWN as after any crash
//!   (its guard, `idempotent` or the operator's choice decides);
//! - the timer fired: `reverted` (the host ends `reverted`, its steps do not run again);
//! - the host never answered: `unconfirmed` (it ends `unreachable`).

use std::time::Duration;

use sluice_model::{ConfirmOutcome, ConfirmResult, Fact, HostOutcome, StepStatus};
use sluice_plan::HostPlan;
use tokio::time::Instant;

use super::{Armed, confirm_base, run_script, script, settle};
use crate::host::{HostRun, millis};
use crate::report::FailureDetail;
use crate::resume::PriorStep;
use crate::run::RunContext;
use crate::shutdown::StopListener;

/// Settles the confirm of `plan`'s host a crash left armed, if any (see the module).
pub(crate) async fn resume_in_flight(
    run: &mut HostRun,
    ctx: &RunContext,
    plan: &HostPlan,
    stop: &mut StopListener,
) {
    let Some(step_id) = ctx.resume.confirm_in_flight(&plan.name).map(str::to_string) else {
        return;
    };
    // A reboot the resume saw fail has ended the host already.
    if run.outcome != HostOutcome::Ok {
        return;
    }
    let Some(spec) = ctx.artifact.step(&step_id).cloned() else {
        return;
    };
    let (Some(step), Some(confirm)) = (
        plan.steps.iter().find(|s| s.id == step_id),
        spec.confirm.clone(),
    ) else {
        return;
    };
    let Ok(become_user) = ctx.become_for(&spec, &run.host) else {
        return;
    };
    let done = matches!(
        ctx.resume.step(&run.host, &step_id),
        Some(PriorStep::Done(_))
    );
    let now = Instant::now();
    let armed = Armed {
        unit: script::unit_name(ctx.events.run_id(), &run.host, &step_id),
        base: confirm_base(plan),
        armed_at: now,
        deadline: now + Duration::from_millis(confirm.within_ms),
        within: Duration::from_millis(confirm.within_ms),
        revert_timeout: Duration::from_millis(confirm.revert_timeout_ms),
    };
    let status = if done {
        StepStatus::Ok
    } else {
        StepStatus::Unknown
    };
    let settled = settle(run, ctx, &become_user, &armed, status, stop).await;
    let ended = |run: &mut HostRun, outcome: HostOutcome, detail: String| {
        crate::resume::note_done_steps(ctx, run, plan);
        run.outcome = outcome;
        run.released = true;
        run.failure = Some(FailureDetail {
            what: step_id.clone(),
            detail,
            output: Vec::new(),
        });
    };
    let Some(settled) = settled else {
        let why = "abandoned by a second Ctrl-C while settling the confirm left by the crash";
        ended(run, HostOutcome::Unknown, why.into());
        return;
    };
    let detail = ctx
        .secrets
        .redact(&format!("after the resume: {}", settled.detail));
    ctx.note(Fact::ConfirmResult(ConfirmResult {
        host: run.host.clone(),
        step: step_id.clone(),
        outcome: settled.outcome,
        detail: detail.clone(),
        duration_ms: millis(armed.armed_at.elapsed()),
        undo_exit_code: settled.undo_exit_code,
        undo_output: settled.undo_output,
    }))
    .await;
    if let Some(conn) = &settled.conn {
        let clean = script::clean_up(armed.base.as_deref(), &armed.unit);
        let _ = run_script(conn, clean, &become_user).await;
    }
    match settled.outcome {
        ConfirmOutcome::Confirmed => run.conn = settled.conn,
        ConfirmOutcome::Disarmed if !done => run.conn = settled.conn,
        ConfirmOutcome::Disarmed => ended(run, HostOutcome::Failed, detail),
        ConfirmOutcome::Reverted => {
            ended(run, HostOutcome::Reverted, detail);
            if settled.undo_exit_code == Some(0) {
                run.ran.retain(|s| s.id != step.id);
            }
        }
        ConfirmOutcome::Unconfirmed => ended(run, HostOutcome::Unreachable, detail),
    }
}
