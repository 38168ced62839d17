//! The approvals recorded so far for a plan hash, read from the audit store when there is one.
//!
//! A review never creates a store and never fails for want of one: without a store the review
//! says approvals were not checked, and why.

use std::path::Path;

use sluice_audit::{AuditError, AuditLog};
use sluice_model::fact::ApprovalScope;

use crate::model::{ApprovalSource, ApprovalView, ApprovalsView};

/// Approvals of `plan_hash` in the store under `state_dir`. A missing store gives
/// [`ApprovalSource::NotChecked`]; a store that exists but cannot be read is an error (the
/// caller decides whether to go on without it).
pub fn read(state_dir: &Path, plan_hash: &str) -> Result<ApprovalsView, AuditError> {
    let log = match AuditLog::open_existing(state_dir) {
        Ok(log) => log,
        Err(AuditError::Missing { path }) => {
            return Ok(not_checked(format!(
                "no audit store at {} (approve with `sluice approve-plan`, or pass --state-dir)",
                path.display()
            )));
        }
        Err(e) => return Err(e),
    };
    let recorded = log
        .plan_approvals(plan_hash)?
        .into_iter()
        // `plan_approvals` indexes plan approvals only; the match keeps it so if that changes.
        .filter(|(_, a)| matches!(a.scope, ApprovalScope::Plan { .. }))
        .map(|(record, a)| ApprovalView {
            seq: record.seq,
            at: record.at,
            by: a.by,
            comment: a.comment,
            refused: a.refused,
        })
        .collect();
    Ok(ApprovalsView {
        source: ApprovalSource::Store {
            path: log_path(state_dir),
        },
        recorded,
    })
}

/// Approvals not looked up, with the reason shown in the review.
pub fn not_checked(reason: impl Into<String>) -> ApprovalsView {
    ApprovalsView {
        source: ApprovalSource::NotChecked {
            reason: reason.into(),
        },
        recorded: Vec::new(),
    }
}

fn log_path(state_dir: &Path) -> String {
    state_dir
        .join(sluice_audit::state_dir::STORE_FILE)
        .display()
        .to_string()
}
