//! End-to-end tests of `sluice apply` against a fleet of real OpenSSH sshd hosts on 127.0.0.1:
//! a YAML plan compiled against the fleet's inventory, run over the russh transport, with each
//! host's state read back from its `$FLEET_ROOT`.

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
        .find(|e| e["event"] == "host_finished" && e["host"] == "host8")
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
            .any(|e| e["event"] == "step_finished" && e["status"] == "timed_out")
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
