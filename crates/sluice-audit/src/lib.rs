//! The sluice audit trail: an append-only, hash-chained, durable record of every run.
//!
//! - [`audit_log`]: [`AuditLog`], the store interface over both backends; open it with
//!   [`AuditLog::open_at`] on a [`StoreLocation`] (or [`AuditLog::open`] on the state directory
//!   [`resolve_state_dir`] picks). [`store`]: the redb backend, [`RedbStore`]; [`pg`]: the
//!   PostgreSQL backend, [`PgStore`]. Every append is one durable commit; [`AuditLog::append_batch`]
//!   shares one commit among many records; [`GroupCommitter`] gathers the records of many
//!   concurrent callers into such shared commits.
//! - [`record`]: the [`Record`] envelope around a fact (sluice-model's [`sluice_model::Fact`],
//!   the same type the executor emits).
//! - [`chain`]: canonical bytes and the hash chain, and the walk that checks it.
//! - [`query`]: runs, a run's records, captured output, approvals, artifacts.
//! - [`lease`]: host leases held by runs.
//! - [`journal`]: taking over an interrupted run (`resume_run`).
//! - [`group`]: [`GroupCommitter`], group commit of records many callers append at once.
//! - [`export`]: `verify`, JSON Lines export, standalone verification of an export.
//! - [`salvage`](mod@salvage): every record still readable in a damaged store, read from its pages.
//! - [`contained`]: panics of the store engine on a damaged file, turned into quiet errors.
//! - `readonly`: how [`AuditLog::open_read_only`] reads a store without writing a byte; `tx`:
//!   one write transaction of the redb store (appends at the chain's tip, indexes kept in step);
//!   `store_tx`: what a write transaction offers on either backend, over which the operations
//!   both share ([`approvals`], [`lease`], [`journal`], the appends) are written once;
//!   `summary_cache`: the run summaries a store (redb or PostgreSQL) committed last, kept for its
//!   next commit.
//! - [`redact`]: [`Redactor`], which keeps secret values out of records.
//!
//! # How the executor uses it
//!
//! 1. Open: `AuditLog::open(&resolve_state_dir(cli_state_dir)?)`. An error here means no run
//!    starts ([`AuditError::Corrupt`], [`AuditError::Locked`], [`AuditError::OtherController`]).
//! 2. With `--require-approval`: [`AuditLog::plan_approvals`] of the artifact's hash must not be
//!    empty. Then [`AuditLog::start_run`] records `run_started` and leases every target host in
//!    one commit, or fails with [`AuditError::LeaseHeld`] naming the holder. Store the artifact
//!    with [`AuditLog::store_artifact`] (kept once per hash).
//! 3. Per wave: `wave_started`; at a gate, `approval_requested`, then poll
//!    [`AuditLog::wave_approved`] (an [`Approval`] with `refused` says no); after the wave,
//!    `wave_decided` with the budget arithmetic.
//! 4. Per step: append `step_intent` and wait for the commit before starting the step; append
//!    `step_result` before the host's next step. Hosts that finish together share one commit
//!    when their records go through one [`GroupCommitter`]. Every command and capture goes
//!    through a [`Redactor`] first.
//! 5. At the end: [`AuditLog::release_leases`], then `run_finished`.
//! 6. Resume: [`AuditLog::run_summary`] (plan hash must match), [`AuditLog::run_records`]
//!    (the executor reads what ran from them), then [`AuditLog::resume_run`] re-takes the
//!    leases and records `run_resumed` and the operator's choice in one commit, refusing a
//!    finished run or a live holder.
//!
//! **Architecture invariant:** records are never updated or deleted. Everything else in the store
//! (run summaries, leases, approval indexes) is derived from records in the same transaction.

pub mod approvals;
pub mod audit_log;
pub mod chain;
pub mod contained;
pub mod error;
pub mod export;
pub mod group;
pub mod identity;
pub mod journal;
pub mod lease;
pub mod pg;
pub mod query;
mod readonly;
pub mod record;
pub mod redact;
pub mod salvage;
pub mod state_dir;
pub mod store;
mod store_tx;
mod summary_cache;
mod tx;

pub use approvals::Gate;
pub use audit_log::{AuditLog, OpenMode, StoreLocation};
pub use chain::Break;
pub use error::{AuditError, StoreName};
pub use export::{ExportEnd, VerifyReport, verify_export};
pub use group::{BatchSink, CommitFailed, CommitStats, GroupCommitter};
pub use lease::{Lease, LeaseHolder, controller_name, operator_name, pid_alive};
pub use pg::{PgStore, StoreUrl};
pub use query::{PendingGate, RunSummary, StepOutput};
pub use record::{Entry, Record, is_plan_run, plan_run_id};
pub use redact::Redactor;
pub use salvage::{SalvageReport, salvage};
pub use state_dir::{STORE_FILE, resolve_state_dir};
pub use store::{Appended, RedbStore};

#[cfg(any(test, feature = "fixture"))]
pub mod fixture;
