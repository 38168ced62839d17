//! Approval gates: a wave with `approval: true` starts only once someone approves it.
//!
//! The executor only knows the [`Approver`] interface. The CLI answers it with an interactive
//! prompt on a terminal; the audit store can answer it later from `sluice approve RUN_ID` in
//! another terminal, by implementing the same trait.

use std::future::Future;
use std::pin::Pin;

/// The answer to a gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApprovalDecision {
    Approved { by: String },
    Refused { by: String },
}

/// A boxed future, so approvers can be used behind `dyn`.
pub type ApprovalFuture<'a> = Pin<Box<dyn Future<Output = ApprovalDecision> + Send + 'a>>;

/// Decides whether a gated wave may start. The executor waits on the returned future (a stop
/// request still ends the wait).
pub trait Approver: Send + Sync {
    fn approve<'a>(&'a self, run_id: &'a str, wave: &'a str) -> ApprovalFuture<'a>;
}
