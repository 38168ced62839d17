//! What the metrics say, read from the audit store: per plan, its latest finished run (status,
//! duration, hosts by outcome, waves' durations), how many runs ended in each status, and when
//! it last succeeded.
//!
//! Only change runs count (`run_kind` `apply`, carried on by `resume`): a check run or an ad-hoc
//! `exec` changes nothing a dashboard of changes should show. A run still in progress (or
//! interrupted) is not a plan's latest run until it finishes.

use std::collections::BTreeMap;

use sluice_audit::{AuditLog, Record, RunSummary};
use sluice_model::{Fact, HostOutcome, RollbackOutcome, RunKind, RunStatus};

use crate::error::MetricsError;

/// The metrics of one plan (by its name).
#[derive(Clone, Debug, PartialEq)]
pub struct PlanMetrics {
    pub plan: String,
    /// Its latest finished run.
    pub latest: RunMetrics,
    /// Finished runs per status, over the whole store.
    pub runs: BTreeMap<RunStatus, u64>,
    /// When a run of the plan last ended `succeeded`, in Unix seconds.
    pub last_success: Option<f64>,
}

/// One finished run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunMetrics {
    pub run: String,
    pub status: RunStatus,
    /// From its first record to `run_finished`, in seconds (a resumed run's pause included).
    pub duration_seconds: f64,
    /// When `run_finished` was recorded, in Unix seconds.
    pub finished_at: f64,
    pub hosts: HostCounts,
    /// Each wave that was decided, in order (the `run-once` pseudo-wave included).
    pub waves: Vec<WaveMetrics>,
}

/// The hosts of a run by how they ended; each host is counted once, by its last outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostCounts {
    pub ok: u64,
    /// A step or health check failed, a step's outcome is unknown, or the host reverted a step
    /// it could not confirm (`reverted`); not rolled back.
    pub failed: u64,
    pub unreachable: u64,
    /// Every undo succeeded (whatever the host's outcome before).
    pub rolled_back: u64,
    pub rollback_failed: u64,
    /// Stopped by Ctrl-C or the window, or never started.
    pub not_finished: u64,
}

impl HostCounts {
    /// Every count with its label value, in a fixed order (every series is always written).
    pub fn labelled(&self) -> [(&'static str, u64); 6] {
        [
            ("ok", self.ok),
            ("failed", self.failed),
            ("unreachable", self.unreachable),
            ("rolled_back", self.rolled_back),
            ("rollback_failed", self.rollback_failed),
            ("not_finished", self.not_finished),
        ]
    }
}

/// One wave of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct WaveMetrics {
    pub wave: String,
    pub duration_seconds: f64,
}

/// Every plan with a finished change run in the store, by plan name.
pub fn collect(log: &AuditLog) -> Result<Vec<PlanMetrics>, MetricsError> {
    let mut plans: BTreeMap<String, Vec<RunSummary>> = BTreeMap::new();
    for summary in log.list_runs()? {
        if summary.run_kind == RunKind::Apply && summary.status.status().is_some() {
            plans
                .entry(summary.plan_name.clone())
                .or_default()
                .push(summary);
        }
    }
    let mut out = Vec::with_capacity(plans.len());
    for (plan, runs) in plans {
        // `list_runs` is newest first; a plan's latest run is the one that finished last.
        let Some(latest) = runs.iter().max_by(|a, b| a.finished_at.cmp(&b.finished_at)) else {
            continue;
        };
        let records = log.run_records(&latest.run)?;
        let Some(latest) = RunMetrics::from_records(&latest.run, &records) else {
            continue;
        };
        let mut counts = BTreeMap::new();
        for status in runs.iter().filter_map(|r| r.status.status()) {
            *counts.entry(status).or_insert(0) += 1;
        }
        let last_success = runs
            .iter()
            .filter(|r| r.status.status() == Some(RunStatus::Succeeded))
            .filter_map(|r| r.finished_at.as_deref().and_then(unix_seconds))
            .fold(None, |max: Option<f64>, at| {
                Some(max.map_or(at, |m| m.max(at)))
            });
        out.push(PlanMetrics {
            plan,
            latest,
            runs: counts,
            last_success,
        });
    }
    Ok(out)
}

impl RunMetrics {
    /// The metrics of a finished run from its records; `None` while it has not finished.
    pub fn from_records(run: &str, records: &[Record]) -> Option<RunMetrics> {
        let started = records.first().and_then(|r| unix_seconds(&r.at))?;
        let mut outcomes: BTreeMap<&str, HostState> = BTreeMap::new();
        let mut waves: Vec<WaveMetrics> = Vec::new();
        let mut finished = None;
        for record in records {
            match &record.fact {
                Fact::HostFinished(h) => {
                    outcomes.insert(&h.host, HostState::Finished(h.outcome));
                }
                Fact::HostRolledBack(h) => {
                    outcomes.insert(&h.host, HostState::RolledBack(h.outcome));
                }
                Fact::WaveDecided(w) => {
                    let metrics = WaveMetrics {
                        wave: w.wave.clone(),
                        duration_seconds: w.duration_ms as f64 / 1000.0,
                    };
                    // A resumed run decides a wave again only if it never was; keep the last.
                    match waves.iter_mut().find(|m| m.wave == w.wave) {
                        Some(known) => *known = metrics,
                        None => waves.push(metrics),
                    }
                }
                Fact::RunFinished(f) => finished = Some((f.status, unix_seconds(&record.at)?)),
                _ => {}
            }
        }
        let (status, finished_at) = finished?;
        let mut hosts = HostCounts::default();
        for state in outcomes.values() {
            *state.count_in(&mut hosts) += 1;
        }
        Some(RunMetrics {
            run: run.to_string(),
            status,
            duration_seconds: (finished_at - started).max(0.0),
            finished_at,
            hosts,
            waves,
        })
    }
}

/// How a host ended, as far as the records of its run say.
#[derive(Clone, Copy)]
enum HostState {
    Finished(HostOutcome),
    RolledBack(RollbackOutcome),
}

impl HostState {
    fn count_in(self, counts: &mut HostCounts) -> &mut u64 {
        match self {
            HostState::RolledBack(RollbackOutcome::RolledBack) => &mut counts.rolled_back,
            HostState::RolledBack(RollbackOutcome::RollbackFailed) => &mut counts.rollback_failed,
            HostState::Finished(HostOutcome::Ok) => &mut counts.ok,
            HostState::Finished(HostOutcome::Unreachable) => &mut counts.unreachable,
            HostState::Finished(
                HostOutcome::Failed
                | HostOutcome::Unhealthy
                | HostOutcome::Unknown
                | HostOutcome::Reverted,
            ) => &mut counts.failed,
            HostState::Finished(HostOutcome::Interrupted | HostOutcome::NotStarted) => {
                &mut counts.not_finished
            }
        }
    }
}

/// An RFC 3339 time of the store as Unix seconds (with its fraction).
fn unix_seconds(at: &str) -> Option<f64> {
    let at: jiff::Timestamp = at.parse().ok()?;
    Some(at.as_millisecond() as f64 / 1000.0)
}
