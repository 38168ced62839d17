//! `sluice unlock RUN`: breaks the host leases of a run whose process is gone (recorded). Under
//! a policy with `break_glass: reason` (read from the run's stored plan), it needs `--reason`,
//! which is recorded with the broken leases.

use sluice_plan::PlanArtifact;

use super::audit::StateDirArg;
use crate::console::Console;
use crate::error::CliError;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run whose leases to break.
    run: String,
    /// Who breaks them (recorded) [default: the OS user].
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
    /// Why (recorded); required by a policy with `break_glass: reason`.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    #[command(flatten)]
    store: StateDirArg,
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    let log = args.store.open_existing()?;
    let by = args.by.unwrap_or_else(sluice_audit::operator_name);
    if reason_required(&log, &args.run)? && args.reason.is_none() {
        return Err(sluice_lifecycle::LifecycleError::NeedsReason {
            what: "unlock".into(),
        }
        .into());
    }
    if args.reason.as_deref().is_some_and(|r| r.trim().is_empty()) {
        return Err(CliError::invalid_input(
            "--reason: give the reason in words; nothing was done",
        ));
    }
    let hosts = log.break_leases(&args.run, &by, args.reason.as_deref())?;
    console.status(
        "Unlocked",
        format!(
            "{} hosts of run {}: {}",
            hosts.len(),
            args.run,
            hosts.join(", ")
        ),
    );
    Ok(exit::OK)
}

/// Whether the policy of the run's stored plan wants a reason for overrides.
fn reason_required(log: &sluice_audit::AuditLog, run: &str) -> Result<bool, CliError> {
    let summary = log.run_summary(run)?;
    let Some(value) = log.artifact(&summary.plan_hash)? else {
        return Ok(false);
    };
    let artifact: Result<PlanArtifact, _> = serde_json::from_value(value);
    Ok(artifact
        .ok()
        .and_then(|a| a.policy)
        .is_some_and(|p| p.break_glass_needs_reason))
}
