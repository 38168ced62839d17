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

use crate::event::EventKind;
use crate::host::{HostRun, Ran, describe, step_spec};
use crate::journal::{Note, StepIntentNote};
use crate::report::{FailureDetail, HostOutcome, RollbackOutcome};
use crate::run::RunContext;

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
    ctx.events.emit(EventKind::RollbackStarted {
        wave: wave.to_string(),
        hosts: started,
    });
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
            undo_host(&ctx, &wave, host).await
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
    ctx.events.emit(EventKind::RollbackFinished {
        wave: wave.to_string(),
        rolled_back,
        failed,
    });
    finished
}

async fn undo_host(ctx: &RunContext, wave: &str, mut host: HostRun) -> HostRun {
    let mut stop = ctx.shutdown.subscribe();
    let outcome = match host.conn.clone() {
        // Nothing ran without a connection, so there is nothing to undo, unless steps ran
        // before a resume on a host that cannot be reached now.
        None if host.ran.is_empty() => RollbackOutcome::RolledBack,
        None => {
            host.failure = Some(crate::resume::unreachable_for_undo(&host));
            RollbackOutcome::RollbackFailed
        }
        Some(conn) => {
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
                let shown = undo
                    .resolve(&host.values)
                    .map(|r| r.redacted)
                    .unwrap_or_else(|_| undo.to_string());
                let intent = StepIntentNote {
                    host: host.host.clone(),
                    step: step.id.clone(),
                    command: shown.clone(),
                    attempt: 1,
                };
                // As for a forward step, the undo's intent is durable before it is sent;
                // unrecorded, it is not sent and the host is left for the operator.
                // An undo that cannot be sent as its step ran (no become password) is not
                // journalled as started: it never was.
                let become_user = ctx.become_for(&spec);
                let ran = match become_user {
                    Err(why) => Ran::Unresolved(why),
                    Ok(become_user) => match ctx.journal.rollback_intent(intent).await {
                        Err(why) => {
                            Ran::Unresolved(format!("not started: the journal failed: {why}"))
                        }
                        Ok(()) => {
                            ctx.events.emit(EventKind::UndoStarted {
                                host: host.host.clone(),
                                step: step.id.clone(),
                                command: shown,
                            });
                            let timeout = spec.timeout_ms.map(Duration::from_millis);
                            let started = Instant::now();
                            let ran = host
                                .exec(&conn, undo, timeout, &become_user, &mut stop)
                                .await;
                            let note =
                                host.result_note(ctx, &step.id, 1, &ran, started.elapsed(), &conn);
                            ctx.journal
                                .note(&ctx.events, Note::RollbackResult(&note))
                                .await;
                            ran
                        }
                    },
                };
                let ok = matches!(&ran, Ran::Done(out) if out.status.success());
                let (_, detail, output) = describe(ctx, &ran);
                ctx.events.emit(EventKind::UndoFinished {
                    host: host.host.clone(),
                    step: step.id.clone(),
                    ok,
                    detail: detail.clone(),
                    output: if ok { Vec::new() } else { output.clone() },
                });
                if !ok {
                    host.failure = Some(FailureDetail {
                        what: format!("undo:{}", step.id),
                        detail,
                        output,
                    });
                    outcome = RollbackOutcome::RollbackFailed;
                    break;
                }
            }
            outcome
        }
    };
    host.rollback = Some(outcome);
    ctx.events.emit(EventKind::HostRolledBack {
        wave: wave.to_string(),
        host: host.host.clone(),
        outcome,
    });
    host
}
