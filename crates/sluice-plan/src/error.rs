//! The planner's error type: what went wrong, with the file, line, host or step it concerns.

use crate::artifact::ArtifactHashError;
use crate::diagnostic::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The plan or inventory has problems; every one found is listed.
    #[error("{} error(s) in the change plan or inventory; nothing was planned", .0.iter().filter(|d| d.is_error()).count())]
    Invalid(Vec<Diagnostic>),
    #[error("cannot read the plan artifact {path}: {source}")]
    ArtifactRead {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a sluice plan artifact: {source}")]
    ArtifactParse {
        path: String,
        source: serde_json::Error,
    },
    #[error(
        "{path} has artifact format {found}; this sluice reads format {expected} (re-run `sluice plan --out`)"
    )]
    ArtifactFormat {
        path: String,
        found: u32,
        expected: u32,
    },
    #[error(
        "{path} was modified after it was planned: its plan_hash is {stored} but its content hashes to {computed}; re-run `sluice plan --out` and review it again"
    )]
    ArtifactTampered {
        path: String,
        stored: String,
        computed: String,
    },
    #[error(transparent)]
    Hash(#[from] ArtifactHashError),
}
