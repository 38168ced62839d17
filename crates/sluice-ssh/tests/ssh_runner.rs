//! Commands through the per-host runner against real sshd: one runner per connection, each
//! command's semantics as on a channel of its own (stdin, output framing, state that does not
//! leak, 100 MiB, timeouts, become), and a runner or connection lost mid-command.
//!
//! The semantic tests use the suite's transport (`SLUICE_TEST_TRANSPORT_MODE=exec` runs them on a
//! channel per command too); the tests about the runner itself always use a runner.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sluice_ssh::{
    Become, ConnectErrorKind, Connection, ExecRequest, ExitStatus, SshOptions, SshTransport,
    Transport, TransportError,
};
use support::{fleet, target, transport};

/// A transport that always uses a runner, whatever the suite's mode.
fn runner_transport() -> SshTransport {
    SshTransport::new(SshOptions {
        exec_per_step: false,
        ..support::options()
    })
}

/// A connection to host 1 that uses a runner, and that runner's pid.
async fn runner_connection(fleet: &sluice_testfleet::Fleet) -> (Arc<dyn Connection>, String) {
    let conn = runner_transport().connect(&target(fleet, 1)).await.unwrap();
    let runner = run(&conn, "echo $PPID").await.stdout.text_lossy();
    (conn, runner)
}

async fn run(conn: &Arc<dyn Connection>, command: &str) -> sluice_ssh::ExecOutcome {
    conn.exec(ExecRequest::new(command)).await.unwrap()
}

/// The pid of the process that started the command's shell: the runner, or sshd's session.
async fn parent_of_command(conn: &Arc<dyn Connection>) -> String {
    let out = run(conn, "ps -o args= -p $PPID").await;
    out.stdout.text_lossy().trim().to_string() + &run(conn, "echo $PPID").await.stdout.text_lossy()
}

#[tokio::test]
async fn every_command_of_a_connection_goes_through_one_runner() {
    let fleet = fleet(1);
    let conn = runner_transport()
        .connect(&target(&fleet, 1))
        .await
        .unwrap();
    let first = run(&conn, "echo $PPID; ps -o args= -p $PPID").await;
    let second = run(&conn, "echo $PPID; ps -o args= -p $PPID").await;
    let text = first.stdout.text_lossy();
    assert_eq!(text, second.stdout.text_lossy(), "one runner for both");
    assert!(text.contains("sluice-runner"), "{text}");
    // With --exec-per-step, every command has an sshd session of its own.
    let exec = SshTransport::new(SshOptions {
        exec_per_step: true,
        ..support::options()
    });
    let conn = exec.connect(&target(&fleet, 1)).await.unwrap();
    let a = parent_of_command(&conn).await;
    assert!(!a.contains("sluice-runner"), "{a}");
}

#[tokio::test]
async fn a_command_reading_stdin_reads_nothing_and_the_next_command_still_runs() {
    let fleet = fleet(1);
    let conn = transport().connect(&target(&fleet, 1)).await.unwrap();
    let out = run(
        &conn,
        "cat; read -r x; echo \"[$x] $?\"; head -c 10 /dev/stdin | wc -c",
    )
    .await;
    assert_eq!(out.stdout.text_lossy(), "[] 1\n0\n");
    assert_eq!(run(&conn, "echo next").await.stdout.text_lossy(), "next\n");
    // Given stdin, the command reads exactly it, a last line without a line break included.
    let mut req = ExecRequest::new("cat; echo; echo done");
    req.stdin = Some(b"line 1\n\nlast, no line break".to_vec());
    let out = conn.exec(req).await.unwrap();
    assert_eq!(
        out.stdout.text_lossy(),
        "line 1\n\nlast, no line break\ndone\n"
    );
}

#[tokio::test]
async fn output_without_a_trailing_line_break_and_binary_output_are_framed_exactly() {
    let fleet = fleet(1);
    let conn = transport().connect(&target(&fleet, 1)).await.unwrap();
    let out = run(&conn, "printf abc; printf def >&2").await;
    assert_eq!(out.stdout.kept_bytes(), b"abc");
    assert_eq!(out.stderr.kept_bytes(), b"def");
    // Bytes a frame starts with, and a line that looks like one, are the command's output.
    let out = run(
        &conn,
        "printf '\\036\\036x start\\n\\036'; printf '\\036 exit 0\\n' >&2; exit 7",
    )
    .await;
    assert_eq!(out.status, ExitStatus::Code(7));
    assert_eq!(out.stdout.kept_bytes(), b"\x1e\x1ex start\n\x1e");
    assert_eq!(out.stderr.kept_bytes(), b"\x1e exit 0\n");
    let mut req = ExecRequest::new("head -c 300000 /dev/urandom | tee \"$FLEET_ROOT/rand\"");
    req.output_cap = 1 << 20;
    let out = conn.exec(req).await.unwrap();
    let written = std::fs::read(fleet.root(1).join("rand")).unwrap();
    assert_eq!(out.stdout.kept_bytes(), written);
}

#[tokio::test]
async fn cd_exit_set_e_traps_variables_and_umask_do_not_leak_between_commands() {
    let fleet = fleet(1);
    let conn = transport().connect(&target(&fleet, 1)).await.unwrap();
    let home = run(&conn, "pwd").await.stdout.text_lossy();
    let out = run(
        &conn,
        "cd /; X=1; export Y=2; set -e; trap 'echo trapped' EXIT; umask 077; alias ll=ls; exit 3",
    )
    .await;
    assert_eq!(out.status, ExitStatus::Code(3));
    assert_eq!(
        out.stdout.text_lossy(),
        "trapped\n",
        "the command's own trap runs"
    );
    let out = run(
        &conn,
        "pwd; echo \"x=$X y=$Y\"; trap; umask; false; echo after-false; echo $# $1",
    )
    .await;
    assert_eq!(
        out.stdout.text_lossy(),
        format!("{home}x= y=\n0022\nafter-false\n0\n")
    );
    assert_eq!(out.status, ExitStatus::Code(0));
}

#[tokio::test]
async fn a_hundred_mib_of_output_is_counted_and_hashed_whole() {
    let fleet = fleet(1);
    let conn = transport().connect(&target(&fleet, 1)).await.unwrap();
    const SIZE: usize = 100 * 1024 * 1024;
    let line = b"0123456789abcdef\n";
    let mut expected = Sha256::new();
    let mut left = SIZE;
    while left > 0 {
        let n = left.min(line.len());
        expected.update(&line[..n]);
        left -= n;
    }
    let out = run(
        &conn,
        &format!("yes 0123456789abcdef | head -c {SIZE}; echo on-stderr >&2"),
    )
    .await;
    assert_eq!(out.status, ExitStatus::Code(0));
    assert_eq!(out.stdout.total_bytes, SIZE as u64);
    assert_eq!(out.stdout.sha256, hex::encode(expected.finalize()));
    assert_eq!(out.stderr.kept_bytes(), b"on-stderr\n");
    assert_eq!(run(&conn, "echo next").await.stdout.text_lossy(), "next\n");
}

#[tokio::test]
async fn a_timeout_kills_the_commands_whole_group_and_the_runner_carries_on() {
    let fleet = fleet(1);
    let (conn, runner_before) = runner_connection(&fleet).await;
    let started = Instant::now();
    let req = ExecRequest::new("sleep 1010.25 & (sleep 1011.25 &); echo up; sleep 1012.25")
        .timeout(Duration::from_secs(1));
    let out = conn.exec(req).await.unwrap();
    assert_eq!(out.status, ExitStatus::TimedOut);
    assert_eq!(out.stdout.text_lossy(), "up\n");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let left = run(&conn, "pgrep -f 'sleep 101[012].25'").await;
    assert_eq!(
        left.status,
        ExitStatus::Code(1),
        "left: {}",
        left.stdout.text_lossy()
    );
    assert_eq!(
        run(&conn, "echo $PPID").await.stdout.text_lossy(),
        runner_before,
        "the same runner runs the next command"
    );
}

#[tokio::test]
async fn a_runner_killed_mid_command_is_connection_lost_and_the_next_command_gets_a_new_runner() {
    let fleet = fleet(1);
    let (conn, runner_before) = runner_connection(&fleet).await;
    let err = conn
        .exec(ExecRequest::new(
            "echo before; kill -KILL $PPID; sleep 0.3; echo after",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ConnectErrorKind::ConnectionLost, "{err}");
    assert!(err.to_string().contains("runner died"), "{err}");
    let out = run(&conn, "echo $PPID").await;
    assert_eq!(out.status, ExitStatus::Code(0));
    assert_ne!(out.stdout.text_lossy(), runner_before, "a new runner");
    // Nothing of the killed runner runs on: its output copiers were in its process group
    // (zombies left to an init that does not reap, as in this container, do not count).
    let left = run(
        &conn,
        &format!(
            "for p in $(pgrep -g {}); do ps -o pid=,stat=,comm= -p \"$p\"; done | grep -v ' Z'",
            runner_before.trim()
        ),
    )
    .await;
    assert_eq!(left.stdout.text_lossy(), "", "left of the killed runner");
}

/// Kills the sshd session process the command runs under: for the controller, the host
/// vanished mid-command, as in a reboot.
const DROP_THE_CONNECTION: &str = "p=$$; while [ \"$(ps -o comm= -p \"$p\")\" != sshd ]; do \
     p=$(ps -o ppid= -p \"$p\" | tr -d ' '); done; echo dropping; kill -KILL \"$p\"; sleep 5";

#[tokio::test]
async fn a_connection_lost_mid_command_is_its_result_and_the_next_command_reconnects() {
    let fleet = fleet(1);
    let conn = transport().connect(&target(&fleet, 1)).await.unwrap();
    let before = run(&conn, "echo $SSH_CONNECTION").await.stdout.text_lossy();
    let started = Instant::now();
    let err = conn
        .exec(ExecRequest::new(DROP_THE_CONNECTION))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ConnectErrorKind::ConnectionLost, "{err}");
    assert!(started.elapsed() < Duration::from_secs(4), "seen at once");
    let out = run(&conn, "echo $SSH_CONNECTION").await;
    assert_eq!(out.status, ExitStatus::Code(0));
    assert_ne!(out.stdout.text_lossy(), before, "a new connection");
}

#[tokio::test]
async fn become_goes_through_the_runner_with_its_refusals() {
    let fleet = fleet(1);
    support::sudo_users(&fleet);
    let (conn, runner) = runner_connection(&fleet).await;
    let mut req = ExecRequest::new("id -un; cat; echo err >&2");
    req.become_user = Some(Become {
        user: Some(sluice_testfleet::sudo::TARGET_USER.into()),
        password: None,
    });
    req.stdin = Some(b"in".to_vec());
    let out = conn.exec(req).await.unwrap();
    assert_eq!(
        out.stdout.text_lossy(),
        format!("{}\nin", sluice_testfleet::sudo::TARGET_USER)
    );
    assert_eq!(out.stderr.text_lossy(), "err\n");
    // A user sudo does not allow: a become failure, and the runner takes the next command.
    let mut req = ExecRequest::new("true");
    req.become_user = Some(Become {
        user: Some("no-such-user-here".into()),
        password: None,
    });
    let err = conn.exec(req).await.unwrap_err();
    assert!(matches!(err, TransportError::BecomeFailed { .. }), "{err}");
    assert_eq!(run(&conn, "echo $PPID").await.stdout.text_lossy(), runner);
}

/// The executor abandons its commands in flight on a second Ctrl-C by dropping them: the
/// runner is left mid-command. The next command on the connection must not be sent to it (it
/// would wait for the abandoned command and read its leftover output and frames): it goes to a
/// new runner at once and gets exactly its own output.
#[tokio::test]
async fn a_command_abandoned_mid_way_is_not_waited_for_and_the_next_command_gets_a_new_runner() {
    let fleet = fleet(1);
    let (conn, runner_before) = runner_connection(&fleet).await;
    let started_file = fleet.root(1).join("abandoned-started");
    let abandoned = {
        let conn = conn.clone();
        tokio::spawn(async move {
            conn.exec(ExecRequest::new(
                "echo early; touch \"$FLEET_ROOT/abandoned-started\"; sleep 4; echo late",
            ))
            .await
        })
    };
    let waiting = Instant::now();
    while !started_file.exists() {
        assert!(waiting.elapsed() < Duration::from_secs(20), "never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Dropped mid-command, as a second Ctrl-C does.
    abandoned.abort();
    assert!(abandoned.await.unwrap_err().is_cancelled());
    let started = Instant::now();
    let out = run(&conn, "echo next; echo $PPID >&2").await;
    assert_eq!(out.status, ExitStatus::Code(0));
    assert_eq!(out.stdout.text_lossy(), "next\n");
    assert_ne!(out.stderr.text_lossy(), runner_before, "a new runner");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the abandoned command was waited for: {:?}",
        started.elapsed()
    );
}

/// A connection through a runner to host 1 of `fleet`, whose login shells are top-level shells
/// that run `bashrc`, as on a host whose sshd does not set `SHLVL` (the fleet's
/// `SetEnv SHLVL=1` is dropped and `HOME` is the host's `home/`): bash reads `~/.bashrc` for
/// every session sshd starts. sshd re-reads its config on SIGHUP. Returns the connection and
/// `HOME`.
async fn runner_where_login_shells_run(
    fleet: &sluice_testfleet::Fleet,
    bashrc: &str,
) -> (Arc<dyn Connection>, std::path::PathBuf) {
    let home = fleet.root(1).join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join(".bashrc"), bashrc).unwrap();
    let config = fleet.host_dir(1).join("sshd_config");
    let text = std::fs::read_to_string(&config).unwrap();
    let changed = text.replace(
        "SetEnv SHLVL=1 ",
        &format!("SetEnv HOME={} ", home.display()),
    );
    assert_ne!(
        text, changed,
        "the fleet's sshd_config no longer sets SHLVL"
    );
    std::fs::write(&config, changed).unwrap();
    let pid = std::fs::read_to_string(fleet.host_dir(1).join("sshd.pid")).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", pid.trim()])
        .status()
        .unwrap();
    assert!(hup.success());
    // sshd re-executes itself; it listens again within moments.
    let waiting = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    while std::net::TcpStream::connect(("127.0.0.1", fleet.port(1))).is_err() {
        assert!(
            waiting.elapsed() < Duration::from_secs(10),
            "sshd did not come back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let login_shell = passwd
        .lines()
        .find(|line| line.split(':').next() == Some(fleet.user()))
        .and_then(|line| line.rsplit(':').next())
        .unwrap_or_default();
    assert!(
        login_shell.ends_with("/bash"),
        "the test needs bash as {}'s login shell, not {login_shell:?}",
        fleet.user()
    );
    let conn = runner_transport().connect(&target(fleet, 1)).await.unwrap();
    (conn, home)
}

/// bash lowers `SHLVL` when it `exec`s the runner, so without the runner counting itself as a
/// shell level every step's bash would be a top-level shell started by sshd and read
/// `~/.bashrc` again (0.3 s on a shell with pyenv): a slow login shell must cost once per host.
#[tokio::test]
async fn the_runner_counts_as_a_shell_level_so_steps_do_not_read_bashrc_again() {
    let fleet = fleet(1);
    let (conn, home) =
        runner_where_login_shells_run(&fleet, "echo \"$$\" >> \"$HOME/bashrc-runs\"\n").await;
    for _ in 0..3 {
        assert_eq!(run(&conn, "true").await.status, ExitStatus::Code(0));
    }
    let runs = std::fs::read_to_string(home.join("bashrc-runs")).unwrap_or_default();
    assert_eq!(
        runs.lines().count(),
        1,
        "~/.bashrc ran once, for the login shell that started the runner, not per step: {runs:?}"
    );
}

/// The first command goes with the runner's start, before the runner answered: what the login
/// shell printed before the runner started, on either stream, is still not its output.
#[tokio::test]
async fn what_the_login_shell_prints_is_not_the_commands_output() {
    let fleet = fleet(1);
    let bashrc = "echo rc-out; echo rc-err >&2; printf 'rc, no line break'; printf 'rc' >&2\n";
    let (conn, _) = runner_where_login_shells_run(&fleet, bashrc).await;
    for (out, err) in [("one", "two"), ("three", "four")] {
        let outcome = run(&conn, &format!("echo {out}; echo {err} >&2")).await;
        assert_eq!(outcome.stdout.text_lossy(), format!("{out}\n"));
        assert_eq!(outcome.stderr.text_lossy(), format!("{err}\n"));
    }
}
