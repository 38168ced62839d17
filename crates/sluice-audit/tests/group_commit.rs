//! Group commit: concurrent appends share commits, every waiter is acknowledged, the chain holds
//! every record in submission order per caller, and a failed commit fails all its waiters.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use sluice_audit::fixture::{run_started, step_intent, step_result};
use sluice_audit::{Appended, AuditError, AuditLog, BatchSink, Entry, GroupCommitter};
use sluice_model::Fact;

fn store() -> (tempfile::TempDir, Arc<AuditLog>) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    (dir, Arc::new(log))
}

/// `hosts` tasks, each doing `steps` steps as the executor does: submit an intent, wait for it,
/// submit the result, wait for it.
async fn hosts_doing_steps(
    committer: &Arc<GroupCommitter>,
    run: &str,
    hosts: usize,
    steps: usize,
) -> Vec<Vec<Appended>> {
    let mut tasks = tokio::task::JoinSet::new();
    for h in 0..hosts {
        let (committer, run) = (committer.clone(), run.to_string());
        tasks.spawn(async move {
            let host = format!("h{h:03}");
            let mut acked = Vec::new();
            for s in 0..steps {
                let step = format!("s{s}");
                for payload in [
                    step_intent(&host, &step),
                    step_result(&host, &step, true, "ok\n"),
                ] {
                    let appended = committer.submit(Entry::new(&run, payload)).await;
                    acked.push(appended.expect("committed"));
                }
            }
            (h, acked)
        });
    }
    let mut out = vec![Vec::new(); hosts];
    while let Some(joined) = tasks.join_next().await {
        let (h, acked) = joined.unwrap();
        out[h] = acked;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_commits_and_all_land_in_the_chain() {
    let (_dir, log) = store();
    let run = log.begin_run(run_started("group", &["h000"])).unwrap();
    let committer = Arc::new(GroupCommitter::start(log.clone()).unwrap());
    let (hosts, steps) = (40, 3);
    let acked = hosts_doing_steps(&committer, &run, hosts, steps).await;

    let records = u64::try_from(hosts * steps * 2).unwrap();
    let stats = committer.stats();
    assert_eq!(stats.records, records);
    assert!(
        stats.commits < records,
        "{stats:?}: concurrent records did not share commits"
    );
    assert!(stats.largest > 1, "{stats:?}");
    assert!(stats.mean_wait() > Duration::ZERO, "{stats:?}");

    // Every acknowledged record is in the store, each host's in the order it submitted them.
    let stored = log.run_records(&run).unwrap();
    assert_eq!(
        stored.len() as u64,
        records + 1,
        "run_started plus every record"
    );
    for (h, acked) in acked.iter().enumerate() {
        assert_eq!(acked.len(), steps * 2);
        assert!(acked.windows(2).all(|w| w[0].seq < w[1].seq), "host {h}");
        for a in acked {
            let record = log.record(a.seq).unwrap().unwrap();
            assert_eq!(record.hash, a.hash);
            let host = match &record.fact {
                Fact::StepIntent(i) => &i.host,
                Fact::StepResult(r) => &r.host,
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(host, &format!("h{h:03}"));
        }
    }
    // Every intent has its result: nothing is left UNKNOWN for a resume.
    let results = stored
        .iter()
        .filter(|r| matches!(&r.fact, Fact::StepResult(_)))
        .count();
    assert_eq!(results, hosts * steps);
    assert!(stored.iter().any(
        |r| matches!(&r.fact, Fact::StepResult(res) if res.host == "h039" && res.step == "s2")
    ));
    assert!(log.verify().unwrap().is_ok());
}

#[tokio::test]
async fn a_batch_cap_of_one_commits_every_record_alone() {
    let (_dir, log) = store();
    let run = log.begin_run(run_started("single", &["h000"])).unwrap();
    let committer = Arc::new(GroupCommitter::with_max_batch(log.clone(), 1).unwrap());
    hosts_doing_steps(&committer, &run, 8, 2).await;
    let stats = committer.stats();
    assert_eq!((stats.commits, stats.records, stats.largest), (32, 32, 1));
    assert!(log.verify().unwrap().is_ok());
}

/// A store whose commits all fail, slowly enough for entries to queue behind the first.
struct FailingStore;

impl BatchSink for FailingStore {
    fn commit(&self, entries: Vec<Entry>) -> Result<Vec<Appended>, AuditError> {
        std::thread::sleep(Duration::from_millis(30));
        Err(AuditError::UnknownRun {
            run: format!("{} entries", entries.len()),
        })
    }
}

#[tokio::test]
async fn a_failed_commit_fails_every_waiter_of_its_batch() {
    let committer = GroupCommitter::start(FailingStore).unwrap();
    let waits: Vec<_> = (0..10)
        .map(|i| committer.submit(Entry::new("r", step_intent(&format!("h{i}"), "s"))))
        .collect();
    for wait in waits {
        let err = wait.await.expect_err("no commit succeeds");
        assert!(err.to_string().contains("not recorded"), "{err}");
    }
    let stats = committer.stats();
    assert_eq!(stats.records, 10);
    assert!(stats.commits < 10, "{stats:?}");
}

#[tokio::test]
async fn dropping_the_committer_still_commits_what_was_submitted() {
    let (_dir, log) = store();
    let run = log.begin_run(run_started("drop", &["a"])).unwrap();
    let committer = GroupCommitter::start(log.clone()).unwrap();
    let wait = committer.submit(Entry::new(&run, step_intent("a", "s")));
    drop(committer);
    let appended = wait.await.unwrap();
    assert_eq!(
        log.record(appended.seq).unwrap().unwrap().hash,
        appended.hash
    );
}
