//! Connections under stress against real sshd: a host that stops answering is detected by
//! keepalives, and many connections through one bastion pass its handshake limits.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use sluice_ssh::{ExecRequest, SshOptions, SshTransport, Transport, TransportError};
use support::{fleet, options, target, transport};

#[test]
fn keepalive_defaults_are_every_15_seconds_and_dead_after_3_missed() {
    let o = SshOptions::default();
    assert_eq!(o.keepalive_interval, Duration::from_secs(15));
    assert_eq!(o.keepalive_max, 3);
}

/// Kills what the frozen-sshd test left: the stopped sshd session process and the command's
/// process group (pids the command wrote down itself).
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let pids = std::fs::read_to_string(&self.0).unwrap_or_default();
        let mut it = pids.split_whitespace();
        if let (Some(sshd), Some(group)) = (it.next(), it.next()) {
            let _ = Command::new("kill")
                .args(["-KILL", sshd, "--", &format!("-{group}")])
                .status();
        }
    }
}

#[tokio::test]
async fn a_frozen_sshd_is_connection_lost_within_the_keepalive_budget() {
    let fleet = fleet(1);
    // The default count of missed keepalives, with a short interval.
    let (interval, max) = (Duration::from_secs(1), 3);
    let t = SshTransport::new(SshOptions {
        keepalive_interval: interval,
        keepalive_max: max,
        ..options()
    });
    let conn = t.connect(&target(&fleet, 1)).await.unwrap();
    let pids = fleet.root(1).join("frozen.pids");
    let _cleanup = Cleanup(pids.clone());
    // The sshd process serving this connection (the command's parent, or the runner's):
    // stopped, it keeps the TCP connection open (the kernel still acknowledges) but answers
    // nothing, like a hung host.
    let command = format!(
        "p=$PPID; while [ \"$(ps -o comm= -p \"$p\")\" != sshd ]; do \
         p=$(ps -o ppid= -p \"$p\" | tr -d ' '); done; \
         echo $p $$ > '{}'; kill -STOP $p; sleep 30.77",
        pids.display()
    );
    let started = Instant::now();
    let err = conn
        .exec(ExecRequest::new(command))
        .await
        .map(|o| o.status)
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, TransportError::ConnectionLost { .. }),
        "{err}"
    );
    let budget = interval * (max as u32 + 1);
    assert!(
        took >= interval * max as u32,
        "declared dead too early: {took:?}"
    );
    assert!(
        // Slack for a loaded machine: timers fire late, never early.
        took < budget + Duration::from_secs(2),
        "took {took:?}, budget {budget:?}"
    );
}

#[tokio::test]
async fn sixty_connections_through_one_bastion_to_three_hosts_all_succeed() {
    let fleet = fleet(4);
    let t = transport();
    let bastion = format!("{}@127.0.0.1:{}", fleet.user(), fleet.port(1));
    let runs = (0..60).map(|n| {
        let i = 2 + n % 3;
        let mut target = target(&fleet, i);
        target.proxy_jump = vec![bastion.clone()];
        let t = t.clone();
        async move {
            let conn = t.connect(&target).await?;
            let out = conn.exec(ExecRequest::new("echo $FLEET_HOST")).await?;
            Ok::<_, TransportError>((i, out.stdout.text_lossy()))
        }
    });
    for r in futures::future::join_all(runs).await {
        let (i, host) = r.unwrap_or_else(|e| panic!("spurious failure behind the bastion: {e}"));
        assert_eq!(host, format!("host{i}\n"));
    }
}
