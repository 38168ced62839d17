//! A worker's side of a run handed to workers (`sluice worker`): one host of the run — its
//! steps and health checks, or the undo of what ran on it — run with the executor's own code
//! (`run_host`, `undo_host` and everything they call), under the same journal rules.
//!
//! The worker gives the run's artifact (read from the store), its own transports and secrets,
//! a journal whose every record is fenced by its claim, and the [`ResumeState`] read from the
//! run's records so far: a host taken over from a dead worker (or handed out again by a resumed
//! coordinator) goes on by the resume rules — completed steps are replayed, not sent again.

use std::sync::Arc;

use sluice_plan::{PlanArtifact, RuntimeValues};

use crate::event::Emitter;
use crate::host::{HostRun, run_host};
use crate::host_lease::HostLeaseIdentity;
use crate::journal::JournalHandle;
use crate::report::{HostOutcome, HostReport};
use crate::resume::{PriorStep, ResumeState};
use crate::run::RunContext;
use crate::secrets::Secrets;
use crate::shutdown::Shutdown;
use crate::transports::Transports;

/// One host of a run, as a worker runs it.
pub struct AssignedRun {
    pub artifact: Arc<PlanArtifact>,
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
    fn context(self, events: Emitter) -> Arc<RunContext> {
        for form in self.secrets.masked_forms() {
            self.journal.treat_as_secret(&form);
        }
        let host_lease = self
            .host_lease
            .filter(|_| self.artifact.host_lease)
            .map(Arc::new);
        Arc::new(RunContext {
            artifact: self.artifact,
            transports: self.transports,
            secrets: self.secrets,
            events,
            shutdown: self.shutdown,
            journal: self.journal,
            resume: self.resume,
            preconnect: crate::preconnect::Preconnect::new(false),
            stage: None,
            backups: Arc::default(),
            host_lease,
            dispatch: crate::dispatch::HostDispatch::Local,
        })
    }

    /// Runs `host`'s steps and health checks as wave `wave` would.
    pub async fn run_host(self, events: Emitter, wave: &str, host: &str) -> HostReport {
        let ctx = self.context(events);
        let values = RuntimeValues {
            secrets: ctx.secrets.values().clone(),
            ..RuntimeValues::default()
        };
        run_host(ctx, wave.to_string(), host.to_string(), values)
            .await
            .report()
    }

    /// Undoes what ran on `host` (every step with a record in the run), newest first, as the
    /// rollback of wave `wave` would.
    pub async fn undo_host(self, events: Emitter, wave: &str, host: &str) -> HostReport {
        let ctx = self.context(events);
        let mut run = HostRun::new(host, RuntimeValues::default());
        run.values.secrets = ctx.secrets.values().clone();
        run.outcome = HostOutcome::Failed;
        // The steps ran on another connection: the undo connects anew.
        run.released = true;
        if let Some(plan) = ctx.artifact.host(host) {
            for step in &plan.steps {
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
                        run.ran.push(step.clone());
                    }
                    Some(PriorStep::Again { .. }) => run.ran.push(step.clone()),
                    None => {}
                }
            }
        }
        crate::rollback::undo_host(&ctx, wave, run).await.report()
    }
}
