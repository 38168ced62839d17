//! Host key checking against real sshd: strict, accept-new and the explicit opt-out.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::process::Command;

use sluice_ssh::{ConnectErrorKind, HostKeyPolicy, Transport, TransportError};
use support::{fleet, target, transport};

async fn connect(t: &sluice_ssh::HostTarget) -> Result<(), TransportError> {
    transport().connect(t).await.map(|_| ())
}

#[tokio::test]
async fn strict_refuses_unknown_keys_and_missing_files_with_the_fingerprint() {
    let fleet = fleet(1);
    let mut t = target(&fleet, 1);
    let empty = fleet.dir().join("empty_known_hosts");
    fs::write(&empty, "").unwrap();
    t.known_hosts = vec![empty];
    let err = connect(&t).await.unwrap_err();
    assert!(
        matches!(err, TransportError::HostKeyUnknown { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("SHA256:"), "{err}");
    assert_eq!(err.kind(), ConnectErrorKind::HostKeyRefused);

    t.known_hosts = vec![fleet.dir().join("does-not-exist")];
    let err = connect(&t).await.unwrap_err();
    assert!(
        matches!(err, TransportError::HostKeyUnknown { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn changed_key_is_refused_in_strict_and_accept_new_showing_both_fingerprints() {
    let mut fleet = fleet(1);
    let old = fs::read_to_string(fleet.known_hosts()).unwrap();
    fleet.change_host_key(1).unwrap();
    for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
        let mut t = target(&fleet, 1);
        t.host_key_policy = policy;
        let err = connect(&t).await.unwrap_err();
        let TransportError::HostKeyChanged {
            expected,
            presented,
            ..
        } = &err
        else {
            panic!("{policy:?}: {err}");
        };
        assert_ne!(expected, presented);
        assert!(err.to_string().contains(expected) && err.to_string().contains(presented));
    }
    assert_eq!(
        fs::read_to_string(fleet.known_hosts()).unwrap(),
        old,
        "file untouched"
    );

    let mut t = target(&fleet, 1);
    t.host_key_policy = HostKeyPolicy::InsecureIgnoreHostKeys;
    connect(&t)
        .await
        .expect("the explicit opt-out accepts a changed key");
}

#[tokio::test]
async fn hashed_entries_match() {
    let fleet = fleet(1);
    let out = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(fleet.known_hosts())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = fs::read_to_string(fleet.known_hosts()).unwrap();
    assert!(text.starts_with("|1|"), "{text}");
    connect(&target(&fleet, 1)).await.unwrap();
}

#[tokio::test]
async fn revoked_key_is_refused_even_in_accept_new() {
    let fleet = fleet(1);
    let key = fleet.host_public_key(1).unwrap();
    let mut text = fs::read_to_string(fleet.known_hosts()).unwrap();
    text.push_str(&format!("@revoked * {key}\n"));
    fs::write(fleet.known_hosts(), text).unwrap();
    for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
        let mut t = target(&fleet, 1);
        t.host_key_policy = policy;
        let err = connect(&t).await.unwrap_err();
        assert!(
            matches!(err, TransportError::HostKeyRevoked { .. }),
            "{err}"
        );
    }
}

#[tokio::test]
async fn accept_new_records_fifty_concurrent_hosts_exactly_once_each() {
    let fleet = fleet(50);
    let file = fleet.dir().join("learned_known_hosts");
    let t = transport();
    let runs = (1..=50).map(|i| {
        let mut target = target(&fleet, i);
        target.known_hosts = vec![file.clone()];
        target.host_key_policy = HostKeyPolicy::AcceptNew;
        let t = t.clone();
        async move { t.connect(&target).await.map(|_| ()) }
    });
    for r in futures::future::join_all(runs).await {
        r.unwrap();
    }
    let text = fs::read_to_string(&file).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 50, "{text}");
    lines.sort();
    let mut expected: Vec<String> = (1..=50)
        .map(|i| fleet.known_hosts_line(i).unwrap())
        .collect();
    expected.sort();
    assert_eq!(lines, expected);

    // The learned file now works in strict mode.
    let mut strict = target(&fleet, 7);
    strict.known_hosts = vec![file];
    connect(&strict).await.unwrap();
}
