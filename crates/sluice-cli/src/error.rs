//! Errors at the edge: every failure of a command becomes a message and a documented exit code.
//! The code is decided here, once, from the kind of error ([`ErrorKind`]); library errors are
//! classified by their variants in the `From` conversions below, so commands just use `?`.

use sluice_audit::AuditError;
use sluice_exec::ExecError;
use sluice_lifecycle::LifecycleError;

use crate::exit;

/// What kind of failure ended the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad plan, inventory or arguments, or a refusal before anything started (exit 2).
    InvalidInput,
    /// The command ran and failed, or something it needs is broken (exit 1).
    Failed,
    /// Not confirmed, or outside the maintenance window: nothing started (exit 4).
    Aborted,
}

/// A failure that ends the command: what to print and its kind.
#[derive(Debug)]
pub struct CliError {
    pub kind: ErrorKind,
    pub message: String,
}

impl CliError {
    pub fn invalid_input(message: impl Into<String>) -> Self {
        CliError {
            kind: ErrorKind::InvalidInput,
            message: message.into(),
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            kind: ErrorKind::Failed,
            message: message.into(),
        }
    }

    pub fn aborted(message: impl Into<String>) -> Self {
        CliError {
            kind: ErrorKind::Aborted,
            message: message.into(),
        }
    }

    /// The same error, counted as `kind` (a store that cannot be opened refuses a run: 2).
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// The documented exit code of this error.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ErrorKind::InvalidInput => exit::INVALID_INPUT,
            ErrorKind::Failed => exit::FAILED,
            ErrorKind::Aborted => exit::ABORTED,
        }
    }
}

/// A wrong run, wave or missing store is the caller's input, as is a lease held by another run
/// or a finished run (2); a damaged, locked or unwritable store is a failure (1).
impl From<AuditError> for CliError {
    fn from(err: AuditError) -> Self {
        let kind = match err {
            AuditError::NoStateDir
            | AuditError::Missing { .. }
            | AuditError::UnknownRun { .. }
            | AuditError::UnknownWave { .. }
            | AuditError::GateClosed { .. }
            | AuditError::NotAPlanApproval
            | AuditError::NotAGateApproval
            | AuditError::NoLeases { .. }
            | AuditError::LeaseHeld { .. }
            | AuditError::LeaseHolderAlive { .. }
            | AuditError::RunFinished { .. }
            | AuditError::BadStoreUrl { .. }
            | AuditError::NotInitialised { .. }
            | AuditError::SchemaNewer { .. }
            | AuditError::NeedsPostgres { .. }
            | AuditError::WorkerNameTaken { .. } => ErrorKind::InvalidInput,
            _ => ErrorKind::Failed,
        };
        CliError {
            kind,
            message: err.to_string(),
        }
    }
}

/// The store could not be read (as any store error), or the metrics file not written (1).
impl From<sluice_metrics::MetricsError> for CliError {
    fn from(err: sluice_metrics::MetricsError) -> Self {
        match err {
            sluice_metrics::MetricsError::Audit(e) => e.into(),
            other => CliError::failed(other.to_string()),
        }
    }
}

impl From<LifecycleError> for CliError {
    fn from(err: LifecycleError) -> Self {
        match err {
            LifecycleError::Audit(e) => e.into(),
            other => CliError {
                kind: if other.is_refusal() {
                    ErrorKind::InvalidInput
                } else {
                    ErrorKind::Failed
                },
                message: other.to_string(),
            },
        }
    }
}

/// No promotion evidence, or an export that does not verify: a refusal before anything ran (2).
impl From<sluice_lifecycle::promotion::PromotionError> for CliError {
    fn from(err: sluice_lifecycle::promotion::PromotionError) -> Self {
        match err {
            sluice_lifecycle::promotion::PromotionError::Audit(e) => e.into(),
            other => CliError::invalid_input(other.to_string()),
        }
    }
}

/// The executor refuses an artifact before anything runs: the input is wrong (2).
impl From<ExecError> for CliError {
    fn from(err: ExecError) -> Self {
        CliError::invalid_input(err.to_string())
    }
}
