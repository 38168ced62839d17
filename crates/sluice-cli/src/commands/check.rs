//! `sluice apply --check`: what a plan would do on every targeted host, with nothing changed.
//!
//! Glue around `sluice_lifecycle::check`: the run is recorded (kind `check`) and shown by the
//! same monitor as a change, then summarised per group of hosts with the same verdicts. No
//! confirmation is asked (nothing changes), no approval is required and the maintenance window
//! is not enforced; docs/operations.md, "Check mode", has the contract.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use sluice_audit::{AuditLog, Redactor};
use sluice_exec::{CheckReport, Emitter, HostCheck, Secrets, Shutdown, Transports};
use sluice_lifecycle::check::{CheckRun, start_check_run};
use sluice_model::{CheckVerdict, HostOutcome, RunStatus};
use sluice_plan::{PlanArtifact, TransportKind};
use sluice_ssh::LocalTransport;

use crate::console::{Console, Paint};
use crate::error::CliError;
use crate::exit;
use crate::progress::{Mode, Monitor, clock};
use crate::visible::visible;

/// What `apply --check` needs from `apply`'s arguments.
pub struct CheckArgs {
    pub artifact: PlanArtifact,
    pub log: Arc<AuditLog>,
    pub json: bool,
    /// `--exec-per-step`: a channel per command, no runner.
    pub exec_per_step: bool,
}

pub fn run(args: CheckArgs, console: &Console) -> Result<u8, CliError> {
    let CheckArgs {
        artifact,
        log,
        json,
        exec_per_step,
    } = args;
    let secrets =
        Secrets::load(&artifact.secrets).map_err(|e| CliError::invalid_input(e.to_string()))?;
    let redactor = Arc::new(Redactor::new(secrets.values().values().cloned()));
    let command_line: Vec<String> = std::env::args().collect();
    let started = start_check_run(&log, &artifact, &redactor, &command_line)?;
    console.status(
        "Check",
        format!(
            "{} (recorded in {}): only skip_if guards and `check: true` steps run",
            started.run_id,
            log.path().display()
        ),
    );
    if !artifact.backup.is_empty() {
        let ids: Vec<&str> = artifact.backup.iter().map(|b| b.id.as_str()).collect();
        console.status(
            "Backups",
            format!(
                "not run by --check: {} (an apply runs them before each host's first change step)",
                ids.join(", ")
            ),
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
    let run = CheckRun {
        log,
        started,
        artifact,
        secrets,
        redactor,
        transports: Transports::new(),
        shutdown: Shutdown::new(),
    };
    let finished = runtime.block_on(execute(run, json, exec_per_step, console));
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    let finished = finished?;
    console.text(summary(&finished.report, console));
    if let Some(e) = &finished.unrecorded {
        console.error(format!(
            "the end of check run {} was not recorded in the audit store: {e}",
            finished.report.run_id
        ));
    }
    Ok(exit::for_status(finished.report.status))
}

async fn execute(
    mut run: CheckRun,
    json: bool,
    exec_per_step: bool,
    console: &Console,
) -> Result<sluice_lifecycle::check::CheckFinished, sluice_lifecycle::LifecycleError> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let events = Emitter::new(&run.started.run_id, tx);
    let monitor = Monitor::new(console, Mode::choose(console, json));
    run.transports = Transports::new()
        .with(TransportKind::Local, Arc::new(LocalTransport))
        .with(
            TransportKind::Ssh,
            Arc::new(crate::ssh::transport(
                console,
                &monitor.multi(),
                exec_per_step,
            )),
        );
    let shutdown = run.shutdown.clone();
    let interrupts = tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            shutdown.interrupt();
        }
    });
    let checked = async {
        let finished = run.run(events).await;
        interrupts.abort();
        finished
    };
    let (finished, ()) = tokio::join!(checked, monitor.run(rx));
    finished
}

/// The verdicts of one group of hosts: (step, verdict, the step a guard depends on).
type Verdicts = Vec<(String, CheckVerdict, Option<String>)>;

/// Hosts reached, grouped by identical verdicts, then hosts not reached, then the result.
pub fn summary(report: &CheckReport, console: &Console) -> String {
    let mut s = String::from("\n");
    let mut groups: Vec<(Verdicts, Vec<&HostCheck>)> = Vec::new();
    for host in report.hosts.iter().filter(|h| !h.steps.is_empty()) {
        let key: Verdicts = host
            .steps
            .iter()
            .map(|v| (v.step.clone(), v.verdict, v.depends_on.clone()))
            .collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, hosts)) => hosts.push(host),
            None => groups.push((key, vec![host])),
        }
    }
    for (verdicts, hosts) in &groups {
        let names: Vec<&str> = hosts.iter().map(|h| h.fact.host.as_str()).collect();
        let _ = writeln!(
            s,
            "{} ({} host{}):",
            console.paint(Paint::Bold, &abbreviate(&names)),
            names.len(),
            if names.len() == 1 { "" } else { "s" }
        );
        for (step, verdict, depends_on) in verdicts {
            let _ = writeln!(s, "  {step:<20} {}", shown_verdict(*verdict, depends_on));
        }
    }
    let unreached: Vec<&HostCheck> = report
        .hosts
        .iter()
        .filter(|h| h.fact.outcome != HostOutcome::Ok)
        .collect();
    if !unreached.is_empty() {
        let _ = writeln!(s, "\n{}", console.paint(Paint::Bold, "Problems"));
    }
    for host in unreached {
        let why = match host.fact.connect_error {
            Some(kind) => format!("{} ({kind})", host.fact.outcome),
            None => host.fact.outcome.to_string(),
        };
        let detail = host.fact.error.as_deref().unwrap_or("");
        let _ = writeln!(s, "  {}: {why}: {}", host.fact.host, visible(detail));
    }
    // The host of `run_once` steps is checked for them and again in its wave: count hosts,
    // not checks.
    let all: BTreeSet<&str> = report.hosts.iter().map(|h| h.fact.host.as_str()).collect();
    let reached = report
        .hosts
        .iter()
        .filter(|h| h.fact.connect_error.is_none() && h.fact.outcome != HostOutcome::Unreachable)
        .map(|h| h.fact.host.as_str())
        .collect::<BTreeSet<_>>()
        .len();
    let bad = report.status != RunStatus::Succeeded;
    let paint = if bad { Paint::Error } else { Paint::Ok };
    let _ = writeln!(
        s,
        "\n{} check {} {}: {reached} of {} hosts reached in {}; nothing was changed (exit {})",
        console.paint(paint, "Result:"),
        report.run_id,
        report.status,
        all.len(),
        clock(report.duration),
        exit::for_status(report.status)
    );
    s
}

/// Up to six names, else the first three and the last.
fn abbreviate(names: &[&str]) -> String {
    match names {
        [first, second, third, .., last] if names.len() > 6 => {
            format!("{first}, {second}, {third}, ... {last}")
        }
        _ => names.join(", "),
    }
}

/// A verdict as the summary shows it.
fn shown_verdict(verdict: CheckVerdict, depends_on: &Option<String>) -> String {
    match (verdict, depends_on) {
        (CheckVerdict::WouldRun, _) => "would run".into(),
        (CheckVerdict::WouldSkip, _) => "would be skipped (skip_if exited 0)".into(),
        (CheckVerdict::GuardUnevaluated, Some(step)) => {
            format!("would run, guard cannot be evaluated: depends on step {step}")
        }
        (CheckVerdict::GuardUnevaluated, None) => "would run, guard cannot be evaluated".into(),
        (CheckVerdict::WouldFail, _) => "WOULD FAIL".into(),
        (CheckVerdict::NotReached, _) => "not reached (an earlier step would fail)".into(),
    }
}
