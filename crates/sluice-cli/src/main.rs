//! The `sluice` command line: parse, call the library crates, print.
//!
//! Human output goes to stderr, machine output (`--json`) to stdout, both through [`Console`].
//! Exit codes are defined in [`exit`] and documented in README.md; [`error::CliError`] is the one
//! place library errors become messages and codes.

#[cfg(not(feature = "system-allocator"))]
mod allocator;
mod commands;
mod console;
mod error;
mod event_line;
mod exit;
mod logging;
mod notifications;
mod progress;
mod prompt;
mod signing;
mod ssh;
mod summary;
mod visible;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::console::{ColorChoice, Console, Verbosity};

/// The planner is allocation-bound (a string per rendered value per host): mimalloc compiles a
/// 100,000-host plan about 30% faster than the system allocator (docs/benchmarks.md).
/// The `system-allocator` feature builds with the C library's malloc instead, so a heap profiler
/// that hooks malloc (heaptrack) sees every allocation (docs/benchmarks.md, issue 14).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Staged, reviewable change and patch rollouts over SSH.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "Staged, reviewable change and patch rollouts over SSH."
)]
struct Cli {
    /// Only errors and the final result.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// More detail: each command as it runs (-v); debug logs too (-vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log level of the libraries' logs [default: warn; error with -q; debug with -vv]. RUST_LOG
    /// (e.g. `sluice_ssh=debug`) overrides it.
    #[arg(long, global = true, value_enum, value_name = "LEVEL")]
    log_level: Option<logging::LogLevel>,
    /// Logs as human lines or as JSON objects, on stderr.
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Human)]
    log_format: logging::LogFormat,
    /// Colour in human output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a change plan against an inventory (exit 0 valid, 2 invalid).
    Validate(commands::validate::Args),
    /// Compile a change plan and show it for review; --out saves the artifact to apply.
    Plan(commands::plan::Args),
    /// Print the version.
    Version(commands::version::Args),
    /// Run a change plan wave by wave, with health checks, failure budgets and rollback.
    Apply(commands::apply::Args),
    /// Carry on a run whose controller died, on the same run id; finished steps are not rerun.
    Resume(commands::resume::Args),
    /// Recent runs: id, plan, status, start, duration, hosts ok/failed.
    Runs(commands::runs::Args),
    /// One run, record by record: waves, hosts, steps, decisions, rollbacks.
    Show(commands::show::Args),
    /// Output captured from the steps of a run.
    Logs(commands::logs::Args),
    /// Verify or export the audit trail.
    Audit(commands::audit::Args),
    /// Approve a plan artifact, bound to its exact hash.
    ApprovePlan(commands::approve::PlanArgs),
    /// Approve (or refuse) the gate before a wave of a waiting run.
    Approve(commands::approve::WaveArgs),
    /// Break the host leases of a run whose process is gone.
    Unlock(commands::unlock::Args),
    /// Set up the audit store: create a PostgreSQL store's schema, copy a local store into one.
    Store(commands::store::Args),
    /// Run one ad-hoc command on every targeted host and gather identical outputs.
    Exec(commands::exec::Args),
    /// Show an inventory's hosts, groups and variables (like ansible-inventory).
    Inventory(commands::inventory::Args),
    /// Prometheus metrics of every plan's latest run, from the audit store.
    Metrics(commands::metrics::Args),
    /// Run hosts of runs applied with `--workers`, claimed from the shared PostgreSQL store,
    /// until SIGTERM or Ctrl-C.
    Worker(commands::worker::Args),
    /// Print a shell completion script (bash, zsh, fish).
    Completions(commands::completions::Args),
    /// Write man pages: sluice.1 and one per subcommand.
    Man(commands::completions::ManArgs),
}

fn main() -> ExitCode {
    #[cfg(not(feature = "system-allocator"))]
    allocator::configure();
    let cli = Cli::parse();
    let verbosity = match (cli.quiet, cli.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, 0) => Verbosity::Normal,
        _ => Verbosity::Verbose,
    };
    let console = Console::new(cli.color, verbosity);
    logging::init(
        &logging::LogSettings {
            level: cli.log_level,
            format: cli.log_format,
            quiet: cli.quiet,
            verbose: cli.verbose,
        },
        &console,
    );
    let result = match cli.command {
        Command::Validate(args) => commands::validate::run(args, &console),
        Command::Plan(args) => commands::plan::run(args, &console),
        Command::Version(args) => commands::version::run(args, &console),
        Command::Apply(args) => commands::apply::run(args, &console),
        Command::Resume(args) => commands::resume::run(args, &console),
        Command::Runs(args) => commands::runs::run(args, &console),
        Command::Show(args) => commands::show::run(args, &console),
        Command::Logs(args) => commands::logs::run(args, &console),
        Command::Audit(args) => commands::audit::run(args, &console),
        Command::ApprovePlan(args) => commands::approve::run_plan(args, &console),
        Command::Approve(args) => commands::approve::run_wave(args, &console),
        Command::Unlock(args) => commands::unlock::run(args, &console),
        Command::Store(args) => commands::store::run(args, &console),
        Command::Exec(args) => commands::exec::run(args, &console),
        Command::Inventory(args) => commands::inventory::run(args, &console),
        Command::Metrics(args) => commands::metrics::run(args, &console),
        Command::Worker(args) => commands::worker::run(args, &console),
        Command::Completions(args) => commands::completions::run(args, &console),
        Command::Man(args) => commands::completions::run_man(args, &console),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            console.error(&err.message);
            ExitCode::from(err.exit_code())
        }
    }
}

/// The whole command line definition, for completions and man pages.
pub(crate) fn command_definition() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks its definitions (unique argument ids, valid conflicts) only when a command
    /// is built; this builds every subcommand, so a clash fails here rather than at a user.
    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
