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
