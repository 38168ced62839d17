//! End-to-end tests of one run over several processes (issue 18, part 2): `sluice apply
//! --workers` coordinates, `sluice worker` processes run the hosts of a real sshd fleet
//! (sluice-testfleet), all on one real PostgreSQL store (sluice-testpg).

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sluice_testfleet::Fleet;
use sluice_testpg::PgCluster;

mod support;
use support::events;

/// Short, so a killed worker's hosts are taken over quickly.
const LEASE_EXPIRY_SECS: &str = "2";

fn cluster() -> PgCluster {
    PgCluster::start().unwrap_or_else(|e| panic!("{e}"))
}

/// `sluice` as process `name` (its own state directory and controller name) on `url`.
fn sluice_as(dir: &Path, name: &str, url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.env("SLUICE_STATE_DIR", dir.join(name))
        .env("SLUICE_STORE", url)
        .env("SLUICE_CONTROLLER", name)
        .env("SLUICE_LEASE_EXPIRY", LEASE_EXPIRY_SECS)
        .env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE")
        .stdin(Stdio::null());
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A `sluice worker` process, killed when dropped.
struct Worker {
    child: Child,
}

impl Worker {
    fn start(dir: &Path, url: &str, name: &str, extra: &[&str]) -> Worker {
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let child = sluice_as(dir, name, url)
            .args(["worker", "--name", name, "--max-hosts", "8"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Worker { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn count(pg: &PgCluster, sql: &str) -> usize {
    pg.psql("sluice", sql).unwrap().trim().parse().unwrap()
}

/// `sluice store init`, so workers can start before the first run.
fn init(dir: &Path, url: &str) {
    let out = sluice_as(dir, "admin", url)
        .args(["store", "init"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

fn live_workers(pg: &PgCluster) -> usize {
    count(
        pg,
        "SELECT count(*) FROM sluice.workers WHERE stopped_at IS NULL AND expires_at > now()",
    )
}

/// A plan of two logged steps with undos over the fleet, in waves of `sizes`.
fn plan(fleet: &Fleet, waves: &str, failure: &str, install: &str) -> PathBuf {
    let yaml = format!(
        r#"name: fleet-patch
targets: [fleet]
waves: {waves}
failure: {failure}
steps:
  - {{ id: drain, run: 'echo drain >> "$FLEET_ROOT/log"', undo: 'echo undrain >> "$FLEET_ROOT/log"' }}
  - {{ id: install, run: '{install}', undo: 'echo uninstall >> "$FLEET_ROOT/log"' }}
"#
    );
    let path = fleet.dir().join("plan.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn log(fleet: &Fleet, i: usize) -> Vec<String> {
    std::fs::read_to_string(fleet.root(i).join("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn apply_workers(dir: &Path, url: &str, plan: &Path, inventory: &Path) -> Command {
    let mut cmd = sluice_as(dir, "coordinator", url);
    cmd.arg("apply")
        .arg(plan)
        .arg("-i")
        .arg(inventory)
        .args(["--yes", "--json", "--workers"]);
    cmd
}

fn verify(dir: &Path, url: &str) {
    let out = sluice_as(dir, "auditor", url)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// (worker, host) of every `host_claimed` of `task` in the store.
fn claims(pg: &PgCluster, task: &str) -> Vec<(String, String)> {
    pg.psql(
        "sluice",
        &format!(
            "SELECT body::json->>'worker', body::json->>'host' FROM sluice.records
             WHERE kind = 'host_claimed' AND body::json->>'task' = '{task}' ORDER BY seq"
        ),
    )
    .unwrap()
    .lines()
    .filter(|l| !l.is_empty())
    .map(|l| {
        let (w, h) = l.split_once('|').unwrap();
        (w.to_string(), h.to_string())
    })
    .collect()
}

const INSTALL: &str = r#"echo install >> "$FLEET_ROOT/log""#;

#[test]
fn two_workers_run_a_fleet_the_coordinator_shows_and_records_one_chain() {
    let pg = cluster();
    let url = pg.url();
    let fleet = Fleet::start(6).unwrap();
    let dir = fleet.dir().to_path_buf();
    init(&dir, &url);
    let _a = Worker::start(&dir, &url, "wa", &[]);
    let _b = Worker::start(&dir, &url, "wb", &[]);
    wait_until("two live workers", Duration::from_secs(20), || {
        live_workers(&pg) == 2
    });
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

/// Every `step_result` of `run` with a success status, as (host, step) in record order.
fn successes(pg: &PgCluster) -> Vec<(String, String)> {
    pg.psql(
        "sluice",
        "SELECT body::json->>'host', body::json->>'step' FROM sluice.records
         WHERE kind = 'step_result' AND body::json->>'status' IN ('ok', 'skipped') ORDER BY seq",
    )
    .unwrap()
    .lines()
    .filter(|l| !l.is_empty())
    .map(|l| {
        let (h, s) = l.split_once('|').unwrap();
        (h.to_string(), s.to_string())
    })
    .collect()
}

#[test]
fn a_worker_killed_mid_wave_leaves_its_hosts_to_the_others_and_every_step_succeeds_once() {
    let pg = cluster();
    let url = pg.url();
    let fleet = Fleet::start(60).unwrap();
    let dir = fleet.dir().to_path_buf();
    init(&dir, &url);
    let mut workers: Vec<Worker> = ["w1", "w2", "w3"]
        .iter()
        .map(|name| Worker::start(&dir, &url, name, &[]))
        .collect();
    wait_until("three live workers", Duration::from_secs(20), || {
        live_workers(&pg) == 3
    });
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
fn the_budget_holds_across_workers_and_the_failed_wave_is_undone_on_workers() {
    let pg = cluster();
    let url = pg.url();
    let fleet = Fleet::start(10).unwrap();
    let dir = fleet.dir().to_path_buf();
    init(&dir, &url);
    let _a = Worker::start(&dir, &url, "wa", &[]);
    let _b = Worker::start(&dir, &url, "wb", &[]);
    wait_until("two live workers", Duration::from_secs(20), || {
        live_workers(&pg) == 2
    });
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
    let pg = cluster();
    let url = pg.url();
    let fleet = Fleet::start(4).unwrap();
    let dir = fleet.dir().to_path_buf();
    init(&dir, &url);
    let _any = Worker::start(&dir, &url, "any", &[]);
    wait_until("a live worker", Duration::from_secs(20), || {
        live_workers(&pg) == 1
    });
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
    let pg = cluster();
    let url = pg.url();
    let fleet = Fleet::start(2).unwrap();
    let dir = fleet.dir().to_path_buf();
    init(&dir, &url);
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

#[test]
fn a_killed_coordinator_is_resumed_with_workers_from_another_machine() {
    let pg = cluster();
    let url = pg.url();
    let fleet = Fleet::start(6).unwrap();
    let dir = fleet.dir().to_path_buf();
    init(&dir, &url);
    let _a = Worker::start(&dir, &url, "wa", &[]);
    let _b = Worker::start(&dir, &url, "wb", &[]);
    wait_until("two live workers", Duration::from_secs(20), || {
        live_workers(&pg) == 2
    });
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
    let run = pg
        .psql(
            "sluice",
            "SELECT run FROM sluice.records WHERE kind = 'run_started'",
        )
        .unwrap();
    wait_until(
        "the coordinator's leases to expire",
        Duration::from_secs(30),
        || {
            count(
                &pg,
                "SELECT count(*) FROM sluice.leases WHERE expires_at > now()",
            ) == 0
        },
    );
    let resumed = sluice_as(&dir, "beta", &url)
        .args(["resume", run.trim(), "--yes", "--workers", "--json"])
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
    let pg = cluster();
    let url = pg.url();
    let fleet = Fleet::start(2).unwrap();
    let dir = fleet.dir().to_path_buf();
    init(&dir, &url);
    let mut first = Worker::start(&dir, &url, "first", &[]);
    wait_until("a live worker", Duration::from_secs(20), || {
        live_workers(&pg) == 1
    });
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
    first.kill();
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
    let run = pg
        .psql(
            "sluice",
            "SELECT run FROM sluice.records WHERE kind = 'run_started'",
        )
        .unwrap();
    let resumed = sluice_as(&dir, "beta", &url)
        .args(["resume", run.trim(), "--yes", "--workers", "--skip-unknown"])
        .output()
        .unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    for i in 1..=2 {
        assert_eq!(log(&fleet, i), ["drain", "install"], "host{i}");
    }
    verify(&dir, &url);
}
