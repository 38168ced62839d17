//! `sluice validate`: check a change plan against an inventory. Exit 0 when valid, 2 with every
//! diagnostic when not. Nothing is written and no host is contacted.

use std::path::PathBuf;

use crate::commands::plan::{InputArgs, compile};
use crate::console::Console;
use crate::error::CliError;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The change plan (YAML).
    pub plan: PathBuf,
    #[command(flatten)]
    pub input: InputArgs,
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    let compiled = compile(&args.plan, &args.input, console)?;
    let a = &compiled.artifact;
    let steps = a.steps.len();
    console.status(
        "Valid",
        format!(
            "{} ({} hosts, {} waves, {steps} steps, plan hash {})",
            args.plan.display(),
            a.hosts.len(),
            a.waves.len(),
            a.plan_hash
        ),
    );
    Ok(exit::OK)
}
