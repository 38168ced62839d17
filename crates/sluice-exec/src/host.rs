//! One host's part of a wave: connect, run its steps in order, then its health checks.
//!
//! Steps run one at a time in the artifact's order, which the planner guarantees is a
//! topological order of `after`: every dependency of a step has finished before it starts, and
//! since the first failing step ends the host, a step never runs after a failed dependency.
//! Everything a step did is kept in [`HostRun`] so a rollback can undo exactly what ran.

use std::sync::Arc;
use std::time::Duration;

use sluice_plan::{HostPlan, HostStep, RenderedCommand, RuntimeValues, StepSpec};
use sluice_ssh::{Become, Connection, ExecOutcome, ExecRequest, ExitStatus, TransportError};
use tokio::time::Instant;

use crate::event::EventKind;
use crate::health;
use crate::report::{FailureDetail, HostOutcome, HostReport, RollbackOutcome, StepStatus};
use crate::run::RunContext;
use crate::shutdown::StopListener;
use crate::transports::host_target;

/// Lines of output kept for a failed step in events and the summary.
pub const OUTPUT_LINES: usize = 10;

/// What happened on one host: the state a rollback needs, and its report.
pub(crate) struct HostRun {
    pub host: String,
    pub conn: Option<Arc<dyn Connection>>,
    pub values: RuntimeValues,
    /// Steps that ran (succeeded, failed, timed out or unknown), in execution order.
    pub ran: Vec<HostStep>,
    pub outcome: HostOutcome,
    pub rollback: Option<RollbackOutcome>,
    pub failure: Option<FailureDetail>,
    pub duration: Duration,
}

impl HostRun {
    pub fn new(host: &str, values: RuntimeValues) -> Self {
        HostRun {
            host: host.to_string(),
            conn: None,
            values,
            ran: Vec::new(),
            outcome: HostOutcome::NotStarted,
            rollback: None,
            failure: None,
            duration: Duration::ZERO,
        }
    }

    pub fn report(&self) -> HostReport {
        HostReport {
            host: self.host.clone(),
            outcome: self.outcome,
            rollback: self.rollback,
            duration: self.duration,
            failure: self.failure.clone(),
        }
    }

    /// Opens the connection, or records why it could not be opened.
    pub async fn connect(&mut self, ctx: &RunContext, plan: &HostPlan, stop: &mut StopListener) {
        let Some(transport) = ctx.transports.get(plan.connection.transport) else {
            self.fail(
                HostOutcome::Unreachable,
                "connect",
                format!("no {:?} transport in this build", plan.connection.transport),
            );
            return;
        };
        // A connection opened while the previous wave ran (crate::preconnect), if it worked.
        let warm = tokio::select! {
            c = ctx.preconnect.take(&plan.name) => c,
            _ = stop.hard() => None,
        };
        if let Some(conn) = warm {
            self.conn = Some(conn);
            return;
        }
        let target = host_target(plan);
        let result = tokio::select! {
            r = transport.connect(&target) => r,
            _ = stop.hard() => {
                self.fail(HostOutcome::Unknown, "connect", "abandoned by a second Ctrl-C".into());
                return;
            }
        };
        match result {
            Ok(conn) => self.conn = Some(conn),
            Err(e) => {
                let outcome = if e.kind().is_unreachable() {
                    HostOutcome::Unreachable
                } else {
                    HostOutcome::Failed
                };
                self.fail(outcome, "connect", ctx.secrets.redact(&e.to_string()));
            }
        }
    }

    fn fail(&mut self, outcome: HostOutcome, what: &str, detail: String) {
        self.outcome = outcome;
        self.failure = Some(FailureDetail {
            what: what.to_string(),
            detail,
            output: Vec::new(),
        });
    }

    /// Runs one step (skip_if, attempts, register). Returns its final status.
    pub async fn run_step(
        &mut self,
        ctx: &RunContext,
        step: &HostStep,
        spec: &StepSpec,
        stop: &mut StopListener,
    ) -> StepStatus {
        let Some(conn) = self.conn.clone() else {
            return StepStatus::Failed;
        };
        if let Some(crate::resume::PriorStep::Done(done)) = ctx.resume.step(&self.host, &step.id) {
            return self.replay(ctx, step, spec, done);
        }
        let timeout = spec.timeout_ms.map(Duration::from_millis);
        let become_user = match ctx.become_for(spec) {
            Ok(b) => b,
            Err(why) => {
                return self.record_failure(ctx, step, Ran::Unresolved(why), 0, Duration::ZERO);
            }
        };
        if let Some(guard) = &step.skip_if {
            match self.exec(&conn, guard, timeout, &become_user, stop).await {
                Ran::Done(out) if out.status.success() => {
                    ctx.events.emit(EventKind::StepFinished {
                        host: self.host.clone(),
                        step: step.id.clone(),
                        status: StepStatus::Skipped,
                        detail: "skip_if exited 0".into(),
                        attempt: 0,
                        duration_ms: millis(out.duration),
                        output: Vec::new(),
                    });
                    crate::resume::close_skipped_intent(ctx, &self.host, &step.id).await;
                    return StepStatus::Skipped;
                }
                Ran::Done(_) => {}
                other => return self.record_failure(ctx, step, other, 0, Duration::ZERO),
            }
        }
        self.ran.push(step.clone());
        let mut attempt = ctx.resume.first_attempt(&self.host, &step.id);
        loop {
            let resolved = step.run.resolve(&self.values);
            let shown = match &resolved {
                Ok(r) => r.redacted.clone(),
                Err(_) => step.run.to_string(),
            };
            let intent = crate::journal::StepIntentNote {
                host: self.host.clone(),
                step: step.id.clone(),
                command: shown.clone(),
                attempt,
            };
            // The intent is durable before the command is sent; unrecorded, it is not sent.
            if let Err(why) = ctx.journal.intent(intent).await {
                let ran = Ran::Unresolved(format!("not started: the journal failed: {why}"));
                return self.record_failure(ctx, step, ran, attempt, Duration::ZERO);
            }
            ctx.events.emit(EventKind::StepStarted {
                host: self.host.clone(),
                step: step.id.clone(),
                command: shown,
                attempt,
            });
            let started = Instant::now();
            let ran = self
                .exec(&conn, &step.run, timeout, &become_user, stop)
                .await;
            // The result is durable before this host's next step (or retry) starts.
            let note = self.result_note(ctx, &step.id, attempt, &ran, started.elapsed(), &conn);
            if let Err(why) = ctx.journal.result(note).await {
                ctx.events.decision(
                    "journal_failed",
                    None,
                    format!(
                        "the result of {} on {} was not recorded: {why}",
                        step.id, self.host
                    ),
                );
            }
            match ran {
                Ran::Done(out) if out.status.success() => {
                    if let Some(name) = &spec.register {
                        let value = String::from_utf8_lossy(&out.stdout.kept_bytes())
                            .trim()
                            .to_string();
                        self.values.registered.insert(name.clone(), value);
                    }
                    ctx.events.emit(EventKind::StepFinished {
                        host: self.host.clone(),
                        step: step.id.clone(),
                        status: StepStatus::Ok,
                        detail: out.status.to_string(),
                        attempt,
                        duration_ms: millis(out.duration),
                        output: Vec::new(),
                    });
                    return StepStatus::Ok;
                }
                Ran::Done(out) if attempt <= spec.retries && !stop.hard_requested() => {
                    self.emit_finished(ctx, step, &Ran::Done(out), attempt, started.elapsed());
                    ctx.events.emit(EventKind::StepRetrying {
                        host: self.host.clone(),
                        step: step.id.clone(),
                        next_attempt: attempt + 1,
                        delay_ms: spec.retry_delay_ms,
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(spec.retry_delay_ms)) => {}
                        _ = stop.hard() => {}
                    }
                    attempt += 1;
                }
                other => return self.record_failure(ctx, step, other, attempt, started.elapsed()),
            }
        }
    }

    /// The journal's note of how one command ended on this host.
    pub(crate) fn result_note(
        &self,
        ctx: &RunContext,
        step: &str,
        attempt: u32,
        ran: &Ran,
        elapsed: Duration,
        conn: &Arc<dyn Connection>,
    ) -> crate::journal::StepResultNote {
        let (status, detail, _) = describe(ctx, ran);
        let done = match ran {
            Ran::Done(out) => Some(out),
            _ => None,
        };
        crate::journal::StepResultNote {
            host: self.host.clone(),
            step: step.to_string(),
            attempt,
            ok: status == StepStatus::Ok,
            exit_code: done.and_then(|out| match out.status {
                ExitStatus::Code(c) => Some(c),
                _ => None,
            }),
            detail,
            duration_ms: millis(elapsed),
            stdout: done.map_or_else(Default::default, |out| captured_note(ctx, &out.stdout)),
            stderr: done.map_or_else(Default::default, |out| captured_note(ctx, &out.stderr)),
            host_key_fingerprint: conn.host_key_fingerprint(),
        }
    }

    fn emit_finished(
        &self,
        ctx: &RunContext,
        step: &HostStep,
        ran: &Ran,
        attempt: u32,
        elapsed: Duration,
    ) -> (StepStatus, String, Vec<String>) {
        let (status, detail, output) = describe(ctx, ran);
        ctx.events.emit(EventKind::StepFinished {
            host: self.host.clone(),
            step: step.id.clone(),
            status,
            detail: detail.clone(),
            attempt,
            duration_ms: millis(elapsed),
            output: output.clone(),
        });
        (status, detail, output)
    }

    fn record_failure(
        &mut self,
        ctx: &RunContext,
        step: &HostStep,
        ran: Ran,
        attempt: u32,
        elapsed: Duration,
    ) -> StepStatus {
        let (status, detail, output) = self.emit_finished(ctx, step, &ran, attempt, elapsed);
        self.failure = Some(FailureDetail {
            what: step.id.clone(),
            detail,
            output,
        });
        status
    }

    /// Resolves and runs `command`, abandoning it on a hard stop.
    pub async fn exec(
        &self,
        conn: &Arc<dyn Connection>,
        command: &RenderedCommand,
        timeout: Option<Duration>,
        become_user: &Option<Become>,
        stop: &mut StopListener,
    ) -> Ran {
        let resolved = match command.resolve(&self.values) {
            Ok(r) => r,
            Err(e) => return Ran::Unresolved(e.to_string()),
        };
        let mut request = ExecRequest::new(resolved.text);
        request.timeout = timeout;
        request.become_user = become_user.clone();
        tokio::select! {
            r = conn.exec(request) => match r {
                Ok(out) => Ran::Done(out),
                Err(e) => Ran::Transport(e),
            },
            _ = stop.hard() => Ran::Abandoned,
        }
    }
}

/// How running one command ended.
pub(crate) enum Ran {
    Done(ExecOutcome),
    Transport(TransportError),
    /// A second Ctrl-C: the command may still be running on the host.
    Abandoned,
    /// A run-time value is missing; nothing was sent to the host.
    Unresolved(String),
}

/// Status, one-line detail and first output lines of a command that did not succeed.
pub(crate) fn describe(ctx: &RunContext, ran: &Ran) -> (StepStatus, String, Vec<String>) {
    match ran {
        Ran::Done(out) => {
            let status = match out.status {
                ExitStatus::TimedOut => StepStatus::TimedOut,
                ExitStatus::Code(0) => StepStatus::Ok,
                _ => StepStatus::Failed,
            };
            (status, out.status.to_string(), first_lines(ctx, out))
        }
        Ran::Transport(e) => {
            let status = if matches!(e, TransportError::ConnectionLost { .. }) {
                StepStatus::Unknown
            } else {
                StepStatus::Failed
            };
            (status, ctx.secrets.redact(&e.to_string()), Vec::new())
        }
        Ran::Abandoned => (
            StepStatus::Unknown,
            "abandoned by a second Ctrl-C; its outcome on the host is unknown".into(),
            Vec::new(),
        ),
        Ran::Unresolved(why) => (StepStatus::Failed, why.clone(), Vec::new()),
    }
}

/// The first lines of stderr, then of stdout, with secrets scrubbed.
pub(crate) fn first_lines(ctx: &RunContext, out: &ExecOutcome) -> Vec<String> {
    let text = format!("{}{}", out.stderr.text_lossy(), out.stdout.text_lossy());
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .take(OUTPUT_LINES)
        .map(|l| ctx.secrets.redact(l))
        .collect()
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs a whole host: connect, steps, health checks. Never panics on host data; the outcome says
/// how it ended.
pub(crate) async fn run_host(
    ctx: Arc<RunContext>,
    wave: String,
    plan: HostPlan,
    values: RuntimeValues,
) -> HostRun {
    let mut stop = ctx.shutdown.subscribe();
    let mut run = HostRun::new(&plan.name, values);
    let started = Instant::now();
    ctx.events.emit(EventKind::HostStarted {
        wave: wave.clone(),
        host: plan.name.clone(),
    });
    run.outcome = HostOutcome::Ok;
    run.connect(&ctx, &plan, &mut stop).await;
    if run.conn.is_some() {
        run.outcome = run_steps(&ctx, &mut run, &plan, &mut stop).await;
    } else {
        crate::resume::note_done_steps(&ctx, &mut run, &plan);
    }
    let health = match run.conn.clone() {
        Some(conn) if run.outcome == HostOutcome::Ok => match ctx.resume.recorded_health(&plan) {
            Some(verdict) => verdict,
            None => health::check_host(&ctx, &run, &conn, &plan, &mut stop).await,
        },
        _ => Ok(()),
    };
    if let Err(failure) = health {
        run.outcome = if stop.hard_requested() {
            HostOutcome::Unknown
        } else {
            HostOutcome::Unhealthy
        };
        run.failure = Some(failure);
    }
    run.duration = started.elapsed();
    ctx.events.emit(EventKind::HostFinished {
        wave,
        host: plan.name.clone(),
        outcome: run.outcome,
        duration_ms: millis(run.duration),
        error: run
            .failure
            .as_ref()
            .map(|f| format!("{}: {}", f.what, f.detail)),
    });
    run
}

async fn run_steps(
    ctx: &RunContext,
    run: &mut HostRun,
    plan: &HostPlan,
    stop: &mut StopListener,
) -> HostOutcome {
    for step in &plan.steps {
        if stop.soft_requested().is_some() || stop.hard_requested() {
            run.failure = Some(FailureDetail {
                what: step.id.clone(),
                detail: "not started: the run is stopping".into(),
                output: Vec::new(),
            });
            return HostOutcome::Interrupted;
        }
        let spec = step_spec(ctx, &step.id);
        match run.run_step(ctx, step, &spec, stop).await {
            StepStatus::Ok | StepStatus::Skipped => {}
            StepStatus::Failed | StepStatus::TimedOut => return HostOutcome::Failed,
            StepStatus::Unknown => return HostOutcome::Unknown,
        }
    }
    HostOutcome::Ok
}

/// The step's spec; a step the artifact does not define runs once, without limits.
pub(crate) fn step_spec(ctx: &RunContext, id: &str) -> StepSpec {
    ctx.artifact
        .step(id)
        .cloned()
        .unwrap_or_else(|| bare_spec(id))
}

/// A step with no dependencies, limits, retries or register.
pub(crate) fn bare_spec(id: &str) -> StepSpec {
    StepSpec {
        id: id.to_string(),
        after: Vec::new(),
        run_once: false,
        become_root: false,
        become_user: None,
        timeout_ms: None,
        retries: 0,
        retry_delay_ms: 0,
        register: None,
        idempotent: false,
    }
}

/// A captured stream for the journal, with secrets scrubbed.
fn captured_note(
    ctx: &RunContext,
    out: &sluice_ssh::CapturedOutput,
) -> crate::journal::CapturedNote {
    crate::journal::CapturedNote {
        head: ctx.secrets.redact(&String::from_utf8_lossy(&out.head)),
        tail: ctx.secrets.redact(&String::from_utf8_lossy(&out.tail)),
        bytes: out.total_bytes,
        sha256: out.sha256.clone(),
        truncated: out.truncated(),
    }
}
