//! Facts of approvals: a gate that waits, an approval or refusal (of a plan, a gate, or the start
//! of a run) with its signature, and the policy check of a plan's approvals.

use serde::{Deserialize, Serialize};

use crate::status::ApprovalHow;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequested {
    pub wave: String,
    /// The stage the wave belongs to; absent for a plan without stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// What was approved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum ApprovalScope {
    /// A reviewed plan artifact, by its exact hash.
    Plan { plan_hash: String },
    /// The approval gate before a wave of a waiting run, by wave name.
    Wave { wave: String },
    /// The operator's confirmation of `sluice apply` before the run started. Not an approval
    /// of the plan: `--require-approval` does not count it.
    RunStart { plan_hash: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    #[serde(flatten)]
    pub scope: ApprovalScope,
    /// Who: the principal an `allowed_signers` file gives the signing key, or for an unsigned
    /// approval the name given (`--by`, the OS account at a prompt).
    pub by: String,
    pub comment: Option<String>,
    /// A refusal: the gate answered no.
    pub refused: bool,
    pub how: ApprovalHow,
    /// The SSH signature that proves it, when it was signed.
    pub signature: Option<ApprovalSignature>,
}

/// An approval's proof: an OpenSSH signature (`ssh-keygen -Y sign`, namespace
/// `sluice-approval`) over a canonical statement of what is approved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalSignature {
    /// The statement that was signed, exactly (it names the plan hash, what is approved, when it
    /// was signed, until when it is valid, and the comment).
    pub statement: String,
    /// The signature, armored (`-----BEGIN SSH SIGNATURE-----`).
    pub signature: String,
    /// SHA256 fingerprint of the signing key.
    pub key: String,
}

impl Approval {
    /// The operator's confirmation, typed at the prompt, of a run of plan `plan_hash`.
    pub fn run_start(plan_hash: &str, by: &str) -> Approval {
        Approval {
            scope: ApprovalScope::RunStart {
                plan_hash: plan_hash.to_string(),
            },
            by: by.to_string(),
            comment: None,
            refused: false,
            how: ApprovalHow::Terminal,
            signature: None,
        }
    }

    /// An answer to the gate before `wave`, with no comment and no signature.
    pub fn of_wave(wave: &str, by: &str, refused: bool, how: ApprovalHow) -> Approval {
        Approval {
            scope: ApprovalScope::Wave {
                wave: wave.to_string(),
            },
            by: by.to_string(),
            comment: None,
            refused,
            how,
            signature: None,
        }
    }
}

/// How the plan's recorded approvals measured up to the policy: the run starts only when
/// `accepted` holds at least `required` distinct principals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyChecked {
    pub plan_hash: String,
    pub required: u32,
    /// The operator, as identified by their key (`--key`), when the policy wants approvers
    /// distinct from the operator.
    pub operator: Option<String>,
    pub accepted: Vec<ApprovalVerdict>,
    pub rejected: Vec<ApprovalVerdict>,
}

/// One recorded approval and what the check made of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalVerdict {
    /// Sequence number of the `approval` record.
    pub seq: u64,
    /// The principal the signature proves, or the unproven name of an unsigned approval.
    pub by: String,
    /// SHA256 fingerprint of the signing key, if signed.
    pub key: Option<String>,
    /// Why it does not count, for a rejected one.
    pub reason: Option<String>,
}
