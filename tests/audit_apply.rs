//! `sluice apply` and the audit store, end to end on local hosts: the run is recorded and can be
//! listed, shown and verified; host leases keep two runs off the same host; a store that cannot
//! be opened starts nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sluice_exec::testkit::{PlanBuilder, StepDef};
use sluice_plan::{PlanArtifact, RenderedCommand, Segment};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn hosts(&self) -> PathBuf {
        self.dir.path().join("hosts")
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn write_plan(&self, name: &str, plan: &PlanArtifact) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(plan).unwrap()).unwrap();
        path
    }

    fn sluice(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.arg("--color").arg("never");
        cmd.stdin(Stdio::null());
        cmd.env_remove("SLUICE_STATE_DIR");
        cmd
    }

    fn apply_cmd(&self, plan: &Path) -> Command {
        let mut cmd = self.sluice();
        cmd.args(["apply", "--yes", "--plan"])
            .arg(plan)
            .arg("--state-dir")
            .arg(self.store());
        cmd
    }

    fn read(&self, args: &[&str]) -> Output {
        self.sluice()
            .args(args)
            .arg("--state-dir")
            .arg(self.store())
            .output()
            .unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn simple(f: &Fixture, name: &str, hosts: &[&str], command: &str) -> PlanArtifact {
    PlanBuilder::new(name)
        .local_hosts(hosts, &f.hosts())
        .step(StepDef::new("work", command))
        .wave("all", hosts, hosts.len(), 0)
        .build()
}

fn runs(f: &Fixture) -> Vec<serde_json::Value> {
    let out = f.read(&["runs", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn an_apply_is_recorded_listed_shown_and_verifies() {
    let f = Fixture::new();
    let plan = simple(&f, "recorded", &["a1", "a2"], "echo hi >> log");
    let path = f.write_plan("plan", &plan);
    let out = f.apply_cmd(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let runs = runs(&f);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = runs[0]["run"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["plan"], "recorded");
    assert_eq!(runs[0]["plan_hash"], plan.plan_hash.as_str());
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[0]["exit_code"], 0);
    assert_eq!(runs[0]["hosts_ok"], 2, "{runs:?}");
    assert_eq!(runs[0]["hosts_failed"], 0, "{runs:?}");
    assert!(
        text(&out.stderr).contains(&run) || text(&out.stdout).contains(&run),
        "the operator sees the store's run id {run}"
    );

    let show = f.read(&["show", &run, "--json"]);
    assert!(show.status.success(), "{}", text(&show.stderr));
    let shown = text(&show.stdout);
    let records: Vec<serde_json::Value> = shown
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for host in ["a1", "a2"] {
        let steps = |kind: &str| {
            records
                .iter()
                .filter(|r| r["kind"] == kind && r["payload"]["host"] == host)
                .count()
        };
        assert_eq!(steps("step_intent"), 1, "{host} {shown}");
        assert_eq!(steps("step_result"), 1, "{host} {shown}");
    }
    let verify = f.read(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    // Leases are released at the end: a second run on the same hosts proceeds.
    let again = f.apply_cmd(&path).output().unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
}

#[test]
fn two_concurrent_applies_on_overlapping_hosts_only_one_proceeds() {
    let f = Fixture::new();
    let slow = simple(&f, "slow", &["c1", "c2"], "sleep 2; echo slow >> log");
    let other = simple(&f, "other", &["c2", "c3"], "echo other >> log");
    let slow_path = f.write_plan("slow", &slow);
    let other_path = f.write_plan("other", &other);
    let first = f
        .apply_cmd(&slow_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first run holds its leases (it is listed).
    let deadline = Instant::now() + Duration::from_secs(10);
    while runs_if_any(&f).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = f.apply_cmd(&other_path).output().unwrap();
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert_eq!(second.status.code(), Some(2), "{}", text(&second.stderr));
    let err = text(&second.stderr);
    assert!(err.contains("c2") && err.contains("leased by run"), "{err}");
    assert!(
        !f.hosts().join("c3").join("log").exists(),
        "the refused run touched nothing"
    );
    assert_eq!(runs(&f).len(), 1, "a refused run leaves no run behind");
}

fn runs_if_any(f: &Fixture) -> Vec<serde_json::Value> {
    let out = f.read(&["runs", "--json"]);
    text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn a_corrupt_store_starts_nothing() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.store()).unwrap();
    std::fs::write(
        f.store().join("audit.redb"),
        b"this is not a redb file at all",
    )
    .unwrap();
    let plan = simple(&f, "corrupt", &["d1"], "echo ran >> log");
    let path = f.write_plan("plan", &plan);
    let out = f.apply_cmd(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("audit store"),
        "{}",
        text(&out.stderr)
    );
    assert!(!f.hosts().join("d1").join("log").exists());
}

#[test]
fn a_secret_echoed_by_a_command_never_reaches_the_store_export_or_logs() {
    let f = Fixture::new();
    let echo = RenderedCommand {
        segments: vec![
            Segment::Text("echo using token ".into()),
            Segment::Secret {
                name: "api".into(),
                quote: true,
            },
        ],
    };
    let plan = PlanBuilder::new("secret")
        .local_hosts(&["s1"], &f.hosts())
        .secret_env("api", "SLUICE_TEST_API_TOKEN")
        .step(StepDef::new("call", "x").run_cmd(echo))
        .wave("only", &["s1"], 1, 0)
        .build();
    let path = f.write_plan("plan", &plan);
    let out = f
        .apply_cmd(&path)
        .env("SLUICE_TEST_API_TOKEN", "tok-5e5e7a1b")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let secret = b"tok-5e5e7a1b";
    let contains = |hay: &[u8]| hay.windows(secret.len()).any(|w| w == secret);
    let store = std::fs::read(f.store().join("audit.redb")).unwrap();
    assert!(!contains(&store), "the secret is in the store file");
    let export = f.read(&["audit", "export"]);
    assert!(export.status.success(), "{}", text(&export.stderr));
    assert!(!contains(&export.stdout), "the secret is in the export");
    assert!(text(&export.stdout).contains("step_intent"));
    let run = runs(&f)[0]["run"].as_str().unwrap().to_string();
    let logs = f.read(&["logs", &run]);
    assert!(logs.status.success(), "{}", text(&logs.stderr));
    assert!(!contains(&logs.stdout) && !contains(&logs.stderr));
    assert!(
        text(&logs.stdout).contains("using token ***"),
        "the redacted output is kept: {}",
        text(&logs.stdout)
    );
}

#[test]
fn require_approval_refuses_an_unapproved_plan_and_runs_an_approved_one() {
    let f = Fixture::new();
    let plan = simple(&f, "approved", &["r1"], "echo ran >> log");
    let path = f.write_plan("plan", &plan);
    let refused = f
        .apply_cmd(&path)
        .arg("--require-approval")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("no approval"),
        "{}",
        text(&refused.stderr)
    );
    assert!(!f.hosts().join("r1").join("log").exists());

    let approve = f.read(&["approve-plan", path.to_str().unwrap(), "--by", "carol"]);
    assert!(approve.status.success(), "{}", text(&approve.stderr));
    let ran = f
        .apply_cmd(&path)
        .arg("--require-approval")
        .output()
        .unwrap();
    assert_eq!(ran.status.code(), Some(0), "{}", text(&ran.stderr));
    assert!(f.hosts().join("r1").join("log").exists());
}

#[test]
fn an_approval_gate_is_released_by_sluice_approve_from_another_process() {
    let f = Fixture::new();
    let plan = PlanBuilder::new("gated")
        .local_hosts(&["g1", "g2"], &f.hosts())
        .step(StepDef::new("work", "echo ran >> log"))
        .wave("canary", &["g1"], 1, 0)
        .wave("rest", &["g2"], 1, 0)
        .approval()
        .build();
    let path = f.write_plan("plan", &plan);
    let child = f
        .apply_cmd(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run asks for the gate.
    let deadline = Instant::now() + Duration::from_secs(20);
    let run = loop {
        let listed = runs_if_any(&f);
        if let Some(run) = listed.first().and_then(|r| r["run"].as_str()) {
            let shown = f.read(&["show", run, "--json"]);
            if text(&shown.stdout).contains("approval_requested") {
                break run.to_string();
            }
        }
        assert!(Instant::now() < deadline, "the run never reached its gate");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        !f.hosts().join("g2").join("log").exists(),
        "the gated wave waits"
    );
    let approve = f.read(&["approve", &run, "--wave", "rest", "--by", "bob"]);
    assert!(approve.status.success(), "{}", text(&approve.stderr));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(f.hosts().join("g2").join("log").exists());
}
