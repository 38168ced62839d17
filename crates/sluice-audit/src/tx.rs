//! One write transaction of the store: records appended at the chain's tip, and the indexes
//! (runs, a run's records, artifacts, approvals, gates) kept in step in the same transaction.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use sluice_model::{ApprovalScope, Fact, PlanArtifactStored};

use crate::chain::{self, GENESIS};
use crate::error::AuditError;
use crate::query::RunSummary;
use crate::record::{Entry, Record};
use crate::store::{
    ARTIFACTS, Appended, PENDING_GATES, PLAN_APPROVALS, RECORDS, RUN_INDEX, RUNS, RedbStore,
    WAVE_APPROVALS,
};
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
            Some((seq, bytes)) => decode_tip(self.log.path(), seq.value(), bytes.value()),
        }
    }

    pub(crate) fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<redb::Table<'_, K, V>, AuditError> {
        self.txn.open_table(def).map_err(|e| self.log.err(e))
    }

    pub(crate) fn run_summary(&mut self, run: &str) -> Result<Option<&RunSummary>, AuditError> {
        if !self.summaries.contains_key(run) {
            self.tip()?;
            let stored = match self.valid.remove(run) {
                Some(cached) => Some(cached),
                None => {
                    let runs = self.table(RUNS)?;
                    let value = runs.get(run).map_err(|e| self.log.err(e))?;
                    value
                        .map(|v| RunSummary::decode(v.value(), self.log.path(), run))
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

    /// A run id that sorts by start time: `YYYYMMDD-HHMMSS-xxxx`.
    pub(crate) fn new_run_id(&self) -> Result<String, AuditError> {
        let now = jiff::Timestamp::now();
        let stamp = now.strftime("%Y%m%d-%H%M%S").to_string();
        let runs = self.table(RUNS)?;
        let mut salt =
            u64::from(std::process::id()) ^ now.subsec_nanosecond().unsigned_abs() as u64;
        loop {
            let digest = <sha2::Sha256 as sha2::Digest>::digest(salt.to_le_bytes());
            let candidate = format!("{stamp}-{}", &hex::encode(digest)[..4]);
            if runs
                .get(candidate.as_str())
                .map_err(|e| self.log.err(e))?
                .is_none()
            {
                return Ok(candidate);
            }
            salt = salt.wrapping_add(1);
        }
    }

    pub(crate) fn store_artifact(
        &mut self,
        run: &str,
        plan_hash: &str,
        artifact: serde_json::Value,
    ) -> Result<Option<Appended>, AuditError> {
        let stored = self.table(ARTIFACTS)?;
        if stored
            .get(plan_hash)
            .map_err(|e| self.log.err(e))?
            .is_some()
        {
            return Ok(None);
        }
        drop(stored);
        let fact = Fact::PlanArtifactStored(PlanArtifactStored {
            plan_hash: plan_hash.to_string(),
            artifact,
        });
        self.append(Entry::new(run, fact)).map(Some)
    }

    /// Appends one record at the chain's tip and updates the indexes.
    pub(crate) fn append(&mut self, entry: Entry) -> Result<Appended, AuditError> {
        let ChainTip {
            seq: prev_seq,
            hash: prev_hash,
        } = self.tip()?.clone();
        let run_prev_hash = self
            .run_summary(&entry.run)?
            .map_or_else(|| GENESIS.to_string(), |s| s.last_hash.clone());
        let mut record = Record {
            seq: prev_seq + 1,
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
        let bytes = serde_json::to_vec(&record).map_err(encode)?;
        let seq = record.seq;
        let run = record.run.as_str();
        self.table(RECORDS)?
            .insert(seq, bytes.as_slice())
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
}

/// Reads the tip of the chain from the last stored record without building the record: its
/// fact (a whole plan artifact, or captured output) is skipped, not parsed into values, so an
/// append costs the same whatever the record before it holds.
fn decode_tip(path: &Path, seq: u64, bytes: &[u8]) -> Result<ChainTip, AuditError> {
    serde_json::from_slice(bytes).map_err(|err| AuditError::BadRecord {
        path: path.to_path_buf(),
        seq,
        reason: err.to_string(),
    })
}

/// Parses a stored record; a record that does not parse is reported with its sequence number.
pub(crate) fn decode_record(path: &Path, seq: u64, bytes: &[u8]) -> Result<Record, AuditError> {
    serde_json::from_slice(bytes).map_err(|err| AuditError::BadRecord {
        path: path.to_path_buf(),
        seq,
        reason: err.to_string(),
    })
}
