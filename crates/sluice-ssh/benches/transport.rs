//! Transport benchmark against a real OpenSSH fleet (figures for docs/benchmarks.md).
//!
//! 1. time per command over one reused connection (sequential `true`);
//! 2. handshakes per second: connect (TCP + kex + host key + auth) to N hosts at once;
//! 3. `true` on N hosts at once (connect + exec), beside `xargs -P N ssh` on the same fleet.
//!
//! `SLUICE_BENCH_HOSTS` sets N (default 100).

// Run by hand: a panic is a clear enough error here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_ssh::{ExecRequest, HostKeyPolicy, HostTarget, SshOptions, SshTransport, Transport};
use sluice_testfleet::Fleet;

fn target(fleet: &Fleet, i: usize) -> HostTarget {
    let mut t = HostTarget::new(format!("host{i}"), fleet.address());
    t.port = fleet.port(i);
    t.user = Some(fleet.user().to_string());
    t.identity_files = vec![fleet.identity_file()];
    t.known_hosts = vec![fleet.known_hosts()];
    t.host_key_policy = HostKeyPolicy::Strict;
    t
}

fn transport() -> SshTransport {
    SshTransport::new(SshOptions {
        use_agent: false,
        ssh_config: None,
        default_identity_files: Vec::new(),
        default_known_hosts: Vec::new(),
        ..SshOptions::default()
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn all_hosts_true(fleet: &Fleet, n: usize) -> Duration {
    let t = transport();
    let started = Instant::now();
    let runs = (1..=n).map(|i| {
        let (t, target) = (t.clone(), target(fleet, i));
        async move {
            let conn = t.connect(&target).await?;
            conn.exec(ExecRequest::new("true")).await
        }
    });
    let results = futures::future::join_all(runs).await;
    let elapsed = started.elapsed();
    let ok = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|o| o.status.success()))
        .count();
    assert_eq!(ok, n, "every host must answer");
    elapsed
}

fn xargs_ssh(fleet: &Fleet, n: usize) -> Duration {
    let mut lines = String::new();
    for i in 1..=n {
        lines.push_str(&fleet.ssh_args(i).join(" "));
        lines.push('\n');
    }
    let started = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("xargs -P {n} -L 1 sh -c 'ssh \"$@\" true' ssh"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run xargs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("feed xargs");
    let status = child.wait().expect("wait xargs");
    assert!(status.success(), "xargs ssh failed");
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("SLUICE_BENCH_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let fleet = Fleet::start(n).expect("start fleet");
    eprintln!("fleet of {n} sshd up");

    // 1. Time per command over one reused connection.
    let t = transport();
    let conn = t.connect(&target(&fleet, 1)).await.expect("connect");
    for _ in 0..20 {
        conn.exec(ExecRequest::new("true")).await.expect("warm-up");
    }
    let commands = 300;
    let started = Instant::now();
    for _ in 0..commands {
        let out = conn.exec(ExecRequest::new("true")).await.expect("exec");
        assert!(out.status.success());
    }
    let per_command = started.elapsed() / commands;
    println!("reused connection: {per_command:?} per command (sequential `true`, {commands} runs)");

    // 2. Handshakes: one host sequentially, then all hosts at once.
    let mut single = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let c = t.connect(&target(&fleet, 1)).await.expect("connect");
        single.push(started.elapsed());
        drop(c);
    }
    println!(
        "handshake + auth, one at a time: median {:?}",
        median(single)
    );
    let started = Instant::now();
    let conns = futures::future::join_all((1..=n).map(|i| {
        let (t, target) = (t.clone(), target(&fleet, i));
        async move { t.connect(&target).await }
    }))
    .await;
    let elapsed = started.elapsed();
    assert!(conns.iter().all(|c| c.is_ok()));
    drop(conns);
    println!(
        "handshakes to {n} hosts at once: {elapsed:?} ({:.0} handshakes/s)",
        n as f64 / elapsed.as_secs_f64()
    );

    // 3. `true` on every host at once, new connections, vs xargs -P N ssh.
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..5 {
        ours.push(all_hosts_true(&fleet, n).await);
        theirs.push(xargs_ssh(&fleet, n));
    }
    println!(
        "`true` on {n} hosts at once: sluice-ssh median {:?}, xargs -P {n} ssh median {:?} (5 runs each)",
        median(ours),
        median(theirs)
    );
}
