//! End-to-end tests of plans with stages on a fleet of real OpenSSH sshd hosts on 127.0.0.1:
//! where a stage's `run_once` step runs (`delegate:`), read back from each host's `$FLEET_ROOT`.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use sluice_testfleet::Fleet;

mod support;
use support::{events, sluice};

fn write_plan(fleet: &Fleet, yaml: &str) -> PathBuf {
    let path = fleet.dir().join("plan.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn run(args: &[&str], plan: &Path, inventory: &Path) -> Output {
    sluice()
        .args(&args[..1])
        .arg(plan)
        .arg("-i")
        .arg(inventory)
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A stage's `run_once` step with `delegate: host3` runs on host3, which no stage targets, and
/// on no targeted host; the review says where it runs, and the run leases host3 too.
#[test]
fn a_delegated_run_once_step_runs_on_the_delegated_host_only() {
    let fleet = Fleet::start(3).unwrap();
    let inventory = fleet.write_inventory().unwrap();
    let plan = write_plan(
        &fleet,
        r#"name: delegate
stages:
  - name: app
    targets: [host1, host2]
    steps: [{ id: patch, run: 'echo patch >> "$FLEET_ROOT/log"' }]
  - name: migrate
    targets: [host1]
    steps:
      - { id: migrate, run_once: true, delegate: host3, run: 'echo "migrate on $FLEET_HOST" >> "$FLEET_ROOT/log"; echo v7', register: schema }
  - name: after
    targets: [host2]
    steps: [{ id: note, run: 'echo "schema {{stages.migrate.schema}}" >> "$FLEET_ROOT/log"' }]
"#,
    );
    for i in 1..=3 {
        let _ = std::fs::remove_file(fleet.root(i).join("log"));
    }

    let review = run(&["plan"], &plan, &inventory);
    assert_eq!(review.status.code(), Some(0), "{}", text(&review));
    assert!(
        text(&review).contains("once, on host3"),
        "the review says where the step runs:\n{}",
        text(&review)
    );

    let out = run(&["apply", "--yes", "--json"], &plan, &inventory);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = |i: usize| std::fs::read_to_string(fleet.root(i).join("log")).unwrap_or_default();
    assert_eq!(log(3), "migrate on host3\n");
    assert_eq!(log(1), "patch\n");
    assert_eq!(log(2), "patch\nschema v7\n");

    let events = events(&out);
    let ran_on: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "step_result" && e["step"] == "migrate/migrate")
        .map(|e| e["host"].as_str().unwrap())
        .collect();
    assert_eq!(ran_on, ["host3"]);
    let leased: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "run_started")
        .flat_map(|e| e["hosts"].as_array().unwrap())
        .map(|h| h.as_str().unwrap())
        .collect();
    assert_eq!(leased, ["host1", "host2", "host3"]);
}
