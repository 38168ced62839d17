//! The bad-input corpus: every file in tests/bad-input/ is refused with exactly the diagnostics
//! in its `.expected` file (one `severity: file:line:col: message (help)` per line).
//!
//! A plan `NAME.yaml` is checked against tests/bad-input/inventory.yaml; an inventory
//! `NAME.inventory.yaml` is checked with tests/bad-input/ok-plan.yaml. Run with `BLESS=1` to
//! write the `.expected` files after a deliberate change of wording, then review the diff.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/bad-input")
}

/// The diagnostics for one case, with the corpus directory removed from paths.
fn diagnose(plan: &Path, inventory: &Path) -> String {
    let dir = format!("{}/", corpus().display());
    match sluice_plan::compile_files(&plan.to_string_lossy(), &inventory.to_string_lossy(), &[]) {
        Ok(_) => "accepted\n".to_string(),
        Err(sluice_plan::PlanError::Invalid(diags)) => diags
            .iter()
            .map(|d| {
                let severity = if d.is_error() { "error" } else { "warning" };
                format!("{severity}: {d}\n").replace(&dir, "")
            })
            .collect(),
        Err(e) => format!("other error: {e}\n"),
    }
}

#[test]
fn every_bad_input_gets_its_expected_diagnostics() {
    let dir = corpus();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("inventory.yaml") && !p.ends_with("ok-plan.yaml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 30, "the corpus shrank to {}", cases.len());
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let start = Instant::now();
        let got = if name.ends_with(".inventory.yaml") {
            diagnose(&dir.join("ok-plan.yaml"), case)
        } else {
            diagnose(case, &dir.join("inventory.yaml"))
        };
        // Every limit must fail fast, not after expanding the input.
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{name} took {:?}",
            start.elapsed()
        );
        assert!(got.contains("error: "), "{name} was not refused: {got}");
        let expected_path = dir.join(name.replace(".yaml", ".expected"));
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!("{name}\n--- expected\n{expected}--- got\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn oversized_file_is_refused_before_parsing() {
    let dir = std::env::temp_dir().join(format!("sluice-oversize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big.yaml");
    let line = "# padding padding padding padding padding padding padding padding padding\n";
    std::fs::write(&big, line.repeat(17 * 1024 * 1024 / line.len() + 1)).unwrap();
    let start = Instant::now();
    let got = diagnose(&big, &corpus().join("inventory.yaml"));
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(got.contains("file is larger than 16 MiB"), "{got}");
    std::fs::remove_dir_all(&dir).unwrap();
}
