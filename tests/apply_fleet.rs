//! End-to-end tests of `sluice apply` against a fleet of real OpenSSH sshd hosts on 127.0.0.1:
//! a YAML plan compiled against the fleet's inventory, run over the russh transport, with each
//! host's state read back from its `$FLEET_ROOT`.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use sluice_testfleet::Fleet;

mod support;
use support::{events, sluice};

/// Ten hosts in waves of 1, 3 and 6; two logged steps with undos; healthy unless the host has an
/// `unhealthy` file.
fn plan(fleet: &Fleet, scope: &str, rest: &str, extra_step: &str) -> PathBuf {
    let yaml = format!(
        r#"name: fleet-patch
targets: [fleet]
waves:
  - {{ name: canary, size: 1 }}
  - {{ name: early, size: 3 }}
  - {{ name: rest, size: 100%{rest} }}
failure: {{ max_failed: 0, action: rollback, rollback_scope: {scope} }}
health:
  checks:
    - {{ name: app, run: 'test ! -e "$FLEET_ROOT/unhealthy"' }}
  retries: 0
  interval: 100ms
  timeout: 5s
steps:
  - {{ id: drain, run: 'echo drain >> "$FLEET_ROOT/log"', undo: 'echo undrain >> "$FLEET_ROOT/log"' }}
  - {{ id: install, run: 'echo install >> "$FLEET_ROOT/log"', undo: 'echo uninstall >> "$FLEET_ROOT/log"' }}
{extra_step}"#
    );
    let path = fleet.dir().join("plan.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn apply(fleet: &Fleet, plan: &PathBuf) -> Output {
    let inventory = fleet.write_inventory().unwrap();
    sluice()
        .arg("apply")
        .arg(plan)
        .arg("-i")
        .arg(inventory)
        .args(["--yes", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn log(fleet: &Fleet, i: usize) -> Vec<String> {
    std::fs::read_to_string(fleet.root(i).join("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn fleet_happy_path_patches_ten_hosts_in_three_waves() {
    let fleet = Fleet::start(10).unwrap();
    let out = apply(&fleet, &plan(&fleet, "wave", "", ""));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 1..=10 {
        assert_eq!(log(&fleet, i), ["drain", "install"], "host{i}");
    }
}

#[test]
fn fleet_health_failure_in_wave_two_undoes_its_hosts_and_wave_three_never_starts() {
    let fleet = Fleet::start(10).unwrap();
    std::fs::write(fleet.root(3).join("unhealthy"), "").unwrap();
    let out = apply(&fleet, &plan(&fleet, "wave", "", ""));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 2..=4 {
        assert_eq!(
            log(&fleet, i),
            ["drain", "install", "uninstall", "undrain"],
            "host{i}"
        );
    }
    assert_eq!(log(&fleet, 1), ["drain", "install"]);
    for i in 5..=10 {
        assert!(log(&fleet, i).is_empty(), "host{i}");
    }

    let fleet = Fleet::start(10).unwrap();
    std::fs::write(fleet.root(3).join("unhealthy"), "").unwrap();
    let out = apply(&fleet, &plan(&fleet, "run", "", ""));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(log(&fleet, 1), ["drain", "install", "uninstall", "undrain"]);
}

#[test]
fn fleet_host_whose_sshd_stops_mid_wave_counts_as_failed() {
    let mut fleet = Fleet::start(10).unwrap();
    let slow = "  - { id: settle, run: 'sleep 0.4' }\n";
    let path = plan(&fleet, "wave", ", concurrency: 1", slow);
    let inventory = fleet.write_inventory().unwrap();
    let child = sluice()
        .arg("apply")
        .arg(&path)
        .arg("-i")
        .arg(inventory)
        .args(["--yes", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until wave "rest" has started (host5 logged), then take host8 down.
    let deadline = Instant::now() + Duration::from_secs(60);
    while log(&fleet, 5).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    fleet.stop(8);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host8 = events(&out)
        .into_iter()
        .find(|e| e["kind"] == "host_finished" && e["host"] == "host8")
        .expect("host8 finished");
    assert_eq!(host8["outcome"], "unreachable");
    assert!(
        log(&fleet, 9).is_empty(),
        "no host starts after the budget is spent"
    );
}

#[test]
fn fleet_hung_command_times_out() {
    let fleet = Fleet::start(1).unwrap();
    let hang = format!(
        "  - {{ id: hang, run: '{}', timeout: 1s }}\n",
        Fleet::hang_command(41)
    );
    let started = Instant::now();
    let out = apply(&fleet, &plan(&fleet, "wave", "", &hang));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        events(&out)
            .iter()
            .any(|e| e["kind"] == "step_result" && e["status"] == "timed_out")
    );
    assert_eq!(log(&fleet, 1), ["drain", "install", "uninstall", "undrain"]);
}

/// Writes a plan targeting the whole fleet with the given YAML body.
fn custom(fleet: &Fleet, body: &str) -> PathBuf {
    let path = fleet.dir().join("custom.yaml");
    std::fs::write(
        &path,
        format!("name: fleet-custom\ntargets: [fleet]\n{body}"),
    )
    .unwrap();
    path
}

#[test]
fn fleet_budget_of_one_fails_on_the_second_failure_and_starts_no_more_hosts() {
    let fleet = Fleet::start(5).unwrap();
    for i in [2, 3] {
        std::fs::write(fleet.root(i).join("broken"), "").unwrap();
    }
    let body = r#"waves:
  - { name: all, size: 100%, concurrency: 1 }
failure: { max_failed: 1 }
steps:
  - { id: work, run: 'echo work >> "$FLEET_ROOT/log"; test ! -e "$FLEET_ROOT/broken"', undo: 'echo unwork >> "$FLEET_ROOT/log"' }
"#;
    let out = apply(&fleet, &custom(&fleet, body));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 1..=3 {
        assert_eq!(log(&fleet, i), ["work", "unwork"], "host{i}");
    }
    assert!(
        log(&fleet, 4).is_empty() && log(&fleet, 5).is_empty(),
        "no overshoot"
    );
}

#[test]
fn fleet_failing_undo_is_rollback_failed_exit_3_and_the_secret_stays_hidden() {
    let fleet = Fleet::start(2).unwrap();
    let body = r#"secrets:
  token: { env: FLEET_TEST_TOKEN }
waves:
  - { name: all, size: 100% }
steps:
  - { id: login, run: 'echo "token {{secrets.token}}" >> "$FLEET_ROOT/log"', undo: 'echo "cannot revoke {{secrets.token}}" >&2; exit 1' }
  - { id: fail, run: 'echo "failing with {{secrets.token}}"; exit 1' }
"#;
    let inventory = fleet.write_inventory().unwrap();
    let out = sluice()
        .arg("apply")
        .arg(custom(&fleet, body))
        .arg("-i")
        .arg(inventory)
        .args(["--yes", "--json"])
        .env("FLEET_TEST_TOKEN", "fleet-secret-5150")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert_eq!(
        log(&fleet, 1),
        ["token fleet-secret-5150"],
        "the host got the real value"
    );
    assert!(
        all.contains("ROLLBACK FAILED") && all.contains("cannot revoke ***"),
        "{all}"
    );
    assert!(!all.contains("fleet-secret-5150"), "{all}");
}

#[test]
fn fleet_outside_the_window_nothing_starts() {
    let fleet = Fleet::start(2).unwrap();
    let body = r#"window: { start: 2099-01-01T00:00:00Z, end: 2099-01-01T04:00:00Z }
waves:
  - { name: all, size: 100% }
steps:
  - { id: work, run: 'echo work >> "$FLEET_ROOT/log"' }
"#;
    let out = apply(&fleet, &custom(&fleet, body));
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2099-01-01T00:00:00Z"));
    assert!(log(&fleet, 1).is_empty() && log(&fleet, 2).is_empty());
}

/// The fleet's inventory, logging in as `user` (with the fleet's key).
fn inventory_as(fleet: &Fleet, user: &str) -> PathBuf {
    let inventory = fleet.write_inventory().unwrap();
    let text = std::fs::read_to_string(&inventory).unwrap().replace(
        &format!("user: \"{}\"", fleet.user()),
        &format!("user: {user}"),
    );
    assert!(text.contains(&format!("user: {user}")), "{text}");
    std::fs::write(&inventory, text).unwrap();
    inventory
}

#[test]
fn fleet_become_with_a_password_from_a_plan_secret_runs_as_the_user_and_never_shows_it() {
    use sluice_testfleet::sudo::{PASSWORD_USER, TARGET_USER};
    let fleet = Fleet::start(2).unwrap();
    let users = sluice_testfleet::sudo::ensure()
        .unwrap_or_else(|e| panic!("cannot prepare the become test users: {e}"));
    fleet.open_to_other_users().unwrap();
    // The login user's sudo asks for a password for every command (no TTY, so no cached
    // credentials): the guard, the step and the undo each get it from the secret.
    let inventory = inventory_as(&fleet, PASSWORD_USER);
    let body = format!(
        r#"secrets:
  sudo_pw: {{ env: FLEET_TEST_SUDO_PW }}
become_password: sudo_pw
steps:
  - id: who
    run: id -un
    become_user: {TARGET_USER}
    register: who
    # Skips the step unless the guard, too, runs as {TARGET_USER}.
    skip_if: 'test "$(id -un)" != {TARGET_USER}'
  - {{ id: check, run: 'test {{{{who}}}} = {TARGET_USER}' }}
"#
    );
    let plan = custom(&fleet, &body);
    let store = fleet.dir().join("store");
    let sluice_in_store = || {
        let mut c = sluice();
        c.env("SLUICE_STATE_DIR", &store).stdin(Stdio::null());
        c
    };
    let apply = |password: &str, json: bool| {
        let mut c = sluice_in_store();
        c.arg("apply")
            .arg(&plan)
            .arg("-i")
            .arg(&inventory)
            .arg("--yes");
        if json {
            c.arg("--json");
        }
        c.env("FLEET_TEST_SUDO_PW", password).output().unwrap()
    };
    let shown = |out: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };

    let plain = apply(&users.password, false);
    assert_eq!(plain.status.code(), Some(0), "{}", shown(&plain));
    assert!(
        shown(&plain).contains("become   sudo password from secret sudo_pw"),
        "the summary before the run says where the password comes from: {}",
        shown(&plain)
    );
    let json = apply(&users.password, true);
    assert_eq!(json.status.code(), Some(0), "{}", shown(&json));
    for out in [&plain, &json] {
        assert!(!shown(out).contains(&users.password), "{}", shown(out));
    }
    let run = events(&json)[0]["run"].as_str().unwrap().to_string();
    let logs = sluice_in_store().args(["logs", &run]).output().unwrap();
    assert!(logs.status.success(), "{}", shown(&logs));
    let text = shown(&logs);
    for host in ["host1", "host2"] {
        assert!(
            text.contains(&format!("==> {host} who (exit 0) <==\n{TARGET_USER}\n")),
            "{text}"
        );
    }
    assert!(!text.contains(&users.password));
    let export = sluice_in_store()
        .args(["audit", "export"])
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", shown(&export));
    assert!(
        shown(&export).contains("become_password"),
        "the artifact names it"
    );
    assert!(!shown(&export).contains(&users.password));

    // A wrong password: sudo's refusal, by name, fails the wave; neither password shows.
    let wrong = "not-the-sudo-password-77";
    let out = apply(wrong, false);
    let text = shown(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("sudo refused the password"), "{text}");
    assert!(
        !text.contains(wrong) && !text.contains(&users.password),
        "{text}"
    );
}

#[test]
fn fleet_apply_with_an_encrypted_key_and_no_terminal_names_the_passphrase_variable() {
    let fleet = Fleet::start(1).unwrap();
    let passphrase = "apply-key-passphrase";
    let key = fleet.authorize_encrypted_key(1, passphrase).unwrap();
    let inventory = fleet.write_inventory().unwrap();
    let text = std::fs::read_to_string(&inventory).unwrap().replace(
        &fleet.identity_file().display().to_string(),
        &key.display().to_string(),
    );
    std::fs::write(&inventory, text).unwrap();
    let plan = custom(
        &fleet,
        "steps:\n  - { id: work, run: 'echo work >> \"$FLEET_ROOT/log\"' }\n",
    );
    let apply = |passphrase: Option<&str>| {
        let mut c = sluice();
        c.arg("apply")
            .arg(&plan)
            .arg("-i")
            .arg(&inventory)
            .args(["--yes", "--json"])
            .env_remove("SLUICE_SSH_PASSPHRASE")
            .stdin(Stdio::null());
        if let Some(p) = passphrase {
            c.env("SLUICE_SSH_PASSPHRASE", p);
        }
        c.output().unwrap()
    };
    let out = apply(None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host1 = events(&out)
        .into_iter()
        .find(|e| e["kind"] == "host_finished" && e["host"] == "host1")
        .expect("host1 finished");
    assert_eq!(host1["outcome"], "unreachable");
    assert!(
        host1["error"].as_str().is_some_and(|e| e
            .contains("no terminal to ask for its passphrase: put it in $SLUICE_SSH_PASSPHRASE")),
        "{host1}"
    );
    assert!(log(&fleet, 1).is_empty());

    let out = apply(Some(passphrase));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(log(&fleet, 1), ["work"]);
}

#[test]
fn fleet_a_host_key_learned_by_accept_new_is_shown_by_default_and_recorded_in_the_run() {
    let fleet = Fleet::start(1).unwrap();
    let inventory = fleet.write_inventory().unwrap();
    let learned = fleet.dir().join("learned_hosts");
    std::fs::write(&learned, "").unwrap();
    let pinned = fleet.known_hosts().display().to_string();
    let text = std::fs::read_to_string(&inventory)
        .unwrap()
        .replace("host_key_checking: strict", "host_key_checking: accept-new")
        .replace(&pinned, &learned.display().to_string());
    assert!(
        text.contains("accept-new") && !text.contains(&pinned),
        "{text}"
    );
    std::fs::write(&inventory, text).unwrap();
    let store = fleet.dir().join("store");
    let out = sluice()
        .arg("apply")
        .arg(custom(
            &fleet,
            "waves:\n  - { name: all, size: 100% }\nsteps:\n  - { id: hi, run: 'true' }\n",
        ))
        .arg("-i")
        .arg(&inventory)
        .args(["--yes", "--json", "--state-dir"])
        .arg(&store)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // Shown to the operator without any -v, naming the host.
    assert!(
        stderr.contains("warning")
            && stderr.contains("accept-new: learned")
            && stderr.contains("host=host1"),
        "{stderr}"
    );
    assert!(
        std::fs::read_to_string(&learned)
            .unwrap()
            .contains("127.0.0.1")
    );
    // In the event stream and in the run's audit trail, as a `warning` fact about host1.
    let warned = |facts: &[serde_json::Value]| {
        facts.iter().any(|f| {
            f["kind"] == "warning"
                && f["host"] == "host1"
                && f["message"].as_str().unwrap_or("").contains("accept-new")
        })
    };
    let events = events(&out);
    assert!(warned(&events), "{events:#?}");
    let run = events[0]["run"].as_str().unwrap().to_string();
    let show = sluice()
        .args(["show", &run, "--json", "--state-dir"])
        .arg(&store)
        .output()
        .unwrap();
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&show.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(warned(&records), "{records:#?}");
}
