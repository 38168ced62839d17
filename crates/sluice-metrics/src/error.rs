//! The crate's error: the store could not be read, the encoder refused, the file not written.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(transparent)]
    Audit(#[from] sluice_audit::AuditError),

    #[error("cannot encode the metrics: {0}")]
    Encode(#[from] prometheus::Error),

    #[error(
        "cannot write the metrics file {path}: {source}; the previous file, if any, is unchanged"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}
