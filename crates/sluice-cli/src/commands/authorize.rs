//! What `apply` and `resume` check against the environment's policy before a run starts (or is
//! carried on): the operator's identity (`--key`), the plan's approvals, the reason an override
//! needs (`--reason`), and what the gates will need. The rules live in
//! `sluice_lifecycle::policy`; this is the command-line side (signing asks on the terminal).

use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use sluice_approval::{Statement, StatementScope};
use sluice_lifecycle::policy::{GatePolicy, Operator, check_plan, identify};
use sluice_model::{Approval, ApprovalHow, ApprovalScope, Decision, DecisionTaken, Fact};
use sluice_plan::PlanArtifact;
use sluice_plan::policy::Policy;

use crate::console::Console;
use crate::error::CliError;

/// The policy arguments `apply` and `resume` share.
#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    /// Identify yourself, the operator, with this key (a private key, or a public key whose
    /// private half ssh-agent holds): needed when the environment's policy wants approvers
    /// distinct from the operator.
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// Why an override the policy guards (`--ignore-window`, `--rerun-unknown`,
    /// `--skip-unknown`) is used; recorded.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// What the run records in its first commit, and what its gates need.
pub struct Authorization {
    pub facts: Vec<Fact>,
    pub gate_policy: Option<GatePolicy>,
}

/// Checks the run of `artifact` against its policy. `overrides` names the overrides asked for
/// (`--ignore-window`, ...); `check_approvals` is false for a resume (the run's approvals were
/// checked when it started).
pub fn authorize(
    log: &sluice_audit::AuditLog,
    artifact: &PlanArtifact,
    args: &PolicyArgs,
    overrides: &[&str],
    check_approvals: bool,
    console: &Console,
) -> Result<Authorization, CliError> {
    let mut facts = Vec::new();
    let policy = artifact.policy.as_ref();
    let now = Timestamp::now();
    if let Some(reason) = break_glass(policy, args, overrides)? {
        facts.push(Fact::Decision(DecisionTaken {
            decision: Decision::BreakGlass,
            wave: None,
            reason,
        }));
    }
    let operator = match &args.key {
        None => None,
        Some(key) => Some(identify_operator(artifact, key, now, console)?),
    };
    if let Some(op) = &operator {
        facts.push(Fact::Approval(op.approval.clone()));
    }
    if check_approvals && let Some(checked) = check_plan(log, artifact, operator.as_ref(), now)? {
        console.status(
            "Approved",
            format!(
                "plan {} by {} (policy: {} required)",
                artifact.plan_hash,
                checked
                    .accepted
                    .iter()
                    .map(|a| a.by.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                checked.required
            ),
        );
        facts.push(Fact::PolicyChecked(checked));
    }
    let gate_policy = GatePolicy::of(artifact, operator.as_ref())?;
    Ok(Authorization { facts, gate_policy })
}

/// `break_glass: reason`: each override needs `--reason`. The reason, recorded, when one is used.
fn break_glass(
    policy: Option<&Policy>,
    args: &PolicyArgs,
    overrides: &[&str],
) -> Result<Option<String>, CliError> {
    if overrides.is_empty() {
        return Ok(None);
    }
    let used = overrides.join(", ");
    match (
        &args.reason,
        policy.is_some_and(|p| p.break_glass_needs_reason),
    ) {
        (Some(reason), _) if reason.trim().is_empty() => Err(CliError::invalid_input(
            "--reason: give the reason in words; nothing was done",
        )),
        (Some(reason), _) => Ok(Some(format!("{used}: {reason}"))),
        (None, true) => Err(sluice_lifecycle::LifecycleError::NeedsReason { what: used }.into()),
        (None, false) => Ok(None),
    }
}

/// The operator signs a `run-start` statement over the plan's hash; the policy's allowed
/// signers say who they are.
fn identify_operator(
    artifact: &PlanArtifact,
    key: &Path,
    now: Timestamp,
    console: &Console,
) -> Result<Operator, CliError> {
    let statement = Statement {
        plan_hash: artifact.plan_hash.clone(),
        scope: StatementScope::RunStart,
        signed_at: now,
        expires: now + SignedDuration::from_hours(1),
        comment: None,
    };
    let text = statement
        .to_text()
        .map_err(|e| CliError::failed(e.to_string()))?;
    let signature = crate::signing::sign(key, &text, console)?;
    let approval = Approval {
        scope: ApprovalScope::RunStart {
            plan_hash: artifact.plan_hash.clone(),
        },
        by: String::new(),
        comment: None,
        refused: false,
        how: ApprovalHow::Command,
        signature: Some(signature),
    };
    Ok(identify(artifact, approval, now)?)
}

/// The policy of the inventory at `path` (for `apply --plan FILE -i INVENTORY`, which must
/// agree with the policy sealed in the artifact).
pub fn inventory_policy(path: &Path, console: &Console) -> Result<Option<Policy>, CliError> {
    let mut diags = sluice_plan::diagnostic::Diagnostics::default();
    let shown = path.display().to_string();
    let input = sluice_plan::inventory::InventoryInput::new(shown.clone());
    let inventory = sluice_plan::inventory::load(&input, &Default::default(), &mut diags);
    if diags.has_errors() {
        for d in &diags.items {
            crate::commands::plan::print_diagnostic(console, d);
        }
        return Err(CliError::invalid_input(format!(
            "{} problem(s) in {shown}; nothing was started",
            diags.error_count()
        )));
    }
    Ok(inventory.and_then(|i| i.policy))
}
