//! Opening the store for reading without writing a byte: a checked, private view of the file.
//!
//! `sluice runs`, `show`, `logs`, `audit verify` and `audit export` read evidence, and must not
//! change it: not the store's bytes, not its mtime, no lock file, and they must work on a
//! read-only mount. A writer's open cannot promise that (redb's integrity check repairs and
//! commits, and sluice's own open records the store's format), so a reader opens the file like
//! this:
//!
//! 1. **Announce the reader and pin what it reads.** redb's read-only open
//!    ([`redb::Builder::open_read_only`], in the writers' `MultiWriter` mode) opens the file
//!    `O_RDONLY` and takes only shared byte-range locks (`fcntl` works on a read-only
//!    descriptor). Its read transaction, held as long as the [`RedbStore`] lives, keeps writers in
//!    other processes from reusing the pages of any commit from its snapshot on, so a run that
//!    commits while `sluice show` reads cannot tear what `show` sees.
//! 2. **Check, privately.** The read-only open does not check the file's integrity, and an
//!    unchecked damaged file can make redb panic or read garbage. The check runs instead on a
//!    private view: a redb [`Database`] over [`PrivateView`], a storage backend that reads the
//!    file and keeps whatever redb writes (the repair of its allocator state, a commit) in this
//!    process's memory. Every page of the committed trees is checked against its checksum there;
//!    a damaged store is refused ([`AuditError::Corrupt`], which points at the salvage).
//! 3. **Query the view.** Queries run on the private view, which shows the commit the check
//!    passed.
//!
//! A store whose last writer was killed (`kill -9`) needs redb's crash recovery, and redb's
//! read-only open refuses it (`RepairAborted`): there is no live writer then, so there is nothing
//! to pin, and the private view does the recovery in memory. The file stays as it was until the
//! next writer (`sluice resume`, `sluice apply`) recovers it for real.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use redb::{
    Builder, ConcurrencyMode, Database, DatabaseError, ReadOnlyDatabase, ReadTransaction,
    ReadableDatabase, StorageBackend, StorageError,
};

use crate::contained::contained;
use crate::error::AuditError;

/// Cache of the private view: the check reads every page once, so a large cache only costs
/// memory (redb's default is 1 GiB).
const VIEW_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// The first page of the file holds redb's header (magic, which commit slot is current).
const HEADER_BYTES: usize = 4096;

/// A read transaction on redb's read-only handle: while it lives, writers in other processes
/// keep every page the private view may read.
pub(crate) struct ReadPin {
    // Dropped before the database it reads.
    _txn: ReadTransaction,
    _db: ReadOnlyDatabase,
}

/// What [`open_view`] found: the checked private view, and the pin when there was a live file to
/// pin.
pub(crate) struct OpenedView {
    pub db: Database,
    pub pin: Option<ReadPin>,
}

/// Opens `path` for reading, as the module documentation describes.
pub(crate) fn open_view(path: &Path) -> Result<OpenedView, AuditError> {
    let pin = pin(path)?;
    // A commit that lands while the check reads the header can make the check read a torn
    // header once; a second look settles it. A damaged file fails both times.
    let before = header(path);
    match check(path) {
        Err(AuditError::Corrupt { .. }) if header(path) != before => {}
        checked => return checked.map(|db| OpenedView { db, pin }),
    }
    check(path).map(|db| OpenedView { db, pin })
}

/// redb's read-only handle and a read transaction on it, or `None` when the file needs crash
/// recovery (no writer holds it).
fn pin(path: &Path) -> Result<Option<ReadPin>, AuditError> {
    let mut builder = Builder::new();
    builder.set_concurrency_mode(ConcurrencyMode::MultiWriter);
    builder.set_cache_size(VIEW_CACHE_BYTES);
    let opened = contained(|| builder.open_read_only(path)).map_err(|e| corrupt(path, e))?;
    let db = match opened {
        Ok(db) => db,
        Err(DatabaseError::RepairAborted) => return Ok(None),
        Err(err) => return Err(crate::store::open_error(path, err)),
    };
    let txn = contained(|| db.begin_read())
        .map_err(|e| corrupt(path, e))?
        .map_err(|e| crate::store::open_error(path, DatabaseError::Storage(storage(e))))?;
    Ok(Some(ReadPin { _txn: txn, _db: db }))
}

fn storage(err: redb::TransactionError) -> StorageError {
    match err {
        redb::TransactionError::Storage(e) => e,
        other => StorageError::Corrupted(other.to_string()),
    }
}

/// Opens the private view with redb's integrity check.
fn check(path: &Path) -> Result<Database, AuditError> {
    let file = std::fs::File::open(path).map_err(|e| AuditError::storage(path, e))?;
    let len = file
        .metadata()
        .map_err(|e| AuditError::storage(path, e))?
        .len();
    if len == 0 {
        return Err(corrupt(path, "the file is empty"));
    }
    let view = PrivateView {
        file,
        len: Mutex::new(None),
        writes: Mutex::new(Vec::new()),
    };
    let mut builder = Builder::new();
    builder.set_check_integrity_on_open(true);
    builder.set_cache_size(VIEW_CACHE_BYTES);
    contained(|| builder.create_with_backend(view))
        .map_err(|e| corrupt(path, e))?
        .map_err(|e| crate::store::open_error(path, e))
}

fn header(path: &Path) -> Option<Vec<u8>> {
    let file = std::fs::File::open(path).ok()?;
    let mut buf = vec![0u8; HEADER_BYTES];
    let n = file.read_at(&mut buf, 0).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> AuditError {
    AuditError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The store file as redb sees it in a private view: reads come from the file (opened
/// read-only), writes stay in memory and are read back over the file's bytes. Locks are not
/// supported, so redb treats the view as its own (`ExclusiveWriter`), which it is.
#[derive(Debug)]
struct PrivateView {
    file: std::fs::File,
    /// The length redb gave the view, once it has set one; until then the file's.
    len: Mutex<Option<u64>>,
    /// What redb wrote, in order: a later write wins where two overlap.
    writes: Mutex<Vec<(u64, Vec<u8>)>>,
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> std::io::Error {
    std::io::Error::other("the private view's lock is poisoned")
}

impl StorageBackend for PrivateView {
    fn len(&self) -> std::io::Result<u64> {
        match *self.len.lock().map_err(poisoned)? {
            Some(len) => Ok(len),
            None => Ok(self.file.metadata()?.len()),
        }
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let end = offset.saturating_add(out.len() as u64);
        if end > self.len()? {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("read of {} bytes at {offset} is past the end", out.len()),
            ));
        }
        // Bytes past the file's end (the view grew) read as zeros, as after `set_len`.
        let mut filled = 0;
        while filled < out.len() {
            let n = self
                .file
                .read_at(&mut out[filled..], offset + filled as u64)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        out[filled..].fill(0);
        for (at, data) in self.writes.lock().map_err(poisoned)?.iter() {
            let from = offset.max(*at);
            let to = end.min(at.saturating_add(data.len() as u64));
            if from < to {
                let (src, dst) = ((from - at) as usize, (from - offset) as usize);
                let n = (to - from) as usize;
                out[dst..dst + n].copy_from_slice(&data[src..src + n]);
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        *self.len.lock().map_err(poisoned)? = Some(len);
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.writes
            .lock()
            .map_err(poisoned)?
            .push((offset, data.to_vec()));
        Ok(())
    }
}
