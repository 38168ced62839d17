//! Recording approvals: of a plan (bound to its exact hash) and of a waiting run's gate, checked
//! against the run's state in the transaction that records them; written once over
//! [`StoreTx`] for both backends.

use sluice_model::{Approval, ApprovalScope, Fact};

use crate::error::AuditError;
use crate::record::{Entry, Record};
use crate::store::Appended;
use crate::store_tx::{StoreTx, WritableStore};

/// The gate before a wave of a run, as the store sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gate {
    pub run: String,
    /// The wave's name (a 0-based index given by the caller is resolved to it).
    pub wave: String,
    /// The hash of the plan the run runs: what a signed gate approval binds to.
    pub plan_hash: String,
    /// The run is waiting at this gate now (`approval_requested` with no answer yet).
    pub waiting: bool,
}

/// Records an approval of a plan artifact (scope `plan`), bound to its exact hash, and stores
/// the artifact (once per hash) in the same commit, under the plan's pseudo-run
/// ([`crate::record::plan_run_id`]).
pub(crate) fn approve_plan(
    store: &impl WritableStore,
    artifact: Option<serde_json::Value>,
    approval: Approval,
) -> Result<Appended, AuditError> {
    let ApprovalScope::Plan { plan_hash } = &approval.scope else {
        return Err(AuditError::NotAPlanApproval);
    };
    let plan_hash = plan_hash.clone();
    let run = crate::record::plan_run_id(&plan_hash);
    store.write(|tx| {
        if let Some(artifact) = artifact {
            tx.store_artifact(&run, &plan_hash, artifact)?;
        }
        tx.append(Entry::new(&run, Fact::Approval(approval)))
    })
}

/// The gate before `wave` (a name, or a 0-based index) of `run`, if it can still be answered:
/// the run exists and has not finished, the wave exists and has an approval gate, and the wave
/// has not started. Read in a write transaction, as an answer would be.
pub(crate) fn gate(store: &impl WritableStore, run: &str, wave: &str) -> Result<Gate, AuditError> {
    store.write(|tx| gate_in(tx, run, wave))
}

/// Answers the gate of a run with `approval` (scope `wave`: approved, or refused), after the
/// same checks as [`gate`], in the same transaction. Any controller on the same store may
/// answer; the executor polls [`crate::AuditLog::wave_approved`].
pub(crate) fn approve_wave(
    store: &impl WritableStore,
    run: &str,
    approval: Approval,
) -> Result<Appended, AuditError> {
    let ApprovalScope::Wave { wave } = &approval.scope else {
        return Err(AuditError::NotAGateApproval);
    };
    let wave = wave.clone();
    store.write(|tx| {
        gate_in(tx, run, &wave)?;
        tx.append(Entry::new(run, Fact::Approval(approval)))
    })
}

/// The checks of a gate, on what `tx` reads in the transaction that records the answer: the
/// run's summary, whether its plan gives the wave a gate, and how far the run got.
fn gate_in(tx: &mut impl StoreTx, run: &str, wave: &str) -> Result<Gate, AuditError> {
    let summary = tx
        .run_summary(run)?
        .cloned()
        .ok_or_else(|| AuditError::UnknownRun {
            run: run.to_string(),
        })?;
    if let sluice_model::RunState::Finished(status) = summary.status {
        return Err(AuditError::GateClosed {
            run: run.to_string(),
            wave: wave.to_string(),
            why: format!("the run has finished ({status})"),
        });
    }
    let name = if summary.waves.iter().any(|w| w == wave) {
        wave.to_string()
    } else if let Some(name) = wave
        .parse::<usize>()
        .ok()
        .and_then(|i| summary.waves.get(i))
    {
        name.clone()
    } else {
        return Err(AuditError::UnknownWave {
            run: run.to_string(),
            wave: wave.to_string(),
        });
    };
    let closed = |why: &str| AuditError::GateClosed {
        run: run.to_string(),
        wave: name.clone(),
        why: why.to_string(),
    };
    // A run without its stored plan (written by hand, or by an older sluice): the gate cannot
    // be checked, so it is not refused.
    let has_gate = tx
        .artifact(&summary.plan_hash)?
        .is_none_or(|artifact| artifact_gates_wave(&artifact, &name));
    if !has_gate {
        return Err(closed("that wave has no approval gate (`approval: true`)"));
    }
    // A gate may be answered again until its wave starts (a signed approval that does not count
    // is followed by one that does); the run reads the latest answer.
    let progress = WaveProgress::of(&tx.run_records(run)?, &name);
    if progress.started {
        return Err(closed("the wave has already started"));
    }
    Ok(Gate {
        run: run.to_string(),
        wave: name,
        plan_hash: summary.plan_hash,
        waiting: progress.waiting,
    })
}

/// Whether a stored plan artifact gives `wave` an approval gate.
fn artifact_gates_wave(artifact: &serde_json::Value, wave: &str) -> bool {
    artifact
        .get("waves")
        .and_then(|w| w.as_array())
        .and_then(|waves| {
            waves
                .iter()
                .find(|w| w.get("name").and_then(|n| n.as_str()) == Some(wave))
        })
        .and_then(|w| w.get("approval"))
        .and_then(|a| a.as_bool())
        .unwrap_or(false)
}

/// How far a run got with one wave, from its records.
struct WaveProgress {
    /// The wave has started.
    started: bool,
    /// The run asked for the wave's approval (it waits at the gate unless the wave started).
    waiting: bool,
}

impl WaveProgress {
    fn of(records: &[Record], wave: &str) -> WaveProgress {
        let mut progress = WaveProgress {
            started: false,
            waiting: false,
        };
        for record in records {
            match &record.fact {
                Fact::WaveStarted(w) if w.wave == wave => progress.started = true,
                Fact::ApprovalRequested(r) if r.wave == wave => progress.waiting = true,
                _ => {}
            }
        }
        progress
    }
}
