//! The coordinator's side of `sluice apply --workers`: [`StoreWorkers`] hands the hosts the
//! executor starts to the workers through the shared store, and learns how they ended from the
//! run's records.
//!
//! - **Reserving a host**: the executor's wave scheduler starts a host only holding a free slot
//!   with the budget not spent; starting it here queues an assignment (`PgStore::queue_host`).
//!   The row is the reservation: no worker runs a host the coordinator did not queue, so the
//!   failure budget holds across workers exactly as in one process.
//! - **Results**: one task polls the run's records after the last sequence number it read, every
//!   [`POLL`] (100 ms; polling rather than LISTEN/NOTIFY: one indexed query per poll, and a host's
//!   end reaches the coordinator within a poll of its commit). Every fact a worker recorded is
//!   passed on to the run's event stream (the live display, `--json`); the fact that ends a
//!   host's task (`host_finished`, also of a `run_once` task, `host_rolled_back`,
//!   `host_needs_operator`) wakes the waiting scheduler with the outcome and the steps that ran
//!   (every `step_intent` of the host).
//! - **A resumed run**: a task queued before is queued again unless a worker holds it, and its
//!   end must be one recorded after this queueing (an earlier claim's end is not this one's).
//!   A task a live worker held when the run was resumed (its steps left to it, see
//!   `crate::resume::leave_to_workers`) and that ended since is not handed out again: its
//!   recorded end is the result, as the dead coordinator would have taken it. So no host is
//!   handed out twice, and no worker records a host's facts after `run_finished`.
//! - **Stops**: the run's soft or hard stop is written to its assignments
//!   (`PgStore::request_stop`), which the workers read; a host no worker claimed yet is withdrawn.
//! - **Pinned hosts**: a host waiting for a label no live worker serves is said so once (a
//!   recorded `waiting_for_worker` decision); it waits until one starts, or Ctrl-C.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_audit::pg::{AssignmentState, HeldHost, HostOrder, Queued};
use sluice_audit::{AuditLog, Record};
use sluice_exec::dispatch::{RemoteFuture, RemoteHosts, RemoteOrder, RemoteResult};
use sluice_exec::shutdown::StopListener;
use sluice_exec::{Emitter, Shutdown};
use sluice_model::{Decision, Fact, HostOutcome, RollbackOutcome, WorkerTask};
use tokio::sync::mpsc;

use crate::error::LifecycleError;

/// How often the coordinator reads the run's new records.
pub const POLL: Duration = Duration::from_millis(100);

/// How long a pinned host waits before the coordinator checks that some live worker serves it.
const LABEL_CHECK: Duration = Duration::from_secs(2);

type Key = (WorkerTask, String, String);

/// What the poll has read of the run so far.
#[derive(Default)]
struct Tail {
    /// The last sequence number read.
    last: u64,
    /// Records up to this one were in the store before this coordinator started: read (for the
    /// steps that ran), not shown again or taken as the end of a host handed out now.
    shown_from: u64,
    /// Steps of each host with an intent recorded, by any worker.
    ran: HashMap<String, BTreeSet<String>>,
    /// Every fact that may end a waited-for task, with its sequence number: the waiter tells an
    /// earlier claim's end from its own.
    waiting: HashMap<Key, mpsc::UnboundedSender<(u64, Fact)>>,
}

struct Shared {
    log: Arc<AuditLog>,
    run: String,
    events: Emitter,
    /// The run's stop: a host that needs the operator stops the run for them.
    shutdown: Shutdown,
    tail: Mutex<Tail>,
    /// Held while the run's new records are read: the poll and a task that must see every
    /// record up to its end read them one at a time, so none is passed on twice.
    reading: Mutex<()>,
    /// The tasks live workers held when the run was resumed (none for a new run).
    held: HashSet<Key>,
    /// When a live worker serving each label (`None`: any worker) was last seen: a host that
    /// waits within [`LABEL_CHECK`] of it is not checked again (with thousands of hosts queued
    /// at once, two queries each would hold the coordinator's connection for seconds).
    served: Mutex<HashMap<Option<String>, Instant>>,
}

/// Hosts of one run handed to workers; see the module documentation. Dropping it stops the poll.
pub struct StoreWorkers {
    shared: Arc<Shared>,
    poll: tokio::task::JoinHandle<()>,
}

impl Drop for StoreWorkers {
    fn drop(&mut self) {
        self.poll.abort();
    }
}

impl StoreWorkers {
    /// Starts the poll of `run`'s records (refused on a redb store). `events` is the run's
    /// stream the workers' facts are shown in; `shutdown` the run's stop, passed on to workers;
    /// `held` the tasks live workers held when the run was resumed (read before its records).
    pub fn start(
        log: Arc<AuditLog>,
        run: &str,
        events: Emitter,
        shutdown: Shutdown,
        held: &[HeldHost],
    ) -> Result<StoreWorkers, LifecycleError> {
        let shown_from = log.postgres("--workers")?.tip_seq()?;
        let shared = Arc::new(Shared {
            log,
            run: run.to_string(),
            events,
            shutdown: shutdown.clone(),
            tail: Mutex::new(Tail {
                shown_from,
                ..Tail::default()
            }),
            reading: Mutex::new(()),
            held: held
                .iter()
                .map(|h| (h.task, h.wave.clone(), h.host.clone()))
                .collect(),
            served: Mutex::default(),
        });
        let poll = tokio::spawn(poll(shared.clone(), shutdown.subscribe()));
        Ok(StoreWorkers { shared, poll })
    }
}

impl Shared {
    fn tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        self.tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn served(&self) -> std::sync::MutexGuard<'_, HashMap<Option<String>, Instant>> {
        self.served
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the records after the last one read; passes each on.
    fn read_new(&self) -> Result<(), sluice_audit::AuditError> {
        let _reading = self
            .reading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let last = self.tail().last;
        let records = self
            .log
            .postgres("--workers")?
            .run_records_after(&self.run, last)?;
        let mut tail = self.tail();
        for record in records {
            tail.last = record.seq;
            if let Fact::StepIntent(i) = &record.fact {
                tail.ran
                    .entry(i.host.clone())
                    .or_default()
                    .insert(i.step.clone());
            }
            if record.seq <= tail.shown_from || !from_a_worker(&record.fact) {
                continue;
            }
            self.events.emit(record.fact.clone());
            if let Some(waiter) = ends(&record.fact)
                .into_iter()
                .find_map(|key| tail.waiting.get(&key))
            {
                let _ = waiter.send((record.seq, record.fact));
            }
        }
        Ok(())
    }

    /// Records and shows a decision of the coordinator about the workers.
    async fn decide(&self, decision: Decision, wave: &str, reason: String) {
        let fact = sluice_exec::Emitter::decision_fact(decision, Some(wave), reason);
        let (log, run, recorded) = (self.log.clone(), self.run.clone(), fact.clone());
        let _ = in_store(move || log.append(&run, recorded)).await;
        self.events.emit(fact);
    }

    fn ran(&self, host: &str) -> Vec<String> {
        self.tail()
            .ran
            .get(host)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// What the coordinator makes of the fact that ended a host's task.
    async fn result_of(&self, order: &RemoteOrder, fact: Fact) -> RemoteResult {
        let ran = self.ran(&order.host);
        match fact {
            Fact::HostFinished(f) => RemoteResult {
                outcome: Some(f.outcome),
                rollback: None,
                error: f.error,
                duration: Duration::from_millis(f.duration_ms),
                ran,
            },
            Fact::HostRolledBack(r) => RemoteResult {
                outcome: None,
                rollback: Some(r.outcome),
                error: (r.outcome == RollbackOutcome::RollbackFailed)
                    .then(|| "an undo failed on the worker (see its undo_result)".to_string()),
                duration: Duration::ZERO,
                ran,
            },
            Fact::HostNeedsOperator(n) => {
                let steps: Vec<&str> = n.steps.iter().map(|s| s.step.as_str()).collect();
                let why = format!(
                    "worker {} took {} over and found step(s) {} with an unknown outcome: `sluice resume {} --workers --rerun-unknown` or `--skip-unknown` decides",
                    n.worker,
                    n.host,
                    steps.join(", "),
                    self.run
                );
                self.decide(Decision::OperatorNeeded, &order.wave, why.clone())
                    .await;
                // As `sluice resume` refuses to guess: nothing new starts, nothing is undone,
                // and the run is left open for the operator's choice.
                self.shutdown.operator_needed();
                RemoteResult {
                    outcome: Some(HostOutcome::Unknown),
                    rollback: Some(RollbackOutcome::RollbackFailed),
                    error: Some(format!("needs the operator: {why}")),
                    duration: Duration::ZERO,
                    ran,
                }
            }
            _ => failed(order, "the host's task ended without its result".into()),
        }
    }
}

/// Facts only workers record in a run handed to workers (the coordinator records the run's,
/// waves' and rollbacks' facts, never a host's).
fn from_a_worker(fact: &Fact) -> bool {
    matches!(
        fact,
        Fact::HostClaimed(_)
            | Fact::HostNeedsOperator(_)
            | Fact::StepIntent(_)
            | Fact::StepResult(_)
            | Fact::HostFinished(_)
            | Fact::HealthResult(_)
            | Fact::UndoIntent(_)
            | Fact::UndoResult(_)
            | Fact::HostRolledBack(_)
            | Fact::ConfirmArmed(_)
            | Fact::ConfirmResult(_)
            | Fact::BackupStarted(_)
            | Fact::BackupResult(_)
            | Fact::HostLeaseTaken(_)
            | Fact::HostLeaseReleased(_)
            | Fact::HostLeaseBroken(_)
    )
}

/// The tasks a fact may end (it ends the one that is waited for): `host_finished` ends a
/// host's task, or its `run_once` steps' in the run_once pseudo-wave.
fn ends(fact: &Fact) -> Vec<Key> {
    match fact {
        Fact::HostFinished(f) => [WorkerTask::Host, WorkerTask::Once]
            .map(|task| (task, f.wave.clone(), f.host.clone()))
            .into(),
        Fact::HostRolledBack(r) => vec![(WorkerTask::Undo, r.wave.clone(), r.host.clone())],
        Fact::HostNeedsOperator(n) => vec![(n.task, n.wave.clone(), n.host.clone())],
        _ => Vec::new(),
    }
}

fn failed(order: &RemoteOrder, why: String) -> RemoteResult {
    RemoteResult {
        outcome: Some(HostOutcome::Failed),
        rollback: (order.task == WorkerTask::Undo).then_some(RollbackOutcome::RollbackFailed),
        error: Some(why),
        ..RemoteResult::default()
    }
}

/// Reads the run's new records every [`POLL`], and writes the run's stop to its assignments.
async fn poll(shared: Arc<Shared>, stop: StopListener) {
    let mut told = 0;
    loop {
        tokio::time::sleep(POLL).await;
        let state = stop.state();
        let level = if state.hard {
            2
        } else {
            i32::from(state.soft.is_some())
        };
        if level > told {
            let (log, run) = (shared.log.clone(), shared.run.clone());
            let asked =
                in_store(move || log.postgres("--workers")?.request_stop(&run, level)).await;
            if asked.is_ok() {
                told = level;
            }
        }
        let reader = shared.clone();
        // A failed read (the database restarting) is tried again at the next poll.
        let _ = in_store(move || reader.read_new()).await;
    }
}

impl RemoteHosts for StoreWorkers {
    fn run<'a>(&'a self, order: RemoteOrder, stop: StopListener) -> RemoteFuture<'a> {
        Box::pin(wait_for(self.shared.clone(), order, stop))
    }
}

/// Why a call of the store made off the runtime's threads did not return its value.
#[derive(Debug, thiserror::Error)]
enum StoreCallError {
    #[error(transparent)]
    Store(#[from] sluice_audit::AuditError),
    #[error("{0}")]
    Thread(#[from] tokio::task::JoinError),
}

/// Runs a call of the store off the runtime's threads (the store's API blocks).
async fn in_store<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, sluice_audit::AuditError> + Send + 'static,
) -> Result<T, StoreCallError> {
    Ok(tokio::task::spawn_blocking(call).await??)
}

/// A task's place among the waiting ones, given up however its wait ends.
struct Waiting {
    shared: Arc<Shared>,
    key: Key,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.shared.tail().waiting.remove(&self.key);
    }
}

/// What a resumed coordinator makes of a task queued before that has ended.
enum Earlier {
    /// A live worker held it at the resume: its recorded end is the result.
    Ended(RemoteResult),
    /// Handed out again (replayed by a worker from the journal); its end comes after `after`.
    Again { after: u64 },
}

/// A task queued before whose end is recorded (`done`, `blocked`): see the module
/// documentation. `queued` is what queueing it found.
async fn ended_before(
    shared: &Arc<Shared>,
    order: &RemoteOrder,
    row: HostOrder,
    queued: Queued,
) -> Result<Earlier, StoreCallError> {
    let key = (order.task, order.wave.clone(), order.host.clone());
    let log = shared.log.clone();
    let end: Option<Record> = in_store(move || log.postgres("--workers")?.task_end(&row)).await?;
    match end {
        Some(end) if shared.held.contains(&key) => {
            // Every record up to its end read first: the steps that ran are the result's.
            let reader = shared.clone();
            in_store(move || reader.read_new()).await?;
            if end.seq <= shared.tail().shown_from {
                // Recorded before this coordinator started: the poll does not show it.
                shared.events.emit(end.fact.clone());
            }
            Ok(Earlier::Ended(shared.result_of(order, end.fact).await))
        }
        end => {
            let log = shared.log.clone();
            in_store(move || log.postgres("--workers")?.requeue(queued.id)).await?;
            let ended_at = end.map_or(0, |r| r.seq);
            Ok(Earlier::Again {
                after: queued.after.max(ended_at),
            })
        }
    }
}

/// Queues `order` and waits for the fact that ends it (see the module documentation).
async fn wait_for(shared: Arc<Shared>, order: RemoteOrder, mut stop: StopListener) -> RemoteResult {
    let key = (order.task, order.wave.clone(), order.host.clone());
    let (tx, mut ended) = mpsc::unbounded_channel();
    // Waiting before it is queued: its end cannot be read before the waiter is there.
    shared.tail().waiting.insert(key.clone(), tx);
    let _waiting = Waiting {
        shared: shared.clone(),
        key,
    };
    let row = HostOrder {
        run: shared.run.clone(),
        task: order.task,
        wave: order.wave.clone(),
        host: order.host.clone(),
        label: order.label.clone(),
    };
    let (log, queued_row) = (shared.log.clone(), row.clone());
    let queued = match in_store(move || log.postgres("--workers")?.queue_host(&queued_row)).await {
        Ok(queued) => queued,
        Err(why) => {
            return failed(
                &order,
                format!("cannot hand the host to the workers: {why}"),
            );
        }
    };
    let (id, after) = match queued.state {
        AssignmentState::Done | AssignmentState::Blocked => {
            match ended_before(&shared, &order, row, queued).await {
                Ok(Earlier::Ended(result)) => return result,
                Ok(Earlier::Again { after }) => (queued.id, after),
                Err(why) => {
                    return failed(
                        &order,
                        format!("cannot hand the host to the workers again: {why}"),
                    );
                }
            }
        }
        _ => (queued.id, queued.after),
    };
    // A rollback runs after a soft stop, as in one process: only forward steps are withdrawn.
    let mut may_withdraw = order.task != WorkerTask::Undo;
    let mut label_checked = false;
    let mut hard = stop.clone();
    loop {
        tokio::select! {
            fact = ended.recv() => match fact {
                Some((seq, fact)) if seq > after => return shared.result_of(&order, fact).await,
                // An earlier claim's end (recorded before this queueing): not this task's.
                Some(_) => {}
                None => return failed(&order, "the coordinator stopped reading the run".into()),
            },
            _ = stop.soft(), if may_withdraw => {
                may_withdraw = false;
                let log = shared.log.clone();
                let withdrawn = in_store(move || log.postgres("--workers")?.withdraw_host(id)).await;
                if matches!(withdrawn, Ok(true)) {
                    return RemoteResult::default();
                }
            }
            _ = hard.hard() => {
                let mut result = failed(&order, "abandoned by a second Ctrl-C: its worker was told to abandon it; its outcome is unknown".into());
                result.outcome = Some(HostOutcome::Unknown);
                result.ran = shared.ran(&order.host);
                return result;
            }
            _ = tokio::time::sleep(LABEL_CHECK), if !label_checked => {
                label_checked = true;
                warn_if_nobody_serves(&shared, &order, id).await;
            }
        }
    }
}

/// Says once that a host still queued waits for a label no live worker serves.
async fn warn_if_nobody_serves(shared: &Arc<Shared>, order: &RemoteOrder, id: i64) {
    if shared
        .served()
        .get(&order.label)
        .is_some_and(|seen| seen.elapsed() < LABEL_CHECK)
    {
        return;
    }
    let (log, label) = (shared.log.clone(), order.label.clone());
    // `None`: a live worker serves the label; else whether the host is still queued.
    let nobody = in_store(move || {
        let pg = log.postgres("--workers")?;
        if pg.live_worker_for(label.as_deref())? {
            return Ok(None);
        }
        Ok(Some(
            pg.assignment_state(id)? == Some(AssignmentState::Queued),
        ))
    })
    .await;
    match nobody {
        Ok(Some(true)) => {}
        Ok(None) => {
            shared.served().insert(order.label.clone(), Instant::now());
            return;
        }
        _ => return,
    }
    let reason = match &order.label {
        Some(label) => format!(
            "host {} is pinned to workers labelled {label} (its `worker` variable) and no live worker has that label: it waits until one starts (`sluice worker --label {label}`), or Ctrl-C",
            order.host
        ),
        None => format!(
            "host {} waits: no worker is running (`sluice worker --store URL`), or Ctrl-C",
            order.host
        ),
    };
    tracing::warn!("{reason}");
    shared
        .decide(Decision::WaitingForWorker, &order.wave, reason)
        .await;
}
