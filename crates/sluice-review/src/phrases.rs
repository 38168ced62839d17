//! Wording shared by the human formats, so text, Markdown and HTML say the same thing the same
//! way: step attributes, wave gates, health checks, host holes.

use sluice_plan::schema::format_duration_ms as duration;

use crate::model::*;
use crate::when;

/// How the text formats write a host's own name and address inside a command.
pub const NAME_HOLE: &str = "⟨host.name⟩";
pub const ADDRESS_HOLE: &str = "⟨host.address⟩";

/// What the holes and host runs mean, once per review.
pub const LEGEND: &str = "⟨host.name⟩ and ⟨host.address⟩ stand for each host's own name and \
address: every listed host's rendered command was checked to read exactly so. \"a … b\" means \
every host from a to b in the order of the host list.";

/// A form with its holes written as [`NAME_HOLE`] and [`ADDRESS_HOLE`].
pub fn form_text(form: &Form) -> String {
    form.pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) => t.as_str(),
            Piece::HostName => NAME_HOLE,
            Piece::HostAddress => ADDRESS_HOLE,
        })
        .collect()
}

/// `first`, `after current, drain`, `once, on web-1`, `as root`, `timeout 10m`, ….
/// What the backup phase is, for every format.
pub const BACKUP_PHASE: &str = "Each host runs these, in order, before its first change step \
(after guards and check steps, which change nothing): `run` makes the backup, `verify` proves it \
usable. A host whose backup or verification fails is not changed and counts as failed; the \
sha256 and size of `verify`'s output are recorded as the evidence. A host is backed up once per \
run, and a resume does not repeat a verified backup.";

/// What `host_lease: true` does, for every format.
pub const HOST_LEASE: &str = "on each host itself (host_lease): a lease directory taken \
atomically when the host starts, kept alive while the host is in flight, released at its end \
and taken again for a later undo of the host; a host another controller holds is refused";

/// A backup's settings: who it runs as and its timeout.
pub fn backup_attributes(b: &BackupView) -> Vec<String> {
    let mut attrs = Vec::new();
    if let Some(user) = &b.become_user {
        attrs.push(format!("as {user}"));
    }
    match b.timeout_ms {
        Some(ms) => attrs.push(format!("timeout {} each", duration(ms))),
        None => attrs.push("no timeout".to_string()),
    }
    attrs
}

pub fn step_attributes(step: &StepView) -> Vec<String> {
    let mut attrs = Vec::new();
    match &step.run_once_on {
        Some(host) => attrs.push(format!("once, on {host}")),
        None if step.after.is_empty() => attrs.push("first".into()),
        None => attrs.push(format!("after {}", step.after.join(", "))),
    }
    if let Some(user) = &step.become_user {
        attrs.push(format!("as {user}"));
    }
    if let Some(t) = step.reboot_timeout_ms {
        attrs.push(format!("reboots the host, waits up to {}", duration(t)));
    }
    if let Some(c) = &step.confirm {
        attrs.push(format!(
            "confirm within {}, else the host runs the undo by itself",
            duration(c.within_ms)
        ));
    }
    if let Some(t) = step.timeout_ms {
        attrs.push(format!("timeout {}", duration(t)));
    }
    if step.retries > 0 {
        let tries = if step.retries == 1 {
            "retry"
        } else {
            "retries"
        };
        attrs.push(format!(
            "{} {tries} {} apart",
            step.retries,
            duration(step.retry_delay_ms)
        ));
    }
    if let Some(r) = &step.register {
        attrs.push(format!("registers {r}"));
    }
    if step.idempotent {
        attrs.push("idempotent".into());
    }
    if step.check {
        attrs.push(CHECK_ATTRIBUTE.into());
    }
    attrs
}

/// How a `check: true` step is marked in every human format.
pub const CHECK_ATTRIBUTE: &str = "read-only: runs under --check";

/// `https://hooks.example.com:443/sluice: wave_failed, run_finished; signed with secret key`:
/// one webhook, in words (the endpoint already stripped of its query string).
pub fn notify_line(n: &NotifyView) -> String {
    let events: Vec<&str> = n.events.iter().map(|e| e.as_str()).collect();
    let signed = match &n.signed_with {
        Some(name) => format!("signed with secret {name}"),
        None => "unsigned".to_string(),
    };
    format!("{}: {}; {signed}", n.endpoint, events.join(", "))
}

/// `1 host, 1 at once, tolerates 0 failures`.
pub fn wave_facts(wave: &WaveView) -> String {
    let failures = if wave.max_failed == 1 {
        "failure"
    } else {
        "failures"
    };
    format!(
        "{}, {} at once, tolerates {} {failures}",
        crate::hosts::count(wave.hosts.len()),
        wave.concurrency,
        wave.max_failed
    )
}

/// `waits for approval first`, `then pauses 5m`: empty when the wave has neither.
pub fn wave_gates(wave: &WaveView) -> Vec<String> {
    let mut gates = Vec::new();
    if wave.approval {
        gates.push("waits for an approval before it starts".to_string());
    }
    match wave.pause_ms {
        Some(ms) if wave.pause_holds_stages => gates.push(format!(
            "then pauses {} before the stages that wait for this one",
            duration(ms)
        )),
        Some(ms) => gates.push(format!("then pauses {} before the next wave", duration(ms))),
        None => {}
    }
    gates
}

/// `after each host; 5 retries, every 2s, timeout 3s`.
pub fn health_rules(h: &HealthView) -> String {
    format!(
        "after each host's steps; up to {} more round(s) {} apart; each check times out after {}",
        h.retries,
        duration(h.interval_ms),
        duration(h.timeout_ms)
    )
}

/// What a check does, around its target: `GET <url>, expects 200`.
pub fn check_phrase(check: &CheckView, target: &str) -> String {
    match check.kind {
        CheckKind::Run => format!("run {target}"),
        CheckKind::Http => format!("GET {target}, {}", http_expectation(check)),
        CheckKind::Tcp => format!("connect to {target}"),
    }
}

/// What an http check wants: `expects 2xx`, then the certificate, redirects and body rules.
pub fn http_expectation(check: &CheckView) -> String {
    let mut out = match check.expect_status {
        Some(status) => format!("expects {status}"),
        None => "expects 2xx".to_string(),
    };
    let Some(http) = &check.http else {
        return out;
    };
    match http.trust {
        Some(Trust::SystemRoots) => {
            out.push_str("; certificate checked against the system's roots")
        }
        Some(Trust::CaFile) => out.push_str(&format!(
            "; certificate checked against ca_file {}",
            http.ca_file.as_deref().unwrap_or("?")
        )),
        Some(Trust::Insecure) => {
            out.push_str("; certificate NOT checked (insecure: any certificate is accepted)")
        }
        None => {}
    }
    out.push_str(if http.follow_redirects {
        "; redirects followed"
    } else {
        "; redirects not followed"
    });
    if let Some(text) = &http.body_contains {
        out.push_str(&format!("; the body must contain {text:?}"));
    }
    out
}

/// The promotion rule and its evidence, when the plan has one.
pub fn promotion_line(summary: &Summary) -> Option<String> {
    let p = summary.promotion.as_ref()?;
    Some(format!(
        "needs a successful run of change {} on environment {} within {}: {}",
        p.change_hash.get(..12).unwrap_or(&p.change_hash),
        p.after,
        duration(p.within_ms),
        p.evidence
    ))
}

/// The inventory and environment line.
pub fn planned_for(summary: &Summary) -> String {
    let line = planned_for_inventory(summary);
    match &summary.limit {
        Some(limit) => {
            format!("{line}; limited by --limit {limit} (only the targeted hosts it matches)")
        }
        None => line,
    }
}

fn planned_for_inventory(summary: &Summary) -> String {
    let inventory = summary
        .inventory
        .as_deref()
        .unwrap_or("not recorded (the artifact predates the field)");
    match &summary.environment {
        Some(env) => format!("{inventory} (environment {env})"),
        None => format!("{inventory} (the inventory names no environment)"),
    }
}

/// The window in one line, with its state: `… — ended`.
pub fn window_line(summary: &Summary) -> String {
    match &summary.window {
        None => "none (runs whenever applied)".into(),
        Some(w) => format!("{} — {}", w.declared, when::state_text(w.state)),
    }
}

/// The opening's clocks, when there is one: UTC, and local time unless local time is UTC.
pub fn opening_lines(w: &WindowView) -> Vec<String> {
    let Some(o) = w.opening.as_ref() else {
        return Vec::new();
    };
    let label = match w.state {
        WindowState::Open => "this opening",
        _ => "next opening",
    };
    let (start, end) = (when::utc(o.start), when::utc(o.end));
    let mut lines = vec![format!("{label}: {start} to {end}")];
    if (&o.start_local, &o.end_local) != (&start, &end) {
        lines.push(format!(
            "local time: {} to {} ({})",
            o.start_local, o.end_local, o.local_zone
        ));
    }
    lines
}

/// `up to 1h5m (15m per host; …)`; in a plan with stages, along the longest path of stages.
pub fn estimate_line(e: &EstimateView) -> String {
    if !e.longest_path.is_empty() {
        return format!(
            "up to about {} along the longest path of stages, {} (each stage below; every \
             step up to its timeout, {} for a step without one; pauses counted, approval waits \
             not)",
            duration(e.total_ms),
            e.longest_path.join(" → "),
            duration(e.step_without_timeout_ms)
        );
    }
    format!(
        "up to about {} ({} per host; every step up to its timeout, {} for a step without one; \
         pauses counted, approval waits not)",
        duration(e.total_ms),
        duration(e.per_host_ms),
        duration(e.step_without_timeout_ms)
    )
}

/// `up to about 5m, ends about 12m after the start`: a stage's estimate.
pub fn stage_estimate(stage: &crate::model::StageView) -> String {
    format!(
        "up to about {}, ending about {} after the start",
        duration(stage.estimate_ms),
        duration(stage.ends_ms)
    )
}

/// `by alice at 2026-… (record 12): looks good`, or a refusal.
pub fn approval_line(a: &ApprovalView) -> String {
    let verb = if a.refused { "refused" } else { "approved" };
    let comment = a
        .comment
        .as_ref()
        .map(|c| format!(": {c}"))
        .unwrap_or_default();
    format!("{verb} by {} at {} (record {}){comment}", a.by, a.at, a.seq)
}

/// The approvals source in one line.
pub fn approvals_source(view: &ApprovalsView) -> String {
    match (&view.source, view.recorded.len()) {
        (ApprovalSource::NotChecked { reason }, _) => format!("not checked: {reason}"),
        (ApprovalSource::Store { path }, 0) => format!("none recorded in {path}"),
        (ApprovalSource::Store { path }, n) => format!("{n} recorded in {path}"),
    }
}

/// The action the plan takes on a failed wave, in a few words.
pub fn action_words(f: &FailureView) -> &'static str {
    use sluice_plan::{FailureAction, RollbackScope};
    match (f.action, f.rollback_scope) {
        (FailureAction::Rollback, RollbackScope::Wave) => "roll back the failed wave",
        (FailureAction::Rollback, RollbackScope::Stage) => {
            "roll back the failed wave and every wave of its stage before it"
        }
        (FailureAction::Rollback, RollbackScope::Run) => {
            "roll back the failed wave and every wave before it"
        }
        (FailureAction::Halt, _) => "halt (stop, roll nothing back)",
        (FailureAction::Continue, _) => "continue with the next wave",
    }
}

/// A message of sluice's own with its `code` spans marked: each part, and whether it is code.
/// A message whose backticks do not pair up is one plain part.
pub fn code_spans(text: &str) -> Vec<(&str, bool)> {
    let parts: Vec<&str> = text.split('`').collect();
    if parts.len().is_multiple_of(2) {
        return vec![(text, false)];
    }
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| (part, i % 2 == 1))
        .collect()
}

pub use sluice_plan::schema::format_duration_ms;

/// How many stages run at once, in a few words.
pub fn stage_concurrency(limit: Option<usize>) -> String {
    match limit {
        Some(1) => "one at a time".to_string(),
        Some(n) => format!("up to {n} at once when nothing orders them"),
        None => "one at a time".to_string(),
    }
}

/// What a stage waits for: `first` or `after a, b`.
pub fn stage_after(after: &[String]) -> String {
    if after.is_empty() {
        "first".to_string()
    } else {
        format!("after {}", after.join(", "))
    }
}

/// A stage's waves with their sizes: `canary (1), rest (3)`.
pub fn stage_waves(waves: &[crate::model::WaveView]) -> String {
    let parts: Vec<String> = waves
        .iter()
        .map(|w| {
            let short = w.name.split_once('/').map_or(w.name.as_str(), |(_, n)| n);
            format!("{short} ({})", w.hosts.len())
        })
        .collect();
    parts.join(", ")
}
