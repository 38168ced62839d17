//! The human review of a compiled plan: what `sluice plan` shows a change board.
//!
//! Commands are shown once when every host renders them the same way; otherwise each distinct
//! rendering is shown with the hosts that get it (the first few; the JSON has them all).
//! Secrets show as `***`, registered values as `<name from step id>`.

use std::fmt::Write;

use crate::artifact::*;
use crate::command::RenderedCommand;

/// Distinct renderings listed per command before the rest are summarised.
const MAX_VARIANTS: usize = 4;
/// Hosts listed per wave or rendering before the rest are counted.
const MAX_HOSTS_LISTED: usize = 8;

pub fn render(plan: &PlanArtifact) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_review(plan, &mut out);
    out
}

fn write_review(p: &PlanArtifact, o: &mut String) -> std::fmt::Result {
    writeln!(o, "Change     {}", p.name)?;
    if let Some(d) = &p.description {
        writeln!(o, "           {d}")?;
    }
    writeln!(o, "Ticket     {}", p.ticket.as_deref().unwrap_or("(none)"))?;
    writeln!(o, "Plan hash  {}", p.plan_hash)?;
    writeln!(o, "Window     {}", window_text(p.window.as_ref()))?;
    writeln!(
        o,
        "Targets    {} hosts in {} waves",
        p.hosts.len(),
        p.waves.len()
    )?;
    if let Some(limit) = &p.limit {
        writeln!(
            o,
            "Limit      {limit} (--limit: only the targeted hosts it matches)"
        )?;
    }
    if !p.secrets.is_empty() {
        let names: Vec<String> = p
            .secrets
            .iter()
            .map(|s| match &s.from {
                SecretFrom::Env(v) => format!("{} = *** (env {v})", s.name),
                SecretFrom::File(f) => format!("{} = *** (file {f})", s.name),
            })
            .collect();
        writeln!(o, "Secrets    {}", names.join(", "))?;
    }
    if let Some(name) = &p.become_password {
        writeln!(
            o,
            "Become     sudo password from secret {name} (sent only when sudo asks)"
        )?;
    }
    writeln!(o, "\nWaves")?;
    for (i, w) in p.waves.iter().enumerate() {
        let mut gates = Vec::new();
        if w.approval {
            gates.push("waits for approval first".to_string());
        }
        if let Some(ms) = w.pause_ms {
            gates.push(format!("then pause {}", duration(ms)));
        }
        writeln!(
            o,
            "  {}. {} — {} host(s), {} at once, tolerates {} failure(s){}",
            i + 1,
            w.name,
            w.hosts.len(),
            w.concurrency,
            w.max_failed,
            if gates.is_empty() {
                String::new()
            } else {
                format!("; {}", gates.join(", "))
            }
        )?;
        writeln!(o, "     {}", listed(&w.hosts))?;
    }
    if !p.run_once.is_empty() {
        writeln!(o, "\nRun once (before the first wave's hosts start)")?;
        for r in &p.run_once {
            if let Some(spec) = p.step(&r.step.id) {
                write_step_head(o, spec, &format!("on {}", r.host))?;
            }
            writeln!(o, "      run: {}", r.step.run)?;
            if let Some(u) = &r.step.undo {
                writeln!(o, "     undo: {u}")?;
            }
        }
    }
    writeln!(o, "\nSteps (on every host, in this order)")?;
    for spec in p.steps.iter().filter(|s| !s.run_once) {
        let after = if spec.after.is_empty() {
            "first".to_string()
        } else {
            format!("after {}", spec.after.join(", "))
        };
        write_step_head(o, spec, &after)?;
        let pick = |f: fn(&HostStep) -> Option<&RenderedCommand>| {
            p.hosts
                .iter()
                .map(|h| {
                    let step = h.steps.iter().find(|s| s.id == spec.id);
                    step.and_then(f).map(ToString::to_string)
                })
                .collect::<Vec<_>>()
        };
        for (label, texts) in [
            ("run", pick(|s| Some(&s.run))),
            ("undo", pick(|s| s.undo.as_ref())),
            ("skip_if", pick(|s| s.skip_if.as_ref())),
        ] {
            write_text_variants(o, &format!("    {label:>7}"), &p.hosts, &texts)?;
        }
    }
    writeln!(
        o,
        "\nHealth checks (after each host; {} retries, every {}, timeout {})",
        p.health.retries,
        duration(p.health.interval_ms),
        duration(p.health.timeout_ms)
    )?;
    let names: Vec<&str> = p
        .hosts
        .first()
        .map(|h| h.health.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    if names.is_empty() {
        writeln!(o, "  (none)")?;
    }
    for name in names {
        let texts: Vec<Option<String>> = p
            .hosts
            .iter()
            .map(|h| {
                let check = h.health.iter().find(|c| c.name == name);
                check.map(|c| probe_text(&c.probe))
            })
            .collect();
        write_text_variants(o, &format!("  {name}"), &p.hosts, &texts)?;
    }
    writeln!(o, "\nOn failure")?;
    let budget = match p.failure.max_failed {
        FailureBudget::Count(n) => format!("{n} failed host(s) per wave"),
        FailureBudget::Percent(n) => format!("{n}% of each wave's hosts, rounded down"),
    };
    let action = match p.failure.action {
        FailureAction::Rollback => format!(
            "roll back the {}",
            match p.failure.rollback_scope {
                RollbackScope::Wave => "wave",
                RollbackScope::Run => "whole run",
            }
        ),
        FailureAction::Halt => "halt (no rollback)".into(),
        FailureAction::Continue => "continue with the next wave".into(),
    };
    writeln!(o, "  tolerate {budget}; beyond that: {action}")?;
    Ok(())
}

fn write_step_head(o: &mut String, s: &StepSpec, position: &str) -> std::fmt::Result {
    let mut attrs = vec![position.to_string()];
    if s.become_root || s.become_user.is_some() {
        attrs.push(format!("as {}", s.become_user.as_deref().unwrap_or("root")));
    }
    if let Some(t) = s.timeout_ms {
        attrs.push(format!("timeout {}", duration(t)));
    }
    if s.retries > 0 {
        attrs.push(format!(
            "{} retries every {}",
            s.retries,
            duration(s.retry_delay_ms)
        ));
    }
    if let Some(r) = &s.register {
        attrs.push(format!("registers {r}"));
    }
    if s.idempotent {
        attrs.push("idempotent".into());
    }
    writeln!(o, "  - {} [{}]", s.id, attrs.join("; "))
}

/// One line when all hosts agree; else, when the texts differ only by each host's own name or
/// address, one line with `{{host.name}}`/`{{host.address}}` in their place; else one line per
/// distinct text with the hosts that get it.
fn write_text_variants(
    o: &mut String,
    label: &str,
    hosts: &[HostPlan],
    per_host: &[Option<String>],
) -> std::fmt::Result {
    let exact = group(hosts, per_host.iter().map(Option::clone));
    let generic = group(
        hosts,
        hosts
            .iter()
            .zip(per_host)
            .map(|(h, t)| t.as_ref().map(|t| generalise(t, h))),
    );
    let variants = match (exact.len(), generic.len()) {
        (0, _) => return Ok(()),
        (1, _) => return writeln!(o, "{label}: {}", exact[0].0),
        (_, 1) => return writeln!(o, "{label}: {}", generic[0].0),
        _ => generic,
    };
    writeln!(o, "{label}: {} variants", variants.len())?;
    for (text, names) in variants.iter().take(MAX_VARIANTS) {
        writeln!(o, "{:w$}    {}: {text}", "", listed(names), w = label.len())?;
    }
    if variants.len() > MAX_VARIANTS {
        writeln!(
            o,
            "{:w$}    … {} more (sluice plan --json shows every host)",
            "",
            variants.len() - MAX_VARIANTS,
            w = label.len()
        )?;
    }
    Ok(())
}

/// Distinct texts in first-seen order, each with the hosts that have it.
fn group(
    hosts: &[HostPlan],
    texts: impl Iterator<Item = Option<String>>,
) -> Vec<(String, Vec<String>)> {
    let mut variants: Vec<(String, Vec<String>)> = Vec::new();
    for (host, text) in hosts.iter().zip(texts) {
        let Some(text) = text else { continue };
        match variants.iter_mut().find(|(t, _)| *t == text) {
            Some((_, names)) => names.push(host.name.clone()),
            None => variants.push((text, vec![host.name.clone()])),
        }
    }
    variants
}

/// The text with this host's address and name written as the references that produce them.
fn generalise(text: &str, host: &HostPlan) -> String {
    let mut t = text.to_string();
    if host.connection.address != host.name {
        t = t.replace(&host.connection.address, "{{host.address}}");
    }
    t.replace(&host.name, "{{host.name}}")
}

fn listed(hosts: &[String]) -> String {
    if hosts.len() <= MAX_HOSTS_LISTED {
        hosts.join(", ")
    } else {
        format!(
            "{} … and {} more",
            hosts[..MAX_HOSTS_LISTED].join(", "),
            hosts.len() - MAX_HOSTS_LISTED
        )
    }
}

fn probe_text(p: &HealthProbe) -> String {
    match p {
        HealthProbe::Run(c) => format!("run {c}"),
        HealthProbe::Http { url, expect_status } => format!("GET {url} expects {expect_status}"),
        HealthProbe::Tcp { address } => format!("connect {address}"),
    }
}

fn window_text(w: Option<&Window>) -> String {
    match w {
        None => "none (runs whenever applied)".into(),
        Some(Window::Absolute { start, end }) => format!("{start} to {end}"),
        Some(Window::Recurring {
            days,
            from,
            to,
            timezone,
        }) => {
            let days: Vec<String> = days
                .iter()
                .map(|d| format!("{d:?}").to_lowercase())
                .collect();
            format!("every {} {from}–{to} {timezone}", days.join(", "))
        }
    }
}

/// `300000` → `5m`, `90000` → `1m30s`, `250` → `250ms`.
pub fn duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let (h, m, s, rest) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    for (v, unit) in [(h, "h"), (m, "m"), (s, "s"), (rest, "ms")] {
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
        }
    }
    out
}
