//! Prometheus metrics of sluice runs, for node_exporter's textfile collector.
//!
//! Every number comes from the audit store, never from a run in memory, so `sluice apply
//! --metrics-file` (after its run is recorded) and `sluice metrics` print the same thing:
//!
//! - [`collect`]: the plans' latest finished runs, their counts per status and their last
//!   success, read from the store ([`PlanMetrics`], [`RunMetrics`]);
//! - [`exposition`]: those values in the Prometheus text exposition format (version 0.0.4),
//!   gauges and counters only — the textfile collector refuses OpenMetrics' `info` and `unit`
//!   lines;
//! - [`textfile`]: the file written atomically (a temporary file in the same directory, renamed
//!   over the old one), so the collector never reads half a file.

pub mod collect;
pub mod error;
pub mod exposition;
pub mod textfile;

pub use collect::{HostCounts, PlanMetrics, RunMetrics, WaveMetrics, collect};
pub use error::MetricsError;
pub use exposition::encode;
pub use textfile::write_atomically;
