//! `sluice store init` (create or migrate the schema of a PostgreSQL store) and `sluice store
//! migrate --from redb:DIR --to URL` (copy a controller's local store into an empty PostgreSQL
//! store, every record byte for byte, then verify the copy's chain ends where the source's does).

use sluice_audit::{AuditLog, OpenMode, StoreLocation};

use super::audit::StateDirArg;
use crate::console::Console;
use crate::error::CliError;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Create the store's schema, or bring it to this sluice's version (`--store URL`).
    Init(InitArgs),
    /// Copy a local redb store into an empty PostgreSQL store, chain preserved and verified.
    Migrate(MigrateArgs),
}

#[derive(Debug, clap::Args)]
struct InitArgs {
    #[command(flatten)]
    store: StateDirArg,
}

#[derive(Debug, clap::Args)]
struct MigrateArgs {
    /// The local store to copy: `redb:DIR` (a state directory).
    #[arg(long, value_name = "redb:DIR")]
    from: String,
    /// The PostgreSQL store to copy into (must hold no records yet).
    #[arg(long, value_name = "URL")]
    to: String,
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    match args.action {
        Action::Init(args) => init(&args, console),
        Action::Migrate(args) => migrate(&args, console),
    }
}

fn init(args: &InitArgs, console: &Console) -> Result<u8, CliError> {
    let location = args.store.location()?;
    AuditLog::open_at(&location, OpenMode::Create)?;
    let version = match location {
        StoreLocation::Postgres(_) => {
            format!("schema version {}", sluice_audit::pg::SCHEMA_VERSION)
        }
        StoreLocation::Redb(_) => format!("record format {}", sluice_audit::store::FORMAT),
    };
    console.status("Ready", format!("{location} ({version})"));
    Ok(exit::OK)
}

fn migrate(args: &MigrateArgs, console: &Console) -> Result<u8, CliError> {
    let from = match StoreLocation::parse(&args.from)? {
        from @ StoreLocation::Redb(_) => from,
        StoreLocation::Postgres(_) => {
            return Err(CliError::invalid_input(
                "--from: name the local store to copy as `redb:DIR`",
            ));
        }
    };
    let StoreLocation::Postgres(to) = StoreLocation::parse(&args.to)? else {
        return Err(CliError::invalid_input(
            "--to: name the PostgreSQL store as `postgres://USER@HOST/DATABASE`",
        ));
    };
    let source = AuditLog::open_at(&from, OpenMode::ReadOnly)?;
    let checked = source.verify()?;
    if let Some(broken) = &checked.broken {
        return Err(CliError::failed(format!(
            "{from}: the audit trail is broken at {broken}; nothing was copied (`sluice audit export` keeps what verifies)"
        )));
    }
    let mut lines = Vec::new();
    source.export(None, &mut lines)?;
    let target = sluice_audit::PgStore::open(&to, OpenMode::Create)?;
    let copied = target.import(&lines, &source.active_leases()?)?;
    let copy = target.verify()?;
    match &copy.broken {
        None if copy.last_hash == checked.last_hash && copy.records == checked.records => {
            console.status(
                "Migrated",
                format!(
                    "{copied} records from {from} to {to}; the chain verifies, head {} (record {})",
                    copy.last_hash, copy.last_seq
                ),
            );
            Ok(exit::OK)
        }
        _ => Err(CliError::failed(format!(
            "the copy in {to} does not verify as the source does (source head {} at record {}, copy {:?}); do not use it",
            checked.last_hash, checked.last_seq, copy
        ))),
    }
}
