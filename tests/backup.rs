//! End-to-end tests of the plan's `backup:` gate against the sshd fleet: a host whose backup
//! or its verification fails is not changed (no change step reaches it: the fleet's command
//! log shows it), and a verified backup is recorded with its evidence (the sha256 and size of
//! `verify`'s output). scripts/test.sh runs this file in both transport modes.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
