//! `sluice show RUN`: a run's story, record by record: waves, hosts, steps, decisions,
//! approvals, leases, rollbacks.

use sluice_audit::{Exit, Payload, Record};

use super::audit::{StateDirArg, audit_error};
use crate::console::{Console, Paint};
use crate::error::CliError;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run id (see `sluice runs`).
    run: String,
    /// The run's records on stdout as JSON Lines, exactly as stored (the `audit export` format
    /// without the end line).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StateDirArg,
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    let log = args.store.open_existing()?;
    let records = log.run_records(&args.run).map_err(audit_error)?;
    if args.json {
        for record in &records {
            console.json_line(&serde_json::to_value(record).unwrap_or_default());
        }
        return Ok(exit::OK);
    }
    let summary = log.run_summary(&args.run).map_err(audit_error)?;
    let mut text = format!(
        "run {}  plan {} ({})\noperator {} on {}  ticket {}  status {}\n\n",
        console.paint(Paint::Bold, &summary.run),
        summary.plan_name,
        summary.plan_hash.get(..12).unwrap_or(&summary.plan_hash),
        summary.operator,
        summary.controller,
        summary.ticket.as_deref().unwrap_or("-"),
        summary.status,
    );
    for record in &records {
        let time = record.at.get(11..19).unwrap_or(&record.at);
        let line = format!(
            "{:>6} {time} {:<22} {}\n",
            record.seq,
            record.kind(),
            describe(record)
        );
        let failed = matches!(
            &record.payload,
            Payload::StepResult(r) | Payload::RollbackStepResult(r) if !r.ok
        ) || matches!(&record.payload, Payload::HealthResult(h) if !h.ok);
        text.push_str(&if failed {
            console.paint(Paint::Bad, &line)
        } else {
            line
        });
    }
    console.text(text);
    Ok(exit::OK)
}

/// One line about a record's payload.
fn describe(record: &Record) -> String {
    match &record.payload {
        Payload::RunStarted(s) => format!(
            "{} hosts, {} waves, sluice {}: {}",
            s.hosts.len(),
            s.waves.len(),
            s.sluice_version,
            s.command_line.join(" ")
        ),
        Payload::PlanArtifactStored(p) => format!("plan {}", p.plan_hash),
        Payload::ApprovalRequested(r) => format!(
            "waiting for approval of wave {0}: sluice approve {1} --wave {0} --by NAME",
            r.wave, record.run
        ),
        Payload::Approval(a) => {
            let what = match &a.scope {
                sluice_audit::ApprovalScope::Plan { plan_hash } => format!("plan {plan_hash}"),
                sluice_audit::ApprovalScope::Wave { wave } => format!("wave {wave}"),
            };
            let verb = if a.refused { "refused" } else { "approved" };
            let comment = a
                .comment
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            format!("{what} {verb} by {}{comment}", a.by)
        }
        Payload::LeaseTaken(l) | Payload::LeaseReleased(l) | Payload::LeaseBroken(l) => format!(
            "{} hosts ({}), {} pid {} on {}",
            l.hosts.len(),
            l.hosts.join(", "),
            l.operator,
            l.pid,
            l.controller
        ),
        Payload::WaveStarted(w) => format!("wave {} ({}): {}", w.wave, w.name, w.hosts.join(", ")),
        Payload::WaveDecided(w) => format!(
            "wave {} ({}): {} ok, {} failed of {}, budget {} = {} hosts -> {} ({})",
            w.wave,
            w.name,
            w.succeeded,
            w.failed,
            w.hosts,
            w.budget,
            w.budget_hosts,
            w.decision,
            w.reason
        ),
        Payload::StepIntent(i) => format!(
            "{} {}{}: {}",
            i.host,
            i.step,
            if i.rollback { " (rollback)" } else { "" },
            i.command
        ),
        Payload::StepResult(r) | Payload::RollbackStepResult(r) => format!(
            "{} {}: {} in {} ms, stdout {} B, stderr {} B",
            r.host,
            r.step,
            exit_text(&r.exit),
            r.duration_ms,
            r.stdout.bytes,
            r.stderr.bytes
        ),
        Payload::HealthResult(h) => format!(
            "{} {}: {} ({})",
            h.host,
            h.check,
            if h.ok { "healthy" } else { "unhealthy" },
            h.detail
        ),
        Payload::UnknownStepsResolved(u) => format!(
            "{:?} {} unknown steps, by {}",
            u.choice,
            u.steps.len(),
            u.by
        ),
        Payload::RunResumed(r) => format!(
            "by {} on {} (pid {}); unknown steps: {} guarded, {} idempotent: {}",
            r.operator,
            r.controller,
            r.pid,
            r.guarded.len(),
            r.idempotent.len(),
            r.command_line.join(" ")
        ),
        Payload::RunFinished(f) => format!("{} (exit {})", f.status, f.exit_code),
    }
}

pub fn exit_text(exit: &Exit) -> String {
    match exit {
        Exit::Code(code) => format!("exit {code}"),
        Exit::Signal(signal) => format!("signal {signal}"),
        Exit::None { reason } => reason.clone(),
    }
}
