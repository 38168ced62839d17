//! The human lines for each fact of a run, as the monitor prints them (plain mode, and above
//! the bars). With bars, step-level facts are shown on the host's bar instead, unless `-v`
//! (`detailed`).

use std::borrow::Cow;
use std::time::Duration;

use sluice_model::{
    ApprovalScope, Fact, HostOutcome, RollbackOutcome, RunStatus, StepResult, WaveDecision,
};
use sluice_model::{CheckVerdict, ConfirmOutcome, RunKind};

use crate::progress::clock;
use crate::visible::visible;

/// One printed line: a right-aligned verb, the message, and whether it is bad news.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub verb: &'static str,
    pub message: String,
    pub bad: bool,
}

fn line(verb: &'static str, message: String, bad: bool) -> Vec<Line> {
    vec![Line { verb, message, bad }]
}

/// Milliseconds as every human display shows a duration (`0.3s`, `1m05s`).
pub(crate) fn ms(ms: u64) -> String {
    clock(Duration::from_millis(ms))
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// The lines for `fact`; none for facts only the bars (or nothing) show. Control characters
/// from hosts (in output, commands with registered values, details) are shown as escapes.
pub fn lines(fact: &Fact, detailed: bool) -> Vec<Line> {
    let mut lines = unescaped_lines(fact, detailed);
    for line in &mut lines {
        if let Cow::Owned(shown) = visible(&line.message) {
            line.message = shown;
        }
    }
    lines
}

fn unescaped_lines(fact: &Fact, detailed: bool) -> Vec<Line> {
    match fact {
        Fact::RunStarted(s) => line(
            if s.run_kind == RunKind::Check {
                "Checking"
            } else {
                "Running"
            },
            format!(
                "{} (plan {}) on {} hosts in {} waves",
                s.plan_name,
                short(&s.plan_hash),
                s.hosts.len(),
                s.waves.len()
            ),
            false,
        ),
        Fact::RunResumed(r) => line(
            "Resuming",
            format!(
                "plan {} by {} on {}",
                short(&r.plan_hash),
                r.operator,
                r.controller
            ),
            false,
        ),
        Fact::Decision(d) => line(
            "Decision",
            match &d.wave {
                Some(w) => format!("{} [{w}]: {}", d.decision, d.reason),
                None => format!("{}: {}", d.decision, d.reason),
            },
            true,
        ),
        Fact::StageStarted(s) => line(
            "Stage",
            format!(
                "{}: {}{}",
                s.stage,
                crate::console::count(s.hosts.len(), "host"),
                if s.after.is_empty() {
                    String::new()
                } else {
                    format!(", after {}", s.after.join(", "))
                }
            ),
            false,
        ),
        Fact::StageFinished(s) => line(
            "Stage",
            format!("{} {}: {}", s.stage, s.status, s.reason),
            s.status != sluice_model::WaveStatus::Ok,
        ),
        Fact::WaveStarted(w) => line(
            "Wave",
            format!(
                "{}: {}, {} at a time, max_failed {}",
                w.wave,
                crate::console::count(w.hosts.len(), "host"),
                w.concurrency,
                w.max_failed
            ),
            false,
        ),
        Fact::WaveDecided(w) => {
            let mut out = line(
                "Wave",
                format!(
                    "{} {}: {} ok, {} failed, {} not started in {}",
                    w.wave,
                    w.status,
                    w.ok,
                    w.failed,
                    w.not_started,
                    ms(w.duration_ms)
                ),
                w.failed > 0,
            );
            if w.decision != WaveDecision::Continue || w.failed > 0 {
                out.extend(line(
                    "Decision",
                    format!("{} [{}]: {}", w.decision, w.wave, w.reason),
                    w.decision != WaveDecision::Continue,
                ));
            }
            out
        }
        Fact::HostStarted(h) if detailed => {
            line("Host", format!("{} started ({})", h.host, h.wave), false)
        }
        Fact::HostFinished(h) => {
            let bad = h.outcome != HostOutcome::Ok;
            let what = match &h.error {
                Some(e) => format!("{}: {} after {}: {e}", h.host, h.outcome, ms(h.duration_ms)),
                None => format!("{}: {} in {}", h.host, h.outcome, ms(h.duration_ms)),
            };
            let verb = match h.outcome {
                HostOutcome::Ok => "Ok",
                HostOutcome::Reverted => "Reverted",
                _ => "Failed",
            };
            line(verb, what, bad)
        }
        Fact::ConfirmArmed(a) if detailed => line(
            "Confirm",
            format!(
                "{} {}: armed, the host reverts it in {} unless confirmed ({} {})",
                a.host,
                a.step,
                ms(a.within_ms),
                a.timer,
                a.unit
            ),
            false,
        ),
        Fact::ConfirmResult(c) => {
            let (verb, what) = match c.outcome {
                ConfirmOutcome::Confirmed => ("Confirm", "confirmed"),
                ConfirmOutcome::Disarmed => ("Confirm", "disarmed, not confirmed"),
                ConfirmOutcome::Reverted => ("Reverted", "REVERTED by the host"),
                ConfirmOutcome::Unconfirmed => ("Confirm", "NOT CONFIRMED, host unreachable"),
            };
            let bad = c.outcome != ConfirmOutcome::Confirmed;
            if bad || detailed {
                line(
                    verb,
                    format!("{} {}: {what}: {}", c.host, c.step, c.detail),
                    bad,
                )
            } else {
                Vec::new()
            }
        }
        Fact::StepIntent(i) if detailed => {
            let again = if i.attempt > 1 {
                format!(" (attempt {})", i.attempt)
            } else {
                String::new()
            };
            line(
                "Step",
                format!("{} {}{again}: {}", i.host, i.step, i.command),
                false,
            )
        }
        Fact::StepResult(r) if detailed => line(
            "Step",
            with_output(
                format!("{} {}: {} ({})", r.host, r.step, r.status, r.detail),
                r,
            ),
            !r.status.is_success(),
        ),
        Fact::StepRetrying(r) => line(
            "Retry",
            format!(
                "{} {}: attempt {} in {}",
                r.host,
                r.step,
                r.next_attempt,
                ms(r.delay_ms)
            ),
            true,
        ),
        Fact::HealthResult(h) if detailed || !h.ok => line(
            "Health",
            format!(
                "{} {} round {}: {} ({})",
                h.host,
                h.check,
                h.round,
                if h.ok { "passed" } else { "failed" },
                h.detail
            ),
            !h.ok,
        ),
        Fact::RollbackStarted(r) => line(
            "Rollback",
            format!(
                "wave {}: undoing {} host(s): {}",
                r.wave,
                r.hosts.len(),
                r.hosts.join(", ")
            ),
            true,
        ),
        Fact::UndoIntent(i) => line(
            "Undo",
            format!("{} {}: {}", i.host, i.step, i.command),
            false,
        ),
        Fact::UndoResult(r) => {
            let ok = r.status.is_success();
            let verdict = if ok { "undone" } else { "UNDO FAILED" };
            let text = format!("{} {}: {verdict} ({})", r.host, r.step, r.detail);
            line("Undo", if ok { text } else { with_output(text, r) }, !ok)
        }
        Fact::HostRolledBack(h) => line(
            "Rollback",
            format!(
                "{}: {}",
                h.host,
                match h.outcome {
                    RollbackOutcome::RolledBack => "rolled back",
                    RollbackOutcome::RollbackFailed => "ROLLBACK FAILED: needs attention",
                }
            ),
            h.outcome != RollbackOutcome::RolledBack,
        ),
        Fact::RollbackFinished(r) => line(
            "Rollback",
            format!(
                "wave {}: {} rolled back, {} failed",
                r.wave, r.rolled_back, r.failed
            ),
            r.failed > 0,
        ),
        Fact::PauseStarted(p) => line(
            "Pause",
            format!("soaking {} after {}", ms(p.duration_ms), p.after_wave),
            false,
        ),
        Fact::PauseFinished(_) if detailed => line("Pause", "soak time over".into(), false),
        Fact::ApprovalRequested(r) => line(
            "Approval",
            format!("wave {} waits for approval", r.wave),
            false,
        ),
        Fact::Approval(a) => {
            let what = match &a.scope {
                ApprovalScope::Wave { wave } => format!("wave {wave}"),
                ApprovalScope::Plan { plan_hash } => format!("plan {}", short(plan_hash)),
                ApprovalScope::RunStart { .. } => "the run's start".to_string(),
            };
            let verb = if a.refused { "refused" } else { "approved" };
            line("Approval", format!("{what} {verb} by {}", a.by), a.refused)
        }
        Fact::Warning(w) => line(
            "Warning",
            match &w.host {
                Some(h) => format!("{h}: {}", w.message),
                None => w.message.clone(),
            },
            true,
        ),
        Fact::RunFinished(f) => line(
            "Finished",
            format!("{} in {}", f.status, ms(f.duration_ms)),
            f.status != RunStatus::Succeeded,
        ),
        Fact::StepChecked(c) if detailed || c.verdict == CheckVerdict::WouldFail => line(
            "Check",
            format!("{} {}: {} ({})", c.host, c.step, c.verdict, c.detail),
            c.verdict == CheckVerdict::WouldFail,
        ),
        Fact::HostChecked(h) => {
            let bad = h.outcome != HostOutcome::Ok;
            let what = match &h.error {
                Some(e) => format!("{}: {} after {}: {e}", h.host, h.outcome, ms(h.duration_ms)),
                None => format!("{}: checked in {}", h.host, ms(h.duration_ms)),
            };
            line(if bad { "Failed" } else { "Checked" }, what, bad)
        }
        Fact::BackupStarted(b) if detailed => line(
            "Backup",
            format!("{} {}: {}", b.host, b.backup, b.command),
            false,
        ),
        Fact::BackupResult(b) => {
            let ok = b.status == sluice_model::StepStatus::Ok;
            let text = match &b.evidence {
                Some(e) => format!(
                    "{} {}: verified (verify output sha256 {}, {} bytes)",
                    b.host,
                    b.backup,
                    short(&e.verify_sha256),
                    e.verify_bytes
                ),
                None => format!("{} {}: FAILED ({})", b.host, b.backup, b.detail),
            };
            line("Backup", text, !ok)
        }
        Fact::HostLeaseTaken(l) if detailed => line(
            "Lease",
            format!(
                "{}: host lease {} taken until {}",
                l.host, l.path, l.expires_at
            ),
            false,
        ),
        Fact::HostLeaseBroken(l) => line(
            "Lease",
            format!(
                "{}: broke the expired host lease of run {} ({} on {}, expired {}): {}",
                l.host,
                l.holder_run,
                l.holder_operator,
                l.holder_controller,
                l.expires_at,
                l.reason.as_deref().unwrap_or("")
            ),
            true,
        ),
        Fact::HostClaimed(c) if detailed || c.reclaimed_from.is_some() => line(
            "Worker",
            crate::commands::show::claimed(c),
            c.reclaimed_from.is_some(),
        ),
        Fact::HostNeedsOperator(n) => {
            line("Worker", crate::commands::show::needs_operator(n), true)
        }
        Fact::NotificationFailed(n) => line(
            "Notify",
            format!(
                "{} to webhook {} ({}) not delivered after {} attempt(s): {}",
                n.event, n.target, n.endpoint, n.attempts, n.reason
            ),
            true,
        ),
        _ => Vec::new(),
    }
}

/// `text`, then the first lines of the command's output, indented under it.
fn with_output(mut text: String, result: &StepResult) -> String {
    if result.status.is_success() {
        return text;
    }
    for l in result.first_lines(sluice_exec::OUTPUT_LINES) {
        text.push_str(&format!("\n{:>12} | {l}", ""));
    }
    text
}
