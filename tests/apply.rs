//! End-to-end tests of `sluice apply` on saved plan artifacts over the local transport: every
//! host is a directory under a temporary state folder, so the tests check real state.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use sluice_exec::testkit::{PlanBuilder, StepDef};
use sluice_plan::{FailureAction, PlanArtifact, RenderedCommand, RollbackScope, Segment, Window};

mod support;
use support::{events, sluice};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn host_file(&self, host: &str, file: &str) -> Option<String> {
        std::fs::read_to_string(self.state().join(host).join(file)).ok()
    }

    fn log(&self, host: &str) -> Vec<String> {
        self.host_file(host, "log")
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn write_plan(&self, plan: &PlanArtifact) -> PathBuf {
        let path = self.dir.path().join("plan.json");
        std::fs::write(&path, serde_json::to_string_pretty(plan).unwrap()).unwrap();
        path
    }

    /// Starts `sluice apply --plan --yes --json` without waiting for it.
    fn spawn(&self, plan: &PlanArtifact) -> std::process::Child {
        let path = self.write_plan(plan);
        sluice()
            .args(["apply", "--plan"])
            .arg(&path)
            .args(["--yes", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn apply(&self, plan: &PlanArtifact, extra: &[&str]) -> Output {
        let path = self.write_plan(plan);
        sluice()
            .args(["apply", "--plan"])
            .arg(&path)
            .args(["--yes", "--json", "--color", "never"])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// Ctrl-C, as the terminal would send it.
#[allow(unsafe_code)]
fn sigint(child: &std::process::Child) {
    // SAFETY: kill(2) on the pid of a child we own; no memory is involved.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
}

const HOSTS: [&str; 10] = ["h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9", "h10"];

/// Ten local hosts in three waves; each step logs to the host's `log`, the install writes
/// `version`, and the health check reads it back.
fn rolling(state: &Path) -> PlanBuilder {
    PlanBuilder::new("rolling")
        .local_hosts(&HOSTS, state)
        .step(StepDef::new("drain", "echo drain >> log").undo("echo undrain >> log"))
        .step(
            StepDef::new("install", "echo install >> log && echo 2.0 > version")
                .undo("echo uninstall >> log && echo 1.0 > version"),
        )
        .health_run("version", "grep -qx 2.0 version")
        .wave("canary", &HOSTS[..1], 1, 0)
        .wave("early", &HOSTS[1..4], 3, 0)
        .wave("rest", &HOSTS[4..], 6, 0)
}

fn final_status(out: &Output) -> String {
    events(out)
        .iter()
        .rev()
        .find(|e| e["kind"] == "run_finished")
        .map(|e| e["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

#[test]
fn happy_path_applies_three_waves_and_exits_0() {
    let f = Fixture::new();
    let out = f.apply(&rolling(&f.state()).build(), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(final_status(&out), "succeeded");
    for h in HOSTS {
        assert_eq!(f.host_file(h, "version").as_deref(), Some("2.0\n"), "{h}");
        assert_eq!(f.log(h), ["drain", "install"]);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rest") && stderr.contains("succeeded"),
        "{stderr}"
    );
    let seqs: Vec<u64> = events(&out)
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

#[test]
fn health_failure_in_wave_two_undoes_exactly_its_hosts_in_reverse_and_wave_three_never_starts() {
    let f = Fixture::new();
    let plan = rolling(&f.state())
        .override_health("h3", "version", "false")
        .build();
    let out = f.apply(&plan, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(final_status(&out), "rolled_back");
    for h in ["h2", "h3", "h4"] {
        assert_eq!(
            f.log(h),
            ["drain", "install", "uninstall", "undrain"],
            "{h}"
        );
        assert_eq!(f.host_file(h, "version").as_deref(), Some("1.0\n"));
    }
    assert_eq!(
        f.log("h1"),
        ["drain", "install"],
        "scope wave leaves wave 1 alone"
    );
    for h in &HOSTS[4..] {
        assert!(f.log(h).is_empty(), "{h} is in wave 3, which never starts");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("h3 (early) health:version"), "{stderr}");
}

#[test]
fn rollback_scope_run_also_undoes_wave_one() {
    let f = Fixture::new();
    let plan = rolling(&f.state())
        .override_health("h3", "version", "false")
        .failure(FailureAction::Rollback, RollbackScope::Run)
        .build();
    let out = f.apply(&plan, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(f.log("h1"), ["drain", "install", "uninstall", "undrain"]);
}

#[test]
fn a_budget_of_one_survives_one_failure_and_fails_on_the_second() {
    let f = Fixture::new();
    let plan = PlanBuilder::new("budget")
        .local_hosts(&HOSTS[..5], &f.state())
        .step(StepDef::new("work", "echo work >> log").undo("echo unwork >> log"))
        .override_run("h2", "work", "echo work >> log; exit 7")
        .override_run("h3", "work", "echo work >> log; exit 7")
        .wave("only", &HOSTS[..5], 1, 1)
        .build();
    let out = f.apply(&plan, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        f.log("h4").is_empty() && f.log("h5").is_empty(),
        "no overshoot"
    );
    for h in ["h1", "h2", "h3"] {
        assert_eq!(f.log(h), ["work", "unwork"], "{h}");
    }
}

#[test]
fn a_hung_command_times_out() {
    let f = Fixture::new();
    let plan = PlanBuilder::new("hang")
        .local_hosts(&HOSTS[..1], &f.state())
        .step(StepDef::new("hang", "sleep 30").timeout_ms(500))
        .wave("only", &HOSTS[..1], 1, 0)
        .build();
    let started = std::time::Instant::now();
    let out = f.apply(&plan, &[]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        events(&out)
            .iter()
            .any(|e| e["kind"] == "step_result" && e["status"] == "timed_out")
    );
}

#[test]
fn a_failing_undo_is_rollback_failed_with_exit_3() {
    let f = Fixture::new();
    let plan = PlanBuilder::new("undo")
        .local_hosts(&HOSTS[..1], &f.state())
        .step(StepDef::new("a", "true").undo("echo cannot undo >&2; exit 1"))
        .step(StepDef::new("b", "exit 1"))
        .wave("only", &HOSTS[..1], 1, 0)
        .build();
    let out = f.apply(&plan, &[]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(final_status(&out), "rollback_failed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ROLLBACK FAILED") && stderr.contains("cannot undo"),
        "{stderr}"
    );
}

#[test]
fn outside_the_window_nothing_starts_and_the_next_opening_is_named() {
    let f = Fixture::new();
    let now = jiff::Timestamp::now();
    let opens = now + jiff::SignedDuration::from_hours(24);
    let plan = rolling(&f.state())
        .window(Window::Absolute {
            start: opens,
            end: opens + jiff::SignedDuration::from_hours(2),
        })
        .build();
    let out = f.apply(&plan, &[]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&opens.to_string()));
    assert!(!f.state().exists());
    let out = f.apply(&plan, &["--ignore-window"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT enforced"));
}

#[test]
fn without_a_terminal_and_without_yes_it_refuses() {
    let f = Fixture::new();
    let path = f.write_plan(&rolling(&f.state()).build());
    let out = sluice()
        .args(["apply", "--plan"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert!(!f.state().exists());
}

#[test]
fn an_edited_artifact_or_an_unexpected_hash_is_refused() {
    let f = Fixture::new();
    let plan = rolling(&f.state()).build();
    let out = f.apply(&plan, &["--expect-hash", "0000"]);
    assert_eq!(out.status.code(), Some(2));
    let mut edited = plan.clone();
    edited.waves[0].max_failed = 5;
    let out = f.apply(&edited, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hash"));
    let out = f.apply(&plan, &["--expect-hash", &plan.plan_hash]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn sigint_finishes_the_in_flight_step_then_rolls_back_and_exits_4() {
    let f = Fixture::new();
    let plan = PlanBuilder::new("slow")
        .local_hosts(&HOSTS[..3], &f.state())
        .step(StepDef::new("slow", "sleep 1.5; echo slow >> log").undo("echo unslow >> log"))
        .step(StepDef::new("next", "echo next >> log"))
        .wave("only", &HOSTS[..3], 1, 0)
        .build();
    let child = f.spawn(&plan);
    std::thread::sleep(Duration::from_millis(700));
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(final_status(&out), "aborted");
    assert_eq!(
        f.log("h1"),
        ["slow", "unslow"],
        "in-flight step finished, next never started"
    );
    assert!(f.log("h2").is_empty());
}

#[test]
fn a_secret_never_appears_in_output_or_json() {
    let f = Fixture::new();
    let echo = RenderedCommand {
        segments: vec![
            Segment::Text("echo using token ".into()),
            Segment::Secret {
                name: "api".into(),
                quote: true,
            },
            Segment::Text("; exit 1".into()),
        ],
    };
    let plan = PlanBuilder::new("secret")
        .local_hosts(&HOSTS[..1], &f.state())
        .secret_env("api", "SLUICE_TEST_API_TOKEN")
        .step(
            StepDef::new("call", "x")
                .run_cmd(echo.clone())
                .undo_cmd(echo),
        )
        .wave("only", &HOSTS[..1], 1, 0)
        .build();
    let path = f.write_plan(&plan);
    for extra in [&["--json"][..], &[][..], &["-v"][..]] {
        let out = sluice()
            .args(["apply", "--plan"])
            .arg(&path)
            .arg("--yes")
            .args(extra)
            .env("SLUICE_TEST_API_TOKEN", "tok-9f8e7d6c")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(all.contains("using token ***"), "{all}");
        assert!(!all.contains("tok-9f8e7d6c"), "{all}");
    }
}

/// playbooks/backup-and-lease.yaml really runs on the demo fleet: every host backed up and
/// verified before its change, leased on the host while it changes, released at its end.
#[test]
fn the_backup_and_lease_example_runs_on_the_demo_fleet() {
    let f = Fixture::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = sluice()
        .current_dir(f.dir.path())
        .arg("apply")
        .arg(repo.join("playbooks/backup-and-lease.yaml"))
        .arg("-i")
        .arg(repo.join("inventory/demo.yaml"))
        .args(["--yes", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let events = events(&out);
    for h in 1..=6 {
        let host = format!("demo-{h}");
        let dir = f.dir.path().join(format!("demo-state/{host}"));
        assert_eq!(
            std::fs::read_to_string(dir.join("conf/app.conf")).unwrap(),
            "max_clients = 512\n"
        );
        assert!(dir.join("backup/conf.tgz").exists(), "{host} backed up");
        assert!(
            !dir.join(".sluice/host-lease").exists(),
            "{host}'s lease was released"
        );
        let of = |kind: &str| {
            events
                .iter()
                .position(|e| e["kind"] == kind && e["host"] == host.as_str())
                .unwrap_or_else(|| panic!("no {kind} for {host}"))
        };
        let verified = &events[of("backup_result")];
        assert_eq!(verified["status"], "ok", "{verified}");
        assert!(verified["evidence"]["verify_sha256"].is_string());
        assert!(of("host_lease_taken") < of("backup_started"));
        assert!(of("backup_result") < of("step_intent"));
        assert!(of("step_result") < of("host_lease_released"));
    }
}

/// The README's first command, on a fresh state folder: a real three-wave rollout.
#[test]
fn the_readme_demo_rolls_out_three_waves_and_the_canary_demo_rolls_back() {
    let f = Fixture::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let run = |plan: &str| {
        sluice()
            .current_dir(f.dir.path())
            .arg("apply")
            .arg(repo.join("playbooks").join(plan))
            .arg("-i")
            .arg(repo.join("inventory/demo.yaml"))
            .args(["--yes", "--color", "never"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run("demo-rolling-patch.yaml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for h in 1..=6 {
        let dir = f.dir.path().join(format!("demo-state/demo-{h}"));
        assert_eq!(
            std::fs::read_to_string(dir.join("version")).unwrap(),
            "2.0.1\n"
        );
        assert!(!dir.join("drained").exists());
    }
    for wave in ["canary", "early", "rest"] {
        assert!(stderr.contains(&format!("Wave {wave} ok")), "{stderr}");
    }

    let out = run("demo-canary-fails.yaml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let canary = f.dir.path().join("demo-state/demo-1");
    assert_eq!(
        std::fs::read_to_string(canary.join("version")).unwrap(),
        "2.0.1\n",
        "undo restored the registered version"
    );
    assert_eq!(
        std::fs::read_to_string(canary.join("status")).unwrap(),
        "running\n"
    );
    let other = f.dir.path().join("demo-state/demo-2");
    assert_eq!(
        std::fs::read_to_string(other.join("version")).unwrap(),
        "2.0.1\n",
        "wave 2 never started"
    );
    assert!(
        stderr.contains("demo-1 (canary) health:running"),
        "{stderr}"
    );
}

#[test]
fn a_second_sigint_abandons_the_in_flight_step_as_unknown_and_undoes_nothing() {
    let f = Fixture::new();
    let plan = PlanBuilder::new("slow")
        .local_hosts(&HOSTS[..1], &f.state())
        .step(
            StepDef::new("slow", "echo started >> log; sleep 30; echo slow >> log")
                .undo("echo unslow >> log"),
        )
        .wave("only", &HOSTS[..1], 1, 0)
        .build();
    let started = std::time::Instant::now();
    let child = f.spawn(&plan);
    std::thread::sleep(Duration::from_millis(700));
    for _ in 0..2 {
        sigint(&child);
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "did not wait for the step"
    );
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unknown = events(&out)
        .iter()
        .any(|e| e["kind"] == "step_result" && e["status"] == "unknown");
    assert!(unknown);
    assert_eq!(
        f.log("h1"),
        ["started"],
        "abandoned, killed, and not undone"
    );
}
