//! Resuming a run: the executor with prior outcomes ([`ResumeState`]) on a scripted transport
//! under paused tokio time, and [`Prior`] reading them from audit records.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_exec::prior::{Handling, Prior};
use sluice_exec::testkit::{PlanBuilder, Reply, ScriptedTransport, StepDef};
use sluice_exec::*;
use sluice_model::{
    Capture, Fact, StepIntent, StepRef, StepResult, StepStatus, UnknownChoice, UnknownStepsResolved,
};
use sluice_plan::TransportKind;
use sluice_plan::{FailureAction, PlanArtifact, RenderedCommand, RollbackScope, Segment};
use tokio::sync::mpsc;

/// Four hosts in waves of 1 and 3; two steps with undos and a health check.
fn plan() -> PlanBuilder {
    PlanBuilder::new("patch")
        .local_hosts(
            &["h1", "h2", "h3", "h4"],
            std::path::Path::new("/nonexistent"),
        )
        .step(StepDef::new("drain", "drain {host}").undo("undrain {host}"))
        .step(StepDef::new("install", "install {host}").undo("uninstall {host}"))
        .health_run("app", "check {host}")
        .health_policy(0, 0, 60_000)
        .wave("canary", &["h1"], 1, 0)
        .wave("rest", &["h2", "h3", "h4"], 3, 0)
}

/// Records the step intents and results the executor journals.
#[derive(Default)]
struct Notes {
    intents: Mutex<Vec<StepIntent>>,
    results: Mutex<Vec<StepResult>>,
}

impl Journal for Notes {
    fn record<'a>(&'a self, fact: &'a Fact) -> JournalFuture<'a> {
        match fact {
            Fact::StepIntent(i) => self.intents.lock().unwrap().push(i.clone()),
            Fact::StepResult(r) => self.results.lock().unwrap().push(r.clone()),
            _ => {}
        }
        Box::pin(async { Ok(()) })
    }
}

impl Notes {
    fn intents(&self) -> Vec<(String, String, u32)> {
        let v = self.intents.lock().map(|v| v.clone()).unwrap_or_default();
        v.into_iter().map(|n| (n.host, n.step, n.attempt)).collect()
    }

    fn results(&self) -> Vec<StepResult> {
        self.results.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

struct Outcome {
    report: RunReport,
    decisions: Vec<String>,
    notes: Arc<Notes>,
}

async fn resume(
    artifact: PlanArtifact,
    transport: &ScriptedTransport,
    state: ResumeState,
) -> Outcome {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let notes = Arc::new(Notes::default());
    let executor = Executor {
        artifact: Arc::new(artifact),
        transports: Transports::new().with(TransportKind::Local, Arc::new(transport.clone())),
        secrets: Secrets::default(),
        shutdown: Shutdown::new(),
        approver: None,
        options: RunOptions {
            journal: JournalHandle::new(notes.clone()),
            resume: Some(Arc::new(state)),
            ..RunOptions::default()
        },
    };
    let report = executor.run(Emitter::new("resumed", tx)).await;
    let mut decisions = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let Fact::Decision(d) = e.fact {
            decisions.push(d.decision.to_string());
        }
    }
    Outcome {
        report,
        decisions,
        notes,
    }
}

fn all_ok() -> ScriptedTransport {
    ScriptedTransport::new(|_, _| Reply::ok().takes(Duration::from_secs(1)))
}

/// The canary finished before the crash; h2 had drained.
fn canary_done() -> ResumeState {
    ResumeState::default()
        .done("h1", "drain", DoneStep::ok("exit 0"))
        .done("h1", "install", DoneStep::ok("exit 0"))
        .started("canary")
        .started("rest")
        .verdict("canary", WaveVerdict::WentOn)
}

#[tokio::test(start_paused = true)]
async fn steps_done_before_the_crash_are_not_run_again_and_the_rest_run() {
    let t = all_ok();
    let state = canary_done().done("h2", "drain", DoneStep::ok("exit 0"));
    let out = resume(plan().build(), &t, state).await;
    assert_eq!(out.report.status, RunStatus::Succeeded);
    // Health checks are read-only and were not recorded: they run again.
    assert_eq!(t.commands("h1"), ["check h1"]);
    assert_eq!(t.commands("h2"), ["install h2", "check h2"]);
    assert_eq!(t.commands("h3"), ["drain h3", "install h3", "check h3"]);
    let journalled: Vec<_> = out
        .notes
        .intents()
        .into_iter()
        .map(|i| (i.0, i.1))
        .collect();
    assert!(!journalled.contains(&("h1".into(), "drain".into())));
    assert!(!journalled.contains(&("h2".into(), "drain".into())));
    assert!(journalled.contains(&("h2".into(), "install".into())));
}

#[tokio::test(start_paused = true)]
async fn a_recorded_health_verdict_is_kept_for_a_host_whose_steps_all_finished() {
    let t = all_ok();
    let state = canary_done().health("h1", HealthVerdict::Passed);
    let out = resume(plan().build(), &t, state).await;
    assert_eq!(out.report.status, RunStatus::Succeeded);
    assert!(t.commands("h1").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_recorded_failure_fails_the_host_and_spends_the_budget() {
    let t = all_ok();
    let state = canary_done()
        .done("h2", "drain", DoneStep::ok("exit 0"))
        .done("h2", "install", DoneStep::failed("exit 3"));
    let out = resume(plan().build(), &t, state).await;
    assert_eq!(out.report.status, RunStatus::RolledBack);
    // The failed step is not retried; both steps that ran before the crash are undone.
    assert_eq!(t.commands("h2"), ["uninstall h2", "undrain h2"]);
    let rest = &out.report.waves[1];
    assert_eq!(rest.status, WaveStatus::RolledBack);
    assert_eq!(rest.count(HostOutcome::Failed), 1);
    let failure = rest.hosts[0].failure.as_ref().map(|f| f.detail.clone());
    assert_eq!(
        failure.as_deref(),
        Some("recorded before the resume: exit 3")
    );
}

#[tokio::test(start_paused = true)]
async fn an_unknown_step_with_a_guard_lets_the_guard_decide_and_closes_its_intent() {
    let t = ScriptedTransport::new(|_, cmd| match cmd {
        "installed h2" => Reply::ok(),
        c if c.starts_with("installed") => Reply::exit(1),
        _ => Reply::ok().takes(Duration::from_secs(1)),
    });
    let artifact = PlanBuilder::new("guarded")
        .local_hosts(&["h1", "h2"], std::path::Path::new("/nonexistent"))
        .step(StepDef::new("install", "install {host}").skip_if("installed {host}"))
        .wave("all", &["h1", "h2"], 2, 0)
        .build();
    let state = ResumeState::default()
        .again("h1", "install", 1, true)
        .again("h2", "install", 1, true)
        .started("all");
    let out = resume(artifact, &t, state).await;
    assert_eq!(out.report.status, RunStatus::Succeeded);
    assert_eq!(t.commands("h1"), ["installed h1", "install h1"]);
    assert_eq!(t.commands("h2"), ["installed h2"]);
    let closed: Vec<_> = out
        .notes
        .results()
        .into_iter()
        .filter(|r| r.host == "h2")
        .map(|r| (r.step, r.status.is_success(), r.detail))
        .collect();
    assert_eq!(
        closed,
        [(
            "install".to_string(),
            true,
            "skipped: skip_if exited 0".to_string()
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn an_unknown_idempotent_step_runs_again_from_the_attempt_it_was_in() {
    let t = all_ok();
    let state = canary_done().again("h2", "drain", 2, true);
    let out = resume(plan().build(), &t, state).await;
    assert_eq!(out.report.status, RunStatus::Succeeded);
    assert!(
        out.notes
            .intents()
            .contains(&("h2".into(), "drain".into(), 2))
    );
    assert_eq!(t.commands("h2"), ["drain h2", "install h2", "check h2"]);
}

#[tokio::test(start_paused = true)]
async fn steps_done_before_the_crash_are_undone_when_a_later_wave_fails() {
    let t = ScriptedTransport::new(|h, cmd| match (h, cmd) {
        ("h3", "install h3") => Reply::exit(1),
        _ => Reply::ok().takes(Duration::from_secs(1)),
    });
    let artifact = plan()
        .failure(FailureAction::Rollback, RollbackScope::Run)
        .build();
    let state = canary_done().health("h1", HealthVerdict::Passed);
    let out = resume(artifact, &t, state).await;
    assert_eq!(out.report.status, RunStatus::RolledBack);
    // h1's steps ran in the process that died; this one undoes them, newest first.
    assert_eq!(t.commands("h1"), ["uninstall h1", "undrain h1"]);
    assert_eq!(out.report.waves[0].status, WaveStatus::RolledBack);
    let log = t.log();
    let canary_undo = log.iter().position(|(_, c)| c == "uninstall h1");
    let last_rest_undo = log
        .iter()
        .rposition(|(h, c)| h != "h1" && c.starts_with("undrain"));
    assert!(last_rest_undo < canary_undo, "newest wave first");
}

#[tokio::test(start_paused = true)]
async fn an_undo_recorded_before_the_crash_is_not_run_again() {
    let t = all_ok();
    let state = ResumeState::default()
        .done("h1", "drain", DoneStep::ok("exit 0"))
        .done("h1", "install", DoneStep::failed("exit 1"))
        .started("canary")
        .verdict("canary", WaveVerdict::Failed)
        .undone("h1", "install", true);
    let out = resume(plan().build(), &t, state).await;
    assert_eq!(out.report.status, RunStatus::RolledBack);
    assert_eq!(t.commands("h1"), ["undrain h1"]);
    assert!(t.commands("h2").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_wave_decided_before_the_crash_keeps_its_verdict() {
    // h1 is unreachable now; the run had gone on past the canary, so that is not a failure of
    // the canary any more.
    let t = all_ok().unreachable("h1");
    let out = resume(plan().build(), &t, canary_done()).await;
    assert_eq!(out.report.status, RunStatus::Succeeded);
    assert!(out.decisions.contains(&"resume_verdict".to_string()));
    assert_eq!(t.commands("h2"), ["drain h2", "install h2", "check h2"]);
}

#[tokio::test(start_paused = true)]
async fn a_registered_value_is_restored_for_later_steps() {
    let t = all_ok();
    let record = RenderedCommand {
        segments: vec![
            Segment::Text("record ".into()),
            Segment::Registered {
                name: "old".into(),
                step: "current".into(),
                quote: true,
            },
        ],
    };
    let artifact = PlanBuilder::new("register")
        .local_hosts(&["h1"], std::path::Path::new("/nonexistent"))
        .step(StepDef::new("current", "version").register("old"))
        .step(StepDef::new("record", "").run_cmd(record))
        .wave("all", &["h1"], 1, 0)
        .build();
    let state = ResumeState::default()
        .done("h1", "current", DoneStep::ok("exit 0").registered("1.2 3"))
        .started("all");
    let out = resume(artifact, &t, state).await;
    assert_eq!(out.report.status, RunStatus::Succeeded);
    assert_eq!(t.commands("h1"), ["record '1.2 3'"]);
}

#[tokio::test(start_paused = true)]
async fn a_wave_that_had_started_does_not_wait_at_its_gate_again() {
    let t = all_ok();
    // No approver: a gate would be refused. The gate was passed before the crash.
    let artifact = plan().approval().build();
    let out = resume(artifact, &t, canary_done()).await;
    assert_eq!(out.report.status, RunStatus::Succeeded);
    assert!(out.decisions.contains(&"resume_wave".to_string()));
}

// ---- Reading the trail -------------------------------------------------------------------

fn intent(host: &str, step: &str, attempt: u32) -> Fact {
    Fact::StepIntent(StepIntent {
        host: host.into(),
        step: step.into(),
        command: step.into(),
        attempt,
        boot_id: None,
    })
}

fn result(host: &str, step: &str, attempt: u32, ok: bool, stdout: &str) -> Fact {
    let code = if ok { 0 } else { 1 };
    Fact::StepResult(StepResult {
        host: host.into(),
        step: step.into(),
        attempt,
        status: if ok {
            StepStatus::Ok
        } else {
            StepStatus::Failed
        },
        exit_code: Some(code),
        detail: format!("exit {code}"),
        duration_ms: 5,
        stdout: Capture::whole(stdout),
        stderr: Capture::default(),
        host_key_fingerprint: None,
    })
}

/// One host, four steps: a guarded one, an idempotent one, one with retries, a plain one.
fn trail_plan() -> PlanArtifact {
    let mut idempotent = StepDef::new("restart", "restart");
    idempotent.spec.idempotent = true;
    let uses_old = RenderedCommand {
        segments: vec![
            Segment::Text("pin ".into()),
            Segment::Registered {
                name: "old".into(),
                step: "current".into(),
                quote: true,
            },
        ],
    };
    PlanBuilder::new("trail")
        .local_hosts(&["h1", "h2"], std::path::Path::new("/nonexistent"))
        .step(StepDef::new("current", "version").register("old"))
        .step(StepDef::new("install", "install").skip_if("installed"))
        .step(idempotent)
        .step(StepDef::new("fetch", "fetch").retries(2, 10))
        .step(StepDef::new("pin", "").run_cmd(uses_old))
        .wave("all", &["h1", "h2"], 2, 0)
        .build()
}

#[test]
fn the_trail_sorts_steps_into_done_unknown_and_to_run() {
    let trail = vec![
        intent("h1", "current", 1),
        result("h1", "current", 1, true, "1.0\n"),
        intent("h1", "install", 1),
        intent("h1", "restart", 1),
        intent("h1", "fetch", 1),
        result("h1", "fetch", 1, false, ""),
        intent("h2", "current", 1),
        intent("h2", "pin", 1),
    ];
    let prior = Prior::read(&trail_plan(), &trail);
    let handled: Vec<_> = prior
        .unknown()
        .iter()
        .map(|u| {
            (
                u.host.as_str(),
                u.step.as_str(),
                matches!(u.handling, Handling::Operator { .. }),
            )
        })
        .collect();
    assert_eq!(
        handled,
        [
            ("h1", "install", false),
            ("h1", "restart", false),
            ("h2", "current", true),
            ("h2", "pin", true),
        ]
    );
    assert_eq!(prior.done_steps(), 1);
    let needed: Vec<_> = prior
        .needs_choice()
        .iter()
        .map(|u| u.step.clone())
        .collect();
    assert_eq!(needed, ["current", "pin"]);

    let prior = Prior::read(&trail_plan(), &trail);
    let refused = prior.resolve(None).map(|_| ()).unwrap_err();
    assert_eq!(refused.len(), 2);

    let state = Prior::read(&trail_plan(), &trail)
        .resolve(Some(UnknownChoice::Rerun))
        .unwrap();
    let done = DoneStep::ok("exit 0").registered("1.0");
    assert_eq!(state.step("h1", "current"), Some(&PriorStep::Done(done)));
    let fetch_again = PriorStep::Again {
        attempt: 2,
        after_intent: false,
    };
    assert_eq!(state.step("h1", "fetch"), Some(&fetch_again));
    let rerun = PriorStep::Again {
        attempt: 1,
        after_intent: true,
    };
    assert_eq!(state.step("h2", "pin"), Some(&rerun));
    assert!(state.wave_started("all"));

    let state = Prior::read(&trail_plan(), &trail)
        .resolve(Some(UnknownChoice::Skip))
        .unwrap();
    assert!(matches!(state.step("h2", "pin"), Some(PriorStep::Done(d)) if d.ok));
}

#[test]
fn a_registered_value_that_is_not_intact_asks_the_operator() {
    let mut cut = result("h1", "current", 1, true, "1.0\n");
    if let Fact::StepResult(r) = &mut cut {
        r.stdout.head = "***\n".into(); // masked: the hash no longer matches
    }
    let trail = vec![intent("h1", "current", 1), cut];
    let prior = Prior::read(&trail_plan(), &trail);
    let asked: Vec<_> = prior
        .needs_choice()
        .iter()
        .map(|u| u.step.clone())
        .collect();
    assert_eq!(asked, ["current"]);
    let state = prior.resolve(Some(UnknownChoice::Rerun)).unwrap();
    let rerun = PriorStep::Again {
        attempt: 1,
        after_intent: false,
    };
    assert_eq!(state.step("h1", "current"), Some(&rerun));
}

#[test]
fn a_choice_recorded_by_an_earlier_resume_counts() {
    let trail = vec![
        intent("h2", "pin", 1),
        Fact::UnknownStepsResolved(UnknownStepsResolved {
            choice: UnknownChoice::Skip,
            by: "alice".into(),
            steps: vec![StepRef::new("h2", "pin")],
        }),
    ];
    let prior = Prior::read(&trail_plan(), &trail);
    assert!(prior.needs_choice().is_empty());
    let state = prior.resolve(None).unwrap();
    assert!(matches!(state.step("h2", "pin"), Some(PriorStep::Done(d)) if d.ok));
}

#[test]
fn one_hosts_trail_resumes_it_as_the_whole_runs_trail_does() {
    // What a worker that claims h1 reads: h1's records and the operator's resolution (which
    // names h1's `install`), never h2's.
    let resolved = Fact::UnknownStepsResolved(UnknownStepsResolved {
        choice: UnknownChoice::Skip,
        by: "alice".into(),
        steps: vec![StepRef::new("h1", "install")],
    });
    let h1 = vec![
        intent("h1", "current", 1),
        result("h1", "current", 1, true, "1.0\n"),
        intent("h1", "install", 1),
        resolved.clone(),
        intent("h1", "fetch", 1),
        result("h1", "fetch", 1, true, ""),
    ];
    let mut whole = h1.clone();
    whole.extend([intent("h2", "current", 1), intent("h2", "pin", 1)]);
    let of_host = Prior::read_host(&trail_plan(), "h1", &h1);
    assert!(of_host.needs_choice().is_empty(), "{:?}", of_host.unknown());
    assert_eq!(of_host.done_steps(), 3);
    let of_host = of_host.resolve(None).unwrap();
    let of_run = Prior::read(&trail_plan(), &whole)
        .resolve(Some(UnknownChoice::Rerun))
        .unwrap();
    for step in ["current", "install", "restart", "fetch", "pin"] {
        assert_eq!(of_host.step("h1", step), of_run.step("h1", step), "{step}");
    }
    // Completed steps are not run again; the skipped one counts as done.
    assert!(matches!(of_host.step("h1", "install"), Some(PriorStep::Done(d)) if d.ok));
    assert!(matches!(of_host.step("h1", "fetch"), Some(PriorStep::Done(d)) if d.ok));
    assert_eq!(of_host.step("h1", "restart"), None);
    // Nothing of another host, and no wave verdict: waves are the coordinator's.
    assert_eq!(of_host.step("h2", "current"), None);
    assert!(!of_host.wave_started("all"));
}
