//! `sluice version`.

use crate::console::Console;
use crate::error::CliError;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, console: &Console) -> Result<u8, CliError> {
    console.stdout(&format!("sluice {}\n", env!("CARGO_PKG_VERSION")));
    Ok(exit::OK)
}
