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
use std::time::{Duration, Instant};

use sluice_audit::pg::{Claim, WorkerRegistration, WorkerSpec};
use sluice_audit::{AuditLog, Redactor};
use sluice_exec::assigned::{AssignedPlan, AssignedRun};
use sluice_exec::prior::{Prior, UNDO_PREFIX};
use sluice_exec::{Emitter, JournalHandle, Secrets, Shutdown, Transports};
use sluice_model::{
    Fact, HostFinished, HostNeedsOperator, HostOutcome, HostRolledBack, RollbackOutcome, StepRef,
    UnknownChoice, WorkerTask,
};
use sluice_plan::PlanArtifact;
use tokio::task::JoinSet;

use crate::error::LifecycleError;
use crate::worker_journal::{FencedJournal, FencedWriter};

/// How often an idle worker looks for hosts, and a busy one for stop requests.
pub const POLL: Duration = Duration::from_millis(200);

/// How long a worker that holds no host keeps the artifacts of the runs it served: a worker
/// that runs out of hosts for a moment (between waves, or faster than the coordinator hands
/// them out) does not read a plan of 100,000 hosts again for its next host.
const KEEP_RUNS: Duration = Duration::from_secs(30);

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
    let writer = FencedWriter::start(log.clone()).map_err(LifecycleError::Writer)?;
    let mut worker = Worker {
        log: log.clone(),
        registration: registration.clone(),
        transports: options.transports,
        writer: Arc::new(writer),
        runs: HashMap::new(),
        idle_since: None,
        stops: HashMap::new(),
        stops_read: Instant::now(),
        ended: Vec::new(),
        summary: WorkerSummary::default(),
    };
    let mut stop = options.shutdown.subscribe();
    let mut running: JoinSet<Claim> = JoinSet::new();
    while stop.soft_requested().is_none() && !stop.hard_requested() {
        worker.forget_idle_runs();
        worker.claim_more(&mut running).await;
        worker.pass_on_stops().await;
        worker.release_unfinished().await;
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            Some(Ok(claim)) = running.join_next() => {
                worker.ended(claim);
                // Hosts that ended meanwhile make room together: one claim commit for them.
                while let Some(joined) = running.try_join_next() {
                    if let Ok(claim) = joined {
                        worker.ended(claim);
                    }
                }
            }
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
    /// The group commit every host of this worker records through.
    writer: Arc<FencedWriter>,
    runs: HashMap<String, Arc<RunKit>>,
    /// Since when the worker holds no host.
    idle_since: Option<Instant>,
    /// The stop of each host in hand, by assignment.
    stops: HashMap<i64, Shutdown>,
    /// When the coordinator's stop requests were last read.
    stops_read: Instant,
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
            self.idle_since = Some(Instant::now());
        }
    }

    /// A long-lived worker keeps no run's artifact once it held no host for [`KEEP_RUNS`].
    fn forget_idle_runs(&mut self) {
        if self
            .idle_since
            .is_some_and(|since| since.elapsed() >= KEEP_RUNS)
        {
            self.runs.clear();
            self.idle_since = None;
        }
    }

    /// Gives back the claims whose task ended without its last fact recorded (the database
    /// went away): another worker carries them on. Tried again at every poll until the store
    /// answers; one statement for every claim that ended since the last time.
    async fn release_unfinished(&mut self) {
        if self.ended.is_empty() {
            return;
        }
        let claims = std::mem::take(&mut self.ended);
        let log = self.log.clone();
        let released = tokio::task::spawn_blocking(move || {
            let released = log
                .postgres("sluice worker")
                .and_then(|pg| pg.release_claims(&claims));
            (claims, released)
        })
        .await;
        match released {
            Ok((claims, Ok(ids))) => {
                for claim in claims.iter().filter(|c| ids.contains(&c.fence.assignment)) {
                    tracing::warn!(
                        "host {} of run {}: its end was not recorded; it is queued again for a worker to carry on",
                        claim.order.host,
                        claim.order.run
                    );
                }
            }
            Ok((claims, Err(_))) => self.ended = claims,
            Err(_) => {}
        }
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
                    let stage = started_stage_of(&self.log, &claim).await;
                    end_unrun(&self.log, &claim, self.name(), why, stage).await;
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
            self.idle_since = None;
            self.summary.hosts += 1;
            let job = HostJob {
                log: self.log.clone(),
                writer: self.writer.clone(),
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
    /// Read once per [`POLL`], not at every host's end: the query names every host in hand.
    async fn pass_on_stops(&mut self) {
        if self.stops.is_empty() || self.stops_read.elapsed() < POLL {
            return;
        }
        self.stops_read = Instant::now();
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

/// The run's plan artifact from the store, verified; read straight from its record's text
/// (`PgStore::artifact_as`), so a plan of 100,000 hosts costs a worker its own size, not a JSON
/// tree of it besides.
fn load_artifact(log: &AuditLog, run: &str) -> Result<PlanArtifact, String> {
    let summary = log.run_summary(run).map_err(|e| e.to_string())?;
    let artifact: PlanArtifact = log
        .postgres("sluice worker")
        .and_then(|pg| pg.artifact_as(&summary.plan_hash))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the store holds no plan artifact {}", summary.plan_hash))?;
    sluice_exec::verify_artifact(&artifact, Some(&summary.plan_hash)).map_err(|e| e.to_string())?;
    Ok(artifact)
}

/// The stage of a claimed task's wave when the run's plan cannot be read: a wave of a plan with
/// stages is named `STAGE/NAME` (`STAGE/run-once` for its pseudo-wave), and the coordinator
/// records `stage_started` before it hands out a host of the stage. A plan without stages may
/// name a wave `a/b`, so the prefix counts only as a stage the run started.
async fn started_stage_of(log: &Arc<AuditLog>, claim: &Claim) -> Option<String> {
    let (prefix, _) = claim.order.wave.split_once('/')?;
    let (log, run, prefix) = (log.clone(), claim.order.run.clone(), prefix.to_string());
    tokio::task::spawn_blocking(move || {
        let started = log.postgres("sluice worker")?.started_stages(&run)?;
        Ok::<_, sluice_audit::AuditError>(started.contains(&prefix).then_some(prefix))
    })
    .await
    .ok()?
    .ok()?
}

/// Ends a claimed host this worker cannot run (no plan, no secrets): it fails (or its undo
/// does), with the reason, so the coordinator's budget and rollback decide as for any failure.
/// `stage` is the stage of its wave, which its `host_finished` names as every host's does.
async fn end_unrun(
    log: &Arc<AuditLog>,
    claim: &Claim,
    worker: &str,
    why: String,
    stage: Option<String>,
) {
    let fact = match claim.order.task {
        WorkerTask::Host | WorkerTask::Once => Fact::HostFinished(HostFinished {
            wave: claim.order.wave.clone(),
            host: claim.order.host.clone(),
            outcome: HostOutcome::Failed,
            duration_ms: 0,
            error: Some(format!("worker: {why}")),
            stage,
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
    writer: Arc<FencedWriter>,
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
                let (_, stage) = self.kit.plan.for_wave(&self.claim.order.wave);
                end_unrun(&self.log, &self.claim, &self.worker, why, stage).await;
                return claim;
            }
        };
        let prior = match self.prior().await {
            Ok(prior) => prior,
            Err(why) => {
                // Without the host's records the worker cannot tell what already ran: it gives
                // the host back (queued again) rather than run a step twice.
                tracing::warn!(
                    "worker {}: cannot read the records of {} (run {}): {why}",
                    self.worker,
                    self.claim.order.host,
                    self.claim.order.run
                );
                return claim;
            }
        };
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
            writer: self.writer.clone(),
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

impl HostJob {
    /// What the run recorded of the claimed host so far: its own records, those of the hosts
    /// of `run_once` steps (an earlier stage's registered values) and the operator's
    /// resolutions, read through the store's index by host, never the whole run.
    async fn prior(&self) -> Result<Prior, String> {
        let (log, run) = (self.log.clone(), self.claim.order.run.clone());
        let mut hosts = vec![self.claim.order.host.clone()];
        for once in &self.kit.plan.whole().run_once {
            if !hosts.contains(&once.host) {
                hosts.push(once.host.clone());
            }
        }
        let records = tokio::task::spawn_blocking(move || {
            log.postgres("sluice worker")?.hosts_records(&run, &hosts)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        let facts: Vec<Fact> = records.into_iter().map(|r| r.fact).collect();
        Ok(Prior::read_host(
            self.kit.plan.whole(),
            &self.claim.order.host,
            facts.iter(),
        ))
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
