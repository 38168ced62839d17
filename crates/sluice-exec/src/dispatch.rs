//! Where a host runs: in this process (`run_host`, the default) or on a worker (`sluice apply
//! --workers`).
//!
//! The wave scheduler (`wave.rs`) and the rollback (`rollback.rs`) are the same either way: they
//! start a host only holding a free slot with the budget not spent, and ask [`start_host`] or
//! [`undo`] for its [`HostRun`]. With workers, that asks a [`RemoteHosts`] (the lifecycle's,
//! over the shared store) to hand the host to a worker and wait for its end, and rebuilds the
//! `HostRun` the decisions and the rollback need (outcome, failure, the steps that ran) from
//! what the worker recorded. Handing the host over is therefore the reservation of the right to
//! start it, exactly as a slot is in one process.
//!
//! The run_once pseudo-wave (`crate::run::once`) hands each host's `run_once` steps to a worker
//! as one task ([`run_once`], `WorkerTask::Once`), in order, waiting for each before the next.
//! In a plan with stages, the stage scheduler stays here; each stage's hosts, `run_once` steps
//! and undos are handed out under the stage's wave names (`STAGE/NAME`, `STAGE/run-once`), from
//! which the worker finds the stage (`crate::assigned`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sluice_model::{Fact, HostStarted, WorkerTask};
use sluice_plan::{HostStep, PlanArtifact, RuntimeValues};

use crate::host::{HostRun, run_host};
use crate::report::{FailureDetail, HostOutcome, RollbackOutcome};
use crate::run::RunContext;
use crate::shutdown::StopListener;

pub use crate::run::once::{Interleaved, interleaved};

/// The host variable that pins a host to the workers serving a label (`worker: dc2`).
pub const WORKER_LABEL_VAR: &str = "worker";

/// A host handed to the workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteOrder {
    pub task: WorkerTask,
    pub wave: String,
    pub host: String,
    /// The label of the workers it is pinned to; `None`: any worker.
    pub label: Option<String>,
}

/// How a host handed to the workers ended, as its records say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteResult {
    /// `None`: withdrawn before any worker claimed it (the run was stopping): not started.
    pub outcome: Option<HostOutcome>,
    /// For an undo: how it ended.
    pub rollback: Option<RollbackOutcome>,
    /// Why it did not succeed (the `error` of `host_finished`, or why it never ended).
    pub error: Option<String>,
    pub duration: Duration,
    /// The steps of the host with an intent recorded in this run, by any worker.
    pub ran: Vec<String>,
}

pub type RemoteFuture<'a> = Pin<Box<dyn Future<Output = RemoteResult> + Send + 'a>>;

/// Hands hosts to workers and waits for their end (implemented over the shared store by
/// sluice-lifecycle). `stop` is the run's: a soft stop withdraws a host no worker claimed yet.
pub trait RemoteHosts: Send + Sync {
    fn run<'a>(&'a self, order: RemoteOrder, stop: StopListener) -> RemoteFuture<'a>;
}

/// The workers of a run, for [`crate::RunOptions::workers`].
#[derive(Clone)]
pub struct Workers(pub Arc<dyn RemoteHosts>);

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Workers")
    }
}

/// How the hosts of a run are started.
#[derive(Clone, Default)]
pub(crate) enum HostDispatch {
    /// In this process.
    #[default]
    Local,
    /// On workers.
    Remote(Arc<dyn RemoteHosts>),
}

/// The worker label `host` is pinned to, from its `worker` variable.
pub fn label_of(artifact: &sluice_plan::PlanArtifact, host: &str) -> Option<String> {
    let value = artifact.host(host)?.vars.get(WORKER_LABEL_VAR)?;
    match value.as_str() {
        Some(text) => Some(text.to_string()),
        None if value.is_null() => None,
        None => Some(value.to_string()),
    }
}

/// Starts host `name` of `wave` where the run's hosts run, and waits for its end.
pub(crate) async fn start_host(
    ctx: Arc<RunContext>,
    wave: String,
    name: String,
    values: RuntimeValues,
) -> HostRun {
    let remote = match &ctx.dispatch {
        HostDispatch::Local => return run_host(ctx, wave, name, values).await,
        HostDispatch::Remote(remote) => remote.clone(),
    };
    ctx.events.emit(Fact::HostStarted(HostStarted {
        wave: wave.clone(),
        host: name.clone(),
        stage: ctx.stage.clone(),
    }));
    let order = RemoteOrder {
        task: WorkerTask::Host,
        label: label_of(&ctx.artifact, &name),
        wave,
        host: name.clone(),
    };
    let result = remote.run(order, ctx.shutdown.subscribe()).await;
    let mut run = rebuilt(&ctx, WorkerTask::Host, &name, &result);
    run.outcome = result.outcome.unwrap_or(HostOutcome::NotStarted);
    run
}

/// Runs the `run_once` steps of `host` (one segment of the pseudo-wave, see
/// `crate::run::once`) on a worker, and waits for their end.
pub(crate) async fn run_once(
    ctx: &RunContext,
    remote: &Arc<dyn RemoteHosts>,
    host: &str,
) -> HostRun {
    let order = RemoteOrder {
        task: WorkerTask::Once,
        wave: ctx.run_once_wave(),
        label: label_of(&ctx.artifact, host),
        host: host.to_string(),
    };
    let result = remote.run(order, ctx.shutdown.subscribe()).await;
    let mut run = rebuilt(ctx, WorkerTask::Once, host, &result);
    run.outcome = result.outcome.unwrap_or(HostOutcome::NotStarted);
    run
}

/// The steps of `host` a task covers, in plan order: with `run_once` (a task of the run_once
/// pseudo-wave, or the undo of one), the host's `run_once` steps, else its steps. `artifact`
/// is the plan the task's wave belongs to (a stage's view in a plan with stages).
pub fn task_steps(artifact: &PlanArtifact, run_once: bool, host: &str) -> Vec<HostStep> {
    if run_once {
        return artifact
            .run_once
            .iter()
            .filter(|o| o.host == host)
            .map(|o| o.step.clone())
            .collect();
    }
    artifact
        .host(host)
        .map(|plan| plan.steps.clone())
        .unwrap_or_default()
}

/// Undoes `host` of `wave` on a worker (the coordinator may not reach it).
pub(crate) async fn undo(
    ctx: &RunContext,
    remote: &Arc<dyn RemoteHosts>,
    wave: &str,
    mut host: HostRun,
) -> HostRun {
    let order = RemoteOrder {
        task: WorkerTask::Undo,
        wave: wave.to_string(),
        label: label_of(&ctx.artifact, &host.host),
        host: host.host.clone(),
    };
    let result = remote.run(order, ctx.shutdown.subscribe()).await;
    host.rollback = Some(result.rollback.unwrap_or(RollbackOutcome::RollbackFailed));
    if host.rollback == Some(RollbackOutcome::RollbackFailed) {
        host.failure = Some(FailureDetail {
            what: "undo".into(),
            detail: result
                .error
                .unwrap_or_else(|| "the undo did not end on a worker".into()),
            output: Vec::new(),
        });
    }
    host
}

/// The `HostRun` of a host a worker ran `task` on: what ran (in the plan's order), why it
/// failed.
fn rebuilt(ctx: &RunContext, task: WorkerTask, name: &str, result: &RemoteResult) -> HostRun {
    let mut run = HostRun::new(name, RuntimeValues::default());
    run.ran = task_steps(&ctx.artifact, task == WorkerTask::Once, name)
        .into_iter()
        .filter(|s| result.ran.contains(&s.id))
        .collect();
    // Its connection was the worker's: an undo runs on a worker too.
    run.released = true;
    run.duration = result.duration;
    // `host_finished` carries the failure as `what: detail`.
    run.failure = result.error.as_ref().map(|error| {
        let (what, detail) = error.split_once(": ").unwrap_or(("host", error));
        FailureDetail {
            what: what.to_string(),
            detail: detail.to_string(),
            output: Vec::new(),
        }
    });
    run
}
