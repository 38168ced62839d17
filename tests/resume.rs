//! End-to-end tests of `sluice resume`: what it refuses, how it asks about UNKNOWN steps, and
//! the crash test: `sluice apply` killed with SIGKILL at random moments of a 20-host, 3-wave run
//! on a real sshd fleet, then resumed to the end.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_exec::testkit::{PlanBuilder, StepDef};
use sluice_testfleet::Fleet;

/// One audit store shared by the commands of a test (unlike `support::sluice`, which gives every
/// command its own).
struct Store(PathBuf);

impl Store {
    fn new(name: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("resume-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Store(dir)
    }

    fn sluice(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.env("SLUICE_STATE_DIR", &self.0).stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.sluice().args(args).output().unwrap()
    }

    /// The id of the store's most recent run, if one was recorded.
    fn last_run(&self) -> Option<String> {
        self.last_run_status().map(|(run, _)| run)
    }

    /// The most recent run and its status (`interrupted` once its process is gone).
    fn last_run_status(&self) -> Option<(String, String)> {
        let out = self.run(&["runs", "--json"]);
        let first = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()?
            .to_string();
        let run: Value = serde_json::from_str(&first).ok()?;
        let id = run["run"].as_str()?.to_string();
        Some((id, run["status"].as_str().unwrap_or_default().to_string()))
    }

    /// The run's records, from `sluice audit export --run` (without the end line).
    fn export(&self, run: &str) -> Vec<Value> {
        let out = self.run(&["audit", "export", "--run", run]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r.get("end").is_none())
            .collect()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A saved artifact over local hosts `h1`, `h2` (directories under `dir/state`): a quick step,
/// then one that logs and sleeps `slow_secs`.
fn local_plan(dir: &Path, slow_secs: u32) -> PathBuf {
    let plan = PlanBuilder::new("resume-local")
        .local_hosts(&["h1", "h2"], &dir.join("state"))
        .step(StepDef::new("quick", "echo quick >> log"))
        .step(StepDef::new(
            "slow",
            &format!("echo slow >> log; sleep {slow_secs}"),
        ))
        .wave("all", &["h1", "h2"], 2, 0)
        .build();
    for h in ["h1", "h2"] {
        std::fs::create_dir_all(dir.join("state").join(h)).unwrap();
    }
    let path = dir.join("plan.json");
    std::fs::write(&path, serde_json::to_string(&plan).unwrap()).unwrap();
    path
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn resume_refuses_an_unknown_run_and_a_finished_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new("refusals");
    let out = store.run(&["resume", "nope", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "no store yet: {}", text(&out));

    let plan = local_plan(dir.path(), 0);
    let plan = plan.to_string_lossy();
    let out = store.run(&["apply", "--plan", &plan, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = store.run(&["resume", "nope", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no run nope"), "{}", text(&out));

    let run = store.last_run().unwrap();
    let out = store.run(&["resume", &run, "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("already finished"), "{}", text(&out));
}

#[test]
fn resume_refuses_a_run_whose_stored_plan_is_missing_or_does_not_match_its_hash() {
    use sluice_audit::{AuditLog, LeaseHolder, fixture};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new("tampered");
    let path = local_plan(dir.path(), 0);
    let artifact: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let hash = artifact["plan_hash"].as_str().unwrap().to_string();
    let mut tampered = artifact.clone();
    tampered["name"] = Value::from("edited after the run started");
    let (missing, edited) = {
        let log = AuditLog::open(&store.0).unwrap();
        let mut started = fixture::run_started("resume-local", &[]);
        started.plan_hash = hash.clone();
        let holder = LeaseHolder::this_process();
        let edited = log.start_run(started.clone(), &holder).unwrap();
        started.plan_hash = "f".repeat(64);
        let missing = log.start_run(started, &holder).unwrap();
        log.store_artifact(&edited, &hash, tampered).unwrap();
        (missing, edited)
    };
    let out = store.run(&["resume", &missing, "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("is not in the audit store"),
        "{}",
        text(&out)
    );
    let out = store.run(&["resume", &edited, "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("does not match"), "{}", text(&out));
}

/// Starts `sluice apply` on the local plan and waits until both hosts are inside `slow`.
fn apply_until_slow(store: &Store, dir: &Path) -> std::process::Child {
    let plan = local_plan(dir, 30);
    let child = store
        .sluice()
        .args(["apply", "--plan"])
        .arg(&plan)
        .args(["--yes", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let in_slow = |h: &str| lines(&dir.join("state").join(h).join("log")).len() == 2;
    while !(in_slow("h1") && in_slow("h2")) {
        assert!(Instant::now() < deadline, "apply never reached `slow`");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn unknown_steps_without_a_choice_exit_2_listing_them_and_a_choice_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new("unknown");
    let mut child = apply_until_slow(&store, dir.path());
    let run = store.last_run().unwrap();

    let out = store.run(&["resume", &run, "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let pid = child.id().to_string();
    assert!(
        text(&out).contains("still running") && text(&out).contains(&pid),
        "a live holder is named: {}",
        text(&out)
    );

    child.kill().unwrap();
    child.wait().unwrap();
    let out = store.run(&["resume", &run, "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let message = text(&out);
    for expected in ["h1 slow", "h2 slow", "--rerun-unknown", "--skip-unknown"] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
    assert!(!message.contains("h1 quick"), "{message}");

    let out = store.run(&["resume", &run, "--yes", "--skip-unknown"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for h in ["h1", "h2"] {
        let log = lines(&dir.path().join("state").join(h).join("log"));
        assert_eq!(log, ["quick", "slow"], "nothing ran again on {h}");
    }
    let records = store.export(&run);
    let choice = records
        .iter()
        .find(|r| r["kind"] == "unknown_steps_resolved")
        .expect("the choice is recorded");
    assert_eq!(choice["choice"], "skip");
    assert_eq!(choice["steps"].as_array().map(Vec::len), Some(2));
    let kinds: Vec<&str> = records.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert!(kinds.contains(&"run_resumed"));
    assert_eq!(kinds.last(), Some(&"run_finished"));
    assert_eq!(kinds.iter().filter(|k| **k == "run_started").count(), 1);
    let out = store.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

// ---- The crash test ------------------------------------------------------------------------

const STEPS: [&str; 5] = ["current", "stop", "install", "pin", "start"];

/// 20 hosts in waves of 2, 6 and 12 (6 at a time). Each step logs its name to `runs` first, so
/// the test can tell how often it ran; `pin` writes what `current` registered.
fn crash_plan(fleet: &Fleet) -> PathBuf {
    let yaml = r#"name: resume-crash
targets: [fleet]
waves:
  - { name: canary, size: 2 }
  - { name: early, size: 6 }
  - { name: rest, size: 100%, concurrency: 6 }
failure: { max_failed: 0, action: rollback }
health:
  checks:
    - { name: version, run: 'test "$(cat "$FLEET_ROOT/version")" = 2.0' }
  retries: 0
  interval: 100ms
  timeout: 5s
steps:
  - { id: current, run: 'echo current >> "$FLEET_ROOT/runs"; cat "$FLEET_ROOT/version"', register: old }
  - { id: stop, run: 'echo stop >> "$FLEET_ROOT/runs"; sleep 0.1; touch "$FLEET_ROOT/stopped"' }
  - { id: install, run: 'echo install >> "$FLEET_ROOT/runs"; sleep 0.15; echo 2.0 > "$FLEET_ROOT/version"' }
  - { id: pin, run: 'echo pin >> "$FLEET_ROOT/runs"; echo {{ old }} > "$FLEET_ROOT/old"; sleep 0.05' }
  - { id: start, run: 'echo start >> "$FLEET_ROOT/runs"; sleep 0.1; rm -f "$FLEET_ROOT/stopped"' }
"#;
    let path = fleet.dir().join("resume-crash.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn reset(fleet: &Fleet) {
    for i in 1..=fleet.len() {
        let root = fleet.root(i);
        for file in ["runs", "old", "stopped"] {
            let _ = std::fs::remove_file(root.join(file));
        }
        std::fs::write(root.join("version"), "1.0\n").unwrap();
    }
}

/// xorshift64*: a seeded, dependency-free source of kill delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs `apply` and, with a `delay`, kills it with SIGKILL that long after its first event
/// (the first event comes once the run and its plan are recorded). Returns the stdout lines
/// written before it ended and how long it ran after its first event.
fn apply_and_kill(
    store: &Store,
    plan: &Path,
    inventory: &Path,
    delay: Option<Duration>,
) -> (Vec<String>, Duration) {
    let mut child = store
        .sluice()
        .arg("apply")
        .arg(plan)
        .arg("-i")
        .arg(inventory)
        .args(["--yes", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    if let Ok(first) = rx.recv_timeout(Duration::from_secs(30)) {
        seen.push(first);
    }
    let first = Instant::now();
    match delay {
        Some(delay) => {
            std::thread::sleep(delay);
            let _ = child.kill();
        }
        None => seen.extend(rx.iter()),
    }
    child.wait().unwrap();
    let ran = first.elapsed();
    reader.join().unwrap();
    seen.extend(rx.try_iter());
    (seen, ran)
}

/// `(host, step)` of every step the killed process reported finished ok on stdout: each was
/// acknowledged by the store before it was reported.
fn reported_ok(lines: &[String]) -> BTreeSet<(String, String)> {
    lines
        .iter()
        // The last line may have been cut by the kill.
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "step_result" && e["status"] == "ok")
        .map(|e| {
            (
                e["host"].as_str().unwrap_or_default().to_string(),
                e["step"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Per (host, step): successful results, and whether an intent follows the last result.
fn results(records: &[Value]) -> BTreeMap<(String, String), (usize, bool)> {
    let mut out: BTreeMap<(String, String), (usize, bool)> = BTreeMap::new();
    for r in records {
        let p = r;
        let key = (
            p["host"].as_str().unwrap_or_default().to_string(),
            p["step"].as_str().unwrap_or_default().to_string(),
        );
        match r["kind"].as_str() {
            Some("step_intent") => out.entry(key).or_default().1 = true,
            Some("step_result") => {
                let entry = out.entry(key).or_default();
                assert_eq!(p["status"], "ok", "no step fails in this plan: {r}");
                entry.0 += 1;
                entry.1 = false;
            }
            _ => {}
        }
    }
    out
}

/// `(host, step)` of the successful results recorded before the first `run_resumed`.
fn results_before_resume(records: &[Value]) -> BTreeSet<(String, String)> {
    records
        .iter()
        .take_while(|r| r["kind"] != "run_resumed")
        .filter(|r| r["kind"] == "step_result" && r["status"] == "ok")
        .map(|r| {
            let field = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (field("host"), field("step"))
        })
        .collect()
}

#[test]
fn fleet_apply_killed_at_random_moments_is_resumed_to_the_end() {
    let fleet = Fleet::start(20).unwrap();
    let inventory = fleet.write_inventory().unwrap();
    let plan = crash_plan(&fleet);
    let hosts = fleet.host_names();

    // How long an uninterrupted run takes, so the kills can cover all of it.
    reset(&fleet);
    let calibration = Store::new("crash-calibration");
    let (events, full) = apply_and_kill(&calibration, &plan, &inventory, None);
    let finished = events
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["kind"] == "run_finished");
    assert_eq!(
        finished.map(|e| e["status"].clone()),
        Some(Value::from("succeeded"))
    );

    let seed = std::env::var("SLUICE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()) | 1);
    eprintln!("kill test: seed {seed} (SLUICE_KILL_SEED to replay); full run {full:?}");
    let mut rng = Rng(seed);
    let mut landed = 0;
    let test_started = Instant::now();
    for round in 0..12 {
        // Early, mid-wave and late kills in turn, at a random point of each third of the run.
        let third = (round % 3) as f64;
        let planned = full.mul_f64(((third + rng.unit()) / 3.0).clamp(0.02, 0.95));
        // A run on a loaded machine can be faster than the measured one, so a late kill may come
        // after it finished: that round is checked too, then tried again earlier, so every round
        // ends with a kill that landed mid-run.
        for attempt in 0..4 {
            reset(&fleet);
            let store = Store::new(&format!("crash-{round}-{attempt}"));
            let at = planned.mul_f64(0.6f64.powi(attempt));
            let (reported, _) = apply_and_kill(&store, &plan, &inventory, Some(at));
            let Some((run, status)) = store.last_run_status() else {
                panic!("round {round}: no run recorded after {at:?}");
            };
            // A kill that came after the run finished did not interrupt it.
            let killed = status == "interrupted";
            let acknowledged = reported_ok(&reported);
            eprintln!(
                "round {round}: killed after {at:?} (landed: {killed}), {} step results reported",
                acknowledged.len()
            );
            if killed {
                landed += 1;
                let out = store.run(&["resume", &run, "--yes", "--rerun-unknown", "--json"]);
                assert_eq!(out.status.code(), Some(0), "round {round}: {}", text(&out));
            }

            let records = store.export(&run);
            let results = results(&records);
            for host in &hosts {
                for step in STEPS {
                    let key = (host.clone(), step.to_string());
                    assert_eq!(
                        results.get(&key),
                        Some(&(1, false)),
                        "round {round}: {host} {step} has exactly one final result"
                    );
                }
            }
            let before_resume = results_before_resume(&records);
            for (host, step) in &acknowledged {
                assert!(
                    before_resume.contains(&(host.clone(), step.clone())),
                    "round {round}: {host} {step} was reported done before the kill, so its result is in the store"
                );
            }
            for (i, host) in hosts.iter().enumerate() {
                let root = fleet.root(i + 1);
                let runs = lines(&root.join("runs"));
                for step in STEPS {
                    let n = runs.iter().filter(|l| *l == step).count();
                    let done_before = acknowledged.contains(&(host.clone(), step.to_string()));
                    assert!(n >= 1, "round {round}: {step} ran on {host}");
                    if done_before {
                        assert_eq!(
                            n, 1,
                            "round {round}: {step} finished before the kill on {host} and was not run again"
                        );
                    }
                }
                assert_eq!(
                    lines(&root.join("version")),
                    ["2.0"],
                    "round {round}: {host}"
                );
                assert_eq!(
                    lines(&root.join("old")),
                    ["1.0"],
                    "round {round}: {host} pinned the registered value"
                );
                assert!(
                    !root.join("stopped").exists(),
                    "round {round}: {host} was started again"
                );
            }
            let out = store.run(&["audit", "verify"]);
            assert_eq!(out.status.code(), Some(0), "round {round}: {}", text(&out));
            let _ = std::fs::remove_dir_all(&store.0);
            if killed {
                break;
            }
        }
    }
    eprintln!(
        "kill test: {landed} kills landed mid-run in {:?}",
        test_started.elapsed()
    );
    assert_eq!(
        landed, 12,
        "only {landed} of 12 rounds had a kill land mid-run"
    );
}

// ---- A plan with stages, killed during its second stage ------------------------------------

/// Three stages over six sshd hosts (`host1`–`host2`, then `host3`–`host6` in waves, then
/// `host1`): `sluice apply` killed with SIGKILL while the second stage runs, then resumed. Every
/// host's step of every stage ends done exactly once in the record, the first stage is not run
/// again, and the last stage runs after the second, with the value the second passed on.
#[test]
fn fleet_apply_with_stages_killed_in_the_second_stage_is_resumed_to_the_end() {
    let fleet = Fleet::start(6).unwrap();
    let inventory = fleet.write_inventory().unwrap();
    let yaml = r#"name: resume-stages
failure: { max_failed: 0, action: rollback }
stages:
  - name: first
    targets: [host1, host2]
    steps: [{ id: a, run: 'echo first >> "$FLEET_ROOT/runs"' }]
  - name: second
    targets: [host3, host4, host5, host6]
    waves: [{ name: one, size: 1 }, { name: rest, size: 100% }]
    steps:
      - { id: mark, run_once: true, run: 'echo mark-7', register: mark }
      - { id: b, run: 'echo second >> "$FLEET_ROOT/runs"; sleep 0.4; date +%s%N > "$FLEET_ROOT/second-end"' }
  - name: third
    targets: [host1]
    steps: [{ id: c, run: 'date +%s%N > "$FLEET_ROOT/third-start"; echo {{stages.second.mark}} > "$FLEET_ROOT/mark"; echo third >> "$FLEET_ROOT/runs"' }]
"#;
    let plan = fleet.dir().join("resume-stages.yaml");
    std::fs::write(&plan, yaml).unwrap();
    for i in 1..=6 {
        for file in ["runs", "mark", "second-end", "third-start"] {
            let _ = std::fs::remove_file(fleet.root(i).join(file));
        }
    }
    let store = Store::new("stages");
    let mut child = store
        .sluice()
        .arg("apply")
        .arg(&plan)
        .arg("-i")
        .arg(&inventory)
        .args(["--yes", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Killed once the second stage's first wave has started a host.
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.contains("\"host_started\"") && line.contains("\"second/one\"") {
            std::thread::sleep(Duration::from_millis(150));
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (run, status) = store.last_run_status().unwrap();
    assert_eq!(status, "interrupted");
    let out = store.run(&["resume", &run, "--yes", "--rerun-unknown", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let records = store.export(&run);
    let results = results(&records);
    let expected = [
        ("host1", "first/a"),
        ("host2", "first/a"),
        ("host3", "second/mark"),
        ("host3", "second/b"),
        ("host4", "second/b"),
        ("host5", "second/b"),
        ("host6", "second/b"),
        ("host1", "third/c"),
    ];
    for (host, step) in expected {
        assert_eq!(
            results.get(&(host.to_string(), step.to_string())),
            Some(&(1, false)),
            "{host} {step} has exactly one final result"
        );
    }
    // The first stage finished before the kill and did not run again.
    assert_eq!(lines(&fleet.root(2).join("runs")), ["first"]);
    let stamp = |i: usize, f: &str| -> u128 {
        std::fs::read_to_string(fleet.root(i).join(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let second_end = (3..=6).map(|i| stamp(i, "second-end")).max().unwrap();
    assert!(second_end < stamp(1, "third-start"));
    assert_eq!(
        std::fs::read_to_string(fleet.root(1).join("mark")).unwrap(),
        "mark-7\n"
    );
}
