//! One wave: start hosts up to `concurrency` at a time, count failures against the budget, and
//! stop starting hosts once the budget is spent or a stop is requested.
//!
//! The scheduler owns the slots itself instead of handing a semaphore to the host tasks: a slot
//! is reused only after the scheduler has recorded the outcome of the host that held it, so the
//! budget is always checked against every finished host before the next one starts. That is what
//! makes "no overshoot" exact rather than likely.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_model::{Decision, Fact, WaveDecided, WaveDecision, WaveStarted, count};
use sluice_plan::{FailureAction, FailureBudget, PlanArtifact, RuntimeValues, WavePlan};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::budget::Budget;
use crate::host::{HostRun, millis};
use crate::report::{FailureDetail, HostOutcome, WaveReport, WaveStatus};
use crate::run::RunContext;
use crate::shutdown::StopReason;

/// A finished wave: every host's run (in wave order) and how the wave ended.
pub(crate) struct WaveRun {
    pub name: String,
    pub hosts: Vec<HostRun>,
    pub status: WaveStatus,
    pub duration: Duration,
    /// Hosts of this wave that concurrency allowed at once (used for rollback too).
    pub concurrency: usize,
}

impl WaveRun {
    pub fn report(&self) -> WaveReport {
        WaveReport {
            name: self.name.clone(),
            status: self.status,
            hosts: self.hosts.iter().map(HostRun::report).collect(),
            duration: self.duration,
        }
    }

    /// The `wave_decided` fact for this wave (wave `index` of the plan, `None` for run_once):
    /// the budget arithmetic, the decision and why.
    pub fn decided(
        &self,
        ctx: &RunContext,
        index: Option<usize>,
        decision: WaveDecision,
        action: &str,
    ) -> WaveDecided {
        let tally =
            |f: fn(HostOutcome) -> bool| count(self.hosts.iter().filter(|h| f(h.outcome)).count());
        let failed = tally(HostOutcome::is_failure);
        let max_failed = index
            .and_then(|i| ctx.artifact.waves.get(i))
            .map_or(0, |w| count(w.max_failed));
        let stop = ctx.shutdown.state();
        let cause = match self.status {
            _ if stop.hard => "a second Ctrl-C abandoned the wave".to_string(),
            WaveStatus::Interrupted => match stop.soft {
                Some(StopReason::WindowClosed) => "the maintenance window closed".to_string(),
                Some(StopReason::StoreUnreachable) => {
                    "the audit store could not be reached".to_string()
                }
                Some(StopReason::OperatorNeeded) => {
                    "a host taken over by a worker needs the operator".to_string()
                }
                _ => "Ctrl-C stopped the wave".to_string(),
            },
            _ if index.is_none() && self.status != WaveStatus::Ok => {
                "a run_once step did not succeed".to_string()
            }
            _ if index.is_none() => "every run_once step succeeded".to_string(),
            _ if failed > max_failed => {
                format!("{failed} failed hosts exceed max_failed {max_failed}")
            }
            _ => format!("{failed} failed hosts within max_failed {max_failed}"),
        };
        WaveDecided {
            wave: self.name.clone(),
            index: index.map(count),
            status: self.status,
            hosts: count(self.hosts.len()),
            ok: tally(|o| o == HostOutcome::Ok),
            failed,
            unreachable: tally(|o| o == HostOutcome::Unreachable),
            interrupted: tally(|o| o == HostOutcome::Interrupted),
            not_started: tally(|o| o == HostOutcome::NotStarted),
            budget: index
                .and_then(|i| ctx.artifact.waves.get(i))
                .map_or_else(|| "0".to_string(), |w| budget_text(&ctx.artifact, w)),
            max_failed,
            decision,
            reason: format!("{cause}: {action}"),
            duration_ms: millis(self.duration),
            stage: ctx.stage.clone(),
        }
    }

    /// Mean duration of the hosts that ran, for the window-fit estimate of later waves.
    pub fn mean_host_duration(&self) -> Option<Duration> {
        let ran: Vec<Duration> = self
            .hosts
            .iter()
            .filter(|h| h.outcome != HostOutcome::NotStarted)
            .map(|h| h.duration)
            .collect();
        let n = u32::try_from(ran.len()).ok().filter(|n| *n > 0)?;
        Some(ran.iter().sum::<Duration>() / n)
    }
}

/// Runs `wave`. `values` holds each host's run-time values so far (secrets, run_once registers).
pub(crate) async fn run_wave(
    ctx: &Arc<RunContext>,
    index: usize,
    wave: &WavePlan,
    values: &HashMap<String, RuntimeValues>,
) -> WaveRun {
    let started = Instant::now();
    let concurrency = wave.concurrency.max(1);
    let started_fact = WaveStarted {
        wave: wave.name.clone(),
        index: count(index),
        hosts: wave.hosts.clone(),
        concurrency: count(concurrency),
        budget: budget_text(&ctx.artifact, wave),
        max_failed: count(wave.max_failed),
        stage: ctx.stage.clone(),
    };
    // Recorded before any host of the wave starts, so the record precedes their steps.
    ctx.note(Fact::WaveStarted(started_fact)).await;
    // A wave decided before a resume keeps its verdict, so its replay spends no budget.
    let keep_going = ctx.artifact.failure.action == FailureAction::Continue
        || ctx.resume.wave_verdict(&wave.name).is_some();
    let stop = ctx.shutdown.subscribe();
    let mut budget = Budget::new(wave.max_failed);
    let mut done: HashMap<String, HostRun> = HashMap::new();
    let mut running: JoinSet<HostRun> = JoinSet::new();
    let mut names: HashMap<tokio::task::Id, String> = HashMap::new();

    for name in &wave.hosts {
        while running.len() >= concurrency {
            collect_one(&mut running, &mut names, &mut done, &mut budget).await;
        }
        if stop.soft_requested().is_some() || stop.hard_requested() {
            break;
        }
        if budget.is_spent() && !keep_going {
            let reason = format!(
                "{} failed hosts exceed max_failed {}: no further host of this wave starts",
                budget.failures(),
                wave.max_failed
            );
            ctx.decide(Decision::BudgetSpent, Some(&wave.name), &reason)
                .await;
            break;
        }
        if ctx.artifact.host(name).is_none() {
            continue;
        }
        let mut host_values = values.get(name).cloned().unwrap_or_default();
        host_values.secrets = ctx.secrets.values().clone();
        // The task reads its host's plan from the shared artifact: a copy per host would hold
        // a second artifact's worth of rendered commands while a large wave runs.
        let id = running
            .spawn(crate::dispatch::start_host(
                ctx.clone(),
                wave.name.clone(),
                name.clone(),
                host_values,
            ))
            .id();
        names.insert(id, name.clone());
    }
    while !running.is_empty() {
        collect_one(&mut running, &mut names, &mut done, &mut budget).await;
    }

    let hosts: Vec<HostRun> = wave
        .hosts
        .iter()
        .map(|name| {
            done.remove(name)
                .unwrap_or_else(|| HostRun::new(name, RuntimeValues::default()))
        })
        .collect();
    let status = if stop.soft_requested().is_some() || stop.hard_requested() {
        WaveStatus::Interrupted
    } else if budget.is_spent() {
        WaveStatus::Failed
    } else {
        WaveStatus::Ok
    };
    let duration = started.elapsed();
    WaveRun {
        name: wave.name.clone(),
        hosts,
        status,
        duration,
        concurrency,
    }
}

/// Waits for one host to finish and records it. A host task that panicked (a bug) is recorded as
/// a failed host rather than taking the run down.
async fn collect_one(
    running: &mut JoinSet<HostRun>,
    names: &mut HashMap<tokio::task::Id, String>,
    done: &mut HashMap<String, HostRun>,
    budget: &mut Budget,
) {
    let Some(joined) = running.join_next_with_id().await else {
        return;
    };
    let run = match joined {
        Ok((id, run)) => {
            names.remove(&id);
            run
        }
        Err(e) => {
            let name = names.remove(&e.id()).unwrap_or_default();
            let mut run = HostRun::new(&name, RuntimeValues::default());
            run.outcome = HostOutcome::Failed;
            run.failure = Some(FailureDetail {
                what: "executor".into(),
                detail: format!("host task ended abnormally: {e}"),
                output: Vec::new(),
            });
            run
        }
    };
    if run.outcome.is_failure() {
        budget.record_failure();
    }
    done.insert(run.host.clone(), run);
}

/// The failure budget of `wave` as written: its own, else the plan's (`2`, `10%`).
pub(crate) fn budget_text(artifact: &PlanArtifact, wave: &WavePlan) -> String {
    match wave.budget.unwrap_or(artifact.failure.max_failed) {
        FailureBudget::Count(n) => n.to_string(),
        FailureBudget::Percent(p) => format!("{p}%"),
    }
}
