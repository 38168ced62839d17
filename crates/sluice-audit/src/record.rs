//! What the audit trail records: the record envelope and one typed payload per kind.
//!
//! Payloads are plain data (strings and integers, no floats) so that a record serialises to the
//! same canonical bytes on every machine, which the hash chain depends on (see [`crate::chain`]).

use serde::{Deserialize, Serialize};

/// One record as stored and exported: the envelope the store fills in around a [`Payload`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the store's one sequence, from 1, without gaps.
    pub seq: u64,
    /// When the store committed it, UTC, RFC 3339.
    pub at: String,
    pub run: String,
    #[serde(flatten)]
    pub payload: Payload,
    /// Hash of the record before this one in the store (64 zeros for the first).
    pub prev_hash: String,
    /// Hash of the previous record of the same run (64 zeros for the run's first record). A
    /// `--run` export is verified along this second chain, since other runs' records interleave.
    pub run_prev_hash: String,
    /// sha256(prev_hash || canonical bytes of this record without `hash`), hex.
    pub hash: String,
}

impl Record {
    pub fn kind(&self) -> &'static str {
        self.payload.kind()
    }
}

/// Plan approvals belong to no run: they are recorded under a pseudo-run per plan hash,
/// `plan:<first 12 hex digits>`, which `sluice runs` does not list.
pub fn plan_run_id(plan_hash: &str) -> String {
    format!("plan:{}", plan_hash.get(..12).unwrap_or(plan_hash))
}

/// Whether a run id is a plan's pseudo-run ([`plan_run_id`]).
pub fn is_plan_run(run: &str) -> bool {
    run.starts_with("plan:")
}

/// What a caller hands to the store: a run and what happened. The store adds sequence number,
/// time and hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub run: String,
    pub payload: Payload,
}

impl Entry {
    pub fn new(run: impl Into<String>, payload: Payload) -> Self {
        Entry {
            run: run.into(),
            payload,
        }
    }
}

/// The payload of a record, tagged by kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum Payload {
    RunStarted(RunStarted),
    PlanArtifactStored(PlanArtifactStored),
    ApprovalRequested(ApprovalRequested),
    Approval(Approval),
    LeaseTaken(LeaseChange),
    LeaseReleased(LeaseChange),
    LeaseBroken(LeaseChange),
    WaveStarted(WaveStarted),
    WaveDecided(WaveDecided),
    StepIntent(StepIntent),
    StepResult(StepResult),
    HealthResult(HealthResult),
    RollbackStepResult(StepResult),
    UnknownStepsResolved(UnknownStepsResolved),
    RunResumed(RunResumed),
    RunFinished(RunFinished),
}

impl Payload {
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::RunStarted(_) => "run_started",
            Payload::PlanArtifactStored(_) => "plan_artifact_stored",
            Payload::ApprovalRequested(_) => "approval_requested",
            Payload::Approval(_) => "approval",
            Payload::LeaseTaken(_) => "lease_taken",
            Payload::LeaseReleased(_) => "lease_released",
            Payload::LeaseBroken(_) => "lease_broken",
            Payload::WaveStarted(_) => "wave_started",
            Payload::WaveDecided(_) => "wave_decided",
            Payload::StepIntent(_) => "step_intent",
            Payload::StepResult(_) => "step_result",
            Payload::HealthResult(_) => "health_result",
            Payload::RollbackStepResult(_) => "rollback_step_result",
            Payload::UnknownStepsResolved(_) => "unknown_steps_resolved",
            Payload::RunResumed(_) => "run_resumed",
            Payload::RunFinished(_) => "run_finished",
        }
    }
}

/// Who started which change from where. `command_line` must already be redacted
/// ([`crate::Redactor`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStarted {
    pub operator: String,
    pub controller: String,
    pub sluice_version: String,
    pub plan_name: String,
    pub ticket: Option<String>,
    pub plan_hash: String,
    pub command_line: Vec<String>,
    /// Target hosts in plan order, so `sluice runs` can count hosts without the artifact.
    pub hosts: Vec<String>,
    /// Wave names in order; `sluice approve RUN --wave W` takes a name or a 0-based index.
    pub waves: Vec<String>,
}

/// A plan artifact, stored once per plan hash so a run can be reviewed without the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanArtifactStored {
    pub plan_hash: String,
    pub artifact: serde_json::Value,
}

/// What was approved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum ApprovalScope {
    /// A reviewed plan artifact, by its exact hash.
    Plan { plan_hash: String },
    /// The approval gate before a wave of a waiting run, by wave name.
    Wave { wave: String },
}

/// A run reached a wave with an approval gate and waits (`sluice approve RUN --wave W`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequested {
    pub wave: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    #[serde(flatten)]
    pub scope: ApprovalScope,
    pub by: String,
    pub comment: Option<String>,
    /// A refusal: the gate answered no (the run stops before the wave).
    #[serde(default)]
    pub refused: bool,
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
pub struct WaveStarted {
    /// 0-based index and name of the wave.
    pub wave: u32,
    pub name: String,
    pub hosts: Vec<String>,
}

/// The decision after a wave, with the arithmetic behind it so an auditor can redo it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveDecided {
    pub wave: u32,
    pub name: String,
    pub hosts: u32,
    pub succeeded: u32,
    pub failed: u32,
    /// Hosts of the wave that never started (the wave stopped first).
    #[serde(default)]
    pub not_started: u32,
    /// The failure budget as written in the plan (`"2"`, `"10%"`).
    pub budget: String,
    /// The budget in hosts for this wave.
    pub budget_hosts: u32,
    /// `continue`, `halt`, `rollback`.
    pub decision: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepIntent {
    pub host: String,
    pub step: String,
    /// The command as run, redacted.
    pub command: String,
    /// A rollback step (tracked apart from forward steps of the same name).
    #[serde(default)]
    pub rollback: bool,
    /// 1 for the first try, 2 for the first retry...
    #[serde(default)]
    pub attempt: u32,
}

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// The step did not run to an exit (connection lost, timeout, skipped by a guard).
    None {
        reason: String,
    },
}

/// One captured stream: head and tail up to the caps, and the size and hash of all of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capture {
    pub head: String,
    pub tail: String,
    pub bytes: u64,
    pub sha256: String,
    /// True when head and tail are not the whole stream.
    pub truncated: bool,
}

impl Capture {
    /// The whole stream as text, when this capture provably holds all of it unchanged: not
    /// truncated, and head and tail hash to the stream's sha256 (so no secret was masked and no
    /// invalid UTF-8 replaced). Resume restores a registered value from it.
    pub fn whole_text(&self) -> Option<String> {
        if self.truncated {
            return None;
        }
        let text = format!("{}{}", self.head, self.tail);
        let digest = <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes());
        (hex::encode(digest) == self.sha256).then_some(text)
    }

    /// The kept text: the head, a marker for what was left out, the tail.
    pub fn text(&self) -> String {
        if self.truncated {
            let kept = (self.head.len() + self.tail.len()) as u64;
            let skipped = self.bytes.saturating_sub(kept);
            format!(
                "{}\n[... {skipped} bytes not kept ...]\n{}",
                self.head, self.tail
            )
        } else {
            format!("{}{}", self.head, self.tail)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResult {
    pub host: String,
    pub step: String,
    #[serde(default)]
    pub attempt: u32,
    pub exit: Exit,
    pub ok: bool,
    pub duration_ms: u64,
    pub stdout: Capture,
    pub stderr: Capture,
    pub host_key_fingerprint: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    pub host: String,
    pub check: String,
    pub ok: bool,
    pub detail: String,
    pub duration_ms: u64,
}

/// The operator's answer to steps that have an intent but no result after a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownChoice {
    Rerun,
    Skip,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownStepsResolved {
    pub choice: UnknownChoice,
    pub by: String,
    /// (host, step) pairs the choice applies to.
    pub steps: Vec<(String, String)>,
}

/// `sluice resume` carried on a run whose controller died: who, from where, and which UNKNOWN
/// steps it runs again without asking (the operator's own choice is an
/// [`UnknownStepsResolved`] record). The leases it re-took are a `lease_taken` record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResumed {
    pub operator: String,
    pub controller: String,
    pub sluice_version: String,
    /// Redacted, as in `run_started`.
    pub command_line: Vec<String>,
    pub pid: u32,
    pub plan_hash: String,
    /// UNKNOWN (host, step) pairs whose `skip_if` guard decides.
    #[serde(default)]
    pub guarded: Vec<(String, String)>,
    /// UNKNOWN (host, step) pairs run again because the step is `idempotent: true`.
    #[serde(default)]
    pub idempotent: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFinished {
    /// `succeeded`, `failed`, `rolled_back`, `rollback_failed`, `aborted`.
    pub status: String,
    pub exit_code: u8,
}
