//! Facts of stages and waves: their start and end, the verdict with its budget arithmetic,
//! pauses, and rollbacks.

use serde::{Deserialize, Serialize};

use crate::status::{RollbackOutcome, WaveDecision, WaveStatus};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveStarted {
    pub wave: String,
    /// 0-based position in the plan's waves (in a plan with stages, in its stage's waves).
    pub index: u32,
    pub hosts: Vec<String>,
    /// Hosts of the wave run at once.
    pub concurrency: u32,
    /// The failure budget as the plan wrote it (`2`, `10%`).
    pub budget: String,
    /// The budget in hosts: the wave fails when more hosts fail.
    pub max_failed: u32,
    /// The stage the wave belongs to; absent for a plan without stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// A stage starts: its name, the stages it waited for, its hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageStarted {
    pub stage: String,
    pub after: Vec<String>,
    pub hosts: Vec<String>,
}

/// A stage ended (`ok`, `failed`, `interrupted`, `rolled_back`, `rollback_failed`), or did not
/// start (`not_started`: a stage it waits for did not end ok, or the run was stopping).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageFinished {
    pub stage: String,
    pub status: WaveStatus,
    /// Why, in a sentence (which stage it waited for failed, for a stage that did not start).
    pub reason: String,
    pub duration_ms: u64,
}

/// How a wave ended and what was decided, with the arithmetic behind it so an auditor can redo
/// it: `ok + failed + interrupted + not_started == hosts`; the wave failed its budget when
/// `failed > max_failed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveDecided {
    pub wave: String,
    /// 0-based position in the plan's waves (in a plan with stages, in its stage's waves);
    /// absent for the `run-once` pseudo-wave.
    pub index: Option<u32>,
    pub status: WaveStatus,
    pub hosts: u32,
    pub ok: u32,
    /// Hosts counted against the budget: failed, unhealthy, unreachable or unknown.
    pub failed: u32,
    /// Of `failed`, the hosts that could not be reached.
    pub unreachable: u32,
    /// Hosts stopped by Ctrl-C or the window closing (not counted against the budget).
    pub interrupted: u32,
    pub not_started: u32,
    pub budget: String,
    pub max_failed: u32,
    pub decision: WaveDecision,
    /// Why the wave ended as it did, then what the decision does.
    pub reason: String,
    pub duration_ms: u64,
    /// The stage the wave belongs to; absent for a plan without stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackStarted {
    pub wave: String,
    /// The hosts that started, whose steps are undone.
    pub hosts: Vec<String>,
    /// The stage the wave belongs to; absent for a plan without stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRolledBack {
    pub wave: String,
    pub host: String,
    pub outcome: RollbackOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackFinished {
    pub wave: String,
    pub rolled_back: u32,
    pub failed: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseStarted {
    pub after_wave: String,
    pub duration_ms: u64,
    /// The stage the wave belongs to; absent for a plan without stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseFinished {
    pub after_wave: String,
    /// The stage the wave belongs to; absent for a plan without stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}
