//! A coordinator resumed with `--workers` while a live worker's host ends (issue 18's resume
//! race), on a real PostgreSQL cluster (sluice-testpg): the host that ended between the
//! resume's read of the run and its queueing is not handed out again, and its recorded end is
//! the result, as the dead coordinator would have taken it; a task handed out again waits for
//! its own end, not an earlier claim's.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sluice_audit::fixture::{host_finished, step_intent, step_result};
use sluice_audit::pg::{AssignmentState, HostOrder, WorkerSpec};
use sluice_audit::{AuditLog, OpenMode, PgStore, Redactor, StoreUrl};
use sluice_exec::dispatch::{RemoteHosts, RemoteOrder};
use sluice_exec::testkit::{PlanBuilder, StepDef};
use sluice_exec::{Emitter, Shutdown};
use sluice_lifecycle::coordinate::StoreWorkers;
use sluice_lifecycle::resume::{leave_to_workers, load};
use sluice_lifecycle::start_run;
use sluice_model::{Fact, HostFinished, HostOutcome, WorkerTask};
use sluice_testpg::PgCluster;
use tokio::sync::mpsc;

fn open(url: &str, expiry: Duration) -> PgStore {
    PgStore::open_with_lease_expiry(&StoreUrl::parse(url).unwrap(), OpenMode::Create, expiry)
        .unwrap()
}

/// The task of host `h1` in wave `all`.
fn order(run: &str) -> HostOrder {
    HostOrder {
        run: run.into(),
        task: WorkerTask::Host,
        wave: "all".into(),
        host: "h1".into(),
        label: None,
    }
}

/// A run of host `h1` (one step, `patch`) started by a coordinator that then dies (its leases
/// expire a second after), with `h1` queued, and a live worker `w`.
struct DeadCoordinator {
    run: String,
    store: PgStore,
    worker: sluice_audit::pg::WorkerRegistration,
}

async fn dead_coordinator(url: &str) -> DeadCoordinator {
    let artifact = PlanBuilder::new("race")
        .local_hosts(&["h1"], Path::new("/nonexistent"))
        .step(StepDef::new("patch", "patch"))
        .wave("all", &["h1"], 1, 0)
        .build();
    let dead = AuditLog::from(open(url, Duration::from_secs(1)));
    let run = start_run(
        &dead,
        &artifact,
        &Redactor::default(),
        &["sluice".into()],
        false,
    )
    .unwrap()
    .run_id;
    let store = open(url, Duration::from_secs(60));
    store.queue_host(&order(&run)).unwrap();
    let worker = store
        .register_worker(&WorkerSpec {
            name: "w".into(),
            labels: Vec::new(),
            max_hosts: 8,
            machine: "test".into(),
            pid: std::process::id(),
        })
        .unwrap();
    drop(dead);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    DeadCoordinator { run, store, worker }
}

fn task() -> RemoteOrder {
    RemoteOrder {
        task: WorkerTask::Host,
        wave: "all".into(),
        host: "h1".into(),
        label: None,
    }
}

fn finished_after(ms: u64) -> Fact {
    Fact::HostFinished(HostFinished {
        wave: "all".into(),
        host: "h1".into(),
        outcome: HostOutcome::Ok,
        duration_ms: ms,
        error: None,
        stage: None,
    })
}

/// Nobody held `h1` when the run was resumed (it was queued, unclaimed); a worker claims it
/// and ends it after the resumed coordinator started and before it queues the host. Handed out
/// again (replayed from the journal), the coordinator's result is the replay's end, not the
/// earlier claim's: taking that one would leave the replay's records to land after the run's
/// end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_handed_out_again_waits_for_its_own_end() {
    let pg = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let DeadCoordinator { run, store, worker } = dead_coordinator(&pg.url()).await;
    let log = Arc::new(AuditLog::from(open(&pg.url(), Duration::from_secs(60))));
    let mut resumable = load(&log, &run).unwrap();
    let held = leave_to_workers(&mut resumable, true).unwrap();
    assert!(held.is_empty());
    let (tx, _rx) = mpsc::unbounded_channel();
    let shutdown = Shutdown::new();
    let workers = StoreWorkers::start(
        log.clone(),
        &run,
        Emitter::new(&run, tx),
        shutdown.clone(),
        &held,
    )
    .unwrap();
    // Within the coordinator's first poll (100 ms): the earlier claim's end is new to it.
    let first = store.claim_hosts(worker.id, "w", &[], 1).unwrap().remove(0);
    store.append_fenced(&first, "w", finished_after(3)).unwrap();
    let waiting = tokio::spawn(async move {
        let result = workers.run(task(), shutdown.subscribe()).await;
        (workers, result)
    });
    let again = loop {
        let claims = store.claim_hosts(worker.id, "w", &[], 1).unwrap();
        if let Some(claim) = claims.into_iter().next() {
            break claim;
        }
        assert!(
            !waiting.is_finished(),
            "the coordinator took the earlier claim's end"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    store.append_fenced(&again, "w", finished_after(7)).unwrap();
    let (_workers, result) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the replay's end was not taken")
        .unwrap();
    assert_eq!(result.duration, Duration::from_millis(7), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_ends_while_the_coordinator_resumes_is_not_handed_out_again() {
    let pg = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let DeadCoordinator { run, store, worker } = dead_coordinator(&pg.url()).await;
    let claim = store.claim_hosts(worker.id, "w", &[], 1).unwrap().remove(0);
    store
        .append_fenced(&claim, "w", step_intent("h1", "patch"))
        .unwrap();

    // The resume reads the run with the host in flight on the live worker...
    let log = Arc::new(AuditLog::from(open(&pg.url(), Duration::from_secs(60))));
    let mut resumable = load(&log, &run).unwrap();
    let held = leave_to_workers(&mut resumable, true).unwrap();
    assert_eq!(held.len(), 1, "the worker holds h1");
    assert!(resumable.prior.needs_choice().is_empty());
    // ...and the host ends before the resumed coordinator queues it.
    store
        .append_fenced(&claim, "w", step_result("h1", "patch", true, ""))
        .unwrap();
    store
        .append_fenced(&claim, "w", host_finished("h1"))
        .unwrap();

    let (tx, _rx) = mpsc::unbounded_channel();
    let shutdown = Shutdown::new();
    let workers = StoreWorkers::start(
        log.clone(),
        &run,
        Emitter::new(&run, tx),
        shutdown.clone(),
        &held,
    )
    .unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        workers.run(task(), shutdown.subscribe()),
    )
    .await
    .expect("the resumed coordinator waited for an end already recorded");
    assert_eq!(result.outcome, Some(HostOutcome::Ok));
    assert_eq!(result.ran, ["patch"]);
    assert_eq!(
        store.assignment_state(claim.fence.assignment).unwrap(),
        Some(AssignmentState::Done),
        "h1 was handed out a second time"
    );
    assert!(
        store
            .claim_hosts(worker.id, "w", &[], 8)
            .unwrap()
            .is_empty()
    );
    let claims = log
        .run_records(&run)
        .unwrap()
        .iter()
        .filter(|r| matches!(r.fact, Fact::HostClaimed(_)))
        .count();
    assert_eq!(claims, 1);
}
