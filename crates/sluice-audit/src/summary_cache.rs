//! The run summaries this process committed last, kept from one write transaction to the next,
//! so that a commit does not decode its run's summary (up to 10,000 host names) again.
//!
//! Every commit that appends a record of a run rewrites the run's summary in the `runs` table.
//! Decoding it back in the next commit cost a 10,000-host run most of its audit writer's time.
//! The cache is trusted only when the chain's tip at the start of a transaction is the tip this
//! process left at its last commit: every commit that changes a summary appends a record, so an
//! unchanged tip means no other process (`sluice approve`, another run) changed a summary since,
//! and the cached summaries are what the table holds. Otherwise, and after a transaction that
//! failed, the cache is dropped and summaries are read from the table again.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use crate::query::RunSummary;

/// The chain's last record: its number and hash (`seq` 0 and the genesis hash for an empty
/// chain). Decoded from a stored record, it reads only these two fields.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub(crate) struct ChainTip {
    pub(crate) seq: u64,
    pub(crate) hash: String,
}

/// Summaries as committed when the chain ended at `tip`.
#[derive(Debug, Default)]
pub(crate) struct SummaryCache {
    tip: Option<ChainTip>,
    summaries: BTreeMap<String, RunSummary>,
}

impl SummaryCache {
    pub(crate) fn new(tip: ChainTip, summaries: BTreeMap<String, RunSummary>) -> Self {
        SummaryCache {
            tip: Some(tip),
            summaries,
        }
    }

    /// The cached summaries if the chain still ends where they were committed, else none.
    pub(crate) fn valid_at(self, tip: &ChainTip) -> BTreeMap<String, RunSummary> {
        match &self.tip {
            Some(cached) if cached == tip => self.summaries,
            _ => BTreeMap::new(),
        }
    }
}

/// The cache of one open store, shared by the threads that write through it (the group
/// commit's writer, the run's start and end). A transaction takes it after redb let it begin and
/// puts back what it leaves after its commit; a transaction that begins in between finds none and
/// reads the table, and a cache put back late is caught by the tip check.
#[derive(Debug, Default)]
pub(crate) struct SharedSummaryCache(Mutex<Option<SummaryCache>>);

impl SharedSummaryCache {
    pub(crate) fn take(&self) -> Option<SummaryCache> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    pub(crate) fn keep(&self, cache: Option<SummaryCache>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = cache;
    }
}
