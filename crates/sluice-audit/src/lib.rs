//! The sluice audit trail: an append-only, hash-chained, durable record of every run.
//!
//! - [`store`]: [`AuditLog`], the redb store; open it with [`AuditLog::open`] on the directory
//!   [`resolve_state_dir`] picks. Every append is one durable commit; [`AuditLog::append_batch`]
//!   shares one commit among many records.
//! - [`record`]: the [`Record`] envelope and one typed payload per kind.
//! - [`chain`]: canonical bytes and the hash chain, and the walk that checks it.
//! - [`query`]: runs, a run's records, captured output, approvals, artifacts.
//! - [`lease`]: host leases held by runs.
//! - [`journal`]: intents and results per step, for resume.
//! - [`export`]: `verify`, JSON Lines export, standalone verification of an export, salvage.
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
//!    through [`AuditLog::append_batch`]. Every command and capture goes through a [`Redactor`]
//!    first.
//! 5. At the end: [`AuditLog::release_leases`], then `run_finished`.
//! 6. Resume: [`AuditLog::run_summary`] (plan hash must match), [`AuditLog::step_journal`]
//!    ([`StepJournal::unknown`] are steps with an intent and no result),
//!    [`AuditLog::resolve_unknown`] records the operator's choice, [`AuditLog::take_leases`]
//!    re-takes the run's leases (a run may re-take its own). `sluice resume` does the last
//!    steps in one commit with [`AuditLog::resume_run`], which also refuses a finished run or a
//!    live holder.
//!
//! **Architecture invariant:** records are never updated or deleted. Everything else in the store
//! (run summaries, leases, approval indexes) is derived from records in the same transaction.

pub mod chain;
pub mod error;
pub mod export;
pub mod journal;
pub mod lease;
pub mod query;
pub mod record;
pub mod redact;
pub mod state_dir;
pub mod store;

pub use chain::Break;
pub use error::AuditError;
pub use export::{ExportEnd, VerifyReport, salvage, verify_export};
pub use journal::{StepJournal, StepKey};
pub use lease::{Lease, LeaseHolder, controller_name, operator_name, pid_alive};
pub use query::{PendingGate, RunSummary, StepOutput};
pub use record::{
    Approval, ApprovalRequested, ApprovalScope, Capture, Entry, Exit, HealthResult, LeaseChange,
    Payload, PlanArtifactStored, Record, RunFinished, RunResumed, RunStarted, StepIntent,
    StepResult, UnknownChoice, UnknownStepsResolved, WaveDecided, WaveStarted, is_plan_run,
    plan_run_id,
};
pub use redact::Redactor;
pub use state_dir::{STORE_FILE, resolve_state_dir};
pub use store::{Appended, AuditLog};

#[cfg(any(test, feature = "fixture"))]
pub mod fixture;
