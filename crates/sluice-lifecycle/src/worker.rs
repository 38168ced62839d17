//! `sluice worker`: a long-running process that claims hosts of runs handed to workers
//! (`apply --workers`) from the shared store, runs each with the executor's own code
//! (`sluice_exec::assigned`) and records every fact in the run's chain, fenced by its claim.
//!
//! - **Liveness**: the worker's row is renewed by its heartbeat every quarter of
//!   `SLUICE_LEASE_EXPIRY`; a worker that dies stops renewing, and once its row expired another
//!   worker takes its hosts over (recorded as `host_claimed` with `reclaimed_from`) and carries
//!   them on from the journal by the resume rules: steps with a result are replayed, not sent
//!   again; a step left UNKNOWN runs again when its `skip_if` guard says so or it is
//!   `idempotent: true`; any other is `host_needs_operator`, and nothing runs on the host.
//! - **Secrets**: the worker reads the run's secrets itself, from its own environment and files,
//!   as the plan declares them (`env:`/`file:`): the store holds only their names.
//! - **Stopping**: the first SIGTERM/Ctrl-C stops claiming and lets the hosts it holds run to
//!   their end, then marks the worker stopped and exits; a second one exits at once, leaving
//!   its claims, which another worker takes over at once (the worker is marked stopped) or, if
//!   it could not say so, once its heartbeat expired.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_audit::pg::{Claim, WorkerRegistration, WorkerSpec};
use sluice_audit::{AuditError, AuditLog, Redactor};
use sluice_exec::assigned::{AssignedPlan, AssignedRun};
use sluice_exec::prior::{Prior, UNDO_PREFIX};
use sluice_exec::{
    Emitter, Journal, JournalError, JournalFuture, JournalHandle, Secrets, Shutdown, Transports,
};
use sluice_model::{
    Fact, HostFinished, HostNeedsOperator, HostOutcome, HostRolledBack, RollbackOutcome, StepRef,
    UnknownChoice, WorkerTask,
};
use sluice_plan::PlanArtifact;
use tokio::task::JoinSet;

use crate::error::LifecycleError;

/// How often an idle worker looks for hosts, and a busy one for stop requests.
pub const POLL: Duration = Duration::from_millis(200);

/// What `sluice worker` was asked to be.
pub struct WorkerOptions {
    pub spec: WorkerSpec,
    /// How the worker reaches hosts (built by the CLI, as for `apply`).
    pub transports: Transports,
    /// The worker's own stop (SIGTERM, Ctrl-C).
    pub shutdown: Shutdown,
}

/// What a worker did before it stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerSummary {
    pub hosts: u64,
    /// Claims left behind by a second stop signal, for another worker.
    pub abandoned: u64,
}

/// Runs the worker until its shutdown; see the module documentation.
pub async fn serve(
    log: Arc<AuditLog>,
    options: WorkerOptions,
) -> Result<WorkerSummary, LifecycleError> {
    let pg = log.postgres("sluice worker")?;
    let registration = Arc::new(pg.register_worker(&options.spec)?);
    tracing::info!(
        "worker {} serving {} (labels: {}), up to {} hosts at once",
        options.spec.name,
        pg.url(),
        if options.spec.labels.is_empty() {
            "none".to_string()
        } else {
            options.spec.labels.join(", ")
        },
        options.spec.max_hosts
    );
    let mut worker = Worker {
        log: log.clone(),
        registration: registration.clone(),
        transports: options.transports,
        runs: HashMap::new(),
        stops: HashMap::new(),
        ended: Vec::new(),
        summary: WorkerSummary::default(),
    };
    let mut stop = options.shutdown.subscribe();
    let mut running: JoinSet<Claim> = JoinSet::new();
    while stop.soft_requested().is_none() && !stop.hard_requested() {
        worker.claim_more(&mut running).await;
        worker.pass_on_stops().await;
        worker.release_unfinished().await;
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            Some(Ok(claim)) = running.join_next() => worker.ended(claim),
            _ = stop.soft() => {}
        }
    }
    tracing::info!(
        "worker {}: stopping; {} host(s) in hand run to their end (stop again to leave them to another worker)",
        options.spec.name,
        running.len()
    );
    loop {
        tokio::select! {
            joined = running.join_next() => match joined {
                Some(Ok(claim)) => worker.ended(claim),
                Some(Err(_)) => {}
                None => break,
            },
            _ = stop.hard() => {
                worker.summary.abandoned = u64::try_from(running.len()).unwrap_or(u64::MAX);
                running.abort_all();
                break;
            }
        }
    }
    worker.release_unfinished().await;
    let (log, id) = (log.clone(), registration.id);
    let _ =
        tokio::task::spawn_blocking(move || log.postgres("sluice worker")?.stop_worker(id)).await;
    Ok(worker.summary)
}

/// What one run needs on this worker, read once.
struct RunKit {
    plan: Arc<AssignedPlan>,
    /// The run's secrets as this worker reads them, or why it cannot.
    secrets: Result<Secrets, String>,
}

struct Worker {
    log: Arc<AuditLog>,
    registration: Arc<WorkerRegistration>,
    transports: Transports,
    runs: HashMap<String, Arc<RunKit>>,
    /// The stop of each host in hand, by assignment.
    stops: HashMap<i64, Shutdown>,
    /// Claims whose task ended, to give back if their end was not recorded.
    ended: Vec<Claim>,
    summary: WorkerSummary,
}

impl Worker {
    fn name(&self) -> &str {
        &self.registration.spec.name
    }

    fn ended(&mut self, claim: Claim) {
        self.stops.remove(&claim.fence.assignment);
        self.ended.push(claim);
        if self.stops.is_empty() {
            // A long-lived worker keeps no run's artifact while it holds no host.
            self.runs.clear();
        }
    }

    /// Gives back the claims whose task ended without its last fact recorded (the database
    /// went away): another worker carries them on. Tried again at every poll until the store
    /// answers.
    async fn release_unfinished(&mut self) {
        if self.ended.is_empty() {
            return;
        }
        let claims = std::mem::take(&mut self.ended);
        let log = self.log.clone();
        let kept = tokio::task::spawn_blocking(move || {
            let mut kept = Vec::new();
            for claim in claims {
                let released = log
                    .postgres("sluice worker")
                    .and_then(|pg| pg.release_claim(&claim));
                match released {
                    Ok(true) => tracing::warn!(
                        "host {} of run {}: its end was not recorded; it is queued again for a worker to carry on",
                        claim.order.host,
                        claim.order.run
                    ),
                    Ok(false) => {}
                    Err(_) => kept.push(claim),
                }
            }
            kept
        })
        .await
        .unwrap_or_default();
        self.ended = kept;
    }

    /// Claims as many hosts as there are free places and starts them.
    async fn claim_more(&mut self, running: &mut JoinSet<Claim>) {
        let free = self
            .registration
            .spec
            .max_hosts
            .saturating_sub(u32::try_from(running.len()).unwrap_or(u32::MAX));
        if free == 0 {
            return;
        }
        let (log, reg) = (self.log.clone(), self.registration.clone());
        let claimed = tokio::task::spawn_blocking(move || {
            log.postgres("sluice worker")?.claim_hosts(
                reg.id,
                &reg.spec.name,
                &reg.spec.labels,
                free,
            )
        })
        .await;
        let claims = match claimed {
            Ok(Ok(claims)) => claims,
            Ok(Err(e)) => {
                tracing::warn!("worker {}: cannot claim hosts: {e}", self.name());
                return;
            }
            Err(_) => return,
        };
        for claim in claims {
            let kit = match self.kit(&claim.order.run).await {
                Ok(kit) => kit,
                Err(why) => {
                    let why = format!("worker {}: {why}", self.name());
                    tracing::warn!("{why}");
                    end_unrun(&self.log, &claim, self.name(), why).await;
                    continue;
                }
            };
            tracing::info!(
                "worker {}: {} {} (run {}, wave {}){}",
                self.name(),
                match claim.order.task {
                    WorkerTask::Host => "runs",
                    WorkerTask::Undo => "undoes",
                    WorkerTask::Once => "runs the run_once steps on",
                },
                claim.order.host,
                claim.order.run,
                claim.order.wave,
                claim
                    .reclaimed_from
                    .as_deref()
                    .map(|w| format!(", taken over from {w}"))
                    .unwrap_or_default()
            );
            let shutdown = Shutdown::new();
            self.stops.insert(claim.fence.assignment, shutdown.clone());
            self.summary.hosts += 1;
            let job = HostJob {
                log: self.log.clone(),
                worker: self.name().to_string(),
                transports: self.transports.clone(),
                kit,
                claim,
                shutdown,
            };
            running.spawn(job.run());
        }
    }

    /// Stops the hosts in hand whose coordinator asked for it, as Ctrl-C stops them.
    async fn pass_on_stops(&mut self) {
        if self.stops.is_empty() {
            return;
        }
        let ids: Vec<i64> = self.stops.keys().copied().collect();
        let log = self.log.clone();
        let asked =
            tokio::task::spawn_blocking(move || log.postgres("sluice worker")?.stop_requests(&ids))
                .await;
        let Ok(Ok(requests)) = asked else { return };
        for request in requests {
            if let Some(shutdown) = self.stops.get(&request.assignment) {
                let state = shutdown.state();
                if state.soft.is_none() || (request.level >= 2 && !state.hard) {
                    shutdown.interrupt();
                }
            }
        }
    }

    /// The run's artifact and secrets, read once per run.
    async fn kit(&mut self, run: &str) -> Result<Arc<RunKit>, String> {
        if let Some(kit) = self.runs.get(run) {
            return Ok(kit.clone());
        }
        let (log, id) = (self.log.clone(), run.to_string());
        let artifact = tokio::task::spawn_blocking(move || load_artifact(&log, &id))
            .await
            .map_err(|e| e.to_string())??;
        let secrets = Secrets::load(&artifact.secrets).map_err(|e| {
            format!("cannot read the run's secrets from this worker's environment: {e}")
        });
        let kit = Arc::new(RunKit {
            plan: Arc::new(AssignedPlan::new(artifact)),
            secrets,
        });
        self.runs.insert(run.to_string(), kit.clone());
        Ok(kit)
    }
}

/// The run's plan artifact from the store, verified.
fn load_artifact(log: &AuditLog, run: &str) -> Result<PlanArtifact, String> {
    let summary = log.run_summary(run).map_err(|e| e.to_string())?;
    let value = log
        .artifact(&summary.plan_hash)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the store holds no plan artifact {}", summary.plan_hash))?;
    let artifact: PlanArtifact = serde_json::from_value(value)
        .map_err(|e| format!("the stored plan {} does not read: {e}", summary.plan_hash))?;
    sluice_exec::verify_artifact(&artifact, Some(&summary.plan_hash)).map_err(|e| e.to_string())?;
    Ok(artifact)
}

/// Ends a claimed host this worker cannot run (no plan, no secrets): it fails (or its undo
/// does), with the reason, so the coordinator's budget and rollback decide as for any failure.
async fn end_unrun(log: &Arc<AuditLog>, claim: &Claim, worker: &str, why: String) {
    let fact = match claim.order.task {
        WorkerTask::Host | WorkerTask::Once => Fact::HostFinished(HostFinished {
            wave: claim.order.wave.clone(),
            host: claim.order.host.clone(),
            outcome: HostOutcome::Failed,
            duration_ms: 0,
            error: Some(format!("worker: {why}")),
            stage: None,
        }),
        WorkerTask::Undo => Fact::HostRolledBack(HostRolledBack {
            wave: claim.order.wave.clone(),
            host: claim.order.host.clone(),
            outcome: RollbackOutcome::RollbackFailed,
        }),
    };
    let (log, claim, worker) = (log.clone(), claim.clone(), worker.to_string());
    let _ = tokio::task::spawn_blocking(move || {
        log.postgres("sluice worker")?
            .append_fenced(&claim, &worker, fact)
    })
    .await;
}

/// One claimed host, run to its end.
struct HostJob {
    log: Arc<AuditLog>,
    worker: String,
    transports: Transports,
    kit: Arc<RunKit>,
    claim: Claim,
    shutdown: Shutdown,
}

impl HostJob {
    async fn run(self) -> Claim {
        let claim = self.claim.clone();
        let secrets = match &self.kit.secrets {
            Ok(secrets) => secrets.clone(),
            Err(why) => {
                let why = format!("worker {}: {why}", self.worker);
                end_unrun(&self.log, &self.claim, &self.worker, why).await;
                return claim;
            }
        };
        let (log, run) = (self.log.clone(), self.claim.order.run.clone());
        let facts = tokio::task::spawn_blocking(move || log.run_records(&run)).await;
        let facts: Vec<Fact> = match facts {
            Ok(Ok(records)) => records.into_iter().map(|r| r.fact).collect(),
            _ => Vec::new(),
        };
        let prior = Prior::read(self.kit.plan.whole(), facts.iter());
        let blocked = blocked_steps(&prior, &self.claim, &self.kit.plan);
        if !blocked.is_empty() {
            let needs = HostNeedsOperator {
                wave: self.claim.order.wave.clone(),
                host: self.claim.order.host.clone(),
                task: self.claim.order.task,
                worker: self.worker.clone(),
                steps: blocked,
            };
            let (log, claim) = (self.log.clone(), self.claim.clone());
            let _ = tokio::task::spawn_blocking(move || {
                log.postgres("sluice worker")?.block_claim(&claim, needs)
            })
            .await;
            return self.claim;
        }
        // The choices left concern other hosts: whatever they are, this host's steps are not
        // among them.
        let resume = prior
            .resolve(Some(UnknownChoice::Rerun))
            .unwrap_or_default();
        let redactor = Arc::new(Redactor::new(secrets.values().values().cloned()));
        let journal = FencedJournal {
            log: self.log.clone(),
            claim: self.claim.clone(),
            worker: self.worker.clone(),
            redactor,
            shutdown: self.shutdown.clone(),
        };
        let assigned = AssignedRun {
            plan: self.kit.plan.clone(),
            transports: self.transports.clone(),
            secrets,
            shutdown: self.shutdown.clone(),
            journal: JournalHandle::new(Arc::new(journal)),
            resume: Arc::new(resume),
            host_lease: Some(sluice_exec::host_lease::HostLeaseIdentity {
                run: self.claim.order.run.clone(),
                controller: self.worker.clone(),
                operator: sluice_audit::operator_name(),
                break_expired: None,
            }),
        };
        // The facts are in the store (the coordinator shows them); the worker's own events
        // are not kept.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        drop(rx);
        let events = Emitter::new(&self.claim.order.run, tx);
        let (wave, host) = (&self.claim.order.wave, &self.claim.order.host);
        let report = match self.claim.order.task {
            WorkerTask::Host => assigned.run_host(events, wave, host).await,
            WorkerTask::Undo => assigned.undo_host(events, wave, host).await,
            WorkerTask::Once => assigned.run_once(events, wave, host).await,
        };
        tracing::info!(
            "worker {}: {} {}: {}",
            self.worker,
            self.claim.order.run,
            host,
            match report.rollback {
                Some(rollback) => rollback.to_string(),
                None => report.outcome.to_string(),
            }
        );
        claim
    }
}

/// The steps of the claimed host only the operator can settle: the task's steps (the host's
/// steps of the wave's stage, or its `run_once` steps) for a run, an undo's for its rollback;
/// not those the operator chose to run again (the worker resolves the choices it is left with
/// by running them again).
fn blocked_steps(prior: &Prior, claim: &Claim, plan: &AssignedPlan) -> Vec<StepRef> {
    let (artifact, stage) = plan.for_wave(&claim.order.wave);
    let run_once = claim.order.task == WorkerTask::Once
        || claim.order.wave == sluice_exec::run_once_wave(stage.as_deref());
    let steps: Vec<String> =
        sluice_exec::dispatch::task_steps(&artifact, run_once, &claim.order.host)
            .into_iter()
            .map(|s| s.id)
            .collect();
    let undo = claim.order.task == WorkerTask::Undo;
    prior
        .needs_choice()
        .into_iter()
        .filter(|u| u.host == claim.order.host && !prior.rerun_chosen(&u.host, &u.step))
        .filter(|u| match u.step.strip_prefix(UNDO_PREFIX) {
            Some(step) => undo && steps.iter().any(|s| s == step),
            None => !undo && steps.contains(&u.step),
        })
        .map(|u| StepRef::new(u.host.clone(), u.step.clone()))
        .collect()
}

/// The journal of one claimed host: every fact redacted, then recorded in the run's chain only
/// while the claim is this worker's (`PgStore::append_fenced`), one commit per fact.
struct FencedJournal {
    log: Arc<AuditLog>,
    claim: Claim,
    worker: String,
    redactor: Arc<Redactor>,
    shutdown: Shutdown,
}

impl Journal for FencedJournal {
    fn record<'a>(&'a self, fact: &'a Fact) -> JournalFuture<'a> {
        let fact = crate::journal::redact(&self.redactor, fact.clone());
        let (log, claim, worker) = (self.log.clone(), self.claim.clone(), self.worker.clone());
        Box::pin(async move {
            let appended = tokio::task::spawn_blocking(move || {
                log.postgres("sluice worker")?
                    .append_fenced(&claim, &worker, fact)
            })
            .await
            .map_err(|e| JournalError::new(std::io::Error::other(e.to_string())))?;
            appended.map(|_| ()).map_err(|e| {
                if e.is_unreachable() || matches!(e, AuditError::ClaimLost { .. }) {
                    // No new step may start without its intent recorded: stop the host.
                    self.shutdown.store_unreachable();
                }
                JournalError::new(e)
            })
        })
    }

    fn treat_as_secret(&self, value: &str) {
        self.redactor.add(value);
    }
}
