//! End-to-end tests of the shared PostgreSQL store through the `sluice` binary, against a real
//! throwaway cluster (sluice-testpg): every command on `--store URL`, passwords only from the
//! environment or ~/.pgpass, tampering by SQL found by `audit verify`, two controllers (two
//! state directories) racing for the same hosts, and a gate released by another process.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sluice_exec::testkit::{PlanBuilder, StepDef};

mod support;
use support::pg::{cluster, sluice_on, write_plan};
use support::{events, text};

fn apply(state: &Path, store: &str, plan: &Path) -> Command {
    let mut cmd = sluice_on(state, store);
    cmd.args(["apply", "--plan"])
        .arg(plan)
        .args(["--yes", "--json", "--color", "never"]);
    cmd
}

fn run_id(out: &Output) -> String {
    events(out)
        .first()
        .and_then(|e| e["run"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no run id:\n{}", text(out)))
}

#[test]
fn every_read_and_write_command_works_on_postgres_and_sql_tampering_is_found() {
    let pg = cluster();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("controller");
    // Over TCP, with the password from PGPASSWORD (the URL holds none).
    let url = pg.tcp_url("sluice");
    let init = sluice_on(&state, &url)
        .args(["store", "init"])
        .env("PGPASSWORD", sluice_testpg::PASSWORD)
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", text(&init));
    let hosts = ["a", "b", "c"];
    let plan = PlanBuilder::new("kernel")
        .local_hosts(&hosts, &dir.path().join("hosts"))
        .step(StepDef::new("patch", "echo patched {host} > version"))
        .wave("all", &hosts, 3, 0)
        .build();
    let plan = write_plan(dir.path(), "kernel", &plan);
    let applied = apply(&state, &url, &plan)
        .env("PGPASSWORD", sluice_testpg::PASSWORD)
        .output()
        .unwrap();
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied));
    let run = run_id(&applied);
    // Nothing went to the state directory's redb store.
    assert!(!state.join("audit.redb").exists());

    // The same store from another "machine", with the password from a password file.
    let other = dir.path().join("other");
    let pgpass = dir.path().join("pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "127.0.0.1:{}:sluice:sluice:{}\n",
            pg.port(),
            sluice_testpg::PASSWORD
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let read = |args: &[&str]| {
        sluice_on(&other, &url)
            .args(args)
            .env("PGPASSFILE", &pgpass)
            .output()
            .unwrap()
    };
    let runs = read(&["runs", "--json"]);
    assert!(runs.status.success(), "{}", text(&runs));
    let listed = String::from_utf8_lossy(&runs.stdout);
    assert!(
        listed.contains(&run) && listed.contains("succeeded"),
        "{listed}"
    );
    let show = read(&["show", &run]);
    assert!(show.status.success(), "{}", text(&show));
    let logs = read(&["logs", &run, "--host", "b"]);
    assert!(logs.status.success(), "{}", text(&logs));
    let export = read(&["audit", "export"]);
    assert!(export.status.success(), "{}", text(&export));
    let verify = read(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify));

    // A record changed with SQL: verify fails and names it.
    let seq = pg
        .psql(
            "sluice",
            "SELECT min(seq) FROM sluice.records WHERE kind = 'step_result'",
        )
        .unwrap();
    pg.psql(
        "sluice",
        &format!(
            "UPDATE sluice.records SET body = replace(body, '\"host\":\"', '\"host\":\"x') WHERE seq = {seq}"
        ),
    )
    .unwrap();
    let verify = read(&["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    assert!(
        String::from_utf8_lossy(&verify.stderr).contains(&format!("record {seq}")),
        "{}",
        text(&verify)
    );
}

#[test]
fn a_password_in_the_store_url_is_refused_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let out = sluice_on(dir.path(), "postgres://sluice:hunter2@127.0.0.1:1/sluice")
        .args(["runs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(!all.contains("hunter2"), "{all}");
    assert!(
        all.contains("PGPASSWORD") && all.contains(".pgpass"),
        "{all}"
    );
}

/// A database that cannot be reached is named as what it is, a PostgreSQL store by its URL (the
/// password, from the environment, never shown); it was named as a file path, `audit store URL`.
#[test]
fn an_unreachable_database_is_named_as_a_postgresql_store_by_its_url() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: the connection is refused at once.
    let url = "postgres://sluice@127.0.0.1:1/sluice";
    let out = sluice_on(dir.path(), url)
        .env("PGPASSWORD", "hunter2")
        .args(["runs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: PostgreSQL audit store {url}: ")),
        "{stderr}"
    );
    assert!(!text(&out).contains("hunter2"), "{}", text(&out));
}

#[test]
fn two_controllers_racing_for_overlapping_hosts_start_exactly_one_run() {
    let pg = cluster();
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let hosts_dir = dir.path().join("hosts");
    // Two plans sharing host `b`; each holds its hosts for a moment.
    let plan = |name: &str, hosts: &[&str]| {
        let artifact = PlanBuilder::new(name)
            .local_hosts(hosts, &hosts_dir)
            .step(StepDef::new("patch", "sleep 0.3"))
            .wave("all", hosts, 2, 0)
            .build();
        write_plan(dir.path(), name, &artifact)
    };
    let first = plan("first", &["a", "b"]);
    let second = plan("second", &["b", "c"]);
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    for round in 0..20 {
        let a = apply(&one, &url, &first)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let b = apply(&two, &url, &second)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let codes = (a.status.code(), b.status.code());
        let (winner, loser) = match codes {
            (Some(0), Some(2)) => (&a, &b),
            (Some(2), Some(0)) => (&b, &a),
            _ => panic!(
                "round {round}: expected one 0 and one 2:\n{}\n{}",
                text(&a),
                text(&b)
            ),
        };
        let holder = run_id(winner);
        let refusal = String::from_utf8_lossy(&loser.stderr);
        assert!(
            refusal.contains("host b is leased by run") && refusal.contains(&holder),
            "round {round}: {refusal}"
        );
    }
    let runs = sluice_on(&one, &url)
        .args(["runs", "--json", "--limit", "100"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&runs.stdout).lines().count(),
        20,
        "{}",
        text(&runs)
    );
    let verify = sluice_on(&two, &url)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify));
}

#[test]
fn a_gate_waiting_in_one_controller_is_released_by_an_approval_from_another() {
    let pg = cluster();
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let hosts = ["a", "b"];
    let artifact = PlanBuilder::new("gated")
        .local_hosts(&hosts, &dir.path().join("hosts"))
        .step(StepDef::new("patch", "echo ok"))
        .wave("canary", &hosts[..1], 1, 0)
        .wave("rest", &hosts[1..], 1, 0)
        .approval()
        .build();
    let plan = write_plan(dir.path(), "gated", &artifact);
    let child = apply(&dir.path().join("runner"), &url, &plan)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let approver = dir.path().join("approver");
    // Wait until the run waits at the gate, as seen from the other controller.
    let deadline = Instant::now() + Duration::from_secs(30);
    let run = loop {
        let runs = sluice_on(&approver, &url)
            .args(["runs", "--json"])
            .output()
            .unwrap();
        let line = String::from_utf8_lossy(&runs.stdout)
            .lines()
            .next()
            .map(str::to_string);
        if let Some(line) = line {
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            let run = value["run"].as_str().unwrap().to_string();
            let pending = pg
                .psql("sluice", "SELECT count(*) FROM sluice.pending_gates")
                .unwrap();
            if pending == "1" {
                break run;
            }
        }
        assert!(Instant::now() < deadline, "the run never reached its gate");
        std::thread::sleep(Duration::from_millis(100));
    };
    let approved = sluice_on(&approver, &url)
        .args(["approve", &run, "--wave", "rest", "--by", "carol"])
        .output()
        .unwrap();
    assert!(approved.status.success(), "{}", text(&approved));
    let given = Instant::now();
    // The waiting run takes the approval within a second: its wave starts.
    let started_at = loop {
        let started = pg
            .psql(
                "sluice",
                "SELECT count(*) FROM sluice.records WHERE kind = 'wave_started'",
            )
            .unwrap();
        if started == "2" {
            break given.elapsed();
        }
        assert!(
            given.elapsed() < Duration::from_secs(10),
            "the gate was never released"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        started_at < Duration::from_secs(1),
        "released after {started_at:?}"
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_local_store_migrates_into_postgres_with_its_chain() {
    let pg = cluster();
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("local");
    let hosts = ["a", "b"];
    let plan = PlanBuilder::new("kernel")
        .local_hosts(&hosts, &dir.path().join("hosts"))
        .step(StepDef::new("patch", "echo ok"))
        .wave("all", &hosts, 2, 0)
        .build();
    let plan = write_plan(dir.path(), "kernel", &plan);
    // Recorded in the local redb store (an empty SLUICE_STORE means none).
    let applied = apply(&state, "", &plan).output().unwrap();
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied));
    let run = run_id(&applied);
    let head = |out: &Output| {
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        stderr
            .split_whitespace()
            .skip_while(|w| *w != "head")
            .nth(1)
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no head in {stderr}"))
    };
    let local_head = head(
        &sluice_on(&state, "")
            .args(["audit", "verify"])
            .output()
            .unwrap(),
    );
    let redb = format!("redb:{}", state.display());
    let migrated = sluice_on(&state, &url)
        .args(["store", "migrate", "--from", &redb, "--to", &url])
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{}", text(&migrated));
    let verify = sluice_on(&state, &url)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify));
    assert_eq!(head(&verify), local_head);
    let show = sluice_on(&state, &url)
        .args(["show", &run])
        .output()
        .unwrap();
    assert!(show.status.success(), "{}", text(&show));
    // A second migration into the same store is refused: the chain is there already.
    let again = sluice_on(&state, &url)
        .args(["store", "migrate", "--from", &redb, "--to", &url])
        .output()
        .unwrap();
    assert!(!again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("empty store"),
        "{}",
        text(&again)
    );
}
