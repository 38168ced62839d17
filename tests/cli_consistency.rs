//! One name per concept across subcommands: a file a command writes is `--out` everywhere
//! (`audit export`'s older `-o/--output` still accepted, hidden), durations read the same in
//! every human display, and the same refusal exits with the same code.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use sluice_audit::AuditLog;
use sluice_audit::fixture::seed_run;

fn sluice(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .env("SLUICE_STATE_DIR", state)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn help(state: &Path, args: &[&str]) -> String {
    let mut with_help = args.to_vec();
    with_help.push("--help");
    let out = sluice(state, &with_help);
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_file_a_command_writes_is_out_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    seed_run(&log, "kernel", &["web1"], &[]).unwrap();
    drop(log);
    for command in [
        &["plan"][..],
        &["approve-plan"],
        &["audit", "export"],
        &["metrics"],
        &["man"],
    ] {
        let text = help(dir.path(), command);
        assert!(text.contains("--out <"), "{command:?}: {text}");
        assert!(
            !text.contains("--output"),
            "{command:?} shows one name: {text}"
        );
    }
    // The older spellings of `audit export` still work.
    let mut exports = Vec::new();
    for flag in ["--out", "--output", "-o"] {
        let file = dir.path().join(format!("export{flag}.jsonl"));
        let out = sluice(
            dir.path(),
            &["audit", "export", flag, file.to_str().unwrap()],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        exports.push(std::fs::read_to_string(file).unwrap());
    }
    assert!(!exports[0].is_empty());
    assert!(exports.iter().all(|e| e == &exports[0]));
}

#[test]
fn show_prints_durations_as_the_run_display_does() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    let run = seed_run(&log, "kernel", &["web1"], &[]).unwrap();
    drop(log);
    let out = sluice(dir.path(), &["show", &run]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains(" ms"), "no raw milliseconds: {text}");
    assert!(text.contains("exit 0) in 0.0s"), "{text}");
}

#[test]
fn an_unknown_run_is_refused_alike_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    seed_run(&log, "kernel", &["web1"], &[]).unwrap();
    drop(log);
    for command in [
        &["unlock", "nosuchrun"][..],
        &["resume", "nosuchrun", "--yes"],
        &["show", "nosuchrun"],
        &["logs", "nosuchrun"],
        &["approve", "nosuchrun", "--wave", "w", "--by", "me"],
    ] {
        let out = sluice(dir.path(), command);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {stderr}");
        assert!(stderr.contains("nosuchrun"), "{command:?}: {stderr}");
    }
}
