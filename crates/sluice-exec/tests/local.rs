//! Rollback ordering on real processes: the local transport, each host a directory.

use std::sync::Arc;

use sluice_exec::testkit::{PlanBuilder, StepDef};
use sluice_exec::*;
use sluice_plan::TransportKind;
use sluice_ssh::LocalTransport;

#[tokio::test]
async fn a_failure_within_budget_stops_only_that_host_and_undoes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plan = PlanBuilder::new("local")
        .local_hosts(&["a", "b"], dir.path())
        .step(StepDef::new("one", "echo one >> log").undo("echo undo-one >> log"))
        .step(StepDef::new("two", "echo two >> log").undo("echo undo-two >> log"))
        .step(StepDef::new("three", "echo three >> log; exit 1").undo("echo undo-three >> log"))
        .step(StepDef::new("four", "echo four >> log").undo("echo undo-four >> log"))
        .wave("w", &["a", "b"], 2, 5)
        .override_run("a", "three", "echo three >> log")
        .build();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let report = Executor {
        artifact: Arc::new(plan),
        transports: Transports::new().with(TransportKind::Local, Arc::new(LocalTransport)),
        secrets: Secrets::default(),
        shutdown: Shutdown::new(),
        approver: None,
        options: RunOptions::default(),
    }
    .run(Emitter::new("local", tx))
    .await;
    // Budget 5: the wave is ok with one failed host, so nothing is rolled back; the failed host
    // stopped at its failing step.
    assert_eq!(report.status, RunStatus::Applied);
    let log = |h: &str| std::fs::read_to_string(dir.path().join(h).join("log")).unwrap();
    assert_eq!(log("a"), "one\ntwo\nthree\nfour\n");
    assert_eq!(log("b"), "one\ntwo\nthree\n");
}

#[tokio::test]
async fn a_failed_wave_undoes_each_host_newest_step_first() {
    let dir = tempfile::tempdir().unwrap();
    let plan = PlanBuilder::new("local")
        .local_hosts(&["a", "b"], dir.path())
        .step(StepDef::new("one", "echo one >> log").undo("echo undo-one >> log"))
        .step(StepDef::new("two", "echo two >> log"))
        .step(StepDef::new("three", "echo three >> log; exit 1").undo("echo undo-three >> log"))
        .override_run("a", "three", "echo three >> log")
        .wave("w", &["a", "b"], 2, 0)
        .build();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let report = Executor {
        artifact: Arc::new(plan),
        transports: Transports::new().with(TransportKind::Local, Arc::new(LocalTransport)),
        secrets: Secrets::default(),
        shutdown: Shutdown::new(),
        approver: None,
        options: RunOptions::default(),
    }
    .run(Emitter::new("local", tx))
    .await;
    assert_eq!(report.status, RunStatus::WaveFailed);
    let log = |h: &str| std::fs::read_to_string(dir.path().join(h).join("log")).unwrap();
    // Host a succeeded but is in the failed wave: undone too. "two" has no undo.
    assert_eq!(log("a"), "one\ntwo\nthree\nundo-three\nundo-one\n");
    assert_eq!(log("b"), "one\ntwo\nthree\nundo-three\nundo-one\n");
}
