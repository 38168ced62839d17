//! The `--json` wire form of a fact: one JSON object per line, the fact's fields flattened beside
//! the envelope (`seq`, `at`, `run`, `kind`). docs/json-events.md documents it fact by fact.

use serde::{Deserialize, Serialize};

use crate::fact::Fact;

/// One fact as the event stream carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the run's stream in this process, from 1, without gaps.
    pub seq: u64,
    /// Wall-clock time the event was emitted.
    pub at: jiff::Timestamp,
    pub run: String,
    #[serde(flatten)]
    pub fact: Fact,
}
