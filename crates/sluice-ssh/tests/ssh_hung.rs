//! A host that hangs (its whole sshd SIGSTOPped: listener, session processes and commands)
//! costs a command at most its timeout plus the grace, and the connection is then given up at
//! once instead of after the keepalives (issue 16, fault 1). Connecting to a hung host is
//! bounded by the connect and handshake limits.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_ssh::{
    ConnectErrorKind, Connection, ExecRequest, SshOptions, SshTransport, Transport, TransportError,
};
use sluice_testfleet::Fleet;
use support::{fleet, options, target, transport};

/// The step timeout of the reproduction.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Slack for a loaded machine: timers fire late, never early.
const SLACK: Duration = Duration::from_secs(2);

fn grace() -> Duration {
    SshOptions::default().timeout_grace
}

/// Kills the process group a hung command wrote to `file` (`$$` of the remote shell, which
/// sshd made a group leader): it survives its frozen sshd session.
struct KillGroup(PathBuf);

impl Drop for KillGroup {
    fn drop(&mut self) {
        let pgid = std::fs::read_to_string(&self.0).unwrap_or_default();
        let pgid = pgid.trim();
        if !pgid.is_empty() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .status();
        }
    }
}

/// A command that records its process group in `file`, then sleeps far past any timeout.
fn hung_command(file: &std::path::Path) -> String {
    format!("echo $$ > '{}'; sleep 1000.61", file.display())
}

async fn wait_for_file(file: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !file.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that the hang was reported as `kind` and within the timeout and the grace.
fn assert_given_up_in_time<T: std::fmt::Debug>(
    result: &Result<T, TransportError>,
    kind: ConnectErrorKind,
    took: Duration,
) {
    let bound = TIMEOUT + grace() + SLACK;
    assert!(took < bound, "took {took:?}, bound {bound:?}");
    match result {
        Err(e) => {
            assert_eq!(e.kind(), kind, "{e}");
            assert!(e.to_string().contains("did not answer"), "{e}");
        }
        Ok(outcome) => panic!("expected {kind}, got {outcome:?}"),
    }
}

/// A second command on the given-up connection fails at once, without waiting for keepalives,
/// and says that nothing was sent.
async fn assert_next_exec_fails_fast(conn: &dyn Connection) {
    let started = Instant::now();
    let again = conn
        .exec(ExecRequest::new("true").timeout(TIMEOUT))
        .await
        .map(|o| o.status);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    match again {
        Err(e @ TransportError::Unreachable { .. }) => {
            assert!(e.to_string().contains("nothing was sent"), "{e}");
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_command_whose_host_hangs_while_it_runs_ends_within_timeout_and_grace() {
    let mut fleet: Fleet = fleet(1);
    let conn = transport().connect(&target(&fleet, 1)).await.unwrap();
    let (timed, untimed) = (
        fleet.root(1).join("timed.pgid"),
        fleet.root(1).join("untimed.pgid"),
    );
    let _kill = (KillGroup(timed.clone()), KillGroup(untimed.clone()));
    let exec = |file: &std::path::Path, timeout: Option<Duration>| {
        let conn = conn.clone();
        let mut request = ExecRequest::new(hung_command(file));
        request.timeout = timeout;
        tokio::spawn(async move { conn.exec(request).await.map(|o| o.status) })
    };

    let started = Instant::now();
    let with_timeout = exec(&timed, Some(TIMEOUT));
    // A command without a timeout on the same connection: it ends when the connection is given
    // up, not after the keepalives.
    let without_timeout = exec(&untimed, None);
    wait_for_file(&timed).await;
    wait_for_file(&untimed).await;
    let stopped = fleet.freeze(1).unwrap();
    assert!(
        stopped >= 4,
        "listener, session and two commands: {stopped}"
    );
    assert!(
        started.elapsed() < TIMEOUT,
        "the host froze only after the command's timeout: the machine is too loaded to test this"
    );

    let result = with_timeout.await.unwrap();
    let took = started.elapsed();
    // The command may have run to its end just before the host hung: its outcome is unknown.
    assert_given_up_in_time(&result, ConnectErrorKind::ConnectionLost, took);
    let other = without_timeout.await.unwrap();
    let took = started.elapsed();
    assert_given_up_in_time(&other, ConnectErrorKind::ConnectionLost, took);
    assert_next_exec_fails_fast(conn.as_ref()).await;
    fleet.thaw(1).unwrap();
}

#[tokio::test]
async fn a_command_sent_to_a_host_that_already_hangs_ends_within_timeout_and_grace() {
    let mut fleet: Fleet = fleet(1);
    let conn = transport().connect(&target(&fleet, 1)).await.unwrap();
    fleet.freeze(1).unwrap();
    let started = Instant::now();
    let result = conn
        .exec(ExecRequest::new("true").timeout(TIMEOUT))
        .await
        .map(|o| o.status);
    // The channel never opened: the command was not sent.
    assert_given_up_in_time(&result, ConnectErrorKind::Unreachable, started.elapsed());
    assert_next_exec_fails_fast(conn.as_ref()).await;
    fleet.thaw(1).unwrap();
}

#[tokio::test]
async fn connecting_to_a_hung_host_ends_within_the_connect_and_handshake_limits() {
    let mut fleet: Fleet = fleet(1);
    fleet.freeze(1).unwrap();
    let o = SshOptions {
        connect_timeout: Duration::from_secs(1),
        handshake_timeout: Duration::from_secs(2),
        ..options()
    };
    let budget = o.connect_timeout + o.handshake_timeout;
    let started = Instant::now();
    let result = SshTransport::new(o).connect(&target(&fleet, 1)).await;
    let took = started.elapsed();
    // The kernel accepts the TCP connection of a stopped sshd; the banner never comes.
    assert!(
        matches!(result, Err(TransportError::Unreachable { .. })),
        "{:?}",
        result.map(|_| ())
    );
    assert!(took < budget + SLACK, "took {took:?}, budget {budget:?}");
    fleet.thaw(1).unwrap();
}
