//! The store interface: [`AuditLog`], one audit trail over either backend — the embedded redb
//! file of one controller ([`RedbStore`], the default) or a PostgreSQL database a team shares
//! ([`crate::pg::PgStore`]) — and [`StoreLocation`], which of the two a command was pointed at.
//!
//! Both backends write the same records with the same canonical bytes and hash chain, derive the
//! same indexes in the same transaction as the record, and answer the same questions; the
//! callers (the lifecycle, the CLI, the metrics, the review) never ask which one they hold. What
//! differs is documented on each backend: how a lease holder is judged alive (a local pid for
//! redb, a heartbeat in the database for PostgreSQL) and what "the store" is in messages (a
//! file path, or the database URL without its password).

use std::io::Write;
use std::path::{Path, PathBuf};

use sluice_model::{Approval, Fact, RunFinished, RunResumed, RunStarted, UnknownStepsResolved};

use crate::approvals::{self, Gate};
use crate::error::{AuditError, StoreName};
use crate::export::{ExportEnd, VerifyReport};
use crate::journal;
use crate::lease::{self, Lease, LeaseHolder};
use crate::pg::{PgStore, StoreUrl};
use crate::query::{PendingGate, RunSummary, StepOutput};
use crate::record::{Entry, Record};
use crate::store::{Appended, RedbStore};
use crate::store_tx;

/// Where the audit trail lives, as `--store`/`SLUICE_STORE` or `--state-dir` said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// The embedded store: `audit.redb` in this state directory.
    Redb(PathBuf),
    /// A PostgreSQL database (`postgres://` or `postgresql://`).
    Postgres(StoreUrl),
}

impl StoreLocation {
    /// Reads a `--store` value: `postgres://…`/`postgresql://…`, or `redb:DIR` (a state
    /// directory). A URL that carries a password is refused: it would show in process listings
    /// and shell history (use `PGPASSWORD` or `~/.pgpass`).
    pub fn parse(text: &str) -> Result<StoreLocation, AuditError> {
        if let Some(dir) = text.strip_prefix("redb:") {
            if dir.is_empty() {
                return Err(AuditError::BadStoreUrl {
                    url: text.to_string(),
                    reason: "`redb:` needs a state directory (`redb:/var/lib/sluice`)".into(),
                });
            }
            return Ok(StoreLocation::Redb(PathBuf::from(dir)));
        }
        StoreUrl::parse(text).map(StoreLocation::Postgres)
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Redb(dir) => write!(f, "redb:{}", dir.display()),
            StoreLocation::Postgres(url) => write!(f, "{url}"),
        }
    }
}

/// How a command opens the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// To write, creating the store (redb: the file; PostgreSQL: the schema) if there is none.
    Create,
    /// To write to a store that exists.
    Existing,
    /// To read without writing anything.
    ReadOnly,
}

/// The audit trail of runs, on whichever backend it lives; see the module documentation.
pub struct AuditLog {
    backend: Backend,
}

// A process holds one or two stores: their sizes do not matter, and boxing one would only add
// an indirection to every call.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Redb(RedbStore),
    Postgres(PgStore),
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("store", &self.location())
            .finish()
    }
}

impl From<RedbStore> for AuditLog {
    fn from(store: RedbStore) -> Self {
        AuditLog {
            backend: Backend::Redb(store),
        }
    }
}

/// A PostgreSQL store opened with settings of its own (as [`PgStore::open_with_lease_expiry`]).
impl From<PgStore> for AuditLog {
    fn from(store: PgStore) -> Self {
        AuditLog {
            backend: Backend::Postgres(store),
        }
    }
}

/// Calls the same method on whichever backend the log holds.
macro_rules! on_backend {
    ($self:ident, $store:ident => $call:expr) => {
        match &$self.backend {
            Backend::Redb($store) => $call,
            Backend::Postgres($store) => $call,
        }
    };
}

impl AuditLog {
    /// Opens the store at `location` the way `mode` says.
    pub fn open_at(location: &StoreLocation, mode: OpenMode) -> Result<AuditLog, AuditError> {
        let backend = match location {
            StoreLocation::Redb(dir) => Backend::Redb(match mode {
                OpenMode::Create => RedbStore::open(dir)?,
                OpenMode::Existing => RedbStore::open_existing(dir)?,
                OpenMode::ReadOnly => RedbStore::open_read_only(dir)?,
            }),
            StoreLocation::Postgres(url) => Backend::Postgres(PgStore::open(url, mode)?),
        };
        Ok(AuditLog { backend })
    }

    /// Opens the redb store in `state_dir`, creating it if there is none; see [`RedbStore::open`].
    pub fn open(state_dir: &Path) -> Result<AuditLog, AuditError> {
        Self::open_at(
            &StoreLocation::Redb(state_dir.to_path_buf()),
            OpenMode::Create,
        )
    }

    /// Opens an existing redb store to write to it; see [`RedbStore::open_existing`].
    pub fn open_existing(state_dir: &Path) -> Result<AuditLog, AuditError> {
        Self::open_at(
            &StoreLocation::Redb(state_dir.to_path_buf()),
            OpenMode::Existing,
        )
    }

    /// Opens an existing redb store to read it without writing; see
    /// [`RedbStore::open_read_only`].
    pub fn open_read_only(state_dir: &Path) -> Result<AuditLog, AuditError> {
        Self::open_at(
            &StoreLocation::Redb(state_dir.to_path_buf()),
            OpenMode::ReadOnly,
        )
    }

    /// Opens the same store again, to write, with a connection of its own (a run's last
    /// chance to release its leases when the first handle failed).
    pub fn reopen(&self) -> Result<AuditLog, AuditError> {
        Self::open_at(&self.location(), OpenMode::Existing)
    }

    /// Where this store lives.
    pub fn location(&self) -> StoreLocation {
        match &self.backend {
            Backend::Redb(store) => StoreLocation::Redb(
                store
                    .path()
                    .parent()
                    .map_or_else(PathBuf::new, Path::to_path_buf),
            ),
            Backend::Postgres(store) => StoreLocation::Postgres(store.url().clone()),
        }
    }

    /// Where the store is, as one path for either backend: the redb file, or the database URL
    /// (never with a password) taken as a path. Errors name the store by [`AuditLog::name`].
    pub fn path(&self) -> &Path {
        on_backend!(self, s => s.path())
    }

    /// The store as errors name it: the redb file, or the PostgreSQL URL (never with a
    /// password).
    pub fn name(&self) -> &StoreName {
        on_backend!(self, s => s.name())
    }

    /// The name of this controller, as recorded in runs and leases.
    pub fn controller(&self) -> &str {
        on_backend!(self, s => s.controller())
    }

    /// Whether this is the PostgreSQL backend (a store shared by several controllers).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// The PostgreSQL backend, for what only a shared store offers (workers, `pg/shard.rs`);
    /// refused with [`AuditError::NeedsPostgres`] naming `what` on a redb store.
    pub fn postgres(&self, what: &str) -> Result<&PgStore, AuditError> {
        match &self.backend {
            Backend::Postgres(pg) => Ok(pg),
            Backend::Redb(_) => Err(AuditError::NeedsPostgres {
                what: what.to_string(),
                store: self.location().to_string(),
            }),
        }
    }

    /// Appends one record in its own durable commit.
    pub fn append(&self, run: &str, fact: Fact) -> Result<Appended, AuditError> {
        on_backend!(self, s => store_tx::append(s, run, fact))
    }

    /// Appends records in ONE durable commit, in order; all land or none does.
    pub fn append_batch(&self, entries: Vec<Entry>) -> Result<Vec<Appended>, AuditError> {
        on_backend!(self, s => store_tx::append_batch(s, entries))
    }

    /// Starts a run without leases: a new run id and `run_started`.
    pub fn begin_run(&self, started: RunStarted) -> Result<String, AuditError> {
        on_backend!(self, s => store_tx::begin_run(s, started))
    }

    /// Stores a plan artifact under its hash unless that hash is already stored.
    pub fn store_artifact(
        &self,
        run: &str,
        plan_hash: &str,
        artifact: serde_json::Value,
    ) -> Result<Option<Appended>, AuditError> {
        on_backend!(self, s => store_tx::store_artifact(s, run, plan_hash, artifact))
    }

    /// `run_started` and the run's leases in one commit, or [`AuditError::LeaseHeld`].
    pub fn start_run(
        &self,
        started: RunStarted,
        holder: &LeaseHolder,
    ) -> Result<String, AuditError> {
        on_backend!(self, s => lease::start_run(s, started, holder, None, Vec::new()))
    }

    /// `run_started`, the leases, the plan artifact and `more` in one commit.
    pub fn start_run_with_plan(
        &self,
        started: RunStarted,
        holder: &LeaseHolder,
        artifact: serde_json::Value,
        more: Vec<Fact>,
    ) -> Result<String, AuditError> {
        on_backend!(self, s => lease::start_run(s, started, holder, Some(artifact), more))
    }

    /// Leases `hosts` to `run`, all or none, recording `lease_taken`.
    pub fn take_leases(
        &self,
        run: &str,
        hosts: &[String],
        holder: &LeaseHolder,
    ) -> Result<Appended, AuditError> {
        on_backend!(self, s => lease::take_leases(s, run, hosts, holder))
    }

    /// Releases every lease of `run`, recording `lease_released`.
    pub fn release_leases(&self, run: &str) -> Result<Vec<String>, AuditError> {
        on_backend!(self, s => lease::release_leases(s, run))
    }

    /// Releases the run's leases and records `run_finished` in one commit.
    pub fn finish_run(&self, run: &str, finished: RunFinished) -> Result<Appended, AuditError> {
        on_backend!(self, s => lease::finish_run(s, run, finished))
    }

    /// Breaks the leases of a run whose holder is gone (`sluice unlock`).
    pub fn break_leases(
        &self,
        run: &str,
        by: &str,
        reason: Option<&str>,
    ) -> Result<Vec<String>, AuditError> {
        on_backend!(self, s => lease::break_leases(s, run, by, reason))
    }

    /// Every active lease, by host.
    pub fn active_leases(&self) -> Result<Vec<Lease>, AuditError> {
        on_backend!(self, s => s.active_leases())
    }

    /// A lease of `run` whose holder is alive, if any: on the local store, one held by a live
    /// pid of this controller (or by another controller, whose processes cannot be checked from
    /// here); on PostgreSQL, one whose heartbeat has not expired, by the database's clock,
    /// whichever machine holds it.
    pub fn live_lease_of(&self, run: &str) -> Result<Option<Lease>, AuditError> {
        match &self.backend {
            Backend::Redb(store) => Ok(store.active_leases()?.into_iter().find(|l| {
                l.run == run
                    && (l.controller != store.controller() || crate::lease::pid_alive(l.pid))
            })),
            Backend::Postgres(store) => store.live_lease_of(run),
        }
    }

    /// Carries on an interrupted run in one commit (checks, leases, `run_resumed`).
    pub fn resume_run(
        &self,
        run: &str,
        resumed: RunResumed,
        hosts: &[String],
        holder: &LeaseHolder,
        choice: Option<UnknownStepsResolved>,
        more: Vec<Fact>,
    ) -> Result<Appended, AuditError> {
        on_backend!(self, s => journal::resume_run(s, run, resumed, hosts, holder, choice, more))
    }

    /// Every run, most recent first.
    pub fn list_runs(&self) -> Result<Vec<RunSummary>, AuditError> {
        on_backend!(self, s => s.list_runs())
    }

    pub fn run_summary(&self, run: &str) -> Result<RunSummary, AuditError> {
        on_backend!(self, s => s.run_summary(run))
    }

    /// The records of one run, in order.
    pub fn run_records(&self, run: &str) -> Result<Vec<Record>, AuditError> {
        on_backend!(self, s => s.run_records(run))
    }

    /// One record by sequence number.
    pub fn record(&self, seq: u64) -> Result<Option<Record>, AuditError> {
        on_backend!(self, s => s.record(seq))
    }

    /// Captured output of a run, optionally only one host and/or one step.
    pub fn outputs(
        &self,
        run: &str,
        host: Option<&str>,
        step: Option<&str>,
    ) -> Result<Vec<StepOutput>, AuditError> {
        Ok(crate::query::step_outputs(
            self.run_records(run)?,
            host,
            step,
        ))
    }

    /// Approvals recorded for exactly this plan hash, oldest first.
    pub fn plan_approvals(&self, plan_hash: &str) -> Result<Vec<(Record, Approval)>, AuditError> {
        on_backend!(self, s => s.plan_approvals(plan_hash))
    }

    /// The latest answer to the gate before `wave` of `run`, if given.
    pub fn wave_approved(&self, run: &str, wave: &str) -> Result<Option<Approval>, AuditError> {
        Ok(self.wave_answer(run, wave)?.map(|(_, approval)| approval))
    }

    /// The latest answer to the gate before `wave` of `run` and its record's sequence number.
    pub fn wave_answer(
        &self,
        run: &str,
        wave: &str,
    ) -> Result<Option<(u64, Approval)>, AuditError> {
        on_backend!(self, s => s.wave_answer(run, wave))
    }

    /// Gates runs are waiting at, oldest first.
    pub fn pending_approvals(&self) -> Result<Vec<PendingGate>, AuditError> {
        on_backend!(self, s => s.pending_approvals())
    }

    /// A stored plan artifact by hash.
    pub fn artifact(&self, plan_hash: &str) -> Result<Option<serde_json::Value>, AuditError> {
        on_backend!(self, s => s.artifact(plan_hash))
    }

    /// Records an approval of a plan artifact, storing the artifact in the same commit.
    pub fn approve_plan(
        &self,
        artifact: Option<serde_json::Value>,
        approval: Approval,
    ) -> Result<Appended, AuditError> {
        on_backend!(self, s => approvals::approve_plan(s, artifact, approval))
    }

    /// The gate before `wave` of `run`, if it can still be answered.
    pub fn gate(&self, run: &str, wave: &str) -> Result<Gate, AuditError> {
        on_backend!(self, s => approvals::gate(s, run, wave))
    }

    /// Answers the gate of a run, after the checks of [`AuditLog::gate`], in one transaction.
    pub fn approve_wave(&self, run: &str, approval: Approval) -> Result<Appended, AuditError> {
        on_backend!(self, s => approvals::approve_wave(s, run, approval))
    }

    /// Walks the whole chain in the store and reports the first record that breaks it.
    pub fn verify(&self) -> Result<VerifyReport, AuditError> {
        on_backend!(self, s => s.verify())
    }

    /// Writes every record (or one run's) as JSON Lines, then the end line.
    pub fn export(&self, run: Option<&str>, out: &mut impl Write) -> Result<ExportEnd, AuditError> {
        on_backend!(self, s => s.export(run, out))
    }
}
