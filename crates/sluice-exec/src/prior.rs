//! Reading the audit records of an interrupted run into a [`ResumeState`], and sorting out the
//! steps whose outcome nobody knows.
//!
//! The records are read in order; for each (host, step) the latest record counts (a new intent
//! supersedes an earlier result). Then each step of the plan is one of:
//!
//! - **done**: its latest record is a result. A success is final; a failure is final unless the
//!   step has retries left after that attempt, in which case the step runs again from the next
//!   attempt, as the plan would have done had the controller lived.
//! - **UNKNOWN**: its latest record is an intent. It may or may not have taken effect. If it has
//!   a `skip_if` guard, the guard decides; if it is `idempotent: true`, it runs again; otherwise
//!   the operator chooses (`--rerun-unknown`, `--skip-unknown`) and the choice is recorded.
//! - **not started**: no record; it runs as in a fresh run (a step its guard skipped leaves no
//!   record either, so its guard runs again).
//!
//! A succeeded step that registered a value has that value restored from its captured stdout,
//! but only when the capture is provably the whole, unmasked output
//! ([`sluice_model::Capture::whole_text`]). If it is not, and a step still to run (or an undo)
//! needs the value, the registering step needs the operator's choice too: `--rerun-unknown` runs
//! it again to register the value anew; `--skip-unknown` leaves the value missing, and a step
//! that needs it then fails naming it.
//!
//! Undos are tracked apart: an undo with a result is not run again; an undo with an intent and
//! no result is UNKNOWN like a step (named `undo:STEP` in lists and in the recorded choice).

use std::collections::{BTreeMap, BTreeSet};

use sluice_model::{Capture, Fact, UnknownChoice};
use sluice_plan::{HostStep, PlanArtifact};

use crate::resume::{DoneStep, HealthVerdict, PriorStep, ResumeState, WaveVerdict};
use crate::run::RUN_ONCE_WAVE;

/// The prefix that names an undo in lists of UNKNOWN steps and in the recorded choice.
pub const UNDO_PREFIX: &str = "undo:";

/// A step (or undo) whose outcome is not known, and what resume does about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownStep {
    pub host: String,
    /// The step id, or `undo:ID` for an undo.
    pub step: String,
    pub handling: Handling,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handling {
    /// Its `skip_if` guard runs again and decides.
    Guard,
    /// `idempotent: true`: it runs again.
    Idempotent,
    /// A reboot: resume waits for the host and compares its boot id with the recorded one.
    Reboot,
    /// The operator must choose; `why` says what is not known.
    Operator { why: String },
}

/// What the trail says about one step.
#[derive(Clone, Debug)]
enum Seen {
    Intent {
        attempt: u32,
        /// A reboot's boot id from before the reboot.
        boot_id: Option<String>,
    },
    Result {
        ok: bool,
        attempt: u32,
        detail: String,
        stdout: Capture,
    },
    /// An UNKNOWN step an earlier resume's operator marked done.
    Skipped { attempt: u32 },
}

/// An UNKNOWN step the operator decides, and what each choice makes of it.
#[derive(Debug)]
struct Choice {
    host: String,
    step: String,
    on_rerun: PriorStep,
    /// `None`: nothing to set (the step's value is waived).
    on_skip: Option<PriorStep>,
}

/// The run so far, read from its records.
#[derive(Debug)]
pub struct Prior {
    state: ResumeState,
    unknown: Vec<UnknownStep>,
    /// Operator-handled entries: how each is resolved by either choice.
    choices: Vec<Choice>,
    done: usize,
    /// (host, step or `undo:STEP`) an operator chose to run again (`--rerun-unknown`,
    /// recorded), with no intent of it recorded since.
    rerun_chosen: BTreeSet<(String, String)>,
}

impl Prior {
    /// Reads the facts of the run's records, in order, against the run's plan.
    pub fn read<'a>(artifact: &PlanArtifact, facts: impl IntoIterator<Item = &'a Fact>) -> Prior {
        Self::read_scoped(artifact, None, facts)
    }

    /// As [`Prior::read`], for one host only (a worker that claimed it): `facts` are that
    /// host's records, the records of the hosts of `run_once` steps and the operator's
    /// resolutions; only its steps, undos and checks and the `run_once` steps are classified,
    /// and waves are left to the coordinator. The work is the host's, not the
    /// plan's: a claim costs the same in a run of 60 hosts and of 100,000.
    pub fn read_host<'a>(
        artifact: &PlanArtifact,
        host: &str,
        facts: impl IntoIterator<Item = &'a Fact>,
    ) -> Prior {
        Self::read_scoped(artifact, Some(host), facts)
    }

    fn read_scoped<'a>(
        artifact: &PlanArtifact,
        scope: Option<&str>,
        facts: impl IntoIterator<Item = &'a Fact>,
    ) -> Prior {
        let mut steps: BTreeMap<(String, String), Seen> = BTreeMap::new();
        let mut undos: BTreeMap<(String, String), Option<bool>> = BTreeMap::new();
        let mut health: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
        let mut started: BTreeSet<String> = BTreeSet::new();
        let mut decided: BTreeMap<String, WaveVerdict> = BTreeMap::new();
        let mut waived: BTreeSet<(String, String)> = BTreeSet::new();
        let mut backed_up: BTreeSet<(String, String)> = BTreeSet::new();
        // The boot id an undo that reboots read before it was sent, by (host, step).
        let mut undo_boot_ids: BTreeMap<(String, String), String> = BTreeMap::new();
        // Confirms armed, by host, and whether their result is on record.
        let mut confirms: BTreeMap<String, (String, bool)> = BTreeMap::new();
        let mut rerun_chosen: BTreeSet<(String, String)> = BTreeSet::new();
        for fact in facts {
            match fact {
                Fact::StepIntent(i) => {
                    rerun_chosen.remove(&(i.host.clone(), i.step.clone()));
                }
                Fact::UndoIntent(i) => {
                    rerun_chosen.remove(&(i.host.clone(), format!("{UNDO_PREFIX}{}", i.step)));
                }
                Fact::UnknownStepsResolved(c) if c.choice == UnknownChoice::Rerun => {
                    for r in &c.steps {
                        rerun_chosen.insert((r.host.clone(), r.step.clone()));
                    }
                }
                _ => {}
            }
            match fact {
                Fact::BackupResult(b) if b.status == sluice_model::StepStatus::Ok => {
                    backed_up.insert((b.host.clone(), b.backup.clone()));
                }
                Fact::ConfirmArmed(a) => {
                    confirms.insert(a.host.clone(), (a.step.clone(), false));
                }
                Fact::ConfirmResult(r) => {
                    confirms.insert(r.host.clone(), (r.step.clone(), true));
                }
                Fact::UndoIntent(i) => {
                    let key = (i.host.clone(), i.step.clone());
                    match &i.boot_id {
                        Some(boot_id) => undo_boot_ids.insert(key.clone(), boot_id.clone()),
                        None => undo_boot_ids.remove(&key),
                    };
                    undos.insert(key, None);
                }
                Fact::StepIntent(i) => {
                    let key = (i.host.clone(), i.step.clone());
                    let seen = Seen::Intent {
                        attempt: i.attempt,
                        boot_id: i.boot_id.clone(),
                    };
                    steps.insert(key, seen);
                }
                Fact::StepResult(r) => {
                    let seen = Seen::Result {
                        ok: r.status.is_success(),
                        attempt: r.attempt,
                        detail: r.detail.clone(),
                        stdout: r.stdout.clone(),
                    };
                    steps.insert((r.host.clone(), r.step.clone()), seen);
                }
                Fact::UndoResult(r) => {
                    let ok = r.status.is_success();
                    undos.insert((r.host.clone(), r.step.clone()), Some(ok));
                }
                Fact::UnknownStepsResolved(c) if c.choice == UnknownChoice::Skip => {
                    for sluice_model::StepRef { host, step } in &c.steps {
                        if let Some(undo) = step.strip_prefix(UNDO_PREFIX) {
                            let key = (host.clone(), undo.to_string());
                            if let Some(seen @ None) = undos.get_mut(&key) {
                                *seen = Some(true);
                            }
                            continue;
                        }
                        let key = (host.clone(), step.clone());
                        match steps.get(&key) {
                            Some(Seen::Intent { attempt, .. }) => {
                                let attempt = *attempt;
                                steps.insert(key, Seen::Skipped { attempt });
                            }
                            // A registered value the operator chose to do without.
                            Some(Seen::Result { .. }) => {
                                waived.insert(key);
                            }
                            _ => {}
                        }
                    }
                }
                Fact::HealthResult(h) => {
                    let checks = health.entry(h.host.clone()).or_default();
                    checks.push((h.check.clone(), h.ok));
                }
                Fact::WaveStarted(w) => {
                    started.insert(w.wave.clone());
                }
                Fact::WaveDecided(w) => {
                    let verdict = if w.decision.is_failure() {
                        WaveVerdict::Failed
                    } else {
                        WaveVerdict::WentOn
                    };
                    decided.insert(w.wave.clone(), verdict);
                }
                _ => {}
            }
        }
        let mut prior = Prior {
            state: ResumeState::default(),
            unknown: Vec::new(),
            choices: Vec::new(),
            done: 0,
            rerun_chosen,
        };
        for (host, backup) in &backed_up {
            prior.state.backup_done_on(host, backup);
        }
        for (host, (step, settled)) in confirms {
            if !settled {
                prior.state.confirm_in_flight_on(&host, &step);
            }
        }
        prior.classify_steps(artifact, scope, &steps, &waived);
        prior.classify_undos(artifact, &undos, &undo_boot_ids);
        prior.read_health(artifact, scope, &health);
        if scope.is_none() {
            prior.read_waves(artifact, &steps, started, decided);
        }
        prior
    }

    /// Every UNKNOWN step, with how it is handled.
    pub fn unknown(&self) -> &[UnknownStep] {
        &self.unknown
    }

    /// The UNKNOWN steps that wait for the operator's choice.
    pub fn needs_choice(&self) -> Vec<&UnknownStep> {
        self.unknown
            .iter()
            .filter(|u| matches!(u.handling, Handling::Operator { .. }))
            .collect()
    }

    /// Leaves the UNKNOWN steps of hosts that live workers hold to those workers: they are in
    /// flight there, not unknown, and the resumed run waits for the workers' results instead
    /// of asking the operator about them. `held` names each host and whether what is held is
    /// its undo (`undo:STEP` entries) or its steps.
    pub fn in_flight_on_workers(&mut self, held: &[(String, bool)]) {
        let is_held = |host: &str, step: &str| {
            held.iter()
                .any(|(h, undo)| h == host && *undo == step.starts_with(UNDO_PREFIX))
        };
        self.unknown.retain(|u| !is_held(&u.host, &u.step));
        self.choices.retain(|c| !is_held(&c.host, &c.step));
    }

    /// Whether an operator chose to run `step` of `host` (`undo:STEP` for an undo) again
    /// after its latest intent (`--rerun-unknown`, recorded): a worker that takes the host over
    /// runs it again instead of asking once more.
    pub fn rerun_chosen(&self, host: &str, step: &str) -> bool {
        self.rerun_chosen
            .contains(&(host.to_string(), step.to_string()))
    }

    /// Steps with a final recorded result (or marked done by an operator).
    pub fn done_steps(&self) -> usize {
        self.done
    }

    /// The state to resume with, once the operator's `choice` (if any is needed) is applied.
    /// Without a choice while one is needed, returns the steps that need it.
    pub fn resolve(self, choice: Option<UnknownChoice>) -> Result<ResumeState, Vec<UnknownStep>> {
        let mut state = self.state;
        match choice {
            None if !self.choices.is_empty() => {
                return Err(self
                    .unknown
                    .into_iter()
                    .filter(|u| matches!(u.handling, Handling::Operator { .. }))
                    .collect());
            }
            None => {}
            Some(UnknownChoice::Rerun) => {
                for c in self.choices {
                    state.set_step(&c.host, &c.step, c.on_rerun);
                }
            }
            Some(UnknownChoice::Skip) => {
                for c in self.choices {
                    match (c.step.strip_prefix(UNDO_PREFIX), c.on_skip) {
                        (Some(undo), _) => state = state.undone(&c.host, undo, true),
                        (None, Some(prior)) => state.set_step(&c.host, &c.step, prior),
                        (None, None) => {}
                    }
                }
            }
        }
        Ok(state)
    }

    fn classify_steps(
        &mut self,
        artifact: &PlanArtifact,
        scope: Option<&str>,
        steps: &BTreeMap<(String, String), Seen>,
        waived: &BTreeSet<(String, String)>,
    ) {
        let planned = match scope {
            Some(host) => scoped_steps(artifact, host),
            None => host_steps(artifact),
        };
        for (host, step) in planned {
            let key = (host.to_string(), step.id.clone());
            let Some(seen) = steps.get(&key) else {
                continue;
            };
            let spec = artifact.step(&step.id);
            let retries = spec.map_or(0, |s| s.retries);
            match seen {
                Seen::Result {
                    ok: false, attempt, ..
                } if *attempt >= 1 && *attempt <= retries => {
                    // The controller died between attempts: carry on with the next one.
                    let prior = PriorStep::Again {
                        attempt: attempt + 1,
                        after_intent: false,
                    };
                    self.state.set_step(host, &step.id, prior);
                }
                Seen::Result {
                    ok,
                    attempt,
                    detail,
                    stdout,
                } => {
                    self.done += 1;
                    let register = spec.and_then(|s| s.register.as_ref()).filter(|_| *ok);
                    let registered = register
                        .and_then(|_| stdout.whole_text())
                        .map(|t| t.trim().to_string());
                    let done = DoneStep {
                        ok: *ok,
                        attempt: *attempt,
                        detail: detail.clone(),
                        registered,
                    };
                    let lost = register.filter(|_| done.registered.is_none());
                    let needed_by = lost
                        .filter(|_| !waived.contains(&key))
                        .and_then(|name| needed_by(artifact, host, name, steps));
                    self.state.set_step(host, &step.id, PriorStep::Done(done));
                    if let (Some(name), Some(user)) = (lost, needed_by) {
                        self.ask(
                            host,
                            &step.id,
                            format!(
                                "it succeeded, but the value it registered (`{name}`) is not in the audit trail intact (output cut, or it held a secret), and {user} needs it"
                            ),
                            PriorStep::Again {
                                attempt: 1,
                                after_intent: false,
                            },
                            None,
                        );
                    }
                }
                Seen::Skipped { attempt } => {
                    self.done += 1;
                    let done = skipped_by_operator(*attempt);
                    self.state.set_step(host, &step.id, PriorStep::Done(done));
                }
                Seen::Intent { attempt, boot_id } => {
                    let again = PriorStep::Again {
                        attempt: *attempt,
                        after_intent: true,
                    };
                    let reboot = spec.is_some_and(|s| s.reboot.is_some());
                    let handling = if let (true, Some(boot_id)) = (reboot, boot_id) {
                        self.state.reboot_in_flight_on(host, &step.id, boot_id);
                        Handling::Reboot
                    } else if step.skip_if.is_some() {
                        Handling::Guard
                    } else if spec.is_some_and(|s| s.idempotent) {
                        Handling::Idempotent
                    } else {
                        self.ask(
                            host,
                            &step.id,
                            "it was started and has no result".into(),
                            again,
                            Some(PriorStep::Done(skipped_by_operator(*attempt))),
                        );
                        continue;
                    };
                    self.state.set_step(host, &step.id, again);
                    self.unknown.push(UnknownStep {
                        host: host.to_string(),
                        step: step.id.clone(),
                        handling,
                    });
                }
            }
        }
    }

    fn classify_undos(
        &mut self,
        artifact: &PlanArtifact,
        undos: &BTreeMap<(String, String), Option<bool>>,
        undo_boot_ids: &BTreeMap<(String, String), String>,
    ) {
        for ((host, step), result) in undos {
            let key = (host.clone(), step.clone());
            let rebooting = artifact.step(step).is_some_and(|s| s.reboot.is_some());
            match result {
                Some(ok) => self.state = std::mem::take(&mut self.state).undone(host, step, *ok),
                // An undo that reboots is settled by the boot id, as a reboot step is: the
                // rollback waits for a boot id other than this one instead of rebooting again.
                None if rebooting && undo_boot_ids.contains_key(&key) => {
                    if let Some(boot_id) = undo_boot_ids.get(&key) {
                        self.state.undo_reboot_in_flight_on(host, step, boot_id);
                    }
                    self.unknown.push(UnknownStep {
                        host: host.clone(),
                        step: format!("{UNDO_PREFIX}{step}"),
                        handling: Handling::Reboot,
                    });
                }
                None if artifact.step(step).is_some_and(|s| s.idempotent) => {
                    self.unknown.push(UnknownStep {
                        host: host.clone(),
                        step: format!("{UNDO_PREFIX}{step}"),
                        handling: Handling::Idempotent,
                    });
                }
                None => self.ask(
                    host,
                    &format!("{UNDO_PREFIX}{step}"),
                    "this undo was started and has no result".into(),
                    // Not marking the undo is what runs it again.
                    PriorStep::Again {
                        attempt: 1,
                        after_intent: true,
                    },
                    None,
                ),
            }
        }
    }

    /// Health verdicts of hosts whose checks were recorded: passed when every check's latest
    /// result passed; failed when a check flapped or failed more rounds than the policy allows;
    /// otherwise unknown (the checks run again).
    fn read_health(
        &mut self,
        artifact: &PlanArtifact,
        scope: Option<&str>,
        health: &BTreeMap<String, Vec<(String, bool)>>,
    ) {
        let plans: Vec<&sluice_plan::HostPlan> = match scope {
            Some(host) => artifact.host(host).into_iter().collect(),
            None => artifact.hosts.iter().collect(),
        };
        for plan in plans {
            let Some(results) = health.get(&plan.name) else {
                continue;
            };
            let mut verdict = Some(HealthVerdict::Passed);
            for check in &plan.health {
                let runs: Vec<bool> = results
                    .iter()
                    .filter(|(name, _)| *name == check.name)
                    .map(|(_, ok)| *ok)
                    .collect();
                let flapped = runs.windows(2).any(|w| w[0] && !w[1]);
                let failures = runs.iter().filter(|ok| !**ok).count();
                if flapped || failures > artifact.health.retries as usize {
                    verdict = Some(HealthVerdict::Failed {
                        what: format!("health check {} failed", check.name),
                    });
                    break;
                }
                if runs.last() != Some(&true) {
                    verdict = None;
                }
            }
            if let Some(verdict) = verdict {
                self.state = std::mem::take(&mut self.state).health(&plan.name, verdict);
            }
        }
    }

    /// Waves that started (recorded, or a host of theirs has a step record) skip their gate; a
    /// wave before the last started one went on; recorded decisions stand.
    fn read_waves(
        &mut self,
        artifact: &PlanArtifact,
        steps: &BTreeMap<(String, String), Seen>,
        mut started: BTreeSet<String>,
        decided: BTreeMap<String, WaveVerdict>,
    ) {
        // A host in several stages started a wave of a stage only with a step of that stage.
        let stage_of = |step: &str| artifact.step(step).and_then(|s| s.stage.clone());
        let touched: BTreeSet<(&str, Option<String>)> = steps
            .keys()
            .map(|(h, s)| (h.as_str(), stage_of(s)))
            .collect();
        for wave in &artifact.waves {
            if wave
                .hosts
                .iter()
                .any(|h| touched.contains(&(h.as_str(), wave.stage.clone())))
            {
                started.insert(wave.name.clone());
            }
        }
        let last = artifact
            .waves
            .iter()
            .rposition(|w| started.contains(&w.name));
        let mut state = std::mem::take(&mut self.state);
        if last.is_some() {
            state = state.verdict(RUN_ONCE_WAVE, WaveVerdict::WentOn);
        }
        // Each stage that started a wave went on past its run_once steps.
        for stage in &artifact.stages {
            let of_stage = |w: &&sluice_plan::WavePlan| w.stage.as_deref() == Some(&stage.name);
            if artifact
                .waves
                .iter()
                .filter(of_stage)
                .any(|w| started.contains(&w.name))
            {
                let name = format!("{}/{RUN_ONCE_WAVE}", stage.name);
                state = state.verdict(&name, WaveVerdict::WentOn);
            }
        }
        for (index, wave) in artifact.waves.iter().enumerate() {
            if started.contains(&wave.name) {
                state = state.started(&wave.name);
            }
            if let Some(verdict) = decided.get(&wave.name) {
                state = state.verdict(&wave.name, *verdict);
            } else if last.is_some_and(|last| index < last) {
                state = state.verdict(&wave.name, WaveVerdict::WentOn);
            }
        }
        self.state = state;
    }

    fn ask(
        &mut self,
        host: &str,
        step: &str,
        why: String,
        on_rerun: PriorStep,
        on_skip: Option<PriorStep>,
    ) {
        self.unknown.push(UnknownStep {
            host: host.to_string(),
            step: step.to_string(),
            handling: Handling::Operator { why },
        });
        self.choices.push(Choice {
            host: host.to_string(),
            step: step.to_string(),
            on_rerun,
            on_skip,
        });
    }
}

/// Every (host, step) of the plan: `run_once` steps on their host, then each host's steps.
fn host_steps(artifact: &PlanArtifact) -> Vec<(&str, &HostStep)> {
    let once = artifact.run_once.iter().map(|o| (o.host.as_str(), &o.step));
    let each = artifact
        .hosts
        .iter()
        .flat_map(|h| h.steps.iter().map(move |s| (h.name.as_str(), s)));
    once.chain(each).collect()
}

/// What a read for one host classifies: every `run_once` step (whatever its host: a later
/// stage's host may use the values they registered; there are few), then the host's own steps.
fn scoped_steps<'a>(artifact: &'a PlanArtifact, host: &'a str) -> Vec<(&'a str, &'a HostStep)> {
    let once = artifact.run_once.iter().map(|o| (o.host.as_str(), &o.step));
    once.chain(own_steps(artifact, host)).collect()
}

/// The steps of `host` itself, not its `run_once` steps.
fn own_steps<'a>(
    artifact: &'a PlanArtifact,
    host: &'a str,
) -> impl Iterator<Item = (&'a str, &'a HostStep)> {
    artifact
        .host(host)
        .into_iter()
        .flat_map(|h| h.steps.iter().map(move |s| (h.name.as_str(), s)))
}

/// The (host, step) pairs of one host: its `run_once` steps, then its own.
fn steps_of<'a>(artifact: &'a PlanArtifact, host: &'a str) -> Vec<(&'a str, &'a HostStep)> {
    let once = artifact
        .run_once
        .iter()
        .filter(|o| o.host == host)
        .map(|o| (o.host.as_str(), &o.step));
    once.chain(own_steps(artifact, host)).collect()
}

/// The first step of `host` that still needs registered value `name`: one that has not
/// finished and uses it in `run` or `skip_if`, or any whose undo uses it.
fn needed_by(
    artifact: &PlanArtifact,
    host: &str,
    name: &str,
    steps: &BTreeMap<(String, String), Seen>,
) -> Option<String> {
    let uses = |cmd: Option<&sluice_plan::RenderedCommand>| {
        cmd.is_some_and(|c| c.registered_names().any(|n| n == name))
    };
    steps_of(artifact, host).into_iter().find_map(|(_, step)| {
        let finished = matches!(
            steps.get(&(host.to_string(), step.id.clone())),
            Some(Seen::Result { ok: true, .. } | Seen::Skipped { .. })
        );
        if uses(step.undo.as_ref()) {
            Some(format!("the undo of step `{}`", step.id))
        } else if !finished && (uses(Some(&step.run)) || uses(step.skip_if.as_ref())) {
            Some(format!("step `{}`", step.id))
        } else {
            None
        }
    })
}

fn skipped_by_operator(attempt: u32) -> DoneStep {
    DoneStep {
        ok: true,
        attempt,
        detail: "outcome unknown; marked done by the operator (--skip-unknown)".into(),
        registered: None,
    }
}
