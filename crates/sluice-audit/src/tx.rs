//! One write transaction of the redb store: records appended at the chain's tip, the indexes
//! (runs, a run's records, artifacts, approvals, gates) kept in step in the same transaction, and
//! the leases table: the backend's side of [`StoreTx`].

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use sluice_model::{ApprovalScope, Fact};
use std::collections::BTreeMap;

use crate::chain::GENESIS;
use crate::error::{AuditError, StoreName};
use crate::lease::{HeldLease, Lease, LeaseHolder, decode_lease, encode_lease, pid_alive};
use crate::query::RunSummary;
use crate::record::{Entry, Record};
use crate::store::{
    ARTIFACTS, Appended, LEASES, PENDING_GATES, PLAN_APPROVALS, RECORDS, RUN_INDEX, RUNS,
    RedbStore, WAVE_APPROVALS,
};
use crate::store_tx::{SealedRecord, StoreTx, seal_next};
use crate::summary_cache::{ChainTip, SummaryCache};

/// One open write transaction: appends records and keeps the indexes in step.
pub(crate) struct Tx<'a> {
    pub(crate) log: &'a RedbStore,
    pub(crate) txn: WriteTransaction,
    /// The chain's tip as this transaction sees it: read from the table once, then moved by each
    /// append.
    tip: Option<ChainTip>,
    /// What this process's last commit left, until the tip says whether it still holds.
    cache: Option<SummaryCache>,
    /// Summaries of that cache found still valid and not used yet.
    valid: BTreeMap<String, RunSummary>,
    /// Run summaries read or changed in this transaction, written once at commit: a batch of
    /// many records of one run encodes its summary once, not once per record.
    summaries: BTreeMap<String, RunSummary>,
}

impl<'a> Tx<'a> {
    pub(crate) fn new(
        log: &'a RedbStore,
        txn: WriteTransaction,
        cache: Option<SummaryCache>,
    ) -> Self {
        Tx {
            log,
            txn,
            tip: None,
            cache,
            valid: BTreeMap::new(),
            summaries: BTreeMap::new(),
        }
    }

    /// The transaction to commit, and the summaries it leaves for the next one: those it wrote
    /// and the valid ones it did not touch, at the tip it ends at. A transaction that never read
    /// the tip wrote no summary and hands the cache on as it got it.
    pub(crate) fn finish(self) -> (WriteTransaction, Option<SummaryCache>) {
        let cache = match self.tip {
            None => self.cache,
            Some(tip) => {
                let mut summaries = self.valid;
                summaries.extend(self.summaries);
                Some(SummaryCache::new(tip, summaries))
            }
        };
        (self.txn, cache)
    }

    /// The chain's last record. Read from the table on first use, which is also when the
    /// cached summaries are checked against it: no append of this transaction has moved it yet.
    fn tip(&mut self) -> Result<&ChainTip, AuditError> {
        let tip = match self.tip.take() {
            Some(tip) => tip,
            None => {
                let tip = self.read_tip()?;
                if let Some(cache) = self.cache.take() {
                    self.valid = cache.valid_at(&tip);
                }
                tip
            }
        };
        Ok(self.tip.insert(tip))
    }

    fn read_tip(&self) -> Result<ChainTip, AuditError> {
        let records = self.table(RECORDS)?;
        let last = records.last().map_err(|e| self.log.err(e))?;
        match last {
            None => Ok(ChainTip {
                seq: 0,
                hash: GENESIS.to_string(),
            }),
            Some((seq, bytes)) => decode_tip(self.log.name(), seq.value(), bytes.value()),
        }
    }

    pub(crate) fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<redb::Table<'_, K, V>, AuditError> {
        self.txn.open_table(def).map_err(|e| self.log.err(e))
    }

    pub(crate) fn flush_summaries(&mut self) -> Result<(), AuditError> {
        let mut runs = self.table(RUNS)?;
        for (run, summary) in &self.summaries {
            let encoded = serde_json::to_vec(summary).map_err(|source| AuditError::Encode {
                run: run.clone(),
                kind: "run summary",
                source,
            })?;
            runs.insert(run.as_str(), encoded.as_slice())
                .map_err(|e| self.log.err(e))?;
        }
        Ok(())
    }
}

impl StoreTx for Tx<'_> {
    fn run_summary(&mut self, run: &str) -> Result<Option<&RunSummary>, AuditError> {
        if !self.summaries.contains_key(run) {
            self.tip()?;
            let stored = match self.valid.remove(run) {
                Some(cached) => Some(cached),
                None => {
                    let runs = self.table(RUNS)?;
                    let value = runs.get(run).map_err(|e| self.log.err(e))?;
                    value
                        .map(|v| RunSummary::decode(v.value(), self.log.name(), run))
                        .transpose()?
                }
            };
            match stored {
                Some(summary) => self.summaries.insert(run.to_string(), summary),
                None => return Ok(None),
            };
        }
        Ok(self.summaries.get(run))
    }

    fn has_run(&self, run: &str) -> Result<bool, AuditError> {
        let runs = self.table(RUNS)?;
        Ok(runs.get(run).map_err(|e| self.log.err(e))?.is_some())
    }

    fn has_artifact(&self, plan_hash: &str) -> Result<bool, AuditError> {
        let stored = self.table(ARTIFACTS)?;
        Ok(stored
            .get(plan_hash)
            .map_err(|e| self.log.err(e))?
            .is_some())
    }

    fn append(&mut self, entry: Entry) -> Result<Appended, AuditError> {
        let ChainTip {
            seq: prev_seq,
            hash: prev_hash,
        } = self.tip()?.clone();
        let run_prev_hash = self
            .run_summary(&entry.run)?
            .map_or_else(|| GENESIS.to_string(), |s| s.last_hash.clone());
        let SealedRecord { record, text } =
            seal_next(entry, prev_seq + 1, prev_hash, run_prev_hash)?;
        let seq = record.seq;
        let run = record.run.as_str();
        self.table(RECORDS)?
            .insert(seq, text.as_bytes())
            .map_err(|e| self.log.err(e))?;
        self.table(RUN_INDEX)?
            .insert((run, seq), ())
            .map_err(|e| self.log.err(e))?;
        match &record.fact {
            Fact::PlanArtifactStored(stored) => {
                self.table(ARTIFACTS)?
                    .insert(stored.plan_hash.as_str(), seq)
                    .map_err(|e| self.log.err(e))?;
            }
            Fact::Approval(approval) => match &approval.scope {
                ApprovalScope::Plan { plan_hash } => {
                    self.table(PLAN_APPROVALS)?
                        .insert((plan_hash.as_str(), seq), ())
                        .map_err(|e| self.log.err(e))?;
                }
                ApprovalScope::Wave { wave } => {
                    self.table(WAVE_APPROVALS)?
                        .insert((run, wave.as_str()), seq)
                        .map_err(|e| self.log.err(e))?;
                    self.table(PENDING_GATES)?
                        .remove((run, wave.as_str()))
                        .map_err(|e| self.log.err(e))?;
                }
                // A confirmation typed at `sluice apply` is in the run's records only: it must
                // never count as a plan approval for `--require-approval`.
                ApprovalScope::RunStart { .. } => {}
            },
            Fact::ApprovalRequested(requested) => {
                self.table(PENDING_GATES)?
                    .insert((run, requested.wave.as_str()), seq)
                    .map_err(|e| self.log.err(e))?;
            }
            Fact::RunFinished(_) => {
                // A finished run waits for nothing.
                let mut gates = self.table(PENDING_GATES)?;
                let mut waves = Vec::new();
                for item in gates.range((run, "")..).map_err(|e| self.log.err(e))? {
                    let (key, _) = item.map_err(|e| self.log.err(e))?;
                    let (gate_run, wave) = key.value();
                    if gate_run != run {
                        break;
                    }
                    waves.push(wave.to_string());
                }
                for wave in &waves {
                    gates
                        .remove((run, wave.as_str()))
                        .map_err(|e| self.log.err(e))?;
                }
            }
            _ => {}
        }
        self.summaries
            .entry(record.run.clone())
            .or_insert_with(|| RunSummary::new(&record.run))
            .apply(&record);
        self.tip = Some(ChainTip {
            seq,
            hash: record.hash.clone(),
        });
        Ok(Appended {
            seq,
            hash: record.hash,
        })
    }

    fn run_records(&self, run: &str) -> Result<Vec<Record>, AuditError> {
        let log = self.log;
        let seqs: Vec<u64> = {
            let index = self.table(RUN_INDEX)?;
            let range = index
                .range((run, 0)..=(run, u64::MAX))
                .map_err(|e| log.err(e))?;
            range
                .map(|item| item.map(|(k, _)| k.value().1).map_err(|e| log.err(e)))
                .collect::<Result<_, _>>()?
        };
        let records = self.table(RECORDS)?;
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let Some(bytes) = records.get(seq).map_err(|e| log.err(e))? else {
                continue;
            };
            out.push(decode_record(log.name(), seq, bytes.value())?);
        }
        Ok(out)
    }

    fn artifact(&self, plan_hash: &str) -> Result<Option<serde_json::Value>, AuditError> {
        let log = self.log;
        let seq = self
            .table(ARTIFACTS)?
            .get(plan_hash)
            .map_err(|e| log.err(e))?
            .map(|v| v.value());
        let Some(seq) = seq else {
            return Ok(None);
        };
        let records = self.table(RECORDS)?;
        let Some(bytes) = records.get(seq).map_err(|e| log.err(e))? else {
            return Ok(None);
        };
        match decode_record(log.name(), seq, bytes.value())?.fact {
            Fact::PlanArtifactStored(stored) => Ok(Some(stored.artifact)),
            _ => Ok(None),
        }
    }

    fn controller(&self) -> &str {
        self.log.controller()
    }

    /// A holder is alive while its pid lives on this controller; another controller's
    /// processes cannot be checked from here, so its holders count as alive.
    fn leases_of(&self, run: &str) -> Result<Vec<HeldLease>, AuditError> {
        let log = self.log;
        let leases = self.table(LEASES)?;
        let mut held = Vec::new();
        for item in leases.iter().map_err(|e| log.err(e))? {
            let (host, bytes) = item.map_err(|e| log.err(e))?;
            let lease = decode_lease(log, host.value(), bytes.value())?;
            if lease.run == run {
                let alive = lease.controller != log.controller() || pid_alive(lease.pid);
                held.push(HeldLease { lease, alive });
            }
        }
        Ok(held)
    }

    fn put_leases(
        &mut self,
        run: &str,
        hosts: &[String],
        holder: &LeaseHolder,
    ) -> Result<(), AuditError> {
        let log = self.log;
        let since = jiff::Timestamp::now().to_string();
        let mut leases = self.table(LEASES)?;
        for host in hosts {
            let existing = leases.get(host.as_str()).map_err(|e| log.err(e))?;
            if let Some(bytes) = existing {
                let lease = decode_lease(log, host, bytes.value())?;
                if lease.run != run {
                    return Err(AuditError::LeaseHeld {
                        host: host.clone(),
                        holder: Box::new(lease),
                    });
                }
            }
        }
        for host in hosts {
            let lease = Lease {
                host: host.clone(),
                run: run.to_string(),
                operator: holder.operator.clone(),
                controller: holder.controller.clone(),
                pid: holder.pid,
                since: since.clone(),
                expires_at: None,
            };
            let bytes = encode_lease(run, &lease)?;
            leases
                .insert(host.as_str(), bytes.as_slice())
                .map_err(|e| log.err(e))?;
        }
        Ok(())
    }

    fn remove_leases_of(&mut self, run: &str) -> Result<Vec<Lease>, AuditError> {
        let log = self.log;
        let mut leases = self.table(LEASES)?;
        let mut held = Vec::new();
        for item in leases.iter().map_err(|e| log.err(e))? {
            let (host, bytes) = item.map_err(|e| log.err(e))?;
            let lease = decode_lease(log, host.value(), bytes.value())?;
            if lease.run == run {
                held.push(lease);
            }
        }
        for lease in &held {
            leases.remove(lease.host.as_str()).map_err(|e| log.err(e))?;
        }
        Ok(held)
    }
}

/// Reads the tip of the chain from the last stored record without building the record: its
/// fact (a whole plan artifact, or captured output) is skipped, not parsed into values, so an
/// append costs the same whatever the record before it holds.
fn decode_tip(store: &StoreName, seq: u64, bytes: &[u8]) -> Result<ChainTip, AuditError> {
    serde_json::from_slice(bytes).map_err(|err| AuditError::BadRecord {
        store: store.clone(),
        seq,
        reason: err.to_string(),
    })
}

/// Parses a stored record; a record that does not parse is reported with its sequence number.
pub(crate) fn decode_record(
    store: &StoreName,
    seq: u64,
    bytes: &[u8],
) -> Result<Record, AuditError> {
    serde_json::from_slice(bytes).map_err(|err| AuditError::BadRecord {
        store: store.clone(),
        seq,
        reason: err.to_string(),
    })
}
