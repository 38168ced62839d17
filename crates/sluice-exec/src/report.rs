//! What a run did: statuses of steps, hosts, waves and the run, and the final [`RunReport`].

use std::time::Duration;

use serde::Serialize;

/// How one step ended on one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Ok,
    /// `skip_if` exited 0; the step did not run and has nothing to undo.
    Skipped,
    /// Non-zero exit, killed by a signal, or its command could not be resolved.
    Failed,
    TimedOut,
    /// The transport failed while the command ran (connection lost) or a second Ctrl-C abandoned
    /// it: the command may or may not have taken effect.
    Unknown,
}

/// How one host ended in its wave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostOutcome {
    /// Every step succeeded or was skipped, and every health check passed.
    Ok,
    /// A step failed or timed out.
    Failed,
    /// Steps succeeded but a health check did not pass.
    Unhealthy,
    /// Could not connect (down, host key refused, authentication failed).
    Unreachable,
    /// Stopped after its current step by Ctrl-C or the window closing.
    Interrupted,
    /// A step was abandoned by a second Ctrl-C or a lost connection.
    Unknown,
    /// Never started: the budget was spent, or the run was stopping.
    NotStarted,
}

impl HostOutcome {
    /// Counts against the wave's failure budget.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            HostOutcome::Failed
                | HostOutcome::Unhealthy
                | HostOutcome::Unreachable
                | HostOutcome::Unknown
        )
    }
}

/// What a rollback did to one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackOutcome {
    /// Every undo of every step that ran succeeded (possibly none had an undo).
    RolledBack,
    /// An undo failed or could not be run: the host needs attention.
    RollbackFailed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveStatus {
    /// Every host ended ok, or failures stayed within the budget.
    Ok,
    /// Failures exceeded the budget (the run went on only under `action: continue`).
    Failed,
    /// Ctrl-C or the window closing stopped it.
    Interrupted,
    /// Undone by a rollback.
    RolledBack,
    /// A rollback touched it and at least one host's undo failed.
    RollbackFailed,
    NotStarted,
}

/// How the whole run ended; each maps to one documented exit code in the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every wave ended ok (or failed under `action: continue`).
    Applied,
    /// A wave failed; it was rolled back or halted.
    WaveFailed,
    /// A rollback failed on at least one host.
    RollbackFailed,
    /// Ctrl-C.
    Interrupted,
    /// The maintenance window closed, or the next wave would not fit in it.
    WindowClosed,
    /// Outside the maintenance window: nothing started.
    OutsideWindow,
    /// An approval gate was refused.
    ApprovalRefused,
}

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
