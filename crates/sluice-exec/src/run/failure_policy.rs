//! The failure policy after a wave of a run failed or was interrupted: abandon (second
//! Ctrl-C), halt, stop (`action: continue`) or roll back the failed scope (`rollback_scope`),
//! newest wave first, and the `wave_decided` fact that records the decision.

use std::sync::Arc;

use sluice_model::{Fact, WaveDecision};
use sluice_plan::{FailureAction, RollbackScope};

use super::{Run, RunContext};
use crate::report::{RollbackOutcome, RunStatus, WaveStatus};
use crate::rollback::roll_back;
use crate::wave::WaveRun;

impl Run {
    /// The wave at `failed` failed or was interrupted: apply the failure policy.
    pub(super) async fn after_failure(&mut self, failed: usize) -> RunStatus {
        let a = self.ctx.artifact.clone();
        let stop = self.ctx.shutdown.state();
        let base = self.stopped_status().unwrap_or(RunStatus::Failed);
        if stop.hard {
            self.decide(
                failed,
                WaveDecision::Abandon,
                "second Ctrl-C: in-flight steps are UNKNOWN and nothing is undone",
            )
            .await;
            return RunStatus::Aborted;
        }
        if stop.store_lost() {
            // Nothing can be recorded, so no undo may start (its intent would not be durable);
            // the run stays unfinished in the store for `sluice resume`.
            self.decide(
                failed,
                WaveDecision::Halt,
                "the audit store cannot be reached: no further step starts and nothing is undone; `sluice resume` carries the run on once the store is back",
            )
            .await;
            return RunStatus::StoreUnreachable;
        }
        if stop.operator_needed() {
            // No verdict is recorded for the wave: it is not decided yet. `sluice resume` then
            // carries it on once the operator chose for the unknown steps (the coordinator
            // recorded an `operator_needed` decision saying so), instead of running its failure
            // policy again.
            return RunStatus::OperatorNeeded;
        }
        match a.failure.action {
            FailureAction::Rollback => {}
            FailureAction::Halt => {
                self.decide(
                    failed,
                    WaveDecision::Halt,
                    "action: halt: nothing is undone; later waves do not start",
                )
                .await;
                return base;
            }
            FailureAction::Continue => {
                self.decide(
                    failed,
                    WaveDecision::Stop,
                    "the run is stopping; action: continue undoes nothing",
                )
                .await;
                return base;
            }
        }
        let scope = a.failure.rollback_scope;
        let targets: Vec<usize> = match scope {
            RollbackScope::Wave => vec![failed],
            // This run is one stage (or the whole plan): `run` undoes the earlier stages after
            // it, in the stage scheduler.
            RollbackScope::Stage | RollbackScope::Run => (0..=failed).rev().collect(),
        };
        let reason = match scope {
            RollbackScope::Wave => "rolling back the failed wave".to_string(),
            RollbackScope::Stage | RollbackScope::Run => format!(
                "rollback_scope: {}: rolling back {} wave(s), newest first",
                scope_word(scope),
                targets.len()
            ),
        };
        self.decide(failed, WaveDecision::Rollback, &reason).await;
        let mut any_failed = false;
        for index in targets {
            let wave = &mut self.finished[index];
            any_failed |= undo_wave(&self.ctx, wave).await;
        }
        match base {
            _ if any_failed => RunStatus::RollbackFailed,
            RunStatus::Failed => RunStatus::RolledBack,
            stopped => stopped,
        }
    }

    /// Records and announces the decision taken after wave `finished[at]`, with its budget
    /// arithmetic.
    pub(super) async fn decide(&self, at: usize, decision: WaveDecision, action: &str) {
        // `finished` holds the run_once pseudo-wave first when there is one, then the waves in
        // plan order, so a position maps back to a plan index.
        let offset = usize::from(!self.ctx.artifact.run_once.is_empty());
        let index = at.checked_sub(offset);
        let decided = self.finished[at].decided(&self.ctx, index, decision, action);
        self.ctx.note(Fact::WaveDecided(decided)).await;
    }

    /// Undoes every wave that ran, newest first (a finished stage, when a later stage failed
    /// under `rollback_scope: run`). True when an undo failed on some host.
    pub(crate) async fn undo_all(&mut self) -> bool {
        let mut any_failed = false;
        for wave in self.finished.iter_mut().rev() {
            any_failed |= undo_wave(&self.ctx, wave).await;
        }
        any_failed
    }
}

/// `rollback_scope`'s value as the plan spells it.
fn scope_word(scope: RollbackScope) -> &'static str {
    match scope {
        RollbackScope::Wave => "wave",
        RollbackScope::Stage => "stage",
        RollbackScope::Run => "run",
    }
}

/// Undoes what ran on the hosts of one finished wave, newest first, and sets its status. True
/// when an undo failed on some host.
async fn undo_wave(ctx: &Arc<RunContext>, wave: &mut WaveRun) -> bool {
    let hosts = std::mem::take(&mut wave.hosts);
    let hosts = roll_back(ctx, &wave.name, hosts, wave.concurrency).await;
    let failed = hosts
        .iter()
        .any(|h| h.rollback == Some(RollbackOutcome::RollbackFailed));
    wave.hosts = hosts;
    wave.status = if failed {
        WaveStatus::RollbackFailed
    } else {
        WaveStatus::RolledBack
    };
    failed
}
