//! The live display on a real terminal: `sluice apply` runs under `script` (util-linux), which
//! gives it a pseudo-terminal of a set size, and its raw output is replayed through a terminal
//! emulator (the `vt100` crate) with scrollback. Whatever the progress bars drew and erased,
//! every line the run printed (each host's result, each wave's summary, the end) must still be
//! on the final screen or in the scrollback, exactly once, and no bar may be left behind.
//!
//! Regression: indicatif reaps finished bars that were dropped ("zombies") and, when the next
//! line is printed above the bars, counts their lines twice, so it moved the cursor up past the
//! bars and erased the last lines printed (the last wave's `Ok` lines and `Wave rest ok`).

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Terminal widths the issue saw the bug at.
const WIDTHS: [u16; 3] = [80, 120, 200];
/// A small screen, so most of the run scrolls into the scrollback.
const ROWS: u16 = 24;

/// What a run must leave on the terminal.
struct Expected {
    /// Host name and whether it succeeded.
    hosts: Vec<(String, bool)>,
    /// Summaries as `Wave NAME STATUS:` shows them (`canary ok`).
    waves: Vec<String>,
    /// Other lines that must be shown once (their start).
    others: Vec<String>,
    exit_code: i32,
}

/// One workload: a plan and an inventory in a folder of their own, run from that folder.
struct Workload {
    dir: PathBuf,
    plan: PathBuf,
    inventory: PathBuf,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scratch(name: &str, cols: u16) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("live-display-{name}-{cols}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The README's first command: the embedded demo (three waves, a pause) on its local fleet.
fn demo(cols: u16) -> Workload {
    let dir = scratch("demo", cols);
    for (folder, file) in [
        ("playbooks", "demo-rolling-patch.yaml"),
        ("inventory", "demo.yaml"),
    ] {
        std::fs::create_dir_all(dir.join(folder)).unwrap();
        std::fs::copy(repo().join(folder).join(file), dir.join(folder).join(file)).unwrap();
    }
    Workload {
        plan: dir.join("playbooks/demo-rolling-patch.yaml"),
        inventory: dir.join("inventory/demo.yaml"),
        dir,
    }
}

/// Ten hosts in four waves, the last one with a failure its budget tolerates.
fn four_waves(cols: u16) -> Workload {
    let dir = scratch("waves", cols);
    let names: Vec<String> = (1..=10).map(|i| format!("h{i:02}")).collect();
    let mut inventory = String::from("defaults: { transport: local }\nhosts:\n");
    for name in &names {
        inventory.push_str(&format!("  {name}: {{ workdir: ./hosts/{name} }}\n"));
    }
    inventory.push_str(&format!(
        "groups:\n  fleet: {{ hosts: [{}] }}\n",
        names.join(", ")
    ));
    std::fs::write(dir.join("inventory.yaml"), inventory).unwrap();
    std::fs::write(
        dir.join("plan.yaml"),
        "name: display-waves\n\
         targets: [fleet]\n\
         waves:\n\
         \x20 - { name: canary, size: 1 }\n\
         \x20 - { name: early, size: 2 }\n\
         \x20 - { name: middle, size: 3 }\n\
         \x20 - { name: rest, size: 100%, max_failed: 1 }\n\
         failure: { max_failed: 0, action: rollback, rollback_scope: wave }\n\
         steps:\n\
         \x20 - id: install\n\
         \x20   run: \"sleep 0.3 && test {{host.name}} != h09 && touch installed\"\n\
         \x20   undo: \"rm -f installed\"\n",
    )
    .unwrap();
    Workload {
        plan: dir.join("plan.yaml"),
        inventory: dir.join("inventory.yaml"),
        dir,
    }
}

/// Runs `sluice apply` on a `cols`-wide terminal; returns its raw output and exit code.
fn run_on_terminal(work: &Workload, cols: u16) -> (Vec<u8>, i32) {
    let inner = format!(
        "stty cols {cols} rows {ROWS} && exec {} apply {} -i {} --yes --state-dir {}",
        env!("CARGO_BIN_EXE_sluice"),
        work.plan.display(),
        work.inventory.display(),
        work.dir.join("state").display()
    );
    let out = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .current_dir(&work.dir)
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("SLUICE_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    // `script` exits with the command's status (-e).
    (out.stdout, out.status.code().unwrap_or(-1))
}

/// Every line of the emulated terminal: the scrollback, oldest first, then the screen.
fn transcript(raw: &[u8], cols: u16) -> Vec<String> {
    let mut parser = vt100::Parser::new(ROWS, cols, 10_000);
    parser.process(raw);
    let screen = parser.screen_mut();
    screen.set_scrollback(usize::MAX);
    let kept = screen.scrollback();
    let mut lines = Vec::new();
    // Scrolled back by `offset` rows, the top row is the scrollback's line `kept - offset`.
    for offset in (1..=kept).rev() {
        screen.set_scrollback(offset);
        lines.extend(screen.rows(0, cols).next());
    }
    screen.set_scrollback(0);
    lines.extend(screen.rows(0, cols));
    lines.iter().map(|l| l.trim_end().to_string()).collect()
}

fn count(lines: &[String], prefix: &str) -> usize {
    lines
        .iter()
        .filter(|l| l.trim_start().starts_with(prefix))
        .count()
}

fn check(name: &str, workload: fn(u16) -> Workload, expected: &Expected) {
    assert!(
        Command::new("script").arg("--version").output().is_ok(),
        "this test needs `script` (util-linux) to give sluice a terminal: apt-get install util-linux (scripts/test.sh installs it)"
    );
    let runs: Vec<_> = WIDTHS
        .iter()
        .map(|&cols| {
            std::thread::spawn(move || {
                let work = workload(cols);
                let (raw, code) = run_on_terminal(&work, cols);
                (cols, raw, code)
            })
        })
        .collect();
    for run in runs {
        let (cols, raw, code) = run.join().unwrap();
        let lines = transcript(&raw, cols);
        let shown = lines.join("\n");
        assert_eq!(
            code, expected.exit_code,
            "{name} at {cols} columns:\n{shown}"
        );
        // The bars were drawn (this is the live display, not plain lines)...
        assert!(
            String::from_utf8_lossy(&raw).contains("Overall"),
            "{name} at {cols} columns drew no bars:\n{shown}"
        );
        // ...and none is left on the terminal.
        assert_eq!(count(&lines, "Overall ["), 0, "{name} at {cols}:\n{shown}");
        for (host, ok) in &expected.hosts {
            let line = if *ok {
                format!("Ok {host}: ok in ")
            } else {
                format!("Failed {host}: ")
            };
            assert_eq!(
                count(&lines, &line),
                1,
                "{name} at {cols} columns: `{line}` must be shown once:\n{shown}"
            );
        }
        for wave in &expected.waves {
            let line = format!("Wave {wave}: ");
            assert_eq!(
                count(&lines, &line),
                1,
                "{name} at {cols} columns: the summary of wave {wave} must be shown once:\n{shown}"
            );
        }
        for line in &expected.others {
            assert_eq!(
                count(&lines, line),
                1,
                "{name} at {cols}: `{line}`:\n{shown}"
            );
        }
        assert_eq!(count(&lines, "Finished "), 1, "{name} at {cols}:\n{shown}");
        assert_eq!(count(&lines, "Result: "), 1, "{name} at {cols}:\n{shown}");
    }
}

#[test]
fn the_demo_rollout_leaves_every_result_on_the_terminal() {
    let expected = Expected {
        hosts: (1..=6).map(|i| (format!("demo-{i}"), true)).collect(),
        waves: ["canary ok", "early ok", "rest ok"]
            .map(String::from)
            .to_vec(),
        others: vec!["Pause soaking 3.0s after early".to_string()],
        exit_code: 0,
    };
    check("demo", demo, &expected);
}

#[test]
fn a_four_wave_rollout_with_a_tolerated_failure_leaves_every_result_on_the_terminal() {
    let expected = Expected {
        hosts: (1..=10).map(|i| (format!("h{i:02}"), i != 9)).collect(),
        waves: ["canary ok", "early ok", "middle ok", "rest ok"]
            .map(String::from)
            .to_vec(),
        others: vec!["Decision continue [rest]: 1 failed hosts within max_failed 1".to_string()],
        // Tolerated failures exit 6 (docs/operations.md).
        exit_code: 6,
    };
    check("four waves", four_waves, &expected);
}
