//! Check mode (`sluice apply --check`): what a plan would do on every targeted host, found by
//! running only what is read-only by contract.
//!
//! **The contract.** A check connects to every targeted host (`run_once` hosts first, then the
//! waves' hosts, at most the plan's largest wave `concurrency` at once) and, per host, walks its
//! steps in execution order. It sends exactly two kinds of command: `skip_if` guards, and steps
//! marked `check: true` (probes such as a version query, whose registered value then feeds
//! later guards). Nothing else runs: no other step, no undo, no health check, no gate, no
//! pause, and the maintenance window is not enforced. Each step gets a verdict
//! ([`CheckVerdict`]):
//!
//! 1. an earlier step would fail → `not_reached`;
//! 2. its guard needs a value that a step which does not run in check mode registers →
//!    `guard_unevaluated` naming that step (`depends_on`): it would run unless the guard says
//!    otherwise. This is where Ansible's check mode goes wrong (it runs later tasks against
//!    the results of tasks it skipped); sluice says what it cannot know instead;
//! 3. its guard exits 0 → `would_skip`; non-zero → the step would run;
//! 4. a `check: true` step that would run is run now (intent recorded first, like any step):
//!    exit 0 → `would_run` with its value registered; otherwise `would_fail` and the host's
//!    later steps are `not_reached`. A guard that cannot be run at all (connection lost, a
//!    missing secret) is `would_fail` too, as it would fail the step in a real run.
//!
//! **Stage values.** In a plan with stages, a check does not run stage by stage (it checks each
//! host once, with the steps of every stage it is in), but it keeps the order that matters for
//! `{{stages.STAGE.NAME}}`: the `run_once` hosts are checked first, one at a time in the
//! artifact's order (stage order), and the value a `check: true` `run_once` step registers is
//! passed on as `stages.STAGE.NAME` to every host checked after it, as a real run passes it to
//! the stages after STAGE. A guard that needs a stage value whose step does not run in check
//! mode (or failed, or is on a `run_once` host checked later) is `guard_unevaluated` naming
//! that step (`STAGE/ID`).
//!
//! A host that cannot be reached, or whose host key is refused, is reported with the
//! transport's reason (`host_checked`'s `connect_error`). The run ends `succeeded` when every
//! host was reached and nothing would fail, `failed` otherwise, `aborted` on Ctrl-C.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_model::{
    CheckVerdict, ConnectErrorKind, Fact, HostChecked, HostStarted, RunFinished, StepChecked,
    StepIntent,
};
use sluice_plan::{HostPlan, HostStep, ResolveError, RuntimeValues};
use sluice_ssh::Connection;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::event::Emitter;
use crate::host::{HostRun, Ran, millis, shown_command, step_spec};
use crate::registered::{output_cap, registered_value};
use crate::report::{HostOutcome, RunStatus, StepStatus};
use crate::run::{Executor, RUN_ONCE_WAVE, RunContext};
use crate::shutdown::StopListener;
use crate::transports::host_target;

/// What a check found.
#[derive(Clone, Debug)]
pub struct CheckReport {
    pub run_id: String,
    pub status: RunStatus,
    /// Every host checked, `run_once` hosts first, then in wave order.
    pub hosts: Vec<HostCheck>,
    pub duration: Duration,
}

/// One host's part of a check.
#[derive(Clone, Debug)]
pub struct HostCheck {
    pub fact: HostChecked,
    /// A verdict per step, in execution order (none for a host that was not reached).
    pub steps: Vec<StepChecked>,
}

impl Executor {
    /// Checks the plan on every targeted host (see the module doc). Host failures are
    /// outcomes: this always returns a report.
    pub async fn check(self, events: Emitter) -> CheckReport {
        for form in self.secrets.masked_forms() {
            self.options.journal.treat_as_secret(&form);
        }
        let started = Instant::now();
        let ctx = Arc::new(RunContext {
            artifact: self.artifact.clone(),
            transports: self.transports,
            secrets: self.secrets,
            events,
            shutdown: self.shutdown,
            journal: self.options.journal.clone(),
            resume: Arc::default(),
            preconnect: crate::preconnect::Preconnect::new(false),
            // A check looks at every host of every stage at once; nothing runs in stage order.
            stage: None,
            backups: Arc::default(),
            // A check changes nothing, so it leases no host on the host itself.
            host_lease: None,
            dispatch: crate::dispatch::HostDispatch::Local,
        });
        let (mut hosts, passed_on) = run_once_hosts(&ctx).await;
        let seeded: HashMap<String, RuntimeValues> = hosts
            .iter()
            .map(|(check, values)| {
                let values = with_stage_values(values.clone(), &passed_on);
                (check.fact.host.clone(), values)
            })
            .collect();
        hosts.extend(wave_hosts(&ctx, &seeded, &passed_on).await);
        let hosts: Vec<HostCheck> = hosts.into_iter().map(|(check, _)| check).collect();
        let stop = ctx.shutdown.state();
        let status = if stop.soft.is_some() || stop.hard {
            RunStatus::Aborted
        } else if hosts.iter().all(|h| h.fact.outcome == HostOutcome::Ok) {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        let duration = started.elapsed();
        ctx.events.emit(Fact::RunFinished(RunFinished {
            status,
            duration_ms: millis(duration),
        }));
        CheckReport {
            run_id: ctx.events.run_id().to_string(),
            status,
            hosts,
            duration,
        }
    }
}

/// The `run_once` steps, each on its host, in artifact order (one check per host, one host at
/// a time), and the stage values (`stages.STAGE.NAME`) their `check: true` steps registered,
/// each passed on to the hosts checked after it.
async fn run_once_hosts(ctx: &Arc<RunContext>) -> (Vec<(HostCheck, RuntimeValues)>, RuntimeValues) {
    let mut order: Vec<&str> = Vec::new();
    for once in &ctx.artifact.run_once {
        if !order.contains(&once.host.as_str()) {
            order.push(&once.host);
        }
    }
    let mut out = Vec::new();
    let mut passed_on = RuntimeValues::default();
    for host in order {
        let plan = ctx
            .artifact
            .run_once
            .iter()
            .find(|o| o.host == host)
            .and_then(|o| o.host_plan(&ctx.artifact));
        let Some(plan) = plan else {
            continue;
        };
        let steps: Vec<HostStep> = ctx
            .artifact
            .run_once
            .iter()
            .filter(|o| o.host == host)
            .map(|o| o.step.clone())
            .collect();
        let values = with_stage_values(fresh_values(ctx), &passed_on);
        let (check, values) = check_host(
            ctx.clone(),
            RUN_ONCE_WAVE.into(),
            plan,
            steps.clone(),
            values,
        )
        .await;
        pass_on(ctx, &steps, &values, &mut passed_on);
        out.push((check, values));
    }
    (out, passed_on)
}

/// Adds the values that `steps` (`run_once` steps of one host) registered to `passed_on` as
/// `stages.STAGE.NAME`, secret when the value was: what a real run passes on when STAGE ends.
/// Only a `check: true` step ran, so only its value can be there.
fn pass_on(
    ctx: &RunContext,
    steps: &[HostStep],
    values: &RuntimeValues,
    passed_on: &mut RuntimeValues,
) {
    for step in steps {
        let Some(spec) = ctx.artifact.step(&step.id) else {
            continue;
        };
        let (Some(stage), Some(name)) = (&spec.stage, &spec.register) else {
            continue;
        };
        if let Some(value) = values.registered.get(name) {
            let secret = values.secret_registered.contains(name);
            passed_on.register(&format!("stages.{stage}.{name}"), value.clone(), secret);
        }
    }
}

/// `values` with the stage values passed on so far.
fn with_stage_values(mut values: RuntimeValues, passed_on: &RuntimeValues) -> RuntimeValues {
    for (name, value) in &passed_on.registered {
        let secret = passed_on.secret_registered.contains(name);
        values.register(name, value.clone(), secret);
    }
    values
}

/// Every host of every wave, at most the largest wave `concurrency` at once, reported in wave
/// order.
async fn wave_hosts(
    ctx: &Arc<RunContext>,
    seeded: &HashMap<String, RuntimeValues>,
    passed_on: &RuntimeValues,
) -> Vec<(HostCheck, RuntimeValues)> {
    let limit = ctx
        .artifact
        .waves
        .iter()
        .map(|w| w.concurrency)
        .max()
        .unwrap_or(1)
        .max(1);
    let stop = ctx.shutdown.subscribe();
    let mut tasks = JoinSet::new();
    let mut done: Vec<(usize, (HostCheck, RuntimeValues))> = Vec::new();
    let mut position = 0;
    // A host in several stages is in several waves; it is checked once, with all its steps
    // (the artifact's host plan holds every stage's, in execution order).
    let mut seen = std::collections::HashSet::new();
    for wave in &ctx.artifact.waves {
        for host in &wave.hosts {
            if stopping(&stop) {
                break;
            }
            if !seen.insert(host.as_str()) {
                continue;
            }
            let Some(plan) = ctx.artifact.host(host) else {
                continue;
            };
            while tasks.len() >= limit {
                if let Some(Ok(finished)) = tasks.join_next().await {
                    done.push(finished);
                }
            }
            let values = seeded
                .get(host)
                .cloned()
                .unwrap_or_else(|| with_stage_values(fresh_values(ctx), passed_on));
            let (ctx, wave, plan) = (ctx.clone(), wave.name.clone(), plan.clone());
            let at = position;
            tasks.spawn(async move {
                let steps = plan.steps.clone();
                (at, check_host(ctx, wave, plan, steps, values).await)
            });
            position += 1;
        }
    }
    while let Some(finished) = tasks.join_next().await {
        if let Ok(finished) = finished {
            done.push(finished);
        }
    }
    done.sort_by_key(|(at, _)| *at);
    done.into_iter().map(|(_, host)| host).collect()
}

fn stopping(stop: &StopListener) -> bool {
    stop.soft_requested().is_some() || stop.hard_requested()
}

/// A host's run-time values before its first step: the secrets only.
fn fresh_values(ctx: &RunContext) -> RuntimeValues {
    RuntimeValues {
        secrets: ctx.secrets.values().clone(),
        ..RuntimeValues::default()
    }
}

/// Connects to one host and gives each of `steps` its verdict. Returns the host's check and
/// its run-time values after the check steps registered theirs.
async fn check_host(
    ctx: Arc<RunContext>,
    wave: String,
    plan: HostPlan,
    steps: Vec<HostStep>,
    values: RuntimeValues,
) -> (HostCheck, RuntimeValues) {
    let started = Instant::now();
    let mut stop = ctx.shutdown.subscribe();
    ctx.events.emit(Fact::HostStarted(HostStarted {
        wave: wave.clone(),
        host: plan.name.clone(),
        stage: None,
    }));
    let mut run = HostRun::new(&plan.name, values);
    let mut fact = HostChecked {
        wave,
        host: plan.name.clone(),
        outcome: HostOutcome::Ok,
        connect_error: None,
        error: None,
        duration_ms: 0,
    };
    let mut verdicts = Vec::new();
    match connect(&ctx, &plan).await {
        Err((kind, detail)) => {
            fact.outcome = if kind.is_some_and(ConnectErrorKind::is_unreachable) {
                HostOutcome::Unreachable
            } else {
                HostOutcome::Failed
            };
            fact.connect_error = kind;
            fact.error = Some(format!("connect: {detail}"));
        }
        Ok(conn) => {
            let mut failed_at: Option<String> = None;
            for step in &steps {
                if stopping(&stop) {
                    fact.outcome = HostOutcome::Interrupted;
                    fact.error = Some(format!("{}: not checked: the run is stopping", step.id));
                    break;
                }
                let verdict = match &failed_at {
                    Some(earlier) => StepChecked {
                        host: plan.name.clone(),
                        step: step.id.clone(),
                        verdict: CheckVerdict::NotReached,
                        detail: format!("step `{earlier}` would fail before it"),
                        depends_on: None,
                    },
                    None => check_step(&ctx, &mut run, &conn, step, &mut stop).await,
                };
                if verdict.verdict == CheckVerdict::WouldFail && failed_at.is_none() {
                    failed_at = Some(step.id.clone());
                    fact.outcome = HostOutcome::Failed;
                    fact.error = Some(format!("{}: {}", step.id, verdict.detail));
                }
                ctx.note(Fact::StepChecked(verdict.clone())).await;
                verdicts.push(verdict);
            }
        }
    }
    fact.duration_ms = millis(started.elapsed());
    ctx.note(Fact::HostChecked(fact.clone())).await;
    let check = HostCheck {
        fact,
        steps: verdicts,
    };
    (check, run.values)
}

/// Opens the host's connection, or says why not (the transport's kind of failure, redacted).
async fn connect(
    ctx: &RunContext,
    plan: &HostPlan,
) -> Result<Arc<dyn Connection>, (Option<ConnectErrorKind>, String)> {
    let Some(transport) = ctx.transports.get(plan.connection.transport) else {
        return Err((
            None,
            format!("no {:?} transport in this build", plan.connection.transport),
        ));
    };
    let target = host_target(plan);
    transport
        .connect(&target)
        .await
        .map_err(|e| (Some(e.kind()), ctx.secrets.redact(&e.to_string())))
}

/// The verdict of one step on a reached host: its guard, then (for a `check: true` step) the
/// step itself.
async fn check_step(
    ctx: &RunContext,
    run: &mut HostRun,
    conn: &Arc<dyn Connection>,
    step: &HostStep,
    stop: &mut StopListener,
) -> StepChecked {
    let spec = step_spec(ctx, &step.id);
    let mut verdict = StepChecked {
        host: run.host.clone(),
        step: step.id.clone(),
        verdict: CheckVerdict::WouldRun,
        detail: "no skip_if guard".into(),
        depends_on: None,
    };
    let become_user = match ctx.become_for(&spec, &run.host) {
        Ok(b) => b,
        Err(why) => {
            verdict.verdict = CheckVerdict::WouldFail;
            verdict.detail = why.to_string();
            return verdict;
        }
    };
    let timeout = spec.timeout_ms.map(Duration::from_millis);
    if let Some(guard) = &step.skip_if {
        match guard.resolve(&run.values) {
            Err(ResolveError::MissingRegistered { name, step: needs }) => {
                verdict.verdict = CheckVerdict::GuardUnevaluated;
                // A `check: true` step that left no value failed, or (a stage value) is on a
                // `run_once` host checked after this one.
                let why = match ctx.artifact.step(&needs) {
                    Some(spec) if spec.check => "which registered no value before this guard",
                    _ => "which does not run in check mode",
                };
                verdict.detail = format!(
                    "would run, guard cannot be evaluated: depends on step `{needs}` (its `{name}`), {why}"
                );
                verdict.depends_on = Some(needs);
            }
            Err(e) => {
                verdict.verdict = CheckVerdict::WouldFail;
                verdict.detail = ctx.secrets.redact(&format!("skip_if: {e}"));
                return verdict;
            }
            Ok(_) => match run.exec(conn, guard, timeout, &become_user, stop).await {
                Ran::Done(out) if out.status.success() => {
                    verdict.verdict = CheckVerdict::WouldSkip;
                    verdict.detail = format!("skip_if {}", out.status);
                    return verdict;
                }
                Ran::Done(out) => verdict.detail = format!("skip_if {}", out.status),
                other => {
                    let failed = run.result_of(ctx, &step.id, 0, &other, Duration::ZERO, None);
                    verdict.verdict = CheckVerdict::WouldFail;
                    verdict.detail = format!("skip_if: {}", failed.detail);
                    return verdict;
                }
            },
        }
    }
    if spec.check {
        let ran = run_check_step(ctx, run, conn, step, &spec, &become_user, stop).await;
        match (verdict.verdict, ran) {
            (CheckVerdict::GuardUnevaluated, Ok(detail) | Err(detail)) => {
                verdict.detail = format!("{}; its check command ran: {detail}", verdict.detail);
            }
            (_, Ok(detail)) => verdict.detail = format!("{}; check step {detail}", verdict.detail),
            (_, Err(detail)) => {
                verdict.verdict = CheckVerdict::WouldFail;
                verdict.detail = format!("check step {detail}");
            }
        }
    }
    verdict
}

/// Runs a `check: true` step once (no retries: a probe that fails says so), recording its
/// intent before and its result after, and registers its value. `Ok` with its detail when it
/// exited 0, `Err` with why not.
async fn run_check_step(
    ctx: &RunContext,
    run: &mut HostRun,
    conn: &Arc<dyn Connection>,
    step: &HostStep,
    spec: &sluice_plan::StepSpec,
    become_user: &Option<sluice_ssh::Become>,
    stop: &mut StopListener,
) -> Result<String, String> {
    let intent = StepIntent {
        host: run.host.clone(),
        step: step.id.clone(),
        command: shown_command(ctx, &step.run, &run.values),
        attempt: 1,
        boot_id: None,
    };
    if let Err(why) = ctx.record(Fact::StepIntent(intent)).await {
        return Err(format!("not started: the journal failed: {why}"));
    }
    let started = Instant::now();
    let timeout = spec.timeout_ms.map(Duration::from_millis);
    let ran = run
        .exec_capped(
            conn,
            &step.run,
            timeout,
            become_user,
            output_cap(spec),
            stop,
        )
        .await;
    let registered = match (&ran, &spec.register) {
        (Ran::Done(out), Some(name)) => {
            Some(registered_value(ctx, out, name, spec.register_limit()))
        }
        _ => None,
    };
    let mut result = run.result_of(ctx, &step.id, 1, &ran, started.elapsed(), Some(conn));
    if let (Some(registered), Some(name)) = (registered, &spec.register)
        && result.status == StepStatus::Ok
    {
        match registered {
            Ok(value) => run.values.register(name, value.value, value.secret),
            Err(over) => {
                result.status = StepStatus::Failed;
                result.detail = over;
            }
        }
    }
    ctx.note(Fact::StepResult(result.clone())).await;
    if result.status == StepStatus::Ok {
        Ok(result.detail)
    } else {
        Err(result.detail)
    }
}
