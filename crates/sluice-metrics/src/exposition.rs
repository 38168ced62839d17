//! The metrics in the Prometheus text exposition format (version 0.0.4), written by the
//! `prometheus` crate's `TextEncoder` from a registry filled with gauges and one counter.
//!
//! Every series, with its labels (`plan`, and `status`, `outcome` or `wave`):
//!
//! | metric | type | value |
//! |---|---|---|
//! | `sluice_run_status` | gauge | 1 for the latest run's status, 0 for every other status |
//! | `sluice_run_duration_seconds` | gauge | the latest run, from its first record to its end |
//! | `sluice_run_finished_timestamp_seconds` | gauge | when the latest run ended |
//! | `sluice_run_hosts` | gauge | the latest run's hosts by `outcome` |
//! | `sluice_wave_duration_seconds` | gauge | each wave of the latest run |
//! | `sluice_last_success_timestamp_seconds` | gauge | when a run of the plan last succeeded (absent if none has) |
//! | `sluice_runs_total` | counter | finished runs of the plan by `status` |

use prometheus::{Encoder, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};
use sluice_model::RunStatus;

use crate::collect::PlanMetrics;
use crate::error::MetricsError;

/// The text of the metrics of `plans` (empty when there is none).
pub fn encode(plans: &[PlanMetrics]) -> Result<String, MetricsError> {
    let registry = Registry::new();
    let gauge = |name: &str, help: &str, labels: &[&str]| -> Result<GaugeVec, MetricsError> {
        let vec = GaugeVec::new(Opts::new(name, help), labels)?;
        registry.register(Box::new(vec.clone()))?;
        Ok(vec)
    };
    let status = gauge(
        "sluice_run_status",
        "Status of the plan's latest finished run: 1 for its status, 0 for the others.",
        &["plan", "status"],
    )?;
    let duration = gauge(
        "sluice_run_duration_seconds",
        "Wall time of the plan's latest finished run, from its start to its end.",
        &["plan"],
    )?;
    let finished = gauge(
        "sluice_run_finished_timestamp_seconds",
        "Unix time the plan's latest finished run ended.",
        &["plan"],
    )?;
    let hosts = gauge(
        "sluice_run_hosts",
        "Hosts of the plan's latest finished run by how they ended.",
        &["plan", "outcome"],
    )?;
    let waves = gauge(
        "sluice_wave_duration_seconds",
        "Duration of each wave of the plan's latest finished run.",
        &["plan", "wave"],
    )?;
    let success = gauge(
        "sluice_last_success_timestamp_seconds",
        "Unix time a run of the plan last ended succeeded.",
        &["plan"],
    )?;
    let runs = IntCounterVec::new(
        Opts::new(
            "sluice_runs_total",
            "Finished runs of the plan in the audit store, by status.",
        ),
        &["plan", "status"],
    )?;
    registry.register(Box::new(runs.clone()))?;

    for p in plans {
        let plan = p.plan.as_str();
        for s in RunStatus::ALL {
            let value = if *s == p.latest.status { 1.0 } else { 0.0 };
            status.with_label_values(&[plan, s.as_str()]).set(value);
        }
        duration
            .with_label_values(&[plan])
            .set(p.latest.duration_seconds);
        finished
            .with_label_values(&[plan])
            .set(p.latest.finished_at);
        for (outcome, n) in p.latest.hosts.labelled() {
            hosts.with_label_values(&[plan, outcome]).set(n as f64);
        }
        for w in &p.latest.waves {
            waves
                .with_label_values(&[plan, w.wave.as_str()])
                .set(w.duration_seconds);
        }
        if let Some(at) = p.last_success {
            success.with_label_values(&[plan]).set(at);
        }
        for (s, n) in &p.runs {
            runs.with_label_values(&[plan, s.as_str()]).inc_by(*n);
        }
    }
    let mut out = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut out)?;
    // The encoder writes label values escaped and the rest from our own names: UTF-8.
    Ok(String::from_utf8_lossy(&out).into_owned())
}
