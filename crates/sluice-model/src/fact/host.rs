//! Facts of one host: its start and end, each step's intent, result and retries, confirm
//! timers, health probes, `--check` findings, backups, host-side leases, and workers' claims.

use serde::{Deserialize, Serialize};

use crate::capture::Capture;
use crate::status::{
    BackupPhase, CheckVerdict, ConfirmOutcome, ConfirmTimer, ConnectErrorKind, HostOutcome,
    ProbeKind, StepStatus, WorkerTask,
};

use super::StepRef;

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
