//! Workers and host assignments in the PostgreSQL store (`pg/worker.rs`, `pg/shard.rs`) against
//! a real throwaway cluster: names unique among live workers, claims by label with `SKIP
//! LOCKED`, `host_claimed` recorded with the claim, fenced records, take-over of a dead worker's
//! hosts, withdrawal and stop requests.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sluice_audit::fixture::{run_started, step_intent};
use sluice_audit::pg::{AssignmentState, Claim, HostOrder, WorkerSpec};
use sluice_audit::{AuditError, AuditLog, OpenMode, PgStore, StoreUrl};
use sluice_model::{Fact, HostFinished, HostOutcome, WorkerTask};
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
    let a = store.queue_host(&order(&run, "a", None)).unwrap();
    let me = store.register_worker(&spec("w", &[])).unwrap();
    let claimed = store.claim_hosts(me.id, "w", &[], 1).unwrap();
    let b = store.queue_host(&order(&run, "b", None)).unwrap();
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
