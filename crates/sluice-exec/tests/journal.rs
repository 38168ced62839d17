//! What the executor journals, and when: wave starts and decisions with their arithmetic, health
//! probes, undo intents before the undo is sent, the host key of each step's connection, and what
//! a journal that cannot record an undo's intent does.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_exec::testkit::{PlanBuilder, Reply, ScriptedTransport, StepDef};
use sluice_exec::*;
use sluice_model::{HealthResult, StepIntent, StepResult, WaveStarted};
use sluice_model::{WaveDecided, WaveDecision};
use sluice_plan::{PlanArtifact, TransportKind};
use tokio::sync::mpsc;

/// One journal call, as the test reads it back.
#[derive(Clone, Debug, PartialEq)]
enum Call {
    Intent(StepIntent),
    Result(StepResult),
    WaveStarted(WaveStarted),
    WaveDecided(WaveDecided),
    Health(HealthResult),
    /// An undo's intent, with whether the transport had already received the undo command.
    RollbackIntent(StepIntent, bool),
    RollbackResult(StepResult),
    Other(Fact),
}

/// Keeps every call; refuses undo intents when `refuse_undo` is set.
struct Recorder {
    calls: Mutex<Vec<Call>>,
    transport: ScriptedTransport,
    refuse_undo: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("disk full")]
struct DiskFull;

impl Journal for Recorder {
    fn record<'a>(&'a self, fact: &'a Fact) -> JournalFuture<'a> {
        let call = match fact.clone() {
            Fact::StepIntent(i) => Call::Intent(i),
            Fact::StepResult(r) => Call::Result(r),
            Fact::WaveStarted(w) => Call::WaveStarted(w),
            Fact::WaveDecided(w) => Call::WaveDecided(w),
            Fact::HealthResult(h) => Call::Health(h),
            Fact::UndoIntent(i) => {
                if self.refuse_undo {
                    return Box::pin(std::future::ready(Err(JournalError::new(DiskFull))));
                }
                let sent = self.transport.commands(&i.host).contains(&i.command);
                Call::RollbackIntent(i, sent)
            }
            Fact::UndoResult(r) => Call::RollbackResult(r),
            other => Call::Other(other),
        };
        self.calls.lock().unwrap().push(call);
        Box::pin(std::future::ready(Ok(())))
    }
}

async fn run(
    plan: PlanArtifact,
    t: &ScriptedTransport,
    refuse_undo: bool,
) -> (RunReport, Vec<Call>) {
    let recorder = Arc::new(Recorder {
        calls: Mutex::new(Vec::new()),
        transport: t.clone(),
        refuse_undo,
    });
    let (tx, _rx) = mpsc::unbounded_channel();
    let executor = Executor {
        artifact: Arc::new(plan),
        transports: Transports::new().with(TransportKind::Local, Arc::new(t.clone())),
        secrets: Secrets::default(),
        shutdown: Shutdown::new(),
        approver: None,
        options: RunOptions {
            journal: JournalHandle::new(recorder.clone()),
            ..RunOptions::default()
        },
    };
    let report = executor.run(Emitter::new("journal-test", tx)).await;
    let calls = recorder.calls.lock().unwrap().clone();
    (report, calls)
}

/// Canary h1, then h2..h4 with a budget of one failure; h3 and h4 are unhealthy.
fn plan() -> PlanArtifact {
    PlanBuilder::new("journalled")
        .local_hosts(&["h1", "h2", "h3", "h4"], std::path::Path::new("/x"))
        .step(StepDef::new("drain", "drain {host}").undo("undrain {host}"))
        .step(StepDef::new("install", "install {host}").undo("uninstall {host}"))
        .health_run("app", "check {host}")
        .health_policy(1, 1_000, 60_000)
        .wave("canary", &["h1"], 1, 0)
        .wave("early", &["h2", "h3", "h4"], 3, 1)
        .build()
}

fn unhealthy(hosts: &'static [&'static str]) -> ScriptedTransport {
    ScriptedTransport::new(move |h, cmd| {
        if hosts.contains(&h) && cmd.starts_with("check") {
            Reply::exit(1)
        } else {
            Reply::ok().takes(Duration::from_millis(100))
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_failed_wave_journals_its_arithmetic_health_and_undos_in_order() {
    let t = unhealthy(&["h3", "h4"]);
    let (report, calls) = run(plan(), &t, false).await;
    assert_eq!(report.status, RunStatus::RolledBack);

    let started: Vec<_> = calls
        .iter()
        .filter_map(|c| match c {
            Call::WaveStarted(w) => Some((w.index, w.wave.as_str(), w.hosts.len(), w.max_failed)),
            _ => None,
        })
        .collect();
    assert_eq!(started, [(0, "canary", 1, 0), (1, "early", 3, 1)]);

    let decided: Vec<&WaveDecided> = calls
        .iter()
        .filter_map(|c| match c {
            Call::WaveDecided(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(decided.len(), 2, "{decided:#?}");
    assert_eq!(
        (decided[0].wave.as_str(), decided[0].decision, decided[0].ok),
        ("canary", WaveDecision::Continue, 1)
    );
    let early = decided[1];
    assert_eq!(
        (
            early.index,
            early.hosts,
            early.ok,
            early.failed,
            early.unreachable
        ),
        (Some(1), 3, 1, 2, 0)
    );
    assert_eq!(
        (early.max_failed, early.decision),
        (1, WaveDecision::Rollback)
    );
    assert!(
        early
            .reason
            .starts_with("2 failed hosts exceed max_failed 1"),
        "{}",
        early.reason
    );

    // Two rounds of health on each unhealthy host, one on each healthy one.
    let probes = |host: &str| {
        calls
            .iter()
            .filter_map(|c| match c {
                Call::Health(h) if h.host == host => Some((h.round, h.ok)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(probes("h2"), [(1, true)]);
    assert_eq!(probes("h3"), [(1, false), (2, false)]);

    // Each started host of the failed wave: undo intents newest step first, each recorded
    // before its command reached the host, each followed by its result.
    for h in ["h2", "h3", "h4"] {
        let undos: Vec<String> = calls
            .iter()
            .filter_map(|c| match c {
                Call::RollbackIntent(i, sent) if i.host == h => {
                    assert!(!sent, "{h}: undo {} was sent before its intent", i.step);
                    Some(format!("intent {}", i.step))
                }
                Call::RollbackResult(r) if r.host == h => {
                    Some(format!("result {} {}", r.step, r.status.is_success()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            undos,
            [
                "intent install",
                "result install true",
                "intent drain",
                "result drain true"
            ],
            "{h}"
        );
    }
    // The decision is journalled before any undo.
    let decided_at = calls
        .iter()
        .position(|c| matches!(c, Call::WaveDecided(d) if d.decision == WaveDecision::Rollback));
    let first_undo = calls
        .iter()
        .position(|c| matches!(c, Call::RollbackIntent(..)));
    assert!(decided_at < first_undo);
    // The canary is not undone.
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::RollbackIntent(i, _) if i.host == "h1"))
    );
}

#[tokio::test(start_paused = true)]
async fn step_results_carry_the_connections_host_key() {
    let t = unhealthy(&[]);
    let (report, calls) = run(plan(), &t, false).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    let keys: Vec<_> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Result(r) => Some((r.host.clone(), r.host_key_fingerprint.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 8);
    for (host, key) in keys {
        assert_eq!(key, Some(format!("SHA256:scripted-{host}")));
    }
}

#[tokio::test(start_paused = true)]
async fn an_undo_whose_intent_cannot_be_recorded_is_not_sent() {
    let t = unhealthy(&["h3", "h4"]);
    let (report, calls) = run(plan(), &t, true).await;
    assert_eq!(report.status, RunStatus::RollbackFailed);
    for h in ["h2", "h3", "h4"] {
        let sent = t.commands(h);
        assert!(
            !sent.iter().any(|c| c.starts_with("un")),
            "{h} got an undo: {sent:?}"
        );
    }
    let early = report.waves.iter().find(|w| w.name == "early").unwrap();
    assert_eq!(early.rollbacks(RollbackOutcome::RollbackFailed), 3);
    assert!(!calls.iter().any(|c| matches!(c, Call::RollbackResult(_))));
}
