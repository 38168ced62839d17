//! `sluice validate`: check a change plan against an inventory. Exit 0 when valid (warnings
//! included), 2 with every diagnostic when not; `--deny-warnings` makes warnings errors (2).
//! Nothing is written and no host is contacted.

use std::path::PathBuf;

use crate::commands::plan::{InputArgs, compile};
use crate::commands::review::AsOfArg;
use crate::console::Console;
use crate::error::CliError;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The change plan (YAML).
    pub plan: PathBuf,
    #[command(flatten)]
    pub input: InputArgs,
    /// Count warnings as errors: exit 2 when there is any.
    #[arg(long)]
    pub deny_warnings: bool,
    #[command(flatten)]
    pub as_of: AsOfArg,
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    let compiled = compile(&args.plan, &args.input, console)?;
    let a = &compiled.artifact;
    // The warnings found while compiling are printed by `compile`; the artifact's own here.
    let found = sluice_plan::warning::artifact::check(a, args.as_of.clock().now);
    for w in &found {
        let help = w.help().map(|h| format!(" ({h})")).unwrap_or_default();
        console.warn(format!("{w} [{}]{help}", w.code()));
    }
    let warnings = found.len() + compiled.warnings.iter().filter(|d| !d.is_error()).count();
    if args.deny_warnings && warnings > 0 {
        return Err(CliError::invalid_input(format!(
            "{warnings} warning(s), and --deny-warnings makes them errors"
        )));
    }
    let steps = a.steps.len();
    console.status(
        "Valid",
        format!(
            "{} ({} hosts, {} waves, {steps} steps, plan hash {}{})",
            args.plan.display(),
            a.hosts.len(),
            a.waves.len(),
            a.plan_hash,
            match warnings {
                0 => String::new(),
                n => format!(", {n} warning(s)"),
            }
        ),
    );
    Ok(exit::OK)
}
