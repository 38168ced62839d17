//! The environment's change policy, enforced where a run starts and at its gates.
//!
//! The policy comes sealed in the plan artifact (sluice-plan's `policy`: the inventory's
//! `policy:` block and the text of its allowed_signers file). Before a plan runs, its recorded
//! approvals are judged ([`check_plan`]): only signatures that verify, by allowed signers, over
//! the plan's exact hash, not expired and not older than `max_age`, and (with
//! `distinct_from_operator`) not by the operator, count, one per principal. Too few, and nothing
//! starts; the judgement is recorded either way (`policy_checked`). With `gates: signed`, a gate
//! opens only on such a signature over the gate's statement ([`GatePolicy`]).

use jiff::{SignedDuration, Timestamp};
use sluice_approval::quorum::Candidate;
use sluice_approval::{AllowedSigners, Expected, Identity, Quorum, StatementScope, verify};
use sluice_audit::AuditLog;
use sluice_model::{Approval, ApprovalVerdict, PolicyChecked};
use sluice_plan::PlanArtifact;
use sluice_plan::policy::Policy;

use crate::error::LifecycleError;

/// The operator, identified by a signature of their own (`apply --key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    pub identity: Identity,
    /// Their signed `run-start` statement, recorded with the run's start.
    pub approval: Approval,
}

/// The allowed signers of `policy`, parsed.
pub fn signers(policy: &Policy) -> Result<AllowedSigners, LifecycleError> {
    let Some(file) = &policy.allowed_signers else {
        return Ok(AllowedSigners::default());
    };
    AllowedSigners::parse(&file.text, std::path::Path::new(&file.path))
        .map_err(|e| LifecycleError::Policy(e.to_string()))
}

/// Judges the plan's recorded approvals against its policy. `None` when the plan has no
/// approval rule; otherwise the judgement, which is an error when the quorum is not met.
pub fn check_plan(
    log: &AuditLog,
    artifact: &PlanArtifact,
    operator: Option<&Operator>,
    now: Timestamp,
) -> Result<Option<PolicyChecked>, LifecycleError> {
    let Some(policy) = &artifact.policy else {
        return Ok(None);
    };
    let Some(rule) = &policy.approvals else {
        return Ok(None);
    };
    if rule.distinct_from_operator && operator.is_none() {
        return Err(LifecycleError::OperatorUnidentified);
    }
    let signers = signers(policy)?;
    let candidates = log
        .plan_approvals(&artifact.plan_hash)?
        .into_iter()
        .map(|(record, approval)| Candidate {
            seq: record.seq,
            by: approval.by.clone(),
            signed: approval.signature.map(|s| (s.statement, s.signature)),
            refused: approval.refused,
        })
        .collect();
    let quorum = Quorum {
        required: rule.required,
        max_age: max_age(rule.max_age_ms),
        operator: operator
            .filter(|_| rule.distinct_from_operator)
            .map(|o| o.identity.clone()),
    };
    let report = quorum.judge(&artifact.plan_hash, candidates, &signers, now);
    let met = report.principals() >= rule.required as usize;
    let checked = PolicyChecked {
        plan_hash: artifact.plan_hash.clone(),
        required: rule.required,
        operator: quorum.operator.as_ref().map(|o| o.principal.clone()),
        accepted: report
            .accepted
            .iter()
            .map(|(c, id)| ApprovalVerdict {
                seq: c.seq,
                by: id.principal.clone(),
                key: Some(id.key.clone()),
                reason: None,
            })
            .collect(),
        rejected: report
            .rejected
            .iter()
            .map(|(c, why)| ApprovalVerdict {
                seq: c.seq,
                by: c.by.clone(),
                key: None,
                reason: Some(why.clone()),
            })
            .collect(),
    };
    if met {
        Ok(Some(checked))
    } else {
        Err(LifecycleError::NotEnoughApprovals(Box::new(checked)))
    }
}

/// Identifies the operator by their signed `run-start` statement over the plan's hash.
pub fn identify(
    artifact: &PlanArtifact,
    approval: Approval,
    now: Timestamp,
) -> Result<Operator, LifecycleError> {
    let Some(policy) = &artifact.policy else {
        return Err(LifecycleError::Policy(
            "--key identifies the operator to a policy, and this plan's inventory has none".into(),
        ));
    };
    let signers = signers(policy)?;
    let Some(signature) = &approval.signature else {
        return Err(LifecycleError::Policy(
            "the operator's statement is not signed".into(),
        ));
    };
    let expected = Expected {
        plan_hash: artifact.plan_hash.clone(),
        scope: StatementScope::RunStart,
    };
    let verified = verify(
        &signature.statement,
        &signature.signature,
        &signers,
        &expected,
        now,
        None,
    )
    .map_err(|why| {
        LifecycleError::Policy(format!("the operator's key does not identify them: {why}"))
    })?;
    let mut approval = approval;
    approval.by = verified.principal.clone();
    Ok(Operator {
        identity: Identity {
            principal: verified.principal,
            key: verified.key,
        },
        approval,
    })
}

/// What a gate needs under `gates: signed`.
#[derive(Clone, Debug)]
pub struct GatePolicy {
    pub signers: AllowedSigners,
    pub plan_hash: String,
    /// The operator, whose own signature does not open a gate when approvers must be distinct.
    pub operator: Option<Identity>,
    pub max_age: Option<SignedDuration>,
}

impl GatePolicy {
    /// The gate policy of `artifact`, if its policy wants signed gates.
    pub fn of(
        artifact: &PlanArtifact,
        operator: Option<&Operator>,
    ) -> Result<Option<GatePolicy>, LifecycleError> {
        let Some(policy) = artifact.policy.as_ref().filter(|p| p.signed_gates) else {
            return Ok(None);
        };
        let distinct = policy
            .approvals
            .as_ref()
            .is_some_and(|r| r.distinct_from_operator);
        Ok(Some(GatePolicy {
            signers: signers(policy)?,
            plan_hash: artifact.plan_hash.clone(),
            operator: operator.filter(|_| distinct).map(|o| o.identity.clone()),
            max_age: policy
                .approvals
                .as_ref()
                .and_then(|r| max_age(r.max_age_ms)),
        }))
    }

    /// Whether `approval` opens the gate before `wave` of `run`; `Err` says why not.
    pub fn admits(
        &self,
        run: &str,
        wave: &str,
        approval: &Approval,
        now: Timestamp,
    ) -> Result<String, String> {
        if approval.refused {
            // Stopping needs no proof.
            return Ok(approval.by.clone());
        }
        let Some(signature) = &approval.signature else {
            return Err("not signed, and this environment's gates need a signed approval".into());
        };
        let expected = Expected {
            plan_hash: self.plan_hash.clone(),
            scope: StatementScope::Gate {
                run: run.to_string(),
                wave: wave.to_string(),
            },
        };
        let verified = verify(
            &signature.statement,
            &signature.signature,
            &self.signers,
            &expected,
            now,
            self.max_age,
        )
        .map_err(|r| r.to_string())?;
        if let Some(op) = self
            .operator
            .as_ref()
            .filter(|op| op.principal == verified.principal || op.key == verified.key)
        {
            return Err(format!(
                "signed by the operator ({}): approvers must be distinct from the operator",
                op.principal
            ));
        }
        Ok(verified.principal)
    }
}

fn max_age(ms: Option<u64>) -> Option<SignedDuration> {
    ms.and_then(|ms| i64::try_from(ms).ok())
        .map(SignedDuration::from_millis)
}
