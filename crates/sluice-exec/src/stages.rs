//! Plans with stages: the stage scheduler above the wave loop.
//!
//! 1. A stage starts when every stage it waits for (`after`) has ended ok (`succeeded` or
//!    `tolerated`), at most `stage_concurrency` at once; stages with no order between them run
//!    at the same time. A stage whose prerequisite did not end ok, or that would start while the
//!    run is stopping, does not start (`stage_finished` with `not_started`).
//! 2. Each stage runs as a plan of its own: the artifact's stage view
//!    ([`sluice_plan::PlanArtifact::stage_view`]) in a [`Run`] that shares the run's transports,
//!    secrets, events, journal, stop signals and resume state, with its own waves, gates,
//!    budgets and failure policy. Its hosts start with the values earlier stages passed on.
//!    A `pause` on the stage's last wave is held after it, before the stages that wait for it
//!    may start (a pause between stages); a stage nothing waits for does not pause.
//! 3. When a stage ends, the values its `run_once` steps registered become
//!    `stages.STAGE.NAME` for the stages after it (secret-tainted values stay secret). With
//!    workers this scheduler stays in the coordinator and the stage's hosts run on workers,
//!    which read those values back from the run's records ([`recorded_pass_on`]).
//! 4. When every stage has ended: if a stage failed under `rollback_scope: run`, every stage
//!    that had ended ok is undone, newest first (`stage_rollback` decisions). The run's status
//!    is the first failure's, `rollback_failed` when any undo failed.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_model::{
    Decision, Fact, PauseFinished, PauseStarted, StageFinished, StageStarted, WaveStatus,
};
use sluice_plan::{FailureAction, RollbackScope, RuntimeValues};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::host::millis;
use crate::report::RunStatus;
use crate::run::{Run, RunContext};

/// Where a stage is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StageState {
    Waiting,
    Running,
    Ended(RunStatus),
    NotStarted,
}

/// A stage that ended: its run (kept for a later rollback) and how it ended.
struct EndedStage {
    index: usize,
    run: Run,
    status: RunStatus,
}

impl Run {
    /// Runs a plan with stages to the end (see the module documentation).
    pub(crate) async fn stages(&mut self, run_id: &str) -> RunStatus {
        let a = self.ctx.artifact.clone();
        let limit = a.stage_concurrency.unwrap_or(1).max(1);
        let mut state = vec![StageState::Waiting; a.stages.len()];
        let mut passed_on = RuntimeValues::default();
        let mut ended: Vec<EndedStage> = Vec::new();
        let mut tasks: JoinSet<EndedStage> = JoinSet::new();
        loop {
            for i in 0..a.stages.len() {
                if state[i] != StageState::Waiting {
                    continue;
                }
                let stage = &a.stages[i];
                let blocked = stage.after.iter().find(|name| {
                    a.stages
                        .iter()
                        .position(|s| &s.name == *name)
                        .is_some_and(|j| {
                            matches!(state[j], StageState::NotStarted)
                                || matches!(state[j], StageState::Ended(s) if !ended_ok(s))
                        })
                });
                if let Some(name) = blocked {
                    let reason = format!("stage {name}, which it waits for, did not end ok");
                    self.stage_not_started(&stage.name, reason).await;
                    state[i] = StageState::NotStarted;
                    continue;
                }
                let ready = stage.after.iter().all(|name| {
                    a.stages
                        .iter()
                        .position(|s| &s.name == name)
                        .is_none_or(|j| matches!(state[j], StageState::Ended(s) if ended_ok(s)))
                });
                let running = state.iter().filter(|s| **s == StageState::Running).count();
                if !ready || running >= limit {
                    continue;
                }
                if self.ctx.shutdown.state().soft.is_some() || self.ctx.shutdown.state().hard {
                    let reason = "the run is stopping".to_string();
                    self.stage_not_started(&stage.name, reason).await;
                    state[i] = StageState::NotStarted;
                    continue;
                }
                state[i] = StageState::Running;
                let run = self.stage_run(i, &passed_on).await;
                let run_id = run_id.to_string();
                let awaited = a.stages.iter().any(|s| s.after.contains(&stage.name));
                tasks.spawn(async move {
                    let mut run = run;
                    let status = run.waves(&run_id).await;
                    if awaited && ended_ok(status) {
                        run.pause_before_dependants().await;
                    }
                    EndedStage {
                        index: i,
                        run,
                        status,
                    }
                });
            }
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            let Ok(done) = joined else {
                // A stage task cannot panic short of a bug; the stage it ran stays `Running`
                // and counts as failed below.
                continue;
            };
            self.stage_ended(&done).await;
            pass_on(&done.run, &mut passed_on);
            state[done.index] = StageState::Ended(done.status);
            ended.push(done);
        }
        self.settle(&mut ended, &state).await
    }

    /// The run of stage `i`: its view of the artifact, its hosts seeded with what earlier
    /// stages passed on. Records `stage_started`.
    async fn stage_run(&self, i: usize, passed_on: &RuntimeValues) -> Run {
        let a = &self.ctx.artifact;
        let stage = &a.stages[i];
        let ctx = Arc::new(RunContext {
            artifact: Arc::new(a.stage_view(stage)),
            transports: self.ctx.transports.clone(),
            secrets: self.ctx.secrets.clone(),
            events: self.ctx.events.clone(),
            shutdown: self.ctx.shutdown.clone(),
            journal: self.ctx.journal.clone(),
            resume: self.ctx.resume.clone(),
            preconnect: crate::preconnect::Preconnect::new(!self.options.no_preconnect),
            stage: Some(stage.name.clone()),
            backups: self.ctx.backups.clone(),
            host_lease: self.ctx.host_lease.clone(),
            dispatch: self.ctx.dispatch.clone(),
        });
        self.ctx
            .note(Fact::StageStarted(StageStarted {
                stage: stage.name.clone(),
                after: stage.after.clone(),
                hosts: stage.hosts.clone(),
            }))
            .await;
        let values: HashMap<String, RuntimeValues> = stage
            .hosts
            .iter()
            .map(|h| (h.clone(), passed_on.clone()))
            .collect();
        Run {
            ctx,
            approver: self.approver.clone(),
            options: self.options.clone(),
            started: Instant::now(),
            finished: Vec::new(),
            values,
            window_closes: self.window_closes,
            window_timer: None,
        }
    }

    /// The `pause` of a stage's last wave, held before the stages that wait for the stage may
    /// start (the stage ends after it, so it keeps its place under `stage_concurrency`). Not
    /// repeated when the last wave was decided before a resume: the pause had begun then.
    async fn pause_before_dependants(&self) {
        let Some(last) = self.ctx.artifact.waves.last() else {
            return;
        };
        let Some(ms) = last.pause_ms.filter(|ms| *ms > 0) else {
            return;
        };
        if self.ctx.resume.wave_verdict(&last.name).is_some() {
            return;
        }
        let mut stop = self.ctx.shutdown.subscribe();
        self.ctx
            .note(Fact::PauseStarted(PauseStarted {
                after_wave: last.name.clone(),
                duration_ms: ms,
                stage: self.ctx.stage.clone(),
            }))
            .await;
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(ms)) => {}
            _ = stop.soft() => {}
        }
        self.ctx
            .note(Fact::PauseFinished(PauseFinished {
                after_wave: last.name.clone(),
                stage: self.ctx.stage.clone(),
            }))
            .await;
    }

    async fn stage_not_started(&self, stage: &str, reason: String) {
        self.ctx
            .note(Fact::StageFinished(StageFinished {
                stage: stage.to_string(),
                status: WaveStatus::NotStarted,
                reason,
                duration_ms: 0,
            }))
            .await;
    }

    async fn stage_ended(&self, done: &EndedStage) {
        let name = done.run.ctx.stage.clone().unwrap_or_default();
        self.ctx
            .note(Fact::StageFinished(StageFinished {
                stage: name,
                status: stage_status(done.status),
                reason: format!("its waves ended {}", done.status),
                duration_ms: millis(done.run.started.elapsed()),
            }))
            .await;
    }

    /// After every stage ended: the cross-stage rollback of `rollback_scope: run`, the waves of
    /// every stage into this run's report, and the run's status.
    async fn settle(&mut self, ended: &mut [EndedStage], state: &[StageState]) -> RunStatus {
        let a = self.ctx.artifact.clone();
        let first_failure = ended.iter().find(|e| !ended_ok(e.status)).map(|e| {
            let policy = &a.stages[e.index].failure;
            let undo_others = policy.action == FailureAction::Rollback
                && policy.rollback_scope == RollbackScope::Run
                && !self.ctx.shutdown.state().hard
                && !self.ctx.shutdown.state().store_lost();
            (e.index, e.status, undo_others)
        });
        let mut undo_failed = false;
        if let Some((failed, _, true)) = first_failure {
            for done in ended.iter_mut().rev().filter(|e| ended_ok(e.status)) {
                let stage = &a.stages[done.index].name;
                let reason = format!(
                    "stage {} failed under rollback_scope: run: undoing stage {stage}",
                    a.stages[failed].name
                );
                self.ctx
                    .decide(Decision::StageRollback, None, &reason)
                    .await;
                let failed_here = done.run.undo_all().await;
                undo_failed |= failed_here;
                done.status = if failed_here {
                    RunStatus::RollbackFailed
                } else {
                    RunStatus::RolledBack
                };
                self.stage_ended(done).await;
            }
        }
        for done in ended.iter_mut() {
            self.finished.append(&mut done.run.finished);
        }
        let lost = state.contains(&StageState::Running);
        let any_rollback_failed = ended.iter().any(|e| e.status == RunStatus::RollbackFailed);
        match first_failure {
            _ if undo_failed || any_rollback_failed => RunStatus::RollbackFailed,
            Some((_, status, _)) => status,
            None if lost => RunStatus::Failed,
            None if ended.iter().any(|e| e.status == RunStatus::Tolerated) => RunStatus::Tolerated,
            None if state.contains(&StageState::NotStarted) => {
                self.stopped_status_or(RunStatus::Aborted)
            }
            None => RunStatus::Succeeded,
        }
    }

    fn stopped_status_or(&self, fallback: RunStatus) -> RunStatus {
        let stop = self.ctx.shutdown.state();
        match stop.soft {
            Some(crate::shutdown::StopReason::WindowClosed) => RunStatus::WindowClosed,
            Some(crate::shutdown::StopReason::StoreUnreachable) => RunStatus::StoreUnreachable,
            Some(crate::shutdown::StopReason::OperatorNeeded) => RunStatus::OperatorNeeded,
            _ => fallback,
        }
    }
}

/// A stage that ended so: the stages waiting for it may start.
fn ended_ok(status: RunStatus) -> bool {
    matches!(status, RunStatus::Succeeded | RunStatus::Tolerated)
}

/// A stage's end in the wave vocabulary of `stage_finished`.
fn stage_status(status: RunStatus) -> WaveStatus {
    match status {
        RunStatus::Succeeded | RunStatus::Tolerated | RunStatus::RecordIncomplete => WaveStatus::Ok,
        RunStatus::Failed => WaveStatus::Failed,
        RunStatus::RolledBack => WaveStatus::RolledBack,
        RunStatus::RollbackFailed => WaveStatus::RollbackFailed,
        RunStatus::Aborted
        | RunStatus::WindowClosed
        | RunStatus::OutsideWindow
        | RunStatus::ApprovalRefused
        | RunStatus::StoreUnreachable
        | RunStatus::OperatorNeeded => WaveStatus::Interrupted,
    }
}

/// Adds the values `run`'s `run_once` steps registered to `passed_on`, as
/// `stages.STAGE.NAME`, secret when the value was.
fn pass_on(run: &Run, passed_on: &mut RuntimeValues) {
    let Some(stage) = &run.ctx.stage else {
        return;
    };
    for (once, name) in registering(&run.ctx.artifact) {
        let Some(values) = run.values.get(&once.host) else {
            continue;
        };
        if let Some(value) = values.registered.get(name) {
            let secret = values.secret_registered.contains(name);
            passed_on.register(&stage_value(stage, name), value.clone(), secret);
        }
    }
}

/// What the stages other than `stage` passed on, as the run's records hold it (`ctx.resume`):
/// for a worker's task in `stage`, whose process did not run the stages before. Each value a
/// `run_once` step of another stage of `whole` registered is restored as a resume restores it,
/// when the trail holds it intact (a value that held a secret does not reach the store: a step
/// that uses it fails naming it). The planner lets a stage use only the values of the stages it
/// comes after, which have ended before it starts.
pub(crate) fn recorded_pass_on(
    whole: &sluice_plan::PlanArtifact,
    stage: &str,
    ctx: &RunContext,
) -> RuntimeValues {
    let mut passed_on = RuntimeValues::default();
    for (once, name) in registering(whole) {
        let Some(other) = whole.step(&once.step.id).and_then(|s| s.stage.as_deref()) else {
            continue;
        };
        if other == stage {
            continue;
        }
        let Some(crate::resume::PriorStep::Done(done)) = ctx.resume.step(&once.host, &once.step.id)
        else {
            continue;
        };
        if let (true, Some(value)) = (done.ok, &done.registered) {
            // A value that holds a secret is secret again in this process, as on replay.
            let secret = ctx.secrets.found_in(value);
            if secret {
                ctx.taint(value);
            }
            passed_on.register(&stage_value(other, name), value.clone(), secret);
        }
    }
    passed_on
}

/// The `run_once` steps of `artifact` that register a value, with the value's name.
fn registering(
    artifact: &sluice_plan::PlanArtifact,
) -> impl Iterator<Item = (&sluice_plan::RunOnceStep, &str)> {
    artifact.run_once.iter().filter_map(|once| {
        let name = artifact.step(&once.step.id)?.register.as_deref()?;
        Some((once, name))
    })
}

/// How a later stage names value `name` of `stage`.
fn stage_value(stage: &str, name: &str) -> String {
    format!("stages.{stage}.{name}")
}
