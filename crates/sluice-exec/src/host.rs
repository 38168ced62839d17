//! One host's part of a wave: connect, run its steps in order, then its health checks.
//!
//! Steps run one at a time in the artifact's order, which the planner guarantees is a
//! topological order of `after`: every dependency of a step has finished before it starts, and
//! since the first failing step ends the host, a step never runs after a failed dependency.
//! Everything a step did is kept in [`HostRun`] so a rollback can undo exactly what ran.

use std::sync::Arc;
use std::time::Duration;

use sluice_model::{
    Capture, Fact, HostFinished, HostStarted, StepIntent, StepResult, StepRetrying,
};
use sluice_plan::{HostPlan, HostStep, RenderedCommand, RuntimeValues, StepSpec};
use sluice_ssh::{
    Become, Connection, ExecOutcome, ExecRequest, ExitStatus, SecretVar, TransportError,
};
use tokio::time::Instant;

use crate::health;
use crate::registered::{Registered, output_cap, registered_value};
use crate::report::{FailureDetail, HostOutcome, HostReport, RollbackOutcome, StepStatus};
use crate::run::RunContext;
use crate::shutdown::StopListener;
use crate::transports::host_target;

/// Lines of output kept for a failed step in the report and the summary.
pub const OUTPUT_LINES: usize = 10;

/// What happened on one host: the state a rollback needs, and its report.
pub(crate) struct HostRun {
    pub host: String,
    pub conn: Option<Arc<dyn Connection>>,
    /// The connection was closed once the host's wave was decided (see
    /// [`HostRun::release_connection`]); an undo reconnects.
    pub released: bool,
    pub values: RuntimeValues,
    /// Steps that ran (succeeded, failed, timed out or unknown), in execution order.
    pub ran: Vec<HostStep>,
    pub outcome: HostOutcome,
    pub rollback: Option<RollbackOutcome>,
    pub failure: Option<FailureDetail>,
    pub duration: Duration,
    /// A reboot step a resume found in flight and saw through (`crate::reboot`): done.
    pub resumed_reboot: Option<String>,
    /// The host passed its backup gate (`crate::backup`) in this host run.
    pub backed_up: bool,
    /// The host-side lease this host run holds, kept alive while it does (`crate::host_lease`).
    pub lease: Option<crate::host_lease::LeaseHold>,
    /// How a step's confirm left the host when a step status cannot say it (`reverted` by the
    /// host's timer, or `unreachable` after it): taken by [`run_steps`] as the host's outcome.
    pub settled_outcome: Option<HostOutcome>,
    /// The steps done before a resume are in `ran` already (`crate::resume::note_done_steps`).
    pub done_steps_noted: bool,
}

impl HostRun {
    pub fn new(host: &str, values: RuntimeValues) -> Self {
        HostRun {
            host: host.to_string(),
            conn: None,
            released: false,
            values,
            ran: Vec::new(),
            outcome: HostOutcome::NotStarted,
            rollback: None,
            failure: None,
            duration: Duration::ZERO,
            resumed_reboot: None,
            backed_up: false,
            lease: None,
            settled_outcome: None,
            done_steps_noted: false,
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

    /// Closes the host's connection (and its runner) once its wave is decided: a large fleet
    /// then holds only the connections of the wave in flight. A later rollback of the wave
    /// (`rollback_scope: run`) reconnects for the undo (`crate::rollback`).
    pub fn release_connection(&mut self) {
        if self.conn.take().is_some() {
            self.released = true;
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
        if self.resumed_reboot.as_deref() == Some(step.id.as_str()) {
            self.ran.push(step.clone());
            return StepStatus::Ok;
        }
        if let Some(crate::resume::PriorStep::Done(done)) = ctx.resume.step(&self.host, &step.id) {
            return self.replay(ctx, step, spec, done);
        }
        let timeout = spec.timeout_ms.map(Duration::from_millis);
        let become_user = match ctx.become_for(spec, &self.host) {
            Ok(b) => b,
            Err(why) => return self.not_sent(ctx, step, 0, why.to_string()),
        };
        if let Some(guard) = &step.skip_if {
            match self.exec(&conn, guard, timeout, &become_user, stop).await {
                Ran::Done(out) if out.status.success() => {
                    crate::resume::skipped(ctx, &self.host, &step.id, out.duration).await;
                    return StepStatus::Skipped;
                }
                Ran::Done(_) => {}
                other => {
                    let result = self.result_of(ctx, &step.id, 0, &other, Duration::ZERO, None);
                    ctx.events.emit(Fact::StepResult(result.clone()));
                    return self.failed_with(step, &result);
                }
            }
        }
        // The backup gate: before the first step that may change the host (a read-only
        // `check: true` step may run before it, as guards do).
        if !spec.check
            && let Err(status) = crate::backup::ensure_backed_up(self, ctx, stop).await
        {
            return status;
        }
        self.ran.push(step.clone());
        if let Some(reboot) = &spec.reboot {
            return crate::reboot::run_reboot(self, ctx, step, reboot, &become_user, stop).await;
        }
        if let Some(confirm) = &spec.confirm {
            let order = crate::confirm::ConfirmOrder {
                step,
                spec,
                confirm,
                conn: &conn,
                become_user: &become_user,
            };
            return crate::confirm::run_confirmed(self, ctx, order, stop).await;
        }
        let sending = Sending {
            conn: &conn,
            timeout,
            become_user: &become_user,
        };
        self.run_attempts(ctx, step, spec, sending, stop).await
    }

    /// Runs a step's attempts (its guard passed): intent, command, registered value, result,
    /// retries. Returns its final status.
    pub(crate) async fn run_attempts(
        &mut self,
        ctx: &RunContext,
        step: &HostStep,
        spec: &StepSpec,
        sending: Sending<'_>,
        stop: &mut StopListener,
    ) -> StepStatus {
        let Sending {
            conn,
            timeout,
            become_user,
        } = sending;
        let mut attempt = ctx.resume.first_attempt(&self.host, &step.id);
        loop {
            let command = shown_command(ctx, &step.run, &self.values);
            let intent = StepIntent {
                host: self.host.clone(),
                step: step.id.clone(),
                command,
                attempt,
                boot_id: None,
            };
            // The intent is durable before the command is sent; unrecorded, it is not sent.
            if let Err(why) = ctx.record(Fact::StepIntent(intent)).await {
                let why = format!("not started: the journal failed: {why}");
                return self.not_sent(ctx, step, attempt, why);
            }
            let started = Instant::now();
            let cap = output_cap(spec);
            let ran = self
                .exec_capped(conn, &step.run, timeout, become_user, cap, stop)
                .await;
            // Registered (and tainted, when it holds a secret) before the result is built, so
            // the result's output is masked with it.
            let registered = match (&ran, &spec.register) {
                (Ran::Done(out), Some(name)) => {
                    Some(registered_value(ctx, out, name, spec.register_limit()))
                }
                _ => None,
            };
            let mut result =
                self.result_of(ctx, &step.id, attempt, &ran, started.elapsed(), Some(conn));
            if let (Some(registered), Some(name)) = (registered, &spec.register)
                && result.status == StepStatus::Ok
            {
                match registered {
                    Ok(Registered { value, secret }) => self.values.register(name, value, secret),
                    Err(over) => {
                        result.status = StepStatus::Failed;
                        result.detail = over;
                    }
                }
            }
            // The result is durable before this host's next step (or retry) starts.
            ctx.note(Fact::StepResult(result.clone())).await;
            match (&ran, result.status) {
                (_, StepStatus::Ok) => return StepStatus::Ok,
                (Ran::Done(_), _) if attempt <= spec.retries && !stop.hard_requested() => {
                    ctx.events.emit(Fact::StepRetrying(StepRetrying {
                        host: self.host.clone(),
                        step: step.id.clone(),
                        next_attempt: attempt + 1,
                        delay_ms: spec.retry_delay_ms,
                    }));
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(spec.retry_delay_ms)) => {}
                        _ = stop.hard() => {}
                    }
                    attempt += 1;
                }
                _ => return self.failed_with(step, &result),
            }
        }
    }

    /// How one command ended on this host, as the fact the journal and the events carry.
    /// `conn` is the connection it ran on, when it reached one.
    pub(crate) fn result_of(
        &self,
        ctx: &RunContext,
        step: &str,
        attempt: u32,
        ran: &Ran,
        elapsed: Duration,
        conn: Option<&Arc<dyn Connection>>,
    ) -> StepResult {
        let mut result = StepResult {
            host: self.host.clone(),
            step: step.to_string(),
            attempt,
            status: StepStatus::Failed,
            exit_code: None,
            detail: String::new(),
            duration_ms: millis(elapsed),
            stdout: Capture::default(),
            stderr: Capture::default(),
            host_key_fingerprint: conn.and_then(|c| c.host_key_fingerprint()),
        };
        match ran {
            Ran::Done(out) => {
                result.status = match out.status {
                    ExitStatus::TimedOut => StepStatus::TimedOut,
                    ExitStatus::Code(0) => StepStatus::Ok,
                    _ => StepStatus::Failed,
                };
                if let ExitStatus::Code(code) = out.status {
                    result.exit_code = Some(code);
                }
                result.detail = out.status.to_string();
                result.stdout = captured(ctx, &out.stdout);
                result.stderr = captured(ctx, &out.stderr);
            }
            Ran::Transport(e) => {
                if matches!(e, TransportError::ConnectionLost { .. }) {
                    result.status = StepStatus::Unknown;
                }
                result.detail = ctx.secrets.redact(&e.to_string());
            }
            Ran::Abandoned => {
                result.status = StepStatus::Unknown;
                result.detail =
                    "abandoned by a second Ctrl-C; its outcome on the host is unknown".into();
            }
            Ran::Unresolved(why) => result.detail = ctx.secrets.redact(why),
        }
        result
    }

    /// A step that could not be sent (no become password, the journal failed): shown, not
    /// recorded (no intent was), and the host fails.
    pub(crate) fn not_sent(
        &mut self,
        ctx: &RunContext,
        step: &HostStep,
        attempt: u32,
        why: String,
    ) -> StepStatus {
        let ran = Ran::Unresolved(why);
        let result = self.result_of(ctx, &step.id, attempt, &ran, Duration::ZERO, None);
        ctx.events.emit(Fact::StepResult(result.clone()));
        self.failed_with(step, &result)
    }

    /// Ends the host's steps on `result`: keeps what failed for the report.
    pub(crate) fn failed_with(&mut self, step: &HostStep, result: &StepResult) -> StepStatus {
        self.failure = Some(FailureDetail {
            what: step.id.clone(),
            detail: result.detail.clone(),
            output: result.first_lines(OUTPUT_LINES),
        });
        result.status
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
        let cap = ExecRequest::DEFAULT_OUTPUT_CAP;
        self.exec_capped(conn, command, timeout, become_user, cap, stop)
            .await
    }

    /// As [`HostRun::exec`], keeping up to `output_cap` bytes of each output stream.
    pub async fn exec_capped(
        &self,
        conn: &Arc<dyn Connection>,
        command: &RenderedCommand,
        timeout: Option<Duration>,
        become_user: &Option<Become>,
        output_cap: usize,
        stop: &mut StopListener,
    ) -> Ran {
        let resolved = match command.resolve(&self.values) {
            Ok(r) => r,
            Err(e) => return Ran::Unresolved(e.to_string()),
        };
        let mut request = ExecRequest::new(resolved.text);
        request.secrets = resolved
            .secrets
            .into_iter()
            .map(|b| SecretVar {
                name: b.variable,
                value: b.value,
            })
            .collect();
        request.output_cap = output_cap;
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

/// How a step's commands are sent: on which connection, with which timeout, as whom.
pub(crate) struct Sending<'a> {
    pub conn: &'a Arc<dyn Connection>,
    pub timeout: Option<Duration>,
    pub become_user: &'a Option<Become>,
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

/// The first lines of stderr, then of stdout, with secrets scrubbed. Each stream is scrubbed
/// whole before it is cut into lines: a secret spanning lines (a PEM key) is found whole.
pub(crate) fn first_lines(ctx: &RunContext, out: &ExecOutcome) -> Vec<String> {
    let text = format!(
        "{}{}",
        captured(ctx, &out.stderr).text(),
        captured(ctx, &out.stdout).text()
    );
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .take(OUTPUT_LINES)
        .map(str::to_string)
        .collect()
}

/// A command as events and records show it: its holes masked, and a secret value written in
/// the plan's own text masked too (the journal's redactor would mask it in the record anyway:
/// the event and the record stay one value).
pub(crate) fn shown_command(
    ctx: &RunContext,
    command: &RenderedCommand,
    values: &RuntimeValues,
) -> String {
    match command.resolve(values) {
        Ok(r) => ctx.secrets.redact(&r.redacted),
        Err(_) => ctx.secrets.redact(&command.to_string()),
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs the whole host `name` of the artifact: connect, steps, health checks. Never panics on
/// host data; the outcome says how it ended (a host the artifact lacks is not started).
pub(crate) async fn run_host(
    ctx: Arc<RunContext>,
    wave: String,
    name: String,
    values: RuntimeValues,
) -> HostRun {
    let artifact = Arc::clone(&ctx.artifact);
    let Some(plan) = artifact.host(&name) else {
        return HostRun::new(&name, values);
    };
    let mut stop = ctx.shutdown.subscribe();
    let mut run = HostRun::new(&plan.name, values);
    let started = Instant::now();
    ctx.events.emit(Fact::HostStarted(HostStarted {
        wave: wave.clone(),
        host: plan.name.clone(),
        stage: ctx.stage.clone(),
    }));
    run.outcome = HostOutcome::Ok;
    // A reboot a crash interrupted is seen through first: the host may still be down.
    crate::reboot::resume_in_flight(&mut run, &ctx, plan, &mut stop).await;
    // So is a confirm a crash left armed: the host may have reverted meanwhile.
    crate::confirm::resume_in_flight(&mut run, &ctx, plan, &mut stop).await;
    if run.conn.is_none() && run.outcome == HostOutcome::Ok {
        run.connect(&ctx, plan, &mut stop).await;
    }
    if run.conn.is_some() && run.outcome == HostOutcome::Ok {
        crate::host_lease::take(&mut run, &ctx, plan).await;
    }
    if run.conn.is_some() && run.outcome == HostOutcome::Ok {
        run.outcome = run_steps(&ctx, &mut run, plan, &mut stop).await;
    } else if !run.done_steps_noted {
        // (A reboot or a confirm a resume saw fail has noted them already.)
        crate::resume::note_done_steps(&ctx, &mut run, plan);
    }
    let health = match run.conn.clone() {
        Some(conn) if run.outcome == HostOutcome::Ok => match ctx.resume.recorded_health(plan) {
            Some(verdict) => verdict,
            None => health::check_host(&ctx, &run, &conn, plan, &mut stop).await,
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
    crate::host_lease::release(&mut run, &ctx, plan).await;
    run.duration = started.elapsed();
    ctx.note(Fact::HostFinished(HostFinished {
        wave,
        host: plan.name.clone(),
        outcome: run.outcome,
        duration_ms: millis(run.duration),
        error: run.failure.as_ref().map(FailureDetail::summary),
        stage: ctx.stage.clone(),
    }))
    .await;
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
            StepStatus::Failed | StepStatus::TimedOut => {
                return run.settled_outcome.take().unwrap_or(HostOutcome::Failed);
            }
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
        register_limit: None,
        idempotent: false,
        check: false,
        stage: None,
        reboot: None,
        confirm: None,
    }
}

/// A captured stream as facts carry it, with secrets scrubbed (`bytes` and `sha256` describe the
/// stream as received).
pub(crate) fn captured(ctx: &RunContext, out: &sluice_ssh::CapturedOutput) -> Capture {
    ctx.secrets.redact_capture(&Capture {
        head: String::from_utf8_lossy(&out.head).into_owned(),
        tail: String::from_utf8_lossy(&out.tail).into_owned(),
        bytes: out.total_bytes,
        sha256: out.sha256.clone(),
        truncated: out.truncated(),
    })
}
