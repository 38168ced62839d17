//! The coordinator's side of the hosts of a run handed to workers (`sluice apply --workers`);
//! the workers' side, and what an assignment is, are in `shard.rs`.
//!
//! - [`PgStore::queue_host`] queues a host when the wave scheduler starts it (the reservation of
//!   the right to start it). A task queued before (a resumed coordinator) is queued again unless
//!   a worker holds it or it has ended: the coordinator then reads its end
//!   ([`PgStore::task_end`]) and decides whether to hand it out again ([`PgStore::requeue`]), so
//!   a task is never handed out behind the coordinator's back.
//! - The coordinator reads the run's new records ([`PgStore::run_records_after`]), stops the
//!   run's hosts ([`PgStore::request_stop`]) and withdraws a host nobody claimed yet
//!   ([`PgStore::withdraw_host`]).
//! - The run's end closes its tasks: the commit that records `run_finished` withdraws every
//!   assignment still queued or claimed ([`close_run_tasks`]), so no worker claims a host of a
//!   finished run and a worker's fenced record can never land after `run_finished`.

use sluice_model::Fact;

use super::shard::{AssignmentState, HostOrder, ends_task};
use super::{PgStore, PgTx};
use crate::error::AuditError;
use crate::record::Record;

/// What queueing a host found ([`PgStore::queue_host`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queued {
    /// The assignment's id.
    pub id: i64,
    /// Where it stands now: `Queued` (handed out: a worker may claim it), `Claimed` (a worker
    /// holds it already and goes on), or, for a task queued before, `Done` or `Blocked` (its
    /// task ended: left so, see [`PgStore::task_end`] and [`PgStore::requeue`]).
    pub state: AssignmentState,
    /// The sequence number of the chain's tip when it was queued: the task's end is recorded
    /// after it. A fact that ends the task at or before it is an earlier claim's.
    pub after: u64,
}

/// Whether `fact` ends `order`'s task as the coordinator waits for it: [`ends_task`], or the
/// host's `host_needs_operator` of the same task (its worker found steps only the operator can
/// settle).
pub fn ends_wait(order: &HostOrder, fact: &Fact) -> bool {
    match fact {
        Fact::HostNeedsOperator(n) => {
            n.task == order.task && n.host == order.host && n.wave == order.wave
        }
        fact => ends_task(order, fact),
    }
}

/// The kinds of the facts that may end a task ([`ends_wait`]).
const ENDING_KINDS: &[&str] = &["host_finished", "host_rolled_back", "host_needs_operator"];

/// Withdraws every assignment of `run` still queued or claimed, in the transaction that records
/// the run's end: no worker claims a host of a finished run, and a worker's fence no longer
/// holds, so none of its facts is recorded after `run_finished`.
pub(crate) fn close_run_tasks(tx: &PgTx<'_>, run: &str) -> Result<(), AuditError> {
    tx.execute(
        "UPDATE sluice.assignments SET state = 'withdrawn'
         WHERE run = $1 AND state IN ('queued', 'claimed')",
        &[&run],
    )
    .map(|_| ())
}

impl PgStore {
    /// Queues `order` for the workers. A host queued before (a resumed coordinator) is queued
    /// again unless a worker still holds it (a live worker goes on; a dead one's claim is taken
    /// over as usual) or its task has ended (`done`, `blocked`): the caller then reads the end
    /// ([`PgStore::task_end`]) and may [`PgStore::requeue`] it. The state is decided on the
    /// row's latest version (an end committed while this waited for the row is seen); the tip
    /// is the statement's, read before any end the row did not show yet.
    pub fn queue_host(&self, order: &HostOrder) -> Result<Queued, AuditError> {
        self.with_client(|conn| {
            let rows = conn.query(
                "INSERT INTO sluice.assignments (run, task, wave, host, label, state)
                 VALUES ($1, $2, $3, $4, $5, 'queued')
                 ON CONFLICT (run, task, wave, host) DO UPDATE SET
                     state = CASE WHEN sluice.assignments.state IN ('claimed', 'done', 'blocked')
                                  THEN sluice.assignments.state ELSE 'queued' END,
                     label = excluded.label, stop = 0, queued_at = now()
                 RETURNING id, state, (SELECT seq FROM sluice.chain_tip)",
                &[
                    &order.run,
                    &order.task.as_str(),
                    &order.wave,
                    &order.host,
                    &order.label,
                ],
            )?;
            let row = rows.first().ok_or_else(|| AuditError::Database {
                store: self.name().clone(),
                reason: format!("queueing host {} returned no assignment", order.host),
                unreachable: false,
            })?;
            let tip: Option<i64> = row.get(2);
            Ok(Queued {
                id: row.get(0),
                state: AssignmentState::parse(&row.get::<_, String>(1))
                    .unwrap_or(AssignmentState::Queued),
                after: tip.and_then(|t| u64::try_from(t).ok()).unwrap_or(0),
            })
        })
    }

    /// The latest recorded fact that ended `order`'s task ([`ends_wait`]), with its sequence
    /// number; `None` when it never ended. Read through the records' index by host.
    pub fn task_end(&self, order: &HostOrder) -> Result<Option<Record>, AuditError> {
        let kinds: Vec<String> = ENDING_KINDS.iter().map(|k| k.to_string()).collect();
        let rows = self.with_client(|conn| {
            conn.query(
                "SELECT seq, body FROM sluice.records
                 WHERE run = $1 AND host = $2 AND kind = ANY($3) ORDER BY seq",
                &[&order.run, &order.host, &kinds],
            )
        })?;
        let mut end = None;
        for row in &rows {
            let record = super::read::decode_row(self.name(), row)?;
            if ends_wait(order, &record.fact) {
                end = Some(record);
            }
        }
        Ok(end)
    }

    /// Hands out again a task that ended (`done`, `blocked`): a resumed coordinator that
    /// replays it on a worker, or an operator's choice for a blocked host.
    pub fn requeue(&self, id: i64) -> Result<(), AuditError> {
        self.with_client(|conn| {
            conn.query(
                "UPDATE sluice.assignments SET state = 'queued', stop = 0, queued_at = now()
                 WHERE id = $1 AND state IN ('done', 'blocked')",
                &[&id],
            )
            .map(|_| ())
        })
    }

    /// Withdraws a queued host nobody claimed yet (the run is stopping); `false` when a worker
    /// holds it already (it then runs to its end).
    pub fn withdraw_host(&self, id: i64) -> Result<bool, AuditError> {
        self.with_client(|conn| {
            Ok(!conn
                .query(
                    "UPDATE sluice.assignments SET state = 'withdrawn'
                     WHERE id = $1 AND state = 'queued' RETURNING id",
                    &[&id],
                )?
                .is_empty())
        })
    }

    /// Where assignment `id` stands.
    pub fn assignment_state(&self, id: i64) -> Result<Option<AssignmentState>, AuditError> {
        self.with_client(|conn| {
            let rows = conn.query("SELECT state FROM sluice.assignments WHERE id = $1", &[&id])?;
            Ok(rows
                .first()
                .and_then(|r| AssignmentState::parse(&r.get::<_, String>(0))))
        })
    }

    /// Whether a live worker serves `label` (any live worker for an unpinned host).
    pub fn live_worker_for(&self, label: Option<&str>) -> Result<bool, AuditError> {
        self.with_client(|conn| {
            let rows = conn.query(
                "SELECT 1 FROM sluice.workers
                 WHERE stopped_at IS NULL AND expires_at > now()
                   AND ($1::text IS NULL OR $1 = ANY(labels)) LIMIT 1",
                &[&label],
            )?;
            Ok(!rows.is_empty())
        })
    }

    /// The coordinator stops the run's hosts (`level` 1: no new step, 2: abandon commands in
    /// flight), as Ctrl-C stops the hosts of one process.
    pub fn request_stop(&self, run: &str, level: i32) -> Result<(), AuditError> {
        self.with_client(|conn| {
            conn.query(
                "UPDATE sluice.assignments SET stop = greatest(stop, $2)
                 WHERE run = $1 AND state IN ('queued', 'claimed')",
                &[&run, &level],
            )
            .map(|_| ())
        })
    }

    /// The records of `run` after sequence number `after`, in order (the coordinator's poll);
    /// the plan artifact is left out (the coordinator has it, and at 100,000 hosts it is a
    /// record of hundreds of megabytes).
    pub fn run_records_after(&self, run: &str, after: u64) -> Result<Vec<Record>, AuditError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.with_client(|conn| {
            conn.query(
                "SELECT seq, body FROM sluice.records
                 WHERE run = $1 AND seq > $2 AND kind <> 'plan_artifact_stored' ORDER BY seq",
                &[&run, &after],
            )?
            .iter()
            .map(|row| super::read::decode_row(self.name(), row))
            .collect()
        })
    }

    /// The sequence number of the chain's last record.
    pub fn tip_seq(&self) -> Result<u64, AuditError> {
        self.with_client(|conn| {
            let rows = conn.query("SELECT seq FROM sluice.chain_tip", &[])?;
            let seq: i64 = rows.first().map(|r| r.get(0)).unwrap_or_default();
            Ok(u64::try_from(seq).unwrap_or(0))
        })
    }
}
