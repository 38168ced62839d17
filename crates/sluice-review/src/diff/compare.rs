//! The comparisons behind [`super::PlanDiff`], one function per part of the plan.

use std::collections::{BTreeSet, HashMap};

use sluice_plan::PlanArtifact;
use sluice_plan::schema::format_duration_ms as duration;

use super::*;
use crate::hosts::HostOrder;
use crate::model::{CommandView, Review, StepView};
use crate::phrases;

/// `Some(change)` when the two values differ.
fn field(name: &str, old: Option<String>, new: Option<String>) -> Option<FieldChange> {
    (old != new).then(|| FieldChange {
        field: name.to_string(),
        old,
        new,
    })
}

fn push(out: &mut Vec<FieldChange>, name: &str, old: Option<String>, new: Option<String>) {
    out.extend(field(name, old, new));
}

pub fn summary(old: &Review, new: &Review) -> Vec<FieldChange> {
    let (o, n) = (&old.summary, &new.summary);
    let secrets = |r: &Review| {
        let list: Vec<String> = r
            .summary
            .secrets
            .iter()
            .map(|s| format!("{} ({})", s.name, s.from))
            .collect();
        (!list.is_empty()).then(|| list.join(", "))
    };
    let mut out = Vec::new();
    push(&mut out, "name", Some(o.name.clone()), Some(n.name.clone()));
    push(
        &mut out,
        "description",
        o.description.clone(),
        n.description.clone(),
    );
    push(&mut out, "ticket", o.ticket.clone(), n.ticket.clone());
    push(
        &mut out,
        "inventory",
        o.inventory.clone(),
        n.inventory.clone(),
    );
    push(
        &mut out,
        "environment",
        o.environment.clone(),
        n.environment.clone(),
    );
    let window = |r: &Review| r.summary.window.as_ref().map(|w| w.declared.clone());
    push(&mut out, "window", window(old), window(new));
    push(&mut out, "secrets", secrets(old), secrets(new));
    push(
        &mut out,
        "become_password",
        o.become_password.clone(),
        n.become_password.clone(),
    );
    out
}

fn wave_of(plan: &PlanArtifact) -> HashMap<&str, &str> {
    plan.waves
        .iter()
        .flat_map(|w| w.hosts.iter().map(move |h| (h.as_str(), w.name.as_str())))
        .collect()
}

/// Hosts added, removed, moved; their changed settings, grouped by change (a plan variable
/// changed on every host is one entry).
pub fn hosts(old: &PlanArtifact, new: &PlanArtifact) -> HostChanges {
    let (old_wave, new_wave) = (wave_of(old), wave_of(new));
    let mut out = HostChanges::default();
    // Where each distinct change is in `out.changed`: a change on every host is one lookup per
    // host, not a scan.
    let mut seen: HashMap<FieldChange, usize> = HashMap::new();
    for h in &new.hosts {
        let wave = new_wave.get(h.name.as_str()).copied().unwrap_or("");
        let Some(before) = old.host(&h.name) else {
            out.added.push(HostInWave {
                host: h.name.clone(),
                wave: wave.to_string(),
            });
            continue;
        };
        let was = old_wave.get(h.name.as_str()).copied().unwrap_or("");
        if was != wave {
            out.moved.push(HostMove {
                host: h.name.clone(),
                from: was.to_string(),
                to: wave.to_string(),
            });
        }
        for change in host_fields(before, h) {
            match seen.get(&change) {
                Some(&i) => out.changed[i].hosts.push(h.name.clone()),
                None => {
                    seen.insert(change.clone(), out.changed.len());
                    out.changed.push(HostFieldChange {
                        hosts: vec![h.name.clone()],
                        change,
                    });
                }
            }
        }
    }
    for h in &old.hosts {
        if new.host(&h.name).is_none() {
            out.removed.push(HostInWave {
                host: h.name.clone(),
                wave: old_wave.get(h.name.as_str()).copied().unwrap_or("").into(),
            });
        }
    }
    out
}

/// Connection settings and variables of one host in both artifacts.
fn host_fields(old: &sluice_plan::HostPlan, new: &sluice_plan::HostPlan) -> Vec<FieldChange> {
    let (o, n) = (&old.connection, &new.connection);
    let mut out = Vec::new();
    let pairs: [(&str, String, String); 10] = [
        ("address", o.address.clone(), n.address.clone()),
        ("port", o.port.to_string(), n.port.to_string()),
        ("user", json(&o.user), json(&n.user)),
        ("via", json(&o.proxy_jump), json(&n.proxy_jump)),
        ("transport", json(&o.transport), json(&n.transport)),
        (
            "host_key_checking",
            json(&o.host_key_checking),
            json(&n.host_key_checking),
        ),
        (
            "identity_files",
            json(&o.identity_files),
            json(&n.identity_files),
        ),
        ("known_hosts", json(&o.known_hosts), json(&n.known_hosts)),
        ("workdir", json(&o.workdir), json(&n.workdir)),
        ("env", json(&o.env), json(&n.env)),
    ];
    for (name, a, b) in pairs {
        push(&mut out, name, Some(a), Some(b));
    }
    let names: BTreeSet<&String> = old.vars.keys().chain(new.vars.keys()).collect();
    for name in names {
        let value = |h: &sluice_plan::HostPlan| h.vars.get(name).map(ToString::to_string);
        push(&mut out, &format!("vars.{name}"), value(old), value(new));
    }
    out
}

/// A value shown as its JSON, so `null`, lists and maps read unambiguously.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

pub fn waves(old: &Review, new: &Review) -> Vec<WaveChange> {
    let mut out = Vec::new();
    for w in &new.waves {
        let Some(before) = old.waves.iter().find(|o| o.name == w.name) else {
            out.push(WaveChange {
                wave: w.name.clone(),
                change: Change::Added,
                fields: Vec::new(),
            });
            continue;
        };
        let mut fields = Vec::new();
        let n = |v: usize| Some(v.to_string());
        push(&mut fields, "position", n(before.number), n(w.number));
        push(
            &mut fields,
            "hosts",
            n(before.hosts.len()),
            n(w.hosts.len()),
        );
        push(
            &mut fields,
            "concurrency",
            n(before.concurrency),
            n(w.concurrency),
        );
        push(
            &mut fields,
            "max_failed",
            n(before.max_failed),
            n(w.max_failed),
        );
        let yes = |b: bool| Some(if b { "yes" } else { "no" }.to_string());
        push(
            &mut fields,
            "approval",
            yes(before.approval),
            yes(w.approval),
        );
        push(
            &mut fields,
            "pause",
            before.pause_ms.map(duration),
            w.pause_ms.map(duration),
        );
        if !fields.is_empty() {
            out.push(WaveChange {
                wave: w.name.clone(),
                change: Change::Changed,
                fields,
            });
        }
    }
    for w in &old.waves {
        if !new.waves.iter().any(|n| n.name == w.name) {
            out.push(WaveChange {
                wave: w.name.clone(),
                change: Change::Removed,
                fields: Vec::new(),
            });
        }
    }
    out
}

/// The lines a command is compared by: its one form, or `hosts: form` per form.
fn lines(view: Option<&CommandView>, review: &Review) -> String {
    let Some(view) = view else {
        return String::new();
    };
    let order = HostOrder::of(review);
    let mut out = String::new();
    for f in &view.forms {
        if view.forms.len() > 1 {
            out.push_str(&order.compact(&f.hosts));
            out.push_str(": ");
        }
        out.push_str(&phrases::form_text(f));
        out.push('\n');
    }
    out
}

fn unified(what: &str, old: &str, new: &str) -> Option<CommandChange> {
    (old != new).then(|| CommandChange {
        what: what.to_string(),
        unified_diff: similar::TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(2)
            .header("old", "new")
            .to_string(),
    })
}

fn step_fields(o: &StepView, n: &StepView) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let list = |v: &[String]| Some(v.join(", "));
    push(&mut out, "after", list(&o.after), list(&n.after));
    push(
        &mut out,
        "run_once_on",
        o.run_once_on.clone(),
        n.run_once_on.clone(),
    );
    push(
        &mut out,
        "become",
        o.become_user.clone(),
        n.become_user.clone(),
    );
    push(
        &mut out,
        "timeout",
        o.timeout_ms.map(duration),
        n.timeout_ms.map(duration),
    );
    let s = |v: u32| Some(v.to_string());
    push(&mut out, "retries", s(o.retries), s(n.retries));
    push(
        &mut out,
        "retry_delay",
        Some(duration(o.retry_delay_ms)),
        Some(duration(n.retry_delay_ms)),
    );
    push(&mut out, "register", o.register.clone(), n.register.clone());
    let b = |v: bool| Some(v.to_string());
    push(&mut out, "idempotent", b(o.idempotent), b(n.idempotent));
    out
}

pub fn steps(old: &Review, new: &Review) -> Vec<StepChange> {
    let mut out = Vec::new();
    for s in &new.steps {
        let Some(before) = old.steps.iter().find(|o| o.id == s.id) else {
            let commands = [
                ("run", Some(&s.run)),
                ("undo", s.undo.as_ref()),
                ("skip_if", s.skip_if.as_ref()),
            ]
            .into_iter()
            .filter_map(|(what, v)| unified(what, "", &lines(v, new)))
            .collect();
            out.push(StepChange {
                step: s.id.clone(),
                change: Change::Added,
                fields: Vec::new(),
                commands,
            });
            continue;
        };
        let commands: Vec<CommandChange> = [
            ("run", Some(&before.run), Some(&s.run)),
            ("undo", before.undo.as_ref(), s.undo.as_ref()),
            ("skip_if", before.skip_if.as_ref(), s.skip_if.as_ref()),
        ]
        .into_iter()
        .filter_map(|(what, o, n)| unified(what, &lines(o, old), &lines(n, new)))
        .collect();
        let fields = step_fields(before, s);
        if !fields.is_empty() || !commands.is_empty() {
            out.push(StepChange {
                step: s.id.clone(),
                change: Change::Changed,
                fields,
                commands,
            });
        }
    }
    for s in &old.steps {
        if !new.steps.iter().any(|n| n.id == s.id) {
            out.push(StepChange {
                step: s.id.clone(),
                change: Change::Removed,
                fields: Vec::new(),
                commands: Vec::new(),
            });
        }
    }
    out
}

pub fn health(old: &Review, new: &Review) -> HealthChanges {
    let (o, n) = (&old.health, &new.health);
    let mut out = HealthChanges::default();
    let s = |v: u32| Some(v.to_string());
    push(&mut out.rules, "retries", s(o.retries), s(n.retries));
    push(
        &mut out.rules,
        "interval",
        Some(duration(o.interval_ms)),
        Some(duration(n.interval_ms)),
    );
    push(
        &mut out.rules,
        "timeout",
        Some(duration(o.timeout_ms)),
        Some(duration(n.timeout_ms)),
    );
    let text = |c: &crate::model::CheckView, r: &Review| {
        lines(Some(&c.target), r)
            .lines()
            .map(|l| phrases::check_phrase(c, l) + "\n")
            .collect::<String>()
    };
    for c in &n.checks {
        match o.checks.iter().find(|x| x.name == c.name) {
            None => out.added.push(c.name.clone()),
            Some(before) => {
                out.changed
                    .extend(unified(&c.name, &text(before, old), &text(c, new)));
            }
        }
    }
    out.removed = o
        .checks
        .iter()
        .filter(|c| !n.checks.iter().any(|x| x.name == c.name))
        .map(|c| c.name.clone())
        .collect();
    out
}

pub fn failure(old: &Review, new: &Review) -> Vec<FieldChange> {
    let (o, n) = (&old.failure, &new.failure);
    let mut out = Vec::new();
    push(
        &mut out,
        "max_failed",
        Some(o.budget.clone()),
        Some(n.budget.clone()),
    );
    push(
        &mut out,
        "action",
        Some(phrases::action_words(o).to_string()),
        Some(phrases::action_words(n).to_string()),
    );
    out
}
