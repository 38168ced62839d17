//! `sluice exec TARGETS -i INVENTORY -- COMMAND`: one ad-hoc command on every targeted host.
//!
//! 1. Load the inventory and resolve the targets (groups and host names) in inventory order.
//! 2. Run the command on up to `--concurrency` hosts at once, each over its own connection, and
//!    print a status line per host as its result arrives (`--json`: one JSON object per host on
//!    stdout: `{"host","result","exit","stdout","stderr","error"}`).
//! 3. Print identical outputs once, under the list of hosts that produced them, then the counts
//!    of ok / failed / unreachable / refused. Exit 0 only when every host exited 0.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sluice_plan::diagnostic::{Diagnostics, Loc};
use sluice_plan::{HostKeyChecking, TransportKind};
use sluice_ssh::{
    ExecOutcome, ExecRequest, HostKeyPolicy, HostTarget, LocalTransport, SshTransport, Transport,
    TransportError,
};

use crate::commands::plan::print_diagnostic;
use crate::console::Console;
use crate::error::CliError;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Groups and/or host names of the inventory, comma-separated.
    pub targets: String,
    /// The inventory (YAML).
    #[arg(short, long, value_name = "INVENTORY")]
    pub inventory: PathBuf,
    /// Per-host limit for the command (e.g. `30s`, `5m`).
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    /// Hosts at once.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// One JSON object per host on stdout instead of the human summary.
    #[arg(long)]
    pub json: bool,
    /// The command, run by the remote login shell.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// One host's result.
struct HostResult {
    host: String,
    outcome: Result<ExecOutcome, TransportError>,
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    let timeout = sluice_plan::schema::parse_duration_ms(&args.timeout)
        .map(Duration::from_millis)
        .ok_or_else(|| {
            CliError::invalid_input(format!(
                "--timeout {}: not a duration like 30s",
                args.timeout
            ))
        })?;
    let targets = load_targets(&args, console)?;
    let command = args.command.join(" ");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
    let results = runtime.block_on(run_all(
        targets,
        command,
        timeout,
        args.concurrency,
        args.json,
        console,
    ));

    let mut counts = BTreeMap::<&str, usize>::new();
    for r in &results {
        *counts.entry(category(&r.outcome)).or_default() += 1;
    }
    if !args.json {
        print_grouped(&results, console);
    }
    let summary: Vec<String> = ["ok", "failed", "unreachable", "refused"]
        .iter()
        .map(|k| format!("{} {k}", counts.get(k).copied().unwrap_or(0)))
        .collect();
    console.status(
        "Done",
        format!("{} hosts: {}", results.len(), summary.join(", ")),
    );
    let all_ok = results.iter().all(|r| category(&r.outcome) == "ok");
    Ok(if all_ok { exit::OK } else { exit::FAILED })
}

fn load_targets(
    args: &Args,
    console: &Console,
) -> Result<Vec<(TransportKind, HostTarget)>, CliError> {
    let mut diags = Diagnostics::default();
    let path = args.inventory.display().to_string();
    let inventory = sluice_plan::source::load(&path, &mut diags)
        .and_then(|(file, node)| sluice_plan::inventory::read_inventory(&file, &node, &mut diags));
    let selected = inventory.as_ref().map(|inv| {
        let names: Vec<(String, Loc)> = args
            .targets
            .split(',')
            .map(|t| (t.trim().to_string(), Loc::default()))
            .filter(|(t, _)| !t.is_empty())
            .collect();
        inv.resolve_targets(&names, &inv.file, &mut diags)
    });
    if diags.has_errors() {
        for d in &diags.items {
            print_diagnostic(console, d);
        }
        return Err(CliError::invalid_input(format!(
            "{} problem(s) in {path}; nothing was run",
            diags.error_count()
        )));
    }
    let (Some(inv), Some(selected)) = (inventory, selected) else {
        return Err(CliError::invalid_input(format!("cannot read {path}")));
    };
    Ok(selected
        .into_iter()
        .map(|i| {
            let c = inv.connection(i);
            let mut t = HostTarget::new(inv.hosts[i].name.clone(), c.address);
            t.port = c.port;
            t.user = c.user;
            t.identity_files = c.identity_files.into_iter().map(PathBuf::from).collect();
            t.known_hosts = c.known_hosts.into_iter().map(PathBuf::from).collect();
            t.host_key_policy = match c.host_key_checking {
                HostKeyChecking::Strict => HostKeyPolicy::Strict,
                HostKeyChecking::AcceptNew => HostKeyPolicy::AcceptNew,
                HostKeyChecking::InsecureIgnoreHostKeys => HostKeyPolicy::InsecureIgnoreHostKeys,
            };
            t.proxy_jump = c.proxy_jump;
            t.workdir = c.workdir.map(PathBuf::from);
            t.env = c.env.into_iter().collect();
            (c.transport, t)
        })
        .collect())
}

async fn run_all(
    targets: Vec<(TransportKind, HostTarget)>,
    command: String,
    timeout: Duration,
    concurrency: usize,
    json: bool,
    console: &Console,
) -> Vec<HostResult> {
    let ssh = SshTransport::default();
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (index, (kind, target)) in targets.iter().cloned().enumerate() {
        let (ssh, slots, tx, command) = (ssh.clone(), slots.clone(), tx.clone(), command.clone());
        tokio::spawn(async move {
            let _slot = slots.acquire_owned().await;
            let transport: &dyn Transport = match kind {
                TransportKind::Ssh => &ssh,
                TransportKind::Local => &LocalTransport,
            };
            let outcome = match transport.connect(&target).await {
                Ok(conn) => conn.exec(ExecRequest::new(command).timeout(timeout)).await,
                Err(e) => Err(e),
            };
            let _ = tx.send((
                index,
                HostResult {
                    host: target.name.clone(),
                    outcome,
                },
            ));
        });
    }
    drop(tx);
    let mut results: Vec<Option<HostResult>> = (0..targets.len()).map(|_| None).collect();
    while let Some((index, result)) = rx.recv().await {
        report(&result, json, console);
        results[index] = Some(result);
    }
    results.into_iter().flatten().collect()
}

/// `ok`, `failed` (ran, non-zero or timed out), `unreachable`, `refused` (host key or auth).
fn category(outcome: &Result<ExecOutcome, TransportError>) -> &'static str {
    match outcome {
        Ok(o) if o.status.success() => "ok",
        Ok(_) => "failed",
        Err(e) => match e.kind() {
            "unreachable" => "unreachable",
            "host_key_refused" | "auth_failed" => "refused",
            _ => "failed",
        },
    }
}

fn report(r: &HostResult, json: bool, console: &Console) {
    if json {
        let value = match &r.outcome {
            Ok(o) => serde_json::json!({
                "host": r.host, "result": category(&r.outcome), "exit": o.status.to_string(),
                "stdout": o.stdout.text_lossy(), "stderr": o.stderr.text_lossy(), "error": null,
            }),
            Err(e) => serde_json::json!({
                "host": r.host, "result": category(&r.outcome), "exit": null,
                "stdout": null, "stderr": null, "error": e.to_string(), "error_kind": e.kind(),
            }),
        };
        console.json_line(&value);
        return;
    }
    match &r.outcome {
        Ok(o) => console.status(
            category(&r.outcome),
            format!("{}: {} in {:?}", r.host, o.status, o.duration),
        ),
        Err(e) => console.status(category(&r.outcome), e.to_string()),
    }
}

/// Identical results once, under the hosts that produced them (like `clush -b`).
fn print_grouped(results: &[HostResult], console: &Console) {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for r in results {
        let text = match &r.outcome {
            Ok(o) => {
                let mut t = o.stdout.text_lossy();
                let err = o.stderr.text_lossy();
                if !err.is_empty() {
                    t.push_str(&format!("[stderr]\n{err}"));
                }
                if !o.status.success() {
                    t.push_str(&format!("[{}]\n", o.status));
                }
                t
            }
            Err(e) => format!("[{}] {}\n", e.kind(), e),
        };
        match groups.iter_mut().find(|(t, _)| *t == text) {
            Some((_, hosts)) => hosts.push(&r.host),
            None => groups.push((text, vec![&r.host])),
        }
    }
    for (text, hosts) in groups {
        console.text(format!(
            "---------------- {} ({})\n{}",
            hosts.join(","),
            hosts.len(),
            text
        ));
    }
}
