//! How long a plan may take: the estimate the review shows and the window check compares with.
//!
//! The estimate is deliberately simple so a reviewer can redo it by hand:
//! - a step takes up to its `timeout`, or [`STEP_WITHOUT_TIMEOUT_MS`] when it has none (one
//!   attempt: retries are for the unusual case);
//! - a host takes the sum of its steps plus one round of health checks, each check up to the
//!   health `timeout`;
//! - a wave runs its hosts `concurrency` at a time: `ceil(hosts / concurrency)` host durations,
//!   then its pause (none after the last wave);
//! - the plan is the `run_once` steps, then every wave in turn. Time spent waiting for an
//!   approval is not counted: nobody can say how long a person takes.

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
}

impl Estimate {
    pub fn of(plan: &PlanArtifact) -> Estimate {
        let step_ms = |id: &str| {
            plan.step(id)
                .and_then(|s| s.timeout_ms)
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
