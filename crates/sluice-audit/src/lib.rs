//! The sluice audit trail: an append-only, hash-chained, durable record of every run.
