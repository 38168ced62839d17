//! What can stop a recorded run from starting, resuming or being recorded to its end.

use sluice_model::{RunState, StepRef};

/// Why the lifecycle refused or failed. [`LifecycleError::is_refusal`] tells a refusal (the
/// operator's input or the state of the store says no; nothing started) from a failure.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// A host is leased by another run (or the run's own lease is held by a live process).
    #[error("refused, nothing was started: {0}")]
    Leased(#[source] sluice_audit::AuditError),

    #[error(transparent)]
    Audit(#[from] sluice_audit::AuditError),

    #[error("the audit store could not record it, so it was not done: {0}")]
    Journal(String),

    #[error("cannot encode the plan artifact: {0}")]
    Encode(#[source] serde_json::Error),

    #[error("cannot start the audit writer, nothing was started: {0}")]
    Writer(#[source] std::io::Error),

    #[error(
        "--require-approval: plan {plan_hash} has no approval for this exact hash; nothing was started (`sluice approve-plan PLAN.json --by NAME`)"
    )]
    NotApproved { plan_hash: String },

    #[error("{run} holds plan approvals, not a run; nothing to resume")]
    NotARun { run: String },

    #[error(
        "run {run} is a run of kind {kind}, which changed nothing that a resume could carry on; run it again instead"
    )]
    NotResumable {
        run: String,
        kind: sluice_model::RunKind,
    },

    #[error("run {run} already finished ({status}); there is nothing to resume")]
    AlreadyFinished { run: String, status: RunState },

    #[error(
        "run {run} is still running: process {pid} on {controller} (operator {operator}, since {since}) holds its leases{}; stop it first (a resume takes over only from a dead controller)",
        expiry_note(.expires_at.as_deref())
    )]
    StillRunning {
        run: String,
        pid: u32,
        controller: String,
        operator: String,
        since: String,
        /// In a shared store: when the leases expire unless their holder's heartbeat renews
        /// them (a dead holder's can be taken over then).
        expires_at: Option<String>,
    },

    #[error(
        "run {run} was handed to workers and live workers still hold {} of its host(s) ({}); resume it with --workers, which waits for them, or stop those workers first (without --workers they would run twice)",
        .hosts.len(),
        held_list(.hosts)
    )]
    HeldByWorkers {
        run: String,
        /// `host (worker NAME)` for each.
        hosts: Vec<String>,
    },

    #[error("run {run} has no run_started record; cannot resume it")]
    NoStart { run: String },

    #[error(
        "the plan artifact of run {run} (hash {plan_hash}) is not in the audit store; cannot resume it"
    )]
    NoArtifact { run: String, plan_hash: String },

    #[error("the plan artifact stored for run {run} cannot be read ({source}); refusing to resume")]
    BadArtifact {
        run: String,
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "the plan artifact stored for run {run} does not match the run's plan hash {plan_hash}: {source}; refusing to resume"
    )]
    ArtifactMismatch {
        run: String,
        plan_hash: String,
        #[source]
        source: sluice_exec::ExecError,
    },

    /// The plan's policy cannot be read or used.
    #[error("the change policy: {0}; nothing was started")]
    Policy(String),

    /// `distinct_from_operator`, and the operator did not say who they are.
    #[error(
        "this environment's policy wants approvers distinct from the operator: identify yourself with --key (your key in the policy's allowed_signers); nothing was started"
    )]
    OperatorUnidentified,

    /// Not enough valid approvals of the plan's exact hash.
    #[error("{}", not_enough(.0))]
    NotEnoughApprovals(Box<sluice_model::PolicyChecked>),

    /// `break_glass: reason`, and an override was asked for without one.
    #[error(
        "this environment's policy (break_glass: reason) wants a reason for {what}: add --reason TEXT (it is recorded); nothing was done"
    )]
    NeedsReason { what: String },

    /// UNKNOWN steps with neither a guard nor `idempotent: true`, and no choice given.
    #[error("{}", unknown_message(.run, .steps))]
    UnknownNeedsChoice {
        run: String,
        steps: Vec<UnknownNeed>,
    },
}

/// An UNKNOWN step waiting for the operator's choice, and what is not known about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownNeed {
    pub step: StepRef,
    pub why: String,
}

impl LifecycleError {
    /// A refusal: nothing started because the input or the store's state says no (exit 2 in
    /// the CLI), as opposed to something that broke.
    pub fn is_refusal(&self) -> bool {
        match self {
            LifecycleError::Audit(e) => matches!(
                e,
                sluice_audit::AuditError::UnknownRun { .. }
                    | sluice_audit::AuditError::Missing { .. }
                    | sluice_audit::AuditError::NoStateDir
            ),
            LifecycleError::Encode(_) | LifecycleError::Writer(_) | LifecycleError::Journal(_) => {
                false
            }
            _ => true,
        }
    }
}

/// The first hosts of a list, and how many more.
fn held_list(hosts: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = hosts
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if hosts.len() > SHOWN {
        text.push_str(&format!(", and {} more", hosts.len() - SHOWN));
    }
    text
}

fn unknown_message(run: &str, steps: &[UnknownNeed]) -> String {
    let mut text = format!(
        "run {run} has {} step(s) whose outcome is UNKNOWN (the controller died while they ran) and that have neither a skip_if guard nor `idempotent: true`; nothing was started:\n",
        steps.len()
    );
    for need in steps {
        text.push_str(&format!(
            "  {} {}: {}\n",
            need.step.host, need.step.step, need.why
        ));
    }
    text.push_str(&format!(
        "Check those hosts, then choose (recorded): `sluice resume {run} --rerun-unknown` runs them again; `sluice resume {run} --skip-unknown` treats them as done."
    ));
    text
}

fn not_enough(checked: &sluice_model::PolicyChecked) -> String {
    let mut text = format!(
        "plan {} has {} valid approval(s) by distinct principals of the {} its environment's policy requires; nothing was started",
        checked.plan_hash,
        checked.accepted.len(),
        checked.required
    );
    for a in &checked.accepted {
        text.push_str(&format!("\n  counted: record {} by {}", a.seq, a.by));
    }
    for r in &checked.rejected {
        text.push_str(&format!(
            "\n  rejected: record {} by {}: {}",
            r.seq,
            r.by,
            r.reason.as_deref().unwrap_or("")
        ));
    }
    if checked.accepted.is_empty() && checked.rejected.is_empty() {
        text.push_str("\n  no approval of this exact hash is recorded (`sluice approve-plan PLAN.json --key KEY`)");
    }
    text
}

/// What a shared store's lease expiry adds to a refusal: when the leases can be taken over if
/// their holder is dead.
fn expiry_note(expires_at: Option<&str>) -> String {
    match expires_at {
        Some(at) => format!(
            " and renews them (they expire at {at} unless renewed: if that controller is dead, resume after that)"
        ),
        None => String::new(),
    }
}
