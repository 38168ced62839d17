//! The one error type of the audit crate: what went wrong, where (the store, a sequence number,
//! a run), and [`StoreName`], what an error calls the store.

use std::path::PathBuf;

use crate::lease::Lease;
use crate::pg::StoreUrl;

/// The store an error speaks of, named as what it is: the redb store by its file, a PostgreSQL
/// store by its URL (which never holds a password: [`StoreUrl::parse`] refuses one). Shown as
/// `audit store /var/lib/sluice/audit.redb` or `PostgreSQL audit store postgres://…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreName {
    /// The redb store's file (`audit.redb` in the state directory).
    File(PathBuf),
    /// A PostgreSQL store's URL.
    Database(StoreUrl),
}

impl std::fmt::Display for StoreName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreName::File(path) => write!(f, "audit store {}", path.display()),
            StoreName::Database(url) => write!(f, "PostgreSQL audit store {url}"),
        }
    }
}

/// Everything that can go wrong opening, writing, reading or verifying the audit trail.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "no state directory: pass --state-dir, set SLUICE_STATE_DIR, or set HOME so that ~/.local/state/sluice can be used"
    )]
    NoStateDir,

    #[error("cannot create the state directory {path}: {source}")]
    CreateStateDir {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot lock {path} (taken while the audit store is opened or created): {source}")]
    LockFile {
        path: PathBuf,
        source: std::io::Error,
    },

    /// sluice processes share the store; this is another program (or an older sluice) that
    /// opened the file for itself.
    #[error(
        "the audit store {path} is held exclusively by another program (`fuser {path}` names it); no change can start until it lets go"
    )]
    Locked { path: PathBuf },

    #[error(
        "the audit store {path} cannot be opened: {reason}. No new change will start with a damaged audit trail; `sluice audit export --state-dir ...` exports what can still be read, then move the file aside"
    )]
    Corrupt { path: PathBuf, reason: String },

    #[error(
        "the audit store {path} belongs to controller {owner}, not to this one ({here}: $SLUICE_CONTROLLER, else the host name); each controller keeps its own store (use another --state-dir)"
    )]
    OtherController {
        path: PathBuf,
        owner: String,
        here: String,
    },

    #[error("no audit store at {path} (nothing has been recorded yet)")]
    Missing { path: PathBuf },

    /// A write through a log opened for reading ([`crate::AuditLog::open_read_only`]).
    #[error("the {store} was opened for reading: nothing can be recorded through it")]
    ReadOnly { store: StoreName },

    #[error("audit store {path}: {source}")]
    Storage {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },

    #[error("{store}: record {seq} is unreadable ({reason}); run `sluice audit verify`")]
    BadRecord {
        store: StoreName,
        seq: u64,
        reason: String,
    },

    #[error("cannot encode a {kind} record of run {run}: {source}")]
    Encode {
        run: String,
        kind: &'static str,
        source: serde_json::Error,
    },

    #[error("no run {run} in the audit store")]
    UnknownRun { run: String },

    #[error("run {run} has no wave {wave}")]
    UnknownWave { run: String, wave: String },

    /// The gate cannot be answered: the run finished, the wave has no gate, or it was passed.
    #[error(
        "the gate before wave {wave} of run {run} cannot be answered: {why}; nothing was recorded"
    )]
    GateClosed {
        run: String,
        wave: String,
        why: String,
    },

    #[error("not an approval of a plan (scope `plan`)")]
    NotAPlanApproval,

    #[error("not an answer to a gate (scope `wave`)")]
    NotAGateApproval,

    #[error(
        "host {host} is leased by run {} (operator {}, controller {}, pid {}, since {}); wait for it, or `sluice unlock {}` if that process is gone",
        holder.run, holder.operator, holder.controller, holder.pid, holder.since, holder.run
    )]
    LeaseHeld { host: String, holder: Box<Lease> },

    #[error(
        "run {run} still holds its leases: its process {pid} on {controller} is alive (or on another controller); stop it first"
    )]
    LeaseHolderAlive {
        run: String,
        pid: u32,
        controller: String,
    },

    #[error("run {run} already finished ({status}); there is nothing to resume")]
    RunFinished {
        run: String,
        status: sluice_model::RunState,
    },

    /// The store was written in a record format this sluice does not read.
    #[error(
        "the audit store {path} holds records in format {found}, and this sluice reads format {supported}; export it with the sluice that wrote it (`sluice audit export`), then start a new store (another --state-dir)"
    )]
    Format {
        path: PathBuf,
        found: String,
        supported: &'static str,
    },

    #[error("run {run} holds no leases")]
    NoLeases { run: String },

    /// The PostgreSQL store failed; `unreachable` when the database could not be reached or went
    /// away (a run stops and can be resumed once it is back).
    #[error("{store}: {reason}")]
    Database {
        store: StoreName,
        reason: String,
        unreachable: bool,
    },

    /// The database holds a schema this sluice does not know (written by a newer sluice).
    #[error(
        "the PostgreSQL audit store {store} has schema version {found}, and this sluice knows up to version {known}; use a newer sluice"
    )]
    SchemaNewer {
        store: String,
        found: i32,
        known: i32,
    },

    /// The database has no sluice schema yet and the command does not create one.
    #[error(
        "the PostgreSQL audit store {store} has not been initialised (nothing has been recorded yet); `sluice store init --store {store}` creates its schema"
    )]
    NotInitialised { store: String },

    /// A `--store`/`SLUICE_STORE` value that names no store this sluice can open.
    #[error("--store {url}: {reason}")]
    BadStoreUrl { url: String, reason: String },

    /// A worker's claim of a host is no longer its own (it was judged dead and another worker
    /// took the host over, or the coordinator withdrew it): nothing it records for the host
    /// is accepted.
    #[error(
        "worker {worker} no longer holds its claim of host {host} of run {run}: another worker took it over"
    )]
    ClaimLost {
        worker: String,
        run: String,
        host: String,
    },

    /// A feature that only a store shared through PostgreSQL has (workers).
    #[error(
        "{what} needs the PostgreSQL store (`--store postgres://…`); {store} is a local redb store"
    )]
    NeedsPostgres { what: String, store: String },

    /// Another live worker already has this name.
    #[error(
        "a worker named {name} is already running (pid {pid} on {machine}); give this one another --name"
    )]
    WorkerNameTaken {
        name: String,
        pid: u32,
        machine: String,
    },

    #[error("cannot read the export: {0}")]
    Read(#[source] std::io::Error),

    #[error("cannot write the export: {0}")]
    Write(#[source] std::io::Error),
}

impl AuditError {
    /// The store could not be reached (a database that went away), as opposed to one that
    /// refused what it was given: what was not committed may be committed once it is back.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            AuditError::Database {
                unreachable: true,
                ..
            }
        )
    }

    /// Wraps a redb error with the store path it came from.
    pub(crate) fn storage(path: &std::path::Path, err: impl Into<redb::Error>) -> Self {
        AuditError::Storage {
            path: path.to_path_buf(),
            source: err.into(),
        }
    }
}
