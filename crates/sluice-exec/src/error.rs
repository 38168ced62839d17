//! The executor's one error type: problems that stop a run before any host is touched.
//!
//! Anything that goes wrong on a host (unreachable, a failing step, a failed health check) is not
//! an error here: it is recorded as that host's outcome and counted against the wave's budget,
//! because a failing host must never take the run down.

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The artifact was edited after it was sealed, or sealed by a different planner.
    #[error(
        "the plan artifact's hash does not match its content (stored {stored}); re-run `sluice plan --out` and review it again"
    )]
    HashMismatch { stored: String },

    /// `--expect-hash` named a different plan than the one given.
    #[error("the plan hash is {actual}, not the expected {expected}; nothing was started")]
    UnexpectedHash { expected: String, actual: String },

    /// The artifact was written by an incompatible planner.
    #[error("plan artifact format {found} is not supported (this sluice reads format {supported})")]
    Format { found: u32, supported: u32 },

    /// A secret named by the plan has no value.
    #[error("secret `{name}`: {reason}; nothing was started")]
    Secret { name: String, reason: String },

    /// `become_password` names a secret the artifact does not declare.
    #[error(
        "become_password names secret `{name}`, which the plan does not declare; nothing was started"
    )]
    UndeclaredBecomePassword { name: String },

    /// A wave names a host the artifact does not describe.
    #[error("wave `{wave}` names host `{host}`, which the plan artifact does not describe")]
    UnknownHost { wave: String, host: String },

    /// The maintenance window's definition cannot be evaluated.
    #[error("maintenance window: {0}")]
    Window(String),
}

/// A `become` command whose password secret has no value: it is not sent.
#[derive(Debug, thiserror::Error)]
#[error("not started: the become password, secret `{name}`, has no value in this run")]
pub struct BecomePasswordMissing {
    pub name: String,
}
