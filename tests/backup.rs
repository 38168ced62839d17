//! End-to-end tests of the plan's `backup:` gate against the sshd fleet: a host whose backup
//! or its verification fails is not changed (no change step reaches it: the fleet's command
//! log shows it), and a verified backup is recorded with its evidence (the sha256 and size of
//! `verify`'s output). scripts/test.sh runs this file in both transport modes.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sluice_testfleet::Fleet;

mod support;
use support::events;

/// A tarball of the host's `conf/` directory, verified by listing it and finding `app.conf`
/// in it; one change step; failures tolerated up to 2 (the budget decides, not the gate).
fn plan(fleet: &Fleet) -> PathBuf {
    let yaml = r#"name: fleet-backup
targets: [fleet]
failure: { max_failed: 2, action: halt }
backup:
  - id: conf-tarball
    run: 'tar -czf "$FLEET_ROOT/conf.tgz" -C "$FLEET_ROOT" conf'
    verify: 'tar -tzf "$FLEET_ROOT/conf.tgz" | grep -x conf/app.conf && tar -tzf "$FLEET_ROOT/conf.tgz"'
    timeout: 30s
steps:
  - { id: guard-only, run: 'true', skip_if: 'test -e "$FLEET_ROOT/never"', check: true }
  - { id: change, run: 'echo CHANGED >> "$FLEET_ROOT/log"', undo: 'rm -f "$FLEET_ROOT/log"' }
"#;
    let path = fleet.dir().join("plan.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn sluice(state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.env("SLUICE_STATE_DIR", state);
    cmd.stdin(Stdio::null());
    cmd
}

fn apply(fleet: &Fleet, state: &Path) -> Output {
    let inventory = fleet.write_inventory().unwrap();
    sluice(state)
        .arg("apply")
        .arg(plan(fleet))
        .arg("-i")
        .arg(inventory)
        .args(["--yes", "--json"])
        .output()
        .unwrap()
}

fn of_host<'a>(events: &'a [serde_json::Value], kind: &str, host: &str) -> &'a serde_json::Value {
    events
        .iter()
        .find(|e| e["kind"] == kind && e["host"] == host)
        .unwrap_or_else(|| panic!("no {kind} for {host} in {events:#?}"))
}

#[test]
fn a_failed_backup_or_verify_leaves_the_host_unchanged_and_a_verified_one_is_recorded() {
    let mut fleet = Fleet::start(3).unwrap();
    fleet.log_commands().unwrap();
    // host1: a config to back up; host2: none (`tar` fails); host3: a config without
    // app.conf (the tarball is made, its verification fails).
    std::fs::create_dir_all(fleet.root(1).join("conf")).unwrap();
    std::fs::write(fleet.root(1).join("conf/app.conf"), "port = 80\n").unwrap();
    std::fs::create_dir_all(fleet.root(3).join("conf")).unwrap();
    std::fs::write(fleet.root(3).join("conf/other.conf"), "x\n").unwrap();
    let state = tempfile::tempdir().unwrap();

    let out = apply(&fleet, state.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "tolerated: {stderr}");
    let events = events(&out);

    // host1: backed up, verified, changed.
    assert_eq!(
        std::fs::read_to_string(fleet.root(1).join("log")).unwrap(),
        "CHANGED\n"
    );
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(fleet.root(1).join("conf.tgz"))
        .output()
        .unwrap()
        .stdout;
    let verify_output = [b"conf/app.conf\n".as_slice(), &listing].concat();
    let ok = of_host(&events, "backup_result", "host1");
    assert_eq!(ok["status"], "ok", "{ok:#}");
    assert_eq!(ok["phase"], "verify");
    assert_eq!(
        ok["evidence"]["verify_sha256"],
        hex(&Sha256::digest(&verify_output)),
        "the evidence is the hash of verify's whole stdout"
    );
    assert_eq!(ok["evidence"]["verify_bytes"], verify_output.len());
    // The backup ran after the read-only guard and check step, before the change.
    let commands = fleet.commands(1);
    let at = |needle: &str| {
        commands
            .iter()
            .position(|c| c.contains(needle))
            .unwrap_or_else(|| panic!("host1 never ran {needle}: {commands:#?}"))
    };
    assert!(at("never") < at("tar -czf"));
    assert!(at("tar -czf") < at("tar -tzf"));
    assert!(at("tar -tzf") < at("CHANGED"));

    // host2: `run` failed; host3: `verify` failed. Neither got its change step.
    for (host, phase) in [(2, "run"), (3, "verify")] {
        let name = format!("host{host}");
        let result = of_host(&events, "backup_result", &name);
        assert_eq!(result["status"], "failed", "{result:#}");
        assert_eq!(result["phase"], phase);
        assert!(result["evidence"].is_null());
        let finished = of_host(&events, "host_finished", &name);
        assert_eq!(finished["outcome"], "failed");
        let error = finished["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("backup conf-tarball: {phase}: exit "))
                && error.contains("no change step was sent"),
            "{error}"
        );
        assert!(!fleet.root(host).join("log").exists(), "{name} was changed");
        for c in fleet.commands(host) {
            assert!(!c.contains("CHANGED"), "{name} was sent a change: {c}");
        }
        assert!(
            events.iter().all(|e| !(e["kind"] == "step_intent"
                && e["host"] == name.as_str()
                && e["step"] == "change")),
            "{name} has an intent of its change step"
        );
    }

    // The audit trail holds the same evidence.
    let run = events[0]["run"].as_str().unwrap();
    let show = sluice(state.path())
        .args(["show", run, "--json"])
        .output()
        .unwrap();
    let records = String::from_utf8_lossy(&show.stdout);
    let recorded = records
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["kind"] == "backup_result" && r["host"] == "host1")
        .unwrap_or_else(|| panic!("no recorded backup_result: {records}"));
    assert_eq!(recorded["evidence"], ok["evidence"]);
    assert!(
        records.contains("\"backup_started\""),
        "the start is recorded too"
    );
}

/// Two backups on one host: `first` verified, then the controller killed (SIGKILL) while
/// `second`'s `run` is in flight (`backup_started` recorded, no result). `sluice resume` does
/// not run `first` again, runs `second` again from its `run`, and the change runs once.
#[test]
fn resume_after_a_crash_skips_a_verified_backup_and_reruns_an_interrupted_one() {
    let fleet = Fleet::start(1).unwrap();
    let root = fleet.root(1);
    let yaml = r#"name: fleet-backup-resume
targets: [fleet]
backup:
  - id: first
    run: 'echo first >> "$FLEET_ROOT/backups"'
    verify: 'grep -x first "$FLEET_ROOT/backups"'
  - id: second
    run: 'echo second >> "$FLEET_ROOT/backups"; while [ ! -e "$FLEET_ROOT/go" ]; do sleep 0.1; done'
    verify: 'grep -x second "$FLEET_ROOT/backups"'
    timeout: 60s
steps:
  - { id: change, run: 'echo CHANGED >> "$FLEET_ROOT/log"', undo: 'rm -f "$FLEET_ROOT/log"' }
"#;
    let plan = fleet.dir().join("plan.yaml");
    std::fs::write(&plan, yaml).unwrap();
    let inventory = fleet.write_inventory().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut apply = sluice(state.path())
        .arg("apply")
        .arg(&plan)
        .arg("-i")
        .arg(&inventory)
        .args(["--yes", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let backups = root.join("backups");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&backups).is_ok_and(|b| b.contains("second")) {
        assert!(Instant::now() < deadline, "the second backup never started");
        assert!(apply.try_wait().unwrap().is_none(), "apply ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    apply.kill().unwrap();
    let killed = apply.wait_with_output().unwrap();
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&killed.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let run = first["run"].as_str().unwrap().to_string();
    std::fs::write(root.join("go"), "").unwrap();

    let resumed = sluice(state.path())
        .args(["resume", &run, "--yes", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(0), "{stderr}");
    // `first` ran once, before the crash; `second` twice: interrupted, then again.
    assert_eq!(
        std::fs::read_to_string(&backups).unwrap(),
        "first\nsecond\nsecond\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("log")).unwrap(),
        "CHANGED\n"
    );
    let events = events(&resumed);
    let of = |kind: &str, id: &str| {
        events
            .iter()
            .filter(|e| e["kind"] == kind && e["backup"] == id)
            .count()
    };
    assert_eq!(of("backup_started", "first"), 0, "first is not run again");
    assert_eq!(of("backup_started", "second"), 1, "second runs again");
    let second = of_host(&events, "backup_result", "host1");
    assert_eq!(second["backup"], "second");
    assert_eq!(second["status"], "ok", "{second:#}");

    // The run's record: one verified result per backup, and second started twice.
    let show = sluice(state.path())
        .args(["show", &run, "--json"])
        .output()
        .unwrap();
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&show.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let recorded = |kind: &str, id: &str| {
        records
            .iter()
            .filter(|r| r["kind"] == kind && r["backup"] == id)
            .count()
    };
    assert_eq!(recorded("backup_started", "first"), 1);
    assert_eq!(recorded("backup_result", "first"), 1);
    assert_eq!(recorded("backup_started", "second"), 2);
    assert_eq!(recorded("backup_result", "second"), 1);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
