//! The life of a recorded run, between the command line and the executor: everything that
//! happens around [`sluice_exec::Executor`] so that the audit trail holds the whole run.
//!
//! 1. [`start`]: `run_started`, the host leases, the plan artifact and the operator's typed
//!    confirmation in one commit (or a refusal naming the lease holder, with nothing recorded);
//!    `--require-approval`'s check.
//! 2. [`recorded`]: [`RecordedRun`] runs the executor with the audit store as its journal
//!    ([`journal::AuditJournal`], through one group committer) and its approval gates answered
//!    from the store ([`gate::StoreApprover`]), then releases the leases and records
//!    `run_finished` in one commit.
//!    Warnings the libraries log during the run ([`warnings`]) are recorded as `warning` facts.
//! 3. [`adhoc`]: `sluice exec` as a recorded run of kind `exec`, with its leases.
//! 4. [`check`]: `sluice apply --check` as a recorded run of kind `check`.
//! 5. [`resume`]: the checks before a run whose controller died is carried on, what it did
//!    before (read by `sluice_exec::prior`), and the take-over commit.
//!
//! 6. [`coordinate`]: `apply --workers`: the run's hosts handed to workers through the shared
//!    store, their results read back from the run's records; [`worker`]: `sluice worker`, the
//!    process that claims hosts and runs them with the executor's code, recording through
//!    [`worker_journal`] (one group commit per worker, each fact fenced by its host's claim).
//!
//! The CLI is glue around this crate: it parses arguments, asks on the terminal, draws the
//! events and turns outcomes and [`LifecycleError`]s into exit codes.
//!
//! Architecture invariant: no command is sent to a host before the run's start is committed
//! (leases held), and a run that started always ends with its leases released, whatever the
//! outcome; a start refused by a lease leaves no record.

pub mod adhoc;
pub mod check;
pub mod coordinate;
pub mod error;
pub mod gate;
pub mod journal;
pub mod policy;
pub mod promotion;
pub mod recorded;
pub mod resume;
pub mod start;
pub mod warnings;
pub mod worker;
pub mod worker_journal;

pub use error::LifecycleError;
pub use recorded::{Finished, RecordedRun};
pub use start::{Started, start_run};
