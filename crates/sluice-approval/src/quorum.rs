//! The quorum a policy asks for: enough valid approvals of the plan's exact hash by distinct
//! principals, none of them the operator's.

use jiff::{SignedDuration, Timestamp};

use crate::signers::AllowedSigners;
use crate::statement::StatementScope;
use crate::verdict::{Expected, Rejection, verify};

/// What the policy requires of a plan's approvals.
#[derive(Clone, Debug)]
pub struct Quorum {
    pub required: u32,
    pub max_age: Option<SignedDuration>,
    /// The operator (principal and key fingerprint), when approvers must be distinct from them.
    pub operator: Option<Identity>,
}

/// A principal and the key that proved it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub principal: String,
    pub key: String,
}

/// One recorded approval as the quorum sees it.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The record's sequence number.
    pub seq: u64,
    /// The name it was recorded under.
    pub by: String,
    /// The statement and signature, when signed.
    pub signed: Option<(String, String)>,
    pub refused: bool,
}

/// How each candidate counted.
#[derive(Clone, Debug, Default)]
pub struct QuorumReport {
    pub accepted: Vec<(Candidate, Identity)>,
    pub rejected: Vec<(Candidate, String)>,
}

impl QuorumReport {
    /// Distinct principals among the accepted approvals.
    pub fn principals(&self) -> usize {
        let mut names: Vec<&str> = self
            .accepted
            .iter()
            .map(|(_, id)| id.principal.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names.len()
    }
}

impl Quorum {
    /// Judges every candidate approval of `plan_hash`; the quorum is met when
    /// [`QuorumReport::principals`] reaches `required`.
    pub fn judge(
        &self,
        plan_hash: &str,
        candidates: Vec<Candidate>,
        signers: &AllowedSigners,
        now: Timestamp,
    ) -> QuorumReport {
        let expected = Expected {
            plan_hash: plan_hash.to_string(),
            scope: StatementScope::Plan,
        };
        let mut report = QuorumReport::default();
        for candidate in candidates {
            let verdict = match &candidate.signed {
                _ if candidate.refused => Err("it is a refusal".to_string()),
                None => Err(Rejection::Unsigned.to_string()),
                Some((statement, signature)) => {
                    verify(statement, signature, signers, &expected, now, self.max_age)
                        .map_err(|r| r.to_string())
                }
            };
            match verdict {
                Ok(v) => {
                    let id = Identity {
                        principal: v.principal,
                        key: v.key,
                    };
                    if let Some(op) = self
                        .operator
                        .as_ref()
                        .filter(|op| op.principal == id.principal || op.key == id.key)
                    {
                        let why = format!(
                            "signed by the operator ({}): approvers must be distinct from the operator",
                            op.principal
                        );
                        report.rejected.push((candidate, why));
                    } else if report
                        .accepted
                        .iter()
                        .any(|(_, a)| a.principal == id.principal)
                    {
                        let why = format!("{} has already approved", id.principal);
                        report.rejected.push((candidate, why));
                    } else {
                        report.accepted.push((candidate, id));
                    }
                }
                Err(why) => report.rejected.push((candidate, why)),
            }
        }
        report
    }
}
