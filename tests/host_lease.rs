//! End-to-end tests of host-side leases (`host_lease: true`) against the sshd fleet: two
//! controllers, each with its own state directory (audit store), on the same hosts. The lease
//! directory of each host is put under the host's own directory with the
//! `sluice_host_lease_dir` test hook. scripts/test.sh runs this file in both transport modes.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_testfleet::Fleet;

mod support;
use support::events;

/// Each host's step waits for `$FLEET_ROOT/go` (so the host stays in flight while the test
/// looks), then writes to its log.
fn plan(fleet: &Fleet) -> PathBuf {
    let yaml = r#"name: fleet-host-lease
targets: [fleet]
host_lease: true
steps:
  - id: change
    run: 'while [ ! -e "$FLEET_ROOT/go" ]; do sleep 0.1; done; echo CHANGED >> "$FLEET_ROOT/log"'
    timeout: 60s
"#;
    let path = fleet.dir().join("plan.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn lease_dir(fleet: &Fleet, i: usize) -> PathBuf {
    fleet.root(i).join("lease")
}

fn inventory(fleet: &Fleet) -> PathBuf {
    fleet
        .write_inventory_with(|i| {
            Some(format!(
                "sluice_host_lease_dir: \"{}\"",
                lease_dir(fleet, i).display()
            ))
        })
        .unwrap()
}

fn apply(fleet: &Fleet, state: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.env("SLUICE_STATE_DIR", state)
        .arg("apply")
        .arg(plan(fleet))
        .arg("-i")
        .arg(inventory(fleet))
        .args(["--yes", "--json"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_controller_with_another_store_is_refused_by_the_host_side_lease() {
    let fleet = Fleet::start(2).unwrap();
    let (store_a, store_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    let first = apply(&fleet, store_a.path(), &[]).spawn().unwrap();
    wait_for("controller A's leases", || {
        (1..=2).all(|i| lease_dir(&fleet, i).join("holder").exists())
    });
    let holder = std::fs::read_to_string(lease_dir(&fleet, 1).join("holder")).unwrap();
    let run_a = holder
        .lines()
        .find_map(|l| l.strip_prefix("run="))
        .unwrap()
        .to_string();
    assert!(holder.contains("controller=") && holder.contains("operator="));
    assert!(holder.contains("expires="));

    let refused = apply(&fleet, store_b.path(), &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("by run {run_a}")) && stderr.contains("nothing was started"),
        "{stderr}"
    );
    assert!(refused.stdout.is_empty(), "B emitted events: it started");

    for i in 1..=2 {
        std::fs::write(fleet.root(i).join("go"), "").unwrap();
    }
    let out = first.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = events(&out);
    for i in 1..=2 {
        let host = format!("host{i}");
        for kind in ["host_lease_taken", "host_lease_released"] {
            assert!(
                events
                    .iter()
                    .any(|e| e["kind"] == kind && e["host"] == host.as_str()),
                "no {kind} for {host}"
            );
        }
        assert!(
            !lease_dir(&fleet, i).exists(),
            "{host}'s lease was released"
        );
        assert_eq!(
            std::fs::read_to_string(fleet.root(i).join("log")).unwrap(),
            "CHANGED\n",
            "only A changed {host}"
        );
    }

    // Released: B may run now.
    let second = apply(&fleet, store_b.path(), &[]).output().unwrap();
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
}

#[test]
fn an_expired_lease_is_broken_only_with_a_reason_and_the_break_is_recorded() {
    let fleet = Fleet::start(1).unwrap();
    std::fs::write(fleet.root(1).join("go"), "").unwrap();
    let dir = lease_dir(&fleet, 1);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("holder"),
        "run=20261122-090000-dead\ncontroller=ctl2\noperator=bob\nexpires=1000\n",
    )
    .unwrap();
    let store = tempfile::tempdir().unwrap();

    let refused = apply(&fleet, store.path(), &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("run 20261122-090000-dead (controller ctl2, operator bob) expired")
            && stderr.contains("--break-expired-host-leases --reason"),
        "{stderr}"
    );
    assert!(!fleet.root(1).join("log").exists());

    let reason = "ctl2 died mid-run";
    let out = apply(
        &fleet,
        store.path(),
        &["--break-expired-host-leases", "--reason", reason],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let events = events(&out);
    let broken = events
        .iter()
        .find(|e| e["kind"] == "host_lease_broken")
        .unwrap_or_else(|| panic!("no host_lease_broken: {events:#?}"));
    assert_eq!(broken["holder_run"], "20261122-090000-dead");
    assert_eq!(broken["holder_operator"], "bob");
    assert_eq!(broken["reason"], reason);
    assert!(!dir.exists(), "the lease was released at the host's end");

    let run = events[0]["run"].as_str().unwrap();
    let show = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .env("SLUICE_STATE_DIR", store.path())
        .args(["show", run, "--json"])
        .output()
        .unwrap();
    let records = String::from_utf8_lossy(&show.stdout);
    assert!(
        records
            .lines()
            .any(|l| l.contains("\"host_lease_broken\"") && l.contains(reason)),
        "the break is recorded: {records}"
    );
}

/// Without `--reason`, the flag is refused by the argument parser: nothing is broken.
#[test]
fn breaking_expired_host_leases_needs_a_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["apply", "--plan", "x.json", "--break-expired-host-leases"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reason"));
}
