//! Carrying on a run whose controller died: what the run did before, as the executor uses it.
//!
//! A [`ResumeState`] is read from the run's audit records by [`crate::prior`] (or built by hand
//! in tests) and passed as [`crate::RunOptions::resume`]. The executor then runs the plan from
//! the start as usual, except that:
//!
//! 1. a step with a recorded final result is not run again. Its outcome is replayed: a success
//!    restores the value it registered; a failure fails the host and counts against the wave's
//!    budget. Either way the step is known to rollback, which undoes it like a step of this
//!    process;
//! 2. a step marked to run again (an UNKNOWN step resolved to run, a failed attempt with retries
//!    left) runs from that attempt; its `skip_if` guard is evaluated as usual, and a guard that
//!    skips a step left UNKNOWN closes the step's intent with a result;
//! 3. a host whose steps were all done before and whose health checks were recorded as passed
//!    (or failed) keeps that verdict; otherwise its health checks, which are read-only, run again;
//! 4. a wave that had started does not pause or wait at its approval gate again, and a wave whose
//!    outcome was decided before (recorded, or implied by a later wave having started) keeps it:
//!    its hosts' replayed outcomes do not spend its budget again;
//! 5. an undo with a recorded result is not run again: a success is skipped, a failure leaves
//!    the host ROLLBACK_FAILED as it did then.
//!
//! Steps the state does not mention run as in a fresh run.

use std::collections::{HashMap, HashSet};

use sluice_model::{Capture, Decision, Fact, StepResult};
use sluice_plan::{HostPlan, HostStep, StepSpec};

use crate::host::{HostRun, millis};
use crate::report::{FailureDetail, StepStatus, WaveStatus};
use crate::run::RunContext;
use crate::wave::WaveRun;

/// What the run recorded about one (host, step) before the crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PriorStep {
    /// It finished: not run again.
    Done(DoneStep),
    /// Run it again, starting at `attempt`. `after_intent`: an intent of it has no result (it
    /// was UNKNOWN), so a guard that now skips it must record a result to close that intent.
    Again { attempt: u32, after_intent: bool },
}

/// A step that finished before the crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoneStep {
    pub ok: bool,
    /// The attempt that ended it.
    pub attempt: u32,
    /// How it ended (`exit 0`, `exit 3`, `marked done by the operator`).
    pub detail: String,
    /// The value it registered, when the trail holds it intact.
    pub registered: Option<String>,
}

impl DoneStep {
    pub fn ok(detail: &str) -> Self {
        DoneStep {
            ok: true,
            attempt: 1,
            detail: detail.to_string(),
            registered: None,
        }
    }

    pub fn failed(detail: &str) -> Self {
        DoneStep {
            ok: false,
            ..DoneStep::ok(detail)
        }
    }

    pub fn registered(mut self, value: &str) -> Self {
        self.registered = Some(value.to_string());
        self
    }
}

/// How a wave ended before the crash, as far as the trail tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaveVerdict {
    /// The run went on after it (a `wave_decided` that was not a rollback or halt, or a later
    /// wave started): it is not rolled back or halted now.
    WentOn,
    /// It failed (recorded `rollback` or `halt`): the failure policy runs again, skipping the
    /// undos already recorded.
    Failed,
}

/// A host's health checks as recorded before the crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthVerdict {
    Passed,
    /// `what` names the check that failed and how.
    Failed {
        what: String,
    },
}

/// Everything a resumed run knows about the run so far. Empty (the default) is a fresh run.
#[derive(Clone, Debug, Default)]
pub struct ResumeState {
    steps: HashMap<(String, String), PriorStep>,
    health: HashMap<String, HealthVerdict>,
    started: HashSet<String>,
    verdicts: HashMap<String, WaveVerdict>,
    undos: HashMap<(String, String), bool>,
    /// Undos that reboot, with an intent and no result, by (host, step): the boot id before.
    undo_reboots: HashMap<(String, String), String>,
    /// Reboots left UNKNOWN, by host: the step and the boot id from before the reboot.
    reboots: HashMap<String, RebootInFlight>,
    /// Backups with an `ok` result, by (host, backup id): not run again.
    backups: HashSet<(String, String)>,
    /// Confirms armed with no result recorded, by host: the step.
    confirms: HashMap<String, String>,
}

/// A reboot the crash left without a result: resume settles it by the boot id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebootInFlight {
    pub step: String,
    pub boot_id: String,
}

impl ResumeState {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
            && self.health.is_empty()
            && self.started.is_empty()
            && self.verdicts.is_empty()
            && self.undos.is_empty()
            && self.undo_reboots.is_empty()
            && self.reboots.is_empty()
            && self.backups.is_empty()
            && self.confirms.is_empty()
    }

    /// Notes that the undo of `step`, a reboot of `host`, has an intent recorded with `boot_id`
    /// and no result.
    pub fn undo_reboot_in_flight_on(&mut self, host: &str, step: &str, boot_id: &str) {
        let key = (host.to_string(), step.to_string());
        self.undo_reboots.insert(key, boot_id.to_string());
    }

    /// The boot id recorded before the crash for the undo of `step` on `host`, when that undo
    /// is a reboot left without a result.
    pub fn undo_reboot_in_flight(&self, host: &str, step: &str) -> Option<&str> {
        let key = (host.to_string(), step.to_string());
        self.undo_reboots.get(&key).map(String::as_str)
    }

    /// Notes that backup `id` of `host` completed before the resume.
    pub fn backup_done_on(&mut self, host: &str, id: &str) {
        self.backups.insert((host.to_string(), id.to_string()));
    }

    /// Whether backup `id` of `host` completed before the resume.
    pub fn backup_done(&self, host: &str, id: &str) -> bool {
        self.backups.contains(&(host.to_string(), id.to_string()))
    }

    /// Notes that `step` of `host` armed a confirm timer and no result of it is recorded.
    pub fn confirm_in_flight_on(&mut self, host: &str, step: &str) {
        self.confirms.insert(host.to_string(), step.to_string());
    }

    /// The step of `host` whose confirm the crash left unsettled, if any.
    pub fn confirm_in_flight(&self, host: &str) -> Option<&str> {
        self.confirms.get(host).map(String::as_str)
    }

    /// Notes that `step`, a reboot of `host`, has an intent recorded with `boot_id` and no result.
    pub fn reboot_in_flight_on(&mut self, host: &str, step: &str, boot_id: &str) {
        let reboot = RebootInFlight {
            step: step.to_string(),
            boot_id: boot_id.to_string(),
        };
        self.reboots.insert(host.to_string(), reboot);
    }

    /// The reboot of `host` the crash left without a result, if any.
    pub fn reboot_in_flight(&self, host: &str) -> Option<&RebootInFlight> {
        self.reboots.get(host)
    }

    pub fn set_step(&mut self, host: &str, step: &str, prior: PriorStep) {
        self.steps
            .insert((host.to_string(), step.to_string()), prior);
    }

    /// Builder form of [`ResumeState::set_step`] with a finished step.
    pub fn done(mut self, host: &str, step: &str, done: DoneStep) -> Self {
        self.set_step(host, step, PriorStep::Done(done));
        self
    }

    /// Builder form of [`ResumeState::set_step`] with a step to run again.
    pub fn again(mut self, host: &str, step: &str, attempt: u32, after_intent: bool) -> Self {
        let prior = PriorStep::Again {
            attempt,
            after_intent,
        };
        self.set_step(host, step, prior);
        self
    }

    /// The recorded health verdict of `host`.
    pub fn health(mut self, host: &str, verdict: HealthVerdict) -> Self {
        self.health.insert(host.to_string(), verdict);
        self
    }

    /// Wave `name` had started before the crash.
    pub fn started(mut self, name: &str) -> Self {
        self.started.insert(name.to_string());
        self
    }

    pub fn verdict(mut self, wave: &str, verdict: WaveVerdict) -> Self {
        self.verdicts.insert(wave.to_string(), verdict);
        self
    }

    /// The undo of `step` on `host` has a recorded result.
    pub fn undone(mut self, host: &str, step: &str, ok: bool) -> Self {
        self.undos.insert((host.to_string(), step.to_string()), ok);
        self
    }

    pub fn step(&self, host: &str, step: &str) -> Option<&PriorStep> {
        self.steps.get(&(host.to_string(), step.to_string()))
    }

    pub fn wave_started(&self, wave: &str) -> bool {
        self.started.contains(wave)
    }

    pub fn wave_verdict(&self, wave: &str) -> Option<WaveVerdict> {
        self.verdicts.get(wave).copied()
    }

    /// The attempt number a step starts at: 1 unless it is to run again from a later one.
    pub(crate) fn first_attempt(&self, host: &str, step: &str) -> u32 {
        match self.step(host, step) {
            Some(PriorStep::Again { attempt, .. }) => (*attempt).max(1),
            _ => 1,
        }
    }

    fn after_intent(&self, host: &str, step: &str) -> bool {
        matches!(
            self.step(host, step),
            Some(PriorStep::Again {
                after_intent: true,
                ..
            })
        )
    }

    /// The recorded health verdict of a host none of whose steps runs in this process.
    pub(crate) fn recorded_health(&self, plan: &HostPlan) -> Option<Result<(), FailureDetail>> {
        let all_done = plan
            .steps
            .iter()
            .all(|s| matches!(self.step(&plan.name, &s.id), Some(PriorStep::Done(d)) if d.ok));
        if !all_done {
            return None;
        }
        Some(match self.health.get(&plan.name)? {
            HealthVerdict::Passed => Ok(()),
            HealthVerdict::Failed { what } => Err(FailureDetail {
                what: "health".into(),
                detail: format!("recorded before the resume: {what}"),
                output: Vec::new(),
            }),
        })
    }
}

impl HostRun {
    /// Replays a step that finished before the crash: nothing is sent to the host.
    pub(crate) fn replay(
        &mut self,
        ctx: &RunContext,
        step: &HostStep,
        spec: &StepSpec,
        done: &DoneStep,
    ) -> StepStatus {
        // It ran (or may have), so a rollback must undo it like any step of this process.
        self.ran.push(step.clone());
        if let (true, Some(name), Some(value)) = (done.ok, &spec.register, &done.registered) {
            // A value that holds a secret is secret again in this process.
            let secret = ctx.secrets.found_in(value);
            if secret {
                ctx.taint(value);
            }
            self.values.register(name, value.clone(), secret);
        }
        let status = if done.ok {
            StepStatus::Ok
        } else {
            StepStatus::Failed
        };
        let detail = format!("recorded before the resume: {}", done.detail);
        // Shown, not recorded again: the record of how it ended is the one before the crash.
        ctx.events.emit(Fact::StepResult(StepResult {
            host: self.host.clone(),
            step: step.id.clone(),
            attempt: done.attempt,
            status,
            exit_code: None,
            detail: detail.clone(),
            duration_ms: 0,
            stdout: Capture::default(),
            stderr: Capture::default(),
            host_key_fingerprint: None,
        }));
        if !done.ok {
            self.failure = Some(FailureDetail {
                what: step.id.clone(),
                detail,
                output: Vec::new(),
            });
        }
        status
    }
}

/// A step its `skip_if` guard skipped: shown. A fresh run records nothing for it (a resume runs
/// the guard again), but a step left UNKNOWN by a crash has an intent to close, so then the
/// skip is recorded as its result.
pub(crate) async fn skipped(ctx: &RunContext, host: &str, step: &str, took: std::time::Duration) {
    let after_intent = ctx.resume.after_intent(host, step);
    let result = StepResult {
        host: host.to_string(),
        step: step.to_string(),
        attempt: if after_intent {
            ctx.resume.first_attempt(host, step)
        } else {
            0
        },
        status: StepStatus::Skipped,
        exit_code: None,
        detail: "skipped: skip_if exited 0".into(),
        duration_ms: millis(took),
        stdout: Capture::default(),
        stderr: Capture::default(),
        // Only the guard ran, on a connection this result does not describe.
        host_key_fingerprint: None,
    };
    if after_intent {
        ctx.note(Fact::StepResult(result)).await;
    } else {
        ctx.events.emit(Fact::StepResult(result));
    }
}

/// For a host that cannot be reached now, the steps that finished before the crash still ran:
/// rollback must know them (and will report the host ROLLBACK_FAILED, having no connection).
pub(crate) fn note_done_steps(ctx: &RunContext, run: &mut HostRun, plan: &HostPlan) {
    if run.done_steps_noted {
        return;
    }
    run.done_steps_noted = true;
    for step in &plan.steps {
        if let Some(PriorStep::Done(_)) = ctx.resume.step(&run.host, &step.id) {
            run.ran.push(step.clone());
        }
    }
}

/// Skips the pause and approval gate of a wave that had started before the crash. Returns
/// `true` when the wave is such a wave.
pub(crate) async fn wave_already_started(ctx: &RunContext, wave: &str) -> bool {
    if !ctx.resume.wave_started(wave) {
        return false;
    }
    ctx.decide(
        Decision::ResumeWave,
        Some(wave),
        "the wave had started before the resume: its pause and approval gate are not repeated",
    )
    .await;
    true
}

/// A wave whose outcome was decided before the crash keeps it, whatever the replay counted
/// (a host unreachable now, a health check that flaps). A stop requested now still stops it.
pub(crate) async fn keep_verdict(ctx: &RunContext, wave: &mut WaveRun) {
    let Some(verdict) = ctx.resume.wave_verdict(&wave.name) else {
        return;
    };
    // Under `action: continue` a failed wave already goes on, and reports as failed.
    let goes_on = ctx.artifact.failure.action == sluice_plan::FailureAction::Continue;
    let kept = match (verdict, wave.status) {
        (WaveVerdict::WentOn, WaveStatus::Failed) if !goes_on => WaveStatus::Ok,
        (WaveVerdict::Failed, WaveStatus::Ok) => WaveStatus::Failed,
        _ => return,
    };
    let reason = match verdict {
        WaveVerdict::WentOn => {
            "the run had gone on after this wave before the resume: it is not failed now"
        }
        WaveVerdict::Failed => {
            "this wave had failed before the resume: its failure policy runs again"
        }
    };
    ctx.decide(Decision::ResumeVerdict, Some(&wave.name), reason)
        .await;
    wave.status = kept;
}

/// What rollback does with an undo, given the trail.
pub(crate) enum UndoPrior {
    /// Not recorded: run it.
    Run,
    /// It succeeded before the crash: skip it.
    Done,
    /// It failed before the crash: the host stays ROLLBACK_FAILED.
    Failed(FailureDetail),
}

pub(crate) fn undo_prior(ctx: &RunContext, host: &str, step: &str) -> UndoPrior {
    match ctx.resume.undos.get(&(host.to_string(), step.to_string())) {
        None => UndoPrior::Run,
        Some(true) => UndoPrior::Done,
        Some(false) => UndoPrior::Failed(FailureDetail {
            what: format!("undo:{step}"),
            detail: "failed before the resume (recorded); not run again".into(),
            output: Vec::new(),
        }),
    }
}

/// A host to roll back that cannot be reached now, though steps ran on it before the crash.
pub(crate) fn unreachable_for_undo(host: &HostRun) -> FailureDetail {
    FailureDetail {
        what: "undo".into(),
        detail: format!(
            "no connection to {}: {} step(s) that ran before the resume could not be undone",
            host.host,
            host.ran.len()
        ),
        output: Vec::new(),
    }
}
