//! Reading a plan's `waves:` and its `failure:` policy (a wave's `max_failed` is a failure
//! budget too).

use super::positive;
use crate::artifact::{FailureAction, FailureBudget, FailurePolicy, RollbackScope};
use crate::model::WaveDecl;
use crate::node::Node;
use crate::schema::{Amount, Reader};

const WAVE_KEYS: &[&str] = &[
    "name",
    "size",
    "pause",
    "approval",
    "concurrency",
    "max_failed",
];
const FAILURE_KEYS: &[&str] = &["max_failed", "action", "rollback_scope"];

pub(crate) fn read_waves(r: &mut Reader, node: &Node) -> Vec<WaveDecl> {
    let mut waves = Vec::new();
    for (i, item) in r.as_seq(node, "waves").iter().enumerate() {
        let context = format!("wave {}", i + 1);
        let Some(f) = r.fields(item, WAVE_KEYS, &context) else {
            continue;
        };
        let name = f
            .get("name")
            .and_then(|n| r.as_str(n, &context))
            .unwrap_or_else(|| format!("wave-{}", i + 1));
        let size = match f.get("size") {
            Some(n) => r.as_amount(n, &format!("wave `{name}`: size")),
            None => {
                r.error(item.loc, format!("wave `{name}` has no `size`"));
                None
            }
        };
        let pause_ms = f.get("pause").and_then(|n| r.as_duration(n, "pause"));
        let approval = f
            .get("approval")
            .and_then(|n| r.as_bool(n, "approval"))
            .unwrap_or(false);
        let concurrency = f
            .get("concurrency")
            .and_then(|n| positive(r, n, "concurrency"));
        let max_failed = f
            .get("max_failed")
            .and_then(|n| r.as_amount(n, &format!("wave `{name}`: max_failed")))
            .map(budget_of);
        if waves.iter().any(|w: &WaveDecl| w.name == name) {
            r.error(item.loc, format!("two waves are named `{name}`"));
        }
        if let Some(size) = size {
            waves.push(WaveDecl {
                name,
                size,
                pause_ms,
                approval,
                concurrency,
                max_failed,
                loc: item.loc,
            });
        }
    }
    waves
}

/// A `max_failed` amount as a budget: a count of hosts, or a percentage of the wave's.
fn budget_of(amount: Amount) -> FailureBudget {
    match amount {
        Amount::Count(c) => FailureBudget::Count(usize::try_from(c).unwrap_or(usize::MAX)),
        Amount::Percent(p) => FailureBudget::Percent(p),
    }
}

/// The failure policy of a plan that writes none: `rollback_scope: stage` when it has stages.
pub(crate) fn default_failure(staged: bool) -> FailurePolicy {
    FailurePolicy {
        max_failed: FailureBudget::Count(0),
        action: FailureAction::Rollback,
        rollback_scope: if staged {
            RollbackScope::Stage
        } else {
            RollbackScope::Wave
        },
    }
}

/// Reads a `failure` block; each key it leaves out keeps its value in `base`.
pub(crate) fn read_failure(
    r: &mut Reader,
    node: Option<&Node>,
    base: &FailurePolicy,
) -> FailurePolicy {
    let mut policy = base.clone();
    let Some(f) = node.and_then(|n| r.fields(n, FAILURE_KEYS, "failure")) else {
        return policy;
    };
    if let Some(budget) = f
        .get("max_failed")
        .and_then(|n| r.as_amount(n, "failure: max_failed"))
    {
        policy.max_failed = budget_of(budget);
    }
    if let Some(n) = f.get("action") {
        match r.as_str(n, "failure: action").as_deref() {
            Some("rollback") => policy.action = FailureAction::Rollback,
            Some("halt") => policy.action = FailureAction::Halt,
            Some("continue") => policy.action = FailureAction::Continue,
            Some(other) => r.error_help(
                n.loc,
                format!("failure: action `{other}` is not known"),
                "use rollback, halt or continue",
            ),
            None => {}
        }
    }
    if let Some(n) = f.get("rollback_scope") {
        match r.as_str(n, "failure: rollback_scope").as_deref() {
            Some("wave") => policy.rollback_scope = RollbackScope::Wave,
            Some("stage") => policy.rollback_scope = RollbackScope::Stage,
            Some("run") => policy.rollback_scope = RollbackScope::Run,
            Some(other) => r.error_help(
                n.loc,
                format!("failure: rollback_scope `{other}` is not known"),
                "use wave, stage or run",
            ),
            None => {}
        }
    }
    policy
}
