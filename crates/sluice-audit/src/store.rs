//! The redb store: opening it safely (to write, or to read without writing: `readonly.rs`),
//! and running durable write transactions (each one a `Tx`, in `tx.rs`) for the operations
//! both backends share (`store_tx.rs`).
//!
//! One file, `audit.redb`, in the state directory. Records live in one table keyed by sequence
//! number; the other tables are indexes derived from the records in the same transaction (runs,
//! a run's sequence numbers, stored artifacts, approvals, leases), so they can never disagree
//! with the chain after a crash.
//!
//! Several processes of one controller share the store (redb's `MultiWriter` mode): the executor
//! of a run, a second `sluice apply` that must be refused by a lease naming the holder,
//! `sluice approve` releasing a gate the executor polls, `sluice runs` while a run is going.
//! redb lets one write transaction at a time through, across processes, and every append reads the
//! chain's tip inside its transaction, so interleaved appends still form one chain.

use std::path::{Path, PathBuf};

use redb::{
    Builder, ConcurrencyMode, Database, DatabaseError, ReadTransaction, ReadableDatabase,
    ReadableTable, ReadableTableMetadata, StorageError, TableDefinition, TableError,
};

use crate::contained::contained;
use crate::error::{AuditError, StoreName};
use crate::readonly::ReadPin;
use crate::state_dir::STORE_FILE;
use crate::store_tx::WritableStore;
use crate::summary_cache::SharedSummaryCache;

pub(crate) use crate::tx::{Tx, decode_record};

pub(crate) const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
pub(crate) const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
pub(crate) const RUN_INDEX: TableDefinition<(&str, u64), ()> = TableDefinition::new("run_index");
pub(crate) const ARTIFACTS: TableDefinition<&str, u64> = TableDefinition::new("artifacts");
pub(crate) const PLAN_APPROVALS: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("plan_approvals");
pub(crate) const WAVE_APPROVALS: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("wave_approvals");
/// Gates a run waits at: (run, wave) → seq of the `approval_requested` record.
pub(crate) const PENDING_GATES: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("pending_gates");
pub(crate) const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// redb's page cache of an open store. Its default (1 GiB) keeps every page a run writes: a
/// 10,000-host run writes ~110 MiB of records, all of which stayed in the controller's memory.
/// Appends touch the chain's tip and a few index pages, so a small cache costs them nothing;
/// a write transaction larger than half of it (a large artifact) is written out before its
/// commit, which stays the one durable point.
const STORE_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// The record format this sluice writes and reads, kept in the store's `meta` table. Format 2
/// flattens the fact (sluice-model) beside the envelope; format 1 (no `format` key) nested it
/// under `payload`.
pub const FORMAT: &str = "2";

/// Where a record landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    pub hash: String,
}

/// The audit trail of one controller.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    /// The file, as errors name it.
    name: StoreName,
    controller: String,
    access: Access,
    /// Run summaries as this process last committed them (`summary_cache.rs`).
    summaries: SharedSummaryCache,
}

/// How the store was opened.
enum Access {
    /// A writer: redb's own open of the file, which records and repairs.
    Write,
    /// A reader: a checked private view of the file, which writes nothing
    /// (`readonly.rs`); the pin keeps what it reads from being reused by writers.
    Read { _pin: Option<ReadPin> },
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish()
    }
}

impl RedbStore {
    /// Opens the store in `state_dir`, creating the directory and an empty store only when no
    /// store file exists there. An existing file is integrity-checked on open; a damaged one is an
    /// error ([`AuditError::Corrupt`]), never replaced.
    pub fn open(state_dir: &Path) -> Result<RedbStore, AuditError> {
        std::fs::create_dir_all(state_dir).map_err(|source| AuditError::CreateStateDir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        Self::open_file(&state_dir.join(STORE_FILE), true)
    }

    /// Opens an existing store to write to it; [`AuditError::Missing`] when there is none.
    pub fn open_existing(state_dir: &Path) -> Result<RedbStore, AuditError> {
        Self::open_file(&state_dir.join(STORE_FILE), false)
    }

    /// Opens an existing store to read it, without changing a byte of it or of the state
    /// directory (no lock file either), so it works on a read-only mount and on a copy; see
    /// `readonly.rs`. A damaged store is [`AuditError::Corrupt`]; writing through the
    /// returned log fails with [`AuditError::ReadOnly`]. Another controller's store may be read.
    pub fn open_read_only(state_dir: &Path) -> Result<RedbStore, AuditError> {
        let path = state_dir.join(STORE_FILE);
        if !path.exists() {
            return Err(AuditError::Missing { path });
        }
        let opened = crate::readonly::open_view(&path)?;
        let log = RedbStore {
            db: opened.db,
            name: StoreName::File(path.clone()),
            path,
            controller: crate::lease::controller_name(),
            access: Access::Read { _pin: opened.pin },
            summaries: SharedSummaryCache::default(),
        };
        contained(|| log.check_format()).map_err(|e| log.corrupt(e))??;
        Ok(log)
    }

    fn open_file(path: &Path, create: bool) -> Result<RedbStore, AuditError> {
        // Two first runs starting at once must not both initialise a new file: whether the
        // store exists is decided, and a new one created, under a lock. A reader takes it too
        // when it can (so it never sees a half-initialised file) but does not need it: the
        // state directory may be read-only to it.
        let _creating = if create {
            Some(CreateLock::take(path)?)
        } else if path.exists() {
            CreateLock::take(path).ok()
        } else {
            None
        };
        let exists = path.exists();
        if !exists && !create {
            return Err(AuditError::Missing {
                path: path.to_path_buf(),
            });
        }
        let mut builder = Builder::new();
        builder.set_concurrency_mode(ConcurrencyMode::MultiWriter);
        builder.set_cache_size(STORE_CACHE_BYTES);
        // A plain open trusts the file and may panic on one altered outside redb; the check
        // turns that into an error. It reads the whole file, which an audit store can afford.
        builder.set_check_integrity_on_open(exists);
        let opened = contained(|| {
            if exists {
                builder.open(path)
            } else {
                builder.create(path)
            }
        });
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(err)) => return Err(open_error(path, err)),
            Err(panicked) => {
                return Err(AuditError::Corrupt {
                    path: path.to_path_buf(),
                    reason: panicked.to_string(),
                });
            }
        };
        let log = RedbStore {
            db,
            path: path.to_path_buf(),
            name: StoreName::File(path.to_path_buf()),
            controller: crate::lease::controller_name(),
            access: Access::Write,
            summaries: SharedSummaryCache::default(),
        };
        contained(|| log.init()).map_err(|e| log.corrupt(e))??;
        Ok(log)
    }

    fn corrupt(&self, reason: impl std::fmt::Display) -> AuditError {
        AuditError::Corrupt {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    /// A reader's check of what a writer's [`RedbStore::init`] ensures: the store was initialised
    /// and holds records in the format this sluice reads.
    fn check_format(&self) -> Result<(), AuditError> {
        let txn = self.read()?;
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            // Created, and no writer has committed its first transaction yet.
            Err(TableError::TableDoesNotExist(_)) => {
                return Err(AuditError::Missing {
                    path: self.path.clone(),
                });
            }
            Err(e) => return Err(self.err(e)),
        };
        let format = meta
            .get("format")
            .map_err(|e| self.err(e))?
            .map(|v| v.value().to_string());
        let empty = txn
            .open_table(RECORDS)
            .map_err(|e| self.err(e))?
            .is_empty()
            .map_err(|e| self.err(e))?;
        match format {
            Some(found) if found != FORMAT => Err(AuditError::Format {
                path: self.path.clone(),
                found,
                supported: FORMAT,
            }),
            None if !empty => Err(AuditError::Format {
                path: self.path.clone(),
                found: "1".into(),
                supported: FORMAT,
            }),
            _ => Ok(()),
        }
    }

    /// Creates the tables of a new store and checks that this controller owns an existing one.
    fn init(&self) -> Result<(), AuditError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let owner = meta
                .get("controller")
                .map_err(|e| self.err(e))?
                .map(|v| v.value().to_string());
            match owner {
                Some(owner) if owner != self.controller => {
                    return Err(AuditError::OtherController {
                        path: self.path.clone(),
                        owner,
                        here: self.controller.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    meta.insert("controller", self.controller.as_str())
                        .map_err(|e| self.err(e))?;
                }
            }
            let format = meta
                .get("format")
                .map_err(|e| self.err(e))?
                .map(|v| v.value().to_string());
            let empty = txn
                .open_table(RECORDS)
                .map_err(|e| self.err(e))?
                .is_empty()
                .map_err(|e| self.err(e))?;
            match format {
                Some(found) if found != FORMAT => {
                    return Err(AuditError::Format {
                        path: self.path.clone(),
                        found,
                        supported: FORMAT,
                    });
                }
                None if !empty => {
                    return Err(AuditError::Format {
                        path: self.path.clone(),
                        found: "1".into(),
                        supported: FORMAT,
                    });
                }
                Some(_) => {}
                None => {
                    meta.insert("format", FORMAT).map_err(|e| self.err(e))?;
                }
            }
            txn.open_table(RECORDS).map_err(|e| self.err(e))?;
            txn.open_table(RUNS).map_err(|e| self.err(e))?;
            txn.open_table(RUN_INDEX).map_err(|e| self.err(e))?;
            txn.open_table(ARTIFACTS).map_err(|e| self.err(e))?;
            txn.open_table(PLAN_APPROVALS).map_err(|e| self.err(e))?;
            txn.open_table(WAVE_APPROVALS).map_err(|e| self.err(e))?;
            txn.open_table(LEASES).map_err(|e| self.err(e))?;
            txn.open_table(PENDING_GATES).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store as errors name it: its file.
    pub fn name(&self) -> &StoreName {
        &self.name
    }

    /// The host name this store is owned by.
    pub fn controller(&self) -> &str {
        &self.controller
    }

    pub(crate) fn err(&self, err: impl Into<redb::Error>) -> AuditError {
        AuditError::storage(&self.path, err)
    }

    pub(crate) fn read(&self) -> Result<ReadTransaction, AuditError> {
        self.db.begin_read().map_err(|e| self.err(e))
    }
}

impl WritableStore for RedbStore {
    type Tx<'t> = Tx<'t>;

    fn write<T>(
        &self,
        f: impl FnOnce(&mut Self::Tx<'_>) -> Result<T, AuditError>,
    ) -> Result<T, AuditError> {
        if let Access::Read { .. } = self.access {
            return Err(AuditError::ReadOnly {
                store: self.name.clone(),
            });
        }
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        // A transaction that fails drops the cache: its summaries may hold records that were
        // never committed.
        let mut tx = Tx::new(self, txn, self.summaries.take());
        let value = f(&mut tx)?;
        tx.flush_summaries()?;
        let (txn, summaries) = tx.finish();
        txn.commit().map_err(|e| self.err(e))?;
        self.summaries.keep(summaries);
        Ok(value)
    }
}

/// An exclusive lock (`flock`) on `audit.redb.lock`, held while the store is opened or created.
struct CreateLock {
    _file: std::fs::File,
}

impl CreateLock {
    fn take(store: &Path) -> Result<CreateLock, AuditError> {
        let path = store.with_extension("redb.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| AuditError::LockFile {
                path: path.clone(),
                source,
            })?;
        // Released when the file is closed (dropped).
        file.lock()
            .map_err(|source| AuditError::LockFile { path, source })?;
        Ok(CreateLock { _file: file })
    }
}

pub(crate) fn open_error(path: &Path, err: DatabaseError) -> AuditError {
    match err {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            AuditError::Locked {
                path: path.to_path_buf(),
            }
        }
        // The file could not be read or written (permissions, a read-only mount, a full disk):
        // that says nothing about its content. A short read (a cut file) or bytes that are not
        // a store do.
        DatabaseError::Storage(StorageError::Io(io))
            if !matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            ) =>
        {
            AuditError::storage(path, StorageError::Io(io))
        }
        other => AuditError::Corrupt {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}
