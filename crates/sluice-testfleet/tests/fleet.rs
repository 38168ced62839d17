//! The fleet starts real sshd hosts that OpenSSH's own client can reach with its files.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use sluice_testfleet::Fleet;

fn ssh(fleet: &Fleet, i: usize, cmd: &str) -> std::process::Output {
    Command::new("ssh")
        .args(fleet.ssh_args(i))
        .arg(cmd)
        .output()
        .expect("run ssh")
}

#[test]
fn openssh_client_reaches_every_host_with_its_env() {
    let fleet = Fleet::start(2).expect("start fleet");
    for i in 1..=2 {
        let out = ssh(
            &fleet,
            i,
            "echo $FLEET_HOST $SLUICE_TEST_HOST; echo $FLEET_ROOT; echo $SHLVL",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(format!("host{i} host{i}").as_str()));
        assert_eq!(
            lines.next(),
            Some(fleet.root(i).display().to_string().as_str())
        );
        // sshd set SHLVL=1, so the login shell (bash -c) sees 1 or 2, never bash's fresh 1
        // after reading ~/.bashrc: what matters is that it is set.
        assert!(lines.next().is_some_and(|l| !l.is_empty()));
    }
    let inventory = std::fs::read_to_string(fleet.write_inventory().unwrap()).unwrap();
    assert!(inventory.contains(&format!(
        "host2: {{ address: 127.0.0.1, port: {} }}",
        fleet.port(2)
    )));
}

#[test]
fn stop_restart_key_change_and_auth_refusal() {
    let mut fleet = Fleet::start(1).expect("start fleet");
    fleet.stop(1);
    assert!(!ssh(&fleet, 1, "true").status.success());
    fleet.restart(1).unwrap();
    assert!(ssh(&fleet, 1, "true").status.success());

    fleet.set_accepts_auth(1, false).unwrap();
    let out = ssh(&fleet, 1, "true");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    fleet.set_accepts_auth(1, true).unwrap();

    fleet.change_host_key(1).unwrap();
    let out = ssh(&fleet, 1, "true");
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOST IDENTIFICATION HAS CHANGED"));
}

#[test]
fn dropping_the_fleet_kills_its_sshd() {
    let fleet = Fleet::start(1).expect("start fleet");
    let port = fleet.port(1);
    drop(fleet);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn a_frozen_host_accepts_tcp_but_answers_nothing_until_thawed() {
    let mut fleet = Fleet::start(1).expect("start fleet");
    let stopped = fleet.freeze(1).unwrap();
    assert!(stopped >= 1);
    // The kernel still completes the TCP handshake; the banner never comes.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", fleet.port(1))).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let mut banner = [0u8; 4];
    assert!(std::io::Read::read_exact(&mut tcp, &mut banner).is_err());
    let out = Command::new("ssh")
        .args(["-o", "ConnectTimeout=1"])
        .args(fleet.ssh_args(1))
        .arg("true")
        .output()
        .expect("run ssh");
    assert!(!out.status.success());

    assert_eq!(fleet.thaw(1).unwrap(), stopped);
    // The connection that waited gets its banner now.
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    std::io::Read::read_exact(&mut tcp, &mut banner).unwrap();
    assert_eq!(&banner, b"SSH-");
    assert!(ssh(&fleet, 1, "true").status.success());
}
