//! Commands over SSH against real sshd: exit codes, signals, output, timeouts, reuse.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use sluice_ssh::{ExecRequest, ExitStatus, Transport};
use support::{fleet, target, transport};

#[tokio::test]
async fn exit_codes_streams_env_and_stdin() {
    let fleet = fleet(1);
    let conn = transport().connect(&target(&fleet, 1)).await.unwrap();
    for code in [0, 1, 42] {
        let out = conn
            .exec(ExecRequest::new(format!("exit {code}")))
            .await
            .unwrap();
        assert_eq!(out.status, ExitStatus::Code(code));
    }
    let mut req =
        ExecRequest::new("printf '%s:' \"$GREETING\" \"$FLEET_HOST\"; cat; echo oops >&2");
    req.env.push(("GREETING".into(), "it's me".into()));
    req.stdin = Some(b"from stdin".to_vec());
    let out = conn.exec(req).await.unwrap();
    assert_eq!(out.status, ExitStatus::Code(0));
    assert_eq!(out.stdout.kept_bytes(), b"it's me:host1:from stdin");
    assert_eq!(out.stderr.kept_bytes(), b"oops\n");

    let out = conn.exec(ExecRequest::new("true")).await.unwrap();
    assert_eq!(out.stdout.total_bytes, 0);
    assert_eq!(out.stderr.total_bytes, 0);
    assert!(conn.host_key_fingerprint().unwrap().starts_with("SHA256:"));
}

#[tokio::test]
async fn signal_death_is_reported_by_name() {
    let fleet = fleet(1);
    let conn = transport().connect(&target(&fleet, 1)).await.unwrap();
    let out = conn.exec(ExecRequest::new("kill -TERM $$")).await.unwrap();
    assert_eq!(out.status, ExitStatus::Signal("TERM".into()));
}

#[tokio::test]
async fn five_mib_of_stdout_and_random_stderr_are_captured_exactly() {
    let fleet = fleet(1);
    let conn = transport().connect(&target(&fleet, 1)).await.unwrap();
    let mut req = ExecRequest::new(
        "head -c 5242880 /dev/zero; head -c 100000 /dev/urandom | tee $FLEET_ROOT/rand >&2",
    );
    req.output_cap = 1 << 20;
    let out = conn.exec(req).await.unwrap();
    assert_eq!(out.status, ExitStatus::Code(0));
    assert_eq!(out.stdout.total_bytes, 5 * 1024 * 1024);
    assert!(out.stdout.truncated());
    let written = std::fs::read(fleet.root(1).join("rand")).unwrap();
    assert_eq!(
        out.stderr.kept_bytes(),
        written,
        "non-UTF-8 stderr kept byte for byte"
    );
}

#[tokio::test]
async fn timeout_kills_the_remote_process_group() {
    let fleet = fleet(1);
    let conn = transport().connect(&target(&fleet, 1)).await.unwrap();
    let started = Instant::now();
    let cmd = "sleep 1000.25 & sleep 1001.25; wait";
    let out = conn
        .exec(ExecRequest::new(cmd).timeout(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(out.status, ExitStatus::TimedOut);
    let took = started.elapsed();
    // The connection still works, and nothing of the command survived on the host.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let check = conn
        .exec(ExecRequest::new("pgrep -f 'sleep 100[01].25'"))
        .await
        .unwrap();
    let log = std::fs::read_to_string(fleet.host_dir(1).join("sshd.log")).unwrap_or_default();
    assert_eq!(
        check.status,
        ExitStatus::Code(1),
        "log {log} left behind: {}",
        check.stdout.text_lossy()
    );
    let log = std::fs::read_to_string(fleet.host_dir(1).join("sshd.log")).unwrap_or_default();
    assert!(
        took < Duration::from_secs(2),
        "took {took:?}; sshd log: {log}"
    );
}

#[tokio::test]
async fn two_hundred_commands_share_one_connection_and_run_concurrently() {
    let fleet = fleet(1);
    let conn = transport().connect(&target(&fleet, 1)).await.unwrap();
    let runs = (0..200).map(|i| {
        let conn = conn.clone();
        async move { conn.exec(ExecRequest::new(format!("echo {i}"))).await }
    });
    let outs = futures::future::join_all(runs).await;
    for (i, out) in outs.into_iter().enumerate() {
        let out = out.unwrap();
        assert_eq!(out.stdout.kept_bytes(), format!("{i}\n").as_bytes());
    }
    // One sshd session process per connection: count the connections the host saw.
    let who = conn
        .exec(ExecRequest::new("echo $SSH_CONNECTION"))
        .await
        .unwrap();
    assert!(!who.stdout.kept_bytes().is_empty());
}

#[tokio::test]
async fn upload_writes_bytes_with_mode() {
    let fleet = fleet(1);
    let conn = transport().connect(&target(&fleet, 1)).await.unwrap();
    let path = fleet.root(1).join("script.sh");
    let path_str = path.display().to_string();
    conn.upload(&path_str, b"#!/bin/sh\necho uploaded\n", 0o755)
        .await
        .unwrap();
    let out = conn
        .exec(ExecRequest::new(format!("'{path_str}'")))
        .await
        .unwrap();
    assert_eq!(out.stdout.kept_bytes(), b"uploaded\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o755
    );
}

#[tokio::test]
async fn fifty_hosts_at_once() {
    let fleet = fleet(50);
    let t = transport();
    let runs = (1..=50).map(|i| {
        let (t, target) = (t.clone(), target(&fleet, i));
        async move {
            let conn = t.connect(&target).await?;
            conn.exec(ExecRequest::new("echo $FLEET_HOST")).await
        }
    });
    let outs = futures::future::join_all(runs).await;
    for (i, out) in outs.into_iter().enumerate() {
        let out = out.unwrap_or_else(|e| panic!("host{}: {e}", i + 1));
        assert_eq!(out.stdout.text_lossy(), format!("host{}\n", i + 1));
    }
}
