//! `sluice audit verify --allowed-signers FILE`: besides the hash chain, every signed approval in
//! the trail is verified again, as it stood when it was signed (the key allowed at its signing
//! time, the statement not expired then), against the statement it approves.

use std::collections::BTreeMap;
use std::path::Path;

use sluice_approval::{AllowedSigners, Expected, Statement, StatementScope, verify};
use sluice_audit::Record;
use sluice_model::{ApprovalScope, Fact};

use crate::console::Console;
use crate::error::CliError;

/// What re-verifying the signatures found.
pub struct SignatureReport {
    pub verified: usize,
    /// (record, why it does not verify).
    pub failed: Vec<(u64, String)>,
}

/// Re-verifies every signed approval among the JSON Lines `text` (an export, or the store's
/// records as exported).
pub fn reverify(text: &str, signers_path: &Path) -> Result<SignatureReport, CliError> {
    let signers =
        AllowedSigners::read(signers_path).map_err(|e| CliError::invalid_input(e.to_string()))?;
    let records: Vec<Record> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Record>(l).ok())
        .collect();
    // A gate approval is over the plan hash its run runs.
    let plans: BTreeMap<&str, &str> = records
        .iter()
        .filter_map(|r| match &r.fact {
            Fact::RunStarted(s) => Some((r.run.as_str(), s.plan_hash.as_str())),
            _ => None,
        })
        .collect();
    let mut report = SignatureReport {
        verified: 0,
        failed: Vec::new(),
    };
    for record in &records {
        let Fact::Approval(approval) = &record.fact else {
            continue;
        };
        let Some(signature) = &approval.signature else {
            continue;
        };
        let expected = match &approval.scope {
            ApprovalScope::Plan { plan_hash } => Expected {
                plan_hash: plan_hash.clone(),
                scope: StatementScope::Plan,
            },
            ApprovalScope::RunStart { plan_hash } => Expected {
                plan_hash: plan_hash.clone(),
                scope: StatementScope::RunStart,
            },
            ApprovalScope::Wave { wave } => Expected {
                plan_hash: plans
                    .get(record.run.as_str())
                    .copied()
                    .unwrap_or("")
                    .to_string(),
                scope: StatementScope::Gate {
                    run: record.run.clone(),
                    wave: wave.clone(),
                },
            },
        };
        // As it stood when it was signed.
        let at = Statement::parse(&signature.statement)
            .map(|s| s.signed_at)
            .unwrap_or_else(|_| jiff::Timestamp::now());
        match verify(
            &signature.statement,
            &signature.signature,
            &signers,
            &expected,
            at,
            None,
        ) {
            Ok(v) if v.key == signature.key => report.verified += 1,
            Ok(v) => report.failed.push((
                record.seq,
                format!("recorded as key {}, but signed by {}", signature.key, v.key),
            )),
            Err(why) => report.failed.push((record.seq, why.to_string())),
        }
    }
    Ok(report)
}

/// Prints the report; `true` when every signature verified.
pub fn print(console: &Console, report: &SignatureReport) -> bool {
    for (seq, why) in &report.failed {
        console.error(format!(
            "record {seq}: the signed approval does not verify: {why}"
        ));
    }
    console.status(
        "Signatures",
        format!(
            "{} signed approval(s) verified, {} failed",
            report.verified,
            report.failed.len()
        ),
    );
    report.failed.is_empty()
}
