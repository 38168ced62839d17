//! One write transaction of the PostgreSQL store: the chain's tip locked, records appended
//! with the same envelope, canonical bytes and hashes as the redb store (`crate::tx`), and the
//! indexes and the leases table kept in step; the backend's side of [`StoreTx`].
//!
//! Round trips are the cost of a commit here (the group commit's batch waits for them): the
//! records a transaction appends are held back and inserted with one statement, sent in one
//! pipeline with the summaries and the new tip just before `COMMIT`, or before any other
//! statement of the transaction (which may read them); the statements of every commit are sent
//! with their parameter types, so none needs a round trip of its own to be prepared.

use std::cell::RefCell;
use std::collections::BTreeMap;

use sluice_model::{ApprovalScope, Fact};
use tokio_postgres::Transaction;
use tokio_postgres::types::{ToSql, Type};

use super::PgStore;
use super::conn::{Connection, block, db_error};
use super::lease::{LEASE_COLUMNS, lease_of};
use crate::chain::GENESIS;
use crate::error::{AuditError, StoreName};
use crate::lease::{HeldLease, Lease, LeaseHolder};
use crate::query::RunSummary;
use crate::record::{Entry, Record};
use crate::store::Appended;
use crate::store_tx::{SealedRecord, StoreTx, seal_next};
use crate::summary_cache::{ChainTip, SummaryCache};

/// An open write transaction holding the lock on the chain's tip.
pub(crate) struct PgTx<'a> {
    txn: Transaction<'a>,
    name: &'a StoreName,
    pub(crate) store: &'a PgStore,
    tip_seq: u64,
    tip_hash: String,
    /// Summaries this process's last commit left, still valid at this transaction's tip and
    /// not used yet (`crate::summary_cache`).
    valid: BTreeMap<String, RunSummary>,
    /// Run summaries read or changed in this transaction, written once at commit.
    summaries: BTreeMap<String, RunSummary>,
    /// Records appended and not yet sent: inserted together (see the module documentation).
    pending: RefCell<PendingRecords>,
}

/// The columns of records not yet inserted, as the arrays the insert statement takes.
#[derive(Default)]
struct PendingRecords {
    seq: Vec<i64>,
    run: Vec<String>,
    kind: Vec<String>,
    body: Vec<String>,
}

impl PendingRecords {
    fn push(&mut self, seq: i64, record: &Record, text: String) {
        self.seq.push(seq);
        self.run.push(record.run.clone());
        self.kind.push(record.kind().to_string());
        self.body.push(text);
    }
}

/// Inserts many records with one statement.
const INSERT_RECORDS: &str = "INSERT INTO sluice.records (seq, run, kind, body)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])";

impl<'a> PgTx<'a> {
    /// Begins a transaction and locks the tip: from here until commit, this controller is the
    /// store's only writer.
    pub(crate) fn begin(conn: &'a mut Connection, store: &'a PgStore) -> Result<Self, AuditError> {
        let (txn, name) = conn.transaction()?;
        let row =
            block(txn.query_typed_one("SELECT seq, hash FROM sluice.chain_tip FOR UPDATE", &[]))
                .map_err(|e| db_error(name, &e))?;
        let seq: i64 = row.get(0);
        let tip = ChainTip {
            seq: u64::try_from(seq).unwrap_or(0),
            hash: row.get(1),
        };
        // Taken now: a transaction that fails leaves no cache behind.
        let valid = store
            .summaries
            .take()
            .map(|cache| cache.valid_at(&tip))
            .unwrap_or_default();
        Ok(PgTx {
            txn,
            name,
            store,
            tip_seq: tip.seq,
            tip_hash: tip.hash,
            valid,
            summaries: BTreeMap::new(),
            pending: RefCell::new(PendingRecords::default()),
        })
    }

    /// Inserts the records held back, before a statement that may read them.
    fn flush(&self) -> Result<(), AuditError> {
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        if pending.seq.is_empty() {
            return Ok(());
        }
        block(
            self.txn
                .execute_typed(INSERT_RECORDS, &records_params(&pending)),
        )
        .map(drop)
        .map_err(|e| self.err(&e))
    }

    pub(crate) fn err(&self, err: &tokio_postgres::Error) -> AuditError {
        db_error(self.name, err)
    }

    pub(crate) fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, AuditError> {
        self.flush()?;
        block(self.txn.query(sql, params)).map_err(|e| self.err(&e))
    }

    pub(crate) fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, AuditError> {
        self.flush()?;
        block(self.txn.execute(sql, params)).map_err(|e| self.err(&e))
    }

    /// Writes the records held back, the summaries and the new tip in one pipeline, then
    /// commits durably.
    pub(crate) fn commit(self) -> Result<(), AuditError> {
        let mut summaries = Vec::with_capacity(self.summaries.len());
        for (run, summary) in &self.summaries {
            let encoded = serde_json::to_string(summary).map_err(|source| AuditError::Encode {
                run: run.clone(),
                kind: "run summary",
                source,
            })?;
            summaries.push((run, encoded));
        }
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        let seq = i64::try_from(self.tip_seq).unwrap_or(i64::MAX);
        let records = records_params(&pending);
        let tip: [(&(dyn ToSql + Sync), Type); 2] =
            [(&seq, Type::INT8), (&self.tip_hash, Type::TEXT)];
        let summary_params: Vec<[(&(dyn ToSql + Sync), Type); 2]> = summaries
            .iter()
            .map(|(run, encoded)| {
                [
                    (*run as &(dyn ToSql + Sync), Type::TEXT),
                    (encoded as _, Type::TEXT),
                ]
            })
            .collect();
        // Sent together, answered together: one round trip for all of them.
        let mut writes = Vec::with_capacity(summary_params.len() + 2);
        if !pending.seq.is_empty() {
            writes.push(self.txn.execute_typed(INSERT_RECORDS, &records));
        }
        for params in &summary_params {
            writes.push(self.txn.execute_typed(
                "INSERT INTO sluice.runs (run, summary) VALUES ($1, $2)
                 ON CONFLICT (run) DO UPDATE SET summary = excluded.summary",
                params,
            ));
        }
        writes.push(
            self.txn
                .execute_typed("UPDATE sluice.chain_tip SET seq = $1, hash = $2", &tip),
        );
        block(futures::future::try_join_all(writes)).map_err(|e| self.err(&e))?;
        drop(tip);
        let PgTx {
            txn,
            name,
            store,
            tip_seq,
            tip_hash,
            mut valid,
            summaries,
            ..
        } = self;
        block(txn.commit()).map_err(|e| db_error(name, &e))?;
        valid.extend(summaries);
        let tip = ChainTip {
            seq: tip_seq,
            hash: tip_hash,
        };
        store.summaries.keep(Some(SummaryCache::new(tip, valid)));
        Ok(())
    }

    /// The seq of the chain's last record (0 for an empty store).
    pub(crate) fn tip_seq(&self) -> u64 {
        self.tip_seq
    }

    /// Adds a record exactly as another store wrote it (its seq, time and hashes kept), which
    /// must continue the chain; the indexes are rebuilt from it as an append builds them.
    pub(crate) fn insert_verbatim(&mut self, text: &str) -> Result<(), AuditError> {
        let record = crate::store::decode_record(self.name, self.tip_seq + 1, text.as_bytes())?;
        if record.seq != self.tip_seq + 1 || record.prev_hash != self.tip_hash {
            return Err(AuditError::BadRecord {
                store: self.name.clone(),
                seq: record.seq,
                reason: format!(
                    "it does not continue the chain after record {}",
                    self.tip_seq
                ),
            });
        }
        let seq = i64::try_from(record.seq).unwrap_or(i64::MAX);
        self.pending
            .borrow_mut()
            .push(seq, &record, text.to_string());
        self.index(&record, seq)?;
        self.run_summary(&record.run)?;
        self.tip_seq = record.seq;
        self.tip_hash = record.hash.clone();
        self.summaries
            .entry(record.run.clone())
            .or_insert_with(|| RunSummary::new(&record.run))
            .apply(&record);
        Ok(())
    }

    /// The indexes a record feeds, as `crate::tx` keeps them in redb.
    fn index(&self, record: &Record, seq: i64) -> Result<(), AuditError> {
        let run = record.run.as_str();
        match &record.fact {
            Fact::PlanArtifactStored(stored) => {
                self.execute(
                    "INSERT INTO sluice.artifacts (plan_hash, seq) VALUES ($1, $2)
                     ON CONFLICT (plan_hash) DO NOTHING",
                    &[&stored.plan_hash, &seq],
                )?;
            }
            Fact::Approval(approval) => match &approval.scope {
                ApprovalScope::Plan { plan_hash } => {
                    self.execute(
                        "INSERT INTO sluice.plan_approvals (plan_hash, seq) VALUES ($1, $2)",
                        &[plan_hash, &seq],
                    )?;
                }
                ApprovalScope::Wave { wave } => {
                    self.execute(
                        "INSERT INTO sluice.wave_approvals (run, wave, seq) VALUES ($1, $2, $3)
                         ON CONFLICT (run, wave) DO UPDATE SET seq = excluded.seq",
                        &[&run, wave, &seq],
                    )?;
                    self.execute(
                        "DELETE FROM sluice.pending_gates WHERE run = $1 AND wave = $2",
                        &[&run, wave],
                    )?;
                }
                // A confirmation typed at `sluice apply` is never a plan approval.
                ApprovalScope::RunStart { .. } => {}
            },
            Fact::ApprovalRequested(requested) => {
                self.execute(
                    "INSERT INTO sluice.pending_gates (run, wave, seq) VALUES ($1, $2, $3)
                     ON CONFLICT (run, wave) DO UPDATE SET seq = excluded.seq",
                    &[&run, &requested.wave, &seq],
                )?;
            }
            Fact::RunFinished(_) => {
                // A finished run waits for nothing.
                self.execute("DELETE FROM sluice.pending_gates WHERE run = $1", &[&run])?;
            }
            _ => {}
        }
        Ok(())
    }
}

impl StoreTx for PgTx<'_> {
    fn run_summary(&mut self, run: &str) -> Result<Option<&RunSummary>, AuditError> {
        if !self.summaries.contains_key(run) {
            if let Some(cached) = self.valid.remove(run) {
                self.summaries.insert(run.to_string(), cached);
                return Ok(self.summaries.get(run));
            }
            let rows = block(self.txn.query_typed(
                "SELECT summary FROM sluice.runs WHERE run = $1",
                &[(&run, Type::TEXT)],
            ))
            .map_err(|e| self.err(&e))?;
            let Some(row) = rows.first() else {
                return Ok(None);
            };
            let text: String = row.get(0);
            let summary = RunSummary::decode(text.as_bytes(), self.name, run)?;
            self.summaries.insert(run.to_string(), summary);
        }
        Ok(self.summaries.get(run))
    }

    fn has_run(&self, run: &str) -> Result<bool, AuditError> {
        let rows = self.query("SELECT 1 FROM sluice.runs WHERE run = $1", &[&run])?;
        Ok(!rows.is_empty())
    }

    fn has_artifact(&self, plan_hash: &str) -> Result<bool, AuditError> {
        let rows = self.query(
            "SELECT 1 FROM sluice.artifacts WHERE plan_hash = $1",
            &[&plan_hash],
        )?;
        Ok(!rows.is_empty())
    }

    fn append(&mut self, entry: Entry) -> Result<Appended, AuditError> {
        let run_prev_hash = self
            .run_summary(&entry.run)?
            .map_or_else(|| GENESIS.to_string(), |s| s.last_hash.clone());
        let SealedRecord { record, text } = seal_next(
            entry,
            self.tip_seq + 1,
            self.tip_hash.clone(),
            run_prev_hash,
        )?;
        let seq = i64::try_from(record.seq).unwrap_or(i64::MAX);
        self.pending.borrow_mut().push(seq, &record, text);
        self.index(&record, seq)?;
        self.tip_seq = record.seq;
        self.tip_hash = record.hash.clone();
        self.summaries
            .entry(record.run.clone())
            .or_insert_with(|| RunSummary::new(&record.run))
            .apply(&record);
        Ok(Appended {
            seq: record.seq,
            hash: record.hash,
        })
    }

    fn run_records(&self, run: &str) -> Result<Vec<Record>, AuditError> {
        let rows = self.query(
            "SELECT seq, body FROM sluice.records WHERE run = $1 ORDER BY seq",
            &[&run],
        )?;
        rows.iter()
            .map(|row| super::read::decode_row(self.name, row))
            .collect()
    }

    fn artifact(&self, plan_hash: &str) -> Result<Option<serde_json::Value>, AuditError> {
        let rows = self.query(
            "SELECT r.seq, r.body FROM sluice.artifacts a JOIN sluice.records r ON r.seq = a.seq
             WHERE a.plan_hash = $1",
            &[&plan_hash],
        )?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        match super::read::decode_row(self.name, row)?.fact {
            Fact::PlanArtifactStored(stored) => Ok(Some(stored.artifact)),
            _ => Ok(None),
        }
    }

    fn controller(&self) -> &str {
        self.store.controller()
    }

    fn leases_of(&self, run: &str) -> Result<Vec<HeldLease>, AuditError> {
        let sql = format!("SELECT {LEASE_COLUMNS} FROM sluice.leases WHERE run = $1 ORDER BY host");
        Ok(self.query(&sql, &[&run])?.iter().map(lease_of).collect())
    }

    /// Each lease expires unless the holder's heartbeat renews it.
    fn put_leases(
        &mut self,
        run: &str,
        hosts: &[String],
        holder: &LeaseHolder,
    ) -> Result<(), AuditError> {
        let sql = format!(
            "SELECT {LEASE_COLUMNS} FROM sluice.leases WHERE host = ANY($1) AND run <> $2
             ORDER BY host LIMIT 1"
        );
        if let Some(row) = self.query(&sql, &[&hosts, &run])?.first() {
            let held = lease_of(row).lease;
            return Err(AuditError::LeaseHeld {
                host: held.host.clone(),
                holder: Box::new(held),
            });
        }
        let since = jiff::Timestamp::now().to_string();
        let pid = i64::from(holder.pid);
        let expiry = self.store.lease_expiry().as_secs_f64();
        self.execute(
            "INSERT INTO sluice.leases (host, run, operator, controller, pid, since, expires_at)
             SELECT h, $2, $3, $4, $5, $6, now() + make_interval(secs => $7)
             FROM unnest($1::text[]) AS h
             ON CONFLICT (host) DO UPDATE SET run = excluded.run, operator = excluded.operator,
                 controller = excluded.controller, pid = excluded.pid, since = excluded.since,
                 expires_at = excluded.expires_at",
            &[
                &hosts,
                &run,
                &holder.operator,
                &holder.controller,
                &pid,
                &since,
                &expiry,
            ],
        )?;
        Ok(())
    }

    fn remove_leases_of(&mut self, run: &str) -> Result<Vec<Lease>, AuditError> {
        let held = self.leases_of(run)?;
        self.execute("DELETE FROM sluice.leases WHERE run = $1", &[&run])?;
        Ok(held.into_iter().map(|l| l.lease).collect())
    }
}

/// The parameters of [`INSERT_RECORDS`] for `pending`.
fn records_params(pending: &PendingRecords) -> [(&(dyn ToSql + Sync), Type); 4] {
    [
        (&pending.seq, Type::INT8_ARRAY),
        (&pending.run, Type::TEXT_ARRAY),
        (&pending.kind, Type::TEXT_ARRAY),
        (&pending.body, Type::TEXT_ARRAY),
    ]
}
