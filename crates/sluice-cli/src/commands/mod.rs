//! One module per subcommand. Each exposes an `Args` struct (clap) and
//! `run(args, &Console) -> Result<u8, CliError>` returning an exit code from [`crate::exit`].

pub mod apply;
pub mod plan;
pub mod validate;
pub mod version;
