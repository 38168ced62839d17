//! End-to-end tests of plans with stages (`sluice apply` on a YAML plan over the local
//! transport): every host is a directory, and the hosts write timestamps and logs that the
//! tests read back to check the order stages ran in, what ran in parallel, what was stopped and
//! what was undone.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Output;

mod support;
use support::{events, sluice};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: support::stage_hosts::directory(),
        }
    }

    /// Applies `plan` (YAML) with `--json`.
    fn apply(&self, plan: &str) -> Output {
        let path = self.dir.path().join("plan.yaml");
        std::fs::write(&path, plan).unwrap();
        sluice()
            .current_dir(self.dir.path())
            .args([
                "apply",
                "plan.yaml",
                "-i",
                "inventory.yaml",
                "--yes",
                "--json",
            ])
            .output()
            .unwrap()
    }

    fn file(&self, host: &str, name: &str) -> Option<String> {
        std::fs::read_to_string(self.path(host, name)).ok()
    }

    fn path(&self, host: &str, name: &str) -> PathBuf {
        self.dir.path().join("state").join(host).join(name)
    }

    /// A timestamp (ns since the epoch) a host wrote with `date +%s%N`.
    fn stamp(&self, host: &str, name: &str) -> u128 {
        let text = self
            .file(host, name)
            .unwrap_or_else(|| panic!("{host} wrote no {name}"));
        text.trim().parse().unwrap()
    }

    /// The lines of a host's `log`.
    fn log(&self, host: &str) -> Vec<String> {
        self.file(host, "log")
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn status(out: &Output) -> String {
    let events = events(out);
    let finished = events
        .iter()
        .rfind(|e| e["kind"] == "run_finished")
        .unwrap_or_else(|| panic!("no run_finished: {}", String::from_utf8_lossy(&out.stderr)));
    finished["status"].as_str().unwrap().to_string()
}

fn stage_statuses(out: &Output) -> Vec<(String, String)> {
    events(out)
        .into_iter()
        .filter(|e| e["kind"] == "stage_finished")
        .map(|e| {
            (
                e["stage"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every host of a stage finishes before any host of the stage after it starts, checked from
/// the timestamps the hosts write when their step starts and ends.
#[test]
fn every_host_of_a_stage_finishes_before_any_host_of_the_next_starts() {
    let f = Fixture::new();
    let step = "date +%s%N > start && sleep 0.3 && date +%s%N > end";
    let plan = format!(
        "name: ordered
stages:
  - {{ name: drain, targets: [lb], steps: [{{ id: s, run: '{step}' }}] }}
  - name: app
    targets: [app]
    waves: [{{ name: one, size: 1 }}, {{ name: rest, size: 100% }}]
    steps: [{{ id: s, run: '{step}' }}]
  - {{ name: db, targets: [db], steps: [{{ id: s, run: '{step}' }}] }}
"
    );
    let out = f.apply(&plan);
    assert_eq!(
        status(&out),
        "succeeded",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stages: [&[&str]; 3] = [&["h1"], &["h2", "h3", "h4"], &["h5", "h6"]];
    for pair in stages.windows(2) {
        let last_end = pair[0].iter().map(|h| f.stamp(h, "end")).max().unwrap();
        let first_start = pair[1].iter().map(|h| f.stamp(h, "start")).min().unwrap();
        assert!(
            last_end < first_start,
            "{:?} ended at {last_end}, after {:?} started at {first_start}",
            pair[0],
            pair[1]
        );
    }
    // The events name the stage of each wave and host.
    let evs = events(&out);
    let wave = evs
        .iter()
        .find(|e| e["kind"] == "wave_started" && e["wave"] == "app/one")
        .unwrap();
    assert_eq!(wave["stage"], "app");
    assert!(
        evs.iter()
            .filter(|e| e["kind"] == "host_finished")
            .all(|e| e["stage"].is_string())
    );
}

/// Two stages with no order between them run at the same time; a third waits for both.
#[test]
fn independent_stages_run_at_the_same_time() {
    let f = Fixture::new();
    let step = "date +%s%N > start && sleep 1 && date +%s%N > end";
    let plan = format!(
        "name: parallel
stage_concurrency: 2
stages:
  - {{ name: app, targets: [app], after: [], steps: [{{ id: s, run: '{step}' }}] }}
  - {{ name: db, targets: [db], after: [], steps: [{{ id: s, run: '{step}' }}] }}
  - {{ name: lb, targets: [lb], after: [app, db], steps: [{{ id: s, run: '{step}' }}] }}
"
    );
    let out = f.apply(&plan);
    assert_eq!(
        status(&out),
        "succeeded",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each of app and db started before the other ended: they overlapped.
    assert!(f.stamp("h2", "start") < f.stamp("h5", "end"));
    assert!(f.stamp("h5", "start") < f.stamp("h2", "end"));
    let both_end = ["h2", "h3", "h4", "h5", "h6"]
        .iter()
        .map(|h| f.stamp(h, "end"))
        .max()
        .unwrap();
    assert!(both_end < f.stamp("h1", "start"));
}

/// With `stage_concurrency: 1` the same independent stages run one after the other.
#[test]
fn stage_concurrency_bounds_independent_stages() {
    let f = Fixture::new();
    let step = "date +%s%N > start && sleep 0.3 && date +%s%N > end";
    let plan = format!(
        "name: bounded
stage_concurrency: 1
stages:
  - {{ name: app, targets: [app], after: [], steps: [{{ id: s, run: '{step}' }}] }}
  - {{ name: db, targets: [db], after: [], steps: [{{ id: s, run: '{step}' }}] }}
"
    );
    let out = f.apply(&plan);
    assert_eq!(status(&out), "succeeded");
    let app_end = ["h2", "h3", "h4"].iter().map(|h| f.stamp(h, "end")).max();
    let db_start = ["h5", "h6"].iter().map(|h| f.stamp(h, "start")).min();
    assert!(app_end < db_start);
}

/// A stage that spends its budget stops every stage that waits for it (and only those); its
/// own hosts are rolled back (`rollback_scope: stage`, the default), the earlier stage is not.
#[test]
fn a_failed_stage_stops_its_dependants() {
    let f = Fixture::new();
    let plan = "name: stops
stages:
  - { name: drain, targets: [lb], steps: [{ id: s, run: 'echo drain >> log', undo: 'echo undo-drain >> log' }] }
  - name: app
    targets: [app]
    steps: [{ id: s, run: 'echo app >> log; test $(basename $PWD) != h3', undo: 'echo undo-app >> log' }]
  - { name: db, targets: [db], steps: [{ id: s, run: 'echo db >> log' }] }
  - { name: side, targets: [db], after: [drain], steps: [{ id: t, run: 'echo side >> side' }] }
";
    let out = f.apply(plan);
    assert_eq!(
        status(&out),
        "rolled_back",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        f.log("h5").is_empty(),
        "db must not start: {:?}",
        f.log("h5")
    );
    assert!(f.log("h6").is_empty());
    // The app stage's started hosts are undone; the drain stage is not.
    assert_eq!(f.log("h2"), ["app", "undo-app"]);
    assert_eq!(f.log("h1"), ["drain"]);
    // A stage that does not wait for app runs anyway.
    assert_eq!(f.file("h5", "side").as_deref(), Some("side\n"));
    let stages = stage_statuses(&out);
    assert!(
        stages.contains(&("app".into(), "rolled_back".into())),
        "{stages:?}"
    );
    assert!(
        stages.contains(&("db".into(), "not_started".into())),
        "{stages:?}"
    );
}

/// `rollback_scope: run`: after the failed stage's own hosts, the stages that finished are
/// undone newest first (the load balancer goes back into rotation after the app rollback).
#[test]
fn rollback_scope_run_undoes_earlier_stages_newest_first() {
    let f = Fixture::new();
    let undo = |name: &str| format!("date +%s%N > undo-{name}; echo undo-{name} >> log");
    let plan = format!(
        "name: run-scope
failure: {{ rollback_scope: run }}
stages:
  - {{ name: drain, targets: [lb], steps: [{{ id: s, run: 'echo drain >> log', undo: '{}' }}] }}
  - {{ name: app, targets: [app], steps: [{{ id: s, run: 'echo app >> log', undo: '{}' }}] }}
  - name: db
    targets: [db]
    steps: [{{ id: s, run: 'echo db >> log; false', undo: 'echo undo-db >> log' }}]
",
        undo("drain"),
        undo("app")
    );
    let out = f.apply(&plan);
    assert_eq!(
        status(&out),
        "rolled_back",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(f.log("h1"), ["drain", "undo-drain"]);
    assert_eq!(f.log("h2"), ["app", "undo-app"]);
    assert_eq!(f.log("h5"), ["db", "undo-db"]);
    let app_undone = ["h2", "h3", "h4"]
        .iter()
        .map(|h| f.stamp(h, "undo-app"))
        .max()
        .unwrap();
    assert!(
        app_undone < f.stamp("h1", "undo-drain"),
        "the app stage (newer) is undone before the drain stage"
    );
    let decisions: Vec<String> = events(&out)
        .into_iter()
        .filter(|e| e["kind"] == "decision" && e["decision"] == "stage_rollback")
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(decisions.len(), 2, "{decisions:?}");
    assert!(decisions[0].ends_with("undoing stage app"), "{decisions:?}");
    assert!(
        decisions[1].ends_with("undoing stage drain"),
        "{decisions:?}"
    );
}

/// A value a `run_once` step registers in one stage reaches a later stage's hosts as
/// `{{stages.NAME.VAR}}`; a value tainted by a secret stays masked in the events.
#[test]
fn a_stage_value_crosses_stages_and_a_secret_one_stays_masked() {
    let f = Fixture::new();
    let plan = "name: values
secrets: { token: { env: STAGES_TEST_TOKEN } }
stages:
  - name: migrate
    targets: [db]
    steps:
      - { id: version, run_once: true, run: 'echo schema-42', register: schema }
      - { id: token, run_once: true, after: [version], run: 'echo {{secrets.token}}', register: tok }
  - name: app
    targets: [app]
    steps:
      - { id: use, run: 'echo {{stages.migrate.schema}} > schema; echo {{stages.migrate.tok}} > tok' }
";
    let path = f.dir.path().join("plan.yaml");
    std::fs::write(&path, plan).unwrap();
    let out = sluice()
        .current_dir(f.dir.path())
        .env("STAGES_TEST_TOKEN", "hunter2-secret")
        .args([
            "apply",
            "plan.yaml",
            "-i",
            "inventory.yaml",
            "--yes",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        status(&out),
        "succeeded",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for host in ["h2", "h3", "h4"] {
        assert_eq!(f.file(host, "schema").as_deref(), Some("schema-42\n"));
        assert_eq!(f.file(host, "tok").as_deref(), Some("hunter2-secret\n"));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("hunter2-secret"),
        "a secret-tainted value leaked"
    );
    assert!(stdout.contains("schema-42"));
}

/// `sluice show` of a run with stages groups the waves under a heading per stage, in the plan's
/// stage order, even when two stages ran at the same time and their records interleave.
#[test]
fn show_groups_waves_under_their_stage_in_stage_order() {
    let f = Fixture::new();
    let store = f.dir.path().join("store");
    let plan = r#"name: show-stages
stages:
  - name: slow
    targets: [h1]
    after: []
    steps: [{ id: a, run: "sleep 0.3" }]
  - name: quick
    targets: [app]
    after: []
    waves: [{ name: one, size: 1 }, { name: rest, size: 100% }]
    steps: [{ id: b, run: "true" }]
  - name: last
    targets: [db]
    after: [slow, quick]
    steps: [{ id: c, run: "true" }]
"#;
    std::fs::write(f.dir.path().join("plan.yaml"), plan).unwrap();
    let out = sluice()
        .current_dir(f.dir.path())
        .env("SLUICE_STATE_DIR", &store)
        .args([
            "apply",
            "plan.yaml",
            "-i",
            "inventory.yaml",
            "--yes",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(status(&out), "succeeded");
    // A wave's index counts from 0 within its stage (docs/json-events.md, `wave_started`).
    let indexes: Vec<(String, u64)> = events(&out)
        .iter()
        .filter(|e| e["kind"] == "wave_decided")
        .map(|e| {
            (
                e["wave"].as_str().unwrap().to_string(),
                e["index"].as_u64().unwrap(),
            )
        })
        .collect();
    for (wave, index) in [
        ("slow/all", 0),
        ("quick/one", 0),
        ("quick/rest", 1),
        ("last/all", 0),
    ] {
        assert!(indexes.contains(&(wave.to_string(), index)), "{indexes:?}");
    }
    let run = events(&out)[0]["run"].as_str().unwrap().to_string();
    let show = sluice()
        .env("SLUICE_STATE_DIR", &store)
        .args(["show", &run])
        .output()
        .unwrap();
    assert!(show.status.success());
    let text = String::from_utf8_lossy(&show.stderr).to_string();
    let section: Vec<&str> = text
        .split("\n\n")
        .find(|s| s.starts_with("stages\n"))
        .unwrap_or_else(|| panic!("no stages section:\n{text}"))
        .lines()
        .skip(1)
        .collect();
    // Every line without its durations, which vary.
    let shape: Vec<String> = section
        .iter()
        .map(|l| l.split(" in ").next().unwrap().to_string())
        .collect();
    assert_eq!(
        shape,
        [
            "  stage slow, 1 host (h1): ok (its waves ended succeeded)",
            "    slow/all     1 host, 1 at a time: 1 ok, 0 failed of 1 host, budget 0 = 0 hosts -> continue: 0 failed hosts within max_failed 0: the run goes on",
            "  stage quick, 3 hosts (h2, h3, h4): ok (its waves ended succeeded)",
            "    quick/one    1 host, 1 at a time: 1 ok, 0 failed of 1 host, budget 0 = 0 hosts -> continue: 0 failed hosts within max_failed 0: the run goes on",
            "    quick/rest   2 hosts, 2 at a time: 2 ok, 0 failed of 2 hosts, budget 0 = 0 hosts -> continue: 0 failed hosts within max_failed 0: the run goes on",
            "  stage last, after slow, quick, 2 hosts (h5, h6): ok (its waves ended succeeded)",
            "    last/all     2 hosts, 2 at a time: 2 ok, 0 failed of 2 hosts, budget 0 = 0 hosts -> continue: 0 failed hosts within max_failed 0: the run goes on",
        ],
        "{text}"
    );
}

/// The run display (not `--json`) names each stage as it starts and ends, in stage order.
#[test]
fn the_run_display_names_each_stage_as_it_starts_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir.path())
        .env("SLUICE_STATE_DIR", dir.path().join("state"))
        .env("NO_COLOR", "1")
        .arg("apply")
        .arg(root.join("playbooks/three-tier-patch.yaml"))
        .arg("-i")
        .arg(root.join("inventory/demo.yaml"))
        .arg("--yes")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stages: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Stage "))
        .collect();
    assert_eq!(
        stages,
        [
            "Stage drain: 1 host",
            "Stage drain ok: its waves ended succeeded",
            "Stage app: 4 hosts, after drain",
            "Stage app ok: its waves ended succeeded",
            "Stage migrate: 1 host, after app",
            "Stage migrate ok: its waves ended succeeded",
            "Stage undrain: 1 host, after migrate",
            "Stage undrain ok: its waves ended succeeded",
        ],
        "{stderr}"
    );
}
