//! `sluice unlock RUN`: breaks the host leases of a run whose process is gone (recorded).

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
    #[command(flatten)]
    store: StateDirArg,
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    let log = args.store.open_existing()?;
    let by = args.by.unwrap_or_else(sluice_audit::operator_name);
    let hosts = log.break_leases(&args.run, &by)?;
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
