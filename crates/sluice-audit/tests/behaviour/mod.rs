//! The store's behaviour that does not depend on its backend, shared by the redb store's tests
//! (tests/store.rs) and the PostgreSQL store's (tests/pg_store.rs): each function is one
//! behaviour, checked on a fresh, empty store.
#![allow(dead_code)]

use sluice_audit::fixture::{host_finished, run_started, seed_run, step_intent};
use sluice_audit::{AuditError, AuditLog, Entry, LeaseHolder, chain::GENESIS};
use sluice_model::{
    Approval, ApprovalHow, ApprovalRequested, ApprovalScope, Fact, RunFinished, RunState, RunStatus,
};

/// Answers the gate before `wave` (name or index) of `run` as `sluice approve` does.
pub fn answer(
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
pub fn plan_approval(hash: &str, by: &str) -> Approval {
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
pub fn kinds_of(log: &AuditLog, run: &str) -> Vec<&'static str> {
    log.run_records(run)
        .unwrap()
        .iter()
        .map(|r| r.kind())
        .collect()
}

pub fn hosts(names: &[&str]) -> Vec<String> {
    names.iter().map(|h| h.to_string()).collect()
}

pub fn records_form_one_chain_across_runs(log: &AuditLog) {
    let a = seed_run(log, "kernel", &["web1", "web2"], &[]).unwrap();
    let b = seed_run(log, "openssl", &["db1"], &["db1"]).unwrap();
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

pub fn batch_lands_in_one_commit_in_order(log: &AuditLog) {
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

pub fn list_runs_counts_hosts_and_status(log: &AuditLog) {
    seed_run(log, "kernel", &["web1", "web2", "web3"], &["web2"]).unwrap();
    let run = seed_run(log, "openssl", &["db1", "db2"], &["db1", "db2"]).unwrap();
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

pub fn outputs_filter_by_host_and_step(log: &AuditLog) {
    let run = seed_run(log, "kernel", &["web1", "web2"], &[]).unwrap();
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

pub fn artifact_is_stored_once_per_hash(log: &AuditLog) {
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

pub fn approvals_bind_to_exact_plan_hash_and_wave(log: &AuditLog) {
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
    answer(log, &run, "1", "carol", false).unwrap();
    let approval = log.wave_approved(&run, "rest").unwrap().unwrap();
    assert_eq!((approval.by.as_str(), approval.refused), ("carol", false));
    assert_eq!(log.wave_approved(&run, "last").unwrap(), None);
    answer(log, &run, "last", "dave", true).unwrap();
    assert!(log.wave_approved(&run, "last").unwrap().unwrap().refused);
    assert!(matches!(
        answer(log, &run, "3", "carol", false),
        Err(AuditError::UnknownWave { .. })
    ));
    assert!(matches!(
        answer(log, "nope", "0", "carol", false),
        Err(AuditError::UnknownRun { .. })
    ));
    // Plan approvals are not runs.
    assert_eq!(log.list_runs().unwrap().len(), 1);
}

pub fn overlapping_lease_is_refused_naming_the_holder(log: &AuditLog) {
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

pub fn finishing_a_run_releases_its_leases_and_records_the_end_in_one_commit(log: &AuditLog) {
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
        kinds_of(log, &run),
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

pub fn payload_kinds_serialise_as_documented(log: &AuditLog) {
    let run = seed_run(log, "kernel", &["web1"], &[]).unwrap();
    let kinds = kinds_of(log, &run);
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

pub fn refused_start_leaves_no_trace(log: &AuditLog) {
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

pub fn pending_gates_clear_on_approval_or_finish(log: &AuditLog) {
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
    answer(log, &run, "rest", "bob", false).unwrap();
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

pub fn plan_pseudo_run_is_shown_but_not_listed(log: &AuditLog) {
    log.approve_plan(None, plan_approval("bbbb2222cccc3333", "bob"))
        .unwrap();
    assert!(log.list_runs().unwrap().is_empty());
    let run = sluice_audit::plan_run_id("bbbb2222cccc3333");
    assert_eq!(run, "plan:bbbb2222cccc");
    assert_eq!(log.run_summary(&run).unwrap().status, RunState::RUNNING);
    assert_eq!(log.run_records(&run).unwrap()[0].kind(), "approval");
}

pub fn a_plan_run_starts_with_its_leases_artifact_and_confirmation_or_not_at_all(log: &AuditLog) {
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
    let kinds = kinds_of(log, &run);
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

/// Every behaviour above, by name, for a backend's test to run one by one.
/// One behaviour: a name and the check, given a fresh store.
pub type Behaviour = (&'static str, fn(&AuditLog));

/// Regression test for the summary cache (`summary_cache.rs`), given two handles on one store:
/// a handle keeps the run summaries it committed for its next commit, which must still see what
/// another process (here the second handle) committed in between, or the summary would miss
/// that record and the next record's `run_prev_hash` would skip it.
pub fn a_commit_by_another_handle_between_two_commits_is_in_the_summary(
    first: &AuditLog,
    second: &AuditLog,
) {
    let run = first.begin_run(run_started("p", &["a", "b"])).unwrap();
    first.append(&run, host_finished("a")).unwrap();
    second.append(&run, host_finished("b")).unwrap();
    first.append(&run, step_intent("a", "s")).unwrap();
    for log in [first, second] {
        let summary = log.run_summary(&run).unwrap();
        assert_eq!(summary.records, 4);
        let finished: Vec<&str> = summary.hosts_finished.iter().map(String::as_str).collect();
        assert_eq!(finished, ["a", "b"]);
        assert!(log.verify().unwrap().is_ok());
    }
}

pub const ALL: &[Behaviour] = &[
    (
        "records_form_one_chain_across_runs",
        records_form_one_chain_across_runs,
    ),
    (
        "batch_lands_in_one_commit_in_order",
        batch_lands_in_one_commit_in_order,
    ),
    (
        "list_runs_counts_hosts_and_status",
        list_runs_counts_hosts_and_status,
    ),
    (
        "outputs_filter_by_host_and_step",
        outputs_filter_by_host_and_step,
    ),
    (
        "artifact_is_stored_once_per_hash",
        artifact_is_stored_once_per_hash,
    ),
    (
        "approvals_bind_to_exact_plan_hash_and_wave",
        approvals_bind_to_exact_plan_hash_and_wave,
    ),
    (
        "overlapping_lease_is_refused_naming_the_holder",
        overlapping_lease_is_refused_naming_the_holder,
    ),
    (
        "finishing_a_run_releases_its_leases_and_records_the_end_in_one_commit",
        finishing_a_run_releases_its_leases_and_records_the_end_in_one_commit,
    ),
    (
        "payload_kinds_serialise_as_documented",
        payload_kinds_serialise_as_documented,
    ),
    (
        "refused_start_leaves_no_trace",
        refused_start_leaves_no_trace,
    ),
    (
        "pending_gates_clear_on_approval_or_finish",
        pending_gates_clear_on_approval_or_finish,
    ),
    (
        "plan_pseudo_run_is_shown_but_not_listed",
        plan_pseudo_run_is_shown_but_not_listed,
    ),
    (
        "a_plan_run_starts_with_its_leases_artifact_and_confirmation_or_not_at_all",
        a_plan_run_starts_with_its_leases_artifact_and_confirmation_or_not_at_all,
    ),
];
