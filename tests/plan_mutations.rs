//! A malformed corpus made from the example plans and inventories: every playbook and the
//! inventories cut short, with lines dropped, doubled or indented wrong, with bytes changed to
//! what breaks YAML, templates and shells, and with a line far past what a terminal shows. Each
//! goes through `sluice validate` (and a sample through `plan` in every format): the answer is
//! exit 0 or 2, never a panic (exit 101), whatever the input. The hand-written cases with their
//! expected diagnostics are tests/plan_bad_input.rs.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const PLAYBOOKS: &[(&str, &str)] = &[
    ("playbooks/openssl-patch.yaml", "inventory/prod.yaml"),
    ("playbooks/kernel-update.yaml", "inventory/prod.yaml"),
    ("playbooks/nginx-config.yaml", "inventory/prod.yaml"),
    ("playbooks/demo-rolling-patch.yaml", "inventory/demo.yaml"),
    ("playbooks/demo-canary-fails.yaml", "inventory/demo.yaml"),
];

/// Bytes that mean something to YAML, to the template language or to a shell.
const SPLICES: &[&str] = &[
    "{{", "}}", "{{raw", ":", "- ", "[", "]", "{", "}", "&a", "*a", "!!binary", "\t", "'", "\"",
    "`", "$(", "\\", "\0", "\r", "#", "%", "|", ">", "\u{feff}", "é", "\u{202e}",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One malformed version of a file: its name (for the report) and its text.
struct Mutant {
    name: String,
    text: String,
}

/// Every mutant of `text`, deterministic: the same corpus on every machine.
fn mutants(label: &str, text: &str) -> Vec<Mutant> {
    let mut out = Vec::new();
    let mut push = |what: String, text: String| {
        out.push(Mutant {
            name: format!("{label} {what}"),
            text,
        })
    };
    let bytes = text.as_bytes();
    // Cut short at 24 points, mid-token included (on a char boundary: the file stays UTF-8 so
    // the parser, not the reader, sees it).
    for i in 1..=24 {
        let mut at = bytes.len() * i / 25;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        push(format!("cut at byte {at}"), text[..at].to_string());
    }
    let lines: Vec<&str> = text.lines().collect();
    for (i, _) in lines.iter().enumerate() {
        let join = |ls: Vec<&str>| ls.join("\n") + "\n";
        let mut dropped = lines.clone();
        dropped.remove(i);
        push(format!("line {} dropped", i + 1), join(dropped));
        let mut doubled = lines.clone();
        doubled.insert(i, lines[i]);
        push(format!("line {} doubled", i + 1), join(doubled));
        let mut indented = lines.clone();
        let shifted = format!("   {}", lines[i]);
        indented[i] = &shifted;
        push(format!("line {} indented", i + 1), join(indented));
    }
    // Each splice after the first colon of every fifth line, and at the end of it.
    for (i, line) in lines.iter().enumerate().step_by(5) {
        for splice in SPLICES {
            let at = line.find(':').map_or(line.len(), |c| c + 1);
            let mut changed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            changed[i] = format!("{}{splice}{}", &line[..at], &line[at..]);
            push(
                format!("line {} spliced with {splice:?}", i + 1),
                changed.join("\n") + "\n",
            );
        }
    }
    // A line past what miette's renderer can point into (it panicked past column ~65,500).
    let long = format!("{text}\nlong: {}{{{{oops\n", "x".repeat(70_000));
    push("with a 70,000-column line".into(), long);
    out
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
}

fn sluice(args: &[&str]) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .env(
            "SLUICE_STATE_DIR",
            root().join("tests/fixtures/no-audit-store"),
        )
        .output()
        .unwrap();
    Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A panic (exit 101, or the panic message) or an exit outside 0 and 2, with the input named.
fn judged(mutant: &str, command: &str, out: &Outcome) -> Option<String> {
    let ok = matches!(out.code, Some(0 | 2)) && !out.stderr.contains("panicked");
    (!ok).then(|| {
        format!(
            "{mutant}: sluice {command} exited {:?}\n{}",
            out.code,
            out.stderr.chars().take(1_500).collect::<String>()
        )
    })
}

/// Runs `check` over `cases` on every core, gathering what it reports.
fn in_parallel<T: Sync>(cases: &[T], check: impl Fn(&T) -> Option<String> + Sync) -> Vec<String> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = cases.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().filter_map(&check).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sluice-mutations-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A case: a mutant written to a file, checked against an inventory (or a plan, when the
/// inventory is the mutant).
struct Case {
    name: String,
    plan: PathBuf,
    inventory: PathBuf,
}

fn write_cases(dir: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    for (p, (plan, inventory)) in PLAYBOOKS.iter().enumerate() {
        let text = std::fs::read_to_string(root().join(plan)).unwrap();
        for (i, m) in mutants(plan, &text).into_iter().enumerate() {
            let file = dir.join(format!("plan-{p}-{i}.yaml"));
            std::fs::write(&file, &m.text).unwrap();
            cases.push(Case {
                name: m.name,
                plan: file,
                inventory: root().join(inventory),
            });
        }
    }
    let inventory = "inventory/prod.yaml";
    let text = std::fs::read_to_string(root().join(inventory)).unwrap();
    for (i, m) in mutants(inventory, &text).into_iter().enumerate() {
        let file = dir.join(format!("inventory-{i}.yaml"));
        std::fs::write(&file, &m.text).unwrap();
        cases.push(Case {
            name: m.name,
            plan: root().join("playbooks/openssl-patch.yaml"),
            inventory: file,
        });
    }
    cases
}

#[test]
fn no_malformed_plan_or_inventory_makes_sluice_panic() {
    let dir = scratch();
    let cases = write_cases(&dir);
    assert!(cases.len() > 700, "the corpus shrank to {}", cases.len());
    let failures = in_parallel(&cases, |c| {
        let (plan, inventory) = (c.plan.to_string_lossy(), c.inventory.to_string_lossy());
        judged(
            &c.name,
            "validate",
            &sluice(&["validate", &plan, "-i", &inventory]),
        )
    });
    // `plan` compiles as `validate` and `apply` do, then renders: every 5th case in each
    // format. (`apply` compiles through the same function as `validate`; tests/plan_bad_input.rs
    // runs it over the hand-written corpus.)
    let sample: Vec<&Case> = cases.iter().step_by(5).collect();
    let more = in_parallel(&sample, |c| {
        let (plan, inventory) = (c.plan.to_string_lossy(), c.inventory.to_string_lossy());
        ["text", "markdown", "html", "json"]
            .iter()
            .find_map(|format| {
                let args = ["plan", &plan, "-i", &inventory, "--format", format];
                judged(&c.name, &format!("plan --format {format}"), &sluice(&args))
            })
    });
    let _ = std::fs::remove_dir_all(&dir);
    let failures: Vec<String> = failures.into_iter().chain(more).collect();
    assert!(
        failures.is_empty(),
        "{} of {} malformed inputs were not answered with exit 0 or 2:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
