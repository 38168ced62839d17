//! Connections over a run: a host's connection is closed once its wave is decided, and a later
//! rollback of that wave (`rollback_scope: run`) reconnects for the undo. On a scripted
//! transport under paused tokio time.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use sluice_exec::testkit::{PlanBuilder, Reply, ScriptedTransport, StepDef};
use sluice_exec::*;
use sluice_plan::{FailureAction, PlanArtifact, RollbackScope, TransportKind};
use tokio::sync::mpsc;

/// Ten hosts in three waves (1, 3, 6), one step with an undo, a health check.
fn plan(scope: RollbackScope) -> PlanArtifact {
    let all: Vec<String> = (1..=10).map(|i| format!("h{i}")).collect();
    let names: Vec<&str> = all.iter().map(String::as_str).collect();
    PlanBuilder::new("patch")
        .local_hosts(&names, std::path::Path::new("/nonexistent"))
        .step(StepDef::new("install", "install {host}").undo("uninstall {host}"))
        .health_run("app", "check {host}")
        .health_policy(0, 0, 60_000)
        .wave("canary", &names[..1], 1, 0)
        .wave("early", &names[1..4], 3, 0)
        .wave("rest", &names[4..], 6, 0)
        .failure(FailureAction::Rollback, scope)
        .build()
}

async fn run(artifact: PlanArtifact, transport: &ScriptedTransport) -> RunReport {
    let (tx, _rx) = mpsc::unbounded_channel();
    let executor = Executor {
        artifact: Arc::new(artifact),
        transports: Transports::new().with(TransportKind::Local, Arc::new(transport.clone())),
        secrets: Secrets::default(),
        shutdown: Shutdown::new(),
        approver: None,
        options: RunOptions::default(),
    };
    executor.run(Emitter::new("test-run", tx)).await
}

fn connects_of(t: &ScriptedTransport, host: &str) -> usize {
    t.connects().iter().filter(|(h, _)| h == host).count()
}

#[tokio::test(start_paused = true)]
async fn a_decided_wave_closes_its_connections_so_one_wave_is_open_at_a_time() {
    let t = ScriptedTransport::new(|_, _| Reply::ok().takes(Duration::from_secs(1)));
    let report = run(plan(RollbackScope::Wave), &t).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    // Without closing, all ten would be open at the end; the largest wave has six.
    assert_eq!(t.peak_open_connections(), 6);
    assert_eq!(connects_of(&t, "h1"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_run_scope_rollback_reconnects_to_undo_an_earlier_wave() {
    let t = ScriptedTransport::new(|h, cmd| {
        if h == "h3" && cmd.starts_with("check") {
            Reply::exit(1)
        } else {
            Reply::ok().takes(Duration::from_secs(1))
        }
    });
    let report = run(plan(RollbackScope::Run), &t).await;
    assert_eq!(report.status, RunStatus::RolledBack);
    assert_eq!(
        t.commands("h1"),
        vec!["install h1", "check h1", "uninstall h1"]
    );
    assert_eq!(
        connects_of(&t, "h1"),
        2,
        "closed after its wave, opened for the undo"
    );
    // The failed wave is undone on the connections it still holds.
    assert_eq!(connects_of(&t, "h3"), 1);
    assert!(
        t.peak_open_connections() <= 4,
        "{}",
        t.peak_open_connections()
    );
}
