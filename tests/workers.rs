//! End-to-end tests of one run over several processes (issue 18, part 2): `sluice apply
//! --workers` coordinates, `sluice worker` processes run the hosts of a real sshd fleet
//! (sluice-testfleet), all on one real PostgreSQL store (sluice-testpg). The take-over of a dead
//! worker's or coordinator's work is in tests/workers_takeover.rs.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

mod support;
use support::events;
use support::workers::*;

#[test]
fn two_workers_run_a_fleet_the_coordinator_shows_and_records_one_chain() {
    let Setup {
        pg,
        url,
        fleet,
        dir,
        workers: _workers,
    } = Setup::start(6, &[("wa", &[]), ("wb", &[])]);
    let plan = plan(
        &fleet,
        "[{ name: canary, size: 1 }, { name: rest, size: 100% }]",
        "{ max_failed: 0, action: rollback }",
        INSTALL,
    );
    let inventory = fleet.write_inventory().unwrap();
    let out = apply_workers(&dir, &url, &plan, &inventory)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for i in 1..=6 {
        assert_eq!(log(&fleet, i), ["drain", "install"], "host{i}");
    }
    // The coordinator shows the workers' facts: every host's end, and who claimed it.
    let shown = events(&out);
    let finished = shown
        .iter()
        .filter(|e| e["kind"] == "host_finished" && e["outcome"] == "ok")
        .count();
    assert_eq!(finished, 6, "{}", text(&out));
    let claimed: Vec<(String, String)> = claims(&pg, "host");
    assert_eq!(claimed.len(), 6, "{claimed:?}");
    assert!(
        claimed.iter().all(|(w, _)| w == "wa" || w == "wb"),
        "{claimed:?}"
    );
    assert!(
        shown.iter().any(|e| e["kind"] == "host_claimed"),
        "{}",
        text(&out)
    );
    verify(&dir, &url);
}

#[test]
fn workers_are_refused_on_a_redb_store() {
    let dir = tempfile::tempdir().unwrap();
    let worker = sluice_as(dir.path(), "w", "redb:/nonexistent-sluice-store")
        .args(["worker"])
        .output()
        .unwrap();
    assert_eq!(worker.status.code(), Some(2), "{}", text(&worker));
    assert!(
        String::from_utf8_lossy(&worker.stderr).contains("needs the PostgreSQL store"),
        "{}",
        text(&worker)
    );
    let fleet_dir = dir.path().join("plan");
    std::fs::create_dir_all(&fleet_dir).unwrap();
    let plan = fleet_dir.join("plan.yaml");
    std::fs::write(
        &plan,
        "name: p\ntargets: [all]\nsteps:\n  - { id: s, run: 'true' }\n",
    )
    .unwrap();
    let inventory = fleet_dir.join("inventory.yaml");
    std::fs::write(&inventory, "hosts:\n  a: { transport: local }\n").unwrap();
    let store = format!("redb:{}", dir.path().join("state").display());
    let apply = sluice_as(dir.path(), "c", &store)
        .arg("apply")
        .arg(&plan)
        .arg("-i")
        .arg(&inventory)
        .args(["--yes", "--workers"])
        .output()
        .unwrap();
    assert_eq!(apply.status.code(), Some(2), "{}", text(&apply));
    assert!(
        String::from_utf8_lossy(&apply.stderr).contains("--workers needs the PostgreSQL store"),
        "{}",
        text(&apply)
    );
}

#[test]
fn the_budget_holds_across_workers_and_the_failed_wave_is_undone_on_workers() {
    let Setup {
        pg,
        url,
        fleet,
        dir,
        workers: _workers,
    } = Setup::start(10, &[("wa", &[]), ("wb", &[])]);
    // Every host fails its install: with max_failed 1 and 2 hosts at once, exactly three hosts
    // start (as in one process): the first two, and the one started when the first failure
    // was counted and the budget was not yet spent.
    for i in 1..=10 {
        std::fs::write(fleet.root(i).join("fail"), "").unwrap();
    }
    let plan = plan(
        &fleet,
        "[{ name: all, size: 100%, concurrency: 2, max_failed: 1 }]",
        "{ action: rollback }",
        r#"test ! -e "$FLEET_ROOT/fail" && echo install >> "$FLEET_ROOT/log""#,
    );
    let inventory = fleet.write_inventory().unwrap();
    let out = apply_workers(&dir, &url, &plan, &inventory)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let max_failed = 1;
    let concurrency = 2;
    let started = count(
        &pg,
        "SELECT count(*) FROM sluice.assignments WHERE task = 'host'",
    );
    assert_eq!(started, 3, "hosts started");
    assert_eq!(
        started.saturating_sub(max_failed + concurrency),
        0,
        "hosts started after the budget was spent"
    );
    let mut ran: Vec<String> = claims(&pg, "host").into_iter().map(|(_, h)| h).collect();
    ran.sort();
    assert_eq!(ran, ["host1", "host2", "host3"]);
    for i in 4..=10 {
        assert!(log(&fleet, i).is_empty(), "host{i} ran");
    }
    // The undo ran on a worker, for every host that started: newest first.
    let mut undone: Vec<String> = claims(&pg, "undo").into_iter().map(|(_, h)| h).collect();
    undone.sort();
    assert_eq!(undone, ["host1", "host2", "host3"]);
    for i in 1..=3 {
        assert_eq!(log(&fleet, i), ["drain", "uninstall", "undrain"], "host{i}");
    }
    let shown = events(&out);
    assert!(
        shown
            .iter()
            .any(|e| e["kind"] == "run_finished" && e["status"] == "rolled_back"),
        "{}",
        text(&out)
    );
    verify(&dir, &url);
}

#[test]
fn pinned_hosts_wait_for_a_worker_of_their_label_and_run_only_there() {
    let Setup {
        pg,
        url,
        fleet,
        dir,
        workers: _workers,
    } = Setup::start(4, &[("any", &[])]);
    let plan = plan(
        &fleet,
        "[{ name: all, size: 100% }]",
        "{ max_failed: 0, action: rollback }",
        INSTALL,
    );
    let inventory = fleet
        .write_inventory_with(|i| (i <= 2).then(|| "worker: dc2".to_string()))
        .unwrap();
    let coordinator = apply_workers(&dir, &url, &plan, &inventory)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // No worker serves dc2: the coordinator says the pinned hosts wait.
    wait_until("the waiting decision", Duration::from_secs(30), || {
        count(
            &pg,
            "SELECT count(*) FROM sluice.records
             WHERE kind = 'decision' AND body::json->>'decision' = 'waiting_for_worker'",
        ) >= 2
    });
    assert!(log(&fleet, 1).is_empty() && log(&fleet, 2).is_empty());
    let _dc2 = Worker::start(&dir, &url, "dc2", &["--label", "dc2"]);
    let out = coordinator.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for (worker, host) in claims(&pg, "host") {
        let pinned = host == "host1" || host == "host2";
        assert_eq!(worker == "dc2", pinned, "{host} ran on {worker}");
    }
    for i in 1..=4 {
        assert_eq!(log(&fleet, i), ["drain", "install"], "host{i}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pinned to workers labelled dc2"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_worker_reads_the_secrets_itself_and_no_database_row_holds_a_value() {
    const VALUE: &str = "wk-s3cr3t-9f2c";
    let Setup {
        pg,
        url,
        fleet,
        dir,
        ..
    } = Setup::start(2, &[]);
    // Only the worker has the value: the coordinator never reads it.
    let log_file = std::fs::File::create(dir.join("ws.log")).unwrap();
    let mut child = sluice_as(&dir, "ws", &url)
        .env("SLUICE_WORKER_TOK", VALUE)
        .args(["worker", "--name", "ws"])
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap();
    wait_until("a live worker", Duration::from_secs(20), || {
        live_workers(&pg) == 1
    });
    let yaml = r#"name: secret-on-worker
targets: [fleet]
secrets:
  tok: { env: SLUICE_WORKER_TOK }
waves: [{ name: all, size: 100% }]
failure: { max_failed: 0, action: rollback }
steps:
  - id: use
    run: 'printf "got %s\n" {{secrets.tok}} >> "$FLEET_ROOT/log"; echo "echoed {{secrets.tok}}"'
"#;
    let plan = fleet.dir().join("plan.yaml");
    std::fs::write(&plan, yaml).unwrap();
    let inventory = fleet.write_inventory().unwrap();
    let out = apply_workers(&dir, &url, &plan, &inventory)
        .env_remove("SLUICE_WORKER_TOK")
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for i in 1..=2 {
        assert_eq!(log(&fleet, i), [format!("got {VALUE}")], "host{i}");
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains(VALUE));
    let tables = [
        "records",
        "runs",
        "artifacts",
        "plan_approvals",
        "wave_approvals",
        "pending_gates",
        "leases",
        "workers",
        "assignments",
        "chain_tip",
    ];
    let rows: Vec<String> = tables
        .iter()
        .map(|t| format!("SELECT row_to_json(t)::text AS row FROM sluice.{t} t"))
        .collect();
    let sql = format!(
        "SELECT count(*) FROM ({}) all_rows WHERE row LIKE '%{VALUE}%'",
        rows.join(" UNION ALL ")
    );
    assert_eq!(count(&pg, &sql), 0, "a row holds the secret value");
    // The output that echoed it is recorded masked.
    assert!(
        count(
            &pg,
            "SELECT count(*) FROM sluice.records WHERE kind = 'step_result' AND body LIKE '%echoed ***%'"
        ) == 2
    );
}
