//! Warnings found in a compiled artifact alone, so a saved artifact shows them again.

use jiff::Timestamp;

use crate::artifact::{HealthProbe, PlanArtifact, Window};
use crate::estimate::Estimate;
use crate::warning::PlanWarning;

/// Every artifact warning, judged at `now` (the window checks depend on it), in a fixed order:
/// window, steps, waves, health, test hooks.
pub fn check(plan: &PlanArtifact, now: Timestamp) -> Vec<PlanWarning> {
    let mut out = Vec::new();
    if let Some(window) = &plan.window {
        check_window(plan, window, now, &mut out);
    }
    check_undo(plan, &mut out);
    check_canary(plan, &mut out);
    if plan.hosts.iter().all(|h| h.health.is_empty()) {
        out.push(PlanWarning::NoHealthChecks);
    }
    check_insecure_tls(plan, &mut out);
    check_test_hooks(plan, &mut out);
    out
}

/// Each test hook variable some host sets, with every host that sets it.
fn check_test_hooks(plan: &PlanArtifact, out: &mut Vec<PlanWarning>) {
    for variable in crate::host_hooks::hook_vars() {
        let hosts: Vec<String> = plan
            .hosts
            .iter()
            .filter(|h| h.vars.contains_key(variable))
            .map(|h| h.name.clone())
            .collect();
        if !hosts.is_empty() {
            out.push(PlanWarning::TestHook {
                variable: variable.to_string(),
                hosts,
            });
        }
    }
}

/// Each check that accepts any certificate, once, with how many hosts it runs for.
fn check_insecure_tls(plan: &PlanArtifact, out: &mut Vec<PlanWarning>) {
    let mut insecure: Vec<(String, usize)> = Vec::new();
    let checks = plan.hosts.iter().flat_map(|h| h.health.iter());
    for check in checks {
        if let HealthProbe::Http { options, .. } = &check.probe
            && options.insecure
        {
            match insecure.iter_mut().find(|(name, _)| *name == check.name) {
                Some((_, hosts)) => *hosts += 1,
                None => insecure.push((check.name.clone(), 1)),
            }
        }
    }
    out.extend(
        insecure
            .into_iter()
            .map(|(check, hosts)| PlanWarning::InsecureTls { check, hosts }),
    );
}

fn check_window(plan: &PlanArtifact, window: &Window, now: Timestamp, out: &mut Vec<PlanWarning>) {
    if let Window::Absolute { end, .. } = window
        && *end <= now
    {
        out.push(PlanWarning::WindowEnded { end: *end });
    }
    let estimate_ms = Estimate::of(plan).total_ms;
    if let Some(window_ms) = window.length_ms()
        && estimate_ms > window_ms
    {
        out.push(PlanWarning::WindowTooShort {
            window_ms,
            estimate_ms,
        });
    }
}

/// A step that registers a value reads something for later steps: it is taken as a query with
/// nothing to undo. Every other step without `undo` is named.
fn check_undo(plan: &PlanArtifact, out: &mut Vec<PlanWarning>) {
    for spec in &plan.steps {
        if spec.register.is_some() {
            continue;
        }
        let has_undo = if spec.run_once {
            plan.run_once
                .iter()
                .any(|r| r.step.id == spec.id && r.step.undo.is_some())
        } else {
            // Every host renders the same step templates: the first host that has it tells.
            plan.hosts
                .iter()
                .flat_map(|h| h.steps.iter())
                .find(|s| s.id == spec.id)
                .is_some_and(|s| s.undo.is_some())
        };
        if !has_undo {
            out.push(PlanWarning::NoUndo {
                step: spec.id.clone(),
            });
        }
    }
}

/// The first wave is the canary only when another wave follows it.
fn check_canary(plan: &PlanArtifact, out: &mut Vec<PlanWarning>) {
    if let [first, _, ..] = plan.waves.as_slice()
        && first.max_failed >= first.hosts.len()
    {
        out.push(PlanWarning::CanaryToleratesAll {
            wave: first.name.clone(),
            hosts: first.hosts.len(),
            max_failed: first.max_failed,
        });
    }
}
