//! The review `sluice plan` writes: the options shared by `plan` and `validate` (`--format`,
//! `--review-out`, `--as-of`), loading a saved artifact for `--from`, and the glue that builds
//! the review (sluice-review) with the approvals of the audit store and writes it out.

use std::path::{Path, PathBuf};

use sluice_plan::PlanArtifact;
use sluice_plan::warning::PlanWarning;
use sluice_review::{Clock, Format, ReviewInput};

use crate::commands::audit::StateDirArg;
use crate::console::Console;
use crate::error::CliError;

#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum FormatArg {
    /// Plain text (the default).
    #[default]
    Text,
    /// GitHub/GitLab-flavoured Markdown, to paste into a ticket.
    #[value(alias = "md")]
    Markdown,
    /// One self-contained HTML page (no script, no network), printable.
    Html,
    /// The review's data (docs/review-json.md).
    Json,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Text => Format::Text,
            FormatArg::Markdown => Format::Markdown,
            FormatArg::Html => Format::Html,
            FormatArg::Json => Format::Json,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReviewArgs {
    /// The review's format.
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    pub format: FormatArg,
    /// Write the review to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub review_out: Option<PathBuf>,
    #[command(flatten)]
    pub as_of: AsOfArg,
    /// A `sluice audit export` file (JSON Lines, its hash chain verified) to search for the run
    /// a plan's `promotion:` requires, besides this controller's store (as `apply --evidence`).
    #[arg(long, value_name = "EXPORT.jsonl")]
    pub evidence: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AsOfArg {
    /// Judge the maintenance window as of this moment (RFC 3339, e.g. when you will apply)
    /// instead of now.
    #[arg(long, value_name = "TIMESTAMP")]
    pub as_of: Option<jiff::Timestamp>,
}

impl AsOfArg {
    pub fn clock(&self) -> Clock {
        let mut clock = Clock::system();
        if let Some(at) = self.as_of {
            clock.now = at;
        }
        clock
    }
}

/// A saved artifact, verified (format and hash); any problem is invalid input.
pub fn load(path: &Path) -> Result<PlanArtifact, CliError> {
    sluice_plan::load_artifact(&path.to_string_lossy())
        .map_err(|e| CliError::invalid_input(e.to_string()))
}

/// A saved artifact given where a YAML plan belongs would be read as YAML and fail on its first
/// key (`unknown key format`): say what it is and how to review it instead.
pub fn refuse_artifact_as_plan(plan: &Path) -> Result<(), CliError> {
    let Ok(bytes) = std::fs::read(plan) else {
        // The compiler reports an unreadable file with its own message.
        return Ok(());
    };
    let is_artifact = serde_json::from_slice::<serde_json::Value>(&bytes)
        .is_ok_and(|v| v.get("plan_hash").is_some() && v.get("format").is_some());
    if is_artifact {
        return Err(CliError::invalid_input(format!(
            "{} is a saved plan artifact, not a change plan: review it with `sluice plan --from {}`",
            plan.display(),
            plan.display()
        )));
    }
    Ok(())
}

/// Builds the review and writes it to stdout or `--review-out`. The warnings found in the
/// artifact itself go to stderr too (those found while compiling are already there).
pub fn show(
    artifact: &PlanArtifact,
    compile_warnings: Vec<PlanWarning>,
    args: &ReviewArgs,
    store: &StateDirArg,
    console: &Console,
) -> Result<(), CliError> {
    let already_shown = compile_warnings.len();
    let clock = args.as_of.clock();
    let promotion_evidence =
        promotion_evidence(artifact, store, args.evidence.as_deref(), clock.now)?;
    let review = sluice_review::build(ReviewInput {
        plan: artifact,
        compile_warnings,
        clock,
        approvals: approvals(artifact, store, console),
        promotion_evidence,
    });
    for w in review.warnings.iter().skip(already_shown) {
        console.warn(format!("{} [{}]", w.message, w.warning.code()));
    }
    let text = sluice_review::render(&review, args.format.into())
        .map_err(|e| CliError::failed(e.to_string()))?;
    match &args.review_out {
        None => console.stdout(&text),
        Some(path) => {
            std::fs::write(path, text)
                .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))?;
            console.status("Wrote", format!("review to {}", path.display()));
        }
    }
    Ok(())
}

/// What the store, and the export `evidence` if given, hold for the plan's `promotion:` rule, in
/// a sentence (`None` without one), judged at `now` (the review's `--as-of`). A review never
/// fails for want of a store; an export given that does not verify is an error (exit 2), as it
/// is for `apply`.
fn promotion_evidence(
    artifact: &PlanArtifact,
    store: &StateDirArg,
    evidence: Option<&Path>,
    now: jiff::Timestamp,
) -> Result<Option<String>, CliError> {
    use sluice_lifecycle::promotion::{PromotionCheck, PromotionError, check, requirement};
    let Some(promotion) = artifact.promotion.as_ref() else {
        return Ok(None);
    };
    if requirement(artifact).is_none() {
        return Ok(Some(format!(
            "not needed here: this inventory is environment {} itself",
            promotion.after
        )));
    }
    let (log, store_note) = match store.location().map(|location| {
        sluice_audit::AuditLog::open_at(&location, sluice_audit::OpenMode::ReadOnly)
    }) {
        Ok(Ok(log)) => (Some(log), None),
        Ok(Err(
            sluice_audit::AuditError::Missing { .. }
            | sluice_audit::AuditError::NotInitialised { .. },
        )) => (
            None,
            Some("this controller has recorded no run yet".to_string()),
        ),
        Ok(Err(e)) => (None, Some(format!("the store cannot be read ({e})"))),
        Err(e) => (
            None,
            Some(format!("the store was not checked ({})", e.message)),
        ),
    };
    let refusal = match evidence {
        Some(_) => "`apply` with this --evidence will refuse",
        None => "`apply` will refuse without --evidence",
    };
    Ok(Some(match check(artifact, log.as_ref(), evidence, now) {
        Ok(PromotionCheck::Found(e)) => format!(
            "found: run {} succeeded on {} at {} ({})",
            e.run,
            e.environment,
            e.finished(),
            e.source
        ),
        Ok(PromotionCheck::NotRequired) => "not needed here".to_string(),
        Err(PromotionError::NoEvidence { why, .. }) => match (store_note, evidence) {
            (Some(note), None) => format!("none found: {note}; {refusal}"),
            (Some(note), Some(_)) => format!("none found ({why}; {note}): {refusal}"),
            (None, _) => format!("none found ({why}): {refusal}"),
        },
        Err(e @ PromotionError::BadExport { .. }) => return Err(e.into()),
        Err(e) => format!("not checked: {e}"),
    }))
}

/// The approvals recorded for this plan hash; a review never fails for want of a store.
fn approvals(
    artifact: &PlanArtifact,
    store: &StateDirArg,
    console: &Console,
) -> sluice_review::model::ApprovalsView {
    let dir = match store.location() {
        Ok(dir) => dir,
        Err(e) => return sluice_review::approvals::not_checked(e.message),
    };
    match sluice_review::approvals::read(&dir, &artifact.plan_hash) {
        Ok(view) => view,
        Err(e) => {
            console.warn(format!("approvals not checked: {e}"));
            sluice_review::approvals::not_checked(e.to_string())
        }
    }
}
