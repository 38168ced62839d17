//! What a write transaction offers on either backend ([`StoreTx`]) and the store that runs one
//! ([`WritableStore`]); the operations every backend shares are written once over them: the
//! appends here, approvals in `approvals.rs`, leases in `lease.rs`, resume in `journal.rs`.
//!
//! The redb transaction (`tx.rs`) and the PostgreSQL one (`pg/tx.rs`) differ in how they store
//! records, indexes and leases; what a record means, what a lease refuses and what a gate checks
//! is decided once, here and in the modules above, so the two backends cannot drift apart.

use sluice_model::{Fact, PlanArtifactStored, RunStarted};

use crate::chain;
use crate::error::AuditError;
use crate::lease::{HeldLease, Lease, LeaseHolder};
use crate::query::RunSummary;
use crate::record::{Entry, Record};
use crate::store::Appended;

/// One open write transaction of a store: records appended at the chain's tip with their
/// indexes, leases, and the reads a check needs inside the transaction that acts on it.
pub(crate) trait StoreTx {
    /// Appends one record at the chain's tip and updates the indexes.
    fn append(&mut self, entry: Entry) -> Result<Appended, AuditError>;

    /// Appends records in order, as [`StoreTx::append`] each; a backend that can write them
    /// together does (PostgreSQL: one statement).
    fn append_all(&mut self, entries: Vec<Entry>) -> Result<Vec<Appended>, AuditError> {
        entries.into_iter().map(|e| self.append(e)).collect()
    }

    /// Whether a run of this id exists.
    fn has_run(&self, run: &str) -> Result<bool, AuditError>;

    /// Whether a plan artifact of this hash is stored.
    fn has_artifact(&self, plan_hash: &str) -> Result<bool, AuditError>;

    /// Stores a plan artifact under its hash (a `plan_artifact_stored` record of `run`) unless
    /// that hash is already stored; `None` when it was.
    fn store_artifact(
        &mut self,
        run: &str,
        plan_hash: &str,
        artifact: serde_json::Value,
    ) -> Result<Option<Appended>, AuditError> {
        if self.has_artifact(plan_hash)? {
            return Ok(None);
        }
        let fact = Fact::PlanArtifactStored(PlanArtifactStored {
            plan_hash: plan_hash.to_string(),
            artifact,
        });
        self.append(Entry::new(run, fact)).map(Some)
    }

    /// A run id no run has yet, that sorts by start time: `YYYYMMDD-HHMMSS-xxxx`.
    fn new_run_id(&self) -> Result<String, AuditError> {
        let now = jiff::Timestamp::now();
        let stamp = now.strftime("%Y%m%d-%H%M%S").to_string();
        let mut salt =
            u64::from(std::process::id()) ^ now.subsec_nanosecond().unsigned_abs() as u64;
        loop {
            let digest = <sha2::Sha256 as sha2::Digest>::digest(salt.to_le_bytes());
            let candidate = format!("{stamp}-{}", &hex::encode(digest)[..4]);
            if !self.has_run(&candidate)? {
                return Ok(candidate);
            }
            salt = salt.wrapping_add(1);
        }
    }

    /// The summary of `run` as this transaction has it (its own appends included).
    fn run_summary(&mut self, run: &str) -> Result<Option<&RunSummary>, AuditError>;

    /// The records of `run`, in order.
    fn run_records(&self, run: &str) -> Result<Vec<Record>, AuditError>;

    /// A stored plan artifact by hash.
    fn artifact(&self, plan_hash: &str) -> Result<Option<serde_json::Value>, AuditError>;

    /// The controller this store writes for.
    fn controller(&self) -> &str;

    /// The leases `run` holds, by host, each with whether its holder is alive as this backend
    /// judges it (a local pid, or a heartbeat that has not expired).
    fn leases_of(&self, run: &str) -> Result<Vec<HeldLease>, AuditError>;

    /// Writes leases of `hosts` for `run` held by `holder`, all or none: refused with
    /// [`AuditError::LeaseHeld`] (naming the holder) while another run holds any of them, alive
    /// or not. Leases `run` already holds are taken over by `holder`.
    fn put_leases(
        &mut self,
        run: &str,
        hosts: &[String],
        holder: &LeaseHolder,
    ) -> Result<(), AuditError>;

    /// Removes every lease of `run`; returns them.
    fn remove_leases_of(&mut self, run: &str) -> Result<Vec<Lease>, AuditError>;

    /// Closes what `run` handed to workers, in the commit that records its end (PostgreSQL:
    /// every assignment still queued or claimed is withdrawn, so no worker's fact can follow
    /// `run_finished`); nothing on a store without workers.
    fn close_run_tasks(&mut self, _run: &str) -> Result<(), AuditError> {
        Ok(())
    }
}

/// A store that runs write transactions: the redb file or the PostgreSQL database.
pub(crate) trait WritableStore {
    type Tx<'t>: StoreTx;

    /// Runs `f` in one write transaction and commits it durably: when this returns `Ok`, every
    /// record `f` appended is stored. A store opened for reading refuses
    /// ([`AuditError::ReadOnly`]).
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Self::Tx<'_>) -> Result<T, AuditError>,
    ) -> Result<T, AuditError>;

    /// Called once `holder`'s leases are committed: a shared store starts renewing them (its
    /// holders are judged alive by a heartbeat); a local store judges its holders by their pid
    /// and has nothing to do.
    fn leases_taken(&self, _holder: &LeaseHolder) {}
}

/// A record sealed as the chain's next, and its stored form.
pub(crate) struct SealedRecord {
    pub(crate) record: Record,
    /// The record as stored and exported: compact JSON, one line.
    pub(crate) text: String,
}

/// The record of `entry` as the chain's record `seq`, after `prev_hash` in the chain and after
/// `run_prev_hash` in its run, stamped now and sealed with its hash.
pub(crate) fn seal_next(
    entry: Entry,
    seq: u64,
    prev_hash: String,
    run_prev_hash: String,
) -> Result<SealedRecord, AuditError> {
    let mut record = Record {
        seq,
        at: jiff::Timestamp::now().to_string(),
        run: entry.run,
        fact: entry.fact,
        prev_hash,
        run_prev_hash,
        hash: String::new(),
    };
    let (run_name, kind) = (record.run.clone(), record.fact.kind());
    let encode = |err| AuditError::Encode {
        run: run_name.clone(),
        kind,
        source: err,
    };
    chain::seal(&mut record).map_err(encode)?;
    let text = serde_json::to_string(&record).map_err(encode)?;
    Ok(SealedRecord { record, text })
}

/// Appends one record in its own durable commit.
pub(crate) fn append(
    store: &impl WritableStore,
    run: &str,
    fact: Fact,
) -> Result<Appended, AuditError> {
    store.write(|tx| tx.append(Entry::new(run, fact)))
}

/// Appends records in ONE durable commit, in order (e.g. the results of many hosts that finished
/// together). Either all land or none does.
pub(crate) fn append_batch(
    store: &impl WritableStore,
    entries: Vec<Entry>,
) -> Result<Vec<Appended>, AuditError> {
    store.write(|tx| tx.append_all(entries))
}

/// Starts a run without leases: picks a new run id and records `run_started`. Returns the run
/// id.
pub(crate) fn begin_run(
    store: &impl WritableStore,
    started: RunStarted,
) -> Result<String, AuditError> {
    store.write(|tx| {
        let run = tx.new_run_id()?;
        tx.append(Entry::new(&run, Fact::RunStarted(started)))?;
        Ok(run)
    })
}

/// Stores a plan artifact under its hash unless that hash is already stored. Returns where it
/// landed, or `None` when it was already there.
pub(crate) fn store_artifact(
    store: &impl WritableStore,
    run: &str,
    plan_hash: &str,
    artifact: serde_json::Value,
) -> Result<Option<Appended>, AuditError> {
    store.write(|tx| tx.store_artifact(run, plan_hash, artifact))
}
