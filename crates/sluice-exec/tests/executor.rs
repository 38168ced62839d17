//! The executor's behaviour, on a scripted transport under paused tokio time.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use sluice_exec::testkit::{PlanBuilder, Reply, ScriptedTransport, StepDef};
use sluice_exec::*;
use sluice_model::{Approval, ApprovalHow, WaveDecision, WaveStatus};
use sluice_plan::{FailureAction, PlanArtifact, RollbackScope, TransportKind, Window};
use tokio::sync::mpsc;

fn hosts(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i}")).collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Ten hosts in three waves (1, 3, 6), two steps with undos and a health check.
fn ten_host_plan() -> PlanBuilder {
    let all = hosts("h", 10);
    PlanBuilder::new("patch")
        .local_hosts(&refs(&all), std::path::Path::new("/nonexistent"))
        .step(StepDef::new("drain", "drain {host}").undo("undrain {host}"))
        .step(StepDef::new("install", "install {host}").undo("uninstall {host}"))
        .health_run("app", "check {host}")
        .health_policy(0, 0, 60_000)
        .wave("canary", &refs(&all[..1]), 1, 0)
        .wave("early", &refs(&all[1..4]), 3, 0)
        .wave("rest", &refs(&all[4..]), 6, 0)
}

struct Outcome {
    report: RunReport,
    events: Vec<Event>,
}

impl Outcome {
    /// The decisions taken, in order: run-level decisions, and the verdicts of waves that did
    /// not simply go on.
    fn decisions(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match &e.fact {
                Fact::Decision(d) => Some(d.decision.to_string()),
                Fact::WaveDecided(w)
                    if w.decision != WaveDecision::Continue || w.status != WaveStatus::Ok =>
                {
                    Some(w.decision.to_string())
                }
                _ => None,
            })
            .collect()
    }

    fn wave(&self, name: &str) -> &WaveReport {
        self.report
            .waves
            .iter()
            .find(|w| w.name == name)
            .expect("wave in report")
    }
}

async fn run_with(
    artifact: PlanArtifact,
    transport: &ScriptedTransport,
    shutdown: Shutdown,
    approver: Option<Arc<dyn Approver>>,
    secrets: Secrets,
) -> Outcome {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let executor = Executor {
        artifact: Arc::new(artifact),
        transports: Transports::new().with(TransportKind::Local, Arc::new(transport.clone())),
        secrets,
        shutdown,
        approver,
        options: RunOptions::default(),
    };
    let report = executor.run(Emitter::new("test-run", tx)).await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    Outcome { report, events }
}

async fn run(artifact: PlanArtifact, transport: &ScriptedTransport) -> Outcome {
    run_with(
        artifact,
        transport,
        Shutdown::new(),
        None,
        Secrets::default(),
    )
    .await
}

fn all_ok() -> ScriptedTransport {
    ScriptedTransport::new(|_, _| Reply::ok().takes(Duration::from_secs(1)))
}

#[tokio::test(start_paused = true)]
async fn happy_path_runs_every_step_and_check_on_every_host_wave_by_wave() {
    let t = all_ok();
    let out = run(ten_host_plan().build(), &t).await;
    assert_eq!(out.report.status, RunStatus::Succeeded);
    for h in hosts("h", 10) {
        assert_eq!(
            t.commands(&h),
            vec![
                format!("drain {h}"),
                format!("install {h}"),
                format!("check {h}")
            ]
        );
    }
    let waves: Vec<_> = out
        .report
        .waves
        .iter()
        .map(|w| (w.name.as_str(), w.status, w.count(HostOutcome::Ok)))
        .collect();
    assert_eq!(
        waves,
        vec![
            ("canary", WaveStatus::Ok, 1),
            ("early", WaveStatus::Ok, 3),
            ("rest", WaveStatus::Ok, 6)
        ]
    );
    // Wave barrier: no host of "rest" ran before every host of "early" finished.
    let log = t.log();
    let last_early = log
        .iter()
        .rposition(|(h, _)| ["h2", "h3", "h4"].contains(&h.as_str()));
    let first_rest = log.iter().position(|(h, _)| h == "h5");
    assert!(last_early < first_rest);
}

fn health_fails_on(host: &'static str) -> ScriptedTransport {
    ScriptedTransport::new(move |h, cmd| {
        if h == host && cmd.starts_with("check") {
            Reply::exit(1)
        } else {
            Reply::ok().takes(Duration::from_secs(1))
        }
    })
}

#[tokio::test(start_paused = true)]
async fn health_failure_in_wave_two_undoes_its_started_hosts_in_reverse_order() {
    let t = health_fails_on("h3");
    let out = run(ten_host_plan().build(), &t).await;
    assert_eq!(out.report.status, RunStatus::RolledBack);
    for h in ["h2", "h3", "h4"] {
        assert_eq!(
            t.commands(h),
            vec![
                format!("drain {h}"),
                format!("install {h}"),
                format!("check {h}"),
                format!("uninstall {h}"),
                format!("undrain {h}"),
            ]
        );
    }
    // Wave 1 untouched, wave 3 never started.
    assert_eq!(t.commands("h1"), vec!["drain h1", "install h1", "check h1"]);
    assert!(t.commands("h5").is_empty());
    assert_eq!(out.wave("early").status, WaveStatus::RolledBack);
    assert_eq!(out.wave("early").rollbacks(RollbackOutcome::RolledBack), 3);
    assert_eq!(out.wave("early").count(HostOutcome::Unhealthy), 1);
    assert_eq!(out.wave("rest").status, WaveStatus::NotStarted);
    assert_eq!(out.wave("canary").status, WaveStatus::Ok);
}

#[tokio::test(start_paused = true)]
async fn rollback_scope_run_also_undoes_earlier_waves_newest_first() {
    let t = health_fails_on("h3");
    let plan = ten_host_plan()
        .failure(FailureAction::Rollback, RollbackScope::Run)
        .build();
    let out = run(plan, &t).await;
    assert_eq!(out.report.status, RunStatus::RolledBack);
    assert_eq!(
        t.commands("h1"),
        vec![
            "drain h1",
            "install h1",
            "check h1",
            "uninstall h1",
            "undrain h1"
        ]
    );
    let log = t.log();
    let last_early_undo = log
        .iter()
        .rposition(|(_, c)| c == "undrain h2" || c == "undrain h3" || c == "undrain h4");
    let canary_undo = log.iter().position(|(_, c)| c == "uninstall h1");
    assert!(last_early_undo < canary_undo, "newest wave first");
    assert_eq!(out.wave("canary").status, WaveStatus::RolledBack);
}

#[tokio::test(start_paused = true)]
async fn budget_of_one_tolerates_one_failure_and_the_second_stops_new_hosts() {
    let all = hosts("h", 6);
    let plan = PlanBuilder::new("budget")
        .local_hosts(&refs(&all), std::path::Path::new("/x"))
        .step(StepDef::new("work", "work {host}").undo("unwork {host}"))
        .override_run("h2", "work", "fail")
        .override_run("h4", "work", "fail")
        .wave("only", &refs(&all), 1, 1)
        .build();
    let t = ScriptedTransport::new(|_, cmd| {
        if cmd == "fail" {
            Reply::exit(3)
        } else {
            Reply::ok()
        }
    });
    let out = run(plan, &t).await;
    assert_eq!(out.report.status, RunStatus::RolledBack);
    // h3 started after the first failure (budget 1 not exceeded); nothing after the second.
    assert!(!t.commands("h3").is_empty());
    assert!(t.commands("h5").is_empty() && t.commands("h6").is_empty());
    assert_eq!(out.wave("only").count(HostOutcome::NotStarted), 2);
    assert!(out.decisions().contains(&"budget_spent".to_string()));
}

#[tokio::test(start_paused = true)]
async fn one_failure_within_budget_keeps_the_wave_ok() {
    let all = hosts("h", 3);
    let plan = PlanBuilder::new("budget")
        .local_hosts(&refs(&all), std::path::Path::new("/x"))
        .step(StepDef::new("work", "work {host}"))
        .wave("only", &refs(&all), 3, 1)
        .build();
    let t = ScriptedTransport::new(|_, _| Reply::ok()).unreachable("h2");
    let out = run(plan, &t).await;
    // The wave went on, and the run says a failure was tolerated.
    assert_eq!(out.report.status, RunStatus::Tolerated);
    assert_eq!(out.wave("only").count(HostOutcome::Unreachable), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_host_is_a_failure() {
    let t = all_ok().unreachable("h1");
    let out = run(ten_host_plan().build(), &t).await;
    assert_eq!(out.report.status, RunStatus::RolledBack);
    assert_eq!(out.wave("canary").count(HostOutcome::Unreachable), 1);
    assert!(t.commands("h2").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_hung_command_times_out_and_fails_the_host() {
    let all = hosts("h", 1);
    let plan = PlanBuilder::new("hang")
        .local_hosts(&refs(&all), std::path::Path::new("/x"))
        .step(
            StepDef::new("hang", "hang")
                .timeout_ms(5_000)
                .undo("unhang"),
        )
        .wave("only", &refs(&all), 1, 0)
        .build();
    let t = ScriptedTransport::new(|_, cmd| {
        if cmd == "hang" {
            Reply::ok().takes(Duration::from_secs(3600))
        } else {
            Reply::ok()
        }
    });
    let start = tokio::time::Instant::now();
    let out = run(plan, &t).await;
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!(out.report.status, RunStatus::RolledBack);
    let timed_out = out.events.iter().any(|e| {
        matches!(
            &e.fact,
            Fact::StepResult(r) if r.status == StepStatus::TimedOut
        )
    });
    assert!(timed_out);
    // The timed-out step ran, so its undo runs.
    assert_eq!(t.commands("h1"), vec!["hang", "unhang"]);
}

#[tokio::test(start_paused = true)]
async fn retries_wait_their_delay_and_a_later_success_counts() {
    let all = hosts("h", 1);
    let plan = PlanBuilder::new("retry")
        .local_hosts(&refs(&all), std::path::Path::new("/x"))
        .step(StepDef::new("flaky", "flaky").retries(2, 10_000))
        .wave("only", &refs(&all), 1, 0)
        .build();
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = calls.clone();
    let t = ScriptedTransport::new(move |_, _| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            Reply::exit(1)
        } else {
            Reply::ok()
        }
    });
    let start = tokio::time::Instant::now();
    let out = run(plan, &t).await;
    assert_eq!(out.report.status, RunStatus::Succeeded);
    assert_eq!(t.commands("h1").len(), 3);
    assert!(start.elapsed() >= Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn a_failing_undo_leaves_the_host_rollback_failed() {
    let all = hosts("h", 1);
    let plan = PlanBuilder::new("undo")
        .local_hosts(&refs(&all), std::path::Path::new("/x"))
        .step(StepDef::new("a", "a").undo("undo-a"))
        .step(StepDef::new("b", "b").undo("undo-b"))
        .step(StepDef::new("c", "c"))
        .wave("only", &refs(&all), 1, 0)
        .build();
    let t = ScriptedTransport::new(|_, cmd| match cmd {
        "c" | "undo-b" => Reply::exit(1),
        _ => Reply::ok(),
    });
    let out = run(plan, &t).await;
    assert_eq!(out.report.status, RunStatus::RollbackFailed);
    // undo-b failed once: not retried, and undo-a is not attempted after it.
    assert_eq!(t.commands("h1"), vec!["a", "b", "c", "undo-b"]);
    assert_eq!(
        out.wave("only").rollbacks(RollbackOutcome::RollbackFailed),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn skip_if_success_skips_the_step_and_it_is_not_undone() {
    let all = hosts("h", 1);
    let plan = PlanBuilder::new("skip")
        .local_hosts(&refs(&all), std::path::Path::new("/x"))
        .step(StepDef::new("a", "a").undo("undo-a").skip_if("already"))
        .step(StepDef::new("b", "b"))
        .wave("only", &refs(&all), 1, 0)
        .build();
    let t = ScriptedTransport::new(|_, cmd| {
        if cmd == "b" {
            Reply::exit(1)
        } else {
            Reply::ok()
        }
    });
    let out = run(plan, &t).await;
    assert_eq!(out.report.status, RunStatus::RolledBack);
    assert_eq!(t.commands("h1"), vec!["already", "b"]);
}

#[tokio::test(start_paused = true)]
async fn a_registered_value_reaches_the_undo_command_quoted() {
    use sluice_plan::{RenderedCommand, Segment};
    let all = hosts("h", 1);
    let undo = RenderedCommand {
        segments: vec![
            Segment::Text("downgrade ".into()),
            Segment::Registered {
                name: "old".into(),
                step: "current".into(),
                quote: true,
            },
        ],
    };
    let plan = PlanBuilder::new("register")
        .local_hosts(&refs(&all), std::path::Path::new("/x"))
        .step(StepDef::new("current", "version").register("old"))
        .step(StepDef::new("install", "install").undo_cmd(undo))
        .health_run("app", "check")
        .wave("only", &refs(&all), 1, 0)
        .build();
    let t = ScriptedTransport::new(|_, cmd| match cmd {
        "version" => Reply::ok().stdout("  1.2 beta\n"),
        "check" => Reply::exit(1),
        _ => Reply::ok(),
    });
    run(plan, &t).await;
    assert_eq!(
        t.commands("h1").last().map(String::as_str),
        Some("downgrade '1.2 beta'")
    );
}

#[tokio::test(start_paused = true)]
async fn run_once_steps_run_before_the_first_wave() {
    let t = all_ok();
    let plan = ten_host_plan()
        .run_once("h5", StepDef::new("migrate", "migrate"))
        .build();
    let out = run(plan, &t).await;
    assert_eq!(out.report.status, RunStatus::Succeeded);
    assert_eq!(t.log()[0], ("h5".to_string(), "migrate".to_string()));
    assert_eq!(t.log().iter().filter(|(_, c)| c == "migrate").count(), 1);
}

#[tokio::test(start_paused = true)]
async fn halt_stops_without_undo_and_continue_goes_on() {
    let t = health_fails_on("h3");
    let plan = ten_host_plan()
        .failure(FailureAction::Halt, RollbackScope::Wave)
        .build();
    let out = run(plan, &t).await;
    assert_eq!(out.report.status, RunStatus::Failed);
    assert!(!t.log().iter().any(|(_, c)| c.starts_with("un")));
    assert!(t.commands("h5").is_empty());

    let t = health_fails_on("h3");
    let plan = ten_host_plan()
        .failure(FailureAction::Continue, RollbackScope::Wave)
        .build();
    let out = run(plan, &t).await;
    assert_eq!(out.report.status, RunStatus::Tolerated);
    assert!(!t.commands("h10").is_empty());
    assert!(out.decisions().contains(&"continue".to_string()));
}

#[tokio::test(start_paused = true)]
async fn pause_between_waves_waits_its_soak_time() {
    let t = all_ok();
    let plan = ten_host_plan().build();
    let mut plan2 = plan.clone();
    plan2.waves[0].pause_ms = Some(300_000);
    let start = tokio::time::Instant::now();
    run(plan, &t).await;
    let without = start.elapsed();
    let start = tokio::time::Instant::now();
    let out = run(plan2, &all_ok()).await;
    assert_eq!(start.elapsed() - without, Duration::from_secs(300));
    assert!(out.events.iter().any(|e| matches!(
        &e.fact,
        Fact::PauseStarted(p) if p.duration_ms == 300_000
    )));
}

struct ChannelApprover(tokio::sync::Mutex<mpsc::Receiver<bool>>);

impl Approver for ChannelApprover {
    fn approve<'a>(&'a self, _run: &'a str, wave: &'a str) -> approval::ApprovalFuture<'a> {
        Box::pin(async move {
            let approved = self.0.lock().await.recv().await == Some(true);
            Approval::of_wave(wave, "test", !approved, ApprovalHow::Command)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn an_approval_gate_waits_until_approved() {
    let t = all_ok();
    let plan = ten_host_plan().approval().build();
    let (tx, rx) = mpsc::channel(1);
    let approver: Arc<dyn Approver> = Arc::new(ChannelApprover(tokio::sync::Mutex::new(rx)));
    let t2 = t.clone();
    let handle = tokio::spawn(async move {
        run_with(
            plan,
            &t2,
            Shutdown::new(),
            Some(approver),
            Secrets::default(),
        )
        .await
    });
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(t.commands("h5").is_empty(), "the gated wave waits");
    assert!(!t.commands("h4").is_empty());
    tx.send(true).await.unwrap();
    let out = handle.await.unwrap();
    assert_eq!(out.report.status, RunStatus::Succeeded);
    assert!(!t.commands("h10").is_empty());
}

#[tokio::test(start_paused = true)]
async fn outside_the_window_nothing_starts() {
    let t = all_ok();
    let now = jiff::Timestamp::now();
    let plan = ten_host_plan()
        .window(Window::Absolute {
            start: now + jiff::SignedDuration::from_hours(2),
            end: now + jiff::SignedDuration::from_hours(4),
        })
        .build();
    let out = run(plan, &t).await;
    assert_eq!(out.report.status, RunStatus::OutsideWindow);
    assert!(out.report.next_window.is_some());
    assert!(t.log().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_window_closing_mid_wave_stops_new_hosts_and_rolls_back() {
    // The canary takes 10 s, so "early" (3 hosts, one at a time) is expected to take 30 s and
    // starts; its hosts really take 60 s each. The window closes 100 s in, while h3 runs: h3
    // finishes, h4 never starts, and the wave is rolled back.
    let t = ScriptedTransport::new(|h, _| {
        Reply::ok().takes(Duration::from_secs(if h == "h1" { 10 } else { 60 }))
    });
    let all = hosts("h", 4);
    let now = jiff::Timestamp::now();
    let plan = PlanBuilder::new("window")
        .local_hosts(&refs(&all), std::path::Path::new("/x"))
        .step(StepDef::new("a", "a {host}").undo("undo-a {host}"))
        .wave("canary", &refs(&all[..1]), 1, 0)
        .wave("early", &refs(&all[1..4]), 1, 0)
        .window(Window::Absolute {
            start: now - jiff::SignedDuration::from_hours(1),
            end: now + jiff::SignedDuration::from_secs(100),
        })
        .build();
    let out = run(plan, &t).await;
    assert_eq!(out.report.status, RunStatus::WindowClosed);
    assert_eq!(t.commands("h2"), vec!["a h2", "undo-a h2"]);
    assert_eq!(t.commands("h3"), vec!["a h3", "undo-a h3"]);
    assert!(t.commands("h4").is_empty());
    assert!(
        t.commands("h1").len() == 1,
        "the canary wave is not rolled back"
    );
    assert!(out.decisions().contains(&"window_closed".to_string()));
}

#[tokio::test(start_paused = true)]
async fn a_wave_that_will_not_fit_in_the_window_does_not_start() {
    // Hosts take 100 s; the window closes 250 s in: after the canary (100 s), "rest" would need
    // 2 rounds × 100 s = 200 s but only ~150 s remain.
    let t = ScriptedTransport::new(|_, _| Reply::ok().takes(Duration::from_secs(100)));
    let all = hosts("h", 3);
    let now = jiff::Timestamp::now();
    let plan = PlanBuilder::new("fit")
        .local_hosts(&refs(&all), std::path::Path::new("/x"))
        .step(StepDef::new("a", "a {host}"))
        .wave("canary", &refs(&all[..1]), 1, 0)
        .wave("rest", &refs(&all[1..]), 1, 0)
        .window(Window::Absolute {
            start: now - jiff::SignedDuration::from_hours(1),
            end: now + jiff::SignedDuration::from_secs(250),
        })
        .build();
    let out = run(plan, &t).await;
    assert_eq!(out.report.status, RunStatus::WindowClosed);
    assert!(t.commands("h2").is_empty());
    assert!(out.decisions().contains(&"not_started".to_string()));
}

#[tokio::test(start_paused = true)]
async fn first_interrupt_finishes_in_flight_steps_then_rolls_back() {
    let t = ScriptedTransport::new(|_, _| Reply::ok().takes(Duration::from_secs(10)));
    let shutdown = Shutdown::new();
    let s = shutdown.clone();
    tokio::spawn(async move {
        // Canary takes 30 s (2 steps + check); interrupt during "early"'s first step.
        tokio::time::sleep(Duration::from_secs(35)).await;
        s.interrupt();
    });
    let out = run_with(
        ten_host_plan().build(),
        &t,
        shutdown,
        None,
        Secrets::default(),
    )
    .await;
    assert_eq!(out.report.status, RunStatus::Aborted);
    // In-flight "drain" finished, "install" never started, drain was undone.
    for h in ["h2", "h3", "h4"] {
        assert_eq!(
            t.commands(h),
            vec![format!("drain {h}"), format!("undrain {h}")]
        );
    }
    assert!(t.commands("h5").is_empty());
}

#[tokio::test(start_paused = true)]
async fn second_interrupt_abandons_in_flight_steps_as_unknown_without_undo() {
    let t = ScriptedTransport::new(|_, _| Reply::ok().takes(Duration::from_secs(100)));
    let shutdown = Shutdown::new();
    let s = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        s.interrupt();
        tokio::time::sleep(Duration::from_secs(1)).await;
        s.interrupt();
    });
    let start = tokio::time::Instant::now();
    let out = run_with(
        ten_host_plan().build(),
        &t,
        shutdown,
        None,
        Secrets::default(),
    )
    .await;
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(out.report.status, RunStatus::Aborted);
    assert_eq!(t.commands("h1"), vec!["drain h1"]);
    assert_eq!(out.wave("canary").count(HostOutcome::Unknown), 1);
}

#[tokio::test(start_paused = true)]
async fn a_secret_never_appears_in_events_or_the_report() {
    use sluice_plan::{RenderedCommand, Segment};
    let all = hosts("h", 1);
    let cmd = RenderedCommand {
        segments: vec![
            Segment::Text("login --token ".into()),
            Segment::Secret {
                name: "tok".into(),
                quote: true,
            },
        ],
    };
    let plan = PlanBuilder::new("secret")
        .local_hosts(&refs(&all), std::path::Path::new("/x"))
        .step(
            StepDef::new("login", "x")
                .run_cmd(cmd.clone())
                .undo_cmd(cmd),
        )
        .health_run("app", "check")
        .wave("only", &refs(&all), 1, 0)
        .build();
    // The host echoes the command it got, secret included, and fails so output is reported.
    let t = ScriptedTransport::new(|_, cmd| Reply {
        exit: 1,
        stdout: format!("got: {cmd}\n"),
        takes: Duration::ZERO,
    });
    let secrets = Secrets::from_values([("tok".to_string(), "s3cr3t-value".to_string())].into());
    let out = run_with(plan, &t, Shutdown::new(), None, secrets).await;
    // The value travels beside the command, never in it (the command is a command line).
    assert_eq!(t.commands("h1")[0], r#"login --token "${__sluice_s1}""#);
    assert_eq!(
        t.sent()[0].secrets,
        [("__sluice_s1".to_string(), "s3cr3t-value".to_string())]
    );
    let json = serde_json::to_string(
        &out.events
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(json.contains("login --token ***"));
    assert!(!json.contains("s3cr3t-value"));
    assert!(
        !serde_json::to_string(&out.report)
            .unwrap()
            .contains("s3cr3t-value")
    );
}

#[tokio::test(start_paused = true)]
async fn a_check_that_passes_then_fails_is_flapping_and_fails_the_host_at_once() {
    let all = hosts("h", 1);
    let plan = PlanBuilder::new("flap")
        .local_hosts(&refs(&all), std::path::Path::new("/x"))
        .step(StepDef::new("a", "a"))
        .health_run("port", "port")
        .health_run("app", "app")
        .health_policy(5, 1_000, 5_000)
        .wave("only", &refs(&all), 1, 0)
        .build();
    // "port" passes in round 1 and fails in round 2; "app" would pass from round 3 on.
    let ports = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let apps = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let t = ScriptedTransport::new(move |_, cmd| {
        use std::sync::atomic::Ordering::SeqCst;
        match cmd {
            "port" if ports.fetch_add(1, SeqCst) == 1 => Reply::exit(1),
            "app" if apps.fetch_add(1, SeqCst) < 2 => Reply::exit(1),
            _ => Reply::ok(),
        }
    });
    let out = run(plan, &t).await;
    assert_eq!(out.report.status, RunStatus::RolledBack);
    assert_eq!(t.commands("h1"), vec!["a", "port", "app", "port"]);
    let failure = out.wave("only").hosts[0].failure.clone().unwrap();
    assert_eq!(failure.what, "health:port");
    assert!(failure.detail.contains("flapping"), "{}", failure.detail);
}

/// Two hosts; `root` becomes root (with a skip_if guard and an undo), `user` becomes `nobody`
/// and fails on h2, so the wave is rolled back through both undos.
fn become_plan() -> PlanBuilder {
    let all = hosts("h", 2);
    PlanBuilder::new("become")
        .local_hosts(&refs(&all), std::path::Path::new("/x"))
        .secret_env("sudo_pw", "SLUICE_TEST_NOT_READ")
        .become_password("sudo_pw")
        .step(StepDef::new("plain", "plain"))
        .step(
            StepDef::new("root", "root")
                .skip_if("guard")
                .undo("unroot")
                .become_user(None),
        )
        .step(
            StepDef::new("user", "user")
                .undo("unuser")
                .become_user(Some("nobody")),
        )
        .health_run("app", "check")
        .wave("only", &refs(&all), 2, 0)
}

#[tokio::test(start_paused = true)]
async fn the_become_password_reaches_sudo_for_become_steps_only_and_never_an_event() {
    const PASSWORD: &str = "pw-hunter2-xyz";
    // The guard fails (the step runs); h2's `user` fails printing the password, as a careless
    // command might, so its output is reported.
    let t = ScriptedTransport::new(|host, cmd| match (host, cmd) {
        (_, "guard") => Reply::exit(1),
        ("h2", "user") => Reply {
            exit: 1,
            stdout: format!("oops {PASSWORD}\n"),
            takes: Duration::ZERO,
        },
        _ => Reply::ok(),
    });
    let secrets = Secrets::from_values([("sudo_pw".to_string(), PASSWORD.to_string())].into());
    let out = run_with(become_plan().build(), &t, Shutdown::new(), None, secrets).await;
    assert_eq!(out.report.status, RunStatus::RolledBack);

    let with_password = |user: Option<&str>| {
        Some(sluice_ssh::Become {
            user: user.map(str::to_string),
            password: Some(PASSWORD.to_string()),
        })
    };
    let sent = t.sent();
    for host in ["h1", "h2"] {
        let got: Vec<(String, Option<sluice_ssh::Become>)> = sent
            .iter()
            .filter(|s| s.host == host)
            .map(|s| (s.command.clone(), s.become_user.clone()))
            .collect();
        let mut expected = vec![
            ("plain".to_string(), None),
            ("guard".to_string(), with_password(None)),
            ("root".to_string(), with_password(None)),
            ("user".to_string(), with_password(Some("nobody"))),
        ];
        if host == "h1" {
            // Health checks never become.
            expected.push(("check".to_string(), None));
        }
        expected.push(("unuser".to_string(), with_password(Some("nobody"))));
        expected.push(("unroot".to_string(), with_password(None)));
        assert_eq!(got, expected, "{host}");
    }

    let json = serde_json::to_string(
        &out.events
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(
        json.contains("oops ***"),
        "the output was reported, redacted"
    );
    assert!(!json.contains(PASSWORD));
    assert!(
        !serde_json::to_string(&out.report)
            .unwrap()
            .contains(PASSWORD)
    );
}

/// An inventory's `ansible_become` (the host's `connection.become`): every step of that host runs
/// through sudo as the host's become user, unless the step names its own; health checks never
/// become, and other hosts are untouched.
#[tokio::test(start_paused = true)]
async fn a_host_that_becomes_runs_every_step_through_sudo() {
    let t = ScriptedTransport::new(|_, _| Reply::ok());
    let all = hosts("h", 2);
    let mut artifact = PlanBuilder::new("host-become")
        .local_hosts(&refs(&all), std::path::Path::new("/x"))
        .step(StepDef::new("plain", "plain"))
        .step(StepDef::new("own", "own").become_user(Some("nobody")))
        .health_run("app", "check")
        .wave("only", &refs(&all), 2, 0)
        .build();
    artifact.hosts[0].connection.become_all = Some(sluice_plan::HostBecome {
        user: Some("app".into()),
    });
    let out = run_with(artifact, &t, Shutdown::new(), None, Secrets::default()).await;
    assert_eq!(out.report.status, RunStatus::Succeeded);
    let as_user = |user: &str| {
        Some(sluice_ssh::Become {
            user: Some(user.to_string()),
            password: None,
        })
    };
    let sent = |host: &str| -> Vec<(String, Option<sluice_ssh::Become>)> {
        t.sent()
            .iter()
            .filter(|s| s.host == host)
            .map(|s| (s.command.clone(), s.become_user.clone()))
            .collect()
    };
    assert_eq!(
        sent("h1"),
        [
            ("plain".to_string(), as_user("app")),
            ("own".to_string(), as_user("nobody")),
            ("check".to_string(), None),
        ]
    );
    assert_eq!(
        sent("h2"),
        [
            ("plain".to_string(), None),
            ("own".to_string(), as_user("nobody")),
            ("check".to_string(), None),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_become_password_without_a_value_fails_become_steps_before_anything_is_sent() {
    let t = ScriptedTransport::new(|_, _| Reply::ok());
    // The plan names the secret, but this run has no value for it.
    let out = run_with(
        become_plan().build(),
        &t,
        Shutdown::new(),
        None,
        Secrets::default(),
    )
    .await;
    assert_eq!(out.report.status, RunStatus::RolledBack);
    // `plain` ran, then nothing: no become command, not even its guard, went out with `sudo -n`.
    assert_eq!(t.commands("h1"), ["plain"]);
    let failure = out.report.waves[0].hosts[0].failure.clone().unwrap();
    assert_eq!(failure.what, "root");
    assert!(
        failure.detail.contains("secret `sudo_pw`, has no value"),
        "{}",
        failure.detail
    );

    // An artifact naming a secret it does not declare is refused before anything starts.
    let bad = become_plan().become_password("nope").build();
    let err = verify_artifact(&bad, None).unwrap_err();
    assert!(err.to_string().contains("secret `nope`"), "{err}");
}
