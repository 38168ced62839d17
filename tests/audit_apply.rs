//! `sluice apply` and the audit store, end to end on local hosts: the run is recorded and can be
//! listed, shown and verified; host leases keep two runs off the same host; a store that cannot
//! be opened starts nothing.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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
                .filter(|r| r["kind"] == kind && r["host"] == host)
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

/// `apply --require-approval` of `plan` is refused (exit 2) for want of an approval.
fn assert_refused_without_approval(f: &Fixture, plan: &Path) {
    let refused = f
        .apply_cmd(plan)
        .arg("--require-approval")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("no approval"),
        "{}",
        text(&refused.stderr)
    );
}

#[test]
fn require_approval_refuses_an_unapproved_plan_and_runs_an_approved_one() {
    let f = Fixture::new();
    let plan = simple(&f, "approved", &["r1"], "echo ran >> log");
    let path = f.write_plan("plan", &plan);
    assert_refused_without_approval(&f, &path);
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

/// Wave `canary` on `first`, then wave `rest` on `second` behind an approval gate.
fn gated(f: &Fixture, first: &str, second: &str) -> (PlanArtifact, PathBuf) {
    let plan = PlanBuilder::new("gated")
        .local_hosts(&[first, second], &f.hosts())
        .step(StepDef::new("work", "echo ran >> log"))
        .wave("canary", &[first], 1, 0)
        .wave("rest", &[second], 1, 0)
        .approval()
        .build();
    let path = f.write_plan("plan", &plan);
    (plan, path)
}

#[test]
fn an_approval_gate_is_released_by_sluice_approve_from_another_process() {
    let f = Fixture::new();
    let (_, path) = gated(&f, "g1", "g2");
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

/// A run's records as `sluice show RUN --json` prints them.
fn records(f: &Fixture, run: &str) -> Vec<serde_json::Value> {
    let show = f.read(&["show", run, "--json"]);
    assert!(show.status.success(), "{}", text(&show.stderr));
    text(&show.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn of_kind<'a>(records: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    records.iter().filter(|r| r["kind"] == kind).collect()
}

#[test]
fn a_failing_wave_records_its_arithmetic_health_checks_and_undos_in_order() {
    let f = Fixture::new();
    let plan = PlanBuilder::new("failing")
        .local_hosts(&["w1", "w2", "w3"], &f.hosts())
        .step(StepDef::new("drain", "echo drain >> log").undo("echo undrain >> log"))
        .step(StepDef::new("install", "echo install >> log").undo("echo uninstall >> log"))
        .health_run("app", "true")
        .override_health("w3", "app", "echo sick; exit 1")
        .wave("canary", &["w1"], 1, 0)
        .wave("rest", &["w2", "w3"], 2, 0)
        .build();
    let path = f.write_plan("plan", &plan);
    let out = f.apply_cmd(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let run = runs(&f)[0]["run"].as_str().unwrap().to_string();
    let records = records(&f, &run);

    let started: Vec<_> = of_kind(&records, "wave_started")
        .iter()
        .map(|r| (r["wave"].clone(), r["hosts"].clone()))
        .collect();
    assert_eq!(
        started,
        [
            (serde_json::json!("canary"), serde_json::json!(["w1"])),
            (serde_json::json!("rest"), serde_json::json!(["w2", "w3"]))
        ]
    );
    let decided = of_kind(&records, "wave_decided");
    assert_eq!(decided.len(), 2, "{records:#?}");
    assert_eq!(decided[0]["decision"], "continue");
    let rest = &decided[1];
    assert_eq!(rest["wave"], "rest");
    assert_eq!(rest["decision"], "rollback");
    assert_eq!(
        (&rest["hosts"], &rest["ok"], &rest["failed"]),
        (
            &serde_json::json!(2),
            &serde_json::json!(1),
            &serde_json::json!(1)
        )
    );
    assert_eq!(
        (&rest["budget"], &rest["max_failed"]),
        (&serde_json::json!("0"), &serde_json::json!(0))
    );
    assert!(
        rest["reason"]
            .as_str()
            .unwrap()
            .starts_with("1 failed hosts exceed max_failed 0"),
        "{rest}"
    );

    let health: Vec<_> = of_kind(&records, "health_result")
        .iter()
        .map(|r| (r["host"].clone(), r["ok"].clone()))
        .collect();
    for (host, ok) in [("w1", true), ("w2", true), ("w3", false)] {
        assert!(
            health.contains(&(serde_json::json!(host), serde_json::json!(ok))),
            "{host}: {health:?}"
        );
    }

    // The decision comes before the undos; each undo's intent before its result, newest step
    // first; the canary is not undone.
    let seq = |r: &serde_json::Value| r["seq"].as_u64().unwrap();
    let decided_at = seq(decided[1]);
    for host in ["w2", "w3"] {
        let undo: Vec<(u64, String, String)> = records
            .iter()
            .filter(|r| r["host"] == host)
            .filter(|r| r["kind"] == "undo_result" || r["kind"] == "undo_intent")
            .map(|r| {
                let what = r["kind"].as_str().unwrap().to_string();
                (seq(r), what, r["step"].as_str().unwrap().into())
            })
            .collect();
        let order: Vec<_> = undo.iter().map(|(_, k, s)| format!("{k} {s}")).collect();
        assert_eq!(
            order,
            [
                "undo_intent install",
                "undo_result install",
                "undo_intent drain",
                "undo_result drain"
            ],
            "{host}"
        );
        assert!(undo.windows(2).all(|w| w[0].0 < w[1].0), "{host}: {undo:?}");
        assert!(undo[0].0 > decided_at, "{host}: undo before the decision");
        let intent = records.iter().find(|r| seq(r) == undo[0].0).unwrap();
        assert_eq!(intent["command"], "echo uninstall >> log");
    }
    assert!(
        !records
            .iter()
            .any(|r| r["kind"] == "undo_intent" && r["host"] == "w1")
    );
    // Local hosts have no host key.
    assert!(
        of_kind(&records, "step_result")
            .iter()
            .all(|r| r["host_key_fingerprint"].is_null())
    );

    let verify = f.read(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    let show = f.read(&["show", &run]);
    let shown = text(&show.stdout) + &text(&show.stderr);
    for expected in [
        "rest         2 hosts, 2 at a time: 1 ok, 1 failed of 2 hosts, budget 0 = 0 hosts -> rollback",
        "w3 app (run) round 1: exit 1",
        "w3 install: undone (exit 0)",
    ] {
        assert!(shown.contains(expected), "{expected:?} not in:\n{shown}");
    }
}

/// The SHA256 fingerprint `ssh-keygen -l` gives for a public key line.
fn fingerprint(dir: &Path, public_key: &str) -> String {
    let file = dir.join("host_key.pub");
    std::fs::write(&file, public_key).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn step_results_over_ssh_record_the_fleet_hosts_key_fingerprint() {
    let f = Fixture::new();
    let fleet = sluice_testfleet::Fleet::start(2).unwrap();
    let inventory = fleet.write_inventory().unwrap();
    let plan = f.dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "name: keyed\ntargets: [fleet]\nwaves:\n  - { name: all, size: 100% }\nsteps:\n  - { id: touch, run: 'echo hi > \"$FLEET_ROOT/touched\"' }\n",
    )
    .unwrap();
    let out = f
        .sluice()
        .arg("apply")
        .arg(&plan)
        .arg("-i")
        .arg(&inventory)
        .arg("--yes")
        .arg("--state-dir")
        .arg(f.store())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let run = runs(&f)[0]["run"].as_str().unwrap().to_string();
    let records = records(&f, &run);
    let results = of_kind(&records, "step_result");
    assert_eq!(results.len(), 2, "{records:#?}");
    for (i, name) in fleet.host_names().iter().enumerate() {
        let expected = fingerprint(f.dir.path(), &fleet.host_public_key(i + 1).unwrap());
        assert!(expected.starts_with("SHA256:"), "{expected}");
        let result = results.iter().find(|r| r["host"] == name.as_str()).unwrap();
        assert_eq!(result["host_key_fingerprint"], expected.as_str());
    }
    let verify = f.read(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
}

#[test]
fn answers_typed_at_the_terminal_are_recorded_as_approvals() {
    // `script` (util-linux) runs sluice on a pseudo-terminal, so it asks for its confirmation
    // and at the gate, and reads the answers written here.
    assert!(
        Command::new("script").arg("--version").output().is_ok(),
        "this test needs `script` (util-linux) to give sluice a terminal: apt-get install util-linux (scripts/test.sh installs it)"
    );
    let f = Fixture::new();
    let (plan, path) = gated(&f, "t1", "t2");
    let inner = format!(
        "{} --color never apply --plan {} --state-dir {}",
        env!("CARGO_BIN_EXE_sluice"),
        path.display(),
        f.store().display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env_remove("SLUICE_STATE_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The terminal delivers one line per read: the first answers the confirmation, the second
    // the gate. Stdin stays open until sluice is done (its end would hang up the terminal).
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"yes\nyes\n").unwrap();
    let mut shown = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut shown).unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "{shown}");
    assert!(f.hosts().join("t2").join("log").exists(), "{shown}");

    let run = runs(&f)[0]["run"].as_str().unwrap().to_string();
    let records = records(&f, &run);
    let approvals = of_kind(&records, "approval");
    assert_eq!(approvals.len(), 2, "{approvals:#?}");
    assert_eq!(approvals[0]["scope"], "run_start");
    assert_eq!(approvals[0]["plan_hash"], plan.plan_hash.as_str());
    assert_eq!(approvals[1]["scope"], "wave");
    assert_eq!(approvals[1]["wave"], "rest");
    for a in &approvals {
        assert_eq!(a["how"], "terminal");
        assert_eq!(a["refused"], false);
        assert!(!a["by"].as_str().unwrap().is_empty());
    }
    // The start confirmation is not an approval of the plan.
    assert_refused_without_approval(&f, &path);
}

/// A fact without its envelope: what an event and a record of it must agree on.
fn fact_of(value: &serde_json::Value) -> serde_json::Value {
    let mut fact = value.clone();
    if let Some(object) = fact.as_object_mut() {
        for envelope in ["seq", "at", "run", "prev_hash", "run_prev_hash", "hash"] {
            object.remove(envelope);
        }
    }
    fact
}

#[test]
fn the_json_stream_and_the_audit_export_of_a_rolled_back_run_are_the_same_facts() {
    let f = Fixture::new();
    let plan = PlanBuilder::new("same-facts")
        .local_hosts(&["s1", "s2", "s3"], &f.hosts())
        .step(StepDef::new("drain", "echo drain >> log").undo("echo undrain >> log"))
        .step(StepDef::new("install", "echo install >> log").undo("echo uninstall >> log"))
        .health_run("app", "true")
        .override_health("s3", "app", "echo sick; exit 1")
        .wave("canary", &["s1"], 1, 0)
        .wave("rest", &["s2", "s3"], 2, 0)
        .build();
    let path = f.write_plan("plan", &plan);
    let out = f.apply_cmd(&path).arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let events: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let run = events[0]["run"].as_str().unwrap().to_string();
    let export = f.read(&["audit", "export", "--run", &run]);
    assert!(export.status.success(), "{}", text(&export.stderr));
    let records: Vec<serde_json::Value> = text(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r.get("kind").is_some())
        .collect();

    let emitted: Vec<serde_json::Value> = events.iter().map(fact_of).collect();
    let recorded: Vec<serde_json::Value> = records.iter().map(fact_of).collect();
    // Facts only the store keeps, and facts only the stream shows.
    let store_only = ["plan_artifact_stored", "lease_taken", "lease_released"];
    let stream_only = ["host_started", "step_retrying"];
    for fact in &recorded {
        if store_only.contains(&fact["kind"].as_str().unwrap()) {
            continue;
        }
        assert!(
            emitted.contains(fact),
            "recorded but not emitted as is: {fact}"
        );
    }
    for fact in &emitted {
        if stream_only.contains(&fact["kind"].as_str().unwrap()) {
            continue;
        }
        assert!(
            recorded.contains(fact),
            "emitted but not recorded as is: {fact}"
        );
    }
    // The statuses a reader looks for are spelt the same in both.
    let status = |facts: &[serde_json::Value], kind: &str| -> Vec<serde_json::Value> {
        facts
            .iter()
            .filter(|f| f["kind"] == kind)
            .map(|f| f["status"].clone())
            .collect()
    };
    assert_eq!(status(&emitted, "run_finished"), ["rolled_back"]);
    assert_eq!(status(&recorded, "run_finished"), ["rolled_back"]);
    assert_eq!(
        status(&emitted, "wave_decided"),
        status(&recorded, "wave_decided")
    );
    assert_eq!(runs(&f)[0]["status"], "rolled_back");
}
