//! Rollback: undo what ran, newest first.
//!
//! On every host of a wave that started, the `undo` of each step that ran (completed, failed,
//! timed out or unknown) runs in the reverse of the order the steps ran, which is a reverse
//! dependency order. Hosts roll back concurrently, as many at once as the wave allowed. An undo
//! that fails (or cannot be resolved or reach the host, or its intent cannot be journalled) is
//! tried once: the host is left ROLLBACK_FAILED and its remaining undos are not run, because they
//! were written for a host on which the later undos had succeeded.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use sluice_model::{
    Fact, HostRolledBack, RollbackFinished, RollbackStarted, StepIntent, StepStatus, count,
};

use crate::host::{HostRun, OUTPUT_LINES, Ran, step_spec};
use crate::report::{FailureDetail, HostOutcome, RollbackOutcome};
use crate::run::RunContext;
use crate::transports::host_target;

/// Rolls back every started host of `hosts`; returns them with `rollback` set.
pub(crate) async fn roll_back(
    ctx: &Arc<RunContext>,
    wave: &str,
    hosts: Vec<HostRun>,
    concurrency: usize,
) -> Vec<HostRun> {
    let started: Vec<String> = hosts
        .iter()
        .filter(|h| h.outcome != HostOutcome::NotStarted)
        .map(|h| h.host.clone())
        .collect();
    ctx.note(Fact::RollbackStarted(RollbackStarted {
        wave: wave.to_string(),
        hosts: started,
        stage: ctx.stage.clone(),
    }))
    .await;
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let order: Vec<String> = hosts.iter().map(|h| h.host.clone()).collect();
    let mut finished = Vec::new();
    for host in hosts {
        if host.outcome == HostOutcome::NotStarted {
            finished.push(host);
            continue;
        }
        let ctx = ctx.clone();
        let slots = slots.clone();
        let wave = wave.to_string();
        tasks.spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _slot = slots.acquire_owned().await;
            match &ctx.dispatch {
                crate::dispatch::HostDispatch::Local => undo_host(&ctx, &wave, host).await,
                crate::dispatch::HostDispatch::Remote(remote) => {
                    crate::dispatch::undo(&ctx, remote, &wave, host).await
                }
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        // A panicking undo task is a bug; the host's state then stays unknown to the report.
        if let Ok(host) = joined {
            finished.push(host);
        }
    }
    finished.sort_by_key(|h| order.iter().position(|n| *n == h.host));
    let rolled_back = finished
        .iter()
        .filter(|h| h.rollback == Some(RollbackOutcome::RolledBack))
        .count();
    let failed = finished
        .iter()
        .filter(|h| h.rollback == Some(RollbackOutcome::RollbackFailed))
        .count();
    ctx.note(Fact::RollbackFinished(RollbackFinished {
        wave: wave.to_string(),
        rolled_back: count(rolled_back),
        failed: count(failed),
    }))
    .await;
    finished
}

pub(crate) async fn undo_host(ctx: &RunContext, wave: &str, mut host: HostRun) -> HostRun {
    let mut stop = ctx.shutdown.subscribe();
    let not_reconnected = reconnect_for_undo(ctx, &mut host).await;
    let leased = match (&host.conn, ctx.artifact.host(&host.host)) {
        (Some(_), Some(plan)) if host.ran.iter().any(|s| s.undo.is_some()) => {
            crate::host_lease::take_for_undo(&mut host, ctx, plan).await
        }
        _ => Ok(()),
    };
    let outcome = match (leased, host.conn.clone()) {
        (Err(refused), _) => {
            host.failure = Some(refused);
            RollbackOutcome::RollbackFailed
        }
        (Ok(()), conn) => undo_steps(ctx, &mut host, conn, not_reconnected, &mut stop).await,
    };
    if let Some(plan) = ctx.artifact.host(&host.host) {
        crate::host_lease::release(&mut host, ctx, plan).await;
    }
    host.rollback = Some(outcome);
    ctx.note(Fact::HostRolledBack(HostRolledBack {
        wave: wave.to_string(),
        host: host.host.clone(),
        outcome,
    }))
    .await;
    host
}

/// Runs the undos of what ran on `host`, newest first, on `conn` (none: the host could not be
/// reached, `not_reconnected` says why when it was tried).
async fn undo_steps(
    ctx: &RunContext,
    host: &mut HostRun,
    conn: Option<Arc<dyn sluice_ssh::Connection>>,
    not_reconnected: Option<FailureDetail>,
    stop: &mut crate::shutdown::StopListener,
) -> RollbackOutcome {
    match conn {
        // Nothing ran without a connection, so there is nothing to undo, unless steps ran
        // before a resume, or before a reboot that did not bring the host back, on a host
        // that cannot be reached now. Steps without an undo need none.
        None if host.ran.iter().all(|s| s.undo.is_none()) => RollbackOutcome::RolledBack,
        None => {
            host.failure =
                Some(not_reconnected.unwrap_or_else(|| crate::resume::unreachable_for_undo(host)));
            RollbackOutcome::RollbackFailed
        }
        Some(_) => {
            let mut outcome = RollbackOutcome::RolledBack;
            for step in host.ran.clone().iter().rev() {
                let Some(undo) = &step.undo else { continue };
                match crate::resume::undo_prior(ctx, &host.host, &step.id) {
                    crate::resume::UndoPrior::Run => {}
                    crate::resume::UndoPrior::Done => continue,
                    crate::resume::UndoPrior::Failed(failure) => {
                        host.failure = Some(failure);
                        outcome = RollbackOutcome::RollbackFailed;
                        break;
                    }
                }
                let spec = step_spec(ctx, &step.id);
                // An undo that rebooted the host left it on a new connection (or none).
                let Some(conn) = host.conn.clone() else {
                    host.failure = Some(FailureDetail {
                        what: format!("undo:{}", step.id),
                        detail: format!("no connection to {} to undo it", host.host),
                        output: Vec::new(),
                    });
                    outcome = RollbackOutcome::RollbackFailed;
                    break;
                };
                let result = match &spec.reboot {
                    Some(reboot) => match ctx.resume.undo_reboot_in_flight(&host.host, &step.id) {
                        Some(before) => {
                            let before = before.to_string();
                            crate::reboot::resume_undo_in_flight(
                                host, ctx, step, reboot, &before, stop,
                            )
                            .await
                        }
                        None => {
                            crate::reboot::undo_reboot(host, ctx, step, undo, &spec, reboot, stop)
                                .await
                        }
                    },
                    None => undo_step(ctx, host, &conn, step, undo, &spec, stop).await,
                };
                if result.status != StepStatus::Ok {
                    host.failure = Some(FailureDetail {
                        what: format!("undo:{}", step.id),
                        detail: result.detail.clone(),
                        output: result.first_lines(OUTPUT_LINES),
                    });
                    outcome = RollbackOutcome::RollbackFailed;
                    break;
                }
            }
            outcome
        }
    }
}

/// Opens again the connection of a host released after its wave was decided
/// (`HostRun::release_connection`), when it has something to undo; the reason when it cannot.
async fn reconnect_for_undo(ctx: &RunContext, host: &mut HostRun) -> Option<FailureDetail> {
    if host.conn.is_some() || !host.released || host.ran.iter().all(|s| s.undo.is_none()) {
        return None;
    }
    // A `delegate:` host of a run_once step may be no target: its step says how to reach it.
    let plan = match ctx.artifact.host(&host.host) {
        Some(plan) => plan.clone(),
        None => ctx
            .artifact
            .run_once
            .iter()
            .find(|o| o.host == host.host)?
            .host_plan(&ctx.artifact)?,
    };
    let transport = ctx.transports.get(plan.connection.transport)?;
    match transport.connect(&host_target(&plan)).await {
        Ok(conn) => {
            host.conn = Some(conn);
            host.released = false;
            None
        }
        Err(e) => Some(FailureDetail {
            what: "undo".into(),
            detail: format!(
                "cannot reconnect to undo its steps: {}",
                ctx.secrets.redact(&e.to_string())
            ),
            output: Vec::new(),
        }),
    }
}

/// Runs one undo: its intent is durable before it is sent, like a forward step's; unrecorded,
/// it is not sent and the host is left for the operator. An undo that cannot be sent as its
/// step ran (no become password) is not journalled as started: it never was, and only shown.
async fn undo_step(
    ctx: &RunContext,
    host: &HostRun,
    conn: &Arc<dyn sluice_ssh::Connection>,
    step: &sluice_plan::HostStep,
    undo: &sluice_plan::RenderedCommand,
    spec: &sluice_plan::StepSpec,
    stop: &mut crate::shutdown::StopListener,
) -> sluice_model::StepResult {
    let not_sent = |why: String| {
        let result = host.result_of(
            ctx,
            &step.id,
            1,
            &Ran::Unresolved(why),
            Duration::ZERO,
            None,
        );
        ctx.events.emit(Fact::UndoResult(result.clone()));
        result
    };
    let become_user = match ctx.become_for(spec, &host.host) {
        Ok(b) => b,
        Err(why) => return not_sent(why.to_string()),
    };
    let command = crate::host::shown_command(ctx, undo, &host.values);
    let intent = StepIntent {
        host: host.host.clone(),
        step: step.id.clone(),
        command,
        attempt: 1,
        boot_id: None,
    };
    if let Err(why) = ctx.record(Fact::UndoIntent(intent)).await {
        return not_sent(format!("not started: the journal failed: {why}"));
    }
    let timeout = spec.timeout_ms.map(Duration::from_millis);
    let started = Instant::now();
    let ran = host.exec(conn, undo, timeout, &become_user, stop).await;
    let result = host.result_of(ctx, &step.id, 1, &ran, started.elapsed(), Some(conn));
    ctx.note(Fact::UndoResult(result.clone())).await;
    result
}
