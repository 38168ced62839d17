//! What the audit trail records: the record envelope around a [`Fact`].
//!
//! The facts themselves are sluice-model's: the same types the executor emits as events and
//! resume reads back. Facts are plain data (strings and integers, no floats), so a record
//! serialises to the same canonical bytes on every machine, which the hash chain depends on (see
//! [`crate::chain`]).

use serde::{Deserialize, Serialize};
use sluice_model::Fact;

/// One record as stored and exported: the envelope the store fills in around a [`Payload`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the store's one sequence, from 1, without gaps.
    pub seq: u64,
    /// When the store committed it, UTC, RFC 3339.
    pub at: String,
    pub run: String,
    /// What happened; its fields are flattened beside the envelope, tagged by `kind`.
    #[serde(flatten)]
    pub fact: Fact,
    /// Hash of the record before this one in the store (64 zeros for the first).
    pub prev_hash: String,
    /// Hash of the previous record of the same run (64 zeros for the run's first record). A
    /// `--run` export is verified along this second chain, since other runs' records interleave.
    pub run_prev_hash: String,
    /// sha256(prev_hash || canonical bytes of this record without `hash`), hex.
    pub hash: String,
}

impl Record {
    pub fn kind(&self) -> &'static str {
        self.fact.kind()
    }
}

/// Plan approvals belong to no run: they are recorded under a pseudo-run per plan hash,
/// `plan:<first 12 hex digits>`, which `sluice runs` does not list.
pub fn plan_run_id(plan_hash: &str) -> String {
    format!("plan:{}", plan_hash.get(..12).unwrap_or(plan_hash))
}

/// Whether a run id is a plan's pseudo-run ([`plan_run_id`]).
pub fn is_plan_run(run: &str) -> bool {
    run.starts_with("plan:")
}

/// What a caller hands to the store: a run and what happened. The store adds sequence number,
/// time and hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub run: String,
    pub fact: Fact,
}

impl Entry {
    pub fn new(run: impl Into<String>, fact: Fact) -> Self {
        Entry {
            run: run.into(),
            fact,
        }
    }
}
