//! The PostgreSQL store: the audit trail of a team, shared by every controller that points
//! `--store` at the same database.
//!
//! - `url.rs`: the URL (refused with a password), the connection settings, `~/.pgpass`.
//! - `conn.rs`: the client (`tokio-postgres`) driven on a private runtime thread, so the store's
//!   synchronous methods work from any thread, inside a tokio runtime or not; TLS.
//! - `schema.rs`: the versioned migrations (`sluice.schema_version`).
//! - `tx.rs`: one write transaction: the chain's tip locked, records appended with the redb
//!   store's canonical bytes and hashes, the indexes kept in step.
//! - `lease.rs`: leases with an expiry renewed by a heartbeat (`heartbeat.rs`). Approvals,
//!   leases and resume are written once for both backends (`crate::store_tx`).
//! - `read.rs`: the queries, `verify` and `export`; `import.rs`: `sluice store migrate`.
//! - `worker.rs`: workers (`sluice worker`) and their heartbeat; `shard.rs`: hosts of a run
//!   handed to workers (claimed, fenced records, take-over); `queue.rs`: the coordinator's side
//!   of them (queued, their ends, withdrawn, closed with the run).
//!
//! **Invariant:** every write transaction starts by locking the one row of `sluice.chain_tip`
//! (`SELECT … FOR UPDATE`), so writers from every controller are serialised and the chain
//! never forks; the tip row is updated in the same transaction as the records. Commits are
//! synchronous (`synchronous_commit = on` for every session): a commit that returned is on
//! the database's disk.

mod conn;
mod heartbeat;
mod import;
mod lease;
mod queue;
mod read;
mod schema;
mod shard;
mod tx;
mod url;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

pub use queue::{Queued, ends_wait};
pub use schema::SCHEMA_VERSION;
pub use shard::{AssignmentState, Claim, Fence, FencedEntry, HostOrder, StopRequest, ends_task};
pub use url::StoreUrl;
pub use worker::{HeldHost, LiveWorker, WorkerRegistration, WorkerSpec};

use crate::audit_log::OpenMode;
use crate::error::{AuditError, StoreName};
use crate::lease::LeaseHolder;
use crate::store_tx::WritableStore;
use conn::Connection;
pub(crate) use tx::PgTx;

/// How long a lease lives without a heartbeat unless `SLUICE_LEASE_EXPIRY` (seconds) says
/// otherwise: a controller that dies leaves leases another controller may take over after this.
pub const DEFAULT_LEASE_EXPIRY: Duration = Duration::from_secs(60);

/// The audit trail in a PostgreSQL database; see the module documentation.
pub struct PgStore {
    url: StoreUrl,
    /// The URL as a path, for [`PgStore::path`].
    label: PathBuf,
    /// The store as errors name it: its URL.
    name: StoreName,
    config: tokio_postgres::Config,
    controller: String,
    mode: OpenMode,
    lease_expiry: Duration,
    /// One connection, reopened when the database closed it (a restart).
    client: Mutex<Option<Connection>>,
    heartbeat: Mutex<Option<heartbeat::Heartbeat>>,
    /// Run summaries as this process last committed them (`crate::summary_cache`).
    pub(crate) summaries: crate::summary_cache::SharedSummaryCache,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &self.url).finish()
    }
}

impl PgStore {
    /// Connects and checks the schema: `Create` and `Existing` apply the migrations this sluice
    /// knows (`Existing` only to a store that was initialised); every mode refuses a schema newer
    /// than this sluice's.
    pub fn open(url: &StoreUrl, mode: OpenMode) -> Result<PgStore, AuditError> {
        let lease_expiry = std::env::var("SLUICE_LEASE_EXPIRY")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|secs| *secs > 0.0 && secs.is_finite())
            .map_or(DEFAULT_LEASE_EXPIRY, Duration::from_secs_f64);
        Self::open_with_lease_expiry(url, mode, lease_expiry)
    }

    /// As [`PgStore::open`], with the lease expiry given rather than read from
    /// `SLUICE_LEASE_EXPIRY`.
    pub fn open_with_lease_expiry(
        url: &StoreUrl,
        mode: OpenMode,
        lease_expiry: Duration,
    ) -> Result<PgStore, AuditError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let config = url.config(&env)?;
        let store = PgStore {
            url: url.clone(),
            label: PathBuf::from(url.to_string()),
            name: StoreName::Database(url.clone()),
            config,
            controller: crate::identity::controller_name(),
            mode,
            lease_expiry,
            client: Mutex::new(None),
            heartbeat: Mutex::new(None),
            summaries: crate::summary_cache::SharedSummaryCache::default(),
        };
        store.with_client(|conn| schema::prepare(conn, &store, mode))?;
        Ok(store)
    }

    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// The URL as a path, where a caller wants one path for either backend
    /// ([`crate::AuditLog::path`]); errors name the store by [`PgStore::name`].
    pub fn path(&self) -> &Path {
        &self.label
    }

    /// The store as errors name it: its URL (never with a password).
    pub fn name(&self) -> &StoreName {
        &self.name
    }

    pub fn controller(&self) -> &str {
        &self.controller
    }

    /// A run-time setting of the store's session (`SHOW name`).
    pub fn setting(&self, name: &str) -> Result<String, AuditError> {
        self.with_client(|conn| {
            let rows = conn.query("SELECT current_setting($1)", &[&name])?;
            Ok(rows.first().map(|r| r.get(0)).unwrap_or_default())
        })
    }

    /// How long a lease lives without a heartbeat.
    pub fn lease_expiry(&self) -> Duration {
        self.lease_expiry
    }

    /// Runs `f` with the connection, connecting (again) first when there is none or the
    /// database closed it.
    pub(crate) fn with_client<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, AuditError>,
    ) -> Result<T, AuditError> {
        let mut slot = self
            .client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.as_ref().is_none_or(Connection::is_closed) {
            *slot = None;
            *slot = Some(Connection::open(&self.config, self.mode, &self.name)?);
        }
        match slot.as_mut() {
            Some(conn) => f(conn),
            None => Err(self.unreachable("no connection")),
        }
    }

    /// The URL as written, for the errors that carry it as text.
    pub(crate) fn store_name(&self) -> &str {
        self.url.text()
    }

    pub(crate) fn unreachable(&self, reason: &str) -> AuditError {
        AuditError::Database {
            store: self.name.clone(),
            reason: reason.to_string(),
            unreachable: true,
        }
    }
}

impl WritableStore for PgStore {
    type Tx<'t> = PgTx<'t>;

    /// Runs `f` in one write transaction holding the chain's tip, and commits it durably.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Self::Tx<'_>) -> Result<T, AuditError>,
    ) -> Result<T, AuditError> {
        if self.mode == OpenMode::ReadOnly {
            return Err(AuditError::ReadOnly {
                store: self.name.clone(),
            });
        }
        self.with_client(|conn| {
            let mut tx = PgTx::begin(conn, self)?;
            let value = f(&mut tx)?;
            tx.commit()?;
            Ok(value)
        })
    }

    /// Starts renewing `holder`'s leases, once per store handle.
    fn leases_taken(&self, holder: &LeaseHolder) {
        let mut beat = self
            .heartbeat
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if beat.is_none() {
            *beat = heartbeat::Heartbeat::start(self, holder).ok();
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Stop renewing this process's leases: they expire unless released first.
        if let Ok(mut beat) = self.heartbeat.lock() {
            beat.take();
        }
    }
}
