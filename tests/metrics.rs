//! Metrics for node_exporter's textfile collector, after real runs against a fleet of sshd
//! hosts: `apply --metrics-file` and the inventory's `metrics_file:` write the Prometheus text
//! format atomically, `promtool check metrics` (Debian's `prometheus` package, installed by
//! scripts/test.sh) accepts it, the values are those of the runs, and `sluice metrics` prints
//! the same from the store.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sluice_testfleet::Fleet;

mod support;
use support::sluice;

/// Two waves; a host whose `fail` file exists fails `install`, which has an undo; one failed
/// host is tolerated per wave, more roll the wave back.
fn plan(fleet: &Fleet, name: &str, max_failed: u32) -> PathBuf {
    let yaml = format!(
        r#"name: {name}
targets: [fleet]
waves:
  - {{ name: canary, size: 1 }}
  - {{ name: rest, size: 100% }}
failure: {{ max_failed: {max_failed}, action: rollback, rollback_scope: wave }}
steps:
  - {{ id: install, run: 'test ! -e "$FLEET_ROOT/fail"', undo: 'true' }}
"#
    );
    let path = fleet.dir().join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

fn apply(store: &Path, plan: &Path, inventory: &Path, extra: &[&str]) -> Output {
    sluice()
        .env("SLUICE_STATE_DIR", store)
        .arg("apply")
        .arg(plan)
        .arg("-i")
        .arg(inventory)
        .arg("--yes")
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `promtool check metrics` on `text`: the Prometheus project's own parser and linter.
fn promtool_accepts(text: &str) {
    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool is needed ({e}): apt-get install prometheus (scripts/test.sh does)")
        });
    use std::io::Write;
    promtool
        .stdin
        .as_ref()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool refused the metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every sample as `name{labels}` → value, and every `# TYPE` line.
fn samples(text: &str) -> (BTreeMap<String, f64>, Vec<String>) {
    let mut values = BTreeMap::new();
    let mut types = Vec::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            types.push(t.to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap();
            values.insert(series.to_string(), value.parse().unwrap());
        }
    }
    (values, types)
}

#[test]
fn metrics_after_fleet_runs_are_valid_and_say_what_happened() {
    let fleet = Fleet::start(4).unwrap();
    let inventory = fleet.write_inventory().unwrap();
    let store = tempfile::tempdir().unwrap();
    let textfiles = tempfile::tempdir().unwrap();
    let file = textfiles.path().join("sluice.prom");
    let file_arg = file.display().to_string();
    let patch = plan(&fleet, "patch", 1);

    // 1: every host ok.
    let before = jiff::Timestamp::now().as_second() as f64;
    let out = apply(
        store.path(),
        &patch,
        &inventory,
        &["--metrics-file", &file_arg],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (first, _) = samples(&std::fs::read_to_string(&file).unwrap());
    let success = first[r#"sluice_last_success_timestamp_seconds{plan="patch"}"#];
    assert!(success >= before && success <= before + 120.0, "{success}");

    // 2: host4 fails, within the rest wave's budget: tolerated (exit 6).
    std::fs::write(fleet.root(4).join("fail"), "").unwrap();
    let out = apply(
        store.path(),
        &patch,
        &inventory,
        &["--metrics-file", &file_arg],
    );
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 3: another plan with no budget, written through the inventory's `metrics_file:`; host4
    //    fails again and its wave is rolled back.
    let mut with_setting = std::fs::read_to_string(&inventory).unwrap();
    with_setting.push_str(&format!("metrics_file: {file_arg}\n"));
    let inventory2 = fleet.dir().join("inventory-metrics.yaml");
    std::fs::write(&inventory2, with_setting).unwrap();
    let strict = plan(&fleet, "strict", 0);
    let out = apply(store.path(), &strict, &inventory2, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A check run changes nothing a dashboard of changes counts.
    let out = apply(store.path(), &patch, &inventory, &["--check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let text = std::fs::read_to_string(&file).unwrap();
    promtool_accepts(&text);
    assert!(
        !text.contains("# EOF") && !text.contains("# UNIT"),
        "{text}"
    );
    let (values, types) = samples(&text);
    for t in &types {
        assert!(t.ends_with(" gauge") || t.ends_with(" counter"), "{t}");
    }
    // The classic format names a counter's samples as its TYPE line does (OpenMetrics' `x` +
    // `x_total` would be read by the textfile collector as an untyped `x_total`).
    for series in values.keys() {
        let name = series.split('{').next().unwrap();
        assert!(
            types.iter().any(|t| t.split(' ').next() == Some(name)),
            "{name} has no TYPE line of its own"
        );
    }
    let get = |series: &str| -> f64 {
        *values
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    // patch: its latest run (2) was tolerated, with host4 failed; it succeeded once (run 1).
    assert_eq!(
        get(r#"sluice_run_status{plan="patch",status="tolerated"}"#),
        1.0
    );
    assert_eq!(
        get(r#"sluice_run_status{plan="patch",status="succeeded"}"#),
        0.0
    );
    assert_eq!(get(r#"sluice_run_hosts{outcome="ok",plan="patch"}"#), 3.0);
    assert_eq!(
        get(r#"sluice_run_hosts{outcome="failed",plan="patch"}"#),
        1.0
    );
    assert_eq!(
        get(r#"sluice_runs_total{plan="patch",status="succeeded"}"#),
        1.0
    );
    assert_eq!(
        get(r#"sluice_runs_total{plan="patch",status="tolerated"}"#),
        1.0
    );
    assert_eq!(
        get(r#"sluice_last_success_timestamp_seconds{plan="patch"}"#),
        success,
        "the last success is still run 1's"
    );
    let patch_duration = get(r#"sluice_run_duration_seconds{plan="patch"}"#);
    let canary = get(r#"sluice_wave_duration_seconds{plan="patch",wave="canary"}"#);
    let rest = get(r#"sluice_wave_duration_seconds{plan="patch",wave="rest"}"#);
    assert!(canary > 0.0 && rest > 0.0 && canary + rest <= patch_duration + 0.01);
    // strict: rolled back; the canary's host ok, the rest wave's three hosts undone.
    assert_eq!(
        get(r#"sluice_run_status{plan="strict",status="rolled_back"}"#),
        1.0
    );
    assert_eq!(
        get(r#"sluice_run_hosts{outcome="rolled_back",plan="strict"}"#),
        3.0
    );
    assert_eq!(get(r#"sluice_run_hosts{outcome="ok",plan="strict"}"#), 1.0);
    assert_eq!(
        get(r#"sluice_run_hosts{outcome="unreachable",plan="strict"}"#),
        0.0
    );
    assert!(!values.contains_key(r#"sluice_last_success_timestamp_seconds{plan="strict"}"#));
    assert!(
        values.keys().all(|k| !k.contains(r#"status="check""#)),
        "no check run is counted"
    );
    let runs: f64 = values
        .iter()
        .filter(|(k, _)| k.starts_with("sluice_runs_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(runs, 3.0, "three change runs; the check run is not one");

    // `sluice metrics` prints the same from the store; --out writes it atomically.
    let printed = sluice()
        .env("SLUICE_STATE_DIR", store.path())
        .arg("metrics")
        .output()
        .unwrap();
    assert_eq!(printed.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&printed.stdout), text);
    let copy = textfiles.path().join("copy.prom");
    let written = sluice()
        .env("SLUICE_STATE_DIR", store.path())
        .arg("metrics")
        .arg("--out")
        .arg(&copy)
        .output()
        .unwrap();
    assert_eq!(written.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), text);
    let leftovers: Vec<_> = std::fs::read_dir(textfiles.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "no temporary file is left: {leftovers:?}"
    );
}

/// A metrics file that cannot be written is reported; the run's exit code is the run's.
#[test]
fn an_unwritable_metrics_file_does_not_change_the_exit_code() {
    let fleet = Fleet::start(1).unwrap();
    let inventory = fleet.write_inventory().unwrap();
    let store = tempfile::tempdir().unwrap();
    let out = apply(
        store.path(),
        &plan(&fleet, "patch", 0),
        &inventory,
        &["--metrics-file", "/nonexistent-dir/sluice.prom"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("metrics not written") && stderr.contains("/nonexistent-dir/sluice.prom"),
        "{stderr}"
    );
}

/// An Ansible inventory sets the metrics file through group `all`'s `sluice_metrics_file`
/// (relative to the inventory, like `metrics_file:`); set on another group it is ignored with
/// a located warning.
#[test]
fn an_ansible_inventory_sets_the_metrics_file_through_group_all() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("metrics")).unwrap();
    let inventory = root.join("hosts.ini");
    std::fs::write(
        &inventory,
        format!(
            "[web]\nh1 ansible_connection=local sluice_workdir={0}/h1\n\
             h2 ansible_connection=local sluice_workdir={0}/h2\n\n\
             [all:vars]\nsluice_metrics_file=metrics/sluice.prom\n\n\
             [web:vars]\nsluice_metrics_file=/elsewhere/sluice.prom\n",
            root.display()
        ),
    )
    .unwrap();
    let plan = root.join("ansible-metrics.yaml");
    std::fs::write(
        &plan,
        "name: ansible-metrics\ntargets: [web]\nsteps:\n  - { id: touch, run: 'touch done' }\n",
    )
    .unwrap();

    let out = sluice()
        .arg("validate")
        .arg(&plan)
        .arg("-i")
        .arg(&inventory)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("sluice_metrics_file is set on group `web` and ignored")
            && stderr.contains("hosts.ini:9:"),
        "a located warning: {stderr}"
    );

    let store = tempfile::tempdir().unwrap();
    let out = apply(store.path(), &plan, &inventory, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(root.join("metrics/sluice.prom")).unwrap();
    promtool_accepts(&text);
    assert!(text.contains("plan=\"ansible-metrics\""), "{text}");
    assert!(!Path::new("/elsewhere/sluice.prom").exists());
}
