//! A registered value is exact, or the step fails naming the limit (issue 16 fault 6): over the
//! local transport and over SSH to a real sshd (crates/sluice-testfleet). A later step prints the
//! sha256 of the value it was given, which must be the sha256 of what the registering step
//! printed (trimmed); the old executor passed on the first and last 32 KiB of anything larger.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use sha2::Digest;
use sluice_testfleet::Fleet;

mod support;
use support::{events, sluice};

/// `seq 1 20000`: 108,894 bytes, every line different, so a value cut or spliced anywhere shows.
const SEQ_BYTES: u64 = 108_894;

fn expected_seq_value() -> String {
    let text: String = (1..=20_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(text.len() as u64, SEQ_BYTES);
    text.trim().to_string()
}

fn sha(text: &str) -> String {
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Registers `seq 1 20000` under a 1 MiB limit and exactly 64 KiB under the default limit, then
/// prints the sha256 of each value as the later steps received it.
const EXACT: &str = r#"name: register-exact
targets: [TARGETS]
steps:
  - { id: numbers, run: "seq 1 20000", register: numbers, register_limit: 1MiB }
  - { id: edge, run: "head -c 65536 /dev/zero | tr '\\0' z", register: edge }
  - { id: check_numbers, run: "printf %s {{numbers}} | sha256sum" }
  - { id: check_edge, run: "printf %s {{edge}} | sha256sum" }
"#;

/// Registers `seq 1 20000` under the default limit (64 KiB): the step must fail.
const OVER: &str = r#"name: register-over
targets: [TARGETS]
steps:
  - { id: numbers, run: "seq 1 20000", register: numbers, undo: "true" }
  - { id: check_numbers, run: "printf %s {{numbers}} | sha256sum" }
"#;

fn apply(dir: &Path, plan: &str, targets: &str, inventory: &Path) -> Output {
    let path: PathBuf = dir.join("plan.yaml");
    std::fs::write(&path, plan.replace("TARGETS", targets)).unwrap();
    sluice()
        .arg("apply")
        .arg(&path)
        .arg("-i")
        .arg(inventory)
        .args(["--yes", "--json", "--color", "never"])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The `step_result` events of `step`.
fn results(out: &Output, step: &str) -> Vec<serde_json::Value> {
    events(out)
        .into_iter()
        .filter(|e| e["kind"] == "step_result" && e["step"] == step)
        .collect()
}

fn printed_sha(out: &Output, step: &str) -> String {
    let result = results(out, step);
    assert_eq!(result.len(), 1, "{step}: {result:?}");
    assert_eq!(result[0]["status"], "ok", "{step}: {}", result[0]);
    let stdout = result[0]["stdout"]["head"].as_str().unwrap();
    stdout.split_whitespace().next().unwrap().to_string()
}

fn check_exact(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let numbers = results(out, "numbers");
    assert_eq!(numbers[0]["stdout"]["bytes"], SEQ_BYTES);
    assert_eq!(numbers[0]["stdout"]["truncated"], false);
    assert_eq!(
        printed_sha(out, "check_numbers"),
        sha(&expected_seq_value())
    );
    assert_eq!(printed_sha(out, "check_edge"), sha(&"z".repeat(65_536)));
}

fn check_over(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let numbers = results(out, "numbers");
    assert_eq!(numbers.len(), 1);
    assert_eq!(numbers[0]["status"], "failed");
    let detail = numbers[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("over the register limit of 64 KiB (65536 bytes)")
            && detail.contains("108894 bytes")
            && detail.contains("register_limit"),
        "{detail}"
    );
    // No later step was given a cut value.
    assert!(results(out, "check_numbers").is_empty());
    assert!(stderr.contains("register limit of 64 KiB"), "{stderr}");
}

fn local_inventory(dir: &Path) -> PathBuf {
    let path = dir.join("inventory.yaml");
    std::fs::write(&path, "hosts:\n  l1: { transport: local }\n").unwrap();
    path
}

#[test]
fn local_registered_values_are_exact_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = local_inventory(dir.path());
    check_exact(&apply(dir.path(), EXACT, "l1", &inventory));
}

#[test]
fn local_value_over_the_limit_fails_the_step_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = local_inventory(dir.path());
    check_over(&apply(dir.path(), OVER, "l1", &inventory));
}

#[test]
fn fleet_registered_values_are_exact_or_the_step_fails() {
    let fleet = Fleet::start(1).unwrap();
    let inventory = fleet.write_inventory().unwrap();
    check_exact(&apply(fleet.dir(), EXACT, "fleet", &inventory));
    check_over(&apply(fleet.dir(), OVER, "fleet", &inventory));
}

#[test]
fn register_limit_is_checked_at_plan_time() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = local_inventory(dir.path());
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "name: bad\ntargets: [l1]\nsteps:\n  - { id: a, run: \"echo\", register_limit: 1KiB }\n  - { id: b, run: \"echo\", register: b, register_limit: 1MB }\n  - { id: c, run: \"echo\", register: c, register_limit: 17MiB }\n",
    )
    .unwrap();
    let out = sluice()
        .arg("validate")
        .arg(&plan)
        .arg("-i")
        .arg(&inventory)
        .args(["--color", "never"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`register_limit` without `register`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("register_limit `1MB` is not a size"),
        "{stderr}"
    );
    assert!(
        stderr.contains("register_limit `17MiB` is not a size"),
        "{stderr}"
    );
    assert!(stderr.contains("plan.yaml:6:"), "{stderr}");
}
