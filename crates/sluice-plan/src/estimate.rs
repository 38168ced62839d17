//! How long a plan may take: the estimate the review shows and the window check compares with.
//!
//! The estimate is deliberately simple so a reviewer can redo it by hand:
//! - a step takes up to its `timeout`, or [`STEP_WITHOUT_TIMEOUT_MS`] when it has none (one
//!   attempt: retries are for the unusual case);
//! - a host takes the sum of its steps plus one round of health checks, each check up to the
//!   health `timeout`;
//! - a wave runs its hosts `concurrency` at a time: `ceil(hosts / concurrency)` host durations,
//!   then its pause (none after the last wave, except a stage's last wave that other stages
//!   wait for: that pause holds them);
//! - the plan is the `run_once` steps, then every wave in turn. Time spent waiting for an
//!   approval is not counted: nobody can say how long a person takes.
//! - in a plan with stages, each stage is estimated as a plan of its own (its steps on its
//!   hosts, its waves), and a stage ends its own estimate after the latest end among the stages
//!   it waits for; stages with no order between them overlap. The plan takes as long as the
//!   longest path through the stage graph (`stage_concurrency` is not modelled: a limit lower
//!   than the number of stages that could run at once makes the real run longer).

use crate::artifact::{PlanArtifact, WavePlan};

/// What a step without a `timeout` is assumed to take: one minute.
pub const STEP_WITHOUT_TIMEOUT_MS: u64 = 60_000;

/// The estimate of one plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Estimate {
    /// One host: its steps and one round of health checks.
    pub per_host_ms: u64,
    /// The `run_once` steps, before the first wave.
    pub run_once_ms: u64,
    /// Each wave, in order, pause included.
    pub per_wave_ms: Vec<u64>,
    /// Everything, approvals excepted.
    pub total_ms: u64,
    /// In a plan with stages, each stage in execution order (empty otherwise).
    pub per_stage: Vec<StageEstimate>,
    /// In a plan with stages, the stages on the longest path, first to last (empty otherwise).
    pub longest_path: Vec<String>,
}

/// One stage of a plan with stages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageEstimate {
    pub name: String,
    /// The stage alone, as a plan of its own.
    pub ms: u64,
    /// When it ends, counted from the start of the run: its own estimate after the latest end
    /// of the stages it waits for.
    pub ends_ms: u64,
}

impl Estimate {
    pub fn of(plan: &PlanArtifact) -> Estimate {
        if plan.stages.is_empty() {
            Estimate::of_one(plan)
        } else {
            Estimate::of_stages(plan)
        }
    }

    /// Each stage as a plan of its own, then the longest path through the stage graph.
    fn of_stages(plan: &PlanArtifact) -> Estimate {
        let mut per_stage: Vec<StageEstimate> = Vec::with_capacity(plan.stages.len());
        // For each stage, the stage before it on its longest path.
        let mut previous: Vec<Option<usize>> = Vec::with_capacity(plan.stages.len());
        let mut per_wave: Vec<(String, u64)> = Vec::new();
        let (mut per_host_ms, mut run_once_ms) = (0, 0);
        for stage in &plan.stages {
            let view = plan.stage_view(stage);
            let mut own = Estimate::of_one(&view);
            // The pause of the last wave holds the stages that wait for this one (a pause
            // between stages); with none waiting it does nothing, as after a plan's last wave.
            if plan.stages.iter().any(|s| s.after.contains(&stage.name)) {
                let held = view.waves.last().and_then(|w| w.pause_ms).unwrap_or(0);
                if let Some(last) = own.per_wave_ms.last_mut() {
                    *last = last.saturating_add(held);
                }
                own.total_ms = own.total_ms.saturating_add(held);
            }
            per_host_ms = per_host_ms.max(own.per_host_ms);
            run_once_ms = u64::saturating_add(run_once_ms, own.run_once_ms);
            let view_waves = plan
                .waves
                .iter()
                .filter(|w| w.stage.as_ref() == Some(&stage.name));
            per_wave.extend(view_waves.map(|w| w.name.clone()).zip(own.per_wave_ms));
            // Stages are in execution order: every stage it waits for is already estimated.
            let latest = stage
                .after
                .iter()
                .filter_map(|name| per_stage.iter().position(|s| &s.name == name))
                .max_by_key(|&j| per_stage[j].ends_ms);
            let starts = latest.map_or(0, |j| per_stage[j].ends_ms);
            previous.push(latest);
            per_stage.push(StageEstimate {
                name: stage.name.clone(),
                ms: own.total_ms,
                ends_ms: starts.saturating_add(own.total_ms),
            });
        }
        let last = (0..per_stage.len()).max_by_key(|&i| per_stage[i].ends_ms);
        let mut longest_path = Vec::new();
        let mut at = last;
        while let Some(i) = at {
            longest_path.push(per_stage[i].name.clone());
            at = previous[i];
        }
        longest_path.reverse();
        let per_wave_ms = plan
            .waves
            .iter()
            .map(|w| {
                per_wave
                    .iter()
                    .find(|(n, _)| n == &w.name)
                    .map_or(0, |p| p.1)
            })
            .collect();
        Estimate {
            per_host_ms,
            run_once_ms,
            per_wave_ms,
            total_ms: last.map_or(0, |i| per_stage[i].ends_ms),
            per_stage,
            longest_path,
        }
    }

    /// A plan without stages, or one stage's view.
    fn of_one(plan: &PlanArtifact) -> Estimate {
        let step_ms = |id: &str| {
            plan.step(id)
                .and_then(|s| {
                    let reboot = s.reboot.as_ref().map(|r| r.timeout_ms);
                    // A confirmed step runs within its window, then sluice may wait for a
                    // host that reverted to answer again.
                    let confirm = s
                        .confirm
                        .as_ref()
                        .map(|c| c.within_ms.saturating_add(c.revert_timeout_ms));
                    reboot.or(confirm).or(s.timeout_ms)
                })
                .unwrap_or(STEP_WITHOUT_TIMEOUT_MS)
        };
        let checks = plan.hosts.first().map_or(0, |h| h.health.len()) as u64;
        let health_ms = checks.saturating_mul(plan.health.timeout_ms);
        let steps_ms: u64 = plan
            .steps
            .iter()
            .filter(|s| !s.run_once)
            .map(|s| step_ms(&s.id))
            .fold(0, u64::saturating_add);
        let per_host_ms = steps_ms.saturating_add(health_ms);
        let run_once_ms = plan
            .run_once
            .iter()
            .map(|r| step_ms(&r.step.id))
            .fold(0, u64::saturating_add);
        let last = plan.waves.len().saturating_sub(1);
        let per_wave_ms: Vec<u64> = plan
            .waves
            .iter()
            .enumerate()
            .map(|(i, w)| wave_ms(w, per_host_ms, i < last))
            .collect();
        let total_ms = per_wave_ms
            .iter()
            .copied()
            .fold(run_once_ms, u64::saturating_add);
        Estimate {
            per_host_ms,
            run_once_ms,
            per_wave_ms,
            total_ms,
            per_stage: Vec::new(),
            longest_path: Vec::new(),
        }
    }
}

/// Rounds of `concurrency` hosts, then the pause (the executor pauses only before a next wave).
fn wave_ms(wave: &WavePlan, per_host_ms: u64, pauses: bool) -> u64 {
    let rounds = wave.hosts.len().div_ceil(wave.concurrency.max(1)) as u64;
    let pause = if pauses {
        wave.pause_ms.unwrap_or(0)
    } else {
        0
    };
    rounds.saturating_mul(per_host_ms).saturating_add(pause)
}
