//! Helpers of the tests of one run over several processes (tests/workers.rs,
//! tests/workers_takeover.rs): `sluice worker` processes, `apply --workers`, queries of the
//! shared store.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sluice_testfleet::Fleet;
use sluice_testpg::PgCluster;

pub const LEASE_EXPIRY_SECS: &str = "2";

pub fn cluster() -> PgCluster {
    PgCluster::start().unwrap_or_else(|e| panic!("{e}"))
}

/// `sluice` as process `name` (its own state directory and controller name) on `url`.
pub fn sluice_as(dir: &Path, name: &str, url: &str) -> Command {
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

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A `sluice worker` process, killed when dropped.
pub struct Worker {
    child: Child,
}

impl Worker {
    pub fn start(dir: &Path, url: &str, name: &str, extra: &[&str]) -> Worker {
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

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cmd` to its end; after `limit` it is killed and the test fails with what it printed (a
/// coordinator waiting for a task nobody ends would otherwise hang the test).
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    use std::io::Read;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = |mut stream: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = reader(Box::new(child.stdout.take().unwrap()));
    let stderr = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    assert!(
        Instant::now() < deadline,
        "did not end within {limit:?}: {cmd:?}\n{}",
        text(&out)
    );
    out
}

pub fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn count(pg: &PgCluster, sql: &str) -> usize {
    pg.psql("sluice", sql).unwrap().trim().parse().unwrap()
}

/// `sluice store init`, so workers can start before the first run.
pub fn init(dir: &Path, url: &str) {
    let out = sluice_as(dir, "admin", url)
        .args(["store", "init"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

pub fn live_workers(pg: &PgCluster) -> usize {
    count(
        pg,
        "SELECT count(*) FROM sluice.workers WHERE stopped_at IS NULL AND expires_at > now()",
    )
}

/// A plan of two logged steps with undos over the fleet, in waves of `sizes`.
pub fn plan(fleet: &Fleet, waves: &str, failure: &str, install: &str) -> PathBuf {
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

pub fn log(fleet: &Fleet, i: usize) -> Vec<String> {
    std::fs::read_to_string(fleet.root(i).join("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

pub fn apply_workers(dir: &Path, url: &str, plan: &Path, inventory: &Path) -> Command {
    let mut cmd = sluice_as(dir, "coordinator", url);
    cmd.arg("apply")
        .arg(plan)
        .arg("-i")
        .arg(inventory)
        .args(["--yes", "--json", "--workers"]);
    cmd
}

pub fn verify(dir: &Path, url: &str) {
    let out = sluice_as(dir, "auditor", url)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// (worker, host) of every `host_claimed` of `task` in the store.
pub fn claims(pg: &PgCluster, task: &str) -> Vec<(String, String)> {
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

pub const INSTALL: &str = r#"echo install >> "$FLEET_ROOT/log""#;
/// Every `step_result` of `run` with a success status, as (host, step) in record order.
pub fn successes(pg: &PgCluster) -> Vec<(String, String)> {
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

/// The id of the one run in the store.
pub fn only_run(pg: &PgCluster) -> String {
    pg.psql(
        "sluice",
        "SELECT run FROM sluice.records WHERE kind = 'run_started'",
    )
    .unwrap()
    .trim()
    .to_string()
}

/// Waits until no lease in the store is live: a killed coordinator's have expired.
pub fn wait_for_leases_to_expire(pg: &PgCluster) {
    wait_until(
        "the coordinator's leases to expire",
        Duration::from_secs(30),
        || {
            count(
                pg,
                "SELECT count(*) FROM sluice.leases WHERE expires_at > now()",
            ) == 0
        },
    );
}

/// Asserts that steps `drain` and `install` of [`plan`] succeeded once on each of hosts
/// 1..=`hosts`, by the store and by the hosts' logs.
pub fn assert_each_step_once(pg: &PgCluster, fleet: &Fleet, hosts: usize) {
    for i in 1..=hosts {
        assert_eq!(log(fleet, i), ["drain", "install"], "host{i}");
    }
    let mut results = successes(pg);
    results.sort();
    let mut expected: Vec<(String, String)> = (1..=hosts)
        .flat_map(|i| ["drain", "install"].map(|s| (format!("host{i}"), s.to_string())))
        .collect();
    expected.sort();
    assert_eq!(results, expected);
}

/// A store, a fleet and live workers for one test. Workers are stopped first when it is dropped.
pub struct Setup {
    pub pg: PgCluster,
    pub url: String,
    pub fleet: Fleet,
    pub dir: PathBuf,
    pub workers: Vec<Worker>,
}

impl Setup {
    /// `hosts` sshd hosts, the store initialised, and `workers` (name, extra arguments) live.
    pub fn start(hosts: usize, workers: &[(&str, &[&str])]) -> Setup {
        let pg = cluster();
        let url = pg.url();
        let fleet = Fleet::start(hosts).unwrap();
        let dir = fleet.dir().to_path_buf();
        init(&dir, &url);
        let workers: Vec<Worker> = workers
            .iter()
            .map(|(name, extra)| Worker::start(&dir, &url, name, extra))
            .collect();
        let n = workers.len();
        wait_until("the workers to be live", Duration::from_secs(20), || {
            live_workers(&pg) == n
        });
        Setup {
            pg,
            url,
            fleet,
            dir,
            workers,
        }
    }
}
