//! What a run did: the final [`RunReport`], per wave and per host. The statuses it uses are
//! sluice-model's, the same the events and records carry.

use std::time::Duration;

use serde::Serialize;
pub use sluice_model::{HostOutcome, RollbackOutcome, RunStatus, StepStatus, WaveStatus};

/// One host's part of the report.
#[derive(Clone, Debug, Serialize)]
pub struct HostReport {
    pub host: String,
    pub outcome: HostOutcome,
    pub rollback: Option<RollbackOutcome>,
    pub duration: Duration,
    /// The failing step (or health check) and the first lines of its output.
    pub failure: Option<FailureDetail>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FailureDetail {
    /// Step id, `health:NAME`, `connect` or `undo:STEP`.
    pub what: String,
    pub detail: String,
    pub output: Vec<String>,
}

impl FailureDetail {
    /// `what: detail`, as `host_finished` carries it.
    pub fn summary(&self) -> String {
        format!("{}: {}", self.what, self.detail)
    }
}

/// One wave's part of the report.
#[derive(Clone, Debug, Serialize)]
pub struct WaveReport {
    pub name: String,
    pub status: WaveStatus,
    pub hosts: Vec<HostReport>,
    pub duration: Duration,
}

impl WaveReport {
    pub fn count(&self, outcome: HostOutcome) -> usize {
        self.hosts.iter().filter(|h| h.outcome == outcome).count()
    }

    pub fn failures(&self) -> usize {
        self.hosts.iter().filter(|h| h.outcome.is_failure()).count()
    }

    pub fn rollbacks(&self, outcome: RollbackOutcome) -> usize {
        self.hosts
            .iter()
            .filter(|h| h.rollback == Some(outcome))
            .count()
    }
}

/// The result of [`crate::Executor::run`].
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub status: RunStatus,
    pub waves: Vec<WaveReport>,
    pub duration: Duration,
    /// For [`RunStatus::OutsideWindow`]: when the window opens next, if ever.
    pub next_window: Option<jiff::Timestamp>,
}
