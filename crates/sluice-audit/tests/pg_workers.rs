//! Workers and host assignments in the PostgreSQL store (`pg/worker.rs`, `pg/shard.rs`) against
//! a real throwaway cluster: names unique among live workers, claims by label with `SKIP
//! LOCKED`, `host_claimed` recorded with the claim, fenced records, take-over of a dead worker's
//! hosts, withdrawal and stop requests; a claimed host's records read by host, a worker's batch
//! of facts fenced fact by fact; a task that ended is not queued again behind the coordinator,
//! and the run's end closes its tasks.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sluice_audit::fixture::{run_started, step_intent, step_result};
use sluice_audit::pg::{AssignmentState, Claim, FencedEntry, HostOrder, WorkerSpec};
use sluice_audit::{AuditError, AuditLog, OpenMode, PgStore, StoreUrl};
use sluice_model::{
    Fact, HostFinished, HostOutcome, RunFinished, RunStatus, StepRef, UnknownChoice,
    UnknownStepsResolved, WorkerTask,
};
use sluice_testpg::PgCluster;

fn cluster() -> PgCluster {
    PgCluster::start().unwrap_or_else(|e| panic!("{e}"))
}

fn open(url: &str, expiry: Duration) -> PgStore {
    PgStore::open_with_lease_expiry(&StoreUrl::parse(url).unwrap(), OpenMode::Create, expiry)
        .unwrap()
}

/// Starts a run through the store interface every backend shares (a second connection).
fn begin_run(pg: &PgCluster, started: sluice_model::RunStarted) -> String {
    AuditLog::from(open(&pg.url(), Duration::from_secs(60)))
        .begin_run(started)
        .unwrap()
}

fn spec(name: &str, labels: &[&str]) -> WorkerSpec {
    WorkerSpec {
        name: name.into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        max_hosts: 8,
        machine: "test".into(),
        pid: std::process::id(),
    }
}

fn order(run: &str, host: &str, label: Option<&str>) -> HostOrder {
    HostOrder {
        run: run.into(),
        task: WorkerTask::Host,
        wave: "w".into(),
        host: host.into(),
        label: label.map(str::to_string),
    }
}

fn finished(claim: &Claim) -> Fact {
    Fact::HostFinished(HostFinished {
        wave: claim.order.wave.clone(),
        host: claim.order.host.clone(),
        outcome: HostOutcome::Ok,
        duration_ms: 1,
        error: None,
        stage: None,
    })
}

fn hosts_of(claims: &[Claim]) -> Vec<String> {
    claims.iter().map(|c| c.order.host.clone()).collect()
}

fn claimed_facts(pg: &PgCluster, run: &str) -> String {
    pg.psql(
        "sluice",
        &format!(
            "SELECT string_agg((body::json->>'host') || ':' || (body::json->>'worker')
                    || coalesce(':' || (body::json->>'reclaimed_from'), ''), ',' ORDER BY seq)
             FROM sluice.records WHERE run = '{run}' AND kind = 'host_claimed'"
        ),
    )
    .unwrap()
}

#[test]
fn a_live_workers_name_is_refused_until_it_stops() {
    let pg = cluster();
    let store = open(&pg.url(), Duration::from_secs(60));
    let first = store.register_worker(&spec("dc1-a", &[])).unwrap();
    let refused = store.register_worker(&spec("dc1-a", &[])).unwrap_err();
    assert!(
        matches!(&refused, AuditError::WorkerNameTaken { name, .. } if name == "dc1-a"),
        "{refused}"
    );
    assert_eq!(store.live_workers().unwrap().len(), 1);
    store.stop_worker(first.id).unwrap();
    assert!(store.live_workers().unwrap().is_empty());
    store.register_worker(&spec("dc1-a", &[])).unwrap();
}

#[test]
fn workers_claim_by_label_once_each_and_record_the_claim() {
    let pg = cluster();
    let store = open(&pg.url(), Duration::from_secs(60));
    let run = begin_run(&pg, run_started("p", &["a", "b", "c"]));
    for (host, label) in [("a", None), ("b", Some("dc2")), ("c", None)] {
        store.queue_host(&order(&run, host, label)).unwrap();
    }
    let any = store.register_worker(&spec("any", &[])).unwrap();
    let dc2 = store.register_worker(&spec("dc2", &["dc2"])).unwrap();
    let first = store.claim_hosts(any.id, "any", &[], 1).unwrap();
    assert_eq!(hosts_of(&first), ["a"]);
    // A host pinned to dc2 is never claimed by a worker without the label.
    let rest = store.claim_hosts(any.id, "any", &[], 10).unwrap();
    assert_eq!(hosts_of(&rest), ["c"]);
    let pinned = store
        .claim_hosts(dc2.id, "dc2", &["dc2".to_string()], 10)
        .unwrap();
    assert_eq!(hosts_of(&pinned), ["b"]);
    assert!(
        store
            .claim_hosts(dc2.id, "dc2", &[], 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(claimed_facts(&pg, &run), "a:any,c:any,b:dc2");
    // The fact that ends the host marks it done, in the same commit.
    store
        .append_fenced(&first[0], "any", finished(&first[0]))
        .unwrap();
    assert_eq!(
        store.assignment_state(first[0].fence.assignment).unwrap(),
        Some(AssignmentState::Done)
    );
    assert_eq!(
        store.assignment_state(rest[0].fence.assignment).unwrap(),
        Some(AssignmentState::Claimed)
    );
}

#[test]
fn concurrent_workers_never_claim_a_host_twice() {
    let pg = cluster();
    let url = pg.url();
    let store = open(&url, Duration::from_secs(60));
    let hosts: Vec<String> = (0..40).map(|i| format!("h{i}")).collect();
    let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let run = begin_run(&pg, run_started("p", &names));
    for host in &hosts {
        store.queue_host(&order(&run, host, None)).unwrap();
    }
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let store = open(&url, Duration::from_secs(60));
                let name = format!("w{t}");
                let me = store.register_worker(&spec(&name, &[])).unwrap();
                let mut mine = Vec::new();
                loop {
                    let got = store.claim_hosts(me.id, &name, &[], 3).unwrap();
                    if got.is_empty() {
                        break;
                    }
                    mine.extend(hosts_of(&got));
                }
                mine
            })
        })
        .collect();
    let mut all: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort();
    let mut expected = hosts.clone();
    expected.sort();
    assert_eq!(all, expected);
}

#[test]
fn a_dead_workers_claim_is_taken_over_and_its_later_records_are_refused() {
    let pg = cluster();
    let url = pg.url();
    let expiry = Duration::from_millis(1200);
    let store = open(&url, expiry);
    let run = begin_run(&pg, run_started("p", &["a"]));
    store.queue_host(&order(&run, "a", None)).unwrap();
    let dying = store.register_worker(&spec("dying", &[])).unwrap();
    let claim = store
        .claim_hosts(dying.id, "dying", &[], 1)
        .unwrap()
        .remove(0);
    store
        .append_fenced(&claim, "dying", step_intent("a", "s"))
        .unwrap();

    let other = open(&url, expiry);
    let heir = other.register_worker(&spec("heir", &[])).unwrap();
    // While the first worker beats, its claim is its own.
    std::thread::sleep(Duration::from_millis(2000));
    assert!(
        other
            .claim_hosts(heir.id, "heir", &[], 1)
            .unwrap()
            .is_empty()
    );
    // Its heartbeat stops (the process died): once expired, the host is taken over.
    drop(dying);
    std::thread::sleep(Duration::from_millis(1500));
    let taken = other.claim_hosts(heir.id, "heir", &[], 1).unwrap();
    assert_eq!(hosts_of(&taken), ["a"]);
    assert_eq!(taken[0].reclaimed_from.as_deref(), Some("dying"));
    assert_eq!(claimed_facts(&pg, &run), "a:dying,a:heir:dying");
    // The first worker's records for the host are refused from now on.
    let refused = store
        .append_fenced(&claim, "dying", finished(&claim))
        .unwrap_err();
    assert!(matches!(refused, AuditError::ClaimLost { .. }), "{refused}");
    other
        .append_fenced(&taken[0], "heir", finished(&taken[0]))
        .unwrap();
}

#[test]
fn a_queued_host_is_withdrawn_a_claimed_one_is_told_to_stop() {
    let pg = cluster();
    let store = open(&pg.url(), Duration::from_secs(60));
    let run = begin_run(&pg, run_started("p", &["a", "b"]));
    let a = store.queue_host(&order(&run, "a", None)).unwrap().id;
    let me = store.register_worker(&spec("w", &[])).unwrap();
    let claimed = store.claim_hosts(me.id, "w", &[], 1).unwrap();
    let b = store.queue_host(&order(&run, "b", None)).unwrap().id;
    assert!(!store.withdraw_host(a).unwrap(), "a claimed host runs on");
    assert!(store.withdraw_host(b).unwrap());
    assert!(store.claim_hosts(me.id, "w", &[], 5).unwrap().is_empty());
    assert!(store.stop_requests(&[a]).unwrap().is_empty());
    store.request_stop(&run, 1).unwrap();
    let stops = store.stop_requests(&[claimed[0].fence.assignment]).unwrap();
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0].level, 1);
}

#[test]
fn a_claim_whose_end_was_not_recorded_is_given_back_a_done_one_is_not() {
    let pg = cluster();
    let store = open(&pg.url(), Duration::from_secs(60));
    let run = begin_run(&pg, run_started("p", &["a", "b"]));
    store.queue_host(&order(&run, "a", None)).unwrap();
    store.queue_host(&order(&run, "b", None)).unwrap();
    let me = store.register_worker(&spec("w", &[])).unwrap();
    let claims = store.claim_hosts(me.id, "w", &[], 2).unwrap();
    store
        .append_fenced(&claims[1], "w", finished(&claims[1]))
        .unwrap();
    assert!(store.release_claim(&claims[0]).unwrap());
    assert!(!store.release_claim(&claims[1]).unwrap(), "b is done");
    let again = store.claim_hosts(me.id, "w", &[], 2).unwrap();
    assert_eq!(hosts_of(&again), ["a"]);
    // The released claim's fence no longer holds.
    assert!(matches!(
        store.append_fenced(&claims[0], "w", finished(&claims[0])),
        Err(AuditError::ClaimLost { .. })
    ));
}

#[test]
fn a_claim_reads_its_hosts_records_and_the_resolutions_not_the_whole_run() {
    let pg = cluster();
    let store = open(&pg.url(), Duration::from_secs(60));
    let log = AuditLog::from(open(&pg.url(), Duration::from_secs(60)));
    let run = begin_run(&pg, run_started("p", &["a", "b"]));
    let other = begin_run(&pg, run_started("p", &["a"]));
    log.append(&run, step_intent("a", "s1")).unwrap();
    log.append(&run, step_result("a", "s1", true, "one\n"))
        .unwrap();
    log.append(&run, step_intent("b", "s1")).unwrap();
    log.append(&other, step_intent("a", "s9")).unwrap();
    log.append(&run, step_intent("a", "s2")).unwrap();
    let resolved = Fact::UnknownStepsResolved(UnknownStepsResolved {
        choice: UnknownChoice::Skip,
        by: "alice".into(),
        steps: vec![StepRef::new("b", "s1")],
    });
    log.append(&run, resolved.clone()).unwrap();
    let read = store.host_records(&run, "a").unwrap();
    let facts: Vec<Fact> = read.iter().map(|r| r.fact.clone()).collect();
    assert_eq!(
        facts,
        [
            step_intent("a", "s1"),
            step_result("a", "s1", true, "one\n"),
            step_intent("a", "s2"),
            resolved,
        ]
    );
    // In chain order, as `run_records` has them.
    let seqs: Vec<u64> = read.iter().map(|r| r.seq).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(seqs, sorted);
    let all: Vec<u64> = log
        .run_records(&run)
        .unwrap()
        .iter()
        .filter(|r| read.iter().any(|h| h.seq == r.seq))
        .map(|r| r.seq)
        .collect();
    assert_eq!(all, seqs);
}

#[test]
fn a_batch_records_each_fact_under_its_own_claim() {
    let pg = cluster();
    let expiry = Duration::from_millis(1200);
    let store = open(&pg.url(), expiry);
    let run = begin_run(&pg, run_started("p", &["a", "b", "c"]));
    for host in ["a", "b", "c"] {
        store.queue_host(&order(&run, host, None)).unwrap();
    }
    let me = store.register_worker(&spec("me", &[])).unwrap();
    let claims = store.claim_hosts(me.id, "me", &[], 3).unwrap();
    assert_eq!(hosts_of(&claims), ["a", "b", "c"]);
    // c's claim is given back (its end was not recorded): its fence no longer holds.
    assert_eq!(
        store.release_claims(&claims[2..]).unwrap(),
        [claims[2].fence.assignment]
    );
    let entry = |claim: &Claim, fact: Fact| FencedEntry {
        claim: claim.clone(),
        worker: "me".into(),
        fact,
    };
    let results = store
        .append_fenced_batch(vec![
            entry(&claims[0], step_intent("a", "s")),
            entry(&claims[1], finished(&claims[1])),
            entry(&claims[2], step_intent("c", "s")),
            // After b's end, in the same batch: refused like a lost claim.
            entry(&claims[1], step_intent("b", "late")),
            entry(&claims[0], finished(&claims[0])),
        ])
        .unwrap();
    let outcome: Vec<&str> = results
        .iter()
        .map(|r| match r {
            Ok(_) => "recorded",
            Err(AuditError::ClaimLost { .. }) => "claim lost",
            Err(_) => "other error",
        })
        .collect();
    assert_eq!(
        outcome,
        [
            "recorded",
            "recorded",
            "claim lost",
            "claim lost",
            "recorded"
        ]
    );
    // One commit: the recorded facts are consecutive in the chain.
    let seqs: Vec<u64> = results.iter().flatten().map(|a| a.seq).collect();
    assert_eq!(seqs, [seqs[0], seqs[0] + 1, seqs[0] + 2]);
    for (claim, state) in [
        (&claims[0], AssignmentState::Done),
        (&claims[1], AssignmentState::Done),
        (&claims[2], AssignmentState::Queued),
    ] {
        assert_eq!(
            store.assignment_state(claim.fence.assignment).unwrap(),
            Some(state),
            "{}",
            claim.order.host
        );
    }
    // Done or given back already: nothing more to give back.
    assert!(store.release_claims(&claims).unwrap().is_empty());
    let kinds = pg
        .psql(
            "sluice",
            &format!(
                "SELECT string_agg(host || ':' || kind, ',' ORDER BY seq) FROM sluice.records
                 WHERE run = '{run}' AND kind <> 'host_claimed' AND kind <> 'run_started'"
            ),
        )
        .unwrap();
    assert_eq!(kinds, "a:step_intent,b:host_finished,a:host_finished");
}

/// Issue 18's resume race, at the store: a task that ended is left ended when it is queued
/// again (a resumed coordinator reads its end instead of handing it out a second time), and is
/// handed out again only when asked.
#[test]
fn a_task_that_ended_is_not_queued_again_unless_asked() {
    let pg = cluster();
    let store = open(&pg.url(), Duration::from_secs(60));
    let run = begin_run(&pg, run_started("p", &["a"]));
    let first = store.queue_host(&order(&run, "a", None)).unwrap();
    assert_eq!(first.state, AssignmentState::Queued);
    assert!(store.task_end(&order(&run, "a", None)).unwrap().is_none());
    let me = store.register_worker(&spec("w", &[])).unwrap();
    let claims = store.claim_hosts(me.id, "w", &[], 1).unwrap();
    // Queued again while claimed: the worker goes on, and its end comes after the tip.
    let held = store.queue_host(&order(&run, "a", None)).unwrap();
    assert_eq!(held.state, AssignmentState::Claimed);
    let end = store
        .append_fenced(&claims[0], "w", finished(&claims[0]))
        .unwrap();
    assert!(end.seq > held.after);
    let again = store.queue_host(&order(&run, "a", None)).unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(
        again.state,
        AssignmentState::Done,
        "handed out a second time"
    );
    assert!(again.after >= end.seq);
    assert!(store.claim_hosts(me.id, "w", &[], 1).unwrap().is_empty());
    let recorded = store.task_end(&order(&run, "a", None)).unwrap().unwrap();
    assert_eq!(recorded.seq, end.seq);
    assert!(matches!(recorded.fact, Fact::HostFinished(_)));
    store.requeue(again.id).unwrap();
    assert_eq!(
        hosts_of(&store.claim_hosts(me.id, "w", &[], 1).unwrap()),
        ["a"]
    );
}

/// No fact of a run lands after its `run_finished`: the finish commit withdraws the tasks
/// still queued or claimed, so a worker's fence no longer holds and nothing is claimed.
#[test]
fn the_end_of_a_run_closes_its_tasks() {
    let pg = cluster();
    let store = open(&pg.url(), Duration::from_secs(60));
    let log = AuditLog::from(open(&pg.url(), Duration::from_secs(60)));
    let run = begin_run(&pg, run_started("p", &["a", "b"]));
    store.queue_host(&order(&run, "a", None)).unwrap();
    let me = store.register_worker(&spec("w", &[])).unwrap();
    let claims = store.claim_hosts(me.id, "w", &[], 1).unwrap();
    store.queue_host(&order(&run, "b", None)).unwrap();
    log.finish_run(
        &run,
        RunFinished {
            status: RunStatus::Aborted,
            duration_ms: 1,
        },
    )
    .unwrap();
    let late = store.append_fenced(&claims[0], "w", step_intent("a", "s"));
    assert!(
        matches!(late, Err(AuditError::ClaimLost { .. })),
        "recorded after run_finished: {late:?}"
    );
    assert!(store.claim_hosts(me.id, "w", &[], 5).unwrap().is_empty());
    let last = log.run_records(&run).unwrap().pop().unwrap();
    assert!(matches!(last.fact, Fact::RunFinished(_)), "{last:?}");
}
