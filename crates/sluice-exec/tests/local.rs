//! Rollback ordering on real processes: the local transport, each host a directory.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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
    assert_eq!(report.status, RunStatus::Tolerated);
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
    assert_eq!(report.status, RunStatus::RolledBack);
    let log = |h: &str| std::fs::read_to_string(dir.path().join(h).join("log")).unwrap();
    // Host a succeeded but is in the failed wave: undone too. "two" has no undo.
    assert_eq!(log("a"), "one\ntwo\nthree\nundo-three\nundo-one\n");
    assert_eq!(log("b"), "one\ntwo\nthree\nundo-three\nundo-one\n");
}

async fn run_probe(probe: sluice_plan::HealthProbe) -> RunStatus {
    let dir = tempfile::tempdir().unwrap();
    let plan = PlanBuilder::new("probe")
        .local_hosts(&["a"], dir.path())
        .step(StepDef::new("one", "true"))
        .health_probe("probe", probe)
        .health_policy(1, 50, 2_000)
        .wave("w", &["a"], 1, 0)
        .build();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    Executor {
        artifact: Arc::new(plan),
        transports: Transports::new().with(TransportKind::Local, Arc::new(LocalTransport)),
        secrets: Secrets::default(),
        shutdown: Shutdown::new(),
        approver: None,
        options: RunOptions::default(),
    }
    .run(Emitter::new("probe", tx))
    .await
    .status
}

#[tokio::test]
async fn http_and_tcp_checks_run_from_the_controller() {
    use sluice_plan::HealthProbe;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let http = |status| HealthProbe::Http {
        url: format!("http://{addr}/healthz"),
        expect_status: status,
        options: Default::default(),
    };
    assert_eq!(run_probe(http(Some(200))).await, RunStatus::Succeeded);
    assert_eq!(run_probe(http(None)).await, RunStatus::Succeeded);
    assert_eq!(run_probe(http(Some(204))).await, RunStatus::RolledBack);
    let tcp = |address: String| HealthProbe::Tcp { address };
    assert_eq!(run_probe(tcp(addr.to_string())).await, RunStatus::Succeeded);
    // A port nobody listens on: bind, note it, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert_eq!(
        run_probe(tcp(closed.to_string())).await,
        RunStatus::RolledBack
    );
}
