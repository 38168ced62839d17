//! End-to-end tests of `sluice plan` and `sluice validate` on the example playbooks.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn sluice() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    c.env("NO_COLOR", "1");
    c
}

#[test]
fn validate_accepts_every_example_playbook() {
    for plan in ["openssl-patch", "kernel-update", "nginx-config"] {
        for inv in ["staging", "prod"] {
            let out = sluice()
                .args([
                    "validate",
                    &format!("playbooks/{plan}.yaml"),
                    "-i",
                    &format!("inventory/{inv}.yaml"),
                ])
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{plan} on {inv}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn plan_output(args: &[&str]) -> (Option<i32>, String, String) {
    let out = sluice().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The human review a change board reads, for every example playbook against prod.
#[test]
fn plan_review_of_every_example_playbook() {
    for plan in ["openssl-patch", "kernel-update", "nginx-config"] {
        let (code, stdout, stderr) = plan_output(&[
            "plan",
            &format!("playbooks/{plan}.yaml"),
            "-i",
            "inventory/prod.yaml",
        ]);
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(stdout, "", "the human review goes to stderr");
        insta::assert_snapshot!(format!("plan-{plan}-prod"), stderr);
    }
}

/// The inventory each playbook that is not a prod/staging example is written for.
const OTHER_PLAYBOOKS: &[(&str, &str)] = &[
    ("demo-rolling-patch", "inventory/demo.yaml"),
    ("demo-canary-fails", "inventory/demo.yaml"),
    (
        "bench-rolling-patch",
        "tests/fixtures/bench-fleet.inventory.yaml",
    ),
];

/// The demo and benchmark playbooks get a reviewed snapshot too.
#[test]
fn plan_review_of_demo_and_bench_playbooks() {
    for (plan, inventory) in OTHER_PLAYBOOKS {
        let (code, stdout, stderr) =
            plan_output(&["plan", &format!("playbooks/{plan}.yaml"), "-i", inventory]);
        assert_eq!(code, Some(0), "{plan}: {stderr}");
        assert_eq!(stdout, "", "the human review goes to stderr");
        insta::assert_snapshot!(format!("plan-{plan}"), stderr);
    }
}

/// A playbook added to playbooks/ without a snapshot test fails here, so its review is seen.
#[test]
fn every_playbook_has_a_snapshot_test() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../playbooks");
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut covered: Vec<String> = ["openssl-patch", "kernel-update", "nginx-config"]
        .iter()
        .chain(OTHER_PLAYBOOKS.iter().map(|(p, _)| p))
        .map(|p| p.to_string())
        .collect();
    covered.sort();
    assert_eq!(
        found, covered,
        "add the new playbook to a snapshot test in tests/plan.rs"
    );
}

/// Staging has fewer hosts than the waves ask for: the empty waves are reported and dropped.
#[test]
fn plan_on_a_small_inventory_warns_about_empty_waves() {
    let (code, _, stderr) = plan_output(&[
        "plan",
        "playbooks/openssl-patch.yaml",
        "-i",
        "inventory/staging.yaml",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    insta::assert_snapshot!("plan-openssl-patch-staging", stderr);
}

#[test]
fn validate_exits_2_with_located_diagnostics() {
    let (code, stdout, stderr) = plan_output(&[
        "validate",
        "tests/bad-input/cycle.yaml",
        "-i",
        "tests/bad-input/inventory.yaml",
    ]);
    assert_eq!(code, Some(2));
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("drain -> install -> restart -> drain"),
        "{stderr}"
    );
    assert!(
        stderr.contains("tests/bad-input/cycle.yaml:4:5"),
        "{stderr}"
    );
    assert!(
        stderr.contains("4 │   - { id: drain"),
        "caret excerpt missing: {stderr}"
    );
}

#[test]
fn json_and_out_give_the_same_sealed_artifact() {
    let dir = std::env::temp_dir().join(format!("sluice-plan-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("plan.json");
    let (code, stdout, stderr) = plan_output(&[
        "plan",
        "playbooks/openssl-patch.yaml",
        "-i",
        "inventory/prod.yaml",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let saved = sluice_plan::load_artifact(out.to_str().unwrap()).unwrap();
    assert_eq!(printed["plan_hash"], saved.plan_hash.as_str());
    assert!(
        stderr.contains(&saved.plan_hash),
        "the hash is reported: {stderr}"
    );
    // The artifact holds where the secret comes from, never a value.
    assert!(stdout.contains("LB_TOKEN"));
    // Editing the saved artifact is detected.
    let text = std::fs::read_to_string(&out)
        .unwrap()
        .replace("systemctl restart app", "rm -rf /");
    std::fs::write(&out, text).unwrap();
    let err = sluice_plan::load_artifact(out.to_str().unwrap()).unwrap_err();
    assert!(
        matches!(err, sluice_plan::PlanError::ArtifactTampered { .. }),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn var_on_the_command_line_wins() {
    let (code, stdout, _) = plan_output(&[
        "plan",
        "playbooks/openssl-patch.yaml",
        "-i",
        "inventory/staging.yaml",
        "--json",
        "--var",
        "version=a; rm -rf /",
    ]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains(r"openssl='a; rm -rf /'"),
        "values stay one quoted word"
    );
}

#[test]
fn dot_prints_the_execution_graph() {
    let (code, stdout, _) = plan_output(&[
        "plan",
        "playbooks/nginx-config.yaml",
        "-i",
        "inventory/staging.yaml",
        "--dot",
    ]);
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("digraph \"nginx-worker-connections\""));
    assert!(stdout.contains("announce (run_once on stg-web-1)"));
    assert!(stdout.contains("stg-web-2: reload"));
}
