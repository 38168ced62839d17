//! Approval gates: a wave with `approval: true` starts only once someone approves it.
//!
//! The executor only knows the [`Approver`] interface: it records `approval_requested`, then
//! waits for the approver's answer, an [`Approval`] fact the approver has already recorded (or
//! read from the record `sluice approve` wrote). The run's lifecycle answers it from the audit
//! store, racing a prompt on the terminal when there is one.

use std::future::Future;
use std::pin::Pin;

use sluice_model::{Approval, ApprovalHow};

/// A boxed future, so approvers can be used behind `dyn`.
pub type ApprovalFuture<'a> = Pin<Box<dyn Future<Output = Approval> + Send + 'a>>;

/// Decides whether a gated wave may start. The executor waits on the returned future (a stop
/// request still ends the wait). The answer must already be on record when it is returned.
pub trait Approver: Send + Sync {
    fn approve<'a>(&'a self, run_id: &'a str, wave: &'a str) -> ApprovalFuture<'a>;
}

/// A refusal of the gate before `wave` that sluice itself gives (nobody can be asked, the answer
/// could not be recorded): `by` says why.
pub fn refusal(wave: &str, by: &str) -> Approval {
    Approval::of_wave(wave, by, true, ApprovalHow::Sluice)
}
