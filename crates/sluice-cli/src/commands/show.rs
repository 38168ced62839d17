//! `sluice show RUN`: a run's story. First an overview drawn from its records (each wave with
//! its budget arithmetic and decision, failed health checks, rollback steps, the host keys steps
//! ran on), then every record, one line each.

mod waves;

use sluice_audit::{AuditLog, Record};
use sluice_model::{ApprovalScope, Fact, HostOutcome, WaveDecided};

use super::audit::StateDirArg;
use crate::console::{Console, Paint, count};
use crate::error::CliError;
use crate::event_line::ms;
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
    let log = args.store.open_read_only()?;
    let records = log.run_records(&args.run)?;
    if args.json {
        for record in &records {
            console.json_line(&serde_json::to_value(record).unwrap_or_default());
        }
        return Ok(exit::OK);
    }
    let summary = log.run_summary(&args.run)?;
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
    let stage_order = stage_order(&log, &summary.plan_hash);
    text.push_str(&overview(&records, &stage_order, console));
    for record in &records {
        let time = record.at.get(11..19).unwrap_or(&record.at);
        let line = format!(
            "{:>6} {time} {:<22} {}\n",
            record.seq,
            record.kind(),
            // Commands, details and messages may hold text from hosts: shown, not obeyed.
            crate::visible::visible(&describe(record))
        );
        let failed = matches!(
            &record.fact,
            Fact::StepResult(r) | Fact::UndoResult(r) if !r.status.is_success()
        ) || matches!(&record.fact, Fact::HealthResult(h) if !h.ok)
            || matches!(&record.fact, Fact::ConfirmResult(c) if c.outcome != sluice_model::ConfirmOutcome::Confirmed);
        text.push_str(&if failed {
            console.paint(Paint::Bad, &line)
        } else {
            line
        });
    }
    console.text(text);
    Ok(exit::OK)
}

/// One line about a record's fact. Durations read as everywhere else (`0.3s`).
fn describe(record: &Record) -> String {
    match &record.fact {
        Fact::RunStarted(s) => format!(
            "{}, {}, sluice {}: {}",
            count(s.hosts.len(), "host"),
            count(s.waves.len(), "wave"),
            s.sluice_version,
            s.command_line.join(" ")
        ),
        Fact::PlanArtifactStored(p) => format!("plan {}", p.plan_hash),
        Fact::ApprovalRequested(r) => format!(
            "waiting for approval of wave {0}: sluice approve {1} --wave {0} --by NAME",
            r.wave, record.run
        ),
        Fact::Approval(a) => {
            let what = match &a.scope {
                ApprovalScope::Plan { plan_hash } => format!("plan {plan_hash}"),
                ApprovalScope::Wave { wave } => format!("wave {wave}"),
                ApprovalScope::RunStart { plan_hash } => {
                    format!("start of the run (plan {plan_hash})")
                }
            };
            let verb = if a.refused { "refused" } else { "approved" };
            let comment = a
                .comment
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            let signed = a
                .signature
                .as_ref()
                .map(|s| format!(", signed with {}", s.key))
                .unwrap_or_default();
            format!("{what} {verb} by {} ({}{signed}){comment}", a.by, a.how)
        }
        Fact::LeaseTaken(l) | Fact::LeaseReleased(l) | Fact::LeaseBroken(l) => format!(
            "{} ({}), {} pid {} on {}",
            count(l.hosts.len(), "host"),
            l.hosts.join(", "),
            l.operator,
            l.pid,
            l.controller
        ),
        Fact::StageStarted(s) => format!(
            "stage {} on {} ({}){}",
            s.stage,
            count(s.hosts.len(), "host"),
            s.hosts.join(", "),
            if s.after.is_empty() {
                String::new()
            } else {
                format!(", after {}", s.after.join(", "))
            }
        ),
        Fact::StageFinished(s) => format!(
            "stage {}: {} ({}) in {} ms",
            s.stage, s.status, s.reason, s.duration_ms
        ),
        Fact::WaveStarted(w) => format!(
            "wave {} ({}), budget {} = {} hosts: {}",
            w.index,
            w.wave,
            w.budget,
            w.max_failed,
            w.hosts.join(", ")
        ),
        Fact::WaveDecided(w) => format!("{}: {}", w.wave, arithmetic(w)),
        Fact::HostStarted(h) => format!("{} ({})", h.host, h.wave),
        Fact::HostFinished(h) => match &h.error {
            Some(e) => format!("{} ({}): {}: {e}", h.host, h.wave, h.outcome),
            None => format!("{} ({}): {}", h.host, h.wave, h.outcome),
        },
        Fact::StepIntent(i) | Fact::UndoIntent(i) => {
            format!("{} {}: {}", i.host, i.step, i.command)
        }
        Fact::StepResult(r) | Fact::UndoResult(r) => format!(
            "{} {}: {} ({}) in {}, stdout {} B, stderr {} B",
            r.host,
            r.step,
            r.status,
            r.detail,
            ms(r.duration_ms),
            r.stdout.bytes,
            r.stderr.bytes
        ),
        Fact::ConfirmArmed(a) => format!(
            "{} {}: armed for {} ({} {} in {})",
            a.host,
            a.step,
            ms(a.within_ms),
            a.timer,
            a.unit,
            a.dir
        ),
        Fact::ConfirmResult(c) => match c.undo_exit_code {
            Some(code) => format!(
                "{} {}: {} ({}), undo exit {code}, in {}",
                c.host,
                c.step,
                c.outcome,
                c.detail,
                ms(c.duration_ms)
            ),
            None => format!(
                "{} {}: {} ({}) in {}",
                c.host,
                c.step,
                c.outcome,
                c.detail,
                ms(c.duration_ms)
            ),
        },
        Fact::StepRetrying(r) => format!(
            "{} {}: attempt {} in {}",
            r.host,
            r.step,
            r.next_attempt,
            ms(r.delay_ms)
        ),
        Fact::HealthResult(h) => format!(
            "{} {} round {}: {} ({})",
            h.host,
            h.check,
            h.round,
            if h.ok { "healthy" } else { "unhealthy" },
            h.detail
        ),
        Fact::RollbackStarted(r) => format!("wave {}: {}", r.wave, r.hosts.join(", ")),
        Fact::HostRolledBack(h) => format!("{} ({}): {}", h.host, h.wave, h.outcome),
        Fact::RollbackFinished(r) => format!(
            "wave {}: {} rolled back, {} failed",
            r.wave, r.rolled_back, r.failed
        ),
        Fact::PauseStarted(p) => format!("after {}: {}", p.after_wave, ms(p.duration_ms)),
        Fact::PauseFinished(p) => format!("after {}", p.after_wave),
        Fact::PolicyChecked(p) => {
            let accepted: Vec<&str> = p.accepted.iter().map(|a| a.by.as_str()).collect();
            format!(
                "{} of {} approvals required by distinct principals: {}; {} rejected",
                accepted.len(),
                p.required,
                if accepted.is_empty() {
                    "none".to_string()
                } else {
                    accepted.join(", ")
                },
                p.rejected.len()
            )
        }
        Fact::Decision(d) => match &d.wave {
            Some(w) => format!("{} [{w}]: {}", d.decision, d.reason),
            None => format!("{}: {}", d.decision, d.reason),
        },
        Fact::Warning(w) => match &w.host {
            Some(h) => format!("{h}: {}", w.message),
            None => w.message.clone(),
        },
        Fact::UnknownStepsResolved(u) => {
            format!("{} {} unknown steps, by {}", u.choice, u.steps.len(), u.by)
        }
        Fact::RunResumed(r) => format!(
            "by {} on {} (pid {}); unknown steps: {} guarded, {} idempotent: {}",
            r.operator,
            r.controller,
            r.pid,
            r.guarded.len(),
            r.idempotent.len(),
            r.command_line.join(" ")
        ),
        Fact::StepChecked(c) => match &c.depends_on {
            Some(step) => format!(
                "{} {}: {} (depends on {step}): {}",
                c.host, c.step, c.verdict, c.detail
            ),
            None => format!("{} {}: {}: {}", c.host, c.step, c.verdict, c.detail),
        },
        Fact::HostChecked(h) => {
            let why = h
                .connect_error
                .map(|k| format!(" ({k})"))
                .unwrap_or_default();
            match &h.error {
                Some(e) => format!("{} ({}): {}{why}: {e}", h.host, h.wave, h.outcome),
                None => format!("{} ({}): {}", h.host, h.wave, h.outcome),
            }
        }
        Fact::BackupStarted(b) => format!("{} {}: {}", b.host, b.backup, b.command),
        Fact::BackupResult(b) => match &b.evidence {
            Some(e) => format!(
                "{} {}: verified in {}; verify output sha256 {} ({} bytes)",
                b.host,
                b.backup,
                ms(b.duration_ms),
                e.verify_sha256,
                e.verify_bytes
            ),
            None => format!("{} {}: {} ({})", b.host, b.backup, b.status, b.detail),
        },
        Fact::HostLeaseTaken(l) | Fact::HostLeaseReleased(l) => format!(
            "{}: {} (run {}, until {})",
            l.host, l.path, l.holder_run, l.expires_at
        ),
        Fact::HostLeaseBroken(l) => format!(
            "{}: {} of run {} ({} on {}, expired {}): {}",
            l.host,
            l.path,
            l.holder_run,
            l.holder_operator,
            l.holder_controller,
            l.expires_at,
            l.reason.as_deref().unwrap_or("")
        ),
        Fact::NotificationFailed(n) => format!(
            "{} (event {}) to webhook {} ({}): not delivered after {} attempt(s): {}",
            n.event, n.event_id, n.target, n.endpoint, n.attempts, n.reason
        ),
        Fact::HostClaimed(c) => claimed(c),
        Fact::HostNeedsOperator(n) => needs_operator(n),
        Fact::RunFinished(f) => format!(
            "{} (exit {}) after {}",
            f.status,
            crate::exit::for_status(f.status),
            ms(f.duration_ms)
        ),
    }
}

/// A worker's claim of a host (`sluice worker`), as `show` and the live display say it.
pub(crate) fn claimed(c: &sluice_model::HostClaimed) -> String {
    let verb = match c.task {
        sluice_model::WorkerTask::Host => "runs",
        sluice_model::WorkerTask::Undo => "undoes",
        sluice_model::WorkerTask::Once => "runs the run_once steps on",
    };
    let over = c
        .reclaimed_from
        .as_deref()
        .map(|w| format!(", taken over from worker {w} (its heartbeat expired)"))
        .unwrap_or_default();
    format!(
        "worker {} {verb} {} (wave {}){over}",
        c.worker, c.host, c.wave
    )
}

/// A host a worker could not carry on without the operator.
pub(crate) fn needs_operator(n: &sluice_model::HostNeedsOperator) -> String {
    let steps: Vec<&str> = n.steps.iter().map(|s| s.step.as_str()).collect();
    format!(
        "worker {} took over {} and found step(s) {} with an unknown outcome: nothing runs on it until the operator decides (`sluice resume RUN --workers --rerun-unknown` or `--skip-unknown`)",
        n.worker,
        n.host,
        steps.join(", ")
    )
}

/// A wave's outcome and the decision after it, with the numbers to check it by.
fn arithmetic(w: &WaveDecided) -> String {
    let mut counts = format!("{} ok, {} failed", w.ok, w.failed);
    if w.unreachable > 0 {
        counts.push_str(&format!(" ({} unreachable)", w.unreachable));
    }
    for (n, what) in [
        (w.interrupted, HostOutcome::Interrupted.as_str()),
        (w.not_started, "not started"),
    ] {
        if n > 0 {
            counts.push_str(&format!(", {n} {what}"));
        }
    }
    format!(
        "{counts} of {}, budget {} = {} -> {}: {}",
        count(w.hosts, "host"),
        w.budget,
        count(w.max_failed, "host"),
        w.decision,
        w.reason
    )
}

/// The names of the stages of the plan with hash `plan_hash`, in the plan's (execution) order;
/// empty for a plan without stages or an artifact the store does not hold.
fn stage_order(log: &AuditLog, plan_hash: &str) -> Vec<String> {
    let Ok(Some(artifact)) = log.artifact(plan_hash) else {
        return Vec::new();
    };
    artifact["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .collect()
}

/// The overview above the record list: waves and decisions (under their stage in a plan with
/// stages), failed health checks, rollback steps and host keys. Sections with nothing to say
/// are left out.
fn overview(records: &[Record], stage_order: &[String], console: &Console) -> String {
    let mut waves = waves::WaveSection::default();
    let mut health = String::new();
    let mut rollback = String::new();
    let mut keys: Vec<(&str, &str)> = Vec::new();
    let mut undos_sent: Vec<(&str, &str)> = Vec::new();
    for record in records {
        match &record.fact {
            Fact::WaveStarted(w) => waves.wave_started(w),
            Fact::WaveDecided(w) => waves.wave_decided(w, console),
            Fact::StageStarted(s) => waves.stage_started(s),
            Fact::StageFinished(s) => waves.stage_finished(s),
            Fact::HealthResult(h) if !h.ok => health.push_str(&format!(
                "  {} {} ({}) round {}: {}\n",
                h.host,
                h.check,
                h.probe,
                h.round,
                crate::visible::visible(&h.detail)
            )),
            Fact::UndoIntent(i) => undos_sent.push((&i.host, &i.step)),
            Fact::UndoResult(r) => {
                undos_sent.retain(|sent| *sent != (r.host.as_str(), r.step.as_str()));
                let verdict = if r.status.is_success() {
                    "undone"
                } else {
                    "UNDO FAILED"
                };
                rollback.push_str(&format!(
                    "  {} {}: {verdict} ({})\n",
                    r.host,
                    r.step,
                    crate::visible::visible(&r.detail)
                ));
            }
            _ => {}
        }
        if let Fact::StepResult(r) | Fact::UndoResult(r) = &record.fact
            && let Some(key) = &r.host_key_fingerprint
            && !keys.contains(&(r.host.as_str(), key.as_str()))
        {
            keys.push((&r.host, key));
        }
    }
    // An undo sent with no result recorded: the controller stopped while it ran.
    for (host, step) in undos_sent {
        rollback.push_str(&format!(
            "  {host} {step}: sent, no result recorded (unknown)\n"
        ));
    }
    // A wave started with no decision recorded: the controller stopped during it.
    let waves = waves.render(stage_order);
    let mut out = String::new();
    for (title, body) in [
        waves,
        ("failed health checks", health),
        ("rollback", rollback),
    ] {
        if !body.is_empty() {
            out.push_str(&format!("{title}\n{body}\n"));
        }
    }
    if !keys.is_empty() {
        out.push_str("host keys\n");
        for (host, key) in keys {
            out.push_str(&format!("  {host:<12} {key}\n"));
        }
        out.push('\n');
    }
    out
}
