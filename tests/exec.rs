//! `sluice exec` against a real OpenSSH fleet: per-host results, grouped output, exit codes.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use sluice_testfleet::Fleet;

mod support;
use support::sluice;

#[test]
fn exec_runs_on_every_host_and_groups_identical_output() {
    let fleet = Fleet::start(3).expect("start fleet");
    let inventory = fleet.write_inventory().unwrap();
    let out = sluice()
        .args(["exec", "fleet", "-i"])
        .arg(&inventory)
        .args(["--", "echo same; test $FLEET_HOST != host3"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("host1,host2 (2)\nsame\n"), "{err}");
    assert!(err.contains("host3 (1)\nsame\n[exit 1]"), "{err}");
    assert!(
        err.contains("3 hosts: 2 ok, 1 failed, 0 unreachable, 0 refused"),
        "{err}"
    );
}

#[test]
fn exec_json_reports_unreachable_and_succeeds_only_when_all_succeed() {
    let mut fleet = Fleet::start(2).expect("start fleet");
    let inventory = fleet.write_inventory().unwrap();
    let ok = sluice()
        .args(["exec", "host1,host2", "-i"])
        .arg(&inventory)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    fleet.stop(2);
    let out = sluice()
        .args(["exec", "fleet", "--json", "-i"])
        .arg(&inventory)
        .args(["--", "echo", "hi"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let by_host = |h: &str| lines.iter().find(|v| v["host"] == h).unwrap().clone();
    assert_eq!(by_host("host1")["result"], "ok");
    assert_eq!(by_host("host1")["stdout"], "hi\n");
    assert_eq!(by_host("host2")["result"], "unreachable");
}

/// The fleet's inventory, logging in with a new key encrypted with `passphrase` instead.
fn inventory_with_encrypted_key(fleet: &Fleet, passphrase: &str) -> std::path::PathBuf {
    let key = fleet.authorize_encrypted_key(1, passphrase).unwrap();
    let inventory = fleet.write_inventory().unwrap();
    let text = std::fs::read_to_string(&inventory).unwrap().replace(
        &fleet.identity_file().display().to_string(),
        &key.display().to_string(),
    );
    std::fs::write(&inventory, text).unwrap();
    inventory
}

#[test]
fn an_encrypted_key_without_a_terminal_names_the_passphrase_variable() {
    let fleet = Fleet::start(1).expect("start fleet");
    let inventory = inventory_with_encrypted_key(&fleet, "tty-less secret");
    let out = sluice()
        .args(["exec", "host1", "-i"])
        .arg(&inventory)
        .args(["--", "true"])
        .env_remove("SLUICE_SSH_PASSPHRASE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no terminal to ask for its passphrase: put it in $SLUICE_SSH_PASSPHRASE"),
        "{err}"
    );
}

/// Runs `sluice ARGS` on a pseudo-terminal (util-linux `script`), answering `answer` once the
/// transcript shows `wait_for`; returns the exit code and the whole transcript.
fn on_a_terminal(args: &str, wait_for: Option<&str>, answer: &str) -> (Option<i32>, String) {
    use std::io::{Read, Write};
    let command = format!("'{}' {args}", env!("CARGO_BIN_EXE_sluice"));
    // An audit store of its own, as `support::sluice` gives every other run.
    let store = tempfile::tempdir().unwrap();
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("SLUICE_STATE_DIR", store.path())
        .env_remove("SLUICE_SSH_PASSPHRASE")
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `script` (install util-linux): {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut transcript = Vec::new();
    let mut stdin = child.stdin.take();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut answered = wait_for.is_none();
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(chunk) => transcript.extend_from_slice(&chunk),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        let text = String::from_utf8_lossy(&transcript);
        if !answered && wait_for.is_some_and(|w| text.contains(w)) {
            // Echo is turned off right after the prompt is written: let that happen first.
            std::thread::sleep(std::time::Duration::from_millis(500));
            if let Some(stdin) = stdin.as_mut() {
                stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
            }
            answered = true;
        }
        assert!(std::time::Instant::now() < deadline, "stuck: {text}");
    }
    drop(stdin);
    let status = child.wait().unwrap();
    (
        status.code(),
        String::from_utf8_lossy(&transcript).into_owned(),
    )
}

#[test]
fn on_a_terminal_the_passphrase_is_asked_once_with_echo_off() {
    let fleet = Fleet::start(1).expect("start fleet");
    let passphrase = "typed at the prompt";
    let inventory = inventory_with_encrypted_key(&fleet, passphrase);
    let (code, transcript) = on_a_terminal(
        &format!("exec host1 -i '{}' -- echo via-tty", inventory.display()),
        Some("Enter passphrase for"),
        passphrase,
    );
    assert_eq!(code, Some(0), "{transcript}");
    assert!(transcript.contains("via-tty"), "{transcript}");
    assert!(!transcript.contains(passphrase), "echoed: {transcript}");
    assert_eq!(transcript.matches("Enter passphrase for").count(), 1);
}

/// `sluice apply` asks the same way, with its progress display suspended (here, for want of a
/// second pty helper: this one is shared).
#[test]
fn on_a_terminal_apply_asks_for_the_passphrase_once_too() {
    let fleet = Fleet::start(2).expect("start fleet");
    let passphrase = "typed for apply";
    let inventory = inventory_with_encrypted_key(&fleet, passphrase);
    // Both hosts take the encrypted key: host2 authorizes it too.
    let public = std::fs::read_to_string(fleet.dir().join("id_encrypted.pub")).unwrap();
    fleet.authorize_key(2, &public).unwrap();
    let plan = fleet.dir().join("plan.yaml");
    std::fs::write(
        &plan,
        "name: tty\ntargets: [fleet]\nsteps:\n  - { id: work, run: 'echo work >> \"$FLEET_ROOT/log\"' }\n",
    )
    .unwrap();
    let (code, transcript) = on_a_terminal(
        &format!(
            "apply '{}' -i '{}' --yes --state-dir '{}'",
            plan.display(),
            inventory.display(),
            fleet.dir().join("store").display()
        ),
        Some("Enter passphrase for"),
        passphrase,
    );
    assert_eq!(code, Some(0), "{transcript}");
    assert!(!transcript.contains(passphrase), "echoed: {transcript}");
    assert_eq!(transcript.matches("Enter passphrase for").count(), 1);
    for i in 1..=2 {
        let log = std::fs::read_to_string(fleet.root(i).join("log")).unwrap_or_default();
        assert_eq!(log, "work\n", "host{i}: {transcript}");
    }
}

#[test]
fn on_a_terminal_exec_draws_a_progress_bar() {
    let fleet = Fleet::start(2).expect("start fleet");
    let inventory = fleet.write_inventory().unwrap();
    let (code, transcript) = on_a_terminal(
        &format!("exec fleet -i '{}' -- sleep 1", inventory.display()),
        None,
        "",
    );
    assert_eq!(code, Some(0), "{transcript}");
    assert!(transcript.contains("0/2 hosts"), "{transcript}");
    assert!(transcript.contains("2 hosts: 2 ok"), "{transcript}");
}

#[test]
fn exec_become_runs_through_sudo_with_a_password_from_the_environment() {
    use sluice_testfleet::sudo::{PASSWORD_USER, TARGET_USER};
    let fleet = Fleet::start(1).expect("start fleet");
    let users = sluice_testfleet::sudo::ensure()
        .unwrap_or_else(|e| panic!("cannot prepare the become test users: {e}"));
    fleet.open_to_other_users().unwrap();
    let inventory = fleet.write_inventory().unwrap();
    let as_root = sluice()
        .args(["exec", "host1", "--become-user", TARGET_USER, "-i"])
        .arg(&inventory)
        .args(["--", "id", "-un"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&as_root.stderr);
    assert_eq!(as_root.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("host1 (1)\n{TARGET_USER}\n")),
        "{err}"
    );

    // Log in as a user whose sudo asks for a password.
    let text = std::fs::read_to_string(&inventory).unwrap().replace(
        &format!("user: \"{}\"", fleet.user()),
        &format!("user: {PASSWORD_USER}"),
    );
    std::fs::write(&inventory, text).unwrap();
    let run = |password_env: Option<&str>| {
        let mut c = sluice();
        c.args([
            "exec",
            "host1",
            "--json",
            "--become-user",
            TARGET_USER,
            "-i",
        ])
        .arg(&inventory);
        if let Some(var) = password_env {
            c.args(["--become-password-env", var]);
        }
        c.args(["--", "id", "-un"])
            .env("SLUICE_TEST_BECOME_PW", &users.password)
            .output()
            .unwrap()
    };
    let without = run(None);
    let line: serde_json::Value = serde_json::from_slice(&without.stdout).expect("one JSON object");
    assert_eq!(without.status.code(), Some(1));
    assert_eq!(line["error_kind"], "become_failed", "{line}");
    assert!(
        line["error"]
            .as_str()
            .is_some_and(|e| e.contains("sudo requires a password")),
        "{line}"
    );

    let with = run(Some("SLUICE_TEST_BECOME_PW"));
    let line: serde_json::Value = serde_json::from_slice(&with.stdout).expect("one JSON object");
    assert_eq!(with.status.code(), Some(0), "{line}");
    assert_eq!(line["stdout"], format!("{TARGET_USER}\n"));
    for bytes in [&with.stdout, &with.stderr] {
        assert!(!String::from_utf8_lossy(bytes).contains(&users.password));
    }

    let unset = sluice()
        .args([
            "exec",
            "host1",
            "--become-password-env",
            "SLUICE_TEST_UNSET_VAR",
            "-i",
        ])
        .arg(&inventory)
        .args(["--", "true"])
        .env_remove("SLUICE_TEST_UNSET_VAR")
        .output()
        .unwrap();
    assert_eq!(unset.status.code(), Some(2));
}

/// Where a host's commands run: through the host's runner by default, on a channel and a login
/// shell each with `transport_mode: exec` in the inventory or `--exec-per-step`.
#[test]
fn commands_go_through_the_runner_unless_the_inventory_or_the_flag_says_exec() {
    let fleet = Fleet::start(1).expect("start fleet");
    let written = std::fs::read_to_string(fleet.write_inventory().unwrap()).unwrap();
    // Whatever mode the suite runs in, start from an inventory that does not choose.
    let default = written.replace("  transport_mode: exec\n", "");
    let exec = default.replacen("\nhosts:\n", "\n  transport_mode: exec\nhosts:\n", 1);
    let parent_of = |inventory: &str, flags: &[&str]| {
        let path = fleet.dir().join("mode-inventory.yaml");
        std::fs::write(&path, inventory).unwrap();
        let out = sluice()
            .args(["exec", "host1", "--json", "-i"])
            .arg(&path)
            .args(flags)
            .args(["--", "ps -o args= -p $PPID"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        line["stdout"].as_str().unwrap_or_default().to_string()
    };
    assert!(parent_of(&default, &[]).contains("sluice-runner"));
    assert!(!parent_of(&exec, &[]).contains("sluice-runner"));
    assert!(!parent_of(&default, &["--exec-per-step"]).contains("sluice-runner"));
    let bad = default.replacen("\nhosts:\n", "\n  transport_mode: ssh\nhosts:\n", 1);
    let path = fleet.dir().join("bad-inventory.yaml");
    std::fs::write(&path, bad).unwrap();
    let out = sluice()
        .args(["exec", "host1", "-i"])
        .arg(&path)
        .args(["--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("transport_mode `ssh` is not known"), "{err}");
}
