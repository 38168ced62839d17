//! The store's behaviour: appends form one chain, batches commit together, queries, leases,
//! the resume journal, and refusal of damaged stores.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_audit::fixture::{run_started, seed_run, step_intent, step_result};
use sluice_audit::{AuditError, AuditLog, Entry, LeaseHolder, chain::GENESIS};
use sluice_model::{
    Approval, ApprovalHow, ApprovalRequested, ApprovalScope, Fact, HostFinished, HostOutcome,
    RunFinished, RunState, RunStatus,
};

/// Answers the gate before `wave` (name or index) of `run` as `sluice approve` does.
fn answer(
    log: &AuditLog,
    run: &str,
    wave: &str,
    by: &str,
    refused: bool,
) -> Result<sluice_audit::Appended, AuditError> {
    let gate = log.gate(run, wave)?;
    log.approve_wave(
        run,
        Approval::of_wave(&gate.wave, by, refused, ApprovalHow::Command),
    )
}

/// An unsigned approval of plan `hash` by `by`.
fn plan_approval(hash: &str, by: &str) -> Approval {
    Approval {
        scope: ApprovalScope::Plan {
            plan_hash: hash.into(),
        },
        by: by.into(),
        comment: None,
        refused: false,
        how: ApprovalHow::Command,
        signature: None,
    }
}

/// The kinds of `run`'s records, in order.
fn kinds_of(log: &AuditLog, run: &str) -> Vec<&'static str> {
    log.run_records(run)
        .unwrap()
        .iter()
        .map(|r| r.kind())
        .collect()
}

fn store() -> (tempfile::TempDir, AuditLog) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    (dir, log)
}

#[test]
fn records_form_one_chain_across_runs() {
    let (_dir, log) = store();
    let a = seed_run(&log, "kernel", &["web1", "web2"], &[]).unwrap();
    let b = seed_run(&log, "openssl", &["db1"], &["db1"]).unwrap();
    let first = log.record(1).unwrap().unwrap();
    assert_eq!(first.prev_hash, GENESIS);
    assert_eq!(first.run, a);
    let records_a = log.run_records(&a).unwrap();
    let records_b = log.run_records(&b).unwrap();
    // Each run's own chain links through run_prev_hash.
    for pair in records_b.windows(2) {
        assert_eq!(pair[1].run_prev_hash, pair[0].hash);
    }
    assert_eq!(records_b[0].run_prev_hash, GENESIS);
    let report = log.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records as usize, records_a.len() + records_b.len());
    assert_eq!(report.last_seq, report.records);
}

#[test]
fn batch_lands_in_one_commit_in_order() {
    let (_dir, log) = store();
    let run = log.begin_run(run_started("p", &["a", "b", "c"])).unwrap();
    let appended = log
        .append_batch(
            ["a", "b", "c"]
                .iter()
                .map(|h| Entry::new(&run, step_intent(h, "s")))
                .collect(),
        )
        .unwrap();
    let seqs: Vec<u64> = appended.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, vec![2, 3, 4]);
    let stored = log.record(3).unwrap().unwrap();
    assert_eq!(stored.prev_hash, appended[0].hash);
}

#[test]
fn store_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let run = {
        let log = AuditLog::open(dir.path()).unwrap();
        seed_run(&log, "kernel", &["web1"], &[]).unwrap()
    };
    let log = AuditLog::open_existing(dir.path()).unwrap();
    let runs = log.list_runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].run, run);
    assert_eq!(runs[0].status, RunState::Finished(RunStatus::Succeeded));
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn list_runs_counts_hosts_and_status() {
    let (_dir, log) = store();
    seed_run(&log, "kernel", &["web1", "web2", "web3"], &["web2"]).unwrap();
    let run = seed_run(&log, "openssl", &["db1", "db2"], &["db1", "db2"]).unwrap();
    let runs = log.list_runs().unwrap();
    assert_eq!(runs.len(), 2);
    let latest = runs.iter().find(|r| r.run == run).unwrap();
    assert_eq!(latest.plan_name, "openssl");
    assert_eq!(latest.status, RunState::Finished(RunStatus::Failed));
    assert_eq!(
        (latest.hosts, latest.hosts_ok(), latest.hosts_failed.len()),
        (2, 0, 2)
    );
    let other = runs.iter().find(|r| r.run != run).unwrap();
    assert_eq!((other.hosts_ok(), other.hosts_failed.len()), (2, 1));
}

#[test]
fn a_run_interrupted_before_any_host_finished_has_no_host_ok() {
    let (_dir, log) = store();
    let run = log.begin_run(run_started("p", &["a", "b"])).unwrap();
    log.append_batch(vec![
        Entry::new(&run, step_intent("a", "s1")),
        Entry::new(&run, step_result("a", "s1", true, "done")),
        Entry::new(&run, step_intent("a", "s2")),
    ])
    .unwrap();
    let summary = log.run_summary(&run).unwrap();
    assert_eq!(summary.status, RunState::INTERRUPTED);
    assert_eq!((summary.hosts_ok(), summary.hosts_failed.len()), (0, 0));
    log.append(
        &run,
        Fact::HostFinished(HostFinished {
            wave: "all".into(),
            host: "a".into(),
            outcome: HostOutcome::Ok,
            duration_ms: 3,
            error: None,
            stage: None,
        }),
    )
    .unwrap();
    assert_eq!(log.run_summary(&run).unwrap().hosts_ok(), 1);
}

#[test]
fn outputs_filter_by_host_and_step() {
    let (_dir, log) = store();
    let run = seed_run(&log, "kernel", &["web1", "web2"], &[]).unwrap();
    let all = log.outputs(&run, None, None).unwrap();
    assert_eq!(all.len(), 2);
    let one = log.outputs(&run, Some("web2"), Some("patch")).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].stdout.text(), "patched web2\n");
    assert!(log.outputs(&run, None, Some("other")).unwrap().is_empty());
    assert!(matches!(
        log.outputs("nope", None, None),
        Err(AuditError::UnknownRun { .. })
    ));
}

#[test]
fn artifact_is_stored_once_per_hash() {
    let (_dir, log) = store();
    let run = log.begin_run(run_started("p", &["a"])).unwrap();
    let artifact = serde_json::json!({"plan_hash": "abc", "hosts": []});
    assert!(
        log.store_artifact(&run, "abc", artifact.clone())
            .unwrap()
            .is_some()
    );
    assert!(
        log.store_artifact(&run, "abc", artifact.clone())
            .unwrap()
            .is_none()
    );
    assert_eq!(log.artifact("abc").unwrap(), Some(artifact));
    assert_eq!(log.artifact("def").unwrap(), None);
}

#[test]
fn approvals_bind_to_exact_plan_hash_and_wave() {
    let (_dir, log) = store();
    let artifact = serde_json::json!({"plan_hash": "aaaa1111"});
    log.approve_plan(Some(artifact.clone()), plan_approval("aaaa1111", "bob"))
        .unwrap();
    log.approve_plan(Some(artifact.clone()), plan_approval("aaaa1111", "eve"))
        .unwrap();
    assert_eq!(log.artifact("aaaa1111").unwrap(), Some(artifact));
    let approvals = log.plan_approvals("aaaa1111").unwrap();
    let by: Vec<&str> = approvals.iter().map(|(_, a)| a.by.as_str()).collect();
    assert_eq!(by, ["bob", "eve"]);
    assert!(log.plan_approvals("aaaa1112").unwrap().is_empty());
    let mut started = run_started("p", &["a"]);
    started.waves = vec!["canary".into(), "rest".into(), "last".into()];
    let run = log.begin_run(started).unwrap();
    assert_eq!(log.wave_approved(&run, "rest").unwrap(), None);
    // By index: wave 1 is "rest".
    answer(&log, &run, "1", "carol", false).unwrap();
    let approval = log.wave_approved(&run, "rest").unwrap().unwrap();
    assert_eq!((approval.by.as_str(), approval.refused), ("carol", false));
    assert_eq!(log.wave_approved(&run, "last").unwrap(), None);
    answer(&log, &run, "last", "dave", true).unwrap();
    assert!(log.wave_approved(&run, "last").unwrap().unwrap().refused);
    assert!(matches!(
        answer(&log, &run, "3", "carol", false),
        Err(AuditError::UnknownWave { .. })
    ));
    assert!(matches!(
        answer(&log, "nope", "0", "carol", false),
        Err(AuditError::UnknownRun { .. })
    ));
    // Plan approvals are not runs.
    assert_eq!(log.list_runs().unwrap().len(), 1);
}

fn hosts(names: &[&str]) -> Vec<String> {
    names.iter().map(|h| h.to_string()).collect()
}

#[test]
fn overlapping_lease_is_refused_naming_the_holder() {
    let (_dir, log) = store();
    let a = log.begin_run(run_started("p", &["a", "b"])).unwrap();
    let b = log.begin_run(run_started("q", &["b", "c"])).unwrap();
    let holder = LeaseHolder::this_process();
    log.take_leases(&a, &hosts(&["a", "b"]), &holder).unwrap();
    let err = log
        .take_leases(&b, &hosts(&["c", "b"]), &holder)
        .unwrap_err();
    match &err {
        AuditError::LeaseHeld { host, holder } => {
            assert_eq!(host, "b");
            assert_eq!(holder.run, a);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains(&a), "{err}");
    // All or none: c was not leased to b.
    let leases = log.active_leases().unwrap();
    assert_eq!(leases.len(), 2);
    assert!(leases.iter().all(|l| l.run == a));
    // The same run may take its leases again (resume).
    log.take_leases(&a, &hosts(&["a", "b"]), &holder).unwrap();
    assert_eq!(log.release_leases(&a).unwrap(), hosts(&["a", "b"]));
    log.take_leases(&b, &hosts(&["b", "c"]), &holder).unwrap();
}

#[test]
fn unlock_refuses_a_live_holder_and_breaks_a_dead_one() {
    let (_dir, log) = store();
    let run = log.begin_run(run_started("p", &["a"])).unwrap();
    log.take_leases(&run, &hosts(&["a"]), &LeaseHolder::this_process())
        .unwrap();
    assert!(matches!(
        log.break_leases(&run, "ops", None),
        Err(AuditError::LeaseHolderAlive { .. })
    ));
    // A child that has exited and been reaped: its pid is no longer alive.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let other = log.begin_run(run_started("q", &["b"])).unwrap();
    let holder = LeaseHolder {
        pid: dead,
        ..LeaseHolder::this_process()
    };
    log.take_leases(&other, &hosts(&["b"]), &holder).unwrap();
    assert_eq!(
        log.break_leases(&other, "ops", None).unwrap(),
        hosts(&["b"])
    );
    let last = log.run_records(&other).unwrap().pop().unwrap();
    assert_eq!(last.kind(), "lease_broken");
    assert!(matches!(
        log.break_leases(&other, "ops", None),
        Err(AuditError::NoLeases { .. })
    ));
}

#[test]
fn finishing_a_run_releases_its_leases_and_records_the_end_in_one_commit() {
    let (_dir, log) = store();
    let holder = LeaseHolder::this_process();
    let run = log
        .start_run(run_started("p", &["a", "b"]), &holder)
        .unwrap();
    assert_eq!(log.active_leases().unwrap().len(), 2);
    let finished = RunFinished {
        status: RunStatus::RolledBack,
        duration_ms: 7,
    };
    log.finish_run(&run, finished).unwrap();
    assert!(log.active_leases().unwrap().is_empty());
    assert_eq!(
        kinds_of(&log, &run),
        [
            "run_started",
            "lease_taken",
            "lease_released",
            "run_finished"
        ]
    );
    let summary = log.run_summary(&run).unwrap();
    assert_eq!(summary.status, RunState::Finished(RunStatus::RolledBack));
    // The two records landed in one commit: a store reopened now holds both or neither.
    let tail: Vec<u64> = log
        .run_records(&run)
        .unwrap()
        .iter()
        .rev()
        .take(2)
        .map(|r| r.seq)
        .collect();
    assert_eq!(tail[0], tail[1] + 1);
}

#[test]
fn corrupt_store_is_refused_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = AuditLog::open(dir.path()).unwrap();
        seed_run(&log, "kernel", &["web1"], &[]).unwrap();
    }
    let file = dir.path().join(sluice_audit::STORE_FILE);
    let mut bytes = std::fs::read(&file).unwrap();
    let len = bytes.len();
    for b in &mut bytes[..len.min(4096)] {
        *b ^= 0x5a;
    }
    std::fs::write(&file, &bytes).unwrap();
    let err = AuditLog::open(dir.path()).unwrap_err();
    assert!(matches!(err, AuditError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("export"), "{err}");
    // The damaged file is still there, untouched.
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
}

#[test]
fn open_existing_never_creates_a_store() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        AuditLog::open_existing(dir.path()),
        Err(AuditError::Missing { .. })
    ));
    assert!(!dir.path().join(sluice_audit::STORE_FILE).exists());
}

#[test]
fn two_handles_share_one_chain() {
    // The executor and `sluice approve` are two processes on one store; two handles in one
    // process exercise the same multi-writer locking.
    let dir = tempfile::tempdir().unwrap();
    let first = AuditLog::open(dir.path()).unwrap();
    let second = AuditLog::open(dir.path()).unwrap();
    let mut started = run_started("p", &["a"]);
    started.waves = vec!["one".into(), "two".into()];
    let run = first.begin_run(started).unwrap();
    answer(&second, &run, "two", "bob", false).unwrap();
    assert!(first.wave_approved(&run, "two").unwrap().is_some());
    first.append(&run, step_intent("a", "s")).unwrap();
    assert!(second.verify().unwrap().is_ok());
    assert_eq!(second.run_records(&run).unwrap().len(), 3);
}

#[test]
fn payload_kinds_serialise_as_documented() {
    let (_dir, log) = store();
    let run = seed_run(&log, "kernel", &["web1"], &[]).unwrap();
    let kinds = kinds_of(&log, &run);
    assert_eq!(
        kinds,
        [
            "run_started",
            "lease_taken",
            "wave_started",
            "step_intent",
            "step_result",
            "host_finished",
            "wave_decided",
            "lease_released",
            "run_finished"
        ]
    );
    let record = log.record(1).unwrap().unwrap();
    let json = serde_json::to_value(&record).unwrap();
    assert_eq!(json["kind"], "run_started");
    // The fact's fields sit beside the envelope, as in a `--json` event.
    assert_eq!(json["plan_name"], "kernel");
    assert!(matches!(record.fact, Fact::RunStarted(_)));
}

#[test]
fn refused_start_leaves_no_trace() {
    let (_dir, log) = store();
    let holder = LeaseHolder::this_process();
    let first = log
        .start_run(run_started("p", &["a", "b"]), &holder)
        .unwrap();
    let before = log.verify().unwrap().records;
    let err = log
        .start_run(run_started("q", &["b", "c"]), &holder)
        .unwrap_err();
    assert!(
        matches!(&err, AuditError::LeaseHeld { holder, .. } if holder.run == first),
        "{err}"
    );
    assert_eq!(log.verify().unwrap().records, before);
    assert_eq!(log.list_runs().unwrap().len(), 1);
    assert_eq!(log.list_runs().unwrap()[0].status, RunState::RUNNING);
}

#[test]
fn run_without_a_live_holder_is_interrupted() {
    let (_dir, log) = store();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let holder = LeaseHolder {
        pid: child.id(),
        ..LeaseHolder::this_process()
    };
    child.wait().unwrap();
    let run = log.start_run(run_started("p", &["a"]), &holder).unwrap();
    assert_eq!(log.run_summary(&run).unwrap().status, RunState::INTERRUPTED);
}

#[test]
fn concurrent_writers_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let run = AuditLog::open(dir.path())
        .unwrap()
        .begin_run(run_started("p", &["a"]))
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let path = dir.path().to_path_buf();
            let run = run.clone();
            std::thread::spawn(move || {
                let log = AuditLog::open(&path).unwrap();
                for i in 0..25 {
                    let host = format!("h{t}-{i}");
                    if i % 5 == 0 {
                        log.append_batch(vec![
                            Entry::new(&run, step_intent(&host, "s")),
                            Entry::new(&run, step_result(&host, "s", true, "ok")),
                        ])
                        .unwrap();
                    } else {
                        log.append(&run, step_intent(&host, "s")).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let log = AuditLog::open_existing(dir.path()).unwrap();
    let report = log.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, 1 + 4 * (20 + 5 * 2));
}

#[test]
fn store_of_another_controller_is_refused() {
    const META: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("meta");
    let dir = tempfile::tempdir().unwrap();
    drop(AuditLog::open(dir.path()).unwrap());
    {
        let db = redb::Database::open(dir.path().join(sluice_audit::STORE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("controller", "elsewhere")
            .unwrap();
        txn.commit().unwrap();
    }
    let err = AuditLog::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, AuditError::OtherController { owner, .. } if owner == "elsewhere"),
        "{err}"
    );
}

#[test]
fn store_held_exclusively_elsewhere_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(AuditLog::open(dir.path()).unwrap());
    // Another program holding the file for itself (redb's default, exclusive mode).
    let _held = redb::Database::open(dir.path().join(sluice_audit::STORE_FILE)).unwrap();
    let err = AuditLog::open(dir.path()).unwrap_err();
    assert!(matches!(err, AuditError::Locked { .. }), "{err}");
}

#[test]
fn pending_gates_clear_on_approval_or_finish() {
    let (_dir, log) = store();
    let mut started = run_started("p", &["a"]);
    started.waves = vec!["canary".into(), "rest".into()];
    let run = log.begin_run(started.clone()).unwrap();
    let other = log.begin_run(started).unwrap();
    let request = |wave: &str| {
        Fact::ApprovalRequested(ApprovalRequested {
            wave: wave.into(),
            stage: None,
        })
    };
    log.append(&run, request("rest")).unwrap();
    log.append(&other, request("canary")).unwrap();
    let pending: Vec<(String, String)> = log
        .pending_approvals()
        .unwrap()
        .into_iter()
        .map(|g| (g.run, g.wave))
        .collect();
    assert_eq!(
        pending,
        [
            (run.clone(), "rest".to_string()),
            (other.clone(), "canary".to_string())
        ]
    );
    answer(&log, &run, "rest", "bob", false).unwrap();
    log.append(
        &other,
        Fact::RunFinished(RunFinished {
            status: RunStatus::Aborted,
            duration_ms: 4,
        }),
    )
    .unwrap();
    assert!(log.pending_approvals().unwrap().is_empty());
}

#[test]
fn first_opens_racing_create_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let path = dir.path().to_path_buf();
            std::thread::spawn(move || {
                let log = AuditLog::open(&path).unwrap();
                log.begin_run(run_started("p", &["a"])).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let log = AuditLog::open_existing(dir.path()).unwrap();
    assert_eq!(log.list_runs().unwrap().len(), 4);
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn plan_pseudo_run_is_shown_but_not_listed() {
    let (_dir, log) = store();
    log.approve_plan(None, plan_approval("bbbb2222cccc3333", "bob"))
        .unwrap();
    assert!(log.list_runs().unwrap().is_empty());
    let run = sluice_audit::plan_run_id("bbbb2222cccc3333");
    assert_eq!(run, "plan:bbbb2222cccc");
    assert_eq!(log.run_summary(&run).unwrap().status, RunState::RUNNING);
    assert_eq!(log.run_records(&run).unwrap()[0].kind(), "approval");
}

#[test]
fn a_plan_run_starts_with_its_leases_artifact_and_confirmation_or_not_at_all() {
    let (_dir, log) = store();
    let holder = LeaseHolder::this_process();
    let confirmation = Approval {
        scope: ApprovalScope::RunStart {
            plan_hash: "h1".into(),
        },
        by: "ops".into(),
        comment: None,
        refused: false,
        how: ApprovalHow::Terminal,
        signature: None,
    };
    let mut started = run_started("p", &["a", "b"]);
    started.plan_hash = "h1".into();
    let run = log
        .start_run_with_plan(
            started,
            &holder,
            serde_json::json!({"name": "p"}),
            vec![Fact::Approval(confirmation)],
        )
        .unwrap();
    let kinds = kinds_of(&log, &run);
    assert_eq!(
        kinds,
        [
            "run_started",
            "lease_taken",
            "plan_artifact_stored",
            "approval"
        ]
    );
    // Refused by the lease on `b`: not even the artifact of the other plan is stored.
    let before = log.verify().unwrap().records;
    let mut other = run_started("q", &["b", "c"]);
    other.plan_hash = "h2".into();
    let err = log
        .start_run_with_plan(other, &holder, serde_json::json!({"name": "q"}), Vec::new())
        .unwrap_err();
    assert!(matches!(err, AuditError::LeaseHeld { .. }), "{err}");
    assert_eq!(log.verify().unwrap().records, before);
}
