//! Saving and loading plan artifacts: the file `sluice plan --out` writes and `sluice apply
//! --plan` runs. Loading verifies the format and the hash, so an edited artifact is refused.

use crate::artifact::{ARTIFACT_FORMAT, PlanArtifact};
use crate::error::PlanError;

/// The artifact as written to disk: pretty JSON (the hash is over the compact canonical form,
/// so layout does not matter) and a final newline.
pub fn to_file_text(artifact: &PlanArtifact) -> Result<String, PlanError> {
    let mut text =
        serde_json::to_string_pretty(artifact).map_err(crate::artifact::ArtifactHashError::from)?;
    text.push('\n');
    Ok(text)
}

/// Reads an artifact and checks that it is one this sluice understands and that nobody edited it.
pub fn load_artifact(path: &str) -> Result<PlanArtifact, PlanError> {
    let text = std::fs::read(path).map_err(|source| PlanError::ArtifactRead {
        path: path.to_string(),
        source,
    })?;
    parse_artifact(path, &text)
}

/// [`load_artifact`] for bytes already read; `path` only names them in errors.
pub fn parse_artifact(path: &str, bytes: &[u8]) -> Result<PlanArtifact, PlanError> {
    // Read the format first, so an old or future artifact gets a format error, not a field error.
    #[derive(serde::Deserialize)]
    struct Format {
        format: u32,
    }
    let format: Format =
        serde_json::from_slice(bytes).map_err(|source| PlanError::ArtifactParse {
            path: path.to_string(),
            source,
        })?;
    if format.format != ARTIFACT_FORMAT {
        return Err(PlanError::ArtifactFormat {
            path: path.to_string(),
            found: format.format,
            expected: ARTIFACT_FORMAT,
        });
    }
    let artifact: PlanArtifact =
        serde_json::from_slice(bytes).map_err(|source| PlanError::ArtifactParse {
            path: path.to_string(),
            source,
        })?;
    let computed = artifact.compute_hash()?;
    if computed != artifact.plan_hash {
        return Err(PlanError::ArtifactTampered {
            path: path.to_string(),
            stored: artifact.plan_hash,
            computed,
        });
    }
    Ok(artifact)
}
