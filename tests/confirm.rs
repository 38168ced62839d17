#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End-to-end tests of confirm-or-revert (`confirm: { within: ... }`) against the sshd fleet:
//! sluice arms a timer on the host before the step and must disarm it over a new connection
//! after it, or the host runs the undo by itself. The lock-out stops the host's sshd listener
//! (sluice-testfleet's `confirm.rs`); the undo the host's timer runs starts it again.
//! scripts/test.sh runs this file in both transport modes (the runner, and `transport_mode:
//! exec`).

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sluice_testfleet::Fleet;

mod support;
use support::{event, events, host_finished};

/// `sluice` with the audit store in `state`, so that `sluice show` reads the run's store.
fn sluice_in(state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.env("SLUICE_STATE_DIR", state);
    cmd
}

fn write_plan(fleet: &Fleet, steps: &str) -> PathBuf {
    let yaml = format!("name: fleet-confirm\ntargets: [fleet]\nsteps:\n{steps}");
    let path = fleet.dir().join("plan.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// `sluice apply --yes --json` (plus `extra`), its output and how long it took.
fn apply(fleet: &Fleet, plan: &Path, extra: &[&str]) -> (Output, Duration) {
    apply_with_env(fleet, plan, extra, &[])
}

fn apply_with_env(
    fleet: &Fleet,
    plan: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Output, Duration) {
    let inventory = fleet.write_inventory_for_confirm().unwrap();
    let started = Instant::now();
    let mut child = sluice_in(&fleet.dir().join("state"))
        .envs(env.iter().copied())
        .arg("apply")
        .arg(plan)
        .arg("-i")
        .arg(inventory)
        .args(["--yes", "--json"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        stdout.read_to_end(&mut b).unwrap();
        b
    });
    let mut err = Vec::new();
    stderr.read_to_end(&mut err).unwrap();
    let status = child.wait().unwrap();
    let out = Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err,
    };
    (out, started.elapsed())
}

/// The confirm directories left on host `i` (one per armed step not yet settled).
fn armed_dirs(fleet: &Fleet, i: usize) -> Vec<String> {
    std::fs::read_dir(fleet.confirm_dir(i))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn state(fleet: &Fleet) -> String {
    std::fs::read_to_string(fleet.root(1).join("state"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Whether host 1's port answers with an SSH banner.
fn sshd_answers(fleet: &Fleet) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", fleet.port(1))) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).is_ok() && &buf == b"SSH-"
}

/// The table and verdict after a run, with its id and every measured duration replaced,
/// and runs of spaces made one (the columns' widths follow the durations).
fn summary(stderr: &str, run: &str) -> String {
    let from = stderr.find("\nwave ").expect("the summary table") + 1;
    let measured = |w: &str| {
        let w = w.trim_end_matches(['.', ',']);
        let Some(num) = w.strip_suffix('s') else {
            return false;
        };
        let mut parts = num.split(['.', 'm']);
        num.contains(['.', 'm'])
            && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    stderr[from..]
        .replace(run, "RUN")
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(|w| if measured(w) { "DURATION" } else { w })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The step checks, while it runs, that its timer is armed: the `armed` file and a live
/// sleeping process (the fleet has no systemd).
const CHANGE_WHILE_ARMED: &str = r#"  - id: change
    run: 'test -e {{vars.sluice_confirm_dir}}/sluice-confirm-*/armed && kill -0 $(cat {{vars.sluice_confirm_dir}}/sluice-confirm-*/pid) && echo changed > {{vars.fleet_root}}/state'
    undo: 'echo undone > {{vars.fleet_root}}/state'
    confirm: { within: 30s }
"#;

#[test]
fn a_step_that_keeps_access_is_confirmed_and_its_timer_is_gone_from_the_host() {
    let fleet = Fleet::start(1).unwrap();
    let after = "  - { id: after, run: 'echo after >> {{vars.fleet_root}}/log' }\n";
    let plan = write_plan(&fleet, &format!("{CHANGE_WHILE_ARMED}{after}"));
    let (out, took) = apply(&fleet, &plan, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let events = events(&out);
    // The step saw its timer armed (else it would have failed), and the change stays.
    assert_eq!(event(&events, "step_result", "change")["status"], "ok");
    assert_eq!(state(&fleet), "changed");
    let armed = event(&events, "confirm_armed", "change");
    assert_eq!(armed["timer"], "sleeper", "{armed}");
    assert_eq!(armed["within_ms"], 30_000);
    let result = event(&events, "confirm_result", "change");
    assert_eq!(result["outcome"], "confirmed", "{result}");
    assert!(result["undo_exit_code"].is_null());
    // Armed before the step's intent, settled after its result.
    let pos = |kind: &str| {
        events
            .iter()
            .position(|e| e["kind"] == kind && e["step"] == "change")
            .unwrap()
    };
    assert!(pos("confirm_armed") < pos("step_intent"));
    assert!(pos("step_result") < pos("confirm_result"));
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "step_result" && e["step"] == "after")
    );
    assert_eq!(host_finished(&events)["outcome"], "ok");
    // The timer is gone: no process mentions the confirm directory, which is removed too,
    // and sluice did not wait for the window.
    let dir = fleet.confirm_dir(1).display().to_string();
    assert_eq!(Fleet::processes_mentioning(&dir), Vec::new());
    assert_eq!(armed_dirs(&fleet, 1), Vec::<String>::new());
    assert!(took < Duration::from_secs(25), "took {took:?}");
    // The undo never ran: not by sluice, not by the host.
    assert!(!events.iter().any(|e| e["kind"] == "undo_intent"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(state(&fleet), "changed");
}

#[test]
fn a_step_that_locks_sluice_out_is_reverted_by_the_host_and_reported() {
    let fleet = Fleet::start(1).unwrap();
    let listener_before = fleet.sshd_pid(1).unwrap();
    let steps = format!(
        "  - id: lockout\n    run: '{}'\n    undo: '{}'\n    confirm: {{ within: 4s, revert_timeout: 60s }}\n  - {{ id: after, run: 'echo after >> {{{{vars.fleet_root}}}}/log' }}\n",
        Fleet::STOP_SSHD_COMMAND,
        Fleet::start_sshd_command()
    );
    let plan = write_plan(&fleet, &steps);
    let (out, _) = apply(&fleet, &plan, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let events = events(&out);
    assert_eq!(event(&events, "step_result", "lockout")["status"], "ok");
    let result = event(&events, "confirm_result", "lockout");
    assert_eq!(result["outcome"], "reverted", "{result}");
    assert_eq!(result["undo_exit_code"], 0, "{result}");
    let finished = host_finished(&events);
    assert_eq!(finished["outcome"], "reverted", "{finished}");
    // The host reverted by itself: sluice sent no undo, and the next step never ran.
    assert!(
        !events.iter().any(|e| e["kind"] == "undo_intent"),
        "{events:#?}"
    );
    assert!(!events.iter().any(|e| e["step"] == "after"));
    // The undo's effect: a new sshd listener (not the fleet's) answers on the port.
    assert!(sshd_answers(&fleet), "sshd answers again");
    assert_ne!(fleet.sshd_pid(1), Some(listener_before));
    let dir = fleet.confirm_dir(1).display().to_string();
    assert_eq!(Fleet::processes_mentioning(&dir), Vec::new());
    assert_eq!(armed_dirs(&fleet, 1), Vec::<String>::new());
    // The human output and the record say so too.
    let run = finished["run"].as_str().unwrap();
    insta::assert_snapshot!("confirm-lockout-summary", summary(&stderr, run));
    let show = sluice_in(&fleet.dir().join("state"))
        .args(["show", run, "--json"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(show.status.success(), "{shown}");
    assert!(shown.contains(r#""outcome":"reverted""#), "{shown}");
    assert!(shown.contains(r#""kind":"confirm_result""#), "{shown}");
}

#[test]
fn a_failed_step_is_disarmed_and_left_to_the_failure_policy() {
    let fleet = Fleet::start(1).unwrap();
    let steps = r#"  - id: broken
    run: 'echo changed > {{vars.fleet_root}}/state; exit 3'
    undo: 'echo undone-by-sluice > {{vars.fleet_root}}/state'
    confirm: { within: 30s }
"#;
    let plan = write_plan(&fleet, steps);
    let (out, took) = apply(&fleet, &plan, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let events = events(&out);
    assert_eq!(event(&events, "step_result", "broken")["status"], "failed");
    let result = event(&events, "confirm_result", "broken");
    assert_eq!(result["outcome"], "disarmed", "{result}");
    assert_eq!(host_finished(&events)["outcome"], "failed");
    // The rollback (the plan's failure policy) ran the undo, over SSH, well before the window.
    assert_eq!(event(&events, "undo_result", "broken")["status"], "ok");
    assert_eq!(state(&fleet), "undone-by-sluice");
    assert!(took < Duration::from_secs(25), "took {took:?}");
    let dir = fleet.confirm_dir(1).display().to_string();
    assert_eq!(Fleet::processes_mentioning(&dir), Vec::new());
    assert_eq!(armed_dirs(&fleet, 1), Vec::<String>::new());
}

#[test]
fn check_mode_arms_nothing() {
    let fleet = Fleet::start(1).unwrap();
    let plan = write_plan(&fleet, CHANGE_WHILE_ARMED);
    let (out, _) = apply(&fleet, &plan, &["--check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let events = events(&out);
    assert!(
        !events.iter().any(|e| e["kind"] == "confirm_armed"),
        "{events:#?}"
    );
    assert!(!fleet.confirm_dir(1).exists());
    assert_eq!(state(&fleet), "");
}

/// Starts `sluice apply --json` and kills it (SIGKILL) once it reported step `step`'s result;
/// returns the run id.
fn apply_killed_after(fleet: &Fleet, plan: &Path, step: &str) -> String {
    use std::io::BufRead;
    let inventory = fleet.write_inventory_for_confirm().unwrap();
    let mut child = sluice_in(&fleet.dir().join("state"))
        .arg("apply")
        .arg(plan)
        .arg("-i")
        .arg(inventory)
        .args(["--yes", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut run = None;
    for line in stdout.lines() {
        let event: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        run = event["run"].as_str().map(str::to_string);
        if event["kind"] == "step_result" && event["step"] == step {
            break;
        }
        assert_ne!(event["kind"], "confirm_result", "settled before the kill");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    run.expect("apply reported the run")
}

fn resume(fleet: &Fleet, run: &str) -> Output {
    sluice_in(&fleet.dir().join("state"))
        .args(["resume", run, "--yes", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_controller_killed_before_confirming_finds_on_resume_that_the_host_reverted() {
    let fleet = Fleet::start(1).unwrap();
    let steps = format!(
        "  - id: lockout\n    run: '{}'\n    undo: '{}'\n    confirm: {{ within: 3s, revert_timeout: 60s }}\n",
        Fleet::STOP_SSHD_COMMAND,
        Fleet::start_sshd_command()
    );
    let plan = write_plan(&fleet, &steps);
    let run = apply_killed_after(&fleet, &plan, "lockout");
    // Nobody confirms: the host's timer reverts the step (sshd answers again) by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sshd_answers(&fleet) {
        assert!(
            Instant::now() < deadline,
            "the host did not revert by itself"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = resume(&fleet, &run);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let events = events(&out);
    let result = event(&events, "confirm_result", "lockout");
    assert_eq!(result["outcome"], "reverted", "{result}");
    assert_eq!(result["undo_exit_code"], 0, "{result}");
    assert!(
        result["detail"]
            .as_str()
            .unwrap()
            .starts_with("after the resume: "),
        "{result}"
    );
    assert_eq!(host_finished(&events)["outcome"], "reverted");
    assert!(!events.iter().any(|e| e["kind"] == "undo_intent"));
    assert_eq!(armed_dirs(&fleet, 1), Vec::<String>::new());
}

#[test]
fn a_controller_killed_before_confirming_confirms_on_resume_and_the_timer_is_gone() {
    let fleet = Fleet::start(1).unwrap();
    let plan = write_plan(&fleet, CHANGE_WHILE_ARMED);
    let run = apply_killed_after(&fleet, &plan, "change");
    let dir = fleet.confirm_dir(1).display().to_string();
    assert_ne!(Fleet::processes_mentioning(&dir), Vec::new(), "armed");
    let out = resume(&fleet, &run);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let events = events(&out);
    let result = event(&events, "confirm_result", "change");
    assert_eq!(result["outcome"], "confirmed", "{result}");
    assert_eq!(host_finished(&events)["outcome"], "ok");
    assert_eq!(state(&fleet), "changed");
    assert_eq!(Fleet::processes_mentioning(&dir), Vec::new());
    assert_eq!(armed_dirs(&fleet, 1), Vec::<String>::new());
}

/// The undo the host's timer runs gets the plan's secret values from its file on the host (they
/// never were in a command line), and no event or human line shows them.
#[test]
fn a_reverted_undo_gets_its_secret_values_and_no_output_shows_them() {
    let mut fleet = Fleet::start(1).unwrap();
    fleet.log_commands().unwrap();
    let token = "s3cr3t-confirm-token-'\"$x";
    let yaml = format!(
        "name: fleet-confirm-secret\ntargets: [fleet]\nsecrets:\n  token: {{ env: SLUICE_CONFIRM_TOKEN }}\nsteps:\n  - id: lockout\n    run: '{}'\n    undo: '{} && printf %s {{{{secrets.token}}}} > {{{{vars.fleet_root}}}}/secret'\n    confirm: {{ within: 3s, revert_timeout: 60s }}\n",
        Fleet::STOP_SSHD_COMMAND,
        Fleet::start_sshd_command()
    );
    let plan = fleet.dir().join("plan.yaml");
    std::fs::write(&plan, yaml).unwrap();
    let (out, _) = apply_with_env(&fleet, &plan, &[], &[("SLUICE_CONFIRM_TOKEN", token)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let events = events(&out);
    assert_eq!(
        event(&events, "confirm_result", "lockout")["outcome"],
        "reverted"
    );
    let written = std::fs::read_to_string(fleet.root(1).join("secret")).unwrap();
    assert_eq!(written, token, "the undo got the exact secret value");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("s3cr3t"), "{stdout}");
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
    // No command line on the host held it: the arming command got the undo on its stdin.
    let commands = fleet.commands(1);
    assert!(
        commands.iter().any(|c| c.contains("sluice-confirm-")),
        "{commands:#?}"
    );
    assert!(
        commands.iter().all(|c| !c.contains("s3cr3t")),
        "{commands:#?}"
    );
    // The undo file, with the value in it, left the host's disk with its directory.
    assert_eq!(armed_dirs(&fleet, 1), Vec::<String>::new());
}

/// Under `become`, the timer is armed, and disarmed, as the step's user (through sudo).
#[test]
fn a_become_step_is_armed_and_confirmed_through_sudo() {
    let mut fleet = Fleet::start(1).unwrap();
    fleet.log_commands().unwrap();
    let plan = write_plan(&fleet, &format!("{CHANGE_WHILE_ARMED}    become: true\n"));
    let (out, _) = apply(&fleet, &plan, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let events = events(&out);
    assert_eq!(
        event(&events, "confirm_result", "change")["outcome"],
        "confirmed"
    );
    assert_eq!(state(&fleet), "changed");
    // Arming and disarming went through sudo, as the step did.
    let through_sudo = fleet
        .commands(1)
        .iter()
        .filter(|c| c.contains("sluice-confirm-") && c.contains("sudo"))
        .count();
    assert!(
        through_sudo >= 3,
        "arm, disarm, clean up: {:#?}",
        fleet.commands(1)
    );
    let dir = fleet.confirm_dir(1).display().to_string();
    assert_eq!(Fleet::processes_mentioning(&dir), Vec::new());
    assert_eq!(armed_dirs(&fleet, 1), Vec::<String>::new());
}
