//! The change policy an environment declares in its inventory:
//!
//! ```yaml
//! policy:
//!   approvals:
//!     required: 2                    # valid approvals by distinct principals
//!     allowed_signers: approvers     # OpenSSH allowed_signers file, relative to the inventory
//!     distinct_from_operator: true
//!     max_age: 7d
//!   gates: signed                    # wave gates need a signed approval too
//!   break_glass: reason              # overrides need --reason
//! ```
//!
//! The planner reads it with the inventory and seals it into the plan artifact, the
//! `allowed_signers` file's text included: the artifact then says who could approve it, and an
//! approval of its hash is an approval under that policy. The signatures themselves are checked
//! where the plan runs (sluice-approval), never here.

use serde::{Deserialize, Serialize};

use crate::diagnostic::SourceFile;
use crate::node::Node;
use crate::schema::{Fields, Reader};

const POLICY_KEYS: &[&str] = &["approvals", "gates", "break_glass"];
const APPROVAL_KEYS: &[&str] = &[
    "required",
    "allowed_signers",
    "distinct_from_operator",
    "max_age",
];

/// What the environment requires before and while a change runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Signed approvals a plan needs before it may run.
    pub approvals: Option<ApprovalRule>,
    /// Wave gates need a signed approval by an allowed signer too (`gates: signed`).
    pub signed_gates: bool,
    /// Overrides (`--ignore-window`, `--rerun-unknown`, `--skip-unknown`, `unlock`) need
    /// `--reason TEXT`, which is recorded (`break_glass: reason`).
    pub break_glass_needs_reason: bool,
    /// The `allowed_signers` file as the inventory names it, and its text when the plan was
    /// compiled (gates need it even when `approvals` is not set).
    pub allowed_signers: Option<AllowedSignersFile>,
}

/// How many approvals, and how recent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRule {
    /// Valid approvals by distinct principals.
    pub required: u32,
    /// An approval by the operator's principal or key does not count.
    pub distinct_from_operator: bool,
    /// An approval signed longer ago than this does not count.
    pub max_age_ms: Option<u64>,
}

/// An OpenSSH `allowed_signers` file named by the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedSignersFile {
    /// The path as written, relative to the inventory's directory.
    pub path: String,
    /// The file's text when the plan was compiled.
    pub text: String,
}

/// Reads `policy:` of the inventory `file`. Every problem is a located diagnostic, all of them
/// reported; a policy with any is `None` (and the inventory is invalid).
pub fn read_policy(r: &mut Reader, node: &Node, file: &SourceFile) -> Option<Policy> {
    let f = r.fields(node, POLICY_KEYS, "policy")?;
    let approvals = f.get("approvals").map(|n| read_approvals(r, n, file));
    let signers_named = approvals.as_ref().is_some_and(|a| a.signers.is_some());
    let signed_gates = f.get("gates").map(|n| {
        choice(
            r,
            n,
            "policy.gates",
            &[("signed", true), ("any", false)],
            "use `signed` (gates need a signed approval) or `any`",
        )
    });
    if let (Some(Some(true)), false, Some(n)) = (signed_gates, signers_named, f.get("gates")) {
        r.error_help(
            n.loc,
            "policy.gates is `signed` but no allowed_signers file says who may sign",
            "set policy.approvals.allowed_signers",
        );
    }
    let break_glass = f.get("break_glass").map(|n| {
        choice(
            r,
            n,
            "policy.break_glass",
            &[("reason", true), ("none", false)],
            "use `reason` (overrides need --reason) or `none`",
        )
    });
    let (approvals, allowed_signers) = match approvals {
        None => (None, None),
        Some(ApprovalsRead {
            rule: Some(rule),
            signers: Some(Some(signers)),
        }) => (Some(rule), Some(signers)),
        Some(_) => return None,
    };
    let (Some(signed_gates), Some(break_glass_needs_reason)) = (
        signed_gates.unwrap_or(Some(false)),
        break_glass.unwrap_or(Some(false)),
    ) else {
        return None;
    };
    if signed_gates && allowed_signers.is_none() {
        return None;
    }
    Some(Policy {
        approvals,
        signed_gates,
        break_glass_needs_reason,
        allowed_signers,
    })
}

/// What `policy.approvals` holds: the rule, and the allowed_signers file (`None` when not named,
/// `Some(None)` when it cannot be read).
struct ApprovalsRead {
    rule: Option<ApprovalRule>,
    signers: Option<Option<AllowedSignersFile>>,
}

fn read_approvals(r: &mut Reader, node: &Node, file: &SourceFile) -> ApprovalsRead {
    let Some(a) = r.fields(node, APPROVAL_KEYS, "policy.approvals") else {
        return ApprovalsRead {
            rule: None,
            signers: Some(None),
        };
    };
    let signers = a.get("allowed_signers").map(|n| read_signers(r, n, file));
    ApprovalsRead {
        rule: read_rule(r, node, &a),
        signers,
    }
}

/// `policy.approvals`: how many, and how recent.
fn read_rule(r: &mut Reader, node: &Node, a: &Fields<'_>) -> Option<ApprovalRule> {
    let required = match a.get("required") {
        Some(n) => match r.as_count(n, "policy.approvals.required") {
            Some(0) => {
                r.error_help(
                    n.loc,
                    "policy.approvals.required is 0",
                    "require at least 1 approval, or leave `approvals` out",
                );
                None
            }
            other => other.map(|c| u32::try_from(c).unwrap_or(u32::MAX)),
        },
        None => {
            r.error(
                node.loc,
                "policy.approvals needs `required` (how many approvals)",
            );
            None
        }
    };
    if a.get("allowed_signers").is_none() {
        r.error_help(
            node.loc,
            "policy.approvals needs `allowed_signers`",
            "name the OpenSSH allowed_signers file that says who may approve",
        );
    }
    let distinct_from_operator = match a.get("distinct_from_operator") {
        Some(n) => r.as_bool(n, "policy.approvals.distinct_from_operator"),
        None => Some(false),
    };
    let max_age_ms = match a.get("max_age") {
        Some(n) => r.as_duration(n, "policy.approvals.max_age").map(Some),
        None => Some(None),
    };
    a.get("allowed_signers")?;
    Some(ApprovalRule {
        required: required?,
        distinct_from_operator: distinct_from_operator?,
        max_age_ms: max_age_ms?,
    })
}

/// One of a few words.
fn choice(
    r: &mut Reader,
    node: &Node,
    context: &str,
    words: &[(&str, bool)],
    help: &str,
) -> Option<bool> {
    let word = r.as_str(node, context)?;
    match words.iter().find(|(w, _)| *w == word) {
        Some((_, value)) => Some(*value),
        None => {
            r.error_help(node.loc, format!("{context} `{word}` is not known"), help);
            None
        }
    }
}

/// The allowed_signers file, read relative to the inventory.
fn read_signers(r: &mut Reader, node: &Node, file: &SourceFile) -> Option<AllowedSignersFile> {
    let path = r.as_str(node, "policy.approvals.allowed_signers")?;
    let full = std::path::Path::new(&file.path)
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(&path);
    match std::fs::read_to_string(&full) {
        Ok(text) if text.trim().is_empty() => {
            r.error_help(
                node.loc,
                format!("{} lists no signer", full.display()),
                "add a line `PRINCIPAL KEYTYPE BASE64-KEY` per approver",
            );
            None
        }
        Ok(text) => Some(AllowedSignersFile { path, text }),
        Err(e) => {
            r.error(node.loc, format!("cannot read {}: {e}", full.display()));
            None
        }
    }
}
