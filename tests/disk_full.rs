//! A disk that fills up mid-run (issue 16 fault 10): the audit store lives on an 8 MiB tmpfs,
//! and the last host's last step fills it, so the facts after it (its result, the host's and
//! the wave's end, `run_finished`) cannot be recorded. Under `action: continue` every host
//! succeeds; the old sluice then exited 0 "succeeded" with no end recorded and the leases held.
//! The run must not report success: exit 5, `run_finished` `record_incomplete`, a message saying
//! what is missing and how the leases stand.
//!
//! Needs root (the tests mount a tmpfs, as the SSH tests need root for their users).

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A small tmpfs, unmounted on drop.
struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run mount ({e}): install util-linux (apt-get install mount)")
            });
        assert!(
            out.status.success(),
            "mounting a tmpfs failed (these tests run as root, like the SSH tests: `sudo cargo test`): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { _dir: dir, path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Three hosts, one per wave, `action: continue`. Every step prints more than is kept (64 KiB
/// per stream), so every result needs room in the store; the last host's second step first
/// fills the filesystem the store is on.
fn plan(dir: &Path, filler: &Path) -> PathBuf {
    let yaml = format!(
        r#"name: fills-the-disk
targets: [h1, h2, h3]
waves:
  - {{ name: one, size: 1 }}
  - {{ name: two, size: 1 }}
  - {{ name: three, size: 1 }}
failure: {{ max_failed: 0, action: continue }}
steps:
  - {{ id: work, run: "seq 1 20000; seq 1 20000 >&2" }}
  - {{ id: fill, run: "if [ {{{{host.name}}}} = h3 ]; then cat /dev/zero > {filler} 2>/dev/null; fi; seq 1 20000; seq 1 20000 >&2; true" }}
"#,
        filler = filler.display()
    );
    std::fs::write(dir.join("inventory.yaml"), "hosts:\n  h1: { transport: local }\n  h2: { transport: local }\n  h3: { transport: local }\n").unwrap();
    let path = dir.join("plan.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn a_run_whose_disk_fills_up_does_not_report_success() {
    let fs = Tmpfs::mount("8m");
    let state = fs.path.join("state");
    let work = tempfile::tempdir().unwrap();
    let plan = plan(work.path(), &fs.path.join("filler"));
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("apply")
        .arg(&plan)
        .arg("-i")
        .arg(work.path().join("inventory.yaml"))
        .args(["--yes", "--json", "--color", "never"])
        .env("SLUICE_STATE_DIR", &state)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");

    // Nothing says the run succeeded: not the events, not the summary.
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let finished: Vec<_> = events
        .iter()
        .filter(|e| e["kind"] == "run_finished")
        .collect();
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["status"], "record_incomplete");
    assert!(!stderr.contains("succeeded"), "{stderr}");
    assert!(stderr.contains("RECORD INCOMPLETE"), "{stderr}");
    // The hosts themselves all ended ok: this is about the record.
    let ok_hosts = events
        .iter()
        .filter(|e| e["kind"] == "host_finished" && e["outcome"] == "ok")
        .count();
    assert_eq!(ok_hosts, 3);

    // The message says what is missing and where the leases stand, and the store agrees.
    let run = finished[0]["run"].as_str().unwrap();
    assert!(
        stderr.contains(&format!(
            "the record of run {run} in the audit store is incomplete"
        )) && stderr.contains("were not recorded")
            && stderr.contains("No space left on device"),
        "{stderr}"
    );
    std::fs::remove_file(fs.path.join("filler")).unwrap();
    let log = sluice_audit::AuditLog::open_existing(&state).unwrap();
    let held = log
        .active_leases()
        .unwrap()
        .into_iter()
        .any(|l| l.run == run);
    if held {
        assert!(
            stderr.contains(&format!("`sluice unlock {run}` releases them")),
            "{stderr}"
        );
        drop(log);
        let unlock = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["unlock", run])
            .env("SLUICE_STATE_DIR", &state)
            .output()
            .unwrap();
        assert!(
            unlock.status.success(),
            "{}",
            String::from_utf8_lossy(&unlock.stderr)
        );
    } else {
        assert!(stderr.contains("its host leases were released"), "{stderr}");
    }
    // Whatever the store holds of the run, it never says it succeeded.
    let log = sluice_audit::AuditLog::open_existing(&state).unwrap();
    let summary = log.run_summary(run).unwrap();
    assert_ne!(summary.status.to_string(), "succeeded");
}
