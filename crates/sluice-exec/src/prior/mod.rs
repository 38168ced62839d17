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
//!
//! The module reads the records in `trail.rs`, classifies the plan's steps and undos against
//! them in `steps.rs`, and reads health and wave verdicts in `verdicts.rs`.

mod steps;
mod trail;
mod verdicts;

use std::collections::BTreeSet;

use sluice_model::{Fact, UnknownChoice};
use sluice_plan::PlanArtifact;

use crate::resume::{PriorStep, ResumeState};
use trail::Trail;

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
        let trail = Trail::read(facts);
        let mut prior = Prior {
            state: ResumeState::default(),
            unknown: Vec::new(),
            choices: Vec::new(),
            done: 0,
            rerun_chosen: trail.rerun_chosen.clone(),
        };
        for (host, backup) in &trail.backed_up {
            prior.state.backup_done_on(host, backup);
        }
        for (host, (step, settled)) in &trail.confirms {
            if !settled {
                prior.state.confirm_in_flight_on(host, step);
            }
        }
        prior.classify_steps(artifact, scope, &trail.steps, &trail.waived);
        prior.classify_undos(artifact, &trail.undos, &trail.undo_boot_ids);
        prior.read_health(artifact, scope, &trail.health);
        if scope.is_none() {
            prior.read_waves(artifact, &trail.steps, trail.started, trail.decided);
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
