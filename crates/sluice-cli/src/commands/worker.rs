//! `sluice worker`: a long-running process that runs hosts of runs applied with `--workers`
//! (sluice-lifecycle's `worker`), and the checks `apply --workers`/`resume --workers` make
//! before anything starts.

use std::sync::Arc;

use sluice_audit::pg::WorkerSpec;
use sluice_audit::{AuditError, AuditLog, OpenMode, StoreLocation};
use sluice_exec::{Secrets, Shutdown, Transports};
use sluice_lifecycle::worker::{WorkerOptions, serve};
use sluice_plan::{PlanArtifact, TransportKind};
use sluice_ssh::LocalTransport;

use super::audit::StateDirArg;
use crate::console::Console;
use crate::error::CliError;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// This worker's name, unique among live workers [default: $SLUICE_CONTROLLER, else the
    /// host name, followed by `-PID`].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Hosts this worker runs at once.
    #[arg(long, value_name = "K", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_hosts: u32,
    /// Also serve hosts pinned to LABEL (their `worker` host variable); repeatable. Hosts with
    /// no `worker` variable go to any worker.
    #[arg(long = "label", value_name = "LABEL")]
    labels: Vec<String>,
    /// Send every command on an SSH channel and login shell of its own instead of through each
    /// host's runner (docs/operations.md, "Connections").
    #[arg(long)]
    exec_per_step: bool,
    #[command(flatten)]
    store: StateDirArg,
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    let location = args.store.location()?;
    if let StoreLocation::Redb(_) = &location {
        return Err(AuditError::NeedsPostgres {
            what: "sluice worker".into(),
            store: location.to_string(),
        }
        .into());
    }
    let log = Arc::new(AuditLog::open_at(&location, OpenMode::Create)?);
    let spec = WorkerSpec {
        name: args.name.clone().unwrap_or_else(|| {
            format!("{}-{}", sluice_audit::controller_name(), std::process::id())
        }),
        labels: args.labels.clone(),
        max_hosts: args.max_hosts,
        machine: sluice_audit::controller_name(),
        pid: std::process::id(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
    let bars = indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden());
    let summary = runtime.block_on(async {
        let shutdown = Shutdown::new();
        let signals = tokio::spawn(stop_signals(shutdown.clone()));
        let transports = Transports::new()
            .with(TransportKind::Local, Arc::new(LocalTransport))
            .with(
                TransportKind::Ssh,
                Arc::new(crate::ssh::transport(console, &bars, args.exec_per_step)),
            );
        let options = WorkerOptions {
            spec,
            transports,
            shutdown,
        };
        let served = serve(log, options).await;
        signals.abort();
        served
    })?;
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    console.status(
        "Worker",
        format!(
            "stopped: {} host task(s) taken{}",
            summary.hosts,
            if summary.abandoned > 0 {
                format!(
                    ", {} left to another worker by a second stop signal",
                    summary.abandoned
                )
            } else {
                String::new()
            }
        ),
    );
    Ok(exit::OK)
}

/// SIGTERM or Ctrl-C: the first stops claiming and lets the hosts in hand end; the second
/// leaves them to another worker.
async fn stop_signals(shutdown: Shutdown) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => {}
            r = tokio::signal::ctrl_c() => if r.is_err() { return },
        }
        shutdown.interrupt();
    }
}

/// `--workers` needs the PostgreSQL store, and a plan whose `run_once` steps the workers can
/// take a host at a time: each host's `run_once` steps of a pseudo-wave follow one another (see
/// docs/operations.md, "Workers"). Stages and `run_once` steps otherwise run as in one process.
pub(crate) fn check_workers(log: &AuditLog, artifact: &PlanArtifact) -> Result<(), CliError> {
    log.postgres("--workers")?;
    if let Some(i) = sluice_exec::dispatch::interleaved(artifact) {
        return Err(CliError::invalid_input(format!(
            "--workers: the run_once steps `{}` and `{}` run on host {} with `{}` on another host between them; a worker runs a host's run_once steps as one task: order them so that each host's run_once steps follow one another (`after`), or run without --workers",
            i.first, i.then, i.host, i.between
        )));
    }
    Ok(())
}

/// The secrets the applying process reads: none with `--workers` (each worker reads them from its
/// own environment and files), else the plan's.
pub(crate) fn coordinator_secrets(
    artifact: &PlanArtifact,
    workers: bool,
) -> Result<Secrets, CliError> {
    if workers {
        return Ok(Secrets::default());
    }
    Secrets::load(&artifact.secrets).map_err(|e| CliError::invalid_input(e.to_string()))
}
