//! `sluice apply --check` against a fleet of real sshd hosts: only `skip_if` guards and
//! `check: true` steps reach the hosts (each host's sshd logs every command a session runs),
//! hosts' files are unchanged, verdicts are right per host, unreachable hosts and refused host
//! keys are reported, `--limit` narrows the check, and the run is recorded as kind `check`.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sluice_testfleet::Fleet;

mod support;
use support::{events, sluice};

/// `current` is a read-only probe (`check: true`) whose value feeds `install`'s guard;
/// `stamp` is a change that registers a value `restart`'s guard needs; `tidy` has no guard.
const PLAN: &str = r#"name: check-me
targets: [fleet]
waves:
  - { name: canary, size: 1 }
  - { name: rest, size: 100% }
health:
  checks:
    - { name: app, run: 'echo HEALTH-RAN >> "$FLEET_ROOT/log"' }
steps:
  - id: current
    run: 'cat "$FLEET_ROOT/pkg/openssl"'
    register: current
    check: true
  - id: install
    skip_if: 'test {{current}} = 3.0.2'
    run: 'echo 3.0.2 > "$FLEET_ROOT/pkg/openssl"; echo INSTALL-RAN >> "$FLEET_ROOT/log"'
    undo: 'echo UNDO-RAN >> "$FLEET_ROOT/log"'
  - id: stamp
    run: 'echo STAMP-RAN > "$FLEET_ROOT/stamp"; echo 1'
    register: stamp
  - id: restart
    skip_if: 'test {{stamp}} = 0'
    run: 'echo RESTART-RAN >> "$FLEET_ROOT/log"'
  - id: tidy
    run: 'echo TIDY-RAN >> "$FLEET_ROOT/log"'
"#;

fn write_plan(fleet: &Fleet) -> PathBuf {
    let path = fleet.dir().join("check.yaml");
    std::fs::write(&path, PLAN).unwrap();
    path
}

fn check(plan: &Path, inventory: &Path, store: &Path, extra: &[&str]) -> Output {
    sluice()
        .env("SLUICE_STATE_DIR", store)
        .arg("apply")
        .arg(plan)
        .arg("-i")
        .arg(inventory)
        .args(["--check", "--json"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Every host's state files, to compare before and after.
fn state(fleet: &Fleet) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for i in 1..=fleet.len() {
        for file in ["pkg/openssl", "log", "stamp"] {
            let path = fleet.root(i).join(file);
            out.push((
                format!("host{i}/{file}"),
                std::fs::read_to_string(path).ok(),
            ));
        }
    }
    out
}

fn verdicts(out: &Output, host: &str) -> Vec<(String, String, Option<String>)> {
    events(out)
        .into_iter()
        .filter(|e| e["kind"] == "step_checked" && e["host"] == host)
        .map(|e| {
            (
                e["step"].as_str().unwrap().to_string(),
                e["verdict"].as_str().unwrap().to_string(),
                e["depends_on"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn v(step: &str, verdict: &str, depends_on: Option<&str>) -> (String, String, Option<String>) {
    (
        step.to_string(),
        verdict.to_string(),
        depends_on.map(str::to_string),
    )
}

#[test]
fn check_runs_only_guards_and_check_steps_and_reports_every_host() {
    let mut fleet = Fleet::start(5).unwrap();
    fleet.reset_workload_state().unwrap();
    fleet.log_commands().unwrap();
    std::fs::write(fleet.root(1).join("pkg/openssl"), "3.0.2\n").unwrap();
    let inventory = fleet.write_inventory().unwrap();
    // host4 presents a key known_hosts does not pin; host5 is down.
    fleet.change_host_key(4).unwrap();
    fleet.stop(5);
    let before = state(&fleet);
    let store = tempfile::tempdir().unwrap();

    let out = check(&write_plan(&fleet), &inventory, store.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");

    assert_eq!(state(&fleet), before, "a check changes no file on any host");
    for i in 1..=3 {
        let commands = fleet.commands(i);
        assert_eq!(
            commands.len(),
            2,
            "host{i}: the probe and install's guard (restart's cannot be evaluated): {commands:#?}"
        );
        assert!(commands[0].contains(r#"cat "$FLEET_ROOT/pkg/openssl""#));
        assert!(commands[1].contains("test "));
        for c in &commands {
            assert!(!c.contains("-RAN"), "host{i} ran a changing command: {c}");
        }
    }

    let unevaluated = v("restart", "guard_unevaluated", Some("stamp"));
    assert_eq!(
        verdicts(&out, "host1"),
        [
            v("current", "would_run", None),
            v("install", "would_skip", None),
            v("stamp", "would_run", None),
            unevaluated.clone(),
            v("tidy", "would_run", None),
        ]
    );
    for host in ["host2", "host3"] {
        assert_eq!(
            verdicts(&out, host),
            [
                v("current", "would_run", None),
                v("install", "would_run", None),
                v("stamp", "would_run", None),
                unevaluated.clone(),
                v("tidy", "would_run", None),
            ],
            "{host}"
        );
    }
    let checked: Vec<serde_json::Value> = events(&out)
        .into_iter()
        .filter(|e| e["kind"] == "host_checked")
        .collect();
    let host = |name: &str| checked.iter().find(|e| e["host"] == name).unwrap().clone();
    assert_eq!(host("host4")["outcome"], "unreachable");
    assert_eq!(host("host4")["connect_error"], "host_key_refused");
    assert_eq!(host("host5")["outcome"], "unreachable");
    assert_eq!(host("host5")["connect_error"], "unreachable");
    assert_eq!(host("host2")["outcome"], "ok");
    assert!(verdicts(&out, "host4").is_empty());
    assert!(
        stderr.contains("would run, guard cannot be evaluated: depends on step stamp"),
        "{stderr}"
    );
    assert!(stderr.contains("host_key_refused"), "{stderr}");
    assert!(
        !events(&out).iter().any(|e| e["kind"] == "health_result"
            || e["kind"] == "undo_intent"
            || e["kind"] == "wave_started"),
        "no health check, undo or wave in a check"
    );

    // Recorded as a run of kind check, with the probe's intent before it was sent.
    let run = events(&out)[0]["run"].as_str().unwrap().to_string();
    let shown = sluice()
        .env("SLUICE_STATE_DIR", store.path())
        .args(["show", &run, "--json"])
        .output()
        .unwrap();
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&shown.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records[0]["kind"], "run_started");
    assert_eq!(records[0]["run_kind"], "check");
    let intents: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["kind"] == "step_intent")
        .collect();
    assert_eq!(intents.len(), 3, "the probe on the three reachable hosts");
    assert!(intents.iter().all(|r| r["step"] == "current"));
    assert_eq!(
        records
            .iter()
            .filter(|r| r["kind"] == "step_checked")
            .count(),
        15
    );
    assert_eq!(records.last().unwrap()["kind"], "run_finished");
    assert_eq!(records.last().unwrap()["status"], "failed");

    // A check run is not carried on by resume.
    let resumed = sluice()
        .env("SLUICE_STATE_DIR", store.path())
        .args(["resume", &run, "--yes"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(resumed.status.code(), Some(2));
}

#[test]
fn check_with_every_host_reached_exits_0_and_limit_narrows_it() {
    let mut fleet = Fleet::start(3).unwrap();
    fleet.reset_workload_state().unwrap();
    fleet.log_commands().unwrap();
    let inventory = fleet.write_inventory().unwrap();
    let store = tempfile::tempdir().unwrap();
    let out = check(
        &write_plan(&fleet),
        &inventory,
        store.path(),
        &["--limit", "host2"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked: Vec<String> = events(&out)
        .into_iter()
        .filter(|e| e["kind"] == "host_checked")
        .map(|e| e["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(checked, ["host2"]);
    assert!(fleet.commands(1).is_empty() && fleet.commands(3).is_empty());
    assert_eq!(fleet.commands(2).len(), 2);
}

/// A `check: true` step that fails makes its host `failed` and its later steps `not_reached`;
/// a guard under `become` runs through sudo like the step would.
#[test]
fn a_failing_probe_stops_its_host_and_later_steps_are_not_reached() {
    let mut fleet = Fleet::start(1).unwrap();
    fleet.log_commands().unwrap();
    let inventory = fleet.write_inventory().unwrap();
    let plan = fleet.dir().join("probe.yaml");
    std::fs::write(
        &plan,
        r#"name: probe-fails
targets: [fleet]
steps:
  - { id: probe, run: 'exit 3', check: true, register: x }
  - { id: change, run: 'echo CHANGE-RAN >> "$FLEET_ROOT/log"' }
"#,
    )
    .unwrap();
    let store = tempfile::tempdir().unwrap();
    let out = check(&plan, &inventory, store.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        verdicts(&out, "host1"),
        [
            v("probe", "would_fail", None),
            v("change", "not_reached", None)
        ]
    );
    assert_eq!(fleet.commands(1).len(), 1);
    assert!(!fleet.root(1).join("log").exists());
}

/// `check: true` is left out of the artifact when unset: a plan without it keeps its hash.
#[test]
fn check_key_is_absent_from_the_artifact_when_unset() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inv.yaml");
    std::fs::write(&inventory, "hosts:\n  a: { transport: local }\n").unwrap();
    let plan = |check: &str| {
        let path = dir.path().join("p.yaml");
        std::fs::write(
            &path,
            format!("name: p\ntargets: [a]\nsteps:\n  - {{ id: s, run: 'true'{check} }}\n"),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["plan", "--json"])
            .arg(&path)
            .arg("-i")
            .arg(&inventory)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let without = plan("");
    let explicit_false = plan(", check: false");
    let with = plan(", check: true");
    assert_eq!(without["plan_hash"], explicit_false["plan_hash"]);
    assert_ne!(without["plan_hash"], with["plan_hash"]);
}

/// A plan with stages: a host in two stages (the load balancer of three-tier-patch) is checked
/// once with the steps of both, and the `run_once` host is counted once, so the result counts
/// hosts, not checks; nothing is changed on the local demo hosts.
#[test]
fn a_plan_with_stages_checks_each_host_once_with_every_stage_s_steps() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir.path())
        .env("SLUICE_STATE_DIR", dir.path().join("state"))
        .env("NO_COLOR", "1")
        .arg("apply")
        .arg(root.join("playbooks/three-tier-patch.yaml"))
        .arg("-i")
        .arg(root.join("inventory/demo.yaml"))
        .args(["--check", "--yes"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("6 of 6 hosts reached"), "{stderr}");
    let lb = stderr
        .split("demo-1 (1 host):")
        .nth(1)
        .unwrap_or_else(|| panic!("demo-1 is listed on its own: {stderr}"));
    let lb: Vec<&str> = lb.lines().skip(1).take(2).map(str::trim).collect();
    assert_eq!(
        lb,
        [
            "drain/drain-pool     would run",
            "undrain/undrain-pool would run"
        ],
        "{stderr}"
    );
    let demo_state = dir.path().join("demo-state");
    let changed: Vec<_> = walk(&demo_state);
    assert!(changed.is_empty(), "the check changed files: {changed:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() { walk(&p) } else { vec![p] }
        })
        .collect()
}

/// Stage values in check mode: the value a `check: true` `run_once` step of an earlier stage
/// registers reaches a later stage's guard (`would_skip` here, as in a real run), while a
/// guard that needs the value of a `run_once` step that does not run in check mode is
/// `guard_unevaluated` naming that step. Nothing is changed.
#[test]
fn a_check_step_s_stage_value_feeds_later_stages_guards() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for h in ["app1", "app2", "db"] {
        std::fs::create_dir_all(root.join(h)).unwrap();
    }
    std::fs::write(root.join("db/schema"), "42\n").unwrap();
    let inventory = root.join("inv.yaml");
    std::fs::write(
        &inventory,
        format!(
            "defaults: {{ transport: local }}\nhosts:\n  app1: {{ workdir: {0}/app1 }}\n  app2: {{ workdir: {0}/app2 }}\n  db: {{ workdir: {0}/db }}\n\
             groups:\n  app: {{ hosts: [app1, app2] }}\n  dbs: {{ hosts: [db] }}\n",
            root.display()
        ),
    )
    .unwrap();
    let plan = root.join("staged.yaml");
    std::fs::write(
        &plan,
        r#"name: staged-check
stages:
  - name: probe
    targets: [dbs]
    steps:
      - { id: schema, run_once: true, check: true, run: 'cat schema', register: schema }
      - { id: mark, run_once: true, run: 'echo MARK-RAN > marked; echo 1', register: mark }
  - name: app
    targets: [app]
    steps:
      - { id: migrate, run: 'echo MIGRATE-RAN > migrated', skip_if: 'test {{stages.probe.schema}} = 42' }
      - { id: remark, run: 'echo REMARK-RAN > remarked', skip_if: 'test {{stages.probe.mark}} = 1' }
"#,
    )
    .unwrap();
    let store = root.join("state");
    let out = check(&plan, &inventory, &store, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        verdicts(&out, "db"),
        [
            v("probe/schema", "would_run", None),
            v("probe/mark", "would_run", None)
        ]
    );
    for host in ["app1", "app2"] {
        assert_eq!(
            verdicts(&out, host),
            [
                v("app/migrate", "would_skip", None),
                v("app/remark", "guard_unevaluated", Some("probe/mark")),
            ],
            "{host}"
        );
    }
    let changed: Vec<_> = walk(root)
        .into_iter()
        .filter(|p| !p.starts_with(&store) && p.parent() != Some(root))
        .filter(|p| p != &root.join("db/schema"))
        .collect();
    assert!(changed.is_empty(), "the check changed files: {changed:?}");
}
