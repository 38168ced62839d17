//! The store's behaviour: appends form one chain, batches commit together, queries, leases,
//! the resume journal, and refusal of damaged stores.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod behaviour;

use behaviour::{answer, hosts};
use sluice_audit::fixture::{run_started, seed_run, step_intent, step_result};
use sluice_audit::{AuditError, AuditLog, Entry, LeaseHolder};
use sluice_model::{Fact, HostFinished, HostOutcome, RunState, RunStatus};

fn store() -> (tempfile::TempDir, AuditLog) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    (dir, log)
}

#[test]
fn records_form_one_chain_across_runs() {
    let (_dir, log) = store();
    behaviour::records_form_one_chain_across_runs(&log);
}

#[test]
fn batch_lands_in_one_commit_in_order() {
    let (_dir, log) = store();
    behaviour::batch_lands_in_one_commit_in_order(&log);
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
    behaviour::list_runs_counts_hosts_and_status(&log);
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
    behaviour::outputs_filter_by_host_and_step(&log);
}

#[test]
fn artifact_is_stored_once_per_hash() {
    let (_dir, log) = store();
    behaviour::artifact_is_stored_once_per_hash(&log);
}

#[test]
fn approvals_bind_to_exact_plan_hash_and_wave() {
    let (_dir, log) = store();
    behaviour::approvals_bind_to_exact_plan_hash_and_wave(&log);
}

#[test]
fn overlapping_lease_is_refused_naming_the_holder() {
    let (_dir, log) = store();
    behaviour::overlapping_lease_is_refused_naming_the_holder(&log);
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
    behaviour::finishing_a_run_releases_its_leases_and_records_the_end_in_one_commit(&log);
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
fn a_commit_by_another_handle_between_two_commits_is_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let first = AuditLog::open(dir.path()).unwrap();
    let second = AuditLog::open(dir.path()).unwrap();
    behaviour::a_commit_by_another_handle_between_two_commits_is_in_the_summary(&first, &second);
}

#[test]
fn payload_kinds_serialise_as_documented() {
    let (_dir, log) = store();
    behaviour::payload_kinds_serialise_as_documented(&log);
}

#[test]
fn refused_start_leaves_no_trace() {
    let (_dir, log) = store();
    behaviour::refused_start_leaves_no_trace(&log);
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
    behaviour::pending_gates_clear_on_approval_or_finish(&log);
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
    behaviour::plan_pseudo_run_is_shown_but_not_listed(&log);
}

#[test]
fn a_plan_run_starts_with_its_leases_artifact_and_confirmation_or_not_at_all() {
    let (_dir, log) = store();
    behaviour::a_plan_run_starts_with_its_leases_artifact_and_confirmation_or_not_at_all(&log);
}
