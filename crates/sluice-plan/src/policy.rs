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
use crate::schema::Reader;

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

/// Reads `policy:` of the inventory `file`. Problems are located diagnostics; a policy that
/// cannot be read is `None` (and the inventory is invalid).
pub fn read_policy(r: &mut Reader, node: &Node, file: &SourceFile) -> Option<Policy> {
    let f = r.fields(node, POLICY_KEYS, "policy")?;
    let mut signers_path = None;
    let approvals = match f.get("approvals") {
        None => None,
        Some(n) => {
            let a = r.fields(n, APPROVAL_KEYS, "policy.approvals")?;
            let required = match a.get("required") {
                Some(n) => match r.as_count(n, "policy.approvals.required") {
                    Some(0) => {
                        r.error_help(
                            n.loc,
                            "policy.approvals.required is 0",
                            "require at least 1 approval, or leave `approvals` out",
                        );
                        return None;
                    }
                    Some(c) => u32::try_from(c).unwrap_or(u32::MAX),
                    None => return None,
                },
                None => {
                    r.error(
                        n.loc,
                        "policy.approvals needs `required` (how many approvals)",
                    );
                    return None;
                }
            };
            match a.get("allowed_signers") {
                Some(s) => {
                    signers_path = Some((r.as_str(s, "policy.approvals.allowed_signers")?, s.loc))
                }
                None => {
                    r.error_help(
                        n.loc,
                        "policy.approvals needs `allowed_signers`",
                        "name the OpenSSH allowed_signers file that says who may approve",
                    );
                    return None;
                }
            }
            let distinct_from_operator = match a.get("distinct_from_operator") {
                Some(n) => r.as_bool(n, "policy.approvals.distinct_from_operator")?,
                None => false,
            };
            let max_age_ms = match a.get("max_age") {
                Some(n) => Some(r.as_duration(n, "policy.approvals.max_age")?),
                None => None,
            };
            Some(ApprovalRule {
                required,
                distinct_from_operator,
                max_age_ms,
            })
        }
    };
    let signed_gates = match f.get("gates") {
        None => false,
        Some(n) => match r.as_str(n, "policy.gates")?.as_str() {
            "signed" => true,
            "any" => false,
            other => {
                r.error_help(
                    n.loc,
                    format!("policy.gates `{other}` is not known"),
                    "use `signed` (gates need a signed approval) or `any`",
                );
                return None;
            }
        },
    };
    if signed_gates && signers_path.is_none() {
        if let Some(n) = f.get("gates") {
            r.error_help(
                n.loc,
                "policy.gates is `signed` but no allowed_signers file says who may sign",
                "set policy.approvals.allowed_signers",
            );
        }
        return None;
    }
    let break_glass_needs_reason = match f.get("break_glass") {
        None => false,
        Some(n) => match r.as_str(n, "policy.break_glass")?.as_str() {
            "reason" => true,
            "none" => false,
            other => {
                r.error_help(
                    n.loc,
                    format!("policy.break_glass `{other}` is not known"),
                    "use `reason` (overrides need --reason) or `none`",
                );
                return None;
            }
        },
    };
    let allowed_signers = match signers_path {
        None => None,
        Some((path, loc)) => {
            let full = std::path::Path::new(&file.path)
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join(&path);
            match std::fs::read_to_string(&full) {
                Ok(text) if text.trim().is_empty() => {
                    r.error_help(
                        loc,
                        format!("{} lists no signer", full.display()),
                        "add a line `PRINCIPAL KEYTYPE BASE64-KEY` per approver",
                    );
                    return None;
                }
                Ok(text) => Some(AllowedSignersFile { path, text }),
                Err(e) => {
                    r.error(loc, format!("cannot read {}: {e}", full.display()));
                    return None;
                }
            }
        }
    };
    Some(Policy {
        approvals,
        signed_gates,
        break_glass_needs_reason,
        allowed_signers,
    })
}
