//! One module per subcommand. Each exposes an `Args` struct (clap) and
//! `run(args, &Console) -> Result<u8, CliError>` returning an exit code from [`crate::exit`].

pub mod apply;
pub mod approve;
pub mod audit;
pub mod authorize;
pub mod check;
pub mod completions;
pub mod exec;
pub mod host_lease;
pub mod inventory;
pub mod logs;
pub mod metrics;
pub mod plan;
pub mod plan_diff;
pub mod resume;
pub mod review;
pub mod runs;
pub mod show;
pub mod signatures;
pub mod store;
pub mod unlock;
pub mod validate;
pub mod version;
pub mod worker;
