//! What an interrupted run's records say, fact by fact: the latest record of each (host, step)
//! and undo, health results, waves started and decided, backups, confirms, the operator's
//! choices. [`super::Prior`] then classifies the plan's steps against it.

use std::collections::{BTreeMap, BTreeSet};

use sluice_model::{Capture, Fact, UnknownChoice};

use super::UNDO_PREFIX;
use crate::resume::WaveVerdict;

/// What the trail says about one step.
#[derive(Clone, Debug)]
pub(super) enum Seen {
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

/// The run's records read in order; for each (host, step) the latest record counts.
#[derive(Default)]
pub(super) struct Trail {
    pub(super) steps: BTreeMap<(String, String), Seen>,
    /// Each undo's latest record: `None` an intent, `Some(ok)` a result.
    pub(super) undos: BTreeMap<(String, String), Option<bool>>,
    /// Each host's health results, (check, passed), in order.
    pub(super) health: BTreeMap<String, Vec<(String, bool)>>,
    pub(super) started: BTreeSet<String>,
    pub(super) decided: BTreeMap<String, WaveVerdict>,
    /// Registered values an operator chose to do without (`--skip-unknown`).
    pub(super) waived: BTreeSet<(String, String)>,
    pub(super) backed_up: BTreeSet<(String, String)>,
    /// The boot id an undo that reboots read before it was sent, by (host, step).
    pub(super) undo_boot_ids: BTreeMap<(String, String), String>,
    /// Confirms armed, by host, and whether their result is on record.
    pub(super) confirms: BTreeMap<String, (String, bool)>,
    pub(super) rerun_chosen: BTreeSet<(String, String)>,
}

impl Trail {
    /// Reads `facts`, the run's records in order.
    pub(super) fn read<'a>(facts: impl IntoIterator<Item = &'a Fact>) -> Trail {
        let mut trail = Trail::default();
        for fact in facts {
            trail.follow_choices(fact);
            trail.note(fact);
        }
        trail
    }

    /// Which UNKNOWN steps an operator chose to run again, with no intent of them since.
    fn follow_choices(&mut self, fact: &Fact) {
        match fact {
            Fact::StepIntent(i) => {
                self.rerun_chosen.remove(&(i.host.clone(), i.step.clone()));
            }
            Fact::UndoIntent(i) => {
                self.rerun_chosen
                    .remove(&(i.host.clone(), format!("{UNDO_PREFIX}{}", i.step)));
            }
            Fact::UnknownStepsResolved(c) if c.choice == UnknownChoice::Rerun => {
                for r in &c.steps {
                    self.rerun_chosen.insert((r.host.clone(), r.step.clone()));
                }
            }
            _ => {}
        }
    }

    /// What `fact` says of a step, an undo, a check, a wave, a backup or a confirm.
    fn note(&mut self, fact: &Fact) {
        match fact {
            Fact::BackupResult(b) if b.status == sluice_model::StepStatus::Ok => {
                self.backed_up.insert((b.host.clone(), b.backup.clone()));
            }
            Fact::ConfirmArmed(a) => {
                self.confirms
                    .insert(a.host.clone(), (a.step.clone(), false));
            }
            Fact::ConfirmResult(r) => {
                self.confirms.insert(r.host.clone(), (r.step.clone(), true));
            }
            Fact::UndoIntent(i) => {
                let key = (i.host.clone(), i.step.clone());
                match &i.boot_id {
                    Some(boot_id) => self.undo_boot_ids.insert(key.clone(), boot_id.clone()),
                    None => self.undo_boot_ids.remove(&key),
                };
                self.undos.insert(key, None);
            }
            Fact::StepIntent(i) => {
                let key = (i.host.clone(), i.step.clone());
                let seen = Seen::Intent {
                    attempt: i.attempt,
                    boot_id: i.boot_id.clone(),
                };
                self.steps.insert(key, seen);
            }
            Fact::StepResult(r) => {
                let seen = Seen::Result {
                    ok: r.status.is_success(),
                    attempt: r.attempt,
                    detail: r.detail.clone(),
                    stdout: r.stdout.clone(),
                };
                self.steps.insert((r.host.clone(), r.step.clone()), seen);
            }
            Fact::UndoResult(r) => {
                let ok = r.status.is_success();
                self.undos
                    .insert((r.host.clone(), r.step.clone()), Some(ok));
            }
            Fact::UnknownStepsResolved(c) if c.choice == UnknownChoice::Skip => {
                for sluice_model::StepRef { host, step } in &c.steps {
                    if let Some(undo) = step.strip_prefix(UNDO_PREFIX) {
                        let key = (host.clone(), undo.to_string());
                        if let Some(seen @ None) = self.undos.get_mut(&key) {
                            *seen = Some(true);
                        }
                        continue;
                    }
                    let key = (host.clone(), step.clone());
                    match self.steps.get(&key) {
                        Some(Seen::Intent { attempt, .. }) => {
                            let attempt = *attempt;
                            self.steps.insert(key, Seen::Skipped { attempt });
                        }
                        // A registered value the operator chose to do without.
                        Some(Seen::Result { .. }) => {
                            self.waived.insert(key);
                        }
                        _ => {}
                    }
                }
            }
            Fact::HealthResult(h) => {
                let checks = self.health.entry(h.host.clone()).or_default();
                checks.push((h.check.clone(), h.ok));
            }
            Fact::WaveStarted(w) => {
                self.started.insert(w.wave.clone());
            }
            Fact::WaveDecided(w) => {
                let verdict = if w.decision.is_failure() {
                    WaveVerdict::Failed
                } else {
                    WaveVerdict::WentOn
                };
                self.decided.insert(w.wave.clone(), verdict);
            }
            _ => {}
        }
    }
}
