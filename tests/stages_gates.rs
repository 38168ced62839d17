//! Gates, pauses, windows and leases in plans with stages (`sluice apply` of a YAML plan over
//! the local transport, every host a directory): an approval gate in the second stage, a pause
//! between a stage's waves, a pause between stages, a window that closes during the second stage, and leases on the
//! hosts of every stage from the start of the run.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::events;

/// A directory with the inventory, the hosts' directories and one audit store for every
/// command of the test.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: support::stage_hosts::directory(),
        }
    }

    fn sluice(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.current_dir(self.dir.path())
            .env("SLUICE_STATE_DIR", self.dir.path().join("store"))
            .stdin(Stdio::null());
        cmd
    }

    /// `sluice apply --yes --json` of `yaml`, saved as `name.yaml`.
    fn apply_cmd(&self, name: &str, yaml: &str) -> Command {
        std::fs::write(self.dir.path().join(format!("{name}.yaml")), yaml).unwrap();
        let mut cmd = self.sluice();
        cmd.args(["apply", &format!("{name}.yaml"), "-i", "inventory.yaml"])
            .args(["--yes", "--json"]);
        cmd
    }

    fn spawn(&self, name: &str, yaml: &str) -> Child {
        self.apply_cmd(name, yaml)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn read(&self, args: &[&str]) -> Output {
        self.sluice().args(args).output().unwrap()
    }

    /// The run's records as `sluice show RUN --json` prints them.
    fn records(&self, run: &str) -> Vec<serde_json::Value> {
        let out = self.read(&["show", run, "--json"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits (at most 20 s) until the only run of the store has a record `kind`.
    fn wait_for_record(&self, kind: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.read(&["runs", "--json"]);
            let run = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find_map(|r| r["run"].as_str().map(str::to_string));
            if let Some(run) = run
                && self.records(&run).iter().any(|r| r["kind"] == kind)
            {
                return run;
            }
            assert!(Instant::now() < deadline, "no {kind} record after 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn path(&self, host: &str, name: &str) -> PathBuf {
        self.dir.path().join("state").join(host).join(name)
    }

    /// A timestamp (ns since the epoch) a host wrote with `date +%s%N`.
    fn stamp(&self, host: &str, name: &str) -> u128 {
        let text = std::fs::read_to_string(self.path(host, name))
            .unwrap_or_else(|_| panic!("{host} wrote no {name}"));
        text.trim().parse().unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn of_kind<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// The `status` of each `stage_finished`, by stage.
fn stage_status(events: &[serde_json::Value], stage: &str) -> String {
    of_kind(events, "stage_finished")
        .into_iter()
        .find(|e| e["stage"] == stage)
        .unwrap_or_else(|| panic!("no stage_finished for {stage}"))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A wave `approval` gate in the second stage: the run waits there (the first stage done, the
/// gated wave not started), `sluice approve RUN --wave second/rest` releases it, and the
/// records name the stage.
#[test]
fn an_approval_gate_in_the_second_stage_waits_for_sluice_approve() {
    let f = Fixture::new();
    let plan = r#"name: gated-stages
stages:
  - name: first
    targets: [lb]
    steps: [{ id: a, run: "echo a >> log" }]
  - name: second
    targets: [app]
    waves: [{ name: one, size: 1 }, { name: rest, size: 100%, approval: true }]
    steps: [{ id: b, run: "echo b >> log" }]
"#;
    let child = f.spawn("gated", plan);
    let run = f.wait_for_record("approval_requested");
    assert!(f.path("h1", "log").exists(), "the first stage ran");
    assert!(
        f.path("h2", "log").exists(),
        "the second stage's first wave ran"
    );
    assert!(!f.path("h3", "log").exists(), "the gated wave waits");
    let approve = f.read(&["approve", &run, "--wave", "second/rest", "--by", "bob"]);
    assert!(approve.status.success(), "{}", text(&approve));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(f.path("h4", "log").exists());

    let records = f.records(&run);
    let asked = of_kind(&records, "approval_requested");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["wave"], "second/rest");
    assert_eq!(asked[0]["stage"], "second");
    let given = of_kind(&records, "approval");
    let given: Vec<_> = given.iter().filter(|r| r["scope"] == "wave").collect();
    assert_eq!(given.len(), 1);
    assert_eq!(
        (&given[0]["wave"], &given[0]["by"]),
        (&"second/rest".into(), &"bob".into())
    );
}

/// A `pause` after a wave of the second stage holds its next wave for the pause, and the
/// pause's events name the stage.
#[test]
fn a_pause_between_waves_of_a_stage_holds_the_next_wave() {
    let f = Fixture::new();
    let plan = r#"name: paused-stages
stages:
  - name: first
    targets: [lb]
    steps: [{ id: a, run: "true" }]
  - name: second
    targets: [app]
    waves: [{ name: one, size: 1, pause: 1s }, { name: rest, size: 100% }]
    steps: [{ id: b, run: "date +%s%N > start; date +%s%N > end" }]
"#;
    let out = f.apply_cmd("paused", plan).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let gap = f.stamp("h3", "start").saturating_sub(f.stamp("h2", "end"));
    assert!(gap >= 1_000_000_000, "the next wave started {gap} ns after");
    let events = events(&out);
    let started = of_kind(&events, "pause_started");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["after_wave"], "second/one");
    assert_eq!(started[0]["stage"], "second");
    assert_eq!(of_kind(&events, "pause_finished")[0]["stage"], "second");
}

/// A `pause` on a stage's last wave holds the stages that wait for the stage: the second stage
/// starts a pause after the first one's last host ended. The last stage's pause, which nothing
/// waits for, does nothing.
#[test]
fn a_pause_on_a_stages_last_wave_holds_the_stages_after_it() {
    let f = Fixture::new();
    let plan = r#"name: paused-between-stages
stages:
  - name: first
    targets: [lb]
    waves: [{ name: all, size: 100%, pause: 1s }]
    steps: [{ id: a, run: "date +%s%N > end" }]
  - name: second
    targets: [app]
    waves: [{ name: all, size: 100%, pause: 1s }]
    steps: [{ id: b, run: "date +%s%N > start" }]
"#;
    let out = f.apply_cmd("paused-between", plan).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let gap = f.stamp("h2", "start").saturating_sub(f.stamp("h1", "end"));
    assert!(
        gap >= 1_000_000_000,
        "the second stage started {gap} ns after"
    );
    let events = events(&out);
    let started = of_kind(&events, "pause_started");
    assert_eq!(started.len(), 1, "{started:#?}");
    assert_eq!(started[0]["after_wave"], "first/all");
    assert_eq!(started[0]["stage"], "first");
    assert_eq!(started[0]["duration_ms"], 1000);
    assert_eq!(of_kind(&events, "pause_finished")[0]["stage"], "first");
}

/// The window closes while the second stage runs: no new host starts, the run ends
/// `window_closed` (exit 4) and the third stage does not start.
#[test]
fn a_window_closing_during_the_second_stage_stops_the_run() {
    let f = Fixture::new();
    let now = jiff::Timestamp::now();
    let start = now - jiff::SignedDuration::from_secs(3600);
    let end = now + jiff::SignedDuration::from_secs(4);
    let plan = format!(
        r#"name: windowed-stages
window: {{ start: "{start}", end: "{end}" }}
stages:
  - name: first
    targets: [lb]
    steps: [{{ id: a, run: "echo a >> log" }}]
  - name: second
    targets: [app]
    waves: [{{ name: one, size: 1 }}, {{ name: two, size: 1 }}, {{ name: rest, size: 100% }}]
    steps: [{{ id: b, run: "sleep 2.5; echo b >> log" }}]
  - name: third
    targets: [db]
    steps: [{{ id: c, run: "echo c >> log" }}]
"#
    );
    let out = f.apply_cmd("windowed", &plan).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let events = events(&out);
    let finished = of_kind(&events, "run_finished");
    assert_eq!(finished[0]["status"], "window_closed");
    assert_eq!(stage_status(&events, "first"), "ok");
    assert_ne!(stage_status(&events, "second"), "ok");
    assert_eq!(stage_status(&events, "third"), "not_started");
    assert!(f.path("h2", "log").exists(), "the second stage started");
    assert!(
        !f.path("h4", "log").exists(),
        "no host started after the window closed"
    );
    for h in ["h5", "h6"] {
        assert!(!f.path(h, "log").exists(), "{h} of the third stage ran");
    }
    assert!(
        of_kind(&events, "stage_started")
            .iter()
            .all(|e| e["stage"] != "third"),
        "the third stage did not start"
    );
}

/// A run leases the hosts of every stage when it starts: while its first stage runs, another
/// apply on a host only its last stage targets is refused and changes nothing.
#[test]
fn leases_cover_the_hosts_of_every_stage_from_the_start() {
    let f = Fixture::new();
    let plan = r#"name: leased-stages
stages:
  - name: first
    targets: [lb]
    steps: [{ id: a, run: "sleep 2" }]
  - name: last
    targets: [h6]
    steps: [{ id: c, run: "echo c >> log" }]
"#;
    let first = f.spawn("leased", plan);
    let run = f.wait_for_record("stage_started");
    let other = "name: other\ntargets: [h6]\nsteps: [{ id: x, run: \"echo other >> log\" }]\n";
    let second = f.apply_cmd("other", other).output().unwrap();
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    let err = text(&second);
    assert!(err.contains("h6") && err.contains("leased by run"), "{err}");
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert_eq!(
        std::fs::read_to_string(f.path("h6", "log")).unwrap(),
        "c\n",
        "only the leasing run's step ran on h6"
    );
    let taken = of_kind(&f.records(&run), "lease_taken")[0]["hosts"].clone();
    assert_eq!(taken, serde_json::json!(["h1", "h6"]));
}
