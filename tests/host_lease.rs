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
    write_plan(
        fleet,
        r#"name: fleet-host-lease
targets: [fleet]
host_lease: true
steps:
  - id: change
    run: 'while [ ! -e "$FLEET_ROOT/go" ]; do sleep 0.1; done; echo CHANGED >> "$FLEET_ROOT/log"'
    timeout: 60s
"#,
    )
}

fn write_plan(fleet: &Fleet, yaml: &str) -> PathBuf {
    let path = fleet.dir().join("plan.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn lease_dir(fleet: &Fleet, i: usize) -> PathBuf {
    fleet.root(i).join("lease")
}

fn inventory(fleet: &Fleet) -> PathBuf {
    inventory_with_ttl(fleet, None)
}

/// The inventory, each host's lease under its own directory and, with `ttl`, lasting that many
/// seconds (the `sluice_host_lease_ttl` hook).
fn inventory_with_ttl(fleet: &Fleet, ttl: Option<u64>) -> PathBuf {
    fleet
        .write_inventory_with(|i| {
            let dir = format!(
                "sluice_host_lease_dir: \"{}\"",
                lease_dir(fleet, i).display()
            );
            Some(match ttl {
                Some(secs) => format!("{dir}, sluice_host_lease_ttl: {secs}"),
                None => dir,
            })
        })
        .unwrap()
}

fn apply(fleet: &Fleet, state: &Path, extra: &[&str]) -> Command {
    apply_with(state, &plan(fleet), &inventory(fleet), extra)
}

fn apply_with(state: &Path, plan: &Path, inventory: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.env("SLUICE_STATE_DIR", state)
        .arg("apply")
        .arg(plan)
        .arg("-i")
        .arg(inventory)
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

/// The `expires=` of a host's lease, while it holds one.
fn lease_expiry(fleet: &Fleet, i: usize) -> Option<i64> {
    let holder = std::fs::read_to_string(lease_dir(fleet, i).join("holder")).ok()?;
    holder
        .lines()
        .find_map(|l| l.strip_prefix("expires="))?
        .trim()
        .parse()
        .ok()
}

/// A step longer than the lease (3 seconds here, through the `sluice_host_lease_ttl` hook):
/// the lease is refreshed while the step runs, so well after its first expiry a second
/// controller that would break an expired lease is still refused. (Refreshed only between
/// steps, the lease expired under the step and the second controller took the host.)
#[test]
fn a_step_longer_than_the_lease_keeps_the_lease_alive() {
    let fleet = Fleet::start(1).unwrap();
    let (store_a, store_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let inventory = inventory_with_ttl(&fleet, Some(3));
    let plan = plan(&fleet);

    let first = apply_with(store_a.path(), &plan, &inventory, &[])
        .spawn()
        .unwrap();
    wait_for("controller A's lease", || lease_expiry(&fleet, 1).is_some());
    let taken_until = lease_expiry(&fleet, 1).unwrap();
    // Two lease durations and more: the first expiry is long gone.
    std::thread::sleep(Duration::from_secs(7));
    let refreshed_until = lease_expiry(&fleet, 1).expect("A still holds the lease");
    assert!(
        refreshed_until >= taken_until + 4,
        "the expiry was pushed back while the step ran: {taken_until} then {refreshed_until}"
    );

    let mut second = apply_with(
        store_b.path(),
        &plan,
        &inventory,
        &["--break-expired-host-leases", "--reason", "A looks dead"],
    )
    .spawn()
    .unwrap();
    let ended = wait_until_exits(&mut second, Duration::from_secs(20));
    std::fs::write(fleet.root(1).join("go"), "").unwrap();
    let refused = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(ended, "B was not refused: it took the host ({stderr})");
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("until"), "a live lease: {stderr}");

    let out = first.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !events(&out)
            .iter()
            .any(|e| e["kind"] == "host_lease_broken")
    );
    assert_eq!(
        std::fs::read_to_string(fleet.root(1).join("log")).unwrap(),
        "CHANGED\n",
        "only A changed the host"
    );
    assert!(!lease_dir(&fleet, 1).exists(), "A released its lease");
}

/// Waits up to `limit` for `child` to exit; false if it is still running.
fn wait_until_exits(child: &mut std::process::Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// host1 ends ok (its lease released), host2 fails, the wave fails and rolls back: host1's
/// undo runs under its lease again, taken before the undo and released after it.
#[test]
fn an_undo_after_the_wave_failed_takes_and_releases_the_host_lease() {
    let fleet = Fleet::start(2).unwrap();
    std::fs::write(fleet.root(2).join("broken"), "").unwrap();
    let store = tempfile::tempdir().unwrap();
    let plan = write_plan(
        &fleet,
        r#"name: fleet-host-lease-undo
targets: [fleet]
host_lease: true
waves:
  - { name: all, size: 100% }
failure: { max_failed: 0, action: rollback }
concurrency: 1
steps:
  - id: change
    run: 'echo CHANGED >> "$FLEET_ROOT/log"; test ! -e "$FLEET_ROOT/broken"'
    undo: 'test -e "$FLEET_ROOT/lease/holder" && echo UNDONE >> "$FLEET_ROOT/log"'
"#,
    );
    let out = apply_with(store.path(), &plan, &inventory(&fleet), &[])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "rolled back: {stderr}");
    let events = events(&out);
    let host1: Vec<&str> = events
        .iter()
        .filter(|e| e["host"] == "host1")
        .filter_map(|e| e["kind"].as_str())
        .filter(|k| {
            k.starts_with("host_lease") || k.starts_with("undo") || *k == "host_rolled_back"
        })
        .collect();
    assert_eq!(
        host1,
        [
            "host_lease_taken",
            "host_lease_released",
            "host_lease_taken",
            "undo_intent",
            "undo_result",
            "host_lease_released",
            "host_rolled_back",
        ],
        "{events:#?}"
    );
    // The undo saw its lease on the host (the undo checks for it).
    assert_eq!(
        std::fs::read_to_string(fleet.root(1).join("log")).unwrap(),
        "CHANGED\nUNDONE\n"
    );
    for i in 1..=2 {
        assert!(
            !lease_dir(&fleet, i).exists(),
            "host{i}'s lease was released"
        );
    }
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
