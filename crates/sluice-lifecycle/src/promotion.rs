//! Promotion evidence: a plan with `promotion: { after: staging, within: 7d }` applies to any
//! other environment only after the same change (the same plan file, by its `change_hash`)
//! succeeded on an inventory whose `environment:` is `staging`, finished within 7 days.
//!
//! The evidence is a `run_started` record carrying that change hash and environment, and its
//! run's `run_finished` record with status `succeeded`, read from this controller's store or from
//! a `sluice audit export` file (`--evidence`), whose hash chain is verified first: an export
//! that was edited is refused, never searched.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use sluice_audit::{AuditError, AuditLog, Record};
use sluice_model::{Fact, RunState, RunStatus};
use sluice_plan::schema::format_duration_ms;
use sluice_plan::{PlanArtifact, Promotion};

/// A run that counts as evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub run: String,
    pub environment: String,
    pub finished_at: Timestamp,
    /// `the store` or the export file it was found in.
    pub source: String,
}

impl Evidence {
    /// When the run finished, to the second, in UTC: what the review and `apply` print.
    pub fn finished(&self) -> String {
        self.finished_at
            .strftime("%Y-%m-%d %H:%M:%S UTC")
            .to_string()
    }
}

/// What a plan's promotion rule asks, and what was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromotionCheck {
    /// The plan has no `promotion`, or this inventory is the environment it promotes from.
    NotRequired,
    Found(Evidence),
}

#[derive(Debug, thiserror::Error)]
pub enum PromotionError {
    #[error(
        "promotion: change {change} needs a successful run on an inventory whose environment is \
         `{after}`, finished within {within}, before it runs on {target}; {why}. Nothing was started \
         (apply it to {after} first, or give --evidence EXPORT.jsonl from the store that ran it)"
    )]
    NoEvidence {
        change: String,
        after: String,
        within: String,
        target: String,
        why: String,
    },
    #[error("--evidence {path}: {problem}; nothing was started")]
    BadExport { path: String, problem: String },
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// One finished run as the records tell it.
struct Candidate {
    run: String,
    environment: Option<String>,
    change_hash: Option<String>,
    finished: Option<(RunStatus, Timestamp)>,
    source: String,
}

/// The rule that applies to `artifact`, if any: none when it has no `promotion` or when it
/// targets the environment it promotes from.
pub fn requirement(artifact: &PlanArtifact) -> Option<&Promotion> {
    let promotion = artifact.promotion.as_ref()?;
    (artifact.environment.as_deref() != Some(promotion.after.as_str())).then_some(promotion)
}

/// Looks for evidence in `log` (this controller's store; `None` when it has none, which a
/// review allows) and, when given, the export `evidence`, judged at `now`.
pub fn check(
    artifact: &PlanArtifact,
    log: Option<&AuditLog>,
    evidence: Option<&Path>,
    now: Timestamp,
) -> Result<PromotionCheck, PromotionError> {
    let Some(promotion) = requirement(artifact) else {
        return Ok(PromotionCheck::NotRequired);
    };
    let mut candidates = Vec::new();
    let mut searched = Vec::new();
    if let Some(log) = log {
        candidates = from_store(log, &artifact.name)?;
        searched.push(STORE.to_string());
    }
    if let Some(path) = evidence {
        candidates.extend(from_export(path)?);
        searched.push(path.display().to_string());
    }
    judge(artifact, promotion, &candidates, &searched, now).map(PromotionCheck::Found)
}

/// The evidence among `candidates`, the newest, or why there is none.
fn judge(
    artifact: &PlanArtifact,
    promotion: &Promotion,
    candidates: &[Candidate],
    searched: &[String],
    now: Timestamp,
) -> Result<Evidence, PromotionError> {
    let change = artifact.change_hash.clone().unwrap_or_default();
    let within =
        SignedDuration::from_millis(i64::try_from(promotion.within_ms).unwrap_or(i64::MAX));
    let on_after = candidates
        .iter()
        .filter(|c| c.environment.as_deref() == Some(promotion.after.as_str()));
    // A run of this change there that did not succeed is named: it is why the operator thought
    // the change had been through staging.
    let unsuccessful = on_after
        .clone()
        .filter(|c| c.change_hash.as_deref() == Some(change.as_str()))
        .filter_map(|c| c.finished.map(|(status, at)| (c, status, at)))
        .filter(|(_, status, _)| *status != RunStatus::Succeeded)
        .max_by_key(|(_, _, at)| *at);
    let succeeded_here: Vec<(&Candidate, Timestamp)> = on_after
        .filter_map(|c| match c.finished {
            Some((RunStatus::Succeeded, at)) => Some((c, at)),
            _ => None,
        })
        .collect();
    let same_change: Vec<&(&Candidate, Timestamp)> = succeeded_here
        .iter()
        .filter(|(c, _)| c.change_hash.as_deref() == Some(change.as_str()))
        .collect();
    let newest = same_change.iter().max_by_key(|(_, at)| *at);
    let why = match newest {
        Some((c, at)) if now.duration_since(*at) <= within => {
            return Ok(Evidence {
                run: c.run.clone(),
                environment: promotion.after.clone(),
                finished_at: *at,
                source: c.source.clone(),
            });
        }
        Some((c, at)) => format!(
            "the newest, run {} ({}), finished at {at}, {} ago: too old",
            c.run,
            c.source,
            format_duration_ms(
                u64::try_from(now.duration_since(*at).as_millis()).unwrap_or(u64::MAX)
            )
        ),
        None => {
            let mut why = match searched {
                [] => format!(
                    "no successful run of this change on {} was found: there is no store and no \
                     --evidence to search",
                    promotion.after
                ),
                _ => format!(
                    "no successful run of this change on {} was found in {}",
                    promotion.after,
                    searched.join(" or ")
                ),
            };
            if let Some((c, status, _)) = unsuccessful {
                why.push_str(&format!(
                    " (its run {} on {} ({}) ended {status}: only a succeeded run counts)",
                    c.run, promotion.after, c.source
                ));
            }
            if !succeeded_here.is_empty() {
                why.push_str(&format!(
                    "; {} successful run(s) on {} were of other changes (another version of the \
                     plan file)",
                    succeeded_here.len(),
                    promotion.after
                ));
            }
            why
        }
    };
    Err(PromotionError::NoEvidence {
        change: change.get(..12).unwrap_or(&change).to_string(),
        after: promotion.after.clone(),
        within: format_duration_ms(promotion.within_ms),
        target: match &artifact.environment {
            Some(env) => format!("`{env}`"),
            None => "an inventory that names no environment".to_string(),
        },
        why,
    })
}

/// How evidence from this controller's store names its source.
const STORE: &str = "the store";

/// The store's finished runs of a plan named `plan_name`. A run of the same plan file has the
/// same name, so only those runs' records are read (the change hash then decides).
fn from_store(log: &AuditLog, plan_name: &str) -> Result<Vec<Candidate>, AuditError> {
    let mut out = Vec::new();
    for summary in log.list_runs()? {
        if summary.plan_name != plan_name || !matches!(summary.status, RunState::Finished(_)) {
            continue;
        }
        let records = log.run_records(&summary.run)?;
        out.extend(candidates(&records, STORE));
    }
    Ok(out)
}

/// The runs of a verified export.
fn from_export(path: &Path) -> Result<Vec<Candidate>, PromotionError> {
    let bad = |problem: String| PromotionError::BadExport {
        path: path.display().to_string(),
        problem,
    };
    // Bytes, not text: a byte that is not UTF-8 is a damaged record, which the verification
    // names (record and line), not a file that merely cannot be read.
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let report = sluice_audit::verify_export(bytes.as_slice())
        .map_err(|e| bad(format!("not an audit export: {e}")))?;
    if let Some(broken) = &report.broken {
        return Err(bad(format!("the hash chain does not verify: {broken}")));
    }
    // The chain verified, so every line is UTF-8 JSON: records, the end line, and blank lines
    // after it (which the verification allows).
    let text = String::from_utf8_lossy(&bytes);
    let mut records = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("{\"end\"") {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(record) => records.push(record),
            Err(e) => return Err(bad(format!("a record cannot be read: {e}"))),
        }
    }
    Ok(candidates(&records, &path.display().to_string()))
}

/// One candidate per run that has a `run_started` record.
fn candidates(records: &[Record], source: &str) -> Vec<Candidate> {
    let mut runs: BTreeMap<&str, Candidate> = BTreeMap::new();
    for record in records {
        match &record.fact {
            Fact::RunStarted(started) => {
                runs.insert(
                    &record.run,
                    Candidate {
                        run: record.run.clone(),
                        environment: started.environment.clone(),
                        change_hash: started.change_hash.clone(),
                        finished: None,
                        source: source.to_string(),
                    },
                );
            }
            Fact::RunFinished(finished) => {
                if let (Some(c), Ok(at)) = (runs.get_mut(record.run.as_str()), record.at.parse()) {
                    c.finished = Some((finished.status, at));
                }
            }
            _ => {}
        }
    }
    runs.into_values().collect()
}
