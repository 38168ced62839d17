//! Reachability, authentication and connection life cycle against real sshd.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sluice_ssh::{
    ConnectErrorKind, ExecRequest, ExitStatus, SshOptions, SshTransport, Transport, TransportError,
};
use support::{fleet, options, target, transport};

#[tokio::test]
async fn a_stopped_host_is_unreachable_quickly() {
    let mut fleet = fleet(1);
    fleet.stop(1);
    let started = Instant::now();
    let err = transport()
        .connect(&target(&fleet, 1))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
    assert!(started.elapsed() < transport().options().connect_timeout);
}

#[tokio::test]
async fn wrong_key_is_an_authentication_failure() {
    let fleet = fleet(1);
    fleet.set_accepts_auth(1, false).unwrap();
    let err = transport()
        .connect(&target(&fleet, 1))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, TransportError::AuthFailed { .. }), "{err}");
    assert_eq!(err.kind(), ConnectErrorKind::AuthFailed);
}

#[tokio::test]
async fn rsa_and_ecdsa_identity_files_authenticate() {
    let fleet = fleet(1);
    for key_type in ["rsa", "ecdsa"] {
        let path = fleet.dir().join(format!("id_{key_type}"));
        sluice_testfleet::keygen_typed(&path, key_type, key_type).unwrap();
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        fleet.authorize_key(1, &public).unwrap();
        let mut t = target(&fleet, 1);
        t.identity_files = vec![path];
        let conn = transport()
            .connect(&t)
            .await
            .unwrap_or_else(|e| panic!("{key_type}: {e}"));
        let out = conn.exec(ExecRequest::new("true")).await.unwrap();
        assert!(out.status.success());
    }
}

#[tokio::test]
async fn agent_keys_authenticate() {
    let fleet = fleet(1);
    let socket = fleet.dir().join("agent.sock");
    let agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .spawn()
        .unwrap();
    let _agent = KillOnDrop(agent);
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let added = Command::new("ssh-add")
        .arg(fleet.identity_file())
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let t = SshTransport::new(SshOptions {
        use_agent: true,
        agent_socket: Some(socket),
        ..options()
    });
    let mut target = target(&fleet, 1);
    target.identity_files = vec![fleet.dir().join("no-such-key")];
    let conn = t.connect(&target).await.unwrap();
    assert!(
        conn.exec(ExecRequest::new("true"))
            .await
            .unwrap()
            .status
            .success()
    );
}

#[tokio::test]
async fn sshd_dying_mid_command_is_connection_lost_then_the_next_command_reconnects() {
    let fleet = fleet(1);
    let conn = transport().connect(&target(&fleet, 1)).await.unwrap();
    // $PPID of the command is the sshd process serving this connection.
    let err = conn
        .exec(ExecRequest::new("kill -9 $PPID; sleep 5"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::ConnectionLost { .. }),
        "{err}"
    );
    let out = conn.exec(ExecRequest::new("echo again")).await.unwrap();
    assert_eq!(out.stdout.kept_bytes(), b"again\n");
}

#[tokio::test]
async fn fifty_connections_to_one_sshd_never_hit_max_startups() {
    let fleet = fleet(1);
    let t = transport();
    let runs = (0..50).map(|_| {
        let (t, target) = (t.clone(), target(&fleet, 1));
        async move {
            let conn = t.connect(&target).await?;
            conn.exec(ExecRequest::new("true")).await
        }
    });
    for r in futures::future::join_all(runs).await {
        assert_eq!(r.unwrap().status, ExitStatus::Code(0));
    }
}

#[tokio::test]
async fn proxy_jump_through_one_fleet_host_to_another() {
    let fleet = fleet(2);
    let mut t = target(&fleet, 2);
    t.proxy_jump = vec![format!("{}@127.0.0.1:{}", fleet.user(), fleet.port(1))];
    let conn = transport().connect(&t).await.unwrap();
    let out = conn
        .exec(ExecRequest::new("echo $FLEET_HOST; echo $SSH_CONNECTION"))
        .await
        .unwrap();
    let text = out.stdout.text_lossy();
    assert!(text.starts_with("host2\n"), "{text}");
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn ssh_config_supplies_hostname_port_user_and_identity() {
    let fleet = fleet(1);
    let config = fleet.dir().join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host alias-*\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n",
            fleet.port(1),
            fleet.user(),
            fleet.identity_file().display()
        ),
    )
    .unwrap();
    let t = SshTransport::new(SshOptions {
        ssh_config: Some(config),
        ..options()
    });
    let mut target = sluice_ssh::HostTarget::new("alias-1", "alias-1");
    target.known_hosts = vec![fleet.known_hosts()];
    let conn = t.connect(&target).await.unwrap();
    let out = conn
        .exec(ExecRequest::new("echo $FLEET_HOST"))
        .await
        .unwrap();
    assert_eq!(out.stdout.kept_bytes(), b"host1\n");
}

/// A key encrypted with `passphrase`, authorized on host 1; a target of host 1 using only it.
fn encrypted_key_target(
    fleet: &sluice_testfleet::Fleet,
    passphrase: &str,
) -> sluice_ssh::HostTarget {
    let path = fleet.authorize_encrypted_key(1, passphrase).unwrap();
    let mut target = target(fleet, 1);
    target.identity_files = vec![path];
    target
}

#[tokio::test]
async fn encrypted_key_needs_its_passphrase() {
    let fleet = fleet(1);
    let target = encrypted_key_target(&fleet, "correct horse");

    let without = SshTransport::new(SshOptions {
        passphrase_env: "SLUICE_TEST_UNSET_PASSPHRASE".into(),
        ..options()
    });
    let err = without.connect(&target).await.map(|_| ()).unwrap_err();
    assert!(matches!(err, TransportError::IdentityFile { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("put it in $SLUICE_TEST_UNSET_PASSPHRASE"),
        "{err}"
    );

    let with = SshTransport::new(SshOptions {
        passphrase: Some(sluice_ssh::Passphrase("correct horse".into())),
        ..options()
    });
    let conn = with.connect(&target).await.unwrap();
    assert!(
        conn.exec(ExecRequest::new("true"))
            .await
            .unwrap()
            .status
            .success()
    );
}

/// A transport whose prompt answers `answer` and counts how often it was asked.
fn prompting(answer: &'static str) -> (SshTransport, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    let prompt = sluice_ssh::PassphrasePrompt(Arc::new(move |_key: &std::path::Path| {
        count.fetch_add(1, Ordering::SeqCst);
        // As slow as a person typing: concurrent connections must wait, not ask again.
        std::thread::sleep(Duration::from_millis(200));
        Some(sluice_ssh::Passphrase(answer.into()))
    }));
    let t = SshTransport::new(SshOptions {
        passphrase_env: "SLUICE_TEST_UNSET_PASSPHRASE".into(),
        passphrase_prompt: Some(prompt),
        ..options()
    });
    (t, asked)
}

#[tokio::test]
async fn the_passphrase_prompt_is_asked_once_per_key_for_all_connections() {
    let fleet = fleet(1);
    let target = encrypted_key_target(&fleet, "typed once");
    let (t, asked) = prompting("typed once");
    let runs = (0..5).map(|_| {
        let (t, target) = (t.clone(), target.clone());
        async move { t.connect(&target).await.map(|_| ()) }
    });
    for r in futures::future::join_all(runs).await {
        r.unwrap();
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1);

    // A wrong answer is reported, and not asked again for every further host.
    let (t, asked) = prompting("wrong");
    for _ in 0..3 {
        let err = t.connect(&target).await.map(|_| ()).unwrap_err();
        assert!(matches!(err, TransportError::IdentityFile { .. }), "{err}");
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1);
}

/// Handshakes of `ports`' sshds in flight: established sockets on the sshd side (local port
/// one of `ports`) with unread data (the client's banner), whose client end is still
/// established too. A client that gave up has closed its end (FIN_WAIT at once, in its own
/// close); the sshd side sees the FIN only when the kernel's loopback path delivers it, which
/// a loaded machine may defer past the next handshake's banner, so the sshd side alone would
/// count a handshake that already ended. Read from /proc/net/tcp (127.0.0.1 is IPv4); each line
/// is `sl local rem st tx_queue:rx_queue …`, addresses and numbers in hex.
fn handshakes_started(ports: &HashSet<u16>) -> usize {
    struct Socket {
        local: u16,
        remote: u16,
        established: bool,
        unread: bool,
    }
    let port = |field: Option<&&str>| {
        field
            .and_then(|addr| addr.rsplit_once(':'))
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let sockets: Vec<Socket> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let unread = fields
                .get(4)
                .and_then(|q| q.split_once(':'))
                .and_then(|(_, rx)| u32::from_str_radix(rx, 16).ok())
                .is_some_and(|rx| rx > 0);
            Some(Socket {
                local: port(fields.get(1))?,
                remote: port(fields.get(2))?,
                established: fields.get(3) == Some(&"01"),
                unread,
            })
        })
        .collect();
    let open_clients: HashSet<u16> = sockets
        .iter()
        .filter(|s| s.established && ports.contains(&s.remote))
        .map(|s| s.local)
        .collect();
    sockets
        .iter()
        .filter(|s| {
            ports.contains(&s.local)
                && s.established
                && s.unread
                && open_clients.contains(&s.remote)
        })
        .count()
}

/// Issue 14: a wave connects all its hosts in one burst, and every handshake's temporaries were
/// live at once. Every sshd of the fleet is stopped (the kernel still accepts the TCP
/// connections), so a handshake that started leaves the client's SSH banner unread in its
/// sshd's socket until its budget ends: the sockets with unread bytes are the handshakes in
/// flight. Eight hosts, at most three at a time.
#[tokio::test]
async fn key_exchanges_in_flight_are_capped_across_all_hosts() {
    let mut fleet = fleet(8);
    for i in 1..=8 {
        fleet.freeze(i).unwrap();
    }
    let t = SshTransport::new(SshOptions {
        handshakes_in_flight: 3,
        connect_timeout: Duration::from_millis(300),
        handshake_timeout: Duration::from_millis(300),
        ..options()
    });
    let ports: HashSet<u16> = (1..=8).map(|i| fleet.port(i)).collect();
    let connects = futures::future::join_all((1..=8).map(|i| {
        let (t, target) = (t.clone(), target(&fleet, i));
        async move { t.connect(&target).await.map(|_| ()) }
    }));
    let mut connects = std::pin::pin!(connects);
    let mut most = 0;
    let results = loop {
        tokio::select! {
            results = &mut connects => break results,
            _ = tokio::time::sleep(Duration::from_millis(10)) => {
                most = most.max(handshakes_started(&ports));
            }
        }
    };
    for i in 1..=8 {
        fleet.thaw(i).unwrap();
    }
    for r in results {
        assert!(
            matches!(r, Err(TransportError::Unreachable { .. })),
            "{r:?}"
        );
    }
    assert_eq!(most, 3, "handshakes in flight at most");
}

/// Hosts beyond the cap wait their turn and connect; their wait is not part of their budget.
#[tokio::test]
async fn hosts_beyond_the_key_exchange_cap_wait_and_connect() {
    let fleet = fleet(12);
    let t = SshTransport::new(SshOptions {
        handshakes_in_flight: 2,
        ..options()
    });
    let runs = (1..=12).map(|i| {
        let (t, target) = (t.clone(), target(&fleet, i));
        async move {
            let conn = t.connect(&target).await?;
            conn.exec(ExecRequest::new("echo $FLEET_HOST")).await
        }
    });
    for (i, r) in futures::future::join_all(runs)
        .await
        .into_iter()
        .enumerate()
    {
        let out = r.unwrap();
        assert_eq!(out.stdout.text_lossy(), format!("host{}\n", i + 1));
    }
}
