//! The documented exit codes of `sluice` (README.md, "Exit codes"), and the one place outcomes
//! and errors are mapped to them: [`for_status`] for a run's outcome, [`crate::error`] for every
//! error kind.

use sluice_model::RunStatus;

/// Everything applied (or: the plan is valid, the command succeeded).
pub const OK: u8 = 0;
/// A wave failed and was rolled back or halted; or an ad-hoc command failed on some host.
pub const FAILED: u8 = 1;
/// `sluice plan diff`: the two artifacts differ (as `diff` exits 1).
pub const DIFFERENT: u8 = 1;
/// Invalid input: plan, inventory, arguments; a refusal before anything started.
pub const INVALID_INPUT: u8 = 2;
/// A rollback failed: hosts need attention.
pub const ROLLBACK_FAILED: u8 = 3;
/// Aborted: Ctrl-C, the maintenance window, a refused gate, or no confirmation.
pub const ABORTED: u8 = 4;
/// The run's record is incomplete: its hosts ended as for 0 or 6, but the audit store could not
/// record all of it (`record_incomplete`). A run that failed, rolled back or was aborted keeps
/// 1, 3 or 4 and says the same of its record.
pub const RECORD_INCOMPLETE: u8 = 5;
/// The run went through, but hosts failed within their wave's budget (or a wave failed under
/// `action: continue`): success with a caveat, as Terraform's `-detailed-exitcode` gives a
/// success with changes its own code. `--allow-tolerated` makes it 0.
pub const TOLERATED: u8 = 6;
/// The audit store (a database) could not be reached mid-run: the run stopped safely — no step
/// started whose intent was not recorded, commands in flight finished, nothing was undone — and
/// is unfinished in the store: `sluice resume RUN` carries it on once the store is back
/// (`store_unreachable`). Not 5: the run did not end, and nothing about its hosts is settled.
pub const STORE_UNREACHABLE: u8 = 7;

/// The exit code of a run that ended with `status`.
pub fn for_status(status: RunStatus) -> u8 {
    match status {
        RunStatus::Succeeded => OK,
        RunStatus::Tolerated => TOLERATED,
        RunStatus::Failed | RunStatus::RolledBack => FAILED,
        RunStatus::RollbackFailed => ROLLBACK_FAILED,
        RunStatus::Aborted
        | RunStatus::WindowClosed
        | RunStatus::OutsideWindow
        | RunStatus::ApprovalRefused
        | RunStatus::OperatorNeeded => ABORTED,
        RunStatus::RecordIncomplete => RECORD_INCOMPLETE,
        RunStatus::StoreUnreachable => STORE_UNREACHABLE,
    }
}
