//! The run: checks before starting, `run_once` steps, then waves one after another with their
//! gates (approval, pause, window) and the failure policy between them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_plan::{FailureAction, PlanArtifact, RuntimeValues, StepSpec};
use sluice_ssh::Become;
use tokio::time::Instant;

use sluice_model::{
    ApprovalRequested, Decision, Fact, PauseFinished, PauseStarted, RunFinished, WaveDecided,
    WaveDecision, count,
};

use crate::approval::Approver;
use crate::event::Emitter;
use crate::host::{HostRun, millis};
use crate::journal::JournalError;
use crate::report::{RunReport, RunStatus, WaveStatus};
use crate::secrets::Secrets;
use crate::shutdown::{Shutdown, StopReason};
use crate::transports::Transports;
use crate::wave::{WaveRun, run_wave};
use crate::window::{WindowState, window_state};

mod failure_policy;
pub(crate) mod once;

/// What every task of a run shares.
pub(crate) struct RunContext {
    pub artifact: Arc<PlanArtifact>,
    pub transports: Transports,
    pub secrets: Secrets,
    pub events: Emitter,
    pub shutdown: Shutdown,
    pub journal: crate::journal::JournalHandle,
    pub resume: Arc<crate::resume::ResumeState>,
    /// The next wave's connections, opened while the current wave runs.
    pub preconnect: crate::preconnect::Preconnect,
    /// The stage this context runs (its `artifact` is then the stage's view); `None` for a
    /// plan without stages.
    pub stage: Option<String>,
    /// The backups done in this run, shared by its stages.
    pub backups: Arc<crate::backup::BackupLedger>,
    /// Who leases hosts on the hosts themselves; `None` unless the plan has `host_lease: true`.
    pub host_lease: Option<Arc<crate::host_lease::HostLeaseIdentity>>,
    /// Where hosts run: here, or on workers (`crate::dispatch`).
    pub dispatch: crate::dispatch::HostDispatch,
}

impl RunContext {
    /// Records `fact` and, once it is durable, emits it. An `Err` means it was not recorded and
    /// not emitted: the caller must not act on it (an intent whose command is then not sent).
    pub(crate) async fn record(&self, fact: Fact) -> Result<(), JournalError> {
        self.journal.record(&fact).await?;
        self.events.emit(fact);
        Ok(())
    }

    /// Records `fact` and emits it; a fact the journal cannot record is still emitted, followed
    /// by a `journal_failed` decision, and the run carries on (the next intent guards the next
    /// command anyway).
    pub(crate) async fn note(&self, fact: Fact) {
        let recorded = self.journal.record(&fact).await;
        let kind = fact.kind();
        self.events.emit(fact);
        if let Err(why) = recorded {
            self.events.decision(
                Decision::JournalFailed,
                None,
                format!("a {kind} fact was not recorded in the audit trail: {why}"),
            );
        }
    }

    /// The name of the `run_once` pseudo-wave: [`RUN_ONCE_WAVE`], or `STAGE/run-once` in a
    /// stage, so that each stage's is its own in the records and on resume.
    pub(crate) fn run_once_wave(&self) -> String {
        run_once_wave(self.stage.as_deref())
    }

    /// Records and emits a decision.
    pub(crate) async fn decide(&self, decision: Decision, wave: Option<&str>, reason: &str) {
        self.note(Emitter::decision_fact(decision, wave, reason))
            .await;
    }

    /// How commands of a step with `spec` run on `host`: as the login user, or through sudo
    /// (the step's `become`, or the host's own, Ansible's `ansible_become`; the step's
    /// `become_user` wins over the host's). A `become` command carries the plan's become
    /// password (the value of the secret it names) so the transport can answer sudo's prompt;
    /// it sends it only if sudo asks. The value reaches no event: it is one of the run's
    /// secrets, which every event and record is redacted of.
    pub(crate) fn become_for(
        &self,
        spec: &StepSpec,
        host: &str,
    ) -> Result<Option<Become>, crate::error::BecomePasswordMissing> {
        let host_become = self
            .artifact
            .host(host)
            .and_then(|h| h.connection.become_all.as_ref());
        if !spec.become_root && host_become.is_none() {
            return Ok(None);
        }
        let password =
            match &self.artifact.become_password {
                None => None,
                Some(name) => {
                    Some(self.secrets.values().get(name).cloned().ok_or_else(|| {
                        crate::error::BecomePasswordMissing { name: name.clone() }
                    })?)
                }
            };
        Ok(Some(Become {
            user: spec
                .become_user
                .clone()
                .or_else(|| host_become.and_then(|b| b.user.clone())),
            password,
        }))
    }
}

/// Knobs of one run that are not part of the plan.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Run even outside the maintenance window (recorded as a decision).
    pub ignore_window: bool,
    /// Awaited before each command is sent and after it ends (the audit trail).
    pub journal: crate::journal::JournalHandle,
    /// What the run did before its controller died (`sluice resume`); none for a fresh run.
    pub resume: Option<Arc<crate::resume::ResumeState>>,
    /// Do not open the next wave's SSH connections while a wave runs (see [`crate::preconnect`]).
    pub no_preconnect: bool,
    /// Who takes host-side leases, for a plan with `host_lease: true` (see
    /// [`crate::host_lease`]); without it no host-side lease is taken.
    pub host_lease: Option<crate::host_lease::HostLeaseIdentity>,
    /// Hand the hosts to workers instead of running them here (`sluice apply --workers`; see
    /// [`crate::dispatch`]).
    pub workers: Option<crate::dispatch::Workers>,
}

/// Runs one plan artifact. Build it, then call [`Executor::run`].
pub struct Executor {
    pub artifact: Arc<PlanArtifact>,
    pub transports: Transports,
    pub secrets: Secrets,
    pub shutdown: Shutdown,
    pub approver: Option<Arc<dyn Approver>>,
    pub options: RunOptions,
}

/// The name of the pseudo-wave that holds `run_once` steps in reports and rollbacks.
pub const RUN_ONCE_WAVE: &str = "run-once";

/// The name of the `run_once` pseudo-wave of `stage` (`STAGE/run-once`), or of a plan without
/// stages ([`RUN_ONCE_WAVE`]).
pub fn run_once_wave(stage: Option<&str>) -> String {
    match stage {
        Some(stage) => format!("{stage}/{RUN_ONCE_WAVE}"),
        None => RUN_ONCE_WAVE.to_string(),
    }
}

impl Executor {
    /// Runs the plan to the end. Host failures are outcomes, not errors: this always returns a
    /// report.
    pub async fn run(self, events: Emitter) -> RunReport {
        for form in self.secrets.masked_forms() {
            self.options.journal.treat_as_secret(&form);
        }
        let ctx = Arc::new(RunContext {
            artifact: self.artifact.clone(),
            transports: self.transports,
            secrets: self.secrets,
            events,
            shutdown: self.shutdown,
            journal: self.options.journal.clone(),
            resume: self.options.resume.clone().unwrap_or_default(),
            preconnect: crate::preconnect::Preconnect::new(!self.options.no_preconnect),
            stage: None,
            backups: Arc::default(),
            host_lease: self
                .options
                .host_lease
                .clone()
                .filter(|_| self.artifact.host_lease)
                .map(Arc::new),
            dispatch: match &self.options.workers {
                Some(workers) => crate::dispatch::HostDispatch::Remote(workers.0.clone()),
                None => crate::dispatch::HostDispatch::Local,
            },
        });
        let run = Run {
            ctx,
            approver: self.approver,
            options: self.options,
            started: Instant::now(),
            finished: Vec::new(),
            values: HashMap::new(),
            window_closes: None,
            window_timer: None,
        };
        run.execute().await
    }
}

/// Why a run does not start.
struct Refused {
    status: RunStatus,
    next_open: Option<jiff::Timestamp>,
}

pub(crate) struct Run {
    pub(crate) ctx: Arc<RunContext>,
    pub(crate) approver: Option<Arc<dyn Approver>>,
    pub(crate) options: RunOptions,
    pub(crate) started: Instant,
    /// Waves that ran, oldest first (the run_once pseudo-wave first when there is one).
    pub(crate) finished: Vec<WaveRun>,
    pub(crate) values: HashMap<String, RuntimeValues>,
    /// When the window closes, on the tokio clock.
    pub(crate) window_closes: Option<Instant>,
    /// The task that stops the run when the window closes; ended with the run.
    pub(crate) window_timer: Option<tokio::task::JoinHandle<()>>,
}

impl Run {
    async fn execute(mut self) -> RunReport {
        let run_id = self.run_id();
        if let Some(refused) = self.open_window().await {
            return self.finish(run_id, refused.status, refused.next_open);
        }
        let status = if self.ctx.artifact.stages.is_empty() {
            self.waves(&run_id).await
        } else {
            self.stages(&run_id).await
        };
        // Warm connections of a wave that will not run now are closed, never used.
        self.ctx.preconnect.clear();
        self.finish(run_id, status, None)
    }

    fn run_id(&self) -> String {
        // The emitter was created with the run id; every event carries it.
        self.ctx.events.run_id().to_string()
    }

    /// Checks the window at start and arms the timer that stops the run when it closes.
    /// Returns why the run must not start, if it must not.
    async fn open_window(&mut self) -> Option<Refused> {
        let window = self.ctx.artifact.window.clone()?;
        if self.options.ignore_window {
            self.ctx
                .decide(
                    Decision::WindowIgnored,
                    None,
                    "--ignore-window: the maintenance window is not enforced for this run",
                )
                .await;
            return None;
        }
        let now = jiff::Timestamp::now();
        match window_state(&window, now) {
            Err(e) => {
                self.ctx
                    .decide(Decision::OutsideWindow, None, &e.to_string())
                    .await;
                Some(Refused {
                    status: RunStatus::OutsideWindow,
                    next_open: None,
                })
            }
            Ok(WindowState::Closed { next_open }) => {
                let when = next_open.map_or("it does not open again".to_string(), |t| {
                    format!("it opens next at {t}")
                });
                let reason = format!("outside the maintenance window; nothing started; {when}");
                self.ctx
                    .decide(Decision::OutsideWindow, None, &reason)
                    .await;
                Some(Refused {
                    status: RunStatus::OutsideWindow,
                    next_open,
                })
            }
            Ok(WindowState::Open { closes_at }) => {
                let left = now.duration_until(closes_at).unsigned_abs();
                let deadline = Instant::now() + left;
                self.window_closes = Some(deadline);
                let ctx = self.ctx.clone();
                self.window_timer = Some(tokio::spawn(async move {
                    tokio::time::sleep_until(deadline).await;
                    ctx.decide(
                        Decision::WindowClosed,
                        None,
                        "the maintenance window closed: no new hosts start; in-flight steps finish",
                    )
                    .await;
                    ctx.shutdown.window_closed();
                }));
                None
            }
        }
    }

    pub(crate) async fn waves(&mut self, run_id: &str) -> RunStatus {
        let a = self.ctx.artifact.clone();
        if !a.run_once.is_empty() {
            let mut once = self.run_once().await;
            crate::resume::keep_verdict(&self.ctx, &mut once).await;
            let failed = once.status != WaveStatus::Ok;
            self.finished.push(once);
            if failed {
                return self.after_failure(self.finished.len() - 1).await;
            }
            self.decide(
                self.finished.len() - 1,
                WaveDecision::Continue,
                "the run goes on",
            )
            .await;
        }
        for (index, wave) in a.waves.iter().enumerate() {
            if let Some(status) = self.gate(run_id, index).await {
                return status;
            }
            self.ctx
                .preconnect
                .warm(&self.ctx.artifact, &self.ctx.transports, index + 1);
            let mut run = run_wave(&self.ctx, index, wave, &self.values).await;
            crate::resume::keep_verdict(&self.ctx, &mut run).await;
            let status = run.status;
            self.finished.push(run);
            let last = self.finished.len() - 1;
            match status {
                WaveStatus::Ok => {
                    self.decide(last, WaveDecision::Continue, "the run goes on")
                        .await
                }
                WaveStatus::Failed if a.failure.action == FailureAction::Continue => {
                    self.decide(
                        last,
                        WaveDecision::Continue,
                        "the wave failed; action: continue records it and goes on",
                    )
                    .await;
                }
                _ => return self.after_failure(self.finished.len() - 1).await,
            }
            // Decided: its hosts' connections are closed (a rollback_scope: run rollback
            // reconnects for the undo), so a large fleet holds only one wave's connections.
            self.finished[last]
                .hosts
                .iter_mut()
                .for_each(HostRun::release_connection);
        }
        // Every wave went through; failures it tolerated are the caveat the status carries (a
        // wave decided before a resume keeps that verdict, whatever its hosts look like now).
        let tolerated = self.finished.iter().any(|w| {
            w.status == WaveStatus::Failed
                || (self.ctx.resume.wave_verdict(&w.name).is_none()
                    && w.hosts.iter().any(|h| h.outcome.is_failure()))
        });
        if tolerated {
            RunStatus::Tolerated
        } else {
            RunStatus::Succeeded
        }
    }

    /// Before wave `index`: stop requests, pause after the previous wave, the window fit and the
    /// approval gate. Returns the run's final status when the wave must not start.
    async fn gate(&mut self, run_id: &str, index: usize) -> Option<RunStatus> {
        let a = self.ctx.artifact.clone();
        let wave = &a.waves[index];
        let mut stop = self.ctx.shutdown.subscribe();
        if crate::resume::wave_already_started(&self.ctx, &wave.name).await {
            return self.stopped_status();
        }
        if index > 0 {
            let previous = &a.waves[index - 1];
            if let Some(ms) = previous.pause_ms.filter(|ms| *ms > 0) {
                self.ctx
                    .note(Fact::PauseStarted(PauseStarted {
                        after_wave: previous.name.clone(),
                        duration_ms: ms,
                        stage: self.ctx.stage.clone(),
                    }))
                    .await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                    _ = stop.soft() => {}
                }
                self.ctx
                    .note(Fact::PauseFinished(PauseFinished {
                        after_wave: previous.name.clone(),
                        stage: self.ctx.stage.clone(),
                    }))
                    .await;
            }
        }
        if let Some(status) = self.stopped_status() {
            return Some(status);
        }
        if let Some(status) = self.window_fit(index).await {
            return Some(status);
        }
        if wave.approval {
            // Recorded before anyone is asked, so `sluice approve` sees the gate waiting.
            self.ctx
                .note(Fact::ApprovalRequested(ApprovalRequested {
                    wave: wave.name.clone(),
                    stage: self.ctx.stage.clone(),
                }))
                .await;
            let approval = match &self.approver {
                None => crate::approval::refusal(
                    &wave.name,
                    "sluice: no way to ask for approval in this run",
                ),
                Some(approver) => tokio::select! {
                    a = approver.approve(run_id, &wave.name) => a,
                    _ = stop.soft() => return self.stopped_status(),
                },
            };
            // The approver has recorded the answer (or it came from the record): only shown.
            let refused = approval.refused;
            self.ctx.events.emit(Fact::Approval(approval));
            if refused {
                return Some(RunStatus::ApprovalRefused);
            }
        }
        self.stopped_status()
    }

    fn stopped_status(&self) -> Option<RunStatus> {
        let stop = self.ctx.shutdown.state();
        match stop.soft {
            Some(StopReason::Interrupted) => Some(RunStatus::Aborted),
            Some(StopReason::WindowClosed) => Some(RunStatus::WindowClosed),
            Some(StopReason::StoreUnreachable) => Some(RunStatus::StoreUnreachable),
            Some(StopReason::OperatorNeeded) => Some(RunStatus::OperatorNeeded),
            None if stop.hard => Some(RunStatus::Aborted),
            None => None,
        }
    }

    /// Refuses to start wave `index` when the window closes before it is expected to end. The
    /// estimate is the mean host duration of the waves so far times the wave's rounds of
    /// `concurrency` hosts; the first wave has no estimate and always starts.
    async fn window_fit(&self, index: usize) -> Option<RunStatus> {
        let closes = self.window_closes?;
        let wave = &self.ctx.artifact.waves[index];
        let means: Vec<Duration> = self
            .finished
            .iter()
            .filter_map(WaveRun::mean_host_duration)
            .collect();
        let n = u32::try_from(means.len()).ok().filter(|n| *n > 0)?;
        let mean = means.iter().sum::<Duration>() / n;
        let rounds = wave.hosts.len().div_ceil(wave.concurrency.max(1));
        let expected = mean * u32::try_from(rounds).unwrap_or(u32::MAX);
        let left = closes.saturating_duration_since(Instant::now());
        if expected <= left {
            return None;
        }
        let hosts = count(wave.hosts.len());
        let decided = WaveDecided {
            wave: wave.name.clone(),
            index: Some(count(index)),
            status: WaveStatus::NotStarted,
            hosts,
            ok: 0,
            failed: 0,
            unreachable: 0,
            interrupted: 0,
            not_started: hosts,
            budget: crate::wave::budget_text(&self.ctx.artifact, wave),
            max_failed: count(wave.max_failed),
            decision: WaveDecision::NotStarted,
            reason: format!(
                "expected to take {}s, but the maintenance window closes in {}s: the wave does not start",
                expected.as_secs(),
                left.as_secs()
            ),
            duration_ms: 0,
            stage: self.ctx.stage.clone(),
        };
        self.ctx.note(Fact::WaveDecided(decided)).await;
        Some(RunStatus::WindowClosed)
    }

    fn finish(
        self,
        run_id: String,
        status: RunStatus,
        next_window: Option<jiff::Timestamp>,
    ) -> RunReport {
        if let Some(timer) = &self.window_timer {
            // A run that ended has no window to close: nothing may be recorded after its end.
            timer.abort();
        }
        let duration = self.started.elapsed();
        // Shown here; recorded by whoever owns the run's records (with its leases released in
        // the same commit), from the report.
        self.ctx.events.emit(Fact::RunFinished(RunFinished {
            status,
            duration_ms: millis(duration),
        }));
        let mut waves: Vec<_> = self.finished.iter().map(WaveRun::report).collect();
        let ran: Vec<String> = waves.iter().map(|w| w.name.clone()).collect();
        for wave in &self.ctx.artifact.waves {
            if !ran.contains(&wave.name) {
                waves.push(crate::report::WaveReport {
                    name: wave.name.clone(),
                    status: WaveStatus::NotStarted,
                    hosts: Vec::new(),
                    duration: Duration::ZERO,
                });
            }
        }
        RunReport {
            run_id,
            status,
            waves,
            duration,
            next_window,
        }
    }
}
