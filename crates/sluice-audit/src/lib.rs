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
pub use query::{RunSummary, StepOutput};
pub use record::{
    Approval, ApprovalScope, Capture, Entry, Exit, HealthResult, LeaseChange, Payload,
    PlanArtifactStored, Record, RunFinished, RunStarted, StepIntent, StepResult, UnknownChoice,
    UnknownStepsResolved, WaveDecided, WaveStarted,
};
pub use redact::Redactor;
pub use state_dir::{STORE_FILE, resolve_state_dir};
pub use store::{Appended, AuditLog};

#[cfg(any(test, feature = "fixture"))]
pub mod fixture;
