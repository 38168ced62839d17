//! A worker's side of a run handed to workers (`sluice worker`): one host of the run — its
//! steps and health checks, its `run_once` steps, or the undo of what ran on it — run with the
//! executor's own code (`run_host`, the run_once pseudo-wave's `connected`/`run_steps`,
//! `undo_host` and everything they call), under the same journal rules.
//!
//! The worker gives the run's artifact (read from the store), its own transports and secrets,
//! a journal whose every record is fenced by its claim, and the [`ResumeState`] read from the
//! run's records so far: a host taken over from a dead worker (or handed out again by a resumed
//! coordinator) goes on by the resume rules — completed steps are replayed, not sent again.
//!
//! In a plan with stages, a task runs in its wave's stage as the coordinator's stage does: on
//! the stage's view of the artifact ([`AssignedPlan::for_wave`]), with a context naming the
//! stage (so its facts carry `stage`), its hosts starting with the values the `run_once` steps
//! of earlier stages registered, read back from the run's records as a resume reads them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sluice_plan::{PlanArtifact, RunOnceStep, RuntimeValues};

use crate::event::Emitter;
use crate::host::{HostRun, run_host};
use crate::host_lease::HostLeaseIdentity;
use crate::journal::JournalHandle;
use crate::report::{HostOutcome, HostReport};
use crate::resume::{PriorStep, ResumeState};
use crate::run::{RUN_ONCE_WAVE, RunContext};
use crate::secrets::Secrets;
use crate::shutdown::Shutdown;
use crate::transports::Transports;

/// A run's plan as its workers run it: the whole artifact, and each stage's view, built once
/// per worker and run (a view per host task would copy the stage's hosts every time).
pub struct AssignedPlan {
    whole: Arc<PlanArtifact>,
    views: Mutex<HashMap<String, Arc<PlanArtifact>>>,
}

impl AssignedPlan {
    pub fn new(whole: PlanArtifact) -> Self {
        AssignedPlan {
            whole: Arc::new(whole),
            views: Mutex::default(),
        }
    }

    /// The run's whole artifact (what its records are read against).
    pub fn whole(&self) -> &Arc<PlanArtifact> {
        &self.whole
    }

    /// The plan wave `wave` belongs to, and its stage: the stage's view in a plan with stages
    /// (a wave's own stage, or the stage of a `STAGE/run-once` pseudo-wave), else the whole.
    pub fn for_wave(&self, wave: &str) -> (Arc<PlanArtifact>, Option<String>) {
        let Some(stage) = stage_of(&self.whole, wave) else {
            return (self.whole.clone(), None);
        };
        let mut views = self
            .views
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let view = views
            .entry(stage.name.clone())
            .or_insert_with(|| Arc::new(self.whole.stage_view(stage)))
            .clone();
        (view, Some(stage.name.clone()))
    }
}

/// The stage of `wave` in a plan with stages; see [`AssignedPlan::for_wave`].
fn stage_of<'a>(artifact: &'a PlanArtifact, wave: &str) -> Option<&'a sluice_plan::StagePlan> {
    if artifact.stages.is_empty() {
        return None;
    }
    let name = match artifact.waves.iter().find(|w| w.name == wave) {
        Some(plan) => plan.stage.as_deref()?,
        None => wave.strip_suffix(RUN_ONCE_WAVE)?.strip_suffix('/')?,
    };
    artifact.stage(name)
}

/// One host of a run, as a worker runs it.
pub struct AssignedRun {
    pub plan: Arc<AssignedPlan>,
    pub transports: Transports,
    /// Read by the worker itself (its environment and files): never from the store.
    pub secrets: Secrets,
    /// The worker's stop for this host (its SIGTERM, and the coordinator's stop requests).
    pub shutdown: Shutdown,
    pub journal: JournalHandle,
    /// What the run recorded before (empty for a host nobody started).
    pub resume: Arc<ResumeState>,
    /// Who leases hosts on the hosts themselves, for a plan with `host_lease: true`.
    pub host_lease: Option<HostLeaseIdentity>,
}

impl AssignedRun {
    /// The context of a task in `wave`: its stage's, in a plan with stages.
    fn context(self, events: Emitter, wave: &str) -> Arc<RunContext> {
        for form in self.secrets.masked_forms() {
            self.journal.treat_as_secret(&form);
        }
        let (artifact, stage) = self.plan.for_wave(wave);
        let host_lease = self
            .host_lease
            .filter(|_| artifact.host_lease)
            .map(Arc::new);
        Arc::new(RunContext {
            artifact,
            transports: self.transports,
            secrets: self.secrets,
            events,
            shutdown: self.shutdown,
            journal: self.journal,
            resume: self.resume,
            preconnect: crate::preconnect::Preconnect::new(false),
            stage,
            backups: Arc::default(),
            host_lease,
            dispatch: crate::dispatch::HostDispatch::Local,
        })
    }

    /// Runs `host`'s steps and health checks as wave `wave` would.
    pub async fn run_host(self, events: Emitter, wave: &str, host: &str) -> HostReport {
        let whole = self.plan.whole().clone();
        let ctx = self.context(events, wave);
        let values = passed_on(&whole, &ctx);
        run_host(ctx, wave.to_string(), host.to_string(), values)
            .await
            .report()
    }

    /// Runs `host`'s `run_once` steps of the pseudo-wave `wave`, in order, as the run_once
    /// pseudo-wave of one process does, and records the host's `host_finished` in it.
    pub async fn run_once(self, events: Emitter, wave: &str, host: &str) -> HostReport {
        let whole = self.plan.whole().clone();
        let ctx = self.context(events, wave);
        let values = passed_on(&whole, &ctx);
        let steps: Vec<&RunOnceStep> = ctx
            .artifact
            .run_once
            .iter()
            .filter(|o| o.host == host)
            .collect();
        let mut stop = ctx.shutdown.subscribe();
        let mut run = match steps.first() {
            Some(first) => crate::run::once::connected(&ctx, first, values, &mut stop).await,
            // Nothing to run (the coordinator hands out only hosts with run_once steps).
            None => {
                let mut run = HostRun::new(host, values);
                run.outcome = HostOutcome::Ok;
                run
            }
        };
        if run.conn.is_some() {
            crate::run::once::run_steps(&ctx, &mut run, &steps, &mut stop).await;
        }
        ctx.note(crate::run::once::finished(&ctx, &run)).await;
        run.report()
    }

    /// Undoes what ran on `host` (every step of the wave's plan with a record in the run),
    /// newest first, as the rollback of wave `wave` would.
    pub async fn undo_host(self, events: Emitter, wave: &str, host: &str) -> HostReport {
        let whole = self.plan.whole().clone();
        let ctx = self.context(events, wave);
        let mut run = HostRun::new(host, passed_on(&whole, &ctx));
        run.outcome = HostOutcome::Failed;
        // The steps ran on another connection: the undo connects anew.
        run.released = true;
        let run_once = wave == ctx.run_once_wave();
        for step in crate::dispatch::task_steps(&ctx.artifact, run_once, host) {
            match ctx.resume.step(host, &step.id) {
                Some(PriorStep::Done(done)) => {
                    let spec = crate::host::step_spec(&ctx, &step.id);
                    if let (true, Some(name), Some(value)) =
                        (done.ok, &spec.register, &done.registered)
                    {
                        let secret = ctx.secrets.found_in(value);
                        if secret {
                            ctx.taint(value);
                        }
                        run.values.register(name, value.clone(), secret);
                    }
                    run.ran.push(step);
                }
                Some(PriorStep::Again { .. }) => run.ran.push(step),
                None => {}
            }
        }
        crate::rollback::undo_host(&ctx, wave, run).await.report()
    }
}

/// The values a host of the task in `ctx` starts with: the run's secrets and, in a stage of
/// `whole`, what the stages before it passed on.
fn passed_on(whole: &PlanArtifact, ctx: &RunContext) -> RuntimeValues {
    let mut values = match &ctx.stage {
        Some(stage) => crate::stages::recorded_pass_on(whole, stage, ctx),
        None => RuntimeValues::default(),
    };
    values.secrets = ctx.secrets.values().clone();
    values
}
