//! Statuses, outcomes, decisions and kinds: the closed vocabularies of a run, as enums.
//!
//! Each enum is declared with [`vocabulary!`], which gives every value its one spelling (used by
//! serde, [`std::fmt::Display`] and `as_str`) and its one-line meaning, and lists the values in
//! `ALL`. docs/json-events.md's value tables are generated from these declarations
//! (`crate::reference`), so the documentation cannot drift from the code.

use serde::{Deserialize, Serialize};

/// Declares a vocabulary enum: `Variant = "spelling": "meaning"`.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal : $doc:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $( #[doc = $doc] $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The one spelling of this value, as serialized.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// What this value means, in one line.
            pub fn meaning(self) -> &'static str {
                match self { $($name::$variant => $doc),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl crate::reference::Vocabulary for $name {
            const NAME: &'static str = stringify!($name);
            fn values() -> Vec<(&'static str, &'static str)> {
                $name::ALL.iter().map(|v| (v.as_str(), v.meaning())).collect()
            }
        }
    };
}

vocabulary! {
    /// How one attempt of a step ended on one host.
    pub enum StepStatus {
        Ok = "ok": "the command exited 0",
        Skipped = "skipped": "its skip_if guard exited 0: the step did not run and has nothing to undo",
        Failed = "failed": "non-zero exit, killed by a signal, or its command could not be resolved or sent",
        TimedOut = "timed_out": "its timeout expired and its process group was killed",
        Unknown = "unknown": "the connection was lost or a second Ctrl-C abandoned it: it may or may not have taken effect",
    }
}

impl StepStatus {
    /// The step is done and the host goes on (ok or skipped).
    pub fn is_success(self) -> bool {
        matches!(self, StepStatus::Ok | StepStatus::Skipped)
    }
}

vocabulary! {
    /// How one host ended in its wave.
    pub enum HostOutcome {
        Ok = "ok": "every step succeeded or was skipped, and every health check passed",
        Failed = "failed": "a step failed or timed out",
        Unhealthy = "unhealthy": "the steps succeeded but a health check did not pass",
        Unreachable = "unreachable": "could not connect (down, host key refused, authentication failed)",
        Interrupted = "interrupted": "stopped after its current step by Ctrl-C or the window closing",
        Unknown = "unknown": "a step was abandoned by a second Ctrl-C or a lost connection",
        NotStarted = "not_started": "never started: the budget was spent, or the run was stopping",
        Reverted = "reverted": "a step with `confirm` was not confirmed in time: the host's own timer ran its undo",
    }
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
                | HostOutcome::Reverted
        )
    }
}

vocabulary! {
    /// How a step's confirm-or-revert timer was settled on one host (`confirm_result`).
    pub enum ConfirmOutcome {
        Confirmed = "confirmed": "the step succeeded and sluice disarmed the timer over a new connection in time: the change stays",
        Disarmed = "disarmed": "sluice disarmed the timer without confirming (the step did not succeed, or the deadline passed and the timer had not fired): the failure policy decides about the undo",
        Reverted = "reverted": "the timer fired: the host ran the step's undo by itself (`undo_exit_code` says how it ended)",
        Unconfirmed = "unconfirmed": "the host answered neither before the deadline nor within `revert_timeout` after it: its timer should have reverted the step, unseen",
    }
}

vocabulary! {
    /// What keeps time for a confirm on the host (`confirm_armed`).
    pub enum ConfirmTimer {
        Systemd = "systemd": "a transient systemd timer (`systemd-run --on-active`): systemd is PID 1 and accepted it",
        Sleeper = "sleeper": "a detached process in a session of its own (`setsid nohup sh`) that sleeps, then fires",
    }
}

vocabulary! {
    /// What a rollback did to one host.
    pub enum RollbackOutcome {
        RolledBack = "rolled_back": "every undo of every step that ran succeeded (possibly none had an undo)",
        RollbackFailed = "rollback_failed": "an undo failed or could not be run: the host needs attention",
    }
}

vocabulary! {
    /// How one wave ended.
    pub enum WaveStatus {
        Ok = "ok": "every host ended ok, or failures stayed within the budget",
        Failed = "failed": "failures exceeded the budget",
        Interrupted = "interrupted": "Ctrl-C or the window closing stopped it",
        RolledBack = "rolled_back": "undone by a rollback",
        RollbackFailed = "rollback_failed": "a rollback touched it and at least one host's undo failed",
        NotStarted = "not_started": "it never started",
    }
}

vocabulary! {
    /// How a whole run ended: `run_finished`'s status, and what `sluice runs` shows for a finished
    /// run. Each maps to one documented exit code.
    pub enum RunStatus {
        Succeeded = "succeeded": "every wave ended ok with no host failed (exit 0)",
        Tolerated = "tolerated": "every wave passed, but hosts failed within their wave's budget, or a wave failed under `action: continue` (exit 6, or 0 with --allow-tolerated)",
        Failed = "failed": "a wave failed its budget and the run halted; nothing was undone (exit 1)",
        RolledBack = "rolled_back": "a wave failed its budget and was rolled back (exit 1)",
        RollbackFailed = "rollback_failed": "a rollback failed on at least one host: it needs attention (exit 3)",
        Aborted = "aborted": "Ctrl-C stopped the run (exit 4)",
        WindowClosed = "window_closed": "the maintenance window closed, or the next wave would not fit in it (exit 4)",
        OutsideWindow = "outside_window": "outside the maintenance window: nothing started (exit 4)",
        ApprovalRefused = "approval_refused": "an approval gate was refused (exit 4)",
        RecordIncomplete = "record_incomplete": "the hosts ended as for `succeeded` or `tolerated`, but the audit store could not record all of the run (a full disk, an I/O error): facts or its end are missing (exit 5)",
        StoreUnreachable = "store_unreachable": "the audit store (a database) could not be reached mid-run: no step started without its intent recorded, commands in flight finished, nothing was undone; the run is unfinished in the store and `sluice resume` carries it on once the store is back (exit 7; this status is never recorded)",
        OperatorNeeded = "operator_needed": "`--workers`: a worker that took a host over from a dead worker found steps whose outcome only the operator can settle: no new host or step started, commands in flight finished, nothing was undone; the run is unfinished in the store with its leases released, and `sluice resume RUN --workers --rerun-unknown` (or `--skip-unknown`) carries it on (exit 4; this status is never recorded)",
    }
}

vocabulary! {
    /// What a run runs.
    pub enum RunKind {
        Apply = "apply": "a change plan (`sluice apply`, carried on by `sluice resume`)",
        Exec = "exec": "one ad-hoc command on every targeted host (`sluice exec`)",
        Check = "check": "a read-only preview of a change plan (`sluice apply --check`): only `skip_if` guards and `check: true` steps run",
    }
}

// `vocabulary!` derives a fixed set of traits, so the default is written by hand.
#[allow(clippy::derivable_impls)]
impl Default for RunKind {
    fn default() -> Self {
        RunKind::Apply
    }
}

vocabulary! {
    /// Where a run stands, as `sluice runs` and `sluice show` report it: a finished run shows its
    /// [`RunStatus`] instead.
    pub enum RunProgress {
        Running = "running": "a live controller is running it",
        Interrupted = "interrupted": "not finished and no live controller holds its leases: `sluice resume` carries it on",
    }
}

vocabulary! {
    /// What the executor decided after a wave (`wave_decided`).
    pub enum WaveDecision {
        Continue = "continue": "the run goes on with the next wave",
        Rollback = "rollback": "the failure policy undoes the wave (and, with `rollback_scope: run`, earlier waves)",
        Halt = "halt": "`action: halt`: nothing is undone; later waves do not start",
        Stop = "stop": "the run is stopping and `action: continue` undoes nothing",
        Abandon = "abandon": "a second Ctrl-C: in-flight steps are UNKNOWN and nothing is undone",
        NotStarted = "not_started": "the wave did not start: it would not fit in the maintenance window",
    }
}

impl WaveDecision {
    /// The wave failed: its failure policy ran (or runs again on resume).
    pub fn is_failure(self) -> bool {
        matches!(self, WaveDecision::Rollback | WaveDecision::Halt)
    }
}

vocabulary! {
    /// A choice the executor made that changes what runs, outside a wave's verdict (`decision`).
    pub enum Decision {
        WindowIgnored = "window_ignored": "--ignore-window: the maintenance window is not enforced",
        OutsideWindow = "outside_window": "outside the maintenance window: nothing starts",
        WindowClosed = "window_closed": "the window closed: no new hosts start; in-flight steps finish",
        Interrupt = "interrupt": "first Ctrl-C: no new hosts start; in-flight steps finish",
        InterruptHard = "interrupt_hard": "second Ctrl-C: in-flight steps are abandoned (UNKNOWN)",
        BudgetSpent = "budget_spent": "failures exceed the wave's budget: no further host of the wave starts",
        ResumeWave = "resume_wave": "the wave had started before the resume: its pause and gate are not repeated",
        ResumeVerdict = "resume_verdict": "the wave's outcome was decided before the resume and is kept",
        StageRollback = "stage_rollback": "rollback_scope: run: a stage that finished is undone because a later stage failed",
        JournalFailed = "journal_failed": "a record could not be written to the audit trail",
        BreakGlass = "break_glass": "an override the policy guards (`--ignore-window`, `--rerun-unknown`, `unlock`, ...) was used with `--reason`",
        WaitingForWorker = "waiting_for_worker": "`--workers`: a host pinned to a worker label waits: no live worker has that label",
        OperatorNeeded = "operator_needed": "`--workers`: a worker that took over a host found steps whose outcome is unknown and that only the operator can settle: the run stops, unfinished, for `sluice resume`",
    }
}

vocabulary! {
    /// What a worker does with a host it claims (`host_claimed`, `sluice worker`).
    pub enum WorkerTask {
        Host = "host": "run the host's steps and health checks, as a wave does",
        Undo = "undo": "undo what ran on the host, newest first, as a rollback does",
        Once = "run_once": "run the host's `run_once` steps of the run_once pseudo-wave, in order, as one process does",
    }
}

vocabulary! {
    /// How a health check probes a host.
    pub enum ProbeKind {
        Run = "run": "a command on the host; passes on exit 0",
        Http = "http": "an HTTP GET from the controller; passes on the expected status",
        Tcp = "tcp": "a TCP connect from the controller",
    }
}

vocabulary! {
    /// How an approval was given.
    pub enum ApprovalHow {
        Command = "command": "`sluice approve` or `sluice approve-plan`",
        Terminal = "terminal": "typed at the prompt of the running `sluice apply` or `sluice resume`",
        Sluice = "sluice": "given by sluice itself: nobody could be asked, or the answer could not be recorded",
    }
}

vocabulary! {
    /// The operator's answer to steps whose outcome is unknown after a crash.
    pub enum UnknownChoice {
        Rerun = "rerun": "`--rerun-unknown`: run them again",
        Skip = "skip": "`--skip-unknown`: treat them as done",
    }
}

vocabulary! {
    /// How an ad-hoc command (`sluice exec`) ended on one host.
    pub enum ExecResult {
        Ok = "ok": "the command exited 0",
        Failed = "failed": "it ran and exited non-zero, was killed or timed out, or the transport failed",
        Unreachable = "unreachable": "the host could not be reached",
        Refused = "refused": "the host key or the authentication was refused: nothing was sent",
    }
}

vocabulary! {
    /// Why a host could not be reached or a command could not be carried, as the transport
    /// classifies it.
    pub enum ConnectErrorKind {
        Unreachable = "unreachable": "no TCP connection, or the handshake did not complete",
        HostKeyRefused = "host_key_refused": "the host key is unknown, changed or revoked: nothing was sent",
        AuthFailed = "auth_failed": "authentication failed, or the identity file is unusable",
        ConnectionLost = "connection_lost": "the connection dropped while a command ran: its outcome is unknown",
        BecomeFailed = "become_failed": "sudo refused or failed before the command started",
        TransportError = "transport_error": "anything else the transport could not do (spawn, protocol, upload)",
    }
}

impl ConnectErrorKind {
    /// The host could not be reached at all (counted as unreachable, not failed).
    pub fn is_unreachable(self) -> bool {
        matches!(
            self,
            ConnectErrorKind::Unreachable
                | ConnectErrorKind::HostKeyRefused
                | ConnectErrorKind::AuthFailed
        )
    }
}

vocabulary! {
    /// What `sluice apply --check` found a step would do on one host (`step_checked`).
    pub enum CheckVerdict {
        WouldRun = "would_run": "the step would run: it has no `skip_if` guard or its guard exited non-zero (a `check: true` step ran now and exited 0)",
        WouldSkip = "would_skip": "its `skip_if` guard exited 0: the step would be skipped",
        GuardUnevaluated = "guard_unevaluated": "it would run unless its guard skips it: the guard uses a value registered by a step that does not run in check mode (`depends_on`), so it was not evaluated",
        WouldFail = "would_fail": "a `check: true` step failed (non-zero exit, timeout) or its guard could not be run: the host would fail at this step",
        NotReached = "not_reached": "an earlier step of the host would fail: this one would not run",
    }
}

vocabulary! {
    /// The run events a `notify:` webhook can subscribe to; each is sent as the CloudEvents type
    /// `io.sluice.<event>`.
    pub enum NotifyEvent {
        GateWaiting = "gate_waiting": "a wave's approval gate is waiting for an answer (`approval_requested`)",
        WaveFailed = "wave_failed": "a wave failed its budget (`wave_decided` with status `failed`)",
        RollbackStarted = "rollback_started": "a rollback started (`rollback_started`)",
        RollbackFailed = "rollback_failed": "a rollback ended with at least one host whose undo failed (`rollback_finished` with `failed` > 0)",
        WindowClosing = "window_closing": "the maintenance window closed (no new hosts start) or the next wave would not fit in it",
        RunFinished = "run_finished": "the run ended, whatever its status (`run_finished`)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// serde, `Display` and `as_str` spell every value the same way.
    #[test]
    fn serde_spelling_is_the_declared_spelling() {
        fn check<T: Serialize + std::fmt::Display + Copy>(all: &[T]) {
            for v in all {
                let json = serde_json::to_string(v).unwrap();
                assert_eq!(json, format!("\"{v}\""));
            }
        }
        check(StepStatus::ALL);
        check(HostOutcome::ALL);
        check(RollbackOutcome::ALL);
        check(ConfirmOutcome::ALL);
        check(ConfirmTimer::ALL);
        check(WaveStatus::ALL);
        check(RunStatus::ALL);
        check(RunProgress::ALL);
        check(WaveDecision::ALL);
        check(Decision::ALL);
        check(ProbeKind::ALL);
        check(ApprovalHow::ALL);
        check(UnknownChoice::ALL);
        check(ConnectErrorKind::ALL);
        check(ExecResult::ALL);
        check(RunKind::ALL);
        check(CheckVerdict::ALL);
        check(NotifyEvent::ALL);
    }
}

/// Where a run stands: still going (or interrupted), or finished with a [`RunStatus`].
/// Serialized as the one word of either (`running`, `rolled_back`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunState {
    InProgress(RunProgress),
    Finished(RunStatus),
}

impl RunState {
    pub const RUNNING: RunState = RunState::InProgress(RunProgress::Running);
    pub const INTERRUPTED: RunState = RunState::InProgress(RunProgress::Interrupted);

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::InProgress(p) => p.as_str(),
            RunState::Finished(s) => s.as_str(),
        }
    }

    /// The state spelled `text`, if it is one.
    pub fn parse(text: &str) -> Option<RunState> {
        RunProgress::ALL
            .iter()
            .find(|p| p.as_str() == text)
            .map(|p| RunState::InProgress(*p))
            .or_else(|| {
                RunStatus::ALL
                    .iter()
                    .find(|s| s.as_str() == text)
                    .map(|s| RunState::Finished(*s))
            })
    }

    pub fn status(self) -> Option<RunStatus> {
        match self {
            RunState::Finished(s) => Some(s),
            RunState::InProgress(_) => None,
        }
    }
}

impl Default for RunState {
    fn default() -> Self {
        RunState::RUNNING
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RunState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RunState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        RunState::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("`{text}` is not a run status or progress"))
        })
    }
}

vocabulary! {
    /// Which command of a `backup:` entry a `backup_result` speaks of.
    pub enum BackupPhase {
        Run = "run": "the backup's `run` command: it failed, so `verify` was not run",
        Verify = "verify": "the backup's `verify` command, run after `run` succeeded",
    }
}
