//! Recording approvals: of a plan (bound to its exact hash) and of a waiting run's gate, checked
//! against the run's state in the transaction that records them.

use redb::ReadableTable;
use sluice_model::{Approval, ApprovalScope, Fact};

use crate::error::AuditError;
use crate::record::Entry;
use crate::store::{ARTIFACTS, Appended, RECORDS, RUN_INDEX, RedbStore, Tx, decode_record};

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

impl RedbStore {
    /// Records an approval of a plan artifact (scope `plan`), bound to its exact hash, and stores
    /// the artifact (once per hash) in the same commit, under the plan's pseudo-run
    /// ([`crate::record::plan_run_id`]).
    pub fn approve_plan(
        &self,
        artifact: Option<serde_json::Value>,
        approval: Approval,
    ) -> Result<Appended, AuditError> {
        let ApprovalScope::Plan { plan_hash } = &approval.scope else {
            return Err(AuditError::NotAPlanApproval);
        };
        let plan_hash = plan_hash.clone();
        let run = crate::record::plan_run_id(&plan_hash);
        self.write(|tx| {
            if let Some(artifact) = artifact {
                tx.store_artifact(&run, &plan_hash, artifact)?;
            }
            tx.append(Entry::new(&run, Fact::Approval(approval)))
        })
    }

    /// The gate before `wave` (a name, or a 0-based index) of `run`, if it can still be
    /// answered: the run exists and has not finished, the wave exists and has an approval gate,
    /// and the wave has not started.
    pub fn gate(&self, run: &str, wave: &str) -> Result<Gate, AuditError> {
        self.write(|tx| gate_in(tx, run, wave))
    }

    /// Answers the gate of a run with `approval` (scope `wave`: approved, or refused), after the
    /// same checks as [`RedbStore::gate`], in the same transaction. The executor polls
    /// [`RedbStore::wave_approved`].
    pub fn approve_wave(&self, run: &str, approval: Approval) -> Result<Appended, AuditError> {
        let ApprovalScope::Wave { wave } = &approval.scope else {
            return Err(AuditError::NotAGateApproval);
        };
        let wave = wave.clone();
        self.write(|tx| {
            gate_in(tx, run, &wave)?;
            tx.append(Entry::new(run, Fact::Approval(approval)))
        })
    }
}

fn gate_in(tx: &mut Tx<'_>, run: &str, wave: &str) -> Result<Gate, AuditError> {
    let summary = tx.run_summary(run)?.cloned();
    let tx: &Tx<'_> = tx;
    resolve_gate(
        summary,
        run,
        wave,
        |plan_hash, name| wave_has_gate(tx, plan_hash, name),
        |name| wave_progress(tx, run, name),
    )
}

/// The checks of a gate, on what a backend reads in the transaction that records the answer:
/// the run's summary, whether its plan gives the wave a gate, and (the wave has started, the
/// run waits at the gate now).
pub(crate) fn resolve_gate(
    summary: Option<crate::query::RunSummary>,
    run: &str,
    wave: &str,
    has_gate: impl FnOnce(&str, &str) -> Result<bool, AuditError>,
    progress: impl FnOnce(&str) -> Result<(bool, bool), AuditError>,
) -> Result<Gate, AuditError> {
    let summary = summary.ok_or_else(|| AuditError::UnknownRun {
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
    if !has_gate(&summary.plan_hash, &name)? {
        return Err(closed("that wave has no approval gate (`approval: true`)"));
    }
    // A gate may be answered again until its wave starts (a signed approval that does not count
    // is followed by one that does); the run reads the latest answer.
    let (started, waiting) = progress(&name)?;
    if started {
        return Err(closed("the wave has already started"));
    }
    Ok(Gate {
        run: run.to_string(),
        wave: name,
        plan_hash: summary.plan_hash,
        waiting,
    })
}

/// Whether a stored plan artifact gives `wave` an approval gate.
pub(crate) fn artifact_gates_wave(artifact: &serde_json::Value, wave: &str) -> bool {
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

/// (the wave has started, the run waits at its gate now), from the run's facts in order.
pub(crate) fn progress_of<'f>(facts: impl Iterator<Item = &'f Fact>, wave: &str) -> (bool, bool) {
    let (mut started, mut waiting) = (false, false);
    for fact in facts {
        match fact {
            Fact::WaveStarted(w) if w.wave == wave => started = true,
            Fact::ApprovalRequested(r) if r.wave == wave => waiting = true,
            _ => {}
        }
    }
    (started, waiting)
}

/// Whether the run's stored plan gives `wave` an approval gate.
fn wave_has_gate(tx: &Tx<'_>, plan_hash: &str, wave: &str) -> Result<bool, AuditError> {
    let log = tx.log;
    let seq = tx
        .table(ARTIFACTS)?
        .get(plan_hash)
        .map_err(|e| log.err(e))?
        .map(|v| v.value());
    let Some(seq) = seq else {
        // A run without its stored plan (written by hand, or by an older sluice): the gate
        // cannot be checked, so it is not refused.
        return Ok(true);
    };
    let records = tx.table(RECORDS)?;
    let bytes = records.get(seq).map_err(|e| log.err(e))?;
    let Some(bytes) = bytes else {
        return Ok(true);
    };
    let record = decode_record(log.path(), seq, bytes.value())?;
    let Fact::PlanArtifactStored(stored) = record.fact else {
        return Ok(true);
    };
    Ok(artifact_gates_wave(&stored.artifact, wave))
}

/// (the wave has started, the run waits at its gate now), from the run's records.
fn wave_progress(tx: &Tx<'_>, run: &str, wave: &str) -> Result<(bool, bool), AuditError> {
    let log = tx.log;
    let seqs: Vec<u64> = {
        let index = tx.table(RUN_INDEX)?;
        let range = index
            .range((run, 0)..=(run, u64::MAX))
            .map_err(|e| log.err(e))?;
        range
            .map(|item| item.map(|(k, _)| k.value().1).map_err(|e| log.err(e)))
            .collect::<Result<_, _>>()?
    };
    let records = tx.table(RECORDS)?;
    let mut facts = Vec::new();
    for seq in seqs {
        let Some(bytes) = records.get(seq).map_err(|e| log.err(e))? else {
            continue;
        };
        facts.push(decode_record(log.path(), seq, bytes.value())?.fact);
    }
    Ok(progress_of(facts.iter(), wave))
}
