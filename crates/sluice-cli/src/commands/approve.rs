//! `sluice approve-plan plan.json --by NAME` (an approval bound to the artifact's exact hash) and
//! `sluice approve RUN --wave W --by NAME` (answers a waiting run's gate; the executor polls the
//! store for it).

use std::path::PathBuf;

use sluice_plan::PlanArtifact;

use super::audit::StateDirArg;
use crate::console::Console;
use crate::error::CliError;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The plan artifact (JSON, as written by `sluice plan`).
    plan: PathBuf,
    /// Who approves (recorded).
    #[arg(long, value_name = "NAME")]
    by: String,
    #[arg(long)]
    comment: Option<String>,
    #[command(flatten)]
    store: StateDirArg,
}

#[derive(Debug, clap::Args)]
pub struct WaveArgs {
    /// The waiting run.
    run: String,
    /// The wave whose gate to answer: its name, or its 0-based index.
    #[arg(long, value_name = "W")]
    wave: String,
    /// Who approves (recorded).
    #[arg(long, value_name = "NAME")]
    by: String,
    #[arg(long)]
    comment: Option<String>,
    /// Refuse instead: the run stops before the wave.
    #[arg(long)]
    refuse: bool,
    #[command(flatten)]
    store: StateDirArg,
}

pub fn run_plan(args: PlanArgs, console: &Console) -> Result<u8, CliError> {
    let shown = args.plan.display();
    let bytes = std::fs::read(&args.plan)
        .map_err(|err| CliError::invalid_input(format!("cannot read {shown}: {err}")))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|err| CliError::invalid_input(format!("{shown} is not JSON: {err}")))?;
    let artifact: PlanArtifact = serde_json::from_value(value.clone()).map_err(|err| {
        CliError::invalid_input(format!("{shown} is not a sluice plan artifact: {err}"))
    })?;
    if !artifact.hash_is_valid() {
        return Err(CliError::invalid_input(format!(
            "{shown}: its plan_hash does not match its content (edited after `sluice plan`?); \
             nothing was approved"
        )));
    }
    let log = args.store.open()?;
    let appended = log.approve_plan(&artifact.plan_hash, Some(value), &args.by, args.comment)?;
    console.status(
        "Approved",
        format!(
            "plan {} ({}) by {} (record {})",
            artifact.name, artifact.plan_hash, args.by, appended.seq
        ),
    );
    Ok(exit::OK)
}

pub fn run_wave(args: WaveArgs, console: &Console) -> Result<u8, CliError> {
    let log = args.store.open_existing()?;
    let appended = log.approve_wave(&args.run, &args.wave, &args.by, args.comment, args.refuse)?;
    let verb = if args.refuse { "Refused" } else { "Approved" };
    console.status(
        verb,
        format!(
            "wave {} of run {} by {} (record {})",
            args.wave, args.run, args.by, appended.seq
        ),
    );
    Ok(exit::OK)
}
