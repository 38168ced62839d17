//! Read-side queries for the CLI and the executor: runs, a run's records, captured output,
//! approvals, stored artifacts.

use std::collections::BTreeSet;

use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};

use sluice_model::{Approval, ApprovalScope, Capture, Fact, RunKind, RunState, StepStatus};

use crate::error::{AuditError, StoreName};
use crate::record::Record;
use crate::store::{
    ARTIFACTS, PENDING_GATES, PLAN_APPROVALS, RECORDS, RUN_INDEX, RUNS, RedbStore, WAVE_APPROVALS,
    decode_record,
};

/// One run at a glance, kept up to date with every record of the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run: String,
    pub plan_name: String,
    pub plan_hash: String,
    /// What the run runs (`apply`, `exec`, `check`); summaries written before the field existed
    /// read as `apply`.
    #[serde(default)]
    pub run_kind: RunKind,
    pub operator: String,
    pub controller: String,
    pub ticket: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `running` until `run_finished` is recorded, then its status; `interrupted` when running
    /// but no live process holds its leases.
    pub status: RunState,
    pub hosts: u32,
    pub waves: Vec<String>,
    /// Hosts that finished their wave (a `host_finished` record), whatever the outcome.
    pub hosts_finished: BTreeSet<String>,
    /// Hosts with a failed step, health check or rollback step.
    pub hosts_failed: BTreeSet<String>,
    pub records: u64,
    /// Hash of the run's last record: the next record's `run_prev_hash`.
    pub last_hash: String,
}

impl RunSummary {
    pub(crate) fn new(run: &str) -> Self {
        RunSummary {
            run: run.to_string(),
            status: RunState::RUNNING,
            ..RunSummary::default()
        }
    }

    pub(crate) fn decode(bytes: &[u8], store: &StoreName, run: &str) -> Result<Self, AuditError> {
        serde_json::from_slice(bytes).map_err(|err| AuditError::BadRecord {
            store: store.clone(),
            seq: 0,
            reason: format!("summary of run {run}: {err}"),
        })
    }

    pub(crate) fn apply(&mut self, record: &Record) {
        if self.records == 0 {
            self.started_at = record.at.clone();
        }
        self.records += 1;
        self.last_hash = record.hash.clone();
        match &record.fact {
            Fact::RunStarted(s) => {
                self.plan_name = s.plan_name.clone();
                self.plan_hash = s.plan_hash.clone();
                self.run_kind = s.run_kind;
                self.operator = s.operator.clone();
                self.controller = s.controller.clone();
                self.ticket = s.ticket.clone();
                self.hosts = u32::try_from(s.hosts.len()).unwrap_or(u32::MAX);
                self.waves = s.waves.clone();
            }
            Fact::StepResult(r) | Fact::UndoResult(r) if !r.status.is_success() => {
                self.hosts_failed.insert(r.host.clone());
            }
            Fact::HealthResult(h) if !h.ok => {
                self.hosts_failed.insert(h.host.clone());
            }
            Fact::HostFinished(h) => {
                self.hosts_finished.insert(h.host.clone());
                if h.outcome.is_failure() {
                    self.hosts_failed.insert(h.host.clone());
                }
            }
            Fact::RunFinished(f) => {
                self.status = RunState::Finished(f.status);
                self.finished_at = Some(record.at.clone());
            }
            _ => {}
        }
    }

    /// A run recorded as `running` whose process is gone (no lease held by a live process of this
    /// controller) is shown as `interrupted`: `sluice resume` carries it on.
    pub(crate) fn mark_interrupted(&mut self, leases: &[crate::lease::Lease], controller: &str) {
        let alive = leases.iter().any(|l| {
            l.run == self.run && (l.controller != controller || crate::lease::pid_alive(l.pid))
        });
        self.mark_interrupted_unless(alive);
    }

    /// Marks a running run `interrupted` unless a live holder keeps its leases.
    pub(crate) fn mark_interrupted_unless(&mut self, held_by_live: bool) {
        if self.status != RunState::RUNNING || crate::record::is_plan_run(&self.run) {
            return;
        }
        if !held_by_live {
            self.status = RunState::INTERRUPTED;
        }
    }

    /// Hosts that finished with nothing failed on them (a host rolled back later, or one
    /// whose undo failed, is not ok). A run interrupted before any host finished has none.
    pub fn hosts_ok(&self) -> usize {
        self.hosts_finished.difference(&self.hosts_failed).count()
    }

    /// Seconds from the first to the last recorded moment (to now while running).
    pub fn duration_secs(&self) -> Option<i64> {
        let start: jiff::Timestamp = self.started_at.parse().ok()?;
        let end: jiff::Timestamp = match &self.finished_at {
            Some(end) => end.parse().ok()?,
            None => jiff::Timestamp::now(),
        };
        Some(end.as_second() - start.as_second())
    }
}

/// A run waiting at an approval gate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PendingGate {
    pub run: String,
    pub wave: String,
    pub since: String,
    pub seq: u64,
}

/// The captured output of one step on one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepOutput {
    pub seq: u64,
    pub host: String,
    pub step: String,
    pub rollback: bool,
    pub status: StepStatus,
    pub exit_code: Option<i32>,
    pub detail: String,
    pub stdout: Capture,
    pub stderr: Capture,
}

impl RedbStore {
    /// Every run, most recent first. Plan approvals (pseudo-runs `plan:...`) are not runs.
    pub fn list_runs(&self) -> Result<Vec<RunSummary>, AuditError> {
        let txn = self.read()?;
        let runs = txn.open_table(RUNS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in runs.iter().map_err(|e| self.err(e))? {
            let (run, bytes) = item.map_err(|e| self.err(e))?;
            if crate::record::is_plan_run(run.value()) {
                continue;
            }
            out.push(RunSummary::decode(bytes.value(), self.name(), run.value())?);
        }
        drop(runs);
        let leases = self.active_leases()?;
        for summary in &mut out {
            summary.mark_interrupted(&leases, self.controller());
        }
        out.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.run.cmp(&a.run)));
        Ok(out)
    }

    pub fn run_summary(&self, run: &str) -> Result<RunSummary, AuditError> {
        let txn = self.read()?;
        let runs = txn.open_table(RUNS).map_err(|e| self.err(e))?;
        let value = runs.get(run).map_err(|e| self.err(e))?;
        let mut summary = match value {
            Some(v) => RunSummary::decode(v.value(), self.name(), run)?,
            None => {
                return Err(AuditError::UnknownRun {
                    run: run.to_string(),
                });
            }
        };
        summary.mark_interrupted(&self.active_leases()?, self.controller());
        Ok(summary)
    }

    /// The records of one run, in order.
    pub fn run_records(&self, run: &str) -> Result<Vec<Record>, AuditError> {
        let txn = self.read()?;
        let seqs = self.run_seqs(&txn, run)?;
        if seqs.is_empty() {
            return Err(AuditError::UnknownRun {
                run: run.to_string(),
            });
        }
        seqs.into_iter()
            .map(|seq| self.record_in(&txn, seq))
            .collect()
    }

    /// One record by sequence number.
    pub fn record(&self, seq: u64) -> Result<Option<Record>, AuditError> {
        let txn = self.read()?;
        let records = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
        let value = records.get(seq).map_err(|e| self.err(e))?;
        value
            .map(|v| decode_record(self.name(), seq, v.value()))
            .transpose()
    }

    /// Approvals recorded for exactly this plan hash, oldest first.
    pub fn plan_approvals(&self, plan_hash: &str) -> Result<Vec<(Record, Approval)>, AuditError> {
        let txn = self.read()?;
        let index = txn.open_table(PLAN_APPROVALS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let range = index
            .range((plan_hash, 0)..=(plan_hash, u64::MAX))
            .map_err(|e| self.err(e))?;
        for item in range {
            let (key, _) = item.map_err(|e| self.err(e))?;
            let record = self.record_in(&txn, key.value().1)?;
            if let Fact::Approval(approval) = record.fact.clone() {
                out.push((record, approval));
            }
        }
        Ok(out)
    }

    /// The latest answer to the gate before `wave` of `run` and its record's sequence number.
    /// A waiting run polls this.
    pub fn wave_answer(
        &self,
        run: &str,
        wave: &str,
    ) -> Result<Option<(u64, Approval)>, AuditError> {
        let txn = self.read()?;
        let index = txn.open_table(WAVE_APPROVALS).map_err(|e| self.err(e))?;
        let seq = index
            .get((run, wave))
            .map_err(|e| self.err(e))?
            .map(|v| v.value());
        let Some(seq) = seq else { return Ok(None) };
        match self.record_in(&txn, seq)?.fact {
            Fact::Approval(
                approval @ Approval {
                    scope: ApprovalScope::Wave { .. },
                    ..
                },
            ) => Ok(Some((seq, approval))),
            _ => Ok(None),
        }
    }

    /// Gates runs are waiting at, oldest first: (record of the request, run, wave).
    pub fn pending_approvals(&self) -> Result<Vec<PendingGate>, AuditError> {
        let txn = self.read()?;
        let gates = txn.open_table(PENDING_GATES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in gates.iter().map_err(|e| self.err(e))? {
            let (key, seq) = item.map_err(|e| self.err(e))?;
            let (run, wave) = key.value();
            let record = self.record_in(&txn, seq.value())?;
            out.push(PendingGate {
                run: run.to_string(),
                wave: wave.to_string(),
                since: record.at,
                seq: record.seq,
            });
        }
        out.sort_by_key(|g| g.seq);
        Ok(out)
    }

    /// A stored plan artifact by hash.
    pub fn artifact(&self, plan_hash: &str) -> Result<Option<serde_json::Value>, AuditError> {
        let txn = self.read()?;
        let index = txn.open_table(ARTIFACTS).map_err(|e| self.err(e))?;
        let seq = index
            .get(plan_hash)
            .map_err(|e| self.err(e))?
            .map(|v| v.value());
        let Some(seq) = seq else { return Ok(None) };
        match self.record_in(&txn, seq)?.fact {
            Fact::PlanArtifactStored(stored) => Ok(Some(stored.artifact)),
            _ => Ok(None),
        }
    }

    pub(crate) fn run_seqs(
        &self,
        txn: &ReadTransaction,
        run: &str,
    ) -> Result<Vec<u64>, AuditError> {
        let index = txn.open_table(RUN_INDEX).map_err(|e| self.err(e))?;
        let range = index
            .range((run, 0)..=(run, u64::MAX))
            .map_err(|e| self.err(e))?;
        range
            .map(|item| item.map(|(k, _)| k.value().1).map_err(|e| self.err(e)))
            .collect()
    }

    pub(crate) fn record_in(&self, txn: &ReadTransaction, seq: u64) -> Result<Record, AuditError> {
        let records = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
        let value = records.get(seq).map_err(|e| self.err(e))?;
        match value {
            Some(v) => decode_record(self.name(), seq, v.value()),
            None => Err(AuditError::BadRecord {
                store: self.name().clone(),
                seq,
                reason: "indexed but not in the record table".into(),
            }),
        }
    }
}

/// The captured output of a run's records, optionally only one host and/or one step.
pub(crate) fn step_outputs(
    records: Vec<Record>,
    host: Option<&str>,
    step: Option<&str>,
) -> Vec<StepOutput> {
    let mut out = Vec::new();
    for record in records {
        let (result, rollback) = match record.fact {
            Fact::StepResult(r) => (r, false),
            Fact::UndoResult(r) => (r, true),
            _ => continue,
        };
        if host.is_some_and(|h| h != result.host) || step.is_some_and(|s| s != result.step) {
            continue;
        }
        out.push(StepOutput {
            seq: record.seq,
            host: result.host,
            step: result.step,
            rollback,
            status: result.status,
            exit_code: result.exit_code,
            detail: result.detail,
            stdout: result.stdout,
            stderr: result.stderr,
        });
    }
    out
}
