//! End-to-end test of a shared PostgreSQL store (sluice-testpg) that stops in the middle of a
//! run, through the `sluice` binary: the run stops safely (no step starts whose intent was not
//! committed, commands in flight finish, nothing is undone) and exits 7 (`store_unreachable`);
//! nothing acknowledged is lost; once the database is back, `sluice resume` finishes the run.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_exec::testkit::{PlanBuilder, StepDef};
use sluice_testpg::PgCluster;

mod support;
use support::{events, text};

const STEPS: [&str; 3] = ["fetch", "install", "verify"];

/// `sluice` on the store `url`, whose leases expire 2 s after their holder's last heartbeat.
fn sluice_on(state: &Path, url: &str) -> Command {
    let mut cmd = support::pg::sluice_on(state, url);
    cmd.env("SLUICE_LEASE_EXPIRY", "2");
    cmd
}

/// (host, step) → how many times, from psql rows `host|step`.
fn tally(rows: &str) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for line in rows.lines().filter(|l| !l.is_empty()) {
        let (host, step) = line.split_once('|').unwrap();
        *counts
            .entry((host.to_string(), step.to_string()))
            .or_insert(0) += 1;
    }
    counts
}

/// The (host, step) pairs of the run's records of `kind` (`status` ok only for results).
fn recorded(pg: &PgCluster, run: &str, kind: &str) -> BTreeMap<(String, String), usize> {
    let ok = if kind == "step_result" {
        " AND body::json->>'status' = 'ok'"
    } else {
        ""
    };
    tally(
        &pg.psql(
            "sluice",
            &format!(
                "SELECT body::json->>'host', body::json->>'step' FROM sluice.records
                 WHERE run = '{run}' AND kind = '{kind}'{ok} ORDER BY seq"
            ),
        )
        .unwrap(),
    )
}

/// (host, step) → how many times its command started, from each host's `ran` file.
fn started(hosts_dir: &Path, hosts: &[&str]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for host in hosts {
        let ran = std::fs::read_to_string(hosts_dir.join(host).join("ran")).unwrap_or_default();
        for step in ran.lines() {
            *counts
                .entry((host.to_string(), step.to_string()))
                .or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn a_database_stopped_mid_run_stops_the_run_safely_and_resume_finishes_it() {
    let mut pg = support::pg::cluster();
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("controller");
    let hosts_dir = dir.path().join("hosts");
    let hosts = ["a", "b", "c", "d", "e", "f"];
    let mut builder = PlanBuilder::new("kernel").local_hosts(&hosts, &hosts_dir);
    for step in STEPS {
        builder = builder.step(StepDef::new(step, &format!("echo {step} >> ran; sleep 1")));
    }
    let artifact = builder.wave("all", &hosts, 3, 0).build();
    let plan = dir.path().join("kernel.json");
    std::fs::write(&plan, serde_json::to_string(&artifact).unwrap()).unwrap();
    let init = sluice_on(&state, &url)
        .args(["store", "init"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", text(&init));

    let child = sluice_on(&state, &url)
        .args(["apply", "--plan"])
        .arg(&plan)
        .args(["--yes", "--json", "--color", "never"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Mid-wave: the first hosts' first steps are recorded, their second steps running.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let results = pg
            .psql(
                "sluice",
                "SELECT count(*) FROM sluice.records WHERE kind = 'step_result'",
            )
            .unwrap();
        if results.parse::<usize>().unwrap() >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "no step results recorded");
        std::thread::sleep(Duration::from_millis(50));
    }
    pg.stop().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let run = events(&out)[0]["run"].as_str().unwrap().to_string();
    assert!(
        stderr.contains(&format!("sluice resume {run}")),
        "{}",
        text(&out)
    );
    let first_events = events(&out);
    assert!(
        first_events
            .iter()
            .any(|e| e["kind"] == "run_finished" && e["status"] == "store_unreachable"),
        "{}",
        text(&out)
    );
    let ran_before = started(&hosts_dir, &hosts);

    pg.restart().unwrap();
    // Every command that started had its intent committed, and every intent the run
    // acknowledged (emitted after its commit) is in the store.
    let intents = recorded(&pg, &run, "step_intent");
    for (step, times) in &ran_before {
        assert!(
            intents.get(step).copied().unwrap_or(0) >= *times,
            "{step:?} started {times} time(s) with intents {intents:?}"
        );
    }
    for event in first_events.iter().filter(|e| e["kind"] == "step_intent") {
        let key = (
            event["host"].as_str().unwrap().to_string(),
            event["step"].as_str().unwrap().to_string(),
        );
        assert!(intents.contains_key(&key), "acknowledged {key:?} was lost");
    }
    // The outage fell mid-run: some steps never started.
    assert!(
        ran_before.len() < hosts.len() * STEPS.len(),
        "the run finished before the outage: {ran_before:?}"
    );
    let done_before = recorded(&pg, &run, "step_result");
    assert_eq!(
        pg.psql(
            "sluice",
            &format!(
                "SELECT count(*) FROM sluice.records WHERE run = '{run}' AND kind = 'run_finished'"
            )
        )
        .unwrap(),
        "0",
        "the stopped run must stay open"
    );

    // Once the dead process's leases have expired, resume carries the run on.
    let deadline = Instant::now() + Duration::from_secs(30);
    while pg
        .psql(
            "sluice",
            "SELECT count(*) FROM sluice.leases WHERE expires_at > now()",
        )
        .unwrap()
        != "0"
    {
        assert!(Instant::now() < deadline, "the leases never expired");
        std::thread::sleep(Duration::from_millis(100));
    }
    let resumed = sluice_on(&state, &url)
        .args(["resume", &run, "--yes", "--rerun-unknown", "--json"])
        .output()
        .unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    let ran_after = started(&hosts_dir, &hosts);
    for step in done_before.keys() {
        assert_eq!(
            ran_after[step], 1,
            "{step:?} was recorded done yet ran again"
        );
    }
    let done_after = recorded(&pg, &run, "step_result");
    for host in hosts {
        for step in STEPS {
            let key = (host.to_string(), step.to_string());
            assert!(done_after.contains_key(&key), "{key:?} never succeeded");
        }
    }
    let runs = sluice_on(&state, &url)
        .args(["runs", "--json"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&runs.stdout);
    assert!(
        listed.contains(&run) && listed.contains("succeeded"),
        "{}",
        text(&runs)
    );
    let verify = sluice_on(&state, &url)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify));
}
