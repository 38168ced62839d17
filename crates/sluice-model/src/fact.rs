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

use serde::{Deserialize, Serialize};

use crate::capture::Capture;
use crate::status::{
    ApprovalHow, Decision, HostOutcome, ProbeKind, RollbackOutcome, RunKind, RunStatus, StepStatus,
    UnknownChoice, WaveDecision, WaveStatus, WorkerTask,
};
use crate::status::{
    BackupPhase, CheckVerdict, ConfirmOutcome, ConfirmTimer, ConnectErrorKind, NotifyEvent,
};

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
pub struct ApprovalRequested {
    pub wave: String,
    /// The stage the wave belongs to; absent for a plan without stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// What was approved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum ApprovalScope {
    /// A reviewed plan artifact, by its exact hash.
    Plan { plan_hash: String },
    /// The approval gate before a wave of a waiting run, by wave name.
    Wave { wave: String },
    /// The operator's confirmation of `sluice apply` before the run started. Not an approval
    /// of the plan: `--require-approval` does not count it.
    RunStart { plan_hash: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    #[serde(flatten)]
    pub scope: ApprovalScope,
    /// Who: the principal an `allowed_signers` file gives the signing key, or for an unsigned
    /// approval the name given (`--by`, the OS account at a prompt).
    pub by: String,
    pub comment: Option<String>,
    /// A refusal: the gate answered no.
    pub refused: bool,
    pub how: ApprovalHow,
    /// The SSH signature that proves it, when it was signed.
    pub signature: Option<ApprovalSignature>,
}

/// An approval's proof: an OpenSSH signature (`ssh-keygen -Y sign`, namespace
/// `sluice-approval`) over a canonical statement of what is approved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalSignature {
    /// The statement that was signed, exactly (it names the plan hash, what is approved, when it
    /// was signed, until when it is valid, and the comment).
    pub statement: String,
    /// The signature, armored (`-----BEGIN SSH SIGNATURE-----`).
    pub signature: String,
    /// SHA256 fingerprint of the signing key.
    pub key: String,
}

impl Approval {
    /// The operator's confirmation, typed at the prompt, of a run of plan `plan_hash`.
    pub fn run_start(plan_hash: &str, by: &str) -> Approval {
        Approval {
            scope: ApprovalScope::RunStart {
                plan_hash: plan_hash.to_string(),
            },
            by: by.to_string(),
            comment: None,
            refused: false,
            how: ApprovalHow::Terminal,
            signature: None,
        }
    }

    /// An answer to the gate before `wave`, with no comment and no signature.
    pub fn of_wave(wave: &str, by: &str, refused: bool, how: ApprovalHow) -> Approval {
        Approval {
            scope: ApprovalScope::Wave {
                wave: wave.to_string(),
            },
            by: by.to_string(),
            comment: None,
            refused,
            how,
            signature: None,
        }
    }
}

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
pub struct HostStarted {
    pub wave: String,
    pub host: String,
    /// The stage the wave belongs to; absent for a plan without stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFinished {
    pub wave: String,
    pub host: String,
    pub outcome: HostOutcome,
    pub duration_ms: u64,
    /// What failed and why (`install: exit 3`, `connect: ...`), when the host did not end ok.
    pub error: Option<String>,
    /// The stage the wave belongs to; absent for a plan without stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// A command about to be sent (a step, or an undo). `command` is redacted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepIntent {
    pub host: String,
    pub step: String,
    pub command: String,
    /// 1 for the first try, 2 for the first retry... (undos are tried once).
    pub attempt: u32,
    /// A `reboot:` step's host boot id before the reboot, so that a resume can tell whether
    /// the reboot happened. Absent for every other command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

/// The confirm-or-revert timer of a step armed on its host: it runs the step's undo when it
/// fires, `within_ms` after it was armed, unless sluice disarms it first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmArmed {
    pub host: String,
    pub step: String,
    pub within_ms: u64,
    pub timer: ConfirmTimer,
    /// The timer's name on the host: the systemd unit (`NAME.timer`), or the marker in the
    /// sleeping process's command line.
    pub unit: String,
    /// The directory on the host that holds the armed undo and the timer's state.
    pub dir: String,
}

/// How a step's confirm timer was settled on its host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmResult {
    pub host: String,
    pub step: String,
    pub outcome: ConfirmOutcome,
    /// What happened, in a sentence; redacted.
    pub detail: String,
    /// From arming to this settlement.
    pub duration_ms: u64,
    /// When the host reverted: the exit code of the undo its timer ran.
    pub undo_exit_code: Option<i32>,
    /// When the host reverted: the undo's output (stdout and stderr together), redacted.
    pub undo_output: Option<Capture>,
}

/// How one attempt of a command ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResult {
    pub host: String,
    pub step: String,
    /// The attempt it ends; 0 for a step its guard skipped.
    pub attempt: u32,
    pub status: StepStatus,
    /// The exit code, when the command ran to one.
    pub exit_code: Option<i32>,
    /// `exit 0`, `exit 3`, `killed by SIGTERM`, `timed out`, or what went wrong; redacted.
    pub detail: String,
    pub duration_ms: u64,
    pub stdout: Capture,
    pub stderr: Capture,
    /// SHA256 fingerprint of the host key of the connection it ran on (absent for local hosts).
    pub host_key_fingerprint: Option<String>,
}

impl StepResult {
    /// The first non-blank lines of stderr, then of stdout: what a display shows of a failure.
    pub fn first_lines(&self, n: usize) -> Vec<String> {
        let text = format!("{}{}", self.stderr.text(), self.stdout.text());
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .take(n)
            .map(str::to_string)
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRetrying {
    pub host: String,
    pub step: String,
    pub next_attempt: u32,
    pub delay_ms: u64,
}

/// One health probe of one host in one round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    pub host: String,
    pub check: String,
    pub probe: ProbeKind,
    /// 1 for the first round, 2 for the first retry...
    pub round: u32,
    pub ok: bool,
    /// `exit 0`, `HTTP 503 (expected 200)`, ..., redacted.
    pub detail: String,
    pub duration_ms: u64,
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

/// How the plan's recorded approvals measured up to the policy: the run starts only when
/// `accepted` holds at least `required` distinct principals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyChecked {
    pub plan_hash: String,
    pub required: u32,
    /// The operator, as identified by their key (`--key`), when the policy wants approvers
    /// distinct from the operator.
    pub operator: Option<String>,
    pub accepted: Vec<ApprovalVerdict>,
    pub rejected: Vec<ApprovalVerdict>,
}

/// One recorded approval and what the check made of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalVerdict {
    /// Sequence number of the `approval` record.
    pub seq: u64,
    /// The principal the signature proves, or the unproven name of an unsigned approval.
    pub by: String,
    /// SHA256 fingerprint of the signing key, if signed.
    pub key: Option<String>,
    /// Why it does not count, for a rejected one.
    pub reason: Option<String>,
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

/// A worker's claim of a host of a run (`sluice worker`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostClaimed {
    pub wave: String,
    pub host: String,
    pub task: WorkerTask,
    /// The worker's name (`sluice worker --name`).
    pub worker: String,
    /// The worker that held the claim before and stopped beating; absent for a first claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaimed_from: Option<String>,
}

/// A host a worker took over and cannot carry on without the operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostNeedsOperator {
    pub wave: String,
    pub host: String,
    pub task: WorkerTask,
    pub worker: String,
    /// The steps (`undo:ID` for an undo) whose outcome is unknown.
    pub steps: Vec<StepRef>,
}

/// A count in a fact: facts hold `u32`; more than 4 billion saturates.
pub fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// What `sluice apply --check` found one step would do on one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepChecked {
    pub host: String,
    pub step: String,
    pub verdict: CheckVerdict,
    /// Why: `no skip_if guard`, `skip_if exited 0`, `check step exited 0`, what failed; redacted.
    pub detail: String,
    /// For `guard_unevaluated`: the step whose registered value the guard needs.
    pub depends_on: Option<String>,
}

/// How `sluice apply --check` reached one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostChecked {
    pub wave: String,
    pub host: String,
    /// `ok` (reached, every check command ran), `failed` (a check step or guard failed),
    /// `unreachable` (not reached; `connect_error` says why).
    pub outcome: HostOutcome,
    /// Why the host was not reached (`unreachable`, `host_key_refused`, `auth_failed`, ...).
    pub connect_error: Option<ConnectErrorKind>,
    /// What went wrong, when the outcome is not `ok`; redacted.
    pub error: Option<String>,
    pub duration_ms: u64,
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

/// A `backup:` entry about to run on one host. `command` (its `run`) is redacted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStarted {
    pub host: String,
    /// The backup's `id`.
    pub backup: String,
    pub command: String,
}

/// How a `backup:` entry ended on one host: its `run`, then its `verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupResult {
    pub host: String,
    pub backup: String,
    /// `ok` when `run` and `verify` both exited 0; otherwise how the command `phase` names ended.
    pub status: StepStatus,
    /// The command this result speaks of: `run` when it did not succeed, else `verify`.
    pub phase: BackupPhase,
    pub exit_code: Option<i32>,
    /// `verified`, `run: exit 1`, `verify: timed out`, ...; redacted.
    pub detail: String,
    /// Both commands together.
    pub duration_ms: u64,
    /// The output of the command `phase` names (redacted head and tail, sha256 and size of all).
    pub stdout: Capture,
    pub stderr: Capture,
    /// The evidence, when the backup was verified: sha256 and size of `verify`'s whole stdout.
    pub evidence: Option<BackupEvidence>,
}

/// What proves a backup was verified: its `verify` command's stdout, hashed as received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupEvidence {
    pub verify_sha256: String,
    pub verify_bytes: u64,
}

/// A host-side lease: the host, and the holder its lease directory names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLeaseChange {
    pub host: String,
    /// The lease directory on the host.
    pub path: String,
    /// The run the lease names: this run, or (for `host_lease_broken`) the run whose lease was
    /// broken.
    pub holder_run: String,
    pub holder_controller: String,
    pub holder_operator: String,
    /// When the lease expires (taken) or expired (broken), RFC 3339.
    pub expires_at: String,
    /// Why an expired lease was broken (`--reason`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
