//! `sluice exec` against a real OpenSSH fleet: per-host results, grouped output, exit codes.

use std::process::Command;

use sluice_testfleet::Fleet;

fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

#[test]
fn exec_runs_on_every_host_and_groups_identical_output() {
    let fleet = Fleet::start(3).expect("start fleet");
    let inventory = fleet.write_inventory().unwrap();
    let out = sluice()
        .args(["exec", "fleet", "-i"])
        .arg(&inventory)
        .args(["--", "echo same; test $FLEET_HOST != host3"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("host1,host2 (2)\nsame\n"), "{err}");
    assert!(err.contains("host3 (1)\nsame\n[exit 1]"), "{err}");
    assert!(
        err.contains("3 hosts: 2 ok, 1 failed, 0 unreachable, 0 refused"),
        "{err}"
    );
}

#[test]
fn exec_json_reports_unreachable_and_succeeds_only_when_all_succeed() {
    let mut fleet = Fleet::start(2).expect("start fleet");
    let inventory = fleet.write_inventory().unwrap();
    let ok = sluice()
        .args(["exec", "host1,host2", "-i"])
        .arg(&inventory)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    fleet.stop(2);
    let out = sluice()
        .args(["exec", "fleet", "--json", "-i"])
        .arg(&inventory)
        .args(["--", "echo", "hi"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let by_host = |h: &str| lines.iter().find(|v| v["host"] == h).unwrap().clone();
    assert_eq!(by_host("host1")["result"], "ok");
    assert_eq!(by_host("host1")["stdout"], "hi\n");
    assert_eq!(by_host("host2")["result"], "unreachable");
}
