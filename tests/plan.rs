//! End-to-end tests of `sluice plan` and `sluice validate` on the example playbooks.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/playbooks.rs"]
mod playbooks;

use playbooks::{PLAYBOOKS, review_args, sluice};

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

fn plan_output<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (Option<i32>, String, String) {
    let out = sluice().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The review a change board reads goes to stdout, complete, for every playbook; warnings go
/// to stderr as well.
#[test]
fn text_review_of_every_playbook() {
    for (plan, inventory) in PLAYBOOKS {
        let (code, stdout, stderr) = plan_output(&review_args(plan, inventory, "text"));
        assert_eq!(code, Some(0), "{plan}: {stderr}");
        assert!(stdout.starts_with("Change "), "the review goes to stdout");
        assert!(!stderr.contains("Change "), "{plan}: {stderr}");
        insta::assert_snapshot!(format!("review-text-{plan}"), stdout);
    }
}

/// The Markdown review, to paste into a ticket, for every playbook.
#[test]
fn markdown_review_of_every_playbook() {
    for (plan, inventory) in PLAYBOOKS {
        let (code, stdout, stderr) = plan_output(&review_args(plan, inventory, "markdown"));
        assert_eq!(code, Some(0), "{plan}: {stderr}");
        insta::assert_snapshot!(format!("review-markdown-{plan}"), stdout);
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
    let mut covered: Vec<String> = PLAYBOOKS.iter().map(|(p, _)| p.to_string()).collect();
    covered.sort();
    assert_eq!(
        found, covered,
        "add the new playbook to PLAYBOOKS in tests/support/playbooks.rs"
    );
}

/// Staging has fewer hosts than the waves ask for: the empty waves are reported (stderr, and
/// in the review) and dropped.
#[test]
fn plan_on_a_small_inventory_warns_about_empty_waves() {
    let (code, stdout, stderr) = plan_output(&review_args(
        "openssl-patch",
        "inventory/staging.yaml",
        "text",
    ));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("[empty_wave]"), "{stderr}");
    insta::assert_snapshot!("plan-openssl-patch-staging", stdout);
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
