//! The `run_once` pseudo-wave: each `run_once` step once, in artifact order, on its host, before
//! the first wave (of the plan, or of a stage).
//!
//! The steps are taken a host at a time: a **segment** is a run of consecutive steps on one
//! host. In one process each host is connected once (when its first segment starts) and runs
//! its segments here. With workers (`crate::dispatch`), each segment is a task of its own
//! (`WorkerTask::Once`, keyed by the pseudo-wave and the host) that a worker runs with
//! [`connected`] and [`run_steps`], the code this process runs, and ends with the host's
//! `host_finished` ([`finished`]); so a host's `run_once` steps must then form one segment
//! ([`interleaved`] finds a plan where they do not, which `--workers` refuses). Either way the
//! first step that does not succeed ends the pseudo-wave, and its failure stops the run before
//! any wave starts.

use sluice_model::{Fact, HostFinished};
use sluice_plan::{PlanArtifact, RunOnceStep, RuntimeValues};
use tokio::time::Instant;

use super::{Run, RunContext};
use crate::dispatch::HostDispatch;
use crate::host::{HostRun, millis, step_spec};
use crate::report::{FailureDetail, HostOutcome, StepStatus, WaveStatus};
use crate::shutdown::StopListener;
use crate::wave::WaveRun;

impl Run {
    /// Runs the `run_once` steps, in order, each on its host: here, or a segment at a time on
    /// a worker.
    pub(crate) async fn run_once(&mut self) -> WaveRun {
        let started = Instant::now();
        let mut stop = self.ctx.shutdown.subscribe();
        let mut hosts: Vec<HostRun> = Vec::new();
        let mut status = WaveStatus::Ok;
        for segment in segments(&self.ctx.artifact) {
            let ended = match &self.ctx.dispatch {
                HostDispatch::Local => self.segment_here(&segment, &mut hosts, &mut stop).await,
                HostDispatch::Remote(remote) => {
                    let run = crate::dispatch::run_once(&self.ctx, remote, &segment[0].host).await;
                    let ended = match run.outcome {
                        HostOutcome::Ok => WaveStatus::Ok,
                        // Withdrawn before a worker claimed it: the run is stopping.
                        HostOutcome::NotStarted => WaveStatus::Interrupted,
                        _ => WaveStatus::Failed,
                    };
                    hosts.push(run);
                    ended
                }
            };
            if ended != WaveStatus::Ok {
                status = ended;
                break;
            }
        }
        for run in &hosts {
            self.values.insert(run.host.clone(), run.values.clone());
        }
        WaveRun {
            name: self.ctx.run_once_wave(),
            hosts,
            status,
            duration: started.elapsed(),
            concurrency: 1,
        }
    }

    /// Runs one segment in this process, on the host's connection (opened for its first
    /// segment). Failed when a step did not succeed or the host could not be reached.
    async fn segment_here(
        &self,
        segment: &[&RunOnceStep],
        hosts: &mut Vec<HostRun>,
        stop: &mut StopListener,
    ) -> WaveStatus {
        let once = segment[0];
        let position = match hosts.iter().position(|h| h.host == once.host) {
            Some(p) => p,
            None => {
                // A stage's run_once host starts with the values earlier stages passed on.
                let values = self.values.get(&once.host).cloned().unwrap_or_default();
                hosts.push(connected(&self.ctx, once, values, stop).await);
                hosts.len() - 1
            }
        };
        let run = &mut hosts[position];
        if run.conn.is_none() {
            self.ctx.note(finished(&self.ctx, run)).await;
            return WaveStatus::Failed;
        }
        run_steps(&self.ctx, run, segment, stop).await
    }
}

/// The segments of `artifact`'s `run_once` steps, in order (a step whose host the artifact
/// cannot reach is left out: `verify_artifact` refuses such an artifact).
pub(crate) fn segments(artifact: &PlanArtifact) -> Vec<Vec<&RunOnceStep>> {
    let mut out: Vec<Vec<&RunOnceStep>> = Vec::new();
    for once in &artifact.run_once {
        if once.connection.is_none() && artifact.host(&once.host).is_none() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last[0].host == once.host => last.push(once),
            _ => out.push(vec![once]),
        }
    }
    out
}

/// Two `run_once` steps of one host with a step on another host between them, in a plan or
/// any of its stages: (the host, its earlier step, the step between, its later step).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interleaved {
    pub host: String,
    pub first: String,
    pub between: String,
    pub then: String,
}

/// Finds the first place where a host's `run_once` steps of one pseudo-wave do not follow one
/// another (see the module documentation).
pub fn interleaved(artifact: &PlanArtifact) -> Option<Interleaved> {
    let views: Vec<PlanArtifact> = if artifact.stages.is_empty() {
        Vec::new()
    } else {
        artifact
            .stages
            .iter()
            .map(|s| artifact.stage_view(s))
            .collect()
    };
    let plans: Vec<&PlanArtifact> = if views.is_empty() {
        vec![artifact]
    } else {
        views.iter().collect()
    };
    plans.into_iter().find_map(|plan| {
        let segments = segments(plan);
        segments.iter().enumerate().find_map(|(i, segment)| {
            let again = segments[i + 1..]
                .iter()
                .position(|s| s[0].host == segment[0].host)?;
            Some(Interleaved {
                host: segment[0].host.clone(),
                first: segment[segment.len() - 1].step.id.clone(),
                between: segments[i + 1][0].step.id.clone(),
                then: segments[i + 1 + again][0].step.id.clone(),
            })
        })
    })
}

/// The host of `once`, connected for its `run_once` steps (or holding why it could not be),
/// starting with `values` and the run's secrets.
pub(crate) async fn connected(
    ctx: &RunContext,
    once: &RunOnceStep,
    mut values: RuntimeValues,
    stop: &mut StopListener,
) -> HostRun {
    values.secrets = ctx.secrets.values().clone();
    let mut run = HostRun::new(&once.host, values);
    run.outcome = HostOutcome::Ok;
    if let Some(plan) = once.host_plan(&ctx.artifact) {
        run.connect(ctx, &plan, stop).await;
    }
    run
}

/// Runs `steps`, `run_once` steps of `run`'s connected host, in order; the first that does not
/// succeed ends them (and the host's outcome says how). Failed when one did not succeed.
pub(crate) async fn run_steps(
    ctx: &RunContext,
    run: &mut HostRun,
    steps: &[&RunOnceStep],
    stop: &mut StopListener,
) -> WaveStatus {
    for once in steps {
        let spec = step_spec(ctx, &once.step.id);
        let step_started = Instant::now();
        let result = run.run_step(ctx, &once.step, &spec, stop).await;
        run.duration += step_started.elapsed();
        match result {
            StepStatus::Ok | StepStatus::Skipped => {}
            StepStatus::Unknown => {
                run.outcome = HostOutcome::Unknown;
                return WaveStatus::Failed;
            }
            StepStatus::Failed | StepStatus::TimedOut => {
                run.outcome = HostOutcome::Failed;
                return WaveStatus::Failed;
            }
        }
    }
    WaveStatus::Ok
}

/// The `host_finished` of `run` in the pseudo-wave: recorded in one process for a host that
/// could not be reached, and by a worker at the end of every `run_once` task.
pub(crate) fn finished(ctx: &RunContext, run: &HostRun) -> Fact {
    Fact::HostFinished(HostFinished {
        wave: ctx.run_once_wave(),
        host: run.host.clone(),
        outcome: run.outcome,
        duration_ms: millis(run.duration),
        error: run.failure.as_ref().map(FailureDetail::summary),
        stage: ctx.stage.clone(),
    })
}
