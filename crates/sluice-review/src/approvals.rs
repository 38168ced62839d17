//! The approvals recorded so far for a plan hash, read from the audit store when there is one.
//!
//! A review never creates a store and never fails for want of one: without a store the review
//! says approvals were not checked, and why.

use sluice_audit::{AuditError, AuditLog, OpenMode, StoreLocation};
use sluice_model::fact::ApprovalScope;

use crate::model::{ApprovalSource, ApprovalView, ApprovalsView};

/// Approvals of `plan_hash` in the store at `location`. A missing store gives
/// [`ApprovalSource::NotChecked`]; a store that exists but cannot be read is an error (the
/// caller decides whether to go on without it).
pub fn read(location: &StoreLocation, plan_hash: &str) -> Result<ApprovalsView, AuditError> {
    let log = match AuditLog::open_at(location, OpenMode::Existing) {
        Ok(log) => log,
        Err(AuditError::NotInitialised { store }) => {
            return Ok(not_checked(format!(
                "the audit store {store} holds nothing yet (approve with `sluice approve-plan`)"
            )));
        }
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
            path: log_path(location),
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

/// The redb file, or the database URL (which never holds a password).
fn log_path(location: &StoreLocation) -> String {
    match location {
        StoreLocation::Redb(state_dir) => state_dir
            .join(sluice_audit::state_dir::STORE_FILE)
            .display()
            .to_string(),
        StoreLocation::Postgres(url) => url.to_string(),
    }
}
