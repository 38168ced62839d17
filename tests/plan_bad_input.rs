//! The bad-input corpus: every file in tests/bad-input/ is refused with exactly the diagnostics
//! in its `.expected` file (one `severity: file:line:col: message (help)` per line).
//!
//! A plan `NAME.yaml` is checked against tests/bad-input/inventory.yaml, with the `--var`
//! values of `NAME.vars.json` when there is one (JSON, so a value can hold any character); an
//! inventory `NAME.inventory.yaml` is checked with tests/bad-input/ok-plan.yaml. Run with
//! `BLESS=1` to write the `.expected` files after a deliberate change of wording, then review
//! the diff.
//!
//! Then every command that reads a plan (`validate`, `plan`, `apply --yes`) runs over the whole
//! corpus: none may panic, and each refuses with the invalid-input exit code.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/bad-input")
}

/// One case of the corpus: the plan and inventory to check together, and `--var` values.
struct Case {
    name: String,
    plan: PathBuf,
    inventory: PathBuf,
    vars: Vec<(String, String)>,
}

fn cases() -> Vec<Case> {
    let dir = corpus();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("inventory.yaml") && !p.ends_with("ok-plan.yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let vars_file = dir.join(name.replace(".yaml", ".vars.json"));
            let vars = match std::fs::read_to_string(&vars_file) {
                Ok(text) => {
                    let map: std::collections::BTreeMap<String, String> =
                        serde_json::from_str(&text).unwrap();
                    map.into_iter().collect()
                }
                Err(_) => Vec::new(),
            };
            let (plan, inventory) = if name.ends_with(".inventory.yaml") {
                (dir.join("ok-plan.yaml"), path)
            } else {
                (path, dir.join("inventory.yaml"))
            };
            Case {
                name,
                plan,
                inventory,
                vars,
            }
        })
        .collect()
}

/// The diagnostics for one case, with the corpus directory removed from paths.
fn diagnose(plan: &Path, inventory: &Path, vars: &[(String, String)]) -> String {
    let dir = format!("{}/", corpus().display());
    let options = sluice_plan::CompileOptions {
        vars: vars.to_vec(),
        ..Default::default()
    };
    let inventory = sluice_plan::inventory::InventoryInput::new(inventory.to_string_lossy());
    match sluice_plan::compile_files(&plan.to_string_lossy(), &inventory, &options) {
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
    let cases = cases();
    assert!(cases.len() >= 45, "the corpus shrank to {}", cases.len());
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let name = &case.name;
        let start = Instant::now();
        let got = diagnose(&case.plan, &case.inventory, &case.vars);
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

/// The exit code of a refusal for bad input (docs/operations.md).
const EXIT_INVALID_INPUT: i32 = 2;

/// `sluice ARGS` with an audit store of its own under cargo's scratch folder.
fn sluice(args: &[&str]) -> std::process::Output {
    let store = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sluice-bad-input-store-{}", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(corpus().join("../.."))
        .env("SLUICE_STATE_DIR", store)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// Issue 16: an error past column 65,535 made miette's renderer panic in every command. Every
/// command that reads a plan is run over the whole corpus: exit 101 or "panicked" is a failure.
/// `apply` is run with the case's inventory and with the local demo inventory. Cases with a
/// `.vars.json` file are left out: they are bad only with their `--var` values, and a NUL byte
/// cannot be passed on a command line.
#[test]
fn no_command_panics_on_bad_input() {
    let mut failures = Vec::new();
    let demo = corpus().join("../../inventory/demo.yaml");
    for case in cases().into_iter().filter(|c| c.vars.is_empty()) {
        let plan = case.plan.to_string_lossy().to_string();
        let inventory = case.inventory.to_string_lossy().to_string();
        let demo = demo.to_string_lossy().to_string();
        let runs: [&[&str]; 4] = [
            &["validate", &plan, "-i", &inventory],
            &["plan", &plan, "-i", &inventory],
            &["apply", &plan, "-i", &inventory, "--yes"],
            &["apply", &plan, "-i", &demo, "--yes"],
        ];
        for args in runs {
            let out = sluice(args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() != Some(EXIT_INVALID_INPUT) || stderr.contains("panicked") {
                failures.push(format!(
                    "{}: sluice {} exited {:?}\n{}",
                    case.name,
                    args[0],
                    out.status.code(),
                    stderr.chars().take(2_000).collect::<String>()
                ));
            }
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
    let got = diagnose(&big, &corpus().join("inventory.yaml"), &[]);
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(got.contains("file is larger than 16 MiB"), "{got}");
    std::fs::remove_dir_all(&dir).unwrap();
}
