//! End-to-end tests of work carried on when a process of a run over several processes dies
//! (issue 18, part 2): a `sluice worker` killed with SIGKILL mid-wave on a 60-host sshd fleet,
//! a step it left UNKNOWN that only the operator can settle, and a killed coordinator resumed
//! with `--workers` from another machine; real PostgreSQL (sluice-testpg).

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

mod support;
use support::events;
use support::workers::*;

#[test]
fn a_worker_killed_mid_wave_leaves_its_hosts_to_the_others_and_every_step_succeeds_once() {
    let Setup {
        pg,
        url,
        fleet,
        dir,
        mut workers,
    } = Setup::start(60, &[("w1", &[]), ("w2", &[]), ("w3", &[])]);
    // Each step writes its line first, then takes a while: a worker killed in the middle
    // leaves steps with an intent and no result, which the guard settles on take-over.
    let yaml = r#"name: fleet-kill
targets: [fleet]
waves: [{ name: all, size: 100%, concurrency: 24 }]
failure: { max_failed: 0, action: rollback }
steps:
  - id: drain
    run: 'echo drain >> "$FLEET_ROOT/log"; sleep 0.6'
    skip_if: 'grep -qx drain "$FLEET_ROOT/log"'
    undo: 'echo undrain >> "$FLEET_ROOT/log"'
  - id: install
    run: 'echo install >> "$FLEET_ROOT/log"; sleep 0.6'
    skip_if: 'grep -qx install "$FLEET_ROOT/log"'
    undo: 'echo uninstall >> "$FLEET_ROOT/log"'
"#;
    let plan = fleet.dir().join("plan.yaml");
    std::fs::write(&plan, yaml).unwrap();
    let inventory = fleet.write_inventory().unwrap();
    let started = Instant::now();
    let coordinator = apply_workers(&dir, &url, &plan, &inventory)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Mid-wave: w2 holds hosts with steps in flight.
    wait_until("w2 to be running hosts", Duration::from_secs(60), || {
        count(
            &pg,
            "SELECT count(*) FROM sluice.assignments a JOIN sluice.workers w ON w.id = a.worker
             WHERE w.name = 'w2' AND a.state = 'claimed'",
        ) >= 4
            && count(
                &pg,
                "SELECT count(*) FROM sluice.records WHERE kind = 'step_result'",
            ) >= 10
    });
    workers[1].kill();
    let out = coordinator.wait_with_output().unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    eprintln!("60 hosts over 3 workers, one killed mid-wave: {took:?}");

    // Some of w2's hosts were taken over, by the other workers, and said so.
    let taken: Vec<(String, String)> = pg
        .psql(
            "sluice",
            "SELECT body::json->>'worker', body::json->>'reclaimed_from' FROM sluice.records
             WHERE kind = 'host_claimed' AND body::jsonb ? 'reclaimed_from'",
        )
        .unwrap()
        .lines()
        .map(|l| {
            let (w, from) = l.split_once('|').unwrap();
            (w.to_string(), from.to_string())
        })
        .collect();
    assert!(!taken.is_empty(), "no host was taken over");
    assert!(
        taken.iter().all(|(w, from)| from == "w2" && w != "w2"),
        "{taken:?}"
    );
    // Every (host, step) has exactly one successful result; every host's end state is right.
    let mut results = successes(&pg);
    results.sort();
    let mut expected: Vec<(String, String)> = (1..=60)
        .flat_map(|i| ["drain", "install"].map(|s| (format!("host{i}"), s.to_string())))
        .collect();
    expected.sort();
    assert_eq!(results, expected);
    for i in 1..=60 {
        assert_eq!(log(&fleet, i), ["drain", "install"], "host{i}");
    }
    let finished_ok = events(&out)
        .iter()
        .filter(|e| e["kind"] == "host_finished" && e["outcome"] == "ok")
        .count();
    assert_eq!(finished_ok, 60, "{}", text(&out));
    verify(&dir, &url);
}

#[test]
fn a_killed_coordinator_is_resumed_with_workers_from_another_machine() {
    let Setup {
        pg,
        url,
        fleet,
        dir,
        workers: _workers,
    } = Setup::start(6, &[("wa", &[]), ("wb", &[])]);
    let plan = plan(
        &fleet,
        "[{ name: all, size: 100%, concurrency: 2 }]",
        "{ max_failed: 0, action: rollback }",
        r#"echo install >> "$FLEET_ROOT/log"; sleep 0.5"#,
    );
    let inventory = fleet.write_inventory().unwrap();
    let mut alpha = apply_workers(&dir, &url, &plan, &inventory)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("two hosts finished", Duration::from_secs(60), || {
        count(
            &pg,
            "SELECT count(*) FROM sluice.records WHERE kind = 'host_finished'",
        ) >= 2
    });
    alpha.kill().unwrap();
    alpha.wait().unwrap();
    let run = only_run(&pg);
    wait_for_leases_to_expire(&pg);
    let resumed = sluice_as(&dir, "beta", &url)
        .args(["resume", &run, "--yes", "--workers", "--json"])
        .output()
        .unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    for i in 1..=6 {
        assert_eq!(log(&fleet, i), ["drain", "install"], "host{i}");
    }
    verify(&dir, &url);
}

#[test]
fn a_step_left_unknown_by_a_dead_worker_stops_the_run_for_the_operator_and_resume_settles_it() {
    settled_by_resume("--skip-unknown", &["drain", "install"]);
}

/// The operator's choice to run it again is the worker's too (it took the host over without one
/// before, and would otherwise ask again forever).
#[test]
fn a_step_left_unknown_by_a_dead_worker_runs_again_when_the_operator_chooses_so() {
    settled_by_resume("--rerun-unknown", &["drain", "install", "install"]);
}

/// A worker killed with an install in flight on both hosts, its hosts taken over by a second
/// worker, which stops the run for the operator; then `resume --workers CHOICE`: each host's log
/// is then `expected`.
fn settled_by_resume(choice: &str, expected: &[&str]) {
    let Setup {
        pg,
        url,
        fleet,
        dir,
        mut workers,
    } = Setup::start(2, &[("first", &[])]);
    // No guard, not idempotent: nobody but the operator may say whether it ran.
    let plan = plan(
        &fleet,
        "[{ name: all, size: 100% }]",
        "{ max_failed: 0, action: rollback }",
        r#"echo install >> "$FLEET_ROOT/log"; sleep 3"#,
    );
    let inventory = fleet.write_inventory().unwrap();
    let coordinator = apply_workers(&dir, &url, &plan, &inventory)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("both installs in flight", Duration::from_secs(60), || {
        count(
            &pg,
            "SELECT count(*) FROM sluice.records
             WHERE kind = 'step_intent' AND body::json->>'step' = 'install'",
        ) == 2
    });
    workers[0].kill();
    let _second = Worker::start(&dir, &url, "second", &[]);
    let out = coordinator.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let shown = events(&out);
    assert!(
        shown
            .iter()
            .any(|e| e["kind"] == "run_finished" && e["status"] == "operator_needed"),
        "{}",
        text(&out)
    );
    assert!(
        shown.iter().any(|e| e["kind"] == "host_needs_operator"),
        "{}",
        text(&out)
    );
    // Nothing was undone, and the run is open: the operator settles it with resume.
    for i in 1..=2 {
        assert_eq!(log(&fleet, i), ["drain", "install"], "host{i}");
    }
    let run = only_run(&pg);
    let resumed = sluice_as(&dir, "beta", &url)
        .args(["resume", &run, "--yes", "--workers", choice])
        .output()
        .unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    for i in 1..=2 {
        assert_eq!(log(&fleet, i), expected, "host{i}");
    }
    verify(&dir, &url);
}

#[test]
fn a_resume_while_live_workers_hold_the_dead_coordinators_hosts_waits_for_them() {
    let Setup {
        pg,
        url,
        fleet,
        dir,
        workers: _workers,
    } = Setup::start(4, &[("wa", &[]), ("wb", &[])]);
    // No guard, not idempotent: were the installs in flight taken for UNKNOWN, the resume would
    // need the operator's choice. They outlast the coordinator's leases (2 s).
    let plan = plan(
        &fleet,
        "[{ name: all, size: 100%, concurrency: 4 }]",
        "{ max_failed: 0, action: rollback }",
        r#"echo install >> "$FLEET_ROOT/log"; sleep 6"#,
    );
    let inventory = fleet.write_inventory().unwrap();
    let mut alpha = apply_workers(&dir, &url, &plan, &inventory)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("every install in flight", Duration::from_secs(60), || {
        count(
            &pg,
            "SELECT count(*) FROM sluice.records
             WHERE kind = 'step_intent' AND body::json->>'step' = 'install'",
        ) == 4
    });
    alpha.kill().unwrap();
    alpha.wait().unwrap();
    let run = only_run(&pg);
    let run = run.as_str();
    wait_for_leases_to_expire(&pg);
    let held = "SELECT count(*) FROM sluice.assignments WHERE state = 'claimed'";
    assert_eq!(count(&pg, held), 4, "the workers still hold every host");
    // Without --workers the hosts would run here too, beside the workers: refused.
    let alone = sluice_as(&dir, "beta", &url)
        .args(["resume", run, "--yes"])
        .output()
        .unwrap();
    assert_eq!(alone.status.code(), Some(2), "{}", text(&alone));
    assert!(
        String::from_utf8_lossy(&alone.stderr).contains("live workers still hold 4 of its host(s)"),
        "{}",
        text(&alone)
    );
    let resumed = sluice_as(&dir, "beta", &url)
        .args(["resume", run, "--yes", "--workers", "--json"])
        .output()
        .unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    assert!(
        count(&pg, held) == 0,
        "every claim ended before the run did"
    );
    // Every (host, step) ran and succeeded once: the installs in flight were the workers'.
    assert_each_step_once(&pg, &fleet, 4);
    let intents = count(
        &pg,
        "SELECT count(*) FROM sluice.records WHERE kind = 'step_intent'",
    );
    assert_eq!(intents, 8, "a step was sent twice");
    let finished = events(&resumed)
        .iter()
        .filter(|e| e["kind"] == "run_finished" && e["status"] == "succeeded")
        .count();
    assert_eq!(finished, 1, "{}", text(&resumed));
    verify(&dir, &url);
}
