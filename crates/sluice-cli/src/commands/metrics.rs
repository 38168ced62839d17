//! `sluice metrics`: the Prometheus metrics of every plan's latest finished run, read from the
//! audit store (sluice-metrics), on stdout or written atomically to a file; and the same file
//! written after `sluice apply`/`resume` (`--metrics-file`, or the inventory's `metrics_file:`).

use std::path::{Path, PathBuf};

use sluice_audit::AuditLog;

use super::audit::StateDirArg;
use crate::console::Console;
use crate::error::CliError;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the metrics to this file atomically (a temporary file renamed over it) instead of
    /// stdout: for node_exporter's textfile collector, a `.prom` file in its directory.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    store: StateDirArg,
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    let log = args.store.open_read_only()?;
    let text = sluice_metrics::encode(&sluice_metrics::collect(&log)?)?;
    match &args.out {
        Some(path) => {
            sluice_metrics::write_atomically(path, &text)?;
            console.status("Wrote", path.display());
        }
        None => console.stdout(&text),
    }
    Ok(exit::OK)
}

/// After a run: writes the metrics file from the store, which now holds the run's end. A file
/// that cannot be written is reported and does not change the run's exit code (the run is
/// over; the metrics are a view of it).
pub(crate) fn write_after_run(log: &AuditLog, path: &Path, console: &Console) {
    let written = sluice_metrics::collect(log)
        .and_then(|plans| sluice_metrics::encode(&plans))
        .and_then(|text| sluice_metrics::write_atomically(path, &text));
    match written {
        Ok(()) => console.verbose(format!("Metrics written to {}", path.display())),
        Err(e) => console.error(format!("metrics not written: {e}")),
    }
}
