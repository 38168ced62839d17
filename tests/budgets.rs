//! Failure budgets per wave, end to end on local hosts: a wave's own `max_failed` overrides the
//! plan's, a failed canary stops the run unless the plan lets it fail, and a run that went
//! through with tolerated failures says so and exits 6 (0 with `--allow-tolerated`).

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod support;
use support::events;

/// Five local hosts; a step that fails on the hosts named in `fail` (a file per host says so).
fn setup(dir: &Path, waves: &str, failure: &str, fail: &[&str]) -> (PathBuf, PathBuf) {
    let mut inventory = String::from("defaults: { transport: local }\nhosts:\n");
    for i in 1..=5 {
        let root = dir.join(format!("h{i}"));
        std::fs::create_dir_all(&root).unwrap();
        if fail.contains(&format!("h{i}").as_str()) {
            std::fs::write(root.join("broken"), "").unwrap();
        }
        inventory.push_str(&format!("  h{i}: {{ workdir: {} }}\n", root.display()));
    }
    inventory.push_str("groups:\n  all5: { hosts: [h1, h2, h3, h4, h5] }\n");
    let inv = dir.join("inventory.yaml");
    std::fs::write(&inv, inventory).unwrap();
    let plan = dir.join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "name: budgets\ntargets: [all5]\nwaves:\n{waves}\nfailure: {failure}\nsteps:\n  - {{ id: patch, run: 'test ! -e broken && echo patched >> log' }}\n"
        ),
    )
    .unwrap();
    (plan, inv)
}

fn apply(dir: &Path, plan: &Path, inv: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--color", "never", "apply"])
        .arg(plan)
        .arg("-i")
        .arg(inv)
        .args(["--yes", "--json", "--state-dir"])
        .arg(dir.join("state"))
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn patched(dir: &Path, host: &str) -> bool {
    dir.join(host).join("log").exists()
}

fn decided(out: &Output) -> Vec<(String, String, String)> {
    events(out)
        .iter()
        .filter(|e| e["kind"] == "wave_decided")
        .map(|e| {
            (
                e["wave"].as_str().unwrap().to_string(),
                e["budget"].as_str().unwrap().to_string(),
                e["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const WAVES: &str = "  - { name: canary, size: 1 }\n  - { name: rest, size: 100% }";

#[test]
fn a_failed_canary_stops_the_run_though_the_plan_tolerates_one_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, inv) = setup(
        dir.path(),
        WAVES,
        "{ max_failed: 1, action: halt }",
        &["h1"],
    );
    let out = apply(dir.path(), &plan, &inv, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        decided(&out),
        [("canary".into(), "0".into(), "halt".into())]
    );
    assert!(
        !patched(dir.path(), "h2"),
        "the rollout went on after the canary failed"
    );
}

#[test]
fn a_canary_the_plan_lets_fail_and_a_wave_of_its_own_budget() {
    let dir = tempfile::tempdir().unwrap();
    let waves = "  - { name: canary, size: 1, max_failed: 1 }\n  - { name: rest, size: 100%, max_failed: 2 }";
    let (plan, inv) = setup(
        dir.path(),
        waves,
        "{ max_failed: 0, action: halt }",
        &["h1", "h3", "h4"],
    );
    let out = apply(dir.path(), &plan, &inv, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        decided(&out),
        [
            ("canary".into(), "1".into(), "continue".into()),
            ("rest".into(), "2".into(), "continue".into())
        ]
    );
    // Three hosts failed, each within its wave's budget: the run says so, with its own code.
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("succeeded with tolerated failures"),
        "{stderr}"
    );
    let finished = events(&out)
        .into_iter()
        .find(|e| e["kind"] == "run_finished")
        .unwrap();
    assert_eq!(finished["status"], "tolerated");
    assert!(patched(dir.path(), "h2") && patched(dir.path(), "h5"));

    let dir = tempfile::tempdir().unwrap();
    let (plan, inv) = setup(
        dir.path(),
        waves,
        "{ max_failed: 0, action: halt }",
        &["h3"],
    );
    let out = apply(dir.path(), &plan, &inv, &["--allow-tolerated"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_wave_budget_of_its_own_is_spent_without_overshoot() {
    let dir = tempfile::tempdir().unwrap();
    let waves = "  - { name: canary, size: 1 }\n  - { name: rest, size: 100%, max_failed: 25%, concurrency: 1 }";
    // rest has 4 hosts: 25% tolerates 1; the second failure fails the wave and nothing more starts.
    let (plan, inv) = setup(
        dir.path(),
        waves,
        "{ max_failed: 3, action: halt }",
        &["h2", "h3"],
    );
    let out = apply(dir.path(), &plan, &inv, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        decided(&out),
        [
            ("canary".into(), "0".into(), "continue".into()),
            ("rest".into(), "25%".into(), "halt".into())
        ]
    );
    assert!(!patched(dir.path(), "h4") && !patched(dir.path(), "h5"));
}
