//! `sluice exec TARGETS -i INVENTORY -- COMMAND`: one ad-hoc command on every targeted host.
//!
//! 1. Load the inventory and resolve the targets (groups and host names) in inventory order.
//! 2. Run the command on up to `--concurrency` hosts at once, each over its own connection, and
//!    print a status line per host as its result arrives: above a progress bar of hosts done on a
//!    terminal, plain lines otherwise (`--json`: one JSON object per host on stdout:
//!    `{"host","result","exit","stdout","stderr","error"}`). An encrypted identity file without
//!    `SLUICE_SSH_PASSPHRASE` is asked for on the terminal, once per key, when there is one.
//!    `--become`/`--become-user` run it through sudo; `--become-password-env VAR` gives sudo's
//!    password from the environment, as plans give secrets.
//! 3. Print identical outputs once, under the list of hosts that produced them, then the counts
//!    of ok / failed / unreachable / refused. Exit 0 only when every host exited 0.
//!
//! Human output shows the hosts' control characters as escapes (`\x1b`), so a host cannot
//! drive the operator's terminal; `--json` carries the output as it came (JSON escapes them).
//! The become password, should a command print it, is masked in both.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};
use sluice_model::{ExecResult, SecretMask};
use sluice_plan::TransportKind;
use sluice_plan::diagnostic::{Diagnostics, Loc};
use sluice_ssh::{
    Become, ConnectErrorKind, ExecOutcome, ExecRequest, HostTarget, LocalTransport, SshTransport,
    Transport, TransportError,
};

use sluice_lifecycle::adhoc::AdHocRun;

use crate::commands::plan::print_diagnostic;
use crate::console::{Console, Paint};
use crate::error::CliError;
use crate::exit;
use crate::progress::{BarsGuard, Mode, clock, style};
use crate::visible::visible;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Groups and/or host names of the inventory, comma-separated.
    pub targets: String,
    /// The inventory (any format `sluice plan` reads).
    #[arg(short, long, value_name = "INVENTORY")]
    pub inventory: PathBuf,
    #[command(flatten)]
    pub inventory_format: crate::commands::plan::InventoryFormatArg,
    /// Keep only the targeted hosts this Ansible host pattern matches (see `sluice plan --help`).
    #[arg(long, value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Per-host limit for the command (e.g. `30s`, `5m`).
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    /// Hosts at once.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// One JSON object per host on stdout instead of the human summary.
    #[arg(long)]
    pub json: bool,
    /// Run the command as root through sudo (`sudo -n`: sudo must not need a password).
    #[arg(long = "become")]
    pub become_root: bool,
    /// Run the command as this user through sudo (implies --become).
    #[arg(long, value_name = "USER")]
    pub become_user: Option<String>,
    /// Environment variable holding the sudo password (implies --become). It is sent to sudo
    /// only when sudo asks for it, never on a command line.
    #[arg(long, value_name = "VAR")]
    pub become_password_env: Option<String>,
    /// Send every command on an SSH channel and login shell of its own instead of through each
    /// host's runner (as `transport_mode: exec` in the inventory does per host): for hosts whose
    /// login shell is not POSIX (docs/operations.md, "Connections").
    #[arg(long)]
    pub exec_per_step: bool,
    /// The command, run by the remote login shell.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
    #[command(flatten)]
    pub store: super::audit::StateDirArg,
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
    let become_user = become_from(&args)?;
    // The become password is the one secret here: should a command print it, it is masked in
    // every output, whole, like a plan's secrets.
    let mask = SecretMask::new(
        become_user
            .as_ref()
            .and_then(|b| b.password.as_deref())
            .map(sluice_exec::secrets::forms)
            .unwrap_or_default(),
    );
    // Recorded like any run, on leased hosts: a store that cannot be opened runs nothing.
    let log = Arc::new(
        args.store
            .open()
            .map_err(|e| e.with_kind(crate::error::ErrorKind::InvalidInput))?,
    );
    let secrets = become_user.iter().filter_map(|b| b.password.clone());
    let redactor = Arc::new(sluice_audit::Redactor::new(secrets));
    let hosts: Vec<String> = targets.iter().map(|(_, t, _)| t.name.clone()).collect();
    let command_line: Vec<String> = std::env::args().collect();
    let recorded = Arc::new(AdHocRun::start(
        log.clone(),
        &hosts,
        &command,
        redactor,
        &command_line,
    )?);
    console.status(
        "Run",
        format!("{} (recorded in {})", recorded.run_id, log.path().display()),
    );
    let started = std::time::Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
    let progress = Progress::new(console, args.json, targets.len(), &mask);
    let ssh = crate::ssh::transport(console, &progress.multi, args.exec_per_step);
    let results = runtime.block_on(run_all(
        ssh,
        targets,
        Job {
            command,
            timeout,
            concurrency: args.concurrency,
            become_user,
            recorded: recorded.clone(),
        },
        &progress,
    ));
    progress.finish();

    let mut counts = BTreeMap::<ExecResult, usize>::new();
    for r in &results {
        *counts.entry(category(&r.outcome)).or_default() += 1;
    }
    if !args.json {
        print_grouped(&results, console, &mask);
    }
    let summary: Vec<String> = ExecResult::ALL
        .iter()
        .map(|k| format!("{} {k}", counts.get(k).copied().unwrap_or(0)))
        .collect();
    console.status(
        "Done",
        format!("{} hosts: {}", results.len(), summary.join(", ")),
    );
    let all_ok = results
        .iter()
        .all(|r| category(&r.outcome) == ExecResult::Ok);
    if let Err(e) = recorded.finish(all_ok, started.elapsed()) {
        console.error(format!(
            "audit store: the end of the run was not recorded ({e})"
        ));
    }
    Ok(if all_ok { exit::OK } else { exit::FAILED })
}

/// `--become`, `--become-user`, `--become-password-env` as a sudo request; a named password
/// variable that is not set is invalid input, so nothing runs.
fn become_from(args: &Args) -> Result<Option<Become>, CliError> {
    let password = match &args.become_password_env {
        None => None,
        Some(var) => Some(std::env::var(var).map_err(|_| {
            CliError::invalid_input(format!(
                "--become-password-env {var}: the variable is not set (or not UTF-8); nothing was run"
            ))
        })?),
    };
    let wanted = args.become_root || args.become_user.is_some() || password.is_some();
    Ok(wanted.then(|| Become {
        user: args.become_user.clone(),
        password,
    }))
}

fn load_targets(
    args: &Args,
    console: &Console,
) -> Result<Vec<(TransportKind, HostTarget, Option<Become>)>, CliError> {
    let mut diags = Diagnostics::default();
    let path = args.inventory.display().to_string();
    let input = args.inventory_format.input(&args.inventory);
    let inventory = sluice_plan::inventory::load(&input, &Default::default(), &mut diags);
    let selected = inventory.as_ref().map(|inv| {
        let names: Vec<(String, Loc)> = args
            .targets
            .split(',')
            .map(|t| (t.trim().to_string(), Loc::default()))
            .filter(|(t, _)| !t.is_empty())
            .collect();
        let targeted = inv.resolve_targets(&names, &inv.file, &mut diags);
        match &args.limit {
            Some(limit) => limited(inv, targeted, limit, &mut diags),
            None => targeted,
        }
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
            let t = sluice_exec::transports::connection_target(&inv.hosts[i].name, &c);
            // The inventory's `ansible_become`: sudo -n as the host's become user.
            let host_become = c.become_all.map(|b| Become {
                user: b.user,
                password: None,
            });
            (c.transport, t, host_become)
        })
        .collect())
}

/// The targeted hosts `--limit` keeps (the planner's rules: a limit that keeps none is an error).
fn limited(
    inv: &sluice_plan::inventory::Inventory,
    targeted: Vec<usize>,
    limit: &str,
    diags: &mut Diagnostics,
) -> Vec<usize> {
    use sluice_plan::inventory::pattern;
    match pattern::parse(limit, std::path::Path::new(".")) {
        Ok(patterns) => pattern::limit_targets(inv, targeted, &patterns, diags),
        Err(e) => {
            diags.push(sluice_plan::diagnostic::Diagnostic::error(e.to_string()));
            Vec::new()
        }
    }
}

/// What every host runs, and the run that records it.
struct Job {
    command: String,
    timeout: Duration,
    concurrency: usize,
    become_user: Option<Become>,
    recorded: Arc<AdHocRun>,
}

async fn run_all(
    ssh: SshTransport,
    targets: Vec<(TransportKind, HostTarget, Option<Become>)>,
    job: Job,
    progress: &Progress<'_>,
) -> Vec<HostResult> {
    let slots = Arc::new(tokio::sync::Semaphore::new(job.concurrency.max(1)));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (index, (kind, target, host_become)) in targets.iter().cloned().enumerate() {
        let (ssh, slots, tx) = (ssh.clone(), slots.clone(), tx.clone());
        let mut request = ExecRequest::new(job.command.clone()).timeout(job.timeout);
        // `--become…` wins; otherwise the inventory's `ansible_become` for this host.
        request.become_user = job.become_user.clone().or(host_become);
        let (recorded, command) = (job.recorded.clone(), job.command.clone());
        tokio::spawn(async move {
            let _slot = slots.acquire_owned().await;
            let transport: &dyn Transport = match kind {
                TransportKind::Ssh => &ssh,
                TransportKind::Local => &LocalTransport,
            };
            let started = std::time::Instant::now();
            let outcome = match transport.connect(&target).await {
                // The intent is durable before the command is sent; unrecorded, it is not sent.
                Ok(conn) => match recorded.intent(&target.name, &command).await {
                    Ok(()) => conn.exec(request).await,
                    Err(e) => Err(TransportError::Spawn {
                        host: target.name.clone(),
                        reason: e.to_string(),
                    }),
                },
                Err(e) => Err(e),
            };
            // A result that cannot be recorded is shown all the same (the end says so).
            let _ = recorded
                .result(&target.name, &outcome, started.elapsed())
                .await;
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
        progress.report(&result);
        results[index] = Some(result);
    }
    results.into_iter().flatten().collect()
}

/// How the command ended on one host.
fn category(outcome: &Result<ExecOutcome, TransportError>) -> ExecResult {
    match outcome {
        Ok(o) if o.status.success() => ExecResult::Ok,
        Ok(_) => ExecResult::Failed,
        Err(e) => match e.kind() {
            ConnectErrorKind::Unreachable => ExecResult::Unreachable,
            ConnectErrorKind::HostKeyRefused | ConnectErrorKind::AuthFailed => ExecResult::Refused,
            _ => ExecResult::Failed,
        },
    }
}

/// Shows each host's result as it arrives (the mode is chosen as for `sluice apply`).
struct Progress<'c> {
    console: &'c Console,
    mask: &'c SecretMask,
    mode: Mode,
    multi: MultiProgress,
    bar: Option<ProgressBar>,
    /// Log lines go above the bar while it is drawn.
    _bars: Option<BarsGuard>,
}

impl<'c> Progress<'c> {
    fn new(console: &'c Console, json: bool, hosts: usize, mask: &'c SecretMask) -> Self {
        let mode = Mode::choose(console, json);
        let (multi, bar) = if mode == Mode::Bars {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let bar = multi.add(ProgressBar::new(hosts as u64));
            bar.set_style(style(
                "{prefix:>12.bold} [{bar:40}] {pos}/{len} hosts  {elapsed}",
            ));
            bar.set_prefix("Running");
            bar.enable_steady_tick(Duration::from_millis(250));
            (multi, Some(bar))
        } else {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
                None,
            )
        };
        let bars = bar.as_ref().map(|_| BarsGuard::draw(&multi));
        Progress {
            console,
            mask,
            mode,
            multi,
            bar,
            _bars: bars,
        }
    }

    fn report(&self, r: &HostResult) {
        if self.mode == Mode::Json {
            self.console.json_line(&json(r, self.mask));
            return;
        }
        let result = category(&r.outcome);
        let verb = result.as_str();
        let message = match &r.outcome {
            Ok(o) => format!("{}: {} in {}", r.host, o.status, clock(o.duration)),
            Err(e) => shown(self.mask, &e.to_string()),
        };
        match &self.bar {
            // While the bar is drawn indicatif owns stderr: lines go above it.
            Some(bar) => {
                let paint = if result == ExecResult::Ok {
                    Paint::Status
                } else {
                    Paint::Error
                };
                let verb = self.console.paint(paint, &format!("{verb:>12}"));
                let _ = self.multi.println(format!("{verb} {message}"));
                bar.inc(1);
            }
            None => self.console.status(verb, message),
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

/// One host's `--json` object: the output as it came (JSON escapes control characters), with
/// the become password masked.
fn json(r: &HostResult, mask: &SecretMask) -> serde_json::Value {
    match &r.outcome {
        Ok(o) => serde_json::json!({
            "host": r.host, "result": category(&r.outcome), "exit": o.status.to_string(),
            "stdout": mask.mask(&o.stdout.text_lossy()), "stderr": mask.mask(&o.stderr.text_lossy()),
            "error": null,
        }),
        Err(e) => serde_json::json!({
            "host": r.host, "result": category(&r.outcome), "exit": null,
            "stdout": null, "stderr": null, "error": mask.mask(&e.to_string()),
            "error_kind": e.kind(),
        }),
    }
}

/// Host text for a human: the become password masked, control characters shown as escapes.
fn shown(mask: &SecretMask, text: &str) -> String {
    visible(&mask.mask(text)).into_owned()
}

/// Identical results once, under the hosts that produced them (like `clush -b`).
fn print_grouped(results: &[HostResult], console: &Console, mask: &SecretMask) {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for r in results {
        let text = match &r.outcome {
            Ok(o) => {
                let mut t = shown(mask, &o.stdout.text_lossy());
                let err = shown(mask, &o.stderr.text_lossy());
                if !err.is_empty() {
                    t.push_str(&format!("[stderr]\n{err}"));
                }
                if !o.status.success() {
                    t.push_str(&format!("[{}]\n", o.status));
                }
                t
            }
            Err(e) => format!("[{}] {}\n", e.kind(), shown(mask, &e.to_string())),
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
