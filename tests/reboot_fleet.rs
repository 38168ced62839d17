//! End-to-end tests of `reboot:` steps against the sshd fleet: a host "reboots" when its sshd
//! and every session die, its boot id file changes and sshd starts again
//! (sluice-testfleet's `reboot.rs`; sluice reads the file through the inventory's
//! `sluice_boot_id_file` test hook). scripts/test.sh runs this file in both transport modes
//! (the runner, and `transport_mode: exec`).

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sluice_testfleet::Fleet;

mod support;
use support::{event, events, host_finished, sluice};

/// What the test does when host 1 asks for a reboot.
#[derive(Clone, Copy, PartialEq)]
enum OnRequest {
    /// Kill sshd and its sessions, change the boot id, start sshd again.
    Reboot,
    /// Kill sshd and its sessions and never start it again.
    StayDown,
}

/// One host; a step before the reboot, the reboot, a step after it that writes the boot id it
/// sees, and a health check that counts its runs.
fn plan(fleet: &Fleet, command: &str, timeout: &str) -> PathBuf {
    let yaml = format!(
        r#"name: fleet-reboot
targets: [fleet]
health:
  checks:
    - {{ name: up, run: 'echo checked >> "$FLEET_ROOT/log"' }}
  retries: 0
  timeout: 5s
steps:
  - {{ id: before, run: 'echo before >> "$FLEET_ROOT/log"' }}
  - id: reboot
    reboot: {{ timeout: {timeout}, command: '{command}' }}
  - {{ id: after, run: 'echo "after $(cat {{{{vars.sluice_boot_id_file}}}})" >> "$FLEET_ROOT/log"' }}
"#
    );
    let path = fleet.dir().join("plan.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Runs `sluice apply --json` and serves host 1's reboot requests while it runs.
fn apply(fleet: &mut Fleet, plan: &PathBuf, on_request: OnRequest) -> (Output, usize) {
    apply_with(fleet, plan, on_request, sluice())
}

/// [`apply`] with `sluice` as given (its audit store, to read the run afterwards).
fn apply_with(
    fleet: &mut Fleet,
    plan: &PathBuf,
    on_request: OnRequest,
    mut sluice: std::process::Command,
) -> (Output, usize) {
    let inventory = fleet.write_inventory_for_reboots().unwrap();
    let mut child = sluice
        .arg("apply")
        .arg(plan)
        .arg("-i")
        .arg(inventory)
        .args(["--yes", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drained on threads, so a full pipe never blocks sluice while the test waits.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        stdout.read_to_end(&mut b).unwrap();
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        stderr.read_to_end(&mut b).unwrap();
        b
    });
    let mut reboots = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "sluice apply did not end");
        if fleet.reboot_requested(1) {
            reboots += 1;
            // A real reboot takes a moment: sluice must wait for it, not race it.
            std::thread::sleep(Duration::from_millis(300));
            match on_request {
                OnRequest::Reboot => fleet.reboot(1).unwrap(),
                OnRequest::StayDown => fleet.go_down(1).unwrap(),
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    };
    (out, reboots)
}

fn log(fleet: &Fleet) -> Vec<String> {
    std::fs::read_to_string(fleet.root(1).join("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Starts `sluice apply --json` of `plan` with its store in `state`, serves host 1's reboot
/// requests before the `nth` as reboots, and kills the controller when the `nth` comes (the
/// host is then rebooting, or about to). Returns the id of the killed run.
fn apply_killed_at_reboot(fleet: &mut Fleet, plan: &Path, state: &Path, nth: usize) -> String {
    let inventory = fleet.write_inventory_for_reboots().unwrap();
    let mut apply = sluice_in(state)
        .args(["apply", "--yes", "--json", "-i"])
        .arg(&inventory)
        .arg(plan)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut requests = 0;
    loop {
        assert!(Instant::now() < deadline, "reboot request {nth} never came");
        assert!(
            apply.try_wait().unwrap().is_none(),
            "apply ended before reboot request {nth}"
        );
        if fleet.reboot_requested(1) {
            requests += 1;
            if requests == nth {
                break;
            }
            // A real reboot takes a moment: sluice must wait for it, not race it.
            std::thread::sleep(Duration::from_millis(300));
            fleet.reboot(1).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    apply.kill().unwrap();
    let killed = apply.wait_with_output().unwrap();
    // The first event names the run; a later line may be cut short by the kill.
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&killed.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    first["run"].as_str().unwrap().to_string()
}

/// Checks how a resume settled a reboot (`step_*`) or its undo (`undo_*`) left without a
/// result: no new intent was sent, and the result is ok, decided after the resume by the boot
/// id, as the listing of UNKNOWN steps on stderr said. Returns the result.
fn assert_settled_by_boot_id<'a>(
    events: &'a [serde_json::Value],
    stderr: &str,
    intent_kind: &str,
    result_kind: &str,
) -> &'a serde_json::Value {
    assert!(
        events
            .iter()
            .all(|e| !(e["kind"] == intent_kind && e["step"] == "reboot")),
        "no new {intent_kind} for the reboot"
    );
    let result = event(events, result_kind, "reboot");
    assert_eq!(result["status"], "ok", "{result}");
    assert!(
        result["detail"]
            .as_str()
            .unwrap()
            .starts_with("after the resume: "),
        "{result}"
    );
    assert!(stderr.contains("the boot id decides"), "{stderr}");
    result
}

#[test]
fn a_reboot_waits_for_a_new_boot_id_then_the_next_step_and_the_health_checks_run() {
    let mut fleet = Fleet::start(1).unwrap();
    // As a real reboot does, the reboot kills the command: its connection drops mid-command.
    let command = format!("{}; sleep 60", Fleet::REBOOT_COMMAND);
    let plan = plan(&fleet, &command, "60s");
    let _ = fleet.write_inventory_for_reboots().unwrap();
    let old_boot_id = fleet.boot_id(1);
    let (out, reboots) = apply(&mut fleet, &plan, OnRequest::Reboot);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(reboots, 1, "the reboot command ran once");
    let new_boot_id = fleet.boot_id(1);
    assert_ne!(old_boot_id, new_boot_id);
    // The step after the reboot ran after it, on the new boot; the health check after that.
    assert_eq!(
        log(&fleet),
        vec![
            "before".to_string(),
            format!("after {new_boot_id}"),
            "checked".to_string()
        ]
    );
    let events = events(&out);
    let intent = event(&events, "step_intent", "reboot");
    assert_eq!(intent["boot_id"], old_boot_id.as_str(), "{intent}");
    let result = event(&events, "step_result", "reboot");
    assert_eq!(result["status"], "ok", "{result}");
    assert!(
        result["detail"]
            .as_str()
            .unwrap()
            .starts_with("rebooted: the host answered with a new boot id after"),
        "{result}"
    );
    assert_eq!(host_finished(&events)["outcome"], "ok");
    // The boot id is only on the reboot's intent.
    assert!(
        event(&events, "step_intent", "after")
            .get("boot_id")
            .is_none()
    );
}

#[test]
fn a_host_that_does_not_come_back_within_the_timeout_fails_with_the_reason() {
    let mut fleet = Fleet::start(1).unwrap();
    let plan = plan(&fleet, Fleet::REBOOT_COMMAND, "3s");
    let started = Instant::now();
    let (out, reboots) = apply(&mut fleet, &plan, OnRequest::StayDown);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(reboots, 1);
    // The wait ends at the reboot's timeout (plus connect bounds and the run's start and end),
    // not at some later default.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let events = events(&out);
    let result = event(&events, "step_result", "reboot");
    assert_eq!(result["status"], "timed_out", "{result}");
    let detail = result["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("the host did not come back within the reboot's timeout (3s)"),
        "{detail}"
    );
    let host = host_finished(&events);
    assert_eq!(host["outcome"], "failed", "{host}");
    assert!(
        host["error"]
            .as_str()
            .unwrap()
            .contains("did not come back"),
        "{host}"
    );
    // Nothing ran after the failed reboot.
    assert_eq!(log(&fleet), vec!["before".to_string()]);
    assert!(events.iter().all(|e| e["step"] != "after"));
}

#[test]
fn a_reboot_that_does_not_happen_fails_on_the_unchanged_boot_id() {
    let mut fleet = Fleet::start(1).unwrap();
    // The command succeeds but reboots nothing: the host keeps answering with its boot id.
    let plan = plan(&fleet, "true", "3s");
    let _ = fleet.write_inventory_for_reboots().unwrap();
    let boot_id = fleet.boot_id(1);
    let (out, reboots) = apply(&mut fleet, &plan, OnRequest::Reboot);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(reboots, 0);
    let events = events(&out);
    let result = event(&events, "step_result", "reboot");
    assert_eq!(result["status"], "failed", "{result}");
    assert_eq!(
        result["detail"],
        format!("the host did not reboot: it still answers with boot id {boot_id} after 3s"),
    );
    assert_eq!(host_finished(&events)["outcome"], "failed");
    assert_eq!(log(&fleet), vec!["before".to_string()]);
}

/// `sluice` with the audit store in `state`.
fn sluice_in(state: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.env("SLUICE_STATE_DIR", state);
    cmd
}

/// The reboot command's output is in its step result (bounded, with its sha256 and size), on
/// record (`sluice logs`) and in the host's failure.
fn assert_output_kept(
    result: &serde_json::Value,
    state: &std::path::Path,
    stdout: &str,
    stderr: &str,
) {
    assert_eq!(result["stdout"]["head"], stdout, "{result:#}");
    assert_eq!(result["stderr"]["head"], stderr, "{result:#}");
    assert_eq!(result["stderr"]["bytes"], stderr.len());
    assert_eq!(
        result["stderr"]["sha256"],
        hex(&Sha256::digest(stderr.as_bytes()))
    );
    let run = result["run"].as_str().unwrap();
    let logs = sluice_in(state)
        .args(["logs", run, "--step", "reboot"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.status.success(), "{text}");
    assert!(
        text.contains(stdout.trim()) && text.contains(stderr.trim()),
        "sluice logs shows the reboot command's output: {text}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_reboot_command_that_fails_fails_the_step_at_once() {
    let mut fleet = Fleet::start(1).unwrap();
    let plan = plan(&fleet, "echo trying; echo denied >&2; exit 4", "60s");
    let state = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (out, _) = apply_with(
        &mut fleet,
        &plan,
        OnRequest::Reboot,
        sluice_in(state.path()),
    );
    assert_eq!(out.status.code(), Some(1));
    // Not after the 60 s timeout: a command that says it failed is not waited for.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let events = events(&out);
    let result = event(&events, "step_result", "reboot");
    assert_eq!(result["status"], "failed", "{result}");
    assert_eq!(
        result["detail"],
        "the reboot command failed (exit 4): the host was not rebooted"
    );
    assert_eq!(result["exit_code"], 4);
    assert_output_kept(result, state.path(), "trying\n", "denied\n");
    let error = host_finished(&events)["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("exit 4"), "{error}");
}

#[test]
fn a_reboot_command_that_times_out_keeps_its_output() {
    let mut fleet = Fleet::start(1).unwrap();
    let plan = plan(&fleet, "echo waiting; echo stuck >&2; sleep 30", "2s");
    let state = tempfile::tempdir().unwrap();
    let (out, reboots) = apply_with(
        &mut fleet,
        &plan,
        OnRequest::Reboot,
        sluice_in(state.path()),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(reboots, 0);
    let events = events(&out);
    let result = event(&events, "step_result", "reboot");
    assert_eq!(result["status"], "timed_out", "{result}");
    assert!(
        result["detail"]
            .as_str()
            .unwrap()
            .starts_with("the reboot command did not end within the reboot's timeout (2s)"),
        "{result}"
    );
    assert_output_kept(result, state.path(), "waiting\n", "stuck\n");
}

#[test]
fn the_undo_of_a_reboot_step_reboots_again_and_is_waited_for() {
    let mut fleet = Fleet::start(1).unwrap();
    let yaml = format!(
        r#"name: fleet-reboot-undo
targets: [fleet]
failure: {{ max_failed: 0, action: rollback }}
steps:
  - id: reboot
    reboot: {{ timeout: 60s, command: '{cmd}' }}
    undo: '{cmd}'
  - {{ id: broken, run: 'exit 3', undo: 'cat {{{{vars.sluice_boot_id_file}}}} >> "$FLEET_ROOT/undone"' }}
"#,
        cmd = Fleet::REBOOT_COMMAND
    );
    let plan = fleet.dir().join("plan.yaml");
    std::fs::write(&plan, yaml).unwrap();
    let (out, reboots) = apply(&mut fleet, &plan, OnRequest::Reboot);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(reboots, 2, "the step and its undo each rebooted the host");
    let events = events(&out);
    let undo_intent = event(&events, "undo_intent", "reboot");
    let undo = event(&events, "undo_result", "reboot");
    assert_eq!(undo["status"], "ok", "{undo}");
    // The undo read the boot id the step's reboot left, before rebooting again.
    let broken_undo = std::fs::read_to_string(fleet.root(1).join("undone")).unwrap();
    assert_eq!(undo_intent["boot_id"], broken_undo.trim(), "{undo_intent}");
    assert_ne!(fleet.boot_id(1), broken_undo.trim());
    let rolled_back = events
        .iter()
        .find(|e| e["kind"] == "host_rolled_back")
        .unwrap();
    assert_eq!(rolled_back["outcome"], "rolled_back", "{rolled_back}");
}

#[test]
fn a_controller_killed_during_a_reboot_resumes_by_checking_the_boot_id() {
    let mut fleet = Fleet::start(1).unwrap();
    let plan = plan(&fleet, Fleet::REBOOT_COMMAND, "60s");
    let old_boot_id = fleet.boot_id(1);
    let state = fleet.dir().join("state");
    let run = apply_killed_at_reboot(&mut fleet, &plan, &state, 1);
    // The host is still down when resume starts.
    fleet.go_down(1).unwrap();
    let resume = sluice_in(&state)
        .args(["resume", &run, "--yes", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    fleet.restart(1).unwrap();
    let out = resume.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let new_boot_id = fleet.boot_id(1);
    assert_ne!(old_boot_id, new_boot_id);
    // Nothing ran twice: the reboot was not sent again, `before` was not run again.
    assert_eq!(
        log(&fleet),
        vec![
            "before".to_string(),
            format!("after {new_boot_id}"),
            "checked".to_string()
        ]
    );
    assert!(!fleet.reboot_requested(1), "resume sent the reboot again");
    let events = events(&out);
    let result = assert_settled_by_boot_id(&events, &stderr, "step_intent", "step_result");
    assert!(
        result["detail"]
            .as_str()
            .unwrap()
            .starts_with("after the resume: rebooted: the host answered with a new boot id"),
        "{result}"
    );
    assert!(
        stderr.contains("UNKNOWN: a reboot: the boot id decides"),
        "{stderr}"
    );
}

#[test]
fn a_reboot_command_killed_by_a_signal_is_what_a_reboot_looks_like() {
    let mut fleet = Fleet::start(1).unwrap();
    // The shell reports its child's death by SIGTERM as exit 143, as when a reboot kills
    // `systemctl` under dash or the runner.
    let command = format!("{}; sh -c \"kill -TERM \\$\\$\"", Fleet::REBOOT_COMMAND);
    let plan = plan(&fleet, &command, "60s");
    let (out, reboots) = apply(&mut fleet, &plan, OnRequest::Reboot);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(reboots, 1);
    let events = events(&out);
    assert_eq!(event(&events, "step_result", "reboot")["status"], "ok");
}

/// Issue 15: a controller killed while the undo of a reboot step reboots the host; resume
/// settles that undo by the boot id (the host rebooted meanwhile) instead of asking the
/// operator or rebooting the host again.
#[test]
fn a_controller_killed_during_an_undo_reboot_resumes_by_checking_the_boot_id() {
    let mut fleet = Fleet::start(1).unwrap();
    let yaml = format!(
        r#"name: fleet-reboot-undo-resume
targets: [fleet]
failure: {{ max_failed: 0, action: rollback }}
steps:
  - id: reboot
    reboot: {{ timeout: 60s, command: '{cmd}' }}
    undo: '{cmd}'
  - {{ id: broken, run: 'exit 3' }}
"#,
        cmd = Fleet::REBOOT_COMMAND
    );
    let plan = fleet.dir().join("plan.yaml");
    std::fs::write(&plan, yaml).unwrap();
    let state = fleet.dir().join("state");
    // The controller dies while the undo reboots the host (its second reboot request); the
    // host comes back meanwhile.
    let run = apply_killed_at_reboot(&mut fleet, &plan, &state, 2);
    let before_undo = fleet.boot_id(1);
    fleet.reboot(1).unwrap();
    let out = sluice_in(&state)
        .args(["resume", &run, "--yes", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !fleet.reboot_requested(1),
        "resume sent the undo's reboot again"
    );
    assert_ne!(fleet.boot_id(1), before_undo);
    let events = events(&out);
    assert_settled_by_boot_id(&events, &stderr, "undo_intent", "undo_result");
    assert!(stderr.contains("undo:reboot"), "{stderr}");
    let rolled_back = events
        .iter()
        .find(|e| e["kind"] == "host_rolled_back")
        .unwrap();
    assert_eq!(rolled_back["outcome"], "rolled_back", "{rolled_back}");
}
