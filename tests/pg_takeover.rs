//! End-to-end tests of runs carried between controllers on one shared PostgreSQL store
//! (sluice-testpg), through the `sluice` binary: a controller killed with SIGKILL is resumed
//! from a second "machine" (another state directory, another `SLUICE_CONTROLLER`) once its
//! heartbeat has expired, and refused while it still beats; a plan approved from another
//! process satisfies `apply --require-approval` on another controller.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_exec::testkit::{PlanBuilder, StepDef};
use sluice_testpg::PgCluster;

mod support;
use support::pg::{cluster, sluice_on, write_plan};
use support::{events, text};

/// The lease expiry of these tests: short, so a dead controller is taken over quickly.
const LEASE_EXPIRY_SECS: &str = "2";

/// `sluice` as controller `name`, with a state directory of its own, on the store `url`.
fn controller(dir: &Path, name: &str, url: &str) -> Command {
    let mut cmd = sluice_on(&dir.join(name), url);
    cmd.env("SLUICE_CONTROLLER", name)
        .env("SLUICE_LEASE_EXPIRY", LEASE_EXPIRY_SECS);
    cmd
}

/// `sluice store init`, so the tests can query the schema before the first run writes.
fn init(dir: &Path, url: &str) {
    let out = controller(dir, "admin", url)
        .args(["store", "init"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

fn count(pg: &PgCluster, sql: &str) -> usize {
    pg.psql("sluice", sql).unwrap().parse().unwrap()
}

/// Waits until `ready()` or fails the test after `limit`, saying what was awaited.
fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The (host, step) pairs with a recorded result of `status`, as the store holds them now.
fn results(pg: &PgCluster, run: &str) -> Vec<(String, String)> {
    let rows = pg
        .psql(
            "sluice",
            &format!(
                "SELECT body::json->>'host', body::json->>'step' FROM sluice.records
                 WHERE run = '{run}' AND kind = 'step_result' AND body::json->>'status' = 'ok'
                 ORDER BY seq"
            ),
        )
        .unwrap();
    rows.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (host, step) = l.split_once('|').unwrap();
            (host.to_string(), step.to_string())
        })
        .collect()
}

/// How many times `step` ran on `host`: each run appends the step's name to the host's `ran`.
fn times_ran(hosts_dir: &Path, host: &str, step: &str) -> usize {
    std::fs::read_to_string(hosts_dir.join(host).join("ran"))
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == step)
        .count()
}

#[test]
fn a_killed_controller_is_resumed_from_another_machine_once_its_heartbeat_expires() {
    let pg = cluster();
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let hosts_dir = dir.path().join("hosts");
    let hosts = ["a", "b", "c", "d"];
    let artifact = PlanBuilder::new("kernel")
        .local_hosts(&hosts, &hosts_dir)
        .step(StepDef::new("fetch", "echo fetch >> ran; sleep 0.4"))
        .step(StepDef::new("install", "echo install >> ran; sleep 0.4"))
        .wave("all", &hosts, 1, 0)
        .build();
    let plan = write_plan(dir.path(), "kernel", &artifact);
    init(dir.path(), &url);

    let mut alpha = controller(dir.path(), "alpha", &url)
        .args(["apply", "--plan"])
        .arg(&plan)
        .args(["--yes", "--json", "--color", "never"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run_of = |pg: &PgCluster| {
        pg.psql(
            "sluice",
            "SELECT run FROM sluice.records WHERE kind = 'run_started'",
        )
        .unwrap()
    };
    wait_until("two step results", Duration::from_secs(30), || {
        count(
            &pg,
            "SELECT count(*) FROM sluice.records WHERE kind = 'step_result'",
        ) >= 2
    });
    let run = run_of(&pg);

    // While alpha beats, beta may not take its run over: refused, naming the holder.
    let refused = controller(dir.path(), "beta", &url)
        .args(["resume", &run, "--yes", "--rerun-unknown"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("still running") && why.contains("on alpha") && why.contains("expire"),
        "{}",
        text(&refused)
    );

    alpha.kill().unwrap();
    let killed = alpha.wait_with_output().unwrap();
    assert_eq!(killed.status.code(), None, "alpha ended on its own");
    let done_before = results(&pg, &run);
    assert!(
        !done_before.is_empty() && done_before.len() < hosts.len() * 2,
        "the kill should fall mid-run: {done_before:?}"
    );

    // Once alpha's leases have expired (by the database's clock), beta takes the run over.
    wait_until("alpha's leases to expire", Duration::from_secs(30), || {
        count(
            &pg,
            "SELECT count(*) FROM sluice.leases WHERE expires_at > now()",
        ) == 0
    });
    let resumed = controller(dir.path(), "beta", &url)
        .args(["resume", &run, "--yes", "--rerun-unknown", "--json"])
        .output()
        .unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    assert!(
        events(&resumed)
            .iter()
            .any(|e| e["kind"] == "run_resumed" && e["controller"] == "beta"),
        "{}",
        text(&resumed)
    );

    // Completed steps were not run again; every step is done.
    for (host, step) in &done_before {
        assert_eq!(
            times_ran(&hosts_dir, host, step),
            1,
            "{host}/{step} ran again"
        );
    }
    let done_after = results(&pg, &run);
    for host in hosts {
        for step in ["fetch", "install"] {
            assert!(
                times_ran(&hosts_dir, host, step) >= 1,
                "{host}/{step} never ran"
            );
            assert!(
                done_after.contains(&(host.to_string(), step.to_string())),
                "{host}/{step} has no ok result: {done_after:?}"
            );
        }
    }
    let controllers = pg
        .psql(
            "sluice",
            &format!(
                "SELECT kind || ' ' || (body::json->>'controller') FROM sluice.records
                 WHERE run = '{run}' AND kind IN ('run_started', 'run_resumed') ORDER BY seq"
            ),
        )
        .unwrap();
    assert_eq!(controllers, "run_started alpha\nrun_resumed beta");

    let show = controller(dir.path(), "gamma", &url)
        .args(["runs", "--json"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&show.stdout);
    assert!(
        listed.contains(&run) && listed.contains("succeeded"),
        "{}",
        text(&show)
    );
    let verify = controller(dir.path(), "gamma", &url)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify));
}

#[test]
fn a_plan_approved_from_another_process_satisfies_require_approval_on_another_controller() {
    let pg = cluster();
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let hosts_dir = dir.path().join("hosts");
    let hosts = ["a", "b"];
    let artifact = PlanBuilder::new("kernel")
        .local_hosts(&hosts, &hosts_dir)
        .step(StepDef::new("patch", "echo patch >> ran"))
        .wave("all", &hosts, 2, 0)
        .build();
    let plan = write_plan(dir.path(), "kernel", &artifact);
    let apply = || {
        controller(dir.path(), "runner", &url)
            .args(["apply", "--plan"])
            .arg(&plan)
            .args(["--yes", "--require-approval", "--color", "never"])
            .output()
            .unwrap()
    };

    // Not approved yet: refused before anything runs.
    let refused = apply();
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(&artifact.plan_hash),
        "{}",
        text(&refused)
    );
    assert_eq!(times_ran(&hosts_dir, "a", "patch"), 0);

    // A change-board member approves from their own machine, on the same store.
    let approved = controller(dir.path(), "board", &url)
        .args(["approve-plan"])
        .arg(&plan)
        .args(["--by", "carol"])
        .output()
        .unwrap();
    assert!(approved.status.success(), "{}", text(&approved));

    let applied = apply();
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied));
    for host in hosts {
        assert_eq!(times_ran(&hosts_dir, host, "patch"), 1, "{host}");
    }
    let approvals = pg
        .psql(
            "sluice",
            "SELECT body::json->>'by' FROM sluice.records WHERE kind = 'approval'",
        )
        .unwrap();
    assert!(approvals.lines().any(|by| by == "carol"), "{approvals}");
}
