//! One write transaction of the PostgreSQL store: the chain's tip locked, records appended
//! with the same envelope, canonical bytes and hashes as the redb store (`crate::tx`), and the
//! indexes and the leases table kept in step; the backend's side of [`StoreTx`].
//!
//! Round trips are the cost of a commit here (the group commit's batch waits for them): the
//! records a transaction appends are held back and inserted with one statement, sent in one
//! pipeline with the summaries, the run's hosts and the new tip just before `COMMIT`, or before
//! any other statement of the transaction (which may read them); the statements of every commit
//! are sent with their parameter types, so none needs a round trip of its own to be prepared.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

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
    pending: RefCell<RecordRows>,
}

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
            pending: RefCell::new(RecordRows::default()),
        })
    }

    /// Inserts the records held back, before a statement that may read them.
    fn flush(&self) -> Result<(), AuditError> {
        let rows = std::mem::take(&mut *self.pending.borrow_mut());
        if rows.seqs.is_empty() {
            return Ok(());
        }
        block(self.txn.execute_typed(INSERT_RECORDS, &rows.params()))
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

    /// Writes the records held back, the summaries, the run's hosts and the new tip in one
    /// pipeline, then commits durably. A summary is written without its host lists: the hosts
    /// this transaction saw finish or fail are added to `run_hosts` instead (a summary read or
    /// kept from the last commit starts with empty lists, so those are exactly this
    /// transaction's), and a commit costs the same whether the run has ten hosts or 100,000.
    pub(crate) fn commit(mut self) -> Result<(), AuditError> {
        let mut written = Vec::with_capacity(self.summaries.len());
        for (run, summary) in &mut self.summaries {
            let hosts = RunHosts::new(
                std::mem::take(&mut summary.hosts_finished),
                std::mem::take(&mut summary.hosts_failed),
            );
            let encoded = serde_json::to_string(&summary).map_err(|source| AuditError::Encode {
                run: run.clone(),
                kind: "run summary",
                source,
            })?;
            written.push((run.clone(), encoded, hosts));
        }
        let rows = std::mem::take(&mut *self.pending.borrow_mut());
        let records = rows.params();
        let seq = i64::try_from(self.tip_seq).unwrap_or(i64::MAX);
        let tip: [(&(dyn ToSql + Sync), Type); 2] =
            [(&seq, Type::INT8), (&self.tip_hash, Type::TEXT)];
        let summary_params: Vec<[(&(dyn ToSql + Sync), Type); 2]> = written
            .iter()
            .map(|(run, encoded, _)| {
                [
                    (run as &(dyn ToSql + Sync), Type::TEXT),
                    (encoded as _, Type::TEXT),
                ]
            })
            .collect();
        let host_params: Vec<[(&(dyn ToSql + Sync), Type); 4]> = written
            .iter()
            .filter(|(_, _, hosts)| !hosts.names.is_empty())
            .map(|(run, _, hosts)| hosts.params(run))
            .collect();
        // Sent together, answered together: one round trip for all of them.
        let mut writes = Vec::with_capacity(summary_params.len() + host_params.len() + 2);
        if !rows.seqs.is_empty() {
            writes.push(self.txn.execute_typed(INSERT_RECORDS, &records));
        }
        for params in &summary_params {
            writes.push(self.txn.execute_typed(
                "INSERT INTO sluice.runs (run, summary) VALUES ($1, $2)
                 ON CONFLICT (run) DO UPDATE SET summary = excluded.summary",
                params,
            ));
        }
        for params in &host_params {
            writes.push(self.txn.execute_typed(
                "INSERT INTO sluice.run_hosts (run, host, finished, failed)
                 SELECT $1, h, f, x FROM unnest($2::text[], $3::bool[], $4::bool[]) AS t(h, f, x)
                 ON CONFLICT (run, host) DO UPDATE SET
                     finished = sluice.run_hosts.finished OR excluded.finished,
                     failed = sluice.run_hosts.failed OR excluded.failed",
                params,
            ));
        }
        writes.push(
            self.txn
                .execute_typed("UPDATE sluice.chain_tip SET seq = $1, hash = $2", &tip),
        );
        let name = self.name;
        block(futures::future::try_join_all(writes)).map_err(|e| db_error(name, &e))?;
        drop((summary_params, host_params, records, tip));
        drop(written);
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
        self.index(&record, seq)?;
        self.pending
            .borrow_mut()
            .push(seq, &record, text.to_string());
        self.run_summary(&record.run)?;
        self.advance(&record);
        Ok(())
    }

    /// Moves the tip to `record` and adds it to its run's summary.
    fn advance(&mut self, record: &Record) {
        self.tip_seq = record.seq;
        self.tip_hash = record.hash.clone();
        self.summaries
            .entry(record.run.clone())
            .or_insert_with(|| RunSummary::new(&record.run))
            .apply(record);
    }

    /// Seals the next record at the tip, updates the indexes and the run's summary, and holds
    /// its row back for the next statement or the commit.
    fn seal(&mut self, entry: Entry) -> Result<Appended, AuditError> {
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
        self.index(&record, seq)?;
        self.pending.borrow_mut().push(seq, &record, text);
        self.advance(&record);
        Ok(Appended {
            seq: record.seq,
            hash: record.hash,
        })
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

    /// Held back with the transaction's other records: a worker's or the group commit's batch
    /// costs one statement, sent with the commit, not one per record.
    fn append(&mut self, entry: Entry) -> Result<Appended, AuditError> {
        self.seal(entry)
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

    fn close_run_tasks(&mut self, run: &str) -> Result<(), AuditError> {
        super::queue::close_run_tasks(self, run)
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

/// Inserts many records with one statement.
const INSERT_RECORDS: &str = "INSERT INTO sluice.records (seq, run, kind, body, host)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])";

/// Rows of `sluice.records` to insert with one statement, column by column.
#[derive(Default)]
struct RecordRows {
    seqs: Vec<i64>,
    runs: Vec<String>,
    kinds: Vec<&'static str>,
    bodies: Vec<String>,
    hosts: Vec<Option<String>>,
}

impl RecordRows {
    fn push(&mut self, seq: i64, record: &Record, text: String) {
        self.seqs.push(seq);
        self.runs.push(record.run.clone());
        self.kinds.push(record.kind());
        self.hosts.push(record_host(record));
        self.bodies.push(text);
    }

    /// The parameters of [`INSERT_RECORDS`].
    fn params(&self) -> [(&(dyn ToSql + Sync), Type); 5] {
        [
            (&self.seqs, Type::INT8_ARRAY),
            (&self.runs, Type::TEXT_ARRAY),
            (&self.kinds, Type::TEXT_ARRAY),
            (&self.bodies, Type::TEXT_ARRAY),
            (&self.hosts, Type::TEXT_ARRAY),
        ]
    }
}

/// A run's hosts that finished or failed in one transaction, as the `run_hosts` upsert takes
/// them (a host once listed stays).
struct RunHosts {
    names: Vec<String>,
    finished: Vec<bool>,
    failed: Vec<bool>,
}

impl RunHosts {
    fn new(finished: BTreeSet<String>, failed: BTreeSet<String>) -> Self {
        let names: Vec<String> = finished.union(&failed).cloned().collect();
        RunHosts {
            finished: names.iter().map(|h| finished.contains(h)).collect(),
            failed: names.iter().map(|h| failed.contains(h)).collect(),
            names,
        }
    }

    fn params<'p>(&'p self, run: &'p String) -> [(&'p (dyn ToSql + Sync), Type); 4] {
        [
            (run, Type::TEXT),
            (&self.names, Type::TEXT_ARRAY),
            (&self.finished, Type::BOOL_ARRAY),
            (&self.failed, Type::BOOL_ARRAY),
        ]
    }
}

/// The host a record speaks of: its fact's top-level `host` field ([`Fact::host`]), as schema
/// version 3 filled the column in for older records from their text.
fn record_host(record: &Record) -> Option<String> {
    record.fact.host().map(str::to_string)
}
