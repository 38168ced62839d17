//! Errors at the edge: every library error becomes a readable message and a documented exit code.

use crate::exit;

/// A failure that ends the command: what to print and which exit code to return.
#[derive(Debug)]
pub struct CliError {
    pub exit_code: u8,
    pub message: String,
}

impl CliError {
    /// Bad plan, inventory or arguments (exit 2).
    pub fn invalid_input(message: impl Into<String>) -> Self {
        CliError {
            exit_code: exit::INVALID_INPUT,
            message: message.into(),
        }
    }

    /// The command ran and failed (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            exit_code: exit::FAILED,
            message: message.into(),
        }
    }
}
