//! The life of a recorded run on a real audit store and the scripted transport, under paused
//! tokio time: leases are released on every outcome, a commit that fails stops the run before
//! its next command, and a gate is released by an approval recorded in the store.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_audit::{Appended, AuditError, AuditLog, BatchSink, Entry, GroupCommitter, Redactor};
use sluice_exec::testkit::{PlanBuilder, Reply, ScriptedTransport, StepDef};
use sluice_exec::{Emitter, Executor, JournalHandle, RunOptions, Secrets, Shutdown, Transports};
use sluice_lifecycle::journal::AuditJournal;
use sluice_lifecycle::{Finished, RecordedRun, start_run};
use sluice_model::{Approval, ApprovalHow, Fact, RunState, RunStatus};
use sluice_plan::{PlanArtifact, TransportKind, Window};
use tokio::sync::mpsc;

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];

fn store() -> (tempfile::TempDir, Arc<AuditLog>) {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(AuditLog::open(dir.path()).unwrap());
    (dir, log)
}

/// Three hosts in waves of 1 and 2, one step with an undo.
fn plan() -> PlanBuilder {
    PlanBuilder::new("life")
        .local_hosts(&HOSTS, std::path::Path::new("/nonexistent"))
        .step(StepDef::new("patch", "patch").undo("unpatch"))
        .wave("canary", &HOSTS[..1], 1, 0)
        .wave("rest", &HOSTS[1..], 2, 0)
}

fn ok_after(d: Duration) -> ScriptedTransport {
    ScriptedTransport::new(move |_, _| Reply::ok().takes(d))
}

/// Starts `artifact` as `apply` does and runs it to its end.
async fn apply(
    log: &Arc<AuditLog>,
    artifact: PlanArtifact,
    transport: &ScriptedTransport,
    shutdown: Shutdown,
) -> (String, Finished) {
    let redactor = Arc::new(Redactor::default());
    let started = start_run(log, &artifact, &redactor, &["sluice".into()], false).unwrap();
    let run_id = started.run_id.clone();
    let (tx, _rx) = mpsc::unbounded_channel();
    let events = Emitter::new(&run_id, tx);
    let run = RecordedRun {
        workers: false,
        held: Vec::new(),
        log: log.clone(),
        run_id: run_id.clone(),
        opening: Fact::RunStarted(started.fact),
        artifact,
        secrets: Secrets::default(),
        redactor,
        options: RunOptions::default(),
        transports: Transports::new().with(TransportKind::Local, Arc::new(transport.clone())),
        shutdown,
        terminal: None,
        max_batch: 64,
        gate_policy: None,
    };
    let finished = run.run(events).await.unwrap();
    (run_id, finished)
}

fn assert_ended(log: &AuditLog, run: &str, status: RunStatus) {
    assert!(
        log.active_leases().unwrap().is_empty(),
        "{status}: leases left behind"
    );
    let summary = log.run_summary(run).unwrap();
    assert_eq!(summary.status, RunState::Finished(status));
    let records = log.run_records(run).unwrap();
    let last = records.last().unwrap();
    assert!(
        matches!(&last.fact, Fact::RunFinished(f) if f.status == status),
        "{:?}",
        last.fact
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_that_succeeds_or_rolls_back_releases_its_leases() {
    let (_dir, log) = store();
    let (run, finished) = apply(
        &log,
        plan().build(),
        &ok_after(Duration::ZERO),
        Shutdown::new(),
    )
    .await;
    assert!(finished.unrecorded.is_none());
    assert_ended(&log, &run, RunStatus::Succeeded);

    let failing = ScriptedTransport::new(|h, cmd| {
        if h == "h3" && cmd == "patch" {
            Reply::exit(1)
        } else {
            Reply::ok()
        }
    });
    let (run, _) = apply(&log, plan().build(), &failing, Shutdown::new()).await;
    assert_ended(&log, &run, RunStatus::RolledBack);
    assert_eq!(failing.commands("h2"), ["patch", "unpatch"]);
}

#[tokio::test(start_paused = true)]
async fn a_run_outside_its_window_or_stopped_by_ctrl_c_releases_its_leases() {
    let (_dir, log) = store();
    let closed = Window::Absolute {
        start: "2001-01-01T00:00:00Z".parse().unwrap(),
        end: "2001-01-01T01:00:00Z".parse().unwrap(),
    };
    let t = ok_after(Duration::ZERO);
    let (run, _) = apply(&log, plan().window(closed).build(), &t, Shutdown::new()).await;
    assert_ended(&log, &run, RunStatus::OutsideWindow);
    assert!(t.log().is_empty(), "nothing ran outside the window");

    let shutdown = Shutdown::new();
    let stopper = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        stopper.interrupt();
    });
    let slow = ok_after(Duration::from_secs(10));
    let (run, _) = apply(&log, plan().build(), &slow, shutdown).await;
    assert_ended(&log, &run, RunStatus::Aborted);
}

#[tokio::test(start_paused = true)]
async fn a_refused_gate_ends_the_run_with_its_leases_released() {
    let (_dir, log) = store();
    let artifact = plan().approval().build();
    let gate = {
        let log = log.clone();
        tokio::spawn(async move {
            // As `sluice approve RUN --wave rest --refuse` from another terminal.
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Some(gate) = log.pending_approvals().unwrap().first() {
                    let refusal =
                        Approval::of_wave(&gate.wave, "carol", true, ApprovalHow::Command);
                    log.approve_wave(&gate.run, refusal).unwrap();
                    return;
                }
            }
        })
    };
    let (run, _) = apply(&log, artifact, &ok_after(Duration::ZERO), Shutdown::new()).await;
    gate.await.unwrap();
    assert_ended(&log, &run, RunStatus::ApprovalRefused);
}

#[tokio::test(start_paused = true)]
async fn an_approval_recorded_in_the_store_releases_the_gate() {
    let (_dir, log) = store();
    let artifact = plan().approval().build();
    let t = ok_after(Duration::ZERO);
    let approver = {
        let log = log.clone();
        let t = t.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Some(gate) = log.pending_approvals().unwrap().first() {
                    assert!(t.commands("h2").is_empty(), "the gated wave waited");
                    let approval =
                        Approval::of_wave(&gate.wave, "bob", false, ApprovalHow::Command);
                    log.approve_wave(&gate.run, approval).unwrap();
                    return gate.wave.clone();
                }
            }
        })
    };
    let (run, _) = apply(&log, artifact, &t, Shutdown::new()).await;
    assert_eq!(approver.await.unwrap(), "rest");
    assert_ended(&log, &run, RunStatus::Succeeded);
    assert_eq!(t.commands("h3"), ["patch"]);
    let approved = log.wave_approved(&run, "rest").unwrap().unwrap();
    assert_eq!(
        (approved.by.as_str(), approved.how),
        ("bob", ApprovalHow::Command)
    );
}

/// Commits to the real store until `failing` is set, then fails every commit.
struct FailingSink {
    log: Arc<AuditLog>,
    failing: Arc<AtomicBool>,
}

impl BatchSink for FailingSink {
    fn commit(&self, entries: Vec<Entry>) -> Result<Vec<Appended>, AuditError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(AuditError::Write(std::io::Error::other("disk full")));
        }
        self.log.append_batch(entries)
    }
}

#[tokio::test(start_paused = true)]
async fn a_commit_that_fails_stops_the_run_before_its_next_command() {
    let (_dir, log) = store();
    let failing = Arc::new(AtomicBool::new(false));
    let artifact = PlanBuilder::new("disk")
        .local_hosts(&HOSTS[..1], std::path::Path::new("/nonexistent"))
        .step(StepDef::new("one", "one"))
        .step(StepDef::new("two", "two"))
        .wave("all", &HOSTS[..1], 1, 0)
        .build();
    // The disk fills while `one` runs: its result cannot be recorded, and `two`'s intent
    // cannot either, so `two` is never sent.
    let flip = failing.clone();
    let t = ScriptedTransport::new(move |_, cmd| {
        if cmd == "one" {
            flip.store(true, Ordering::SeqCst);
        }
        Reply::ok()
    });
    let started = start_run(&log, &artifact, &Redactor::default(), &[], false).unwrap();
    let writer = Arc::new(
        GroupCommitter::start(FailingSink {
            log: log.clone(),
            failing,
        })
        .unwrap(),
    );
    let journal = Arc::new(AuditJournal::new(
        writer,
        &started.run_id,
        Arc::new(Redactor::default()),
    ));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let executor = Executor {
        artifact: Arc::new(artifact),
        transports: Transports::new().with(TransportKind::Local, Arc::new(t.clone())),
        secrets: Secrets::default(),
        shutdown: Shutdown::new(),
        approver: None,
        options: RunOptions {
            journal: JournalHandle::new(journal.clone()),
            ..RunOptions::default()
        },
    };
    let report = executor.run(Emitter::new(&started.run_id, tx)).await;
    assert_eq!(
        t.commands("h1"),
        ["one"],
        "nothing is sent after the failed commit"
    );
    assert_ne!(report.status, RunStatus::Succeeded);
    let mut journal_failed = false;
    while let Ok(event) = rx.try_recv() {
        if let Fact::Decision(d) = &event.fact {
            journal_failed |= d.decision == sluice_model::Decision::JournalFailed;
        }
    }
    assert!(journal_failed, "the lost record is reported");
    // The journal counted what it could not record, for the run's end to say so.
    let lost = journal.lost();
    assert!(lost.facts >= 1, "{lost:?}");
    assert!(lost.first_reason.is_some());
}
