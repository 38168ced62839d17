//! Facts: everything that happens in a run, each kind once, as a type.
//!
//! A [`Fact`] is what the executor (and the run's lifecycle around it) reports. The same value
//! becomes an event of the `--json` stream ([`crate::Event`]) and, for the facts that are
//! recorded, an audit record (sluice-audit's `Record`), and resume reads the records back as
//! facts. Both wire forms are flat JSON objects tagged by `"kind"`, so a `step_result` event and
//! a `step_result` record carry the same fields under the same names.
//!
//! Facts are plain data (strings, integers, booleans; no floats), so a record serializes to the
//! same canonical bytes on every machine, which the audit trail's hash chain depends on. Commands,
//! details and captured output are redacted before a fact is built: no fact carries a secret.
//!
//! The payloads live by what they speak of: `run.rs` (the run as a whole), `approval.rs`,
//! `wave.rs` (stages, waves, pauses, rollbacks) and `host.rs` (one host's steps, checks, backups
//! and host-side leases).

mod approval;
mod host;
mod run;
mod wave;

pub use approval::*;
pub use host::*;
pub use run::*;
pub use wave::*;

use serde::{Deserialize, Serialize};

/// Declares [`Fact`]: `Variant(Payload) = "kind"`.
macro_rules! facts {
    ( $( $(#[$vmeta:meta])* $variant:ident($payload:ty) = $kind:literal ),+ $(,)? ) => {
        /// One fact of a run, tagged by `"kind"` on the wire.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        pub enum Fact {
            $( $(#[$vmeta])* #[serde(rename = $kind)] $variant($payload) ),+
        }

        impl Fact {
            /// Every kind, in declaration order.
            pub const KINDS: &'static [&'static str] = &[$($kind),+];

            /// This fact's kind, as serialized in `"kind"`.
            pub fn kind(&self) -> &'static str {
                match self { $(Fact::$variant(_) => $kind),+ }
            }
        }
    };
}

facts! {
    /// Who started which change, from where (recorded first, with the leases).
    RunStarted(RunStarted) = "run_started",
    /// `sluice resume` carried on a run whose controller died.
    RunResumed(RunResumed) = "run_resumed",
    /// How the run ended.
    RunFinished(RunFinished) = "run_finished",
    /// The plan artifact, stored once per plan hash (recorded, never emitted: it is large).
    PlanArtifactStored(PlanArtifactStored) = "plan_artifact_stored",
    LeaseTaken(LeaseChange) = "lease_taken",
    LeaseReleased(LeaseChange) = "lease_released",
    LeaseBroken(LeaseChange) = "lease_broken",
    /// The operator's choice for steps whose outcome was unknown after a crash.
    UnknownStepsResolved(UnknownStepsResolved) = "unknown_steps_resolved",
    /// A run reached a wave with an approval gate and waits.
    ApprovalRequested(ApprovalRequested) = "approval_requested",
    /// An approval or refusal: of a plan, of a wave's gate, or of the start of a run.
    Approval(Approval) = "approval",
    /// A stage of a plan with stages starts (every stage it waits for has finished).
    StageStarted(StageStarted) = "stage_started",
    /// A stage of a plan with stages ended, or did not start.
    StageFinished(StageFinished) = "stage_finished",
    WaveStarted(WaveStarted) = "wave_started",
    /// How a wave ended and what the executor decided, with the budget arithmetic.
    WaveDecided(WaveDecided) = "wave_decided",
    HostStarted(HostStarted) = "host_started",
    HostFinished(HostFinished) = "host_finished",
    /// A step about to be sent to a host: recorded before the command is sent.
    StepIntent(StepIntent) = "step_intent",
    /// How one attempt of a step ended: recorded before the host's next step or retry.
    StepResult(StepResult) = "step_result",
    StepRetrying(StepRetrying) = "step_retrying",
    /// A step with `confirm`: the timer that reverts it is armed on the host (recorded before
    /// the step's intent).
    ConfirmArmed(ConfirmArmed) = "confirm_armed",
    /// How a step's confirm timer was settled: confirmed, disarmed, or reverted by the host.
    ConfirmResult(ConfirmResult) = "confirm_result",
    HealthResult(HealthResult) = "health_result",
    RollbackStarted(RollbackStarted) = "rollback_started",
    /// An undo about to be sent: recorded before the command is sent.
    UndoIntent(StepIntent) = "undo_intent",
    UndoResult(StepResult) = "undo_result",
    HostRolledBack(HostRolledBack) = "host_rolled_back",
    RollbackFinished(RollbackFinished) = "rollback_finished",
    PauseStarted(PauseStarted) = "pause_started",
    PauseFinished(PauseFinished) = "pause_finished",
    /// The plan's approvals, checked against the environment's policy before the run started.
    PolicyChecked(PolicyChecked) = "policy_checked",
    /// A choice that changes what runs, outside a wave's verdict.
    Decision(DecisionTaken) = "decision",
    /// Something the operator must know that does not stop the run (a host key learned by
    /// accept-new, an unusable identity file).
    Warning(Warning) = "warning",
    /// `sluice apply --check`: what a step would do on one host.
    StepChecked(StepChecked) = "step_checked",
    /// `sluice apply --check`: whether a host was reached, and why not.
    HostChecked(HostChecked) = "host_checked",
    /// A `backup:` entry about to run on a host: recorded before its command is sent.
    BackupStarted(BackupStarted) = "backup_started",
    /// How a `backup:` entry ended on a host, with the evidence of its verification.
    BackupResult(BackupResult) = "backup_result",
    /// A host-side lease (`host_lease: true`) taken on a host when it starts.
    HostLeaseTaken(HostLeaseChange) = "host_lease_taken",
    /// A host-side lease released at the host's end.
    HostLeaseReleased(HostLeaseChange) = "host_lease_released",
    /// An expired host-side lease of another run broken (`--break-expired-host-leases --reason`).
    HostLeaseBroken(HostLeaseChange) = "host_lease_broken",
    /// A `notify:` webhook could not be delivered after its retries (the run is unaffected).
    NotificationFailed(NotificationFailed) = "notification_failed",
    /// `--workers`: a worker claimed a host of the run (to run it, or to undo it), possibly
    /// taking it over from a worker whose heartbeat expired.
    HostClaimed(HostClaimed) = "host_claimed",
    /// `--workers`: a worker that took a host over found steps whose outcome is unknown and
    /// that only the operator can settle (`sluice resume --rerun-unknown/--skip-unknown`).
    HostNeedsOperator(HostNeedsOperator) = "host_needs_operator",
}

impl Fact {
    /// The host this fact is about: its top-level `host` field on the wire (a `warning` may
    /// name one), `None` for facts of the run, its stages and waves. The PostgreSQL store files
    /// every record under it (`records.host`) without reading the record's JSON back. The match
    /// names every kind, so a new kind must say whether it has a host (and
    /// `tests/docs.rs` checks each kind's answer against its documented example).
    pub fn host(&self) -> Option<&str> {
        match self {
            Fact::HostStarted(HostStarted { host, .. })
            | Fact::HostFinished(HostFinished { host, .. })
            | Fact::StepIntent(StepIntent { host, .. })
            | Fact::UndoIntent(StepIntent { host, .. })
            | Fact::StepResult(StepResult { host, .. })
            | Fact::UndoResult(StepResult { host, .. })
            | Fact::StepRetrying(StepRetrying { host, .. })
            | Fact::ConfirmArmed(ConfirmArmed { host, .. })
            | Fact::ConfirmResult(ConfirmResult { host, .. })
            | Fact::HealthResult(HealthResult { host, .. })
            | Fact::HostRolledBack(HostRolledBack { host, .. })
            | Fact::StepChecked(StepChecked { host, .. })
            | Fact::HostChecked(HostChecked { host, .. })
            | Fact::BackupStarted(BackupStarted { host, .. })
            | Fact::BackupResult(BackupResult { host, .. })
            | Fact::HostLeaseTaken(HostLeaseChange { host, .. })
            | Fact::HostLeaseReleased(HostLeaseChange { host, .. })
            | Fact::HostLeaseBroken(HostLeaseChange { host, .. })
            | Fact::HostClaimed(HostClaimed { host, .. })
            | Fact::HostNeedsOperator(HostNeedsOperator { host, .. }) => Some(host),
            Fact::Warning(Warning { host, .. }) => host.as_deref(),
            Fact::RunStarted(_)
            | Fact::RunResumed(_)
            | Fact::RunFinished(_)
            | Fact::PlanArtifactStored(_)
            | Fact::LeaseTaken(_)
            | Fact::LeaseReleased(_)
            | Fact::LeaseBroken(_)
            | Fact::UnknownStepsResolved(_)
            | Fact::ApprovalRequested(_)
            | Fact::Approval(_)
            | Fact::StageStarted(_)
            | Fact::StageFinished(_)
            | Fact::WaveStarted(_)
            | Fact::WaveDecided(_)
            | Fact::RollbackStarted(_)
            | Fact::RollbackFinished(_)
            | Fact::PauseStarted(_)
            | Fact::PauseFinished(_)
            | Fact::PolicyChecked(_)
            | Fact::Decision(_)
            | Fact::NotificationFailed(_) => None,
        }
    }
}

/// A (host, step) pair.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StepRef {
    pub host: String,
    /// The step id, or `undo:ID` for an undo.
    pub step: String,
}

impl StepRef {
    pub fn new(host: impl Into<String>, step: impl Into<String>) -> Self {
        StepRef {
            host: host.into(),
            step: step.into(),
        }
    }
}

/// A count in a fact: facts hold `u32`; more than 4 billion saturates.
pub fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
