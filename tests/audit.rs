//! End-to-end tests of the audit commands: a store seeded through the library (as the executor
//! writes it), read, exported, tampered with and verified through the `sluice` binary.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use sluice_audit::fixture::{run_started, seed_run};
use sluice_audit::{AuditLog, LeaseHolder};

fn sluice(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A sealed plan artifact written to `dir/plan.json`.
fn plan_file(dir: &Path) -> (sluice_plan::PlanArtifact, std::path::PathBuf) {
    let artifact = sluice_exec::testkit::PlanBuilder::new("kernel")
        .wave("all", &[], 1, 0)
        .build();
    let file = dir.join("plan.json");
    std::fs::write(&file, serde_json::to_vec(&artifact).unwrap()).unwrap();
    (artifact, file)
}

/// A store with a succeeded run and a failed one.
fn seeded() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    let ok = seed_run(&log, "kernel", &["web1", "web2"], &[]).unwrap();
    let failed = seed_run(&log, "openssl", &["db1", "db2", "db3"], &["db1", "db3"]).unwrap();
    (dir, ok, failed)
}

#[test]
fn runs_lists_recent_runs_as_json_lines() {
    let (dir, ok, failed) = seeded();
    let out = sluice(dir.path(), &["runs", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let runs: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["run"], failed.as_str());
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(
        (
            runs[0]["hosts_ok"].as_u64(),
            runs[0]["hosts_failed"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(runs[1]["run"], ok.as_str());
    assert_eq!(runs[1]["plan"], "kernel");
    // Human output goes to stderr.
    let human = sluice(dir.path(), &["runs"]);
    assert!(human.stdout.is_empty());
    assert!(stderr(&human).contains(&ok), "{}", stderr(&human));
}

#[test]
fn show_and_logs_read_a_run() {
    let (dir, _, failed) = seeded();
    let out = sluice(dir.path(), &["show", &failed]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("wave_decided"), "{text}");
    assert!(text.contains("2 failed of 3"), "{text}");
    let out = sluice(dir.path(), &["logs", &failed, "--host", "db2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "==> db2 patch (exit 0) <==\npatched db2\n");
    let out = sluice(
        dir.path(),
        &["logs", &failed, "--host", "db1", "--step", "patch"],
    );
    assert!(
        stdout(&out).contains("--- stderr ---\nboom\n"),
        "{}",
        stdout(&out)
    );
    let out = sluice(dir.path(), &["logs", "no-such-run"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn export_tamper_and_verify_file() {
    let (dir, _, failed) = seeded();
    let verified = sluice(dir.path(), &["audit", "verify"]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(stderr(&verified).contains("chain intact"));

    let export = sluice(dir.path(), &["audit", "export"]);
    assert!(export.status.success(), "{}", stderr(&export));
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &export.stdout).unwrap();
    let file_arg = file.to_str().unwrap();
    let ok = sluice(dir.path(), &["audit", "verify", "--file", file_arg]);
    assert!(ok.status.success(), "{}", stderr(&ok));

    // Change one byte of record 5.
    let text = stdout(&export);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[4] = lines[4].replacen("web", "wex", 1);
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let bad = sluice(
        dir.path(),
        &["audit", "verify", "--file", file_arg, "--json"],
    );
    assert_eq!(bad.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_str(stdout(&bad).trim()).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["broken"]["seq"], 5);
    assert!(
        stderr(&bad).contains("broken at record 5"),
        "{}",
        stderr(&bad)
    );

    // A run's own export verifies on its own.
    let run_export = sluice(dir.path(), &["audit", "export", "--run", &failed]);
    std::fs::write(&file, &run_export.stdout).unwrap();
    let ok = sluice(dir.path(), &["audit", "verify", "--file", file_arg]);
    assert!(ok.status.success(), "{}", stderr(&ok));
}

#[test]
fn approve_plan_binds_to_the_artifact_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (artifact, file) = plan_file(dir.path());
    let out = sluice(
        dir.path(),
        &[
            "approve-plan",
            file.to_str().unwrap(),
            "--by",
            "bob",
            "--comment",
            "CAB-7",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let log = AuditLog::open_existing(dir.path()).unwrap();
    let approvals = log.plan_approvals(&artifact.plan_hash).unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].1.by, "bob");
    assert!(log.artifact(&artifact.plan_hash).unwrap().is_some());
    drop(log);

    // An artifact edited after planning is refused.
    let mut edited = serde_json::to_value(&artifact).unwrap();
    edited["name"] = "kernel-edited".into();
    std::fs::write(&file, serde_json::to_vec(&edited).unwrap()).unwrap();
    let out = sluice(
        dir.path(),
        &["approve-plan", file.to_str().unwrap(), "--by", "bob"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not match"), "{}", stderr(&out));
}

#[test]
fn approve_wave_and_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let run = {
        let log = AuditLog::open(dir.path()).unwrap();
        let mut started = run_started("kernel", &["web1"]);
        started.waves = vec!["canary".into(), "rest".into()];
        let run = log.begin_run(started).unwrap();
        // A holder that has exited: its lease may be broken.
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let holder = LeaseHolder {
            pid,
            ..LeaseHolder::this_process()
        };
        log.take_leases(&run, &["web1".to_string()], &holder)
            .unwrap();
        run
    };
    let out = sluice(
        dir.path(),
        &["approve", &run, "--wave", "rest", "--by", "carol"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sluice(
        dir.path(),
        &["approve", &run, "--wave", "nope", "--by", "carol"],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = sluice(
        dir.path(),
        &["approve", "no-such-run", "--wave", "rest", "--by", "carol"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no-such-run"), "{}", stderr(&out));
    let out = sluice(dir.path(), &["unlock", &run, "--by", "ops"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = AuditLog::open_existing(dir.path()).unwrap();
    assert!(log.wave_approved(&run, "rest").unwrap().is_some());
    assert!(log.active_leases().unwrap().is_empty());
    let records = log.run_records(&run).unwrap();
    assert_eq!(records.last().map(|r| r.kind()), Some("lease_broken"));
}

#[test]
fn corrupt_store_is_refused_and_salvaged() {
    let (dir, _, _) = seeded();
    let file = dir.path().join(sluice_audit::STORE_FILE);
    let mut bytes = std::fs::read(&file).unwrap();
    for b in &mut bytes[..4096] {
        *b ^= 0x5a;
    }
    std::fs::write(&file, &bytes).unwrap();
    let out = sluice(dir.path(), &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot be opened"),
        "{}",
        stderr(&out)
    );
    let out = sluice(dir.path(), &["audit", "export"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Salvaged"), "{}", stderr(&out));
    // The damaged file was not replaced.
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
}

#[test]
fn read_commands_do_not_create_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = sluice(dir.path(), &["runs"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no audit store"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn concurrent_processes_append_to_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (artifact, file) = plan_file(dir.path());
    AuditLog::open(dir.path()).unwrap();
    let children: Vec<_> = (0..6)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_sluice"))
                .args(["approve-plan", file.to_str().unwrap(), "--by"])
                .arg(format!("approver{i}"))
                .arg("--state-dir")
                .arg(dir.path())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let log = AuditLog::open_existing(dir.path()).unwrap();
    assert_eq!(log.plan_approvals(&artifact.plan_hash).unwrap().len(), 6);
    let report = log.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    // Six approvals and the artifact, stored once.
    assert_eq!(report.records, 7);
}

#[test]
fn redacted_secret_is_absent_from_store_export_and_logs() {
    let secret = "hunter2-s3cr3t";
    let dir = tempfile::tempdir().unwrap();
    let redactor = sluice_audit::Redactor::new([secret]);
    let run = {
        let log = AuditLog::open(dir.path()).unwrap();
        let mut started = run_started("kernel", &["web1"]);
        started.command_line = redactor.redact_args(&[format!("--token={secret}")]);
        let run = log.begin_run(started).unwrap();
        // What the executor does with a step that echoed the secret.
        let mut result = match sluice_audit::fixture::step_result("web1", "patch", true, "") {
            sluice_model::Fact::StepResult(r) => r,
            _ => unreachable!(),
        };
        result.stdout = redactor.redact_capture(&sluice_audit::fixture::capture(&format!(
            "token is {secret}\n"
        )));
        log.append(&run, sluice_model::Fact::StepResult(result))
            .unwrap();
        run
    };
    let store = std::fs::read(dir.path().join(sluice_audit::STORE_FILE)).unwrap();
    assert!(!store.windows(secret.len()).any(|w| w == secret.as_bytes()));
    let export = sluice(dir.path(), &["audit", "export"]);
    assert!(!stdout(&export).contains(secret));
    let logs = sluice(dir.path(), &["logs", &run]);
    assert_eq!(stdout(&logs), "==> web1 patch (exit 0) <==\ntoken is ***\n");
}
