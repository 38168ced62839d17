//! The `sluice` command line: parse, call the library crates, print.
//!
//! Human output goes to stderr, machine output (`--json`) to stdout. Exit codes are defined in
//! [`exit`] and documented in README.md.

mod exit;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Staged, reviewable change and patch rollouts over SSH.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version and the build's features.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("sluice {}", env!("CARGO_PKG_VERSION"));
            ExitCode::from(exit::OK)
        }
    }
}
