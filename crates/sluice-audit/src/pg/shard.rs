//! Hosts of a run handed to workers (`sluice apply --workers`, `sluice worker`): one row of
//! `sluice.assignments` per (run, task, wave, host).
//!
//! - The coordinator **queues** a host when its wave scheduler starts it
//!   ([`PgStore::queue_host`], in `queue.rs` with the rest of the coordinator's side): it does
//!   so only holding a free slot with the wave's budget not spent, so the row is the
//!   reservation of the right to start the host, exactly as a slot is in one process.
//! - A worker **claims** queued hosts ([`PgStore::claim_hosts`]): `SELECT … FOR UPDATE SKIP
//!   LOCKED` on the assignments, in the write transaction that records a `host_claimed` fact per
//!   host. It also claims hosts whose worker is no longer live (its heartbeat expired, or it
//!   stopped): the take-over is recorded with `reclaimed_from`. Each claim increments the row's
//!   `claims` counter.
//! - The worker records every fact of the host **fenced** ([`PgStore::append_fenced`]): in the
//!   same transaction as the record, the row must still be claimed by this worker with the same
//!   `claims`, or nothing is recorded (so a command whose intent was not recorded is not sent):
//!   a worker judged dead and then back can never write beside the worker that took its host
//!   over. The fact that ends the task (`host_finished`, `host_rolled_back`) marks the row
//!   `done` in its own transaction.
//!   A worker commits the facts its hosts record at the same moment together
//!   ([`PgStore::append_fenced_batch`], each fenced on its own), as the redb group commit does.
//! - A worker that claims a host reads that host's records ([`PgStore::host_records`], through
//!   `records.host`), not the whole run: a claim costs the same at 60 hosts and at 100,000.
//! - The coordinator learns results by reading the run's records after a sequence number
//!   ([`PgStore::run_records_after`]); a stop it requests ([`PgStore::request_stop`]) is read by
//!   the workers ([`PgStore::stop_requests`]).
//!
//! Every write here that records a fact holds the chain's tip lock first, like every write of
//! the store; claims, fenced records and take-overs are therefore serialised with one another.

use std::collections::HashSet;

use sluice_model::{Fact, HostClaimed, HostNeedsOperator, WorkerTask};

use super::{PgStore, PgTx};
use crate::error::AuditError;
use crate::record::{Entry, Record};
use crate::store::Appended;
use crate::store_tx::{StoreTx, WritableStore};

/// A host the coordinator hands to the workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostOrder {
    pub run: String,
    pub task: WorkerTask,
    pub wave: String,
    pub host: String,
    /// The worker label the host is pinned to (its `worker` host variable); `None`: any worker.
    pub label: Option<String>,
}

/// A host a worker claimed, and the fence its records carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub order: HostOrder,
    pub fence: Fence,
    /// The worker that held it before, when this claim took it over.
    pub reclaimed_from: Option<String>,
}

/// What makes a worker's record of a host valid: the assignment is still claimed by this worker,
/// with this claim counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub assignment: i64,
    pub worker: i64,
    pub claims: i32,
}

/// A fact of a claimed host, for [`PgStore::append_fenced_batch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FencedEntry {
    pub claim: Claim,
    /// The worker's name, for the error when its claim was lost.
    pub worker: String,
    pub fact: Fact,
}

/// Where an assignment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignmentState {
    Queued,
    Claimed,
    Done,
    Withdrawn,
    /// Its worker found steps only the operator can settle (`host_needs_operator`).
    Blocked,
}

impl AssignmentState {
    fn as_str(self) -> &'static str {
        match self {
            AssignmentState::Queued => "queued",
            AssignmentState::Claimed => "claimed",
            AssignmentState::Done => "done",
            AssignmentState::Withdrawn => "withdrawn",
            AssignmentState::Blocked => "blocked",
        }
    }

    pub(super) fn parse(text: &str) -> Option<AssignmentState> {
        [
            AssignmentState::Queued,
            AssignmentState::Claimed,
            AssignmentState::Done,
            AssignmentState::Withdrawn,
            AssignmentState::Blocked,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A stop the coordinator requested of a run's hosts: the worker stops them as the executor
/// stops hosts on Ctrl-C (`1`: no new step; `2`: abandon the commands in flight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopRequest {
    pub assignment: i64,
    pub level: i32,
}

pub(super) fn task_of(text: &str) -> WorkerTask {
    WorkerTask::ALL
        .iter()
        .copied()
        .find(|t| t.as_str() == text)
        .unwrap_or(WorkerTask::Host)
}

/// Whether `fact` ends `order`'s task: the host's `host_finished` (tasks `host` and
/// `run_once`) or `host_rolled_back` (task `undo`) in its wave.
pub fn ends_task(order: &HostOrder, fact: &Fact) -> bool {
    match (order.task, fact) {
        (WorkerTask::Host | WorkerTask::Once, Fact::HostFinished(f)) => {
            f.host == order.host && f.wave == order.wave
        }
        (WorkerTask::Undo, Fact::HostRolledBack(r)) => r.host == order.host && r.wave == order.wave,
        _ => false,
    }
}

impl PgTx<'_> {
    /// Checks the fence: the row is claimed by this worker with this counter.
    fn check_fence(
        &self,
        fence: &Fence,
        order: &HostOrder,
        worker: &str,
    ) -> Result<(), AuditError> {
        let held = self.query(
            "SELECT 1 FROM sluice.assignments
             WHERE id = $1 AND worker = $2 AND claims = $3 AND state = 'claimed' FOR UPDATE",
            &[&fence.assignment, &fence.worker, &fence.claims],
        )?;
        if held.is_empty() {
            return Err(AuditError::ClaimLost {
                worker: worker.to_string(),
                run: order.run.clone(),
                host: order.host.clone(),
            });
        }
        Ok(())
    }

    /// Which of `fences` hold (claimed by their worker with their counter), locked until the
    /// commit: one query for a batch.
    fn held_fences<'f>(
        &self,
        fences: impl Iterator<Item = &'f Fence>,
    ) -> Result<HashSet<i64>, AuditError> {
        let (mut ids, mut workers, mut claims) = (Vec::new(), Vec::new(), Vec::new());
        for fence in fences {
            ids.push(fence.assignment);
            workers.push(fence.worker);
            claims.push(fence.claims);
        }
        let rows = self.query(
            "SELECT a.id FROM sluice.assignments a
             JOIN unnest($1::bigint[], $2::bigint[], $3::integer[]) AS f(id, worker, claims)
               ON a.id = f.id AND a.worker = f.worker AND a.claims = f.claims
             WHERE a.state = 'claimed' FOR UPDATE OF a",
            &[&ids, &workers, &claims],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn set_state(&self, id: i64, state: AssignmentState) -> Result<(), AuditError> {
        self.execute(
            "UPDATE sluice.assignments SET state = $2 WHERE id = $1",
            &[&id, &state.as_str()],
        )
        .map(|_| ())
    }
}

impl PgStore {
    /// The stops requested of these assignments (those with none are left out).
    pub fn stop_requests(&self, ids: &[i64]) -> Result<Vec<StopRequest>, AuditError> {
        self.with_client(|conn| {
            Ok(conn
                .query(
                    "SELECT id, stop FROM sluice.assignments WHERE id = ANY($1) AND stop > 0",
                    &[&ids],
                )?
                .iter()
                .map(|r| StopRequest {
                    assignment: r.get(0),
                    level: r.get(1),
                })
                .collect())
        })
    }

    /// Claims up to `max` hosts for worker `worker` (named `name`, serving `labels`): queued
    /// hosts, and hosts whose worker is no longer live, oldest first; records `host_claimed` for
    /// each in the same commit.
    pub fn claim_hosts(
        &self,
        worker: i64,
        name: &str,
        labels: &[String],
        max: u32,
    ) -> Result<Vec<Claim>, AuditError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::from(max);
        self.write(|tx| {
            let rows = tx.query(
                "WITH picked AS (
                     SELECT a.id, w.name AS previous FROM sluice.assignments a
                     LEFT JOIN sluice.workers w ON w.id = a.worker
                     WHERE (a.label IS NULL OR a.label = ANY($1))
                       AND ((a.state = 'queued' AND a.stop = 0)
                         OR (a.state = 'claimed'
                             AND (w.stopped_at IS NOT NULL OR w.expires_at <= now())))
                     ORDER BY a.id LIMIT $2
                     FOR UPDATE OF a SKIP LOCKED)
                 UPDATE sluice.assignments a
                 SET state = 'claimed', worker = $3, claims = a.claims + 1, claimed_at = now()
                 FROM picked WHERE a.id = picked.id
                 RETURNING a.id, a.claims, a.run, a.task, a.wave, a.host, a.label,
                           picked.previous",
                &[&labels, &limit, &worker],
            )?;
            let mut claims = Vec::new();
            for row in &rows {
                let claim = Claim {
                    fence: Fence {
                        assignment: row.get(0),
                        worker,
                        claims: row.get(1),
                    },
                    order: HostOrder {
                        run: row.get(2),
                        task: task_of(&row.get::<_, String>(3)),
                        wave: row.get(4),
                        host: row.get(5),
                        label: row.get(6),
                    },
                    reclaimed_from: row.get(7),
                };
                claims.push(claim);
            }
            claims.sort_by_key(|c| c.fence.assignment);
            for claim in &claims {
                let fact = Fact::HostClaimed(HostClaimed {
                    wave: claim.order.wave.clone(),
                    host: claim.order.host.clone(),
                    task: claim.order.task,
                    worker: name.to_string(),
                    reclaimed_from: claim.reclaimed_from.clone(),
                });
                tx.append(Entry::new(&claim.order.run, fact))?;
            }
            Ok(claims)
        })
    }

    /// Records a worker's fact of a claimed host, if the claim is still its own (see the module
    /// documentation); the fact that ends the task marks the assignment done in the same commit.
    pub fn append_fenced(
        &self,
        claim: &Claim,
        worker: &str,
        fact: Fact,
    ) -> Result<Appended, AuditError> {
        self.write(|tx| {
            tx.check_fence(&claim.fence, &claim.order, worker)?;
            let done = ends_task(&claim.order, &fact);
            let appended = tx.append(Entry::new(&claim.order.run, fact))?;
            if done {
                tx.set_state(claim.fence.assignment, AssignmentState::Done)?;
            }
            Ok(appended)
        })
    }

    /// Records facts of this worker's claimed hosts in one commit (a worker's group commit):
    /// each fact is recorded only if its claim still holds, as [`PgStore::append_fenced`]
    /// records one. A fact whose claim was lost is answered with [`AuditError::ClaimLost`] and
    /// the others are recorded; a fact that ends its task marks the assignment done, and a
    /// later fact of the same assignment in the batch is refused like a lost one. `Err`: the
    /// commit failed and nothing was recorded.
    pub fn append_fenced_batch(
        &self,
        entries: Vec<FencedEntry>,
    ) -> Result<Vec<Result<Appended, AuditError>>, AuditError> {
        self.write(|tx| {
            let mut held = tx.held_fences(entries.iter().map(|e| &e.claim.fence))?;
            // Which facts are recorded, in order; a task's end closes its assignment for the
            // facts after it.
            let mut accepted = Vec::new();
            let mut done = Vec::new();
            let mut refused = Vec::new();
            for FencedEntry {
                claim,
                worker,
                fact,
            } in entries
            {
                let id = claim.fence.assignment;
                if !held.contains(&id) {
                    refused.push(Some(AuditError::ClaimLost {
                        worker,
                        run: claim.order.run,
                        host: claim.order.host,
                    }));
                    continue;
                }
                if ends_task(&claim.order, &fact) {
                    held.remove(&id);
                    done.push(id);
                }
                refused.push(None);
                accepted.push(Entry::new(&claim.order.run, fact));
            }
            let mut appended = tx.append_all(accepted)?.into_iter();
            if !done.is_empty() {
                tx.execute(
                    "UPDATE sluice.assignments SET state = $2 WHERE id = ANY($1)",
                    &[&done, &AssignmentState::Done.as_str()],
                )?;
            }
            Ok(refused
                .into_iter()
                .map(|refusal| match refusal {
                    Some(err) => Err(err),
                    // One appended record per accepted fact, in order.
                    None => appended.next().ok_or_else(|| AuditError::Database {
                        store: tx.store.name().clone(),
                        reason: "a fact of the batch was not appended".into(),
                        unreachable: false,
                    }),
                })
                .collect())
        })
    }

    /// The records of one host of `run` (its fact's `host`), with the operator's resolutions of
    /// unknown steps, in order: what a worker that claims the host resumes it from, read through
    /// an index rather than from the whole run.
    pub fn host_records(&self, run: &str, host: &str) -> Result<Vec<Record>, AuditError> {
        self.hosts_records(run, &[host.to_string()])
    }

    /// As [`PgStore::host_records`], for several hosts at once (a claimed host and the hosts
    /// whose `run_once` steps registered values it may use).
    pub fn hosts_records(&self, run: &str, hosts: &[String]) -> Result<Vec<Record>, AuditError> {
        self.with_client(|conn| {
            conn.query(
                "SELECT seq, body FROM sluice.records WHERE run = $1 AND host = ANY($2)
                 UNION ALL
                 SELECT seq, body FROM sluice.records
                 WHERE run = $1 AND kind = 'unknown_steps_resolved'
                 ORDER BY 1",
                &[&run, &hosts],
            )?
            .iter()
            .map(|row| super::read::decode_row(self.name(), row))
            .collect()
        })
    }

    /// Gives back a claim whose task ended without its last fact recorded (the database went
    /// away meanwhile): the host is queued again, and a worker carries it on from the journal.
    /// Nothing changes when the task was recorded as done, or the claim is no longer this one.
    pub fn release_claim(&self, claim: &Claim) -> Result<bool, AuditError> {
        let fence = &claim.fence;
        self.with_client(|conn| {
            Ok(!conn
                .query(
                    "UPDATE sluice.assignments SET state = 'queued', worker = NULL
                     WHERE id = $1 AND worker = $2 AND claims = $3 AND state = 'claimed'
                     RETURNING id",
                    &[&fence.assignment, &fence.worker, &fence.claims],
                )?
                .is_empty())
        })
    }

    /// As [`PgStore::release_claim`] for several claims, in one statement (a worker gives back
    /// what ended since its last poll); returns the assignments given back.
    pub fn release_claims(&self, claims: &[Claim]) -> Result<Vec<i64>, AuditError> {
        let (mut ids, mut workers, mut counts) = (Vec::new(), Vec::new(), Vec::new());
        for claim in claims {
            ids.push(claim.fence.assignment);
            workers.push(claim.fence.worker);
            counts.push(claim.fence.claims);
        }
        self.with_client(|conn| {
            Ok(conn
                .query(
                    "UPDATE sluice.assignments a SET state = 'queued', worker = NULL
                     FROM unnest($1::bigint[], $2::bigint[], $3::integer[]) AS f(id, worker, claims)
                     WHERE a.id = f.id AND a.worker = f.worker AND a.claims = f.claims
                       AND a.state = 'claimed'
                     RETURNING a.id",
                    &[&ids, &workers, &counts],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }

    /// A worker that cannot carry on a host it took over without the operator: records
    /// `host_needs_operator` and marks the assignment blocked, fenced like any record.
    pub fn block_claim(
        &self,
        claim: &Claim,
        needs: HostNeedsOperator,
    ) -> Result<Appended, AuditError> {
        let worker = needs.worker.clone();
        self.write(|tx| {
            tx.check_fence(&claim.fence, &claim.order, &worker)?;
            let appended =
                tx.append(Entry::new(&claim.order.run, Fact::HostNeedsOperator(needs)))?;
            tx.set_state(claim.fence.assignment, AssignmentState::Blocked)?;
            Ok(appended)
        })
    }

    /// The plan artifact stored under `plan_hash`, read from its record's text straight into
    /// `T` (a worker's `PlanArtifact`), without the JSON tree [`PgStore::artifact`] builds: at
    /// 100,000 hosts that tree is several times the plan's own size, in every worker.
    pub fn artifact_as<T: serde::de::DeserializeOwned>(
        &self,
        plan_hash: &str,
    ) -> Result<Option<T>, AuditError> {
        #[derive(serde::Deserialize)]
        struct Stored<T> {
            artifact: T,
        }
        let rows = self.with_client(|conn| {
            conn.query(
                "SELECT r.seq, r.body FROM sluice.artifacts a JOIN sluice.records r ON r.seq = a.seq
                 WHERE a.plan_hash = $1",
                &[&plan_hash],
            )
        })?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let (seq, body): (i64, &str) = (row.get(0), row.get(1));
        let stored: Stored<T> = serde_json::from_str(body).map_err(|e| AuditError::BadRecord {
            store: self.name().clone(),
            seq: u64::try_from(seq).unwrap_or(0),
            reason: format!("the plan artifact {plan_hash} does not read: {e}"),
        })?;
        Ok(Some(stored.artifact))
    }

    /// The stages of `run` that started (`stage_started`), in order: what a worker that
    /// cannot read the run's plan tells a stage's wave (`STAGE/NAME`) by.
    pub fn started_stages(&self, run: &str) -> Result<Vec<String>, AuditError> {
        self.with_client(|conn| {
            Ok(conn
                .query(
                    "SELECT body::json->>'stage' FROM sluice.records
                     WHERE run = $1 AND kind = 'stage_started' ORDER BY seq",
                    &[&run],
                )?
                .iter()
                .filter_map(|row| row.get::<_, Option<String>>(0))
                .collect())
        })
    }
}
