//! `sluice runs`: recent runs, most recent first.

use sluice_audit::RunSummary;
use sluice_model::{RunState, RunStatus};

use super::audit::StateDirArg;
use crate::console::{Console, Paint};
use crate::error::CliError;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON object per run on stdout (JSON Lines).
    #[arg(long)]
    json: bool,
    /// How many runs to list.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[command(flatten)]
    store: StateDirArg,
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    let log = args.store.open_read_only()?;
    let runs = log.list_runs()?;
    let shown = runs.iter().take(args.limit);
    if args.json {
        for summary in shown {
            console.json_line(&json(summary));
        }
        return Ok(exit::OK);
    }
    if runs.is_empty() {
        console.text("no runs recorded\n");
        return Ok(exit::OK);
    }
    let mut table = format!(
        "{:<22} {:<20} {:<16} {:<20} {:>9} {:>5} {:>6}  {}\n",
        "RUN", "PLAN", "STATUS", "STARTED (UTC)", "DURATION", "OK", "FAILED", "OPERATOR"
    );
    for s in shown {
        let cell = format!("{:<16}", s.status.as_str());
        let status = match s.status {
            RunState::Finished(RunStatus::Succeeded) => console.paint(Paint::Ok, &cell),
            RunState::RUNNING => cell,
            _ => console.paint(Paint::Bad, &cell),
        };
        table.push_str(&format!(
            "{:<22} {:<20} {status} {:<20} {:>9} {:>5} {:>6}  {}\n",
            s.run,
            s.plan_name,
            s.started_at
                .get(..19)
                .unwrap_or(&s.started_at)
                .replace('T', " "),
            s.duration_secs().map_or_else(|| "-".into(), duration),
            s.hosts_ok(),
            s.hosts_failed.len(),
            s.operator
        ));
    }
    for gate in log.pending_approvals()? {
        table.push_str(&format!(
            "\nrun {} waits for approval of wave {} (since {}): sluice approve {} --wave {} --by NAME\n",
            gate.run, gate.wave, gate.since, gate.run, gate.wave
        ));
    }
    console.text(table);
    Ok(exit::OK)
}

/// `{"run","plan","plan_hash","status","exit_code","operator","controller","ticket",
///   "started_at","finished_at","duration_secs","hosts","hosts_ok","hosts_failed"}`
fn json(s: &RunSummary) -> serde_json::Value {
    serde_json::json!({
        "run": s.run,
        "plan": s.plan_name,
        "plan_hash": s.plan_hash,
        "status": s.status,
        "exit_code": s.status.status().map(crate::exit::for_status),
        "operator": s.operator,
        "controller": s.controller,
        "ticket": s.ticket,
        "started_at": s.started_at,
        "finished_at": s.finished_at,
        "duration_secs": s.duration_secs(),
        "hosts": s.hosts,
        "hosts_ok": s.hosts_ok(),
        "hosts_failed": s.hosts_failed.len(),
    })
}

/// `1h02m03s`, `2m03s`, `5s`.
pub fn duration(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m{s:02}s"),
    }
}
