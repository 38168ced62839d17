//! Facts of a run as a whole: its start, resume and end, its stored plan, its leases in the
//! store, the operator's choices and decisions, warnings, and notifications that failed.

use serde::{Deserialize, Serialize};

use super::StepRef;
use crate::status::{Decision, NotifyEvent, RunKind, RunStatus, UnknownChoice};

/// Who started which change from where. `command_line` is redacted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStarted {
    /// What kind of run: a plan (`apply`) or an ad-hoc command (`exec`).
    pub run_kind: RunKind,
    pub operator: String,
    pub controller: String,
    pub sluice_version: String,
    pub plan_name: String,
    pub ticket: Option<String>,
    pub plan_hash: String,
    pub command_line: Vec<String>,
    /// Target hosts in plan order.
    pub hosts: Vec<String>,
    /// Wave names in order.
    pub waves: Vec<String>,
    /// The environment the inventory names, when the plan has `promotion` (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// sha256 of the plan file, when the plan has `promotion`: what later promotion evidence
    /// matches (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_hash: Option<String>,
}

/// `sluice resume` carried on a run: who, from where, and which UNKNOWN steps it runs again
/// without asking (the operator's own choice is an [`UnknownStepsResolved`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResumed {
    pub operator: String,
    pub controller: String,
    pub sluice_version: String,
    /// Redacted, as in `run_started`.
    pub command_line: Vec<String>,
    pub pid: u32,
    pub plan_hash: String,
    /// UNKNOWN steps whose `skip_if` guard decides.
    pub guarded: Vec<StepRef>,
    /// UNKNOWN steps run again because the step is `idempotent: true`.
    pub idempotent: Vec<StepRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFinished {
    pub status: RunStatus,
    /// From the executor's start to its end in this process.
    pub duration_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanArtifactStored {
    pub plan_hash: String,
    pub artifact: serde_json::Value,
}

/// Hosts whose lease was taken, released or broken, and by whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseChange {
    pub hosts: Vec<String>,
    pub operator: String,
    pub controller: String,
    pub pid: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownStepsResolved {
    pub choice: UnknownChoice,
    pub by: String,
    pub steps: Vec<StepRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionTaken {
    pub decision: Decision,
    /// The wave it concerns, if any.
    pub wave: Option<String>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// The host it concerns, if any.
    pub host: Option<String>,
    pub message: String,
}

/// A webhook of the plan's `notify:` that did not accept an event after every retry. The run
/// carries on; the endpoint is named by its origin only (a webhook's path often holds a token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationFailed {
    /// The event that was not delivered.
    pub event: NotifyEvent,
    /// The CloudEvents `id` of the undelivered event.
    pub event_id: String,
    /// `scheme://host:port` of the webhook.
    pub endpoint: String,
    /// 0-based position of the webhook in the plan's `notify:` list.
    pub target: u32,
    pub attempts: u32,
    /// Why the last attempt failed (`HTTP 503`, `connection refused`, `timed out after 5s`).
    pub reason: String,
}
