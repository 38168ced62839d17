//! End-to-end tests of plans with `stages:` and `run_once:` steps run over several processes
//! (issue 18, part 2): `sluice apply --workers` keeps the stage sequencing and the run_once
//! pseudo-wave in the coordinator and hands their hosts to `sluice worker` processes, on a real
//! sshd fleet (sluice-testfleet) and a real PostgreSQL store (sluice-testpg). The same plan is
//! also applied in one process on the same store, and the two runs' records compared.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use sluice_testfleet::Fleet;
use sluice_testpg::PgCluster;

mod support;
use support::events;
use support::workers::*;

/// How long a run of these tests may take (each takes seconds): a coordinator that waits for a
/// task no worker ends fails the test instead of hanging it.
const LIMIT: Duration = Duration::from_secs(120);

/// Three stages over four hosts: `prep` (host1, host2) registers a value in a `run_once` step
/// that `main` (every host, canary first) uses; `post` (host3) comes last. `main`'s install
/// fails on a host whose root holds a file `fail`.
const STAGED: &str = r#"name: staged-workers
failure: { max_failed: 0, action: rollback }
stages:
  - name: prep
    targets: [host1, host2]
    steps:
      - id: schema
        run_once: true
        run: 'echo "once on $FLEET_HOST" >> "$FLEET_ROOT/log"; echo v7'
        register: schema
        undo: 'echo unonce >> "$FLEET_ROOT/log"'
      - id: mark
        run: 'echo prep >> "$FLEET_ROOT/log"'
        undo: 'echo unprep >> "$FLEET_ROOT/log"'
  - name: main
    targets: [fleet]
    waves: [{ name: canary, size: 1 }, { name: rest, size: 100%, concurrency: 2 }]
    steps:
      - id: install
        run: 'test ! -e "$FLEET_ROOT/fail" && echo "install {{stages.prep.schema}}" >> "$FLEET_ROOT/log"'
        undo: 'echo uninstall >> "$FLEET_ROOT/log"'
  - name: post
    targets: [host3]
    steps:
      - id: note
        run: 'echo post >> "$FLEET_ROOT/log"'
"#;

/// Applies `plan` in one process (`solo`), then with `--workers`, on the same store and fleet
/// (the hosts' logs cleared in between). Returns both runs.
struct Both {
    solo: Applied,
    workers: Applied,
}

struct Applied {
    out: Output,
    run: String,
    /// Each host's log after the run.
    logs: Vec<Vec<String>>,
}

fn apply_both(setup: &Setup, plan: &Path) -> Both {
    let inventory = setup.fleet.write_inventory().unwrap();
    let solo = output_within(
        sluice_as(&setup.dir, "solo", &setup.url)
            .arg("apply")
            .arg(plan)
            .arg("-i")
            .arg(&inventory)
            .args(["--yes", "--json"]),
        LIMIT,
    );
    let solo = applied(&setup.fleet, solo);
    let workers = output_within(
        &mut apply_workers(&setup.dir, &setup.url, plan, &inventory),
        LIMIT,
    );
    let workers = applied(&setup.fleet, workers);
    Both { solo, workers }
}

/// The run of `out`, with the hosts' logs, which are then cleared for the next run.
fn applied(fleet: &Fleet, out: Output) -> Applied {
    let run = events(&out)
        .first()
        .and_then(|e| e["run"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no event: {}", text(&out)));
    let logs = (1..=fleet.len()).map(|i| log(fleet, i)).collect();
    for i in 1..=fleet.len() {
        let _ = std::fs::remove_file(fleet.root(i).join("log"));
    }
    Applied { out, run, logs }
}

/// The records of `run`, in order, as JSON.
fn records(pg: &PgCluster, run: &str) -> Vec<serde_json::Value> {
    pg.psql(
        "sluice",
        &format!("SELECT body FROM sluice.records WHERE run = '{run}' ORDER BY seq"),
    )
    .unwrap()
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

/// What a run did, one line per fact of its stages, waves, hosts and steps, sorted: what must
/// be the same whether the hosts ran here or on workers. Left out: the workers' claims, and
/// the `host_finished` that ends a worker's `run_once` task (one process records it only for a
/// host it cannot reach).
fn shape(pg: &PgCluster, run: &str) -> Vec<String> {
    const KINDS: &[&str] = &[
        "stage_started",
        "stage_finished",
        "wave_started",
        "wave_decided",
        "host_finished",
        "step_intent",
        "step_result",
        "undo_intent",
        "undo_result",
        "host_rolled_back",
        "rollback_started",
        "rollback_finished",
        "run_finished",
    ];
    let mut lines: Vec<String> = records(pg, run)
        .into_iter()
        .filter(|r| KINDS.contains(&r["kind"].as_str().unwrap()))
        .filter(|r| {
            !(r["kind"] == "host_finished" && r["wave"].as_str().unwrap().ends_with("run-once"))
        })
        .map(|r| {
            let fields = [
                "stage", "wave", "host", "step", "attempt", "status", "outcome", "decision", "ok",
                "failed",
            ];
            let shown: Vec<String> = fields
                .iter()
                .filter(|f| !r[**f].is_null())
                .map(|f| format!("{f}={}", r[*f]))
                .collect();
            format!("{} {}", r["kind"].as_str().unwrap(), shown.join(" "))
        })
        .collect();
    lines.sort();
    lines
}

/// Applies `yaml` to a fleet of `hosts` over two workers and in one process (host `failing`,
/// if any, holding a file `fail`); checks that the run over workers exits `exit` and that both
/// runs did and recorded the same.
fn compared(hosts: usize, failing: Option<usize>, yaml: &str, exit: i32) -> (Setup, Both) {
    let setup = Setup::start(hosts, &[("wa", &[]), ("wb", &[])]);
    if let Some(i) = failing {
        std::fs::write(setup.fleet.root(i).join("fail"), "").unwrap();
    }
    let plan = setup.fleet.dir().join("plan.yaml");
    std::fs::write(&plan, yaml).unwrap();
    let both = apply_both(&setup, &plan);
    assert_eq!(
        both.workers.out.status.code(),
        Some(exit),
        "{}",
        text(&both.workers.out)
    );
    assert_eq!(
        both.solo.out.status.code(),
        both.workers.out.status.code(),
        "one process:\n{}\nworkers:\n{}",
        text(&both.solo.out),
        text(&both.workers.out)
    );
    assert_eq!(both.solo.logs, both.workers.logs, "the hosts' logs");
    assert_eq!(
        shape(&setup.pg, &both.solo.run),
        shape(&setup.pg, &both.workers.run),
        "the records of the run in one process (left) and over workers (right)"
    );
    (setup, both)
}

/// (host, step) of every successful `step_result` of `run`.
fn successes_of(pg: &PgCluster, run: &str) -> Vec<(String, String)> {
    let mut ok: Vec<(String, String)> = records(pg, run)
        .into_iter()
        .filter(|r| r["kind"] == "step_result" && r["status"] == "ok")
        .map(|r| {
            (
                r["host"].as_str().unwrap().to_string(),
                r["step"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    ok.sort();
    ok
}

#[test]
fn a_staged_plan_over_two_workers_records_what_one_process_does() {
    let (setup, both) = compared(4, None, STAGED, 0);

    // Every (host, step) once, each host its own stages' steps only, with the value `prep`
    // registered on a worker reaching `main` on the others.
    let mut expected: Vec<(String, String)> = vec![
        ("host1".into(), "prep/schema".into()),
        ("host1".into(), "prep/mark".into()),
        ("host2".into(), "prep/mark".into()),
        ("host3".into(), "post/note".into()),
    ];
    expected.extend((1..=4).map(|i| (format!("host{i}"), "main/install".to_string())));
    expected.sort();
    assert_eq!(successes_of(&setup.pg, &both.workers.run), expected);
    assert_eq!(
        both.workers.logs,
        [
            vec!["once on host1", "prep", "install v7"],
            vec!["prep", "install v7"],
            vec!["install v7", "post"],
            vec!["install v7"],
        ]
    );
    // The workers' facts carry their stage, and every host task was claimed by a worker.
    let workers_run = records(&setup.pg, &both.workers.run);
    let finished: Vec<(String, String)> = workers_run
        .iter()
        .filter(|r| r["kind"] == "host_finished")
        .map(|r| {
            (
                r["wave"].as_str().unwrap().to_string(),
                r["stage"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(!finished.is_empty());
    for (wave, stage) in &finished {
        assert!(
            wave.starts_with(&format!("{stage}/")),
            "{wave} in stage {stage}"
        );
    }
    let claimed = workers_run
        .iter()
        .filter(|r| r["kind"] == "host_claimed")
        .count();
    // prep: run_once on host1 and two hosts; main: four; post: one.
    assert_eq!(claimed, 1 + 2 + 4 + 1);
    verify(&setup.dir, &setup.url);
}

#[test]
fn a_failing_stage_stops_the_later_stages_over_workers_as_in_one_process() {
    let (setup, both) = compared(4, Some(4), STAGED, 1);
    // `main` failed on host4 and its failed wave was undone; `post` never started.
    let stages: Vec<(String, String)> = events(&both.workers.out)
        .iter()
        .filter(|e| e["kind"] == "stage_finished")
        .map(|e| {
            (
                e["stage"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        stages,
        [
            ("prep".to_string(), "ok".to_string()),
            ("main".to_string(), "rolled_back".to_string()),
            ("post".to_string(), "not_started".to_string()),
        ]
    );
    assert!(
        !both.workers.logs[2].contains(&"post".to_string()),
        "{:?}",
        both.workers.logs
    );
    verify(&setup.dir, &setup.url);
}

/// Two `run_once` steps (the second uses the value the first registered) and a step of every
/// host: the run_once steps run once, on host1, through one worker's task.
const ONCE: &str = r#"name: once-workers
targets: [fleet]
waves: [{ name: all, size: 100%, concurrency: 2 }]
failure: { max_failed: 0, action: rollback }
steps:
  - id: fetch
    run_once: true
    run: 'echo t-41'
    register: token
  - id: announce
    run_once: true
    run: 'echo "announce-9f3e {{token}}" >> "$FLEET_ROOT/log"; test ! -e "$FLEET_ROOT/fail"'
    undo: 'echo unannounce >> "$FLEET_ROOT/log"'
  - id: install
    run: 'echo install >> "$FLEET_ROOT/log"'
"#;

#[test]
fn a_run_once_step_runs_exactly_once_over_two_workers() {
    let mut setup = Setup::start(4, &[("wa", &[]), ("wb", &[])]);
    setup.fleet.log_commands().unwrap();
    let plan = setup.fleet.dir().join("plan.yaml");
    std::fs::write(&plan, ONCE).unwrap();
    let inventory = setup.fleet.write_inventory().unwrap();
    let out = output_within(
        &mut apply_workers(&setup.dir, &setup.url, &plan, &inventory),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Sent once, to one host, over the whole fleet.
    let sent: Vec<usize> = (1..=4)
        .flat_map(|i| {
            setup
                .fleet
                .commands(i)
                .into_iter()
                .filter(|c| c.contains("announce-9f3e"))
                .map(move |_| i)
        })
        .collect();
    assert_eq!(sent, [1], "hosts the run_once step was sent to");
    assert_eq!(log(&setup.fleet, 1), ["announce-9f3e t-41", "install"]);
    for i in 2..=4 {
        assert_eq!(log(&setup.fleet, i), ["install"], "host{i}");
    }
    // Recorded once, by one worker's run_once task.
    let run = events(&out)[0]["run"].as_str().unwrap().to_string();
    let once: Vec<(String, String)> = successes_of(&setup.pg, &run)
        .into_iter()
        .filter(|(_, step)| step != "install")
        .collect();
    assert_eq!(
        once,
        [
            ("host1".to_string(), "announce".to_string()),
            ("host1".to_string(), "fetch".to_string()),
        ]
    );
    assert_eq!(claims(&setup.pg, "run_once").len(), 1);
    verify(&setup.dir, &setup.url);
}

#[test]
fn a_failing_run_once_step_on_a_worker_stops_the_run_before_any_wave() {
    let (setup, both) = compared(3, Some(1), ONCE, 1);
    // The run_once steps were a worker's task; no host step ran; the run_once step that ran was
    // undone, on a worker.
    assert_eq!(claims(&setup.pg, "run_once").len(), 1);
    assert_eq!(
        both.workers.logs,
        [vec!["announce-9f3e t-41", "unannounce"], vec![], vec![]]
    );
    assert_eq!(claims(&setup.pg, "host").len(), 0);
    assert!(
        claims(&setup.pg, "undo")
            .iter()
            .any(|(_, host)| host == "host1"),
        "the undo of the run_once step was a worker's task"
    );
    let shown = events(&both.workers.out);
    assert!(
        shown
            .iter()
            .any(|e| e["kind"] == "run_finished" && e["status"] == "rolled_back"),
        "{}",
        text(&both.workers.out)
    );
    verify(&setup.dir, &setup.url);
}

#[test]
fn run_once_steps_alternating_between_hosts_are_refused_under_workers() {
    // A live worker: a plan that is not refused runs (and ends) instead of waiting for one.
    let setup = Setup::start(2, &[("wa", &[])]);
    let yaml = r#"name: alternating
targets: [fleet]
steps:
  - { id: a1, run_once: true, delegate: host1, run: 'true' }
  - { id: b, run_once: true, delegate: host2, run: 'true' }
  - { id: a2, run_once: true, delegate: host1, run: 'true' }
  - { id: install, run: 'true' }
"#;
    let plan = setup.fleet.dir().join("plan.yaml");
    std::fs::write(&plan, yaml).unwrap();
    let inventory = setup.fleet.write_inventory().unwrap();
    let out = output_within(
        &mut apply_workers(&setup.dir, &setup.url, &plan, &inventory),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`a1` and `a2` run on host host1 with `b` on another host between them"),
        "{}",
        text(&out)
    );
    assert_eq!(
        count(&setup.pg, "SELECT count(*) FROM sluice.records"),
        0,
        "nothing was recorded"
    );
}

/// A worker that cannot load the run (its stored plan no longer matches the run's hash) ends
/// the task it claimed as failed, and says in which stage, as every host's end does.
#[test]
fn a_worker_that_cannot_load_a_staged_run_records_the_stage_of_its_failure() {
    let setup = Setup::start(4, &[("wa", &[])]);
    let plan = setup.fleet.dir().join("plan.yaml");
    std::fs::write(&plan, STAGED).unwrap();
    let inventory = setup.fleet.write_inventory().unwrap();
    // A first run stores the plan's artifact; the second finds it stored under its hash, and
    // the workers read the stored one, changed here behind the store's back.
    let solo = output_within(
        sluice_as(&setup.dir, "solo", &setup.url)
            .arg("apply")
            .arg(&plan)
            .arg("-i")
            .arg(&inventory)
            .args(["--yes", "--json"]),
        LIMIT,
    );
    assert_eq!(solo.status.code(), Some(0), "{}", text(&solo));
    setup
        .pg
        .psql(
            "sluice",
            "UPDATE sluice.records SET body = replace(body, 'once on', 'twice on')
             WHERE kind = 'plan_artifact_stored'",
        )
        .unwrap();
    let out = output_within(
        &mut apply_workers(&setup.dir, &setup.url, &plan, &inventory),
        LIMIT,
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let run = events(&out)[0]["run"].as_str().unwrap().to_string();
    let failed: Vec<serde_json::Value> = records(&setup.pg, &run)
        .into_iter()
        .filter(|r| {
            r["kind"] == "host_finished"
                && r["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("worker: worker wa:"))
        })
        .collect();
    assert!(!failed.is_empty(), "{}", text(&out));
    for end in failed {
        assert_eq!(end["wave"], "prep/run-once", "{end}");
        assert_eq!(end["stage"], "prep", "{end}");
    }
}
