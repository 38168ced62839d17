//! `sluice apply`: run a plan wave by wave, show it, summarise it, map the outcome to an exit code.
//!
//! Order of business: load and verify the artifact, refuse early what must not start (outside
//! the window, gates nobody can answer, no confirmation), read secrets, then run the executor
//! with the monitor showing its events and a Ctrl-C handler feeding the shutdown signal. An
//! encrypted SSH key's passphrase is asked on the terminal, with the monitor's bars suspended
//! (`crate::ssh`), as `exec` does.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use sluice_audit::Redactor;
use sluice_exec::window::{WindowState, window_state};
use sluice_exec::{
    Approver, Emitter, RunOptions, RunReport, Secrets, Shutdown, Transports,
    approval::ApprovalFuture, verify_artifact,
};
use sluice_lifecycle::RecordedRun;
use sluice_lifecycle::start::start_checked_run;
use sluice_model::{Approval, ApprovalHow, Decision, Fact};
use sluice_plan::{PlanArtifact, TransportKind};
use sluice_ssh::LocalTransport;

use super::audit::StateDirArg;
use crate::console::Console;
use crate::error::{CliError, ErrorKind};
use crate::exit;
use crate::progress::{Mode, Monitor};
use crate::summary;

/// Threads for blocking work in a run (see where the runtime is built).
const MAX_BLOCKING_THREADS: usize = 8;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The change plan (YAML) to compile and run; needs --inventory.
    #[arg(
        value_name = "PLAN",
        required_unless_present = "plan_file",
        requires = "inventory"
    )]
    plan: Option<PathBuf>,
    /// The inventory the plan targets (any format `sluice plan` reads). With --plan, its policy
    /// must be the one sealed in the artifact.
    #[arg(short, long, value_name = "INVENTORY")]
    inventory: Option<PathBuf>,
    #[command(flatten)]
    inventory_format: crate::commands::plan::InventoryFormatArg,
    /// Keep only the targeted hosts this Ansible host pattern matches (with PLAN only; see
    /// `sluice plan --help`).
    #[arg(long, value_name = "PATTERN", conflicts_with = "plan_file")]
    limit: Option<String>,
    /// Run a saved plan artifact (`sluice plan --out`) exactly as reviewed.
    #[arg(long = "plan", value_name = "FILE", conflicts_with = "plan")]
    plan_file: Option<PathBuf>,
    /// Refuse to run unless the plan's hash is exactly this.
    #[arg(long, value_name = "HASH")]
    expect_hash: Option<String>,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(short, long)]
    yes: bool,
    /// Write every event as JSON Lines to stdout (docs/json-events.md).
    #[arg(long)]
    json: bool,
    /// Run even outside the plan's maintenance window (recorded in the run's events).
    #[arg(long)]
    ignore_window: bool,
    /// Exit 0, not 6, when the run went through with failures its budgets tolerated.
    #[arg(long)]
    allow_tolerated: bool,
    /// Set a variable, overriding plan, group and host vars (repeatable; with PLAN only).
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var, conflicts_with = "plan_file")]
    vars: Vec<(String, String)>,
    /// A `sluice audit export` file (JSON Lines, its hash chain verified) to search for the run
    /// a plan's `promotion:` requires, besides this controller's store.
    #[arg(long, value_name = "EXPORT.jsonl")]
    evidence: Option<PathBuf>,
    /// Refuse to run unless the plan's exact hash was approved (`sluice approve-plan`).
    #[arg(long)]
    require_approval: bool,
    /// Preview: connect to every targeted host and run only `skip_if` guards and `check: true`
    /// steps, then report which steps would run or be skipped; nothing else runs (recorded as a
    /// run of kind check; docs/operations.md, "Check mode").
    #[arg(long, conflicts_with_all = ["ignore_window", "allow_tolerated", "require_approval", "metrics_file"])]
    check: bool,
    /// After the run, write the Prometheus metrics of every plan's latest run to FILE
    /// atomically, for node_exporter's textfile collector (overrides the inventory's
    /// `metrics_file:`; docs/operations.md, "Metrics").
    #[arg(long, value_name = "FILE")]
    metrics_file: Option<PathBuf>,
    /// Do not open the next wave's SSH connections while a wave runs (no command is ever sent
    /// early either way; see docs/operations.md, "Connections").
    #[arg(long)]
    no_preconnect: bool,
    /// Send every command on an SSH channel and login shell of its own instead of through each
    /// host's runner (as `transport_mode: exec` in the inventory does per host): for hosts whose
    /// login shell is not POSIX (docs/operations.md, "Connections").
    #[arg(long)]
    exec_per_step: bool,
    /// With `host_lease: true`: take over hosts whose host-side lease another run holds but
    /// let expire; needs `--reason`, recorded with each broken lease (docs/operations.md,
    /// "Host-side leases"). A live lease is never broken.
    #[arg(long, requires = "reason")]
    break_expired_host_leases: bool,
    /// Hand the run's hosts to `sluice worker` processes through the shared PostgreSQL store
    /// instead of running them here; this process stays the coordinator (waves, budgets, gates,
    /// rollback decisions, the display). The workers read the secrets themselves
    /// (docs/operations.md, "Workers").
    #[arg(long, conflicts_with = "check")]
    workers: bool,
    #[command(flatten)]
    policy: super::authorize::PolicyArgs,
    #[command(flatten)]
    store: StateDirArg,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    let artifact = load(&args, console)?;
    verify_artifact(&artifact, args.expect_hash.as_deref())?;
    // A store that cannot be opened (damaged, locked) means no run starts.
    let log = Arc::new(
        args.store
            .open()
            .map_err(|e| e.with_kind(ErrorKind::InvalidInput))?,
    );
    if args.workers {
        super::worker::check_workers(&log, &artifact)?;
    }
    if args.check {
        let check = super::check::CheckArgs {
            artifact,
            log,
            json: args.json,
            exec_per_step: args.exec_per_step,
        };
        return super::check::run(check, console);
    }
    if args.require_approval {
        sluice_lifecycle::start::require_approval(&log, &artifact.plan_hash)?;
    }
    let overrides: Vec<&str> = [
        args.ignore_window.then_some("--ignore-window"),
        args.break_expired_host_leases
            .then_some("--break-expired-host-leases"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let authorized =
        super::authorize::authorize(&log, &artifact, &args.policy, &overrides, true, console)?;
    check_window(&artifact, args.ignore_window, console)?;
    let promotion = sluice_lifecycle::promotion::check(
        &artifact,
        Some(&log),
        args.evidence.as_deref(),
        jiff::Timestamp::now(),
    )?;
    if let sluice_lifecycle::promotion::PromotionCheck::Found(evidence) = &promotion {
        console.status(
            "Promotion",
            format!(
                "evidence: run {} succeeded on {} at {} ({})",
                evidence.run,
                evidence.environment,
                evidence.finished(),
                evidence.source
            ),
        );
    }
    console.text(summary::plan(&artifact, console));
    let mut host_lease = sluice_exec::host_lease::HostLeaseIdentity {
        run: String::new(),
        controller: sluice_audit::controller_name(),
        operator: sluice_audit::operator_name(),
        break_expired: args
            .break_expired_host_leases
            .then(|| args.policy.reason.clone())
            .flatten(),
    };
    super::host_lease::refuse_held_hosts(&artifact, &host_lease, args.exec_per_step, console)?;
    let typed = confirm(args.yes, console)?;
    let secrets = super::worker::coordinator_secrets(&artifact, args.workers)?;
    let redactor = Arc::new(Redactor::new(secrets.values().values().cloned()));
    let command_line: Vec<String> = std::env::args().collect();
    let started = start_checked_run(
        &log,
        &artifact,
        &redactor,
        &command_line,
        typed,
        authorized.facts,
    )?;
    console.status(
        "Run",
        format!("{} (recorded in {})", started.run_id, log.path().display()),
    );
    host_lease.run = started.run_id.clone();
    let run = Recorded {
        log,
        run_id: started.run_id,
        opening: Fact::RunStarted(started.fact),
        artifact,
        secrets,
        redactor,
        options: RunOptions {
            ignore_window: args.ignore_window,
            no_preconnect: args.no_preconnect,
            host_lease: Some(host_lease),
            ..RunOptions::default()
        },
        json: args.json,
        allow_tolerated: args.allow_tolerated,
        gate_policy: authorized.gate_policy,
        metrics_file: args.metrics_file.clone(),
        exec_per_step: args.exec_per_step,
        workers: args.workers,
        held: Vec::new(),
    };
    run_recorded(run, console)
}

/// A run whose start (or take-over) is committed, ready to run: what `apply` and `resume` hand
/// to [`run_recorded`].
pub(crate) struct Recorded {
    pub log: Arc<sluice_audit::AuditLog>,
    pub run_id: String,
    pub opening: Fact,
    pub artifact: PlanArtifact,
    pub secrets: Secrets,
    pub redactor: Arc<Redactor>,
    pub options: RunOptions,
    /// `--json`: events as JSON Lines on stdout.
    pub json: bool,
    /// `--allow-tolerated`: a `tolerated` run exits 0.
    pub allow_tolerated: bool,
    /// What the gates need under the environment's policy.
    pub gate_policy: Option<sluice_lifecycle::policy::GatePolicy>,
    /// `--metrics-file`; else the inventory's `metrics_file:` sealed in the artifact's label.
    pub metrics_file: Option<PathBuf>,
    /// `--exec-per-step`: no runner on any host.
    pub exec_per_step: bool,
    /// `--workers`: the hosts run on workers.
    pub workers: bool,
    /// A resume with `--workers`: the tasks live workers held when it was read.
    pub held: Vec<sluice_audit::pg::HeldHost>,
}

impl Recorded {
    /// Where the metrics go after the run: the command line's file, else the inventory's.
    fn metrics_path(&self) -> Option<PathBuf> {
        self.metrics_file.clone().or_else(|| {
            self.artifact
                .planned_for
                .as_ref()
                .and_then(|p| p.metrics_file.as_ref())
                .map(PathBuf::from)
        })
    }
}

/// Runs a recorded run (`apply`, and `resume` on the same run id) with the monitor showing its
/// events and Ctrl-C feeding the shutdown signal, then prints the summary. Returns the exit code.
pub(crate) fn run_recorded(run: Recorded, console: &Console) -> Result<u8, CliError> {
    let max_batch = max_batch()?;
    let allow_tolerated = run.allow_tolerated;
    // Blocking work (audit commits, the terminal prompt) is serialized by the store's write lock
    // or waits on a person: more threads than this only cost memory, ~2 MiB of allocator heap
    // each (peak RSS 200 MiB at 100 hosts with tokio's default of 512; docs/benchmarks.md).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
    let metrics = run.metrics_path().map(|path| (path, run.log.clone()));
    let finished = runtime.block_on(execute(run, max_batch, console));
    // An approval prompt still waiting on stdin (the run was stopped meanwhile) must not keep
    // the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    let finished = finished?;
    let commits = &finished.commits;
    console.verbose(format!(
        "Audit: {} records journalled in {} commits (largest {}), {:.2} ms mean wait per record",
        commits.records,
        commits.commits,
        commits.largest,
        commits.mean_wait().as_secs_f64() * 1000.0
    ));
    let report = &finished.report;
    console.text(summary::report(report, console));
    if console.verbosity() == crate::console::Verbosity::Quiet {
        // `-q` still says how a run that did not apply ended.
        let (verdict, bad) = summary::verdict(report.status);
        if bad {
            console.error(format!("run {} {verdict}", report.run_id));
        }
    }
    if let Some((path, log)) = &metrics {
        super::metrics::write_after_run(log, path, console);
    }
    // Last, so that it is what the operator reads: the run's own outcome does not hide it.
    if !finished.record_complete() {
        console.error(incomplete_record(&finished));
    }
    Ok(exit_code(report, allow_tolerated))
}

/// What is missing from the record of a run and what to do about its leases.
fn incomplete_record(finished: &sluice_lifecycle::Finished) -> String {
    let run = &finished.report.run_id;
    if finished.store_lost() {
        return format!(
            "run {run} stopped because its audit store could not be reached ({}): no step started without its intent recorded, commands in flight finished, nothing was undone; {} fact(s) were not recorded. The run is unfinished in the store and its host leases stay held until they expire: once the store is back, `sluice resume {run}` carries it on",
            finished
                .lost
                .first_reason
                .as_deref()
                .unwrap_or("the database went away"),
            finished.lost.facts
        );
    }
    let mut text = format!("the record of run {run} in the audit store is incomplete:");
    if finished.lost.facts > 0 {
        text.push_str(&format!(
            " {} fact(s) of the run were not recorded ({})",
            finished.lost.facts,
            finished
                .lost
                .first_reason
                .as_deref()
                .unwrap_or("the store refused them")
        ));
    }
    match &finished.unrecorded {
        Some(e) => {
            if finished.lost.facts > 0 {
                text.push(';');
            }
            text.push_str(&format!(" its end (run_finished) was not recorded ({e})"));
            if finished.leases_held {
                text.push_str(&format!(
                    "; its host leases are still held: once the store can be written again, `sluice unlock {run}` releases them"
                ));
            } else {
                text.push_str("; its host leases were released");
            }
        }
        None => text.push_str("; its end and the release of its leases were recorded"),
    }
    text.push_str(
        ". `sluice show` lacks what is missing: keep this output with the change's records",
    );
    text
}
/// The documented exit code of a finished run.
pub fn exit_code(report: &RunReport, allow_tolerated: bool) -> u8 {
    match report.status {
        sluice_model::RunStatus::Tolerated if allow_tolerated => exit::OK,
        status => exit::for_status(status),
    }
}

/// The artifact to run: a saved one (format and hash checked on load), or a plan compiled now.
fn load(args: &Args, console: &Console) -> Result<PlanArtifact, CliError> {
    if let Some(path) = &args.plan_file {
        let artifact = sluice_plan::load_artifact(&path.to_string_lossy())
            .map_err(|e| CliError::invalid_input(e.to_string()))?;
        if let Some(inventory) = &args.inventory {
            let current = super::authorize::inventory_policy(inventory, console)?;
            if current != artifact.policy {
                return Err(CliError::invalid_input(format!(
                    "the change policy of {} is not the one sealed in {} (the policy or its allowed_signers changed since the plan was made): plan it again and have it approved; nothing was started",
                    inventory.display(),
                    path.display()
                )));
            }
        }
        return Ok(artifact);
    }
    let (Some(plan), Some(inventory)) = (&args.plan, &args.inventory) else {
        return Err(CliError::invalid_input(
            "give a change plan and its inventory (`sluice apply PLAN -i INVENTORY`), or a saved plan (`--plan FILE`)",
        ));
    };
    let input = crate::commands::plan::InputArgs {
        inventory: inventory.clone(),
        inventory_format: args.inventory_format.format,
        vars: args.vars.clone(),
        limit: args.limit.clone(),
    };
    Ok(crate::commands::plan::compile(plan, &input, console)?.artifact)
}

pub(crate) fn check_window(
    artifact: &PlanArtifact,
    ignore: bool,
    console: &Console,
) -> Result<(), CliError> {
    let Some(window) = &artifact.window else {
        return Ok(());
    };
    if ignore {
        console.warn("--ignore-window: the maintenance window is NOT enforced for this run");
        return Ok(());
    }
    match window_state(window, jiff::Timestamp::now()) {
        Ok(WindowState::Open { closes_at }) => {
            console.status("Window", format!("open until {closes_at}"));
            Ok(())
        }
        Ok(WindowState::Closed { next_open }) => Err(CliError::aborted(match next_open {
            Some(t) => format!(
                "outside the maintenance window: nothing was started; it opens next at {t} (or use --ignore-window)"
            ),
            None => "outside the maintenance window, which has ended: nothing was started".into(),
        })),
        Err(e) => Err(CliError::invalid_input(e.to_string())),
    }
}

/// Asks the operator to confirm; `Ok(true)` when the confirmation was typed, `Ok(false)` with
/// `--yes`.
pub(crate) fn confirm(yes: bool, console: &Console) -> Result<bool, CliError> {
    if yes {
        return Ok(false);
    }
    if !console.can_prompt() {
        return Err(CliError::invalid_input(
            "not a terminal, so nobody can confirm: review the plan and pass --yes to apply it",
        ));
    }
    console.text("Type `yes` to apply this plan: ");
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::invalid_input(format!("cannot read the answer: {e}")))?;
    if answer.trim() == "yes" {
        Ok(true)
    } else {
        Err(CliError::aborted("not confirmed: nothing was started"))
    }
}

async fn execute(
    run: Recorded,
    max_batch: usize,
    console: &Console,
) -> Result<sluice_lifecycle::Finished, sluice_lifecycle::LifecycleError> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let events = Emitter::new(&run.run_id, tx);
    // Webhooks see every event on its way to the display, and never hold it up.
    let notifier = crate::notifications::notifier(
        &run.run_id,
        &run.artifact,
        &run.secrets,
        &run.redactor,
        console,
    );
    let (shown_tx, shown_rx) = tokio::sync::mpsc::unbounded_channel();
    let relay = tokio::spawn(sluice_notify::relay(rx, shown_tx, notifier));
    let (log, run_id) = (run.log.clone(), run.run_id.clone());
    let shutdown = Shutdown::new();
    let in_waves = run
        .artifact
        .waves
        .iter()
        .map(|w| w.hosts.len() as u64)
        .sum();
    let monitor = Monitor::new(console, Mode::choose(console, run.json))
        .until_closed()
        .hosts_in_waves(in_waves);
    let exec_per_step = run.exec_per_step;
    // Gates are answered by `sluice approve` through the store, or on this terminal if there is
    // one, whichever comes first.
    let terminal = console.can_prompt().then(|| {
        Arc::new(TerminalApprover {
            multi: monitor.multi(),
        }) as Arc<dyn Approver>
    });
    let interrupts = tokio::spawn(interrupts(shutdown.clone(), events.clone()));
    let transports = Transports::new()
        .with(TransportKind::Local, Arc::new(LocalTransport))
        .with(
            TransportKind::Ssh,
            // Asks for a key's passphrase on the terminal, with the bars suspended.
            Arc::new(crate::ssh::transport(
                console,
                &monitor.multi(),
                exec_per_step,
            )),
        );
    let recorded = RecordedRun {
        log: run.log,
        run_id: run.run_id,
        opening: run.opening,
        artifact: run.artifact,
        secrets: run.secrets,
        redactor: run.redactor,
        options: run.options,
        transports,
        shutdown,
        terminal,
        max_batch,
        gate_policy: run.gate_policy,
        workers: run.workers,
        held: run.held,
    };
    let run = async {
        let finished = recorded.run(events).await;
        // Its events sender is the last one left: the monitor ends once it is gone.
        interrupts.abort();
        finished
    };
    let (finished, ()) = tokio::join!(run, monitor.run(shown_rx));
    if let Ok(failed) = relay.await {
        crate::notifications::record(log, run_id, failed).await;
    }
    finished
}

/// Records per commit from `SLUICE_AUDIT_BATCH` (1 commits every record alone, to measure what
/// group commit saves), else [`sluice_audit::group::MAX_BATCH`].
fn max_batch() -> Result<usize, CliError> {
    match std::env::var("SLUICE_AUDIT_BATCH") {
        Err(_) => Ok(sluice_audit::group::MAX_BATCH),
        Ok(v) => v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            CliError::invalid_input(format!(
                "SLUICE_AUDIT_BATCH={v}: expected a number of records per commit, 1 or more"
            ))
        }),
    }
}

/// Ctrl-C: the first asks for a graceful stop, the second stops now.
async fn interrupts(shutdown: Shutdown, events: Emitter) {
    while tokio::signal::ctrl_c().await.is_ok() {
        let state = shutdown.interrupt();
        if state.hard {
            events.decision(
                Decision::InterruptHard,
                None,
                "second Ctrl-C: abandoning in-flight steps (marked UNKNOWN); nothing is undone",
            );
        } else {
            events.decision(
                Decision::Interrupt,
                None,
                "Ctrl-C: no new hosts start; in-flight steps finish, then the wave is rolled back per policy (Ctrl-C again to stop now)",
            );
        }
    }
}

/// Asks on the terminal. The bars are suspended only while the question is printed, so the run's
/// display goes on; a question answered elsewhere first is withdrawn (`crate::prompt`).
pub(crate) struct TerminalApprover {
    multi: indicatif::MultiProgress,
}

impl Approver for TerminalApprover {
    fn approve<'a>(&'a self, _run_id: &'a str, wave: &'a str) -> ApprovalFuture<'a> {
        let multi = self.multi.clone();
        let wave = wave.to_string();
        Box::pin(async move {
            // Dropped with this future when another answer wins the race: the read stops.
            let (_withdraw, withdrawn) = crate::prompt::Withdraw::new();
            let question = format!("Approve wave `{wave}`? Type `yes` to start it: ");
            let asked = tokio::task::spawn_blocking(move || {
                multi.suspend(|| eprint_prompt(&question));
                let answer = crate::prompt::read_line(&withdrawn);
                if answer.is_none() && withdrawn.load(std::sync::atomic::Ordering::SeqCst) {
                    crate::progress::print_line("(answered elsewhere: the question is withdrawn)");
                }
                answer
            })
            .await;
            let approved = matches!(&asked, Ok(Some(line)) if line.trim() == "yes");
            // The OS account, as `run_started` and leases name the operator.
            Approval::of_wave(
                &wave,
                &sluice_audit::operator_name(),
                !approved,
                ApprovalHow::Terminal,
            )
        })
    }
}

/// The question is the one write that must happen while the monitor's bars are suspended, so it
/// cannot go through the monitor.
fn eprint_prompt(text: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}
