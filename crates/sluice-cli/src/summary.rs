//! Text shown before and after `sluice apply`: the plan about to run, and the per-wave table with
//! the first lines of every failed step.

use std::fmt::Write;

use serde::Serialize;
use sluice_exec::{HostOutcome, RollbackOutcome, RunReport, RunStatus};
use sluice_plan::PlanArtifact;

use crate::console::{Console, Paint};
use crate::progress::clock;
use crate::visible::visible;

/// The snake_case name a plan enum has in JSON, for human text too (run facts have `as_str`).
pub fn name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// What is about to run: shown before the confirmation.
pub fn plan(a: &PlanArtifact, console: &Console) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} {} ({}, {})",
        console.paint(Paint::Bold, "Plan"),
        a.name,
        crate::console::count(a.hosts.len(), "host"),
        crate::console::count(a.waves.len(), "wave")
    );
    let _ = writeln!(s, "  hash     {}", a.plan_hash);
    if let Some(ticket) = &a.ticket {
        let _ = writeln!(s, "  ticket   {ticket}");
    }
    for (i, w) in a.waves.iter().enumerate() {
        let mut extra = String::new();
        if let Some(ms) = w.pause_ms {
            let _ = write!(
                extra,
                ", then pause {}",
                clock(std::time::Duration::from_millis(ms))
            );
        }
        if w.approval {
            extra.push_str(", needs approval");
        }
        let _ = writeln!(
            s,
            "  wave {}  {}: {} host(s), {} at a time, max_failed {}{extra}: {}",
            i + 1,
            w.name,
            w.hosts.len(),
            w.concurrency,
            w.max_failed,
            abbreviate(&w.hosts)
        );
    }
    if !a.run_once.is_empty() {
        let steps: Vec<String> = a
            .run_once
            .iter()
            .map(|r| format!("{} on {}", r.step.id, r.host))
            .collect();
        let _ = writeln!(s, "  run once {}", steps.join(", "));
    }
    let _ = writeln!(
        s,
        "  steps    {}",
        a.steps
            .iter()
            .filter(|st| !st.run_once)
            .map(|st| st.id.as_str())
            .collect::<Vec<_>>()
            .join(" -> ")
    );
    if let Some(secret) = &a.become_password {
        let _ = writeln!(s, "  become   sudo password from secret {secret}");
    }
    let _ = writeln!(
        s,
        "  failure  {} (scope {})",
        name(&a.failure.action),
        name(&a.failure.rollback_scope)
    );
    s
}

fn abbreviate(hosts: &[String]) -> String {
    if hosts.len() <= 6 {
        hosts.join(", ")
    } else {
        format!("{}, ... {}", hosts[..3].join(", "), hosts[hosts.len() - 1])
    }
}

/// The table after the run, the failed steps' first lines, and the verdict.
pub fn report(r: &RunReport, console: &Console) -> String {
    let mut s = String::new();
    let _ = writeln!(s);
    // A column of its own only when a host reverted (a step with `confirm`), so the table of
    // every other run stays as it was.
    let reverted = r.waves.iter().any(|w| w.count(HostOutcome::Reverted) > 0);
    let reverted_cell = |n: Option<usize>| match (reverted, n) {
        (false, _) => String::new(),
        (true, None) => format!(" {:>9}", HostOutcome::Reverted.as_str()),
        (true, Some(n)) => format!(" {n:>9}"),
    };
    let _ = writeln!(
        s,
        "{:<14} {:<16} {:>4} {:>7} {:>12} {:>12} {:>12} {:>16} {:>12}{} {:>9}",
        "wave",
        "status",
        HostOutcome::Ok.as_str(),
        HostOutcome::Failed.as_str(),
        "not started",
        HostOutcome::Interrupted.as_str(),
        "rolled back",
        "rollback failed",
        HostOutcome::Unreachable.as_str(),
        reverted_cell(None),
        "duration"
    );
    for w in &r.waves {
        let failed = w.count(HostOutcome::Failed)
            + w.count(HostOutcome::Unhealthy)
            + w.count(HostOutcome::Unknown);
        let _ = writeln!(
            s,
            "{:<14} {:<16} {:>4} {:>7} {:>12} {:>12} {:>12} {:>16} {:>12}{} {:>9}",
            w.name,
            w.status.as_str(),
            w.count(HostOutcome::Ok),
            failed,
            w.count(HostOutcome::NotStarted),
            w.count(HostOutcome::Interrupted),
            w.rollbacks(RollbackOutcome::RolledBack),
            w.rollbacks(RollbackOutcome::RollbackFailed),
            w.count(HostOutcome::Unreachable),
            reverted_cell(Some(w.count(HostOutcome::Reverted))),
            clock(w.duration)
        );
    }
    let failures: Vec<_> = r
        .waves
        .iter()
        .flat_map(|w| w.hosts.iter().map(move |h| (w, h)))
        .filter(|(_, h)| h.failure.is_some())
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(s, "\n{}", console.paint(Paint::Bold, "Failures"));
    }
    for (w, h) in failures {
        if let Some(f) = &h.failure {
            // Details and output come from hosts: their control characters are shown, not
            // obeyed by the terminal.
            let tag = match h.outcome {
                HostOutcome::Reverted => "REVERTED by the host: ",
                _ => "",
            };
            let _ = writeln!(
                s,
                "  {} ({}) {}: {tag}{}",
                h.host,
                w.name,
                f.what,
                visible(&f.detail)
            );
            for line in &f.output {
                let _ = writeln!(s, "      | {}", visible(line));
            }
        }
    }
    let (verdict, bad) = verdict(r.status);
    let paint = if bad { Paint::Error } else { Paint::Ok };
    let _ = writeln!(
        s,
        "\n{} run {} {} in {}",
        console.paint(paint, "Result:"),
        r.run_id,
        verdict,
        clock(r.duration)
    );
    s
}

/// The one-line result of a run and whether it is bad news.
pub fn verdict(status: RunStatus) -> (String, bool) {
    match status {
        RunStatus::Succeeded => (RunStatus::Succeeded.to_string(), false),
        RunStatus::Tolerated => (
            "succeeded with tolerated failures: hosts failed within their wave's budget (exit 6; --allow-tolerated exits 0)".into(),
            true,
        ),
        RunStatus::Failed => (
            "failed: a wave failed and the run halted (exit 1)".into(),
            true,
        ),
        RunStatus::RolledBack => (
            "rolled back: a wave failed and was undone (exit 1)".into(),
            true,
        ),
        RunStatus::RollbackFailed => (
            "ROLLBACK FAILED on some hosts: they need attention (exit 3)".into(),
            true,
        ),
        RunStatus::Aborted => ("aborted by Ctrl-C (exit 4)".into(), true),
        RunStatus::WindowClosed => (
            "aborted: the maintenance window closed (exit 4)".into(),
            true,
        ),
        RunStatus::OutsideWindow => (
            "outside the maintenance window: nothing started (exit 4)".into(),
            true,
        ),
        RunStatus::RecordIncomplete => (
            "RECORD INCOMPLETE: the hosts ended, but the audit store did not record all of the run (exit 5)".into(),
            true,
        ),
        RunStatus::ApprovalRefused => (
            "aborted: an approval gate was refused (exit 4)".into(),
            true,
        ),
        RunStatus::StoreUnreachable => (
            "STOPPED: the audit store could not be reached; resume the run once it is back (exit 7)".into(),
            true,
        ),
        RunStatus::OperatorNeeded => (
            "STOPPED for the operator: a host a worker took over has steps with an unknown outcome; `sluice resume RUN --workers --rerun-unknown` or `--skip-unknown` (exit 4)".into(),
            true,
        ),
    }
}
