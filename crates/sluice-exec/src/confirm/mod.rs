//! Confirm-or-revert: a step with `confirm:` runs under a dead man's switch on its host.
//!
//! 1. **Arm.** Before the step's intent, on the step's connection and as the step's user
//!    (`become` applies), sluice writes the rendered undo to a private directory on the host
//!    (on the command's stdin, never in argv) and starts a timer detached from the SSH session:
//!    a transient `systemd-run --on-active` unit where systemd is PID 1 and accepts it, else a
//!    `setsid nohup sh` that sleeps (a session of its own: killing sshd, the session or the
//!    runner's process group leaves it running). `confirm_armed` is recorded. A timer that
//!    cannot be armed, or recorded, means the step is not sent.
//! 2. **Step.** The step runs as usual (its timeout cut to what is left of the window).
//! 3. **Settle.** Whatever the step's status, sluice opens a *new* connection (never the
//!    step's), with backoff, until the deadline (`within` after arming), and disarms: `mv armed
//!    disarmed` on the host, the commit point the timer's own `mv armed firing` races (one rename
//!    wins, so exactly one of confirmed and reverted happens; script.rs). A step that succeeded
//!    is then `confirmed`; one that did not is `disarmed` and the failure policy decides about
//!    its undo (a rollback runs it; `action: halt` keeps the host as it is), as for any failed
//!    step.
//! 4. **Revert.** When the deadline passes without a disarm, sluice stops trying to confirm and
//!    waits, up to `revert_timeout`, for the host to answer again and show the result the
//!    timer left: `reverted` with the undo's exit code and output (the host ends `reverted`; a
//!    step whose undo succeeded is no longer one to undo), or `unconfirmed` when the host never
//!    answered (it ends `unreachable`). A timer still armed well after the deadline did not
//!    fire (the host rebooted, say): sluice disarms it and the host fails.
//!
//! The directory is removed once the outcome is on record, so the undo text (and the secret
//! values it holds) leaves the host's disk.

mod resume;
mod script;

pub(crate) use resume::resume_in_flight;

use std::sync::Arc;
use std::time::Duration;

use sluice_model::{
    Capture, ConfirmArmed, ConfirmOutcome, ConfirmResult, ConfirmTimer, Fact, HostOutcome,
    StepStatus,
};
use sluice_plan::confirm::{CONFIRM_DIR_VAR, ConfirmSpec};
use sluice_plan::{HostPlan, HostStep, StepSpec};
use sluice_ssh::{Become, Connection, ExecRequest, Transport};
use tokio::time::Instant;

use crate::host::{HostRun, Sending, captured, millis};
use crate::report::FailureDetail;
use crate::run::RunContext;
use crate::shutdown::StopListener;
use crate::transports::host_target;

use script::HostState;

/// The first wait before connecting again, doubled after every attempt up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often a host whose undo is running is asked again for its result.
const POLL: Duration = Duration::from_millis(500);
/// The least time left in the window for the step to be sent at all.
const MIN_STEP_TIME: Duration = Duration::from_secs(1);
/// How long each script on the host may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after the deadline a timer still `armed` is given to fire before sluice concludes
/// it never will (the host's timer starts a little after sluice's clock, and counts whole
/// seconds).
const FIRE_GRACE: Duration = Duration::from_secs(15);

/// A step with `confirm:` to run on a host.
pub(crate) struct ConfirmOrder<'a> {
    pub step: &'a HostStep,
    pub spec: &'a StepSpec,
    pub confirm: &'a ConfirmSpec,
    /// The step's connection (the timer is armed on it; never used to confirm).
    pub conn: &'a Arc<dyn Connection>,
    pub become_user: &'a Option<Become>,
}

/// A timer armed on the host.
struct Armed {
    unit: String,
    /// `sluice_confirm_dir`, when the inventory sets it.
    base: Option<String>,
    armed_at: Instant,
    deadline: Instant,
    within: Duration,
    /// How long after the deadline sluice waits for the host to show its revert.
    revert_timeout: Duration,
}

/// How a confirm was settled: the fact's outcome and detail, and what the host becomes.
struct Settled {
    outcome: ConfirmOutcome,
    detail: String,
    undo_exit_code: Option<i32>,
    undo_output: Option<Capture>,
    /// The connection it was settled on: the host's from now on (it proved it works).
    conn: Option<Arc<dyn Connection>>,
}

/// Arms the timer, runs the step, settles the timer. The step is already in `run.ran`.
pub(crate) async fn run_confirmed(
    run: &mut HostRun,
    ctx: &RunContext,
    order: ConfirmOrder<'_>,
    stop: &mut StopListener,
) -> StepStatus {
    let step = order.step;
    let armed = match arm(run, ctx, &order, stop).await {
        Ok(armed) => armed,
        Err(why) => {
            // Nothing ran: nothing to undo.
            run.ran.pop();
            let why = format!("not started: the confirm timer could not be armed: {why}");
            return run.not_sent(ctx, step, 1, why);
        }
    };
    let left = armed.deadline.saturating_duration_since(Instant::now());
    if left < MIN_STEP_TIME {
        // Arming took (nearly) the whole window: the step is not sent, and its timer is
        // disarmed like after any step that did not succeed.
        run.ran.pop();
        let why = "not started: arming the confirm timer took the whole window".to_string();
        let status = run.not_sent(ctx, step, 1, why);
        if let Some(settled) = settle(run, ctx, order.become_user, &armed, status, stop).await {
            return finish(run, ctx, &order, &armed, status, settled).await;
        }
        return status;
    }
    let timeout = Some(
        order
            .spec
            .timeout_ms
            .map_or(left, |ms| Duration::from_millis(ms).min(left)),
    );
    let sending = Sending {
        conn: order.conn,
        timeout,
        become_user: order.become_user,
    };
    let status = run.run_attempts(ctx, step, order.spec, sending, stop).await;
    let Some(settled) = settle(run, ctx, order.become_user, &armed, status, stop).await else {
        run.failure = Some(FailureDetail {
            what: step.id.clone(),
            detail: "abandoned by a second Ctrl-C while confirming: the host's timer reverts the step unless it was disarmed".into(),
            output: Vec::new(),
        });
        return StepStatus::Unknown;
    };
    finish(run, ctx, &order, &armed, status, settled).await
}

/// Records how the confirm was settled, cleans the host's directory up, and says what the
/// step's status is for the host.
async fn finish(
    run: &mut HostRun,
    ctx: &RunContext,
    order: &ConfirmOrder<'_>,
    armed: &Armed,
    status: StepStatus,
    settled: Settled,
) -> StepStatus {
    let step = order.step;
    let fact = ConfirmResult {
        host: run.host.clone(),
        step: step.id.clone(),
        outcome: settled.outcome,
        detail: ctx.secrets.redact(&settled.detail),
        duration_ms: millis(armed.armed_at.elapsed()),
        undo_exit_code: settled.undo_exit_code,
        undo_output: settled.undo_output,
    };
    let detail = fact.detail.clone();
    ctx.note(Fact::ConfirmResult(fact)).await;
    if let Some(conn) = &settled.conn {
        // Only once the outcome is on record: a resume reads the directory otherwise.
        let clean = script::clean_up(armed.base.as_deref(), &armed.unit);
        let _ = run_script(conn, clean, order.become_user).await;
        run.conn = Some(conn.clone());
        run.released = false;
    }
    let fail = |run: &mut HostRun| {
        run.failure = Some(FailureDetail {
            what: step.id.clone(),
            detail: detail.clone(),
            output: Vec::new(),
        });
        StepStatus::Failed
    };
    match settled.outcome {
        ConfirmOutcome::Confirmed => status,
        // A failed step keeps the failure its result gave.
        ConfirmOutcome::Disarmed if !status.is_success() => status,
        ConfirmOutcome::Disarmed => fail(run),
        ConfirmOutcome::Reverted => {
            if settled.undo_exit_code == Some(0) {
                // The host undid it: a rollback must not undo it again. An undo that failed
                // stays to undo, so a rollback tries it once more.
                run.ran.retain(|s| s.id != step.id);
            }
            run.settled_outcome = Some(HostOutcome::Reverted);
            fail(run)
        }
        ConfirmOutcome::Unconfirmed => {
            run.release_connection();
            run.settled_outcome = Some(HostOutcome::Unreachable);
            fail(run)
        }
    }
}

/// Writes the undo and starts the timer on the step's connection; records `confirm_armed`.
async fn arm(
    run: &HostRun,
    ctx: &RunContext,
    order: &ConfirmOrder<'_>,
    stop: &mut StopListener,
) -> Result<Armed, String> {
    let step = order.step;
    let undo = step.undo.as_ref().ok_or("the step has no undo")?;
    let resolved = undo
        .resolve(&run.values)
        .map_err(|e| ctx.secrets.redact(&e.to_string()))?;
    let plan = ctx
        .artifact
        .host(&run.host)
        .ok_or("the host is not in the plan")?;
    let env: Vec<(String, String)> = plan
        .connection
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let secrets: Vec<(String, String)> = resolved
        .secrets
        .iter()
        .map(|b| (b.variable.clone(), b.value.clone()))
        .collect();
    if secrets.iter().any(|(_, v)| v.contains('\0')) {
        return Err("a secret value of the undo holds a NUL byte".into());
    }
    let base = confirm_base(plan);
    let unit = script::unit_name(ctx.events.run_id(), &run.host, &step.id);
    let within_secs = order.confirm.within_ms.div_ceil(1000);
    let armed_at = Instant::now();
    let mut request =
        ExecRequest::new(script::arm(base.as_deref(), &unit, within_secs)).timeout(SCRIPT_TIMEOUT);
    request.stdin = Some(script::undo_file(&env, &secrets, &resolved.text).into_bytes());
    request.become_user = order.become_user.clone();
    let out = tokio::select! {
        r = order.conn.exec(request) => r.map_err(|e| ctx.secrets.redact(&e.to_string()))?,
        _ = stop.hard() => return Err("abandoned by a second Ctrl-C".into()),
    };
    let stdout = String::from_utf8_lossy(&out.stdout.kept_bytes()).into_owned();
    let on = match (out.status.success(), script::parse_armed(&stdout)) {
        (true, Some(on)) => on,
        _ => {
            let stderr = String::from_utf8_lossy(&out.stderr.kept_bytes()).into_owned();
            let said = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            return Err(ctx.secrets.redact(&format!(
                "the arming command ended with {}: {said}",
                out.status
            )));
        }
    };
    let armed = Armed {
        unit: unit.clone(),
        base,
        armed_at,
        deadline: armed_at + Duration::from_millis(order.confirm.within_ms),
        within: Duration::from_millis(order.confirm.within_ms),
        revert_timeout: Duration::from_millis(order.confirm.revert_timeout_ms),
    };
    let fact = ConfirmArmed {
        host: run.host.clone(),
        step: step.id.clone(),
        within_ms: order.confirm.within_ms,
        timer: on.timer,
        unit: match on.timer {
            ConfirmTimer::Systemd => format!("{unit}.timer"),
            ConfirmTimer::Sleeper => unit,
        },
        dir: on.dir,
    };
    if let Err(why) = ctx.record(Fact::ConfirmArmed(fact)).await {
        // Unrecorded, the step is not sent, and nothing may revert it later.
        let disarm = script::settle(armed.base.as_deref(), &armed.unit, true);
        let _ = run_script(order.conn, disarm, order.become_user).await;
        let clean = script::clean_up(armed.base.as_deref(), &armed.unit);
        let _ = run_script(order.conn, clean, order.become_user).await;
        return Err(format!("the journal failed: {why}"));
    }
    Ok(armed)
}

/// The directory the host variable [`CONFIRM_DIR_VAR`] names, if any.
fn confirm_base(plan: &HostPlan) -> Option<String> {
    match plan.vars.get(CONFIRM_DIR_VAR).and_then(|v| v.as_str()) {
        Some(dir) if !dir.is_empty() => Some(dir.to_string()),
        _ => None,
    }
}

/// Runs a script on `conn` as the step's user; its stdout, or why not.
async fn run_script(
    conn: &Arc<dyn Connection>,
    text: String,
    become_user: &Option<Become>,
) -> Result<String, String> {
    let mut request = ExecRequest::new(text).timeout(SCRIPT_TIMEOUT);
    request.become_user = become_user.clone();
    let out = conn.exec(request).await.map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("the confirm script ended with {}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout.kept_bytes()).into_owned())
}

/// Where the settling stands after each attempt.
enum Seen {
    /// Settled.
    Done(Settled),
    /// The timer fired (or runs the undo): wait for its result on this connection.
    Fired(Arc<dyn Connection>),
    /// Nothing could be done this time: why.
    NotYet(String),
}

/// Disarms over new connections until the deadline, then waits for the revert. `None` on a
/// hard stop.
async fn settle(
    run: &HostRun,
    ctx: &RunContext,
    become_user: &Option<Become>,
    armed: &Armed,
    status: StepStatus,
    stop: &mut StopListener,
) -> Option<Settled> {
    let plan = ctx.artifact.host(&run.host)?.clone();
    let transport = ctx.transports.get(plan.connection.transport)?;
    let reach = Reach {
        ctx,
        transport: transport.as_ref(),
        plan: &plan,
        armed,
        become_user,
    };
    let mut backoff = BACKOFF_FIRST;
    let mut last = String::from("no attempt was made");
    let mut fired = None;
    // Settling starts at once: the first attempt needs no wait.
    let mut wake = Instant::now();
    while Instant::now() < armed.deadline {
        tokio::select! {
            _ = tokio::time::sleep_until(wake.min(armed.deadline)) => {}
            _ = stop.hard() => return None,
        }
        if Instant::now() >= armed.deadline {
            break;
        }
        match reach.disarm(status, armed.deadline).await {
            Seen::Done(settled) => return Some(settled),
            Seen::Fired(conn) => {
                fired = Some(conn);
                break;
            }
            Seen::NotYet(why) => last = why,
        }
        wake = Instant::now() + backoff;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    reach.await_revert(fired, last, stop).await
}

/// What settling a host's confirm needs to reach it.
struct Reach<'a> {
    ctx: &'a RunContext,
    transport: &'a dyn Transport,
    plan: &'a HostPlan,
    armed: &'a Armed,
    become_user: &'a Option<Become>,
}

impl Reach<'_> {
    /// A new connection, opened before `until`.
    async fn connect(&self, until: Instant) -> Result<Arc<dyn Connection>, String> {
        let target = host_target(self.plan);
        match tokio::time::timeout_at(until, self.transport.connect(&target)).await {
            Err(_) => Err("connecting did not finish before the deadline".into()),
            Ok(Err(e)) => Err(self.ctx.secrets.redact(&e.to_string())),
            Ok(Ok(conn)) => Ok(conn),
        }
    }

    /// Runs the settle script on `conn` (disarming or only looking) before `until`.
    async fn state(
        &self,
        conn: &Arc<dyn Connection>,
        disarm: bool,
        until: Instant,
    ) -> Result<HostState, String> {
        let text = script::settle(self.armed.base.as_deref(), &self.armed.unit, disarm);
        let out = tokio::time::timeout_at(until, run_script(conn, text, self.become_user))
            .await
            .map_err(|_| "the host did not answer before the deadline".to_string())??;
        script::parse_state(&out).ok_or_else(|| format!("unexpected answer: {}", out.trim()))
    }

    /// One attempt to confirm (or, after a failed step, only disarm) over a new connection.
    async fn disarm(&self, status: StepStatus, until: Instant) -> Seen {
        let conn = match self.connect(until).await {
            Ok(conn) => conn,
            Err(why) => return Seen::NotYet(why),
        };
        let took = show(self.armed.armed_at.elapsed());
        let settled = |outcome, detail: String| Settled {
            outcome,
            detail,
            undo_exit_code: None,
            undo_output: None,
            conn: Some(conn.clone()),
        };
        match self.state(&conn, true, until).await {
            Ok(HostState::Won) if status.is_success() => Seen::Done(settled(
                ConfirmOutcome::Confirmed,
                format!("confirmed over a new connection {took} after arming: the timer is disarmed"),
            )),
            Ok(HostState::Won) => Seen::Done(settled(
                ConfirmOutcome::Disarmed,
                format!("the step ended {status}: sluice disarmed the timer over a new connection {took} after arming; the failure policy decides about its undo"),
            )),
            Ok(HostState::Firing | HostState::Reverted(_)) => Seen::Fired(conn),
            Ok(HostState::Disarmed) => Seen::Done(settled(
                ConfirmOutcome::Disarmed,
                "the timer was found disarmed (an earlier attempt's answer was lost): not confirmed; the failure policy decides about the undo".into(),
            )),
            Ok(HostState::None) => Seen::Done(settled(
                ConfirmOutcome::Disarmed,
                "the confirm's directory is gone from the host: whether its timer fired is unknown; not confirmed".into(),
            )),
            Ok(HostState::Armed) => Seen::NotYet("the timer is still armed".into()),
            Err(why) => Seen::NotYet(why),
        }
    }

    /// After the deadline: waits up to `revert_timeout` for the host to answer and show what
    /// its timer did. `None` on a hard stop.
    async fn await_revert(
        &self,
        mut conn: Option<Arc<dyn Connection>>,
        mut last: String,
        stop: &mut StopListener,
    ) -> Option<Settled> {
        let within = show(self.armed.within);
        let revert_timeout = self.armed.revert_timeout;
        let end = self.armed.deadline + revert_timeout;
        let mut backoff = BACKOFF_FIRST;
        let mut still_armed = false;
        loop {
            if Instant::now() >= end {
                break;
            }
            let current = match conn.take() {
                Some(c) => c,
                None => match self.connect(end).await {
                    Ok(c) => c,
                    Err(why) => {
                        last = why;
                        if !pause(backoff, end, stop).await {
                            return None;
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                },
            };
            let late = Instant::now() >= self.armed.deadline + FIRE_GRACE;
            match self.state(&current, late, end).await {
                Ok(HostState::Reverted(code)) => {
                    return Some(self.reverted(current, code, &within).await);
                }
                Ok(HostState::Won) => {
                    return Some(Settled {
                        outcome: ConfirmOutcome::Disarmed,
                        detail: format!(
                            "not confirmed within {within}, and the host's timer had not fired {} after the deadline: sluice disarmed it; the failure policy decides about the undo",
                            show(FIRE_GRACE)
                        ),
                        undo_exit_code: None,
                        undo_output: None,
                        conn: Some(current),
                    });
                }
                Ok(HostState::Disarmed | HostState::None) => {
                    return Some(Settled {
                        outcome: ConfirmOutcome::Disarmed,
                        detail: format!(
                            "not confirmed within {within}, and the host shows no revert (its timer was disarmed or its directory is gone)"
                        ),
                        undo_exit_code: None,
                        undo_output: None,
                        conn: Some(current),
                    });
                }
                Ok(state) => {
                    still_armed = state == HostState::Armed;
                    conn = Some(current);
                    if !pause(POLL, end, stop).await {
                        return None;
                    }
                }
                Err(why) => {
                    last = why;
                    if !pause(backoff, end, stop).await {
                        return None;
                    }
                }
            }
        }
        // A `revert_timeout` shorter than the grace ends the wait with the timer still armed:
        // it must not fire after sluice has given up on the host, so it is disarmed now.
        if let (true, Some(current)) = (still_armed, conn) {
            let until = Instant::now() + SCRIPT_TIMEOUT;
            if let Ok(HostState::Won) = self.state(&current, true, until).await {
                return Some(Settled {
                    outcome: ConfirmOutcome::Disarmed,
                    detail: format!(
                        "not confirmed within {within}, and the host's timer had not fired {} after the deadline: sluice disarmed it; the failure policy decides about the undo",
                        show(revert_timeout)
                    ),
                    undo_exit_code: None,
                    undo_output: None,
                    conn: Some(current),
                });
            }
        }
        let detail = if still_armed {
            format!(
                "not confirmed within {within}, and the host's timer had not fired within {} after the deadline; last seen armed",
                show(revert_timeout)
            )
        } else {
            format!(
                "not confirmed within {within}, and the host did not answer within {} after the deadline: its timer should have run the undo; last attempt: {last}",
                show(revert_timeout)
            )
        };
        Some(Settled {
            outcome: ConfirmOutcome::Unconfirmed,
            detail,
            undo_exit_code: None,
            undo_output: None,
            conn: None,
        })
    }

    /// The host reverted: reads the undo's output for the record.
    async fn reverted(&self, conn: Arc<dyn Connection>, code: i32, within: &str) -> Settled {
        let text = script::undo_output(self.armed.base.as_deref(), &self.armed.unit);
        let mut request = ExecRequest::new(text).timeout(SCRIPT_TIMEOUT);
        request.become_user = self.become_user.clone();
        let output = conn
            .exec(request)
            .await
            .ok()
            .map(|out| captured(self.ctx, &out.stdout));
        let how = if code == 0 {
            "the undo succeeded".to_string()
        } else {
            format!("the undo FAILED with exit {code}: a rollback tries it again")
        };
        Settled {
            outcome: ConfirmOutcome::Reverted,
            detail: format!(
                "not confirmed within {within}: the host ran the undo by itself; {how}"
            ),
            undo_exit_code: Some(code),
            undo_output: output,
            conn: Some(conn),
        }
    }
}

/// Waits `wait` (not past `end`); false on a hard stop.
async fn pause(wait: Duration, end: Instant, stop: &mut StopListener) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until((Instant::now() + wait).min(end)) => true,
        _ = stop.hard() => false,
    }
}

/// A duration as the plan writes one, to the second: `2m`, `1m30s`, `4s`.
fn show(d: Duration) -> String {
    let secs = d.as_secs_f64().round() as u64;
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}
