//! The next wave's SSH connections are opened while the current wave runs, and nothing more:
//! no command reaches a host before its wave, and not across a gate, a pause or for local hosts.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use sluice_exec::testkit::{PlanBuilder, Reply, ScriptedTransport, StepDef};
use sluice_exec::*;
use sluice_plan::{PlanArtifact, TransportKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Two waves, `a` then `b` and `c` (one at a time), one step of 1 s each; local hosts until
/// [`over_ssh`]. `pause_ms`: a soak time after the first wave.
fn plan(pause_ms: Option<u64>) -> PlanArtifact {
    let mut p = PlanBuilder::new("warm")
        .local_hosts(&["a", "b", "c"], std::path::Path::new("/nonexistent"))
        .step(StepDef::new("work", "work {host}"))
        .wave("first", &["a"], 1, 0);
    if let Some(ms) = pause_ms {
        p = p.pause_ms(ms);
    }
    p.wave("second", &["b", "c"], 1, 0).build()
}

fn over_ssh(mut artifact: PlanArtifact) -> PlanArtifact {
    for host in &mut artifact.hosts {
        host.connection.transport = TransportKind::Ssh;
    }
    artifact
}

async fn run(artifact: PlanArtifact, t: &ScriptedTransport, no_preconnect: bool) -> RunReport {
    run_gated(artifact, t, no_preconnect, None).await
}

async fn run_gated(
    artifact: PlanArtifact,
    t: &ScriptedTransport,
    no_preconnect: bool,
    approver: Option<Arc<dyn Approver>>,
) -> RunReport {
    let (tx, _rx) = mpsc::unbounded_channel();
    let executor = Executor {
        artifact: Arc::new(artifact),
        transports: Transports::new()
            .with(TransportKind::Local, Arc::new(t.clone()))
            .with(TransportKind::Ssh, Arc::new(t.clone().opened_ahead())),
        secrets: Secrets::default(),
        shutdown: Shutdown::new(),
        approver,
        options: RunOptions {
            no_preconnect,
            ..RunOptions::default()
        },
    };
    executor.run(Emitter::new("warm-run", tx)).await
}

fn connected_at(t: &ScriptedTransport, host: &str) -> Vec<Instant> {
    t.connects()
        .into_iter()
        .filter(|(h, _)| h == host)
        .map(|(_, at)| at)
        .collect()
}

fn slow(fail_on: &'static str) -> ScriptedTransport {
    ScriptedTransport::new(move |host, _| {
        let reply = if host == fail_on {
            Reply::exit(1)
        } else {
            Reply::ok()
        };
        reply.takes(Duration::from_secs(1))
    })
}

#[tokio::test(start_paused = true)]
async fn the_next_waves_first_host_connects_during_the_current_wave_and_runs_after_it() {
    let t = slow("none");
    let start = Instant::now();
    let report = run(over_ssh(plan(None)), &t, false).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    // Wave `second` has concurrency 1: only `b`, its first host, is warmed during `first`.
    let b = connected_at(&t, "b");
    assert_eq!(b.len(), 1, "one connection for b, reused: {b:?}");
    assert!(
        b[0] < start + Duration::from_secs(1),
        "b connected during wave 1"
    );
    let c = connected_at(&t, "c");
    assert_eq!(c.len(), 1);
    assert!(
        c[0] >= start + Duration::from_secs(2),
        "c waits for its slot"
    );
    // Commands still follow the waves.
    let order: Vec<String> = t.log().into_iter().map(|(h, _)| h).collect();
    assert_eq!(order, ["a", "b", "c"]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_wave_leaves_the_warmed_hosts_without_a_command() {
    let t = slow("a");
    let report = run(over_ssh(plan(None)), &t, false).await;
    assert_eq!(report.status, RunStatus::RolledBack);
    assert_eq!(connected_at(&t, "b").len(), 1, "b was warmed");
    assert!(t.commands("b").is_empty(), "but never received a command");
    assert!(t.commands("c").is_empty());
}

#[tokio::test(start_paused = true)]
async fn no_warm_up_across_a_pause_for_local_hosts_or_when_turned_off() {
    let cases = [
        (
            "a pause after wave 1",
            over_ssh(plan(Some(5_000))),
            false,
            6,
        ),
        ("local hosts", plan(None), false, 1),
        ("no_preconnect", over_ssh(plan(None)), true, 1),
    ];
    for (case, artifact, no_preconnect, wave_two_at) in cases {
        let t = slow("none");
        let start = Instant::now();
        let report = run(artifact, &t, no_preconnect).await;
        assert_eq!(report.status, RunStatus::Succeeded, "{case}");
        let b = connected_at(&t, "b");
        assert_eq!(b.len(), 1, "{case}");
        assert!(
            b[0] >= start + Duration::from_secs(wave_two_at),
            "{case}: b connected only when its wave started"
        );
    }
}

/// Approves every gate after 10 s, as a person would after a while.
struct SlowApprover;

impl Approver for SlowApprover {
    fn approve<'a>(&'a self, _run: &'a str, wave: &'a str) -> approval::ApprovalFuture<'a> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            sluice_model::Approval::of_wave(wave, "test", false, sluice_model::ApprovalHow::Command)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn no_warm_up_across_an_approval_gate() {
    let mut artifact = over_ssh(plan(None));
    artifact.waves[1].approval = true;
    let t = slow("none");
    let start = Instant::now();
    let report = run_gated(artifact, &t, false, Some(Arc::new(SlowApprover))).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    let b = connected_at(&t, "b");
    assert_eq!(b.len(), 1);
    // Wave 1 ends at 1 s, the gate is answered at 11 s: b connects only then.
    assert!(
        b[0] >= start + Duration::from_secs(11),
        "b connected before approval"
    );
}
