//! The documented exit codes of `sluice` (README.md, "Exit codes"). One place maps outcomes
//! and errors to them.

/// Everything applied (or: the plan is valid, the command succeeded).
pub const OK: u8 = 0;
/// A wave failed and was rolled back or halted; or an ad-hoc command failed on some host.
pub const FAILED: u8 = 1;
/// Invalid input: plan, inventory, arguments.
pub const INVALID_INPUT: u8 = 2;
/// A rollback failed: hosts need attention.
pub const ROLLBACK_FAILED: u8 = 3;
/// Aborted: Ctrl-C, or the maintenance window closed.
pub const ABORTED: u8 = 4;
