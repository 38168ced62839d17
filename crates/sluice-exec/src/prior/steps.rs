//! Classifying a plan's steps and undos against what the records say of them
//! ([`super::trail::Trail`]): done, UNKNOWN (and how each is handled), or still to run.

use std::collections::{BTreeMap, BTreeSet};

use sluice_plan::{HostStep, PlanArtifact};

use super::trail::Seen;
use super::{Handling, Prior, UNDO_PREFIX, UnknownStep};
use crate::resume::{DoneStep, PriorStep};

impl Prior {
    pub(super) fn classify_steps(
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

    pub(super) fn classify_undos(
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
