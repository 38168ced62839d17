//! A `reboot:` step on one host: record the boot id, issue the reboot, wait for a new boot id.
//!
//! 1. The host's boot id is read on the step's connection (`cat` of the kernel's
//!    `/proc/sys/kernel/random/boot_id`, or of the file the test hook
//!    [`sluice_plan::reboot::BOOT_ID_FILE_VAR`] names).
//! 2. The intent is recorded with that boot id (a resume reads it back), then the reboot
//!    command is sent. Its connection dropping, or its shell dying by a signal, is what a
//!    reboot looks like and not a failure; a command that exits non-zero (sudo refused,
//!    `systemctl` denied) fails the step at once.
//! 3. The connection (and its runner, which the reboot kills) is let go, and sluice connects
//!    again with backoff until the reboot's timeout: a fresh connection, with the normal host
//!    key verification, so a host that comes back with another key is refused. A connection
//!    that answers with the old boot id is a host that has not gone down yet: it is closed and
//!    the wait goes on.
//! 4. A new boot id ends the step `ok` and the host continues on the new connection (later
//!    steps, then the health checks). At the deadline the step fails: `timed_out` when the
//!    host did not answer, `failed` when it answered with the old boot id (it never rebooted).

use std::sync::Arc;
use std::time::Duration;

use sluice_model::ConnectErrorKind;
use sluice_model::{Capture, Fact, StepIntent, StepResult, StepStatus};
use sluice_plan::reboot::{BOOT_ID_FILE_VAR, KERNEL_BOOT_ID_FILE, RebootSpec};
use sluice_plan::{HostPlan, HostStep, RenderedCommand, StepSpec};
use sluice_ssh::{Become, Connection, ExecRequest, ExitStatus, TransportError};
use tokio::time::Instant;

use crate::host::{HostRun, Ran, captured, millis, shown_command};
use crate::report::HostOutcome;
use crate::run::RunContext;
use crate::shutdown::StopListener;
use crate::transports::host_target;

/// The first wait before connecting again, doubled after every attempt up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long reading the boot id may take on a connection that answers.
const BOOT_ID_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Exit codes a POSIX shell gives a command killed by a signal (128 + the signal's number).
const KILLED_BY_SIGNAL: std::ops::RangeInclusive<i32> = 129..=192;
/// A boot id is a UUID; anything much longer is not one.
const BOOT_ID_MAX_LEN: usize = 128;

/// What one reboot step came to: the status and the sentence the result carries.
struct RebootEnd {
    status: StepStatus,
    detail: String,
    /// What the reboot command printed, when it ran to its end (exited, or timed out) rather
    /// than losing its connection: kept in the result like any step's output.
    output: Option<CommandOutput>,
}

impl RebootEnd {
    fn new(status: StepStatus, detail: impl Into<String>) -> Self {
        RebootEnd {
            status,
            detail: detail.into(),
            output: None,
        }
    }
}

/// The reboot command's captured output (bounded, with sha256 and size) and exit code.
struct CommandOutput {
    stdout: Capture,
    stderr: Capture,
    exit_code: Option<i32>,
}

impl CommandOutput {
    fn of(ctx: &RunContext, ran: &Ran) -> Option<CommandOutput> {
        let Ran::Done(out) = ran else { return None };
        Some(CommandOutput {
            stdout: captured(ctx, &out.stdout),
            stderr: captured(ctx, &out.stderr),
            exit_code: match out.status {
                ExitStatus::Code(code) => Some(code),
                _ => None,
            },
        })
    }
}

/// Runs a reboot step on `run`'s host (its connection open), records its result and returns
/// its status. On success the host's connection is the new one; otherwise the host has no
/// connection (released, so an undo reconnects).
pub(crate) async fn run_reboot(
    run: &mut HostRun,
    ctx: &RunContext,
    step: &HostStep,
    reboot: &RebootSpec,
    become_user: &Option<Become>,
    stop: &mut StopListener,
) -> StepStatus {
    let order = RebootOrder {
        step: &step.id,
        command: &step.run,
        reboot,
        become_user,
        phase: Phase::Forward,
    };
    let ended = reboot_host(run, ctx, order, stop).await;
    if ended.intent_recorded {
        ctx.note(Fact::StepResult(ended.result.clone())).await;
    } else {
        ctx.events.emit(Fact::StepResult(ended.result.clone()));
    }
    match ended.result.status {
        StepStatus::Ok => StepStatus::Ok,
        _ => run.failed_with(step, &ended.result),
    }
}

/// Runs the undo of a reboot step as a reboot too (say, into the previous kernel): sluice
/// waits for the host to come back as it did for the step. Records and returns its result.
pub(crate) async fn undo_reboot(
    run: &mut HostRun,
    ctx: &RunContext,
    step: &HostStep,
    undo: &RenderedCommand,
    spec: &StepSpec,
    reboot: &RebootSpec,
    stop: &mut StopListener,
) -> StepResult {
    let become_user = match ctx.become_for(spec, &run.host) {
        Ok(b) => b,
        Err(why) => {
            let end = RebootEnd::new(StepStatus::Failed, why.to_string());
            let result = result(run, &step.id, end, Instant::now(), None);
            ctx.events.emit(Fact::UndoResult(result.clone()));
            return result;
        }
    };
    let order = RebootOrder {
        step: &step.id,
        command: undo,
        reboot,
        become_user: &become_user,
        phase: Phase::Undo,
    };
    let ended = reboot_host(run, ctx, order, stop).await;
    if ended.intent_recorded {
        ctx.note(Fact::UndoResult(ended.result.clone())).await;
    } else {
        ctx.events.emit(Fact::UndoResult(ended.result.clone()));
    }
    ended.result
}

/// Under `sluice resume`, settles the reboot of `run`'s host that the crash left without a
/// result: waits, as a reboot does, up to the step's timeout from now for a boot id other
/// than the recorded one, and records the step's result. On success the host has its new
/// connection and the step counts as done; otherwise the host has failed at that step.
pub(crate) async fn resume_in_flight(
    run: &mut HostRun,
    ctx: &RunContext,
    plan: &HostPlan,
    stop: &mut StopListener,
) {
    let Some(in_flight) = ctx.resume.reboot_in_flight(&plan.name).cloned() else {
        return;
    };
    let (Some(step), Some(reboot)) = (
        plan.steps.iter().find(|s| s.id == in_flight.step),
        ctx.artifact
            .step(&in_flight.step)
            .and_then(|s| s.reboot.clone()),
    ) else {
        return;
    };
    let started = Instant::now();
    let deadline = started + Duration::from_millis(reboot.timeout_ms);
    let end = wait_for_new_boot(run, ctx, plan, &in_flight.boot_id, deadline, stop).await;
    let conn = run.conn.clone();
    let mut result = result(run, &step.id, end, started, conn.as_ref());
    result.detail = format!("after the resume: {}", result.detail);
    ctx.note(Fact::StepResult(result.clone())).await;
    if result.status == StepStatus::Ok {
        run.resumed_reboot = Some(step.id.clone());
        return;
    }
    // The host's steps will not run: what ran before the crash is known to rollback here, the
    // reboot last (it ran after them), so its undo comes first.
    crate::resume::note_done_steps(ctx, run, plan);
    run.ran.push(step.clone());
    run.failed_with(step, &result);
    run.outcome = match result.status {
        StepStatus::Unknown => HostOutcome::Unknown,
        _ => HostOutcome::Failed,
    };
}

/// Under `sluice resume`, settles the undo of `step` (a reboot) that the crash left without a
/// result: waits, as a reboot does, up to the step's timeout for a boot id other than `before`,
/// and records the undo's result. The undo is not sent again: if the host rebooted, it ran.
pub(crate) async fn resume_undo_in_flight(
    run: &mut HostRun,
    ctx: &RunContext,
    step: &HostStep,
    reboot: &RebootSpec,
    before: &str,
    stop: &mut StopListener,
) -> StepResult {
    let started = Instant::now();
    let end = match ctx.artifact.host(&run.host).cloned() {
        Some(plan) => {
            let deadline = started + Duration::from_millis(reboot.timeout_ms);
            wait_for_new_boot(run, ctx, &plan, before, deadline, stop).await
        }
        None => RebootEnd::new(StepStatus::Failed, "the host is not in the plan"),
    };
    let conn = run.conn.clone();
    let mut result = result(run, &step.id, end, started, conn.as_ref());
    result.detail = format!("after the resume: {}", result.detail);
    ctx.note(Fact::UndoResult(result.clone())).await;
    result
}

/// Whether a reboot is a step or the undo of one: which facts it records.
#[derive(Clone, Copy)]
enum Phase {
    Forward,
    Undo,
}

/// One reboot to carry out.
struct RebootOrder<'a> {
    step: &'a str,
    command: &'a RenderedCommand,
    reboot: &'a RebootSpec,
    become_user: &'a Option<Become>,
    phase: Phase,
}

/// How a reboot ended, and whether its intent is on record (else its result is only shown).
struct RebootEnded {
    result: StepResult,
    intent_recorded: bool,
}

/// Reads the boot id, records the intent, sends the command and waits for a new boot id.
async fn reboot_host(
    run: &mut HostRun,
    ctx: &RunContext,
    order: RebootOrder<'_>,
    stop: &mut StopListener,
) -> RebootEnded {
    let started = Instant::now();
    let not_sent = |run: &HostRun, end: RebootEnd| RebootEnded {
        result: result(run, order.step, end, started, None),
        intent_recorded: false,
    };
    let plan = ctx.artifact.host(&run.host).cloned();
    let (Some(conn), Some(plan)) = (run.conn.clone(), plan) else {
        let end = RebootEnd::new(StepStatus::Failed, "the host has no connection to reboot");
        return not_sent(run, end);
    };
    let file = boot_id_file(&plan);
    let before = match read_boot_id(&conn, &file, stop).await {
        Ok(id) => id,
        Err(why) => {
            let why = format!("not rebooted: cannot read the boot id before the reboot: {why}");
            return not_sent(run, RebootEnd::new(StepStatus::Failed, why));
        }
    };
    let intent = StepIntent {
        host: run.host.clone(),
        step: order.step.to_string(),
        command: shown_command(ctx, order.command, &run.values),
        attempt: 1,
        boot_id: Some(before.clone()),
    };
    let intent = match order.phase {
        Phase::Forward => Fact::StepIntent(intent),
        Phase::Undo => Fact::UndoIntent(intent),
    };
    // The intent, with the boot id a resume compares against, is durable before the reboot.
    if let Err(why) = ctx.record(intent).await {
        let why = format!("not started: the journal failed: {why}");
        return not_sent(run, RebootEnd::new(StepStatus::Failed, why));
    }
    let timeout = Duration::from_millis(order.reboot.timeout_ms);
    let ran = run
        .exec(&conn, order.command, Some(timeout), order.become_user, stop)
        .await;
    let mut end = match issue_failed(ctx, &ran, timeout) {
        Some(end) => end,
        None => {
            // The reboot kills the connection and its runner: never use them again.
            drop(conn);
            run.release_connection();
            wait_for_new_boot(run, ctx, &plan, &before, started + timeout, stop).await
        }
    };
    end.output = CommandOutput::of(ctx, &ran);
    let conn = run.conn.clone();
    RebootEnded {
        result: result(run, order.step, end, started, conn.as_ref()),
        intent_recorded: true,
    }
}

/// Why sending the reboot command already failed the step, or `None` when what happened is
/// what a reboot looks like (exit 0, the connection dropped, the shell killed by a signal).
fn issue_failed(ctx: &RunContext, ran: &Ran, timeout: Duration) -> Option<RebootEnd> {
    match ran {
        Ran::Done(out) => match out.status {
            ExitStatus::Code(0) | ExitStatus::Signal(_) => None,
            // A shell that does not `exec` its last program (dash, the runner's) reports that
            // program's death by signal N as 128+N: a reboot killing `systemctl` looks so.
            ExitStatus::Code(code) if KILLED_BY_SIGNAL.contains(&code) => None,
            ExitStatus::TimedOut => Some(RebootEnd::new(
                StepStatus::TimedOut,
                format!(
                    "the reboot command did not end within the reboot's timeout ({})",
                    show_duration(timeout)
                ),
            )),
            ExitStatus::Code(code) => Some(RebootEnd::new(
                StepStatus::Failed,
                format!("the reboot command failed (exit {code}): the host was not rebooted"),
            )),
        },
        Ran::Transport(TransportError::ConnectionLost { .. }) => None,
        Ran::Transport(e) => Some(RebootEnd::new(
            StepStatus::Failed,
            ctx.secrets
                .redact(&format!("the reboot command could not run: {e}")),
        )),
        Ran::Abandoned => Some(RebootEnd::new(
            StepStatus::Unknown,
            "abandoned by a second Ctrl-C; whether the host reboots is unknown",
        )),
        Ran::Unresolved(why) => Some(RebootEnd::new(StepStatus::Failed, ctx.secrets.redact(why))),
    }
}

/// Connects again with backoff until `deadline`, until the host answers with a boot id other
/// than `before`. On success the new connection is the host's.
async fn wait_for_new_boot(
    run: &mut HostRun,
    ctx: &RunContext,
    plan: &HostPlan,
    before: &str,
    deadline: Instant,
    stop: &mut StopListener,
) -> RebootEnd {
    let Some(transport) = ctx.transports.get(plan.connection.transport) else {
        return RebootEnd::new(
            StepStatus::Failed,
            "no transport for the host in this build",
        );
    };
    let target = host_target(plan);
    let file = boot_id_file(plan);
    let waited_from = Instant::now();
    let mut backoff = BACKOFF_FIRST;
    let mut last = LastSeen::NotTried;
    loop {
        let wake = (Instant::now() + backoff).min(deadline);
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = stop.hard() => return RebootEnd::new(
                StepStatus::Unknown,
                "abandoned by a second Ctrl-C while waiting for the host to come back",
            ),
        }
        if Instant::now() >= deadline {
            break;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
        let conn = match tokio::time::timeout_at(deadline, transport.connect(&target)).await {
            Err(_) => break,
            Ok(Err(e)) if e.kind() == ConnectErrorKind::HostKeyRefused => {
                let why = format!("after the reboot the host key was refused: {e}");
                return RebootEnd::new(StepStatus::Failed, ctx.secrets.redact(&why));
            }
            Ok(Err(e)) => {
                last = LastSeen::Unreachable(ctx.secrets.redact(&e.to_string()));
                continue;
            }
            Ok(Ok(conn)) => conn,
        };
        let read = tokio::time::timeout_at(deadline, read_boot_id(&conn, &file, stop)).await;
        match read {
            Ok(Ok(now)) if now != before => {
                run.conn = Some(conn);
                run.released = false;
                let took = show_duration(waited_from.elapsed());
                return RebootEnd::new(
                    StepStatus::Ok,
                    format!("rebooted: the host answered with a new boot id after {took}"),
                );
            }
            Ok(Ok(_)) => last = LastSeen::SameBootId,
            Ok(Err(why)) => last = LastSeen::Unreachable(why),
            Err(_) => break,
        }
    }
    last.into_end(
        before,
        show_duration(deadline.saturating_duration_since(waited_from)),
    )
}

/// What the last attempt to reach the host found, for the reason a reboot failed.
enum LastSeen {
    NotTried,
    Unreachable(String),
    SameBootId,
}

impl LastSeen {
    fn into_end(self, before: &str, waited: String) -> RebootEnd {
        match self {
            LastSeen::SameBootId => RebootEnd::new(
                StepStatus::Failed,
                format!(
                    "the host did not reboot: it still answers with boot id {before} after {waited}"
                ),
            ),
            LastSeen::Unreachable(why) => RebootEnd::new(
                StepStatus::TimedOut,
                format!(
                    "the host did not come back within the reboot's timeout ({waited}); last attempt: {why}"
                ),
            ),
            LastSeen::NotTried => RebootEnd::new(
                StepStatus::TimedOut,
                format!("the host did not come back within the reboot's timeout ({waited})"),
            ),
        }
    }
}

/// The file the host's boot id is read from: the kernel's, unless the inventory's test hook
/// names another (docs/plan-format.md, "Reboot steps").
fn boot_id_file(plan: &HostPlan) -> String {
    match plan.vars.get(BOOT_ID_FILE_VAR).and_then(|v| v.as_str()) {
        Some(path) if !path.is_empty() => path.to_string(),
        _ => KERNEL_BOOT_ID_FILE.to_string(),
    }
}

/// Reads the boot id on `conn`, or says why it could not.
async fn read_boot_id(
    conn: &Arc<dyn Connection>,
    file: &str,
    stop: &mut StopListener,
) -> Result<String, String> {
    let request = ExecRequest::new(format!("cat {}", sluice_plan::shell_quote(file)))
        .timeout(BOOT_ID_READ_TIMEOUT);
    let out = tokio::select! {
        r = conn.exec(request) => r.map_err(|e| e.to_string())?,
        _ = stop.hard() => return Err("abandoned by a second Ctrl-C".into()),
    };
    if !out.status.success() {
        return Err(format!("`cat {file}` ended with {}", out.status));
    }
    let id = String::from_utf8_lossy(&out.stdout.kept_bytes())
        .trim()
        .to_string();
    let printable = id.chars().all(|c| c.is_ascii_graphic());
    if id.is_empty() || id.len() > BOOT_ID_MAX_LEN || !printable {
        return Err(format!("{file} does not hold a boot id"));
    }
    Ok(id)
}

/// The step's result: recorded by the caller like any step result.
fn result(
    run: &HostRun,
    step: &str,
    end: RebootEnd,
    started: Instant,
    conn: Option<&Arc<dyn Connection>>,
) -> StepResult {
    let output = end.output.unwrap_or(CommandOutput {
        stdout: Capture::default(),
        stderr: Capture::default(),
        exit_code: None,
    });
    StepResult {
        host: run.host.clone(),
        step: step.to_string(),
        attempt: 1,
        status: end.status,
        exit_code: output.exit_code,
        detail: end.detail,
        duration_ms: millis(started.elapsed()),
        stdout: output.stdout,
        stderr: output.stderr,
        host_key_fingerprint: conn.and_then(|c| c.host_key_fingerprint()),
    }
}

/// A duration as the plan writes one, to the second: `15m`, `1m30s`, `4s`.
fn show_duration(d: Duration) -> String {
    let secs = d.as_secs_f64().round() as u64;
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}
